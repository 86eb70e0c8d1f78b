"""Lesson 06, the heads: the HRNetV2 head by hand, the wider head of the learner's modified
seg_hrnet.py, what multi_scale_output leaves of the last module, checkpoint keys, and which loss."""
from __future__ import annotations

import itertools
from functools import cache, partial

import torch
import torch.nn.functional as F
from torch import nn

from ..config import get_config
from ..heads import HRNetSegmentation
from ..i18n import N_, _
from ..inspect import meta_model
from ._answers import as_ints, as_top_level_names, random_weights, too_deep
from ._kinds import Case, ChoiceExercise, FunctionExercise, Mistake, ValueExercise

# (batch, height, width): sizes divisible by 32, then sizes where fixed factors fail.
HEAD_SIZES = [(1, 64, 64), (2, 64, 96), (1, 36, 52), (1, 40, 72)]


@cache
def _head_cases() -> list[Case]:
    """A small segmentation model (5 classes) with weights that make every slip show; its features
    and logits for each size (the backbone runs once per size)."""
    torch.manual_seed(0)
    model = random_weights(HRNetSegmentation("w18_small_v1", num_classes=5), 0)
    cases = []
    for index, (batch, height, width) in enumerate(HEAD_SIZES):
        x = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(10 + index))
        features = model.forward_features(x)
        sizes = _(", ").join("x".join(map(str, f.shape[-2:])) for f in features)
        where = N_("a {height}x{width} input (branches {sizes})", height=height, width=width, sizes=sizes)
        cases.append(Case(features, model.last_layer, expected=model(x), where=where))
    return cases


def _v2_head(features, last_layer):
    """Every branch resized to branch 0's exact size (bilinear, align_corners=True), concatenated, classified."""
    size = features[0].shape[-2:]
    up = [F.interpolate(f, size=size, mode="bilinear", align_corners=True) for f in features[1:]]
    return last_layer(torch.cat([features[0]] + up, dim=1))


def _head(features, last_layer, *, scale=False, order=1, dim=1, classify=True, join=None, first=0, wh=False,
          maps_kept=None, full=False, **resize):
    """What a slip computes: other resizing, a scale factor, the size as (width, height), the branches' order, the
    cat's dim (or ``join`` instead of the cat), branch 0 left out (``first=1``), no last_layer."""
    resize = {"mode": "bilinear", "align_corners": True, **resize}
    size = features[0].shape if full else features[0].shape[-2:][::-1] if wh else features[0].shape[-2:]
    up = [F.interpolate(f, **({"scale_factor": 2 ** b} if scale else {"size": size}), **resize)
          for b, f in enumerate(features[1:], start=1)]
    maps = ([features[0]] + up)[first:maps_kept][::order]
    concat = join(maps) if join else torch.cat(maps, dim=dim)
    return last_layer(concat) if classify else concat


def _branch_order(case, got, want) -> tuple[int, ...] | None:
    """The order in which the answer concatenated the four maps, if it is another than 0, 1, 2, 3 (found by trying
    each: 24 small 1x1 convs). The full reversal has its own message."""
    features, last_layer = case.args
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        return None
    maps = [features[0]] + [F.interpolate(f, size=features[0].shape[-2:], mode="bilinear", align_corners=True)
                            for f in features[1:]]
    for order in itertools.permutations(range(len(maps))):
        if order != tuple(sorted(order)) and torch.allclose(
                last_layer(torch.cat([maps[i] for i in order], dim=1)), got, atol=1e-4, rtol=1e-4):
            return order
    return None


def _branch0_last(features, last_layer):
    """A catalogued slip: the three upsampled maps first, branch 0 last."""
    up = [F.interpolate(f, size=features[0].shape[-2:], mode="bilinear", align_corners=True) for f in features[1:]]
    return last_layer(torch.cat(up + [features[0]], dim=1))


