"""benchmarks/data_lesson_figure.py: notebook 03's data-lesson figure draws the measured runs, nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import data_lesson_figure as lesson


def test_bars_are_the_measured_figures_of_results():
    bars = {label.replace("\n", " "): value for label, value, _, _ in lesson.bars()}
    assert bars["smoke profile (notebooks) whole frame, 1.5 min"] == pytest.approx(0.0535, abs=5e-4)  # lab notes 0.7
    assert bars["default, 235 people whole frame, 30 min"] == pytest.approx(0.138, abs=5e-4)         # lab notes 0.7
    assert bars["pixels, face crop 0.55"] == pytest.approx(0.167, abs=5e-4)                            # lab notes 9.5
    assert bars["crop 0.55, 235 people 966 steps"] == pytest.approx(0.172, abs=5e-4)
    assert bars["crop 0.55, 4,417 people 966 steps"] == pytest.approx(0.242, abs=5e-4)
    assert bars["dlib + median filter"] == pytest.approx(0.806, abs=5e-4)                              # lab notes 9.5b
    assert bars["the same + flip test"] == pytest.approx(0.315, abs=5e-4)                              # lab notes 9.7
    assert bars["crop 0.55, 4,417 people 30 min, seeds 0-2"] < bars["the same + flip test"]


def test_the_curve_shows_memorising(tmp_path):
    curve = lesson._run("curve30")["curve"]
    assert curve[0]["train_top1_all"] < 0.1 and curve[-1]["train_top1_all"] > 0.94   # 0.09 -> 0.95 on its own people
    assert max(c["top1_all"] for c in curve) < 0.16                                   # new people: 0.12-0.16
    fig = lesson.figure()
    assert len(fig.axes) == 2 and len(fig.axes[1].patches) == len(lesson.bars())
    lesson.main([str(tmp_path / "lesson.png")])
    assert (tmp_path / "lesson.png").read_bytes()[:4] == b"\x89PNG"
