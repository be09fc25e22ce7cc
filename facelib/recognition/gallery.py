"""Recognise people with a trained model: enrol a gallery of identities, identify new photos.

A :class:`Gallery` file (``.npz``) holds one L2-normalised row per identity (the renormalised mean
of its clean photos) or one per photo (``mode="all"``, an identity scoring its best photo), plus
the fingerprint of the model that made it, its input size and the decision threshold. A photo whose
best cosine score is below the threshold is ``unknown``. Scores come from the same search as the
evaluation protocols (:func:`facelib.evaluation.retrieval.topk_labels`).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facelib.config import ENROLL_MODES
from facelib.errors import DataError, FacelibError
from facelib.io import atomic_path

__all__ = [
    "ENROLL_MODES",
    "Gallery",
    "GalleryError",
    "Match",
    "threshold_from_metrics",
    "build_gallery",
    "image_paths",
    "identify",
]

GALLERY_FORMAT = "facelib-gallery"


class GalleryError(FacelibError):
    """A gallery file that is not usable with this model."""




@dataclass
class Gallery:
    """Enrolled identities.

    Attributes:
        names: [C] identity names (sorted).
        embeddings: [M, D] float32 unit rows; M = C for ``mode="mean"``, one row per photo for ``"all"``.
        labels: [M] int index into ``names``.
        counts: [C] clean photos enrolled per identity.
        fingerprint: :func:`model_fingerprint` of the model that made the rows.
        image_size: the model's input size in pixels.
        threshold: cosine score below which a photo is ``unknown`` (``None``: always name the best).
        threshold_source: where the threshold came from.
        mode: ``"mean"`` or ``"all"``.
    """

    names: np.ndarray
    embeddings: np.ndarray
    labels: np.ndarray
    counts: np.ndarray
    fingerprint: str
    image_size: int
    threshold: float | None = None
    threshold_source: str = ""
    mode: str = "mean"

    def __len__(self) -> int:
        return len(self.names)

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically to exactly ``path``."""
        meta = {"format": GALLERY_FORMAT, "fingerprint": self.fingerprint, "image_size": int(self.image_size),
                "threshold": self.threshold, "threshold_source": self.threshold_source, "mode": self.mode}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object: numpy must not append ".npz" to the temp name
                np.savez(f, names=self.names.astype(str), embeddings=self.embeddings.astype(np.float32),
                         labels=self.labels.astype(np.int64), counts=self.counts.astype(np.int64),
                         meta=np.array(json.dumps(meta)))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Gallery":
        """Read a file written by :meth:`save`; :class:`GalleryError` for anything else."""
        p = Path(path)
        if not p.is_file():
            raise GalleryError(f"gallery not found: {p} (make one with `facelib enroll`)")
        try:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != GALLERY_FORMAT:
                    raise KeyError("format")
                g = cls(z["names"], z["embeddings"], z["labels"], z["counts"], str(meta["fingerprint"]),
                        int(meta["image_size"]), meta.get("threshold"), str(meta.get("threshold_source", "")),
                        str(meta.get("mode", "mean")))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as e:
            # truncated, empty or non-zip files fail in numpy's or zipfile's own ways: one message for all
            raise GalleryError(f"{p} is not a facelib gallery ({type(e).__name__}: {e})") from None
        if g.embeddings.ndim != 2 or len(g.labels) != len(g.embeddings) or len(g.counts) != len(g.names):
            raise GalleryError(f"{p} is not a facelib gallery (inconsistent array shapes)")
        return g

    def check_model(self, fingerprint: str, what: str = "this checkpoint") -> None:
        """:class:`GalleryError` unless the gallery was made by the model with ``fingerprint``."""
        if fingerprint != self.fingerprint:
            raise GalleryError(
                f"the gallery was enrolled with another model (fingerprint {self.fingerprint}, {what} "
                f"{fingerprint}): its embeddings cannot be compared; re-run `facelib enroll` with this checkpoint"
            )


