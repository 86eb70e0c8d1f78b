"""Reading a learner's answer, and running a function answer: the helpers every lesson shares.

Each reader turns an answer into the value a checker compares (an int, a tuple, a
letter, a set of names) or raises :class:`Wrong` saying what was given and what is
expected, so a checker's own code deals only with the lesson's mistakes.
"""
from __future__ import annotations

import contextlib
import re
import reprlib
import unicodedata
from collections.abc import Iterator, KeysView, Mapping, Sequence, ValuesView

import numpy as np
import torch
from torch import nn

from ..i18n import N_, _, text
from ._base import Wrong

_COUNTS = {2: N_("two"), 3: N_("three"), 4: N_("four")}


def _count(n: int) -> str:
    """How many, in words for the small counts ("two"), as a number otherwise."""
    return text(_COUNTS.get(n, str(n)))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int to Python, not to a learner


_REPR = reprlib.Repr()
_REPR.maxlong, _REPR.maxstring, _REPR.maxother = 40, 80, 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 12
_REPR.maxlevel = 2  # a list of pairs shows whole; a tensor's nested values (a 4-D .tolist()) do not
_REPR_CHARACTERS = 200


def short_repr(value) -> str:
    """``repr(value)`` cut to a readable length (a 400-digit number, a list of 1000 keys or a tensor's
    values in a message would hide the rest of it)."""
    shown = _REPR.repr(value)
    return shown if len(shown) <= _REPR_CHARACTERS else shown[:_REPR_CHARACTERS].rstrip() + " ..."


def a_type(value) -> str:
    """What ``value`` is, for a message: "None" for None (a function that ends without return), else its type's
    name with its English article ("an int", "a list"); in Chinese the name alone."""
    if value is None:
        return "None"
    name = type(value).__name__
    # by sound, not spelling: "an ndarray" (en-dee-array), as numpy's own docs write it
    vowel_sound = name[:1].lower() in "aeiou" or name.startswith("nd")
    return _("an {type}", type=name) if vowel_sound else _("a {type}", type=name)


def dtype_name(dtype) -> str:
    """A torch or numpy dtype as a learner writes it: "float16", not "torch.float16"."""
    return str(dtype).replace("torch.", "")


def _not_a_tensor(answer, what: str, example: str, dims: int = 1) -> None:
    """Refuse a tensor or array of more than ``dims`` dimensions where numbers are asked (the feature map itself,
    not its shape): its values would be read, thousands of them."""
    if isinstance(answer, (torch.Tensor, np.ndarray)) and answer.ndim > dims:
        raise Wrong(_("You gave a tensor of shape {shape}, not {what}: give the numbers, e.g. {example} "
                      "(`tuple(t.shape)` reads a tensor's shape; better, work them out first).",
                      shape=tuple(answer.shape), what=what, example=example))


def plain(value):
    """A numpy scalar or a 0-d tensor as the Python number it holds (np.int64(480), torch.tensor(480)
    answer as 480 does); anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.dim() == 0 and value.device.type != "meta" else value
    if hasattr(value, "dtype") and getattr(value, "shape", None) == () and hasattr(value, "item"):  # numpy
        return value.item()
    return value


def _listed(answer):
    """A numpy array or a tensor of one dimension or more as the nested list it holds
    (np.array([64, 96]) answers as [64, 96] does); anything else (a meta tensor: no values) as it is."""
    if isinstance(answer, np.ndarray) and answer.ndim >= 1:
        return answer.tolist()
    if isinstance(answer, torch.Tensor) and answer.dim() >= 1 and answer.device.type != "meta":
        return answer.tolist()
    return answer


def _plain_items(answer):
    """``answer``'s items made :func:`plain` (a list stays a list, a tuple a tuple, a set becomes a list;
    an array or a tensor becomes a list)."""
    answer = _listed(answer)
    if isinstance(answer, (list, tuple)) and not isinstance(answer, torch.Size):
        return type(answer)(plain(v) for v in answer) if type(answer) in (list, tuple) else [plain(v) for v in answer]
    if isinstance(answer, (set, frozenset)):
        return [plain(v) for v in answer]
    return answer


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _whole(value):
    """A whole float (64.0, computed with ``/``) as the int it is; anything else as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _quoted_numbers(answer) -> bool:
    """Whether ``answer`` is numbers typed inside quotes: '480', '(64, 96)', or a tuple of them, ('720', '784')."""
    if isinstance(answer, (tuple, list)) and answer and all(isinstance(v, str) for v in answer):
        return all(_quoted_numbers(v) for v in answer)
    return isinstance(answer, str) and bool(re.fullmatch(r"[\s\d.,()\[\]+-]*\d[\s\d.,()\[\]+-]*", answer))


