"""Views of a FACECOM-layout folder for notebook 01 (and the image grids of 02): listings, counts, figures."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from facelib.data.folders import DISTORTION_KINDS, FaceFolder, load_image
from facelib.errors import DataError
from facelib.notebook.tables import Table

__all__ = ["folder_tree", "split_table", "photos_per_identity_figure", "distortion_grid_figure",
           "image_properties", "identity_overlap", "image_grid_figure"]


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
    """Histogram of clean photos per identity for each split (log count axis shows the long tail).

    Every panel gets the same axis scales (log counts as soon as one split has more than 50
    identities), so the splits can be compared by eye."""
    per_split = {name: Counter(s.identity for s in f.samples if s.is_clean) for name, f in folders.items()}
    log_y = any(len(per) > 50 for per in per_split.values())
    log_x = any(max(per.values(), default=0) > 40 for per in per_split.values())
    fig = Figure(figsize=(5.2 * len(folders), 3.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(folders)))
    for ax, (name, per) in zip(axes, per_split.items()):
        counts = np.array(sorted(per.values()))
        if len(counts) == 0:
            ax.text(0.5, 0.5, "no clean images", ha="center", transform=ax.transAxes)
            continue
        hi = int(counts.max())
        bins = np.arange(0.5, hi + 1.5) if not log_x else np.unique(np.geomspace(1, hi + 1, 30).round()) - 0.5
        ax.hist(counts, bins=bins, color="tab:blue", alpha=0.8)
        if log_x:
            ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        top = max(per, key=per.get)
        ax.set_title(f"{name}: {len(counts)} identities\nmedian {int(np.median(counts))}, max {hi} ({top[:20]})",
                     fontsize=9)
        ax.set_xlabel("clean photos per identity")
        ax.set_ylabel("identities (log scale)" if log_y else "identities")
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


def framing_figure(folder: FaceFolder, face_crop: float, image_size: int, aligner=None, n_photos: int = 3,
                   search: int = 40, seed: int = 0) -> Figure:
    """What the model sees: rows of clean photos as stored (whole frame), their central ``face_crop``
    square resized to ``image_size`` px (the model's input), and, with ``aligner`` (a
    :class:`facelib.data.align.Aligner`), the face that ``facelib align`` makes of them.

    With an aligner, photos where it finds a face are preferred among ``search`` seeded clean photos;
    a photo without one shows the centred square that ``align`` falls back to, and says so.
    """
    from PIL import Image

    from facelib.data.framing import FaceCrop

    clean = [s.path for s in folder.samples if s.is_clean]
    if not clean:
        raise DataError(f"{folder.root}: no clean photo to show")
    rng = np.random.default_rng(seed)
    pool = [clean[i] for i in rng.permutation(len(clean))[:max(search, n_photos)]]
    aligned = {}
    if aligner is not None:
        from facelib.data.align import align_image

        for path in pool:
            aligned[path] = align_image(load_image(path), aligner, image_size)
            if sum(found for _, found in aligned.values()) >= n_photos:
                break
        pool = sorted(aligned, key=lambda p: not aligned[p][1]) + [p for p in pool if p not in aligned]
    chosen = pool[:n_photos]
    cols = ["whole frame (as stored)", f"face crop {face_crop:g}, {image_size} px (the input)"]
    cols += ["facelib align"] if aligner is not None else []
    fig = Figure(figsize=(2.1 * len(cols), 2.2 * len(chosen) + 0.4), layout="constrained")
    axes = np.asarray(fig.subplots(len(chosen), len(cols), squeeze=False))
    for r, path in enumerate(chosen):
        img = load_image(path)
        views = [img, FaceCrop(face_crop)(img).resize((image_size, image_size), Image.Resampling.BILINEAR)]
        if aligner is not None:
            views.append(aligned[path][0])
        for c, view in enumerate(views):
            axes[r, c].imshow(view)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(cols[c], fontsize=8)
        if aligner is not None:
            axes[r, 2].set_xlabel("face found" if aligned[path][1] else "no face found:\ncentred square", fontsize=7)
        axes[r, 0].set_ylabel(Path(path).stem[:18], fontsize=7)
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
    from facelib.evaluation.protocols import detect_protocol

    shared = sorted(set(train.identities) & set(val.identities))
    protocol, reason = detect_protocol(train.identities, val.identities)
    return (f"train has {len(train.identities)} identities, val {len(val.identities)}; shared: {len(shared)}.\n"
            f"-> evaluation protocol: {protocol} ({reason})")



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

