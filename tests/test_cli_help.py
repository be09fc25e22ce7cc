"""The CLI's help, tested by meaning, not byte for byte (argparse's text changes between Python versions):
every config field of a command has its flag, each flag's default is the field's and each choice list is its
registry's. The defaults themselves are pinned once, in ``tests/snapshots/defaults.json``
(``tests/test_config.py``)."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import types
import typing

import pytest

from facelib import config
from facelib.cli import build_parser, command_parsers, legacy_main, main
from facelib.commands import COMMAND_CONFIGS

CONFIGS = COMMAND_CONFIGS  # each command's config dataclass
# the flags that set no config field (the recipe picks the base config; the report switch is the test job's)
NOT_FIELDS = {("train", "recipe"), ("test", "quiet_report")}


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


def registry_mismatches(command: str, parser: argparse.ArgumentParser, cls: type) -> list[str]:
    """Every way ``parser`` disagrees with the registry of ``cls``: a field without its flag, a flag that sets no
    field, a default or a choice list that is not the field's."""
    out = []
    by_dest = {a.dest: a for a in _actions(parser)}
    for f in dataclasses.fields(cls):
        a, m = by_dest.pop(f.name, None), f.metadata
        if a is None:
            out.append(f"{command}: field {f.name} has no flag")
            continue
        if f.default is dataclasses.MISSING:
            if not (a.required or not a.option_strings):
                out.append(f"{command}: {f.name} has no default, its flag must be required")
        else:
            want = None if m["cli"] == "if_given" or m["kind"] == "append" else f.default
            if a.default != want:
                out.append(f"{command}: {f.name} flag default {a.default!r}, field default {want!r}")
        got = tuple(a.choices) if a.choices is not None else None
        if got != (tuple(m["choices"]) if m["choices"] is not None else None):
            out.append(f"{command}: {f.name} flag choices {got}, registry {m['choices']}")
    out += [f"{command}: flag {d} sets no {cls.__name__} field" for d in by_dest
            if (command, d) not in NOT_FIELDS and d != "func"]
    return out


@pytest.mark.parametrize("command", sorted(CONFIGS))
def test_every_field_has_its_flag_default_and_choices(command):
    assert registry_mismatches(command, command_parsers(build_parser())[command], CONFIGS[command]) == []


@pytest.mark.parametrize("command", sorted(CONFIGS))
def test_the_check_reports_a_lost_flag_a_drifted_default_and_drifted_choices(command):
    """The check above can fail: a parser copy with one flag removed and, where the command has them, one
    default and one choice list changed."""
    parser = copy.deepcopy(command_parsers(build_parser())[command])
    names = {f.name for f in dataclasses.fields(CONFIGS[command])}
    flags = [a for a in _actions(parser) if a.dest in names and a.option_strings]
    lost = flags[0]
    chosen = next((a for a in flags[1:] if a.choices is not None), None)
    moved = next((a for a in flags[1:] if a is not chosen and isinstance(a.default, (int, float, str))
                  and not isinstance(a.default, bool)), None)
    parser._actions.remove(lost)
    want = [f"{command}: field {lost.dest} has no flag"]
    if moved is not None:
        moved.default = "drifted"
        want.append(f"{command}: {moved.dest} flag default 'drifted'")
    if chosen is not None:
        chosen.choices = tuple(chosen.choices)[:-1]
        want.append(f"{command}: {chosen.dest} flag choices")
    found = registry_mismatches(command, parser, CONFIGS[command])
    assert len(found) == len(want) and all(any(s.startswith(w) for s in found) for w in want), found


@pytest.mark.parametrize("command", sorted(CONFIGS))
def test_legacy_scripts_offer_the_same_flags(command):
    """``python train.py`` / ``python test.py``: the same flags, defaults and choices as ``facelib train/test``."""
    def table(p):
        return {a.dest: (tuple(a.option_strings), a.default, a.choices) for a in _actions(p) if a.dest != "func"}

    captured = {}

    def fake_parse(self, args=None, namespace=None):
        captured["parser"] = self
        raise SystemExit(0)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_args", fake_parse)
        with pytest.raises(SystemExit):
            legacy_main(command, [])
    assert table(captured["parser"]) == table(command_parsers(build_parser())[command])


def test_help_runs_for_every_command_and_names_every_flag(capsys):
    """``--help`` prints, and every flag of the parser is in its text (the text's layout is argparse's)."""
    parsers = command_parsers(build_parser())
    for command, parser in [(None, build_parser()), *parsers.items()]:
        with pytest.raises(SystemExit) as e:
            main(([command] if command else []) + ["--help"])
        assert e.value.code == 0
        text = capsys.readouterr().out
        for a in _actions(parser):
            for flag in a.option_strings:
                assert flag in text, (command, flag)


def test_every_command_has_its_config():
    assert set(command_parsers(build_parser())) == set(CONFIGS)


def test_the_flags_that_set_no_field_read_the_registry_too():
    recipe = next(a for a in _actions(command_parsers(build_parser())["train"]) if a.dest == "recipe")
    assert tuple(recipe.choices) == config.RECIPES and recipe.default == config.RECIPES[0]
    quiet = next(a for a in _actions(command_parsers(build_parser())["test"]) if a.dest == "quiet_report")
    assert quiet.default is False


def test_no_literal_default_or_choice_list_in_the_cli():
    """Every default and choice list of ``facelib.cli`` is read from the registry: no ``add_argument`` call
    names a literal one (a hand-written ``default=64`` or ``choices=("hog", "cnn")`` fails here)."""
    import ast
    import inspect

    from facelib import cli

    found = []
    for node in ast.walk(ast.parse(inspect.getsource(cli))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("add_argument", "set_defaults"):
            for k in node.keywords:
                if k.arg in ("default", "choices") and isinstance(k.value, (ast.Constant, ast.Tuple, ast.List)) \
                        and not (isinstance(k.value, ast.Constant) and k.value.value is None):
                    found.append(f"line {node.lineno}: {k.arg}={ast.unparse(k.value)}")
    assert not found, found


def test_parsed_defaults_are_the_configs_defaults():
    """Each command given only its required arguments runs with its config's defaults."""
    from facelib.cli import COMMANDS, config_from_args

    required = {"embed": ["--data", "d", "--out", "o"], "enroll": ["--data", "d", "--out", "o"],
                "identify": ["--gallery", "g", "p.jpg"], "export": ["--out", "o"], "align": ["s", "o"],
                "distort": ["--src", "s", "--out", "o"]}
    given = {"data": "d", "out": "o", "gallery": "g", "paths": ["p.jpg"], "src": "s"}
    for command, cls in CONFIGS.items():
        args = build_parser().parse_args([command, *required.get(command, [])])
        make = COMMANDS[command].make_config
        got = make(args) if make else config_from_args(cls, args)
        names = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        assert got == cls(**{n: given[n] for n in names}), command


def test_hints_are_known_types():
    """Each field's type is one the flags can parse (a flag of an unknown type would take the text as is)."""
    for cls in CONFIGS.values():
        for name, hint in typing.get_type_hints(cls).items():
            union = typing.get_origin(hint) in (typing.Union, types.UnionType)
            args = set(typing.get_args(hint) if union else (hint,)) - {type(None)}
            assert args <= {int, float, str, bool, list[str], tuple[str, ...]}, (cls.__name__, name, hint)
