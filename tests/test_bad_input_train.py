"""Bad input to training and its helpers: a clear error early, never torch's deep traceback or a lost run.

Each test is one thing a learner plausibly does (a pose run at 48 pixels, --export under a file,
logits where classes are wanted, an OCR model's two outputs into the plain loss, ...) and checks
the key words of the message, and that the same call with good input behaves as before.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hrnet_teach as ht
from hrnet_teach import data, devices
from hrnet_teach import train as T
from hrnet_teach.ocr import ocr_loss
from hrnet_teach.train_config import TrainConfig

TINY_RUN = dict(epochs=1, train_size=2, val_size=2, batch_size=2, image_size=32, progress=False, device="cpu")


def _meta_image(size: int) -> torch.Tensor:
    return torch.empty(1, 3, size, size, device="meta")


# ------------------------------------------------------------------ sizes that are not multiples of 32
@pytest.mark.parametrize("kwargs", [dict(head="pose"), dict(head="classification"), dict(head="pyramid"),
                                    dict(features_only=True)])
def test_a_model_that_cannot_fuse_bilinearly_is_not_told_to(kwargs):
    with torch.device("meta"):
        model = ht.create_model("w18_small_v1", **kwargs).eval()
    with pytest.raises(ValueError, match=r"multiples of 32.*e\.g\. to 64x64, or use the segmentation head") as caught:
        model(_meta_image(48))
    assert "upsample" not in str(caught.value)
    with pytest.raises(TypeError, match="upsample"):  # the advice it no longer gets could not be followed
        ht.create_model("w18_small_v1", upsample="bilinear", **kwargs)


def test_a_bare_nearest_backbone_is_told_to_fuse_bilinearly_and_can():
    with torch.device("meta"):
        nearest = ht.HRNet("w18_small_v1", upsample="nearest").eval()
        bilinear = ht.HRNet("w18_small_v1", upsample="bilinear").eval()
    with pytest.raises(ValueError, match=r"e\.g\. to 64x64, or build the model with upsample='bilinear'"):
        nearest(_meta_image(48))
    assert bilinear(_meta_image(48))[0].shape == (1, 16, 12, 12)


def test_a_pose_run_needs_a_size_that_halves_exactly_before_any_data_or_model(monkeypatch):
    with pytest.raises(ValueError, match=r"--head pose needs an --image-size \(image_size\) that halves exactly down "
                                         r"to 1/32, such as a multiple of 32, got 48: use e\.g\. 32 or 64"):
        TrainConfig(head="pose", image_size=48)
    assert TrainConfig(head="pose", image_size=63).image_size == 63  # ceil(63 / 4) = 16: the official code takes it
    monkeypatch.setattr(T, "_loaders", lambda *a: pytest.fail("the datasets were built before the check"))
    with pytest.raises(SystemExit, match=r"error: --head pose needs an --image-size .* got 100: use e\.g\. 96 or 128"):
        T.main(["--head", "pose", "--image-size", "100", "--quiet", "--device", "cpu"])
    assert TrainConfig(head="pose", image_size=64).image_size == 64
    for head in ("segmentation", "ocr"):  # bilinear fusion: any size, as before
        assert TrainConfig(head=head, image_size=48).image_size == 48


# ------------------------------------------------------------------ --out / --export under a file
@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if the run gets as far as its data or its first epoch."""
    monkeypatch.setattr(T, "_loaders", lambda *a: pytest.fail("the datasets were built before the check"))
    monkeypatch.setattr(T, "train_one_epoch", lambda *a, **k: pytest.fail("training started before the check"))


def test_an_export_under_a_file_is_refused_before_training(tmp_path, no_training):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    path = re.escape(str(afile))
    with pytest.raises(NotADirectoryError, match=rf"'{path}' is a file, so '{path}/m.pt' cannot be written: "
                                                 "choose another folder"):
        T.train(**{**TINY_RUN, "epochs": 2}, export=afile / "m.pt")  # before: trained both epochs, then Errno 17
    with pytest.raises(SystemExit, match=r"error: export=.*afile' is a file, so .*afile/deeper/m.pt' cannot be written"):
        T.main(["--epochs", "2", "--quiet", "--device", "cpu", "--export", str(afile / "deeper" / "m.pt")])


