"""The audit of lessons 01-05's checkers (253 new wrong or unusual answers): each finding it fixed, as the learner
meets it. Wrongly accepted answers are refused, misleading messages say what is wrong, vague ones name the slip,
and right answers typed another way are accepted. The catalogue (wrong_answers) holds one answer per message too;
these are the audit's own answers, written the way a learner writes them."""
import gettext
import io
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrnet_teach import i18n
from hrnet_teach.exercises import lesson01, lesson02, lesson03, lesson04, lesson05


def _message(ex, answer, passes=False) -> str:
    result = ex.check(answer)
    assert result.passed == passes, result.message
    return result.message


# ------------------------------------------------------------------ wrongly accepted, now refused

def test_transition_pass_entries_must_be_none_not_an_identity():
    for empty in (nn.Identity, nn.Sequential):
        def build(pre, cur, empty=empty):
            return nn.ModuleList([empty() if t is None else t for t in lesson04.make_transition(pre, cur)])
        assert "an nn.Identity or an empty nn.Sequential is not None" in _message(lesson04.transition_op, build)


def _forward_into_x(block, x):
    out = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
    if block.downsample is not None:
        x = block.downsample(x)
    x += out  # writes into the caller's x where there is no downsample
    return block.relu(x)


def _sum_into_xs(module, xs, i):
    y = xs[i]
    for j, xj in enumerate(xs):
        if j != i:
            t = module.fuse_layers[i][j](xj)
            if j > i:
                t = F.interpolate(t, size=xs[i].shape[-2:], mode="bilinear", align_corners=module.align_corners)
            y += t  # y is xs[i] itself
    return torch.relu(y)


def test_an_input_changed_in_place_is_refused():
    assert "changed its input x in place" in _message(lesson01.basic_block_forward, _forward_into_x)
    assert "changed xs[0] in place" in _message(lesson03.fuse_sum, _sum_into_xs)


def test_calling_the_block_or_switching_its_mode_is_refused():
    class Forward:  # a callable object passes through as a function does
        def __call__(self, block, x):
            return block(x)

    assert "called the block itself" in _message(lesson01.basic_block_forward, Forward())

    def trains(block, x):
        block.train()
        return lesson01._reference_forward(block, x)

    assert "training mode" in _message(lesson01.basic_block_forward, trains)


def test_a_set_is_no_ordered_pair_nor_shape():
    assert "A set has no order" in _message(lesson03.multi_scale_rows, {4, 1})  # it used to iterate as (1, 4)
    assert "A set has no order" in _message(lesson01.stem_shape, {2, 64, 56, 80})


# ------------------------------------------------------------------ misleading, now said as it is

def test_an_unfinished_fuse_op_gets_its_own_error_and_no_fact_about_an_op():
    def unfinished(i, j, channels):
        if i == j:
            return None
        raise ValueError("not done yet")

    message = _message(lesson03.fuse_op, unfinished)
    assert "raised ValueError: not done yet (line" in message and "yours has" not in message


def test_a_transition_entry_with_no_steps_or_of_the_wrong_type_is_named():
    def no_steps(pre, cur):  # i - len(pre) steps: none for the first new branch
        t = lesson04.make_transition(pre, cur)
        return nn.ModuleList([*t[:len(pre)], *(nn.Sequential(*e[1:]) for e in t[len(pre):])])

    assert "needs 1 stride-2 conv(s); yours has 0 stride-2" in _message(lesson04.transition_op, no_steps)

    def steps_in_a_list(pre, cur):  # a plain list, whose new entry is a list of steps
        return [list(e) if i >= len(pre) else e for i, e in enumerate(lesson04.make_transition(pre, cur))]

    assert "Entry 1 is a list" in _message(lesson04.transition_op, steps_in_a_list)

    def as_dict(pre, cur):
        return dict(enumerate(lesson04.make_transition(pre, cur)))

    assert "returns a dict; return an nn.ModuleList" in _message(lesson04.transition_op, as_dict)


