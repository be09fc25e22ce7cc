from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facelib.data.framing import FaceCrop, Restore, face_crop_box


def test_face_crop_box_known_answers():
    assert face_crop_box(224, 224, 0.55) == (50, 50, 173, 173)  # side round(123.2) = 123, centred
    assert face_crop_box(100, 100, 1.0) == (0, 0, 100, 100)
    assert face_crop_box(89, 109, 1.0) == (0, 10, 89, 99)  # a portrait: the centred square of the short side
    assert face_crop_box(3, 3, 0.01) == (1, 1, 2, 2)  # at least one pixel


def test_face_crop_keeps_the_centre():
    arr = np.zeros((100, 100, 3), np.uint8)
    arr[25:75, 25:75] = 200  # a centred square "face" of half the side
    out = FaceCrop(0.5)(Image.fromarray(arr))
    assert out.size == (50, 50)
    assert np.all(np.asarray(out) == 200)
    same = Image.fromarray(arr)
    assert FaceCrop(1.0)(same) is same  # a no-op on a square image


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_face_crop_refuses_impossible_fractions(bad):
    with pytest.raises(ValueError, match="face crop"):
        FaceCrop(bad)


def test_median_restore_removes_salt_and_pepper():
    rng = np.random.default_rng(0)
    arr = np.full((64, 64, 3), 120, np.uint8)
    mask = rng.random((64, 64)) < 0.05  # isolated impulses, as FACECOM's "noisy"
    arr[mask] = rng.choice([0, 255], size=(mask.sum(), 1))
    out = np.asarray(Restore("median")(Image.fromarray(arr))).astype(int)
    assert np.abs(out - 120).mean() < 0.5 < np.abs(arr.astype(int) - 120).mean()
    im = Image.fromarray(arr)
    assert Restore("none")(im) is im
    with pytest.raises(ValueError, match="restore"):
        Restore("bilateral")
