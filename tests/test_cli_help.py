"""The CLI's flags, defaults and help text are a contract: ``--help`` of every command is compared with a
committed snapshot in ``tests/snapshots/``.

A change to the CLI that is meant shows up here as a diff; regenerate the snapshots on purpose with

    FACELIB_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_cli_help.py

and commit them beside the change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facelib.cli import legacy_main, main

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
COMMANDS = ("train", "test", "embed", "enroll", "identify", "export", "align", "distort", "synth", "demo")
CASES = {"facelib": ["--help"], **{cmd: [cmd, "--help"] for cmd in COMMANDS}}
LEGACY = ("train", "test")


def _help(call, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps at the terminal width
    with pytest.raises(SystemExit) as e:
        call()
    assert e.value.code == 0
    return capsys.readouterr().out


def _check(name: str, text: str) -> None:
    path = SNAPSHOTS / (name if name.endswith(".json") else f"help_{name}.txt")
    if os.environ.get("FACELIB_UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert path.exists(), f"no snapshot {path.name}: run with FACELIB_UPDATE_SNAPSHOTS=1"
    assert text == path.read_text(), f"`{name} --help` changed; if on purpose, regenerate (see module docstring)"


@pytest.mark.parametrize("name", sorted(CASES))
def test_help_matches_snapshot(name, capsys, monkeypatch):
    _check(name, _help(lambda: main(CASES[name]), capsys, monkeypatch))


@pytest.mark.parametrize("command", LEGACY)
def test_legacy_script_help_matches_snapshot(command, capsys, monkeypatch):
    _check(f"{command}.py", _help(lambda: legacy_main(command, ["--help"]), capsys, monkeypatch))


REQUIRED = {"embed": ["--data", "d", "--out", "o"], "enroll": ["--data", "d", "--out", "o"],
            "identify": ["--gallery", "g", "p.jpg"], "export": ["--out", "o"], "align": ["s", "o"],
            "distort": ["--src", "s", "--out", "o"]}


def _jsonable(d: dict) -> str:
    import json

    return json.dumps({k: v for k, v in sorted(d.items()) if not callable(v)}, indent=1, default=str) + "\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_parsed_defaults_match_snapshot(command):
    """What each command receives when only its required arguments are given."""
    from facelib.cli import build_parser

    args = build_parser().parse_args([command, *REQUIRED.get(command, [])])
    _check(f"{command}.defaults.json", _jsonable(vars(args)))


@pytest.mark.parametrize("recipe", ["default", "original"])
def test_train_config_from_default_flags_matches_snapshot(recipe):
    """The TrainConfig that `facelib train` builds from its defaults (every field, not only the flags)."""
    from dataclasses import asdict

    from facelib.cli import build_parser, train_config_from_args

    cfg = train_config_from_args(build_parser().parse_args(["train", "--recipe", recipe]))
    _check(f"train.{recipe}.config.json", _jsonable(asdict(cfg)))
