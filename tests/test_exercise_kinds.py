"""The exercise kinds on their own: value tables, choices, function cases and named mistakes,
module comparison by keys, shapes and outputs, the time limit, and display kept apart."""
import copy
import importlib
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrnet_teach.exercises import _base, _view
from hrnet_teach.exercises._answers import a_type, as_int, as_ints, dtype_name
from hrnet_teach.exercises._kinds import (
    NAN_CAUSES,
    Case,
    ChoiceExercise,
    FunctionExercise,
    Mistake,
    ModuleExercise,
    ValueExercise,
)

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


def test_a_contributors_slips_are_named_where_they_are_declared():
    # Each was accepted before: 13 one-letter hints, a catalogue of loose strings, a key never looked up.
    with pytest.raises(ValueError, match="hints is a list of texts"):
        ValueExercise(read=lambda a: as_int(a, "n"), reference=3, question="?", name="t", lesson="99",
                      hints="Look at conv3")
    with pytest.raises(ValueError, match=r"list of \(answer, piece of its message\) pairs"):
        ValueExercise(read=lambda a: as_int(a, "n"), reference=3, question="?", **{**COMMON,
                      "wrong_answers": ("256", "expansion")})
    with pytest.raises(ValueError, match=r"the answer 'd' is not one of the choices \['a', 'b'\]"):
        ChoiceExercise(question="Pick", choices={"a": "x", "b": "y"}, answer="d", why={"a": ".", "b": "."},
                       success="", **COMMON)
    with pytest.raises(ValueError, match=r"missing \['b'\]; not a wrong choice: \['B'\]"):
        ChoiceExercise(question="Pick", choices={"a": "x", "b": "y"}, answer="a", why={"B": "."}, success="",
                       **COMMON)
    ex = ValueExercise(read=lambda a: as_int(a, "n"), reference=3, mistakes={"64": "the text", 64: "the number"},
                       question="?", **COMMON)
    with pytest.raises(ValueError, match="key '64' is never looked up"):
        ex.wrong_answers  # noqa: B018 (the test suite reads every exercise's catalogue)
    assert ex.check(64).message == "the number"
    with pytest.raises(ValueError, match="like= is a function that makes the slip.*you gave a tuple"):
        Mistake("size", "halved", like=(112, 160))
    with pytest.raises(ValueError, match="Write the reference with def, or give solution_text"):
        FunctionExercise(fn_name="f", reference=lambda x: x, cases=[(1,)], question="?", name="t", lesson="99")


