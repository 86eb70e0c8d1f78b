"""The course in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Starts JupyterLab the way the README's first command does (`hrnet_teach.course`: a working
copy of the lessons, then its JupyterLab command line, --allow-root included when root) on
127.0.0.1 (free port, no token), opens the fuse-matrix lesson, runs all cells, checks that
figures rendered and the fuse explorer widget is there, changes one of its controls and
checks that its output changes, saves a screenshot, and shuts the server down. Then the
layout: lessons 03 and 05 in a notebook pane exactly 1000 px wide, where no output may be
wider than its area, no printed line may wrap, no widget label may be cut; and the learner's
save: the working copy holds the outputs, the repository's lessons stay as committed.

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
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _lab import free_port, wait_for_server  # noqa: E402  (tests/_lab.py)

from hrnet_teach import course

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the notebook checks, shared
CHROMIUM = "/usr/bin/chromium"
LESSON = "03_fuse_matrix.ipynb"
PANE_WIDTH = 1000  # px: the notebook pane every lesson must fit
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (no browser download needed)")

if not Path(CHROMIUM).exists():  # CI installs Debian's chromium; say clearly when it is missing
    pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (the real-browser test needs it)", pytrace=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab as the launcher starts it: over a working copy of the lessons, so runs never
    touch the repository's files. Yields the URL and the working copy."""
    notebook = ROOT / "notebooks" / LESSON
    if not notebook.exists():
        pytest.fail(f"{notebook} does not exist", pytrace=False)
    yield from serve_lab(tmp_path_factory.mktemp("lab"), "my-hrnet-course", course.lessons_dir("en"))


@pytest.fixture(scope="module")
def lab_zh(tmp_path_factory):
    """The same over a working copy of the Chinese lessons (what ``python -m hrnet_teach.course --lang zh`` serves)."""
    yield from serve_lab(tmp_path_factory.mktemp("lab_zh"), "my-hrnet-course-zh", course.lessons_dir("zh"))


def serve_lab(work: Path, name: str, lessons: Path):
    """Start JupyterLab over a working copy of ``lessons`` in ``work / name``; yield (URL, working copy); stop it."""
    folder = work / name
    course.make_working_copy(folder, lessons)
    settings = work / "settings"
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # Every cell in the page (no windowing), so the layout checks see every output.
    (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    port = free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(settings), HF_HUB_OFFLINE="1",
               JUPYTER_CONFIG_DIR=str(work / "config"), PYTHONPATH=str(ROOT))
    env.pop("MPLBACKEND", None)  # let the kernel use the inline backend
    command = course.jupyter_command(folder, [  # the launcher's command line, and what a test needs
        "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
        "--LabApp.expose_app_in_browser=True",
    ])
    assert ("--allow-root" in command) == course.running_as_root()
    log = open(work / "lab.log", "w", encoding="utf-8")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_server(url, process)
        yield url, folder
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


def open_and_run(page, url: str, timeout: float = 400, lesson: str = LESSON) -> dict:
    page.goto(f"{url}lab/tree/{lesson}")
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


# Every control in an element without an accessible name (a label tied to it, aria-label or aria-labelledby,
# or a button's own text): a screen reader announces such a control as "slider" or "edit text" alone.
UNNAMED_CONTROLS_JS = """
el => Array.from(el.querySelectorAll('input, select, textarea, button, [role=slider]'))
  .filter(c => !(c.getAttribute('aria-label') || c.getAttribute('aria-labelledby')
                 || Array.from(c.labels || []).some(l => l.innerText.trim())
                 || (c.tagName === 'BUTTON' && c.innerText.trim())))
  .map(c => c.outerHTML.slice(0, 120))
"""


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
            assert not widget.evaluate(UNNAMED_CONTROLS_JS), "explorer controls without an accessible name"

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
            # By keyboard and by name, as a screen-reader user reaches it: row i one lower, a new entry shown.
            row = widget.get_by_label("i (out)")
            row.focus()
            page.keyboard.press("ArrowDown")
            page.wait_for_function("([el, old]) => el.innerText !== old && el.innerText.trim().length > 0",
                                   arg=[output.element_handle(), after], timeout=60_000)
            assert row.input_value() == "1", f"ArrowDown in the i box left it at {row.input_value()}"
            widget.screenshot(path=str(tmp_path / "fuse_explorer.png"))
            page.screenshot(path=str(tmp_path / "lesson03.png"), full_page=False)
            for name, least in (("fuse_explorer.png", 1_000), ("lesson03.png", 20_000)):
                assert (tmp_path / name).stat().st_size > least, f"{name} looks empty"
                if os.environ.get("HRNET_TEACH_SAVE_SCREENSHOTS"):  # to refresh the README's pictures
                    shots.mkdir(parents=True, exist_ok=True)
                    shutil.copy(tmp_path / name, shots / name)
        finally:
            browser.close()


