"""Lesson 07, training: the poly learning rate, the loss that ignores pixels,
mIoU from a confusion matrix, and which BatchNorm a run should use."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data import IGNORE_INDEX
from ._kinds import FunctionExercise, Mistake


def _poly_lr(base_lr, step, max_steps):
    return base_lr * (1 - step / max_steps) ** 0.9


poly_lr = FunctionExercise(
    name="poly_lr", lesson="07", fn_name="my_poly_lr",
    question=("Write `poly_lr(base_lr, step, max_steps)`, the official trainer's learning rate at step `step` "
              "(0-based) of `max_steps`, with power 0.9."),
    reference=_poly_lr, cases=[(0.01, 0, 1000), (0.01, 500, 1000), (0.01, 999, 1000), (0.05, 120, 400), (2e-3, 7, 10)],
    returns="the learning rate", against="the poly schedule", rtol=1e-6, atol=1e-12,
    mistakes=[
        Mistake("linear", "That is linear decay; the official schedule raises (1 - step / max_steps) to the power 0.9.",
                like=lambda b, s, m: b * (1 - s / m)),
        Mistake("power_inside", "That is the power applied to step / max_steps; it applies to (1 - step / max_steps).",
                like=lambda b, s, m: b * (1 - (s / m) ** 0.9)),
        Mistake("growing", "That is a rate that grows with the step; poly starts at base_lr and falls to 0.",
                like=lambda b, s, m: b * (s / m) ** 0.9),
        Mistake("constant", "That is a constant rate: the step does not change it; it should fall as "
                "(1 - step / max_steps) ** 0.9.", like=lambda b, s, m: b),
        Mistake("inverse_power", "That is the power 1/0.9; the official power is 0.9 itself.",
                like=lambda b, s, m: b * (1 - s / m) ** (1 / 0.9)),
    ],
    success=(f"Your schedule matches the official one: halfway through, the rate is still {0.5 ** 0.9:.3f} of base_lr "
             "(above linear decay), and it reaches 0 at max_steps."),
    hints=["It starts at base_lr (step 0) and falls to 0 at max_steps.",
           "base_lr times (the fraction of training left) to the power 0.9."],
    wrong_answers=[(lambda base_lr, step, max_steps: None, "forget `return`"), (0.005, "Pass your function itself")],
)


def _loss_cases():
    generator = torch.Generator().manual_seed(7)
    for batch, classes, (h, w) in ((2, 4, (8, 8)), (1, 3, (6, 10)), (3, 5, (4, 4))):
        logits = torch.randn(batch, classes, h, w, generator=generator) * 2
        mask = torch.randint(0, classes, (batch, 4 * h, 4 * w), generator=generator)
        mask[torch.rand(mask.shape, generator=generator) < 0.3] = IGNORE_INDEX
        yield logits, mask


def _seg_loss(logits, mask):
    logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, mask, ignore_index=255)


def _loss(logits, mask, *, mode="bilinear", align=False, ignore=True, background=False, reduction="labelled", size=None):
    """What a slip computes: other resizing, no ignore_index, ignored pixels as class 0, another reduction
    ('labelled': the mean over labelled pixels, as cross_entropy's 'mean'; 'mean': over every pixel; 'sum')."""
    size = mask.shape[-2:] if size is None else size
    if size != mask.shape[-2:]:  # the mask shrunk to the logits instead
        mask = F.interpolate(mask[:, None].float(), size=size, mode="nearest")[:, 0].long()
    elif size != logits.shape[-2:]:
        logits = F.interpolate(logits, size=size, mode=mode, **({"align_corners": align} if mode == "bilinear" else {}))
    if background:
        mask = torch.where(mask == IGNORE_INDEX, torch.zeros_like(mask), mask)
    per_pixel = F.cross_entropy(logits, mask, **({"ignore_index": IGNORE_INDEX} if ignore else {}), reduction="none")
    return per_pixel.sum() / (mask != IGNORE_INDEX).sum() if reduction == "labelled" else getattr(per_pixel, reduction)()


segmentation_loss = FunctionExercise(
    name="segmentation_loss", lesson="07", fn_name="seg_loss",
    question=("Write `seg_loss(logits, mask)`: `logits` B x C x H/4 x W/4 from the model, `mask` B x H x W of class "
              "indices with 255 on pixels to ignore. Return the trainer's loss: the logits resized bilinearly "
              "(align_corners=False) to the mask's size, then cross-entropy over the labelled pixels."),
    reference=_seg_loss, cases=_loss_cases, returns="the loss", against="the trainer's loss", rtol=1e-4, atol=1e-6,
    mistakes=[
        Mistake("no_upsample", "The logits are at 1/4 of the mask's size; enlarge them first with F.interpolate(logits, "
                "size=mask.shape[-2:], mode='bilinear', align_corners=False).",
                like=lambda logits, mask: F.cross_entropy(logits, mask, ignore_index=IGNORE_INDEX)),
        Mistake("no_ignore", "The mask holds 255 on ignored pixels, which is no class; pass ignore_index=255 to "
                "cross_entropy.", like=lambda logits, mask: _loss(logits, mask, ignore=False)),
        Mistake("background", "You counted the ignored pixels as class 0; with ignore_index=255 they add nothing to the loss.",
                like=lambda logits, mask: _loss(logits, mask, ignore=False, background=True)),
        Mistake("sum", "Your loss is a sum; cross_entropy averages over the labelled pixels (reduction='mean').",
                like=lambda logits, mask: _loss(logits, mask, reduction="sum")),
        Mistake("mean_over_all", "You averaged over every pixel, ignored ones included (as zeros); the mean is over the "
                "labelled pixels only.", like=lambda logits, mask: _loss(logits, mask, reduction="mean")),
        Mistake("shrunk_mask", "You shrank the mask to the logits' size; the trainer enlarges the logits to the mask's "
                "size instead, so thin parts and edges keep their labels.",
                like=lambda logits, mask: _loss(logits, mask, size=logits.shape[-2:])),
        Mistake("align_true", "You resized with align_corners=True; this exercise (and the trainer here) uses "
                "align_corners=False.", like=lambda logits, mask: _loss(logits, mask, align=True)),
        Mistake("nearest", "You resized with nearest neighbour; the official loss resizes logits bilinearly.",
                like=lambda logits, mask: _loss(logits, mask, mode="nearest")),
    ],
    success="Your loss matches the trainer's on three batches, ignored pixels and all.",
    hints=["`F.interpolate(logits, size=mask.shape[-2:], mode='bilinear', align_corners=False)` first.",
           "`F.cross_entropy(..., ignore_index=255)` leaves those pixels out of the sum and of the count."],
    wrong_answers=[(lambda logits, mask: "0.7", "returned a str")],
)

MIOU_CASES = [
    torch.tensor([[50, 2, 3], [4, 20, 1], [6, 0, 14]]),
    torch.tensor([[90, 5, 0, 5], [10, 30, 0, 0], [0, 0, 0, 0], [2, 0, 0, 8]]),  # class 2: in no label, no prediction
    torch.tensor([[10, 0], [0, 0]]),  # class 1 never occurs: mIoU 1.0
    torch.tensor([[7, 3, 0], [0, 0, 0], [1, 4, 5]]),  # class 1 predicted, never labelled: IoU 0, counted
]


def _miou(cm):
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    return (tp[present] / union[present]).mean().item()


def _iou(cm):
    cm = cm.double()
    return cm.diag(), cm.sum(0) + cm.sum(1) - cm.diag(), cm.sum(1)


miou_from_confusion = FunctionExercise(
    name="miou_from_confusion", lesson="07", fn_name="miou",
    question=("Write `miou(cm)`: `cm[t, p]` counts the pixels of true class t predicted as p. Return the mean IoU "
              "over the classes that occur (labelled or predicted at least once)."),
    reference=_miou, cases=[(cm,) for cm in MIOU_CASES], returns="the mIoU", rtol=1e-6, atol=0,
    where=lambda cm: f"{cm.tolist()} (rows: true class, columns: predicted)",
    mistakes=[
        Mistake("nan", "Your mIoU is nan: a class in no label and no prediction gives 0/0; average only over classes "
                "whose union is above 0.", when=lambda case, got, want: math.isnan(float(got))),
        Mistake("pixel_accuracy", "That is pixel accuracy (correct pixels / all pixels), not mIoU: IoU is per class, "
                "then averaged.", like=lambda cm: (cm.diag().sum() / cm.sum()).item()),
        Mistake("recall", "You divided by the pixels labelled c only (that is per-class accuracy, or recall); IoU divides "
                "by the union: labelled c + predicted c - both.",
                like=lambda cm: (lambda tp, union, rows: (tp[rows > 0] / rows[rows > 0]).mean().item())(*_iou(cm))),
        Mistake("absent_zero", "A class that is in no label and no prediction has IoU 0/0: leave it out of the mean "
                "instead of counting 0.", like=lambda cm: (lambda tp, union, rows: (tp / union.clamp(min=1)).mean().item())(*_iou(cm))),
    ],
    success="Right: IoU per class from the diagonal and the row and column sums, averaged over the classes that occur.",
    hints=["True positives are on the diagonal: `cm.diag()`. Pixels labelled c: row sums; predicted c: column sums.",
           "IoU_c = tp_c / (row_c + col_c - tp_c); skip classes whose denominator is 0, then average."],
    wrong_answers=[(lambda cm: (lambda tp, union, rows: (tp / union).mean().item())(*_iou(cm)), "nan"),
                   (lambda cm: None, "forget `return`")],
)


def _norm_for(device_type, world_size):
    # SyncBatchNorm only with several GPU processes (NCCL); on CPU it has no kernels
    return nn.SyncBatchNorm if device_type == "cuda" and world_size > 1 else nn.BatchNorm2d


def _when(returned, device=None, world=lambda n: True):
    """A detector: the answer returned what ``returned(got)`` accepts, on a case with that device and world size."""
    return lambda case, got, want: returned(got) and device in (None, case.args[0]) and world(case.args[1])


norm_for = FunctionExercise(
    name="norm_for", lesson="07", fn_name="norm_for",
    question=("Write `norm_for(device_type, world_size)`: the normalisation class (nn.BatchNorm2d or "
              "nn.SyncBatchNorm) a run with `world_size` processes on `device_type` ('cpu' or 'cuda') should use."),
    reference=_norm_for, cases=[("cpu", 1), ("cpu", 2), ("cuda", 1), ("cuda", 4), ("cuda", 8), ("cpu", 4)],
    returns="nn.BatchNorm2d or nn.SyncBatchNorm (the class)",
    mistakes=[
        Mistake("instance", lambda case, got, want: f"You returned an instance ({type(got).__name__}(...)); return "
                "the class itself, e.g. nn.BatchNorm2d: the model builds one per layer.", when=_when(lambda got: isinstance(got, nn.Module))),
        Mistake("string", lambda case, got, want: f"You returned the string {got!r}; return the class itself, e.g. "
                "nn.BatchNorm2d.", when=_when(lambda got: isinstance(got, str))),
        Mistake("sync_on_cpu", "SyncBatchNorm on CPU processes fails: PyTorch has no CPU kernels for it, and under "
                "torchrun (gloo) its forward raises 'SyncBatchNorm expected input tensor to be on GPU'.",
                when=_when(lambda got: got is nn.SyncBatchNorm, "cpu")),
        Mistake("sync_alone", "A single process has nobody to synchronise with; plain BatchNorm2d does the same work "
                "without needing a process group.", when=_when(lambda got: got is nn.SyncBatchNorm, world=lambda n: n == 1)),
        Mistake("plain_on_gpus", lambda case, got, want: f"With {case.args[1]} GPU processes plain BatchNorm2d "
                "normalises each GPU's few images on their own; SyncBatchNorm pools the statistics of the whole batch, "
                "as the official trainer does.", when=_when(lambda got: got is nn.BatchNorm2d, "cuda", lambda n: n > 1)),
    ],
    success=("Right: SyncBatchNorm exactly when several GPU processes share a batch (NCCL); "
             "BatchNorm2d otherwise. The state-dict keys are the same either way."),
    hints=["SyncBatchNorm exchanges statistics between processes with GPU collectives (NCCL).",
           "It helps only when there are several processes, and it runs only on GPUs."],
    wrong_answers=[
        (lambda device_type, world_size: nn.SyncBatchNorm, "no CPU kernels"),
        (lambda device_type, world_size: nn.BatchNorm2d, "pools the statistics"),
        (lambda device_type, world_size: nn.SyncBatchNorm if device_type == "cuda" else nn.BatchNorm2d, "single process"),
        (lambda device_type, world_size: nn.BatchNorm2d(8), "return the class itself"),
        (lambda device_type, world_size: "BatchNorm2d", "returned the string"),
    ],
)

EXERCISES = [poly_lr, segmentation_loss, miou_from_confusion, norm_for]
