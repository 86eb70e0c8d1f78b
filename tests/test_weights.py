"""Loading checkpoints (files the tests make), the load report, and the hub helper offline."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import hrnet_teach as ht
from hrnet_teach.weights import (
    LoadReport,
    WeightsMismatchError,
    WeightsUnavailableError,
    guess_variant,
    load_timm_imagenet,
    load_weights,
    timm_hub_id,
)

SMALL = "w18_small_v1"
CLS_ONLY = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")


@pytest.fixture(scope="module")
def cls_state():
    """A classification model's state dict with recognisable values (not the init)."""
    torch.manual_seed(0)
    model = ht.create_model(SMALL, head="classification")
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1, 1)
    return {k: v.clone() for k, v in model.state_dict().items()}


def fresh(head="classification", variant=SMALL, **kw):
    return ht.create_model(variant, head=head, **kw)


def assert_loaded(model, state):
    own = model.state_dict()
    for key, value in state.items():
        assert torch.equal(own[key], value), key


# ------------------------------------------------------------------ file formats
def test_pth_round_trip(tmp_path, cls_state):
    path = tmp_path / "w.pth"
    torch.save(cls_state, path)
    model = fresh()
    report = load_weights(model, path, verbose=False)
    assert isinstance(report, LoadReport) and report.ok
    assert report.loaded == report.total == len(cls_state)
    assert_loaded(model, cls_state)


@pytest.mark.parametrize("name,wrap", [
    ("ckpt.pth.tar", lambda s: {"epoch": 3, "best_mIoU": 0.5, "state_dict": {"module." + k: v for k, v in s.items()}}),
    ("ckpt.pt", lambda s: {"model": s, "optimizer": {"state": {}, "param_groups": []}, "epoch": 1}),
    ("final_state.pth", lambda s: {**{"model." + k: v for k, v in s.items()}, "loss.criterion.weight": torch.ones(19)}),
])
def test_training_checkpoints_and_prefixes(tmp_path, cls_state, name, wrap):
    """state_dict/model entries, DDP's module., the segmentation trainer's model. + loss.*"""
    path = tmp_path / name
    torch.save(wrap(cls_state), path)
    model = fresh()
    report = load_weights(model, path, verbose=False)
    assert report.ok, str(report)
    assert_loaded(model, cls_state)
    if name == "final_state.pth":
        assert report.ignored == ["loss.criterion.weight"]
        assert report.stripped == {"model.": len(cls_state)}
        assert "loss.criterion.weight" in str(report)


def test_safetensors(tmp_path, cls_state):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in cls_state.items()}, str(path))
    model = fresh()
    assert load_weights(model, path, verbose=False).ok
    assert_loaded(model, cls_state)


def test_nested_prefixes_and_mmdet_layout():
    """module.model.* (DDP around the trainer) and backbone./neck. (mmdetection's HRFPN)."""
    source = fresh("pyramid")
    nested = {"module.model." + k: v for k, v in source.state_dict().items()}
    mmdet = {("neck." if k.startswith(("reduction_conv", "fpn_conv")) else "backbone.") + k: v
             for k, v in source.state_dict().items()}
    for state in (nested, mmdet):
        model = fresh("pyramid")
        assert load_weights(model, state, verbose=False).ok
        assert_loaded(model, source.state_dict())


def test_missing_num_batches_tracked_is_filled_not_missing(cls_state):
    """Checkpoints from InPlaceABN (the seg master branch) have no num_batches_tracked."""
    state = {k: v for k, v in cls_state.items() if not k.endswith("num_batches_tracked")}
    model = fresh()
    report = load_weights(model, state, verbose=False)
    assert report.ok and report.filled == len(cls_state) - len(state) > 0
    assert_loaded(model, state)


def test_official_key_list_round_trip():
    """A state dict with exactly the official segmentation keys loads strictly, and ours saves them back in order."""
    listing = json.loads((Path(__file__).parent / "data" / "official_keys.json").read_text())
    keys = listing["heads"]["segmentation"]["w18_small_v1"]
    official = {k: torch.full(s, 0.5) if not k.endswith("num_batches_tracked") else torch.tensor(7) for k, s in keys}
    model = fresh("segmentation", num_classes=19)
    assert load_weights(model, official, strict=True, verbose=False).ok
    saved = model.state_dict()
    assert list(saved) == [k for k, _ in keys]
    assert all(torch.equal(saved[k], official[k]) for k in official)


