"""Training throughput: model-only steps vs the full data pipeline, in images per second.

    python benchmarks/train_throughput.py --quick                               # smoke check, synthetic faces
    python benchmarks/train_throughput.py --backbone resnet18 --image-size 64 \
        --batch-size 64 --steps 10 --warmup 2 --workers 2                      # CPU
    python benchmarks/train_throughput.py --backbone resnet50 --image-size 224 \
        --batch-size 256 --steps 50 --warmup 10 --workers 12 --device cuda     # GPU (add --compile to try it)

Both columns run the same public training step, ``facelib.training.trainer.Trainer.step`` (forward, batch-hard
mining, triplet loss, backward, grad clip, AdamW, LR schedule; its statistics stay on the device,
so a GPU never waits for the host), on P x K batches (K = 4, P = batch/4):

- model-only: pre-made random tensors already on the device; measures the model + step.
- full pipeline: real JPEGs through ``Trainer.batches`` (PKSampler batches, training
  transforms, ``--workers`` DataLoader workers, pinned memory on CUDA), host-to-device copy
  included. Goal on a GPU: >= 85% of model-only.
- loader-only: the same DataLoader iterated with no model: the input pipeline's ceiling.

Variants: fp32 vs AMP (bf16 autocast where supported) x NCHW vs channels_last. On a CPU, fp32 and
facelib's default precision (bf16 autocast where oneDNN runs it natively: AVX-512 or AMX) in NCHW; pass
``--all-variants`` for the rest.
Warm-up steps (``--warmup``, which also absorb worker start-up) are not timed; CUDA timings
synchronise before reading the clock.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_trainer(root: Path, args, device):
    """A Trainer on ``root/train`` with P x K = batch/4 x 4, batch-hard, one epoch of warm-up + steps."""
    from facelib.config import TrainConfig
    from facelib.training.trainer import Trainer

    k = 4
    p = max(2, args.batch_size // k)
    cfg = TrainConfig(data=str(root / "train"), backbone=args.backbone, image_size=args.image_size,
                      pretrained=False, embedding_dim=args.embedding_dim, device=str(device), workers=args.workers,
                      sampler="pk", miner="batch_hard", margin=0.2, p=p, k=k, epochs=1,
                      steps_per_epoch=args.warmup + args.steps, amp=True, compile=False, progress=False,
                      out=common.tmp_out("tput-"))
    return Trainer(cfg, log=lambda m: common.log_err("  " + m))


def set_variant(trainer, amp: bool, channels_last: bool, compile_: bool) -> None:
    """Switch the trainer's precision and memory format in place (same model and optimiser)."""
    import torch

    from facelib.runtime import autocast_dtype

    # on a CPU the AMP variant is bf16 autocast: facelib's default where native, forced by --all-variants elsewhere
    cpu = trainer.device.type == "cpu"
    trainer.amp_dtype = (torch.bfloat16 if cpu else autocast_dtype(trainer.device, True)) if amp else None
    trainer.memory_format = torch.channels_last if channels_last else torch.contiguous_format
    trainer.model.to(memory_format=trainer.memory_format)
    trainer.forward = torch.compile(trainer.model) if compile_ else trainer.model
    trainer.model.train()


def time_model_only(trainer, args) -> float:
    """img/s of ``Trainer.step`` on synthetic tensors already on the device."""
    import torch

    from facelib.training.trainer import Batch

    dev = trainer.device
    b = trainer.cfg.p * trainer.cfg.k
    g = torch.Generator().manual_seed(0)
    x = torch.randn(b, 3, args.image_size, args.image_size, generator=g).to(dev)
    y = torch.arange(trainer.cfg.p).repeat_interleave(trainer.cfg.k).to(dev)
    batch = Batch(x, y)
    for _ in range(args.warmup):
        trainer.step(batch)
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        trainer.step(batch)
    sync(dev)
    return b * args.steps / (time.perf_counter() - t0)


