"""Plain data about a model: shapes, the fuse matrix, transitions, features and costs.

Everything here reads the real modules (a model you pass, or a weightless one
built on the meta device from a variant name or a config) and returns plain
data; nothing draws. ``hrnet_teach.viz`` and ``hrnet_teach.widgets`` draw it.

Wherever an argument is called ``model_or_variant`` it takes a variant name
(``"w48"``), an :class:`HRNetConfig` or a model. Names and configs become a
meta-device backbone, built once per config: instant, whatever the width or
the input size.
"""
from __future__ import annotations

import contextlib
import copy
import html
import os
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Optional, Union

import torch
from torch import nn

from ._validate import flag, image_shape_hint, image_size_hw, positive_int
from .backbone import HRNet
from .blocks import BasicBlock, Bottleneck
from .config import HRNetConfig, get_config
from .i18n import N_, _, ljust, rjust
from .i18n import columns as columns_of
from .module import HighResolutionModule
from .ocr import HRNetOCR
from .transition import Transition

ModelLike = Union[str, HRNetConfig, nn.Module]

STAGES = ("stage2", "stage3", "stage4")
FEATURE_KEYS = ("stem", "layer1") + STAGES
STEM_ORDER = ("conv1", "bn1", "relu", "conv2", "bn2", "relu")  # the stem in forward order (one ReLU, used twice)
STEM = tuple(dict.fromkeys(STEM_ORDER))  # the stem's module names, each once


# ------------------------------------------------------------- what was given
def as_config(model_or_variant: ModelLike) -> HRNetConfig:
    """The HRNetConfig behind a variant name, a config or a model."""
    if isinstance(model_or_variant, nn.Module):
        config = getattr(model_or_variant, "config", None)
        if not isinstance(config, HRNetConfig):
            raise TypeError(f"{type(model_or_variant).__name__} is not an hrnet_teach model (it has no .config)")
        return config
    return get_config(model_or_variant)


def check_image_size(image_size) -> tuple[int, int]:
    """``(height, width)`` as two positive ints; floats such as 224.7 are refused, not truncated."""
    return image_size_hw(image_size)


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
    height, width = check_image_size(image_size)
    backbone = meta_backbone(config)
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


def meta_backbone(model_or_variant: ModelLike) -> HRNet:
    """A weightless backbone on the meta device, built once per config (configs are frozen and hashable)."""
    config = as_config(model_or_variant)
    if config not in _META_CACHE:
        with torch.device("meta"):
            _META_CACHE[config] = HRNet(config).eval()
    return _META_CACHE[config]


_META_MODELS: dict[tuple, nn.Module] = {}


def meta_model(model_or_variant: ModelLike, head: Optional[str] = None, multi_scale_output: bool = True) -> nn.Module:
    """A weightless model on the meta device, built once per (config, head).

    ``head=None`` is the bare backbone; ``multi_scale_output=False`` makes the last
    stage-4 module fuse into branch 0 only (as the pose model does).
    """
    config = as_config(model_or_variant)
    multi_scale_output = flag("multi_scale_output", multi_scale_output)  # "no" is truthy: all four outputs
    if head is None and multi_scale_output:
        return meta_backbone(config)
    key = (config, head, multi_scale_output)
    if key not in _META_MODELS:
        from .models import create_model

        with torch.device("meta"):
            if head is None:
                model = HRNet(config, multi_scale_output=False)
            else:
                if not multi_scale_output:
                    raise ValueError("multi_scale_output=False applies to the bare backbone (head=None); the pose head sets it itself")
                model = create_model(config, head=head)
        _META_MODELS[key] = model.eval()
    return _META_MODELS[key]


def backbone_of(model_or_variant: ModelLike) -> HRNet:
    """The model itself when one is given (read its real modules), else a meta backbone."""
    if isinstance(model_or_variant, nn.Module):
        if not isinstance(model_or_variant, HRNet):
            raise TypeError(
                f"{type(model_or_variant).__name__} is not an HRNet model; pass a model from "
                "hrnet_teach.create_model, a variant name such as 'w18', or an HRNetConfig"
            )
        return model_or_variant
    return meta_backbone(as_config(model_or_variant))


def stage_number(stage: Union[str, int]) -> int:
    """2, 3 or 4 from ``"stage3"``, ``3`` or ``"3"``; a ValueError for anything else."""
    text = str(stage).lower().removeprefix("stage")
    if text in ("2", "3", "4"):
        return int(text)
    raise ValueError(f"stage must be one of {STAGES} (or 2, 3, 4), got {stage!r}")


def hr_module(backbone: HRNet, stage, module_index: int) -> tuple[str, int, HighResolutionModule]:
    """``(stage name, index, module)`` for ``backbone.stage{k}[module_index]`` (negative counts from the end)."""
    name = f"stage{stage_number(stage)}"
    modules = getattr(backbone, name)
    if isinstance(module_index, bool) or not isinstance(module_index, int) or not -len(modules) <= module_index < len(modules):
        raise ValueError(f"{name} has {len(modules)} module(s): module_index must be 0..{len(modules) - 1} "
                         f"(or negative from the end), got {module_index!r}")
    index = module_index % len(modules)
    return name, index, modules[index]


def _module_index(module_index: int, module: Optional[int]) -> int:
    """``module=`` is the older name of ``module_index=``, still accepted (the lessons use it)."""
    return module_index if module is None else module