# ------------------------------------------------------------ mismatches and reports
def test_other_variant_is_refused_with_a_named_report():
    with torch.device("meta"):
        w32 = ht.create_model("w32", head="segmentation").state_dict()
    model = fresh("segmentation", variant="w18")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsMismatchError) as caught:
        load_weights(model, w32)
    error = caught.value
    assert isinstance(error, ValueError)
    message = str(error)
    assert "looks like w32" in message and "the model is w18" in message
    assert "transition1.0.0.weight: checkpoint (32, 256, 3, 3), model (18, 256, 3, 3)" in message
    assert error.report.mismatched[0][0] == "transition1.0.0.weight"
    assert not error.report.applied
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "a refused load changed the model"


def test_non_strict_other_variant_loads_only_what_fits(capsys):
    source = fresh("segmentation", variant="w18_small_v2")
    model = fresh("segmentation", variant=SMALL)
    report = load_weights(model, source.state_dict(), strict=False)
    fits = [k for k, v in source.state_dict().items()
            if k in model.state_dict() and v.shape == model.state_dict()[k].shape]
    assert report.loaded == len(fits) > 0 and report.mismatched and not report.ok
    assert_loaded(model, {k: source.state_dict()[k] for k in fits})
    assert "looks like w18_small_v2" in capsys.readouterr().out


def test_imagenet_weights_into_segmentation(cls_state, capsys):
    model = fresh("segmentation", num_classes=19)
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("last_layer.")}
    report = load_weights(model, cls_state, strict=False)
    printed = capsys.readouterr().out
    assert set(report.unexpected) == {k for k in cls_state if k.startswith(CLS_ONLY)}
    assert set(report.missing) == set(head_before)
    assert report.mismatched == []
    assert report.loaded == len(cls_state) - len(report.unexpected)
    for part in ("incre_modules.*", "downsamp_modules.*", "final_layer.*", "classifier.*", "last_layer.*"):
        assert part in printed, part
    assert "classification (ImageNet)" in printed
    assert_loaded(model, {k: v for k, v in cls_state.items() if not k.startswith(CLS_ONLY)})
    assert all(torch.equal(model.state_dict()[k], v) for k, v in head_before.items())
    with pytest.raises(WeightsMismatchError):
        load_weights(fresh("segmentation"), cls_state)  # strict by default: never silent


def test_imagenet_weights_into_pose_drops_stage4_fuse_rows(cls_state):
    model = fresh("pose", num_joints=17)
    report = load_weights(model, cls_state, strict=False, verbose=False)
    last = f"stage4.{ht.get_config(SMALL).stage4.num_modules - 1}.fuse_layers."
    fuse_rows = {k for k in cls_state if k.startswith(last) and not k.startswith(last + "0.")}
    assert fuse_rows and fuse_rows <= set(report.unexpected)
    assert set(report.unexpected) == fuse_rows | {k for k in cls_state if k.startswith(CLS_ONLY)}
    assert set(report.missing) == {"final_layer.weight", "final_layer.bias"}
    text = str(report)
    for row in (1, 2, 3):
        assert f"{last}{row}.*" in text
    assert report._repr_html_().count("fuse_layers") == 3


def test_report_text_and_html(cls_state):
    ok = load_weights(fresh(), cls_state, verbose=False)
    assert str(ok).startswith("OK: loaded") and "every key and shape matches" in str(ok)
    assert "<div" in ok._repr_html_() and "OK: loaded" in ok._repr_html_()
    bad = load_weights(fresh("segmentation"), cls_state, strict=False, verbose=False)
    assert str(bad).startswith("NOT A FULL MATCH") and "missing (9)" in str(bad)
    page = bad._repr_html_()
    assert "<table>" in page and "last_layer.* (9)" in page and "missing (left as initialised): 9" in page
    assert repr(bad).startswith("LoadReport(ok=False")


def test_guess_variant_for_every_published_variant():
    for variant in ht.VARIANTS:
        with torch.device("meta"):
            state = ht.create_model(variant, head="classification").state_dict()
        assert guess_variant(state) == f"{variant}, classification (ImageNet) weights"
    assert guess_variant({"conv1.weight": torch.zeros(1)}) is None


def test_bad_sources(tmp_path):
    model = fresh()
    with pytest.raises(FileNotFoundError, match="No checkpoint file"):
        load_weights(model, tmp_path / "nope.pth")
    with pytest.raises(TypeError, match="file path or a state dict"):
        load_weights(model, 42)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        load_weights("model", {})
    torch.save({"epoch": 1, "lr": 0.1}, tmp_path / "no_weights.pth")
    with pytest.raises(ValueError, match="Cannot find the weights"):
        load_weights(model, tmp_path / "no_weights.pth")
    with open(tmp_path / "pickled.pth", "wb") as f:  # an arbitrary Python object: refused, not executed
        pickle.dump({"state_dict": {}, "obj": Path("x")}, f, protocol=2)
    with pytest.raises(ValueError, match="weights_only"):
        load_weights(model, tmp_path / "pickled.pth")


