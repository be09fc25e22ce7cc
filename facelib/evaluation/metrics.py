"""Pure metric functions: identification and verification figures (search lives in :mod:`facelib.evaluation.retrieval`).

Inputs are numpy arrays (torch tensors and lists are accepted through ``np.asarray``);
outputs are plain dicts of Python floats/ints so they go straight into JSON.

Rate keys are spelled with :func:`rate_key`: ``tar_at_far_1e-2``, ``dir_at_fpir_1e-1``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from facelib.errors import NotApplicable

__all__ = [
    "as_numpy",
    "identification_metrics",
    "topk_accuracy",
    "verification_metrics",
    "dir_at_fpir",
    "per_group_accuracy",
    "bootstrap_interval",
    "rate_key",
    "l2_normalize",
]


def as_numpy(x) -> np.ndarray:
    """numpy view of an array-like or a (possibly CUDA / grad-tracking) torch tensor."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def rate_key(rate: float) -> str:
    """``0.01 -> '1e-2'``, ``0.1 -> '1e-1'``, ``0.05 -> '0.05'`` (used in result keys)."""
    exp = math.log10(rate) if rate > 0 else float("nan")
    if not math.isnan(exp) and abs(exp - round(exp)) < 1e-9:
        return f"1e{int(round(exp))}"
    return f"{rate:g}"


