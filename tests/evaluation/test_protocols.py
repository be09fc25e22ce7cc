"""Protocol tests on crafted embeddings for facelib.evaluation.protocols."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facelib.config import GALLERY_MODES
from facelib.evaluation.baselines import pixel_baseline
from facelib.evaluation.embedding_set import EmbeddingSet
from facelib.evaluation.metrics import l2_normalize
from facelib.evaluation.protocols import (
    closed_protocol,
    cross_photo_protocol,
    cross_photo_retrieval,
    detect_protocol,
    gallery_protocol,
    open_set_protocol,
    run_protocol,
    verification_protocol,
)
from facelib.evaluation.results import Identification
from facelib.evaluation.retrieval import faiss_available


def make_set(rows) -> EmbeddingSet:
    """rows: (identity, photo stem, distortion, vector)."""
    return EmbeddingSet(
        l2_normalize(np.array([r[3] for r in rows], np.float32)),
        [r[0] for r in rows],
        [f"{r[0]}/{r[1]}" for r in rows],
        [r[2] for r in rows],
        [f"{r[0]}/{r[1]}.jpg" if not r[2] else f"{r[0]}/distortion/{r[1]}_{r[2]}.jpg" for r in rows],
    )


def random_set(n_ids=30, max_photos=4, dim=12, seed=0, kinds=("", "foggy", "blurred")) -> EmbeddingSet:
    """Identity centre + photo offset + small per-distortion noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_ids):
        c = rng.normal(size=dim)
        for f in range(int(rng.integers(1, max_photos + 1))):
            v = c + 0.9 * rng.normal(size=dim)
            for d in kinds:
                rows.append((f"id{i:02d}", f"p{f}", d, v + 0.1 * rng.normal(size=dim)))
    return make_set(rows)


E = np.eye(4)


def test_gallery_protocol_crafted():
    rows = []
    for i, name in enumerate("ABC"):
        rows.append((name, "p0", "", E[i]))
        rows.append((name, "p0", "foggy", E[i] + 0.1 * E[3]))
        rows.append((name, "p0", "blurred", E[i] + 0.1 * E[3]))
    rows[-1] = ("C", "p0", "blurred", E[0] + 0.2 * E[2])  # C's blurred copy looks like A
    s = make_set(rows)
    for mode in GALLERY_MODES:
        r = gallery_protocol(s, mode)
        assert r.top1 == pytest.approx(5 / 6)
        assert r.n_probes == 6 and r.n_gallery_identities == 3 and r.n_identities == 3
        assert r.per_distortion == pytest.approx({"blurred": 2 / 3, "foggy": 1.0})
        assert r.top5 == 1.0  # only 3 identities: top-k clamps to 3
        a = r
        assert list(a.y_pred[a.distortion == "blurred"]) == ["A", "B", "A"]


def cross_set():
    """A has photos a1 (clean + foggy) and a2; B has one photo; the probe's own photo is its nearest match."""
    b = E[0] + 0.5 * E[1]
    return make_set(
        [
            ("A", "a1", "", E[0]),
            ("A", "a1", "foggy", E[0]),
            ("A", "a2", "", E[2]),
            ("B", "b1", "", b),
            ("B", "b1", "foggy", b),
        ]
    )


@pytest.mark.parametrize("mode", GALLERY_MODES)
def test_cross_photo_never_matches_own_photo(mode):
    s = cross_set()
    r = cross_photo_protocol(s, mode)
    a = r
    # B has a single photo: a distractor, never a probe
    assert set(a.y_true) == {"A"} and r.n_probes == 3
    assert r.n_distractor_identities == 1 and r.n_probe_identities == 1
    # with its own photo a1 excluded, the a1 probes see A only through a2 (orthogonal): B wins
    a1 = s.photos[a.probe_index] == "A/a1"
    assert list(a.y_pred[a1]) == ["B", "B"]
    assert np.all(s.photos[a.match_index] != s.photos[a.probe_index])
    # compare: the gallery protocol lets a1_foggy match its own original
    if mode != "mean":  # (the mean of a1 and a2 is further from a1_foggy than B is)
        assert gallery_protocol(s, mode).top1 == 1.0


