"""Bad input to the API that builds and looks at models: a clear error that says what was
wrong and what to do, raised before torch's (or Python's) traceback from deep inside.

Each test names the mistake a learner makes; the probe that found them tried every public
name of config, models, blocks, inspect, viz and widgets with such inputs.
"""
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import hrnet_teach as ht
from hrnet_teach import inspect as hi
from hrnet_teach import viz


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return ht.create_model("w18_small_v1").eval()


@pytest.fixture(scope="module")
def features(small):
    return hi.capture_features(small, torch.randn(1, 3, 32, 32))


# ------------------------------------------------------------------ shape_summary
def test_shape_summary_leaves_a_real_model_its_weights():
    # torchinfo moves the module it is given to its device: the meta device took the weights away.
    torch.manual_seed(0)
    layer1 = ht.create_model("w18_small_v1", head=None).layer1
    before = {k: v.clone() for k, v in layer1.state_dict().items()}
    hi.shape_summary(layer1, (1, 64, 32, 32), depth=1)
    after = layer1.state_dict()
    assert all(t.device.type == "cpu" for t in after.values())
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert layer1(torch.randn(1, 64, 8, 8)).shape == (1, 128, 8, 8)  # it still runs


def test_shape_summary_says_which_inputs_a_module_takes():
    with torch.device("meta"):
        backbone = ht.create_model("w18_small_v1", head=None)
    module = backbone.stage2[0]  # branches of 16 and 32 channels
    with pytest.raises(ValueError, match=r"takes a list of 2 branch\(es\) with \[16, 32\] channels.*\(1, 16, 16, 16\)"):
        hi.shape_summary(module, (1, 16, 16, 16))  # one shape where a list of two is needed
    with pytest.raises(ValueError, match=r"\[16, 32\] channels, got input size \[\(1, 18, 16, 16\), \(1, 36, 8, 8\)\]"):
        hi.shape_summary(module, [(1, 18, 16, 16), (1, 36, 8, 8)])  # W18's widths, not W18-Small-v1's
    with pytest.raises(ValueError, match=r"takes a list of 3 branch"):
        hi.shape_summary(backbone.stage3[0], [(1, 16, 16, 16), (1, 32, 8, 8)])  # one branch short
    with pytest.raises(ValueError, match=r"BasicBlock takes one \(B, 8, H, W\) tensor, got input size \(1, 4, 8, 8\)"):
        hi.shape_summary(ht.BasicBlock(8, 8), (1, 4, 8, 8))
    with pytest.raises(ValueError, match=r"Transition takes a list of 1 branch\(es\) with \[128\] channels"):
        hi.shape_summary(backbone.transition1, (1, 128, 16, 16))


def test_shape_summary_takes_a_size_not_a_tensor():
    with pytest.raises(TypeError, match=r"input sizes, not tensors: pass x.shape"):
        hi.shape_summary(ht.BasicBlock(8, 8), torch.randn(1, 8, 16, 16))


# ------------------------------------------------------------------ variants
def test_a_variant_that_is_not_a_name_is_named_by_its_type():
    with pytest.raises(TypeError, match=r"got int 18; did you mean 'w18'\?"):
        ht.create_model(18)
    with pytest.raises(TypeError, match=r"got HRNetSegmentation; for another model like this one, pass model.config"):
        ht.get_config(ht.create_model("w18_small_v1"))
    with pytest.raises(TypeError, match=r"got dict$") as caught:  # the dict of feature maps, not its tensors printed
        viz.plot_architecture({"stage4": [torch.zeros(1, 16, 64, 64)]})
    assert len(str(caught.value)) < 200


def test_a_yaml_file_name_is_not_a_variant():
    with pytest.raises(ValueError, match=r"file name, not a variant.*HRNetConfig.from_yaml\('seg_hrnet_w48.yaml'\)"):
        ht.create_model("seg_hrnet_w48.yaml")


def test_align_corners_must_be_a_bool():
    with pytest.raises(ValueError, match=r"align_corners must be True, False or None \(F.interpolate's default\), got 'False'"):
        ht.create_model("w18_small_v1", align_corners="False")  # was accepted, then failed in F.interpolate


def test_from_yaml_given_a_variant_name_points_to_get_config():
    with pytest.raises(FileNotFoundError, match=r"No such config file: w48; for the published variant use get_config\('w48'\)"):
        ht.HRNetConfig.from_yaml("w48")


