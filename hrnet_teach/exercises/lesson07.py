"""Lesson 07, training: the poly learning rate, the loss that ignores pixels,
mIoU from a confusion matrix, and which BatchNorm a run should use."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data import IGNORE_INDEX
from ._answers import as_function, one_thread
from ._base import Exercise, Wrong


def _number(value, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if value is None:
        raise Wrong(f"Your function returned None: did you forget `return`? It should return {what}.")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Wrong(f"Your function returned a {type(value).__name__}; it should return {what} (one number).")
    return float(value)


# ------------------------------------------------------------ 1. the poly learning rate

POLY_CASES = [(0.01, 0, 1000), (0.01, 500, 1000), (0.01, 999, 1000), (0.05, 120, 400), (2e-3, 7, 10)]


def _poly_reference(base_lr, step, max_steps):
    return base_lr * (1 - step / max_steps) ** 0.9


def _check_poly_lr(fn) -> str:
    as_function(fn, "poly_lr")
    for base, step, total in POLY_CASES:
        got = _number(fn(base, step, total), "the learning rate")
        expected = _poly_reference(base, step, total)
        if math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-12):
            continue
        where = f"poly_lr({base}, {step}, {total})"
        mistakes = {
            base * (1 - step / total): "linear decay; the official schedule raises (1 - step / max_steps) to the power 0.9",
            base * (1 - (step / total) ** 0.9): "the power applied to step / max_steps; it applies to (1 - step / max_steps)",
            base * (step / total) ** 0.9: "a rate that grows with the step; poly starts at base_lr and falls to 0",
            base: "a constant rate: the step does not change it; it should fall as (1 - step / max_steps) ** 0.9",
            base * (1 - step / total) ** (1 / 0.9): "the power 1/0.9; the official power is 0.9 itself",
        }
        for value, message in mistakes.items():
            if math.isclose(got, value, rel_tol=1e-6, abs_tol=1e-12):
                raise Wrong(f"{where} gave {got:.6g}: that is {message}.")
        raise Wrong(f"{where} gave {got:.6g}; the poly schedule gives {expected:.6g}.")
    return ("Your schedule matches the official one: halfway through, the rate is still "
            f"{0.5 ** 0.9:.3f} of base_lr (above linear decay), and it reaches 0 at max_steps.")


def _poly_linear(base_lr, step, max_steps):
    return base_lr * (1 - step / max_steps)


def _poly_power_inside(base_lr, step, max_steps):
    return base_lr * (1 - (step / max_steps) ** 0.9)


def _poly_growing(base_lr, step, max_steps):
    return base_lr * (step / max_steps) ** 0.9


def _poly_no_return(base_lr, step, max_steps):
    base_lr * (1 - step / max_steps) ** 0.9


poly_lr = Exercise(
    name="poly_lr",
    lesson="07",
    question=("Write `poly_lr(base_lr, step, max_steps)`, the official trainer's learning rate at step `step` "
              "(0-based) of `max_steps`, with power 0.9."),
    checker=_check_poly_lr,
    reference=_poly_reference,
    hints=["It starts at base_lr (step 0) and falls to 0 at max_steps.",
           "base_lr times (the fraction of training left) to the power 0.9."],
    solution_text="```python\ndef poly_lr(base_lr, step, max_steps):\n    return base_lr * (1 - step / max_steps) ** 0.9\n```",
    wrong_answers=[
        (_poly_linear, "linear decay"),
        (_poly_power_inside, "power applied to step / max_steps"),
        (_poly_growing, "grows with the step"),
        (lambda base_lr, step, max_steps: base_lr, "constant rate"),
        (_poly_no_return, "forget `return`"),
        (0.005, "Pass your function itself"),
    ],
)


# ------------------------------------------------------------ 2. the loss, with ignored pixels

def _loss_cases():
    generator = torch.Generator().manual_seed(7)
    cases = []
    for batch, classes, (h, w) in ((2, 4, (8, 8)), (1, 3, (6, 10)), (3, 5, (4, 4))):
        logits = torch.randn(batch, classes, h, w, generator=generator) * 2
        mask = torch.randint(0, classes, (batch, 4 * h, 4 * w), generator=generator)
        ignored = torch.rand(mask.shape, generator=generator) < 0.3
        mask[ignored] = IGNORE_INDEX
        cases.append((logits, mask))
    return cases


def _loss_reference(logits, mask):
    logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, mask, ignore_index=255)


def _loss_mistakes(logits, mask) -> dict[str, torch.Tensor]:
    up = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    as_background = torch.where(mask == IGNORE_INDEX, torch.zeros_like(mask), mask)
    small = F.interpolate(mask[:, None].float(), size=logits.shape[-2:], mode="nearest")[:, 0].long()
    per_pixel = F.cross_entropy(up, mask, ignore_index=IGNORE_INDEX, reduction="none")
    return {
        "You counted the ignored pixels as class 0; with ignore_index=255 they add nothing to the loss.":
            F.cross_entropy(up, as_background),
        "Your loss is a sum; cross_entropy averages over the labelled pixels (reduction='mean').":
            F.cross_entropy(up, mask, ignore_index=IGNORE_INDEX, reduction="sum"),
        "You averaged over every pixel, ignored ones included (as zeros); the mean is over the labelled pixels only.":
            per_pixel.mean(),
        "You shrank the mask to the logits' size; the trainer enlarges the logits to the mask's size instead, "
        "so thin parts and edges keep their labels.":
            F.cross_entropy(logits, small, ignore_index=IGNORE_INDEX),
        "You resized with align_corners=True; this exercise (and the trainer here) uses align_corners=False.":
            F.cross_entropy(F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=True),
                            mask, ignore_index=IGNORE_INDEX),
        "You resized with nearest neighbour; the official loss resizes logits bilinearly.":
            F.cross_entropy(F.interpolate(logits, size=mask.shape[-2:], mode="nearest"), mask, ignore_index=IGNORE_INDEX),
    }


def _check_segmentation_loss(fn) -> str:
    as_function(fn, "seg_loss")
    with one_thread():
        for logits, mask in _loss_cases():
            shapes = f"logits {tuple(logits.shape)}, mask {tuple(mask.shape)}"
            try:
                got = fn(logits.clone(), mask.clone())
            except NotImplementedError:
                raise
            except Exception as error:
                text = str(error)
                if "out of bounds" in text or isinstance(error, IndexError):
                    raise Wrong(f"With {shapes} your loss raised {type(error).__name__} ({text[:80]}): the mask holds "
                                "255 on ignored pixels, which is no class; pass ignore_index=255 to cross_entropy.") from None
                if "size" in text or "shape" in text or "match" in text:
                    raise Wrong(f"With {shapes} your loss raised {type(error).__name__}: the logits are at 1/4 of the "
                                "mask's size; enlarge them first with F.interpolate(logits, size=mask.shape[-2:], "
                                "mode='bilinear', align_corners=False).") from None
                raise Wrong(f"With {shapes} your loss raised {type(error).__name__}: {text[:120]}") from None
            got = _number(got, "the loss")
            expected = _loss_reference(logits, mask).item()
            if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-6):
                continue
            for message, value in _loss_mistakes(logits, mask).items():
                if math.isclose(got, value.item(), rel_tol=1e-4, abs_tol=1e-6):
                    raise Wrong(message)
            raise Wrong(f"With {shapes} your loss is {got:.5f}; the expected loss is {expected:.5f}.")
    return "Your loss matches the trainer's on three batches, ignored pixels and all."


def _loss_no_upsample(logits, mask):
    return F.cross_entropy(logits, mask, ignore_index=255)


def _loss_no_ignore(logits, mask):
    return F.cross_entropy(F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False), mask)


def _loss_as_background(logits, mask):
    mask = torch.where(mask == 255, torch.zeros_like(mask), mask)
    return _loss_no_ignore(logits, mask)


def _loss_mean_over_all(logits, mask):
    up = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(up, mask, ignore_index=255, reduction="none").mean()


def _loss_shrunk_mask(logits, mask):
    small = F.interpolate(mask[:, None].float(), size=logits.shape[-2:], mode="nearest")[:, 0].long()
    return F.cross_entropy(logits, small, ignore_index=255)


def _loss_align_true(logits, mask):
    up = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=True)
    return F.cross_entropy(up, mask, ignore_index=255)


segmentation_loss = Exercise(
    name="segmentation_loss",
    lesson="07",
    question=("Write `seg_loss(logits, mask)`: `logits` B x C x H/4 x W/4 from the model, `mask` B x H x W of class "
              "indices with 255 on pixels to ignore. Return the trainer's loss: the logits resized bilinearly "
              "(align_corners=False) to the mask's size, then cross-entropy over the labelled pixels."),
    checker=_check_segmentation_loss,
    reference=_loss_reference,
    hints=["`F.interpolate(logits, size=mask.shape[-2:], mode='bilinear', align_corners=False)` first.",
           "`F.cross_entropy(..., ignore_index=255)` leaves those pixels out of the sum and of the count."],
    solution_text=("```python\ndef seg_loss(logits, mask):\n"
                   "    logits = F.interpolate(logits, size=mask.shape[-2:], mode='bilinear', align_corners=False)\n"
                   "    return F.cross_entropy(logits, mask, ignore_index=255)\n```"),
    wrong_answers=[
        (_loss_no_upsample, "enlarge them first"),
        (_loss_no_ignore, "ignore_index=255"),
        (_loss_as_background, "as class 0"),
        (_loss_mean_over_all, "ignored ones included"),
        (_loss_shrunk_mask, "shrank the mask"),
        (_loss_align_true, "align_corners=True"),
        (lambda logits, mask: "0.7", "returned a str"),
    ],
)


# ------------------------------------------------------------ 3. mIoU from a confusion matrix

MIOU_CASES = [
    torch.tensor([[50, 2, 3], [4, 20, 1], [6, 0, 14]]),
    torch.tensor([[90, 5, 0, 5], [10, 30, 0, 0], [0, 0, 0, 0], [2, 0, 0, 8]]),  # class 2: in no label, no prediction
    torch.tensor([[10, 0], [0, 0]]),  # class 1 never occurs: mIoU 1.0
    torch.tensor([[7, 3, 0], [0, 0, 0], [1, 4, 5]]),  # class 1 predicted, never labelled: IoU 0, counted
]


def _miou_reference(cm):
    cm = torch.as_tensor(cm, dtype=torch.float64)
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    present = union > 0
    return (tp[present] / union[present]).mean().item()


def _miou_mistakes(cm) -> dict[str, float]:
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    rows = cm.sum(1)
    out = {
        "That is pixel accuracy (correct pixels / all pixels), not mIoU: IoU is per class, then averaged.":
            (tp.sum() / cm.sum()).item(),
        "You divided by the pixels labelled c only (that is per-class accuracy, or recall); IoU divides by the union: "
        "labelled c + predicted c - both.": (tp[rows > 0] / rows[rows > 0]).mean().item(),
        "A class that is in no label and no prediction has IoU 0/0: leave it out of the mean instead of counting 0.":
            (tp / union.clamp(min=1)).mean().item(),
    }
    return out


def _check_miou(fn) -> str:
    as_function(fn, "miou")
    for cm in MIOU_CASES:
        got = fn(cm.clone())
        got = _number(got, "the mIoU")
        expected = _miou_reference(cm)
        if math.isnan(got):
            raise Wrong(f"On {cm.tolist()} your mIoU is nan: a class in no label and no prediction gives 0/0; "
                        "average only over classes whose union is above 0.")
        if math.isclose(got, expected, rel_tol=1e-6):
            continue
        for message, value in _miou_mistakes(cm).items():
            if math.isclose(got, value, rel_tol=1e-6):
                raise Wrong(message)
        raise Wrong(f"On {cm.tolist()} (rows: true class, columns: predicted) your mIoU is {got:.4f}; it should be {expected:.4f}.")
    return "Right: IoU per class from the diagonal and the row and column sums, averaged over the classes that occur."


def _miou_pixel_acc(cm):
    return (cm.diag().sum() / cm.sum()).item()


def _miou_recall(cm):
    cm = cm.double()
    rows = cm.sum(1)
    return (cm.diag()[rows > 0] / rows[rows > 0]).mean().item()


def _miou_absent_zero(cm):
    cm = cm.double()
    tp = cm.diag()
    return (tp / (cm.sum(0) + cm.sum(1) - tp).clamp(min=1)).mean().item()


def _miou_nan(cm):
    cm = cm.double()
    tp = cm.diag()
    return (tp / (cm.sum(0) + cm.sum(1) - tp)).mean().item()


miou_from_confusion = Exercise(
    name="miou_from_confusion",
    lesson="07",
    question=("Write `miou(cm)`: `cm[t, p]` counts the pixels of true class t predicted as p. Return the mean IoU "
              "over the classes that occur (labelled or predicted at least once)."),
    checker=_check_miou,
    reference=_miou_reference,
    hints=["True positives are on the diagonal: `cm.diag()`. Pixels labelled c: row sums; predicted c: column sums.",
           "IoU_c = tp_c / (row_c + col_c - tp_c); skip classes whose denominator is 0, then average."],
    solution_text=("```python\ndef miou(cm):\n    cm = cm.double()\n    tp = cm.diag()\n"
                   "    union = cm.sum(0) + cm.sum(1) - tp\n    present = union > 0\n"
                   "    return (tp[present] / union[present]).mean().item()\n```"),
    wrong_answers=[
        (_miou_pixel_acc, "pixel accuracy"),
        (_miou_recall, "recall"),
        (_miou_absent_zero, "leave it out of the mean"),
        (_miou_nan, "nan"),
        (lambda cm: None, "forget `return`"),
    ],
)


# ------------------------------------------------------------ 4. which BatchNorm

NORM_CASES = [("cpu", 1), ("cpu", 2), ("cuda", 1), ("cuda", 4), ("cuda", 8), ("cpu", 4)]


def _norm_reference(device_type, world_size):
    # SyncBatchNorm only with several GPU processes (NCCL); on CPU it has no kernels
    return nn.SyncBatchNorm if device_type == "cuda" and world_size > 1 else nn.BatchNorm2d


def _check_norm_for(fn) -> str:
    as_function(fn, "norm_for")
    for device_type, world_size in NORM_CASES:
        got = fn(device_type, world_size)
        where = f"norm_for({device_type!r}, {world_size})"
        if isinstance(got, nn.Module):
            raise Wrong(f"{where} returned an instance ({type(got).__name__}(...)); return the class itself, "
                        "e.g. nn.BatchNorm2d: the model builds one per layer.")
        if isinstance(got, str):
            raise Wrong(f"{where} returned the string {got!r}; return the class itself, e.g. nn.BatchNorm2d.")
        expected = _norm_reference(device_type, world_size)
        if got is expected:
            continue
        if got is nn.SyncBatchNorm and device_type == "cpu":
            raise Wrong(f"{where}: SyncBatchNorm on CPU processes fails: PyTorch has no CPU kernels for it, and "
                        "under torchrun (gloo) its forward raises 'SyncBatchNorm expected input tensor to be on GPU'.")
        if got is nn.SyncBatchNorm and world_size == 1:
            raise Wrong(f"{where}: a single process has nobody to synchronise with; plain BatchNorm2d does the same "
                        "work without needing a process group.")
        if got is nn.BatchNorm2d and expected is nn.SyncBatchNorm:
            raise Wrong(f"{where}: with {world_size} GPU processes plain BatchNorm2d normalises each GPU's few images "
                        "on their own; SyncBatchNorm pools the statistics of the whole batch, as the official trainer does.")
        raise Wrong(f"{where} returned {got!r}; expected nn.BatchNorm2d or nn.SyncBatchNorm.")
    return ("Right: SyncBatchNorm exactly when several GPU processes share a batch (NCCL); "
            "BatchNorm2d otherwise. The state-dict keys are the same either way.")


norm_for = Exercise(
    name="norm_for",
    lesson="07",
    question=("Write `norm_for(device_type, world_size)`: the normalisation class (nn.BatchNorm2d or "
              "nn.SyncBatchNorm) a run with `world_size` processes on `device_type` ('cpu' or 'cuda') should use."),
    checker=_check_norm_for,
    reference=_norm_reference,
    hints=["SyncBatchNorm exchanges statistics between processes with GPU collectives (NCCL).",
           "It helps only when there are several processes, and it runs only on GPUs."],
    solution_text=("```python\ndef norm_for(device_type, world_size):\n"
                   "    return nn.SyncBatchNorm if device_type == 'cuda' and world_size > 1 else nn.BatchNorm2d\n```"),
    wrong_answers=[
        (lambda device_type, world_size: nn.SyncBatchNorm, "no CPU kernels"),
        (lambda device_type, world_size: nn.BatchNorm2d, "pools the statistics"),
        (lambda device_type, world_size: nn.SyncBatchNorm if device_type == "cuda" else nn.BatchNorm2d, "single process"),
        (lambda device_type, world_size: nn.BatchNorm2d(8), "return the class itself"),
        (lambda device_type, world_size: "BatchNorm2d", "returned the string"),
    ],
)

EXERCISES = [poly_lr, segmentation_loss, miou_from_confusion, norm_for]
