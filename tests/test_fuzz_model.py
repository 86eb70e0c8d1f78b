"""Odd input to the model's building blocks, from the input audit (findings 4, 7, 17, 20, 23, 24, 32):
a clear error that names the argument and what to pass, before torch fails deep inside or, worse,
returns plausible tensors for the wrong question.

The forward checks of HighResolutionModule and Transition look at the list's length on every call
(free under any tracer) and at each branch's batch and channels in eager mode only; the tests at the
end check that fx, TorchScript tracing and good input still give what they gave before.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import hrnet_teach as ht
from hrnet_teach import _checks
from hrnet_teach import inspect as hi


@pytest.fixture(scope="module")
def hrm():
    torch.manual_seed(0)
    return ht.HighResolutionModule(2, ht.BasicBlock, [1, 1], [8, 16], [8, 16]).eval()


@pytest.fixture(scope="module")
def branches():
    torch.manual_seed(1)
    return torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8)


# ------------------------------------------------------------------ finding 4: the branch list
@pytest.mark.parametrize("count", [0, 1, 3])
def test_a_list_with_the_wrong_number_of_branches_is_refused(hrm, branches, count):
    a, b = branches
    x = [a, b, torch.randn(1, 32, 4, 4)][:count]
    with pytest.raises(ValueError, match=rf"HighResolutionModule takes a list of 2 tensors, one per branch "
                                         rf"\(finest first\), as it was built with num_inchannels \(8, 16\); got {count}"):
        hrm(x)


def test_a_single_tensor_is_told_to_pass_one_per_branch(hrm, branches):
    with pytest.raises(TypeError, match=r"got a single tensor of shape \(1, 8, 16, 16\): pass one tensor per branch"):
        hrm(branches[0])
    one = ht.HighResolutionModule(1, ht.BasicBlock, [1], [8], [8]).eval()
    with pytest.raises(TypeError, match=r"takes a list of 1 tensor, one per branch.*wrap it, \[x\]"):
        one(branches[0])
    with pytest.raises(TypeError, match=r"takes a list of 2 tensors.*got str"):
        hrm("x")


def test_mismatched_batches_channels_and_non_tensors_are_named_by_branch(hrm, branches):
    a, b = branches
    with pytest.raises(ValueError, match=r"branch 1 has batch 2 but branch 0 has batch 1: every branch holds the same"):
        hrm([a, torch.randn(2, 16, 8, 8)])  # it broadcast into outputs of batch 2
    with pytest.raises(ValueError, match=r"branch 1 has 8 channels, this module was built for 16 \(num_inchannels\[1\]\)"):
        hrm([a, torch.randn(1, 8, 8, 8)])
    with pytest.raises(TypeError, match=r"branch 1 is a NoneType, not a tensor"):
        hrm([a, None])
    with pytest.raises(ValueError, match=r"branch 0 has shape \(8, 16, 16\): each branch is a \(B, C, H, W\) tensor"):
        hrm([a[0], b])


def test_branch_sizes_that_fusion_cannot_add_are_named(branches):
    a, _ = branches
    bilinear = ht.HighResolutionModule(2, ht.BasicBlock, [1, 1], [8, 16], [8, 16]).eval()
    with pytest.raises(ValueError, match=r"branch 1 is 16x16 but branch 0 is 16x16: each branch has half the "
                                         r"resolution of the one before \(fusion's stride-2 convs give 8x8 here\)"):
        bilinear([a, torch.randn(1, 16, 16, 16)])
    assert bilinear([torch.randn(1, 8, 9, 5), torch.randn(1, 16, 5, 3)])[1].shape == (1, 16, 5, 3)  # ceil: odd sides
    nearest = ht.HighResolutionModule(2, ht.BasicBlock, [1, 1], [8, 16], [8, 16], upsample="nearest").eval()
    with pytest.raises(ValueError, match=r"branch 1 is 4x4 but branch 0 is 16x16: each branch has half"):
        nearest([a, torch.randn(1, 16, 4, 4)])
    unfused = ht.HighResolutionModule(2, ht.BasicBlock, [1, 1], [8, 16], [8, 16], fusion=False).eval()
    assert unfused([a, torch.randn(1, 16, 16, 16)])[1].shape == (1, 16, 16, 16)  # no fusion: any sizes


@pytest.mark.parametrize("coarse", [(16, 16), (8, 8), (5, 11), (16, 32)])
def test_a_one_row_bilinear_module_takes_any_coarser_sizes(branches, coarse):
    """multi_scale_output=False keeps fuse row 0 alone: no stride-2 convs, and bilinear upsampling to branch 0's
    own size, so any size of branch 1 adds up; the size check used to refuse all but 8x8, blaming convs it lacks."""
    a, _ = branches
    torch.manual_seed(2)
    one_row = ht.HighResolutionModule(2, ht.BasicBlock, [1, 1], [8, 16], [8, 16], multi_scale_output=False).eval()
    b = torch.randn(1, 16, *coarse)
    with torch.no_grad():
        out = one_row([a, b])
        unchecked = one_row.relu(one_row.fuse(0, [br(x) for br, x in zip(one_row.branches, (a, b))]))
    assert len(out) == 1 and torch.equal(out[0], unchecked) and out[0].shape == (1, 8, 16, 16)


def test_a_one_row_nearest_module_names_its_upsampling_not_stride_2_convs(branches):
    """One row with nearest fusion enlarges branch 1 by a fixed factor 2: that, not a stride-2 conv, needs 8x8."""
    a, b = branches
    one_row = ht.HighResolutionModule(2, ht.BasicBlock, [1, 1], [8, 16], [8, 16], multi_scale_output=False,
                                      upsample="nearest").eval()
    with pytest.raises(ValueError, match=r"branch 1 is 9x9 but branch 0 is 16x16: each branch has half the resolution "
                                         r"of the one before \(fusion's nearest upsampling enlarges each branch by a "
                                         r"fixed factor of 2 per step: 8x8 here\)") as info:
        one_row([a, torch.randn(1, 16, 9, 9)])
    assert "stride-2" not in str(info.value)
    assert one_row([a, b])[0].shape == (1, 8, 16, 16)


def test_transition_wants_one_input_per_branch_of_the_stage_before(branches):
    a, b = branches
    transition = ht.Transition([8, 16], [8, 16, 32]).eval()
    with pytest.raises(ValueError, match=r"Transition takes a list of 2 tensors.*pre_channels \(8, 16\); got 1"):
        transition([a])
    with pytest.raises(ValueError, match=r"branch 1 has 8 channels, this module was built for 16 \(pre_channels\[1\]\)"):
        transition([a, torch.randn(1, 8, 8, 8)])
    assert [tuple(t.shape) for t in transition([a, b])] == [(1, 8, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4)]


def test_good_lists_give_what_the_unchecked_loop_gave(hrm, branches):
    """The checks only raise: on good input the outputs are those of the loop without them (a tuple works too)."""
    a, b = branches
    with torch.no_grad():
        expected = [hrm.relu(hrm.fuse(i, [br(x) for br, x in zip(hrm.branches, (a, b))])) for i in range(2)]
        for given in ([a, b], (a, b)):
            assert all(torch.equal(y, e) for y, e in zip(hrm(given), expected))


@pytest.fixture()
def tensor_checks(monkeypatch):
    """Every call of the eager-only tensor checks, counted (a spy that still runs them)."""
    calls = []
    real = _checks._check_branch_tensors
    monkeypatch.setattr(_checks, "_check_branch_tensors", lambda *args: calls.append(1) or real(*args))
    return calls


@pytest.mark.filterwarnings("ignore")  # torch.jit.trace: deprecated, and lists at its output
def test_the_checks_stay_out_of_fx_and_jit_traces(hrm, branches, tensor_checks):
    """A check that ran on a tracer's values would raise (fx's Proxies) or freeze their sizes into the trace."""
    a, b = branches
    with torch.no_grad():
        hrm([a, b])
    assert tensor_checks, "the spy sees eager calls"
    tensor_checks.clear()
    graph = torch.fx.symbolic_trace(ht.create_model("w18_small_v1", head=None).eval())  # lists of Proxies inside
    traced = torch.jit.trace(hrm, ([a, b],), check_trace=False)
    assert not tensor_checks, "ran under symbolic_trace or jit.trace"
    with torch.no_grad():
        assert all(torch.equal(y, e) for y, e in zip(traced([a, b]), hrm([a, b])))
        assert len(graph(torch.randn(1, 3, 64, 64))) == 4


def test_the_checks_compile_without_a_graph_break(hrm, branches, tensor_checks):
    """torch.compile with fullgraph=True fails on any graph break: the length check is plain Python, and
    the tensor checks are skipped while dynamo traces (is_tracing). The eager backend: no C++ compiler needed."""
    a, b = branches
    torch._dynamo.reset()
    compiled = torch.compile(hrm, backend="eager", fullgraph=True)
    transition = ht.Transition([8, 16], [8, 16, 32]).eval()
    with torch.no_grad():
        out = compiled([a, b])
        moved = torch.compile(transition, backend="eager", fullgraph=True)([a, b])
        assert not tensor_checks, "ran while dynamo traced"
        expected = hrm([a, b])
    assert all(torch.equal(y, e) for y, e in zip(out, expected))
    assert [tuple(t.shape) for t in moved] == [(1, 8, 16, 16), (1, 16, 8, 8), (1, 32, 4, 4)]
    torch._dynamo.reset()


def test_random_branch_lists_either_run_right_or_raise_a_named_error():
    """Every list of up to 3 tensors drawn from good and bad branch shapes: no torch error and no silent result."""
    module = ht.HighResolutionModule(2, ht.BasicBlock, [1, 1], [4, 8], [4, 8]).eval()
    shapes = [(1, 4, 8, 8), (1, 8, 4, 4), (2, 8, 4, 4), (1, 4, 4, 4), (1, 8, 8, 8), (8, 4)]
    for count in range(4):
        for chosen in itertools.product(shapes, repeat=count):
            x = [torch.randn(s) for s in chosen]
            good = list(chosen) == shapes[:2]
            try:
                with torch.no_grad():
                    out = module(x)
            except (ValueError, TypeError) as error:
                assert not good and ("branch" in str(error)), (chosen, error)
            else:
                assert good, chosen
                assert [tuple(t.shape) for t in out] == [(1, 4, 8, 8), (1, 8, 4, 4)]


# ------------------------------------------------------------------ finding 7: switches given a string
@pytest.mark.parametrize("name", ["fusion", "align_corners", "multi_scale_output"])
def test_module_switches_refuse_a_string(name):
    allowed = r"True, False or None \(F.interpolate's default\)" if name == "align_corners" else "True or False"
    with pytest.raises(ValueError, match=rf"{name} must be {allowed}, got 'no' \(str\).*pass {name}=False"):
        ht.HighResolutionModule(2, ht.BasicBlock, [1, 1], [8, 16], [8, 16], **{name: "no"})


def test_align_corners_none_means_the_interpolate_default_everywhere():
    """None is allowed (the official code passes config values through), and kept as None."""
    assert ht.HighResolutionModule(2, ht.BasicBlock, [1, 1], [8, 16], [8, 16], align_corners=None).align_corners is None
    with torch.device("meta"):
        assert ht.HRNet("w18_small_v1", align_corners=None).stage2[0].align_corners is None
    with pytest.raises(ValueError, match=r"align_corners must be True, False or None .*got 'no'.*align_corners=False"):
        ht.HRNet("w18_small_v1", align_corners="no")


def test_backbone_and_meta_model_refuse_multi_scale_output_as_a_string():
    with pytest.raises(ValueError, match=r"multi_scale_output must be True or False, got 'no'"):
        ht.HRNet("w18_small_v1", multi_scale_output="no")
    with pytest.raises(ValueError, match=r"multi_scale_output must be True or False, got 'no'"):
        ht.create_model("w18_small_v1", head=None, multi_scale_output="no")
    with pytest.raises(ValueError, match=r"multi_scale_output must be True or False, got 'no'"):
        hi.meta_model("w18", multi_scale_output="no")
    assert len(hi.meta_model("w18_small_v1", multi_scale_output=False).stage4[-1].fuse_layers) == 1



def test_a_call_copied_from_the_official_constructor_is_told_about_fuse_method():
    """The official HighResolutionModule takes fuse_method sixth; here the sixth is multi_scale_output."""
    with pytest.raises(ValueError, match=r"multi_scale_output got 'SUM'.*official fuse_method.*by keyword"):
        ht.HighResolutionModule(2, ht.BasicBlock, [1, 1], [4, 8], [4, 8], "SUM")
    with pytest.raises(ValueError, match=r"multi_scale_output got 'SUM'.*official fuse_method"):
        ht.HighResolutionModule(2, ht.BasicBlock, [1, 1], [4, 8], [4, 8], "SUM", True)

# ------------------------------------------------------------------ finding 24: norm_layer
@pytest.mark.parametrize("norm_layer, said", [(None, "got None"), ("bn", "got 'bn'"),
                                              (nn.GroupNorm, "GroupNorm, which cannot be called as GroupNorm"),
                                              (nn.BatchNorm2d(3), "a BatchNorm2d instance")])
def test_a_norm_layer_that_cannot_be_called_as_one_is_named(norm_layer, said):
    with pytest.raises(TypeError, match=rf"norm_layer must be a class \(or function\) called as norm_layer\(channels, "
                                        rf"momentum=0.1\).*{said}.*lambda channels, momentum: nn.GroupNorm"):
        ht.create_model("w18_small_v1", norm_layer=norm_layer)
    with pytest.raises(TypeError, match="norm_layer must be a class"):
        ht.HRNet("w18_small_v1", norm_layer=norm_layer)


def test_norm_layers_that_fit_still_build():
    with torch.device("meta"):
        ht.create_model("w18_small_v1", norm_layer=lambda channels, momentum: nn.GroupNorm(8, channels))
        ht.create_model("w18_small_v1", norm_layer=nn.SyncBatchNorm)
        ht.create_model("w18_small_v1", norm_layer=nn.InstanceNorm2d)


# ------------------------------------------------------------------ finding 23: StageConfig entries
def test_stage_config_takes_numpy_integers_as_the_whole_numbers_they_are():
    stage = ht.StageConfig(np.int64(1), 2, "basic", np.array([2, 2]), [16, np.int32(32)])
    stage.validate("stage2")
    assert stage == ht.StageConfig(1, 2, "BASIC", [2, 2], [16, 32])
    assert all(type(v) is int for v in (*stage.num_blocks, *stage.num_channels, stage.num_modules))


def test_stage_config_counts_follow_the_package_s_one_whole_number_rule():
    """_validate.positive_int's rule: 0-d torch integers pass as ints; floats, strings and zero do not."""
    assert ht.StageConfig(torch.tensor(1), 2, "BASIC", [2, 2], [16, 32]).num_modules == 1
    for stage, said in [(ht.StageConfig(2.0, 2, "BASIC", [2, 2], [16, 32]), r"num_modules: must be a positive "
                                                                            r"integer, got 2.0$"),
                        (ht.StageConfig(1, 2, "BASIC", [2, 0], [16, 32]), r"num_blocks: entries must be positive "
                                                                          r"integers, got \[2, 0\]$"),
                        (ht.StageConfig(1, 2, "BASIC", [2, 2], [16, "32"]), r"num_channels: entries .*'32'\]$")]:
        with pytest.raises(ValueError, match=said):
            stage.validate("stage2")


