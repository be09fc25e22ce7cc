from __future__ import annotations

import pytest

from facelib.config import EvalConfig, TrainConfig, get_profile, profile_name
from facelib.errors import ConfigError


def test_defaults_match_the_contract():
    c = TrainConfig()
    assert (c.epochs, c.image_size, c.backbone, c.out, c.embedding_dim) == (20, 224, "resnet50", "tb_model.pth", 512)
    assert c.sampler == "pk"


def test_original_recipe():
    c = TrainConfig.original(epochs=3)
    assert (c.sampler, c.miner, c.margin, c.epochs) == ("triplets", "random", 1.0, 3)


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(miner="hardest"), dict(p=1), dict(clean_fraction=2.0),
                                 dict(device="tpu"), dict(lr=0)])
def test_bad_settings_raise_clear_error(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_round_trip_dict():
    c = TrainConfig(lr=0.01, p=4)
    assert TrainConfig.from_dict({**c.to_dict(), "unknown": 1}) == c


def test_eval_config_checks():
    with pytest.raises(ConfigError):
        EvalConfig(protocol="open")
    with pytest.raises(ConfigError):
        EvalConfig(gallery="median")


def test_profiles():
    assert profile_name({"FACELIB_PROFILE": "full"}) == "full"
    assert profile_name({"FACELIB_PROFILE": "smoke"}) == "smoke"
    with pytest.raises(ConfigError):
        profile_name({"FACELIB_PROFILE": "turbo"})
    smoke, full = get_profile("smoke"), get_profile("full")
    assert smoke.train.image_size <= 64 and not smoke.train.pretrained
    assert full.train.backbone == "resnet50" and full.train.image_size == 224 and full.train.epochs == 20


def test_learning_rate_follows_the_start():
    from facelib.config import FINETUNE_LR, SCRATCH_LR

    assert TrainConfig().base_lr == FINETUNE_LR
    assert TrainConfig(pretrained=False).base_lr == SCRATCH_LR
    assert TrainConfig(pretrained=False, weights="w.pth").base_lr == FINETUNE_LR
    assert TrainConfig(pretrained=False, lr=0.01).base_lr == 0.01
    assert SCRATCH_LR > FINETUNE_LR


@pytest.mark.parametrize("bad", [dict(loss="softmax"), dict(neck="ln"), dict(augment="heavy"), dict(loss="arcface", sampler="triplets"),
                                 dict(class_margin=-0.1), dict(class_scale=0), dict(max_seconds=0)])
def test_bad_new_settings_raise_clear_error(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)
