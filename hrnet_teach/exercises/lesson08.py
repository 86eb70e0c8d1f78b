"""Lesson 08, from the course to the real code: the official code's pitfalls as
exercises (the silent partial load, sizes not divisible by 32, SyncBatchNorm on
CPU, the in-place list)."""
from __future__ import annotations

from torch import nn

from ..inspect import stage_shapes
from ._answers import as_choice, as_ints, as_strings, choices_text
from ._base import Exercise, Wrong

# ------------------------------------------------ 1. what the silent partial load drops

# A segmentation model of w18 for 19 classes, and a checkpoint trained with the seed's code
# with upscale=2 (last_layer reads 270 + 64 = 334 channels) by the official trainer, which
# saves its FullModel: the network under "model." (stripped here) and the loss, with its
# class weights, under "loss.". A few keys of each, with their shapes.
MODEL_SHAPES = {
    "conv1.weight": (64, 3, 3, 3),
    "stage4.2.fuse_layers.0.3.0.weight": (18, 144, 1, 1),
    "last_layer.0.weight": (270, 270, 1, 1),
    "last_layer.1.weight": (270,),
    "last_layer.3.weight": (19, 270, 1, 1),
    "last_layer.3.bias": (19,),
}
CHECKPOINT_SHAPES = {
    "conv1.weight": (64, 3, 3, 3),
    "stage4.2.fuse_layers.0.3.0.weight": (18, 144, 1, 1),
    "last_layer.0.weight": (334, 334, 1, 1),
    "last_layer.1.weight": (334,),
    "last_layer.3.weight": (19, 334, 1, 1),
    "last_layer.3.bias": (19,),
    "loss.criterion.weight": (19,),
}


def official_filter(checkpoint: dict, model: dict) -> dict:
    """What the seed's ``init_weights`` keeps: keys the model has, with the same shape."""
    return {k: v for k, v in checkpoint.items() if k in model and model[k] == v}


def _as_keys(answer) -> set[str]:
    return set(as_strings(answer, "the keys", "['conv1.weight']"))


def _check_dropped_keys(answer) -> str:
    keys = _as_keys(answer)
    dropped = set(CHECKPOINT_SHAPES) - set(official_filter(CHECKPOINT_SHAPES, MODEL_SHAPES))
    if keys == dropped:
        return ("Right: the three reshaped last_layer tensors and loss.criterion.weight vanish without a word, while "
                "last_layer.3.bias (19,) fits and loads: a classifier half loaded, and nothing tells you. "
                "hrnet_teach.weights.load_weights lists each of them.")
    unknown = sorted(keys - set(CHECKPOINT_SHAPES))
    if unknown:
        raise Wrong(f"{', '.join(unknown)}: not a key of the checkpoint; the filter only drops checkpoint keys.")
    kept_but_named = sorted(keys - dropped)
    if "last_layer.3.bias" in kept_but_named:
        raise Wrong("last_layer.3.bias has shape (19,) in both: the filter keeps it, so the final conv gets the new "
                    "bias and keeps its random weight.")
    if kept_but_named:
        raise Wrong(f"{', '.join(kept_but_named)}: same key and same shape in both, so the filter keeps it.")
    missed = sorted(dropped - keys)
    if "loss.criterion.weight" in missed and len(missed) == 1:
        raise Wrong("You missed loss.criterion.weight: the model has no such key, so `k in model_dict` drops it too.")
    if "loss.criterion.weight" not in missed:
        raise Wrong(f"You missed {', '.join(missed)}: the shapes differ (334 channels against 270), so the shape "
                    "test drops them.")
    raise Wrong(f"You missed {', '.join(missed)}: a key is dropped when the model lacks it or its shape differs.")


dropped_keys = Exercise(
    name="dropped_keys",
    lesson="08",
    question=("The seed's init_weights keeps `{k: v for k, v in pretrained_dict.items() if k in model_dict.keys() "
              "and model_dict[k].shape == pretrained_dict[k].shape}` and drops the rest silently. With the "
              "shapes in `ex.MODEL_SHAPES` and `ex.CHECKPOINT_SHAPES`, which checkpoint keys does it drop? "
              "Answer a list of keys."),
    checker=_check_dropped_keys,
    reference=["last_layer.0.weight", "last_layer.1.weight", "last_layer.3.weight", "loss.criterion.weight"],
    hints=["Go through the checkpoint's keys one by one: is it in the model? Is its shape the same?",
           "Look closely at last_layer.3.bias: (19,) in both."],
    solution_text=("`answer = ['last_layer.0.weight', 'last_layer.1.weight', 'last_layer.3.weight', "
                   "'loss.criterion.weight']`: three by shape, one by name; last_layer.3.bias loads."),
    wrong_answers=[
        (["last_layer.0.weight", "last_layer.1.weight", "last_layer.3.weight", "last_layer.3.bias",
          "loss.criterion.weight"], "filter keeps it"),
        (["last_layer.0.weight", "last_layer.1.weight", "last_layer.3.weight"], "missed loss.criterion.weight"),
        (["loss.criterion.weight"], "the shapes differ"),
        (["conv1.weight", "loss.criterion.weight", "last_layer.0.weight", "last_layer.1.weight", "last_layer.3.weight"],
         "same key and same shape"),
        (["classifier.weight"], "not a key of the checkpoint"),
        (["last_layer.0.weight"], "You missed"),
        (7, "list of strings"),
    ],
)