def test_a_reference_that_raises_is_the_courses_bug_not_the_answers():
    ex = FunctionExercise(fn_name="ratio", reference=lambda h, w: h // w, cases=[(4, 2), (1, 0)], question="?",
                          **COMMON)
    message = ex.check(lambda h, w: h // w if w else 0).message
    assert message.startswith("The check itself failed: the reference of t raised ZeroDivisionError"), message
    assert "ratio(1, 0)" in message and "not of your answer" in message and "Your answer raised" not in message


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
    assert "You gave a tuple where a tensor belongs" in ex.check(lambda x: (2 * x,)).message
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


def _matmul_exercise():
    return FunctionExercise(fn_name="f", reference=lambda x: 2 * x, cases=[(torch.ones(2, 2, 2),)], question="?",
                            mistakes=[Mistake("matmul", "Use *, not @.", like=lambda x: x @ torch.ones(3, 3))], **COMMON)


def test_a_slip_that_raises_is_recognised_by_raising_the_same_way():
    message = _matmul_exercise().check(lambda x: torch.matmul(x, torch.ones(3, 3))).message  # the slip, spelt otherwise
    assert "Use *, not @." in message and "raised RuntimeError" in message


def test_an_unrelated_error_of_the_same_type_does_not_get_the_slips_message():
    def needs_2d(x):
        return x.t() @ x  # a RuntimeError too, but another one than the slip's

    message = _matmul_exercise().check(needs_2d).message
    assert "raised RuntimeError" in message and "line" in message  # the answer's own error, where it was raised
    assert "Use *, not @." not in message


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
    assert "returned an int;" in FunctionExercise(fn_name="f", reference=lambda n: [n], cases=[(3,)], question="?",
                                                  **COMMON).check(lambda n: n).message  # "an", not "a int"
    classes = FunctionExercise(fn_name="norm", reference=lambda d: nn.BatchNorm2d, cases=[("cpu",)], question="?", **COMMON)
    assert classes.check(lambda d: nn.BatchNorm2d).passed
    assert "SyncBatchNorm" in classes.check(lambda d: nn.SyncBatchNorm).message


# ----------------------------------------------------------------- the time limit

def test_an_answer_that_sleeps_gets_the_time_limit_message():
    ex = _function_exercise(time_limit=0.2)
    woken = threading.Event()  # set at the end, so no sleeping thread is left for the exit to wait for
    try:
        result = ex.check(lambda x: woken.wait(30))
    finally:
        woken.set()
    assert not result.passed
    assert "did not return within 0.2 s" in result.message and "a range" in result.message


def test_an_answer_that_loops_forever_gets_the_time_limit_message():
    stop = threading.Event()

    def loop_forever(x):
        while not stop.is_set():  # forever, as far as the check can tell (stopped by the test at the end)
            pass

    before = _base.TIME_LIMIT_S
    try:
        _base.set_time_limit(0.2)  # the global default, as a learner would change it
        result = _function_exercise().check(loop_forever)
    finally:
        stop.set()
        _base.set_time_limit(before)
    assert not result.passed and "did not return within 0.2 s" in result.message
    with pytest.raises(ValueError, match="above 0"):
        _base.set_time_limit(0)
    with pytest.raises(ValueError, match="HRNET_TEACH_TIME_LIMIT is 'soon'"):
        _base._seconds("soon", "HRNET_TEACH_TIME_LIMIT")


@pytest.mark.parametrize("no_limit", [float("inf"), "inf", 1e300])
def test_an_infinite_time_limit_means_no_limit_not_an_error_in_every_answer(no_limit):
    # join(inf) raised OverflowError in the check's own thread, and every right answer "raised OverflowError"
    before = _base.TIME_LIMIT_S
    try:
        _base.set_time_limit(no_limit)
        result = _function_exercise().check(_double)
        assert result.passed, result.message
    finally:
        _base.set_time_limit(before)
    assert _base.call_learner(lambda a: a + 1, 1, limit=float("inf")) == 2
    with pytest.raises(ValueError, match="above 0"):
        _base.set_time_limit(float("nan"))


def test_a_type_and_dtype_name_say_what_a_value_is_in_plain_words():
    assert [a_type(v) for v in (None, 1, [], np.zeros(1))] == ["None", "an int", "a list", "an ndarray"]
    assert [dtype_name(d) for d in (torch.float16, np.dtype("float32"))] == ["float16", "float32"]


@pytest.mark.parametrize("reference, nan", [(lambda x: x.sum(), lambda x: torch.tensor(float("nan"))),
                                            (_double, lambda x: x * float("nan"))], ids=["number", "tensor"])
def test_both_nan_messages_give_the_same_causes_and_only_real_ones(reference, nan):
    exercise = FunctionExercise(fn_name="f", reference=reference, cases=[(torch.arange(4.0),)], returns="a tensor",
                                question="?", **COMMON)
    message = exercise.check(nan).message
    assert str(NAN_CAUSES) in message, message  # one text for both, to translate once
    assert "overflow" not in message and "number or 0" not in message, message  # overflow gives inf, log(0) -inf


def test_set_time_limit_refuses_none_which_means_the_default_elsewhere():
    # an exercise's time_limit=None and call_learner(limit=None) mean "the default"; set_time_limit(None) meant none
    with pytest.raises(ValueError, match="or inf for no limit; the value given is None"):
        _base.set_time_limit(None)


def test_a_library_function_given_as_the_answer_names_the_library_file_not_a_bare_line():
    # before: "(line 4636 in interpolate)", which reads as a line of the learner's own code
    message = _function_exercise().check(F.interpolate).message
    assert re.search(r"\(line \d+ in interpolate of torch/nn/functional\.py\)", message), message


def _pair(x):
    return (int(x.numel()), 2 * x)


def test_a_none_entry_is_said_against_the_entry_with_its_article():
    ex = FunctionExercise(fn_name="pair", reference=_pair, cases=[(torch.ones(2),)], question="?", **COMMON)
    assert "the reference has an int there" in ex.check(lambda x: (None, 2 * x)).message  # before: "a int"
    assert "the reference has a Tensor there" in ex.check(lambda x: (2, None)).message


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
    # same keys, shapes and settings, other maths: a pooling changes the output's shape, a ReLU its values
    pooled = ex.check(lambda cin, cout: nn.Sequential(*_conv_bn(cin, cout), nn.MaxPool2d(2)))
    assert "output differs" in pooled.message and "shape (1, 4, 2, 2)" in pooled.message
    relu = ex.check(lambda cin, cout: nn.Sequential(*_conv_bn(cin, cout), nn.ReLU()))
    assert "largest difference" in relu.message and "ReLU" in relu.message
    assert "return an nn.Module" in ex.check(lambda cin, cout: "conv").message
    assert "you return an int; return an nn.Module" in ex.check(lambda cin, cout: 1).message  # before: "a int"
    assert "should be None" not in ex.check(lambda cin, cout: None).message


def _settings(conv=None, bn=None):  # the Conv2d and BatchNorm2d arguments that differ
    return lambda cin, cout: nn.Sequential(nn.Conv2d(cin, cout, 3, **{"padding": 1, "bias": False, **(conv or {})}),
                                           nn.BatchNorm2d(cout, **(bn or {})))


@pytest.mark.parametrize("answer, fragment", [
    (_settings(conv={"padding": 0}), "your Conv2d 0 has padding=(0, 0); the official one has padding=(1, 1)"),
    (_settings(conv={"dilation": 2, "padding": 2}), "has dilation=(2, 2)"),
    (_settings(bn={"eps": 1e-3}), "your BatchNorm2d 1 has eps=0.001; the official one has eps=1e-05"),
    (_settings(bn={"affine": False}), "has affine=False"),
    (_settings(bn={"momentum": 0.99}), "Keras's convention"),
])  # (the layers in another order: lesson 03's fuse_op catalogue, whose official steps have a ReLU to move)
def test_module_exercise_names_a_setting_that_keys_and_shapes_do_not_show(answer, fragment):
    assert fragment in _module_exercise().check(answer).message


@pytest.mark.parametrize("momentum", [0.1, 0.01])
def test_module_exercise_takes_either_of_the_authors_batchnorm_momenta(momentum):
    assert _module_exercise().check(_settings(bn={"momentum": momentum})).passed


def test_module_exercise_refuses_one_layer_object_used_twice():
    """`[step] * 2` keeps every key and shape, and the output matches once the weights are loaded into it, but the
    two places share one set of weights: said before any mistake (whose facts would count the layer once)."""
    ex = ModuleExercise(fn_name="make", reference=lambda n: nn.Sequential(*_conv_bn(n, n), *_conv_bn(n, n)),
                        official=lambda n: nn.Sequential(*_conv_bn(n, n), *_conv_bn(n, n)), cases=[(3,)],
                        inputs=lambda n: (torch.randn(1, n, 5, 5),), question="?", **COMMON)
    assert ex.check(ex.reference).passed
    conv, bn = _conv_bn(3, 3)
    shared = ex.check(lambda n: nn.Sequential(conv, bn, conv, bn))
    assert not shared.passed and "your layers 0 and 2 are one object" in shared.message


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
    # the verdict's words in the page's own text colour (readable in a dark theme), the colour on mark and border
    assert re.search(r'<b><span style="color:#1a7f37">✔</span> Correct</b>', result._repr_html_())
    assert not re.search(r"<b style=\"color", _view.result_html(False, "no"))
    assert "&lt;b&gt;" in _view.result_html(False, "<b>")  # the learner's text is escaped
    assert "replace the <code>...</code> with <code>&lt;b&gt;</code>" in _view.result_html(False, "replace the `...` with `<b>`")
    shown = ex.hint()
    assert isinstance(shown, _view.Shown) and shown == "h" and "Hint: h" in capsys.readouterr().out
    checking = (EXERCISE_DIR / "_kinds.py").read_text() + (EXERCISE_DIR / "_base.py").read_text()
    assert "IPython" not in checking and "<div" not in checking  # drawing lives in _view only


def test_the_next_hint_comes_with_those_already_shown(capsys):
    """A learner runs the hint cell again: hint 2 used to replace hint 1 on the screen; now both show."""
    ex = ValueExercise(read=int, reference=1, name="t", lesson="99", question="?", hints=["first", "second"])
    assert ex.hint() == "first" and capsys.readouterr().out.count("Hint (hint") == 1
    assert ex.hint() == "second"
    out = capsys.readouterr().out
    assert out.index("Hint (hint 1 of 2): first") < out.index("Hint (hint 2 of 2): second")
    assert ex.hint(1) == "first" and "second" not in capsys.readouterr().out  # a number shows that hint alone


def test_a_code_solution_renders_as_a_code_block_in_a_notebook(monkeypatch):
    """Jupyter renders the solution's Markdown: the fence must open a line, or the code becomes one inline
    span with its indentation gone (as it was when the title stood on the fence's line)."""
    import IPython
    import IPython.display
    import mistune  # the Markdown renderer of nbconvert, which JupyterLab brings

    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj.data))
    ex = FunctionExercise(fn_name="double", reference=_double, cases=[(1,)], name="t", lesson="99", question="?")
    ex.solution()
    page = mistune.html(shown[0])
    assert page.startswith("<p><strong>Solution:</strong></p>"), page
    assert '<pre><code class="language-python">def double(x):\n    return 2 * x' in page, page
    # a Chinese title ends with a full-width colon: no space after it, and the bold still closes
    _view.show("提示（第 1 条，共 2 条）：", "看 `conv1`。")
    assert mistune.html(shown[-1]).strip() == "<p><strong>提示（第 1 条，共 2 条）</strong>：看 <code>conv1</code>。</p>"


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


