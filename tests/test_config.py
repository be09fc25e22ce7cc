from __future__ import annotations

import json
import os
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from facelib.commands import COMMAND_CONFIGS
from facelib.config import PROFILES, EvalConfig, TrainConfig, get_profile, profile_name
from facelib.errors import ConfigError

# The one snapshot of the defaults: every command's config, the original recipe and the profiles. A change that
# is meant shows up as a diff here; regenerate it on purpose with
#     FACELIB_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_config.py -k snapshot
# and commit it beside the change.
DEFAULTS_SNAPSHOT = Path(__file__).resolve().parent / "snapshots" / "defaults.json"


def _defaults() -> dict:
    """Every default a user meets: each command's config (fields without a default left out), the original
    recipe and the profiles."""
    out = {command: {f.name: f.default for f in fields(cls) if f.default is not MISSING}
           for command, cls in COMMAND_CONFIGS.items()}
    out["train --recipe original"] = TrainConfig.original().to_dict()
    for name in PROFILES:
        p = get_profile(name)
        out[f"profile {name}"] = {"train": p.train.to_dict(), "synth": p.synth}
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


def test_loss_follows_the_teacher():
    """An unset loss is triplet without a teacher and none (the teacher alone) with one; a set one is kept."""
    assert TrainConfig().loss is None and TrainConfig().metric_loss == "triplet"
    assert TrainConfig(teacher="dlib").metric_loss == "none"
    assert TrainConfig(teacher="dlib", loss="triplet").metric_loss == "triplet"
    assert TrainConfig.from_overrides(["teacher=dlib", "loss=arcface"]).metric_loss == "arcface"
    assert TrainConfig.original().loss == "triplet"
    for bad in (dict(loss="none"), dict(loss="hinge"), dict(teacher="dlib", loss="cosface", sampler="triplets")):
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


def test_weight_decay_follows_the_teacher():
    from facelib.config import TEACHER_WEIGHT_DECAY, WEIGHT_DECAY

    assert TrainConfig().base_weight_decay == WEIGHT_DECAY == 1e-4
    assert TrainConfig(teacher="dlib").base_weight_decay == TEACHER_WEIGHT_DECAY == 0.05
    assert TrainConfig(teacher="dlib", weight_decay=0.0).base_weight_decay == 0.0  # set: kept, 0 included
    assert TrainConfig(weight_decay=0.01).base_weight_decay == 0.01
    assert TrainConfig.from_overrides(["teacher=dlib", "weight_decay=none"]).base_weight_decay == TEACHER_WEIGHT_DECAY


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


@pytest.mark.parametrize("cls, bad, field", [
    (EvalConfig, dict(device="tpu"), "device"),
    (EvalConfig, dict(device="cuda:x"), "device"),
    (EvalConfig, dict(batch_size=0), "batch_size"),
    (EvalConfig, dict(workers=-1), "workers"),
    (TrainConfig, dict(device="gpu"), "device"),
    (TrainConfig, dict(weight_decay=-1.0), "weight_decay"),
    (TrainConfig, dict(steps_per_epoch=0), "steps_per_epoch"),
    ("embed", dict(data="d", out="o", batch_size=0), "batch_size"),
    ("enroll", dict(data="d", out="o", mode="single"), "mode"),
    ("enroll", dict(data="d", out="o", threshold=float("nan")), "threshold"),
    ("identify", dict(paths=["p"], gallery="g", top_k=0), "top_k"),
    ("identify", dict(paths=["p"], gallery="g", detector="mtcnn"), "detector"),
    ("identify", dict(paths=["p"], gallery="g", device="tpu"), "device"),
    ("export", dict(out="o", format="tflite"), "format"),
    ("align", dict(src="s", out="o", upsample=5), "upsample"),
    ("align", dict(src="s", out="o", no_face="drop"), "no_face"),
    ("align", dict(src="s", out="o", size=8), "size"),
    ("distort", dict(src="s", out="o", kinds=["foggy", "snowy"]), "kinds"),
    ("distort", dict(src="s", out="o", kinds=[]), "kinds"),
    ("synth", dict(identities=2), "identities"),
    ("synth", dict(image_size=8), "image_size"),
    ("demo", dict(epochs=0), "epochs"),
    ("demo", dict(backbone="resnet_does_not_exist"), "backbone"),
])
def test_every_command_config_checks_its_fields(cls, bad, field):
    """A bad value of any command's field is one ConfigError naming that field."""
    cls = COMMAND_CONFIGS[cls] if isinstance(cls, str) else cls
    with pytest.raises(ConfigError) as e:
        cls(**bad)
    assert e.value.fields == (field,)
    assert "\n" not in str(e.value)


def test_a_bad_device_says_what_a_device_is():
    with pytest.raises(ConfigError, match=r"device must be auto, cpu, cuda or cuda:N, got 'tpu'"):
        EvalConfig(device="tpu")
    assert EvalConfig(device="cuda:1").device == "cuda:1"


def test_every_number_has_a_rule():
    """Every int or float field of every command has a rule (seeds aside: any integer is one)."""
    import typing

    for cls in COMMAND_CONFIGS.values():
        for f in fields(cls):
            hint = typing.get_type_hints(cls)[f.name]
            union = typing.get_origin(hint) in (typing.Union, __import__("types").UnionType)
            numeric = {int, float} & set(typing.get_args(hint) if union else (hint,))
            if numeric and f.name != "seed":
                assert f.metadata["check"] is not None, f"{cls.__name__}.{f.name} has no rule"


def test_enroll_takes_one_threshold_source():
    with pytest.raises(ConfigError, match="not both") as e:
        COMMAND_CONFIGS["enroll"](data="d", out="o", threshold=0.5, metrics="m.json")
    assert e.value.fields == ("threshold", "metrics")


def test_widget_ranges_lie_within_the_rules():
    """The notebook's controls offer only values the config accepts."""
    from facelib.config import widget_range

    for f in fields(TrainConfig):
        if f.metadata["widget"] is not None:
            low, high, _ = widget_range(TrainConfig, f.name)
            assert low < high and f.metadata["check"](low) and f.metadata["check"](high), f.name
    assert widget_range(TrainConfig, "p")[0] == 2 and widget_range(TrainConfig, "image_size") == (32, 512, 16)
