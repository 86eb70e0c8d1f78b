"""Lesson 03, the fuse matrix: which entries are None, how long a chain is, building one
``fuse_layers[i][j]``, computing one fused output by hand, and reading the official code."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BN_MOMENTUM, BasicBlock
from ..config import get_config
from ..module import HighResolutionModule
from ._answers import as_choice, as_function, as_int, as_ints, choices_text, layer_summary, one_thread, random_bn
from ._base import Exercise, Wrong

# ---------------------------------------------------------------- helpers


def _stride2_convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and m.stride[0] == 2]


# ----------------------------------------------- 1. which entries are None

NONE_VARIANT, NONE_STAGE = "w18", "stage3"


def _as_pairs(answer) -> set[tuple[int, int]]:
    if not isinstance(answer, (list, tuple, set)):
        raise Wrong(f"Give a list of (i, j) pairs, e.g. [(0, 1), (2, 2)]; you gave a {type(answer).__name__}.")
    pairs = set()
    for item in answer:
        ok = isinstance(item, (list, tuple)) and len(item) == 2
        if not ok or not all(isinstance(v, int) and not isinstance(v, bool) for v in item):
            raise Wrong(f"{item!r} is not a pair (i, j) of branch indices; give a list of pairs like [(0, 1), (2, 2)].")
        pairs.add(tuple(item))
    return pairs


def _check_none_entries(answer) -> str:
    pairs = _as_pairs(answer)
    n = get_config(NONE_VARIANT).stage3.num_branches
    diagonal = {(i, i) for i in range(n)}
    if pairs == diagonal:
        return (f"The diagonal: fuse_layers[i][i] is None because branch i is added to its own output as it is "
                f"(same resolution, same channels). The other {n * n - n} entries hold layers.")
    outside = sorted(p for p in pairs if not (0 <= p[0] < n and 0 <= p[1] < n))
    if outside:
        raise Wrong(f"{outside[0]} does not exist: stage 3 has {n} branches, so i and j run from 0 to {n - 1} "
                    f"and fuse_layers is {n}x{n}.")
    upper = sorted(p for p in pairs if p[1] > p[0])
    if upper:
        raise Wrong(f"{upper[0]} is not None: with j > i, branch j is coarser, and fuse_layers[i][j] holds a 1x1 conv + BN "
                    "(the upsampling itself happens in forward).")
    lower = sorted(p for p in pairs if p[1] < p[0])
    if lower:
        raise Wrong(f"{lower[0]} is not None: with j < i, branch j is finer, and fuse_layers[i][j] holds stride-2 convs.")
    missing = sorted(diagonal - pairs)
    raise Wrong(f"Some entries are None and you left out {missing[0]}: look at the whole diagonal.")


none_entries = Exercise(
    name="none_entries",
    lesson="03",
    question=(f"In a {NONE_STAGE} module of {NONE_VARIANT} (3 branches), which entries fuse_layers[i][j] are None? "
              "Answer as a list of (i, j) pairs."),
    checker=_check_none_entries,
    reference=[(0, 0), (1, 1), (2, 2)],
    hints=["None means: nothing to do to branch j before adding it to output i.",
           "When is nothing to do? When j is already at i's resolution and width."],
    solution_text="`answer = [(0, 0), (1, 1), (2, 2)]`: the diagonal, i == j.",
    wrong_answers=[
        ([], "Some entries are None"),
        ([(0, 0), (1, 1), (2, 2), (3, 3)], "stage 3 has 3 branches"),
        ([(0, 1), (0, 2), (1, 2)], "1x1 conv"),
        ([(1, 0), (2, 0), (2, 1)], "stride-2"),
        ([(0, 0), (1, 1)], "left out (2, 2)"),
        ([0, 1, 2], "not a pair"),
    ],
)

# -------------------------------------- 2. how long is fuse_layers[3][0]?


def _check_steps_3_0(answer) -> str:
    n = as_int(answer, "the number of stride-2 convs")
    if n == 3:
        return "Three: 1/4 -> 1/8 -> 1/16 -> 1/32, one halving per conv (i - j = 3 - 0)."
    if n == 1:
        raise Wrong("One stride-2 conv halves once; branch 0 (1/4) to branch 3 (1/32) is three halvings. "
                    "(The official code never uses stride 8.)")
    if n == 4:
        raise Wrong("From 1/4 to 1/32 is 3 halvings (1/4 -> 1/8 -> 1/16 -> 1/32), so i - j = 3 convs, not 4.")
    if n == 0:
        raise Wrong("fuse_layers[3][0] brings branch 0 (fine, 1/4) down to branch 3 (1/32): that takes stride-2 convs. "
                    "It is fuse_layers[0][3] that has none (a 1x1 conv, then upsampling).")
    if n == 2:
        raise Wrong("Two halvings take 1/4 to 1/16 (branch 2); branch 3 is at 1/32.")
    raise Wrong(f"Not {n}: count the halvings from 1/4 to 1/32.")


fuse_steps = Exercise(
    name="fuse_steps",
    lesson="03",
    question="How many stride-2 convs does fuse_layers[3][0] of a stage-4 module contain?",
    checker=_check_steps_3_0,
    reference=3,
    hints=["Row 3 is the output branch (1/32); column 0 is the input branch (1/4).",
           "Each stride-2 conv halves the size once."],
    solution_text="`answer = 3`: i - j = 3 - 0 halvings, 1/4 -> 1/8 -> 1/16 -> 1/32.",
    wrong_answers=[(1, "halves once"), (4, "not 4"), (0, "fuse_layers[0][3]"), (2, "1/16"), ("3", "one whole number")],
)

# ------------------------------------------ 3. build one fuse operation


def make_fuse_op(i: int, j: int, channels) -> nn.Module | None:
    """fuse_layers[i][j] of a module whose branches carry ``channels`` (the reference answer)."""
    if j == i:
        return None
    if j > i:  # coarser -> finer: only the channels here; F.interpolate enlarges in forward
        return nn.Sequential(
            nn.Conv2d(channels[j], channels[i], kernel_size=1, bias=False),
            nn.BatchNorm2d(channels[i], momentum=BN_MOMENTUM),
        )
    steps = []
    for k in range(i - j):  # finer -> coarser: one stride-2 conv per halving
        last = k == i - j - 1
        cout = channels[i] if last else channels[j]
        layers = [nn.Conv2d(channels[j], cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout, momentum=BN_MOMENTUM)]
        if not last:  # the last one has no ReLU: the module applies it after the sum
            layers.append(nn.ReLU(inplace=True))
        steps.append(nn.Sequential(*layers))
    return nn.Sequential(*steps)


FUSE_CHANNELS = [(48, 96, 192, 384), (18, 36, 72, 144), (16, 32, 64, 128), (32, 64)]
_BASE = 16  # branch b of the test inputs is (16 >> b) pixels wide


@functools.cache
def _official_fuse_layers(channels: tuple[int, ...]) -> nn.ModuleList:
    """The package's fuse_layers for these widths (built on the meta device: only the structure matters)."""
    with torch.device("meta"):
        return HighResolutionModule(len(channels), BasicBlock, [1] * len(channels), channels, channels).fuse_layers


