"""Checkpoints: save (atomic), read (``weights_only=True``), load into an :class:`EmbeddingNet`, the original
scripts' plain state dicts, and the model fingerprint that ties galleries and metrics to one model.

A checkpoint is a plain dict (``format``, ``version``, ``model_spec`` as a dict, ``model`` state dict, plain
extras): it pickles no facelib class, so moving modules never breaks loading.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facelib.errors import CheckpointError, ModelError
from facelib.io import atomic_path
from facelib.models.network import EmbeddingNet, ModelSpec

CHECKPOINT_FORMAT = "facelib-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, model: nn.Module, spec: ModelSpec, **extra: Any) -> Path:
    """Write a checkpoint atomically (temp file + rename).

    ``extra`` holds plain data: ``identities``, ``config``, ``epoch``, ``history``,
    ``optimizer``/``scheduler`` state dicts, RNG states.
    """
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_spec": asdict(spec),
        "model": state,
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``; :class:`CheckpointError` if it isn't one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (train one first with `facelib train`)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle, zip and torch errors differ by corruption
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a facelib checkpoint (it holds a {type(obj).__name__})")
    if obj.get("format") != CHECKPOINT_FORMAT:
        obj = _from_plain_state_dict(obj, path)
    return obj


def _from_plain_state_dict(state: dict, path: Path) -> dict[str, Any]:
    """Accept the original scripts' ``torch.save(model.state_dict())`` files (ResNet-50 + Linear)."""
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors or len(tensors) != len(state):
        raise CheckpointError(f"{path} is not a facelib checkpoint (no model state found)")
    linear = [k for k, v in tensors.items() if k.endswith("weight") and v.ndim == 2]
    if not linear:
        raise CheckpointError(f"{path} is not a facelib checkpoint (no embedding layer found)")
    head_key = linear[-1]
    head_prefix = head_key[: -len("weight")]
    dim = int(tensors[head_key].shape[0])
    body = {k.removeprefix("module."): v for k, v in tensors.items() if not k.startswith(head_prefix)}
    # The body may sit under one attribute name (``base.``, ``backbone.``) or at the top level.
    stripped = {k.split(".", 1)[1]: v for k, v in body.items() if "." in k}
    first = {k.split(".", 1)[0] for k in body}
    body = stripped if len(first) == 1 and len(stripped) == len(body) else body
    remapped = {"backbone." + k: v for k, v in body.items()}
    remapped.update({"head." + k[len(head_prefix):]: v for k, v in tensors.items() if k.startswith(head_prefix)})
    return {
        "format": CHECKPOINT_FORMAT,
        "version": 0,
        "model_spec": asdict(ModelSpec(backbone="resnet50", embedding_dim=dim, weights_source="checkpoint")),
        "model": remapped,
        "legacy": True,
    }


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[EmbeddingNet, ModelSpec, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights (eval mode).

    Returns ``(model, spec, checkpoint_dict)``. Raises :class:`CheckpointError` for a file
    that is not a checkpoint or whose tensors do not fit the architecture it names.
    """
    ckpt = read_checkpoint(path)
    known = set(ModelSpec.__dataclass_fields__)
    spec_dict = {k: v for k, v in dict(ckpt.get("model_spec", {})).items() if k in known}
    for key in ("mean", "std"):
        if key in spec_dict:
            spec_dict[key] = tuple(spec_dict[key])
    spec = ModelSpec(**spec_dict)
    try:
        model = EmbeddingNet(spec.backbone, spec.embedding_dim, pretrained=False, neck=spec.neck)
    except ModelError as e:
        raise CheckpointError(f"{path}: {e}") from None
    state = ckpt.get("model")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not a facelib checkpoint (no model state found)")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong_shape:
        examples = (wrong_shape + missing + unexpected)[:3]
        raise CheckpointError(
            f"{path} does not fit a {spec.backbone} embedder with {spec.embedding_dim}-d output: "
            f"{len(missing)} missing, {len(unexpected)} unexpected and {len(wrong_shape)} mis-shaped tensors "
            f"(e.g. {examples}); is it a checkpoint of another architecture?"
        )
    model.load_state_dict(state)
    model.to(device).eval()
    return model, spec, ckpt

def model_fingerprint(state_dict: dict[str, Any], spec: Any) -> str:
    """16 hex digits of SHA-256 over the weights (name, dtype, shape, bytes) and the preprocessing of ``spec``.

    Two checkpoints share a fingerprint only if their embeddings are the same function of the image.
    """
    h = hashlib.sha256()
    pre = {k: getattr(spec, k) for k in ("backbone", "embedding_dim", "image_size", "mean", "std", "interpolation")}
    # the framing and the flip test joined the preprocessing later: hashed only where they change the embedding, so
    # older checkpoints keep their fingerprints
    later = {"face_crop": 1.0, "restore": "none", "flip_test": False}  # key -> the value before it existed
    pre.update({k: getattr(spec, k, before) for k, before in later.items() if getattr(spec, k, before) != before})
    h.update(json.dumps(pre, sort_keys=True, default=list).encode())
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
