"""The embedder: a timm backbone + a linear projection, L2-normalised, and where its weights come from; the flip
test as an evaluation-time wrapper (:class:`FlipTest`, chosen by :func:`for_inference`). Its input transform:
:mod:`facelib.models.transforms`; its checkpoints: :mod:`facelib.models.checkpoint`."""

from __future__ import annotations

import os
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from facelib.config import NECKS
from facelib.errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelSpec:
    """What is needed to rebuild an :class:`EmbeddingNet` and feed it images."""

    backbone: str = "resnet50"
    embedding_dim: int = 512
    image_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    weights_source: str = "random"  # "timm-hub", "file:<path>", "random", or "checkpoint"
    neck: str = "none"  # "bn": BatchNorm1d between the projection and the L2 norm (see EmbeddingNet)
    # Applied before the resize (facelib.data.framing). 1.0 / "none" for checkpoints written before they existed.
    face_crop: float = 1.0  # the central fraction of the shorter side kept (FaceCrop)
    restore: str = "none"  # restoration front-end (Restore): none | median
    # Evaluation embeds the photo and its mirror image and averages them (FlipTest, through for_inference). False
    # for checkpoints written before it existed, so their figures stay as they were measured.
    flip_test: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class EmbeddingNet(nn.Module):
    """timm backbone (``num_classes=0``, pooled features) -> ``Linear(features, dim)`` [-> BatchNorm1d] -> L2 norm.

    ``neck="bn"`` (Luo et al. 2019, "Bag of Tricks", arXiv 1903.07071) standardises every
    embedding dimension over the batch before the L2 norm. A randomly initialised network maps
    all faces to nearly one direction (a large shared mean); the BatchNorm removes that mean, so
    training starts with embeddings spread over the sphere instead of collapsed to a point, and
    hardest-negative mining has real negatives to push away. At eval time it is a fixed affine map.

    It embeds one view, in train and eval mode alike; the flip test is a wrapper at evaluation time
    (:class:`FlipTest`, chosen from the spec by :func:`for_inference`).

    ``forward``: images [B, 3, H, W] -> embeddings [B, dim] with unit L2 norm; with
    ``normalize=False`` the neck's output before the norm (what a triplet loss on un-normalised
    embeddings trains on; see ``TrainConfig.normalize_embeddings``).
    """

    def __init__(self, backbone: str = "resnet50", embedding_dim: int = 512, pretrained: bool = False,
                 neck: str = "none"):
        super().__init__()
        if neck not in NECKS:
            raise ModelError(f"unknown neck {neck!r}; choose one of {', '.join(NECKS)}")
        import timm

        try:
            self.backbone = timm.create_model(backbone, pretrained=pretrained, num_classes=0)
        except RuntimeError as e:
            if "Unknown model" in str(e):
                raise ModelError(
                    f"unknown backbone {backbone!r}: use a timm model name such as resnet50 or resnet18"
                ) from None
            raise
        self.backbone_name = backbone
        self.head = nn.Linear(self.backbone.num_features, embedding_dim)
        self.neck = nn.BatchNorm1d(embedding_dim) if neck == "bn" else nn.Identity()
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        z = self.neck(self.head(self.backbone(x)).float())  # [B, dim] float32 (also under autocast)
        return F.normalize(z, dim=1) if normalize else z


class FlipTest(nn.Module):
    """The flip test of face recognition evaluations (e.g. ArcFace's LFW protocol), at evaluation time: the
    normalised sum of the unit embeddings of the photo and of its mirror image.

    A face and its mirror are the same person; averaging the two views removes the part of the embedding that
    depends on which way the head turns. Twice the compute; training sees one view (the bare net), mirrored at
    random by the augmentation. It holds no weights of its own: ``net`` is used as it is (its train/eval mode
    included), and checkpoints are written from the net.

    ``forward``: images [B, 3, H, W] -> ``normalize(net(x) + net(x.flip(3)))`` [B, D], unit rows (``net``
    returns unit rows, as :class:`EmbeddingNet` does).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(x) + self.net(x.flip(3)), dim=1)


def for_inference(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """What evaluation, recognition and export run: :class:`FlipTest` around ``model`` when ``spec.flip_test``,
    else ``model`` itself. Images [B, 3, S, S] (normalised as ``spec`` says) -> unit embeddings [B, D]. The mode
    is left as it is: call ``.eval()`` on ``model`` first."""
    return FlipTest(model) if spec.flip_test else model


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to the Hugging Face hub (what timm downloads from)?"""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    host = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_weights_cached(backbone: str) -> bool:
    """Are the timm hub weights for ``backbone`` already in the local Hugging Face cache?"""
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(backbone)
        hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        if not hub_id:
            return False
        return any(
            isinstance(try_to_load_from_cache(hub_id, name), str)
            for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
        )
    except Exception:  # noqa: BLE001 - any failure just means "not known to be cached"
        return False


