"""Deploying HRNet: a faster inference copy, and files other runtimes can run.

- :func:`fast`: a copy for inference with every BatchNorm folded into the
  convolution before it (exact: in eval mode BatchNorm is a per-channel affine
  map, and so is the convolution's output), channels-last memory, and optionally
  ``torch.compile``. The model you pass is left untouched.
- :func:`export_program` (``torch.export``) and :func:`export_onnx` (ONNX, for
  ONNX Runtime, TensorRT, OpenVINO ...), with dynamic height and width where the
  head allows it (:func:`size_rule`), and :func:`run_onnx` to run the file.

Folding, in one line per channel ``c``: BatchNorm computes
``gamma_c * (y_c - mean_c) / sqrt(var_c + eps) + beta_c`` with ``y = W * x + b``;
put ``s_c = gamma_c / sqrt(var_c + eps)`` and it is a convolution with weights
``s_c * W_c`` and bias ``s_c * (b_c - mean_c) + beta_c``.

The export traps this module turns into clear errors or fixes: a model left in
training mode (refused: call ``model.eval()``), an ONNX opset
older than 11 (no ``Resize`` with ``align_corners`` before it), a size the head
cannot take, a path that cannot be written. SyncBatchNorm is replaced by BatchNorm2d
in the copy (in eval mode they compute the same).
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union
from unittest import mock

import torch
from torch import nn

from ._validate import (
    MAX_IMAGE_SIDE,
    flag,
    image_shape_hint,
    image_size_hw,
    non_finite_summary,
    positive_int,
    refuse_meta,
)
from .config import VARIANTS

PathLike = Union[str, Path]
# onnxruntime-gpu beside the CPU wheel (which requirements-colab.txt installs) leaves the CUDA provider
# unavailable, and a wheel built for another CUDA major version than torch's cannot load its libraries.
ORT_GPU_ADVICE = ("for CUDA: pip uninstall -y onnxruntime && pip install onnxruntime-gpu, then restart Python "
                  "(on Colab: the runtime); its CUDA major version must match torch's (torch.version.cuda)")
DEFAULT_OPSET = 18  # the dynamo exporter's own opset, written without version conversion (torch.onnx.export's
# default is 20 in torch 2.13, reached by converting up)
MIN_OPSET = 11  # ONNX Resize has coordinate_transformation_mode ("align_corners", "half_pixel") from opset 11
# Nearest fusion enlarges by exact factors 2, 4, 8 down to 1/32. The eager model also takes the three sides just
# below each multiple of 32 (backbone.halves_exactly); an export keeps to the multiples, so that one symbolic
# size, 32 * k, describes every input it takes.
NEAREST_MULTIPLE = 32
# torch.export treats a size-1 dimension as special (it broadcasts), so a dynamic
# program wants the 1/32 branch at least 2 pixels: sides of at least 33.
EXPORT_MIN_SIDE = 33
_BATCHNORMS = (nn.modules.batchnorm._BatchNorm,)


# ------------------------------------------------------------------ folding
def fold_conv_bn(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm) -> nn.Conv2d:
    """A new Conv2d that computes ``bn(conv(x))`` of an eval-mode BatchNorm, exactly (up to rounding)."""
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, _BATCHNORMS):
        swapped = " (swapped? the conv comes first)" if isinstance(conv, _BATCHNORMS) else ""
        raise TypeError(f"fold_conv_bn(conv, bn) takes an nn.Conv2d and the BatchNorm after it, got "
                        f"{type(conv).__name__} and {type(bn).__name__}{swapped}")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(f"{bn}: no running statistics (track_running_stats=False), so eval mode still "
                         "normalises with each batch's own: it cannot be folded into a convolution")
    if conv.out_channels != bn.num_features:
        raise ValueError(f"cannot fold {bn} into {conv}: {bn.num_features} features vs {conv.out_channels} channels")
    if bn.training:  # it normalises each batch with its own statistics: the running ones fold another function
        raise RuntimeError(f"fold_conv_bn(): {bn} is in training mode, where it normalises each batch with the "
                           "batch's own statistics, which no fixed convolution computes. Folding is for inference: "
                           "call bn.eval() (or model.eval()) first")
    with torch.no_grad():
        scale = bn.running_var.add(bn.eps).rsqrt()  # 1 / sqrt(var + eps), per output channel
        if bn.weight is not None:  # affine=False: gamma = 1, beta = 0
            scale = scale * bn.weight
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        bias = (bias - bn.running_mean) * scale
        if bn.bias is not None:
            bias = bias + bn.bias
        folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                           conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                           device=conv.weight.device, dtype=conv.weight.dtype)
        folded.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        folded.bias.copy_(bias)
    return folded


def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv name, BatchNorm name) for every BatchNorm that reads only a Conv2d's output.

    Found by following the data, not the names: ``torch.fx`` traces ``forward`` and
    a BatchNorm is folded only if its input is a Conv2d called once, whose output
    nothing else reads.
    """
    _require_module(model, "conv_bn_pairs()")
    model = _unwrap(model)  # DataParallel's forward scatters over GPUs, which torch.fx cannot trace: its network's names
    graph = torch.fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], _BATCHNORMS):
            continue
        source = node.args[0]
        if (isinstance(source, torch.fx.Node) and source.op == "call_module"
                and isinstance(modules[source.target], nn.Conv2d) and len(source.users) == 1
                and calls[source.target] == 1 and calls[node.target] == 1):
            pairs.append((source.target, node.target))
    return pairs


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm that follows a convolution into it, in place; returns how many.

    The folded BatchNorm becomes ``nn.Identity()``, so the module tree, and every
    method of the model (its input checks), stay as they were.
    """
    _require_module(model, "fold_batchnorm()")
    model = _unwrap(model)  # the network inside DataParallel, folded in place: the wrapper holds the same modules
    _refuse_training(model, "fold_batchnorm()")
    pairs = conv_bn_pairs(model)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        _replace(model, conv_name, fold_conv_bn(conv, bn))
        _replace(model, bn_name, nn.Identity())
    return len(pairs)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """The inverse of ``nn.SyncBatchNorm.convert_sync_batchnorm``: plain BatchNorm2d, same state.

    In eval mode both normalise with the running statistics, so nothing changes. torch.export and
    the ONNX exporters take SyncBatchNorm as it is (its eval forward is a plain batch_norm), but
    torch.jit.script cannot compile it, and under a process group its training forward insists on
    GPU input: the copy uses BatchNorm2d so that it behaves the same everywhere.
    """
    if isinstance(module, nn.SyncBatchNorm):
        plain = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats, device=_device_of(module), dtype=_dtype_of(module))
        plain.load_state_dict(module.state_dict())
        plain.train(module.training)
        return plain
    for name, child in module.named_children():
        new = revert_sync_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
    return module


def _device_of(module: nn.Module):
    return next((t.device for t in module.state_dict().values()), None)


def _dtype_of(module: nn.Module):
    return next((t.dtype for t in module.state_dict().values() if t.is_floating_point()), None)


# ------------------------------------------------------------------ the inference copy
def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel / DataParallel / torch.compile."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):  # torch.compile
            model = model._orig_mod
        else:
            return model


def _require_module(model: object, what: str) -> None:
    """A TypeError for a variant name or a file path where a model is needed (torch.fx and the
    module walks below would fail on it deep inside, with an AssertionError or AttributeError)."""
    if isinstance(model, str) and model in VARIANTS:
        raise TypeError(f"{what} expects a torch.nn.Module, got the variant name {model!r}: build the model "
                        f"first, hrnet_teach.create_model({model!r}).eval()")
    if not isinstance(model, nn.Module):
        raise TypeError(f"{what} expects a torch.nn.Module (e.g. hrnet_teach.create_model(...)), "
                        f"got {type(model).__name__}")


def _refuse_training(model: nn.Module, what: str) -> None:
    if any(m.training for m in model.modules() if isinstance(m, _BATCHNORMS)) or model.training:
        raise RuntimeError(
            f"{what}: the model is in training mode, where BatchNorm normalises each batch with its own "
            "statistics (and Dropout drops). Folding and export need the fixed inference network: call "
            "model.eval() first (the copy made here leaves your model as it is)."
        )


def inference_copy(model: nn.Module, what: str = "inference_copy()") -> nn.Module:
    """A deep copy for inference: unwrapped from DDP/DataParallel, eval mode required,
    SyncBatchNorm replaced by BatchNorm2d, gradients off. ``model`` itself is not changed."""
    _require_module(model, what)
    model = _unwrap(model)
    _refuse_training(model, what)
    copied = revert_sync_batchnorm(copy.deepcopy(model))
    for p in copied.parameters():
        p.requires_grad_(False)
    return copied.eval()


def fast(model: nn.Module, compile: bool = False, channels_last: bool = True, fold: bool = True,
         **compile_kwargs: Any) -> nn.Module:
    """An inference copy that runs faster and gives the same outputs (to float rounding).

    - ``fold``: every BatchNorm folded into its convolution (:func:`fold_batchnorm`);
    - ``channels_last``: weights and activations stored NHWC, a layout oneDNN (CPU)
      and cuDNN's tensor-core kernels convolve without NCHW's reorders; the copy converts its
      input (a forward pre-hook), and returns NHWC tensors of the usual shape;
    - ``compile``: ``torch.compile(copy, **compile_kwargs)``; the first call
      compiles (a minute or more on a small CPU), later calls reuse it. The
      compiled model skips the eager input checks.

    The copy's state-dict differs (no BatchNorm keys, convs gain a bias): keep the
    original model for training and checkpoints.
    """
    _check_fast_flags(compile=compile, channels_last=channels_last, fold=fold)
    if compile_kwargs and not compile:  # they would be dropped in silence: no torch.compile runs
        given = ", ".join(f"{k}=" for k in compile_kwargs)
        raise TypeError(f"fast(): {given} applies only with compile=True (passed on to torch.compile); "
                        "add compile=True, or leave it out")
    copied = inference_copy(model, "fast()")
    if fold:
        fold_batchnorm(copied)
    if channels_last:
        copied = copied.to(memory_format=torch.channels_last)
        copied.register_forward_pre_hook(_input_channels_last)
    if compile:
        copied = torch.compile(copied, **compile_kwargs)
    return copied


def _check_fast_flags(**flags: Any) -> None:
    """fast()'s switches as bools: compile='no' is truthy and would compile."""
    for name, value in flags.items():
        flag(f"fast(): {name}", value, TypeError)


