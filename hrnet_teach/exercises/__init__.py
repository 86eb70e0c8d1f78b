"""Checked exercises, one file per lesson (``lesson01.py`` ... ``lesson08.py``).

Each lesson file defines ``EXERCISES``, a list of :class:`Exercise` objects, and
exposes each one as a module attribute named after it, so a notebook writes::

    from hrnet_teach.exercises import lesson03 as ex
    ex.fuse_shape.check(answer)
"""
from __future__ import annotations

import importlib
import pkgutil

from ._base import BLANK, CheckResult, Exercise, NotAttempted, Wrong

__all__ = ["BLANK", "CheckResult", "Exercise", "NotAttempted", "Wrong", "all_exercises", "get"]


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
    raise ValueError(f"No exercise named {name!r}; names: {[e.name for e in all_exercises()]}")
