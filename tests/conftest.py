"""Shared fixtures: tiny image folders written on the fly (no data ships with the tests)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# Tests never download: make any hub access fail at once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FACELIB_PROFILE", "smoke")

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "facecom_task_b"


def structured_image(size: int = 64, seed: int = 0) -> Image.Image:
    """A mid-grey image with structure (gradient, shapes, texture), values away from 0/255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    a = np.stack([60 + 80 * xx, 70 + 60 * yy, 90 + 40 * xx * yy], -1) + rng.normal(0, 4, (size, size, 3))
    img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.ellipse([size * 0.25, size * 0.2, size * 0.75, size * 0.8], fill=(180, 140, 110))
    d.rectangle([size * 0.4, size * 0.4, size * 0.6, size * 0.45], fill=(40, 30, 30))
    return img


def write_image(path: Path, seed: int, size: int = 32, mode: str = "RGB", fmt: str | None = None) -> Path:
    """A random blob image (colour from the seed) of the given PIL mode."""
    rng = np.random.default_rng(seed)
    arr = (rng.random((size, size, 3)) * 80 + rng.integers(0, 170, 3)).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        im = im.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format=fmt)
    return path


def make_folder(root: Path, identities: int = 4, photos: int = 3, distortions: tuple[str, ...] = ("blurred",),
                size: int = 32) -> Path:
    """``root/id_i/id_i_000j.jpg`` plus ``distortion/<stem>_<kind>.jpg`` for each kind."""
    for i in range(identities):
        for j in range(photos):
            stem = f"id_{i}_{j:04d}"
            write_image(root / f"id_{i}" / f"{stem}.jpg", seed=100 * i + j, size=size)
            for kind in distortions:
                write_image(root / f"id_{i}" / "distortion" / f"{stem}_{kind}.jpg", seed=100 * i + j + 7, size=size)
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "train")


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """A small synthetic FACECOM-layout set (train/ + val/, disjoint identities, distortions)."""
    from facelib.data.synthetic import make_dataset

    root = tmp_path_factory.mktemp("synth")
    make_dataset(root, identities=16, photos=4, image_size=32, seed=0)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(synth_root: Path, tmp_path_factory) -> Path:
    """A resnet18 checkpoint trained for a few steps on 32 px synthetic faces."""
    from facelib.config import TrainConfig
    from facelib.jobs import train

    out = tmp_path_factory.mktemp("ckpt") / "tb_model.pth"
    cfg = TrainConfig(data=str(synth_root / "train"), epochs=1, image_size=32, backbone="resnet18",
                      pretrained=False, embedding_dim=32, p=4, k=4, steps_per_epoch=2, workers=0, out=str(out),
                      progress=False)
    train(cfg, log=lambda s: None)
    return out


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real FACECOM data not present at {REAL_DATA}")
    return REAL_DATA
