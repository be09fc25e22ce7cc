"""facelib.evaluation.extract: batched embeddings, as the spec prescribes (the flip test where it says so)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from facelib.data.folders import load_image, scan_folder
from facelib.evaluation.extract import embed_folder
from facelib.models.network import build_model
from facelib.models.transforms import build_transform


def test_embed_folder_runs_the_flip_test_the_spec_records(synth_root):
    """With ``spec.flip_test`` every row is the normalised sum of the photo's and its mirror image's unit
    embeddings, computed by hand here; without it, the one view. The model's training mode comes back."""
    torch.manual_seed(0)
    model, spec = build_model("resnet18", embedding_dim=16, image_size=32, face_crop=0.55, flip_test=True)
    folder = scan_folder(synth_root / "val").select(lambda s: s.is_clean)
    assert len(folder.paths) >= 8
    model.train()
    kw = dict(batch_size=5, workers=0, device="cpu", amp=False)  # several batches, the last one short
    flip = embed_folder(model, spec, folder, **kw)
    single = embed_folder(model, replace(spec, flip_test=False), folder, **kw)
    assert model.training

    model.eval()
    x = torch.stack([build_transform(spec)(load_image(p)) for p in folder.paths])  # [N, 3, 32, 32]
    with torch.no_grad():
        one, mirror = model(x), model(x.flip(3))
    by_hand = F.normalize(one + mirror, dim=1).numpy()
    assert flip.embeddings.shape == (len(folder.paths), 16)
    np.testing.assert_allclose(flip.embeddings, by_hand, atol=1e-5)
    np.testing.assert_allclose(single.embeddings, one.numpy(), atol=1e-5)
    assert np.abs(flip.embeddings - single.embeddings).max() > 1e-2  # the two settings differ
    assert [str(p) for p in flip.paths] == [str(p) for p in folder.paths]
