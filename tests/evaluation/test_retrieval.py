"""facelib.evaluation.retrieval: the masked chunked top-k against brute force, both backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelib.evaluation import retrieval
from facelib.evaluation.metrics import l2_normalize
from facelib.evaluation.retrieval import resolve_backend, topk, topk_labels

needs_faiss = pytest.mark.skipif(not retrieval.faiss_available(), reason="faiss not installed (pip install faiss-cpu)")


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).normal(size=(n, d)))


def _brute(q, g, k, mask=None):
    s = q.astype(np.float64) @ g.T.astype(np.float64)
    if mask is not None:
        s[mask] = -np.inf
    idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, idx, 1), idx


@pytest.mark.parametrize("backend", ["torch", pytest.param("faiss", marks=needs_faiss)])
@pytest.mark.parametrize("chunk", [1, 3, 7, 20, 4096])
def test_topk_equals_brute_force(chunk, backend):
    q, g = _unit(20, 8, 0), _unit(13, 8, 1)
    s, i = topk(q, g, k=5, chunk=chunk, backend=backend)
    bs, bi = _brute(q, g, 5)
    assert s.shape == (20, 5) and s.dtype == np.float32 and i.dtype == np.int64
    np.testing.assert_allclose(s, bs, atol=1e-5)
    np.testing.assert_array_equal(i, bi)


@pytest.mark.parametrize("backend", ["torch", pytest.param("faiss", marks=needs_faiss)])
@pytest.mark.parametrize("chunk", [2, 5, 100])
def test_topk_group_mask(chunk, backend):
    q, g = _unit(12, 6, 2), _unit(9, 6, 3)
    qg = np.arange(12) % 4
    gg = np.arange(9) % 4
    mask = qg[:, None] == gg[None, :]
    s, i = topk(q, g, k=3, chunk=chunk, query_groups=qg, gallery_groups=gg, backend=backend)
    bs, bi = _brute(q, g, 3, mask)
    np.testing.assert_allclose(s, bs, atol=1e-5)
    np.testing.assert_array_equal(i, bi)
    assert not np.any(gg[i] == qg[:, None])


def test_topk_clamps_k_and_marks_empty_slots():
    q, g = _unit(3, 4, 4), _unit(2, 4, 5)
    s, i = topk(torch.from_numpy(q), torch.from_numpy(g), k=10)  # tensors accepted
    assert s.shape == (3, 2)
    s, i = topk(q, g, k=2, query_groups=[0, 0, 1], gallery_groups=[0, 1])
    assert i[0, 0] == 1 and i[0, 1] == -1 and np.isneginf(s[0, 1])
    assert i[2, 0] == 0 and i[2, 1] == -1
    with pytest.raises(ValueError):
        topk(q, g, query_groups=[0, 0, 1])


def _brute_labels(q, g, labels, k, mask=None):
    s = q.astype(np.float64) @ g.T.astype(np.float64)
    if mask is not None:
        s[mask] = -np.inf
    n = labels.max() + 1
    per = np.full((len(q), n), -np.inf)
    for c in range(n):
        per[:, c] = s[:, labels == c].max(axis=1)
    idx = np.argsort(-per, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(per, idx, 1), idx


@pytest.mark.parametrize("backend", ["torch", pytest.param("faiss", marks=needs_faiss)])
@pytest.mark.parametrize("masked", [False, True])
def test_topk_labels_equals_brute_force(backend, masked):
    q, g = _unit(30, 8, 6), _unit(40, 8, 7)
    labels = np.random.default_rng(8).integers(0, 9, 40)
    qg, gg = (np.arange(30) % 5, np.arange(40) % 5) if masked else (None, None)
    mask = qg[:, None] == gg[None, :] if masked else None
    s, lab, rows = topk_labels(q, g, labels, k=4, query_groups=qg, gallery_groups=gg, chunk=7, backend=backend)
    bs, bl = _brute_labels(q, g, labels, 4, mask)
    np.testing.assert_allclose(s, bs, atol=1e-5)
    np.testing.assert_array_equal(lab, bl)
    assert np.all(labels[rows] == lab)  # the row that gave each label its score
    np.testing.assert_allclose(np.einsum("qkd,qd->qk", g[rows], q), s, atol=1e-5)
    if masked:
        assert not np.any(gg[rows] == qg[:, None])


def test_topk_labels_fewer_labels_than_k():
    q, g = _unit(2, 4, 9), _unit(3, 4, 10)
    s, lab, rows = topk_labels(q, g, np.array([0, 0, 1]), k=5, query_groups=[0, 1], gallery_groups=[1, 1, 0])
    assert s.shape == (2, 2)
    # query 0 (group 0) may only see rows 0 and 1 (label 0); query 1 (group 1) only row 2 (label 1)
    assert lab[0].tolist() == [0, -1] and rows[0, 0] in (0, 1) and np.isneginf(s[0, 1])
    assert lab[1].tolist() == [1, -1] and rows[1].tolist() == [2, -1]
    with pytest.raises(ValueError, match="labels"):
        topk_labels(q, g, np.array([0, 1]), k=1)


@needs_faiss
@pytest.mark.parametrize("masked", [False, True])
def test_faiss_and_torch_agree(masked):
    q, g = _unit(200, 16, 11), _unit(500, 16, 12)
    kw = dict(query_groups=np.arange(200) % 50, gallery_groups=np.arange(500) % 50) if masked else {}
    st, it = topk(q, g, k=10, backend="torch", **kw)
    sf, i_f = topk(q, g, k=10, backend="faiss", **kw)
    np.testing.assert_allclose(st, sf, atol=1e-5)
    assert (it == i_f).mean() > 0.999  # equal up to float ties


def test_resolve_backend(monkeypatch):
    assert resolve_backend("torch", 10**9) == "torch"
    assert resolve_backend("auto", retrieval.FAISS_MIN_GALLERY - 1) == "torch"
    assert resolve_backend("auto", retrieval.FAISS_MIN_GALLERY, masked=True) == "torch"
    monkeypatch.setattr(retrieval, "_faiss", lambda: None)
    assert resolve_backend("auto", retrieval.FAISS_MIN_GALLERY) == "torch"
    with pytest.raises(ImportError, match="faiss-cpu"):
        resolve_backend("faiss", 10)
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("annoy", 10)


@needs_faiss
def test_auto_takes_faiss_for_large_galleries(monkeypatch):
    assert resolve_backend("auto", retrieval.FAISS_MIN_GALLERY) == "faiss"
    calls = []
    real = retrieval._faiss_topk
    monkeypatch.setattr(retrieval, "_faiss_topk", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(retrieval, "FAISS_MIN_GALLERY", 100)
    topk(_unit(5, 4, 13), _unit(100, 4, 14), k=3)
    topk(_unit(5, 4, 13), _unit(99, 4, 14), k=3)
    topk(_unit(5, 4, 13), _unit(100, 4, 14), k=3, query_groups=np.zeros(5), gallery_groups=np.arange(100))
    assert calls == [1]  # large and unmasked only
