"""Lesson 08, from the course to the real code: the official code's pitfalls as
exercises (the silent partial load, sizes not divisible by 32, SyncBatchNorm on
CPU, the in-place list)."""
from __future__ import annotations

from torch import nn

from ..inspect import stage_shapes
from ._answers import as_ints, as_strings
from ._base import Wrong
from ._kinds import ChoiceExercise, ValueExercise

# A segmentation model of w18 for 19 classes, and a checkpoint trained with the learner's modified
# seg_hrnet.py with upscale=2 (last_layer reads 270 + 64 = 334 channels) by the official trainer, which
# saves its FullModel: the network under "model." (stripped here) and the loss, with its class weights,
# under "loss.". A few keys of each, with their shapes.
MODEL_SHAPES = {
    "conv1.weight": (64, 3, 3, 3), "stage4.2.fuse_layers.0.3.0.weight": (18, 144, 1, 1),
    "last_layer.0.weight": (270, 270, 1, 1), "last_layer.1.weight": (270,),
    "last_layer.3.weight": (19, 270, 1, 1), "last_layer.3.bias": (19,),
}
CHECKPOINT_SHAPES = {
    "conv1.weight": (64, 3, 3, 3), "stage4.2.fuse_layers.0.3.0.weight": (18, 144, 1, 1),
    "last_layer.0.weight": (334, 334, 1, 1), "last_layer.1.weight": (334,),
    "last_layer.3.weight": (19, 334, 1, 1), "last_layer.3.bias": (19,), "loss.criterion.weight": (19,),
}
# What the modified file's init_weights drops: keys the model lacks, or has with another shape.
DROPPED = sorted(k for k, shape in CHECKPOINT_SHAPES.items() if MODEL_SHAPES.get(k) != shape)
LOSS_KEY = "loss.criterion.weight"

dropped_keys = ValueExercise(
    name="dropped_keys", lesson="08",
    question=("The init_weights of the learner's modified seg_hrnet.py keeps `{k: v for k, v in pretrained_dict.items() "
              "if k in model_dict.keys() and model_dict[k].shape == pretrained_dict[k].shape}` and drops the rest "
              "silently. With the shapes in `ex.MODEL_SHAPES` and `ex.CHECKPOINT_SHAPES`, which checkpoint keys does "
              "it drop? Answer a list of keys."),
    read=lambda a: frozenset(as_strings(a, "the keys", "['conv1.weight']")), reference=DROPPED,
    success=("Right: the three reshaped last_layer tensors and loss.criterion.weight vanish without a word, while "
             "last_layer.3.bias (19,) fits and loads: a classifier half loaded, and nothing tells you. "
             "hrnet_teach.weights.load_weights lists each of them."),
    rules=[(lambda got, want: got - set(CHECKPOINT_SHAPES), lambda got, want: (
               f"{', '.join(sorted(got - set(CHECKPOINT_SHAPES)))}: not a key of the checkpoint; the filter only "
               "drops checkpoint keys.")),
           (lambda got, want: "last_layer.3.bias" in got, "last_layer.3.bias has shape (19,) in both: the filter keeps "
            "it, so the final conv gets the new bias and keeps its random weight."),
           (lambda got, want: got - want, lambda got, want: (f"{', '.join(sorted(got - want))}: same key and same "
                                                             "shape in both, so the filter keeps it.")),
           (lambda got, want: want - got == {LOSS_KEY}, f"You missed {LOSS_KEY}: the model has no such key, so "
            "`k in model_dict` drops it too."),
           (lambda got, want: LOSS_KEY in got, lambda got, want: (f"You missed {', '.join(sorted(want - got))}: the "
                                                                  "shapes differ (334 channels against 270), so the "
                                                                  "shape test drops them."))],
    otherwise=lambda got, want: (f"You missed {', '.join(sorted(want - got))}: a key is dropped when the model lacks it "
                                 "or its shape differs."),
    hints=["Go through the checkpoint's keys one by one: is it in the model? Is its shape the same?",
           "Look closely at last_layer.3.bias: (19,) in both."],
    solution_text=("`answer = ['last_layer.0.weight', 'last_layer.1.weight', 'last_layer.3.weight', "
                   "'loss.criterion.weight']`: three by shape, one by name; last_layer.3.bias loads."),
    wrong_answers=[
        ([*DROPPED, "last_layer.3.bias"], "filter keeps it"), (DROPPED[:3], "missed loss.criterion.weight"),
        ([LOSS_KEY], "the shapes differ"), (["conv1.weight", *DROPPED], "same key and same shape"),
        (["classifier.weight"], "not a key of the checkpoint"), (["last_layer.0.weight"], "You missed"),
        (7, "list of strings"), (DROPPED[:2], "lacks it or its shape differs"),
    ],
)


