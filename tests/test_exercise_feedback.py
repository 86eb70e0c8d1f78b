"""Feedback on answers a learner's sweep found mishandled: right answers typed another way that
were refused, and slips that got only "values differ" or a message about something else."""
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrnet_teach.exercises import lesson01, lesson02, lesson04, lesson05, lesson06, lesson07, lesson08, lesson10


# ------------------------------------------------------------------ lesson 08: cpu_norm_layer
@pytest.mark.parametrize("answer", ["batchnorm2d", "nn.modules.batchnorm.BatchNorm2d", "BatchNorm2d()",
                                    "nn.BatchNorm2D", " torch.nn.BatchNorm2d() ",
                                    functools.partial(nn.BatchNorm2d, momentum=0.01)])
def test_cpu_norm_layer_accepts_batchnorm2d_however_typed(answer):
    result = lesson08.cpu_norm_layer.check(answer)
    assert result.passed, result.message


def test_cpu_norm_layer_names_syncbatchnorm_typed_in_lower_case():
    message = lesson08.cpu_norm_layer.check("syncbatchnorm").message
    assert "SyncBatchNorm in training then insists on a GPU" in message
    assert "not a norm layer HRNet uses" not in message  # the OCR branch does use it: no contradiction


@pytest.mark.parametrize("answer, words", [("BatchNorm", "torch.nn has no class named 'BatchNorm'"),
                                           ("identity", "Identity is not a norm layer:")])
def test_cpu_norm_layer_says_what_an_unknown_or_non_norm_name_is(answer, words):
    result = lesson08.cpu_norm_layer.check(answer)
    assert not result.passed
    assert words in result.message and "built with BatchNorm" not in result.message


# ------------------------------------------------------------------ lesson 10: fold_conv_bn
def test_fold_returning_no_bias_is_told_to_return_one():
    def fold(conv, bn):
        weight, bias = lesson10._fold(conv, bn)
        return weight, (None if conv.bias is None else bias)

    message = lesson10.fold_conv_bn.check(fold).message
    assert "Return a bias tensor even when conv.bias is None" in message
    assert "forget `return`" not in message


def test_fold_accepts_a_list():  # still accepted (a guard, not a fix)
    assert lesson10.fold_conv_bn.check(lambda conv, bn: list(lesson10._fold(conv, bn))).passed


def test_fold_names_the_entry_that_differs():
    message = lesson10.fold_conv_bn.check(lambda conv, bn: lesson10._fold(conv, bn)[::-1]).message
    assert "entry 0 (the weight)" in message


# ------------------------------------------------------------------ lesson 01: basic_block_forward, stem_shape
def test_basic_block_forward_written_with_functional_relu_still_passes():
    def forward(block, x):
        residual = x if block.downsample is None else block.downsample(x)
        out = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
        out += residual
        return F.relu(out)

    result = lesson01.basic_block_forward.check(forward)
    assert result.passed, result.message


def test_basic_block_pre_activation_without_the_second_relu_is_named():
    def forward(block, x):
        residual = x if block.downsample is None else block.downsample(x)
        out = block.conv1(block.relu(block.bn1(x)))
        return block.relu(block.conv2(block.bn2(out)) + residual)

    assert "pre-activation order" in lesson01.basic_block_forward.check(forward).message


def test_stem_shape_channels_last_says_the_order():
    message = lesson01.stem_shape.check((2, 56, 80, 64)).message
    assert "Your numbers are right but in another order" in message and "56 channels" not in message


# ------------------------------------------------------------------ lesson 02, 06: answers in another order
def test_odd_branch_shapes_in_hwc_order_says_the_order():
    message = lesson02.odd_branch_shapes.check([(h, w, c) for c, h, w in lesson02.SHAPES]).message
    assert "(C, H, W), channels first" in message and "channels, not" not in message


def test_last_layer_channels_swapped_says_swapped():
    message = lesson06.last_layer_channels.check((lesson06.MODIFIED, lesson06.OFFICIAL)).message
    assert "the official head comes first, then the modified one" in message


def test_v2_head_with_a_softmax_is_told_to_return_logits():
    result = lesson06.v2_head.check(lambda features, last: lesson06._v2_head(features, last).log_softmax(1))
    assert not result.passed and "no softmax" in result.message


