"""hrnet_teach: a readable HRNet, faithful to the authors' code, and a course around it.

The model (configs, blocks, modules, transitions, backbone, heads) and ``inspect``
load with the package; the heavier parts (``viz``, ``widgets``, ``weights``,
``data``, ``train``, ``exercises`` ...) load the first time they are used, so
``import hrnet_teach`` stays as quick as importing torch.
"""
import importlib

from . import inspect  # noqa: F401  (hrnet_teach.inspect; kept out of __all__, see below)
from .backbone import HRNet
from .blocks import BasicBlock, Bottleneck, conv3x3, make_layer
from .config import VARIANTS, HRNetConfig, StageConfig, get_config
from .heads import HRNetClassification, HRNetPose, HRNetPyramid, HRNetSegmentation
from .models import HEADS, create_model
from .module import HighResolutionModule
from .ocr import HRNetOCR
from .transition import Transition

__version__ = "0.1.0"

_LAZY = ("assets", "weights", "viz", "widgets", "data", "train", "train_config", "distributed", "ablation", "bench",
         "exercises", "colab", "deploy", "i18n")


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
