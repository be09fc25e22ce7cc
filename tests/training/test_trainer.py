from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facelib.config import TrainConfig
from facelib.errors import DataError
from facelib.jobs import train
from facelib.training import trainer as train_mod
from facelib.training.losses import TripletLoss
from facelib.training.miners import batch_all
from facelib.training.trainer import Trainer, last_checkpoint_path
from tests.conftest import make_folder, write_image

QUIET = dict(log=lambda s: None)


def tiny(root: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(root), epochs=1, image_size=32, backbone="resnet18", pretrained=False, embedding_dim=16,
                p=4, k=4, steps_per_epoch=2, workers=0, out=str(out), progress=False, lr=1e-3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("neck", ["bn", "none"])
def test_loss_goes_down_on_synthetic_faces(synth_root: Path, tmp_path: Path, neck: str):
    torch.manual_seed(0)
    t = Trainer(tiny(synth_root / "train", tmp_path / "m.pth", lr=3e-3, p=8, k=4, epochs=1, steps_per_epoch=60,
                     warmup=0.0, neck=neck), **QUIET)
    assert {g["weight_decay"] for g in t.optimizer.param_groups} == {1e-4}  # without a teacher: WEIGHT_DECAY
    # a fixed evaluation batch: 8 identities x 4 images, no augmentation
    from facelib.models.transforms import build_transform

    tf = build_transform(t.spec, train=False)
    idx = np.concatenate([np.flatnonzero(t.labels == c)[:4] for c in range(8)])
    x = torch.stack([tf(__import__("facelib.data.folders", fromlist=["load_image"]).load_image(t.folder.paths[i]))
                     for i in idx])
    y = torch.as_tensor(t.labels[idx])
    crit = TripletLoss(margin=0.2, reduction="mean")

    def fixed_loss() -> float:
        t.model.eval()
        with torch.no_grad():
            e = t.model(x)
            return float(crit(e, *batch_all(e, y))[0])

    before = fixed_loss()
    t.fit()
    after = fixed_loss()
    assert after < 0.8 * before, (before, after)
    assert len(t.history) == 1 and t.history[0]["steps"] == 60


def test_history_and_checkpoints_written(tiny_checkpoint: Path):
    hist = json.loads((tiny_checkpoint.parent / "history.json").read_text())
    assert len(hist) == 1
    for key in ("loss", "active_fraction", "pos_dist", "neg_dist", "spread", "lr", "images_per_sec"):
        assert np.isfinite(hist[0][key]), key
    assert 0 <= hist[0]["active_fraction"] <= 1
    last = torch.load(last_checkpoint_path(tiny_checkpoint), weights_only=True)
    assert {"optimizer", "criterion", "torch_rng", "epoch", "steps_done", "elapsed"} <= set(last)
    best = torch.load(tiny_checkpoint, weights_only=True)
    assert best["epoch"] == 1 and len(best["identities"]) == 12 and "optimizer" not in best


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["model"]


def test_same_seed_same_run_and_resume_matches(synth_root: Path, tmp_path: Path):
    a = train(tiny(synth_root / "train", tmp_path / "a" / "m.pth", epochs=2), **QUIET)
    b = train(tiny(synth_root / "train", tmp_path / "b" / "m.pth", epochs=2), **QUIET)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    # interrupted after epoch 1 (its checkpoints written), then resumed
    def stop(entry):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(tiny(synth_root / "train", tmp_path / "c" / "m.pth", epochs=2), on_epoch_end=stop, **QUIET)
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
    lines: list[str] = []
    r = train(tiny(synth_root / "train", tmp_path / "m.pth", val_data=str(synth_root / "val"), epochs=3,
                   patience=1, steps_per_epoch=1), **{**QUIET, "log": lines.append})
    assert all("val_top1" in h and h["val_protocol"] == "cross-photo" and h["val_gallery"] == "mean"
               for h in r.history)
    assert sum("val top-1" in line and "(cross-photo, mean gallery)" in line for line in lines) == len(r.history)
    best = torch.load(r.checkpoint, weights_only=True)
    assert best["epoch"] == r.best_epoch
    assert r.history[r.best_epoch - 1]["val_top1"] == max(h["val_top1"] for h in r.history)
    if r.stopped_early:  # patience 1: it stopped right after the first epoch that did not improve
        assert r.best_epoch == len(r.history) - 1
    else:  # every epoch improved: all three ran and the last is kept
        assert len(r.history) == 3 and r.best_epoch == 3


class Scripted:
    """A callback that returns the next of ``scores`` as ``val_top1`` and records what it was called with."""

    def __init__(self, scores: list[float]):
        self.scores, self.seen = list(scores), []

    def describe(self) -> str:
        return "scripted validation"

    def __call__(self, trainer: Trainer, entry: dict) -> dict:
        self.seen.append((trainer.steps_done, entry["epoch"], "loss" in entry))
        return {"val_top1": self.scores.pop(0), "val_protocol": "scripted"}


def test_a_callback_plugs_in_and_its_score_chooses_the_checkpoint(synth_root: Path, tmp_path: Path):
    cb, lines = Scripted([0.3, 0.6, 0.4, 0.5, 0.9]), []
    t = Trainer(tiny(synth_root / "train", tmp_path / "m.pth", epochs=5, patience=2, steps_per_epoch=1),
                log=lines.append, callbacks=[cb])
    r = t.fit()
    assert "scripted validation" in lines
    assert cb.seen == [(1, 1, True), (2, 2, True), (3, 3, True), (4, 4, True)]  # stopped: 2 epochs without gain
    assert r.stopped_early and r.best_epoch == 2 and [h["val_top1"] for h in r.history] == [0.3, 0.6, 0.4, 0.5]
    assert torch.load(r.checkpoint, weights_only=True)["epoch"] == 2
    assert torch.load(r.last_checkpoint, weights_only=True)["epoch"] == 4


@pytest.mark.parametrize("gallery", ["mean", "all"])
def test_validation_callback_scores_with_the_gallery_it_names(synth_root: Path, tmp_path: Path, gallery: str):
    from facelib.evaluation.extract import embed_folder
    from facelib.evaluation.protocols import cross_photo_protocol
    from facelib.evaluation.validation import Validation

    v = Validation(str(synth_root / "val"), workers=0, gallery=gallery)
    t = Trainer(tiny(synth_root / "train", tmp_path / "m.pth"), log=lambda s: None, callbacks=[v])
    r = t.fit()
    assert r.history[0]["val_gallery"] == gallery and r.history[0]["val_protocol"] == "cross-photo"
    expected = cross_photo_protocol(embed_folder(t.model, t.spec, v.folder, workers=0, device=t.device), gallery)
    assert r.history[0]["val_top1"] == pytest.approx(float(expected.top1))


def test_val_data_without_a_callback_is_said_not_scored(synth_root: Path, tmp_path: Path):
    lines: list[str] = []
    r = Trainer(tiny(synth_root / "train", tmp_path / "m.pth", val_data=str(synth_root / "val")),
                log=lines.append).fit()
    assert sum("is not scored" in line for line in lines) == 1
    assert "val_top1" not in r.history[0] and r.best_epoch is None


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
    single_photos = make_folder(tmp_path / "copies", identities=3, photos=1)  # a photo + its distortion each
    with pytest.raises(DataError, match="at least 2 identities with >= 2 images"):
        Trainer(tiny(single_photos, tmp_path / "m.pth"), **QUIET)


def test_singletons_are_reported_and_training_goes_on(tmp_path: Path):
    root = make_folder(tmp_path / "d", identities=4, photos=3)
    write_image(root / "solo" / "solo_0001.jpg", seed=99)
    log: list[str] = []
    r = train(tiny(root, tmp_path / "m.pth", steps_per_epoch=1), log=log.append)
    text = "\n".join(log)
    assert "single image" in text and "solo" in text
    assert np.isfinite(r.history[0]["loss"])


def test_warmup_cosine_known_values():
    assert train_mod.warmup_cosine(0.0, 0.1) == pytest.approx(0.1)
    assert train_mod.warmup_cosine(0.05, 0.1) == pytest.approx(0.55)
    assert train_mod.warmup_cosine(0.1, 0.1) == pytest.approx(1.0)
    assert train_mod.warmup_cosine(0.55, 0.1) == pytest.approx(0.01 + 0.99 * 0.5)
    assert train_mod.warmup_cosine(1.0, 0.1) == pytest.approx(0.01)
    assert train_mod.warmup_cosine(0.0, 0.0) == pytest.approx(1.0)
    after = [train_mod.warmup_cosine(p, 0.2) for p in np.linspace(0.2, 1.0, 20)]
    assert all(a >= b for a, b in zip(after, after[1:]))


def test_time_budget_stops_and_fits_the_schedule(synth_root: Path, tmp_path: Path):
    t = Trainer(tiny(synth_root / "train", tmp_path / "m.pth", epochs=50, steps_per_epoch=500, max_seconds=3.0,
                     warmup=0.2), **QUIET)
    r = t.fit()
    steps = sum(h["steps"] for h in r.history)
    assert 1 <= steps < 50 * 500 and len(r.history) == 1
    assert t.elapsed >= 3.0 and t.progress() == 1.0
    assert t.learning_rate() == pytest.approx(t.cfg.base_lr * 0.01)  # the cosine ended with the budget
    assert r.history[0]["lr"] == pytest.approx(t.cfg.base_lr * 0.01)


def test_original_recipe_batches_carry_their_triplets(synth_root: Path, tmp_path: Path):
    cfg = TrainConfig.original(**{k: v for k, v in vars(tiny(synth_root / "train", tmp_path / "o.pth")).items()
                                  if k not in ("margin", "sampler", "miner", "neck", "loss")}).replace(batch_size=5)
    t = Trainer(cfg, **QUIET)
    batch = next(iter(t.batches(0)))
    a, p, n = batch.triplets
    assert batch.images.shape[0] == 15 and batch.labels.shape == (15,)
    assert torch.equal(a, torch.arange(5)) and torch.equal(p, a + 5) and torch.equal(n, a + 10)
    assert (batch.labels[a] == batch.labels[p]).all() and (batch.labels[a] != batch.labels[n]).all()
    stats = t.step(batch)
    assert torch.isfinite(stats["loss"]) and stats["loss"].dim() == 0


@pytest.mark.parametrize("normalize", [True, False])
def test_triplet_loss_sees_the_embeddings_it_is_told(synth_root: Path, tmp_path: Path, normalize: bool):
    # The first step's BN neck (weight 1, bias 0, batch statistics) standardises every dimension, so
    # un-normalised embeddings / sqrt(dim) have mean squared norm exactly 1 over the batch.
    t = Trainer(tiny(synth_root / "train", tmp_path / "m.pth", normalize_embeddings=normalize), **QUIET)
    seen = []
    loss = t.criterion
    t.criterion = lambda emb, *idx: (seen.append(emb.detach()), loss(emb, *idx))[1]
    stats = t.step(next(iter(t.batches(0))))
    norms = seen[0].norm(dim=1)
    assert abs(float((norms ** 2).mean()) - 1.0) < 1e-3
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4) == normalize
    assert 0.0 < float(stats["spread"]) <= 1.0 + 1e-6  # measured on the sphere either way


