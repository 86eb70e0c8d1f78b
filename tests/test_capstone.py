"""Lesson 11, the capstone: the reference network loads the shipped checkpoint strictly and
equals the package's model; each typical assembly slip gets the stage and the message meant
for it; unwritten pieces say which one still raises NotImplementedError; the figure degrades to a message."""
import re
from types import SimpleNamespace

import matplotlib.pyplot as plt  # headless: conftest sets MPLBACKEND=Agg
import pytest
import torch
from torch import nn

import hrnet_teach as ht
from hrnet_teach.exercises import capstone
from hrnet_teach.exercises import lesson11 as ex

# The six slips the issue names, and the stage whose message must catch each.
ISSUE_SLIPS = {
    "no ReLU after the fuse sum": "Step 4",
    "fuse_layers built [j][i]": "Step 1",
    "new branch built from branch 0": "Step 2",
    "head concatenates before upsampling": "Step 3",
    "align_corners flipped": "Step 4",
    "new branch with the wrong channels": "Step 2",
}


def test_reference_network_loads_strictly_and_equals_the_package():
    result = ex.capstone_network.check(ex.MyHRNet)
    assert result.passed, result.message
    assert "435 tensors load strictly" in result.message
    assert "largest difference 0" in result.message and "100%" in result.message


def test_reference_keys_and_shapes_are_the_official_ones_in_order():
    mine = [(k, tuple(v.shape)) for k, v in ex.MyHRNet().state_dict().items()]
    with torch.device("meta"):
        package = ht.create_model("w18_small_v1", head="segmentation", num_classes=4)
    assert mine == [(k, tuple(v.shape)) for k, v in package.state_dict().items()]
    assert [k for k, _ in mine] == list(capstone.checkpoint()["model"])


def test_reference_outputs_equal_the_package_model():
    net = ex.MyHRNet().eval()
    net.load_state_dict(capstone.checkpoint()["model"], strict=True)
    images, _ = capstone.scenes()
    with torch.no_grad():
        assert torch.equal(net(images), capstone.package_model()(images))


def test_the_checkpoint_says_align_corners_false_and_the_package_model_uses_it():
    assert capstone.checkpoint()["align_corners"] is False
    assert capstone.checkpoint_align_corners() is False
    assert capstone.package_model().align_corners is False


@pytest.mark.parametrize("slip", sorted(ISSUE_SLIPS))
def test_issue_slips_get_their_stage_and_message(slip):
    build, fragment = ex.NETWORK_MISTAKES[slip]
    result = ex.capstone_network.check(build)
    assert not result.passed
    assert result.message.startswith(ISSUE_SLIPS[slip]) or f" {ISSUE_SLIPS[slip]} " in result.message, result.message
    assert fragment in result.message, result.message


@pytest.mark.parametrize("slip", sorted(set(ex.NETWORK_MISTAKES) - set(ISSUE_SLIPS)))
def test_other_slips_get_their_message(slip):
    build, fragment = ex.NETWORK_MISTAKES[slip]
    result = ex.capstone_network.check(build)
    assert not result.passed and fragment in result.message, result.message


def test_every_network_slip_is_a_catalogued_wrong_answer():
    catalogued = {id(answer) for answer, _ in ex.capstone_network.wrong_answers}
    assert all(id(build) in catalogued for build, _ in ex.NETWORK_MISTAKES.values())
    assert len(ex.NETWORK_MISTAKES) >= 6


def test_keys_grouped_by_module_with_counts():
    net = ex.MyHRNet()
    net.stage3[0].fuse_layers[0][1] = None  # one fuse op left out: 6 tensors (conv weight, BN's five)
    message = ex.capstone_network.check(net).message
    assert message.startswith("Step 1 (key names): 6 keys of the checkpoint missing from yours")
    assert "stage3.0.fuse_layers: 6 keys missing (e.g. stage3.0.fuse_layers.0.1.0.weight)" in message


def test_stages_come_in_debugging_order():
    """A network with a key slip and an output slip hears about the keys first."""
    def both():
        net = ex.NETWORK_MISTAKES["no ReLU after the fuse sum"][0]()
        net.conv1 = nn.Conv2d(3, 64, 3, 2, 1)  # with a bias: an unexpected key
        return net

    assert ex.capstone_network.check(both).message.startswith("Step 1 (key names)")


