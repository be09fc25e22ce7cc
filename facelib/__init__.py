"""facelib: face recognition by deep metric learning (triplet loss on a timm embedder).

The pipeline is the folder layout: ``data`` -> ``models`` -> ``training`` -> ``evaluation`` -> ``recognition``, with
``notebook`` helpers on top (docs/ARCHITECTURE.md). The public API is importable from here,
``from facelib import TrainConfig, scan_folder, train, run_test``; each name is imported on first use, so
``import facelib`` itself imports nothing else (no torch).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"  # the one place the version is written: pyproject.toml reads it from here

_EXPORTS: dict[str, tuple[str, ...]] = {
    "facelib.config": ("TrainConfig", "EvalConfig", "get_profile"),
    "facelib.errors": ("FacelibError", "ConfigError", "DataError", "CheckpointError", "ModelError"),
    "facelib.runtime": ("resolve_device",),
    "facelib.data.folders": ("FaceFolder", "scan_folder", "scan_sources", "load_image"),
    "facelib.data.distortions": ("distort", "distort_folder"),
    "facelib.data.synthetic": ("make_dataset",),
    "facelib.data.samplers": ("PKSampler",),
    "facelib.models.network": ("EmbeddingNet", "ModelSpec", "build_model"),
    "facelib.models.transforms": ("build_transform",),
    "facelib.models.checkpoint": ("load_checkpoint", "save_checkpoint", "model_fingerprint"),
    "facelib.training.miners": ("get_miner",),
    "facelib.training.losses": ("TripletLoss",),
    "facelib.training.trainer": ("Trainer", "TrainResult"),
    "facelib.jobs": ("train", "demo"),
    "facelib.evaluation.embedding_set": ("EmbeddingSet",),
    "facelib.evaluation.extract": ("embed_images", "embed_folder", "embed_checkpoint"),
    "facelib.evaluation.retrieval": ("topk",),
    "facelib.evaluation.protocols": ("run_protocol", "detect_protocol"),
    "facelib.evaluation.baselines": ("pixel_baseline",),
    "facelib.evaluation.report": ("run_test",),
    "facelib.recognition.gallery": ("Gallery", "build_gallery", "identify"),
    "facelib.recognition.export": ("export_onnx",),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = ["__version__", *_HOME]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name not in _HOME:
        raise AttributeError(f"module 'facelib' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
