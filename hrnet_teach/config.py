"""Configurations: how many modules, branches, blocks and channels each stage has.

The official code keeps these in YAML experiment files under ``MODEL.EXTRA``
(``STAGE1`` .. ``STAGE4``). Here they are two frozen dataclasses, with the
published variants generated from their width ``C``: the branches of stages 2-4
carry C, 2C, 4C and 8C channels (the paper, Wang et al., TPAMI 2020, Section 3.4,
numbered as in its arXiv version 1908.07919: "The widths (numbers of channels) of
the convolutions of the four resolutions are C, 2C, 4C, and 8C, respectively").
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional

from ._validate import flag, positive_int, whole_or_same

BLOCKS = ("BASIC", "BOTTLENECK")
FUSE_METHODS = ("SUM",)

# The authors' model files (MODEL.NAME in their experiment YAMLs) and the head each one is.
MODEL_NAMES = {
    "seg_hrnet": "segmentation",  # HRNet-Semantic-Segmentation lib/models/seg_hrnet.py (HRNetV2)
    "seg_hrnet_ocr": "ocr",  # the same repository, branch HRNet-OCR, lib/models/seg_hrnet_ocr.py
    "cls_hrnet": "classification",  # HRNet-Image-Classification lib/models/cls_hrnet.py
    "pose_hrnet": "pose",  # deep-high-resolution-net.pytorch lib/models/pose_hrnet.py (HRNetV1)
}
HEAD_NAMES = ("segmentation", "ocr", "classification", "pose", "pyramid")
# Caps that refuse a typo (an extra zero or three) before torch tries to allocate it: a 3x3 conv from
# MAX_CHANNELS to MAX_CHANNELS channels already holds 151M weights (604 MB in float32), 8 times the
# widest published branch (W64's 8C = 512); the published files repeat blocks and modules at most 4 times.
MAX_CHANNELS = 4096
MAX_REPEATS = 64


@dataclass(frozen=True)
class StageConfig:
    """One stage: ``num_modules`` HighResolutionModules, each with ``num_branches``
    parallel branches of ``num_blocks[b]`` residual blocks of ``num_channels[b]``
    channels (before the block's expansion)."""

    num_modules: int
    num_branches: int
    block: str
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]
    fuse_method: str = "SUM"

    def __post_init__(self) -> None:
        # Accept lists (as YAML gives them) but store tuples, so configs are hashable.
        for field_name in ("num_blocks", "num_channels"):
            value = getattr(self, field_name)
            # a dict iterates over its keys: {1: 2, 2: 3} would have become the block counts (1, 2)
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
                got = "a dict" if isinstance(value, Mapping) else repr(value)
                raise ValueError(
                    f"{field_name}: expected a list with one entry per branch (e.g. [4, 4] for two "
                    f"branches), got {got}"
                )
            # numpy integers (np.array([2, 2])) are whole numbers: stored as ints, so configs compare equal
            object.__setattr__(self, field_name, tuple(whole_or_same(v) for v in value))
        for field_name in ("num_modules", "num_branches"):
            object.__setattr__(self, field_name, whole_or_same(getattr(self, field_name)))
        if isinstance(self.block, str):  # None stays None, named as such by validate (not 'NONE')
            object.__setattr__(self, "block", self.block.upper())

    @property
    def expansion(self) -> int:
        return 4 if self.block == "BOTTLENECK" else 1

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels each branch carries after its blocks (channels x expansion)."""
        return tuple(c * self.expansion for c in self.num_channels)

    def validate(self, name: str) -> None:
        """Raise a ValueError naming this stage and the field that is wrong."""

        def bad(field_name: str, why: str) -> ValueError:
            return ValueError(f"{name}.{field_name}: {why}")

        if self.block not in BLOCKS:
            raise bad("block", f"{self.block!r} is not a block; use one of {BLOCKS}")
        yaml_bool = " (true/false in the YAML?)"
        if self.fuse_method not in FUSE_METHODS:
            # The official module stores FUSE_METHOD and never reads it: its fusion is always a sum.
            raise bad("fuse_method", f"{self.fuse_method!r} is not supported; use one of {FUSE_METHODS} (the official "
                                     "code stores FUSE_METHOD but always sums the branches)")
        for field_name in ("num_modules", "num_branches"):
            value = getattr(self, field_name)
            if not _is_positive_int(value):
                raise bad(field_name, f"must be a positive integer, got {value!r}"
                          + (yaml_bool if isinstance(value, bool) else ""))
        for field_name in ("num_blocks", "num_channels"):
            values = getattr(self, field_name)
            if len(values) != self.num_branches:
                raise bad(
                    field_name,
                    f"has {len(values)} entries {list(values)} but num_branches is "
                    f"{self.num_branches}; give one entry per branch",
                )
            if not all(_is_positive_int(v) for v in values):
                raise bad(field_name, f"entries must be positive integers, got {list(values)}"
                          + (yaml_bool if any(isinstance(v, bool) for v in values) else ""))
        self._check_sizes(bad)

    def _check_sizes(self, bad) -> None:
        """Refuse sizes far beyond any HRNet (MAX_CHANNELS, MAX_REPEATS) before torch allocates them."""
        if max(self.num_channels) > MAX_CHANNELS:
            raise bad("num_channels", f"{max(self.num_channels)} channels is far more than any HRNet (W64's widest "
                                      f"branch has 512): at most {MAX_CHANNELS}, since a 3x3 conv of that width "
                                      "alone holds 151M weights (604 MB). A typo?")
        for field_name, value in (("num_modules", self.num_modules), ("num_blocks", max(self.num_blocks))):
            if value > MAX_REPEATS:
                raise bad(field_name, f"{value} is far more than any HRNet (the published ones use at most 4): at "
                                      f"most {MAX_REPEATS}. A typo?")


@dataclass(frozen=True)
class HRNetConfig:
    """The whole backbone: four stages. Stage 1 is one branch (``layer1``); stage k
    has k branches. ``fusion=False`` is the course's ablation switch: modules keep
    their branches but exchange nothing (no ``fuse_layers``).

    A config read from an official experiment file also knows the file's own model:
    ``head`` (from ``MODEL.NAME``: ``seg_hrnet`` -> ``"segmentation"``, ``seg_hrnet_ocr`` ->
    ``"ocr"``, ``cls_hrnet`` -> ``"classification"``, ``pose_hrnet`` -> ``"pose"``) and
    ``head_options``, that model's ``create_model`` arguments (``num_classes``,
    ``align_corners``, the OCR sizes ...), so ``create_model(cfg)`` builds it.
    ``ignored_fields`` lists what the file says that does not change the model
    (training settings, paths, fields the official code never reads);
    ``pretrained_layers`` is the pose files' ``PRETRAINED_LAYERS`` (which parts the
    official pose code takes from an ImageNet checkpoint).
    """

    stage1: StageConfig
    stage2: StageConfig
    stage3: StageConfig
    stage4: StageConfig
    name: str = "custom"
    final_conv_kernel: int = 1
    fusion: bool = True
    head: Optional[str] = None
    head_options: tuple[tuple[str, Any], ...] = ()
    pretrained_layers: tuple[str, ...] = field(default=("*",), compare=False)
    ignored_fields: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        _check_head_options(self.head_options)
        if isinstance(self.head_options, Mapping):
            object.__setattr__(self, "head_options", tuple(sorted(self.head_options.items())))
        object.__setattr__(self, "head_options", tuple(tuple(item) for item in self.head_options))
        object.__setattr__(self, "pretrained_layers", tuple(self.pretrained_layers))
        object.__setattr__(self, "ignored_fields", tuple(self.ignored_fields))
        flag("fusion", self.fusion)  # "no" or "False" would be truthy: fusion on, a silent wrong ablation
        if self.head is not None and self.head not in HEAD_NAMES:
            raise ValueError(f"head: {self.head!r} is not a head; use one of {HEAD_NAMES} or None")
        for index, stage in enumerate(self.stages, start=1):
            if not isinstance(stage, StageConfig):
                raise ValueError(f"stage{index}: expected a StageConfig, got {type(stage).__name__}")
            stage.validate(f"stage{index}")
        if self.stage1.num_branches != 1:
            raise ValueError(f"stage1.num_branches: stage 1 has a single branch, got {self.stage1.num_branches}")
        for index in (2, 3, 4):
            stage, previous = self.stages[index - 1], self.stages[index - 2]
            if stage.num_branches < previous.num_branches:
                raise ValueError(
                    f"stage{index}.num_branches: {stage.num_branches} is fewer than "
                    f"stage{index - 1}'s {previous.num_branches}; a stage keeps every branch "
                    "it receives and may add new lower-resolution ones"
                )
        if isinstance(self.final_conv_kernel, bool) or self.final_conv_kernel not in (1, 3):
            raise ValueError(
                f"final_conv_kernel: must be 1 or 3, got {self.final_conv_kernel!r} (the official code pads "
                "1 for a 3x3 kernel and 0 otherwise, so other sizes would shrink the output map)"
            )

    @property
    def head_kwargs(self) -> dict[str, Any]:
        """``head_options`` as a dict of ``create_model`` keyword arguments."""
        return dict(self.head_options)

    @property
    def stages(self) -> tuple[StageConfig, StageConfig, StageConfig, StageConfig]:
        return (self.stage1, self.stage2, self.stage3, self.stage4)

    @property
    def width(self) -> int:
        """C, the channels of the highest-resolution branch in stages 2-4."""
        return self.stage2.num_channels[0]

    def replace(self, **changes: Any) -> HRNetConfig:
        """A copy with some fields changed, e.g. ``cfg.replace(fusion=False)``."""
        names = [f.name for f in fields(self)]
        unknown = [key for key in changes if key not in names]
        if unknown:  # dataclasses would say only "unexpected keyword argument"
            raise TypeError(f"HRNetConfig has no field {', '.join(map(repr, unknown))}{_computed_hint(unknown)}; "
                            f"its fields are {', '.join(names)}")
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any], name: str = "custom") -> HRNetConfig:
        """Build from an experiment file already loaded as a mapping: the whole document
        (``MODEL``, ``DATASET`` ...), or only its ``MODEL.EXTRA`` section (keys STAGE1..STAGE4)."""
        return _config_from_document(cls, document, name, source=name)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> HRNetConfig:
        """Read one of the authors' experiment files: the backbone (``MODEL.EXTRA``) and the
        file's own model (``MODEL.NAME`` and the fields that shape it); see the class docstring."""
        import yaml

        if isinstance(path, Mapping):
            raise TypeError(
                "from_yaml takes the path of a YAML file; for a mapping you have already loaded, "
                "use HRNetConfig.from_dict(document)"
            )
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"from_yaml takes the path of a YAML file (str or Path), got {type(path).__name__}")
        if not os.fspath(path).strip():  # Path("") is ".": the message would name a folder never mentioned
            raise FileNotFoundError(f"the config path is empty ({os.fspath(path)!r}): give the path of one "
                                    "experiment .yaml file, e.g. 'assets/configs/seg_hrnet_w18_small_v1_shapes.yaml'")
        path = Path(path)
        if path.is_dir():
            found = sorted(p.name for p in path.glob("*.yaml"))[:3]
            some = f" (it holds e.g. {', '.join(found)})" if found else ""
            raise IsADirectoryError(f"{path} is a directory; pass the path of one experiment .yaml file{some}")
        if not path.is_file():
            published = str(path).lower().replace("-", "_").removeprefix("hrnet_") in (*VARIANTS, "w18_small")
            hint = f"; for the published variant use get_config({str(path)!r})" if published else ""
            raise FileNotFoundError(f"No such config file: {path}{hint}")
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))  # not the system's code page (Windows)
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML: {_yaml_problem(error)}") from None
        except UnicodeDecodeError as error:
            raise ValueError(_not_utf8(path, error)) from None
        try:
            return _config_from_document(cls, document, path.stem, source=str(path))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None


