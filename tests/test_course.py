"""The README's first command, `python -m hrnet_teach.course`: a working copy of the lessons, then
JupyterLab there, for root and non-root alike. And the whole path a learner takes: open, run a
lesson, save it with its outputs; the repository's lessons stay as committed and the notebook
checks of the test command still pass.
"""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import nbformat
import pytest

from hrnet_teach import course
from hrnet_teach.runner import make_client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _lab import free_port, wait_for_server  # noqa: E402
from test_notebooks import NOTEBOOKS, committed, stored_clean_problems  # noqa: E402

LESSONS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_working_copy_copies_every_lesson_and_never_overwrites(tmp_path, capsys):
    folder = tmp_path / "course"
    copied, kept = course.make_working_copy(folder)
    assert copied == LESSONS and kept == []
    mine = folder / LESSONS[0]
    mine.write_text(mine.read_text().replace('"cells": [', '"cells": [ ', 1))  # a learner's edit
    edited = mine.read_text()
    (folder / LESSONS[1]).unlink()  # a learner who wants a fresh copy of one lesson deletes it

    assert course.main([str(folder), "--print-command"]) == 0
    out = capsys.readouterr().out
    assert mine.read_text() == edited, "the launcher overwrote a learner's lesson"
    assert f"Copied 1 lesson(s) to {folder}/: {LESSONS[1]}" in out
    assert "Kept your own copy" in out and "not overwritten" in out and LESSONS[0] in out


def test_lang_zh_copies_the_chinese_lessons(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert course.main(["--lang", "zh", "--print-command"]) == 0
    chinese = sorted(p.name for p in (ROOT / "notebooks" / "zh").glob("*.ipynb"))
    assert chinese and sorted(p.name for p in (tmp_path / "my-hrnet-course-zh").glob("*.ipynb")) == chinese
    assert (tmp_path / "my-hrnet-course-zh" / chinese[0]).read_bytes() == (ROOT / "notebooks" / "zh" / chinese[0]).read_bytes()
    assert "my-hrnet-course-zh" in capsys.readouterr().out


def test_working_copy_refuses_the_stored_lessons_folder():
    with pytest.raises(ValueError, match="where the stored lessons live"):
        course.make_working_copy(ROOT / "notebooks")


@pytest.mark.parametrize("uid", [0, 1000], ids=["root", "user"])
def test_command_line_adds_allow_root_only_for_root(monkeypatch, tmp_path, capsys, uid):
    monkeypatch.setattr(os, "geteuid", lambda: uid)
    assert course.main([str(tmp_path / "c"), "--print-command", "--no-browser"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert " -m jupyter lab " in line and f"--notebook-dir={(tmp_path / 'c').resolve()}" in line
    assert line.endswith("--no-browser"), "extra arguments go to JupyterLab"
    assert ("--allow-root" in line) == (uid == 0)


def test_launcher_really_starts_jupyterlab(tmp_path):
    """The real command, as whoever runs the tests (root in containers and CI): it must not stop."""
    port = free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"))
    log = open(tmp_path / "lab.log", "w", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "hrnet_teach.course", str(tmp_path / "course"), "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", "--ServerApp.token="], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_server(f"http://127.0.0.1:{port}/", process, timeout=120, log=tmp_path / "lab.log")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=10) as response:
            listing = response.read().decode()
        assert all(name in listing for name in LESSONS), "JupyterLab does not serve the working copy"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _repo_notebook_state() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in NOTEBOOKS}


def test_open_run_save_leaves_the_repository_clean(tmp_path, monkeypatch):
    """A learner's session: working copy, run lesson 00, save it with outputs. The repository's
    lessons are untouched and still pass the stored-clean check; the saved copy would not."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    before = _repo_notebook_state()
    folder = tmp_path / "my-hrnet-course"
    course.make_working_copy(folder)
    lesson = folder / "00_welcome.ipynb"
    nb = nbformat.read(str(lesson), as_version=4)
    make_client(nb, folder, timeout=300).execute()  # runs where the learner runs it: in the working copy
    nbformat.write(nb, str(lesson))  # what JupyterLab's save (and autosave) does

    saved = nbformat.read(str(lesson), as_version=4)
    assert stored_clean_problems(saved, lesson.name), "the run produced no outputs: the check could not fail"
    text = "".join(o.get("text", "") for c in saved.cells if c.cell_type == "code" for o in c.outputs)
    assert "hrnet_teach ready" in text, "the lesson did not find the package from the working copy"
    assert _repo_notebook_state() == before, "running the course changed the repository's notebooks"
    for path in NOTEBOOKS:
        nb, _ = committed(path)
        assert stored_clean_problems(nb, path.name) == []


def test_clean_stores_a_run_lesson_clean(tmp_path, capsys):
    """`python -m hrnet_teach.course --clean`: a lesson saved with outputs, counts and widget state
    comes back as the repository stores it."""
    path = tmp_path / "lesson.ipynb"
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"},
                                            "widgets": {"state": {}}})
    nb.cells = [nbformat.v4.new_code_cell("print(1)", execution_count=3,
                                          outputs=[nbformat.v4.new_output("stream", text="1\n")]),
                nbformat.v4.new_markdown_cell("text")]
    nb.cells[0].metadata["widgets"] = {"x": 1}
    nbformat.write(nb, str(path))
    assert stored_clean_problems(nbformat.read(str(path), as_version=4), "lesson")  # the check can fail
    assert course.main(["--clean", str(path)]) == 0
    assert stored_clean_problems(nbformat.read(str(path), as_version=4), "lesson") == []
    assert course.main(["--clean", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{path}: cleaned", f"{path}: already clean"]
    assert nbformat.read(str(path), as_version=4).cells[0].source == "print(1)"


def test_learner_question_table_points_at_lessons_that_answer():
    """Lesson 08 ends with the learner's questions and the lessons that answer them. Every name a
    question quotes in backticks must appear in each lesson the row lists (outside the table), so a
    row cannot point at a lesson that no longer says anything about it."""
    import re

    lessons = {p.name[:2]: nbformat.read(p, as_version=4) for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    (table,) = [c.source for c in lessons["08"].cells if c.id == "cell-54"]
    rows = [[col.strip() for col in line.strip().strip("|").split("|")]
            for line in table.splitlines() if line.startswith("| ") and not line.startswith(("| question", "| ---"))]
    checked = 0
    for question, *_, where in rows:
        listed = re.findall(r"\d\d", where)
        assert listed and all(n in lessons for n in listed), f"row {question!r} lists lessons {where!r}"
        for name in re.findall(r"`([^`]+)`", question):
            for n in listed:
                text = "\n".join(c.source for c in lessons[n].cells if c.id != "cell-54")
                assert name in text, f"lesson {n} never mentions {name!r}, yet lesson 08's table sends {question!r} there"
                checked += 1
    assert len(rows) >= 10 and checked >= 10, (len(rows), checked)


def test_the_printed_command_is_quoted_for_the_learners_shell(monkeypatch):
    """On Windows POSIX single quotes are no quotes: a path with a space must come in double quotes."""
    command = [r"C:\Users\Jane Doe\python.exe", "-m", "jupyter", "lab", "--notebook-dir=C:\\my course"]
    monkeypatch.setattr(course.os, "name", "nt")
    assert course.shell_line(command) == r'"C:\Users\Jane Doe\python.exe" -m jupyter lab "--notebook-dir=C:\my course"'
    monkeypatch.setattr(course.os, "name", "posix")
    assert course.shell_line(["/home/jane doe/python", "-m", "jupyter"]) == "'/home/jane doe/python' -m jupyter"
