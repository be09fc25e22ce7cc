"""Typed results of the evaluation protocols: :class:`Identification`, :class:`Verification`, :class:`OpenSet`.

Each holds the per-probe (or per-pair) arrays; ``to_dict()`` gives the JSON-ready figures, ``summary()`` one
line. The protocols that make them: :mod:`facelib.evaluation.protocols`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from facelib.evaluation.metrics import (
    bootstrap_interval,
    identification_metrics,
    per_group_accuracy,
    rate_key,
    topk_accuracy,
)

__all__ = ["PROTOCOL_DESCRIPTIONS", "Identification", "Verification", "OpenSet", "Result"]

# one entry per name of facelib.config.PROTOCOL_NAMES (tests/test_layout.py checks it)
PROTOCOL_DESCRIPTIONS: dict[str, str] = {
    "closed": "gallery = train identities (clean images), probes = val images; probes whose identity "
    "is not in the gallery count as wrong",
    "gallery": "gallery = clean images, probes = their own distorted copies: measures matching a photo "
    "to its own original (pixel cosine top-1 on FACECOM val: 0.98 all-images gallery, 0.73 mean), "
    "not recognising a person",
    "cross-photo": "each probe is matched only against gallery images of OTHER photos (its own source "
    "photo and its distortions excluded): measures recognising the person (pixel cosine top-1 on FACECOM "
    "val: 0.13 all-images gallery, 0.10 mean)",
    "verification": "same/different-identity pairs of images from different photos",
    "open-set": "a seeded part of the identities is held out of the gallery; probes of held-out "
    "identities must be rejected (DIR@FPIR)",
}


@dataclass
class Identification:
    """Result of an identification protocol (closed, gallery, cross-photo).

    Arrays are per probe ([Q] or [Q, k]); ``topk_identities`` holds ``""`` where fewer than
    k identities were allowed. The cross-photo counts are ``None`` for the other protocols.
    """

    protocol: str
    gallery: str
    n_gallery_images: int
    n_gallery_identities: int
    probe_index: np.ndarray
    y_true: np.ndarray
    topk_identities: np.ndarray
    topk_scores: np.ndarray
    gallery_identities: np.ndarray
    distortion: np.ndarray
    probe_path: np.ndarray
    match_index: np.ndarray
    match_path: np.ndarray
    n_probe_identities: int | None = None
    n_distractor_identities: int | None = None
    n_excluded_images: int | None = None
    protocol_reason: str | None = None
    embedding: str = "model"

    @property
    def description(self) -> str:
        return PROTOCOL_DESCRIPTIONS[self.protocol]

    @property
    def y_pred(self) -> np.ndarray:
        """[Q] top-1 identity (``""`` if none allowed)."""
        if self.topk_identities.shape[1] == 0:
            return np.full(len(self.y_true), "", dtype=str)
        return self.topk_identities[:, 0]

    @property
    def correct(self) -> np.ndarray:
        return self.y_pred == self.y_true

    @property
    def best_score(self) -> np.ndarray:
        s = self.topk_scores
        return s[:, 0] if s.shape[1] else np.zeros(len(self.y_true), np.float32)

    @property
    def n_probes(self) -> int:
        return int(len(self.y_true))

    @property
    def gallery_unit(self) -> str:
        return "images" if self.gallery == "all" else "identities"

    @property
    def n_gallery(self) -> int:
        return self.n_gallery_images if self.gallery == "all" else self.n_gallery_identities

    @property
    def n_identities(self) -> int:
        """Identities among the probes."""
        return len(self.probe_identities)

    @property
    def n_probes_without_gallery(self) -> int:
        return int((~np.isin(self.y_true, self.gallery_identities)).sum())

    @property
    def probe_identities(self) -> list[str]:
        """Sorted identities that have probes: the rows of the classification report."""
        return sorted(set(self.y_true.tolist()))

    @cached_property
    def _idm(self) -> dict:
        return identification_metrics(self.y_true, self.y_pred)

    @property
    def top1(self) -> float:
        return self._idm["top1"]

    @property
    def top5(self) -> float:
        return topk_accuracy(self.y_true, self.topk_identities, 5)

    @cached_property
    def top1_interval(self) -> tuple[float, float]:
        """95% interval of :attr:`top1` from a bootstrap over the probe identities (seeded: repeatable).
        A person's probes succeed or fail together, so it is wider than a per-probe binomial interval."""
        if not self.n_probes:
            return (0.0, 0.0)
        b = bootstrap_interval(self.correct, self.y_true)
        return (b["low"], b["high"])

    @property
    def macro_f1(self) -> float:
        return self._idm["macro_f1"]

    @property
    def per_distortion(self) -> dict[str, float]:
        groups = np.where(self.distortion == "", "clean", self.distortion)
        return per_group_accuracy(self.correct, groups) if self.n_probes else {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (no per-probe arrays)."""
        out = {
            "protocol": self.protocol,
            "description": self.description,
            "embedding": self.embedding,
            "gallery": self.gallery,
            "gallery_unit": self.gallery_unit,
            "n_gallery": int(self.n_gallery),
            "n_gallery_images": int(self.n_gallery_images),
            "n_gallery_identities": int(self.n_gallery_identities),
            "top1": self.top1,
            "top1_interval": list(self.top1_interval),
            "top5": self.top5,
            "macro_f1": self.macro_f1,
            "n_probes": self.n_probes,
            "n_identities": self.n_identities,
            "n_probes_without_gallery": self.n_probes_without_gallery,
            "per_distortion": self.per_distortion,
        }
        for key in ("n_probe_identities", "n_distractor_identities", "n_excluded_images"):
            if getattr(self, key) is not None:
                out[key] = int(getattr(self, key))
        if self.protocol_reason is not None:
            out["protocol_reason"] = self.protocol_reason
        return out

    def summary(self) -> str:
        """``cross-photo (mean gallery, 250 identities): top1 0.452 ...``."""
        line = (
            f"{self.protocol} ({self.gallery} gallery, {self.n_gallery} {self.gallery_unit}): top1 {self.top1:.3f}  "
            f"top5 {self.top5:.3f}  macro-F1 {self.macro_f1:.3f}  over {self.n_probes} probes"
        )
        missing = self.n_probes_without_gallery
        return line + (f" ({missing} with no gallery entry)" if missing else "")


@dataclass
class Verification:
    """Same/different pairs: ``scores`` [N] cosine, ``same`` [N] bool, ``pairs`` [N, 2] indices.

    Rates are dicts keyed by the asked rate (``tar_at_far[0.01]``).
    """

    scores: np.ndarray
    same: np.ndarray
    pairs: np.ndarray
    roc_auc: float
    eer: float
    eer_threshold: float
    tar_at_far: dict[float, float]
    threshold_at_far: dict[float, float]
    best_accuracy: float
    best_threshold: float
    n_genuine: int
    n_impostor: int
    n_genuine_available: int
    genuine_subsampled: bool
    seed: int
    embedding: str = "model"
    protocol: str = "verification"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"protocol": self.protocol, "description": PROTOCOL_DESCRIPTIONS[self.protocol],
                               "embedding": self.embedding, "roc_auc": self.roc_auc, "eer": self.eer,
                               "eer_threshold": self.eer_threshold}
        for far, tar in self.tar_at_far.items():
            out[f"tar_at_far_{rate_key(far)}"] = tar
            out[f"threshold_at_far_{rate_key(far)}"] = self.threshold_at_far[far]
        out.update(best_accuracy=self.best_accuracy, best_threshold=self.best_threshold, n_genuine=self.n_genuine,
                   n_impostor=self.n_impostor, n_genuine_available=self.n_genuine_available,
                   genuine_subsampled=self.genuine_subsampled, seed=self.seed)
        return out

    def summary(self) -> str:
        return (
            f"verification: AUC {self.roc_auc:.3f}  EER {self.eer:.3f}  "
            + "  ".join(f"TAR@FAR={rate_key(f)} {t:.3f}" for f, t in self.tar_at_far.items())
            + f"  ({self.n_genuine} genuine / {self.n_impostor} impostor pairs)"
        )


@dataclass
class OpenSet:
    """Open-set identification. Per-probe arrays: ``probe_index``, ``known`` (identity in the gallery),
    ``y_true``, ``y_pred`` (top-1), ``best_score``; ``open_threshold`` decides ``y_pred_open``."""

    gallery: str
    cross_photo: bool
    n_gallery_identities: int
    n_gallery_images: int
    n_heldout_identities: int
    seed: int
    n_known: int
    n_unknown: int
    rank1_known: float
    dir_at_fpir: dict[float, float]
    threshold_at_fpir: dict[float, float]
    fpir_actual: dict[float, float]
    probe_index: np.ndarray
    known: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    best_score: np.ndarray
    open_threshold: float
    threshold: float | None = None
    embedding: str = "model"
    protocol: str = "open-set"

    @property
    def y_pred_open(self) -> np.ndarray:
        """[Q] top-1 identity, or ``"unknown"`` below ``open_threshold``."""
        return np.where(self.best_score >= self.open_threshold, self.y_pred, "unknown")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "protocol": self.protocol, "description": PROTOCOL_DESCRIPTIONS[self.protocol],
            "embedding": self.embedding, "gallery": self.gallery, "cross_photo": self.cross_photo,
            "n_gallery_identities": self.n_gallery_identities, "n_gallery_images": self.n_gallery_images,
            "n_heldout_identities": self.n_heldout_identities, "n_known": self.n_known,
            "n_unknown": self.n_unknown, "rank1_known": self.rank1_known,
        }
        for f, v in self.dir_at_fpir.items():
            out[f"dir_at_fpir_{rate_key(f)}"] = v
            out[f"threshold_at_fpir_{rate_key(f)}"] = self.threshold_at_fpir[f]
            out[f"fpir_actual_{rate_key(f)}"] = self.fpir_actual[f]
        if self.threshold is not None:
            k = self.known
            out["threshold"] = float(self.threshold)
            hit = (self.y_pred == self.y_true)[k] & (self.best_score[k] >= self.threshold)
            out["dir_at_threshold"] = float(np.mean(hit))
            out["fpir_at_threshold"] = float(np.mean(self.best_score[~k] >= self.threshold))
        out["seed"] = self.seed
        return out

    def summary(self) -> str:
        return f"open-set ({self.gallery} gallery, {self.n_gallery_identities} known identities): " + "  ".join(
            f"DIR@FPIR={rate_key(f)} {v:.3f}" for f, v in self.dir_at_fpir.items())


Result = Identification | Verification | OpenSet
