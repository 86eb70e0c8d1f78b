"""The published parameter counts and GFLOPs, computed from the package.

GFLOPs are counted the authors' way: multiply-adds / 2**30, via
torch.utils.flop_counter (which reports 2 FLOPs per multiply-add) on the meta device.
"""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import hrnet_teach as ht

CLASSIFICATION = {
    "w18_small_v1": (13_187_464, 1.49),
    "w18_small_v2": (15_597_464, 2.42),
    "w18": (21_299_004, 3.99),
    "w30": (37_712_220, 7.55),
    "w32": (41_232_680, 8.31),
    "w40": (57_557_160, 11.8),
    "w44": (67_064_984, 13.9),
    "w48": (77_469_864, 16.1),
    "w64": (128_059_944, 26.9),
}


def count(variant, head, size, **kwargs):
    with torch.device("meta"):
        model = ht.create_model(variant, head=head, **kwargs).eval()
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(1, 3, *size, device="meta"))
    return params, counter.get_total_flops() / 2 / 2**30


def same_to_published_digits(value, published):
    digits = len(str(published).split(".")[1])
    return round(value, digits) == published


@pytest.mark.parametrize("variant", ht.VARIANTS)
def test_classification_params_and_gflops(variant):
    params, gflops = count(variant, "classification", (224, 224))
    published_params, published_gflops = CLASSIFICATION[variant]
    assert params == published_params
    assert same_to_published_digits(gflops, published_gflops), gflops


@pytest.mark.parametrize(
    "variant, mparams, gflops, all_mparams",
    [("w18_small_v1", 1.5, 31.1, 1.5), ("w18_small_v2", 3.9, 71.6, 3.9), ("w48", 65.8, 696.2, 65.9)],
)
def test_segmentation_figures(variant, mparams, gflops, all_mparams):
    """#Params as the master README prints them: master's get_model_summary counts the parameters of modules whose
    class name holds Conv, BatchNorm or Linear, and master's BatchNorm2d is InPlaceABNSync, so the norm layers'
    are left out (W48: 65,773,843, 65.8M; with them 65,859,379, 65.9M)."""
    params, measured = count(variant, "segmentation", (1024, 2048), num_classes=19)
    with torch.device("meta"):
        model = ht.create_model(variant, head="segmentation", num_classes=19)
    norm = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    assert round((params - norm) / 1e6, 1) == mparams
    assert round(params / 1e6, 1) == all_mparams
    assert round(measured, 1) == gflops


@pytest.mark.parametrize("variant, mparams, gflops", [("w32", 28.5, 7.1), ("w48", 63.6, 14.6)])
def test_pose_figures(variant, mparams, gflops):
    params, measured = count(variant, "pose", (256, 192), num_joints=17)
    assert round(params / 1e6, 1) == mparams
    assert round(measured, 1) == gflops


@pytest.mark.parametrize(
    "variant, params, gflops",
    [("w48", 70_372_678, 1208.7), ("w18_small_v2", 6_379_278, 331.0)],
)
def test_ocr_figures(variant, params, gflops):
    """HRNetV2 + OCR at 1024x2048, 19 classes. The parameter counts equal the official
    seg_hrnet_ocr.py's (tests/data/official_yaml.json records 70,372,678 for W48 on
    Cityscapes); GFLOPs count the attention's matrix products too."""
    measured_params, measured = count(variant, "ocr", (1024, 2048), num_classes=19)
    assert measured_params == params
    assert round(measured, 1) == gflops
