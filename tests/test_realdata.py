"""Known answers on the real FACECOM Task B copy in ../shared (skipped when it is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from facelib.data.folders import scan_folder
from facelib.evaluation.baselines import pixel_embeddings
from facelib.evaluation.embedding_set import EmbeddingSet
from facelib.evaluation.protocols import cross_photo_protocol, detect_protocol, gallery_protocol

pytestmark = pytest.mark.realdata


def test_val_counts_match_source_md(real_data):
    val = scan_folder(real_data / "val")
    r = val.report
    assert (r.n_identities, r.n_clean, r.n_distorted, r.n_skipped) == (250, 422, 2954, 0)
    assert set(val.distortions) == {"", "blurred", "foggy", "lowlight", "noisy", "rainy", "resized", "sunny"}


def test_train_counts_match_source_md(real_data):
    """SOURCE.md: the complete official train split, 553 identities of them with a single clean photo."""
    train = scan_folder(real_data / "train", verify=False)
    r = train.report
    assert (r.n_identities, r.n_clean, r.n_distorted) == (877, 1926, 13482)
    clean = train.select(lambda s: s.is_clean)
    photos = np.bincount(clean.labels, minlength=len(clean.identities))
    lines = (real_data / "single_photo_identities.txt").read_text().splitlines()
    listed = [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]
    singles = {clean.identities[i] for i in np.flatnonzero(photos == 1)}
    assert set(listed) <= singles and len(listed) == 553
    assert len(singles) == 553 + 89  # plus the single-photo `_frontal` identities


def test_train_and_val_are_disjoint(real_data):
    train = scan_folder(real_data / "train", include_distortions=False, verify=False)
    val = scan_folder(real_data / "val", include_distortions=False, verify=False)
    assert len(train.identities) == 877  # SOURCE.md: 877 train, 250 val identities
    name, reason = detect_protocol(train.identities, val.identities)
    assert name == "cross-photo" and "disjoint" in reason


@pytest.mark.slow
def test_pixel_baseline_known_answers(real_data):
    """SOURCE.md: pixel cosine (32x32 gray) scores 0.981 on the gallery protocol, 0.134 cross-photo."""
    val = scan_folder(real_data / "val", verify=False)
    s = EmbeddingSet(
        embeddings=pixel_embeddings(val.paths, size=32),
        identities=np.array([x.identity for x in val.samples]),
        photos=np.array([x.photo for x in val.samples]),
        distortions=np.array([x.distortion for x in val.samples]),
        paths=np.array([str(x.path) for x in val.samples]),
    )
    g = gallery_protocol(s, gallery="all")
    c = cross_photo_protocol(s, gallery="all")
    assert g.top1 == pytest.approx(0.981, abs=0.005)
    assert g.per_distortion["sunny"] == pytest.approx(0.865, abs=0.01)
    assert c.top1 == pytest.approx(0.134, abs=0.005) and c.n_probes == 1888
