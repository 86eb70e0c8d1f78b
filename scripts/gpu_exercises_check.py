#!/usr/bin/env python3
"""A learner's answers on a CUDA GPU, through every exercise check that calls the learner's code (a step of
scripts/gpu_check.sh; about half a minute on a GPU).

Each exercise is answered by its own reference, three ways:
  out on cuda       the result (or the built module) moved to the GPU: a module answer passes (it is checked
                    as a CPU copy), a function's result passes or is told it is on cuda; never "check failed";
  cuda inside       the inputs moved to the GPU and the result back (functions only): passes, within the
                    per-call time limit;
  default device    the reference under torch.set_default_device("cuda"), as a notebook might set it: passes.
The session starts as a lesson does, with hrnet_teach.colab.setup() (which warms CUDA up), and prints how long
that took: the cost an answer's first CUDA call would otherwise pay inside a check's time limit.

Usage (from anywhere): python scripts/gpu_exercises_check.py [--device cpu] [--lessons 03,04]
Exit status: 0 when every answer met its expectation, 1 on any surprise (listed), 2 without CUDA.
--device cpu runs the same answers on the CPU (every one then passes): a quick test of this script itself.
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout, installed or not

import torch  # noqa: E402
from torch import nn  # noqa: E402

BROKEN = ("check failed", "check itself failed", "did not return within")  # the checker's fault or a time-out


def move(x, device):
    """Tensors and modules (also inside lists and tuples) on ``device``; anything else as it is."""
    if isinstance(x, (torch.Tensor, nn.Module)):
        return x.to(device)
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return type(x)(move(v, device) for v in x)
    return x


def answer(reference, device, inside: bool):
    """The reference as a learner's answer: its result moved to ``device`` (a class: built there), or, with
    ``inside``, run on inputs moved to ``device`` and its result moved back to the CPU."""
    if isinstance(reference, type):
        class Moved(reference):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.to(device)
        Moved.__name__, Moved.__qualname__ = reference.__name__, reference.__qualname__
        return Moved

    @functools.wraps(reference)
    def run(*args):
        if inside:
            return move(reference(*move(args, device)), "cpu")
        return move(reference(*args), device)
    return run


def verdict(result, must_pass: bool, device) -> bool:
    """Whether the check answered as expected: never a broken check; a pass, or (where allowed) a message
    that names the device."""
    if any(part in result.message for part in BROKEN):
        return False
    return result.passed or (not must_pass and device.type in result.message)


def sweep(exercises, device) -> int:
    """Every answer through its check, one line each; returns the number of surprises."""
    from hrnet_teach.exercises import FunctionExercise, ModuleExercise

    surprises = 0
    for ex in exercises:
        reference = ex.reference
        function = isinstance(ex, FunctionExercise) and not isinstance(ex, ModuleExercise)
        ways = {f"out on {device.type}": (answer(reference, device, False), not function)}
        if function and not isinstance(reference, type):
            ways[f"{device.type} inside"] = (answer(reference, device, True), True)
        for label, (given, must_pass) in ways.items():
            start = time.perf_counter()
            result = ex.check(given)
            ok = verdict(result, must_pass, device)
            surprises += not ok
            print(f"{'ok' if ok else 'SURPRISE':8} {ex.lesson}/{ex.name:26} {label:18} "
                  f"{time.perf_counter() - start:5.1f} s  {result.message.splitlines()[0][:140]}", flush=True)
        torch.set_default_device(device)
        try:
            result = ex.check(reference)
        finally:
            torch.set_default_device(None)
        surprises += not result.passed
        print(f"{'ok' if result.passed else 'SURPRISE':8} {ex.lesson}/{ex.name:26} {'default device':18} "
              f"        {result.message.splitlines()[0][:140]}", flush=True)
    return surprises


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                        help="cuda (default); cpu: the same answers on the CPU, to test this script")
    parser.add_argument("--lessons", default="", help="comma-separated lesson numbers (default: all)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_exercises_check.py: no CUDA GPU is visible to PyTorch here (torch.cuda.is_available() is False); "
              "run it on a GPU machine, or add --device cpu to test the script itself", file=sys.stderr)
        return 2
    from hrnet_teach import colab
    from hrnet_teach.exercises import ValueExercise, all_exercises

    start = time.perf_counter()
    device = colab.setup(verbose=False) if args.device == "cuda" else torch.device("cpu")
    print(f"setup() on {device}: {time.perf_counter() - start:.1f} s (loads CUDA and cuDNN on a GPU)", flush=True)
    lessons = {f"{int(n):02d}" for n in args.lessons.split(",") if n.strip()}
    exercises = [ex for ex in all_exercises() if not isinstance(ex, ValueExercise)
                 and (not lessons or str(ex.lesson) in lessons)]
    surprises = sweep(exercises, device)
    print(f"{len(exercises)} exercises, {surprises} surprises")
    return 1 if surprises else 0


if __name__ == "__main__":
    sys.exit(main())
