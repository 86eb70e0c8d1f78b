"""Lesson 10 after the audit of lessons 09-11: what its messages say about conv biases is true of the shipped
model, and the conv bias added unscaled gets its own message."""
import torch
from torch import nn

from hrnet_teach import deploy
from hrnet_teach.exercises import lesson10
from hrnet_teach.train import load_shapes_model


def test_only_the_heads_conv_has_a_bias_and_fast_folds_it():
    """The notebook and the none_bias message say the backbone's convs have no bias, but last_layer.0 has one."""
    model = load_shapes_model()
    biased = [conv for conv, _ in deploy.conv_bn_pairs(model) if model.get_submodule(conv).bias is not None]
    assert biased == ["last_layer.0"]
    folded = deploy.fast(model, channels_last=False)
    assert isinstance(folded.last_layer[1], nn.Identity)  # its BatchNorm went into the conv


def test_a_conv_bias_added_unscaled_is_named():
    """The bias-free formula with b tacked on: right when conv.bias is None, so only the biased cases show it."""
    def fold(conv, bn):
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        return conv.weight * s.reshape(-1, 1, 1, 1), b + bn.bias - bn.running_mean * s

    message = lesson10.fold_conv_bn.check(fold).message
    assert "goes through the BatchNorm too" in message and "bias=True" in message, message


def test_the_pose_choice_a_states_what_the_export_needs():
    """The eager pose model also takes the sides just below each multiple of 32: only the export keeps to multiples."""
    message = lesson10.pose_dynamic_shapes.check("a").message
    assert "the export keeps to multiples of 32" in message and "must be multiples" not in message, message