def time_pipeline(trainer, args, with_model: bool = True) -> float:
    """img/s of the real loader (+ ``Trainer.step`` when ``with_model``); warm-up steps untimed."""
    dev = trainer.device
    n = 0
    t0 = None
    for i, batch in enumerate(trainer.batches(0)):
        if i == args.warmup:
            sync(dev)
            t0 = time.perf_counter()
        if with_model:
            trainer.step(batch)
        else:
            batch.images.to(dev, non_blocking=True)
        if t0 is not None:
            n += batch.images.shape[0]
        if i + 1 >= args.warmup + args.steps:
            break
    sync(dev)
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--data-root", default=None, help=f"FACECOM Task B root (default {common.DEFAULT_DATA_ROOT})")
    ap.add_argument("--backbone", nargs="+", default=["resnet18"], help="one or more timm backbones")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=64, help="images per step (P x 4)")
    ap.add_argument("--embedding-dim", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--all-variants", action="store_true", help="also AMP / channels_last on CPU")
    ap.add_argument("--skip-loader-only", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny run on synthetic faces (smoke check)")
    ap.add_argument("--json", default="train_throughput", help="name of benchmarks/out/<name>.json ('' = none)")
    args = ap.parse_args(argv)

    from facelib.runtime import resolve_device

    if args.quick:
        from facelib.data.synthetic import make_dataset

        root = common.scratch_dir("facelib-tput-")
        make_dataset(root, identities=24, photos=5, image_size=64, seed=0)
        args.steps, args.warmup, args.batch_size = min(args.steps, 2), min(args.warmup, 1), min(args.batch_size, 16)
    else:
        root = common.resolve_data_root(args.data_root)
    device = resolve_device(args.device)
    from facelib.runtime import autocast_dtype

    if device.type == "cuda" or args.all_variants:
        variants = [(False, False), (False, True), (True, False), (True, True)]
    elif autocast_dtype(device, True, training=True) is not None:
        variants = [(False, False), (True, False)]  # fp32 and facelib's default: bf16 autocast
    else:
        variants = [(False, False)]

    info = common.machine_info(str(device))
    rows: list[dict[str, Any]] = []
    for backbone in args.backbone:
        a = argparse.Namespace(**{**vars(args), "backbone": backbone})
        trainer = make_trainer(root, a, device)
        loader_only = None
        if not args.skip_loader_only:
            load0 = common.loadavg()
            loader_only = time_pipeline(trainer, a, with_model=False)
            common.log_err(f"{backbone}: loader only {loader_only:.1f} img/s (load {load0} -> {common.loadavg()})")
        for amp, cl in variants:
            set_variant(trainer, amp, cl, args.compile)
            load0 = common.loadavg()
            m = time_model_only(trainer, a)
            f = time_pipeline(trainer, a)
            load1 = common.loadavg()
            prec = "fp32" if trainer.amp_dtype is None else f"AMP {str(trainer.amp_dtype).replace('torch.', '')}"
            row = dict(backbone=backbone, precision=prec, memory_format="channels_last" if cl else "NCHW",
                       model_only=m, full=f, loader_only=loader_only, ratio=f / m, load_before=load0,
                       load_after=load1)
            rows.append(row)
            common.log_err(f"{backbone} {prec} {row['memory_format']}: model-only {m:.1f}, full {f:.1f} img/s "
                           f"({f / m:.0%}); load {load0} -> {load1}")
        del trainer

    settings = dict(data=str(root / "train"), image_size=args.image_size,
                    batch=f"{args.batch_size} (P={max(2, args.batch_size // 4)} x K=4)",
                    steps=args.steps, warmup=args.warmup, workers=args.workers, compile=args.compile,
                    step="Trainer.step: batch-hard + triplet loss, AdamW, grad clip 5")
    common.print_header("Training throughput (images/s)", info, settings)
    table = [[r["backbone"], r["precision"], r["memory_format"], f"{r['model_only']:.1f}", f"{r['full']:.1f}",
              f"{r['ratio']:.0%}", "-" if r["loader_only"] is None else f"{r['loader_only']:.1f}",
              f"{r['load_before']} -> {r['load_after']}"] for r in rows]
    print(common.markdown_table(["backbone", "precision", "memory format", "model-only img/s",
                                 "full pipeline img/s", "full / model-only", "loader-only img/s",
                                 "loadavg (1/5/15 min) before -> after"], table, align="lllrrrrl"))
    print()
    if args.json:
        path = common.write_json(args.json + ("_quick" if args.quick else ""),
                                 dict(machine=info, settings=settings, rows=rows))
        common.log_err(f"wrote {path}")


if __name__ == "__main__":
    main()
