"""Feature maps for detection and feature pyramids, as timm's ``features_only`` HRNet gives them.

``timm.create_model("hrnet_w18", features_only=True)`` (timm's ``HighResolutionNetFeatures``)
returns five maps, finest first:

- stride 2: the stem's first conv (``conv1``, ``bn1``, ReLU), 64 channels;
- strides 4, 8, 16, 32: the four stage-4 branches, either passed through the
  classification head's ``incre_modules`` (``feature_location="incre"``, timm's default:
  one Bottleneck per branch, raising C, 2C, 4C, 8C to 128, 256, 512, 1024 channels) or
  as they are (``feature_location=""``: C, 2C, 4C, 8C).

The model has exactly timm's features_only state-dict keys: the backbone, plus
``incre_modules`` in "incre" mode. The rest of the classification head
(``downsamp_modules``, ``final_layer``, ``classifier``) is not built, so a timm
features_only state dict loads strictly; an ImageNet (classification) checkpoint loads
with ``strict=False`` and a report of the head keys it drops, as timm itself loads it.
Fusion upsamples by nearest-neighbour scale factors, as in timm and the official
classification code, so each image side must halve exactly down to 1/32: multiples of 32
(and the three sides just below one; see :func:`hrnet_teach.backbone.halves_exactly`).

Which read-out to use for what:

- ``create_model(v, head=None)``: the four stage-4 branch maps exactly as the official
  (segmentation) backbone returns them, fused with bilinear upsampling; the input to
  the package's own heads, and what the authors' code computes.
- ``create_model(v, features_only=True)``: timm's five maps (strides 2 to 32), with
  timm's keys and weights; for detection / feature-pyramid necks and anyone moving
  between this package and timm.
- ``hrnet_teach.inspect.capture_features(model, image)``: any intermediate map (stem,
  layer1, every branch of every stage) of any model, by hooks, for looking inside.
"""
from __future__ import annotations

import torch
from torch import nn

from ._checks import is_tracing
from ._validate import flag
from .backbone import STEM_CHANNELS, HRNet
from .blocks import Bottleneck, NormLayer, make_layer
from .config import HRNetConfig
from .heads import HEAD_CHANNELS, init_weights

FEATURE_LOCATIONS = ("incre", "")  # timm's two values; "incre" is its default


class FeatureInfo(list):
    """One dict per output map: ``num_chs``, ``reduction`` (stride), ``module``, ``index``.

    The dicts are those of timm's ``model.feature_info.get_dicts()``; ``channels()`` and
    ``reduction()`` answer like timm's ``FeatureInfo`` methods of the same names.
    """

    def channels(self) -> list[int]:
        return [info["num_chs"] for info in self]

    def reduction(self) -> list[int]:
        return [info["reduction"] for info in self]

    def get_dicts(self) -> list[dict]:
        return [dict(info) for info in self]


def check_feature_location(feature_location: object) -> str:
    if not isinstance(feature_location, str) or feature_location not in FEATURE_LOCATIONS:
        raise ValueError(
            f"Unknown feature_location {feature_location!r}. Use 'incre' (timm's default: the branches "
            "through incre_modules, 64, 128, 256, 512, 1024 channels) or '' (the stage-4 branches as they "
            "are: 64, C, 2C, 4C, 8C channels)."
        )
    return feature_location


class HRNetFeatures(HRNet):
    """The backbone (plus ``incre_modules`` in "incre" mode) returning timm's five feature maps.

    Output: a list of five tensors, B x c_k x H/s_k x W/s_k for strides s = 2, 4, 8, 16, 32;
    the channels are in :attr:`feature_info`.
    """

    def __init__(
        self,
        config: HRNetConfig | str = "w18",
        feature_location: str = "incre",
        norm_layer: NormLayer = nn.BatchNorm2d,
    ) -> None:
        feature_location = check_feature_location(feature_location)
        super().__init__(config, norm_layer, upsample="nearest")  # timm fuses with nn.Upsample(nearest)
        self.feature_location = feature_location
        self.incre_modules = None
        branch_channels = list(self.out_channels)  # C, 2C, 4C, 8C
        if feature_location == "incre":  # the classification head's first part, and only it
            self.incre_modules = nn.ModuleList(
                make_layer(Bottleneck, cin, planes, 1, norm_layer=norm_layer)
                for cin, planes in zip(self.out_channels, HEAD_CHANNELS)
            )
            branch_channels = [planes * Bottleneck.expansion for planes in HEAD_CHANNELS]  # 128 ... 1024
        self.feature_info = feature_info(branch_channels)
        init_weights(self, "kaiming")  # timm's init_weights: He normal (fan-out) convs, norms 1 and 0

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not is_tracing(x):
            self.check_input(x)
        stride2 = self.relu(self.bn1(self.conv1(x)))  # B x 64 x H/2 x W/2: timm's first map
        x = self.relu(self.bn2(self.conv2(stride2)))  # B x 64 x H/4 x W/4
        y_list = self.stage2(self.transition1([self.layer1(x)]))
        y_list = self.stage3(self.transition2(y_list))
        branches = self.stage4(self.transition3(y_list))  # C, 2C, 4C, 8C at H/4 ... H/32
        if self.incre_modules is not None:
            branches = [incre(b) for incre, b in zip(self.incre_modules, branches)]  # 128, 256, 512, 1024
        return [stride2, *branches]


def feature_info(branch_channels: list[int]) -> FeatureInfo:
    """timm's declaration: the stem at stride 2 (module "stem"), then branch k at 4 * 2**k ("stage{k+1}")."""
    infos = [dict(num_chs=STEM_CHANNELS, reduction=2, module="stem", index=0)]
    for k, channels in enumerate(branch_channels):
        infos.append(dict(num_chs=channels, reduction=4 * 2**k, module=f"stage{k + 1}", index=k + 1))
    return FeatureInfo(infos)


def create_features(
    config: HRNetConfig | str,
    head: str | None = None,
    features_only: bool = True,
    feature_location: str = "incre",
    **kwargs,
) -> HRNetFeatures:
    """``create_model(..., features_only=True)``: check the combination, then build :class:`HRNetFeatures`."""
    if not flag("features_only", features_only, TypeError):
        raise ValueError(
            f"feature_location={feature_location!r} applies only with features_only=True (timm's feature "
            "extractor); add features_only=True, or drop feature_location to build a model with a head."
        )
    if head is not None:
        raise ValueError(
            f"features_only=True builds timm's feature extractor, which has no head, but head={head!r} was given. "
            "Drop head= (or pass head=None) for the five feature maps, or drop features_only=True for that head."
        )
    unknown = sorted(set(kwargs) - {"norm_layer"})
    if unknown:
        raise TypeError(
            f"create_model(features_only=True) got argument(s) it does not take: {', '.join(unknown)}. The feature "
            "extractor has no head (timm drops num_classes and global_pool too); it takes feature_location and "
            "norm_layer only."
        )
    return HRNetFeatures(config, feature_location=feature_location, **kwargs)
