"""Data-parallel training under torchrun: 2 CPU processes (gloo) against 1 process at the same global batch.

The 2-process run computes the same function as the 1-process run: the global P x K batch split by
rank, embeddings all-gathered for mining, BatchNorm statistics all-reduced (GlobalBatchNorm, since
SyncBatchNorm is CUDA-only). Augmentation is switched off in these comparisons (each process draws its
own, by design). What remains is float32 rounding: convolutions on 8 instead of 16 images, sums in
another order (all-reduce of two halves, BN statistics). Tolerances, with the figures measured here:

* losses (every epoch's mean, across a ``--resume``): 1e-5 relative (measured 1.4e-7);
* weights: the bound comes from what AdamW does, not from one CPU's rounding. AdamW moves each weight by
  at most about ``lr`` per step, dividing each gradient by its own running magnitude, so rounding in a small
  gradient becomes rounding in a step of up to ``lr``: one element of ``layer2.0.conv1`` differed by 4.3e-6 on
  an AVX-512 Xeon and by 1.47e-4 on an AVX2 EPYC. Per tensor, the root-mean-square difference between the two
  runs must stay below 5% of ``steps x lr`` (the RMS size of a full update); rounding leaves at most 0.003% (an
  AMD EPYC with AVX-512, 2026-12-03). The projection bias in front of the BN neck (``head.bias``) and the
  running mean that tracks it are the exception: BatchNorm subtracts the mean, so that bias has an exactly zero
  gradient and AdamW turns its rounding noise into full steps (measured 9% of an update); only AdamW's own
  bound holds for them. A real divergence is of the order of the update itself: with the gradient all-reduce
  removed (each process steps on its own half of the batch) the median tensor differs by 52% of an update and
  the worst by 4.3 updates; with each process normalising its own 8 images instead of GlobalBatchNorm, by 60%
  and 12.8 (3 steps). :func:`test_a_real_divergence_fails_the_check` keeps both failing the check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from facelib.cli import main
from facelib.config import TrainConfig
from facelib.data.samplers import PKSampler, RankSplitSampler
from facelib.errors import ConfigError
from facelib.jobs import train
from facelib.training import distributed
from facelib.training.trainer import last_checkpoint_path

REPO = Path(__file__).resolve().parents[2]
CURVE_KEYS = ("loss", "pos_dist", "neg_dist", "spread", "active_fraction")
TINY = ["--image-size", "32", "--no-pretrained", "--embedding-dim", "16", "--p", "4", "--k", "4", "--workers", "0",
        "--no-progress", "--lr", "1e-3", "--warmup", "0"]
# Runs compared with one process train in fp32: bf16 autocast (the default on CPUs with native bf16) rounds a
# 2 x 8-image batch differently from one 16-image batch, by more than the data-parallel equivalence checked here.
# test_no_gather_... keeps the default precision, so data-parallel training under bf16 autocast runs too.
EXACT = ["--no-amp"]
# Runs compared with one process draw no augmentation (its random crops differ between one process and two)
NO_AUGMENTATION = ["--augment", "none"]

# Runs the CLI like `python -m facelib` and records (per rank) every file
# the process opens for writing, creates or renames under the run folder, and what it prints.
ENTRY = textwrap.dedent('''
    import atexit, io, json, os, sys
    rank, watch, record = os.environ["RANK"], os.environ["WATCH_DIR"], os.environ["RECORD_DIR"]
    writes = []

    def audit(event, args):
        if event in ("open", "os.rename", "os.remove", "os.mkdir", "tempfile.mkstemp"):
            path = str(args[1] if event == "os.rename" else args[0])  # a rename: its target
            if not path.startswith(watch):
                return
            if event == "open" and not (isinstance(args[1], str) and set(args[1]) & set("wax+")):
                return
            writes.append([event, path])

    sys.addaudithook(audit)
    printed = io.StringIO()
    if rank != "0":
        sys.stdout = printed

    def dump():
        with open(os.path.join(record, f"rank{rank}.json"), "w") as f:
            json.dump({"writes": writes, "stdout": printed.getvalue()}, f)

    atexit.register(dump)
    if os.environ.get("BREAK") == "allreduce":  # no DistributedDataParallel: no gradient all-reduce
        import torch.nn.parallel
        torch.nn.parallel.DistributedDataParallel = lambda module, **kw: module
    if os.environ.get("BREAK") == "batchnorm":  # each process normalises its own share of the batch
        import facelib.training.distributed
        facelib.training.distributed.convert_global_batchnorm = lambda module: module
    from facelib.cli import main
    sys.exit(main(sys.argv[1:]))
''')


def _torchrun(args: list[str], cwd: Path, entry: Path | None = None, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node=2`` (a free port is picked), then ``-m facelib`` or ``entry``."""
    run_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})}
    target = [str(entry)] if entry is not None else ["-m", "facelib"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *target,
           "--", *args]  # `--`: torchrun would take facelib's --p for its own --print-completion
    return subprocess.run(cmd, cwd=cwd, env=run_env, capture_output=True, text=True, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), image_size=32, pretrained=False, embedding_dim=16, p=4, k=4, workers=0,
                progress=False, lr=1e-3, warmup=0.0, amp=False, out=str(out))
    base.update(kw)
    return TrainConfig(**base)


