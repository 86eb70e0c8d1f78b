"""Bad input to hrnet_teach.weights: a clear error (or note) that says what was wrong and what to do.

Each test is one thing a learner plausibly does: load into a model built on the meta device,
save a list or a tensor instead of a state dict, zip a checkpoint, give a safetensors file a
.pth name (or the reverse), load a deploy.fast() copy's weights, or hand model_from_checkpoint
a config that is not a dict. The files are made here, in tmp_path; the model is W18-small-v1.
"""
from __future__ import annotations

import dataclasses
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import hrnet_teach as ht
from hrnet_teach import deploy
from hrnet_teach import weights as W

NUM_CLASSES = 4


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return ht.create_model("w18_small_v1", num_classes=NUM_CLASSES).eval()


@pytest.fixture(scope="module")
def state(small):
    return small.state_dict()


def _fresh():
    return ht.create_model("w18_small_v1", num_classes=NUM_CLASSES).eval()


def _same_weights(model, state) -> bool:
    own = model.state_dict()
    return all(torch.equal(own[k], v) for k, v in state.items())


# ------------------------------------------------------------------ 1. a model on the meta device
def test_loading_into_a_meta_model_is_refused_not_reported_as_loaded(state):
    with torch.device("meta"):
        meta = ht.create_model("w18_small_v1", num_classes=NUM_CLASSES)
    for strict in (True, False):  # both used to say "OK: loaded 435 of 435 tensors" and load nothing
        with pytest.raises(ValueError, match=r"built on the meta device .*shapes but no weights, so nothing can be "
                                             r"loaded into it.*to_empty"):
            W.load_weights(meta, state, strict=strict, verbose=False)
        with pytest.raises(ValueError, match="meta device"):
            ht.load_weights(meta, state, strict=strict, verbose=False)
    assert W.compare(meta, state).ok  # key reports still work on meta models
    meta.to_empty(device="cpu")  # the advice works
    assert W.load_weights(meta, state, verbose=False).ok and _same_weights(meta, state)


# ------------------------------------------------------------------ 2. a file that holds no state dict
@pytest.mark.parametrize("kind, what", [
    ("tensor", r"a Tensor of shape \(3,\)"),
    ("list", "a list of 1 item with a dict inside"),
    ("tuple", "a tuple of 2 items with a dict inside"),
])
def test_a_file_holding_a_tensor_or_a_list_says_what_it_holds(tmp_path, small, state, kind, what):
    path = tmp_path / "weights.pth"
    torch.save({"tensor": torch.zeros(3), "list": [state], "tuple": (state, 3)}[kind], path)
    expected = rf"{path} holds {what}.*not a state dict \(names -> tensors\): save model.state_dict\(\)"
    for call in (lambda: W.load_weights(small, path), lambda: W.read_state_dict(path),
                 lambda: W.read_checkpoint(path), lambda: W.model_from_checkpoint(path)):
        with pytest.raises(ValueError, match=expected):
            call()


# ------------------------------------------------------------------ 3. whole files in another format
def _assert_not_called_corrupt(message: str) -> None:
    assert "corrupt or truncated" not in message and "Download or copy it again" not in message, message


def test_a_zip_archive_that_is_no_torch_file_lists_its_members(tmp_path, small, state):
    checkpoint = tmp_path / "model.pth"
    torch.save(state, checkpoint)
    zipped = tmp_path / "hrnet.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(checkpoint, "hrnet/model.pth")
    with pytest.raises(ValueError, match=r"hrnet.zip is a zip archive but not a torch.save file .it holds "
                                         r"hrnet/model.pth.: unzip it and load the checkpoint inside") as caught:
        W.load_weights(small, zipped)
    _assert_not_called_corrupt(str(caught.value))

    other = tmp_path / "hrnet_w18.pth"
    with zipfile.ZipFile(other, "w") as archive:
        for name in ("readme.txt", "a.json", "b.json", "c.json", "d.json"):
            archive.writestr(name, "{}")
    with pytest.raises(ValueError, match=r"is a zip archive but not a torch.save file .it holds readme.txt, "
                                         r"a.json, b.json, c.json ... .5 members.*another format") as caught:
        W.read_checkpoint(other)
    _assert_not_called_corrupt(str(caught.value))


