"""Lesson 04, transitions: pass, adapt or create; building one; where a new branch comes from."""
from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from ..config import get_config
from ..i18n import N_, _
from ..transition import Transition, run_transition
from ._answers import a_type, as_indices, as_int, as_strings, as_word, layer_summary
from ._base import Wrong
from ._kinds import Mistake, ModuleExercise, ValueExercise, fact_mistakes


def make_transition(pre_channels, cur_channels):
    """The official _make_transition_layer: one entry per branch of the next stage."""
    def step(cin, cout, stride):  # every layer of a transition: 3x3 conv, BN, ReLU
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    layers, lowest = [], pre_channels[-1]
    for i, cout in enumerate(cur_channels):
        if i < len(pre_channels):  # the branch exists: pass it, or adapt its channels at stride 1
            layers.append(None if pre_channels[i] == cout else step(pre_channels[i], cout, 1))
        else:  # a new branch: stride-2 steps from the lowest-resolution branch; only the last one sets the channels
            steps = i + 1 - len(pre_channels)
            layers.append(nn.Sequential(*[step(lowest, cout if s == steps - 1 else lowest, 2) for s in range(steps)]))
    return nn.ModuleList(layers)


# (channels before, channels after): stage 1 -> 2 of W18 and of the small model, a new branch for W18
# and W48, and two new branches at once (the official code allows it).
TRANSITION_CASES = [([256], [18, 36]), ([128], [16, 32]), ([18, 36], [18, 36, 72]),
                    ([48, 96, 192], [48, 96, 192, 384]), ([32, 64], [32, 64, 128, 256])]


def _facts(pre, cur, i, op) -> SimpleNamespace:
    """What the transition mistakes look at in entry ``i``."""
    module = isinstance(op, nn.Module) and not isinstance(op, nn.ModuleList)  # an entry that can be called
    convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)] if module else []
    kind, n2 = "new" if i >= len(pre) else "pass" if pre[i] == cur[i] else "adapt", sum(c.stride[0] == 2 for c in convs)
    # flat: layers right inside the entry, where a new branch has one nn.Sequential per step
    flat = module and any(isinstance(m, (nn.Conv2d, nn.BatchNorm2d)) for m in op.children())
    return SimpleNamespace(i=i, kind=kind, op=op, type=a_type(op), module=module, flat=flat,
                           cin=pre[min(i, len(pre) - 1)], cout=cur[i], npre=len(pre), steps=i + 1 - len(pre),
                           convs=convs, n2=n2, first_in=convs[0].in_channels if convs else None,
                           has=_conv_count(n2, len(convs) - n2), **_layer_counts(op))


def _conv_count(n2: int, other: int) -> str:
    """'1 stride-2 conv', and the other convs only when there are any."""
    if other == 0:
        return _("{n2} stride-2 conv(s)", n2=n2)
    return _("{n2} stride-2 and {other} other conv(s)", n2=n2, other=other)


def _entry_facts(case, got) -> list[SimpleNamespace]:
    """The facts of each entry; none for an answer that is not a list of entries (a dict, an exception): what it is
    comes first, and the entries' facts would describe empty ones."""
    if not isinstance(got, (nn.ModuleList, list, tuple)):
        return []
    return [_facts(*case.args, i, op) for i, op in enumerate(got)]


def _always(mistakes: list[Mistake], *names: str) -> list[Mistake]:
    """``mistakes`` with those named checked even when the outputs match (see Mistake's ``always``)."""
    for mistake in mistakes:
        mistake.always = mistake.always or mistake.name in names
    return mistakes


def _layer_counts(op) -> dict[str, int]:
    layers = layer_summary(op) if isinstance(op, nn.Module) else []
    return dict(relus=layers.count("ReLU"), bns=sum(layer.startswith("BatchNorm2d") for layer in layers))