def _branches() -> tuple[int, int, int, int]:
    """(h0, w0, h1, w1): branches 0 and 1 of w18's stage 4 for a 250x333 input."""
    (_, h0, w0), (_, h1, w1) = stage_shapes("w18", (250, 333))["stage4"][:2]
    return h0, w0, h1, w1


def _size_mistakes():
    h0, w0, h1, w1 = _branches()
    return {(h0, w0): (f"{h0}x{w0} is branch 0, the size the sum needs. Branch 1 is made by stride-2 convs, which "
                       f"round up: {h0} -> {h1}; what does doubling give?"),
            (h1, w1): f"{h1}x{w1} is branch 1 before upsampling; the fuse step doubles it (scale_factor=2).",
            (2 * (h0 // 2), 2 * (w0 // 2)): f"A 3x3 conv with stride 2 and padding 1 rounds up: {h0} -> {h1}, not {h0 // 2}.",
            (2 * w1, 2 * h1): "You swapped height and width: (height, width), height first."}


size_mismatch = ValueExercise(
    name="size_mismatch", lesson="08",
    question=("A 250x333 image goes into the official classification HRNet (w18), which fuses with "
              "`nn.Upsample(scale_factor=2**(j-i), mode='nearest')`. Branch 0 is 63x84. What (height, width) does "
              "branch 1 have after its upsampling by 2, in fuse_layers[0][1]?"),
    read=lambda a: as_ints(a, 2, "the size (height, width)", "(10, 20)"),
    reference=lambda: (2 * _branches()[2], 2 * _branches()[3]), mistakes=_size_mistakes,
    success=lambda got, want: (lambda h0, w0, h1, w1: (
        f"Branch 1 is {h1}x{w1} (stride-2 convs round up: {h0} -> {h1}), so nn.Upsample(scale_factor=2) gives "
        f"{2 * h1}x{2 * w1}, but branch 0 is {h0}x{w0}: the official sum `y = y + ...` fails on the height ({h0} "
        f"against {2 * h1}), while the width matches. hrnet_teach refuses such an input up front with a ValueError "
        "that says to resize or pad to multiples of 32."))(*_branches()),
    otherwise=lambda got, want: (f"Not {got[0]}x{got[1]}: find branch 1's size (halve branch 0's {_branches()[0]}x"
                                 f"{_branches()[1]}, rounding up), then double it."),
    hints=["conv3x3 with stride 2 and padding 1 maps a side n to ceil(n / 2).",
           "Branch 1 is ceil(63 / 2) x ceil(84 / 2); nearest upsampling by 2 doubles both."],
    solution_text=("`answer = (64, 84)`: 63 -> 32 -> 64 and 84 -> 42 -> 84; the sum with branch 0 (63x84) fails: "
                   "63 rows against 64."),
    wrong_answers=[((64.0, 84.0), "whole numbers"), (64, "(height, width)"), ((10, 10), "Not 10x10")],
)


def _norm_name(answer) -> str:
    if isinstance(answer, type):
        return answer.__name__
    if isinstance(answer, str):
        return answer.strip().removeprefix("torch.").removeprefix("nn.").strip()
    if isinstance(answer, nn.Module):
        raise Wrong(f"You passed a layer, {type(answer).__name__}(...); pass the class itself (no brackets): the "
                    "model builds one norm layer per conv, each with its own number of channels.")
    raise Wrong("Give a class such as nn.Identity (the class itself, or its name as a string); you gave "
                f"{type(answer).__name__} {answer!r}.")


def _other_maths(name, want):
    return (f"{name} computes something else than BatchNorm: the official checkpoints hold BatchNorm running "
            "statistics that it would not use, and the published results were trained with BatchNorm.")


cpu_norm_layer = ValueExercise(
    name="cpu_norm_layer", lesson="08",
    question=("You run the segmentation training on a machine without a GPU, with `torchrun --nproc_per_node=2` "
              "(the gloo backend). Which class do you pass as `norm_layer` to create_model?"),
    read=_norm_name, reference=nn.BatchNorm2d,
    success=("nn.BatchNorm2d: each process normalises with its own batch's statistics, which is all a CPU run "
             "can do; DistributedDataParallel still averages the gradients. On several GPUs, convert afterwards "
             "with nn.SyncBatchNorm.convert_sync_batchnorm(model): the state-dict keys stay the same."),
    mistakes={"SyncBatchNorm": ("Under torchrun a process group is running, and SyncBatchNorm then insists on a GPU: "
                                "'ValueError: SyncBatchNorm expected input tensor to be on GPU'. That is the official "
                                "code's module-level BatchNorm2d = SyncBatchNorm on a CPU."),
              "BatchNorm1d": "BatchNorm1d expects (B, C) or (B, C, L) inputs; feature maps are (B, C, H, W).",
              "BatchNorm3d": "BatchNorm3d expects (B, C, D, H, W) inputs; feature maps are (B, C, H, W).",
              **dict.fromkeys(("InstanceNorm2d", "GroupNorm", "LayerNorm", "LocalResponseNorm"), _other_maths)},
    otherwise=lambda name, want: f"{name} is not a norm layer HRNet uses; its checkpoints are built with BatchNorm.",
    hints=["SyncBatchNorm gathers statistics across processes with GPU collectives.",
           "The norm layer must also keep the checkpoints' keys and maths (running mean and variance)."],
    solution_text=("`answer = nn.BatchNorm2d` (the package's default). SyncBatchNorm only for several GPUs, e.g. "
                   "`nn.SyncBatchNorm.convert_sync_batchnorm(model)`."),
    wrong_answers=[(nn.SyncBatchNorm, "to be on GPU"), ("torch.nn.SyncBatchNorm", "to be on GPU"),
                   (nn.BatchNorm2d(8), "pass the class itself"), (nn.BatchNorm1d, "(B, C, H, W)"),
                   (nn.GroupNorm, "running statistics"), (nn.Conv2d, "not a norm layer"), (2, "Give a class")],
)

list_mutation = ChoiceExercise(
    name="list_mutation", lesson="08",
    question=("The official HighResolutionModule.forward(x) starts with `for i in range(self.num_branches): "
              "x[i] = self.branches[i](x[i])`, then builds `x_fuse`. After `out = module(inputs)`, what is in "
              "`inputs`?"),
    choices={"a": "inputs is unchanged: it still holds the tensors the caller put in",
             "b": "inputs now holds the branch outputs, before fusion",
             "c": "inputs now holds the module's outputs, after fusion (the same tensors as out)",
             "d": "inputs is empty"},
    answer="b",
    why={"a": "`x[i] = ...` assigns into the very list object the caller passed: a list is passed by reference, not copied.",
         "c": ("The fused outputs are collected in a new list (`x_fuse = []`, `x_fuse.append(...)`); what is "
               "written into x is the branches' output, before fusion."),
         "d": "Nothing removes entries: `x[i] = ...` replaces each one."},
    success=("b: `x[i] = self.branches[i](x[i])` writes each branch's output into the caller's list; the fused "
             "outputs go into a new list, x_fuse. Keep your inputs (to plot them, or reuse them) and they are gone. "
             "hrnet_teach builds a new list instead."),
    hints=["Python passes the list object itself; `x[i] = ...` writes into it.",
           "Which list does `x_fuse.append(self.relu(y))` fill?"],
    solution_text="`answer = 'b'`: the caller's list is overwritten with the branch outputs.",
    wrong_answers=[("z", "one letter"), (["b"], "one letter")],
)

EXERCISES = [dropped_keys, size_mismatch, cpu_norm_layer, list_mutation]
