"""How the authors run a pose model on a real photo: a person box in, keypoints in photo pixels out.

A pose network never sees the photo. The official code (leoxiaobin/deep-high-resolution-net.pytorch)
cuts each person out of it, resized to the model's input, and maps the heatmaps' peaks back into the
photo. Each function below is one of theirs, computing the same numbers:

- ``box2cs``: ``COCODataset._box2cs`` / ``_xywh2cs`` (``lib/dataset/coco.py``; the demo's
  ``box_to_center_scale``): the box (x, y, w, h) becomes a centre and a scale, widened or heightened
  to the input's aspect ratio, in units of ``pixel_std`` = 200 pixels, then enlarged 1.25 times;
- ``get_affine_transform``, ``affine_transform``, ``crop``, ``flip_back``, ``fliplr_joints`` and
  ``transform_preds``: ``lib/utils/transforms.py``. ``warp_affine`` stands in for the
  ``cv2.warpAffine(..., flags=cv2.INTER_LINEAR)`` they call: this package does not need OpenCV;
- ``get_final_preds``: ``lib/core/inference.py`` (the argmax and quarter-cell step of
  ``keypoints.decode``, then back to photo pixels);
- ``flip_test``: the ``TEST.FLIP_TEST`` branch of ``validate`` in ``lib/core/function.py``, with
  ``TEST.SHIFT_HEATMAP``;
- ``predict_keypoints``: all of it for a model, a photo and its boxes, as ``validate`` and the demo's
  ``get_pose_estimation_prediction`` chain them.

Sizes: the geometry functions keep the official order, x before y everywhere: ``center`` is (x, y),
``scale`` (width, height) / 200 and ``output_size`` (width, height), as ``MODEL.IMAGE_SIZE: [192, 256]``.
``predict_keypoints`` takes ``image_size`` as (height, width), as the rest of this package does.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validate import flag, image_size_hw, refuse_meta
from .assets import IMAGENET_MEAN, IMAGENET_STD
from .backbone import HRNet
from .heads import HRNetPose
from .keypoints import _number, _refuse_empty, decode, max_preds

PIXEL_STD = 200  # coco.py: self.pixel_std = 200, the unit of scale (a box 200 pixels tall has scale 1)
BOX_ENLARGE = 1.25  # coco.py: scale = scale * 1.25, a margin around the detector's tight box
IMAGE_SIZE = (256, 192)  # (height, width): the official MODEL.IMAGE_SIZE [192, 256] (256x192 COCO configs)

# The demo's COCO_KEYPOINT_INDEXES, in order. "left" is the person's left: on the right of a photo facing you
COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
# coco.py's self.flip_pairs: the joints whose names swap in a mirror (the nose has no partner)
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))

ArrayLike = Union[np.ndarray, Sequence[float], torch.Tensor]


# ------------------------------------------------------------------ the box
def box2cs(box: ArrayLike, image_size: Sequence[int] = IMAGE_SIZE, pixel_std: float = PIXEL_STD,
           enlarge: float = BOX_ENLARGE) -> tuple[np.ndarray, np.ndarray]:
    """Centre (x, y) and scale (width, height) / ``pixel_std`` of a person box: official ``_box2cs``.

    ``box``: (x, y, w, h) in photo pixels, as COCO stores boxes (the demo's ``box_to_center_scale``
    takes the two corners instead). ``image_size``: the model input (height, width); the box is first
    grown along one side to that aspect ratio (a tall box widened, a wide one heightened, never
    squashed), then both sides are enlarged by ``enlarge`` (1.25 officially: the margin lets the
    network see a wrist the detector's box cut off). Both float32, as the official arrays.
    The official code skips the 1.25 when the centre's x is exactly -1 (``if center[0] != -1``, a
    marker no caller sets); that test is kept, so the numbers match for every box.
    """
    x, y, w, h = _check_box(box)
    height, width = image_size_hw(image_size)
    pixel_std = _number("pixel_std", pixel_std, f"the unit of scale in pixels ({PIXEL_STD} officially)", positive=True)
    enlarge = _number("enlarge", enlarge, f"the margin around the box, a factor ({BOX_ENLARGE} officially, 1 for none)",
                      positive=True)
    aspect_ratio = width * 1.0 / height
    center = np.array([x + w * 0.5, y + h * 0.5], dtype=np.float32)
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    scale = np.array([w * 1.0 / pixel_std, h * 1.0 / pixel_std], dtype=np.float32)
    if center[0] != -1:
        scale = scale * enlarge
    return center, scale


# ------------------------------------------------------------------ the affine transform
def get_dir(src_point: Sequence[float], rot_rad: float) -> list[float]:
    """``src_point`` rotated by ``rot_rad`` (official ``get_dir``)."""
    sn, cs = np.sin(rot_rad), np.cos(rot_rad)
    return [src_point[0] * cs - src_point[1] * sn, src_point[0] * sn + src_point[1] * cs]


def get_3rd_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The point that makes a right angle at ``b`` with ``a`` (official ``get_3rd_point``): ``a - b`` turned 90°."""
    direct = a - b
    return b + np.array([-direct[1], direct[0]], dtype=np.float32)


