"""Lesson 06, the heads: the HRNetV2 head by hand, the seed's wider head, what
multi_scale_output leaves of the last module, checkpoint keys, and which loss."""
from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from ..config import get_config
from ..heads import HRNetPose, HRNetSegmentation
from ._answers import as_choice, as_function, as_int, as_strings, choices_text
from ._base import Exercise, Wrong

# ---------------------------------------------------------------- helpers


def _as_pair(answer, what: str, example: str) -> tuple[int, int]:
    """Two whole numbers; unlike as_ints, 720.0 counts (a channel count computed with / is a float)."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Wrong(f"Give two whole numbers, {what}, e.g. {example}; you gave {type(answer).__name__} {answer!r}.")
    return as_int(answer[0], "each number", floats=True), as_int(answer[1], "each number", floats=True)


def _as_names(answer) -> set[str]:
    """A set of top-level names from a string, or a list/tuple/set of strings ('last_layer.*' allowed)."""
    answer = as_strings(answer, "the names", "['conv1', 'layer1']")
    names = {a.removesuffix(".*").removesuffix(".").split(".")[0] for a in answer}
    names.discard("")
    return names


# ------------------------------------------------------- 1. the HRNetV2 head by hand

HEAD_VARIANT = "w18_small_v1"
HEAD_CLASSES = 5
# (batch, height, width): a size divisible by 32, then sizes where fixed factors fail.
HEAD_SIZES = [(1, 64, 64), (2, 64, 96), (1, 36, 52), (1, 40, 72)]


@cache
def _segmentation_model() -> HRNetSegmentation:
    """A small segmentation model with weights and BN statistics of size 1, so every slip shows in the numbers
    (the official N(0, 0.001) initialisation would make all outputs nearly equal)."""
    torch.manual_seed(0)
    model = HRNetSegmentation(HEAD_VARIANT, num_classes=HEAD_CLASSES)
    generator = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
    return model.eval()


@cache
def _head_case(index: int) -> tuple:
    """((height, width), features, the model's logits) for HEAD_SIZES[index]: the backbone runs once per size."""
    model = _segmentation_model()
    batch, height, width = HEAD_SIZES[index]
    x = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(10 + index))
    with torch.no_grad():
        return (height, width), tuple(model.forward_features(x)), model(x)


def _head_cases():
    """The cases one by one, computed when first needed (an unsolved cell answers at once)."""
    for index in range(len(HEAD_SIZES)):
        yield _head_case(index)


def _reference_v2_head(features, last_layer):
    """Every branch bilinearly resized to branch 0's size, concatenated, then last_layer."""
    size = features[0].shape[-2:]
    resized = [features[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=True) for f in features[1:]]
    return last_layer(torch.cat(resized, dim=1))


def _v2_mistakes(features, last_layer) -> dict[str, torch.Tensor]:
    """What typical slips compute, to name the one the learner made."""
    size = features[0].shape[-2:]

    def head(mode, align_corners=None, order=1):
        resized = [features[0]] + [F.interpolate(f, size=size, mode=mode, align_corners=align_corners) for f in features[1:]]
        return last_layer(torch.cat(resized[::order], dim=1))

    return {
        "Your numbers match bilinear upsampling with align_corners=False; the segmentation model (like the "
        "seed's code, ALIGN_CORNERS = True) uses align_corners=True.": head("bilinear", False),
        "Your numbers match nearest-neighbour upsampling; the HRNetV2 head upsamples bilinearly "
        "(mode='bilinear', align_corners=True).": head("nearest"),
        "You concatenated the branches in reverse order; last_layer's weights expect branch 0 first "
        "(C channels), then 2C, 4C, 8C.": head("bilinear", True, -1),
    }


