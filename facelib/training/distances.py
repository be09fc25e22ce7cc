"""Pairwise distances of a batch of embeddings, shared by the miners and the losses (as pytorch-metric-learning's
``distances/``): :func:`pairwise_distances` by name, :data:`DISTANCE_TABLE` mapping the names of
:data:`facelib.config.DISTANCES` to the functions.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from facelib.config import DISTANCES


def _eye(b: int, device: torch.device) -> Tensor:
    return torch.eye(b, dtype=torch.bool, device=device)


def euclidean_distances(x: Tensor) -> Tensor:
    """``||x_i - x_j||`` of ``x`` [B, D] in float32: [B, B], zero diagonal. Via the Gram matrix, clamped at 0, with a
    gradient-safe square root (zero gradient, not NaN, where the distance is 0: the diagonal, duplicates)."""
    sq = x.pow(2).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * x @ x.T).clamp_min(0.0)
    d2 = d2.masked_fill(_eye(x.shape[0], x.device), 0.0)
    zero = d2 == 0
    # sqrt has an infinite derivative at 0: evaluate it at 1 there, then zero the value.
    return torch.sqrt(torch.where(zero, torch.ones_like(d2), d2)).masked_fill(zero, 0.0)


def cosine_distances(x: Tensor) -> Tensor:
    """``1 - cos(x_i, x_j)`` of ``x`` [B, D]: [B, B] in [0, 2], zero diagonal."""
    x = F.normalize(x, dim=1)
    return (1.0 - x @ x.T).clamp(0.0, 2.0).masked_fill(_eye(x.shape[0], x.device), 0.0)


# the names come from facelib.config.DISTANCES (the CLI's choices); the order is theirs
DISTANCE_TABLE: dict[str, Callable[[Tensor], Tensor]] = dict(
    zip(DISTANCES, (euclidean_distances, cosine_distances), strict=True))


def check_distance(distance: str) -> None:
    """``ValueError`` listing the names unless ``distance`` is one of :data:`facelib.config.DISTANCES`."""
    if distance not in DISTANCE_TABLE:
        raise ValueError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")


def pairwise_distances(embeddings: Tensor, distance: str = "euclidean") -> Tensor:
    """All pairwise distances of ``embeddings`` [B, D]: [B, B], zero diagonal (:data:`DISTANCE_TABLE`).

    Computed with autocast off, in float32 for half-precision input (the Gram-matrix form cancels badly in
    16-bit), so it is safe to call inside an autocast region.
    """
    check_distance(distance)
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be [B, D], got shape {tuple(embeddings.shape)}")
    if embeddings.dtype in (torch.float16, torch.bfloat16):
        embeddings = embeddings.float()
    with torch.autocast(embeddings.device.type, enabled=False):
        return DISTANCE_TABLE[distance](embeddings)
