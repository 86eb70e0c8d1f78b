"""The machinery behind every exercise: check, hint, solution, and the time limit.

An exercise is an object (as in Kaggle's learntools): ``ex.check(answer)`` returns a
:class:`CheckResult` (``passed``, ``message``); ``ex.hint()`` shows the next hint;
``ex.solution()`` shows the answer. ``check`` never raises: a blank answer, an answer of
the wrong type, a function that raises, loops or returns the wrong shape each get their
own message. How results, hints and solutions look lives in ``_view``; the kinds of
exercise a lesson declares (value, choice, function, module) live in ``_kinds``.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..i18n import Text, _, get_language, text, wrap
from . import _view

BLANK = ...  # notebook cells start with ``answer = ...``

def _seconds(value, source: str) -> float:
    """``value`` as a time limit: seconds above 0, inf for none (None is refused: it means "the default" elsewhere)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = 0.0
    if not seconds > 0:
        raise ValueError(_("The time limit is a number of seconds above 0, e.g. 5, or inf for no limit; {source} is "
                           "{value}.", source=source, value=repr(value)))
    return seconds


# Seconds one call of the learner's code may take (a function answer, or a module it built); inf for no
# limit. Set HRNET_TEACH_TIME_LIMIT before the import, or call set_time_limit(); an exercise's own
# ``time_limit`` wins over both.
TIME_LIMIT_S = _seconds(os.environ.get("HRNET_TEACH_TIME_LIMIT", "5"), "HRNET_TEACH_TIME_LIMIT")


def set_time_limit(seconds: float) -> None:
    """Change the default time limit of every exercise (seconds per call of your code); ``float("inf")`` for
    none (a looping answer then runs until the notebook's stop button interrupts it). Not None: an exercise's
    ``time_limit=None`` and ``call_learner(limit=None)`` mean this default."""
    global TIME_LIMIT_S
    TIME_LIMIT_S = _seconds(seconds, _("the value given"))


def _timeout(limit: float) -> float | None:
    """``limit`` as ``Thread.join`` takes it: None (wait as long as it takes) for inf, or for a limit longer than
    the platform can wait (``join(inf)`` raises OverflowError, in the check's thread, not the learner's)."""
    return limit if limit <= threading.TIMEOUT_MAX else None


def shown(value: Any) -> str:
    """What the learner sees of a question, hint or solution: a zero-argument function is
    called, a marked message (``N_``) translated into the current language."""
    return text(value() if callable(value) else value)


@dataclass
class CheckResult:
    """The outcome of a check: plain data (the notebook look is ``_view.result_html``)."""

    passed: bool
    message: str
    exercise: str = ""

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return _view.result_text(self.passed, self.message)

    __repr__ = __str__

    def _repr_html_(self) -> str:  # the notebook's display hook; the drawing is the view's
        return _view.result_html(self.passed, self.message)


class Wrong(Exception):
    """Raised inside a checker to fail with a specific message."""


class NotAttempted(Exception):
    """Raised inside a checker when the answer is still the blank."""


class CourseBug(Exception):
    """The check itself failed, whatever the answer was (a reference that raises): said as the course's bug."""


class TimeLimit(Wrong):
    """The learner's code did not return within the time limit."""


class _Stopped(BaseException):
    """Raised inside the learner's thread to end a call that ran out of time (a BaseException, so an
    ``except Exception`` in the learner's code does not swallow it)."""


class _AnswerThread(threading.Thread):
    """A daemon thread for one call of the learner's code; ``answered`` is set once the call is over (so
    the thread is not interrupted again while it winds down)."""

    def __init__(self, target: Callable):
        super().__init__(target=target, name="hrnet-teach-answer", daemon=True)
        self.answered = threading.Event()

    def run(self) -> None:
        try:
            super().run()
        except _Stopped:  # a second stop that arrived while the first was being handled
            pass


# Between two tries to stop a call: short, since a loop that calls a __del__ at every turn swallows most
# tries, and still far longer than a stopped call takes to wind down (``answered`` is set by then).
_RETRY_S = 0.01


