"""Lesson 08, from the course to the real code: the YAML field that changes nothing
(FUSE_METHOD), then the official code's pitfalls as exercises (the silent partial load,
sizes that do not halve exactly, SyncBatchNorm on CPU, the in-place list)."""
from __future__ import annotations

import difflib
import functools
import re
import types

import torch
from torch import nn
from torch.nn.modules import batchnorm

from ..i18n import N_, _
from ..inspect import stage_shapes
from ._answers import as_ints, as_strings, short_repr
from ._base import Wrong
from ._kinds import ChoiceExercise, ValueExercise

# A segmentation model of w18 for 19 classes, and a checkpoint trained with the learner's modified
# seg_hrnet.py with upscale=2 (last_layer reads 270 + 64 = 334 channels) by the official trainer, which
# saves its FullModel: the network under "model." (stripped here) and the loss, with its class weights,
# under "loss.". A few keys of each, with their shapes.
MODEL_SHAPES = {"conv1.weight": (64, 3, 3, 3), "stage4.2.fuse_layers.0.3.0.weight": (18, 144, 1, 1),
                "last_layer.0.weight": (270, 270, 1, 1), "last_layer.1.weight": (270,),
                "last_layer.3.weight": (19, 270, 1, 1), "last_layer.3.bias": (19,)}
LOSS_KEY = "loss.criterion.weight"
CHECKPOINT_SHAPES = {**MODEL_SHAPES, "last_layer.0.weight": (334, 334, 1, 1), "last_layer.1.weight": (334,),
                     "last_layer.3.weight": (19, 334, 1, 1), LOSS_KEY: (19,)}
# What the modified file's init_weights drops: keys the model lacks, or has with another shape.
DROPPED = sorted(k for k, shape in CHECKPOINT_SHAPES.items() if MODEL_SHAPES.get(k) != shape)
KEPT = frozenset(CHECKPOINT_SHAPES) - frozenset(DROPPED)
# The checkpoint holds more than the keys listed: the other tensors of last_layer's conv and BN (334 channels against
# the model's 270) are dropped too. An answer that names them is right; the question asks about those listed.
ALSO_DROPPED = frozenset(f"last_layer.{k}" for k in ("0.bias", "1.bias", "1.running_mean", "1.running_var"))


def _part_names(got) -> set[str]:
    """The answers that name a part of the checkpoint (last_layer, loss) where the question wants its keys."""
    return {name for name in got - set(CHECKPOINT_SHAPES) if any(k.startswith(name + ".") for k in CHECKPOINT_SHAPES)}


def _listed(keys) -> str:
    return _(", ").join(sorted(keys))


