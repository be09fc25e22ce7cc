"""ONNX export of an embedder, with its preprocessing contract in the file.

The exported graph takes ``images``: float32 [N, 3, S, S], RGB in [0, 1], already framed and resized to S x S by
the caller: the checkpoint's restoration filter (``spec.restore``), then its face crop (the central square of side
``spec.face_crop`` x the shorter side), then the resize (``spec.interpolation``, antialiased); :func:`load_inputs`
does exactly that, as ``facelib embed`` does. Inside the graph: the mean/std normalisation and the flip test
(``spec.flip_test``, through :func:`facelib.models.network.for_inference`); the batch size is dynamic; the output
``embeddings`` [N, D] has unit L2 rows. The whole contract, with the facelib version and the model's fingerprint,
is in the model's metadata (:func:`preprocessing_contract`): a reader of the file alone (e.g.
``--teacher model.onnx``) frames the photos right and knows which model it runs.

Why the face crop stays outside the graph: a graph that took the whole frame resized to ``round(S / face_crop)``
px and sliced its central S x S was measured against ``facelib embed`` (issue 26). Resizing before the crop is
not the same function as cropping before the resize (another sampling grid; the crop side rounded at another
scale), and the embeddings leave the 0.999 bar: min cosine 0.972 (mean 0.996) over the 128 synthetic val photos
of the tests (32 px, face crop 0.55: ``tests/recognition/test_export.py``), and over 80 FACECOM val photos (clean
and distorted, the tests' checkpoint's weights) 0.994 at 64 px, 0.995 at 112 px and 0.9992 at 224 px. Nor would
the contract be simpler: the caller would still filter at the photo's own resolution and square a non-square
photo before a resize, only to an odd size (116 px for 64 at 0.55) with 3.3 times the pixels. With the crop
outside, the graph's embeddings match ``facelib embed``'s to cosine 0.9999999 on the same photos.

Needs the ``[onnx]`` extra (``onnx``, ``onnxscript`` for torch's exporter, ``onnxruntime`` to run it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from facelib.config import EXPORT_FORMATS  # the registry's names
from facelib.errors import FacelibError
from facelib.io import atomic_path

if TYPE_CHECKING:  # torch loads on first use: `facelib --help` stays fast
    from torch import nn

    from facelib.models.network import EmbeddingNet, ModelSpec

__all__ = ["EXPORT_FORMATS", "CONTRACT_VERSION", "normalized_embedder", "export_onnx", "preprocessing_contract",
           "load_inputs", "onnx_embed"]

CONTRACT_VERSION = "1"  # the metadata's ``facelib_contract``: changes when a key changes meaning


def normalized_embedder(model: "EmbeddingNet", spec: "ModelSpec") -> "nn.Module":
    """What the graph computes: ``for_inference(model, spec)`` (the flip test where ``spec.flip_test``) with the
    input normalisation inside: images [N, 3, S, S] in [0, 1] -> [N, D] unit rows."""
    import torch

    from facelib.models.network import for_inference

    class NormalizedEmbedder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = for_inference(model, spec)
            self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.model((images - self.mean) / self.std)

    return NormalizedEmbedder().eval()


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise FacelibError(f"ONNX export needs the {module!r} package: pip install 'facelib[onnx]'")


def export_onnx(model: "EmbeddingNet", spec: "ModelSpec", out: str | os.PathLike, opset: int = 18) -> Path:
    """Write ``model`` as ONNX to ``out`` (atomically, weights inside the one file), with the preprocessing
    contract of ``spec`` and the model's fingerprint in its metadata (:func:`preprocessing_contract`)."""
    import torch

    from facelib.models.checkpoint import model_fingerprint

    for module in ("onnx", "onnxscript"):
        _require(module)
    model = model.cpu().eval()
    contract = preprocessing_contract(spec, model_fingerprint(model.state_dict(), spec))
    wrapper = normalized_embedder(model, spec)
    example = torch.rand(2, 3, spec.image_size, spec.image_size)
    batch = torch.export.Dim("batch", min=1, max=65536)
    with atomic_path(out) as tmp:
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(wrapper, (example,), str(tmp), dynamo=True, opset_version=opset,
                              input_names=["images"], output_names=["embeddings"],
                              dynamic_shapes={"images": {0: batch}}, external_data=False, verbose=False)
        _write_contract(tmp, contract)
    return Path(out)


def preprocessing_contract(spec: "ModelSpec", fingerprint: str) -> dict[str, str]:
    """The model's ONNX metadata (string values): what a caller does before the graph (``restore``, then
    ``face_crop``, then the resize to ``image_size`` with ``interpolation``, antialiased: ``input``), what the
    graph does (``normalization`` with ``mean``/``std`` as JSON lists, ``flip_test``), what it returns
    (``output``, ``embedding_dim``), and which model and library made it (``model_fingerprint``: as in galleries
    and metrics.json, ``backbone``, ``facelib_version``); ``preprocessing`` says it all in one line."""
    import json

    from facelib import __version__

    crop = (f"central square of side {spec.face_crop:g} x the shorter side" if spec.face_crop < 1.0 else
            "the whole frame")
    steps = ([f"{spec.restore} filter"] if spec.restore != "none" else []) + [
        crop, f"resize to {spec.image_size} x {spec.image_size} px ({spec.interpolation}, antialiased)",
        "RGB float32 in [0, 1]"]
    inside = "(images - mean) / std" + (", flip test" if spec.flip_test else "")
    return {
        "facelib_contract": CONTRACT_VERSION,
        "preprocessing": " -> ".join(steps) + f"; in the graph: {inside}",
        "restore": spec.restore,
        "face_crop": f"{spec.face_crop:g}",
        "image_size": str(spec.image_size),
        "interpolation": spec.interpolation,
        "antialias": "True",
        "input": "images: float32 [N, 3, S, S], RGB in [0, 1], framed and resized by the caller",
        "normalization": "in the graph: (images - mean) / std per RGB channel",
        "mean": json.dumps([float(v) for v in spec.mean]),
        "std": json.dumps([float(v) for v in spec.std]),
        "flip_test": str(bool(spec.flip_test)),
        "output": "embeddings: float32 [N, D], unit L2 rows",
        "embedding_dim": str(spec.embedding_dim),
        "backbone": spec.backbone,
        "model_fingerprint": fingerprint,
        "facelib_version": str(__version__),
    }


def _write_contract(path: str | os.PathLike, contract: dict[str, str]) -> None:
    import onnx

    model = onnx.load(str(path))
    for key, value in contract.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))



def load_inputs(paths: Sequence[str | os.PathLike], spec: "ModelSpec") -> np.ndarray:
    """Images -> float32 [N, 3, S, S], RGB in [0, 1], framed (restoration, face crop) and resized as
    :func:`facelib.models.transforms.build_transform` does: the exported graph's input (the normalisation it leaves out
    is in the graph)."""
    import torch

    from facelib.data.folders import load_image
    from facelib.models.transforms import graph_input_transform

    pre = graph_input_transform(spec)
    if len(paths) == 0:
        return np.zeros((0, 3, spec.image_size, spec.image_size), np.float32)
    return torch.stack([pre(load_image(p)) for p in paths]).numpy()


def onnx_embed(path: str | os.PathLike, images: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Run an exported model with onnxruntime (CPU): images [N, 3, S, S] in [0, 1] -> [N, D]."""
    _require("onnxruntime")
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(["embeddings"], {"images": np.ascontiguousarray(images, dtype=np.float32)})[0]
