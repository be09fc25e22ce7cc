"""benchmarks/recipe_vs_seed.py's --curve-every: one schedule over --steps, a curve point every N steps."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import recipe_vs_seed


def test_curve_every_scores_a_point_every_n_steps_of_one_schedule(tmp_path, monkeypatch):
    import common

    monkeypatch.setattr(common, "write_json", lambda name, payload: (tmp_path / f"{name}.json").write_text(
        json.dumps(payload, default=str)) or tmp_path / f"{name}.json")
    recipe_vs_seed.main(["--synthetic", "8,3,32,0", "--steps", "4", "--curve-every", "2", "--image-size", "32",
                         "--recipes", "default,p=4,k=2,embedding_dim=16", "--no-baselines", "--workers", "0",
                         "--json", "curve"])
    run = json.loads((tmp_path / "curve.json").read_text())["runs"][0]
    assert [c["steps"] for c in run["curve"]] == [2, 4] and run["steps"] == 4
    assert all(0.0 <= c["top1_all"] <= 1.0 and c["per_distortion"] is not None for c in run["curve"])
    assert [h["steps"] for h in run["history"]] == [2, 2]  # two epochs of 2 steps: one 4-step schedule


@pytest.mark.parametrize("argv, message", [(["--curve-every", "2"], "needs --steps"),
                                           (["--steps", "5", "--curve-every", "2"], "must divide")])
def test_curve_every_refuses_what_it_cannot_do(argv, message):
    with pytest.raises(SystemExit, match=message):
        recipe_vs_seed.main(["--synthetic", "8,3,32,0", "--no-baselines", *argv])