dropped_keys = ValueExercise(
    name="dropped_keys", lesson="08",
    question=N_("The init_weights of the learner's modified seg_hrnet.py keeps `{k: v for k, v in "
                "pretrained_dict.items() if k in model_dict.keys() and model_dict[k].shape == "
                "pretrained_dict[k].shape}` and drops the rest silently. With the shapes in `ex.MODEL_SHAPES` and "
                "`ex.CHECKPOINT_SHAPES`, which of those checkpoint keys does it drop? Answer a list of keys."),
    read=lambda a: frozenset(as_strings(a, N_("the keys"), "['conv1.weight']")), reference=DROPPED,
    same=lambda got, want: got - ALSO_DROPPED == want,
    success=N_("The three reshaped last_layer tensors and loss.criterion.weight vanish without a word, while "
               "last_layer.3.bias (19,) fits and loads: a classifier half loaded, and nothing tells you. (In the whole "
               "checkpoint last_layer.0.bias and last_layer.1's bias and running statistics go the same way.) "
               "hrnet_teach.weights.load_weights lists each of them."),
    rules=[(lambda got, want: len(got) > 1 and got <= KEPT, N_(
               "Those are keys the filter keeps (in the model, with the same shape); the question asks which it "
               "drops: the other checkpoint keys.")),
           (lambda got, want: "" in got, N_(  # else ": not among the checkpoint's keys", naming nothing
               "One of your keys is an empty string (''): write each key in full, as a string, e.g. "
               "'last_layer.0.weight'.")),
           (lambda got, want: _part_names(got), lambda got, want: _(  # lesson 06 asked for parts; this asks keys
               "{names}: the name of a part, not a key. Write each key in full, as in the tables' left column, "
               "e.g. 'last_layer.0.weight'.", names=_listed(_part_names(got)))),
           (lambda got, want: got - set(CHECKPOINT_SHAPES) - ALSO_DROPPED, lambda got, want: _(
               "{keys}: not among the checkpoint's keys; the filter only drops checkpoint keys.",
               keys=_listed(got - set(CHECKPOINT_SHAPES) - ALSO_DROPPED))),
           # alone among the kept keys it gets its own why; with others, the next rule names them all at once
           (lambda got, want: got - want - ALSO_DROPPED == {"last_layer.3.bias"}, N_(
               "last_layer.3.bias has shape (19,) in both: the filter keeps it, so the final conv gets the "
               "checkpoint's trained bias while its weight stays random.")),
           (lambda got, want: got - want - ALSO_DROPPED, lambda got, want: _(
               "Kept, not dropped: {keys} (the same key with the same shape in the model and in the checkpoint).",
               keys=_listed(got - want - ALSO_DROPPED))),
           (lambda got, want: want - got == {LOSS_KEY}, N_(
               "You missed {key}: the model has no such key, so `k in model_dict` drops it too.", key=LOSS_KEY)),
           (lambda got, want: LOSS_KEY in got, lambda got, want: _(
               "You missed {keys}: the shape test drops each of these (334 channels in the checkpoint against 270 "
               "in the model).", keys=_listed(want - got)))],
    otherwise=lambda got, want: _("You missed {keys}: a key is dropped when the model lacks it or its shape differs.",
                                  keys=_listed(want - got)),
    hints=[N_("Go through the checkpoint's keys one by one: is it in the model? Is its shape the same?"),
           N_("Look closely at last_layer.3.bias: (19,) in both.")],
    solution_text=N_("`answer = ['last_layer.0.weight', 'last_layer.1.weight', 'last_layer.3.weight', "
                     "'loss.criterion.weight']`: three by shape, one by name; last_layer.3.bias loads."),
    wrong_answers=[([*DROPPED, "last_layer.3.bias"], "filter keeps it"), (DROPPED[:3], "missed loss.criterion.weight"),
                   ([LOSS_KEY], "the shape test drops each"), (["conv1.weight", *DROPPED], "Kept, not dropped"),
                   (["classifier.weight"], "not among the checkpoint's keys"), (["last_layer.0.weight"], "You missed"),
                   (7, "list of strings"), (DROPPED[:2], "lacks it or its shape differs"),
                   ("", "One of your keys is an empty string"), ([*DROPPED, " "], "an empty string ('')"),
                   (sorted(KEPT), "keys the filter keeps"),
                   ([*sorted(ALSO_DROPPED), *DROPPED[:3]], "You missed loss.criterion.weight"),
                   (["last_layer", "loss"], "last_layer, loss: the name of a part, not a key")],
)


