"""Checked exercises, one file per lesson (``lesson00.py`` ... ``lesson11.py``; the capstone's
checks live in ``capstone.py``, which ``lesson11.py`` declares).

Each lesson file defines ``EXERCISES``, a list of :class:`Exercise` objects, and
exposes each one as a module attribute named after it, so a notebook writes::

    from hrnet_teach.exercises import lesson03 as ex
    ex.fuse_shape.check(answer)

A lesson declares its exercises with the kinds in ``_kinds`` (ValueExercise,
ChoiceExercise, FunctionExercise, ModuleExercise). Your code runs under a time limit per
call (``TIME_LIMIT_S`` in ``_base``, 5 s unless HRNET_TEACH_TIME_LIMIT says otherwise);
change it with ``set_time_limit(seconds)``.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil

from ._base import BLANK, CheckResult, Exercise, NotAttempted, Wrong, set_time_limit
from ._kinds import (
    Case,
    ChoiceExercise,
    FunctionExercise,
    Mistake,
    ModuleExercise,
    ValueExercise,
    fact_mistakes,
    source_of,
)

__all__ = ["BLANK", "Case", "CheckResult", "ChoiceExercise", "Exercise", "FunctionExercise", "Mistake",
           "ModuleExercise", "NotAttempted", "ValueExercise", "Wrong", "all_exercises", "fact_mistakes", "get",
           "set_time_limit", "source_of"]


def _lesson_modules():
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("lesson"):
            yield importlib.import_module(f"{__name__}.{info.name}")


def all_exercises() -> list[Exercise]:
    """Every exercise of the course, in lesson order."""
    return [ex for module in _lesson_modules() for ex in module.EXERCISES]


def get(name: str) -> Exercise:
    """One exercise by its name."""
    for ex in all_exercises():
        if ex.name == name:
            return ex
    names = [e.name for e in all_exercises()]
    close = difflib.get_close_matches(str(name).strip().lower().replace("-", "_").replace(" ", "_"), names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"No exercise named {name!r}; {hint}names: {names}")
