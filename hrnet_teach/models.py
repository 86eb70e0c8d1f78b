"""``create_model``: a variant name (or config) and a head name to a model."""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Optional

from torch import nn

from .backbone import HRNet
from .config import HRNetConfig, get_config
from .features import create_features
from .heads import HRNetClassification, HRNetPose, HRNetPyramid, HRNetSegmentation
from .ocr import HRNetOCR

HEADS: dict[Optional[str], type[HRNet]] = {
    None: HRNet,
    "segmentation": HRNetSegmentation,
    "ocr": HRNetOCR,
    "classification": HRNetClassification,
    "pose": HRNetPose,
    "pyramid": HRNetPyramid,
}
AUTO = "auto"  # create_model's default head: the config's own (from an experiment file), else DEFAULT_HEAD
DEFAULT_HEAD = "segmentation"


def create_model(
    variant: str | HRNetConfig = "w18",
    head: Optional[str] = AUTO,
    features_only: bool = False,
    feature_location: str = "incre",
    **kwargs: Any,
) -> nn.Module:
    """Build an HRNet.

    ``head``: ``"segmentation"`` (HRNetV2, ``num_classes``), ``"ocr"`` (HRNetV2 + OCR,
    ``num_classes``; returns ``[aux_logits, ocr_logits]``), ``"classification"``
    (``num_classes``), ``"pose"`` (HRNetV1, ``num_joints``), ``"pyramid"`` (HRNetV2p),
    or ``None`` for the bare backbone (returns the list of stage-4 branch maps).
    The default, ``"auto"``, builds a config's own model when it came from an official
    experiment file (``HRNetConfig.from_yaml``: its ``MODEL.NAME``, classes,
    ``ALIGN_CORNERS``, OCR sizes), and ``"segmentation"`` otherwise. An explicit head
    wins over the file's; the file's arguments that head takes still apply, and
    keyword arguments given here win over the file's.
    ``features_only=True``: timm's feature extractor instead (no head; five maps at strides
    2 to 32, timm's keys; ``feature_location`` ``"incre"``, timm's default, or ``""``), see
    :mod:`hrnet_teach.features`.
    Works under ``with torch.device("meta"):`` for instant shapes and counts.
    """
    config = get_config(variant)
    if not isinstance(features_only, bool) and isinstance(features_only, int):  # create_model("w18", "segmentation", 4)
        raise TypeError(f"create_model's third argument is features_only (True or False), got {features_only!r}: "
                        f"pass the head's options by name, e.g. num_classes={features_only}")
    if features_only or feature_location != "incre":
        return create_features(config, None if head == AUTO else head, features_only, feature_location, **kwargs)
    if head == AUTO:
        head = config.head or DEFAULT_HEAD
    if head is not None and not isinstance(head, str):  # a list is unhashable: "not in HEADS" would fail on it
        raise TypeError(f"head must be a name such as 'segmentation' (one of {', '.join(map(repr, HEADS))}), "
                        f"got a {type(head).__name__}: {head!r}")
    if head not in HEADS:
        known = ", ".join(repr(h) for h in HEADS)
        raise ValueError(f"Unknown head {head!r}. Known heads: {known}")
    _check_head_arguments(head, kwargs)
    _check_file_options(config)
    arguments = {**_file_arguments(HEADS[head], config), **kwargs}
    try:
        return HEADS[head](config, **arguments)
    except TypeError as error:  # an argument this head does not take
        raise TypeError(f"create_model(head={head!r}): {error}") from None


def _check_head_arguments(head: Optional[str], kwargs: dict[str, Any]) -> None:
    """Name a keyword the head does not take, with the one it probably meant, before Python's bare TypeError."""
    parameters = inspect.signature(HEADS[head].__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # it takes any keyword: its own check speaks
    accepted = [name for name in parameters if name not in ("self", "config")]
    for name in kwargs:
        if name in accepted:
            continue
        meant = {"num_classes": "num_joints", "num_joints": "num_classes"}.get(name)
        close = [meant] if meant in accepted else difflib.get_close_matches(name, accepted, n=1)
        hint = f"; did you mean {close[0]}=?" if close else ""
        if head is None and name in ("num_classes", "num_joints"):
            hint = "; the bare backbone has no head: choose one, e.g. head='segmentation'"
        raise TypeError(f"create_model(head={head!r}) takes no argument {name!r}{hint} (it takes: "
                        f"{', '.join(accepted)})")


def _check_file_options(config: HRNetConfig) -> None:
    """A config's head option that no head takes would be dropped in silence (``_file_arguments`` keeps the
    ones the chosen head takes, so that an OCR file's key_channels may meet head='segmentation')."""
    known = {name for cls in HEADS.values() for name in inspect.signature(cls.__init__).parameters} - {"self", "config"}
    unknown = [name for name, _ in config.head_options if name not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"the config's head_options name {unknown[0]!r}, which no head takes{hint} (they take: "
                         f"{', '.join(sorted(known))})")


def _file_arguments(model_class: type[HRNet], config: HRNetConfig) -> dict[str, Any]:
    """The config's head options (from its experiment file) that this model class takes."""
    accepted = inspect.signature(model_class.__init__).parameters
    return {name: value for name, value in config.head_options if name in accepted}