def _check_v2_head(fn) -> str:
    as_function(fn, "v2_head")
    model = _segmentation_model()
    concat_channels = sum(model.out_channels)
    with torch.no_grad():
        for (height, width), features, expected in _head_cases():
            where = f"a {height}x{width} input (branches {', '.join('x'.join(map(str, f.shape[-2:])) for f in features)})"
            try:
                got = fn(list(features), model.last_layer)
            except NotImplementedError:
                raise
            except RuntimeError as error:
                text = str(error)
                if "Sizes of tensors must match except in dimension 1" in text:
                    raise Wrong(f"On {where} the upsampled maps do not all have branch 0's size, so torch.cat fails: "
                                "a fixed scale factor (2, 4, 8) misses when the sides are not multiples of 32. "
                                "Resize to size=features[0].shape[-2:].") from None
                if "channels" in text or "Sizes of tensors must match" in text:
                    raise Wrong(f"On {where}: {text.splitlines()[0]} Concatenate along the channels, dim=1, to "
                                f"get {concat_channels} = C + 2C + 4C + 8C channels for last_layer.") from None
                raise
            if not isinstance(got, torch.Tensor):
                raise Wrong(f"Your function returned a {type(got).__name__}; return the logits tensor.")
            if got.dim() == 4 and got.shape[1] == concat_channels:
                raise Wrong(f"You returned the concatenation ({concat_channels} channels); pass it through last_layer "
                            f"to get the {HEAD_CLASSES} class scores.")
            if got.shape != expected.shape:
                raise Wrong(f"On {where} your logits have shape {tuple(got.shape)}; HRNetSegmentation gives "
                            f"{tuple(expected.shape)} (B, classes, H/4, W/4).")
            if torch.allclose(got, expected, atol=1e-4, rtol=1e-4):
                continue
            for message, value in _v2_mistakes(list(features), model.last_layer).items():
                if value.shape == got.shape and torch.allclose(got, value, atol=1e-4, rtol=1e-4):
                    raise Wrong(message)
            diff = (got - expected).abs().max().item()
            raise Wrong(f"On {where} your logits differ from HRNetSegmentation's (largest difference {diff:.3g}).")
    return (f"Your head matches HRNetSegmentation on {len(HEAD_SIZES)} inputs, including sizes that are not "
            "multiples of 32 (resizing to branch 0's exact size is what makes any size work).")


def _wrong_align_false(features, last_layer):
    size = features[0].shape[-2:]
    return last_layer(torch.cat([features[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=False)
                                                  for f in features[1:]], dim=1))


def _wrong_nearest(features, last_layer):
    size = features[0].shape[-2:]
    return last_layer(torch.cat([features[0]] + [F.interpolate(f, size=size, mode="nearest") for f in features[1:]], dim=1))


def _wrong_scale_factor(features, last_layer):
    resized = [features[0]] + [F.interpolate(f, scale_factor=2 ** i, mode="bilinear", align_corners=True)
                               for i, f in enumerate(features) if i > 0]
    return last_layer(torch.cat(resized, dim=1))


def _wrong_reversed(features, last_layer):
    size = features[0].shape[-2:]
    resized = [features[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=True) for f in features[1:]]
    return last_layer(torch.cat(resized[::-1], dim=1))


def _wrong_no_last_layer(features, last_layer):
    size = features[0].shape[-2:]
    return torch.cat([features[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=True)
                                      for f in features[1:]], dim=1)


def _wrong_dim0(features, last_layer):
    size = features[0].shape[-2:]
    return last_layer(torch.cat([features[0]] + [F.interpolate(f, size=size, mode="bilinear", align_corners=True)
                                                 for f in features[1:]], dim=0))


