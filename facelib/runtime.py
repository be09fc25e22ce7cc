"""Where and how tensors run: the device, the autocast precision, the memory format and the random seed.

Shared by training, embedding and the notebooks; no stage of its own (torch and numpy only).
"""

from __future__ import annotations

import random

import numpy as np
import torch

from facelib.errors import FacelibError

PRECISION_LABELS: dict[torch.dtype | None, str] = {
    None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators: a run's initial weights and augmentations repeat."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; a clear error if CUDA is asked for but absent."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise FacelibError(f"device={name!r} was asked for but no CUDA GPU is available; use device='cpu' or 'auto'",
                           fields=("device",))
    return torch.device(name)


def autocast_dtype(device: torch.device, amp: bool, training: bool = False) -> torch.dtype | None:
    """The autocast precision: bf16 on GPUs that support it, else fp16; on a CPU, bf16 for ``training=True`` where
    oneDNN runs bf16 natively (AVX-512 or AMX; about 2x the fp32 step of a ResNet, lab notes 10.5), else ``None``
    (full fp32: AVX2-only CPUs, ``amp=False``, and CPU inference, which stays exact)."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if training and device.type == "cpu" and cpu_has_native_bf16() else None


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions natively on this CPU (AVX-512 BW/VL/DQ or AMX, not AVX2 alone)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN's check
        return False


def precision_label(dtype: torch.dtype | None) -> str:
    """``fp32``, ``bf16 autocast`` or ``fp16 autocast`` for an :func:`autocast_dtype` result."""
    return PRECISION_LABELS[dtype]


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on CUDA (faster convolutions for image batches [B, 3, S, S]), contiguous elsewhere."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere): CPUs differ 3x in
    training speed, so every img/s figure names its CPU."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_device(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu (AMD EPYC, 2 threads)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({cpu_name()}, {torch.get_num_threads()} threads)"
