"""Re-run the notebooks in the smoke profile and keep outputs only in `# NBVAL_CHECK_OUTPUT` cells.

Run after changing a notebook or the smoke profile: `.venv/bin/python notebooks/refresh_outputs.py [01 ...]`.
nbval compares those cells' outputs; every other cell is committed cleared, so the repository stays small.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
CHECK = "# NBVAL_CHECK_OUTPUT"


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=900, resources={"metadata": {"path": str(HERE)}}).execute()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        if cell.source.startswith(CHECK):  # nbval treats a checked cell without execution_count as not run
            for out in cell.outputs:
                out.pop("execution_count", None)
                if "metadata" in out:
                    out["metadata"] = {}
        else:
            cell.execution_count = None
            cell.outputs = []
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)


def main(argv: list[str]) -> None:
    os.environ["FACELIB_PROFILE"] = "smoke"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for path in sorted(HERE.glob("[0-9][0-9]_*.ipynb")):
        if not argv or path.name[:2] in argv:
            refresh(path)
            print("refreshed", path.name)


if __name__ == "__main__":
    main(sys.argv[1:])
