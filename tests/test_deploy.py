"""hrnet_teach.deploy and the input checks: traceable models, BatchNorm folding, fast(),
torch.export and ONNX (run by ONNX Runtime) for every head, and each pitfall's message.

Weights and BatchNorm statistics are randomised first (:func:`randomize`): with the
official initialisation (conv weights N(0, 0.001)) every head's output is nearly its
last bias, and a wrong fold or export could still match.
"""
from __future__ import annotations

import contextlib
import math
import re
import warnings

import pytest
import torch
from torch import nn

import hrnet_teach as ht
from hrnet_teach import deploy
from hrnet_teach.backbone import is_tracing

RTOL = 1e-4  # the bar: outputs equal to 1e-4 relative (max |a-b| / max |a|)
HEADS = ["segmentation", "pose", "pyramid", "classification", None, "ocr", "features"]
# the input sizes each head is checked at; the second is never seen by the exporter
SIZES = {"pyramid": [(128, 128), (128, 192)], "default": [(64, 64), (96, 128)]}


def build(head, variant="w18_small_v1", **kwargs):
    if head == "features":
        model = ht.create_model(variant, features_only=True, **kwargs)
    else:
        model = ht.create_model(variant, head=head, **kwargs)
    return randomize(model).eval()


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """He-normal convs (activations keep their scale) and random BatchNorm statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels // m.groups * math.prod(m.kernel_size)
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(1.0 / fan_in))
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model


def sizes(head):
    return SIZES.get(head, SIZES["default"])


def eager(model, x):
    with torch.no_grad():
        return model(x)


# ------------------------------------------------------------------ input checks (issue 12)
@pytest.fixture(scope="module")
def seg():
    return build("segmentation")


@pytest.mark.parametrize("dtype, fragment", [
    (torch.float16, r"got a float16 input but its weights are float32.*x\.float\(\).*model\.half\(\)"),
    (torch.float64, r"got a float64 input but its weights are float32.*x\.float\(\).*model\.double\(\)"),
    (torch.uint8, r"got a uint8 input.*Raw pixels \(0-255\).*/ 255"),
])
def test_input_dtype_gets_clear_error(seg, dtype, fragment):
    x = (torch.rand(1, 3, 32, 32) * 255).to(dtype)
    with pytest.raises(TypeError, match=fragment):
        seg(x)


def test_autocast_input_passes_the_dtype_check(seg):
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        assert seg(torch.randn(1, 3, 32, 32, dtype=torch.bfloat16)).shape == (1, 19, 8, 8)


def test_pyramid_too_small_gets_clear_error():
    pyramid = build("pyramid")
    with pytest.raises(ValueError, match=r"32x32: the pyramid head pools the 1/4 map by up to 16 .* at least 64"):
        pyramid(torch.randn(1, 3, 32, 32))
    assert len(eager(pyramid, torch.randn(1, 3, 64, 64))) == 5


def test_training_batch_of_one_gets_clear_error():
    model = build("segmentation").train()
    with pytest.raises(ValueError, match=r"Training mode with 1 image\(s\) of 32x32: the coarsest branch is 1x1.*"
                                         r"batch of at least 2.*model\.eval\(\)"):
        model(torch.randn(1, 3, 32, 32))
    model(torch.randn(2, 3, 32, 32))  # two values per channel: fine
    model(torch.randn(1, 3, 64, 32))  # the 1/32 branch is 2x1: fine
    model.eval()(torch.randn(1, 3, 32, 32))  # running statistics: fine


# ------------------------------------------------------------------ tracing
def test_is_tracing_only_while_tracing():
    assert not is_tracing(torch.randn(1))
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(is_tracing(x))
            return x + 1

    torch.fx.symbolic_trace(Probe())
    torch.jit.trace(Probe(), torch.randn(2), check_trace=False)
    torch.export.export(Probe(), (torch.randn(2),))
    assert seen == [True, True, True]


def test_symbolic_trace_and_jit_trace_match_eager(seg):
    x = torch.randn(1, 3, 64, 96)
    graph = torch.fx.symbolic_trace(seg)
    assert deploy.max_relative_difference(eager(seg, x), eager(graph, x)) < 1e-6
    traced = torch.jit.trace(seg, x, check_trace=False)
    assert deploy.max_relative_difference(eager(seg, x), eager(traced, x)) < 1e-6
    # the checks are still there for eager calls
    with pytest.raises(ValueError, match="unsqueeze"):
        seg(torch.randn(3, 64, 64))


# ------------------------------------------------------------------ folding
@pytest.mark.parametrize("bias, affine", [(False, True), (True, True), (True, False)])
def test_fold_conv_bn_is_exact(bias, affine):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=bias)
    bn = nn.BatchNorm2d(6, affine=affine)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        if affine:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    bn.eval()
    folded = deploy.fold_conv_bn(conv, bn)
    x = torch.randn(2, 4, 9, 7)
    with torch.no_grad():
        assert torch.allclose(folded(x), bn(conv(x)), atol=1e-5, rtol=1e-5)
        if affine:  # PyTorch's own folding agrees
            reference = torch.nn.utils.fusion.fuse_conv_bn_eval(conv.eval(), bn)
            assert torch.allclose(folded.weight, reference.weight, atol=1e-6)
            assert torch.allclose(folded.bias, reference.bias, atol=1e-6)


def test_fold_refuses_batchnorm_without_running_statistics():
    with pytest.raises(ValueError, match="track_running_stats=False.*cannot be folded"):
        deploy.fold_conv_bn(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False))


def test_conv_bn_pairs_follow_the_data(seg):
    pairs = dict(deploy.conv_bn_pairs(seg))
    assert pairs["conv1"] == "bn1" and pairs["layer1.0.downsample.0"] == "layer1.0.downsample.1"
    assert pairs["stage4.0.fuse_layers.0.3.0"] == "stage4.0.fuse_layers.0.3.1"
    assert pairs["last_layer.0"] == "last_layer.1"  # a conv with its own bias, then BN
    bns = [n for n, m in seg.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert sorted(pairs.values()) == sorted(bns)  # every BatchNorm of HRNet follows a conv


# ------------------------------------------------------------------ fast()
@pytest.mark.parametrize("head", HEADS, ids=str)
def test_fast_matches_eager_and_leaves_the_model_alone(head):
    model = build(head)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    quick = deploy.fast(model)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in quick.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert type(quick) is type(model)  # same class: its input checks and attributes stay
    conv = next(m for m in quick.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    for size in sizes(head):
        x = torch.randn(1, 3, *size)
        assert deploy.max_relative_difference(eager(model, x), eager(quick, x)) < RTOL, size
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_fast_keeps_the_input_checks(seg):
    quick = deploy.fast(seg)
    with pytest.raises(TypeError, match="float16 input"):
        quick(torch.randn(1, 3, 32, 32).half())


def test_fast_compile_traces_through_dynamo(seg):
    """torch.compile's tracer (dynamo) over the folded channels-last copy; the "eager"
    backend keeps this test quick (inductor's code generation: ``bench --deploy``)."""
    torch._dynamo.reset()
    quick = deploy.fast(seg, compile=True, backend="eager", dynamic=False)
    x = torch.randn(1, 3, 64, 64)
    assert deploy.max_relative_difference(eager(seg, x), eager(quick, x)) < RTOL


def test_fast_refuses_training_mode_and_says_what_to_do():
    model = build("segmentation").train()
    with pytest.raises(RuntimeError, match=r"fast\(\): the model is in training mode.*model\.eval\(\)"):
        deploy.fast(model)
    assert model.training
    with pytest.raises(TypeError, match="expects a torch.nn.Module"):
        deploy.fast("w18")


def test_sync_batchnorm_is_replaced_in_the_copy_only():
    model = build("segmentation", norm_layer=nn.SyncBatchNorm)
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    copy = deploy.inference_copy(model)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in copy.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in copy.modules()) == sum(
        isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())  # untouched
    x = torch.randn(1, 3, 64, 64)
    assert deploy.max_relative_difference(eager(model, x), eager(deploy.fast(model), x)) < RTOL


