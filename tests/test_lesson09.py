"""Lesson 09's shipped HRNet-OCR checkpoint, and the by-hand OCR steps the lesson shows."""
from pathlib import Path

import torch

from hrnet_teach.data import ShapesDataset
from hrnet_teach.exercises import lesson09
from hrnet_teach.ocr import HRNetOCR
from hrnet_teach.train import evaluate
from hrnet_teach.weights import model_from_checkpoint, read_checkpoint

REPO = Path(__file__).resolve().parents[1]
OCR_CHECKPOINT = REPO / "assets" / "checkpoints" / "shapes_ocr_w18_small_v1.pt"


def test_shipped_ocr_checkpoint_loads_strictly_and_scores_as_claimed():
    assert OCR_CHECKPOINT.stat().st_size < 10 * 2**20
    checkpoint = read_checkpoint(OCR_CHECKPOINT)
    assert checkpoint["storage_dtype"] == "float16" and "optimizer" not in checkpoint
    assert checkpoint["command"].startswith("python -m hrnet_teach.train --head ocr")
    model = model_from_checkpoint(checkpoint)  # strict
    assert isinstance(model, HRNetOCR) and not model.training
    args = checkpoint["args"]
    held_out = ShapesDataset(args["val_size"], image_size=args["image_size"], seed=args["seed"], split="val")
    measured = evaluate(model, held_out, "cpu")
    assert abs(measured["miou"] - checkpoint["metrics"]["shipped_miou"]) < 0.005, measured


def test_region_pooling_reference_is_the_modules_gather():
    """The exercise's matmul is what ocr_gather_head computes (up to its B x C x K x 1 layout)."""
    model = HRNetOCR("w18_small_v1", num_classes=3).eval()
    feats, regions = torch.randn(2, 8, 5, 7), torch.randn(2, 3, 5, 7)
    by_module = model.ocr_gather_head(feats, regions)[..., 0].transpose(1, 2)
    assert torch.allclose(lesson09.region_pooling.reference(feats, regions), by_module, atol=1e-6)


def test_attention_shape_answer_is_what_the_module_builds():
    """The exercise's answer, measured with a forward hook on W48's attention block (meta device)."""
    seen = {}
    with torch.device("meta"):
        model = HRNetOCR("w48", num_classes=lesson09.ATT_CLASSES).eval()
        block = model.ocr_distri_head.object_context_block
        block.f_pixel.register_forward_hook(lambda m, i, o: seen.update(query=o.shape))
        block.f_object.register_forward_hook(lambda m, i, o: seen.update(key=o.shape))
        model(torch.empty(1, 3, *lesson09.ATT_SIZE))
    pixels = seen["query"][2] * seen["query"][3]
    regions = seen["key"][2] * seen["key"][3]
    assert lesson09.attention_shape.reference == (1, pixels, regions)
