"""Lesson 05, the whole network: the concatenation's width, where the parameters and
FLOPs go, and the transitions' list handling written by hand."""
from __future__ import annotations

from functools import cache

import torch
from torch import nn

from ..backbone import HRNet
from ..config import get_config
from ..transition import Transition
from ._answers import as_function, as_int
from ._base import Exercise, Wrong

# ---------------------------------------------------------------- helpers


def _as_number(answer, what: str) -> float:
    """A real number from an int or float, or a Wrong saying what to give."""
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise Wrong(f"Give {what} as a number; you gave {type(answer).__name__} {answer!r}.")
    return float(answer)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@cache
def _meta_backbone(variant: str) -> HRNet:
    """A weightless backbone: parameters counted and shapes run without memory or arithmetic."""
    with torch.device("meta"):
        return HRNet(variant).eval()


# ------------------------------------------ 1. the width of HRNetV2's concatenation

CONCAT_VARIANT = "w32"


def _check_concat_channels(answer) -> str:
    n = as_int(answer, "the number of channels", floats=True)
    c = get_config(CONCAT_VARIANT).width
    expected = c + 2 * c + 4 * c + 8 * c
    if n == expected:
        return (f"C + 2C + 4C + 8C = 15C = 15 x {c} = {expected}: every branch keeps its channels when it is "
                "upsampled to 1/4, so the concatenation is as wide as all four together.")
    if n == c:
        raise Wrong(f"{c} is branch 0 alone (C); HRNetV2 concatenates all four branches.")
    if n == 8 * c:
        raise Wrong(f"{8 * c} is the lowest-resolution branch alone (8C); the concatenation holds all four.")
    if n == 4 * c:
        raise Wrong(f"{4 * c} would be four branches of C each; the branches carry C, 2C, 4C and 8C channels.")
    if n == expected + 64:
        raise Wrong("The official HRNetV2 head concatenates the four stage-4 branches only; adding the stem's "
                    "64 channels is the seed's local `upscale` option (lesson 06).")
    if n == 256:
        raise Wrong("256 is layer1's output (stage 1); the head reads stage 4's four branches.")
    raise Wrong(f"Not {n}: add up the channels of the four stage-4 branches of {CONCAT_VARIANT} (C = {c}).")


concat_channels = Exercise(
    name="concat_channels",
    lesson="05",
    question=(f"HRNetV2 upsamples the four stage-4 branches of {CONCAT_VARIANT} to 1/4 and concatenates them "
              "along the channels. How many channels does the concatenation have?"),
    checker=_check_concat_channels,
    reference=480,
    hints=[f"The four branches of {CONCAT_VARIANT} carry C, 2C, 4C and 8C channels, with C = 32.",
           "Upsampling changes the height and width, never the channels; concatenation adds the channels up."],
    solution_text="`answer = 480`: 32 + 64 + 128 + 256 = 15 x 32.",
    wrong_answers=[(32, "branch 0 alone"), (256, "lowest-resolution branch alone"), (128, "C, 2C, 4C and 8C"),
                   (544, "upscale"), ("480", "one whole number"), (500, "add up")],
)

# ------------------------------------------- 2. which stage holds the parameters

PARAMS_VARIANT = "w48"
_PARTS = ("layer1", "stage2", "stage3", "stage4")
_ALIASES = {"stage1": "layer1", "1": "layer1", "2": "stage2", "3": "stage3", "4": "stage4"}


@cache
def _part_params(variant: str) -> dict[str, int]:
    backbone = _meta_backbone(variant)
    return {part: _params(getattr(backbone, part)) for part in _PARTS}


def _as_part(answer) -> str:
    if isinstance(answer, int) and not isinstance(answer, bool) and 1 <= answer <= 4:
        answer = str(answer)
    if not isinstance(answer, str):
        raise Wrong(f"Answer with a stage name: 'layer1', 'stage2', 'stage3' or 'stage4'; you gave {type(answer).__name__} {answer!r}.")
    key = answer.strip().lower().replace(" ", "").replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in _PARTS:
        raise Wrong(f"{answer!r} is not one of 'layer1', 'stage2', 'stage3', 'stage4'.")
    return key


