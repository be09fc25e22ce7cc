"""Ranking: gallery identities ranked for each probe (:func:`rank_identities`, the gallery modes), and
the ranking metrics of image retrieval: first correct rank, CMC curve, Recall@K and mAP.

:func:`rank_identities` searches through :mod:`facelib.evaluation.retrieval` (the one masked top-k) and
returns a :class:`Ranking`; the protocols (:mod:`facelib.evaluation.protocols`) turn it into results.

The metrics are pure functions on a score matrix ``scores`` [Q, G] (higher = more similar, e.g. cosine),
query labels [Q] and gallery labels [G]. An entry of ``-inf`` marks a gallery row the query
may not see (for instance its own source photo); it is never counted as retrieved.

Recall@K here is the metric-learning usage (Musgrave et al. 2020): the share of queries with
at least one correct gallery row among the top K, which equals the CMC curve at rank K.
Queries without any allowed correct gallery row are left out of every figure (and counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from facelib.config import GALLERY_MODES
from facelib.errors import NotApplicable
from facelib.evaluation.embedding_set import EmbeddingSet
from facelib.evaluation.metrics import l2_normalize
from facelib.evaluation.retrieval import topk, topk_labels

__all__ = ["Ranking", "rank_identities", "check_gallery_mode", "first_correct_rank", "cmc_curve", "average_precision",
           "query_ranks", "summarise", "retrieval_metrics"]


def _sorted_relevance(scores, query_labels, gallery_labels) -> np.ndarray:
    """[Q, G] bool: is the gallery row at each rank (best first) correct and allowed?"""
    s = np.asarray(scores, dtype=np.float64)
    ql, gl = np.asarray(query_labels), np.asarray(gallery_labels)
    if s.ndim != 2 or s.shape != (len(ql), len(gl)):
        raise ValueError(f"scores must be [Q, G] = [{len(ql)}, {len(gl)}], got shape {s.shape}")
    order = np.argsort(-s, axis=1, kind="stable")  # ties: the lower gallery index first
    allowed = np.isfinite(np.take_along_axis(s, order, axis=1))
    return (gl[order] == ql[:, None]) & allowed


def first_correct_rank(scores, query_labels, gallery_labels) -> np.ndarray:
    """[Q] int: 0-based rank of the first correct gallery row; -1 where there is none."""
    return _first(_sorted_relevance(scores, query_labels, gallery_labels))


def _first(rel: np.ndarray) -> np.ndarray:
    return np.where(rel.any(axis=1), rel.argmax(axis=1), -1)


def cmc_curve(scores, query_labels, gallery_labels, max_rank: int = 20) -> np.ndarray:
    """[max_rank] float: share of queries whose first correct row is within the top k, k = 1..max_rank.

    ``cmc[0]`` is top-1 accuracy of the nearest neighbour. Queries with no correct row are left out.
    """
    r = first_correct_rank(scores, query_labels, gallery_labels)
    r = r[r >= 0]
    if len(r) == 0:
        return np.full(max_rank, np.nan)
    return np.array([(r < k).mean() for k in range(1, max_rank + 1)])


def average_precision(scores, query_labels, gallery_labels) -> np.ndarray:
    """[Q] float: average precision of each query's ranking over the allowed gallery rows.

    AP = mean over the correct rows of the precision at their rank; NaN where there is none.
    """
    return _ap(_sorted_relevance(scores, query_labels, gallery_labels))


def _ap(rel: np.ndarray) -> np.ndarray:
    hits = np.cumsum(rel, axis=1)
    precision = hits / np.arange(1, rel.shape[1] + 1)
    n_rel = rel.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, (precision * rel).sum(axis=1) / n_rel, np.nan)


def query_ranks(scores, query_labels, gallery_labels) -> tuple[np.ndarray, np.ndarray]:
    """(first correct rank [Q] int, -1 where none; average precision [Q] float, NaN where none) from
    one sort of ``scores``: what :func:`summarise` needs, so a caller can score queries in chunks."""
    rel = _sorted_relevance(scores, query_labels, gallery_labels)
    return _first(rel), _ap(rel)


def summarise(first: np.ndarray, ap: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """``{"map", "recall_at_<k>"..., "n_queries", "n_queries_without_match"}`` from :func:`query_ranks`'
    arrays (concatenated over chunks), as plain Python numbers; queries without a match are left out."""
    ok = first >= 0
    out: dict = {"map": float(ap[ok].mean()) if ok.any() else float("nan")}
    out.update({f"recall_at_{k}": float((first[ok] < k).mean()) if ok.any() else float("nan") for k in ks})
    out.update(n_queries=int(ok.sum()), n_queries_without_match=int((~ok).sum()))
    return out


def retrieval_metrics(scores, query_labels, gallery_labels, ks: Sequence[int] = (1, 5, 10)) -> dict:
    """``{"map", "recall_at_<k>"..., "n_queries", "n_queries_without_match"}`` as plain Python numbers."""
    return summarise(*query_ranks(scores, query_labels, gallery_labels), ks=ks)


# --------------------------------------------------------------------------- gallery identities per probe


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


def check_gallery_mode(gallery: str) -> str:
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
        raise NotApplicable("the gallery is empty (no clean images to build it from)")
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
