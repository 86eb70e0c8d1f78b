"""The capstone's staged check: a learner's own HRNet (or one piece of it) against the
shipped checkpoint and the package's model, in the order one debugs a port.

1. key names: the learner's ``state_dict()`` keys against the checkpoint's, the
   missing and unexpected ones grouped by module (``stage3.0.fuse_layers: 4 keys missing``);
2. shapes: which tensor, the checkpoint's shape and the learner's;
3. outputs, module by module: both models run on held-out scenes with forward hooks
   on the same names; the first module whose input or output differs, and by how much;
   then the same on one ODD_SIZE scene, whose branch sizes do not halve exactly (where
   upsampling by a scale factor, exact on the held-out scenes, gives the wrong size);
4. forward details: at that module, what the usual slips compute (no ReLU after the
   fuse sum, a ReLU on each term, the in-place list, the upsampling mode,
   ``align_corners``), so the message names the slip, not just the place.

Where the learner's forward raised, the modules that finished before are compared first: one that
returned something else than its list makes a later, innocent piece raise. A piece is also built in
forms the checkpoint has no module of (``structures``: a stage of three modules, a module with
``multi_scale_output=False``), and its keys and shapes compared with the package's (stages 1 and 2 only).
Last, a piece is built with ``align_corners=True`` (``aligned``), loaded with the checkpoint's tensors and its
output compared with the package's module switched to True: the checkpoint's False is also F.interpolate's
default, so an answer that never passes the setting on is seen only there.

Every stage raises :class:`Wrong` with its message; the exercises in ``lesson11.py``
call :func:`check_module` for the whole network and for single pieces.
"""
from __future__ import annotations

import copy
import inspect
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..config import get_config
from ..data import ShapesDataset
from ..i18n import N_, _
from ..module import HighResolutionModule
from ._answers import a_type, dtype_name, one_thread
from ._base import Exercise, NotAttempted, Wrong, learner_frames, where_raised
from ._kinds import tensors_in

VARIANT = "w18_small_v1"
SCENES = 2  # held-out scenes per check: enough to see a difference, quick on a CPU
SCENE_SEED = 3
ATOL = 1e-4  # the same operations in the same order agree to ~1e-6; real slips differ by far more
MAX_LISTED = 4
# One more scene, checked after the held-out ones: at 40x40 the branches are 10, 5, 3 and 2 pixels (each
# stride-2 step rounds up), so upsampling by a scale factor, exact at 64x64 (16, 8, 4, 2), gives wrong sizes.
ODD_SIZE = 40
CHECKPOINT_DTYPE = torch.float32  # checkpoint() gives its float tensors in it, as the scenes are

# What the package's forward does just before a watched module (for "the input of X differs").
BETWEEN = (
    (r"conv2", N_("self.relu(bn1(...)): the ReLU after bn1")),
    (r"layer1(\.0)?", N_("self.relu(bn2(...)): the ReLU after bn2")),  # layer1.0 is compared first
    (r"transition1\.\d+", N_("layer1's output, the one map of the list [layer1(x)]")),
    (r"transition\d\.\d+", N_("y_list[i] of the previous stage, or its last branch y_list[-1] for a new branch")),
    (r"stage\d(\.0)?", N_("the list transition_forward builds: `transition[i](y_list[i])`, y_list[i] itself where the "
                          "entry is None, `transition[i](y_list[-1])` for a new branch")),
    (r"stage\d\.\d+", N_("the previous module's list of outputs")),
    (r"stage\d\.0\.branches\.\d+", N_("its entry of the list the stage is given, which transition_forward builds: "
                                     "`transition[i](y_list[i])`, y_list[i] itself where the entry is None, "
                                     "`transition[i](y_list[-1])` for a new branch")),
    (r"stage\d\.\d+\.branches\.\d+", N_("its entry of the previous module's list of outputs")),
    (r"last_layer", N_("the V2 head's concatenation: every stage-4 branch upsampled to branch 0's size, then "
                       "torch.cat along dim 1")),
)


def between(name: str) -> str | None:
    return next((str(text) for pattern, text in BETWEEN if re.fullmatch(pattern, name)), None)


# ---------------------------------------------------------------- the checkpoint and the package's model
def _checkpoint_module():
    """``read_checkpoint`` / ``load_shapes_model`` live in ``weights`` or (before the move) ``train``."""
    from .. import weights

    if hasattr(weights, "read_checkpoint") and hasattr(weights, "load_shapes_model"):
        return weights
    from .. import train

    return train


@cache
def checkpoint() -> dict[str, Any]:
    """The shipped shapes checkpoint: its entries, with the state dict as float32 (it is stored as float16)."""
    from ..assets import asset_path

    loader = _checkpoint_module()
    path = asset_path(getattr(loader, "SHAPES_CHECKPOINT", "checkpoints/shapes_w18_small_v1.pt"))
    data = dict(loader.read_checkpoint(path))
    data["model"] = OrderedDict((k, v.to(CHECKPOINT_DTYPE) if v.is_floating_point() else v)
                                for k, v in data["model"].items())
    return data


def checkpoint_align_corners() -> bool:
    """How the shipped network was trained to upsample (the checkpoint stores it; the package's model reads it)."""
    return bool(checkpoint().get("align_corners", True))


def trained_image_size() -> int:
    return int(checkpoint().get("args", {}).get("image_size", 64))


@cache
def package_model() -> nn.Module:
    return _checkpoint_module().load_shapes_model().eval()


@cache
def scenes() -> tuple[torch.Tensor, torch.Tensor]:
    """(images B x 3 x H x W, masks B x H x W): held-out scenes of the size the network was trained at."""
    data = ShapesDataset(SCENES, image_size=trained_image_size(), seed=SCENE_SEED, split="val")
    images, masks = zip(*(data[i] for i in range(len(data))))
    return torch.stack(images), torch.stack(masks)


def watched_names(model: nn.Module) -> list[str]:
    """The modules compared one by one: the stem's layers, layer1's blocks, every transition entry,
    every module of a stage and its branches, the head, and the model itself ('')."""
    pattern = re.compile(r"(conv1|bn1|conv2|bn2|layer1|last_layer|layer1\.\d+|transition\d\.\d+"
                         r"|stage\d\.\d+|stage\d\.\d+\.branches\.\d+|stage\d)")
    return [name for name, _ in model.named_modules() if name == "" or pattern.fullmatch(name)]


# ---------------------------------------------------------------- recording a run
@dataclass
class Call:
    inputs: tuple
    output: Any = None
    done: bool = False
    given: Any = None  # (the list passed in, a copy of it): to see whether forward changed it


@dataclass
class Record:
    calls: dict[str, Call] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # names in the order their forward finished
    entered: list[str] = field(default_factory=list)  # names in the order their forward started
    mutated: set[str] = field(default_factory=set)  # modules that changed the list they were given
    error: BaseException | None = None