# --------------------------------------- 2. a 250x333 image in the classification model

ODD_SIZE = (250, 333)
ODD_VARIANT = "w18"


def _check_size_mismatch(answer) -> str:
    height, width = as_ints(answer, 2, "the size (height, width)", "(10, 20)")
    branches = stage_shapes(ODD_VARIANT, ODD_SIZE)["stage4"]
    (_, h0, w0), (_, h1, w1) = branches[0], branches[1]
    expected = (2 * h1, 2 * w1)
    if (height, width) == expected:
        return (f"Branch 1 is {h1}x{w1} (stride-2 convs round up: {h0} -> {h1}), so nn.Upsample(scale_factor=2) "
                f"gives {expected[0]}x{expected[1]}, but branch 0 is {h0}x{w0}: the official sum `y = y + ...` "
                f"fails on the height ({h0} against {expected[0]}), while the width matches. hrnet_teach refuses "
                "such an input up front with a ValueError that says to resize or pad to multiples of 32.")
    if (height, width) == (h0, w0):
        raise Wrong(f"{h0}x{w0} is branch 0, the size the sum needs. Branch 1 is made by stride-2 convs, which round "
                    f"up: {h0} -> {h1}; what does doubling give?")
    if (height, width) == (h1, w1):
        raise Wrong(f"{h1}x{w1} is branch 1 before upsampling; the fuse step doubles it (scale_factor=2).")
    if (height, width) == (2 * (h0 // 2), 2 * (w0 // 2)):
        raise Wrong(f"A 3x3 conv with stride 2 and padding 1 rounds up: {h0} -> {h1}, not {h0 // 2}.")
    if (height, width) == expected[::-1]:
        raise Wrong("You swapped height and width: (height, width), height first.")
    raise Wrong(f"Not {height}x{width}: find branch 1's size (halve branch 0's {h0}x{w0}, rounding up), then double it.")


size_mismatch = Exercise(
    name="size_mismatch",
    lesson="08",
    question=(f"A {ODD_SIZE[0]}x{ODD_SIZE[1]} image goes into the official classification HRNet ({ODD_VARIANT}), "
              "which fuses with `nn.Upsample(scale_factor=2**(j-i), mode='nearest')`. Branch 0 is 63x84. What "
              "(height, width) does branch 1 have after its upsampling by 2, in fuse_layers[0][1]?"),
    checker=_check_size_mismatch,
    reference=(64, 84),
    hints=["conv3x3 with stride 2 and padding 1 maps a side n to ceil(n / 2).",
           "Branch 1 is ceil(63 / 2) x ceil(84 / 2); nearest upsampling by 2 doubles both."],
    solution_text=("`answer = (64, 84)`: 63 -> 32 -> 64 and 84 -> 42 -> 84; the sum with branch 0 (63x84) fails: "
                   "'The size of tensor a (63) must match the size of tensor b (64)'."),
    wrong_answers=[((63, 84), "is branch 0"), ((32, 42), "before upsampling"),
                   ((62, 84), "rounds up"), ((84, 64), "swapped"), ((64.0, 84.0), "whole numbers"),
                   (64, "(height, width)")],
)

# -------------------------------------------- 3. the norm layer for training on CPU


def _norm_name(answer) -> str:
    if isinstance(answer, type):
        return answer.__name__
    if isinstance(answer, str):
        return answer.strip().removeprefix("torch.").removeprefix("nn.").strip()
    if isinstance(answer, nn.Module):
        raise Wrong(f"You passed a layer, {type(answer).__name__}(...); pass the class itself (no brackets): the "
                    "model builds one norm layer per conv, each with its own number of channels.")
    raise Wrong(f"Give a class such as nn.Identity (the class itself, or its name as a string); you gave {type(answer).__name__} {answer!r}.")


def _check_cpu_norm_layer(answer) -> str:
    name = _norm_name(answer)
    if name == "BatchNorm2d":
        return ("nn.BatchNorm2d: each process normalises with its own batch's statistics, which is all a CPU run "
                "can do; DistributedDataParallel still averages the gradients. On several GPUs, convert afterwards "
                "with nn.SyncBatchNorm.convert_sync_batchnorm(model): the state-dict keys stay the same.")
    if name == "SyncBatchNorm":
        raise Wrong("Under torchrun a process group is running, and SyncBatchNorm then insists on a GPU: "
                    "'ValueError: SyncBatchNorm expected input tensor to be on GPU'. That is the official code's "
                    "module-level BatchNorm2d = SyncBatchNorm on a CPU.")
    if name in ("BatchNorm1d", "BatchNorm3d"):
        raise Wrong(f"{name} expects {'(B, C) or (B, C, L)' if name == 'BatchNorm1d' else '(B, C, D, H, W)'} inputs; "
                    "feature maps are (B, C, H, W).")
    if name in ("InstanceNorm2d", "GroupNorm", "LayerNorm", "LocalResponseNorm"):
        raise Wrong(f"{name} computes something else than BatchNorm: the official checkpoints hold BatchNorm "
                    "running statistics that it would not use, and the published results were trained with BatchNorm.")
    raise Wrong(f"{name} is not a norm layer HRNet uses; its checkpoints are built with BatchNorm.")


cpu_norm_layer = Exercise(
    name="cpu_norm_layer",
    lesson="08",
    question=("You run the segmentation training on a machine without a GPU, with `torchrun --nproc_per_node=2` "
              "(the gloo backend). Which class do you pass as `norm_layer` to create_model?"),
    checker=_check_cpu_norm_layer,
    reference=nn.BatchNorm2d,
    hints=["SyncBatchNorm gathers statistics across processes with GPU collectives.",
           "The norm layer must also keep the checkpoints' keys and maths (running mean and variance)."],
    solution_text=("`answer = nn.BatchNorm2d` (the package's default). SyncBatchNorm only for several GPUs, e.g. "
                   "`nn.SyncBatchNorm.convert_sync_batchnorm(model)`."),
    wrong_answers=[(nn.SyncBatchNorm, "to be on GPU"), ("torch.nn.SyncBatchNorm", "to be on GPU"),
                   (nn.BatchNorm2d(8), "pass the class itself"), (nn.BatchNorm1d, "(B, C, H, W)"),
                   (nn.GroupNorm, "running statistics"), (nn.Conv2d, "not a norm layer"), (2, "Give a class")],
)

# ------------------------------------------------------ 4. the in-place list

MUTATION_CHOICES = {
    "a": "inputs is unchanged: it still holds the tensors the caller put in",
    "b": "inputs now holds the branch outputs, before fusion",
    "c": "inputs now holds the module's outputs, after fusion (the same tensors as out)",
    "d": "inputs is empty",
}


def _check_list_mutation(answer) -> str:
    choice = as_choice(answer, MUTATION_CHOICES)
    if choice == "b":
        return ("b: `x[i] = self.branches[i](x[i])` writes each branch's output into the caller's list; the fused "
                "outputs go into a new list, x_fuse. Keep your inputs (to plot them, or reuse them) and they are gone. "
                "hrnet_teach builds a new list instead.")
    if choice == "a":
        raise Wrong("`x[i] = ...` assigns into the very list object the caller passed: a list is passed by "
                    "reference, not copied.")
    if choice == "c":
        raise Wrong("The fused outputs are collected in a new list (`x_fuse = []`, `x_fuse.append(...)`); what is "
                    "written into x is the branches' output, before fusion.")
    raise Wrong("Nothing removes entries: `x[i] = ...` replaces each one.")


list_mutation = Exercise(
    name="list_mutation",
    lesson="08",
    question=("The official HighResolutionModule.forward(x) starts with `for i in range(self.num_branches): "
              "x[i] = self.branches[i](x[i])`, then builds `x_fuse`. After `out = module(inputs)`, what is in "
              "`inputs`?\n" + choices_text(MUTATION_CHOICES)),
    checker=_check_list_mutation,
    reference="b",
    hints=["Python passes the list object itself; `x[i] = ...` writes into it.",
           "Which list does `x_fuse.append(self.relu(y))` fill?"],
    solution_text="`answer = 'b'`: the caller's list is overwritten with the branch outputs.",
    wrong_answers=[("a", "passed by reference"), ("c", "new list"), ("d", "replaces each one"), ("z", "one letter"),
                   (["b"], "one letter")],
)

EXERCISES = [dropped_keys, size_mismatch, cpu_norm_layer, list_mutation]
