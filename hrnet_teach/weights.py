"""Loading checkpoints: the authors', timm's, and our own, with a report instead of silence.

The official repositories load pretrained weights without a word about what is left out:
seg_hrnet.py and cls_hrnet.py keep only the entries whose names exist in the model
(``{k: v for k, v in pretrained.items() if k in model_dict}``) and log what they load (the
pytorch-v1.1 branch's seg_hrnet.py not even that), pose_hrnet.py keeps the top-level modules
listed in ``PRETRAINED_LAYERS`` and loads them with strict=False, discarding the report, and seg_hrnet_ocr.py prints the two sets of
unmatched names as raw Python sets, so a checkpoint of the wrong variant or head can
load "successfully" while leaving most of the network at its random initialisation.
Here a load is strict by default and always produces a :class:`LoadReport`: every
missing, unexpected and shape-mismatched key, grouped by module, with a guess of
which variant and head the checkpoint was made for.

Key names need no translation: this package uses the official names, and timm's
``hrnet_w*`` models use the same ones (checked key by key for all nine variants).
Only wrappers are removed: ``model.`` (the official segmentation trainer saves its
``FullModel``, whose ``loss.*`` entries belong to the loss, not the network),
``module.`` (DataParallel / DistributedDataParallel), and ``backbone.`` / ``neck.``
(the authors' mmdetection fork, HRNet-Object-Detection, where their HRFPN lives; upstream
mmdetection wraps those convs in ConvModule, so its keys read ``reduction_conv.conv.*``).

Also here, so that a lesson or widget never imports the trainer to get weights:
reading ``hrnet_teach.train``'s checkpoints back (:func:`read_checkpoint`,
:func:`model_from_checkpoint`), the shipped shapes network (:func:`load_shapes_model`,
:func:`shapes_checkpoint_info`) and :func:`pretrained_or_shipped`. A file that is
empty, cut short or not a checkpoint at all is named as such (:func:`read_torch_file`).
"""
from __future__ import annotations

import dataclasses
import html
import os
import pickle
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional
from urllib.parse import urlparse

import torch
from torch import nn

from ._validate import flag, refuse_meta
from .config import VARIANTS, HRNetConfig, StageConfig, get_config
from .i18n import N_, _, get_language

WRAPPER_PREFIXES = ("module.", "model.", "backbone.", "neck.")
LOSS_PREFIX = "loss."  # the official segmentation trainer's FullModel.loss
CHECKPOINT_ENTRIES = ("state_dict", "model")  # where training checkpoints keep the weights
MAX_MISMATCHED_SHOWN = 8
HUB_TIMEOUT_S = 2.0

# timm's names for our variants; the files are model.safetensors with the official keys.
_TIMM_NAMES = {"w18_small_v1": "hrnet_w18_small", "w18_small_v2": "hrnet_w18_small_v2"}
_HEAD_PARTS = {
    "conv3x3_ocr": "OCR (HRNet-OCR)",
    "last_layer": "segmentation",
    "incre_modules": "classification (ImageNet)",
    "classifier": "classification (ImageNet)",
    "reduction_conv": "pyramid (HRFPN)",
}
# A guess reads "<variant>, <head> weights": one whole message per head, so that a translation can order the words.
_GUESS_MESSAGES = {
    "OCR (HRNet-OCR)": N_("{what}, OCR (HRNet-OCR) weights"),
    "segmentation": N_("{what}, segmentation weights"),
    "classification (ImageNet)": N_("{what}, classification (ImageNet) weights"),
    "pyramid (HRFPN)": N_("{what}, pyramid (HRFPN) weights"),
    "pose": N_("{what}, pose weights"),
    "backbone only": N_("{what}, backbone only weights"),
}
_CUSTOM_HRNET = N_("a custom HRNet (C = {width}, {stage3} stage-3 and {stage4} stage-4 modules)")


class WeightsMismatchError(ValueError):
    """A strict load found keys that do not fit; the message is the full report."""

    def __init__(self, report: LoadReport) -> None:
        super().__init__(str(report))
        self.report = report