def test_step_stats_stay_on_the_device(synth_root: Path, tmp_path: Path):
    t = Trainer(tiny(synth_root / "train", tmp_path / "m.pth"), **QUIET)
    stats = t.step(next(iter(t.batches(0))))
    assert set(stats) >= {"loss", "active_fraction", "pos_dist", "neg_dist", "spread"}
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad for v in stats.values())
    assert t.steps_done == 1


@pytest.mark.parametrize("neck", ["bn", "none"])
def test_neck_is_saved_and_reloaded(synth_root: Path, tmp_path: Path, neck: str):
    from facelib.models.checkpoint import load_checkpoint

    r = train(tiny(synth_root / "train", tmp_path / "m.pth", neck=neck), **QUIET)
    model, spec, _ = load_checkpoint(r.checkpoint)
    assert spec.neck == neck
    assert isinstance(model.neck, torch.nn.BatchNorm1d) == (neck == "bn")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        e = model(x)
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)


def test_bn_neck_spreads_a_random_network(synth_root: Path):
    """The reason for the neck: a random network maps faces into a narrow cone; BatchNorm re-centres it."""
    from facelib.data.folders import load_image
    from facelib.models.network import build_model
    from facelib.models.transforms import build_transform
    from facelib.training.losses import embedding_spread

    paths = sorted((synth_root / "train").glob("*/*.jpg"))[:32]
    spread = {}
    for neck in ("none", "bn"):
        torch.manual_seed(0)
        model, spec = build_model("resnet18", 16, image_size=32, neck=neck)
        x = torch.stack([build_transform(spec)(load_image(p)) for p in paths])
        with torch.no_grad():
            spread[neck] = float(embedding_spread(model.train()(x)))
    assert spread["bn"] > 0.95 and spread["bn"] > spread["none"] + 0.1, spread