def _clone(value):
    """Copies of the tensors in a value (hooks see tensors that in-place ReLUs change later)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, list):
        return [_clone(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_clone(v) for v in value)
    return value


def run_hooked(model: nn.Module, names: Sequence[str], inputs: tuple,
               call: Callable = lambda fn, *args: fn(*args)) -> tuple[Any, Record]:
    """Run ``model(*inputs)`` with hooks on ``names``; an exception is kept in the record, not raised
    (except NotImplementedError: the learner has not written that part yet)."""
    record = Record()
    modules = dict(model.named_modules())
    handles = []

    def pre(name):
        def hook(module, args):
            if name in record.calls:  # a module called twice: keep the first call
                return
            record.calls[name] = Call(_clone(args))
            record.entered.append(name)
            given = args[0] if args else None
            if isinstance(given, list):
                record.calls[name].given = (given, list(given))
        return hook

    def post(name):
        def hook(module, args, output):
            call = record.calls.get(name)
            if call is None or call.done:
                return
            call.output, call.done = _clone(output), True
            record.order.append(name)
            given = call.given
            if given is not None and (len(given[0]) != len(given[1]) or any(a is not b for a, b in zip(*given))):
                record.mutated.add(name)
        return hook

    for name in names:
        if name in modules:
            handles.append(modules[name].register_forward_pre_hook(pre(name)))
            handles.append(modules[name].register_forward_hook(post(name)))
    output = None
    try:
        with torch.no_grad():
            output = call(model, *_clone(inputs))
    except (NotImplementedError, Wrong):  # unwritten, or out of time
        raise
    except Exception as error:  # the learner's code: kept to be explained
        record.error = error
    finally:
        for handle in handles:
            handle.remove()
    return output, record


@cache
def aligned_reference(base: str) -> Any:
    """What the package's module ``base`` ('' for the whole model) gives on the held-out scenes' inputs once
    every ``align_corners`` in it is True (the checkpoint's is False)."""
    module = copy.deepcopy(package_model().get_submodule(base) if base else package_model())
    for part in module.modules():
        if hasattr(part, "align_corners"):
            part.align_corners = True
    with one_thread(), torch.no_grad():
        return module(*_clone(reference_run().calls[base].inputs))


@cache
def odd_scene() -> torch.Tensor:
    """One held-out scene of ODD_SIZE x ODD_SIZE (1 x 3 x H x W), whose branch sizes do not halve exactly."""
    data = ShapesDataset(1, image_size=ODD_SIZE, seed=SCENE_SEED, split="val")
    return data[0][0][None]


@cache
def reference_run(odd: bool = False) -> Record:
    """The package's model on the scenes (or on the odd scene), every watched module recorded."""
    model = package_model()
    with one_thread():  # as the learner's run: the same kernels give the same numbers, bit for bit
        _, record = run_hooked(model, watched_names(model), (odd_scene() if odd else scenes()[0],))
    if record.error is not None:
        raise record.error
    return record


# ---------------------------------------------------------------- comparing values
def difference(got, expected) -> tuple[bool, str, float]:
    """(equal, what differs, largest |difference|) for tensors or lists of tensors."""
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return False, _("{kind} instead of a tensor", kind=a_type(got)), float("inf")
        if got.shape != expected.shape:
            return False, _("shape {got} instead of {expected}", got=tuple(got.shape),
                            expected=tuple(expected.shape)), float("inf")
        diff = (got.float() - expected.float()).abs().max().item() if got.numel() else 0.0
        return diff <= ATOL + ATOL * expected.abs().max().item(), _("largest difference {diff}", diff=format(diff, ".3g")), diff
    if isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            return False, _("{kind} instead of a list of {count} tensors", kind=a_type(got),
                            count=len(expected)), float("inf")
        if len(got) != len(expected):
            return False, _("{got} maps instead of {expected}", got=len(got), expected=len(expected)), float("inf")
        for index, (g, e) in enumerate(zip(got, expected)):
            same, what, diff = difference(g, e)
            if not same:
                return False, _("branch {index}: {what}", index=index, what=what), diff
        return True, _("equal"), max((difference(g, e)[2] for g, e in zip(got, expected)), default=0.0)
    return got == expected, repr(got), 0.0


# ---------------------------------------------------------------- stage 1: key names
def _group_name(key: str) -> str:
    """The module a key belongs to, at the depth a learner thinks in: stage3.0.fuse_layers,
    stage3.0.branches.1, transition2.2, layer1.0.downsample, last_layer."""
    parts = key.split(".")
    if re.fullmatch(r"stage\d", parts[0]) and len(parts) > 3:
        return ".".join(parts[:4] if parts[2] == "branches" and len(parts) > 4 else parts[:3])
    if parts[0].startswith("transition") and len(parts) > 2:
        return ".".join(parts[:2])
    if parts[0] == "layer1" and len(parts) > 3:
        return ".".join(parts[:3] if parts[2] == "downsample" else parts[:2])
    return parts[0] if len(parts) > 1 else key


def _keys(n: int) -> str:
    return _("{n} key", n=n) if n == 1 else _("{n} keys", n=n)


GROUP_LINES = {  # (how, one key?) -> the line for one module
    ("missing", True): N_("{name}: 1 key missing ({key})"),
    ("missing", False): N_("{name}: {count} keys missing (e.g. {key})"),
    ("unexpected", True): N_("{name}: 1 key unexpected ({key})"),
    ("unexpected", False): N_("{name}: {count} keys unexpected (e.g. {key})"),
}


def group_keys(keys: Sequence[str], prefix: str, how: str) -> list[str]:
    """'stage3.0.fuse_layers: 4 keys missing (e.g. stage3.0.fuse_layers.0.1.0.weight)', one per module;
    ``how`` is "missing" or "unexpected"."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(_group_name(prefix + key), []).append(prefix + key)
    return [_(GROUP_LINES[how, len(members) == 1].message, name=name, count=len(members), key=members[0])
            for name, members in groups.items()]


def _swap_fuse(key: str) -> str:
    return re.sub(r"fuse_layers\.(\d+)\.(\d+)", lambda m: f"fuse_layers.{m.group(2)}.{m.group(1)}", key)


def _shifted(key: str, other: str) -> bool:
    """Keys equal but for one number that is one apart (an nn.Sequential that dropped or added a layer)."""
    a, b = key.split("."), other.split(".")
    if len(a) != len(b):
        return False
    diffs = [(x, y) for x, y in zip(a, b) if x != y]
    return len(diffs) == 1 and diffs[0][0].isdigit() and diffs[0][1].isdigit() and abs(int(diffs[0][0]) - int(diffs[0][1])) == 1


# A sentence added to another begins with a space inside its message: Chinese joins sentences without one.
def _key_diagnosis(missing: list[str], unexpected: list[str], expected: dict, got: dict, prefix: str) -> str:
    fuse_missing = {k for k in missing if "fuse_layers" in k}
    fuse_unexpected = {k for k in unexpected if "fuse_layers" in k}
    if fuse_unexpected and {_swap_fuse(k) for k in fuse_unexpected} == fuse_missing:
        row, col = next((m.group(1), m.group(2)) for k in sorted(fuse_unexpected)
                        for m in [re.search(r"fuse_layers\.(\d+)\.(\d+)", k)] if m.group(1) != m.group(2))
        return _(" Your fuse_layers look transposed: your fuse_layers[{row}][{col}] holds what belongs in "
                       "fuse_layers[{col}][{row}]. The index is [i][j] = [output branch][input branch]: row i collects "
                       "every input j into output i (lesson 03).", row=row, col=col)
    layer_order = _layer_order(unexpected, expected, got, prefix)
    if layer_order:
        return layer_order
    for key in unexpected:
        partner = next((m for m in missing if _shifted(key, m)), None)
        if partner is not None:
            return _(" Your {key} is the checkpoint's {partner}: an nn.Sequential numbers every layer, "
                           "ReLUs included, so leaving one out (or adding one) shifts the names of all that follow.",
                           key=prefix + key, partner=prefix + partner)
    blocks = {k.split(".downsample.")[0] for k in missing if ".downsample." in k}
    if blocks and any(k.startswith(b + ".") for b in blocks for k in got) and not any("downsample" in k for k in unexpected):
        return _(" A block whose input and output shapes differ needs a `downsample` shortcut (1x1 conv + BN), "
                       "as make_layer builds it for the first block (lesson 01).")
    return ""


def _layer_order(unexpected: list[str], expected: dict, got: dict, prefix: str) -> str:
    """An unexpected key where the checkpoint has a conv: yours is a BatchNorm there (the two swapped),
    or a conv with a bias."""
    for key in unexpected:
        stem = key.rsplit(".", 1)[0]
        want, have = expected.get(f"{stem}.weight"), got.get(f"{stem}.weight")
        if want is None or want.dim() != 4:
            continue
        if have is not None and have.dim() == 1:  # a BatchNorm's weight: one value per channel
            return _(" Your {name} is a BatchNorm2d where the checkpoint has a conv: in the official "
                     "nn.Sequential the conv comes first, then its BatchNorm2d.", name=prefix + stem)
        if key.endswith(".bias"):
            return _(" {key} is unexpected: the official convolutions have bias=False (a BatchNorm follows "
                           "each), except the two convs of last_layer.", key=prefix + key)
    return ""


def _has_module(value: Any) -> bool:
    """Whether a list or tuple holds an nn.Module, directly or in a nested list (fuse_layers' rows)."""
    return any(isinstance(v, nn.Module) or (isinstance(v, (list, tuple)) and _has_module(v)) for v in value)


# Attributes the forward calls as one module: an nn.Sequential chains their layers (an nn.ModuleList
# has no forward). The others (branches, fuse_layers, transitionK) are indexed: an nn.ModuleList.
CALLED = re.compile(r"downsample|layer\d|last_layer|stage\d")


def _arg_text(value: Any) -> str:
    """An argument as the notebook writes it: a stage's config as cfg.stageN (its repr is a page long)."""
    cfg = get_config(VARIANT)
    stage = next((name for name in ("stage2", "stage3", "stage4") if getattr(cfg, name) == value), None)
    return f"cfg.{stage}" if stage else repr(value)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else _("{first} and {last}", first=_(", ").join(names[:-1]), last=names[-1])


def _plain_list_sentence(module: str, kind: str, attrs: list[str], type_name: str) -> list[str]:
    """What to use instead of a plain list: one sentence for the attributes of one module that need the same."""
    if kind == "indexed" and len(attrs) > 1:
        return [_(" {attrs} of {module} are plain Python lists: their layers are not registered, so they have "
                  "no state-dict keys. Use nn.ModuleList.", attrs=_and([f"self.{a}" for a in attrs]), module=module)]
    sentences = []
    for attr in attrs:
        names = {"attr": attr, "module": module, "type": type_name}
        if kind == "rows":  # rows of layers, as fuse_layers
            sentences.append(_(" self.{attr} of {module} is a plain Python {type}: its layers are not registered, "
                               "so they have no state-dict keys. Use nn.ModuleList, for it and for each of its "
                               "rows.", **names))
        elif kind == "called":
            sentences.append(_(" self.{attr} of {module} is a plain Python {type}: its layers are not registered, "
                               "so they have no state-dict keys. Use nn.Sequential(*layers): it registers them and, "
                               "when called, runs them in order.", **names))
        else:
            sentences.append(_(" self.{attr} of {module} is a plain Python {type}: its layers are not registered, "
                               "so they have no state-dict keys. Use nn.ModuleList.", **names))
    return sentences


def _plain_list_causes(learner: nn.Module, missing: list[str], prefix: str) -> tuple[list[str], set[str]]:
    """Plain Python lists of layers whose keys are missing: the names are right, the list does not register them."""
    found: dict[tuple[str, str], list[str]] = {}  # (module, kind of advice) -> attributes
    explained, named, types = set(), set(), {}
    for path, module in learner.named_modules():
        for attr, value in vars(module).items():
            if attr.startswith("_") or not isinstance(value, (list, tuple)) or not _has_module(value):
                continue
            start = f"{path}.{attr}." if path else f"{attr}."
            keys = {k for k in missing if k.startswith(start)}
            if not keys:  # a helper list of layers that are registered elsewhere
                continue
            explained |= keys
            if attr not in named:  # once per attribute: one class usually makes them all (stage2.0, stage3.0, ...)
                named.add(attr)
                kind = ("rows" if any(isinstance(v, (list, tuple)) for v in value)
                        else "called" if CALLED.fullmatch(attr) else "indexed")
                found.setdefault((_label(path, prefix), kind), []).append(attr)
                types[attr] = type(value).__name__
    causes = [sentence for (module, kind), attrs in found.items()
              for sentence in _plain_list_sentence(module, kind, attrs, types[attrs[0]])]
    return causes, explained


def _single_row_causes(missing: list[str], got: dict, prefix: str) -> tuple[list[str], set[str]]:
    """fuse_layers with only row 0 (built with multi_scale_output=False): every other row's keys are missing."""
    lacking: dict[str, set[str]] = {}
    for key in missing:
        match = re.match(r"(.*fuse_layers)\.(\d+)\.", key)
        if match and match.group(2) != "0":
            lacking.setdefault(match.group(1), set()).add(key)
    single = [(fuse, keys) for fuse, keys in lacking.items() if any(k.startswith(fuse + ".0.") for k in got)
              and not any(re.match(re.escape(fuse) + r"\.[1-9]", k) for k in got)]
    if not single:
        return [], set()
    return ([_(" Your {name} has only row 0, as multi_scale_output=False builds it: the segmentation network builds "
               "every module with multi_scale_output=True, so every output branch has its row.",
               name=prefix + single[0][0])],
            set().union(*(keys for _fuse, keys in single)))


def _conv_bias_causes(missing: list[str], expected: dict, got: dict, prefix: str) -> tuple[list[str], set[str]]:
    """A conv bias missing: in the checkpoint only last_layer's convs have one."""
    biases = {k for k in missing if k.endswith(".bias") and k[:-5] + ".weight" in got
              and expected[k[:-5] + ".weight"].dim() == 4 and got[k[:-5] + ".weight"].dim() == 4}
    if not biases:
        return [], set()
    return ([_(" {key} is missing: last_layer's convs have bias=True (the only convs of the network that do); "
               "leave out bias=False there.", key=prefix + min(biases))], biases)


def _config_of(name: str) -> str:
    """The config a module of the network is built from: layer1.0 -> cfg.stage1, stage3.0.branches.1 -> cfg.stage3."""
    return "cfg.stage1" if name.startswith("layer1") else "cfg." + name.split(".")[0]


def _block_causes(missing: list[str], unexpected: list[str], expected: dict, got: dict,
                  prefix: str, structure: bool = False) -> tuple[list[str], set[str]]:
    """A BasicBlock where the checkpoint has a Bottleneck (no conv3, bn3), or the other way round. ``structure``:
    ``expected`` is the package's module built from the config the check passed in, not the checkpoint."""
    for key in missing:
        block = key[:-len(".conv3.weight")] if key.endswith(".conv3.weight") else None
        if block is not None and f"{block}.conv1.weight" in got:
            explained = {k for k in missing if re.match(rf"{re.escape(block)}\.(conv3|bn3)\.", k)}
            if structure:
                return [_(" Your {name} has no conv3 and bn3: it is a BasicBlock (two 3x3 convs) where the "
                          "package's module, built from the same config, has a Bottleneck (conv1 to conv3, lesson "
                          "01): that config's block is 'BOTTLENECK'. Build the blocks with BLOCKS[stage.block], not "
                          "always one kind.", name=prefix + block)], explained
            return [_(" Your {name} has no conv3 and bn3: it is a BasicBlock (two 3x3 convs) where the checkpoint "
                      "has a Bottleneck (conv1 to conv3, lesson 01). {config}.block is 'BOTTLENECK': build it with "
                      "Bottleneck.", name=prefix + block, config=_config_of(prefix + block))], explained
    for key in unexpected:
        block = key[:-len(".conv3.weight")] if key.endswith(".conv3.weight") else None
        # only a block the checkpoint has too: a block it lacks altogether is one too many (_block_count_causes)
        if block is not None and f"{block}.conv1.weight" in expected:
            if structure:
                return [_(" Your {name} has a conv3 and a bn3: it is a Bottleneck where the package's module, built "
                          "from the same config, has a BasicBlock (conv1 and conv2 only, lesson 01): that config's "
                          "block is 'BASIC'. Build the blocks with BLOCKS[stage.block], not always one kind.",
                          name=prefix + block)], set()
            return [_(" Your {name} has a conv3 and a bn3: it is a Bottleneck where the checkpoint has a BasicBlock "
                      "(conv1 and conv2 only, lesson 01). {config}.block is 'BASIC': build it with BasicBlock, "
                      "BLOCKS[{config}.block].", name=prefix + block, config=_config_of(prefix + block))], set()
    return [], set()


# A block's keys: make_layer's nn.Sequential numbers the blocks, layer1.<i>. or stageK.M.branches.<b>.<i>.
BLOCK_KEY = re.compile(r"(layer1|stage(\d)\.\d+\.branches\.(\d+))\.(\d+)\.")


def _blocks(keys, prefix: str) -> dict[str, set[int]]:
    """{layer built by make_layer: the indices of its blocks} for ``keys`` (relative to ``prefix``)."""
    found: dict[str, set[int]] = {}
    for key in keys:
        match = BLOCK_KEY.match(prefix + key)
        if match:
            found.setdefault(match.group(1), set()).add(int(match.group(4)))
    return found


def _block_word(n: int) -> str:
    return _("{n} block", n=n) if n == 1 else _("{n} blocks", n=n)


def _block_count_causes(missing: list[str], expected: dict, got: dict, prefix: str,
                        structure: bool) -> tuple[list[str], set[str]]:
    """A layer of make_layer with more or fewer blocks than the official one: an off-by-one in the loop after
    the first block (range(num_blocks), range(2, num_blocks)), or another width's num_blocks."""
    have, want = _blocks(got, prefix), _blocks(expected, prefix)
    for layer, indices in want.items():
        if layer not in have or have[layer] == indices:  # a layer missing altogether is another finder's
            continue
        lacking = {k for k in missing if (m := BLOCK_KEY.match(prefix + k)) and m.group(1) == layer
                   and int(m.group(4)) not in have[layer]}
        if not lacking and have[layer] <= indices:  # its missing blocks are already explained
            continue
        match = BLOCK_KEY.match(layer + ".0.")
        field = ("cfg.stage1.num_blocks[0]" if layer == "layer1"
                 else f"cfg.stage{match.group(2)}.num_blocks[{match.group(3)}]")
        names = {"layer": layer, "have": _block_word(len(have[layer])), "want": len(indices), "field": field}
        if structure:  # no checkpoint: the package's module built alike (from another config) is the reference
            return [_(" Your {layer} has {have}; the package's has {want} ({field}): make_layer builds the first "
                      "block, then `range(1, num_blocks)` more.", **{**names, "field": "num_blocks"})], lacking
        return [_(" Your {layer} has {have}; the checkpoint's has {want} ({field}): make_layer builds the first "
                  "block, then `range(1, num_blocks)` more.", **names)], lacking
    return [], set()


def _superfluous(got: dict, key: str) -> bool:
    """Whether ``key`` is the conv of a downsample that keeps the channels (make_layer's slip, not the input's)."""
    weight = got.get(key)
    return weight is not None and weight.dim() == 4 and weight.shape[0] == weight.shape[1]


def _extra_downsample_causes(unexpected: list[str], got: dict, prefix: str) -> tuple[list[str], set[str]]:
    """A downsample whose 1x1 conv keeps the channels: the block's input already had planes x expansion
    channels, and make_layer added one anyway (the official _make_layer adds it only when the shape changes)."""
    for key in unexpected:
        if key.endswith(".downsample.0.weight") and _superfluous(got, key):
            return [_(" Your {name} has a downsample that the official one lacks, although its input already has "
                      "{channels} channels, planes x expansion: make_layer adds one only when stride != 1 or "
                      "inplanes != planes * block.expansion (lesson 01).", name=prefix + key[:-len(".downsample.0.weight")],
                      channels=got[key].shape[1])], set()
    return [], set()


def _inchannel_causes(unexpected: list[str], got: dict, prefix: str) -> tuple[list[str], set[str]]:
    """A downsample the checkpoint's branch lacks: that branch was built with other input channels."""
    for key in unexpected:
        match = re.match(r"(stage\d)\.(\d+)\.branches\.(\d+)\.0\.downsample\.", prefix + key)
        if match is None or _superfluous(got, key.split(".downsample.")[0] + ".downsample.0.weight"):
            continue
        stage, module, b = match.group(1), int(match.group(2)), match.group(3)
        name = f"{stage}.{module}.branches.{b}.0"
        if module == 0:
            return [_(" Your {name} has a downsample that the official one lacks: make_layer adds one when the "
                      "branch's input channels differ from num_channels[{b}] x expansion, so {stage} was built with "
                      "other num_inchannels. A stage takes the channels its transition gives out: "
                      "make_stage(cfg.{stage}, cfg.{stage}.num_channels, align_corners).",
                      name=name, b=b, stage=stage)], set()
        return [_(" Your {name} has a downsample that the official one lacks: make_layer adds one when the "
                  "branch's input channels differ from num_channels[{b}] x expansion. Module {module} takes what "
                  "module {previous} gives out: after each module, num_inchannels = [c * block.expansion for c in "
                  "stage.num_channels].", name=name, b=b, module=module, previous=module - 1)], set()
    return [], set()


def _entries(learner: nn.Module | None, name: str) -> nn.Module | None:
    """The learner's container ``name`` (a transition, say), or None."""
    if learner is None or not _has(learner, name):
        return None
    return learner.get_submodule(name)


def _transition_causes(learner: nn.Module | None, missing: list[str], got: dict,
                       prefix: str) -> tuple[list[str], set[str]]:
    """A transition entry whose keys are all missing: the transition has too few entries, or None there."""
    for key in missing:
        match = re.match(r"transition(\d)\.(\d+)\.", prefix + key)
        transition = _entries(learner, f"transition{match.group(1)}") if match else None
        if not isinstance(transition, nn.ModuleList) or any(k.startswith(match.group(0)) for k in got):
            continue
        k, n = int(match.group(1)), int(match.group(2))
        explained = {m for m in missing if (prefix + m).startswith(match.group(0))}
        if n >= len(transition):
            want = get_config(VARIANT).stages[k].num_branches
            return [_(" Your transition{k} has {count} entries; the checkpoint's has {want}, one per branch of "
                      "stage{next}. make_transition(pre_channels, cur_channels) takes what stage{k} gives out first, "
                      "then stage{next}'s channels: transition{k} = make_transition(..., cfg.stage{next}.num_channels).",
                      k=k, count=len(transition), want=want, next=k + 1)], explained
        if transition[n] is None:
            return [_(" Your transition{k}[{n}] is None where the checkpoint has layers: an entry is None only "
                      "where a branch keeps its channels, and a new branch always has layers.", k=k, n=n)], explained
    return [], set()


def _branch_causes(missing: list[str], expected: dict, got: dict, prefix: str) -> tuple[list[str], set[str]]:
    """A module with fewer branches than the checkpoint's: it was built from another stage's config."""
    for key in missing:
        match = re.match(r"((?:.*\.)?)branches\.(\d+)\.", key)
        if match is None or any(k.startswith(match.group(0)) for k in got):
            continue
        module = match.group(1)
        if not any(k.startswith(module + "branches.") for k in got):  # no such module at all: not a branch count
            continue
        explained = {k for k in missing if k.startswith((module + "branches.", module + "fuse_layers."))}
        return [_branch_message((prefix + module).rstrip("."), module, expected, got)], explained
    return [], set()


def _branch_message(name: str, module: str, expected: dict, got: dict) -> str:
    """A module built with another number of branches than the checkpoint's."""
    stage = name.split(".")[0]
    if re.fullmatch(r"stage\d\.\d+", name) and not module:  # one module, built by the check itself
        return _(" Your {name} has {have} branches; the checkpoint's has {want}: the check passes "
                 "num_branches={want}, so build one branch for each, `for b in range(num_branches)`.",
                 name=name, have=_branch_count(got, module), want=_branch_count(expected, module))
    return _(" Your {name} has {have} branches; the checkpoint's has {want}: build {stage} from its own config, "
             "make_stage(cfg.{stage}, ...) (cfg.{stage}.num_branches is {want}).",
             name=name, have=_branch_count(got, module), want=_branch_count(expected, module), stage=stage)


def _extra_entry_causes(unexpected: list[str], expected: dict, prefix: str) -> tuple[list[str], set[str]]:
    """Keys of yours under right names where the checkpoint has none: a module with more branches than the
    checkpoint's, or layers in a transition entry that is None there. (The unexpected keys they explain.)"""
    for key in unexpected:
        entry = re.match(r"transition(\d)\.(\d+)\.", prefix + key)
        if entry and not any((prefix + k).startswith(entry.group(0)) for k in expected):
            k = int(entry.group(1))
            explained = {u for u in unexpected if (prefix + u).startswith(f"transition{k}.")}
            return [_(" The checkpoint's transition{k}.{n} is None (that branch keeps its channels and passes), but "
                      "yours holds layers: your transition{k} was built from other channels than stage{k} gives out. "
                      "transition{k} = make_transition(list(cfg.stage{k}.out_channels), "
                      "list(cfg.stage{next}.num_channels)).", k=k, n=entry.group(2), next=k + 1)], explained
        branch = re.match(r"((?:.*\.)?)branches\.(\d+)\.", key)
        if (branch and any(k.startswith(branch.group(1) + "branches.") for k in expected)
                and not any(k.startswith(branch.group(0)) for k in expected)):
            module = branch.group(1)
            explained = {u for u in unexpected if u.startswith((module + "branches.", module + "fuse_layers."))}
            got = {u: None for u in unexpected if u.startswith(module + "branches.")} | dict.fromkeys(expected)
            return [_branch_message((prefix + module).rstrip("."), module, expected, got)], explained
    return [], set()


def _branch_count(keys, module: str) -> int:
    """How many branches the keys under ``module`` (e.g. 'stage4.0.') hold."""
    return len({m.group(1) for k in keys for m in [re.match(re.escape(module) + r"branches\.(\d+)\.", k)] if m})


def _key_causes(learner: nn.Module | None, missing: list[str], unexpected: list[str], expected: dict, got: dict,
                prefix: str, structure: bool = False) -> tuple[list[str], set[str]]:
    """Why keys are missing or unexpected although the names are right: (the sentences, the missing keys they
    explain). Each finder sees only the keys the ones before it left unexplained. ``structure``: ``expected`` is
    the package's module built alike, not the checkpoint."""
    causes, explained = [], set()
    finders = [lambda left: _plain_list_causes(learner, left, prefix) if learner is not None else ([], set()),
               lambda left: _single_row_causes(left, got, prefix),
               lambda left: _conv_bias_causes(left, expected, got, prefix),
               lambda left: _block_causes(left, unexpected, expected, got, prefix, structure),
               lambda left: _block_count_causes(left, expected, got, prefix, structure),
               lambda left: _extra_downsample_causes(unexpected, got, prefix),
               lambda left: _inchannel_causes(unexpected, got, prefix),
               lambda left: _transition_causes(learner, left, got, prefix),
               lambda left: _module_count_causes(left, unexpected, expected, got, prefix),
               lambda left: _branch_causes(left, expected, got, prefix),
               lambda left: _extra_entry_causes(unexpected, expected, prefix),
               lambda left: _extra_rows_causes(unexpected, expected, prefix)]
    for finder in finders:
        sentences, keys = finder([k for k in missing if k not in explained])
        causes += sentences
        explained |= keys
    return causes, explained


def stage_keys(got: dict, expected: dict, prefix: str = "", learner: nn.Module | None = None) -> None:
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if not missing and not unexpected:
        return
    causes, explained = _key_causes(learner, missing, unexpected, expected, got, prefix)
    if len(missing) == len(expected) and not causes:
        yours = (_(", ").join(list(got)[:3]) + (", ..." if len(got) > 3 else "")) if got else _("none")
        raise Wrong(_("Step 1 (key names): none of the checkpoint's {count} keys is in your module's state_dict() "
                      "(yours: {yours}). Name the attributes as the official code does; `ex.checkpoint_outline()` "
                      "lists them.", count=len(expected), yours=yours))
    diagnosis = _key_diagnosis([k for k in missing if k not in explained], unexpected, expected, got, prefix)
    raise Wrong(_("Step 1 (key names): {counts}: {listed}.", counts=_key_counts(missing, unexpected),
                  listed=_listed(missing, unexpected, prefix))
                + "".join(causes) + diagnosis + _names_advice(missing, [k for k in unexpected if k not in explained],
                                                              expected, prefix, bool(causes or diagnosis)))


def _key_counts(missing: list[str], unexpected: list[str]) -> str:
    if missing and unexpected:
        return _("{missing} of the checkpoint missing from yours and {unexpected} of yours not in the checkpoint",
                 missing=_keys(len(missing)), unexpected=_keys(len(unexpected)))
    if missing:
        return _("{missing} of the checkpoint missing from yours", missing=_keys(len(missing)))
    return _("{unexpected} of yours not in the checkpoint", unexpected=_keys(len(unexpected)))


def _listed(missing: list[str], unexpected: list[str], prefix: str) -> str:
    groups = group_keys(missing, prefix, "missing") + group_keys(unexpected, prefix, "unexpected")
    separator = _("; ")  # between the listed modules (a full-width semicolon in Chinese)
    return separator.join(groups[:2 * MAX_LISTED]) + (separator + "..." if len(groups) > 2 * MAX_LISTED else "")


def _names_advice(missing: list[str], unexpected: list[str], expected: dict, prefix: str, explained: bool) -> str:
    """About the names only where a name of yours is not the checkpoint's (a module it has no keys under);
    where every name is one of the checkpoint's, the structure differs, and a cause found says how."""
    official, layers = {_group_name(prefix + k) for k in expected}, _blocks(expected, prefix)

    def stray(key: str) -> bool:  # an extra block of an official layer (layer1.1) is a count, not a name
        match = BLOCK_KEY.match(prefix + key)
        return _group_name(prefix + key) not in official and not (match and match.group(1) in layers)

    if any(stray(k) for k in unexpected):
        return _renamed(missing, unexpected, prefix) or _(" Your module and attribute names must give the official "
                                                           "state-dict keys.")
    if explained:
        return ""
    return _(" Your names are the official ones, so what differs is what you build: the modules listed lack "
             "layers the checkpoint has, or hold layers it lacks. Compare them with the official code.")


def _still_false(module: nn.Module, prefix: str) -> str:
    """The modules of a network built with align_corners=True that still hold False: where it was not passed on."""
    names = [(prefix + name).rstrip(".") for name, m in module.named_modules()
             if isinstance(getattr(m, "fuse_layers", None), nn.ModuleList) and getattr(m, "align_corners", None) is False]
    if not names:
        return ""
    shown = names[:3] + (["..."] if len(names) > 3 else [])
    return _("Your {names} still hold align_corners=False. ", names=_and(shown))


def _renamed(missing: list[str], unexpected: list[str], prefix: str) -> str:
    """Which name replaces which: a module of yours holding exactly a missing module's keys, or a stem of its own."""
    def tails(keys: list[str]) -> dict[str, set[str]]:
        groups: dict[str, set[str]] = {}
        for key in keys:
            group = _group_name(prefix + key)
            groups.setdefault(group, set()).add((prefix + key)[len(group):])
        return groups

    official = tails(missing)
    for name, keys in tails(unexpected).items():
        match = next((group for group, wanted in official.items() if wanted == keys), None)
        if match is not None:
            return _(" Your {name} holds what the checkpoint calls {official}: name it as the official code does.",
                     name=name, official=match)
    if "stem" in tails(unexpected) and {"conv1", "bn1", "conv2", "bn2"} & set(official):
        return _(" The stem has no module of its own: conv1, bn1, conv2 and bn2 are attributes of the network "
                 "itself (section 1), not parts of a stem module.")
    return ""


# ---------------------------------------------------------------- step 2: shapes
@cache
def _pre_channels() -> dict[str, tuple[int, ...]]:
    """The branches' channels before each transition of the checkpoint's network."""
    stages = get_config(VARIANT).stages
    return {f"transition{k}": stages[k - 1].out_channels for k in (1, 2, 3)}


def _later_block_diagnosis(key: str, want: tuple, got: tuple) -> str:
    """A block after the first that takes make_layer's inplanes: block(inplanes, planes) for every block."""
    match = re.fullmatch(r"((?:layer1|stage\d\.\d+\.branches\.\d+)\.[1-9]\d*)\.conv1\.weight", key)
    if match is None or len(want) != 4 or len(got) != 4 or got[1] == want[1] or got[0] != want[0]:
        return ""
    return _(" Your {name}.conv1 takes {got} channels; block 0 gives out planes x expansion = {want}: every block "
             "after the first is `block(planes * block.expansion, planes)`.", name=match.group(1), got=got[1],
             want=want[1])


def _shape_diagnosis(key: str, want: tuple, got: tuple) -> str:
    later_block = _later_block_diagnosis(key, want, got)
    if later_block:
        return later_block
    match = re.fullmatch(r"(transition\d)\.(\d+)\.\d+\.\d+\.weight", key)
    if match and len(want) == 4:
        name, i = match.group(1), int(match.group(2))
        pre = _pre_channels()[name]
        if i >= len(pre):
            if got[1] != want[1] and got[1] == pre[0] and pre[0] != pre[-1]:
                return _(" {name}[{i}] creates the new branch {i} from {got} channels, the channels of branch 0; "
                               "a new branch is born from the last, lowest-resolution branch ({last} channels), "
                               "y_list[-1] (lesson 04).", name=name, i=i, got=got[1], last=pre[-1])
            if got[0] != want[0]:
                return _(" The new branch {i} must carry {want} channels (the next stage's num_channels[{i}]); "
                               "yours makes {got}. Its channels come from cur_channels[{i}], not from the branch it "
                               "grows from.", i=i, want=want[0], got=got[0])
    if key.startswith("last_layer.") and want[0] != got[0] and len(want) >= 1 and key.split(".")[1] == "3":
        return _(" The classifier has {got} outputs; the shipped checkpoint has {want} classes "
                       "(background, small shape, large shape, thin line): build it with num_classes=4.",
                       got=got[0], want=want[0])
    if len(want) == 1:
        return _(" A 1-d tensor (a BatchNorm's weights and statistics, or a bias) has one value per output "
                       "channel of its layer: check the channels of the layer before it.")
    return ""


def stage_shapes(got: dict, expected: dict, prefix: str = "") -> None:
    wrong = [(k, tuple(expected[k].shape), tuple(got[k].shape)) for k in expected
             if tuple(got[k].shape) != tuple(expected[k].shape)]
    if not wrong:
        return
    listed = _("; ").join(_("{key}: checkpoint {want}, yours {have}", key=prefix + k, want=want, have=have)
                       for k, want, have in wrong[:MAX_LISTED])
    more = _(" (and {count} more)", count=len(wrong) - MAX_LISTED) if len(wrong) > MAX_LISTED else ""
    key, want, have = wrong[0]
    if len(wrong) == 1:
        message = _("Step 2 (shapes): every key is there, but 1 tensor has another shape: {listed}.", listed=listed)
    else:
        message = _("Step 2 (shapes): every key is there, but {count} tensors have another shape: {listed}{more}.",
                    count=len(wrong), listed=listed, more=more)
    raise Wrong(message + _shape_diagnosis(prefix + key, want, have))


# ---------------------------------------------------------------- structure only (no checkpoint)
def package_stage(stage: Any, num_inchannels: Sequence[int]) -> nn.Sequential:
    """A stage as the package's backbone builds it (HRNet._make_stage, without the transition), on the meta
    device: its keys and shapes, no values."""
    from ..blocks import BLOCKS

    with torch.device("meta"):
        modules, channels = [], tuple(num_inchannels)
        for _module in range(stage.num_modules):
            modules.append(HighResolutionModule(stage.num_branches, BLOCKS[stage.block], stage.num_blocks, channels,
                                                stage.num_channels))
            channels = modules[-1].out_channels  # each module after the first takes what the one before gives out
        return nn.Sequential(*modules)


def compare_structure(mine: nn.Module, official: nn.Module, prefix: str, where: str) -> None:
    """Stages 1 and 2 against the package's module built alike, where the checkpoint has no such module."""
    got, expected = mine.state_dict(), official.state_dict()
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    if missing or unexpected:
        causes, explained = _key_causes(mine, missing, unexpected, expected, got, prefix, structure=True)
        raise Wrong(_("Step 1 (key names), for {where}: built with no checkpoint and compared with the package's "
                      "module built alike: {listed}.", where=where, listed=_listed(missing, unexpected, prefix))
                    + "".join(causes) + _names_advice(missing, unexpected, expected, prefix, bool(causes)))
    wrong = [(prefix + k, tuple(expected[k].shape), tuple(got[k].shape)) for k in expected
             if tuple(got[k].shape) != tuple(expected[k].shape)]
    if wrong:
        listed = _("; ").join(_("{key}: the package's {want}, yours {have}", key=k, want=want, have=have)
                              for k, want, have in wrong[:MAX_LISTED])
        raise Wrong(_("Step 2 (shapes), for {where}: built with no checkpoint and compared with the package's "
                      "module built alike: {listed}.", where=where, listed=listed) + _later_block_diagnosis(*wrong[0]))


def _module_count_causes(missing: list[str], unexpected: list[str], expected: dict, got: dict,
                         prefix: str) -> tuple[list[str], set[str]]:
    """A stage with another number of HighResolutionModules than its num_modules."""
    def modules(keys):
        return {m.group(1, 2) for k in keys for m in [re.match(r"(stage\d)\.(\d+)\.", prefix + k)] if m}

    have, want = modules(got), modules(expected)
    stages = sorted({stage for stage, _m in have ^ want} & {stage for stage, _m in have})  # built, but not alike
    if not stages:
        return [], set()
    stage = stages[0]
    count = {name: sum(1 for s, _m in found if s == stage) for name, found in (("have", have), ("want", want))}
    explained = {k for k in missing if (m := re.match(r"(stage\d)\.(\d+)\.", prefix + k)) and m.group(1, 2) in want - have}
    return [_(" Your {stage} holds {have} HighResolutionModule(s) where its config's num_modules is {want}: build "
              "num_modules of them, for _ in range(stage.num_modules).", stage=stage, **count)], explained


def _extra_rows_causes(unexpected: list[str], expected: dict, prefix: str) -> tuple[list[str], set[str]]:
    """fuse_layers rows beyond the package's: built with multi_scale_output=False, the module has row 0 only."""
    rows = {m.group(1) for k in expected for m in [re.search(r"fuse_layers\.(\d+)\.", k)] if m}
    extra = sorted(k for k in unexpected if (m := re.search(r"fuse_layers\.(\d+)\.", k)) and m.group(1) not in rows)
    if not extra or rows != {"0"}:
        return [], set()
    return [_(" With multi_scale_output=False only row 0 of fuse_layers is built (the pose network's last module "
              "gives out branch 0 alone): your {key} is a row too many, as is every row after 0. Build num_branches rows if "
              "multi_scale_output, else 1.", key=prefix + extra[0])], set()


# ---------------------------------------------------------------- stage 3 and 4: outputs and forward details
def _single(inputs: tuple):
    """A module's positional inputs: the one input itself when there is one."""
    return inputs[0] if len(inputs) == 1 else list(inputs)


def _kind(module: nn.Module) -> str:
    return type(module).__name__


def _error_text(error: BaseException) -> str:
    return str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__


def _where(record: Record, prefix: str) -> tuple[str | None, str]:
    """(the innermost watched module still running when the forward raised, where that is in words)."""
    running = [n for n in record.entered if not record.calls[n].done]
    inside = running[-1] if running else None
    finished = [n for n in record.order if n]
    if inside is not None and (inside or prefix):
        return inside, _("inside {name}", name=_label(inside, prefix))
    if finished:
        return inside, _("in your own forward, after {name} finished", name=prefix + finished[-1])
    return inside, _("before any watched module ran")


def _odd_sizes(prefix: str = "") -> list[int]:
    """The package's branch sizes on the odd scene (square: one number each): the checked piece's own branches
    where it gives out a list (a module, a stage), else stage 4's."""
    output = reference_run(True).calls.get(prefix.rstrip(".")) if prefix else None
    if output is None or not isinstance(output.output, list):
        output = reference_run(True).calls["stage4"]
    return [t.shape[-1] for t in output.output]


def _odd_note(prefix: str = "") -> str:
    return _(" This is on a {size}x{size} scene, whose branches are {sizes} pixels wide; on the {trained}x{trained} "
             "scenes everything matches.", size=ODD_SIZE, sizes=_(", ").join(map(str, _odd_sizes(prefix))),
             trained=trained_image_size())


def _odd_failure(record: Record, prefix: str, reference_module: nn.Module) -> str:
    """The learner's forward ran on the held-out scenes but raised on the odd one: with a RuntimeError (shapes
    that do not fit, see _failure) that is an upsampling by a factor where the sizes do not halve exactly."""
    error = record.error
    if not isinstance(error, RuntimeError):
        return _failure(record, prefix, reference_module) + _odd_note(prefix)
    sizes = _odd_sizes(prefix)
    fine, coarse = next(((f, c) for f, c in zip(sizes, sizes[1:]) if 2 * c != f), (sizes[0], sizes[1]))
    return _("Step 3 (outputs): your code works on the {trained}x{trained} scenes, but on a {size}x{size} scene it "
             "raised {error} {where}: {text}. There the branches are {sizes} pixels wide: each stride-2 step rounds "
             "up, so a coarser branch is not always half the finer one ({coarse} doubled is {doubled}, not {fine}). "
             "Upsample to the finer branch's exact size (size=x[i].shape[-2:]; in the head, "
             "size=features[0].shape[-2:]), not by a scale factor or a size written for one input.",
             trained=trained_image_size(), size=ODD_SIZE, error=type(error).__name__, where=_where(record, prefix)[1],
             text=_error_text(error) + _line(error), sizes=_(", ").join(map(str, sizes)), coarse=coarse,
             doubled=2 * coarse, fine=fine)


def _line(error: BaseException) -> str:
    """' (line N in forward)': where in the learner's code ``error`` was raised; '' where none of it ran."""
    return _(" ({where})", where=where_raised(error)) if learner_frames(error) else ""


def _raised_in_torch(error: BaseException) -> bool:
    """Whether the innermost frame of ``error`` is torch's own Python (a conv's forward given another number of
    channels than it was built for), not the learner's code (an operation such as a sum of two sizes of map)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    torch_dir = os.path.dirname(torch.__file__) + os.sep
    return tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(torch_dir)


def _input_dtype(record: Record, inside: str | None) -> str | None:
    """The dtype of the float maps the module that raised was given, where it is not float32, the scenes' and the
    checkpoint's (a forward that calls .double() or .half() on them): their layers then fail on the types."""
    call = record.calls.get(inside) if inside is not None else None
    dtypes = {t.dtype for t in tensors_in(list(call.inputs)) if t.is_floating_point()} if call is not None else set()
    return next((dtype_name(d) for d in sorted(dtypes, key=str) if d != CHECKPOINT_DTYPE), None)


def _failure(record: Record, prefix: str, reference_module: nn.Module) -> str:
    """Where the learner's forward raised (the innermost watched module still running) and what that usually means."""
    error = record.error
    inside, where = _where(record, prefix)
    message = _("Step 3 (outputs): your code raised {error} {where}: {text}.", error=type(error).__name__,
                where=where, text=_error_text(error) + _line(error))
    module = reference_module.get_submodule(inside) if inside is not None and _has(reference_module, inside) else None
    dtype = _input_dtype(record, inside)
    if isinstance(error, RuntimeError) and dtype is not None:  # the types, not the shapes, do not fit
        return message + _(" {name} was given {dtype} maps; the checkpoint's layers work in float32: leave out the "
                           ".double(), .half() or .to(dtype) in your forward.", name=_label(inside, prefix), dtype=dtype)
    # Decided from the error's type, not its words: with no autograd and float tensors, a RuntimeError
    # in a forward is nearly always tensors whose shapes do not fit (a conv's channels, a sum, a cat).
    shapes = isinstance(error, RuntimeError)
    stage4 = record.calls.get("stage4")
    branch_sizes = {tuple(t.shape[-2:]) for t in stage4.output} if stage4 is not None and stage4.done else set()
    if isinstance(module, HighResolutionModule) and shapes and _raised_in_torch(error):  # a layer got x[j]
        message += _(" In a HighResolutionModule the term that flows from input branch j into output branch i "
                           "is `fuse_layers[i][j](x[j])`: row i is the output, j the input (lesson 03).")
    elif isinstance(module, HighResolutionModule) and shapes:  # your own code joined maps of two sizes
        message += _(" Every term of output i must have x[i]'s size before the sum: a coarser term (j > i) is "
                     "resized with size=x[i].shape[-2:], a finer one (j < i) comes down to x[i]'s size through the "
                     "stride-2 steps of fuse_layers[i][j].")
    elif inside and re.fullmatch(r"transition\d\.\d+", prefix + inside) and shapes:
        message += _transition_input(prefix + inside, module)
    elif inside and ".branches." in prefix + inside and shapes:
        message += _(" Branch b's first block takes num_inchannels[b] channels: check what the transition "
                           "gives it.")
    elif shapes and not inside and len(branch_sizes) > 1:
        message += _(" The stage-4 branches have different sizes and channels: upsample every branch to branch 0's "
                     "size first, then concatenate them along the channels, torch.cat(..., dim=1) (lesson 06).")
    elif isinstance(error, AttributeError) and module is not None and _kept_attribute(error, module):
        # an attribute the forward reads and the official __init__ keeps (Python 3.10+ names it on the error)
        message += _(" The official {type} keeps self.{name}, set in __init__ (self.{name} = {name}); keep it in "
                     "yours, where the forward can read it.", type=type(module).__name__,
                     name=_kept_attribute(error, module))
    return message


def _kept_attribute(error: AttributeError, module: nn.Module) -> str | None:
    """The attribute the learner's forward missed, when the official module keeps it as a plain value (an int,
    a bool, a list): Python 3.10+ names it on the error; 3.9's only in its words, "has no attribute 'x'"."""
    name = getattr(error, "name", None)
    if name is None:
        found = re.search(r"has no attribute '(\w+)'", str(error))
        name = found.group(1) if found else None
    kept = isinstance(name, str) and not name.startswith("_") and hasattr(module, name) and not isinstance(
        getattr(module, name), (nn.Module, type(None)))
    return name if kept else None


def _transition_input(name: str, entry: nn.Module | None) -> str:
    """What transitionK[n] takes: transitionK makes branch K, the new one, from y_list[-1]; an entry below K adapts
    branch n of what came before (layer1's one map for transition1)."""
    k, n = map(int, re.fullmatch(r"transition(\d)\.(\d+)", name).groups())
    if n >= k:
        return _(" A new branch is born from the last, lowest-resolution branch: its input is y_list[-1], "
                 "not y_list[0] (lesson 05).")
    convs = [m for m in entry.modules() if isinstance(m, nn.Conv2d)] if entry is not None else []
    source = "layer1" if k == 1 else f"stage{k}"
    return _(" transition{k}[{n}] is not a new branch: it adapts branch {n} of {source}'s output, so its input is "
             "y_list[{n}] with {channels} channels. Check that your forward gives it {source}'s output (lesson 05).",
             k=k, n=n, source=source, channels=convs[0].in_channels if convs else "?")


def _has(module: nn.Module, name: str) -> bool:
    try:
        module.get_submodule(name)
    except AttributeError:
        return False
    return True


def _label(name: str, prefix: str) -> str:
    """How a watched module is named in a message: its full name in the checkpoint."""
    if name:
        return prefix + name
    return prefix.rstrip(".") if prefix else _("your whole network")


def fuse_variants(module: nn.Module, xs: list[torch.Tensor], align_corners: bool) -> list[tuple[str, list]]:
    """What a HighResolutionModule's fusion gives with each typical slip, from its branch outputs ``xs``:
    (the slip in words, the outputs), first match first."""

    def term(i, j, x, mode="bilinear", align=align_corners):
        if j == i:
            return x[j]
        t = module.fuse_layers[i][j](x[j])
        if j > i:
            kwargs = {"align_corners": align} if mode in ("bilinear", "bicubic") else {}
            t = F.interpolate(t, size=x[i].shape[-2:], mode=mode, **kwargs)
        return t

    def fused(relu_after=True, relu_terms=False, in_place=False, into_x0=None, **kw):
        x, out = list(xs), []
        for i in range(len(module.fuse_layers)):
            terms = [term(i, j, x, **kw) for j in range(len(x))]
            y = sum(torch.relu(t) if relu_terms else t for t in terms[1:]) + (torch.relu(terms[0]) if relu_terms else terms[0])
            out.append(torch.relu(y) if relu_after else y)
            if in_place:
                x[i] = out[-1]
            elif into_x0 and i == 0:  # y = x[0]; y += term: row 0's sum (ReLU'd in place or not) lands in x[0]
                x[0] = out[-1] if into_x0 == "relu" else y
        return out

    checkpoint_setting = checkpoint_align_corners()
    added_in_place = _("you added the terms into x[0] in place (y = x[i] when j == i, then y += term): y is the "
                       "branch output itself, so row 0's sum overwrote x[0], which the later rows still read. Add "
                       "into a new tensor: y = y + term")
    return list({
        _("you left out the ReLU after the fuse sum: each output branch is relu(sum over j of the terms), "
          "one ReLU after the sum (lesson 03)"): fused(relu_after=False),
        _("you put the ReLU in the wrong place: on each term before the sum; the module applies one ReLU after the "
          "sum (that is also why the last stride-2 step of a fuse chain has no ReLU, lesson 03)"):
            fused(relu_after=False, relu_terms=True),
        _("you wrote the fused outputs back into the list (x[i] = ...) while later rows still read it, so "
          "output 1 was fused from the already fused output 0. Collect the outputs in a new list (lessons 03 and 08)"):
            fused(in_place=True),
        _("you upsample with align_corners={yours}; the shipped checkpoint was trained with "
          "align_corners={trained} (checkpoint['align_corners'], the package's model.align_corners): "
          "pass it down to every module and to the head", yours=not align_corners, trained=checkpoint_setting):
            fused(align=not align_corners),
        _("you upsample with mode='nearest'; the segmentation network enlarges coarser branches bilinearly to "
          "branch i's exact size"): fused(mode="nearest"),
        **{_("you upsample with mode='{mode}'; the segmentation network enlarges coarser branches bilinearly "
             "(mode='bilinear') to branch i's exact size", mode=mode): fused(mode=mode) for mode in ("bicubic", "area")},
    }.items()) + [(added_in_place, fused(into_x0=when)) for when in ("relu", "sum")]  # an in-place ReLU or not


def head_variants(features: list[torch.Tensor], align_corners: bool) -> dict[str, torch.Tensor]:
    """What the V2 head's concatenation (last_layer's input) is with each typical slip."""
    size = features[0].shape[-2:]

    def concat(mode="bilinear", align=align_corners, order=1):
        kwargs = {"align_corners": align} if mode == "bilinear" else {}
        resized = [features[0]] + [F.interpolate(f, size=size, mode=mode, **kwargs) for f in features[1:]]
        return torch.cat(resized[::order], dim=1)

    return {
        _("your head upsamples with align_corners={yours}; the shipped checkpoint was trained with "
          "align_corners={trained} (checkpoint['align_corners']): lesson 06's v2_head used True, the "
          "package's default (the HRNetV2-W48 Cityscapes files of the official HRNet-OCR git branch say False; "
          "lesson 08, section 4.3), so "
          "pass align_corners in",
          yours=not align_corners, trained=checkpoint_align_corners()): concat(align=not align_corners),
        _("your head upsamples with mode='nearest'; HRNetV2 resizes bilinearly to branch 0's exact size"):
            concat(mode="nearest"),
        _("you concatenated the branches in reverse order; last_layer's weights expect branch 0 first"):
            concat(order=-1),
    }


def _detail(name: str, side: str, learner: nn.Module, record: Record, reference_module: nn.Module,
            previous: str | None, prefix: str) -> str:
    """Step 4: at the first difference, which slip explains it."""
    align = checkpoint_align_corners()
    if side == "output" and isinstance(reference_module, HighResolutionModule):
        return _fusion_detail(name, record, reference_module)
    if side == "input" and name == "last_layer":
        stage4 = [n for n in record.order if re.fullmatch(r"stage4\.\d+", n)]
        features = record.calls[stage4[-1]].output if stage4 else None
        mine = record.calls[name].inputs[0]
        if features is not None:
            with torch.no_grad():
                for message, value in head_variants(list(features), align).items():
                    if difference(mine, value)[0]:
                        return _(" Step 4 (forward details): stage 4 matches, but {slip}.", slip=message)
        return _(" Step 4 (forward details): stage 4 matches, so look at the head: the package's last_layer gets "
                 "{before}.", before=between("last_layer"))
    if side == "input":
        before = between(prefix + name)
        if previous is not None:
            message = _(" Everything up to {name} matches, so the difference comes from what your forward does "
                        "after {name} and before it calls this module", name=_label(previous, prefix))
        else:
            message = _(" It is the first module your forward calls, so the difference comes from what your forward "
                        "does to x before calling it")
        return message + (_(" (the package's {name} gets {before}).", name=prefix + name, before=before)
                                if before else _("."))  # a sentence end: "。" in Chinese
    if side == "output" and name == "" and not prefix:
        return _(" Every module matches, so what your forward does after last_layer differs: return "
                       "last_layer's logits as they are (B x classes x H/4 x W/4); no upsampling, no softmax or "
                       "LogSoftmax.")
    return _layer_detail(learner.get_submodule(name), reference_module) or _(
        " Its input matches, so {name} ({kind}) computes something else inside: compare its forward with the "
        "package's.", name=_label(name, prefix), kind=_kind(learner.get_submodule(name)))


def _fusion_detail(name: str, record: Record, reference_module: HighResolutionModule) -> str:
    """Step 4 at a HighResolutionModule whose branches match: what it returns, or which fusion slip."""
    mine = record.calls[name].output
    rows = len(reference_module.fuse_layers)
    if not isinstance(mine, (list, tuple)) or len(mine) != rows:
        return _(" Step 4 (forward details): forward returns a Python list with one fused map per row of "
                 "fuse_layers ({rows} here): out = [self.relu(sum of row i's terms) for i in "
                 "range(len(self.fuse_layers))], then return out.", rows=rows)
    branches = [record.calls[f"{name}.branches.{b}" if name else f"branches.{b}"].output
                for b in range(reference_module.num_branches)]
    with torch.no_grad():
        for message, value in fuse_variants(reference_module, branches, checkpoint_align_corners()):
            if difference(mine, value)[0]:
                return _(" Step 4 (forward details): its branches match, but {slip}.", slip=message)
    return _(" Step 4 (forward details): its branches match, so the fusion differs: output i is "
             "relu(sum over j of `fuse_layers[i][j](x[j])`, upsampled bilinearly to branch i's size when j > i; "
             "x[i] itself when j == i).")


GEOMETRY = ("stride", "padding", "dilation", "padding_mode")  # what a conv's weights do not show


def _layer_detail(mine: nn.Module, official: nn.Module) -> str:
    """A conv with the checkpoint's weights and the same input, but set up otherwise: which setting differs."""
    if not (isinstance(mine, nn.Conv2d) and isinstance(official, nn.Conv2d)):
        return ""
    settings = [(k, getattr(mine, k), getattr(official, k)) for k in GEOMETRY if getattr(mine, k) != getattr(official, k)]
    if not settings:
        return ""
    return _(" Its input and weights match, so the conv is set up otherwise: yours has {yours}, the official one "
             "{official}. A conv's output size comes from its kernel_size, stride and padding.",
             yours=", ".join(f"{k}={v}" for k, v, _o in settings), official=", ".join(f"{k}={o}" for k, _v, o in settings))


def _compared_names(prefix: str) -> tuple[list[str], dict[str, str]]:
    """The learner's watched names (relative to ``prefix``; '' is the module itself), in the order the
    package's forward finishes them, and each one's name in the package's model."""
    reference = reference_run()
    full = watched_names(package_model())
    names = [n[len(prefix):] for n in full if n.startswith(prefix)] + [""] if prefix else full
    ref_name = {n: (prefix + n if n else prefix.rstrip(".")) for n in names}
    names.sort(key=lambda n: reference.order.index(ref_name[n]))
    return names, ref_name


def stage_outputs(learner: nn.Module, prefix: str, inputs: tuple, reference_module: nn.Module,
                  call: Callable = lambda fn, *args: fn(*args), odd: bool = False) -> tuple[float, Record]:
    """Run the learner's module with hooks; raise Wrong at the first watched module that differs.
    ``odd``: the inputs come from the odd scene (after the held-out scenes passed), and the message says so."""
    reference = reference_run(odd)
    names, ref_name = _compared_names(prefix)
    output, record = run_hooked(learner, names, inputs, call)
    if record.error is None:
        record.calls.setdefault("", Call(inputs, output, True))
    try:
        for index, name in enumerate(names):
            # After an exception, the modules that finished first: one that returned something wrong (a tensor
            # for a list, None) makes a later, innocent piece raise, and is the place to look.
            if record.error is not None and not _done(record, name):
                break
            if not _done(record, name):
                if _through_children(name, names, record):  # `for block in self.layer1:` runs the same blocks
                    continue
                raise Wrong(_never_called(name, names, record, reference, ref_name, prefix))
            previous = names[index - 1] if index else None
            _compare_one(name, previous, record, reference.calls[ref_name[name]], learner, reference_module, prefix)
    except Wrong as wrong:
        if odd:
            raise Wrong(str(wrong) + _odd_note(prefix)) from None
        raise
    if record.error is not None:
        message = _odd_failure(record, prefix, reference_module) if odd else _failure(record, prefix, reference_module)
        raise Wrong(message + _none_called(learner, record, prefix, inputs, call))
    return difference(record.calls[""].output, reference.calls[ref_name[""]].output)[2], record


def _class_name(module: nn.Module) -> str:
    """nn.ModuleList for torch's containers, the class's own name for one of the learner's."""
    cls = type(module)
    return f"nn.{cls.__name__}" if cls.__module__.startswith("torch.nn") else cls.__name__


def _done(record: Record, name: str) -> bool:
    return name in record.calls and record.calls[name].done


def _through_children(name: str, names: list[str], record: Record) -> bool:
    """Whether the forward ran every watched module inside ``name`` without calling ``name`` itself (a loop over
    an nn.Sequential's blocks): the same computation, compared module by module through the children."""
    inside = [n for n in names if name and n.startswith(name + ".")]
    return bool(inside) and all(_done(record, n) for n in inside)


def _never_called(name: str, names: list[str], record: Record, reference: Record, ref_name: dict[str, str],
                  prefix: str) -> str:
    """The outermost watched module holding ``name`` that the forward never called (a skipped stage is named, not
    its first branch), and the module the package calls just before it."""
    outer = min((n for n in names if n and name.startswith(n + ".") and not _done(record, n)), key=len, default=name)
    full = ref_name[outer]
    started = set(reference.entered[:reference.entered.index(full)])
    # started before it and not one that holds it: finished before it started; the last of those to finish
    finished = [n for n in reference.order if n in started and n and not full.startswith(n + ".")]
    ours = {v: k for k, v in ref_name.items()}
    before = finished[-1] if finished else None
    if before is not None and before in ours:
        return _("Step 3 (outputs): your forward never calls {name}; the package's calls it after {previous}.",
                 name=_label(outer, prefix), previous=_label(ours[before], prefix))
    return _("Step 3 (outputs): your forward never calls {name}; the package's calls it first.",
             name=_label(outer, prefix))


# Lists whose None entries a forward must not call, and what a None there means.
NONE_ENTRIES = (
    (r"(.*\.)?fuse_layers\.\d+", N_(" fuse_layers[i][i] is None: the term for j == i is x[i] itself, with nothing "
                                     "to call (lesson 03).")),
    (r"transition\d", N_(" A None entry of a transition passes y_list[i] through unchanged: call only the entries "
                         "that are not None (lesson 05).")),
)


def _none_called(learner: nn.Module, record: Record, prefix: str, inputs: tuple, call: Callable) -> str:
    """For a TypeError: whether the forward called a None entry. Run the module again with those entries
    nn.Identity; if the TypeError goes away, that was the call."""
    if not isinstance(record.error, TypeError):
        return ""
    inside = _where(record, prefix)[0] or ""
    module = learner.get_submodule(inside) if inside else learner
    args = record.calls[inside].inputs if inside in record.calls else inputs
    for pattern, sentence in NONE_ENTRIES:
        holes = [(entries, i) for name, entries in module.named_modules() if isinstance(entries, nn.ModuleList)
                 and re.fullmatch(pattern, name) for i, entry in enumerate(entries) if entry is None]
        for entries, i in holes:
            entries[i] = nn.Identity()
        try:
            error = run_hooked(module, [], args, call)[1].error if holes else record.error
        except NotImplementedError:  # past that call it reached a piece not written yet: the call was the error
            error = None
        finally:
            for entries, i in holes:
                entries[i] = None
        if not isinstance(error, TypeError):
            return str(sentence)
    return ""


def _compare_one(name: str, previous: str | None, record: Record, ref_call: Call, learner: nn.Module,
                 reference_module: nn.Module, prefix: str) -> None:
    """Step 3 for one watched module: called, same input, same output; else Wrong, with step 4's detail."""
    label, mine = _label(name, prefix), record.calls[name]  # stage_outputs saw it called
    module = reference_module.get_submodule(name) if name else reference_module
    if name:  # the module itself gets our inputs
        same, what, _diff = difference(_single(mine.inputs), _single(ref_call.inputs))
        if not same:
            raise Wrong(_("Step 3 (outputs): {name} gets another input than in the package's model ({what}).",
                          name=label, what=what)
                        + _detail(name, "input", learner, record, module, previous, prefix))
    same, what, diff = difference(mine.output, ref_call.output)
    if not same:
        kind = _(" ({kind})", kind=_kind(module)) if name or prefix else ""
        if diff == float("inf"):
            message = _("Step 3 (outputs): {name} differs from the package's ({what}).", name=label + kind, what=what)
        else:
            message = _("Step 3 (outputs): {name} gives other numbers than the package's ({what}).",
                        name=label + kind, what=what)
        raise Wrong(message + _detail(name, "output", learner, record, module, previous, prefix))


# ---------------------------------------------------------------- the whole check
def _not_answered(error: NotImplementedError) -> str:
    return _("{piece} still raises NotImplementedError: write it and run the cell that defines it; then, if this "
             "check is in another cell, run this one again.", piece=_unwritten(error))


def as_module(make: Callable[[], Any], what: str) -> nn.Module:
    """The learner's module from ``make()``; an unwritten piece (NotImplementedError) says which."""
    try:
        module = make()
    except NotImplementedError as error:
        raise NotAttempted(_not_answered(error)) from None
    if isinstance(module, (list, tuple)):
        official = (_(" The official _make_stage also returns the last widths (lesson 05); here return the "
                      "nn.Sequential alone: MyHRNet reads the widths from cfg.")
                    if what == "make_stage" and module and isinstance(module[0], nn.Module) else "")
        raise Wrong(_("{what} gave a Python {type}; return an nn.Module (an nn.Sequential of the "
                      "modules) so its parameters are registered and appear in state_dict().",
                      what=what, type=type(module).__name__) + official)
    if module is None:
        raise Wrong(_("Your {what} returned None: did you forget `return`? It should return an nn.Module.",
                      what=what))
    if not isinstance(module, nn.Module):
        raise Wrong(_("Your {what} returned {type}; it should return an nn.Module.", what=what, type=a_type(module)))
    return module


def _without_forward(error: BaseException) -> nn.Module | None:
    """The module whose call raised ``error`` because its class has no forward (an nn.ModuleList, say):
    the innermost frame is nn.Module's placeholder forward."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_locals.get("self") if tb is not None else None
    if isinstance(module, nn.Module) and type(module).forward is nn.Module.forward:
        return module
    return None


def _unwritten(error: BaseException) -> str:
    """The learner's function or method that raised: the last frame outside the package and torch."""
    frames, tb = [], error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    mine = [f for f in frames if "hrnet_teach" not in f.f_code.co_filename and "torch" not in f.f_code.co_filename]
    name = _qualname((mine or frames)[-1])
    return f"`{name}`" if "<" not in name else _("a piece of your network")


def _qualname(frame) -> str:
    """``HighResolutionModule.__init__`` rather than ``__init__``: Python 3.11+ keeps it on the code object;
    before that, a method's class is read off its ``self``."""
    code = frame.f_code
    if hasattr(code, "co_qualname"):
        return code.co_qualname
    owner = frame.f_locals.get("self")
    return f"{type(owner).__qualname__}.{code.co_name}" if owner is not None else code.co_name


def check_module(learner: nn.Module, prefix: str, inputs: tuple, reference_module: nn.Module,
                 call: Callable = lambda fn, *args: fn(*args), odd_inputs: tuple | None = None) -> str:
    """Stages 1-4 for ``learner`` against the checkpoint's tensors under ``prefix`` (e.g. 'stage3.0.', '' for all).
    ``call(fn, *args)`` runs the learner's forward (an exercise passes its time-limited call); ``odd_inputs``
    (from the odd scene) are compared after ``inputs`` pass."""
    expected = OrderedDict((k[len(prefix):], v) for k, v in checkpoint()["model"].items() if k.startswith(prefix))
    got = learner.state_dict()
    stage_keys(got, expected, prefix, learner)
    stage_shapes(got, expected, prefix)
    try:
        learner.load_state_dict(expected, strict=True)
    except RuntimeError as error:  # keys and shapes agree, so this is rare (a custom _load_from_state_dict)
        raise Wrong(_("Keys and shapes match, but loading strictly failed: {error}",
                      error=str(error).splitlines()[0])) from None
    learner.eval()
    diff, record = stage_outputs(learner, prefix, inputs, reference_module, call)
    if odd_inputs is not None:
        diff = max(diff, stage_outputs(learner, prefix, odd_inputs, reference_module, call, odd=True)[0])
    note = ""
    mutated = sorted((n for n in record.mutated if n), key=lambda n: (-n.count("."), n))  # the module, not its stage
    if mutated:
        note = _(" Note: {name} writes into the list it is given (as the official module does); "
                 "harmless here, but lesson 08 shows where it bites.", name=prefix + mutated[0])
    return _("{count} tensors load strictly; outputs equal the package's (largest difference {diff}).",
             count=len(expected), diff=format(diff, ".2g")) + note


class CheckpointExercise(Exercise):
    """The answer builds a module (a class or function, called with ``args``; or a module) that must hold
    the checkpoint's tensors under ``prefix`` and compute what the package's module there computes.

    A sibling of ``_kinds.ModuleExercise``: that one compares a built module with the package's on the
    answer's own weights; this one loads the shipped trained weights into the answer and compares
    module by module on real scenes, in the four stages above. Building and running the learner's
    code go through ``Exercise.call``, under the time limit.
    """

    def __init__(self, *, prefix: str, args: tuple = (), what: str, structures: Callable[[], list] | None = None,
                 aligned: tuple | None = None, **common):
        super().__init__(**common)
        self.prefix, self.args, self.what = prefix, tuple(args), what
        # () -> [(args, the package's module built alike, where)]: built only, keys and shapes compared (no
        # checkpoint), for what the checkpoint's network cannot show (stages of one module, every fuse row)
        self.structures = structures
        # (args with align_corners=True, what to do when it is ignored): the checkpoint's False is also
        # F.interpolate's default, so only a build at True shows an answer that never passes the setting on
        self.aligned = aligned

    def build(self, answer: Any) -> nn.Module:
        if isinstance(answer, nn.Module):  # a copy: loading the checkpoint must not change the learner's own net
            try:
                answer = copy.deepcopy(answer)
            except Exception:  # something in it cannot be copied: checked as it is
                pass
            return self._checked_module(answer)
        if not callable(answer):
            raise Wrong(_("Pass your {what} itself (its name, no brackets); you gave {type} {answer}.",
                          what=self.what, type=type(answer).__name__, answer=repr(answer)))
        self._refuse_class_without_init(answer)

        try:  # the stub's arguments must fit the answer's parameters
            inspect.signature(answer).bind(*self.args)
        except TypeError as error:
            raise Wrong(_("The check calls {what} with the stub's arguments, which your function does not take: "
                          "{error}. Keep the stub's parameters.", what=self.what, error=error)) from None
        except ValueError:  # no signature to read (a builtin): let the call say
            pass
        module = as_module(lambda: self.call(answer, *self.args, where=_("building your {what}", what=self.what)),
                           self.what)
        return self._checked_module(module)

    def _refuse_class_without_init(self, answer: Any) -> None:
        """A class that leaves out __init__ gets nn.Module's, which takes no arguments (torch's TypeError, at a line
        of torch's) and builds no layers (no keys at all): said as such, with the stub's parameters."""
        if not (isinstance(answer, type) and issubclass(answer, nn.Module) and answer.__init__ is nn.Module.__init__):
            return
        if not isinstance(self.reference, type):  # a class where the notebook defines a function (make_layer)
            raise Wrong(_("You passed a class, {name}, with no `__init__` of its own; {what} is a function: pass the "
                          "one you wrote with `def {what}(...)`.", name=answer.__name__, what=self.what))
        parameters = str(inspect.signature(self.reference))[1:-1]
        raise Wrong(_("Your {what} has no `__init__` of its own, so nn.Module's runs: it takes no arguments and "
                      "builds no layers. Keep the notebook's `def __init__(self, {parameters})` line and build the "
                      "layers in it.", what=self.what, parameters=parameters))

    def _checked_module(self, module: nn.Module) -> nn.Module:
        """The learner's module on the CPU, where the scenes and the package's model are, once it has values
        (not the meta device's) in the checkpoint's dtype."""
        if any(t.is_meta for t in module.state_dict().values()):
            raise Wrong(_("Your {what} was built on the meta device: its tensors have shapes but no values, so the "
                          "checkpoint cannot be loaded into it. Build it without device='meta'.", what=self.what))
        self._refuse_other_dtype(module)
        return module.cpu()

    def _refuse_other_dtype(self, module: nn.Module) -> None:
        """Float64 weights would take the checkpoint's float32 tensors (converted), then fail on the float32
        scenes in torch's words about types, read as a slip of channels: said here instead."""
        odd = next(((k, t.dtype) for k, t in module.state_dict().items()
                    if t.is_floating_point() and t.dtype != CHECKPOINT_DTYPE), None)
        if odd is not None:
            raise Wrong(_("Your {what}'s weights are {dtype} ({key}, for one); the check loads the checkpoint's as {expected} "
                          "(stored as float16, cast on loading). "
                          "Build the layers without dtype= (and no .double(), .half() or .to(...)).", what=self.what,
                          dtype=dtype_name(odd[1]), key=self.prefix + odd[0], expected=dtype_name(CHECKPOINT_DTYPE)))

    def inputs(self, odd: bool = False) -> tuple:
        base = self.prefix.rstrip(".")
        if base:
            return reference_run(odd).calls[base].inputs
        return (odd_scene(),) if odd else (scenes()[0],)

    def compare(self, module: nn.Module) -> str:
        base = self.prefix.rstrip(".")
        reference = package_model().get_submodule(base) if base else package_model()

        def call(fn, *args):
            return self.call(fn, *args, where=_("running your {what}", what=self.what))

        result = check_module(module, self.prefix, self.inputs(), reference, call, self.inputs(odd=True))
        if base:
            return _("Your {what} matches the checkpoint's {name}: {result}", what=self.what, name=base, result=result)
        return _("Your {what} matches the checkpoint's network: {result}", what=self.what, result=result)

    def _check(self, answer: Any) -> str:
        with one_thread():
            module = self.build(answer)
            try:
                result = self.compare(module)
                if callable(answer) and not isinstance(answer, nn.Module):  # a builder: built again, otherwise
                    result += self.compare_structures(answer) if self.structures else ""
                    result += self.compare_aligned(answer) if self.aligned else ""
                elif self.structures or self.aligned:  # a module built once cannot be built again: not passed
                    raise Wrong(self._built_once_message())
                return result
            except NotImplementedError as error:
                holder = _without_forward(error)
                if holder is not None:
                    raise Wrong(self._without_forward_message(module, holder)) from None
                raise NotAttempted(_not_answered(error)) from None

    def _built_once_message(self) -> str:
        """A built module that matches, where the check also builds the answer in other ways: what was not seen."""
        ways = [_("as {where}", where=where) for _args, _official, where, *_named in self.structures()] \
            if self.structures else []
        ways += [_("with align_corners=True")] if self.aligned else []
        return _("The module you passed matches the checkpoint's, but it is one module, built once: the check also "
                 "builds your {what} {ways}, which a built module cannot show. Pass {what} itself (its name, no "
                 "brackets).", what=self.what, ways=_and(ways))

    def compare_structures(self, answer: Callable) -> str:
        """The answer built as in each of ``structures`` (args, the package's module, where in words, and optionally
        the module's name in a network when it is not this exercise's): its keys and shapes must be the package's."""
        wheres = []
        for args, official, where, *named in self.structures():
            mine = as_module(lambda args=args, where=where: self.call(
                answer, *args, where=_("building your {what} as {where}", what=self.what, where=where)), self.what)
            compare_structure(mine, official, named[0] if named else self.prefix, str(where))
            wheres.append(str(where))
        return _(" Built as {wheres}, it has the package's keys and shapes too.", wheres=_and(wheres))

    def compare_aligned(self, answer: Callable) -> str:
        """The answer built with align_corners=True and the checkpoint's tensors: its output must be the
        package's module's, switched to True, on the same inputs."""
        args, hint = self.aligned
        try:  # a builder that takes no align_corners (a lambda: MyHRNet()) cannot be set to True: said, not skipped
            inspect.signature(answer).bind(*args)
        except TypeError as error:
            raise Wrong(_("Last, the check builds your {what} with align_corners=True, as {call}, and yours does not "
                          "take that ({error}). Keep the notebook's parameters, align_corners among them, and pass "
                          "{what} itself.", what=self.what, error=error,
                          call=f"{self.what}({', '.join(map(_arg_text, args))})")) from None
        except ValueError:  # no signature to read: let the call say
            pass
        (got, mine), base = self._run_aligned(answer, args), self.prefix.rstrip(".")
        same, differs, _diff = difference(got, aligned_reference(base))
        if same:
            return _(" Built with align_corners=True, it upsamples as the package's does then too.")
        if difference(got, reference_run().calls[base].output)[0]:
            raise Wrong(_("Built with align_corners=True, your {what} gives the same numbers as with False, the "
                          "checkpoint's setting and F.interpolate's default: the argument never reaches "
                          "F.interpolate. {hint}", what=self.what, hint=str(hint)))
        raise Wrong(_("Built with align_corners=True, your {what} gives other numbers than the package's module "
                      "built alike ({what_differs}): somewhere the setting is not passed on. {hint}",
                      what=self.what, what_differs=differs, hint=_still_false(mine, self.prefix) + str(hint)))

    def _run_aligned(self, answer: Callable, args: tuple) -> Any:
        """The answer built with ``args``, the checkpoint's tensors loaded, run on the held-out scenes' inputs."""
        mine = self._checked_module(as_module(lambda: self.call(answer, *args, where=_(
            "building your {what} with align_corners=True", what=self.what)), self.what))
        state = OrderedDict((k[len(self.prefix):], v) for k, v in checkpoint()["model"].items()
                            if k.startswith(self.prefix))
        try:
            mine.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise Wrong(_("Built with align_corners=True, your {what} no longer loads the checkpoint's tensors: "
                          "{error}. The setting changes how it upsamples, not what it holds.", what=self.what,
                          error=str(error).splitlines()[0])) from None
        got, record = run_hooked(mine.eval(), [], self.inputs(), lambda fn, *a: self.call(
            fn, *a, where=_("running your {what}", what=self.what)))
        if record.error is not None:
            raise Wrong(_("Built with align_corners=True, your {what} raised {error}: {text}.", what=self.what,
                          error=type(record.error).__name__, text=_error_text(record.error) + _line(record.error)))
        return got, mine

    def _without_forward_message(self, module: nn.Module, holder: nn.Module) -> str:
        """Which module of the learner's has no forward (an nn.ModuleList where make_layer should chain blocks)."""
        path = next((name for name, m in module.named_modules() if m is holder), None)
        if path is None:
            return _("Running your {what} called a module that has no forward: {type}. An nn.ModuleList only "
                     "holds modules: loop over it, or use nn.Sequential to chain them.",
                     what=self.what, type=_class_name(holder))
        return _("Running your {what} called {name} ({type}), which has no forward. An nn.ModuleList only "
                 "holds modules: loop over it, or use nn.Sequential to chain them.",
                 what=self.what, name=_label(path, self.prefix), type=_class_name(holder)) + (
            _(" make_layer builds {name}: return nn.Sequential(*layers).", name=_label(path, self.prefix))
            if re.search(r"(^|\.)(branches\.\d+|layer1)$", _label(path, self.prefix)) else
            _(" A transition is run entry by entry: y = transition_forward(self.{name}, y) (lesson 05).",
              name=_label(path, self.prefix))
            if re.fullmatch(r"transition\d", _label(path, self.prefix)) else "")
