"""Packaging by role: a library gives torch as a range, the tested versions live in constraints.txt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_torch_is_a_range_and_constraints_pin_the_tested_build():
    deps = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0]: d for d in _project()["dependencies"]}
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split("\n")
                if line and not line.startswith("#"))
    for name in ("torch", "torchvision"):
        assert "==" not in deps[name] and ">=" in deps[name]
        assert name in pins
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()


def test_notebooks_extra_is_separate_from_dev():
    extras = _project()["optional-dependencies"]
    names = {re.split(r"[<>=]", d)[0] for d in extras["notebooks"]}
    assert {"jupyterlab", "ipykernel", "ipywidgets"} <= names
    assert "facelib[notebooks]" in extras["dev"]
    assert not any(d.startswith("jupyterlab") for d in _project()["dependencies"])
