"""Bad input to shape_summary, the exercises' number check, image sizes, to_tensor, the feature-map
plot, BatchNorm folding, HRNetConfig.replace and the command-line tools: a clear error that says
what was wrong and what to do, never a bare traceback from deep inside torch, matplotlib, torch.fx,
dataclasses, nbformat or pathlib.

The command-line tests call each tool's main(argv) on files made in tmp_path, or only the paths
that refuse before anything is written (colab and translate write into the repository when run
for real; colab's --check writes nothing).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import hrnet_teach as ht
from hrnet_teach import assets, bench, colab, course, deploy, translate, viz
from hrnet_teach import inspect as hi
from hrnet_teach.exercises import lesson07


@pytest.fixture(scope="module")
def small():
    return ht.create_model("w18_small_v1", num_classes=4).eval()


def _usage_error(capsys, main, argv) -> str:
    """What main(argv) printed to stderr on its way to exit status 2 (an argparse usage error)."""
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    return capsys.readouterr().err


# ------------------------------------------------------------------ shape_summary: the first layer's channels
def test_shape_summary_names_the_channels_a_plain_conv_takes(small):
    with pytest.raises(ValueError, match=r"Conv2d\(3, 64, .*it takes one \(B, 3, H, W\) tensor, got input size "
                                         r"\(1, 1, 16, 16\); e.g. \(1, 3, 16, 16\)"):
        hi.shape_summary(small.conv1, (1, 1, 16, 16))
    assert hi.shape_summary(small.conv1, (1, 3, 16, 16)) is not None  # the right size still summarises


def test_shape_summary_names_the_first_conv_of_a_head_and_a_fuse_op(small):
    head_channels = small.last_layer[0].in_channels
    with pytest.raises(ValueError, match=rf"Sequential starts with Conv2d\({head_channels}, .*\(B, {head_channels}, H, W\)"):
        hi.shape_summary(small.last_layer, (1, 3, 16, 16))
    upsample = small.stage2[0].fuse_layers[0][1]  # branch 1 (32 ch) to branch 0
    with pytest.raises(ValueError, match=r"Sequential starts with Conv2d\(32, 16, .*got input size \(1, 16, 8, 8\); "
                                         r"e.g. \(1, 32, 8, 8\)"):
        hi.shape_summary(upsample, (1, 16, 8, 8))
    rows = hi.shape_summary(upsample, (1, 32, 8, 8))
    assert "[1, 16, 8, 8]" in str(rows)  # the right size runs: 32 -> 16 channels (the module upsamples after it)


def test_shape_summary_says_a_linear_takes_batch_by_features():
    classifier = ht.create_model("w18_small_v1", head="classification").classifier
    with pytest.raises(ValueError, match=r"Linear\(in_features=2048.*takes one \(B, 2048\) tensor, got input size "
                                         r"\(1, 3, 8, 8\); e.g. \(1, 2048\)"):
        hi.shape_summary(classifier, (1, 3, 8, 8))
    assert "[2, 1000]" in str(hi.shape_summary(classifier, (2, 2048)))  # (B, in_features) is accepted now


def test_shape_summary_of_a_conv_given_a_list_says_it_takes_one_tensor():
    with pytest.raises(ValueError, match=r"takes one \(B, 3, H, W\) tensor, got a list of input sizes"):
        hi.shape_summary(nn.Conv2d(3, 4, 1), [(1, 3, 8, 8), (1, 3, 4, 4)])


class _HeadDefinedFirst(nn.Module):
    """A module whose forward does not call its layers in the order it defines them."""

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(8, 2, 1)
        self.stem = nn.Conv2d(3, 8, 1)

    def forward(self, x):
        return self.head(self.stem(x))


def test_shape_summary_of_another_module_names_the_layer_it_runs_first():
    assert hi.shape_summary(_HeadDefinedFirst(), (1, 3, 8, 8)) is not None  # valid: not refused by definition order
    with pytest.raises(ValueError, match=r"_HeadDefinedFirst first runs Conv2d\(3, 8, .*takes one \(B, 3, H, W\) "
                                         r"tensor, and was given \(1, 5, 8, 8\)"):
        hi.shape_summary(_HeadDefinedFirst(), (1, 5, 8, 8))


def test_shape_summary_of_a_model_keeps_the_models_own_rgb_message(small):
    with pytest.raises(ValueError, match=r"expects images of shape \(B, 3, H, W\).*convert the image to RGB"):
        hi.shape_summary(small, (1, 1, 32, 32))


# ------------------------------------------------------------------ exercises: numpy numbers are numbers
@pytest.mark.parametrize("exercise", [lesson07.poly_lr, lesson07.miou_from_confusion], ids=lambda e: e.name)
@pytest.mark.parametrize("numpy_type", [np.float32, lambda v: np.asarray(v, np.float32)], ids=["scalar", "0-d array"])
def test_an_answer_returning_a_numpy_float_passes(exercise, numpy_type):
    assert not isinstance(numpy_type(0.5), float)  # unlike np.float64, which is a float and always passed
    reference = exercise.reference
    result = exercise.check(lambda *args: numpy_type(reference(*args)))
    assert result.passed, result.message


def test_a_numpy_answer_that_is_wrong_is_still_wrong_and_a_numpy_bool_is_no_number():
    reference = lesson07.poly_lr.reference
    wrong = lesson07.poly_lr.check(lambda *args: np.float32(reference(*args) * 2))
    assert not wrong.passed and "your rate is 0.1, not base_lr = 0.05" in wrong.message  # read as the number it is
    boolean = lesson07.poly_lr.check(lambda *args: np.bool_(True))
    assert not boolean.passed and "bool" in boolean.message


# ------------------------------------------------------------------ image_size given a tensor or a whole shape
def test_a_tensor_as_image_size_is_named_by_its_shape_not_printed(small):
    x = torch.randn(1, 3, 256, 256)
    for call in (lambda: viz.plot_architecture("w18", x), lambda: hi.cost_breakdown("w18", x)):
        with pytest.raises(ValueError, match=r"got a tensor of shape \(1, 3, 256, 256\); pass its size, "
                                             r"x.shape\[-2:\]") as raised:
            call()
        assert len(str(raised.value)) < 200  # not the tensor's 65,536 values
    with pytest.raises(ValueError, match=r"got an array of shape \(32, 32, 3\)"):
        hi.stage_shapes("w18", np.zeros((32, 32, 3)))


def test_a_whole_bchw_shape_as_image_size_says_take_its_last_two():
    x = torch.randn(1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"got torch.Size\(\[1, 3, 64, 64\]\): that is a \(B, C, H, W\) shape; "
                                         r"pass shape\[-2:\]"):
        hi.cost_breakdown("w18", x.shape)
    assert hi.stage_shapes("w18", x.shape[-2:]) == hi.stage_shapes("w18", (64, 64))  # the way out works
    assert hi.stage_shapes("w18", torch.tensor([64, 64])) == hi.stage_shapes("w18", (64, 64))  # as before


# ------------------------------------------------------------------ to_tensor: grey, RGBA, a tensor
def test_to_tensor_says_convert_rgb_for_a_grey_or_rgba_pil_image():
    photo = assets.sample_photo(8)
    for mode in ("L", "RGBA", "P"):
        with pytest.raises(ValueError, match=rf"got .*the PIL image is in mode '{mode}': use image.convert\('RGB'\)"):
            assets.to_tensor(photo.convert(mode))
    assert assets.to_tensor(photo.convert("RGBA").convert("RGB")).shape == (1, 3, 8, 8)


def test_to_tensor_says_how_to_fix_a_four_channel_grey_or_channels_first_array():
    rgba = np.zeros((8, 8, 4), np.uint8)
    with pytest.raises(ValueError, match=r"got \(8, 8, 4\); that is RGBA: drop the alpha channel with a\[\.\.\., :3\]"):
        assets.to_tensor(rgba)
    assert assets.to_tensor(rgba[..., :3]).shape == (1, 3, 8, 8)
    grey = np.full((8, 8), 100, np.uint8)
    with pytest.raises(ValueError, match=r"grey image: make three channels of it with np.stack"):
        assets.to_tensor(grey)
    assert assets.to_tensor(np.stack([np.squeeze(grey)] * 3, axis=-1)).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"channels come first: move them last with a.transpose\(1, 2, 0\)"):
        assets.to_tensor(np.zeros((3, 8, 8), np.uint8))


def test_to_tensor_of_a_tensor_says_it_is_one_already_and_how_to_normalise_it():
    x = torch.rand(3, 8, 8)  # torchvision's ToTensor: values in [0, 1], channels first
    with pytest.raises(ValueError, match=r"got a tensor of shape \(3, 8, 8\): already a tensor.*"
                                         r"imagenet_normalize\(x\).unsqueeze\(0\)"):
        assets.to_tensor(x)
    with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\): already a tensor.*x as it is"):
        assets.to_tensor(x.unsqueeze(0))
    assert assets.imagenet_normalize(x).unsqueeze(0).shape == (1, 3, 8, 8)
    hwc = torch.rand(8, 8, 3) * 255  # an H x W x 3 tensor is an image to_tensor takes, as before
    assert torch.allclose(assets.to_tensor(hwc), assets.to_tensor(hwc.numpy()))


# ------------------------------------------------------------------ plot_feature_maps
@pytest.fixture(scope="module")
def features(small):
    return hi.capture_features(small, torch.randn(1, 3, 32, 32))


def test_plot_feature_maps_with_no_stages_lists_them(features):
    with pytest.raises(ValueError, match=r"stages is empty: name at least one of \['stem', .*stages=None"):
        viz.plot_feature_maps(features, stages=[])


def test_plot_feature_maps_with_a_channels_first_array_image_says_transpose(features):
    image = np.zeros((3, 32, 32), np.float32)
    with pytest.raises(ValueError, match=r"H x W x 3.*got shape \(3, 32, 32\); .*image.transpose\(1, 2, 0\)"):
        viz.plot_feature_maps(features, stages=["stage2"], image=image)
    with pytest.raises(ValueError, match=r"batch of one: pass image\[0\].transpose\(1, 2, 0\)"):
        viz.plot_feature_maps(features, stages=["stage2"], image=image[None])
    fig = viz.plot_feature_maps(features, stages=["stage2"], image=image.transpose(1, 2, 0))
    assert len(fig.axes) == 3  # the input and stage 2's two branches


# ------------------------------------------------------------------ deploy: a name where a model is needed
def test_conv_bn_pairs_and_fold_batchnorm_of_a_variant_name_say_build_the_model():
    for call in (deploy.conv_bn_pairs, deploy.fold_batchnorm):
        with pytest.raises(TypeError, match=r"expects a torch.nn.Module, got the variant name 'w18': build the "
                                            r"model first, hrnet_teach.create_model\('w18'\).eval\(\)"):
            call("w18")
    with pytest.raises(TypeError, match="expects a torch.nn.Module .* got int"):
        deploy.conv_bn_pairs(3)
    assert deploy.conv_bn_pairs(nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))) == [("0", "1")]


# ------------------------------------------------------------------ HRNetConfig.replace
def test_config_replace_of_an_unknown_field_lists_the_fields():
    config = ht.get_config("w18")
    with pytest.raises(TypeError, match=r"no field 'width' \(width is read-only, stage2.num_channels\[0\].*"
                                        r"get_config\('w32'\).*its fields are stage1, stage2, .*fusion"):
        config.replace(width=20)
    with pytest.raises(TypeError, match=r"no field 'fusoin'; its fields are .*fusion, head"):
        config.replace(fusoin=False)
    assert config.replace(fusion=False).fusion is False


# ------------------------------------------------------------------ course
def test_course_into_a_file_or_the_stored_lessons_is_a_usage_error(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    err = _usage_error(capsys, course.main, [str(afile), "--print-command"])
    assert "afile is a file, not a folder: pick a folder" in err and "Traceback" not in err
    assert afile.read_text() == "mine"
    err = _usage_error(capsys, course.main, [str(course.lessons_dir()), "--print-command"])
    assert "is where the stored lessons live; pick another folder" in err


def test_course_clean_of_a_missing_or_non_notebook_file_is_a_usage_error(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# notes\n")
    broken = tmp_path / "broken.ipynb"
    broken.write_text("not json")
    assert "nope.ipynb: no such notebook" in _usage_error(capsys, course.main, ["--clean", str(tmp_path / "nope.ipynb")])
    assert "is not a notebook (.ipynb)" in _usage_error(capsys, course.main, ["--clean", str(readme)])
    assert "broken.ipynb is not a readable notebook" in _usage_error(capsys, course.main, ["--clean", str(broken)])
    assert "is a folder: name the notebook files" in _usage_error(capsys, course.main, ["--clean", str(tmp_path)])
    assert readme.read_text() == "# notes\n"


def test_course_clean_checks_every_notebook_before_writing_any(tmp_path, capsys):
    import nbformat

    lesson = tmp_path / "lesson.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("1 + 1", outputs=[nbformat.v4.new_output("stream", text="2")])]
    nbformat.write(nb, str(lesson))
    before = lesson.read_text()
    _usage_error(capsys, course.main, ["--clean", str(lesson), str(tmp_path / "nope.ipynb")])
    assert lesson.read_text() == before  # not cleaned: the second path was bad
    assert course.main(["--clean", str(lesson)]) == 0 and lesson.read_text() != before


# ------------------------------------------------------------------ bench
def test_bench_json_under_a_file_or_at_a_folder_is_refused_before_measuring(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    err = _usage_error(capsys, bench.main, ["--json", str(tmp_path / "afile" / "x.json"), "--device", "cpu"])
    assert "afile is a file, not a folder; pick another path" in err
    err = _usage_error(capsys, bench.main, ["--json", str(tmp_path), "--device", "cpu"])
    assert "is a folder: name a file in it" in err


@pytest.mark.parametrize("repeats", ["0", "-3", "two"])
def test_bench_repeats_below_one_is_refused_not_replaced_by_the_default(repeats, capsys):
    err = _usage_error(capsys, bench.main, ["--repeats", repeats, "--device", "cpu"])
    assert "argument --repeats: must be" in err


@pytest.mark.parametrize("argv", [
    ["--repeats", "0"], ["--warmup", "-1"], ["--batch-size", "0"], ["--sizes", "10x10"], ["--head", "pose", "--sizes", "100x100"],
    ["--deploy", "--repeats", "-3"], ["--json", "{tmp}"], ["--deploy", "--json", "{tmp}"],
])
def test_bench_checks_every_argument_before_measuring_anything(argv, tmp_path, monkeypatch, capsys):
    """A bad argument stops the bench at once: nothing is measured first (a full bench takes minutes)."""
    from hrnet_teach import deploy_bench

    def measured(*args, **kwargs):
        raise AssertionError("measured before the arguments were checked")

    monkeypatch.setattr(bench, "run", measured)
    monkeypatch.setattr(bench, "measure", measured)
    monkeypatch.setattr(deploy_bench, "run", measured)
    monkeypatch.setattr(deploy_bench, "measure_model", measured)
    _usage_error(capsys, bench.main, [a.format(tmp=tmp_path) for a in argv] + ["--device", "cpu"])


# ------------------------------------------------------------------ translate
def test_translate_stub_of_an_unknown_lesson_lists_the_lessons(capsys):
    err = _usage_error(capsys, translate.main, ["--stub", "nope"])
    assert "no lesson 'nope' in notebooks/: the lessons are 00_welcome" in err and "03_fuse_matrix" in err
    err = _usage_error(capsys, translate.main, ["--stub", "notebooks/03_fuse_matrix.ipynb"])
    assert "give its stem, 03_fuse_matrix" in err
    err = _usage_error(capsys, translate.main, ["--check", "nope"])
    assert "no lesson 'nope'" in err


def test_translate_of_a_lesson_without_a_translation_file_says_how_to_start_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(translate, "SRC_DIR", tmp_path)  # no translation files at all
    err = _usage_error(capsys, translate.main, ["--check", "03_fuse_matrix"])
    assert "has no translation file notebooks/zh/src/03_fuse_matrix.yaml" in err and "--stub 03_fuse_matrix" in err


# ------------------------------------------------------------------ colab
@pytest.mark.parametrize("argv", [["--help"], ["--wheeel"], ["notebooks"]])
def test_colab_refuses_help_and_typos_before_writing_anything(argv, monkeypatch, tmp_path, capsys):
    written = []
    monkeypatch.setattr(colab, "rewrite_notebooks", lambda *a, **k: written.append("notebooks") or [])
    monkeypatch.setattr(colab, "refresh_readme", lambda *a, **k: written.append("readme") or False)
    monkeypatch.setattr(colab, "build_wheel", lambda *a, **k: written.append("wheel"))
    with pytest.raises(SystemExit) as stopped:
        colab.main(argv)
    assert stopped.value.code == (0 if argv == ["--help"] else 2)
    out = capsys.readouterr()
    assert written == []
    assert "--check" in out.out if argv == ["--help"] else "unrecognized arguments" in out.err


def test_colab_outside_the_repository_root_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    err = _usage_error(capsys, colab.main, [])
    assert "run it from the repository root" in err
    assert list(tmp_path.iterdir()) == []


def test_colab_check_reports_without_writing(monkeypatch, tmp_path, capsys):
    (tmp_path / "notebooks").mkdir()
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('old setup')")]
    nbformat.write(nb, str(tmp_path / "notebooks" / "00_x.ipynb"))
    readme = f"# course\n{colab.BADGE_START}\nold\n{colab.BADGE_END}\n"
    (tmp_path / "README.md").write_text(readme)
    before = (tmp_path / "notebooks" / "00_x.ipynb").read_text()
    monkeypatch.chdir(tmp_path)
    assert colab.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "00_x.ipynb: first cell out of date" in out and "README.md badges out of date" in out
    assert (tmp_path / "notebooks" / "00_x.ipynb").read_text() == before and (tmp_path / "README.md").read_text() == readme
    assert colab.main([]) == 0  # the real run writes (here, into tmp_path)
    assert colab.main(["--check"]) == 0


# ------------------------------------------------------------------ one check for every switch
def test_one_flag_check_for_every_switch_of_the_package():
    from hrnet_teach._validate import flag

    assert flag("fusion", np.bool_(False)) is False and flag("amp", True) is True  # numpy's bools are bools
    assert flag("channels_last", None, none_means="NHWC on CUDA only") is None
    with pytest.raises(ValueError, match=r"fusion must be True or False, got 'no' \(str\): any non-empty string "
                                         r"counts as True; pass fusion=False"):
        flag("fusion", "no")
    with pytest.raises(TypeError, match=r"strict must be True or False, got 1 \(int\)$"):
        flag("strict", 1, TypeError)
    with pytest.raises(ValueError, match=r"True, False or None \(NHWC on CUDA only\), .* pass channels_last=None"):
        flag("channels_last", "auto", none_means="NHWC on CUDA only")
    # the same words wherever a switch is taken
    for call in (lambda: ht.create_model("w18_small_v1", align_corners="True"),
                 lambda: ht.get_config("w18_small_v1").replace(fusion="False"),
                 lambda: deploy.fast(nn.Conv2d(3, 3, 1), fold="yes")):
        with pytest.raises((ValueError, TypeError),
                           match=r"must be True(, False or None \([^)]*\)| or False), got '\w+' \(str\): any non-empty"):
            call()


def test_a_check_works_where_torch_cannot_tell_its_default_device(monkeypatch):
    """torch 2.7, the floor the README gives, raises AttributeError from get_default_device() once a
    `with torch.device(...)` block has ended in the thread (it leaves None behind); every check asked it first and
    said 'the check failed'. There the default is the CPU."""
    def forgotten():
        raise AttributeError("'NoneType' object has no attribute 'device'")
    monkeypatch.setattr(torch, "get_default_device", forgotten)
    assert lesson07.poly_lr.check(lesson07.poly_lr.reference).passed