def _check_head_options(options: Any) -> None:
    """A dict of create_model arguments (or the (name, value) pairs a config stores), refused otherwise:
    replace(head_options=5) failed as "'int' object is not iterable"."""
    if isinstance(options, Mapping):
        pairs = list(options.items())
    elif isinstance(options, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in options):
        pairs = list(options)
    else:
        raise ValueError(f"head_options must be a dict of create_model arguments, e.g. {{'num_classes': 4}}; got "
                         f"{options!r}")
    bad = [name for name, _ in pairs if not isinstance(name, str)]
    if bad:
        raise ValueError(f"head_options: the names must be strings (create_model's argument names), got {bad[0]!r}")


def _is_positive_int(value: object) -> bool:
    """The package's one rule for whole numbers (_validate.positive_int: a bool, a float or an array is
    not one); validate says it in the stage's own words, naming the field and the YAML's true/false."""
    try:
        positive_int("value", value)
    except ValueError:
        return False
    return True


def _not_utf8(path: Path, error: UnicodeDecodeError) -> str:
    """A binary file (most likely a checkpoint given where its config was meant), or text in another
    encoding (an editor that saved Latin-1 or cp1252: one accented letter in a comment is enough)."""
    data = error.object
    if b"\0" in data[:4096] or data[:4] == b"PK\x03\x04" or data[:1] == b"\x80":  # zip (torch.save), pickle
        return (f"{path} is not a text YAML file (a binary file, such as a checkpoint): a checkpoint loads with "
                "hrnet_teach.weights.model_from_checkpoint(path)")
    line = data.count(b"\n", 0, error.start) + 1
    column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
    return (f"{path} is not UTF-8 text (byte 0x{data[error.start]:02x} at line {line}, column {column}): save it as "
            "UTF-8, or read it yourself with the right encoding and pass yaml.safe_load(text) to "
            "HRNetConfig.from_dict")