size_mismatch = ValueExercise(
    name="size_mismatch", lesson="08",
    question=N_("A 250x333 image goes into the official classification HRNet (w18), which fuses with "
                "`nn.Upsample(scale_factor=2**(j-i), mode='nearest')`. Branch 0 is 63x84. What (height, width) does "
                "branch 1 have after its upsampling by 2, in fuse_layers[0][1]?"),
    read=lambda a: as_ints(a, 2, N_("the size (height, width)"), "(10, 20)"),
    # Computed: branch 1 of stage 4 (C, H, W), doubled. The messages name the sizes the question implies.
    reference=lambda: tuple(2 * side for side in stage_shapes("w18", (250, 333))["stage4"][1][1:]),
    mistakes={(63, 84): N_("63x84 is branch 0, the size the sum needs. Branch 1 is made by stride-2 convs, which "
                           "round up: 63 -> 32; what does doubling give?"),
              (32, 42): N_("32x42 is branch 1 before upsampling; the fuse step doubles it (scale_factor=2)."),
              (62, 84): N_("A 3x3 conv with stride 2 and padding 1 rounds up: 63 -> 32, not 31."),
              (84, 64): N_("You swapped height and width: (height, width), height first."),
              (42, 32): N_("42x32 is branch 1 before upsampling, with height and width swapped: give (height, width), "
                           "after the fuse step doubles it (scale_factor=2).")},
    success=N_("Branch 1 is 32x42 (stride-2 convs round up: 63 -> 32), so nn.Upsample(scale_factor=2) gives 64x84, "
               "but branch 0 is 63x84: the official sum `y = y + ...` fails on the height (63 against 64), while the "
               "width matches. hrnet_teach refuses such an input up front with a ValueError that says to resize or "
               "pad to multiples of 32."),
    otherwise=lambda got, want: _("Not {h}x{w}: find branch 1's size (halve branch 0's 63x84, rounding up), then "
                                  "double it.", h=got[0], w=got[1]),
    hints=[N_("conv3x3 with stride 2 and padding 1 maps a side n to ceil(n / 2)."),
           N_("Branch 1 is ceil(63 / 2) x ceil(84 / 2); nearest upsampling by 2 doubles both.")],
    solution_text=N_("`answer = (64, 84)`: 63 -> 32 -> 64 and 84 -> 42 -> 84; the sum with branch 0 (63x84) fails: "
                     "63 rows against 64."),
    wrong_answers=[((64.5, 84.0), "whole numbers"), (64, "(height, width)"), ((10, 10), "Not 10x10")],
)


# torch.nn's classes by lower-case name, so 'batchnorm2d', 'nn.BatchNorm2D' or 'torch.nn.modules.batchnorm.BatchNorm2d'
# read as the class they name; _NORMS are its normalisation layers.
_NN_CLASSES = {name.lower(): name for name in dir(nn)
               if isinstance(getattr(nn, name), type) and issubclass(getattr(nn, name), nn.Module)}
_NORMS = frozenset(name for name in _NN_CLASSES.values() if "Norm" in name)


def _norm_name(answer) -> str:
    """The name of the class ``answer`` gives: the class, a partial of it, or its name typed any way."""
    if isinstance(answer, functools.partial) and isinstance(answer.func, type):  # partial(nn.BatchNorm2d, momentum=...)
        answer = answer.func
    if isinstance(answer, type):
        return _class_name(answer)
    if isinstance(answer, str):  # 'nn.BatchNorm2d', 'BatchNorm2d()', 'nn.BatchNorm2d(num_features)'
        name = re.sub(r"\(.*\)$", "", answer.strip()).strip().rsplit(".", 1)[-1].strip()
        return _NN_CLASSES.get(name.lower(), name)
    if isinstance(answer, nn.Module):
        raise Wrong(_("You passed a layer, {layer}(...); pass the class itself (no brackets): the model builds one "
                      "norm layer per conv, each with its own number of channels.", layer=type(answer).__name__))
    if isinstance(answer, (types.FunctionType, types.MethodType)):
        raise Wrong(_("You gave a function or a method, not a class. A function that builds a norm layer from a "
                      "number of channels works as norm_layer too, but the question asks which class: give the class "
                      "itself, written like nn.Conv2d, without brackets."))
    raise Wrong(_("Give a class, written like nn.Conv2d, without brackets (the class itself, or its name as a "
                  "string); you gave {type} {answer}.", type=type(answer).__name__, answer=repr(answer)))


def _class_name(cls: type) -> str:
    """A class by what it is, not by its name: torch.nn's own, a learner's subclass of one (named by the torch.nn
    class it extends), or another of torch's classes (the abstract BatchNorm bases, the quantized BatchNorm2d ...),
    refused."""
    if _in_nn(cls):
        return cls.__name__
    if cls.__module__.split(".")[0] == "torch":
        if cls in (batchnorm._BatchNorm, batchnorm._NormBase):
            raise Wrong(_("{name} is the abstract base of torch's BatchNorm classes; the model needs one that "
                          "normalises 4-d feature maps, a class of torch.nn itself.", name=cls.__name__))
        raise Wrong(_("{module}.{name} is not torch.nn's {name}; give a class of torch.nn itself, written like "
                      "nn.Conv2d.", module=cls.__module__, name=cls.__name__))
    return next((base.__name__ for base in cls.__mro__[1:] if _in_nn(base) and base is not nn.Module), cls.__name__)


