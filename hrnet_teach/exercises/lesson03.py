"""Lesson 03, the fuse matrix: which entries are None, how long a chain is, building one
``fuse_layers[i][j]``, computing one fused output by hand, and reading the official code."""
from __future__ import annotations

import copy
import functools
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BasicBlock
from ..module import HighResolutionModule
from ._answers import as_int, as_ints, as_tuples, layer_summary, random_bn
from ._kinds import Case, ChoiceExercise, FunctionExercise, Mistake, ModuleExercise, ValueExercise, fact_mistakes

N = 3  # stage 3 of w18 has 3 branches


def _explain_none(got, want):
    outside = sorted(p for p in got if not (0 <= p[0] < N and 0 <= p[1] < N))
    upper, lower = sorted(p for p in got if p[1] > p[0]), sorted(p for p in got if p[1] < p[0])
    if outside:
        return (f"{outside[0]} does not exist: stage 3 has {N} branches, so i and j run from 0 to {N - 1} "
                f"and fuse_layers is {N}x{N}.")
    if upper:
        return (f"{upper[0]} is not None: with j > i, branch j is coarser, and fuse_layers[i][j] holds a 1x1 conv + BN "
                "(the upsampling itself happens in forward).")
    if lower:
        return f"{lower[0]} is not None: with j < i, branch j is finer, and fuse_layers[i][j] holds stride-2 convs."
    return f"Some entries are None and you left out {sorted(want - got)[0]}: look at the whole diagonal."


none_entries = ValueExercise(
    name="none_entries", lesson="03",
    question=("In a stage3 module of w18 (3 branches), which entries fuse_layers[i][j] are None? "
              "Answer as a list of (i, j) pairs."),
    read=lambda a: set(as_tuples(a, 2, "(i, j) pairs", "a pair (i, j) of branch indices", "[(0, 1), (2, 2)]")),
    reference=[(0, 0), (1, 1), (2, 2)], explain=_explain_none,
    success=(f"The diagonal: fuse_layers[i][i] is None because branch i is added to its own output as it is "
             f"(same resolution, same channels). The other {N * N - N} entries hold layers."),
    hints=["None means: nothing to do to branch j before adding it to output i.",
           "When is nothing to do? When j is already at i's resolution and width."],
    solution_text="`answer = [(0, 0), (1, 1), (2, 2)]`: the diagonal, i == j.",
    wrong_answers=[([], "Some entries are None"), ([(0, 0), (1, 1), (2, 2), (3, 3)], "stage 3 has 3 branches"),
                   ([(0, 1), (0, 2), (1, 2)], "1x1 conv"), ([(1, 0), (2, 0), (2, 1)], "stride-2"),
                   ([(0, 0), (1, 1)], "left out (2, 2)"), ([0, 1, 2], "not a pair")],
)

fuse_steps = ValueExercise(
    name="fuse_steps", lesson="03",
    question="How many stride-2 convs does fuse_layers[3][0] of a stage-4 module contain?",
    read=lambda a: as_int(a, "the number of stride-2 convs"), reference=3,
    success="Three: 1/4 -> 1/8 -> 1/16 -> 1/32, one halving per conv (i - j = 3 - 0).",
    mistakes={1: ("One stride-2 conv halves once; branch 0 (1/4) to branch 3 (1/32) is three halvings. "
                  "(The official code never uses stride 8.)"),
              4: "From 1/4 to 1/32 is 3 halvings (1/4 -> 1/8 -> 1/16 -> 1/32), so i - j = 3 convs, not 4.",
              0: ("fuse_layers[3][0] brings branch 0 (fine, 1/4) down to branch 3 (1/32): that takes stride-2 convs. "
                  "It is fuse_layers[0][3] that has none (a 1x1 conv, then upsampling)."),
              2: "Two halvings take 1/4 to 1/16 (branch 2); branch 3 is at 1/32."},
    otherwise=lambda n, want: f"Not {n}: count the halvings from 1/4 to 1/32.",
    hints=["Row 3 is the output branch (1/32); column 0 is the input branch (1/4).",
           "Each stride-2 conv halves the size once."],
    solution_text="`answer = 3`: i - j = 3 - 0 halvings, 1/4 -> 1/8 -> 1/16 -> 1/32.",
    wrong_answers=[("3", "one whole number"), (9, "Not 9")],
)


