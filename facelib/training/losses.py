"""Every training loss behind one call, as in pytorch-metric-learning:
``loss(embeddings [B, D], labels [B], indices=None) -> (loss, stats)`` (:class:`MetricLoss`), registered by name
with :func:`register_loss` (:data:`LOSS_TABLE`, whose keys are :data:`facelib.config.LOSSES`, the ``--loss``
choices). :func:`build_loss` makes the configured one, so the trainer never asks which loss it holds.

Registered: ``triplet`` (:class:`MinedTripletLoss`: :class:`TripletLoss` on the batch's own index triplets or on
those its miner finds, :mod:`facelib.training.miners`), ``arcface`` and ``cosface`` (:class:`MarginSoftmaxLoss`),
``none`` (:class:`NoLoss`: the distillation term trains alone). Also :func:`embedding_spread`, a collapse
diagnostic. The distances live in :mod:`facelib.training.distances`.
"""

from __future__ import annotations

import math
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facelib.config import CLASS_MARGINS, CLASS_SCALE, LOSSES, TRIPLET_MARGIN, TrainConfig
from facelib.training.distances import check_distance, pairwise_distances
from facelib.training.miners import Triplets, get_miner

REDUCTIONS: tuple[str, ...] = ("mean", "mean_active", "none")
ACTIVE_EPS = 1e-12
Log = Callable[[str], None]


class MetricLoss(nn.Module):
    """The one call of every training loss: ``loss(embeddings [B, D], labels [B], indices=None) -> (loss, stats)``.

    ``indices``: ``(a, p, n)`` index triplets [T] into the batch when the batch brings its own (the original
    recipe), else ``None``; a loss that scores no triplets ignores them. ``loss``: a 0-d tensor on the graph;
    ``stats``: name -> detached 0-d tensor (the trainer averages them per epoch; left on the device).

    What the trainer builds and logs for a loss, it reads here: :meth:`from_config` builds it (parameters it
    holds, e.g. class weights, train with the model); ``mines``, ``trains``, ``unit_embeddings``, ``log_stats``
    and ``generator`` below; :meth:`describe` for the log.
    """

    # draws its examples within the batch (a miner): data-parallel without ``gather``, each process then needs
    # negatives in its own share
    mines: ClassVar[bool] = False
    # False: adds no term of its own (loss none: the distillation term trains alone)
    trains: ClassVar[bool] = True
    # True: the trainer hands it L2-normalised embeddings whatever ``normalize_embeddings`` says (a loss that
    # compares on the sphere anyway: the same values and gradients)
    unit_embeddings: bool = False
    # its stats on the epoch line: (stat, format), e.g. ("accuracy", "batch acc {:.2f}")
    log_stats: ClassVar[tuple[tuple[str, str], ...]] = ()
    # its random draws (the random miner): under data-parallel training the trainer seeds it per epoch, alike on
    # every rank; None: the global generator
    generator: torch.Generator | None = None

    @classmethod
    def from_config(cls, cfg: TrainConfig, n_classes: int, log: Log) -> "MetricLoss":
        """The loss of ``cfg`` over ``n_classes`` training identities; ``log`` takes a line about what it built."""
        return cls()

    def describe(self, normalized: bool) -> str:
        """Its words on the P x K log line, given whether it sees L2-normalised embeddings ("": its name)."""
        return ""

    def forward(self, embeddings: Tensor, labels: Tensor,
                indices: Triplets | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError


LOSS_TABLE: dict[str, type[MetricLoss]] = {}


def register_loss(name: str) -> Callable[[type[MetricLoss]], type[MetricLoss]]:
    """Class decorator: ``@register_loss("contrastive")`` makes ``TrainConfig(loss="contrastive")`` (and
    ``--loss contrastive``) train with the class, built by its :meth:`MetricLoss.from_config`. A new name joins
    :data:`facelib.config.LOSSES`."""
    def wrap(cls: type[MetricLoss]) -> type[MetricLoss]:
        if not (isinstance(cls, type) and issubclass(cls, MetricLoss)):
            raise TypeError(f"loss {name!r}: register a subclass of MetricLoss, got {cls!r}")
        if LOSS_TABLE.get(name, cls) is not cls:
            raise ValueError(f"loss {name!r} is registered already ({LOSS_TABLE[name].__name__})")
        LOSS_TABLE[name] = cls
        if name not in LOSSES:
            LOSSES.append(name)
        return cls
    return wrap


def get_loss(name: str) -> type[MetricLoss]:
    """The loss class registered as ``name``; ``ValueError`` listing the names otherwise."""
    try:
        return LOSS_TABLE[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_TABLE)}") from None


def build_loss(cfg: TrainConfig, n_classes: int, log: Log) -> MetricLoss:
    """``cfg.metric_loss``'s registered class, built from ``cfg`` over ``n_classes`` training identities."""
    return get_loss(cfg.metric_loss).from_config(cfg, n_classes, log)


