"""facelib.notebook.toys: what each miner picks on a toy batch, toy training, and the collapse demo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelib import notebook as nb
from facelib.training.losses import TripletLoss


def test_toy_mining():
    emb, labels = nb.toy_batch(p=4, k=3)
    assert emb.shape == (12, 2)
    t = nb.mining_table(emb, labels, 0.2)
    rows = {r[0]: r for r in t.rows}
    assert rows["batch_all"][1] == 12 * 2 * 9
    for name, r in rows.items():
        assert r[2] + r[3] + r[4] == r[1], name  # hard + semi-hard + easy = all
    assert rows["semi_hard"][2] == 0 and rows["semi_hard"][4] == 0  # only semi-hard ones
    assert len(nb.mining_figure(emb, labels, 0.2).axes) == 3
    assert len(nb.difficulty_histogram_figure(emb, labels, 0.2).axes) == 3
    assert len(nb.triplet_diagram_figure(0.5).axes) == 2


def test_triplet_parts_loss_is_the_library_hinge():
    emb, labels = nb.toy_batch(p=4, k=3)
    a, p, n, d_ap, d_an, loss = nb.triplet_parts(emb, labels, "batch_all", 0.2)
    np.testing.assert_allclose(loss, np.maximum(d_ap - d_an + 0.2, 0), atol=1e-6)
    mean_active, _ = TripletLoss(0.2)(emb, *(torch.from_numpy(v) for v in (a, p, n)))
    assert mean_active.item() == pytest.approx(float(loss[loss > 0].mean()), abs=1e-6)


def test_toy_training_reduces_violations():
    hist = nb.toy_training("batch_hard", steps=30)
    assert hist[-1]["all_active"] < hist[0]["all_active"]
    assert len(nb.toy_training_figure({"batch_hard": hist}).axes) == 2


def test_batch_hard_collapses_and_batch_all_does_not():
    data = nb.toy_clusters(seed=0)
    hard = nb.collapse_run("batch_hard", data=data)
    every = nb.collapse_run("batch_all", data=data)
    neck = nb.collapse_run("batch_hard", bn_neck=True, data=data)
    assert hard[0]["spread"] > 0.5 and hard[-1]["spread"] < 0.1  # from spread out to (nearly) one point
    assert abs(hard[-1]["loss"] - 0.2) < 0.05  # the loss sits at the margin
    assert every[-1]["spread"] > 0.5 and neck[-1]["spread"] > 0.5
    assert len(nb.collapse_figure({"batch_hard": hard}).axes) == 2
