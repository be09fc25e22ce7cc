"""Small helpers for the teaching notebooks in ``notebooks/`` (not needed by the library itself).

Environment variables the notebooks read (all optional):

``FACELIB_DATA``       a FACECOM-layout folder with ``train/`` (and ``val/``); unset: the synthetic
                       demo set is made (or reused) under ``data/synthetic`` in the repository.
``FACELIB_PROFILE``    ``smoke`` (tiny, CPU, CI) or ``full`` (ResNet-50, 224 px, 20 epochs);
                       unset: ``full`` with a GPU, ``smoke`` without.
``FACELIB_RUNS``       where runs go (default ``runs/notebook`` in the repository); each
                       profile + data set gets its own sub-folder.
``FACELIB_MAX_STEPS``  cap on the training steps per epoch (quick checks, the browser test).
``FACELIB_EPOCHS``     override the profile's number of epochs.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from facelib.config import EvalConfig, Profile, TrainConfig, get_profile, profile_name
from facelib.data import DISTORTION_KINDS, FaceFolder, load_image, scan_folder
from facelib.errors import DataError

__all__ = [
    "repo_root", "setup", "NotebookSetup", "Table", "split_table", "photos_per_identity_figure",
    "distortion_grid_figure", "image_properties", "identity_overlap", "toy_batch", "triplet_diagram_figure",
    "mining_table", "mining_figure", "difficulty_histogram_figure", "toy_training", "toy_training_figure",
    "pk_batch", "image_grid_figure", "embed_batch", "device_summary", "LivePlot", "run_training",
    "ensure_checkpoint", "protocol_table", "threshold_table", "pixel_verification", "folder_tree",
    "classification_report_text",
]

ENV_DATA, ENV_RUNS, ENV_MAX_STEPS, ENV_EPOCHS = "FACELIB_DATA", "FACELIB_RUNS", "FACELIB_MAX_STEPS", "FACELIB_EPOCHS"


# ============================================================================ where things are


def repo_root() -> Path:
    """The repository root: the folder above the ``facelib`` package when it holds ``pyproject.toml``,
    else the first folder from the current one upwards that does; else the current folder."""
    here = Path(__file__).resolve().parents[1]
    if (here / "pyproject.toml").is_file():
        return here
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):
        if (d / "pyproject.toml").is_file() and (d / "facelib").is_dir():
            return d
    return cwd


def _resolve_data(path: str | os.PathLike) -> Path:
    """A user-given data folder: as given (relative to the notebook), else relative to the repository."""
    p = Path(os.path.expanduser(str(path)))
    for cand in ([p] if p.is_absolute() else [Path.cwd() / p, repo_root() / p]):
        if cand.is_dir():
            return cand.resolve()
    raise DataError(f"data folder not found: {path} (looked in {Path.cwd()} and {repo_root()})")


def _env_int(name: str) -> int | None:
    v = os.environ.get(name, "").strip()
    if not v:
        return None
    try:
        n = int(v)
    except ValueError:
        raise DataError(f"{name} must be a whole number, got {v!r}") from None
    if n < 1:
        raise DataError(f"{name} must be >= 1, got {n}")
    return n


@dataclass
class NotebookSetup:
    """What every notebook needs: profile, data folders, run folder and the shared TrainConfig."""

    profile: str
    data_root: Path
    train_dir: Path
    val_dir: Path | None
    run_dir: Path
    synthetic: bool
    config: TrainConfig
    synth_summary: dict | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "tb_model.pth"

    def eval_config(self, checkpoint: str | os.PathLike | None = None, **changes: Any) -> EvalConfig:
        """EvalConfig for the val folder (train folder for the closed protocol), writing into the run folder."""
        if self.val_dir is None:
            raise DataError(f"{self.data_root} has no val/ folder to evaluate on")
        base = dict(data=str(self.val_dir), train_data=str(self.train_dir),
                    checkpoint=str(checkpoint or self.checkpoint), out=str(self.run_dir),
                    workers=self.config.workers, device=self.config.device)
        base.update(changes)
        return EvalConfig(**base)

    def __str__(self) -> str:
        c = self.config
        lines = [
            f"profile   {self.profile}  ({c.backbone}, {c.image_size} px, {c.epochs} epochs, "
            f"{c.steps_per_epoch or 'all'} steps/epoch, P={c.p} x K={c.k})",
            f"data      {self.data_root}" + ("  (synthetic demo faces)" if self.synthetic else ""),
            f"train     {self.train_dir}",
            f"val       {self.val_dir}",
            f"runs      {self.run_dir}",
        ]
        return "\n".join(lines + self.notes)

    def _repr_pretty_(self, p, cycle) -> None:  # IPython display
        p.text(str(self))


def setup(data: str | os.PathLike | None = None, profile: str | None = None, runs: str | os.PathLike | None = None,
          make_synthetic: bool = True) -> NotebookSetup:
    """Resolve profile, data and run folders and build the shared :class:`TrainConfig`.

    Args:
        data: a FACECOM-layout folder (``train/`` + ``val/``); default ``$FACELIB_DATA``,
            else the synthetic set under ``<repo>/data/synthetic`` (made on first use).
        profile: ``smoke`` or ``full``; default ``$FACELIB_PROFILE`` / GPU detection.
        runs: parent of the run folders; default ``$FACELIB_RUNS`` or ``<repo>/runs/notebook``.
    """
    name = profile or profile_name()
    prof: Profile = get_profile(name)
    notes: list[str] = []
    data = data if data not in (None, "") else (os.environ.get(ENV_DATA, "").strip() or None)
    synth_summary = None
    if data is None:
        root = repo_root() / "data" / "synthetic"
        synthetic = True
        if make_synthetic:
            from facelib.synthetic import make_dataset

            synth_summary = make_dataset(root, **prof.synth, seed=0)
            how = "reused" if synth_summary["reused"] else f"made in {synth_summary['seconds']:.1f} s"
            notes.append(f"synthetic set {how}: {synth_summary['identities']} identities x "
                         f"{synth_summary['photos']} photos x (1 clean + {len(DISTORTION_KINDS)} distorted), "
                         f"{synth_summary['image_size']} px")
    else:
        root = _resolve_data(data)
        synthetic = False
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DataError(f"{root} has no train/ folder: point FACELIB_DATA at a folder holding train/ and val/, "
                        "each with <identity>/*.jpg and optional <identity>/distortion/*.jpg")
    val_dir = root / "val" if (root / "val").is_dir() else None
    runs_parent = Path(runs or os.environ.get(ENV_RUNS, "") or repo_root() / "runs" / "notebook")
    run_dir = (runs_parent / f"{prof.name}_{'synthetic' if synthetic else root.name}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)

    cfg = prof.train.replace(data=str(train_dir), val_data=str(val_dir) if val_dir else None,
                             out=str(run_dir / "tb_model.pth"))
    if prof.name == "full":
        cfg.workers = max(2, min(8, os.cpu_count() or 2))
    steps, epochs = _env_int(ENV_MAX_STEPS), _env_int(ENV_EPOCHS)
    if steps is not None:
        cfg.steps_per_epoch = min(cfg.steps_per_epoch or steps, steps)
        notes.append(f"{ENV_MAX_STEPS}={steps}: at most {steps} steps per epoch")
    if epochs is not None:
        cfg.epochs = epochs
        notes.append(f"{ENV_EPOCHS}={epochs}")
    return NotebookSetup(prof.name, root, train_dir, val_dir, run_dir, synthetic, cfg, synth_summary, notes)


# ============================================================================ tables


class Table:
    """A small table that prints as aligned text and shows as HTML in a notebook."""

    def __init__(self, rows: Sequence[Sequence[Any]], columns: Sequence[str], title: str | None = None):
        self.columns = list(columns)
        self.rows = [list(r) for r in rows]
        self.title = title

    @staticmethod
    def _fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if np.isfinite(v) else "-"
        return str(v)

    def __str__(self) -> str:
        cells = [self.columns] + [[self._fmt(v) for v in r] for r in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.title] if self.title else []) + lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(self._fmt(v))}</td>" for v in r) + "</tr>"
                       for r in self.rows)
        cap = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ============================================================================ 01: the data set


def folder_tree(root: str | os.PathLike, identities: int = 2, files: int = 3) -> str:
    """A ``tree``-like listing of the first ``identities`` identity folders (``files`` entries each)."""
    root = Path(root)
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    lines = [f"{root.name}/   ({len(dirs)} identity folders)"]
    for d in dirs[:identities]:
        lines.append(f"  {d.name}/")
        entries = sorted(d.iterdir(), key=lambda e: (e.is_dir(), e.name))
        clean = [e for e in entries if e.is_file()]
        for e in clean[:files]:
            lines.append(f"    {e.name}")
        if len(clean) > files:
            lines.append(f"    ... ({len(clean) - files} more photos)")
        sub = d / "distortion"
        if sub.is_dir():
            kids = sorted(e.name for e in sub.iterdir())
            lines.append("    distortion/")
            lines += [f"      {n}" for n in kids[:files]]
            if len(kids) > files:
                lines.append(f"      ... ({len(kids) - files} more distorted copies)")
    if len(dirs) > identities:
        lines.append(f"  ... ({len(dirs) - identities} more identity folders)")
    return "\n".join(lines)


def split_table(folders: Mapping[str, FaceFolder]) -> Table:
    """Identities, clean and distorted images, and skipped files per split."""
    rows = []
    for name, f in folders.items():
        r = f.report
        per = Counter(s.identity for s in f.samples if s.is_clean)
        rows.append([name, r.n_identities, r.n_clean, r.n_distorted, r.n_clean + r.n_distorted,
                     f"{min(per.values()) if per else 0}..{max(per.values()) if per else 0}", r.n_skipped])
    return Table(rows, ["split", "identities", "clean", "distorted", "images", "clean/identity", "skipped"])


def photos_per_identity_figure(folders: Mapping[str, FaceFolder]) -> Figure:
    """Histogram of clean photos per identity for each split (log count axis shows the long tail)."""
    fig = Figure(figsize=(5.2 * len(folders), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(folders)))
    for ax, (name, f) in zip(axes, folders.items()):
        per = Counter(s.identity for s in f.samples if s.is_clean)
        counts = np.array(sorted(per.values()))
        if len(counts) == 0:
            ax.text(0.5, 0.5, "no clean images", ha="center", transform=ax.transAxes)
            continue
        hi = int(counts.max())
        bins = np.arange(0.5, hi + 1.5) if hi <= 40 else np.unique(np.geomspace(1, hi + 1, 30).round()) - 0.5
        ax.hist(counts, bins=bins, color="tab:blue", alpha=0.8)
        if hi > 40:
            ax.set_xscale("log")
        ax.set_yscale("log" if len(counts) > 50 else "linear")
        top = max(per, key=per.get)
        ax.set_title(f"{name}: {len(counts)} identities\nmedian {int(np.median(counts))}, max {hi} ({top[:20]})",
                     fontsize=9)
        ax.set_xlabel("clean photos per identity")
        ax.set_ylabel("identities")
        ax.grid(alpha=0.3)
    return fig


def distortion_grid_figure(folder: FaceFolder, n_photos: int = 1, seed: int = 0) -> Figure:
    """Rows of one clean photo followed by its distorted copies, in :data:`DISTORTION_KINDS` order.

    Photos are chosen (seeded) among those that have every distortion, if any has.
    """
    by_photo: dict[str, dict[str, Path]] = {}
    for s in folder.samples:
        by_photo.setdefault(s.photo, {})[s.distortion or "clean"] = s.path
    complete = [p for p, d in by_photo.items() if "clean" in d and all(k in d for k in DISTORTION_KINDS)]
    pool = complete or [p for p, d in by_photo.items() if "clean" in d]
    if not pool:
        raise DataError(f"{folder.root}: no clean photo to show")
    rng = np.random.default_rng(seed)
    chosen = [pool[i] for i in sorted(rng.choice(len(pool), size=min(n_photos, len(pool)), replace=False))]
    cols = ("clean",) + DISTORTION_KINDS
    fig = Figure(figsize=(1.6 * len(cols), 1.85 * len(chosen) + 0.3), layout="constrained")
    axes = np.asarray(fig.subplots(len(chosen), len(cols), squeeze=False))
    for r, photo in enumerate(chosen):
        for c, kind in enumerate(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            path = by_photo[photo].get(kind)
            if path is not None:
                ax.imshow(load_image(path))
            else:
                ax.text(0.5, 0.5, "missing", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            if r == 0:
                ax.set_title(kind, fontsize=9)
        axes[r, 0].set_ylabel(photo.split("/")[-1][:18], fontsize=7)
    return fig


def image_properties(folder: FaceFolder, max_images: int = 3000, seed: int = 0) -> Table:
    """(width x height, mode, clean/distorted) combinations and their counts, from the image headers.

    Above ``max_images`` a seeded sample is read (the title says so).
    """
    from PIL import Image

    samples = folder.samples
    note = ""
    if len(samples) > max_images:
        idx = np.random.default_rng(seed).choice(len(samples), max_images, replace=False)
        samples = [samples[i] for i in sorted(idx)]
        note = f" (a sample of {max_images} of {len(folder.samples)} images)"
    counts: Counter = Counter()
    for s in samples:
        with Image.open(s.path) as im:
            counts[(f"{im.width}x{im.height}", im.mode, "clean" if s.is_clean else "distorted")] += 1
    rows = [[size, mode, kind, n] for (size, mode, kind), n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return Table(rows[:15], ["size", "mode", "kind", "images"], title=f"image sizes and modes{note}")


def identity_overlap(train: FaceFolder, val: FaceFolder) -> str:
    """One paragraph: how many identities the splits share, and which protocol that implies."""
    from facelib.protocols import detect_protocol

    shared = sorted(set(train.identities) & set(val.identities))
    protocol, reason = detect_protocol(train.identities, val.identities)
    return (f"train has {len(train.identities)} identities, val {len(val.identities)}; shared: {len(shared)}.\n"
            f"-> evaluation protocol: {protocol} ({reason})")


# ============================================================================ 02: triplets


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


def _triplet_parts(emb, labels, miner: str, margin: float):
    """Indices, d_ap, d_an and per-triplet loss for ``miner`` on (emb, labels); numpy arrays."""
    from facelib.losses import pairwise_distances
    from facelib.miners import get_miner

    import torch

    a, p, n = get_miner(miner)(emb, labels, margin=margin, generator=torch.Generator().manual_seed(0))
    d = pairwise_distances(emb.float())
    d_ap, d_an = d[a, p].numpy(), d[a, n].numpy()
    loss = np.maximum(d_ap - d_an + margin, 0.0)
    return a.numpy(), p.numpy(), n.numpy(), d_ap, d_an, loss


def mining_table(emb, labels, margin: float = 0.2, miners: Sequence[str] = ("random", "batch_all", "batch_hard",
                                                                            "semi_hard")) -> Table:
    """Per miner: triplets picked, how many are hard / semi-hard / easy, active (loss > 0), mean loss."""
    rows = []
    for m in miners:
        a, _, _, d_ap, d_an, loss = _triplet_parts(emb, labels, m, margin)
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
    _, _, nh, _, _, _ = _triplet_parts(emb, labels, "batch_hard", margin)
    ah = _triplet_parts(emb, labels, "batch_hard", margin)[0]
    a_s, _, n_s, _, _, _ = _triplet_parts(emb, labels, "semi_hard", margin)
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
        a, p, n, d_ap, d_an, loss = _triplet_parts(emb, labels, m, margin)
        mine = a == anchor
        for pi, ni, l in zip(p[mine], n[mine], loss[mine]):
            ax.plot(*zip(e[anchor], e[ni]), color="tab:red", ls="--", lw=2.0 if l > 0 else 0.6,
                    alpha=0.9 if l > 0 else 0.35, zorder=1)
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
    parts = {m: _triplet_parts(emb, labels, m, margin) for m in miners}
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

    Returns per step: the loss, and the fraction of *all* valid triplets that are still active.
    With ``random`` triplets most picks soon have loss 0 and the steps shrink; batch-hard keeps
    finding the triplets that still violate the margin.
    """
    import torch

    from facelib.losses import TripletLoss
    from facelib.miners import batch_all, get_miner

    pts, labels = toy_batch(p, k, seed)
    x = pts.clone().requires_grad_(True)
    opt = torch.optim.SGD([x], lr=lr)
    crit = TripletLoss(margin=margin, reduction="mean")
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
        out.append({"step": step, "loss": float(loss.detach()), "picked_active": stats["active_fraction"],
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
    ax1.set_title("loss of the picked triplets")
    ax2.set_title("fraction of ALL triplets still active")
    for ax in (ax1, ax2):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def pk_batch(folder: FaceFolder, p: int, k: int, seed: int = 0, clean_fraction: float = 0.5) -> list[int]:
    """The first P x K batch the training sampler would draw (indices into ``folder.samples``)."""
    import warnings

    from facelib.samplers import PKSampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = PKSampler(folder.labels, p, k, photos=folder.photos, distortions=folder.distortions,
                            clean_fraction=clean_fraction, batches_per_epoch=1, seed=seed)
    return next(iter(sampler))


def image_grid_figure(folder: FaceFolder, rows: Sequence[Sequence[int]], row_labels: Sequence[str] | None = None,
                      col_labels: Sequence[str] | None = None, cell: float = 1.35) -> Figure:
    """Images of ``folder.samples`` in a grid (one list of indices per row); titles name the distortion."""
    n_r, n_c = len(rows), max(len(r) for r in rows)
    fig = Figure(figsize=(cell * n_c + 0.6, (cell + 0.2) * n_r + 0.3), layout="constrained")
    axes = np.asarray(fig.subplots(n_r, n_c, squeeze=False))
    for r, idxs in enumerate(rows):
        for c in range(n_c):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(idxs):
                ax.axis("off")
                continue
            s = folder.samples[idxs[c]]
            ax.imshow(load_image(s.path))
            title = (col_labels[c] + ": " if col_labels else "") + (s.distortion or "clean")
            ax.set_title(title, fontsize=7)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r][:16], fontsize=7)
    return fig


