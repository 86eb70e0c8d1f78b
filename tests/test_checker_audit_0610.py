"""Answers an audit of the lesson 06-10 checkers found mishandled: right answers in the forms numpy, dicts and
generators give (refused before), a fold that read bn.momentum for bn.eps (accepted before), a float32 learning
rate (refused before), and messages about another mistake than the one made. The slips named since are in each
exercise's catalogue (tests/test_exercises.py); here the forms that pass, and what a catalogue cannot hold."""
import functools

import numpy as np
import pytest
import torch
from torch import nn

from hrnet_teach.exercises import Exercise, lesson06, lesson07, lesson08, lesson09, lesson10
from hrnet_teach.exercises._answers import as_strings
from hrnet_teach.exercises._kinds import FunctionExercise

COMMON = dict(name="t", lesson="99", hints=["h"], solution_text="s", question="?")
OCR_NEW = ["aux_head", "cls_head", "conv3x3_ocr", "ocr_distri_head"]


# ------------------------------------------------------------------ lists of names, however computed
@pytest.mark.parametrize("ex, names", [(lesson06.missing_head_keys, ["last_layer"]), (lesson09.ocr_new_keys, OCR_NEW),
                                       (lesson08.dropped_keys, lesson08.DROPPED)], ids=lambda v: getattr(v, "name", ""))
def test_names_given_as_numpy_dict_keys_a_generator_a_dict_or_one_string_pass(ex, names):
    answers = {"np.setdiff1d": np.setdiff1d(names + ["conv1.weight"], ["conv1.weight"]), "np.array": np.array(names),
               "dict_keys": dict.fromkeys(names).keys(), "generator": (n for n in names),
               "dict": {n: (1,) for n in names}, "one string with commas": ", ".join(names)}
    for label, answer in answers.items():
        result = ex.check(answer)
        assert result.passed, f"{label}: {result.message}"


def test_a_wrong_list_given_as_one_string_gets_the_message_of_the_list():
    message = lesson06.missing_head_keys.check("last_layer, classifier").message
    assert message == lesson06.missing_head_keys.check(["last_layer", "classifier"]).message
    assert "classifier: in the classification checkpoint but not in the segmentation model" in message


def test_other_collections_are_still_refused_by_type():
    for answer in (np.array([1, 2]), {1: "a"}, (n for n in [1, 2]), 7):
        with pytest.raises(Exception, match="list of strings"):
            as_strings(answer, "the names", "['a']")
    assert as_strings("a,, b ,", "the names", "['a']") == ["a", "b"]


# ------------------------------------------------------------------ choices with punctuation
@pytest.mark.parametrize("dressed", ["{}.", "'{}'", "{},", "[{}]", '"{}"', " ({}). "])
def test_a_letter_with_punctuation_or_quotes_is_the_letter(dressed):
    assert lesson06.logsoftmax_loss.check(dressed.format("a")).passed  # both letter cases
    assert lesson06.logsoftmax_loss.check(dressed.format("A")).passed
    assert lesson10.pose_dynamic_shapes.check(dressed.format("b")).passed


# ------------------------------------------------------------------ poly_lr
@pytest.mark.parametrize("answer", [
    lambda base_lr, step, max_steps: base_lr * (1 - torch.tensor(step) / max_steps) ** 0.9,
    lambda base_lr, step, max_steps: base_lr * torch.pow(1 - torch.tensor(step / max_steps), 0.9),
    lambda base_lr, step, max_steps: float(np.float32(base_lr) * (1 - np.float32(step) / np.float32(max_steps)) ** 0.9),
], ids=["float32 tensor", "torch.pow", "np.float32"])
def test_a_poly_rate_computed_in_float32_passes(answer):
    result = lesson07.poly_lr.check(answer)
    assert result.passed, result.message


def test_a_rate_that_is_always_zero_is_not_called_growing():
    message = lesson07.poly_lr.check(lambda base_lr, step, max_steps: 0.0).message
    assert "grows" not in message and "At step 0 your rate is 0, not base_lr" in message