_HEAD_SLIPS = [  # (name, what the slip changes in _head, its message)
    ("align_false", {"align_corners": False}, N_(
        "Your numbers match bilinear upsampling with align_corners=False; the segmentation model (like the "
        "learner's modified seg_hrnet.py, ALIGN_CORNERS = True) uses align_corners=True.")),
    ("nearest", {"mode": "nearest", "align_corners": None}, N_(
        "Your numbers match nearest-neighbour upsampling; the HRNetV2 head upsamples bilinearly "
        "(mode='bilinear'; align_corners=True, as the segmentation model here is built).")),
    ("reversed", {"order": -1}, N_("You concatenated the branches in reverse order; last_layer's weights expect "
                                   "branch 0 first (C channels), then 2C, 4C, 8C.")),
    ("scale_factor", {"scale": True}, N_(
        "The upsampled maps do not all have branch 0's size, so torch.cat fails: a fixed scale factor (2, 4, 8) "
        "misses unless every halving was exact (multiples of 32 are safe). Resize to size=features[0].shape[-2:].")),
    ("dim0", {"dim": 0}, N_("Concatenate along the channels, dim=1, to get C + 2C + 4C + 8C channels for last_layer.")),
    ("dim_last", {"dim": -1}, N_("Concatenate along the channels, dim=1, to get C + 2C + 4C + 8C channels for last_layer.")),
    ("sum", {"join": sum}, N_("HRNetV2 concatenates the four maps (torch.cat(..., dim=1)); it does not add them: "
                               "last_layer expects C + 2C + 4C + 8C channels.")),
    *[(name, {"mode": "bicubic", "align_corners": align}, N_(
        "Your numbers match bicubic upsampling; the HRNetV2 head upsamples bilinearly (mode='bilinear', "
        "align_corners=True).")) for name, align in (("bicubic", True), ("bicubic_false", False))],
    ("width_height", {"wh": True}, N_(
        "You gave F.interpolate the size as (width, height); it takes (height, width), the order "
        "features[0].shape[-2:] gives.")),
    ("branch0_only", {"maps_kept": 1}, N_(
        "last_layer takes the four maps concatenated (C + 2C + 4C + 8C channels) and is applied once; it got branch "
        "0 alone, what the pose head reads. Concatenate first, torch.cat(..., dim=1), then apply last_layer.")),
    ("three_branches", {"maps_kept": 3}, N_(
        "You left out branch 3: your concatenation has C + 2C + 4C channels, and last_layer expects C + 2C + 4C + "
        "8C. Resize and concatenate all four maps.")),
    ("stack", {"join": partial(torch.stack, dim=1)}, N_(
        "torch.stack puts the maps along a new axis and needs them all the same shape; concatenate the channels "
        "instead: torch.cat(maps, dim=1).")),
    ("full_shape", {"full": True}, N_(
        "size= takes (height, width) only: use features[0].shape[-2:], not the whole shape with its batch and "
        "channels.")),
    ("no_branch0", {"first": 1}, N_(
        "You left out branch 0: last_layer expects C + 2C + 4C + 8C channels, and your concatenation has only "
        "2C + 4C + 8C. Put features[0] first, as it is, then the three upsampled maps.")),
]

v2_head = FunctionExercise(
    name="v2_head", lesson="06", fn_name="v2_head",
    question=N_("Write `v2_head(features, last_layer)`: the HRNetV2 segmentation head. `features` is the backbone's "
                "list of four maps (finest first), `last_layer` the model's 1x1 conv-BN-ReLU-classifier. Return the "
                "logits (B, classes, H/4, W/4), as HRNetSegmentation does. Resize with mode='bilinear', "
                "align_corners=True, as that model is built here (the package's default; the HRNetV2-W48 Cityscapes "
                "files of the official HRNet-OCR branch set False: lesson 08, 4.3)."),
    reference=_v2_head, cases=_head_cases, returns=N_("the logits tensor"), against="HRNetSegmentation", trains=True,
    atol=1e-4, rtol=1e-4,
    mistakes=[Mistake(name, message, like=partial(_head, **change)) for name, change, message in _HEAD_SLIPS] + [
        Mistake("no_last_layer", lambda case, got, want: _(
            "You returned the concatenation ({got} channels); pass it through last_layer to get the {classes} "
            "class scores.", got=got.shape[1], classes=want.shape[1]),
            fragment="pass it through last_layer", like=partial(_head, classify=False))] + [
        Mistake("softmax", N_("Return last_layer's logits as they are: no softmax (the loss applies log_softmax "
                              "itself; see the logsoftmax_loss exercise)."), like=like)
        for like in (lambda f, last: _v2_head(f, last).softmax(1),
                     lambda f, last: _v2_head(f, last).log_softmax(1))] + [
        Mistake("sigmoid", N_("Return last_layer's logits as they are: no sigmoid (one pixel has one class, so the "
                              "loss applies log_softmax over the classes itself)."),
                like=lambda f, last: _v2_head(f, last).sigmoid()),
        Mistake("branch_order", lambda case, got, want: _(
            "Your concatenation has the branches in the order {order}; last_layer's weights expect 0, 1, 2, 3 "
            "(branch 0 first, with C channels, then 2C, 4C, 8C).",
            order=_(", ").join(map(str, _branch_order(case, got, want)))),
            when=lambda case, got, want: _branch_order(case, got, want) is not None)],
    success=lambda n: _("Your head matches HRNetSegmentation on {n} inputs, including sizes that are not multiples "
                        "of 32 (resizing to branch 0's exact size is what makes any size work).", n=n),
    hints=[N_("Resize features[1], [2], [3] to features[0]'s height and width with F.interpolate, then torch.cat "
              "along dim=1."),
           N_("Use size=features[0].shape[-2:] (not a scale factor: a side that did not halve exactly does not "
              "double back to it), mode='bilinear', align_corners=True, as the segmentation model is built."),
           N_("Finally apply last_layer to the concatenation.")],
    wrong_answers=[(nn.Identity(), "Pass your function itself"),
                   # the stage outputs are already non-negative: relu_() changes no value, yet writes into them
                   (lambda features, last_layer: _v2_head([features[0].relu_(), *features[1:]], last_layer),
                    "changed features[0] in place"),
                   (_branch0_last, "in the order 1, 2, 3, 0")],
)