# ------------------------------------------------------------------ layout in a 1000 px pane

FIT_PANE_JS = """
() => {
  const shell = window.jupyterapp.shell;
  shell.collapseLeft(); shell.collapseRight();
  return shell.currentWidget.node.getBoundingClientRect().width;
}
"""

# Every output of the current notebook: wider than its area, a printed line that wraps, an image
# wider than the area, a widget label cut short. Returns the problems as text.
LAYOUT_JS = """
() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = Array.from(panel.content.node.querySelectorAll('.jp-Cell'));
  const problems = [];
  panel.content.node.querySelectorAll('.jp-OutputArea-output').forEach(out => {
    const where = `cell ${cells.indexOf(out.closest('.jp-Cell'))}`;
    const area = out.getBoundingClientRect();
    if (out.scrollWidth > out.clientWidth + 1)
      problems.push(`${where}: content ${out.scrollWidth} px wide in a ${out.clientWidth} px output area`);
    out.querySelectorAll('img, svg').forEach(img => {
      const box = img.getBoundingClientRect();
      if (box.right > area.right + 1) problems.push(`${where}: an image ends ${Math.round(box.right - area.right)} px past the output area`);
    });
    out.querySelectorAll('.jupyter-widgets').forEach(w => {
      const box = w.getBoundingClientRect();
      if (box.right > area.right + 1) problems.push(`${where}: a widget ends ${Math.round(box.right - area.right)} px past the output area`);
    });
    out.querySelectorAll('pre').forEach(pre => {
      const style = getComputedStyle(pre);
      const lineHeight = parseFloat(style.lineHeight);
      if (!(lineHeight > 0) || pre.closest('.jupyter-widgets')) return;
      const text = pre.textContent.replace(/\\n$/, '');
      const lines = text.split('\\n').length;
      const inner = pre.getBoundingClientRect().height - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
      const rendered = Math.round(inner / lineHeight);
      if (rendered > lines) {
        const longest = text.split('\\n').reduce((a, b) => b.length > a.length ? b : a, '');
        problems.push(`${where}: ${lines} printed line(s) take ${rendered} (wrapped); longest ${longest.length} chars: ${longest.slice(0, 80)}`);
      }
    });
    out.querySelectorAll('.widget-label, .widget-readout').forEach(label => {
      if (label.scrollWidth > label.clientWidth + 1)
        problems.push(`${where}: widget label "${label.textContent}" cut (${label.scrollWidth} px of text in ${label.clientWidth} px)`);
    });
  });
  return problems;
}
"""

# How many monospace characters one printed line can hold in this pane.
CHARS_THAT_FIT_JS = """
() => {
  const pre = window.jupyterapp.shell.currentWidget.content.node.querySelector('.jp-RenderedText pre');
  if (!pre) return null;
  const span = document.createElement('span');
  span.textContent = '0'.repeat(50);  // short enough not to wrap
  pre.appendChild(span);
  const width = span.getBoundingClientRect().width / 50;
  span.remove();
  const style = getComputedStyle(pre);
  const inner = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return {charWidth: width, inner: inner, fit: Math.floor(inner / width)};
}
"""


def fit_pane(page, width: int = PANE_WIDTH) -> None:
    """Collapse the side panels and size the window so the notebook pane is ``width`` px wide."""
    pane = None
    for _ in range(4):  # the shell lays out asynchronously: measure, resize, measure again
        page.evaluate(FIT_PANE_JS)
        page.wait_for_timeout(700)
        pane = page.evaluate(FIT_PANE_JS)
        if abs(pane - width) <= 1:
            return
        viewport = page.viewport_size
        page.set_viewport_size({"width": int(viewport["width"] + width - pane), "height": viewport["height"]})
    assert abs(pane - width) <= 1, f"could not make the notebook pane {width} px wide (it is {pane})"


