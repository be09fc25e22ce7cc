"""facelib.notebook.evaluation: thresholds chosen on one half and reported on the other, tables, CMC."""

from __future__ import annotations

import numpy as np
import pytest

from facelib import notebook as nb


def test_thresholds_chosen_and_applied():
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(0.7, 0.1, 500), rng.normal(0.2, 0.1, 500)]
    same = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    rules = nb.choose_thresholds(scores, same, fars=(0.1, 0.01))
    assert set(rules) == {"FAR <= 0.1", "FAR <= 0.01", "equal error rate", "best accuracy"}
    table = nb.threshold_table(rules, scores, same, title="same pairs")
    far = {r[0]: r[2] for r in table.rows}
    assert far["FAR <= 0.01"] <= 0.01 + 1e-9 and far["FAR <= 0.1"] <= 0.1 + 1e-9
    assert table.title.startswith("same pairs: 500 genuine")


def test_split_by_identity_keeps_people_apart():
    identities = np.repeat(np.array([f"id{i}" for i in range(10)]), 4)
    rng = np.random.default_rng(1)
    pairs = rng.integers(0, 40, size=(300, 2))
    a, b = nb.split_by_identity(pairs, identities, seed=0)
    assert not (a & b).any() and a.any() and b.any()
    ids_a = set(identities[pairs[a]].ravel())
    ids_b = set(identities[pairs[b]].ravel())
    assert not ids_a & ids_b


def test_cmc_figure():
    fig = nb.cmc_figure({"model": np.array([0.3, 0.5, 0.6]), "pixel": np.array([0.2, 0.3, 0.35])})
    assert "rank-1 0.30" in fig.axes[0].get_legend().get_texts()[0].get_text()
    ticks = fig.axes[0].get_xticks()
    assert len(ticks) >= 2 and np.allclose(ticks, np.round(ticks))  # whole ranks only: no tick at 2.5


@pytest.mark.slow
def test_classification_table(synth_root, tiny_checkpoint, tmp_path):
    from facelib.config import EvalConfig
    from facelib.evaluation.report import run_test

    report = run_test(EvalConfig(data=str(synth_root / "val"), train_data=None, checkpoint=str(tiny_checkpoint),
                                 out=str(tmp_path), workers=0, baseline=False),
                      print_report=False, log=lambda s: None)
    t = nb.classification_table(report, max_identities=3)
    names = [r[0] for r in t.rows]
    assert len(names) == 3 + 2 and names[-2:] == ["macro avg", "weighted avg"]
    f1 = [r[3] for r in t.rows[:3]]
    assert f1 == sorted(f1)
    assert f"{report.primary.top1:.3f}" in t.title and f"({report.metrics['gallery']} gallery)" in t.title


def test_cross_photo_scores_hide_the_own_photo_and_match_the_library():
    from facelib.evaluation.embedding_set import EmbeddingSet
    from facelib.evaluation.metrics import l2_normalize
    from facelib.evaluation.protocols import cross_photo_protocol

    rng = np.random.default_rng(0)
    ids = np.repeat(["a", "b", "c"], 4)
    photos = np.array([f"{i}/{j // 2}" for i, j in zip(ids, range(12))])  # 2 photos per identity
    dist = np.tile(["", "foggy"], 6)
    emb = l2_normalize(rng.normal(size=(12, 8)) + 3 * (ids[:, None] == np.array(["a", "b", "c"])).repeat(3, 1)[:, :8])
    s = EmbeddingSet(emb, ids, photos, dist, [f"{k}.jpg" for k in range(12)])
    scores, q, g = nb.cross_photo_scores(s)
    assert len(q) == 12 and len(g) == 6 and scores.shape == (12, 6)
    assert np.all(np.isneginf(scores[s.photos[q][:, None] == s.photos[g][None, :]]))
    top1 = np.mean(s.identities[g][scores.argmax(1)] == s.identities[q])
    assert top1 == pytest.approx(cross_photo_protocol(s, gallery="all").top1)


def test_pixel_verification_frames_the_pixels_as_the_model(monkeypatch):
    """The ROC's pixel curve must see the same face crop as the report's own pixel baselines."""
    from types import SimpleNamespace

    import facelib.evaluation.baselines

    seen = {}
    monkeypatch.setattr(facelib.evaluation.baselines, "pixel_baseline",
                        lambda name, probes, **kw: seen.update(kw, name=name))
    nb.pixel_verification(SimpleNamespace(probes=None, metrics={"model": {"face_crop": 0.55}}), seed=3)
    assert seen == {"name": "verification", "seed": 3, "face_crop": 0.55}
    nb.pixel_verification(SimpleNamespace(probes=None, metrics={}))  # a report without the model's framing
    assert seen["face_crop"] == 1.0