C48, STEM = get_config("w48").width, 64  # the modified file's config.stem_width (the official stem has 64 channels)
OFFICIAL, MODIFIED = 15 * C48, 15 * C48 + STEM

last_layer_channels = ValueExercise(
    name="last_layer_channels", lesson="06",
    question=N_("How many input channels does `last_layer`'s first conv have for w48: in the official head, and in "
                "the learner's modified seg_hrnet.py with `upscale=2` (stem_width = 64)? Answer (official, modified)."),
    read=lambda a: as_ints(a, 2, N_("(official, modified with upscale=2)"), "(100, 120)"),
    reference=(OFFICIAL, MODIFIED),
    success=N_("{official} = 15 x {c} for the official head; the modified file's upscale concatenates the stem's "
               "1/2-resolution map too ({stem} channels): {modified}. Upsampling changes sizes, not channels.",
               official=OFFICIAL, c=C48, stem=STEM, modified=MODIFIED),
    rules=[(lambda got, want: got == want[::-1], N_(
               "You swapped them: the official head comes first, then the modified one, (official, modified).")),
           (lambda got, want: got[0] == 8 * C48, N_(
               "{n} is branch 3 alone; last_layer reads the concatenation of all four branches.", n=8 * C48)),
           (lambda got, want: got[0] == 16 * C48, N_("The four branches are not equally wide: C, 2C, 4C and 8C.")),
           (lambda got, want: got[0] != OFFICIAL, lambda got, want: _(
               "The official last_layer reads the concatenation of the four stage-4 branches of w48: C + 2C + 4C + 8C "
               "with C = {c}; you gave {got}.", c=C48, got=got[0])),
           (lambda got, want: got[1] == 2 * OFFICIAL, N_(
               "upscale=2 doubles the height and width of the map last_layer reads, not its channels; what adds "
               "channels is the stem map (x_stem) the modified file puts in the list.")),
           (lambda got, want: got[1] == OFFICIAL, N_(
               "With upscale > 1 the modified file also concatenates x_stem, the output of conv1/bn1/relu: "
               "`self.last_inp_channels = int(np.sum(pre_stage_channels) + config.stem_width)`.")),
           (lambda got, want: got[1] == OFFICIAL + 256, N_(
               "x_stem is taken right after conv1, bn1 and relu (stem_width channels), before conv2 and layer1's 256."))],
    otherwise=lambda got, want: _("Not {got}: the modified file's last_inp_channels is the sum of the stage-4 "
                                  "channels plus stem_width ({stem}).", got=got[1], stem=STEM),
    hints=[N_("Official: the four stage-4 branches of w48 carry 48, 96, 192 and 384 channels."),
           N_("The modified file, with upscale > 1: "
              "`last_inp_channels = int(np.sum(pre_stage_channels) + config.stem_width)`.")],
    solution_text=N_("`answer = (720, 784)`: 48 + 96 + 192 + 384 = 720, plus the 64 channels of x_stem = 784."),
    wrong_answers=[(("720", "784"), "without quotes"), ((720, 1440), "not its channels"), ((720, 720), "x_stem"), ((384, 448), "branch 3 alone"),
                   ((768, 832), "C, 2C, 4C and 8C"), ((720, 976), "before conv2 and layer1"), (720, "Give two whole numbers"),
                   ((720.5, 784), "whole number"), ((700, 784), "you gave 700"), ((720, 800), "Not 800"),
                   ((MODIFIED, OFFICIAL), "swapped")],
)