def test_a_slip_in_the_signature_is_recognised_whatever_the_functions_name():
    def _old_signature(x):  # the slip: the two-argument call does not fit
        return 2 * x

    ex = FunctionExercise(fn_name="f", reference=lambda x, k: k * x, cases=[(torch.ones(2), 3)], question="?",
                          mistakes=[Mistake("old", "It takes k now.", like=_old_signature)], **COMMON)

    def mine(x):
        return x

    def three(x, k, extra):
        return x

    assert "It takes k now." in ex.check(mine).message  # Python names each function in its TypeError
    assert "It takes k now." not in ex.check(three).message  # another misfit: the answer's own error


# ----------------------------------------------------------------- answers given as arrays

def _lesson_exercise(lesson, name):
    return getattr(importlib.import_module(f"hrnet_teach.exercises.lesson{lesson}"), name)


@pytest.mark.parametrize("lesson, name, answer", [
    ("00", "highres_size", np.array([64, 96])), ("00", "highres_size", torch.tensor([64, 96])),
    ("01", "stem_shape", np.array([2, 64, 56, 80])), ("01", "stem_shape", torch.tensor([2, 64, 56, 80])),
    ("03", "none_entries", np.array([[0, 0], [1, 1], [2, 2]])), ("03", "none_entries", torch.tensor([[0, 0], [1, 1], [2, 2]])),
    ("05", "branch_cost_ratio", np.array([64.0, 1.0])),
], ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_a_right_answer_given_as_an_array_or_a_tensor_is_accepted(lesson, name, answer):
    result = _lesson_exercise(lesson, name).check(answer)
    assert result.passed, result.message


@pytest.mark.parametrize("lesson, name, wrong", [
    ("00", "highres_size", [64, 95]), ("00", "highres_size", [64.5, 96.0]), ("01", "stem_shape", [2, 56, 80, 64]),
    ("03", "none_entries", [[0, 1], [0, 2], [1, 2]]), ("03", "none_entries", [0, 1, 2]),
])
def test_a_wrong_array_gets_the_message_of_the_same_wrong_list(lesson, name, wrong):
    ex = _lesson_exercise(lesson, name)
    as_list = ex.check(wrong)
    assert not as_list.passed
    for array in (np.array(wrong), torch.tensor(wrong)):
        result = ex.check(array)
        assert not result.passed and result.message == as_list.message


@pytest.mark.parametrize("lesson, name", [
    ("00", "highres_size"), ("01", "stem_shape"), ("01", "bottleneck_channels"), ("02", "branch_channels"),
    ("03", "fuse_steps"), ("03", "multi_scale_rows"), ("03", "nearest_size"), ("05", "concat_channels"),
    ("06", "last_layer_channels"), ("06", "pose_fuse_rows"), ("08", "size_mismatch"),
    ("02", "odd_branch_shapes"), ("03", "none_entries"),  # lists of tuples
])
def test_a_whole_number_computed_with_a_slash_counts(lesson, name):
    """256 / 4 is 64.0: the right number, read the same in every value exercise (64.5 is not whole)."""
    def floats(v, plus=0.0):
        if isinstance(v, (tuple, list)):
            return type(v)(floats(x, plus) for x in v)
        return float(v) + plus

    ex = _lesson_exercise(lesson, name)
    result = ex.check(floats(ex.reference))
    assert result.passed, result.message
    assert "whole number" in ex.check(floats(ex.reference, 0.5)).message


def test_a_meta_tensor_answer_is_refused_by_its_type():
    message = _lesson_exercise("00", "highres_size").check(torch.tensor([64, 96], device="meta")).message
    assert "Give two whole numbers" in message and "Tensor" in message


# ----------------------------------------------------------------- lesson 03's fuse sum

def test_swapped_fuse_indices_are_named_also_where_they_do_not_raise():
    """With equal widths fuse_layers[j][i] fits branch j's input: no error, only other values."""
    from hrnet_teach.blocks import BasicBlock
    from hrnet_teach.exercises import lesson03
    from hrnet_teach.exercises._answers import random_bn
    from hrnet_teach.module import HighResolutionModule

    module = random_bn(HighResolutionModule(2, BasicBlock, [1, 1], (4, 4), (4, 4), align_corners=True), 0)
    g = torch.Generator().manual_seed(0)
    xs = [torch.rand(1, 4, 8, 8, generator=g), torch.rand(1, 4, 4, 4, generator=g)]
    ex = copy.copy(lesson03.fuse_sum)
    ex._cases = [Case(module, xs, 0)]
    def swapped(module, xs, i):  # a learner's loop with the indices the other way round (not the package's slip)
        y = 0
        for j, xj in enumerate(xs):
            term = xj if j == i else module.fuse_layers[j][i](xj)
            if j > i:
                term = F.interpolate(term, size=xs[i].shape[-2:], mode="bilinear", align_corners=module.align_corners)
            y = y + term
        return torch.relu(y)

    assert isinstance(swapped(module, xs, 0), torch.Tensor)  # it runs here
    assert ex.check(swapped).message.startswith("fuse_layers[i][j] takes input j to output i")
    assert ex.check(lesson03.fuse_by_hand).passed


def test_a_layer_summary_names_an_unusual_padding_and_reads_valid_and_same_as_numbers():
    from hrnet_teach.exercises._answers import layer_summary

    usual = layer_summary(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)))
    assert usual == ["Conv2d 4->4 3x3 stride 1, bias", "Conv2d 4->4 1x1 stride 1, bias"]
    padded = layer_summary(nn.Sequential(nn.Conv2d(4, 4, 1, padding=1, bias=False)))
    assert padded == ["Conv2d 4->4 1x1 stride 1 padding (1, 1)"]  # else it reads as the official 1x1 conv
    named = layer_summary(nn.Sequential(nn.Conv2d(4, 4, 3, padding="same"), nn.Conv2d(4, 4, 1, padding="valid")))
    assert named == usual  # the same convs, the padding given by name


