"""facelib.models.checkpoint: atomic writes, weights-only reads, the original scripts' state dicts."""

from __future__ import annotations

import pytest
import torch

from facelib.errors import CheckpointError
from facelib.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from facelib.models.network import build_model


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


def test_framing_round_trips_and_old_checkpoints_see_the_whole_frame(tmp_path):
    model, spec = build_model("resnet18", embedding_dim=8, pretrained=False, image_size=32, face_crop=0.6,
                              restore="median")
    save_checkpoint(tmp_path / "m.pth", model, spec)
    _, spec2, _ = load_checkpoint(tmp_path / "m.pth")
    assert (spec2.face_crop, spec2.restore, spec2.flip_test) == (0.6, "median", False)
    model, spec = build_model("resnet18", embedding_dim=8, pretrained=False, image_size=32, flip_test=True)
    save_checkpoint(tmp_path / "m.pth", model, spec)
    flip, spec2, _ = load_checkpoint(tmp_path / "m.pth")
    assert spec2.flip_test and not flip.training
    ckpt = read_checkpoint(tmp_path / "m.pth")  # a checkpoint written before the framing and the flip test existed
    for key in ("face_crop", "restore", "flip_test"):
        del ckpt["model_spec"][key]
    torch.save(ckpt, tmp_path / "old.pth")
    _, spec3, _ = load_checkpoint(tmp_path / "old.pth")
    assert (spec3.face_crop, spec3.restore, spec3.flip_test) == (1.0, "none", False)