def test_first_differing_module_is_named_with_the_size_of_the_difference():
    message = ex.capstone_network.check(ex.NETWORK_MISTAKES["no ReLU after the fuse sum"][0]).message
    assert "stage2.0 (HighResolutionModule) gives other numbers" in message  # the first of three modules
    assert "largest difference" in message


def test_official_in_place_branch_loop_passes_with_a_note():
    """The official forward writes the branch outputs into the caller's list: harmless, so it passes, noted."""
    import types

    def make(num_classes=4, align_corners=False):
        net = ex.MyHRNet(num_classes, align_corners)
        for module in net.modules():
            if isinstance(module, ex.HighResolutionModule):
                module.forward = types.MethodType(ex._module_official_in_place, module)
        return net

    result = ex.capstone_network.check(make)
    assert result.passed, result.message
    assert "writes into the list it is given" in result.message


def _unwritten_piece(*args, **kwargs):
    raise NotImplementedError  # your code here


class _NetWithAnUnwrittenPiece(nn.Module):
    def __init__(self, num_classes=4, align_corners=False):
        super().__init__()
        self.layer1 = _unwritten_piece()


class _NetWithAnUnwrittenForward(ex.MyHRNet):
    def forward(self, x):
        raise NotImplementedError  # your code here


def test_unwritten_pieces_say_not_answered_and_which():
    message = ex.capstone_network.check(_NetWithAnUnwrittenPiece).message
    assert "still raises NotImplementedError" in message and "`_unwritten_piece`" in message
    message = ex.capstone_network.check(_NetWithAnUnwrittenForward).message
    assert "still raises NotImplementedError" in message and "_NetWithAnUnwrittenForward.forward" in message


def test_an_unwritten_method_is_named_with_its_class_before_python_3_11():
    # Python 3.9 and 3.10 code objects have no co_qualname: the class comes from the frame's `self`
    old_code = SimpleNamespace(co_name="forward", co_filename="<cell>")
    frame = SimpleNamespace(f_code=old_code, f_locals={"self": _NetWithAnUnwrittenForward.__new__(_NetWithAnUnwrittenForward)})
    assert capstone._qualname(frame) == "_NetWithAnUnwrittenForward.forward"
    assert capstone._qualname(SimpleNamespace(f_code=old_code, f_locals={})) == "forward"


def test_show_segmentation_degrades_to_a_message_then_draws(capsys):
    assert ex.show_segmentation(_NetWithAnUnwrittenPiece) is None
    out = capsys.readouterr().out
    assert "does not load and match yet" in out and "NotImplementedError" in out
    figure = ex.show_segmentation(ex.MyHRNet)
    assert [ax.get_title() for ax in figure.axes] == ["held-out scene", "true mask", "your HRNet's segmentation"]
    plt.close(figure)


def test_pieces_checked_against_the_checkpoint():
    for exercise in (ex.layer1, ex.hr_module, ex.stage):
        result = exercise.check(exercise.reference)
        assert result.passed and "load strictly" in result.message, result.message


def test_checkpoint_loader_prefers_weights_when_it_has_them(monkeypatch):
    from hrnet_teach import train, weights

    monkeypatch.setattr(weights, "read_checkpoint", lambda path: {}, raising=False)
    monkeypatch.setattr(weights, "load_shapes_model", lambda: None, raising=False)
    assert capstone._checkpoint_module() is weights
    monkeypatch.delattr(weights, "load_shapes_model")  # before the move: train's
    assert capstone._checkpoint_module() is train


def test_the_notebook_names_every_piece_it_checks():
    import json
    from pathlib import Path

    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "11_capstone.ipynb"
    source = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code")
    for call in ("ex.layer1.check(make_layer)", "lesson03.fuse_op.check(make_fuse_op)",
                 "ex.hr_module.check(HighResolutionModule)", "lesson04.transition_op.check(make_transition)",
                 "lesson05.transition_forward.check(transition_forward)", "ex.stage.check(make_stage)",
                 "ex.head.check(v2_head)", "ex.capstone_network.check(MyHRNet)", "ex.show_segmentation(MyHRNet)"):
        assert call in source, call


