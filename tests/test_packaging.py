"""Packaging by role: a library gives torch as a range, the tested versions live in constraints.txt; extras by
role, each requirement written once; the version written once; every imported package declared; ruff run by
`make lint` and CI."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]
# import name -> distribution, where they differ by more than `_` against `-` and case
IMPORT_TO_DIST = {"PIL": "pillow", "sklearn": "scikit-learn", "dlib": "dlib-bin", "faiss": "faiss-cpu",
                  "cv2": "opencv-python", "yaml": "pyyaml"}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _project() -> dict:
    return _pyproject()["project"]


def _name(requirement: str) -> str:
    """'Foo_Bar[x]>=1.0' -> 'foo-bar' (PEP 503 normalised, extras and versions dropped)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]).lower()


def _self_extras(requirements: list[str]) -> set[str]:
    """The extras a list pulls in by naming facelib itself: ['facelib[a,b]'] -> {'a', 'b'}."""
    return {e.strip() for r in requirements if _name(r) == "facelib" for e in r.split("[")[1].rstrip("]").split(",")}


def test_torch_is_a_range_and_constraints_pin_the_tested_build():
    deps = {_name(d): d for d in _project()["dependencies"]}
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split("\n")
                if line and not line.startswith("#"))
    for name in ("torch", "torchvision"):
        assert "==" not in deps[name] and ">=" in deps[name]
        assert name in pins
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()
    # the file says what it pins: every pinned name is named in its comments
    comments = " ".join(line for line in (ROOT / "constraints.txt").read_text().split("\n") if line.startswith("#"))
    assert all(name in comments for name in pins), (sorted(pins), comments)


def test_notebooks_extra_is_separate_from_dev():
    extras = _project()["optional-dependencies"]
    names = {_name(d) for d in extras["notebooks"]}
    assert {"jupyterlab", "ipykernel", "ipywidgets"} <= names
    assert not any(d.startswith("jupyterlab") for d in _project()["dependencies"])


def test_extras_by_role_each_requirement_written_once():
    extras = _project()["optional-dependencies"]
    # test: what `make test` needs, every optional backend it tests included; dev: test + the linter
    assert {"notebooks", "align", "faiss", "onnx"} <= _self_extras(extras["test"])
    assert {"pytest", "nbval"} <= {_name(d) for d in extras["test"]}
    assert _self_extras(extras["dev"]) == {"test"} and "ruff" in {_name(d) for d in extras["dev"]}
    assert extras["peers"] == ["facelib[align]"]  # the same packages as align, by reference
    seen: dict[str, str] = {}
    for extra, reqs in extras.items():
        for r in reqs:
            name = _name(r)
            if name != "facelib":
                assert name not in seen, f"{name} is listed in both [{seen[name]}] and [{extra}]"
                seen[name] = extra
    assert not set(seen) & {_name(d) for d in _project()["dependencies"]}
    # `make venv` installs dev, so `make test` and `make lint` find everything
    assert '-e ".[dev]"' in (ROOT / "Makefile").read_text()


def test_version_is_written_once_and_cli_reports_it(capsys):
    import facelib
    from facelib.cli import build_parser

    meta = _pyproject()
    assert "version" not in meta["project"] and "version" in meta["project"]["dynamic"]
    assert meta["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "facelib.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", facelib.__version__)
    written = [p for p in [ROOT / "pyproject.toml", *(ROOT / "facelib").rglob("*.py")]
               if f'"{facelib.__version__}"' in p.read_text()]
    assert written == [ROOT / "facelib" / "__init__.py"]
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"facelib {facelib.__version__}\n"


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """Top-level third-party names a module imports: (all of them, those imported when the module is imported)."""
    tree = ast.parse(path.read_text())

    def names(nodes) -> set[str]:
        out = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                out |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                out.add(node.module.split(".")[0])
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "find_spec" and node.args
                  and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                out.add(node.args[0].value.split(".")[0])  # an import checked by name (the model-file packages)
        return {n for n in out if n != "facelib" and n not in sys.stdlib_module_names}

    eager = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    return names(ast.walk(tree)), names(eager)


def test_every_imported_package_is_declared():
    project = _project()
    core = {_name(d) for d in project["dependencies"]}
    extras = {k: {_name(d) for d in v} for k, v in project["optional-dependencies"].items()}
    declared = core.union(*extras.values())
    missing, eager_optional = [], []
    for path in sorted((ROOT / "facelib").rglob("*.py")):
        every, eager = _imports(path)
        rel = path.relative_to(ROOT).as_posix()
        for mod in sorted(every):
            if _name(IMPORT_TO_DIST.get(mod, mod)) not in declared:
                missing.append(f"{rel}: {mod}")
        # imported with the module: the base install has it (facelib.notebook: the notebooks extra does)
        allowed = core | extras["notebooks"] if rel.startswith("facelib/notebook/") else core
        eager_optional += [f"{rel}: {m}" for m in sorted(eager) if _name(IMPORT_TO_DIST.get(m, m)) not in allowed]
    assert not missing, f"imported but declared nowhere in pyproject.toml: {missing}"
    assert not eager_optional, f"an optional package imported at module level: {eager_optional}"


def test_ruff_is_configured_and_run_by_make_lint_and_ci():
    ruff = _pyproject()["tool"]["ruff"]
    assert ruff["line-length"] == 120 and ruff["target-version"] == "py310"
    assert {"E", "F", "W", "I", "B", "RUF100"} <= set(ruff["lint"]["select"])  # RUF100: every noqa silences a finding
    assert re.search(r"^lint: .*\n\t\$\(BIN\)/ruff check \.$", (ROOT / "Makefile").read_text(), re.M)
    ci = (ROOT / ".ci" / "run").read_text().split("\n")
    assert "make lint" in ci and "make test" in ci
    pins = (ROOT / "constraints.txt").read_text()
    assert re.search(r"^ruff==", pins, re.M)
