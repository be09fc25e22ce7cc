"""Training from a notebook: a live loss / active-triplet plot and :func:`run_training`."""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping

import numpy as np
from matplotlib.figure import Figure

from facelib.config import TrainConfig
from facelib.notebook.setup import check_pretrained, device_summary
from facelib.training.setup import val_mode

__all__ = ["LivePlot", "run_training"]


class LivePlot:
    """A live training plot: loss, active-triplet fraction and mean distances, per step and per epoch.

    ``display()`` shows it through an IPython display handle; ``step(stats)`` and
    ``epoch(entry)`` (use it as ``on_epoch_end``) redraw it in place at most every
    ``min_interval`` seconds and every 4 draw durations (a slow machine spends at most about a
    fifth of its time drawing; ``min_interval=0`` draws every update); ``close()`` draws the
    final state. The display handle works in a notebook cell and under nbval (updates are ordinary
    ``update_display_data`` messages). With ``widget=True`` the figure goes into an ``ipywidgets.Image`` instead,
    which also updates inside a widget's Output area (the Train button's callback).
    """

    def __init__(self, title: str = "training", min_interval: float = 1.0, widget: bool = False):
        self.title = title
        self.min_interval = min_interval
        self.widget = None
        if widget:
            import ipywidgets

            self.widget = ipywidgets.Image(format="png", layout={"max_width": "100%"})
        self.steps: list[dict] = []
        self.epochs: list[dict] = []
        self.handle = None
        self._last = 0.0
        self._draw_seconds = 0.0
        self.draws = 0
        self.fig = self._figure()

    def _figure(self) -> Figure:
        fig = Figure(figsize=(12, 3.3), layout="constrained")
        axes = fig.subplots(1, 3)
        step_x = [i + 1 for i in range(len(self.steps))]
        per_epoch = len(self.steps) / max(len(self.epochs), 1) if self.epochs else None
        panels = (("loss", ("loss",)), ("active triplet fraction", ("active_fraction",)),
                  ("mean distance", ("pos_dist", "neg_dist")))
        for ax, (title, keys) in zip(axes, panels):
            for key, colour in zip(keys, ("tab:blue", "tab:red")):
                if self.steps:
                    ax.plot(step_x, [s.get(key, np.nan) for s in self.steps], color=colour, lw=0.8, alpha=0.45)
                if self.epochs and per_epoch:
                    ax.plot([per_epoch * (i + 1) for i in range(len(self.epochs))],
                            [e.get(key, np.nan) for e in self.epochs], "o-", color=colour, ms=5,
                            label=f"{key} (epoch mean)")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
            if title == "active triplet fraction":
                ax.set_ylim(-0.02, 1.02)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        n_ep = len(self.epochs)
        val = [e for e in self.epochs if "val_top1" in e]
        extra = f", val top-1 {val[-1]['val_top1']:.3f}{val_mode(val[-1])}" if val else ""
        fig.suptitle(f"{self.title}: {len(self.steps)} steps, {n_ep} epochs done{extra}", fontsize=10)
        return fig

    def display(self) -> "LivePlot":
        from IPython.display import display

        if self.widget is not None:
            self.widget.value = self._png()
            display(self.widget)
            self.handle = self.widget
        else:
            self.handle = display(self.fig, display_id=True)
        return self

    def _png(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.fig.savefig(buf, format="png", dpi=80)
        return buf.getvalue()

    def _redraw(self, force: bool = False) -> None:
        # wait at least min_interval, and 4x the last draw's duration: drawing stays under ~20% of the time
        now = time.monotonic()
        if not force and self.min_interval > 0 and now - self._last < max(self.min_interval, 4 * self._draw_seconds):
            return
        self.fig = self._figure()
        self.draws += 1
        if self.widget is not None:
            self.widget.value = self._png()
        elif self.handle is not None:
            self.handle.update(self.fig)
        self._last = time.monotonic()
        self._draw_seconds = self._last - now

    def step(self, stats: Mapping[str, Any]) -> None:
        self.steps.append(dict(stats))
        self._redraw()

    def epoch(self, entry: Mapping[str, Any]) -> None:
        self.epochs.append(dict(entry))
        self._redraw(force=True)

    __call__ = epoch

    def close(self) -> None:
        self._redraw(force=True)


def run_training(cfg: TrainConfig, plot: LivePlot | None = None, log: Callable[[str], None] = print):
    """Train with ``cfg`` (see :func:`facelib.jobs.train`), feeding ``plot`` every step and epoch.

    Prints the config, the device and precision first. Returns the :class:`~facelib.training.trainer.TrainResult`.
    """
    from facelib.jobs import train

    check_pretrained(cfg, log)
    changed = {k: v for k, v in cfg.to_dict().items() if k in ("lr", "epochs", "margin", "miner", "p", "k",
                                                                 "image_size", "backbone", "pretrained",
                                                                 "embedding_dim", "amp", "steps_per_epoch")}
    log("config: " + "  ".join(f"{k}={v}" for k, v in changed.items()))
    log(device_summary(cfg))
    if plot is not None and plot.handle is None:
        plot.display()
    t0 = time.perf_counter()
    result = train(cfg, on_epoch_end=plot.epoch if plot is not None else None, log=log,
                   on_step_end=plot.step if plot is not None else None)
    if plot is not None:
        plot.close()
    log(f"trained {len(result.history)} epochs in {time.perf_counter() - t0:.0f} s")
    return result