def test_numpy_and_hdf5_files_are_named_as_such(tmp_path, small):
    np.savez(tmp_path / "w.npz", a=np.zeros(3))
    np.save(tmp_path / "w.npy", np.zeros(3))
    (tmp_path / "w.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    for name, what in (("w.npz", "a zip archive but not a torch.save file .it holds a.npy.: it is numpy's np.savez"),
                       ("w.npy", "a numpy array file"), ("w.h5", "an HDF5 file")):
        with pytest.raises(ValueError, match=f"{name} is {what}") as caught:
            W.load_weights(small, tmp_path / name)
        _assert_not_called_corrupt(str(caught.value))


def test_a_safetensors_file_named_pth_says_rename_it(tmp_path, small, state):
    path = tmp_path / "model.pth"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(ValueError, match=r"model.pth is a safetensors file, not a torch.save file: rename it to "
                                         r"model.safetensors") as caught:
        W.load_weights(small, path)
    _assert_not_called_corrupt(str(caught.value))
    renamed = path.rename(tmp_path / "model.safetensors")  # the advice works
    model = _fresh()
    assert W.load_weights(model, renamed, verbose=False).ok and _same_weights(model, state)


def test_a_cut_safetensors_file_named_pth_is_still_called_truncated(tmp_path, small, state):
    whole = tmp_path / "whole.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(whole))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(whole.read_bytes()[:1000])  # shorter than its own header
    with pytest.raises(ValueError, match="it starts as a safetensors file .*truncated.*Download or copy it again"):
        W.load_weights(small, cut)


@pytest.mark.parametrize("zip_format", [True, False])
def test_a_torch_file_named_safetensors_says_rename_it(tmp_path, small, state, zip_format):
    path = tmp_path / "model.safetensors"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ValueError, match=r"model.safetensors is a torch.save file, not a safetensors file: rename "
                                         r"it to model.pth") as caught:
        W.load_weights(small, path)
    _assert_not_called_corrupt(str(caught.value))
    model = _fresh()
    assert W.load_weights(model, path.rename(tmp_path / "model.pth"), verbose=False).ok and _same_weights(model, state)


# ------------------------------------------------------------------ 4. BatchNorms folded by deploy.fast()
def test_a_folded_checkpoint_into_a_normal_model_says_so(small):
    folded = deploy.fast(small).state_dict()
    with pytest.raises(W.WeightsMismatchError) as caught:
        W.load_weights(_fresh(), folded)
    message = str(caught.value)
    assert ("The checkpoint has its BatchNorms folded into the convolutions (deploy.fast / fold_batchnorm): save "
            "and load the original model's state_dict, then call deploy.fast() on the loaded model.") in message
    assert message.index("folded") < message.index("unexpected (")  # before the long key lists
    assert "The model has its BatchNorms folded" not in message


def test_a_normal_checkpoint_into_a_folded_model_says_so(small, state):
    fast = deploy.fast(small)
    report = W.load_weights(fast, state, strict=False, verbose=False)
    assert any(note.startswith("The model has its BatchNorms folded into the convolutions") and
               "before fast()" in note for note in report.notes())
    assert "The model has its BatchNorms folded" in report._repr_html_()


def test_other_mismatches_get_no_folding_note(small):
    other_head = ht.create_model("w18_small_v1", head="classification").state_dict()
    report = W.load_weights(_fresh(), other_head, strict=False, verbose=False)
    assert not report.ok and not any("folded" in note for note in report.notes())
    assert not any("folded" in note for note in W.compare(small, {k: v for k, v in small.state_dict().items()
                                                                  if ".bn1." not in k}).notes())


# ------------------------------------------------------------------ 5. model_from_checkpoint's config
@pytest.mark.parametrize("config", ["w18_small_v1", "config object"])
def test_a_checkpoint_with_a_config_object_or_a_variant_name_rebuilds_its_model(state, config):
    config = ht.get_config("w18_small_v1") if config == "config object" else config
    model = W.model_from_checkpoint({"model": state, "config": config, "num_classes": NUM_CLASSES})
    assert model.config == ht.get_config("w18_small_v1") and _same_weights(model, state)


