"""TrainPanel / EvalPanel: widgets write through to the config; bad values are clamped or refused."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")

from facelib.config import EvalConfig, TrainConfig
from facelib.notebook.widgets import EvalPanel, TrainPanel


@pytest.fixture
def panel() -> TrainPanel:
    cfg = TrainConfig(backbone="resnet18", pretrained=False, image_size=64, p=8, k=4, epochs=2, amp=False)
    return TrainPanel(cfg, max_identities=18, gpu=False)


def test_panel_shows_the_config_and_edits_it_in_place(panel: TrainPanel):
    cfg = panel.config
    assert panel.controls["epochs"].value == 2 and panel.controls["backbone"].value == "resnet18"
    changes = {"lr": 1e-2, "epochs": 5, "margin": 0.5, "miner": "semi_hard", "p": 6, "k": 3, "image_size": 96,
               "backbone": "resnet34", "pretrained": True, "embedding_dim": 256, "amp": True}
    for name, value in changes.items():
        panel.controls[name].value = value
    assert panel.config is cfg
    for name, value in changes.items():
        assert getattr(cfg, name) == pytest.approx(value) if isinstance(value, float) else getattr(cfg, name) == value
    assert panel.values()["epochs"] == 5


def test_set_and_refresh_go_both_ways(panel: TrainPanel):
    panel.set(epochs=7, miner="batch_all")
    assert panel.config.epochs == 7 and panel.config.miner == "batch_all"
    panel.config.margin = 0.35
    panel.refresh()
    assert panel.controls["margin"].value == pytest.approx(0.35)
    with pytest.raises(KeyError):
        panel.set(weight_decay=0.1)


def test_loss_option_reaches_the_config_and_says_what_stops_acting(panel: TrainPanel):
    assert panel.controls["loss"].options == ("triplet", "arcface", "cosface")
    panel.controls["loss"].value = "arcface"
    assert panel.config.loss == "arcface"
    assert "miner and margin are not used" in panel.messages[-1]
    panel.controls["miner"].value = "batch_hard"
    assert panel.config.miner == "batch_hard" and "the loss is arcface" in panel.messages[-1]
    panel.controls["margin"].value = 0.0  # semi-hard with margin 0 is only refused for the triplet loss
    panel.controls["miner"].value = "semi_hard"
    assert panel.config.miner == "semi_hard"
    panel.controls["loss"].value = "triplet"  # ... so going back to it with that pair is refused
    assert panel.config.loss == "arcface" and panel.controls["loss"].value == "arcface"
    assert "semi-hard mining needs a margin" in panel.messages[-1]


def test_a_teacher_config_shows_the_loss_it_will_train_with():
    """loss unset with a teacher trains on the teacher alone: the dropdown shows none and offers it."""
    panel = TrainPanel(TrainConfig(backbone="resnet18", pretrained=False, teacher="dlib", amp=False), gpu=False)
    assert panel.controls["loss"].value == "none" and "none" in panel.controls["loss"].options
    assert panel.config.loss is None
    panel.controls["loss"].value = "triplet"
    assert panel.config.metric_loss == "triplet"
    panel.controls["loss"].value = "none"
    assert panel.config.loss == "none" and "distillation term alone" in panel.messages[-1]


def test_p_is_clamped_to_the_identities(panel: TrainPanel):
    panel.controls["p"].value = 40
    assert panel.config.p == 18 and panel.controls["p"].value == 18
    assert "only 18 identities" in panel.messages[-1]


def test_batch_size_is_clamped(panel: TrainPanel):
    panel.controls["p"].value = 16
    panel.controls["k"].value = 100  # 16 x 100 > 1024
    assert panel.config.k == 1024 // 16 and panel.controls["k"].value == 64
    assert "P x K" in panel.messages[-1]


def test_image_size_is_rounded(panel: TrainPanel):
    panel.controls["image_size"].value = 100
    assert panel.config.image_size == 96 and panel.controls["image_size"].value == 96
    assert "multiple of 16" in panel.messages[-1]


def test_semi_hard_with_zero_margin_is_rejected(panel: TrainPanel):
    panel.controls["miner"].value = "semi_hard"
    panel.controls["margin"].value = 0.0
    assert panel.config.margin == 0.2 and panel.controls["margin"].value == pytest.approx(0.2)
    assert "margin > 0" in panel.messages[-1]
    # and the other order: margin 0 first, then semi-hard
    panel.controls["miner"].value = "batch_hard"
    panel.controls["margin"].value = 0.0
    panel.controls["miner"].value = "semi_hard"
    assert panel.config.miner == "batch_hard" and panel.controls["miner"].value == "batch_hard"


def test_unknown_backbone_is_rejected(panel: TrainPanel):
    panel.controls["backbone"].value = "resnet_does_not_exist"
    assert panel.config.backbone == "resnet18" and panel.controls["backbone"].value == "resnet18"
    assert "not a timm model" in panel.messages[-1]
    assert "not a timm model" in panel.message.value


@pytest.mark.parametrize("native", [True, False])
def test_amp_on_cpu_is_allowed_with_a_note(panel: TrainPanel, monkeypatch, native):
    from facelib import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    panel.controls["amp"].value = True
    assert panel.config.amp is True
    assert ("trains in fp32" in panel.messages[-1]) is not native
    assert ("runs in bf16" in panel.messages[-1]) is native


def test_train_button_calls_back_with_the_live_config(panel: TrainPanel):
    seen = []
    panel.on_train(lambda cfg: seen.append((cfg, cfg.epochs, cfg.lr)) or "trained")
    panel.controls["epochs"].value = 3
    panel.controls["lr"].value = 1e-3
    assert panel.click() == "trained"
    cfg, epochs, lr = seen[0]
    assert cfg is panel.config and epochs == 3 and lr == pytest.approx(1e-3)
    assert not panel.button.disabled and panel.status.value == "done"


def test_button_reports_a_failing_callback(panel: TrainPanel):
    def boom(cfg):
        raise RuntimeError("out of memory")

    panel.on_train(boom)
    panel.click()
    assert isinstance(panel.last_error, RuntimeError)
    assert "out of memory" in panel.messages[-1] and not panel.button.disabled


def test_button_without_callback_says_so(panel: TrainPanel):
    panel.click()
    assert "on_train" in panel.messages[-1]
    with pytest.raises(TypeError):
        panel.on_train("not callable")


def test_train_panel_needs_a_train_config():
    with pytest.raises(TypeError):
        TrainPanel(EvalConfig())


def test_eval_panel(tmp_path):
    cfg = EvalConfig(data=str(tmp_path), train_data=None)
    panel = EvalPanel(cfg)
    panel.controls["gallery"].value = "all"
    panel.controls["protocol"].value = "gallery"
    panel.controls["baseline"].value = False
    assert (cfg.gallery, cfg.protocol, cfg.baseline) == ("all", "gallery", False)
    panel.controls["protocol"].value = "closed"  # no train folder: refused
    assert cfg.protocol == "gallery" and panel.controls["protocol"].value == "gallery"
    assert "closed" in panel.messages[-1]
    cfg.train_data = str(tmp_path)
    panel.controls["protocol"].value = "closed"
    assert cfg.protocol == "closed" and "wrong" in panel.messages[-1]
    seen = []
    panel.on_evaluate(seen.append)
    panel.click()
    assert seen == [cfg]


def test_default_learning_rate_shows_the_rate_for_the_start(panel: TrainPanel):
    from facelib.config import SCRATCH_LR

    assert panel.config.lr is None and panel.controls["lr"].value == pytest.approx(SCRATCH_LR)


def test_control_ranges_are_the_fields_widget_entries(panel: TrainPanel):
    """The panel reads its ranges from the registry (``setting(widget=...)``), not from numbers of its own."""
    import math

    from facelib.config import widget_range

    for name in ("epochs", "p", "k", "image_size", "margin"):
        low, high, step = widget_range(TrainConfig, name)
        w = panel.controls[name]
        assert (w.min, w.max) == (low, high) and (step is None or w.step == step), name
    low, high, _ = widget_range(TrainConfig, "lr")
    assert (panel.controls["lr"].min, panel.controls["lr"].max) == (math.log10(low), math.log10(high))
