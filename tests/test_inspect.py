"""hrnet_teach.inspect: data read from the real modules, checked against those modules."""
import re

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import hrnet_teach as ht
from hrnet_teach import inspect as hi
from hrnet_teach.config import HRNetConfig, StageConfig


def convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


# ------------------------------------------------------------------ fuse matrix
@pytest.mark.parametrize("variant, stage, module", [("w18_small_v1", "stage2", 0), ("w18", "stage3", 2), ("w48", "stage4", -1), ("w32", 4, 1)])
def test_fuse_matrix_matches_the_conv_layers(variant, stage, module):
    backbone = hi.meta_model(variant)
    hr = getattr(backbone, f"stage{hi.stage_number(stage)}")[module]
    matrix = hi.fuse_matrix(variant, stage, module)
    n = hr.num_branches
    assert len(matrix) == n and all(len(row) == n for row in matrix)
    for i, row in enumerate(matrix):
        for j, entry in enumerate(row):
            assert (entry.i, entry.j) == (i, j)
            op = hr.fuse_layers[i][j]
            if i == j:
                assert op is None and entry.kind == "identity" and entry.scale == 1 and entry.layers == []
                assert entry.in_channels == entry.out_channels == hr.out_channels[i]
                continue
            real = convs(op)
            assert entry.in_channels == real[0].in_channels == hr.out_channels[j]
            assert entry.out_channels == real[-1].out_channels == hr.out_channels[i]
            for conv, line in zip(real, entry.layers):
                assert f"{conv.in_channels}→{conv.out_channels}" in line
                assert f"conv{conv.kernel_size[0]}x{conv.kernel_size[1]}" in line
            if j > i:
                assert entry.kind == "upsample" and entry.scale == 2 ** (j - i)
                assert len(real) == 1 and real[0].kernel_size == (1, 1)
                assert entry.layers[0].endswith(", BN") and f"upsample ×{2 ** (j - i)}" in entry.layers[1]
                assert entry.relu_after == [False, False]
            else:
                assert entry.kind == "downsample" and entry.scale == 0.5 ** (i - j)
                assert len(real) == len(entry.layers) == entry.steps == i - j
                assert all(conv.stride == (2, 2) and "stride 2" in line for conv, line in zip(real, entry.layers))
                # a ReLU between the steps, none after the last: the module's ReLU follows the sum
                has_relu = [any(isinstance(m, nn.ReLU) for m in step.modules()) for step in op]
                assert entry.relu_after == has_relu == [True] * (i - j - 1) + [False]
                assert all(line.endswith(", ReLU") == relu for line, relu in zip(entry.layers, has_relu))


def test_fuse_matrix_reads_the_model_not_the_config():
    model = ht.create_model("w18_small_v1", head=None)
    hr = model.stage3[0]
    hr.fuse_layers[2][0][0][0] = nn.Conv2d(16, 16, kernel_size=5, stride=2, padding=2, bias=False)
    entry = hi.fuse_matrix(model, "stage3", 0)[2][0]
    assert entry.layers[0].startswith("conv5x5 stride 2, 16→16, BN, ReLU")


def test_fuse_matrix_names_the_norm_it_finds():
    with torch.device("meta"):
        model = ht.HRNet("w18_small_v1", norm_layer=nn.SyncBatchNorm)
    assert hi.fuse_matrix(model, "stage2")[1][0].layers == ["conv3x3 stride 2, 16→32, SyncBN"]


def test_fuse_matrix_one_row_without_multi_scale_output_and_none_without_fusion():
    with torch.device("meta"):
        pose = ht.create_model("w32", head="pose")
    last = hi.fuse_matrix(pose, "stage4", -1)
    assert len(last) == 1 and len(last[0]) == 4
    assert [e.kind for e in last[0]] == ["identity", "upsample", "upsample", "upsample"]
    assert len(hi.fuse_matrix(pose, "stage4", 0)) == 4  # only the last module drops outputs
    assert hi.fuse_matrix(ht.get_config("w18").replace(fusion=False), "stage3") == []