# ---------------------------------------------------------- layers as words
NORM_NAMES = {"BatchNorm2d": "BN", "SyncBatchNorm": "SyncBN"}


def conv_text(conv: nn.Conv2d) -> str:
    """``"conv3x3 stride 2, 48→96"``: a conv in words."""
    kh, kw = conv.kernel_size
    text = f"conv{kh}x{kw}"
    if conv.stride != (1, 1):
        text += f" stride {conv.stride[0]}" if conv.stride[0] == conv.stride[1] else f" stride {conv.stride}"
    return f"{text}, {conv.in_channels}→{conv.out_channels}"


def describe_layers(module: nn.Module) -> tuple[list[str], list[bool]]:
    """One line per conv with the norm and ReLU that follow it, read from the modules.

    ``(["conv3x3 stride 2, 48→96, BN, ReLU", "conv3x3 stride 2, 96→192, BN"], [True, False])``
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"describe_layers needs a torch module (e.g. a fuse_layers entry), got {type(module).__name__}")
    lines: list[str] = []
    relu: list[bool] = []
    for leaf in module.modules():
        if next(leaf.children(), None) is not None:
            continue  # containers: their leaves come next, in order
        if isinstance(leaf, nn.Conv2d):
            lines.append(conv_text(leaf))
            relu.append(False)
        elif not lines:
            raise ValueError(f"cannot describe {type(module).__name__}: {type(leaf).__name__} comes before any conv")
        elif isinstance(leaf, nn.ReLU):
            lines[-1] += ", ReLU"
            relu[-1] = True
        else:
            name = type(leaf).__name__
            lines[-1] += ", " + NORM_NAMES.get(name, name)
    return lines, relu


def convs_of(module: nn.Module) -> list[nn.Conv2d]:
    """Every Conv2d inside ``module`` (itself included), in registration order."""
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


# -------------------------------------------------------------- fuse matrix
@dataclass
class FuseEntry:
    """``fuse_layers[i][j]``: how input branch ``j`` reaches output branch ``i``.

    ``kind``: ``"identity"`` (i == j), ``"upsample"`` (j > i: 1x1 conv + BN, then
    enlarged by ``scale = 2**(j-i)`` in forward) or ``"downsample"`` (j < i: i-j
    stride-2 3x3 convs, ``scale = 0.5**(i-j)``). ``layers``: one line per layer,
    ``relu_after``: whether a ReLU follows each line (never after the last: the
    module applies one ReLU after the sum).
    """

    i: int
    j: int
    kind: str
    in_channels: int
    out_channels: int
    scale: float
    layers: list[str] = field(default_factory=list)
    relu_after: list[bool] = field(default_factory=list)
    path: str = ""

    @property
    def steps(self) -> int:
        """Stride-2 convs in the chain (0 unless downsampling)."""
        return sum(" stride 2" in line for line in self.layers)

    @property
    def label(self) -> str:
        """A short name: ``"identity"``, ``"1x1 conv, ↑×2"``, ``"2 × conv3x3 s2"``."""
        if self.kind == "identity":
            return "identity"
        if self.kind == "upsample":
            return f"1x1 conv, ↑×{int(self.scale)}"
        return f"{self.steps} × conv3x3 s2" if self.steps > 1 else "conv3x3 s2"

    def __str__(self) -> str:
        text = f"{self.path or f'fuse_layers[{self.i}][{self.j}]'}: {self.kind}, {self.in_channels}→{self.out_channels} ch, scale {_scale_text(self.scale)}"
        return "\n".join([text] + [f"  {line}" for line in self.layers])


def _scale_text(scale: float) -> str:
    return f"×{int(scale)}" if scale >= 1 else f"×1/{round(1 / scale)}"


def fuse_matrix(model_or_variant: ModelLike, stage="stage3", module_index: int = 0, *,
                module: Optional[int] = None) -> list[list[FuseEntry]]:
    """The ``fuse_layers`` of one HighResolutionModule, as rows of :class:`FuseEntry`.

    ``result[i][j]`` describes ``fuse_layers[i][j]``: row ``i`` is output branch
    ``i``, column ``j`` input branch ``j``, of ``stage[module_index]``. A module with ``multi_scale_output=False``
    (the pose model's last) has one row. A module without fusion (one branch, or
    built with ``fusion=False``) has none: the result is ``[]``.
    """
    backbone = backbone_of(model_or_variant)
    name, index, hr = hr_module(backbone, stage, _module_index(module_index, module))
    return fuse_matrix_of(hr, f"{name}[{index}]")


def fuse_matrix_of(hr: HighResolutionModule, prefix: str = "") -> list[list[FuseEntry]]:
    """:func:`fuse_matrix` of a HighResolutionModule you hold (``prefix`` names it in ``path``)."""
    if not isinstance(hr, HighResolutionModule):
        raise TypeError(f"expected a HighResolutionModule, got {type(hr).__name__}")
    if hr.fuse_layers is None:
        return []
    dot = "." if prefix else ""
    return [
        [_fuse_entry(hr, i, j, op, f"{prefix}{dot}fuse_layers[{i}][{j}]") for j, op in enumerate(row)]
        for i, row in enumerate(hr.fuse_layers)
    ]


def _fuse_entry(hr: HighResolutionModule, i: int, j: int, op: Optional[nn.Module], path: str) -> FuseEntry:
    if op is None:
        channels = hr.out_channels[j]
        return FuseEntry(i, j, "identity", channels, channels, 1, [], [], path)
    convs = convs_of(op)
    layers, relu = describe_layers(op)
    if j > i:
        factor = 2 ** (j - i)
        how = f"bilinear to branch {i}'s size, align_corners={hr.align_corners}" if hr.upsample == "bilinear" else "nearest"
        layers.append(f"upsample ×{factor} ({how}; in forward, no weights)")
        relu.append(False)
        return FuseEntry(i, j, "upsample", convs[0].in_channels, convs[-1].out_channels, factor, layers, relu, path)
    return FuseEntry(i, j, "downsample", convs[0].in_channels, convs[-1].out_channels, 0.5 ** (i - j), layers, relu, path)


def fuse_shapes(model_or_variant: ModelLike, stage="stage3", module_index: int = 0, i: int = 0, j: int = 0,
                image_size=(512, 512), *, module: Optional[int] = None) -> Table:
    """The tensor shapes through ``fuse_layers[i][j]`` at an input size (on the meta device).

    One row per layer line of the :class:`FuseEntry`, with the (C, H, W) after it,
    starting from branch ``j``'s output and ending at the term added into output
    branch ``i``'s sum.
    """
    backbone = backbone_of(model_or_variant)
    name, index, hr = hr_module(backbone, stage, _module_index(module_index, module))
    rows = fuse_matrix(backbone, name, index)
    if not rows:
        raise ValueError(f"{name}[{index}] has no fuse_layers (one branch, or built with fusion=False)")
    if not (isinstance(i, int) and 0 <= i < len(rows)) or not (isinstance(j, int) and 0 <= j < len(rows[0])):
        raise ValueError(f"{name}[{index}].fuse_layers is {len(rows)}x{len(rows[0])}: i must be 0..{len(rows) - 1} and j 0..{len(rows[0]) - 1}, got i={i!r}, j={j!r}")
    entry = rows[i][j]
    sizes = [(h, w) for _channels, h, w in stage_shapes(backbone.config, image_size)[name]]
    x = torch.empty(1, hr.out_channels[j], *sizes[j], device="meta")
    table = Table([{"step": _("{module}.branches[{j}] output (x[{j}])", module=f"{name}[{index}]", j=j),
                    "shape": tuple(x.shape[1:])}])
    op = hr.fuse_layers[i][j]
    steps = [] if op is None else (list(op) if j < i else [op])  # a chain step or the 1x1 conv + BN
    with torch.no_grad():
        for line, step in zip(entry.layers, steps):
            x = meta_call(step, x)
            table.append({"step": line, "shape": tuple(x.shape[1:])})
        if j > i:
            like = torch.empty(1, hr.out_channels[i], *sizes[i], device="meta")
            x = hr._enlarge(x, like=like, factor=2 ** (j - i))
            if tuple(x.shape[-2:]) != sizes[i]:  # nearest by a fixed factor (pose, classification) at odd sides
                raise ValueError(
                    f"{name}[{index}]: enlarging branch {j} by x{2 ** (j - i)} gives {tuple(x.shape[-2:])}, but branch "
                    f"{i} is {sizes[i]}, so the sum fails at {image_size}: a model that enlarges by a fixed factor "
                    "(nearest, the pose and classification code) needs sides that halve exactly down to 1/32, such as "
                    "multiples of 32")
            table.append({"step": entry.layers[-1], "shape": tuple(x.shape[1:])})
    table.append({"step": _("added into the sum for branch {i} (a ReLU follows the sum)", i=i), "shape": tuple(x.shape[1:])})
    return table


# -------------------------------------------------------------- transitions
@dataclass
class TransitionEntry:
    """Output branch ``branch`` of a transition: ``"pass"`` (nothing to do),
    ``"adapt"`` (a 3x3 conv at stride 1 changes the channels) or ``"new"`` (born
    from input branch ``source`` by stride-2 3x3 convs)."""

    branch: int
    kind: str
    source: int
    in_channels: int
    out_channels: int
    layers: list[str] = field(default_factory=list)
    relu_after: list[bool] = field(default_factory=list)
    path: str = ""

    def __str__(self) -> str:
        head = _("{path}: {kind} from branch {source}, {cin}→{cout} ch", path=self.path, kind=_KINDS.get(self.kind, self.kind),
                 source=self.source, cin=self.in_channels, cout=self.out_channels)
        return "\n".join([head] + [f"  {line}" for line in self.layers])


# how a transition entry's kind reads in the course's language (the kind itself stays "pass", "adapt" or "new")
_KINDS = {"pass": N_("pass"), "adapt": N_("adapt"), "new": N_("new")}


def transitions(model_or_variant: ModelLike, stage="stage3") -> list[TransitionEntry]:
    """The transition into ``stage`` (``transition{k-1}`` before ``stage{k}``), per output branch."""
    backbone = backbone_of(model_or_variant)
    name = f"transition{stage_number(stage) - 1}"
    return transitions_of(getattr(backbone, name), name)


def transitions_of(transition: Transition, name: str = "transition") -> list[TransitionEntry]:
    """:func:`transitions` of a Transition you hold (``name`` names it in ``path``)."""
    if not isinstance(transition, Transition):
        raise TypeError(f"expected a Transition, got {type(transition).__name__}")
    entries = []
    for branch, op in enumerate(transition):
        existed = branch < len(transition.pre_channels)
        source = branch if existed else len(transition.pre_channels) - 1  # as Transition.forward picks it
        path = f"{name}[{branch}]"
        if op is None:
            channels = transition.pre_channels[branch]
            entries.append(TransitionEntry(branch, "pass", source, channels, channels, [], [], path))
            continue
        convs = convs_of(op)
        layers, relu = describe_layers(op)
        kind = "adapt" if existed else "new"
        entries.append(TransitionEntry(branch, kind, source, convs[0].in_channels, convs[-1].out_channels, layers, relu, path))
    return entries


# ----------------------------------------------------------------- features
def capture_features(model: nn.Module, image) -> dict[str, list[torch.Tensor]]:
    """Feature maps per stage and branch for one image, by forward hooks.

    ``{"stem": [t], "layer1": [t], "stage2": [t0, t1], "stage3": [...], "stage4": [...]}``,
    each tensor detached, cloned (the model's ReLUs work in place) and on the CPU.
    ``image``: a (B,) 3, H, W tensor (ImageNet-normalised) or a PIL image. The
    model runs once in eval mode without gradients; its mode is restored and its
    hooks removed afterwards, so it is left exactly as it was.
    """
    if not isinstance(model, HRNet):
        raise TypeError(f"capture_features needs an hrnet_teach model (from create_model), got {type(model).__name__}")
    x = _input_for(model, image)
    features: dict[str, list[torch.Tensor]] = {}

    def keep(key):
        def hook(_module, _inputs, output):
            tensors = output if isinstance(output, (list, tuple)) else [output]
            features[key] = [t.detach().clone().cpu() for t in tensors]
        return hook

    def keep_stem(_module, inputs):  # layer1's input is the stem's output
        features["stem"] = [inputs[0].detach().clone().cpu()]

    handles = [model.layer1.register_forward_pre_hook(keep_stem), model.layer1.register_forward_hook(keep("layer1"))]
    handles += [getattr(model, name).register_forward_hook(keep(name)) for name in STAGES]
    try:
        with _eval_mode(model), torch.no_grad():  # batch norm uses its running statistics and updates nothing
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return {key: features[key] for key in FEATURE_KEYS}


def _input_for(model: nn.Module, image) -> torch.Tensor:
    """``image`` as a batch on the model's device, in its dtype."""
    x = _image_tensor(image)
    parameter = next(model.parameters(), None)
    if parameter is not None:
        if parameter.device.type == "meta":
            raise ValueError("this model is on the meta device and has no weights; build it on a real device to see features")
        x = x.to(parameter.device, parameter.dtype)
    return x


def _image_tensor(image) -> torch.Tensor:
    if isinstance(image, torch.Tensor):
        x = image.detach()
        if x.dim() == 3:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"image must be a 3 x H x W or B x 3 x H x W tensor, got shape {tuple(image.shape)}; "
                             f"{image_shape_hint(image)}")
        if not x.is_floating_point():  # raw pixels cast to float would be 0-255, not normalised values
            raise TypeError(f"image must hold normalised float values, got {str(x.dtype).removeprefix('torch.')}: "
                            "raw pixels (0-255) must be converted first: hrnet_teach.assets.to_tensor(image) takes an "
                            "H x W x 3 array or PIL image (a 3 x H x W tensor: image.permute(1, 2, 0) first)")
        return x
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        from .assets import to_tensor

        return to_tensor(image.convert("RGB"))
    how = ""
    if type(image).__name__ == "ndarray":
        how = "; for an H x W x 3 uint8 array use hrnet_teach.assets.to_tensor(array)"
    elif isinstance(image, (str, os.PathLike)):
        how = "; open a file with PIL.Image.open(path).convert('RGB')"
    raise TypeError(f"image must be a tensor or a PIL image, got {type(image).__name__}{how}")