def _quiet_lost_stops() -> None:
    """Leave out Python's "Exception ignored in ..." report for a :class:`_Stopped` that landed in a
    ``__del__`` or weakref callback: it is the check's, not the learner's, and the next try stops the call.
    Every other report goes to the hook that was there."""
    previous = sys.unraisablehook
    if getattr(previous, "quiet_lost_stops", False):
        return

    def hook(unraisable):
        if not isinstance(unraisable.exc_value, _Stopped):
            previous(unraisable)

    hook.quiet_lost_stops = True
    sys.unraisablehook = hook


def _stop(thread: _AnswerThread, wait: float = 0.2) -> bool:
    """Raise :class:`_Stopped` in ``thread`` at its next Python instruction: a loop in Python stops at
    once, a call blocked in C (time.sleep, a long torch op) when it returns. Whether it ended within ``wait`` s.

    It is raised again every ``_RETRY_S`` s while the call runs on: Python reports an exception raised
    inside a ``__del__`` or a weakref callback as "Exception ignored" and goes on, so a loop that drops
    such objects outlived single stops (measured with one try: 7 of 20 loops filling a WeakKeyDictionary,
    4 of 10 loops dropping objects with a ``__del__``, ran on in the background)."""
    _quiet_lost_stops()
    end = time.monotonic() + wait
    while True:
        if thread.answered.is_set():
            break
        try:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(_Stopped))
        except AttributeError:  # not CPython: no way to interrupt a thread, it runs on in the background
            return False
        thread.join(max(0.0, min(_RETRY_S, end - time.monotonic())))
        if not thread.is_alive() or time.monotonic() >= end:
            break
    thread.join(max(0.0, end - time.monotonic()))
    return not thread.is_alive()


_ANSWER_THREADS: weakref.WeakSet[_AnswerThread] = weakref.WeakSet()


@atexit.register
def _stop_answers_at_exit(budget: float = 3.0) -> None:
    """Stop the calls that ran out of time and still run, before Python shuts down (within ``budget`` s): a
    thread that wakes up inside torch while the interpreter is being torn down aborts the whole process
    ("terminate called without an active exception", exit code 134, after all tests passed)."""
    end = time.monotonic() + budget
    for thread in list(_ANSWER_THREADS):
        if thread.is_alive():
            _stop(thread, wait=max(0.0, end - time.monotonic()))


def _out_of_time(limit: str, on: str, stopped: bool, cuda_ready: bool) -> str:
    """The TimeLimit message. When CUDA started during the call (it was not yet in use), loading CUDA and cuDNN
    (seconds, once per session) may be why, not a loop: the learner is told to run the check again."""
    if stopped:
        message = _("Your function did not return within {limit} s{on}: does it loop forever or wait "
                    "(time.sleep, input())? The check stopped it.", limit=limit, on=on)
    else:
        message = _("Your function did not return within {limit} s{on}: does it loop forever or wait "
                    "(time.sleep, input())? The check stopped waiting; the call still runs in the background "
                    "(restart the kernel if the notebook slows down).", limit=limit, on=on)
    if not cuda_ready and torch.cuda.is_initialized():
        message += _(" It was the session's first CUDA call, which loads CUDA and cuDNN: run the check again.")
    return message


def _default_device_type() -> str:
    """torch.get_default_device().type. torch 2.7 (the floor, README) raises AttributeError there once a
    `with torch.device(...)` block has ended in the thread (it leaves None as the context): then it is the CPU."""
    try:
        return torch.get_default_device().type
    except AttributeError:
        return "cpu"