def test_fuse_op_tells_a_padded_1x1_conv_and_not_a_valid_one():
    from hrnet_teach.exercises import lesson03

    def padded(pad, bias=False):
        def build(i, j, ch):
            op = lesson03.make_fuse_op(i, j, ch)
            if op is not None and j > i:
                op[0] = nn.Conv2d(ch[j], ch[i], 1, padding=pad, bias=bias)
            return op
        return build
    assert "The 1x1 conv takes no padding" in lesson03.fuse_op.check(padded(2)).message
    message = lesson03.fuse_op.check(padded("valid", bias=True)).message
    assert "padding" not in message.split(".")[0] and "bias=False" in message


# ----------------------------------------------------------------- the course's own code shares modules

def _module_state(value) -> list:
    """Everything of the modules in an argument that a call could change: names, modes, weights and buffers."""
    found = []
    for item in (value if isinstance(value, (list, tuple)) else [value]):
        if isinstance(item, (list, tuple)):
            found += _module_state(item)
        elif isinstance(item, nn.Module):
            found.append([(name, type(m).__name__, m.training) for name, m in item.named_modules()])
            found.append({k: v.detach().clone() for k, v in item.state_dict().items()})
    return found


def _same_state(before, after) -> bool:
    if len(before) != len(after):
        return False
    for b, a in zip(before, after):
        if isinstance(b, dict):
            if b.keys() != a.keys() or not all(torch.equal(b[k], a[k]) for k in b):
                return False
        elif b != a:
            return False
    return True