def test_fusion_must_be_a_bool():
    with pytest.raises(ValueError, match=r"fusion must be True or False, got 'no'"):
        ht.get_config("w18").replace(fusion="no")  # a truthy string would leave fusion on


# ------------------------------------------------------------------ the forward pass
@pytest.mark.parametrize("shape, hint", [
    ((3, 32, 32), r"add a batch dimension with x.unsqueeze\(0\)"),
    ((32, 32, 3), r"channels come last.*x.permute\(2, 0, 1\).unsqueeze\(0\)"),
    ((1, 32, 32, 3), r"channels come last.*x.permute\(0, 3, 1, 2\)"),
    ((1, 1, 32, 32), r"convert the image to RGB \(grey: x.expand"),
    ((1, 3, 0, 32), r"empty image \(0x32 pixels\)"),
])
def test_image_of_the_wrong_shape_gets_a_hint_from_its_shape(small, shape, hint):
    with pytest.raises(ValueError, match=hint):
        small(torch.zeros(shape))


def test_model_and_input_on_different_devices():
    with torch.device("meta"):
        shapes_only = ht.create_model("w18_small_v1")
    with pytest.raises(ValueError, match=r"built on the meta device .* no weights"):
        shapes_only(torch.zeros(1, 3, 32, 32))
    model = ht.create_model("w18_small_v1").eval()
    with pytest.raises(ValueError, match=r"input is on meta but the model is on cpu: .*x.to\('cpu'\)"):
        model(torch.zeros(1, 3, 32, 32, device="meta"))


def test_meta_shapes_still_run_through_inspect(small):
    # cost_breakdown runs a real model with meta stand-ins for its weights: the device check must let it.
    assert sum(row.params for row in hi.cost_breakdown(small, (64, 64))) == sum(p.numel() for p in small.parameters())


# ------------------------------------------------------------------ blocks, modules, transitions
def test_block_sizes_must_be_whole_numbers():
    with pytest.raises(ValueError, match=r"inplanes must be a positive integer, got 64.0 \(float\) \(use 64 if you meant"):
        ht.BasicBlock(256 / 4, 64)  # / gives a float
    with pytest.raises(ValueError, match=r"planes must be a positive integer, got 16.0"):
        ht.Bottleneck(64, 64 / 4)
    with pytest.raises(ValueError, match=r"num_blocks must be a positive integer, got 0"):
        ht.make_layer(ht.BasicBlock, 64, 64, 0)  # silently built one block
    assert isinstance(ht.BasicBlock(np.int64(8), 8).conv1.in_channels, int)


def test_block_must_be_a_block_class():
    with pytest.raises(TypeError, match=r"got 'BASIC'; for a config's name use hrnet_teach.blocks.BLOCKS\['BASIC'\]"):
        ht.make_layer("BASIC", 64, 64, 2)
    with pytest.raises(TypeError, match=r"got a BasicBlock instance; pass the class BasicBlock, not BasicBlock\(...\)"):
        ht.make_layer(ht.BasicBlock(64, 64), 64, 64, 2)
    with pytest.raises(TypeError, match=r"BLOCKS\['BOTTLENECK'\]"):
        ht.HighResolutionModule(2, "bottleneck", [1, 1], [16, 32], [16, 32])


def test_module_and_transition_want_one_entry_per_branch():
    with pytest.raises(ValueError, match=r"num_blocks must be a list with one entry per branch \(num_branches=2\), got 4"):
        ht.HighResolutionModule(2, ht.BasicBlock, 4, [18, 36], [18, 36])
    with pytest.raises(ValueError, match=r"pre_channels must be a list of channels, one per branch.*got 256"):
        ht.Transition(256, [18, 36])


