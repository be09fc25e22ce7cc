"""facelib.models.network: the embedder, the evaluation-time flip test and where the weights come from."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from facelib.errors import ModelError
from facelib.models.network import EmbeddingNet, FlipTest, build_model, describe_weights, for_inference


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


@torch.no_grad()
def test_flip_test_is_exactly_the_normalised_sum_of_the_two_views(small):
    """The wrapper computes what EmbeddingNet's eval branch did, bit for bit: normalize(normalize(z) +
    normalize(z_mirror)) with z the neck's output; the net alone embeds one view in either mode."""
    model, _ = small
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    mirror = x.flip(3)
    e = FlipTest(model)(x)
    z, z_mirror = model(x, normalize=False), model(mirror, normalize=False)
    assert torch.equal(e, F.normalize(F.normalize(z, dim=1) + F.normalize(z_mirror, dim=1), dim=1))
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(e, FlipTest(model)(mirror), atol=1e-5)  # a photo and its mirror image: one embedding
    assert not torch.allclose(model(x), model(mirror), atol=1e-3)  # one view is not mirror-invariant
    assert torch.equal(model(x), F.normalize(z, dim=1))  # eval mode no longer switches the flip test on
    assert not hasattr(model, "flip_test")
    assert list(FlipTest(model).state_dict()) == [f"net.{k}" for k in model.state_dict()]  # no weights of its own


def test_for_inference_wraps_only_where_the_spec_says(small):
    model, spec = small
    assert for_inference(model, replace(spec, flip_test=False)) is model
    wrapped = for_inference(model, replace(spec, flip_test=True))
    assert isinstance(wrapped, FlipTest) and wrapped.net is model


def test_state_dict_keys_are_those_checkpoints_hold():
    """Checkpoints written before the flip test moved out of the net still load: its keys did not change."""
    net = EmbeddingNet("resnet18", 8, neck="bn")
    assert [k for k in net.state_dict() if not k.startswith("backbone.")] == [
        "head.weight", "head.bias", "neck.weight", "neck.bias", "neck.running_mean", "neck.running_var",
        "neck.num_batches_tracked"]


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
