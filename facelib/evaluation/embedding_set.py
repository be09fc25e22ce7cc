"""``EmbeddingSet``: embeddings [N, D] with the per-image facts the protocols need, and its ``.npz`` file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facelib.io import atomic_path

__all__ = ["EmbeddingSet"]


def _str_array(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray) and x.dtype.kind == "U":
        return x
    return np.array([str(v) for v in x], dtype=str) if len(x) else np.zeros(0, dtype="<U1")


@dataclass
class EmbeddingSet:
    """Embeddings with the per-image facts every protocol needs.

    Attributes:
        embeddings: [N, D] float32, L2-normalised rows.
        identities: [N] str.
        photos: [N] str source-photo id (``identity/stem``), shared by a clean image and its distortions.
        distortions: [N] str, ``""`` for a clean image, else the kind (``"foggy"``...).
        paths: [N] str image paths.
    """

    embeddings: np.ndarray
    identities: np.ndarray
    photos: np.ndarray
    distortions: np.ndarray
    paths: np.ndarray

    def __post_init__(self) -> None:
        e = self.embeddings
        if hasattr(e, "detach"):
            e = e.detach().cpu().numpy()
        self.embeddings = np.asarray(e, dtype=np.float32)
        if self.embeddings.ndim != 2:
            raise ValueError(f"embeddings must be [N, D], got shape {self.embeddings.shape}")
        n = len(self.embeddings)
        for name in ("identities", "photos", "distortions", "paths"):
            arr = _str_array(getattr(self, name))
            if len(arr) != n:
                raise ValueError(f"{name} has {len(arr)} entries for {n} embeddings")
            setattr(self, name, arr)

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def clean_mask(self) -> np.ndarray:
        """[N] bool, true for clean (undistorted) images."""
        return self.distortions == ""

    @property
    def identity_names(self) -> list[str]:
        """Sorted distinct identities."""
        return sorted(set(self.identities.tolist()))

    def subset(self, mask) -> "EmbeddingSet":
        """The rows selected by a [N] bool mask or an integer index array."""
        m = np.asarray(mask)
        return EmbeddingSet(
            self.embeddings[m], self.identities[m], self.photos[m], self.distortions[m], self.paths[m]
        )

    @classmethod
    def from_samples(cls, embeddings, samples: Sequence) -> "EmbeddingSet":
        """Build from embeddings [N, D] and ``facelib.data.folders.Sample`` objects in the same order."""
        return cls(
            embeddings,
            [s.identity for s in samples],
            [s.photo for s in samples],
            [s.distortion for s in samples],
            [str(s.path) for s in samples],
        )

    def to_npz(self, path: str | os.PathLike) -> Path:
        """Save atomically to ``path`` (exactly that name; keys: embeddings, paths, identities, distortions, photos)."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:  # a file object: numpy must not append ".npz" to the temp name
                np.savez(
                    f,
                    embeddings=self.embeddings,
                    paths=self.paths,
                    identities=self.identities,
                    distortions=self.distortions,
                    photos=self.photos,
                )
        return Path(path)

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> "EmbeddingSet":
        """Load a file written by :meth:`to_npz` (``path`` or ``path + '.npz'``)."""
        p = Path(path)
        if not p.exists() and Path(str(p) + ".npz").exists():
            p = Path(str(p) + ".npz")
        with np.load(p, allow_pickle=False) as z:
            missing = {"embeddings", "paths", "identities", "distortions", "photos"} - set(z.files)
            if missing:
                raise ValueError(f"{p}: not an EmbeddingSet file (missing {sorted(missing)})")
            return cls(z["embeddings"], z["identities"], z["photos"], z["distortions"], z["paths"])