def _millions(n: int) -> str:
    return f"{n / 1e6:.1f}M"


def _check_stage_most_params(answer) -> str:
    part = _as_part(answer)
    counts = _part_params(PARAMS_VARIANT)
    best = max(counts, key=counts.get)
    table = ", ".join(f"{p} {_millions(n)}" for p, n in counts.items())
    if part == best:
        share = counts[best] / _params(_meta_backbone(PARAMS_VARIANT))
        return (f"{best}: {table} ({share:.0%} of the backbone). A 3x3 conv has 9 x C_in x C_out weights, so the "
                "8C = 384-channel branch, which only stage 4 has, costs 64 times branch 0's weights per block.")
    if part == "stage3":
        raise Wrong(f"stage3 has more modules (4 against 3), but {table}: stage 4 adds the 384-channel branch, "
                    "and a conv's weights grow with the square of its channels.")
    if part == "layer1":
        raise Wrong(f"layer1 is four Bottlenecks at 256 channels: {_millions(counts['layer1'])}, small beside the stages.")
    raise Wrong(f"{part} holds {_millions(counts[part])}; compare all four: count `p.numel()` per part.")


stage_most_params = Exercise(
    name="stage_most_params",
    lesson="05",
    question=(f"Which part of the {PARAMS_VARIANT} backbone holds the most parameters: 'layer1', 'stage2', "
              "'stage3' or 'stage4'?"),
    checker=_check_stage_most_params,
    reference="stage4",
    hints=["stage3 has 4 modules of 3 branches, stage4 has 3 modules of 4 branches.",
           "A 3x3 conv from C to C channels has 9 C^2 weights: doubling the channels quadruples them. "
           "Which stage has the 8C branch?"],
    solution_text=("`answer = 'stage4'`: about 47.6M of the backbone's 65M parameters, because of its 8C "
                   "branch (384 channels in w48)."),
    wrong_answers=[("stage3", "square of its channels"), ("layer1", "small beside"), ("stage2", "compare all four"),
                   ("stage5", "is not one of"), (3.5, "stage name")],
)

# ------------------------------------ 3. parameters and MACs of a branch, 1/4 vs 1/32

COST_VARIANT = "w48"
COST_IMAGE = (512, 1024)


@cache
def _branch_costs(variant: str, image_size: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    """(parameters, conv multiply-adds) of each branch of the first stage-4 module."""
    backbone = _meta_backbone(variant)
    module = backbone.stage4[0]
    from ..inspect import stage_shapes

    shapes = stage_shapes(variant, image_size)["stage4"]
    costs = []
    for branch, (c, h, w) in zip(module.branches, shapes):
        macs = []

        def count(conv, inputs, output, macs=macs):
            macs.append(output.numel() * conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1])

        hooks = [m.register_forward_hook(count) for m in branch.modules() if isinstance(m, nn.Conv2d)]
        try:
            with torch.no_grad():
                branch(torch.empty(1, c, h, w, device="meta"))
        finally:
            for hook in hooks:
                hook.remove()
        costs.append((_params(branch), sum(macs)))
    return tuple(costs)


