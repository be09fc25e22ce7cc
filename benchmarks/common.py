"""Shared helpers for the benchmark scripts: machine facts, markdown tables, JSON output,
data-root resolution. Training and scoring go through facelib's public API.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data" / "facecom_task_b"
OUT_DIR = Path(__file__).resolve().parent / "out"


# ----------------------------------------------------------------------------- machine / output


def cpu_name() -> str:
    from facelib.runtime import cpu_name as name

    return name()


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


def scratch_dir(prefix: str) -> Path:
    """A fresh temp folder, removed when the script exits: runs write checkpoints of a few hundred MB each, which
    would otherwise pile up in the temp folder run after run."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def tmp_out(prefix: str) -> str:
    """A checkpoint path in a :func:`scratch_dir` (the Trainer needs ``cfg.out``; budgeted runs save nothing)."""
    return str(scratch_dir(prefix) / "model.pth")
