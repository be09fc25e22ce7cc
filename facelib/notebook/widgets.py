"""ipywidgets panels bound to the configs: :class:`TrainPanel` (TrainConfig) and :class:`EvalPanel` (EvalConfig).

A panel edits its config object *in place*: ``panel.config`` is the live object, and
every accepted widget change is written to it at once (``panel.set(...)`` and
``panel.refresh()`` go the other way, config -> widgets). A change the config would
refuse, or a combination that cannot train, is clamped to the nearest valid value or
rejected (the widget snaps back); either way a one-line message says why
(``panel.message`` shows it, ``panel.messages`` keeps them all).

The Train / Evaluate button calls the function registered with ``on_train`` /
``on_evaluate`` with the live config; what that function prints or displays appears in
the panel's own output area (``panel.output``). Without a browser (nbval, scripts) the
panel is just displayed and the notebook goes on with ``panel.config``.
"""

from __future__ import annotations

import dataclasses
import html
import math
import traceback
from typing import Any, Callable

import ipywidgets as W

from facelib.config import EvalConfig, TrainConfig, choices, widget_range
from facelib.errors import ConfigError

__all__ = ["TrainPanel", "EvalPanel", "BACKBONES"]

#: Offered in the backbone box; any other timm model name may be typed in.
BACKBONES: tuple[str, ...] = ("resnet18", "resnet34", "resnet50", "resnet101", "efficientnet_b0", "convnext_tiny")
EMBEDDING_SIZES: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
MAX_BATCH = 1024  # P x K images per batch

_STYLE = {"description_width": "150px"}
_LAYOUT = {"width": "340px"}


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (where an Output widget can be cleared)."""
    try:
        from IPython import get_ipython

        ip = get_ipython()
    except ImportError:  # pragma: no cover
        return False
    return ip is not None and getattr(ip, "kernel", None) is not None


# TrainConfig fields whose None is resolved by a property (the learning rate for the start, the loss for the
# teacher): the widget shows what the run will use
_RESOLVED = {"lr": "base_lr", "loss": "metric_loss"}


class Rejected(ValueError):
    """A widget value that cannot be used; the widget returns to the config's value."""


