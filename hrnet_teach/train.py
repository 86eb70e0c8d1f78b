"""Training HRNetV2 for segmentation: one CPU, one GPU (AMP), or several (torchrun).

The recipe follows the authors' segmentation trainer (HRNet-Semantic-Segmentation,
``tools/train.py``): cross-entropy (without the class weights of its Cityscapes loader) that skips
``IGNORE_INDEX`` on logits
upsampled to the mask's size, SGD (momentum 0.9, weight decay 5e-4 as in its Cityscapes files) with the
"poly" learning rate ``lr * (1 - step / steps) ** 0.9``, and mIoU from a
confusion matrix summed over the whole held-out split. SGD is ``--optimizer sgd``;
the default is AdamW (lr 5e-3, weight decay 1e-4) on the same poly schedule, which
trained the shipped checkpoint.

Run it::

    python -m hrnet_teach.train --epochs 6 --out runs/shapes
    torchrun --nproc_per_node 2 -m hrnet_teach.train --epochs 6 --out runs/ddp

The pieces, top to bottom: the loss (:func:`loss_for` picks it from the model),
the scores, :func:`evaluate`, :func:`train_one_epoch`, :func:`save` / :func:`load`,
then :func:`train`, which joins them for the epochs of one :class:`TrainConfig`.
The settings live in ``train_config.py`` (a learner's own data is checked in ``own_data.py``), the
weights a run starts from in ``pretrained.py``, the several-process set-up in ``distributed.py``, the
device check in ``devices.py``, and reading checkpoints back in ``weights.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import json
import math
import os
import random
import shlex
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from ._validate import flag, positive_int, refuse_meta
from .config import VARIANTS, HRNetConfig, StageConfig, get_config  # noqa: F401  (HRNetConfig, StageConfig: re-exported)
from .data import DATASETS, IGNORE_INDEX, make_dataset
from .devices import check_device, devices_here, pick_device  # noqa: F401  (check_device, devices_here: re-exported)
from .distributed import (
    Distributed,
    all_reduce_sum,
    barrier,
    broadcast_buffers,
    close_distributed,
    init_distributed,
    prepare_batchnorm,
    shard,
    unwrap,
    wrap_model,
)
from .heads import HRNetPose, HRNetSegmentation
from .ocr import HRNetOCR, check_label_range, check_target, ocr_loss, ohem_cross_entropy
from .pretrained import (
    Pretrained,
    check_same_start,
    pretrained_line,
    pretrained_weights,
    resumed_line,
    saved_pretrained,
)
from .train_config import (  # noqa: F401  (re-exported: the lessons call T.build_model, T.OPTIMIZERS ...)
    DEFAULT_LR,
    DEFAULT_WEIGHT_DECAY,
    OPTIMIZERS,
    TRAIN_HEADS,
    Criterion,
    PathLike,
    TrainConfig,
    build_model,
)
from .weights import (  # noqa: F401  (re-exported: where they lived before they moved to weights.py)
    SHAPES_CHECKPOINT,
    config_from_dict,
    config_to_dict,
    load_shapes_model,
    load_weights,
    model_from_checkpoint,
    pretrained_or_shipped,
    read_checkpoint,
    shapes_checkpoint_info,
)

POLY_POWER = 0.9
CHECKPOINT_FILE, METRICS_FILE = "checkpoint.pt", "metrics.json"
HISTORY_KEYS = ("loss", "miou", "pixel_acc", "elapsed_s", "lr")


# ------------------------------------------------------------------ the loss
def poly_lr(base_lr: float, step: int, max_steps: int, power: float = POLY_POWER) -> float:
    """The "poly" schedule of the official trainer: ``base_lr * (1 - step / max_steps) ** power``.

    Step 0 uses ``base_lr``; the rate falls smoothly to 0 at ``max_steps``.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    if step < 0:  # would give more than base_lr; past max_steps is 0, the schedule's end
        raise ValueError(f"step must be >= 0 (the first step is 0), got {step}")
    return base_lr * (1 - min(step, max_steps) / max_steps) ** power


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor, align_corners: bool = True,
                      ohem: bool = False) -> torch.Tensor:
    """Cross-entropy over the pixels that have a label.

    The model predicts at 1/4 of the image size; the logits are upsampled
    (bilinear, as the official ``CrossEntropy`` does) to the mask's size, and
    pixels marked ``IGNORE_INDEX`` add nothing to the loss or to its average.
    ``ohem=True``: :func:`hrnet_teach.ocr.ohem_cross_entropy` instead, the official
    ``OhemCrossEntropy`` that ``LOSS.USE_OHEM`` picks for a single-output model (the
    plain HRNetV2-W48 ``*_ohem_*`` Cityscapes, ADE20K and COCO-Stuff files).
    """
    _check_logits(logits)
    check_target(mask, logits, name="mask")
    # "no" is truthy; torch would fail with a list of its overloads
    flag("align_corners", align_corners, none_means="F.interpolate's default")
    ohem = flag("ohem", ohem)
    if logits.shape[-2:] != mask.shape[-2:]:
        logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=align_corners)
    try:
        if ohem:  # the official thresholds (0.9, OHEMKEEP 131072); logits already at the mask's size
            return ohem_cross_entropy(logits.float(), mask, ignore_index=IGNORE_INDEX)
        return F.cross_entropy(logits.float(), mask, ignore_index=IGNORE_INDEX)
    except IndexError:  # the CPU's "Target 7 is out of bounds"; checking every batch first would sync the GPU
        check_label_range(mask[mask != IGNORE_INDEX], logits.shape[1], IGNORE_INDEX)
        raise


def _check_logits(logits: object) -> None:
    """The loss takes one (B, C, H, W) map: say so before check_target blames the mask."""
    if isinstance(logits, (list, tuple)):
        raise TypeError(
            f"segmentation_loss takes one logits tensor, got a {type(logits).__name__} of {len(logits)}: the model "
            "returns several outputs (HRNet-OCR returns [aux, ocr]). Train it with hrnet_teach.ocr.ocr_loss, or "
            "with hrnet_teach.train.loss_for(model), which picks the loss that fits the model."
        )
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a (B, C, H, W) tensor, got {type(logits).__name__}")
    if logits.dim() != 4:
        hint = "; for one image's (C, H, W) logits, add the batch dimension with logits.unsqueeze(0)" if logits.dim() == 3 else ""
        raise ValueError(f"logits must be (B, C, H, W), got shape {tuple(logits.shape)}{hint}")