def test_an_out_under_a_file_is_refused_with_the_file_named(tmp_path, no_training):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    path = re.escape(str(afile))
    with pytest.raises(NotADirectoryError, match=rf"out='{path}/sub': '{path}' is a file, so .* cannot be written"):
        T.train(**TINY_RUN, out=afile / "sub")  # before: a bare "[Errno 20] Not a directory"


def test_outputs_in_new_folders_pass_the_check(tmp_path):
    T._check_outputs(TrainConfig(out=tmp_path / "a" / "b", export=tmp_path / "c" / "d" / "m.pt"))
    assert not (tmp_path / "a").exists()  # checked, not made


# ------------------------------------------------------------------ confusion_matrix and scores
def test_confusion_matrix_wants_classes_not_logits():
    logits, masks = torch.randn(2, 4, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)
    with pytest.raises(ValueError, match=r"pred has shape \(2, 4, 8, 8\).*\(2, 8, 8\): pass predicted classes, "
                                         r"logits\.argmax\(1\)"):
        T.confusion_matrix(logits, masks, 4)
    assert T.confusion_matrix(logits.argmax(1), masks, 4).sum() == 128


def test_confusion_matrix_names_both_shapes_when_they_differ():
    with pytest.raises(ValueError, match=r"same shape .*got \(4,\) and \(5,\)"):
        T.confusion_matrix(torch.zeros(4, dtype=torch.long), torch.zeros(5, dtype=torch.long), 2)


def test_confusion_matrix_and_scores_take_numpy_and_lists():
    pred, target = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 255])
    cm = T.confusion_matrix(pred, target, 2)
    assert torch.equal(cm, T.confusion_matrix(torch.from_numpy(pred), torch.from_numpy(target), 2))
    assert cm.tolist() == [[1, 1], [0, 1]]
    expected = T.scores(torch.eye(2))
    assert T.scores(np.eye(2)) == expected == T.scores([[1, 0], [0, 1]])
    assert expected["miou"] == 1.0


@pytest.mark.parametrize("cm, shape", [(torch.zeros(3, 2), r"\(3, 2\)"), (np.zeros(4), r"\(4,\)")])
def test_scores_wants_a_square_matrix(cm, shape):
    with pytest.raises(ValueError, match=rf"square \(num_classes, num_classes\) confusion matrix.*got shape {shape}"):
        T.scores(cm)


# ------------------------------------------------------------------ segmentation_loss
def test_segmentation_loss_points_an_ocr_output_to_its_loss():
    outputs, mask = [torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)], torch.zeros(1, 32, 32, dtype=torch.long)
    with pytest.raises(TypeError, match=r"got a list of 2: .*several outputs \(HRNet-OCR returns \[aux, ocr\]\).*"
                                        r"ocr\.ocr_loss.*loss_for\(model\)"):
        T.segmentation_loss(outputs, mask)
    assert torch.isfinite(ocr_loss(outputs, mask))  # the loss it is pointed to takes them


def test_segmentation_loss_blames_the_logits_when_they_are_not_4d():
    with pytest.raises(ValueError, match=r"logits must be \(B, C, H, W\), got shape \(4, 8, 8\).*logits\.unsqueeze\(0\)"):
        T.segmentation_loss(torch.randn(4, 8, 8), torch.zeros(1, 32, 32, dtype=torch.long))


def test_segmentation_loss_names_labels_beyond_the_classes():
    logits, mask = torch.randn(1, 4, 8, 8), torch.zeros(1, 32, 32, dtype=torch.long)
    mask[0, 0, :3] = torch.tensor([7, 255, 2])
    with pytest.raises(ValueError, match=r"labels run from 0 to 7 .*there are 4 classes.*below num_classes, or 255.*"
                                         r"num_classes=dataset\.num_classes"):
        T.segmentation_loss(logits, mask)
    mask[0, 0, 0] = 3  # good labels: the loss as before
    expected = F.cross_entropy(F.interpolate(logits, size=(32, 32), mode="bilinear", align_corners=True), mask,
                               ignore_index=255)
    assert torch.allclose(T.segmentation_loss(logits, mask), expected)


