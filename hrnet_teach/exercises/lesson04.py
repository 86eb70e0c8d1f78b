"""Lesson 04, transitions: pass, adapt or create; building one; where a new branch comes from."""
from __future__ import annotations

import torch
from torch import nn

from ..blocks import BN_MOMENTUM
from ..config import get_config
from ..transition import Transition
from ._answers import as_function, as_indices, as_int, layer_summary, one_thread
from ._base import Exercise, Wrong

# ------------------------------------------------- 1. build a transition


def make_transition(pre_channels, cur_channels) -> nn.ModuleList:
    """The official ``_make_transition_layer`` (the reference answer)."""
    layers = []
    for i, cout in enumerate(cur_channels):
        if i < len(pre_channels):  # the branch exists: pass it, or adapt its channels at stride 1
            cin = pre_channels[i]
            if cin == cout:
                layers.append(None)
            else:
                layers.append(nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
                                            nn.BatchNorm2d(cout, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)))
        else:  # a new branch: stride-2 steps from the lowest-resolution branch
            cin = pre_channels[-1]
            steps = i + 1 - len(pre_channels)
            chain = []
            for s in range(steps):
                out = cout if s == steps - 1 else cin
                chain.append(nn.Sequential(nn.Conv2d(cin, out, 3, 2, 1, bias=False),
                                           nn.BatchNorm2d(out, momentum=BN_MOMENTUM), nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*chain))
    return nn.ModuleList(layers)


# (channels before, channels after): stage 1 -> 2 of W18 and of the small model, a new
# branch for W18 and W48, and two new branches at once (the official code allows it).
TRANSITION_CASES = [((256,), (18, 36)), ((128,), (16, 32)), ((18, 36), (18, 36, 72)),
                    ((48, 96, 192), (48, 96, 192, 384)), ((32, 64), (32, 64, 128, 256))]
_SIZE = 16  # branch b of the test inputs is (16 >> b) pixels wide


def _kind(pre, cur, i) -> str:
    if i >= len(pre):
        return "new"
    return "pass" if pre[i] == cur[i] else "adapt"


def _check_entry(op, pre, cur, i, call) -> None:
    kind = _kind(pre, cur, i)
    if kind == "pass":
        if op is not None:
            raise Wrong(f"{call}: entry {i} should be None: branch {i} already has {cur[i]} channels, so it passes as it is.")
        return
    if op is None:
        why = (f"branch {i} comes in with {pre[i]} channels and must leave with {cur[i]}" if kind == "adapt"
               else f"branch {i} is new: the previous stage has only {len(pre)} branch(es)")
        raise Wrong(f"{call}: entry {i} is None, but {why}.")
    if not isinstance(op, nn.Module):
        raise Wrong(f"{call}: entry {i} is a {type(op).__name__}; each entry is None or an nn.Module.")
    convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise Wrong(f"{call}: entry {i} has no convolution.")
    strided = [c for c in convs if c.stride[0] == 2]
    if kind == "adapt":
        if strided:
            raise Wrong(f"{call}: branch {i} already exists at its resolution; adapt its channels with a stride-1 "
                        "3x3 conv, no stride 2.")
        if convs[0].in_channels != pre[i]:
            raise Wrong(f"{call}: entry {i} adapts branch {i}, which has {pre[i]} channels; your conv takes {convs[0].in_channels}.")
    else:
        steps = i + 1 - len(pre)
        if convs[0].in_channels != pre[-1]:
            raise Wrong(f"{call}: branch {i} is born from the lowest-resolution branch of the previous stage "
                        f"(y_list[-1], {pre[-1]} channels); your first conv takes {convs[0].in_channels}.")
        if len(strided) != len(convs) or len(strided) != steps:
            raise Wrong(f"{call}: branch {i} is {steps} halving(s) below the previous lowest branch, so it needs {steps} "
                        f"stride-2 conv(s); yours has {len(strided)} stride-2 and {len(convs) - len(strided)} other conv(s).")


