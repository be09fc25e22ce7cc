"""No-learning baselines: what a trivial matcher scores."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from facelib.data import load_image

__all__ = ["pixel_embeddings"]


def _pixels(path: Path, size: int, grayscale: bool) -> np.ndarray:
    img = load_image(path)
    if grayscale:
        img = img.convert("L")
    img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32).reshape(-1)


def pixel_embeddings(
    paths: Sequence[Path], size: int = 32, grayscale: bool = True, workers: int | None = None
) -> np.ndarray:
    """Raw-pixel embeddings: [N, size*size] (or [N, size*size*3] in colour) float32.

    Each image is loaded as RGB (any mode), optionally made grey, resized to
    ``size x size``, flattened, mean-centred and L2-normalised, so a dot product is the
    pixel cosine (Pearson correlation). A constant image has zero norm and stays all zeros.
    """
    dim = size * size * (1 if grayscale else 3)
    if len(paths) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        rows = list(pool.map(lambda p: _pixels(Path(p), size, grayscale), paths))
    x = np.stack(rows).astype(np.float32)
    x -= x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norm, out=x, where=norm > 1e-6)
    x[(norm <= 1e-6)[:, 0]] = 0.0
    return x
