"""facelib.recognition.gallery and the enroll / identify commands, bad inputs included."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from facelib.cli import main
from facelib.errors import DataError
from facelib.models.checkpoint import model_fingerprint
from facelib.models.network import ModelSpec
from facelib.recognition.gallery import (
    ENROLL_MODES,
    Gallery,
    GalleryError,
    build_gallery,
    identify,
    image_paths,
    threshold_from_metrics,
)
from tests.conftest import write_image

E = np.eye(3, dtype=np.float32)


def truncated_jpeg(path: Path) -> Path:
    """A JPEG cut in half: the header reads, the pixels do not."""
    data = write_image(path, 5, size=64).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _err(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return captured.err


def test_build_gallery_mean_and_all():
    emb = np.stack([E[0], E[0] + E[1], E[2], E[2]])
    g = build_gallery(emb, ["b", "b", "a", "a"], "f" * 16, 64)
    assert g.names.tolist() == ["a", "b"] and g.counts.tolist() == [2, 2] and g.labels.tolist() == [0, 1]
    want_b = E[0] / 1 + (E[0] + E[1]) / np.sqrt(2)
    np.testing.assert_allclose(g.embeddings[1], want_b / np.linalg.norm(want_b), atol=1e-6)
    np.testing.assert_allclose(g.embeddings[0], E[2], atol=1e-6)
    a = build_gallery(emb, ["b", "b", "a", "a"], "f" * 16, 64, mode="all")
    assert len(a.embeddings) == 4 and a.labels.tolist() == [1, 1, 0, 0] and len(a) == 2
    with pytest.raises(ValueError, match="mode"):
        build_gallery(emb, ["b", "b", "a", "a"], "f" * 16, 64, mode="median")
    with pytest.raises(DataError, match="nothing to enrol"):
        build_gallery(np.zeros((0, 3)), [], "f" * 16, 64)


@pytest.mark.parametrize("mode", ENROLL_MODES)
def test_identify_threshold_and_top(mode):
    emb = np.stack([E[0], E[0], E[1], E[1] + 0.1 * E[0]])
    g = build_gallery(emb, ["a", "a", "b", "b"], "f" * 16, 64, mode=mode, threshold=0.9)
    probes = np.stack([E[0], E[1], (E[0] + E[1]) / np.sqrt(2), E[2]])
    out = identify(g, probes, ["p0", "p1", "p2", "p3"], top_k=2)
    assert [m.identity for m in out] == ["a", "b", None, None]
    assert out[0].score == pytest.approx(1.0, abs=1e-6) and [n for n, _ in out[0].top] == ["a", "b"]
    assert out[3].score == pytest.approx(0.0, abs=1e-6)  # orthogonal to both: unknown
    assert identify(g, probes[2:3], ["p2"], threshold=0.5)[0].identity in ("a", "b")  # override
    d = out[2].to_dict()
    assert d["identity"] is None and len(d["top"]) == 2 and json.dumps(d)
    g.threshold = None
    assert [m.identity for m in identify(g, probes, ["p0", "p1", "p2", "p3"])][:2] == ["a", "b"]


def test_gallery_file_round_trip_and_bad_files(tmp_path):
    g = build_gallery(np.stack([E[0], E[1]]), ["a", "b"], "0123456789abcdef", 64, threshold=0.4,
                      threshold_source="--threshold")
    path = g.save(tmp_path / "g.npz")
    assert not list(tmp_path.glob(".*tmp*"))
    h = Gallery.load(path)
    assert h.names.tolist() == ["a", "b"] and h.threshold == 0.4 and h.fingerprint == g.fingerprint
    np.testing.assert_array_equal(h.embeddings, g.embeddings)
    h.check_model("0123456789abcdef")
    with pytest.raises(GalleryError, match="another model"):
        h.check_model("ffffffffffffffff")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(GalleryError, match="not a facelib gallery"):
        Gallery.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "emb.npz", embeddings=np.zeros((2, 3)))
    with pytest.raises(GalleryError, match="not a facelib gallery"):
        Gallery.load(tmp_path / "emb.npz")
    with pytest.raises(GalleryError, match="not found"):
        Gallery.load(tmp_path / "nope.npz")


def test_fingerprint_follows_weights_and_preprocessing():
    net = torch.nn.Linear(3, 2)
    spec = ModelSpec(backbone="resnet18", embedding_dim=2, image_size=64)
    fp = model_fingerprint(net.state_dict(), spec)
    assert len(fp) == 16 and fp == model_fingerprint(net.state_dict(), spec)
    assert fp != model_fingerprint(net.state_dict(), replace(spec, image_size=32))
    assert fp != model_fingerprint(net.state_dict(), replace(spec, flip_test=True))
    assert fp == model_fingerprint(net.state_dict(), replace(spec, flip_test=False))  # the value before it existed
    with torch.no_grad():
        net.weight[0, 0] += 1e-3
    assert fp != model_fingerprint(net.state_dict(), spec)


def test_threshold_from_metrics(tmp_path):
    p = tmp_path / "metrics.json"
    with pytest.raises(DataError, match="not found"):
        threshold_from_metrics(p)
    p.write_text("{")
    with pytest.raises(DataError, match="not a readable"):
        threshold_from_metrics(p)
    p.write_text(json.dumps({"top1": 0.5}))
    with pytest.raises(DataError, match="no decision threshold"):
        threshold_from_metrics(p)
    p.write_text(json.dumps({"threshold": {"value": 0.62, "far": 0.01, "target_far": 0.01},
                             "model": {"fingerprint": "aaaa"}}))
    assert threshold_from_metrics(p, "aaaa")[0] == 0.62
    with pytest.raises(GalleryError, match="another model"):
        threshold_from_metrics(p, "bbbb")


def test_image_paths_skips_unreadable(tmp_path):
    write_image(tmp_path / "d" / "x" / "a.jpg", 1)
    write_image(tmp_path / "d" / "b.png", 2)
    truncated_jpeg(tmp_path / "d" / "bad.jpg")
    (tmp_path / "d" / "notes.txt").write_text("hi")
    good, skipped = image_paths([tmp_path / "d"])
    assert [p.name for p in good] == ["b.png", "a.jpg"] and [Path(p).name for p, _ in skipped] == ["bad.jpg"]
    with pytest.raises(DataError, match="not found"):
        image_paths([tmp_path / "nope"])


# ------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def enrolled(synth_root, tiny_checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gallery") / "g.npz"
    assert main(["enroll", "--checkpoint", str(tiny_checkpoint), "--data", str(synth_root / "val"), "--out", str(out),
                 "--threshold", "-1", "--workers", "0"]) == 0
    return out


def test_enroll_writes_one_row_per_identity(enrolled, synth_root, tiny_checkpoint):
    from facelib.models.checkpoint import load_checkpoint

    g = Gallery.load(enrolled)
    idents = sorted(p.name for p in (synth_root / "val").iterdir() if p.is_dir())
    assert g.names.tolist() == idents and g.embeddings.shape == (len(idents), 32) and g.mode == "mean"
    assert g.counts.tolist() == [4] * len(idents) and g.threshold == -1.0 and g.image_size == 32
    np.testing.assert_allclose(np.linalg.norm(g.embeddings, axis=1), 1, atol=1e-5)
    model, spec, _ = load_checkpoint(tiny_checkpoint)
    assert g.fingerprint == model_fingerprint(model.state_dict(), spec)


def test_identify_json_lines(enrolled, synth_root, tiny_checkpoint, capsys):
    ident = sorted(p.name for p in (synth_root / "val").iterdir() if p.is_dir())[0]
    folder = synth_root / "val" / ident / "distortion"
    code = main(["identify", "--checkpoint", str(tiny_checkpoint), "--gallery", str(enrolled), "--top-k", "3",
                 "--json", "--workers", "0", str(folder)])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(list(folder.iterdir())) == 28
    for d in lines:
        assert set(d) == {"path", "identity", "score", "top"} and len(d["top"]) == 3
        assert d["identity"] == d["top"][0][0] and d["score"] == d["top"][0][1]  # threshold -1: never unknown
        assert [s for _, s in d["top"]] == sorted((s for _, s in d["top"]), reverse=True)
    code = main(["identify", "--checkpoint", str(tiny_checkpoint), "--gallery", str(enrolled), "--threshold", "1.01",
                 "--workers", "0", str(folder / sorted(p.name for p in folder.iterdir())[0])])
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "unknown (best " in out and "threshold 1.010" in out


def test_enroll_mode_all_and_metrics_threshold(synth_root, tiny_checkpoint, tmp_path, capsys):
    from facelib.models.checkpoint import load_checkpoint

    model, spec, _ = load_checkpoint(tiny_checkpoint)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"threshold": {"value": 0.3, "far": 0.01, "target_far": 0.01},
                                   "model": {"fingerprint": model_fingerprint(model.state_dict(), spec)}}))
    out = tmp_path / "all.npz"
    assert main(["enroll", "--checkpoint", str(tiny_checkpoint), "--data", str(synth_root / "val"), "--out", str(out),
                 "--metrics", str(metrics), "--mode", "all", "--workers", "0"]) == 0
    g = Gallery.load(out)
    assert g.mode == "all" and len(g.embeddings) == int(g.counts.sum()) == 4 * len(g) and g.threshold == 0.3
    assert "threshold 0.3000" in capsys.readouterr().out


def test_identify_with_gallery_of_another_model(enrolled, synth_root, tiny_checkpoint, tmp_path, capsys):
    other = Gallery.load(enrolled)
    other.fingerprint = "0" * 16
    other.save(tmp_path / "other.npz")
    code = main(["identify", "--checkpoint", str(tiny_checkpoint), "--gallery", str(tmp_path / "other.npz"),
                 str(synth_root / "val")])
    assert code == 2
    err = _err(capsys)
    assert err.startswith("error: the gallery was enrolled with another model") and err.count("\n") == 1


def test_enroll_bad_inputs_write_nothing(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "g.npz"
    (tmp_path / "empty").mkdir()
    base = ["enroll", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--workers", "0"]
    assert main(base + ["--data", str(tmp_path / "empty")]) == 2
    assert _err(capsys).startswith("error: no usable images")
    assert main(base + ["--data", str(tmp_path / "missing")]) == 2
    assert "data folder not found" in _err(capsys)
    assert main(base + ["--data", str(tmp_path), "--threshold", "0.5", "--metrics", "m.json"]) == 2
    assert "not both" in _err(capsys)
    assert main(base + ["--data", str(tmp_path), "--metrics", str(tmp_path / "m.json")]) == 2
    assert "metrics file not found" in _err(capsys)
    assert not out.exists() and not list(tmp_path.glob(".g.npz*"))


def test_enroll_counts_unreadable_photo(tiny_checkpoint, tmp_path, capsys):
    for i in range(2):
        write_image(tmp_path / "d" / f"id{i}" / "a.jpg", i)
        write_image(tmp_path / "d" / f"id{i}" / "b.jpg", i + 10)
    truncated_jpeg(tmp_path / "d" / "id1" / "c.jpg")
    out = tmp_path / "g.npz"
    assert main(["enroll", "--checkpoint", str(tiny_checkpoint), "--data", str(tmp_path / "d"), "--out", str(out),
                 "--workers", "0"]) == 0
    text = capsys.readouterr().out
    assert "skipped 1 files (1 corrupt or truncated)" in text and "no threshold" in text
    assert Gallery.load(out).counts.tolist() == [2, 2]


def test_identify_bad_inputs(enrolled, tiny_checkpoint, tmp_path, capsys):
    bad = truncated_jpeg(tmp_path / "bad.jpg")
    good = write_image(tmp_path / "ok.jpg", 3)
    base = ["identify", "--checkpoint", str(tiny_checkpoint), "--gallery", str(enrolled), "--workers", "0"]
    assert main(base + [str(good), str(bad)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1 and "ok.jpg" in captured.out
    assert "skipped " + str(bad) + ": corrupt or truncated" in captured.err and "skipped 1 unreadable" in captured.err
    assert main(base + [str(bad)]) == 2
    assert "error: no readable image among 1 file(s)" in _err(capsys)
    assert main(base + [str(tmp_path / "nope.jpg")]) == 2
    assert "error: not found" in _err(capsys)
    assert main(base + ["--top-k", "0", str(good)]) == 2
    err = _err(capsys)
    assert "top_k must be at least 1, got 0" in err and "[flags: --top-k]" in err
    shutil.copy(bad, tmp_path / "g.npz")
    code = main(["identify", "--checkpoint", str(tiny_checkpoint), "--gallery", str(tmp_path / "g.npz"), str(good)])
    assert code == 2 and "not a facelib gallery" in _err(capsys)


def test_fingerprint_follows_the_framing_and_keeps_old_ones():
    net = torch.nn.Linear(3, 2)
    spec = ModelSpec(backbone="resnet18", embedding_dim=2, image_size=64)
    fp = model_fingerprint(net.state_dict(), spec)
    # hashed the way it was before the framing existed: a gallery of an older checkpoint still matches
    import hashlib
    import json as _json

    h = hashlib.sha256()
    pre = {k: getattr(spec, k) for k in ("backbone", "embedding_dim", "image_size", "mean", "std", "interpolation")}
    h.update(_json.dumps(pre, sort_keys=True, default=list).encode())
    for name in sorted(net.state_dict()):
        t = net.state_dict()[name].detach().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    assert fp == h.hexdigest()[:16]
    assert fp != model_fingerprint(net.state_dict(), replace(spec, face_crop=0.55))
    assert fp != model_fingerprint(net.state_dict(), replace(spec, restore="median"))


@pytest.mark.parametrize("content", [b"", b"not a zip at all", "truncated"])
def test_bad_gallery_files_are_one_error_line(enrolled, tiny_checkpoint, synth_root, tmp_path, capsys, content):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(Path(enrolled).read_bytes()[:300] if content == "truncated" else content)
    photo = next((synth_root / "val").glob("*/*.jpg"))
    code = main(["identify", "--checkpoint", str(tiny_checkpoint), "--gallery", str(bad), str(photo), "--workers", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and "not a facelib gallery" in err[0]