def _forward(head):
    """MyHRNet whose forward ends with ``head(features, last_layer, align_corners)`` instead of v2_head."""
    import types

    def make():
        net = ex.MyHRNet()
        net.forward = types.MethodType(ex._net_forward_with(head_fn=head), net)
        return net
    return make


def _raises_in_stage(self, x):
    raise ValueError("a slip inside the module")


def _module_raising():
    import types

    net = ex.MyHRNet()
    net.stage3[0].forward = types.MethodType(_raises_in_stage, net.stage3[0])
    return net


@pytest.mark.parametrize("build, fragment", [
    (_forward(lambda y, last, a: [ex.v2_head(y, last, a)]), "a list instead of a tensor"),
    (_forward(lambda y, last, a: nn.functional.interpolate(ex.v2_head(y, last, a), scale_factor=4.0)),
     "no upsampling"),
    (_forward(lambda y, last, a: ex.v2_head(y, nn.Identity(), a)), "never calls last_layer"),
    (_module_raising, "raised ValueError inside stage3.0: a slip inside the module"),
], ids=["returns a list", "upsamples the logits", "skips last_layer", "a module raises"])
def test_odd_networks_get_a_message_not_an_exception(build, fragment):
    result = ex.capstone_network.check(build)
    assert not result.passed and fragment in result.message, result.message


def test_piece_checks_use_the_same_stages():
    message = ex.hr_module.check(ex._module_patched("fuse", ex._net_fuse_ji)).message
    assert "raised RuntimeError inside stage3.0" in message and "fuse_layers[i][j](x[j])" in message
    message = ex.stage.check(ex._stage_module_list).message
    assert "nn.ModuleList" in message and "nn.Sequential" in message
    message = ex.layer1.check(ex._layer1_no_downsample).message
    assert message.startswith("Step 1 (key names)") and "layer1.0.downsample: 6 keys missing" in message


class _SlowNet(ex.MyHRNet):
    def forward(self, x):  # no torch work after the wait: a daemon thread inside torch at exit aborts Python
        import time

        time.sleep(1.0)


def test_a_forward_that_hangs_meets_the_time_limit(monkeypatch):
    monkeypatch.setattr(ex.capstone_network, "time_limit", 0.2)
    result = ex.capstone_network.check(_SlowNet)
    assert not result.passed and "did not return within 0.2 s" in result.message, result.message


# ---------------------------------------------------------------- right names, unregistered layers; odd sizes
class _ModuleWithPlainLists(nn.Module):
    """A learner's own HighResolutionModule: right names, but fuse_layers a plain list of lists."""

    def __init__(self, num_branches, block, num_blocks, num_inchannels, num_channels, multi_scale_output=True,
                 align_corners=False):
        super().__init__()
        self.align_corners = align_corners
        self.branches = nn.ModuleList(ex.make_layer(block, num_inchannels[b], num_channels[b], num_blocks[b])
                                      for b in range(num_branches))
        self.fuse_layers = [[ex.make_fuse_op(i, j, num_channels) for j in range(num_branches)]
                            for i in range(num_branches)]
        self.relu = nn.ReLU()

    forward = ex.HighResolutionModule.forward
    fuse = ex.HighResolutionModule.fuse


def test_a_plain_list_is_named_not_the_attribute_names():
    message = ex.hr_module.check(_ModuleWithPlainLists).message
    assert message.startswith("Step 1 (key names): 42 keys of the checkpoint missing"), message
    assert "self.fuse_layers of stage3.0 is a plain Python list" in message and "nn.ModuleList" in message
    assert "names must give the official state-dict keys" not in message  # the names are right


def test_a_plain_list_in_the_network_is_named_with_its_module():
    build, _fragment = ex.NETWORK_MISTAKES["transition2 a plain list"]
    message = ex.capstone_network.check(build).message
    assert "self.transition2 of your whole network is a plain Python list" in message, message
    assert "names must give" not in message


class _NetWithAHelperList(ex.MyHRNet):
    """A list of layers that are registered elsewhere: not the reason for anything."""

    def __init__(self, num_classes=4, align_corners=False):
        super().__init__(num_classes, align_corners)
        self.stem = [self.conv1, self.bn1, self.conv2, self.bn2]