def test_fuse_matrix_rejects_bad_stage_and_module():
    with pytest.raises(ValueError, match="stage must be one of"):
        hi.fuse_matrix("w18", "stage5")
    with pytest.raises(ValueError, match="stage2 has 1 module"):
        hi.fuse_matrix("w18", "stage2", module=1)
    with pytest.raises(TypeError, match="not an HRNet model"):
        hi.fuse_matrix(nn.Conv2d(1, 1, 1))


def test_fuse_shapes_follow_the_tensor():
    table = hi.fuse_shapes("w48", "stage4", 0, i=3, j=0, image_size=(512, 256))
    assert [row["shape"] for row in table] == [(48, 128, 64), (48, 64, 32), (48, 32, 16), (384, 16, 8), (384, 16, 8)]
    up = hi.fuse_shapes("w18", "stage3", 1, i=0, j=2, image_size=(250, 250))
    # bilinear upsampling goes to branch 0's exact size, even when 2**k does not divide it
    sizes = {name: shapes for name, shapes in hi.stage_shapes("w18", (250, 250)).items()}
    assert up[0]["shape"] == sizes["stage3"][2] and up[-1]["shape"] == (18, *sizes["stage3"][0][1:])
    with pytest.raises(ValueError, match="i must be 0..2"):
        hi.fuse_shapes("w18", "stage3", 0, i=3, j=0)


# ----------------------------------------------------------------- transitions
def test_transitions_of_w18():
    t1 = hi.transitions("w18", "stage2")
    assert [(e.kind, e.source, e.in_channels, e.out_channels) for e in t1] == [("adapt", 0, 256, 18), ("new", 0, 256, 36)]
    assert t1[0].layers == ["conv3x3, 256→18, BN, ReLU"] and t1[1].layers == ["conv3x3 stride 2, 256→36, BN, ReLU"]
    t3 = hi.transitions("w18", "stage4")
    assert [e.kind for e in t3] == ["pass", "pass", "pass", "new"] and t3[3].source == 2
    assert t3[3].path == "transition3[3]" and t3[3].relu_after == [True]


def test_transitions_read_a_two_step_birth():
    config = HRNetConfig(
        stage1=StageConfig(1, 1, "BOTTLENECK", (1,), (16,)),
        stage2=StageConfig(1, 2, "BASIC", (1, 1), (8, 16)),
        stage3=StageConfig(1, 2, "BASIC", (1, 1), (8, 16)),
        stage4=StageConfig(1, 4, "BASIC", (1, 1, 1, 1), (8, 16, 32, 64)),
    )
    entries = hi.transitions(config, "stage4")
    assert [e.kind for e in entries] == ["pass", "pass", "new", "new"]
    real = convs(hi.meta_model(config).transition3[3])
    assert entries[3].layers == [f"conv3x3 stride 2, {c.in_channels}→{c.out_channels}, BN, ReLU" for c in real]
    assert len(entries[3].layers) == 2 and entries[3].source == 1


# -------------------------------------------------------------------- features
def test_capture_features_shapes_values_and_a_model_left_as_it_was():
    torch.manual_seed(0)
    model = ht.create_model("w18_small_v1", head="segmentation", num_classes=3)
    model.train()
    model.layer1.eval()  # a mixed state must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    image = torch.randn(1, 3, 64, 96)
    features = hi.capture_features(model, image)

    assert list(features) == ["stem", "layer1", "stage2", "stage3", "stage4"]
    expected = hi.stage_shapes(model, (64, 96))
    for name, shapes in expected.items():
        assert [tuple(t.shape[1:]) for t in features[name]] == shapes
    assert features["stem"][0].shape == (1, 64, 16, 24) and features["layer1"][0].shape == (1, 128, 16, 24)

    assert model.training and not model.layer1.training and model.stage2.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks

    model.eval()
    with torch.no_grad():
        stem = model.stem(image)
        final = model.forward_features(image)
    assert torch.equal(features["stem"][0], stem)  # a clone taken before layer1's in-place ReLUs
    assert all(torch.equal(a, b) for a, b in zip(features["stage4"], final))
    assert all(not t.requires_grad and t.device.type == "cpu" for ts in features.values() for t in ts)


