"""Lesson 05, the whole network: the concatenation's width, where the parameters and
FLOPs go, and the transitions' list handling written by hand."""
from __future__ import annotations

from functools import cache

import torch
from torch import nn

from ..backbone import HRNet
from ..config import get_config
from ..i18n import N_, _
from ..inspect import convs_of, meta_backbone, stage_shapes
from ..transition import Transition
from ._answers import as_int, as_numbers, as_word, plain, random_weights
from ._base import Wrong
from ._kinds import Case, FunctionExercise, Mistake, ValueExercise, source_of


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


C32 = get_config("w32").width
# the widths lessons 05-06 repeat most, whose 15C a learner may give for w32's
OTHER_WIDTHS = {name: get_config(name).width for name in ("w48", "w18")}

concat_channels = ValueExercise(
    name="concat_channels", lesson="05",
    question=N_("HRNetV2 upsamples the four stage-4 branches of w32 to 1/4 and concatenates them "
                "along the channels. How many channels does the concatenation have?"),
    read=lambda a: as_int(a, N_("the number of channels")), reference=15 * C32,
    success=N_("C + 2C + 4C + 8C = 15C = 15 x {c} = {n}: every branch keeps its channels when it is upsampled to "
               "1/4, so the concatenation is as wide as all four together.", c=C32, n=15 * C32),
    mistakes={C32: N_("{n} is branch 0 alone (C); HRNetV2 concatenates all four branches.", n=C32),
              8 * C32: N_("{n} is the lowest-resolution branch alone (8C); the concatenation holds all four.", n=8 * C32),
              4 * C32: N_("{n} would be four branches of C each; the branches carry C, 2C, 4C and 8C channels.", n=4 * C32),
              15 * C32 + 64: N_("The official HRNetV2 head concatenates the four stage-4 branches only; adding the "
                                "stem's 64 channels is the local `upscale` option of the learner's modified "
                                "seg_hrnet.py (lesson 06)."),
              **{15 * c: N_("{n} is 15C for {name} (C = {c}); the question is about w32, C = {c32}.",
                            n=15 * c, name=name, c=c, c32=C32) for name, c in OTHER_WIDTHS.items()}},
    otherwise=lambda n, want: _("Not {n}: add up the channels of the four stage-4 branches of w32 (C = {c}).",
                                n=n, c=C32),
    hints=[N_("The four branches of w32 carry C, 2C, 4C and 8C channels, with C = 32."),
           N_("Upsampling changes the height and width, never the channels; concatenation adds the channels up.")],
    solution_text=N_("`answer = 480`: 32 + 64 + 128 + 256 = 15 x 32."),
    wrong_answers=[("480", "one whole number"), (500, "add up")],
)

_PARTS = ("layer1", "stage2", "stage3", "stage4")


@cache
def _part_params() -> dict[str, str]:
    """Each part's parameters in millions, and the table of all four, for w48."""
    counts = {part: _params(getattr(meta_backbone("w48"), part)) for part in _PARTS}
    share = counts["stage4"] / _params(meta_backbone("w48"))
    return {**{p: f"{n / 1e6:.1f}M" for p, n in counts.items()}, "share": f"{share:.0%}",
            "table": _(", ").join(f"{p} {n / 1e6:.1f}M" for p, n in counts.items())}


_ALIASES = {"stage1": "layer1", "1": "layer1", "2": "stage2", "3": "stage3", "4": "stage4"}


def _read_part(answer) -> str:
    """as_word, also for the stage's number however typed (4, np.int64(4), 4.0) and for 'stage4.' (a full stop)."""
    answer = plain(answer)
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    if type(answer) is int:  # not a bool
        answer = str(answer)
    return as_word(answer.strip().rstrip(".") if isinstance(answer, str) else answer, _PARTS, N_("a stage name"),
                   _ALIASES)