def test_a_helper_list_of_registered_layers_is_not_blamed():
    assert ex.capstone_network.check(_NetWithAHelperList).passed

    def with_a_key_slip():
        net = _NetWithAHelperList()
        net.last_layer[0] = nn.Conv2d(240, 240, 1, bias=False)
        return net

    message = ex.capstone_network.check(with_a_key_slip).message
    assert "plain Python list" not in message and "last_layer's convs have bias=True" in message, message


def test_the_missing_relu_after_bn2_is_named():
    message = ex.capstone_network.check(ex.NETWORK_MISTAKES["no ReLU after bn2"][0]).message
    assert "layer1.0 gets another input" in message and "the ReLU after bn2" in message, message


def test_a_single_fuse_row_says_multi_scale_output_not_names():
    message = ex.capstone_network.check(ex.NETWORK_MISTAKES["last stage-4 module with multi_scale_output=False"][0]).message
    assert "stage4.0.fuse_layers has only row 0" in message and "multi_scale_output=True" in message, message
    assert "names must give" not in message


def test_odd_scene_branch_sizes_do_not_halve_exactly():
    sizes = [t.shape[-1] for t in capstone.reference_run(True).calls["stage4"].output]
    assert sizes == [10, 5, 3, 2]  # 3 doubled is 6, not 5: a scale factor misses here, not at 64x64


@pytest.mark.parametrize("check, build", [
    (ex.hr_module, ex._module_patched("fuse", ex._module_scale_factor)),
    (ex.capstone_network, ex.NETWORK_MISTAKES["fuse upsampled by a scale factor"][0]),
    (ex.capstone_network, ex.NETWORK_MISTAKES["head upsampled by a scale factor"][0]),
], ids=["module", "network's modules", "network's head"])
def test_a_scale_factor_is_caught_on_the_odd_scene_with_a_clear_message(check, build):
    message = check.check(build).message
    assert message.startswith("Step 3 (outputs): your code works on the 64x64 scenes, but on a 40x40 scene"), message
    assert "3 doubled is 6, not 5" in message and "not by a scale factor" in message


def test_the_reference_is_exact_on_the_odd_scene_too():
    result = ex.capstone_network.check(ex.MyHRNet)
    assert result.passed and "largest difference 0)" in result.message, result.message
    result = ex.head.check(ex.v2_head)
    assert result.passed and "and on a 40x40 one" in result.message, result.message


@pytest.mark.parametrize("answer, fragment", [
    (ex._head_scale_factor, "Resize to branch 0's exact size"),
    (ex._head_reversed, "in reverse order"),
    (ex._head_softmax, "returns last_layer's logits as they are"),
    (ex._head_log_softmax, "returns last_layer's logits as they are"),
])
def test_head_slips_get_their_message(answer, fragment):
    result = ex.head.check(answer)
    assert not result.passed and fragment in result.message, result.message


# ---------------------------------------------------------------- from a learner's read-through (37 wrong answers)
@pytest.mark.parametrize("slip", ["layer1 of BasicBlocks", "stage2 given layer1's channels",
                                  "transition2's arguments swapped", "stage4 built from cfg.stage3",
                                  "stage3 built from cfg.stage4", "transition2 built from layer1's channels",
                                  "last_layer named head", "the stem as a module"])
def test_right_names_wrong_structure_say_why_not_names(slip):
    message = ex.capstone_network.check(ex.NETWORK_MISTAKES[slip][0]).message
    assert message.startswith("Step 1 (key names)") and "names must give" not in message, message


def test_a_module_that_returns_the_wrong_thing_is_named_not_the_piece_that_raised_after_it():
    # Before: "raised RuntimeError inside transition2.2 ... its input is y_list[-1], not y_list[0]" for a stage2.0
    # that returned a tensor: transition2's new branch got that tensor's slice, and was blamed.
    for slip in ("a module returns a tensor", "a module's forward without return"):
        message = ex.capstone_network.check(ex.NETWORK_MISTAKES[slip][0]).message
        assert "stage2.0 (HighResolutionModule) differs" in message and "transition2" not in message, message
        assert "forward returns a Python list" in message and "so the fusion differs" not in message, message


