"""Citations of the lab log (docs/lab-notes.md) point at sections that exist and still hold."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTES = ROOT / "docs" / "lab-notes.md"
SUPERSEDED = {"1", "2"}  # whole sections the notes' header lists as superseded by section 0
CITATION = re.compile(r"lab notes ((?:§?\d+(?:\.\d+)?b?(?:, | and )?)+)")


def _sections() -> set[str]:
    heads = re.findall(r"^#{2,3} (\d+(?:\.\d+)?b?)[. ]", NOTES.read_text(), flags=re.M)
    return set(heads)


def _citing_files() -> list[Path]:
    files = [ROOT / "README.md", *(ROOT / "facelib").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py"),
             *(ROOT / "tests").rglob("*.py"), *(ROOT / "notebooks").glob("*.ipynb"), ROOT / "notebooks" / "README.md"]
    return [p for p in files if p.name != Path(__file__).name]


def cited_sections(text: str) -> list[str]:
    """``"lab notes 9.7, 9.12"`` -> ``["9.7", "9.12"]``."""
    return [n.lstrip("§") for m in CITATION.finditer(text) for n in re.split(r", | and ", m.group(1)) if n]


def test_the_citation_reader_reads_lists():
    assert cited_sections("(lab notes 9.7, 9.12) and lab notes 0.1 and 0.2; lab notes 9.5b") == [
        "9.7", "9.12", "0.1", "0.2", "9.5b"]


def test_every_cited_section_exists_and_is_not_superseded():
    sections = _sections()
    assert {"0.7", "9.7", "9.10", "10"} <= sections  # the reader finds the headings
    bad = []
    for path in _citing_files():
        for n in cited_sections(path.read_text()):
            if n not in sections or n in SUPERSEDED:
                bad.append(f"{path.relative_to(ROOT)}: lab notes {n}")
    assert bad == []


def test_no_citation_of_the_old_log_name():
    """The log was benchmarks/RESULTS.md; that file is now the guide, without numbered sections."""
    old = re.compile(r"RESULTS(?:\.md)?`?,? (?:sections? )?\d")
    bad = [str(p.relative_to(ROOT)) for p in _citing_files() if old.search(p.read_text())]
    assert bad == []