def l2_normalize(x, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x`` [N, D] scaled to unit L2 norm (float32); zero rows stay zero."""
    x = np.asarray(as_numpy(x), dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, eps)


# --------------------------------------------------------------------------- identification


def topk_accuracy(y_true, topk_labels, k: int | None = None) -> float:
    """Fraction of queries whose true label is among the first ``k`` columns of ``topk_labels`` [Q, K]."""
    y = as_numpy(y_true)
    t = as_numpy(topk_labels)
    if t.ndim == 1:
        t = t[:, None]
    if k is not None:
        t = t[:, :k]
    if len(y) == 0:
        return float("nan")
    return float(np.mean(np.any(t == y[:, None], axis=1)))


def identification_metrics(y_true, y_pred, labels: Sequence | None = None) -> dict:
    """``{"top1", "macro_f1", "n"}`` for a closed-set prediction.

    ``macro_f1`` is sklearn's macro F1 over ``labels`` (default: the true labels present),
    with ``zero_division=0``: predictions of identities that never occur as truth lower the
    precision of nothing but still cost the recall of the true class.
    """
    from sklearn.metrics import f1_score

    y_true = as_numpy(y_true)
    y_pred = as_numpy(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    n = int(len(y_true))
    if n == 0:
        return {"top1": float("nan"), "macro_f1": float("nan"), "n": 0}
    if labels is None:
        labels = np.unique(y_true)
    f1 = f1_score(y_true, y_pred, labels=list(labels), average="macro", zero_division=0)
    return {"top1": float(np.mean(y_true == y_pred)), "macro_f1": float(f1), "n": n}


def per_group_accuracy(correct, groups) -> dict[str, float]:
    """Mean of ``correct`` [Q] bool within each value of ``groups`` [Q] (sorted keys)."""
    c = as_numpy(correct).astype(bool)
    g = as_numpy(groups).astype(str)
    if c.shape != g.shape:
        raise ValueError(f"correct {c.shape} and groups {g.shape} differ in shape")
    return {str(name): float(c[g == name].mean()) for name in sorted(set(g.tolist()))}


def bootstrap_interval(correct, groups, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Accuracy of ``correct`` [Q] bool with a percentile interval from a cluster bootstrap over ``groups``
    [Q] (e.g. the probe's identity): whole groups are resampled with replacement, because the probes of
    one person (one photo and its distorted copies) succeed or fail together, so the probes are not
    independent and a per-probe binomial interval would be too narrow.

    Returns ``{"accuracy", "low", "high", "n_groups"}``.
    """
    c = as_numpy(correct).astype(bool)
    g = as_numpy(groups).astype(str)
    if c.shape != g.shape or c.ndim != 1:
        raise ValueError(f"correct {c.shape} and groups {g.shape} must be 1-D of equal length")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if c.size == 0:
        raise NotApplicable("no probes")
    _, inverse = np.unique(g, return_inverse=True)
    hits = np.bincount(inverse, weights=c, minlength=inverse.max() + 1)  # per group
    sizes = np.bincount(inverse, minlength=inverse.max() + 1).astype(float)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(sizes), size=(n_boot, len(sizes)))  # [n_boot, groups]
    acc = hits[draw].sum(axis=1) / sizes[draw].sum(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(acc, [tail, 100.0 - tail])
    return {"accuracy": float(c.mean()), "low": float(low), "high": float(high), "n_groups": int(len(sizes))}


# --------------------------------------------------------------------------- verification


def _finite_threshold(t: float, scores: np.ndarray) -> float:
    """sklearn puts ``inf`` first in roc thresholds; report just above the top score instead."""
    if np.isfinite(t):
        return float(t)
    return float(np.nextafter(np.float32(scores.max()), np.float32(np.inf)))


def verification_metrics(scores, same, fars: Sequence[float] = (1e-1, 1e-2, 1e-3)) -> dict:
    """Verification figures for pair scores [N] with ground truth ``same`` [N] bool.

    A pair is accepted when ``score >= threshold``.

    Returns a dict with ``roc_auc``; ``eer`` (where the false-reject and false-accept rates
    meet, linearly interpolated along the ROC) and ``eer_threshold`` (threshold of the
    first ROC point with FAR >= FRR); for each FAR ``tar_at_far_<r>`` (highest TAR with
    FAR <= r) and ``threshold_at_far_<r>``; ``best_accuracy``/``best_threshold``;
    ``n_genuine``, ``n_impostor``.

    Raises:
        ValueError: lengths differ, or the pairs are all genuine / all impostor.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    s = as_numpy(scores).astype(np.float64).ravel()
    y = as_numpy(same).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores ({s.size}) and same ({y.size}) differ in length")
    n_gen, n_imp = int(y.sum()), int((~y).sum())
    if n_gen == 0 or n_imp == 0:
        raise NotApplicable(
            f"verification needs both genuine and impostor pairs; got {n_gen} genuine and {n_imp} impostor"
        )
    if not np.all(np.isfinite(s)):
        raise ValueError("verification scores contain NaN or inf")
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # goes from 1 (threshold inf) down to -1
    diff[np.abs(diff) < 1e-12] = 0.0  # 1 - 2/3 vs 1/3 in floating point
    j = int(np.argmax(diff <= 0))
    if diff[j] == 0 or j == 0:
        eer = float(fpr[j])
    else:
        t = diff[j - 1] / (diff[j - 1] - diff[j])
        eer = float(fpr[j - 1] + t * (fpr[j] - fpr[j - 1]))
    out: dict = {
        "roc_auc": float(roc_auc_score(y, s)),
        "eer": eer,
        "eer_threshold": _finite_threshold(thr[j], s),
    }
    for far in fars:
        ok = np.flatnonzero(fpr <= far + 1e-12)
        best = ok[np.argmax(tpr[ok])]  # fpr is non-decreasing, ok is never empty (fpr[0] = 0)
        out[f"tar_at_far_{rate_key(far)}"] = float(tpr[best])
        out[f"threshold_at_far_{rate_key(far)}"] = _finite_threshold(thr[best], s)
    acc = (tpr * n_gen + (1.0 - fpr) * n_imp) / (n_gen + n_imp)
    b = int(np.argmax(acc))
    out["best_accuracy"] = float(acc[b])
    out["best_threshold"] = _finite_threshold(thr[b], s)
    out["n_genuine"] = n_gen
    out["n_impostor"] = n_imp
    return out


def dir_at_fpir(known_scores, known_correct, unknown_scores, fpirs: Sequence[float] = (0.1, 0.01)) -> dict:
    """Open-set identification: detection-and-identification rate at false-positive identification rates.

    Args:
        known_scores: [Qk] best gallery score of each probe whose identity IS in the gallery.
        known_correct: [Qk] bool, its rank-1 identity was right.
        unknown_scores: [Qu] best gallery score of each probe whose identity is NOT in the gallery.
    For each ``fpir`` the threshold ``t`` is the lowest one that accepts (``score >= t``) at most
    ``fpir`` of the unknown probes; ``dir_at_fpir_<r>`` is the fraction of known probes that are
    both accepted and correctly identified, ``threshold_at_fpir_<r>`` the threshold and
    ``fpir_actual_<r>`` the achieved FPIR (ties can make it lower than asked).
    """
    ks = as_numpy(known_scores).astype(np.float64).ravel()
    kc = as_numpy(known_correct).astype(bool).ravel()
    us = np.sort(as_numpy(unknown_scores).astype(np.float64).ravel())[::-1]
    if ks.shape != kc.shape:
        raise ValueError("known_scores and known_correct differ in length")
    if len(ks) == 0 or len(us) == 0:
        raise NotApplicable(f"DIR@FPIR needs known and unknown probes; got {len(ks)} known, {len(us)} unknown")
    out: dict = {"n_known": int(len(ks)), "n_unknown": int(len(us)), "rank1_known": float(kc.mean())}
    for fpir in fpirs:
        m = int(math.floor(fpir * len(us) + 1e-9))  # unknowns we may accept
        if m >= len(us):
            t = float(min(us.min(), ks.min()))
        else:
            t = float(np.nextafter(us[m], np.inf))  # accept only scores strictly above us[m]
        key = rate_key(fpir)
        out[f"dir_at_fpir_{key}"] = float(np.mean(kc & (ks >= t)))
        out[f"threshold_at_fpir_{key}"] = t
        out[f"fpir_actual_{key}"] = float(np.mean(us >= t))
    return out