def _check_branch_cost_ratio(answer) -> str:
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise Wrong(f"Give two numbers, (parameter ratio, MAC ratio), e.g. (2, 0.5); you gave {type(answer).__name__} {answer!r}.")
    params_ratio = _as_number(answer[0], "the parameter ratio")
    macs_ratio = _as_number(answer[1], "the MAC ratio")
    costs = _branch_costs(COST_VARIANT, COST_IMAGE)
    true_params = costs[3][0] / costs[0][0]
    true_macs = costs[3][1] / costs[0][1]

    def near(value, target):
        return abs(value - target) <= 0.1 * target

    if near(params_ratio, true_macs) and near(macs_ratio, true_params):
        raise Wrong("You swapped the two: first the parameter ratio, then the MAC ratio.")
    if not near(params_ratio, true_params):
        if near(params_ratio, 8):
            raise Wrong("8 is the ratio of the channels (384 / 48); a 3x3 conv has 9 x C_in x C_out weights, "
                        "so the weights grow with the channels squared.")
        if near(params_ratio, 1):
            raise Wrong("Parameters do not depend on the resolution; they depend on the channels, and branch 3 has 8 times more.")
        raise Wrong(f"The parameter ratio is not {params_ratio:g}: count the weights of a 3x3 conv with 8 times the channels in and out.")
    if not near(macs_ratio, true_macs):
        if near(macs_ratio, true_params):
            raise Wrong("The MACs are weights times positions: branch 3 has 64 times the weights, but at 1/32 "
                        "it has 8 x 8 = 64 times fewer positions than branch 0 at 1/4.")
        if near(macs_ratio, 1 / 64) or near(macs_ratio, 1 / 8):
            raise Wrong("Fewer positions, yes, but each position costs 64 times more multiply-adds (8x the channels in and out).")
        raise Wrong(f"The MAC ratio is not {macs_ratio:g}: multiply the parameter ratio by the ratio of positions (1/32 vs 1/4).")
    return (f"Measured on {COST_VARIANT} at {COST_IMAGE[0]}x{COST_IMAGE[1]}: branch 3 has {true_params:.1f} times the "
            f"parameters of branch 0 (64 for the convs, a little less with BatchNorm) and {true_macs:.2f} times its MACs. "
            "Every branch costs the same arithmetic; the low-resolution ones hold the weights.")


branch_cost_ratio = Exercise(
    name="branch_cost_ratio",
    lesson="05",
    question=(f"In a stage-4 module of {COST_VARIANT}, branch 0 works at 1/4 with C = 48 channels and branch 3 at "
              "1/32 with 8C = 384; each is 4 BasicBlocks. How many times branch 0's parameters does branch 3 have, "
              "and how many times its multiply-adds (MACs)? Answer (parameter ratio, MAC ratio)."),
    checker=_check_branch_cost_ratio,
    reference=(64, 1),
    hints=["A 3x3 conv from C_in to C_out channels has 9 x C_in x C_out weights, and does that many "
           "multiply-adds at each output position.",
           "Branch 3 has 8 times the channels (in and out) and, at 1/32 instead of 1/4, 8 x 8 = 64 times fewer positions."],
    solution_text=("`answer = (64, 1)`: weights grow with 8 x 8 = 64, positions shrink by 64, so the arithmetic "
                   "is the same in every branch (about 63.7 with the BatchNorm parameters counted)."),
    wrong_answers=[((8, 1), "channels squared"), ((64, 64), "fewer positions"), ((1, 64), "swapped"),
                   ((64, 1 / 64), "costs 64 times more"), (64, "Give two numbers"), (("64", "1"), "as a number")],
)

# ----------------------------------------- 4. the transitions' list handling by hand


def _reference_transition_forward(transition, y_list):
    """The loop the official forward writes out after each stage."""
    x_list = []
    for i, op in enumerate(transition):
        source = y_list[i] if i < len(y_list) else y_list[-1]  # a new branch grows from the last one
        x_list.append(source if op is None else op(source))
    return x_list


