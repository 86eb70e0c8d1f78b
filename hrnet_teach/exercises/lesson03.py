"""Lesson 03, the fuse matrix: which entries are None, how long a chain is, building one
``fuse_layers[i][j]``, computing one fused output by hand, and reading the official code."""
from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BasicBlock
from ..i18n import N_, _
from ..module import HighResolutionModule
from ._answers import as_int, as_ints, as_tuples, conv_padding, layer_summary, random_bn
from ._base import Wrong
from ._kinds import Case, ChoiceExercise, FunctionExercise, Mistake, ModuleExercise, ValueExercise, fact_mistakes

N = 3  # stage 3 of w18 has 3 branches


def _explain_none(got, want):
    """About the first wrong pair: outside the matrix, above the diagonal, below it; else the first one missing."""
    outside = sorted(p for p in got if not (0 <= p[0] < N and 0 <= p[1] < N))
    upper, lower = sorted(p for p in got if p[1] > p[0]), sorted(p for p in got if p[1] < p[0])
    if outside:
        return _("{pair} does not exist: stage 3 has {n} branches, so i and j run from 0 to {last} and fuse_layers "
                 "is {n}x{n}.", pair=outside[0], n=N, last=N - 1)
    if upper:
        return _("{pair} is not None: with j > i, branch j is coarser, and fuse_layers[i][j] holds a 1x1 conv + BN "
                 "(the upsampling itself happens in forward).", pair=upper[0])
    if lower:
        return _("{pair} is not None: with j < i, branch j is finer, and fuse_layers[i][j] holds stride-2 convs.",
                 pair=lower[0])
    return _("Some entries are None and you left out {pair}: look at the whole diagonal.", pair=sorted(want - got)[0])


def _read_pairs(answer) -> set[tuple[int, ...]]:
    """as_tuples as a set, also from a generator, zip or range (read once), with a word for a True/False matrix."""
    if isinstance(answer, (Iterator, range)):
        answer = list(answer)
    arrays = isinstance(answer, np.ndarray) or (isinstance(answer, torch.Tensor) and answer.device.type != "meta")
    listed = answer.tolist() if arrays else answer
    if (isinstance(listed, (list, tuple)) and listed and all(isinstance(row, (list, tuple)) and row for row in listed)
            and all(isinstance(v, (bool, np.bool_)) for row in listed for v in row)):
        raise Wrong(_("That is a True/False matrix; give the (i, j) pairs where it is True, as a list, e.g. "
                      "[(0, 1), (2, 2)]."))
    return set(as_tuples(answer, 2, N_("(i, j) pairs"), N_("a pair (i, j) of branch indices"), "[(0, 1), (2, 2)]"))


none_entries = ValueExercise(
    name="none_entries", lesson="03",
    question=N_("In a stage3 module of w18 (3 branches), which entries fuse_layers[i][j] are None? "
                "Answer as a list of (i, j) pairs."),
    read=_read_pairs,
    reference=[(0, 0), (1, 1), (2, 2)], explain=_explain_none,
    success=N_("The diagonal: fuse_layers[i][i] is None because branch i is added to its own output as it is "
               "(same resolution, same channels). The other {others} entries hold layers.", others=N * N - N),
    hints=[N_("None means: nothing to do to branch j before adding it to output i."),
           N_("When is nothing to do? When j is already at i's resolution and width.")],
    solution_text=N_("`answer = [(0, 0), (1, 1), (2, 2)]`: the diagonal, i == j."),
    wrong_answers=[([], "Some entries are None"), ([(0, 0), (1, 1), (2, 2), (3, 3)], "stage 3 has 3 branches"),
                   ([(0, 1), (0, 2), (1, 2)], "1x1 conv"), ([(1, 0), (2, 0), (2, 1)], "stride-2"),
                   ([(0, 0), (1, 1)], "left out (2, 2)"), ([0, 1, 2], "not a pair"),
                   ([[i == j for j in range(N)] for i in range(N)], "True/False matrix")],
)

