"""The jobs that cross stages: :func:`train` (a :class:`~facelib.training.trainer.Trainer` with evaluation's
:class:`~facelib.evaluation.validation.Validation` as its callback, so training never imports evaluation) and
:func:`demo` (synthetic data -> train -> test, as a :class:`~facelib.commands.DemoConfig` says). The test job
itself is :func:`facelib.evaluation.report.run_test`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from facelib.commands import DemoConfig
from facelib.config import DEFAULT_CHECKPOINT, EvalConfig, TrainConfig, get_profile
from facelib.training import distributed
from facelib.training.trainer import Trainer, TrainResult


def train(
    cfg: TrainConfig,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    log: Callable[[str], None] = print,
    on_step_end: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train an embedder as ``cfg`` says; returns paths and the per-epoch history.

    ``on_epoch_end(entry)`` gets each epoch's history entry, ``on_step_end(stats)`` each step's
    loss / active_fraction / pos_dist / neg_dist / spread (for live plots). With ``cfg.val_data`` every
    epoch is scored on it and the best epoch kept.

    Under ``torchrun`` it joins the process group, trains data-parallel and leaves the group at the end.
    """
    from facelib.evaluation.validation import Validation

    callbacks = [Validation(cfg.val_data, workers=cfg.workers, amp=cfg.amp)] if cfg.val_data else []
    joined = distributed.current().enabled
    try:
        return Trainer(cfg, log=log, callbacks=callbacks).fit(on_epoch_end, on_step_end)
    finally:
        if not joined:
            distributed.destroy_process_group()


def demo(cfg: DemoConfig | str | os.PathLike | None = None, log: Callable[[str], None] = print) -> Path:
    """Synthetic data -> a short training run with the smoke profile's recipe -> evaluation, under ``cfg.out``
    (``epochs``, ``steps`` per epoch and ``backbone``: the smoke profile's unless given; a path: ``DemoConfig``
    with that ``out``). Returns the folder."""
    from facelib.data.synthetic import make_dataset
    from facelib.evaluation.report import run_test

    d = cfg if isinstance(cfg, DemoConfig) else DemoConfig() if cfg is None else DemoConfig(out=str(cfg))
    out = Path(d.out)
    t0 = time.perf_counter()
    data = out / "data"
    smoke = get_profile("smoke")
    info = make_dataset(data, seed=d.seed, **smoke.synth)
    log(("reused" if info.get("reused") else "made") + f" synthetic data in {data}")
    given = dict(epochs=d.epochs, steps_per_epoch=d.steps, backbone=d.backbone)
    recipe = smoke.train.replace(
        data=str(data / "train"), val_data=str(data / "val"), out=str(out / DEFAULT_CHECKPOINT), workers=d.workers,
        seed=d.seed, device=d.device, **{k: v for k, v in given.items() if v is not None},
    )
    train(recipe, log=log)
    run_test(EvalConfig(data=str(data / "val"), train_data=str(data / "train"), checkpoint=recipe.out,
                        out=str(out), device=d.device, workers=d.workers), print_report=False, log=log)
    log(f"\ndemo finished in {time.perf_counter() - t0:.0f} s. Files:")
    for name in (DEFAULT_CHECKPOINT, "history.json", "metrics.json", "confusion_matrix.png"):
        log(f"  {out / name}")
    return out