def as_int(answer, what: str) -> int:
    """``answer`` as one whole number. A whole float such as 128.0 counts too (a number computed with
    ``/`` is still the right number); 128.5 does not."""
    answer = _whole(plain(answer))
    if _quoted_numbers(answer):
        raise Wrong(_("Give {what} as one whole number, without quotes; you gave the text {answer}.",
                      what=what, answer=short_repr(answer)))
    if not _is_int(answer):
        raise Wrong(_("Give {what} as one whole number; you gave {type} {answer}.",
                      what=what, type=type(answer).__name__, answer=short_repr(answer)))
    return answer


def as_ints(answer, length: int, what: str, example: str) -> tuple[int, ...]:
    """A tuple of ``length`` whole numbers from a tuple, list or torch.Size (a shape, a size, a pair);
    a whole float such as 720.0 counts too (computed with ``/``). A set is refused: it has no order (and a set
    of small ints iterates sorted, so {4, 1} would read as (1, 4))."""
    _not_a_tensor(answer, what, example)
    if isinstance(answer, (set, frozenset)):
        raise Wrong(_("A set has no order; give a tuple, e.g. {example}.", example=example))
    answer = _plain_items(plain(answer))
    if isinstance(answer, torch.Size):
        answer = tuple(answer)
    count = _count(length)
    values = dict(count=count, what=what, example=example, answer=short_repr(answer))
    if _is_number(answer):
        raise Wrong(_("Give {count} whole numbers, {what}, e.g. {example}; you gave one number ({answer}), so give {count}.",
                      **values))
    if _quoted_numbers(answer):
        raise Wrong(_("Give {count} whole numbers, {what}, e.g. {example}, without quotes; you gave the text {answer}.",
                      **values))
    if isinstance(answer, (tuple, list)):
        answer = [_whole(v) for v in answer]
    if not isinstance(answer, (tuple, list)):
        raise Wrong(_("Give {count} whole numbers, {what}, e.g. {example}; you gave {type} {answer}.",
                      type=type(answer).__name__, **values))
    if any(isinstance(v, (tuple, list, torch.Size)) for v in answer):
        raise Wrong(_("Give {count} whole numbers in one flat tuple, {what}, e.g. {example}; you gave {answer}, "
                      "which has a list or tuple inside.", **values))
    if not all(_is_number(v) for v in answer):
        raise Wrong(_("Give {count} whole numbers, {what}; you gave {answer}.", **values))
    if len(answer) != length:
        values = dict(n=len(answer), count=count, what=what, example=example)
        raise Wrong(_("Your answer has {n} number; give {count} whole numbers, {what}, e.g. {example}.", **values)
                    if len(answer) == 1 else
                    _("Your answer has {n} numbers; give {count} whole numbers, {what}, e.g. {example}.", **values))
    if not all(_is_int(v) for v in answer):
        raise Wrong(_("Give {count} whole numbers, {what}; you gave {answer}.", **values))
    return tuple(answer)


def as_indices(answer, what: str) -> list[int]:
    """A sorted list of distinct indices from a list, tuple or set of ints (one int counts as a list of one;
    range(2), a generator and whole floats such as 0.0 count too)."""
    if isinstance(answer, (Iterator, range)):
        answer = list(answer)  # read once: a generator gives its items only the first time
    answer = _plain_items(plain(answer))
    if _is_int(answer):
        answer = [answer]
    if isinstance(answer, (list, tuple)) and answer and all(isinstance(v, bool) for v in answer):
        raise Wrong(_("Those are True/False flags, one per item; give the indices of the True ones, e.g. [1, 2]."))
    if isinstance(answer, (list, tuple, set)):
        answer = [_whole(v) for v in answer]
    if not isinstance(answer, (list, tuple, set)) or not all(_is_int(v) for v in answer):
        raise Wrong(_("Give a list of {what}, whole numbers, e.g. [1, 2] (or [] for none); you gave {type} {answer}.",
                      what=what, type=type(answer).__name__, answer=short_repr(answer)))
    return sorted(set(answer))


