"""facelib.notebook.setup: profile, data and run folders; pretrained fallback; device summary."""

from __future__ import annotations

import pytest

from facelib import notebook as nb
from facelib.config import TrainConfig
from facelib.errors import DataError


def test_repo_root_holds_the_package():
    root = nb.repo_root()
    assert (root / "pyproject.toml").is_file() and (root / "facelib" / "notebook" / "__init__.py").is_file()


def test_setup_with_a_data_folder(synth_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_DATA", str(synth_root))
    monkeypatch.setenv("FACELIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("FACELIB_MAX_STEPS", "3")
    monkeypatch.setenv("FACELIB_EPOCHS", "1")
    s = nb.setup(profile="smoke")
    assert not s.synthetic and s.train_dir == synth_root.resolve() / "train"
    assert s.val_dir == synth_root.resolve() / "val"
    assert s.run_dir == (tmp_path / "runs" / f"smoke_{synth_root.name}").resolve() and s.run_dir.is_dir()
    cfg = s.config
    assert cfg.data == str(s.train_dir) and cfg.val_data == str(s.val_dir)
    assert cfg.out == str(s.run_dir / "tb_model.pth") and cfg.steps_per_epoch == 3 and cfg.epochs == 1
    e = s.eval_config()
    assert e.data == str(s.val_dir) and e.checkpoint == str(s.checkpoint) and e.out == str(s.run_dir)
    assert "smoke" in str(s)


def test_setup_argument_beats_the_environment(synth_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_DATA", str(tmp_path / "nowhere"))
    s = nb.setup(data=synth_root, profile="smoke", runs=tmp_path)
    assert s.data_root == synth_root.resolve()


def test_setup_seeds_the_random_generators(synth_root, tmp_path):
    """A notebook run twice draws the same random weights and augmentations, so its prose can quote figures."""
    import random

    import numpy as np
    import torch

    draws = []
    for _ in range(2):
        torch.manual_seed(123 + len(draws))  # whatever state the kernel was in before
        s = nb.setup(data=synth_root, profile="smoke", runs=tmp_path)
        draws.append((torch.rand(3), np.random.rand(), random.random()))
    assert torch.equal(draws[0][0], draws[1][0]) and draws[0][1:] == draws[1][1:]
    torch.manual_seed(s.config.seed)
    assert torch.equal(torch.rand(3), draws[0][0])
    assert f"seeded with {s.config.seed}" in str(s)


def test_setup_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_RUNS", str(tmp_path / "runs"))
    with pytest.raises(DataError, match="not found"):
        nb.setup(data=tmp_path / "missing", profile="smoke")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="train/"):
        nb.setup(data=tmp_path / "flat", profile="smoke")
    (tmp_path / "flat" / "train").mkdir()
    monkeypatch.setenv("FACELIB_MAX_STEPS", "lots")
    with pytest.raises(DataError, match="FACELIB_MAX_STEPS"):
        nb.setup(data=tmp_path / "flat", profile="smoke", make_synthetic=False)


def test_pretrained_fallback_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = TrainConfig(backbone="resnet18", pretrained=True)
    notes: list[str] = []
    if nb.pretrained_available("resnet18"):
        pytest.skip("resnet18 weights are cached on this machine")
    nb.check_pretrained(cfg, notes.append)
    assert cfg.pretrained is False and "random weights" in notes[0]
    cfg = TrainConfig(backbone="resnet18", pretrained=False)
    nb.check_pretrained(cfg, notes.append)
    assert len(notes) == 1  # nothing to say when no pretrained weights were asked for


@pytest.mark.parametrize("native", [True, False])
def test_device_summary(monkeypatch, native):
    from facelib import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    expected = "precision bf16 autocast" if native else "precision fp32"
    assert expected in nb.device_summary(TrainConfig(device="cpu"))
    assert "precision fp32" in nb.device_summary(TrainConfig(device="cpu", amp=False))