def _function_exercises():
    from hrnet_teach.exercises import all_exercises
    return [ex for ex in all_exercises() if isinstance(ex, FunctionExercise)]


@pytest.mark.parametrize("ex", _function_exercises(), ids=lambda ex: f"{ex.lesson}-{ex.name}")
def test_references_and_slips_leave_the_modules_they_are_given_as_they_were(ex):
    """A check runs the reference and every `like=` slip on the case's own modules (no copy: a deepcopy per slip
    and case was most of a check's time); a slip that ran a BatchNorm in training mode or wrote into a weight
    would change what every later slip and case is compared with."""
    from hrnet_teach.exercises._answers import one_thread
    course_code = [("the reference", ex.expected_fn)] + [(m.name, m.like) for m in ex.mistakes if m.like is not None]
    with one_thread(), torch.no_grad():
        for case in ex.cases():
            before = _module_state(case.args)
            for name, fn in course_code:
                try:
                    ex._invoke(fn, case, copy_modules=False)
                except Exception:  # a slip may raise: that is how some are recognised
                    pass
                assert _same_state(before, _module_state(case.args)), f"{ex.name}: {name} changed a module on {case.where}"


def test_a_slip_that_changes_its_module_is_caught_by_that_check():
    """The test above can fail: a slip that runs the block in training mode moves its BatchNorm statistics."""
    block = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)).eval()
    before = _module_state((block, torch.ones(1)))

    def slip(module, x):
        module.train()
        return module(torch.randn(2, 2, 3, 3))

    ex = FunctionExercise(fn_name="f", reference=lambda m, x: x, cases=[(block, torch.ones(1))],
                          question="?", **COMMON)
    with torch.no_grad():
        ex._invoke(slip, next(iter(ex.cases())), copy_modules=False)
    assert not _same_state(before, _module_state((block, torch.ones(1))))