# ------------------------------------------------------------------ inspect
def test_capture_features_says_how_to_convert_an_image(small):
    with pytest.raises(TypeError, match=r"got ndarray; for an H x W x 3 uint8 array use hrnet_teach.assets.to_tensor"):
        hi.capture_features(small, np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(TypeError, match=r"got str; open a file with PIL.Image.open"):
        hi.capture_features(small, "photo.jpg")
    with pytest.raises(ValueError, match=r"channels come last \(H, W, 3\); move them with x.permute\(2, 0, 1\)"):
        hi.capture_features(small, torch.zeros(32, 32, 3))


def test_describe_layers_needs_a_module():
    with pytest.raises(TypeError, match=r"describe_layers needs a torch module"):
        hi.describe_layers("w18")


# ------------------------------------------------------------------ viz
@pytest.mark.parametrize("highlight", [2, (1,), (3, 0), (0, -1), "20", (1.0, 0)])
def test_fuse_matrix_highlight_must_be_a_cell(highlight):
    with pytest.raises(ValueError, match=r"highlight must be a cell \(i, j\) of stage3\[0\].fuse_layers, which is 3x3"):
        viz.plot_fuse_matrix("w18_small_v1", "stage3", highlight=highlight)


def test_fuse_matrix_highlight_takes_numpy_integers():
    fig = viz.plot_fuse_matrix("w18_small_v1", "stage3", highlight=(np.int64(2), np.int64(0)))
    outline = next(p for p in fig.axes[0].patches if p.get_gid() == "fuse-highlight")
    assert outline.get_xy() == (0.03, 2.03)


def test_feature_maps_show_the_input_tensor_as_a_picture(small, features):
    x = torch.randn(1, 3, 32, 32)
    fig = viz.plot_feature_maps(features, stages=["stage2"], image=x)  # the model's input, not a picture
    picture = fig.axes[0].images[0].get_array()
    assert picture.shape == (32, 32, 3) and 0 <= picture.min() and picture.max() <= 1
    with pytest.raises(TypeError, match=r"got str; open a file with PIL.Image.open"):
        viz.plot_feature_maps(features, image="photo.jpg")


def test_feature_maps_check_sample_branches_and_channel(features):
    with pytest.raises(ValueError, match=r"sample picks one of the 1 image\(s\) .* use 0..0, got 1"):
        viz.plot_feature_maps(features, sample=1)
    with pytest.raises(ValueError, match=r"branches must be branch numbers such as \[0, 1\]"):
        viz.plot_feature_maps(features, branches=["0"])
    one = viz.plot_feature_maps(features, stages="stage4", branches=0)  # one branch as a number
    assert [a.get_gid() for ax in one.axes for a in ax.images] == ["map-stage4-0"]
    best = features["stage4"][0][0].mean((1, 2)).argmax()  # a 0-d tensor, as argmax gives it
    assert isinstance(viz.plot_feature_maps(features, stages="stage4", channel=best), Figure)


def test_feature_maps_want_lists_of_maps():
    with pytest.raises(TypeError, match=r"features\['stage4'\] must be a list of B x C x H x W tensors"):
        viz.plot_feature_maps({"stage4": torch.zeros(1, 19, 8, 8)})  # a model's output, not a list of branches


# ------------------------------------------------------------------ the OCR loss
@pytest.mark.parametrize("target, hint", [
    (torch.zeros(2, 1, 32, 32, dtype=torch.long), r"target.squeeze\(1\)"),
    (torch.zeros(32, 32, dtype=torch.long), r"target.unsqueeze\(0\)"),
    (torch.zeros(2, 32, 32), r"got torch.float32 .*target.long\(\)"),
    (torch.zeros(2, 32, 32, dtype=torch.uint8), r"target.long\(\)"),  # a label PNG read as uint8
    (torch.zeros(2, 4, 32, 32), r"one-hot .* target.argmax\(1\)"),
    (torch.zeros(3, 32, 32, dtype=torch.long), r"the outputs are for 2 image\(s\)"),
])
def test_ocr_loss_says_what_the_labels_must_be(target, hint):
    from hrnet_teach.ocr import ocr_loss

    outputs = [torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)]
    assert ocr_loss(outputs, torch.zeros(2, 32, 32, dtype=torch.long)).dim() == 0
    for ohem in (False, True):
        with pytest.raises(ValueError, match=r"target must be a \(B, H, W\) int64 tensor of class indices.*" + hint):
            ocr_loss(outputs, target, ohem=ohem)


