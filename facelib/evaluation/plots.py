"""Matplotlib figures for evaluation reports.

Every function builds a :class:`matplotlib.figure.Figure` directly (no pyplot state, no
backend switch at import, so it works headless and in notebooks, where a returned Figure
displays inline) and returns it. With ``out=path`` the figure is also saved atomically, in
the format named by the suffix (``.png`` when there is none).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from facelib.io import atomic_path

__all__ = [
    "save_figure",
    "confusion_matrix_figure",
    "roc_figure",
    "score_histogram_figure",
    "per_distortion_figure",
    "embedding_map_figure",
    "retrieval_grid_figure",
    "history_figure",
]

_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h", "p")


def save_figure(fig: Figure, out: str | os.PathLike, dpi: int = 120) -> Path:
    """Save ``fig`` atomically to ``out``; the format comes from the suffix (default png)."""
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower() or "png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return out


def _finish(fig: Figure, out: str | os.PathLike | None) -> Figure:
    if out is not None:
        save_figure(fig, out)
    return fig


from facelib.evaluation.metrics import as_numpy as _np  # noqa: E402

# --------------------------------------------------------------------------- confusion


def _most_confused(cm: np.ndarray, max_labels: int) -> np.ndarray:
    """Indices of the labels involved in the largest off-diagonal cells, at most ``max_labels``."""
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(off, axis=None)[::-1]
    chosen: list[int] = []
    for f in flat:
        if off.flat[f] == 0 or len(chosen) >= max_labels:
            break
        for idx in np.unravel_index(f, off.shape):
            if int(idx) not in chosen and len(chosen) < max_labels:
                chosen.append(int(idx))
    if not chosen:  # no confusion at all: show the largest classes
        chosen = list(np.argsort(np.diag(cm))[::-1][:max_labels])
    return np.array(sorted(chosen))


def confusion_matrix_figure(
    y_true: Sequence,
    y_pred: Sequence,
    labels: Sequence | None = None,
    max_labels: int = 30,
    normalize: bool = False,
    out: str | os.PathLike | None = None,
) -> Figure:
    """Confusion matrix that stays readable at hundreds of identities.

    Up to ``max_labels`` labels: one labelled panel (+ colourbar). More: the full matrix
    without tick labels (+ colourbar) and a second panel with the sub-matrix of the
    ``max_labels`` most-confused identities, labelled and annotated with counts.
    ``labels`` defaults to the sorted union of true and predicted labels; ``normalize``
    shows row fractions instead of counts.
    """
    from sklearn.metrics import confusion_matrix

    yt = _np(y_true).astype(str)
    yp = _np(y_pred).astype(str)
    labels = np.array(sorted(set(yt.tolist()) | set(yp.tolist()))) if labels is None else np.asarray(labels, str)
    cm = confusion_matrix(yt, yp, labels=labels)
    shown = cm.astype(float)
    if normalize:
        shown = shown / np.maximum(shown.sum(1, keepdims=True), 1)
    n = len(labels)
    acc = float(np.trace(cm) / max(cm.sum(), 1))
    if n <= max_labels:
        fig = Figure(figsize=(max(5, 0.35 * n + 3), max(4, 0.35 * n + 2)), layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        im = ax.imshow(shown, cmap="Blues", interpolation="nearest")
        ax.set_xticks(range(n), labels, rotation=90, fontsize=8)
        ax.set_yticks(range(n), labels, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"confusion matrix ({n} identities, accuracy {acc:.3f})")
        fig.colorbar(im, ax=ax, shrink=0.8)
        return _finish(fig, out)

    fig = Figure(figsize=(16, 7.5), layout="constrained")
    ax_full, ax_sub = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.15]})
    vmax = max(np.percentile(shown[shown > 0], 99), 1e-9) if (shown > 0).any() else 1
    im = ax_full.imshow(shown, cmap="Blues", interpolation="nearest", vmax=vmax)
    ax_full.set_xticks([])
    ax_full.set_yticks([])
    ax_full.set_xlabel(f"predicted ({n} identities)")
    ax_full.set_ylabel("true")
    ax_full.set_title(f"all identities (accuracy {acc:.3f})")
    fig.colorbar(im, ax=ax_full, shrink=0.7)

    idx = _most_confused(cm, max_labels)
    sub = cm[np.ix_(idx, idx)]
    ax_sub.imshow(shown[np.ix_(idx, idx)], cmap="Reds", interpolation="nearest")
    sub_labels = [str(labels[i])[:18] for i in idx]
    ax_sub.set_xticks(range(len(idx)), sub_labels, rotation=90, fontsize=7)
    ax_sub.set_yticks(range(len(idx)), sub_labels, fontsize=7)
    if len(idx) <= 40:
        for (r, c), v in np.ndenumerate(sub):
            if v:
                ax_sub.text(c, r, str(v), ha="center", va="center", fontsize=6)
    ax_sub.set_xlabel("predicted")
    ax_sub.set_ylabel("true")
    ax_sub.set_title(f"{len(idx)} most-confused identities")
    return _finish(fig, out)


# --------------------------------------------------------------------------- verification


def roc_figure(
    scores: Sequence[float] | Mapping[str, tuple],
    same: Sequence[bool] | None = None,
    label: str | None = None,
    out: str | os.PathLike | None = None,
) -> Figure:
    """ROC curve (TAR vs FAR, log FAR axis) with AUC and EER in the legend.

    Pass ``scores [N]`` and ``same [N]``, or a mapping ``{name: (scores, same)}`` for
    several curves on one axes.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    from facelib.evaluation.metrics import verification_metrics

    curves = dict(scores) if isinstance(scores, Mapping) else {label or "model": (scores, same)}
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    for name, (s, y) in curves.items():
        s, y = _np(s).astype(float), _np(y).astype(bool)
        fpr, tpr, _ = roc_curve(y, s)
        m = verification_metrics(s, y, fars=())
        ax.plot(np.maximum(fpr, 1e-5), tpr, label=f"{name}: AUC {roc_auc_score(y, s):.3f}, EER {m['eer']:.3f}")
    # chance: a random score accepts impostors and genuine pairs alike, TAR = FAR. On a log FAR axis that is a
    # curve, so it is drawn through many points (two endpoints would draw a straight chord far above it)
    chance = np.geomspace(1e-5, 1, 200)
    ax.plot(chance, chance, ls=":", c="grey", lw=1, label="chance (TAR = FAR)")
    ax.set_xscale("log")
    ax.set_xlim(1e-4 if max(len(_np(v[0])) for v in curves.values()) > 2e4 else 1e-3, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.set_title("verification ROC")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right", fontsize=8)
    return _finish(fig, out)


def score_histogram_figure(
    scores: Sequence[float],
    same: Sequence[bool],
    threshold: float | None = None,
    bins: int = 60,
    out: str | os.PathLike | None = None,
    threshold_label: str = "threshold",
) -> Figure:
    """Density histograms of genuine and impostor pair scores, with an optional threshold line.

    ``threshold_label`` names the line in the legend (which rule chose it, on which pairs)."""
    s = _np(scores).astype(float)
    y = _np(same).astype(bool)
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    edges = np.linspace(s.min(), s.max(), bins + 1) if len(s) and s.max() > s.min() else bins
    ax.hist(s[~y], bins=edges, density=True, alpha=0.55, color="tab:red", label=f"impostor ({(~y).sum()})")
    ax.hist(s[y], bins=edges, density=True, alpha=0.55, color="tab:green", label=f"genuine ({y.sum()})")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1.2, label=f"{threshold_label} {threshold:.3f}")
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.set_title("pair score distributions")
    ax.legend(fontsize=8)
    return _finish(fig, out)


