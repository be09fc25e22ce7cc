"""Re-run the notebooks (smoke profile, synthetic data) and store their outputs, figures included.

Run after changing a notebook or the smoke profile: `.venv/bin/python notebooks/refresh_outputs.py [01 ...]`.
The stored outputs are what GitHub shows a reader; nbval compares only the cells marked
`# NBVAL_CHECK_OUTPUT` (and only checks that the others run). Machine-specific parts are removed
(execution timings, widget state, the repository path in printed text), progress bars frozen at 0% become one
line each, large images become JPEG, and the total size is checked against MAX_TOTAL_BYTES. When notebook 03
is refreshed, the smoke run folder is emptied first, so 03 lists only its own files and 04 and 05 write theirs
afresh. Then run `tests/test_notebook_numbers.py`: the prose's marked figures must still be printed.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MAX_TOTAL_BYTES = 3_000_000  # all notebooks together, so the repository stays small
LARGE_PNG = 200_000  # base64 characters: a larger PNG (a grid of photos) is stored as JPEG
JPEG_QUALITY = 80
WIDGET = "application/vnd.jupyter.widget-view+json"
PROGRESS = re.compile(r"^(?P<desc>.*?):\s+\d+%\|.*?\|\s*\d+/(?P<total>\d+) \[.*?(?P<unit>[A-Za-z]+)/s\]")
CELL_TIMEOUT_S = 2400  # per cell: 03 trains 1 (bf16) to 3 (fp32) minutes on a quiet 2-core CPU, 15+ on a shared one


def _clean_text(text: str) -> str:
    """Printed paths relative to the repository root; tqdm's carriage-return redraws reduced to the last."""
    text = text.replace(str(ROOT) + os.sep, "").replace(str(ROOT), ".")
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _progress_line(out: dict) -> dict | None:
    """A tqdm widget (frozen at its first state in a stored notebook) as one stream line, e.g. ``epoch 1/2: 120
    steps``; None when ``out`` is no progress bar."""
    match = PROGRESS.match(out.get("data", {}).get("text/plain", "")) if WIDGET in out.get("data", {}) else None
    if match is None:
        return None
    unit = match["unit"] + ("es" if match["unit"].endswith(("ch", "s")) else "s")
    return nbformat.v4.new_output("stream", name="stdout", text=f"{match['desc']}: {match['total']} {unit}\n")


def _small_image(out: dict) -> None:
    """Store a large PNG (photos, where PNG is wasteful) as JPEG, in place."""
    from PIL import Image

    png = out.get("data", {}).get("image/png")
    if png is None or len(png) < LARGE_PNG:
        return
    buffer = io.BytesIO()
    Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY)
    jpeg = base64.b64encode(buffer.getvalue()).decode()
    if len(jpeg) < len(png):
        del out["data"]["image/png"]
        out["data"]["image/jpeg"] = jpeg


def tidy(nb: nbformat.NotebookNode) -> None:
    """Strip what differs between machines and runs; number the code cells 1, 2, ... in order.

    Every cell keeps an execution count: nbval refuses a cell that has outputs but no count.
    """
    for count, cell in enumerate((c for c in nb.cells if c.cell_type == "code"), start=1):
        cell.metadata.pop("execution", None)
        cell.execution_count = count
        cell.outputs = [_progress_line(out) or out for out in cell.outputs]
        for out in cell.outputs:
            _small_image(out)
            if "execution_count" in out:
                out["execution_count"] = count
            if "metadata" in out:
                out["metadata"] = {}
            if out.get("output_type") == "stream":
                out["text"] = _clean_text(out["text"])
            elif "text/plain" in out.get("data", {}):
                out["data"]["text/plain"] = _clean_text(out["data"]["text/plain"])
    nb.metadata.pop("widgets", None)


def refresh(path: Path) -> int:
    """Execute ``path`` in place with the smoke profile; returns the written size in bytes."""
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                   resources={"metadata": {"path": str(HERE)}}).execute()
    tidy(nb)
    nbformat.write(nb, path)
    return path.stat().st_size


def empty_run_folder() -> Path:
    """Remove the smoke run folder of the synthetic set (notebook 03 retrains it; 04 and 05 rewrite the rest)."""
    run_dir = Path(os.environ.get("FACELIB_RUNS") or ROOT / "runs" / "notebook") / "smoke_synthetic"
    shutil.rmtree(run_dir, ignore_errors=True)
    return run_dir


def main(argv: list[str]) -> None:
    os.environ["FACELIB_PROFILE"] = "smoke"
    os.environ.pop("FACELIB_DATA", None)  # the committed outputs are those of the synthetic set
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not argv or "03" in argv:
        print(f"emptied {empty_run_folder()}: notebook 03 trains again", flush=True)
    for path in sorted(HERE.glob("[0-9][0-9]_*.ipynb")):
        if not argv or path.name[:2] in argv:
            print(f"refreshed {path.name}: {refresh(path) / 1e6:.2f} MB", flush=True)
    total = sum(p.stat().st_size for p in HERE.glob("[0-9][0-9]_*.ipynb"))
    print(f"all notebooks: {total / 1e6:.2f} MB (limit {MAX_TOTAL_BYTES / 1e6:.0f} MB)")
    if total > MAX_TOTAL_BYTES:
        sys.exit(f"notebooks too large: {total / 1e6:.2f} MB > {MAX_TOTAL_BYTES / 1e6:.0f} MB; lower figure sizes")


if __name__ == "__main__":
    main(sys.argv[1:])