v2_head = Exercise(
    name="v2_head",
    lesson="06",
    question=("Write `v2_head(features, last_layer)`: the HRNetV2 segmentation head. `features` is the backbone's "
              "list of four maps (finest first), `last_layer` the model's 1x1 conv-BN-ReLU-classifier. Return the "
              "logits (B, classes, H/4, W/4), as HRNetSegmentation does."),
    checker=_check_v2_head,
    reference=_reference_v2_head,
    hints=["Resize features[1], [2], [3] to features[0]'s height and width with F.interpolate, then torch.cat along dim=1.",
           "Use size=features[0].shape[-2:] (not a scale factor: sides that are not multiples of 32 do not "
           "double exactly), mode='bilinear', align_corners=True, as the segmentation model is built.",
           "Finally apply last_layer to the concatenation."],
    solution_text=(
        "```python\ndef v2_head(features, last_layer):\n"
        "    size = features[0].shape[-2:]\n"
        "    up = [F.interpolate(f, size=size, mode='bilinear', align_corners=True) for f in features[1:]]\n"
        "    return last_layer(torch.cat([features[0]] + up, dim=1))\n```"
    ),
    wrong_answers=[
        (_wrong_align_false, "align_corners=True"),
        (_wrong_nearest, "nearest"),
        (_wrong_scale_factor, "multiples of 32"),
        (_wrong_reversed, "reverse order"),
        (_wrong_no_last_layer, "pass it through last_layer"),
        (_wrong_dim0, "dim=1"),
        (nn.Identity(), "Pass your function itself"),
    ],
)

# ------------------------------------------- 2. last_layer's input channels, official and seed

CHANNELS_VARIANT = "w48"
SEED_STEM_WIDTH = 64  # the seed's config.stem_width (the official stem has 64 channels)


def _check_last_layer_channels(answer) -> str:
    official, seed = _as_pair(answer, "(official, seed with upscale=2)", "(100, 120)")
    c = get_config(CHANNELS_VARIANT).width
    want_official, want_seed = 15 * c, 15 * c + SEED_STEM_WIDTH
    if (official, seed) == (want_official, want_seed):
        return (f"{want_official} = 15 x {c} for the official head; the seed's upscale concatenates the stem's "
                f"1/2-resolution map too ({SEED_STEM_WIDTH} channels): {want_seed}. Upsampling changes sizes, not channels.")
    if official != want_official:
        if official == 8 * c:
            raise Wrong(f"{8 * c} is branch 3 alone; last_layer reads the concatenation of all four branches.")
        if official == 4 * c * 4:
            raise Wrong("The four branches are not equally wide: C, 2C, 4C and 8C.")
        raise Wrong(f"The official last_layer reads the concatenation of the four stage-4 branches of "
                    f"{CHANNELS_VARIANT}: C + 2C + 4C + 8C with C = {c}, not {official}.")
    if seed == 2 * want_official:
        raise Wrong("upscale=2 doubles the height and width of the map last_layer reads, not its channels; what "
                    "adds channels is the stem map (x_stem) the seed puts in the list.")
    if seed == want_official:
        raise Wrong("With upscale > 1 the seed also concatenates x_stem, the output of conv1/bn1/relu: "
                    "`self.last_inp_channels = int(np.sum(pre_stage_channels) + config.stem_width)`.")
    if seed == want_official + 256:
        raise Wrong("x_stem is taken right after conv1 (stem_width channels), before layer1's 256.")
    raise Wrong(f"Not {seed}: the seed's last_inp_channels is the sum of the stage-4 channels plus stem_width ({SEED_STEM_WIDTH}).")


last_layer_channels = Exercise(
    name="last_layer_channels",
    lesson="06",
    question=(f"How many input channels does `last_layer`'s first conv have for {CHANNELS_VARIANT}: in the official "
              "head, and in the seed's code with `upscale=2` (stem_width = 64)? Answer (official, seed)."),
    checker=_check_last_layer_channels,
    reference=(720, 784),
    hints=["Official: the four stage-4 branches of w48 carry 48, 96, 192 and 384 channels.",
           "The seed, with upscale > 1: `last_inp_channels = int(np.sum(pre_stage_channels) + config.stem_width)`."],
    solution_text="`answer = (720, 784)`: 48 + 96 + 192 + 384 = 720, plus the 64 channels of x_stem = 784.",
    wrong_answers=[((720, 1440), "not its channels"), ((720, 720), "x_stem"), ((384, 448), "branch 3 alone"),
                   ((768, 832), "C, 2C, 4C and 8C"), ((720, 976), "before layer1"), (720, "Give two whole numbers"),
                   ((720.5, 784), "whole number")],
)

