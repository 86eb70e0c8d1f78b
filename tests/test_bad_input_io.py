"""Bad input to loading, export, training and data: a clear error early, never torch's deep traceback.

Each test is one thing a learner plausibly passes (a run's folder for a checkpoint, a
bare state dict to --resume, --device gpu, a numpy array to run_onnx, ...) and checks
the key words of the message that says what was wrong and what to do. The files they
use are made here, in tmp_path; the models are small (W18-small-v1 or one conv).
"""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import hrnet_teach as ht
from hrnet_teach import ablation, assets, bench, data, deploy
from hrnet_teach import train as T
from hrnet_teach import weights as W
from hrnet_teach.train_config import TrainConfig

TINY_RUN = dict(epochs=1, train_size=2, val_size=2, batch_size=2, image_size=32, progress=False, device="cpu")


@pytest.fixture(scope="module")
def small():
    return ht.create_model("w18_small_v1", head="segmentation", num_classes=4).eval()


@pytest.fixture()
def conv_onnx(tmp_path):
    """A one-conv ONNX file with a fixed (1, 3, 8, 8) input, written by torch.onnx directly (fast)."""
    path = tmp_path / "conv.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(nn.Conv2d(3, 2, 1).eval(), (torch.randn(1, 3, 8, 8),), str(path), input_names=["x"],
                          dynamo=False)
    return path


# ------------------------------------------------------------------ checkpoints
def test_a_folder_is_named_a_folder_and_a_run_folder_points_at_its_checkpoint(tmp_path, small):
    with pytest.raises(IsADirectoryError, match="is a folder, not a checkpoint file: pass the checkpoint file"):
        W.load_weights(small, tmp_path)
    torch.save({"model": small.state_dict()}, tmp_path / "checkpoint.pt")  # what train's --out holds
    for call in (lambda: W.load_weights(small, tmp_path), lambda: W.read_checkpoint(tmp_path),
                 lambda: W.model_from_checkpoint(tmp_path)):
        with pytest.raises(IsADirectoryError, match=r"did you mean .*checkpoint\.pt"):
            call()


def test_a_url_is_refused_with_how_to_download_it(small):
    with pytest.raises(FileNotFoundError, match="not URLs. Download it first"):
        W.load_weights(small, "https://example.com/hrnet_w18.pth")


def test_a_missing_file_still_says_no_checkpoint_file(tmp_path, small):
    with pytest.raises(FileNotFoundError, match="No checkpoint file at .*nope.pth"):
        W.load_weights(small, tmp_path / "nope.pth")


def test_a_zip_checkpoint_cut_within_its_first_64_kib_is_called_truncated(tmp_path, small):
    # torch's zip reader fails on these with a bare "[Errno 22] Invalid argument" (an OSError)
    good = tmp_path / "good.pth"
    torch.save(small.state_dict(), good)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(ValueError, match="archive's end is missing .truncated.*Download or copy it again"):
        W.load_weights(small, cut)


def test_read_checkpoint_of_a_model_says_it_wants_a_path(small):
    with pytest.raises(TypeError, match="checkpoint path must be a str or Path, got HRNetSegmentation"):
        W.model_from_checkpoint(small)


# ------------------------------------------------------------------ resuming
def _conv_and_opt(optimizer=torch.optim.AdamW):
    conv = nn.Conv2d(3, 2, 1)
    return conv, optimizer(conv.parameters(), lr=0.1)


def test_resume_from_weights_without_optimizer_state_says_which_file_to_use(tmp_path):
    conv, opt = _conv_and_opt()
    bare, exported = tmp_path / "bare.pth", tmp_path / "small.pt"
    torch.save(conv.state_dict(), bare)
    torch.save({"model": conv.state_dict(), "epoch": 3, "config": {}}, exported)  # like --export's copy
    for path in (bare, exported):
        with pytest.raises(ValueError, match="cannot resume a run: it has no optimizer state.*checkpoint.pt"):
            T.load(path, conv, opt)


def test_resume_with_another_optimizer_is_refused_before_a_step_fails_deep_in_torch(tmp_path):
    conv, adamw = _conv_and_opt()
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": conv.state_dict(), "optimizer": adamw.state_dict(), "epoch": 1,
                "args": {"optimizer": "adamw"}}, path)
    _, sgd = _conv_and_opt(torch.optim.SGD)
    with pytest.raises(ValueError, match="trained with optimizer 'adamw', this run uses 'sgd'.*--optimizer adamw"):
        T.load(path, conv, sgd)
    assert T.load(path, conv, adamw)[0] == 1  # the same optimizer resumes as before