def make_fuse_op(i, j, channels):
    """fuse_layers[i][j] of a module whose branches carry `channels`, as the official _make_fuse_layers."""
    if j == i:
        return None
    if j > i:  # coarser -> finer: only the channels here; F.interpolate enlarges in forward
        return nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), nn.BatchNorm2d(channels[i]))
    steps = []
    for k in range(i - j):  # finer -> coarser: one stride-2 conv per halving
        last = k == i - j - 1
        cout = channels[i] if last else channels[j]
        layers = [nn.Conv2d(channels[j], cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout)]
        if not last:  # the last one has no ReLU: the module applies it after the sum
            layers.append(nn.ReLU(inplace=True))
        steps.append(nn.Sequential(*layers))
    return nn.Sequential(*steps)


FUSE_CHANNELS = [(48, 96, 192, 384), (18, 36, 72, 144), (16, 32, 64, 128), (32, 64)]


@functools.cache
def _official_fuse_layers(channels: tuple[int, ...]) -> nn.ModuleList:
    """The package's fuse_layers for these widths, on the meta device (each case copies one entry)."""
    with torch.device("meta"):
        return HighResolutionModule(len(channels), BasicBlock, [1] * len(channels), channels, channels).fuse_layers


def _official_op(i, j, channels):
    op = _official_fuse_layers(tuple(channels))[i][j]
    return None if op is None else copy.deepcopy(op).to_empty(device="cpu")


def _facts(i, j, ch, op) -> SimpleNamespace:
    """What the fuse mistakes look at in a built entry."""
    convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)] if isinstance(op, nn.Module) else []
    n2 = sum(c.stride[0] == 2 for c in convs)
    layers = layer_summary(op) if isinstance(op, nn.Module) else []
    return SimpleNamespace(i=i, j=j, ci=ch[i], cj=ch[j], d=i - j, op=op, convs=convs, n2=n2, s="s" * (n2 != 1),
                           layers=layers, summary=", ".join(layers), out=convs[-1].out_channels if convs else 0)


_FUSE_MISTAKES = fact_mistakes(lambda case, op: _facts(*case.args, op), [  # checked in this order
    ("not_none", lambda f: f.i == f.j and f.op is not None, "This entry should be None: on the diagonal branch i is "
     "added to its own output as it is (the official code appends None, and forward adds x[i] directly)."),
    ("none", lambda f: f.i != f.j and f.op is None, "Only the diagonal (i == j) is None: branch {j} must be brought to branch {i}."),
    ("upsample", lambda f: any(isinstance(m, (nn.Upsample, nn.ConvTranspose2d)) for m in f.op.modules()),
     "Your operation contains an upsampling layer. fuse_layers[i][j] holds only the 1x1 conv and BN: the module's "
     "forward enlarges the result with F.interpolate (it has no weights)."),
    ("not_1x1", lambda f: f.j > f.i and [(c.kernel_size, c.stride) for c in f.convs] != [((1, 1), (1, 1))],
     "Branch {j} is coarser than branch {i}, so nothing is downsampled: the coarser-to-finer case is a single 1x1 conv "
     "(stride 1) + BN from {cj} to {ci} channels; yours has {summary}."),
    ("steps", lambda f: f.j < f.i and f.n2 != f.d,
     "You used {n2} stride-2 conv{s}; going from branch {j} to branch {i} needs {d} (one per halving)."),
    ("channels", lambda f: f.out != f.ci, "Your operation returns {out} channels; branch {i} expects {ci}."),
    ("padding", lambda f: any(c.kernel_size == (3, 3) and c.padding != (1, 1) for c in f.convs),
     "Each 3x3 stride-2 conv needs padding=1, so a side n becomes ceil(n / 2)."),
    ("bias", lambda f: any(c.bias is not None for c in f.convs),
     "The convs take bias=False; the BatchNorm right after each one has its own shift."),
    ("no_bn", lambda f: sum(t.startswith("BatchNorm2d") for t in f.layers) < len(f.convs),
     "Every conv is followed by a BatchNorm2d."),
    ("last_relu", lambda f: f.j < f.i and f.layers[-1] == "ReLU", "Your last stride-2 step ends with a ReLU. The "
     "module applies ReLU after summing all inputs of a branch, so the last step has none (otherwise negative values "
     "could not reach the sum)."),
    ("few_relus", lambda f: f.j < f.i and f.layers.count("ReLU") < f.d - 1,
     "The intermediate steps end with a ReLU (conv, BN, ReLU); only the last step has none."),
    ("switch_early", lambda f: f.d > 1 and f.convs[0].out_channels != f.cj, "The intermediate steps keep branch {j}'s "
     "{cj} channels; only the last conv switches to branch {i}'s {ci} (that is what the official code does, and the "
     "checkpoint shapes depend on it)."),
    ("relu_up", lambda f: f.j > f.i and "ReLU" in f.layers,
     "The coarser-to-finer op is 1x1 conv + BN without a ReLU; the ReLU comes after the sum."),
])


