"""Numbers that a notebook's prose quotes from its own outputs must be printed there (no silent drift).

Convention (notebooks/README.md): a figure in a markdown cell that is read off the same notebook's committed
outputs is written between two HTML comments, `<!--out-->0.359<!--/out-->`, invisible when rendered. After
`notebooks/refresh_outputs.py`, a marked figure that the new outputs no longer print fails here, so the prose
is updated with the run instead of drifting from it. Figures quoted from `benchmarks/RESULTS.md` or from other
notebooks are not marked.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MARKED = re.compile(r"<!--out-->(.*?)<!--/out-->", flags=re.S)


def _text(source: str | list[str]) -> str:
    return source if isinstance(source, str) else "".join(source)


def marked_numbers(nb: dict) -> list[str]:
    """Every marked figure in the markdown cells of one notebook (JSON as committed), in order."""
    return [m.strip() for c in nb["cells"] if c["cell_type"] == "markdown" for m in MARKED.findall(_text(c["source"]))]


def output_text(nb: dict) -> str:
    """All text the code cells printed or displayed: streams, text/plain and text/html, joined."""
    parts = []
    for c in nb["cells"]:
        for out in c.get("outputs", []) if c["cell_type"] == "code" else []:
            if out.get("output_type") == "stream":
                parts.append(_text(out["text"]))
            for key in ("text/plain", "text/html"):
                if key in out.get("data", {}):
                    parts.append(_text(out["data"][key]))
    return "\n".join(parts)


def printed(figure: str, text: str) -> bool:
    """Whether ``figure`` occurs in ``text`` as a whole token: 0.35 is not found inside 0.359 or 10.35."""
    return re.search(rf"(?<![\d.]){re.escape(figure)}(?![\d]|\.\d)", text) is not None


def drift(nb: dict) -> list[str]:
    """The marked figures that the notebook's outputs do not print."""
    text = output_text(nb)
    return [f for f in marked_numbers(nb) if not printed(f, text)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_marked_numbers_are_printed(path):
    nb = json.loads(path.read_text())
    assert not drift(nb), f"{path.name}: quoted in the prose but not in the outputs: {drift(nb)}"


def test_the_course_marks_its_figures():
    """The convention is in use where the prose reads the outputs (03, 04, 05 quote their runs)."""
    counts = {p.name[:2]: len(marked_numbers(json.loads(p.read_text()))) for p in NOTEBOOKS}
    assert all(counts[n] >= 3 for n in ("03", "04", "05")), counts
    assert sum(counts.values()) >= 25, counts


def _toy(markdown: str, printed_text: str) -> dict:
    return {"cells": [{"cell_type": "markdown", "source": markdown},
                      {"cell_type": "code", "source": "print(x)", "outputs": [
                          {"output_type": "stream", "name": "stdout", "text": [printed_text]}]}]}


def test_a_made_up_drift_fails():
    assert drift(_toy("top-1 <!--out-->0.359<!--/out--> against pixels", "top-1 0.359, pixels 0.216\n")) == []
    assert drift(_toy("top-1 <!--out-->0.359<!--/out-->", "top-1 0.361, pixels 0.216\n")) == ["0.359"]
    assert drift(_toy("<!--out-->0.35<!--/out-->", "0.359 and 10.35\n")) == ["0.35"]       # whole tokens only
    assert drift(_toy("<!--out-->76%<!--/out--> active", "2688 triplets, 76% active\n")) == []
    html = {"cells": [{"cell_type": "markdown", "source": ["a <!--out-->0.150<!--/out-->"]},
                      {"cell_type": "code", "source": "t", "outputs": [
                          {"output_type": "display_data", "data": {"text/plain": "B named 0.150"}}]}]}
    assert drift(html) == []
