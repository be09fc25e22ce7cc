"""The small random embedder the model tests share."""

from __future__ import annotations

import pytest
import torch

from facelib.models.network import ModelSpec, build_model


@pytest.fixture(scope="module")
def small() -> tuple[torch.nn.Module, ModelSpec]:
    """A random resnet18 embedder (16-d, 32 px) and its spec."""
    torch.manual_seed(0)
    return build_model("resnet18", embedding_dim=16, pretrained=False, image_size=32)