@pytest.mark.parametrize("ohem", [False, True])
def test_ocr_loss_names_labels_beyond_the_classes(ohem):
    outputs, mask = [torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)], torch.zeros(1, 32, 32, dtype=torch.long)
    mask[0, 0, :2] = torch.tensor([9, 255])
    with pytest.raises(ValueError, match=r"labels run from 0 to 9 .*there are 4 classes.*num_classes=dataset"):
        ocr_loss(outputs, mask, ohem=ohem)
    mask[0, 0, 0] = 3  # good labels: a finite loss, as before
    assert torch.isfinite(ocr_loss(outputs, mask, ohem=ohem))


# ------------------------------------------------------------------ small ones
def test_poly_lr_refuses_a_negative_step():
    with pytest.raises(ValueError, match=r"step must be >= 0 .*got -1"):
        T.poly_lr(0.01, -1, 10)
    assert T.poly_lr(0.01, 0, 10) == 0.01 and T.poly_lr(0.01, 11, 10) == 0.0  # past the end: 0, as before


def test_a_dataset_of_length_0_is_refused_not_made_1000_long():
    with pytest.raises(ValueError, match=r"length must be a positive integer, got 0; pass None for the default "
                                         r"\(1000 shapes"):
        data.make_dataset("shapes", "train", 0, 32)
    assert len(data.make_dataset("shapes", "train", None, 32)) == 1000
    assert len(data.make_dataset("shapes", "train", 3, 32)) == 3
    with pytest.raises(ValueError, match=r"got 0; pass None for the whole split"):  # before torchvision or a download
        data.PetsDataset("train", length=0)


def test_an_empty_training_batch_is_called_empty():
    model = ht.create_model("w18_small_v1", num_classes=4)
    with pytest.raises(ValueError, match=r"empty batch \(0 images of 32x32\).*batch size and the length of the dataset"):
        model.train()(torch.zeros(0, 3, 32, 32))
    assert model.eval()(torch.zeros(0, 3, 32, 32)).shape == (0, 4, 8, 8)  # eval mode: empty in, empty out, as before


# ------------------------------------------------------------------ booleans that are strings
@pytest.mark.parametrize("field", ["fusion", "amp", "progress", "align_corners", "ohem", "channels_last"])
def test_a_string_for_a_bool_setting_is_refused_not_taken_as_true(field):
    head = {"head": "ocr"} if field == "ohem" else {}
    with pytest.raises(ValueError, match=rf"{field} must be True(,| or) False.*got 'no' \(str\): any non-empty string "
                                         rf"counts as True; pass {field}=False"):
        TrainConfig(**head, **{field: "no"})  # before: "no" is truthy, so the setting stayed (or went) on
    with pytest.raises(ValueError, match=rf"{field} must be True(,| or) False.*got 1 \(int\)"):
        TrainConfig(**head, **{field: 1})
    assert getattr(TrainConfig(**head, **{field: np.bool_(False)}), field) is False  # numpy's bool is a bool


def test_fusion_no_is_refused_before_training_and_the_cli_still_maps_its_flags(no_training):
    with pytest.raises(ValueError, match=r"fusion must be True or False, got 'no'"):
        T.train(**TINY_RUN, fusion="no")  # before: trained the fused model, the ablation's other arm
    with pytest.raises(ValueError, match=r"channels_last must be True, False or None .*pass channels_last=None"):
        TrainConfig(channels_last="auto")
    config = T.config_from_args(T.parse_args(["--no-fusion", "--quiet", "--amp", "--no-channels-last"]))
    assert (config.fusion, config.progress, config.amp, config.channels_last) == (False, False, True, False)
    assert T.config_from_args(T.parse_args([])).channels_last is None


