"""``create_model(v, features_only=True)`` against numbers recorded from timm's features_only HRNet.

timm is not needed here: ``timm.create_model("hrnet_w18", features_only=True, feature_location=...)``
was built once in a scratch folder (tests/data/README.md) and two files were recorded from it:

- ``timm_features_keys.json``: per feature_location and variant, the sha256 and count of the
  state dict's "key shape" lines, timm's ``feature_info.get_dicts()``, and the full ordered
  listing for w18_small_v1 (timm's ``hrnet_w18_small``);
- ``timm_features_outputs.json``: summaries of timm's five maps on the deterministic weights and
  input of test_official_parity.py (:func:`summarise_maps` below, run by the recording script).
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from test_official_parity import (
    deterministic_input,
    deterministic_state,
    keyshape_lines,
    keyshape_sha256,
    summarise,
)

import hrnet_teach as ht
from hrnet_teach.features import FEATURE_LOCATIONS, HRNetFeatures
from hrnet_teach.weights import load_weights

DATA = Path(__file__).parent / "data"
TOLERANCE = 1e-5  # relative to the size of the recorded values
LOCATION_NAMES = {"incre": "incre", "": "none"}  # feature_location -> its entry in the keys file


@functools.cache
def recorded(name: str) -> dict:
    return json.loads((DATA / f"timm_features_{name}.json").read_text())


def summarise_maps(maps) -> list[dict]:
    """:func:`summarise` plus what a post-ReLU map needs: a sum of squares, a sum weighted by the
    flat index (so a permutation of channels or pixels shows), and a slice (channels 0-3, top-left 2x2)."""
    out = summarise(maps)
    for entry, t in zip(out, maps):
        flat = t.detach().double().flatten()
        weights = torch.arange(flat.numel(), dtype=torch.float64) % 7 - 3
        entry["sq_sum"] = (flat * flat).sum().item()
        entry["weighted_sum"] = (flat * weights).sum().item()
        entry["slice"] = t.detach()[0, :4, :2, :2].double().flatten().tolist()
    return out


def features(variant: str, location: str, device: str | None = None) -> torch.nn.Module:
    if device is None:
        return ht.create_model(variant, features_only=True, feature_location=location)
    with torch.device(device):
        return ht.create_model(variant, features_only=True, feature_location=location)


def zeros_from_listing(listing) -> dict:
    """A state dict with exactly timm's keys and shapes (as a timm checkpoint has them)."""
    return {k: torch.zeros(s, dtype=torch.long if k.endswith("num_batches_tracked") else torch.float32)
            for k, s in listing}


# ------------------------------------------------------------------ keys and maps
@pytest.mark.parametrize("location", FEATURE_LOCATIONS)
def test_state_dict_keys_and_shapes_equal_timm(location):
    """All nine variants, on the meta device."""
    expected = recorded("keys")["locations"][LOCATION_NAMES[location]]
    assert set(expected["sha256"]) == set(ht.VARIANTS)
    for variant in ht.VARIANTS:
        state = features(variant, location, device="meta").state_dict()
        assert len(state) == expected["count"][variant], (location, variant)
        assert keyshape_sha256(state) == expected["sha256"][variant], f"{location!r} {variant}: keys differ from timm's"


@pytest.mark.parametrize("location", FEATURE_LOCATIONS)
def test_w18_small_v1_listing_in_timm_order(location):
    listing = recorded("keys")["locations"][LOCATION_NAMES[location]]["w18_small_v1"]
    expected = [f"{k} {','.join(map(str, s))}" for k, s in listing]
    ours = keyshape_lines(features("w18_small_v1", location, device="meta").state_dict())
    for position, (a, b) in enumerate(zip(ours, expected)):
        assert a == b, f"{location!r}: entry {position} is {a!r}, timm has {b!r}"
    assert len(ours) == len(expected)


def test_head_parts_are_exactly_timms():
    """incre mode keeps incre_modules and nothing else of the classification head; '' keeps none."""
    backbone = {k.split(".")[0] for k in ht.create_model("w18_small_v1", head=None).state_dict()}
    for location, head_parts in (("incre", {"incre_modules"}), ("", set())):
        listing = recorded("keys")["locations"][LOCATION_NAMES[location]]["w18_small_v1"]
        assert {k.split(".")[0] for k, _ in listing} == backbone | head_parts, location


@pytest.mark.parametrize("location", FEATURE_LOCATIONS)
def test_timm_state_dict_loads_strictly(location):
    listing = recorded("keys")["locations"][LOCATION_NAMES[location]]["w18_small_v1"]
    timm_state = zeros_from_listing(listing)
    model = features("w18_small_v1", location)
    report = load_weights(model, timm_state, strict=True, verbose=False)
    assert report.ok and report.loaded == len(timm_state)
    assert all(float(v.abs().sum()) == 0 for v in model.state_dict().values())
    assert list(model.state_dict()) == [k for k, _ in listing]  # and ours loads into timm's: the same keys


@pytest.mark.parametrize("location", FEATURE_LOCATIONS)
def test_feature_info_equals_timm(location):
    expected = recorded("keys")["locations"][LOCATION_NAMES[location]]["feature_info"]
    for variant in ht.VARIANTS:
        info = features(variant, location, device="meta").feature_info
        assert info.get_dicts() == expected[variant], variant
        assert info.reduction() == [2, 4, 8, 16, 32]
        width = ht.get_config(variant).stage4.num_channels[0]  # C
        branches = [128, 256, 512, 1024] if location == "incre" else [width, 2 * width, 4 * width, 8 * width]
        assert info.channels() == [64, *branches], variant