@pytest.mark.parametrize("config, expected", [
    ({"x": 1}, r"config is not a saved HRNetConfig: it lacks stage1, stage2, stage3, stage4 and has fields "
               r"HRNetConfig does not know: 'x'"),
    (3, r"config must be a dict .from config_to_dict., an HRNetConfig or a variant name .*got int"),
    ("w19", r"Unknown HRNet variant 'w19'"),
])
def test_a_config_that_is_no_config_is_named(state, config, expected):
    with pytest.raises(ValueError, match=expected):
        W.model_from_checkpoint({"model": state, "config": config, "num_classes": NUM_CLASSES})


def test_a_config_with_an_incomplete_stage_names_the_missing_fields():
    data = W.config_to_dict(ht.get_config("w18_small_v1"))
    assert W.config_from_dict(data) == ht.get_config("w18_small_v1")  # the round trip is unchanged
    data["stage2"] = {"num_modules": 1}
    with pytest.raises(ValueError, match="config's stage2 is not a saved StageConfig: it lacks num_branches, "
                                         "block, num_blocks, num_channels"):
        W.config_from_dict(data)
    data["stage2"] = [1, 2]
    with pytest.raises(ValueError, match="config's stage2 must be a dict of StageConfig's fields, got list"):
        W.config_from_dict(data)


def test_a_bare_state_dict_says_how_to_load_it_instead(tmp_path, state):
    torch.save(state, tmp_path / "bare.pth")
    for checkpoint in (tmp_path / "bare.pth", {"model": state}):
        with pytest.raises(ValueError, match=r"no 'config' / 'num_classes' entries. For other checkpoints use "
                                             r"model = create_model\(variant, num_classes=...\), then "
                                             r"load_weights\(model, path\)"):
            W.model_from_checkpoint(checkpoint)


# ------------------------------------------------------------------ the second audit
def test_the_content_says_what_a_file_is_not_its_name(small, state, tmp_path):
    misnamed = tmp_path / "model.onnx"  # a checkpoint under an ONNX name (as `train --export m.onnx` once wrote)
    torch.save(state, misnamed)
    assert W.load_weights(_fresh(), misnamed, verbose=False).ok
    onnx_file = tmp_path / "model.pt"  # an ONNX file under a checkpoint's name
    onnx_file.write_bytes(b"\x08\x09\x12\x07pytorch\x1a\x062.13.0:" + bytes(200))
    with pytest.raises(ValueError, match=r"model.pt is an ONNX file, not a PyTorch checkpoint: run it with .*run_onnx"):
        W.load_weights(_fresh(), onnx_file)


def test_a_checkpoint_of_another_class_count_says_what_to_do(state):
    other = ht.create_model("w18_small_v1", num_classes=NUM_CLASSES + 3).eval()
    with pytest.raises(W.WeightsMismatchError, match=rf"(?s)Only the last layer differs: the checkpoint predicts "
                                                      rf"{NUM_CLASSES} classes, the model {NUM_CLASSES + 3}\. Build the "
                                                      rf"model with num_classes={NUM_CLASSES} .* strict=False"):
        W.load_weights(other, state)
    assert W.load_weights(other, state, strict=False, verbose=False).mismatched  # the way out it names works
    variant = ht.create_model("w18_small_v2", num_classes=NUM_CLASSES).eval()
    with pytest.raises(W.WeightsMismatchError) as caught:  # another variant: no such advice
        W.load_weights(variant, state)
    assert "Only the last layer" not in str(caught.value)


def test_strict_and_verbose_must_be_booleans(state):
    with pytest.raises(TypeError, match=r"strict must be True or False, got 'False'"):
        W.load_weights(_fresh(), state, strict="False")
    with pytest.raises(TypeError, match=r"verbose must be True or False, got 0"):
        W.load_weights(_fresh(), state, verbose=0)


# ------------------------------------------------------------------ input audit (findings 6, 13, 27, 32, 33)
@pytest.mark.parametrize("said", ["no", "False"])
def test_pretrained_or_shipped_refuses_a_string_download_before_the_network(monkeypatch, said):
    def no_network(*args, **kwargs):
        raise AssertionError("download='no' must not reach for the hub")

    monkeypatch.setattr(W, "_download", no_network)
    monkeypatch.setattr(W, "_reachable", no_network)
    with pytest.raises(TypeError, match=rf"download must be True or False, got '{said}' \(str\): any non-empty string "
                                        r"counts as True; pass download=False"):
        W.pretrained_or_shipped("w18_small_v1", download=said)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on protocol 4