# ------------------------------------------------------------------ --export names
def test_an_onnx_export_is_refused_before_training(tmp_path, no_training):
    with pytest.raises(ValueError, match=r"--export writes a PyTorch checkpoint \(\.pt\).*hrnet_teach\.deploy\."
                                         r"export_onnx\(model, 'm\.onnx'\) \(lesson 10\)"):
        T.train(**TINY_RUN, export=tmp_path / "m.onnx")  # before: a torch checkpoint named .onnx
    with pytest.raises(SystemExit, match=r"error: --export writes a PyTorch checkpoint .*'m\.pt'"):
        T.main(["--quiet", "--device", "cpu", "--export", "m.ONNX"])
    T._check_outputs(TrainConfig(export=tmp_path / "m.pt"))  # a .pt name passes, as before


def test_an_export_ending_in_a_slash_is_not_written_as_a_file(tmp_path, no_training):
    new = str(tmp_path / "new") + "/"
    with pytest.raises(ValueError, match=rf"export='{re.escape(new)}' ends in a slash but is not a folder: give a "
                                         rf"file name such as {re.escape(new)}model\.pt"):
        T.train(**TINY_RUN, export=new)  # before: trained, then wrote a file named "new"
    (tmp_path / "old").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder: give a file name"):  # an existing folder: as before
        T.train(**TINY_RUN, export=str(tmp_path / "old") + "/")


# ------------------------------------------------------------------ --resume
@pytest.fixture
def checkpoint_path(tmp_path):
    """A run's checkpoint.pt after 1 epoch of W18-small-v1 segmentation on shapes (written without training)."""
    config = TrainConfig(**TINY_RUN)
    model = T.build_model(config.variant, data.NUM_CLASSES)
    opt = torch.optim.AdamW(model.parameters())
    settings = config.settings(torch.device("cpu"), False, 1, None)
    metrics = {"loss": [1.0], "miou": [0.5], "pixel_acc": [0.5], "elapsed_s": [1.0], "lr": [0.0]}
    path = tmp_path / "checkpoint.pt"
    torch.save(T.checkpoint_of(model, opt, T._grad_scaler(False), 1, config, metrics, settings), path)
    return path


@pytest.mark.parametrize("change, uses, same", [
    (dict(variant="w18_small_v2"), "--variant w18_small_v2", "--variant w18_small_v1"),
    (dict(head="pose"), "--head pose", "--head segmentation"),
    (dict(fusion=False), "--no-fusion", "no --no-fusion"),
])
def test_resume_with_other_flags_names_the_flags_it_was_trained_with(checkpoint_path, no_training, change, uses, same):
    path = re.escape(str(checkpoint_path))
    with pytest.raises(ValueError, match=rf"{path} was trained with --variant w18_small_v1 --head segmentation "
                                         rf"--dataset shapes; this run uses {uses}: resume with the same flags "
                                         rf"\({same}\), or drop --resume"):
        T.train(**{**TINY_RUN, "epochs": 2, **change}, resume=checkpoint_path)  # before: 40 lines of key mismatches


def test_resume_of_an_older_checkpoint_without_args_still_names_its_variant(checkpoint_path, no_training):
    old = {k: v for k, v in torch.load(checkpoint_path, weights_only=True).items() if k != "args"}
    torch.save(old, checkpoint_path)  # variant and fusion from its config, head from its "head"
    with pytest.raises(ValueError, match=r"trained with --variant w18_small_v1 --head segmentation; this run uses "
                                         r"--variant w18_small_v2"):
        T.train(**{**TINY_RUN, "epochs": 2}, variant="w18_small_v2", resume=checkpoint_path)


def test_resume_of_a_finished_run_says_to_count_all_epochs(checkpoint_path, no_training):
    path = re.escape(str(checkpoint_path))
    with pytest.raises(ValueError, match=rf"{path} already did 1 epoch\(s\); --epochs counts all epochs, so pass "
                                         r"--epochs 2 or more"):
        T.train(**TINY_RUN, resume=checkpoint_path)  # before: "resumed ... after epoch 1", trained nothing, exit 0
    with pytest.raises(SystemExit, match=r"error: .*already did 1 epoch\(s\)"):
        T.main(["--epochs", "1", "--quiet", "--device", "cpu", "--resume", str(checkpoint_path)])
    checkpoint = T._resume_checkpoint(TrainConfig(**{**TINY_RUN, "epochs": 2}, resume=checkpoint_path))
    fresh = T.build_model("w18_small_v1", data.NUM_CLASSES)  # the same flags and more epochs: resumes as before
    assert T._restore(checkpoint, checkpoint_path, fresh, torch.optim.AdamW(fresh.parameters()))[0] == 1


