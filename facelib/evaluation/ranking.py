"""Ranking metrics of image retrieval: first correct rank, CMC curve, Recall@K and mAP.

Pure functions on a score matrix ``scores`` [Q, G] (higher = more similar, e.g. cosine),
query labels [Q] and gallery labels [G]. An entry of ``-inf`` marks a gallery row the query
may not see (for instance its own source photo); it is never counted as retrieved.

Recall@K here is the metric-learning usage (Musgrave et al. 2020): the share of queries with
at least one correct gallery row among the top K, which equals the CMC curve at rank K.
Queries without any allowed correct gallery row are left out of every figure (and counted).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["first_correct_rank", "cmc_curve", "average_precision", "query_ranks", "summarise", "retrieval_metrics"]


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