def loss_for(model: nn.Module, ohem: bool = False) -> Criterion:
    """The training loss for ``model``'s output: ``loss(output, mask) -> scalar``.

    The one place a head chooses its loss. HRNetV2 and the V1 readout output one
    logits map: :func:`segmentation_loss`, resized as the model itself resizes.
    A head whose forward returns several outputs (HRNet-OCR: ``[aux, ocr]``)
    adds its own branch here; ``TrainConfig.criterion`` overrides this for one run.
    ``ohem``: the official ``LOSS.USE_OHEM``, which ``tools/train.py`` honours for any model:
    OHEM on the single output of HRNetV2, on the last output (the OCR term) of HRNet-OCR.
    """
    if isinstance(unwrap(model), HRNetOCR):  # [aux, ocr], weighted 0.4 and 1 as the official configs
        return functools.partial(ocr_loss, ignore_index=IGNORE_INDEX, align_corners=unwrap(model).align_corners, ohem=ohem)
    return functools.partial(segmentation_loss, align_corners=resize_align_corners(unwrap(model)), ohem=ohem)


def _own_criterion(criterion: Criterion, head: str) -> Criterion:
    """A learner's loss, called as the package's: what it is given said when it fails, or returns no scalar (torch
    said only 'size mismatch' or 'must be Tensor, not list', from inside cross_entropy)."""
    given = ("[aux, ocr], two logits maps at 1/4 of the image's size" if head == "ocr" else
             "the logits, B x C x H/4 x W/4 (a quarter of the image's size)")

    def loss(output, masks):
        try:
            value = criterion(output, masks)
        except (RuntimeError, TypeError, ValueError, IndexError, AttributeError) as error:
            raise ValueError(f"your criterion raised {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. "
                             f"It is called as criterion(output, mask) with the model's output, {given}, and the "
                             "mask at the image's full size, B x H x W (255: ignored): enlarge the logits first, "
                             "as hrnet_teach.train.segmentation_loss does") from error
        if not (isinstance(value, torch.Tensor) and value.numel() == 1 and value.requires_grad):
            raise ValueError(f"your criterion returned {type(value).__name__}"
                             + (f" of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else "")
                             + ": it must return one number as a tensor on the output's graph, the loss that "
                             "backward() differentiates (a per-pixel loss: take its mean)")
        return value

    return loss


def resize_align_corners(model: nn.Module) -> bool:
    """How to enlarge this model's logits to the mask: as its own bilinear fusion does
    (HRNetSegmentation), or without corner alignment (the V1 readout, which fuses by nearest)."""
    return model.align_corners if isinstance(model, (HRNetSegmentation, HRNetOCR)) else False


def final_logits(output: Any) -> torch.Tensor:
    """The logits to score: the output itself, or the last of several (the official OCR trainer scores its last)."""
    return output[-1] if isinstance(output, (list, tuple)) else output


# ------------------------------------------------------------------ the scores
def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``cm[t, p]`` counts pixels of true class t predicted as p; ignored pixels are left out."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)  # numpy arrays too
    num_classes = positive_int("num_classes", num_classes)
    if pred.shape != target.shape:
        raise ValueError(_shape_mismatch(pred, target))
    if pred.is_floating_point() or pred.is_complex():  # .long() would truncate them all to a class, silently
        raise TypeError(f"pred holds {pred.dtype} values, not class indices: pass predicted classes, "
                        "logits.argmax(1)")
    keep = target != IGNORE_INDEX
    labels, predicted = target[keep].long(), pred[keep].long()
    _check_class_ranges(labels, predicted, num_classes)
    index = labels * num_classes + predicted
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def _check_class_ranges(labels: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> None:
    """Labels and predictions are classes 0 .. num_classes - 1 at the labelled pixels (the ignored ones are never
    counted). A class beyond them would not fail: ``target * num_classes + pred`` spills into the next row's cells."""
    if labels.numel() == 0:
        return
    # one wait for the GPU for all four ends (every evaluation batch passes here)
    lo_label, hi_label, low, high = torch.stack([labels.min(), labels.max(), predicted.min(), predicted.max()]).tolist()
    if lo_label < 0 or hi_label >= num_classes:
        check_label_range(labels, num_classes, IGNORE_INDEX)  # the losses' message for the same mistake
    if low < 0 or high >= num_classes:
        raise ValueError(f"pred must hold class indices 0 to {num_classes - 1} (num_classes={num_classes}), got values "
                         f"from {low} to {high}: is the model built for more classes than num_classes, or are "
                         "these not the argmax of its logits?")


def _shape_mismatch(pred: torch.Tensor, target: torch.Tensor) -> str:
    if pred.dim() == target.dim() + 1:  # logits (B, C, H, W) for masks (B, H, W)
        return (f"pred has shape {tuple(pred.shape)}, one dimension more than the target's {tuple(target.shape)}: "
                "pass predicted classes, logits.argmax(1), not the logits")
    return f"pred and target must have the same shape (one class per pixel), got {tuple(pred.shape)} and {tuple(target.shape)}"


def scores(cm: torch.Tensor) -> dict[str, Any]:
    """mIoU and pixel accuracy from a confusion matrix.

    IoU of class c = true positives / (pixels labelled c + pixels predicted c - true positives);
    mIoU averages it over the classes that occur (in the labels or the predictions).
    """
    cm = _square_matrix(cm).double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    iou = tp / union.clamp(min=1)
    present = union > 0
    miou = iou[present].mean().item() if present.any() else 0.0
    pixel_acc = (tp.sum() / cm.sum().clamp(min=1)).item()
    per_class = [round(v, 6) if p else None for v, p in zip(iou.tolist(), present.tolist())]
    return {"miou": miou, "pixel_acc": pixel_acc, "per_class_iou": per_class}


def _square_matrix(cm: object) -> torch.Tensor:
    """``cm`` as a tensor (arrays and nested lists too), if it is a (num_classes, num_classes) matrix."""
    try:
        matrix = torch.as_tensor(cm)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"scores takes a confusion matrix (a tensor, array or nested list), got {type(cm).__name__}") from None
    if matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"scores takes a square (num_classes, num_classes) confusion matrix, as confusion_matrix "
                         f"returns, got shape {tuple(matrix.shape)}")
    return matrix