# ------------------------------------------------------------------ evaluate's arguments
@pytest.fixture(scope="module")
def model_and_scenes():
    return T.build_model("w18_small_v1", data.NUM_CLASSES), data.ShapesDataset(2, image_size=32)


def test_evaluate_says_when_model_and_dataset_are_swapped(model_and_scenes):
    model, scenes = model_and_scenes
    with pytest.raises(TypeError, match=r"evaluate\(model, dataset\): got a ShapesDataset as the model \(swapped\?\)"):
        T.evaluate(scenes, model)  # before: 'ShapesDataset' object has no attribute 'parameters'
    assert 0 <= T.evaluate(model, scenes)["miou"] <= 1


def test_evaluate_wants_the_dataset_not_one_item(model_and_scenes):
    model, scenes = model_and_scenes
    with pytest.raises(TypeError, match=r"evaluate takes a Dataset or DataLoader of \(image, mask\) pairs, got a "
                                        r"tuple \(one item\): pass the dataset"):
        T.evaluate(model, scenes[0])  # before: "too many values to unpack"
    images, masks = next(iter(torch.utils.data.DataLoader(scenes, batch_size=2)))
    assert T.evaluate(model, [(images, masks)]) == T.evaluate(model, scenes)  # a list of batches, as before


def test_evaluate_refuses_a_meta_model_as_the_model_itself_would():
    with torch.device("meta"):
        model = T.build_model("w18_small_v1", data.NUM_CLASSES)
    with pytest.raises(ValueError, match=r"built on the meta device .*shapes but no weights.*to_empty"):
        T.evaluate(model, data.ShapesDataset(2, image_size=32))  # before: NotImplementedError deep in torch


# ------------------------------------------------------------------ train's keywords
@pytest.mark.parametrize("key, says", [("train_set", r"\(a dataset of your own goes in dataset=\(train_set, val_set\)"),
                                       ("model", r"\(train builds its model from variant, head and fusion"),
                                       ("num_epochs", r"; did you mean epochs\?")])
def test_train_names_an_unknown_keyword_and_the_fields(no_training, key, says):
    with pytest.raises(TypeError, match=rf"TrainConfig has no field '{key}'.*{says}.* Its fields are: variant, "
                                        r"dataset, epochs, "):
        T.train(**{key: 2})  # before: Python's bare "unexpected keyword argument"
    with pytest.raises(TypeError, match=rf"TrainConfig has no field '{key}'"):
        T.train(TrainConfig(), **{key: 2})


@pytest.mark.parametrize("size, says", [((64, 64), "image_size=64"), ([64, 96], "image_size=64 or image_size=96")])
def test_train_image_size_is_one_side(no_training, size, says):
    with pytest.raises(ValueError, match=rf"train's image_size is one side of a square .*pass one int, {says}$"):
        T.train(image_size=size)
    with pytest.raises(ValueError, match=r"image_size must be a positive integer, got \(64,\)"):  # as before
        TrainConfig(image_size=(64,))