def _fuse_with(change, where):
    """A wrong answer: the reference, with ``change(op, i, j, channels)`` (the new op) applied where ``where(i, j)``."""
    return lambda i, j, ch: change(make_fuse_op(i, j, ch), i, j, ch) if where(i, j) else make_fuse_op(i, j, ch)


def _down(i, j):
    return j < i


def _up(i, j):
    return j > i


def _switch_early(op, i, j, ch):
    for k, step in enumerate(op):
        cin = ch[j] if k == 0 else ch[i]
        step[0], step[1] = nn.Conv2d(cin, ch[i], 3, 2, 1, bias=False), nn.BatchNorm2d(ch[i])
    return op


fuse_op = ModuleExercise(
    name="fuse_op", lesson="03", fn_name="make_fuse_op",
    question=("Write `make_fuse_op(i, j, channels)` that returns fuse_layers[i][j] of a module whose branches carry "
              "`channels` (e.g. [18, 36, 72, 144]): None, a 1x1 conv + BN, or a chain of stride-2 convs, "
              "exactly as the official `_make_fuse_layers`."),
    reference=make_fuse_op, official=_official_op,
    cases=[(i, j, list(ch)) for ch in FUSE_CHANNELS for i in range(len(ch)) for j in range(len(ch))],
    inputs=lambda i, j, ch: (torch.randn(1, ch[j], 16 >> j, 16 >> j, generator=torch.Generator().manual_seed(i)),),
    mistakes=_FUSE_MISTAKES, nesting="Make each stride-2 step its own nn.Sequential(conv, BN[, ReLU]) inside an outer nn.Sequential.",
    success=lambda n: (f"All {n} entries match the official fuse_layers (layers, state-dict keys and output shapes) for "
                       f"branch widths {', '.join(str(c) for c in FUSE_CHANNELS)}."),
    hints=["Three cases: j == i -> None; j > i -> nn.Sequential(1x1 conv channels[j] -> channels[i], BN); "
           "j < i -> i - j stride-2 steps.",
           "Each stride-2 step is its own nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout)[, nn.ReLU]).",
           "In the chain, every step keeps channels[j] except the last, which outputs channels[i] and has no ReLU."],
    wrong_answers=[
        (_fuse_with(lambda op, i, j, ch: nn.Sequential(*op[:-1], nn.Sequential(*op[-1][:1])), _down), "followed by a BatchNorm2d"),
        (_fuse_with(lambda op, i, j, ch: nn.Sequential(*op[:-1], nn.Sequential(*op[-1], nn.ReLU())), _down),
         "last stride-2 step ends with a ReLU"),
        (_fuse_with(lambda op, i, j, ch: make_fuse_op(i + 1, j, [*ch, 2 * ch[-1]]), _down),
         "You used 2 stride-2 convs; going from branch 0 to branch 1 needs 1"),
        (lambda i, j, ch: make_fuse_op(i, j, [ch[j]] * len(ch)), "Your operation returns 96 channels; branch 0 expects 48"),
        (_fuse_with(lambda op, i, j, ch: nn.Sequential(*op, nn.Upsample(scale_factor=2 ** (j - i))), _up), "F.interpolate"),
        (lambda i, j, ch: nn.Identity() if i == j else make_fuse_op(i, j, ch), "should be None"),
        (_fuse_with(lambda op, i, j, ch: nn.Sequential(*[m for step in op for m in step]), _down), "nested differently"),
        (_fuse_with(_switch_early, _down), "intermediate steps keep branch 0's 48 channels"),
        (_fuse_with(lambda op, i, j, ch: nn.Sequential(*op, nn.ReLU()), _up), "without a ReLU"),
        (_fuse_with(lambda op, i, j, ch: nn.Sequential(nn.Conv2d(ch[j], ch[j], 1, bias=False), *op), _up), "single 1x1 conv"),
        (_fuse_with(lambda op, i, j, ch: nn.Sequential(nn.Conv2d(ch[j], ch[i], 1), op[1]), _up), "bias=False"),
        (lambda i, j, ch: None, "Only the diagonal"),
    ],
)


