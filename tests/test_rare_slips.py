"""Rarer slips in lessons 07 and 09 that got only "values differ" before (audit 0610, rows 76, 91, 97-105, 177-178):
each, written as a learner would, now gets its own message; the right answers around them still pass."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hrnet_teach import i18n
from hrnet_teach.exercises import lesson07, lesson09
from hrnet_teach.exercises._kinds import Case, FunctionExercise, Mistake


def _up(logits, mask):
    return F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)


def _message(exercise, answer):
    result = exercise.check(answer)
    assert not result.passed, result.message
    return result.message


# ------------------------------------------------------------------ poly_lr: exponential decay
@pytest.mark.parametrize("decay", [
    lambda base_lr, step, max_steps: base_lr * 0.9 ** step,
    lambda base_lr, step, max_steps: base_lr * 0.999 ** step,  # another gamma: the same message
    lambda base_lr, step, max_steps: base_lr * math.exp(-5 * step / max_steps),
    lambda base_lr, step, max_steps: float(torch.tensor(base_lr) * torch.tensor(0.99) ** step),  # float32
], ids=["gamma 0.9", "gamma 0.999", "exp(-k t)", "float32"])
def test_exponential_decay_is_named_whatever_its_factor(decay):
    message = _message(lesson07.poly_lr, decay)
    assert "That is exponential decay" in message and "base_lr * (1 - step / max_steps) ** 0.9" in message


def test_other_wrong_schedules_are_not_called_exponential():
    for answer in (lambda base_lr, step, max_steps: base_lr * (1 - step / max_steps) ** 2,
                   lambda base_lr, step, max_steps: base_lr * 0.9 ** (step // 10)):  # step decay: not one factor
        assert "exponential" not in _message(lesson07.poly_lr, answer)


def test_the_poly_schedule_still_passes():
    assert lesson07.poly_lr.check(lambda base_lr, step, max_steps: base_lr * (1 - step / max_steps) ** 0.9).passed


def test_a_detector_sees_the_answer_but_a_declared_case_does_not_keep_it():
    seen = []
    case = Case(2)
    ex = FunctionExercise(fn_name="f", reference=lambda x: x, cases=[case], solution_text="-", name="t", lesson="99",
                          question="?", mistakes=[Mistake("m", "twice", when=lambda c, got, want: seen.append(c.answer))])
    ex.check(_double)
    assert seen == [_double] and case.answer is None


def _double(x):
    return 2 * x


# ------------------------------------------------------------------ seg_loss: BCE on one-hot
def _bce_clamped(logits, mask):  # the audit's: 255 clamped into the last class
    classes = logits.shape[1]
    target = F.one_hot(mask.clamp(max=classes - 1), classes).permute(0, 3, 1, 2).float()
    return F.binary_cross_entropy_with_logits(_up(logits, mask), target)


def _bce_labelled(logits, mask):  # only the labelled pixels
    keep = mask != 255
    pixels = _up(logits, mask).permute(0, 2, 3, 1)[keep]
    return F.binary_cross_entropy_with_logits(pixels, F.one_hot(mask[keep], logits.shape[1]).float())


def _bce_zero(logits, mask):  # ignored pixels as class 0
    target = F.one_hot(torch.where(mask == 255, 0, mask), logits.shape[1]).permute(0, 3, 1, 2).float()
    return F.binary_cross_entropy_with_logits(_up(logits, mask), target)


@pytest.mark.parametrize("answer", [_bce_clamped, _bce_labelled, _bce_zero], ids=lambda f: f.__name__)
def test_binary_cross_entropy_on_one_hot_is_named(answer):
    message = _message(lesson07.segmentation_loss, answer)
    assert "binary cross-entropy on a one-hot mask" in message and "F.cross_entropy(logits, mask" in message


def test_cross_entropy_still_passes():
    assert lesson07.segmentation_loss.check(lambda logits, mask: F.cross_entropy(_up(logits, mask), mask,
                                                                                   ignore_index=255)).passed


# ------------------------------------------------------------------ miou: weighted, class 0 left out, %, //
def _ious(cm):
    cm = cm.double()
    tp = cm.diag()
    return tp, cm.sum(0) + cm.sum(1) - tp


def frequency_weighted(cm):
    tp, union = _ious(cm)
    freq = cm.sum(1).double() / cm.sum()
    return (freq[union > 0] * tp[union > 0] / union[union > 0]).sum().item()


def skip_background(cm):
    tp, union = _ious(cm)
    return torch.nanmean((tp / union)[1:]).item()


def crop_background(cm):
    tp, union = _ious(cm[1:, 1:])
    return (tp[union > 0] / union[union > 0]).mean().item()


def percent(cm):
    tp, union = _ious(cm)
    return 100 * torch.nanmean(tp / union).item()


def floor_division(cm):
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    return (tp[union > 0] // union[union > 0]).float().mean().item()


@pytest.mark.parametrize("answer, fragment", [
    (frequency_weighted, "That is the frequency-weighted IoU"), (skip_background, "You left class 0 out of the mean"),
    (crop_background, "You left class 0 out of the mean"), (percent, "That is the mIoU in percent"),
    (floor_division, "Integer division (//)")], ids=lambda v: getattr(v, "__name__", ""))
def test_miou_slips_are_named(answer, fragment):
    assert fragment in _message(lesson07.miou_from_confusion, answer)


def test_a_plain_mean_iou_still_passes():
    def miou(cm):
        cm = np.asarray(cm, dtype=float)
        tp = np.diag(cm)
        union = cm.sum(0) + cm.sum(1) - tp
        return float((tp[union > 0] / union[union > 0]).mean())
    assert lesson07.miou_from_confusion.check(miou).passed


# ------------------------------------------------------------------ region_pooling: 1/sqrt(C), a loop
def scaled(feats, regions):
    weights = torch.softmax(regions.flatten(2) / math.sqrt(feats.shape[1]), dim=2)
    return weights @ feats.flatten(2).transpose(1, 2)


def loop(feats, regions):
    out = torch.empty(feats.shape[0], regions.shape[1], feats.shape[1])
    for k in range(regions.shape[1]):
        w = torch.softmax(regions[:, k].flatten(1), dim=1)
        out[:, k] = (w[:, None, :] * feats.flatten(2)).sum(2)
    return out


def test_a_softmax_scaled_as_attention_is_named():
    message = _message(lesson09.region_pooling, scaled)
    assert "You divided the logits by sqrt(C)" in message and "scale = 1" in message


def test_a_loop_over_the_regions_passes_as_the_question_says():
    assert lesson09.region_pooling.check(loop).passed
    assert "a loop gives the same values, and passes" in " ".join(str(lesson09.region_pooling.question).split())


def test_the_new_messages_are_translated():
    try:
        i18n.set_language("zh")
        assert "指数衰减" in _message(lesson07.poly_lr, lambda base_lr, step, max_steps: base_lr * 0.9 ** step)
        assert "频率加权" in _message(lesson07.miou_from_confusion, frequency_weighted)
        assert "sqrt(C)" in _message(lesson09.region_pooling, scaled)
        assert "批量矩阵乘法" in str(lesson09.region_pooling.question)
    finally:
        i18n.set_language("en")