def test_resume_from_the_run_folder_points_at_its_checkpoint(tmp_path):
    conv, opt = _conv_and_opt()
    torch.save({"model": conv.state_dict()}, tmp_path / "checkpoint.pt")
    with pytest.raises(IsADirectoryError, match="did you mean"):
        T.load(tmp_path, conv, opt)


# ------------------------------------------------------------------ training settings
@pytest.mark.parametrize("field, value", [("lr", -1.0), ("lr", float("nan")), ("lr", "abc"), ("lr", True),
                                          ("weight_decay", -1e-4), ("weight_decay", float("inf"))])
def test_learning_rate_and_weight_decay_must_be_numbers_at_least_0(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a number >= 0, e.g. .*or None for the optimizer's default"):
        TrainConfig(**{field: value})


def test_good_learning_rates_still_pass():
    assert TrainConfig(lr=0.01).base_lr == 0.01
    assert TrainConfig(lr="1e-3", weight_decay=0).base_lr == 0.001
    assert TrainConfig().base_lr == T.DEFAULT_LR["adamw"]


def test_negative_workers_are_refused_by_the_config():
    with pytest.raises(ValueError, match="workers must be a non-negative integer, got -1"):
        TrainConfig(workers=-1)


@pytest.mark.parametrize("device", ["gpu", "CPU", "cuda0"])
def test_a_device_torch_does_not_know_is_named_with_the_choices(device):
    with pytest.raises(ValueError, match=f"device '{device}' is not a device torch knows: use 'auto', 'cpu'"):
        T.pick_device(device)


def test_cli_device_gpu_and_threads_0_exit_with_one_line():
    with pytest.raises(SystemExit, match="error: device 'gpu' is not a device torch knows"):
        T.main(["--device", "gpu", "--quiet"])
    with pytest.raises(SystemExit, match="error: --threads must be at least 1, got 0"):
        T.main(["--threads", "0"])


def test_out_that_is_a_file_and_export_that_is_a_folder_are_refused_before_training(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a folder")
    with pytest.raises(FileExistsError, match="is a file: out is the folder for checkpoint.pt"):
        T.train(**TINY_RUN, out=notes)
    with pytest.raises(IsADirectoryError, match="is a folder: give a file name"):
        T.train(**TINY_RUN, export=tmp_path)


def test_export_without_out_writes_the_export(tmp_path):
    # before: --export without --out trained and silently wrote nothing
    path = tmp_path / "deep" / "small.pt"
    T.train(**TINY_RUN, export=path)
    assert path.is_file()
    model = W.model_from_checkpoint(path)
    assert T.num_classes_of(model) == data.NUM_CLASSES


def test_labels_beyond_the_models_classes_are_named():
    target = torch.tensor([0, 1, 255, 3])
    assert T.confusion_matrix(target, target, 4).sum() == 3  # 255 is ignored, as before
    with pytest.raises(ValueError, match="labels run from 0 to 3 .*there are 2 classes.*num_classes=dataset.num_classes"):
        T.confusion_matrix(torch.zeros(4, dtype=torch.long), target, 2)


def test_segmentation_loss_says_how_to_fix_the_usual_masks():
    logits = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match=r"mask.squeeze\(1\)"):
        T.segmentation_loss(logits, torch.zeros(1, 1, 32, 32, dtype=torch.long))
    with pytest.raises(ValueError, match=r"mask must be .*class indices.*mask.long\(\)"):
        T.segmentation_loss(logits, torch.zeros(1, 32, 32))


# ------------------------------------------------------------------ export
def test_export_example_of_the_wrong_kind_is_named_before_tracing(small):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\), got \(3, 64, 64\); add a batch dimension"):
        deploy.export_program(small, torch.randn(3, 64, 64))
    with pytest.raises(TypeError, match=r"example must be a tensor .*got ndarray: torch.from_numpy"):
        deploy.export_program(small, np.zeros((2, 3, 64, 64), np.float32))