stage_most_params = ValueExercise(
    name="stage_most_params", lesson="05",
    question=N_("Which part of the w48 backbone holds the most parameters: 'layer1', 'stage2', 'stage3' or 'stage4'?"),
    read=_read_part,
    reference="stage4",
    success=lambda got, want: _("stage4: {table} ({share} of the backbone). A 3x3 conv has 9 x C_in x C_out weights, "
                                "so the 8C = 384-channel branch, which only stage 4 has, costs 64 times branch 0's "
                                "weights per block.", **_part_params()),
    mistakes=lambda: {"stage3": N_("stage3 has more modules (4 against 3), but {table}: stage 4 adds the 384-channel "
                                   "branch, and a conv's weights grow with the square of its channels.", **_part_params()),
                      "layer1": N_("layer1 is four Bottlenecks at 256 channels: {layer1}, small beside the stages.",
                                   **_part_params())},
    otherwise=lambda part, want: _("{part} holds {params}; compare all four: count `p.numel()` per part.",
                                   part=part, params=_part_params()[part]),
    hints=[N_("stage3 has 4 modules of 3 branches, stage4 has 3 modules of 4 branches."),
           N_("A 3x3 conv from C to C channels has 9 C^2 weights: doubling the channels quadruples them. "
              "Which stage has the 8C branch?")],
    solution_text=N_("`answer = 'stage4'`: about 47.6M of the backbone's 65M parameters, because of its 8C "
                     "branch (384 channels in w48)."),
    wrong_answers=[("stage2", "compare all four"), ("stage5", "is not one of"), ("第 4 阶段", "the lesson's word for it"), (3.5, "stage name"),
                   (3.0, "stage3 has more modules"), ("layer1.", "small beside the stages")],
)


@cache
def _branch_ratios() -> tuple[float, float]:
    """Branch 3 over branch 0 in the first stage-4 module of w48 at 512x1024: (parameters, conv
    multiply-adds); a stride-1 conv does its weights' count of multiply-adds at each position."""
    shapes = stage_shapes("w48", (512, 1024))["stage4"]
    costs = [(_params(branch), sum(c.weight.numel() for c in convs_of(branch)) * h * w)
             for branch, (_, h, w) in zip(meta_backbone("w48").stage4[0].branches, shapes)]
    return costs[3][0] / costs[0][0], costs[3][1] / costs[0][1]


def _near(value, target) -> bool:
    return abs(value - target) <= 0.1 * target


def _explain_ratios(got, _want):
    (p, m), (tp, tm) = got, _branch_ratios()
    rules = [
        (_near(p, tm) and _near(m, tp), N_("You swapped the two: first the parameter ratio, then the MAC ratio.")),
        (_near(p, 1 / tp), N_("Your parameter ratio is branch 0 / branch 3 (below 1). The question asks for the "
                              "other way round, branch 3 / branch 0: branch 3's parameter count divided by "
                              "branch 0's.")),
        (_near(p, 8), N_("8 is the ratio of the channels (384 / 48); a 3x3 conv has 9 x C_in x C_out weights, "
                         "so the weights grow with the channels squared.")),
        (_near(p, 1), N_("Parameters do not depend on the resolution; they depend on the channels, and branch 3 has 8 "
                         "times more.")),
        (not _near(p, tp), N_("The parameter ratio is not {p}: count the weights of a 3x3 conv with 8 times the "
                              "channels in and out.", p=format(p, "g"))),
        (_near(m, tp), N_("The MACs are weights times positions: branch 3 has 64 times the weights, but at 1/32 it has "
                          "8 x 8 = 64 times fewer positions than branch 0 at 1/4.")),
        (_near(m, 1 / 64) or _near(m, 1 / 8), N_("Fewer positions, yes, but each position costs 64 times more "
                                                 "multiply-adds (8x the channels in and out)."))]
    return next((message for holds, message in rules if holds), N_(
        "The MAC ratio is not {m}: multiply the parameter ratio by the ratio of positions (1/32 vs 1/4).",
        m=format(m, "g")))


