"""Smoke tests for facelib.evaluation.plots: right axes count, non-empty PNG when asked."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from facelib.evaluation import plots


def _png_ok(path) -> bool:
    return path.exists() and path.stat().st_size > 0 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_small_and_large(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.choice(list("abcdef"), 60)
    p = np.where(rng.random(60) < 0.7, y, rng.choice(list("abcdef"), 60))
    fig = plots.confusion_matrix_figure(y, p, out=tmp_path / "cm_small.png")
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # matrix + colourbar
    assert _png_ok(tmp_path / "cm_small.png")

    names = np.array([f"person_{i:03d}" for i in range(300)])
    y = rng.choice(names, 3000)
    p = np.where(rng.random(3000) < 0.6, y, rng.choice(names, 3000))
    fig = plots.confusion_matrix_figure(y, p, max_labels=25, out=tmp_path / "cm_large.png")
    assert len(fig.axes) == 3  # full matrix, its colourbar, most-confused sub-matrix
    sub = fig.axes[1]
    assert 0 < len(sub.get_xticklabels()) <= 25 and fig.axes[0].get_xticks().size == 0
    assert _png_ok(tmp_path / "cm_large.png")


def test_roc_and_histogram(tmp_path):
    rng = np.random.default_rng(1)
    same = rng.random(400) < 0.3
    scores = rng.normal(size=400) + 2 * same
    fig = plots.roc_figure(scores, same, out=tmp_path / "roc.png")
    assert len(fig.axes) == 1 and "AUC" in fig.axes[0].get_legend().get_texts()[0].get_text()
    assert _png_ok(tmp_path / "roc.png")
    fig = plots.roc_figure({"model": (scores, same), "pixel": (rng.normal(size=400), same)})
    assert len(fig.axes[0].get_lines()) == 3
    fig = plots.score_histogram_figure(scores, same, threshold=1.0, out=tmp_path / "hist.png",
                                       threshold_label="equal error rate, chosen on half A")
    assert len(fig.axes) == 1 and _png_ok(tmp_path / "hist.png")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "equal error rate, chosen on half A 1.000" in labels


def test_roc_chance_is_tar_equal_far_along_the_log_axis():
    """Chance (a random score) accepts genuine and impostor pairs alike: TAR = FAR. On a log FAR axis that
    is a curve; two endpoints would draw a straight chord reading TAR 0.6 at FAR 1e-2."""
    rng = np.random.default_rng(3)
    same = rng.random(500) < 0.5
    fig = plots.roc_figure(rng.normal(size=500) + same, same)
    ax = fig.axes[0]
    chance = next(ln for ln in ax.get_lines() if ln.get_label().startswith("chance"))
    far, tar = np.asarray(chance.get_xdata(), float), np.asarray(chance.get_ydata(), float)
    assert ax.get_xscale() == "log"
    assert len(far) >= 50 and np.allclose(tar, far)
    lo, hi = ax.get_xlim()
    inside = (far >= lo) & (far <= hi)
    assert far[inside].min() <= lo * 1.2 and far[inside].max() >= hi / 1.2  # it spans the whole axis
    assert np.diff(np.log10(far[inside])).max() < 0.1  # no straight stretch longer than 0.1 decade
    # read off the drawn line as a viewer would: at FAR 1e-2 it shows TAR 1e-2, not 0.6
    assert np.interp(-2, np.log10(far), tar) == pytest.approx(1e-2, rel=0.05)


def test_per_distortion(tmp_path):
    d = {"clean": 0.9, "foggy": 0.7, "blurred": 0.6}
    fig = plots.per_distortion_figure(d, out=tmp_path / "pd.png")
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 3 and _png_ok(tmp_path / "pd.png")
    fig = plots.per_distortion_figure({"model": d, "pixel": {"clean": 0.1, "foggy": 0.1}})
    assert len(fig.axes[0].patches) == 6


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_map(tmp_path, method):
    rng = np.random.default_rng(2)
    ids = np.repeat([f"id{i}" for i in range(10)], 12)
    dist = np.tile(["", "foggy", "blurred"], 40)
    emb = rng.normal(size=(120, 16)).astype(np.float32)
    fig = plots.embedding_map_figure(emb, ids, dist, method=method, max_points=60, out=tmp_path / "map.png")
    assert len(fig.axes) == 1 and len(fig.axes[0].collections) == 3
    assert _png_ok(tmp_path / "map.png")
    xlabel = fig.axes[0].get_xlabel()
    assert xlabel.startswith("principal component 1 (") if method == "pca" else xlabel.startswith("t-SNE 1")
    assert fig.axes[0].get_ylabel()


def test_retrieval_grid(tmp_path):
    paths = []
    for i in range(4):
        p = tmp_path / f"img{i}.png"
        Image.new("RGB", (24, 24), (60 * i, 100, 200)).save(p)
        paths.append(str(p))
    probe = paths
    match = [paths[1], paths[0], "", str(tmp_path / "missing.jpg")]
    fig = plots.retrieval_grid_figure(probe, match, [True, False, False, True], n=3, scores=[0.9, 0.8, 0.7, 0.6],
                                      out=tmp_path / "grid.png")
    assert len(fig.axes) == 3 * 2 and _png_ok(tmp_path / "grid.png")
    fig = plots.retrieval_grid_figure(probe, np.array([match, match]).T, [True] * 4, n=2)
    assert len(fig.axes) == 2 * 3


def test_history(tmp_path):
    hist = [{"epoch": e, "loss": 1 / e, "active_fraction": 0.5 / e, "pos_dist": 0.5, "neg_dist": 1.0 + e / 10}
            for e in range(1, 4)]
    hist[-1]["val_top1"] = 0.4
    fig = plots.history_figure(hist, out=tmp_path / "h.png")
    assert len(fig.axes) == 4 and _png_ok(tmp_path / "h.png")
    assert len(fig.axes[2].get_lines()) == 2
    # fixed scales: rates and top-1 on [0, 1] (a change of 0.05 must not fill the panel), loss from 0
    assert fig.axes[1].get_ylim() == (0.0, 1.0) and fig.axes[3].get_ylim() == (0.0, 1.0)
    assert fig.axes[0].get_ylim()[0] == 0.0 and fig.axes[0].get_ylim()[1] >= 1.0
    assert "0.400" in [t.get_text() for t in fig.axes[3].texts]  # every point carries its value
    assert fig.axes[3].get_title() == "val top-1"  # an old history that does not record its gallery
    hist[-1].update(val_protocol="cross-photo", val_gallery="mean")
    assert plots.history_figure(hist).axes[3].get_title() == "val top-1 (cross-photo, mean gallery)"
    fig = plots.history_figure([{"epoch": 1}])  # every key missing: still a figure
    assert len(fig.axes) == 4


def test_save_is_atomic_and_respects_format(tmp_path):
    fig = plots.per_distortion_figure({"clean": 1.0}, out=tmp_path / "x.svg")
    assert (tmp_path / "x.svg").read_text().lstrip().startswith("<?xml")
    assert not list(tmp_path.glob(".*.tmp"))
    assert isinstance(fig, Figure)