# ------------------------------------------------------------------ sizes
def test_size_rules_per_head():
    rules = {h: (deploy.size_rule(build(h)), deploy.export_min_side(build(h))) for h in HEADS}
    assert rules["segmentation"] == rules["ocr"] == rules[None] == ((1, 1), 33)
    assert rules["pose"] == rules["classification"] == rules["features"] == ((32, 32), 64)
    assert rules["pyramid"] == ((32, 64), 128)


def test_size_the_head_cannot_take_gets_clear_error(tmp_path):
    pose = build("pose")
    with pytest.raises(ValueError, match=r"size 100x100: HRNetPose .* multiples of 32 .* e\.g\. 128x128") as caught:
        deploy.check_size(pose, (100, 100))
    # the rule is the export's: the message says so, since the eager model runs at a side just below 32m
    assert "for export" in str(caught.value) and "three sides just below a multiple of 32" in str(caught.value)
    # lesson 10 prints this beside its text on the dynamic export's 64: both minimums are said
    assert "at least 32 (64 for a dynamic export, see export_min_side)" in str(caught.value)
    with torch.no_grad():
        assert pose.eval()(torch.randn(1, 3, 95, 93)).shape[-2:] == (24, 24)
    with pytest.raises(ValueError, match="multiples of 32"):
        deploy.export_onnx(pose, tmp_path / "pose.onnx", example=torch.randn(2, 3, 96, 100))
    with pytest.raises(ValueError, match="at least 64.*dynamic=False"):
        deploy.export_program(pose, example=torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="batch of at least 2"):
        deploy.export_program(pose, example=torch.randn(1, 3, 64, 64))
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_program_of_another_model_fold_or_dynamic_is_refused(seg, tmp_path):
    """export_onnx(program=...) translates the program it is given: one of another model wrote a pose network under
    a segmentation file's metadata, and a static one a fixed-size file whose metadata said dynamic."""
    static = deploy.export_program(seg, dynamic=False)
    cases = [
        (dict(program=deploy.export_program(build("pose"), dynamic=False), dynamic=False), "exported from another model"),
        (dict(program=deploy.export_program(seg, fold=False, dynamic=False), dynamic=False), "or with another fold="),
        (dict(program=static), "dynamic=True, but the program was exported with dynamic=False: its sizes are fixed"),
        (dict(program=static, dynamic=False, exporter="torchscript"), "translated by the dynamo exporter only"),
        (dict(program="program.pt2"), "program must be what deploy.export_program(model) returns, got str"),
    ]
    for settings, says in cases:
        with pytest.raises((ValueError, TypeError), match=re.escape(says)):
            deploy.export_onnx(seg, tmp_path / "seg.onnx", **settings)
        assert not (tmp_path / "seg.onnx").exists()
    assert deploy._file_opset(deploy.export_onnx(seg, tmp_path / "seg.onnx", program=static, dynamic=False)) == 18


