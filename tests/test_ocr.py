"""The OCR head: structure, shapes, what it returns, and what it refuses.

Equality with the official seg_hrnet_ocr.py (keys, order, outputs) is in
tests/test_official_parity.py (head "ocr"); the published-style figures in
tests/test_published_figures.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import hrnet_teach as ht
from hrnet_teach.ocr import HRNetOCR, ObjectAttentionBlock, SpatialGather
from hrnet_teach.weights import WeightsMismatchError, load_weights

OCR_PARTS = ("conv3x3_ocr", "ocr_gather_head", "ocr_distri_head", "cls_head", "aux_head")


@pytest.fixture(scope="module")
def small_ocr():
    torch.manual_seed(0)
    return ht.create_model("w18_small_v1", head="ocr", num_classes=5).eval()


def test_returns_aux_then_ocr_at_quarter_resolution(small_ocr):
    seen = {}
    small_ocr.aux_head.register_forward_hook(lambda m, i, o: seen.setdefault("aux", o))
    small_ocr.cls_head.register_forward_hook(lambda m, i, o: seen.setdefault("ocr", o))
    with torch.no_grad():
        out = small_ocr(torch.randn(2, 3, 130, 163))
    assert isinstance(out, list) and len(out) == 2
    assert [tuple(o.shape) for o in out] == [(2, 5, 33, 41)] * 2
    assert out[0] is seen["aux"] and out[1] is seen["ocr"]  # the official order: [aux, ocr]


def test_every_variant_builds_with_official_part_names():
    for variant in ht.VARIANTS:
        with torch.device("meta"):
            model = ht.create_model(variant, head="ocr", num_classes=19)
        tops = list(dict.fromkeys(k.split(".")[0] for k in model.state_dict()))
        # the backbone, then the head parts in the official registration order (ocr_gather_head has no tensors)
        assert tops[-4:] == ["conv3x3_ocr", "ocr_distri_head", "cls_head", "aux_head"], variant
        assert model.aux_head[0].in_channels == sum(model.out_channels)


def test_sizes_are_arguments(small_ocr):
    with torch.device("meta"):
        model = ht.create_model("w18_small_v2", head="ocr", num_classes=3, mid_channels=64, key_channels=16)
    block = model.ocr_distri_head.object_context_block
    assert model.conv3x3_ocr[0].out_channels == 64 and block.key_channels == 16
    assert block.f_pixel[0].weight.shape == (16, 64, 1, 1)
    assert model.ocr_distri_head.conv_bn_dropout[0].in_channels == 128  # [context, pixel]: 2 x mid
    assert small_ocr.ocr_distri_head.conv_bn_dropout[-1].p == 0.05  # the official hard-coded dropout


def test_spatial_gather_is_a_softmax_weighted_average():
    feats = torch.randn(2, 6, 4, 5)
    probs = torch.randn(2, 3, 4, 5)
    regions = SpatialGather(3)(feats, probs)
    assert regions.shape == (2, 6, 3, 1)
    weights = probs.flatten(2).softmax(dim=2)  # B x K x HW
    expected = torch.einsum("bkn,bcn->bck", weights, feats.flatten(2))
    torch.testing.assert_close(regions[..., 0], expected)


def test_attention_rows_sum_to_one_and_scale_pools():
    block = ObjectAttentionBlock(8, 4).eval()
    seen = {}
    original = torch.nn.functional.softmax

    def spy(x, dim=None, **kw):
        seen["w"] = original(x, dim=dim, **kw)
        return seen["w"]

    torch.nn.functional.softmax = spy
    try:
        with torch.no_grad():
            out = block(torch.randn(1, 8, 6, 7), torch.randn(1, 8, 5, 1))
    finally:
        torch.nn.functional.softmax = original
    assert out.shape == (1, 8, 6, 7)
    assert seen["w"].shape == (1, 42, 5)  # every pixel over the 5 regions
    torch.testing.assert_close(seen["w"].sum(-1), torch.ones(1, 42))
    pooled = ObjectAttentionBlock(8, 4, scale=2).eval()
    with torch.no_grad():
        assert pooled(torch.randn(1, 8, 6, 8), torch.randn(1, 8, 5, 1)).shape == (1, 8, 6, 8)


def test_align_corners_is_honoured():
    """The recorded official case with ALIGN_CORNERS False differs from the same weights with True:
    so the parity test would catch a model that ignored the argument."""
    from test_official_parity import OUTPUTS, deterministic_input, deterministic_state, summarise

    case = next(c for c in OUTPUTS["cases"] if c["id"].endswith("align_corners_false"))
    model = ht.create_model(case["variant"], head="ocr", num_classes=19).eval()  # align_corners True
    model.load_state_dict(deterministic_state(model, seed=OUTPUTS["weight_seed"]))
    with torch.no_grad():
        got = summarise(model(deterministic_input(case["input"], seed=OUTPUTS["input_seed"])))
    assert abs(got[1]["sum"] - case["outputs"][1]["sum"]) > 1e-3 * case["outputs"][1]["abs_sum"]


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_classes": 0}, "num_classes must be a positive integer, got 0"),
        ({"num_classes": 2.5}, r"num_classes must be a positive integer, got 2\.5 \(float\)"),
        ({"mid_channels": 0}, "mid_channels must be a positive integer, got 0"),
        ({"key_channels": "256"}, r"key_channels must be a positive integer, got '256' \(str\)"),
        ({"dropout": 1.5}, r"dropout must be a probability in \[0, 1\), got 1\.5"),
        ({"scale": 0}, "scale must be a positive integer, got 0"),
    ],
)
def test_bad_sizes_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message), torch.device("meta"):
        ht.create_model("w18_small_v1", head="ocr", **kwargs)


def test_bad_variant_and_arguments():
    with pytest.raises(ValueError, match="Unknown HRNet variant 'w19'.*w18_small_v1"):
        ht.create_model("w19", head="ocr")
    with pytest.raises(TypeError, match=r"create_model\(head='ocr'\).*num_joints"):
        ht.create_model("w18_small_v1", head="ocr", num_joints=17)
    with pytest.raises(ValueError, match="Unknown head 'OCR'"):
        ht.create_model("w18_small_v1", head="OCR")


def test_numpy_and_torch_class_counts(small_ocr):
    count = torch.tensor([0, 3]).max() + 1  # e.g. labels.max() + 1: a 0-d integer tensor
    with torch.device("meta"):
        a = ht.create_model("w18_small_v1", head="ocr", num_classes=np.int64(4))
        b = ht.create_model("w18_small_v1", head="ocr", num_classes=count)
    assert a.cls_head.out_channels == b.cls_head.out_channels == 4
    assert type(a.cls_head.out_channels) is int


def test_bad_input_image(small_ocr):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*unsqueeze"):
        small_ocr(torch.randn(3, 64, 64))


def test_v2_checkpoint_into_ocr_model_reports_the_ocr_keys():
    v2 = ht.create_model("w18_small_v1", head="segmentation", num_classes=5)
    ocr = ht.create_model("w18_small_v1", head="ocr", num_classes=5)
    with pytest.raises(WeightsMismatchError) as info:
        load_weights(ocr, v2.state_dict(), strict=True, verbose=False)
    report = info.value.report
    ocr_keys = [k for k in ocr.state_dict() if k.split(".")[0] in OCR_PARTS]
    assert sorted(report.missing) == sorted(ocr_keys)
    assert sorted(report.unexpected) == sorted(k for k in v2.state_dict() if k.startswith("last_layer."))
    text = str(report)
    for group in ("conv3x3_ocr.*", "ocr_distri_head.*", "cls_head.*", "aux_head.*", "last_layer.*"):
        assert group in text, group
    # non-strict: the backbone loads, the OCR head stays as initialised, and the report says so
    report = load_weights(ocr, v2.state_dict(), strict=False, verbose=False)
    assert report.loaded == len(v2.state_dict()) - len(report.unexpected)
    torch.testing.assert_close(ocr.conv1.weight, v2.conv1.weight)


def test_ocr_checkpoint_is_recognised_when_loaded_elsewhere():
    ocr = ht.create_model("w18_small_v1", head="ocr", num_classes=5)
    v2 = ht.create_model("w18_small_v1", head="segmentation", num_classes=5)
    with pytest.raises(WeightsMismatchError, match="looks like w18_small_v1, OCR"):
        load_weights(v2, ocr.state_dict(), strict=True, verbose=False)


def test_official_key_listing_is_shipped():
    keys = json.loads((Path(__file__).parent / "data" / "official_keys.json").read_text())["heads"]["ocr"]
    assert keys["count"]["w48"] == 1890
    assert keys["w18_small_v1"][-1] == ["aux_head.3.bias", [19]]
    assert isinstance(ht.create_model("w18_small_v1", head="ocr"), HRNetOCR)


def test_cost_breakdown_splits_the_ocr_head_and_sums_to_the_total():
    from test_published_figures import count

    rows = ht.inspect.cost_breakdown("w18_small_v2", (256, 512), head="ocr")
    head = {r.part: r for r in rows if r.group == "head"}
    assert list(head) == [
        "OCR soft object regions (aux_head)", "OCR pixel representations (conv3x3_ocr)",
        "OCR region gather (ocr_gather_head)", "OCR pixel-region attention (object_context_block)",
        "OCR augmented representation (conv_bn_dropout)", "OCR classifier (cls_head)",
    ]
    assert not any(r.part == "other" for r in rows)
    gather = head["OCR region gather (ocr_gather_head)"]
    assert gather.params == 0 and gather.macs == 19 * 64 * 128 * 512  # K x HW x C: the pooling matmul
    params, gflops = count("w18_small_v2", "ocr", (256, 512), num_classes=19)
    assert sum(r.params for r in rows) == params
    assert sum(r.macs for r in rows) == round(gflops * 2**30)


def test_bench_knows_the_ocr_head():
    from hrnet_teach import bench

    assert "ocr" in bench.HEAD_NAMES
    params, gflops = bench.count("w48", "ocr", (1024, 2048))
    assert params == 70_372_678 and round(gflops, 1) == 1208.7
    bench.check_size_for_head("ocr", (250, 333))  # bilinear fusion: any size


# ------------------------------------------------------------------ the official loss
def _up(logits, target):
    return torch.nn.functional.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=True)


def test_ocr_loss_weighs_aux_and_ocr_as_the_official_config():
    from hrnet_teach.ocr import ocr_loss

    g = torch.Generator().manual_seed(0)
    aux, out = torch.randn(2, 4, 8, 10, generator=g), torch.randn(2, 4, 8, 10, generator=g)
    target = torch.randint(0, 4, (2, 32, 40), generator=g)
    target[:, :3] = 255
    ce = torch.nn.functional.cross_entropy
    expected = 0.4 * ce(_up(aux, target), target, ignore_index=255) + ce(_up(out, target), target, ignore_index=255)
    torch.testing.assert_close(ocr_loss([aux, out], target), expected)
    swapped = 0.4 * ce(_up(out, target), target, ignore_index=255) + ce(_up(aux, target), target, ignore_index=255)
    assert not torch.allclose(ocr_loss([aux, out], target), swapped)  # the order matters: [aux, ocr]


def test_ohem_scores_only_the_hard_pixels():
    from hrnet_teach.ocr import ohem_cross_entropy

    target = torch.zeros(1, 2, 4, dtype=torch.long)
    logits = torch.zeros(1, 2, 2, 4)
    logits[0, 0, 0] = 10.0  # first row: class 0 sure and right (p ~ 1: easy)
    logits[0, 1, 1] = 1.0  # second row: class 1 favoured, wrong (p = 0.27: hard)
    loss = ohem_cross_entropy(logits, target, threshold=0.9, min_kept=1)
    hard = torch.nn.functional.cross_entropy(logits, target, reduction="none")[0, 1].mean()
    torch.testing.assert_close(loss, hard)
    # min_kept larger than the labelled pixels: the cut rises to the easiest pixel, which is still left out
    assert ohem_cross_entropy(logits, target, threshold=0.1, min_kept=100) > 0


def test_ohem_mode_averages_the_aux_loss_over_all_pixels():
    """Official quirk: with OHEM the aux loss is reduction='none', averaged by losses.mean() over every pixel."""
    from hrnet_teach.ocr import ocr_loss

    g = torch.Generator().manual_seed(1)
    aux, out = torch.randn(1, 3, 4, 4, generator=g), torch.randn(1, 3, 4, 4, generator=g)
    target = torch.randint(0, 3, (1, 16, 16), generator=g)
    target[:, :8] = 255  # half the pixels unlabelled
    plain = ocr_loss([aux, out], target, balance_weights=(1.0, 0.0))
    with_ohem = ocr_loss([aux, out], target, balance_weights=(1.0, 0.0), ohem=True)
    torch.testing.assert_close(with_ohem, plain / 2)


def test_ocr_loss_wants_the_list_of_outputs():
    from hrnet_teach.ocr import ocr_loss

    with pytest.raises(ValueError, match=r"one per balance weight \[0\.4, 1\.0\]; got a single tensor"):
        ocr_loss(torch.randn(1, 3, 4, 4), torch.zeros(1, 16, 16, dtype=torch.long))


def test_ocr_head_own_input_checks():
    one_class = ht.create_model("w18_small_v1", head="ocr", num_classes=1).train()
    with pytest.raises(ValueError, match="1 image and 1 class.*model.eval"):
        one_class(torch.randn(1, 3, 64, 64))
    pooled = ht.create_model("w18_small_v1", head="ocr", num_classes=3, scale=4).eval()
    with pytest.raises(ValueError, match="max-pools the 3x4 map by scale=4; use an image of at least 16"):
        pooled(torch.randn(1, 3, 12, 16))
    with torch.no_grad():
        assert pooled(torch.randn(1, 3, 64, 64))[1].shape == (1, 3, 16, 16)


# ------------------------------------------------------------------ training
def test_ocr_trains_on_cpu_and_reloads_as_what_it_was(tmp_path):
    import math

    from hrnet_teach import train as T
    from hrnet_teach.data import ShapesDataset

    model = T.build_model("w18_small_v1", 4, head="ocr")
    loss_fn = T.loss_for(model)
    assert loss_fn.func.__name__ == "ocr_loss" and loss_fn.keywords["ohem"] is False
    assert T.loss_for(model, ohem=True).keywords["ohem"] is True
    metrics = T.train(head="ocr", epochs=1, train_size=8, val_size=4, batch_size=4, image_size=32,
                      out=tmp_path, progress=False, device="cpu", ohem=True)
    assert math.isfinite(metrics["loss"][0]) and 0 <= metrics["final_miou"] <= 1
    reloaded = T.model_from_checkpoint(tmp_path / "checkpoint.pt")
    assert isinstance(reloaded, HRNetOCR) and reloaded.cls_head.out_channels == 4
    val = ShapesDataset(4, image_size=32, seed=0, split="val")
    assert math.isclose(T.evaluate(reloaded, val)["miou"], metrics["final_miou"], abs_tol=1e-6)


def test_ohem_is_for_the_segmentation_heads_and_the_cli_takes_it():
    from hrnet_teach import train as T

    with pytest.raises(ValueError, match="ohem applies to heads 'segmentation' and 'ocr'"):
        T.TrainConfig(head="pose", ohem=True)
    assert T.TrainConfig(head="segmentation", ohem=True).ohem is True  # the official HRNetV2 *_ohem_* files
    config = T.config_from_args(T.parse_args(["--head", "ocr", "--ohem"]))
    assert config.head == "ocr" and config.ohem is True


# ------------------------------------------------------------------ input audit (findings 7, 31)
@pytest.fixture()
def loss_case():
    torch.manual_seed(0)
    return [torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)], torch.randint(0, 4, (2, 64, 64))


@pytest.mark.parametrize("options, message", [
    (dict(ohem="no"), r"ohem must be True or False, got 'no' \(str\).*pass ohem=False"),
    (dict(align_corners="no"), r"align_corners must be True, False or None \(F.interpolate's default\), got 'no'"),
    (dict(balance_weights=None), r"balance_weights must be numbers, one per output \(the official \[0.4, 1\] .*got None"),
    (dict(balance_weights=("a", "b")), r"balance_weights must be numbers.*got \('a', 'b'\)"),
    (dict(weight=torch.ones(3)), r"weight has 3 entries but the outputs have 4 classes: give one weight per class"),
    (dict(ohem=True, ohem_keep=-5), r"ohem_keep must be a non-negative integer, got -5"),
    (dict(ohem=True, ohem_threshold=float("nan")), r"ohem_threshold must be a probability in \[0, 1\].*got nan"),
    (dict(ohem=True, ohem_threshold=1.5), r"ohem_threshold must be a probability in \[0, 1\]"),
])
def test_ocr_loss_options_are_checked_before_cross_entropy(loss_case, options, message):
    from hrnet_teach.ocr import ocr_loss

    outputs, target = loss_case
    with pytest.raises(ValueError, match=message):
        ocr_loss(outputs, target, **options)


def test_ocr_loss_still_takes_the_official_options(loss_case):
    from hrnet_teach.ocr import ocr_loss

    outputs, target = loss_case
    plain = ocr_loss(outputs, target)
    assert torch.isfinite(plain)
    assert torch.isfinite(ocr_loss(outputs, target, balance_weights=[np.float32(0.4), 1], ohem=True,
                                   ohem_threshold=0.7, ohem_keep=0, weight=torch.ones(4)))


# ---------------------------------------------------------------- the relation, as the explorer shows it
def _trained_ocr(scale=1):
    """The course's trained HRNet-OCR (W18-small-v1, 4 classes), and a scene it was trained on. A freshly built
    model would not do: its regions are alike and its queries and keys tiny, so every w_ik is exactly 1/K, which
    a wrong layout of the weights would not change. ``scale`` 2 builds the same weights with a pooled relation."""
    from hrnet_teach.assets import asset_path
    from hrnet_teach.data import ShapesDataset
    from hrnet_teach.weights import model_from_checkpoint, read_checkpoint

    model = model_from_checkpoint(read_checkpoint(asset_path("checkpoints/shapes_ocr_w18_small_v1.pt"))).train()
    if scale != 1:
        pooled = HRNetOCR("w18_small_v1", num_classes=4, scale=scale, align_corners=model.align_corners)
        pooled.load_state_dict(model.state_dict())
        model = pooled
    image, _mask = ShapesDataset(1, image_size=64, seed=5, split="val")[0]
    return model, image[:, :, :48]  # 64 x 48: not square, so rows and columns cannot be swapped unseen


def test_pixel_region_relation_is_the_one_the_forward_uses():
    """The K x h x w weights equal the paper's w_ik computed by hand from the head's own layers, sum to 1 per
    pixel, and leave the model in the mode it had."""
    model, image = _trained_ocr()
    weights = ht.inspect.pixel_region_relation(model, image)
    assert model.training and weights.shape == (4, 16, 12)
    assert torch.allclose(weights.sum(0), torch.ones(16, 12), atol=1e-5) and weights.std() > 0.05
    model.eval()
    block = model.ocr_distri_head.object_context_block
    with torch.no_grad():
        feats = ht.heads.concat_branches(model.forward_features(image[None]), model.align_corners)
        pixels = model.conv3x3_ocr(feats)
        proxy = model.ocr_gather_head(pixels, model.aux_head(feats))
        query = block.f_pixel(pixels).flatten(2).transpose(1, 2)  # HW x Ck
        key = block.f_object(proxy).flatten(2)  # Ck x K
        by_hand = torch.softmax(query @ key / 256 ** 0.5, dim=-1)[0]  # HW x K, key_channels 256
    assert torch.allclose(weights, by_hand.T.reshape(4, 16, 12), atol=1e-6)
    assert torch.allclose(weights[:, 2, 7], by_hand[2 * 12 + 7], atol=1e-6)  # pixel (2, 7) is row 2 * w + 7 of HW
    with pytest.raises(ValueError, match="takes one image, got a batch of 2: pass image"):
        ht.inspect.pixel_region_relation(model, torch.randn(2, 3, 64, 96))
    with pytest.raises(TypeError, match="needs an HRNet-OCR model.*head='ocr'"):
        ht.inspect.pixel_region_relation(ht.create_model("w18_small_v1", head="segmentation"), image)


def test_with_scale_2_the_relation_is_over_the_pooled_grid():
    weights = ht.inspect.pixel_region_relation(*_trained_ocr(scale=2))
    assert weights.shape == (4, 8, 6) and torch.allclose(weights.sum(0), torch.ones(8, 6), atol=1e-5)
    assert weights.std() > 0.05
    # a side whose 1/4 map is odd (68 -> 17 -> pooled to 8): the image is drawn at its scale, 8 pixels a cell,
    # so its last 4 rows, which no cell covers, fall outside the grid rather than stretching it
    model, image = _trained_ocr(scale=2)
    taller = torch.nn.functional.pad(image, (0, 0, 0, 4))
    figure = ht.viz.plot_pixel_attention(ht.inspect.pixel_region_relation(model, taller), 0, 0, taller)
    assert list(figure.axes[0].images[0].get_extent()) == [0, 6.0, 8.5, 0]


def test_the_pixel_attention_explorer_shows_the_picked_pixel():
    import matplotlib.pyplot as plt

    model, image = _trained_ocr()
    names = ["ground", "small", "large", "line"]
    explorer = ht.widgets.pixel_attention_explorer(model, image, names)
    weights = explorer.weights
    assert (explorer.row.value, explorer.col.value, explorer.row.max, explorer.col.max) == (8, 6, 15, 11)
    for row, col in ((2, 10), (12, 3), (8, 6)):
        explorer.row.value, explorer.col.value = row, col
        bars = [p.get_height() for p in explorer.figure.axes[1].patches]
        assert np.allclose(bars, weights[:, row, col].numpy())
        top = int(weights[:, row, col].argmax())
        assert explorer.text.startswith(f"pixel ({row}, {col}) attends most to {names[top]} ({weights[top, row, col]:.3f}); then ")
        assert explorer.figure.axes[2].get_title() == f"every pixel's weight for {names[top]}"
    with pytest.raises(ValueError, match=r"pixel \(16, 0\) is outside the 16x12 grid: row 0 to 15"):
        ht.viz.plot_pixel_attention(weights, 16, 0)
    with pytest.raises(ValueError, match="names has 3 entries for 4 regions"):
        ht.viz.plot_pixel_attention(weights, 0, 0, names=["a", "b", "c"])
    with pytest.raises(TypeError, match="K x h x w tensor of inspect.pixel_region_relation"):
        ht.viz.plot_pixel_attention(weights[0], 0, 0)
    with pytest.raises(ValueError, match=r"row must be a non-negative integer, got 2.5 \(float\)"):
        ht.viz.plot_pixel_attention(weights, 2.5, 0)
    with pytest.raises(TypeError, match="names must be a list of names"):
        ht.viz.plot_pixel_attention(weights, 0, 0, names="abc")
    plt.close("all")


def test_on_equal_weights_the_explorer_text_and_figure_name_the_same_region():
    """An untrained head gives every region 1/K: the text and the map agree on the first (region order)."""
    torch.manual_seed(0)
    model = HRNetOCR("w18_small_v1", num_classes=3, mid_channels=32, key_channels=16)
    explorer = ht.widgets.pixel_attention_explorer(model, torch.randn(3, 64, 64), ["road", "sky", "car"])
    assert explorer.weights.std() < 1e-6  # equal, as said
    assert "attends most to road " in explorer.text and explorer.text.endswith("then sky 0.333, car 0.333")
    assert explorer.figure.axes[2].get_title() == "every pixel's weight for road"


def test_ohem_cross_entropy_called_directly_checks_what_ocr_loss_checks():
    """The bad-input audit called it alone: labels out of range gave 'Target 5 is out of bounds', align_corners='no'
    torch's overload list, a list of logits "'list' object has no attribute 'shape'", threshold=5 was taken."""
    from hrnet_teach.ocr import ohem_cross_entropy

    logits, target = torch.randn(1, 3, 4, 4), torch.zeros(1, 8, 8, dtype=torch.long)
    with pytest.raises(ValueError, match=r"the labels run from 5 to 5 .* there are 3 classes"):
        ohem_cross_entropy(logits, torch.full((1, 8, 8), 5))
    with pytest.raises((TypeError, ValueError), match=r"align_corners"):
        ohem_cross_entropy(logits, target, align_corners="no")
    with pytest.raises(TypeError, match=r"takes one logits tensor, got a list of 2: .*ocr_loss\(outputs, target, ohem=True\)"):
        ohem_cross_entropy([logits, logits], target)
    with pytest.raises(ValueError, match=r"^threshold must be a probability in \[0, 1\]"):
        ohem_cross_entropy(logits, target, threshold=5)
    with pytest.raises(ValueError, match=r"min_kept"):
        ohem_cross_entropy(logits, target, min_kept=-1)


def test_class_weights_from_numpy_float64_are_taken_as_the_logits_dtype():
    """torch.from_numpy(np.array([...])) is float64: cross_entropy said 'expected scalar type Float but found Double'."""
    import numpy as np

    from hrnet_teach.ocr import ocr_loss, ohem_cross_entropy

    logits, target = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 8, 8))
    weight64 = torch.from_numpy(np.array([1.0, 2.0, 0.5]))
    expected = ocr_loss([logits, logits], target, weight=weight64.float())
    assert torch.equal(ocr_loss([logits, logits], target, weight=weight64), expected)
    assert torch.isfinite(ohem_cross_entropy(logits, target, weight=weight64))