def call_learner(fn: Callable, *args, limit: float | None = None, where: str = "") -> Any:
    """``fn(*args)`` under a time limit (and without autograd), in a daemon thread.

    ``limit`` is in seconds (inf: no limit); None means the default, ``TIME_LIMIT_S``. After ``limit`` seconds
    the check stops waiting, stops the call if it can (a Python thread cannot
    be killed, only interrupted between two Python instructions) and raises :class:`TimeLimit`.
    Exceptions from ``fn`` are raised here; one that would end the program (SystemExit from
    sys.exit(), KeyboardInterrupt) becomes a :class:`Wrong` instead: it is the answer's mistake, and
    in a script it would end the course silently. A real Ctrl-C (or the notebook's stop button)
    while waiting still interrupts, and stops the call too.
    """
    limit = TIME_LIMIT_S if limit is None else limit
    outcome: dict[str, Any] = {}
    cuda_ready = torch.cuda.is_initialized()  # a call that starts CUDA pays for loading it: said if it runs out of time

    def run():
        try:
            with torch.no_grad():  # grad mode is per thread
                outcome["value"] = fn(*args)
        except _Stopped:  # out of time: nobody waits for the result any more
            pass
        except BaseException as error:  # handed to the caller's thread below
            outcome["error"] = error
        finally:
            thread.answered.set()

    thread = _AnswerThread(run)
    _ANSWER_THREADS.add(thread)
    thread.start()
    try:
        thread.join(_timeout(limit))
    except KeyboardInterrupt:
        _stop(thread)
        raise
    on = _(" on {where}", where=where) if where else ""
    if thread.is_alive():
        raise TimeLimit(_out_of_time(format(limit, "g"), on, _stop(thread), cuda_ready))
    error = outcome.get("error")
    if error is not None and not isinstance(error, Exception):  # SystemExit, KeyboardInterrupt ...
        raise Wrong(_("Your function raised {error_type}{on} ({where}): that exception ends the whole program "
                      "(sys.exit() and exit() raise SystemExit). Return the result instead.",
                      error_type=type(error).__name__, on=on, where=where_raised(error)))
    if error is not None:
        raise error
    return outcome.get("value")


def _library_roots() -> dict[str, str]:
    """The folders of this package ("package"), torch, numpy (once imported) and Python's own library ("stdlib")."""
    roots = {"package": os.path.dirname(os.path.dirname(__file__)), "torch": os.path.dirname(torch.__file__),
             "stdlib": os.path.dirname(threading.__file__)}
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        roots["numpy"] = os.path.dirname(numpy.__file__)
    return roots


def _library(filename: str) -> bool:
    """Whether a traceback frame is in this package, torch, numpy or Python's own library, not in the learner's code."""
    return any(filename.startswith(root + os.sep) for root in _library_roots().values())


def _library_file(filename: str) -> str | None:
    """A file of torch, numpy or Python's library as its path in that library (torch/nn/modules/conv.py,
    threading.py); None for this package's files and the learner's."""
    roots = _library_roots()
    if filename.startswith(roots.pop("package") + os.sep):
        return None
    holding = [(name, root) for name, root in roots.items() if filename.startswith(root + os.sep)]
    if not holding:
        return None
    # the longest root that holds it: torch's and numpy's lie inside Python's (site-packages)
    name, root = max(holding, key=lambda item: len(item[1]))
    # Python's own files are named from its folder (threading.py); torch's and numpy's with their package's name
    base = root if name == "stdlib" else os.path.dirname(root)
    return os.path.relpath(filename, base).replace(os.sep, "/")


def learner_frames(error: BaseException) -> list[traceback.FrameSummary]:
    """The frames of ``error``'s traceback in the learner's code (not this package's, torch's or Python's)."""
    return [f for f in traceback.extract_tb(error.__traceback__) if not _library(f.filename)]


# (file, function) of the places that call the learner's code: a TypeError raised there, with no
# frame of the learner's, is the call itself not fitting the answer's parameters. Kinds add theirs.
CALL_SITES = {(os.path.abspath(__file__), "run")}


def _at_call_site(error: BaseException) -> bool:
    """Whether the innermost frame of ``error`` is a place that calls the learner's code: the answer
    (a builtin, or a function whose parameters do not fit) raised before any line of Python ran."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and (os.path.abspath(frames[-1].filename), frames[-1].name) in CALL_SITES


def _through_call_site(error: BaseException) -> bool:
    """Whether ``error`` came out of a call of the learner's answer (raised by it, or by the library code it
    called, e.g. a torch class given as the answer), not from the checker's own code."""
    return any((os.path.abspath(f.filename), f.name) in CALL_SITES for f in traceback.extract_tb(error.__traceback__))