def _check_one_transition(fn, pre, cur) -> None:
    call = f"make_transition({list(pre)}, {list(cur)})"
    try:
        result = fn(list(pre), list(cur))
    except NotImplementedError:
        raise
    except Exception as error:
        raise Wrong(f"{call} raised {type(error).__name__}: {error}") from None
    if isinstance(result, Transition):
        raise Wrong("That is the package's own Transition; build the entries yourself from nn.Conv2d, nn.BatchNorm2d, "
                    "nn.ReLU and nn.Sequential, in an nn.ModuleList.")
    if isinstance(result, (list, tuple)):
        raise Wrong(f"{call} returned a plain {type(result).__name__}. Return an nn.ModuleList: a list does not register "
                    "its layers, so they would have no parameters in the model and no state-dict keys.")
    if not isinstance(result, nn.ModuleList):
        raise Wrong(f"{call} returned a {type(result).__name__}; return an nn.ModuleList with one entry per output branch.")
    if len(result) != len(cur):
        raise Wrong(f"{call}: the next stage has {len(cur)} branches, so the transition needs {len(cur)} entries "
                    f"(one per output branch); yours has {len(result)}.")
    for i, op in enumerate(result):
        _check_entry(op, pre, cur, i, call)
    # run it as the official forward does: existing branches from y_list[i], new ones from y_list[-1]
    inputs = [torch.randn(1, c, _SIZE >> b, _SIZE >> b) for b, c in enumerate(pre)]
    for i, op in enumerate(result):
        if op is None:
            continue
        source = inputs[i] if i < len(pre) else inputs[-1]
        try:
            with torch.no_grad():
                y = op.eval()(source)
        except Exception as error:
            raise Wrong(f"{call}: entry {i} fails on a {tuple(source.shape)} input: {type(error).__name__}: {error}") from None
        expected = (1, cur[i], _SIZE >> i, _SIZE >> i)
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != expected:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise Wrong(f"{call}: entry {i} gives {got}; branch {i} of the next stage is {expected} "
                        "(3x3 convs take padding=1).")
    official = Transition(pre, cur)
    for i, (op, ref) in enumerate(zip(result, official)):
        if ref is None:
            continue
        ours, theirs = layer_summary(op), layer_summary(ref)
        if ours != theirs:
            if any(line.startswith("Conv2d") and line.endswith("bias") for line in ours):
                raise Wrong(f"{call}: entry {i}: the convs take bias=False (a BatchNorm follows each).")
            if ours.count("ReLU") < theirs.count("ReLU"):
                raise Wrong(f"{call}: entry {i}: every transition step ends with a ReLU (conv, BN, ReLU). Unlike the "
                            "fuse chain, nothing is summed after a transition, so nothing else would apply it.")
            raise Wrong(f"{call}: entry {i} is {ours}; the official one is {theirs}.")
    keys = [(k, tuple(v.shape)) for k, v in result.state_dict().items()]
    expected_keys = [(k, tuple(v.shape)) for k, v in official.state_dict().items()]
    if keys != expected_keys:
        raise Wrong(f"{call}: the layers are right but nested differently, so official checkpoints would not load: your "
                    f"keys {[k for k, _ in keys[:4]]}, official {[k for k, _ in expected_keys[:4]]}. Adapting is one "
                    "nn.Sequential(conv, BN, ReLU); a new branch is an nn.Sequential of such steps.")


def _check_make_transition(fn) -> str:
    as_function(fn, "make_transition")
    with one_thread():
        for pre, cur in TRANSITION_CASES:
            _check_one_transition(fn, pre, cur)
    return (f"Your transitions match ht.Transition (entries, layers, keys, output shapes) on {len(TRANSITION_CASES)} "
            "cases, including two new branches at once.")


def _no_relu_on_new(pre, cur):
    t = make_transition(pre, cur)
    for i in range(len(pre), len(cur)):
        del t[i][-1][2]
    return t


def _new_from_first(pre, cur):
    t = make_transition(pre, cur)
    for i in range(len(pre), len(cur)):
        t[i] = make_transition([pre[0]] * len(pre), cur)[i]
    return t


def _always_adapt(pre, cur):
    t = make_transition(pre, cur)
    for i in range(len(pre)):
        if t[i] is None:
            t[i] = nn.Sequential(nn.Conv2d(pre[i], cur[i], 3, 1, 1, bias=False), nn.BatchNorm2d(cur[i]), nn.ReLU(inplace=True))
    return t


def _adapt_with_stride2(pre, cur):
    t = make_transition(pre, cur)
    for i in range(len(pre)):
        if t[i] is not None:
            t[i][0] = nn.Conv2d(pre[i], cur[i], 3, 2, 1, bias=False)
    return t


def _plain_list(pre, cur):
    return list(make_transition(pre, cur))