def num_classes_of(model: nn.Module) -> int:
    """How many classes a segmentation model predicts (its classifier's output channels)."""
    if isinstance(model, HRNetSegmentation):
        return model.last_layer[-1].out_channels
    if isinstance(model, HRNetPose):  # the V1 readout used as a per-pixel classifier
        return model.final_layer.out_channels
    if isinstance(model, HRNetOCR):
        return model.cls_head.out_channels
    raise TypeError(f"evaluate expects a segmentation model (HRNetSegmentation), got {type(model).__name__}")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader_or_dataset: Union[DataLoader, Dataset],
    device: Union[str, torch.device, None] = None,
    batch_size: int = 64,
    amp: bool = False,
    reduce: bool = True,
) -> dict[str, Any]:
    """mIoU and pixel accuracy of ``model`` on a dataset (or a DataLoader of (image, mask)).

    ``device``: where the model is (default: where its weights are).
    Predictions are the argmax of logits upsampled to the mask size. In a
    distributed run every process passes its own share of the data and the
    confusion matrices are summed (``all_reduce``), so all ranks return the
    same numbers: the score of the whole split (``reduce=False`` keeps this
    process's own count, e.g. when only rank 0 evaluates).
    """
    _check_evaluate_args(model, loader_or_dataset)
    batch_size = positive_int("batch_size", batch_size)
    core = unwrap(model)
    num_classes = num_classes_of(core)
    refuse_meta(core, "it cannot be evaluated on real data")
    device = next(core.parameters()).device if device is None else pick_device(device)
    loader = loader_or_dataset
    if isinstance(loader_or_dataset, Dataset):
        loader = DataLoader(loader_or_dataset, batch_size=batch_size, shuffle=False)
    was_training = core.training
    core.eval()
    try:
        cm, seen = _confusion_over(core, loader, device, amp, num_classes)
    finally:
        core.train(was_training)
    if reduce:  # every process takes part in both sums, also one whose share of the split is empty
        all_reduce_sum(cm)
        seen = int(all_reduce_sum(torch.tensor(seen, dtype=torch.long, device=device)).item())
    if seen == 0:  # mIoU 0.0 would read as a model that gets everything wrong
        raise ValueError("evaluate got an empty dataset (0 images): nothing to score; check the split or the filter "
                         "that made it")
    return scores(cm.cpu())


def _confusion_over(core: nn.Module, loader, device: torch.device, amp: bool, num_classes: int) -> tuple[torch.Tensor, int]:
    """(the confusion matrix summed over ``loader``, how many images it held)."""
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    seen = 0
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        with _autocast(device, amp):
            logits = final_logits(core(_memory_format(images, core)))
        logits = F.interpolate(logits.float(), size=masks.shape[-2:], mode="bilinear", align_corners=resize_align_corners(core))
        cm += confusion_matrix(logits.argmax(1), masks, num_classes)
        seen += len(images)
    return cm, seen


def _check_evaluate_args(model: object, data: object) -> None:
    """The model first, then its data: say which is wrong before torch finds out deep inside."""
    if isinstance(model, (Dataset, DataLoader)) or (isinstance(data, nn.Module) and not isinstance(model, nn.Module)):
        raise TypeError(f"evaluate(model, dataset): got a {type(model).__name__} as the model (swapped?)")
    if not isinstance(model, nn.Module):
        raise TypeError(f"evaluate's model must be a segmentation model (an nn.Module), got {type(model).__name__}")
    if isinstance(data, torch.Tensor):
        raise TypeError("evaluate takes a Dataset or DataLoader of (image, mask) pairs, got a tensor: it needs the "
                        "masks too; pass the dataset")
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        # iterating it would unpack the image's rows as images: "too many values to unpack" or a wrong score
        what = "one item" if data[0].dim() == 3 else "one batch"
        raise TypeError(f"evaluate takes a Dataset or DataLoader of (image, mask) pairs, got a {type(data).__name__} "
                        f"({what}): pass the dataset (or a list of batches, [(images, masks)])")


# ------------------------------------------------------------------ mixed precision, memory layout
def _autocast(device: torch.device, amp: bool):
    # Mixed precision only on CUDA: float16 matmuls there are fast and GradScaler keeps
    # small gradients from vanishing; on CPU autocast would only slow this model down.
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