def pretrained_available(backbone: str) -> bool:
    """Can timm get ImageNet weights for ``backbone``: in the local cache, or the hub reachable
    (a TCP check with a 3 s timeout; ``HF_HUB_OFFLINE=1`` answers no at once)?"""
    return _hub_weights_cached(backbone) or _hub_reachable()


def _load_backbone_file(model: EmbeddingNet, path: Path) -> None:
    """Load backbone weights from a local file (timm/torchvision state dict, .pth/.bin/.safetensors)."""
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"cannot read weights file {path}: {e}") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ModelError(f"{path} does not hold a state dict")
    own = model.backbone.state_dict()
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if len(usable) < 0.9 * len(own):
        raise ModelError(
            f"{path} does not match backbone {model.backbone_name!r}: only {len(usable)} of {len(own)} "
            "tensors fit (is it weights for another architecture?)"
        )
    model.backbone.load_state_dict(usable, strict=False)


def build_model(
    backbone: str = "resnet50",
    embedding_dim: int = 512,
    pretrained: bool = False,
    weights: str | os.PathLike | None = None,
    image_size: int = 224,
    neck: str = "none",
    face_crop: float = 1.0,
    restore: str = "none",
    flip_test: bool = False,
) -> tuple[EmbeddingNet, ModelSpec]:
    """Build the embedder and say where its backbone weights came from.

    Order: a local ``weights`` file if given; else timm hub weights if ``pretrained``
    (from the local cache, or downloaded when the hub is reachable); else random init.
    Raises :class:`ModelError` at once, with the way out, when hub weights cannot be had.
    ``face_crop``, ``restore`` and ``flip_test`` are recorded in the spec (see :class:`ModelSpec`); evaluation
    applies the flip test through :func:`for_inference`.
    """
    if weights is not None:
        model = EmbeddingNet(backbone, embedding_dim, pretrained=False, neck=neck)
        _load_backbone_file(model, Path(weights))
        source = f"file:{weights}"
    elif pretrained:
        if not pretrained_available(backbone):
            raise ModelError(
                f"pretrained weights for {backbone!r} are not in the local cache and the timm hub cannot be "
                "reached (offline?). Set weights=FILE to a local weights file, or pretrained=False to "
                "start from random weights.", fields=("weights", "pretrained"),
            )
        try:
            model = EmbeddingNet(backbone, embedding_dim, pretrained=True, neck=neck)
        except ModelError:
            raise
        except Exception as e:  # noqa: BLE001 - hub/network errors come in many types
            raise ModelError(
                f"could not fetch pretrained weights for {backbone!r} ({type(e).__name__}). Set weights=FILE "
                "to a local weights file, or pretrained=False to start from random weights.",
                fields=("weights", "pretrained"),
            ) from None
        source = "timm-hub"
    else:
        model = EmbeddingNet(backbone, embedding_dim, pretrained=False, neck=neck)
        source = "random"
    spec = ModelSpec(backbone=backbone, embedding_dim=embedding_dim, image_size=image_size, weights_source=source,
                     neck=neck, face_crop=face_crop, restore=restore, flip_test=flip_test)
    _fill_data_config(model, spec)
    return model, spec


def describe_weights(spec: ModelSpec) -> str:
    """One line saying which weights the backbone started from."""
    src = spec.weights_source
    if src == "timm-hub":
        return f"backbone {spec.backbone}: pretrained weights from the timm hub"
    if src.startswith("file:"):
        return f"backbone {spec.backbone}: weights from local file {src[5:]}"
    if src == "checkpoint":
        return f"backbone {spec.backbone}: weights from checkpoint"
    if src.startswith("init:"):
        return f"embedder {spec.backbone}: weights from facelib checkpoint {src[5:]} (fine-tuning)"
    return f"backbone {spec.backbone}: random initialisation (no pretrained weights)"


def _fill_data_config(model: EmbeddingNet, spec: ModelSpec) -> None:
    """Take mean/std/interpolation from timm's data config for this backbone."""
    import timm.data

    cfg = timm.data.resolve_model_data_config(model.backbone)
    spec.mean = tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN))
    spec.std = tuple(float(v) for v in cfg.get("std", IMAGENET_STD))
    spec.interpolation = str(cfg.get("interpolation", "bilinear"))

