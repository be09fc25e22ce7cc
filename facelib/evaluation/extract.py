"""Batched embedding extraction: images -> L2-normalised embeddings, no per-image model calls; the model runs as
its spec prescribes (:func:`facelib.models.network.for_inference`: with the flip test where ``spec.flip_test``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from facelib.data.folders import FaceFolder, ImageDataset, scan_folder
from facelib.evaluation.embedding_set import EmbeddingSet
from facelib.models.checkpoint import load_checkpoint
from facelib.models.network import EmbeddingNet, ModelSpec, for_inference
from facelib.models.transforms import build_transform
from facelib.runtime import autocast_dtype, memory_format, resolve_device


def image_loader(
    paths: Sequence[Path], transform, batch_size: int = 64, workers: int = 2, device: torch.device | None = None
) -> torch.utils.data.DataLoader:
    """An ordered DataLoader over image files yielding ``(images [B,3,S,S], index [B])``."""
    ds = ImageDataset(paths, np.arange(len(paths)), transform)
    pin = device is not None and device.type == "cuda"
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin,
        persistent_workers=False,
    )


@torch.inference_mode()
def embed_images(
    model: EmbeddingNet,
    paths: Sequence[Path],
    spec: ModelSpec,
    *,
    batch_size: int = 64,
    workers: int = 2,
    device: str | torch.device | None = None,
    amp: bool = True,
    progress: bool = False,
) -> np.ndarray:
    """Embed image files in batches with ``for_inference(model, spec)`` (eval mode; the flip test where
    ``spec.flip_test``). Returns [N, D] float32 with unit-norm rows (in ``paths`` order)."""
    device = resolve_device(device or next(model.parameters()).device)
    was_training = model.training
    model.eval()
    net = for_inference(model, spec)
    dtype = autocast_dtype(device, amp)
    out = np.empty((len(paths), spec.embedding_dim), dtype=np.float32)
    loader = image_loader(paths, build_transform(spec, train=False), batch_size, workers, device)
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="embedding", unit="batch", leave=False, disable=None)
    layout = memory_format(device)
    for images, index in loader:
        images = images.to(device, non_blocking=True, memory_format=layout)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            emb = net(images)
        out[index.numpy()] = torch.nn.functional.normalize(emb.float(), dim=1).cpu().numpy()
    model.train(was_training)
    return out


def embed_folder(
    model: EmbeddingNet, spec: ModelSpec, folder: FaceFolder, **kwargs
) -> EmbeddingSet:
    """Embed every sample of a scanned folder into an :class:`~facelib.evaluation.embedding_set.EmbeddingSet`
    (absolute paths)."""
    return EmbeddingSet.from_samples(embed_images(model, folder.paths, spec, **kwargs), folder.samples)


def embed_checkpoint(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    *,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 2,
    progress: bool = True,
    include_distortions: bool = True,
) -> tuple[EmbeddingSet, FaceFolder, ModelSpec]:
    """Load a checkpoint and embed a FACECOM-layout folder (clean and distorted images)."""
    dev = resolve_device(device)
    model, spec, _ = load_checkpoint(checkpoint, dev)
    folder = scan_folder(data, include_distortions=include_distortions)
    es = embed_folder(model, spec, folder, batch_size=batch_size, workers=workers, device=dev, progress=progress)
    return es, folder, spec
