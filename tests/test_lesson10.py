"""Lesson 10's exercise 1: the feedback for the slip its text warns about (the backbone's convs have no bias; last_layer.0 has one)."""
import torch

from hrnet_teach.exercises import lesson10


def _scale(bn):
    return bn.weight / torch.sqrt(bn.running_var + bn.eps)


def test_a_fold_that_uses_a_missing_conv_bias_is_told_to_take_zero():
    """The formula transcribed with conv.bias as it is raised a bare TypeError about NoneType before."""
    def fold(conv, bn):
        s = _scale(bn)
        return conv.weight * s.reshape(-1, 1, 1, 1), conv.bias * s + bn.bias - bn.running_mean * s

    result = lesson10.fold_conv_bn.check(fold)
    assert not result.passed
    assert "conv.bias is None" in result.message and "b = 0" in result.message, result.message


def test_other_type_errors_are_not_blamed_on_the_bias():
    def fold(conv, bn):
        return conv.weight * "s", bn.bias

    message = lesson10.fold_conv_bn.check(fold).message
    assert "TypeError" in message and "conv.bias is None" not in message, message


def test_a_missing_bias_is_found_from_the_line_whatever_the_expression():
    """Subtracting from None and multiplying None raise different texts (Python's and torch's): both are found."""
    def subtract_first(conv, bn):
        s = _scale(bn)
        return conv.weight * s.reshape(-1, 1, 1, 1), (conv.bias - bn.running_mean) * s + bn.bias

    def renamed(c, norm):
        b = c.bias
        return c.weight * _scale(norm).reshape(-1, 1, 1, 1), b * _scale(norm) + norm.bias

    assert "conv.bias is None" in lesson10.fold_conv_bn.check(subtract_first).message
    # the line that raised reads b, not c.bias: not claimed (the TypeError is reported as it is)
    message = lesson10.fold_conv_bn.check(renamed).message
    assert "TypeError" in message, message