def test_a_new_branch_not_nested_per_step_names_the_nesting():
    def unwrapped(pre, cur):  # a one-step new branch not wrapped in the outer nn.Sequential
        return nn.ModuleList([e[0] if i >= len(pre) and len(e) == 1 else e
                              for i, e in enumerate(lesson04.make_transition(pre, cur))])

    assert "(1.0.0.weight, not 1.0.weight)" in _message(lesson04.transition_op, unwrapped)


def test_transition_forward_none_entries_and_a_changed_list():
    def appends_none(transition, y_list):
        return [None if op is None else op(y_list[min(i, len(y_list) - 1)]) for i, op in enumerate(transition)]

    assert "a None entry of the transition means pass through" in _message(lesson05.transition_forward, appends_none)

    # a list changed in place: lesson05._appends_into_y, catalogued ("changed the list")


def test_tensors_given_for_shapes_get_a_short_message():
    message = _message(lesson01.stem_shape, torch.zeros(2, 64, 56, 80))
    assert "tensor of shape (2, 64, 56, 80), not a shape" in message and len(message) < 300
    outputs = [torch.zeros(1, c, h, w) for c, h, w in lesson02.SHAPES]
    message = _message(lesson02.odd_branch_shapes, outputs)
    assert "list of tensors, not of shapes" in message and len(message) < 300
    assert _message(lesson02.odd_branch_shapes, np.array(lesson02.SHAPES, dtype=float), passes=True)


# ------------------------------------------------------------------ vague, now naming the slip

@pytest.mark.parametrize("slip, fragment", [
    (lambda b, x: b.relu(b.bn2(b.conv2(b.relu(b.bn1(b.conv1(x))))) * lesson01._parts(b, x)[1]), "not multiplied"),
    (lambda b, x: b.relu(b.bn1(b.conv2(b.relu(b.bn1(b.conv1(x))))) + lesson01._parts(b, x)[1]), "used bn1 twice"),
    (lambda b, x: b.relu(b.bn2(b.conv1(b.relu(b.bn1(b.conv1(x))))) + lesson01._parts(b, x)[1]), "used conv1 twice"),
    (lambda b, x: torch.sigmoid(sum(lesson01._parts(b, x))), "not a sigmoid"),
    (lambda b, x: b.relu(lesson01._parts(b, x)[0] + (x if b.downsample is None else b.downsample[0](x))),
     "only its conv, downsample[0]"),
    (lambda b, x: b.relu(lesson01._parts(b, x)[0] + (x if b.downsample is None else b.bn2(b.downsample[0](x)))),
     "downsample[1], not bn2"),
    (lambda b, x: b.relu(lesson01._parts(b, x)[0] + 0.5 * lesson01._parts(b, x)[1]), "the numbers differ. Main path"),
])
def test_basic_block_slips_are_named(slip, fragment):
    assert fragment in _message(lesson01.basic_block_forward, slip)


def _sum(module, xs, i, js, mode="bilinear", mean=False):
    terms = [xs[j] if j == i else module.fuse_layers[i][j](xs[j]) for j in js]
    terms = [F.interpolate(t, size=xs[i].shape[-2:], mode=mode, align_corners=module.align_corners) if j > i else t
             for j, t in zip(js, terms)]
    return torch.relu(sum(terms) / (len(xs) if mean else 1))


@pytest.mark.parametrize("answer, fragment", [
    (lambda m, xs, i: _sum(m, xs, i, range(i + 1)), "the coarser branches (j > i) too"),
    (lambda m, xs, i: _sum(m, xs, i, range(len(xs) - 1)), "stops one branch short"),
    (lambda m, xs, i: _sum(m, xs, i, range(len(xs)), mean=True), "do not average them"),
    (lambda m, xs, i: _sum(m, xs, i, range(len(xs)), mode="bicubic"), "not bicubic"),
    (lambda m, xs, i: m(xs)[i], "module(xs) runs the module's branches again"),
])
def test_fuse_sum_slips_are_named(answer, fragment):
    assert fragment in _message(lesson03.fuse_sum, answer)