# ------------------------------------------------------------------ devices (audit s18, finding 3)
@pytest.fixture
def cpu_only(monkeypatch):
    """This machine as a CPU-only one, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)


@pytest.mark.parametrize("device, says", [
    ("mps", r"device 'mps' was asked for but MPS is Apple's GPU \(macOS on Apple silicon, with a torch built for "
            r"it\) and it is not available here; this machine has cpu: use --device cpu or auto"),
    ("meta", r"device 'meta' holds shapes only, no values: nothing can be trained, evaluated or timed there"),
    ("cuda:1", r"device 'cuda:1' was asked for but this torch sees no GPU; this machine has cpu: use --device cpu"),
    ("xla", r"device 'xla' was asked for but this torch cannot make a tensor there \(.*\); this machine has cpu"),
    ("ipu", r"device 'ipu' was asked for but this torch cannot make a tensor there"),
])
def test_a_device_this_machine_lacks_is_refused_naming_it_and_what_there_is(cpu_only, device, says):
    with pytest.raises(ValueError, match=says) as caught:
        T.pick_device(device)  # before: accepted, then torch's traceback in Module.to (meta: after the first batch)
    assert "\n" not in str(caught.value) and "dispatch" not in str(caught.value)
    assert T.pick_device("cpu") == torch.device("cpu") and T.pick_device("auto") == torch.device("cpu")


def test_a_gpu_index_beyond_the_count_is_named_with_the_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"device 'cuda:1' was asked for but this torch sees 1 GPU\(s\), numbered from "
                                         r"cuda:0; this machine has cpu, cuda:0: use --device cuda:0 or auto"):
        T.pick_device("cuda:1")
    assert T.pick_device("cuda:0") == torch.device("cuda", 0)  # there: accepted, as before


def test_evaluate_on_a_device_that_is_not_there_names_it(cpu_only, model_and_scenes):
    model, scenes = model_and_scenes
    with pytest.raises(ValueError, match=r"device 'mps' was asked for but MPS is Apple's GPU"):
        T.evaluate(model, scenes, device="mps")  # before: NotImplementedError, a page of dispatch keys


# ------------------------------------------------------------------ confusion_matrix's predictions (finding 15)
@pytest.mark.parametrize("pred, says", [
    (torch.full((4,), 7), r"pred must hold class indices 0 to 3 \(num_classes=4\), got values from 7 to 7: is the "
                          r"model built for more classes than num_classes"),
    (torch.full((4,), -3), r"pred must hold class indices 0 to 3 \(num_classes=4\), got values from -3 to -3"),
])
def test_confusion_matrix_refuses_predictions_beyond_the_classes(pred, says):
    target = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=says):
        T.confusion_matrix(pred, target, 4)  # before: 7 counted as "class 1 predicted as 3"; -3: bincount's error


def test_confusion_matrix_refuses_float_predictions_and_no_classes():
    target = torch.zeros(4, dtype=torch.long)
    with pytest.raises(TypeError, match=r"pred holds torch.float32 values, not class indices: pass predicted "
                                        r"classes, logits.argmax\(1\)"):
        T.confusion_matrix(torch.rand(4), target, 4)  # before: truncated to class 0, accepted
    with pytest.raises(ValueError, match=r"^num_classes must be a positive integer, got 0$"):
        T.confusion_matrix(target, target, 0)  # before: "0 classes (0 to -1)"


def test_confusion_matrix_ignores_any_prediction_at_an_ignored_pixel():
    pred, target = torch.tensor([1, 200, -1]), torch.tensor([1, data.IGNORE_INDEX, data.IGNORE_INDEX])
    assert T.confusion_matrix(pred, target, 2).tolist() == [[0, 0], [0, 1]]


# ------------------------------------------------------------------ evaluate's data (finding 28)
def test_evaluate_refuses_an_empty_dataset_and_batch_size_0(model_and_scenes):
    model, scenes = model_and_scenes
    for empty in ([], torch.utils.data.Subset(scenes, [])):
        with pytest.raises(ValueError, match=r"evaluate got an empty dataset \(0 images\): nothing to score; check "
                                             r"the split or the filter that made it"):
            T.evaluate(model, empty)  # before: mIoU 0.0, as if the model got everything wrong
    assert model.training, "evaluate left the model in eval mode after refusing"
    with pytest.raises(ValueError, match=r"^batch_size must be a positive integer, got 0$"):
        T.evaluate(model, scenes, batch_size=0)  # before: torch's sampler error


# ------------------------------------------------------------------ a run that diverges (finding 16; s18 review 2, 9, 18)
def _nan_from_call(first_bad_call: int):
    """A loss function whose calls from ``first_bad_call`` on (counted from 1) return NaN."""
    calls = []

    def loss(output, mask):
        calls.append(1)
        return output.mean() * (float("nan") if len(calls) >= first_bad_call else 1.0)

    return loss


def test_a_nan_loss_on_a_fresh_runs_first_batch_blames_the_data_not_the_learning_rate(tmp_path):
    with pytest.raises(FloatingPointError) as caught:
        T.train(**TINY_RUN, criterion=_nan_from_call(1), out=tmp_path)  # before: trained on and saved NaN weights
    assert str(caught.value) == (  # before: "the weights have diverged. Lower the learning rate ..."
        "epoch 1/1: the loss was nan on the first batch, before any update: the data or the loss function made it, "
        "not the learning rate. Check that batch's images and masks for NaN or inf values, and the loss on them.")
    assert not (tmp_path / T.CHECKPOINT_FILE).exists() and not (tmp_path / T.METRICS_FILE).exists()


def test_a_nan_loss_after_an_update_says_the_weights_diverged_in_two_sentences():
    adamw = T.DEFAULT_LR["adamw"]
    with pytest.raises(FloatingPointError) as caught:  # step 2 of the first epoch: one update has run
        T.train(**{**TINY_RUN, "train_size": 4}, criterion=_nan_from_call(2))
    assert re.fullmatch(rf"epoch 1/1: the loss became nan at step 2 of 2 \(lr \S+\): the weights have diverged\. "
                        rf"Start again with an --lr below {adamw:g}, the default for adamw\.", str(caught.value))


def test_a_nan_loss_at_the_first_step_of_a_later_epoch_names_the_checkpoint_still_finite(tmp_path):
    sgd, lr = T.DEFAULT_LR["sgd"], T.DEFAULT_LR["sgd"] / 2
    with pytest.raises(FloatingPointError) as caught:  # epoch 2's step 1 (not a fresh run: epoch 1 updated)
        T.train(**{**TINY_RUN, "epochs": 2}, optimizer="sgd", lr=lr, criterion=_nan_from_call(2), out=tmp_path)
    message = str(caught.value)
    assert re.fullmatch(rf"epoch 2/2: the loss became nan at step 1 of 1 \(lr \S+\): the weights have diverged\. "
                        rf"Start again with an --lr below {lr:g} \(the default for sgd is {sgd:g}\), or resume with it "
                        rf"from {re.escape(str(tmp_path / T.CHECKPOINT_FILE))}, which holds epoch 1, the last with a "
                        r"finite loss\.", message), message
    assert message.count(". ") == 1, "more than two sentences"
    assert T.read_checkpoint(tmp_path / T.CHECKPOINT_FILE)["epoch"] == 1


def test_weights_that_turn_nan_under_a_finite_loss_stop_the_run_too(tmp_path):
    def finite_loss_nan_gradient(output, mask):  # sqrt at 0: the loss is 0, its gradient 0 * inf = NaN
        return torch.sqrt(output.sum() * 0)

    with pytest.raises(FloatingPointError, match=r"^epoch 1/1: the weights hold NaN or inf values after the last step "
                                                 r"\(.+ first\), although every loss was finite"):
        T.train(**TINY_RUN, criterion=finite_loss_nan_gradient, optimizer="sgd")


def _one_epoch(loss_fn, steps=3, scaler=None, **kwargs) -> float:
    """train_one_epoch on its own, as a learner's loop calls it: a 1x1 conv, plain SGD, ``steps`` batches."""
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 2, 1)
    batches = [(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)) for _ in range(steps)]
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    return T.train_one_epoch(net, batches, opt, loss_fn, torch.device("cpu"), lambda step: 0.1, scaler, **kwargs)


