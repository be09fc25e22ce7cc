"""Notebook setup: profile, data folder (or the synthetic set), run folder and the shared TrainConfig.

Environment variables the notebooks read (all optional):

``FACELIB_DATA``       a FACECOM-layout folder with ``train/`` (and ``val/``); unset: the synthetic
                       demo set is made (or reused) under ``data/synthetic`` in the repository.
``FACELIB_PROFILE``    ``smoke`` (tiny, CPU, CI) or ``full`` (ResNet-50, 224 px, 20 epochs);
                       unset: ``full`` with a GPU, ``smoke`` without.
``FACELIB_RUNS``       where runs go (default ``runs/notebook`` in the repository); each
                       profile + data set gets its own sub-folder.
``FACELIB_MAX_STEPS``  cap on the training steps per epoch (quick checks, the browser test).
``FACELIB_EPOCHS``     override the profile's number of epochs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from facelib.config import EvalConfig, Profile, TrainConfig, get_profile, profile_name
from facelib.data.folders import DISTORTION_KINDS
from facelib.errors import DataError
from facelib.models.network import pretrained_available
from facelib.runtime import seed_everything

__all__ = ["repo_root", "setup", "NotebookSetup", "pretrained_available", "check_pretrained", "device_summary"]

ENV_DATA, ENV_RUNS, ENV_MAX_STEPS, ENV_EPOCHS = "FACELIB_DATA", "FACELIB_RUNS", "FACELIB_MAX_STEPS", "FACELIB_EPOCHS"


def repo_root() -> Path:
    """The repository root: the folder above the ``facelib`` package (two levels above this file) when it
    holds ``pyproject.toml``, else the first folder from the current one upwards that does; else the
    current folder."""
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").is_file():
        return here
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):
        if (d / "pyproject.toml").is_file() and (d / "facelib").is_dir():
            return d
    return cwd


def _resolve_data(path: str | os.PathLike) -> Path:
    """A user-given data folder: as given (relative to the notebook), else relative to the repository."""
    p = Path(os.path.expanduser(str(path)))
    for cand in ([p] if p.is_absolute() else [Path.cwd() / p, repo_root() / p]):
        if cand.is_dir():
            return cand.resolve()
    raise DataError(f"data folder not found: {path} (looked in {Path.cwd()} and {repo_root()})")


def _env_int(name: str) -> int | None:
    v = os.environ.get(name, "").strip()
    if not v:
        return None
    try:
        n = int(v)
    except ValueError:
        raise DataError(f"{name} must be a whole number, got {v!r}") from None
    if n < 1:
        raise DataError(f"{name} must be >= 1, got {n}")
    return n


@dataclass
class NotebookSetup:
    """What every notebook needs: profile, data folders, run folder and the shared TrainConfig."""

    profile: str
    data_root: Path
    train_dir: Path
    val_dir: Path | None
    run_dir: Path
    synthetic: bool
    config: TrainConfig
    synth_summary: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "tb_model.pth"

    def eval_config(self, checkpoint: str | os.PathLike | None = None, **changes: Any) -> EvalConfig:
        """EvalConfig for the val folder (train folder for the closed protocol), writing into the run folder."""
        if self.val_dir is None:
            raise DataError(f"{self.data_root} has no val/ folder to evaluate on")
        base = dict(data=str(self.val_dir), train_data=str(self.train_dir),
                    checkpoint=str(checkpoint or self.checkpoint), out=str(self.run_dir),
                    workers=self.config.workers, device=self.config.device)
        base.update(changes)
        return EvalConfig(**base)

    def __str__(self) -> str:
        c = self.config
        lines = [
            f"profile   {self.profile}  ({c.backbone}, {c.image_size} px, {c.epochs} epochs, "
            f"{c.steps_per_epoch or 'all'} steps/epoch, P={c.p} x K={c.k})",
            f"data      {self.data_root}" + ("  (synthetic demo faces)" if self.synthetic else ""),
            f"train     {self.train_dir}",
            f"val       {self.val_dir}",
            f"runs      {self.run_dir}",
        ]
        return "\n".join(lines + self.notes)

    def _repr_pretty_(self, p, cycle) -> None:  # IPython display
        p.text(str(self))


def setup(data: str | os.PathLike | None = None, profile: str | None = None, runs: str | os.PathLike | None = None,
          make_synthetic: bool = True) -> NotebookSetup:
    """Resolve profile, data and run folders, build the shared :class:`TrainConfig` and seed the random generators
    with its ``seed`` (:func:`facelib.runtime.seed_everything`), so the notebooks print the same figures every run.

    Args:
        data: a FACECOM-layout folder (``train/`` + ``val/``); default ``$FACELIB_DATA``,
            else the synthetic set under ``<repo>/data/synthetic`` (made on first use).
        profile: ``smoke`` or ``full``; default ``$FACELIB_PROFILE`` / GPU detection.
        runs: parent of the run folders; default ``$FACELIB_RUNS`` or ``<repo>/runs/notebook``.
    """
    name = profile or profile_name()
    prof: Profile = get_profile(name)
    notes: list[str] = []
    data = data if data not in (None, "") else (os.environ.get(ENV_DATA, "").strip() or None)
    synth_summary = None
    if data is None:
        root = repo_root() / "data" / "synthetic"
        synthetic = True
        if make_synthetic:
            from facelib.data.synthetic import make_dataset

            synth_summary = make_dataset(root, **prof.synth, seed=0)
            how = "reused" if synth_summary["reused"] else f"made in {synth_summary['seconds']:.1f} s"
            notes.append(f"synthetic set {how}: {synth_summary['identities']} identities x "
                         f"{synth_summary['photos']} photos x (1 clean + {len(DISTORTION_KINDS)} distorted), "
                         f"{synth_summary['image_size']} px")
    else:
        root = _resolve_data(data)
        synthetic = False
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DataError(f"{root} has no train/ folder: point FACELIB_DATA at a folder holding train/ and val/, "
                        "each with <identity>/*.jpg and optional <identity>/distortion/*.jpg")
    val_dir = root / "val" if (root / "val").is_dir() else None
    runs_parent = Path(runs or os.environ.get(ENV_RUNS, "") or repo_root() / "runs" / "notebook")
    run_dir = (runs_parent / f"{prof.name}_{'synthetic' if synthetic else root.name}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)

    cfg = prof.train.replace(data=str(train_dir), val_data=str(val_dir) if val_dir else None,
                             out=str(run_dir / "tb_model.pth"))
    if prof.name == "full":
        cfg.workers = max(2, min(8, os.cpu_count() or 2))
    steps, epochs = _env_int(ENV_MAX_STEPS), _env_int(ENV_EPOCHS)
    if steps is not None:
        cfg.steps_per_epoch = min(cfg.steps_per_epoch or steps, steps)
        notes.append(f"{ENV_MAX_STEPS}={steps}: at most {steps} steps per epoch")
    if epochs is not None:
        cfg.epochs = epochs
        notes.append(f"{ENV_EPOCHS}={epochs}")
    seed_everything(cfg.seed)  # a notebook run top to bottom prints the same figures every time
    notes.append(f"random generators seeded with {cfg.seed} (cfg.seed): random weights and augmentations repeat")
    return NotebookSetup(prof.name, root, train_dir, val_dir, run_dir, synthetic, cfg, synth_summary, notes)


def check_pretrained(cfg: TrainConfig, log: Callable[[str], None] = print) -> None:
    """Offline without cached weights: switch ``cfg`` to random weights instead of failing (with a note)."""
    if not cfg.pretrained or cfg.weights or pretrained_available(cfg.backbone):
        return
    log(f"note: no pretrained {cfg.backbone} weights in the cache and the hub is unreachable; "
        "training from random weights (set pretrained=False to silence this, or pass weights=FILE)")
    cfg.pretrained = False


def device_summary(cfg: TrainConfig) -> str:
    """Which device and precision training will use, e.g. ``device cpu (CPU, 2 threads), precision bf16 autocast``."""
    import torch

    from facelib.runtime import autocast_dtype, precision_label, resolve_device

    dev = resolve_device(cfg.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return f"device {dev} ({name}), precision {precision_label(autocast_dtype(dev, cfg.amp, training=True))}"