def test_a_size_slip_in_the_sum_is_not_blamed_on_the_fuse_index():
    message = ex.hr_module.check(ex._module_patched("fuse", ex._module_fused_with(ex._term_to_x0_size))).message
    assert "must have x[i]'s size before the sum" in message and "row i is the output" not in message, message
    message = ex.hr_module.check(ex._module_patched("fuse", ex._net_fuse_ji)).message  # a conv given x[j]: the index
    assert "row i is the output" in message and "before the sum" not in message, message


def test_a_downsample_as_a_plain_list_is_told_to_be_a_sequential_and_nothing_else():
    message = ex.layer1.check(ex._layer1_downsample_plain_list).message
    assert "Use nn.Sequential(*layers)" in message and "nn.ModuleList" not in message, message
    assert "needs a `downsample` shortcut" not in message, message


def test_one_plain_list_sentence_for_three_transitions():
    message = ex.capstone_network.check(ex.NETWORK_MISTAKES["every transition a plain list"][0]).message
    assert message.count("plain Python list") == 1, message


def test_the_head_points_to_lesson_08_for_align_corners():
    message = ex.capstone_network.check(ex.NETWORK_MISTAKES["align_corners flipped in the head only"][0]).message
    assert "lesson 08, section 4.3" in message and "lesson 03" not in message, message


@pytest.mark.parametrize("check, build, fragment", [
    (ex.stage, ex._stage_one_module, "its config's num_modules is 3"),
    (ex.stage, ex._stage_inchannels_kept, "Module 1 takes what module 0 gives out"),
    (ex.hr_module, ex._module_every_row, "only row 0 of fuse_layers is built"),
], ids=["num_modules ignored", "num_inchannels not updated", "multi_scale_output ignored"])
def test_what_the_checkpoint_cannot_show_is_checked_on_the_structure(check, build, fragment):
    # W18-small-v1 has one module per stage and every fuse row: these slips load its checkpoint strictly
    assert ex.capstone_network.check(ex.MyHRNet).passed
    message = check.check(build).message
    assert "built with no checkpoint" in message and fragment in message, message


def test_the_reference_pieces_pass_the_structure_cases_too():
    assert "Built as w18_small_v2's stage3 (3 modules)" in ex.stage.check(ex.make_stage).message
    assert "Built as stage3.0 with multi_scale_output=False" in ex.hr_module.check(ex.HighResolutionModule).message


NOTEBOOK_MODULE = '''
import torch.nn.functional as F
from hrnet_teach.exercises.lesson11 import HighResolutionModule as Reference


class HighResolutionModule(Reference):
    def forward(self, x):
        x = [branch(xi) for branch, xi in zip(self.branches, x)]
        out = []
        for i in range(len(self.fuse_layers)):
            y = x[i]
            for j in range(len(x)):
                if j > i:
                    term = F.interpolate(self.fuse_layers[i][j](x[j]), size=x[i].shape, mode="bilinear")
                    y = y + term
            out.append(self.relu(y))
        return out
'''


def test_an_exception_inside_a_module_says_the_learners_line():
    namespace = {}
    exec(compile(NOTEBOOK_MODULE, "/tmp/ipykernel_1/2.py", "exec"), namespace)  # as a notebook cell is
    message = ex.hr_module.check(namespace["HighResolutionModule"]).message
    line = next(n for n, text in enumerate(NOTEBOOK_MODULE.split("\n"), 1) if "F.interpolate" in text)
    assert "raised ValueError inside stage3.0" in message and f"(line {line} in forward)" in message, message


def test_checking_an_instance_leaves_it_as_it_was_and_asks_for_the_class():
    """An instance is checked against the checkpoint (on a copy), but it cannot be built with align_corners=True,
    the check the notebook promises: a learner saw a network that ignored the setting pass as an instance."""
    net = ex.MyHRNet()
    before = net.conv1.weight.clone()
    result = ex.capstone_network.check(net)
    assert not result.passed and "matches the checkpoint's, but it is one module, built once" in result.message
    assert "with align_corners=True" in result.message and "Pass MyHRNet itself" in result.message
    assert torch.equal(net.conv1.weight, before) and net.training
    assert ex.capstone_network.check(ex.MyHRNet).passed


def test_a_network_without_the_align_corners_parameter_is_told_not_skipped():
    result = ex.capstone_network.check(ex._NetWithoutAlignCorners)
    assert not result.passed, result.message
    assert "with align_corners=True, as MyHRNet(4, True), and yours does not take that" in result.message