# ---------------------------------------- 3. multi_scale_output: the rows of the fuse matrix

POSE_VARIANT = "w32"


@cache
def _pose_rows(variant: str) -> tuple[int, int]:
    with torch.device("meta"):
        pose = HRNetPose(variant)
    return len(pose.stage4[0].fuse_layers), len(pose.stage4[-1].fuse_layers)


def _check_pose_fuse_rows(answer) -> str:
    first, last = _as_pair(answer, "(rows of stage4[0], rows of stage4[-1])", "(2, 3)")
    want_first, want_last = _pose_rows(POSE_VARIANT)
    if (first, last) == (want_first, want_last):
        return (f"({want_first}, {want_last}): only the last module is built with multi_scale_output=False, so its "
                "outer loop `for i in range(num_branches if self.multi_scale_output else 1)` builds row 0 alone: "
                "everything fuses into the 1/4 branch, the only one the pose head reads.")
    if (first, last) == (want_last, want_first):
        raise Wrong("You swapped them: the first module still feeds four branches; it is the last one that drops rows.")
    if first == last == want_first:
        raise Wrong("The pose model builds the last module of stage 4 with multi_scale_output=False: it keeps row 0 only.")
    if first == last == want_last:
        raise Wrong("Only the last module drops outputs (`if not multi_scale_output and i == num_modules - 1`); "
                    "the earlier ones must feed all four branches of the next module.")
    if first == 3 or last == 3:
        raise Wrong("Stage 4 has 4 branches, so a full fuse matrix has rows i = 0, 1, 2, 3.")
    raise Wrong("Count the outputs: a full module has one fuse row per output branch.")


pose_fuse_rows = Exercise(
    name="pose_fuse_rows",
    lesson="06",
    question=(f"In the pose model (HRNetV1) for {POSE_VARIANT}, how many rows do `stage4[0].fuse_layers` and "
              "`stage4[-1].fuse_layers` have? Answer (rows of the first module, rows of the last module)."),
    checker=_check_pose_fuse_rows,
    reference=(4, 1),
    hints=["A row of fuse_layers is one output branch: fuse_layers[i] holds what flows into branch i.",
           "The pose head reads branch 0 only, so the last module need not compute the other outputs."],
    solution_text="`answer = (4, 1)`: stage 4 has 4 branches; its last module keeps row 0 only.",
    wrong_answers=[((1, 4), "swapped"), ((4, 4), "keeps row 0 only"), ((1, 1), "Only the last module"),
                   ((3, 1), "rows i = 0, 1, 2, 3"), ((4, 2), "one fuse row per output"), ("4, 1", "two whole numbers")],
)

# ------------------------------------- 4. what a classification checkpoint lacks

_HEAD_PARTS = {"last_layer"}
_CLS_ONLY = {"incre_modules", "downsamp_modules", "final_layer", "classifier"}
_BACKBONE = {"conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "transition2", "transition3",
             "stage2", "stage3", "stage4"}


def _check_missing_head_keys(answer) -> str:
    names = _as_names(answer)
    if names == _HEAD_PARTS:
        return ("Only last_layer: the backbone keys (conv1 ... stage4) are the same in both models, so an ImageNet "
                "checkpoint fills them all; last_layer starts from its initialisation. The checkpoint's "
                "incre_modules, downsamp_modules, final_layer and classifier are unexpected keys, left unused.")
    cls_only = sorted(names & _CLS_ONLY)
    if cls_only:
        raise Wrong(f"{', '.join(cls_only)}: those are in the classification checkpoint but not in the segmentation "
                    "model; they are unexpected keys (left over), not missing ones.")
    backbone = sorted(names & _BACKBONE)
    if backbone:
        raise Wrong(f"{', '.join(backbone)}: the backbone has the same keys in every head; the checkpoint fills it.")
    if not names:
        raise Wrong("The segmentation model has a part the classification model does not: which?")
    unknown = sorted(names - _HEAD_PARTS)
    if unknown:
        raise Wrong(f"The segmentation model has no top-level part named {', '.join(map(repr, unknown))}; compare "
                    "`{k.split('.')[0] for k in model.state_dict()}` of the two models.")
    raise Wrong("Not quite.")