@pytest.mark.parametrize("mode", GALLERY_MODES)
def test_cross_photo_matches_brute_force(mode):
    s = random_set(seed=1)
    r = cross_photo_protocol(s, mode)
    a = r
    clean = np.flatnonzero(s.clean_mask)
    names = a.gallery_identities
    for row, q in enumerate(a.probe_index):
        scores = []
        for name in names:
            cand = clean[(s.identities[clean] == name) & (s.photos[clean] != s.photos[q])]
            cand = cand[np.argsort(s.paths[cand])]
            if len(cand) == 0:
                scores.append(-np.inf)
                continue
            if mode == "mean":
                m = s.embeddings[cand].mean(0)
                scores.append(float(s.embeddings[q] @ (m / np.linalg.norm(m))))
            elif mode == "single":
                scores.append(float(s.embeddings[q] @ s.embeddings[cand[0]]))
            else:
                scores.append(float((s.embeddings[cand] @ s.embeddings[q]).max()))
        scores = np.array(scores)
        order = np.argsort(-scores, kind="stable")[:5]
        np.testing.assert_allclose(a.topk_scores[row], scores[order], atol=1e-5)
        assert a.y_pred[row] == names[order[0]]
        assert s.photos[a.match_index[row]] != s.photos[q]
    assert 0 < r.top1 < 1 and r.top1 <= r.top5
    assert r.n_distractor_identities > 0


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
def test_cross_photo_retrieval_matches_the_whole_matrix(chunk):
    from facelib.evaluation.ranking import retrieval_metrics

    s = random_set(seed=2)
    got = cross_photo_retrieval(s, chunk=chunk)
    g = np.flatnonzero(s.clean_mask)
    ids, n = s.identities, {}
    for ident, _ in set(zip(ids[g].tolist(), s.photos[g].tolist())):
        n[ident] = n.get(ident, 0) + 1
    q = np.flatnonzero([n.get(i, 0) >= 2 for i in ids.tolist()])
    scores = s.embeddings[q] @ s.embeddings[g].T
    scores[s.photos[q][:, None] == s.photos[g][None, :]] = -np.inf  # brute force: own photo hidden
    want = retrieval_metrics(scores, ids[q], ids[g])
    for key in ("map", "recall_at_1", "recall_at_5", "recall_at_10", "n_queries"):
        assert got[key] == pytest.approx(want[key]), key
    assert got["n_gallery"] == len(g) and 0 < got["map"] < 1
    assert got["recall_at_1"] == pytest.approx(cross_photo_protocol(s, "all").top1)  # R@1 = nearest neighbour


def test_cross_photo_retrieval_perfect_and_impossible():
    perfect = make_set([("A", "a1", "", E[0]), ("A", "a2", "", E[0]), ("B", "b1", "", E[1]),
                        ("B", "b2", "", E[1]), ("C", "c1", "", E[2])])
    r = cross_photo_retrieval(perfect)
    assert (r["map"], r["recall_at_1"], r["n_queries"], r["n_gallery"]) == (1.0, 1.0, 4, 5)
    with pytest.raises(ValueError, match="at least 2 clean photos"):
        cross_photo_retrieval(make_set([("A", "a1", "", E[0]), ("B", "b1", "", E[1])]))


def test_cross_photo_requires_multi_photo_identities():
    s = make_set([("A", "a1", "", E[0]), ("B", "b1", "", E[1])])
    with pytest.raises(ValueError, match="at least 2 clean photos"):
        cross_photo_protocol(s)


def test_closed_protocol_counts_missing_identities():
    train = make_set([("A", "t1", "", E[0]), ("B", "t1", "", E[1]), ("B", "t2", "foggy", E[3])])
    val = make_set(
        [("A", "v1", "", E[0]), ("A", "v1", "foggy", E[0]), ("B", "v1", "", E[1]), ("C", "v1", "", E[2])]
    )
    r = closed_protocol(train, val, "mean")
    assert r.n_probes == 4 and r.n_probes_without_gallery == 1
    assert r.top1 == pytest.approx(3 / 4)
    assert r.n_gallery_images == 2  # clean train images only
    assert r.per_distortion == pytest.approx({"clean": 2 / 3, "foggy": 1.0})
    assert "1 with no gallery entry" in r.summary()


def test_detect_protocol_both_cases():
    name, why = detect_protocol(["a", "b", "c"], ["a", "b"])
    assert name == "closed" and "2" in why
    name, why = detect_protocol(["a", "b"], ["x", "y", "z"])
    assert name == "cross-photo" and "0 of 3" in why
    name, why = detect_protocol(["a", "b"], ["a", "z"])
    assert name == "cross-photo" and "1 of 2" in why


def test_run_protocol_auto_and_json():
    s = random_set(n_ids=12, seed=2)
    train = random_set(n_ids=5, seed=3)
    train = EmbeddingSet(train.embeddings, np.char.add("t", train.identities), train.photos, train.distortions,
                         train.paths)
    r = run_protocol("auto", s, train)
    assert isinstance(r, Identification) and r.protocol == "cross-photo" and "disjoint" in r.protocol_reason
    j = r.to_dict()
    assert j["protocol_reason"] == r.protocol_reason and j["top1"] == r.top1
    json.dumps(j)
    assert run_protocol("closed", s, s, gallery="all").protocol == "closed"
    assert run_protocol("cross_photo", s).gallery == "mean"
    with pytest.raises(ValueError):
        run_protocol("nope", s)
    with pytest.raises(ValueError):
        run_protocol("gallery", s, gallery="median")