def test_under_amp_a_nan_loss_with_finite_weights_is_a_float16_overflow_not_a_divergence():
    scaler = torch.amp.GradScaler("cpu")  # enabled, as under --amp on CUDA: it skips a step whose gradients are NaN
    with pytest.raises(FloatingPointError) as caught:
        _one_epoch(_nan_from_call(2), scaler=scaler, desc="epoch 3/6")
    assert str(caught.value) == (  # before: "the weights have diverged. Lower the learning rate ..."
        "epoch 3/6: the loss became nan at step 2 of 3 (lr 0.1) under --amp while every weight stayed finite: the "
        "float16 forward overflowed (GradScaler skipped that step). Run without --amp (amp=False).")
    with pytest.raises(FloatingPointError, match=r"^the loss was nan on the first batch, before any update: the "
                                                 r"float16 forward \(--amp\) overflowed, or the data or the loss "
                                                 r"function made it, not the learning rate\. Run without --amp"):
        _one_epoch(_nan_from_call(1), scaler=torch.amp.GradScaler("cpu"), fresh=True)


def test_on_its_own_train_one_epoch_still_calls_a_nan_loss_a_divergence():
    """No scaler, and fresh left at False (train_one_epoch cannot know the weights are new): as before."""
    for first_bad_call in (1, 2):
        with pytest.raises(FloatingPointError) as caught:
            _one_epoch(_nan_from_call(first_bad_call))
        assert str(caught.value) == (f"the loss became nan at step {first_bad_call} of 3 (lr 0.1): the weights have "
                                     f"diverged. {T.DIVERGED_ADVICE}")


