"""Data for training: generated scenes of shapes and of an arm (offline), Oxford-IIIT Pets (download on request).

``ShapesDataset`` draws each scene from its own random generator, seeded by
``(seed, split, index)``: item 417 is the same scene whoever asks for it, in
whatever order, without generating items 0..416 first, and the ``"val"`` split
never repeats a ``"train"`` scene. Nothing is downloaded.

The four classes are chosen so that a segmentation network needs the two
things HRNet is built to give at once (the paper's abstract: a representation
"semantically richer and spatially more precise"):

- ``thin line`` (class 3): strokes 3.5-4.5 pixels wide at 64 x 64, about one
  cell of the 1/4 grid. At 1/8 and coarser they fall between cells, so this
  class needs the high-resolution branch.
- ``small shape`` (1) vs ``large shape`` (2): discs and squares with the same
  colours and the same look, told apart only by their size. In the middle of a
  large disc every nearby pixel looks the same; the answer is in how far the
  object extends, so this class needs wide context, which the low-resolution
  branches carry, and fusion brings it back to the high-resolution one.
  Shapes never touch each other (lines may cross them), so each shape's size
  is there to be seen.

Boundaries are drawn anti-aliased: a pixel that an edge crosses mixes the
object's colour with what lies below, so it has no single right class. Those
pixels, a band about one pixel wide around every object, get ``IGNORE_INDEX``
(255), as in PASCAL VOC's void border and the Pets trimap's "border" class:
the loss skips them and the metrics do not count them.

``LimbScenes`` draws the same backgrounds and lines with one arm on top, its
shoulder, elbow and wrist the keypoints of a small pose task (``keypoints.py``).
"""
from __future__ import annotations

import colorsys
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union
from urllib.error import URLError

import numpy as np
import torch
from torch.utils.data import Dataset

from ._validate import positive_int
from .assets import imagenet_normalize
from .i18n import N_
from .keypoints import check_sigma, gaussian_heatmaps

IGNORE_INDEX = 255
CLASS_NAMES = ("background", "small shape", "large shape", "thin line")
NUM_CLASSES = len(CLASS_NAMES)
# A colour per class for pictures of masks (RGB in [0, 1]); ignored pixels are drawn white.
CLASS_COLOURS = ((0.15, 0.15, 0.15), (0.20, 0.60, 1.00), (1.00, 0.55, 0.10), (0.95, 0.20, 0.60))
IGNORE_COLOUR = (1.0, 1.0, 1.0)
# What a lesson prints or draws for each class: the names above are data (metrics.json keys, code compares
# them), the labels are text in the course's language.
_CLASS_LABELS = {"background": N_("background"), "small shape": N_("small shape"), "large shape": N_("large shape"),
                 "thin line": N_("thin line"), "pet": N_("pet")}


def class_label(name: str) -> str:
    """The class ``name`` (from ``CLASS_NAMES`` or ``PETS_CLASS_NAMES``) as the course's language writes it:
    "thin line" in the English lessons, 细线 in the Chinese ones. Other names come back as given."""
    return str(_CLASS_LABELS.get(name, name))

SPLITS = {"train": 0, "val": 1, "test": 2}  # each split its own stream of scenes
DATASETS = ("shapes", "pets")

# Object sizes as fractions of the image side, so the classes mean the same at any image size.
SMALL_RADIUS = (0.065, 0.10)
LARGE_RADIUS = (0.17, 0.26)  # a gap between the two ranges: size alone decides the class
LINE_WIDTH = (0.055, 0.07)
LINE_LENGTH = (0.45, 0.95)
PLACEMENT_TRIES = 20

Size = Union[int, tuple[int, int], Sequence[int]]


def _image_size(image_size: Size) -> tuple[int, int]:
    if getattr(image_size, "ndim", None) == 0 or isinstance(image_size, (int, float)):  # one number: a square
        image_size = (image_size, image_size)
    try:
        height, width = image_size
    except (TypeError, ValueError):
        raise ValueError(f"image_size must be an int or (height, width), got {image_size!r}") from None
    height, width = positive_int("image_size height", height), positive_int("image_size width", width)
    if height < 16 or width < 16:
        raise ValueError(f"image_size {height}x{width} is too small: use at least 16x16 (the network works at 1/4, then 1/32)")
    return height, width


