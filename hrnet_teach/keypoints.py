"""The pose task around HRNetV1: keypoints in, heatmaps out, and back.

``pose_hrnet.py`` predicts one heatmap per joint at 1/4 of the input. Training
and testing around it live in the official repository's ``lib/``
(leoxiaobin/deep-high-resolution-net.pytorch), and each function below is one
of them, computing the same numbers:

- ``gaussian_heatmaps``: ``JointsDataset.generate_target`` (the training target:
  an unnormalised Gaussian, peak 1, at the joint's heatmap cell);
- ``JointsMSELoss``: ``core/loss.py`` (half the mean squared error, joints
  weighted by visibility);
- ``max_preds`` and ``decode``: ``core/inference.py``'s ``get_max_preds`` and
  ``get_final_preds`` (the argmax, then a quarter-cell step towards the higher
  neighbour), for an image that is the whole crop;
- ``pck``: ``core/evaluate.py``'s ``accuracy`` (the PCK printed during
  training).

``data.LimbScenes`` makes a task to try them on without a download.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ._validate import flag, image_size_hw

SIGMA = 2.0  # in heatmap cells: the official 256x192 COCO and the MPII configs (MODEL.SIGMA; 384x288 takes 3)
PCK_THRESHOLD = 0.5  # official accuracy(): a joint counts when it is within 0.5 x (heatmap side / 10)


def check_sigma(sigma) -> float:
    """``sigma`` as a float, or an error that says what it is: the Gaussian's spread in heatmap cells."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < sigma < math.inf:
        raise ValueError(f"sigma is the Gaussian's spread in heatmap cells, a positive number (2 in the official "
                         f"256x192 COCO configs), got {sigma!r}")
    return float(sigma)


def _number(name: str, value, meaning: str, positive: bool = False):
    """``value`` unchanged if it is a finite real number (above 0 with ``positive``); else a ValueError saying
    what ``name`` is (``meaning``). A quoted number ("0.5") is told to lose its quotes."""
    number = value.item() if getattr(value, "ndim", None) == 0 and hasattr(value, "item") else value
    if (isinstance(number, (bool, np.bool_)) or not isinstance(number, numbers.Real) or not math.isfinite(number)
            or positive and number <= 0):
        hint = ""
        if isinstance(value, str):
            try:
                hint = f": write {name}={float(value):g}, a number, not a string"
            except ValueError:
                pass
        raise ValueError(f"{name} is {meaning}, a{' positive' if positive else ''} finite number; got {value!r}{hint}")
    return value


