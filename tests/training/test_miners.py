from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from facelib.training.distances import pairwise_distances
from facelib.training.miners import MINER_TABLE as MINERS, batch_hard, get_miner, semi_hard

MARGIN = 0.5


def _batch(seed: int = 0, b: int = 24, d: int = 4, n_labels: int = 5):
    g = torch.Generator().manual_seed(seed)
    emb = F.normalize(torch.randn(b, d, generator=g), dim=1)
    labels = torch.randint(0, n_labels, (b,), generator=g)
    labels[-1] = 99  # a singleton: no positive, still a negative for others
    return emb, labels


def _triplet_set(t) -> set[tuple[int, int, int]]:
    a, p, n = t
    return set(zip(a.tolist(), p.tolist(), n.tolist()))


def _assert_valid(t, labels):
    a, p, n = t
    assert a.dtype == p.dtype == n.dtype == torch.long
    assert a.shape == p.shape == n.shape and a.dim() == 1
    assert torch.all(labels[a] == labels[p]) and torch.all(a != p) and torch.all(labels[n] != labels[a])


# ---- brute-force references (Python loops over the same distance matrix) ----


def _ref_all(labels):
    L = labels.tolist()
    r = range(len(L))
    return {(a, p, n) for a in r for p in r for n in r if L[a] == L[p] and a != p and L[n] != L[a]}


def _ref_hard(dist, labels):
    L, out = labels.tolist(), {}
    for a in range(len(L)):
        pos = [dist[a, p].item() for p in range(len(L)) if L[p] == L[a] and p != a]
        neg = [dist[a, n].item() for n in range(len(L)) if L[n] != L[a]]
        if pos and neg:
            out[a] = (max(pos), min(neg))
    return out


def _ref_semi(dist, labels, margin):
    L, out = labels.tolist(), set()
    for a in range(len(L)):
        for p in range(len(L)):
            if L[p] != L[a] or p == a:
                continue
            dap, best = dist[a, p].item(), None
            for n in range(len(L)):
                dan = dist[a, n].item()
                if L[n] != L[a] and dap < dan < dap + margin and (best is None or dan < dist[a, best].item()):
                    best = n
            if best is not None:
                out.add((a, p, best))
    return out


@pytest.mark.parametrize("name", sorted(MINERS))
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_all_mined_triplets_valid(name, distance):
    for seed in range(3):
        emb, labels = _batch(seed)
        t = get_miner(name)(emb, labels, margin=MARGIN, distance=distance)
        _assert_valid(t, labels)
        assert t[0].numel() > 0


def _check_all(miner, distance):
    emb, labels = _batch(1)
    t = miner(emb, labels, distance=distance)
    assert _triplet_set(t) == _ref_all(labels)
    assert len(t[0]) == len(_ref_all(labels))  # no duplicates


def _check_hard(miner, distance):
    for seed in range(3):
        emb, labels = _batch(seed)
        dist = pairwise_distances(emb, distance)
        ref = _ref_hard(dist, labels)
        a, p, n = miner(emb, labels, distance=distance)
        assert sorted(a.tolist()) == sorted(ref)
        for ai, pi, ni in zip(a.tolist(), p.tolist(), n.tolist()):
            assert dist[ai, pi].item() == ref[ai][0] and dist[ai, ni].item() == ref[ai][1]


def _check_semi(miner, distance):
    for seed in range(3):
        emb, labels = _batch(seed)
        dist = pairwise_distances(emb, distance)
        got = _triplet_set(miner(emb, labels, margin=MARGIN, distance=distance))
        assert got == _ref_semi(dist, labels, MARGIN)
        assert got  # the setting has semi-hard triplets


def _check_random(miner, distance):
    """One triplet per anchor with a positive, each positive and negative drawn uniformly: over 200 draws every
    positive of every anchor turns up; a seeded generator repeats its draw."""
    emb, labels = _batch(0)
    counts_p: dict[int, set[int]] = {}
    g = torch.Generator().manual_seed(0)
    anchors = [i for i in range(len(labels)) if (labels == labels[i]).sum() > 1]
    for _ in range(200):
        a, p, n = miner(emb, labels, distance=distance, generator=g)
        _assert_valid((a, p, n), labels)
        assert a.tolist() == anchors
        for ai, pi in zip(a.tolist(), p.tolist()):
            counts_p.setdefault(ai, set()).add(pi)
    for ai, seen in counts_p.items():
        assert seen == {j for j in range(len(labels)) if labels[j] == labels[ai] and j != ai}
    t1 = miner(emb, labels, generator=torch.Generator().manual_seed(5))
    t2 = miner(emb, labels, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(t1, t2))


# each registered name against the brute-force reference of that name (facelib.config.MINERS)
REFERENCES = {"random": _check_random, "batch_all": _check_all, "batch_hard": _check_hard, "semi_hard": _check_semi}