def pixel_region_relation(model: nn.Module, image) -> torch.Tensor:
    """HRNet-OCR's pixel-region relation for one image: w_ik, a K x h x w tensor (K regions, the h x w grid
    the head attends over: 1/4 of the input, max-pooled by the block's scale when it is over 1), each pixel's K
    weights summing to 1. ``image``: one image, as for :func:`capture_features`; the model runs once, in eval
    mode, without gradients, and is left as it was. The weights are the block's own
    (``ObjectAttentionBlock.relation`` on the inputs a normal forward gives it), so they are the ones the
    prediction used."""
    if not isinstance(model, HRNetOCR):
        raise TypeError(f"pixel_region_relation needs an HRNet-OCR model (create_model(..., head='ocr')), got "
                        f"{type(model).__name__}: only OCR's head relates pixels to object regions")
    if isinstance(image, torch.Tensor) and image.dim() == 4 and len(image) != 1:
        raise ValueError(f"pixel_region_relation takes one image, got a batch of {len(image)}: pass image[k]")
    block, seen = model.ocr_distri_head.object_context_block, {}
    handle = block.register_forward_pre_hook(lambda _module, inputs: seen.update(inputs=inputs))
    try:
        with _eval_mode(model), torch.no_grad():
            model(_input_for(model, image))
            pixels, proxy = seen["inputs"]
            pixels = block.pool(pixels) if block.scale > 1 else pixels
            weights = block.relation(pixels, proxy)[0]  # HW x K, for the first image
    finally:
        handle.remove()
    return weights.T.reshape(-1, *pixels.shape[-2:]).cpu()  # K x h x w