def _random_stats(module: nn.Module, seed: int) -> None:
    """Non-trivial BatchNorm statistics and weights, so a skipped layer shows in the numbers."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
        elif isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, generator=generator)


@cache
def _small_backbone() -> HRNet:
    torch.manual_seed(0)
    model = HRNet("w18_small_v1")
    _random_stats(model, 0)
    return model.eval()


def _plain(transition: Transition) -> nn.ModuleList:
    """The same entries in a plain ModuleList: it cannot be called, so the loop must be written."""
    return nn.ModuleList(list(transition))


def _transition_cases():
    """(description, transition, input list): the three transitions of w18_small_v1, one that
    creates two branches at once (branch 2 needs two stride-2 steps), one that adapts."""
    model = _small_backbone()
    generator = torch.Generator().manual_seed(1)
    y1 = [torch.randn(1, 128, 16, 20, generator=generator)]
    y2 = [torch.randn(1, 16, 16, 20, generator=generator), torch.randn(1, 32, 8, 10, generator=generator)]
    y3 = y2 + [torch.randn(1, 64, 4, 5, generator=generator)]
    torch.manual_seed(2)
    grow_two = Transition((16,), (16, 32, 64))
    adapt = Transition((24, 32), (16, 32, 64))
    for t in (grow_two, adapt):
        _random_stats(t, 3)
        t.eval()
    y_adapt = [torch.randn(1, 24, 16, 20, generator=generator), torch.randn(1, 32, 8, 10, generator=generator)]
    return [
        ("transition1 of w18_small_v1 (1 branch -> 2)", model.transition1, y1),
        ("transition2 of w18_small_v1 (2 branches -> 3)", model.transition2, y2),
        ("transition3 of w18_small_v1 (3 branches -> 4)", model.transition3, y3),
        ("Transition((16,), (16, 32, 64)) (1 branch -> 3: branch 2 is two stride-2 steps from branch 0)", grow_two,
         [y2[0]]),
        ("Transition((24, 32), (16, 32, 64)) (branch 0 adapted from 24 to 16 channels)", adapt, y_adapt),
    ]


def _call(fn, transition, y_list, where: str):
    """Run the learner's function on a copy of the list, turning the usual slips into messages."""
    given = list(y_list)
    try:
        got = fn(_plain(transition), given)
    except NotImplementedError as error:
        if "forward" in str(error):
            raise Wrong("A plain nn.ModuleList cannot be called like a layer: loop over its entries "
                        "(`for i, op in enumerate(transition)`) and build the new list yourself.") from None
        raise
    except TypeError as error:
        if "NoneType" in str(error):
            raise Wrong(f"On {where}: an entry is None where a branch passes through unchanged; append y_list[i] "
                        "itself instead of calling the entry.") from None
        raise
    except IndexError:
        raise Wrong(f"On {where}: the previous stage has only {len(y_list)} {'branch' if len(y_list) == 1 else 'branches'}. A new branch i >= "
                    f"{len(y_list)} has no y_list[i]: it grows from the last, lowest-resolution one, y_list[-1].") from None
    except RuntimeError as error:
        if "channels" in str(error) or "size" in str(error):
            raise Wrong(f"On {where} a layer got a map with the wrong number of channels ({error}). A new branch "
                        "grows from the lowest-resolution branch, y_list[-1], not from y_list[0].") from None
        raise
    if len(given) != len(y_list) or any(a is not b for a, b in zip(given, y_list)):
        raise Wrong(f"On {where} your function changed the list it was given (the caller's y_list): build and "
                    "return a new list instead (the official module's in-place `x[i] = ...` is what lesson 08 warns about).")
    return got


