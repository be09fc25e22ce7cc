from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from facelib.config import TrainConfig
from facelib.data import frames as frames_mod
from facelib.data.distortions import KINDS, distort, image_rng
from facelib.data.folders import ImageDataset
from facelib.data.frames import FrameBudgetError, FramedDataset, FramedImages
from facelib.data.framing import face_crop_box
from facelib.errors import DataError
from facelib.models.network import ModelSpec
from facelib.models.transforms import build_transform
from facelib.training.trainer import Trainer
from tests.conftest import make_folder, structured_image, write_image


def _spec(**kw) -> ModelSpec:
    return ModelSpec(**{"image_size": 32, "face_crop": 0.55, **kw})


def _both(paths: list[Path], spec: ModelSpec, kinds: list[str] | None = None):
    """The same items read the old way (from disk) and through a store, evaluation transforms."""
    labels = np.arange(len(paths))
    old = ImageDataset(paths, labels, build_transform(spec, train=False), kinds)
    store = FramedImages(paths, spec, raw=None if kinds is None else [bool(k) for k in kinds], workers=2)
    new = FramedDataset(store, labels, build_transform(spec, train=False, framed=True), kinds)
    return old, new, store


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "CMYK"])
def test_a_stored_item_equals_the_item_read_from_disk(tmp_path: Path, mode: str):
    fmt = "PNG" if mode == "RGBA" else "JPEG"
    paths = [write_image(tmp_path / f"{i}.{fmt.lower()}", seed=i, size=40 + 6 * i, mode=mode, fmt=fmt)
             for i in range(3)]
    old, new, store = _both(paths, _spec())
    for i in range(3):
        assert torch.equal(old[i][0], new[i][0]) and old[i][1] == new[i][1] == i
    # framed crops of 22, 25 and 29 px: one side, the largest; the smaller rows padded, not resized
    assert store.side == 29 and store.sizes.tolist() == [[22, 22], [25, 25], [29, 29]]
    assert store.photo_sides.tolist() == [40, 46, 52]


def test_restore_runs_after_the_made_distortion_and_matches_inside_the_border(tmp_path: Path):
    paths = [write_image(tmp_path / f"{i}.png", seed=i, size=48, fmt="PNG") for i in range(2)]
    spec = _spec(restore="median")
    old, new, store = _both(paths, spec, kinds=["", ""])
    assert store.restored.tolist() == [True, True]
    assert torch.equal(old[0][0], new[0][0])
    # a row that gets a made distortion is stored unrestored and restored per item, on the crop
    store = FramedImages(paths, spec, raw=[True, False])
    assert store.restored.tolist() == [False, True] and store.restore_later(0) and not store.restore_later(1)
    from facelib.data.folders import load_image

    full = load_image(paths[0])
    box = face_crop_box(48, 48, 0.55)
    want = np.asarray(full.filter(ImageFilter.MedianFilter(3)).crop(box))
    got = np.asarray(store.restore(store.image(0)))
    assert np.array_equal(got[1:-1, 1:-1], want[1:-1, 1:-1])


def test_the_store_is_one_shared_tensor_and_the_side_cap_holds(tmp_path: Path):
    paths = [write_image(tmp_path / "big.png", seed=1, size=200, fmt="PNG"),
             write_image(tmp_path / "small.png", seed=2, size=40, fmt="PNG")]
    spec = _spec(image_size=32)
    store = FramedImages(paths + paths[:1], spec)  # a repeated path shares its row
    assert store.pixels.is_shared() and store.pixels.dtype == torch.uint8
    assert tuple(store.pixels.shape) == (2, 64, 64, 3) and store.rows.tolist() == [0, 1, 0]
    assert store.sizes.tolist() == [[64, 64], [22, 22]]  # 110 px resized down to the cap; 22 px padded
    assert store.nbytes == 2 * 64 * 64 * 3
    assert store.scales[0] == pytest.approx(200 / 224 * 64 / 110) and store.scales[1] == pytest.approx(40 / 224)
    assert store.pixels[1, 22:].abs().sum() == 0  # zero padding
    # through the cap's resize, close to the direct resize from disk
    old, new, _ = _both(paths, spec)
    std = torch.tensor(spec.std).view(3, 1, 1)
    diff = ((old[0][0] - new[0][0]) * std * 255).abs()  # in 8-bit levels
    assert diff.mean() < 1.0 and diff.max() < 12
    assert "2 images decoded and framed once (64 px, 0.0 GB in shared memory)" in store.describe()