def _in_nn(cls: type) -> bool:
    return getattr(nn, cls.__name__, None) is cls


def _not_this_norm(name: str, want) -> str:
    if name in _NORMS:
        return _("{name} is not a norm layer HRNet uses; its checkpoints are built with BatchNorm.", name=name)
    if name in _NN_CLASSES.values():
        return _("{name} is not a norm layer: norm_layer must normalise each channel of a conv's output.", name=name)
    close = difflib.get_close_matches(name.lower().replace(" ", "").replace("_", ""), _NN_CLASSES, n=3, cutoff=0.8)
    if close:
        return _("torch.nn has no class named {name}; did you mean {close}? Give the class itself (written like "
                 "nn.Conv2d, without brackets) or its exact name as a string.", name=short_repr(name),
                 close=_(", ").join(sorted(_NN_CLASSES[c] for c in close)))
    return _("torch.nn has no class named {name}; give the class itself (written like nn.Conv2d, without brackets) "
             "or its exact name as a string.", name=short_repr(name))


cpu_norm_layer = ValueExercise(
    name="cpu_norm_layer", lesson="08",
    question=N_("You run the segmentation training on a machine without a GPU, with `torchrun --nproc_per_node=2` "
                "(the gloo backend). Which class do you pass as `norm_layer` to create_model?"),
    read=_norm_name, reference=nn.BatchNorm2d,
    success=N_("nn.BatchNorm2d: each process normalises with its own batch's statistics, which is all PyTorch's "
               "norm layers do on a CPU; DistributedDataParallel still averages the gradients. On several GPUs, "
               "convert afterwards with nn.SyncBatchNorm.convert_sync_batchnorm(model): the state-dict keys stay the "
               "same."),
    mistakes={"SyncBatchNorm": N_("Under torchrun a process group is running, and SyncBatchNorm in training then "
                                  "insists on a GPU: 'ValueError: SyncBatchNorm expected input tensor to be on GPU or "
                                  "XPU or privateuseone' (torch 2.13). That is what the HRNet-OCR branch's "
                                  "BatchNorm2d (SyncBatchNorm, set at module level in bn_helper.py) does on a CPU."),
              "BatchNorm1d": N_("BatchNorm1d expects (B, C) or (B, C, L) inputs; feature maps are (B, C, H, W)."),
              "BatchNorm3d": N_("BatchNorm3d expects (B, C, D, H, W) inputs; feature maps are (B, C, H, W)."),
              **{name: N_("{name} takes eps, not the number of channels, as its first argument: the model calls "
                          "norm_layer(channels, momentum=...), so it would get eps = channels.", name=name)
                 for name in ("LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d")},
              **{name: N_("{name} computes something other than BatchNorm: the official checkpoints hold BatchNorm "
                          "running statistics that it would not use, and the published results were trained with "
                          "BatchNorm.", name=name)
                 for name in ("InstanceNorm2d", "GroupNorm", "LayerNorm", "LocalResponseNorm")}},
    otherwise=_not_this_norm,
    hints=[N_("SyncBatchNorm gathers statistics across processes with GPU collectives."),
           N_("The norm layer must also keep the checkpoints' keys and maths (running mean and variance).")],
    solution_text=N_("`answer = nn.BatchNorm2d` (the package's default). SyncBatchNorm only for several GPUs, e.g. "
                     "`nn.SyncBatchNorm.convert_sync_batchnorm(model)`."),
    wrong_answers=[(nn.SyncBatchNorm, "to be on GPU"), ("torch.nn.SyncBatchNorm", "to be on GPU"),
                   (nn.BatchNorm2d(8), "pass the class itself"), (nn.BatchNorm1d, "(B, C, H, W)"),
                   (nn.GroupNorm, "running statistics"), (nn.Conv2d, "not a norm layer:"), (2, "Give a class"),
                   ("syncbatchnorm", "to be on GPU"), (nn.RMSNorm, "not a norm layer HRNet uses"),
                   ("BN", "no class named"), ("nn.LazyBatchNorm2d", "eps = channels"),
                   ("BatchNorm", "did you mean BatchNorm1d, BatchNorm2d, BatchNorm3d?"),
                   (batchnorm._BatchNorm, "the abstract base"), (lambda c: nn.BatchNorm2d(c), "not a class"),
                   (torch.ao.nn.quantized.BatchNorm2d, "is not torch.nn's BatchNorm2d")],
)

