"""A dataset of the learner's own, ``train(dataset=(train_set, val_set))``: its checks and what is recorded.

The checks read the classes and a few items of each split (the first, the middle, the last), so a wrong
item, label or size is named before any model is built, by what was wrong and what to do.
:class:`hrnet_teach.train_config.TrainConfig` calls :func:`own_splits` and :func:`check_own_data`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Union

import torch
from torch.utils.data import DataLoader, IterableDataset, Subset

from ._validate import check_image_side, positive_int
from .backbone import halves_exactly, round_up_to_32
from .data import DATASETS, IGNORE_INDEX

FIXED_FACTOR_HEADS = ("pose",)  # the V1 readout fuses by nearest, by fixed factors down to 1/32; the others bilinearly

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
    largest = float(image.abs().max()) if image.numel() else 0.0
    if largest > 10:  # ImageNet-normalised pixels lie within about -2.2 to 2.7: these trained, on other numbers
        return (f"holds values up to {largest:.0f}: pixels of 0-255 as floats, not normalised. The model takes them "
                "normalised as ImageNet's: hrnet_teach.assets.to_tensor(pil_image)[0], or "
                "hrnet_teach.assets.imagenet_normalize(pixels / 255)")
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


def _item_size(var: str, split: Any, index: int, num_classes: int) -> tuple[tuple[int, int], set[int]]:
    """The (height, width) of ``split[index]`` and its mask's labels, checked: an (image, mask) pair as train's loss
    and model take it."""
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
    return (int(image.shape[-2]), int(image.shape[-1])), set(mask.unique().tolist())


def _refuse_binary_255(var: str, labels: dict[int, set[int]]) -> None:
    """Masks saved as black and white (0 and 255): 255 is the ignored label, so the foreground would never be
    trained or scored, and the mIoU of class 0 alone reads 1.0. Said when every item read holds only 0 and 255."""
    if all(found <= {0, IGNORE_INDEX} for found in labels.values()) and any(IGNORE_INDEX in f for f in labels.values()):
        read = ", ".join(f"{var}[{index}]" for index in labels)
        raise ValueError(f"the masks of {read} hold only 0 and {IGNORE_INDEX}, and {IGNORE_INDEX} is the ignored label "
                         f"(data.IGNORE_INDEX): no pixel would train or score a class other than 0, and the mIoU "
                         f"would read 1.0. A black-and-white mask saved as 0/255 needs mask // 255 (or "
                         f"(mask > 0).long()) in __getitem__; if {IGNORE_INDEX} does mark unlabelled pixels, some "
                         "of these items must show the other classes too")


def _split_size(var: str, split: Any, num_classes: int, head: str) -> tuple[int, int]:
    """The image size of one split, from the items :func:`_sample` picks: all one size, one the head takes."""
    items = {index: _item_size(var, split, index, num_classes) for index in _sample(len(split))}
    _refuse_binary_255(var, {index: labels for index, (_size, labels) in items.items()})
    (first, (size, _labels)), *others = items.items()
    for index, (other, _labels) in others:
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


def named_only_problem(name: str, value: Any, default: Any, own: OwnData) -> Optional[str]:
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