def test_capture_features_takes_a_pil_image_and_rejects_bad_input():
    from hrnet_teach.assets import sample_photo

    model = ht.create_model("w18_small_v1", head=None)
    features = hi.capture_features(model, sample_photo((64, 64)))
    assert features["stage4"][3].shape == (1, 128, 2, 2)
    with pytest.raises(ValueError, match="3 x H x W"):
        hi.capture_features(model, torch.zeros(1, 1, 64, 64))
    with pytest.raises(TypeError, match="hrnet_teach model"):
        hi.capture_features(nn.Conv2d(3, 3, 1), torch.zeros(1, 3, 8, 8))


# ------------------------------------------------------------------------ costs
def totals(model, size):
    with FlopCounterMode(display=False) as counter:
        hi.meta_call(model, torch.empty(1, 3, *size, device="meta"))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


@pytest.mark.parametrize("variant, head, size", [("w18_small_v1", "segmentation", (256, 512)), ("w18", None, (128, 128)), ("w30", "classification", (224, 224)), ("w32", "pose", (256, 192))])
def test_cost_rows_add_up_to_the_whole_model(variant, head, size):
    rows = hi.cost_breakdown(variant, size, head=head)
    model = hi.meta_model(variant, head)
    params, macs = totals(model, size)
    assert sum(r.params for r in rows) == params
    assert sum(r.macs for r in rows) == macs
    assert "other" not in [r.part for r in rows]  # every op was found in a part
    parts = [r.part for r in rows]
    assert parts[:4] == ["stem", "layer1", "transition1", "stage2 branch 0"]
    assert "stage4 branch 3" in parts and "stage3 fusion" in parts and "transition3" in parts
    assert (parts[-1].startswith("head")) == (head is not None)
    assert all(r.macs > 0 and r.params > 0 for r in rows if r.branch is not None or r.part.endswith("fusion"))


def test_cost_rows_match_hand_counts():
    rows = {r.part: r for r in hi.cost_breakdown("w18", (256, 256))}
    # stem: conv 3->64 at 128x128 and conv 64->64 at 64x64, 3x3 each
    assert rows["stem"].macs == 64 * 3 * 9 * 128 * 128 + 64 * 64 * 9 * 64 * 64
    # a stage-4 branch 3: 3 modules x 4 BasicBlocks x 2 convs 144->144 3x3 at 8x8
    assert rows["stage4 branch 3"].macs == 3 * 4 * 2 * 144 * 144 * 9 * 8 * 8
    backbone = hi.meta_model("w18")
    fusion = sum(p.numel() for hr in backbone.stage3 for p in hr.fuse_layers.parameters())
    assert rows["stage3 fusion"].params == fusion and rows["stage3 fusion"].macs > 0


def test_cost_of_a_real_model_equals_its_meta_twin():
    model = ht.create_model("w18_small_v1", head="segmentation", num_classes=19)
    real = hi.cost_breakdown(model, (128, 128))
    assert [(r.part, r.params, r.macs) for r in real] == [(r.part, r.params, r.macs) for r in hi.cost_breakdown("w18_small_v1", (128, 128), head="segmentation")]
    assert next(model.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="head applies"):
        hi.cost_breakdown(model, (128, 128), head="pose")
    assert "stage2 fusion" in real.to_text() and "<table>" in real._repr_html_()


# ------------------------------------------------------------------ shape tables
def test_branch_table_against_the_modules():
    rows = hi.branch_table("w48", (512, 1024))
    backbone = hi.meta_model("w48")
    assert [(r["stage"], r["branch"]) for r in rows][:3] == [("stage1", 0), ("stage2", 0), ("stage2", 1)]
    assert len(rows) == 1 + 2 + 3 + 4
    assert rows[0]["channels"] == 256 and (rows[0]["height"], rows[0]["width"]) == (128, 256)
    shapes = hi.stage_shapes("w48", (512, 1024))
    for row in rows[1:]:
        assert (row["channels"], row["height"], row["width"]) == shapes[row["stage"]][row["branch"]]
        assert row["resolution"] == f"1/{2 ** (row['branch'] + 2)}"
        stage = getattr(backbone, row["stage"])
        assert row["params"] == sum(p.numel() for hr in stage for p in hr.branches[row["branch"]].parameters())
    assert rows[-1]["resolution"] == "1/32" and rows[-1]["blocks"] == 12