def test_an_opset_newer_than_the_exporter_writes_is_refused(tmp_path, small):
    # torch 2.13's TorchScript exporter writes up to opset 20 (ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET); above it only warned
    with pytest.raises(ValueError, match="opset 21 is newer than the torchscript exporter writes here .at most 20"):
        deploy.export_onnx(small, tmp_path / "m.onnx", opset=21, exporter="torchscript")
    with pytest.raises(ValueError, match="opset 99 is newer than the dynamo exporter"):
        deploy.export_onnx(small, tmp_path / "m.onnx", opset=99)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("missing, exporter, needle", [
    ("onnx", "torchscript", "needs onnx, which cannot be imported here: pip install onnx"),
    ("onnxscript", "dynamo", "pip install onnxscript .or exporter='torchscript'"),
])
def test_export_without_the_onnx_packages_says_what_to_install(tmp_path, small, monkeypatch, missing, exporter, needle):
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now raises ImportError
    with pytest.raises(ImportError, match=needle):
        deploy.export_onnx(small, tmp_path / "m.onnx", exporter=exporter, dynamic=False)


def test_onnx_session_of_a_missing_or_non_onnx_file(tmp_path, small):
    with pytest.raises(FileNotFoundError, match=r"No ONNX file at .*export_onnx\(model"):
        deploy.onnx_session(tmp_path / "missing.onnx")
    checkpoint = tmp_path / "model.pth"
    torch.save(nn.Conv2d(3, 2, 1).state_dict(), checkpoint)
    with pytest.raises(ValueError, match="is not an ONNX model file.*load_weights"):
        deploy.onnx_session(checkpoint)


def test_run_onnx_names_a_missing_batch_dimension_a_numpy_array_and_a_pytorch_model(conv_onnx, small):
    x = torch.randn(1, 3, 8, 8)
    assert deploy.run_onnx(conv_onnx, x).shape == (1, 2, 8, 8)  # good input as before
    with pytest.raises(ValueError, match=r"takes 4-dimensional input.*x.unsqueeze\(0\)"):
        deploy.run_onnx(conv_onnx, x[0])
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor .*torch.from_numpy\(x\)"):
        deploy.run_onnx(conv_onnx, x.numpy())
    with pytest.raises(TypeError, match=r"a PyTorch model runs as model\(x\)"):
        deploy.run_onnx(small, x)


def test_max_relative_difference_takes_numpy_outputs_as_onnx_runtime_returns_them():
    a = torch.randn(1, 2, 4, 4)
    assert deploy.max_relative_difference(a, a.numpy()) == 0.0
    assert deploy.max_relative_difference([a], [a.numpy() * 1.5]) > 0.3


def test_fold_conv_bn_with_swapped_arguments():
    with pytest.raises(TypeError, match="got BatchNorm2d and Conv2d .swapped"):
        deploy.fold_conv_bn(nn.BatchNorm2d(4), nn.Conv2d(3, 4, 1))


# ------------------------------------------------------------------ command lines
def test_bench_deploy_with_a_bad_variant_or_size_is_a_usage_error(capsys):
    for argv, needle in ((["--variants", "w19"], "Unknown HRNet variant 'w19'"),
                         (["--variants", "w18_small_v1", "--head", "pose", "--sizes", "48"], "multiples of 32")):
        with pytest.raises(SystemExit) as exit_info:
            bench.main(["--deploy", "--device", "cpu", *argv])
        assert exit_info.value.code == 2 and needle in capsys.readouterr().err


def test_bench_json_folder_is_made_before_measuring(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "run", lambda *args, **kwargs: [])  # no measuring here: only where it writes
    path = tmp_path / "new" / "rows.json"
    assert bench.main(["--variants", "w18_small_v1", "--sizes", "32", "--device", "cpu", "--json", str(path)]) == 0
    assert path.is_file()


@pytest.mark.parametrize("argv, needle", [
    (["--variant", "w19"], "error: Unknown HRNet variant 'w19'"),
    (["--epochs", "0"], "error: epochs must be a positive integer, got 0"),
    (["--device", "gpu"], "error: device 'gpu' is not a device torch knows"),
    (["--threads", "-1"], "error: --threads must be at least 1"),
])
def test_ablation_flags_are_checked_before_the_first_training(argv, needle):
    with pytest.raises(SystemExit, match=needle):
        ablation.main(["--seeds", "1", *argv])


