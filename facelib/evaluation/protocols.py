"""Evaluation protocols on an :class:`~facelib.evaluation.embedding_set.EmbeddingSet`: probe/gallery selection, the auto
choice, typed results. Every search goes through :mod:`facelib.evaluation.retrieval`.

Which number means what (FACECOM: train and val identities are disjoint):

``gallery``      gallery = clean images, probes = their *own* distorted copies. This measures
                 matching a photo to its own original; pixel cosine (32 px) already scores
                 top-1 0.98 on FACECOM val with ``gallery="all"`` (0.73 with "mean"). It
                 does not measure recognising a person.
``cross-photo``  every probe (clean or distorted) is matched against gallery images of
                 *other* photos only; its own source photo and that photo's distortions
                 never take part. This is face recognition (pixel cosine top-1 on FACECOM
                 val: 0.13 with "all", 0.10 with "mean").
                 Only identities with >= 2 clean photos give probes; the others stay in the
                 gallery as distractors.
``closed``       the seed code's protocol: gallery from train identities, probes from val.
                 Probes whose identity has no gallery entry count as wrong (all of them on
                 FACECOM, whose splits are disjoint; :func:`detect_protocol` says so).
``verification`` same/different pairs of images from different photos: ROC AUC, EER, TAR@FAR.
``open-set``     a seeded half of the identities is held out of the gallery; DIR@FPIR.

Gallery modes (``gallery=``): ``"mean"`` (default) = one row per identity, the renormalised
mean of its clean embeddings; it is the usual choice and robust to one odd photo.
``"single"`` = the identity's first clean image (sorted path). ``"all"`` = every clean image;
a probe's score for an identity is its max over that identity's images.

Results are dataclasses (:class:`Identification`, :class:`Verification`, :class:`OpenSet`) holding
the per-probe arrays; ``to_dict()`` gives the JSON-ready figures, ``summary()`` one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Sequence

import numpy as np

from facelib.config import GALLERY_MODES
from facelib.evaluation.embedding_set import EmbeddingSet
from facelib.evaluation.metrics import bootstrap_interval, dir_at_fpir, identification_metrics, l2_normalize, per_group_accuracy, rate_key, topk_accuracy, verification_metrics
from facelib.evaluation.retrieval import topk, topk_labels

__all__ = [
    "PROTOCOL_DESCRIPTIONS",
    "Identification",
    "Verification",
    "OpenSet",
    "closed_protocol",
    "gallery_protocol",
    "cross_photo_protocol",
    "cross_photo_retrieval",
    "verification_protocol",
    "open_set_protocol",
    "detect_protocol",
    "run_protocol",
]

PROTOCOL_DESCRIPTIONS: dict[str, str] = {
    "closed": "gallery = train identities (clean images), probes = val images; probes whose identity "
    "is not in the gallery count as wrong",
    "gallery": "gallery = clean images, probes = their own distorted copies: measures matching a photo "
    "to its own original (pixel cosine top-1 on FACECOM val: 0.98 all-images gallery, 0.73 mean), "
    "not recognising a person",
    "cross-photo": "each probe is matched only against gallery images of OTHER photos (its own source "
    "photo and its distortions excluded): measures recognising the person (pixel cosine top-1 on FACECOM "
    "val: 0.13 all-images gallery, 0.10 mean)",
    "verification": "same/different-identity pairs of images from different photos",
    "open-set": "a seeded part of the identities is held out of the gallery; probes of held-out "
    "identities must be rejected (DIR@FPIR)",
}
_ALIASES = {
    "cross_photo": "cross-photo",
    "crossphoto": "cross-photo",
    "cross": "cross-photo",
    "open_set": "open-set",
    "openset": "open-set",
    "verify": "verification",
}


# --------------------------------------------------------------------------- typed results


@dataclass
class Ranking:
    """Gallery identities ranked for each probe.

    Attributes:
        names: [C] gallery identities (sorted). top_scores: [Q, k] float32, descending.
        top_ids: [Q, k] index into ``names`` (-1 where nothing is allowed).
        match_index: [Q] index into the gallery set of the best allowed image of the top-1
            identity (for display; -1 if none). n_images, n_identities: gallery size.
    """

    names: np.ndarray
    top_scores: np.ndarray
    top_ids: np.ndarray
    match_index: np.ndarray
    n_images: int
    n_identities: int


@dataclass
class Identification:
    """Result of an identification protocol (closed, gallery, cross-photo).

    Arrays are per probe ([Q] or [Q, k]); ``topk_identities`` holds ``""`` where fewer than
    k identities were allowed. The cross-photo counts are ``None`` for the other protocols.
    """

    protocol: str
    gallery: str
    n_gallery_images: int
    n_gallery_identities: int
    probe_index: np.ndarray
    y_true: np.ndarray
    topk_identities: np.ndarray
    topk_scores: np.ndarray
    gallery_identities: np.ndarray
    distortion: np.ndarray
    probe_path: np.ndarray
    match_index: np.ndarray
    match_path: np.ndarray
    n_probe_identities: int | None = None
    n_distractor_identities: int | None = None
    n_excluded_images: int | None = None
    protocol_reason: str | None = None
    embedding: str = "model"

    @property
    def description(self) -> str:
        return PROTOCOL_DESCRIPTIONS[self.protocol]

    @property
    def y_pred(self) -> np.ndarray:
        """[Q] top-1 identity (``""`` if none allowed)."""
        if self.topk_identities.shape[1] == 0:
            return np.full(len(self.y_true), "", dtype=str)
        return self.topk_identities[:, 0]

    @property
    def correct(self) -> np.ndarray:
        return self.y_pred == self.y_true

    @property
    def best_score(self) -> np.ndarray:
        s = self.topk_scores
        return s[:, 0] if s.shape[1] else np.zeros(len(self.y_true), np.float32)

    @property
    def n_probes(self) -> int:
        return int(len(self.y_true))

    @property
    def gallery_unit(self) -> str:
        return "images" if self.gallery == "all" else "identities"

    @property
    def n_gallery(self) -> int:
        return self.n_gallery_images if self.gallery == "all" else self.n_gallery_identities

    @property
    def n_identities(self) -> int:
        """Identities among the probes."""
        return len(self.probe_identities)

    @property
    def n_probes_without_gallery(self) -> int:
        return int((~np.isin(self.y_true, self.gallery_identities)).sum())

    @property
    def probe_identities(self) -> list[str]:
        """Sorted identities that have probes: the rows of the classification report."""
        return sorted(set(self.y_true.tolist()))

    @cached_property
    def _idm(self) -> dict:
        return identification_metrics(self.y_true, self.y_pred)

    @property
    def top1(self) -> float:
        return self._idm["top1"]

    @property
    def top5(self) -> float:
        return topk_accuracy(self.y_true, self.topk_identities, 5)

    @cached_property
    def top1_interval(self) -> tuple[float, float]:
        """95% interval of :attr:`top1` from a bootstrap over the probe identities (seeded: repeatable).
        A person's probes succeed or fail together, so it is wider than a per-probe binomial interval."""
        if not self.n_probes:
            return (0.0, 0.0)
        b = bootstrap_interval(self.correct, self.y_true)
        return (b["low"], b["high"])

    @property
    def macro_f1(self) -> float:
        return self._idm["macro_f1"]

    @property
    def per_distortion(self) -> dict[str, float]:
        groups = np.where(self.distortion == "", "clean", self.distortion)
        return per_group_accuracy(self.correct, groups) if self.n_probes else {}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (no per-probe arrays)."""
        out = {
            "protocol": self.protocol,
            "description": self.description,
            "embedding": self.embedding,
            "gallery": self.gallery,
            "gallery_unit": self.gallery_unit,
            "n_gallery": int(self.n_gallery),
            "n_gallery_images": int(self.n_gallery_images),
            "n_gallery_identities": int(self.n_gallery_identities),
            "top1": self.top1,
            "top1_interval": list(self.top1_interval),
            "top5": self.top5,
            "macro_f1": self.macro_f1,
            "n_probes": self.n_probes,
            "n_identities": self.n_identities,
            "n_probes_without_gallery": self.n_probes_without_gallery,
            "per_distortion": self.per_distortion,
        }
        for key in ("n_probe_identities", "n_distractor_identities", "n_excluded_images"):
            if getattr(self, key) is not None:
                out[key] = int(getattr(self, key))
        if self.protocol_reason is not None:
            out["protocol_reason"] = self.protocol_reason
        return out

    def summary(self) -> str:
        """``cross-photo (mean gallery, 250 identities): top1 0.452 ...``."""
        line = (
            f"{self.protocol} ({self.gallery} gallery, {self.n_gallery} {self.gallery_unit}): top1 {self.top1:.3f}  "
            f"top5 {self.top5:.3f}  macro-F1 {self.macro_f1:.3f}  over {self.n_probes} probes"
        )
        missing = self.n_probes_without_gallery
        return line + (f" ({missing} with no gallery entry)" if missing else "")


@dataclass
class Verification:
    """Same/different pairs: ``scores`` [N] cosine, ``same`` [N] bool, ``pairs`` [N, 2] indices.

    Rates are dicts keyed by the asked rate (``tar_at_far[0.01]``).
    """

    scores: np.ndarray
    same: np.ndarray
    pairs: np.ndarray
    roc_auc: float
    eer: float
    eer_threshold: float
    tar_at_far: dict[float, float]
    threshold_at_far: dict[float, float]
    best_accuracy: float
    best_threshold: float
    n_genuine: int
    n_impostor: int
    n_genuine_available: int
    genuine_subsampled: bool
    seed: int
    embedding: str = "model"
    protocol: str = "verification"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"protocol": self.protocol, "description": PROTOCOL_DESCRIPTIONS[self.protocol],
                               "embedding": self.embedding, "roc_auc": self.roc_auc, "eer": self.eer,
                               "eer_threshold": self.eer_threshold}
        for far, tar in self.tar_at_far.items():
            out[f"tar_at_far_{rate_key(far)}"] = tar
            out[f"threshold_at_far_{rate_key(far)}"] = self.threshold_at_far[far]
        out.update(best_accuracy=self.best_accuracy, best_threshold=self.best_threshold, n_genuine=self.n_genuine,
                   n_impostor=self.n_impostor, n_genuine_available=self.n_genuine_available,
                   genuine_subsampled=self.genuine_subsampled, seed=self.seed)
        return out

    def summary(self) -> str:
        return (
            f"verification: AUC {self.roc_auc:.3f}  EER {self.eer:.3f}  "
            + "  ".join(f"TAR@FAR={rate_key(f)} {t:.3f}" for f, t in self.tar_at_far.items())
            + f"  ({self.n_genuine} genuine / {self.n_impostor} impostor pairs)"
        )


@dataclass
class OpenSet:
    """Open-set identification. Per-probe arrays: ``probe_index``, ``known`` (identity in the gallery),
    ``y_true``, ``y_pred`` (top-1), ``best_score``; ``open_threshold`` decides ``y_pred_open``."""

    gallery: str
    cross_photo: bool
    n_gallery_identities: int
    n_gallery_images: int
    n_heldout_identities: int
    seed: int
    n_known: int
    n_unknown: int
    rank1_known: float
    dir_at_fpir: dict[float, float]
    threshold_at_fpir: dict[float, float]
    fpir_actual: dict[float, float]
    probe_index: np.ndarray
    known: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    best_score: np.ndarray
    open_threshold: float
    threshold: float | None = None
    embedding: str = "model"
    protocol: str = "open-set"

    @property
    def y_pred_open(self) -> np.ndarray:
        """[Q] top-1 identity, or ``"unknown"`` below ``open_threshold``."""
        return np.where(self.best_score >= self.open_threshold, self.y_pred, "unknown")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "protocol": self.protocol, "description": PROTOCOL_DESCRIPTIONS[self.protocol],
            "embedding": self.embedding, "gallery": self.gallery, "cross_photo": self.cross_photo,
            "n_gallery_identities": self.n_gallery_identities, "n_gallery_images": self.n_gallery_images,
            "n_heldout_identities": self.n_heldout_identities, "n_known": self.n_known,
            "n_unknown": self.n_unknown, "rank1_known": self.rank1_known,
        }
        for f, v in self.dir_at_fpir.items():
            out[f"dir_at_fpir_{rate_key(f)}"] = v
            out[f"threshold_at_fpir_{rate_key(f)}"] = self.threshold_at_fpir[f]
            out[f"fpir_actual_{rate_key(f)}"] = self.fpir_actual[f]
        if self.threshold is not None:
            k = self.known
            out["threshold"] = float(self.threshold)
            out["dir_at_threshold"] = float(np.mean((self.y_pred == self.y_true)[k] & (self.best_score[k] >= self.threshold)))
            out["fpir_at_threshold"] = float(np.mean(self.best_score[~k] >= self.threshold))
        out["seed"] = self.seed
        return out

    def summary(self) -> str:
        return f"open-set ({self.gallery} gallery, {self.n_gallery_identities} known identities): " + "  ".join(
            f"DIR@FPIR={rate_key(f)} {v:.3f}" for f, v in self.dir_at_fpir.items())


Result = Identification | Verification | OpenSet


# --------------------------------------------------------------------------- ranking


def _check_mode(gallery: str) -> str:
    if gallery not in GALLERY_MODES:
        raise ValueError(f"gallery must be one of {GALLERY_MODES}, got {gallery!r}")
    return gallery


def _replace_own(top_s, top_c, own_col, own_score, k) -> tuple[np.ndarray, np.ndarray]:
    """Put each probe's own identity back with its corrected score ``own_score`` [Q] (``-inf`` = none).

    ``top_s``/``top_c`` [Q, k+1] come from the uncorrected representatives, so after dropping the
    own column at least ``k`` other identities remain: the merged top ``k`` is exact.
    """
    s = np.where(top_c == own_col[:, None], -np.inf, top_s).astype(np.float32)
    has = own_col >= 0
    s = np.concatenate([s, np.where(has, own_score, -np.inf)[:, None].astype(np.float32)], 1)
    c = np.concatenate([top_c, own_col[:, None]], 1)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    s, c = np.take_along_axis(s, order, 1), np.take_along_axis(c, order, 1)
    c[np.isneginf(s)] = -1
    return s, c


def rank_identities(
    gset: EmbeddingSet,
    gidx: np.ndarray,
    pset: EmbeddingSet,
    pidx: np.ndarray,
    mode: str,
    cross_photo: bool,
    k: int = 5,
    chunk: int = 2048,
    backend: str = "auto",
) -> Ranking:
    """Rank gallery identities for each probe through :func:`facelib.evaluation.retrieval.topk`.

    Args:
        gset, gidx: gallery images (indices into ``gset``). pset, pidx: probes.
        mode: ``"single"``, ``"mean"`` or ``"all"`` (module docstring).
        cross_photo: for each probe, leave out every gallery image of its own source photo
            (``"all"``: group mask; ``"mean"``: own identity's mean over its other photos;
            ``"single"``: first clean image of another photo).
    """
    gidx = np.asarray(gidx, dtype=np.int64)
    pidx = np.asarray(pidx, dtype=np.int64)
    if len(gidx) == 0:
        raise ValueError("the gallery is empty (no clean images to build it from)")
    gidx = gidx[np.lexsort((gset.paths[gidx], gset.identities[gidx]))]
    names, row_ident = np.unique(gset.identities[gidx], return_inverse=True)
    n_ids = len(names)
    starts = np.flatnonzero(np.r_[True, row_ident[1:] != row_ident[:-1]])
    counts = np.diff(np.r_[starts, len(gidx)])
    G = l2_normalize(gset.embeddings[gidx])
    P = l2_normalize(pset.embeddings[pidx])
    n_q = len(P)
    k = int(min(k, n_ids))
    search = dict(chunk=chunk, backend=backend)

    g_ph = q_ph = None
    own_col = np.full(n_q, -1, dtype=np.int64)
    if cross_photo:
        _, codes = np.unique(np.r_[gset.photos[gidx], pset.photos[pidx]], return_inverse=True)
        g_ph, q_ph = codes[: len(gidx)], codes[len(gidx):]
        q_names = pset.identities[pidx]
        pos = np.clip(np.searchsorted(names, q_names), 0, n_ids - 1)
        own_col = np.where(names[pos] == q_names, pos, -1)

    if mode == "all":
        top_s, top_c, rows = topk_labels(P, G, row_ident, k, query_groups=q_ph, gallery_groups=g_ph, **search)
        match = np.where(rows[:, 0] >= 0, gidx[np.clip(rows[:, 0], 0, None)], -1) if k else np.full(n_q, -1)
        return Ranking(names, top_s, top_c, match, len(gidx), n_ids)

    if mode == "mean":
        sums = np.add.reduceat(G.astype(np.float64), starts, axis=0)
        rep = l2_normalize(sums)
    else:
        rep = G[starts]
    if not cross_photo:
        top_s, top_c = topk(P, rep, k, **search)
    else:
        own_score = _own_identity_scores(G, P, g_ph, q_ph, own_col, starts, counts, row_ident, mode, chunk)
        top_s, top_c = topk(P, rep, min(k + 1, n_ids), **search)
        top_s, top_c = _replace_own(top_s, top_c, own_col, own_score, k)
    match = _display_match(G, P, gidx, starts, counts, top_c, g_ph, q_ph, chunk)
    return Ranking(names, top_s, top_c, match, len(gidx), n_ids)


def _own_identity_scores(G, P, g_ph, q_ph, own_col, starts, counts, row_ident, mode, chunk) -> np.ndarray:
    """[Q] score of each probe against its own identity without its own photo (``-inf`` if nothing is left)."""
    n_q = len(P)
    own_score = np.full(n_q, -np.inf, dtype=np.float32)
    ok = own_col >= 0
    if mode == "single":
        first_ph = g_ph[starts]
        other = np.flatnonzero(g_ph != first_ph[row_ident])
        second = np.full(len(starts), -1, dtype=np.int64)
        ids_o, first_o = np.unique(row_ident[other], return_index=True)
        second[ids_o] = other[first_o]
        oc = own_col[ok]
        row = np.where(first_ph[oc] != q_ph[ok], starts[oc], second[oc])
        sc = np.einsum("ij,ij->i", G[np.clip(row, 0, None)], P[ok])
        own_score[ok] = np.where(row >= 0, sc, -np.inf)
        return own_score
    # mean: identity sum minus the sum of the probe's own photo (a zero row if it has none in the gallery)
    sums = np.add.reduceat(G.astype(np.float64), starts, axis=0)
    ph_u, ph_inv = np.unique(g_ph, return_inverse=True)
    ph_sum = np.zeros((len(ph_u) + 1, G.shape[1]), np.float64)
    np.add.at(ph_sum, ph_inv, G.astype(np.float64))
    ph_cnt = np.r_[np.bincount(ph_inv, minlength=len(ph_u)), 0]
    j = np.clip(np.searchsorted(ph_u, q_ph), 0, max(len(ph_u) - 1, 0))
    q_phrow = np.where(ph_u[j] == q_ph, j, len(ph_u))
    for a in range(0, n_q, chunk):
        sl = slice(a, min(a + chunk, n_q))
        m = ok[sl]
        if not m.any():
            continue
        oc, pr = own_col[sl][m], q_phrow[sl][m]
        sc = np.einsum("ij,ij->i", l2_normalize(sums[oc] - ph_sum[pr]), P[sl][m])
        own_score[sl][m] = np.where(counts[oc] - ph_cnt[pr] > 0, sc, -np.inf)
    return own_score


def _display_match(G, P, gidx, starts, counts, top_c, g_ph, q_ph, chunk) -> np.ndarray:
    """[Q] gallery-set index of the best allowed image of each probe's top-1 identity (-1 if none)."""
    n_q = len(P)
    match = np.full(n_q, -1, dtype=np.int64)
    if top_c.shape[1] == 0:
        return match
    L = int(counts.max())
    for a in range(0, n_q, chunk):
        sl = slice(a, min(a + chunk, n_q))
        c = top_c[sl, 0]
        cols = starts[np.clip(c, 0, None)][:, None] + np.arange(L)[None, :]  # [c, L]
        valid = (np.arange(L)[None, :] < counts[np.clip(c, 0, None)][:, None]) & (c[:, None] >= 0)
        cols = np.where(valid, cols, 0)
        vals = np.einsum("qld,qd->ql", G[cols], P[sl])
        if g_ph is not None:
            valid &= g_ph[cols] != q_ph[sl, None]
        vals[~valid] = -np.inf
        best = np.argmax(vals, axis=1)
        r = np.arange(len(c))
        match[sl] = np.where(np.isfinite(vals[r, best]), gidx[cols[r, best]], -1)
    return match