def _one_step_for_all(pre, cur):
    t = make_transition(pre, cur)
    for i in range(len(pre), len(cur)):
        t[i] = nn.Sequential(nn.Sequential(nn.Conv2d(pre[-1], cur[i], 3, 2, 1, bias=False), nn.BatchNorm2d(cur[i]),
                                           nn.ReLU(inplace=True)))
    return t


transition_op = Exercise(
    name="transition_op",
    lesson="04",
    question=("Write `make_transition(pre_channels, cur_channels)`: an nn.ModuleList with one entry per branch of the "
              "next stage: None (pass), a stride-1 3x3 conv + BN + ReLU (adapt), or stride-2 steps from the "
              "lowest branch (new), as the official `_make_transition_layer`."),
    checker=_check_make_transition,
    reference=make_transition,
    hints=[
        "For i < len(pre_channels): None if the channels already match, else "
        "nn.Sequential(nn.Conv2d(pre[i], cur[i], 3, 1, 1, bias=False), nn.BatchNorm2d(cur[i]), nn.ReLU()).",
        "For a new branch i: i + 1 - len(pre_channels) steps, each nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, "
        "bias=False), nn.BatchNorm2d(cout), nn.ReLU()), starting from pre_channels[-1]; only the last step switches to cur[i].",
        "Wrap the steps of a new branch in one more nn.Sequential, and all entries in an nn.ModuleList.",
    ],
    solution_text=(
        "```python\ndef make_transition(pre_channels, cur_channels):\n"
        "    layers = []\n"
        "    for i, cout in enumerate(cur_channels):\n"
        "        if i < len(pre_channels):\n"
        "            cin = pre_channels[i]\n"
        "            layers.append(None if cin == cout else nn.Sequential(\n"
        "                nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)))\n"
        "        else:\n"
        "            cin, steps = pre_channels[-1], i + 1 - len(pre_channels)\n"
        "            chain = []\n"
        "            for s in range(steps):\n"
        "                out = cout if s == steps - 1 else cin\n"
        "                chain.append(nn.Sequential(nn.Conv2d(cin, out, 3, 2, 1, bias=False),\n"
        "                                           nn.BatchNorm2d(out), nn.ReLU(inplace=True)))\n"
        "            layers.append(nn.Sequential(*chain))\n"
        "    return nn.ModuleList(layers)\n```"
    ),
    wrong_answers=[
        (_no_relu_on_new, "every transition step ends with a ReLU"),
        (_new_from_first, "born from the lowest-resolution branch"),
        (_always_adapt, "passes as it is"),
        (_adapt_with_stride2, "no stride 2"),
        (_plain_list, "nn.ModuleList"),
        (_one_step_for_all, "needs 2 stride-2 conv(s)"),
        (lambda pre, cur: Transition(pre, cur), "package's own Transition"),
    ],
)

# ---------------------------------------- 2. what kind is each entry of transition1

KIND_VARIANT = "w18"


def _check_transition1_kinds(answer) -> str:
    if not isinstance(answer, (list, tuple)) or not all(isinstance(a, str) for a in answer):
        raise Wrong(f"Give a list of words, one per entry, each 'pass', 'adapt' or 'new'; you gave {answer!r}.")
    kinds = [a.strip().lower() for a in answer]
    if any(k not in ("pass", "adapt", "new") for k in kinds):
        raise Wrong(f"Each entry is 'pass', 'adapt' or 'new'; you gave {answer!r}.")
    if len(kinds) != 2:
        raise Wrong(f"transition1 leads into stage 2, which has 2 branches: give 2 kinds, not {len(kinds)}.")
    if kinds == ["adapt", "new"]:
        return ("Entry 0 adapts layer1's 256 channels to C = 18 with a stride-1 3x3 conv (same 1/4 resolution); "
                "entry 1 creates the 1/8 branch from the same 256-channel map with one stride-2 conv to 36.")
    if kinds[0] == "pass":
        raise Wrong("Stage 1 (layer1) outputs 256 channels (64 x expansion 4), and stage 2's branch 0 wants 18: adapt.")
    if kinds[1] != "new":
        raise Wrong("Stage 1 has one branch; branch 1 does not exist before transition1, so it is new.")
    raise Wrong("Entry 0 keeps the resolution (1/4); it only changes the channels.")


