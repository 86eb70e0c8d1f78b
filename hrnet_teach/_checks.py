"""The forward-time input checks of the multi-branch modules, and when to skip them.

HighResolutionModule and Transition take a list of tensors, one per branch, that lessons 03 and 05
build by hand; ``check_branch_list`` names a list of the wrong length, batch, channels or sizes
before torch fails deep inside (or, with ``zip``, quietly computes with the wrong branches).
``is_tracing`` tells eager calls from the tracers', which must see the plain network.
(``_validate`` holds the argument checks without torch; these read tensors, so they live here.)
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


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


def check_branch_list(x: object, channels: Sequence[int], who: str, field: str, sizes_because: str = "") -> None:
    """A clear error unless ``x`` is a list of one tensor per branch, ``channels[b]`` channels each
    (and, when ``sizes_because`` names what needs it, each half the size of the one before).

    ``forward`` loops with ``zip``, which stops at the shorter sequence: a list one branch short
    (the likeliest slip when the list is built by hand, lessons 03 and 05) gave plausible tensors
    made from the wrong branches, and an extra branch was dropped. The list's type and length are
    checked on every call: plain Python facts, the same under every tracer, so they cost nothing
    and add no guard. The tensors' batch, channels and sizes are shapes: checked in eager mode only.
    ``sizes_because``: what in the module needs the halving sizes, said in the error with ``{size}``
    (the size it needs) in it; "" where nothing does (any sizes run).
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
        if sizes_because:
            _check_branch_sizes(x, sizes_because)


def _check_branch_sizes(x: Sequence[torch.Tensor], because: str) -> None:
    """Each branch ceil(side / 2) of the one before, as the stride-2 convs make it: without this, torch's
    "The size of tensor a (16) must match ...". Nearest fusion also needs even sides; the model's
    check_input says so, and a list built by hand that breaks only that still gets torch's error, as
    the official module gives it (tests/test_model.py checks that RuntimeError)."""
    for b in range(1, len(x)):
        (height, width), (up_h, up_w) = x[b].shape[-2:], x[b - 1].shape[-2:]
        want = (-(-up_h // 2), -(-up_w // 2))
        if (height, width) != want:
            why = because.format(size=f"{want[0]}x{want[1]}")
            raise ValueError(f"branch {b} is {height}x{width} but branch {b - 1} is {up_h}x{up_w}: each branch has "
                             f"half the resolution of the one before ({why})")


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