def where_raised(error: BaseException) -> str:
    """'line N in name' of the learner's frame nearest to where ``error`` was raised (torch's and the
    package's frames skipped: the line to fix is theirs); the innermost frame when none is theirs, with its
    file when that is torch's, numpy's or Python's (a torch class given as the answer)."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return _("no traceback")
    mine = learner_frames(error)
    if not mine and isinstance(error, TypeError) and _at_call_site(error):
        return _("when the check called your function: keep the parameters of the notebook's `def` line")
    frame = (mine or frames)[-1]
    library = None if mine else _library_file(frame.filename)
    if library is not None:  # e.g. nn.Conv2d given as the answer: "line 106 in __init__" would read as theirs
        return _("line {line} in {name} of {file}", line=frame.lineno, name=frame.name, file=library)
    return _("line {line} in {name}", line=frame.lineno, name=frame.name)


# Also after full-width punctuation: a value that ends in "）" leaves "） 上" otherwise.
_BETWEEN_HANZI = re.compile(r"(?<=[\u4e00-\u9fff，。：；、）]) (?=[\u4e00-\u9fff])")


def _tidy(message: str) -> str:
    """A Chinese message without the spaces its template keeps around a placeholder when the value
    filled in is Chinese too ("与 参考实现 一致" -> "与参考实现一致"); English text is left alone."""
    return _BETWEEN_HANZI.sub("", message) if get_language() == "zh" else message


def _holds_blank(answer: Any) -> bool:
    """Whether a list, tuple, set or dict answer still holds a ``...`` somewhere: (64, ...)."""
    if isinstance(answer, dict):
        answer = list(answer.values())
    if isinstance(answer, (list, tuple, set, frozenset)):
        return any(v is BLANK or _holds_blank(v) for v in answer)
    return False


def _brief(error: BaseException) -> str:
    """An error's text as a message quotes it: its first line, cut at 300 characters (torch's dispatcher errors
    run to thousands of characters, listing every backend, and would bury what the message says)."""
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= 300 and len(lines) <= 1 else first[:300].rstrip() + " ..."


def _shorten_numbers(message: str) -> str:
    """A message with each run of more than 40 digits cut in the middle: an answer such as 10**400,
    repeated by a lesson's message, would fill the screen."""
    return re.sub(r"\d{41,}", lambda m: f"{m[0][:18]}...{m[0][-18:]}", message)


