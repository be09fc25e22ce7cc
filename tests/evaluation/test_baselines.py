from __future__ import annotations

import numpy as np
from PIL import Image

from facelib.evaluation.baselines import pixel_embeddings


def test_pixel_embeddings(tmp_path):
    rng = np.random.default_rng(0)
    a = Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8), "RGB")
    a.save(tmp_path / "a.png")
    a.save(tmp_path / "a_copy.png")
    a.convert("L").save(tmp_path / "a_gray.png")
    Image.fromarray(rng.integers(0, 256, (20, 20, 4), dtype=np.uint8), "RGBA").save(tmp_path / "b.png")
    Image.new("RGB", (30, 30), (120, 50, 10)).save(tmp_path / "const.png")
    paths = [tmp_path / n for n in ("a.png", "a_copy.png", "a_gray.png", "b.png", "const.png")]

    x = pixel_embeddings(paths, size=16)
    assert x.shape == (5, 256) and x.dtype == np.float32
    assert np.isfinite(x).all()
    norms = np.linalg.norm(x, axis=1)
    assert np.allclose(norms[:4], 1.0, atol=1e-5)
    assert np.allclose(x[4], 0.0)  # constant image: zero row, no NaN
    assert np.allclose(x.mean(axis=1), 0.0, atol=1e-6)
    assert abs(float(x[0] @ x[1]) - 1.0) < 1e-5
    assert float(x[0] @ x[2]) > 0.99  # grey version of the same picture
    assert abs(float(x[0] @ x[3])) < 0.5

    xc = pixel_embeddings(paths, size=8, grayscale=False)
    assert xc.shape == (5, 8 * 8 * 3) and np.isfinite(xc).all()
    assert pixel_embeddings([], size=8).shape == (0, 64)