# ------------------------------------------------------------------ seed (finding 18)
@pytest.mark.parametrize("seed", [2**32, 2**40, -1])
def test_a_seed_numpy_cannot_take_is_refused_by_the_config(seed, no_training):
    with pytest.raises(ValueError, match=rf"^seed \(--seed\) must be a whole number from 0 to 4294967295 \(numpy's "
                                         rf"limit\), got {seed}$"):
        T.train(seed=seed, **TINY_RUN)  # before (2**32 and more): numpy's "Seed must be between 0 and 2**32 - 1"
    assert TrainConfig(seed=2**32 - 1).seed == 2**32 - 1


# ------------------------------------------------------------------ a loss of one's own (bad-input audit, 2026-12-08)
@pytest.mark.parametrize("criterion, says", [
    (torch.nn.CrossEntropyLoss, r"criterion is the class CrossEntropyLoss; pass an instance, CrossEntropyLoss\(\.\.\.\)"),
    ("ce", r"criterion must be a function criterion\(output, mask\) -> loss .*got str 'ce'"),
])
def test_a_criterion_that_cannot_be_called_is_refused_before_any_data(criterion, says, monkeypatch):
    monkeypatch.setattr(T, "_loaders", lambda *a, **k: pytest.fail("the data was made before the check"))
    with pytest.raises(TypeError, match=says):
        T.train(**TINY_RUN, criterion=criterion)


def test_a_criterion_that_fails_on_the_logits_says_what_it_is_given():
    """CrossEntropyLoss on the quarter-size logits: torch said only 'size mismatch (got input: [2, 4, 8, 8] , target:
    [2, 32, 32])' from inside cross_entropy."""
    with pytest.raises(ValueError, match=r"^your criterion raised (RuntimeError|ValueError): .*called as "
                                         r"criterion\(output, mask\) with the model's output, the logits, B x C x H/4 "
                                         r"x W/4 .* the mask at the image's full size, B x H x W \(255: ignored\): "
                                         r"enlarge the logits first") as caught:
        T.train(**TINY_RUN, criterion=torch.nn.CrossEntropyLoss(ignore_index=255))
    assert isinstance(caught.value.__cause__, (RuntimeError, ValueError))  # torch's own error stays in the chain
    with pytest.raises(ValueError, match=r"your criterion returned Tensor of shape \(2, 32, 32\): it must return one "
                                         r"number"):
        T.train(**TINY_RUN, criterion=lambda out, mask: torch.nn.functional.cross_entropy(
            torch.nn.functional.interpolate(out, size=mask.shape[-2:]), mask, ignore_index=255, reduction="none"))
    with pytest.raises(ValueError, match=r"your criterion returned float"):
        T.train(**TINY_RUN, criterion=lambda out, mask: 1.0)
