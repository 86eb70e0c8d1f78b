"""What a training run is: :class:`TrainConfig`, its defaults and checks, and the model it trains.

``dataset`` is a name (``"shapes"``, ``"pets"``) or a learner's own ``(train_set, val_set)``: the
checks of the latter (:func:`check_own_data`) read a few of its items, so a wrong item, label or
size is named before any model is built.

Kept apart from the loop (``train.py``) so that loading a trained checkpoint
(``hrnet_teach.weights``) can rebuild its model without importing the trainer.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, Subset

from ._validate import check_image_side, flag, positive_int
from .backbone import halves_exactly, round_up_to_32
from .config import HRNetConfig, get_config
from .data import DATASETS, IGNORE_INDEX, PetsDataset, ShapesDataset
from .models import create_model
from .weights import checkpoint_file, timm_hub_id

OPTIMIZERS = ("adamw", "sgd")
TRAIN_HEADS = ("segmentation", "pose", "ocr")
FIXED_FACTOR_HEADS = ("pose",)  # the V1 readout fuses by nearest, by fixed factors down to 1/32; the others bilinearly
DEFAULT_LR = {"adamw": 5e-3, "sgd": 0.05}
DEFAULT_WEIGHT_DECAY = {"adamw": 1e-4, "sgd": 5e-4}  # sgd: the official Cityscapes and LIP files' WD (default.py
# and the ADE20K, COCO-Stuff and PASCAL-Context files: 1e-4)
NAMED_CLASSES = {"shapes": ShapesDataset.num_classes, "pets": PetsDataset.num_classes}
PathLike = Union[str, Path]
Criterion = Callable[[Any, torch.Tensor], torch.Tensor]  # (model output, mask) -> scalar loss


def check_choice(name: str, value: Any, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_rate(name: str, value: Any, example: float) -> None:
    """``value`` (a learning rate or weight decay) is None or a finite number >= 0; else a ValueError."""
    if value is None:
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a number >= 0, e.g. {example}, or None for the optimizer's default; "
                         f"got {value!r}")


MAX_SEED = 2**32 - 1  # np.random.seed's limit (torch's is larger)


def check_seed(value: Any) -> int:
    """A seed numpy takes too: checked here, it fails before any data, naming the setting, not inside numpy."""
    try:
        seed = positive_int("seed", value, minimum=0)
    except ValueError:
        seed = None
    if seed is None or seed > MAX_SEED:
        raise ValueError(f"seed (--seed) must be a whole number from 0 to {MAX_SEED} (numpy's limit), got {value!r}")
    return seed


BOOL_FIELDS = ("amp", "fusion", "progress", "align_corners", "ohem")  # channels_last: also None (CUDA only)


def check_image_size(value: Any) -> int:
    """One side of the square images; a (height, width) pair, as the models' helpers take, gets its own advice."""
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(side) for side in value):
        sides = " or ".join(f"image_size={side}" for side in dict.fromkeys(int(v) for v in value))
        raise ValueError(f"train's image_size is one side of a square (the scenes are square), got {value!r}: "
                         f"pass one int, {sides}")
    side = positive_int("image_size", value)
    check_image_side(side, "image_size")  # before the data: 100000 would fill memory in the first scene
    return side


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and hasattr(value, "__index__") and getattr(value, "ndim", 0) == 0


