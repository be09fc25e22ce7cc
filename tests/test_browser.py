"""Notebook 03 in a real browser: JupyterLab + headless Chromium (Playwright), widget -> config -> training.

Starts JupyterLab on a free localhost port (token auth, no browser) over a temporary copy
of notebook 03, runs the cells up to the hyperparameter panel, sets epochs = 1 and the
miner = batch_all in the panel, presses Train and checks that the kernel trained with those
values (the config line the callback prints) and that the live plot appeared. A
screenshot is saved to ``artifacts/browser/notebook03.png``. Smoke profile with
``FACELIB_MAX_STEPS=2`` so training takes seconds; runs go to a temporary folder.

Skipped without Chromium (``/usr/bin/chromium``; Debian package ``chromium``) or the
``playwright`` Python package. Every wait has a timeout; the server is killed at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "03_training.ipynb"
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]
PANEL_CELL = "TrainPanel(cfg"  # the code cell that displays the panel; run every cell up to it
TOKEN = "facelib-browser-test"


def _chromium() -> str | None:
    for cand in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and os.path.exists(cand):
            return cand
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, deadline: float, proc: subprocess.Popen) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"jupyter lab did not answer at {url}")


def _cells_to_run(path: Path) -> int:
    import json

    cells = json.loads(path.read_text())["cells"]
    for i, c in enumerate(cells):
        if c["cell_type"] == "code" and PANEL_CELL in "".join(c["source"]):
            return i + 1
    raise AssertionError(f"no cell with {PANEL_CELL!r} in {path}")


@pytest.fixture
def jupyter_lab(tmp_path):
    """(base url, server log path) of a JupyterLab serving a temp copy of notebook 03."""
    if _chromium() is None:
        pytest.skip("Chromium not found (install the Debian package: apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    port = _free_port()
    env = dict(os.environ)
    env.update(FACELIB_PROFILE="smoke", FACELIB_MAX_STEPS="2", FACELIB_RUNS=str(tmp_path / "runs"),
               HF_HUB_OFFLINE="1", JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "jrun"), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "jset"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "jws"), PYTHONUNBUFFERED="1")
    env.pop("FACELIB_DATA", None)
    log = tmp_path / "jupyter.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={work}", "--ServerApp.open_browser=False",
           "--ServerApp.allow_root=True", "--LabApp.news_url=",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_http(f"{base}/api/status?token={TOKEN}", time.monotonic() + 60, proc)
        except (RuntimeError, TimeoutError) as e:
            raise RuntimeError(f"{e}; server log:\n{log.read_text(errors='replace')[-3000:]}") from None
        yield base, log
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def test_notebook03_panel_drives_training(jupyter_lab):
    from playwright.sync_api import sync_playwright

    base, log = jupyter_lab
    n_cells = _cells_to_run(NOTEBOOK)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "notebook03.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS, timeout=60_000)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(60_000)
        try:
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={TOKEN}", timeout=90_000)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=90_000)
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
                state="attached", timeout=90_000)
            page.locator(".jp-Notebook .jp-Cell").first.click()
            for _ in range(n_cells):
                page.keyboard.press("Shift+Enter")
                time.sleep(0.15)
            train = page.locator("button.jupyter-button", has_text="Train")
            train.wait_for(state="visible", timeout=120_000)

            epochs = page.locator(".widget-inline-hbox", has=page.locator("label", has_text="epochs")).locator("input")
            epochs.fill("1")
            epochs.press("Enter")
            miner = page.locator(".widget-inline-hbox", has=page.locator("label", has_text="miner")).locator("select")
            miner.select_option("batch_all")
            time.sleep(1.0)  # let the widget state reach the kernel before the click
            train.click()

            output = page.locator(".widget-output")
            output.get_by_text("config:", exact=False).first.wait_for(timeout=60_000)
            line = output.get_by_text("config:", exact=False).first.inner_text()
            assert "epochs=1" in line and "miner=batch_all" in line, line
            output.get_by_text("trained 1 epochs", exact=False).first.wait_for(timeout=150_000)
            plot = output.locator("img")
            plot.first.wait_for(state="visible", timeout=30_000)
            assert plot.first.evaluate("img => img.naturalWidth") > 100
            assert page.locator(".widget-html", has_text="done").count() >= 1
        finally:
            try:
                page.screenshot(path=str(shot), full_page=True, timeout=30_000)
            except Exception as e:  # noqa: BLE001 - a failed screenshot must not hide the real failure
                print(f"screenshot failed: {e}")
            browser.close()
    assert shot.is_file()
    print(f"screenshot: {shot}; server log: {log}")
