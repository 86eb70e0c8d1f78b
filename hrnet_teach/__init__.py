"""hrnet_teach: a readable HRNet, faithful to the authors' code, and a course around it."""
from . import inspect
from .backbone import HRNet
from .blocks import BasicBlock, Bottleneck, conv3x3, make_layer
from .config import VARIANTS, HRNetConfig, StageConfig, get_config
from .heads import HRNetClassification, HRNetPose, HRNetPyramid, HRNetSegmentation
from .models import HEADS, create_model
from .module import HighResolutionModule
from .transition import Transition

__version__ = "0.1.0"

__all__ = [
    "VARIANTS", "HEADS", "HRNetConfig", "StageConfig", "get_config", "create_model", "HRNet",
    "HRNetSegmentation", "HRNetClassification", "HRNetPose", "HRNetPyramid",
    "HighResolutionModule", "Transition", "BasicBlock", "Bottleneck", "conv3x3", "make_layer", "inspect",
]
