"""In-batch triplet miners: ``(embeddings [B, D], labels [B]) -> (a, p, n)`` index tensors.

Every miner works under ``torch.no_grad`` from one [B, B] distance matrix
(:func:`facelib.training.losses.pairwise_distances`), vectorised, and returns three LongTensors of
equal length on ``embeddings.device`` (empty when the batch has no valid triplet). A valid
triplet has ``labels[a] == labels[p]``, ``a != p`` and ``labels[n] != labels[a]``. The
triplets are then scored by :class:`facelib.training.losses.TripletLoss`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .losses import pairwise_distances

Triplets = tuple[Tensor, Tensor, Tensor]
Miner = Callable[..., Triplets]


def _prepare(embeddings: Tensor, labels: Tensor, distance: str) -> tuple[Tensor, Tensor, Tensor]:
    """Distances [B, B], positive mask [B, B] (same label, off-diagonal), negative mask [B, B]."""
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be [B, D], got shape {tuple(embeddings.shape)}")
    labels = torch.as_tensor(labels, device=embeddings.device).reshape(-1)
    if labels.numel() != embeddings.shape[0]:
        raise ValueError(f"{labels.numel()} labels for {embeddings.shape[0]} embeddings")
    dist = pairwise_distances(embeddings.detach(), distance)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.numel(), dtype=torch.bool, device=embeddings.device)
    return dist, same & ~eye, ~same


def _empty(device: torch.device) -> Triplets:
    e = torch.empty(0, dtype=torch.long, device=device)
    return e, e.clone(), e.clone()


@torch.no_grad()
def random_triplets(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.2,
    distance: str = "euclidean",
    generator: torch.Generator | None = None,
) -> Triplets:
    """One triplet per anchor that has a positive and a negative in the batch: a uniformly
    random positive and a uniformly random negative (the seed recipe's choice, in-batch).
    ``margin`` and the distances are unused. Length <= B."""
    dist, pos, neg = _prepare(embeddings, labels, distance)
    b = dist.shape[0]
    anchors = torch.nonzero(pos.any(1) & neg.any(1)).flatten()
    if anchors.numel() == 0:
        return _empty(embeddings.device)
    dev = generator.device if generator is not None else embeddings.device
    noise = torch.rand((2, b, b), generator=generator, device=dev).to(embeddings.device)
    # argmax of uniform noise restricted to the mask = a uniform choice within the mask
    p = noise[0].masked_fill(~pos, -1.0).argmax(dim=1)
    n = noise[1].masked_fill(~neg, -1.0).argmax(dim=1)
    return anchors, p[anchors], n[anchors]


@torch.no_grad()
def batch_all(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.2,
    distance: str = "euclidean",
    generator: torch.Generator | None = None,
) -> Triplets:
    """Every valid triplet, sorted by (a, p, n). ``margin`` is unused: easy triplets are kept
    and the loss's ``"mean_active"`` reduction averages over the active ones.
    Length = sum over anchors of (#positives x #negatives), e.g. P*K*(K-1)*(P-1)*K."""
    dist, pos, neg = _prepare(embeddings, labels, distance)
    a, p = torch.nonzero(pos, as_tuple=True)
    if a.numel() == 0:
        return _empty(embeddings.device)
    row, n = torch.nonzero(neg[a], as_tuple=True)  # [M, B] negatives of each positive pair
    return a[row], p[row], n


@torch.no_grad()
def batch_hard(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.2,
    distance: str = "euclidean",
    generator: torch.Generator | None = None,
) -> Triplets:
    """Batch-hard (Hermans et al. 2017): one triplet per anchor that has a positive and a
    negative, with its farthest positive (max d_ap) and nearest negative (min d_an).
    Ties go to the lowest index. ``margin`` is unused. Length <= B."""
    dist, pos, neg = _prepare(embeddings, labels, distance)
    anchors = torch.nonzero(pos.any(1) & neg.any(1)).flatten()
    if anchors.numel() == 0:
        return _empty(embeddings.device)
    p = dist.masked_fill(~pos, float("-inf")).argmax(dim=1)
    n = dist.masked_fill(~neg, float("inf")).argmin(dim=1)
    return anchors, p[anchors], n[anchors]


@torch.no_grad()
def semi_hard(
    embeddings: Tensor,
    labels: Tensor,
    *,
    margin: float = 0.2,
    distance: str = "euclidean",
    generator: torch.Generator | None = None,
) -> Triplets:
    """Semi-hard (FaceNet, Schroff et al. 2015): for every positive pair (a, p), the hardest
    negative among the semi-hard ones, ``d_ap < d_an < d_ap + margin`` (smallest d_an; ties
    to the lowest index). Pairs without a semi-hard negative are dropped (no fallback), so
    the result can be empty once the model separates the batch by the margin.
    Length <= number of positive pairs."""
    dist, pos, neg = _prepare(embeddings, labels, distance)
    a, p = torch.nonzero(pos, as_tuple=True)
    if a.numel() == 0:
        return _empty(embeddings.device)
    d_ap = dist[a, p][:, None]  # [M, 1]
    d_an = dist[a]  # [M, B]
    ok = neg[a] & (d_an > d_ap) & (d_an < d_ap + margin)
    n = d_an.masked_fill(~ok, float("inf")).argmin(dim=1)
    keep = ok.any(dim=1)
    return a[keep], p[keep], n[keep]


MINERS: dict[str, Miner] = {
    "random": random_triplets,
    "batch_all": batch_all,
    "batch_hard": batch_hard,
    "semi_hard": semi_hard,
}


def get_miner(name: str) -> Miner:
    """The miner called ``name``; ``ValueError`` listing the names otherwise."""
    try:
        return MINERS[name]
    except KeyError:
        raise ValueError(f"unknown miner {name!r}; choose one of {', '.join(MINERS)}") from None