def embed_batch(cfg: TrainConfig, folder: FaceFolder, indices: Sequence[int], model=None):
    """Embed ``folder.samples[indices]`` with a freshly built model for ``cfg`` (or ``model``).

    Returns (embeddings [B, D] float tensor on the CPU, labels [B] long tensor, model).
    """
    import torch

    from facelib.embed import embed_images
    from facelib.model import build_model

    if model is None:
        _check_pretrained(cfg, print)
        model, spec = build_model(cfg.backbone, cfg.embedding_dim, pretrained=cfg.pretrained, weights=cfg.weights,
                                  image_size=cfg.image_size)
        model.spec = spec
    paths = [folder.samples[i].path for i in indices]
    e = embed_images(model, paths, model.spec, batch_size=64, workers=0, device="cpu" if not torch.cuda.is_available()
                     else "cuda")
    labels = torch.as_tensor(folder.labels[list(indices)])
    return torch.from_numpy(e), labels, model


# ============================================================================ 03: training


def device_summary(cfg: TrainConfig) -> str:
    """Which device and precision training will use."""
    import torch

    from facelib.embed import autocast_dtype, resolve_device

    dev = resolve_device(cfg.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    dtype = autocast_dtype(dev, cfg.amp)
    precision = {None: "fp32", torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}[dtype]
    return f"device {dev} ({name}), precision {precision}"


def _check_pretrained(cfg: TrainConfig, log: Callable[[str], None]) -> None:
    """Offline without cached hub weights: train from random weights instead of failing (with a note)."""
    if not cfg.pretrained or cfg.weights:
        return
    from facelib.model import _hub_reachable, _hub_weights_cached

    if not (_hub_weights_cached(cfg.backbone) or _hub_reachable()):
        log(f"note: no pretrained {cfg.backbone} weights in the cache and the hub is unreachable; "
            "training from random weights (set pretrained=False to silence this, or pass weights=FILE)")
        cfg.pretrained = False


class LivePlot:
    """A live training plot: loss, active-triplet fraction and mean distances, per step and per epoch.

    ``display()`` shows it through an IPython display handle; ``step(stats)`` and
    ``epoch(entry)`` (use it as ``on_epoch_end``) redraw it in place at most every
    ``min_interval`` seconds; ``close()`` draws the final state. The display handle works
    in a notebook cell and under nbval (updates are ordinary ``update_display_data``
    messages). With ``widget=True`` the figure goes into an ``ipywidgets.Image`` instead,
    which also updates inside a widget's Output area (the Train button's callback).
    """

    def __init__(self, title: str = "training", min_interval: float = 1.0, widget: bool = False):
        self.title = title
        self.min_interval = min_interval
        self.widget = None
        if widget:
            import ipywidgets

            self.widget = ipywidgets.Image(format="png", layout={"max_width": "100%"})
        self.steps: list[dict] = []
        self.epochs: list[dict] = []
        self.handle = None
        self._last = 0.0
        self.draws = 0
        self.fig = self._figure()

    def _figure(self) -> Figure:
        fig = Figure(figsize=(12, 3.3), layout="constrained")
        axes = fig.subplots(1, 3)
        step_x = [i + 1 for i in range(len(self.steps))]
        per_epoch = len(self.steps) / max(len(self.epochs), 1) if self.epochs else None
        panels = (("loss", ("loss",)), ("active triplet fraction", ("active_fraction",)),
                  ("mean distance", ("pos_dist", "neg_dist")))
        for ax, (title, keys) in zip(axes, panels):
            for key, colour in zip(keys, ("tab:blue", "tab:red")):
                if self.steps:
                    ax.plot(step_x, [s.get(key, np.nan) for s in self.steps], color=colour, lw=0.8, alpha=0.45)
                if self.epochs and per_epoch:
                    ax.plot([per_epoch * (i + 1) for i in range(len(self.epochs))],
                            [e.get(key, np.nan) for e in self.epochs], "o-", color=colour, ms=5,
                            label=f"{key} (epoch mean)")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
            if title == "active triplet fraction":
                ax.set_ylim(-0.02, 1.02)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        n_ep = len(self.epochs)
        val = [e["val_top1"] for e in self.epochs if "val_top1" in e]
        extra = f", val top-1 {val[-1]:.3f}" if val else ""
        fig.suptitle(f"{self.title}: {len(self.steps)} steps, {n_ep} epochs done{extra}", fontsize=10)
        return fig

    def display(self) -> "LivePlot":
        from IPython.display import display

        if self.widget is not None:
            self.widget.value = self._png()
            display(self.widget)
            self.handle = self.widget
        else:
            self.handle = display(self.fig, display_id=True)
        return self

    def _png(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=80)
        return buf.getvalue()

    def _redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        self.fig = self._figure()
        self.draws += 1
        if self.widget is not None:
            self.widget.value = self._png()
        elif self.handle is not None:
            self.handle.update(self.fig)

    def step(self, stats: Mapping[str, Any]) -> None:
        self.steps.append(dict(stats))
        self._redraw()

    def epoch(self, entry: Mapping[str, Any]) -> None:
        self.epochs.append(dict(entry))
        self._redraw(force=True)

    __call__ = epoch

    def close(self) -> None:
        self._redraw(force=True)


def run_training(cfg: TrainConfig, plot: LivePlot | None = None, log: Callable[[str], None] = print):
    """Train with ``cfg`` (see :func:`facelib.train.train`), feeding ``plot`` every step and epoch.

    Prints the config, the device and precision first. Returns the :class:`~facelib.train.TrainResult`.
    """
    from facelib import train as train_mod

    _check_pretrained(cfg, log)
    changed = {k: v for k, v in cfg.to_dict().items() if k in ("lr", "epochs", "margin", "miner", "p", "k",
                                                                 "image_size", "backbone", "pretrained",
                                                                 "embedding_dim", "amp", "steps_per_epoch")}
    log("config: " + "  ".join(f"{k}={v}" for k, v in changed.items()))
    log(device_summary(cfg))
    if plot is not None and plot.handle is None:
        plot.display()
    t0 = time.perf_counter()
    result = train_mod.train(cfg, on_epoch_end=plot.epoch if plot is not None else None, log=log,
                             on_step_end=plot.step if plot is not None else None)
    if plot is not None:
        plot.close()
    log(f"trained {len(result.history)} epochs in {time.perf_counter() - t0:.0f} s")
    return result


# ============================================================================ 04: evaluation


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
    _check_pretrained(cfg, log)
    from facelib.train import train

    train(cfg, log=lambda line: None)
    return out


def protocol_table(report) -> Table:
    """Model vs pixel baseline per identification protocol of a :class:`~facelib.report.TestReport`."""
    from facelib.protocols import Identification

    rows = []
    for name, r in report.results.items():
        if not isinstance(r, Identification):  # verification, open-set: not identification top-k
            continue
        b = report.baselines.get(name)
        rows.append([name + (" (primary)" if name == report.metrics["protocol"] else ""), r.top1, r.top5,
                     r.macro_f1, b.top1 if b is not None else float("nan"), r.n_probes, r.n_gallery])
    return Table(rows, ["protocol", "top-1", "top-5", "macro-F1", "pixel top-1", "probes", "gallery"])


def classification_report_text(report, max_identities: int = 12) -> str:
    """sklearn's classification report of the primary protocol, shortened to the
    ``max_identities`` worst-F1 identities plus the averages."""
    path = report.files.get("classification_report")
    text = Path(path).read_text() if path else ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) <= max_identities + 4:
        return text
    header, body, tail = lines[0], lines[1:-3], lines[-3:]

    def f1(line: str) -> float:
        parts = line.split()
        try:
            return float(parts[-2])
        except (ValueError, IndexError):
            return 1.0

    worst = sorted(body, key=f1)[:max_identities]
    return "\n".join([header, *worst, f"... ({len(body) - len(worst)} more identities, "
                      f"full report in {path})", "", *tail])