def get_affine_transform(center: ArrayLike, scale: ArrayLike, rot: float, output_size: Sequence[float],
                         shift: Sequence[float] = (0.0, 0.0), inv: bool = False) -> np.ndarray:
    """The 2 x 3 matrix from photo pixels to crop pixels (official ``get_affine_transform``); ``inv``: back.

    Three points fix an affine map: the box centre goes to the crop centre, the point half a box
    width above it (turned by ``rot`` degrees) half a crop width above that, and a third point at a
    right angle. Only ``scale[0]`` (the width) sets the zoom, the same on both axes: a scale of
    another aspect ratio than ``output_size`` (width, height) is not stretched, which is why
    ``box2cs`` fixes the aspect ratio first. ``shift``: the centre moved by that fraction of the
    box. ``cv2.getAffineTransform`` solves for the matrix in float64 from float32 points; so does
    this (``np.linalg.solve``).
    """
    center, scale = _check_center_scale(center, scale)
    out_w, out_h = _check_output_size(output_size)
    rot = _number("rot", rot, "the rotation in degrees (0 for none)")
    # the official code passes inv=1 (transform_preds): 0 and 1 are taken as well as bools
    inv = bool(inv) if isinstance(inv, (int, np.integer)) and not isinstance(inv, bool) and inv in (0, 1) \
        else flag("inv", inv, TypeError)
    scale_tmp = scale * 200.0  # 200 = pixel_std: scale is in units of 200 pixels
    src_w = scale_tmp[0]
    rot_rad = np.pi * rot / 180
    src_dir = get_dir([0, src_w * -0.5], rot_rad)
    dst_dir = np.array([0, out_w * -0.5], np.float32)
    shift = np.asarray(shift, dtype=np.float32)

    src = np.zeros((3, 2), dtype=np.float32)
    dst = np.zeros((3, 2), dtype=np.float32)
    src[0, :] = center + scale_tmp * shift
    src[1, :] = center + src_dir + scale_tmp * shift
    dst[0, :] = [out_w * 0.5, out_h * 0.5]
    dst[1, :] = np.array([out_w * 0.5, out_h * 0.5]) + dst_dir
    src[2:, :] = get_3rd_point(src[0, :], src[1, :])
    dst[2:, :] = get_3rd_point(dst[0, :], dst[1, :])
    return _affine_from_points(dst, src) if inv else _affine_from_points(src, dst)


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """What ``cv2.getAffineTransform(src, dst)`` returns: M (2 x 3, float64) with M @ (x, y, 1) = dst."""
    rows = np.hstack([src.astype(np.float64), np.ones((3, 1))])  # one (x, y, 1) per point
    return np.linalg.solve(rows, dst.astype(np.float64)).T


def affine_transform(pt: ArrayLike, t: np.ndarray) -> np.ndarray:
    """``t`` (2 x 3) applied to a point (x, y), or to each row of an N x 2 array (official ``affine_transform``)."""
    points = np.asarray(pt, dtype=np.float64)
    if points.shape[-1] < 2 or points.ndim > 2:
        raise ValueError(f"affine_transform takes a point (x, y) or N points as an N x 2 array, got shape "
                         f"{points.shape}")
    xy1 = np.concatenate([points[..., :2], np.ones(points.shape[:-1] + (1,))], axis=-1)
    return xy1 @ np.asarray(t, dtype=np.float64).T


