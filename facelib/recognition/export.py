"""ONNX export of an embedder, with the preprocessing contract spelled out.

The exported graph takes ``images``: float32 [N, 3, S, S], RGB in [0, 1], already framed and resized to
S x S. The framing is the caller's job, not the graph's: the checkpoint's restoration filter
(``spec.restore``) and face crop (the central ``spec.face_crop`` of the shorter side), then the resize;
:func:`load_inputs` does exactly that. The mean/std normalisation of the checkpoint's spec is inside
the graph, and so is the flip test (``spec.flip_test``: the photo and its mirror image, averaged); the batch size
is dynamic; the output ``embeddings`` [N, D] has unit L2 rows. The contract is written into the model's
metadata (:func:`preprocessing_contract`): a reader of the file alone (e.g. ``--teacher model.onnx``) frames the
photos right.

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

__all__ = ["EXPORT_FORMATS", "normalized_embedder", "export_onnx", "preprocessing_contract", "load_inputs",
           "onnx_embed"]


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
    """Write ``model`` as ONNX to ``out`` (atomically, weights inside the one file)."""
    import torch

    for module in ("onnx", "onnxscript"):
        _require(module)
    wrapper = normalized_embedder(model.cpu().eval(), spec)
    example = torch.rand(2, 3, spec.image_size, spec.image_size)
    batch = torch.export.Dim("batch", min=1, max=65536)
    with atomic_path(out) as tmp:
        with torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(wrapper, (example,), str(tmp), dynamo=True, opset_version=opset,
                              input_names=["images"], output_names=["embeddings"],
                              dynamic_shapes={"images": {0: batch}}, external_data=False, verbose=False)
        _write_contract(tmp, spec)
    return Path(out)


def preprocessing_contract(spec: "ModelSpec") -> dict[str, str]:
    """What a caller must do before the graph, as the model's ONNX metadata (strings): the face crop, the
    restoration filter, the input size and the resize's interpolation (the normalisation and the flip test are
    inside the graph)."""
    from facelib import __version__

    return {"facelib_version": str(__version__), "image_size": str(spec.image_size),
            "face_crop": f"{spec.face_crop:g}", "restore": spec.restore, "interpolation": spec.interpolation,
            "flip_test": str(bool(spec.flip_test)),
            "embedding_dim": str(spec.embedding_dim), "input": "float32 [N, 3, S, S] RGB in [0, 1]"}


def _write_contract(path: str | os.PathLike, spec: "ModelSpec") -> None:
    import onnx

    model = onnx.load(str(path))
    for key, value in preprocessing_contract(spec).items():
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