def as_tuples(answer, size: int, what: str, one: str, example: str) -> list[tuple[int, ...]]:
    """A list of tuples of ``size`` whole numbers (``what``, each ``one``): branch pairs, shapes ...;
    whole floats such as 63.0 count too, as in :func:`as_ints`; so do a generator, zip or range of them."""
    if isinstance(answer, (Iterator, range)):
        answer = list(answer)  # read once
    _not_a_tensor(answer, what, example, dims=2)  # a 4x3 array of shapes is fine; a feature map is not
    if isinstance(answer, (list, tuple)):
        for item in answer:
            _not_a_tensor(item, what, example)
    answer = _listed(answer)
    if not isinstance(answer, (list, tuple, set)):
        raise Wrong(_("Give a list of {what}, e.g. {example}; you gave {type} {answer}.",
                      what=what, example=example, type=type(answer).__name__, answer=short_repr(answer)))
    items = []
    for item in answer:
        item = tuple(item) if isinstance(item, torch.Size) else _plain_items(item)
        if not isinstance(item, (list, tuple)) or len(item) != size:
            raise Wrong(_("{item} is not {one} ({count} numbers); give a list of {what}, e.g. {example}.",
                          item=short_repr(item), one=one, count=_count(size), what=what, example=example))
        item = tuple(_whole(v) for v in item)
        if not all(_is_int(v) for v in item):
            raise Wrong(_("{item}: give whole numbers (there is no half a pixel, half a channel or half a branch).",
                          item=short_repr(item)))
        items.append(item)
    return items


def as_numbers(answer, names: tuple[str, ...], example: str) -> tuple[float, ...]:
    """One real number per name in ``names``, from a tuple or list."""
    answer = _plain_items(plain(answer))
    values = dict(count=_count(len(names)), names=", ".join(map(str, names)), example=example,
                  type=type(answer).__name__, answer=short_repr(answer))
    if _quoted_numbers(answer):
        raise Wrong(_("Give {count} numbers, ({names}), e.g. {example}, without quotes; you gave the text {answer}.",
                      **values))
    if not isinstance(answer, (tuple, list)) or len(answer) != len(names):
        raise Wrong(_("Give {count} numbers, ({names}), e.g. {example}; you gave {type} {answer}.", **values))
    for value, name in zip(answer, names):
        if not _is_number(value):
            raise Wrong(_("Give {name} as a number; you gave {type} {value}.",
                          name=name, type=type(value).__name__, value=short_repr(value)))
    return tuple(float(v) for v in answer)


def as_word(answer, words: Sequence[str], what: str, aliases: Mapping[str, str] | None = None) -> str:
    """One of ``words`` (case, spaces and underscores ignored; ``aliases`` map other spellings)."""
    listed = _(", ").join(repr(w) for w in words)
    if not isinstance(answer, str):
        raise Wrong(_("Answer with {what}: one of {listed}; you gave {type} {answer}.",
                      what=what, listed=listed, type=type(answer).__name__, answer=short_repr(answer)))
    key = answer.strip().lower().replace(" ", "").replace("_", "")
    key = (aliases or {}).get(key, key)
    if key not in words and re.search(r"[\u4e00-\u9fff]", answer):  # the lesson's Chinese word for a code name
        raise Wrong(_("{answer} is the lesson's word for it; the check reads the names the code uses: one of {listed}.",
                      answer=short_repr(answer), listed=listed))
    if key not in words:
        raise Wrong(_("{answer} is not one of {listed}.", answer=short_repr(answer), listed=listed))
    return key


def _string_items(answer):
    """The strings a collection of names holds, in a list: what set/numpy code gives as well as a list (an array
    of strings, ``d.keys()``, a generator, a dict of name -> value by its names). One string is a list of its
    comma-separated parts ('a, b' as ['a', 'b']); anything else comes back as it is, to be refused."""
    if isinstance(answer, str):
        return [part for part in answer.split(",") if part.strip()] if "," in answer else [answer]
    if isinstance(answer, np.ndarray) and answer.dtype.kind == "U":  # np.setdiff1d(names, other_names)
        answer = answer.ravel().tolist()
    if isinstance(answer, Mapping):  # the notebook's filter is a dict comprehension: its keys are the names
        answer = list(answer)
    if isinstance(answer, Iterator) or isinstance(answer, (KeysView, ValuesView)):
        answer = list(answer)  # read once: a generator gives its items only the first time
    return answer


def as_strings(answer, what: str, example: str) -> list[str]:
    """Stripped strings from a list, tuple or set of strings (one string counts as a list of one, or of its
    comma-separated parts; an array of strings, a dict's keys or a generator of strings count too)."""
    answer = _string_items(answer)
    if not isinstance(answer, (list, tuple, set, frozenset)) or not all(isinstance(a, str) for a in answer):
        raise Wrong(_("Give {what} as a list of strings, e.g. {example}; you gave {type} {answer}.",
                      what=what, example=example, type=type(answer).__name__, answer=short_repr(answer)))
    return [a.strip() for a in answer]