def test_a_whole_plain_pickle_is_not_called_truncated(tmp_path, small):
    import pickle

    path = tmp_path / "plain.pt"
    with open(path, "wb") as file:
        pickle.dump({"a": 1}, file, protocol=4)  # a FRAME: torch's weights_only reader says "Unsupported operand 149"
    with pytest.raises(ValueError, match=r"plain.pt is a complete Python pickle \(written by pickle.dump\), not a "
                                         r"torch.save file, so torch.load cannot read it") as info:
        W.load_weights(small, path)
    assert "truncated" not in str(info.value) and "again" not in str(info.value)
    assert "weights_only=False" not in str(info.value)  # torch.load(path, weights_only=False): "Invalid magic number"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_the_advice_for_a_plain_pickle_loads_it(tmp_path, small, state):
    """The message's own two steps, run as it writes them, load a state dict that pickle.dump wrote."""
    import pickle

    path = tmp_path / "plain.pth"
    with open(path, "wb") as file:
        pickle.dump(state, file)
    with pytest.raises(ValueError) as info:
        W.load_weights(small, path)
    advice = str(info.value).split("If you trust the file: ")[1]
    first, second = advice.split(", then ")
    assert first.startswith("state = ") and second == "load_weights(model, state)"
    scope = {"pickle": pickle, "load_weights": W.load_weights, "model": _fresh()}
    exec(first, scope)
    report = eval(second, scope)
    assert report.ok and _same_weights(scope["model"], state)
    path.write_bytes(path.read_bytes()[:-3])  # cut short: still the corrupt-or-truncated message
    with pytest.raises(ValueError, match=r"corrupt or truncated"):
        W.load_weights(small, path)


def test_an_empty_checkpoint_path_is_called_empty_not_the_current_folder(small):
    with pytest.raises(FileNotFoundError, match=r"the checkpoint path is empty \(''\): give the file's path, e.g. "
                                                r"'assets/checkpoints/shapes_w18_small_v1.pt'"):
        W.load_weights(small, "")


def test_compare_and_guess_variant_name_what_they_take(small, state):
    with pytest.raises(TypeError, match=r"compare\(model, state\): model must be a torch.nn.Module, got NoneType"):
        W.compare(None, state)
    with pytest.raises(TypeError, match=r"compare\(model, state\): state must be a state dict .*got NoneType"):
        W.compare(small, None)
    with pytest.raises(TypeError, match=r"guess_variant takes a state dict .*got NoneType"):
        W.guess_variant(None)
    with pytest.raises(TypeError, match=r"for a model, pass model.state_dict\(\)"):
        W.guess_variant(small)
    assert W.compare(small, state).ok and W.guess_variant(state).startswith("w18_small_v1")


def test_an_hf_endpoint_that_is_not_a_url_is_named(monkeypatch, tmp_path):
    def no_probe(*args, **kwargs):
        raise AssertionError("an address without a host cannot be probed")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "not a url")
    monkeypatch.setattr(W, "_reachable", no_probe)
    with pytest.raises(W.WeightsUnavailableError, match=r"HF_ENDPOINT is 'not a url', which is not a URL "
                                                        r"\(e.g. https://huggingface.co\): fix or unset it") as info:
        W.load_timm_imagenet("w18_small_v1", cache_dir=str(tmp_path))
    assert "None" not in str(info.value)


def test_a_path_given_to_strip_prefixes_and_a_custom_config_given_to_timm_are_said_briefly():
    from hrnet_teach import weights
    from hrnet_teach.config import get_config

    with pytest.raises(TypeError, match=r"strip_prefixes takes a state dict .*got str; for a file, use"):
        weights.strip_prefixes("checkpoint.pth")
    custom = dataclasses.replace(get_config("w18"), name="my_w18")
    with pytest.raises(ValueError, match=r"published variants only .*got a config named 'my_w18'$") as caught:
        weights.timm_hub_id(custom)
    assert "StageConfig" not in str(caught.value)  # the whole config's repr was printed