class TripletLoss(nn.Module):
    """Triplet loss over given index triplets (the scorer :class:`MinedTripletLoss` trains with).

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
        margin: float = TRIPLET_MARGIN,
        distance: str = "euclidean",
        soft: bool = False,
        reduction: str = "mean_active",
    ):
        super().__init__()
        check_distance(distance)
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


@register_loss("triplet")
class MinedTripletLoss(MetricLoss):
    """The triplet loss in one call: :class:`TripletLoss` on ``indices`` when the batch brings its triplets (the
    original recipe), else on those ``miner`` (a name of :data:`facelib.config.MINERS`) finds in the batch at the
    loss's margin and distance. Stats: :class:`TripletLoss`'s."""

    mines = True
    log_stats = (("active_fraction", "active {:.2f}"), ("pos_dist", "d+ {:.3f}"), ("neg_dist", "d- {:.3f}"))

    def __init__(self, miner: str = "batch_all", margin: float = TRIPLET_MARGIN, distance: str = "euclidean",
                 soft: bool = False, reduction: str = "mean_active"):
        super().__init__()
        self.miner_name, self.miner = miner, get_miner(miner)
        self.triplet = TripletLoss(margin, distance, soft, reduction)
        self.unit_embeddings = distance == "cosine"  # normalises itself

    @classmethod
    def from_config(cls, cfg: TrainConfig, n_classes: int, log: Log) -> "MinedTripletLoss":
        # the original recipe's given triplets: the mean over all (its reference, TripletMarginLoss)
        return cls(cfg.miner, cfg.margin, cfg.distance, cfg.soft_margin,
                   "mean" if cfg.sampler == "triplets" else "mean_active")

    def extra_repr(self) -> str:
        return f"miner={self.miner_name!r}"

    def describe(self, normalized: bool) -> str:
        return (f"miner {self.miner_name}, margin {self.triplet.margin}, "
                + ("on L2-normalised embeddings" if normalized else "on un-normalised embeddings / sqrt(dim)"))

    def forward(self, embeddings: Tensor, labels: Tensor,
                indices: Triplets | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        if indices is None:
            indices = self.miner(embeddings.detach(), labels, margin=self.triplet.margin,
                                 distance=self.triplet.distance, generator=self.generator)
        return self.triplet(embeddings, *indices)


@register_loss("cosface")
@register_loss("arcface")
class MarginSoftmaxLoss(MetricLoss):
    """ArcFace (Deng et al. 2019, arXiv 1801.07698) or CosFace (Wang et al. 2018, arXiv 1801.09414):
    a softmax over the training identities with L2-normalised class weights ``W`` [C, D].

    With ``cos_j = <x, W_j>`` for a unit embedding ``x``, the target class logit is
    ``s * cos(theta_y + m)`` (arcface) or ``s * (cos_y - m)`` (cosface); the others ``s * cos_j``.
    The class weights exist for training only: the embedder is used without them. ``margin`` None: the kind's
    :data:`facelib.config.CLASS_MARGINS`.
    ``forward(embeddings [B, D], labels [B] in [0, C), indices ignored) -> (loss, stats)``; stats:
    detached 0-d tensor ``accuracy`` (argmax of the unmargined logits).
    """

    unit_embeddings = True  # compares on the sphere
    log_stats = (("accuracy", "batch acc {:.2f}"),)

    def __init__(self, num_classes: int, embedding_dim: int, kind: str = "arcface", margin: float | None = None,
                 scale: float = CLASS_SCALE):
        super().__init__()
        if kind not in CLASS_MARGINS:
            raise ValueError(f"unknown margin softmax {kind!r}; choose one of {', '.join(CLASS_MARGINS)}")
        self.kind = kind
        self.margin = float(CLASS_MARGINS[kind] if margin is None else margin)
        self.scale = float(scale)
        self.weight = nn.Parameter(torch.randn(num_classes, embedding_dim) * 0.01)

    @classmethod
    def from_config(cls, cfg: TrainConfig, n_classes: int, log: Log) -> "MarginSoftmaxLoss":
        loss = cls(n_classes, cfg.embedding_dim, kind=cfg.metric_loss, margin=cfg.class_margin, scale=cfg.class_scale)
        log(f"{cfg.metric_loss} head: {n_classes} classes x {cfg.embedding_dim}, margin {loss.margin}, scale "
            f"{loss.scale} (training only, not saved in the checkpoint)")
        return loss

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, classes={self.weight.shape[0]}, margin={self.margin}, scale={self.scale}"

    def forward(self, embeddings: Tensor, labels: Tensor,
                indices: Triplets | None = None) -> tuple[Tensor, dict[str, Tensor]]:
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


@register_loss("none")
class NoLoss(MetricLoss):
    """No metric term: a 0 on the graph and no stats. Training rests on the distillation term the trainer adds
    (``TrainConfig.validate``: a teacher is set)."""

    trains = False
    unit_embeddings = True  # the distillation term sees the student on the sphere

    def forward(self, embeddings: Tensor, labels: Tensor,
                indices: Triplets | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return embeddings.sum() * 0.0, {}


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