# ------------------------------------------------------------------ data and pictures
def test_shapes_dataset_takes_a_tensor_index_and_names_a_float_one():
    dataset = data.ShapesDataset(2, 32)
    assert torch.equal(dataset[torch.tensor(1)][1], dataset[1][1])
    with pytest.raises(TypeError, match=r"index must be a whole number, got 1.0 \(float\)"):
        dataset[1.0]


def test_colorize_names_an_image_or_logits_passed_for_a_mask():
    with pytest.raises(TypeError, match=r"mask of class indices .*got float32 .*logits.argmax\(0\)"):
        data.colorize(torch.rand(4, 8, 8))
    assert data.colorize(torch.zeros(8, 8, dtype=torch.bool)).shape == (8, 8, 3)  # a boolean mask still draws


def test_sample_photo_takes_one_side_and_names_a_bad_size():
    assert assets.sample_photo(64).size == (64, 64)
    with pytest.raises(ValueError, match="size height must be a positive integer, got 0"):
        assets.sample_photo((0, 64))


def test_pictures_and_normalisation_name_the_layout_they_want():
    with pytest.raises(TypeError, match=r"not a file name .*PIL.Image.open\(path\)"):
        assets.to_tensor("photo.jpg")
    with pytest.raises(ValueError, match=r"got shape \(8, 8, 3\); the channels come last \(H, W, 3\); move them with x.permute\(2, 0, 1\)"):
        assets.imagenet_normalize(torch.zeros(8, 8, 3))
    with pytest.raises(TypeError, match=r"got ndarray: torch.from_numpy\(x\)"):
        assets.imagenet_normalize(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"got shape \(8, 8\); a mask of classes draws with .*colorize"):
        assets.to_image(torch.zeros(8, 8))
    assert assets.to_image(torch.zeros(1, 3, 8, 8)).shape == (8, 8, 3)


# ------------------------------------------------------------------ second round
def test_weights_load_into_a_dataparallel_wrapped_model(tmp_path, small):
    # before: "NOT A FULL MATCH: would load 0 of 435 tensors into DataParallel" (its keys start with 'module.')
    path = tmp_path / "w.pth"
    torch.save(small.state_dict(), path)
    wrapped = nn.DataParallel(ht.create_model("w18_small_v1", head="segmentation", num_classes=4))
    assert W.load_weights(wrapped, path, verbose=False).ok
    assert torch.equal(wrapped.module.conv1.weight.cpu(), small.conv1.weight)  # DataParallel moves it to a GPU when there is one
    prefixed = {"module." + k: v for k, v in small.state_dict().items()}  # saved from a wrapped model
    assert W.load_weights(wrapped, prefixed, verbose=False).ok


@pytest.mark.parametrize("size, needle", [((64.5, 64), "size height must be a positive integer, got 64.5"),
                                          ((64, -64), "size width must be a positive integer, got -64")])
def test_check_size_refuses_fractions_and_negative_sides(small, size, needle):
    # before: 64.5 was cut to 64 silently; -64 got the nearest-upsampling message of the pose head
    with pytest.raises(ValueError, match=needle):
        deploy.check_size(small, size)
    assert deploy.check_size(small, torch.Size([63, 65])) == (63, 65)


@pytest.mark.parametrize("size, needle", [(64, r"size must be \(height, width\), got 64"),
                                          ((1, 3, 64, 64), r"that is a \(B, C, H, W\) shape; pass shape\[-2:\]"),
                                          ((64, 100_000), r"size 100000 is far larger than the course's images")])
def test_check_size_says_what_a_size_is_as_image_sizes_do_everywhere(small, size, needle):
    with pytest.raises(ValueError, match=needle):  # _validate.image_size_hw's words, shared with the rest
        deploy.check_size(small, size)