def fuse_by_hand(module: HighResolutionModule, xs: list[torch.Tensor], i: int) -> torch.Tensor:
    """Output branch ``i`` of ``module`` from the branch outputs ``xs`` (the reference answer)."""
    return _variant_sum(module, xs, i)


def _variant_sum(module, xs, i, *, mode="bilinear", align=None, relu=True, skip_self=False, upsample=True):
    """Output branch i, or (with other arguments) what a typical slip computes."""
    align = module.align_corners if align is None else align
    y = 0
    for j, xj in enumerate(xs):
        if j == i:
            term = 0 if skip_self else xj
        else:
            term = module.fuse_layers[i][j](xj)
            if j > i and upsample:  # 1x1 conv, then resized to branch i's exact size
                term = F.interpolate(term, size=xs[i].shape[-2:], mode=mode,
                                     **({"align_corners": align} if mode == "bilinear" else {}))
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
        outputs = module(inputs)
        xs = [branch(x) for branch, x in zip(module.branches, inputs)]
        for i, expected in enumerate(outputs):
            yield Case(module, xs, i, expected=expected, where=f"output {i} of a module with {n} branches (align_corners="
                                                               f"{align}, branch {i} of size {tuple(xs[i].shape[-2:])})")


fuse_sum = FunctionExercise(
    name="fuse_sum", lesson="03", fn_name="fuse_by_hand",
    question=("Write `fuse_by_hand(module, xs, i)`: output branch i of a HighResolutionModule, given `xs`, the outputs "
              "of its branches. Use `module.fuse_layers[i][j]` and `F.interpolate` (bilinear to branch i's size, "
              "align_corners=module.align_corners)."),
    reference=fuse_by_hand, cases=_fuse_cases, returns="the one tensor of output branch i", against="the module",
    mistakes=[
        Mistake("no_relu", "You left out the ReLU: the module applies it once, after the sum.",
                like=functools.partial(_variant_sum, relu=False)),
        Mistake("nearest", "Bilinear, not nearest: the segmentation code enlarges with mode='bilinear' to branch i's size.",
                like=functools.partial(_variant_sum, mode="nearest")),
        Mistake("align", lambda case, got, want: f"Use align_corners=module.align_corners (here {case.args[0].align_corners}): "
                "it changes the values.", fragment="Use align_corners=module.align_corners",
                like=lambda m, xs, i: _variant_sum(m, xs, i, align=not m.align_corners)),
        Mistake("skip_self", "You left out branch i itself: the sum runs over every j, including j == i (added as it is).",
                like=functools.partial(_variant_sum, skip_self=True)),
        Mistake("no_upsampling", "Before the sum every term must have branch i's shape: coarser branches go through "
                "fuse_layers[i][j] and are then enlarged with F.interpolate.",
                like=functools.partial(_variant_sum, upsample=False)),
    ],
    success=lambda n: f"Your sum matches the module's own output on all {n} outputs (3 modules, odd sizes, both align_corners).",
    hints=["Loop over every input branch j, bring xs[j] to branch i, and add up the terms; then one ReLU.",
           "j == i: xs[i] itself. j < i: module.fuse_layers[i][j](xs[j]). j > i: the same, then F.interpolate(..., "
           "size=xs[i].shape[-2:], mode='bilinear', align_corners=module.align_corners)."],
    solution_text=("```python\ndef fuse_by_hand(module, xs, i):\n"
                   "    y = 0\n"
                   "    for j, xj in enumerate(xs):\n"
                   "        if j == i:\n            term = xj\n"
                   "        else:\n            term = module.fuse_layers[i][j](xj)\n"
                   "            if j > i:\n"
                   "                term = F.interpolate(term, size=xs[i].shape[-2:], mode='bilinear', align_corners=module.align_corners)\n"
                   "        y = y + term\n"
                   "    return torch.relu(y)\n```"),
    wrong_answers=[(functools.partial(_variant_sum, align=False), "align_corners=module.align_corners"),
                   (lambda module, xs, i: [fuse_by_hand(module, xs, k) for k in range(len(xs))], "returned a list")],
)