def test_face_crop_one_keeps_a_non_square_photo_as_it_is(tmp_path: Path):
    Image.new("RGB", (30, 20), (10, 200, 30)).save(tmp_path / "wide.png")
    old, new, store = _both([tmp_path / "wide.png"], _spec(face_crop=1.0))
    assert store.sizes.tolist() == [[20, 30]] and store.side == 30
    assert torch.equal(old[0][0], new[0][0])


@pytest.mark.parametrize("kind", KINDS)
def test_distort_with_the_image_own_scale_is_unchanged(kind: str):
    img = structured_image(96).resize((96, 80))
    for scale in (80 / 224, None):
        assert np.array_equal(np.asarray(distort(img, kind, image_rng(3, kind))),
                              np.asarray(distort(img, kind, image_rng(3, kind), scale=scale)))


def test_distort_known_answer_without_scale():
    img = structured_image(64)
    out = np.asarray(distort(img, "blurred", image_rng(0, "blurred")), dtype=np.int64)
    sigma = image_rng(0, "blurred").uniform(1.6, 3.0) * 64 / 224
    want = np.asarray(img.filter(ImageFilter.GaussianBlur(max(sigma, 0.6))), dtype=np.int64)
    assert np.array_equal(out, want)


def _crop_after(img: Image.Image, kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``kind`` on the photo, then the face crop; and on the face crop at the photo's scale."""
    box = face_crop_box(img.width, img.height, 0.55)
    before = distort(img, kind, image_rng(seed, kind)).crop(box)
    after = distort(img.crop(box), kind, image_rng(seed, kind), scale=min(img.size) / 224)
    return np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)


def test_blur_on_the_crop_at_the_photo_scale_matches_blur_then_crop():
    img = structured_image(224)
    before, after = _crop_after(img, "blurred", 5)
    inner = (slice(12, -12), slice(12, -12))
    assert np.abs(before[inner] - after[inner]).max() <= 1.0
    # at the crop's own scale the blur would be 0.55 times as wide: clearly different
    box = face_crop_box(224, 224, 0.55)
    own = np.asarray(distort(img.crop(box), "blurred", image_rng(5, "blurred")), dtype=np.float64)
    assert np.abs(before[inner] - own[inner]).mean() > 2 * np.abs(before[inner] - after[inner]).mean()


@pytest.mark.parametrize("kind", ["sunny", "foggy", "lowlight"])
def test_framed_distortions_match_the_photo_then_crop(kind: str):
    """Same draws, placed in the photo's frame: the glow and the haze fields line up with the full photo's."""
    img = structured_image(224)
    before, after = _crop_after(img, kind, 7)
    assert np.abs(before - after).max() <= 1.0
    if kind != "lowlight":  # in the crop's own frame the glow / haze patches would be laid out otherwise
        box = face_crop_box(224, 224, 0.55)
        own = np.asarray(distort(img.crop(box), kind, image_rng(7, kind)), dtype=np.float64)
        assert np.abs(before - own).mean() > 5


def test_rain_streaks_keep_their_length_on_the_crop():
    img = Image.new("RGB", (224, 224), (60, 60, 60))
    box = face_crop_box(224, 224, 0.55)
    crop = img.crop(box)
    own = np.asarray(distort(crop, "rainy", image_rng(1, "rainy")).convert("L"), dtype=np.float64)
    framed = np.asarray(distort(crop, "rainy", image_rng(1, "rainy"), scale=1.0).convert("L"), dtype=np.float64)
    before = np.asarray(distort(img, "rainy", image_rng(1, "rainy")).crop(box).convert("L"), dtype=np.float64)
    # bright streak pixels: about the same share as on the full photo, more than at the crop's own scale
    share = [float(np.mean(a > 80)) for a in (own, framed, before)]
    assert share[1] == pytest.approx(share[2], rel=0.35) and share[0] < share[1]


