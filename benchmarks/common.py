"""Shared helpers for the benchmark scripts: machine facts, markdown tables, JSON output,
data-root resolution, and wall-clock-budgeted training on top of :class:`facelib.train.Trainer`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data" / "facecom_task_b"
OUT_DIR = Path(__file__).resolve().parent / "out"


# ----------------------------------------------------------------------------- machine / output


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def loadavg() -> tuple[float, float, float] | None:
    """``os.getloadavg()`` (1, 5, 15 min), or None where unsupported. The CPU may be shared."""
    try:
        return tuple(round(v, 2) for v in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def machine_info(device: str | None = None) -> dict[str, Any]:
    """Platform, CPU, torch/timm versions and the device (GPU name when CUDA)."""
    import torch

    info: dict[str, Any] = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="minutes"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    try:
        import timm

        info["timm"] = timm.__version__
    except ImportError:
        pass
    if device is not None:
        info["device"] = device
        if device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def print_header(title: str, info: dict[str, Any], settings: dict[str, Any] | None = None) -> None:
    """A markdown heading plus bullet lines for the machine and the settings."""
    print(f"## {title}\n")
    print(f"- date: {info['date']}")
    dev = info.get("device", "?")
    if "gpu" in info:
        dev += f" ({info['gpu']})"
    print(f"- machine: {info['platform']}, {info['cpu']}, {info['cpu_count']} logical CPUs, "
          f"torch {info['torch']} ({info['torch_threads']} threads), timm {info.get('timm', '?')}, "
          f"Python {info['python']}; device {dev}")
    if settings:
        print("- settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    print()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """``align``: one char per column, ``l`` or ``r`` (default: first left, the rest right)."""
    align = align or ("l" + "r" * (len(headers) - 1))
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(map(str, headers)) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/out/<name>.json`` (small result files only)."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def resolve_data_root(arg: str | None) -> Path:
    root = Path(arg) if arg else DEFAULT_DATA_ROOT
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise SystemExit(f"data root {root} has no train/ and val/ folders (pass --data-root, or --quick)")
    return root


def log_err(msg: str) -> None:
    """Progress lines go to stderr so stdout stays a clean markdown report."""
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- budgeted training


def time_cosine(budget_s: float, warmup_frac: float, floor: float = 0.01) -> Callable[[float], float]:
    """LR factor as a function of elapsed training seconds: linear warm-up over
    ``warmup_frac`` of the budget (10% -> 100%), then cosine decay to ``floor``.
    The same shape as :func:`facelib.train._lr_lambda`, with time in place of steps, so a
    recipe's schedule completes inside the budget whatever its step rate."""

    def f(elapsed: float) -> float:
        t = min(1.0, elapsed / budget_s)
        if warmup_frac > 0 and t < warmup_frac:
            return 0.1 + 0.9 * t / warmup_frac
        prog = min(1.0, (t - warmup_frac) / max(1e-9, 1 - warmup_frac))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * prog))

    return f


def train_for(cfg, budget_s: float, warmup_frac: float | None = None, log: Callable[[str], None] = log_err,
              evaluate_init: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """Train ``cfg`` (a :class:`facelib.config.TrainConfig`) for ``budget_s`` wall-clock seconds.

    Builds a :class:`facelib.train.Trainer` (setup time not counted), then runs its epochs
    step by step, stopping at the first step boundary after the budget is spent. The clock
    counts data loading (DataLoader workers included) and optimisation steps. The learning
    rate follows :func:`time_cosine` (warm-up fraction 0.05 when ``cfg.warmup_epochs > 0``,
    else none), replacing the step-based schedule, which assumes a known number of epochs.

    This drives ``Trainer._loader``/``Trainer._step`` directly: facelib has no wall-clock
    stop (a ``max_seconds`` in TrainConfig would make this a public call).

    Returns a dict with the trainer, the model, steps, images seen, seconds, and a
    per-interval history (loss, active_fraction, spread, pos/neg dist) for collapse checks.
    """
    from facelib.train import Trainer

    t_setup = time.perf_counter()
    trainer = Trainer(cfg, log=lambda m: log("  " + m))
    setup_s = time.perf_counter() - t_setup
    init_eval = evaluate_init(trainer) if evaluate_init is not None else None
    if warmup_frac is None:
        warmup_frac = 0.05 if cfg.warmup_epochs > 0 else 0.0
    lr_f = time_cosine(budget_s, warmup_frac)
    # the configured rates (the Trainer's LambdaLR has already scaled param_groups' lr by its warm-up factor)
    base_lrs = list(trainer.scheduler.base_lrs)
    # the Trainer's own LambdaLR still steps inside _step; the rate is overwritten before each step
    trainer.model.train()
    steps = images = 0
    intervals: list[dict[str, float]] = []
    acc: dict[str, float] = {}
    n_acc = 0
    report_every = max(1.0, budget_s / 10)
    next_report = report_every
    t0 = time.perf_counter()
    elapsed = 0.0
    epoch = 0
    done = False
    while not done:
        for x, y in trainer._loader(epoch):
            elapsed = time.perf_counter() - t0
            lr_now = base_lrs[0] * lr_f(elapsed)
            for g, base in zip(trainer.optimizer.param_groups, base_lrs):
                g["lr"] = base * lr_f(elapsed)  # the Trainer's own scheduler.step() in _step resets it after
            stats = trainer._step(x, y)
            steps += 1
            images += x.shape[0] * (3 if x.ndim == 5 else 1)
            for k in ("loss", "active_fraction", "pos_dist", "neg_dist", "spread"):
                if k in stats:
                    acc[k] = acc.get(k, 0.0) + stats[k]
            n_acc += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= next_report or elapsed >= budget_s:
                row = {k: v / n_acc for k, v in acc.items()}
                row.update(t=round(elapsed, 1), steps=steps, lr=lr_now)
                intervals.append(row)
                log(f"  t={elapsed:6.1f}s step {steps:5d}  loss {row.get('loss', float('nan')):.4f}  "
                    f"active {row.get('active_fraction', float('nan')):.2f}  "
                    f"d+ {row.get('pos_dist', float('nan')):.3f}  d- {row.get('neg_dist', float('nan')):.3f}  "
                    f"spread {row.get('spread', float('nan')):.3f}  lr {row['lr']:.2e}")
                acc, n_acc = {}, 0
                next_report += report_every
            if elapsed >= budget_s:
                done = True
                break
        epoch += 1
    seconds = time.perf_counter() - t0
    trainer.model.eval()
    return dict(trainer=trainer, model=trainer.model, spec=trainer.spec, steps=steps, images=images,
                seconds=seconds, epochs_started=epoch, setup_seconds=setup_s, history=intervals,
                init_eval=init_eval)


def tmp_out(prefix: str) -> str:
    """A checkpoint path in a fresh temp folder (the Trainer needs ``cfg.out``; budgeted runs save nothing)."""
    return str(Path(tempfile.mkdtemp(prefix=prefix)) / "model.pth")
