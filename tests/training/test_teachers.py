"""Teachers and their cache: a tiny fixed network stands in for dlib; one real dlib test skips without the extra."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facelib.errors import ConfigError, FacelibError
from facelib.training import teachers as T
from tests.conftest import make_folder, write_image


class TinyTeacher:
    """A fixed network: 8x8 grey pixels -> a fixed random projection to 6-d, unit rows. Counts its images."""

    dim = 6
    calls = 0

    def __init__(self, key: str = "tiny-v1", fail_after: int | None = None):
        self.key, self.fail_after = key, fail_after
        self.w = np.random.default_rng(0).normal(size=(64, self.dim)).astype(np.float32)

    def embed(self, images):
        if self.fail_after is not None and TinyTeacher.calls >= self.fail_after:
            raise KeyboardInterrupt  # the pass is killed
        TinyTeacher.calls += len(images)
        x = np.stack([np.asarray(im.convert("L").resize((8, 8)), np.float32).ravel() / 255 - 0.5 for im in images])
        z = x @ self.w
        return z / np.linalg.norm(z, axis=1, keepdims=True), np.arange(len(images)) % 3 != 0


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    make_folder(tmp_path / "f", identities=3, photos=3, distortions=())
    return sorted((tmp_path / "f").rglob("*.jpg"))


@pytest.fixture(autouse=True)
def _count():
    TinyTeacher.calls = 0


def run(paths, cache, teacher=None, **kw):
    return T.teacher_embeddings(paths, teacher or TinyTeacher(), cache_root=cache, workers=0, progress=False,
                                log=lambda s: None, **kw)


def test_pass_embeds_every_photo_once_then_reuses_the_cache(photos, tmp_path):
    first = run(photos, tmp_path / "c")
    assert first.computed == len(photos) and first.reused == 0 and TinyTeacher.calls == len(photos)
    assert first.ok.all() and np.allclose(np.linalg.norm(first.emb, axis=1), 1, atol=1e-5)
    direct, found = TinyTeacher().embed([Image.open(p).convert("RGB") for p in photos])
    np.testing.assert_allclose(first.emb, direct, atol=1e-6)
    # no face: the teacher's fallback embedding is kept, counted and named
    assert len(first.no_face) == int((~found).sum()) > 0 and "no face found in" in first.summary()
    TinyTeacher.calls = 0
    second = run(photos, tmp_path / "c")
    assert TinyTeacher.calls == 0 and second.computed == 0 and second.reused == len(photos)
    np.testing.assert_array_equal(second.emb, first.emb)
    np.testing.assert_array_equal(second.found, first.found)


def test_cache_is_keyed_by_content_not_name(photos, tmp_path):
    run(photos, tmp_path / "c")
    renamed = tmp_path / "renamed.jpg"
    renamed.write_bytes(photos[0].read_bytes())
    write_image(photos[1], seed=999)  # changed on disk
    TinyTeacher.calls = 0
    again = run([renamed, photos[1], photos[2]], tmp_path / "c")
    assert TinyTeacher.calls == 1 and again.computed == 1 and again.reused == 2  # only the changed file


def test_unreadable_files_are_counted_not_fatal(photos, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    gone = tmp_path / "gone.jpg"
    out = run(photos + [bad, gone], tmp_path / "c")
    assert out.ok.tolist() == [True] * len(photos) + [False, False]
    assert sorted(p for p, _ in out.unreadable) == sorted([str(bad), str(gone)])
    assert not out.emb[-2:].any() and "skipped 2 unreadable files" in out.summary()


def test_killed_pass_keeps_its_shards_and_the_next_run_completes(photos, tmp_path, monkeypatch):
    monkeypatch.setattr(T, "SHARD_ROWS", 2)
    with pytest.raises(KeyboardInterrupt):
        run(photos, tmp_path / "c", teacher=TinyTeacher(fail_after=4), chunk=2)
    kept = T.TeacherCache("tiny-v1", 6, tmp_path / "c")
    assert len(kept) == 4  # two chunks finished before the kill
    TinyTeacher.calls = 0
    rest = run(photos, tmp_path / "c", chunk=2)
    assert rest.reused == 4 and rest.computed == len(photos) - 4 == TinyTeacher.calls and rest.ok.all()


def test_cache_of_another_teacher_is_refused(photos, tmp_path):
    first = run(photos, tmp_path / "c")
    folder = Path(first.cache)
    other = folder.parent / "tiny-v2"
    folder.rename(other)  # a user points a cache folder of tiny-v1 at tiny-v2
    with pytest.raises(ConfigError, match="holds the embeddings of teacher 'tiny-v1'"):
        run(photos, tmp_path / "c", teacher=TinyTeacher(key="tiny-v2"))


def test_corrupt_shard_is_counted_and_recomputed(photos, tmp_path):
    first = run(photos, tmp_path / "c")
    shard = next(Path(first.cache).glob("part-*.npz"))
    shard.write_bytes(b"garbage")
    again = run(photos, tmp_path / "c")
    assert again.bad_shards == [shard.name] and again.computed == len(photos)
    np.testing.assert_allclose(again.emb, first.emb, atol=1e-6)
    assert "unreadable cache shards" in again.summary()


def test_get_teacher_names_and_files(tmp_path):
    assert "dlib" in T.teacher_names()
    with pytest.raises(ConfigError, match="unknown teacher 'nope'"):
        T.get_teacher("nope")
    with pytest.raises(ConfigError, match="teacher file not found"):
        T.get_teacher(str(tmp_path / "missing.pth"))


def test_missing_dlib_extra_gives_the_install_line_when_a_photo_needs_it(monkeypatch, photos, tmp_path):
    monkeypatch.setitem(sys.modules, "dlib", None)  # import dlib -> ImportError
    teacher = T.get_teacher("dlib")  # nothing loaded yet: a fully cached run needs no dlib
    with pytest.raises(FacelibError, match=r"pip install 'facelib\[align\]'"):
        T.teacher_embeddings(photos, teacher, cache_root=tmp_path / "c", workers=0, progress=False)


def test_checkpoint_teacher_in_worker_processes_matches_the_model(tiny_checkpoint, photos, tmp_path):
    import torch

    from facelib.models.checkpoint import load_checkpoint
    from facelib.models.network import FlipTest
    from facelib.models.transforms import build_transform

    par = T.teacher_embeddings(photos, str(tiny_checkpoint), cache_root=tmp_path / "c", workers=2, chunk=4,
                               progress=False)
    model, spec, _ = load_checkpoint(tiny_checkpoint)
    assert spec.flip_test  # the teacher embeds as the checkpoint evaluates: the photo and its mirror image
    tf = build_transform(spec)
    with torch.no_grad():
        want = FlipTest(model)(torch.stack([tf(Image.open(p).convert("RGB")) for p in photos])).numpy()
    assert par.computed == len(photos) and par.found.all() and par.teacher.startswith("checkpoint-")
    np.testing.assert_allclose(par.emb, want, atol=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnxscript") is None,
                    reason="needs the [onnx] extra")
def test_onnx_teacher_reads_the_contract_and_matches_the_checkpoint(tiny_checkpoint, photos, tmp_path):
    from facelib.models.checkpoint import load_checkpoint
    from facelib.recognition.export import export_onnx

    model, spec, _ = load_checkpoint(tiny_checkpoint)
    onnx_path = export_onnx(model, spec, tmp_path / "m.onnx")
    teacher = T.get_teacher(str(onnx_path))
    assert (teacher.face_crop, teacher.size, teacher.dim) == (spec.face_crop, spec.image_size, spec.embedding_dim)
    got = run(photos, tmp_path / "c", teacher=teacher)
    want = run(photos, tmp_path / "c", teacher=T.get_teacher(str(tiny_checkpoint)))
    cos = (got.emb * want.emb).sum(1)
    assert cos.min() > 0.999, cos  # the same framing and resize as `facelib embed`: only the runtimes differ


@pytest.mark.skipif(importlib.util.find_spec("dlib") is None, reason="needs the [align] extra (dlib)")
def test_real_dlib_teacher_on_synthetic_faces(tmp_path):
    from facelib.data.synthetic import make_dataset

    make_dataset(tmp_path / "d", identities=3, photos=2, image_size=112, seed=0)
    paths = sorted((tmp_path / "d" / "train").glob("*/*.jpg"))
    out = T.teacher_embeddings(paths, "dlib", cache_root=tmp_path / "c", workers=0, progress=False)
    assert out.emb.shape == (len(paths), 128) and out.ok.all()
    assert np.allclose(np.linalg.norm(out.emb, axis=1), 1, atol=1e-4)
    assert len(out.no_face) == int((~out.found).sum())  # every fallback counted and named
    # dlib's descriptor is a function of the image: the same photo twice gives the same row
    again = T.get_teacher("dlib").embed([Image.open(paths[0]).convert("RGB")] * 2)[0]
    np.testing.assert_allclose(again[0], again[1], atol=1e-6)
    np.testing.assert_allclose(out.emb[0], again[0], atol=1e-5)


def test_a_fully_cached_dlib_run_needs_no_dlib(monkeypatch, photos, tmp_path):
    monkeypatch.setitem(sys.modules, "dlib", None)
    teacher = T.get_teacher("dlib")
    rows = np.eye(len(photos), 128, dtype=np.float32)
    T.TeacherCache(teacher.key, 128, tmp_path / "c").add([T.file_key(p) for p in photos], rows, [True] * len(photos))
    out = T.teacher_embeddings(photos, "dlib", cache_root=tmp_path / "c", progress=False)
    assert out.computed == 0 and out.reused == len(photos)
    np.testing.assert_array_equal(out.emb, rows)
