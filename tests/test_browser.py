"""The course in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Starts JupyterLab on 127.0.0.1 (free port, no token) over a copy of the notebooks,
opens the fuse-matrix lesson, runs all cells, checks that figures rendered and the
fuse explorer widget is there, changes one of its controls and checks that its
output changes, saves a screenshot, and shuts the server down.

Traps handled (seen with JupyterLab 4.6): cells outside the viewport are not
"visible" (windowing), so we wait for elements *attached* and scroll them into
view; the kernel indicator reads idle before the kernel's websocket is connected,
so we wait for the session to be ready and the kernel connected and idle, await
``kernel.info``, then send run-all without awaiting its promise.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
LESSON = "03_fuse_matrix.ipynb"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")

if not Path(CHROMIUM).exists():  # CI installs Debian's chromium; say clearly when it is missing
    pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (the real-browser test needs it)", pytrace=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url + "api/status", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server over a copy of the notebooks (so runs never touch the repo's files)."""
    notebook = ROOT / "notebooks" / LESSON
    if not notebook.exists():
        pytest.fail(f"{notebook} does not exist", pytrace=False)
    work = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", work / "notebooks")
    settings = work / "settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port = free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), HF_HUB_OFFLINE="1",
               JUPYTER_CONFIG_DIR=str(work / "config"), PYTHONPATH=str(ROOT))
    env.pop("MPLBACKEND", None)  # let the kernel use the inline backend
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
        "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={work / 'notebooks'}", "--allow-root",
    ]
    log = open(work / "lab.log", "w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_server(url, process)
        yield url, work
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


KERNEL_READY_JS = """
async () => {
  const app = window.jupyterapp;
  const panel = app.shell.currentWidget;
  if (!panel || !panel.sessionContext) return false;
  await panel.sessionContext.ready;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  if (!kernel || kernel.connectionStatus !== 'connected' || kernel.status !== 'idle') return false;
  await kernel.info;
  return true;
}
"""

RUN_STATE_JS = """
() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const done = cells.filter(c => c.model.executionCount !== null).length;
  const errors = cells.filter(c => c.model.outputs.toJSON().some(o => o.output_type === 'error')).length;
  const kernel = panel.sessionContext.session.kernel;
  return {total: cells.length, done, errors, status: kernel.status};
}
"""


def open_and_run(page, url: str, timeout: float = 400) -> dict:
    page.goto(f"{url}lab/tree/{LESSON}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=60_000)
    deadline = time.time() + 120
    while not page.evaluate(KERNEL_READY_JS):
        if time.time() > deadline:
            raise TimeoutError("the notebook's kernel never became connected and idle")
        time.sleep(0.5)
    # Do not await the command's promise: it resolves only when every cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    deadline = time.time() + timeout
    state = page.evaluate(RUN_STATE_JS)
    while not (state["done"] == state["total"] and state["status"] == "idle"):
        if state["errors"] or time.time() > deadline:
            break
        time.sleep(1)
        state = page.evaluate(RUN_STATE_JS)
    return state


def widget_text(handle) -> str:
    return handle.evaluate("el => el.innerText")


def test_fuse_lesson_runs_in_a_real_browser(lab, tmp_path):
    url, work = lab
    shots = ROOT / "assets" / "screenshots"
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            state = open_and_run(page, url)
            assert state["errors"] == 0, f"a cell raised in the browser: {state}"
            assert state["done"] == state["total"] > 0, f"not every cell ran: {state}"

            images = page.locator(".jp-OutputArea-output img")
            images.first.wait_for(state="attached", timeout=30_000)
            assert images.count() >= 2, "expected the lesson's figures to render as images"
            first = images.first
            first.scroll_into_view_if_needed()
            assert first.evaluate("img => img.naturalWidth > 100 && img.complete")

            widget = page.locator(".jupyter-widgets.widget-vbox").first
            widget.wait_for(state="attached", timeout=60_000)
            widget.scroll_into_view_if_needed()
            output = widget.locator(".widget-output").first
            output.wait_for(state="attached", timeout=30_000)
            before = widget_text(output)
            assert before.strip(), "the fuse explorer shows nothing before any change"

            select = widget.locator("select")
            slider = widget.locator(".widget-slider .slider, .widget-hslider .slider")
            if select.count():
                dropdown = select.last
                options = dropdown.locator("option").all_inner_texts()
                current = dropdown.evaluate("s => s.options[s.selectedIndex].text")
                other = next(o for o in options if o != current)
                dropdown.select_option(label=other)
            else:
                assert slider.count(), "the fuse explorer has neither a dropdown nor a slider"
                slider.first.focus()
                page.keyboard.press("ArrowRight")
            page.wait_for_function(
                "([el, old]) => el.innerText !== old && el.innerText.trim().length > 0",
                arg=[output.element_handle(), before], timeout=60_000,
            )
            after = widget_text(output)
            assert after != before
            widget.screenshot(path=str(tmp_path / "fuse_explorer.png"))
            page.screenshot(path=str(tmp_path / "lesson03.png"), full_page=False)
            for name, least in (("fuse_explorer.png", 1_000), ("lesson03.png", 20_000)):
                assert (tmp_path / name).stat().st_size > least, f"{name} looks empty"
                if os.environ.get("HRNET_TEACH_SAVE_SCREENSHOTS"):  # to refresh the README's pictures
                    shots.mkdir(parents=True, exist_ok=True)
                    shutil.copy(tmp_path / name, shots / name)
        finally:
            browser.close()