def _history(out: Path) -> list[dict]:
    return json.loads((out.parent / "history.json").read_text())


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["model"]


WEIGHT_RTOL = 0.05  # of steps x lr, per tensor, root mean square (module docstring)


def _weight_gaps(a: Path, b: Path, steps: int, lr: float) -> dict[str, float]:
    """Per floating-point model tensor: RMS(a - b) / (steps x lr), the share of a full AdamW update."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    return {k: float((wa[k].double() - wb[k].double()).pow(2).mean().sqrt()) / (steps * lr)
            for k in wa if wa[k].is_floating_point() and "running_var" not in k}


ZERO_GRADIENT = ("head.bias", "neck.running_mean")  # a bias in front of BatchNorm, and the mean that tracks it


def _assert_weights_match(a: Path, b: Path, steps: int, lr: float) -> None:
    """Every floating-point model tensor within :data:`WEIGHT_RTOL` of a full update, except those of
    :data:`ZERO_GRADIENT`: their exact gradient is zero, AdamW steps on rounding noise, and only its bound
    holds (each run moves them by at most about ``steps x lr``, so they differ by at most twice that)."""
    gaps = _weight_gaps(a, b, steps, lr)
    for key, gap in gaps.items():
        assert gap <= (2.0 if key in ZERO_GRADIENT else WEIGHT_RTOL), (key, gap)


# ----------------------------------------------------------------------------------------------- no processes


def test_rank_split_is_the_global_batch_in_rank_order():
    labels = np.repeat(np.arange(10), 5)
    pk = PKSampler(labels, p=4, k=3, batches_per_epoch=3, seed=7)
    for epoch in (0, 1):
        pk.set_epoch(epoch)
        whole = list(pk)
        parts = []
        for rank in (0, 1):
            split = RankSplitSampler(PKSampler(labels, p=4, k=3, batches_per_epoch=3, seed=7), rank, 2)
            split.set_epoch(epoch)
            assert len(split) == 3 and split.epoch == epoch
            parts.append(list(split))
        for step, batch in enumerate(whole):
            assert parts[0][step] + parts[1][step] == batch
            assert len(parts[0][step]) == 6
            assert not set(labels[parts[0][step]]) & set(labels[parts[1][step]])  # own identities per rank
    with pytest.raises(ValueError, match="cannot be split evenly over 3"):
        RankSplitSampler(pk, 0, 3)


def test_rank_split_shares_the_extra_negatives():
    labels = np.concatenate([np.repeat(np.arange(6), 4), np.arange(6, 12)])  # 6 singletons
    pk = PKSampler(labels, p=4, k=2, batches_per_epoch=4, negatives=4, seed=3)
    whole = list(pk)
    parts = [list(RankSplitSampler(PKSampler(labels, p=4, k=2, batches_per_epoch=4, negatives=4, seed=3), r, 2))
             for r in (0, 1)]
    for step, batch in enumerate(whole):
        assert parts[0][step] == batch[0:4] + batch[8:10] and parts[1][step] == batch[4:8] + batch[10:12]
        assert all(labels[j] >= 6 for j in batch[8:])
    with pytest.raises(ValueError, match="3 extra negatives per batch cannot be split evenly over 2"):
        RankSplitSampler(PKSampler(labels, p=4, k=2, negatives=3), 0, 2)


def test_env_from_reads_torchrun_variables():
    assert distributed.env_from({}) == distributed.DistEnv(0, 1, 0)
    assert distributed.env_from({"RANK": "3", "WORLD_SIZE": "1"}) == distributed.DistEnv(0, 1, 0)
    env = distributed.env_from({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank, env.enabled, env.is_main) == (3, 4, 1, True, False)
    assert distributed.device_for(env, torch.device("cuda")) == torch.device("cuda", 1)
    assert distributed.device_for(env, torch.device("cpu")) == torch.device("cpu")
    for bad in ({"WORLD_SIZE": "two"}, {"WORLD_SIZE": "2", "RANK": "2"}):
        with pytest.raises(ConfigError):
            distributed.env_from(bad)


def test_gather_with_grad_sends_back_this_ranks_rows_times_world(monkeypatch):
    """Rank 1 of 2 (the collective faked): the forward is the rank-ordered concatenation; the backward keeps
    rank 1's rows of the gradient, times 2, because DDP then averages the 2 ranks' partial gradients."""
    other = torch.tensor([[5.0, 6.0], [7.0, 8.0]])

    def fake_all_gather(parts, x):
        parts[0].copy_(other if x.dim() == 2 else other[:, 0])  # labels: [5, 7]
        parts[1].copy_(x)

    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(distributed.dist, "all_gather", fake_all_gather)
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    full = distributed.gather_with_grad(x)
    assert torch.equal(full, torch.cat([other, x.detach()]))
    weights = torch.arange(8.0).reshape(4, 2)
    (full * weights).sum().backward()
    assert torch.equal(x.grad, 2 * weights[2:])
    assert torch.equal(distributed.gather(torch.tensor([1, 2])), torch.tensor([5, 7, 1, 2]))


def test_global_batchnorm_is_batchnorm_in_one_process():
    """Conversion keeps parameters, statistics and state-dict keys; without a process group it computes
    exactly what BatchNorm computes, in training (batch statistics, running update) and eval mode."""
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 5), torch.nn.BatchNorm1d(5))
    import copy

    converted = distributed.convert_global_batchnorm(copy.deepcopy(plain))
    assert [type(m).__name__ for m in converted] == ["Conv2d", "GlobalBatchNorm", "Flatten", "Linear",
                                                     "GlobalBatchNorm"]
    assert converted.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(6, 3, 8, 8)
    assert torch.equal(converted(x), plain(x))
    assert torch.equal(converted[4].running_var, plain[4].running_var) and int(converted[1].num_batches_tracked) == 1
    converted.eval(), plain.eval()
    assert torch.equal(converted(x), plain(x))


@pytest.mark.parametrize("rank", ["0", "1"])
def test_bad_split_is_one_error_line_on_rank_zero_only(synth_root: Path, tmp_path: Path, monkeypatch, capsys, rank):
    """Checked before the process group is joined, so no rank waits for the others."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("LOCAL_RANK", rank)
    for flags, message in ((["--p", "3"], "p=3 identities per batch cannot be split evenly over 2 processes"),
                           (["--p", "2", "--no-gather"], "with gather=False each process mines its own p/2=1"),
                           (["--negatives", "3"], "3 extra negatives per batch cannot be split evenly over 2"),
                           (["--sampler", "triplets"], "data-parallel training needs the P x K sampler")):
        code = main(["train", "--data", str(synth_root / "train"), "--out", str(tmp_path / "m.pth"), *TINY, *flags])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        if rank == "0":
            assert len(err) == 1 and err[0].startswith(f"error: {message}"), err
        else:
            assert err == []
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------- 2 processes