def _official_op(i: int, j: int, channels) -> nn.Module | None:
    return _official_fuse_layers(tuple(channels))[i][j]


def _check_one_fuse_op(fn, i: int, j: int, channels) -> None:
    call = f"make_fuse_op({i}, {j}, {list(channels)})"
    try:
        op = fn(i, j, list(channels))
    except NotImplementedError:
        raise
    except Exception as error:
        raise Wrong(f"{call} raised {type(error).__name__}: {error}") from None
    if j == i:
        if op is not None:
            raise Wrong(f"{call} should be None: on the diagonal branch i is added to its own output as it is "
                        "(the official code appends None, and forward adds x[i] directly).")
        return
    if op is None:
        raise Wrong(f"{call} returned None; only the diagonal (i == j) is None: branch {j} must be brought to branch {i}.")
    if not isinstance(op, nn.Module):
        raise Wrong(f"{call} returned a {type(op).__name__}; return an nn.Module (an nn.Sequential of layers).")
    kinds = [type(m).__name__ for m in op.modules()]
    if any("Upsample" in k or "ConvTranspose" in k for k in kinds):
        raise Wrong(f"{call} contains an upsampling layer. fuse_layers[i][j] holds only the 1x1 conv and BN: the "
                    "module's forward enlarges the result with F.interpolate (it has no weights).")
    convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise Wrong(f"{call} has no convolution; branch {j} needs a conv to change its {channels[j]} channels into {channels[i]}.")
    strided = _stride2_convs(op)
    if j > i:
        if strided:
            raise Wrong(f"{call}: branch {j} is coarser than branch {i}, so nothing is downsampled; use one 1x1 conv "
                        f"(stride 1) + BN to go from {channels[j]} to {channels[i]} channels.")
        if len(convs) != 1 or convs[0].kernel_size != (1, 1):
            raise Wrong(f"{call}: the coarser-to-finer case is a single 1x1 conv + BN; yours has "
                        f"{', '.join(layer_summary(op))}.")
    elif len(strided) != i - j:
        plural = "s" if len(strided) != 1 else ""
        raise Wrong(f"You used {len(strided)} stride-2 conv{plural}; going from branch {j} to branch {i} needs {i - j} "
                    "(one per halving).")
    # run it: does it give branch i's channels at the right size?
    size_in = _BASE >> j
    size_out = size_in if j > i else _BASE >> i
    x = torch.randn(1, channels[j], size_in, size_in)
    try:
        with torch.no_grad():
            y = op.eval()(x)
    except Exception as error:
        raise Wrong(f"{call} failed on a 1x{channels[j]}x{size_in}x{size_in} input (branch {j}): "
                    f"{type(error).__name__}: {error}") from None
    if not isinstance(y, torch.Tensor) or y.dim() != 4:
        raise Wrong(f"{call} should map a tensor to a 4-d tensor; it gave {type(y).__name__}.")
    if y.shape[1] != channels[i]:
        raise Wrong(f"Your operation returns {y.shape[1]} channels; branch {i} expects {channels[i]} ({call}).")
    if tuple(y.shape[-2:]) != (size_out, size_out):
        raise Wrong(f"{call} turns a {size_in}x{size_in} map into {y.shape[-2]}x{y.shape[-1]}; expected {size_out}x{size_out} "
                    "(each 3x3 stride-2 conv needs padding=1)." if j < i else
                    f"{call} changes the size ({size_in} -> {y.shape[-2]}); the 1x1 conv keeps it, forward upsamples later.")
    ours, official = layer_summary(op), layer_summary(_official_op(i, j, channels))
    if ours == official:
        keys = [(k, tuple(v.shape)) for k, v in op.state_dict().items()]
        expected = [(k, tuple(v.shape)) for k, v in _official_op(i, j, channels).state_dict().items()]
        if keys != expected:
            raise Wrong(f"{call} has the right layers but nested differently, so official checkpoints would not load: "
                        f"your keys start {[k for k, _ in keys[:3]]}, the official {[k for k, _ in expected[:3]]}. "
                        "Make each stride-2 step its own nn.Sequential(conv, BN[, ReLU]) inside an outer nn.Sequential.")
        return
    if any(line.startswith("Conv2d") and line.endswith("bias") for line in ours):
        raise Wrong(f"{call}: the convs take bias=False; the BatchNorm right after each one has its own shift.")
    if sum(line.startswith("BatchNorm2d") for line in ours) < len(convs):
        raise Wrong(f"{call}: every conv is followed by a BatchNorm2d.")
    if j < i:
        if ours[-1] == "ReLU":
            raise Wrong(f"{call}: your last stride-2 step ends with a ReLU. The module applies ReLU after summing all "
                        "inputs of a branch, so the last step has none (otherwise negative values could not reach the sum).")
        if ours.count("ReLU") < i - j - 1:
            raise Wrong(f"{call}: the intermediate steps end with a ReLU (conv, BN, ReLU); only the last step has none.")
        first = convs[0]
        if i - j > 1 and first.out_channels != channels[j]:
            raise Wrong(f"{call}: the intermediate steps keep branch {j}'s {channels[j]} channels; only the last conv "
                        f"switches to branch {i}'s {channels[i]} (that is what the official code does, and the "
                        "checkpoint shapes depend on it).")
    elif "ReLU" in ours:
        raise Wrong(f"{call}: the coarser-to-finer op is 1x1 conv + BN without a ReLU; the ReLU comes after the sum.")
    raise Wrong(f"{call}: your layers are {ours}; the official ones are {official}.")