class WeightsUnavailableError(OSError):
    """Pretrained weights cannot be obtained here (offline, or the hub is unreachable).

    ``reason``: why, in a few words ("HF_HUB_OFFLINE is set", "huggingface.co cannot be reached ..."), in the
    lessons' language when shown (the message itself is English, as the package's errors are).
    """

    def __init__(self, message: str, reason: Any = "") -> None:
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------- report
@dataclass
class LoadReport:
    """What a load did: ``loaded`` tensors, and every key that did not fit.

    ``mismatched`` holds ``(key, checkpoint_shape, model_shape)``. ``ignored`` are
    entries that are not part of any network (the trainer's loss weights). Its text (str, the notebook
    view, a WeightsMismatchError's message) is in the lessons' language; its fields, ``checkpoint_guess``
    included, are data and stay English.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    loaded: int = 0
    total: int = 0  # tensors in the model's state dict
    ignored: list[str] = field(default_factory=list)
    stripped: dict[str, int] = field(default_factory=dict)  # prefix -> how many keys had it
    filled: int = 0  # num_batches_tracked counters absent from the checkpoint, set by BatchNorm itself
    model_name: str = "model"
    model_variant: Optional[str] = None
    checkpoint_guess: Optional[str] = None
    source: str = "state dict"
    applied: bool = False  # whether the weights were copied into the model
    _missing_groups: list[tuple[str, int]] = field(default_factory=list, repr=False)
    _unexpected_groups: list[tuple[str, int]] = field(default_factory=list, repr=False)
    _guess: Optional[_Guess] = field(default=None, repr=False)  # checkpoint_guess's parts, to show it translated

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    # -------------------------------------------------------------- text
    # The text is in the lessons' language (hrnet_teach.i18n): each message is whole, its values named.
    def title(self) -> str:
        what = (_("{name} ({variant})", name=self.model_name, variant=self.model_variant) if self.model_variant
                else f"{self.model_name}")
        values = dict(loaded=self.loaded, total=self.total, what=what, source=self.source)
        head = (_joined("loaded {loaded} of {total} tensors into {what} from {source}", **values) if self.applied
                else _joined("would load {loaded} of {total} tensors into {what} from {source}", **values))
        return (_("OK: {head}: every key and shape matches.", head=head) if self.ok
                else _("NOT A FULL MATCH: {head}.", head=head))

    def notes(self) -> list[str]:
        """What was adjusted on the way (prefixes, absent counters, the trainer's loss)."""
        out = []
        between = _(", ")  # between the items of a list
        if self.stripped:
            prefixes = [_("'{prefix}' ({n} keys)", prefix=p, n=n) for p, n in self.stripped.items()]
            out.append(_("prefixes removed: {prefixes}", prefixes=between.join(prefixes)))
        if self.filled:
            out.append(_("{n} BatchNorm num_batches_tracked counters were absent (old or InPlaceABN checkpoint); "
                         "BatchNorm keeps the model's own counters (0 in a freshly built model), which changes "
                         "nothing in eval mode.", n=self.filled))
        if self.ignored:
            keys = between.join(self.ignored[:4]) + (" ..." if len(self.ignored) > 4 else "")
            out.append(_("ignored {n} entry of the trainer's loss (not part of the network): {keys}",
                         n=len(self.ignored), keys=keys) if len(self.ignored) == 1 else
                       _("ignored {n} entries of the trainer's loss (not part of the network): {keys}",
                         n=len(self.ignored), keys=keys))
        classes = self._other_classes()
        if classes:
            out.append(_("Only the last layer differs: the checkpoint predicts {checkpoint} classes, the model "
                         "{model}. Build the model with num_classes={checkpoint} to use it as it is, or load with "
                         "strict=False to take everything else and keep a fresh last layer (fine-tuning).",
                         checkpoint=classes[0], model=classes[1]))
        folded = self._folded_side()
        if folded == "checkpoint":
            out.append(_("The checkpoint has its BatchNorms folded into the convolutions (deploy.fast / "
                         "fold_batchnorm): save and load the original model's state_dict, then call deploy.fast() "
                         "on the loaded model."))
        elif folded == "model":
            out.append(_("The model has its BatchNorms folded into the convolutions (deploy.fast / fold_batchnorm): "
                         "load the weights into the original model (before fast()), then call deploy.fast() on it."))
        return out

    def _other_classes(self) -> Optional[tuple[int, int]]:
        """(checkpoint's, model's) number of outputs, when the only difference is the output count of one
        last layer (its weight and bias): a checkpoint trained on another dataset."""
        if not 0 < len(self.mismatched) <= 2 or self.missing or self.unexpected:
            return None
        layers = {key.rsplit(".", 1)[0] for key, _, _ in self.mismatched}
        counts = {(ckpt[0], mine[0]) if ckpt and ckpt[1:] == mine[1:] else None for _, ckpt, mine in self.mismatched}
        return counts.pop() if len(layers) == 1 and len(counts) == 1 and None not in counts else None

    def _folded_side(self) -> Optional[str]:
        """Which side had deploy.fast() fold its BatchNorms ("checkpoint" or "model"), if the keys say so:
        one side has only conv biases the other lacks, the other only BatchNorm entries."""
        if _only_biases(self.unexpected) and _only_batchnorm(self.missing):
            return "checkpoint"
        if _only_biases(self.missing) and _only_batchnorm(self.unexpected):
            return "model"
        return None

    def lines(self) -> list[str]:
        out = [self.title()]
        if self.hint():  # first: it usually explains everything below
            out.append("  " + self.hint())
        out += ["  " + note for note in self.notes()]
        if self.mismatched:
            out.append("  " + _("shape-mismatched ({n}): in both, but the checkpoint's shape differs; not loaded:",
                                n=len(self.mismatched)))
            out += ["    " + _mismatch(key, ckpt, mine) for key, ckpt, mine in self.mismatched[:MAX_MISMATCHED_SHOWN]]
            if len(self.mismatched) > MAX_MISMATCHED_SHOWN:
                out.append("    " + _("... and {n} more (report.mismatched)",
                                      n=len(self.mismatched) - MAX_MISMATCHED_SHOWN))
        if self.unexpected:
            out.append("  " + _("unexpected ({n}): in the checkpoint, not in the model; dropped:", n=len(self.unexpected)))
            out += ["    " + _tensors(name, n) for name, n in self._unexpected_groups]
        if self.missing:
            out.append("  " + _("missing ({n}): in the model, not in the checkpoint; left as initialised:",
                                n=len(self.missing)))
            out += ["    " + _tensors(name, n) for name, n in self._missing_groups]
        return out

    def hint(self) -> str:
        if self.ok or not self.checkpoint_guess:
            return ""
        guess = self.checkpoint_guess
        if self._guess is not None and _guess_text(self._guess, _english) == guess:  # not replaced since: translate
            guess = _guess_text(self._guess, _joined)
        if self.model_variant:
            return _joined("This checkpoint looks like {guess}; the model is {variant}.", guess=guess,
                           variant=self.model_variant)
        return _joined("This checkpoint looks like {guess}.", guess=guess)

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.ok else "#b35900"
        rows = []
        for label, items in (
            (_("shape-mismatched (not loaded): {n}", n=len(self.mismatched)),
             [_mismatch(k, c, m) for k, c, m in self.mismatched]),
            (_("unexpected (dropped): {n}", n=len(self.unexpected)), [f"{n} ({c})" for n, c in self._unexpected_groups]),
            (_("missing (left as initialised): {n}", n=len(self.missing)),
             [f"{n} ({c})" for n, c in self._missing_groups]),
        ):
            if items:
                body = "<br>".join(html.escape(i) for i in items)
                rows.append(f"<tr><th style='text-align:left;vertical-align:top'>{html.escape(label)}</th>"
                            f"<td style='text-align:left'><code>{body}</code></td></tr>")
        notes = "".join(f"<div>{html.escape(n)}</div>" for n in self.notes())
        table = f"<table>{''.join(rows)}</table>" if rows else ""
        hint = f"<div><b>{html.escape(self.hint())}</b></div>" if self.hint() else ""
        return (f"<div style='border-left:4px solid {colour};padding-left:8px'>"
                f"<b>{html.escape(self.title())}</b>{hint}{notes}{table}</div>")

    def __repr__(self) -> str:
        return (f"LoadReport(ok={self.ok}, loaded={self.loaded}/{self.total}, missing={len(self.missing)}, "
                f"unexpected={len(self.unexpected)}, mismatched={len(self.mismatched)})")


def _shape(shape) -> str:
    return str(tuple(shape))


# A Chinese template keeps a space around each value, as Chinese text does beside Latin words and numbers; where
# the value itself ends or starts in Chinese ("HRNetSegmentation（w18）", "一个自定义的 HRNet"), that space goes.
# The values are marked while the message is made, so that a space inside a value (a path) stays.
_START, _END = "\x01", "\x02"
_AFTER_VALUE = re.compile(r"(?<=[\u4e00-\u9fff）])\x02 (?=[\u4e00-\u9fff])")
_BEFORE_VALUE = re.compile(r"(?<=[\u4e00-\u9fff]) \x01(?=[\u4e00-\u9fff（])")


def _joined(message: str, **values: Any) -> str:
    """``_(message, **values)``, without the template's space where a value meets Chinese text in Chinese."""
    if get_language() != "zh":
        return _(message, **values)
    text = _(message, **{k: f"{_START}{v}{_END}" for k, v in values.items()})
    text = _BEFORE_VALUE.sub(_START, _AFTER_VALUE.sub(_END, text))
    return text.replace(_START, "").replace(_END, "")


def _mismatch(key: str, checkpoint: tuple[int, ...], model: tuple[int, ...]) -> str:
    return _("{key}: checkpoint {checkpoint}, model {model}", key=key, checkpoint=_shape(checkpoint),
             model=_shape(model))


def _tensors(name: str, n: int) -> str:
    """A group of keys and its size, ``"last_layer.* (9 tensors)"``."""
    return _("{name} ({n} tensor)", name=name, n=n) if n == 1 else _("{name} ({n} tensors)", name=name, n=n)


_BATCHNORM_ENTRIES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _only_biases(keys: list[str]) -> bool:
    return bool(keys) and all(key.endswith(".bias") for key in keys)


def _only_batchnorm(keys: list[str]) -> bool:
    """Every key is an entry of a BatchNorm (a module whose running_mean is among the keys)."""
    modules = {key[: -len(".running_mean")] for key in keys if key.endswith(".running_mean")}
    return bool(modules) and all(
        key.rsplit(".", 1)[0] in modules and key.rsplit(".", 1)[-1] in _BATCHNORM_ENTRIES for key in keys
    )


# ---------------------------------------------------------------- reading
def read_state_dict(source: Any) -> tuple[dict[str, torch.Tensor], str]:
    """A path, a state dict or a training checkpoint -> (flat state dict, description)."""
    if isinstance(source, (str, os.PathLike)):
        path = checkpoint_file(source)
        return _unwrap(_read_file(path), path), path.name
    if isinstance(source, Mapping):
        return _unwrap(source), "state dict"
    raise TypeError(
        f"source must be a file path or a state dict (a mapping of names to tensors), got {type(source).__name__}"
    )


RUN_CHECKPOINT = "checkpoint.pt"  # what hrnet_teach.train writes into its --out folder


def checkpoint_file(source: Any) -> Path:
    """``source`` as the Path of an existing file, or an error that says what it is instead
    (nothing, a folder, a URL) and what to pass."""
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"a checkpoint path must be a str or Path, got {type(source).__name__}")
    if not os.fspath(source).strip():  # Path("") is ".", the current folder: the learner never named it
        raise FileNotFoundError(f"the checkpoint path is empty ({os.fspath(source)!r}): give the file's path, e.g. "
                                f"'assets/{SHAPES_CHECKPOINT}'")
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        inside = path / RUN_CHECKPOINT
        hint = (f"did you mean {inside} (what hrnet_teach.train writes into its --out folder)?" if inside.is_file()
                else "pass the checkpoint file inside it (a .pth, .pt or .safetensors file).")
        raise IsADirectoryError(f"{path} is a folder, not a checkpoint file: {hint}")
    if str(source).startswith(("http://", "https://")):
        raise FileNotFoundError(f"No checkpoint file at {source}: this reads local files, not URLs. Download it "
                                "first (torch.hub.download_url_to_file(url, 'name.pth')) and pass the file's path.")
    raise FileNotFoundError(f"No checkpoint file at {path} (looked in {path.expanduser().resolve().parent}): "
                            "check the name and the folder")