def test_a_meta_model_is_refused_before_its_program_is_traced():
    with torch.device("meta"):
        model = ht.create_model("w18_small_v1", num_classes=4).eval()
    with pytest.raises(ValueError, match=r"built on the meta device.*export_program\(\) would trace weights that hold "
                                         r"no numbers"):
        deploy.export_program(model, dynamic=False)


# ------------------------------------------------------------------ export: every head
@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS, ids=str)
def test_export_program_and_onnx_match_at_two_sizes(head, tmp_path):
    """torch.export, then ONNX from that program, run by ONNX Runtime (CPU): at the
    export size and at a size the exporter never saw."""
    model = build(head)
    first, unseen = sizes(head)
    program = deploy.export_program(model, example=torch.randn(2, 3, *first))
    path = deploy.export_onnx(model, tmp_path / "model.onnx", program=program, example=torch.randn(2, 3, *first))
    session = deploy.onnx_session(path)
    assert session.get_inputs()[0].shape[0] == "batch"
    assert all(isinstance(d, str) for d in session.get_inputs()[0].shape[2:])  # height, width symbolic
    for size in (first, unseen):
        x = torch.randn(1, 3, *size)
        reference = eager(model, x)
        assert deploy.max_relative_difference(reference, eager(program.module(), x)) < RTOL, ("program", size)
        assert deploy.max_relative_difference(reference, deploy.run_onnx(session, x)) < RTOL, ("onnx", size)


# ------------------------------------------------------------------ the pitfalls
class Resize(nn.Module):
    def __init__(self, align_corners: bool) -> None:
        super().__init__()
        self.align_corners = align_corners

    def forward(self, x, like):
        return nn.functional.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=self.align_corners)