@pytest.mark.parametrize("lesson", ["03_fuse_matrix.ipynb", "05_whole_network.ipynb"])
def test_lesson_fits_a_1000px_pane_and_saves_to_the_working_copy(lab, lesson, tmp_path):
    from test_notebooks import MAX_LINE, NOTEBOOKS, committed, stored_clean_problems

    url, folder = lab
    repository_before = {p.name: p.read_bytes() for p in NOTEBOOKS}
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            state = open_and_run(page, url, lesson=lesson)
            assert state["errors"] == 0 and state["done"] == state["total"] > 0, f"{lesson} did not run cleanly: {state}"
            fit_pane(page)
            page.wait_for_timeout(2000)  # let figures and widgets settle at the new width
            fit = page.evaluate(CHARS_THAT_FIT_JS)
            assert fit is not None, f"{lesson} printed nothing to measure"
            print(f"\n{lesson}: a {PANE_WIDTH} px pane holds {fit['fit']} characters a line "
                  f"({fit['inner']:.0f} px at {fit['charWidth']:.2f} px a character)")
            assert MAX_LINE <= fit["fit"], (f"tests/test_notebooks.py allows {MAX_LINE} characters a line, but a "
                                            f"{PANE_WIDTH} px pane holds {fit['fit']}: {fit}")
            problems = page.evaluate(LAYOUT_JS)
            page.screenshot(path=str(tmp_path / f"{lesson}.png"), full_page=True)
            if os.environ.get("HRNET_TEACH_SCREENSHOT_DIR"):  # to look at the layout yourself
                shots = Path(os.environ["HRNET_TEACH_SCREENSHOT_DIR"])
                shutil.copy(tmp_path / f"{lesson}.png", shots / f"{lesson}.png")
                cells = page.locator(".jp-Notebook .jp-Cell:has(.jp-OutputArea-output img), "
                                     ".jp-Notebook .jp-Cell:has(.jp-OutputArea-output .jupyter-widgets)")
                for k in range(cells.count()):
                    cells.nth(k).scroll_into_view_if_needed()
                    cells.nth(k).screenshot(path=str(shots / f"{lesson[:2]}_output{k:02d}.png"))
            assert not problems, f"{lesson} in a {PANE_WIDTH} px pane:\n" + "\n".join(problems)
            unnamed = [c for w in page.locator(".jp-OutputArea-output .jupyter-widgets.widget-vbox").all()
                       for c in w.evaluate(UNNAMED_CONTROLS_JS)]
            assert not unnamed, f"{lesson}: widget controls without an accessible name: {unnamed}"

            # The learner saves: outputs go to the working copy, the repository stays as committed.
            page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
            saved = folder / lesson
            deadline = time.time() + 60
            while time.time() < deadline and '"outputs": []' in saved.read_text() and '"output_type"' not in saved.read_text():
                time.sleep(0.5)
            assert '"output_type"' in saved.read_text(), "saving did not write the outputs to the working copy"
        finally:
            browser.close()
    assert {p.name: p.read_bytes() for p in NOTEBOOKS} == repository_before, "the browser session changed notebooks/"
    for path in NOTEBOOKS:
        assert stored_clean_problems(committed(path)[0], path.name) == []


# ------------------------------------------------------------------ the Chinese edition

# The Chinese lesson opened: lesson 03 has Markdown, figures and the fuse explorer widget.
ZH_LESSON = "03_fuse_matrix.ipynb"

# Tofu check: draw CJK characters in the font the rendered Markdown uses. Where no installed font has
# them, Chromium draws the same empty box for each, so distinct characters give identical pixels; an
# unassigned code point (U+0378) is drawn as that box, so a real glyph must also differ from it.
GLYPHS_JS = """
(chars) => {
  const md = document.querySelector('.jp-RenderedMarkdown');
  const family = getComputedStyle(md).fontFamily;
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 64;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (ch) => {
    ctx.clearRect(0, 0, 64, 64);
    ctx.font = `48px ${family}`;
    ctx.fillStyle = '#000';
    ctx.textBaseline = 'top';
    ctx.fillText(ch, 4, 4);
    const data = ctx.getImageData(0, 0, 64, 64).data;
    let inked = 0, hash = 0;
    for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) inked++; hash = (hash * 31 + data[i]) | 0; }
    return {ch, inked, hash, width: ctx.measureText(ch).width};
  };
  return {family, glyphs: chars.map(draw), missing: draw('\\u0378')};
}
"""


