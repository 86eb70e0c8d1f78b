"""Plain data about a model: shapes per stage and branch (computed on the meta device)."""
from __future__ import annotations

from typing import Union

import torch
from torch import nn

from .backbone import HRNet
from .config import HRNetConfig, get_config

ModelLike = Union[str, HRNetConfig, nn.Module]

STAGES = ("stage2", "stage3", "stage4")


def as_config(model_or_variant: ModelLike) -> HRNetConfig:
    """The HRNetConfig behind a variant name, a config or a model."""
    if isinstance(model_or_variant, nn.Module):
        config = getattr(model_or_variant, "config", None)
        if not isinstance(config, HRNetConfig):
            raise TypeError(f"{type(model_or_variant).__name__} is not an hrnet_teach model (it has no .config)")
        return config
    return get_config(model_or_variant)


def _check_size(image_size) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be (height, width), got {image_size!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"image_size must be positive, got {image_size!r}")
    return height, width


def stage_shapes(model_or_variant: ModelLike, image_size=(512, 512)) -> dict[str, list[tuple[int, int, int]]]:
    """``{"stage2": [(C, H, W), ...], "stage3": ..., "stage4": ...}``: what each stage outputs.

    The stem, layer1 and transitions (the only layers that change sizes) run on
    the meta device: no memory, no arithmetic, any size, odd ones too. Inside a
    stage nothing changes size: a module's branch ``b`` keeps its input's size and
    leaves with ``out_channels[b]`` channels, and fusion brings every input to
    each output branch's size; so a stage's shapes follow from its modules'
    channels without running its hundreds of layers (W48 at 1024x2048 in
    milliseconds).
    """
    config = as_config(model_or_variant)
    height, width = _check_size(image_size)
    backbone = _meta_backbone(config)
    y = [backbone.layer1(backbone.stem(torch.empty(1, 3, height, width, device="meta")))]
    shapes = {}
    for number, name in enumerate(STAGES, start=2):
        y = getattr(backbone, f"transition{number - 1}")(y)
        sizes = [tuple(t.shape[-2:]) for t in y]
        channels = getattr(backbone, name)[-1].out_channels  # the stage's last module
        shapes[name] = [(c, h, w) for c, (h, w) in zip(channels, sizes)]
        y = [torch.empty(1, c, h, w, device="meta") for c, h, w in shapes[name]]
    return shapes


_META_CACHE: dict[HRNetConfig, HRNet] = {}


def _meta_backbone(config: HRNetConfig) -> HRNet:
    """A weightless backbone, built once per config (configs are frozen and hashable)."""
    if config not in _META_CACHE:
        with torch.device("meta"):
            _META_CACHE[config] = HRNet(config).eval()
    return _META_CACHE[config]
