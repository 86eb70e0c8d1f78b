"""Lesson 07, training: the poly learning rate, the loss that ignores pixels,
mIoU from a confusion matrix, which BatchNorm a run should use, and where a
joint's target heatmap peaks."""
from __future__ import annotations

import math
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import IGNORE_INDEX
from ..i18n import N_, _
from ..keypoints import gaussian_heatmaps
from ._answers import as_ints
from ._kinds import FunctionExercise, Mistake, ValueExercise


def _poly_lr(base_lr, step, max_steps):
    return base_lr * (1 - step / max_steps) ** 0.9


def _exponential(case, got, want):
    """Whether the answer multiplies the rate by one factor per step (base_lr * gamma ** step, base_lr * exp(-k *
    step)), whatever that factor: lr(s + d) / lr(s) is then the same at every s; poly's ratio falls as s grows.
    One rate cannot show it (any rate below base_lr is base_lr * gamma ** step for some gamma), so it calls the
    answer at four steps."""
    base_lr, _step, max_steps = case.args
    d = max(1, max_steps // 100)  # a few steps apart: poly's ratio drifts visibly, gamma ** (3 d) does not underflow
    rates = [float(poly_lr.call(case.answer, base_lr, k * d, max_steps, where=case.where)) for k in range(4)]
    ratios = [later / earlier for earlier, later in zip(rates, rates[1:])]
    return (math.isclose(rates[0], base_lr, rel_tol=1e-6) and 0 < ratios[0] < 1  # base_lr * gamma ** 0 is base_lr
            and all(math.isclose(r, ratios[0], rel_tol=1e-5) for r in ratios))


def _rate_at_start(case) -> float:
    base_lr, _step, max_steps = case.args
    return _as_rate(poly_lr.call(case.answer, base_lr, 0, max_steps, where=case.where))


def _as_rate(value) -> float:
    """A returned rate as a float; a bool (numpy's too) or anything else that is no number raises, so a mistake
    that reads rates does not apply to it (the comparison then says what it is)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number, torch.Tensor)):
        raise TypeError(f"no rate: {type(value).__name__}")
    return float(value)


poly_lr = FunctionExercise(
    name="poly_lr", lesson="07", fn_name="my_poly_lr",
    question=N_("Write `my_poly_lr(base_lr, step, max_steps)`, the poly rate of the official "
                "adjust_learning_rate for step `step` (0-based) of `max_steps`, with power 0.9."),
    # First a step that tells the slips apart: at step 0 any answer that returns 0 looks like a rate that grows
    # from 0, and at half-way that rate equals poly's. rtol 1e-4: a rate computed with float32 tensors is right too.
    reference=_poly_lr, cases=[(0.05, 120, 400), (0.01, 0, 1000), (0.01, 500, 1000), (0.01, 999, 1000), (2e-3, 7, 10)],
    returns=N_("the learning rate"), against=N_("the poly schedule"), rtol=1e-4, atol=1e-12,
    mistakes=[
        # first: a complex rate matches no slip below, and "returned a complex" alone does not say why
        Mistake("complex", N_(
            "Your rate is a complex number: in Python a negative number to the power 0.9 is complex, so the base of "
            "your power is negative. It should be the fraction of training left, 1 - step / max_steps, between 0 "
            "and 1: check the brackets ((1 - step) / max_steps is negative once step > 1)."),
            when=lambda case, got, want: isinstance(got, complex)),
    ] + [Mistake(name, message, like=slip) for name, slip, message in [  # slips of base_lr b, step s, max_steps m
        ("linear", lambda b, s, m: b * (1 - s / m),
         N_("That is linear decay; the official schedule raises (1 - step / max_steps) to the power 0.9.")),
        ("power_inside", lambda b, s, m: b * (1 - (s / m) ** 0.9),
         N_("That is the power applied to step / max_steps; the power 0.9 belongs on (1 - step / max_steps).")),
        ("growing", lambda b, s, m: b * (s / m) ** 0.9,
         N_("That is a rate that grows with the step; poly starts at base_lr and falls to 0.")),
        ("constant", lambda b, s, m: b, N_("That is a constant rate: the step does not change it; it should fall as "
                                           "(1 - step / max_steps) ** 0.9. (With integer division, step // max_steps "
                                           "is 0 at every step before max_steps: divide with /.)")),
        ("inverse_power", lambda b, s, m: b * (1 - s / m) ** (1 / 0.9),
         N_("That is the power 1/0.9; the official power is 0.9 itself.")),
        ("next_step", lambda b, s, m: b * (1 - (s + 1) / m) ** 0.9,
         N_("That is the rate of the next step, (1 - (step + 1) / max_steps) ** 0.9: step is 0-based, and the first "
            "step (step 0) trains at base_lr itself.")),
        ("times", lambda b, s, m: b * (1 - s / m) * 0.9,
         N_("You multiplied by 0.9; the 0.9 is a power: (1 - step / max_steps) ** 0.9.")),
        ("no_base_lr", lambda b, s, m: (1 - s / m) ** 0.9,
         N_("That is the factor alone, which starts at 1: multiply it by base_lr.")),
        ("max_steps_minus_one", lambda b, s, m: b * (1 - s / (m - 1)) ** 0.9,
         N_("You divided by max_steps - 1; the fraction of training done is step / max_steps.")),
        ("precedence", lambda b, s, m: b * (1 - s / m) ** 9 / 10,
         N_("** binds tighter than /: `x ** 9 / 10` is (x ** 9) / 10. Write the power as 0.9 (or (9 / 10), in "
            "brackets).")),
        ("cosine", lambda b, s, m: b * 0.5 * (1 + math.cos(math.pi * s / m)),
         N_("That is cosine annealing, base_lr * (1 + cos(pi * step / max_steps)) / 2; the official trainer's "
            "adjust_learning_rate is poly: base_lr * (1 - step / max_steps) ** 0.9.")),
        ("squared", lambda b, s, m: b * (1 - s / m) ** 2,
         N_("That is the power 2; the official power is 0.9: (1 - step / max_steps) ** 0.9.")),
    ]] + [
        Mistake("exponential", N_(
            "That is exponential decay: your rate shrinks by the same factor at every step, fastest at the start, "
            "and never reaches 0. The official schedule is poly, base_lr * (1 - step / max_steps) ** 0.9: it falls "
            "slowly at first (halfway, still {half} of base_lr) and reaches 0 at max_steps.",
            half=format(0.5 ** 0.9, ".3f")), when=_exponential),
        Mistake("start", lambda case, got, want: _(
            "At step 0 your rate is {start}, not base_lr = {base}: poly starts at base_lr. Check the brackets and "
            "what multiplies what: base_lr * (1 - step / max_steps) ** 0.9, the power on the bracket alone.",
            start=format(_rate_at_start(case), ".6g"), base=case.args[0]),
            when=lambda case, got, want: not math.isclose(_rate_at_start(case), case.args[0], rel_tol=1e-4)),
        Mistake("above_base_lr", lambda case, got, want: _(
            "Your rate {got} is above base_lr = {base}: poly falls from base_lr to 0, so the power is +0.9 and the "
            "fraction of training left, 1 - step / max_steps, is at most 1.", got=format(_as_rate(got), ".6g"),
            base=case.args[0]), when=lambda case, got, want: _as_rate(got) > case.args[0]),
    ],
    success=N_("Your schedule matches the official one: halfway through, the rate is still {half} of base_lr "
               "(above linear decay), and it reaches 0 at max_steps.", half=format(0.5 ** 0.9, ".3f")),
    hints=[N_("It starts at base_lr (step 0) and falls to 0 at max_steps."),
           N_("base_lr times (the fraction of training left) to the power 0.9.")],
    wrong_answers=[(lambda base_lr, step, max_steps: None, "forget `return`"), (0.005, "Pass your function itself"),
                   (lambda base_lr, step, max_steps: base_lr * 0.9 ** step, "exponential decay"),
                   (lambda base_lr, step, max_steps: base_lr * ((1 - step) / max_steps) ** 0.9,
                    "(1 - step) / max_steps is negative"),
                   (lambda base_lr, step, max_steps: base_lr * (1 - step // max_steps) ** 0.9, "integer division"),
                   (lambda base_lr, step, max_steps: base_lr * max_steps - step / max_steps ** 0.9, "At step 0 your rate is 20"),
                   (lambda base_lr, step, max_steps: (base_lr * (1 - step / max_steps)) ** 0.9, "the power on the bracket alone"),
                   (lambda base_lr, step, max_steps: base_lr * (1 - step / max_steps) ** -0.9, "is above base_lr")],
)


def _loss_cases():
    generator = torch.Generator().manual_seed(7)
    # (batch, classes, mask size): the last one's sides are no multiples of 4 (a 250 x 333 image gives 63 x 84
    # logits, and x 4 overshoots), so only a resize to the mask's own size fits it
    for batch, classes, (h, w) in ((2, 4, (32, 32)), (1, 3, (24, 40)), (3, 5, (16, 16)), (1, 3, (30, 41))):
        logits = torch.randn(batch, classes, -(-h // 4), -(-w // 4), generator=generator) * 2
        mask = torch.randint(0, classes, (batch, h, w), generator=generator)
        mask[torch.rand(mask.shape, generator=generator) < 0.3] = IGNORE_INDEX
        yield logits, mask


def _seg_loss(logits, mask):
    logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, mask, ignore_index=255)


def _loss(logits, mask, *, mode="bilinear", align=False, ignore=True, background=False, reduction="labelled",
          shrink=False, softmax=False, dim=1):
    """What a slip computes: other resizing (or the mask shrunk), a softmax before the loss, log_softmax over
    another ``dim`` than the classes, no ignore_index, ignored pixels as class 0, another reduction ('labelled':
    over labelled pixels, as cross_entropy's 'mean'; 'mean': over every pixel; 'sum'; 'per_image': the mean of
    each image's mean)."""
    if shrink:
        mask = F.interpolate(mask[:, None].float(), size=logits.shape[-2:], mode="nearest")[:, 0].long()
    elif mode:
        logits = F.interpolate(logits, size=mask.shape[-2:], mode=mode,
                               **({"align_corners": align} if mode in ("bilinear", "bicubic") else {}))
    if background:
        mask = torch.where(mask == IGNORE_INDEX, torch.zeros_like(mask), mask)
    logits = logits.softmax(1) if softmax else logits
    ignored = {"ignore_index": IGNORE_INDEX} if ignore else {}
    if dim == 1:
        per_pixel = F.cross_entropy(logits, mask, **ignored, reduction="none")
    else:  # cross_entropy is nll_loss of log_softmax over dim 1: spelt out, with the slip's dim
        per_pixel = F.nll_loss(F.log_softmax(logits, dim=dim), mask, **ignored, reduction="none")
    labelled = mask != IGNORE_INDEX
    if reduction == "per_image":
        return torch.stack([p.sum() / n.sum() for p, n in zip(per_pixel, labelled)]).mean()
    if reduction == "images":
        return per_pixel.sum() / len(mask)
    return per_pixel.sum() / labelled.sum() if reduction == "labelled" else getattr(per_pixel, reduction)()


def _bce_one_hot(logits, mask, *, ignored="clamp"):
    """A slip: binary cross-entropy of each class's logit against the one-hot mask, the ignored pixels (255)
    clamped to the last class ('clamp'), made class 0 ('zero') or left out ('drop')."""
    logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    classes, labelled = logits.shape[1], mask != IGNORE_INDEX
    if ignored == "drop":  # the labelled pixels' C logits against their one-hot rows
        pixels = logits.permute(0, 2, 3, 1)[labelled]
        return F.binary_cross_entropy_with_logits(pixels, F.one_hot(mask[labelled], classes).float())
    mask = mask.clamp(max=classes - 1) if ignored == "clamp" else mask.where(labelled, 0)
    return F.binary_cross_entropy_with_logits(logits, F.one_hot(mask, classes).permute(0, 3, 1, 2).float())


segmentation_loss = FunctionExercise(
    name="segmentation_loss", lesson="07", fn_name="seg_loss",
    question=N_("Write `seg_loss(logits, mask)`: `logits` B x C x H/4 x W/4 from the model, `mask` B x H x W of class "
                "indices with 255 on pixels to ignore. Return the trainer's loss: the logits resized bilinearly "
                "(align_corners=False) to the mask's size, then cross-entropy over the labelled pixels."),
    reference=_seg_loss, cases=_loss_cases, trains=True, returns=N_("the loss"), against=N_("the trainer's loss"),
    rtol=1e-4, atol=1e-6,
    mistakes=[Mistake(name, message, like=partial(_loss, **change)) for name, change, message in [
        ("no_upsample", {"mode": None}, N_(
            "The logits are at 1/4 of the mask's size; enlarge them first with F.interpolate(logits, "
            "size=mask.shape[-2:], mode='bilinear', align_corners=False).")),
        ("no_ignore", {"ignore": False}, N_(
            "The mask holds 255 on ignored pixels, which is no class; pass ignore_index=255 to cross_entropy.")),
        ("background", {"ignore": False, "background": True}, N_(
            "You counted the ignored pixels as class 0; with ignore_index=255 they add nothing to the loss.")),
        ("sum", {"reduction": "sum"}, N_(
            "Your loss is a sum; cross_entropy averages over the labelled pixels (reduction='mean').")),
        ("mean_over_all", {"reduction": "mean"}, N_(
            "You averaged over every pixel, ignored ones included (as zeros); the mean is over the labelled pixels "
            "only.")),
        ("shrunk_mask", {"shrink": True}, N_(
            "You shrank the mask to the logits' size; the trainer enlarges the logits to the mask's size instead, "
            "so thin parts and edges keep their labels.")),
        ("align_true", {"align": True}, N_(
            "You resized with align_corners=True; this exercise (and the trainer here) uses align_corners=False.")),
        ("nearest", {"mode": "nearest"}, N_(
            "You resized with nearest neighbour; the official loss resizes logits bilinearly.")),
        ("bicubic", {"mode": "bicubic"}, N_(
            "You resized bicubically; the trainer resizes the logits bilinearly (mode='bilinear', "
            "align_corners=False).")),
        ("double_softmax", {"softmax": True}, N_(
            "You applied a softmax before the loss: cross_entropy applies log_softmax itself, so pass it the raw "
            "logits (probabilities taken as logits give a squashed loss and tiny gradients).")),
        *[(f"dim{d}", {"dim": d}, N_(
            "Your log-probabilities are normalised over another axis than the classes: for B x C x H x W logits, "
            "log_softmax(..., dim=1), as cross_entropy does.")) for d in (0, 2, 3)],
        ("per_batch_image", {"reduction": "images"}, N_(
            "You divided the summed loss by the number of images; cross_entropy averages over the labelled pixels "
            "(reduction='mean').")),
        ("per_image", {"reduction": "per_image"}, N_(
            "You averaged each image's loss, then the images, so every image weighs the same. cross_entropy "
            "averages over all the labelled pixels of the batch at once, so there an image with more labelled "
            "pixels weighs more.")),
    ]] + [Mistake(name, N_(
        "That is binary cross-entropy on a one-hot mask: a sigmoid scores each class on its own, as if a pixel could "
        "be several classes at once. A pixel has one class: F.cross_entropy(logits, mask, ignore_index=255) takes a "
        "softmax over the C classes and reads the mask's class indices as they are (no one-hot)."),
        like=partial(_bce_one_hot, ignored=ignored)) for name, ignored in [
            ("bce_one_hot", "clamp"), ("bce_one_hot_zero", "zero"), ("bce_one_hot_labelled", "drop")]] + [
        Mistake("nll_on_logits", N_(
            "NLLLoss takes log-probabilities; the model returns logits, so use F.cross_entropy, which applies "
            "log_softmax itself (after the resize it is the right loss even for a model that ends in LogSoftmax, "
            "lesson 06). NLLLoss on logits is just -logit[target], averaged."),
            like=lambda lo, m: F.nll_loss(F.interpolate(lo, size=m.shape[-2:], mode="bilinear", align_corners=False),
                                          m, ignore_index=IGNORE_INDEX)),
        # the slip raises; an answer that raises the same error (type and text) on the same case is told this
        Mistake("scale_factor", N_(
            "Enlarge to the mask's exact size, size=mask.shape[-2:]: a scale factor of 4 overshoots when the image's "
            "sides are no multiples of 4 (a 250 x 333 image gives 63 x 84 logits, and x 4 is 252 x 336)."),
            like=lambda lo, m: F.cross_entropy(F.interpolate(lo, scale_factor=4, mode="bilinear", align_corners=False),
                                               m, ignore_index=IGNORE_INDEX)),
        Mistake("swapped", N_("The logits go first and the mask second: F.cross_entropy(logits, mask, "
                              "ignore_index=255)."),
            like=lambda lo, m: F.cross_entropy(m, F.interpolate(lo, size=m.shape[-2:], mode="bilinear",
                                                                align_corners=False), ignore_index=IGNORE_INDEX)),
        Mistake("size_wh", N_("size is (height, width), as mask.shape[-2:] gives it; you passed (width, height)."),
            like=lambda lo, m: F.cross_entropy(F.interpolate(lo, size=m.shape[-2:][::-1], mode="bilinear",
                                                             align_corners=False), m, ignore_index=IGNORE_INDEX)),
        Mistake("mask_channel", N_("The mask stays B x H x W, class indices with no channel axis: cross_entropy "
                                   "takes B x C x H x W logits and a B x H x W mask (no unsqueeze(1))."),
            like=lambda lo, m: F.cross_entropy(F.interpolate(lo, size=m.shape[-2:], mode="bilinear",
                                                             align_corners=False), m[:, None], ignore_index=IGNORE_INDEX)),
        Mistake("size_with_batch", N_(
            "`size` takes (height, width) only: mask.shape is B x H x W, so use size=mask.shape[-2:]."),
            like=lambda lo, m: F.cross_entropy(F.interpolate(lo, size=m.shape, mode="bilinear", align_corners=False),
                                               m, ignore_index=IGNORE_INDEX))],
    success=N_("Your loss matches the trainer's on four batches, ignored pixels and all, one of them a mask whose sides "
               "are no multiples of 4."),
    hints=[N_("`F.interpolate(logits, size=mask.shape[-2:], mode='bilinear', align_corners=False)` first."),
           N_("`F.cross_entropy(..., ignore_index=255)` leaves those pixels out of the sum and of the count.")],
    wrong_answers=[(lambda logits, mask: "0.7", "returned a str"),
                   (lambda logits, mask: _seg_loss(logits, mask).item(), "output carries no gradient"),
                   (lambda logits, mask: _seg_loss(logits.detach(), mask), "output carries no gradient")],
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


def _has_absent_class(cm) -> bool:
    """Whether a class of ``cm`` is in no label and no prediction (its union is 0): only there is an IoU 0/0."""
    return bool((cm.sum(0) + cm.sum(1) - cm.diag() == 0).any())


def _mean_ratio(cm, of="union", absent="skip", keep="all"):
    """What a slip computes: the mean over the classes of tp / ``of`` ('union'; 'rows': the pixels labelled c;
    'cols': those predicted c; 'sum': rows + cols, tp counted twice; 'dice': (rows + cols) / 2, so 2 tp / (rows +
    cols)), a class with denominator 0 left out ('skip'), counted as 0 ('zero') or as 0/0 ('nan'); with
    keep='labelled', only over the classes labelled at least once."""
    cm = cm.double()
    tp, rows, cols = cm.diag(), cm.sum(1), cm.sum(0)
    denominator = {"union": rows + cols - tp, "rows": rows, "cols": cols, "sum": rows + cols,
                   "dice": (rows + cols) / 2}[of]
    if keep == "labelled":
        tp, denominator = tp[rows > 0], denominator[rows > 0]
    if absent == "skip":
        tp, denominator = tp[denominator > 0], denominator[denominator > 0]
    return (tp / (denominator.clamp(min=1) if absent == "zero" else denominator)).mean().item()


def _floor_ratio(cm):
    """A slip: each IoU with integer division, on the counts as they come (int64)."""
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    return (tp[union > 0] // union[union > 0]).double().mean().item()


def _frequency_weighted(cm):
    """A slip: the frequency-weighted IoU (FCN's), each class's IoU weighted by its share of the labelled pixels."""
    cm = cm.double()
    tp, rows = cm.diag(), cm.sum(1)
    union = rows + cm.sum(0) - tp
    present = union > 0
    return (rows[present] / rows.sum() * tp[present] / union[present]).sum().item()


def _without_background(cm):
    """A slip: the mean IoU of the classes that occur, class 0 left out (its row and column kept)."""
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    kept = (union > 0) & (torch.arange(len(cm)) > 0)
    return (tp[kept] / union[kept]).mean().item()


_NO_BACKGROUND = N_(
    "You left class 0 out of the mean, as if it were a background to ignore: it is a class like the others (road in "
    "Cityscapes; PASCAL VOC's mIoU counts its background class too). Average the IoU of every class that occurs, "
    "class 0 included: only the pixels marked 255 are ignored, and they are not in the matrix.")

_MIOU_SLIPS = [  # (name, what the slip computes, its message)
    ("union_sum", partial(_mean_ratio, of="sum"), N_(
        "Your union counts the true positives twice: row_c + col_c holds tp_c in both sums. Subtract it once: "
        "row + col - tp.")),
    ("dice", partial(_mean_ratio, of="dice"), N_(
        "That is the Dice score, 2 tp / (row + col), not IoU: IoU = tp / (row + col - tp).")),
    ("precision", partial(_mean_ratio, of="cols"), N_(
        "You divided by the pixels predicted as c only (that is precision); IoU divides by the union: labelled c + "
        "predicted c - both.")),
    ("labelled_only", partial(_mean_ratio, keep="labelled"), N_(
        "You left out a class that is predicted but never labelled: it occurs, its IoU is 0, and it counts in the "
        "mean. Skip only the classes whose union (row + column - tp) is 0.")),
    ("percent", lambda cm: 100 * _miou(cm), N_(
        "That is the mIoU in percent; return the fraction, between 0 and 1.")),
    ("floor_division", _floor_ratio, N_(
        "Integer division (//) rounds each IoU down to 0 (or 1); divide with /.")),
    ("frequency_weighted", _frequency_weighted, N_(
        "That is the frequency-weighted IoU: each class's IoU weighted by its share of the labelled pixels, so the "
        "large classes (road, sky) outweigh the small ones. mIoU is the plain mean: every class that occurs counts "
        "the same, however few its pixels.")),
    ("no_background", _without_background, _NO_BACKGROUND),
    ("no_background_cropped", lambda cm: _miou(cm[1:, 1:]), _NO_BACKGROUND),  # cm[1:, 1:]: class 0 dropped too
]


miou_from_confusion = FunctionExercise(
    name="miou_from_confusion", lesson="07", fn_name="miou",
    question=N_("Write `miou(cm)`: `cm[t, p]` counts the pixels of true class t predicted as p. Return the mean IoU "
                "over the classes that occur (labelled or predicted at least once)."),
    reference=_miou, cases=[(cm,) for cm in MIOU_CASES], returns=N_("the mIoU"), rtol=1e-6, atol=0,
    where=lambda cm: _("{cm} (rows: true class, columns: predicted)", cm=cm.tolist()),
    mistakes=[
        Mistake("nan", N_("Your mIoU is nan: a class in no label and no prediction gives 0/0; average only over "
                          "classes whose union is above 0."),
                when=lambda case, got, want: math.isnan(float(got)) and _has_absent_class(*case.args)),
        Mistake("nan_every_class_occurs", N_(
                    "Your mIoU is nan on this matrix, although every class occurs in it (no union is 0): look for a "
                    "0/0 or a nan in your own arithmetic."),
                when=lambda case, got, want: math.isnan(float(got)) and not _has_absent_class(*case.args)),
        Mistake("pixel_accuracy", N_("That is pixel accuracy (correct pixels / all pixels), not mIoU: IoU is per "
                                     "class, then averaged."), like=lambda cm: (cm.diag().sum() / cm.sum()).item()),
        Mistake("recall", N_("You divided by the pixels labelled c only (that is per-class accuracy, or recall); IoU "
                             "divides by the union: labelled c + predicted c - both."),
                like=partial(_mean_ratio, of="rows")),
        Mistake("absent_zero", N_("A class that is in no label and no prediction has IoU 0/0: leave it out of the "
                                  "mean instead of counting 0. (The official trainer's `tp / np.maximum(1.0, pos + res - tp)` "
                                  "does count it as 0; over a whole validation set, where every class occurs, the "
                                  "two agree.)"),
                like=partial(_mean_ratio, absent="zero")),
    ] + [Mistake(name, message, like=like) for name, like, message in _MIOU_SLIPS],
    success=N_("IoU per class from the diagonal and the row and column sums, averaged over the classes "
               "that occur."),
    hints=[N_("True positives are on the diagonal: `cm.diag()`. Pixels labelled c: row sums; predicted c: column sums."),
           N_("IoU_c = tp_c / (row_c + col_c - tp_c); skip classes whose denominator is 0, then average.")],
    wrong_answers=[(partial(_mean_ratio, absent="nan"), "a class in no label and no prediction gives 0/0"),
                   (lambda cm: None, "forget `return`"),
                   (lambda cm: float("nan"), "although every class occurs in it")],
)


def _norm_for(device_type, world_size):
    # SyncBatchNorm only with several GPU processes (NCCL): under torchrun on CPUs its training forward raises,
    # and without a process group it is plain BatchNorm2d
    return nn.SyncBatchNorm if device_type == "cuda" and world_size > 1 else nn.BatchNorm2d


norm_for = FunctionExercise(
    name="norm_for", lesson="07", fn_name="norm_for",
    question=N_("Write `norm_for(device_type, world_size)`: the normalisation class (nn.BatchNorm2d or "
                "nn.SyncBatchNorm) a run with `world_size` processes on `device_type` ('cpu' or 'cuda') should use."),
    reference=_norm_for, cases=[("cpu", 1), ("cpu", 2), ("cuda", 1), ("cuda", 4), ("cuda", 8), ("cpu", 4), ("cuda", 2)],
    returns=N_("nn.BatchNorm2d or nn.SyncBatchNorm (the class)"),
    mistakes=[  # slips of (device_type d, world_size n); the right class elsewhere
        Mistake("instance", lambda case, got, want: _(
            "You returned an instance ({name}(...)); return the class itself, e.g. nn.BatchNorm2d: the model builds "
            "one per layer.", name=type(got).__name__), when=lambda case, got, want: isinstance(got, nn.Module)),
        Mistake("not_a_class", N_(
            "You returned a function, a partial or a method, not a class: return the class itself, nn.BatchNorm2d or "
            "nn.SyncBatchNorm (the model calls it once per layer, with that layer's channels)."),
            when=lambda case, got, want: callable(got) and not isinstance(got, (type, nn.Module))),
        Mistake("string", lambda case, got, want: _(
            "You returned the string {got}; return the class itself, e.g. nn.BatchNorm2d.", got=repr(got)),
            when=lambda case, got, want: isinstance(got, str)),
        Mistake("sync_on_cpu", N_(
            "SyncBatchNorm does not work for CPU processes: under torchrun (gloo) its training forward raises "
            "ValueError: 'SyncBatchNorm expected input tensor to be on GPU or XPU or privateuseone' (torch 2.13's "
            "wording), and without a process group it only acts as BatchNorm2d."),
            like=lambda d, n: nn.SyncBatchNorm if d == "cpu" else _norm_for(d, n)),
        Mistake("sync_alone", N_(
            "A single process has nobody to synchronise with; plain BatchNorm2d does the same work without needing "
            "a process group. (Under torchrun with one GPU the course's trainer still converts to SyncBatchNorm, to "
            "take the same path as several GPUs; in a group of one those layers compute exactly what BatchNorm2d "
            "does.)"), like=lambda d, n: nn.SyncBatchNorm if d == "cuda" else _norm_for(d, n)),
        Mistake("plain_on_gpus", lambda case, got, want: _(
            "For norm_for({d!r}, {n}) you returned nn.BatchNorm2d. With {n} GPU processes plain BatchNorm2d normalises "
            "each GPU's few images on their own; SyncBatchNorm pools the statistics of the whole batch, as the "
            "official trainer does. (device_type is the string 'cuda', as torch names the device type: not 'gpu', "
            "and not torch.device('cuda'), which equals no string.)", d=case.args[0], n=case.args[1]),
            like=lambda d, n: nn.BatchNorm2d),
    ],
    success=N_("SyncBatchNorm exactly when several GPU processes share a batch (NCCL); "
               "BatchNorm2d otherwise. The state-dict keys are the same either way."),
    hints=[N_("SyncBatchNorm exchanges statistics between processes with GPU collectives (NCCL)."),
           N_("It helps only when there are several processes, and it synchronises only on GPUs.")],
    wrong_answers=[(lambda d, n: nn.SyncBatchNorm, "does not work for CPU processes"), (lambda d, n: nn.BatchNorm2d, "pools the statistics"),
                   (lambda d, n: nn.BatchNorm2d(8), "return the class itself"),
                   (lambda d, n: "BatchNorm2d", "the string"),
                   (lambda d, n: partial(_norm_for(d, n), momentum=0.01), "not a class"),
                   (lambda d, n: nn.SyncBatchNorm if d == "cuda" and n > 2 else nn.BatchNorm2d, "With 2 GPU processes"),
                   (lambda d, n: nn.SyncBatchNorm if d == "gpu" and n > 1 else nn.BatchNorm2d, "not 'gpu'")],
)

# (x, y) in pixels; square sides. 26 / 4 = 6.5 lies exactly between two cells: the official + 0.5 sends it up,
# where Python's round() (halves to even) and a plain int() both give 6
JOINT, IMAGE, HEATMAP = (26.0, 13.9), 64, 16


def _peak_cell() -> tuple[int, int]:
    """Where the package's target (official generate_target) puts the joint's peak, as (x, y)."""
    target, _ = gaussian_heatmaps([JOINT], [1], (IMAGE, IMAGE), (HEATMAP, HEATMAP))
    row, col = divmod(int(target[0].argmax()), HEATMAP)
    return col, row


heatmap_peak = ValueExercise(
    name="heatmap_peak", lesson="07",
    question=N_("A joint lies at (x, y) = ({x}, {y}) pixels of a {image} x {image} image, and the pose model's "
                "heatmaps are {side} x {side}. At which cell (x, y) of its target heatmap is the peak (the value 1)?",
                x=JOINT[0], y=JOINT[1], image=IMAGE, side=HEATMAP),
    read=lambda a: as_ints(a, 2, N_("the cell (x, y)"), "(5, 9)"), reference=_peak_cell,
    success=N_("(7, 3): the stride is 64 / 16 = 4, and the official generate_target takes int(x / 4 + 0.5): "
               "int(7.0) = 7 and int(3.975) = 3. A joint exactly between two cells (6.5) goes to the higher one. The "
               "peak sits on a whole cell, so the target cannot say that this joint lies near the bottom edge of row "
               "3, and decoding cannot win that back from the target itself: its neighbours are equal, so there is "
               "no quarter-cell step (the explorer below shows it)."),
    mistakes={(6, 3): N_("26 / 4 = 6.5 lies exactly between cells 6 and 7. int(6.5) cuts it to 6, and Python's "
                         "round(6.5) gives 6 too (it rounds halves to the even number); generate_target adds 0.5 "
                         "before int(): int(6.5 + 0.5) = 7, so a half always goes up."),
              (7, 4): N_("13.9 / 4 = 3.475 is nearer 3 than 4, and int(3.475 + 0.5) = int(3.975) = 3: the + 0.5 "
                         "rounds to the nearest cell, it does not round every fraction up."),
              (3, 7): N_("The answer is (x, y), the column first, as the official joints are written; you gave "
                         "(row, column)."),
              (26, 14): N_("Those are image pixels; the heatmap is 4 times smaller (stride 64 / 16 = 4): divide "
                           "first."),
              (104, 56): N_("The heatmap is smaller than the image, not larger: divide by the stride 4."),
              (2, 1): N_("16 is the heatmap's size, not the stride: the stride is the image size over the heatmap "
                         "size, 64 / 16 = 4.")},
    otherwise=N_("Divide each coordinate by the stride (64 / 16 = 4), add 0.5 and keep the whole part: "
                 "int(x / 4 + 0.5), then the same for y."),
    hints=[N_("The stride is the image size over the heatmap size: 64 / 16 = 4."),
           N_("generate_target computes mu_x = int(x / stride + 0.5), and mu_y the same way.")],
    solution_text=N_("`answer = (7, 3)`: int(26.0 / 4 + 0.5) = int(7.0) = 7 and int(13.9 / 4 + 0.5) = int(3.975) = "
                     "3."),
    wrong_answers=[((6.5, 3.475), "whole numbers"), (7, "two whole numbers"), ((3, 7), "the column first"),
                   ((6, 3), "rounds halves to the even"), ((2, 1), "not the stride")],
)

EXERCISES = [poly_lr, segmentation_loss, miou_from_confusion, norm_for, heatmap_peak]