def _computed_hint(names: list[str]) -> str:
    """For HRNetConfig.replace: why a property such as ``width`` cannot be set, and what sets it."""
    if "width" in names:
        return (" (width is read-only, stage2.num_channels[0]: for a published width use get_config('w32') ..., "
                "for another give stage2, stage3 and stage4 new num_channels)")
    computed = [name for name in names if isinstance(getattr(HRNetConfig, name, None), property)]
    return f" ({', '.join(computed)}: read-only, computed from the fields)" if computed else ""


def _yaml_problem(error: Exception) -> str:
    """PyYAML's message without its '<unicode string>' stream name: line, column, problem."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    return where + (f"{problem} ({context})" if context else problem)


def _is_extra(section: Any) -> bool:
    return isinstance(section, Mapping) and any(f"STAGE{i}" in section for i in (1, 2, 3, 4))


def _config_from_document(cls, document: Any, name: str, source: str) -> HRNetConfig:
    if not isinstance(document, Mapping):
        raise ValueError(
            f"expected a mapping with a MODEL section (MODEL.EXTRA.STAGE1..STAGE4), got "
            f"{type(document).__name__}{' (an empty file?)' if document is None else ''}"
        )
    if "MODEL" not in document:
        if _is_extra(document):  # a bare EXTRA section
            return cls(**_backbone_from_extra(document, "EXTRA"), name=name)
        keys = ", ".join(map(str, list(document)[:8])) or "none"
        raise ValueError(f"expected MODEL.EXTRA with STAGE1..STAGE4, found no MODEL section (top-level keys: {keys})")
    model = document["MODEL"]
    if not isinstance(model, Mapping):
        raise ValueError(
            f"MODEL has no sections (it is {model!r}); an experiment file's MODEL holds NAME and "
            "EXTRA (STAGE1..STAGE4), indented under it"
        )
    model_name = model.get("NAME")
    extra = model.get("EXTRA")
    known = isinstance(model_name, str) and model_name in MODEL_NAMES
    if not known and not _is_extra(extra):
        raise ValueError(
            f"this is not an HRNet config (MODEL.NAME: {model_name}): its MODEL.EXTRA has no STAGE sections. "
            f"hrnet_teach reads the authors' HRNet files ({', '.join(MODEL_NAMES)})"
        )
    if not known and "NAME" in model:
        raise ValueError(_unknown_model_name(model_name))
    if not isinstance(extra, Mapping):
        raise ValueError(f"MODEL.EXTRA is {'missing' if extra is None else repr(extra)}; it must hold STAGE1..STAGE4")
    head, options, used = _head_from_document(document, model_name)
    backbone = _backbone_from_extra(extra, "MODEL.EXTRA")
    if head in ("segmentation", "pose"):
        used.add("MODEL.EXTRA.FINAL_CONV_KERNEL")
    pretrained = extra.get("PRETRAINED_LAYERS", ["*"])
    if head == "pose":
        used.add("MODEL.EXTRA.PRETRAINED_LAYERS")
    return cls(
        **backbone, name=name, head=head, head_options=options,
        pretrained_layers=tuple(pretrained) if isinstance(pretrained, (list, tuple)) else ("*",),
        ignored_fields=_unused_fields(document, used),
    )


def _unknown_model_name(model_name: Any) -> str:
    """MODEL.NAME names the file's model: a typo (or an empty NAME:) read as "no head" dropped the file's
    classes and ALIGN_CORNERS without a word, and the checkpoint's load then failed on the class count."""
    names = ", ".join(MODEL_NAMES)
    if model_name is None or not str(model_name).strip():
        said = f"MODEL.NAME is empty: name the authors' model the file is for ({names})."
    else:
        close = difflib.get_close_matches(str(model_name).lower(), MODEL_NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        said = f"MODEL.NAME {model_name!r} is not one of the authors' HRNet models ({names}){hint}"
    return (f"{said} It decides the head, and with it whether DATASET.NUM_CLASSES, MODEL.ALIGN_CORNERS ... apply. "
            "For the backbone alone, leave the NAME line out")


def _head_from_document(document: Mapping[str, Any], model_name: Any) -> tuple[Optional[str], dict, set]:
    """The file's own model: the head, its create_model arguments, and the fields they came from.

    Each value is what the official code reads, with the official default when the file
    leaves it out (seg: DATASET.NUM_CLASSES 19; MODEL.ALIGN_CORNERS True, the HRNet-OCR branch's
    default.py: the master and pytorch-v1.1 files have no such field and their seg_hrnet.py
    upsamples with PyTorch's default, False, which a file cannot tell, so lesson 08 (section 4.3) says to pass
    align_corners=False for those; MODEL.OCR.* 512/256; pose: MODEL.NUM_JOINTS 17).
    cls_hrnet.py hard-codes 1000 classes.
    """
    model = document["MODEL"]
    dataset = document.get("DATASET") if isinstance(document.get("DATASET"), Mapping) else {}
    head = MODEL_NAMES.get(model_name)
    used = {"MODEL.NAME"} if head else set()
    options: dict[str, Any] = {}
    if head in ("segmentation", "ocr"):
        options["num_classes"] = positive_int("DATASET.NUM_CLASSES", dataset.get("NUM_CLASSES", 19))
        align = model.get("ALIGN_CORNERS", True)
        if not isinstance(align, bool):
            raise ValueError(f"MODEL.ALIGN_CORNERS must be true or false, got {align!r}")
        options["align_corners"] = align
        used |= {"DATASET.NUM_CLASSES", "MODEL.ALIGN_CORNERS"}
    if head == "ocr":
        ocr = model.get("OCR") or {}
        if not isinstance(ocr, Mapping):
            raise ValueError(f"MODEL.OCR must be a section (MID_CHANNELS, KEY_CHANNELS ...), got {ocr!r}")
        options["mid_channels"] = positive_int("MODEL.OCR.MID_CHANNELS", ocr.get("MID_CHANNELS", 512))
        options["key_channels"] = positive_int("MODEL.OCR.KEY_CHANNELS", ocr.get("KEY_CHANNELS", 256))
        # MODEL.OCR.DROPOUT and SCALE: seg_hrnet_ocr.py never reads them (it hard-codes 0.05 and 1).
        used |= {"MODEL.OCR.MID_CHANNELS", "MODEL.OCR.KEY_CHANNELS"}
    if head == "classification":
        options["num_classes"] = 1000  # cls_hrnet.py: nn.Linear(2048, 1000), whatever the file says
    if head == "pose":
        options["num_joints"] = positive_int("MODEL.NUM_JOINTS", model.get("NUM_JOINTS", 17))
        used.add("MODEL.NUM_JOINTS")
    return head, options, used


def _leaves(section: Any, prefix: str) -> list[str]:
    if isinstance(section, Mapping) and section:
        return [leaf for key, value in section.items() for leaf in _leaves(value, f"{prefix}.{key}")]
    return [prefix]


def _unused_fields(document: Mapping[str, Any], used: set[str]) -> tuple[str, ...]:
    """Every field of MODEL and DATASET that did not shape the model, then the other top-level sections."""
    stage_keys = {f"MODEL.EXTRA.STAGE{i}.{key}" for i in (2, 3, 4) for key in (*_YAML_FIELDS.values(), "FUSE_METHOD")}
    stage_keys |= {f"MODEL.EXTRA.STAGE1.{key}" for key in _STAGE1_READ}
    out = []
    for key, value in document.items():
        if key in ("MODEL", "DATASET"):
            out += [leaf for leaf in _leaves(value, key) if leaf not in used and leaf not in stage_keys]
        else:
            out.append(str(key))
    return tuple(out)


def _backbone_from_extra(extra: Mapping[str, Any], where: str) -> dict[str, Any]:
    """STAGE1..STAGE4 and FINAL_CONV_KERNEL of a ``MODEL.EXTRA`` section, as HRNetConfig arguments."""
    stages = {}
    for index in (1, 2, 3, 4):
        key = f"STAGE{index}"
        if key in extra:
            section = extra[key]
            if not isinstance(section, Mapping):
                raise ValueError(
                    f"stage{index}: {where}.{key} is {section!r}, not a section; it needs NUM_MODULES, "
                    "NUM_BRANCHES, BLOCK, NUM_BLOCKS and NUM_CHANNELS indented under it"
                )
            stages[f"stage{index}"] = _stage_from_yaml(section, f"stage{index}")
        elif index == 1:
            # The pose repository's files have no STAGE1: pose_hrnet.py hard-codes layer1 as
            # four Bottlenecks of 64 planes, the stage 1 of W18 ... W64.
            stages["stage1"] = StageConfig(1, 1, "BOTTLENECK", (4,), (64,))
        else:
            raise ValueError(f"stage{index}: the config has no {key} section under {where}")
    kernel = extra.get("FINAL_CONV_KERNEL", 1)
    if isinstance(kernel, bool) or kernel not in (1, 3):
        raise ValueError(f"{where}.FINAL_CONV_KERNEL must be 1 or 3, got {kernel!r}")
    return {**stages, "final_conv_kernel": int(kernel)}


_YAML_FIELDS = {
    "num_modules": "NUM_MODULES",
    "num_branches": "NUM_BRANCHES",
    "block": "BLOCK",
    "num_blocks": "NUM_BLOCKS",
    "num_channels": "NUM_CHANNELS",
}


# What the official __init__ reads of STAGE1: it builds layer1 from these alone, so the
# section's NUM_MODULES, NUM_BRANCHES (NUM_RANCHES in the authors' files) and FUSE_METHOD
# may say anything: they are listed in ``ignored_fields``, not checked.
_STAGE1_READ = ("BLOCK", "NUM_BLOCKS", "NUM_CHANNELS")


def _stage_from_yaml(section: Mapping[str, Any], name: str) -> StageConfig:
    if name == "stage1":
        section = {"NUM_MODULES": 1, "NUM_BRANCHES": 1, **{k: section[k] for k in _STAGE1_READ if k in section}}
    values = {}
    for field_name, key in _YAML_FIELDS.items():
        if key in section:
            values[field_name] = section[key]
            if field_name in ("num_blocks", "num_channels") and not isinstance(section[key], (list, tuple)):
                raise ValueError(
                    f"{name}.{field_name}: {name.upper()}.{key} must be a list with one entry per branch "
                    f"(e.g. [4, 4] for two branches), got {section[key]!r}"
                )
        else:
            raise ValueError(f"{name}.{field_name}: the {name.upper()} section has no {key}")
    values["fuse_method"] = section.get("FUSE_METHOD", "SUM")
    return StageConfig(**values)


def _wide(width: int, name: str) -> HRNetConfig:
    """The W18 ... W64 family: only the width C changes."""
    c = width
    return HRNetConfig(
        stage1=StageConfig(1, 1, "BOTTLENECK", (4,), (64,)),
        stage2=StageConfig(1, 2, "BASIC", (4, 4), (c, 2 * c)),
        stage3=StageConfig(4, 3, "BASIC", (4, 4, 4), (c, 2 * c, 4 * c)),
        stage4=StageConfig(3, 4, "BASIC", (4, 4, 4, 4), (c, 2 * c, 4 * c, 8 * c)),
        name=name,
    )


def _small_v1() -> HRNetConfig:
    return HRNetConfig(
        stage1=StageConfig(1, 1, "BOTTLENECK", (1,), (32,)),
        stage2=StageConfig(1, 2, "BASIC", (2, 2), (16, 32)),
        stage3=StageConfig(1, 3, "BASIC", (2, 2, 2), (16, 32, 64)),
        stage4=StageConfig(1, 4, "BASIC", (2, 2, 2, 2), (16, 32, 64, 128)),
        name="w18_small_v1",
    )


def _small_v2() -> HRNetConfig:
    return HRNetConfig(
        stage1=StageConfig(1, 1, "BOTTLENECK", (2,), (64,)),
        stage2=StageConfig(1, 2, "BASIC", (2, 2), (18, 36)),
        stage3=StageConfig(3, 3, "BASIC", (2, 2, 2), (18, 36, 72)),
        stage4=StageConfig(2, 4, "BASIC", (2, 2, 2, 2), (18, 36, 72, 144)),
        name="w18_small_v2",
    )


VARIANTS = ("w18_small_v1", "w18_small_v2", "w18", "w30", "w32", "w40", "w44", "w48", "w64")
_WIDTHS = {"w18": 18, "w30": 30, "w32": 32, "w40": 40, "w44": 44, "w48": 48, "w64": 64}


def get_config(name: str | HRNetConfig) -> HRNetConfig:
    """The published configuration of a variant, e.g. ``get_config("w48")``."""
    if isinstance(name, HRNetConfig):
        return name
    if isinstance(name, os.PathLike):  # a Path: a file, like a str that ends in .yaml or .pt
        name = os.fspath(name)
    if not isinstance(name, str):
        value = f" {name!r}" if isinstance(name, (int, float)) else ""  # not the repr of a model or a dict of tensors
        hint = f"; did you mean 'w{name}'?" if f"w{name}" in _WIDTHS else ""
        if isinstance(getattr(name, "config", None), HRNetConfig):  # a model: its config builds another like it
            hint = "; for another model like this one, pass model.config"
        raise TypeError(f"the variant must be a name such as 'w18' (one of {', '.join(VARIANTS)}) or an "
                        f"HRNetConfig; got {type(name).__name__}{value}{hint}")
    if name.lower().endswith((".yaml", ".yml")):
        raise ValueError(f"{name!r} is a file name, not a variant: read an experiment file with "
                         f"HRNetConfig.from_yaml({name!r}), then pass that config")
    if name.lower().endswith((".pt", ".pth", ".tar", ".safetensors")):
        raise ValueError(f"{name!r} is a checkpoint file, not a variant: build its model with "
                         f"hrnet_teach.weights.model_from_checkpoint({name!r}), or build a model and "
                         "load it with load_weights(model, path)")
    key = name.lower().replace("-", "_").removeprefix("hrnet_")
    if key == "w18_small":  # timm's name for the first small model
        key = "w18_small_v1"
    if key == "w18_small_v1":
        return _small_v1()
    if key == "w18_small_v2":
        return _small_v2()
    if key in _WIDTHS:
        return _wide(_WIDTHS[key], key)
    raise ValueError(f"Unknown HRNet variant {name!r}. Known variants: {', '.join(VARIANTS)}")
