from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np
import pytest

from facelib.data.samplers import PKSampler, original_triplets


def _labels(sizes: list[int]) -> list[int]:
    return [i for i, s in enumerate(sizes) for _ in range(s)]


def _check_pk(batch: list[int], labels: list[int], p: int, k: int) -> None:
    assert len(batch) == p * k
    ids = [labels[i] for i in batch]
    counts = Counter(ids)
    assert len(counts) == p
    assert all(c == k for c in counts.values())
    # laid out identity by identity
    assert all(len(set(ids[j * k : (j + 1) * k])) == 1 for j in range(p))


def test_every_batch_is_p_by_k():
    labels = _labels([5, 8, 3, 12, 6, 4, 9, 7])
    s = PKSampler(labels, p=4, k=3, seed=1)
    batches = list(s)
    assert len(batches) == len(s) == math.ceil(len(labels) / 12)
    for b in batches:
        _check_pk(b, labels, 4, 3)
        assert len(set(b)) == len(b)  # all identities have >= K images: no repeats


def test_batches_per_epoch_override():
    labels = _labels([4] * 6)
    s = PKSampler(labels, p=2, k=2, batches_per_epoch=7)
    assert len(s) == 7 and len(list(s)) == 7


def test_determinism_for_seed_and_epoch():
    labels = _labels([6, 7, 8, 9, 10, 3])
    a = PKSampler(labels, p=3, k=2, seed=5)
    b = PKSampler(labels, p=3, k=2, seed=5)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    assert list(a) == list(a)  # iterating again repeats the epoch
    first = list(a)
    a.set_epoch(4)
    assert list(a) != first
    c = PKSampler(labels, p=3, k=2, seed=6)
    c.set_epoch(3)
    assert list(c) != first


def test_identities_uniform_not_image_proportional():
    labels = _labels([200] + [2] * 9)
    s = PKSampler(labels, p=2, k=2, batches_per_epoch=2000, seed=0)
    per_id = Counter(labels[b[j]] for b in s for j in (0, 2))
    # each of the 10 identities is in a batch with probability 2/10, whatever its size
    assert all(abs(per_id[i] / 2000 - 0.2) < 0.05 for i in range(10)), per_id


def test_singletons_skipped_and_reported():
    labels = _labels([4, 1, 5, 1, 3])
    s = PKSampler(labels, p=3, k=2)
    assert s.skipped_identities == [1, 3]
    assert s.n_usable_images == 12
    for b in s:
        assert not {labels[i] for i in b} & {1, 3}


def test_fewer_than_k_uses_replacement():
    labels = _labels([2, 2, 2])
    s = PKSampler(labels, p=3, k=5, seed=0)
    for b in s:
        _check_pk(b, labels, 3, 5)
        for ident in range(3):
            got = Counter(i for i in b if labels[i] == ident)
            assert set(got) == {i for i, lab in enumerate(labels) if lab == ident}  # every image once
            assert sorted(got.values()) == [2, 3]  # repeats as even as possible


def test_p_clamped_with_warning_and_too_few_identities():
    labels = _labels([3, 3, 1])
    with pytest.warns(UserWarning, match="clamped"):
        s = PKSampler(labels, p=8, k=2)
    assert s.p == 2
    for b in s:
        _check_pk(b, labels, 2, 2)
    with pytest.raises(ValueError):
        PKSampler(_labels([5, 1, 1]), p=2, k=2)
    with pytest.raises(ValueError):
        PKSampler(_labels([5, 5]), p=2, k=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PKSampler(_labels([3, 3, 3]), p=3, k=2)  # no warning when enough identities


def _facecom_like(n_ids: int = 6, photos_per_id=(1, 2, 3, 4, 5, 6), kinds=("blurred", "foggy", "noisy")):
    labels, photos, dists = [], [], []
    for ident in range(n_ids):
        for ph in range(photos_per_id[ident % len(photos_per_id)]):
            for kind in ("",) + kinds:
                labels.append(ident)
                photos.append(f"{ident}/{ph}")
                dists.append(kind)
    return labels, photos, dists


def test_distortion_aware_mixes_clean_distorted_and_photos():
    labels, photos, dists = _facecom_like()
    k = 4
    s = PKSampler(labels, p=3, k=k, photos=photos, distortions=dists, clean_fraction=0.5, seed=2)
    n_photos = {i: len({photos[j] for j in range(len(labels)) if labels[j] == i}) for i in set(labels)}
    for epoch in range(3):
        s.set_epoch(epoch)
        for b in s:
            _check_pk(b, labels, 3, k)
            assert len(set(b)) == len(b)
            for j in range(3):
                block = b[j * k : (j + 1) * k]
                ident = labels[block[0]]
                n_clean = sum(dists[i] == "" for i in block)
                # target 2 clean + 2 distorted, limited by clean availability (one per photo)
                assert n_clean == min(2, n_photos[ident])
                assert n_clean >= 1 and k - n_clean >= 1  # both kinds present
                # photos spread: as many distinct photos as possible
                assert len({photos[i] for i in block}) == min(k, n_photos[ident])
                keys = [(photos[i], dists[i]) for i in block]
                assert len(set(keys)) == len(keys)


def test_distortion_aware_clean_fraction_extremes_and_shortage():
    labels, photos, dists = _facecom_like(n_ids=3, photos_per_id=(3,), kinds=("blurred",))
    s = PKSampler(labels, p=3, k=3, photos=photos, distortions=dists, clean_fraction=1.0)
    for b in s:
        assert all(dists[i] == "" for i in b)
        assert len({photos[i] for i in b}) == 9
    s = PKSampler(labels, p=3, k=3, photos=photos, distortions=dists, clean_fraction=0.0)
    for b in s:
        assert all(dists[i] != "" for i in b)
    # identity with only clean images: distorted slots fall back to clean images
    labels2 = labels + [3, 3, 3]
    photos2 = photos + ["3/a", "3/b", "3/c"]
    dists2 = dists + ["", "", ""]
    s = PKSampler(labels2, p=4, k=3, photos=photos2, distortions=dists2, clean_fraction=0.0)
    for b in s:
        block = [i for i in b if labels2[i] == 3]
        assert sorted(block) == [len(labels), len(labels) + 1, len(labels) + 2]


def test_distortion_aware_deterministic():
    labels, photos, dists = _facecom_like()
    kw = dict(photos=photos, distortions=dists, seed=3)
    a, b = PKSampler(labels, 3, 4, **kw), PKSampler(labels, 3, 4, **kw)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)