def test_two_processes_match_one_and_resume(synth_root: Path, tmp_path: Path):
    """ResNet-18 with the BN neck, 1 + 1 epochs (resumed) on 2 processes == the same on 1 process;
    rank 1 prints and writes nothing."""
    entry, runs, record = tmp_path / "entry.py", tmp_path / "runs", tmp_path / "record"
    entry.write_text(ENTRY)
    record.mkdir()
    out = runs / "ddp" / "m.pth"
    args = ["train", "--data", str(synth_root / "train"), "--backbone", "resnet18", "--neck", "bn",
            "--miner", "batch_hard", "--steps-per-epoch", "2", "--out", str(out), *TINY, *EXACT, *NO_AUGMENTATION]
    env = {"WATCH_DIR": str(runs), "RECORD_DIR": str(record)}
    _ok(_torchrun(args + ["--epochs", "1"], tmp_path, entry, env))
    rank1 = json.loads((record / "rank1.json").read_text())
    assert rank1 == {"writes": [], "stdout": ""}
    rank0 = json.loads((record / "rank0.json").read_text())
    assert {Path(p).name for e, p in rank0["writes"] if e == "os.rename"} == {"m.pth", "m.last.pth", "history.json"}
    proc = _torchrun(args + ["--epochs", "2", "--resume"], tmp_path, entry, env)
    _ok(proc)
    assert "resumed from" in proc.stdout
    assert ("data-parallel: 2 processes (gloo), each 2 of the P=4 identities per step; mining over the "
            "all-gathered global batch; BatchNorm statistics over the global batch (GlobalBatchNorm)") in proc.stdout
    assert json.loads((record / "rank1.json").read_text()) == {"writes": [], "stdout": ""}
    assert sorted(p.name for p in out.parent.iterdir()) == ["history.json", "m.last.pth", "m.pth"]

    # the same on one process: 1 epoch, then resumed to 2
    one = tmp_path / "one" / "m.pth"
    kw = dict(backbone="resnet18", neck="bn", miner="batch_hard", steps_per_epoch=2, augment="none")
    train(_cfg(synth_root / "train", one, epochs=1, **kw), log=lambda s: None)
    train(_cfg(synth_root / "train", one, epochs=2, resume=True, **kw), log=lambda s: None)

    h2, h1 = _history(out), _history(one)
    assert [h["epoch"] for h in h2] == [1, 2] and [h["steps"] for h in h2] == [2, 2]
    for key in CURVE_KEYS:
        np.testing.assert_allclose([h[key] for h in h2], [h[key] for h in h1], rtol=1e-5, atol=1e-7, err_msg=key)
    _assert_weights_match(last_checkpoint_path(out), last_checkpoint_path(one), steps=4, lr=1e-3)


