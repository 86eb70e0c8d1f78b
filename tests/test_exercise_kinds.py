"""The exercise kinds on their own: value tables, choices, function cases and named mistakes,
module comparison by keys, shapes and outputs, the time limit, and display kept apart."""
import re
import threading
from pathlib import Path

import pytest
import torch
from torch import nn

from hrnet_teach.exercises import _base, _view
from hrnet_teach.exercises._answers import as_int, as_ints
from hrnet_teach.exercises._kinds import Case, ChoiceExercise, FunctionExercise, Mistake, ModuleExercise, ValueExercise

EXERCISE_DIR = Path(__file__).resolve().parent.parent / "hrnet_teach" / "exercises"
COMMON = dict(name="t", lesson="99", hints=["h"], solution_text="s")


# ----------------------------------------------------------------- values and choices

def _shape_exercise(**kw):
    return ValueExercise(read=lambda a: as_ints(a, 2, "(height, width)", "(1, 2)"), reference=lambda: (64, 96),
                         success="yes", mistakes={(96, 64): "swapped", (128, 192): "the stem has two"},
                         explain=lambda got, want: "too big" if got[0] > want[0] else None, question="?", **COMMON, **kw)


def test_value_exercise_looks_up_its_mistake_table_then_explains():
    ex = _shape_exercise()
    assert ex.check((64, 96)).passed and ex.check((64, 96)).message == "yes"
    assert ex.check(torch.Size([64, 96])).passed  # read normalises a Size to a tuple
    assert ex.check([96, 64]).message == "swapped"  # a list reads as the tuple key
    assert ex.check((128, 192)).message == "the stem has two"
    assert ex.check((100, 1)).message == "too big"  # not in the table: explain()
    assert "Not (1, 1)" in ex.check((1, 1)).message  # neither: the default
    assert "whole numbers" in ex.check("64, 96").message  # the reader's message about the type


def test_value_exercise_reference_is_lazy_and_tables_become_wrong_answers():
    calls = []
    ex = ValueExercise(read=lambda a: as_int(a, "n"), reference=lambda: calls.append(1) or 3,
                       mistakes=lambda: {4: "one too many"}, question="?", **COMMON)
    assert calls == []  # nothing computed at construction
    assert ex.reference == 3 and ex.reference == 3 and calls == [1]  # computed once
    assert ex.wrong_answers == [(4, "one too many")]
    assert not ex.check(4).passed


def test_choice_exercise_lists_choices_and_says_why():
    ex = ChoiceExercise(question="Pick", choices={"a": "one", "b": "two"}, answer="b", why={"a": "not one"},
                        success="two it is", **COMMON)
    assert "(a) one" in ex.question and "(b) two" in ex.question
    assert ex.check(" (B) ").passed and ex.reference == "b"
    assert ex.check("a").message == "not one"
    assert "one letter" in ex.check("z").message
    assert ex.wrong_answers == [("a", "not one")]
    with pytest.raises(ValueError, match="why"):
        ChoiceExercise(question="Pick", choices={"a": "x", "b": "y", "c": "z"}, answer="b", why={"a": "."},
                       success="", **COMMON)


# ----------------------------------------------------------------- functions

def _double(x):
    return 2 * x


def _plus_one(x):
    return x + x + 1


def _function_exercise(**kw):
    cases = [Case(torch.arange(4.0), where="a range"), (torch.ones(2, 3),)]
    return FunctionExercise(fn_name="double", reference=_double, cases=cases, returns="a tensor",
                            against="the double", mistakes=[
                                Mistake("plus_one", "You added one.", like=_plus_one),
                                Mistake("halved", "You halved.", when=lambda case, got, want: torch.allclose(got * 4, want)),
                            ], question="?", **COMMON, **kw)


def test_function_exercise_names_the_mistake_it_recognises():
    ex = _function_exercise()
    assert ex.check(_double).passed
    assert ex.check(_plus_one).message == "You added one. (on a range)"
    assert ex.check(lambda x: x / 2).message.startswith("You halved.")
    assert "largest difference" in ex.check(lambda x: 3 * x).message
    assert "shape (4, 1)" in ex.check(lambda x: (2 * x)[:, None]).message
    assert "returned a tuple" in ex.check(lambda x: (2 * x,)).message
    assert "forget `return`" in ex.check(lambda x: None).message
    assert "Pass your function itself" in ex.check(nn.Identity()).message
    assert (_plus_one, "You added one.") in ex.wrong_answers  # like= implementations are tested as wrong answers


