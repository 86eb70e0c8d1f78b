"""The input audit's sweep of odd answers, kept as tests: every exercise, given what a learner may pass by
accident, answers in clean English (no "a int", no "gave a NoneType", no message that starts with ":" or shows
"tensor ;"), never blames a line of torch as the learner's, and an answer that is right but computed in
another dtype or full of NaN is told so, not sent to look at channels or indices."""
import functools
import re

import pytest
import torch
from torch import nn

from hrnet_teach.exercises import FunctionExercise, ValueExercise, all_exercises
from hrnet_teach.exercises.capstone import CheckpointExercise

EXERCISES = all_exercises()
IDS = [f"{ex.lesson}-{ex.name}" for ex in EXERCISES]


class _WithoutInit(nn.Module):  # a class written with forward only: nn.Module's __init__ takes no arguments
    def forward(self, x):
        return x


ODD = {"returns None": lambda *a, **k: None, "returns 1": lambda *a, **k: 1,
       "returns a 0-d NaN tensor": lambda *a, **k: torch.tensor(float("nan")), "returns ...": lambda *a, **k: ...,
       "returns a list of None": lambda *a, **k: [None], "returns ints": lambda *a, **k: [1, 2],
       "returns a str": lambda *a, **k: "x", "returns a dict": lambda *a, **k: {},
       "a class without __init__": _WithoutInit, "the class nn.Conv2d": nn.Conv2d,
       "empty str": "", "blank str": " ", "a list of an empty str": [""]}

# English that reads broken: an article before the wrong sound ("an nn.Module" and "an NaN" are said en-en),
# a type's name where the value was None, punctuation after a space or first in the message.
BROKEN = {"a + vowel": r"\b[Aa] (?=[aeiouAEIOU])", "an + consonant": r"\b[Aa]n (?![aeiouAEIOU]|nn\b|nn\.|nd|NaN)\w",
          "a NoneType": r"\ba NoneType\b", "starts with punctuation": r"^\s*[:;,.]",
          "space before punctuation": r" [;,.:](\s|$)"}


@pytest.mark.parametrize("ex", EXERCISES, ids=IDS)
def test_odd_answers_get_clean_english(ex):
    for label, answer in ODD.items():
        message = ex.check(answer).message
        for what, pattern in BROKEN.items():
            assert not re.search(pattern, message), f"{ex.name}, {label}: {what} in {message!r}"
        if label in ("a class without __init__", "the class nn.Conv2d"):  # no line of the learner's ran:
            # "(line 106 in __init__)", a line of torch's conv.py, would read as theirs
            assert not re.search(r"\(line \d+ in \w+\)", message), f"{ex.name}, {label}: {message!r}"


def _changed(value, how):
    """``value`` with its float tensors (or modules) changed by ``how``; anything else as it is."""
    if isinstance(value, (torch.Tensor, nn.Module)) and (isinstance(value, nn.Module) or value.is_floating_point()):
        return how(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_changed(v, how) for v in value)
    return value


WRAPS = {"float16": (lambda v: v.half(), r"float16"), "float64": (lambda v: v.double(), r"float64"),
         "NaN": (lambda v: v * float("nan") if isinstance(v, torch.Tensor) else v, r"\bNaN\b|\bnan\b")}
CALLED = [ex for ex in EXERCISES if isinstance(ex, (FunctionExercise, CheckpointExercise))]
# The exercises that accept each changed reference, and why; any other must refuse it (a checker that loosens
# shows up here). Unchanged answers: numbers, a class (norm_for), modules (NaN only reaches tensors).
UNCHANGED = {"poly_lr", "miou_from_confusion", "norm_for"}
MODULES = {"fuse_op", "transition_op", "layer1", "hr_module", "stage", "capstone_network"}
PASSES = {"float16": UNCHANGED,
          "float64": UNCHANGED | {"basic_block_forward", "fuse_sum", "transition_forward", "v2_head",  # exact enough
                                  "segmentation_loss", "region_pooling", "fold_conv_bn", "head"},
          "NaN": UNCHANGED | MODULES}


@pytest.mark.parametrize("wrap", sorted(WRAPS))
@pytest.mark.parametrize("ex", CALLED, ids=[f"{ex.lesson}-{ex.name}" for ex in CALLED])
def test_the_reference_in_another_dtype_or_nan_is_told_so(ex, wrap):
    how, said = WRAPS[wrap]
    reference = ex.reference
    answer = functools.wraps(reference)(lambda *args: _changed(reference(*args), how))
    result = ex.check(answer)
    assert result.passed == (ex.name in PASSES[wrap]), f"{ex.name} ({wrap}): {result.message!r}"
    if result.passed:
        return
    assert re.search(said, result.message), f"{ex.name} ({wrap}): {result.message!r}"
    for blame in ("num_inchannels", "channels: check", "The shapes are right but the numbers differ",
                  "no label and no prediction"):
        assert blame not in result.message, f"{ex.name} ({wrap}): {result.message!r}"


def test_the_expected_passes_name_called_exercises():
    names = {ex.name for ex in CALLED}
    assert set(PASSES) == set(WRAPS) and all(passes <= names for passes in PASSES.values()), names


def test_the_sweep_reaches_every_kind_of_exercise():
    kinds = {type(ex).__name__ for ex in EXERCISES}
    assert {"ValueExercise", "ChoiceExercise", "FunctionExercise", "ModuleExercise", "CheckpointExercise",
            "NetworkExercise"} <= kinds, kinds
    assert any(isinstance(ex, ValueExercise) for ex in EXERCISES)