list_mutation = ChoiceExercise(
    name="list_mutation", lesson="08",
    question=N_("The official HighResolutionModule.forward(x) starts with `for i in range(self.num_branches): "
                "x[i] = self.branches[i](x[i])`, then builds `x_fuse`. After `out = module(inputs)`, what is in "
                "`inputs`?"),
    choices={"a": N_("inputs is unchanged: it still holds the tensors the caller put in"),
             "b": N_("inputs now holds the branch outputs, before fusion"),
             "c": N_("inputs now holds the module's outputs, after fusion (the same tensors as out)"),
             "d": N_("inputs is empty")},
    answer="b",
    why={"a": N_("`x[i] = ...` assigns into the very list object the caller passed: a list is passed by reference, "
                 "not copied."),
         "c": N_("The fused outputs are collected in a new list (`x_fuse = []`, `x_fuse.append(...)`); what is "
                 "written into x is the branches' output, before fusion."),
         "d": N_("Nothing removes entries: `x[i] = ...` replaces each one.")},
    success=N_("b: `x[i] = self.branches[i](x[i])` writes each branch's output into the caller's list; the fused "
               "outputs go into a new list, x_fuse. If you kept the input list (to plot it, or reuse it), it now holds the "
               "branches' outputs, not your inputs. "
               "hrnet_teach builds a new list instead."),
    hints=[N_("Python passes the list object itself; `x[i] = ...` writes into it."),
           N_("Which list does `x_fuse.append(self.relu(y))` fill?")],
    solution_text=N_("`answer = 'b'`: the caller's list is overwritten with the branch outputs."),
    wrong_answers=[("z", "one letter"), (["b"], "one letter")],
)

fuse_field = ChoiceExercise(
    name="fuse_field", lesson="08",
    question=N_("In the W48 file above, which STAGE2 field could you set to another value (CAT for FUSE_METHOD, 2 "
                "for NUM_MODULES, and so on) without changing the network the official seg_hrnet.py builds?"),
    choices={"a": "NUM_MODULES: 1", "b": "NUM_BLOCKS: [4, 4]", "c": "FUSE_METHOD: SUM", "d": "BLOCK: BASIC"},
    answer="c",
    why={"a": N_("NUM_MODULES is how many HighResolutionModules _make_stage puts in series: 2 adds a second module "
                 "with its own branches and fuse layers (stage2.1.* keys), one more round of fusion."),
         "b": N_("NUM_BLOCKS is how many residual blocks _make_one_branch puts in each branch: [5, 5] adds a fifth "
                 "block to both (stage2.0.branches.0.4.* and .1.4.*)."),
         "d": N_("BLOCK picks the residual block through blocks_dict: BOTTLENECK instead of BASIC changes every "
                 "branch's layers and, with its expansion of 4, the widths the transition builds.")},
    success=N_("c: _make_stage hands FUSE_METHOD to HighResolutionModule, which stores it as self.fuse_method and "
               "never reads it again: forward always sums. (Deleting the line is another matter: "
               "layer_config['FUSE_METHOD'] then raises a KeyError.) hrnet_teach refuses any value but SUM, so a file "
               "that asks for CAT does not quietly get a sum."),
    hints=[N_("For each field, look where the official code uses the value after reading it, not only where it "
              "reads it."),
           N_("Search `seg_hrnet.py` for `fuse_method`: where is `self.fuse_method` used after `__init__`?")],
    solution_text=N_("`answer = 'c'`: FUSE_METHOD is stored (self.fuse_method) and never used; the fusion is always "
                     "a sum."),
    wrong_answers=[("a", "in series"), ("b", "residual blocks"), ("d", "blocks_dict"), ("e", "one letter")],
)

EXERCISES = [fuse_field, dropped_keys, size_mismatch, cpu_norm_layer, list_mutation]