def test_function_exercise_reports_raises_and_unsolved_cells():
    ex = _function_exercise()

    def unsolved(x):
        raise NotImplementedError  # your code here

    def deeper(x):
        return nn.ModuleList()(x)  # torch raises NotImplementedError: not an unsolved cell

    assert "still raises NotImplementedError" in ex.check(unsolved).message
    message = ex.check(deeper).message
    assert "NotImplementedError" in message and "still raises" not in message
    message = ex.check(lambda x: x.nope()).message
    assert message.startswith("On a range your function raised AttributeError") and "line" in message


def test_a_slip_that_raises_is_recognised_by_raising_the_same_way():
    def needs_2d(x):
        return x.t() @ x  # fails on a 1-d tensor with a RuntimeError, like the slip below

    ex = FunctionExercise(fn_name="f", reference=lambda x: 2 * x, cases=[(torch.ones(2, 2, 2),)], question="?",
                          mistakes=[Mistake("matmul", "Use *, not @.", like=lambda x: x @ torch.ones(3, 3))], **COMMON)
    message = ex.check(needs_2d).message
    assert "Use *, not @." in message and "raised" in message


def test_a_mistake_marked_always_fails_even_a_matching_answer():
    package = torch.ones(3)
    ex = FunctionExercise(fn_name="f", reference=lambda x: x + 1, cases=[(torch.zeros(3),)], question="?",
                          mistakes=[Mistake("package", "Write it yourself.", when=lambda c, got, want: got is package,
                                            always=True)], **COMMON)
    assert ex.check(lambda x: x + 1).passed
    assert ex.check(lambda x: package).message.startswith("Write it yourself.")


def test_the_solution_is_the_reference_code_under_the_notebook_name():
    ex = FunctionExercise(fn_name="double", reference=_double, cases=[(1,)], name="t", lesson="99", question="?")
    assert ex.solution_text.startswith("```python\ndef double(x):") and "return 2 * x" in ex.solution_text


def test_numbers_and_other_values():
    ex = FunctionExercise(fn_name="half", reference=lambda n: n / 2, cases=[(3,), (8,)], returns="a number",
                          question="?", **COMMON)
    assert ex.check(lambda n: torch.tensor(n / 2)).passed  # a one-element tensor counts as a number
    assert "you return 1; the reference gives 1.5" in ex.check(lambda n: n // 2).message
    assert "returned a str" in ex.check(lambda n: "1.5").message
    classes = FunctionExercise(fn_name="norm", reference=lambda d: nn.BatchNorm2d, cases=[("cpu",)], question="?", **COMMON)
    assert classes.check(lambda d: nn.BatchNorm2d).passed
    assert "SyncBatchNorm" in classes.check(lambda d: nn.SyncBatchNorm).message


# ----------------------------------------------------------------- the time limit

def test_an_answer_that_sleeps_gets_the_time_limit_message():
    ex = _function_exercise(time_limit=0.5)
    woken = threading.Event()  # set at the end, so no sleeping thread is left for the exit to wait for
    try:
        result = ex.check(lambda x: woken.wait(30))
    finally:
        woken.set()
    assert not result.passed
    assert "did not return within 0.5 s" in result.message and "a range" in result.message


def test_an_answer_that_loops_forever_gets_the_time_limit_message():
    stop = threading.Event()

    def loop_forever(x):
        while not stop.is_set():  # forever, as far as the check can tell (stopped by the test at the end)
            pass

    before = _base.TIME_LIMIT_S
    try:
        _base.set_time_limit(0.5)  # the global default, as a learner would change it
        result = _function_exercise().check(loop_forever)
    finally:
        stop.set()
        _base.set_time_limit(before)
    assert not result.passed and "did not return within 0.5 s" in result.message
    with pytest.raises(ValueError, match="above 0"):
        _base.set_time_limit(0)
    with pytest.raises(ValueError, match="HRNET_TEACH_TIME_LIMIT is 'soon'"):
        _base._seconds("soon", "HRNET_TEACH_TIME_LIMIT")


def test_call_learner_returns_values_and_raises_errors_in_the_caller():
    assert _base.call_learner(lambda a, b: a + b, 2, 3, limit=5) == 5
    assert not _base.call_learner(lambda: torch.ones(1, requires_grad=True) * 2, limit=5).requires_grad
    with pytest.raises(KeyError):
        _base.call_learner(lambda: {}["missing"], limit=5)


# ----------------------------------------------------------------- modules

def _conv_bn(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))