def _memory_format(x: torch.Tensor, model: nn.Module) -> torch.Tensor:
    # The images follow the model's layout: channels-last (NHWC) weights only pay off with
    # NHWC activations (cuDNN's tensor-core kernels); see TrainConfig.channels_last.
    weight = next((m.weight for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if weight is not None and weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last) \
            and not weight.is_contiguous():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _grad_scaler(enabled: bool):
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def _run_device(config: TrainConfig, ctx: Distributed) -> tuple[torch.device, bool]:
    """This process's device, and whether AMP stays on (CUDA only, said once when it does not)."""
    device = torch.device("cuda", ctx.local_rank) if ctx.enabled and ctx.backend == "nccl" else pick_device(config.device)
    amp = config.amp
    if amp and device.type != "cuda":
        if ctx.is_main and config.progress:
            print(f"--amp: mixed precision is for CUDA; on {device.type} this run stays in float32.")
        amp = False
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
    return device, amp


# ------------------------------------------------------------------ one epoch
def sum_dtype(device: Union[str, torch.device]) -> torch.dtype:
    """float64 for the epoch's loss sum (exact enough over many steps), float32 on Apple's MPS, which has no float64."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


# The advice that ends a diverged run's message when train_one_epoch runs on its own (train names the run's --lr)
DIVERGED_ADVICE = "Lower the learning rate and start again."


def train_one_epoch(
    net: nn.Module,
    loader: DataLoader,
    opt: torch.optim.Optimizer,
    loss_fn: Criterion,
    device: torch.device,
    lr_at: Callable[[int], float],
    scaler=None,
    amp: bool = False,
    desc: str = "",
    show: bool = False,
    fresh: bool = False,
    advice: str = DIVERGED_ADVICE,
) -> float:
    """One pass over ``loader``; returns the mean training loss over every process's batches.

    ``lr_at(step)``: the learning rate for this epoch's ``step`` (the poly schedule).
    ``net`` is the model or its DistributedDataParallel wrapper; ``scaler`` a GradScaler
    (AMP on CUDA; None: plain float32 steps). A loss or weight that is no longer finite
    stops the run with a FloatingPointError: ``fresh`` (no update ran before this epoch)
    lets it blame a bad first loss on the data, and ``advice`` ends it when the weights diverged.
    """
    scaler = _grad_scaler(False) if scaler is None else scaler
    net.train()
    losses = []  # each step's loss, left on the device: reading it every step would wait for the GPU
    bar = _progress(loader, show, desc)
    core = unwrap(net)
    for step, (images, masks) in enumerate(bar):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        images = _memory_format(images.to(device, non_blocking=True), core)
        masks = masks.to(device, non_blocking=True)
        with _autocast(device, amp):
            output = net(images)
        loss = loss_fn(output, masks)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(loss.detach())
        if show and step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{opt.param_groups[0]['lr']:.2g}")
    mean, first_bad = _epoch_loss(losses, device)
    problem, diverged = _why_not_finite(mean, first_bad, len(losses), lr_at, core, scaler.is_enabled(), fresh)
    if problem is None:
        return mean
    if diverged:
        problem = f"{problem} {advice}"
    where = f"{desc}: " if desc else ""
    raise FloatingPointError(where + problem)


def _epoch_loss(losses: list[torch.Tensor], device: torch.device) -> tuple[float, int]:
    """(the mean loss over every process's steps, this process's first step whose loss is not finite or -1),
    read from the device together: one wait for the GPU per epoch."""
    total = sum_dtype(device)
    steps = torch.stack(losses).to(total) if losses else torch.zeros(0, dtype=total, device=device)
    sums = all_reduce_sum(torch.stack([steps.sum(), torch.tensor(float(len(losses)), dtype=total, device=device)]))
    # a True after the last step: argmax finds the first non-finite loss, or len(losses) when all are finite
    bad = torch.cat([~steps.isfinite(), torch.ones(1, dtype=torch.bool, device=device)])
    mean, first = torch.stack([sums[0] / sums[1], bad.to(total).argmax().to(total)]).tolist()
    return mean, int(first) if first < len(losses) else -1


def _why_not_finite(mean: float, first_bad: int, steps: int, lr_at: Callable[[int], float], model: nn.Module,
                    amp: bool, fresh: bool) -> tuple[Optional[str], bool]:
    """Why the epoch's loss or weights are not finite (None: all are), and whether the weights diverged, the
    cause a lower learning rate cures. Trained on, the run would save NaN weights and score a model that
    predicts class 0 everywhere. Every process sees the same summed loss, so all stop together."""
    bad_weight = _first_non_finite_weight(model)
    if math.isfinite(mean):
        if bad_weight is None:
            return None, False
        return (f"the weights hold NaN or inf values after the last step ({bad_weight} first), although every "
                "loss was finite: they have diverged.", True)
    value = "nan" if math.isnan(mean) else "inf"
    if fresh and first_bad == 0:  # no update has run: the weights are the initial ones
        return _bad_first_batch(value, amp), False
    at = f"at step {first_bad + 1} of {steps} (lr {lr_at(first_bad):.3g})" if first_bad >= 0 else "in another process"
    if amp and bad_weight is None:  # GradScaler skips a step whose gradients are not finite: the weights are fine
        return (f"the loss became {value} {at} under --amp while every weight stayed finite: the float16 forward "
                "overflowed (GradScaler skipped that step). Run without --amp (amp=False).", False)
    return f"the loss became {value} {at}: the weights have diverged.", True


def _bad_first_batch(value: str, amp: bool) -> str:
    """A loss that is not finite before any update: the initial weights made it, so the learning rate did not."""
    if amp:
        return (f"the loss was {value} on the first batch, before any update: the float16 forward (--amp) overflowed, "
                "or the data or the loss function made it, not the learning rate. Run without --amp (amp=False) "
                "to tell which.")
    return (f"the loss was {value} on the first batch, before any update: the data or the loss function made it, "
            "not the learning rate. Check that batch's images and masks for NaN or inf values, and the loss on them.")


def _first_non_finite_weight(model: nn.Module) -> Optional[str]:
    """The name of the first parameter that holds NaN or inf, or None: one wait for the GPU."""
    params = list(model.named_parameters())
    if not params:
        return None
    finite = torch.stack([p.detach().isfinite().all() for _, p in params])
    if bool(finite.all()):
        return None
    return params[int((~finite).nonzero()[0])][0]


# ------------------------------------------------------------------ save / load
def checkpoint_of(model: nn.Module, opt, scaler, epoch: int, config: TrainConfig, metrics: dict, settings: dict) -> dict[str, Any]:
    """What ``checkpoint.pt`` holds: plain tensors and data, so ``weights_only=True`` reads it back.
    The weights are CPU copies: a GPU run's checkpoint must load with a plain torch.load on a machine
    without CUDA (the optimizer state may stay on the GPU: a resume moves it to the parameters' device)."""
    return {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
        "epoch": epoch, "config": config_to_dict(model.config), "num_classes": num_classes_of(model),
        "align_corners": config.align_corners, "head": config.head, "metrics": metrics, "args": settings,
        "command": config.command,
    }


def save(checkpoint: dict[str, Any], out_dir: PathLike) -> None:
    """Write ``out_dir/checkpoint.pt`` and ``out_dir/metrics.json`` (the latter atomically)."""
    out_dir = Path(out_dir)
    torch.save(checkpoint, out_dir / CHECKPOINT_FILE)
    _atomic_write_json(out_dir / METRICS_FILE, checkpoint["metrics"])


def load(path: PathLike, model: nn.Module, opt: torch.optim.Optimizer, scaler=None) -> tuple[int, dict[str, list]]:
    """Resume: load a ``checkpoint.pt`` into ``model``, ``opt`` (and ``scaler``, if given and saved).

    Returns ``(epochs done, history)``: the per-epoch lists of the metrics so far.
    """
    return _restore(read_checkpoint(path), path, model, opt, scaler)


def _restore(checkpoint: dict[str, Any], path: PathLike, model: nn.Module, opt: torch.optim.Optimizer,
             scaler=None) -> tuple[int, dict[str, list]]:
    """:func:`load` on a checkpoint already read (a run reads it once, to check it before any data)."""
    _check_resumable(checkpoint, path, opt)
    load_weights(model, checkpoint, strict=True, verbose=False)
    opt.load_state_dict(checkpoint["optimizer"])
    if scaler is not None and "scaler" in checkpoint:
        scaler.load_state_dict(checkpoint["scaler"])
    old = checkpoint.get("metrics", {})
    return int(checkpoint["epoch"]), {k: list(old.get(k, [])) for k in HISTORY_KEYS}


def _check_resumable(checkpoint: dict[str, Any], path: PathLike, opt: torch.optim.Optimizer) -> None:
    """A run resumes from a training checkpoint only, with the optimizer it was trained with."""
    if "optimizer" not in checkpoint or "epoch" not in checkpoint:
        raise ValueError(
            f"{path} cannot resume a run: it has no optimizer state. "
            f"It is a bare state dict or an inference-only copy (--export, the shipped checkpoint). Resume from the "
            f"{CHECKPOINT_FILE} in a run's --out folder, or drop --resume to train from scratch."
        )
    saved = (checkpoint.get("args") or {}).get("optimizer")
    mine = {"AdamW": "adamw", "SGD": "sgd"}.get(type(opt).__name__)
    if saved and mine and saved != mine:
        raise ValueError(f"{path} was trained with optimizer {saved!r}, this run uses {mine!r}: its optimizer state "
                         f"does not fit. Resume with --optimizer {saved} (optimizer={saved!r}).")


def _resume_checkpoint(config: TrainConfig) -> Optional[dict[str, Any]]:
    """The --resume checkpoint, read once and checked against this run before any data or model:
    a checkpoint of another model would fail as 40 lines of missing keys, one that already did
    every epoch would train nothing and exit as if it had."""
    if config.resume is None:
        return None
    checkpoint = read_checkpoint(config.resume)
    _check_resumable(checkpoint, config.resume, None)
    _check_same_model(checkpoint, config)
    check_same_start(checkpoint, config)
    done = int(checkpoint["epoch"])
    if done >= config.epochs:
        raise ValueError(f"{config.resume} already did {done} epoch(s); --epochs counts all epochs, so pass --epochs "
                         f"{done + 1} or more (epochs={done + 1}) to continue, or drop --resume to train anew")
    return checkpoint


def _flag(name: str, value: Any) -> str:
    """A setting as the command line spells it (fusion has only its --no-fusion)."""
    if name == "fusion":
        return "no --no-fusion" if value else "--no-fusion"
    return f"--{name} {value}"


def _check_same_model(checkpoint: dict[str, Any], config: TrainConfig) -> None:
    """The checkpoint's variant, head, fusion and dataset (those it stores) are this run's, or say which differ."""
    args = checkpoint.get("args") or {}
    old = checkpoint.get("config") if isinstance(checkpoint.get("config"), dict) else {}
    saved = {"variant": args.get("variant", old.get("name")), "head": args.get("head", checkpoint.get("head")),
             "fusion": args.get("fusion", old.get("fusion")), "dataset": args.get("dataset")}  # dataset: the classes
    mine = {"variant": config.model_config.name, "head": config.head, "fusion": config.fusion, "dataset": config.dataset_name}
    if config.own_data is not None or saved["dataset"] not in (None, *DATASETS):  # data of one's own: no --dataset
        _check_same_data(checkpoint, config, saved.pop("dataset"))
        del mine["dataset"]
    differ = [name for name, value in saved.items() if value is not None and value != mine[name]]
    if not differ:
        return
    trained = [_flag(name, value) for name, value in saved.items() if value is not None and value is not True]  # fusion on: the default
    raise ValueError(f"{config.resume} was trained with {' '.join(trained)}; this run uses "
                     f"{' '.join(_flag(name, mine[name]) for name in differ)}: resume with the same flags "
                     f"({' '.join(_flag(name, saved[name]) for name in differ)}), or drop --resume")


def _check_same_data(checkpoint: dict[str, Any], config: TrainConfig, saved: Optional[str]) -> None:
    """A run on data of one's own, or from a checkpoint of such a run: the same dataset (by its class name) and the
    same number of classes, or say what each was."""
    classes = checkpoint.get("num_classes")
    if (saved is None or saved == config.dataset_name) and (classes is None or classes == config.dataset_classes):
        return
    raise ValueError(f"{config.resume} was trained on {_data_text(saved, classes)}; this run trains on "
                     f"{_data_text(config.dataset_name, config.dataset_classes)}: a run resumes on the data it was "
                     "trained on, whose classes its head predicts. Resume with that dataset, or drop --resume "
                     "(resume=None) to train anew")


def _data_text(name: Optional[str], classes: Optional[int]) -> str:
    """``--dataset shapes (4 classes)`` or ``your FolderSeg (3 classes)``."""
    text = "a dataset it does not name" if name is None else f"--dataset {name}" if name in DATASETS else f"your {name}"
    return text if classes is None else f"{text} ({classes} classes)"


def load_model_weights(model: nn.Module, source: Union[PathLike, dict], strict: bool = True) -> nn.Module:
    """Load a state dict or a training checkpoint into ``model`` with the weights module."""
    load_weights(model, source, strict=strict, verbose=False)
    return model


def export_checkpoint(
    checkpoint: dict[str, Any], path: PathLike, held_out: Optional[Dataset] = None, half: bool = True
) -> dict[str, Any]:
    """Write an inference-only copy: no optimizer, float weights stored as float16 (half the size).

    Loading casts them back to the model's float32, so it still loads strictly.
    With ``held_out``, the copy is scored on it, on the CPU, and the score is
    stored in its metrics as ``shipped_miou`` / ``shipped_pixel_acc`` (what the
    tests hold it to). Returns the copy's metrics. The weights are stored on the CPU, wherever they were
    trained, so a plain torch.load reads the file on a machine without CUDA.
    """
    state = {k: v.detach().to("cpu", torch.float16 if half and v.is_floating_point() else v.dtype, copy=True)
             for k, v in checkpoint["model"].items()}
    small = {k: v for k, v in checkpoint.items() if k not in ("optimizer", "scaler", "model")}
    small["model"] = state
    small["storage_dtype"] = "float16" if half else "float32"
    small["metrics"] = dict(checkpoint.get("metrics", {}))
    if held_out is not None:
        result = evaluate(model_from_checkpoint(small), held_out, "cpu", reduce=False)
        small["metrics"].update(shipped_miou=result["miou"], shipped_pixel_acc=result["pixel_acc"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(small, path)
    return small["metrics"]


def _atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    tmp.replace(path)


# ------------------------------------------------------------------ a run
@dataclasses.dataclass
class _Run:
    """What the epochs of one run share."""

    config: TrainConfig
    ctx: Distributed
    device: torch.device
    amp: bool
    train_loader: DataLoader
    val_loader: DataLoader
    val_set: Dataset
    model: nn.Module
    net: nn.Module
    opt: torch.optim.Optimizer
    scaler: Any
    loss_fn: Criterion
    settings: dict[str, Any]
    start_epoch: int = 0
    history: dict[str, list] = dataclasses.field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})

    @property
    def show(self) -> bool:
        return self.config.progress and self.ctx.is_main


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _datasets(config: TrainConfig, ctx: Distributed) -> tuple[Dataset, Dataset]:
    """(train set, val set): the learner's own, or the named ones, which every process builds alike
    (a real dataset is downloaded by rank 0 alone)."""
    if config.own_data is not None:
        return config.own_data.train, config.own_data.val
    if ctx.enabled and not ctx.is_main:
        barrier(ctx)  # wait while rank 0 downloads
    train_set = make_dataset(config.dataset, "train", config.train_size, config.image_size, seed=config.seed, root=config.data_root, download=True)
    val_set = make_dataset(config.dataset, "val", config.val_size, config.image_size, seed=config.seed, root=config.data_root, download=True)
    if ctx.enabled and ctx.is_main:
        barrier(ctx)
    return train_set, val_set


def _collate(batch: list) -> Any:
    """torch's default_collate, after a look at the images' sizes: check_own_data reads only a split's first, middle
    and last items, and torch's own words for a stray size ('stack expects each tensor to be equal size') name
    neither the cause nor the fix."""
    shapes = [tuple(item[0].shape) for item in batch if isinstance(item, (tuple, list)) and item
              and isinstance(item[0], torch.Tensor)]
    if len(set(shapes)) > 1:
        shown = " and ".join(" x ".join(map(str, shape)) for shape in dict.fromkeys(shapes))
        raise ValueError(f"one batch holds images of {shown}: a DataLoader stacks a batch's images into one tensor, so "
                         "every item of a split must have one size (the check before training reads only the first, "
                         "middle and last items); resize them in your dataset's __getitem__")
    return default_collate(batch)


def _loaders(config: TrainConfig, ctx: Distributed, device: torch.device):
    """(train loader, val loader, val set): a DistributedSampler splits the work between processes."""
    train_set, val_set = _datasets(config, ctx)
    workers = (2 if device.type == "cuda" else 0) if config.workers is None else config.workers
    # pinned batches let the non_blocking copies to the GPU overlap with its work (unpinned, they wait)
    common = dict(num_workers=workers, persistent_workers=workers > 0, pin_memory=device.type == "cuda",
                  collate_fn=_collate)
    if ctx.enabled:
        sampler = torch.utils.data.DistributedSampler(train_set, ctx.world_size, ctx.rank, shuffle=True, seed=config.seed)
        train_loader = DataLoader(train_set, config.batch_size, sampler=sampler, drop_last=True, **common)
    else:
        generator = torch.Generator().manual_seed(config.seed)
        train_loader = DataLoader(train_set, config.batch_size, shuffle=True, drop_last=True, generator=generator,
                                  **common)
    if len(train_loader) == 0:
        raise ValueError(_smaller_than_a_batch(config, ctx, len(train_set)))
    # persistent workers: where workers are spawned (Windows, macOS) a fresh set each epoch costs seconds
    val_loader = DataLoader(shard(val_set, ctx), batch_size=max(config.batch_size, 32), **common)
    return train_loader, val_loader, val_set


def _smaller_than_a_batch(config: TrainConfig, ctx: Distributed, length: int) -> str:
    """A training split too small for one batch (an incomplete last batch is dropped): what to change."""
    batch = f"one batch ({config.batch_size} x {ctx.world_size} processes)"
    if config.own_data is None:
        return f"train_size {config.train_size} is smaller than {batch}: raise --train-size or lower --batch-size"
    most = -(-length // ctx.world_size)  # what one process's share of the epoch holds
    return (f"your training set holds {length} items, fewer than {batch}, and an incomplete batch is dropped: "
            f"lower batch_size to {most} or less, or add items")


def _make_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":  # the official settings
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def _check_outputs(config: TrainConfig) -> None:
    """Refuse, before any training, an --out that is a file, an --export that is a folder, and either
    under a file (``afile/m.pt``): found at the end, that would throw the whole run away."""
    if config.out is not None and Path(config.out).is_file():
        raise FileExistsError(f"out={str(config.out)!r} is a file: out is the folder for {CHECKPOINT_FILE} and "
                              f"{METRICS_FILE}; give a folder name, e.g. runs/shapes")
    if config.export is not None:
        _check_export(config.export)
    for name, path in (("out", config.out), ("export", config.export)):
        blocker = None if path is None else _file_in_the_way(Path(path).parent)
        if blocker is not None:
            raise NotADirectoryError(f"{name}={str(path)!r}: {str(blocker)!r} is a file, so {str(path)!r} cannot be "
                                     "written: choose another folder")


def _check_export(export: PathLike) -> None:
    """--export is the file of one small PyTorch checkpoint: not a folder, not a folder-to-be, not an ONNX file."""
    path = Path(export)
    if path.is_dir():
        raise IsADirectoryError(f"export={str(export)!r} is a folder: give a file name, e.g. {path / 'model.pt'}")
    if isinstance(export, str) and export.endswith(("/", os.sep)):  # Path drops the slash: a file named as the folder
        raise ValueError(f"export={export!r} ends in a slash but is not a folder: give a file name such as "
                         f"{path / 'model.pt'}")
    if path.suffix.lower() == ".onnx":  # torch.save under that name: neither ONNX nor a loadable-looking .pt
        raise ValueError(f"--export writes a PyTorch checkpoint (.pt), got export={str(export)!r}; for an ONNX file "
                         f"export the trained model with hrnet_teach.deploy.export_onnx(model, {path.name!r}) "
                         f"(lesson 10), and give --export a .pt name such as {str(path.with_suffix('.pt'))!r}")


def _file_in_the_way(folder: Path) -> Optional[Path]:
    """The first existing path at or above ``folder``, if it is not a folder (so nothing can be made below it)."""
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def _start(config: TrainConfig, ctx: Distributed) -> _Run:
    """Device, data, model, optimizer (and the resumed state): everything before the first epoch."""
    _check_outputs(config)
    checkpoint = _resume_checkpoint(config)
    device, amp = _run_device(config, ctx)
    # a resumed run continues from its checkpoint's weights: the pretrained ones are neither fetched nor loaded
    pretrained = pretrained_weights(config, ctx, device) if checkpoint is None else None
    _seed_everything(config.seed)
    train_loader, val_loader, val_set = _loaders(config, ctx, device)
    model = _model(config, device, pretrained, config.progress and ctx.is_main)
    opt = _make_optimizer(config.optimizer, model, config.base_lr, config.decay)
    scaler = _grad_scaler(amp)
    settings = config.settings(device, amp, ctx.world_size, ctx.backend)
    run = _Run(config, ctx, device, amp, train_loader, val_loader, val_set, model, model, opt, scaler,
               _own_criterion(config.criterion, config.head) if config.criterion else loss_for(model, config.ohem),
               settings)
    if checkpoint is not None:
        run.start_epoch, run.history = _restore(checkpoint, config.resume, model, opt, scaler if amp else None)
        settings["pretrained"] = saved_pretrained(checkpoint)  # what the weights descend from, not this call's
        if run.show:
            print(resumed_line(config.resume, run.start_epoch, settings["pretrained"]))
    run.model = prepare_batchnorm(model, ctx)
    run.net = wrap_model(run.model, ctx, device)
    if config.out is not None and ctx.is_main:
        Path(config.out).mkdir(parents=True, exist_ok=True)
    return run


def _model(config: TrainConfig, device: torch.device, pretrained: Optional[Pretrained], show: bool) -> nn.Module:
    """The run's model on its device: random weights, then ``pretrained``'s where they fit (said in one line)."""
    model = build_model(config.variant, config.dataset_classes, config.fusion, config.align_corners, config.head)
    if pretrained is not None:
        report = load_weights(model, pretrained.state, strict=False, verbose=False)
        if show:
            print(pretrained_line(report, pretrained.what, config.head))
    model = model.to(device)
    if config.use_channels_last(device):
        model = model.to(memory_format=torch.channels_last)
    return model


def _epoch(run: _Run, epoch: int, started: float, elapsed_before: float) -> dict[str, Any]:
    """Train one epoch, evaluate, record; rank 0 saves. Returns the metrics so far."""
    config, steps = run.config, len(run.train_loader)
    if isinstance(run.train_loader.sampler, torch.utils.data.DistributedSampler):
        run.train_loader.sampler.set_epoch(epoch)  # a different shuffle each epoch, the same on every rank
    loss = train_one_epoch(
        run.net, run.train_loader, run.opt, run.loss_fn, run.device,
        lambda step: poly_lr(config.base_lr, epoch * steps + step, config.epochs * steps),
        run.scaler, run.amp, f"epoch {epoch + 1}/{config.epochs}", run.show,
        fresh=epoch == 0, advice=_after_divergence(run, epoch),  # epoch 0 of a run: no update has run before it
    )
    if run.ctx.enabled:
        broadcast_buffers(run.model)  # plain BatchNorm: evaluate rank 0's running statistics everywhere
    result = evaluate(run.model, run.val_loader, run.device, amp=run.amp)
    elapsed = elapsed_before + time.perf_counter() - started
    for key, value in zip(HISTORY_KEYS, (loss, result["miou"], result["pixel_acc"], round(elapsed, 2), run.opt.param_groups[0]["lr"])):
        run.history[key].append(value)
    metrics = {
        **run.history, "epoch": epoch + 1, "final_miou": result["miou"], "final_pixel_acc": result["pixel_acc"],
        "per_class_iou": result["per_class_iou"], "settings": run.settings,
    }
    if run.show:
        _print(f"epoch {epoch + 1}/{config.epochs}: loss {loss:.4f}  "
               f"val mIoU {result['miou']:.4f}  pixel acc {result['pixel_acc']:.4f}  ({elapsed:.0f} s)")
    if (config.out is not None or config.export is not None) and run.ctx.is_main:
        _save_epoch(run, epoch + 1, metrics)
    barrier(run.ctx)  # nobody runs ahead of rank 0's writing
    return metrics


def _after_divergence(run: _Run, epoch: int) -> str:
    """The sentence that ends a diverged run's message: the --lr to lower, and the checkpoint to resume from."""
    config = run.config
    default = DEFAULT_LR[config.optimizer]
    if config.base_lr == default:
        lower = f"Start again with an --lr below {default:g}, the default for {config.optimizer}"
    else:
        lower = f"Start again with an --lr below {config.base_lr:g} (the default for {config.optimizer} is {default:g})"
    if config.out is None or epoch == run.start_epoch:  # this run has saved no epoch
        return f"{lower}."
    checkpoint = Path(config.out) / CHECKPOINT_FILE
    return f"{lower}, or resume with it from {checkpoint}, which holds epoch {epoch}, the last with a finite loss."


def _save_epoch(run: _Run, epochs_done: int, metrics: dict[str, Any]) -> None:
    config = run.config
    checkpoint = checkpoint_of(run.model, run.opt, run.scaler, epochs_done, config, metrics, run.settings)
    if config.out is not None:
        save(checkpoint, config.out)
    if config.export is not None and epochs_done == config.epochs:
        shipped = export_checkpoint(checkpoint, config.export, run.val_set)
        if run.show:
            _print(f"exported {config.export}: float16 weights score mIoU {shipped['shipped_miou']:.4f} on the CPU")


# Keywords a learner reaches for that are not TrainConfig's fields, and why (the CLI's names among them)
OWN_DATA = "a dataset of your own goes in dataset=(train_set, val_set), both splits together"
NOT_SETTINGS = {
    **dict.fromkeys(("train_set", "val_set", "train_data", "val_data", "train_dataset", "val_dataset", "datasets"),
                    OWN_DATA),
    "model": "train builds its model from variant, head and fusion; to train a model of your own, loop over "
             "train_one_epoch and evaluate",
    "no_fusion": "the command line's --no-fusion is fusion=False",
    "quiet": "the command line's --quiet is progress=False",
    "threads": "--threads is the command line's alone: call torch.set_num_threads(n) before train",
}


def _check_settings(settings: dict[str, Any]) -> None:
    """Name an unknown keyword, what was likely meant and every field, before Python's bare "unexpected keyword"."""
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    unknown = [key for key in settings if key not in fields]
    if not unknown:
        return
    key = unknown[0]
    why = f" ({NOT_SETTINGS[key]})" if key in NOT_SETTINGS else ""
    close = [] if why else difflib.get_close_matches(key, fields, n=2)  # train_set: not train_size
    guess = f"; did you mean {' or '.join(close)}?" if close else "."
    raise TypeError(f"TrainConfig has no field {key!r}{why}{guess} Its fields are: {', '.join(fields)}")


def _as_train_config(config: Optional[TrainConfig], settings: dict[str, Any]) -> TrainConfig:
    _check_settings(settings)
    if config is None:
        return TrainConfig(**settings)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train takes a TrainConfig or keyword settings (train(variant=..., epochs=...)), got {config!r}")
    return dataclasses.replace(config, **settings)


def train(config: Optional[TrainConfig] = None, /, **settings: Any) -> dict[str, Any]:
    """Train an HRNetV2 segmentation model; returns the metrics (also written to ``out/metrics.json``).

    ``train(TrainConfig(...))``, ``train(epochs=2, ...)`` (the fields of :class:`TrainConfig`)
    or both (the keywords replace the config's fields). ``dataset=(train_set, val_set)`` trains
    on two Datasets of your own (items ``(image, mask)``), in the same loop. ``pretrained="imagenet"`` (or a
    checkpoint file's path) starts the backbone from ImageNet weights, as the authors' runs start, and prints
    what it loaded and left out; a resumed run keeps its checkpoint's weights instead. The metrics: per-epoch
    lists ``loss`` (training, mean over the epoch), ``miou`` and ``pixel_acc``
    (held-out split), ``elapsed_s`` and ``lr``; ``final_miou``, ``final_pixel_acc``,
    ``per_class_iou`` after the last epoch; and the settings. ``out/checkpoint.pt``
    holds the model, optimizer, epoch, config (a dict) and metrics, for ``resume``
    and for :func:`hrnet_teach.weights.model_from_checkpoint`.
    """
    config = _as_train_config(config, settings)
    ctx = init_distributed(None if config.device is None else str(config.device))
    benchmark = torch.backends.cudnn.benchmark  # _run_device turns it on for CUDA: a notebook's later cells keep theirs
    try:
        run = _start(config, ctx)
        started = time.perf_counter()
        elapsed_before = run.history["elapsed_s"][-1] if run.history["elapsed_s"] else 0.0
        metrics: dict[str, Any] = {}
        for epoch in range(run.start_epoch, config.epochs):  # at least one: _resume_checkpoint saw to it
            metrics = _epoch(run, epoch, started, elapsed_before)
        if ctx.enabled:
            _report_rank(run, metrics)
        return metrics
    finally:
        torch.backends.cudnn.benchmark = benchmark
        close_distributed(ctx)


def _report_rank(run: _Run, metrics: dict[str, Any]) -> None:
    checksum = sum(p.detach().cpu().double().sum().item() for p in run.model.parameters())  # .cpu(): MPS has no float64
    _print_line(f"rank {run.ctx.rank}/{run.ctx.world_size}: final miou {metrics['final_miou']:.6f} "
                f"pixel_acc {metrics.get('final_pixel_acc', float('nan')):.6f} weights {checksum:.6f}")


def _progress(iterable, show: bool, desc: str):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True)


def _print_line(message: str) -> None:
    # One write per line: the processes of a torchrun job share one stdout, and a line
    # written in pieces can be cut by another process's line.
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _print(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


# ------------------------------------------------------------------ command line
def _per_optimizer(defaults: dict) -> str:
    """{'adamw': 0.005, 'sgd': 0.05} as "0.005 with adamw, 0.05 with sgd" for --help."""
    return ", ".join(f"{value:g} with {name}" for name, value in defaults.items())


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m hrnet_teach.train",
        description="Train HRNetV2 segmentation on generated shapes (offline) or Oxford-IIIT Pets. "
        "Several processes: torchrun --nproc_per_node N -m hrnet_teach.train ...",
    )
    p.add_argument("--variant", default="w18_small_v1", choices=VARIANTS, help="(default w18_small_v1)")
    p.add_argument("--dataset", default="shapes", choices=DATASETS, help="shapes: generated, no download; pets: downloads about 800 MB")
    p.add_argument("--epochs", type=int, default=6, help="(default 6)")
    p.add_argument("--batch-size", type=int, default=16, help="per process (default 16)")
    p.add_argument("--image-size", type=int, default=64, help="square side in pixels (default 64)")
    p.add_argument("--lr", type=float, default=None, help="base learning rate (default " + _per_optimizer(DEFAULT_LR) + ")")
    p.add_argument("--weight-decay", type=float, default=None, help="(default " + _per_optimizer(DEFAULT_WEIGHT_DECAY) + ")")
    p.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS, help="sgd + poly lr is the official recipe (default adamw)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC weights and images (default: on CUDA only, where cuDNN is fastest with it)")
    p.add_argument("--out", default=None, help="folder for checkpoint.pt and metrics.json")
    p.add_argument("--resume", default=None, help="a checkpoint.pt to continue from, up to --epochs in all "
                   "(the same --epochs as the first run continues its schedule exactly; more extends it)")
    p.add_argument("--seed", type=int, default=0, help="(default 0)")
    p.add_argument("--no-fusion", action="store_true", help="ablation: branches exchange nothing (the head still concatenates)")
    p.add_argument("--head", default="segmentation", choices=TRAIN_HEADS,
                   help="segmentation: HRNetV2 (all branches); pose: the HRNetV1 readout (branch 0 only), for the ablation; "
                   "ocr: HRNetV2 + OCR, loss 0.4 x aux + 1 x OCR as the official configs")
    p.add_argument("--ohem", action="store_true", help="OHEM cross-entropy, the official LOSS.USE_OHEM: on the "
                   "segmentation output, or with --head ocr on the OCR output (not --head pose)")
    p.add_argument("--align-corners", action="store_true", help="segmentation and ocr heads: resize with align_corners=True, the HRNet-OCR branch's default.py value "
                   "(its HRNetV2-W48 Cityscapes files set False; see build_model)")
    p.add_argument("--train-size", type=int, default=2000,
                   help="training scenes (default 2000; pets: the first N of the 3,680 trainval images)")
    p.add_argument("--val-size", type=int, default=256,
                   help="held-out scenes (default 256; pets: the first N of the 3,669 test images)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 0 on CPU, 2 on CUDA)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--data-root", default="data", help="where --dataset pets is downloaded")
    p.add_argument("--export", default=None, help="also write a small float16 inference checkpoint here")
    p.add_argument("--pretrained", default=None, help="start from these weights instead of random ones: imagenet "
                   "(timm's for --variant, downloaded once) or the path of a checkpoint file such as the authors' "
                   "ImageNet .pth; its backbone loads, its classifier is left out (default: random weights)")
    p.add_argument("--quiet", action="store_true",
                   help="print nothing while training: no progress bars, no per-epoch lines (metrics.json keeps them)")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace, command: Optional[str] = None) -> TrainConfig:
    """The command line's flags as a :class:`TrainConfig` (``--no-fusion`` -> ``fusion=False``, ...)."""
    renamed = {"no_fusion": ("fusion", lambda v: not v), "quiet": ("progress", lambda v: not v)}
    cli_only = {"threads"}
    fields = {}
    for name, value in vars(args).items():
        if name in cli_only:
            continue
        field, convert = renamed.get(name, (name, lambda v: v))
        fields[field] = convert(value)
    return TrainConfig(**fields, command=command)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise SystemExit(f"error: --threads must be at least 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python -m hrnet_teach.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        return train(config_from_args(args, command))
    except (ValueError, OSError, FloatingPointError) as error:  # bad flags, missing data, a diverged run: say it plainly
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