def test_a_built_stage_names_every_way_the_check_builds_it():
    message = ex.stage.check(ex.make_stage(ex._CFG.stage3, [16, 32, 64])).message
    assert "built once" in message and "with align_corners=True" in message, message
    assert "as " in message.split("builds your make_stage")[1], message


# ---- the audit of lessons 09-11: a block too many, the blocks after the first, align_corners ignored


def test_a_block_the_checkpoint_lacks_is_counted_not_called_a_bottleneck():
    def two_blocks(num_classes=4, align_corners=False):
        net = ex.MyHRNet(num_classes, align_corners)
        net.layer1 = ex.make_layer(ht.Bottleneck, 64, 32, 2)  # the checkpoint's layer1 has one
        return net

    message = ex.capstone_network.check(two_blocks).message
    assert "Your layer1 has 2 blocks; the checkpoint's has 1 (cfg.stage1.num_blocks[0])" in message, message
    assert "BasicBlock" not in message and "names must give" not in message, message


def test_a_real_bottleneck_where_a_basic_block_belongs_is_still_said():
    net = ex.MyHRNet()
    net.stage2[0].branches[0] = ex.make_layer(ht.Bottleneck, 16, 16, 2)
    assert "it is a Bottleneck where the checkpoint has a BasicBlock" in ex.capstone_network.check(net).message


def test_a_branch_one_block_short_is_counted():
    def short(num_branches, block, num_blocks, *rest):
        return ex.HighResolutionModule(num_branches, block, [n - 1 for n in num_blocks], *rest)

    message = ex.hr_module.check(short).message
    assert "Your stage3.0.branches.0 has 1 block; the checkpoint's has 2" in message, message


def test_layer1_is_also_built_with_four_blocks():
    message = ex.layer1.check(ex.make_layer).message
    assert "Built as W48's layer1, make_layer(Bottleneck, 64, 64, 4)" in message, message
    message = ex.layer1.check(ex._layer1_later_inplanes).message
    assert "Your layer1.1.conv1 takes 64 channels; block 0 gives out planes x expansion = 256" in message, message


@pytest.mark.parametrize("exercise, answer", [
    (ex.hr_module, ex._module_patched("fuse", ex._module_fused_with(ex._term_align_ignored))),
    (ex.stage, ex._stage_align_dropped),
    (ex.capstone_network, lambda num_classes=4, align_corners=False: ex.MyHRNet(num_classes)),
])
def test_an_answer_that_never_passes_align_corners_on_is_caught(exercise, answer):
    result = exercise.check(answer)
    assert not result.passed and "gives the same numbers as with False" in result.message, result.message
    assert "upsamples as the package's does then too" in exercise.check(exercise.reference).message


def test_a_head_that_ignores_align_corners_is_caught_at_true():
    message = ex.head.check(ex._head_align_ignored).message
    assert message.startswith("With align_corners=True your head still upsamples as with False"), message
    assert "with align_corners=True too" in ex.head.check(ex.v2_head).message


# ---- the input audit: a module in another dtype, a class without __init__, broken articles


@pytest.mark.parametrize("exercise, answer, dtype", [
    (ex.hr_module, lambda *args: ex.HighResolutionModule(*args).double(), "float64"),
    (ex.stage, lambda *args: ex.make_stage(*args).half(), "float16"),
    (ex.layer1, lambda *args: ex.make_layer(*args).double(), "float64"),
    (ex.capstone_network, lambda *args: ex.MyHRNet(*args).double(), "float64"),
])
def test_a_module_built_in_another_dtype_is_told_its_dtype_not_its_channels(exercise, answer, dtype):
    message = exercise.check(answer).message
    assert f"weights are {dtype} (" in message and "loads the checkpoint's as float32 (stored as float16" in message, message
    assert "num_inchannels" not in message and "Step 3" not in message, message


def test_a_forward_that_casts_the_maps_is_told_the_dtype_not_the_channels():
    message = ex.hr_module.check(ex._module_patched("forward", ex._module_in_float64)).message
    assert "stage3.0.branches.0 was given float64 maps" in message, message
    assert "num_inchannels" not in message, message