branch_cost_ratio = ValueExercise(
    name="branch_cost_ratio", lesson="05",
    question=N_("In a stage-4 module of w48, branch 0 works at 1/4 with C = 48 channels and branch 3 at "
                "1/32 with 8C = 384; each is 4 BasicBlocks. How many times as many parameters as branch 0 does "
                "branch 3 have, and how many times as many multiply-adds (MACs)? Answer (parameter ratio, MAC ratio), "
                "each as branch 3 / branch 0."),
    read=lambda a: as_numbers(a, (N_("the parameter ratio"), N_("the MAC ratio")), "(2, 0.5)"), reference=(64, 1),
    explain=_explain_ratios,
    same=lambda got, want: _near(got[0], _branch_ratios()[0]) and _near(got[1], _branch_ratios()[1]),
    success=lambda got, want: _("Measured on w48 at 512x1024: branch 3 has {params} times the parameters of branch 0 "
                                "(64 for the convs, a little less with BatchNorm) and {macs} times its MACs. Every "
                                "branch costs the same arithmetic; the low-resolution ones hold the weights.",
                                params=format(_branch_ratios()[0], ".1f"), macs=format(_branch_ratios()[1], ".2f")),
    hints=[N_("A 3x3 conv from C_in to C_out channels has 9 x C_in x C_out weights, and does that many "
              "multiply-adds at each output position."),
           N_("Branch 3 has 8 times the channels (in and out) and, at 1/32 instead of 1/4, 8 x 8 = 64 times fewer "
              "positions.")],
    solution_text=N_("`answer = (64, 1)`: weights grow with 8 x 8 = 64, positions shrink by 64, so the arithmetic "
                     "is the same in every branch (about 63.7 with the BatchNorm parameters counted)."),
    wrong_answers=[((8, 1), "channels squared"), ((64, 64), "fewer positions"), ((1, 64), "swapped"),
                   ((64, 1 / 64), "costs 64 times more"), (64, "Give two numbers"), (("64", "1"), "without quotes"), (("64", None), "as a number"),
                   ((1, 1), "do not depend on the resolution"), ((30, 1), "parameter ratio is not 30"),
                   ((64, 3), "MAC ratio is not 3"), ((1 / 64, 1), "Your parameter ratio is branch 0 / branch 3")],
)


def _reference(transition, y_list):
    """The loop the official forward writes out after each stage: one output per entry."""
    x_list = []
    for i, op in enumerate(transition):
        source = y_list[i] if i < len(y_list) else y_list[-1]  # a new branch grows from the lowest one
        x_list.append(source if op is None else op(source))
    return x_list


@cache
def _transition_cases() -> list[Case]:
    """The three transitions of w18_small_v1, one that creates two branches at once (branch 2 is
    two stride-2 steps from branch 0), and one that adapts; weights and BN statistics random."""
    model = random_weights(HRNet("w18_small_v1"), 0)
    grow_two, adapt = (random_weights(Transition(*c), 3) for c in [((16,), (16, 32, 64)), ((24, 32), (16, 32, 64))])
    g = torch.Generator().manual_seed(1)
    y = [torch.randn(1, c, 16 >> b, 20 >> b, generator=g) for b, c in enumerate((16, 32, 64))]  # 1/4, 1/8, 1/16
    return [Case(t, y_list, where=where, expected=t(y_list)) for where, t, y_list in [
            (N_("transition1 of w18_small_v1 (1 branch -> 2)"), model.transition1, [torch.randn(1, 128, 16, 20, generator=g)]),
            (N_("transition2 of w18_small_v1 (2 branches -> 3)"), model.transition2, y[:2]),
            (N_("transition3 of w18_small_v1 (3 branches -> 4)"), model.transition3, y),
            (N_("Transition((16,), (16, 32, 64)) (1 branch -> 3: branch 2 is two stride-2 steps from branch 0)"),
             grow_two, y[:1]),
            (N_("Transition((24, 32), (16, 32, 64)) (branch 0 adapted from 24 to 16 channels)"), adapt,
             [torch.randn(1, 24, 16, 20, generator=g), y[1]])]]


def _call(fn, transition, y_list):
    """The answer gets a plain ModuleList (which cannot be called) and a copy of the list it must not change."""
    given = list(y_list)
    try:
        got = fn(nn.ModuleList(list(transition)), given)
    except Exception:  # a change to the list is often what made a later line fail: said first
        _refuse_changed(given, y_list)
        raise
    _refuse_changed(given, y_list)
    return got


def _refuse_changed(given, y_list) -> None:
    if len(given) != len(y_list) or any(a is not b for a, b in zip(given, y_list)):
        raise Wrong(_("Your function changed the list it was given (the caller's y_list): build and return a new list "
                      "instead (writing into the caller's list is what the official HighResolutionModule does with "
                      "`x[i] = ...`, the pitfall lesson 08 shows).")) from None


