from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from facelib.config import EvalConfig, TrainConfig, get_profile, profile_name
from facelib.errors import ConfigError

# The one snapshot of the defaults: every command's config, the original recipe and the profiles. A change that
# is meant shows up as a diff here; regenerate it on purpose with
#     FACELIB_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_config.py -k snapshot
# and commit it beside the change.
DEFAULTS_SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "defaults.json"


def _defaults() -> dict:
    """Every default a user meets, by where they meet it."""
    from facelib.cli import build_parser

    out = {"train": TrainConfig().to_dict(), "train --recipe original": TrainConfig.original().to_dict(),
           "test": asdict(EvalConfig())}
    for name in ("smoke", "full"):
        p = get_profile(name)
        out[f"profile {name}"] = {"train": p.train.to_dict(), "synth": p.synth}
    required = {"embed": ["--data", "d", "--out", "o"], "enroll": ["--data", "d", "--out", "o"],
                "identify": ["--gallery", "g", "p.jpg"], "export": ["--out", "o"], "align": ["s", "o"],
                "distort": ["--src", "s", "--out", "o"], "synth": [], "demo": []}
    for command, argv in required.items():
        args = vars(build_parser().parse_args([command, *argv]))
        out[command] = {k: v for k, v in args.items() if not callable(v) and k != "command"}
    return out


def test_defaults_match_the_snapshot():
    text = json.dumps(_defaults(), indent=1, sort_keys=True, default=str) + "\n"
    if os.environ.get("FACELIB_UPDATE_SNAPSHOTS"):
        DEFAULTS_SNAPSHOT.parent.mkdir(exist_ok=True)
        DEFAULTS_SNAPSHOT.write_text(text)
    assert DEFAULTS_SNAPSHOT.exists(), "no defaults snapshot: run with FACELIB_UPDATE_SNAPSHOTS=1"
    assert text == DEFAULTS_SNAPSHOT.read_text(), "a default changed; if on purpose, regenerate (see above)"


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
    assert full.train == TrainConfig()


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