@pytest.mark.parametrize("loss", ["arcface", "cosface"])
def test_margin_softmax_trains_and_drops_its_head(synth_root: Path, tmp_path: Path, loss: str):
    from facelib.models.checkpoint import load_checkpoint

    log: list[str] = []
    r = train(tiny(synth_root / "train", tmp_path / "m.pth", loss=loss, steps_per_epoch=6, lr=3e-3, epochs=2),
              log=log.append)
    assert any(f"{loss} head: 12 classes" in line for line in log)
    assert np.isfinite(r.history[-1]["loss"]) and 0 <= r.history[-1]["accuracy"] <= 1
    assert r.history[-1]["loss"] < r.history[0]["loss"]
    best = torch.load(r.checkpoint, weights_only=True)
    assert not any(k.startswith("criterion") or k == "weight" for k in best["model"])  # the embedder alone
    assert torch.load(r.last_checkpoint, weights_only=True)["criterion"]["weight"].shape == (12, 16)
    load_checkpoint(r.checkpoint)  # the same embedder as a triplet-trained one


def test_resume_refuses_another_recipe(synth_root: Path, tmp_path: Path):
    from facelib.errors import CheckpointError

    train(tiny(synth_root / "train", tmp_path / "m.pth", loss="arcface"), **QUIET)
    with pytest.raises(CheckpointError, match="another recipe"):
        train(tiny(synth_root / "train", tmp_path / "m.pth", epochs=2, resume=True), **QUIET)