def _identification(protocol: str, mode: str, gset: EmbeddingSet, pset: EmbeddingSet, pidx: np.ndarray,
                    ranked: Ranking, **counts: int) -> Identification:
    names_ext = np.r_[ranked.names, np.array([""])]  # index -1 -> ""
    match = ranked.match_index
    return Identification(
        protocol=protocol,
        gallery=mode,
        n_gallery_images=ranked.n_images,
        n_gallery_identities=ranked.n_identities,
        probe_index=pidx,
        y_true=pset.identities[pidx],
        topk_identities=names_ext[ranked.top_ids],
        topk_scores=ranked.top_scores,
        gallery_identities=ranked.names,
        distortion=pset.distortions[pidx],
        probe_path=pset.paths[pidx],
        match_index=match,
        match_path=np.where(match >= 0, gset.paths[np.clip(match, 0, None)], ""),
        **counts,
    )


# --------------------------------------------------------------------------- protocols


def closed_protocol(train: EmbeddingSet, probes: EmbeddingSet, gallery: str = "mean", k: int = 5,
                    backend: str = "auto") -> Identification:
    """Seed-code protocol: gallery = clean train images per identity, probes = every image of ``probes``.

    Probes whose identity is absent from the gallery count as wrong (``n_probes_without_gallery``).
    If ``train`` has no clean image at all, all its images form the gallery.
    """
    mode = _check_mode(gallery)
    gidx = np.flatnonzero(train.clean_mask)
    if len(gidx) == 0:
        gidx = np.arange(len(train))
    pidx = np.arange(len(probes))
    if len(pidx) == 0:
        raise ValueError("no probes")
    ranked = rank_identities(train, gidx, probes, pidx, mode, cross_photo=False, k=k, backend=backend)
    return _identification("closed", mode, train, probes, pidx, ranked)