# ------------------------------------------------------------------ lesson 04: transition_op
def test_transition_as_sequential_is_refused():
    result = lesson04.transition_op.check(lambda pre, cur: nn.Sequential(*lesson04.make_transition(pre, cur)))
    assert not result.passed and "return an nn.ModuleList" in result.message


def test_transition_adapt_without_bn_names_the_missing_bn():
    def make(pre, cur):
        t = lesson04.make_transition(pre, cur)
        if t[0] is not None:
            t[0] = nn.Sequential(nn.Conv2d(pre[0], cur[0], 3, 1, 1, bias=False), nn.ReLU(inplace=True))
        return t

    message = lesson04.transition_op.check(make).message
    assert "Entry 0: every conv is followed by a BatchNorm2d" in message and "state dict" not in message


def test_transition_built_with_relu_not_inplace_still_passes():
    def step(cin, cout, stride):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    def make(pre, cur):
        entries = []
        for i, cout in enumerate(cur):
            if i < len(pre):
                entries.append(None if pre[i] == cout else step(pre[i], cout, 1))
            else:
                n = i + 1 - len(pre)
                entries.append(nn.Sequential(*[step(pre[-1], cout if s == n - 1 else pre[-1], 2) for s in range(n)]))
        return nn.ModuleList(entries)

    torch.manual_seed(0)
    result = lesson04.transition_op.check(make)
    assert result.passed, result.message


@pytest.mark.parametrize("answer, said", [
    (lambda pre, cur: 1, "Your function returns an int; return an nn.ModuleList"),  # before: "a int"
    (lambda pre, cur: [None, ...], "Entry 1 is an ellipsis: each entry is None"),  # before: "a ellipsis"
])
def test_transition_answers_of_another_type_are_named_with_the_right_article(answer, said):
    assert said in lesson04.transition_op.check(answer).message


def test_transition_op_still_runs_the_learners_plain_module_list():
    # run on the learner's nn.ModuleList, which has no pre_channels for Transition.forward's input checks
    result = lesson04.transition_op.check(lesson04.make_transition)
    assert result.passed, result.message


# ------------------------------------------------------------------ lesson 05: transition_forward
@pytest.mark.parametrize("change, said", [(lambda x: x.half(), "your output is float16"),
                                          (lambda x: x * float("nan"), "values are NaN")])
def test_transition_forward_in_float16_or_nan_is_not_blamed_on_the_indices(change, said):
    reference = lesson05.transition_forward.reference
    message = lesson05.transition_forward.check(lambda t, y: [change(x) for x in reference(t, y)]).message
    assert said in message and "apply transition[i] to y_list[i]" not in message, message


# ------------------------------------------------------------------ lesson 07
def test_miou_nan_on_a_matrix_where_every_class_occurs_is_not_blamed_on_an_empty_class():
    message = lesson07.miou_from_confusion.check(lambda cm: float("nan")).message
    assert "although every class occurs in it" in message and "no label and no prediction" not in message
    empty_class = lesson07.miou_from_confusion.check(functools.partial(lesson07._mean_ratio, absent="nan")).message
    assert "a class in no label and no prediction gives 0/0" in empty_class  # only where the case has one


def test_a_nan_number_says_where_a_nan_comes_from():
    # a tensor on the logits' graph (a plain float is refused first: the loss must stay a tensor for backward())
    message = lesson07.segmentation_loss.check(lambda logits, mask: logits.sum() * float("nan")).message
    assert "you return nan" in message and "a 0/0, a log or sqrt" in message


def test_a_0d_tensor_is_shown_with_its_value():
    message = lesson07.norm_for.check(lambda d, n: torch.tensor(float("nan"))).message
    assert "you return tensor(nan);" in message, message  # before: "you return tensor ;"


# ------------------------------------------------------------------ lesson 08: dropped_keys
@pytest.mark.parametrize("answer", ["", " ", [""], ["", "last_layer.0.weight"]])
def test_an_empty_key_is_named_not_shown_as_nothing(answer):
    message = lesson08.dropped_keys.check(answer).message
    assert message.startswith("One of your keys is an empty string ('')"), message  # before: ": not among ..."
