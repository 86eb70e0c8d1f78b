"""Configurations: how many modules, branches, blocks and channels each stage has.

The official code keeps these in YAML experiment files under ``MODEL.EXTRA``
(``STAGE1`` .. ``STAGE4``). Here they are two frozen dataclasses, with the
published variants generated from their width ``C``: the branches of stages 2-4
carry C, 2C, 4C and 8C channels (the paper, Section 3: "the widths (number of
channels) of the convolutions of the four resolutions are C, 2C, 4C, and 8C").
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

BLOCKS = ("BASIC", "BOTTLENECK")
FUSE_METHODS = ("SUM",)


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
        object.__setattr__(self, "num_blocks", tuple(self.num_blocks))
        object.__setattr__(self, "num_channels", tuple(self.num_channels))
        object.__setattr__(self, "block", str(self.block).upper())

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
        if self.fuse_method not in FUSE_METHODS:
            raise bad("fuse_method", f"{self.fuse_method!r} is not supported; use one of {FUSE_METHODS}")
        for field_name in ("num_modules", "num_branches"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or value < 1:
                raise bad(field_name, f"must be a positive integer, got {value!r}")
        for field_name in ("num_blocks", "num_channels"):
            values = getattr(self, field_name)
            if len(values) != self.num_branches:
                raise bad(
                    field_name,
                    f"has {len(values)} entries {list(values)} but num_branches is "
                    f"{self.num_branches}; give one entry per branch",
                )
            if any(not isinstance(v, int) or v < 1 for v in values):
                raise bad(field_name, f"entries must be positive integers, got {list(values)}")


@dataclass(frozen=True)
class HRNetConfig:
    """The whole backbone: four stages. Stage 1 is one branch (``layer1``); stage k
    has k branches. ``fusion=False`` is the course's ablation switch: modules keep
    their branches but exchange nothing (no ``fuse_layers``)."""

    stage1: StageConfig
    stage2: StageConfig
    stage3: StageConfig
    stage4: StageConfig
    name: str = "custom"
    final_conv_kernel: int = 1
    fusion: bool = True

    def __post_init__(self) -> None:
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
        if self.final_conv_kernel not in (1, 3):
            raise ValueError(f"final_conv_kernel: must be 1 or 3, got {self.final_conv_kernel!r}")

    @property
    def stages(self) -> tuple[StageConfig, StageConfig, StageConfig, StageConfig]:
        return (self.stage1, self.stage2, self.stage3, self.stage4)

    @property
    def width(self) -> int:
        """C, the channels of the highest-resolution branch in stages 2-4."""
        return self.stage2.num_channels[0]

    def replace(self, **changes: Any) -> HRNetConfig:
        """A copy with some fields changed, e.g. ``cfg.replace(fusion=False)``."""
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, extra: Mapping[str, Any], name: str = "custom") -> HRNetConfig:
        """Build from the authors' ``MODEL.EXTRA`` mapping (keys STAGE1..STAGE4)."""
        stages = {}
        for index in (1, 2, 3, 4):
            key = f"STAGE{index}"
            if key in extra:
                stages[f"stage{index}"] = _stage_from_yaml(extra[key], f"stage{index}")
            elif index == 1:
                # The pose repository's files have no STAGE1: pose_hrnet.py hard-codes
                # layer1 as four Bottlenecks of 64 planes, the stage 1 of W18 ... W64.
                stages["stage1"] = StageConfig(1, 1, "BOTTLENECK", (4,), (64,))
            else:
                raise ValueError(f"stage{index}: the config has no {key} section under MODEL.EXTRA")
        return cls(**stages, name=name, final_conv_kernel=int(extra.get("FINAL_CONV_KERNEL", 1)))

    @classmethod
    def from_yaml(cls, path: str | Path) -> HRNetConfig:
        """Read one of the authors' experiment files (``MODEL.EXTRA.STAGE1..4``)."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No such config file: {path}")
        document = yaml.safe_load(path.read_text()) or {}
        extra = document.get("MODEL", {}).get("EXTRA") if isinstance(document, dict) else None
        if extra is None:
            if isinstance(document, dict) and "STAGE1" in document:
                extra = document  # a bare EXTRA section
            else:
                raise ValueError(f"{path}: expected MODEL.EXTRA with STAGE1..STAGE4, found none")
        return cls.from_dict(extra, name=path.stem)


_YAML_FIELDS = {
    "num_modules": "NUM_MODULES",
    "num_branches": "NUM_BRANCHES",
    "block": "BLOCK",
    "num_blocks": "NUM_BLOCKS",
    "num_channels": "NUM_CHANNELS",
}


def _stage_from_yaml(section: Mapping[str, Any], name: str) -> StageConfig:
    values = {}
    for field_name, key in _YAML_FIELDS.items():
        if key in section:
            values[field_name] = section[key]
        elif key == "NUM_BRANCHES" and name == "stage1":
            # The authors' files spell this key NUM_RANCHES in STAGE1; stage 1 always
            # has exactly one branch, so the value is never needed.
            values[field_name] = 1
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
    key = str(name).lower().replace("-", "_").removeprefix("hrnet_")
    if key == "w18_small":  # timm's name for the first small model
        key = "w18_small_v1"
    if key == "w18_small_v1":
        return _small_v1()
    if key == "w18_small_v2":
        return _small_v2()
    if key in _WIDTHS:
        return _wide(_WIDTHS[key], key)
    raise ValueError(f"Unknown HRNet variant {name!r}. Known variants: {', '.join(VARIANTS)}")
