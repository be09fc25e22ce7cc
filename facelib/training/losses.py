"""Triplet loss on mined index triplets, margin-softmax losses (ArcFace, CosFace), pairwise distances,
and a collapse diagnostic.

The loss takes embeddings and ``(a, p, n)`` index tensors from a miner
(:mod:`facelib.training.miners`), as in pytorch-metric-learning: mining and loss stay separate.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facelib.config import DISTANCES

REDUCTIONS: tuple[str, ...] = ("mean", "mean_active", "none")
ACTIVE_EPS = 1e-12


def _check_distance(distance: str) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; choose one of {', '.join(DISTANCES)}")


def pairwise_distances(embeddings: Tensor, distance: str = "euclidean") -> Tensor:
    """All pairwise distances of ``embeddings`` [B, D]: [B, B], zero diagonal.

    ``"euclidean"``: ``||x_i - x_j||`` via the Gram matrix, clamped at 0, with a
    gradient-safe square root (zero gradient, not NaN, where the distance is 0, e.g. on
    the diagonal or for duplicate embeddings). ``"cosine"``: ``1 - cos(x_i, x_j)`` in [0, 2].
    Computed with autocast off, in float32 for half-precision input (the Gram-matrix form
    cancels badly in 16-bit), so it is safe to call inside an autocast region.
    """
    _check_distance(distance)
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be [B, D], got shape {tuple(embeddings.shape)}")
    if embeddings.dtype in (torch.float16, torch.bfloat16):
        embeddings = embeddings.float()
    with torch.autocast(embeddings.device.type, enabled=False):
        return _pairwise(embeddings, distance)


def _pairwise(embeddings: Tensor, distance: str) -> Tensor:
    b = embeddings.shape[0]
    eye = torch.eye(b, dtype=torch.bool, device=embeddings.device)
    if distance == "cosine":
        x = F.normalize(embeddings, dim=1)
        return (1.0 - x @ x.T).clamp(0.0, 2.0).masked_fill(eye, 0.0)
    sq = embeddings.pow(2).sum(dim=1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * embeddings @ embeddings.T).clamp_min(0.0)
    d2 = d2.masked_fill(eye, 0.0)
    zero = d2 == 0
    # sqrt has an infinite derivative at 0: evaluate it at 1 there, then zero the value.
    return torch.sqrt(torch.where(zero, torch.ones_like(d2), d2)).masked_fill(zero, 0.0)


class TripletLoss(nn.Module):
    """Triplet loss over index triplets.

    Per triplet: ``relu(d(a,p) - d(a,n) + margin)``, or ``softplus(d(a,p) - d(a,n))`` when
    ``soft`` (Hermans et al. 2017; ``margin`` unused). Reduction ``"mean"``: over all
    triplets; ``"mean_active"``: over triplets with loss > 1e-12 (batch-all style; easy
    triplets do not dilute the gradient), 0 when none is active; ``"none"``: the per-triplet
    losses [T] (for inspection and teaching).

    ``forward(embeddings [B, D], a [T], p [T], n [T]) -> (loss, stats)``; ``stats`` holds
    detached 0-d tensors ``active_fraction``, ``pos_dist``, ``neg_dist`` (means over the
    triplets) and the int ``n_triplets`` (tensors, so a training step on a GPU never waits for
    the host; ``float()`` them to print). With no triplet the loss is a 0 still attached to
    the graph and all stats are 0 (never NaN).
    """

    def __init__(
        self,
        margin: float = 0.2,
        distance: str = "euclidean",
        soft: bool = False,
        reduction: str = "mean_active",
    ):
        super().__init__()
        _check_distance(distance)
        if reduction not in REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; choose one of {', '.join(REDUCTIONS)}")
        self.margin = float(margin)
        self.distance = distance
        self.soft = bool(soft)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"margin={self.margin}, distance={self.distance!r}, soft={self.soft}, reduction={self.reduction!r}"

    def forward(self, embeddings: Tensor, a: Tensor, p: Tensor, n: Tensor) -> tuple[Tensor, dict[str, float]]:
        if not (a.shape == p.shape == n.shape) or a.dim() != 1:
            raise ValueError(f"a, p, n must be 1-D of equal length, got {a.shape}, {p.shape}, {n.shape}")
        t = a.numel()
        if t == 0:
            zero = embeddings.sum() * 0.0
            z = zero.detach()
            if self.reduction == "none":
                zero = zero.expand(0)
            return zero, {"active_fraction": z, "pos_dist": z, "neg_dist": z, "n_triplets": 0}
        dist = pairwise_distances(embeddings, self.distance)
        d_ap = dist[a, p]
        d_an = dist[a, n]
        if self.soft:
            per = F.softplus(d_ap - d_an)
        else:
            per = F.relu(d_ap - d_an + self.margin)
        active = per > ACTIVE_EPS
        if self.reduction == "none":
            loss = per
        elif self.reduction == "mean":
            loss = per.mean()
        else:
            loss = per.sum() / active.sum().clamp_min(1)
        stats = {"active_fraction": active.float().mean(), "pos_dist": d_ap.detach().mean(),
                 "neg_dist": d_an.detach().mean(), "n_triplets": int(t)}
        return loss, stats


MARGIN_DEFAULTS = {"arcface": 0.5, "cosface": 0.35}


class MarginSoftmaxLoss(nn.Module):
    """ArcFace (Deng et al. 2019, arXiv 1801.07698) or CosFace (Wang et al. 2018, arXiv 1801.09414):
    a softmax over the training identities with L2-normalised class weights ``W`` [C, D].

    With ``cos_j = <x, W_j>`` for a unit embedding ``x``, the target class logit is
    ``s * cos(theta_y + m)`` (arcface) or ``s * (cos_y - m)`` (cosface); the others ``s * cos_j``.
    The class weights exist for training only: the embedder is used without them.
    ``forward(embeddings [B, D] (unit norm), labels [B] in [0, C)) -> (loss, stats)``; stats:
    detached 0-d tensor ``accuracy`` (argmax of the unmargined logits).
    """

    def __init__(self, num_classes: int, embedding_dim: int, kind: str = "arcface", margin: float | None = None,
                 scale: float = 30.0):
        super().__init__()
        if kind not in MARGIN_DEFAULTS:
            raise ValueError(f"unknown margin softmax {kind!r}; choose one of {', '.join(MARGIN_DEFAULTS)}")
        self.kind = kind
        self.margin = float(MARGIN_DEFAULTS[kind] if margin is None else margin)
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.randn(num_classes, embedding_dim) * 0.01)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, classes={self.weight.shape[0]}, margin={self.margin}, scale={self.scale}"

    def forward(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        cos = F.normalize(embeddings.float(), dim=1) @ F.normalize(self.weight, dim=1).T  # [B, C]
        target = cos.gather(1, labels[:, None])
        if self.kind == "arcface":
            theta = torch.acos(target.clamp(-1 + 1e-7, 1 - 1e-7))
            # past theta + m = pi, cos(theta + m) would rise again: fall back to CosFace's form there
            # (as insightface's reference code does), keeping the target logit monotone in theta.
            margined = torch.where(theta + self.margin < math.pi, torch.cos(theta + self.margin),
                                   target - self.margin * math.sin(self.margin))
        else:
            margined = target - self.margin
        logits = self.scale * cos.scatter(1, labels[:, None], margined)
        loss = F.cross_entropy(logits, labels)
        return loss, {"accuracy": (cos.detach().argmax(1) == labels).float().mean()}


@torch.no_grad()
def embedding_spread(embeddings: Tensor) -> Tensor:
    """Collapse diagnostic: RMS distance of the embeddings [B, D] to their centroid.

    ``sqrt(sum_d var_d)`` (population variance per dimension). For L2-normalised embeddings
    it equals ``sqrt(1 - ||mean||^2)`` in [0, 1]: ~1 when spread over the sphere, ~0 when
    collapsed to one point (the failure mode of triplet training that a flat loss at
    ``margin`` reveals). A 0-d tensor on the embeddings' device (no host sync); 0 for fewer
    than 2 embeddings.
    """
    x = embeddings.detach().float()
    if x.dim() != 2 or x.shape[0] < 2:
        return x.new_zeros(())
    return x.var(dim=0, unbiased=False).sum().sqrt()
