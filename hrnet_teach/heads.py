"""The four heads, each as its official repository builds it.

Every model below *is* an :class:`HRNet` with its head's layers added at the top
level, so the backbone keys (``conv1`` ... ``stage4``) and the head keys
(``last_layer``, ``final_layer``, ``incre_modules`` ...) sit side by side as in
the official checkpoints.

The paper ("Deep High-Resolution Representation Learning for Visual Recognition",
Section 3.3 as numbered in its arXiv version 1908.07919, Figure 4) names three ways to read out the four branches:
HRNetV1 keeps only the high-resolution branch (pose), HRNetV2 upsamples and
concatenates all of them (segmentation), HRNetV2p builds a pyramid from that
concatenation (detection). ImageNet classification adds a fourth.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import HRNet
from .blocks import BN_MOMENTUM, Bottleneck, NormLayer, make_layer
from .config import HRNetConfig, positive_int


def concat_branches(features: Sequence[torch.Tensor], align_corners: bool | None) -> torch.Tensor:
    """HRNetV2's representation: every branch resized (bilinear) to branch 0's exact size, concatenated.

    B x (C + 2C + 4C + 8C) x H/4 x W/4.
    """
    size = features[0].shape[-2:]
    resized = [features[0]] + [
        F.interpolate(f, size=size, mode="bilinear", align_corners=align_corners) for f in features[1:]
    ]
    return torch.cat(resized, dim=1)


FINAL_CONV_KERNELS = (1, 3)  # official: padding=1 if FINAL_CONV_KERNEL == 3 else 0, so only these keep the size


def final_kernel(value: int | None, config: HRNetConfig) -> int:
    """The classifier's kernel: the argument if given, else the config's ``FINAL_CONV_KERNEL``."""
    kernel = config.final_conv_kernel if value is None else value
    if isinstance(kernel, bool) or kernel not in FINAL_CONV_KERNELS:
        raise ValueError(
            f"final_conv_kernel must be 1 or 3, got {kernel!r}: the official code pads 1 for a 3x3 kernel and "
            "0 otherwise, so any other size would shrink the H/4 x W/4 map"
        )
    return int(kernel)


class HRNetSegmentation(HRNet):
    """HRNetV2 for semantic segmentation (``seg_hrnet.py``).

    Output: logits B x num_classes x H/4 x W/4 (no softmax; upsample them to the
    image size for the loss or for display).
    """

    def __init__(
        self,
        config: HRNetConfig | str,
        num_classes: int = 19,
        align_corners: bool = True,
        final_conv_kernel: int | None = None,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__(config, norm_layer, upsample="bilinear", align_corners=align_corners)
        num_classes = positive_int("num_classes", num_classes)
        kernel = final_kernel(final_conv_kernel, self.config)
        last_inp_channels = sum(self.out_channels)  # 15C: 270 for W18, 720 for W48
        self.last_layer = nn.Sequential(
            nn.Conv2d(last_inp_channels, last_inp_channels, kernel_size=1),  # with bias, as official
            norm_layer(last_inp_channels, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
            nn.Conv2d(last_inp_channels, num_classes, kernel_size=kernel, padding=kernel // 2),
        )
        init_weights(self, "normal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(x)
        return self.last_layer(concat_branches(features, self.align_corners))


class HRNetPose(HRNet):
    """HRNetV1 for human pose (``pose_hrnet.py``): heatmaps from the 1/4 branch only.

    The last module of stage 4 fuses into branch 0 alone (``multi_scale_output=False``),
    then ``final_layer`` (one conv) gives B x num_joints x H/4 x W/4 heatmaps.
    """

    def __init__(
        self,
        config: HRNetConfig | str,
        num_joints: int = 17,
        final_conv_kernel: int | None = None,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__(config, norm_layer, upsample="nearest", multi_scale_output=False)
        num_joints = positive_int("num_joints", num_joints)
        kernel = final_kernel(final_conv_kernel, self.config)
        self.final_layer = nn.Conv2d(self.out_channels[0], num_joints, kernel_size=kernel, padding=kernel // 2)
        init_weights(self, "normal")
        nn.init.zeros_(self.final_layer.bias)  # pose_hrnet's init_weights also zeroes conv biases

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.forward_features(x)[0])


HEAD_CHANNELS = (32, 64, 128, 256)  # Bottleneck planes; x4 = 128, 256, 512, 1024


class HRNetClassification(HRNet):
    """The ImageNet classifier (``cls_hrnet.py``; timm's ``hrnet_w*``).

    ``incre_modules``: one Bottleneck per branch, raising C, 2C, 4C, 8C to
    128, 256, 512, 1024 channels; ``downsamp_modules``: stride-2 convs that carry
    the running sum from each resolution to the next; ``final_layer``: 1x1 conv to
    2048; global average pooling; ``classifier``: Linear(2048, num_classes).
    """

    def __init__(self, config: HRNetConfig | str, num_classes: int = 1000, norm_layer: NormLayer = nn.BatchNorm2d) -> None:
        super().__init__(config, norm_layer, upsample="nearest")
        num_classes = positive_int("num_classes", num_classes)
        expanded = [c * Bottleneck.expansion for c in HEAD_CHANNELS]
        self.incre_modules = nn.ModuleList(
            make_layer(Bottleneck, cin, planes, 1, norm_layer=norm_layer)
            for cin, planes in zip(self.out_channels, HEAD_CHANNELS)
        )
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=3, stride=2, padding=1),  # with bias, as official
                norm_layer(cout, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            )
            for cin, cout in zip(expanded[:-1], expanded[1:])
        )
        self.final_layer = nn.Sequential(
            nn.Conv2d(expanded[-1], 2048, kernel_size=1),
            norm_layer(2048, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(2048, num_classes)
        init_weights(self, "kaiming")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.forward_features(x)
        y = self.incre_modules[0](features[0])  # B x 128 x H/4 x W/4
        for incre, down, f in zip(self.incre_modules[1:], self.downsamp_modules, features[1:]):
            y = incre(f) + down(y)  # ... B x 1024 x H/32 x W/32
        y = self.final_layer(y)  # B x 2048 x H/32 x W/32
        y = y.mean(dim=(2, 3))  # global average pooling: B x 2048
        return self.classifier(y)


class HRNetPyramid(HRNet):
    """HRNetV2p: the authors' HRFPN neck for detection (HRNet-Object-Detection).

    The HRNetV2 concatenation, a 1x1 conv to ``out_channels`` (``reduction_conv``),
    average pooling by 1, 2, 4, 8, 16 to five levels, and one 3x3 conv per level
    (``fpn_conv``). Returns the list of five maps, finest (H/4) first.
    """

    def __init__(
        self,
        config: HRNetConfig | str,
        out_channels: int = 256,
        num_outs: int = 5,
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__(config, norm_layer, upsample="nearest")
        out_channels = positive_int("out_channels", out_channels)
        self.num_outs = positive_int("num_outs", num_outs)
        self.reduction_conv = nn.Sequential(nn.Conv2d(sum(self.out_channels), out_channels, kernel_size=1))
        self.fpn_conv = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1) for _ in range(num_outs)
        )
        init_weights(self, "kaiming")
        for conv in (self.reduction_conv[0], *self.fpn_conv):  # HRFPN.init_weights: kaiming_normal_(a=1), bias 0
            if not conv.weight.is_meta:  # as in init_weights: a meta tensor has no values to draw
                nn.init.kaiming_normal_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        smallest = 4 * 2 ** (self.num_outs - 1)  # level k average-pools the 1/4 map by 2**k
        if min(x.shape[-2:]) < smallest:
            raise ValueError(
                f"Input {x.shape[-2]}x{x.shape[-1]}: the pyramid head pools the 1/4 map by up to "
                f"{smallest // 4} for its {self.num_outs} levels, so both sides must be at least {smallest} "
                "(and halve exactly down to 1/32, as multiples of 32 do); resize or pad the image, or build it "
                "with fewer num_outs."
            )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.forward_features(x)
        # HRFPN upsamples bilinearly with align_corners=False
        out = self.reduction_conv(concat_branches(features, align_corners=False))
        levels = [out] + [F.avg_pool2d(out, kernel_size=2**i, stride=2**i) for i in range(1, self.num_outs)]
        return [conv(level) for conv, level in zip(self.fpn_conv, levels)]


def init_weights(model: nn.Module, scheme: str) -> None:
    """The official initialisations: ``"normal"`` (segmentation, pose: conv weights
    N(0, 0.001)) or ``"kaiming"`` (classification: He normal, fan-out); norms 1 and 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if m.weight.is_meta:  # no values to draw (and normal_ on meta imports torch._dynamo, over a second)
                continue
            if scheme == "normal":
                nn.init.normal_(m.weight, std=0.001)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.modules.batchnorm._NormBase):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