def test_original_triplets_valid():
    rng = np.random.default_rng(0)
    labels = np.array(_labels([5, 1, 3, 2, 7, 1]))
    t = original_triplets(labels, rng)
    assert t.dtype == np.int64 and t.shape[1] == 3
    a, p, n = t.T
    assert np.all(labels[a] == labels[p]) and np.all(a != p) and np.all(labels[n] != labels[a])
    has_pos = {i for i, lab in enumerate(labels) if (labels == lab).sum() > 1}
    assert sorted(a.tolist()) == sorted(has_pos)  # each anchor with a positive exactly once
    assert a.tolist() != sorted(a.tolist())  # shuffled
    # randomness covers all choices
    seen_p, seen_n = set(), set()
    for _ in range(300):
        tt = original_triplets(labels, rng)
        seen_p |= {int(x) for x in tt[tt[:, 0] == 0, 1]}
        seen_n |= {int(x) for x in tt[tt[:, 0] == 0, 2]}
    assert seen_p == {1, 2, 3, 4}
    assert seen_n == set(range(5, len(labels)))


def test_original_triplets_degenerate():
    rng = np.random.default_rng(0)
    assert original_triplets([], rng).shape == (0, 3)
    assert original_triplets([0, 1, 2], rng).shape == (0, 3)
    assert original_triplets([4, 4, 4], rng).shape == (0, 3)


def test_min_photos_keeps_single_photo_identities_out_of_the_batches():
    # identities 0-3: three photos x (clean + 2 distorted); identities 4-7: one photo x (clean + 2 distorted)
    labels, photos, kinds = [], [], []
    for i in range(8):
        for ph in range(3 if i < 4 else 1):
            for kind in ("", "blurred", "foggy"):
                labels.append(i)
                photos.append(f"p{i}_{ph}")
                kinds.append(kind)
    labels_arr = np.array(labels)
    s = PKSampler(labels, 2, 4, photos=photos, distortions=kinds, min_photos=2, seed=0)
    assert sorted(s.few_photo_identities) == [4, 5, 6, 7] and s.skipped_identities == []
    drawn = {int(labels_arr[j]) for batch in s for j in batch}
    assert drawn <= {0, 1, 2, 3}
    assert len(s) == math.ceil(4 * 9 / 8)  # an epoch counts the usable images only
    every = PKSampler(labels, 2, 4, photos=photos, distortions=kinds, seed=0, batches_per_epoch=200)
    assert every.few_photo_identities == [] and {int(labels_arr[j]) for b in every for j in b} == set(range(8))
    with pytest.raises(ValueError, match="photos"):
        PKSampler(labels, 2, 4, min_photos=2)
    with pytest.raises(ValueError, match=">= 5 photos"):
        PKSampler(labels, 2, 4, photos=photos, distortions=kinds, min_photos=5)


def test_negatives_come_one_each_from_identities_that_are_not_batch_identities():
    # identities 0-3: three photos x (clean + 2 distorted); 4-7: one photo x 3 images; 8-9: one image
    labels, photos, kinds = [], [], []
    for i in range(10):
        shots = [(f"p{i}_{ph}", kind) for ph in range(3 if i < 4 else 1) for kind in ("", "blurred", "foggy")]
        for photo, kind in shots[: 1 if i >= 8 else None]:
            labels.append(i)
            photos.append(photo)
            kinds.append(kind)
    labels_arr = np.array(labels)
    s = PKSampler(labels, 2, 4, photos=photos, distortions=kinds, min_photos=2, negatives=3, seed=0,
                  batches_per_epoch=50)
    assert s.negative_identities == [4, 5, 6, 7, 8, 9] and s.negatives == 3
    seen = set()
    for batch in s:
        assert len(batch) == 2 * 4 + 3
        _check_pk(batch[:8], labels, 2, 4)
        neg = labels_arr[batch[8:]]
        assert len(set(neg)) == 3 and set(neg) <= {4, 5, 6, 7, 8, 9}  # distinct, from the pool only
        assert not set(neg) & set(labels_arr[batch[:8]])
        seen |= set(neg.tolist())
    assert seen == {4, 5, 6, 7, 8, 9}
    s.set_epoch(1)
    again = PKSampler(labels, 2, 4, photos=photos, distortions=kinds, min_photos=2, negatives=3, seed=0,
                      batches_per_epoch=50)
    again.set_epoch(1)
    assert list(s) == list(again)  # a pure function of (seed, epoch)
    assert PKSampler(labels, 2, 4, photos=photos, distortions=kinds, min_photos=2, negatives=99).negatives == 6
    assert PKSampler(labels, 2, 4, photos=photos, distortions=kinds, negatives=5).negatives == 2  # 8, 9 only
    with pytest.raises(ValueError, match="negatives"):
        PKSampler(labels, 2, 4, negatives=-1)
