from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelib.data.folders import DataError, ImageDataset, load_image, parse_distorted_name, scan_folder, to_rgb
from tests.conftest import make_folder, write_image


def test_scan_counts_and_fields(image_folder: Path):
    f = scan_folder(image_folder)
    assert f.identities == ["id_0", "id_1", "id_2", "id_3"]
    assert f.report.n_clean == 12 and f.report.n_distorted == 12 and len(f) == 24
    dist = [s for s in f.samples if s.distortion == "blurred"][0]
    clean = [s for s in f.samples if s.is_clean and s.photo == dist.photo]
    assert len(clean) == 1 and dist.photo == f"{dist.identity}/{Path(clean[0].rel).stem}"
    assert f.labels.shape == (24,) and set(f.labels) == {0, 1, 2, 3}
    assert f.report.n_skipped == 0


def test_scan_without_distortions(image_folder: Path):
    f = scan_folder(image_folder, include_distortions=False)
    assert len(f) == 12 and all(s.is_clean for s in f.samples)


def test_missing_and_empty_folder(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no <identity>/ subfolders"):
        scan_folder(tmp_path / "empty")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        scan_folder(tmp_path / "file.txt")


def test_bad_files_are_skipped_and_counted(image_folder: Path):
    ident = image_folder / "id_0"
    (ident / "zero.jpg").write_bytes(b"")
    (ident / "notes.txt").write_text("hello")
    (ident / "garbage.jpg").write_bytes(b"this is not a jpeg at all" * 10)
    good = (ident / "id_0_0000.jpg").read_bytes()
    (ident / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (image_folder / "empty_person").mkdir()
    f = scan_folder(image_folder)
    r = f.report
    assert r.skipped["zero-byte"] == 1
    assert r.skipped["not an image"] == 2  # the .txt and the garbage .jpg
    assert r.skipped["corrupt or truncated"] == 1
    assert r.n_skipped == 4 and len(f) == 24
    assert r.empty_identities == ["empty_person"]
    text = r.summary()
    assert "skipped 4 files" in text and "empty_person" in text


def test_identity_with_one_image_is_reported(tmp_path: Path):
    root = make_folder(tmp_path / "d", identities=2, photos=2, distortions=())
    write_image(root / "solo" / "solo_0001.jpg", seed=5)
    f = scan_folder(root)
    assert f.report.single_image_identities == ["solo"]
    assert "single image" in f.report.summary()


def test_nothing_usable_is_an_error(tmp_path: Path):
    (tmp_path / "d" / "a").mkdir(parents=True)
    (tmp_path / "d" / "a" / "x.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="no usable images"):
        scan_folder(tmp_path / "d")


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "1", "LA"])
def test_modes_convert_to_rgb(tmp_path: Path, mode: str):
    fmt = "JPEG" if mode in ("L", "CMYK") else "PNG"
    p = write_image(tmp_path / f"x.{fmt.lower()}", seed=1, mode=mode, fmt=fmt)
    assert Image.open(p).mode == mode
    im = load_image(p)
    assert im.mode == "RGB" and im.size == (32, 32)


def test_16bit_png_scales_to_8bit(tmp_path: Path):
    arr = np.full((8, 8), 65535, dtype=np.uint16)
    arr[:4] = 0
    p = tmp_path / "deep.png"
    Image.fromarray(arr).save(p)
    assert Image.open(p).mode.startswith("I")
    out = np.asarray(load_image(p))
    assert out.dtype == np.uint8 and out[0, 0, 0] == 0 and out[7, 0, 0] == 255


def test_rgba_composites_on_white():
    im = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    assert np.asarray(to_rgb(im))[0, 0].tolist() == [255, 255, 255]


def test_exif_rotation_applied(tmp_path: Path):
    im = Image.new("RGB", (40, 20), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    p = tmp_path / "rot.jpg"
    im.save(p, exif=exif)
    assert load_image(p).size == (20, 40)


def test_parse_distorted_name():
    assert parse_distorted_name("Paul_Bremer_0001_foggy") == ("Paul_Bremer_0001", "foggy")
    assert parse_distorted_name("plain") == ("plain", "unknown")


def test_image_dataset_item(image_folder: Path):
    f = scan_folder(image_folder)
    ds = ImageDataset(f.paths, f.labels, transform=lambda im: np.asarray(im))
    x, y = ds[3]
    assert x.shape == (32, 32, 3) and y == f.labels[3]
    with pytest.raises(ValueError):
        ImageDataset(f.paths, f.labels[:-1])


def test_image_changed_after_scan_gives_clear_error(image_folder: Path):
    f = scan_folder(image_folder)
    ds = ImageDataset(f.paths, f.labels)
    f.paths[0].write_bytes(b"broken")
    with pytest.raises(DataError, match="cannot read image"):
        ds[0]


def test_several_sources_keep_their_people_apart(tmp_path: Path):
    from facelib.data.folders import scan_sources

    a = make_folder(tmp_path / "a" / "train", identities=2, photos=2)
    b = make_folder(tmp_path / "b" / "train", identities=3, photos=2, distortions=())  # the same names id_0, id_1
    f = scan_sources([a, b])
    assert f.identities == ["a/train/id_0", "a/train/id_1", "b/train/id_0", "b/train/id_1", "b/train/id_2"]
    assert len({s.photo for s in f.samples}) == 2 * 2 + 3 * 2  # photos stay apart too
    assert f.report.n_identities == 5 and f.report.n_clean == 10 and f.report.n_distorted == 4
    text = f.report.summary()
    assert str(a) in text and str(b) in text and "2 sources" in text and "different people" in text
    assert scan_sources([a]).identities == ["id_0", "id_1"]  # one source: names as they are
    assert scan_sources(str(a)).identities == ["id_0", "id_1"]


def test_source_tags():
    from facelib.data.folders import source_tags

    assert source_tags(["x/train", "y/lfw", "celeba_aligned"]) == ["train", "lfw", "celeba_aligned"]
    assert source_tags(["a/train", "b/train"]) == ["a/train", "b/train"]
    assert source_tags(["a/train", "a/train"]) == ["a/train#1", "a/train#2"]


def test_synthetic_distortions_only_for_photos_without_copies(tmp_path: Path):
    from facelib.data.folders import DISTORTION_KINDS, ImageDataset, scan_sources

    a = make_folder(tmp_path / "a", identities=2, photos=2)  # one blurred copy per photo
    b = make_folder(tmp_path / "b", identities=2, photos=3, distortions=())
    f, bare = scan_sources([a, b]).with_synthetic_distortions()
    assert bare == 6
    made = [s for s in f.samples if s.synthetic]
    assert len(made) == 6 * len(DISTORTION_KINDS) and all(s.identity.startswith("b/") for s in made)
    assert sorted({s.distortion for s in made}) == sorted(DISTORTION_KINDS)
    kinds = f.synthetic_kinds
    assert sum(bool(k) for k in kinds) == len(made)
    ds = ImageDataset(f.paths, f.labels, transform=None, distortions=kinds)
    i = kinds.index("noisy")
    made_img, clean_img = ds[i][0], load_image(f.paths[i])
    assert made_img.size == clean_img.size and np.asarray(made_img).tobytes() != np.asarray(clean_img).tobytes()
    j = kinds.index("")
    assert np.array_equal(np.asarray(ds[j][0]), np.asarray(load_image(f.paths[j])))
