"""Open the course in a working copy of the lessons, so taking it never changes the repository.

    python -m hrnet_teach.course                 # copies the lessons to ./my-hrnet-course/, opens JupyterLab there
    python -m hrnet_teach.course ~/hrnet         # the same, in a folder of your choice
    python -m hrnet_teach.course --print-command # copy, then print the JupyterLab command instead of running it
    python -m hrnet_teach.course --lang zh       # the Chinese lessons (notebooks/zh/) in ./my-hrnet-course-zh/
    python -m hrnet_teach.course --no-browser --port 8890   # other options go to JupyterLab
    python -m hrnet_teach.course --clean notebooks/03_fuse_matrix.ipynb  # contributors: store a lesson clean

The lessons in ``notebooks/`` are stored without outputs, and the tests check that they stay so.
JupyterLab saves a notebook with its outputs (and autosaves it every two minutes) once you run a cell, so
the course opens a copy: d2l hands out its notebooks the same way. A lesson that is already in
the working copy is never overwritten (it may hold your answers); delete it to get a fresh one.
The lessons find their photo and checkpoint through the package (``hrnet_teach.assets``), so
they run from any folder.

Options other than the course's own go to JupyterLab, read the way JupyterLab reads them: its
flags (``--no-browser``, ``--debug``, ...) stand alone, every other option takes a value, as
``--port=8890`` or ``--port 8890``. So the folder is the one word that is not an option's value;
everything after ``--`` goes to JupyterLab as written.
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

DEFAULT_FOLDER = "my-hrnet-course"
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese"}
COURSE_OPTIONS = ("--lang", "--print-command", "--clean", "--help")
# JupyterLab's options that take no value (its "flags" in `jupyter lab --help-all`). JupyterLab reads
# any other option as one that takes a value (an unknown --foo bar only gets a warning), and so do we.
LAB_FLAGS = frozenset({
    "--debug", "--show-config", "--show-config-json", "--generate-config", "-y", "--y", "--allow-root",
    "--no-browser", "--autoreload", "--script", "--no-script", "--core-mode", "--dev-mode", "--skip-dev-build",
    "--watch", "--splice-source", "--expose-app-in-browser", "--extensions-in-dev-mode", "--collaborative",
    "--custom-css", "--help-all", "--version"})
LAB_VALUE_OPTIONS = frozenset({  # its options that take a value: never taken for a misspelt course option
    "--log-level", "--config", "--ip", "--port", "--port-retries", "--keyfile", "--certfile", "--client-ca",
    "--notebook-dir", "--browser", "--pylab", "--app-dir"})


def default_folder(language: str = "en") -> str:
    return DEFAULT_FOLDER if language == "en" else f"{DEFAULT_FOLDER}-{language}"


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
    _refuse_another_edition(folder, source)
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


def edition(notebook: Path) -> str | None:
    """The language a lesson is in: the Chinese lessons say so in their metadata (which JupyterLab
    keeps when it saves), the English ones say nothing. None for a file that cannot be read."""
    try:
        metadata = json.loads(Path(notebook).read_text(encoding="utf-8")).get("metadata", {})
        return str((metadata.get("hrnet_teach") or {}).get("language", "en"))
    except (OSError, ValueError, AttributeError):  # the learner's own broken file: not ours to judge here
        return None


def _refuse_another_edition(folder: Path, source: Path) -> None:
    """The editions share file names, and a kept lesson is never overwritten: --lang zh into an English
    copy would open the English lessons while saying it kept them, as if that were what was asked."""
    others = {}  # (the kept lessons' language, the asked-for one) -> file names
    for lesson in sorted(source.glob("*.ipynb")):
        mine = edition(folder / lesson.name) if (folder / lesson.name).is_file() else None
        wanted = edition(lesson)
        if mine is not None and wanted is not None and mine != wanted:
            others.setdefault((mine, wanted), []).append(lesson.name)
    if others:
        (have, wanted), names = next(iter(others.items()))
        wanted_name = LANGUAGE_NAMES.get(wanted, wanted)
        raise ValueError(
            f"{folder}/ holds the {LANGUAGE_NAMES.get(have, have)} lessons ({', '.join(names[:3])}"
            f"{', ...' if len(names) > 3 else ''}), and a lesson already there is never overwritten: you would get "
            f"those, not the {wanted_name} ones. Use another folder for the {wanted_name} edition (the default is "
            f"./{default_folder(wanted)}), or delete those files to replace them")


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


def split_arguments(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the course's own arguments, JupyterLab's). JupyterLab's options are read as JupyterLab reads
    them (see LAB_FLAGS), so the 8890 of --port 8890 stays the port and is not taken for the folder."""
    ours, lab, i = [], [], 0
    while i < len(argv):
        token, i = argv[i], i + 1
        if token == "--":  # the rest is JupyterLab's, as written
            return ours, lab + list(argv[i:])
        name = token.split("=", 1)[0]
        if not _is_option(token) or _is_course_option(name):
            ours.append(token)
            continue
        _refuse_a_misspelt_course_option(name)
        lab.append(token)
        if "=" in token or name in LAB_FLAGS:
            continue
        if i == len(argv) or _is_option(argv[i]):
            raise ValueError(f"{name} takes a value for JupyterLab: write {name}=VALUE or {name} VALUE "
                             "(e.g. --port 8890)")
        lab.append(argv[i])
        i += 1
    return ours, lab


