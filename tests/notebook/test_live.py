"""facelib.notebook.live: the live training plot, and training from a notebook."""

from __future__ import annotations

import pytest

from facelib import notebook as nb


def test_live_plot_without_a_display():
    plot = nb.LivePlot(min_interval=0.0)
    for i in range(3):
        plot.step({"loss": 1.0 / (i + 1), "active_fraction": 0.5, "pos_dist": 0.3, "neg_dist": 0.6})
    plot.epoch({"epoch": 1, "loss": 0.6, "active_fraction": 0.5, "pos_dist": 0.3, "neg_dist": 0.6, "val_top1": 0.4})
    plot.close()
    assert plot.draws >= 4 and "val top-1 0.400" in plot.fig._suptitle.get_text()
    plot.epoch({"epoch": 2, "loss": 0.5, "val_top1": 0.45, "val_protocol": "cross-photo", "val_gallery": "mean"})
    assert "val top-1 0.450 (cross-photo, mean gallery)" in plot.fig._suptitle.get_text()  # names its gallery
    w = nb.LivePlot(widget=True)
    w.epoch({"epoch": 1, "loss": 0.5})
    assert w.widget.value[:4] == b"\x89PNG"


@pytest.mark.slow
def test_run_training_and_ensure_checkpoint(synth_root, tmp_path):
    s = nb.setup(data=synth_root, profile="smoke", runs=tmp_path)
    s.config.image_size, s.config.epochs, s.config.steps_per_epoch, s.config.val_data = 32, 1, 2, None
    s.config.p, s.config.progress = 4, False
    assert nb.ensure_checkpoint(s, log=lambda m: None) == s.run_dir / "quick" / "tb_model.pth"
    plot = nb.LivePlot(min_interval=0.0)
    result = nb.run_training(s.config, plot, log=lambda m: None)
    assert len(result.history) == 1 and len(plot.steps) == 2 and s.checkpoint.is_file()
    msgs = []
    assert nb.ensure_checkpoint(s, log=msgs.append) == s.checkpoint and "notebook 03" in msgs[0]