class Exercise:
    """One exercise: the question, the reference answer, hints, a solution, and typical
    wrong answers with a piece of the message each must get (the test suite checks them
    all). Give ``checker(answer)``, which returns a success message or raises
    :class:`Wrong`, or use a kind from ``_kinds``, which implements ``_check``."""

    def __init__(self, *, name: str, lesson: str, question: str, reference: Any = None,
                 checker: Callable[[Any], str] | None = None, hints: Sequence[str] = (), solution_text: str = "",
                 wrong_answers: Sequence[tuple[Any, str]] = (), time_limit: float | None = None):
        if isinstance(hints, (str, Text)):  # list("Look at conv3") would be 13 hints of one letter
            raise ValueError(f"{name}: hints is a list of texts: hints=[N_(\"...\")]")
        if any(not (isinstance(pair, tuple) and len(pair) == 2) for pair in wrong_answers):
            raise ValueError(f"{name}: wrong_answers is a list of (answer, piece of its message) pairs, e.g. "
                             "[(64, \"expansion\")]")
        self.name, self.lesson = name, lesson
        self._reference, self.checker = reference, checker
        # Kept as declared and translated when read: the notebook may choose its language after the import.
        self._question, self._hints, self._solution_text = question, list(hints), solution_text
        self._wrong_answers, self.time_limit = list(wrong_answers), time_limit
        self._hints_shown = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.lesson}/{self.name}>"

    @property
    def question(self) -> str:
        # Each line wrapped to 100 columns: notebooks print questions, and a narrow pane would
        # break them mid-word.
        return wrap(shown(self._question), 100)

    @property
    def hints(self) -> list[str]:
        return [shown(h) for h in self._hints]

    @property
    def solution_text(self) -> str:
        return shown(self._solution_text)

    @property
    def reference(self) -> Any:
        return self._reference

    @property
    def wrong_answers(self) -> list[tuple[Any, str]]:
        """The catalogued mistakes: those given, then those the kind derives from its tables; a
        fragment marked with ``N_`` is read in the current language."""
        return [(answer, text(fragment)) for answer, fragment in self._wrong_answers + self._derived_wrong_answers()]

    def _derived_wrong_answers(self) -> list[tuple[Any, str]]:
        return []

    def call(self, fn: Callable, *args, where: str = "") -> Any:
        """Call the learner's ``fn`` under this exercise's time limit."""
        return call_learner(fn, *args, limit=self.time_limit, where=where)

    def _check(self, answer: Any) -> str:
        return self.checker(answer)

    def check(self, answer: Any = BLANK) -> CheckResult:
        if answer is BLANK:
            return self._result(False, _("You have not answered yet: replace the `...` with your answer and run the cell again."))
        if _holds_blank(answer):
            return self._result(False, _("Part of your answer is still `...`: replace each `...` with a value and "
                                         "run the cell again."))
        try:
            # The checker's cases, references and official modules on the CPU, whatever default device the
            # notebook set (torch.set_default_device('cuda') on a GPU runtime would put them on the GPU, where
            # their CPU generators raise); the learner's code runs in its own thread, on the CPU already.
            # Only then: the device context intercepts every torch call (about a quarter slower checks).
            on_cpu = _default_device_type() == "cpu"
            with contextlib.nullcontext() if on_cpu else torch.device("cpu"):
                message = self._check(answer)
        except NotAttempted as blank:
            return self._result(False, str(blank) or _("You have not answered yet."))
        except CourseBug as bug:
            return self._result(False, _("The check itself failed: {bug}. That is a bug of the course, not of your "
                                         "answer: please report it.", bug=bug))
        except Wrong as wrong:
            return self._result(False, str(wrong))
        except NotImplementedError as error:
            if learner_frames(error) or _through_call_site(error):  # else torch's, e.g. moving a meta tensor
                return self._result(False, _("Your function still raises NotImplementedError: fill in its body and "
                                             "run the cell again."))
            return self._failed(error)
        except Exception as error:  # the learner's code raised: say where, never crash
            return self._failed(error)
        return self._result(True, message or _("Well done."))

    def _failed(self, error: Exception) -> CheckResult:
        """The result for an exception out of the check: the answer's (it came from their code, or through a call
        of it), or the checker's own failure, said as such."""
        values = dict(error_type=type(error).__name__, error=_brief(error), where=where_raised(error))
        if learner_frames(error) or _through_call_site(error):
            return self._result(False, _("Your answer raised {error_type}: {error} ({where})", **values))
        return self._result(False, _("The check failed on this answer with {error_type}: {error} ({where}, in the "
                                     "course's own code). Is your answer of the kind the question asks for? If it "
                                     "is, this is a bug of the course: please report it.", **values))

    def _result(self, passed: bool, message: str) -> CheckResult:
        return CheckResult(passed, _shorten_numbers(_tidy(text(message))), self.name)

    def _hint_level(self, level: int | None) -> int:
        if level is None:
            level = self._hints_shown + 1
        try:  # 2, "2", 2.0 and np.int64(2) are hint 2; True, 2.5 and "next" are no hint number
            value = int(level.strip()) if isinstance(level, str) else level
            number = None if isinstance(value, bool) or value != int(value) else int(value)
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise ValueError(_("hint() takes a hint number from 1 to {count}, e.g. hint(2), or nothing for the next "
                               "one; you gave {level}.", count=len(self.hints), level=repr(level)))
        level = max(1, min(number, len(self.hints)))
        self._hints_shown = max(self._hints_shown, level)
        return level

    def hint(self, level: int | None = None) -> _view.Shown:
        """Show the next hint, after those already shown (or only hint number ``level``, from 1).

        The hints so far come again with the next one: a cell whose ``hint()`` is run a second time would
        otherwise replace hint 1 on the screen by hint 2."""
        if not self.hints:
            return _view.show(_("Hint:"), _("No hint for this one; try `solution()`."))
        first = 1 if level is None else None
        level = self._hint_level(level)
        for earlier in range(first or level, level):
            self._show_hint(earlier)
        return self._show_hint(level)

    def _show_hint(self, level: int) -> _view.Shown:
        title = (_("Hint (hint {level} of {count}):", level=level, count=len(self.hints))
                 if len(self.hints) > 1 else _("Hint:"))
        return _view.show(title, self.hints[level - 1])

    def solution(self) -> _view.Shown:
        return _view.show(_("Solution:"), self.solution_text)