_TRANSITION_MISTAKES = [
    Mistake("package", N_("That is the package's own Transition; build the entries yourself from nn.Conv2d, "
                          "nn.BatchNorm2d, nn.ReLU and nn.Sequential, in an nn.ModuleList."),
            when=lambda c, got, o: isinstance(got, Transition), always=True),
    Mistake("container", lambda c, got, o: _(
        "Your function returns a module of type {type}; return an nn.ModuleList, as the question asks: its entries "
        "sit side by side, one per branch, while an nn.Sequential would chain them one after another.",
        type=type(got).__name__),
            when=lambda c, got, o: isinstance(got, nn.Module) and not isinstance(got, nn.ModuleList), always=True),
    Mistake("not_a_list", lambda c, got, o: _(
        "Your function returns {type}; return an nn.ModuleList with one entry per branch of the next stage (None, "
        "or the layers for that branch).", type=a_type(got)),
            when=lambda c, got, o: got is not None and not isinstance(got, (nn.Module, list, tuple, BaseException))),
    Mistake("length", lambda c, got, o: _("The next stage has {n} branches, so the transition needs {n} entries (one "
                                          "per output branch); yours has {got}.", n=len(c.args[1]), got=len(got)),
            when=lambda c, got, o: isinstance(got, nn.ModuleList) and len(got) != len(c.args[1])),
    # `pass` always: an nn.Identity or an empty nn.Sequential gives the same outputs and keys as None
    *_always(fact_mistakes(_entry_facts, [
        ("entry_type", lambda f: f.op is not None and not f.module, N_(
            "Entry {i} is {type}: each entry is None or one nn.Sequential. Wrap the steps of a new branch in one "
            "nn.Sequential (a list registers no layers, and an nn.ModuleList cannot be called).")),
        ("pass", lambda f: f.kind == "pass" and f.op is not None, N_(
            "Entry {i} should be None: branch {i} already has {cout} channels, so it passes as it is (the official "
            "forward tests `transition[i] is not None`: an nn.Identity or an empty nn.Sequential is not None).")),
        ("adapt_none", lambda f: f.kind == "adapt" and f.op is None,
         N_("Entry {i} is None, but branch {i} comes in with {cin} channels and must leave with {cout}.")),
        ("new_none", lambda f: f.kind == "new" and f.op is None,
         N_("Entry {i} is None, but branch {i} is new: the previous stage has only {npre} branch(es).")),
        ("adapt_stride", lambda f: f.kind == "adapt" and f.n2, N_("Branch {i} already exists at its resolution; "
                                                                  "adapt its channels with a stride-1 3x3 conv, no stride 2.")),
        ("adapt_empty", lambda f: f.kind == "adapt" and not f.convs, N_(
            "Entry {i} has no conv, but branch {i} comes in with {cin} channels and must leave with {cout}: one "
            "stride-1 3x3 conv + BN + ReLU.")),
        ("adapt_in", lambda f: f.kind == "adapt" and f.convs and f.first_in != f.cin,
         N_("Entry {i} adapts branch {i}, which has {cin} channels; your conv takes {first_in}.")),
        # with no conv at all, new_steps below says how many it needs
        ("new_from", lambda f: f.kind == "new" and f.convs and f.first_in != f.cin, N_(
            "Branch {i} is born from the lowest-resolution branch of the previous stage (y_list[-1], {cin} channels); "
            "your first conv takes {first_in}.")),
        ("new_steps", lambda f: f.kind == "new" and not f.n2 == len(f.convs) == f.steps, N_(
            "Branch {i} is {steps} halving(s) below the previous lowest branch, so it needs {steps} stride-2 conv(s); "
            "yours has {has}.")),
        ("new_channels", lambda f: f.kind == "new" and any(c.out_channels != f.cin for c in f.convs[:-1]),
         N_("Entry {i}: the intermediate stride-2 steps keep {cin} channels; only the last switches to {cout}.")),
        ("new_flat", lambda f: f.kind == "new" and f.flat, N_(
            "Entry {i}: put each stride-2 step in its own nn.Sequential(conv, BN, ReLU) and the steps in one more "
            "nn.Sequential, even when there is only one step, so that the keys are the official ones ({i}.0.0.weight, "
            "not {i}.0.weight).")),
        ("kernel", lambda f: any(c.kernel_size != (3, 3) or c.padding != (1, 1) for c in f.convs),
         N_("Entry {i}: every transition conv is 3x3 with padding 1 (kernel_size=3, padding=1).")),
        ("bn", lambda f: f.op is not None and f.bns < len(f.convs),
         N_("Entry {i}: every conv is followed by a BatchNorm2d (conv, BN, ReLU).")),
        ("bias", lambda f: any(c.bias is not None for c in f.convs),
         N_("Entry {i}: the convs take bias=False (a BatchNorm follows each).")),
        ("relu", lambda f: f.op is not None and f.relus < len(f.convs), N_(
            "Entry {i}: every transition step ends with a ReLU (conv, BN, ReLU). Unlike the fuse chain, nothing is "
            "summed after a transition, so nothing else would apply it.")),
    ]), "pass"),
]


