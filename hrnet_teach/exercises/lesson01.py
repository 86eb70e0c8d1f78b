"""Lesson 01, the stem and the residual blocks: predict shapes, write a BasicBlock's forward."""
from __future__ import annotations

import torch

from ..blocks import BasicBlock, Bottleneck, make_layer
from ._answers import as_indices, as_int, as_ints, random_bn
from ._kinds import Case, FunctionExercise, Mistake, ValueExercise

STEM_INPUT = (2, 3, 224, 320)


def _explain_stem(s, want):
    b, _, h, w = want
    rules = [(s[0] != b, f"The batch size does not change: the input has {b} images, so the output too."),
             (s[1] == 3, "conv1 already maps the 3 colour channels to 64, and conv2 keeps 64."),
             (s[1] == 256, "256 channels is after layer1 (the Bottlenecks); the stem alone ends at 64."),
             (s[2:] == (2 * h, 2 * w), "That is the size after one stride-2 conv; the stem has two (conv1 and conv2), so 1/4."),
             (s[2:] == (4 * h, 4 * w), "Both stem convs have stride 2, so the size shrinks: to 1/4 after the two."),
             (s[2:] == (w, h), "Height and width are swapped: the order is (B, C, H, W)."),
             (s[1] != 64, f"{s[1]} channels: the stem convs have 64 output channels.")]
    return next((message for broken, message in rules if broken), f"The size {s[2]}x{s[3]} is off: halve "
                f"{STEM_INPUT[2]}x{STEM_INPUT[3]} twice.")


stem_shape = ValueExercise(
    name="stem_shape", lesson="01",
    question=(f"A batch of shape {STEM_INPUT} goes through the stem (conv1, bn1, relu, conv2, bn2, relu). "
              "What shape comes out? Answer as a tuple (B, C, H, W)."),
    read=lambda a: as_ints(a, 4, "the shape (B, C, H, W)", "(1, 3, 32, 32)"),
    reference=(2, 64, 56, 80),
    success=lambda got, want: f"{STEM_INPUT} -> {want}: conv1 (3->64, stride 2) then conv2 (64->64, stride 2).",
    explain=_explain_stem,
    hints=["Each of conv1 and conv2 is a 3x3 conv with stride 2 and padding 1: it halves height and width.",
           "Both convs output 64 channels. The batch size never changes."],
    solution_text="`answer = (2, 64, 56, 80)`: 224 -> 112 -> 56 and 320 -> 160 -> 80, with 64 channels.",
    wrong_answers=[((2, 64, 112, 160), "the stem has two"), ((2, 3, 56, 80), "3 colour channels"),
                   ((2, 256, 56, 80), "after layer1"), ((1, 64, 56, 80), "batch size"), ((2, 64, 80, 56), "swapped"),
                   ((64, 56, 80), "has 3 numbers"), (torch.Size([2, 64, 224, 320]), "shrinks"),
                   ((2, 48, 56, 80), "48 channels"), ((2, 64, 56, 81), "is off")],
)


def _reference_forward(block, x):
    """The forward of an ht.BasicBlock written out with its own layers."""
    residual = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    out = block.bn2(block.conv2(out))
    return block.relu(out + residual)


def _parts(block, x):
    """(main path before the last ReLU, shortcut): what the typical slips recombine."""
    residual = x if block.downsample is None else block.downsample(x)
    return block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))), residual


# (inplanes, planes, stride, input height, width): with and without a downsample, stride 1 and 2, odd sizes.
_BLOCK_CASES = [(8, 8, 1, 9, 11), (6, 6, 1, 5, 8), (8, 16, 1, 8, 8), (16, 16, 2, 7, 10), (4, 12, 2, 12, 9)]


def _block_cases():
    for seed, (inplanes, planes, stride, h, w) in enumerate(_BLOCK_CASES):
        torch.manual_seed(seed)
        block = random_bn(make_layer(BasicBlock, inplanes, planes, 1, stride=stride)[0], seed)
        x = torch.randn(1, inplanes, h, w, generator=torch.Generator().manual_seed(100 + seed))
        down = "without" if block.downsample is None else "with"
        yield Case(block, x, where=f"a BasicBlock({inplanes}, {planes}, stride={stride}) {down} a downsample, "
                                   f"input 1x{inplanes}x{h}x{w}")


