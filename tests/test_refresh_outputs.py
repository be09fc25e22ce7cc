"""notebooks/refresh_outputs.py: what it does to stored outputs (progress bars, photo grids) and the run folder."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import nbformat
import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "notebooks"))

import refresh_outputs as refresh

WIDGET = "application/vnd.jupyter.widget-view+json"


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _cell(*outputs) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    return cell


def test_frozen_progress_bars_become_one_line_and_panels_stay():
    bar = {"output_type": "display_data", "metadata": {},
           "data": {WIDGET: {"model_id": "1"}, "text/plain": "epoch 1/2:   0%|          | 0/120 [00:00<?, ?step/s]"}}
    embed = {"output_type": "display_data", "metadata": {},
             "data": {WIDGET: {"model_id": "2"}, "text/plain": "embedding:   0%|          | 0/16 [00:00<?, ?batch/s]"}}
    panel = {"output_type": "execute_result", "metadata": {}, "execution_count": 3,
             "data": {WIDGET: {"model_id": "3"}, "text/plain": "TrainPanel(children=(HTML(value='<b>Training')"}}
    nb = nbformat.v4.new_notebook(cells=[_cell(bar, embed, panel)])
    refresh.tidy(nb)
    bar, embed, panel = nb.cells[0].outputs
    assert (bar.output_type, bar.text) == ("stream", "epoch 1/2: 120 steps\n")
    assert embed.text == "embedding: 16 batches\n"
    assert WIDGET in panel.data


def test_large_photo_grids_are_stored_as_jpeg_small_figures_stay_png():
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8))
    small = Image.new("RGB", (100, 100), "white")
    nb = nbformat.v4.new_notebook(cells=[_cell(
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": _png(noise), "text/plain": "grid"}},
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": _png(small), "text/plain": "plot"}})])
    assert len(_png(noise)) > refresh.LARGE_PNG > len(_png(small))
    refresh.tidy(nb)
    grid, plot = nb.cells[0].outputs
    assert "image/png" not in grid.data and len(grid.data["image/jpeg"]) < len(_png(noise))
    assert Image.open(io.BytesIO(base64.b64decode(grid.data["image/jpeg"]))).size == (400, 400)
    assert "image/png" in plot.data and "image/jpeg" not in plot.data


def test_empty_run_folder_removes_only_the_smoke_run(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_RUNS", str(tmp_path))
    for name in ("smoke_synthetic", "full_synthetic"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text("{}")
    assert refresh.empty_run_folder() == tmp_path / "smoke_synthetic"
    assert not (tmp_path / "smoke_synthetic").exists() and (tmp_path / "full_synthetic" / "metrics.json").exists()
