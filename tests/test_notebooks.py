"""Every lesson notebook: stored clean (as committed), starts with the setup cell, runs top to bottom in a
fresh kernel without errors, with exercise cells that start unsolved. Also the setup cell
itself, on a fake Colab and locally.

Execution times are printed (``pytest -s`` shows them) and written to
``notebook_times.json`` in pytest's base temporary directory.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import nbformat
import pytest
import torch

from hrnet_teach import colab
from hrnet_teach.runner import make_client

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell
MAX_CELL_OUTPUT = 8000  # characters of text per cell: outputs stay small
# Characters per printed line: JupyterLab wraps longer lines mid-word; 110 monospace characters
# fit the output area of a notebook in a 1000 px wide pane (tests/test_browser.py checks the pixels).
MAX_LINE = 110

ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in kernel tracebacks
UNSOLVED = re.compile(r"^answer = \.\.\.|raise NotImplementedError\s+# your code here", re.MULTILINE)


def _read(path: Path):
    return nbformat.read(str(path), as_version=4)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_lessons():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"
    for path in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), f"{path.name}: name lessons NN_topic.ipynb"


def committed(path: Path):
    """The notebook as committed (``git show HEAD:...``) and where it was read from.

    Learners run and save lessons (JupyterLab autosaves outputs); what must stay clean is what
    the repository holds. Outside a git checkout, or for a notebook not committed yet, the file.
    """
    try:
        shown = subprocess.run(["git", "-C", str(path.parent), "show", f"HEAD:./{path.name}"],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        shown = None
    if shown is not None and shown.returncode == 0:
        return nbformat.reads(shown.stdout, as_version=4), "HEAD"
    return _read(path), "the working tree"


def stored_clean_problems(nb, name: str) -> list[str]:
    """What keeps a notebook from being stored clean (empty when it is)."""
    problems = []
    if nb.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append(f"{name}: kernelspec must be python3")
    if "widgets" in nb.metadata:
        problems.append(f"{name}: stored with widget state")
    for index, cell in enumerate(nb.cells):
        if "widgets" in cell.get("metadata", {}):
            problems.append(f"{name} cell {index}: widget state in its metadata")
        if cell.cell_type == "code":
            if cell.outputs:
                problems.append(f"{name} cell {index}: stored with outputs")
            if cell.execution_count is not None:
                problems.append(f"{name} cell {index}: stored with an execution count")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_clean(path):
    nb, source = committed(path)
    nbformat.validate(nb)
    problems = stored_clean_problems(nb, path.name)
    assert not problems, f"as stored in {source}: " + "; ".join(problems[:5])
    if source == "HEAD":
        mine = stored_clean_problems(_read(path), path.name)
        if mine:  # not a failure (a learner may have run it in place), but a contributor should know
            warnings.warn(f"{path.name} in the working tree has outputs ({mine[0]}): clear them before "
                          "committing (take the course in a working copy: python -m hrnet_teach.course)",
                          stacklevel=1)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_first_code_cell_is_the_setup_cell(path):
    cells = _code_cells(_read(path))
    assert cells, f"{path.name} has no code cell"
    assert cells[0].source == colab.SETUP_CELL, f"{path.name}: run `python -m hrnet_teach.colab` to refresh its setup cell"


def _cell_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


def _shown_lines(cell) -> list[str]:
    """The text lines a reader sees: printed text and plain-text results (not the text/plain
    stand-in of a widget, image or graph, which JupyterLab does not show)."""
    lines = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            lines += output.get("text", "").splitlines()
        elif "data" in output and set(output["data"]) <= {"text/plain"}:
            lines += output["data"].get("text/plain", "").splitlines()
    return lines


@pytest.fixture(scope="module")
def times(tmp_path_factory):
    """Execution time per notebook, printed and saved as JSON when the module ends."""
    measured: dict[str, float] = {}
    yield measured
    if measured:
        path = tmp_path_factory.getbasetemp() / "notebook_times.json"
        path.write_text(json.dumps(measured, indent=1))
        print("\nnotebook execution times (s):", ", ".join(f"{k} {v:.1f}" for k, v in measured.items()),
              f"; total {sum(measured.values()):.1f}; saved to {path}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_executes_in_a_fresh_kernel(path, times, monkeypatch, record_property):
    from nbclient.exceptions import CellExecutionError

    # The kernel inherits this environment: no network, the inline matplotlib backend.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = _read(path)
    client = make_client(nb, NOTEBOOK_DIR, timeout=CELL_TIMEOUT)  # see hrnet_teach/runner.py for why
    start = time.perf_counter()
    failure = None
    try:
        client.execute()
    except CellExecutionError as error:
        failure = error
    elapsed = time.perf_counter() - start
    if failure is not None:  # outside the except block, so pytest does not print the kernel's traceback twice
        index, source = next(((k, c.source) for k, c in enumerate(nb.cells) if c.cell_type == "code" and any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), (None, ""))
        snippet = "\n".join("    " + line for line in source.splitlines()[:6])
        pytest.fail(f"{path.name}, cell {index}, raised {failure.ename}: {ANSI.sub('', str(failure.evalue))}\n{snippet}",
                    pytrace=False)
    times[path.name] = round(elapsed, 1)
    record_property("seconds", round(elapsed, 1))
    print(f"\n{path.name}: executed in {elapsed:.1f} s")

    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        assert not errors, f"{path.name} cell {index} raised {errors[0].get('ename')}"
        text = _cell_text(cell)
        assert len(text) <= MAX_CELL_OUTPUT, f"{path.name} cell {index} prints {len(text)} characters; keep outputs small"
        long = [line for line in _shown_lines(cell) if len(line) > MAX_LINE]
        assert not long, (f"{path.name} cell {index} prints a line of {len(long[0])} characters (at most {MAX_LINE} fit "
                          f"a 1000 px pane; wrap it, e.g. textwrap.fill): {long[0][:120]!r}")
        if UNSOLVED.search(cell.source):  # an exercise cell as stored: it must run, unsolved
            assert "Not yet" in text, f"{path.name} cell {index}: an unsolved exercise cell should show 'Not yet', got {text[:200]!r}"


# ------------------------------------------------------------------ the setup cell


class FakeShell:
    """Stands in for IPython: records the shell commands and magics the setup cell runs.

    ``clone_works``: whether ``!git clone`` makes the clone folder (False: no address, no network).
    """

    def __init__(self, clone_works: bool = True):
        self.calls = []
        self.clone_works = clone_works
        self.made = set()

    def system(self, command):
        self.calls.append(("!", command))
        if "git clone" in command and self.clone_works:
            self.made.add(colab.CLONE_DIR)

    def run_line_magic(self, name, line, *args, **kwargs):
        self.calls.append(("%" + name, line))


def _setup_code() -> str:
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(colab.SETUP_CELL)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the setup cell tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def clean_sys_path(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))


def _run_setup_cell(shell: FakeShell) -> dict:
    namespace = {"get_ipython": lambda: shell}
    exec(compile(_setup_code(), "<setup cell>", "exec"), namespace)
    return namespace


def _fake_colab(monkeypatch, shell: FakeShell, clone_exists=False, wheels=()):
    """A Colab runtime: google.colab imported, the clone folder and uploaded wheels as given."""
    import glob

    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    if clone_exists:
        shell.made.add(colab.CLONE_DIR)
    real_isdir, real_glob = os.path.isdir, glob.glob
    monkeypatch.setattr(os.path, "isdir", lambda p: p in shell.made if p == colab.CLONE_DIR else real_isdir(p))
    monkeypatch.setattr(glob, "glob", lambda p, **k: list(wheels) if p == colab.WHEEL_GLOB else real_glob(p, **k))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_setup_cell_magics_become_calls():
    code = _setup_code()
    assert "get_ipython().system(" in code and "git clone" in code
    assert "run_line_magic('pip'" in code or 'run_line_magic("pip"' in code
    assert colab.REPO_URL in colab.SETUP_CELL and colab.CLONE_DIR in colab.SETUP_CELL


def test_setup_cell_on_colab_clones_when_missing(monkeypatch, capsys, no_network, clean_sys_path):
    shell = FakeShell()
    _fake_colab(monkeypatch, shell)
    namespace = _run_setup_cell(shell)
    assert shell.calls[0][0] == "!" and f"git clone -q --depth 1 {colab.REPO_URL} {colab.CLONE_DIR}" in shell.calls[0][1]
    assert shell.calls[1][0] == "%pip" and f"install -q -r {colab.CLONE_DIR}/requirements.txt" in shell.calls[1][1]
    assert len(shell.calls) == 2
    assert sys.path[0] == colab.CLONE_DIR
    assert namespace["device"] == torch.device("cpu")
    out = capsys.readouterr().out
    assert "(Colab)" in out and "No GPU" in out


def test_setup_cell_on_colab_reuses_the_clone(monkeypatch, capsys, no_network, clean_sys_path):
    shell = FakeShell()
    _fake_colab(monkeypatch, shell, clone_exists=True)
    _run_setup_cell(shell)
    assert shell.calls == [], f"a second run must not clone or install again: {shell.calls}"
    assert sys.path[0] == colab.CLONE_DIR


def test_setup_cell_when_the_clone_fails_says_what_to_do(monkeypatch, no_network, clean_sys_path):
    """No address set yet, or no network: a clear error with the offline route, not a bare ImportError."""
    shell = FakeShell(clone_works=False)
    _fake_colab(monkeypatch, shell)
    with pytest.raises(RuntimeError) as caught:
        _run_setup_cell(shell)
    message = str(caught.value)
    assert colab.REPO_URL in message and "python -m hrnet_teach.colab --wheel" in message
    assert "upload" in message and "run this cell again" in message
    assert [kind for kind, _ in shell.calls] == ["!"], f"only the clone was tried: {shell.calls}"


def test_setup_cell_installs_an_uploaded_wheel(monkeypatch, capsys, no_network, clean_sys_path):
    """The offline route: a wheel in /content is installed, and nothing is cloned."""
    wheel = f"{colab.CONTENT_DIR}/hrnet_teach-0.1.0-py3-none-any.whl"
    shell = FakeShell(clone_works=False)
    _fake_colab(monkeypatch, shell, wheels=[wheel])
    namespace = _run_setup_cell(shell)
    assert shell.calls == [("%pip", "install -q {wheel}")], shell.calls  # IPython expands {wheel}
    assert namespace["wheel"] == wheel
    assert namespace["device"] == torch.device("cpu")
    assert "(Colab)" in capsys.readouterr().out


def test_the_wheel_carries_lessons_and_assets(tmp_path):
    """`python -m hrnet_teach.colab --wheel`, installed elsewhere: lessons and assets come from the wheel."""
    wheel = colab.build_wheel(out=str(tmp_path / "dist"))
    assert wheel.name.startswith("hrnet_teach-") and wheel.suffix == ".whl"
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True)
    probe = ("import hrnet_teach, hrnet_teach.assets as a, hrnet_teach.course as c;"
             "print(hrnet_teach.__file__); print(a.asset_path('checkpoints/shapes_w18_small_v1.pt'));"
             "print(a.asset_path('grace_hopper.jpg')); print(c.lessons_dir())")
    shown = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=str(target)))
    assert shown.returncode == 0, shown.stderr[-2000:]
    package, checkpoint, photo, lessons = shown.stdout.split()
    assert package.startswith(str(target)), f"imported {package}, not the installed wheel"
    for found in (checkpoint, photo, lessons):
        assert found.startswith(str(target / "hrnet_teach" / "_course")), found
    assert sorted(p.name for p in Path(lessons).glob("*.ipynb")) == [p.name for p in NOTEBOOKS]


def test_setup_cell_locally_does_nothing_slow(monkeypatch, capsys, no_network, clean_sys_path):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.chdir(NOTEBOOK_DIR)
    shell = FakeShell()
    namespace = _run_setup_cell(shell)
    assert shell.calls == [], f"outside Colab the setup cell must not run shell commands: {shell.calls}"
    assert sys.path[0] == str(ROOT)  # run from notebooks/: the repository, without installing
    assert isinstance(namespace["device"], torch.device)
    out = capsys.readouterr().out
    assert "(local)" in out and "No GPU" not in out


def test_setup_function_with_and_without_colab(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    assert colab.in_colab()
    assert colab.setup() == torch.device("cpu")
    out = capsys.readouterr().out
    assert "(Colab)" in out and "Runtime > Change runtime type > GPU" in out

    monkeypatch.delitem(sys.modules, "google.colab")
    assert not colab.in_colab()
    assert colab.setup() == torch.device("cpu")
    out = capsys.readouterr().out
    assert "(local)" in out and "No GPU" not in out
    assert colab.setup(verbose=False) == torch.device("cpu")
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------------ an answer that never returns


def test_a_never_returning_answer_executes_to_a_message(monkeypatch):
    """In a real kernel, as a learner runs it: a function answer that loops forever stops at the
    exercise's time limit with a message, the cell ends, and the next cell runs."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("from hrnet_teach.exercises import lesson05 as ex\n"
                                  "from hrnet_teach.exercises._base import set_time_limit\n"
                                  "set_time_limit(2)"),
        nbformat.v4.new_code_cell("def transition_forward(transition, y_list):\n"
                                  "    while True:\n"
                                  "        pass\n\n"
                                  "result = ex.transition_forward.check(transition_forward)\n"
                                  "print('passed:', result.passed)\n"
                                  "print(result.message)"),
        nbformat.v4.new_code_cell("print('the next cell ran')"),
    ]
    start = time.perf_counter()
    make_client(nb, NOTEBOOK_DIR, timeout=120).execute()
    elapsed = time.perf_counter() - start
    check_text, next_text = _cell_text(nb.cells[1]), _cell_text(nb.cells[2])
    assert "did not return within 2 s" in check_text, check_text[:500]
    assert "passed: False" in check_text
    assert "the next cell ran" in next_text
    print(f"\nnever-returning answer: the notebook finished in {elapsed:.1f} s")
