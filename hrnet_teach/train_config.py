"""What a training run is: :class:`TrainConfig`, its defaults and checks, and the model it trains.

``dataset`` is a name (``"shapes"``, ``"pets"``) or a learner's own ``(train_set, val_set)``, checked
in ``own_data.py`` before any model is built.

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

from ._validate import check_image_side, flag, positive_int
from .backbone import halves_exactly, round_up_to_32
from .config import HRNetConfig, get_config
from .data import PetsDataset, ShapesDataset
from .models import create_model
from .own_data import FIXED_FACTOR_HEADS, NAMED_ONLY, OwnData, check_own_data, named_only_problem, own_splits
from .weights import checkpoint_file, timm_hub_id

OPTIMIZERS = ("adamw", "sgd")
TRAIN_HEADS = ("segmentation", "pose", "ocr")
DEFAULT_LR = {"adamw": 5e-3, "sgd": 0.05}
DEFAULT_WEIGHT_DECAY = {"adamw": 1e-4, "sgd": 5e-4}  # sgd: the official Cityscapes and LIP files' WD (default.py
# and the ADE20K, COCO-Stuff and PASCAL-Context files: 1e-4)
NAMED_CLASSES = {"shapes": ShapesDataset.num_classes, "pets": PetsDataset.num_classes}
PathLike = Union[str, Path]
Criterion = Callable[[Any, torch.Tensor], torch.Tensor]  # (model output, mask) -> scalar loss


def check_criterion(criterion: Any) -> None:
    """A loss given in place of the head's: a function or a module instance, called as criterion(output, mask)."""
    if criterion is None:
        return
    if isinstance(criterion, type):
        raise TypeError(f"criterion is the class {criterion.__name__}; pass an instance, {criterion.__name__}(...), "
                        "or a function criterion(output, mask) -> loss")
    if not callable(criterion):
        raise TypeError(f"criterion must be a function criterion(output, mask) -> loss (or a loss module instance), "
                        f"got {type(criterion).__name__} {criterion!r:.60}: leave it out for the head's own loss")


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
        check_criterion(self.criterion)
        self._own = None if splits is None else self._check_own_data(*splits)
        if splits is None and self.num_classes is not None:
            self._check_named_classes()

    def _check_own_data(self, train: Any, val: Any) -> OwnData:
        own = check_own_data(train, val, self.num_classes, self.head)
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        for name in NAMED_ONLY:
            problem = named_only_problem(name, getattr(self, name), defaults[name], own)
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