basic_block_forward = FunctionExercise(
    name="basic_block_forward", lesson="01", fn_name="my_forward",
    question=("Write `forward(block, x)` for an `ht.BasicBlock` using its layers: `block.conv1`, `block.bn1`, "
              "`block.relu`, `block.conv2`, `block.bn2` and `block.downsample` (None or a 1x1 conv + BN)."),
    reference=_reference_forward, expected=lambda block, x: block(x), cases=_block_cases,
    returns="the output tensor", against="ht.BasicBlock",
    mistakes=[
        Mistake("no_shortcut", "You left out the shortcut: the block adds its input (the residual) before the last ReLU.",
                like=lambda b, x: torch.relu(_parts(b, x)[0])),
        Mistake("no_final_relu", "You left out the final ReLU: after `out + residual` the block applies ReLU once more.",
                like=lambda b, x: sum(_parts(b, x))),
        Mistake("relu_before_sum", "The ReLU after bn2 comes after the sum, not before it: relu(bn2(...) + residual).",
                like=lambda b, x: torch.relu(_parts(b, x)[0]) + _parts(b, x)[1]),
        Mistake("no_bn", "You left out a BatchNorm: each conv is followed by its bn (conv1 -> bn1, conv2 -> bn2).",
                like=lambda b, x: torch.relu(b.conv2(torch.relu(b.bn1(b.conv1(x)))) + _parts(b, x)[1])),
        Mistake("raw_shortcut", "When `block.downsample` is not None, the shortcut is `block.downsample(x)`, which brings "
                "x to the output's shape.", like=lambda b, x: torch.relu(_parts(b, x)[0] + x)),
    ],
    success=lambda n: (f"Your forward matches ht.BasicBlock on {n} blocks (with and without a downsample, "
                       "stride 1 and 2, odd sizes)."),
    hints=["Main path: conv1 -> bn1 -> relu -> conv2 -> bn2. Shortcut: x, or block.downsample(x) when it is not None.",
           "Add the two, then apply block.relu to the sum."],
    wrong_answers=[(lambda block, x: (_reference_forward(block, x),), "returned a tuple"),
                   (BasicBlock(4, 4), "Pass your function itself")],
)

bottleneck_channels = ValueExercise(
    name="bottleneck_channels", lesson="01",
    question="How many channels does `ht.Bottleneck(inplanes=64, planes=32)` output?",
    read=lambda a: as_int(a, "the number of channels", floats=True),
    reference=32 * Bottleneck.expansion,
    success=(f"planes x expansion = 32 x {Bottleneck.expansion} = {32 * Bottleneck.expansion} "
             "(this is layer1 of w18_small_v1; W18..W64 use planes 64, so 256)."),
    mistakes={32: "32 is `planes`, the width inside the block; conv3 expands it by `expansion` = 4.",
              64: "64 is what comes in (inplanes); what goes out is planes x expansion.",
              256: "256 is layer1 of W18..W64, with planes 64; this block has planes 32.",
              8: "The Bottleneck squeezes inside (conv1 to `planes`) and then expands by 4 at conv3."},
    otherwise=lambda n, want: f"Not {n}: look at conv3's out_channels in ht.Bottleneck.",
    hints=["A Bottleneck's conv3 outputs `planes * expansion` channels.", "Bottleneck.expansion is 4."],
    solution_text="`answer = 128`: planes 32 times expansion 4.",
    wrong_answers=[("128", "one whole number"), (100, "Not 100")],
)

layer1_downsample = ValueExercise(
    name="layer1_downsample", lesson="01",
    question=("layer1 of w48 is `make_layer(Bottleneck, inplanes=64, planes=64, num_blocks=4)`. Which blocks "
              "(indices 0-3) have a `downsample` (a 1x1 conv + BN on the shortcut)? Answer as a list."),
    read=lambda a: as_indices(a, "block indices (0 to 3)"),
    reference=[0],
    success=("Only block 0: it turns 64 channels into 64 x 4 = 256, so its shortcut needs a 1x1 conv; "
             "blocks 1-3 take 256 and give 256, so their shortcut is x itself."),
    mistakes={(): "Block 0 gets 64 channels and outputs 256 (planes 64 x expansion 4): its shortcut must change shape.",
              (0, 1, 2, 3): "After block 0 the input already has 256 = 64 x 4 channels, so blocks 1-3 need no downsample."},
    explain=lambda got, want: "layer1 of w48 has 4 blocks, numbered 0 to 3." if any(not 0 <= i <= 3 for i in got) else None,
    otherwise="The downsample is there only where the input's channels (or size) differ from the output's.",
    hints=["A block needs a downsample when its input and output shapes differ: stride != 1 or inplanes != planes * 4.",
           "Block 0 takes 64 channels. What do blocks 1, 2, 3 take?"],
    solution_text="`answer = [0]`: only the first block changes 64 channels into 256.",
    wrong_answers=[([4], "numbered 0 to 3"), ([1], "only where"), ("0", "list of block indices")],
)

EXERCISES = [stem_shape, basic_block_forward, bottleneck_channels, layer1_downsample]