# -------------------------------------------------------------------- costs
@dataclass(frozen=True)
class CostRow:
    """One part of the network: its parameters and multiply-adds (MACs) for one image."""

    part: str
    params: int
    macs: int
    group: str = ""  # stem, layer1, transition2, stage3, head
    branch: Optional[int] = None  # for a stage's branches; None for fusion and the rest
    modules: tuple[str, ...] = ()  # the module paths counted in this row

    def shown(self) -> dict:
        """The row as a table prints it: the part named in the course's language (see :func:`part_label`)."""
        return {**_row_dict(self), "part": part_label(self.part)}


_COST_CACHE: dict[tuple, list[CostRow]] = {}


def cost_breakdown(model_or_variant: ModelLike, image_size=(512, 512), head: Optional[str] = None) -> Table:
    """Parameters and MACs per part: stem, layer1, each transition, each stage's
    branches (summed over its modules) and fusion, and the head.

    MACs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on the meta
    device (its FLOPs / 2), per module, so the rows add up to the whole model's
    parameters and FlopCounterMode's total. ``head`` ("segmentation", "pose", ...)
    applies to a variant name or config; a model is counted as it is.
    """
    height, width = check_image_size(image_size)
    if isinstance(model_or_variant, nn.Module):
        if head is not None:
            raise ValueError("head applies to a variant name or config; a model is counted with the head it has")
        model = model_or_variant
        if not isinstance(model, HRNet):
            raise TypeError(f"cost_breakdown needs an hrnet_teach model, got {type(model).__name__}")
        return Table(_count_parts(model, height, width))
    key = (as_config(model_or_variant), head, height, width)
    if key not in _COST_CACHE:
        _COST_CACHE[key] = _count_parts(meta_model(model_or_variant, head), height, width)
    return Table(_COST_CACHE[key])


