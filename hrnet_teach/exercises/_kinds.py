"""The kinds of exercise a lesson declares: a lesson file is a list of these, plus the few
checks that are truly its own.

- :class:`ValueExercise`: a number, shape, list or name. ``read`` normalises the answer
  (or raises :class:`Wrong` about its type), ``mistakes`` maps a normalised wrong answer
  to its message, ``explain(got, expected)`` covers what a table cannot.
- :class:`ChoiceExercise`: a multiple-choice question, with a message per wrong choice.
- :class:`FunctionExercise`: the learner's function runs on ``cases`` under a time limit
  and is compared with a reference function (type, shape, values); the first difference
  becomes the message of the :class:`Mistake` that explains it.
- :class:`ModuleExercise`: the learner's function builds an ``nn.Module``, compared with
  the official one by None-ness, state-dict keys and shapes, then outputs.

Messages may be text or functions: ``ValueExercise``'s take ``(got, expected)``, a
``Mistake``'s take ``(case, got, expected)``. A zero-argument lambda as ``reference``,
``mistakes`` or ``cases`` is computed on first use, so importing a lesson stays cheap.
Each kind adds what it can of its tables to ``wrong_answers`` (every key of a ``ValueExercise``'s
``mistakes``; every ``Mistake`` with ``like=`` and a text message), so the test suite checks them.
It also checks that every ``Mistake`` is told to at least one catalogued wrong answer: give one in
``wrong_answers`` for a ``when=`` detector or a message made by a function.
"""
from __future__ import annotations

import copy
import inspect
import math
import os
import re
import textwrap
import traceback
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..i18n import N_, Text, _, text
from ._answers import (
    a_type,
    as_choice,
    as_function,
    choices_text,
    dtype_name,
    layer_summary,
    one_thread,
    random_bn,
    short_repr,
)
from ._base import CALL_SITES, CourseBug, Exercise, Wrong, where_raised

Message = Any  # a str, or a function returning one


def _lazy(value: Any) -> Any:
    """A zero-argument lambda or function (cached or not) stands for the value it returns."""
    fn = getattr(value, "__wrapped__", value)
    if isinstance(fn, types.FunctionType) and fn.__code__.co_argcount == 0:
        return value()
    return value


def _say(message: Message, *args) -> str:
    return text(message(*args) if callable(message) else message)


def source_of(fn: Callable, name: str | None = None, note: str = "") -> str:
    """A reference function's own code as a solution, its def renamed to ``name`` (the notebook's
    name for it): one definition, so what is shown is what the check runs."""
    code = textwrap.dedent(inspect.getsource(fn)).strip()
    if name:
        code = re.sub(rf"^def {re.escape(fn.__name__)}\(", f"def {name}(", code, count=1, flags=re.MULTILINE)
    if note:  # a marked note is translated when the solution is shown
        return lambda: f"```python\n{code}\n```{text(note)}"
    return f"```python\n{code}\n```"


def _key(value: Any) -> Any:
    """A hashable form of a normalised answer (lists become tuples, sets frozensets)."""
    if isinstance(value, (list, tuple)):
        return tuple(_key(v) for v in value)
    if isinstance(value, set):
        return frozenset(value)
    return value


class ValueExercise(Exercise):
    """An answer that is a value: ``read(answer)`` == ``read(reference)`` passes. A wrong one
    gets, in order: its entry in ``mistakes``, the message of the first of ``rules`` (pairs
    of ``test(got, expected)`` and message) that holds, ``explain(got, expected)`` if it
    says something, else ``otherwise``."""

    def __init__(self, *, read: Callable[[Any], Any], reference: Any, success: Message = "",
                 mistakes: Mapping[Any, Message] | Callable[[], Mapping] = (), explain: Callable | None = None,
                 rules: Sequence[tuple[Callable[[Any, Any], bool], Message]] = (), otherwise: Message = None,
                 same: Callable[[Any, Any], bool] | None = None, **common):
        super().__init__(reference=reference, **common)
        self.read, self.success, self.explain, self.otherwise = read, success, explain, otherwise
        self.rules = list(rules)
        self._mistakes, self.same = mistakes, same or (lambda got, expected: got == expected)

    @property
    def reference(self) -> Any:
        if not hasattr(self, "_resolved"):
            self._resolved = _lazy(self._reference)
        return self._resolved

    @property
    def mistakes(self) -> dict:
        if not hasattr(self, "_mistake_table"):
            self._mistake_table = {_key(k): v for k, v in dict(_lazy(self._mistakes)).items()}
        return self._mistake_table

    def _check(self, answer: Any) -> str:
        got, expected = _key(self.read(answer)), _key(self.read(self.reference))
        if self.same(got, expected):
            return _say(self.success, got, expected)
        try:
            message = self.mistakes.get(got)
        except TypeError:  # an unhashable reading: no table entry
            message = None
        if message is None:  # the first rule whose test holds
            message = next((m for test, m in self.rules if test(got, expected)), None)
        if message is None and self.explain is not None:
            message = self.explain(got, expected)
        if message is None:
            message = (_say(self.otherwise, got, expected) if self.otherwise
                       else _("Not {got}: try again, or ask for a hint.", got=short_repr(got)))
        raise Wrong(_say(message, got, expected))

    def _derived_wrong_answers(self) -> list[tuple[Any, str]]:
        expected = _key(self.read(self.reference))
        for key in self.mistakes:
            _check_readable(self, key)
        return [(k, _say(m, k, expected)) for k, m in self.mistakes.items()]


