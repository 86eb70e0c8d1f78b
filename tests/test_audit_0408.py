"""Answers an audit of lessons 04-08 found told the wrong thing, or nothing useful: each now gets the message of
the slip it makes. The slips are also in each exercise's catalogue (tests/test_exercises.py); here what a
catalogue does not show: the message an answer no longer gets, and how a long error is quoted."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrnet_teach.exercises import lesson04, lesson05, lesson06, lesson07
from hrnet_teach.exercises._kinds import _first_line


def _message(ex, answer) -> str:
    result = ex.check(answer)
    assert not result.passed
    return result.message


# ------------------------------------------------------------------ how an error is quoted
def test_a_long_error_is_cut_at_a_sentence_end_with_an_ellipsis():
    first = "Input and output must have the same number of spatial dimensions, but got output size torch.Size([2, 32, 32])"
    error = ValueError(f"{first}. Please provide input tensor in (N, C, d1, d2, ...,dK) format and output size.")
    assert _first_line(error) == f"ValueError: {first}…"


def test_a_long_error_without_a_sentence_end_is_cut_between_words():
    quoted = _first_line(RuntimeError("expected input " * 20))
    assert quoted.endswith("…") and quoted[:-1].split()[-1] in ("expected", "input") and len(quoted) < 190


def test_a_short_error_is_quoted_whole():
    assert _first_line(RuntimeError("list index out of range.")) == "RuntimeError: list index out of range"


# ------------------------------------------------------------------ lesson 04
def test_the_two_kinds_swapped_are_called_swapped():
    assert _message(lesson04.transition1_kinds, ["new", "adapt"]).startswith("Swapped")


# ------------------------------------------------------------------ lesson 05
@pytest.mark.parametrize("width, name", [(48, "w48"), (18, "w18")])
def test_another_variants_width_is_named(width, name):
    assert f"15C for {name}" in _message(lesson05.concat_channels, 15 * width)


def test_a_new_branch_from_the_branch_above_is_not_told_about_y_list_i():
    message = _message(lesson05.transition_forward, lambda t, y: [
        y[i] if op is None else op(y[i] if i < len(y) else y[i - 1]) for i, op in enumerate(t)])
    assert "y_list[i - 1] is that branch only when" in message and "has no y_list[i]" not in message


def test_an_adapted_branch_fed_from_the_last_one_gets_a_message_not_only_the_conv_error():
    message = _message(lesson05.transition_forward, lambda t, y: [
        y[i] if op is None else op(y[-1]) for i, op in enumerate(t)])
    assert "reads its own y_list[i]" in message


# ------------------------------------------------------------------ lesson 06
def test_the_head_exercise_says_which_align_corners_it_checks():
    assert "align_corners=True" in lesson06.v2_head.question


@pytest.mark.parametrize("last", [2, 3])
def test_a_right_first_count_with_too_many_last_rows_is_told_about_the_last_module(last):
    message = _message(lesson06.pose_fuse_rows, (4, last))
    assert message.startswith("stage4[0] is right") and f"not {last}." in message


def test_a_wrong_first_count_of_three_still_gets_the_four_rows():
    assert "rows i = 0, 1, 2, 3" in _message(lesson06.pose_fuse_rows, (3, 1))


# ------------------------------------------------------------------ lesson 07
@pytest.mark.parametrize("answer, fragment", [
    (lambda b, s, m: b * ((1 - s) / m) ** 0.9, "(1 - step) / max_steps is negative"),
    (lambda b, s, m: b * (1 - s // m) ** 0.9, "integer division"),
    (lambda b, s, m: 0.5 * b * (1 + math.cos(math.pi * s / m)), "cosine annealing"),
    (lambda b, s, m: b * (1 - s / m) ** 2, "the power 2"),
], ids=["bracket", "floor division", "cosine", "squared"])
def test_poly_slips_are_named(answer, fragment):
    assert fragment in _message(lesson07.poly_lr, answer)


def test_nll_loss_on_logits_is_named():
    message = _message(lesson07.segmentation_loss, lambda lo, m: nn.NLLLoss(ignore_index=255)(
        F.interpolate(lo, size=m.shape[-2:], mode="bilinear"), m))
    assert "NLLLoss takes log-probabilities" in message


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_the_whole_mask_shape_as_size_is_explained_and_the_error_not_cut_mid_word(mode):
    message = _message(lesson07.segmentation_loss, lambda lo, m: F.cross_entropy(
        F.interpolate(lo, size=m.shape, mode=mode), m, ignore_index=255))
    assert "size=mask.shape[-2:]" in message and ". Pl" not in message


def test_a_torch_rate_of_a_negative_base_is_not_called_complex():
    """A tensor to the power 0.9 is NaN, not complex: the NaN is said as it is."""
    message = _message(lesson07.poly_lr, lambda b, s, m: b * ((1 - torch.tensor(float(s))) / m) ** 0.9)
    assert "complex" not in message


def test_dropped_keys_accepts_the_other_last_layer_tensors_a_real_checkpoint_holds():
    """A real upscale=2 checkpoint also holds last_layer.0.bias and last_layer.1's bias and running statistics (334
    channels against 270): naming them is right, not 'not among the checkpoint's keys' (solvability audit)."""
    from hrnet_teach.exercises import lesson08

    assert lesson08.dropped_keys.check([*lesson08.DROPPED, *lesson08.ALSO_DROPPED]).passed
    assert lesson08.dropped_keys.check(sorted(lesson08.ALSO_DROPPED)).passed is False
    message = lesson08.dropped_keys.check([*lesson08.DROPPED, "last_layer.2.bias"]).message
    assert "last_layer.2.bias: not among the checkpoint's keys" in message
