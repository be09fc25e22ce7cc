"""The peer benchmark's dlib embedder (skipped without the optional `peers` extra)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dlib", reason='the peer benchmark needs pip install -e ".[peers]"')
if importlib.util.find_spec("face_recognition_models") is None:
    pytest.skip('the peer benchmark needs pip install -e ".[peers]"', allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import peer_face_recognition as peer


def test_dlib_descriptors_cover_every_image(tmp_path):
    from facelib.data.folders import scan_folder
    from facelib.data.synthetic import make_dataset

    make_dataset(tmp_path, identities=4, photos=2, image_size=112, seed=0)
    val = scan_folder(tmp_path / "val")
    es, found = peer.embed_folder_dlib(val, log=lambda m: None)
    assert es.embeddings.shape == (len(val.samples), 128)
    assert np.allclose(np.linalg.norm(es.embeddings, axis=1), 1.0, atol=1e-5)
    assert found.shape == (len(val.samples),) and found.dtype == bool
    assert list(es.identities) == [s.identity for s in val.samples]


def test_no_face_falls_back_to_the_whole_image():
    net = peer.DlibDescriptor()
    blank = np.full((96, 96, 3), 128, np.uint8)
    desc, found = net(blank)
    assert not found and desc.shape == (128,) and np.isfinite(desc).all() and np.linalg.norm(desc) > 0
    again, _ = net(blank)
    assert np.array_equal(desc, again)


def test_median_front_end_and_central_fallback():
    median, plain = peer.DlibDescriptor(**peer.VARIANTS["median"]), peer.DlibDescriptor()
    rng = np.random.default_rng(0)
    flat = np.full((96, 96, 3), 128, np.uint8)
    noisy = flat.copy()
    noisy[rng.random((96, 96)) < 0.05] = 255  # salt noise, no face
    desc, found = median(noisy)
    assert not found and np.isfinite(desc).all()
    # the filter removes most of the noise: the descriptor moves far less than without it
    assert np.linalg.norm(desc - median(flat)[0]) < 0.5 * np.linalg.norm(plain(noisy)[0] - plain(flat)[0])


def test_student_variant_keeps_only_the_students_detail():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)  # detail at every pixel
    small = peer.at_student_resolution(photo, 64)
    assert small.shape == photo.shape and small.dtype == np.uint8
    # the face crop is 0.55 x 224 = 123 px, so the copy went through 116 px: pixel-level detail is gone
    assert small.astype(float).std() < 0.5 * photo.astype(float).std()
    flat = np.full((224, 224, 3), 90, np.uint8)
    assert np.abs(peer.at_student_resolution(flat, 64).astype(int) - 90).max() <= 1  # no detail, nothing lost
    tiny = photo[:64, :64]  # already at or below the student's detail: unchanged
    assert np.array_equal(peer.at_student_resolution(tiny, 64), tiny)
    net = peer.DlibDescriptor(**peer.VARIANTS["student"])
    desc, found = net(photo)
    assert desc.shape == (128,) and np.isfinite(desc).all() and not found