def _check_readable(exercise: ValueExercise, key: Any) -> None:
    """A ``mistakes`` key is looked up in the form ``read`` gives an answer: one that reads otherwise
    ("64" where read gives 64) would never be found, and its message never shown."""
    try:
        reading = _key(exercise.read(key))
    except Wrong as wrong:
        reading = f"Wrong({wrong})"
    if reading != key:
        raise ValueError(f"{exercise.name}: the mistakes key {key!r} is never looked up: answers are looked up as "
                         f"read() gives them, and read({key!r}) gives {reading!r}. Write the key in that form.")


class ChoiceExercise(ValueExercise):
    """Multiple choice: ``choices`` {letter: text}, the right ``answer``, and ``why`` each
    other letter is wrong. The choices are listed under the question."""

    def __init__(self, *, question: str, choices: Mapping[str, str], answer: str, why: Mapping[str, Message],
                 success: Message, **common):
        name = common.get("name")
        if answer not in choices:
            raise ValueError(f"{name}: the answer {answer!r} is not one of the choices {sorted(choices)}")
        missing, extra = set(choices) - set(why) - {answer}, set(why) - set(choices)
        if missing or extra or answer in why:
            raise ValueError(f"{name}: give a `why` for each wrong choice, keyed by its letter as in `choices` "
                             f"(missing {sorted(missing)}; not a wrong choice: {sorted(extra | ({answer} & set(why)))})")
        super().__init__(question=lambda: f"{text(question)}\n{choices_text(choices)}", read=lambda a: as_choice(a, choices),
                         reference=answer, mistakes=why, success=success, **common)
        self.choices = dict(choices)


class Case:
    """One call of the learner's function: its arguments, how to name it in a message,
    and optionally the expected result (else the exercise computes it)."""

    _UNSET = object()

    def __init__(self, *args, where: str = "", expected: Any = _UNSET):
        self.args, self.where, self._expected = args, where, expected
        self.answer: Callable | None = None  # while checked: the learner's function (a slip may show only across calls)

    @property
    def has_expected(self) -> bool:
        return self._expected is not Case._UNSET


class Mistake:
    """A typical slip: a ``name``, its ``message``, and how to recognise it: ``like``, a
    wrong implementation whose result the answer matches (or whose exception, same type and
    text, it raises on the same case), or ``when(case, got, expected)``, a detector (got may
    be the exception the answer raised). ``like`` implementations with a text message are also
    tested as wrong answers, with ``fragment`` (default: the whole message) to find in the message;
    for the others, catalogue a wrong answer that makes the slip (the tests ask for one). With
    ``always=True`` it is checked even when the result matches (an answer that returns the
    package's own module, say)."""

    def __init__(self, name: str, message: Message, *, like: Callable | None = None,
                 when: Callable[..., bool] | None = None, fragment: str | None = None, always: bool = False):
        if (like is None) == (when is None):
            raise ValueError(f"Mistake {name!r}: give exactly one of like= and when=")
        if not callable(like if when is None else when):
            raise ValueError(f"Mistake {name!r}: like= is a function that makes the slip, when= a function that "
                             f"detects it; you gave a {type(like if when is None else when).__name__}")
        self.name, self.message, self.like, self.when, self.fragment = name, message, like, when, fragment
        self.always = always


def fact_mistakes(facts: Callable, rows: Sequence[tuple[str, Callable, str]],
                  always: Iterable[str] = ()) -> list[Mistake]:
    """Mistakes from a table of ``(name, test(f), message)``: ``facts(case, got)`` describes the answer
    as a namespace, or a list of them (one per entry: the first entry whose test holds is named);
    each message is a ``str.format`` over that namespace: a plain string, or ``N_("...")`` (translated,
    then filled). The rows named in ``always`` are checked even when the outputs match (an nn.Identity
    where None belongs gives the same outputs and keys). An answer that raised gets no row: a fact table
    describes a built object, and the error is said as it is (an empty op's facts would hold many rows)."""
    always = set(always)

    def mistake(name: str, test: Callable, message: str | Text) -> Mistake:
        def first(case, got, expected):
            if isinstance(got, BaseException):
                return None
            found = facts(case, got)
            return next((f for f in (found if isinstance(found, list) else [found]) if test(f)), None)
        return Mistake(name, lambda *a: _fill(message, vars(first(*a))), when=lambda *a: first(*a) is not None,
                       always=name in always)
    return [mistake(*row) for row in rows]


def _fill(message: str | Text, values: Mapping) -> str:
    """``message`` (a marked ``N_`` text is translated first) with ``values`` in its placeholders."""
    if isinstance(message, Text):
        return _(message.message, **{**message.values, **values})
    return message.format(**values)




def _short(value: Any) -> str:
    if isinstance(value, torch.Tensor) and value.dim() == 0:  # "tensor " with no sizes would show nothing
        return short_repr(value)
    if isinstance(value, torch.Tensor):
        return "tensor " + "x".join(map(str, value.shape))
    if isinstance(value, nn.Module):
        return type(value).__name__
    if isinstance(value, type):
        return value.__name__
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], torch.Tensor):
        return f"[{', '.join(_short(v) for v in value)}]"
    return short_repr(value)