def _input_channels_last(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook: the image in NHWC too, so that conv1 does not convert it itself (a
    channels-last weight already makes conv1's output NHWC)."""
    if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 4:
        return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    return args


# ------------------------------------------------------------------ sizes
def size_rule(model: nn.Module) -> tuple[int, int]:
    """(multiple, minimum) for the input height and width this model can take.

    Bilinear fusion (segmentation, OCR, ``head=None``) resizes to exact sizes: any
    size. Nearest fusion (pose, classification, pyramid) enlarges by fixed factors
    2, 4, 8, so sides must be multiples of 32; the pyramid also pools the 1/4 map
    by up to ``2**(num_outs-1)``.
    """
    _require_module(model, "size_rule()")  # a variant's name had every attribute missing: (1, 1) without a word
    model = _unwrap(model)
    multiple = NEAREST_MULTIPLE if getattr(model, "upsample", "bilinear") == "nearest" else 1
    minimum = multiple
    num_outs = getattr(model, "num_outs", None)
    if isinstance(num_outs, int):
        minimum = max(minimum, 4 * 2 ** (num_outs - 1))
    return multiple, minimum


def check_size(model: nn.Module, size: Sequence[int]) -> tuple[int, int]:
    """``size`` as (height, width), or a clear error if an export of the model cannot take it."""
    # a pair of positive ints (64.5: refused, not cut), each side at most MAX_IMAGE_SIDE (example_input allocates it)
    height, width = image_size_hw(size, "size")
    multiple, minimum = size_rule(model)
    if height % multiple or width % multiple or min(height, width) < minimum:
        up = lambda n: max(minimum, -(-n // multiple) * multiple)  # noqa: E731
        raise ValueError(
            f"size {height}x{width}: {_head_name(model)} fuses branches with nearest upsampling by fixed "
            f"factors, so for export height and width must be multiples of {multiple} and at least {minimum} "
            f"({export_min_side(model)} for a dynamic export, see export_min_side); e.g. {up(height)}x{up(width)}. "
            f"(Run eagerly, the model also takes the three sides just below a "
            "multiple of 32, which one symbol times 32 cannot describe; the segmentation head and head=None take "
            "any size.)"
        )
    return height, width


def _head_name(model: nn.Module) -> str:
    return type(_unwrap(model)).__name__


def export_min_side(model: nn.Module) -> int:
    """The smallest side a dynamic export takes: every map inside at least 2 pixels.

    ``torch.export`` treats a size-1 dimension as special (it broadcasts) and refuses
    a declared range over which a map inside could shrink to 1 pixel: the 1/32
    branch needs sides of at least 33 (64 with nearest fusion), the pyramid's
    coarsest level twice its eager minimum. (The batch may still be 1 at run time.)
    """
    multiple, minimum = size_rule(model)
    side = max(EXPORT_MIN_SIDE, 2 * minimum if minimum > multiple else minimum)
    return -(-side // multiple) * multiple if multiple > 1 else side


def example_input(model: nn.Module, size: Optional[Sequence[int]] = None, batch: int = 2) -> torch.Tensor:
    """A random input the model can take (default: the smallest square a dynamic export takes, at least 64)."""
    _require_module(model, "example_input()")
    batch = positive_int("batch", batch)  # -1 or 2.5 would fail inside torch.randn
    if size is None:
        side = max(64, export_min_side(model))
        size = (side, side)
    height, width = check_size(model, size)
    param = next(_unwrap(model).parameters(), None)
    device = param.device if param is not None else None
    dtype = param.dtype if param is not None else None
    return torch.randn(batch, 3, height, width, device=device, dtype=dtype)


def dynamic_shapes(model: nn.Module, batch: bool = True) -> dict[str, dict[int, Any]]:
    """``torch.export`` dimensions for the input ``x``: batch, and height and width
    (any size from :func:`export_min_side`, or multiples of 32 for the nearest-fusion heads)."""
    Dim = torch.export.Dim
    multiple, _ = size_rule(model)
    minimum = export_min_side(model)
    dims: dict[int, Any] = {}
    if batch:
        dims[0] = Dim("batch", min=1, max=1024)
    if multiple == 1:
        dims[2], dims[3] = Dim("height", min=minimum, max=MAX_IMAGE_SIDE), Dim("width", min=minimum, max=MAX_IMAGE_SIDE)
    else:
        low = minimum // multiple
        dims[2] = multiple * Dim("height_div_32", min=low, max=MAX_IMAGE_SIDE // multiple)
        dims[3] = multiple * Dim("width_div_32", min=low, max=MAX_IMAGE_SIDE // multiple)
    return {"x": dims}


def _check_example(model: nn.Module, example: Any) -> None:
    """An export's example input: a (B, 3, H, W) tensor of the weights' dtype (the model's own eager checks)."""
    if not isinstance(example, torch.Tensor):
        raise TypeError(f"example must be a tensor (B, 3, H, W), e.g. deploy.example_input(model), got "
                        f"{type(example).__name__}" + (": torch.from_numpy(example)" if hasattr(example, "__array__") else ""))
    check = getattr(_unwrap(model), "check_input", None)
    if callable(check):  # HRNet's: shape, channels, dtype, with what to do
        check(example)
    elif example.dim() != 4:
        raise ValueError(f"example {tuple(example.shape)}: export wants (B, C, H, W); add the batch dimension "
                         "with example.unsqueeze(0)")


def check_export_size(model: nn.Module, example: torch.Tensor, dynamic: bool) -> None:
    _check_example(model, example)
    check_size(model, example.shape[-2:])
    if dynamic and min(example.shape[-2:]) < export_min_side(model):
        raise ValueError(f"example {tuple(example.shape)}: a dynamic export of {_head_name(model)} needs an example "
                         f"with sides of at least {export_min_side(model)} (see export_min_side), or dynamic=False")
    if dynamic and example.shape[0] < 2:
        raise ValueError(f"example {tuple(example.shape)}: a dynamic batch needs an example batch of at least 2 "
                         "(torch.export fixes a size-1 dimension), or dynamic=False")


# ------------------------------------------------------------------ torch.export
def _export_copy(model: nn.Module, caller: str, fold: bool, example: Optional[torch.Tensor], dynamic: bool):
    """The inference copy an export traces (BatchNorm folded if asked), and the example input:
    made to fit the model, or the one given, checked against what the head can take."""
    copied = inference_copy(model, caller)
    if fold:
        fold_batchnorm(copied)
    if example is None:
        return copied, example_input(copied, batch=2 if dynamic else 1)
    check_export_size(copied, example, dynamic)
    return copied, example


def export_program(model: nn.Module, example: Optional[torch.Tensor] = None, dynamic: bool = True,
                   fold: bool = True) -> torch.export.ExportedProgram:
    """``torch.export`` of an inference copy (:func:`inference_copy`, BatchNorm folded by default).

    ``dynamic``: batch, height and width stay symbolic (see :func:`dynamic_shapes`);
    otherwise the program only runs at the example's shape. Run it with
    ``program.module()(x)``.
    """
    _check_export_flags("export_program", dynamic=dynamic, fold=fold)
    # traced on a meta model, the program would run and return uninitialised memory, different at every call
    refuse_meta(_unwrap(model), "export_program() would trace weights that hold no numbers")
    copied, example = _export_copy(model, "export_program()", fold, example, dynamic)
    shapes = dynamic_shapes(copied) if dynamic else None
    with torch.no_grad():
        return torch.export.export(copied, (example,), dynamic_shapes=shapes)


def _check_export_flags(what: str, **flags: Any) -> None:
    """The exports' switches as bools: dynamic="no" is truthy (a dynamic export), dynamic=None falsy (a static
    one), and either would run a long export of another kind than asked, without a word."""
    for name, value in flags.items():
        flag(f"{what}(): {name}", value, TypeError)


# ------------------------------------------------------------------ ONNX
def check_writable(path: PathLike) -> Path:
    """``path`` as a Path, or a clear error before a long export if it cannot be written."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or Path naming the file to write, e.g. 'model.onnx', "
                        f"got {type(path).__name__}")
    _refuse_missing_folder_name(path)
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: give a file name, e.g. {path / 'model.onnx'}")
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(f"cannot write {path}: the folder {parent} does not exist; create it with "
                                f"Path({str(parent)!r}).mkdir(parents=True) or choose another path")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as error:
        raise PermissionError(f"cannot write {path}: {error.strerror or error}; choose a folder you can write "
                              "to (e.g. the current one)") from None
    if not existed:
        path.unlink()
    return path


def _refuse_missing_folder_name(path: PathLike) -> None:
    """'exports/' means a folder, but Path drops the slash: without this, a file named exports is written."""
    if isinstance(path, str) and path.endswith(("/", os.sep)) and not Path(path).is_dir():
        folder = path.rstrip("/" + os.sep)
        raise FileNotFoundError(f"{path!r} ends in a slash but is not a folder: give a file name, e.g. "
                                f"{folder}/model.onnx (create the folder first with "
                                f"Path({folder!r}).mkdir(parents=True))")


def _check_model_then_path(model: object, path: object, what: str) -> None:
    """The model argument first: export_onnx('m.onnx', model) would otherwise fail deep inside pathlib."""
    if isinstance(model, (str, os.PathLike)) and isinstance(path, nn.Module):
        raise TypeError(f"{what}(model, path): got a path first and a model second (swapped?): call "
                        f"{what}(model, {str(model)!r})")
    _require_module(model, f"{what}()")


def _newest_opset(exporter: str) -> int:
    """The newest opset ``exporter`` writes here: the installed onnx's (dynamo), and the
    TorchScript exporter's own limit (20 in torch 2.13) for "torchscript"."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if exporter == "torchscript":
        from torch.onnx import _constants

        # ONNX_MAX_OPSET (23) is torch.onnx's; above the TorchScript exporter's own limit it only warns
        limit = getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", getattr(_constants, "ONNX_MAX_OPSET", newest))
        newest = min(newest, limit)
    return newest


def _require_onnx(exporter: str) -> None:
    """The packages ``torch.onnx`` needs, checked before a long export that would fail deep inside."""
    needed = ("onnx", "onnxscript") if exporter == "dynamo" else ("onnx",)
    missing = []
    for name in needed:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        other = " (or exporter='torchscript', which needs onnx only)" if missing == ["onnxscript"] else ""
        raise ImportError(f"ONNX export needs {' and '.join(missing)}, which cannot be imported here: "
                          f"pip install {' '.join(missing)}{other}")


def _check_opset(opset: int, exporter: Optional[str] = None) -> int:
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise TypeError(f"opset must be an integer, e.g. {DEFAULT_OPSET}, got {opset!r}")
    newest = _newest_opset(exporter) if exporter else None
    if newest is not None and opset > newest:
        raise ValueError(f"opset {opset} is newer than the {exporter} exporter writes here (at most {newest}, with "
                         f"torch {torch.__version__}); use the default {DEFAULT_OPSET} unless your runtime asks "
                         "for another")
    if opset < MIN_OPSET:
        raise ValueError(
            f"opset {opset} is too old for HRNet: the segmentation models resize bilinearly (fusion and head), and ONNX only has "
            "Resize with coordinate_transformation_mode "
            f"('align_corners', 'half_pixel') from opset {MIN_OPSET}; opsets 9-10 either refuse "
            "align_corners=True or silently compute align_corners=False differently. Use "
            f"opset >= {MIN_OPSET} (default {DEFAULT_OPSET})."
        )
    return opset


EXPORTERS = ("dynamo", "torchscript")
# The dynamo exporter writes 18 and converts HRNet down to 15-17; asked for 14 it cannot convert the Shape ops
# (onnx's version converter has no adapter) and leaves the file at 18. Measured with torch 2.13, onnx 1.23.
DYNAMO_MIN_OPSET = 15


def export_onnx(model: nn.Module, path: PathLike, dynamic: bool = True, opset: int = DEFAULT_OPSET,
                example: Optional[torch.Tensor] = None, fold: bool = True, exporter: str = "dynamo",
                program: Optional[torch.export.ExportedProgram] = None) -> Path:
    """Write ``model`` (an inference copy: eval mode, BatchNorm folded) to an ONNX file; returns the path.

    ``dynamic``: batch, height and width stay symbolic in the file (multiples of 32
    for the nearest-fusion heads, see :func:`size_rule`); the head's size rule is
    stored in the file's metadata, and :func:`run_onnx` checks it.

    ``exporter``: ``"dynamo"`` (torch.onnx's default: ``torch.export``, then
    translation; pass ``program`` from :func:`export_program` to skip tracing
    again) or ``"torchscript"`` (the older tracer: much quicker, deprecated by
    PyTorch). The dynamo exporter writes opset 18 and converts down to 15-17;
    for opsets 11-14 the TorchScript exporter is used.
    """
    _check_model_then_path(model, path, "export_onnx")
    _check_export_flags("export_onnx", dynamic=dynamic, fold=fold)
    # the exporter would run for seconds on a meta model, then fail deep inside onnx_ir without naming the cause
    refuse_meta(_unwrap(model), "export_onnx() has nothing to write into an ONNX file")
    if exporter == "dynamo" and isinstance(opset, int) and opset < DYNAMO_MIN_OPSET:
        exporter = "torchscript"
    opset = _check_opset(opset)
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    _require_onnx(exporter)
    _check_opset(opset, exporter)
    path = check_writable(path)
    copied, example = _export_copy(model, "export_onnx()", fold, example, dynamic)
    if program is not None:
        _check_program(program, copied, dynamic, exporter)
    outputs = _output_names(copied, example)
    shapes = dynamic_shapes(copied) if dynamic else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation and tracer chatter
        if exporter == "dynamo":
            if program is None:
                program = torch.export.export(copied, (example,), dynamic_shapes=shapes)
            _quiet(torch.onnx.export, program, (example,), str(path), input_names=["x"], output_names=outputs,
                   opset_version=opset, dynamic_shapes=shapes, external_data=False, dynamo=True)
        if exporter == "torchscript" or _file_opset(path) != opset:  # dynamo could not convert down
            axes = _dynamic_axes(outputs, copied) if dynamic else None
            with quiet_torchscript_log():
                torch.onnx.export(copied, (example,), str(path), input_names=["x"], output_names=outputs,
                                  opset_version=opset, dynamo=False, dynamic_axes=axes)
    _write_metadata(path, copied, dynamic)
    return path


def _check_program(program: Any, copied: nn.Module, dynamic: bool, exporter: str) -> None:
    """A ``program=`` for export_onnx: of this model (its tensors' names and shapes, folded alike) and as dynamic as
    the file is said to be; else the file would hold another network, or metadata that lies about its sizes."""
    if not isinstance(program, torch.export.ExportedProgram):
        raise TypeError(f"program must be what deploy.export_program(model) returns, got {type(program).__name__}")
    if exporter != "dynamo":
        raise ValueError(f"program= is translated by the dynamo exporter only; exporter={exporter!r} (or an opset "
                         f"below {DYNAMO_MIN_OPSET}) traces the model again: leave program out, or use the dynamo "
                         "exporter")
    theirs = {k: tuple(v.shape) for k, v in program.state_dict.items()}
    ours = {k: tuple(v.shape) for k, v in copied.state_dict().items()}
    if theirs != ours:
        raise ValueError("program= was exported from another model, or with another fold= (its tensors' names or "
                         f"shapes differ from {type(copied).__name__}'s): export it from this model, "
                         "deploy.export_program(model, fold=...) with the same fold")
    user_input = program.graph.find_nodes(op="placeholder", target=program.graph_signature.user_inputs[0])[0]
    symbolic = any(isinstance(side, torch.SymInt) for side in user_input.meta["val"].shape)
    if symbolic != dynamic:
        said = ("dynamic=True, but the program was exported with dynamic=False: its sizes are fixed"
                if dynamic else "dynamic=False, but the program was exported with dynamic=True")
        raise ValueError(f"export_onnx(..., {said}; the file's metadata would say otherwise. Export the program "
                         "and the file with the same dynamic")


@contextlib.contextmanager
def quiet_torchscript_log():
    """Keep the TorchScript ONNX exporter from printing its IR graph when it refuses a model.

    torch 2.13's exporter switches its C++ log on whatever ``verbose`` says (it reads
    ``_jit_is_onnx_log_enabled`` without calling it), so a refusal prints the whole graph to
    the process's stdout before the error, where Python's redirect cannot catch it. The error
    itself is unchanged."""
    with mock.patch.object(torch._C, "_jit_onnx_log", lambda *args: None):
        yield


def _quiet(function, *args, **kwargs):
    """Call ``function`` with its progress lines and the converter's log hidden (raised errors still show)."""
    import io
    import logging

    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return function(*args, **kwargs)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _output_names(model: nn.Module, example: torch.Tensor) -> list[str]:
    with torch.no_grad():
        out = model(example[:1])
    return ["y"] if isinstance(out, torch.Tensor) else [f"y{i}" for i in range(len(out))]


def _dynamic_axes(outputs: list[str], model: nn.Module) -> dict[str, dict[int, str]]:
    axes = {"x": {0: "batch", 2: "height", 3: "width"}}
    for name in outputs:
        axes[name] = {0: "batch"} if isinstance(model, _classifier_types()) else {0: "batch", 2: f"{name}_h", 3: f"{name}_w"}
    return axes


def _classifier_types() -> tuple[type, ...]:
    from .heads import HRNetClassification

    return (HRNetClassification,)


def _file_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _write_metadata(path: Path, model: nn.Module, dynamic: bool) -> None:
    import onnx

    proto = onnx.load(str(path))
    multiple, minimum = size_rule(model)
    if dynamic:
        minimum = export_min_side(model)
    meta = {"hrnet_teach.model": type(model).__name__, "hrnet_teach.size_multiple": str(multiple),
            "hrnet_teach.size_minimum": str(minimum), "hrnet_teach.dynamic": str(dynamic)}
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def onnx_session(path: PathLike, providers: Optional[Sequence[str]] = None, threads: Optional[int] = None):
    """An ONNX Runtime session for ``path`` (CPU unless ``providers`` says otherwise: one name, or a list
    in order of preference); ``threads``: intra-op threads (None: ONNX Runtime's default)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError(f"ONNX Runtime is not installed: pip install onnxruntime ({ORT_GPU_ADVICE})") from None
    providers = _check_providers(providers, ort.get_available_providers())
    threads = _check_threads(threads)
    path = _onnx_file(path)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # ONNX Runtime's own classes (InvalidProtobuf, ...), none of them exported
        if "Protobuf parsing failed" not in str(error):
            raise
        raise ValueError(f"{path} is not an ONNX model file (ONNX Runtime cannot parse it). A PyTorch checkpoint "
                         "(.pth, .pt) loads with hrnet_teach.weights.load_weights; an .onnx file comes from "
                         "hrnet_teach.deploy.export_onnx(model, path)") from None
    _refuse_fallback(session, providers)
    return session


def _refuse_fallback(session: Any, providers: Sequence) -> None:
    """ONNX Runtime falls back to the CPU with only a warning when a GPU provider it lists cannot start
    (its CUDA or cuDNN libraries missing, or built for another CUDA): refuse, or a "CUDA" timing is the CPU's."""
    names = [p[0] if isinstance(p, tuple) else p for p in providers]
    wanted = [p for p in names if p != "CPUExecutionProvider"]
    got = list(session.get_providers())
    if wanted and got[:1] != wanted[:1]:
        fell_to = got[0] if got else "no provider"
        raise RuntimeError(f"ONNX Runtime could not start {wanted[0]} and fell back to {fell_to}: check that "
                           "its CUDA and cuDNN libraries load (ONNX Runtime's warning above names the one missing); "
                           f"{ORT_GPU_ADVICE}")


def _check_threads(threads: Any) -> Optional[int]:
    """None (ONNX Runtime's default) or a positive int; 0.5 or -1 refused here, not by ONNX Runtime's C++."""
    if threads is None:
        return None
    if isinstance(threads, float) and threads < 1:  # positive_int would suggest rounding it, to 0
        raise ValueError(f"threads must be a positive integer (or None for ONNX Runtime's default), got {threads!r}")
    return positive_int("threads", threads)


def _check_providers(providers: Any, available: Sequence[str]) -> list:
    """``providers`` as ONNX Runtime's list: one name is wrapped (a str would be read letter by letter),
    and a provider this onnxruntime lacks is refused (ONNX Runtime would fall back to the CPU in silence)."""
    if not providers:
        return ["CPUExecutionProvider"]
    if isinstance(providers, str):
        providers = [providers]
    if not isinstance(providers, (list, tuple)):
        raise TypeError(f"providers must be a provider's name or a list of them, e.g. ['CUDAExecutionProvider', "
                        f"'CPUExecutionProvider'], got {type(providers).__name__}")
    names = [p[0] if isinstance(p, tuple) and p else p for p in providers]  # (name, options) pairs too
    bad = [p for p in names if not isinstance(p, str)]
    if bad:
        raise TypeError(f"providers must be names such as 'CPUExecutionProvider', got {bad[0]!r}")
    missing = [p for p in names if p not in available]
    if missing:
        gpu = f"; {ORT_GPU_ADVICE}" if "CUDAExecutionProvider" in missing else ""
        raise ValueError(f"providers {missing} are not available in this onnxruntime (it has {list(available)}): "
                         f"choose from those, or leave providers out for the CPU{gpu}")
    return list(providers)


def _onnx_file(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"an ONNX file's path must be a str or Path, got {type(path).__name__}")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: pass the .onnx file in it")
    if not path.is_file():
        raise FileNotFoundError(f"No ONNX file at {path}: write one with hrnet_teach.deploy.export_onnx(model, "
                                f"{str(path)!r}) first, or check the name")
    if path.stat().st_size == 0:  # ONNX Runtime would say only "No graph was found in the protobuf"
        raise ValueError(f"{path} is empty (0 bytes): the export that wrote it was interrupted or failed; export "
                         f"it again with hrnet_teach.deploy.export_onnx(model, {str(path)!r})")
    return path


def run_onnx(session: Any, x: torch.Tensor) -> Union[torch.Tensor, list[torch.Tensor]]:
    """Run an ONNX file (a path or an :func:`onnx_session`) on ``x``; the outputs as tensors,
    shaped as the PyTorch model returns them (one tensor, or a list)."""
    if isinstance(session, (str, os.PathLike)):
        session = onnx_session(session)
    elif not hasattr(session, "get_modelmeta"):
        model = " (a PyTorch model runs as model(x))" if isinstance(session, nn.Module) else ""
        raise TypeError(f"run_onnx takes an .onnx file's path or onnx_session(path), got {type(session).__name__}{model}")
    if not isinstance(x, torch.Tensor):
        numpy = ": torch.from_numpy(x)" if hasattr(x, "__array__") else ""
        raise TypeError(f"x must be a torch.Tensor (B, 3, H, W), got {type(x).__name__}{numpy}")
    _refuse_integer_input(x)
    meta = session.get_modelmeta().custom_metadata_map
    inputs = session.get_inputs()
    shape = tuple(x.shape)
    fixed = inputs[0].shape
    channels = fixed[1] if len(fixed) > 1 and isinstance(fixed[1], int) else 3
    if len(fixed) != len(shape):
        batch = ""
        if len(shape) == len(fixed) - 1:  # (3, H, W) or an image as numpy gives it, (H, W, 3)
            batch = "; " + (image_shape_hint(x) if channels == 3 else "add the batch dimension with x.unsqueeze(0)")
        raise ValueError(f"input {shape}: this file takes {len(fixed)}-dimensional input {tuple(fixed)}{batch}")
    _check_channels(x, channels)  # before the size rules: (1, 64, 64, 3) is no size problem
    if "hrnet_teach.size_multiple" in meta:
        multiple, minimum = int(meta["hrnet_teach.size_multiple"]), int(meta["hrnet_teach.size_minimum"])
        if shape[-2] % multiple or shape[-1] % multiple or min(shape[-2:]) < minimum:
            rule = f"multiples of {multiple} and at least {minimum}" if multiple > 1 else f"at least {minimum}"
            raise ValueError(f"input {shape[-2]}x{shape[-1]}: this file ({meta.get('hrnet_teach.model')}) takes "
                             f"sides that are {rule}")
    if len(fixed) == len(shape) and any(isinstance(f, int) and f != s for f, s in zip(fixed, shape)):
        raise ValueError(f"input {shape}: this file was exported for the fixed shape {tuple(fixed)}; "
                         "export it with dynamic=True to run other sizes")
    array = x.detach().cpu().float().contiguous().numpy()
    outputs = [torch.from_numpy(o) for o in session.run(None, {inputs[0].name: array})]
    return outputs[0] if len(outputs) == 1 else outputs


def _refuse_integer_input(x: torch.Tensor) -> None:
    """Raw pixels (uint8) would be cast to float and run: outputs of the wrong scale, no error at all."""
    if x.is_floating_point():
        return
    raise TypeError(
        f"run_onnx got a {str(x.dtype).replace('torch.', '')} input; the file takes float32. Raw pixels (0-255) "
        "must be converted first: hrnet_teach.assets.to_tensor(image) for a PIL image or H x W x 3 array, or "
        "x.float() / 255, then normalised as the model was trained (e.g. ImageNet mean and std)."
    )


def _check_channels(x: torch.Tensor, channels: int) -> None:
    """Dimension 1 must hold the channels the file takes (grey, RGBA and channels-last images do not)."""
    if x.dim() < 2 or x.shape[1] == channels:
        return
    hint = image_shape_hint(x) if channels == 3 else f"give {channels} channels in dimension 1"
    raise ValueError(f"input {tuple(x.shape)}: this file takes (B, {channels}, H, W); {hint}")


# ------------------------------------------------------------------ comparing
def max_relative_difference(a: Any, b: Any) -> float:
    """max |a - b| / max |a| over every output (tensors or numpy arrays, or lists of them).

    A NaN or an infinity is never read as agreement: where one side has one and the other a number
    the result is ``inf``, and where both have them in the same places (the model itself made them)
    it is ``nan``; a RuntimeWarning says where. (Python's ``max(worst, nan)`` keeps ``worst``: one NaN
    used to hide every other difference and read as 0.0, "identical".)
    """
    a_list, b_list = _output_list(a), _output_list(b)
    if len(a_list) != len(b_list):
        raise ValueError(f"{len(a_list)} outputs vs {len(b_list)}")
    results = [0.0]
    for index, (x, y) in enumerate(zip(a_list, b_list)):
        x, y = x.detach().float().cpu(), y.detach().float().cpu()
        if x.shape != y.shape:
            raise ValueError(f"output shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
        finite_x, finite_y = torch.isfinite(x), torch.isfinite(y)
        if not (finite_x.all() and finite_y.all()):
            results.append(_non_finite_difference(x, y, finite_x, finite_y, index))
        elif x.numel():
            results.append(((x - y).abs().max() / x.abs().max().clamp_min(1e-12)).item())
    if any(math.isnan(r) for r in results) and not any(math.isinf(r) for r in results):
        return float("nan")  # by hand: max() would drop it
    return max(results)


def _non_finite_difference(x: torch.Tensor, y: torch.Tensor, finite_x: torch.Tensor, finite_y: torch.Tensor,
                           index: int) -> float:
    """inf where a NaN/inf on either side meets something else on the other, else (both alike: the model itself
    made them) nan; with a warning that says what each side holds there, and where the first is."""
    same = (x == y) | (x.isnan() & y.isnan())  # an inf equal to itself counts as the same
    bad = ~same & ~(finite_x & finite_y)  # two different numbers are the relative difference's business
    if bad.any():
        where = tuple(int(i) for i in bad.nonzero()[0])
        warnings.warn(f"output {index}: at {int(bad.sum())} place(s) a NaN or infinite value meets something else "
                      f"(first at {where}): the first outputs hold {_what_is_there(x[bad])}, the second "
                      f"{_what_is_there(y[bad])}; the two do not agree, so the difference is inf",
                      RuntimeWarning, stacklevel=3)
        return float("inf")
    count = int((~finite_x).sum())
    warnings.warn(f"both outputs hold the same {count} NaN/infinite value(s) in the same places (output {index}): "
                  "the model itself made them (a NaN input, or diverged weights?), so the difference is nan",
                  RuntimeWarning, stacklevel=3)
    return float("nan")


def _what_is_there(values: torch.Tensor) -> str:
    """What one side holds where the sides disagree: "1 number", "2 NaN", "1 number and 1 infinite"."""
    numbers = int(values.isfinite().sum())
    said = [f"{numbers} number{'s' * (numbers != 1)}" if numbers else "", non_finite_summary(values)]
    return " and ".join(part for part in said if part)


def _output_list(outputs: Any) -> list[torch.Tensor]:
    """One output (a tensor or a numpy array, as ONNX Runtime returns) or a list of them, as tensors."""
    if _is_array(outputs):
        return [torch.as_tensor(outputs)]
    items = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    wrong = [o for o in items if not _is_array(o)]
    if wrong:  # a model, None, a str: torch.as_tensor would fail deep inside, with a bare TypeError
        hint = ": pass model(x)" if isinstance(wrong[0], nn.Module) else ""
        raise TypeError(f"max_relative_difference compares outputs (tensors or arrays, or lists of them); got "
                        f"{type(wrong[0]).__name__}{hint}")
    return [torch.as_tensor(o) for o in items]


def _is_array(value: Any) -> bool:
    return isinstance(value, torch.Tensor) or hasattr(value, "__array__")


__all__ = [
    "fast", "fold_conv_bn", "fold_batchnorm", "conv_bn_pairs", "revert_sync_batchnorm", "inference_copy",
    "size_rule", "check_size", "export_min_side", "example_input", "dynamic_shapes", "export_program", "export_onnx",
    "check_writable", "onnx_session", "run_onnx", "max_relative_difference", "DEFAULT_OPSET", "MIN_OPSET",
]