@contextlib.contextmanager
def _quiet_torchscript_exporter():
    """torch 2.13 warns that the TorchScript exporter is deprecated; 2.5.1 does not (both measured)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


def test_minimum_opset_for_align_corners_is_11(tmp_path):
    """Measured with PyTorch's TorchScript exporter: opset 10 refuses align_corners=True
    bilinear resizing, opset 11 (Resize with coordinate_transformation_mode) exports it."""
    x, like = torch.randn(1, 2, 4, 5), torch.randn(1, 2, 8, 10)
    with _quiet_torchscript_exporter(), pytest.raises(Exception, match="align_corners == True"):
        torch.onnx.export(Resize(True), (x, like), str(tmp_path / "10.onnx"), opset_version=10, dynamo=False)
    with _quiet_torchscript_exporter():
        torch.onnx.export(Resize(True), (x, like), str(tmp_path / "11.onnx"), opset_version=11, dynamo=False)
    session = deploy.onnx_session(tmp_path / "11.onnx")  # `like` gives only its (fixed) size: folded away
    feeds = {i.name: {"x": x, "like": like}[i.name].numpy() for i in session.get_inputs()}
    out = session.run(None, feeds)[0]
    assert torch.allclose(torch.from_numpy(out), Resize(True)(x, like), atol=1e-6)
    assert deploy.MIN_OPSET == 11


def test_opset_too_old_gets_clear_error_before_exporting(seg, tmp_path):
    with pytest.raises(ValueError, match=r"opset 10 is too old.*from opset 11.*refuse align_corners=True.*opset >= 11") as info:
        deploy.export_onnx(seg, tmp_path / "seg.onnx", opset=10)
    assert not list(tmp_path.iterdir())
    # the shipped checkpoint resizes with align_corners=False: the message must not say every model uses True
    assert "in the segmentation code" not in str(info.value)


@pytest.mark.slow
def test_oldest_opset_exports_align_corners_true(seg, tmp_path):
    """Opset 11 through the TorchScript exporter (the dynamo one stops at 15), dynamic sizes."""
    assert seg.align_corners is True
    path = deploy.export_onnx(seg, tmp_path / "seg11.onnx", opset=11)
    assert deploy._file_opset(path) == 11
    for size in sizes("segmentation"):
        x = torch.randn(1, 3, *size)
        assert deploy.max_relative_difference(eager(seg, x), deploy.run_onnx(path, x)) < RTOL


@pytest.mark.slow
def test_the_dynamo_exporter_reaches_opset_15_and_torchscript_takes_14(seg, tmp_path, monkeypatch):
    """Where DYNAMO_MIN_OPSET comes from: asked for 15, the dynamo exporter converts HRNet's file down to 15; asked for
    14, onnx's converter has no adapter for its Shape ops and the file stays at 18, so export_onnx takes TorchScript."""
    used = []
    export = torch.onnx.export
    monkeypatch.setattr(torch.onnx, "export", lambda *a, **k: used.append(k["dynamo"]) or export(*a, **k))
    assert deploy.DYNAMO_MIN_OPSET == 15
    path = deploy.export_onnx(seg, tmp_path / "seg15.onnx", opset=15)
    assert used == [True] and deploy._file_opset(path) == 15
    x = torch.randn(1, 3, *sizes("segmentation")[0])
    assert deploy.max_relative_difference(eager(seg, x), deploy.run_onnx(path, x)) < RTOL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = deploy.export_program(seg)
        torch.onnx.export(program, (x,), str(tmp_path / "seg14.onnx"), opset_version=14, dynamo=True,
                          dynamic_shapes=deploy.dynamic_shapes(seg), external_data=False)
    assert deploy._file_opset(tmp_path / "seg14.onnx") == 18  # not converted: the floor is 15


def test_training_mode_export_is_refused(tmp_path):
    model = build("pose").train()
    with pytest.raises(RuntimeError, match=r"export_onnx\(\): the model is in training mode.*model\.eval\(\)"):
        deploy.export_onnx(model, tmp_path / "pose.onnx")
    with pytest.raises(RuntimeError, match=r"export_program\(\): the model is in training mode"):
        deploy.export_program(model)


def test_unwritable_paths_get_clear_errors(seg, tmp_path):
    blocker = tmp_path / "a_file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(FileNotFoundError, match=r"folder .*missing does not exist.*mkdir\(parents=True\)"):
        deploy.export_onnx(seg, tmp_path / "missing" / "seg.onnx")
    with pytest.raises(IsADirectoryError, match="is a folder: give a file name"):
        deploy.export_onnx(seg, tmp_path)
    with pytest.raises((FileNotFoundError, PermissionError), match="cannot write"):
        deploy.export_onnx(seg, blocker / "seg.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file.txt"]


@pytest.mark.slow
def test_static_export_and_run_onnx_checks(tmp_path):
    """A fixed-shape file says so when fed another size; a dynamic pose file refuses
    sizes its head cannot take (the rule is in the file's metadata)."""
    seg = build("segmentation")
    fixed = deploy.export_onnx(seg, tmp_path / "fixed.onnx", dynamic=False, exporter="torchscript")
    x = torch.randn(1, 3, 64, 64)
    assert deploy.max_relative_difference(eager(seg, x), deploy.run_onnx(fixed, x)) < RTOL
    with pytest.raises(ValueError, match="fixed shape.*dynamic=True"):
        deploy.run_onnx(fixed, torch.randn(1, 3, 96, 128))
    pose = deploy.export_onnx(build("pose"), tmp_path / "pose.onnx", exporter="torchscript")
    meta = deploy.onnx_session(pose).get_modelmeta().custom_metadata_map
    assert meta["hrnet_teach.size_multiple"] == "32" and meta["hrnet_teach.model"] == "HRNetPose"
    with pytest.raises(ValueError, match="multiples of 32"):
        deploy.run_onnx(pose, torch.randn(1, 3, 64, 80))


