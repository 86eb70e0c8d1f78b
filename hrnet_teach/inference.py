"""How the authors test segmentation: sliding windows, several scales, and the flip.

The official ``tools/test.py`` (HRNet/HRNet-Semantic-Segmentation) scores a checkpoint with
``testval``, which calls, one image at a time,
``test_dataset.multi_scale_inference(config, model, image, scales=config.TEST.SCALE_LIST,
flip=config.TEST.FLIP_TEST)``. This module is a readable rewrite of the pieces in
``lib/datasets/base_dataset.py`` (``multi_scale_aug``, ``pad_image``, ``inference``,
``multi_scale_inference``) and of the override in ``lib/datasets/cityscapes.py``:

- per scale, resize the image so that its long side is ``base_size * scale`` (``multi_scale_aug``);
- cut windows of ``crop_size`` every ``2/3`` of a crop, padding the ones that run past the border
  with a black pixel (``-mean / std`` after normalisation), and average where windows overlap;
- per window, ``inference``: the logits resized to the window, averaged with those of the mirrored
  window (mirrored back), then ``exp()``;
- resize each scale's scores to the image and **sum** them over the scales.

``exp()`` is written for the network's raw logits (the official ``last_layer`` is a plain conv):
``exp(logits)`` is softmax times a per-pixel factor, ``sum(exp(logits))``, so these scores are not
probabilities, and a window or scale where the network is more confident weighs more in the sums.
A network that ends in ``LogSoftmax`` (the learner's modified file) gets probabilities from the same
``exp()``. ``softmax=True`` averages probabilities instead. Within one window the argmax is the same.

The git branches differ only in small ways: ``master`` and ``pytorch-v1.1`` take no ``config``,
pick no output of a multi-output model, and resize with ``F.upsample(..., mode='bilinear')``, i.e.
``align_corners=False``; the ``HRNet-OCR`` git branch uses ``config.MODEL.ALIGN_CORNERS`` for every
resizing of scores and ``config.TEST.OUTPUT_INDEX`` (-1: the OCR output, not the auxiliary one).
Here the scores are resized with the model's own ``align_corners``, the image with ``False`` (the
official code resizes the image with ``cv2.resize``, whose bilinear samples pixel centres).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._validate import flag
from .assets import IMAGENET_MEAN, IMAGENET_STD
from .backbone import HRNet
from .heads import HRNetPose, HRNetSegmentation
from .ocr import HRNetOCR

# ImageNet statistics, as the official BaseDataset's defaults (RGB order: input_transform flips cv2's BGR)
MEAN, STD = IMAGENET_MEAN, IMAGENET_STD
STRIDE_RATE = 2 / 3  # base_dataset.py: stride_h = np.int(self.crop_size[0] * 2.0 / 3.0)

Size = Union[int, Sequence[int]]


# ------------------------------------------------------------------ one window
@torch.no_grad()
def inference(model: nn.Module, image: torch.Tensor, flip: bool = False, output_index: int = -1,
              softmax: bool = False) -> torch.Tensor:
    """Scores of one window at its own size: the official ``BaseDataset.inference``.

    The logits (``output[output_index]`` when the model returns several, as HRNet-OCR's
    ``[aux, ocr]``) are resized to the window; with ``flip`` the mirrored window's logits are
    mirrored back and the two averaged, and ``exp()`` of the result is returned (``softmax=True``:
    the softmax of each pass, averaged).
    """
    _check_model(model, "inference")  # in train mode BatchNorm would also overwrite its statistics, under no_grad
    flip, softmax = flag("flip", flip), flag("softmax", softmax)
    align = _align_corners(model)

    def logits(x):
        out = model(x)
        out = _one_output(out, output_index) if isinstance(out, (list, tuple)) else out
        _check_output(out, x)
        return F.interpolate(out.float(), size=x.shape[-2:], mode="bilinear", align_corners=align)

    pred = logits(image)
    if not flip:
        return pred.softmax(1) if softmax else pred.exp()
    mirrored = logits(image.flip(-1)).flip(-1)  # flip the scores back, so pixel (i, j) meets pixel (i, j)
    if softmax:
        return (pred.softmax(1) + mirrored.softmax(1)) / 2
    return ((pred + mirrored) / 2).exp()  # official: pred += flip_pred; pred * 0.5; then exp()


# ------------------------------------------------------------------ geometry
def scaled_size(height: int, width: int, base_size: int, scale: float) -> tuple[int, int]:
    """The size ``multi_scale_aug`` resizes to: the long side becomes ``int(base_size * scale + 0.5)``,
    the other keeps the aspect ratio (rounded the same way)."""
    long_size = int(base_size * scale + 0.5)
    if height > width:
        return long_size, int(width * long_size / height + 0.5)
    return int(height * long_size / width + 0.5), long_size


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Where the official windows start along one side: ``ceil((length - crop) / stride) + 1`` of
    them, every ``stride`` pixels; the last may run past the end (it is padded)."""
    count = math.ceil(max(length - crop, 0) / stride) + 1
    return [i * stride for i in range(count)]