def test_evaluate_on_a_device_that_is_not_there_says_so(small, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda' was asked for but this torch sees no GPU"):
        T.evaluate(small, data.ShapesDataset(2, 32), device="cuda")


def test_an_onnx_file_given_to_load_weights_is_named(tmp_path, small):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07")  # the name decides; the file is never read as a checkpoint
    with pytest.raises(ValueError, match=r"is an ONNX file, not a PyTorch checkpoint: run it with .*run_onnx"):
        W.load_weights(small, path)


def test_to_tensor_refuses_an_image_already_scaled_to_0_1():
    # before: divided by 255 a second time, a silently black image
    photo = np.asarray(assets.sample_photo((8, 8)))
    with pytest.raises(ValueError, match=r"values are all in \[0, 1\], but to_tensor divides by 255 itself"):
        assets.to_tensor(photo / 255.0)
    assert torch.allclose(assets.to_tensor(photo.astype(np.float32)), assets.to_tensor(photo))  # 0-255 floats pass


# ------------------------------------------------------------------ pictures and pixels, the second audit
def test_colorize_takes_one_mask_of_known_classes():
    with pytest.raises(ValueError, match=r"one H x W mask, got shape \(1, 8, 8\): pick one mask, mask\[0\]"):
        data.colorize(torch.zeros(1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"looks like an image \(H x W x 3\), not a mask"):
        data.colorize(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"colours for classes 0 to 3 \(and 255, ignored\), got -1, 7: "):
        data.colorize(torch.tensor([[0, 7], [-1, 255]]))
    logits = torch.zeros(4, 8, 8, requires_grad=True)  # the package's message, not torch's "requires grad"
    with pytest.raises(TypeError, match=r"pass logits.argmax\(0\)"):
        data.colorize(logits)


def test_raw_pixels_are_refused_where_normalised_values_are_meant(small):
    pixels = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    with pytest.raises(TypeError, match=r"float RGB values in \[0, 1\], got uint8 values: .* x.float\(\) / 255"):
        assets.imagenet_normalize(pixels)
    with pytest.raises(TypeError, match=r"normalised float values, got uint8: .*assets\.to_tensor\(image\)"):
        ht.inspect.capture_features(small, pixels)
    assert assets.imagenet_normalize(pixels.float() / 255).isfinite().all()


def test_to_image_takes_one_image_not_the_first_of_a_batch():
    with pytest.raises(ValueError, match=r"one image, got a batch of 2: pass one of them, x\[k\]"):
        assets.to_image(torch.zeros(2, 3, 8, 8))


def test_a_checkpoint_read_as_a_config_file_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    torch.save({"w": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"is not a text YAML file .*weights\.model_from_checkpoint\(path\)"):
        ht.HRNetConfig.from_yaml(path)


# ------------------------------------------------------------------ input audit (findings 2, 7, 17, 21, 22, 29, 32)
def test_max_relative_difference_never_reads_nan_or_inf_as_identical():
    """Python's max(worst, nan) keeps worst: one NaN read as 0.0, "identical", and hid every other difference."""
    torch.manual_seed(0)
    y = torch.randn(1, 4, 16, 16)
    z = y.clone()
    z[0, 0, 0, 0] = float("nan")
    z[0, 1] += 100
    with pytest.warns(RuntimeWarning, match=r"output 0: at 1 place\(s\) a NaN or infinite value meets something "
                                            r"else \(first at \(0, 0, 0, 0\)\): the first outputs hold 1 number, "
                                            r"the second 1 NaN; the two do not agree"):
        assert deploy.max_relative_difference(y, z) == float("inf")
    with pytest.warns(RuntimeWarning, match=r"the first outputs hold 1 infinite, the second 1 number;"):
        assert deploy.max_relative_difference(torch.where(z.isnan(), float("inf"), y), y) == float("inf")
    z_inf = torch.where(z.isnan(), float("-inf"), y)  # both non-finite, but not alike: still a disagreement
    with pytest.warns(RuntimeWarning, match=r"output 1: .*the first outputs hold 1 NaN, the second 1 infinite;"):
        assert deploy.max_relative_difference([y, z], [y, z_inf]) == float("inf")
    with pytest.warns(RuntimeWarning, match=r"both outputs hold the same 1 NaN/infinite value\(s\) in the same places"):
        assert np.isnan(deploy.max_relative_difference([y, z], [y, z.clone()]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert deploy.max_relative_difference(y, y) == 0.0  # finite outputs: as before, and no warning


def test_export_switches_refuse_strings_and_none(tmp_path, small):
    with pytest.raises(TypeError, match=r"export_onnx\(\): dynamic must be True or False, got 'no'.*dynamic=False"):
        deploy.export_onnx(small, tmp_path / "x.onnx", dynamic="no")
    with pytest.raises(TypeError, match=r"export_program\(\): fold must be True or False, got 'no'"):
        deploy.export_program(small, fold="no")
    with pytest.raises(TypeError, match=r"export_program\(\): dynamic must be True or False, got None"):
        deploy.export_program(small, dynamic=None)
    assert not (tmp_path / "x.onnx").exists()


def test_export_onnx_of_a_meta_model_is_refused_at_once(tmp_path):
    with torch.device("meta"):
        meta = ht.create_model("w18_small_v1").eval()
    with pytest.raises(ValueError, match=r"HRNetSegmentation was built on the meta device .*: it has shapes but no "
                                         r"weights, so export_onnx\(\) has nothing to write into an ONNX file"):
        deploy.export_onnx(meta, tmp_path / "m.onnx")


def test_an_empty_onnx_file_is_called_an_interrupted_export(tmp_path):
    pytest.importorskip("onnxruntime")
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.onnx is empty \(0 bytes\): the export that wrote it was interrupted"):
        deploy.onnx_session(path)


def test_example_input_checks_its_model_and_batch(small):
    with pytest.raises(TypeError, match=r"example_input\(\) expects a torch.nn.Module.*got NoneType"):
        deploy.example_input(None)
    with pytest.raises(ValueError, match=r"batch must be a positive integer, got -1"):
        deploy.example_input(small, batch=-1)
    with pytest.raises(ValueError, match=r"batch must be a positive integer, got 2.5"):
        deploy.example_input(small, batch=2.5)
    with pytest.raises(ValueError, match=r"size 100000 is far larger than the course's images.*at most 8192"):
        deploy.example_input(small, size=(100000, 64))
    assert deploy.example_input(small, batch=3).shape == (3, 3, 64, 64)


def test_fold_conv_bn_refuses_a_batchnorm_in_training_mode():
    conv, bn = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
    with pytest.raises(RuntimeError, match=r"fold_conv_bn\(\): .* is in training mode.*call bn.eval\(\)"):
        deploy.fold_conv_bn(conv, bn)
    assert deploy.fold_conv_bn(conv, bn.eval()).bias is not None


def test_sample_photo_refuses_a_size_that_would_fill_memory():
    with pytest.raises(ValueError, match=r"size 1000000 is far larger than the course's images.*about 12,000 GB.*"
                                         r"at most 8192 pixels a side"):
        assets.sample_photo((10**6, 10**6))


def test_to_tensor_refuses_16_bit_and_nan_images_and_to_image_none():
    with pytest.raises(ValueError, match=r"the image is uint16 \(values up to 60000\): to_tensor takes 0-255 pixels; "
                                         r"convert it with \(a / 257\).astype\(np.uint8\)"):
        assets.to_tensor(np.full((8, 8, 3), 60000, np.uint16))
    with pytest.raises(ValueError, match=r"the image holds 192 NaN value\(s\)"):
        assets.to_tensor(np.full((8, 8, 3), np.nan, np.float32))
    with pytest.raises(TypeError, match=r"to_image takes a normalised image tensor .*got NoneType"):
        assets.to_image(None)
    assert assets.to_tensor(np.full((8, 8, 3), 200, np.uint8)).shape == (1, 3, 8, 8)


def test_size_rule_of_a_variant_name_is_refused_not_answered_one_by_one():
    with pytest.raises(TypeError, match=r"size_rule\(\) expects a torch\.nn\.Module, got the variant name 'w18'"):
        deploy.size_rule("w18")


def test_bench_names_only_the_flag_that_is_wrong(capsys):
    """--threads -1 was answered '--batch-size, --repeats and --threads must be at least 1, --warmup at least 0'."""
    with pytest.raises(SystemExit):
        bench.main(["--threads", "-1"])
    error = capsys.readouterr().err
    assert "--threads must be at least 1, got -1" in error and "--batch-size" not in error.split("error:")[-1]


def test_batchnorm_folds_inside_data_parallel():
    """torch.fx cannot trace DataParallel's scatter (a TraceError); the network inside it is folded, in place."""
    model = ht.create_model("w18_small_v1", num_classes=4).eval()
    wrapped = torch.nn.DataParallel(model)
    pairs = deploy.conv_bn_pairs(wrapped)
    assert pairs == deploy.conv_bn_pairs(model) and pairs
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        assert deploy.fold_batchnorm(wrapped) == len(pairs)
        assert deploy.max_relative_difference(before, model(x)) < 1e-4
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