def _parts(model: HRNet) -> list[tuple[str, str, Optional[int], list[str]]]:
    """(part, group, branch, module paths) for every part of the model, in forward order."""
    parts = [("stem", "stem", None, [m for m in STEM if getattr(model, m, None) is not None]), ("layer1", "layer1", None, ["layer1"])]
    for number, name in enumerate(STAGES, start=2):
        parts.append((f"transition{number - 1}", f"transition{number - 1}", None, [f"transition{number - 1}"]))
        stage = getattr(model, name)
        for branch in range(stage[0].num_branches):
            paths = [f"{name}.{m}.branches.{branch}" for m in range(len(stage))]
            parts.append((f"{name} branch {branch}", name, branch, paths))
        fusion = [f"{name}.{m}.fuse_layers" for m, hr in enumerate(stage) if hr.fuse_layers is not None]
        parts.append((f"{name} fusion", name, None, fusion))
    backbone = {"layer1", "transition1", "transition2", "transition3", *STEM, *STAGES}
    head = [n for n, _ in model.named_children() if n not in backbone]
    if "conv3x3_ocr" in head:  # the OCR head: one row per step of the paper's Figure 3
        parts += [(part, "head", None, paths) for part, paths in OCR_PARTS]
    elif head:
        parts.append((f"head ({', '.join(head)})", "head", None, head))
    return parts


# The OCR head's parts in the order they run (hrnet_teach.ocr): the gather has no
# parameters but its matrix product costs multiply-adds; so does the attention's.
_OCR_PARTS = (
    (N_("OCR soft object regions (aux_head)"), ["aux_head"]),
    (N_("OCR pixel representations (conv3x3_ocr)"), ["conv3x3_ocr"]),
    (N_("OCR region gather (ocr_gather_head)"), ["ocr_gather_head"]),
    (N_("OCR pixel-region attention (object_context_block)"), ["ocr_distri_head.object_context_block"]),
    (N_("OCR augmented representation (conv_bn_dropout)"), ["ocr_distri_head.conv_bn_dropout"]),
    (N_("OCR classifier (cls_head)"), ["cls_head"]),
)
OCR_PARTS = tuple((label.message, paths) for label, paths in _OCR_PARTS)  # the parts' names: English, as data


def part_label(part: str) -> str:
    """A part (or group) of :func:`cost_breakdown` as the course's language names it: ``CostRow.part`` stays English, since
    code compares it (``r.part.endswith("fusion")``); tables and figures show this. Module names (layer1,
    transition2, stage3, aux_head) stay as they are."""
    stage, _space, rest = part.partition(" ")
    if stage.startswith("stage") and rest.startswith("branch "):
        return _("{stage} branch {branch}", stage=stage, branch=rest[len("branch "):])
    if stage.startswith("stage") and rest == "fusion":
        return _("{stage} fusion", stage=stage)
    if stage == "head" and rest.startswith("("):  # "head (last_layer)"
        return _("head ({modules})", modules=rest[1:-1])
    # and the groups of the rows (CostRow.group): stem, layer1, transitionN, stageN, head
    labels = {label.message: label for label, _paths in _OCR_PARTS} | {"stem": N_("stem"), "head": N_("head"),
                                                                         "other": N_("other")}
    return str(labels.get(part, part))