def pad_image(image: torch.Tensor, size: tuple[int, int], pad_value: torch.Tensor) -> torch.Tensor:
    """``pad_image``: pad the bottom and right up to ``size`` with one value per channel
    (``-mean/std``, the normalised black pixel); larger sides are left as they are."""
    h, w = image.shape[-2:]
    pad_h, pad_w = max(size[0] - h, 0), max(size[1] - w, 0)
    if pad_h == 0 and pad_w == 0:
        return image
    out = pad_value.view(1, -1, 1, 1).expand(image.shape[0], -1, h + pad_h, w + pad_w).clone()
    out[..., :h, :w] = image
    return out


# ------------------------------------------------------------------ one scale
def sliding_window(model: nn.Module, image: torch.Tensor, crop_size: tuple[int, int], flip: bool,
                   stride_rate: float = STRIDE_RATE, pad_value: Optional[torch.Tensor] = None,
                   **kw) -> torch.Tensor:
    """One scale of ``BaseDataset.multi_scale_inference``: scores at ``image``'s size, averaged over
    overlapping windows of ``crop_size`` (padded to it when they run past the border)."""
    crop_size = _pair("crop_size", crop_size)  # public: an int was "'int' object is not iterable"
    height, width = image.shape[-2:]
    pad_value = _pad_value(image) if pad_value is None else pad_value
    if max(height, width) <= min(crop_size):  # the whole image in one padded window
        return inference(model, pad_image(image, crop_size, pad_value), flip, **kw)[..., :height, :width]
    image = pad_image(image, crop_size, pad_value)  # a side shorter than the crop
    new_h, new_w = image.shape[-2:]
    stride_h, stride_w = (max(int(c * stride_rate), 1) for c in crop_size)
    pieces = []
    for h0 in window_starts(new_h, crop_size[0], stride_h):
        for w0 in window_starts(new_w, crop_size[1], stride_w):
            h1, w1 = min(h0 + crop_size[0], new_h), min(w0 + crop_size[1], new_w)
            window = pad_image(image[..., h0:h1, w0:w1], crop_size, pad_value)
            pred = inference(model, window, flip, **kw)[..., : h1 - h0, : w1 - w0]  # the padding's scores dropped
            pieces.append(((h0, h1, w0, w1), pred))
    return _average(pieces, new_h, new_w)[..., :height, :width]