def test_parameters_in_another_order_are_named():
    def my_poly_lr(step, base_lr, max_steps):
        return base_lr * (1 - step / max_steps) ** 0.9

    def region_pooling(regions, feats):
        return lesson09._region_pooling(feats, regions)

    def fold(bn, conv):
        return lesson10._fold(conv, bn)

    message = lesson07.poly_lr.check(my_poly_lr).message
    assert "Your def takes (step, base_lr, max_steps); the check calls my_poly_lr(base_lr, step, max_steps)" in message
    assert "grows" not in message
    message = lesson09.region_pooling.check(region_pooling).message
    assert "region_pooling(feats, regions)" in message and "transpose" not in message
    assert "fold(conv, bn)" in lesson10.fold_conv_bn.check(fold).message
    # other names (a lambda's b, s, m) say nothing about the order: the values speak
    assert "Your def takes" not in lesson07.poly_lr.check(lambda s, b, m: b * (1 - s / m) ** 0.9).message


def test_a_right_answer_with_extra_parameters_or_in_order_still_passes():
    assert lesson07.poly_lr.check(lambda base_lr, step, max_steps, power=0.9:
                                  base_lr * (1 - step / max_steps) ** power).passed
    assert lesson10.fold_conv_bn.check(functools.partial(lambda conv, bn, eps=None: lesson10._fold(conv, bn))).passed


# ------------------------------------------------------------------ fold_conv_bn
def test_the_fold_cases_hold_an_eps_no_other_bn_field_holds():
    for case in lesson10._fold_cases():
        bn = case.args[1]
        assert bn.eps not in (bn.momentum, 1e-5) and bn.eps == lesson10.FOLD_EPS


def test_a_typed_in_eps_is_not_told_it_has_none():
    def fold(conv, bn):
        s = bn.weight / torch.sqrt(bn.running_var + 1e-5)
        b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        return conv.weight * s.reshape(-1, 1, 1, 1), (b - bn.running_mean) * s + bn.bias

    message = lesson10.fold_conv_bn.check(fold).message
    assert "a typed-in one such as 1e-5" in message and "with bn.eps itself (0.2" in message


# ------------------------------------------------------------------ cpu_norm_layer: classes by identity
def test_a_learners_subclass_of_batchnorm2d_passes_and_torchs_other_classes_do_not():
    class MyBN(nn.BatchNorm2d):
        pass

    assert lesson08.cpu_norm_layer.check(MyBN).passed
    assert lesson08.cpu_norm_layer.check("nn.BatchNorm2d(num_features)").passed
    message = lesson08.cpu_norm_layer.check(torch.ao.nn.quantized.BatchNorm2d).message
    assert "torch.ao.nn.quantized" in message and "no class named" not in message
    assert "abstract base" in lesson08.cpu_norm_layer.check(nn.modules.batchnorm._NormBase).message
    assert "did you mean BatchNorm1d, BatchNorm2d, BatchNorm3d?" in lesson08.cpu_norm_layer.check("batch norm").message


# ------------------------------------------------------------------ the shared machinery
def _half(x):
    return x / 3


def test_a_number_right_only_to_float16_precision_is_told_so():
    ex = FunctionExercise(fn_name="third", reference=_half, cases=[(2.0,)], rtol=1e-6, atol=0, **COMMON)
    for answer in (lambda x: torch.tensor(x / 3, dtype=torch.float16), lambda x: float(np.float16(x / 3))):
        message = ex.check(answer).message
        assert "only to float16 precision" in message and "float64" in message, message
    assert "you return 0.6; the reference gives 0.666667" in ex.check(lambda x: 0.6).message  # a real slip: as before
    assert "precision" not in ex.check(lambda x: x / 3 + 1e-4).message  # float64, a little off: no dtype to blame


def test_a_sparse_tensor_answer_gets_a_message_not_the_dispatchers_text():
    result = lesson06.v2_head.check(lambda f, last: lesson06._v2_head(f, last).to_sparse())
    assert not result.passed and "sparse_coo tensor" in result.message and len(result.message) < 300


def test_an_error_in_the_courses_code_is_quoted_by_its_first_line():
    def checker(answer):
        raise RuntimeError("first line\n" + "backend list\n" * 500)

    message = Exercise(checker=checker, **COMMON).check(1).message
    assert "RuntimeError: first line ..." in message and "backend list" not in message and len(message) < 600