def _in_place(transition, y_list):  # a slip: the right outputs, written into the caller's list
    y_list[:] = _reference(transition, y_list)
    return y_list


def _tensors_shaped_like(got, want) -> bool:
    """Whether ``got`` is a list or tuple of tensors with ``want``'s shapes and dtypes, and no NaN where ``want`` has
    numbers (anything else, a generator or numpy arrays, float16 maps or NaN, gets the message about what it is:
    the order of the transition's entries is not to blame)."""
    return (isinstance(got, (list, tuple)) and all(isinstance(g, torch.Tensor) for g in got)
            and [(g.shape, g.dtype) for g in got] == [(w.shape, w.dtype) for w in want]
            and not any(bool((g.isnan() & ~w.isnan()).any()) for g, w in zip(got, want)))


def _appends_into_y(transition, y_list):  # a slip: new branches appended to y_list, which the next entry then reads
    for i, op in enumerate(transition):
        if i >= len(y_list):
            y_list.append(op(y_list[-1]))
        elif op is not None:
            y_list[i] = op(y_list[i])
    return y_list


def _from_built(transition, y_list):  # a slip: a new branch grown from the list being built
    out = []
    for i, op in enumerate(transition):
        source = y_list[i] if i < len(y_list) else out[-1]
        out.append(source if op is None else op(source))
    return out


def _none_message(case, got, _want) -> str:
    i = next(i for i, g in enumerate(got) if g is None)
    transition = case.args[0]
    if i < len(transition) and transition[i] is None:
        return _("Entry {i} of your list is None, as transition[{i}] is: a None entry of the transition means pass "
                 "through, so append y_list[{i}] itself.", i=i)
    return _("Entry {i} of your list is None; it should be a tensor, the output of branch {i}.", i=i)


def _skips_none(case, got, want) -> bool:
    """Whether the answer gives the outputs of the transition's other entries only, none for its None entries (a
    loop with `if op is not None:` and no else)."""
    kept = [w.shape for w, op in zip(want, case.args[0]) if op is not None]
    return len(kept) < len(want) and isinstance(got, (list, tuple)) and [g.shape for g in got] == kept


def _as_generator(transition, y_list):  # a slip: the right outputs, as a generator
    return (x for x in _reference(transition, y_list))


def _as_numpy(transition, y_list):  # a slip: the right outputs, as numpy arrays
    return [x.numpy() for x in _reference(transition, y_list)]