def _read_file(path: Path) -> Mapping[str, Any]:
    # the content decides, not the name: a checkpoint saved under an .onnx name still loads, and an ONNX
    # file under a .pt name is called what it is instead of "corrupt"
    with open(path, "rb") as file:
        start = file.read(64)
    if (path.suffix == ".onnx" and start[:4] != _ZIP_MAGIC) or _looks_like_onnx(start):
        raise ValueError(f"{path} is an ONNX file, not a PyTorch checkpoint: run it with "
                         "hrnet_teach.deploy.run_onnx(path, x); load_weights wants the .pth/.pt/.safetensors it came from")
    if path.name.endswith(".safetensors"):
        return _read_safetensors(path)
    return read_torch_file(path)


_ZIP_MAGIC, _PICKLE_MAGIC = b"PK\x03\x04", b"\x80"


def _looks_like_onnx(start: bytes) -> bool:
    """An ONNX model is a protobuf that begins with its ir_version (field 1, the byte 0x08) and then
    names its producer (torch writes "pytorch")."""
    return start[:1] == b"\x08" and any(word in start.lower() for word in (b"pytorch", b"onnx"))


def read_torch_file(path: Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with a message that says what is wrong.

    A sound file with Python objects besides tensors gets the one safe way out
    (load it yourself, if you trust it). A file that is empty, cut short or not a
    checkpoint at all gets "corrupt or truncated: get it again", never advice to
    unpickle it with ``weights_only=False``.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise ValueError(_unreadable_message(path, "it is empty (0 bytes)"))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as error:
        if _sound_torch_file(path):
            raise  # the file system's own errors (permissions, ...) say what they are
        # a zip archive cut short within its first 64 KiB: torch's reader fails with "[Errno 22] Invalid argument"
        raise _unreadable(path, error) from None
    except Exception as error:  # a cut zip archive: RuntimeError; a cut pickle: RuntimeError "unexpected EOF",
        # or for a few bytes EOFError / IndexError / struct.error; random bytes: UnpicklingError "Unsupported
        # operand"; text: KeyError. Hence Exception: torch.load has no one error type for a bad file
        if isinstance(error, pickle.UnpicklingError) and "Unsupported global" in str(error) and _sound_torch_file(path):
            raise ValueError(
                f"{path} holds Python objects besides tensors, so it was not loaded "
                f"(torch.load(weights_only=True) refuses them: unpickling them can run code). If you trust the "
                f"file's source, load it yourself with torch.load(path, weights_only=False) and pass its state dict "
                f"to load_weights. Details: {_first_line(error, 'Unsupported global')}"
            ) from None
        raise _unreadable(path, error) from None


def _read_safetensors(path: Path) -> Mapping[str, Any]:
    from safetensors.torch import load_file

    if path.stat().st_size == 0:
        raise ValueError(_unreadable_message(path, "it is empty (0 bytes)"))
    try:
        return load_file(str(path), device="cpu")
    except Exception as error:  # safetensors' own SafetensorError (header too large/small, ...), or OSError
        if _is_torch_save(path):  # a whole file, only misnamed: "download it again" would not help
            raise ValueError(f"{path} is a torch.save file, not a safetensors file: rename it to "
                             f"{path.with_suffix('.pth').name} and load that") from None
        raise ValueError(_unreadable_message(path, "it is not a readable .safetensors file", error)) from None


def _sound_torch_file(path: Path) -> bool:
    """Whether ``path`` is structurally a whole torch.save file (a complete zip archive, or a pickle)."""
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    with open(path, "rb") as file:
        return file.read(1) == _PICKLE_MAGIC


_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"  # pickled MAGIC_NUMBER: legacy torch.save
_OTHER_MAGICS = {b"\x89HDF\r\n\x1a\n": "an HDF5 file (Keras, h5py)", b"\x93NUMPY": "a numpy array file (np.save)"}
_CHECKPOINT_ENDINGS = (".pth", ".pt", ".pth.tar", ".safetensors", ".bin", ".ckpt")


def _is_torch_save(path: Path) -> bool:
    """Whether ``path`` is a whole torch.save file: a zip archive with a data.pkl, or a legacy pickle."""
    with open(path, "rb") as file:
        if file.read(len(_LEGACY_TORCH_MAGIC)) == _LEGACY_TORCH_MAGIC:
            return True
    return any(name.endswith("data.pkl") for name in _zip_members(path))


def _zip_members(path: Path) -> list[str]:
    """The member names of a complete zip archive; [] for anything else."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _looks_like_safetensors(start: bytes) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then the JSON header ``{"...``."""
    return len(start) >= 10 and start[8:10] == b'{"'


def _unreadable(path: Path, error: BaseException) -> ValueError:
    """The error for a file torch.load cannot read: another format named as such, else "corrupt or truncated"."""
    other = _other_format(path) or _plain_pickle(path)
    return ValueError(other or _unreadable_message(path, _what_is_wrong(path), error))


def _plain_pickle(path: Path) -> Optional[str]:
    """What to say about a whole pickle written by pickle.dump (protocol 4 and 5 start with a FRAME, which
    torch.load(weights_only=True) calls "Unsupported operand 149"), or None. pickletools only reads the
    opcodes, running nothing: a pickle that reaches STOP at the file's end is complete, not truncated."""
    import pickletools

    with open(path, "rb") as file:
        if file.read(1) != _PICKLE_MAGIC or _is_torch_save(path):
            return None
        file.seek(0)
        try:
            for opcode, _, _ in pickletools.genops(file):
                last = opcode.name
        except Exception:  # any parse error (a bad opcode, an early end): not a whole pickle
            return None
        if last != "STOP" or file.read(1):
            return None
    # Its format is the reason, not its objects: torch.load reads only torch.save files, even with
    # weights_only=False ("Invalid magic number; corrupt file?"), so the way out is pickle itself.
    return (f"{path} is a complete Python pickle (written by pickle.dump), not a torch.save file, so torch.load "
            f"cannot read it. If you trust the file: state = pickle.load(open({str(path)!r}, 'rb')), then "
            "load_weights(model, state)")


def _other_format(path: Path) -> Optional[str]:
    """What to say about a whole file in another format (a misnamed safetensors file, a zip, HDF5), or None."""
    with open(path, "rb") as file:
        start = file.read(16)
    if _looks_like_safetensors(start) and 8 + int.from_bytes(start[:8], "little") <= path.stat().st_size:
        return (f"{path} is a safetensors file, not a torch.save file: rename it to "
                f"{path.with_suffix('.safetensors').name} and load that")
    for magic, what in _OTHER_MAGICS.items():
        if start.startswith(magic):
            return f"{path} is {what}, not a PyTorch checkpoint: load_weights reads torch.save and safetensors files"
    members = _zip_members(path)
    if not members or any(name.endswith("data.pkl") for name in members):
        return None  # not a complete zip archive, or a torch.save one: damaged, if torch cannot read it
    shown = ", ".join(members[:4]) + (f" ... ({len(members)} members)" if len(members) > 4 else "")
    inside = next((name for name in members if name.endswith(_CHECKPOINT_ENDINGS)), None)
    if inside:
        todo = f"unzip it and load the checkpoint inside ({inside})"
    elif all(name.endswith(".npy") for name in members):
        todo = "it is numpy's np.savez format, not a PyTorch checkpoint (numpy.load reads it)"
    else:
        todo = "unzip it if a checkpoint is inside; otherwise it is another format, not a PyTorch checkpoint"
    return f"{path} is a zip archive but not a torch.save file (it holds {shown}): {todo}"


def _what_is_wrong(path: Path) -> str:
    import zipfile

    with open(path, "rb") as file:
        start = file.read(10)
    if start[:4] == _ZIP_MAGIC:
        if zipfile.is_zipfile(path):
            return "its zip archive is damaged"
        return "it starts as a torch.save zip archive, but the archive's end is missing (truncated)"
    if start[:1] == _PICKLE_MAGIC:
        return "it starts as a torch.save pickle, but it breaks off or is damaged partway"
    if _looks_like_safetensors(start):
        return "it starts as a safetensors file (name it .safetensors), but is shorter than its header says (truncated)"
    return "it does not start like any torch.save file (neither a zip archive nor a pickle)"


def _unreadable_message(path: Path, what: str, error: Optional[BaseException] = None) -> str:
    details = ""
    if error is not None:
        # torch's own text for random bytes suggests weights_only=False: never pass that on for a broken file
        line = _first_line(error, "Unsupported operand" if isinstance(error, pickle.UnpicklingError) else "")
        line = line.split(". ")[0]
        if "weights_only" not in line:
            details = f" Details: {type(error).__name__}: {line}"
    return (
        f"{path} cannot be read as a checkpoint: {what}. The file is corrupt or truncated (an interrupted "
        f"download or copy), or not a checkpoint at all. Download or copy it again and compare its size with "
        f"the source's ({path.stat().st_size} bytes here).{details}"
    )


def _first_line(error: BaseException, containing: str = "") -> str:
    """The line of torch's long message that says what happened (the one with ``containing``)."""
    lines = [line.strip() for line in str(error).splitlines() if containing in line and line.strip()]
    return (lines[0] if lines else repr(error))[:200]


def _require_mapping(obj: Any, path: Optional[Path] = None) -> Mapping[str, Any]:
    """``obj`` if it is a mapping (a state dict or a checkpoint); else say what the file holds instead."""
    if isinstance(obj, Mapping):
        return obj
    what = f"a {type(obj).__name__}"
    if isinstance(obj, torch.Tensor):
        what += f" of shape {_shape(obj.shape)}"
    elif isinstance(obj, (list, tuple)):
        what += f" of {len(obj)} item{'s' * (len(obj) != 1)}"
        if any(isinstance(item, Mapping) for item in obj):
            what += " with a dict inside (pass that dict itself)"
    where = str(path) if path is not None else "The checkpoint"
    raise ValueError(f"{where} holds {what}, not a state dict (names -> tensors): save model.state_dict() "
                     "(or a dict with it under 'state_dict' or 'model') and load that")


def _unwrap(obj: Any, path: Optional[Path] = None) -> dict[str, torch.Tensor]:
    """Take the weights out of a training checkpoint ({"state_dict": ...} or {"model": ...})."""
    obj = _require_mapping(obj, path)
    for _level in range(3):  # e.g. {"model": {"state_dict": ...}} at worst
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in CHECKPOINT_ENTRIES if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            entries = ", ".join(repr(k) for k in list(obj)[:8])
            raise ValueError(
                f"Cannot find the weights in this checkpoint: its entries are {entries}. Expected a state dict "
                f"(names -> tensors) or a training checkpoint with a {' or '.join(map(repr, CHECKPOINT_ENTRIES))} entry."
            )
        obj = inner
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError("The checkpoint holds no tensors")
    return state


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, int], list[str]]:
    """Remove wrapper prefixes; set aside the trainer's loss entries.

    Returns (state, {prefix: count}, ignored keys).
    """
    if not isinstance(state, Mapping):  # a path, say: "'str' object has no attribute 'items'"
        raise TypeError(f"strip_prefixes takes a state dict (key -> tensor), got {type(state).__name__}; for a file, "
                        "use hrnet_teach.weights.load_weights(model, path) or read_state_dict(path)")
    out, stripped, ignored = {}, {}, []
    for key, value in state.items():
        name = key
        while True:
            prefix = next((p for p in WRAPPER_PREFIXES if name.startswith(p)), None)
            if prefix is None:
                break
            stripped[prefix] = stripped.get(prefix, 0) + 1
            name = name[len(prefix):]
        if name.startswith(LOSS_PREFIX):
            ignored.append(key)
            continue
        if name in out:
            raise ValueError(f"Two checkpoint entries become {name!r} once prefixes are removed; "
                             "pass the state dict you mean explicitly")
        out[name] = value
    return out, stripped, ignored


