"""Batch construction for triplet training.

* :class:`PKSampler` -- the default (FaceNet; Hermans et al. 2017): batches of P identities
  x K images, each image embedded once, triplets mined inside the batch (:mod:`facelib.training.miners`).
* :func:`original_triplets` -- the seed recipe: random (anchor, positive, negative) index
  triplets over the whole data set, one forward pass per triplet member.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterator, Sequence

import numpy as np
import torch


class PKSampler(torch.utils.data.Sampler[list[int]]):
    """Batch sampler yielding lists of ``P*K`` dataset indices: P distinct identities x K images.

    Pass it as ``DataLoader(dataset, batch_sampler=PKSampler(...))``. Each batch is laid out
    identity by identity (K consecutive indices share a label).

    Identities:
        * identities with a single image have no positive and are never drawn as a batch
          identity; their labels are listed in :attr:`skipped_identities`;
        * the P identities of a batch are drawn uniformly *without replacement* (each identity
          equally likely, whatever its image count: FACECOM has one identity with 1,888 of
          ~11k images, which image-proportional sampling would put in most batches);
        * if fewer than ``p`` usable identities exist, P is clamped to that number with one
          warning; fewer than 2 usable identities raise ``ValueError`` (no negatives).

    Images of an identity (K per batch, all distinct when the identity has >= K images):
        * identities with fewer than K images are sampled *with replacement*: every image
          appears once and the remaining slots repeat images as evenly as possible;
        * plain mode (no ``photos``/``distortions``): K images uniformly without replacement;
        * distortion-aware mode (``photos`` and/or ``distortions`` given): a target of
          ``round(clean_fraction * K)`` clean images (``distortion == ""``) and the rest
          distorted copies (shifted to the other kind when an identity lacks enough of one);
          each slot takes an unused image whose (photo, distortion) pair has been picked the
          fewest times, then whose source photo has been picked the fewest times, ties at
          random. So a batch spreads over as many source photos as possible and never repeats
          a (photo, distortion) pair while an unused one is left; an anchor's positives are
          other photos of the identity or distorted copies, which teaches clean<->distorted
          invariance. FACECOM training folders hold ~7 distorted copies per clean photo, so
          uniform picking would give batches that are ~88% distorted and rarely pair a
          distorted anchor with a clean positive (the gallery side at test time). Half/half
          (the default) gives both directions in every identity; 0.75 won a one-seed FACECOM
          sweep but not the 3-epoch check, and lost on synthetic faces (lab notes 0.6).

    Epoch: ``batches_per_epoch`` defaults to ``ceil(n_usable_images / (P*K))`` so an epoch
    shows about as many images as the usable data set holds (images are drawn independently
    per batch, so an epoch is not an exact pass). The order is a pure function of
    ``(seed, epoch)``: call :meth:`set_epoch` before iterating each epoch (as with
    ``DistributedSampler``), otherwise every epoch repeats epoch 0; this makes resume exact.

    Args:
        labels: (N,) integer identity per dataset index.
        p: identities per batch (>= 2).
        k: images per identity (>= 2).
        photos: (N,) source-photo id per index (a clean image and its distorted copies share it).
        distortions: (N,) distortion kind per index, ``""`` for clean.
        clean_fraction: target fraction of the K images that are clean, in [0, 1].
        min_photos: identities with fewer distinct source photos (``photos``) are not drawn as batch
            identities; listed in :attr:`few_photo_identities`. With 2, every positive pair can be two
            different photos of a person, not only a photo and its own distorted copy.
        batches_per_epoch: batches per epoch; default as above.
        negatives: extra images appended to each batch, one from each of ``negatives`` distinct
            identities that are *not* batch identities (single-image identities and, with
            ``min_photos``, the few-photo ones): they have no positive in the batch, so miners use
            them only as negatives. Clamped to the number of such identities. Default 0.
        seed: base seed.

    A batch is ``P*K + negatives`` indices: the P identities' K images each, then the negatives.
    """

    def __init__(
        self,
        labels: Sequence[int],
        p: int,
        k: int,
        *,
        photos: Sequence[str] | None = None,
        distortions: Sequence[str] | None = None,
        clean_fraction: float = 0.5,
        min_photos: int = 1,
        batches_per_epoch: int | None = None,
        negatives: int = 0,
        seed: int = 0,
    ):
        labels_arr = np.asarray(labels)
        if labels_arr.ndim != 1 or labels_arr.size == 0:
            raise ValueError("labels must be a non-empty 1-D sequence")
        n = labels_arr.size
        if p < 2 or k < 2:
            raise ValueError(f"need p >= 2 and k >= 2 for triplets, got p={p}, k={k}")
        if not 0.0 <= clean_fraction <= 1.0:
            raise ValueError(f"clean_fraction must be in [0, 1], got {clean_fraction}")
        for name, seq in (("photos", photos), ("distortions", distortions)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{name} has {len(seq)} entries but labels has {n}")

        uniq, inverse, counts = np.unique(labels_arr, return_inverse=True, return_counts=True)
        self.skipped_identities: list[int] = uniq[counts == 1].tolist()
        usable = np.flatnonzero(counts >= 2)
        self.few_photo_identities: list[int] = []
        if min_photos > 1:
            if photos is None:
                raise ValueError("min_photos > 1 needs the photos of each image")
            photo_code = np.unique(np.asarray(photos).astype(str), return_inverse=True)[1].reshape(-1)
            pairs = np.unique(inverse.reshape(-1) * (photo_code.max() + 1) + photo_code)
            n_photos = np.bincount(pairs // (photo_code.max() + 1), minlength=uniq.size)
            few = usable[n_photos[usable] < min_photos]
            self.few_photo_identities = uniq[few].tolist()
            usable = usable[n_photos[usable] >= min_photos]
        if usable.size < 2:
            raise ValueError(
                f"need at least 2 identities with >= 2 images (and >= {min_photos} photos) for triplets, found "
                f"{usable.size} ({len(self.skipped_identities)} single-image identities skipped)"
            )
        if usable.size < p:
            warnings.warn(
                f"PKSampler: only {usable.size} identities have >= 2 images; P clamped from {p} "
                f"to {usable.size}",
                stacklevel=2,
            )
            p = int(usable.size)
        self.p = int(p)
        self.k = int(k)
        self.seed = int(seed)
        self.epoch = 0
        self.clean_fraction = float(clean_fraction)
        self.distortion_aware = photos is not None or distortions is not None

        order = np.argsort(inverse, kind="stable")
        groups = np.split(order, np.cumsum(counts)[:-1])
        self._groups: list[np.ndarray] = [groups[i].astype(np.int64) for i in usable]
        self.n_usable_images = int(sum(g.size for g in self._groups))
        if batches_per_epoch is None:
            batches_per_epoch = math.ceil(self.n_usable_images / (self.p * self.k))
        if batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be >= 1, got {batches_per_epoch}")
        self.batches_per_epoch = int(batches_per_epoch)

        if negatives < 0:
            raise ValueError(f"negatives must be >= 0, got {negatives}")
        used = np.zeros(uniq.size, bool)
        used[usable] = True
        self._negative_groups: list[np.ndarray] = [groups[i].astype(np.int64) for i in np.flatnonzero(~used)]
        self.negative_identities: list[int] = uniq[~used].tolist()  # the pool the extra negatives come from
        self.negatives = min(int(negatives), len(self._negative_groups))

        self._meta: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        if self.distortion_aware:
            ph = np.asarray(photos, dtype=object) if photos is not None else np.arange(n).astype(object)
            ds = np.asarray(distortions, dtype=object) if distortions is not None else np.full(n, "", object)
            self._meta = []
            for g in self._groups:
                _, photo_code = np.unique(ph[g].astype(str), return_inverse=True)
                keys = np.array([f"{a}\x00{b}" for a, b in zip(ph[g], ds[g])])
                _, key_code = np.unique(keys, return_inverse=True)
                clean = np.array([d == "" for d in ds[g]], dtype=bool)
                self._meta.append((photo_code.astype(np.int64), key_code.astype(np.int64), clean))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batch order the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        n_ids = len(self._groups)
        for _ in range(self.batches_per_epoch):
            batch: list[int] = []
            for gi in rng.choice(n_ids, size=self.p, replace=False):
                batch.extend(self._pick(int(gi), rng).tolist())
            if self.negatives:
                for gi in rng.choice(len(self._negative_groups), size=self.negatives, replace=False):
                    g = self._negative_groups[int(gi)]
                    batch.append(int(g[rng.integers(g.size)]))
            yield batch

    def _pick(self, gi: int, rng: np.random.Generator) -> np.ndarray:
        """K dataset indices of usable identity ``gi``: (K,) int64."""
        g, k = self._groups[gi], self.k
        if self._meta is None:
            if g.size >= k:
                return g[rng.choice(g.size, size=k, replace=False)]
            reps = -(-k // g.size)
            return g[np.concatenate([rng.permutation(g.size) for _ in range(reps)])[:k]]
        photo_code, key_code, clean = self._meta[gi]
        n_clean = int(clean.sum())
        n_dist = g.size - n_clean
        want_clean = min(round(self.clean_fraction * k), n_clean)
        want_dist = min(k - want_clean, n_dist)
        want_clean = min(k - want_dist, n_clean)  # top up with clean if distorted ran out
        kinds = [True] * want_clean + [False] * want_dist
        kinds += [None] * (k - len(kinds))  # fewer than K images: reuse (with replacement)
        img_count = np.zeros(g.size, np.int64)
        key_count = np.zeros(int(key_code.max()) + 1, np.int64)
        photo_count = np.zeros(int(photo_code.max()) + 1, np.int64)
        tiebreak = rng.random(g.size)
        out = np.empty(k, np.int64)
        for slot, kind in enumerate(kinds):
            unused = img_count == 0
            mask = unused & (clean == kind) if kind is not None else unused
            if not mask.any():
                mask = unused if unused.any() else np.ones(g.size, bool)
            score = (img_count * (k + 1) + key_count[key_code]) * (k + 1) + photo_count[photo_code] + tiebreak
            j = int(np.argmin(np.where(mask, score, np.inf)))
            img_count[j] += 1
            key_count[key_code[j]] += 1
            photo_count[photo_code[j]] += 1
            out[slot] = g[j]
        return out


class RankSplitSampler(torch.utils.data.Sampler[list[int]]):
    """This rank's share of a :class:`PKSampler`'s batches, for data-parallel training.

    Every rank draws the same global batch of P identities x K images from ``(seed, epoch)``
    and keeps identities ``[rank * P/W, (rank + 1) * P/W)`` of it (K images each, ``P*K/W``
    indices, then its ``negatives/W`` share of the extra negatives). So the ranks see disjoint
    identities at each step, and the global batch, and with it the run, does not depend on the
    number of processes ``W``. Requires ``P % W == 0`` and ``negatives % W == 0``.
    """

    def __init__(self, sampler: PKSampler, rank: int, world_size: int):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not within a world of {world_size}")
        if sampler.p % world_size:
            raise ValueError(f"P={sampler.p} identities per batch cannot be split evenly over {world_size} "
                             "processes")
        if sampler.negatives % world_size:
            raise ValueError(f"{sampler.negatives} extra negatives per batch cannot be split evenly over "
                             f"{world_size} processes")
        self.sampler, self.rank, self.world_size = sampler, int(rank), int(world_size)
        self.share = sampler.p // world_size * sampler.k
        self.negative_share = sampler.negatives // world_size

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch of the underlying sampler."""
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[int]]:
        lo = self.rank * self.share
        neg_lo = self.sampler.p * self.sampler.k + self.rank * self.negative_share
        for batch in self.sampler:
            yield batch[lo:lo + self.share] + batch[neg_lo:neg_lo + self.negative_share]


