"""Lesson 01, the stem and the residual blocks: predict shapes, write a BasicBlock's forward."""
from __future__ import annotations

import torch

from ..blocks import BasicBlock, Bottleneck, make_layer
from ._answers import as_function, as_indices, as_int, as_ints, one_thread, random_bn
from ._base import Exercise, Wrong

# ------------------------------------------------------- 1. the stem's shape

STEM_INPUT = (2, 3, 224, 320)


def _check_stem_shape(answer) -> str:
    shape = as_ints(answer, 4, "the shape (B, C, H, W)", "(1, 3, 32, 32)")
    b, _, h, w = STEM_INPUT
    expected = (b, 64, h // 4, w // 4)
    if shape == expected:
        return f"{STEM_INPUT} -> {expected}: conv1 (3->64, stride 2) then conv2 (64->64, stride 2)."
    if shape[0] != b:
        raise Wrong(f"The batch size does not change: the input has {b} images, so the output too.")
    if shape[1] == 3:
        raise Wrong("conv1 already maps the 3 colour channels to 64, and conv2 keeps 64.")
    if shape[1] == 256:
        raise Wrong("256 channels is after layer1 (the Bottlenecks); the stem alone ends at 64.")
    if shape[2:] == (h // 2, w // 2):
        raise Wrong("That is the size after one stride-2 conv; the stem has two (conv1 and conv2), so 1/4.")
    if shape[2:] == (h, w):
        raise Wrong("Both stem convs have stride 2, so the size shrinks: to 1/4 after the two.")
    if shape[2:] == (w // 4, h // 4):
        raise Wrong("Height and width are swapped: the order is (B, C, H, W).")
    if shape[1] != 64:
        raise Wrong(f"{shape[1]} channels: the stem convs have 64 output channels.")
    raise Wrong(f"The size {shape[2]}x{shape[3]} is off: halve {h}x{w} twice.")


stem_shape = Exercise(
    name="stem_shape",
    lesson="01",
    question=(f"A batch of shape {STEM_INPUT} goes through the stem (conv1, bn1, relu, conv2, bn2, relu). "
              "What shape comes out? Answer as a tuple (B, C, H, W)."),
    checker=_check_stem_shape,
    reference=(2, 64, 56, 80),
    hints=["Each of conv1 and conv2 is a 3x3 conv with stride 2 and padding 1: it halves height and width.",
           "Both convs output 64 channels. The batch size never changes."],
    solution_text="`answer = (2, 64, 56, 80)`: 224 -> 112 -> 56 and 320 -> 160 -> 80, with 64 channels.",
    wrong_answers=[
        ((2, 64, 112, 160), "the stem has two"),
        ((2, 3, 56, 80), "3 colour channels"),
        ((2, 256, 56, 80), "after layer1"),
        ((1, 64, 56, 80), "batch size"),
        ((2, 64, 80, 56), "swapped"),
        ((64, 56, 80), "has 3 numbers"),
        (torch.Size([2, 64, 224, 320]), "shrinks"),
    ],
)

# ----------------------------------------- 2. a BasicBlock's forward by hand


def _reference_forward(block: BasicBlock, x: torch.Tensor) -> torch.Tensor:
    """The forward of ``block`` written out with its own layers (the reference answer)."""
    residual = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    out = block.bn2(block.conv2(out))
    return block.relu(out + residual)


# (inplanes, planes, stride, input height, width): with and without a downsample,
# stride 1 and 2, odd sizes.
_BLOCK_CASES = [(8, 8, 1, 9, 11), (6, 6, 1, 5, 8), (8, 16, 1, 8, 8), (16, 16, 2, 7, 10), (4, 12, 2, 12, 9)]


def _block_case(inplanes: int, planes: int, stride: int, seed: int) -> BasicBlock:
    torch.manual_seed(seed)
    return random_bn(make_layer(BasicBlock, inplanes, planes, 1, stride=stride)[0], seed)


def _mistakes(block: BasicBlock, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """What typical slips compute, to name the one the learner made."""
    residual = x if block.downsample is None else block.downsample(x)
    inner = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
    return {
        "You left out the shortcut: the block adds its input (the residual) before the last ReLU.": torch.relu(inner),
        "You left out the final ReLU: after `out + residual` the block applies ReLU once more.": inner + residual,
        "The ReLU after bn2 comes after the sum, not before it: relu(bn2(...) + residual).": torch.relu(inner) + residual,
        "You left out a BatchNorm: each conv is followed by its bn (conv1 -> bn1, conv2 -> bn2).": torch.relu(
            block.conv2(torch.relu(block.bn1(block.conv1(x)))) + residual
        ),
    }


def _describe(inplanes, planes, stride, h, w) -> str:
    down = "with" if stride != 1 or inplanes != planes else "without"
    return f"BasicBlock({inplanes}, {planes}, stride={stride}) {down} a downsample, input 1x{inplanes}x{h}x{w}"


def _check_basic_block_forward(fn) -> str:
    as_function(fn, "my_forward")
    with one_thread():
        return _run_basic_block_cases(fn)


def _run_basic_block_cases(fn) -> str:
    for seed, (inplanes, planes, stride, h, w) in enumerate(_BLOCK_CASES):
        block = _block_case(inplanes, planes, stride, seed)
        x = torch.randn(1, inplanes, h, w, generator=torch.Generator().manual_seed(100 + seed))
        where = _describe(inplanes, planes, stride, h, w)
        with torch.no_grad():
            expected = block(x.clone())
            try:
                got = fn(block, x.clone())
            except NotImplementedError:
                raise
            except Exception as error:
                if block.downsample is not None:
                    raise Wrong(
                        f"Your function raised {type(error).__name__} on a {where}: when `block.downsample` is not None, "
                        "the shortcut is `block.downsample(x)`, which brings x to the output's shape."
                    ) from None
                raise Wrong(f"Your function raised {type(error).__name__} on a {where}: {error}") from None
            if not isinstance(got, torch.Tensor):
                raise Wrong(f"Your function returned a {type(got).__name__}; it should return the output tensor.")
            if got.shape != expected.shape:
                raise Wrong(f"On a {where} your output has shape {tuple(got.shape)}; the block gives {tuple(expected.shape)}.")
            if torch.allclose(got, expected, atol=1e-5):
                continue
            for message, value in _mistakes(block, x.clone()).items():
                if torch.allclose(got, value, atol=1e-5):
                    raise Wrong(message)
            diff = (got - expected).abs().max().item()
            raise Wrong(f"On a {where} your output differs from ht.BasicBlock's (largest difference {diff:.3g}).")
    return (f"Your forward matches ht.BasicBlock on {len(_BLOCK_CASES)} blocks "
            "(with and without a downsample, stride 1 and 2, odd sizes).")


def _forgot_shortcut(block, x):
    return block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))))