# ------------------------------------------------------------------ widgets
def test_explorers_show_a_config_that_is_not_a_published_variant():
    from hrnet_teach import widgets

    mine = ht.HRNetConfig.from_yaml("assets/configs/seg_hrnet_w18_small_v1_shapes.yaml")  # named after the file
    explorer = widgets.architecture_explorer(mine, (64, 64))  # was ipywidgets' "Invalid selection: value not found"
    assert explorer.variant.value == mine.name and "w48" in explorer.variant.options
    assert [row["channels"] for row in explorer.rows if row["stage"] == "stage4"] == [16, 32, 64, 128]

    no_fusion = ht.get_config("w18_small_v1").replace(fusion=False)  # same name, other network: not the published one
    explorer = widgets.architecture_explorer(no_fusion, (64, 64))
    assert explorer.variant.value == "w18_small_v1 (changed)"
    assert "0 fusions" in explorer.figure.axes[0].get_title(loc="left")
    explorer.variant.value = "w18_small_v1"
    assert "3 fusions" in explorer.figure.axes[0].get_title(loc="left")

    fuse = widgets.fuse_explorer(no_fusion, "stage3", (64, 64))
    assert fuse.entry is None and "has no fuse_layers" in fuse.text


# ------------------------------------------------------------------ create_model's arguments, the second audit
def test_a_head_option_given_by_position_or_misspelt_is_named():
    with pytest.raises(TypeError, match=r"third argument is features_only .* got 4: .* num_classes=4"):
        ht.create_model("w18_small_v1", "segmentation", 4)
    with pytest.raises(TypeError, match=r"head='segmentation'\) takes no argument 'num_class'; did you mean num_classes="):
        ht.create_model("w18_small_v1", num_class=4)
    with pytest.raises(TypeError, match=r"head='pose'\) takes no argument 'num_classes'; did you mean num_joints="):
        ht.create_model("w18_small_v1", head="pose", num_classes=17)
    with pytest.raises(TypeError, match=r"the bare backbone has no head: choose one, e.g. head='segmentation'"):
        ht.create_model("w18_small_v1", head=None, num_classes=4)
    with torch.device("meta"):  # the right names still build
        assert ht.create_model("w18_small_v1", head="pose", num_joints=5).final_layer.out_channels == 5


def test_a_file_given_as_the_variant_points_to_what_reads_it():
    from pathlib import Path

    with pytest.raises(ValueError, match=r"is a file name, not a variant: .*HRNetConfig.from_yaml"):
        ht.create_model(Path("experiments") / "w48.yaml")
    with pytest.raises(ValueError, match=r"'run/model.pt' is a checkpoint file, not a variant: .*model_from_checkpoint"):
        ht.create_model("run/model.pt")


def test_a_picture_given_to_the_model_is_told_to_become_a_tensor(small):
    from PIL import Image

    for picture in (np.zeros((64, 64, 3), np.uint8), Image.new("RGB", (64, 64))):
        with pytest.raises(TypeError, match=r"got (ndarray|Image): for a picture .*assets\.to_tensor\(image\)"):
            small(picture)
    with pytest.raises(TypeError, match=r"got list$"):  # nothing about pictures for what is not one
        small([1, 2])


def test_an_image_size_given_where_a_figure_takes_none_or_as_text():
    with pytest.raises(ValueError, match=r"theme must be one of .* got \(64, 64\) \(an image size\? this figure"):
        viz.plot_resolution_over_depth("w18_small_v1", (64, 64))
    with pytest.raises(ValueError, match=r"image_size must be \(height, width\) numbers, got the str '64': write e.g."):
        hi.stage_shapes("w18_small_v1", "64")


def test_a_float_picture_of_0_to_255_is_refused_not_drawn_white(features):
    picture = np.full((32, 32, 3), 200.0)
    with pytest.raises(ValueError, match=r"float array with values up to 200, .* in \[0, 1\]: .* image / 255"):
        viz.plot_feature_maps(features, image=picture)
    assert isinstance(viz.plot_feature_maps(features, image=picture / 255), Figure)


@pytest.mark.parametrize("block", [ht.BasicBlock, ht.Bottleneck])
def test_a_shortcut_passed_in_the_strides_place_names_the_signature(block):
    """block(inplanes, planes, downsample) puts the shortcut where the stride goes (a learner's first guess)."""
    shortcut = torch.nn.Sequential(torch.nn.Conv2d(64, 256, 1, bias=False), torch.nn.BatchNorm2d(256))
    with pytest.raises(ValueError, match=rf"got a Sequential: a block is built as {block.__name__}\(inplanes, planes, "
                                         r"stride=1, downsample=None\), so pass the shortcut by name"):
        block(64, 64, shortcut)
