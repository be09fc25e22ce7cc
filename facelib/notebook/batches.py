"""One real P x K batch for notebooks 02 and 03: the sampler's first batch, and its embeddings."""

from __future__ import annotations

from typing import Sequence

from facelib.config import TrainConfig
from facelib.data.folders import FaceFolder
from facelib.notebook.setup import check_pretrained

__all__ = ["pk_batch", "embed_batch"]


def pk_batch(folder: FaceFolder, p: int, k: int, seed: int = 0,
             clean_fraction: float = TrainConfig.clean_fraction) -> list[int]:
    """The first P x K batch the training sampler would draw (indices into ``folder.samples``)."""
    import warnings

    from facelib.data.samplers import PKSampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sampler = PKSampler(folder.labels, p, k, photos=folder.photos, distortions=folder.distortions,
                            clean_fraction=clean_fraction, batches_per_epoch=1, seed=seed)
    return next(iter(sampler))



def embed_batch(cfg: TrainConfig, folder: FaceFolder, indices: Sequence[int], model=None):
    """Embed ``folder.samples[indices]`` with a freshly built model for ``cfg`` (or ``model``).

    Returns (embeddings [B, D] float tensor on the CPU, labels [B] long tensor, model).
    """
    import torch

    from facelib.evaluation.extract import embed_images
    from facelib.models.network import build_model

    if model is None:
        check_pretrained(cfg, print)
        model, spec = build_model(cfg.backbone, cfg.embedding_dim, pretrained=cfg.pretrained, weights=cfg.weights,
                                  image_size=cfg.image_size)
        model.spec = spec
    paths = [folder.samples[i].path for i in indices]
    e = embed_images(model, paths, model.spec, batch_size=64, workers=0, device="cpu" if not torch.cuda.is_available()
                     else "cuda")
    labels = torch.as_tensor(folder.labels[list(indices)])
    return torch.from_numpy(e), labels, model