def _check_make_fuse_op(fn) -> str:
    as_function(fn, "make_fuse_op")
    with one_thread():
        return _run_fuse_op_cases(fn)


def _run_fuse_op_cases(fn) -> str:
    count = 0
    for channels in FUSE_CHANNELS:
        n = len(channels)
        for i in range(n):
            for j in range(n):
                _check_one_fuse_op(fn, i, j, channels)
                count += 1
    return (f"All {count} entries match the official fuse_layers (layers, state-dict keys and output shapes) for "
            f"branch widths {', '.join(str(c) for c in FUSE_CHANNELS)}.")


def _fuse_relu_everywhere(i, j, channels):
    op = make_fuse_op(i, j, channels)
    if op is not None and j < i:
        op[-1].append(nn.ReLU(inplace=True))
    return op


def _fuse_one_step_too_many(i, j, channels):
    if j >= i:
        return make_fuse_op(i, j, channels)
    return make_fuse_op(i + 1, j, list(channels) + [channels[-1] * 2])  # i - j + 1 steps


def _fuse_keeps_input_channels(i, j, channels):
    return make_fuse_op(i, j, [channels[j]] * len(channels)) if i != j else None


def _fuse_with_upsample(i, j, channels):
    op = make_fuse_op(i, j, channels)
    if op is not None and j > i:
        op.append(nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"))
    return op


def _fuse_identity_diagonal(i, j, channels):
    return nn.Identity() if i == j else make_fuse_op(i, j, channels)


def _fuse_flat(i, j, channels):
    op = make_fuse_op(i, j, channels)
    return nn.Sequential(*[layer for step in op for layer in step]) if op is not None and j < i else op


def _fuse_switch_early(i, j, channels):
    if j >= i:
        return make_fuse_op(i, j, channels)
    steps = []
    for k in range(i - j):
        last = k == i - j - 1
        cin = channels[j] if k == 0 else channels[i]
        layers = [nn.Conv2d(cin, channels[i], 3, 2, 1, bias=False), nn.BatchNorm2d(channels[i])]
        steps.append(nn.Sequential(*layers) if last else nn.Sequential(*layers, nn.ReLU(inplace=True)))
    return nn.Sequential(*steps)


fuse_op = Exercise(
    name="fuse_op",
    lesson="03",
    question=("Write `make_fuse_op(i, j, channels)` that returns fuse_layers[i][j] of a module whose branches carry "
              "`channels` (e.g. [18, 36, 72, 144]): None, a 1x1 conv + BN, or a chain of stride-2 convs, "
              "exactly as the official `_make_fuse_layers`."),
    checker=_check_make_fuse_op,
    reference=make_fuse_op,
    hints=[
        "Three cases: j == i -> None; j > i -> nn.Sequential(1x1 conv channels[j] -> channels[i], BN); "
        "j < i -> i - j stride-2 steps.",
        "Each stride-2 step is its own nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout)[, nn.ReLU]).",
        "In the chain, every step keeps channels[j] except the last, which outputs channels[i] and has no ReLU.",
    ],
    solution_text=(
        "```python\ndef make_fuse_op(i, j, channels):\n"
        "    if j == i:\n        return None\n"
        "    if j > i:\n"
        "        return nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), nn.BatchNorm2d(channels[i]))\n"
        "    steps = []\n"
        "    for k in range(i - j):\n"
        "        last = k == i - j - 1\n"
        "        cout = channels[i] if last else channels[j]\n"
        "        layers = [nn.Conv2d(channels[j], cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout)]\n"
        "        if not last:\n            layers.append(nn.ReLU(inplace=True))\n"
        "        steps.append(nn.Sequential(*layers))\n"
        "    return nn.Sequential(*steps)\n```"
    ),
    wrong_answers=[
        (_fuse_relu_everywhere, "last stride-2 step ends with a ReLU"),
        (_fuse_one_step_too_many, "You used 2 stride-2 convs; going from branch 0 to branch 1 needs 1"),
        (_fuse_keeps_input_channels, "Your operation returns 96 channels; branch 0 expects 48"),
        (_fuse_with_upsample, "F.interpolate"),
        (_fuse_identity_diagonal, "should be None"),
        (_fuse_flat, "nested differently"),
        (_fuse_switch_early, "intermediate steps keep branch 0's 48 channels"),
    ],
)

# ------------------------------------------ 4. one fused output by hand


def fuse_by_hand(module: HighResolutionModule, xs: list[torch.Tensor], i: int) -> torch.Tensor:
    """Output branch ``i`` of ``module`` from the branch outputs ``xs`` (the reference answer)."""
    y = None
    for j, xj in enumerate(xs):
        if j == i:
            term = xj
        elif j > i:  # 1x1 conv, then bilinear to branch i's exact size
            term = F.interpolate(module.fuse_layers[i][j](xj), size=xs[i].shape[-2:], mode="bilinear",
                                 align_corners=module.align_corners)
        else:
            term = module.fuse_layers[i][j](xj)
        y = term if y is None else y + term
    return torch.relu(y)


def _variant_sum(module, xs, i, *, mode="bilinear", align=None, relu=True, skip_self=False):
    """What typical slips compute, to name the one the learner made."""
    align = module.align_corners if align is None else align
    y = 0
    for j, xj in enumerate(xs):
        if j == i:
            if skip_self:
                continue
            term = xj
        elif j > i:
            t = module.fuse_layers[i][j](xj)
            kwargs = {"align_corners": align} if mode == "bilinear" else {}
            term = F.interpolate(t, size=xs[i].shape[-2:], mode=mode, **kwargs)
        else:
            term = module.fuse_layers[i][j](xj)
        y = y + term
    return torch.relu(y) if relu else y


# (branch channels, align_corners, branch-0 size): odd sizes on purpose
_FUSE_MODULES = [((4, 8, 16), True, (13, 10)), ((3, 6, 12, 24), False, (12, 16)), ((4, 8), True, (9, 7))]


def _fuse_cases():
    for seed, (channels, align, (h, w)) in enumerate(_FUSE_MODULES):
        torch.manual_seed(seed)
        n = len(channels)
        module = random_bn(HighResolutionModule(n, BasicBlock, [1] * n, channels, channels, align_corners=align), seed)
        sizes = [(h, w)]
        for _ in range(1, n):
            sizes.append(tuple(-(-s // 2) for s in sizes[-1]))  # ceil halving, as a stride-2 conv
        g = torch.Generator().manual_seed(50 + seed)
        inputs = [torch.randn(1, c, sh, sw, generator=g) for c, (sh, sw) in zip(channels, sizes)]
        yield module, inputs


def _check_fuse_by_hand(fn) -> str:
    as_function(fn, "fuse_by_hand")
    with one_thread():
        return _run_fuse_sum_cases(fn)


def _run_fuse_sum_cases(fn) -> str:
    count = 0
    for module, inputs in _fuse_cases():
        with torch.no_grad():
            outputs = module(inputs)
            xs = [branch(x) for branch, x in zip(module.branches, inputs)]
            for i, expected in enumerate(outputs):
                where = (f"output {i} of a module with {module.num_branches} branches "
                         f"(align_corners={module.align_corners}, branch {i} of size {tuple(xs[i].shape[-2:])})")
                try:
                    got = fn(module, [x.clone() for x in xs], i)
                except NotImplementedError:
                    raise
                except Exception as error:
                    raise Wrong(f"Your function raised {type(error).__name__} on {where}: {error}. Before the sum every "
                                f"term must have branch {i}'s shape {tuple(xs[i].shape[1:])}: coarser branches go through "
                                "fuse_layers[i][j] and are then enlarged with F.interpolate.") from None
                if isinstance(got, (list, tuple)):
                    raise Wrong(f"Your function returned a {type(got).__name__}; return the one tensor of output branch i.")
                if not isinstance(got, torch.Tensor):
                    raise Wrong(f"Your function returned a {type(got).__name__}; it should return a tensor.")
                if got.shape != expected.shape:
                    raise Wrong(f"On {where} you return shape {tuple(got.shape)}; the module gives {tuple(expected.shape)}.")
                if torch.allclose(got, expected, atol=1e-5):
                    count += 1
                    continue
                slips = {
                    "You left out the ReLU: the module applies it once, after the sum.": dict(relu=False),
                    "Bilinear, not nearest: the segmentation code enlarges with mode='bilinear' to branch i's size.":
                        dict(mode="nearest"),
                    f"Use align_corners=module.align_corners (here {module.align_corners}): it changes the values.":
                        dict(align=not module.align_corners),
                    "You left out branch i itself: the sum runs over every j, including j == i (added as it is).":
                        dict(skip_self=True),
                }
                for message, kwargs in slips.items():
                    if torch.allclose(got, _variant_sum(module, xs, i, **kwargs), atol=1e-5):
                        raise Wrong(f"{message} (on {where})")
                diff = (got - expected).abs().max().item()
                raise Wrong(f"On {where} your values differ from the module's output (largest difference {diff:.3g}).")
    return f"Your sum matches the module's own output on all {count} outputs (3 modules, odd sizes, both align_corners)."


def _sum_without_relu(module, xs, i):
    return _variant_sum(module, xs, i, relu=False)


def _sum_nearest(module, xs, i):
    return _variant_sum(module, xs, i, mode="nearest")


def _sum_align_false(module, xs, i):
    return _variant_sum(module, xs, i, align=False)


def _sum_without_upsampling(module, xs, i):
    y = xs[i]
    for j, xj in enumerate(xs):
        if j != i:
            y = y + module.fuse_layers[i][j](xj)
    return torch.relu(y)


def _sum_all_outputs(module, xs, i):
    return [fuse_by_hand(module, xs, k) for k in range(len(xs))]


fuse_sum = Exercise(
    name="fuse_sum",
    lesson="03",
    question=("Write `fuse_by_hand(module, xs, i)`: output branch i of a HighResolutionModule, given `xs`, the outputs "
              "of its branches. Use `module.fuse_layers[i][j]` and `F.interpolate` (bilinear to branch i's size, "
              "align_corners=module.align_corners)."),
    checker=_check_fuse_by_hand,
    reference=fuse_by_hand,
    hints=[
        "Loop over every input branch j, bring xs[j] to branch i, and add up the terms; then one ReLU.",
        "j == i: xs[i] itself. j < i: module.fuse_layers[i][j](xs[j]). j > i: the same, then F.interpolate(..., "
        "size=xs[i].shape[-2:], mode='bilinear', align_corners=module.align_corners).",
    ],
    solution_text=(
        "```python\ndef fuse_by_hand(module, xs, i):\n"
        "    y = 0\n"
        "    for j, xj in enumerate(xs):\n"
        "        if j == i:\n            term = xj\n"
        "        else:\n            term = module.fuse_layers[i][j](xj)\n"
        "            if j > i:\n"
        "                term = F.interpolate(term, size=xs[i].shape[-2:], mode='bilinear', align_corners=module.align_corners)\n"
        "        y = y + term\n"
        "    return torch.relu(y)\n```"
    ),
    wrong_answers=[
        (_sum_without_relu, "left out the ReLU"),
        (_sum_nearest, "Bilinear, not nearest"),
        (_sum_align_false, "align_corners=module.align_corners"),
        (_sum_without_upsampling, "enlarged with F.interpolate"),
        (_sum_all_outputs, "returned a list"),
    ],
)

# ---------------------------------- 5. reading the official `k == i - j - 1`

K_CHOICES = {
    "a": "the first step of the chain (k == 0)",
    "b": "the last step of the chain: it outputs branch i's channels and has no ReLU",
    "c": "only chains of a single step (i - j == 1)",
    "d": "the identity case (j == i)",
}


def _check_k_line(answer) -> str:
    letter = as_choice(answer, K_CHOICES)
    if letter == "b":
        return ("k runs over range(i - j), so k == i - j - 1 is the last step: the one that switches to "
                "num_inchannels[i] channels and leaves out the ReLU. Ours names it `last`.")
    raise Wrong({
        "a": "k counts the steps 0, 1, ..., i - j - 1; k == 0 is the first, and i - j - 1 is ... the other end.",
        "c": "When i - j == 1 the only step is indeed the last one, but the line holds for the last step of any chain.",
        "d": "That line sits inside the `else` (j < i) branch; the identity case (j == i) appends None before it.",
    }[letter])


k_line = Exercise(
    name="k_line",
    lesson="03",
    question="In the official `_make_fuse_layers`, `if k == i - j - 1:` is true for:\n" +
             choices_text(K_CHOICES),
    checker=_check_k_line,
    reference="b",
    hints=["The loop is `for k in range(i - j):`. What values does k take when i = 3, j = 0?"],
    solution_text="`answer = \"b\"`: k takes 0 .. i - j - 1, so the test picks the last step of the chain.",
    wrong_answers=[("a", "the other end"), ("c", "any chain"), ("d", "inside the `else`"), ("z", "one letter"),
                   (2, "as a string")],
)

# ------------------------------------------------- 6. multi_scale_output


def _check_multi_scale(answer) -> str:
    rows, per_row = as_ints(answer, 2, "(rows, entries per row)", "(2, 3)")
    if (rows, per_row) == (1, 4):
        return ("One row of four: with multi_scale_output=False the outer loop runs `range(1)`, so only output 0 "
                "(1/4) is built, and it still takes all 4 inputs. The pose head reads only that branch.")
    if (rows, per_row) == (4, 4):
        raise Wrong("That is true of the other stage-4 modules. The last one has multi_scale_output=False: "
                    "`for i in range(num_branches if self.multi_scale_output else 1)`.")
    if (rows, per_row) == (4, 1):
        raise Wrong("Rows are outputs, columns are inputs: the one output (branch 0) still sums all 4 inputs.")
    if per_row != 4:
        raise Wrong("The inner loop is always `for j in range(num_branches)`: each row has an entry for all 4 inputs.")
    raise Wrong("Look at the outer loop: `range(num_branches if self.multi_scale_output else 1)`.")


multi_scale_rows = Exercise(
    name="multi_scale_rows",
    lesson="03",
    question=("The pose model (HRNetV1) builds the last module of stage 4 with multi_scale_output=False. "
              "How many rows does its fuse_layers have, and how many entries in each row? Answer (rows, entries)."),
    checker=_check_multi_scale,
    reference=(1, 4),
    hints=["Rows are output branches i, entries are input branches j.",
           "`for i in range(num_branches if self.multi_scale_output else 1)`"],
    solution_text="`answer = (1, 4)`: one output (branch 0), fed by all four branches.",
    wrong_answers=[((4, 4), "the other stage-4 modules"), ((4, 1), "Rows are outputs"), ((1, 1), "all 4 inputs"),
                   (4, "two whole numbers")],
)

# ----------------------------- 7. nearest by a scale factor, on an odd size

NEAREST_SIZES = {"branch0": (63, 94), "branch1": (32, 47)}  # w32 on a 250x375 input


def _check_nearest_size(answer) -> str:
    h, w = as_ints(answer, 2, "the size (height, width)", "(10, 20)")
    h1, w1 = NEAREST_SIZES["branch1"]
    if (h, w) == (2 * h1, 2 * w1):
        return (f"({2 * h1}, {2 * w1}): a scale factor doubles exactly, so the sum with branch 0's "
                f"{NEAREST_SIZES['branch0']} fails. That is why the classification and pose code need sides divisible "
                "by 32, and why the segmentation code resizes `size=` branch i's shape instead.")
    if (h, w) == NEAREST_SIZES["branch0"]:
        raise Wrong("That is what `size=x[i].shape[-2:]` (the segmentation code) gives. scale_factor=2 simply doubles: "
                    f"{h1} x 2 = {2 * h1}.")
    if (h, w) == (w1 * 2, h1 * 2):
        raise Wrong("Height and width are swapped.")
    raise Wrong(f"scale_factor=2 doubles each side: {h1} and {w1}.")


nearest_size = Exercise(
    name="nearest_size",
    lesson="03",
    question=(f"On a 250x375 image, branch 0 is {NEAREST_SIZES['branch0']} and branch 1 is {NEAREST_SIZES['branch1']}. "
              "What (height, width) does `F.interpolate(branch1, scale_factor=2, mode='nearest')` give?"),
    checker=_check_nearest_size,
    reference=(64, 94),
    hints=["A scale factor multiplies the size; it does not look at any other tensor."],
    solution_text="`answer = (64, 94)`: 32 x 2 = 64 rows, one more than branch 0's 63, so the sum fails.",
    wrong_answers=[((63, 94), "segmentation code"), ((94, 64), "swapped"), ((64, 96), "doubles each side"),
                   (64, "two whole numbers")],
)

EXERCISES = [none_entries, fuse_steps, k_line, fuse_op, fuse_sum, multi_scale_rows, nearest_size]