def test_identification_result_keys():
    r = gallery_protocol(random_set(n_ids=8, seed=4))
    for key in ("protocol", "gallery", "top1", "top5", "macro_f1", "n_probes", "n_gallery", "gallery_unit",
                "n_identities", "per_distortion"):
        assert key in r.to_dict()
    assert set(r.per_distortion) == {"foggy", "blurred"}
    c = cross_photo_protocol(random_set(n_ids=8, seed=4), "all")
    assert set(c.per_distortion) == {"clean", "foggy", "blurred"}
    assert c.gallery_unit == "images" and c.n_gallery == c.n_gallery_images
    lo, hi = c.top1_interval  # bootstrap over the 8 probe identities: holds top-1, repeatable
    assert 0 <= lo <= c.top1 <= hi <= 1 and hi > lo and c.to_dict()["top1_interval"] == [lo, hi]
    assert cross_photo_protocol(random_set(n_ids=8, seed=4), "all").top1_interval == (lo, hi)
    for key in ("y_true", "y_pred", "best_score", "probe_index", "topk_identities", "match_path"):
        assert len(getattr(c, key)) == c.n_probes


def test_verification_protocol_pairs():
    s = random_set(n_ids=10, seed=5)
    r = verification_protocol(s, seed=0)
    a = r
    d = r.to_dict()
    assert d["tar_at_far_1e-2"] == r.tar_at_far[0.01] and d["threshold_at_far_1e-1"] == r.threshold_at_far[0.1]
    assert "TAR@FAR=1e-2" in r.summary()
    gen = a.pairs[a.same]
    assert np.all(s.identities[gen[:, 0]] == s.identities[gen[:, 1]])
    assert np.all(s.photos[gen[:, 0]] != s.photos[gen[:, 1]])
    imp = a.pairs[~a.same]
    assert np.all(s.identities[imp[:, 0]] != s.identities[imp[:, 1]])
    assert r.n_genuine == r.n_impostor == r.n_genuine_available
    assert 0.5 < r.roc_auc <= 1
    # perfect embeddings: one direction per identity
    ids = np.unique(s.identities, return_inverse=True)[1]
    perfect = EmbeddingSet(np.eye(len(np.unique(ids)))[ids], s.identities, s.photos, s.distortions, s.paths)
    p = verification_protocol(perfect, n_negatives_per_positive=2)
    assert p.roc_auc == 1.0 and p.eer == 0.0 and p.n_impostor == 2 * p.n_genuine
    capped = verification_protocol(s, max_genuine=10, seed=1)
    assert capped.n_genuine == 10 and capped.genuine_subsampled


def test_verification_random_embeddings_auc_half():
    s = random_set(n_ids=40, seed=6)
    rnd = EmbeddingSet(l2_normalize(np.random.default_rng(0).normal(size=s.embeddings.shape)),
                       s.identities, s.photos, s.distortions, s.paths)
    assert abs(verification_protocol(rnd).roc_auc - 0.5) < 0.1


def test_open_set_perfect_embeddings():
    s = random_set(n_ids=20, seed=7)
    ids = np.unique(s.identities, return_inverse=True)[1]
    perfect = EmbeddingSet(np.eye(20)[ids], s.identities, s.photos, s.distortions, s.paths)
    r = open_set_protocol(perfect, seed=0)
    assert r.n_gallery_identities == 10 and r.n_heldout_identities == 10
    assert r.dir_at_fpir == {0.1: 1.0, 0.01: 1.0}
    r = open_set_protocol(perfect, threshold=0.5)
    d = r.to_dict()
    assert d["dir_at_threshold"] == 1.0 and d["fpir_at_threshold"] == 0.0 and d["dir_at_fpir_1e-1"] == 1.0
    assert np.all(r.y_pred_open[~r.known] == "unknown") and np.all(r.y_pred_open[r.known] == r.y_true[r.known])
    assert "DIR@FPIR=1e-1 1.000" in r.summary()


def test_pixel_baseline_uses_embedder():
    s = random_set(n_ids=6, seed=8)
    lookup = dict(zip(s.paths.tolist(), s.embeddings))
    r = pixel_baseline("gallery", s, embed=lambda paths: np.stack([lookup[p] for p in paths]))
    assert r.top1 == gallery_protocol(s).top1 and r.embedding == "custom"


@pytest.mark.skipif(not faiss_available(), reason="faiss not installed (pip install faiss-cpu)")
@pytest.mark.parametrize("mode", GALLERY_MODES)
def test_protocols_agree_across_search_backends(mode):
    s = random_set(n_ids=25, seed=11)
    for fn in (cross_photo_protocol, gallery_protocol, open_set_protocol):
        t, f = fn(s, mode, backend="torch"), fn(s, mode, backend="faiss")
        assert np.array_equal(t.y_pred, f.y_pred)
        np.testing.assert_allclose(t.best_score, f.best_score, atol=1e-5)