def _as_joints(joints, what: str) -> np.ndarray:
    array = np.asarray(joints.detach().cpu() if isinstance(joints, torch.Tensor) else joints, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 2:
        raise ValueError(f"{what} is one row per joint, (x, y) in pixels (J x 2), got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array[:, :2]).all(axis=1))
    if len(bad):  # int(NaN / stride) fails in the official generate_target too, whatever the joint's flag
        j = int(bad[0])
        raise ValueError(f"{what}: joint {j} is at {tuple(array[j, :2].tolist())}, a position must be finite pixels. "
                         "A joint that is not annotated takes any finite place, e.g. (0, 0) as COCO stores it, "
                         "with its visible flag 0")
    return array


def _check_heatmaps(heatmaps, who: str) -> None:
    """B x J x h x w heatmaps with at least one cell of one joint of one crop, or a ValueError that says so."""
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.dim() != 4:
        raise ValueError(f"{who} takes B x J x h x w heatmaps (a 4-d tensor); for one image use heatmaps[None]")
    _refuse_empty(heatmaps.shape, who)


def _refuse_empty(shape, who: str) -> None:
    """A ValueError for heatmaps with no crop, joint, row or column: there is no peak to find (the official
    get_max_preds fails on them too, in numpy's reshape)."""
    empty = [part for part, n in zip(("crops (B)", "joints (J)", "rows (h)", "columns (w)"), shape) if n == 0]
    if empty:
        raise ValueError(f"{who} got heatmaps of shape {tuple(shape)}, with no {' and no '.join(empty)}: there is no "
                         "peak to decode. Each of B x J x h x w must be at least 1; when no person was found "
                         "(no boxes), skip the call")


def gaussian_heatmaps(joints, visible, image_size: Sequence[int], heatmap_size: Sequence[int],
                      sigma: float = SIGMA) -> tuple[torch.Tensor, torch.Tensor]:
    """The training target of J joints: J x h x w heatmaps and their J x 1 weights (official ``generate_target``).

    ``joints``: J x 2, (x, y) in image pixels; ``visible``: J flags (the official
    ``joints_vis``: 0 for a joint not annotated; COCO's occluded but annotated joints count as 1).
    ``image_size`` and ``heatmap_size`` as (height, width). Each flagged joint gets a Gaussian of
    peak 1 (not normalised) cut to 3 sigma, centred on the cell ``int(x / stride + 0.5)``: rounded
    to a whole cell, so the target cannot say where inside the cell the joint is. A joint flagged 0
    gets weight 0 and an empty heatmap, and so does one whose window lies wholly off the map, as the
    official test has it: that test is one cell short on the left and top (``right < 0`` with
    ``right`` exclusive), so a window ending exactly at the edge keeps weight 1 with an empty map.
    And when 3 sigma is not whole (sigma 1.5 or 2.5; the official configs take 2 or 3), a joint less
    than 3 sigma from the left or top edge gets its peak one cell too far right or down: int() takes
    a window start of -3.5 to -3, not -4, and the Gaussian is pasted from there.
    """
    joints = _as_joints(joints, "joints")
    visible = np.asarray(visible, dtype=np.float32).reshape(-1)
    if visible.shape[0] != joints.shape[0]:
        raise ValueError(f"visible has {visible.shape[0]} flags for {joints.shape[0]} joints: give one per joint")
    if not np.isin(visible, (0, 1)).all():  # COCO's v = 2 would weigh a joint twice in the loss
        raise ValueError(f"visible holds {sorted(set(visible.tolist()) - {0.0, 1.0})[:3]}: the flags are 0 or 1. "
                         "COCO's v (0 not labelled, 1 labelled but hidden, 2 visible) is clipped by the official "
                         "loader, min(v, 1): pass np.minimum(v, 1)")
    (ih, iw), (hh, hw) = image_size_hw(image_size), image_size_hw(heatmap_size, "heatmap_size")
    sigma = check_sigma(sigma)
    target = np.zeros((len(joints), hh, hw), dtype=np.float32)
    weight = visible[:, None].copy()
    reach = sigma * 3  # the official tmp_size: the window reaches 3 sigma each way
    size = 2 * reach + 1
    g = np.arange(0, size, 1, np.float32)
    g = np.exp(-((g[None, :] - size // 2) ** 2 + (g[:, None] - size // 2) ** 2) / (2 * sigma ** 2))
    for j, (x, y) in enumerate(joints[:, :2]):
        mu_x, mu_y = int(x / (iw / hw) + 0.5), int(y / (ih / hh) + 0.5)  # int() truncates, as the official code
        left, top = int(mu_x - reach), int(mu_y - reach)
        right, bottom = int(mu_x + reach + 1), int(mu_y + reach + 1)
        if left >= hw or top >= hh or right < 0 or bottom < 0:
            weight[j] = 0  # no part of the Gaussian lands on the map
            continue
        if weight[j] > 0.5:
            target[j, max(0, top):min(bottom, hh), max(0, left):min(right, hw)] = \
                g[max(0, -top):min(bottom, hh) - top, max(0, -left):min(right, hw) - left]
    return torch.from_numpy(target), torch.from_numpy(weight)


def unrounded_heatmap(joint, image_size: Sequence[int], heatmap_size: Sequence[int],
                      sigma: float = SIGMA) -> torch.Tensor:
    """One joint's Gaussian centred where the joint is, not on a whole cell: h x w, peak at most 1.

    Not an official function: what ``gaussian_heatmaps`` would give without rounding to
    ``int(x / stride + 0.5)`` (and without the 3-sigma cut), to compare how the two decode. A
    cell c stands for pixel c x stride, as ``decode`` reads it, so the centre is x / stride.
    """
    (x, y), = _as_joints([joint], "joint")[:, :2]
    (ih, iw), (hh, hw) = image_size_hw(image_size), image_size_hw(heatmap_size, "heatmap_size")
    sigma = check_sigma(sigma)
    rows, cols = np.mgrid[0:hh, 0:hw]
    square = (cols - x / (iw / hw)) ** 2 + (rows - y / (ih / hh)) ** 2
    return torch.from_numpy(np.exp(-square / (2 * sigma ** 2)).astype(np.float32))


class JointsMSELoss(nn.Module):
    """Half the mean squared error between predicted and target heatmaps (official ``core/loss.py``).

    The official loop adds ``0.5 * MSE`` joint by joint and divides by the number of joints; one mean
    over batch, joints and pixels is the same number. With ``use_target_weight`` (the official
    configs' setting) both heatmaps of a joint are multiplied by its weight first, so a joint of
    weight 0 adds nothing.
    """

    def __init__(self, use_target_weight: bool = True) -> None:
        super().__init__()
        self.use_target_weight = flag("use_target_weight", use_target_weight, TypeError)

    def forward(self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor) -> torch.Tensor:
        for name, value in (("output", output), ("target", target)):
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"JointsMSELoss takes {name} as a torch tensor of B x J x h x w heatmaps, got "
                                f"{type(value).__name__}" + (": convert it, torch.from_numpy(a)"
                                                             if isinstance(value, np.ndarray) else ""))
        if self.use_target_weight and not isinstance(target_weight, torch.Tensor):
            raise TypeError(f"target_weight is a tensor, one weight per joint (B x J x 1: gaussian_heatmaps' weights, "
                            f"stacked), got {type(target_weight).__name__}: make one with torch.tensor(...), or to "
                            "weigh every joint alike build JointsMSELoss(use_target_weight=False)")
        if output.shape != target.shape or output.dim() != 4:
            raise ValueError(f"output and target are both B x J x h x w heatmaps; got {tuple(output.shape)} and "
                             f"{tuple(target.shape)}")
        if self.use_target_weight:
            if target_weight.numel() != output.shape[0] * output.shape[1]:
                raise ValueError(f"target_weight is one weight per joint, B x J x 1 = {output.shape[0]} x "
                                 f"{output.shape[1]} x 1; got shape {tuple(target_weight.shape)}")
            weight = target_weight.reshape(output.shape[0], output.shape[1], 1, 1)
            output, target = output * weight, target * weight
        return 0.5 * (output - target).pow(2).mean()


def max_preds(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each heatmap's highest cell (official ``get_max_preds``): (B x J x 2 coordinates (x, y), B x J x 1 peaks).

    The first maximum wins ties (as numpy's argmax); a heatmap whose peak is not above 0 gives (0, 0).
    """
    _check_heatmaps(heatmaps, "max_preds")
    b, j, _, w = heatmaps.shape
    peak, index = heatmaps.reshape(b, j, -1).max(dim=2)
    coords = torch.stack([index % w, torch.div(index, w, rounding_mode="floor")], dim=2).to(torch.float32)
    return coords * (peak > 0)[..., None], peak[..., None]


def decode(heatmaps: torch.Tensor, image_size: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints from heatmaps (official ``get_final_preds`` with ``POST_PROCESS: true``): B x J x 2, and the peaks.

    The argmax cell, moved a quarter cell towards the higher of its two neighbours in x and in y:
    the half-way guess between the cell and the next, since the true peak is seldom on a cell's
    corner. As in the official code, a peak in the first two columns or rows or in the last one is
    left as it is (``1 < px < w - 1``: one cell stricter on the left and top than the neighbours
    need). With ``image_size`` (height, width), the result is in image pixels: the
    official affine back-transform for a crop that is the whole image multiplies by the stride (it
    takes the width's stride for both axes; every official config has the same stride on both).
    """
    _check_heatmaps(heatmaps, "decode")
    coords, peaks = max_preds(heatmaps)
    b, j, h, w = heatmaps.shape
    px, py = (coords + 0.5).floor().long().unbind(-1)
    inner = (px > 1) & (px < w - 1) & (py > 1) & (py < h - 1)
    flat = heatmaps.reshape(b, j, -1)

    def at(dx, dy):
        index = ((py + dy).clamp(0, h - 1) * w + (px + dx).clamp(0, w - 1))[..., None]
        return flat.gather(2, index)[..., 0]

    step = torch.stack([torch.sign(at(1, 0) - at(-1, 0)), torch.sign(at(0, 1) - at(0, -1))], dim=2)
    coords = coords + 0.25 * step * inner[..., None]
    if image_size is not None:
        ih, iw = image_size_hw(image_size)
        coords = coords * torch.tensor([iw / w, ih / h])
    return coords, peaks


def pck(output: torch.Tensor, target: torch.Tensor,
        threshold: float = PCK_THRESHOLD) -> tuple[torch.Tensor, float, int]:
    """The PCK the official training prints (``core/evaluate.py``'s ``accuracy``, Gaussian heatmaps).

    Returns (per joint, the share of its predictions within ``threshold`` of the target; the mean
    over the joints that count; how many count). Both positions are argmaxes (of the prediction
    and of the target heatmap), in cells, divided by a tenth of the map's side. A joint whose
    target lies at x <= 1 or y <= 1 is not counted: an empty target heatmap (weight 0) decodes to
    (0, 0), and that test is how the official code leaves it out (a real joint in the outer two
    cells is left out with it). A joint counted nowhere gets -1. The official ``accuracy`` takes a
    ``thr`` too but never hands it on to ``dist_acc``, so the number it prints is always at 0.5.
    """
    threshold = _number("threshold", threshold, "the distance limit in tenths of the heatmap's side "
                        f"(officially {PCK_THRESHOLD})", positive=True)
    if output.shape != target.shape:
        raise ValueError(f"output and target must have the same B x J x h x w shape; got {tuple(output.shape)} and "
                         f"{tuple(target.shape)}")
    pred, _ = max_preds(output)
    true, _ = max_preds(target)
    h, w = output.shape[-2:]
    # (h, w) against (x, y), as the official code: on its 64 x 48 maps x is divided by 6.4 and y by 4.8.
    # float64 and each point divided before subtracting, as there, so that a distance right at the
    # threshold falls the same way
    norm = torch.tensor([h, w], dtype=torch.float64) / 10
    dist = (pred.double() / norm - true.double() / norm).norm(dim=2)  # B x J
    counted = (true[..., 0] > 1) & (true[..., 1] > 1)
    hits = ((dist < threshold) & counted).sum(0).float()
    n = counted.sum(0)
    per_joint = torch.where(n > 0, hits / n.clamp(min=1), torch.tensor(-1.0))
    valid = per_joint[n > 0]
    return per_joint, float(valid.mean()) if len(valid) else 0.0, int(len(valid))
