"""facelib.notebook helpers, and the shape of the committed notebooks (cleared, short cells, parameters first)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facelib import notebook as nb
from facelib.data import scan_folder
from facelib.errors import DataError

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_repo_root_holds_the_package():
    root = nb.repo_root()
    assert (root / "pyproject.toml").is_file() and (root / "facelib" / "notebook.py").is_file()


def test_setup_with_a_data_folder(synth_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_DATA", str(synth_root))
    monkeypatch.setenv("FACELIB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("FACELIB_MAX_STEPS", "3")
    monkeypatch.setenv("FACELIB_EPOCHS", "1")
    s = nb.setup(profile="smoke")
    assert not s.synthetic and s.train_dir == synth_root.resolve() / "train"
    assert s.val_dir == synth_root.resolve() / "val"
    assert s.run_dir == (tmp_path / "runs" / f"smoke_{synth_root.name}").resolve() and s.run_dir.is_dir()
    cfg = s.config
    assert cfg.data == str(s.train_dir) and cfg.val_data == str(s.val_dir)
    assert cfg.out == str(s.run_dir / "tb_model.pth") and cfg.steps_per_epoch == 3 and cfg.epochs == 1
    e = s.eval_config()
    assert e.data == str(s.val_dir) and e.checkpoint == str(s.checkpoint) and e.out == str(s.run_dir)
    assert "smoke" in str(s)


def test_setup_argument_beats_the_environment(synth_root, tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_DATA", str(tmp_path / "nowhere"))
    s = nb.setup(data=synth_root, profile="smoke", runs=tmp_path)
    assert s.data_root == synth_root.resolve()


def test_setup_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELIB_RUNS", str(tmp_path / "runs"))
    with pytest.raises(DataError, match="not found"):
        nb.setup(data=tmp_path / "missing", profile="smoke")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="train/"):
        nb.setup(data=tmp_path / "flat", profile="smoke")
    (tmp_path / "flat" / "train").mkdir()
    monkeypatch.setenv("FACELIB_MAX_STEPS", "lots")
    with pytest.raises(DataError, match="FACELIB_MAX_STEPS"):
        nb.setup(data=tmp_path / "flat", profile="smoke", make_synthetic=False)


def test_tables_and_dataset_figures(synth_root):
    train, val = scan_folder(synth_root / "train"), scan_folder(synth_root / "val")
    t = nb.split_table({"train": train, "val": val})
    text = str(t)
    assert "train" in text and "12" in text and "<table>" in t._repr_html_()
    assert t.rows[0][:4] == ["train", 12, 48, 336]
    assert "train/" in nb.folder_tree(synth_root / "train") and "distortion/" in nb.folder_tree(synth_root / "train")
    props = nb.image_properties(train)
    assert sum(r[-1] for r in props.rows) == len(train)
    assert "cross-photo" in nb.identity_overlap(train, val)
    fig = nb.distortion_grid_figure(train, n_photos=2)
    assert len(fig.axes) == 2 * 8
    assert len(nb.photos_per_identity_figure({"train": train, "val": val}).axes) == 2
    batch = nb.pk_batch(train, 4, 3)
    assert len(batch) == 12 and len(set(train.labels[batch])) == 4
    assert len(nb.image_grid_figure(train, [batch[:3], batch[3:6]]).axes) == 6


def test_toy_mining():
    emb, labels = nb.toy_batch(p=4, k=3)
    assert emb.shape == (12, 2)
    t = nb.mining_table(emb, labels, 0.2)
    rows = {r[0]: r for r in t.rows}
    assert rows["batch_all"][1] == 12 * 2 * 9
    for name, r in rows.items():
        assert r[2] + r[3] + r[4] == r[1], name  # hard + semi-hard + easy = all
    assert rows["semi_hard"][2] == 0 and rows["semi_hard"][4] == 0  # only semi-hard ones
    assert len(nb.mining_figure(emb, labels, 0.2).axes) == 3
    assert len(nb.difficulty_histogram_figure(emb, labels, 0.2).axes) == 3
    assert len(nb.triplet_diagram_figure(0.5).axes) == 2
    hist = nb.toy_training("batch_hard", steps=30)
    assert hist[-1]["all_active"] < hist[0]["all_active"]
    assert len(nb.toy_training_figure({"batch_hard": hist}).axes) == 2


def test_live_plot_without_a_display():
    plot = nb.LivePlot(min_interval=0.0)
    for i in range(3):
        plot.step({"loss": 1.0 / (i + 1), "active_fraction": 0.5, "pos_dist": 0.3, "neg_dist": 0.6})
    plot.epoch({"epoch": 1, "loss": 0.6, "active_fraction": 0.5, "pos_dist": 0.3, "neg_dist": 0.6, "val_top1": 0.4})
    plot.close()
    assert plot.draws >= 4 and "val top-1 0.400" in plot.fig._suptitle.get_text()
    w = nb.LivePlot(widget=True)
    w.epoch({"epoch": 1, "loss": 0.5})
    assert w.widget.value[:4] == b"\x89PNG"


def test_threshold_table():
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(0.7, 0.1, 500), rng.normal(0.2, 0.1, 500)]
    same = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    table, rules = nb.threshold_table(scores, same, fars=(0.1, 0.01))
    assert set(rules) == {"FAR <= 0.1", "FAR <= 0.01", "equal error rate", "best accuracy"}
    far = {r[0]: r[2] for r in table.rows}
    assert far["FAR <= 0.01"] <= 0.01 + 1e-9 and far["FAR <= 0.1"] <= 0.1 + 1e-9


def test_device_summary():
    from facelib.config import TrainConfig

    assert "precision" in nb.device_summary(TrainConfig(device="cpu"))


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_clean(path):
    nbj = json.loads(path.read_text())
    cells = nbj["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "first code cell must be the parameters"
    assert "DATA" in "".join(code[0]["source"]) and "PROFILE" in "".join(code[0]["source"])
    for c in code:
        src = "".join(c["source"])
        assert len(src.splitlines()) <= 15, src
        if not src.startswith("# NBVAL_CHECK_OUTPUT"):
            assert c["outputs"] == [], f"outputs left in: {src[:60]}"
            assert c.get("execution_count") is None
        for out in c["outputs"]:
            assert "image/png" not in out.get("data", {})
    assert sum(c["cell_type"] == "markdown" for c in cells) >= len(code) // 2


def test_all_five_notebooks_exist():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]