# ------------------------------------------------------------------ bad input to the deploy functions
@pytest.fixture(scope="module")
def conv_files(tmp_path_factory):
    """One-conv ONNX files (quick to write): "dynamic" (batch, height, width symbolic, with a pose file's
    size rule in its metadata) and "fixed" (1, 3, 64, 64)."""
    import onnx

    folder = tmp_path_factory.mktemp("onnx")
    files = {"dynamic": folder / "dynamic.onnx", "fixed": folder / "fixed.onnx"}
    axes = {"x": {0: "batch", 2: "height", 3: "width"}, "y": {0: "batch", 2: "height", 3: "width"}}
    with warnings.catch_warnings(), deploy.quiet_torchscript_log():
        warnings.simplefilter("ignore")
        for name, path in files.items():
            torch.onnx.export(nn.Conv2d(3, 2, 1).eval(), (torch.randn(1, 3, 64, 64),), str(path), input_names=["x"],
                              output_names=["y"], dynamic_axes=axes if name == "dynamic" else None, dynamo=False)
    proto = onnx.load(str(files["dynamic"]))
    for key, value in {"hrnet_teach.model": "HRNetPose", "hrnet_teach.size_multiple": "32",
                       "hrnet_teach.size_minimum": "64"}.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(files["dynamic"]))
    return files


@pytest.mark.parametrize("shape, fragment", [
    ((1, 64, 64, 3), r"input \(1, 64, 64, 3\): this file takes \(B, 3, H, W\); the channels come last.*"
                     r"x\.permute\(0, 3, 1, 2\)"),
    ((1, 1, 64, 64), r"input \(1, 1, 64, 64\): this file takes \(B, 3, H, W\); convert the image to RGB \(grey"),
    ((1, 4, 64, 64), r"input \(1, 4, 64, 64\): this file takes \(B, 3, H, W\); .*RGBA: x\[:, :3\]"),
    ((64, 64, 3), r"4-dimensional input.*x\.permute\(2, 0, 1\)\.unsqueeze\(0\)"),
])
@pytest.mark.parametrize("kind", ["dynamic", "fixed"])
def test_run_onnx_names_the_channels_before_the_size_rules(conv_files, kind, shape, fragment):
    """Before: "exported for the fixed shape" even for a dynamic file, or the pose size rule for (64, 3)."""
    with pytest.raises(ValueError, match=fragment):
        deploy.run_onnx(conv_files[kind], torch.randn(shape))
    assert deploy.run_onnx(conv_files[kind], torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)  # good input


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_run_onnx_refuses_raw_pixels_instead_of_casting_them(conv_files, dtype):
    """Before: x.float() ran 0-255 pixels through the model and returned outputs of the wrong scale."""
    x = (torch.rand(1, 3, 64, 64) * 255).to(dtype)
    with pytest.raises(TypeError, match=r"run_onnx got a (uint8|int64|bool) input.*Raw pixels \(0-255\).*"
                                        r"hrnet_teach\.assets\.to_tensor\(image\)"):
        deploy.run_onnx(conv_files["dynamic"], x)


def test_onnx_session_takes_one_provider_name_and_names_a_missing_one(conv_files, monkeypatch):
    """Before: a str was read letter by letter, and a missing provider fell back to the CPU in silence."""
    import onnxruntime as ort

    assert deploy.onnx_session(conv_files["fixed"], "CPUExecutionProvider").get_providers() == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ValueError, match=r"providers \['CUDAExecutionProvider'\] are not available in this "
                                         r"onnxruntime \(it has \['CPUExecutionProvider'\]\).*onnxruntime-gpu"):
        deploy.onnx_session(conv_files["fixed"], providers="CUDAExecutionProvider")
    with pytest.raises(TypeError, match="providers must be a provider's name or a list of them"):
        deploy.onnx_session(conv_files["fixed"], providers=1)


@pytest.mark.parametrize("threads", [0.5, -1, 0, "2"])
def test_onnx_session_refuses_a_thread_count_that_is_not_a_positive_integer(conv_files, threads):
    with pytest.raises(ValueError, match=r"threads must be a positive integer"):
        deploy.onnx_session(conv_files["fixed"], threads=threads)
    assert deploy.onnx_session(conv_files["fixed"], threads=1) is not None