def _count_parts(model: HRNet, height: int, width: int) -> list[CostRow]:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        meta_call(model, torch.empty(1, 3, height, width, device="meta"))
    own = _own_flops({name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}, type(model).__name__)
    modules = dict(model.named_modules())
    rows, macs_seen, params_seen = [], 0, 0
    for part, group, branch, paths in _parts(model):
        params = sum(p.numel() for path in paths for p in modules[path].parameters())
        flops = sum(f for name, f in own.items() if any(name == p or name.startswith(p + ".") for p in paths))
        rows.append(CostRow(part, params, flops // 2, group, branch, tuple(paths)))
        macs_seen += flops // 2
        params_seen += params
    # Whatever ran outside every part (nothing, for the models of this package)
    # gets its own row, so the rows always add up to the totals.
    total_macs = counter.get_total_flops() // 2
    total_params = sum(p.numel() for p in model.parameters())
    if total_macs != macs_seen or total_params != params_seen:
        rows.append(CostRow("other", total_params - params_seen, total_macs - macs_seen, "other"))
    return rows


def _own_flops(counts: dict[str, int], root: str) -> dict[str, int]:
    """FLOPs each module ran itself, not in a submodule, keyed by its path in the model.

    FlopCounterMode counts an op in every module on the call stack, so a module's
    count includes its children's; and a fuse op is called by its
    HighResolutionModule, not by the ``fuse_layers`` list that holds it. So each
    module's own share is its count less that of the modules it called directly.
    """
    own = {name: count for name, count in counts.items() if name == root or name.startswith(root + ".")}
    for name in list(own):
        parent = name
        while "." in parent:
            parent = parent.rsplit(".", 1)[0]
            if parent in own:
                own[parent] -= counts[name]
                break
    return {name[len(root) + 1:]: count for name, count in own.items() if name != root and count}


def meta_call(module: nn.Module, *args):
    """Run ``module`` on meta tensors: instant, whatever its size and wherever its weights live.

    A model with real weights runs with meta stand-ins for its parameters and
    buffers (``torch.func.functional_call``), so nothing of it is read or changed.
    It runs in eval mode (shapes and counts are the same in both): in training mode
    BatchNorm refuses a batch of one 1x1 map (a 31x31 input's 1/32 branch).
    """
    tensors = dict(module.named_parameters()) | dict(module.named_buffers())
    with _eval_mode(module):
        if all(t.device.type == "meta" for t in tensors.values()):
            return module(*args)
        from torch.func import functional_call

        stand_ins = {name: torch.empty_like(t, device="meta") for name, t in tensors.items()}
        return functional_call(module, stand_ins, args)


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    """``module`` in eval mode for the ``with`` block; each submodule's own mode is restored after."""
    modes = {m: m.training for m in module.modules()}  # restored one by one: some may differ
    try:
        module.eval()
        yield module
    finally:
        for m, training in modes.items():
            m.training = training


# ------------------------------------------------------------- shape tables
def branch_table(model_or_variant: ModelLike, image_size=(512, 512)) -> Table:
    """One row per stage and branch: channels, height, width, resolution, parameters.

    ``resolution`` is the paper's name for the branch ("1/4", "1/8", ...);
    ``params`` counts the branch's residual blocks over all the stage's modules
    (fusion is counted apart, see :func:`cost_breakdown`); ``blocks`` how many
    residual blocks that is.
    """
    backbone = backbone_of(model_or_variant)
    height, width = check_image_size(image_size)
    stem = torch.empty(1, 3, height, width, device="meta")
    for conv in (backbone.conv1, backbone.conv2):  # the stem's two stride-2 convs
        stem = meta_call(conv, stem)
    layer1_channels = convs_of(backbone.layer1[-1])[-1].out_channels  # after the last block's expansion
    rows = Table([{
        "stage": "stage1", "branch": 0, "channels": layer1_channels, "height": stem.shape[-2], "width": stem.shape[-1],
        "resolution": "1/4", "params": sum(p.numel() for p in backbone.layer1.parameters()), "blocks": len(backbone.layer1),
    }])
    for name, shapes in stage_shapes(backbone.config, (height, width)).items():
        stage = getattr(backbone, name)
        for branch, (channels, h, w) in enumerate(shapes):
            blocks = [hr.branches[branch] for hr in stage]
            rows.append({
                "stage": name, "branch": branch, "channels": channels, "height": h, "width": w,
                "resolution": f"1/{2 ** (branch + 2)}",
                "params": sum(p.numel() for b in blocks for p in b.parameters()),
                "blocks": sum(len(b) for b in blocks),
            })
    return rows


def shape_summary(module: nn.Module, input_size, depth: int = 2):
    """Input and output shapes of a module and its parts.

    For a module that takes and returns one tensor (a block, a head model),
    ``torchinfo.summary``. For one that takes or returns a list of branches (a
    HighResolutionModule, a Transition, the backbone), our own table, because
    torchinfo shows only the first tensor of a list. ``input_size``: a shape
    ``(1, C, H, W)``, or a list of them for a list input. Runs on the meta device.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"shape_summary needs a torch module, got {type(module).__name__}")
    depth = positive_int("depth", depth, minimum=0)
    shapes, takes_list = _input_shapes(input_size, flat=isinstance(_entry_layer(module), nn.Linear))
    _check_input_shapes(module, shapes, takes_list)
    inputs = [torch.empty(*s, device="meta") for s in shapes]
    arg = inputs if takes_list else inputs[0]
    try:
        rows = _shape_rows(module, arg, depth)
    except RuntimeError as error:  # another module: was it its first layer that the input did not fit?
        layer, given = (None, None) if takes_list else _first_called_layer(module, arg)
        problem = layer and _first_layer_problem(module, layer, given, certain=False)
        if problem:
            raise ValueError(problem) from error
        raise
    if takes_list or rows[0]["output"].count("[") > 1:
        return rows
    import torchinfo

    stats = torchinfo.summary(
        _meta_copy(module), input_size=shapes[0], depth=depth, device="meta", verbose=0,
        col_names=("input_size", "output_size", "num_params"), row_settings=("var_names",),
        col_width=20,  # 100 characters a line: JupyterLab in a 1000 px pane holds 113 (torchinfo's 25 gave 115)
    )
    # Print multiply-adds as a plain count: torchinfo 1.8 on Python 3.11 labels its
    # scaled value "(Units.MEGABYTES)", which reads as a memory size.
    stats.formatting.macs_units = torchinfo.Units.NONE
    return stats


def _input_shapes(input_size, flat: bool = False) -> tuple[list[tuple[int, ...]], bool]:
    """The shapes asked for, each ``(batch, channels, height, width)`` (``flat``, for a module that starts
    with a Linear: ``(batch, features)`` too), and whether they are a list."""
    if isinstance(input_size, torch.Tensor) or (isinstance(input_size, (list, tuple)) and input_size
                                                and all(isinstance(v, torch.Tensor) for v in input_size)):
        raise TypeError("shape_summary takes input sizes, not tensors: pass x.shape (or [t.shape for t in xs] "
                        "for a list of branches), e.g. (1, 3, 64, 64)")
    takes_list = _is_list_of_shapes(input_size)
    try:
        shapes = [tuple(s) for s in input_size] if takes_list else [tuple(input_size)]
    except TypeError:
        raise ValueError(f"input sizes must be (batch, channels, height, width), got {input_size!r}") from None
    for index, shape in enumerate(shapes):
        if len(shape) != 4 and not (flat and len(shape) == 2):
            wanted = "(batch, features) or (batch, channels, height, width)" if flat else "(batch, channels, height, width)"
            raise ValueError(f"input sizes must be {wanted}, got {shape!r}")
        dims = ("batch", "features") if len(shape) == 2 else ("batch", "channels", "height", "width")
        shapes[index] = tuple(positive_int(f"input size {dim}", v) for dim, v in zip(dims, shape))
    return shapes, takes_list


def _check_input_shapes(module: nn.Module, shapes: list[tuple[int, ...]], takes_list: bool) -> None:
    """For the package's list-taking modules and blocks, the branch count and channels they expect;
    for a Conv2d or Linear (or a Sequential that starts with one), its input channels or features;
    said before the meta device's bare "Invalid channel dimensions"."""
    first = module[0] if isinstance(module, nn.Sequential) and len(module) else module  # a stage, layer1
    # HighResolutionModule and Transition check the same list again in forward (check_branch_list), but in
    # tensors' words ("takes a list of 2 tensors ... got 1"); shape_summary's caller passed sizes, so this
    # says it in sizes, with a list of sizes to copy, before any meta run.
    if isinstance(first, (HighResolutionModule, Transition)):
        expected = first.in_channels if isinstance(first, HighResolutionModule) else first.pre_channels
        what = f"{type(first).__name__} takes a list of {len(expected)} branch(es) with {list(expected)} channels"
    elif isinstance(first, (BasicBlock, Bottleneck)):
        expected = (first.conv1.in_channels,)
        what = f"{type(first).__name__} takes one (B, {expected[0]}, H, W) tensor"
    else:
        entry = _entry_layer(module)
        problem = entry and _first_layer_problem(module, entry, shapes[0], certain=True, takes_list=takes_list)
        if problem:
            raise ValueError(problem)
        return
    wants_list = isinstance(first, (HighResolutionModule, Transition))
    if takes_list != wants_list or tuple(s[1] for s in shapes) != tuple(expected):
        asked = [tuple(s) for s in shapes] if takes_list else shapes[0]
        example = [(1, c, 64 // 2**b, 64 // 2**b) for b, c in enumerate(expected)]
        raise ValueError(f"{what}, got input size {asked}; e.g. {example if wants_list else example[0]}")


def _entry_layer(module: nn.Module) -> Optional[nn.Module]:
    """The layer that surely reads the input first: ``module`` itself, or the first layer of nested
    Sequentials, when that is a Conv2d or a Linear; else None (a model checks its own input)."""
    while isinstance(module, nn.Sequential) and len(module):
        module = module[0]
    return module if isinstance(module, (nn.Conv2d, nn.Linear)) else None


class _Reached(Exception):
    """Stops a meta run at its first Conv2d or Linear."""


def _first_called_layer(module: nn.Module, arg: torch.Tensor) -> tuple[Optional[nn.Module], Optional[tuple]]:
    """The first Conv2d or Linear that ``module`` runs on ``arg``, and the shape it is given (a meta run,
    stopped there); (None, None) if the run fails before reaching one. The order in which a module
    defines its layers need not be the order its forward calls them."""
    reached = []

    def stop(layer, inputs):
        reached.append((layer, tuple(inputs[0].shape)))
        raise _Reached

    handles = [m.register_forward_pre_hook(stop) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            meta_call(module, arg)
    except Exception:  # _Reached, or the failure that came before any such layer
        pass
    finally:
        for handle in handles:
            handle.remove()
    return reached[0] if reached else (None, None)


def _first_layer_problem(module: nn.Module, layer: nn.Module, shape: tuple[int, ...], certain: bool,
                         takes_list: bool = False) -> Optional[str]:
    """What is wrong with ``shape`` for ``layer`` (``module``'s first Conv2d or Linear), or None.

    Said before the meta device's bare "Invalid channel dimensions" (a Conv2d) or "a and b must have
    same reduction dim" (a Linear). ``certain``: ``layer`` surely reads the input first; else it is
    the first one ``module`` ran, and ``shape`` what it was given."""
    linear = isinstance(layer, nn.Linear)
    wanted = layer.in_features if linear else layer.in_channels
    if not takes_list and (shape[-1] if linear else shape[1]) == wanted:
        return None
    takes = f"(B, {wanted})" if linear else f"(B, {wanted}, H, W)"
    example = (shape[0], wanted) if linear else (shape[0], wanted, *shape[2:])
    if module is layer:
        name = repr(layer)
    else:
        name = f"{type(module).__name__} {'starts with' if certain else 'first runs'} {layer!r}"
    got = "got a list of input sizes" if takes_list else f"got input size {shape}" if certain else f"and was given {shape}"
    return f"{name}: it takes one {takes} tensor, {got}; e.g. {example}"


def _meta_copy(module: nn.Module) -> nn.Module:
    """``module`` with meta stand-ins for its weights: torchinfo moves the module it is given to its
    ``device``, and a learner's real model must keep its weights."""
    tensors = [*module.parameters(), *module.buffers()]
    if all(t.device.type == "meta" for t in tensors):
        return module
    memo = {id(p): nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad) for p in module.parameters()}
    memo |= {id(b): torch.empty_like(b, device="meta") for b in module.buffers()}
    return copy.deepcopy(module, memo)


def _is_list_of_shapes(value) -> bool:
    return isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, (list, tuple)) for v in value)


def _shapes_text(value) -> str:
    if isinstance(value, torch.Tensor):
        return str(list(value.shape))
    if isinstance(value, (list, tuple)):
        return ", ".join(_shapes_text(v) for v in value if v is not None)
    return ""


def _shape_rows(module: nn.Module, arg, depth: int) -> Table:
    """Every call of a module up to ``depth`` below ``module``, in the order they ran."""
    rows = Table()
    handles = []
    for name, sub in module.named_modules():
        level = _call_depth(module, name)
        if level > depth or type(sub) is nn.ModuleList:  # plain ModuleLists are never called
            continue

        def hook(m, inputs, output, name=name, level=level):
            rows.append({
                "layer": ("  " * level) + (name or type(module).__name__), "type": type(m).__name__,
                "input": _shapes_text(list(inputs)), "output": _shapes_text(output),
                "params": sum(p.numel() for p in m.parameters()),
            })
        handles.append(sub.register_forward_hook(hook))
    try:
        with torch.no_grad():
            meta_call(module, arg)
    finally:
        for handle in handles:
            handle.remove()
    # the module itself finishes last; show it first, as torchinfo does
    rows.insert(0, rows.pop())
    return rows


def _call_depth(root: nn.Module, name: str) -> int:
    """How deep ``name`` sits, not counting plain ModuleLists (``fuse_layers.2.0`` is depth 1)."""
    level, module = 0, root
    for part in name.split(".") if name else []:
        module = getattr(module, part) if not part.isdigit() else module[int(part)]
        level += type(module) is not nn.ModuleList
    return level


# ------------------------------------------------------------------- tables
class Table(list):
    """A list of rows (dicts or dataclasses) that prints as a table and shows as HTML in a notebook."""

    def columns(self) -> list[str]:
        names: list[str] = []
        for row in self:
            for key in _row_dict(row):
                if key not in names and key != "modules":
                    names.append(key)
        return names

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        columns = self.columns()
        # a row may say how it is shown (CostRow names its part in the course's language)
        body = [[_cell((row.shown() if hasattr(row, "shown") else _row_dict(row)).get(c)) for c in columns] for row in self]
        return columns, body

    def to_text(self) -> str:
        columns, body = self._cells()
        if not columns:
            return "(empty table)"
        # widths in screen columns: a Chinese character takes two
        widths = [max(columns_of(c), *(columns_of(r[k]) for r in body)) if body else columns_of(c)
                  for k, c in enumerate(columns)]
        lines = ["  ".join(ljust(c, w) for c, w in zip(columns, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(rjust(v, w) if _numeric(v) else ljust(v, w) for v, w in zip(r, widths)) for r in body]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        columns, body = self._cells()
        numeric = [bool(body) and all(_numeric(r[k]) or not r[k] for r in body) for k in range(len(columns))]
        head = "".join(f'<th style="text-align:{"right" if n else "left"}">{html.escape(c)}</th>' for c, n in zip(columns, numeric))
        rows = "".join(
            "<tr>" + "".join(
                f'<td style="text-align:{"right" if _numeric(v) else "left"};white-space:pre">{html.escape(v)}</td>' for v in r
            ) + "</tr>" for r in body
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"

    def __repr__(self) -> str:
        return self.to_text()

    __str__ = __repr__


def _row_dict(row: Any) -> dict:
    if is_dataclass(row):
        return {f.name: getattr(row, f.name) for f in fields(row)}
    return dict(row)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
        return " x ".join(str(v) for v in value)
    return str(value)


def _numeric(text: str) -> bool:
    return text.replace(",", "").replace(".", "").lstrip("-").isdigit()


__all__ = [
    "pixel_region_relation", "part_label", "as_config", "stage_shapes", "meta_model", "stage_number", "describe_layers",
    "FuseEntry", "fuse_matrix", "fuse_matrix_of", "fuse_shapes", "TransitionEntry", "transitions", "transitions_of",
    "capture_features", "CostRow", "cost_breakdown", "branch_table", "shape_summary", "Table",
]
