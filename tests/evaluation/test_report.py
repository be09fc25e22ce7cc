"""facelib.evaluation.report: the test job's files, the verification primary, the decision threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facelib.cli import main
from facelib.config import EvalConfig
from facelib.errors import ConfigError
from facelib.evaluation.report import decision_threshold, run_test
from tests.conftest import make_folder, write_image


def test_decision_threshold_meets_the_target_far():
    from facelib.evaluation.protocols import verification_protocol
    from tests.evaluation.test_protocols import random_set

    v = verification_protocol(random_set(n_ids=30, seed=3), fars=(0.1, 0.05))
    t = decision_threshold(v, 0.05)
    accept = v.scores >= t["value"]
    assert t["far"] == pytest.approx(accept[~v.same].mean()) and t["far"] <= 0.05
    assert t["tar"] == pytest.approx(accept[v.same].mean()) and t["target_far"] == 0.05
    assert t["value"] == v.threshold_at_far[0.05]


def test_verification_primary_writes_its_figures(synth_root, tiny_checkpoint, tmp_path):
    out = tmp_path / "v"
    lines: list[str] = []
    cfg = EvalConfig(data=str(synth_root / "val"), train_data=None, checkpoint=str(tiny_checkpoint),
                     protocol="verification", out=str(out), workers=0, target_far=0.1)
    rep = run_test(cfg, print_report=False, log=lines.append)
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocol"] == "verification" and m["report_protocol"] == "cross-photo"
    assert 0 <= m["roc_auc"] <= 1 and "tar_at_far_1e-1" in m and "top1" not in m
    assert m["threshold"]["target_far"] == 0.1 and m["threshold"]["far"] <= 0.1
    assert m["threshold"]["value"] == m["protocols"]["verification"]["threshold_at_far_1e-1"]
    assert m["pixel_baseline"]["protocol"] == "verification" and len(m["model"]["fingerprint"]) == 16
    assert any(line.startswith("verification: AUC") and "<- primary" in line for line in lines)
    assert any(line.startswith("decision threshold") for line in lines)
    for name in ("classification_report", "confusion_matrix", "roc", "metrics"):
        assert rep.files[name].is_file()


def test_classification_report_lists_only_identities_with_probes(tiny_checkpoint, tmp_path):
    data = make_folder(tmp_path / "val", identities=3, photos=2, distortions=("blurred",))
    for i in range(5):  # single-photo identities: gallery distractors, never probes
        write_image(tmp_path / "val" / f"solo_{i}" / "a.jpg", seed=500 + i)
    cfg = EvalConfig(data=str(data), train_data=None, checkpoint=str(tiny_checkpoint), out=str(tmp_path / "r"),
                     workers=0, baseline=False)
    rep = run_test(cfg, print_report=False, log=lambda s: None)
    rows = [ln.split()[0] for ln in rep.files["classification_report"].read_text().splitlines()
            if ln.strip() and ln.split()[0].startswith(("id_", "solo_"))]
    assert rows == ["id_0", "id_1", "id_2"]
    assert rep.primary.n_gallery_identities == 8 and rep.primary.probe_identities == rows
    assert rep.metrics["protocols"]["cross-photo"]["n_distractor_identities"] == 5
    r = rep.metrics["retrieval"]["model"]  # mAP / Recall@K next to the top-1 (no pixel row: baseline off)
    assert set(rep.metrics["retrieval"]) == {"model"} and r["n_gallery"] == 11 and r["n_queries"] == 12
    assert 0 < r["map"] <= 1 and r["recall_at_1"] <= r["recall_at_5"] <= r["recall_at_10"]
    lo, hi = rep.metrics["top1_interval"]  # the headline top-1 with its bootstrap interval
    assert lo <= rep.metrics["top1"] <= hi and rep.metrics["top1"] == rep.primary.top1


def test_target_far_is_checked(synth_root, capsys):
    with pytest.raises(ConfigError, match="target_far"):
        EvalConfig(target_far=0)
    assert main(["test", "--data", str(synth_root / "val"), "--target-far", "1.5"]) == 2
    assert "target_far must be in (0, 1)" in capsys.readouterr().err


def test_test_command_default_threshold(synth_root, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "t"
    assert main(["test", "--data", str(synth_root / "val"), "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                 "--workers", "0", "--no-baseline", "--quiet-report", "--train-data", str(tmp_path / "none")]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["threshold"]["target_far"] == 0.01 and np.isfinite(m["threshold"]["value"])
    assert m["protocols"]["verification"]["threshold_at_far_1e-2"] == m["threshold"]["value"]