class _Panel(W.VBox):
    """Shared machinery: widgets keyed by config field, change -> check -> write, messages, a button."""

    def __init__(self, config: Any, controls: dict[str, W.ValueWidget], title: str, button: str, **kwargs: Any):
        self.config = config
        self.controls = controls
        self.messages: list[str] = []
        self.last_result: Any = None
        self.last_error: BaseException | None = None
        self._callback: Callable[[Any], Any] | None = None
        self._quiet = False
        self.message = W.HTML(value="", layout={"min_height": "1.6em"})
        self.button = W.Button(description=button, button_style="primary", icon="play",
                               tooltip=f"{button} with the values above")
        self.status = W.HTML(value="")
        self.output = W.Output(layout={"border": "1px solid #ddd", "min_height": "2em"})
        self.button.on_click(self._clicked)
        for name, w in controls.items():
            w.observe(lambda change, name=name: self._changed(name, change), names="value")
        items = list(controls.values())
        grid = W.GridBox(items, layout={"grid_template_columns": "repeat(2, 360px)", "grid_gap": "4px 12px"})
        super().__init__([W.HTML(f"<b>{html.escape(title)}</b>"), grid, self.message,
                          W.HBox([self.button, self.status]), self.output], **kwargs)
        self.refresh()

    # ------------------------------------------------------------------ config <-> widgets

    def refresh(self) -> None:
        """Set every widget from the config (config -> widgets)."""
        self._quiet = True
        try:
            for name, w in self.controls.items():
                value = getattr(self.config, name)
                if value is None and name in _RESOLVED:  # an unset coupled default: what it resolves to
                    value = getattr(self.config, _RESOLVED[name])
                if isinstance(w, (W.Dropdown, W.Combobox)) and value not in w.options:
                    w.options = tuple(w.options) + (value,)
                w.value = value
        finally:
            self._quiet = False

    def set(self, **changes: Any) -> None:
        """Change fields as if typed into the widgets (same checks, same messages)."""
        for name, value in changes.items():
            if name not in self.controls:
                raise KeyError(f"no widget for {name!r}; the panel edits {', '.join(self.controls)}")
            w = self.controls[name]
            if isinstance(w, W.Dropdown) and value not in w.options:
                w.options = tuple(w.options) + (value,)
            w.value = value

    def values(self) -> dict[str, Any]:
        """The panel's fields as a dict (what the config now holds)."""
        return {name: getattr(self.config, name) for name in self.controls}

    def _say(self, text: str, level: str = "warning") -> None:
        colour = {"warning": "#a15c00", "error": "#b00020", "info": "#333"}[level]
        self.messages.append(text)
        self.message.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def _put(self, name: str, value: Any) -> None:
        """Show ``value`` in widget ``name`` without running the change handler."""
        self._quiet = True
        try:
            self.controls[name].value = value
        finally:
            self._quiet = False

    def _changed(self, name: str, change: dict) -> None:
        if self._quiet:
            return
        old = getattr(self.config, name)
        try:
            value, notes = self._coerce(name, change["new"])
            updates = {name: value}
            updates.update(self._combos(name, value, notes))
            try:
                dataclasses.replace(self.config, **updates)  # runs the config's own validation
            except (ConfigError, ValueError, TypeError) as e:
                raise Rejected(str(e)) from None
        except Rejected as e:
            self._put(name, old)
            self._say(f"{self.controls[name].description}: {e}; kept {old!r}", "error")
            return
        for field, v in updates.items():
            setattr(self.config, field, v)
            if self.controls[field].value != v:
                self._put(field, v)
        if notes:
            self._say("; ".join(notes))
        else:
            self.message.value = ""

    def _coerce(self, name: str, value: Any) -> tuple[Any, list[str]]:
        return value, []

    def _combos(self, name: str, value: Any, notes: list[str]) -> dict[str, Any]:
        return {}

    # ------------------------------------------------------------------ the button

    def _register(self, callback: Callable[[Any], Any] | None) -> None:
        if callback is not None and not callable(callback):
            raise TypeError("the button callback must be callable (it receives the config)")
        self._callback = callback

    def click(self) -> Any:
        """Press the button from code; returns what the callback returned."""
        self.button.click()
        return self.last_result

    def _clicked(self, _button: W.Button | None = None) -> None:
        if self._callback is None:
            self._say("nothing to run: register a function with on_train / on_evaluate first", "error")
            return
        label = self.button.description
        self.button.disabled = True
        self.status.value = "<i>running...</i>"
        self.last_error = None
        if _in_kernel():
            self.output.clear_output()
        try:
            with self.output:
                self.last_result = self._callback(self.config)
            self.status.value = "done"
        except Exception as e:  # noqa: BLE001 - shown to the user, kept for inspection
            self.last_error = e
            self.status.value = ""
            self._say(f"{label} failed: {type(e).__name__}: {e}", "error")
            with self.output:
                traceback.print_exc()
        finally:
            self.button.disabled = False