def _slip(change, new: bool):
    """A wrong answer: the reference with ``change(t, i, pre, cur)`` as entry i of each new (or each old) branch."""
    def build(pre, cur):
        t = make_transition(pre, cur)
        for i in range(len(cur)):
            if (i >= len(pre)) == new:
                t[i] = change(t, i, pre, cur)
        return t
    return build


def _step(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def _from_branch_above(pre, cur):
    """A slip: a new branch i built from pre[i - 1], "the branch just above", which is the lowest one only while a
    stage adds a single branch; with two new branches pre[i - 1] is past the end of the list."""
    layers = []
    for i, cout in enumerate(cur):
        if i < len(pre):
            layers.append(None if pre[i] == cout else _step(pre[i], cout, 1))
        else:
            steps, cin = i + 1 - len(pre), pre[i - 1]
            layers.append(nn.Sequential(*[_step(cin, cout if s == steps - 1 else cin, 2) for s in range(steps)]))
    return nn.ModuleList(layers)


transition_op = ModuleExercise(
    name="transition_op", lesson="04", fn_name="make_transition",
    question=N_("Write `make_transition(pre_channels, cur_channels)`: an nn.ModuleList with one entry per branch of "
                "the next stage: None (pass), a stride-1 3x3 conv + BN + ReLU (adapt), or stride-2 steps from the "
                "lowest branch (new), as the official `_make_transition_layer`."),
    reference=make_transition, official=Transition, cases=TRANSITION_CASES, against=N_("the official module"),
    inputs=lambda pre, cur: tuple(torch.randn(1, c, 16 >> b, 16 >> b) for b, c in enumerate(pre)),
    run=lambda t, *y_list: run_transition(t, list(y_list)),  # the learner's ModuleList has no pre_channels to check
    mistakes=[*_TRANSITION_MISTAKES, Mistake("branch_above", N_(
        "A new branch is built from the lowest branch of the previous stage, pre_channels[-1] (the official "
        "num_channels_pre_layer[-1]); pre_channels[i - 1] does not exist once a stage adds two branches."),
        like=_from_branch_above)],
    nesting=N_("Adapting is one nn.Sequential(conv, BN, ReLU); a new branch is an nn.Sequential of such steps."),
    success=lambda n: _("Your transitions match ht.Transition (entries, layers, keys, output shapes) on {n} cases, "
                        "including two new branches at once.", n=n),
    hints=[N_("For i < len(pre_channels): None if the channels already match, else "
              "nn.Sequential(nn.Conv2d(pre[i], cur[i], 3, 1, 1, bias=False), nn.BatchNorm2d(cur[i]), nn.ReLU())."),
           N_("For a new branch i: i + 1 - len(pre_channels) steps, each nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, "
              "bias=False), nn.BatchNorm2d(cout), nn.ReLU()), starting from pre_channels[-1]; only the last step "
              "switches to cur[i]."),
           N_("Wrap the steps of a new branch in one more nn.Sequential, and all entries in an nn.ModuleList.")],
    wrong_answers=[
        (_slip(lambda t, i, pre, cur: nn.Sequential(*t[i][:-1], nn.Sequential(*t[i][-1][:2])), new=True),
         "every transition step ends with a ReLU"),
        (_slip(lambda t, i, pre, cur: make_transition([pre[0]] * len(pre), cur)[i], new=True),
         "born from the lowest-resolution branch"),
        (_slip(lambda t, i, pre, cur: t[i] or _step(pre[i], cur[i], 1), new=False), "passes as it is"),
        (_slip(lambda t, i, pre, cur: t[i] and _step(pre[i], cur[i], 2), new=False), "no stride 2"),
        (lambda pre, cur: list(make_transition(pre, cur)), "nn.ModuleList"),
        (_slip(lambda t, i, pre, cur: nn.Sequential(_step(pre[-1], cur[i], 2)), new=True), "needs 2 stride-2 conv(s)"),
        (lambda pre, cur: Transition(pre, cur), "package's own Transition"),
        (lambda pre, cur: make_transition(pre, cur)[:len(pre)], "needs 2 entries"),
        (_slip(lambda t, i, pre, cur: None, new=True), "is new"),
        (lambda pre, cur: nn.Sequential(*make_transition(pre, cur)), "return an nn.ModuleList, as the question asks"),
        (_slip(lambda t, i, pre, cur: t[i] and nn.Sequential(t[i][0], t[i][2]), new=False), "followed by a BatchNorm2d"),
        (_slip(lambda t, i, pre, cur: nn.Sequential(*[_step(pre[-1] if s == 0 else cur[i], cur[i], 2)
                                                      for s in range(len(t[i]))]), new=True),
         "intermediate stride-2 steps keep"),  # the first step already switches to cur[i]
        (_slip(lambda t, i, pre, cur: t[i] and nn.Sequential(nn.Conv2d(pre[i], cur[i], 1, bias=False), *t[i][1:]),
               new=False), "3x3 with padding 1"),
        (_slip(lambda t, i, pre, cur: None, new=False), "must leave with"),
        (_slip(lambda t, i, pre, cur: t[i] and _step(cur[i], cur[i], 1), new=False), "your conv takes 18"),
        (_slip(lambda t, i, pre, cur: t[i] and nn.Sequential(nn.Conv2d(pre[i], cur[i], 3, 1, 1), *t[i][1:]), new=False),
         "bias=False"),
        (_slip(lambda t, i, pre, cur: t[i] or nn.Identity(), new=False), "an nn.Identity or an empty nn.Sequential"),
        (_slip(lambda t, i, pre, cur: t[i] or nn.Sequential(), new=False), "Entry 0 should be None"),
        (_slip(lambda t, i, pre, cur: nn.Sequential(*t[i][1:]), new=True), "needs 1 stride-2 conv(s); yours has 0"),
        (lambda pre, cur: [list(t) if i >= len(pre) else t for i, t in enumerate(make_transition(pre, cur))],
         "Entry 1 is a list"),  # a plain list, whose new entry is a list of steps
        (_slip(lambda t, i, pre, cur: nn.ModuleList(t[i]), new=True), "Entry 1 is a ModuleList"),
        (lambda pre, cur: dict(enumerate(make_transition(pre, cur))), "returns a dict; return an nn.ModuleList"),
        (_slip(lambda t, i, pre, cur: nn.Sequential(*[m for step in t[i] for m in step]), new=True),
         "put each stride-2 step in its own nn.Sequential"),
        (_slip(lambda t, i, pre, cur: t[i][0] if len(t[i]) == 1 else t[i], new=True), "(1.0.0.weight, not 1.0.weight)"),
        (_slip(lambda t, i, pre, cur: t[i] and nn.Sequential(), new=False), "Entry 0 has no conv"),
    ],
)

def _read_kinds(answer) -> list[str]:
    if isinstance(answer, str):
        raise Wrong(_("Give a list of words, one per entry, each 'pass', 'adapt' or 'new'; you gave {answer}.",
                      answer=repr(answer)))
    if isinstance(answer, (dict, set, frozenset)):  # the words by entry: a dict's keys would be read, a set has no order
        raise Wrong(_("Give a list of words in the order of the entries (entry 0 first), e.g. ['pass', 'new'], not a "
                      "{type}.", type=type(answer).__name__))
    return [as_word(a, ("pass", "adapt", "new"), N_("a kind")) for a in as_strings(answer, N_("one word per entry"), "['pass', 'new']")]


transition1_kinds = ValueExercise(
    name="transition1_kinds", lesson="04",
    question=N_("transition1 of w18 has two entries. For each, is it 'pass' (None), 'adapt' (stride-1 conv) "
                "or 'new' (stride-2 conv from the lowest branch)? Answer as a list of two words."),
    read=_read_kinds, reference=["adapt", "new"],
    rules=[(lambda got, want: len(got) != 2, lambda got, want: _(
               "transition1 leads into stage 2, which has 2 branches: give 2 kinds, not {n}.", n=len(got))),
           (lambda got, want: got[0] == "pass", N_("Stage 1 (layer1) outputs 256 channels (64 x expansion 4), and "
                                                   "stage 2's branch 0 wants 18: adapt.")),
           (lambda got, want: got[1] != "new", N_("Stage 1 has one branch; branch 1 does not exist before "
                                                  "transition1, so it is new."))],
    mistakes={("new", "adapt"): N_("Swapped: entry 0 keeps 1/4 and only changes 256 -> 18 channels (adapt); "
                                   "entry 1 is the new 1/8 branch.")},
    otherwise=N_("Entry 0 keeps the resolution (1/4); it only changes the channels."),
    success=N_("Entry 0 adapts layer1's 256 channels to C = 18 with a stride-1 3x3 conv (same 1/4 resolution); "
               "entry 1 creates the 1/8 branch from the same 256-channel map with one stride-2 conv to 36."),
    hints=[N_("What does layer1 output? (lesson 01: Bottlenecks, expansion 4.) What does stage 2's branch 0 take?")],
    solution_text=N_("`answer = ['adapt', 'new']`: 256 -> 18 at 1/4, and 256 -> 36 at 1/8."),
    wrong_answers=[(["pass", "new"], "256 channels"), (["adapt", "adapt"], "it is new"),
                   (["new", "new"], "only changes the channels"), (["adapt"], "2 branches"), ("adapt new", "list of words"),
                   (["调整", "新建"], "the names the code uses"), (["adapt", "old"], "'old' is not one of 'pass', 'adapt', 'new'"),
                   ({"0": "adapt", "1": "new"}, "in the order of the entries"), ({"adapt", "new"}, "not a set")],
)

_W48 = get_config("w48")

STAGE3 = len(_W48.stage3.num_channels)  # transition2's entries


def _read_entries(answer) -> list[int]:
    """as_indices, with -3 <= k < 0 read as the entry Python's indexing gives (y[-3] is y[0])."""
    indices = as_indices(answer, N_("entry indices"))
    return sorted({k % STAGE3 if -STAGE3 <= k < 0 else k for k in indices})


transition2_none = ValueExercise(
    name="transition2_none", lesson="04",
    question=N_("Which entries of transition2 of w48 are None? Answer as a list of indices."),
    read=_read_entries, reference=[0, 1],
    rules=[(lambda got, want: any(not 0 <= i <= 2 for i in got),
            N_("transition2 leads into stage 3, which has 3 branches: entries 0 to 2.")),
           (lambda got, want: 2 in got, N_("Entry 2 is the new 1/16 branch: it is a stride-2 conv from branch 1, not None.")),
           (lambda got, want: not got, N_("Stages 2 and 3 of w48 give branches 0 and 1 the same channels ({channels}): "
                                          "nothing to adapt, so those entries are None.",
                                          channels=_W48.stage2.num_channels))],
    otherwise=N_("Both existing branches keep their channels from stage 2 to stage 3."),
    success=N_("Entries 0 and 1 are None: branches 0 and 1 leave stage 2 with {channels} channels and stage 3 wants "
               "the same. Entry 2 creates the 1/16 branch ({new} channels).",
               channels=_W48.stage2.num_channels, new=_W48.stage3.num_channels[2]),
    hints=[N_("transition2 goes from stage 2 (2 branches) to stage 3 (3 branches)."),
           N_("An entry is None when the branch exists and keeps its channels.")],
    solution_text=N_("`answer = [0, 1]`: 48 -> 48 and 96 -> 96 pass; entry 2 creates the 192-channel branch."),
    wrong_answers=[([], "nothing to adapt"), ([0, 1, 2], "new 1/16 branch"), ([2], "not None"), ([0], "keep their channels"),
                   ([3], "entries 0 to 2"), ("0, 1", "list of entry indices"),
                   ([True, True, False], "True/False flags"), ([-1], "Entry 2 is the new 1/16 branch")],
)

branch4_source = ValueExercise(
    name="branch4_source", lesson="04",
    question=N_("In the official forward, stage 4's new branch 3 (the fourth, at 1/32) is computed by transition3 "
                "from which stage-3 output y_list[k]? Give k."),
    read=lambda a: (lambda k: k % 3 if -3 <= k < 0 else k)(
        as_int(a, N_("the index k of the stage-3 output (-1 allowed)"))),
    reference=-1,
    success=N_("y_list[-1], that is branch 2 (1/16), the lowest resolution stage 3 has: one stride-2 conv takes "
               "it to 1/32. There is no fuse_layers entry for it: branches are born in transitions, not in fusion."),
    mistakes={3: N_("Stage 3 outputs only branches 0, 1, 2 (y_list has 3 entries), so y_list[3] does not exist: "
                    "`i < self.stage3_cfg['NUM_BRANCHES']` is False for i = 3, so the code takes y_list[-1]."),
              **dict.fromkeys((0, 1), N_("The official forward reads `self.transition3[i](y_list[-1])` for a new "
                                         "branch: the lowest-resolution branch, which is only one halving away from 1/32."))},
    otherwise=N_("Stage 3 has three outputs: y_list[0], y_list[1], y_list[2]."),
    hints=[N_("`if i < self.stage3_cfg['NUM_BRANCHES']: ... transition3[i](y_list[i]) else: ... transition3[i](y_list[-1])`"),
           N_("Stage 3 has 3 branches; i = 3 is not < 3.")],
    solution_text=N_("`answer = -1` (or 2): the lowest-resolution branch of stage 3, 1/16, one stride-2 step from 1/32."),
    wrong_answers=[(7, "three outputs"), ("-1", "whole number"), (-2, "only one halving")],
)

EXERCISES = [transition_op, transition1_kinds, transition2_none, branch4_source]
