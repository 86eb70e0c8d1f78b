"""Every exercise of the course, whoever wrote it: the reference passes, typical mistakes
get the message meant for them, odd answers get a message and never an exception."""
import importlib
import json
import re
from pathlib import Path

import pytest

from hrnet_teach.exercises import BLANK, CheckResult, Exercise, FunctionExercise, Mistake, all_exercises

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXERCISE_DIR = ROOT / "hrnet_teach" / "exercises"

EXERCISES = all_exercises()
IDS = [f"{ex.lesson}-{ex.name}" for ex in EXERCISES]


def _lesson_files() -> dict[str, Path]:
    """{"01": .../lesson01.py, ...} for the lesson files present."""
    files = {}
    for path in sorted(EXERCISE_DIR.glob("lesson*.py")):
        match = re.fullmatch(r"lesson(\d\d)\.py", path.name)
        assert match, f"{path.name}: lesson files are named lessonNN.py"
        files[match.group(1)] = path
    return files


def _raises_runtime_error(*args, **kwargs):
    raise RuntimeError("boom from the learner's code")


ODD_ANSWERS = {
    "a function that raises": _raises_runtime_error,
    "a string": "a string that answers nothing",
    "None": None,
    "a float": 3.5,
}


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_reference_passes(ex):
    result = ex.check(ex.reference)
    assert isinstance(result, CheckResult)
    assert result.passed, f"{ex.name}: the reference fails: {result.message}"
    assert result.message.strip()
    # The box already says "Correct"; a message that says it again reads "Correct: Right: ..." ("正确：正确：...").
    assert not re.match(r"(Right|Correct|Yes)\b", result.message), f"{ex.name}: {result.message!r}"


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_typical_mistakes_get_their_message(ex, monkeypatch):
    assert len(ex.wrong_answers) >= 2, f"{ex.name}: give at least two typical wrong answers"
    named = set()  # the mistakes of a function exercise that some wrong answer is told
    matches = FunctionExercise._matches

    def recording(self, mistake, case, got, expected):
        found = matches(self, mistake, case, got, expected)
        if found and self is ex:
            named.add(mistake.name)
        return found

    monkeypatch.setattr(FunctionExercise, "_matches", recording)
    for answer, fragment in ex.wrong_answers:
        result = ex.check(answer)
        assert not result.passed, f"{ex.name}: the wrong answer {answer!r} passes"
        assert fragment in result.message, f"{ex.name}: {answer!r} -> {result.message!r}, expected {fragment!r} in it"
    # A mistake no catalogued answer reaches could hold a typo in its message, or never match at all.
    unreached = [m.name for m in getattr(ex, "mistakes", ()) if isinstance(m, Mistake) and m.name not in named]
    assert not unreached, (f"{ex.name}: no wrong answer in its catalogue gets the message of {unreached}: add one "
                           "to wrong_answers (a function that makes that slip, and a piece of its message)")


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_blank_says_not_answered(ex):
    for result in (ex.check(BLANK), ex.check()):
        assert not result.passed
        assert "not answered" in result.message.lower()


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_odd_answers_fail_with_a_message(ex):
    for label, answer in ODD_ANSWERS.items():
        result = ex.check(answer)  # must not raise
        assert isinstance(result, CheckResult), f"{ex.name}: {label} gave {type(result).__name__}"
        assert not result.passed, f"{ex.name}: {label} passes"
        assert len(result.message.strip()) > 10, f"{ex.name}: {label} gets no real message: {result.message!r}"


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_hints_and_solution_have_text(ex, capsys):
    assert ex.question.strip()
    hint = ex.hint()
    assert isinstance(hint, str) and hint.strip()
    for level in range(1, len(ex.hints) + 1):
        assert ex.hint(level) == ex.hints[level - 1]
    solution = ex.solution()
    assert isinstance(solution, str) and solution.strip()
    assert ex.solution_text.strip() in solution
    assert capsys.readouterr().out.strip()  # outside a notebook, hints and solutions are printed


_PLACEHOLDER = re.compile(r"\{[A-Za-z_]\w*\}")


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_shown_texts_have_every_placeholder_filled(ex):
    # N_("... {planes} ...") without planes=... is shown with its braces; code (a solution's f-string) may have them.
    prose = [ex.question, *ex.hints, ex.solution_text]
    for shown in (re.sub(r"```.*?```|`[^`]*`", "", t, flags=re.S) for t in prose):
        found = _PLACEHOLDER.search(shown)
        assert not found, f"{ex.name}: {found[0]} is shown unfilled in {shown[:80]!r}: give its value, N_(..., name=value)"


def test_names_unique_and_modules_consistent():
    names = [ex.name for ex in EXERCISES]
    assert len(names) == len(set(names)), f"duplicate exercise names: {sorted(n for n in names if names.count(n) > 1)}"
    for number, path in _lesson_files().items():
        module = importlib.import_module(f"hrnet_teach.exercises.{path.stem}")
        assert module.EXERCISES, f"{path.name} has no exercises"
        for ex in module.EXERCISES:
            assert isinstance(ex, Exercise)
            assert ex.lesson == number, f"{ex.name} is in {path.name} but says lesson {ex.lesson!r}"
            assert getattr(module, ex.name, None) is ex, f"{path.name}: expose {ex.name!r} as a module attribute"


def test_enough_exercises_per_lesson():
    files = _lesson_files()
    counts = {n: len(importlib.import_module(f"hrnet_teach.exercises.{p.stem}").EXERCISES) for n, p in files.items()}
    course = [f"{n:02d}" for n in range(1, 9)]
    for number in course:
        if number in counts:
            assert counts[number] >= 2, f"lesson {number} has {counts[number]} exercise(s); each lesson 01-08 needs at least 2"
    if "03" in counts:
        assert counts["03"] >= 3, "the fuse-matrix lesson needs at least 3 exercises"
    present = [n for n in course if n in counts]
    assert sum(counts[n] for n in present) >= 2 * len(present)
    if len(present) == len(course):
        assert sum(counts[n] for n in present) >= 18, f"the course has {sum(counts.values())} exercises; it needs 18"


def _code_source(notebook: Path) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("number", sorted(_lesson_files()))
def test_each_lesson_notebook_uses_its_exercises(number):
    notebooks = sorted(NOTEBOOKS.glob(f"{number}_*.ipynb"))
    assert len(notebooks) == 1, f"lesson{number}.py needs exactly one notebooks/{number}_*.ipynb, found {notebooks}"
    source = _code_source(notebooks[0])
    module = importlib.import_module(f"hrnet_teach.exercises.lesson{number}")
    for ex in module.EXERCISES:
        used = f".{ex.name}.check(" in source or re.search(rf"\b{re.escape(ex.name)}\b", source)
        assert used, f"{notebooks[0].name} never checks the exercise {ex.name!r}"


def test_a_function_exercise_asks_for_the_name_the_notebook_defines():
    """The question names the function the lesson's cell defines and passes to check()."""
    from hrnet_teach.exercises._kinds import FunctionExercise

    for ex in (e for e in all_exercises() if isinstance(e, FunctionExercise)):
        assert ex.question.startswith(f"Write `{ex.fn_name}("), (ex.name, ex.question[:60])
