"""Residual blocks, exactly as in ResNet (He et al., 2016), which HRNet reuses.

HRNet's stage 1 is four Bottleneck blocks of width 64, the block of ResNet-50's
first stage (which has three); the branches of stages 2-4 are BasicBlocks (the
paper, Wang et al., TPAMI 2020, Section 3.4, numbered as in its arXiv version
1908.07919: "Each branch in multi-resolution parallel convolution of the
modularized block contains 4 residual units"). The
official code and timm name the layers ``conv1``, ``bn1``, ... ``downsample``;
those names are state-dict keys, so they stay.

``norm_layer`` replaces the official code's module-level choice of norm layer
(``SyncBatchNorm`` from ``bn_helper.py`` on the segmentation repository's
``HRNet-OCR`` branch, ``InPlaceABNSync`` on ``master``, ``nn.BatchNorm2d`` on
``pytorch-v1.1`` and in ``cls_hrnet.py`` and ``pose_hrnet.py``): pass ``nn.SyncBatchNorm`` for multi-GPU
training; the default works anywhere.
"""
from __future__ import annotations

import inspect
from typing import Callable, Optional, Union

import torch
from torch import nn

from ._validate import positive_int

# cls_hrnet.py, pose_hrnet.py and seg_hrnet.py on the HRNet-OCR branch use 0.1 (PyTorch's default);
# seg_hrnet.py on master and pytorch-v1.1 uses 0.01. It only sets how fast BatchNorm's running
# statistics move in training: no key, weight or eval output depends on it.
BN_MOMENTUM = 0.1

NormLayer = Callable[..., nn.Module]


def _sizes(**sizes: object) -> tuple[int, ...]:
    """Channel counts and strides as ints, refused early when not whole positive numbers
    (``256 / 4`` is the float 64.0, which torch's Conv2d rejects deep inside)."""
    return tuple(positive_int(name, value) for name, value in sizes.items())


def _block_sizes(kind: str, inplanes: object, planes: object, stride: object) -> tuple[int, ...]:
    """A block's sizes; a module given third is a shortcut passed in the stride's place, said so."""
    if isinstance(stride, nn.Module):
        raise ValueError(f"stride must be a positive integer, got a {type(stride).__name__}: a block is built as "
                         f"{kind}(inplanes, planes, stride=1, downsample=None), so pass the shortcut by name, "
                         "downsample=...")
    return _sizes(inplanes=inplanes, planes=planes, stride=stride)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1: keeps the size at stride 1, halves it (rounding up) at stride 2."""
    in_planes, out_planes, stride = _sizes(in_planes=in_planes, out_planes=out_planes, stride=stride)
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs and a shortcut: out = relu(bn2(conv2(relu(bn1(conv1(x))))) + x).

    ``expansion = 1``: the block outputs ``planes`` channels.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        inplanes, planes, stride = _block_sizes(type(self).__name__, inplanes, planes, stride)
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample  # adapts the shortcut when shapes change
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)  # after the convs, as the official order
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand, and a shortcut.

    ``expansion = 4``: the block outputs ``4 * planes`` channels, so HRNet's
    layer1 (planes 64) turns the 64-channel stem into 256 channels.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        inplanes, planes, stride = _block_sizes(type(self).__name__, inplanes, planes, stride)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = norm_layer(planes, momentum=BN_MOMENTUM)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = norm_layer(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)  # after the convs, as the official order
        return self.relu(out + residual)


Block = type[Union[BasicBlock, Bottleneck]]
BLOCKS: dict[str, Block] = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def check_block(block: object) -> None:
    """A TypeError unless ``block`` is a block class with an ``expansion`` (BasicBlock, Bottleneck)."""
    if isinstance(block, type) and issubclass(block, nn.Module) and isinstance(getattr(block, "expansion", None), int):
        return
    got, hint = repr(block), ""
    if isinstance(block, str) and block.upper() in BLOCKS:
        hint = f"; for a config's name use hrnet_teach.blocks.BLOCKS[{block.upper()!r}]"
    elif isinstance(block, nn.Module):
        got, hint = f"a {type(block).__name__} instance", f"; pass the class {type(block).__name__}, not {type(block).__name__}(...)"
    raise TypeError(f"block must be a block class such as BasicBlock or Bottleneck (with an int `expansion`), got {got}{hint}")


def check_norm_layer(norm_layer: object) -> None:
    """A TypeError unless ``norm_layer`` can be called as ``norm_layer(channels, momentum=0.1)``, the one
    way the package calls it: without this, None or "bn" failed as "'str' object is not callable", and
    nn.GroupNorm on "unexpected keyword argument 'momentum'", neither saying what norm_layer must be."""
    fits = callable(norm_layer) and not isinstance(norm_layer, nn.Module)  # an instance would be called on a tensor
    if fits:
        try:
            inspect.signature(norm_layer).bind(64, momentum=BN_MOMENTUM)
        except TypeError:
            fits = False
        except ValueError:  # no signature to read (a builtin): let the call itself speak
            pass
    if fits:
        return
    got = repr(norm_layer)
    if isinstance(norm_layer, nn.Module):
        got = f"a {type(norm_layer).__name__} instance (pass the class, {type(norm_layer).__name__})"
    elif isinstance(norm_layer, type):
        got = f"{norm_layer.__name__}, which cannot be called as {norm_layer.__name__}(64, momentum=0.1)"
    raise TypeError(
        f"norm_layer must be a class (or function) called as norm_layer(channels, momentum=0.1), such as "
        f"nn.BatchNorm2d or nn.SyncBatchNorm; got {got}. For another norm, wrap it: e.g. for GroupNorm, "
        "norm_layer=lambda channels, momentum: nn.GroupNorm(8, channels)"
    )


def make_layer(
    block: Block,
    inplanes: int,
    planes: int,
    num_blocks: int,
    stride: int = 1,
    norm_layer: NormLayer = nn.BatchNorm2d,
) -> nn.Sequential:
    """``num_blocks`` blocks in a row, as ResNet's ``_make_layer``.

    Only the first block can change the shape (``inplanes`` -> ``planes * expansion``
    channels, or a stride); it then gets a 1x1 conv + BN on its shortcut.
    Used for layer1, for each branch of a HighResolutionModule and for the
    classification head's ``incre_modules``.
    """
    check_block(block)
    check_norm_layer(norm_layer)
    inplanes, planes, num_blocks, stride = _sizes(inplanes=inplanes, planes=planes, num_blocks=num_blocks, stride=stride)
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
            norm_layer(planes * block.expansion, momentum=BN_MOMENTUM),
        )
    layers = [block(inplanes, planes, stride, downsample, norm_layer=norm_layer)]
    for _ in range(1, num_blocks):
        layers.append(block(planes * block.expansion, planes, norm_layer=norm_layer))
    return nn.Sequential(*layers)