# ------------------------------------------------------------------ the crop
def warp_affine(image: ArrayLike, trans: np.ndarray, output_size: Sequence[int]) -> np.ndarray:
    """``cv2.warpAffine(image, trans, output_size, flags=cv2.INTER_LINEAR)`` without OpenCV.

    ``image``: H x W or H x W x C (uint8 or float); ``output_size``: (width, height), as cv2's dsize.
    Each crop pixel (u, v) samples the photo at ``trans``'s inverse applied to (u, v), bilinearly.
    OpenCV puts pixel centres at whole coordinates: pixel 0 covers -0.5 to 0.5. ``grid_sample`` with
    ``align_corners=False`` measures from the image's edges, from -1 to 1, so the centre of pixel x
    is at (2x + 1) / W - 1. Samples off the photo blend with zeros, as warpAffine's default border
    (BORDER_CONSTANT, 0): a box at the photo's edge gives a crop with black margins. A uint8 image
    comes back rounded to uint8, as cv2's does. Measured against cv2 on 1,200 random crops: within 1
    grey level of OpenCV 5.1; OpenCV 4.x puts each sample on a 1/32-pixel grid, which moves sharp
    edges by up to 7 grey levels on noise and 5 on the sample photo.
    """
    array = _check_photo(image, "warp_affine", allow_float=True)
    out_w, out_h = _check_output_size(output_size)
    back = _invert_affine(trans)  # crop -> photo
    u, v = np.meshgrid(np.arange(out_w, dtype=np.float64), np.arange(out_h, dtype=np.float64))
    x = back[0, 0] * u + back[0, 1] * v + back[0, 2]
    y = back[1, 0] * u + back[1, 1] * v + back[1, 2]
    height, width = array.shape[:2]
    grid = np.stack([(2 * x + 1) / width - 1, (2 * y + 1) / height - 1], axis=-1)  # pixel centres, see above
    planes = array.reshape(height, width, -1).astype(np.float32)
    source = torch.from_numpy(planes).permute(2, 0, 1)[None]
    sampled = F.grid_sample(source, torch.from_numpy(grid).float()[None], mode="bilinear", padding_mode="zeros",
                            align_corners=False)[0].permute(1, 2, 0).numpy()
    sampled = sampled.reshape((out_h, out_w) + array.shape[2:])
    if array.dtype == np.uint8:
        return np.clip(np.rint(sampled), 0, 255).astype(np.uint8)
    return sampled.astype(array.dtype)


def crop(img: ArrayLike, center: ArrayLike, scale: ArrayLike, output_size: Sequence[int],
         rot: float = 0) -> np.ndarray:
    """The person cut out of the photo at ``output_size`` (width, height) (official ``crop``)."""
    return warp_affine(img, get_affine_transform(center, scale, rot, output_size), output_size)


# ------------------------------------------------------------------ the flip
def flip_back(output_flipped: torch.Tensor | np.ndarray, matched_parts: Sequence[Sequence[int]]):
    """Heatmaps of a mirrored input, mirrored back (official ``flip_back``): B x J x h x w, a copy.

    Mirroring the heatmaps puts each peak back where the joint is; the joints of each pair in
    ``matched_parts`` then swap maps, since in the mirror the person's left wrist looks like a right
    wrist, and the network marked it so. Numpy in, numpy out; a tensor gives a tensor.
    """
    heatmaps = _check_heatmaps(output_flipped, "flip_back")
    pairs = _check_flip_pairs(matched_parts, heatmaps.shape[1])
    flipped = heatmaps.flip(3).clone()
    for left, right in pairs:
        flipped[:, [left, right]] = flipped[:, [right, left]]
    return flipped.numpy() if isinstance(output_flipped, np.ndarray) else flipped