def _fresh(value: Any, modules: bool = True) -> Any:
    """Copies of the tensors and modules in an argument, so an answer that works in place (on a tensor,
    a list, or a module's weights and BatchNorm statistics) harms no other call, nor a later check.
    ``modules=False`` shares the modules: for the course's own slips, which leave them as they are
    (tests/test_exercise_kinds.py runs each on each case to hold them to it), since a deepcopy per slip
    and case was most of a check's time (fuse_sum's 19 catalogued wrong answers: 1.10 s, 0.28 s without)."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, nn.Module):
        if not modules:
            return value
        try:
            return copy.deepcopy(value)
        except Exception:  # a module holding something that cannot be copied: shared, as before
            return value
    if isinstance(value, (list, tuple)):
        items = [_fresh(v, modules) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)  # a namedtuple takes fields
    if isinstance(value, dict):
        return {k: _fresh(v, modules) for k, v in value.items()}
    return value


def _same_tensor(a: torch.Tensor, b: Any) -> bool:
    """Same shape, dtype and values (NaN where NaN was); a tensor on the meta device has only its shape."""
    if not isinstance(b, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.device.type == "meta" or b.device.type == "meta":
        return True
    a, b = a.detach().cpu(), b.detach().cpu()
    if a.is_floating_point() or a.is_complex():
        return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
    return torch.equal(a, b)


def changed_in_place(before: Any, after: Any, name: str) -> str | None:
    """What of ``after``, the copy of an argument that the learner's function was given, no longer equals
    ``before``, the case's own ("xs[2]", "bn.running_mean", "the mode of block"); None where nothing does. A
    module is compared by its state dict (weights and BatchNorm statistics) and its training flags, a list by
    its length and items."""
    if isinstance(before, torch.Tensor):
        return None if _same_tensor(before, after) else name
    if isinstance(before, nn.Module):
        if after is before or not isinstance(after, nn.Module):  # shared: a module that deepcopy refused
            return None
        ours, theirs = before.state_dict(), after.state_dict()
        key = next((k for k in ours if not _same_tensor(ours[k], theirs.get(k))), None)
        if key is not None or ours.keys() != theirs.keys():
            return f"{name}.{key}" if key is not None else _("the parts of {name}", name=name)
        if [m.training for m in before.modules()] != [m.training for m in after.modules()]:
            return _("the mode of {name} (train() or eval())", name=name)
        return None
    if isinstance(before, (list, tuple)) and isinstance(after, (list, tuple)):
        if len(before) != len(after):
            return _("the length of {name}", name=name)
        return next((c for k, (x, y) in enumerate(zip(before, after))
                     if (c := changed_in_place(x, y, f"{name}[{k}]"))), None)
    if isinstance(before, dict) and isinstance(after, dict):
        if before.keys() != after.keys():
            return _("the keys of {name}", name=name)
        return next((c for k in before if (c := changed_in_place(before[k], after[k], f"{name}[{k!r}]"))), None)
    if isinstance(before, (int, float, str)) and before == before and before != after:  # an item of a list (nan: not)
        return name
    return None


def _versions(args: Any) -> dict[int, int]:
    """The version counter of each tensor an answer is given: torch bumps it at every in-place write."""
    return {id(t): t._version for t in tensors_in(list(args))}


def _written(value: Any, versions: dict[int, int], name: str) -> str | None:
    """Where an answer wrote into a tensor it was given that still holds the same values (a relu_() on what is
    already non-negative): the values cannot show it, the version counter does, and so would autograd in training."""
    if isinstance(value, torch.Tensor):
        return name if id(value) in versions and value._version != versions[id(value)] else None
    if isinstance(value, (list, tuple)):
        return next((w for k, v in enumerate(value) if (w := _written(v, versions, f"{name}[{k}]"))), None)
    return None


def _numpy_on_a_tensor_with_grad(error: BaseException) -> bool:
    """Whether ``error`` was raised by a line (the innermost outside torch) that calls .numpy(): on a tensor that
    requires a gradient, torch refuses it. Read from the answer's own line, not from torch's wording."""
    root = os.path.dirname(torch.__file__) + os.sep
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(root)]
    return isinstance(error, RuntimeError) and bool(frames) and ".numpy(" in (frames[-1].line or "")


def _requiring_grad(value: Any) -> Any:
    """``value`` with each floating tensor made one that requires a gradient, as in training; not a leaf (a clone
    of one), so an answer that writes into it in place is told so by the values, not stopped by autograd."""
    if isinstance(value, torch.Tensor):
        return value.detach().requires_grad_().clone() if value.is_floating_point() else value
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_requiring_grad(v) for v in value)
    return value


def _detached(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_detached(v) for v in value)
    return value


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in a result: itself, or those in its (nested) lists and tuples."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in tensors_in(v)]
    return []




# Where a NaN comes from, said after "your value is NaN": log(0) is -inf and sqrt(0) is 0, and an overflow gives
# inf, none of them a NaN; inf - inf and 0 × inf, which such an inf meets next, are.
NAN_CAUSES = N_("a 0/0, a log or sqrt of a negative number, inf - inf or 0 × inf?")


def _meta_message() -> str:
    return _("your output is on the meta device: it has a shape but no values (a tensor made with "
             "device='meta', or by a layer built there). Compute it from the inputs, on their device.")


def _number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.device.type != "meta":
        value = value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":  # np.asarray(0.01)
        value = value[()]
    if isinstance(value, np.generic) and not isinstance(value, np.bool_):  # np.float32(0.01) is a number too,
        value = value.item()  # as _answers.plain takes it; np.bool_ stays refused, as bool is
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _first_line(error: BaseException) -> str:
    """The error's type and first line, a long line cut (see _cut) but for a short "(got ...)" at its end: where
    torch lists what it takes and then what it got, that end is what names the slip (mode='Bilinear')."""
    text = str(error).strip().splitlines()
    if not text:
        return type(error).__name__
    line = text[0].rstrip(".")
    quoted, end = _cut(line, 160), re.search(r"\((?:got|but got) [^()]{1,40}\)$", line)
    if quoted != line and end and end.group() not in quoted:
        quoted += " " + end.group()
    return f"{type(error).__name__}: {quoted}"


def _cut(line: str, limit: int) -> str:
    """``line``, or its start up to a sentence end (else a space) within ``limit`` characters, with "…": a word
    cut in half ("Pl") reads as part of the message."""
    if len(line) <= limit:
        return line
    head = line[:limit + 1]  # a sentence that ends at the limit, with the space after it, is kept whole
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", head)]
    cut = ends[-1] if ends and ends[-1] > limit // 2 else head.rfind(" ")
    return line[:cut if cut > 0 else limit].rstrip(" ,;:.") + "…"


class FunctionExercise(Exercise):
    """The answer is a function, run on ``cases`` (argument tuples or :class:`Case`) and
    compared with ``expected(*args)`` (default: the reference) by type, shape and value.
    The solution shown is the reference's own code unless ``solution_text`` is given."""

    def __init__(self, *, fn_name: str, reference: Callable, cases: Iterable | Callable[[], Iterable],
                 mistakes: Sequence[Mistake] = (), expected: Callable | None = None, success: Message = "",
                 returns: str = N_("the result"), against: str = N_("the reference"), call: Callable | None = None,
                 where: Callable[..., str] | None = None, atol: float = 1e-5, rtol: float = 1e-5,
                 entries: Sequence[Message] = (), trains: bool = False, **common):
        if "solution_text" not in common and getattr(reference, "__name__", "") == "<lambda>":
            raise ValueError(f"{common.get('name')}: the solution shown is the reference's code; a lambda's is the "
                             "line around it. Write the reference with def, or give solution_text")
        common.setdefault("solution_text", source_of(reference, fn_name))
        super().__init__(reference=reference, **common)
        self.fn_name, self._cases, self.mistakes, self.success = fn_name, cases, list(mistakes), success
        self.expected_fn, self.returns, self.against = expected or reference, returns, against
        self.call_fn, self.where_fn, self.atol, self.rtol = call, where, atol, rtol
        self.entries = list(entries)  # what each entry of a returned tuple is, for the messages ("the bias")
        self.trains = trains  # a forward or loss that training runs: its output must carry a gradient (see _invoke)
        if call is not None:  # where the answer is called (see where_raised)
            CALL_SITES.add((os.path.abspath(call.__code__.co_filename), call.__code__.co_name))

    # ---------------------------------------------------------------- the cases
    def cases(self) -> Iterable[Case]:
        for case in _lazy(self._cases):
            case = copy.copy(case) if isinstance(case, Case) else Case(*case)  # a copy: it will hold the answer
            if not case.where:
                case.where = self.where_fn(*case.args) if self.where_fn else \
                    f"{self.fn_name}({', '.join(_short(a) for a in case.args)})"
            yield case

    def expected(self, case: Case) -> Any:
        return case._expected if case.has_expected else self._invoke(self.expected_fn, case, copy_modules=False)

    def _expected_or_bug(self, case: Case) -> Any:
        """The expected result on ``case``; if the reference raises, that is the course's bug, said as such (it runs
        where the learner's function does, and its error would otherwise be taken for theirs)."""
        try:
            return self.expected(case)
        except Exception as error:
            raise CourseBug(f"the reference of {self.name} raised {_first_line(error)} on {case.where} "
                            f"({where_raised(error)})") from None

    def _invoke(self, fn: Callable, case: Case, copy_modules: bool = True) -> Any:
        args = _fresh(case.args, copy_modules)
        if copy_modules:  # the learner's call: what it was given, compared with the case's own after it returns
            case.given, case.versions = args, _versions(args)
        if not (copy_modules and self.trains):
            return self.call_fn(fn, *args) if self.call_fn else fn(*args)
        with torch.enable_grad():  # as training runs it (the check itself runs without autograd)
            case.given = args = _requiring_grad(args)
            case.versions = _versions(args)
            got = self.call_fn(fn, *args) if self.call_fn else fn(*args)
        # a number (.item(), float()) or a floating tensor without a gradient: backward() cannot start from it
        if _number(got) is not None and not isinstance(got, torch.Tensor) or any(
                t.is_floating_point() and not t.requires_grad for t in tensors_in(got)):
            raise Wrong(_("Your {fn_name}'s output carries no gradient: training's backward() would have nothing to "
                          "follow back to the inputs and weights. Leave torch.no_grad(), .detach(), .item(), float() "
                          "and numpy out of what training runs (the lesson's cells use torch.no_grad() only to look at "
                          "values).", fn_name=self.fn_name))
        return _detached(got)

    def _run(self, fn: Callable, case: Case) -> Any:
        """The learner's result on ``case``, or the exception it raised (Wrong and a
        NotImplementedError of an unsolved cell propagate)."""
        try:
            return self.call(self._invoke, fn, case, where=case.where)
        except Wrong:
            raise
        except NotImplementedError as error:
            if _unsolved(error, fn):
                raise
            return error
        except Exception as error:
            return error

    # ---------------------------------------------------------------- checking
    def _check(self, fn: Any) -> str:
        as_function(fn, self.fn_name)
        count = 0
        with one_thread(), torch.no_grad():
            for case in self.cases():
                case.answer = fn  # for a detector that must see the answer at other arguments too
                expected = self._expected_or_bug(case)
                got = self._run(fn, case)
                same = not isinstance(got, BaseException) and self.compare(got, expected, case) is None
                if same and not any(m.always and self._matches(m, case, got, expected) for m in self.mistakes):
                    self._refuse_changed_arguments(case)
                    count += 1
                    continue
                raise Wrong(self._reordered(fn) or self._explain(case, got, expected))
        return _say(self.success, count) or _("Your {fn_name} matches {against} on all {count} cases.",
                                               fn_name=self.fn_name, against=self.against, count=count)

    def _refuse_changed_arguments(self, case: Case) -> None:
        """A right result from a function that wrote into what it was given (a tensor, a module's weights or
        statistics, a list): the check gave it copies, but in the notebook it gets the caller's own objects."""
        names = _positional_names(self.reference) or []
        for k, (before, after) in enumerate(zip(case.args, getattr(case, "given", case.args))):
            name = names[k] if k < len(names) else f"#{k + 1}"
            change = changed_in_place(before, after, name) or _written(after, getattr(case, "versions", {}), name)
            if change is None:
                continue
            if not isinstance(before, nn.Module) and not tensors_in(before):  # a list of numbers or names
                raise Wrong(_(
                    "Your {fn_name} gives the right result, but it changed {what} in place (on {where}). Leave the "
                    "caller's list as it was: build a new one (list(old), a list comprehension) rather than writing "
                    "into it (old[:] = ..., old.append(...), old[i] = ...).", fn_name=self.fn_name, what=change,
                    where=case.where))
            raise Wrong(_(
                "Your {fn_name} gives the right result, but it changed {what} in place (on {where}). In the "
                "notebook it gets the caller's own objects, which the next cell (and, in training, autograd) "
                "still uses: compute new tensors (`a = a * s` or `a.mul(s)`, not `a.mul_(s)`, `a *= s` or "
                "`a.data = ...`), and build a new list rather than writing into the one given.",
                fn_name=self.fn_name, what=change, where=case.where))

    def _reordered(self, fn: Callable) -> str | None:
        """For a failing answer whose parameters are the reference's names in another order (`def f(b, a)` for the
        notebook's `def f(a, b)`): the check passes the arguments by position, so each name holds the other's value,
        and every later message would describe that mix-up instead."""
        ours, theirs = _positional_names(fn), _positional_names(self.reference)
        if not theirs or len(theirs) < 2 or ours is None or len(ours) < len(theirs):
            return None
        ours = ours[:len(theirs)]
        if ours == theirs or sorted(ours) != sorted(theirs):
            return None
        k = next(k for k, (a, b) in enumerate(zip(ours, theirs)) if a != b)  # (module, i, xs): i, not module
        return _("Your def takes ({ours}); the check calls {fn_name}({theirs}), in the order of the notebook's `def` "
                 "line, so your {first} gets the value meant for {other}. Keep the notebook's order of parameters.",
                 ours=", ".join(ours), fn_name=self.fn_name, theirs=", ".join(theirs), first=ours[k],
                 other=theirs[k])

    def _explain(self, case: Case, got: Any, expected: Any) -> str:
        raised = isinstance(got, BaseException)
        if any(t.device.type == "meta" for t in tensors_in(got)):  # no values: no slip can be recognised in them
            return _("On {where}: {problem}", where=case.where, problem=_meta_message())
        theirs = {t.device for t in tensors_in(expected)}  # none where the answer is a number: a tensor of one is read
        if theirs and {t.device for t in tensors_in(got)} - theirs:  # another device: said before any slip's guess
            return _("On {where}: {problem}", where=case.where, problem=self.compare(got, expected, case))
        if raised and self.trains and _numpy_on_a_tensor_with_grad(got):
            return _("On {where} your function raised {error}. Keep the tensors as tensors: a forward returns tensors "
                     "(numpy has no gradient, and the check runs your code as training does, with autograd on, which "
                     "is why .numpy() refused).", where=case.where, error=_first_line(got))
        for mistake in self.mistakes:
            if self._matches(mistake, case, got, expected):
                message = _say(mistake.message, case, got, expected)
                if raised:
                    return _("On {where} your function raised {error}. {mistake}",
                             where=case.where, error=_first_line(got), mistake=message)
                return _("{mistake} (on {where})", mistake=message, where=case.where)
        if raised:
            return _("On {where} your function raised {error} ({line}).",
                     where=case.where, error=_first_line(got), line=where_raised(got))
        return _("On {where}: {problem}", where=case.where, problem=self.compare(got, expected, case))

    def _matches(self, mistake: Mistake, case: Case, got: Any, expected: Any) -> bool:
        if mistake.when is not None:
            try:  # a detector may assume a tensor: any exception means "not this one"
                return bool(mistake.when(case, got, expected))
            except Exception:
                return False
        try:
            value = self._invoke(mistake.like, case, copy_modules=False)  # a slip is ours: it changes no module
        except Exception as error:  # the slip raises here: does the answer raise the same error, at the same place?
            return _same_error(got, error)
        return not isinstance(got, BaseException) and self.compare(got, value, case) is None

    def compare(self, got: Any, expected: Any, case: Case | None = None) -> str | None:
        """None when ``got`` matches ``expected``; else what differs, in a sentence."""
        return self._compare_values(got, expected)

    def _compare_values(self, got: Any, expected: Any) -> str | None:
        if got is None and expected is not None:
            return _("Your function returned None: did you forget `return`? It should return {returns}.",
                     returns=self.returns)
        if got is ... and expected is not ...:
            return _("Your function returns `...`: replace it with your code, which returns {returns}.",
                     returns=self.returns)
        if isinstance(got, torch.Tensor) and got.device.type == "meta":
            return _meta_message()
        if isinstance(expected, torch.Tensor) and expected.dim() > 0:
            return self._compare_tensors(got, expected)
        if _number(expected) is not None:
            value = _number(got)
            if value is None:
                return _("Your function returned {type}, not one number; it should return {returns} (one number: "
                         "a float, or a tensor that holds a single value).", type=a_type(got), returns=self.returns)
            if math.isnan(value) and math.isnan(_number(expected)):
                return None
            if math.isnan(value):  # where a NaN comes from, as for a tensor's
                return _("you return nan; {against} gives {expected}: {causes}", against=self.against,
                         expected=format(_number(expected), ".6g"), causes=text(NAN_CAUSES))
            if not math.isclose(value, _number(expected), rel_tol=self.rtol, abs_tol=self.atol):
                # a reference computed in float32 itself: the tolerance already takes float32's rounding, so a
                # number outside it differs by more than precision (a loss with label_smoothing)
                same_precision = _low_precision(expected) is not None and _low_precision(expected) == _low_precision(got)
                note = None if same_precision else _precision_note(got, value, _number(expected))
                if note is not None:
                    return note
                got, expected = format(value, ".6g"), format(_number(expected), ".6g")
                return _("you return {got}; {against} gives {expected}.", got=got, against=self.against, expected=expected)
            return None
        if isinstance(expected, (list, tuple)):
            return self._compare_lists(got, expected)
        if got is expected or _equal(got, expected):
            return None
        return _("you return {got}; {against} gives {expected}.",
                 got=_short(got), against=self.against, expected=_short(expected))

    def _compare_tensors(self, got: Any, expected: torch.Tensor) -> str | None:
        if not isinstance(got, torch.Tensor):
            return _("You gave {type} where a tensor belongs; your function should return {returns}.",
                     type=a_type(got), returns=self.returns)
        if got.layout != torch.strided:  # a sparse tensor: most comparisons are not defined on it
            return _("your output is a {layout} tensor; return an ordinary (dense) one, as {against} does: leave out "
                     "the .to_sparse() (or call .to_dense()).", layout=str(got.layout).replace("torch.", ""),
                     against=self.against)
        if got.shape != expected.shape:
            return _("your output has shape {got}; {against} gives {expected}.",
                     got=tuple(got.shape), against=self.against, expected=tuple(expected.shape))
        if got.device != expected.device:
            return _("your output is on {device}; {against}'s is on {expected}, where the inputs are: keep the "
                     "result on the inputs' device (no .cuda() or .to(...)).",
                     device=got.device, against=self.against, expected=expected.device)
        a, b = got.detach().double(), expected.detach().double()
        if torch.allclose(a, b, atol=self.atol, rtol=self.rtol, equal_nan=True):
            return None
        nan = int((a.isnan() & ~b.isnan()).sum())
        if nan:
            return _("{n} of your {total} values are NaN where {against} has numbers: {causes}", n=nan,
                     total=a.numel(), against=self.against, causes=text(NAN_CAUSES))
        diff = format((a - b).abs().nan_to_num(nan=math.inf).max().item(), ".3g")
        if got.dtype != expected.dtype:
            return _("your values differ from {against}'s (largest difference {diff}); your output is {dtype}, "
                     "{against}'s {expected_dtype}.", against=self.against, diff=diff,
                     dtype=dtype_name(got.dtype), expected_dtype=dtype_name(expected.dtype))
        return _("your values differ from {against}'s (largest difference {diff}).", against=self.against, diff=diff)

    def _compare_lists(self, got: Any, expected: Sequence) -> str | None:
        if not isinstance(got, (list, tuple)):
            return _("Your function returned {type}; it should return {returns}.",
                     type=a_type(got), returns=self.returns)
        if len(got) != len(expected):
            return (_("your list has 1 entry; {against} gives {expected}.", against=self.against, expected=len(expected))
                    if len(got) == 1 else _("your list has {got} entries; {against} gives {expected}.",
                                            got=len(got), against=self.against, expected=len(expected)))
        for i, (g, e) in enumerate(zip(got, expected)):
            # a None entry is not a function that forgot `return`: say it of the entry
            problem = (_("your entry is None; {against} has {type} there.", against=self.against,
                         type=a_type(e)) if g is None and e is not None else self._compare_values(g, e))
            if problem is not None and i < len(self.entries):
                return _("entry {i} ({name}): {problem}", i=i, name=text(self.entries[i]), problem=problem)
            if problem is not None:
                return _("entry {i}: {problem}", i=i, problem=problem)
        return None

    def _derived_wrong_answers(self) -> list[tuple[Any, str]]:
        given = [answer for answer, _ in self._wrong_answers]
        # A marked message (N_) counts as text, in the language of the moment.
        return [(m.like, text(m.fragment or m.message)) for m in self.mistakes
                if m.like is not None and isinstance(m.fragment or m.message, (str, Text))
                and not any(m.like is answer for answer in given)]


