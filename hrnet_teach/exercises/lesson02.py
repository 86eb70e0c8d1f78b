"""Lesson 02, branches and resolutions: predict the shapes of every branch, any input size."""
from __future__ import annotations

import numpy as np
import torch

from ..config import get_config
from ..i18n import N_, _, joined
from ._answers import as_int, as_tuples
from ._base import Wrong
from ._kinds import ChoiceExercise, ValueExercise

H, W = ODD_SIZE = (250, 375)  # (height, width): neither divisible by 32
CHANNELS = get_config("w18").stage4.num_channels
# (C, H, W) per stage-4 branch b: the stem halves twice, each branch once more, so the side is n / 2**(2 + b).
# A stride-2 conv with padding 1 rounds up (ceil(n / 2**k) after k halvings); FLOOR is the rounding-down slip.
SHAPES, FLOOR = ([(c, halve(H, 4 << b), halve(W, 4 << b)) for b, c in enumerate(CHANNELS)]
                 for halve in (lambda n, d: -(-n // d), lambda n, d: n // d))
ODD = next(s // 2 ** k for s in ODD_SIZE for k in range(5) if s // 2 ** k % 2)  # the first odd side met while halving


def _read_shapes(answer) -> list[tuple[int, ...]]:
    """as_tuples, after the branch outputs themselves (tensors, whose thousands of values it would list). A 4x3
    array of the shapes is fine; a feature map has 4 dimensions, and an item of a list of shapes only 1."""
    if isinstance(answer, (torch.Tensor, np.ndarray)) and answer.ndim > 2:
        raise Wrong(_("You gave a tensor of shape {shape}, not the shapes of the branches: give each branch's "
                      "(C, H, W) as a tuple of numbers, in a list from branch 0 to branch 3.", shape=tuple(answer.shape)))
    tensors = isinstance(answer, (list, tuple)) and any(isinstance(t, (torch.Tensor, np.ndarray)) for t in answer)
    if tensors and any(getattr(t, "ndim", 0) > 1 for t in answer):
        raise Wrong(_("You gave a list of tensors, not of shapes: give each branch's (C, H, W) as a tuple of numbers, "
                      "e.g. `[tuple(t.shape[1:]) for t in outputs]` (better: work them out first, then check)."))
    return as_tuples(answer, 3, N_("(C, H, W) tuples, one per branch"), N_("one branch's (C, H, W)"),
                     "[(18, 64, 96), ...]")


def _explain_odd_shapes(got, want):
    if len(got) != len(want):
        return _("Stage 4 has {n} branches; your list has {got} entries.", n=len(want), got=len(got))
    if got == want[::-1]:
        return _("Your list runs from branch 3 to branch 0; start with branch 0 (1/4, {c} channels).", c=want[0][0])
    if all(sorted(g) == sorted(e) for g, e in zip(got, want)) and any(g[0] != e[0] for g, e in zip(got, want)):
        return _("Your numbers are right but in another order: give each branch as (C, H, W), channels first, then "
                 "height and width.")
    for b, ((c, h, w), (ec, eh, ew)) in enumerate(zip(got, want)):
        if c != ec:
            return _("Branch {b} has {ec} channels, not {c}: the widths are C, 2C, 4C, 8C with C = {C}.",
                     b=b, ec=ec, c=c, C=want[0][0])
        if (h, w) == (ew, eh) and h != w:
            return _("Branch {b}: height and width are swapped; the input is {H} high and {W} wide.", b=b, H=H, W=W)
    b = next(b for b, (g, e) in enumerate(zip(got, want)) if g != e)
    return _("Branch {b} (1/{scale}) is {eh}x{ew}, not {h}x{w}: halve {H}x{W} {times} times, rounding up each time.",
             b=b, scale=4 << b, eh=want[b][1], ew=want[b][2], h=got[b][1], w=got[b][2], H=H, W=W, times=2 + b)


odd_branch_shapes = ValueExercise(
    name="odd_branch_shapes", lesson="02",
    question=N_("An image of {H}x{W} (height x width) goes into w18. Give the (C, H, W) of each of the four stage-4 "
                "branches, as a list from branch 0 to branch 3.", H=H, W=W),
    read=_read_shapes,
    reference=SHAPES,
    success=N_("{shapes}. Each stride-2 conv with padding 1 turns a side n into ceil(n / 2), so odd sides round "
               "up.", shapes=joined(f"{c}x{h}x{w}" for c, h, w in SHAPES)),
    mistakes={tuple(FLOOR): N_("You rounded down. A 3x3 conv with stride 2 and padding 1 gives floor((n + 2 - 3) / 2) "
                               "+ 1 = ceil(n / 2): {odd} -> {up}, not {down}.", odd=ODD, up=-(-ODD // 2), down=ODD // 2)},
    explain=_explain_odd_shapes,
    hints=[N_("Channels: C, 2C, 4C, 8C with C = 18. Sizes: 1/4, 1/8, 1/16, 1/32 of the input."),
           N_("Every halving is a 3x3 stride-2 conv with padding 1: a side n becomes ceil(n / 2). So {H} -> {half} -> ...",
              H=H, half=-(-H // 2)),
           N_("Check yourself with `ht.inspect.stage_shapes(...)` only after answering!")],
    solution_text=f"`answer = {SHAPES}`",
    wrong_answers=[
        ([(c, w, h) for c, h, w in SHAPES], "swapped"), ([(18, h, w) for _c, h, w in SHAPES], "Branch 1 has 36 channels"),
        (SHAPES[:3], "has 4 branches"), ([(18, 62.5, 93.75)], "whole numbers"), ([18, 36, 72, 144], "three numbers"),
        ([(18, 63, 94), (36, 32, 47), (72, 16, 24), (144, 7, 12)], "Branch 3 (1/32) is 8x12"),
        ([(h, w, c) for c, h, w in SHAPES], "(C, H, W), channels first"),
        (SHAPES[::-1], "start with branch 0"), ([torch.zeros(1, c, h, w) for c, h, w in SHAPES], "not of shapes"),
        (torch.zeros(1, 18, 63, 94), "not the shapes of the branches"),
    ],
)

VARIANT, BRANCH = "w40", 3
WIDTHS = get_config(VARIANT).stage4.num_channels
WIDTH = dict(variant=VARIANT, b=BRANCH, n=WIDTHS[BRANCH], C=WIDTHS[0], prev=WIDTHS[BRANCH - 1], before=BRANCH - 1,
             widths=joined(WIDTHS))

branch_channels = ValueExercise(
    name="branch_channels", lesson="02",
    question=N_("How many channels does branch {b} (counting from 0) of {variant} carry in stage 4?", **WIDTH),
    read=lambda a: as_int(a, N_("the number of channels")),
    reference=WIDTHS[BRANCH],
    success=N_("8C = 8 x {C} = {n}: the channels double each time the resolution halves ({widths}).", **WIDTH),
    mistakes={WIDTHS[BRANCH - 1]: N_("{prev} is branch {before} (4C). Branches are counted from 0, as in the code: "
                                     "branch {b} is the fourth, at 1/32.", **WIDTH),
              WIDTHS[0] * BRANCH: N_("That is C x {b}, C times the branch index. The channels double from branch "
                                     "to branch (C, 2C, 4C, 8C): branch b carries C x 2**b.", **WIDTH),
              WIDTHS[0]: N_("{C} is C, the width of branch 0; lower-resolution branches get more channels.", **WIDTH),
              WIDTHS[0] * 2 ** (BRANCH + 1): N_("That is C x 2**{b1}, one doubling too many: branches are counted from "
                                                "0, so branch {b} carries C x 2**{b}.", b1=BRANCH + 1, **WIDTH)},
    otherwise=lambda n, e: _("Not {got}: the name {variant} gives C = {C}; branch b carries C x 2**b channels.",
                             got=n, **WIDTH),
    hints=[N_("The number in the name is C, the width of branch 0."), N_("Branch b carries C x 2**b channels.")],
    solution_text=N_("`answer = {n}`: C = {C}, and branch {b} carries 8C.", **WIDTH),
    wrong_answers=[("320", "without quotes"), (7, "Not 7")],  # the table's answers are tested as well
)

RULE = "floor((n + 2*padding - kernel) / stride) + 1"  # PyTorch's output size of a conv
TRY = N_("try n = 7 in {rule}", rule=RULE)

stride2_rule = ChoiceExercise(
    name="stride2_rule", lesson="02",
    question=N_("A 3x3 conv with stride 2 and padding 1 gets a side of n pixels. How many come out?"),
    choices={"a": N_("n // 2 (round down)"), "b": N_("(n + 1) // 2, that is ceil(n / 2) (round up)"),
             "c": N_("n / 2 (may be fractional)"), "d": N_("n // 2 - 1 (the border is lost)")},
    answer="b",
    why={"a": N_("Try n = 7: floor((7 + 2 - 3) / 2) + 1 = 4, not 7 // 2 = 3. The padding keeps the last pixel in play."),
         "c": N_("A conv outputs a whole number of positions: {try_it}.", try_it=TRY),
         "d": N_("With padding 1 nothing is lost at the border: {try_it}.", try_it=TRY)},
    success=N_("Output side = {rule} = floor((n - 1) / 2) + 1 = ceil(n / 2). The padding lets the last window be centred "
               "on the last pixel (its right end in the padding), so odd sides round up.", rule=RULE),
    hints=[N_("PyTorch's rule: out = floor((n + 2*padding - kernel_size) / stride) + 1."), N_("Try n = 7 and n = 8.")],
    solution_text=N_("`answer = \"b\"`: floor((n - 1) / 2) + 1 = ceil(n / 2); 7 -> 4, 8 -> 4."),
    wrong_answers=[("e", "one letter"), (2, "as a string")],
)

EXERCISES = [odd_branch_shapes, branch_channels, stride2_rule]
