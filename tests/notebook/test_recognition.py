"""facelib.notebook.recognition: strangers against a growing gallery (notebook 05)."""

from __future__ import annotations

import numpy as np
import pytest

from facelib import notebook as nb


def test_stranger_accept_grows_with_the_gallery_as_independent_comparisons_predict():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(4000, 12))                  # independent stranger-vs-row scores
    t = np.quantile(scores, 0.9)                          # one comparison accepts 10%
    g = nb.stranger_accept_by_size(scores, t, repeats=20)
    assert g["per_row"] == pytest.approx(0.1, abs=0.005)
    assert list(g["sizes"]) == list(range(1, 13))
    assert g["measured"][0] == pytest.approx(g["per_row"], abs=0.01)
    assert np.all(np.diff(g["measured"]) > 0)             # more people enrolled, more strangers accepted
    assert np.allclose(g["measured"], 1 - 0.9 ** g["sizes"], atol=0.02)
    assert g["measured"][-1] > 0.7                        # 12 people: most strangers get a name


def test_stranger_accept_with_correlated_rows_is_below_the_independent_bound():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(3000, 1)) + 0.1 * rng.normal(size=(3000, 8))  # a stranger scores alike on every row
    g = nb.stranger_accept_by_size(scores, np.quantile(scores, 0.9), repeats=10)
    assert g["measured"][-1] < g["independent"][-1] - 0.3


def test_open_set_figure():
    rng = np.random.default_rng(2)
    growth = nb.stranger_accept_by_size(rng.normal(size=(50, 5)), 0.5, repeats=5)
    fig = nb.open_set_figure(rng.random(40), rng.random(40) < 0.5, rng.random(30), {"a": 0.3, "b": 0.6}, growth)
    assert len(fig.axes) == 2 and "enrolled people" in fig.axes[1].get_xlabel()
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "a: 0.300" in texts and any(t.startswith("strangers (30)") for t in texts)
    assert len(nb.open_set_figure(rng.random(5), np.ones(5, bool), rng.random(5), {"t": 0.5}).axes) == 1
    fig = nb.open_set_figure(rng.random(40), rng.random(40) < 0.5, rng.random(30), {"a": 0.3}, growth,
                             strangers="strangers B")
    assert any(t.get_text() == "strangers B (30)" for t in fig.axes[0].get_legend().get_texts())
    assert any(t.get_text().startswith("strangers B") for t in fig.axes[1].get_legend().get_texts())