@pytest.mark.parametrize("location", FEATURE_LOCATIONS)
def test_maps_have_the_declared_channels_and_strides(location):
    model = features("w18_small_v1", location).eval()
    with torch.no_grad():
        maps = model(deterministic_input((2, 3, 64, 96)))
    assert [tuple(m.shape) for m in maps] == [
        (2, info["num_chs"], 64 // info["reduction"], 96 // info["reduction"]) for info in model.feature_info
    ]


# ------------------------------------------------------------------ outputs
def output_cases():
    return recorded("outputs")["cases"]


@pytest.mark.parametrize("case", output_cases(), ids=[c["id"] for c in output_cases()])
def test_outputs_equal_timm(case):
    """timm's five maps on the same deterministic weights; recorded differences were 0."""
    data = recorded("outputs")
    model = features(case["variant"], case["feature_location"]).eval()
    model.load_state_dict(deterministic_state(model, seed=data["weight_seed"]), strict=True)
    with torch.no_grad():
        got = summarise_maps(model(deterministic_input(case["input"], seed=data["input_seed"])))
    assert len(got) == len(case["outputs"]) == 5
    for level, (g, e) in enumerate(zip(got, case["outputs"])):
        assert g["shape"] == e["shape"], f"map {level}: shape {g['shape']} != timm's {e['shape']}"
        size = max(1.0, e["abs_sum"])
        for name, scale in (("sum", size), ("abs_sum", size), ("weighted_sum", 3 * size), ("sq_sum", max(1.0, e["sq_sum"]))):
            assert abs(g[name] - e[name]) <= TOLERANCE * scale, f"map {level}: {name} {g[name]} != timm's {e[name]}"
        for what in ("values", "slice"):
            scale = max(1.0, max(abs(v) for v in e[what]))
            for i, (a, b) in enumerate(zip(g[what], e[what])):
                assert abs(a - b) <= TOLERANCE * scale, f"map {level}: {what}[{i}] {a} != timm's {b}"


def test_recorded_outputs_are_not_trivial():
    """The recorded maps are not all zero (ReLU outputs could be), and 'incre' differs from ''."""
    for case in output_cases():
        for entry in case["outputs"]:
            assert entry["sq_sum"] > 0 and any(v != 0 for v in entry["slice"] + entry["values"]), case["id"]
    by_id = {c["id"]: c for c in output_cases()}
    assert by_id["w18-incre-64x64"]["outputs"][1]["sum"] != by_id["w18-none-64x64"]["outputs"][1]["sum"]


def test_branch_maps_are_the_backbone_with_nearest_fusion():
    """With feature_location='', maps 1-4 are the backbone's stage-4 outputs when it fuses with
    nearest upsampling (timm's and cls_hrnet's way); head=None fuses bilinearly and differs."""
    model = features("w18_small_v1", "").eval()
    state = deterministic_state(model)
    model.load_state_dict(state, strict=True)
    nearest = ht.HRNet("w18_small_v1", upsample="nearest").eval()
    bilinear = ht.create_model("w18_small_v1", head=None).eval()
    nearest.load_state_dict(state, strict=True)  # the same keys: the backbone's
    bilinear.load_state_dict(state, strict=True)
    x = deterministic_input((1, 3, 64, 64))
    with torch.no_grad():
        maps, same, fused = model(x), nearest(x), bilinear(x)
    for a, b in zip(maps[1:], same):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(maps[1], fused[0], rtol=1e-3, atol=1e-3)


def test_imagenet_checkpoint_loads_with_a_report_of_the_dropped_head():
    """timm loads its ImageNet weights into the feature model non-strictly; so do we, saying what is dropped."""
    imagenet = ht.create_model("w18_small_v1", head="classification").state_dict()  # timm's hrnet_w18_small keys
    for location, dropped in (("incre", ("downsamp_modules", "final_layer", "classifier")),
                              ("", ("incre_modules", "downsamp_modules", "final_layer", "classifier"))):
        model = features("w18_small_v1", location)
        with pytest.raises(ValueError, match="unexpected|Unexpected"):
            load_weights(model, imagenet, strict=True, verbose=False)
        report = load_weights(model, imagenet, strict=False, verbose=False)
        assert report.missing == []
        assert {k.split(".")[0] for k in report.unexpected} == set(dropped)


# ------------------------------------------------------------------ bad input
def test_features_only_with_a_head_is_an_error():
    with pytest.raises(ValueError, match="no head.*head='segmentation'"):
        ht.create_model("w18_small_v1", head="segmentation", features_only=True)
    assert isinstance(ht.create_model("w18_small_v1", head=None, features_only=True), HRNetFeatures)


@pytest.mark.parametrize("location", ["incr", "INCRE", None, "stage4"])
def test_unknown_feature_location_names_the_allowed_values(location):
    with pytest.raises(ValueError, match=r"Unknown feature_location.*'incre'.*''"):
        ht.create_model("w18_small_v1", features_only=True, feature_location=location)
    with pytest.raises(ValueError, match=r"Unknown feature_location"):
        HRNetFeatures("w18_small_v1", feature_location=location)


def test_feature_location_without_features_only_is_an_error():
    with pytest.raises(ValueError, match="only with features_only=True"):
        ht.create_model("w18_small_v1", feature_location="")


def test_head_arguments_with_features_only_are_an_error():
    with pytest.raises(TypeError, match="num_classes"):
        ht.create_model("w18_small_v1", features_only=True, num_classes=10)
    with pytest.raises(TypeError, match="True or False"):
        ht.create_model("w18_small_v1", features_only="incre")


def test_input_sides_must_be_multiples_of_32():
    model = features("w18_small_v1", "incre").eval()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.zeros(1, 3, 64, 70))
