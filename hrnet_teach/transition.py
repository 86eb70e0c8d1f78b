"""Transitions: how a stage's branches become the next stage's, and how a branch is born.

The paper (Wang et al., TPAMI 2020, Section 3.1 "Parallel Multi-Resolution
Convolutions", numbered as in its arXiv version 1908.07919): "We start from a
high-resolution convolution stream as the first stage, gradually add high-to-low
resolution streams one by one, forming new stages, and connect the
multi-resolution streams in parallel." Between two stages the
official ``_make_transition_layer`` gives each output branch ``i`` one of:

- nothing (``None``): branch ``i`` existed and already has the right channels;
- a 3x3 conv + BN + ReLU at stride 1: branch ``i`` existed with other channels
  (only after stage 1, whose 256 channels become C);
- a chain of stride-2 3x3 conv + BN + ReLU from the lowest-resolution branch: a
  new branch, one step per halving (one step in every published variant).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn

from ._checks import check_branch_list
from .blocks import BN_MOMENTUM, NormLayer, check_norm_layer


def _conv_bn_relu(cin: int, cout: int, stride: int, norm_layer: NormLayer) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False),
        norm_layer(cout, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True),
    )


class Transition(nn.ModuleList):
    """One entry per output branch (None where the branch passes through).

    A ModuleList, as in the official code, so the state-dict keys are the same
    (``transition1.0.0.weight``, ``transition2.2.0.0.weight``); ``forward`` is the
    loop the official network writes out by hand after each stage.
    """

    def __init__(self, pre_channels: Sequence[int], cur_channels: Sequence[int], norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__()
        for label, values in (("pre_channels", pre_channels), ("cur_channels", cur_channels)):
            if isinstance(values, str) or not hasattr(values, "__len__") or len(values) == 0:
                raise ValueError(f"{label} must be a list of channels, one per branch (e.g. [256] after stage 1, "
                                 f"[18, 36] into stage 2 of W18), got {values!r}")
        check_norm_layer(norm_layer)
        self.pre_channels = tuple(pre_channels)
        self.cur_channels = tuple(cur_channels)
        for i, cout in enumerate(self.cur_channels):
            if i < len(self.pre_channels):
                cin = self.pre_channels[i]
                self.append(None if cin == cout else _conv_bn_relu(cin, cout, 1, norm_layer))
            else:
                self.append(self._new_branch(i, norm_layer))

    def _new_branch(self, i: int, norm_layer: NormLayer) -> nn.Sequential:
        """Branch i, born from the last (lowest-resolution) existing branch."""
        cin = self.pre_channels[-1]
        steps = i + 1 - len(self.pre_channels)
        return nn.Sequential(
            *(_conv_bn_relu(cin, self.cur_channels[i] if s == steps - 1 else cin, 2, norm_layer) for s in range(steps))
        )

    def forward(self, y_list: list[torch.Tensor]) -> list[torch.Tensor]:
        # One input per branch of the stage before: with fewer, a new branch would be made from the wrong one.
        check_branch_list(y_list, self.pre_channels, type(self).__name__, "pre_channels")
        return run_transition(self, y_list)


def run_transition(ops: Sequence[Optional[nn.Module]], y_list: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The loop the official network writes out after each stage (seg_hrnet.py on the HRNet-OCR and master git
    branches; pytorch-v1.1, cls_hrnet.py and pose_hrnet.py feed every non-None entry ``y_list[-1]``, the same
    for every published config, lesson 04): output branch i from ``y_list[i]`` where
    branch i existed, else (a new branch) from ``y_list[-1]``, the lowest resolution; a None entry passes
    its input as it is. A function of its own, so lesson 04 runs a learner's nn.ModuleList (which has no
    ``pre_channels`` for the input check) through the package's own loop."""
    x_list = []
    for i, op in enumerate(ops):
        source = y_list[i] if i < len(y_list) else y_list[-1]
        x_list.append(source if op is None else op(source))
    return x_list