@cache
def _pose_rows() -> tuple[int, int]:
    pose = meta_model("w32", head="pose")
    return len(pose.stage4[0].fuse_layers), len(pose.stage4[-1].fuse_layers)


pose_fuse_rows = ValueExercise(
    name="pose_fuse_rows", lesson="06",
    question=N_("In the pose model (HRNetV1) for w32, how many rows do `stage4[0].fuse_layers` and "
                "`stage4[-1].fuse_layers` have? Answer (rows of the first module, rows of the last module)."),
    read=lambda a: as_ints(a, 2, N_("(rows of stage4[0], rows of stage4[-1])"), "(2, 3)"),
    reference=_pose_rows,
    success=lambda got, want: _(
        "{want}: only the last module is built with multi_scale_output=False, so its outer loop "
        "`for i in range(num_branches if self.multi_scale_output else 1)` builds row 0 alone: everything fuses "
        "into the 1/4 branch, the only one the pose head reads.", want=want),
    mistakes=lambda: {  # from the right rows (first, last) = (4, 1)
        _pose_rows()[::-1]: N_(
            "You swapped them: the first module still feeds four branches; it is the last one that drops rows."),
        (_pose_rows()[0],) * 2: N_(
            "The pose model builds the last module of stage 4 with multi_scale_output=False: it keeps row 0 only."),
        (_pose_rows()[1],) * 2: N_(
            "Only the last module drops outputs (`if not multi_scale_output and i == num_modules - 1`); the earlier "
            "ones must feed all four branches of the next module.")},
    rules=[(lambda got, want: got[0] == 3, N_("Stage 4 has 4 branches, so a full fuse matrix has rows i = 0, 1, 2, 3.")),
           (lambda got, want: got[0] == want[0] ** 2, N_(
               "You counted every entry (rows x columns); a row is one fuse_layers[i], a list of entries: count "
               "len(fuse_layers).")),
           (lambda got, want: got[1] == 0, N_(
               "The last module still fuses: its row 0 sums every branch into the 1/4 branch, the one the pose head "
               "reads. multi_scale_output=False keeps that row and drops the others.")),
           (lambda got, want: got[0] != want[0], N_(
               "Stage 4 has four branches, and stage4[0] is a full module: one fuse row per output branch, so four."))],
    # what the rules leave: stage4[0]'s 4 right, the last module's rows miscounted (neither 0 nor 4)
    otherwise=lambda got, want: _(
        "stage4[0] is right. The last module is built with multi_scale_output=False, and `for i in "
        "range(num_branches if self.multi_scale_output else 1)` then builds one row, row 0, not {n}.", n=got[1]),
    hints=[N_("A row of fuse_layers is one output branch: fuse_layers[i] holds what flows into branch i."),
           N_("The pose head reads branch 0 only, so the last module need not compute the other outputs.")],
    solution_text=N_("`answer = (4, 1)`: stage 4 has 4 branches; its last module keeps row 0 only."),
    wrong_answers=[((3, 1), "rows i = 0, 1, 2, 3"), ((4, 2), "builds one row, row 0, not 2"),
                   ((4, 3), "stage4[0] is right"), ("4, 1", "two whole numbers"),
                   ((16, 4), "count len(fuse_layers)"), ((4, 0), "The last module still fuses"),
                   ((2, 1), "so four")],
)


@cache
def _parts(head: str) -> frozenset[str]:
    return frozenset(k.split(".")[0] for k in meta_model("w18", head=head).state_dict())


def _unexpected() -> frozenset[str]:
    """The top-level parts of a classification checkpoint that a segmentation model has no place for."""
    return _parts("classification") - _parts("segmentation")


@cache
def _keys(head: str) -> tuple[str, ...]:
    return tuple(meta_model("w18", head=head).state_dict())


def _inner_part(got, want) -> str | None:
    return too_deep(got - want, _keys("segmentation"))


def _named(names) -> str:
    return _(", ").join(sorted(names))


