"""Lesson 11, the capstone: your own HRNet W18-small-v1, piece by piece, loads the shipped
checkpoint strictly and segments as the package's model does.

The reference below is what a learner writes in ``notebooks/11_capstone.ipynb``, in the
same words (``solution()`` shows it). Each exercise checks one piece, or the whole
network, with the staged check of ``capstone.py``: key names, shapes, outputs module by
module, then the forward's details.
"""
from __future__ import annotations

import dataclasses
import inspect
import itertools
import types

import torch
import torch.nn.functional as F
from torch import nn

from ..blocks import BasicBlock, Bottleneck
from ..config import get_config
from ..i18n import N_, _, wrap
from . import capstone
from ._kinds import Case, FunctionExercise, Mistake
from .capstone import CheckpointExercise

# ====================================================================== the reference
# The learner's pieces, in the notebook's order. Names and nesting give the official keys.


def make_layer(block, inplanes, planes, num_blocks, stride=1):
    """Lesson 01: num_blocks blocks in a row; the first gets a 1x1 conv + BN shortcut when shapes change."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(planes * block.expansion),
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(planes * block.expansion, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


def make_fuse_op(i, j, channels):
    """Lesson 03: fuse_layers[i][j], what brings input branch j into output branch i."""
    if j == i:
        return None
    if j > i:  # coarser: 1x1 conv to branch i's channels; upsampled in forward
        return nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), nn.BatchNorm2d(channels[i]))
    steps = []
    for k in range(i - j):  # finer: i - j stride-2 convs; the last switches channels and has no ReLU
        last = k == i - j - 1
        cout = channels[i] if last else channels[j]
        layers = [nn.Conv2d(channels[j], cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout)]
        if not last:
            layers.append(nn.ReLU(inplace=True))
        steps.append(nn.Sequential(*layers))
    return nn.Sequential(*steps)


class HighResolutionModule(nn.Module):
    """Branches of blocks, then fuse_layers[i][j]; forward: output i = relu(sum over j of the terms)."""

    def __init__(self, num_branches, block, num_blocks, num_inchannels, num_channels,
                 multi_scale_output=True, align_corners=False):
        super().__init__()
        self.num_branches, self.align_corners = num_branches, align_corners
        self.branches = nn.ModuleList(
            make_layer(block, num_inchannels[b], num_channels[b], num_blocks[b]) for b in range(num_branches)
        )
        channels = [c * block.expansion for c in num_channels]
        rows = num_branches if multi_scale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(make_fuse_op(i, j, channels) for j in range(num_branches)) for i in range(rows)
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        x = [branch(xi) for branch, xi in zip(self.branches, x)]  # a new list: never x[i] = ...
        return [self.relu(self.fuse(x, i)) for i in range(len(self.fuse_layers))]

    def fuse(self, x, i):
        """Lesson 03's fuse_by_hand: the sum over j of branch j brought to branch i."""
        y = None
        for j, xj in enumerate(x):
            if j == i:
                term = xj
            else:
                term = self.fuse_layers[i][j](xj)
                if j > i:
                    term = F.interpolate(term, size=x[i].shape[-2:], mode="bilinear",
                                         align_corners=self.align_corners)
            y = term if y is None else y + term
        return y


def make_transition(pre_channels, cur_channels):
    """Lesson 04: None (pass), a stride-1 conv (adapt), or stride-2 steps from the last branch (new)."""
    layers = []
    for i, cout in enumerate(cur_channels):
        if i < len(pre_channels):
            cin = pre_channels[i]
            layers.append(None if cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)))
        else:
            cin, steps = pre_channels[-1], i + 1 - len(pre_channels)
            chain = []
            for s in range(steps):
                out = cout if s == steps - 1 else cin
                chain.append(nn.Sequential(nn.Conv2d(cin, out, 3, 2, 1, bias=False),
                                           nn.BatchNorm2d(out), nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*chain))
    return nn.ModuleList(layers)


def transition_forward(transition, y_list):
    """Lesson 05: one output per entry; a new branch grows from y_list[-1]."""
    x_list = []
    for i, op in enumerate(transition):
        source = y_list[i] if i < len(y_list) else y_list[-1]
        x_list.append(source if op is None else op(source))
    return x_list


BLOCKS = {"BASIC": BasicBlock, "BOTTLENECK": Bottleneck}


def make_stage(stage, num_inchannels, align_corners=False):
    """A stage: stage.num_modules HighResolutionModules in an nn.Sequential (keys stageK.M....)."""
    block = BLOCKS[stage.block]
    modules = []
    for _module in range(stage.num_modules):
        modules.append(HighResolutionModule(stage.num_branches, block, stage.num_blocks, num_inchannels,
                                            stage.num_channels, align_corners=align_corners))
        num_inchannels = [c * block.expansion for c in stage.num_channels]
    return nn.Sequential(*modules)


def v2_head(features, last_layer, align_corners=False):
    """Lesson 06, with align_corners passed in: every branch upsampled to branch 0's size, concatenated,
    classified."""
    size = features[0].shape[-2:]
    resized = [features[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=align_corners)
                               for f in features[1:]]
    return last_layer(torch.cat(resized, dim=1))


class MyHRNet(nn.Module):
    """HRNet W18-small-v1 with the HRNetV2 segmentation head, assembled from the pieces above."""

    def __init__(self, num_classes=4, align_corners=False):
        super().__init__()
        cfg = get_config("w18_small_v1")
        self.align_corners = align_corners
        # stem (lesson 01): two stride-2 3x3 convs, 3 -> 64 channels, to 1/4
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        # stage 1 (lesson 01): Bottlenecks at 1/4; 32 x 4 = 128 channels for W18-small-v1
        self.layer1 = make_layer(Bottleneck, 64, cfg.stage1.num_channels[0], cfg.stage1.num_blocks[0])
        pre = [cfg.stage1.num_channels[0] * Bottleneck.expansion]
        # transitions (lesson 04) and stages (lessons 02-03)
        self.transition1 = make_transition(pre, cfg.stage2.num_channels)
        self.stage2 = make_stage(cfg.stage2, cfg.stage2.num_channels, align_corners)
        self.transition2 = make_transition(cfg.stage2.num_channels, cfg.stage3.num_channels)
        self.stage3 = make_stage(cfg.stage3, cfg.stage3.num_channels, align_corners)
        self.transition3 = make_transition(cfg.stage3.num_channels, cfg.stage4.num_channels)
        self.stage4 = make_stage(cfg.stage4, cfg.stage4.num_channels, align_corners)
        # the V2 head (lesson 06): 1x1 conv (with bias) + BN + ReLU over the concatenated branches,
        # 240 = 16+32+64+128 channels, then the classifier
        width = sum(cfg.stage4.num_channels)
        self.last_layer = nn.Sequential(
            nn.Conv2d(width, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, num_classes, 1),
        )

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        y = [self.layer1(x)]
        y = self.stage2(transition_forward(self.transition1, y))
        y = self.stage3(transition_forward(self.transition2, y))
        y = self.stage4(transition_forward(self.transition3, y))
        return v2_head(y, self.last_layer, self.align_corners)