def _forgot_final_relu(block, x):
    residual = x if block.downsample is None else block.downsample(x)
    return block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))) + residual


def _raw_shortcut(block, x):
    return block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))) + x)


def _returns_tuple(block, x):
    return (_reference_forward(block, x),)


basic_block_forward = Exercise(
    name="basic_block_forward",
    lesson="01",
    question=("Write `forward(block, x)` for an `ht.BasicBlock` using its layers: `block.conv1`, `block.bn1`, "
              "`block.relu`, `block.conv2`, `block.bn2` and `block.downsample` (None or a 1x1 conv + BN)."),
    checker=_check_basic_block_forward,
    reference=_reference_forward,
    hints=[
        "Main path: conv1 -> bn1 -> relu -> conv2 -> bn2. Shortcut: x, or block.downsample(x) when it is not None.",
        "Add the two, then apply block.relu to the sum.",
    ],
    solution_text=(
        "```python\ndef forward(block, x):\n"
        "    residual = x if block.downsample is None else block.downsample(x)\n"
        "    out = block.relu(block.bn1(block.conv1(x)))\n"
        "    out = block.bn2(block.conv2(out))\n"
        "    return block.relu(out + residual)\n```"
    ),
    wrong_answers=[
        (_forgot_shortcut, "left out the shortcut"),
        (_forgot_final_relu, "final ReLU"),
        (_raw_shortcut, "block.downsample(x)"),
        (_returns_tuple, "returned a tuple"),
        (BasicBlock(4, 4), "Pass your function itself"),
    ],
)