def cityscapes_windows(model: nn.Module, image: torch.Tensor, crop_size: tuple[int, int], scale: float,
                       flip: bool, **kw) -> torch.Tensor:
    """One scale of ``Cityscapes.multi_scale_inference`` (the override): the whole image for
    ``scale <= 1``; above, windows every whole crop, the last ones shifted back inside the image
    (``h0 = max(h1 - crop, 0)``), so nothing is padded."""
    if scale <= 1.0:
        return inference(model, image, flip, **kw)
    new_h, new_w = image.shape[-2:]
    pieces = []
    for r0 in window_starts(new_h, crop_size[0], crop_size[0]):
        for c0 in window_starts(new_w, crop_size[1], crop_size[1]):
            h1, w1 = min(r0 + crop_size[0], new_h), min(c0 + crop_size[1], new_w)
            h0, w0 = max(h1 - crop_size[0], 0), max(w1 - crop_size[1], 0)
            pieces.append(((h0, h1, w0, w1), inference(model, image[..., h0:h1, w0:w1], flip, **kw)))
    return _average(pieces, new_h, new_w)


def _average(pieces: list, height: int, width: int) -> torch.Tensor:
    """Each window's scores added where it lies (``preds[:, :, h0:h1, w0:w1] += pred``), divided by
    how many windows cover each pixel (``count``): the official ``preds / count``."""
    first = pieces[0][1]
    preds = first.new_zeros(*first.shape[:2], height, width)
    count = first.new_zeros(1, 1, height, width)
    for (h0, h1, w0, w1), pred in pieces:
        preds[..., h0:h1, w0:w1] += pred
        count[..., h0:h1, w0:w1] += 1
    return preds / count


# ------------------------------------------------------------------ the whole protocol
@torch.no_grad()
def multi_scale_inference(model: nn.Module, image: torch.Tensor, scales: Sequence[float] = (1.0,),
                          flip: bool = False, crop_size: Optional[Size] = None, base_size: Optional[int] = None,
                          stride_rate: float = STRIDE_RATE, cityscapes: bool = False, output_index: int = -1,
                          softmax: bool = False, mean: Sequence[float] = MEAN,
                          std: Sequence[float] = STD) -> torch.Tensor:
    """Class scores (1 x K x H x W, at the image's size) as the official test computes them.

    ``image``: 1 x 3 x H x W, normalised (``hrnet_teach.assets.to_tensor``); the official code takes
    one image at a time. ``scales``: ``TEST.SCALE_LIST`` (the README's multi-scale runs use 0.5,
    0.75, ..., 1.75, plus 2.0 for PASCAL-Context, COCO-Stuff and ADE20K). ``flip``: ``TEST.FLIP_TEST``.
    ``crop_size``: (height, width) of a window, ``TEST.IMAGE_SIZE`` reversed; None: no windows, each
    scale in one pass. ``base_size``: ``TEST.BASE_SIZE``, the long side at scale 1 (None: the image's
    own). ``cityscapes=True``: the Cityscapes override (stride = crop, no padding, whole image for
    scales <= 1). ``mean``/``std`` only set the padding value (black). Scores are summed over scales.
    """
    crop, base_size, scales = _check_args(model, image, scales, crop_size, base_size, stride_rate)
    flip, softmax = flag("flip", flip), flag("softmax", softmax)  # "no" is a true string
    _check_output_index(output_index)
    if flag("cityscapes", cityscapes) and crop is None:  # else silently one pass per scale, no windows
        raise ValueError("cityscapes=True changes how the windows are cut (stride = crop, no padding), and there are "
                         "no windows without crop_size: give crop_size (the official Cityscapes files: (1024, 2048)), "
                         "or leave cityscapes out")
    core = _unwrap(model)
    kw = dict(output_index=output_index, softmax=softmax)
    height, width = image.shape[-2:]
    pad_value = _pad_value(image, mean, std)
    final = 0
    for scale in scales:
        size = scaled_size(height, width, base_size, scale)
        scaled = F.interpolate(image, size=size, mode="bilinear", align_corners=False)  # cv2.INTER_LINEAR
        if crop is None:
            preds = inference(model, scaled, flip, **kw)
        elif cityscapes:
            preds = cityscapes_windows(model, scaled, crop, scale, flip, **kw)
        else:
            preds = sliding_window(model, scaled, crop, flip, stride_rate, pad_value, **kw)
        final = final + F.interpolate(preds, size=(height, width), mode="bilinear",
                                      align_corners=_align_corners(core))
    return final


