"""facelib.evaluation.ranking: CMC, Recall@K and mAP on hand-checked rankings."""

from __future__ import annotations

import numpy as np
import pytest

from facelib.evaluation.ranking import average_precision, cmc_curve, first_correct_rank, retrieval_metrics


def test_known_answer():
    # gallery labels: a a b c ; query 0 is "a", query 1 is "b", query 2 is "c" with its match hidden
    g = np.array(["a", "a", "b", "c"])
    q = np.array(["a", "b", "c"])
    s = np.array([[0.9, 0.1, 0.5, 0.2],      # ranking a(0.9) b c a  -> correct at ranks 1 and 4
                  [0.8, 0.7, 0.6, 0.1],      # ranking a a b c      -> correct at rank 3
                  [0.3, 0.2, 0.1, -np.inf]])  # its only "c" is hidden: no match
    assert first_correct_rank(s, q, g).tolist() == [0, 2, -1]
    ap = average_precision(s, q, g)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 4) / 2) and ap[1] == pytest.approx(1 / 3) and np.isnan(ap[2])
    np.testing.assert_allclose(cmc_curve(s, q, g, max_rank=4), [0.5, 0.5, 1.0, 1.0])
    m = retrieval_metrics(s, q, g, ks=(1, 3))
    assert m["map"] == pytest.approx((0.75 + 1 / 3) / 2)
    assert (m["recall_at_1"], m["recall_at_3"]) == (0.5, 1.0)
    assert (m["n_queries"], m["n_queries_without_match"]) == (2, 1)


def test_against_brute_force():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(30, 40))
    q, g = rng.integers(0, 5, 30), rng.integers(0, 5, 40)
    ap = average_precision(s, q, g)
    for i in range(30):
        order = np.argsort(-s[i])
        rel = g[order] == q[i]
        precs = [rel[: r + 1].mean() for r in np.flatnonzero(rel)]
        assert ap[i] == pytest.approx(np.mean(precs))
    cmc = cmc_curve(s, q, g, max_rank=40)
    assert np.all(np.diff(cmc) >= 0) and cmc[-1] == 1.0
    top1 = (g[s.argmax(1)] == q).mean()
    assert cmc[0] == pytest.approx(top1)


def test_shape_check():
    with pytest.raises(ValueError, match=r"\[Q, G\]"):
        cmc_curve(np.zeros((2, 3)), [0, 1], [0, 1])
