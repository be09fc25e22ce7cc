"""facelib.models.transforms: the input transform a model's spec prescribes."""

from __future__ import annotations

import pytest
import torch

from facelib.models.transforms import build_transform


def test_transform_shapes(small):
    from PIL import Image

    _, spec = small
    im = Image.new("RGB", (50, 70), (128, 64, 32))
    for train in (False, True):
        x = build_transform(spec, train=train)(im)
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32


@pytest.mark.parametrize("augment", ["none", "mild", "strong"])
def test_augment_levels(small, augment):
    """Evaluation is deterministic whatever the level; training varies except with "none", which is
    exactly the evaluation resize."""
    import numpy as np
    from PIL import Image

    _, spec = small
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    ev = build_transform(spec, train=False, augment=augment)
    tr = build_transform(spec, train=True, augment=augment)
    assert torch.equal(ev(im), ev(im))
    torch.manual_seed(0)
    draws = [tr(im) for _ in range(4)]
    assert all(d.shape == (3, 32, 32) and d.dtype == torch.float32 for d in draws)
    if augment == "none":
        assert all(torch.equal(d, ev(im)) for d in draws)
    else:
        assert not all(torch.equal(d, draws[0]) for d in draws[1:])


def test_augment_unknown_level_is_refused(small):
    _, spec = small
    with pytest.raises(ValueError, match="augment must be one of"):
        build_transform(spec, train=True, augment="heavy")


def test_transform_frames_the_face_before_the_resize(small):
    from dataclasses import replace

    import numpy as np
    from PIL import Image

    _, spec = small
    arr = np.zeros((100, 100, 3), np.uint8)
    arr[25:75, 25:75] = 255  # the "face": the central half of the side
    img = Image.fromarray(arr)
    whole = build_transform(spec, train=False)(img)
    framed_spec = replace(spec, face_crop=0.5)
    framed = build_transform(framed_spec, train=False)(img)
    assert whole.shape == framed.shape == (3, 32, 32)
    assert torch.equal(framed.amin(dim=(1, 2)), framed.amax(dim=(1, 2)))  # nothing but the face is left
    assert (whole.amin(dim=(1, 2)) < whole.amax(dim=(1, 2))).all()
    names = [type(t).__name__ for t in build_transform(replace(framed_spec, restore="median"), train=True).transforms]
    assert names[:3] == ["Restore", "FaceCrop", "RandomResizedCrop"]