def test_an_unreadable_file_is_counted_and_its_item_raises(tmp_path: Path):
    good = write_image(tmp_path / "good.jpg", seed=0, size=40)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(good.read_bytes()[:300])  # truncated: the header opens, the decode fails
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    store = FramedImages([good, bad, junk], _spec())
    assert store.unreadable == 2 and "2 unreadable" in store.describe()
    ds = FramedDataset(store, [0, 1, 2], build_transform(_spec(), framed=True))
    assert ds[0][0].shape == (3, 32, 32)
    for i, path in ((1, bad), (2, junk)):
        with pytest.raises(DataError, match=f"cannot read image {path}"):
            ds[i]


def test_the_budget_is_checked_before_decoding(tmp_path: Path, monkeypatch):
    paths = [write_image(tmp_path / f"{i}.png", seed=i, size=40, fmt="PNG") for i in range(3)]
    monkeypatch.setattr(frames_mod, "load_image", lambda p: pytest.fail("decoded over the budget"))
    with pytest.raises(FrameBudgetError) as e:
        FramedImages(paths, _spec(), budget=3 * 22 * 22 * 3 - 1)
    assert e.value.needed == 3 * 22 * 22 * 3 and "over the budget" in str(e.value)
    assert frames_mod.memory_budget() > 0


def test_the_budget_counts_reclaimable_page_cache_as_available(tmp_path: Path, monkeypatch):
    """MemAvailable (free + reclaimable cache), not MemFree: a machine that has read many files has little free
    memory and much available."""
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:         3000000 kB\nMemAvailable:   20000000 kB\n")
    monkeypatch.setattr(frames_mod, "MEMINFO", str(meminfo))
    monkeypatch.setattr(frames_mod, "SHM", str(tmp_path / "no-shm"))  # no /dev/shm bound
    assert frames_mod.available_memory() == 20_000_000 * 1024
    assert frames_mod.memory_budget() == int(frames_mod.MEMORY_SHARE * 20_000_000 * 1024)
    monkeypatch.setattr(frames_mod, "MEMINFO", str(tmp_path / "absent"))  # not Linux: sysconf's free pages
    assert frames_mod.available_memory() is None or frames_mod.available_memory() > 0


def _tiny(root: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(root), epochs=1, image_size=32, backbone="resnet18", pretrained=False, embedding_dim=16,
                p=4, k=4, steps_per_epoch=2, workers=0, out=str(out), progress=False, lr=1e-3)
    return TrainConfig(**{**base, **kw})


def test_over_the_budget_the_trainer_says_so_and_reads_from_disk(tmp_path: Path, monkeypatch):
    root = make_folder(tmp_path / "train", distortions=())
    monkeypatch.setattr(frames_mod, "memory_budget", lambda: 100)
    lines: list[str] = []
    t = Trainer(_tiny(root, tmp_path / "m.pth"), log=lines.append)
    said = [s for s in lines if s.startswith("frames:")]
    assert len(said) == 1 and "not cached" in said[0] and "read from disk each time" in said[0]
    assert isinstance(t.images, ImageDataset)
    t.fit()
    assert t.steps_done == 2


@pytest.mark.parametrize("cache, workers", [(True, 0), (False, 0), (True, 1)])
def test_a_tiny_run_trains_with_and_without_the_store(tmp_path: Path, cache: bool, workers: int):
    root = make_folder(tmp_path / "train", distortions=())  # every photo bare: made distortions on the crops
    lines: list[str] = []
    t = Trainer(_tiny(root, tmp_path / "m.pth", frame_cache=cache, workers=workers), log=lines.append)
    assert isinstance(t.images, FramedDataset) == cache
    assert [s.startswith("frames: 12 images decoded and framed once (18 px") for s in lines].count(True) == cache
    if cache:
        assert len(t.images) == 12 * 8 and t.images.distortions is not None
    r = t.fit()
    assert t.steps_done == 2 and np.isfinite(r.history[0]["loss"])
