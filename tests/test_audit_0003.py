"""Answers an audit of lessons 00-03 found told the wrong thing, or nothing useful: each now gets the message of
the slip it makes, written here the way a learner writes it. The slips are also in each exercise's catalogue
(tests/test_exercises.py); here what a catalogue does not show: the message an answer no longer gets, and a
slip recognised by the numbers it computes rather than by the error it raises."""
import gettext
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hrnet_teach import i18n
from hrnet_teach.exercises import lesson01, lesson03

CONV1_TWICE = "You used conv1 twice"


def _message(ex, answer) -> str:
    result = ex.check(answer)
    assert not result.passed
    return result.message


# ------------------------------------------------------------------ lesson 01: basic_block_forward
def _downsample_first(b, x):  # the shortcut adapted first, then used for the main path too
    if b.downsample is not None:
        x = b.downsample(x)
    out = b.relu(b.bn1(b.conv1(x)))
    out = b.bn2(b.conv2(out))
    return b.relu(out + x)


def test_downsampling_first_is_named_by_its_numbers_not_as_conv1_twice():
    message = _message(lesson01.basic_block_forward, _downsample_first)
    assert "The downsample is for the shortcut only" in message and CONV1_TWICE not in message
    assert "raised" not in message  # the same-shape downsample case computes: no error text is compared


def test_conv1_twice_keeps_its_own_message():
    def twice(b, x):
        out = b.relu(b.bn1(b.conv1(x)))
        out = b.bn2(b.conv1(out))
        return b.relu(out + (x if b.downsample is None else b.downsample(x)))

    assert CONV1_TWICE in _message(lesson01.basic_block_forward, twice)


@pytest.mark.parametrize("first_step, fragment", [
    (lambda b, x: b.relu(b.conv1(x)), "You left out a BatchNorm"),  # no bn1
    (lambda b, x: b.bn1(b.relu(b.conv1(x))), "BN comes right after its conv, then the ReLU"),  # conv -> ReLU -> BN
])
def test_a_slip_in_the_first_step_is_named(first_step, fragment):
    def forward(b, x):
        out = b.bn2(b.conv2(first_step(b, x)))
        return b.relu(out + (x if b.downsample is None else b.downsample(x)))

    assert fragment in _message(lesson01.basic_block_forward, forward)


def test_a_same_shape_downsample_is_still_a_case_the_reference_passes():
    assert lesson01.basic_block_forward.check(lesson01._reference_forward).passed
    assert any("BasicBlock(6, 6, stride=1) with a downsample" in str(case.where)
               for case in lesson01.basic_block_forward.cases())


# ------------------------------------------------------------------ lesson 01: layer1_downsample
@pytest.mark.parametrize("answer", [[1], 1, (1,)])
def test_counting_blocks_from_1_is_told_they_start_at_0(answer):
    message = _message(lesson01.layer1_downsample, answer)
    assert "Blocks are numbered from 0" in message and "[0]" in message


# ------------------------------------------------------------------ lesson 03: fuse_op
def test_one_conv_of_a_large_stride_is_told_about_the_chain():
    def one_conv(i, j, ch):
        if i == j:
            return None
        if j > i:
            return lesson03.make_fuse_op(i, j, ch)
        conv = nn.Conv2d(ch[j], ch[i], 3, 2 ** (i - j), 1, bias=False)
        return nn.Sequential(nn.Sequential(conv, nn.BatchNorm2d(ch[i])))

    message = _message(lesson03.fuse_op, one_conv)
    assert "A conv with stride 4 skips rows and columns" in message and "i - j = 2 convs of stride 2" in message
    assert "You used 0 stride-2 convs" not in message


# ------------------------------------------------------------------ lesson 03: fuse_sum
def _fuse(module, xs, i, size_of=None, down=True):
    y = 0
    for j, xj in enumerate(xs):
        term = xj
        if j > i or (j < i and down):
            term = module.fuse_layers[i][j](xj)
        if j > i:
            size = xs[i if size_of is None else size_of].shape[-2:]
            term = F.interpolate(term, size=size, mode="bilinear", align_corners=module.align_corners)
        y = y + term
    return torch.relu(y)


@pytest.mark.parametrize("answer, fragment", [
    (lambda m, xs, i: _fuse(m, xs, i, size_of=0), "Enlarge to branch i's size, size=xs[i].shape[-2:], not branch 0's"),
    (lambda m, xs, i: _fuse(m, xs, i, down=False), "A finer branch (j < i) must go through fuse_layers[i][j]"),
])
def test_fuse_sum_slips_in_the_size_and_the_finer_branches_are_named(answer, fragment):
    assert fragment in _message(lesson03.fuse_sum, answer)


# ------------------------------------------------------------------ lesson 03: value exercises
def test_leaving_out_the_none_diagonal_entry_is_told_it_still_counts():
    message = _message(lesson03.multi_scale_rows, (1, 3))
    assert "fuse_layers[0][0] is None, but it is still an entry" in message


def test_nearest_size_success_names_the_sides_just_below_a_multiple_of_32():
    result = lesson03.nearest_size.check(lesson03.nearest_size.reference)
    assert result.passed and "multiples of 32, or 1 to 3 pixels short of one" in result.message


# ------------------------------------------------------------------ the new messages in Chinese
def test_the_new_messages_speak_chinese(monkeypatch):
    """From the .po files themselves (compiled here, in memory), so this holds before the shipped .mo is rebuilt."""
    monkeypatch.setattr(i18n, "_translation", gettext.GNUTranslations(io.BytesIO(i18n.compile_mo("zh"))))
    monkeypatch.setattr(i18n, "_language", "zh")
    assert "downsample 只用于捷径连接" in _message(lesson01.basic_block_forward, _downsample_first)
    assert "残差块从 0 开始编号" in _message(lesson01.layer1_downsample, [1])
    assert "它仍然是一个条目" in _message(lesson03.multi_scale_rows, (1, 3))
    success = lesson03.nearest_size.check(lesson03.nearest_size.reference).message
    assert "比 32 的倍数少 1 到 3 个像素" in success