def predict(model: nn.Module, image: torch.Tensor, **kwargs) -> torch.Tensor:
    """The label map (1 x H x W, int64): the argmax of :func:`multi_scale_inference`'s scores,
    as ``testval`` scores them; ``kwargs`` as there (``scales``, ``flip``, ``crop_size`` ...)."""
    return multi_scale_inference(model, image, **kwargs).argmax(1)


# ------------------------------------------------------------------ helpers and checks
def _unwrap(model: nn.Module) -> nn.Module:
    """The network inside DataParallel / DistributedDataParallel (the official test wraps it)."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


def _align_corners(model: nn.Module) -> bool:
    """How the scores are resized: as the model's own bilinear fusion (the official
    ``config.MODEL.ALIGN_CORNERS``); False for a model without the setting (PyTorch's default)."""
    return bool(getattr(_unwrap(model), "align_corners", False))


def _pad_value(image: torch.Tensor, mean: Sequence[float] = MEAN, std: Sequence[float] = STD) -> torch.Tensor:
    """``padvalue = -1.0 * np.array(self.mean) / np.array(self.std)``: a black pixel, normalised."""
    mean, std = (torch.tensor(v, dtype=image.dtype, device=image.device) for v in (mean, std))
    return -mean / std


def _check_output(out: object, x: torch.Tensor) -> None:
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        got = f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__
        raise TypeError(f"multi_scale_inference needs a segmentation model (B x classes x h x w scores), but the "
                        f"model returned {got} for an input of {tuple(x.shape)}: build it with "
                        "ht.create_model(variant, head='segmentation') or head='ocr'")


def _check_args(model, image, scales, crop_size, base_size, stride_rate):
    """The arguments, checked before any pass: (crop or None, base_size, scales)."""
    _check_model(model)
    _check_image(image)
    scales = _check_scales(scales)
    crop = None if crop_size is None else _pair("crop_size", crop_size)
    if base_size is None:
        base_size = max(image.shape[-2:])
    elif isinstance(base_size, bool) or not isinstance(base_size, numbers.Integral) or base_size < 1:
        raise ValueError(f"base_size must be a positive int (TEST.BASE_SIZE: the long side at scale 1.0, e.g. "
                         f"2048 for Cityscapes), or None for the image's own long side; got {base_size!r}")
    if isinstance(stride_rate, bool) or not isinstance(stride_rate, (int, float)) or not 0 < stride_rate <= 1:
        raise ValueError(f"stride_rate must be in (0, 1] (the windows' step as a fraction of the crop; the "
                         f"official 2/3 overlaps neighbours by a third), got {stride_rate!r}")
    for scale in scales:
        if min(scaled_size(*image.shape[-2:], base_size, scale)) < 1:
            raise ValueError(f"scale {scale} resizes the {tuple(image.shape[-2:])} image (base_size {base_size}) "
                             "to nothing: use a larger scale")
    return crop, int(base_size), scales


def _check_model(model: object, who: str = "multi_scale_inference") -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{who}(model, image): model must be a torch.nn.Module, e.g. "
                        f"ht.create_model('w18_small_v1', head='segmentation'), got {type(model).__name__}")
    core = _unwrap(model)
    # The package's other networks return maps too (a pose model's heatmaps, the backbone's or the pyramid's last
    # branch), whose argmax would pass for a label map; a model of another library is taken as it is.
    if isinstance(core, HRNet) and not isinstance(core, (HRNetSegmentation, HRNetOCR)):
        raise TypeError(f"{who} needs a segmentation model, and this is the package's "
                        f"{type(core).__name__}: its maps are not class scores. Build one with "
                        f"ht.create_model(variant, head='segmentation') or head='ocr'"
                        + (" (keypoints: hrnet_teach.pose_inference.predict_keypoints)"
                           if isinstance(core, HRNetPose) else ""))
    if core.training or any(m.training for m in core.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
        raise RuntimeError("the model is in training mode, where BatchNorm normalises each window with its own "
                           "statistics: call model.eval() first, as the official testval does")


def _check_image(image: object) -> None:
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor of shape (1, 3, H, W), got {type(image).__name__}: "
                        "convert a PIL image with hrnet_teach.assets.to_tensor(image)")
    if image.dim() != 4:
        hint = " (add the batch dimension with image.unsqueeze(0))" if image.dim() == 3 else ""
        raise ValueError(f"image must be 4-d (1, 3, H, W), got shape {tuple(image.shape)}{hint}")
    if not image.is_floating_point():
        raise TypeError(f"image must be a float tensor normalised with the ImageNet mean and std, got {image.dtype}: "
                        "use hrnet_teach.assets.to_tensor(pil_image)")
    largest = float(image.abs().max()) if image.numel() and image.device.type != "meta" else 0.0
    if largest > 10:  # ImageNet-normalised pixels lie within about -2.2 to 2.7; 0-255 values were taken silently
        raise ValueError(f"image holds values up to {largest:.0f}: pixels of 0-255, not normalised. The model takes "
                         "them normalised with the ImageNet mean and std: hrnet_teach.assets.to_tensor(pil_image), "
                         "or hrnet_teach.assets.imagenet_normalize(pixels / 255)")
    if image.shape[0] != 1:
        raise ValueError(f"image holds {image.shape[0]} images; the official multi_scale_inference takes one "
                         "(assert batch == 1), since each image is resized on its own: loop over them, e.g. "
                         "torch.cat([multi_scale_inference(model, x[i:i + 1]) for i in range(len(x))])")


