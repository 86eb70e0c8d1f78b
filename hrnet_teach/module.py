"""The HighResolutionModule: parallel branches, then fusion across resolutions.

The paper (Wang et al., TPAMI 2020, Section 3.2 "Repeated Multi-Resolution
Fusions", numbered as in its arXiv version 1908.07919; Figure 3): "The goal of the
fusion module is to exchange the information across multi-resolution
representations." Each output branch ``i`` is the sum, over every input branch
``j``, of ``x[j]`` brought to branch ``i``'s resolution and width:

- ``j == i``: nothing to do (``fuse_layers[i][i]`` is None, "identity");
- ``j > i`` (``j`` is coarser): a 1x1 conv + BN to branch ``i``'s channels, then an
  upsampling done in ``forward`` (it has no weights);
- ``j < i`` (``j`` is finer): ``i - j`` stride-2 3x3 convs; the ReLU comes between
  them but not after the last one, because a ReLU is applied after the sum.

So ``fuse_layers`` is indexed ``[output branch i][input branch j]``: row ``i``
holds everything that flows *into* branch ``i``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_branch_list, is_tracing  # noqa: F401 (is_tracing: kept importable from here)
from ._validate import flag, positive_int
from .blocks import BN_MOMENTUM, Block, NormLayer, check_block, check_norm_layer, make_layer

UPSAMPLE_MODES = ("bilinear", "nearest")


class HighResolutionModule(nn.Module):
    """Branches of residual blocks at ``num_branches`` resolutions, then fusion.

    Args mirror the official constructor's, less its sixth, ``fuse_method`` (stored there and never
    read: the fusion is always a sum), so ``multi_scale_output`` is the sixth here; ``upsample`` is how coarser branches are
    enlarged before the sum: ``"bilinear"`` to the exact size of branch ``i``
    (segmentation code, any input size) or ``"nearest"`` by the scale factor
    ``2**(j-i)`` (classification and pose code: sides that halve exactly, such as multiples
    of 32; :func:`hrnet_teach.backbone.halves_exactly`).
    ``fusion=False`` drops ``fuse_layers`` (the course's ablation).
    """

    def __init__(
        self,
        num_branches: int,
        block: Block,
        num_blocks: Sequence[int],
        num_inchannels: Sequence[int],
        num_channels: Sequence[int],
        multi_scale_output: bool = True,
        norm_layer: NormLayer = nn.BatchNorm2d,
        upsample: str = "bilinear",
        align_corners: bool = True,
        fusion: bool = True,
    ) -> None:
        super().__init__()
        check_block(block)
        num_branches = positive_int("num_branches", num_branches)
        for label, values in (("num_blocks", num_blocks), ("num_inchannels", num_inchannels), ("num_channels", num_channels)):
            if isinstance(values, str) or not hasattr(values, "__len__"):
                raise ValueError(f"{label} must be a list with one entry per branch (num_branches={num_branches}), got {values!r}")
            if len(values) != num_branches:
                raise ValueError(f"num_branches ({num_branches}) differs from len({label}) ({len(values)}): {list(values)}")
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {upsample!r}")
        if isinstance(multi_scale_output, str) and multi_scale_output.upper() in ("SUM", "CAT"):
            raise ValueError(f"multi_scale_output got {multi_scale_output!r}, which looks like the official fuse_method "
                            "argument: this constructor has none (the official code stores it and always sums). "
                            "Leave it out, and pass multi_scale_output=True/False by keyword.")
        # "no" is a non-empty string, so truthy: fusion and every output on, or a failure in each forward
        multi_scale_output, fusion = flag("multi_scale_output", multi_scale_output), flag("fusion", fusion)
        align_corners = flag("align_corners", align_corners, none_means="F.interpolate's default")
        check_norm_layer(norm_layer)
        self.num_branches = num_branches
        self.multi_scale_output = multi_scale_output
        self.upsample = upsample
        self.align_corners = align_corners
        self.in_channels = tuple(num_inchannels)
        # The official code overwrites its list ``num_inchannels`` with this while
        # building the branches; we keep both, under names that say which is which.
        self.out_channels = tuple(c * block.expansion for c in num_channels)
        self.branches = nn.ModuleList(
            make_layer(block, cin, c, n, norm_layer=norm_layer)
            for cin, c, n in zip(self.in_channels, num_channels, num_blocks)
        )
        self.fuse_layers = self._make_fuse_layers(norm_layer) if fusion and num_branches > 1 else None
        self.relu = nn.ReLU(inplace=True)

    # ------------------------------------------------------------------ build
    def _make_fuse_layers(self, norm_layer: NormLayer) -> nn.ModuleList:
        """Row i: the operations that bring every branch j into output branch i."""
        num_outputs = self.num_branches if self.multi_scale_output else 1
        rows = []
        for i in range(num_outputs):
            row = [self._make_fuse_op(i, j, norm_layer) for j in range(self.num_branches)]
            rows.append(nn.ModuleList(row))
        return nn.ModuleList(rows)

    def _make_fuse_op(self, i: int, j: int, norm_layer: NormLayer) -> Optional[nn.Module]:
        channels = self.out_channels
        if j == i:
            return None
        if j > i:  # coarser -> finer: match channels here, enlarge in forward
            return nn.Sequential(
                nn.Conv2d(channels[j], channels[i], kernel_size=1, bias=False),
                norm_layer(channels[i], momentum=BN_MOMENTUM),
            )
        return downsample_chain(channels[j], channels[i], steps=i - j, norm_layer=norm_layer)

    # ---------------------------------------------------------------- forward
    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        # Here, not only in HRNet.check_input: lessons call this module directly, with lists built by hand.
        check_branch_list(x, self.in_channels, type(self).__name__, "num_inchannels", self._sizes_because())
        # A new list: the official module writes the branch outputs back into x.
        x = [branch(xi) for branch, xi in zip(self.branches, x)]
        if self.fuse_layers is None:  # one branch, or fusion switched off
            return x if self.multi_scale_output else x[:1]
        return [self.relu(self.fuse(i, x)) for i in range(len(self.fuse_layers))]

    def _sizes_because(self) -> str:
        """What in fusion needs each branch half the size of the one before ("" where nothing does), for the
        input check's message; ``{size}`` is the size it needs."""
        rows = self.fuse_layers  # read once: a submodule lookup goes through nn.Module.__getattr__ (about 1 us)
        if rows is None:  # the branches never meet: any sizes
            return ""
        if len(rows) > 1:  # rows i > 0 bring finer branches down with stride-2 convs
            return "fusion's stride-2 convs give {size} here"
        if self.upsample == "nearest":  # one row (multi_scale_output=False): branch j enlarged by 2**j
            return "fusion's nearest upsampling enlarges each branch by a fixed factor of 2 per step: {size} here"
        return ""  # one row, bilinear to branch 0's own size: any sizes add up

    def fuse(self, i: int, x: list[torch.Tensor]) -> torch.Tensor:
        """The sum over j of branch j brought to branch i (before the final ReLU)."""
        y = None
        for j, xj in enumerate(x):  # in order of j, as the official sum
            op = self.fuse_layers[i][j]
            term = xj if op is None else op(xj)
            if j > i:
                term = self._enlarge(term, like=x[i], factor=2 ** (j - i))
            y = term if y is None else y + term
        return y

    def _enlarge(self, t: torch.Tensor, like: torch.Tensor, factor: int) -> torch.Tensor:
        if self.upsample == "nearest":
            return F.interpolate(t, scale_factor=factor, mode="nearest")
        return F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=self.align_corners)


def downsample_chain(in_channels: int, out_channels: int, steps: int,
                     norm_layer: NormLayer = nn.BatchNorm2d) -> nn.Sequential:
    """``steps`` stride-2 3x3 convs, each halving the size.

    The intermediate steps keep ``in_channels`` and end with a ReLU; the last one
    switches to ``out_channels`` and has no ReLU, because the module applies its
    ReLU after summing all the inputs of a branch.
    """
    layers = []
    for step in range(steps):
        last = step == steps - 1
        cout = out_channels if last else in_channels
        parts = [
            nn.Conv2d(in_channels, cout, kernel_size=3, stride=2, padding=1, bias=False),
            norm_layer(cout, momentum=BN_MOMENTUM),
        ]
        if not last:
            parts.append(nn.ReLU(inplace=True))
        layers.append(nn.Sequential(*parts))
    return nn.Sequential(*layers)