CALL_SITES.add((os.path.abspath(FunctionExercise._invoke.__code__.co_filename), "_invoke"))


def _positional_names(fn: Any) -> list[str] | None:
    """The names of ``fn``'s positional parameters, in order; None where Python cannot tell (a builtin)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in parameters if p.kind in kinds]


def _low_precision(value: Any) -> str | None:
    """The dtype of a number computed in float32 or less (a one-element tensor, a numpy scalar), else None. A Python
    float that a float16 or float32 holds exactly is taken as one (the ``.item()`` of such a tensor): a float64
    result rarely is."""
    dtype = getattr(value, "dtype", None)
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float64:
        return dtype_name(dtype)
    if isinstance(value, (np.generic, np.ndarray)) and dtype.kind == "f" and dtype.itemsize < 8:
        return dtype_name(dtype)
    if isinstance(value, float) and math.isfinite(value) and value != 0:
        with np.errstate(over="ignore"):  # 1e6 is no float16: inf, and not equal
            return next((name for name in ("float16", "float32") if float(np.array(value, dtype=name)) == value), None)
    return None


def _precision_note(got: Any, value: float, expected: float) -> str | None:
    """For a number that differs from the expected one only by the rounding of its float32 (or float16) maths,
    what to do about it: "you return 1.99524e-05, it gives 1.99526e-05" alone does not say what is wrong."""
    dtype = _low_precision(got)
    if dtype is None:
        return None
    eps = float(torch.finfo(getattr(torch, dtype)).eps)
    if not math.isclose(value, expected, rel_tol=max(1e-3, 8 * eps)):  # a subtraction (1 - 0.999) costs digits
        return None
    return _("your value {got} agrees with {expected} only to {dtype} precision (about {digits} significant digits, "
             "fewer after a subtraction such as 1 - 0.999): compute in Python floats or float64.",
             got=format(value, ".6g"), expected=format(expected, ".6g"), dtype=dtype, digits=int(-math.log10(eps)))


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _same_error(got: Any, error: BaseException) -> bool:
    """Whether the answer raised what the slip raised: the same type and text (two runtime errors compared
    with each other; most of torch's errors are RuntimeErrors, so the type alone would name a slip for
    any other error), from the same place (the call itself, or inside the function)."""
    if not isinstance(got, BaseException) or type(got) is not type(error) or _at_call(got) != _at_call(error):
        return False
    return _error_text(got) == _error_text(error)


def _error_text(error: BaseException) -> str:
    """An error's text; for one raised by the call itself, without the function's name that starts it
    ("v2_head() takes 2 positional arguments ..."): the answer's name is not the slip's."""
    return re.sub(r"^\S+\(\)", "()", str(error)) if _at_call(error) else str(error)


def _at_call(error: BaseException) -> bool:
    """Whether ``error`` was raised by the call itself (its arguments do not fit the function's
    parameters), not inside the function: the innermost frame is the one that called."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code is FunctionExercise._invoke.__code__