class TrainPanel(_Panel):
    """Hyperparameters of a :class:`TrainConfig`, edited in place, with a Train button.

    Args:
        config: the TrainConfig to edit (``panel.config`` is this very object).
        on_train: ``f(config)`` called by the Train button.
        max_identities: identities in the training folder, if known: P is clamped to it.
        max_batch: largest P x K batch accepted; the value just changed is clamped to fit.
        gpu: whether a GPU is present (AMP only acts on a GPU); detected when ``None``.

    Every rule of :meth:`TrainConfig.validate` applies (``semi_hard`` with margin 0 under the triplet loss and
    an unknown timm backbone are rejected there). The panel's own limits, for its sliders and this machine:
    image size is rounded to the slider's step and kept within its range (``TrainConfig.image_size``'s widget entry);
    P <= ``max_identities``; P x K <= ``max_batch``. ``loss`` picks the triplet loss or a margin softmax
    (arcface, cosface); with the latter the miner and margin do not act, and a note says so.
    """

    def __init__(
        self,
        config: TrainConfig | None = None,
        on_train: Callable[[TrainConfig], Any] | None = None,
        *,
        max_identities: int | None = None,
        max_batch: int = MAX_BATCH,
        gpu: bool | None = None,
        **kwargs: Any,
    ):
        config = TrainConfig() if config is None else config
        if not isinstance(config, TrainConfig):
            raise TypeError(f"TrainPanel needs a TrainConfig, got {type(config).__name__}")
        self.max_identities = max_identities
        self.max_batch = int(max_batch)
        if gpu is None:
            from facelib.config import gpu_available

            gpu = gpu_available()
        self.gpu = bool(gpu)
        c = dict(style=_STYLE, layout=_LAYOUT)
        # the ranges of the numbers: the fields' widget entries, within their rules (facelib.config.setting)
        r = {name: dict(zip(("min", "max", "step"), widget_range(TrainConfig, name)))
             for name in ("lr", "epochs", "margin", "p", "k", "image_size")}
        controls: dict[str, W.ValueWidget] = {
            "lr": W.FloatLogSlider(value=config.base_lr, base=10, min=math.log10(r["lr"]["min"]),
                                   max=math.log10(r["lr"]["max"]), step=0.1, readout_format=".1e",
                                   description="learning rate", continuous_update=False, **c),
            "epochs": W.BoundedIntText(value=config.epochs, min=r["epochs"]["min"], max=r["epochs"]["max"],
                                       description="epochs", **c),
            "margin": W.FloatSlider(value=config.margin, **r["margin"], readout_format=".2f",
                                    description="margin", continuous_update=False, **c),
            # "none" trains on a teacher alone: offered only where the config brings a teacher (no control sets one)
            "loss": W.Dropdown(options=tuple(x for x in choices(TrainConfig, "loss") if x != "none" or config.teacher),
                               value=config.metric_loss, description="loss", **c),
            "miner": W.Dropdown(options=choices(TrainConfig, "miner"), value=config.miner, description="miner", **c),
            "p": W.BoundedIntText(value=config.p, min=r["p"]["min"], max=r["p"]["max"],
                                  description="P (identities/batch)", **c),
            "k": W.BoundedIntText(value=config.k, min=r["k"]["min"], max=r["k"]["max"],
                                  description="K (images/identity)", **c),
            "image_size": W.IntSlider(value=config.image_size, **r["image_size"], description="image size (px)",
                                      continuous_update=False, **c),
            "backbone": W.Combobox(options=tuple(dict.fromkeys(BACKBONES + (config.backbone,))),
                                   value=config.backbone, description="backbone (timm)", ensure_option=False,
                                   continuous_update=False, **c),
            "pretrained": W.Checkbox(value=config.pretrained, description="ImageNet-pretrained", indent=True, **c),
            "embedding_dim": W.Dropdown(options=tuple(sorted(set(EMBEDDING_SIZES) | {config.embedding_dim})),
                                        value=config.embedding_dim, description="embedding size", **c),
            "amp": W.Checkbox(value=config.amp, description="mixed precision (AMP)", indent=True, **c),
        }
        super().__init__(config, controls, "Training hyperparameters", "Train", **kwargs)
        self._register(on_train)
        if config.amp and not self.gpu:
            self._say(_cpu_amp_note(), "info")

    def on_train(self, callback: Callable[[TrainConfig], Any] | None) -> "TrainPanel":
        """Register ``f(config)`` for the Train button (replaces any earlier one)."""
        self._register(callback)
        return self

    def _coerce(self, name: str, value: Any) -> tuple[Any, list[str]]:
        notes: list[str] = []
        if name == "image_size":
            lo, hi, step = widget_range(TrainConfig, "image_size")
            v = int(min(hi, max(lo, step * round(int(value) / step))))
            if v != value:
                notes.append(f"image size {value} -> {v} px (a multiple of {step} within {lo}..{hi})")
            return v, notes
        if name == "backbone":  # TrainConfig.validate checks the name
            return str(value).strip(), notes
        if name == "p" and self.max_identities is not None and value > self.max_identities:
            notes.append(f"P {value} -> {self.max_identities}: the training folder has only "
                         f"{self.max_identities} identities")
            return int(self.max_identities), notes
        if name == "amp" and value and not self.gpu:
            notes.append(_cpu_amp_note())
        return value, notes

    def _combos(self, name: str, value: Any, notes: list[str]) -> dict[str, Any]:
        cfg = self.config
        loss = value if name == "loss" else cfg.metric_loss
        if name == "loss" and value == "none":
            notes.append("none: the distillation term alone (the teacher's targets); miner and margin are not used")
        elif name == "loss" and value != "triplet":
            notes.append(f"{value}: a softmax over the training identities with its own margin and scale "
                         f"(class_margin, class_scale); miner and margin are not used")
        elif name in ("miner", "margin") and loss != "triplet":
            notes.append(f"{name} only acts with the triplet loss; the loss is {loss}")
        if name in ("p", "k"):
            p = value if name == "p" else cfg.p
            k = value if name == "k" else cfg.k
            if p * k > self.max_batch:
                other = k if name == "p" else p
                fit = max(2, self.max_batch // other)
                notes.append(f"{name.upper()} {value} -> {fit}: P x K must stay <= {self.max_batch} images per batch")
                return {name: fit}
        return {}


class EvalPanel(_Panel):
    """Protocol and gallery mode of an :class:`EvalConfig`, edited in place, with an Evaluate button.

    ``closed`` is rejected when the config has no existing ``train_data`` folder (its
    gallery comes from the training identities).
    """

    def __init__(self, config: EvalConfig | None = None, on_evaluate: Callable[[EvalConfig], Any] | None = None,
                 **kwargs: Any):
        config = EvalConfig() if config is None else config
        if not isinstance(config, EvalConfig):
            raise TypeError(f"EvalPanel needs an EvalConfig, got {type(config).__name__}")
        c = dict(style=_STYLE, layout=_LAYOUT)
        controls: dict[str, W.ValueWidget] = {
            "protocol": W.Dropdown(options=choices(EvalConfig, "protocol"), value=config.protocol,
                                   description="protocol", **c),
            "gallery": W.Dropdown(options=choices(EvalConfig, "gallery"), value=config.gallery,
                                  description="gallery", **c),
            "baseline": W.Checkbox(value=config.baseline, description="pixel baseline too", indent=True, **c),
        }
        super().__init__(config, controls, "Evaluation", "Evaluate", **kwargs)
        self._register(on_evaluate)

    def on_evaluate(self, callback: Callable[[EvalConfig], Any] | None) -> "EvalPanel":
        """Register ``f(config)`` for the Evaluate button (replaces any earlier one)."""
        self._register(callback)
        return self

    def _combos(self, name: str, value: Any, notes: list[str]) -> dict[str, Any]:
        if name == "protocol" and value == "closed":
            from pathlib import Path

            train = self.config.train_data
            if not train or not Path(train).is_dir():
                raise Rejected(f"the closed protocol takes its gallery from the training folder, not found: {train}")
            notes.append("closed: probes whose identity is not in the training folder count as wrong "
                         "(all of them when the splits are disjoint, as in FACECOM)")
        return {}


def _cpu_amp_note() -> str:
    """What AMP does when training on this machine's CPU."""
    from facelib.runtime import cpu_has_native_bf16

    if cpu_has_native_bf16():
        return "AMP on this CPU: training runs in bf16 autocast (native bf16, about 2x the fp32 step)"
    return "AMP acts on a GPU or a CPU with native bf16 (AVX-512/AMX): this CPU trains in fp32"