def shift_heatmap(heatmaps: torch.Tensor) -> torch.Tensor:
    """``TEST.SHIFT_HEATMAP``: every column moved one cell right (``out[..., 1:] = out[..., :-1]``), a copy
    (numpy in, numpy out, as ``flip_back``).

    Why: heatmap cell c stands for input pixel 4c, and mirroring moves input pixel x to W - 1 - x,
    but cell c to w - 1 - c, i.e. pixel W - 4 - 4c. So the mirrored-back maps sit 3 input pixels
    (3/4 of a cell) left of the truth; one whole cell right leaves them 1/4 cell right. Column 0 keeps
    its own values (the official code copies, it does not pad).
    """
    maps = torch.from_numpy(np.ascontiguousarray(heatmaps)) if isinstance(heatmaps, np.ndarray) else heatmaps
    if not isinstance(maps, torch.Tensor) or maps.dim() < 1:
        raise TypeError(f"shift_heatmap takes heatmaps as a tensor or numpy array (... x h x w), got "
                        f"{type(heatmaps).__name__}")
    shifted = maps.clone()
    shifted[..., 1:] = maps[..., :-1]
    return shifted.numpy() if isinstance(heatmaps, np.ndarray) else shifted


def fliplr_joints(joints: ArrayLike, joints_vis: ArrayLike, width: int,
                  matched_parts: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Joints of a photo ``width`` pixels wide, mirrored (official ``fliplr_joints``, the training flip).

    x becomes ``width - 1 - x`` (pixel centres: pixel 0 goes to pixel width - 1) and the joints of
    each pair swap rows; returns ``(joints * joints_vis, joints_vis)`` as the official code, copies.
    """
    joints = np.array(joints, dtype=np.float64)
    if joints.ndim != 2 or joints.shape[1] < 2:
        raise ValueError(f"fliplr_joints takes joints as one row per joint, (x, y) or the official (x, y, 0) in "
                         f"pixels (J x 2 or J x 3), got shape {joints.shape}")
    joints_vis = np.array(joints_vis, dtype=np.float64)
    if joints_vis.ndim not in (1, 2) or len(joints_vis) != len(joints):
        raise ValueError(f"joints_vis is one flag per joint, {len(joints)} here (J, J x 1, or J x 3 as the official "
                         f"joints_vis), got shape {joints_vis.shape}: give each joint of joints its flag")
    joints_vis = joints_vis if joints_vis.ndim == 2 else joints_vis[:, None]  # J x 1, or J x 3 as official
    width = _number("width", width, "the photo's width in pixels", positive=True)
    pairs = _check_flip_pairs(matched_parts, len(joints))
    joints[:, 0] = width - joints[:, 0] - 1
    for left, right in pairs:
        joints[[left, right]] = joints[[right, left]]
        joints_vis[[left, right]] = joints_vis[[right, left]]
    return joints * joints_vis, joints_vis


@torch.no_grad()
def flip_test(model: nn.Module, input: torch.Tensor, flip_pairs: Sequence[Sequence[int]] = COCO_FLIP_PAIRS,
              shift: bool = True) -> torch.Tensor:
    """The heatmaps ``validate`` scores with ``TEST.FLIP_TEST: true`` (``lib/core/function.py``).

    The model sees the crops and their mirror images; the mirror's heatmaps are flipped back with
    the pairs swapped (``flip_back``), moved one cell right (``shift_heatmap``, with
    ``TEST.SHIFT_HEATMAP``) and averaged with the first. A model returning a list gives its last
    output, as there.
    """
    _check_model(model, "flip_test", "model, input")  # in train mode BatchNorm would overwrite its statistics too
    shift = flag("shift", shift, TypeError)
    output = _heatmaps_of(model, input)
    pairs = _check_flip_pairs(flip_pairs, output.shape[1], "the model's heatmaps")
    output_flipped = flip_back(_heatmaps_of(model, input.flip(3)), pairs)
    if shift:
        output_flipped = shift_heatmap(output_flipped)  # "feature is not aligned", the official comment
    return (output + output_flipped) * 0.5


# ------------------------------------------------------------------ back to the photo
def transform_preds(coords: ArrayLike, center: ArrayLike, scale: ArrayLike, output_size: Sequence[int]) -> np.ndarray:
    """Heatmap coordinates (J x 2, cells) to photo pixels (official ``transform_preds``), float64.

    The inverse of the crop's transform, made for ``output_size`` = the heatmap's (width, height): a
    cell is 4 input pixels, and cell c at the heatmap's centre lands on the box's centre. Columns
    after the first two come back as 0, as there.
    """
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise ValueError(f"transform_preds takes one person's joints, J x 2 (x, y) in heatmap cells, got shape "
                         f"{coords.shape}; for a batch use get_final_preds")
    target_coords = np.zeros(coords.shape)
    trans = get_affine_transform(center, scale, 0, output_size, inv=True)
    target_coords[:, 0:2] = affine_transform(coords[:, 0:2], trans)
    return target_coords


def get_final_preds(batch_heatmaps: torch.Tensor | np.ndarray, center: ArrayLike, scale: ArrayLike,
                    post_process: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints in photo pixels (B x J x 2) and the heatmaps' peaks (``maxvals``, B x J x 1), float32.

    The official ``get_final_preds(config, batch_heatmaps, center, scale)``: each heatmap's argmax
    (``keypoints.max_preds``), with ``post_process`` (``config.TEST.POST_PROCESS``, true in every
    official config) a quarter cell towards the higher neighbour (``keypoints.decode``), then
    ``transform_preds`` with each crop's ``center`` and ``scale`` (B x 2, from ``box2cs``).
    ``maxvals`` is the network's confidence per joint: the COCO evaluation averages those above
    ``TEST.IN_VIS_THRE`` (0.2 in the COCO configs) and multiplies the box's score by that.
    """
    # a model's output taken outside torch.no_grad(), or on the GPU: read as numbers on the CPU, as validate does
    heatmaps = _check_heatmaps(batch_heatmaps, "get_final_preds").detach().cpu().float()
    _refuse_empty(heatmaps.shape, "get_final_preds")
    post_process = flag("post_process", post_process, TypeError)
    batch, _, heatmap_height, heatmap_width = heatmaps.shape
    center = _per_crop(center, batch, "center")
    scale = _per_crop(scale, batch, "scale")
    coords, maxvals = decode(heatmaps) if post_process else max_preds(heatmaps)
    coords = coords.numpy()
    preds = coords.copy()
    for i in range(batch):
        preds[i] = transform_preds(coords[i], center[i], scale[i], [heatmap_width, heatmap_height])
    return preds, maxvals.numpy().astype(np.float32)


# ------------------------------------------------------------------ all of it
@torch.no_grad()
def predict_keypoints(model: nn.Module, image, boxes: ArrayLike, flip: bool = True,
                      flip_pairs: Sequence[Sequence[int]] = COCO_FLIP_PAIRS, image_size: Sequence[int] = IMAGE_SIZE,
                      shift: bool = True, post_process: bool = True,
                      mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints of the people in ``boxes``, in photo pixels: (N x J x 2, float32), and ``maxvals`` (N x J x 1).

    ``image``: the photo, a PIL image or an H x W x 3 uint8 RGB array (``cv2.imread`` gives BGR:
    reverse it, ``img[..., ::-1]``). ``boxes``: N x 4, (x, y, w, h) in photo pixels. ``image_size``:
    the model's input (height, width); 256 x 192 as the official COCO configs. Per box, as the
    official code: ``box2cs``, ``crop`` (no rotation), ``ToTensor`` and ``Normalize`` (``mean``,
    ``std``); the crops go through the model together; with ``flip`` (``TEST.FLIP_TEST``) the mirror
    is averaged in (``flip_test``, ``flip_pairs`` naming the joints that swap: () when none do);
    then ``get_final_preds``. ``model`` must be in ``eval()`` mode.
    """
    _check_model(model)
    flip, shift, post_process = (flag(name, value, TypeError) for name, value in
                                 (("flip", flip), ("shift", shift), ("post_process", post_process)))
    _check_statistics(mean, std)
    photo = _check_photo(image, "predict_keypoints")
    boxes = _check_boxes(boxes, photo.shape[:2])
    height, width = image_size_hw(image_size)
    centers, scales = zip(*(box2cs(box, (height, width)) for box in boxes))
    crops = np.stack([crop(photo, c, s, (width, height)) for c, s in zip(centers, scales)])
    batch = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255  # transforms.ToTensor
    mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    batch = ((batch - mean) / std).to(_device_of(model))  # transforms.Normalize
    if flip:
        heatmaps = flip_test(model, batch, flip_pairs, shift)
    else:
        heatmaps = _heatmaps_of(model, batch)
    return get_final_preds(heatmaps.float().cpu(), np.stack(centers), np.stack(scales), post_process)


# ------------------------------------------------------------------ checks: what was wrong, what to do
def _heatmaps_of(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The model's heatmaps for ``batch`` (its last output, if it returns a list), checked."""
    output = model(batch)
    if isinstance(output, (list, tuple)) and output:
        output = output[-1]  # official: outputs[-1] for a model with intermediate outputs
    if not isinstance(output, torch.Tensor) or output.dim() != 4 or output.shape[0] != batch.shape[0]:
        got = f"shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else type(output).__name__
        raise TypeError(f"a pose model returns heatmaps, B x joints x h x w, but this model returned {got} for "
                        f"{tuple(batch.shape)} crops: build it with ht.create_model(variant, head='pose', "
                        f"num_joints=...)")
    return output.float()


def _check_model(model: object, who: str = "predict_keypoints", call: str = "model, image, boxes") -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{who}({call}): model must be a torch.nn.Module, e.g. "
                        f"ht.create_model('w32', head='pose'), got {type(model).__name__}")
    _check_pose_head(model, who)
    refuse_meta(model, "it cannot compute heatmaps")
    if model.training or any(m.training for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
        raise RuntimeError("the model is in training mode, where BatchNorm normalises the crops with their own "
                           "statistics: call model.eval() first, as the official validate does")


def _check_pose_head(model: nn.Module, who: str) -> None:
    """The package's other networks also return B x C x h x w maps (segmentation logits, the backbone's last
    branch), which would decode as keypoints without a word; a model of another library is taken as it is."""
    if isinstance(model, HRNet) and not isinstance(model, HRNetPose):
        raise TypeError(f"{who} needs a pose model, and this is the package's {type(model).__name__}: "
                        f"its output would decode as keypoints that mean nothing. Build one with "
                        f"ht.create_model(variant, head='pose') (num_joints=17 for COCO) and load pose weights")


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _check_photo(image, who: str, allow_float: bool = False) -> np.ndarray:
    """The photo as a numpy array (H x W x 3 uint8 for predict_keypoints), or an error that says what to pass."""
    if isinstance(image, torch.Tensor):
        raise TypeError(f"{who} takes the photo itself, a PIL image or an H x W x 3 uint8 numpy array, not a "
                        f"tensor of shape {tuple(image.shape)}: the crop is cut from the photo's pixels and "
                        "normalised afterwards, as the official code does (for a PIL image: "
                        "PIL.Image.open(path).convert('RGB'))")
    if isinstance(image, (str, bytes)) or not hasattr(image, "__array__") and not hasattr(image, "__array_interface__"):
        raise TypeError(f"{who} takes the photo as a PIL image or an H x W x 3 uint8 numpy array, got "
                        f"{type(image).__name__}" + (": open it first, PIL.Image.open(path).convert('RGB')"
                                                     if isinstance(image, str) else ""))
    array = np.asarray(image)
    shape_ok = array.ndim == 3 and array.shape[2] == 3 or allow_float and array.ndim in (2, 3)
    if not shape_ok or min(array.shape[:2], default=0) < 1:
        hint = {2: "a grey image: convert it, PIL's image.convert('RGB') or np.stack([a] * 3, axis=-1)",
                3: "channels come last (H x W x 3): for 3 x H x W use a.transpose(1, 2, 0); RGBA: a[..., :3]"}
        raise ValueError(f"{who} needs an RGB photo, H x W x 3, got shape {array.shape}; "
                         + hint.get(array.ndim, "pass one photo"))
    if array.dtype != np.uint8 and not (allow_float and array.dtype.kind == "f"):
        raise TypeError(f"{who} takes the photo's 0-255 pixels as uint8 (what PIL and cv2.imread give), got "
                        f"{array.dtype}: for values in [0, 1] use (a * 255).round().astype(np.uint8)")
    return array


def _check_statistics(mean, std) -> None:
    """Normalize's ``mean`` and ``std``: one number per RGB channel (or one for all), finite, ``std`` positive, and
    on the [0, 1] scale that ToTensor gives the crop (statistics of 0-255 pixels would pass without a word)."""
    arrays = {}
    for name, value, default in (("mean", mean, IMAGENET_MEAN), ("std", std, IMAGENET_STD)):
        try:
            if isinstance(value, (str, bytes)):
                raise TypeError
            array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value,
                               dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            array = None
        if array is None or array.size not in (1, 3) or not np.isfinite(array).all():
            raise ValueError(f"{name} is three finite numbers, one per RGB channel (or one for all three), e.g. "
                             f"ImageNet's {name}={default} (the default), got {value!r}")
        arrays[name] = array
    if (arrays["std"] <= 0).any():
        raise ValueError(f"std divides each channel, so it must be positive, got std={std!r}: ImageNet's is "
                         f"std={IMAGENET_STD} (the default)")
    if arrays["mean"].max() > 1 or arrays["std"].max() > 1:
        raise ValueError(f"mean={mean!r} and std={std!r} are statistics of 0-255 pixels, but the photo is scaled to "
                         f"[0, 1] first (ToTensor divides by 255), as the official code does: divide them by 255, "
                         f"or pass ImageNet's mean={IMAGENET_MEAN}, std={IMAGENET_STD} (the defaults)")


def _invert_affine(trans) -> np.ndarray:
    """The 2 x 3 map back from crop to photo pixels for ``warp_affine``, or an error that says what ``trans`` is."""
    try:
        matrix = np.asarray(trans.detach().cpu() if isinstance(trans, torch.Tensor) else trans, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = None
    if matrix is None or matrix.shape != (2, 3):
        got = type(trans).__name__ if matrix is None else f"shape {matrix.shape}"
        raise ValueError(f"warp_affine's trans is the 2 x 3 matrix get_affine_transform returns (cv2.warpAffine's M), "
                         f"got {got}" + ("; for a 3 x 3 one whose last row is (0, 0, 1) pass trans[:2]"
                                         if matrix is not None and matrix.shape == (3, 3) else ""))
    try:
        if not np.isfinite(matrix).all():
            raise np.linalg.LinAlgError
        return np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    except np.linalg.LinAlgError:
        raise ValueError(f"warp_affine's trans {matrix.tolist()} has a NaN or infinite value or flattens the photo "
                         "onto a line (it has no inverse): make it with get_affine_transform(center, scale, rot, "
                         "output_size)") from None


def _check_box(box: ArrayLike) -> tuple[float, float, float, float]:
    values = np.asarray(box.detach().cpu() if isinstance(box, torch.Tensor) else box, dtype=np.float64)
    if values.shape != (4,):
        raise ValueError(f"a box is 4 numbers, (x, y, w, h) in photo pixels, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"the box {values.tolist()} has a NaN or infinite value: it is (x, y, w, h) in photo pixels")
    x, y, w, h = (float(v) for v in values)
    if w <= 0 or h <= 0:
        raise ValueError(f"the box (x, y, w, h) = {(x, y, w, h)} has {'no width' if w <= 0 else 'no height'}: boxes "
                         "are (x, y, width, height) in photo pixels; from corners (x1, y1, x2, y2) pass "
                         "(x1, y1, x2 - x1, y2 - y1)")
    return x, y, w, h


def _check_boxes(boxes: ArrayLike, photo_hw: tuple[int, int]) -> np.ndarray:
    values = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, dtype=np.float64)
    if values.ndim == 1:
        values = values[None]
    if values.ndim != 2 or values.shape[1] != 4 or len(values) == 0:
        raise ValueError(f"boxes is N x 4, one (x, y, w, h) per person in photo pixels, got shape {values.shape}")
    height, width = photo_hw
    for box in values:
        x, y, w, h = _check_box(box)
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise ValueError(f"the box (x, y, w, h) = {(x, y, w, h)} lies wholly outside the {width} x {height} "
                             "photo, so its crop would be black: boxes are (x, y, width, height) in this photo's "
                             "pixels (a box found on a resized copy must be scaled back first)")
    return values


def _check_center_scale(center: ArrayLike, scale: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    center = np.asarray(center, dtype=np.float32)
    if np.ndim(scale) == 0:  # the official code accepts one number for both sides
        scale = [scale, scale]
    scale = np.asarray(scale, dtype=np.float32)
    if center.shape != (2,) or scale.shape != (2,):
        raise ValueError(f"center is (x, y) and scale (width, height) / 200, as box2cs returns them; got shapes "
                         f"{center.shape} and {scale.shape}")
    if not (np.isfinite(center).all() and np.isfinite(scale).all()) or not (scale > 0).all():
        raise ValueError(f"scale must be two positive numbers (the box's width and height / 200) and center two "
                         f"finite ones, got center {center.tolist()}, scale {scale.tolist()}: make them with box2cs")
    return center, scale


def _check_output_size(output_size: Sequence[int]) -> tuple[int, int]:
    try:
        out_w, out_h = output_size
    except (TypeError, ValueError):
        raise ValueError(f"output_size is (width, height), as the official MODEL.IMAGE_SIZE [192, 256]; got "
                         f"{output_size!r}") from None
    if not all(isinstance(v, (int, np.integer, float)) and not isinstance(v, bool) and 1 <= v < math.inf
               and v == int(v) for v in (out_w, out_h)):
        raise ValueError(f"output_size is (width, height), two whole numbers of pixels, as the official "
                         f"MODEL.IMAGE_SIZE [192, 256]; got {output_size!r}")
    return int(out_w), int(out_h)


def _check_heatmaps(heatmaps, who: str) -> torch.Tensor:
    if isinstance(heatmaps, np.ndarray):
        heatmaps = torch.from_numpy(np.ascontiguousarray(heatmaps))
    if not isinstance(heatmaps, torch.Tensor) or heatmaps.dim() != 4:
        got = f"shape {tuple(heatmaps.shape)}" if hasattr(heatmaps, "shape") else type(heatmaps).__name__
        raise ValueError(f"{who} takes B x J x h x w heatmaps (a 4-d tensor or array), got {got}; for one crop's "
                         "heatmaps use heatmaps[None]")
    return heatmaps


def _check_flip_pairs(pairs, num_joints: int, what: str = "the heatmaps") -> list[tuple[int, int]]:
    """``pairs`` as a list of (left, right) joint indices below ``num_joints``, each joint in one pair at most."""
    try:
        checked = [(int(a), int(b)) for a, b in pairs]
    except (TypeError, ValueError):
        raise ValueError(f"flip_pairs is a list of (left, right) joint indices, as COCO's ((1, 2), (3, 4), ...), "
                         f"or () when no joints swap; got {pairs!r}") from None
    seen = [j for pair in checked for j in pair]
    if any(j < 0 or j >= num_joints for j in seen):
        bad = next(j for j in seen if j < 0 or j >= num_joints)
        raise ValueError(f"flip_pairs names joint {bad} but {what} hold {num_joints} joint{'s' * (num_joints != 1)} "
                         f"(0 to {num_joints - 1}): COCO_FLIP_PAIRS is for COCO's 17 joints; give your own joints' "
                         "pairs, or flip_pairs=() if none swap")
    if len(set(seen)) != len(seen):
        raise ValueError(f"flip_pairs {checked} has a joint in two pairs (or paired with itself): each left joint "
                         "swaps with exactly one right joint")
    return checked


def _per_crop(values: ArrayLike, batch: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float32)
    if array.shape != (batch, 2):
        raise ValueError(f"{name} is one pair per crop, {batch} x 2 for these heatmaps, got shape {array.shape}: "
                         f"stack box2cs's results, e.g. np.stack([c for c, s in results])")
    return array