def _unsolved(error: NotImplementedError, fn: Callable) -> bool:
    """A NotImplementedError raised by the answer's own body (`raise NotImplementedError  # your
    code here`), not by something it called (e.g. an nn.ModuleList that has no forward)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    code = getattr(fn, "__code__", None)
    return not error.args or (tb is not None and tb.tb_frame.f_code is code)


def _cpu_copy_if_only_on_gpu(got: nn.Module, official: nn.Module) -> nn.Module:
    """A module that differs from the official one only in sitting on a GPU (a Colab learner's habitual
    .to(device)) is checked as a CPU copy, as the capstone checks its modules; the learner's own stays where it
    is. Another dtype, or the meta device, is left for _compare_placement to refuse."""
    pairs = [(g, o) for g, o in zip(got.state_dict().values(), official.state_dict().values())
             if g.is_floating_point()]
    if not any(g.device.type == "cuda" for g, _o in pairs):
        return got
    if any(g.device.type not in ("cuda", "cpu") or g.dtype != o.dtype for g, o in pairs):
        return got
    try:
        return copy.deepcopy(got).cpu()
    except Exception:  # something in it cannot be copied: refused as it is, by _compare_placement
        return got


def _shared_layers(module: nn.Module) -> str | None:
    """Two state-dict names of one tensor: a layer object used twice (`[step] * n`, or one module appended in a
    loop). Its keys and shapes are all there, but the two places share their weights."""
    names: dict[int, str] = {}
    for name, tensor in [*module.named_parameters(remove_duplicate=False),
                         *module.named_buffers(remove_duplicate=False)]:
        if id(tensor) in names:
            first, second = names[id(tensor)].rpartition(".")[0], name.rpartition(".")[0]
            return _("your layers {first} and {second} are one object, used twice (as `[step] * n`, or appending "
                     "one module in a loop, makes): they share their weights, where the official module has a layer "
                     "of its own in each place. Build a new layer for each.", first=first, second=second)
        names[id(tensor)] = name
    return None


_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm)
# what each kind of layer is built with, beyond the shapes the state dict shows (dilation before padding: a padding
# that follows its dilation is no slip of its own)
_SETTINGS = {nn.Conv2d: ("kernel_size", "stride", "dilation", "padding", "groups", "padding_mode"),
             _NORMS: ("eps", "affine", "track_running_stats")}


def _compare_settings(got: nn.Module, official: nn.Module) -> str | None:
    """The first setting of a conv or norm layer that differs from the official layer in the same place (the
    layers of the two paired in order, where both have the same kinds): eps, affine, dilation and the like, which
    keys and shapes do not show or show only as a puzzle. BatchNorm's momentum may be either of the authors'
    (0.1 or 0.01); Keras's convention (0.99) is named."""
    def layers(module):
        return [(n, m) for n, m in module.named_modules() if isinstance(m, (nn.Conv2d, *_NORMS))]
    ours, theirs = layers(got), layers(official)
    if [isinstance(m, nn.Conv2d) for _, m in ours] != [isinstance(m, nn.Conv2d) for _, m in theirs]:
        return None  # other layers: the keys say it
    for (name, mine), (_n, their) in zip(ours, theirs):
        for setting in _SETTINGS[nn.Conv2d if isinstance(their, nn.Conv2d) else _NORMS]:
            a, b = getattr(mine, setting, None), getattr(their, setting, None)
            if a != b:
                return _("your {layer} {name} has {setting}={value}; the official one has {setting}={official}.",
                         layer=type(mine).__name__, name=name or "(the module itself)", setting=setting,
                         value=a, official=b)
        momentum = getattr(mine, "momentum", 0.1)
        if isinstance(their, nn.modules.batchnorm._NormBase) and momentum not in (their.momentum, 0.1, 0.01):
            return _("your {layer} {name} has momentum={value}. In PyTorch momentum is the weight of the new batch in "
                     "the running statistics (the official code uses {official}); 0.99 or 0.9 is Keras's convention, "
                     "where it is the weight of the old average.", layer=type(mine).__name__, name=name,
                     value=momentum, official=their.momentum)
    return None