def test_a_fuse_op_built_for_the_swapped_indices_says_so():
    message = _message(lesson03.fuse_op, lambda i, j, ch: lesson03.make_fuse_op(j, i, ch))
    assert message.startswith("Row i is the output, column j the input: for make_fuse_op(0, 1, ...) you built "
                              "fuse_layers[1][0]")


def test_transition_forward_says_which_entries_are_missing_and_where_a_branch_grows_from():
    def skips_none(transition, y_list):
        return [op(y_list[min(i, len(y_list) - 1)]) for i, op in enumerate(transition) if op is not None]

    assert "leaves out the entries where the transition holds None" in _message(lesson05.transition_forward, skips_none)

    def one_new_branch(transition, y_list):  # loops over y_list, then adds one new branch
        out = [x if op is None else op(x) for op, x in zip(transition, y_list)]
        return out + [transition[len(y_list)](y_list[-1])]

    message = _message(lesson05.transition_forward, one_new_branch)
    assert "wrong length (2; the transition has 3 entries)" in message and "1 entries" not in message

    def from_built(transition, y_list):
        out = []
        for i, op in enumerate(transition):
            source = y_list[i] if i < len(y_list) else out[-1]
            out.append(source if op is None else op(source))
        return out

    assert "not from the list you are building" in _message(lesson05.transition_forward, from_built)


@pytest.mark.parametrize("ex, answer, fragment", [
    (lesson05.branch_cost_ratio, (1 / 64, 1), "Your parameter ratio is branch 0 / branch 3"),
    (lesson01.layer1_downsample, [1, 2, 3], "blocks without a downsample"),
    (lesson01.layer1_downsample, [True, False, False, False], "True/False flags"),
    (lesson04.transition2_none, [True, True, False], "True/False flags"),
    (lesson03.none_entries, np.eye(3, dtype=bool), "True/False matrix"),
    (lesson02.odd_branch_shapes, lesson02.SHAPES[::-1], "runs from branch 3 to branch 0"),
])
def test_value_slips_are_named(ex, answer, fragment):
    assert fragment in _message(ex, answer)


# ------------------------------------------------------------------ right answers typed another way

@pytest.mark.parametrize("ex, answer", [  # made when the test runs: a generator or zip is read only once
    (lesson01.layer1_downsample, lambda: [0.0]),
    (lesson03.none_entries, lambda: ((i, i) for i in range(3))), (lesson03.none_entries, lambda: zip(range(3), range(3))),
    (lesson04.transition2_none, lambda: range(2)), (lesson04.transition2_none, lambda: [0.0, 1.0]),
    (lesson04.transition2_none, lambda: [-3, -2]),
    (lesson05.stage_most_params, lambda: np.int64(4)), (lesson05.stage_most_params, lambda: 4.0),
    (lesson05.stage_most_params, lambda: "stage4."),
], ids=["0.0", "generator", "zip", "range", "floats", "negatives", "np.int64", "4.0", "full stop"])
def test_right_answers_typed_another_way_pass(ex, answer):
    _message(ex, answer(), passes=True)


# ------------------------------------------------------------------ the new messages in Chinese

def test_the_new_messages_speak_chinese(monkeypatch):
    """From the .po files themselves (compiled here, in memory), so this holds before the shipped .mo is rebuilt."""
    monkeypatch.setattr(i18n, "_translation", gettext.GNUTranslations(io.BytesIO(i18n.compile_mo("zh"))))
    monkeypatch.setattr(i18n, "_language", "zh")
    for ex in (*lesson01.EXERCISES, *lesson02.EXERCISES, *lesson03.EXERCISES, *lesson04.EXERCISES,
               *lesson05.EXERCISES):
        for answer, _fragment in ex.wrong_answers:
            message = ex.check(answer).message
            assert not re.search(r"\{[A-Za-z_]\w*\}", message), (ex.name, message)  # every placeholder filled
    assert "原地修改了输入 x" in lesson01.basic_block_forward.check(_forward_into_x).message
    assert "集合（set）没有顺序" in lesson03.multi_scale_rows.check({4, 1}).message