def normalize(rgb: np.ndarray) -> torch.Tensor:
    """H x W x 3 floats in [0, 1] -> a 3 x H x W tensor normalised with the ImageNet mean and std."""
    return imagenet_normalize(torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1))


def colorize(mask: Union[torch.Tensor, np.ndarray]) -> np.ndarray:
    """A mask of class indices (H x W) -> an H x W x 3 picture (ignored pixels white)."""
    mask = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
    if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool):
        raise TypeError(f"colorize takes a mask of class indices (integers, H x W), got {mask.dtype} values of shape "
                        f"{mask.shape}; for a model's logits (classes x H x W) pass logits.argmax(0)")
    if mask.ndim != 2:
        looks_rgb = mask.ndim == 3 and mask.shape[-1] in (3, 4)
        raise ValueError(f"colorize takes one H x W mask, got shape {mask.shape}: " + (
            "that looks like an image (H x W x 3), not a mask; show it with plt.imshow(image)" if looks_rgb else
            "pick one mask, mask[0] (for a batch of predictions, logits.argmax(1)[0])"))
    unknown = np.unique(mask[(mask != IGNORE_INDEX) & ((mask < 0) | (mask >= len(CLASS_COLOURS)))])
    if unknown.size:  # painted white or as background, they would pass for ignored pixels or background
        raise ValueError(f"colorize has colours for classes 0 to {len(CLASS_COLOURS) - 1} (and {IGNORE_INDEX}, "
                         f"ignored), got {', '.join(map(str, unknown[:5].tolist()))}: it draws the course's datasets "
                         "(data.CLASS_NAMES, data.PETS_CLASS_NAMES); map other labels onto those first")
    palette = np.array(CLASS_COLOURS + (IGNORE_COLOUR,), dtype=np.float32)
    index = np.where(mask == IGNORE_INDEX, len(CLASS_COLOURS), mask)
    return palette[np.clip(index, 0, len(CLASS_COLOURS))]


# ---------------------------------------------------------------- signed distances
# Each returns, for every pixel centre, the distance in pixels to the shape's edge:
# negative inside, positive outside. Coverage of a pixel is then clip(0.5 - d, 0, 1).

def _disc(y: np.ndarray, x: np.ndarray, cy: float, cx: float, r: float) -> np.ndarray:
    return np.hypot(y - cy, x - cx) - r