def _module_exercise():
    return ModuleExercise(fn_name="make", reference=_conv_bn, official=_conv_bn, cases=[(3, 4), (4, 8)],
                          inputs=lambda cin, cout: (torch.randn(1, cin, 5, 5, generator=torch.Generator().manual_seed(0)),),
                          mistakes=[Mistake("bias", "The conv takes bias=False.",
                                            when=lambda case, got, official: got[0].bias is not None)],
                          question="?", **COMMON)


def test_module_exercise_compares_keys_shapes_and_outputs():
    ex = _module_exercise()
    assert ex.check(_conv_bn).passed
    assert ex.check(lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout))
                    ).message.startswith("The conv takes bias=False.")
    nested = ex.check(lambda cin, cout: nn.Sequential(nn.Sequential(*_conv_bn(cin, cout))))
    assert "nested differently" in nested.message
    shapes = ex.check(lambda cin, cout: _conv_bn(cin, 2 * cout))
    assert "state dict differs" in shapes.message and "(8, 3, 3, 3)" in shapes.message
    # same keys and shapes, other maths: no padding changes the output's shape, a ReLU its values
    unpadded = ex.check(lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, bias=False), nn.BatchNorm2d(cout)))
    assert "output differs" in unpadded.message and "shape (1, 4, 3, 3)" in unpadded.message
    relu = ex.check(lambda cin, cout: nn.Sequential(*_conv_bn(cin, cout), nn.ReLU()))
    assert "largest difference" in relu.message and "ReLU" in relu.message
    assert "return an nn.Module" in ex.check(lambda cin, cout: "conv").message
    assert "should be None" not in ex.check(lambda cin, cout: None).message


def test_module_exercise_on_lists_and_none():
    ex = ModuleExercise(fn_name="make", reference=lambda n: nn.ModuleList([None, nn.Conv2d(n, n, 1)]),
                        official=lambda n: nn.ModuleList([None, nn.Conv2d(n, n, 1)]), cases=[(2,)],
                        inputs=lambda n: (torch.randn(1, n, 3, 3),),
                        run=lambda ml, x: [x if m is None else m(x) for m in ml], question="?", **COMMON)
    assert ex.check(ex.reference).passed
    assert "nn.ModuleList" in ex.check(lambda n: [None, nn.Conv2d(n, n, 1)]).message


# ----------------------------------------------------------------- display kept apart

def test_results_are_plain_data_and_the_view_draws_them(capsys):
    ex = _shape_exercise()
    result = ex.check((64, 96))
    assert isinstance(result, _base.CheckResult) and bool(result) and str(result) == "Correct: yes"
    assert result._repr_html_() == _view.result_html(True, "yes") and "#1a7f37" in result._repr_html_()
    assert "&lt;b&gt;" in _view.result_html(False, "<b>")  # the learner's text is escaped
    shown = ex.hint()
    assert isinstance(shown, _view.Shown) and shown == "h" and "Hint: h" in capsys.readouterr().out
    checking = (EXERCISE_DIR / "_kinds.py").read_text() + (EXERCISE_DIR / "_base.py").read_text()
    assert "IPython" not in checking and "<div" not in checking  # drawing lives in _view only


@pytest.mark.parametrize("path", sorted(EXERCISE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_no_exercise_file_reads_torch_error_text(path):
    """Feedback comes from shapes, keys and values; torch's wording changes between versions."""
    torch_phrases = ["Sizes of tensors", "size mismatch", "expected scalar type", "must match the size",
                     "out of bounds", "missing the required", "'NoneType'", "Given groups"]
    reads_message = re.compile(r"""["'][^"']*["']\s+in\s+(str\(|text\b|message\b)""")  # e.g. "size" in str(error)
    code = path.read_text()
    found = [p for p in torch_phrases if p.lower() in code.lower()]
    assert not found, f"{path.name} holds torch's error text {found}: detect the mistake from shapes and values"
    assert not reads_message.search(code), f"{path.name} decides from an error's text: {reads_message.search(code)[0]}"
