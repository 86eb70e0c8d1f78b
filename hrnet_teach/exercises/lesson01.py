"""Lesson 01, the stem and the residual blocks: predict shapes, write a BasicBlock's forward."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..blocks import BasicBlock, Bottleneck, make_layer
from ..i18n import N_, _
from ._answers import as_indices, as_int, as_ints, random_bn
from ._base import Wrong
from ._kinds import Case, FunctionExercise, Mistake, ValueExercise

STEM_INPUT = B, _C, H, W = (2, 3, 224, 320)
_STEM_RULES = [  # (test on the answer s, message): the first that holds names the slip
    (lambda s, e: s == STEM_INPUT, N_("That is the input's shape: the stem changes both the channels (3 -> 64, "
                                      "conv1) and the size (two stride-2 convs: 1/4).")),
    (lambda s, e: sorted(s) == sorted(e) and s[:2] != e[:2],  # the right numbers, channels or batch moved
     N_("Your numbers are right but in another order: a PyTorch shape is (B, C, H, W), channels before height and "
        "width.")),
    (lambda s, e: s[0] != B, N_("The batch size does not change: the input has {b} images, so the output too.", b=B)),
    (lambda s, e: s[1] == 3, N_("conv1 already maps the 3 colour channels to 64, and conv2 keeps 64.")),
    (lambda s, e: s[1] == 256, N_("256 channels is after layer1 (the Bottlenecks); the stem alone ends at 64.")),
    (lambda s, e: s[2:] == (H // 2, W // 2),
     N_("That is the size after one stride-2 conv; the stem has two (conv1 and conv2), so 1/4.")),
    (lambda s, e: s[2:] == (H, W), N_("Both stem convs have stride 2, so the size shrinks: to 1/4 after the two.")),
    (lambda s, e: s[2:] == (W // 4, H // 4), N_("Height and width are swapped: the order is (B, C, H, W).")),
    (lambda s, e: s[1] != 64, lambda s, e: _("{c} channels: the stem convs have 64 output channels.", c=s[1])),
]


def _read_shape(answer) -> tuple[int, ...]:
    """as_ints, after two forms it would misread: the tensor itself (its thousands of values, not its shape) and a
    set (it has no order; a set of small ints even iterates sorted, which looks like an order)."""
    if isinstance(answer, (torch.Tensor, np.ndarray)) and answer.ndim > 1:
        raise Wrong(_("You gave a tensor of shape {shape}, not a shape: give the four numbers as a tuple, e.g. "
                      "`tuple(out.shape)` (better: work them out first, then check).", shape=tuple(answer.shape)))
    if isinstance(answer, (set, frozenset)):
        raise Wrong(_("A set has no order; give a tuple, e.g. {example}.", example="(1, 3, 32, 32)"))
    return as_ints(answer, 4, N_("the shape (B, C, H, W)"), "(1, 3, 32, 32)")


stem_shape = ValueExercise(
    name="stem_shape", lesson="01",
    question=N_("A batch of shape {shape} goes through the stem (conv1, bn1, relu, conv2, bn2, relu). What shape "
                "comes out? Answer as a tuple (B, C, H, W).", shape=STEM_INPUT),
    read=_read_shape,
    reference=(B, 64, H // 4, W // 4),
    success=lambda s, e: _("{shape} -> {e}: conv1 (3->64, stride 2) then conv2 (64->64, stride 2).", shape=STEM_INPUT, e=e),
    rules=_STEM_RULES,
    otherwise=lambda s, e: _("The size {h}x{w} is off: halve {H}x{W} twice.", h=s[2], w=s[3], H=H, W=W),
    hints=[N_("Each of conv1 and conv2 is a 3x3 conv with stride 2 and padding 1: it halves height and width."),
           N_("Both convs output 64 channels. The batch size never changes.")],
    solution_text=N_("`answer = (2, 64, 56, 80)`: 224 -> 112 -> 56 and 320 -> 160 -> 80, with 64 channels."),
    wrong_answers=[((2, 64, 112, 160), "the stem has two"), ((2, 3, 56, 80), "3 colour channels"),
                   ((2, 256, 56, 80), "after layer1"), ((1, 64, 56, 80), "batch size"), ((2, 64, 80, 56), "swapped"),
                   ((64, 56, 80), "has 3 numbers"), (torch.Size([2, 64, 224, 320]), "shrinks"),
                   ((2, 48, 56, 80), "48 channels"), ((2, 64, 56, 81), "is off"),
                   ((2, 56, 80, 64), "channels before height"), (torch.zeros(2, 64, 56, 80), "not a shape"),
                   ({2, 64, 56, 80}, "A set has no order"), (STEM_INPUT, "the input's shape")],
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


_PRE_ACTIVATION = N_("That is the pre-activation order (BN -> ReLU -> conv, as in ResNet v2); HRNet's BasicBlock "
                    "is conv -> BN -> ReLU: conv1 -> bn1 -> relu -> conv2 -> bn2, then relu(out + residual).")
_PRE_ACTIVATION_SLIPS = [  # BN (and ReLU) before each conv: ResNet v2's order, with or without a last ReLU
    lambda b, x: b.conv2(torch.relu(b.bn2(b.conv1(torch.relu(b.bn1(x)))))) + _parts(b, x)[1],
    lambda b, x: torch.relu(b.conv2(torch.relu(b.bn2(b.conv1(torch.relu(b.bn1(x)))))) + _parts(b, x)[1]),
    lambda b, x: torch.relu(b.conv2(b.bn2(b.conv1(torch.relu(b.bn1(x))))) + _parts(b, x)[1]),  # or one ReLU short
]


_RECIPE = N_("The shape is right but the numbers differ. Main path: conv1 -> bn1 -> relu -> conv2 -> bn2, each layer "
            "once and in this order; shortcut: x, or the whole `block.downsample(x)`; then block.relu on the sum.")


def _same_kind(got, want) -> bool:
    """Whether ``got`` is a tensor like ``want`` (shape, dtype, device, no NaN): then only the numbers differ."""
    return (isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype
            and got.device == want.device and not got.isnan().any())


def _call_block(fn, block, x):
    """The answer on (a copy of) the block, with what the values cannot show checked after it: a call of the block
    itself (its forward is wrapped to note one), an input changed in place, a mode switched to training."""
    official, called = block.forward, []
    block.forward = lambda *args, **kwargs: called.append(True) or official(*args, **kwargs)
    before = x.clone()
    out = fn(block, x)
    if called:
        raise Wrong(_("You called the block itself (`block(x)`); write its forward from its layers: block.conv1, "
                      "block.bn1, block.relu, block.conv2, block.bn2 and block.downsample."))
    if not torch.equal(x, before):
        raise Wrong(_("Your function changed its input x in place (`x += out`, or `block.relu(x)`: that ReLU has "
                      "inplace=True, so it overwrites x). Leave x as it is: the caller and, in training, autograd "
                      "still need it. Add into a new tensor: `out = out + residual` (or `out += residual`)."))
    if any(m.training for m in block.modules()):
        raise Wrong(_("Your function switched the block to training mode (block.train()); leave its mode as it is: "
                      "in training mode the BatchNorms use the batch's own statistics, so the numbers change."))
    return out


def _adds_into_x(block, x):  # a slip: the right values, added into x (the shortcut where there is no downsample)
    out, residual = _parts(block, x)
    residual += out
    return block.relu(residual)


def _downsample_first(block, x):  # a slip: x replaced by the shortcut before the main path runs
    residual = x if block.downsample is None else block.downsample(x)
    out = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(residual)))))
    return block.relu(out + residual)


def _train_mode(block, x):  # a slip: the block switched to training mode
    block.train()
    return _reference_forward(block, x)


def _same_shape_downsample(channels: int) -> nn.Sequential:
    """A downsample that keeps the shape. The official code builds none, but a forward must take any: with it a
    slip that runs the downsample before conv1 computes numbers (and is named by them) instead of raising."""
    return nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))


def _block_cases():
    # (inplanes, planes, stride, input height, width, a same-shape downsample): with and without a downsample,
    # stride 1 and 2, odd sizes.
    for seed, (i, p, s, h, w, keep) in enumerate([(8, 8, 1, 9, 11, False), (6, 6, 1, 5, 8, False),
                                                  (6, 6, 1, 7, 6, True), (8, 16, 1, 8, 8, False),
                                                  (16, 16, 2, 7, 10, False), (4, 12, 2, 12, 9, False)]):
        torch.manual_seed(seed)
        block = (BasicBlock(i, p, downsample=_same_shape_downsample(i)) if keep
                 else make_layer(BasicBlock, i, p, 1, stride=s)[0])
        block = random_bn(block, seed)
        x = torch.randn(1, i, h, w, generator=torch.Generator().manual_seed(100 + seed))
        down = N_("without a downsample") if block.downsample is None else N_("with a downsample")
        yield Case(block, x, where=N_("a BasicBlock({i}, {p}, stride={s}) {down}, input 1x{i}x{h}x{w}",
                                      i=i, p=p, s=s, down=down, h=h, w=w))


_BLOCK_SLIPS = [  # (name, message, the slip's forward), checked in this order
    ("no_shortcut", N_("You left out the shortcut: the block adds its input (the residual) before the last ReLU."),
     lambda b, x: torch.relu(_parts(b, x)[0])),
    ("no_final_relu", N_("You left out the final ReLU: after `out + residual` the block applies ReLU once more."),
     lambda b, x: sum(_parts(b, x))),
    ("relu_before_sum", N_("The ReLU after bn2 comes after the sum, not before it: relu(bn2(...) + residual)."),
     lambda b, x: torch.relu(_parts(b, x)[0]) + _parts(b, x)[1]),
    *[("no_bn", N_("You left out a BatchNorm: each conv is followed by its bn (conv1 -> bn1, conv2 -> bn2)."),
       like) for like in [lambda b, x: torch.relu(b.conv2(torch.relu(b.bn1(b.conv1(x)))) + _parts(b, x)[1]),  # no bn2
                          lambda b, x: torch.relu(b.bn2(b.conv2(torch.relu(b.conv1(x)))) + _parts(b, x)[1])]],  # no bn1
    ("relu_before_bn", N_("BN comes right after its conv, then the ReLU: conv1 -> bn1 -> relu, not conv1 -> relu -> "
                          "bn1."),
     lambda b, x: torch.relu(b.bn2(b.conv2(b.bn1(torch.relu(b.conv1(x))))) + _parts(b, x)[1])),
    ("raw_shortcut", N_("When `block.downsample` is not None, the shortcut is `block.downsample(x)`, which brings "
                        "x to the output's shape."), lambda b, x: torch.relu(_parts(b, x)[0] + x)),
    ("relu_twice", N_("You applied a ReLU after bn2 and again after the sum; the main path ends with bn2, and the "
                      "one ReLU comes after out + residual."),
     lambda b, x: torch.relu(torch.relu(_parts(b, x)[0]) + _parts(b, x)[1])),
    ("no_mid_relu", N_("conv1 -> bn1 -> relu -> conv2: you left out the ReLU between bn1 and conv2."),
     lambda b, x: torch.relu(b.bn2(b.conv2(b.bn1(b.conv1(x)))) + _parts(b, x)[1])),
    ("bn_swapped", N_("You swapped the BatchNorms: bn1 follows conv1 and bn2 follows conv2, each with the "
                      "statistics of its own conv's output."),
     lambda b, x: torch.relu(b.bn1(b.conv2(torch.relu(b.bn2(b.conv1(x))))) + _parts(b, x)[1])),
    ("downsample_on_out", N_("The downsample adapts the block's input: the shortcut is `block.downsample(x)`, "
                             "not `block.downsample(out)`."),
     lambda b, x: torch.relu(_parts(b, x)[0] + (x if b.downsample is None else b.downsample(_parts(b, x)[0])))),
    ("downsample_always", N_("This block's downsample is None: the shortcut is then x itself "
                             "(`x if block.downsample is None else block.downsample(x)`)."),
     lambda b, x: torch.relu(_parts(b, x)[0] + b.downsample(x))),
    *[("pre_activation", _PRE_ACTIVATION, like) for like in _PRE_ACTIVATION_SLIPS],
    ("shadowed_x", N_("Your shortcut is the main path's own output: x was overwritten (x = block.conv1(x) ...) "
                      "before it was added. Keep the input in its own variable first (residual = x, or name the main "
                      "path out), then add that residual."),
     lambda b, x: torch.relu(2 * _parts(b, x)[0])),
    ("shortcut_before_bn2", N_("Add the shortcut after bn2: the main path ends with bn2(conv2(...)), then "
                               "relu(out + residual)."),
     lambda b, x: torch.relu(b.bn2(b.conv2(b.relu(b.bn1(b.conv1(x)))) + _parts(b, x)[1]))),
    ("relu_on_shortcut", N_("No ReLU on the shortcut: it is x (or block.downsample(x), a conv and a BN) added as it "
                            "is; the one ReLU comes after the sum."),
     lambda b, x: torch.relu(_parts(b, x)[0] + torch.relu(_parts(b, x)[1]))),
    ("multiplied", N_("The shortcut is added, not multiplied: relu(out + residual)."),
     lambda b, x: torch.relu(_parts(b, x)[0] * _parts(b, x)[1])),
    ("downsample_first", N_("The downsample is for the shortcut only: the main path starts with conv1 on the "
                            "original x. Keep x, and compute residual = block.downsample(x) separately."),
     _downsample_first),
    ("conv1_twice", N_("You used conv1 twice: the second conv of the main path is block.conv2 (conv1 -> bn1 -> "
                       "relu -> conv2 -> bn2)."),
     lambda b, x: torch.relu(b.bn2(b.conv1(torch.relu(b.bn1(b.conv1(x))))) + _parts(b, x)[1])),
    ("bn1_twice", N_("You used bn1 twice: conv2 is followed by its own BatchNorm, block.bn2."),
     lambda b, x: torch.relu(b.bn1(b.conv2(torch.relu(b.bn1(b.conv1(x))))) + _parts(b, x)[1])),
    ("downsample_conv", N_("The shortcut is the whole `block.downsample(x)`, a 1x1 conv and its BatchNorm; you "
                           "applied only its conv, downsample[0]."),
     lambda b, x: torch.relu(_parts(b, x)[0] + (x if b.downsample is None else b.downsample[0](x)))),
    ("downsample_bn2", N_("The shortcut's BatchNorm is downsample[1], not bn2: use the whole "
                          "`block.downsample(x)`."),
     lambda b, x: torch.relu(_parts(b, x)[0] + (x if b.downsample is None else b.bn2(b.downsample[0](x))))),
    ("sigmoid", N_("The block ends with block.relu (a ReLU), not a sigmoid: relu(out + residual)."),
     lambda b, x: torch.sigmoid(sum(_parts(b, x)))),
    *[("relu_input", N_("The block starts with conv1 on x itself: no ReLU before conv1 (the previous block "
                        "has already applied one)."), like) for like in [
        lambda b, x: torch.relu(_parts(b, torch.relu(x))[0] + _parts(b, x)[1]),  # the shortcut from x
        lambda b, x: torch.relu(sum(_parts(b, torch.relu(x))))]],  # or from the clipped x too
]


basic_block_forward = FunctionExercise(
    name="basic_block_forward", lesson="01", fn_name="my_forward",
    question=N_("Write `my_forward(block, x)` for an `ht.BasicBlock` using its layers: `block.conv1`, `block.bn1`, "
                "`block.relu`, `block.conv2`, `block.bn2` and `block.downsample` (None or a 1x1 conv + BN)."),
    # the class's forward, not block(x): _call_block refuses an answer that calls the block itself
    reference=_reference_forward, expected=lambda block, x: BasicBlock.forward(block, x), cases=_block_cases,
    call=_call_block, returns=N_("the output tensor"), against="ht.BasicBlock", trains=True,
    mistakes=[*(Mistake(name, message, like=like) for name, message, like in _BLOCK_SLIPS),
              Mistake("numbers", _RECIPE, when=lambda case, got, want: _same_kind(got, want))],  # no slip explains it
    success=lambda n: _("Your forward matches ht.BasicBlock on {n} blocks (with and without a downsample, stride 1 and "
                        "2, odd sizes).", n=n),
    hints=[N_("Main path: conv1 -> bn1 -> relu -> conv2 -> bn2. Shortcut: x, or block.downsample(x) when it is not None."),
           N_("Add the two, then apply block.relu to the sum.")],
    wrong_answers=[(lambda block, x: (_reference_forward(block, x),), "You gave a tuple where a tensor belongs"),
                   (BasicBlock(4, 4), "Pass your function itself"),
                   (lambda block, x: 2 * _reference_forward(block, x), "shape is right but the numbers differ"),
                   (_adds_into_x, "changed its input x in place"),
                   (lambda block, x: block(x), "called the block itself"),
                   (_train_mode, "switched the block to training mode")],
)

OUT = 32 * Bottleneck.expansion  # what ht.Bottleneck(inplanes=64, planes=32) outputs

bottleneck_channels = ValueExercise(
    name="bottleneck_channels", lesson="01",
    question=N_("How many channels does `ht.Bottleneck(inplanes=64, planes=32)` output?"),
    read=lambda a: as_int(a, N_("the number of channels")),
    reference=OUT,
    success=N_("planes x expansion = 32 x {e} = {out} (this is layer1 of w18_small_v1; W18..W64 use planes 64, so 256).",
               e=Bottleneck.expansion, out=OUT),
    mistakes={32: N_("32 is `planes`, the width inside the block; conv3 expands it by `expansion` = 4."),
              64: N_("64 is what comes in (inplanes); what goes out is planes x expansion."),
              256: N_("256 is layer1 of W18..W64, with planes 64; this block has planes 32."),
              8: N_("The Bottleneck squeezes inside (conv1 to `planes`) and then expands by 4 at conv3.")},
    otherwise=lambda n, e: _("Not {n}: look at conv3's out_channels in ht.Bottleneck.", n=n),
    hints=[N_("A Bottleneck's conv3 outputs `planes * expansion` channels."), N_("Bottleneck.expansion is 4.")],
    solution_text=N_("`answer = {out}`: planes 32 times expansion 4.", out=OUT),
    wrong_answers=[("128", "one whole number"), (100, "Not 100")],
)


layer1_downsample = ValueExercise(
    name="layer1_downsample", lesson="01",
    question=N_("layer1 of w48 is `make_layer(Bottleneck, inplanes=64, planes=64, num_blocks=4)`. Which blocks "
                "(indices 0-3) have a `downsample` (a 1x1 conv + BN on the shortcut)? Answer as a list."),
    read=lambda a: as_indices(a, N_("block indices (0 to 3)")),  # [0.0], range(2), an array count too
    reference=[0],
    success=N_("Only block 0: it turns 64 channels into 64 x 4 = 256, so its shortcut needs a 1x1 conv; blocks 1-3 "
               "take 256 and give 256, so their shortcut is x itself."),
    mistakes={(): N_("Block 0 gets 64 channels and outputs 256 (planes 64 x expansion 4): its shortcut must change shape."),
              (0, 1, 2, 3): N_("After block 0 the input already has 256 = 64 x 4 channels, so blocks 1-3 need no downsample."),
              (1, 2, 3): N_("Those are the blocks without a downsample; the question asks which blocks have one."),
              (1,): N_("Blocks are numbered from 0, as Python indexes them: the first block, the one that turns 64 "
                       "channels into 256, is block 0. (If you meant 'one block', give its index in a list: [0].)")},
    rules=[(lambda got, e: any(not 0 <= i <= 3 for i in got), N_("layer1 of w48 has 4 blocks, numbered 0 to 3.")),
           (lambda got, e: set(got) - {0}, lambda got, e: _(
               "Block {b} takes 256 channels (block {prev}'s output) and gives 256, at the same size: its shortcut is "
               "x itself, with no downsample.", b=min(set(got) - {0}), prev=min(set(got) - {0}) - 1))],
    otherwise=N_("The downsample is there only where the input's channels (or size) differ from the output's."),
    hints=[N_("A block needs a downsample when its input and output shapes differ: stride != 1 or inplanes != planes * 4."),
           N_("Block 0 takes 64 channels. What do blocks 1, 2, 3 take?")],
    solution_text=N_("`answer = [0]`: only the first block changes 64 channels into 256."),
    wrong_answers=[([4], "numbered 0 to 3"), ([2], "Block 2 takes 256 channels (block 1's output)"),
                   (1, "numbered from 0"), ([0, 3], "Block 3 takes 256"),
                   ("0", "list of block indices"),
                   ([True, False, False, False], "True/False flags"), ([0.5], "list of block indices")],
)

EXERCISES = [stem_shape, basic_block_forward, bottleneck_channels, layer1_downsample]
