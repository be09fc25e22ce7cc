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


@pytest.mark.parametrize("bad", [dict(loss="softmax"), dict(neck="ln"), dict(augment="heavy"),
                                 dict(loss="arcface", sampler="triplets"), dict(class_margin=-0.1), dict(class_scale=0),
                                 dict(max_seconds=0)])
def test_bad_new_settings_raise_clear_error(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_from_overrides_parses_text_by_field_type():
    c = TrainConfig.from_overrides(["miner=batch_hard", "margin=0.3", "p=8", "neck=none", "lr=none",
                                    "grad_clip=none", "soft_margin=true", "data=a+b", "max_seconds=60"])
    assert (c.miner, c.margin, c.p, c.neck, c.lr, c.grad_clip, c.soft_margin) == \
        ("batch_hard", 0.3, 8, "none", None, None, True)
    assert c.data == ["a", "b"] and c.max_seconds == 60.0 and isinstance(c.max_seconds, float)
    assert TrainConfig.from_overrides({"epochs": 3}, base=TrainConfig.original()).sampler == "triplets"
    with pytest.raises(ConfigError, match="unknown TrainConfig field 'mienr'"):
        TrainConfig.from_overrides(["mienr=batch_all"])
    with pytest.raises(ConfigError, match="p='many'"):
        TrainConfig.from_overrides(["p=many"])
    with pytest.raises(ConfigError, match="miner must be one of"):
        TrainConfig.from_overrides(["miner=hardest"])


@pytest.mark.parametrize("bad, fields", [
    (dict(miner="semi_hard", margin=0.0), ("miner", "margin")),
    (dict(backbone="resnet_does_not_exist"), ("backbone",)),
    (dict(distance="manhattan"), ("distance",)),
    (dict(epochs=0), ("epochs",)),
])
def test_every_rule_is_in_validate_and_names_its_fields(bad, fields):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**bad)
    assert e.value.fields == fields


def test_image_size_need_not_be_a_multiple_of_16():
    """The widget's slider steps by 16, but any size >= 16 trains (the tests use 48 px)."""
    assert TrainConfig(image_size=48).image_size == 48


def test_every_field_is_in_the_registry():
    from dataclasses import fields

    for cls in (TrainConfig, EvalConfig):
        for f in fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


def test_semi_hard_margin_rule_holds_for_the_triplet_loss_only():
    """With a margin softmax the miner and the triplet margin do not act, so margin 0 is allowed there."""
    assert TrainConfig(loss="arcface", miner="semi_hard", margin=0.0).margin == 0.0
    with pytest.raises(ConfigError, match="margin > 0"):
        TrainConfig(loss="triplet", miner="semi_hard", margin=0.0)