class HighResolutionModule(nn.Module):  # the notebook's class before its __init__ is written
    def forward(self, x):
        return x


class MyHRNet(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("exercise, answer, said", [
    (ex.hr_module, HighResolutionModule, "`def __init__(self, num_branches, block, num_blocks, num_inchannels, "
                                         "num_channels, multi_scale_output=True, align_corners=False)`"),
    (ex.capstone_network, MyHRNet, "`def __init__(self, num_classes=4, align_corners=False)`"),
    (ex.layer1, HighResolutionModule, "You passed a class, HighResolutionModule, with no `__init__` of its own; "
                                      "make_layer is a function"),
])
def test_a_class_without_init_is_said_so_not_blamed_on_a_line_of_torch(exercise, answer, said):
    message = exercise.check(answer).message
    assert said in message, message
    # before: "(line 494 in __init__)", a bare line of torch's module.py that reads as theirs, and "8 were given"
    assert not re.search(r"\(line \d+ in \w+\)", message) and "8 were given" not in message, message


def test_a_torch_class_given_as_the_answer_names_torchs_file():
    message = ex.hr_module.check(nn.Conv2d).message
    assert "of torch/nn/modules/conv.py)" in message, message  # before: "(line 106 in __init__)", as if theirs


@pytest.mark.parametrize("exercise, answer, said", [
    (ex.capstone_network, lambda *a, **k: 1, "Your MyHRNet returned an int; it should return an nn.Module."),
    (ex.layer1, lambda *a, **k: None, "Your make_layer returned None: did you forget `return`?"),
    (ex.stage, lambda *a, **k: torch.ones(1), "Your make_stage returned a Tensor"),
])
def test_a_builder_that_returns_no_module_is_told_in_plain_english(exercise, answer, said):
    message = exercise.check(answer).message  # before: "gave a int", "gave a NoneType"
    assert message.startswith(said), message


def test_a_module_whose_forward_returns_nothing_is_said_to_give_none():
    message = ex.capstone_network.check(ex.NETWORK_MISTAKES["a module's forward without return"][0]).message
    assert "differs from the package's (None instead of a list of 2 tensors)" in message, message


# ------------------------------------------------------------------ from an audit of the checker's messages
def _with_forward(forward):
    import types

    def make(num_classes=4, align_corners=False):
        net = ex.MyHRNet(num_classes, align_corners)
        net.forward = types.MethodType(forward, net)
        return net
    return make


def _stem(net, x):
    return net.relu(net.bn2(net.conv2(net.relu(net.bn1(net.conv1(x))))))


def _rest(net, y):
    y = net.stage3(ex.transition_forward(net.transition2, y))
    y = net.stage4(ex.transition_forward(net.transition3, y))
    return y


def _skips_layer1(self, x):
    return ex.v2_head(_rest(self, self.stage2(ex.transition_forward(self.transition1, [_stem(self, x)]))),
                      self.last_layer, self.align_corners)


def _skips_stage2(self, x):
    return ex.v2_head(_rest(self, ex.transition_forward(self.transition1, [self.layer1(_stem(self, x))])),
                      self.last_layer, self.align_corners)


def _loops_over_blocks(self, x):
    x = _stem(self, x)
    for block in self.layer1:  # the same blocks, without calling the nn.Sequential itself
        x = block(x)
    y = ex.transition_forward(self.transition1, [x])
    for module in self.stage2:
        y = module(y)
    return ex.v2_head(_rest(self, y), self.last_layer, self.align_corners)


def _cats_along_batch(self, x):
    y = _rest(self, self.stage2(ex.transition_forward(self.transition1, [self.layer1(_stem(self, x))])))
    return ex._head_cat_dim0(y, self.last_layer, self.align_corners)


def _always_downsample(block, inplanes, planes, num_blocks, stride=1):
    out = planes * block.expansion
    shortcut = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))
    return nn.Sequential(block(inplanes, planes, stride, shortcut), *[block(out, planes) for _ in range(1, num_blocks)])


def test_a_correct_network_that_loops_over_its_blocks_passes():
    """Before: 'your forward never calls layer1' for `for block in self.layer1`, the same computation."""
    result = ex.capstone_network.check(_with_forward(_loops_over_blocks))
    assert result.passed, result.message