transition1_kinds = Exercise(
    name="transition1_kinds",
    lesson="04",
    question=(f"transition1 of {KIND_VARIANT} has two entries. For each, is it 'pass' (None), 'adapt' (stride-1 conv) "
              "or 'new' (stride-2 conv from the lowest branch)? Answer as a list of two words."),
    checker=_check_transition1_kinds,
    reference=["adapt", "new"],
    hints=["What does layer1 output? (lesson 01: Bottlenecks, expansion 4.) What does stage 2's branch 0 take?"],
    solution_text="`answer = ['adapt', 'new']`: 256 -> 18 at 1/4, and 256 -> 36 at 1/8.",
    wrong_answers=[(["pass", "new"], "256 channels"), (["adapt", "adapt"], "it is new"),
                   (["new", "new"], "only changes the channels"), (["adapt"], "2 branches"), ("adapt new", "list of words")],
)

# --------------------------------------------- 3. which entries of transition2 are None

NONE_VARIANT = "w48"


def _check_transition2_none(answer) -> str:
    indices = as_indices(answer, "entry indices")
    cfg = get_config(NONE_VARIANT)
    n = cfg.stage3.num_branches
    if indices == [0, 1]:
        return (f"Entries 0 and 1 are None: branches 0 and 1 leave stage 2 with {cfg.stage2.num_channels} channels and "
                f"stage 3 wants the same. Entry 2 creates the 1/16 branch ({cfg.stage3.num_channels[2]} channels).")
    if any(i >= n or i < 0 for i in indices):
        raise Wrong(f"transition2 leads into stage 3, which has {n} branches: entries 0 to {n - 1}.")
    if 2 in indices:
        raise Wrong("Entry 2 is the new 1/16 branch: it is a stride-2 conv from branch 1, not None.")
    if not indices:
        raise Wrong(f"Stages 2 and 3 of {NONE_VARIANT} give branches 0 and 1 the same channels ({cfg.stage2.num_channels}): "
                    "nothing to adapt, so those entries are None.")
    raise Wrong("Both existing branches keep their channels from stage 2 to stage 3.")


transition2_none = Exercise(
    name="transition2_none",
    lesson="04",
    question=f"Which entries of transition2 of {NONE_VARIANT} are None? Answer as a list of indices.",
    checker=_check_transition2_none,
    reference=[0, 1],
    hints=["transition2 goes from stage 2 (2 branches) to stage 3 (3 branches).",
           "An entry is None when the branch exists and keeps its channels."],
    solution_text="`answer = [0, 1]`: 48 -> 48 and 96 -> 96 pass; entry 2 creates the 192-channel branch.",
    wrong_answers=[([], "nothing to adapt"), ([0, 1, 2], "new 1/16 branch"), ([2], "not None"), ([0], "keep their channels"),
                   ([3], "entries 0 to 2"), ("0, 1", "list of entry indices")],
)

# ------------------------------------------ 4. where does branch 3 come from?


def _check_branch4_source(answer) -> str:
    answer = as_int(answer, "the index k of the stage-3 output (-1 allowed)")
    if answer in (2, -1):
        return ("y_list[-1], that is branch 2 (1/16), the lowest resolution stage 3 has: one stride-2 conv takes "
                "it to 1/32. There is no fuse_layers entry for it: branches are born in transitions, not in fusion.")
    if answer == 3:
        raise Wrong("Stage 3 outputs only branches 0, 1, 2 (y_list has 3 entries), so y_list[3] does not exist, just "
                    "as fuse_layers[3][4] does not: `i < num_branches` is False for i = 3, so the code takes y_list[-1].")
    if answer in (0, 1, -3, -2):
        raise Wrong("The official forward reads `self.transition3[i](y_list[-1])` for a new branch: the lowest-resolution "
                    "branch, which is only one halving away from 1/32.")
    raise Wrong("Stage 3 has three outputs: y_list[0], y_list[1], y_list[2].")


branch4_source = Exercise(
    name="branch4_source",
    lesson="04",
    question=("In the official forward, stage 4's new branch 3 (the fourth, at 1/32) is computed by transition3 "
              "from which stage-3 output y_list[k]? Give k."),
    checker=_check_branch4_source,
    reference=-1,
    hints=["`if i < self.stage3_cfg.num_branches: ... transition3[i](y_list[i]) else: ... transition3[i](y_list[-1])`",
           "Stage 3 has 3 branches; i = 3 is not < 3."],
    solution_text="`answer = -1` (or 2): the lowest-resolution branch of stage 3, 1/16, one stride-2 step from 1/32.",
    wrong_answers=[(3, "does not exist"), (0, "y_list[-1]"), (1, "only one halving"), (7, "three outputs"), ("-1", "whole number")],
)

EXERCISES = [transition_op, transition1_kinds, transition2_none, branch4_source]
