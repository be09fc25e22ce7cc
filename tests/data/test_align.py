"""facelib.data.align: the similarity transform, alignment with injected landmarks, align_folder's layout and
policies, and (with dlib installed) the real detectors; CelebA when ../shared/data/extra_faces is present."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from facelib.data import align
from facelib.data.align import (
    TEMPLATE,
    AlignReport,
    align_folder,
    align_image,
    align_paths,
    align_to_folder,
    apply_transform,
    fallback_transform,
    key_points,
    similarity_transform,
    warp,
)
from facelib.errors import DataError, FacelibError

EXTRA = Path(__file__).resolve().parents[3] / "shared" / "data" / "extra_faces"
CELEBA = EXTRA / "celeba"


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def landmarks_for(points: np.ndarray) -> np.ndarray:
    """dlib-style 5 landmarks [5, 2] (pixel coordinates) whose key points (continuous) are ``points`` [3, 2]:
    eye corners 3 px either side of each eye centre (right eye first, as dlib), then the nose."""
    p = np.asarray(points, float) - 0.5
    off = np.array([3.0, 0.0])
    return np.array([p[1] + off, p[1] - off, p[0] - off, p[0] + off, p[2]])


class FakeAligner:
    """Returns fixed key points given as fractions of the image side; no face in near-black images."""

    detector_name = "fake"

    def __init__(self, points: np.ndarray = TEMPLATE * 0.8 + 0.1):
        self.points = np.asarray(points, float)
        self.calls = 0

    def landmarks(self, img: Image.Image) -> np.ndarray | None:
        self.calls += 1
        if np.asarray(img).mean() < 8:
            return None
        return landmarks_for(self.points * np.array(img.size))


# ----------------------------------------------------------------------------- the transform


def test_similarity_transform_recovers_a_known_matrix():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    m = _similarity(23.0, 1.7, -31.0, 12.5)
    dst = apply_transform(m, src)
    fit = similarity_transform(src, dst)
    assert np.allclose(fit, m, atol=1e-9)
    assert np.abs(apply_transform(fit, src) - dst).max() < 1e-6


def test_similarity_transform_two_points_exact_and_no_reflection():
    src = np.array([[10.0, 10.0], [30.0, 10.0]])
    dst = np.array([[5.0, 5.0], [5.0, 45.0]])  # rotated 90 degrees, scaled x2
    fit = similarity_transform(src, dst)
    assert np.allclose(apply_transform(fit, src), dst, atol=1e-9)
    assert np.linalg.det(fit[:, :2]) > 0
    mirrored = src * [-1, 1]  # a reflection is not a similarity: the fit is the best rotation + scale
    assert np.linalg.det(similarity_transform(np.vstack([src, [[20, 30]]]),
                                              np.vstack([mirrored, [[-20, 30]]]))[:, :2]) >= 0
    with pytest.raises(ValueError):
        similarity_transform(src[:1], dst[:1])


def test_fallback_is_the_centred_square():
    m = fallback_transform(89, 109, 224)
    corners = apply_transform(m, np.array([[0.0, 10.0], [89.0, 99.0]]))
    assert np.allclose(corners, [[0, 0], [224, 224]])


def test_key_points_order_and_convention():
    pts = np.array([[40.0, 50.0], [80.0, 52.0], [60.0, 75.0]])
    lm = landmarks_for(pts)
    assert np.allclose(key_points(lm), pts)
    assert np.allclose(key_points(lm[[2, 3, 0, 1, 4]]), pts)  # the eyes are ordered by x, whichever comes first


# ----------------------------------------------------------------------------- align_image


def _dots(size: tuple[int, int], points: np.ndarray, r: float = 3.0) -> Image.Image:
    """White image with a red, a green and a blue disc centred on ``points`` [3, 2] (continuous coords)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    arr = np.full((h, w, 3), 255, np.uint8)
    for c, (px, py) in enumerate(points):
        disc = (xx - px) ** 2 + (yy - py) ** 2 <= r * r
        arr[disc] = 0
        arr[disc, c] = 255
    return Image.fromarray(arr)


