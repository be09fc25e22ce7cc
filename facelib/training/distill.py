"""The distillation term: the student's embedding of a photo, or of any of its copies (real or made
distortions), pulled towards the teacher's embedding of the clean photo (:mod:`facelib.training.teachers`).

Four forms and two sums, all leaving the student its own embedding size (:data:`facelib.config.DISTILL_FORMS`):

* ``projection``: a linear map student [D] -> teacher [T], trained with the student and dropped from the
  checkpoint (as ArcFace's class weights are); loss ``1 - cos(W s, t)`` per row (FitNets-style hint, Romero
  et al. 2015, on the embedding).
* ``similarity``: dimension-free: the batch's cosine-similarity matrix of the student matched to the
  teacher's, mean squared error over the off-diagonal pairs (similarity-preserving / relational KD, Tung &
  Mori 2019, Park et al. 2019).
* ``neighbours``: dimension-free: each photo's distribution over the batch's other photos, a softmax of
  cosine / :data:`NEIGHBOUR_TEMPERATURE`, matched to the teacher's (KL divergence, teacher to student; SEED, Fang
  et al. 2021; CompRess, Abbasi Koohpayegani et al. 2020). Where ``similarity`` weighs every pair alike, this
  weighs the pairs that decide who is nearest: the same person, the look-alikes.

* ``prototypes``: the teacher's people as fixed class centres: each person's prototype is the mean of the
  teacher's unit embeddings of their clean photos (:func:`facelib.training.setup.teacher_prototypes`, set by the
  trainer through :meth:`DistillLoss.set_prototypes`). Through the same map as ``projection``, the student's
  distribution over all the prototypes, a softmax of cosine / :data:`PROTOTYPE_TEMPERATURE`, is matched to the
  teacher's distribution for the clean photo (KL divergence, teacher to student). Where the batch forms compare
  a photo with 63 others, this compares it with every training person each step (ProxylessKD, Shi et al. 2020,
  uses the teacher's class centres alike; the soft targets keep the teacher's look-alikes, Hinton et al. 2015).

``projection+similarity`` sums the first two: the teacher's 128 numbers per photo through the map, and the
student's own geometry held to the teacher's (alone, the map can hold the teacher while the rest of the
embedding is left untrained, lab notes 10.2). ``projection+similarity+prototypes`` adds the third, through the
same map.

Rows without a teacher target (an unreadable clean photo, a distorted copy whose clean photo is missing) are
left out through ``mask``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from facelib.config import DISTILL_FORMS

# softmax temperature of the ``prototypes`` form: a photo's centred dlib embedding has cosine about 0.85 to its own
# person's prototype and 0 +- 0.18 to the others', so at 0.05 (scale 20) the teacher puts most of a photo's
# mass on its own person among 5,000 and the rest on the look-alikes
PROTOTYPE_TEMPERATURE = 0.05

# softmax temperature of the ``neighbours`` form: dlib's centred cosines are 0.71 +- 0.16 for two photos of one
# person and -0.01 +- 0.18 for two people (FACECOM train), so at 0.1 a photo's own person holds most of its
# teacher distribution and the hardest look-alikes (cosine 0.4-0.6) the rest; SupCon's and SEED's scale
NEIGHBOUR_TEMPERATURE = 0.1

# the parts that go through the map and need no second row in the batch
MAPPED_PARTS = frozenset({"projection", "prototypes"})


class DistillLoss(nn.Module):
    """``forward(student [B, D], teacher [B, T], mask [B] bool) -> (loss 0-d, stats)``; ``stats["teacher_cos"]``
    is the mean cosine between the mapped student and the teacher (forms with the map: ``projection``,
    ``prototypes``), else between
    the two similarity matrices' rows (``similarity``, ``neighbours``), over the rows kept. A form joined by
    ``+`` sums its parts."""

    def __init__(self, form: str, student_dim: int, teacher_dim: int):
        super().__init__()
        if form not in DISTILL_FORMS:
            raise ValueError(f"distill form must be one of {DISTILL_FORMS}, got {form!r}")
        self.form, self.parts = form, tuple(form.split("+"))
        self.rowwise = set(self.parts) <= MAPPED_PARTS  # no batch-relational part: one row is enough
        self.proj = nn.Linear(student_dim, teacher_dim, bias=False) if MAPPED_PARTS & set(self.parts) else None
        # [C, T] unit rows, rebuilt from the teacher's table at each start, so not in the checkpoint
        self.register_buffer("prototypes", torch.zeros(0, teacher_dim), persistent=False)

    def set_prototypes(self, prototypes: Tensor) -> None:
        """The ``prototypes`` form's class centres [C, T] (normalised here)."""
        self.prototypes = F.normalize(prototypes.float(), dim=1).to(self.prototypes.device)

    def forward(self, student: Tensor, teacher: Tensor, mask: Tensor | None = None) -> tuple[Tensor, dict]:
        if mask is not None:
            student, teacher = student[mask], teacher[mask]
        if student.shape[0] < (1 if self.rowwise else 2):
            zero = student.sum() * 0.0
            return zero, {"teacher_cos": zero.detach()}
        student, teacher = student.float(), F.normalize(teacher.float(), dim=1)
        loss, stats = student.new_zeros(()), {}
        if self.proj is not None:
            mapped = self.proj(student)
            cos = F.cosine_similarity(mapped, teacher, dim=1)
            stats["teacher_cos"] = cos.mean().detach()
            if "projection" in self.parts:
                loss = loss + (1.0 - cos).mean()
            if "prototypes" in self.parts:
                if not len(self.prototypes):
                    raise RuntimeError("the prototypes form needs set_prototypes() before training")
                centres = self.prototypes.T
                log_s = F.log_softmax(F.normalize(mapped, dim=1) @ centres / PROTOTYPE_TEMPERATURE, dim=1)
                log_t = F.log_softmax(teacher @ centres / PROTOTYPE_TEMPERATURE, dim=1)
                loss = loss + (log_t.exp() * (log_t - log_s)).sum(1).mean()
        if self.rowwise:
            return loss, stats
        s = F.normalize(student, dim=1)
        sim_s, sim_t = s @ s.T, teacher @ teacher.T
        off = ~torch.eye(len(s), dtype=torch.bool, device=s.device)
        if "neighbours" in self.parts:  # rows: softmax over the other photos; KL(teacher || student), mean per row
            # a photo is not its own neighbour: the diagonal gets a logit far below any cosine / 0.1 (finite, so
            # 0 * (log p_t - log p_s) stays 0 there)
            log_s = F.log_softmax((sim_s / NEIGHBOUR_TEMPERATURE).masked_fill(~off, -1e4), dim=1)
            log_t = F.log_softmax((sim_t / NEIGHBOUR_TEMPERATURE).masked_fill(~off, -1e4), dim=1)
            loss = loss + (log_t.exp() * (log_t - log_s)).masked_fill(~off, 0).sum(1).mean()
        if "similarity" in self.parts:
            loss = loss + (sim_s - sim_t).pow(2)[off].mean()
        agree = F.cosine_similarity(sim_s.masked_fill(~off, 0), sim_t.masked_fill(~off, 0), dim=1).mean()
        stats.setdefault("teacher_cos", agree.detach())
        return loss, stats
