"""benchmarks/data_lesson_figure.py: notebook 03's data-lesson figure draws the measured runs, nothing else,
and each panel compares like with like (one framing, one number of views, one budget)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import data_lesson_figure as lesson


def test_the_people_curve_is_results_9_11():
    curve = {label: [round(v, 3) for _, v, _ in points] for label, points in lesson.people_curve().items()}
    assert curve["face crop 0.55"] == [0.172, 0.172, 0.215, 0.242]     # lab notes 9.11, cropped
    assert curve["whole frame"] == [0.119, 0.153, 0.129, 0.158]        # lab notes 9.11, uncropped
    gaps = [u - c for c, u in zip(curve["whole frame"], curve["face crop 0.55"])]
    assert min(gaps) == pytest.approx(0.019, abs=2e-3) and max(gaps) == pytest.approx(0.086, abs=2e-3)
    for points in lesson.people_curve().values():
        assert all(lo < v < hi for _, v, (lo, hi) in points)


def test_thirty_minutes_compares_the_same_crop_and_views():
    runs = lesson.thirty_minutes()
    alone = [v for _, v, _ in runs["FACECOM alone"]]
    every = [v for _, v, _ in runs["every source"]]
    assert sum(every) / 3 == pytest.approx(0.315, abs=5e-4)                          # lab notes 9.7, flip test
    assert sum(alone) / 2 == pytest.approx(0.2075, abs=1e-3)                         # 0.204 and 0.211
    assert lesson.one_view_30_minutes("every source") == pytest.approx(0.303, abs=5e-4)
    assert lesson.one_view_30_minutes("FACECOM alone") == pytest.approx(0.200, abs=1e-3)
    widths = [hi - lo for group in runs.values() for _, _, ci in group if ci for lo, hi in [ci]]
    assert all(0.14 < w < 0.18 for w in widths)                                      # about +-0.08, not +-0.05


def test_the_curve_shows_memorising(tmp_path):
    curve = lesson._run("curve30")["curve"]
    assert curve[0]["train_top1_all"] < 0.1 and curve[-1]["train_top1_all"] > 0.94   # 0.09 -> 0.95 on its own people
    assert max(c["top1_all"] for c in curve) < 0.16                                   # new people: 0.12-0.16
    fig = lesson.figure()
    assert len(fig.axes) == 3
    assert len(lesson.table()) == 3 + 8 + 5 + 2
    lesson.main([str(tmp_path / "lesson.png")])
    assert (tmp_path / "lesson.png").read_bytes()[:4] == b"\x89PNG"