def test_zh_lesson_renders_chinese_and_its_widget_works(lab_zh, tmp_path):
    """A Chinese lesson in the browser: every cell runs, the Markdown is Chinese and drawn with real
    glyphs (no empty boxes), no figure misses a glyph, and an explorer widget answers in Chinese and
    changes when a control changes."""
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout.strip()
    assert fonts, "no font with Chinese glyphs is installed (Debian: apt-get install fonts-noto-cjk)"
    url, _work = lab_zh
    lesson = ZH_LESSON
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            state = open_and_run(page, url, lesson=lesson)
            assert state["errors"] == 0 and state["done"] == state["total"] > 0, f"{lesson} did not run cleanly: {state}"

            markdown = page.locator(".jp-RenderedMarkdown").first
            markdown.wait_for(state="attached", timeout=30_000)
            text = page.evaluate("() => Array.from(document.querySelectorAll('.jp-RenderedMarkdown'))"
                                 ".map(e => e.innerText).join('\\n')")
            chinese = [c for c in text if "\u4e00" <= c <= "\u9fff"]
            assert len(chinese) > 100, f"the rendered Markdown of {lesson} has {len(chinese)} Chinese characters"
            sample = sorted(set(chinese), key=chinese.index)[:6]
            glyphs = page.evaluate(GLYPHS_JS, sample)
            drawn = glyphs["glyphs"]
            print(f"\n{lesson}: font-family {glyphs['family']}; fc-list: {fonts.splitlines()[0]} ...; "
                  + ", ".join(f"{g['ch']} {g['inked']} px inked" for g in drawn)
                  + f"; U+0378 (no glyph) {glyphs['missing']['inked']} px")
            assert len({g["hash"] for g in drawn}) == len(drawn), f"distinct characters drawn alike (empty boxes): {drawn}"
            assert all(g["hash"] != glyphs["missing"]["hash"] and g["inked"] > 50 for g in drawn), drawn

            outputs = page.evaluate("() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))"
                                    ".map(e => e.innerText).join('\\n')")
            assert "missing from font" not in outputs, "a figure was drawn with missing glyphs"

            area = page.locator(".jp-OutputArea-output:has(.jupyter-widgets.widget-vbox)").last
            area.wait_for(state="attached", timeout=120_000)
            widget = area.locator(".jupyter-widgets.widget-vbox").first  # the explorer, not its inner rows
            widget.scroll_into_view_if_needed()
            info = widget.locator(".widget-output").first
            page.wait_for_function("el => el.innerText.trim().length > 0", arg=info.element_handle(), timeout=60_000)
            before = widget_text(widget)
            assert any("\u4e00" <= c <= "\u9fff" for c in before), f"the explorer does not speak Chinese: {before[:200]!r}"
            assert not widget.evaluate(UNNAMED_CONTROLS_JS), "explorer controls without an accessible name"
            select = widget.locator("select")
            if select.count():  # as in the English test: another input size, variant ...
                dropdown = select.last
                current = dropdown.evaluate("s => s.options[s.selectedIndex].text")
                dropdown.select_option(label=next(o for o in dropdown.locator("option").all_inner_texts() if o != current))
            else:
                slider = widget.locator(".widget-slider .slider, .widget-hslider .slider")
                assert slider.count(), "the explorer has neither a dropdown nor a slider"
                slider.last.focus()
                page.keyboard.press("ArrowRight")
            page.wait_for_function("([el, old]) => el.innerText !== old && el.innerText.trim().length > 0",
                                   arg=[widget.element_handle(), before], timeout=60_000)
            assert widget_text(widget) != before
            widget.screenshot(path=str(tmp_path / "zh_explorer.png"))
            page.screenshot(path=str(tmp_path / "zh_lesson.png"))
            assert (tmp_path / "zh_explorer.png").stat().st_size > 1_000
            if os.environ.get("HRNET_TEACH_SCREENSHOT_DIR"):
                for name in ("zh_explorer.png", "zh_lesson.png"):
                    shutil.copy(tmp_path / name, Path(os.environ["HRNET_TEACH_SCREENSHOT_DIR"]) / name)
        finally:
            browser.close()
