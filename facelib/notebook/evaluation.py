"""Evaluation views for notebook 04: the checkpoint, protocol and per-identity tables, thresholds, CMC."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from facelib.notebook.setup import NotebookSetup, check_pretrained
from facelib.notebook.tables import Table

__all__ = ["ensure_checkpoint", "protocol_table", "classification_table", "pixel_verification", "split_by_identity",
           "choose_thresholds", "threshold_table", "cmc_figure", "cross_photo_scores"]


def ensure_checkpoint(s: NotebookSetup, log: Callable[[str], None] = print) -> Path:
    """The checkpoint from notebook 03 when it exists, else a tiny one trained now (1 epoch, few steps)."""
    if s.checkpoint.is_file():
        log(f"using the checkpoint from notebook 03: {s.checkpoint}")
        return s.checkpoint
    out = s.run_dir / "quick" / "tb_model.pth"
    if out.is_file():
        log(f"no checkpoint from notebook 03; using the quick one trained earlier: {out}")
        return out
    cfg = s.config.replace(epochs=1, steps_per_epoch=min(s.config.steps_per_epoch or 4, 4), val_data=None,
                           out=str(out), progress=False, patience=None)
    log(f"no checkpoint from notebook 03 ({s.checkpoint}); training a quick one "
        f"(1 epoch x {cfg.steps_per_epoch} steps) so this notebook runs on its own")
    check_pretrained(cfg, log)
    from facelib.jobs import train

    train(cfg, log=lambda line: None)
    return out


def protocol_table(report) -> Table:
    """Model vs pixel baseline per identification protocol of a :class:`~facelib.evaluation.report.TestReport`."""
    from facelib.evaluation.protocols import Identification

    rows = []
    for name, r in report.results.items():
        if not isinstance(r, Identification):  # verification, open-set: not identification top-k
            continue
        b = report.baselines.get(name)
        rows.append([name + (" (primary)" if name == report.metrics["protocol"] else ""), r.top1, r.top5,
                     r.macro_f1, b.top1 if b is not None else float("nan"), r.n_probes, r.n_gallery])
    return Table(rows, ["protocol", "top-1", "top-5", "macro-F1", "pixel top-1", "probes", "gallery"])



def classification_table(report, max_identities: int = 12) -> Table:
    """scikit-learn's classification report of the primary protocol (``output_dict=True``) as a table:
    the ``max_identities`` identities with the lowest F1, then the averages."""
    from sklearn.metrics import classification_report

    a = report.primary
    d = classification_report(a.y_true, a.y_pred, labels=sorted(set(a.y_true)), output_dict=True,
                              zero_division=0)
    summary = {k: d.pop(k) for k in ("accuracy", "micro avg", "macro avg", "weighted avg") if k in d}
    worst = sorted(d.items(), key=lambda kv: kv[1]["f1-score"])[:max_identities]
    rows = [[name, r["precision"], r["recall"], r["f1-score"], int(r["support"])] for name, r in worst]
    for name, r in summary.items():
        if isinstance(r, dict):
            rows.append([name, r["precision"], r["recall"], r["f1-score"], int(r["support"])])
    mode = report.metrics.get("gallery")
    title = (f"{report.metrics['protocol']}{f' ({mode} gallery)' if mode else ''}: the {len(worst)} lowest-F1 of "
             f"{len(d)} identities, then the averages"
             + (f"; accuracy (top-1) {summary['accuracy']:.3f}" if "accuracy" in summary else ""))
    return Table(rows, ["identity", "precision", "recall", "F1", "probes"], title=title)


def pixel_verification(report, seed: int = 0):
    """The verification protocol on pixel embeddings of the same probes (same pairs, same seed), framed by the
    model's face crop as the report's own pixel baselines are."""
    from facelib.evaluation.baselines import pixel_baseline

    crop = report.metrics.get("model", {}).get("face_crop", 1.0)
    return pixel_baseline("verification", report.probes, seed=seed, face_crop=crop)


def split_by_identity(pairs: np.ndarray, identities: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint halves of verification pairs [N, 2]: ([N] bool, [N] bool).

    The identities are split in two seeded halves; a pair goes to a half when both its images'
    identities are in it (pairs across the halves are left out), so no person is in both.
    """
    names = np.unique(identities)
    first = set(np.random.default_rng(seed).permutation(names)[: len(names) // 2].tolist())
    in_first = np.isin(identities, list(first))
    a, b = in_first[pairs[:, 0]], in_first[pairs[:, 1]]
    return a & b, ~a & ~b


def choose_thresholds(scores, same, fars: Iterable[float] = (0.1, 0.01)) -> dict[str, float]:
    """Thresholds on the cosine score chosen on (scores, same): at each target FAR, at the equal error
    rate and at the best accuracy. ``{rule: threshold}``."""
    from facelib.evaluation.metrics import verification_metrics

    fars = tuple(fars)
    m = verification_metrics(np.asarray(scores, float), np.asarray(same, bool), fars=fars)
    rules: dict[str, float] = {}
    for f in fars:
        key = next((k for k in m if k.startswith("threshold_at_far_") and np.isclose(float(k[17:]), f)), None)
        if key is not None and np.isfinite(m[key]):
            rules[f"FAR <= {f:g}"] = float(m[key])
    rules["equal error rate"] = float(m["eer_threshold"])
    rules["best accuracy"] = float(m["best_threshold"])
    return rules


def threshold_table(rules: Mapping[str, float], scores, same, title: str | None = None) -> Table:
    """FAR, TAR (= 1 - FRR) and accuracy of each threshold in ``rules`` on the pairs (scores, same)."""
    s, y = np.asarray(scores, float), np.asarray(same, bool)
    rows = []
    for rule, t in rules.items():
        acc = s >= t
        rows.append([rule, t, float(acc[~y].mean()), float(acc[y].mean()), float((acc == y).mean())])
    head = f"{int(y.sum())} genuine / {int((~y).sum())} impostor pairs"
    return Table(rows, ["rule", "threshold", "FAR", "TAR", "accuracy"], title=f"{title}: {head}" if title else head)


def cmc_figure(curves: Mapping[str, np.ndarray], title: str = "CMC curve") -> Figure:
    """Cumulative match characteristic: share of probes whose first correct match is within rank k."""
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.subplots()
    for name, c in curves.items():
        ax.plot(np.arange(1, len(c) + 1), c, "o-", ms=3, label=f"{name} (rank-1 {c[0]:.2f})")
    ax.set_xlabel("rank k")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # ranks are whole numbers: no tick at 2.5
    ax.set_ylabel("probes matched within rank k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    return fig


def cross_photo_scores(s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image-level cross-photo scores of an :class:`~facelib.evaluation.embedding_set.EmbeddingSet` (unit rows).

    Gallery = every clean image; probes = every image of identities with 2+ clean photos; a
    probe's own source photo is hidden (score ``-inf``). Returns (scores [Q, G] cosine,
    probe indices [Q], gallery indices [G]), indices into ``s``.
    """
    g = np.flatnonzero(s.clean_mask)
    photos_of: dict[str, set] = {}
    for ident, photo in zip(s.identities[g].tolist(), s.photos[g].tolist()):
        photos_of.setdefault(ident, set()).add(photo)
    q = np.flatnonzero([len(photos_of.get(i, ())) >= 2 for i in s.identities.tolist()])
    scores = s.embeddings[q] @ s.embeddings[g].T
    scores[s.photos[q][:, None] == s.photos[g][None, :]] = -np.inf
    return scores, q, g