# ====================================================================== shared by the checks


def _solution(*pieces) -> str:
    return "```python\n" + "\n\n".join(inspect.getsource(p).strip() for p in pieces) + "\n```"


def _patched(build, **methods):
    """The reference network with some modules' methods replaced: one deliberate slip each."""
    def make():
        net = build()
        for target, (attr, fn) in methods.items():
            for module in _find(net, target):
                setattr(module, attr, types.MethodType(fn, module))
        return net
    return make


def _find(net, target):
    if target == "net":
        return [net]
    return [m for m in net.modules() if type(m).__name__ == target]


class _ModuleWithoutInit(nn.Module):
    """A slip: the class with its forward written and no __init__ (nn.Module's takes no arguments)."""

    def forward(self, x):
        return x


def _as_plain_list(module, attr):
    """``module.attr`` as a plain Python list (its rows too): the layers exist but are not registered."""
    layers = getattr(module, attr)
    delattr(module, attr)  # out of module._modules, so the list is a plain attribute
    setattr(module, attr, [list(row) if isinstance(row, nn.ModuleList) else row for row in layers])
    return module


# ====================================================================== 1. layer1


def _layer1_no_downsample(block, inplanes, planes, num_blocks, stride=1):
    layers = [block(inplanes, planes, stride, None)] + [block(planes * block.expansion, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


def _layer1_downsample_without_bn(block, inplanes, planes, num_blocks, stride=1):
    layer = make_layer(block, inplanes, planes, num_blocks, stride)
    layer[0].downsample = nn.Sequential(layer[0].downsample[0])
    return layer


def _layer1_plain_list(block, inplanes, planes, num_blocks, stride=1):
    return list(make_layer(block, inplanes, planes, num_blocks, stride))


def _layer1_bn_first(block, inplanes, planes, num_blocks, stride=1):
    layer = make_layer(block, inplanes, planes, num_blocks, stride)
    layer[0].downsample = nn.Sequential(nn.BatchNorm2d(inplanes), nn.Conv2d(inplanes, planes * block.expansion, 1,
                                                                             stride, bias=False))
    return layer


def _layer1_downsample_plain_list(block, inplanes, planes, num_blocks, stride=1):
    layer = make_layer(block, inplanes, planes, num_blocks, stride)
    _as_plain_list(layer[0], "downsample")  # [conv, bn]: a list has no forward, nor keys
    return layer


def _layer1_module_list(block, inplanes, planes, num_blocks, stride=1):
    return nn.ModuleList(make_layer(block, inplanes, planes, num_blocks, stride))


def _layer1_one_too_many(block, inplanes, planes, num_blocks, stride=1):
    layer = make_layer(block, inplanes, planes, 1, stride)
    return nn.Sequential(*layer, *(block(planes * block.expansion, planes) for _ in range(num_blocks)))  # not range(1, ...)


def _layer1_later_inplanes(block, inplanes, planes, num_blocks, stride=1):
    layer = make_layer(block, inplanes, planes, 1, stride)
    return nn.Sequential(*layer, *(block(inplanes, planes) for _ in range(1, num_blocks)))  # as the first block


def _layer1_structures():
    """W18-small-v1's layer1 has one block, so its checkpoint cannot show the blocks after the first: W48's
    layer1 (4 Bottlenecks of 64 planes, as in W18 and W32) is built too."""
    from ..blocks import make_layer as package_make_layer

    stage1 = get_config("w48").stage1
    args = (Bottleneck, 64, stage1.num_channels[0], stage1.num_blocks[0])
    branch = (BasicBlock, 16, 16, 2)  # a branch of stage 2: the shape never changes, so no downsample
    with torch.device("meta"):
        official, plain = package_make_layer(*args), package_make_layer(*branch)
    return [(args, official, N_("W48's layer1, make_layer(Bottleneck, 64, 64, 4)")),
            (branch, plain, N_("a branch of W18-small-v1's stage 2, make_layer(BasicBlock, 16, 16, 2)"),
             "stage2.0.branches.0.")]


layer1 = CheckpointExercise(
    name="layer1", lesson="11", prefix="layer1.", args=(Bottleneck, 64, 32, 1), what="make_layer",
    question=N_("Write `make_layer(block, inplanes, planes, num_blocks, stride=1)` (lesson 01): num_blocks blocks in an "
                "nn.Sequential; the first gets `downsample` = 1x1 conv + BN when the shape changes. The check builds "
                "layer1 = make_layer(Bottleneck, 64, 32, 1) and loads the checkpoint's layer1 into it; that layer1 has "
                "one block, so it also builds W48's layer1, make_layer(Bottleneck, 64, 64, 4), and a branch of stage 2, "
                "make_layer(BasicBlock, 16, 16, 2), which needs no downsample, and compares their keys and shapes with "
                "the package's."),
    reference=make_layer,
    hints=[N_("block(inplanes, planes, stride, downsample) for the first block, block(planes * block.expansion, planes) "
              "for the others; all in one nn.Sequential."),
           N_("The shortcut needs a downsample when stride != 1 or inplanes != planes * block.expansion: "
              "nn.Sequential(nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False), nn.BatchNorm2d(...))."),],
    solution_text=_solution(make_layer),
    wrong_answers=[
        (_layer1_no_downsample, "needs a `downsample` shortcut"),
        (_layer1_downsample_without_bn, "layer1.0.downsample: 5 keys missing"),
        (_layer1_plain_list, "return an nn.Module"),
        (_layer1_bn_first, "layer1.0.downsample.0 is a BatchNorm2d where the checkpoint has a conv"),
        (_layer1_downsample_plain_list, "self.downsample of layer1.0 is a plain Python list"),
        (_layer1_downsample_plain_list, "Use nn.Sequential(*layers)"),
        (_layer1_module_list, "make_layer builds layer1: return nn.Sequential(*layers)"),
        (_layer1_one_too_many, "has 2 blocks; the checkpoint's has 1"),
        (lambda *args: None, "Your make_layer returned None: did you forget `return`?"),
        (lambda *args: make_layer(*args).half(), "weights are float16"),
        # built once (make_layer called, not passed): right at W18-small-v1's layer1, never built as W48's
        (make_layer(Bottleneck, 64, 32, 1), "it is one module, built once"),
        (_ModuleWithoutInit, "You passed a class, _ModuleWithoutInit, with no `__init__` of its own"),
        (_layer1_later_inplanes, "every block after the first is `block(planes * block.expansion, planes)`"),
    ],
    structures=_layer1_structures,
)

# ====================================================================== 2. the HighResolutionModule

MODULE_ARGS = (3, BasicBlock, (2, 2, 2), (16, 32, 64), (16, 32, 64), True, False)  # stage3.0 of W18-small-v1


def _module_without_relu(module, x):
    x = [branch(xi) for branch, xi in zip(module.branches, x)]
    return [module.fuse(x, i) for i in range(len(module.fuse_layers))]


def _module_in_place(module, x):
    x = [branch(xi) for branch, xi in zip(module.branches, x)]
    for i in range(len(module.fuse_layers)):
        x[i] = module.relu(module.fuse(x, i))
    return x


def _module_official_in_place(module, x):
    for i, branch in enumerate(module.branches):  # the official loop: harmless, but the caller's list changes
        x[i] = branch(x[i])
    return [module.relu(module.fuse(x, i)) for i in range(len(module.fuse_layers))]


def _module_nearest(module, x, i):
    y = None
    for j, xj in enumerate(x):
        term = xj if j == i else module.fuse_layers[i][j](xj)
        if j > i:
            term = F.interpolate(term, size=x[i].shape[-2:], mode="nearest")
        y = term if y is None else y + term
    return y


def _module_scale_factor(module, x, i):
    y = None
    for j, xj in enumerate(x):
        term = xj if j == i else module.fuse_layers[i][j](xj)
        if j > i:  # exact only where every branch is half the one above
            term = F.interpolate(term, scale_factor=2 ** (j - i), mode="bilinear", align_corners=module.align_corners)
        y = term if y is None else y + term
    return y


def _module_fused_with(add_term):
    """A fuse(x, i) that adds the terms one by one, ``y = add_term(module, x, i, j, y)`` for each j (y starts as
    None): one slip in how a term is made or added."""
    def fuse(module, x, i):
        y = None
        for j in range(len(x)):
            y = add_term(module, x, i, j, y)
        return y
    return fuse


def _term_to_x0_size(module, x, i, j, y):
    term = x[j] if j == i else module.fuse_layers[i][j](x[j])
    if j > i:  # every coarser term to branch 0's size: right for row 0 only
        term = F.interpolate(term, size=x[0].shape[-2:], mode="bilinear", align_corners=module.align_corners)
    return term if y is None else y + term


def _term_calls_none(module, x, i, j, y):
    term = module.fuse_layers[i][j](x[j])  # also for j == i, where the entry is None
    if j > i:
        term = F.interpolate(term, size=x[i].shape[-2:], mode="bilinear", align_corners=module.align_corners)
    return term if y is None else y + term


def _term_bicubic(module, x, i, j, y):
    term = x[j] if j == i else module.fuse_layers[i][j](x[j])
    if j > i:
        term = F.interpolate(term, size=x[i].shape[-2:], mode="bicubic", align_corners=module.align_corners)
    return term if y is None else y + term


def _term_added_in_place(module, x, i, j, y):
    term = x[j] if j == i else module.fuse_layers[i][j](x[j])
    if j > i:
        term = F.interpolate(term, size=x[i].shape[-2:], mode="bilinear", align_corners=module.align_corners)
    if y is None:
        return term  # for i == j == 0 this is x[0] itself ...
    y += term  # ... which this changes, while later rows still read it
    return y


def _term_align_ignored(module, x, i, j, y):
    term = x[j] if j == i else module.fuse_layers[i][j](x[j])
    if j > i:  # align_corners left out: F.interpolate's default, False, however the module was built
        term = F.interpolate(term, size=x[i].shape[-2:], mode="bilinear")
    return term if y is None else y + term


def _module_returns_tensor(module, x):
    return HighResolutionModule.forward(module, x)[0]


def _module_in_float64(module, x):
    return HighResolutionModule.forward(module, [t.double() for t in x])  # the maps, not the layers, in float64


def _module_branches_module_lists(*args):
    module = HighResolutionModule(*args)
    module.branches = nn.ModuleList(nn.ModuleList(branch) for branch in module.branches)  # make_layer's slip
    return module


def _module_every_row(num_branches, block, num_blocks, num_inchannels, num_channels, multi_scale_output=True,
                      align_corners=False):
    return HighResolutionModule(num_branches, block, num_blocks, num_inchannels, num_channels, True, align_corners)


def _module_structures():
    """stage3.0 with multi_scale_output=False, as the pose network's last module: fuse_layers row 0 only."""
    args = (*MODULE_ARGS[:5], False, False)
    from ..module import HighResolutionModule as Official

    with torch.device("meta"):
        official = Official(*args[:5], multi_scale_output=False)
    return [(args, official, N_("stage3.0 with multi_scale_output=False"))]


def _module_single_row(num_branches, block, num_blocks, num_inchannels, num_channels, multi_scale_output=True,
                       align_corners=False):
    return HighResolutionModule(num_branches, block, num_blocks, num_inchannels, num_channels, False, align_corners)


def _transpose_fuse(module):
    n = len(module.fuse_layers)
    module.fuse_layers = nn.ModuleList(nn.ModuleList(module.fuse_layers[j][i] for j in range(n)) for i in range(n))
    return module


def _module_patched(attr, fn):
    def make(*args):
        module = HighResolutionModule(*args)
        setattr(module, attr, types.MethodType(fn, module))
        return module
    return make


hr_module = CheckpointExercise(
    name="hr_module", lesson="11", prefix="stage3.0.", args=MODULE_ARGS, what="HighResolutionModule",
    question=N_("Write `class HighResolutionModule(nn.Module)` with `__init__(self, num_branches, block, num_blocks, "
                "num_inchannels, num_channels, multi_scale_output=True, align_corners=False)`: `self.num_branches`, `self.branches` "
                "(make_layer per branch), `self.fuse_layers` (make_fuse_op, lesson 03), `self.relu`, and forward(x) "
                "(a list of maps -> a list of fused maps). The check builds stage3.0 of W18-small-v1 and loads the "
                "checkpoint's stage3.0 into it; then it builds the module with multi_scale_output=False (fuse_layers "
                "row 0 only) and compares its keys and shapes with the package's. Last, it builds stage3.0 with "
                "align_corners=True, the checkpoint's tensors in it, and compares its outputs with the package's "
                "module built the same way."),
    reference=HighResolutionModule,
    hints=[N_("self.branches = nn.ModuleList(make_layer(block, num_inchannels[b], num_channels[b], num_blocks[b]) ...); "
              "self.fuse_layers = nn.ModuleList of rows, row i = nn.ModuleList(make_fuse_op(i, j, channels) for j ...)."),
           N_("forward: run every branch into a NEW list; output i = relu(sum over j of `fuse_layers[i][j](x[j])`, "
              "bilinearly resized to x[i]'s size when j > i; x[i] itself when j == i)."),
           N_("Upsample with align_corners=self.align_corners: the shipped checkpoint was trained with False.")],
    solution_text=_solution(HighResolutionModule),
    wrong_answers=[
        (_module_patched("forward", _module_without_relu), "left out the ReLU after the fuse sum"),
        (_module_patched("forward", _module_in_place), "wrote the fused outputs back into the list"),
        (_module_patched("fuse", _module_nearest), "mode='nearest'"),
        (lambda *args: _transpose_fuse(HighResolutionModule(*args)), "transposed"),
        (lambda *args: HighResolutionModule(*args[:-1], align_corners=True), "align_corners=True"),
        (lambda *args: _ModuleWithoutNumBranches(*args), "keeps self.num_branches, set in __init__"),
        (lambda *args: _as_plain_list(HighResolutionModule(*args), "fuse_layers"),
         "self.fuse_layers of stage3.0 is a plain Python list"),
        (lambda *args: _as_plain_list(HighResolutionModule(*args), "branches"),
         "self.branches of stage3.0 is a plain Python list"),
        (_module_single_row, "builds every module with multi_scale_output=True"),
        (_module_patched("fuse", _module_scale_factor), "not by a scale factor"),
        (_module_patched("fuse", _module_fused_with(_term_to_x0_size)), "must have x[i]'s size before the sum"),
        (_module_patched("fuse", _module_fused_with(_term_calls_none)), "fuse_layers[i][i] is None"),
        (_module_patched("fuse", _module_fused_with(_term_bicubic)), "mode='bicubic'"),
        (_module_patched("fuse", _module_fused_with(_term_added_in_place)), "added the terms into x[0] in place"),
        (_module_patched("forward", _module_returns_tensor), "forward returns a Python list with one fused map"),
        (_module_branches_module_lists, "called stage3.0.branches.0 (nn.ModuleList), which has no forward"),
        (_module_every_row, "only row 0 of fuse_layers is built"),
        (_module_patched("fuse", _module_fused_with(_term_align_ignored)),
         "your HighResolutionModule gives the same numbers as with False"),
        (lambda *args: HighResolutionModule(*args).double(), "Your HighResolutionModule's weights are float64"),
        (_module_patched("forward", _module_in_float64), "stage3.0.branches.0 was given float64 maps"),
        (_ModuleWithoutInit, "has no `__init__` of its own"),
    ],
    structures=_module_structures,
    aligned=((*MODULE_ARGS[:6], True), N_("Keep it, self.align_corners = align_corners, and upsample with "
                                          "F.interpolate(..., align_corners=self.align_corners).")),
)

# ====================================================================== 3. a stage


def _stage_module_list(stage, num_inchannels, align_corners=False):
    return nn.ModuleList(make_stage(stage, num_inchannels, align_corners))


def _stage_plain_list(stage, num_inchannels, align_corners=False):
    return list(make_stage(stage, num_inchannels, align_corners))


def _stage_with_widths(stage, num_inchannels, align_corners=False):
    """As the official _make_stage (lesson 05): the stage and the last widths."""
    return make_stage(stage, num_inchannels, align_corners), list(stage.num_channels)


def _stage_one_module(stage, num_inchannels, align_corners=False):
    block = BLOCKS[stage.block]
    return nn.Sequential(HighResolutionModule(stage.num_branches, block, stage.num_blocks, num_inchannels,
                                              stage.num_channels, align_corners=align_corners))


def _stage_inchannels_kept(stage, num_inchannels, align_corners=False):
    block = BLOCKS[stage.block]
    return nn.Sequential(*(HighResolutionModule(stage.num_branches, block, stage.num_blocks, num_inchannels,
                                                stage.num_channels, align_corners=align_corners)
                           for _module in range(stage.num_modules)))  # every module takes the stage's input channels


def _stage_align_dropped(stage, num_inchannels, align_corners=False):
    return make_stage(stage, num_inchannels)  # the modules keep their default, False


def _stage_structures():
    """W18-small-v1 has one module per stage, so its checkpoint cannot show the loop over num_modules, nor
    num_inchannels growing after the first module: w18_small_v2's stage3 (3 modules), of BasicBlocks as
    published and of Bottlenecks (whose modules after the first take 4 x num_channels)."""
    stage3 = get_config("w18_small_v2").stage3
    cases = []
    for config, where in ((stage3, N_("w18_small_v2's stage3 (3 modules)")),
                          (dataclasses.replace(stage3, block="BOTTLENECK"), N_("w18_small_v2's stage3 built of Bottlenecks"))):
        args = (config, list(config.num_channels), False)
        cases.append((args, capstone.package_stage(config, config.num_channels), where))
    return cases


stage = CheckpointExercise(
    name="stage", lesson="11", prefix="stage3.", args=(get_config(capstone.VARIANT).stage3, [16, 32, 64], False),
    what="make_stage",
    question=N_("Write `make_stage(stage, num_inchannels, align_corners=False)`: `stage` is a StageConfig "
                "(`get_config('w18_small_v1').stage3`); return stage.num_modules HighResolutionModules in an "
                "nn.Sequential. The check builds stage3 and loads the checkpoint's stage3 into it; W18-small-v1 has "
                "one module per stage, so it also builds w18_small_v2's stage3 (3 modules) and compares its keys and "
                "shapes with the package's. Last, it builds stage3 with align_corners=True and compares its outputs "
                "with the package's stage built the same way."),
    reference=make_stage,
    hints=[N_("BLOCKS[stage.block] gives the block class; the modules take stage.num_branches, the block, "
              "stage.num_blocks, num_inchannels, stage.num_channels."),
           N_("After the first module the inputs carry stage.num_channels x expansion channels; wrap all in "
              "nn.Sequential.")],
    solution_text=_solution(make_stage),
    wrong_answers=[
        (_stage_module_list, "use nn.Sequential"),
        (_stage_plain_list, "Python list"),
        (_stage_with_widths, "The official _make_stage also returns the last widths"),
        (_stage_one_module, "its config's num_modules is 3"),
        (_stage_inchannels_kept, "Module 1 takes what module 0 gives out"),
        (_stage_align_dropped, "your make_stage gives the same numbers as with False"),
    ],
    structures=_stage_structures,
    aligned=((get_config(capstone.VARIANT).stage3, [16, 32, 64], True),
             N_("Pass align_corners on to every HighResolutionModule that make_stage builds.")),
)

# ====================================================================== 4. the V2 head


def _head_cases():
    """The package's stage-4 maps of the held-out scenes, then of the odd scene (sizes that do not halve
    exactly), with the checkpoint's last_layer and setting."""
    for odd in (False, True):
        reference = capstone.reference_run(odd)
        features = list(reference.calls["stage4"].output)
        sizes = _(", ").join("x".join(map(str, f.shape[-2:])) for f in features)
        where = (N_("the package's stage-4 maps of one {size}x{size} scene ({sizes}: not each half of the one before)",
                    size=capstone.ODD_SIZE, sizes=sizes) if odd else
                 N_("the package's stage-4 maps of {scenes} held-out scenes ({sizes})", scenes=capstone.SCENES,
                    sizes=sizes))
        yield Case(features, capstone.package_model().last_layer, capstone.checkpoint_align_corners(),
                   where=where, expected=reference.calls["last_layer"].output)
    yield _head_aligned_case()


def _head_aligned_case():
    """The held-out scenes' maps once more, at align_corners=True: the checkpoint's False is also F.interpolate's
    default, so a head that never passes the argument on passes the cases above."""
    from ..heads import concat_branches

    features, last_layer = list(capstone.reference_run().calls["stage4"].output), capstone.package_model().last_layer
    with torch.no_grad():
        expected = last_layer(concat_branches(features, True))
    return Case(features, last_layer, True, expected=expected,
                where=N_("the package's stage-4 maps of {scenes} held-out scenes, with align_corners=True",
                         scenes=capstone.SCENES))


def _head_align_flipped(features, last_layer, align_corners=False):
    return v2_head(features, last_layer, not align_corners)


def _head_align_ignored(features, last_layer, align_corners=False):
    size = features[0].shape[-2:]  # align_corners left out: F.interpolate's default, False
    return last_layer(torch.cat([features[0]] + [F.interpolate(f, size=size, mode="bilinear") for f in features[1:]], 1))


def _head_lesson06(features, last_layer):
    return v2_head(features, last_layer, True)


def _head_nearest(features, last_layer, align_corners=False):
    size = features[0].shape[-2:]
    return last_layer(torch.cat([features[0]] + [F.interpolate(f, size=size, mode="nearest") for f in features[1:]], 1))


def _head_cat_first(features, last_layer, align_corners=False):
    return last_layer(torch.cat(features, dim=1))


def _head_reversed(features, last_layer, align_corners=False):
    size = features[0].shape[-2:]
    resized = [features[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=align_corners)
                               for f in features[1:]]
    return last_layer(torch.cat(resized[::-1], dim=1))


def _head_softmax(features, last_layer, align_corners=False):
    return torch.softmax(v2_head(features, last_layer, align_corners), dim=1)


def _head_log_softmax(features, last_layer, align_corners=False):
    return torch.log_softmax(v2_head(features, last_layer, align_corners), dim=1)


def _head_scale_factor(features, last_layer, align_corners=False):
    resized = [features[0]] + [F.interpolate(f, scale_factor=2 ** b, mode="bilinear", align_corners=align_corners)
                               for b, f in enumerate(features[1:], start=1)]  # exact only where sizes halve exactly
    return last_layer(torch.cat(resized, dim=1))


def _head_resized(features, align_corners):
    size = features[0].shape[-2:]
    return [features[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=align_corners)
                            for f in features[1:]]


def _head_cat_dim0(features, last_layer, align_corners=False):
    return last_layer(torch.cat(_head_resized(features, align_corners), dim=0))


def _head_fixed_size(features, last_layer, align_corners=False):
    size = (16, 16)  # branch 0's size on the 64x64 scenes it was trained on, and on no other size
    resized = [features[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=align_corners)
                               for f in features[1:]]
    return last_layer(torch.cat(resized, dim=1))


def _head_swapped(features, last_layer, align_corners=False):
    resized = _head_resized(features, align_corners)
    return last_layer(torch.cat([resized[1], resized[0], *resized[2:]], dim=1))


def _head_order(case, got):
    """The order of the branches that gives ``got``, when another than 0, 1, 2, 3 does; else None."""
    features, last_layer, align_corners = case.args
    resized = _head_resized(features, align_corners)
    for order in itertools.permutations(range(len(resized))):
        value = last_layer(torch.cat([resized[b] for b in order], dim=1))
        if order != tuple(range(len(resized))) and value.shape == got.shape and torch.allclose(value, got, atol=1e-4):
            return order
    return None


def _head_other_size(case, got, expected):
    """Not this input's size: the answer fits the maps of the trained size only (a size or factor written in)."""
    trained = capstone.trained_image_size() // 4
    return case.args[0][0].shape[-1] != trained and (
        isinstance(got, RuntimeError) or (isinstance(got, torch.Tensor) and got.shape[-2:] != expected.shape[-2:]))


head = FunctionExercise(
    name="head", lesson="11", fn_name="v2_head",
    question=N_("Write `v2_head(features, last_layer, align_corners=False)` (lesson 06, with align_corners passed "
                "in): every branch bilinearly resized to branch 0's size, concatenated along the channels, then "
                "last_layer. The check runs it on the package's stage-4 maps with the checkpoint's last_layer and "
                "align_corners, then once with align_corners=True."),
    reference=v2_head, cases=_head_cases, trains=True, returns=N_("the logits tensor"),
    against=N_("the package's model"),
    mistakes=[  # the first that matches is said: align_ignored before align_corners, which would misread it
        Mistake("align_ignored", N_("With align_corners=True your head still upsamples as with False, the checkpoint's "
                                    "setting and F.interpolate's default: the argument never reaches F.interpolate. "
                                    "Pass it on: F.interpolate(..., align_corners=align_corners)."),
                like=_head_align_ignored, fragment="your head still upsamples as with False"),
        Mistake("align_corners", lambda case, got, want: _(
            "You upsample with align_corners={yours}; the shipped checkpoint was trained with "
            "align_corners={trained} (checkpoint['align_corners']). Use the argument.",
            yours=not case.args[2], trained=case.args[2]),
            like=_head_align_flipped, fragment="the shipped checkpoint was trained with align_corners=False"),
        Mistake("two_arguments", N_("Lesson 06's v2_head took two arguments; here it takes a third, align_corners "
                                    "(the shipped checkpoint was trained with False)."),
                like=_head_lesson06, fragment="takes a third, align_corners"),
        Mistake("nearest", N_("You upsample with mode='nearest'; HRNetV2 resizes bilinearly to branch 0's exact size."),
                like=_head_nearest, fragment="You upsample with mode='nearest'"),
        Mistake("reversed", N_("You concatenated the branches in reverse order; last_layer's weights expect branch 0 "
                               "first: torch.cat([branch 0, upsampled branch 1, 2, 3], dim=1)."),
                like=_head_reversed, fragment="in reverse order"),
        *(Mistake(name, N_("Your output went through a softmax (or LogSoftmax, as at the end of the learner's "
                           "modified seg_hrnet.py): v2_head returns last_layer's logits as they are; no softmax or "
                           "LogSoftmax after it."), like=like, fragment="returns last_layer's logits as they are")
          for name, like in (("softmax", _head_softmax), ("log_softmax", _head_log_softmax))),
        Mistake("scale_factor", N_("You upsample by a scale factor: on this scene the branches are not each half the "
                                   "size of the one before (each stride-2 step rounds up), so the factors miss branch "
                                   "0's size. Resize to branch 0's exact size: size=features[0].shape[-2:]."),
                like=_head_scale_factor, fragment="Resize to branch 0's exact size"),
        Mistake("cat_first", N_("The branches have different sizes, so torch.cat cannot join them: upsample every "
                                "branch to branch 0's size first, then concatenate along dim 1."),
                like=_head_cat_first, fragment="upsample every branch"),
        Mistake("cat_dim0", N_("You concatenated along dim 0, the batch: the branches are joined along the channels, "
                               "torch.cat(resized, dim=1), 16+32+64+128 = 240 of them for last_layer."),
                like=_head_cat_dim0, fragment="along dim 0, the batch"),
        Mistake("other_size", lambda case, got, want: _(
            "Your head fits the maps of the {trained}x{trained} scenes only: on these ({sizes}) a size or scale "
            "factor written for one input size misses. Resize to this input's branch-0 size, "
            "size=features[0].shape[-2:].", trained=capstone.trained_image_size(),
            sizes=_(", ").join("x".join(map(str, f.shape[-2:])) for f in case.args[0])), when=_head_other_size),
        Mistake("order", lambda case, got, want: _(
            "You concatenated the branches in the order {order}; last_layer's weights expect branch 0 first, then "
            "1, 2, 3: torch.cat([branch 0, upsampled branch 1, 2, 3], dim=1).",
            order=_(", ").join(map(str, _head_order(case, got)))), when=lambda case, got, want: _head_order(case, got)),
    ],
    success=lambda n: _("Your head gives the package's logits on {scenes} held-out scenes and on a {size}x{size} "
                        "one, from the checkpoint's last_layer and its align_corners, and with align_corners=True "
                        "too.", scenes=capstone.SCENES, size=capstone.ODD_SIZE),
    wrong_answers=[(_head_lesson06, "takes a third, align_corners"), (_head_cat_first, "upsample every branch"),
                   (_head_fixed_size, "fits the maps of the 64x64 scenes only"),
                   (_head_swapped, "in the order 1, 0, 2, 3")],
    hints=[N_("F.interpolate(f, size=features[0].shape[-2:], mode='bilinear', align_corners=align_corners) "
              "for branches 1, 2, 3; branch 0 as it is."),
           N_("torch.cat(resized, dim=1), then last_layer.")],
    solution_text=_solution(v2_head),
)

# ====================================================================== 5. the whole network


class NetworkExercise(CheckpointExercise):
    """The capstone: the whole network, then how many pixels it labels as the package's model does."""

    def compare(self, module: nn.Module) -> str:
        result = super().compare(module)
        images = capstone.scenes()[0]
        with torch.no_grad():
            mine = self.call(module, images, where=_("running your network")).argmax(1)
            agree = (mine == capstone.package_model()(images).argmax(1)).float().mean().item()
        return _("{result} Your own HRNet W18-small-v1 loads the shipped checkpoint strictly; its pixel predictions "
                 "agree with the package's on {agree} of {scenes} held-out scenes.",
                 result=result, agree=format(agree, ".0%"), scenes=len(images))


def _net_no_relu_after_sum(self, x):
    return _module_without_relu(self, x)


def _net_relu_on_terms(self, x, i):
    y = None
    for j, xj in enumerate(x):
        term = xj if j == i else self.fuse_layers[i][j](xj)
        if j > i:
            term = F.interpolate(term, size=x[i].shape[-2:], mode="bilinear", align_corners=self.align_corners)
        y = torch.relu(term) if y is None else y + torch.relu(term)
    return y


def _net_fuse_ji(self, x, i):
    y = None
    for j, xj in enumerate(x):
        term = xj if j == i else self.fuse_layers[j][i](xj)
        if j > i:
            term = F.interpolate(term, size=x[i].shape[-2:], mode="bilinear", align_corners=self.align_corners)
        y = term if y is None else y + term
    return y


def _net_forward_with(transition_fn=transition_forward, head_fn=v2_head, relu_after_bn2=True):
    def forward(self, x):
        x = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        x = self.relu(x) if relu_after_bn2 else x
        y = [self.layer1(x)]
        y = self.stage2(transition_fn(self.transition1, y))
        y = self.stage3(transition_fn(self.transition2, y))
        y = self.stage4(transition_fn(self.transition3, y))
        return head_fn(y, self.last_layer, self.align_corners)
    return forward


def _net_transposed():
    net = MyHRNet()
    for module in _find(net, "HighResolutionModule"):
        _transpose_fuse(module)
    return net


def _new_branch(cin, cout):
    return nn.Sequential(nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()))


def _net_new_branch_from_first():
    net = MyHRNet()
    net.transition2[2] = _new_branch(16, 64)  # from branch 0's 16 channels, not the last branch's 32
    return net


def _net_new_branch_channels():
    net = MyHRNet()
    net.transition2[2] = _new_branch(32, 32)  # keeps the 32 channels it grows from; stage 3's branch 2 has 64
    return net


def _net_conv_bias():
    net = MyHRNet()
    net.conv1 = nn.Conv2d(3, 64, 3, 2, 1)
    return net


def _net_stem_without_relu():
    net = MyHRNet()
    net.relu = nn.Identity()
    return net


def _net_last_layer_without_bias():
    net = MyHRNet()
    net.last_layer[0] = nn.Conv2d(240, 240, 1, bias=False)
    return net


def _net_fuse_layers_plain_lists():
    net = MyHRNet()
    for module in _find(net, "HighResolutionModule"):
        _as_plain_list(module, "fuse_layers")
    return net


def _net_transition_plain_list():
    return _as_plain_list(MyHRNet(), "transition2")


def _net_last_module_single_row():
    net = MyHRNet()
    cfg = get_config("w18_small_v1").stage4
    net.stage4[-1] = HighResolutionModule(cfg.num_branches, BasicBlock, cfg.num_blocks, cfg.num_channels,
                                          cfg.num_channels, multi_scale_output=False)  # the pose network's way
    return net


def _net_last_layer_without_relu_module():
    net = MyHRNet()
    conv, bn, _, classifier = net.last_layer
    net.last_layer = nn.Sequential(conv, bn, classifier)
    return net


def _net_transitions_plain_lists():
    net = MyHRNet()
    for k in (1, 2, 3):
        _as_plain_list(net, f"transition{k}")
    return net


def _net_rebuilt(**pieces):
    """MyHRNet with some attributes built otherwise: one assembly slip each."""
    def make():
        net = MyHRNet()
        for attr, build in pieces.items():
            setattr(net, attr, build())
        return net
    return make


def _net_module_returning(pick):
    """MyHRNet whose HighResolutionModules return ``pick(outputs)`` instead of the list."""
    def forward(self, x):
        return pick(HighResolutionModule.forward(self, x))
    return _patched(MyHRNet, HighResolutionModule=("forward", forward))


_CFG = get_config("w18_small_v1")


def _transition_from_first(transition, y_list):
    return [(y_list[i] if i < len(y_list) else y_list[0]) if op is None
            else op(y_list[i] if i < len(y_list) else y_list[0]) for i, op in enumerate(transition)]


def _transition_calls_none(transition, y_list):
    return [op(y_list[i] if i < len(y_list) else y_list[-1]) for i, op in enumerate(transition)]  # None too


def _transition_called(transition, y_list):
    return transition(y_list)  # an nn.ModuleList has no forward


def _head_align_true(features, last_layer, align_corners):
    return v2_head(features, last_layer, True)  # the head only: the modules keep False


def _logsoftmax_head(features, last_layer, align_corners):
    return torch.log_softmax(v2_head(features, last_layer, align_corners), dim=1)


def _net_renamed(old: str, new: str):
    """MyHRNet whose module ``old`` is stored under the name ``new`` (the forward is not reached)."""
    def make():
        net = MyHRNet()
        setattr(net, new, getattr(net, old))
        delattr(net, old)
        return net
    return make


def _net_stem_module():
    """MyHRNet with the stem's four layers in a module of their own, as `model.stem(x)` (lesson 03) suggests."""
    net = MyHRNet()
    net.stem = nn.Sequential(net.conv1, net.bn1, net.conv2, net.bn2)
    del net.conv1, net.bn1, net.conv2, net.bn2
    return net


class _NetStagesAtFalse(MyHRNet):
    """align_corners kept for the head, not passed to make_stage: every module upsamples with False."""

    def __init__(self, num_classes=4, align_corners=False):
        super().__init__(num_classes, False)
        self.align_corners = align_corners


class _ModuleWithoutNumBranches(HighResolutionModule):
    """A forward that loops over self.num_branches, which its __init__ never kept."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.num_branches

    def forward(self, x):
        x = [self.branches[b](x[b]) for b in range(self.num_branches)]
        return [self.relu(self.fuse(x, i)) for i in range(len(self.fuse_layers))]


class _NetWithoutAlignCorners(MyHRNet):
    """The stub's align_corners parameter left out: right at the checkpoint's False, and never tried at True."""

    def __init__(self, num_classes=4):
        super().__init__(num_classes, False)


# name: (the wrong network, a fragment of the message it must get): the slips of assembling HRNet
NETWORK_MISTAKES = {
    "no ReLU after the fuse sum": (_patched(MyHRNet, HighResolutionModule=("forward", _net_no_relu_after_sum)),
                                   "left out the ReLU after the fuse sum"),
    "a ReLU on each term": (_patched(MyHRNet, HighResolutionModule=("fuse", _net_relu_on_terms)),
                            "ReLU in the wrong place"),
    "fuse_layers built [j][i]": (_net_transposed, "fuse_layers look transposed"),
    "fuse_layers used [j][i] in forward": (_patched(MyHRNet, HighResolutionModule=("fuse", _net_fuse_ji)),
                                           "`fuse_layers[i][j](x[j])`"),
    "fused outputs written back into the list": (_patched(MyHRNet, HighResolutionModule=("forward", _module_in_place)),
                                                 "wrote the fused outputs back into the list"),
    "new branch built from branch 0": (_net_new_branch_from_first, "born from the last, lowest-resolution branch"),
    "new branch fed from branch 0": (_patched(MyHRNet, net=("forward", _net_forward_with(_transition_from_first))),
                                     "not y_list[0]"),
    "a transition called as a module": (_patched(MyHRNet, net=("forward", _net_forward_with(_transition_called))),
                                        "y = transition_forward(self.transition1, y)"),
    "a None transition entry called": (_patched(MyHRNet, net=("forward", _net_forward_with(_transition_calls_none))),
                                       "A None entry of a transition passes y_list[i] through unchanged"),
    "new branch with the wrong channels": (_net_new_branch_channels, "must carry 64 channels"),
    "head concatenates before upsampling": (_patched(MyHRNet, net=("forward", _net_forward_with(
        head_fn=lambda y, last_layer, align: _head_cat_first(y, last_layer)))), "upsample every branch to branch 0's size first"),
    "align_corners flipped": (lambda: MyHRNet(align_corners=True), "trained with align_corners=False"),
    "align_corners flipped in the head only": (_patched(MyHRNet, net=("forward", _net_forward_with(head_fn=_head_align_true))),
                                               "your head upsamples with align_corners=True"),
    "a conv with a bias": (_net_conv_bias, "bias=False"),
    "no ReLU in the stem": (_net_stem_without_relu, "the ReLU after bn1"),
    "last_layer without its ReLU module": (_net_last_layer_without_relu_module, "numbers every layer"),
    "Cityscapes' 19 classes": (lambda: MyHRNet(num_classes=19), "build it with num_classes=4"),
    "LogSoftmax at the end": (_patched(MyHRNet, net=("forward", _net_forward_with(head_fn=_logsoftmax_head))),
                              "no softmax or LogSoftmax"),
    "no ReLU after bn2": (_patched(MyHRNet, net=("forward", _net_forward_with(relu_after_bn2=False))),
                          "the ReLU after bn2"),
    "fuse_layers a plain list": (_net_fuse_layers_plain_lists, "self.fuse_layers of stage2.0 is a plain Python list"),
    "transition2 a plain list": (_net_transition_plain_list,
                                 "self.transition2 of your whole network is a plain Python list"),
    "last stage-4 module with multi_scale_output=False": (_net_last_module_single_row,
                                                          "builds every module with multi_scale_output=True"),
    "last_layer's convs without bias": (_net_last_layer_without_bias, "last_layer's convs have bias=True"),
    "fuse upsampled by a scale factor": (_patched(MyHRNet, HighResolutionModule=("fuse", _module_scale_factor)),
                                         "not by a scale factor"),
    "head upsampled by a scale factor": (_patched(MyHRNet, net=("forward", _net_forward_with(
        head_fn=_head_scale_factor))), "not by a scale factor"),
    # an exception in a later piece, caused by a module that returned something else than its list
    "a module returns a tensor": (_net_module_returning(lambda out: out[0]),
                                  "stage2.0 (HighResolutionModule) differs from the package's (a Tensor instead"),
    "a module's forward without return": (_net_module_returning(lambda out: None),
                                          "stage2.0 (HighResolutionModule) differs from the package's (None instead"),
    # the names right, the structure not
    "layer1 of BasicBlocks": (_net_rebuilt(layer1=lambda: make_layer(BasicBlock, 64, 32, 1)),
                              "layer1.0 has no conv3 and bn3: it is a BasicBlock"),
    "stage2 given layer1's channels": (_net_rebuilt(stage2=lambda: make_stage(_CFG.stage2, [128, 128])),
                                       "A stage takes the channels its transition gives out"),
    "transition2's arguments swapped": (_net_rebuilt(transition2=lambda: make_transition(
        _CFG.stage3.num_channels, _CFG.stage2.num_channels)), "Your transition2 has 2 entries; the checkpoint's has 3"),
    "stage4 built from cfg.stage3": (_net_rebuilt(stage4=lambda: make_stage(_CFG.stage3, _CFG.stage4.num_channels)),
                                     "Your stage4.0 has 3 branches; the checkpoint's has 4"),
    "stage3 built from cfg.stage4": (_net_rebuilt(stage3=lambda: make_stage(_CFG.stage4, _CFG.stage4.num_channels)),
                                     "Your stage3.0 has 4 branches; the checkpoint's has 3"),
    "transition2 built from layer1's channels": (_net_rebuilt(transition2=lambda: make_transition(
        [128], _CFG.stage3.num_channels)), "The checkpoint's transition2.0 is None"),
    "last_layer named head": (_net_renamed("last_layer", "head"), "Your head holds what the checkpoint calls last_layer"),
    "the stem as a module": (_net_stem_module, "The stem has no module of its own"),
    "conv1 without padding": (_net_rebuilt(conv1=lambda: nn.Conv2d(3, 64, 3, 2, bias=False)),
                              "yours has padding=(0, 0), the official one padding=(1, 1)"),
    "every transition a plain list": (_net_transitions_plain_lists, "self.transition1, self.transition2 and "
                                      "self.transition3 of your whole network are plain Python lists"),
    # right at the checkpoint's False, which is also F.interpolate's default: wrong once built with True
    "align_corners not passed to the stages": (_NetStagesAtFalse, "somewhere the setting is not passed on"),
}


capstone_network = NetworkExercise(
    name="capstone_network", lesson="11", prefix="", what="MyHRNet",
    question=N_("Assemble `class MyHRNet(nn.Module)` (`__init__(self, num_classes=4, align_corners=False)`): the stem "
                "(conv1, bn1, conv2, bn2, relu), layer1, transition1-3, stage2-4 and last_layer, with the official "
                "attribute names, for W18-small-v1; forward(x) returns the logits (B, 4, H/4, W/4). The check loads "
                "the shipped checkpoint (trained on the course's shapes data set) strictly into it and compares it "
                "with the package's model, module by module; last, it builds it with align_corners=True and compares "
                "its logits with the package's model built the same way."),
    reference=MyHRNet,
    aligned=((4, True), N_("Keep it, self.align_corners = align_corners, and pass it to make_stage for every stage "
                           "and to v2_head.")),
    hints=[N_("Start from the key names: `ex.checkpoint_outline()` lists the checkpoint's modules; your attributes "
              "must be named exactly so (conv1, bn1, ..., layer1, transition1, stage2, ..., last_layer)."),
           N_("Channels: layer1 gives 32 x 4 = 128; transition1 maps [128] to [16, 32], transition2 [16, 32] to "
              "[16, 32, 64], transition3 [16, 32, 64] to [16, 32, 64, 128]; last_layer works on 16+32+64+128 = 240."),
           N_("forward: stem, layer1, then three times transition_forward + stage, then v2_head with "
              "self.align_corners (False for the shipped checkpoint).")],
    solution_text=_solution(make_layer, make_fuse_op, HighResolutionModule, make_transition, transition_forward,
                            make_stage, v2_head, MyHRNet),
    wrong_answers=[*NETWORK_MISTAKES.values(), (nn.Linear(3, 3), "none of the checkpoint's 435 keys"),
                   (lambda: 1, "Your MyHRNet returned an int"),
                   (_NetWithoutAlignCorners, "as MyHRNet(4, True), and yours does not take that")],
)

EXERCISES = [layer1, hr_module, stage, head, capstone_network]


# ====================================================================== for the notebook


def checkpoint_outline() -> str:
    """The checkpoint's modules as a learner builds them: top-level names, with their key counts."""
    keys = list(capstone.checkpoint()["model"])
    groups: dict[str, int] = {}
    for key in keys:
        groups[capstone._group_name(key)] = groups.get(capstone._group_name(key), 0) + 1
    lines = [_("{keys} keys; align_corners={align}", keys=len(keys), align=capstone.checkpoint_align_corners())]
    lines += [f"  {name:28s} {count:3d} " + (_("key") if count == 1 else _("keys")) for name, count in groups.items()]
    return "\n".join(lines)


def show_segmentation(answer, index: int = 0):
    """The learner's segmentation of a held-out scene beside the scene and its true mask; if the network
    does not load yet, say what to do instead of failing."""
    import matplotlib.pyplot as plt

    from ..assets import to_image
    from ..data import colorize
    from ..viz import (
        class_legend,
        language,  # a figure's words: Chinese only where a CJK font can draw them
    )

    result = capstone_network.check(answer)
    if not result.passed:
        print(_("Your network does not load and match yet, so there is nothing of yours to show. The check says:")
              + "\n" + wrap(result.message, 100, "  ", "  ")
              + "\n" + _("Fix that, run the check cell again, then this one."))
        return None
    net = capstone_network.build(answer).eval()
    net.load_state_dict(capstone.checkpoint()["model"], strict=True)
    images, masks = capstone.scenes()
    with torch.no_grad():
        size = images.shape[-2:]
        mine = F.interpolate(net(images[index:index + 1]), size=size, mode="bilinear",
                             align_corners=capstone.checkpoint_align_corners()).argmax(1)[0]
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8))
    titles = (language._("held-out scene"), language._("true mask"), language._("your HRNet's segmentation"))
    for ax, picture, title in zip(axes, (to_image(images[index]), colorize(masks[index]), colorize(mine)), titles):
        ax.imshow(picture)
        ax.set_title(title, fontsize=9, family=language.font_family())
        ax.axis("off")
    fig.tight_layout()
    class_legend(fig, fontsize=8)
    plt.show()
    return fig