fuse_steps = ValueExercise(
    name="fuse_steps", lesson="03",
    question=N_("How many stride-2 convs does fuse_layers[3][0] of a stage-4 module contain?"),
    read=lambda a: as_int(a, N_("the number of stride-2 convs")), reference=3,
    success=N_("Three: 1/4 -> 1/8 -> 1/16 -> 1/32, one halving per conv (i - j = 3 - 0)."),
    mistakes={1: N_("One stride-2 conv halves once; branch 0 (1/4) to branch 3 (1/32) is three halvings. "
                    "(The official code never uses stride 8.)"),
              4: N_("From 1/4 to 1/32 is 3 halvings (1/4 -> 1/8 -> 1/16 -> 1/32), so i - j = 3 convs, not 4."),
              0: N_("fuse_layers[3][0] brings branch 0 (fine, 1/4) down to branch 3 (1/32): that takes stride-2 "
                    "convs. It is fuse_layers[0][3] that has none (a 1x1 conv, then upsampling)."),
              2: N_("Two halvings take 1/4 to 1/16 (branch 2); branch 3 is at 1/32.")},
    otherwise=lambda n, want: _("Not {n}: count the halvings from 1/4 to 1/32.", n=n),
    hints=[N_("Row 3 is the output branch (1/32); column 0 is the input branch (1/4)."),
           N_("Each stride-2 conv halves the size once.")],
    solution_text=N_("`answer = 3`: i - j = 3 - 0 halvings, 1/4 -> 1/8 -> 1/16 -> 1/32."),
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
        conv_bn = [nn.Conv2d(channels[j], cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout)]
        # the last step has no ReLU: the module applies it after the sum
        steps.append(nn.Sequential(*conv_bn) if last else nn.Sequential(*conv_bn, nn.ReLU(inplace=True)))
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
    used = _("1 stride-2 conv") if n2 == 1 else _("{n} stride-2 convs", n=n2)
    return SimpleNamespace(i=i, j=j, ci=ch[i], cj=ch[j], d=i - j, op=op, convs=convs, n2=n2, used=used,
                           pad=conv_padding(convs[0]) if convs else (0, 0),
                           s=max((c.stride[0] for c in convs), default=0), layers=layers,
                           summary=_(", ").join(layers), out=convs[-1].out_channels if convs else 0)


def _keys(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def _built_swapped(case, got, _official) -> bool:
    """Whether the answer built fuse_layers[j][i] for (i, j): the official entry's keys and shapes, indices swapped."""
    i, j, ch = case.args
    other = None if i == j else _official_op(j, i, ch)
    return other is not None and isinstance(got, nn.Module) and _keys(got) == _keys(other)


_SWAPPED = Mistake("swapped_ij", lambda case, got, want: _(
    "Row i is the output, column j the input: for make_fuse_op({i}, {j}, ...) you built fuse_layers[{j}][{i}], which "
    "brings branch {i} to branch {j}; build the op that brings branch {j} to branch {i}.", i=case.args[0],
    j=case.args[1]), when=_built_swapped)


def _fuse_facts(case, op) -> list[SimpleNamespace]:
    """The facts of a built entry; none for an answer that raised: its error is said as it is, not as an empty op."""
    return [] if isinstance(op, BaseException) else [_facts(*case.args, op)]


_FUSE_MISTAKES = [_SWAPPED, *fact_mistakes(_fuse_facts, [  # checked in this order
    ("container", lambda f: f.i != f.j and isinstance(f.op, (list, tuple, nn.ModuleList)), N_(
        "Return the steps in one nn.Sequential: a list or tuple does not register its layers, and an nn.ModuleList "
        "cannot be called.")),
    ("not_none", lambda f: f.i == f.j and f.op is not None, N_(
        "This entry should be None: on the diagonal branch i is added to its own output as it is (the official code "
        "appends None, and forward adds x[i] directly).")),
    ("none", lambda f: f.i != f.j and f.op is None,
     N_("Only the diagonal (i == j) is None: branch {j} must be brought to branch {i}.")),
    ("upsample", lambda f: any(isinstance(m, (nn.Upsample, nn.ConvTranspose2d)) for m in f.op.modules()), N_(
        "Your operation contains an upsampling layer. In seg_hrnet.py (and here) fuse_layers[i][j] holds only the 1x1 "
        "conv and BN: the module's forward enlarges the result with F.interpolate (it has no weights). (cls_hrnet.py "
        "and pose_hrnet.py do put an nn.Upsample(mode='nearest') there.)")),
    ("not_1x1", lambda f: f.j > f.i and [(c.kernel_size, c.stride) for c in f.convs] != [((1, 1), (1, 1))], N_(
        "Branch {j} is coarser than branch {i}, so nothing is downsampled: the coarser-to-finer case is a single 1x1 "
        "conv (stride 1) + BN from {cj} to {ci} channels; yours has {summary}.")),
    ("padded_1x1", lambda f: f.j > f.i and f.pad != (0, 0), N_(
        "The 1x1 conv takes no padding (padding=0, the default): a padding of {pad} adds a border of zeros, so the map "
        "grows beyond branch {j}'s size before it is enlarged to branch {i}'s.")),
    ("big_stride", lambda f: f.j < f.i and f.s > 2, N_(
        "A conv with stride {s} skips rows and columns; the official chain has i - j = {d} convs of stride 2 (3x3, "
        "padding 1), each with its BN, and a ReLU on every step but the last.")),
    ("stride_1", lambda f: f.j < f.i and f.convs and f.s == 1, N_(
        "Your convs keep stride 1, so nothing is downsampled: going from branch {j} to branch {i} takes {d} convs of "
        "stride 2 (3x3, padding 1), one per halving.")),
    ("steps", lambda f: f.j < f.i and f.n2 != f.d,
     N_("You used {used}; going from branch {j} to branch {i} needs {d} (one per halving).")),
    ("channels", lambda f: f.out != f.ci, N_("Your operation returns {out} channels; branch {i} expects {ci}.")),
    ("dilation", lambda f: any(c.dilation != (1, 1) for c in f.convs), N_(
        "The official convs have no dilation (dilation=1, the default): a 3x3 conv that looks at every pixel of its "
        "3x3 window.")),
    ("padding", lambda f: any(c.kernel_size == (3, 3) and conv_padding(c) != (1, 1) for c in f.convs),
     N_("Each 3x3 stride-2 conv needs padding=1, so a side n becomes ceil(n / 2).")),
    ("bias", lambda f: any(c.bias is not None for c in f.convs),
     N_("The convs take bias=False; the BatchNorm right after each one has its own shift.")),
    ("no_bn", lambda f: sum(t.startswith("BatchNorm2d") for t in f.layers) < len(f.convs),
     N_("Every conv is followed by a BatchNorm2d.")),
    ("last_relu", lambda f: f.j < f.i and f.layers[-1] == "ReLU", N_(
        "Your last stride-2 step ends with a ReLU. The module applies ReLU after summing all inputs of a branch, so "
        "the last step has none (otherwise negative values could not reach the sum).")),
    ("few_relus", lambda f: f.j < f.i and f.layers.count("ReLU") < f.d - 1,
     N_("The intermediate steps end with a ReLU (conv, BN, ReLU); only the last step has none.")),
    ("switch_early", lambda f: f.d > 1 and f.convs[0].out_channels != f.cj, N_(
        "The intermediate steps keep branch {j}'s {cj} channels; only the last conv switches to branch {i}'s {ci} "
        "(that is what the official code does, and the checkpoint shapes depend on it).")),
    ("relu_up", lambda f: f.j > f.i and "ReLU" in f.layers,
     N_("The coarser-to-finer op is 1x1 conv + BN without a ReLU; the ReLU comes after the sum.")),
])]


def _slip(change, down: bool):
    """A wrong answer: the reference, with ``change(op, i, j, channels)`` (the new op) instead of every entry
    that downsamples (``down``) or upsamples."""
    def build(i, j, ch):
        op = make_fuse_op(i, j, ch)
        return change(op, i, j, ch) if i != j and (j < i) == down else op
    return build


def _unpadded(op, i, j, ch):
    for conv in (m for m in op.modules() if isinstance(m, nn.Conv2d)):
        conv.padding = (0, 0)
    return op


def _switch_early(op, i, j, ch):
    for k, step in enumerate(op):
        step[0], step[1] = nn.Conv2d(ch[j] if k == 0 else ch[i], ch[i], 3, 2, 1, bias=False), nn.BatchNorm2d(ch[i])
    return op


def _one_strided_conv(op, i, j, ch):  # one conv of stride 2 ** (i - j) instead of the chain
    return nn.Sequential(nn.Sequential(nn.Conv2d(ch[j], ch[i], 3, 2 ** (i - j), 1, bias=False), nn.BatchNorm2d(ch[i])))


def _shared_steps(op, i, j, ch):  # [step] * n: the first intermediate step used for every intermediate one
    return op if i - j < 3 else nn.Sequential(*[op[0]] * (i - j - 1), op[-1])


def _reset(op, kind, **settings):  # every layer of ``kind`` with other settings (momentum, eps, dilation ...)
    for layer in op.modules():
        if isinstance(layer, kind):
            for name, value in settings.items():
                setattr(layer, name, value)
    return op


def _raises_off_diagonal(i, j, channels):  # an unfinished answer: its error is said as it is, with no fact about an op
    if i == j:
        return None
    raise ValueError("not written yet")


fuse_op = ModuleExercise(
    name="fuse_op", lesson="03", fn_name="make_fuse_op",
    question=N_("Write `make_fuse_op(i, j, channels)` that returns fuse_layers[i][j] of a module whose branches carry "
                "`channels` (e.g. [18, 36, 72, 144]): None, a 1x1 conv + BN, or a chain of stride-2 convs, "
                "exactly as the official `_make_fuse_layers` of seg_hrnet.py."),
    reference=make_fuse_op, official=_official_op, against=N_("the official module"),
    cases=[(i, j, list(ch)) for ch in FUSE_CHANNELS for i in range(len(ch)) for j in range(len(ch))],
    inputs=lambda i, j, ch: (torch.randn(1, ch[j], 16 >> j, 16 >> j, generator=torch.Generator().manual_seed(i)),),
    mistakes=_FUSE_MISTAKES,
    nesting=N_("Make each stride-2 step its own nn.Sequential(conv, BN[, ReLU]) inside an outer nn.Sequential."),
    success=lambda n: _("All {n} entries match the official fuse_layers (layers, state-dict keys and output shapes) "
                        "for branch widths {widths}.", n=n, widths=_(", ").join(map(str, FUSE_CHANNELS))),
    hints=[N_("Three cases: j == i -> None; j > i -> nn.Sequential(1x1 conv channels[j] -> channels[i], BN); "
              "j < i -> i - j stride-2 steps."),
           N_("Each stride-2 step is its own nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), "
              "nn.BatchNorm2d(cout)[, nn.ReLU])."),
           N_("In the chain, every step keeps channels[j] except the last, which outputs channels[i] and has no ReLU.")],
    wrong_answers=[
        (_slip(lambda op, i, j, ch: nn.Sequential(*op[:-1], nn.Sequential(*op[-1][:1])), True), "followed by a BatchNorm2d"),
        (_slip(lambda op, i, j, ch: nn.Sequential(*op[:-1], nn.Sequential(*op[-1], nn.ReLU())), True),
         "last stride-2 step ends with a ReLU"),
        (_slip(lambda op, i, j, ch: make_fuse_op(i + 1, j, [*ch, 2 * ch[-1]]), True),
         "You used 2 stride-2 convs; going from branch 0 to branch 1 needs 1"),
        (lambda i, j, ch: make_fuse_op(i, j, [ch[j]] * len(ch)), "Your operation returns 96 channels; branch 0 expects 48"),
        (_slip(lambda op, i, j, ch: nn.Sequential(*op, nn.Upsample(scale_factor=2 ** (j - i))), False), "F.interpolate"),
        (_slip(lambda op, i, j, ch: nn.Sequential(nn.Conv2d(ch[j], ch[i], 1, padding=1, bias=False), op[1]), False),
         "The 1x1 conv takes no padding"),
        (lambda i, j, ch: nn.Identity() if i == j else make_fuse_op(i, j, ch), "should be None"),
        (_slip(lambda op, i, j, ch: nn.Sequential(*[m for step in op for m in step]), True), "nested differently"),
        (_slip(_switch_early, True), "intermediate steps keep branch 0's 48 channels"),
        (_slip(lambda op, i, j, ch: nn.Sequential(*op, nn.ReLU()), False), "without a ReLU"),
        (_slip(lambda op, i, j, ch: nn.Sequential(nn.Conv2d(ch[j], ch[j], 1, bias=False), *op), False), "single 1x1 conv"),
        (_slip(lambda op, i, j, ch: nn.Sequential(nn.Conv2d(ch[j], ch[i], 1), op[1]), False), "bias=False"),
        (lambda i, j, ch: None, "Only the diagonal"),
        (_slip(lambda op, i, j, ch: list(op), True), "Return the steps in one nn.Sequential"),
        (_slip(lambda op, i, j, ch: tuple(op), True), "Return the steps in one nn.Sequential"),
        (_slip(lambda op, i, j, ch: nn.ModuleList(op), True), "Return the steps in one nn.Sequential"),
        (_slip(lambda op, i, j, ch: [*op], False), "Return the steps in one nn.Sequential"),
        (_slip(_unpadded, True), "needs padding=1"),
        (_slip(lambda op, i, j, ch: nn.Sequential(*[nn.Sequential(*step[:2]) for step in op]), True),
         "intermediate steps end with a ReLU"),
        (lambda i, j, ch: make_fuse_op(j, i, ch), "you built fuse_layers[1][0]"),
        (_raises_off_diagonal, "raised ValueError: not written yet ("),
        (_slip(_one_strided_conv, True), "A conv with stride 4 skips rows and columns; the official chain has i - j"),
        (_slip(_shared_steps, True), "your layers 0.0 and 1.0 are one object"),
        (_slip(lambda op, i, j, ch: _reset(op, nn.Conv2d, stride=(1, 1)), True), "Your convs keep stride 1"),
        (_slip(lambda op, i, j, ch: _reset(op, nn.BatchNorm2d, momentum=0.99), False), "Keras's convention"),
        (_slip(lambda op, i, j, ch: _reset(op, nn.BatchNorm2d, eps=1e-3), False), "has eps=0.001"),
        (_slip(lambda op, i, j, ch: _reset(op, nn.Conv2d, dilation=(2, 2), padding=(2, 2)), True), "no dilation"),
        (_slip(lambda op, i, j, ch: nn.Sequential(*[nn.Sequential(step[0], step[2], step[1]) if len(step) == 3
                                                    else step for step in op]), True), "in another order"),
    ],
)


def fuse_by_hand(module, xs, i):
    y = 0
    for j, xj in enumerate(xs):
        if j == i:  # same resolution and channels: added as it is
            term = xj
        else:
            term = module.fuse_layers[i][j](xj)
            if j > i:  # coarser: after the 1x1 conv, enlarged to branch i's exact size
                term = F.interpolate(term, size=xs[i].shape[-2:], mode="bilinear", align_corners=module.align_corners)
        y = y + term
    return torch.relu(y)  # one ReLU, after the sum


def _variant_sum(module, xs, i, *, mode="bilinear", align=None, relu=True, skip_self=False, upsample=True,
                 scale=False, swap=False, call_self=False, relu_terms=False, keep=None, mean=False, size_from=None,
                 down=True, first_twice=False, relu_partial=False, full_size=False):
    """What a typical slip computes instead of fuse_by_hand (with the defaults, the same). The terms are made
    and added one by one, as a learner's loop does, so a slip that raises raises what that loop would.
    ``keep(j, i, n)``: which terms the slip's loop reaches; ``mean``: the sum divided by their number;
    ``size_from``: the branch whose size the enlarging aims at (default i); ``down=False``: finer branches
    added as they are, without their stride-2 chain, ``down="resize"``: resized to branch i's size instead;
    ``first_twice``: the j = 0 term added again (the official start, then a loop from 0); ``relu_partial``: a ReLU
    after each addition; ``full_size``: ``size=xs[i].shape``, batch and channels included."""
    aligned = mode in ("bilinear", "bicubic")  # the modes that take align_corners
    bilinear = {"align_corners": module.align_corners if align is None else align} if aligned else {}

    def term(j, xj):
        if j == i and not call_self:  # call_self: fuse_layers[i][i] (None) called like the others
            t = 0 if skip_self else xj
        elif j < i and down == "resize":
            t = F.interpolate(xj, size=xs[i].shape[-2:], mode=mode, **bilinear)
        elif j < i and not down:
            t = xj
        else:
            t = (module.fuse_layers[j][i] if swap else module.fuse_layers[i][j])(xj)
        if j > i and upsample:
            target = xs[i if size_from is None else size_from]
            size = {"scale_factor": 2 ** (j - i)} if scale else {"size": target.shape if full_size else target.shape[-2:]}
            t = F.interpolate(t, mode=mode, **size, **bilinear)
        return torch.relu(t) if relu_terms else t

    terms = [term(0, xs[0])] if first_twice else []
    y = 0
    for t in terms + [term(j, xj) for j, xj in enumerate(xs) if keep is None or keep(j, i, len(xs))]:
        y = torch.relu(y + t) if relu_partial else y + t
    y = y / len(xs) if mean else y
    return torch.relu(y) if relu else y


# (branch channels, align_corners, branch-0 size): odd sizes on purpose
_FUSE_MODULES = [((4, 8, 16), True, (13, 10)), ((3, 6, 12, 24), False, (12, 16)), ((4, 8), True, (9, 7))]


def _fuse_cases():
    for seed, (channels, align, (h, w)) in enumerate(_FUSE_MODULES):
        torch.manual_seed(seed)
        n = len(channels)
        module = random_bn(HighResolutionModule(n, BasicBlock, [1] * n, channels, channels, align_corners=align), seed)
        g = torch.Generator().manual_seed(50 + seed)
        # branch b is 2**b times smaller, rounded up as a stride-2 conv does: -(-h >> b) == ceil(h / 2**b)
        inputs = [torch.randn(1, c, -(-h >> b), -(-w >> b), generator=g) for b, c in enumerate(channels)]
        outputs = module(inputs)
        xs = [branch(x) for branch, x in zip(module.branches, inputs)]
        for i, expected in enumerate(outputs):
            yield Case(module, xs, i, expected=expected, where=N_(
                "output {i} of a module with {n} branches (align_corners={align}, branch {i} of size {size})",
                i=i, n=n, align=align, size=tuple(xs[i].shape[-2:])))


_SUM_SLIPS = [  # (name, message, what the slip changes in _variant_sum), checked in this order
    ("no_relu", N_("You left out the ReLU: the module applies it once, after the sum."), {"relu": False}),
    ("nearest", N_("Bilinear, not nearest: the segmentation code enlarges with mode='bilinear' to branch i's size."),
     {"mode": "nearest"}),
    ("bicubic", N_("Bilinear, not bicubic: the segmentation code enlarges with mode='bilinear' to branch i's size."),
     {"mode": "bicubic"}),
    ("skip_self", N_("You left out branch i itself: the sum runs over every j, including j == i (added as it is)."),
     {"skip_self": True}),
    ("no_upsampling", N_("Before the sum every term must have branch i's shape: coarser branches go through "
                         "fuse_layers[i][j] and are then enlarged with F.interpolate."), {"upsample": False}),
    ("scale_factor", N_("Resize with size=xs[i].shape[-2:], not a scale factor: odd sides do not double exactly "
                        "(exercise nearest_size)."), {"scale": True}),
    ("swapped", N_("fuse_layers[i][j] takes input j to output i: row i is the output, j the input."), {"swap": True}),
    ("calls_none", N_("fuse_layers[i][i] is None: the term for j == i is xs[i] itself."), {"call_self": True}),
    # a ReLU after a sum of terms that are already >= 0 changes nothing: one slip, with or without it
    ("relu_terms", N_("One ReLU, after the sum, not one on each term: a term clipped to zero or more before it meets "
                      "the others could only add, never subtract (that is also why the last stride-2 step of a fuse "
                      "chain has no ReLU)."), {"relu_terms": True}),
    ("skip_coarser", N_("Every j in range(len(xs)) contributes one term, the coarser branches (j > i) too: through "
                        "fuse_layers[i][j], then F.interpolate to branch i's size."), {"keep": lambda j, i, n: j <= i}),
    ("skip_last", N_("Your loop stops one branch short: the last branch, j = len(xs) - 1, contributes a term too. "
                     "Loop over range(len(xs))."), {"keep": lambda j, i, n: j < n - 1}),
    ("mean", N_("Add the terms up; do not average them: the module sums them, then applies one ReLU."),
     {"mean": True}),
    ("size_branch0", N_("Enlarge to branch i's size, size=xs[i].shape[-2:], not branch 0's: output i has branch i's "
                        "shape."), {"size_from": 0}),
    ("finer_raw", N_("A finer branch (j < i) must go through fuse_layers[i][j], its stride-2 convs, before it is "
                     "added: only then does it have branch i's size and channels."), {"down": False}),
    ("finer_resized", N_("A finer branch (j < i) goes through fuse_layers[i][j], its stride-2 convs, not "
                         "F.interpolate: the convs change its channels to branch i's too, which a resize cannot."),
     {"down": "resize"}),
    ("skip_finer", N_("Every j in range(len(xs)) contributes one term, the finer branches (j < i) too: through "
                      "fuse_layers[i][j], the stride-2 convs."), {"keep": lambda j, i, n: j >= i}),
    ("first_twice", N_("The j = 0 term is counted twice: the official forward starts y with it (`y = x[0] if i == 0 "
                       "else self.fuse_layers[i][0](x[0])`) and then loops from j = 1; your loop starts at 0 again."),
     {"first_twice": True}),
    ("relu_partial", N_("One ReLU, after the whole sum: yours clips each partial sum as it goes, so a later negative "
                        "term meets a sum already clipped to zero or more."), {"relu_partial": True}),
    ("full_size", N_("size= takes the spatial size only, (height, width): xs[i].shape[-2:], not xs[i].shape or "
                     "xs[i].size(), which include the batch and the channels."), {"full_size": True}),
]


def _call_sum(fn, module, xs, i):
    """The answer, then what its values cannot show: whether it wrote into the tensors of xs (`y = xs[i]` makes y
    that very tensor, so a later `y += term` changes the caller's xs[i])."""
    given, before = list(xs), [x.clone() for x in xs]
    got = fn(module, xs, i)
    changed = next((j for j, (x, b) in enumerate(zip(given, before)) if not torch.equal(x, b)), None)
    if changed is not None:
        raise Wrong(_("Your function changed xs[{j}] in place, for example with `y = xs[i]` followed by `y += term` "
                      "(y is then the very tensor xs[i], so += writes into it), or with an in-place op such as "
                      "relu_(). Start from `y = 0`, or write `y = y + term`: the other outputs read the same xs, and "
                      "in training autograd needs them unchanged.", j=changed))
    return got


def _other_output(case, got) -> int | None:
    """The other output k (of this case's module and xs) that the answer returned in place of output i."""
    module, xs, i = case.args
    return next((k for k in range(len(xs)) if k != i and isinstance(got, torch.Tensor)
                 and got.shape == xs[k].shape and torch.allclose(got, fuse_by_hand(module, xs, k), atol=1e-5)), None)


def _switched_to_training(case) -> bool:
    given = getattr(case, "given", case.args)[0]  # the copy of the module the answer was called with
    return any(m.training for m in given.modules()) and not any(m.training for m in case.args[0].modules())


def _in_train_mode(module, xs, i):  # a slip: module.train() first, then the right sum
    module.train()
    return fuse_by_hand(module, xs, i)


def _adds_into_xs(module, xs, i):  # a slip: the right sum, added up in the caller's xs[i]
    y = xs[i]
    y += _variant_sum(module, xs, i, relu=False, skip_self=True)  # the other terms, into xs[i] itself
    return torch.relu(y)


fuse_sum = FunctionExercise(
    name="fuse_sum", lesson="03", fn_name="fuse_by_hand",
    question=N_("Write `fuse_by_hand(module, xs, i)`: output branch i of a HighResolutionModule, given `xs`, the "
                "outputs of its branches. Use `module.fuse_layers[i][j]` and `F.interpolate` (bilinear to branch i's "
                "size, align_corners=module.align_corners)."),
    reference=fuse_by_hand, cases=_fuse_cases, call=_call_sum, trains=True,
    returns=N_("the one tensor of output branch i"),
    against=N_("the module"),
    mistakes=[
        *(Mistake(name, message, like=functools.partial(_variant_sum, **slip)) for name, message, slip in _SUM_SLIPS),
        Mistake("other_output", lambda case, got, want: _(
                "On output {i} you returned output {k}: does your function use the i it was given (a notebook "
                "variable named i, or a loop variable, would give another output)?", i=case.args[2],
                k=_other_output(case, got)), when=lambda case, got, want: _other_output(case, got) is not None,
                fragment="does your function use the i it was given"),
        Mistake("train_mode", N_("Your function switched the module to training mode (module.train()): BatchNorm then "
                                 "normalises with the batch's own statistics, so the numbers change. Leave its mode as "
                                 "it is."), when=lambda case, got, want: _switched_to_training(case),
                fragment="switched the module to training mode"),
        Mistake("calls_module", N_("module(xs) runs the module's branches again, but xs are already their outputs: "
                                   "build the sum yourself from `module.fuse_layers[i][j](xs[j])`."),
                like=lambda module, xs, i: module(xs)[i]),
        Mistake("align", lambda case, got, want: _("Use align_corners=module.align_corners (here {align}): it changes "
                                                   "the values.", align=case.args[0].align_corners),
                fragment="Use align_corners=module.align_corners",
                like=lambda m, xs, i: _variant_sum(m, xs, i, align=not m.align_corners)),
    ],
    success=lambda n: _("Your sum matches the module's own output on all {n} outputs (3 modules, odd sizes, both "
                        "align_corners).", n=n),
    hints=[N_("Loop over every input branch j, bring xs[j] to branch i, and add up the terms; then one ReLU."),
           N_("j == i: xs[i] itself. j < i: `module.fuse_layers[i][j](xs[j])`. j > i: the same, then F.interpolate(..., "
              "size=xs[i].shape[-2:], mode='bilinear', align_corners=module.align_corners).")],
    wrong_answers=[(functools.partial(_variant_sum, align=False), "align_corners=module.align_corners"),
                   (lambda module, xs, i: [fuse_by_hand(module, xs, k) for k in range(len(xs))],
                    "You gave a list where a tensor belongs"),
                   (_adds_into_xs, "changed xs[0] in place"), (_in_train_mode, "switched the module to training"),
                   (lambda module, xs, i: fuse_by_hand(module, xs, (i + 1) % len(xs)), "you returned output 1")],
)

k_line = ChoiceExercise(
    name="k_line", lesson="03",
    question=N_("In the official `_make_fuse_layers`, `if k == i - j - 1:` is true for:"),
    choices={"a": N_("the first step of the chain (k == 0)"),
             "b": N_("the last step of the chain: it outputs branch i's channels and has no ReLU"),
             "c": N_("only chains of a single step (i - j == 1)"), "d": N_("the identity case (j == i)")},
    answer="b",
    why={"a": N_("k counts the steps 0, 1, ..., i - j - 1; k == 0 is the first, and i - j - 1 is ... the other end."),
         "c": N_("When i - j == 1 the only step is indeed the last one, but the line holds for the last step of any "
                 "chain."),
         "d": N_("That line sits inside the `else` (j < i) branch; the identity case (j == i) appends None before it.")},
    success=N_("k runs over range(i - j), so k == i - j - 1 is the last step: the one that switches to "
               "num_inchannels[i] channels and leaves out the ReLU. Ours names it `last`."),
    hints=[N_("The loop is `for k in range(i - j):`. What values does k take when i = 3, j = 0?")],
    solution_text=N_("`answer = \"b\"`: k takes 0 .. i - j - 1, so the test picks the last step of the chain."),
    wrong_answers=[("z", "one letter"), (2, "as a string")],
)

no_relu_reason = ChoiceExercise(
    name="no_relu_reason", lesson="03",
    question=N_("In a fuse chain the steps before the last end with a ReLU, but the last stride-2 step has none. "
                "Why?"),
    choices={"a": N_("its result is one term of a sum, and the module applies its one ReLU after that sum"),
             "b": N_("a ReLU is expensive, so the authors save one per chain"),
             "c": N_("the BatchNorm before it already leaves no negative values, so a ReLU would change nothing"),
             "d": N_("it is a slip in the official code, kept so that the checkpoints still load")},
    answer="a",
    why={"b": N_("A ReLU costs almost nothing next to a 3x3 conv, and the steps before the last keep theirs. Ask "
                 "where the result of the last step goes next."),
         "c": N_("BatchNorm shifts and scales; it does not clip. Its output has plenty of negative values (a cell "
                 "below counts them in a real term)."),
         "d": N_("Nothing points to a slip: the 1x1 conv + BN of the upsampling case has no ReLU either, and a ReLU has no "
                 "weights, so adding one would not change a single checkpoint key.")},
    success=N_("Each output is ReLU(sum of terms). A ReLU at the end of the chain would clip that term to zero or "
               "more before it meets the others, so a finer branch could only add, never subtract."),
    hints=[N_("Follow the result of fuse_layers[i][j] in forward: what is done to it next, and where is "
              "self.relu applied?")],
    solution_text=N_("`answer = \"a\"`: the chain's output is one term of y, and forward applies the ReLU once, "
                     "after the sum: `x_fuse.append(self.relu(y))`."),
    wrong_answers=[("b", "costs almost nothing"), ("c", "does not clip"), ("d", "Nothing points to a slip"), ("e", "one letter")],
)


def _read_pair(what, example):
    """A reader of an ordered pair: as_ints, but a set is refused (it has no order, and a set of small ints iterates
    sorted, so {4, 1} would read as (1, 4))."""
    def read(answer) -> tuple[int, ...]:
        if isinstance(answer, (set, frozenset)):
            raise Wrong(_("A set has no order; give a tuple, e.g. {example}.", example=example))
        return as_ints(answer, 2, what, example)
    return read


multi_scale_rows = ValueExercise(
    name="multi_scale_rows", lesson="03",
    question=N_("The pose model (HRNetV1) builds the last module of stage 4 with multi_scale_output=False. How many "
                "rows does its fuse_layers have, and how many entries in each row? Answer (rows, entries)."),
    read=_read_pair(N_("(rows, entries per row)"), "(2, 3)"), reference=(1, 4),
    success=N_("One row of four: with multi_scale_output=False the outer loop runs `range(1)`, so only output 0 "
               "(1/4) is built, and it still takes all 4 inputs. The pose head reads only that branch."),
    mistakes={(4, 4): N_("That is true of the other stage-4 modules. The last one has multi_scale_output=False: "
                         "`for i in range(num_branches if self.multi_scale_output else 1)`."),
              (4, 1): N_("Rows are outputs, columns are inputs: the one output (branch 0) still sums all 4 inputs."),
              (1, 3): N_("fuse_layers[0][0] is None, but it is still an entry: the ModuleList keeps its place so that "
                         "column j stays index j. One row of 4 entries.")},
    rules=[(lambda got, want: got[1] != 4, N_("The inner loop is always `for j in range(num_branches)`: each row has "
                                              "an entry for all 4 inputs."))],
    otherwise=N_("Look at the outer loop: `range(num_branches if self.multi_scale_output else 1)`."),
    hints=[N_("Rows are output branches i, entries are input branches j."),
           N_("The outer loop: `for i in range(num_branches if self.multi_scale_output else 1)`.")],
    solution_text=N_("`answer = (1, 4)`: one output (branch 0), fed by all four branches."),
    wrong_answers=[((1, 1), "all 4 inputs"), (4, "two whole numbers"), ((2, 4), "outer loop"),
                   ({4, 1}, "A set has no order")],
)

B0, B1 = (63, 94), (32, 47)  # (height, width) of branches 0 and 1 of w32 on a 250x375 input

nearest_size = ValueExercise(
    name="nearest_size", lesson="03",
    question=N_("On a 250x375 image, branch 0 is {b0} and branch 1 is {b1}. What (height, width) does "
                "`F.interpolate(branch1, scale_factor=2, mode='nearest')` give?", b0=B0, b1=B1),
    read=_read_pair(N_("the size (height, width)"), "(10, 20)"), reference=(2 * B1[0], 2 * B1[1]),
    success=N_("({h}, {w}): a scale factor doubles exactly, so the sum with branch 0's {b0} fails. That is why the "
               "classification and pose code need sides that halve exactly (multiples of 32, or 1 to 3 pixels short of "
               "one), and why the segmentation code resizes `size=` branch i's shape instead.",
               h=2 * B1[0], w=2 * B1[1], b0=B0),
    mistakes={B0: N_("That is what `size=x[i].shape[-2:]` (the segmentation code) gives. scale_factor=2 simply "
                     "doubles: {h} x 2 = {twice}.", h=B1[0], twice=2 * B1[0]),
              (2 * B1[1], 2 * B1[0]): N_("Height and width are swapped."),
              B1: N_("That is branch 1's own size, before the resize; scale_factor=2 doubles each side: {h} x 2 and "
                     "{w} x 2.", h=B1[0], w=B1[1])},
    otherwise=N_("scale_factor=2 doubles each side of branch 1's {h} x {w}.", h=B1[0], w=B1[1]),
    hints=[N_("A scale factor multiplies the size; it does not look at any other tensor.")],
    solution_text=N_("`answer = (64, 94)`: 32 x 2 = 64 rows, one more than branch 0's 63, so the sum fails."),
    wrong_answers=[((64, 96), "doubles each side"), (64, "two whole numbers"), (B1, "branch 1's own size")],
)

EXERCISES = [none_entries, fuse_steps, k_line, no_relu_reason, fuse_op, fuse_sum, multi_scale_rows, nearest_size]