def check_image_size_for_head(head: str, image_size: int) -> None:
    """Refuse, before any data or model, a size the head's model would refuse at its first batch."""
    if head in FIXED_FACTOR_HEADS and not halves_exactly(image_size):
        near = sorted({max(32, image_size // 32 * 32), round_up_to_32(image_size)})
        raise ValueError(f"--head {head} needs an --image-size (image_size) that halves exactly down to 1/32, such as "
                         f"a multiple of 32, got {image_size}: use e.g. {' or '.join(map(str, near))}, or --head "
                         "segmentation, which takes any size")


# ------------------------------------------------------------------ the weights a run starts from
IMAGENET = "imagenet"  # pretrained=: timm's ImageNet-1k weights of the variant
PRETRAINED_TAKES = (f"pretrained takes {IMAGENET!r} (timm's ImageNet weights of the variant, as the authors' "
                    "MODEL.PRETRAINED), the path of a checkpoint file (.pth, .pt, .safetensors), or None (no "
                    "--pretrained) for random weights")


def check_pretrained(value: Any, variant: Any) -> Optional[PathLike]:
    """``pretrained`` as given, once it is None, ``"imagenet"`` (for a variant timm has weights of) or an existing
    file; else a ValueError, FileNotFoundError or IsADirectoryError that says what to pass. Nothing is read here:
    a checkpoint can be large, and the trainer reads it once, before the data."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, os.PathLike)):
        hint = f": for ImageNet's weights pass pretrained={IMAGENET!r}" if value is True else ""
        raise ValueError(f"{PRETRAINED_TAKES}; got {value!r} ({type(value).__name__}){hint}")
    if value == IMAGENET:
        timm_hub_id(variant)  # a custom HRNetConfig has no published weights: said now, not after the data
        return value
    text = os.fspath(value)
    if isinstance(value, str) and not Path(text).exists() and not Path(text).suffix and os.sep not in text \
            and "/" not in text:  # a word, not a path: "ImageNet", "timm", "coco"
        close = difflib.get_close_matches(text.lower(), [IMAGENET], n=1, cutoff=0.6)
        guess = f" Did you mean {IMAGENET!r}?" if close else ""
        raise ValueError(f"{PRETRAINED_TAKES}; got {value!r}, which is neither {IMAGENET!r} nor a file here.{guess}")
    try:
        checkpoint_file(value)  # the weights module's messages: no such file (and where it looked), a folder
    except OSError as error:
        raise type(error)(f"pretrained={text!r}: {error}") from None
    return value


def pretrained_name(value: Optional[PathLike]) -> Optional[str]:
    """What metrics.json records: None, ``"imagenet"``, or the file's name (a path would name this machine's folders)."""
    if value is None or value == IMAGENET:
        return value
    return Path(value).name


# ------------------------------------------------------------------ a dataset of the learner's own
# The settings that only size or find a named dataset: with (train_set, val_set) the data decide
NAMED_ONLY = ("train_size", "val_size", "image_size", "data_root")
SPLIT_NAMES = {"train_set": "training set", "val_set": "validation set"}


@dataclasses.dataclass(frozen=True)
class OwnData:
    """A learner's two splits, checked: what ``train`` builds its model from and what it records."""

    train: Any
    val: Any
    num_classes: int
    image_hw: tuple[int, int]  # the training images' (height, width)

    @property
    def name(self) -> str:
        """What metrics.json records as the dataset: the class names, e.g. ``FolderSeg`` or ``Subset(FolderSeg)``."""
        return " / ".join(dict.fromkeys(dataset_name(split) for split in (self.train, self.val)))

    @property
    def recorded_size(self) -> Union[int, list[int]]:
        height, width = self.image_hw
        return height if height == width else [height, width]


def dataset_name(dataset: Any) -> str:
    """The class name of ``dataset``, and of the one inside a ``Subset`` (what ``random_split`` returns)."""
    name = type(dataset).__name__
    return f"{name}({dataset_name(dataset.dataset)})" if isinstance(dataset, Subset) else name


def own_splits(value: Any) -> Optional[tuple[Any, Any]]:
    """``dataset`` as (train_set, val_set), None for a name of ``DATASETS``, or a ValueError saying what to pass."""
    if isinstance(value, str):
        if value not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, or (train_set, val_set), two Datasets of your "
                             f"own; got {value!r}")
        return None
    if not isinstance(value, (tuple, list)):
        known = f"dataset takes a name, {' or '.join(map(repr, DATASETS))}, or the two splits of your own data, " \
                "(train_set, val_set)"
        if not hasattr(value, "__getitem__"):
            raise ValueError(f"{known}; got {value!r} ({type(value).__name__})")
        raise ValueError(f"{known}; got one {dataset_name(value)}. Hold some items out to score on, e.g. train_set, "
                         "val_set = torch.utils.data.random_split(full, [0.8, 0.2]), and pass dataset=(train_set, val_set)")
    if len(value) == 2 and all(isinstance(part, torch.Tensor) for part in value):
        raise ValueError("dataset=(train_set, val_set) takes two Datasets, got two tensors: if they are all the images "
                         "and all the masks, wrap them as torch.utils.data.TensorDataset(images, masks), split that "
                         "with random_split, and pass the two pieces")
    if len(value) != 2:
        raise ValueError(f"dataset=(train_set, val_set) takes two Datasets, the training and the validation set; got a "
                         f"{type(value).__name__} of {len(value)}")
    for var, split in zip(SPLIT_NAMES, value):
        _check_split(var, split)
    return value[0], value[1]


def _check_split(var: str, split: Any) -> None:
    """One split: a map-style dataset (a length, items by index) that holds something."""
    role = SPLIT_NAMES[var]
    if isinstance(split, DataLoader):
        raise ValueError(f"dataset=(train_set, val_set) takes Datasets, got a DataLoader as the {role}: pass its "
                         "Dataset (loader.dataset); train makes its own loaders from batch_size and workers (and, "
                         "under torchrun, a DistributedSampler)")
    if isinstance(split, (str, bytes, torch.Tensor)) or not hasattr(split, "__getitem__"):
        raise ValueError(f"the {role} ({var}) must be a Dataset of (image, mask) pairs, got a {type(split).__name__}")
    if isinstance(split, IterableDataset) or not hasattr(split, "__len__"):
        raise ValueError(f"the {role} ({var}, a {dataset_name(split)}) has no length: train needs a map-style Dataset, "
                         "with __len__ and __getitem__ (an IterableDataset can be neither shuffled nor shared out by "
                         "a DistributedSampler)")
    if len(split) == 0:
        raise ValueError(f"the {role} ({var}, a {dataset_name(split)}) is empty: len({var}) is 0, nothing to "
                         f"{'train on' if var == 'train_set' else 'score'}; check the folder or the filter that made it")


def _declared_classes(dataset: Any) -> Optional[Any]:
    """The dataset's ``num_classes`` attribute, looked for through ``Subset``s too (``random_split``'s pieces)."""
    while dataset is not None:
        classes = getattr(dataset, "num_classes", None)
        if classes is not None:
            return classes
        dataset = dataset.dataset if isinstance(dataset, Subset) else None
    return None


def _classes_int(where: str, value: Any) -> int:
    classes = positive_int(where, value)
    if classes < 2:
        raise ValueError(f"{where} must be at least 2, got {classes}: the background counts as a class (one kind of "
                         "object on a background is 2 classes, as pets' background and pet)")
    return classes


def own_classes(train: Any, val: Any, explicit: Optional[Any]) -> int:
    """How many classes the head predicts: ``num_classes=`` or the splits' ``num_classes``, which must agree."""
    declared = {var: _declared_classes(split) for var, split in zip(SPLIT_NAMES, (train, val))}
    declared = {var: _classes_int(f"{var}.num_classes", value) for var, value in declared.items() if value is not None}
    if explicit is not None:
        classes = _classes_int("num_classes", explicit)
        for var, value in declared.items():
            if value != classes:
                raise ValueError(f"num_classes={classes}, but the {SPLIT_NAMES[var]} says {value} ({var}.num_classes): "
                                 "pass the same number, or leave num_classes out to take the dataset's")
        return classes
    if not declared:
        raise ValueError(f"train needs the number of classes, and neither {dataset_name(train)} (train_set) nor "
                         f"{dataset_name(val)} (val_set) has a num_classes attribute: add one to your Dataset class "
                         "(num_classes = 4, as data.ShapesDataset has), or pass num_classes=... to train")
    if len(set(declared.values())) > 1:
        raise ValueError(f"the training set has {declared['train_set']} classes but the validation set "
                         f"{declared['val_set']} (their num_classes): both splits must label the same classes, which "
                         "the model's one head predicts; give them the same num_classes")
    return next(iter(declared.values()))


def _sample(length: int) -> list[int]:
    """The items checked before training: the first, the middle and the last (reading all could take minutes)."""
    return sorted({0, length // 2, length - 1})


def _image_problem(image: Any) -> Optional[str]:
    """What is wrong with one item's image (None: a 3 x H x W float tensor)."""
    if not isinstance(image, torch.Tensor):
        return (f"is a {type(image).__name__}, not a tensor: return a 3 x H x W float tensor normalised as "
                "ImageNet's, e.g. hrnet_teach.assets.to_tensor(pil_image)[0]")
    shape = tuple(image.shape)
    if image.dim() == 4:
        return (f"has shape {shape}, a batch: an item is one image, 3 x H x W; drop the batch dimension "
                "(to_tensor(image)[0]), the DataLoader makes the batches")
    if image.dim() == 2:
        return f"has shape {shape}, one grey H x W plane: HRNet takes RGB, 3 x H x W; open it with .convert('RGB')"
    if image.dim() != 3:
        return f"has shape {shape}: an image is 3 x H x W (channels, height, width)"
    if shape[0] not in (1, 3, 4) and shape[-1] in (1, 3, 4):
        return f"has shape {shape}, H x W x C: put the channels first, image.permute(2, 0, 1)"
    if shape[0] != 3:
        return (f"has {shape[0]} channel(s), shape {shape}: HRNet takes RGB, 3 x H x W (grey: image.expand(3, -1, -1); "
                "RGBA: image[:3])")
    if not image.is_floating_point():
        return (f"holds {image.dtype} values: the model takes floats normalised as ImageNet's; "
                "hrnet_teach.assets.to_tensor(pil_image)[0] divides by 255, subtracts the mean, divides by the std")
    if image.dtype != torch.float32:  # numpy's float64, say: the convolutions would refuse it at the first batch
        return f"holds {image.dtype} values: the model's weights are float32; return image.float()"
    return None


def _mask_problem(mask: Any, image: torch.Tensor, num_classes: int) -> Optional[str]:
    """What is wrong with one item's mask (None: H x W int64 class indices below num_classes, or IGNORE_INDEX)."""
    if not isinstance(mask, torch.Tensor):
        return (f"is a {type(mask).__name__}, not a tensor: return H x W int64 class indices, "
                "torch.from_numpy(np.array(mask, dtype=np.int64))")
    if mask.is_floating_point():
        return (f"holds {mask.dtype} values: a mask holds class indices, int64 (to_tensor scales a mask to [0, 1]; "
                "build it with torch.from_numpy(np.array(mask, dtype=np.int64)))")
    if mask.dtype != torch.long:
        return f"holds {mask.dtype} values: cross-entropy takes int64 class indices; return mask.long()"
    if mask.dim() == 3 and mask.shape[0] == 1:
        return f"has shape {tuple(mask.shape)}: a mask is H x W, one class per pixel; return mask[0]"
    if mask.dim() != 2:
        return f"has shape {tuple(mask.shape)}: a mask is H x W, one class per pixel"
    if mask.shape != image.shape[-2:]:
        return (f"is {mask.shape[0]} x {mask.shape[1]} but its image {image.shape[-2]} x {image.shape[-1]}: resize "
                "the mask to the image's size with nearest neighbour (PIL's Image.NEAREST), which blends no labels")
    labels = mask[mask != IGNORE_INDEX].unique()
    wrong = labels[(labels < 0) | (labels >= num_classes)].tolist()
    if wrong:
        shown = ", ".join(map(str, wrong[:5])) + (", ..." if len(wrong) > 5 else "")
        return (f"holds labels {shown} (besides {IGNORE_INDEX}, ignored), but there are {num_classes} classes "
                f"(0 to {num_classes - 1}): every label must be below num_classes, or {IGNORE_INDEX} "
                "(data.IGNORE_INDEX) where a pixel has no label. Map them in __getitem__ (masks that store void as 0 "
                "and the classes from 1: mask - 1, then 255 where it was 0), or set num_classes")
    return None


def _item_size(var: str, split: Any, index: int, num_classes: int) -> tuple[int, int]:
    """The (height, width) of ``split[index]``, checked: an (image, mask) pair as train's loss and model take it."""
    item, where = split[index], f"{var}[{index}]"
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        what = f"a {type(item).__name__}" + (f" of {len(item)}" if isinstance(item, (tuple, list)) else "")
        if isinstance(item, dict):
            what += f" with keys {list(item)[:4]}"
        raise ValueError(f"{where} is {what}, not an (image, mask) pair: train trains segmentation, so "
                         "__getitem__ must return (image, mask), as data.ShapesDataset's does")
    image, mask = item
    problem, part = _image_problem(image), "image"
    if problem is None:
        problem, part = _mask_problem(mask, image, num_classes), "mask"
    if problem is not None:
        raise ValueError(f"{where}'s {part} {problem}")
    return int(image.shape[-2]), int(image.shape[-1])


def _split_size(var: str, split: Any, num_classes: int, head: str) -> tuple[int, int]:
    """The image size of one split, from the items :func:`_sample` picks: all one size, one the head takes."""
    sizes = {index: _item_size(var, split, index, num_classes) for index in _sample(len(split))}
    (first, size), *others = sizes.items()
    for index, other in others:
        if other != size:
            raise ValueError(f"{var}[{first}]'s image is {size[0]} x {size[1]} but {var}[{index}]'s {other[0]} x "
                             f"{other[1]}: a DataLoader stacks a batch's images into one tensor, so a split's images "
                             "must share one size; resize them in __getitem__")
    check_image_side(max(size), f"{var}'s image side")
    if head in FIXED_FACTOR_HEADS and not all(halves_exactly(side) for side in size):
        near = [[max(32, side // 32 * 32), round_up_to_32(side)] if not halves_exactly(side) else [side, side]
                for side in size]
        sizes_text = " or ".join(dict.fromkeys(f"{h} x {w}" for h, w in zip(*near)))
        raise ValueError(f"head {head!r} (the V1 readout, which fuses by fixed factors) needs image sides that halve "
                         f"exactly down to 1/32, such as multiples of 32; the {SPLIT_NAMES[var]}'s images are "
                         f"{size[0]} x {size[1]}: resize them in your dataset to e.g. {sizes_text}, or use "
                         "head='segmentation', which takes any size")
    return size


def check_own_data(train: Any, val: Any, num_classes: Optional[Any], head: str) -> OwnData:
    """The learner's splits, checked before any model: the classes, then a few items of each (:func:`_sample`)."""
    classes = own_classes(train, val, num_classes)
    sizes = [_split_size(var, split, classes, head) for var, split in zip(SPLIT_NAMES, (train, val))]
    return OwnData(train, val, classes, sizes[0])


def _named_only_problem(name: str, value: Any, default: Any, own: OwnData) -> Optional[str]:
    """Why a setting that sizes a named dataset, set to other than its default, has no place beside one's own."""
    height, width = own.image_hw
    actual = {"train_size": len(own.train), "val_size": len(own.val), "image_size": height if height == width else None,
              "data_root": None}[name]
    if str(value) in (str(default), str(actual)):
        return None
    if name in ("train_size", "val_size"):
        var = "train_set" if name == "train_size" else "val_set"
        return (f"{name}={value} picks how many scenes of a named dataset ({' or '.join(map(repr, DATASETS))}) to "
                f"use; your {SPLIT_NAMES[var]} holds {actual} items: leave {name} out, or pass a part of it, "
                f"torch.utils.data.Subset({var}, range({value}))")
    if name == "image_size":
        return (f"image_size={value} sizes a named dataset's scenes; your images are {height} x {width}, as your "
                "dataset makes them: leave image_size out, or resize them in the dataset")
    return (f"data_root={str(value)!r} is where --dataset pets is downloaded; a dataset of your own reads its own "
            "files: leave data_root out")


@dataclasses.dataclass
class TrainConfig:
    """Every setting of a run; ``python -m hrnet_teach.train`` maps its flags onto these fields.

    ``lr`` and ``weight_decay`` left at None take the optimizer's default
    (``DEFAULT_LR``, ``DEFAULT_WEIGHT_DECAY``). ``batch_size`` is per process
    under torchrun (the official ``BATCH_SIZE_PER_GPU``). ``criterion``, when
    given, replaces the loss that :func:`hrnet_teach.train.loss_for` picks from
    the model. A bad setting raises a ValueError here, before any data or model.

    ``dataset``: ``"shapes"``, ``"pets"``, or ``(train_set, val_set)``, two Datasets of your own
    whose items are (image, mask) pairs as ``data.ShapesDataset``'s; the classes are their
    ``num_classes`` attribute or ``num_classes``, and their lengths and image size take the place
    of ``train_size``, ``val_size`` and ``image_size``. A few items of each split are checked here,
    before any model.

    ``pretrained``: the weights the run starts from. None (random, as the runs of lesson 07), ``"imagenet"``
    (timm's ImageNet-1k weights of the variant, downloaded once into the Hugging Face cache), or the path of a
    checkpoint file such as the authors' ``hrnetv2_w48_imagenet_pretrained.pth``. As the official
    ``init_weights``, every tensor whose name the model has is loaded (and here whose shape fits too) and the
    rest is left out, but the trainer says what, and refuses a file that lacks part of the backbone.
    """

    variant: str = "w18_small_v1"
    dataset: Union[str, tuple[Any, Any]] = "shapes"
    epochs: int = 6
    batch_size: int = 16
    image_size: int = 64
    lr: Optional[float] = None
    device: Union[str, torch.device, None] = None
    amp: bool = False
    channels_last: Optional[bool] = None  # None: on CUDA only (cuDNN's fastest kernels); False/True force it
    out: Optional[PathLike] = None
    resume: Optional[PathLike] = None
    seed: int = 0
    fusion: bool = True
    progress: bool = True
    optimizer: str = "adamw"
    align_corners: bool = False
    head: str = "segmentation"
    ohem: bool = False  # official LOSS.USE_OHEM: OHEM on the segmentation output, or on the OCR term (head "ocr")
    train_size: int = 2000
    val_size: int = 256
    weight_decay: Optional[float] = None
    workers: Optional[int] = None
    data_root: PathLike = "data"
    export: Optional[PathLike] = None
    command: Optional[str] = None  # the command line that started the run, stored in the checkpoint
    criterion: Optional[Criterion] = None
    num_classes: Optional[int] = None  # a dataset of your own without a num_classes attribute; None: the dataset's
    pretrained: Optional[PathLike] = None  # None: random weights; "imagenet": timm's; or a checkpoint file's path

    def __post_init__(self) -> None:
        for name in BOOL_FIELDS:
            setattr(self, name, flag(name, getattr(self, name)))
        self.channels_last = flag("channels_last", self.channels_last, none_means="NHWC on CUDA only")
        get_config(self.variant)  # a ValueError naming the known variants if unknown
        splits = own_splits(self.dataset)
        check_choice("head", self.head, TRAIN_HEADS)
        if self.ohem and self.head == "pose":
            # the V1 readout is here to be compared with the segmentation head (the fusion ablation), and
            # OhemCrossEntropy is the segmentation repository's: the official pose trainer has no such loss
            raise ValueError("ohem applies to heads 'segmentation' and 'ocr' (the official LOSS.USE_OHEM of the "
                             "segmentation repository), not 'pose': the V1 readout is trained here only for the "
                             "fusion ablation, and the official pose code has no OhemCrossEntropy (its hard-"
                             "example loss, JointsOHKMMSELoss, is for heatmaps). Leave ohem out")
        if self.align_corners and self.head == "pose":  # it would be recorded in metrics.json yet change nothing
            raise ValueError("align_corners applies to the heads that resize bilinearly (segmentation, ocr); head "
                             "'pose' (the V1 readout) fuses by nearest and resizes its logits without corner "
                             "alignment: leave align_corners out")
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        for name in ("epochs", "batch_size", "train_size", "val_size"):
            setattr(self, name, positive_int(name, getattr(self, name)))
        self.image_size = check_image_size(self.image_size)
        if splits is None:  # a dataset of one's own: its images' size, checked with the data
            check_image_size_for_head(self.head, self.image_size)
        self.seed = check_seed(self.seed)
        self.pretrained = check_pretrained(self.pretrained, self.variant)
        check_rate("lr", self.lr, DEFAULT_LR[self.optimizer])
        check_rate("weight_decay", self.weight_decay, DEFAULT_WEIGHT_DECAY[self.optimizer])
        if self.workers is not None:
            self.workers = positive_int("workers", self.workers, minimum=0)
        self._own = None if splits is None else self._check_own_data(*splits)
        if splits is None and self.num_classes is not None:
            self._check_named_classes()

    def _check_own_data(self, train: Any, val: Any) -> OwnData:
        own = check_own_data(train, val, self.num_classes, self.head)
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        for name in NAMED_ONLY:
            problem = _named_only_problem(name, getattr(self, name), defaults[name], own)
            if problem is not None:
                raise ValueError(problem)
        return own

    def _check_named_classes(self) -> None:
        classes, named = positive_int("num_classes", self.num_classes), NAMED_CLASSES[self.dataset]
        if classes != named:
            raise ValueError(f"num_classes={classes}, but dataset {self.dataset!r} has {named} classes: num_classes "
                             "is for a dataset of your own, dataset=(train_set, val_set); leave it out")

    @property
    def own_data(self) -> Optional[OwnData]:
        """The learner's (train_set, val_set), checked; None for a named dataset."""
        return self._own

    @property
    def dataset_name(self) -> str:
        """What metrics.json records: the name, or the class name of one's own dataset."""
        return self.dataset if self._own is None else self._own.name

    @property
    def dataset_classes(self) -> int:
        return NAMED_CLASSES[self.dataset] if self._own is None else self._own.num_classes

    @property
    def model_config(self) -> HRNetConfig:
        return get_config(self.variant)

    @property
    def base_lr(self) -> float:
        return DEFAULT_LR[self.optimizer] if self.lr is None else float(self.lr)

    @property
    def decay(self) -> float:
        return DEFAULT_WEIGHT_DECAY[self.optimizer] if self.weight_decay is None else float(self.weight_decay)

    def settings(self, device: torch.device, amp: bool, world_size: int, backend: Optional[str]) -> dict[str, Any]:
        """The run's settings as ``metrics.json`` and the checkpoint's ``args`` record them."""
        return {
            "variant": self.model_config.name, "dataset": self.dataset_name, "epochs": self.epochs,
            "batch_size": self.batch_size, "image_size": self._recorded("image_size"), "lr": self.base_lr,
            "optimizer": self.optimizer, "weight_decay": self.decay, "amp": amp, "seed": self.seed,
            "fusion": self.fusion, "align_corners": self.align_corners, "head": self.head, "ohem": self.ohem,
            "train_size": self._recorded("train_size"), "val_size": self._recorded("val_size"),
            "device": str(device), "world_size": world_size, "backend": backend,
            "channels_last": self.use_channels_last(device), "pretrained": pretrained_name(self.pretrained),
        }

    def _recorded(self, name: str) -> Any:
        """A size as the run used it: the setting, or what one's own data hold."""
        own = self._own
        if own is None:
            return getattr(self, name)
        return {"image_size": own.recorded_size, "train_size": len(own.train), "val_size": len(own.val)}[name]

    def use_channels_last(self, device: torch.device) -> bool:
        return device.type == "cuda" if self.channels_last is None else bool(self.channels_last)


def build_model(
    variant: Union[str, HRNetConfig],
    num_classes: int,
    fusion: bool = True,
    align_corners: bool = False,
    head: str = "segmentation",
) -> nn.Module:
    """HRNetV2 segmentation model of ``variant``; ``fusion=False`` for the ablation.

    ``head="pose"``: the HRNetV1 readout instead (the highest-resolution branch
    alone, then a 1x1 conv to ``num_classes``), which the ablation uses to ask
    what fusion does when nothing else brings context to that branch.

    ``align_corners=False`` by default here, as the official HRNetV2-W48 Cityscapes
    files set it on the HRNet-OCR branch (on master and pytorch-v1.1 they leave it out and
    the code resizes with PyTorch's default, also False). The package's models default to
    True, as HRNet-OCR's ``default.py`` and the HRNet-OCR files that leave it out. The 1/4 grid's
    cell k is centred on image pixel 4k (two stride-2 3x3 convs); resizing with
    align_corners=False puts it at 4k + 1.5 everywhere (a constant shift the
    convolutions learn to absorb), while align_corners=True stretches
    the grid to the corners, so the error grows across the image (up to 3
    pixels at 64 x 64), which no convolution can undo. At 1024 x 2048 that is
    invisible; in one 3-epoch run at 64 x 64 (on an earlier draft of the shapes),
    True scored 0.795 mIoU and False 0.803.
    """
    check_choice("head", head, TRAIN_HEADS)
    config = get_config(variant)
    if not fusion:
        config = config.replace(fusion=False)
    if head == "pose":
        return create_model(config, head="pose", num_joints=num_classes)
    if head == "ocr":  # HRNetV2 + OCR: outputs [aux, ocr], trained with hrnet_teach.ocr.ocr_loss
        return create_model(config, head="ocr", num_classes=num_classes, align_corners=align_corners)
    return create_model(config, head="segmentation", num_classes=num_classes, align_corners=align_corners)
