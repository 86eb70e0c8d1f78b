"""The HighResolutionModule: parallel branches, then fusion across resolutions.

The paper (Wang et al., TPAMI 2020, Section III-B "Repeated Multi-Resolution
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

from ._validate import flag, positive_int
from .blocks import BN_MOMENTUM, Block, NormLayer, check_block, check_norm_layer, make_layer

UPSAMPLE_MODES = ("bilinear", "nearest")


def is_tracing(x: object = None) -> bool:
    """True while a tracer runs ``forward`` instead of real data.

    torch.fx passes a ``Proxy``; TorchScript tracing sets ``torch.jit.is_tracing()``;
    torch.compile, torch.export and the ONNX exporter (built on torch.export) set
    ``torch.compiler.is_compiling()``. The input checks are Python-side ``if``s on
    shapes and dtypes: skipped here, they neither break a trace nor freeze its sizes.
    """
    if isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    compiler = getattr(torch, "compiler", None)  # torch >= 2.3 has is_compiling here
    check = getattr(compiler, "is_compiling", None)
    return bool(check and check())


def check_branch_list(x: object, channels: Sequence[int], who: str, field: str, fused: bool = False) -> None:
    """A clear error unless ``x`` is a list of one tensor per branch, ``channels[b]`` channels each
    (and, when the branches are ``fused``, each half the size of the one before).

    ``forward`` loops with ``zip``, which stops at the shorter sequence: a list one branch short
    (the likeliest slip when the list is built by hand, lessons 03 and 05) gave plausible tensors
    made from the wrong branches, and an extra branch was dropped. The list's type and length are
    checked on every call: plain Python facts, the same under every tracer, so they cost nothing
    and add no guard. The tensors' batch and channels are shapes: checked in eager mode only.
    """
    if isinstance(x, torch.fx.Proxy):  # torch.fx tracing this module on its own: nothing to check
        return
    count = len(channels)
    if not isinstance(x, (list, tuple)) or len(x) != count:
        wanted = (f"{who} takes a list of {count} tensor{'s' * (count != 1)}, one per branch (finest first), "
                  f"as it was built with {field} {tuple(channels)}")
        if isinstance(x, torch.Tensor):
            todo = "wrap it, [x]" if count == 1 else "pass one tensor per branch"
            raise TypeError(f"{wanted}; got a single tensor of shape {tuple(x.shape)}: {todo}")
        if not isinstance(x, (list, tuple)):
            raise TypeError(f"{wanted}; got {type(x).__name__}")
        raise ValueError(f"{wanted}; got {len(x)}")
    if not is_tracing(x[0] if x else None):
        _check_branch_tensors(x, channels, field)
        if fused:
            _check_branch_sizes(x)


def _check_branch_sizes(x: Sequence[torch.Tensor]) -> None:
    """Fusion adds branch j, brought to branch i's size, to branch i, and the stride-2 convs that bring a finer
    branch down give ceil(side / 2): without this, torch's "The size of tensor a (16) must match ...".
    (Nearest fusion also needs even sides; the model's check_input says so, and a list built by hand
    that breaks only that still gets torch's error, as the official module gives it.)"""
    for b in range(1, len(x)):
        (height, width), (up_h, up_w) = x[b].shape[-2:], x[b - 1].shape[-2:]
        want = (-(-up_h // 2), -(-up_w // 2))
        if (height, width) != want:
            raise ValueError(f"branch {b} is {height}x{width} but branch {b - 1} is {up_h}x{up_w}: each branch has "
                             f"half the resolution of the one before (the stride-2 convs give {want[0]}x{want[1]} here)")


def _check_branch_tensors(x: Sequence[object], channels: Sequence[int], field: str) -> None:
    """Eager only: every branch a (B, C, H, W) tensor with its channels, and one batch for all
    (a batch of 1 beside a batch of 2 would broadcast in the sums, with no error)."""
    batch = None
    for b, xb in enumerate(x):
        if not isinstance(xb, torch.Tensor):
            raise TypeError(f"branch {b} is a {type(xb).__name__}, not a tensor: give one (B, C, H, W) tensor per branch")
        if xb.dim() != 4:
            raise ValueError(f"branch {b} has shape {tuple(xb.shape)}: each branch is a (B, C, H, W) tensor")
        size = xb.shape
        if batch is None:
            batch = size[0]
        elif size[0] != batch:
            raise ValueError(f"branch {b} has batch {size[0]} but branch 0 has batch {batch}: every branch holds "
                             "the same images")
        if size[1] != channels[b]:
            raise ValueError(f"branch {b} has {size[1]} channels, this module was built for {channels[b]} "
                             f"({field}[{b}])")


class HighResolutionModule(nn.Module):
    """Branches of residual blocks at ``num_branches`` resolutions, then fusion.

    Args mirror the official constructor; ``upsample`` is how coarser branches are
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
        # "no" is a non-empty string, so truthy: fusion and every output on, or a failure in each forward
        multi_scale_output, fusion = flag("multi_scale_output", multi_scale_output), flag("fusion", fusion)
        if align_corners is not None:  # None: F.interpolate's own default, as HRNet allows
            flag("align_corners", align_corners)
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
        # (without fuse_layers the branches never meet: any sizes)
        check_branch_list(x, self.in_channels, type(self).__name__, "num_inchannels", self.fuse_layers is not None)
        # A new list: the official module writes the branch outputs back into x.
        x = [branch(xi) for branch, xi in zip(self.branches, x)]
        if self.fuse_layers is None:  # one branch, or fusion switched off
            return x if self.multi_scale_output else x[:1]
        return [self.relu(self.fuse(i, x)) for i in range(len(self.fuse_layers))]

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
