from __future__ import annotations

import pytest
import torch

from facelib.errors import CheckpointError, ModelError
from facelib.training.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from facelib.training.model import EmbeddingNet, build_model, build_transform, describe_weights


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return build_model("resnet18", embedding_dim=16, pretrained=False, image_size=32)


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
    from facelib.training.model import pretrained_available

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


def test_transform_shapes(small):
    from PIL import Image

    _, spec = small
    im = Image.new("RGB", (50, 70), (128, 64, 32))
    for train in (False, True):
        x = build_transform(spec, train=train)(im)
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32


@pytest.mark.parametrize("augment", ["none", "mild", "strong"])
def test_augment_levels(small, augment):
    """Evaluation is deterministic whatever the level; training varies except with "none", which is
    exactly the evaluation resize."""
    import numpy as np
    from PIL import Image

    _, spec = small
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8))
    ev = build_transform(spec, train=False, augment=augment)
    tr = build_transform(spec, train=True, augment=augment)
    assert torch.equal(ev(im), ev(im))
    torch.manual_seed(0)
    draws = [tr(im) for _ in range(4)]
    assert all(d.shape == (3, 32, 32) and d.dtype == torch.float32 for d in draws)
    if augment == "none":
        assert all(torch.equal(d, ev(im)) for d in draws)
    else:
        assert not all(torch.equal(d, draws[0]) for d in draws[1:])


def test_augment_unknown_level_is_refused(small):
    _, spec = small
    with pytest.raises(ValueError, match="augment must be one of"):
        build_transform(spec, train=True, augment="heavy")


def test_checkpoint_round_trip_is_atomic_and_weights_only(small, tmp_path):
    model, spec = small
    path = tmp_path / "m.pth"
    save_checkpoint(path, model, spec, identities=["a", "b"], config={"lr": 0.1})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]  # no temp file left behind
    raw = torch.load(path, weights_only=True)
    assert raw["identities"] == ["a", "b"] and raw["model_spec"]["backbone"] == "resnet18"
    m2, spec2, ckpt = load_checkpoint(path)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    assert torch.allclose(m2(x), model(x), atol=1e-5)
    assert spec2.mean == spec.mean and spec2.image_size == 32


def test_failed_write_keeps_old_checkpoint(small, tmp_path, monkeypatch):
    model, spec = small
    path = tmp_path / "m.pth"
    save_checkpoint(path, model, spec, epoch=1)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(path, model, spec, epoch=2)
    assert read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "junk.pth"
    p.write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(p)
    torch.save([1, 2, 3], p)
    with pytest.raises(CheckpointError, match="not a facelib checkpoint"):
        load_checkpoint(p)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pth")


def test_checkpoint_of_another_architecture(small, tmp_path):
    model, spec = small
    path = tmp_path / "m.pth"
    save_checkpoint(path, model, spec)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_spec"]["backbone"] = "resnet34"  # claims another backbone than its tensors
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="another architecture"):
        load_checkpoint(path)


def test_original_scripts_plain_state_dict_loads(tmp_path):
    import timm

    class Original(torch.nn.Module):  # the seed scripts' model: resnet50 + Linear(2048, 512)
        def __init__(self):
            super().__init__()
            self.base = timm.create_model("resnet50", pretrained=False, num_classes=0)
            self.fc = torch.nn.Linear(2048, 512)

    orig = Original().eval()
    p = tmp_path / "tb_model.pth"
    torch.save(orig.state_dict(), p)
    m, spec, ckpt = load_checkpoint(p)
    assert spec.backbone == "resnet50" and spec.embedding_dim == 512 and ckpt["legacy"]
    x = torch.randn(1, 3, 64, 64)
    ref = torch.nn.functional.normalize(orig.fc(orig.base(x)), dim=1)
    assert torch.allclose(m(x), ref, atol=1e-5)


def test_transform_frames_the_face_before_the_resize(small):
    from dataclasses import replace

    import numpy as np
    from PIL import Image

    _, spec = small
    arr = np.zeros((100, 100, 3), np.uint8)
    arr[25:75, 25:75] = 255  # the "face": the central half of the side
    img = Image.fromarray(arr)
    whole = build_transform(spec, train=False)(img)
    framed_spec = replace(spec, face_crop=0.5)
    framed = build_transform(framed_spec, train=False)(img)
    assert whole.shape == framed.shape == (3, 32, 32)
    assert torch.equal(framed.amin(dim=(1, 2)), framed.amax(dim=(1, 2)))  # nothing but the face is left
    assert (whole.amin(dim=(1, 2)) < whole.amax(dim=(1, 2))).all()
    names = [type(t).__name__ for t in build_transform(replace(framed_spec, restore="median"), train=True).transforms]
    assert names[:3] == ["Restore", "FaceCrop", "RandomResizedCrop"]


def test_framing_round_trips_and_old_checkpoints_see_the_whole_frame(tmp_path):
    model, spec = build_model("resnet18", embedding_dim=8, pretrained=False, image_size=32, face_crop=0.6,
                              restore="median")
    save_checkpoint(tmp_path / "m.pth", model, spec)
    _, spec2, _ = load_checkpoint(tmp_path / "m.pth")
    assert (spec2.face_crop, spec2.restore, spec2.flip_test) == (0.6, "median", False)
    model, spec = build_model("resnet18", embedding_dim=8, pretrained=False, image_size=32, flip_test=True)
    save_checkpoint(tmp_path / "m.pth", model, spec)
    flip, spec2, _ = load_checkpoint(tmp_path / "m.pth")
    assert spec2.flip_test and flip.flip_test and not flip.training
    ckpt = read_checkpoint(tmp_path / "m.pth")  # a checkpoint written before the framing and the flip test existed
    for key in ("face_crop", "restore", "flip_test"):
        del ckpt["model_spec"][key]
    torch.save(ckpt, tmp_path / "old.pth")
    old, spec3, _ = load_checkpoint(tmp_path / "old.pth")
    assert (spec3.face_crop, spec3.restore, spec3.flip_test, old.flip_test) == (1.0, "none", False, False)