def _check_transition_forward(fn) -> str:
    as_function(fn, "transition_forward")
    with torch.no_grad():
        for where, transition, y_list in _transition_cases():
            expected = transition(y_list)
            got = _call(fn, transition, y_list, where)
            if not isinstance(got, (list, tuple)):
                raise Wrong(f"On {where} your function returned a {type(got).__name__}; return a list with one tensor per branch.")
            if len(got) != len(expected):
                raise Wrong(f"On {where} your list has {len(got)} {'entry' if len(got) == 1 else 'entries'}; this transition makes {len(expected)} "
                            "branches (one entry of the transition per output branch, new ones included).")
            for i, (g, e) in enumerate(zip(got, expected)):
                if not isinstance(g, torch.Tensor):
                    raise Wrong(f"On {where} entry {i} of your list is a {type(g).__name__}, not a tensor.")
                if g.shape != e.shape:
                    raise Wrong(f"On {where} branch {i} has shape {tuple(g.shape)}; it should be {tuple(e.shape)}.")
                if not torch.allclose(g, e, atol=1e-5):
                    raise Wrong(f"On {where} branch {i} has the right shape but other numbers: apply transition[{i}] "
                                f"to y_list[{i}] (or to y_list[-1] for a new branch), and pass it through when the entry is None.")
        # The whole backbone with the learner's loop between the stages.
        model = _small_backbone()
        x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(4))
        y = [model.layer1(model.stem(x))]
        for number in (1, 2, 3):
            transition = getattr(model, f"transition{number}")
            y = getattr(model, f"stage{number + 1}")(list(_call(fn, transition, y, f"transition{number}")))
        expected = model.forward_features(x)
        if len(y) != len(expected) or not all(torch.allclose(a, b, atol=1e-4) for a, b in zip(y, expected)):
            raise Wrong("Each transition passed alone, but the whole backbone built with your loop differs from forward_features.")
    return ("Your loop matches ht.Transition on 5 transitions (new branches, two new branches at once, an adapted "
            "branch), and the backbone built with it matches model.forward_features.")


def _wrong_calls_none(transition, y_list):
    return [op(y_list[i] if i < len(y_list) else y_list[-1]) for i, op in enumerate(transition)]


def _wrong_no_new_branch(transition, y_list):
    return [y if op is None else op(y) for op, y in zip(transition, y_list)]


def _wrong_source_index(transition, y_list):
    return [y_list[i] if op is None else op(y_list[i]) for i, op in enumerate(transition)]


def _wrong_first_branch(transition, y_list):
    return [(y_list[i] if i < len(y_list) else y_list[0]) if op is None
            else op(y_list[i] if i < len(y_list) else y_list[0]) for i, op in enumerate(transition)]


def _wrong_in_place(transition, y_list):
    n, last = len(y_list), y_list[-1]
    for i, op in enumerate(transition):
        source = y_list[i] if i < n else last
        out = source if op is None else op(source)
        if i < n:
            y_list[i] = out
        else:
            y_list.append(out)
    return y_list


def _wrong_calls_module(transition, y_list):
    return transition(y_list)


transition_forward = Exercise(
    name="transition_forward",
    lesson="05",
    question=("Write `transition_forward(transition, y_list)`: the list handling the official forward writes out "
              "after each stage. `transition` is a plain nn.ModuleList with one entry per output branch (None, or "
              "layers to apply); `y_list` is the previous stage's outputs. Return the new list (do not change y_list)."),
    checker=_check_transition_forward,
    reference=_reference_transition_forward,
    hints=["Loop `for i, op in enumerate(transition)`: one output per entry, new branches included.",
           "The input of entry i is y_list[i] when the branch existed, else y_list[-1] (the lowest resolution). "
           "A None entry passes its input through unchanged.",
           "Build a new list with append; never assign into y_list."],
    solution_text=(
        "```python\ndef transition_forward(transition, y_list):\n"
        "    x_list = []\n"
        "    for i, op in enumerate(transition):\n"
        "        source = y_list[i] if i < len(y_list) else y_list[-1]\n"
        "        x_list.append(source if op is None else op(source))\n"
        "    return x_list\n```\n"
        "The official forward writes this loop three times, with `if i < self.stage2_cfg['NUM_BRANCHES']`."
    ),
    wrong_answers=[
        (_wrong_calls_none, "is None"),
        (_wrong_no_new_branch, "makes 2 branches"),
        (_wrong_source_index, "y_list[-1]"),
        (_wrong_first_branch, "not from y_list[0]"),
        (_wrong_in_place, "changed the list"),
        (_wrong_calls_module, "cannot be called"),
        ("y_list", "Pass your function itself"),
    ],
)

EXERCISES = [concat_channels, stage_most_params, branch_cost_ratio, transition_forward]