def _centroid(img: Image.Image, channel: int) -> np.ndarray:
    a = np.asarray(img).astype(float)
    others = [c for c in range(3) if c != channel]
    w = np.clip(a[..., channel] - a[..., others].max(-1), 0, None)  # how pure that colour is
    yy, xx = np.mgrid[0 : a.shape[0], 0 : a.shape[1]] + 0.5
    return np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()


@pytest.mark.parametrize("size", [224, 112])
def test_align_image_puts_the_landmarks_on_the_template(size):
    # input points: the template moved by a rotation, a scale and a shift, in a non-square image
    points = apply_transform(_similarity(-18.0, 1.6, 70.0, 40.0), TEMPLATE * 224)
    img = _dots((400, 300), points)
    fake = FakeAligner(points / np.array([400, 300]))
    out, found = align_image(img, fake, size=size)
    assert found and out.size == (size, size) and out.mode == "RGB"
    for c in range(3):
        assert np.abs(_centroid(out, c) - TEMPLATE[c] * size).max() < 1.0


def test_align_image_without_a_face_falls_back_to_the_centred_square():
    arr = np.zeros((120, 80, 3), np.uint8)
    arr[20:100] = 4  # the centred 80 x 80 square, still "no face" for the fake
    out, found = align_image(Image.fromarray(arr), FakeAligner(), size=64)
    a = np.asarray(out)
    assert not found and out.size == (64, 64)
    assert (a[2:-2, 2:-2] == 4).all()  # only the square, no black band from outside it


def test_warp_shrinks_large_photos_without_aliasing():
    stripes = np.zeros((1600, 1600, 3), np.uint8)
    stripes[:, ::2] = 255  # one-pixel stripes: a point sampler would return pure black or white
    out = warp(Image.fromarray(stripes), fallback_transform(1600, 1600, 100), 100)
    assert out.size == (100, 100)
    assert abs(np.asarray(out).mean() - 127.5) < 10 and np.asarray(out).std() < 10


def test_align_paths_and_align_to_folder(tmp_path):
    img = _dots((200, 200), TEMPLATE * 200)
    paths = [tmp_path / "a.jpg", tmp_path / "b.png"]
    img.save(paths[0])
    Image.new("RGB", (50, 70)).save(paths[1])  # black: no face
    got = align_paths(paths, FakeAligner(TEMPLATE), size=96)
    assert [f for _, f in got] == [True, False] and all(i.size == (96, 96) for i, _ in got)
    new, found = align_to_folder(paths, tmp_path / "aligned", FakeAligner(TEMPLATE), size=96)
    assert found == [True, False] and [p.name for p in new] == ["000000.png", "000001.png"]
    assert np.array_equal(np.asarray(Image.open(new[1])), np.asarray(got[1][0]))


# ----------------------------------------------------------------------------- align_folder


@pytest.fixture(scope="module")
def synth_src(tmp_path_factory) -> Path:
    from facelib.data.synthetic import make_dataset

    root = tmp_path_factory.mktemp("align_synth")
    make_dataset(root, identities=3, photos=2, image_size=48, seed=0, val_identities=1)
    return root / "train"  # 2 identities x 2 photos, 7 distorted copies each


@pytest.fixture
def src(synth_src, tmp_path) -> Path:
    return Path(shutil.copytree(synth_src, tmp_path / "src"))


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")}


def test_align_folder_layout_and_report(src, tmp_path):
    out = tmp_path / "out"
    fake = FakeAligner()
    r = align_folder(src, out, size=40, aligner=fake, progress=False)
    assert isinstance(r, AlignReport)
    assert _files(out) == _files(src) and len(_files(out)) == 4 * 8
    assert all(Image.open(out / f).size == (40, 40) for f in _files(out))
    assert (r.n_photos, r.n_found, r.n_fallback, r.n_written, r.no_face, r.unreadable) == (4, 4, 0, 32, [], [])
    assert fake.calls == 4  # detection on the clean photos only
    assert r.per_kind == {k: 4 for k in ("blurred", "foggy", "lowlight", "noisy", "rainy", "resized", "sunny")}
    assert "face found in 4 of 4 photos" in r.summary() and (out / align.MARKER).is_file()


