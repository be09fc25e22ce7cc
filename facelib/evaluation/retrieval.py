"""One masked, chunked cosine top-k: every search in facelib (protocols, ``identify``, benchmarks) goes here.

Inputs are L2-normalised, so cosine = dot product. Two exact backends:

``torch``  chunked matmul + ``torch.topk``: one ``[chunk, G]`` float32 score block at a time
           (4096 x 100k = 1.6 GB), never ``[Q, G]``. Group masks are applied to each block.
``faiss``  ``faiss.IndexFlatIP`` (the ``[faiss]`` extra). Masks are applied by over-fetching:
           a query can lose at most ``m`` rows to its own group (``m`` = the largest gallery
           group), so the top ``k + m`` rows always hold the ``k`` best allowed ones.

``backend="auto"`` takes FAISS only when it is installed, nothing is masked and the gallery has at
least :data:`FAISS_MIN_GALLERY` rows; else torch. On the 2-core development CPU the two measured on par
(``docs/lab-notes.md`` section 7): exact flat search is a matrix product either way, so FAISS is an
option here, not a speed-up.
"""

from __future__ import annotations

import numpy as np

from facelib.evaluation.metrics import as_numpy

__all__ = ["BACKENDS", "FAISS_MIN_GALLERY", "faiss_available", "resolve_backend", "topk", "topk_labels",
           "masked_scores"]

BACKENDS: tuple[str, ...] = ("auto", "torch", "faiss")
FAISS_MIN_GALLERY = 50_000


def _faiss():
    try:
        import faiss  # type: ignore

        return faiss
    except ImportError:
        return None


def faiss_available() -> bool:
    """True when the ``faiss`` module (``pip install faiss-cpu``) imports."""
    return _faiss() is not None


def resolve_backend(backend: str, n_gallery: int, masked: bool = False) -> str:
    """``"torch"`` or ``"faiss"`` for a search over ``n_gallery`` rows (see the module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "faiss" if n_gallery >= FAISS_MIN_GALLERY and not masked and faiss_available() else "torch"
    if backend == "faiss" and not faiss_available():
        raise ImportError("backend='faiss' but faiss is not installed (pip install faiss-cpu)")
    return backend


def _groups(query_groups, gallery_groups, n_q: int, n_g: int) -> tuple[np.ndarray, np.ndarray] | None:
    if (query_groups is None) != (gallery_groups is None):
        raise ValueError("pass both query_groups and gallery_groups, or neither")
    if query_groups is None:
        return None
    qg = as_numpy(query_groups).astype(np.int64, copy=False)
    gg = as_numpy(gallery_groups).astype(np.int64, copy=False)
    if qg.shape != (n_q,) or gg.shape != (n_g,):
        raise ValueError(f"query_groups must be [Q]={n_q} and gallery_groups [G]={n_g}; got {qg.shape}, {gg.shape}")
    return qg, gg


def _torch_topk(q, g, k, groups, chunk) -> tuple[np.ndarray, np.ndarray]:
    import torch

    n_q = len(q)
    out_s = np.empty((n_q, k), np.float32)
    out_i = np.empty((n_q, k), np.int64)
    gt = torch.from_numpy(g)
    gg = torch.from_numpy(groups[1]) if groups is not None else None
    with torch.inference_mode():
        for a in range(0, n_q, chunk):
            sl = slice(a, min(a + chunk, n_q))
            s = torch.from_numpy(q[sl]) @ gt.T  # [c, G]
            if groups is not None:
                qg = torch.from_numpy(groups[0][sl])
                s.masked_fill_(qg[:, None] == gg[None, :], float("-inf"))
            ts, ti = torch.topk(s, k, dim=1, largest=True, sorted=True)
            out_s[sl], out_i[sl] = ts.numpy(), ti.numpy()
    return out_s, out_i


def _faiss_topk(q, g, k, groups) -> tuple[np.ndarray, np.ndarray]:
    faiss = _faiss()
    index = faiss.IndexFlatIP(g.shape[1])
    index.add(g)
    if groups is None:
        s, i = index.search(q, k)
        return s.astype(np.float32), i.astype(np.int64)
    qg, gg = groups
    m = int(np.unique(gg, return_counts=True)[1].max())
    kk = min(k + m, len(g))
    s, i = index.search(q, kk)
    s = s.astype(np.float32)
    i = i.astype(np.int64)
    s[(i < 0) | (gg[np.clip(i, 0, None)] == qg[:, None])] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]  # FAISS rows are sorted: stable keeps ties in place
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)


def topk(
    queries,
    gallery,
    k: int = 5,
    *,
    query_groups=None,
    gallery_groups=None,
    chunk: int = 4096,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` gallery rows by cosine similarity for every query.

    Args:
        queries: [Q, D], gallery: [G, D], L2-normalised (numpy, torch or lists).
        k: results per query; clamped to G.
        query_groups, gallery_groups: optional int [Q], [G]; a query never matches a gallery
            row of its own group (e.g. its own source photo).
        chunk: queries per matrix product (torch backend).
        backend: ``"auto"``, ``"torch"`` or ``"faiss"`` (see the module docstring).
    Returns:
        scores [Q, k] float32, descending; indices [Q, k] int64. Where fewer than ``k`` rows are
        allowed, the missing slots hold score ``-inf`` and index ``-1``.
    """
    q = np.ascontiguousarray(as_numpy(queries), dtype=np.float32)
    g = np.ascontiguousarray(as_numpy(gallery), dtype=np.float32)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(f"need queries [Q, D] and gallery [G, D]; got {q.shape} and {g.shape}")
    n_q, n_g = q.shape[0], g.shape[0]
    groups = _groups(query_groups, gallery_groups, n_q, n_g)
    k = int(min(k, n_g))
    if k <= 0 or n_q == 0:
        return np.zeros((n_q, max(k, 0)), np.float32), np.zeros((n_q, max(k, 0)), np.int64)
    if resolve_backend(backend, n_g, masked=groups is not None) == "faiss":
        s, i = _faiss_topk(q, g, k, groups)
    else:
        s, i = _torch_topk(q, g, k, groups, max(1, int(chunk)))
    i[np.isneginf(s)] = -1
    return s, i