def _square(y: np.ndarray, x: np.ndarray, cy: float, cx: float, half: float, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    u = np.abs(c * (x - cx) + s * (y - cy)) - half
    v = np.abs(-s * (x - cx) + c * (y - cy)) - half
    outside = np.hypot(np.maximum(u, 0), np.maximum(v, 0))
    return outside + np.minimum(np.maximum(u, v), 0)


def _segment(y: np.ndarray, x: np.ndarray, p: np.ndarray, q: np.ndarray, width: float) -> np.ndarray:
    d = q - p
    t = np.clip(((y - p[0]) * d[0] + (x - p[1]) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
    return np.hypot(y - (p[0] + t * d[0]), x - (p[1] + t * d[1])) - width / 2


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated, bright colour: objects stand out from the duller background."""
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.55, 1.0), rng.uniform(0.75, 1.0)))


def _window(height: int, width: int, cy: float, cx: float, reach: float) -> tuple[slice, slice]:
    """The rows and columns an object of centre (cy, cx) and extent ``reach`` can touch."""
    top, bottom = max(int(cy - reach) - 1, 0), min(int(cy + reach) + 2, height)
    left, right = max(int(cx - reach) - 1, 0), min(int(cx + reach) + 2, width)
    return slice(top, max(bottom, top)), slice(left, max(right, left))


class _Canvas:
    """A scene being drawn: the image, its mask, and which pixels are an edge (ignored)."""

    def __init__(self, rng: np.random.Generator, height: int, width: int) -> None:
        self.rng, self.height, self.width, self.side = rng, height, width, min(height, width)
        self.y, self.x = np.mgrid[0:height, 0:width].astype(np.float32) + np.float32(0.5)  # pixel centres
        # Background: a dull colour with a gentle gradient and a little noise (added last).
        base = rng.uniform(0.15, 0.55, size=3).astype(np.float32)
        slope = (rng.uniform(-0.25, 0.25, size=(2, 3)) / self.side).astype(np.float32)
        self.image = base + (self.y - height / 2)[..., None] * slope[0] + (self.x - width / 2)[..., None] * slope[1]
        self.mask = np.zeros((height, width), dtype=np.uint8)
        self.ambiguous = np.zeros((height, width), dtype=bool)
        self.placed: list[tuple[float, float, float]] = []  # (cy, cx, reach) of the shapes so far

    def draw(self, window: tuple[slice, slice], distance: np.ndarray, label: int) -> None:
        """Blend one object in by its anti-aliased coverage; its label covers what it hides."""
        coverage = np.clip(0.5 - distance, 0.0, 1.0)
        inside, edge = coverage >= 1.0, (coverage > 0.0) & (coverage < 1.0)
        colour = _bright_colour(self.rng).astype(np.float32)
        patch = self.image[window]
        patch += (colour - patch) * coverage[..., None]  # alpha blending, in place
        self.mask[window][distance <= 0] = label
        self.ambiguous[window][inside] = False  # fully hidden: whatever was mixed below is gone
        self.ambiguous[window][edge] = True

    def centre(self, margin: float) -> tuple[float, float]:
        return self.rng.uniform(margin, self.height - margin), self.rng.uniform(margin, self.width - margin)

    def free_centre(self, reach: float) -> Optional[tuple[float, float]]:
        # Shapes do not touch: each one's size is there to be seen whole (or cut by the border).
        for _ in range(PLACEMENT_TRIES):
            cy, cx = self.centre(0.5 * reach)  # may be cut by the border: size must still be read from what shows
            if all(np.hypot(cy - py, cx - px) > reach + pr + 2 for py, px, pr in self.placed):
                self.placed.append((cy, cx, reach))
                return cy, cx
        return None


def _draw_shapes(canvas: _Canvas) -> None:
    """Large shapes, then small ones: discs or squares of the same area, never touching."""
    rng, side = canvas.rng, canvas.side
    for label, radius_range, count in ((2, LARGE_RADIUS, rng.integers(1, 3)), (1, SMALL_RADIUS, rng.integers(1, 4))):
        for _ in range(count):
            r = rng.uniform(*radius_range) * side
            reach = 1.3 * r  # covers the rotated square of the same area too
            spot = canvas.free_centre(reach)
            if spot is None:
                continue
            cy, cx = spot
            window = _window(canvas.height, canvas.width, cy, cx, reach)
            y, x = canvas.y[window], canvas.x[window]
            if rng.random() < 0.5:
                distance = _disc(y, x, cy, cx, r)
            else:  # a square of the same area as the disc of radius r
                distance = _square(y, x, cy, cx, r * np.sqrt(np.pi) / 2, rng.uniform(0, np.pi / 2))
            canvas.draw(window, distance, label)


def _draw_lines(canvas: _Canvas) -> None:
    """One to three thin lines on top; they may cross the shapes."""
    rng, side = canvas.rng, canvas.side
    for _ in range(rng.integers(1, 4)):
        length = rng.uniform(*LINE_LENGTH) * side
        angle = rng.uniform(0, np.pi)
        cy, cx = canvas.centre(0.1 * side)
        half = 0.5 * length * np.array([np.sin(angle), np.cos(angle)])
        p, q = np.array([cy, cx]) - half, np.array([cy, cx]) + half
        width_px = rng.uniform(*LINE_WIDTH) * side
        window = _window(canvas.height, canvas.width, cy, cx, 0.5 * length + width_px)
        canvas.draw(window, _segment(canvas.y[window], canvas.x[window], p, q, width_px), 3)


def render_scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene: an H x W x 3 float image in [0, 1] and an H x W uint8 mask.

    Shapes first (large, then small; they never touch each other), then lines
    on top, which may cross them; each object's label covers what it hides,
    and its anti-aliased edge is ignored.
    Only the window around each object is computed, so a scene costs about a millisecond.
    """
    canvas = _Canvas(rng, height, width)
    _draw_shapes(canvas)
    _draw_lines(canvas)
    image = canvas.image + rng.normal(0.0, 0.03, size=canvas.image.shape).astype(np.float32)  # sensor noise
    canvas.mask[canvas.ambiguous] = IGNORE_INDEX
    return np.clip(image, 0.0, 1.0), canvas.mask


def _scene_index(index: object, length: int) -> int:
    """``index`` as a position in ``range(length)`` (negative ones count from the end), or a clear error."""
    try:
        index = operator.index(index)  # ints, numpy and 0-d torch integers
    except TypeError:
        raise TypeError(f"index must be a whole number, got {index!r} ({type(index).__name__})") from None
    if not -length <= index < length:
        raise IndexError(f"index {index} is out of range for a dataset of {length} scenes")
    return index % length


class ShapesDataset(Dataset):
    """Generated scenes of discs, squares and thin lines, labelled per pixel.

    Items: ``(image, mask)``, ``image`` a float 3 x H x W tensor normalised like
    ImageNet, ``mask`` a long H x W tensor of class indices (``CLASS_NAMES``)
    with ``IGNORE_INDEX`` on anti-aliased edges. Deterministic: the item at
    ``index`` depends only on ``(seed, split, index)`` and ``image_size``.
    """

    num_classes = NUM_CLASSES
    class_names = CLASS_NAMES

    def __init__(self, length: int, image_size: Size = (64, 64), seed: int = 0, split: str = "train") -> None:
        length = positive_int("length", length)  # how many scenes
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        seed = positive_int("seed", seed, minimum=0)
        self.length = length
        self.image_size = _image_size(image_size)
        self.seed = seed
        self.split = split

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLITS[self.split], index])

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The scene at ``index`` before normalisation: (H x W x 3 floats in [0, 1], H x W uint8 mask)."""
        return render_scene(self._rng(_scene_index(index, self.length)), *self.image_size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, mask = self.render(index)
        return normalize(rgb), torch.from_numpy(mask.astype(np.int64))

    def __repr__(self) -> str:
        h, w = self.image_size
        return f"ShapesDataset(length={self.length}, image_size=({h}, {w}), seed={self.seed}, split={self.split!r})"


# ---------------------------------------------------------------- an arm, for the pose head
JOINT_NAMES = ("shoulder", "elbow", "wrist")
_JOINT_LABELS = {"shoulder": N_("shoulder"), "elbow": N_("elbow"), "wrist": N_("wrist")}
ARM_WIDTH = 0.1  # of the image side: thicker than the thin lines (0.055-0.07), which cross the scene as distractors
SHOULDER_RADIUS = 0.09  # a disc wider than the arm marks the shoulder, so the two ends can be told apart
BONE_LENGTH = (0.22, 0.32)
# pixels: every joint's target cell is then 2 to w - 2 (stride 4), so the official PCK counts it (it skips x <= 1)
# and the decode refines it (1 < px < w - 1)
JOINT_MARGIN = 6.5


def joint_label(name: str) -> str:
    """A joint of ``JOINT_NAMES`` as the course's language writes it."""
    return str(_JOINT_LABELS.get(name, name))


def _arm_joints(canvas: _Canvas) -> np.ndarray:
    """Shoulder, elbow and wrist, J x 2 as (y, x), all at least JOINT_MARGIN inside the image."""
    rng, side = canvas.rng, canvas.side
    while True:  # most draws fit; a miss costs microseconds
        shoulder = np.array(canvas.centre(0.15 * side))
        turn = rng.uniform(0.5, 2.4) * rng.choice([-1, 1])  # the elbow bends, never straight nor folded back
        first = rng.uniform(0, 2 * np.pi)
        bones = rng.uniform(*BONE_LENGTH, size=2) * side
        elbow = shoulder + bones[0] * np.array([np.sin(first), np.cos(first)])
        wrist = elbow + bones[1] * np.array([np.sin(first + turn), np.cos(first + turn)])
        joints = np.stack([shoulder, elbow, wrist])
        limit = np.array([canvas.height, canvas.width]) - JOINT_MARGIN
        if (joints >= JOINT_MARGIN).all() and (joints < limit).all():
            return joints


def _draw_arm(canvas: _Canvas) -> np.ndarray:
    """One arm in one colour over the scene; its joints as J x 2 (x, y) pixel positions."""
    shoulder, elbow, wrist = joints = _arm_joints(canvas)
    width, y, x = ARM_WIDTH * canvas.side, canvas.y, canvas.x
    distance = np.minimum.reduce([_segment(y, x, shoulder, elbow, width), _segment(y, x, elbow, wrist, width),
                                  _disc(y, x, *shoulder, SHOULDER_RADIUS * canvas.side)])
    canvas.draw((slice(None), slice(None)), distance, 0)
    # (x, y), the official order, with pixel (i, j)'s centre at (j, i) as in COCO's annotations (the canvas puts
    # pixel centres at +0.5)
    return joints[:, ::-1] - 0.5


class LimbScenes(Dataset):
    """Generated scenes with one three-joint arm (``JOINT_NAMES``), for the pose head.

    Items: ``(image, heatmaps, weights, joints)``: the normalised 3 x H x W image, the
    J x H/4 x W/4 targets of ``keypoints.gaussian_heatmaps``, their J x 1 weights and the
    J x 2 joints (x, y) in pixels. One to three thin lines cross each scene as distractors; the
    arm is thicker, in one colour, with a disc on the shoulder. ``sigma`` is the targets' spread
    in heatmap cells (1 at 64 x 64, whose maps are 16 x 16; the official 256 x 192 COCO configs
    use 2 on 64 x 48 maps, 384 x 288 uses 3 on 96 x 72). Deterministic in
    ``(seed, split, index)``, like ``ShapesDataset``.
    """

    joint_names = JOINT_NAMES

    def __init__(self, length: int, image_size: Size = (64, 64), seed: int = 0, split: str = "train",
                 sigma: float = 1.0) -> None:
        self.length = positive_int("length", length)
        if split not in SPLITS:
            raise ValueError(f"split must be one of {tuple(SPLITS)}, got {split!r}")
        self.seed, self.split, self.sigma = positive_int("seed", seed, minimum=0), split, check_sigma(sigma)
        self.image_size = _image_size(image_size)
        if any(side % 4 or side < 32 for side in self.image_size):
            raise ValueError(f"image_size must be multiples of 4 and at least 32 (the heatmaps are at 1/4), got "
                             f"{self.image_size[0]}x{self.image_size[1]}")

    def __len__(self) -> int:
        return self.length

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The scene at ``index`` before normalisation: (H x W x 3 floats in [0, 1], J x 2 joints (x, y))."""
        index = _scene_index(index, self.length)
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index, len(JOINT_NAMES)])
        canvas = _Canvas(rng, *self.image_size)
        _draw_lines(canvas)
        joints = _draw_arm(canvas)
        image = canvas.image + rng.normal(0.0, 0.03, size=canvas.image.shape).astype(np.float32)  # sensor noise
        return np.clip(image, 0.0, 1.0), joints

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        rgb, joints = self.render(index)
        h, w = self.image_size
        heatmaps, weights = gaussian_heatmaps(joints, np.ones(len(joints)), (h, w), (h // 4, w // 4), self.sigma)
        return normalize(rgb), heatmaps, weights, torch.from_numpy(joints.astype(np.float32))

    def __repr__(self) -> str:
        h, w = self.image_size
        return f"LimbScenes(length={self.length}, image_size=({h}, {w}), seed={self.seed}, split={self.split!r})"


# ---------------------------------------------------------------- a real dataset (Colab)
PETS_CLASS_NAMES = ("background", "pet")


class DatasetUnavailableError(OSError):
    """The dataset cannot be loaded here (no torchvision, no network, no local copy)."""


def _pets_unavailable(error: BaseException, root: Path, download: bool) -> str:
    """What went wrong fetching Oxford-IIIT Pet, and what to do: not there, offline, or a folder that takes no files."""
    if isinstance(error, RuntimeError):  # torchvision: missing or corrupted files (also after a download's check)
        if download:
            return (f"Oxford-IIIT Pet in {root} is incomplete or corrupted ({error}): delete its oxford-iiit-pet "
                    "folder there and run again to download it afresh, about 800 MB.")
        return (f"Oxford-IIIT Pet is not in {root} ({error}). Pass download=True (the CLI does with --dataset pets) "
                "to fetch it, about 800 MB.")
    if isinstance(error, (URLError, TimeoutError, ConnectionError)):  # no network: URLError is an OSError too
        return (f"Could not download Oxford-IIIT Pet ({error}). You seem to be offline: connect (e.g. on Colab), "
                "or train offline with --dataset shapes.")
    return (f"Could not write Oxford-IIIT Pet into {root} ({error}): check that the folder is writable and has "
            "about 800 MB free, or pick another with --data-root.")


def _import_torchvision():
    try:
        import torchvision  # noqa: F401  (imported only when the real dataset is asked for)
        from torchvision.datasets import OxfordIIITPet
    except ImportError as error:
        raise DatasetUnavailableError(
            f"--dataset pets needs torchvision, which cannot be imported here ({error}). "
            "Install the torchvision that matches your torch (`pip install torchvision`; Colab has it), "
            "or train offline with --dataset shapes."
        ) from None
    return OxfordIIITPet


class PetsDataset(Dataset):
    """Oxford-IIIT Pet (Parkhi et al., 2012) as two-class segmentation: pet vs background.

    Loaded through torchvision's ``OxfordIIITPet`` (about 800 MB, downloaded to
    ``root`` only when ``download=True``). The trimap's third value, the
    "border" band around each animal, becomes ``IGNORE_INDEX``. Images are
    resized to ``image_size`` (bilinear), masks with nearest neighbour.
    ``length`` keeps the first scenes of the split when given.
    """

    num_classes = len(PETS_CLASS_NAMES)
    class_names = PETS_CLASS_NAMES

    def __init__(
        self,
        split: str = "train",
        image_size: Size = (128, 128),
        root: Union[str, Path] = "data",
        download: bool = False,
        length: Optional[int] = None,
    ) -> None:
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        length = _length_or_none(length, "the whole split")
        OxfordIIITPet = _import_torchvision()
        self.image_size = _image_size(image_size)
        tv_split = "trainval" if split == "train" else "test"
        try:
            self.base = OxfordIIITPet(str(root), split=tv_split, target_types="segmentation", download=download)
        except (RuntimeError, OSError) as error:
            raise DatasetUnavailableError(_pets_unavailable(error, Path(root).resolve(), download)) from None
        self.length = len(self.base) if length is None else min(length, len(self.base))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        if not 0 <= index < self.length:
            raise IndexError(f"index {index} is out of range for {self.length} images")
        image, trimap = self.base[index]
        height, width = self.image_size
        image = np.asarray(image.convert("RGB").resize((width, height), Image.BILINEAR), dtype=np.float32) / 255
        trimap = np.asarray(trimap.resize((width, height), Image.NEAREST), dtype=np.int64)
        # trimap: 1 pet, 2 background, 3 border (undecided)
        mask = np.full(trimap.shape, IGNORE_INDEX, dtype=np.int64)
        mask[trimap == 1] = 1
        mask[trimap == 2] = 0
        return normalize(image), torch.from_numpy(mask)


DEFAULT_SHAPES_LENGTH = 1000  # make_dataset("shapes", ..., length=None)


def _length_or_none(length: Optional[int], none_means: str) -> Optional[int]:
    """How many scenes: None (``none_means``) or a positive int; 0 is refused, not taken for the default."""
    if length is None:
        return None
    try:
        return positive_int("length", length)
    except ValueError as error:
        raise ValueError(f"{error}; pass None for {none_means}") from None


def make_dataset(
    name: str,
    split: str,
    length: Optional[int],
    image_size: Size,
    seed: int = 0,
    root: Union[str, Path] = "data",
    download: bool = False,
) -> Dataset:
    """The dataset called ``name`` (``"shapes"`` or ``"pets"``) for ``split`` (``"train"``/``"val"``).

    ``length``: how many scenes; None for the default (shapes: 1000, pets: the whole split).
    """
    length = _length_or_none(length, f"the default ({DEFAULT_SHAPES_LENGTH} shapes, every pet)")
    if name == "shapes":
        return ShapesDataset(DEFAULT_SHAPES_LENGTH if length is None else length, image_size=image_size, seed=seed,
                             split=split)
    if name == "pets":
        return PetsDataset(split, image_size=image_size, root=root, download=download, length=length)
    raise ValueError(f"Unknown dataset {name!r}: use one of {DATASETS}")
