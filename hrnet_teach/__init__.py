"""hrnet_teach: a readable HRNet, faithful to the authors' code, and a course around it.

The model (configs, blocks, modules, transitions, backbone, heads) and ``inspect``
load with the package; the heavier parts (``viz``, ``widgets``, ``weights``,
``data``, ``train``, ``exercises`` ...) load the first time they are used, so
``import hrnet_teach`` stays as quick as importing torch.
"""
import importlib
import re
import warnings

import torch

from . import inspect  # noqa: F401  (hrnet_teach.inspect; kept out of __all__, see below)
from .backbone import HRNet
from .blocks import BasicBlock, Bottleneck, conv3x3, make_layer
from .config import VARIANTS, HRNetConfig, StageConfig, get_config
from .heads import HRNetClassification, HRNetPose, HRNetPyramid, HRNetSegmentation
from .models import HEADS, create_model
from .module import HighResolutionModule
from .ocr import HRNetOCR
from .transition import Transition

# The oldest torch the whole suite passed on (2.7.1, Python 3.9). Lesson 10's export is what needs it:
# 2.6.0's ONNX file from a torch.export program fixes the batch size, 2.5.1's torch.export refuses
# bilinear resizing to a symbolic size, 2.1.2's torch.onnx.export takes no dynamo= (each measured).
# Older torch still builds the models, so this warns rather than refuses.
MIN_TORCH = (2, 7)


def _old_torch_warning(version: str):
    """What to tell a learner whose torch is older than MIN_TORCH, or None."""
    found = re.match(r"(\d+)\.(\d+)", version)
    if found is None or tuple(map(int, found.groups())) >= MIN_TORCH:
        return None
    need = ".".join(map(str, MIN_TORCH))
    return (f"hrnet_teach is tested with torch {need} and newer; this is torch {version}. The models build, but "
            f"parts of the course (lesson 10's export among them) fail on it. Upgrade: pip install -U 'torch>={need}'")


if _old_torch_warning(torch.__version__):  # a learner who kept an old torch hears it here, not deep in a lesson
    warnings.warn(_old_torch_warning(torch.__version__), stacklevel=2)

__version__ = "0.1.0"

_LAZY = ("assets", "weights", "viz", "widgets", "data", "train", "train_config", "distributed", "ablation", "bench",
         "exercises", "colab", "deploy", "inference", "pose_inference", "i18n")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_weights(model, source, strict=True, verbose=True):
    """Load a checkpoint into a model; see :func:`hrnet_teach.weights.load_weights`."""
    from .weights import load_weights as _load

    return _load(model, source, strict=strict, verbose=verbose)


# ``inspect`` stays out of __all__: ``from hrnet_teach import *`` must not replace the
# standard library's ``inspect`` in the caller's namespace (use ``hrnet_teach.inspect``).
__all__ = [
    "VARIANTS", "HEADS", "HRNetConfig", "StageConfig", "get_config", "create_model", "load_weights", "HRNet",
    "HRNetSegmentation", "HRNetOCR", "HRNetClassification", "HRNetPose", "HRNetPyramid",
    "HighResolutionModule", "Transition", "BasicBlock", "Bottleneck", "conv3x3", "make_layer",
    *_LAZY,
]