def gallery_protocol(s: EmbeddingSet, gallery: str = "mean", k: int = 5, backend: str = "auto") -> Identification:
    """FACECOM hackathon protocol: gallery = clean images, probes = the distorted images.

    Each probe's own clean original sits in the gallery, so this measures matching a photo
    to its own original, not recognising a person (see :func:`cross_photo_protocol`).
    """
    mode = _check_mode(gallery)
    gidx = np.flatnonzero(s.clean_mask)
    pidx = np.flatnonzero(~s.clean_mask)
    if len(pidx) == 0:
        raise ValueError("gallery protocol needs distorted images as probes; this set has none")
    ranked = rank_identities(s, gidx, s, pidx, mode, cross_photo=False, k=k, backend=backend)
    return _identification("gallery", mode, s, s, pidx, ranked)


def _photos_per_identity(s: EmbeddingSet, mask: np.ndarray) -> dict[str, int]:
    pairs = set(zip(s.identities[mask].tolist(), s.photos[mask].tolist()))
    out: dict[str, int] = {}
    for ident, _ in pairs:
        out[ident] = out.get(ident, 0) + 1
    return out


def _cross_photo_split(s: EmbeddingSet) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, int]]:
    """Gallery indices (clean images), probe indices (every image of an identity with >= 2 clean
    photos), those identities (sorted), and the clean-photo count of every identity."""
    clean = s.clean_mask
    n_photos = _photos_per_identity(s, clean)
    multi = sorted(i for i, n in n_photos.items() if n >= 2)
    return np.flatnonzero(clean), np.flatnonzero(np.isin(s.identities, multi)), multi, n_photos