def test_distorted_copies_take_the_clean_photos_transform(src, tmp_path):
    ident = sorted(p for p in src.iterdir() if p.is_dir())[0]
    clean = sorted(ident.glob("*.jpg"))[0]
    Image.open(clean).filter(ImageFilter.GaussianBlur(2)).save(clean, quality=98)  # smooth: halving loses little
    same = ident / "distortion" / f"{clean.stem}_blurred.jpg"
    shutil.copyfile(clean, same)
    half = ident / "distortion" / f"{clean.stem}_resized.jpg"
    Image.open(clean).resize((24, 24), Image.Resampling.LANCZOS).save(half, quality=98)
    out = tmp_path / "out"
    align_folder(src, out, size=48, aligner=FakeAligner(TEMPLATE * 0.6 + 0.2), progress=False)
    rel = lambda p: out / p.relative_to(src)  # noqa: E731
    a = np.asarray(Image.open(rel(clean))).astype(float)
    assert np.array_equal(a, np.asarray(Image.open(rel(same))))
    # a copy at another size is mapped through the clean photo's frame: the same picture, a bit blurrier
    b = np.asarray(Image.open(rel(half))).astype(float)
    assert np.abs(a - b).mean() < 4 < np.abs(a[:, 2:] - b[:, :-2]).mean()  # a 2 px shift would show


def _blacken(photo: Path) -> None:
    Image.new("RGB", Image.open(photo).size).save(photo)


def test_no_face_keep_and_skip(src, tmp_path):
    idents = sorted(p for p in src.iterdir() if p.is_dir())
    lone = idents[1]
    for photo in lone.glob("*.jpg"):  # an identity whose photos have no face
        _blacken(photo)
    partly = sorted(idents[0].glob("*.jpg"))[0]
    _blacken(partly)
    no_face = sorted(p.relative_to(src).as_posix() for p in [partly, *lone.glob("*.jpg")])

    keep = align_folder(src, tmp_path / "keep", size=32, no_face="keep", aligner=FakeAligner(), progress=False)
    assert (keep.n_found, keep.n_fallback, keep.n_skipped_no_face) == (1, 3, 0)
    assert sorted(keep.no_face) == no_face and _files(tmp_path / "keep") == _files(src)
    assert "fallback framing" in keep.summary() and no_face[0] in keep.summary()

    skip = align_folder(src, tmp_path / "skip", size=32, no_face="skip", aligner=FakeAligner(), progress=False)
    assert (skip.n_found, skip.n_fallback, skip.n_skipped_no_face, skip.n_written) == (1, 0, 3, 8)
    assert sorted(skip.no_face) == no_face and "skipped 3" in skip.summary()
    assert not (tmp_path / "skip" / lone.name).exists()  # an identity left with nothing is not created
    assert all(not f.startswith(partly.relative_to(src).parent.as_posix() + "/distortion/" + partly.stem + "_")
               for f in _files(tmp_path / "skip"))


def test_unreadable_files_and_orphans_are_counted(src, tmp_path):
    ident = sorted(p for p in src.iterdir() if p.is_dir())[0]
    twin = sorted(ident.glob("*.jpg"))[0]
    (ident / "empty.jpg").write_bytes(b"")
    (ident / "garbage.jpg").write_bytes(b"not a jpeg at all")
    (ident / "distortion" / "gone_foggy.jpg").write_bytes(next((ident / "distortion").glob("*.jpg")).read_bytes())
    Image.open(twin).save(twin.with_suffix(".png"))  # the same photo name twice: one output file, one skipped
    r = align_folder(src, tmp_path / "out", size=32, aligner=FakeAligner(), progress=False)
    assert sorted(p for p, _ in r.unreadable) == sorted(f"{ident.name}/{n}" for n in
                                                        ("empty.jpg", "garbage.jpg", f"{twin.stem}.png"))
    assert r.n_orphans == 1 and r.n_photos == 5
    assert (tmp_path / "out" / ident.name / "distortion" / "gone_foggy.jpg").is_file()
    text = r.summary()
    assert "skipped 3 files (1 duplicate photo name, 1 not an image, 1 zero-byte)" in text
    assert "no usable clean photo" in text