missing_head_keys = ValueExercise(
    name="missing_head_keys", lesson="06",
    question=N_("You load a classification (ImageNet) checkpoint into a segmentation model of the same variant. "
                "Which top-level parts of the segmentation model get no weights from it? Answer a list of names "
                "such as ['conv1']."),
    read=partial(as_top_level_names, example="['conv1', 'layer1']"),
    reference=lambda: sorted(_parts("segmentation") - _parts("classification")),
    success=N_("Only last_layer: the backbone keys (conv1 ... stage4) are the same in both models, so an ImageNet "
               "checkpoint fills them all; last_layer starts from its initialisation. The checkpoint's "
               "incre_modules, downsamp_modules, final_layer and classifier are unexpected keys, left unused."),
    rules=[(lambda got, want: got & _unexpected(), lambda got, want: _(
               "{names}: in the classification checkpoint but not in the segmentation model, so unexpected keys "
               "(left over), not missing ones.", names=_named(got & _unexpected()))),
           (lambda got, want: got & _parts("classification"), lambda got, want: _(
               "{names}: the backbone has the same keys in every head; the checkpoint fills it.",
               names=_named(got & _parts("classification")))),
           (lambda got, want: not got,
            N_("The segmentation model has a part the classification model does not: which?")),
           (_inner_part, _inner_part)],  # the message, or None: test and message at once
    otherwise=lambda got, want: _(
        "The segmentation model has no top-level part named {names}; compare "
        "`{{k.split('.')[0] for k in model.state_dict()}}` of the two models.", names=_named(map(repr, got - want))),
    hints=[N_("The backbone parts (conv1, bn1, ..., stage4) are the same in every head."),
           N_("List the top-level children of each: `[name for name, _ in model.named_children()]`.")],
    solution_text=N_("`answer = ['last_layer']`: the only part of the segmentation model that is not in the classifier."),
    wrong_answers=[(["last_layer", "classifier"], "unexpected keys"), (["incre_modules"], "not missing ones"),
                   (["stage4", "last_layer"], "same keys in every head"), ([], "which?"),
                   (["head"], "no top-level part"), (42, "list of strings"),
                   (["last_layer", "fuse_layers"], "fuse_layers is inside stage2"),
                   (["last_layer.0.weight"], "last_layer.0.weight is a path inside last_layer")],
)

logsoftmax_loss = ChoiceExercise(
    name="logsoftmax_loss", lesson="06",
    question=N_("The last_layer of the learner's modified seg_hrnet.py ends with nn.LogSoftmax(dim=1); ours, like the "
                "official code, returns logits. Both answer at 1/4, and up(...) resizes them (bilinear) to the label's "
                "size, as the official criterion does. Which line gives the official cross-entropy loss for the "
                "modified file's model?"),
    choices={"a": "nn.CrossEntropyLoss()(up(modified_output), target)", "b": "nn.NLLLoss()(up(modified_output), target)",
             "c": "nn.NLLLoss()(up(our_logits), target)", "d": "nn.CrossEntropyLoss()(up(modified_output).exp(), target)"},
    answer="a",
    why={"b": N_("The textbook pairing, but it holds only at the label's size. The resize mixes neighbouring pixels' "
                 "log-probabilities; wherever neighbours disagree their exponentials then sum to less than 1, and "
                 "NLLLoss counts that shortfall as loss (the cell above measures how much)."),
         "c": N_("Our model (like the official one) returns raw logits; NLLLoss just takes -logit[target], which "
                 "is not a loss (it falls without bound as the logit grows)."),
         "d": N_("exp() turns log-probabilities into probabilities in [0, 1]; CrossEntropyLoss treats them as logits "
                 "and softmaxes again: a squashed loss with tiny gradients.")},
    success=N_("a: CrossEntropyLoss takes a fresh log_softmax of the resized log-probabilities, and that equals the "
               "official loss exactly: logits and log-probabilities differ at each pixel by one number shared by all "
               "classes, and the resize keeps it shared. The second log_softmax is what makes it right; NLLLoss would "
               "do only where no resize comes between the model and the loss."),
    hints=[N_("CrossEntropyLoss(z, t) = NLLLoss(log_softmax(z), t): whatever its input is, it takes its log_softmax "
              "first."),
           N_("Are the resized log-probabilities still log-probabilities? Sum their exp() over the classes at a "
              "pixel on a boundary (the cell above does).")],
    solution_text=N_("`answer = 'a'`: after the resize only a fresh log_softmax gives log-probabilities again; "
                     "CrossEntropyLoss applies it, and the result equals the official loss."),
    wrong_answers=[("e", "one letter"), (2, "one letter"), ("b", "only at the label's size")],
)

EXERCISES = [v2_head, last_layer_channels, pose_fuse_rows, missing_head_keys, logsoftmax_loss]
