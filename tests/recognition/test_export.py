"""facelib.recognition.export: the ONNX graph against the torch embedder (skipped without the [onnx] extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from facelib.cli import main
from tests.conftest import REAL_DATA

MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_onnx = pytest.mark.skipif(bool(MISSING), reason=f"{MISSING} not installed (pip install 'facelib[onnx]')")


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, tmp_path_factory) -> Path:
    if MISSING:
        pytest.skip(f"{MISSING} not installed (pip install 'facelib[onnx]')")
    out = tmp_path_factory.mktemp("onnx") / "m.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    return out


def _parity(onnx_path: Path, checkpoint: Path, paths: list[Path]) -> np.ndarray:
    from facelib.evaluation.extract import embed_images
    from facelib.models.checkpoint import load_checkpoint
    from facelib.recognition.export import load_inputs, onnx_embed

    model, spec, _ = load_checkpoint(checkpoint)
    ref = embed_images(model, paths, spec, workers=0)
    got = onnx_embed(onnx_path, load_inputs(paths, spec))
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    return np.einsum("ij,ij->i", got, ref)


@needs_onnx
def test_export_graph_contract(exported, capsys):
    import onnx

    m = onnx.load(str(exported))
    (inp,), (out,) = m.graph.input, m.graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "images" and out.name == "embeddings"
    assert isinstance(dims[0], str) and dims[1:] == [3, 32, 32]  # dynamic batch, fixed size
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert not list(exported.parent.glob("*.data")) and not list(exported.parent.glob(".*tmp*"))


@needs_onnx
def test_export_matches_torch_on_synthetic_images(exported, tiny_checkpoint, synth_root):
    paths = sorted((synth_root / "val").rglob("*.jpg"))[:37]  # an odd batch: the batch size is dynamic
    assert _parity(exported, tiny_checkpoint, paths).min() >= 0.999


@needs_onnx
def test_the_graph_holds_the_flip_test_where_the_spec_says(exported, tiny_checkpoint, tmp_path):
    """A graph with the flip test gives a photo and its mirror image one embedding; the same weights exported
    without it do not (each is checked against its torch embedder by the parity tests)."""
    from dataclasses import replace

    from facelib.models.checkpoint import load_checkpoint
    from facelib.recognition.export import export_onnx, onnx_embed

    model, spec, _ = load_checkpoint(tiny_checkpoint)
    assert spec.flip_test
    x = np.random.default_rng(0).random((3, 3, spec.image_size, spec.image_size), dtype=np.float32)
    mirror = x[..., ::-1]
    np.testing.assert_allclose(onnx_embed(exported, x), onnx_embed(exported, mirror), atol=1e-5)
    one_view = export_onnx(model, replace(spec, flip_test=False), tmp_path / "one.onnx")
    assert np.abs(onnx_embed(one_view, x) - onnx_embed(one_view, mirror)).max() > 1e-3


@needs_onnx
@pytest.mark.realdata
def test_export_matches_torch_on_real_faces(exported, tiny_checkpoint):
    if not REAL_DATA.is_dir():
        pytest.skip(f"real FACECOM data not present at {REAL_DATA}")
    paths = sorted((REAL_DATA / "val").rglob("*.jpg"))[::300][:12]  # clean and distorted, various identities
    assert len(paths) == 12
    assert _parity(exported, tiny_checkpoint, paths).min() >= 0.999


def test_export_without_the_extra_is_one_line(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ONNX export needs the 'onnxscript' package") and err.count("\n") == 1
    assert not out.exists()