@pytest.fixture
def loss_registry():
    """A test may register a loss: the names and the table as they were afterwards."""
    from facelib import config
    from facelib.training.losses import LOSS_TABLE

    names, table = list(config.LOSSES), dict(LOSS_TABLE)
    yield
    config.LOSSES[:] = names
    LOSS_TABLE.clear()
    LOSS_TABLE.update(table)


def test_a_new_loss_is_one_registered_class(synth_root: Path, tmp_path: Path, loss_registry):
    from facelib.training.distances import pairwise_distances
    from facelib.training.losses import MetricLoss, register_loss

    @register_loss("contrastive")
    class Contrastive(MetricLoss):  # Hadsell et al. 2006: positives together, negatives past the margin
        log_stats = (("neg_dist", "d- {:.3f}"),)

        def __init__(self, margin: float):
            super().__init__()
            self.margin = margin

        @classmethod
        def from_config(cls, cfg, n_classes, log):
            return cls(cfg.margin)

        def forward(self, emb, labels, indices=None):
            d = pairwise_distances(emb)
            same, off = labels[:, None] == labels[None, :], ~torch.eye(len(labels), dtype=torch.bool)
            per = torch.where(same, d.pow(2), (self.margin - d).clamp_min(0).pow(2))
            return per[off].mean(), {"neg_dist": d[~same].mean().detach()}

    t = Trainer(tiny(synth_root / "train", tmp_path / "m.pth", loss="contrastive", margin=1.5, augment="none",
                     warmup=0.0, lr=3e-3), **QUIET)
    batch = next(iter(t.batches(0)))
    losses = [float(t.step(batch)["loss"]) for _ in range(4)]  # the same batch: its loss goes down
    assert isinstance(t.criterion, Contrastive) and losses[-1] < 0.8 * losses[0], losses
    assert "d- 0.500" in t._epoch_line({"epoch": 1, "neg_dist": 0.5, "images_per_sec": 1.0})
