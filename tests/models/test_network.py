"""facelib.models.network: the embedder and where its weights come from."""

from __future__ import annotations

import pytest
import torch

from facelib.errors import ModelError
from facelib.models.network import EmbeddingNet, build_model, describe_weights


def test_embeddings_are_unit_norm(small):
    model, spec = small
    model.eval()
    e = model(torch.randn(3, 3, 32, 32))
    assert e.shape == (3, 16)
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert spec.weights_source == "random" and "random initialisation" in describe_weights(spec)


def test_unnormalised_output_is_the_neck_before_the_norm(small):
    model, _ = small
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    z = model(x, normalize=False)
    assert z.shape == (3, 16) and not torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-3)
    assert torch.allclose(torch.nn.functional.normalize(z, dim=1), model(x), atol=1e-6)


def test_flip_test_averages_the_photo_and_its_mirror(small):
    model, _ = small
    flip = EmbeddingNet("resnet18", 16, flip_test=True)
    flip.load_state_dict(model.state_dict())
    model.eval(), flip.eval()
    x = torch.randn(3, 3, 32, 32)
    mirror = x.flip(3)
    e = flip(x)
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(e, torch.nn.functional.normalize(model(x) + model(mirror), dim=1), atol=1e-5)
    assert torch.allclose(e, flip(mirror), atol=1e-5)  # a photo and its mirror image: one embedding
    assert not torch.allclose(model(x), model(mirror), atol=1e-3)  # one view is not mirror-invariant
    assert torch.allclose(flip(x, normalize=False), (model(x, normalize=False) + model(mirror, normalize=False)) / 2,
                          atol=1e-5)
    model.train(), flip.train()  # training sees one view
    assert torch.allclose(flip(x), model(x), atol=1e-6)


def test_resnet50_head_is_2048_to_512():
    net = EmbeddingNet("resnet50", 512)
    assert net.head.in_features == 2048 and net.head.out_features == 512


def test_pretrained_offline_fails_fast_with_way_out(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # empty cache
    with pytest.raises(ModelError, match=r"weights=FILE.*pretrained=False"):
        build_model("resnet18", pretrained=True)


def test_pretrained_available_answers_no_offline_without_cache(monkeypatch, tmp_path):
    from facelib.models.network import pretrained_available

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # empty cache
    assert pretrained_available("resnet18") is False
    assert pretrained_available("not_a_timm_model") is False


def test_local_weights_file(small, tmp_path):
    model, _ = small
    path = tmp_path / "resnet18.pth"
    torch.save(model.backbone.state_dict(), path)
    m2, spec = build_model("resnet18", embedding_dim=16, weights=path, image_size=32)
    assert spec.weights_source == f"file:{path}"
    assert torch.equal(m2.backbone.conv1.weight, model.backbone.conv1.weight)
    with pytest.raises(ModelError, match="does not match backbone"):
        build_model("resnet34", weights=path)
    with pytest.raises(ModelError, match="not found"):
        build_model("resnet18", weights=tmp_path / "missing.pth")


def test_unknown_backbone():
    with pytest.raises(ModelError, match="unknown backbone"):
        build_model("not_a_net_at_all")
