"""The machinery behind every exercise: check, hint, solution, and friendly results.

An exercise is an object (as in Kaggle's learntools): ``ex.check(answer)`` returns a
:class:`CheckResult` (``passed``, ``message``) that renders green or red in a
notebook; ``ex.hint()`` shows the next hint; ``ex.solution()`` shows the answer.
``check`` never raises: a blank answer, an answer of the wrong type, a function
that raises or returns the wrong shape each get their own message.
"""
from __future__ import annotations

import html
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

BLANK = ...  # notebook cells start with ``answer = ...``


@dataclass
class CheckResult:
    passed: bool
    message: str
    exercise: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        mark = "Correct" if self.passed else "Not yet"
        return f"{mark}: {self.message}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour, mark = ("#1a7f37", "✔ Correct") if self.passed else ("#b35900", "✘ Not yet")
        return (
            f'<div style="border-left:4px solid {colour};padding:4px 10px;">'
            f'<b style="color:{colour}">{mark}</b> {html.escape(self.message)}</div>'
        )


class Shown(str):
    """Text that was already displayed: returned by hint() and solution() so the
    notebook does not show it a second time when it is the cell's last value."""

    def _ipython_display_(self) -> None:  # already shown
        pass


def _show(title: str, text: str) -> Shown:
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(f"**{title}** {text}"))
            return Shown(text)
    except ImportError:
        pass
    print(f"{title} {text}")
    return Shown(text)


class Wrong(Exception):
    """Raised inside a checker to fail with a specific message."""


class NotAttempted(Exception):
    """Raised inside a checker when the answer is still the blank."""


@dataclass
class Exercise:
    """One exercise. Subclasses (or instances) give ``checker(answer)``, which
    returns a success message or raises :class:`Wrong` with what is wrong."""

    name: str
    lesson: str
    question: str
    checker: Callable[[Any], str]
    reference: Any
    hints: Sequence[str] = field(default_factory=list)
    solution_text: str = ""
    # Typical mistakes and a piece of the message each must get: (answer, expected text).
    # The test suite checks every one, so the feedback stays specific.
    wrong_answers: Sequence[tuple[Any, str]] = field(default_factory=list, repr=False)
    _hints_shown: int = field(default=0, repr=False)

    def check(self, answer: Any = BLANK) -> CheckResult:
        if answer is BLANK:
            return self._result(False, "You have not answered yet: replace the `...` with your answer and run the cell again.")
        try:
            message = self.checker(answer)
        except NotAttempted as blank:
            return self._result(False, str(blank) or "You have not answered yet.")
        except Wrong as wrong:
            return self._result(False, str(wrong))
        except NotImplementedError:
            return self._result(False, "Your function still raises NotImplementedError: fill in its body and run the cell again.")
        except Exception as error:  # the learner's code raised: say where, never crash
            return self._result(False, f"Your answer raised {type(error).__name__}: {error} ({_where(error)})")
        return self._result(True, message or "Well done.")

    def _result(self, passed: bool, message: str) -> CheckResult:
        return CheckResult(passed, message, self.name)

    def hint(self, level: int | None = None) -> Shown:
        """The next hint (or hint number ``level``, from 1)."""
        if not self.hints:
            return _show("Hint:", "No hint for this one; try `solution()`.")
        if level is None:
            level = min(self._hints_shown + 1, len(self.hints))
        level = max(1, min(int(level), len(self.hints)))
        self._hints_shown = max(self._hints_shown, level)
        suffix = f" (hint {level} of {len(self.hints)})" if len(self.hints) > 1 else ""
        return _show(f"Hint{suffix}:", self.hints[level - 1])

    def solution(self) -> Shown:
        return _show("Solution:", self.solution_text)


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "no traceback"
    last = frames[-1]
    return f"line {last.lineno} in {last.name}"
