"""Argument checks shared by the package: one definition, one wording.

A learner passes ``num_classes=len(classes)``, ``np.int64(19)`` or a 0-d torch
integer as readily as ``19``; all are whole numbers and are accepted. A float
(``224.7``, even ``224.0``) or a bool is refused rather than silently truncated:
``int(224.7)`` would quietly run a different experiment than the one asked for.
"""
from __future__ import annotations

import itertools
import math
import operator
from typing import Any, Optional

import numpy as np


def flag(name: str, value: object, error: type[Exception] = ValueError, none_means: str = "") -> Optional[bool]:
    """``value`` as a bool if it is one (numpy's too, as comparing arrays gives); else ``error`` naming ``name``.

    ``fusion="no"`` or ``strict="False"`` is a non-empty string, so truthy: taken as it is, it would
    do the opposite of what was asked without a word. ``none_means``: what None stands for, where
    None is allowed too (``channels_last``: NHWC on CUDA only).
    """
    if none_means and value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    allowed = f"True, False or None ({none_means})" if none_means else "True or False"
    hint = ""
    if isinstance(value, str):  # what the word most likely meant
        word = value.strip().lower()
        meant = None if none_means and word in ("auto", "none", "default") else word not in (
            "", "0", "no", "n", "off", "false")
        hint = f": any non-empty string counts as True; pass {name}={meant}"
    raise error(f"{name} must be {allowed}, got {value!r} ({type(value).__name__}){hint}")


def positive_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` as a Python int if it is a whole number ``>= minimum``; else a ValueError naming ``name``.

    Python, numpy and 0-d torch integers pass; bools, floats, strings and arrays do not.
    """
    wanted = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum, f"an integer >= {minimum}")
    if isinstance(value, bool) or getattr(value, "ndim", 0) != 0:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    try:
        number = operator.index(value)  # int, numpy integers, integer tensors; not floats or strings
    except TypeError:
        hint = ""
        if isinstance(value, float) and math.isfinite(value):  # 64.0 (from 256 / 4): "use 64"; 224.7: "use 225 or 224"
            choices = sorted({round(value), int(value)}, reverse=True)
            hint = f" (use {' or '.join(map(str, choices))} if you meant a whole number)"
        raise ValueError(f"{name} must be {wanted}, got {value!r} ({type(value).__name__}){hint}") from None
    if number < minimum:
        raise ValueError(f"{name} must be {wanted}, got {number}")
    return number


def whole_or_same(value: object) -> Any:
    """A numpy or 0-d torch integer as a Python int; anything else (bools included) as it is, for a later
    check (``positive_int``, a config's ``validate``) to name. Normalises without refusing, so configs
    built from ``np.array([2, 2])`` compare equal to ones built from ``[2, 2]``."""
    if isinstance(value, (bool, int)) or getattr(value, "ndim", 0) != 0:
        return value
    try:
        return operator.index(value)
    except TypeError:
        return value


# The largest image side the package takes (deploy.dynamic_shapes declares the same): the course's data are
# 64-512 pixels, Cityscapes 1024x2048. A typo such as 100000 would need 30 GB for the RGB image alone (and far
# more for the network's maps): refused here, before PIL, numpy or torch try to allocate it.
MAX_IMAGE_SIDE = 8192


def image_size_hw(image_size: object, name: str = "image_size") -> tuple[int, int]:
    """``(height, width)`` as two positive ints up to MAX_IMAGE_SIDE, or a ValueError that says what was wrong."""
    if getattr(image_size, "ndim", 0) >= 2:  # an image itself (a tensor or array): never print all its values
        kind = "tensor" if type(image_size).__module__.startswith("torch") else "array"
        raise ValueError(f"{name} must be (height, width), got a{'n' * (kind == 'array')} {kind} of shape "
                         f"{tuple(image_size.shape)}; pass its size, x.shape[-2:]")
    if isinstance(image_size, (str, bytes)):  # "64" would unpack into the characters "6" and "4"
        raise ValueError(f"{name} must be (height, width) numbers, got the {type(image_size).__name__} "
                         f"{image_size!r}: write e.g. (64, 64)")
    try:
        height, width = image_size  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (height, width), got {_brief(image_size)}{_shape_hint(image_size)}") from None
    height, width = positive_int(f"{name} height", height), positive_int(f"{name} width", width)
    check_image_side(max(height, width), name)
    return height, width


def check_image_side(side: int, name: str = "image_size") -> None:
    """A ValueError for a side above MAX_IMAGE_SIDE, with what it would cost."""
    if side > MAX_IMAGE_SIDE:
        gigabytes = side * side * 3 * 4 / 1e9  # one float32 RGB square image of that side
        raise ValueError(f"{name} {side} is far larger than the course's images (64-512 pixels): one {side}x{side} "
                         f"RGB image alone needs about {gigabytes:,.0f} GB as float32, the network's maps many times "
                         f"more. Use at most {MAX_IMAGE_SIDE} pixels a side")


def _brief(value: object) -> str:
    """``value``'s repr, cut short: a long list or a 1-D tensor of many values would fill the screen."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _shape_hint(value: object) -> str:
    """For a whole tensor shape given as an image size: which part of it is the size."""
    if isinstance(value, (str, bytes)):  # "512" is no (C, H, W) shape
        return ""
    try:
        length = len(value)  # type: ignore[arg-type]
    except TypeError:
        return ""
    layout = {3: "(C, H, W)", 4: "(B, C, H, W)"}.get(length)
    return f": that is a {layout} shape; pass shape[-2:]" if layout else ""


def image_shape_hint(x) -> str:
    """What to do with an image tensor of the wrong shape, from the shape it has (the model, the
    normalisation and the feature capture all say it the same way)."""
    if x.dim() == 3 and x.shape[0] == 3:
        return "add a batch dimension with x.unsqueeze(0)"
    if x.dim() in (3, 4) and x.shape[-1] == 3:  # channels last, as numpy and PIL give images
        return "the channels come last (H, W, 3); move them with " + (
            "x.permute(2, 0, 1).unsqueeze(0)" if x.dim() == 3 else "x.permute(0, 3, 1, 2)")
    if x.dim() == 4 and x.shape[1] in (1, 4):
        return "convert the image to RGB (grey: x.expand(-1, 3, -1, -1); RGBA: x[:, :3])"
    return "give a batch of RGB images, channels first"


def non_finite_summary(values: object) -> str:
    """How many NaN and infinite values ``values`` (an array or a CPU tensor) holds: "3 NaN and 1 infinite",
    "" for none. Messages about bad numbers say both counts: a NaN and an overflow have other causes."""
    a = np.asarray(values)
    counts = ((int(np.isnan(a).sum()), "NaN"), (int(np.isinf(a).sum()), "infinite"))
    return " and ".join(f"{n} {kind}" for n, kind in counts if n)


def refuse_meta(model: Any, why: str) -> None:
    """A ValueError if ``model`` (an nn.Module) was built on the meta device, saying ``why`` that matters here.

    Its tensors have shapes but no values: loading copies into it without effect, exporting and running fail
    deep inside torch or the exporter with messages that do not name the cause. Buffers count too: BatchNorm's
    running statistics are values the model needs as much as its weights."""
    if any(t.is_meta for t in itertools.chain(model.parameters(), model.buffers())):
        raise ValueError(f"{type(model).__name__} was built on the meta device (under `with torch.device('meta')`): "
                         f"it has shapes but no weights, so {why}. Build it without the meta device, or call "
                         "model.to_empty(device='cpu') and load its weights first")