def topk_labels(queries, gallery, labels, k: int = 5, *, query_groups=None, gallery_groups=None, chunk: int = 4096,
                backend: str = "auto") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` labels per query, a label scoring the max over its allowed gallery rows.

    Exact: with at most ``L`` rows per label and ``m`` per group, the best ``k * L + m`` rows
    hold the best row of each of the ``k`` best labels.

    Args:
        labels: int [G] in ``0..C-1`` (e.g. the identity of each gallery image).
        others: as :func:`topk`.
    Returns:
        scores [Q, k] float32 descending, label [Q, k] int64, row [Q, k] int64 (the gallery row
        that gave the label its score); ``-inf`` / ``-1`` / ``-1`` where fewer labels are allowed.
    """
    lab = as_numpy(labels).astype(np.int64, copy=False)
    g = as_numpy(gallery)
    if lab.shape != (len(g),):
        raise ValueError(f"labels must be [G]={len(g)}, got {lab.shape}")
    n_q = len(as_numpy(queries))
    n_labels = int(lab.max()) + 1 if len(lab) else 0
    k = int(min(k, n_labels))
    if k <= 0 or n_q == 0:
        empty = np.zeros((n_q, max(k, 0)))
        return empty.astype(np.float32), empty.astype(np.int64), empty.astype(np.int64)
    per_label = int(np.bincount(lab).max())
    per_group = 0 if gallery_groups is None else int(np.unique(as_numpy(gallery_groups), return_counts=True)[1].max())
    s, rows = topk(queries, g, k * per_label + per_group, query_groups=query_groups,
                   gallery_groups=gallery_groups, chunk=chunk, backend=backend)
    row_lab = np.where(rows >= 0, lab[np.clip(rows, 0, None)], -1)  # [Q, kk]
    kk = row_lab.shape[1]
    key = np.arange(n_q)[:, None] * (n_labels + 1) + (row_lab + 1)
    first = np.zeros(n_q * kk, bool)
    first[np.unique(key.ravel(), return_index=True)[1]] = True  # first (best) row of each label
    keep = first.reshape(n_q, kk) & (row_lab >= 0)
    rank = np.cumsum(keep, axis=1) - 1
    r, c = np.nonzero(keep & (rank < k))
    out_s = np.full((n_q, k), -np.inf, np.float32)
    out_l = np.full((n_q, k), -1, np.int64)
    out_r = np.full((n_q, k), -1, np.int64)
    out_s[r, rank[r, c]] = s[r, c]
    out_l[r, rank[r, c]] = row_lab[r, c]
    out_r[r, rank[r, c]] = rows[r, c]
    return out_s, out_l, out_r


def masked_scores(queries, gallery, query_groups=None, gallery_groups=None) -> np.ndarray:
    """Every cosine score [Q, G] float32 of L2-normalised ``queries`` [Q, D] and ``gallery`` [G, D], with
    ``-inf`` where a query meets its own group (the same rule as :func:`topk`). For scoring a query's
    ranking of the whole gallery (mAP); call it on chunks of queries to bound the memory."""
    q = np.ascontiguousarray(as_numpy(queries), dtype=np.float32)
    g = np.ascontiguousarray(as_numpy(gallery), dtype=np.float32)
    scores = q @ g.T
    groups = _groups(query_groups, gallery_groups, len(q), len(g))
    if groups is not None:
        scores[groups[0][:, None] == groups[1][None, :]] = -np.inf
    return scores
