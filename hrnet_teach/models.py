"""``create_model``: a variant name (or config) and a head name to a model."""
from __future__ import annotations

from typing import Any, Optional

from torch import nn

from .backbone import HRNet
from .config import HRNetConfig, get_config
from .heads import HRNetClassification, HRNetPose, HRNetPyramid, HRNetSegmentation

HEADS: dict[Optional[str], type[HRNet]] = {
    None: HRNet,
    "segmentation": HRNetSegmentation,
    "classification": HRNetClassification,
    "pose": HRNetPose,
    "pyramid": HRNetPyramid,
}


def create_model(variant: str | HRNetConfig = "w18", head: Optional[str] = "segmentation", **kwargs: Any) -> nn.Module:
    """Build an HRNet.

    ``head``: ``"segmentation"`` (HRNetV2, ``num_classes``), ``"classification"``
    (``num_classes``), ``"pose"`` (HRNetV1, ``num_joints``), ``"pyramid"`` (HRNetV2p),
    or ``None`` for the bare backbone (returns the list of stage-4 branch maps).
    Works under ``with torch.device("meta"):`` for instant shapes and counts.
    """
    if head not in HEADS:
        known = ", ".join(repr(h) for h in HEADS)
        raise ValueError(f"Unknown head {head!r}. Known heads: {known}")
    config = get_config(variant)
    try:
        return HEADS[head](config, **kwargs)
    except TypeError as error:  # an argument this head does not take
        raise TypeError(f"create_model(head={head!r}): {error}") from None