def test_rerun_overwrites_and_prunes_but_foreign_folders_are_refused(src, tmp_path):
    out = tmp_path / "out"
    align_folder(src, out, size=32, aligner=FakeAligner(), progress=False)
    lone = sorted(p for p in src.iterdir() if p.is_dir())[1]
    for photo in lone.glob("*.jpg"):
        _blacken(photo)
    again = align_folder(src, out, size=32, no_face="skip", aligner=FakeAligner(), progress=False)
    assert again.n_skipped_no_face == 2 and not (out / lone.name).exists()  # stale files of the first run gone
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*"))

    foreign = tmp_path / "foreign"
    (foreign / "x").mkdir(parents=True)
    with pytest.raises(DataError, match="not the output of a previous"):
        align_folder(src, foreign, aligner=FakeAligner(), progress=False)
    with pytest.raises(DataError, match="outside the source"):
        align_folder(src, src / "aligned", aligner=FakeAligner(), progress=False)
    with pytest.raises(FacelibError, match="no_face"):
        align_folder(src, tmp_path / "o2", no_face="drop", aligner=FakeAligner(), progress=False)


def test_missing_dlib_says_how_to_install(monkeypatch, src, tmp_path):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    with pytest.raises(FacelibError) as e:
        align.Aligner("hog")
    assert str(e.value) == "face alignment needs dlib: pip install 'facelib[align]'"
    with pytest.raises(FacelibError, match=r"needs dlib"):
        align_folder(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_unknown_detector():
    with pytest.raises(FacelibError, match="unknown face detector"):
        align.Aligner("haar")


# ----------------------------------------------------------------------------- real dlib


def _dlib():
    pytest.importorskip("dlib", reason="needs pip install -e '.[align]'")
    # only the missing model package skips; any other error in model_file fails the test
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("needs pip install -e '.[align]' (face-recognition-models)")


def _celeba_src(tmp_path: Path, n: int) -> Path:
    if not CELEBA.is_dir():
        pytest.skip(f"CelebA extra faces not present at {CELEBA}")
    src = tmp_path / "celeba"
    for ident in sorted(p for p in CELEBA.iterdir() if p.is_dir())[:n]:
        (src / ident.name).mkdir(parents=True)
        first = sorted(ident.glob("*.jpg"))[0]
        shutil.copyfile(first, src / ident.name / first.name)
    return src


def test_real_aligner_finds_nothing_in_a_blank_image():
    _dlib()
    a = align.Aligner("hog")
    assert a.landmarks(Image.new("RGB", (120, 100), (128, 128, 128))) is None
    assert (a.upsample_for(89, 109), a.upsample_for(224, 224), a.upsample_for(640, 480)) == (1, 1, 0)
    assert align.Aligner("hog", 2).upsample_for(640, 480) == 2


@pytest.mark.realdata
def test_celeba_hog_aligns_most_faces_onto_the_template(tmp_path):
    _dlib()
    src = _celeba_src(tmp_path, 10)
    r = align_folder(src, tmp_path / "out", detector="hog", no_face="keep", progress=False)
    assert r.n_photos == 10 and r.n_found >= 8 and r.n_written == 10
    outs = sorted((tmp_path / "out").glob("*/*.jpg"))
    assert all(Image.open(p).size == (224, 224) for p in outs)
    # re-detected on the aligned output, the eyes and nose sit on the template (within ~4% of the side)
    hog = align.Aligner("hog")
    errors = [np.abs(key_points(lm) / 224 - TEMPLATE).max() for p in outs
              if (lm := hog.landmarks(Image.open(p).convert("RGB"))) is not None]
    assert len(errors) >= 8 and np.median(errors) < 0.04


@pytest.mark.realdata
def test_large_photos_are_detected_downscaled_with_full_resolution_landmarks(tmp_path):
    _dlib()
    photo = min(_celeba_src(tmp_path, 3).glob("*/*.jpg"))
    small = Image.open(photo).convert("RGB")
    big = small.resize((small.width * 15, small.height * 15), Image.Resampling.BICUBIC)  # 1335 x 1635
    hog = align.Aligner("hog")
    lm_small, lm_big = hog.landmarks(small), hog.landmarks(big)
    assert lm_small is not None and lm_big is not None
    assert np.abs(key_points(lm_big) / 15 - key_points(lm_small)).max() < 3  # in the small photo's pixels


def test_cnn_detector_and_skip_policy(tmp_path):
    _dlib()
    if CELEBA.is_dir():
        src = _celeba_src(tmp_path, 2)
    else:  # no real faces here: the CNN path still runs (and finds none)
        src = tmp_path / "blank"
        for i in range(2):
            (src / f"p{i}").mkdir(parents=True)
            Image.new("RGB", (89, 109), (120, 120, 120)).save(src / f"p{i}" / "x.jpg")
    r = align_folder(src, tmp_path / "out", detector="cnn", no_face="skip", progress=False)
    assert r.detector == "cnn" and r.n_photos == 2
    assert r.n_found + r.n_skipped_no_face == 2 and r.n_written == r.n_found
    if CELEBA.is_dir():
        assert r.n_found >= 1


# ----------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("flags", [["--detector", "hog"], ["--detector", "cnn"], ["--no-face", "keep"],
                                   ["--no-face", "skip"]])