def test_stage_config_refuses_bools_dicts_and_none_by_name():
    with pytest.raises(ValueError, match=r"stage2.num_channels: entries must be positive integers, got \[True, True\] "
                                         r"\(true/false in the YAML\?\)"):
        ht.StageConfig(1, 2, "BASIC", [2, 2], [True, True]).validate("stage2")
    with pytest.raises(ValueError, match=r"stage2.num_modules: must be a positive integer, got True \(true/false"):
        ht.StageConfig(True, 2, "BASIC", [2, 2], [16, 32]).validate("stage2")
    with pytest.raises(ValueError, match=r"num_blocks: expected a list with one entry per branch .*got a dict"):
        ht.StageConfig(1, 2, "BASIC", {1: 2, 2: 3}, [16, 32])
    with pytest.raises(ValueError, match=r"s.block: None is not a block"):
        ht.StageConfig(1, 2, None, [2, 2], [16, 32]).validate("s")


# ------------------------------------------------------------------ finding 17: sizes that fill memory
def test_huge_channel_and_repeat_counts_are_refused_before_allocating():
    with pytest.raises(ValueError, match=r"stage4.num_channels: 100000000 channels is far more than any HRNet.*"
                                         r"at most 4096"):
        ht.StageConfig(1, 4, "BASIC", [2] * 4, [16, 32, 64, 100_000_000]).validate("stage4")
    with pytest.raises(ValueError, match=r"stage2.num_blocks: 1000 is far more than any HRNet.*at most 64"):
        ht.StageConfig(1, 2, "BASIC", [2, 1000], [16, 32]).validate("stage2")
    ht.get_config("w64")  # the widest published variant still passes