def original_triplets(labels: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """The seed recipe's random triplets: (N', 3) int64 rows ``(anchor, positive, negative)``.

    Anchors are all indices that have a positive (another index with the same label), in
    shuffled order; each gets one uniformly random positive (``!= anchor``) and one uniformly
    random negative (different label). Empty (0, 3) when there is no positive or only one label.
    Each row costs three forward passes in the original recipe.
    """
    labels_arr = np.asarray(labels)
    n = labels_arr.size
    if n == 0:
        return np.empty((0, 3), np.int64)
    order = np.argsort(labels_arr, kind="stable")  # indices grouped by label
    _, inverse, counts = np.unique(labels_arr, return_inverse=True, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos_in_sorted = np.empty(n, np.int64)
    pos_in_sorted[order] = np.arange(n)
    anchors = rng.permutation(n)
    size = counts[inverse[anchors]]
    anchors = anchors[(size >= 2) & (size < n)]
    if anchors.size == 0:
        return np.empty((0, 3), np.int64)
    grp = inverse[anchors]
    start, size = starts[grp], counts[grp]
    # positive: a uniform slot in the group minus the anchor's own slot
    r = (rng.random(anchors.size) * (size - 1)).astype(np.int64)
    own = pos_in_sorted[anchors] - start
    r = r + (r >= own)
    pos = order[start + r]
    # negative: a uniform slot in the sorted order minus the group's block
    r = (rng.random(anchors.size) * (n - size)).astype(np.int64)
    neg = order[np.where(r < start, r, r + size)]
    return np.stack([anchors, pos, neg], axis=1).astype(np.int64)
