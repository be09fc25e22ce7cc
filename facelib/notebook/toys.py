"""Toy geometry for notebook 02: 2-D batches, what each miner picks, toy training runs and the collapse demo."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from facelib.notebook.tables import Table

__all__ = ["toy_batch", "triplet_parts", "mining_table", "triplet_diagram_figure", "mining_figure",
           "difficulty_histogram_figure", "toy_training", "toy_training_figure", "toy_clusters", "toy_embedder",
           "collapse_run", "collapse_figure"]


def toy_batch(p: int = 4, k: int = 3, seed: int = 3, spread: float = 0.45):
    """A P x K batch of 2-D "embeddings": (points [P*K, 2] float tensor, labels [P*K] long tensor).

    Identity centres sit on a circle of radius 1; points scatter around them with ``spread``,
    so some identities overlap (hard triplets) and some do not (easy ones).
    """
    import torch

    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, p, endpoint=False) + rng.uniform(0, 0.3)
    centres = np.stack([np.cos(angles), np.sin(angles)], 1)
    pts = np.repeat(centres, k, 0) + rng.normal(0, spread, (p * k, 2))
    labels = np.repeat(np.arange(p), k)
    return torch.tensor(pts, dtype=torch.float32), torch.tensor(labels, dtype=torch.long)



def triplet_parts(emb, labels, miner: str, margin: float):
    """What ``miner`` picks on (emb [B, D], labels [B]), as numpy arrays: a, p, n [T], d_ap, d_an [T] and
    the per-triplet loss [T] (``TripletLoss(reduction="none")``)."""
    import torch

    from facelib.training.distances import pairwise_distances
    from facelib.training.losses import TripletLoss
    from facelib.training.miners import get_miner

    emb = emb.detach().float()
    a, p, n = get_miner(miner)(emb, labels, margin=margin, generator=torch.Generator().manual_seed(0))
    d = pairwise_distances(emb)
    loss, _ = TripletLoss(margin=margin, reduction="none")(emb, a, p, n)
    return a.numpy(), p.numpy(), n.numpy(), d[a, p].numpy(), d[a, n].numpy(), loss.detach().numpy()


def mining_table(emb, labels, margin: float = 0.2, miners: Sequence[str] = ("random", "batch_all", "batch_hard",
                                                                            "semi_hard")) -> Table:
    """Per miner: triplets picked, how many are hard / semi-hard / easy, active (loss > 0), mean loss."""
    rows = []
    for m in miners:
        a, _, _, d_ap, d_an, loss = triplet_parts(emb, labels, m, margin)
        gap = d_an - d_ap
        active = loss > 1e-12
        rows.append([m, len(a), int((gap < 0).sum()), int(((gap >= 0) & (gap < margin)).sum()),
                     int((gap >= margin).sum()), int(active.sum()),
                     float(loss[active].mean()) if active.any() else 0.0])
    return Table(rows, ["miner", "triplets", "hard", "semi-hard", "easy", "active", "mean active loss"],
                 title=f"{len(labels)} embeddings, margin {margin}")


def triplet_diagram_figure(margin: float = 0.5) -> Figure:
    """The triplet loss in 2-D: anchor, positive, and three negatives (hard, semi-hard, easy)
    relative to the circles of radius d(a,p) and d(a,p) + margin around the anchor."""
    from matplotlib.patches import Circle

    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.15, 1]})
    A, P = np.array([0.0, 0.0]), np.array([0.9, 0.45])
    d_ap = float(np.linalg.norm(P - A))
    ax.add_patch(Circle(A, d_ap + margin, color="tab:orange", alpha=0.18, lw=0))
    ax.add_patch(Circle(A, d_ap, color="tab:red", alpha=0.18, lw=0))
    ax.add_patch(Circle(A, d_ap, fill=False, ls="--", color="tab:green"))
    ax.add_patch(Circle(A, d_ap + margin, fill=False, ls=":", color="tab:orange"))
    negs = {"hard": (A + 0.75 * d_ap * np.array([-0.6, 0.8]), "tab:red"),
            "semi-hard": (A + (d_ap + 0.5 * margin) * np.array([-0.95, -0.31]), "tab:orange"),
            "easy": (A + (d_ap + 1.6 * margin) * np.array([0.35, -0.94]), "tab:grey")}
    ax.plot(*zip(A, P), color="tab:green", lw=2)
    ax.scatter(*A, s=160, marker="*", color="k", zorder=5)
    ax.annotate("anchor a", A, (A[0] + 0.05, A[1] - 0.22), fontsize=10)
    ax.scatter(*P, s=90, color="tab:green", zorder=5)
    ax.annotate("positive p\n(same person)", P, (P[0] + 0.07, P[1] + 0.05), fontsize=9, color="tab:green")
    for name, (pt, col) in negs.items():
        ax.plot(*zip(A, pt), color=col, lw=1.5, ls="--")
        ax.scatter(*pt, s=90, color=col, marker="s", zorder=5)
        d_an = float(np.linalg.norm(pt - A))
        offset = (-0.75, -0.45) if name == "semi-hard" else (0.06, 0.06)
        ax.annotate(f"{name} negative\nloss {max(d_ap - d_an + margin, 0):.2f}", pt,
                    (pt[0] + offset[0], pt[1] + offset[1]), fontsize=9, color=col)
    ax.text(0.02, 0.02, f"green circle: d(a,p) = {d_ap:.2f}\norange ring: margin = {margin}",
            transform=ax.transAxes, fontsize=8, va="bottom")
    lim = d_ap + 2.2 * margin + 0.3
    ax.set_xlim(-lim - 0.3, lim + 0.4)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("where a negative can lie")

    gap = np.linspace(-0.6, 1.0 + margin, 300)
    ax2.plot(gap, np.maximum(margin - gap, 0), color="k", lw=2, label="loss = max(d(a,p) - d(a,n) + margin, 0)")
    ax2.axvspan(gap[0], 0, color="tab:red", alpha=0.15, label="hard: d(a,n) < d(a,p)")
    ax2.axvspan(0, margin, color="tab:orange", alpha=0.2, label="semi-hard: inside the margin")
    ax2.axvspan(margin, gap[-1], color="tab:grey", alpha=0.15, label="easy: loss 0, gradient 0")
    ax2.set_xlabel("d(a,n) - d(a,p)")
    ax2.set_ylabel("triplet loss")
    ax2.legend(fontsize=8, loc="upper right")
    ax2.grid(alpha=0.3)
    ax2.set_title("the loss of one triplet")
    return fig


def _pick_anchor(emb, labels, margin: float) -> int:
    """An anchor whose batch-hard and semi-hard picks differ (a telling example), else 0."""
    _, _, nh, _, _, _ = triplet_parts(emb, labels, "batch_hard", margin)
    ah = triplet_parts(emb, labels, "batch_hard", margin)[0]
    a_s, _, n_s, _, _, _ = triplet_parts(emb, labels, "semi_hard", margin)
    hard_neg = dict(zip(ah.tolist(), nh.tolist()))
    for a, n in zip(a_s.tolist(), n_s.tolist()):
        if hard_neg.get(a) is not None and hard_neg[a] != n:
            return int(a)
    return int(a_s[0]) if len(a_s) else 0


def mining_figure(emb, labels, margin: float = 0.2, anchor: int | None = None,
                  miners: Sequence[str] = ("batch_all", "batch_hard", "semi_hard")) -> Figure:
    """One panel per miner on 2-D embeddings: which triplets it picks for one anchor (star).

    Green line: anchor -> positive; red dashed: anchor -> negative (thick when the triplet is
    active, i.e. has loss > 0). Dotted circles (batch-hard, semi-hard): radius d(a,p) of the
    picked positive (green) and d(a,p) + margin (orange): an active negative lies inside the
    orange one. ``anchor`` defaults to one where batch-hard and semi-hard pick differently.
    """
    from matplotlib import colormaps
    from matplotlib.patches import Circle

    e = emb.detach().numpy() if hasattr(emb, "detach") else np.asarray(emb)
    y = labels.numpy() if hasattr(labels, "numpy") else np.asarray(labels)
    cmap = colormaps["tab10"]
    anchor = _pick_anchor(emb, labels, margin) if anchor is None else int(anchor)
    fig = Figure(figsize=(4.3 * len(miners), 4.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(miners)))
    for ax, m in zip(axes, miners):
        a, p, n, d_ap, d_an, loss = triplet_parts(emb, labels, m, margin)
        mine = a == anchor
        for ni, li in zip(n[mine], loss[mine]):
            ax.plot(*zip(e[anchor], e[ni]), color="tab:red", ls="--", lw=2.0 if li > 0 else 0.6,
                    alpha=0.9 if li > 0 else 0.35, zorder=1)
        for pi in np.unique(p[mine]):
            ax.plot(*zip(e[anchor], e[pi]), color="tab:green", lw=2, zorder=2)
        if m != "batch_all" and mine.any():
            r = float(d_ap[mine][0])
            ax.add_patch(Circle(e[anchor], r, fill=False, ls=":", color="tab:green", lw=1))
            ax.add_patch(Circle(e[anchor], r + margin, fill=False, ls=":", color="tab:orange", lw=1))
        ax.scatter(e[:, 0], e[:, 1], c=[cmap(int(v) % 10) for v in y], s=45, zorder=3, edgecolors="k",
                   linewidths=0.4)
        ax.scatter(*e[anchor], marker="*", s=320, c=[cmap(int(y[anchor]) % 10)], edgecolors="k", zorder=4)
        active = int((loss > 1e-12).sum())
        ax.set_title(f"{m}: {len(a)} triplets in the batch, {active} active\n"
                     f"starred anchor: {int(mine.sum())} picked, {int((loss[mine] > 1e-12).sum())} active",
                     fontsize=9)
        pad = 0.25
        ax.set_xlim(e[:, 0].min() - pad, e[:, 0].max() + pad)
        ax.set_ylim(e[:, 1].min() - pad, e[:, 1].max() + pad)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def difficulty_histogram_figure(emb, labels, margin: float = 0.2,
                                miners: Sequence[str] = ("batch_all", "batch_hard", "semi_hard"),
                                title: str | None = None) -> Figure:
    """Histogram of d(a,n) - d(a,p) over the triplets each miner picks, with the hard / semi-hard /
    easy zones shaded; only triplets left of ``margin`` have a loss (and a gradient)."""
    parts = {m: triplet_parts(emb, labels, m, margin) for m in miners}
    gaps = {m: v[4] - v[3] for m, v in parts.items()}
    allg = np.concatenate([g for g in gaps.values() if len(g)]) if any(len(g) for g in gaps.values()) else np.zeros(1)
    lo, hi = min(float(allg.min()), -0.05), max(float(allg.max()), margin + 0.05)
    bins = np.linspace(lo, hi, 40)
    fig = Figure(figsize=(4.2 * len(miners), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(miners), sharex=True))
    for ax, m in zip(axes, miners):
        g = gaps[m]
        ax.axvspan(lo, 0, color="tab:red", alpha=0.12)
        ax.axvspan(0, margin, color="tab:orange", alpha=0.18)
        ax.axvspan(margin, hi, color="tab:grey", alpha=0.12)
        if len(g):
            ax.hist(g, bins=bins, color="tab:blue", alpha=0.85)
        active = int((g < margin).sum())
        ax.set_title(f"{m}: {len(g)} triplets, {active} active", fontsize=9)
        ax.set_xlabel("d(a,n) - d(a,p)   (margin at the orange edge)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("triplets")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig



def toy_training(miner: str, steps: int = 60, margin: float = 0.2, lr: float = 0.05, seed: int = 3,
                 p: int = 4, k: int = 3) -> list[dict]:
    """Move the toy 2-D points themselves by gradient descent on the triplet loss (no network).

    The loss is reduced as in training (``"mean_active"``). Returns per step: the loss of the picked
    triplets, their active fraction, and the fraction of *all* valid triplets still active.
    Free points cannot collapse (each moves on its own), so this shows only what each miner picks.
    """
    import torch

    from facelib.training.losses import TripletLoss
    from facelib.training.miners import batch_all, get_miner

    pts, labels = toy_batch(p, k, seed)
    x = pts.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=lr)
    crit = TripletLoss(margin=margin)
    mine = get_miner(miner)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for step in range(steps):
        a, pp, n = mine(x.detach(), labels, margin=margin, generator=gen)
        loss, stats = crit(x, a, pp, n)
        with torch.no_grad():
            _, st_all = crit(x, *batch_all(x.detach(), labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append({"step": step, "loss": float(loss.detach()), "picked_active": float(stats["active_fraction"]),
                    "all_active": st_all["active_fraction"]})
    return out


def toy_training_figure(runs: Mapping[str, Sequence[Mapping[str, float]]]) -> Figure:
    """Loss and the active fraction of all triplets per step, one line per miner."""
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for name, hist in runs.items():
        steps = [h["step"] for h in hist]
        ax1.plot(steps, [h["loss"] for h in hist], label=name)
        ax2.plot(steps, [h["all_active"] for h in hist], label=name)
    ax1.set_title("loss of the picked triplets (mean over active)")
    ax2.set_title("fraction of ALL triplets still active")
    _finish_step_axes(ax1, ax2)
    return fig


# ---------------------------------------------------------------------------- collapse (FaceNet section 3.2)


def toy_clusters(classes: int = 16, per_class: int = 20, dim: int = 32, noise: float = 3.0, seed: int = 0):
    """Hard toy "images": Gaussian clusters around random centres, with noise that makes them overlap.

    Returns (x [classes * per_class, dim] float tensor, labels [classes * per_class] long tensor).
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g)
    x = centres.repeat_interleave(per_class, 0) + noise * torch.randn(classes * per_class, dim, generator=g)
    return x, torch.arange(classes).repeat_interleave(per_class)