def _scaled_sum(block, xs, s):  # a reference that leaves what it is given as it was
    return block(xs[0] + xs[1]) * s


def _writer(write):
    """The reference's result, after ``write(block, xs)`` wrote into what the function was given."""
    def answer(block, xs, s):
        out = _scaled_sum(block, xs, s)
        write(block, xs)
        return out
    return answer


def _scaled_sum_exercise():
    g = torch.Generator().manual_seed(3)
    block = nn.Sequential(nn.Conv2d(2, 2, 1), nn.BatchNorm2d(2)).eval()
    return FunctionExercise(fn_name="scaled_sum", reference=_scaled_sum, question="?",
                            cases=[(block, [torch.randn(1, 2, 3, 3, generator=g) for _ in range(2)], 2.0)], **COMMON)


@pytest.mark.parametrize("write, named", [
    (lambda block, xs: xs[1].mul_(2), "changed xs[1] in place"),
    (lambda block, xs: xs.append(xs[0]), "changed the length of xs in place"),
    (lambda block, xs: block[0].weight.data.zero_(), "changed block.0.weight in place"),
    (lambda block, xs: block[1].running_mean.fill_(1.0), "changed block.1.running_mean in place"),
    (lambda block, xs: block.train(), "changed the mode of block (train() or eval()) in place"),
])
def test_a_right_result_from_a_function_that_wrote_into_its_arguments_is_refused(write, named):
    """The check gives the answer copies, so the values it compares are unharmed; but in the notebook the function
    gets the caller's objects. What it wrote into is named (the reference, which writes nothing, passes)."""
    ex = _scaled_sum_exercise()
    assert ex.check(_scaled_sum).passed
    result = ex.check(_writer(write))
    assert not result.passed and "gives the right result" in result.message and named in result.message