def test_every_registered_miner_has_a_reference():
    from facelib.config import MINERS as NAMES

    assert sorted(REFERENCES) == sorted(NAMES) == sorted(MINERS)


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_each_miner_matches_its_reference(name, distance):
    REFERENCES[name](get_miner(name), distance)


@pytest.mark.parametrize("a, b", [("batch_all", "batch_hard"), ("batch_hard", "semi_hard"), ("random", "batch_hard")])
def test_two_swapped_miners_fail_the_references(monkeypatch, a, b):
    first, second = MINERS[a], MINERS[b]
    monkeypatch.setitem(MINERS, a, second)
    monkeypatch.setitem(MINERS, b, first)
    for name in (a, b):
        with pytest.raises(AssertionError):
            REFERENCES[name](get_miner(name), "euclidean")


def test_semi_hard_drops_pairs_without_semi_hard_negative():
    # 1-D: anchor 0 at 0, positive at 1 (d_ap=1); negatives at 0.5 (hard) and 3 (easy)
    emb = torch.tensor([[0.0], [1.0], [0.5], [3.0]])
    labels = torch.tensor([0, 0, 1, 2])
    a, p, n = semi_hard(emb, labels, margin=0.2)
    assert (0, 1) not in set(zip(a.tolist(), p.tolist()))
    a, p, n = semi_hard(emb, labels, margin=2.5)
    assert (0, 1, 3) in _triplet_set((a, p, n))


@pytest.mark.parametrize("name", sorted(MINERS))
def test_no_positive_pairs_or_no_negatives_gives_empty(name):
    emb = F.normalize(torch.randn(6, 3), dim=1)
    for labels in (torch.arange(6), torch.zeros(6, dtype=torch.long)):
        a, p, n = MINERS[name](emb, labels)
        assert a.numel() == p.numel() == n.numel() == 0
        assert a.dtype == torch.long and a.device == emb.device


def test_get_miner_unknown_name():
    with pytest.raises(ValueError, match="batch_hard"):
        get_miner("hardest")
    assert get_miner("semi_hard") is semi_hard


def test_batch_all_at_b256_keeps_every_triplet():
    """P 32 x K 8: 256 x 7 x 248 triplets (its time is a benchmark: benchmarks/train_throughput.py)."""
    emb = F.normalize(torch.randn(256, 128, generator=torch.Generator().manual_seed(0)), dim=1)
    a, p, n = get_miner("batch_all")(emb, torch.arange(32).repeat_interleave(8), margin=0.2)
    assert a.numel() == 256 * 7 * 248


# ---- pytorch-metric-learning oracle ----


def test_batch_hard_agrees_with_pml():
    pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
    for seed in range(3):
        emb, labels = _batch(seed, b=40, d=8)
        dist = pairwise_distances(emb)
        a, p, n = batch_hard(emb, labels)
        pa, pp, pn = pml_miners.BatchHardMiner()(emb, labels)
        assert a.tolist() == pa.tolist()
        torch.testing.assert_close(dist[a, p], dist[pa, pp], atol=1e-5, rtol=0)
        torch.testing.assert_close(dist[a, n], dist[pa, pn], atol=1e-5, rtol=0)


def test_semi_hard_agrees_with_pml():
    """PML's semihard keeps, per (a, p), ALL negatives with 0 < d_an - d_ap <= margin; ours keeps
    the hardest of them. So: same (a, p) coverage, our n in PML's set and of minimal d_an."""
    pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
    for seed in range(3):
        emb, labels = _batch(seed, b=40, d=8)
        dist = pairwise_distances(emb)
        ours = _triplet_set(semi_hard(emb, labels, margin=MARGIN))
        miner = pml_miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard")
        theirs = _triplet_set(miner(emb, labels))

        def edge(t, dist=dist):  # within float noise of a boundary: implementations may differ there
            m = dist[t[0], t[2]].item() - dist[t[0], t[1]].item()
            return abs(m) < 1e-5 or abs(m - MARGIN) < 1e-5

        assert theirs
        # exact agreement, except for triplets within float noise of a boundary
        assert all(edge(t) for t in ours - theirs)
        pairs_ours, pairs_theirs = {t[:2] for t in ours}, {t[:2] for t in theirs}
        assert all(edge(t) for t in theirs if t[:2] in pairs_theirs - pairs_ours)
        assert len(ours) == len(pairs_ours)  # one negative per kept pair
        best: dict[tuple[int, int], float] = {}
        for a, p, n in theirs:
            best[(a, p)] = min(best.get((a, p), float("inf")), dist[a, n].item())
        for a, p, n in ours:
            if (a, p) in best:
                assert dist[a, n].item() <= best[(a, p)] + 1e-5