def toy_embedder(dim: int = 32, out: int = 16, bn_neck: bool = False, seed: int = 0):
    """A small MLP ``dim -> 64 -> out`` with L2-normalised output, like the face model's head.

    ``bn_neck``: a BatchNorm1d before the normalisation (the "BNNeck" of Luo et al. 2019).
    Returns an ``nn.Module``: x [B, dim] -> unit embeddings [B, out].
    """
    import torch
    from torch import nn

    class _Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(dim, 64), nn.ReLU(), nn.Linear(64, out))
            self.neck = nn.BatchNorm1d(out) if bn_neck else nn.Identity()

        def forward(self, x):
            return nn.functional.normalize(self.neck(self.body(x)), dim=1)

    torch.manual_seed(seed)
    return _Net()


def collapse_run(miner: str, bn_neck: bool = False, steps: int = 150, margin: float = 0.2, lr: float = 1e-2,
                 p: int = 8, k: int = 4, seed: int = 0, data=None) -> list[dict]:
    """Train :func:`toy_embedder` on :func:`toy_clusters` with P x K batches, ``miner`` and the triplet loss.

    Every 10 steps records the batch loss and :func:`facelib.training.losses.embedding_spread` of ALL points
    (about 1 spread over the sphere, about 0 collapsed to one point).
    """
    import torch

    from facelib.training.losses import TripletLoss, embedding_spread
    from facelib.training.miners import get_miner

    x, y = data if data is not None else toy_clusters(seed=seed)
    net = toy_embedder(x.shape[1], bn_neck=bn_neck, seed=seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    mine, crit = get_miner(miner), TripletLoss(margin=margin)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(y.numpy() == c) for c in range(int(y.max()) + 1)]
    out = []
    for step in range(steps + 1):
        if step % 10 == 0:
            net.eval()
            with torch.no_grad():
                spread = embedding_spread(net(x))
            net.train()
        idx = np.concatenate([rng.choice(members[c], k, replace=False)
                              for c in rng.choice(len(members), p, replace=False)])
        e = net(x[idx])
        loss, _ = crit(e, *mine(e.detach(), y[idx], margin=margin))
        if step % 10 == 0:
            out.append({"step": step, "loss": float(loss.detach()), "spread": spread})
        if step < steps:
            opt.zero_grad()
            loss.backward()
            opt.step()
    return out


def collapse_figure(runs: Mapping[str, Sequence[Mapping[str, float]]], margin: float = 0.2) -> Figure:
    """Spread of all embeddings and the batch loss per step, one line per run."""
    from facelib.training.trainer import COLLAPSE_SPREAD

    fig = Figure(figsize=(10, 3.4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for name, hist in runs.items():
        steps = [h["step"] for h in hist]
        ax1.plot(steps, [h["spread"] for h in hist], "o-", ms=3, label=name)
        ax2.plot(steps, [h["loss"] for h in hist], "o-", ms=3, label=name)
    ax1.axhline(COLLAPSE_SPREAD, color="tab:red", ls=":", lw=1, label="collapse warning (trainer)")
    ax1.set_ylim(-0.02, 1.05)
    ax1.set_title("spread of all embeddings (1 = spread out, 0 = one point)")
    ax2.axhline(margin, color="k", ls=":", lw=1, label="the margin")
    ax2.set_title("batch loss")
    _finish_step_axes(ax1, ax2)
    return fig


def _finish_step_axes(*axes) -> None:
    """x label "step", a light grid and a legend on each of ``axes``."""
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