k_line = ChoiceExercise(
    name="k_line", lesson="03",
    question="In the official `_make_fuse_layers`, `if k == i - j - 1:` is true for:",
    choices={"a": "the first step of the chain (k == 0)",
             "b": "the last step of the chain: it outputs branch i's channels and has no ReLU",
             "c": "only chains of a single step (i - j == 1)", "d": "the identity case (j == i)"},
    answer="b",
    why={"a": "k counts the steps 0, 1, ..., i - j - 1; k == 0 is the first, and i - j - 1 is ... the other end.",
         "c": "When i - j == 1 the only step is indeed the last one, but the line holds for the last step of any chain.",
         "d": "That line sits inside the `else` (j < i) branch; the identity case (j == i) appends None before it."},
    success=("k runs over range(i - j), so k == i - j - 1 is the last step: the one that switches to "
             "num_inchannels[i] channels and leaves out the ReLU. Ours names it `last`."),
    hints=["The loop is `for k in range(i - j):`. What values does k take when i = 3, j = 0?"],
    solution_text="`answer = \"b\"`: k takes 0 .. i - j - 1, so the test picks the last step of the chain.",
    wrong_answers=[("z", "one letter"), (2, "as a string")],
)

multi_scale_rows = ValueExercise(
    name="multi_scale_rows", lesson="03",
    question=("The pose model (HRNetV1) builds the last module of stage 4 with multi_scale_output=False. "
              "How many rows does its fuse_layers have, and how many entries in each row? Answer (rows, entries)."),
    read=lambda a: as_ints(a, 2, "(rows, entries per row)", "(2, 3)"), reference=(1, 4),
    success=("One row of four: with multi_scale_output=False the outer loop runs `range(1)`, so only output 0 "
             "(1/4) is built, and it still takes all 4 inputs. The pose head reads only that branch."),
    mistakes={(4, 4): ("That is true of the other stage-4 modules. The last one has multi_scale_output=False: "
                       "`for i in range(num_branches if self.multi_scale_output else 1)`."),
              (4, 1): "Rows are outputs, columns are inputs: the one output (branch 0) still sums all 4 inputs."},
    explain=lambda got, want: ("The inner loop is always `for j in range(num_branches)`: each row has an entry for all "
                               "4 inputs.") if got[1] != 4 else None,
    otherwise="Look at the outer loop: `range(num_branches if self.multi_scale_output else 1)`.",
    hints=["Rows are output branches i, entries are input branches j.",
           "`for i in range(num_branches if self.multi_scale_output else 1)`"],
    solution_text="`answer = (1, 4)`: one output (branch 0), fed by all four branches.",
    wrong_answers=[((1, 1), "all 4 inputs"), (4, "two whole numbers"), ((2, 4), "outer loop")],
)

NEAREST_SIZES = {"branch0": (63, 94), "branch1": (32, 47)}  # w32 on a 250x375 input
H1, W1 = NEAREST_SIZES["branch1"]

nearest_size = ValueExercise(
    name="nearest_size", lesson="03",
    question=(f"On a 250x375 image, branch 0 is {NEAREST_SIZES['branch0']} and branch 1 is {NEAREST_SIZES['branch1']}. "
              "What (height, width) does `F.interpolate(branch1, scale_factor=2, mode='nearest')` give?"),
    read=lambda a: as_ints(a, 2, "the size (height, width)", "(10, 20)"), reference=(2 * H1, 2 * W1),
    success=(f"({2 * H1}, {2 * W1}): a scale factor doubles exactly, so the sum with branch 0's "
             f"{NEAREST_SIZES['branch0']} fails. That is why the classification and pose code need sides divisible "
             "by 32, and why the segmentation code resizes `size=` branch i's shape instead."),
    mistakes={NEAREST_SIZES["branch0"]: ("That is what `size=x[i].shape[-2:]` (the segmentation code) gives. "
                                         f"scale_factor=2 simply doubles: {H1} x 2 = {2 * H1}."),
              (2 * W1, 2 * H1): "Height and width are swapped."},
    otherwise=f"scale_factor=2 doubles each side: {H1} and {W1}.",
    hints=["A scale factor multiplies the size; it does not look at any other tensor."],
    solution_text="`answer = (64, 94)`: 32 x 2 = 64 rows, one more than branch 0's 63, so the sum fails.",
    wrong_answers=[((64, 96), "doubles each side"), (64, "two whole numbers")],
)

EXERCISES = [none_entries, fuse_steps, k_line, fuse_op, fuse_sum, multi_scale_rows, nearest_size]