# --------------------------------------------------------------- guessing
def guess_variant(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """Which published variant (and head) a state dict was made for, from its widths: in English, whatever the
    lessons' language (it is data; LoadReport.hint shows it translated)."""
    if not isinstance(state, Mapping):
        raise TypeError(f"guess_variant takes a state dict (a mapping of names to tensors), got {type(state).__name__}"
                        + ("; for a model, pass model.state_dict()" if isinstance(state, nn.Module) else ""))
    guess = _variant_guess(state)
    return _guess_text(guess, _english) if guess else None


class _Guess(NamedTuple):
    """What :func:`guess_variant` found: a published variant's ``name`` (None for a custom HRNet, described
    by its ``width`` and stage-3 / stage-4 module counts) and the ``head`` (an English name, _GUESS_MESSAGES' key)."""

    name: Optional[str]
    width: int
    stage3: int
    stage4: int
    head: str


def _variant_guess(state: Mapping[str, torch.Tensor]) -> Optional[_Guess]:
    try:
        width = state["transition1.0.0.weight"].shape[0]  # C: the first branch of stage 2
    except KeyError:
        return None
    layer1_blocks = _count(state, "layer1.")
    stage3_modules = _count(state, "stage3.")
    stage4_modules = _count(state, "stage4.")
    name = None
    for variant in VARIANTS:
        cfg = get_config(variant)
        if (cfg.width, cfg.stage1.num_blocks[0], cfg.stage3.num_modules, cfg.stage4.num_modules) == (
            width, layer1_blocks, stage3_modules, stage4_modules
        ):
            name = variant
            break
    return _Guess(name, width, stage3_modules, stage4_modules, _guess_head(state))


def _english(message: str, **values: Any) -> str:
    """A message's English text whatever the lessons' language: for data (guess_variant's answer)."""
    return message.format(**values) if values else message


def _guess_text(guess: _Guess, say) -> str:
    """The guess in words, ``say`` being ``_`` (the lessons' language) or ``_english``."""
    what = guess.name or say(_CUSTOM_HRNET.message, width=guess.width, stage3=guess.stage3, stage4=guess.stage4)
    return say(_GUESS_MESSAGES[guess.head].message, what=what)


def _count(state: Mapping[str, Any], prefix: str) -> int:
    return len({k[len(prefix):].split(".", 1)[0] for k in state if k.startswith(prefix)})


def _guess_head(state: Mapping[str, torch.Tensor]) -> str:
    for part, head in _HEAD_PARTS.items():
        if any(k.startswith(part + ".") for k in state):
            return head
    weight = state.get("final_layer.weight")
    if weight is not None and weight.dim() == 4:
        return "pose"
    return "backbone only"


def _group(keys: list[str], universe: list[str]) -> list[tuple[str, int]]:
    """Compress keys into whole modules: 'incre_modules.*' when every key under it is listed."""
    listed = set(keys)
    total: dict[str, int] = {}  # prefix -> keys of the universe under it
    hits: dict[str, int] = {}  # prefix -> listed keys under it
    for key in universe:
        parts = key.split(".")
        for depth in range(1, len(parts)):
            prefix = ".".join(parts[:depth])
            total[prefix] = total.get(prefix, 0) + 1
            hits[prefix] = hits.get(prefix, 0) + (key in listed)
    groups: dict[str, int] = {}
    for key in keys:
        parts = key.split(".")
        name = key
        for depth in range(1, len(parts)):  # the shortest prefix that is entirely listed
            prefix = ".".join(parts[:depth])
            if total.get(prefix) and hits[prefix] == total[prefix]:
                name = prefix + ".*"
                break
        groups[name] = groups.get(name, 0) + 1
    return list(groups.items())


# ---------------------------------------------------------------- loading
def compare(model: nn.Module, state: Mapping[str, torch.Tensor]) -> LoadReport:
    """The report of loading ``state`` into ``model``, without changing the model."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"compare(model, state): model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(state, Mapping):
        raise TypeError(f"compare(model, state): state must be a state dict (a mapping of names to tensors), got "
                        f"{type(state).__name__}; for a file, read it first with weights.read_state_dict(path)[0]")
    model = _inner_model(model)
    own = model.state_dict()
    report = LoadReport(total=len(own), model_name=type(model).__name__)
    config = getattr(model, "config", None)
    if isinstance(config, HRNetConfig):
        report.model_variant = config.name
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(own[key].shape)))
    for key in own:
        if key in state:
            continue
        if key.endswith("num_batches_tracked") and key.rsplit(".", 1)[0] + ".running_mean" in state:
            report.filled += 1  # BatchNorm's own loader sets it when a checkpoint lacks it
        else:
            report.missing.append(key)
    report.loaded = sum(1 for k in state if k in own) - len(report.mismatched)
    report._missing_groups = _group(report.missing, list(own))
    report._unexpected_groups = _group(report.unexpected, list(state))
    if not report.ok:
        report._guess = _variant_guess(state)
        report.checkpoint_guess = _guess_text(report._guess, _english) if report._guess else None
    return report


def _inner_model(model: nn.Module) -> nn.Module:
    """The network inside (Distributed)DataParallel wrappers, whose keys carry no 'module.' prefix."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model


def load_weights(model: nn.Module, source: Any, strict: bool = True, verbose: bool = True) -> LoadReport:
    """Load a checkpoint into ``model`` and report what happened.

    ``source``: a ``.pth`` / ``.pt`` / ``.pth.tar`` file (read with
    ``torch.load(weights_only=True)``), a ``.safetensors`` file, a state dict, or a
    training checkpoint with a ``"state_dict"`` or ``"model"`` entry.
    ``strict=True``: anything missing, unexpected or of another shape raises
    :class:`WeightsMismatchError` (whose message is the report) and the model is
    left untouched. ``strict=False``: loads every tensor that fits, prints the
    report (``verbose``) and returns it. A model wrapped in (Distributed)DataParallel
    takes the weights into the network inside (its keys have no ``module.`` prefix).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    strict, verbose = flag("strict", strict, TypeError), flag("verbose", verbose, TypeError)
    model = _inner_model(model)  # DataParallel's parameters are its module's: load there, without 'module.'
    raw, description = read_state_dict(source)
    state, stripped, ignored = strip_prefixes(raw)
    report = compare(model, state)
    report.source, report.stripped, report.ignored = description, stripped, ignored
    if strict and not report.ok:
        raise WeightsMismatchError(report)
    # After the source's own problems and the key report, which hold on meta too. load_state_dict copies into a
    # meta model without error and without effect: the report would say every tensor loaded while none was.
    refuse_meta(model, "nothing can be loaded into it")
    bad = {k for k, _, _ in report.mismatched}
    fitting = {k: v for k, v in state.items() if k not in bad and k not in report.unexpected}
    model.load_state_dict(fitting, strict=False)
    report.applied = True
    if verbose:
        print(report)
    return report


# ------------------------------------------- the trainer's checkpoints, the lessons' weights
# hrnet_teach.train writes {"model", "optimizer", "scaler", "epoch", "config" (a dict),
# "num_classes", "align_corners", "head", "metrics", "args", "command"}; its --export
# copy drops the optimizer and scaler and stores the weights as float16.
SHAPES_CHECKPOINT = "checkpoints/shapes_w18_small_v1.pt"  # under assets/: W18-small-v1 trained on shapes


def config_to_dict(config: HRNetConfig) -> dict[str, Any]:
    """An HRNetConfig as plain data (what a checkpoint stores)."""
    return dataclasses.asdict(config)


def config_from_dict(data: Any) -> HRNetConfig:
    """The inverse of :func:`config_to_dict`. An HRNetConfig is returned as it is, and a variant
    name (``"w18_small_v1"``) gives :func:`get_config`'s config."""
    if isinstance(data, HRNetConfig):
        return data
    if isinstance(data, str):
        return get_config(data)
    if not isinstance(data, Mapping):
        raise ValueError(f"config must be a dict (from config_to_dict), an HRNetConfig or a variant name such as "
                         f"'w18_small_v1'; got {type(data).__name__}")
    _check_fields(HRNetConfig, data, "config")
    stages = {}
    for i in (1, 2, 3, 4):
        stage = data[f"stage{i}"]
        if not isinstance(stage, StageConfig):
            if not isinstance(stage, Mapping):
                raise ValueError(f"config's stage{i} must be a dict of StageConfig's fields, got {type(stage).__name__}")
            _check_fields(StageConfig, stage, f"config's stage{i}")
            stage = StageConfig(**stage)
        stages[f"stage{i}"] = stage
    rest = {k: v for k, v in data.items() if not k.startswith("stage")}
    return HRNetConfig(**stages, **rest)


def _check_fields(kind: type, data: Mapping[str, Any], what: str) -> None:
    """A ValueError naming the fields of the dataclass ``kind`` that ``data`` lacks, or has that ``kind`` does not."""
    fields = dataclasses.fields(kind)
    required = [f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in data]
    unknown = [repr(key) for key in data if key not in {f.name for f in fields}]
    if missing or unknown:
        problems = ([f"lacks {', '.join(missing)}"] if missing else []) + (
            [f"has fields {kind.__name__} does not know: {', '.join(unknown)}"] if unknown else [])
        raise ValueError(f"{what} is not a saved {kind.__name__}: it {' and '.join(problems)}. A checkpoint "
                         "stores config_to_dict(model.config)")


def read_checkpoint(path: Any) -> dict[str, Any]:
    """A checkpoint written by ``hrnet_teach.train`` (plain tensors and data: ``weights_only=True``)."""
    path = checkpoint_file(path)
    return dict(_require_mapping(_read_file(path), path))


def model_from_checkpoint(checkpoint: Any) -> nn.Module:
    """Rebuild the model a checkpoint was trained as (its config and classes) and load it strictly; eval mode, CPU."""
    from .train_config import build_model

    if not isinstance(checkpoint, Mapping):
        checkpoint = read_checkpoint(checkpoint)
    if "config" not in checkpoint or "num_classes" not in checkpoint:
        raise ValueError("not a checkpoint of hrnet_teach.train: it has no 'config' / 'num_classes' entries. For "
                         "other checkpoints use model = create_model(variant, num_classes=...), then "
                         "load_weights(model, path)")
    model = build_model(
        config_from_dict(checkpoint["config"]), checkpoint["num_classes"],
        align_corners=checkpoint.get("align_corners", True), head=checkpoint.get("head", "segmentation"),
    )
    load_weights(model, checkpoint, strict=True, verbose=False)
    return model.eval()


def load_shapes_model() -> nn.Module:
    """The shipped W18-small-v1 trained on the shapes dataset (``assets/checkpoints``), eval mode, on the CPU."""
    from .assets import asset_path

    return model_from_checkpoint(asset_path(SHAPES_CHECKPOINT))


def shapes_checkpoint_info() -> dict[str, Any]:
    """What the shipped checkpoint claims: its held-out scores, data, and the command that made it."""
    from .assets import asset_path

    checkpoint = read_checkpoint(asset_path(SHAPES_CHECKPOINT))
    return {k: checkpoint[k] for k in ("metrics", "args", "command") if k in checkpoint}


_SHIPPED = N_("the shipped W18-small-v1 trained on shapes")


def pretrained_or_shipped(variant: str = "w18_small_v1", download: bool = False, verbose: bool = True) -> tuple[nn.Module, str]:
    """A trained network for the lessons: ``(model, source)``.

    ``download=False`` (the default) never touches the network: ``source`` is
    ``"shapes"``, the shipped W18-small-v1 segmentation model. ``download=True``
    tries timm's ImageNet weights of ``variant`` (``source == "imagenet"``, a
    classification model) and falls back to the shipped model when they cannot
    be had. Both have the same backbone attributes, so feature maps work alike.
    ``verbose``: one line saying which weights are used (and, offline, how to get
    ImageNet's: ``download=True`` on a machine with internet access).
    """
    get_config(variant)  # a misspelt variant is named now, not only once download=True is set
    # download="no" is a non-empty string, so truthy: it would reach the network against the learner's wish
    download, verbose = flag("download", download, TypeError), flag("verbose", verbose, TypeError)
    if download:
        try:
            return load_timm_imagenet(variant).eval(), "imagenet"
        except WeightsUnavailableError as error:
            note = _("No ImageNet weights for {variant} ({reason}): using {shipped}.", variant=variant,
                     reason=error.reason or _("no network"), shipped=_SHIPPED)
    else:  # one line that fits a 1000 px notebook pane
        note = _("Using {shipped}; download=True gets ImageNet weights (needs the network).", shipped=_SHIPPED)
    if verbose:
        print(note)
    return load_shapes_model(), "shapes"


# ------------------------------------------------------------------- timm
def timm_hub_id(variant: str) -> str:
    """The Hugging Face hub id of timm's ImageNet weights, e.g. ``timm/hrnet_w18_small.ms_in1k``."""
    name = get_config(variant).name
    if name not in VARIANTS:
        given = repr(variant) if isinstance(variant, str) else f"a config named {name!r}"  # a config's repr is a page
        raise ValueError(f"timm has weights for the published variants only ({', '.join(VARIANTS)}), got {given}")
    return f"timm/{_TIMM_NAMES.get(name, 'hrnet_' + name)}.ms_in1k"


def load_timm_imagenet(variant: str, model: Optional[nn.Module] = None, cache_dir: Optional[str] = None,
                       strict: Optional[bool] = None) -> nn.Module:
    """timm's ImageNet-1k weights for ``variant``, loaded into ``model`` (default: a new
    1000-class classification model).

    ``strict=None`` (the default): a classification model is loaded strictly. Any other head
    (segmentation, pose, pyramid, backbone) takes the backbone part: the load is non-strict and its
    report, listing every dropped and missing key, is printed. ``strict=False`` also fine-tunes a
    classifier with another ``num_classes``: every tensor but the 1000-class ``classifier`` loads.
    ``strict=True`` refuses any mismatch, whatever the head. Downloads
    ``model.safetensors`` with ``huggingface_hub``; offline, uses the local cache or
    raises :class:`WeightsUnavailableError` at once, saying what to do.
    """
    from .heads import HRNetClassification
    from .models import create_model

    # None means "decide by the head"; the load report's advice "load with strict=False" must work here too
    strict = flag("strict", strict, TypeError, none_means="strict for a classification model only")
    timm_hub_id(variant)  # an unpublished variant is named before a 1000-class model is built
    if model is None:
        model = create_model(variant, head="classification", num_classes=1000)
    _check_same_variant(model, variant)
    path = imagenet_weights_file(variant, cache_dir)
    if strict is None:
        strict = isinstance(model, HRNetClassification)
    load_weights(model, path, strict=strict, verbose=True)
    return model


def _check_same_variant(model: nn.Module, variant: str) -> None:
    config = getattr(model, "config", None)
    if not isinstance(config, HRNetConfig):
        raise TypeError(f"model must be an hrnet_teach model (from create_model), got {type(model).__name__}")
    wanted = get_config(variant)
    if config.stages != wanted.stages:
        raise ValueError(f"The model is {config.name} but variant={variant!r}; build the model with "
                         f"create_model({wanted.name!r}, ...) or ask for its own variant's weights")


LOAD_IT = "load it with hrnet_teach.weights.load_weights(model, 'path/to/model.safetensors')"


def imagenet_weights_file(variant: str, cache_dir: Optional[str] = None, then: str = LOAD_IT) -> str:
    """The local path of timm's ImageNet weights for ``variant`` (``model.safetensors``), downloaded into the
    Hugging Face cache if need be. Offline without a cached copy: :class:`WeightsUnavailableError` at once,
    whose advice ends with ``then`` (what to do with a copy fetched by hand; the trainer names its flag)."""
    return _download(timm_hub_id(variant), cache_dir, then)


def _download(hub_id: str, cache_dir: Optional[str], then: str = LOAD_IT) -> str:
    from huggingface_hub import hf_hub_download

    endpoint = _hub_endpoint()
    why = None  # a Text: English in the error's message, the lessons' language in pretrained_or_shipped's note
    if _offline_flag():
        why = N_("HF_HUB_OFFLINE is set")
    elif not urlparse(endpoint).hostname:  # "not a url": urlparse finds no host, and the message said "None"
        why = (N_("HF_ENDPOINT is {endpoint}, which is not a URL (e.g. https://huggingface.co): fix or unset it",
                  endpoint=repr(endpoint)) if os.environ.get("HF_ENDPOINT")
               else N_("the hub address {endpoint} is not a URL", endpoint=repr(endpoint)))
    elif not _reachable(endpoint):
        why = N_("{host} cannot be reached from this machine", host=urlparse(endpoint).hostname)
    if why is None:
        try:
            return hf_hub_download(hub_id, "model.safetensors", cache_dir=cache_dir, endpoint=endpoint)
        except Exception as error:  # network errors, missing repo, ...: say what to do
            why = N_("the download failed ({error})", error=f"{type(error).__name__}: {error}")
    try:  # offline: a copy downloaded earlier is fine
        return hf_hub_download(hub_id, "model.safetensors", cache_dir=cache_dir, local_files_only=True)
    except Exception:
        pass
    raise WeightsUnavailableError(
        f"Cannot get timm's ImageNet weights {hub_id}: {_english(why.message, **why.values)}, and there is no "
        f"copy in the local "
        f"Hugging Face cache. Either run this on a machine with internet access (e.g. Google Colab), "
        f"or download model.safetensors from https://huggingface.co/{hub_id}/tree/main, copy it here "
        f"and {then}.",
        reason=why,
    )


def _hub_endpoint() -> str:
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT") or constants.ENDPOINT


def _offline_flag() -> bool:
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(constants.HF_HUB_OFFLINE)


def _reachable(endpoint: str, timeout: float = HUB_TIMEOUT_S) -> bool:
    """Does the hub answer an HTTP request within ``timeout`` seconds (DNS included)?

    huggingface_hub itself retries for most of a minute before giving up when
    offline; this answers in ``timeout`` seconds at most. Any HTTP answer counts
    (even an error status): only "no answer" means unreachable. A bare TCP connect
    is not enough, since some networks accept every connection and then drop it.
    """
    import urllib.error
    import urllib.request

    if not urlparse(endpoint).hostname:
        return False
    result: list[bool] = []

    def probe() -> None:
        request = urllib.request.Request(endpoint.rstrip("/") + "/api/models", method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                result.append(True)
        except urllib.error.HTTPError:
            result.append(True)  # the hub answered
        except (OSError, ValueError):
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)  # name resolution has no timeout of its own
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