def pixel_verification(report, seed: int = 0) -> dict:
    """The verification protocol on pixel embeddings of the same probes (same pairs, same seed)."""
    from facelib.baselines import pixel_baseline

    return pixel_baseline("verification", report.probes, seed=seed)


def threshold_table(scores, same, fars: Iterable[float] = (0.1, 0.01, 0.001)) -> tuple[Table, dict[str, float]]:
    """Thresholds on the cosine score: at each target FAR, at the EER and at the best accuracy.

    Returns the table (threshold, FAR, TAR (= 1 - FRR), accuracy) and ``{rule: threshold}``.
    """
    from facelib.metrics import verification_metrics

    s = np.asarray(scores, float)
    y = np.asarray(same, bool)
    fars = tuple(fars)
    m = verification_metrics(s, y, fars=fars)
    rules: dict[str, float] = {}
    for f in fars:
        key = next((k for k in m if k.startswith("threshold_at_far_") and np.isclose(float(k[17:]), f)), None)
        if key is not None and np.isfinite(m[key]):
            rules[f"FAR <= {f:g}"] = float(m[key])
    rules["equal error rate"] = float(m["eer_threshold"])
    rules["best accuracy"] = float(m["best_threshold"])
    rows = []
    for rule, t in rules.items():
        acc = s >= t
        rows.append([rule, t, float(acc[~y].mean()), float(acc[y].mean()), float((acc == y).mean())])
    return Table(rows, ["rule", "threshold", "FAR", "TAR", "accuracy"],
                 title=f"{int(y.sum())} genuine / {int((~y).sum())} impostor pairs"), rules
