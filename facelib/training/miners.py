"""In-batch triplet miners: ``(embeddings [B, D], labels [B]) -> (a, p, n)`` index tensors.

As in pytorch-metric-learning's ``BaseMiner``, :class:`Miner` does the shared work once under
``torch.no_grad``: it checks the shapes, builds one [B, B] distance matrix
(:func:`facelib.training.distances.pairwise_distances`) with the positive and negative masks, returns empty
triplets when no anchor has both a positive and a negative, and checks the output. Each miner writes only
:meth:`Miner.mine`, vectorised. The result is three LongTensors of equal length on ``embeddings.device``. A
valid triplet has ``labels[a] == labels[p]``, ``a != p`` and ``labels[n] != labels[a]``. The triplets are then
scored by :class:`facelib.training.losses.TripletLoss`
(:class:`facelib.training.losses.MinedTripletLoss` mines and scores them in one call).

The miners' names are :data:`facelib.config.MINERS`; :data:`MINER_TABLE` maps them to the miners.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from facelib.config import MINERS, TRIPLET_MARGIN
from facelib.training.distances import pairwise_distances

Triplets = tuple[Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class MiningBatch:
    """What every miner starts from: distances [B, B], positive mask [B, B] (same label, off-diagonal),
    negative mask [B, B], and the anchors [A] that have both a positive and a negative."""

    dist: Tensor
    pos: Tensor
    neg: Tensor
    anchors: Tensor


class Miner:
    """``miner(embeddings [B, D], labels [B], *, margin, distance, generator) -> (a, p, n)``.

    Subclasses implement :meth:`mine`; ``margin`` is used by the miners that say so, ``generator``
    by the random one.
    """

    @torch.no_grad()
    def __call__(self, embeddings: Tensor, labels: Tensor, *, margin: float = TRIPLET_MARGIN,
                 distance: str = "euclidean", generator: torch.Generator | None = None) -> Triplets:
        if embeddings.dim() != 2:
            raise ValueError(f"embeddings must be [B, D], got shape {tuple(embeddings.shape)}")
        labels = torch.as_tensor(labels, device=embeddings.device).reshape(-1)
        if labels.numel() != embeddings.shape[0]:
            raise ValueError(f"{labels.numel()} labels for {embeddings.shape[0]} embeddings")
        dist = pairwise_distances(embeddings.detach(), distance)
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(labels.numel(), dtype=torch.bool, device=embeddings.device)
        pos, neg = same & ~eye, ~same
        anchors = torch.nonzero(pos.any(1) & neg.any(1)).flatten()
        if anchors.numel() == 0:
            e = torch.empty(0, dtype=torch.long, device=embeddings.device)
            return e, e.clone(), e.clone()
        a, p, n = self.mine(MiningBatch(dist, pos, neg, anchors), margin=margin, generator=generator)
        if not (a.shape == p.shape == n.shape and a.dtype == torch.long):
            raise RuntimeError(f"{type(self).__name__}.mine must return three equal-length LongTensors")
        return a, p, n

    def mine(self, batch: MiningBatch, *, margin: float, generator: torch.Generator | None) -> Triplets:
        raise NotImplementedError


class RandomMiner(Miner):
    """One triplet per anchor that has a positive and a negative in the batch: a uniformly random
    positive and a uniformly random negative (the seed recipe's choice, in-batch). ``margin`` and the
    distances are unused. Length <= B."""

    def mine(self, batch: MiningBatch, *, margin: float, generator: torch.Generator | None) -> Triplets:
        b, device = batch.dist.shape[0], batch.dist.device
        noise = torch.rand((2, b, b), generator=generator,
                           device=generator.device if generator is not None else device).to(device)
        # argmax of uniform noise restricted to the mask = a uniform choice within the mask
        p = noise[0].masked_fill(~batch.pos, -1.0).argmax(dim=1)
        n = noise[1].masked_fill(~batch.neg, -1.0).argmax(dim=1)
        return batch.anchors, p[batch.anchors], n[batch.anchors]


class BatchAllMiner(Miner):
    """Every valid triplet, sorted by (a, p, n). ``margin`` is unused: easy triplets are kept and the
    loss's ``"mean_active"`` reduction averages over the active ones.
    Length = sum over anchors of (#positives x #negatives), e.g. P*K*(K-1)*(P-1)*K."""

    def mine(self, batch: MiningBatch, *, margin: float, generator: torch.Generator | None) -> Triplets:
        a, p = torch.nonzero(batch.pos, as_tuple=True)
        row, n = torch.nonzero(batch.neg[a], as_tuple=True)  # [M, B] negatives of each positive pair
        return a[row], p[row], n


class BatchHardMiner(Miner):
    """Batch-hard (Hermans et al. 2017): one triplet per anchor that has a positive and a negative, with
    its farthest positive (max d_ap) and nearest negative (min d_an). Ties go to the lowest index.
    ``margin`` is unused. Length <= B."""

    def mine(self, batch: MiningBatch, *, margin: float, generator: torch.Generator | None) -> Triplets:
        p = batch.dist.masked_fill(~batch.pos, float("-inf")).argmax(dim=1)
        n = batch.dist.masked_fill(~batch.neg, float("inf")).argmin(dim=1)
        return batch.anchors, p[batch.anchors], n[batch.anchors]


class SemiHardMiner(Miner):
    """Semi-hard (FaceNet, Schroff et al. 2015): for every positive pair (a, p), the hardest negative
    among the semi-hard ones, ``d_ap < d_an < d_ap + margin`` (smallest d_an; ties to the lowest index).
    Pairs without a semi-hard negative are dropped (no fallback), so the result can be empty once the
    model separates the batch by the margin. Length <= number of positive pairs."""

    def mine(self, batch: MiningBatch, *, margin: float, generator: torch.Generator | None) -> Triplets:
        a, p = torch.nonzero(batch.pos, as_tuple=True)
        d_ap = batch.dist[a, p][:, None]  # [M, 1]
        d_an = batch.dist[a]  # [M, B]
        ok = batch.neg[a] & (d_an > d_ap) & (d_an < d_ap + margin)
        n = d_an.masked_fill(~ok, float("inf")).argmin(dim=1)
        keep = ok.any(dim=1)
        return a[keep], p[keep], n[keep]


random_triplets = RandomMiner()
batch_all = BatchAllMiner()
batch_hard = BatchHardMiner()
semi_hard = SemiHardMiner()

# the names come from facelib.config.MINERS (the CLI's and the widgets' choices); the order is theirs
MINER_TABLE: dict[str, Miner] = dict(zip(MINERS, (random_triplets, batch_all, batch_hard, semi_hard), strict=True))


def get_miner(name: str) -> Miner:
    """The miner called ``name``; ``ValueError`` listing the names otherwise."""
    try:
        return MINER_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown miner {name!r}; choose one of {', '.join(MINERS)}") from None