def _two_and_one(synth_root: Path, tmp_path: Path, settings: dict, broken: str = "") -> tuple[Path, Path]:
    """One epoch of ``settings`` (TrainConfig fields) without augmentation on 2 processes (``broken``: see ENTRY)
    and on 1: the two checkpoints' paths."""
    entry, runs, record = tmp_path / "entry.py", tmp_path / "runs", tmp_path / "record"
    entry.write_text(ENTRY)
    record.mkdir()
    out = runs / "ddp" / "m.pth"
    flags = [x for k, v in settings.items() for x in ("--" + k.replace("_", "-"), str(v))]
    args = ["train", "--data", str(synth_root / "train"), *flags, "--epochs", "1", "--out", str(out), *TINY, *EXACT,
            *NO_AUGMENTATION]
    _ok(_torchrun(args, tmp_path, entry, {"WATCH_DIR": str(runs), "RECORD_DIR": str(record),
                                           "BREAK": broken}))
    one = tmp_path / "one" / "m.pth"
    train(_cfg(synth_root / "train", one, epochs=1, augment="none", **settings), log=lambda s: None)
    return out, one


@pytest.mark.parametrize("broken", ["allreduce", "batchnorm"])
def test_a_real_divergence_fails_the_check(synth_root: Path, tmp_path: Path, broken):
    """The tolerances above catch what they are for: without the gradient all-reduce, or with BatchNorm over
    each process's share, the 2-process run leaves the 1-process run by far more than the bound."""
    out, one = _two_and_one(synth_root, tmp_path, dict(backbone="resnet18", neck="bn", miner="batch_hard",
                                                         steps_per_epoch=3), broken)
    gaps = _weight_gaps(last_checkpoint_path(out), last_checkpoint_path(one), steps=3, lr=1e-3)
    learnt = sorted(v for k, v in gaps.items() if k not in ZERO_GRADIENT)
    assert learnt[-1] > 3 * WEIGHT_RTOL, learnt[-1]
    with pytest.raises(AssertionError):
        _assert_weights_match(last_checkpoint_path(out), last_checkpoint_path(one), steps=3, lr=1e-3)
    (h2,), (h1,) = _history(out), _history(one)
    assert abs(h2["loss"] - h1["loss"]) > 1e-3 * abs(h1["loss"])  # far beyond the losses' 1e-5