transition_forward = FunctionExercise(
    name="transition_forward", lesson="05", fn_name="transition_forward",
    question=N_("Write `transition_forward(transition, y_list)`: the list handling the official forward writes out "
                "after each stage. `transition` is a plain nn.ModuleList with one entry per output branch (None, or "
                "layers to apply); `y_list` is the previous stage's outputs. Return the new list (do not change "
                "y_list)."),
    reference=_reference, cases=_transition_cases, call=_call, trains=True,
    returns=N_("a list with one tensor per branch"),
    against="ht.Transition",
    mistakes=[
        Mistake("calls_module", N_("A plain nn.ModuleList cannot be called like a layer: loop over its entries "
                                   "(`for i, op in enumerate(transition)`) and build the new list yourself."),
                like=lambda t, y: t(y)),
        Mistake("calls_none", N_("An entry is None where a branch passes through unchanged; append y_list[i] itself "
                                 "instead of calling the entry."),
                like=lambda t, y: [op(y[min(i, len(y) - 1)]) for i, op in enumerate(t)]),
        Mistake("none_entry", _none_message,
                when=lambda case, got, want: isinstance(got, (list, tuple)) and any(g is None for g in got)),
        Mistake("no_new_branch", lambda case, got, want: _(
                    "Your list has one entry per branch of y_list ({got}); this transition makes {want} branches (one "
                    "entry of the transition per output branch, new ones included).", got=len(got), want=len(want)),
                like=lambda t, y: [x if op is None else op(x) for op, x in zip(t, y)], fragment="new ones included"),
        Mistake("skips_none", N_("Your list leaves out the entries where the transition holds None: None means pass "
                                 "through, so append y_list[i] for them too (one output per entry of the transition)."),
                when=_skips_none),
        Mistake("branch_above", N_(
                    "A new branch grows from the lowest branch of the previous stage, y_list[-1]; y_list[i - 1] is "
                    "that branch only when a stage adds a single branch (here it adds two, and y_list[i - 1] does not "
                    "exist for the second)."),
                like=lambda t, y: [y[i] if op is None else op(y[i] if i < len(y) else y[i - 1])
                                   for i, op in enumerate(t)]),
        Mistake("source_index", lambda case, got, want: _(
                    "The previous stage has only {n} branch(es). A new branch i >= {n} has no y_list[i]: it grows "
                    "from the last, lowest-resolution one, y_list[-1].", n=len(case.args[1])),
                like=lambda t, y: [y[i] if op is None else op(y[i]) for i, op in enumerate(t)],  # no y_list[-1]
                fragment="it grows from the last, lowest-resolution one, y_list[-1]."),
        Mistake("first_branch", N_("A layer got a map with the wrong number of channels. A new branch grows from the "
                                   "lowest-resolution branch, y_list[-1], not from y_list[0]."),
                like=lambda t, y: [y[i] if op is None else op(y[i] if i < len(y) else y[0]) for i, op in enumerate(t)]),
        Mistake("adapt_from_last", N_(
                    "Only a new branch (i >= len(y_list)) reads y_list[-1]; an existing branch i, adapted or passed, "
                    "reads its own y_list[i]."),
                like=lambda t, y: [y[i] if op is None else op(y[-1]) for i, op in enumerate(t)]),
        Mistake("from_built", N_("A new branch grows from the previous stage's lowest branch, y_list[-1], not from the "
                                 "list you are building (its last entry already has the new stage's channels)."),
                like=_from_built),
        Mistake("count", lambda case, got, want: _(
                    "Your list has the wrong length ({got}; the transition has {n} entries): one output per entry of "
                    "the transition, new branches included. Loop over `enumerate(transition)`, not over y_list.",
                    got=len(got), n=len(want)),
                when=lambda case, got, want: isinstance(got, (list, tuple)) and len(got) != len(want)),
        Mistake("numbers", N_("The shapes are right but the numbers differ: apply transition[i] to y_list[i] (or to "
                              "y_list[-1] for a new branch), and pass it through when the entry is None."),
                when=lambda case, got, want: _tensors_shaped_like(got, want)),
    ],
    success=lambda n: _("Your loop matches ht.Transition on {n} transitions (new branches, two new branches at once, "
                        "an adapted branch).", n=n),
    hints=[N_("Loop `for i, op in enumerate(transition)`: one output per entry, new branches included."),
           N_("The input of entry i is y_list[i] when the branch existed, else y_list[-1] (the lowest resolution). "
              "A None entry passes its input through unchanged."),
           N_("Build a new list with append; never assign into y_list.")],
    solution_text=source_of(_reference, "transition_forward", N_(
        "\nThe official forward (seg_hrnet.py on the HRNet-OCR and master git branches) writes this loop out after stage 2 and after stage 3, with "
        "`if i < self.stage2_cfg['NUM_BRANCHES']` and `if i < self.stage3_cfg['NUM_BRANCHES']`; the loop before "
        "stage 2 reads the one map x instead of a list.")),
    wrong_answers=[(_in_place, "changed the list"), ("y_list", "Pass your function itself"),
                   (_as_generator, "returned a generator"), (_as_numpy, "Keep the tensors as tensors"),
                   (lambda t, y: [torch.relu(x) for x in _reference(t, y)], "shapes are right but the numbers differ"),
                   (_appends_into_y, "changed the list"),
                   (lambda t, y: [None if op is None else op(y[min(i, len(y) - 1)]) for i, op in enumerate(t)],
                    "a None entry of the transition means pass through"),
                   (lambda t, y: [*_reference(t, y)[:-1], None], "it should be a tensor, the output of branch 1"),
                   (lambda t, y: [op(y[i] if i < len(y) else y[-1]) for i, op in enumerate(t) if op is not None],
                    "leaves out the entries where the transition holds None"),
                   (lambda t, y: _reference(t, y)[:len(y) + 1], "Your list has the wrong length (2; the transition")],
)

EXERCISES = [concat_channels, stage_most_params, branch_cost_ratio, transition_forward]
