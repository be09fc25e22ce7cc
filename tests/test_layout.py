"""The layout is the pipeline: data -> models -> training -> evaluation -> recognition -> notebook, no stage imports
a later one; modules stay small; every registry name is defined once and the module tables agree with it;
library messages name config fields, not CLI flags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "facelib"
# shared modules (rank 0) serve every stage; jobs wires training to evaluation; the cli may import anything
RANK = {"config": 0, "commands": 0, "errors": 0, "io": 0, "runtime": 0, "data": 1, "models": 2, "training": 3,
        "evaluation": 4, "recognition": 5, "jobs": 6, "notebook": 7, "cli": 8, "__init__": 8, "__main__": 8}
MAX_LINES = 550


def _modules() -> list[Path]:
    return sorted(PKG.rglob("*.py"))


def _name(path: Path) -> str:
    return ".".join(("facelib",) + path.relative_to(PKG).with_suffix("").parts).removesuffix(".__init__")


def _rank(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    return RANK[part]


def _imports(path: Path) -> set[str]:
    """Every facelib module ``path`` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("facelib"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names if (PKG.parent / node.module.replace(".", "/")
                                                                          / f"{a.name}.py").exists())
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("facelib"))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; write the absolute facelib path")
    return out


def test_every_module_has_a_stage():
    """A new top-level module or folder must be given its place in :data:`RANK` (the import test ranks by it)."""
    parts = {_name(p).split(".")[1] if "." in _name(p) else "__init__" for p in _modules()}
    assert parts <= set(RANK), sorted(parts - set(RANK))
    assert _rank("facelib.models.network") == 2 and _rank("facelib.training.trainer") == 3
    assert _rank("facelib.cli") == 8


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_stage_imports_a_later_one(path):
    me = _name(path)
    for other in _imports(path):
        if other == "facelib":
            continue
        assert _rank(other) <= _rank(me), f"{me} (stage {_rank(me)}) imports {other} (stage {_rank(other)})"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_no_module_over_the_size_limit(path):
    assert len(path.read_text().splitlines()) <= MAX_LINES


FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def _help_texts(tree: ast.AST) -> set[int]:
    """The CLI help texts and flag names of the config registry (arguments of ``setting(...)``)."""
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setting":
            texts = n.args[1:2] + [k.value for k in n.keywords if k.arg in ("help", "flag")]
            out.update(id(c) for t in texts for c in ast.walk(t))
    return out


def test_library_messages_name_fields_not_flags():
    """Strings outside cli.py (docstrings and the registry's help texts aside) never name a flag: a notebook
    user sets pretrained=False, not --no-pretrained. The CLI adds the flags (``FacelibError.fields``)."""
    found = []
    for path in _modules():
        if path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text())
        docs = _docstrings(tree) | _help_texts(tree)
        found += [f"{path.name}:{n.lineno} {n.value[:60]!r}" for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
                  and FLAG.search(n.value)]
    assert not found


def test_cli_adds_the_flags_of_the_fields_an_error_names(capsys, monkeypatch):
    import torch

    from facelib.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same error on a machine with a GPU
    assert main(["test", "--device", "cuda:7", "--checkpoint", "none.pth"]) == 2
    err = capsys.readouterr().err
    assert "device='cuda:7'" in err and "no CUDA GPU" in err and "[flags: --device]" in err


def test_each_registry_name_is_defined_once_and_the_tables_agree():
    import torch

    from facelib import cli, config
    from facelib.evaluation import protocols, results
    from facelib.notebook import widgets  # noqa: F401 (imports the choices it offers)
    from facelib.training import distances

    # each miner name maps to the miner that behaves as that name says: tests/training/test_miners.py
    assert tuple(protocols.PROTOCOL_RUNNERS) == config.PROTOCOL_NAMES == tuple(results.PROTOCOL_DESCRIPTIONS)
    assert set(config.PROTOCOLS) - {"auto"} <= set(config.PROTOCOL_NAMES)
    assert set(config.ENROLL_MODES) <= set(config.GALLERY_MODES)
    for name in config.DISTANCES:  # every distance a miner and the loss accept
        assert distances.pairwise_distances(torch.eye(3), name).shape == (3, 3)
    parser = cli.build_parser()
    choices = {(cmd, a.dest): tuple(a.choices) for cmd, p in cli.command_parsers(parser).items()
               for a in p._actions if a.choices is not None}
    assert choices[("train", "miner")] == config.MINERS
    assert choices[("train", "distance")] == config.DISTANCES
    assert choices[("train", "loss")] == tuple(config.LOSSES)  # = the losses registry: tests/training/test_losses.py
    assert choices[("train", "distill")] == config.DISTILL_FORMS
    assert choices[("test", "protocol")] == config.PROTOCOLS
    assert choices[("test", "gallery")] == config.GALLERY_MODES
    assert choices[("enroll", "mode")] == config.ENROLL_MODES


def test_one_definition_of_each_shared_helper():
    """The precision labels, the memory-format rule, the numpy view and the checkpoint default live once."""
    texts = {p: p.read_text() for p in _modules()}
    for needle, home in (("bf16 autocast", "runtime.py"), ("channels_last", "runtime.py"),
                         ("def _np(", None), ('"tb_model.pth"', "config.py"), ("def resolve_device", "runtime.py")):
        where = sorted(p.name for p, t in texts.items() if needle in t and p.parent.name != "notebook")
        assert where == ([home] if home else []), (needle, where)


def test_public_api_is_importable_from_the_package_without_side_effects():
    import subprocess
    import sys

    code = ("import sys, facelib; assert 'torch' not in sys.modules, 'import facelib imported torch'; "
            "from facelib import TrainConfig, scan_folder, train, run_test, get_miner, EmbeddingSet; "
            "import facelib.jobs, facelib.config, facelib.data.folders, facelib.evaluation.report; "
            "assert train is facelib.jobs.train and TrainConfig is facelib.config.TrainConfig; "
            "assert scan_folder is facelib.data.folders.scan_folder and run_test is facelib.evaluation.report.run_test")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent)
    assert r.returncode == 0, r.stderr
    import facelib

    for name in facelib.__all__:
        assert getattr(facelib, name) is not None


def test_architecture_names_every_module():
    text = (PKG.parent / "docs" / "ARCHITECTURE.md").read_text()
    missing = [_name(p) for p in _modules()
               if not (p.name == "__init__.py" and len(p.read_text().splitlines()) <= 3)
               and f"`{_name(p)}`" not in text and f"`{_name(p)}` (" not in text]
    assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"


def test_tests_mirror_the_package():
    """Every stage has a test folder, and each test module of one names a module of that stage."""
    tests = PKG.parent / "tests"
    for stage in ("data", "models", "training", "evaluation", "recognition", "notebook"):
        names = {p.stem for p in (PKG / stage).glob("*.py")}
        for t in (tests / stage).glob("test_*.py"):
            assert t.stem.removeprefix("test_") in names | {"learning"}, f"{t} mirrors no module of facelib/{stage}"