def test_arcface_class_weights_stay_in_sync(synth_root: Path, tmp_path: Path):
    """The ArcFace class weights live outside the DDP module; their gradients are averaged over the ranks,
    so rank 0's weights equal the 1-process run's (same exact setting as above)."""
    out, one = _two_and_one(synth_root, tmp_path, dict(backbone="test_convnext", neck="none", loss="arcface",
                                                         steps_per_epoch=2))
    (h2,), (h1,) = _history(out), _history(one)
    np.testing.assert_allclose([h2["loss"], h2["accuracy"]], [h1["loss"], h1["accuracy"]], rtol=1e-5)
    w2, w1 = (torch.load(last_checkpoint_path(p), weights_only=True)["criterion"]["weight"] for p in (out, one))
    assert float((w2 - w1).abs().max()) < 1e-5
    assert float((w2 - w1).abs().max()) < 1e-3 * float((w1 - _initial_class_weights(w1.shape)).abs().max())
    _assert_weights_match(last_checkpoint_path(out), last_checkpoint_path(one), steps=2, lr=1e-3)


def _initial_class_weights(shape: torch.Size) -> torch.Tensor:
    """The ArcFace class weights before training (the Trainer seeds, builds the model, then the head)."""
    from facelib.models.network import build_model
    from facelib.runtime import seed_everything
    from facelib.training.losses import MarginSoftmaxLoss

    seed_everything(0)
    build_model("test_convnext", 16, image_size=32)
    return MarginSoftmaxLoss(shape[0], shape[1]).weight.detach()


def test_no_gather_time_budget_and_validation_on_rank_zero(synth_root: Path, tmp_path: Path):
    """--no-gather; a budget spent after the first step stops both ranks there; rank 0 validates."""
    out = tmp_path / "ddp" / "m.pth"
    args = ["train", "--data", str(synth_root / "train"), "--val-data", str(synth_root / "val"),
            "--backbone", "resnet18", "--neck", "bn", "--epochs", "3", "--steps-per-epoch", "4",
            "--max-seconds", "0.001", "--no-gather", "--out", str(out), *TINY]
    proc = _torchrun(args, tmp_path)
    _ok(proc)
    assert "mining over each process's own share" in proc.stdout
    from facelib.runtime import cpu_has_native_bf16

    assert ("precision bf16 autocast" in proc.stdout) is cpu_has_native_bf16()  # GlobalBatchNorm under autocast
    assert "time budget of 0.001 s spent after 1 steps" in proc.stdout
    (entry,) = _history(out)
    assert entry["steps"] == 1 and 0 <= entry["val_top1"] <= 1 and entry["loss"] > 0
    assert torch.load(last_checkpoint_path(out), weights_only=True)["steps_done"] == 1