def cross_photo_protocol(s: EmbeddingSet, gallery: str = "mean", k: int = 5, backend: str = "auto") -> Identification:
    """Recognition across photos: no probe is ever compared with its own source photo.

    Gallery = clean images of every identity. Probes = every image (clean or distorted) of
    identities with >= 2 clean photos; each is scored against gallery images of OTHER photos
    only. Single-photo identities stay in the gallery as distractors.
    """
    mode = _check_mode(gallery)
    gidx, pidx, multi, n_photos = _cross_photo_split(s)
    if len(pidx) == 0:
        raise ValueError(
            "cross-photo protocol needs identities with at least 2 clean photos; this set has none "
            f"({len(n_photos)} identities, all single-photo)"
        )
    ranked = rank_identities(s, gidx, s, pidx, mode, cross_photo=True, k=k, backend=backend)
    return _identification("cross-photo", mode, s, s, pidx, ranked, n_probe_identities=len(multi),
                           n_distractor_identities=len(n_photos) - len(multi),
                           n_excluded_images=int(len(s) - len(pidx)))


def cross_photo_retrieval(s: EmbeddingSet, ks: Sequence[int] = (1, 5, 10), chunk: int = 1024) -> dict[str, Any]:
    """Image retrieval across photos: mAP and Recall@K (:mod:`facelib.evaluation.ranking`), as in OML and PML.

    The cross-photo split of :func:`cross_photo_protocol` with an all-images gallery: queries =
    every image of identities with >= 2 clean photos, gallery = every clean image, a query's own
    source photo hidden. Each query's ranking of the whole gallery is scored (every other photo of
    its person counts), ``chunk`` queries at a time, so memory stays ``chunk x G``.
    Returns ``{"map", "recall_at_<k>"..., "n_queries", "n_queries_without_match", "n_gallery"}``;
    ``recall_at_1`` equals the protocol's top-1 with ``gallery="all"``.
    """
    from facelib.evaluation.ranking import query_ranks, summarise

    g, q, _, _ = _cross_photo_split(s)
    if len(q) == 0:
        raise ValueError("cross-photo retrieval needs identities with at least 2 clean photos; this set has none")
    gl, gp, ge = s.identities[g], s.photos[g], s.embeddings[g]
    first, ap = [], []
    for lo in range(0, len(q), chunk):
        qi = q[lo:lo + chunk]
        scores = s.embeddings[qi] @ ge.T
        scores[s.photos[qi][:, None] == gp[None, :]] = -np.inf
        f, a = query_ranks(scores, s.identities[qi], gl)
        first.append(f)
        ap.append(a)
    return dict(summarise(np.concatenate(first), np.concatenate(ap), ks), n_gallery=int(len(g)))