def test_cli_align(flags, tmp_path, capsys):
    from facelib import cli

    _dlib()
    src = tmp_path / "src"
    for i in range(2):
        (src / f"p{i}" / "distortion").mkdir(parents=True)
        Image.new("RGB", (89, 109), (0, 0, 0)).save(src / f"p{i}" / "x.jpg")  # no face in either
        Image.new("RGB", (89, 109), (9, 9, 9)).save(src / f"p{i}" / "distortion" / "x_noisy.jpg")
    rc = cli.main(["align", str(src), str(tmp_path / "out"), "--size", "64", *flags])
    text = capsys.readouterr().out
    assert rc == 0 and "face found in 0 of 2 photos" in text
    expect = 0 if flags == ["--no-face", "skip"] else 4
    assert len(_files(tmp_path / "out")) == expect
    assert cli.main(["align", str(src), str(src / "inside")]) == 2  # a user error: one line, status 2


@pytest.mark.slow  # trains the tiny checkpoint (a session fixture, shared with the other CLI tests)
def test_cli_identify_align(request, tmp_path, monkeypatch, capsys):
    import json

    from facelib.cli import main

    synth_root, tiny_checkpoint = request.getfixturevalue("synth_root"), request.getfixturevalue("tiny_checkpoint")
    monkeypatch.setattr(align, "Aligner", lambda detector="hog", upsample=None: FakeAligner())
    gallery = tmp_path / "g.npz"
    assert main(["enroll", "--checkpoint", str(tiny_checkpoint), "--data", str(synth_root / "val"), "--out",
                 str(gallery), "--threshold", "-1", "--workers", "0"]) == 0
    photos = [str(p) for p in sorted((synth_root / "val").glob("*/*.jpg"))[:3]]
    Image.new("RGB", (40, 40)).save(tmp_path / "black.jpg")  # no face for the fake aligner
    capsys.readouterr()
    assert main(["identify", "--align", "--checkpoint", str(tiny_checkpoint), "--gallery", str(gallery),
                 "--workers", "0", "--json", *photos, str(tmp_path / "black.jpg")]) == 0
    out = capsys.readouterr()
    assert [json.loads(line)["path"] for line in out.out.splitlines()] == [*photos, str(tmp_path / "black.jpg")]
    assert "no face found in 1 of 4" in out.err