def _one_output(outputs: Sequence[torch.Tensor], output_index: object) -> torch.Tensor:
    """``outputs[output_index]`` (TEST.OUTPUT_INDEX), or what the model's outputs are when that is no index."""
    _check_output_index(output_index)
    if not -len(outputs) <= output_index < len(outputs):
        raise ValueError(f"output_index={output_index}, but the model returns {len(outputs)} outputs (HRNet-OCR: "
                         f"[aux, ocr]): use 0 to {len(outputs) - 1}, or -1 for the last, as TEST.OUTPUT_INDEX")
    return outputs[output_index]


def _check_output_index(output_index: object) -> None:
    if isinstance(output_index, bool) or not isinstance(output_index, numbers.Integral):
        raise TypeError(f"output_index must be an int, the position in the model's list of outputs (-1: the last, "
                        f"HRNet-OCR's OCR logits), got {output_index!r}")


def _check_scales(scales: object) -> tuple[float, ...]:
    if isinstance(scales, numbers.Real) and not isinstance(scales, bool):
        scales = (scales,)
    if isinstance(scales, (np.ndarray, torch.Tensor)) and scales.ndim == 1:  # np.arange(0.5, 2.0, 0.25), say
        scales = scales.tolist()
    if not isinstance(scales, Sequence) or isinstance(scales, str) or len(scales) == 0:
        raise ValueError(f"scales must be a non-empty list of positive numbers (TEST.SCALE_LIST, e.g. [0.75, 1.0, "
                         f"1.25]), got {scales!r}")
    bad = [s for s in scales if isinstance(s, bool) or not isinstance(s, numbers.Real) or not s > 0]
    if bad:
        raise ValueError(f"scales must be positive numbers (1.0 = base_size), got {bad[0]!r} in {list(scales)}")
    return tuple(float(s) for s in scales)


def _pair(name: str, value: object) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    pair = pair.tolist() if isinstance(pair, (np.ndarray, torch.Tensor)) else pair  # numpy's ints count, as elsewhere
    ok = isinstance(pair, Sequence) and len(pair) == 2
    if not ok or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a (height, width) pair of them (the official "
                         f"crop_size is TEST.IMAGE_SIZE reversed: [2048, 1024] -> (1024, 2048)), got {value!r}")
    return int(pair[0]), int(pair[1])
