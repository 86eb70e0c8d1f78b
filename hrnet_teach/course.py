"""Open the course in a working copy of the lessons, so taking it never changes the repository.

    python -m hrnet_teach.course                 # copies the lessons to ./my-hrnet-course/, opens JupyterLab there
    python -m hrnet_teach.course ~/hrnet         # the same, in a folder of your choice
    python -m hrnet_teach.course --print-command # copy, then print the JupyterLab command instead of running it
    python -m hrnet_teach.course --lang zh       # the Chinese lessons (notebooks/zh/) in ./my-hrnet-course-zh/
    python -m hrnet_teach.course --clean notebooks/03_fuse_matrix.ipynb  # contributors: store a lesson clean

The lessons in ``notebooks/`` are stored without outputs, and the tests check that they stay so.
JupyterLab saves a notebook with its outputs (and autosaves it) as soon as you run a cell, so
the course opens a copy: d2l hands out its notebooks the same way. A lesson that is already in
the working copy is never overwritten (it may hold your answers); delete it to get a fresh one.
The lessons find their photo and checkpoint through the package (``hrnet_teach.assets``), so
they run from any folder.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

DEFAULT_FOLDER = "my-hrnet-course"


def lessons_dir(language: str = "en") -> Path:
    """Where the stored lessons are: the repository's ``notebooks/`` (``notebooks/zh/`` for the
    Chinese edition), or the copy a wheel carries."""
    package = Path(__file__).resolve().parent
    sub = "" if language == "en" else language
    for folder in (package.parent / "notebooks" / sub, package / "_course" / "notebooks" / sub):
        if any(folder.glob("*.ipynb")):
            return folder
    raise FileNotFoundError(
        f"no lessons found next to the package ({package.parent / 'notebooks'}) or inside it "
        f"({package / '_course' / 'notebooks'}). Install the course from a clone of the repository "
        "(pip install -e .) or from its wheel (python -m hrnet_teach.colab --wheel).")


def make_working_copy(folder: str | os.PathLike, source: Path | None = None) -> tuple[list[str], list[str]]:
    """Copy every lesson that ``folder`` lacks; return (copied, kept) file names. Never overwrites."""
    source = lessons_dir() if source is None else Path(source)
    folder = Path(folder)
    if folder.resolve() == source.resolve():
        raise ValueError(f"{folder} is where the stored lessons live; pick another folder for your working copy")
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder: pick a folder for your working copy "
                                 "(a new one is made)")
    folder.mkdir(parents=True, exist_ok=True)
    copied, kept = [], []
    for lesson in sorted(source.glob("*.ipynb")):
        target = folder / lesson.name
        if target.exists():
            kept.append(lesson.name)
        else:
            shutil.copyfile(lesson, target)
            copied.append(lesson.name)
    return copied, kept


def clean_notebook(path: str | os.PathLike) -> bool:
    """Store a lesson the way the repository keeps it: no outputs, no execution counts, no widget
    state, kernelspec python3. For contributors who ran a lesson in ``notebooks/``; True if changed."""
    import nbformat

    nb = _read_notebook(path)
    before = nbformat.writes(nb)
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    for cell in nb.cells:
        cell.get("metadata", {}).pop("widgets", None)
        cell.get("metadata", {}).pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    changed = nbformat.writes(nb) != before
    if changed:
        nbformat.write(nb, str(path))
    return changed


def _read_notebook(path: str | os.PathLike):
    """The notebook at ``path``, or a FileNotFoundError / ValueError that names it (nbformat's own are
    a JSON decoder's traceback)."""
    import nbformat

    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: name the notebook files, e.g. {path / '03_fuse_matrix.ipynb'}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such notebook")
    if path.suffix != ".ipynb":
        raise ValueError(f"{path} is not a notebook (.ipynb): --clean is for the lessons in notebooks/")
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as error:  # not JSON, or JSON that is not a notebook
        reason = str(error).strip().splitlines()[0][:120] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path} is not a readable notebook ({reason})") from error


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def jupyter_command(folder: str | os.PathLike, extra: list[str] = ()) -> list[str]:
    """The command that starts JupyterLab in ``folder``; as root it needs --allow-root (containers, CI images)."""
    command = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={Path(folder).resolve()}"]
    if running_as_root():
        command.append("--allow-root")
    return command + list(extra)


def _say_what_was_done(folder: Path, copied: list[str], kept: list[str]) -> None:
    if copied:
        print(f"Copied {len(copied)} lesson(s) to {folder}/: {', '.join(copied)}")
    if kept:
        print(f"Kept your own copy of {len(kept)} lesson(s) in {folder}/ (not overwritten; delete a file "
              f"to get a fresh one): {', '.join(kept)}")


def shell_line(command: list[str]) -> str:
    """``command`` quoted for the shell a learner would paste it into: cmd/PowerShell on Windows (double
    quotes; POSIX single quotes are not quotes there), sh elsewhere."""
    return subprocess.list2cmdline(command) if os.name == "nt" else shlex.join(command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hrnet_teach.course", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", default=None,
                        help=f"working copy (default ./{DEFAULT_FOLDER}, or ./{DEFAULT_FOLDER}-zh with --lang zh)")
    parser.add_argument("--lang", choices=("en", "zh"), default="en", help="zh: the Chinese lessons (中文课程)")
    parser.add_argument("--print-command", action="store_true",
                        help="make the working copy, then print the JupyterLab command instead of running it")
    parser.add_argument("--clean", nargs="+", metavar="NOTEBOOK",
                        help="for contributors: strip outputs, counts and widget state from these notebooks, then stop")
    args, extra = parser.parse_known_args(argv)  # anything else goes to JupyterLab (--no-browser, --port 8890)
    try:  # a bad path gets its message and exit status 2, as argparse's own errors do, not a traceback
        if args.clean:
            for path in args.clean:
                _read_notebook(path)  # every one readable before any is written
            for path in args.clean:
                print(f"{path}: {'cleaned' if clean_notebook(path) else 'already clean'}")
            return 0
        folder = Path(args.folder or (DEFAULT_FOLDER if args.lang == "en" else f"{DEFAULT_FOLDER}-{args.lang}"))
        copied, kept = make_working_copy(folder, lessons_dir(args.lang))
    except (OSError, ValueError) as error:
        parser.error(str(error))
    _say_what_was_done(folder, copied, kept)
    command = jupyter_command(folder, extra)
    if args.print_command:
        print(shell_line(command))
        return 0
    print("Starting:", shell_line(command), flush=True)
    if os.name == "posix":  # become JupyterLab, so a signal to this process reaches the server itself
        os.execvp(command[0], command)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