def _is_option(token: str) -> bool:
    try:  # -1 is a value (--port-retries -1), not an option
        float(token)
        return False
    except ValueError:
        return token.startswith("-")


def _is_course_option(name: str) -> bool:
    # argparse also takes an unambiguous prefix (--print for --print-command); -h is its help
    return name == "-h" or (name.startswith("--") and len(name) > 2 and any(o.startswith(name) for o in COURSE_OPTIONS))


def _refuse_a_misspelt_course_option(name: str) -> None:
    """--lnag zh would go to JupyterLab, and zh become the folder: name the option instead."""
    if name in LAB_FLAGS or name in LAB_VALUE_OPTIONS or "." in name:  # --ServerApp.token: JupyterLab's
        return
    close = difflib.get_close_matches(name, COURSE_OPTIONS, n=1, cutoff=0.7)
    if close:
        raise ValueError(f"unknown option {name}: did you mean {close[0]}? (the options JupyterLab takes, such as "
                         "--no-browser or --port 8890, are passed on to it)")


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's, but a folder name such as my-hrnet-course-zh is never broken at its hyphens."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hrnet_teach.course", description=__doc__.split("\n\n")[0],
                                     formatter_class=_HelpFormatter,
                                     epilog="Other options go to JupyterLab: --no-browser, --port 8890 (or "
                                     "--port=8890); everything after -- goes to it as written.")
    parser.add_argument("folder", nargs="?", default=None,
                        help=f"working copy (default ./{DEFAULT_FOLDER}, or ./{default_folder('zh')} with --lang zh)")
    parser.add_argument("--lang", choices=("en", "zh"), default="en", help="zh: the Chinese lessons (中文课程)")
    parser.add_argument("--print-command", action="store_true",
                        help="make the working copy, then print the JupyterLab command instead of running it")
    parser.add_argument("--clean", nargs="+", metavar="NOTEBOOK",
                        help="for contributors: strip outputs, counts and widget state from these notebooks, then stop")
    try:
        ours, extra = split_arguments(sys.argv[1:] if argv is None else list(argv))
    except ValueError as error:
        parser.error(str(error))
    args = parser.parse_args(ours)
    try:  # a bad path gets its message and exit status 2, as argparse's own errors do, not a traceback
        if args.clean:
            for path in args.clean:
                _read_notebook(path)  # every one readable before any is written
            for path in args.clean:
                print(f"{path}: {'cleaned' if clean_notebook(path) else 'already clean'}")
            return 0
        folder = Path(args.folder or default_folder(args.lang))
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