def test_huge_image_sizes_are_refused_with_the_limit():
    with pytest.raises(ValueError, match=r"image_size 1000000000 is far larger than the course's images.*"
                                         r"at most 8192 pixels a side"):
        hi.stage_shapes("w18", (10**9, 10**9))
    assert hi.stage_shapes("w18_small_v1", (64, 8192))  # the limit itself is taken


# ------------------------------------------------------------------ finding 20: OCR and an empty batch
def test_ocr_model_names_an_empty_batch():
    model = ht.create_model("w18_small_v1", head="ocr", num_classes=4).eval()
    with pytest.raises(ValueError, match=r"HRNetOCR got an empty batch \(0 images of 64x64\)"):
        model(torch.randn(0, 3, 64, 64))


# ------------------------------------------------------------------ finding 32: head and head_options
def test_create_model_names_a_head_that_is_not_a_name():
    with pytest.raises(TypeError, match=r"head must be a name such as 'segmentation'.*got a list: \['pose'\]"):
        ht.create_model("w18", head=["pose"])


def test_head_options_must_be_a_dict_of_arguments_some_head_takes():
    cfg = ht.get_config("w18_small_v1")
    with pytest.raises(ValueError, match=r"head_options must be a dict of create_model arguments.*got 5"):
        cfg.replace(head_options=5)
    with pytest.raises(ValueError, match=r"head_options name 'num_clases', which no head takes; did you mean "
                                         r"'num_classes'\?"):
        ht.create_model(cfg.replace(head_options={"num_clases": 4}))
    with torch.device("meta"):
        model = ht.create_model(cfg.replace(head_options={"num_classes": 4}))
    assert model.last_layer[-1].out_channels == 4