def threshold_from_metrics(path: str | os.PathLike, fingerprint: str | None = None) -> tuple[float, str]:
    """``(threshold, source)`` from a ``metrics.json`` written by ``facelib test``.

    Raises :class:`DataError` if the file is missing or has no threshold, and :class:`GalleryError`
    if it was measured on another model than ``fingerprint``.
    """
    p = Path(path)
    try:
        m = json.loads(p.read_text())
    except FileNotFoundError:
        raise DataError(f"metrics file not found: {p} (run `facelib test` first, or give a threshold)",
                        fields=("threshold",)) from None
    except (OSError, ValueError) as e:
        raise DataError(f"{p} is not a readable metrics.json ({type(e).__name__})") from None
    t = m.get("threshold") if isinstance(m, dict) else None
    if not isinstance(t, dict) or not isinstance(t.get("value"), (int, float)):
        raise DataError(f"{p} has no decision threshold (made by an older `facelib test`?); give a threshold",
                        fields=("threshold",))
    other = (m.get("model") or {}).get("fingerprint")
    if fingerprint is not None and other is not None and other != fingerprint:
        raise GalleryError(f"{p} was measured on another model (fingerprint {other}, this checkpoint {fingerprint})")
    return float(t["value"]), f"{p}: FAR {t.get('far', float('nan')):.4g} at target {t.get('target_far')}"


def build_gallery(embeddings, identities: Sequence[str], fingerprint: str, image_size: int, mode: str = "mean",
                  threshold: float | None = None, threshold_source: str = "") -> Gallery:
    """A :class:`Gallery` from clean-photo embeddings [N, D] and their identities [N]."""
    from facelib.evaluation.metrics import l2_normalize

    if mode not in ENROLL_MODES:
        raise ValueError(f"mode must be one of {ENROLL_MODES}, got {mode!r}")
    e = l2_normalize(embeddings)
    ids = np.asarray(identities, dtype=str)
    if len(e) == 0 or len(ids) != len(e):
        raise DataError(f"nothing to enrol ({len(e)} embeddings, {len(ids)} identities)")
    names, labels = np.unique(ids, return_inverse=True)
    counts = np.bincount(labels, minlength=len(names))
    if mode == "mean":
        sums = np.zeros((len(names), e.shape[1]), np.float64)
        np.add.at(sums, labels, e.astype(np.float64))
        e, labels = l2_normalize(sums), np.arange(len(names))
    return Gallery(names, e, labels.astype(np.int64), counts, fingerprint, int(image_size),
                   None if threshold is None else float(threshold), threshold_source, mode)


@dataclass
class Match:
    """What :func:`identify` says about one photo: ``identity`` is ``None`` below the threshold."""

    path: str
    identity: str | None
    score: float
    top: list[tuple[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"top": [[n, s] for n, s in self.top]}


def identify(gallery: Gallery, embeddings, paths: Sequence[str], top_k: int = 1,
             threshold: float | None = None, backend: str = "auto") -> list[Match]:
    """Best identities for each photo embedding [N, D] (``threshold`` overrides the gallery's)."""
    from facelib.evaluation.retrieval import topk_labels

    t = gallery.threshold if threshold is None else float(threshold)
    s, lab, _ = topk_labels(embeddings, gallery.embeddings, gallery.labels, max(1, int(top_k)), backend=backend)
    out = []
    for path, row_s, row_l in zip(paths, s, lab):
        top = [(str(gallery.names[c]), float(v)) for c, v in zip(row_l, row_s) if c >= 0]
        best = top[0][1] if top else float("-inf")
        name = top[0][0] if top and (t is None or best >= t) else None
        out.append(Match(str(path), name, best, top))
    return out


def image_paths(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Usable image files among ``inputs`` (files, or folders searched recursively, sorted) and the
    skipped ones as ``(path, reason)``. :class:`DataError` if an input does not exist."""
    from facelib.data.folders import IMAGE_EXTENSIONS, check_image

    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(f for f in item.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
                            and not f.name.startswith("."))
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"not found: {item}")
    good, skipped = [], []
    for f in files:
        why = check_image(f)
        (skipped.append((str(f), why)) if why else good.append(f))
    return good, skipped