def test_a_skipped_stage_is_named_with_what_comes_before_it():
    """Before: the first branch inside it was named, after the finishing order's last module."""
    message = ex.capstone_network.check(_with_forward(_skips_stage2)).message
    assert "your forward never calls stage2; the package's calls it after transition1.1" in message, message


def test_a_skipped_layer1_is_not_called_a_new_branch_slip():
    message = ex.capstone_network.check(_with_forward(_skips_layer1)).message
    assert "transition1[0] is not a new branch" in message and "layer1's output" in message, message
    assert "A new branch is born" not in message


def test_a_cat_along_the_batch_is_told_dim_1():
    message = ex.capstone_network.check(_with_forward(_cats_along_batch)).message
    assert "torch.cat(..., dim=1)" in message, message


def test_a_downsample_on_every_first_block_is_make_layers_slip_not_make_stages():
    message = ex.layer1.check(_always_downsample).message
    assert "make_layer(BasicBlock, 16, 16, 2)" in message and "already has 16 channels" in message, message
    assert "Your stage2.0.branches.0.0 has a downsample" in message, message  # named as in a network

    class AlwaysDownsample(ex.HighResolutionModule):
        def __init__(self, num_branches, block, num_blocks, num_inchannels, *args, **kwargs):
            super().__init__(num_branches, block, num_blocks, num_inchannels, *args, **kwargs)
            self.branches = nn.ModuleList(_always_downsample(block, num_inchannels[b], args[0][b], num_blocks[b])
                                          for b in range(num_branches))

    message = ex.hr_module.check(AlwaysDownsample).message
    assert "already has 16 channels" in message and "make_stage(" not in message, message


def test_a_stage_always_of_basic_blocks_is_told_about_the_config_it_was_given():
    def basic_stage(stage, num_inchannels, align_corners=False):
        modules, channels = [], list(num_inchannels)
        for _ in range(stage.num_modules):
            modules.append(ex.HighResolutionModule(stage.num_branches, ht.BasicBlock, stage.num_blocks, channels,
                                                   stage.num_channels, True, align_corners))
            channels = list(stage.num_channels)
        return nn.Sequential(*modules)

    message = ex.stage.check(basic_stage).message
    assert "built from the same config, has a Bottleneck" in message and "build it with Bottleneck" not in message, message


def test_a_module_with_too_few_branches_is_told_the_check_passes_num_branches():
    class TwoOfThree(ex.HighResolutionModule):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.branches = self.branches[:2]
            self.fuse_layers = nn.ModuleList(nn.ModuleList(list(row)[:2]) for row in list(self.fuse_layers)[:2])

    message = ex.hr_module.check(TwoOfThree).message
    assert "the check passes num_branches=3" in message and "make_stage(" not in message, message


def test_a_wrong_list_fed_to_a_stage_says_which_list():
    def scaled_into_stage3(self, x):
        y = self.stage2(ex.transition_forward(self.transition1, [self.layer1(_stem(self, x))]))
        y = self.stage3([t * 1.5 for t in ex.transition_forward(self.transition2, y)])
        y = self.stage4(ex.transition_forward(self.transition3, y))
        return ex.v2_head(y, self.last_layer, self.align_corners)

    message = ex.capstone_network.check(_with_forward(scaled_into_stage3)).message
    assert "gets its entry of the list the stage is given, which transition_forward builds" in message, message


def test_the_odd_scene_message_lists_the_checked_pieces_own_branches():
    """Before: a 3-branch module was told stage 4's four sizes."""
    message = ex.hr_module.check(ex._module_patched("fuse", ex._module_scale_factor)).message
    assert "branches are 10, 5, 3 pixels wide" in message, message
    message = ex.capstone_network.check(ex.NETWORK_MISTAKES["head upsampled by a scale factor"][0]).message
    assert "branches are 10, 5, 3, 2 pixels wide" in message, message


def test_align_corners_not_passed_on_names_the_modules_that_kept_false():
    """"Somewhere the setting is not passed on" now says where: the modules that still hold False."""
    message = ex.capstone_network.check(ex.NETWORK_MISTAKES["align_corners not passed to the stages"][0]).message
    assert "somewhere the setting is not passed on. Your stage2.0, stage3.0 and stage4.0 still hold " \
           "align_corners=False." in message, message
