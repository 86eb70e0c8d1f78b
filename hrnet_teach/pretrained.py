"""The weights a training run starts from: ``TrainConfig.pretrained`` (``--pretrained``).

The authors' runs start from an ImageNet-pretrained backbone (``MODEL.PRETRAINED``, loaded by
``init_weights``, which keeps the names that match and drops the rest without a word). Here the
file is read and checked against the backbone before any data, the head starts random, one line
says what loaded and what was left out, and a resumed run continues from its checkpoint instead.
"""
from __future__ import annotations

import collections
import dataclasses
import textwrap
from pathlib import Path
from typing import Any, Optional

import torch

from .backbone import HRNet
from .distributed import Distributed, all_reduce_sum
from .train_config import IMAGENET, PathLike, TrainConfig, build_model, pretrained_name
from .weights import (
    LoadReport,
    WeightsUnavailableError,
    compare,
    imagenet_weights_file,
    read_state_dict,
    strip_prefixes,
)

# The end of the offline message for pretrained="imagenet": what to do with a copy fetched by hand
USE_IT = ("pass its path to train, pretrained='path/to/model.safetensors' (--pretrained path/to/model.safetensors); "
          "an ImageNet .pth of the authors' loads the same way")


@dataclasses.dataclass
class Pretrained:
    """The weights a run starts from, read before the data: the tensors, and the words its line names them by."""

    state: dict[str, torch.Tensor]
    what: str


def pretrained_weights(config: TrainConfig, ctx: Distributed, device: torch.device) -> Optional[Pretrained]:
    """``config.pretrained`` read and checked against the model before any data: offline without a cached copy,
    an unreadable file or one that lacks part of the backbone stop the run before a dataset is built or downloaded."""
    if config.pretrained is None:
        return None
    if config.pretrained == IMAGENET:
        path = _imagenet_file(config.variant, ctx, device)
        what = f"timm's ImageNet weights ({Path(path).name})"
    else:
        path = config.pretrained
        what = Path(path).name
    state, _, _ = strip_prefixes(read_state_dict(path)[0])  # 'module.', 'model.' ...; the trainer's loss entries
    _check_backbone(state, config)
    return Pretrained(state, what)


def _imagenet_file(variant: str, ctx: Distributed, device: torch.device) -> str:
    """timm's file in the Hugging Face cache. Under torchrun rank 0 alone downloads, then the others read the cache;
    the sum of the failures is also their barrier, so none waits for a file that will not come."""
    path, error = None, None
    if ctx.is_main:
        try:
            path = imagenet_weights_file(variant, then=USE_IT)
        except WeightsUnavailableError as caught:
            error = caught
    if ctx.enabled:
        here = device if ctx.backend == "nccl" else torch.device("cpu")  # NCCL sums on the GPU, gloo on the CPU
        failed = all_reduce_sum(torch.tensor([float(error is not None)], device=here)).item()
        if failed and not ctx.is_main:
            raise WeightsUnavailableError("rank 0 could not get timm's ImageNet weights; its message says why")
        if not ctx.is_main:
            path = imagenet_weights_file(variant, then=USE_IT)
    if error is not None:
        raise error
    return path


def _check_backbone(state: dict[str, torch.Tensor], config: TrainConfig) -> None:
    """Every backbone tensor of the run's model is in ``state`` with its shape, or a ValueError: the official
    ``init_weights`` would load the few names that match and train the rest from random, without a word."""
    with torch.device("meta"):  # shapes without weights: instant, and the random generator is left alone
        model = build_model(config.variant, config.dataset_classes, config.fusion, config.align_corners, config.head)
        backbone = set(HRNet(model.config).state_dict())
    report = compare(model, state)
    short = [key for key in report.missing if key in backbone]
    short += [key for key, _, _ in report.mismatched if key in backbone]
    if not short:
        return
    shown = pretrained_name(config.pretrained)
    hint = f" {report.hint()}" if report.hint() else ""
    raise ValueError(f"pretrained={shown!r} does not fit the backbone of {config.model_config.name}: {len(short)} of "
                     f"its {len(backbone & set(model.state_dict()))} tensors are not in the file or have another "
                     f"shape ({_parts(short)}), and would start random.{hint} Pass weights of "
                     f"{config.model_config.name} (pretrained='imagenet' gets timm's), or train the variant the "
                     "file was made for")


def _parts(keys: list[str]) -> str:
    """Keys summarised by their top-level module, with counts: ``incre_modules (120), classifier (2)``."""
    counts = collections.Counter(key.split(".", 1)[0] for key in keys)
    return ", ".join(f"{name} ({n})" for name, n in counts.items())


def pretrained_line(report: LoadReport, what: str, head: str) -> str:
    """What a pretrained start loaded and what it left out, as the load report says it, in a few words."""
    other_shape = [key for key, _, _ in report.mismatched]
    whole = "whole model" if not (report.missing or other_shape) else "backbone"
    line = f"pretrained: loaded {report.loaded} of the model's {report.total} tensors from {what}, the {whole}"
    if report.unexpected:
        line += f"; left out {len(report.unexpected)} not in this model: {_parts(report.unexpected)}"
    if other_shape:
        line += f"; left out {len(other_shape)} of another shape: {_parts(other_shape)}"
    if report.missing or other_shape:
        line += f"; the {head} head starts random: {_parts(report.missing + other_shape)}"
    # a few lines of a notebook pane's width rather than one that runs off it
    return textwrap.fill(line + ".", 100, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)


def saved_pretrained(checkpoint: dict[str, Any]) -> Optional[str]:
    """What a checkpoint's run started from; a checkpoint older than the setting started from random weights."""
    return (checkpoint.get("args") or {}).get("pretrained")


def _start_text(name: Optional[str]) -> str:
    if name is None:
        return "random weights (no --pretrained)"
    return f"timm's ImageNet weights (--pretrained {IMAGENET})" if name == IMAGENET else f"{name} (--pretrained {name})"


def resumed_line(resume: PathLike, epoch: int, started_from: Optional[str]) -> str:
    line = f"resumed from {resume} after epoch {epoch}"
    if started_from is None:
        return line
    return f"{line}: its weights, which started from {_start_text(started_from)}, continue; none are loaded again"


def check_same_start(checkpoint: dict[str, Any], config: TrainConfig) -> None:
    """A resumed run continues from its checkpoint's weights and loads no others: another ``pretrained`` would be
    recorded in metrics.json while doing nothing. Leaving it out, or passing the same, resumes."""
    saved, mine = saved_pretrained(checkpoint), pretrained_name(config.pretrained)
    if mine is None or mine == saved:
        return
    raise ValueError(f"{config.resume} was started from {_start_text(saved)}; this run passes --pretrained {mine}: "
                     "a resumed run continues from the checkpoint's weights and loads no others. Leave pretrained "
                     f"out to resume, or drop --resume (resume=None) to start anew from {mine}")