def test_a_function_that_reads_its_arguments_and_builds_new_ones_passes():
    def rebuilt(block, xs, s):  # new list, new tensors; the block only called
        xs = [x.clone() for x in xs]
        xs[0] += xs[1]
        return block(xs[0]) * s
    assert _scaled_sum_exercise().check(rebuilt).passed


def _twice_conv(conv, x):  # a forward: conv, then twice the result
    return 2 * conv(x)


def _forward_exercise(trains: bool):
    g = torch.Generator().manual_seed(5)
    conv = nn.Conv2d(2, 3, 1)
    return FunctionExercise(fn_name="double", reference=_twice_conv, question="?", trains=trains,
                            cases=[(conv, torch.randn(1, 2, 4, 4, generator=g))], **COMMON)


def _under_no_grad(conv, x):
    with torch.no_grad():
        return 2 * conv(x)


@pytest.mark.parametrize("answer", [_under_no_grad, lambda conv, x: (2 * conv(x)).detach()])
def test_a_forward_that_training_runs_must_keep_its_gradient(answer):
    """With trains=True the answer runs with autograd on, on inputs that require a gradient (as in training):
    right numbers without a gradient (no_grad, detach) are refused, and said so; without it they pass."""
    assert _forward_exercise(True).check(_twice_conv).passed
    refused = _forward_exercise(True).check(answer)
    assert not refused.passed and "output carries no gradient" in refused.message
    assert _forward_exercise(False).check(answer).passed


def test_numpy_in_a_forward_that_training_runs_is_told_from_the_answers_line():
    message = _forward_exercise(True).check(lambda conv, x: torch.from_numpy(2 * conv(x).numpy())).message
    assert "Keep the tensors as tensors" in message


def test_a_list_of_numbers_written_into_gets_the_advice_for_lists():
    ex = FunctionExercise(fn_name="widths", reference=lambda channels: [2 * c for c in channels], question="?",
                          solution_text="s", cases=[([1, 2],)], **{k: v for k, v in COMMON.items() if k != "solution_text"})

    def doubled_in_place(channels):
        channels[:] = [2 * c for c in channels]
        return list(channels)
    message = ex.check(doubled_in_place).message
    assert "changed channels[0] in place" in message and "Leave the caller's list as it was" in message


def test_a_write_into_an_argument_that_leaves_its_values_is_seen_by_the_version_counter():
    """relu_() on features that are already non-negative changes no value, but it is a write into the caller's
    tensor (and training's backward would refuse it): torch's version counter shows it where values cannot."""
    def positive_sum(xs):
        return xs[0] + xs[1]
    ex = FunctionExercise(fn_name="positive_sum", reference=positive_sum, question="?",
                          cases=[([torch.rand(2, 3), torch.rand(2, 3)],)], **COMMON)
    assert ex.check(positive_sum).passed
    result = ex.check(lambda xs: xs[0].relu_() + xs[1])
    assert not result.passed and "changed xs[0] in place" in result.message