class ModuleExercise(FunctionExercise):
    """The answer builds a module: ``official(*args)`` is the package's module for the same
    arguments. Compared in order: None or not, a list against an nn.ModuleList, state-dict
    keys and shapes, then outputs on ``inputs(*args)`` once the official module holds the
    answer's weights (with non-trivial BatchNorm statistics)."""

    def __init__(self, *, official: Callable, inputs: Callable[..., tuple], run: Callable | None = None,
                 nesting: str = "", **kwargs):
        super().__init__(expected=official, **kwargs)
        self.inputs, self.run = inputs, run or (lambda module, *xs: module(*xs))
        self.nesting = nesting  # how the official code nests its layers, said when only the keys' nesting differs

    def compare(self, got: Any, official: Any, case: Case | None = None) -> str | None:
        if official is None:
            return None if got is None else _("this entry should be None (nothing to do).")
        if got is None:
            return _("you return None; the official code has a module here.")
        if isinstance(official, nn.ModuleList) and isinstance(got, (list, tuple)):
            return _("you return a plain {type}. Return an nn.ModuleList: a list does not register its "
                     "layers, so they would have no parameters in the model and no state-dict keys.", type=type(got).__name__)
        if not isinstance(got, nn.Module):
            return _("you return {type}; return an nn.Module.", type=a_type(got))
        problem = _shared_layers(got) or _compare_settings(got, official) or self._compare_keys(got, official)
        if problem is not None:
            return problem
        got = _cpu_copy_if_only_on_gpu(got, official)
        return self._compare_placement(got, official) or self._compare_outputs(got, official, case)

    def _explain(self, case: Case, got: Any, expected: Any) -> str:
        shared = _shared_layers(got) if isinstance(got, nn.Module) else None  # said before any mistake: the facts a
        if shared is not None:  # mistake reads (modules(), counts of convs) see a shared layer once
            return _("On {where}: {problem}", where=case.where, problem=shared)
        return super()._explain(case, got, expected)

    def _compare_placement(self, got: nn.Module, official: nn.Module) -> str | None:
        """The weights' device and dtype: a module built on the meta device has no values to compare, and a
        float64 one cannot run on the official input (one only on a GPU was copied to the CPU before this)."""
        def kinds(module):
            return sorted({(t.device.type, dtype_name(t.dtype))
                           for t in module.state_dict().values() if t.is_floating_point()})
        ours, theirs = kinds(got), kinds(official)
        if not ours or ours == theirs:
            return None
        # the first kind the official module lacks: with one conv moved to cuda, ours[0] is still ('cpu', ...)
        device, dtype = next((k for k in ours if k not in theirs), ours[0])
        official_device, official_dtype = (theirs or [("cpu", "float32")])[0]
        return _("your module's weights are {dtype} on {device}; the official module's are {official_dtype} on "
                 "{official_device}. Build the layers without device= or dtype= (and no .to(...), .double(), .half() "
                 "or .cuda()).", dtype=dtype, device=device, official_dtype=official_dtype,
                 official_device=official_device)

    def _compare_keys(self, got: nn.Module, official: nn.Module) -> str | None:
        ours = [(k, tuple(v.shape)) for k, v in got.state_dict().items()]
        theirs = [(k, tuple(v.shape)) for k, v in official.state_dict().items()]
        if ours == theirs:
            return None
        # from the first key named otherwise: the first four keys are often the same (entry 0 is right)
        n = next((i for i, ((k, _s), (k2, _s2)) in enumerate(zip(ours, theirs)) if k != k2), None)
        layers, official_layers = layer_summary(got), layer_summary(official)
        if layers != official_layers and sorted(layers) == sorted(official_layers):
            return _("your layers are the official ones, in another order: yours are {layers}; the official: "
                     "{official_layers}.", layers=_(", ").join(layers), official_layers=_(", ").join(official_layers))
        if n is not None and sorted(s for _, s in ours) == sorted(s for _, s in theirs):
            return _("the layers are right but nested differently, so official checkpoints would not load: your key "
                     "{ours} is {theirs} in the official module. {nesting}", ours=ours[n][0], theirs=theirs[n][0],
                     nesting=self.nesting).strip()
        for (k, s), (k2, s2) in zip(ours + [("(none)", ())] * len(theirs), theirs + [("(none)", ())] * len(ours)):
            if (k, s) != (k2, s2):
                return _("the state dict differs from the official one: yours has {key} {shape} where the official has "
                         "{official_key} {official_shape}. Your layers: {layers}; the official: {official_layers}.",
                         key=k, shape=s, official_key=k2, official_shape=s2, layers=layer_summary(got),
                         official_layers=layer_summary(official))
        return None  # unreachable: the lists differ somewhere

    def _compare_outputs(self, got: nn.Module, official: nn.Module, case: Case | None) -> str | None:
        """Both modules with the answer's weights on the same input: same shapes and values?"""
        random_bn(got, 0)
        official.load_state_dict(got.state_dict())
        official.eval()
        xs = self.inputs(*case.args) if case is not None else ()
        try:
            ours = self.call(self.run, got, *xs, where=case.where if case else "")
        except Wrong:
            raise
        except Exception as error:
            return _("your module fails on the input {input}: {error} ({line}).",
                     input=_short(list(xs)), error=_first_line(error), line=where_raised(error))
        theirs = self.run(official, *xs)
        problem = self._compare_values(ours, theirs)
        if problem is None:
            return None
        return _("with the same weights your module's output differs from the official one: {problem} Your layers: "
                 "{layers}; the official: {official_layers}.", problem=problem, layers=layer_summary(got),
                 official_layers=layer_summary(official))