# --------------------------------------------------------------------------- identification


def per_distortion_figure(
    per_distortion: Mapping[str, float] | Mapping[str, Mapping[str, float]],
    title: str = "top-1 accuracy per distortion",
    out: str | os.PathLike | None = None,
) -> Figure:
    """Bar chart of accuracy per distortion (``{"clean": 0.9, "foggy": 0.7, ...}``).

    A mapping of mappings (``{"model": {...}, "pixel": {...}}``) draws grouped bars.
    """
    series = per_distortion
    if not series or not isinstance(next(iter(series.values())), Mapping):
        series = {"": per_distortion}
    kinds = sorted({k for d in series.values() for k in d}, key=lambda k: (k != "clean", k))
    fig = Figure(figsize=(max(6, 0.9 * len(kinds) * max(1, len(series)) / 1.5 + 2), 4), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(series)
    x = np.arange(len(kinds))
    for i, (name, d) in enumerate(series.items()):
        vals = [float(d.get(k, np.nan)) for k in kinds]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=name or None)
        for b, v in zip(bars, vals):
            if np.isfinite(v):
                ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, kinds, rotation=30)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("top-1")
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return _finish(fig, out)


def embedding_map_figure(
    embeddings,
    identities: Sequence[str],
    distortions: Sequence[str] | None = None,
    method: str = "pca",
    max_points: int = 2000,
    max_identities: int | None = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
) -> Figure:
    """2-D map of embeddings [N, D] (``method`` "pca" or "tsne"): colour = identity, marker = distortion.

    At most ``max_points`` points (seeded subsample); ``max_identities`` keeps only that
    many (seeded) identities so colours stay distinguishable.
    """
    e = _np(embeddings).astype(np.float32)
    ids = _np(identities).astype(str)
    dist = np.full(len(e), "", dtype=object) if distortions is None else _np(distortions).astype(str)
    rng = np.random.default_rng(seed)
    keep = np.arange(len(e))
    if max_identities is not None:
        uniq = np.unique(ids)
        if len(uniq) > max_identities:
            chosen = rng.choice(uniq, max_identities, replace=False)
            keep = keep[np.isin(ids, chosen)]
    if len(keep) > max_points:
        keep = np.sort(rng.choice(keep, max_points, replace=False))
    e, ids, dist = e[keep], ids[keep], dist[keep]
    if method == "pca":
        from sklearn.decomposition import PCA

        if len(e) >= 2:
            pca = PCA(n_components=2, random_state=seed).fit(e)
            xy, share = pca.transform(e), pca.explained_variance_ratio_
        else:
            xy, share = np.zeros((len(e), 2)), np.zeros(2)
        axis_names = [f"principal component {i + 1} ({share[i]:.0%} of the variance)" for i in range(2)]
    elif method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(e) - 1) / 3)))
        xy = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(e)
        axis_names = ["t-SNE 1 (no units: only neighbourhoods count)", "t-SNE 2"]
    else:
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
    uniq, code = np.unique(ids, return_inverse=True)
    from matplotlib import colormaps

    cmap = colormaps["tab20"] if len(uniq) <= 20 else colormaps["gist_ncar"]
    colours = cmap(code / max(len(uniq) - 1, 1)) if len(uniq) > 20 else cmap(code % 20)
    fig = Figure(figsize=(7, 6), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    kinds = sorted(set(dist.tolist()), key=lambda k: (k != "", k))
    for i, kind in enumerate(kinds):
        m = dist == kind
        ax.scatter(
            xy[m, 0], xy[m, 1], c=colours[m], marker=_MARKERS[i % len(_MARKERS)], s=18, alpha=0.8,
            edgecolors="none", label=kind or "clean",
        )
    ax.set_title(f"{method.upper()} of {len(e)} embeddings, {len(uniq)} identities (colour = identity)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel(axis_names[0], fontsize=8)
    ax.set_ylabel(axis_names[1], fontsize=8)
    if len(kinds) > 1:
        leg = ax.legend(title="marker = distortion", fontsize=7, markerscale=1.2)
        for h in leg.legend_handles:
            h.set_color("grey")
    return _finish(fig, out)


def retrieval_grid_figure(
    probe_paths: Sequence[str],
    match_paths: Sequence[str] | Sequence[Sequence[str]],
    correct: Sequence[bool],
    n: int = 8,
    scores: Sequence[float] | None = None,
    labels: Sequence[str] | None = None,
    out: str | os.PathLike | None = None,
) -> Figure:
    """Rows of probe | top match(es) for the ``n`` worst probes.

    Worst = wrong first; among them, with ``scores`` (best match score [Q]), the most
    confident mistakes first. ``match_paths`` is [Q] or [Q, K]; a wrong match gets a red
    title, a right one green. ``labels`` [Q] (e.g. the true identity) go in the probe titles.
    Unreadable or empty paths are drawn as blank cells.
    """
    from facelib.data.folders import load_image

    pp = _np(probe_paths).astype(str)
    mp = _np(match_paths).astype(str)
    if mp.ndim == 1:
        mp = mp[:, None]
    ok = _np(correct).astype(bool)
    order_key = np.zeros(len(pp)) if scores is None else -_np(scores).astype(float)
    order = np.lexsort((order_key, ok))[:n]
    n_rows, n_cols = max(len(order), 1), 1 + mp.shape[1]
    fig = Figure(figsize=(1.8 * n_cols, 1.9 * n_rows), layout="constrained")
    axes = np.asarray(fig.subplots(n_rows, n_cols, squeeze=False))

    def show(ax, path: str, title: str, colour: str = "black") -> None:
        ax.set_xticks([])
        ax.set_yticks([])
        if path:
            try:
                ax.imshow(load_image(path))
            except (OSError, ValueError, SyntaxError):
                ax.text(0.5, 0.5, "unreadable", ha="center", va="center", transform=ax.transAxes, fontsize=7)
        ax.set_title(title, fontsize=7, color=colour)

    for r, q in enumerate(order):
        name = f"{labels[q]}" if labels is not None else Path(pp[q]).name
        show(axes[r, 0], pp[q], f"probe: {name}"[:30])
        for c in range(mp.shape[1]):
            good = bool(ok[q]) if c == 0 else False
            score = f" {-order_key[q]:.2f}" if (scores is not None and c == 0) else ""
            show(axes[r, c + 1], mp[q, c], f"#{c + 1}{score} {Path(mp[q, c]).parent.name}"[:30],
                 "green" if good else ("red" if c == 0 else "black"))
    fig.suptitle(f"worst {len(order)} probes ({int((~ok).sum())} of {len(ok)} wrong)", fontsize=9)
    return _finish(fig, out)


# --------------------------------------------------------------------------- training


# y range per panel: rates and top-1 on [0, 1] and distances from 0, so a small change looks small
# (auto limits stretch two points of 0.21 and 0.26 over the whole panel); None: from 0 to the data
_HISTORY_LIMITS: dict[str, tuple[float, float] | None] = {
    "loss": None, "active triplet fraction": (0.0, 1.0), "mean distance": None, "val top-1": (0.0, 1.0),
}
_HISTORY_PANELS: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...] = (
    ("loss", (("loss", "train_loss"), ("val_loss",))),
    ("active triplet fraction", (("active_fraction", "frac_active", "active"),)),
    ("mean distance", (("pos_dist", "mean_pos_dist", "d_ap", "dist_pos"),
                       ("neg_dist", "mean_neg_dist", "d_an", "dist_neg"))),
    ("val top-1", (("val_top1", "top1", "val_cross_photo_top1", "val_acc"),)),
)


def history_figure(history: Sequence[Mapping[str, Any]], out: str | os.PathLike | None = None) -> Figure:
    """Four panels over epochs: loss, active-triplet fraction, positive/negative distance, val top-1.

    ``history`` is a list of per-epoch dicts (as in ``history.json``); missing keys leave
    a panel empty ("no data"). Each curve takes the first present key of its alias list:
    loss|train_loss, val_loss; active_fraction|frac_active|active; pos_dist|mean_pos_dist|d_ap,
    neg_dist|mean_neg_dist|d_an; val_top1|top1|val_cross_photo_top1|val_acc. The y axes are fixed
    (rates and top-1 on [0, 1], the loss and the distances from 0), and every point is labelled
    with its value, so a run of two or three epochs reads at a glance.
    """
    from facelib.training.setup import val_mode  # how the trainer named the val mode (imports torch)

    hist = list(history)
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(hist)]
    fig = Figure(figsize=(11, 7), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, (title, curves) in zip(axes, _HISTORY_PANELS):
        drawn = False
        for aliases in curves:
            key = next((k for k in aliases if any(k in h for h in hist)), None)
            if key is None:
                continue
            pts = [(e, h[key]) for e, h in zip(epochs, hist) if h.get(key) is not None]
            if pts:
                line, = ax.plot(*zip(*pts), marker="o", ms=4, label=key)
                for x, v in pts:
                    ax.annotate(f"{v:.3f}", (x, v), textcoords="offset points", xytext=(0, 5), ha="center",
                                fontsize=7, color=line.get_color())
                drawn = True
        limits = _HISTORY_LIMITS.get(title)
        if limits is not None:
            ax.set_ylim(*limits)
        elif drawn:
            ax.set_ylim(0, 1.15 * max(max(ln.get_ydata()) for ln in ax.get_lines()) or 1)
        if drawn:
            if len(ax.get_lines()) > 1:
                ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        scored = next((h for h in hist if "val_top1" in h), {}) if title == "val top-1" else {}
        ax.set_title(title + val_mode(scored))  # the val panel names its protocol and gallery mode
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    return _finish(fig, out)