# --------------------------------------------- 3. a Bottleneck's channels

BOTTLENECK_ARGS = dict(inplanes=64, planes=32)


def _check_bottleneck_channels(answer) -> str:
    n = as_int(answer, "the number of channels", floats=True)
    expected = BOTTLENECK_ARGS["planes"] * Bottleneck.expansion
    if n == expected:
        return (f"planes x expansion = {BOTTLENECK_ARGS['planes']} x {Bottleneck.expansion} = {expected} "
                "(this is layer1 of w18_small_v1; W18..W64 use planes 64, so 256).")
    if n == BOTTLENECK_ARGS["planes"]:
        raise Wrong("32 is `planes`, the width inside the block; conv3 expands it by `expansion` = 4.")
    if n == BOTTLENECK_ARGS["inplanes"]:
        raise Wrong("64 is what comes in (inplanes); what goes out is planes x expansion.")
    if n == 256:
        raise Wrong("256 is layer1 of W18..W64, with planes 64; this block has planes 32.")
    if n == BOTTLENECK_ARGS["planes"] // 4:
        raise Wrong("The Bottleneck squeezes inside (conv1 to `planes`) and then expands by 4 at conv3.")
    raise Wrong(f"Not {n}: look at conv3's out_channels in ht.Bottleneck.")


bottleneck_channels = Exercise(
    name="bottleneck_channels",
    lesson="01",
    question="How many channels does `ht.Bottleneck(inplanes=64, planes=32)` output?",
    checker=_check_bottleneck_channels,
    reference=128,
    hints=["A Bottleneck's conv3 outputs `planes * expansion` channels.", "Bottleneck.expansion is 4."],
    solution_text="`answer = 128`: planes 32 times expansion 4.",
    wrong_answers=[(32, "`planes`"), (64, "inplanes"), (256, "planes 64"), (8, "squeezes"), ("128", "one whole number")],
)

# ------------------------------------------ 4. which blocks get a downsample

LAYER1_VARIANT = "w48"  # layer1 = make_layer(Bottleneck, 64, 64, 4)


def _check_layer1_downsample(answer) -> str:
    indices = as_indices(answer, "block indices (0 to 3)")
    if any(i < 0 or i > 3 for i in indices):
        raise Wrong("layer1 of w48 has 4 blocks, numbered 0 to 3.")
    if indices == [0]:
        return ("Only block 0: it turns 64 channels into 64 x 4 = 256, so its shortcut needs a 1x1 conv; "
                "blocks 1-3 take 256 and give 256, so their shortcut is x itself.")
    if not indices:
        raise Wrong("Block 0 gets 64 channels and outputs 256 (planes 64 x expansion 4): its shortcut must change shape.")
    if indices == [0, 1, 2, 3]:
        raise Wrong("After block 0 the input already has 256 = 64 x 4 channels, so blocks 1-3 need no downsample.")
    raise Wrong("The downsample is there only where the input's channels (or size) differ from the output's.")


layer1_downsample = Exercise(
    name="layer1_downsample",
    lesson="01",
    question=("layer1 of w48 is `make_layer(Bottleneck, inplanes=64, planes=64, num_blocks=4)`. Which blocks "
              "(indices 0-3) have a `downsample` (a 1x1 conv + BN on the shortcut)? Answer as a list."),
    checker=_check_layer1_downsample,
    reference=[0],
    hints=["A block needs a downsample when its input and output shapes differ: stride != 1 or inplanes != planes * 4.",
           "Block 0 takes 64 channels. What do blocks 1, 2, 3 take?"],
    solution_text="`answer = [0]`: only the first block changes 64 channels into 256.",
    wrong_answers=[([], "must change shape"), ([0, 1, 2, 3], "need no downsample"), ([4], "numbered 0 to 3"),
                   ([1], "only where"), ("0", "list of block indices")],
)

EXERCISES = [stem_shape, basic_block_forward, bottleneck_channels, layer1_downsample]