missing_head_keys = Exercise(
    name="missing_head_keys",
    lesson="06",
    question=("You load a classification (ImageNet) checkpoint into a segmentation model of the same variant. "
              "Which top-level parts of the segmentation model get no weights from it? Answer a list of names "
              "such as ['conv1']."),
    checker=_check_missing_head_keys,
    reference=["last_layer"],
    hints=["The backbone parts (conv1, bn1, ..., stage4) are the same in every head.",
           "List the top-level children of each: `[name for name, _ in model.named_children()]`."],
    solution_text="`answer = ['last_layer']`: the only part of the segmentation model that is not in the classifier.",
    wrong_answers=[(["last_layer", "classifier"], "unexpected keys"), (["incre_modules"], "not missing ones"),
                   (["stage4", "last_layer"], "same keys in every head"), ([], "which?"),
                   (["head"], "no top-level part"), (42, "list of strings")],
)

# ------------------------------------------------ 5. LogSoftmax and the loss

LOSS_CHOICES = {
    "a": "nn.CrossEntropyLoss()(seed_output, target)",
    "b": "nn.NLLLoss()(seed_output, target)",
    "c": "nn.NLLLoss()(our_logits, target)",
    "d": "nn.CrossEntropyLoss()(seed_output.exp(), target)",
}


def _check_logsoftmax_loss(answer) -> str:
    choice = as_choice(answer, LOSS_CHOICES)
    if choice == "b":
        return ("b: the seed's last_layer ends in LogSoftmax, so it outputs log-probabilities, and NLLLoss takes "
                "-log p[target]: that is the cross-entropy. The official code outputs logits and uses "
                "CrossEntropyLoss, which applies log_softmax itself.")
    if choice == "a":
        raise Wrong("Close: the number comes out the same (log_softmax of log-probabilities changes nothing), but "
                    "log_softmax runs twice; the loss meant for log-probabilities is NLLLoss.")
    if choice == "c":
        raise Wrong("Our model (like the official one) returns raw logits; NLLLoss just takes -logit[target], which "
                    "is not a loss (it falls without bound as the logit grows).")
    raise Wrong("exp() turns log-probabilities into probabilities in [0, 1]; CrossEntropyLoss treats them as logits "
                "and softmaxes again: a squashed loss with tiny gradients.")


logsoftmax_loss = Exercise(
    name="logsoftmax_loss",
    lesson="06",
    question=("The seed's last_layer ends with nn.LogSoftmax(dim=1); ours, like the official code, returns logits. "
              "Which line computes the usual cross-entropy loss correctly and without doing anything twice?\n"
              + choices_text(LOSS_CHOICES)),
    checker=_check_logsoftmax_loss,
    reference="b",
    hints=["CrossEntropyLoss(z, t) = NLLLoss(log_softmax(z), t): it expects logits.",
           "What does the seed's model output: logits, probabilities or log-probabilities?"],
    solution_text="`answer = 'b'`: LogSoftmax outputs log-probabilities; NLLLoss is the loss that takes them.",
    wrong_answers=[("a", "log_softmax runs twice"), ("c", "raw logits"), ("d", "probabilities in [0, 1]"),
                   ("e", "one letter"), (2, "one letter")],
)

EXERCISES = [v2_head, last_layer_channels, pose_fuse_rows, missing_head_keys, logsoftmax_loss]