def test_shape_summary_shows_every_branch_of_a_list():
    hr = hi.meta_model("w18").stage3[0]
    table = hi.shape_summary(hr, [(1, 18, 64, 64), (1, 36, 32, 32), (1, 72, 16, 16)], depth=1)
    assert isinstance(table, hi.Table)
    assert table[0]["output"] == "[1, 18, 64, 64], [1, 36, 32, 32], [1, 72, 16, 16]"
    layers = [r["layer"].strip() for r in table]
    assert {"branches.0", "branches.2", "fuse_layers.2.0", "fuse_layers.0.2"} <= set(layers)
    assert next(r for r in table if r["layer"].strip() == "fuse_layers.2.0")["output"] == "[1, 72, 16, 16]"

    backbone = hi.shape_summary(ht.create_model("w18_small_v1", head=None), (1, 3, 64, 64), depth=1)
    assert isinstance(backbone, hi.Table)  # it returns a list: our table, not torchinfo's
    assert backbone[0]["output"].count("[") == 4


def test_shape_summary_uses_torchinfo_for_one_tensor():
    import torchinfo

    stats = hi.shape_summary(ht.BasicBlock(18, 18), (1, 18, 32, 32))
    assert isinstance(stats, torchinfo.ModelStatistics) and stats.total_params == 2 * (18 * 18 * 9 + 36)
    assert "Total mult-adds: " in str(stats) and "Units." not in str(stats)  # a count, not "(Units.MEGABYTES)"
    with pytest.raises(ValueError, match="batch, channels, height, width"):
        hi.shape_summary(ht.BasicBlock(18, 18), (18, 32))


def test_star_import_keeps_the_standard_inspect():
    import inspect as std_inspect

    namespace = {"inspect": std_inspect}
    exec("from hrnet_teach import *", namespace)
    assert namespace["inspect"] is std_inspect
    assert ht.inspect is hi  # still reachable by its full name


def test_positive_int_takes_numpy_and_torch_integers_refuses_floats_and_bools():
    import numpy as np

    from hrnet_teach._validate import positive_int

    assert positive_int("num_classes", np.int64(19)) == 19
    assert positive_int("num_classes", torch.tensor(19)) == 19
    assert type(positive_int("num_classes", np.int32(3))) is int
    for bad, fragment in [(224.7, "got 224.7 (float)"), (True, "got True"), (0, "got 0"), ("19", "got '19' (str)"),
                          (torch.tensor([1, 2]), "must be a positive integer")]:
        with pytest.raises(ValueError, match=re.escape(fragment)):
            positive_int("num_classes", bad)


def test_image_size_floats_are_refused_not_truncated():
    with pytest.raises(ValueError, match=r"image_size height must be a positive integer, got 224\.7 \(float\)"):
        hi.stage_shapes("w18_small_v1", image_size=(224.7, 224))
    with pytest.raises(ValueError, match=r"image_size must be \(height, width\)"):
        hi.branch_table("w18_small_v1", image_size=224)
    import numpy as np

    assert hi.stage_shapes("w18_small_v1", (np.int64(64), 64)) == hi.stage_shapes("w18_small_v1", (64, 64))


def test_module_index_and_its_older_name():
    assert hi.fuse_matrix("w18", "stage3", module_index=1) == hi.fuse_matrix("w18", "stage3", module=1)
    with pytest.raises(ValueError, match="module_index must be 0..0"):
        hi.fuse_matrix("w18", "stage2", module_index=1)


def test_shape_summary_refuses_float_sizes_and_negative_depth():
    block = ht.BasicBlock(8, 8)
    with pytest.raises(ValueError, match=r"input size height must be a positive integer, got 16\.5 \(float\)"):
        hi.shape_summary(block, (1, 8, 16.5, 16))
    with pytest.raises(ValueError, match="depth must be a non-negative integer, got -1"):
        hi.shape_summary(block, (1, 8, 16, 16), depth=-1)
    with pytest.raises(ValueError, match=r"input sizes must be \(batch, channels, height, width\)"):
        hi.shape_summary(block, (8, 16, 16))
