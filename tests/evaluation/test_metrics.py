"""Known-answer tests for facelib.evaluation.metrics."""

from __future__ import annotations

import numpy as np
import pytest

from facelib.evaluation.metrics import (
    bootstrap_interval,
    dir_at_fpir,
    identification_metrics,
    l2_normalize,
    per_group_accuracy,
    rate_key,
    topk_accuracy,
    verification_metrics,
)


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).normal(size=(n, d)))


def test_identification_metrics_hand_computed():
    r = identification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    # a: P=1, R=1/2 -> F1 2/3; b: P=2/3, R=1 -> F1 4/5
    assert r == pytest.approx({"top1": 0.75, "macro_f1": (2 / 3 + 4 / 5) / 2, "n": 4})
    # predicting a label absent from the truth costs recall only; it is not averaged in
    r = identification_metrics(["a", "b"], ["a", "z"])
    assert r["top1"] == 0.5 and r["macro_f1"] == pytest.approx(0.5)


def test_topk_accuracy():
    top = np.array([["a", "b"], ["c", "b"], ["c", "d"]])
    assert topk_accuracy(["a", "b", "a"], top, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(["a", "b", "a"], top, 2) == pytest.approx(2 / 3)


def test_verification_known_set():
    # genuine 0.9 0.8 0.4 | impostor 0.7 0.3 0.2
    scores = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2]
    same = [1, 1, 1, 0, 0, 0]
    r = verification_metrics(scores, same, fars=(0.1, 0.5))
    assert r["roc_auc"] == pytest.approx(8 / 9)
    # at t=0.7: FRR 1/3 (0.4 rejected), FAR 1/3 (0.7 accepted)
    assert r["eer"] == pytest.approx(1 / 3)
    assert r["eer_threshold"] == pytest.approx(0.7)
    assert r["tar_at_far_1e-1"] == pytest.approx(2 / 3)
    assert r["threshold_at_far_1e-1"] == pytest.approx(0.8)
    assert r["tar_at_far_0.5"] == pytest.approx(1.0)
    assert r["threshold_at_far_0.5"] == pytest.approx(0.4)
    assert r["best_accuracy"] == pytest.approx(5 / 6)
    assert r["n_genuine"] == 3 and r["n_impostor"] == 3


def test_verification_eer_interpolated():
    # genuine 0.9 0.8 0.3 | impostor 0.5 0.2: FRR/FAR go (1/3, 0) at t=0.8 -> (1/3, 1/2) at 0.5
    # crossing on the segment (0, 1/3)->(1/2, 1/3) of (FAR, FRR): EER = 1/3
    r = verification_metrics([0.9, 0.8, 0.3, 0.5, 0.2], [1, 1, 1, 0, 0], fars=())
    assert r["eer"] == pytest.approx(1 / 3)
    assert r["eer_threshold"] == pytest.approx(0.5)


def test_verification_perfect_and_random():
    r = verification_metrics([0.9, 0.8, 0.7, 0.1, 0.0, -0.2], [1, 1, 1, 0, 0, 0])
    assert r["roc_auc"] == 1.0 and r["eer"] == 0.0 and r["best_accuracy"] == 1.0
    assert r["tar_at_far_1e-3"] == 1.0 and np.isfinite(r["threshold_at_far_1e-3"])
    rng = np.random.default_rng(0)
    r = verification_metrics(rng.normal(size=20000), rng.random(20000) < 0.5)
    assert abs(r["roc_auc"] - 0.5) < 0.02 and abs(r["eer"] - 0.5) < 0.02


def test_verification_degenerate_raises():
    with pytest.raises(ValueError, match="genuine"):
        verification_metrics([0.1, 0.2], [True, True])
    with pytest.raises(ValueError):
        verification_metrics([0.1, 0.2], [True])


def test_dir_at_fpir_hand_computed():
    unknown = [0.9, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.04, 0.03, 0.02]
    known = [0.95, 0.6, 0.5, 0.8]
    correct = [True, True, True, False]
    r = dir_at_fpir(known, correct, unknown, fpirs=(0.1, 0.01))
    # FPIR 0.1: accept one unknown (0.9) -> threshold just above 0.5; known accepted+right: 0.95, 0.6
    assert r["dir_at_fpir_1e-1"] == pytest.approx(0.5)
    assert r["fpir_actual_1e-1"] == pytest.approx(0.1)
    assert 0.5 < r["threshold_at_fpir_1e-1"] < 0.5001
    # FPIR 0.01: no unknown accepted -> threshold just above 0.9; only 0.95
    assert r["dir_at_fpir_1e-2"] == pytest.approx(0.25)
    assert r["fpir_actual_1e-2"] == 0.0
    assert r["n_known"] == 4 and r["n_unknown"] == 10


def test_bootstrap_interval_known_answers():
    # every group all-correct or all-wrong in the same way: no spread at all
    assert bootstrap_interval([1, 1, 1, 1], ["a", "a", "b", "b"]) == {"accuracy": 1.0, "low": 1.0, "high": 1.0,
                                                                        "n_groups": 2}
    # 40 groups of 10 probes, half the groups right: the interval holds 0.5 and is deterministic by seed
    correct = np.repeat(np.arange(40) % 2, 10)
    groups = np.repeat(np.arange(40), 10)
    r = bootstrap_interval(correct, groups, seed=3)
    assert r["accuracy"] == 0.5 and r["n_groups"] == 40
    assert r["low"] < 0.5 < r["high"] and r == bootstrap_interval(correct, groups, seed=3)
    # clustered probes: wider than treating the same 400 probes as independent (one group each)
    flat = bootstrap_interval(correct, np.arange(400), seed=3)
    assert (r["high"] - r["low"]) > 2.5 * (flat["high"] - flat["low"])
    # the per-probe interval is near the binomial one: 1.96 * sqrt(0.25 / 400) = 0.049 each side
    assert abs((flat["high"] - flat["low"]) / 2 - 0.049) < 0.01
    with pytest.raises(ValueError, match="equal length"):
        bootstrap_interval([1, 0], ["a"])
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval([1, 0], ["a", "b"], level=1.0)


def test_per_group_accuracy_and_rate_key():
    r = per_group_accuracy([1, 0, 1, 1], ["clean", "foggy", "foggy", "clean"])
    assert r == {"clean": 1.0, "foggy": 0.5}
    assert all(isinstance(v, float) for v in r.values())
    assert [rate_key(x) for x in (0.1, 1e-2, 1e-3, 0.05)] == ["1e-1", "1e-2", "1e-3", "0.05"]
