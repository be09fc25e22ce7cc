"""No-learning baselines: what a trivial matcher scores."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from PIL import Image

from facelib.data.folders import load_image
from facelib.data.framing import FaceCrop

if TYPE_CHECKING:
    from facelib.evaluation.embedding_set import EmbeddingSet
    from facelib.evaluation.results import Result

__all__ = ["pixel_embeddings", "pixel_embedding_set", "pixel_baseline"]


def _pixels(path: Path, size: int, grayscale: bool, face_crop: float = 1.0) -> np.ndarray:
    img = load_image(path)
    if face_crop < 1.0:
        img = FaceCrop(face_crop)(img)
    if grayscale:
        img = img.convert("L")
    img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32).reshape(-1)


def pixel_embeddings(
    paths: Sequence[Path], size: int = 32, grayscale: bool = True, workers: int | None = None,
    face_crop: float = 1.0,
) -> np.ndarray:
    """Raw-pixel embeddings: [N, size*size] (or [N, size*size*3] in colour) float32.

    Each image is loaded as RGB (any mode), cropped to its central ``face_crop`` of the side (as a model
    with that framing sees it; 1: the whole frame), optionally made grey, resized to
    ``size x size``, flattened, mean-centred and L2-normalised, so a dot product is the
    pixel cosine (Pearson correlation). A constant image has zero norm and stays all zeros.
    """
    dim = size * size * (1 if grayscale else 3)
    if len(paths) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        rows = list(pool.map(lambda p: _pixels(Path(p), size, grayscale, face_crop), paths))
    x = np.stack(rows).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norm, out=x, where=norm > 1e-6)
    x[(norm <= 1e-6)[:, 0]] = 0.0
    return x


_PIXEL_CACHE: dict[tuple, np.ndarray] = {}


def _cached_pixels(paths: Sequence[str], size: int, face_crop: float = 1.0) -> np.ndarray:
    """Several protocols on one folder decode it once (the last 4 folders are kept)."""
    key = (size, face_crop, hash(tuple(paths)), len(paths))
    if key not in _PIXEL_CACHE:
        while len(_PIXEL_CACHE) >= 4:
            _PIXEL_CACHE.pop(next(iter(_PIXEL_CACHE)))
        _PIXEL_CACHE[key] = pixel_embeddings(list(paths), size=size, face_crop=face_crop)
    return _PIXEL_CACHE[key]


def pixel_embedding_set(
    s: "EmbeddingSet", size: int = 32, embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    face_crop: float = 1.0,
) -> "EmbeddingSet":
    """``s`` with its embeddings replaced by L2-normalised pixel embeddings of its images, framed by
    ``face_crop`` (or by ``embed(paths) -> [N, D]``); identities, photos and distortions unchanged."""
    from facelib.evaluation.metrics import l2_normalize

    fn = embed if embed is not None else (lambda paths: _cached_pixels(paths, size, face_crop))
    return replace(s, embeddings=l2_normalize(fn(s.paths.tolist())))


def pixel_baseline(
    name: str,
    probes: "EmbeddingSet",
    train: "EmbeddingSet | None" = None,
    gallery: str = "mean",
    size: int = 32,
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    face_crop: float = 1.0,
    **kw: Any,
) -> "Result":
    """The protocol ``name`` (see :func:`facelib.evaluation.protocols.run_protocol`) on pixel embeddings.

    ``embed`` (paths -> [N, D]) replaces the pixel embedder, e.g. in tests. ``face_crop`` frames the
    images as a model with that crop sees them. The result's ``embedding`` says which (``"pixel32"``,
    ``"pixel32-crop0.55"`` or ``"custom"``).
    """
    from facelib.evaluation.protocols import run_protocol

    label = "custom" if embed is not None else f"pixel{size}" + (f"-crop{face_crop:g}" if face_crop < 1 else "")

    def pix(s: "EmbeddingSet") -> "EmbeddingSet":
        return pixel_embedding_set(s, size, embed, face_crop)

    out = run_protocol(name, pix(probes), pix(train) if train is not None else None, gallery=gallery, **kw)
    out.embedding = label
    return out