def _genuine_pairs(s: EmbeddingSet, max_genuine: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """All (i, j), i < j, same identity and different photo; seeded subsample to ``max_genuine``."""
    order = np.lexsort((s.photos, s.identities))
    ids = s.identities[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(order)]
    chunks = []
    for a, b in zip(starts, ends):
        if b - a < 2:
            continue
        members = order[a:b]
        i, j = np.triu_indices(b - a, 1)
        keep = s.photos[members[i]] != s.photos[members[j]]
        if keep.any():
            chunks.append(np.stack([members[i[keep]], members[j[keep]]], 1))
    pairs = np.concatenate(chunks) if chunks else np.zeros((0, 2), np.int64)
    total = len(pairs)
    if total > max_genuine:
        pairs = pairs[np.sort(rng.choice(total, max_genuine, replace=False))]
    return pairs.astype(np.int64), total


def _impostor_pairs(s: EmbeddingSet, n: int, rng: np.random.Generator) -> np.ndarray:
    ids = s.identities
    if len(np.unique(ids)) < 2:
        raise ValueError("verification needs at least 2 identities for impostor pairs")
    out = np.zeros((0, 2), np.int64)
    while len(out) < n:
        m = int((n - len(out)) * 1.3) + 16
        cand = rng.integers(0, len(s), size=(m, 2))
        cand = cand[ids[cand[:, 0]] != ids[cand[:, 1]]]
        out = np.concatenate([out, cand])
    return out[:n]


def verification_protocol(
    s: EmbeddingSet,
    n_negatives_per_positive: float = 1.0,
    n_impostors: int | None = None,
    max_genuine: int = 200_000,
    seed: int = 0,
    fars: Sequence[float] = (1e-1, 1e-2, 1e-3),
) -> Verification:
    """Same/different pairs across different photos.

    Genuine pairs: every pair of images (clean or distorted) of one identity from different
    photos; above ``max_genuine`` a seeded subsample is taken (``genuine_subsampled``).
    Impostor pairs: ``n_impostors`` (default ``n_negatives_per_positive`` x genuine) seeded
    random pairs of different identities. Score = cosine; rates from
    :func:`~facelib.evaluation.metrics.verification_metrics` at each of ``fars``.
    """
    rng = np.random.default_rng(seed)
    gen, total = _genuine_pairs(s, max_genuine, rng)
    if len(gen) == 0:
        raise ValueError("verification needs an identity with images from 2 different photos; none found")
    n_imp = int(n_impostors) if n_impostors is not None else max(1, int(round(n_negatives_per_positive * len(gen))))
    imp = _impostor_pairs(s, n_imp, rng)
    pairs = np.concatenate([gen, imp])
    same = np.r_[np.ones(len(gen), bool), np.zeros(len(imp), bool)]
    E = l2_normalize(s.embeddings)
    scores = np.einsum("ij,ij->i", E[pairs[:, 0]], E[pairs[:, 1]]).astype(np.float32)
    fars = tuple(dict.fromkeys(float(f) for f in fars))
    m = verification_metrics(scores, same, fars=fars)
    return Verification(
        scores=scores, same=same, pairs=pairs, roc_auc=m["roc_auc"], eer=m["eer"], eer_threshold=m["eer_threshold"],
        tar_at_far={f: m[f"tar_at_far_{rate_key(f)}"] for f in fars},
        threshold_at_far={f: m[f"threshold_at_far_{rate_key(f)}"] for f in fars},
        best_accuracy=m["best_accuracy"], best_threshold=m["best_threshold"], n_genuine=m["n_genuine"],
        n_impostor=m["n_impostor"], n_genuine_available=int(total), genuine_subsampled=bool(total > len(gen)),
        seed=int(seed),
    )


def open_set_protocol(
    s: EmbeddingSet,
    gallery: str = "mean",
    known_fraction: float = 0.5,
    seed: int = 0,
    fpirs: Sequence[float] = (0.1, 0.01),
    threshold: float | None = None,
    cross_photo: bool = True,
    k: int = 5,
    backend: str = "auto",
) -> OpenSet:
    """Open-set identification with a seeded ``known_fraction`` of identities in the gallery.

    Known probes: with ``cross_photo`` (default) every image of a known identity with >= 2
    clean photos, scored against other photos only; otherwise the distorted images of known
    identities. Unknown probes: every image (``cross_photo``) or every distorted image of the
    held-out identities. Reports :func:`~facelib.evaluation.metrics.dir_at_fpir`; ``open_threshold`` is
    ``threshold`` if given, else the threshold at the first FPIR.
    """
    mode = _check_mode(gallery)
    clean = s.clean_mask
    with_clean = sorted(set(s.identities[clean].tolist()))
    if len(with_clean) < 2:
        raise ValueError("open-set protocol needs at least 2 identities with clean images")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(with_clean))
    n_known = min(max(1, int(round(known_fraction * len(with_clean)))), len(with_clean) - 1)
    known = sorted(with_clean[i] for i in perm[:n_known])
    is_known = np.isin(s.identities, known)
    gidx = np.flatnonzero(clean & is_known)
    if cross_photo:
        n_photos = _photos_per_identity(s, clean)
        multi = [i for i in known if n_photos.get(i, 0) >= 2]
        known_p = np.flatnonzero(np.isin(s.identities, multi))
        unknown_p = np.flatnonzero(~is_known)
    else:
        known_p = np.flatnonzero(is_known & ~clean)
        unknown_p = np.flatnonzero(~is_known & ~clean)
    if len(known_p) == 0 or len(unknown_p) == 0:
        raise ValueError(f"open-set needs known and unknown probes; got {len(known_p)} and {len(unknown_p)}")
    pidx = np.r_[known_p, unknown_p]
    ranked = rank_identities(s, gidx, s, pidx, mode, cross_photo=cross_photo, k=k, backend=backend)
    best = ranked.top_scores[:, 0]
    y_true = s.identities[pidx]
    y_pred = ranked.names[np.clip(ranked.top_ids[:, 0], 0, None)]
    nk = len(known_p)
    fpirs = tuple(float(f) for f in fpirs)
    d = dir_at_fpir(best[:nk], y_pred[:nk] == y_true[:nk], best[nk:], fpirs=fpirs)
    thr_at = {f: d[f"threshold_at_fpir_{rate_key(f)}"] for f in fpirs}
    if threshold is not None:
        t = float(threshold)
    else:
        t = thr_at[fpirs[0]] if fpirs else -np.inf
    return OpenSet(
        gallery=mode, cross_photo=bool(cross_photo), n_gallery_identities=ranked.n_identities,
        n_gallery_images=ranked.n_images, n_heldout_identities=len(with_clean) - n_known, seed=int(seed),
        n_known=d["n_known"], n_unknown=d["n_unknown"], rank1_known=d["rank1_known"],
        dir_at_fpir={f: d[f"dir_at_fpir_{rate_key(f)}"] for f in fpirs}, threshold_at_fpir=thr_at,
        fpir_actual={f: d[f"fpir_actual_{rate_key(f)}"] for f in fpirs}, probe_index=pidx,
        known=np.r_[np.ones(nk, bool), np.zeros(len(unknown_p), bool)], y_true=y_true, y_pred=y_pred,
        best_score=best, open_threshold=float(t), threshold=None if threshold is None else float(threshold),
    )


