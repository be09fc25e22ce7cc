from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facelib import train as train_mod
from facelib.config import TrainConfig
from facelib.errors import DataError
from facelib.losses import TripletLoss
from facelib.miners import batch_all
from facelib.train import Trainer, last_checkpoint_path, train
from tests.conftest import make_folder, write_image

QUIET = dict(log=lambda s: None)


def tiny(root: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(root), epochs=1, image_size=32, backbone="resnet18", pretrained=False, embedding_dim=16,
                p=4, k=4, steps_per_epoch=2, workers=0, out=str(out), progress=False, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def test_loss_goes_down_on_synthetic_faces(synth_root: Path, tmp_path: Path):
    torch.manual_seed(0)
    t = Trainer(tiny(synth_root / "train", tmp_path / "m.pth", lr=3e-3, p=8, k=4, epochs=1, steps_per_epoch=25,
                     warmup_epochs=0, miner="batch_all"), **QUIET)
    # a fixed evaluation batch: 8 identities x 4 images, no augmentation
    from facelib.model import build_transform

    tf = build_transform(t.spec, train=False)
    idx = np.concatenate([np.flatnonzero(t.labels == c)[:4] for c in range(8)])
    x = torch.stack([tf(__import__("facelib.data", fromlist=["load_image"]).load_image(t.folder.paths[i]))
                     for i in idx])
    y = torch.as_tensor(t.labels[idx])
    crit = TripletLoss(margin=0.2, reduction="mean")

    def fixed_loss() -> float:
        t.model.eval()
        with torch.no_grad():
            e = t.model(x)
            return float(crit(e, *batch_all(e, y))[0])

    before = fixed_loss()
    t.run()
    after = fixed_loss()
    assert after < 0.8 * before, (before, after)
    assert len(t.history) == 1 and t.history[0]["steps"] == 25


def test_history_and_checkpoints_written(tiny_checkpoint: Path):
    hist = json.loads((tiny_checkpoint.parent / "history.json").read_text())
    assert len(hist) == 1
    for key in ("loss", "active_fraction", "pos_dist", "neg_dist", "spread", "lr", "images_per_sec"):
        assert np.isfinite(hist[0][key]), key
    assert 0 <= hist[0]["active_fraction"] <= 1
    last = torch.load(last_checkpoint_path(tiny_checkpoint), weights_only=True)
    assert {"optimizer", "scheduler", "torch_rng", "epoch"} <= set(last)
    best = torch.load(tiny_checkpoint, weights_only=True)
    assert best["epoch"] == 1 and len(best["identities"]) == 12 and "optimizer" not in best


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["model"]


def test_same_seed_same_run_and_resume_matches(synth_root: Path, tmp_path: Path):
    a = train(tiny(synth_root / "train", tmp_path / "a" / "m.pth", epochs=2), **QUIET)
    b = train(tiny(synth_root / "train", tmp_path / "b" / "m.pth", epochs=2), **QUIET)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    # interrupted after epoch 1, then resumed
    train(tiny(synth_root / "train", tmp_path / "c" / "m.pth", epochs=1), **QUIET)
    c = train(tiny(synth_root / "train", tmp_path / "c" / "m.pth", epochs=2, resume=True), **QUIET)
    assert [h["epoch"] for h in c.history] == [1, 2]
    assert np.allclose([h["loss"] for h in c.history], [h["loss"] for h in a.history], rtol=1e-5)
    wa, wc = _weights(a.checkpoint), _weights(c.checkpoint)
    assert all(torch.allclose(wa[k].float(), wc[k].float(), atol=1e-6) for k in wa)


def test_different_seed_differs(synth_root: Path, tmp_path: Path):
    a = train(tiny(synth_root / "train", tmp_path / "a.pth", seed=1), **QUIET)
    b = train(tiny(synth_root / "train", tmp_path / "b.pth", seed=2), **QUIET)
    assert a.history[0]["loss"] != b.history[0]["loss"]


def test_original_recipe_three_passes(synth_root: Path, tmp_path: Path):
    cfg = TrainConfig.original(**{k: v for k, v in vars(tiny(synth_root / "train", tmp_path / "o.pth")).items()
                                  if k not in ("margin", "sampler", "miner")}).replace(batch_size=4)
    log: list[str] = []
    r = train(cfg, log=log.append)
    assert any("3 forward passes" in line for line in log)
    assert r.history[0]["images_per_sec"] > 0 and r.history[0]["steps"] == 2


@pytest.mark.parametrize("miner", ["random", "batch_all", "semi_hard"])
def test_every_miner_trains(synth_root: Path, tmp_path: Path, miner: str):
    r = train(tiny(synth_root / "train", tmp_path / "m.pth", miner=miner, steps_per_epoch=1), **QUIET)
    assert np.isfinite(r.history[0]["loss"])


def test_validation_keeps_best_and_stops_early(synth_root: Path, tmp_path: Path):
    r = train(tiny(synth_root / "train", tmp_path / "m.pth", val_data=str(synth_root / "val"), epochs=3,
                   patience=1, steps_per_epoch=1), **QUIET)
    assert all("val_top1" in h and h["val_protocol"] == "cross-photo" for h in r.history)
    best = torch.load(r.checkpoint, weights_only=True)
    assert best["epoch"] == r.best_epoch
    assert r.history[r.best_epoch - 1]["val_top1"] == max(h["val_top1"] for h in r.history)
    if r.stopped_early:
        assert len(r.history) < 3


def test_collapse_warning(synth_root: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(train_mod, "COLLAPSE_SPREAD", 10.0)  # any spread counts as collapsed
    log: list[str] = []
    r = train(tiny(synth_root / "train", tmp_path / "m.pth", steps_per_epoch=1), log=log.append)
    assert r.warnings and sum("collapsing" in line for line in log) == 1


def test_training_needs_positives(tmp_path: Path):
    root = tmp_path / "solo"
    for i in range(3):
        write_image(root / f"p{i}" / "a.jpg", seed=i)
    with pytest.raises(DataError, match="single image"):
        Trainer(tiny(root, tmp_path / "m.pth"), **QUIET)
    one = make_folder(tmp_path / "one", identities=1, photos=3)
    with pytest.raises(DataError, match="at least 2 identities"):
        Trainer(tiny(one, tmp_path / "m.pth"), **QUIET)


def test_singletons_are_reported_and_training_goes_on(tmp_path: Path):
    root = make_folder(tmp_path / "d", identities=4, photos=3)
    write_image(root / "solo" / "solo_0001.jpg", seed=99)
    log: list[str] = []
    r = train(tiny(root, tmp_path / "m.pth", steps_per_epoch=1), log=log.append)
    text = "\n".join(log)
    assert "single image" in text and "solo" in text
    assert np.isfinite(r.history[0]["loss"])
