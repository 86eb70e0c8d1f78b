"""Files the lessons use: the sample photo and small checkpoints under ``assets/``.

``assets/`` sits beside the package in the repository (a clone, or the Colab setup
cell's clone). The sample photo is also found in matplotlib's own sample data, so
it is there even when the package was installed without the repository.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ._validate import flag, image_shape_hint, image_size_hw, non_finite_summary

_PACKAGE = Path(__file__).resolve().parent
# The repository's assets/ (a clone, an editable install); else the copy a wheel carries
# (python -m hrnet_teach.colab --wheel puts it in hrnet_teach/_course/assets).
ASSETS_DIR = next((d for d in (_PACKAGE.parent / "assets", _PACKAGE / "_course" / "assets") if d.is_dir()),
                  _PACKAGE.parent / "assets")
SAMPLE_PHOTO = "grace_hopper.jpg"

# ImageNet statistics: every official HRNet model expects inputs normalised this way.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _imagenet_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std shaped (3, 1, 1), on ``x``'s device and dtype, to broadcast over (B,) 3 x H x W."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a tensor (B,) 3 x H x W, got {type(x).__name__}"
                        + (": torch.from_numpy(x)" if hasattr(x, "__array__") else ""))
    if x.dim() < 3 or x.shape[-3] != 3:
        raise ValueError(f"expected (B,) 3 x H x W RGB values, got shape {tuple(x.shape)}; {image_shape_hint(x)}")
    if not x.is_floating_point():  # an integer mean and std would be 0, and every value NaN
        raise TypeError(f"expected float RGB values in [0, 1], got {str(x.dtype).removeprefix('torch.')} values: "
                        "for raw pixels (0-255) use x.float() / 255 first")
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return mean, std


def imagenet_normalize(x: torch.Tensor) -> torch.Tensor:
    """(B,) 3 x H x W values in [0, 1] -> normalised with the ImageNet mean and std."""
    mean, std = _imagenet_stats(x)
    return (x - mean) / std


def imagenet_denormalize(x: torch.Tensor) -> torch.Tensor:
    """Undo :func:`imagenet_normalize` (values back in [0, 1], not clamped)."""
    mean, std = _imagenet_stats(x)
    return x * std + mean


def asset_path(name: str) -> Path:
    """The path of ``assets/<name>``, or a FileNotFoundError that says where it was looked for."""
    path = ASSETS_DIR / name
    if path.exists():
        return path
    raise FileNotFoundError(
        f"{name} is not in {ASSETS_DIR}. The assets ship with the repository: run the course "
        "from a clone of it (on Colab, the notebook's first cell makes one)."
    )


def _photo_file() -> Path:
    try:
        return asset_path(SAMPLE_PHOTO)
    except FileNotFoundError:
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data" / SAMPLE_PHOTO


def sample_photo(size: tuple[int, int] | None = (256, 256)):
    """The sample photo as an RGB PIL image, resized to (height, width) when given."""
    from PIL import Image

    image = Image.open(_photo_file()).convert("RGB")
    if size is not None:
        square = isinstance(size, int) and not isinstance(size, bool)
        height, width = image_size_hw((size, size) if square else size, "size")
        image = image.resize((width, height), Image.BILINEAR)
    return image


def to_tensor(image, bgr: bool = False) -> torch.Tensor:
    """A PIL image (or H x W x 3 uint8 array) -> a 1 x 3 x H x W float tensor, ImageNet-normalised.

    The checkpoints expect RGB, /255, minus IMAGENET_MEAN, divided by IMAGENET_STD (the official
    ``input_transform``). ``bgr=True``: the array is in OpenCV's order (``cv2.imread``), so its channels are
    reversed to RGB first, as the official loader does.
    """
    import numpy as np

    bgr = flag("bgr", bgr, TypeError)  # a truthy "no" would swap red and blue without a word

    if isinstance(image, (str, Path)):
        raise TypeError(f"to_tensor takes an image, not a file name ({str(image)!r}): open it first, "
                        "to_tensor(PIL.Image.open(path).convert('RGB'))")
    if _channels_first_tensor(image):
        raise ValueError(f"to_tensor takes a PIL image or an H x W x 3 array, got a tensor of shape "
                         f"{tuple(image.shape)}: {_tensor_hint(image)}")
    raw = np.asarray(image)
    array = np.asarray(raw, dtype=np.float32) / 255.0
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {array.shape}; {_rgb_hint(image, array.shape)}")
    _check_pixel_values(raw)
    if bgr:  # copy: torch.from_numpy takes no negative strides
        array = np.ascontiguousarray(array[..., ::-1])
    return imagenet_normalize(torch.from_numpy(array).permute(2, 0, 1)).unsqueeze(0)


def _check_pixel_values(raw) -> None:
    """0-255 pixels, as to_tensor divides by 255: a 16-bit image (PNG, TIFF: 0-65535) came out up to 257 times
    too bright without a word, and NaN values ran through the network into NaN maps."""
    import numpy as np

    if raw.size == 0:
        return
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():
        raise ValueError(f"the image holds {non_finite_summary(raw)} value(s): to_tensor takes 0-255 pixels; check "
                         "what made the image")
    top = raw.max()
    if raw.dtype.kind in "iu" and raw.dtype.itemsize > 1 and top > 255:  # uint16, int32 ...
        raise ValueError(f"the image is {raw.dtype} (values up to {top}): to_tensor takes 0-255 pixels; convert it "
                         "with (a / 257).astype(np.uint8) for 16-bit, or PIL's image.convert('RGB')")
    if raw.dtype.kind == "f" and 0 < top <= 1:  # already divided by 255 once
        raise ValueError("the image's values are all in [0, 1], but to_tensor divides by 255 itself: pass the "
                         "0-255 image (uint8, as PIL gives it), or multiply by 255 first")


def _channels_first_tensor(image) -> bool:
    """A (1 x) 3 x H x W tensor: the model's input, or torchvision's ToTensor output. (An H x W x 3
    tensor is an image to_tensor takes, as before.)"""
    if not isinstance(image, torch.Tensor):
        return False
    return (image.dim() == 4 and image.shape[1] == 3) or (image.dim() == 3 and image.shape[0] == 3 != image.shape[2])


def _tensor_hint(x: torch.Tensor) -> str:
    """What to do with a (1 x) 3 x H x W tensor given to to_tensor, whose work may be done already."""
    batch = "" if x.dim() == 4 else ".unsqueeze(0)"
    return (f"already a tensor, channels first. Normalised already, it is the model's input "
            f"({'x.unsqueeze(0)' if batch else 'x as it is'}); with values in [0, 1] (torchvision's ToTensor), "
            f"normalise it: hrnet_teach.assets.imagenet_normalize(x){batch}")


def _rgb_hint(image, shape: tuple[int, ...]) -> str:
    """How to make ``image`` (a PIL image or an array of ``shape``) the H x W x 3 RGB that to_tensor takes."""
    mode = getattr(image, "mode", None)
    if isinstance(mode, str) and mode != "RGB":  # a PIL image: grey ('L'), RGBA, a palette ('P') ...
        return f"the PIL image is in mode {mode!r}: use image.convert('RGB')"
    if len(shape) == 3 and shape[2] == 4:
        return "that is RGBA: drop the alpha channel with a[..., :3]"
    if len(shape) == 2 or (len(shape) == 3 and 1 in (shape[0], shape[2])):
        return "that is a grey image: make three channels of it with np.stack([np.squeeze(a)] * 3, axis=-1)"
    if len(shape) == 3 and shape[0] == 3:
        return "the channels come first: move them last with a.transpose(1, 2, 0)"
    if len(shape) == 4:
        return "that is a batch: pass one image, a[0]"
    return "pass one RGB image, as PIL.Image.open(path).convert('RGB') gives it"


def to_image(x: torch.Tensor):
    """Undo :func:`to_tensor`: a (1 x) 3 x H x W normalised tensor -> an H x W x 3 float array in [0, 1]."""
    if not isinstance(x, torch.Tensor) and not hasattr(x, "__array__"):  # None: torch's "Could not infer dtype"
        raise TypeError(f"to_image takes a normalised image tensor (1 x) 3 x H x W, got {type(x).__name__}")
    x = torch.as_tensor(x).detach().float().cpu()
    if x.dim() == 4 and len(x) > 1:  # taking x[0] quietly would show another image than the one meant
        raise ValueError(f"to_image takes one image, got a batch of {len(x)}: pass one of them, x[k]")
    if x.dim() == 4:
        x = x[0]
    if x.dim() != 3 or x.shape[0] != 3:
        raise ValueError(f"to_image takes a normalised image (1 x) 3 x H x W, got shape {tuple(x.shape)}; "
                         "a mask of classes draws with hrnet_teach.data.colorize")
    return imagenet_denormalize(x).clamp(0, 1).permute(1, 2, 0).numpy()
