"""Lesson 02, branches and resolutions: predict the shapes of every branch, any input size."""
from __future__ import annotations

from ..config import get_config
from ._answers import as_int, as_tuples
from ._kinds import ChoiceExercise, ValueExercise

ODD_SIZE = H, W = (250, 375)  # (height, width): neither divisible by 32
CHANNELS = get_config("w18").stage4.num_channels
# (C, H, W) per stage-4 branch: the stem halves twice, each branch once more; halving k times rounding up
# each time is ceil(n / 2**k) (what a stride-2 conv with padding 1 does), rounding down floor(n / 2**k).
SHAPES = [(c, -(-H // 2 ** (2 + b)), -(-W // 2 ** (2 + b))) for b, c in enumerate(CHANNELS)]
FLOOR = [(c, H // 2 ** (2 + b), W // 2 ** (2 + b)) for b, c in enumerate(CHANNELS)]
ODD = next(s // 2 ** k for s in ODD_SIZE for k in range(5) if s // 2 ** k % 2)  # the first odd side met while halving


def _explain_odd_shapes(got, want):
    if len(got) != len(want):
        return f"Stage 4 has {len(want)} branches; your list has {len(got)} entries."
    for b, ((c, h, w), (ec, eh, ew)) in enumerate(zip(got, want)):
        if c != ec:
            return f"Branch {b} has {ec} channels, not {c}: the widths are C, 2C, 4C, 8C with C = {want[0][0]}."
        if (h, w) == (ew, eh) and h != w:
            return f"Branch {b}: height and width are swapped; the input is {H} high and {W} wide."
    if list(got) == FLOOR:
        return ("You rounded down. A 3x3 conv with stride 2 and padding 1 gives floor((n + 2 - 3) / 2) + 1 = ceil(n / 2): "
                f"{ODD} -> {-(-ODD // 2)}, not {ODD // 2}.")
    b, (_, eh, ew) = next((b, e) for b, (g, e) in enumerate(zip(got, want)) if g != e)
    return (f"Branch {b} (1/{4 * 2 ** b}) is {eh}x{ew}, not {got[b][1]}x{got[b][2]}: halve {H}x{W} "
            f"{2 + b} times, rounding up each time.")


odd_branch_shapes = ValueExercise(
    name="odd_branch_shapes", lesson="02",
    question=(f"An image of {H}x{W} (height x width) goes into w18. Give the "
              "(C, H, W) of each of the four stage-4 branches, as a list from branch 0 to branch 3."),
    read=lambda a: as_tuples(a, 3, "(C, H, W) tuples, one per branch", "one branch's (C, H, W)", "[(18, 64, 96), ...]"),
    reference=SHAPES,
    success=lambda got, want: ("Right: " + ", ".join(f"{c}x{h}x{w}" for c, h, w in want) + ". Each stride-2 conv with "
                               "padding 1 turns a side n into ceil(n / 2), so odd sides round up."),
    explain=_explain_odd_shapes,
    hints=["Channels: C, 2C, 4C, 8C with C = 18. Sizes: 1/4, 1/8, 1/16, 1/32 of the input.",
           "Every halving is a 3x3 stride-2 conv with padding 1: a side n becomes ceil(n / 2). "
           f"So {H} -> {-(-H // 2)} -> ...",
           "Check yourself with `ht.inspect.stage_shapes(...)` only after answering!"],
    solution_text=f"`answer = {SHAPES}`",
    wrong_answers=[
        (FLOOR, "You rounded down"), ([(c, w, h) for c, h, w in SHAPES], "swapped"),
        ([(18, h, w) for _, h, w in SHAPES], "Branch 1 has 36 channels"), (SHAPES[:3], "has 4 branches"),
        ([(18, 62.5, 93.75)], "whole numbers"),
        ([(18, 63, 94), (36, 32, 47), (72, 16, 24), (144, 7, 12)], "Branch 3 (1/32) is 8x12"),
        ([18, 36, 72, 144], "three numbers"),
    ],
)

WIDTH_VARIANT, WIDTH_BRANCH = "w40", 3
_CHANNELS = get_config(WIDTH_VARIANT).stage4.num_channels
_C = _CHANNELS[0]

branch_channels = ValueExercise(
    name="branch_channels", lesson="02",
    question=f"How many channels does branch {WIDTH_BRANCH} (counting from 0) of {WIDTH_VARIANT} carry in stage 4?",
    read=lambda a: as_int(a, "the number of channels"),
    reference=_CHANNELS[WIDTH_BRANCH],
    success=(f"8C = 8 x {_C} = {_CHANNELS[WIDTH_BRANCH]}: the channels double each time the resolution halves "
             f"({', '.join(map(str, _CHANNELS))})."),
    mistakes={_CHANNELS[WIDTH_BRANCH - 1]: (f"{_CHANNELS[WIDTH_BRANCH - 1]} is branch {WIDTH_BRANCH - 1} (4C). Branches "
                                            f"are counted from 0, as in the code: branch {WIDTH_BRANCH} is the fourth, at 1/32."),
              _C * WIDTH_BRANCH: "The channels double from branch to branch (C, 2C, 4C, 8C); they do not grow by C each time.",
              _C: f"{_C} is C, the width of branch 0; lower-resolution branches get more channels."},
    otherwise=lambda n, want: f"Not {n}: the name {WIDTH_VARIANT} gives C = {_C}; branch b carries C x 2**b channels.",
    hints=["The number in the name is C, the width of branch 0.", "Branch b carries C x 2**b channels."],
    solution_text="`answer = 320`: C = 40, and branch 3 carries 8C.",
    wrong_answers=[(160, "counted from 0"), (120, "double"), (40, "width of branch 0"), (320.0, "one whole number"),
                   (7, "Not 7")],
)

stride2_rule = ChoiceExercise(
    name="stride2_rule", lesson="02",
    question="A 3x3 conv with stride 2 and padding 1 gets a side of n pixels. How many come out?",
    choices={"a": "n // 2 (round down)", "b": "(n + 1) // 2, that is ceil(n / 2) (round up)",
             "c": "n / 2 (may be fractional)", "d": "n // 2 - 1 (the border is lost)"},
    answer="b",
    why={"a": "Try n = 7: floor((7 + 2 - 3) / 2) + 1 = 4, not 7 // 2 = 3. The padding keeps the last pixel in play.",
         "c": "A conv outputs a whole number of positions: try n = 7 in floor((n + 2*padding - kernel) / stride) + 1.",
         "d": "With padding 1 nothing is lost at the border: try n = 7 in floor((n + 2*padding - kernel) / stride) + 1."},
    success=("Output side = floor((n + 2*padding - kernel) / stride) + 1 = floor((n - 1) / 2) + 1 = ceil(n / 2). "
             "The padding lets the last window start on the last pixel, so odd sides round up."),
    hints=["PyTorch's rule: out = floor((n + 2*padding - kernel_size) / stride) + 1.", "Try n = 7 and n = 8."],
    solution_text="`answer = \"b\"`: floor((n - 1) / 2) + 1 = ceil(n / 2); 7 -> 4, 8 -> 4.",
    wrong_answers=[("e", "one letter"), (2, "as a string")],
)

EXERCISES = [odd_branch_shapes, branch_channels, stride2_rule]