# ---------------------------------------------------------------------- the hub
def test_timm_hub_ids():
    assert timm_hub_id("w18_small_v1") == "timm/hrnet_w18_small.ms_in1k"
    assert timm_hub_id("w18_small_v2") == "timm/hrnet_w18_small_v2.ms_in1k"
    assert timm_hub_id("hrnet_w48") == "timm/hrnet_w48.ms_in1k"
    assert [timm_hub_id(v) for v in ht.VARIANTS][2:] == [f"timm/hrnet_{v}.ms_in1k" for v in ht.VARIANTS[2:]]
    with pytest.raises(ValueError, match="Known variants"):
        timm_hub_id("w99")


def _record_hub_calls(monkeypatch) -> list:
    """Record every hf_hub_download call: one without local_files_only would go to the network
    (and, offline, retry for about 47 s), which is what failing fast must avoid."""
    import huggingface_hub

    calls = []
    real = huggingface_hub.hf_hub_download

    def recording(*args, **kwargs):
        calls.append(kwargs.get("local_files_only", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", recording)
    return calls


def test_offline_fails_at_once_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls = _record_hub_calls(monkeypatch)
    with pytest.raises(WeightsUnavailableError) as caught:
        load_timm_imagenet(SMALL, cache_dir=str(tmp_path))
    assert calls == [True], f"offline, only the local cache may be asked: {calls}"
    message = str(caught.value)
    assert isinstance(caught.value, OSError)
    for needle in ("timm/hrnet_w18_small.ms_in1k", "HF_HUB_OFFLINE", "Colab", "model.safetensors", "load_weights"):
        assert needle in message, needle


def test_no_route_to_the_hub_fails_fast(tmp_path, monkeypatch):
    """A closed port: refused at once, reported as unreachable."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    calls = _record_hub_calls(monkeypatch)
    with pytest.raises(WeightsUnavailableError, match="cannot be reached"):
        load_timm_imagenet(SMALL, cache_dir=str(tmp_path))
    assert calls == [True], f"an unreachable hub must not be downloaded from: {calls}"


def test_a_hub_that_never_answers_fails_fast(tmp_path, monkeypatch):
    """Packets silently dropped (or DNS hanging): the probe gives up after about 2 s."""
    import threading
    import urllib.request

    released = threading.Event()
    timeouts = []

    def hang(*args, **kwargs):
        timeouts.append(kwargs.get("timeout"))
        released.wait(30)
        raise OSError("no answer")

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.invalid")
    monkeypatch.setattr(urllib.request, "urlopen", hang)
    calls = _record_hub_calls(monkeypatch)
    try:
        with pytest.raises(WeightsUnavailableError, match="cannot be reached"):
            load_timm_imagenet(SMALL, cache_dir=str(tmp_path))
        # it gave up while the probe was still hanging, by the probe's own limit
        assert not released.is_set()
        assert timeouts == [ht.weights.HUB_TIMEOUT_S]
        assert calls == [True]
    finally:
        released.set()  # let the abandoned probe thread finish


def _fake_hub_cache(cache_dir: Path, hub_id: str, state: dict) -> None:
    """The layout huggingface_hub uses: models--org--name/{refs/main, snapshots/<commit>/file}."""
    repo = cache_dir / ("models--" + hub_id.replace("/", "--"))
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))


def test_offline_uses_the_local_cache(tmp_path, monkeypatch, cls_state, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fake_hub_cache(tmp_path, timm_hub_id(SMALL), cls_state)
    model = load_timm_imagenet(SMALL, cache_dir=str(tmp_path))
    assert isinstance(model, ht.HRNetClassification)
    assert_loaded(model, cls_state)
    seg = load_timm_imagenet(SMALL, model=fresh("segmentation"), cache_dir=str(tmp_path))
    assert "last_layer.*" in capsys.readouterr().out  # a partial load, reported
    assert_loaded(seg, {k: v for k, v in cls_state.items() if not k.startswith(CLS_ONLY)})
    with pytest.raises(ValueError, match="The model is w18_small_v1 but variant='w18'"):
        load_timm_imagenet("w18", model=fresh(), cache_dir=str(tmp_path))


def test_timm_classifier_with_other_classes_loads_with_strict_false(tmp_path, monkeypatch, cls_state, capsys):
    """The report says "load with strict=False" for a 10-class classifier: load_timm_imagenet must take it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fake_hub_cache(tmp_path, timm_hub_id(SMALL), cls_state)
    with pytest.raises(WeightsMismatchError, match="load with strict=False"):
        load_timm_imagenet(SMALL, model=fresh(num_classes=10), cache_dir=str(tmp_path))
    ten = fresh(num_classes=10)
    before = ten.classifier.weight.clone()
    assert load_timm_imagenet(SMALL, model=ten, cache_dir=str(tmp_path), strict=False) is ten
    assert "classifier.weight: checkpoint (1000, 2048), model (10, 2048)" in capsys.readouterr().out
    assert_loaded(ten, {k: v for k, v in cls_state.items() if not k.startswith("classifier.")})
    assert torch.equal(ten.classifier.weight, before)  # the fresh last layer is kept
    with pytest.raises(WeightsMismatchError):  # strict=True holds for a backbone-only head too
        load_timm_imagenet(SMALL, model=fresh("segmentation"), cache_dir=str(tmp_path), strict=True)
    with pytest.raises(TypeError, match="strict must be True, False or None"):
        load_timm_imagenet(SMALL, model=fresh(), cache_dir=str(tmp_path), strict="no")


# ------------------------------------------------------------------ broken files (issue 12)
def _good_file(tmp_path, cls_state) -> bytes:
    torch.save(cls_state, tmp_path / "good.pth")
    return (tmp_path / "good.pth").read_bytes()


def _broken_files(tmp_path, cls_state):
    good = _good_file(tmp_path, cls_state)
    legacy = tmp_path / "legacy.pth"
    torch.save({"conv1.weight": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    rng = torch.Generator().manual_seed(0)
    return {  # name -> (bytes, what the message must say is wrong)
        "random.pth": (bytes(torch.randint(0, 256, (4096,), generator=rng, dtype=torch.uint8).tolist()),
                       "it does not start like any torch.save file"),
        "truncated.pth": (good[: len(good) // 2], "it starts as a torch.save zip archive, but the archive's end is missing"),
        "truncated_legacy.pth": (legacy.read_bytes()[:100], "it starts as a torch.save pickle, but it breaks off"),
        "empty.pth": (b"", "it is empty (0 bytes)"),
        "notes.pth": (b"these are my notes, not weights\n", "it does not start like any torch.save file"),
        "garbage.safetensors": (b"\xff" * 64, "it is not a readable .safetensors file"),
        "empty.safetensors": (b"", "it is empty (0 bytes)"),
    }


def test_a_corrupt_file_is_called_corrupt_and_never_gets_unsafe_advice(tmp_path, cls_state):
    model = fresh()
    for name, (content, what) in _broken_files(tmp_path, cls_state).items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError) as caught:
            load_weights(model, path)
        message = str(caught.value)
        assert message.startswith(f"{path} cannot be read as a checkpoint: {what}"), (name, message)
        assert "corrupt or truncated" in message and "Download or copy it again" in message, name
        assert f"({len(content)} bytes here)" in message, name
        assert "weights_only" not in message and "Python objects" not in message, (name, message)
        with pytest.raises(ValueError, match="cannot be read as a checkpoint"):
            ht.weights.read_checkpoint(path)  # the trainer's checkpoints say the same


def test_a_sound_file_with_objects_gets_the_trust_advice(tmp_path):
    import argparse

    torch.save({"state_dict": {"conv1.weight": torch.ones(1)}, "args": argparse.Namespace(lr=0.1)}, tmp_path / "objs.pth")
    with pytest.raises(ValueError) as caught:
        load_weights(fresh(), tmp_path / "objs.pth")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'objs.pth'} holds Python objects besides tensors")
    assert "If you trust the file's source" in message and "weights_only=False" in message
    assert "Unsupported global: GLOBAL argparse.Namespace" in message


# ------------------------------------------------------------------ the lessons' weights
def test_pretrained_or_shipped_without_download_never_touches_the_network(monkeypatch, capsys):
    from hrnet_teach import weights

    def no_network(*args, **kwargs):
        raise AssertionError("download=False must not reach for the hub")

    monkeypatch.setattr(weights, "_download", no_network)
    monkeypatch.setattr(weights, "_reachable", no_network)
    model, source = weights.pretrained_or_shipped()
    assert source == "shapes" and hasattr(model, "last_layer") and not model.training
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and len(out) <= 110, out  # one calm line that fits a 1000 px pane
    assert "shipped W18-small-v1" in out and "download=True" in out and "Error" not in out
    weights.pretrained_or_shipped(verbose=False)
    assert capsys.readouterr().out == ""


def test_pretrained_or_shipped_with_download_falls_back_in_one_line(monkeypatch, capsys, tmp_path):
    from hrnet_teach import weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache: only the shipped model is left
    model, source = weights.pretrained_or_shipped("w18_small_v1", download=True)
    assert source == "shapes" and hasattr(model, "last_layer")
    out = capsys.readouterr().out
    assert out == "No ImageNet weights for w18_small_v1 (HF_HUB_OFFLINE is set): using the shipped W18-small-v1 trained on shapes.\n"