def as_top_level_names(answer, example: str) -> frozenset[str]:
    """The top-level part names of a state dict from a list of strings ('last_layer', also 'last_layer.*' and
    'last_layer.'). A dotted path ('aux_head.0.weight', 'ocr_distri_head.object_context_block') is refused with
    the part it lies in: reading it as its first name would pass an answer the learner did not mean."""
    names = {a.removesuffix(".*").removesuffix(".") for a in as_strings(answer, N_("the names"), example)} - {""}
    dotted = sorted(a for a in names if "." in a)
    if dotted:
        raise Wrong(_("{name} is a path inside {top}: the question asks for top-level parts, the first name of each "
                      "key ({top}), as a list such as {example}.", name=dotted[0], top=dotted[0].split(".")[0],
                      example=example))
    return frozenset(names)


def too_deep(names, keys) -> str | None:
    """For the first of ``names`` that is an inner part of the state-dict ``keys`` (f_pixel, in
    ocr_distri_head.object_context_block.f_pixel.0.weight), not a top-level one: where it is. None if none is."""
    for name in sorted(names):
        key = next((k for k in keys if name in k.split(".")[1:-1]), None)
        if key is not None:
            return _("{name} is inside {top} ({key}); the question asks for top-level parts, the first name of "
                     "each key.", name=name, top=key.split(".")[0], key=key)
    return None


def as_choice(answer, choices: Mapping[str, str]) -> str:
    """The letter of a multiple-choice answer: 'b', 'B', ' b ', '(b)', 'b.' and "'b'" all give 'b'."""
    letters = _(", ").join(choices)
    if not isinstance(answer, str):
        raise Wrong(_("Answer with one letter as a string, one of {letters}; you gave {type} {answer}.",
                      letters=letters, type=type(answer).__name__, answer=short_repr(answer)))
    # a Chinese keyboard's full-width 'ｂ' and '（ｂ）' are the same letter once NFKC-normalised
    letter = unicodedata.normalize("NFKC", answer).strip().strip("()[].,:;'\" ").lower()  # '(b)', 'b.', "'b'" say b
    if letter not in choices:
        raise Wrong(_("Answer with one letter, one of {letters}; you gave {answer}.", letters=letters,
                      answer=short_repr(answer)))
    return letter


def choices_text(choices: Mapping[str, str]) -> str:
    """The options of a multiple-choice question, one ``(letter) text`` per line."""
    return "\n".join(f"({k}) {text(v)}" for k, v in choices.items())


def as_function(fn, name: str) -> None:
    """Fail unless ``fn`` is a function to call: not a layer, a class, or a value it might return."""
    if isinstance(fn, type):
        raise Wrong(_("Pass your function itself (its name, no brackets), e.g. `check({name})`; you gave the class "
                      "{type}. Write a function with `def {name}(...)` and pass that.", name=name, type=fn.__name__))
    if not callable(fn) or isinstance(fn, nn.Module):
        raise Wrong(_("Pass your function itself (its name, no brackets), e.g. `check({name})`; "
                      "you gave a value of type {type}.", name=name, type=type(fn).__name__))


def conv_padding(conv: nn.Conv2d) -> tuple[int, ...]:
    """A conv's padding in numbers: padding="valid" is none, "same" keeps the size (k // 2 for an odd kernel)."""
    if conv.padding == "valid":
        return (0,) * len(conv.kernel_size)
    if conv.padding == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation))
    return tuple(conv.padding)


def layer_summary(module: nn.Module) -> list[str]:
    """The leaf layers of ``module`` in order, one short line each (to compare a built module with the official one)."""
    lines = []
    for m in module.modules():
        if list(m.children()):
            continue
        if isinstance(m, nn.Conv2d):
            k, s = m.kernel_size[0], m.stride[0]
            bias = _(", bias") if m.bias is not None else ""
            # HRNet pads every conv by k // 2; another padding is named, or two summaries could read alike
            pad = "" if conv_padding(m) == (k // 2, k // 2) else _(" padding {padding}", padding=m.padding)
            lines.append(_("Conv2d {cin}->{cout} {k}x{k} stride {s}{pad}{bias}", cin=m.in_channels,
                           cout=m.out_channels, k=k, s=s, pad=pad, bias=bias))
        elif isinstance(m, nn.BatchNorm2d):
            lines.append(f"BatchNorm2d {m.num_features}")
        else:
            lines.append(type(m).__name__)
    return lines


@contextlib.contextmanager
def one_thread():
    """Run a check's tiny tensors on one thread: on a busy CPU, two threads that wait for
    each other make each small op a hundred times slower. Restores the setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def random_weights(module: nn.Module, seed: int) -> nn.Module:
    """He-normal convs and non-trivial BatchNorms, so every slip shows in the numbers (the official
    N(0, 0.001) initialisation makes all outputs nearly equal); eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, generator=generator)
    return random_bn(module, seed)


def random_bn(module: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm non-trivial statistics (so leaving one out shows); eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=generator))
            m.bias.data.copy_(torch.randn(n, generator=generator))
    return module.eval()