# --------------------------------------------------------------------------- dispatch


def detect_protocol(train_identities: Sequence[str] | None, val_identities: Sequence[str]) -> tuple[str, str]:
    """``("closed", reason)`` when every val identity is in train, else ``("cross-photo", reason)``."""
    val = set(map(str, val_identities))
    if train_identities is None:
        return "cross-photo", "no train set given: using cross-photo on the val set"
    train = set(map(str, train_identities))
    shared = len(val & train)
    if val and shared == len(val):
        return "closed", f"all {len(val)} val identities appear in train: closed-set identification"
    if shared == 0:
        return "cross-photo", (
            f"val identities are disjoint from train (0 of {len(val)} shared): closed-set scores "
            "would be 0; using cross-photo"
        )
    return "cross-photo", (
        f"only {shared} of {len(val)} val identities appear in train: closed-set would count "
        f"{len(val) - shared} identities as wrong by construction; using cross-photo"
    )


def run_protocol(
    name: str,
    probes: EmbeddingSet,
    train: EmbeddingSet | None = None,
    gallery: str = "mean",
    **kw: Any,
) -> Result:
    """Run one protocol by name: closed, gallery, cross-photo, verification, open-set, or auto.

    ``auto`` uses :func:`detect_protocol` (closed when ``train`` is given and covers every
    val identity, else cross-photo) and records ``protocol_reason``. ``kw`` goes to the
    protocol function.
    """
    key = _ALIASES.get(name.lower().strip(), name.lower().strip())
    reason = None
    if key == "auto":
        key, reason = detect_protocol(train.identity_names if train is not None else None, probes.identity_names)
    if key == "closed":
        if train is None:
            raise ValueError("the closed protocol needs a train set for its gallery")
        out: Result = closed_protocol(train, probes, gallery=gallery, **kw)
    elif key == "gallery":
        out = gallery_protocol(probes, gallery=gallery, **kw)
    elif key == "cross-photo":
        out = cross_photo_protocol(probes, gallery=gallery, **kw)
    elif key == "verification":
        out = verification_protocol(probes, **kw)
    elif key == "open-set":
        out = open_set_protocol(probes, gallery=gallery, **kw)
    else:
        raise ValueError(f"unknown protocol {name!r}; choose from {tuple(PROTOCOL_DESCRIPTIONS) + ('auto',)}")
    if reason is not None:
        out.protocol_reason = reason
    return out