def test_export_onnx_with_the_path_and_the_model_swapped(seg, tmp_path):
    """Before: a TypeError from deep inside pathlib, about an HRNetSegmentation."""
    for path in (str(tmp_path / "m.onnx"), tmp_path / "m.onnx"):
        with pytest.raises(TypeError, match=r"export_onnx\(model, path\): got a path first and a model second "
                                            r"\(swapped\?\)"):
            deploy.export_onnx(path, seg)
    with pytest.raises(TypeError, match=r"export_onnx\(\) expects a torch.nn.Module, got the variant name 'w18'"):
        deploy.export_onnx("w18", tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_export_onnx_to_a_folder_that_does_not_exist_yet(seg, tmp_path, monkeypatch):
    """Before: Path('exports/') dropped the slash, and the export wrote a file named exports."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"'exports/' ends in a slash but is not a folder: give a file "
                                                r"name, e.g\. exports/model\.onnx"):
        deploy.export_onnx(seg, "exports/")
    with pytest.raises(IsADirectoryError, match="is a folder: give a file name"):  # an existing folder, as before
        deploy.export_onnx(seg, str(tmp_path) + "/")
    with pytest.raises(TypeError, match="path must be a str or Path naming the file to write"):
        deploy.check_writable(None)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("wrong, said", [("model", r"got HRNetSegmentation: pass model\(x\)"), (None, "got NoneType"),
                                         ("text", "got str$"), ([torch.ones(1), None], "got NoneType")])
def test_max_relative_difference_names_what_is_not_an_output(seg, wrong, said):
    """Before: bare TypeErrors from torch.as_tensor (or from iterating over a model)."""
    wrong = seg if wrong == "model" else wrong
    with pytest.raises(TypeError, match=r"max_relative_difference compares outputs \(tensors or arrays, or lists "
                                        r"of them\); " + said):
        deploy.max_relative_difference(wrong, torch.ones(1))


def test_fast_refuses_a_flag_that_is_not_a_bool_and_compile_options_without_compile(seg):
    """Before: compile='no' is truthy and compiled; mode= without compile=True was dropped in silence."""
    with pytest.raises(TypeError, match=r"fast\(\): compile must be True or False, got 'no'"):
        deploy.fast(seg, compile="no")
    with pytest.raises(TypeError, match=r"fast\(\): fold must be True or False, got 1"):
        deploy.fast(seg, fold=1)
    with pytest.raises(TypeError, match=r"fast\(\): mode= applies only with compile=True"):
        deploy.fast(seg, mode="max-autotune")


# ------------------------------------------------------------------ bench --deploy, gpu_check.sh
def test_bench_deploy_small_prints_every_way(capsys):
    from hrnet_teach import bench

    assert bench.main(["--deploy", "--variants", "w18_small_v1", "--sizes", "64x64", "--no-compile",
                       "--threads", "1", "--repeats", "2", "--device", "cpu"]) == 0  # the default is a GPU when there is one
    out = capsys.readouterr().out
    for way in ("eager", "fast", "onnxruntime"):
        assert way in out
    assert "load average" in out and "1 threads" in out


def test_deploy_bench_amp_row_and_missing_onnx_provider(monkeypatch):
    """The rows gpu_check.sh prints on a GPU, exercised on the CPU: fast under bfloat16
    autocast (its difference is bfloat16's, far above float32's), and a GPU without
    onnxruntime-gpu gets a note instead of a crash."""
    from hrnet_teach import deploy_bench

    result = deploy_bench.measure_model("w18_small_v1", "segmentation", (64, 64), repeats=1, compile=False,
                                        onnx=False, threads=1, amp=True)
    ways = result["ways"]
    assert list(ways) == ["eager", "fast", "fast+bf16"] and result["device"] == "cpu"
    assert ways["fast"]["max_rel_diff"] < 1e-4 < ways["fast+bf16"]["max_rel_diff"] < 0.2
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    providers, why = deploy_bench._onnx_providers(torch.device("cuda"))
    assert providers is None and "onnxruntime-gpu" in why
    assert deploy_bench._onnx_providers(torch.device("cpu"))[0] == ["CPUExecutionProvider"]
    result["notes"] = [why]
    assert "note: onnxruntime: no CUDA provider" in deploy_bench.format_results([result])


def test_deploy_bench_turns_a_failing_optional_way_into_a_note(monkeypatch):
    """torch.compile without a working compiler (or bfloat16 on an older GPU) skips its row with a
    note; the bench goes on with the other ways instead of ending in a traceback."""
    from hrnet_teach import deploy_bench

    real_fast = deploy.fast

    def fast(model, compile=False, **kwargs):
        if compile:  # as torch.compile reports it: the cause inside a BackendCompilerFailed-like wrapper
            class Wrapped(RuntimeError):
                inner_exception = RuntimeError("no C++ compiler found\n(the rest of a long error)")
            raise Wrapped("backend='inductor' raised:\n" + str(Wrapped.inner_exception))
        return real_fast(model, **kwargs)

    monkeypatch.setattr(deploy_bench.deploy, "fast", fast)
    result = deploy_bench.measure_model("w18_small_v1", "segmentation", (64, 64), repeats=1, compile=True,
                                        onnx=False, threads=1)
    assert list(result["ways"]) == ["eager", "fast"]
    assert result["notes"] == ["fast+compile: failed here (RuntimeError: no C++ compiler found), row skipped"]
    assert "note: fast+compile: failed here" in deploy_bench.format_results([result])


class _FakeGPU:
    """torch.cuda on a CPU-only machine, as deploy_bench sees it: a GPU of the given compute capability whose
    peak-memory calls are logged, so a test can see the order of resets and reads."""

    def __init__(self, monkeypatch, capability):
        self.log = []
        for name, fake in {"is_available": lambda: True, "get_device_capability": lambda device=None: capability,
                           "synchronize": lambda device=None: None, "empty_cache": lambda: None,
                           "is_bf16_supported": lambda including_emulation=True: capability >= (8, 0),
                           "reset_peak_memory_stats": lambda device=None: self.log.append("reset"),
                           "max_memory_allocated": self.read}.items():
            monkeypatch.setattr(torch.cuda, name, fake)

    def read(self, device=None):
        self.log.append("read")
        return 2**20 * len(self.log)


@pytest.mark.parametrize("capability, amp", [((7, 5), "fast+fp16"), ((8, 0), "fast+bf16"), ((9, 0), "fast+bf16")])
def test_deploy_bench_amp_row_is_float16_below_ampere_and_each_way_has_its_own_peak(monkeypatch, capability, amp):
    """A T4 (7.5) has no bfloat16 hardware (its bf16 convolutions skip cuDNN): the AMP row is float16 there.
    The GPU's peak is reset before each way, so a row's peak MiB is its own, not an earlier model's."""
    from hrnet_teach import deploy_bench

    gpu = _FakeGPU(monkeypatch, capability)
    assert deploy_bench.amp_dtype(torch.device("cuda")) == (torch.float16 if amp == "fast+fp16" else torch.bfloat16)
    assert deploy_bench.amp_dtype(torch.device("cpu")) == torch.bfloat16
    model, x = build("segmentation"), torch.randn(1, 3, 64, 64)  # on the CPU: only the cuda bookkeeping is faked
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # autocast("cuda") on a CPU-only build: disabled, with a warning
        ways, _, memory, notes = deploy_bench._ways(model, x, torch.device("cuda"), False, False, True, 1)
    assert list(ways) == ["eager", "fast", amp] and notes == []
    assert gpu.log == ["read"] + ["reset", "read"] * 2  # eager's peak is measure_model's, reset before the model
    assert memory == {"eager": 1.0, "fast": 3.0, amp: 5.0}


@pytest.mark.parametrize("available, capability, flag, expected", [
    (False, None, True, False), (True, (7, 5), True, False), (True, (8, 6), True, True), (True, (8, 0), False, False)])
def test_tf32_only_on_an_ampere_or_newer_gpu_with_the_flag_on(monkeypatch, available, capability, flag, expected):
    """TF32 starts with Ampere (8.0): a T4 gets no TF32 note, whatever torch's flag (True by default) says."""
    from hrnet_teach import deploy_bench

    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", flag)
    assert deploy_bench.tf32_convolutions("cuda") is expected


class _FellBack:
    """An ONNX Runtime session asked for CUDA that fell back to the CPU (its CUDA libraries did not load)."""

    def __init__(self, path, options=None, providers=None):
        import onnxruntime as ort

        self.real = ort.capi.onnxruntime_inference_collection.InferenceSession(
            path, options, providers=["CPUExecutionProvider"])

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_onnx_session_refuses_a_cuda_session_that_fell_back_to_the_cpu(conv_files, monkeypatch):
    """onnxruntime-gpu lists the CUDA provider even when its libraries cannot load; the session then runs
    on the CPU with only a warning, and a "CUDA" timing would be the CPU's."""
    import onnxruntime as ort

    from hrnet_teach import deploy_bench

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", _FellBack)
    with pytest.raises(RuntimeError, match=r"could not start CUDAExecutionProvider and fell back to "
                                           r"CPUExecutionProvider: check.*CUDA.*pip uninstall -y onnxruntime && "
                                           r"pip install onnxruntime-gpu.*restart.*torch.version.cuda"):
        deploy.onnx_session(conv_files["fixed"], ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert deploy.onnx_session(conv_files["fixed"]).get_providers() == ["CPUExecutionProvider"]  # asked for the CPU

    monkeypatch.setattr(deploy_bench, "_onnx_providers", lambda device: (["CUDAExecutionProvider"], ""))
    result = deploy_bench.measure_model("w18_small_v1", "segmentation", (64, 64), repeats=1, compile=False,
                                        amp=False, threads=1)
    assert list(result["ways"]) == ["eager", "fast"]
    [note] = result["notes"]
    assert note.startswith("onnxruntime: failed here (RuntimeError: ONNX Runtime could not start "
                           "CUDAExecutionProvider and fell back to CPUExecutionProvider") and note.endswith("row skipped")



def test_the_onnx_row_on_cuda_says_its_time_includes_host_copies(monkeypatch):
    """run_onnx goes through numpy: on a GPU the ONNX Runtime row also copies in and out, and says so."""
    import onnxruntime as ort

    from hrnet_teach import deploy_bench

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    providers, note = deploy_bench._onnx_providers(torch.device("cuda"))
    assert providers[0] == "CUDAExecutionProvider" and "host memory" in note and "numpy" in note
    assert deploy_bench._onnx_providers(torch.device("cpu")) == (["CPUExecutionProvider"], "")

def test_deploy_bench_targets_are_the_cpus():
    """The 2x/1e-4 targets were set on the CPU: a GPU row (TF32 alone puts fast 1e-3 from eager,
    measured on an H200) gets no target line, a CPU row does."""
    from hrnet_teach import deploy_bench

    way = {"latency_ms": 10.0, "ratio": 1.2, "setup_s": 0.1, "peak_rss_mib": 1.0, "max_rel_diff": 1.5e-3}
    row = {"variant": "w18_small_v2", "head": "segmentation", "size": [512, 1024], "notes": [],
           "ways": {"eager": dict(way, ratio=1.0), "fast": way}}
    assert "target fast >= 2.0x eager" in deploy_bench.format_results([dict(row, device="cpu")])
    assert "target" not in deploy_bench.format_results([dict(row, device="cuda:0")])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/gpu_check.sh there)")
def test_deploy_bench_on_cuda():
    from hrnet_teach import deploy_bench

    result = deploy_bench.measure_model("w18_small_v1", "segmentation", (64, 64), repeats=2, compile=False,
                                        device="cuda")
    amp = "fast+bf16" if torch.cuda.get_device_capability() >= (8, 0) else "fast+fp16"  # a T4 (7.5): float16
    assert result["device"].startswith("cuda") and amp in result["ways"], result["notes"]
    assert (deploy_bench.TF32_NOTE in result["notes"]) == deploy_bench.tf32_convolutions("cuda")
    assert result["ways"]["fast"]["max_rel_diff"] < 1e-2  # TF32 convolutions (on by default): 2e-3 measured on an H200


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_gpu_check_refuses_without_cuda():
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no CUDA GPU is visible" in done.stderr and "python -m pytest" in done.stderr


@pytest.mark.parametrize("env, said", [({"GPU_CHECK_SCALE": "1.5"}, "got '1.5'"), ({"GPU_CHECK_ZH": "some"}, "got 'some'")])
def test_gpu_check_refuses_a_bad_setting_before_anything_runs(env, said, tmp_path):
    """A scale of 1.5 used to make bash drop every step and report success."""
    import os
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.sh"
    done = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
    assert done.returncode == 2 and said in done.stderr and "whole number from 1" in done.stderr
    assert not (tmp_path / "out").exists()


def test_gpu_check_writes_where_it_says_not_to_an_exported_out(tmp_path):
    """Without OUT_DIR the results go to runs/gpu_check in the repository, even where the environment
    exports an OUT of its own (the lent GPU machines do). PYTHON=/bin/true stands in for a CUDA python:
    every step 'passes' at once, which is enough to see where the files go."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.sh", repo / "scripts")
    env = {**os.environ, "OUT": str(tmp_path / "exported"), "PYTHON": "/bin/true"}
    subprocess.run(["bash", str(repo / "scripts" / "gpu_check.sh")], capture_output=True, text=True, timeout=60,
                   env=env, cwd=tmp_path)
    assert (repo / "runs" / "gpu_check" / "summary.txt").exists()
    assert not (tmp_path / "exported").exists()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/gpu_check.sh there)")
@pytest.mark.parametrize("head", ["segmentation", "classification"])
def test_fast_on_cuda_matches_eager(head, monkeypatch):
    model = build(head).cuda()
    x = torch.randn(1, 3, 64, 64, device="cuda")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # restored after: later GPU tests keep TF32
    assert deploy.max_relative_difference(eager(model, x), eager(deploy.fast(model), x)) < RTOL


_REFUSED_EXPORT = """
import torch, torch.nn.functional as F, tempfile, os
from hrnet_teach import deploy
class Resize(torch.nn.Module):
    def forward(self, x):
        return F.interpolate(x, size=(8, 10), mode="bilinear", align_corners=True)
path = os.path.join(tempfile.mkdtemp(), "r.onnx")
try:
    with {context}:
        torch.onnx.export(Resize(), (torch.randn(1, 2, 4, 5),), path, opset_version=10, dynamo=False)
except Exception as error:
    print("refused:", str(error).split(". ")[0])
"""


@pytest.mark.slow
@pytest.mark.parametrize("quiet", [False, True])
def test_a_refused_torchscript_export_prints_no_ir_graph_when_quiet(quiet):
    """torch prints the refused graph from C++ (Python's redirect cannot catch it); lesson 10 shows a refusal."""
    import subprocess
    import sys

    pytest.importorskip("onnx")
    context = "deploy.quiet_torchscript_log()" if quiet else "open(os.devnull)"
    out = subprocess.run([sys.executable, "-c", _REFUSED_EXPORT.format(context=context)], capture_output=True,
                         text=True, timeout=120).stdout
    assert "refused: Unsupported: ONNX export of operator upsample_bilinear2d" in out
    assert ("Torch IR graph" in out) is not quiet  # without it torch does print the graph: the test can fail
