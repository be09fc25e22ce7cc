from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facelib.data.distortions import KINDS, distort, distort_all, distort_folder, image_rng, shrink
from facelib.data.folders import DataError, scan_folder
from tests.conftest import structured_image


def _gray(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), dtype=np.float64)


def _hf(img: Image.Image) -> float:
    a = _gray(img)
    return float(np.mean((4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:]) ** 2))


@pytest.mark.parametrize("kind", KINDS)
def test_kind_size_mode_determinism(kind):
    img = structured_image()
    a = distort(img, kind, image_rng(1, kind))
    b = distort(img, kind, image_rng(1, kind))
    c = distort(img, kind, image_rng(2, kind))
    assert a.size == img.size and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    assert np.mean(np.abs(_gray(a) - _gray(img))) > 0.5


def test_distort_accepts_other_modes_and_sizes():
    img = structured_image(48).convert("L").resize((80, 48))
    for kind in KINDS:
        out = distort(img, kind, image_rng(0, kind))
        assert out.size == (80, 48) and out.mode == "RGB"


def test_directions():
    img = structured_image(96)
    clean_mean, clean_std, clean_hf = _gray(img).mean(), _gray(img).std(), _hf(img)
    for seed in range(3):
        d = distort_all(img, seed)
        assert _gray(d["lowlight"]).mean() < 0.5 * clean_mean
        assert _gray(d["sunny"]).mean() > clean_mean + 20
        assert _gray(d["foggy"]).mean() > clean_mean and _gray(d["foggy"]).std() < 0.8 * clean_std
        assert _hf(d["blurred"]) < 0.5 * clean_hf
        assert _hf(d["resized"]) < clean_hf
        assert _hf(d["noisy"]) > 3 * clean_hf
        assert _hf(d["rainy"]) > clean_hf


def test_distort_all_subset_and_unknown_kind():
    img = structured_image()
    assert set(distort_all(img, 0, kinds=("foggy", "noisy"))) == {"foggy", "noisy"}
    with pytest.raises(ValueError, match="blurred"):
        distort(img, "snowy", image_rng(0))
    with pytest.raises(ValueError):
        distort_all(img, 0, kinds=("snowy",))


def test_image_rng_stable():
    assert image_rng(3, "a", "b").integers(1 << 30) == image_rng(3, "a", "b").integers(1 << 30)
    assert image_rng(3, "a", "b").integers(1 << 30) != image_rng(3, "a", "c").integers(1 << 30)


def _make_src(root, n_ids=2, n_photos=2):
    for i in range(n_ids):
        d = root / f"person_{i}"
        d.mkdir(parents=True)
        for j in range(n_photos):
            structured_image(40, seed=10 * i + j).save(d / f"person_{i}_{j:04d}.jpg", quality=95)
    return root


def test_distort_folder_roundtrip(tmp_path):
    src = _make_src(tmp_path / "src")
    (src / "person_0" / "distortion").mkdir()
    structured_image(40).save(src / "person_0" / "distortion" / "old_foggy.jpg")  # must be ignored
    (src / "person_1" / "empty.jpg").write_bytes(b"")
    (src / "person_1" / "fake.png").write_bytes(b"not an image at all")
    (src / "person_1" / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    counts = distort_folder(src, out, seed=5)
    assert counts["identities"] == 2 and counts["clean"] == 4 and counts["distorted"] == 28
    assert counts["skipped"] == 3
    for i in range(2):
        for j in range(2):
            stem = f"person_{i}_{j:04d}"
            rel = f"person_{i}/{stem}.jpg"
            assert (out / rel).read_bytes() == (src / rel).read_bytes()
            for k in KINDS:
                assert (out / f"person_{i}" / "distortion" / f"{stem}_{k}.jpg").is_file()
    assert not (out / "person_0" / "distortion" / "old_foggy.jpg").exists()
    assert not list(out.rglob("*.tmp"))
    folder = scan_folder(out)
    assert folder.report.n_clean == 4 and folder.report.n_distorted == 28 and folder.report.n_skipped == 0
    by_photo = {}
    for s in folder.samples:
        by_photo.setdefault(s.photo, set()).add(s.distortion)
    assert set(by_photo) == {f"person_{i}/person_{i}_{j:04d}" for i in range(2) for j in range(2)}
    assert all(v == {""} | set(KINDS) for v in by_photo.values())

    # deterministic for a seed, different for another
    out2 = tmp_path / "out2"
    distort_folder(src, out2, seed=5, kinds=("noisy",))
    rel = "person_0/distortion/person_0_0000_noisy.jpg"
    assert (out / rel).read_bytes() == (out2 / rel).read_bytes()
    out3 = tmp_path / "out3"
    distort_folder(src, out3, seed=6, kinds=("noisy",))
    assert (out / rel).read_bytes() != (out3 / rel).read_bytes()
    assert not (out2 / "person_0" / "distortion" / "person_0_0000_foggy.jpg").exists()


def test_distort_folder_errors(tmp_path):
    with pytest.raises(DataError):
        distort_folder(tmp_path / "missing", tmp_path / "out")
    src = _make_src(tmp_path / "src", 1, 1)
    with pytest.raises(ValueError):
        distort_folder(src, tmp_path / "out", kinds=("snowy",))


def test_shrink_keeps_the_size_and_only_the_smaller_copys_detail():
    board = np.indices((64, 48)).sum(0) % 2 * 255  # one-pixel checkerboard: all detail, nothing at half size
    img = Image.fromarray(np.stack([board] * 3, -1).astype(np.uint8))
    out = np.asarray(shrink(img, 2.0)).astype(float)
    assert out.shape == (64, 48, 3)
    assert out.std() < 0.25 * np.asarray(img).astype(float).std() and abs(out.mean() - 127.5) < 5
    flat = Image.new("RGB", (40, 30), (90, 120, 30))
    assert np.abs(np.asarray(shrink(flat, 1.7)).astype(int) - (90, 120, 30)).max() <= 1
