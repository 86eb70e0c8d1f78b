"""train(pretrained=...): the run starts from ImageNet weights, as the authors' training does
(``model.init_weights(config.MODEL.PRETRAINED)``), with the load said aloud.

A fake "ImageNet" checkpoint stands in for the real one: a w18_small_v1 classification model's state dict
with recognisable values. The seam is ``T._start``, everything a run does before its first step, so most
checks build the run without training it.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from test_train_own_dataset import Squares

import hrnet_teach as ht
from hrnet_teach import train as T
from hrnet_teach.distributed import init_distributed
from hrnet_teach.weights import WeightsUnavailableError, timm_hub_id

TINY = dict(epochs=1, train_size=16, val_size=8, batch_size=8, image_size=32, device="cpu")
HEAD_PARTS = ("last_layer", "conv3x3_ocr", "ocr_gather_head", "ocr_distri_head", "cls_head", "aux_head",
              "final_layer")
CLASSIFIER_PARTS = ("incre_modules", "downsamp_modules", "final_layer", "classifier")


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, torch.Tensor]:
    """The layout of an ImageNet checkpoint of w18_small_v1, every float a value no initialisation makes."""
    generator = torch.Generator().manual_seed(123)
    state = ht.create_model("w18_small_v1", head="classification").state_dict()
    return {key: (torch.rand(value.shape, generator=generator) + 7 if value.is_floating_point() else value)
            for key, value in state.items()}


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory, imagenet_state) -> Path:
    path = tmp_path_factory.mktemp("weights") / "hrnet_w18_small_v1_imagenet.pth"
    torch.save(imagenet_state, path)
    return path


def _start(capsys=None, **settings) -> tuple[T._Run, str]:
    """The run's set-up only (data, model, optimizer), and what it printed."""
    run = T._start(T.TrainConfig(**{**TINY, **settings}), init_distributed(None))
    return run, ("" if capsys is None else capsys.readouterr().out)


def _backbone_keys(model) -> list[str]:
    return [key for key in model.state_dict() if not key.startswith(HEAD_PARTS) and "num_batches" not in key]


def _assert_started_from(model, state: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    backbone = _backbone_keys(model)
    assert backbone and all(torch.equal(own[key], state[key]) for key in backbone), "the backbone is the file's"
    head = [key for key in own if key.startswith(HEAD_PARTS) and own[key].is_floating_point()]
    assert head and not any(key in state and torch.equal(own[key], state[key]) for key in head), "the head is new"


# ------------------------------------------------------------------ a file
@pytest.mark.parametrize("head", ["segmentation", "ocr", "pose"])
def test_the_backbone_starts_from_the_file_and_the_head_stays_random(imagenet_file, imagenet_state, capsys, head):
    run, out = _start(capsys, head=head, pretrained=imagenet_file)
    _assert_started_from(run.model, imagenet_state)
    said = [line for line in out.splitlines() if line.strip()]
    shown = " ".join(out.split())  # the message is wrapped to a notebook pane's width
    assert said[0].startswith("pretrained: loaded ") and f"from {imagenet_file.name}, the backbone" in shown
    for part in ("incre_modules", "downsamp_modules", "classifier"):
        assert re.search(rf"left out \d+ not in this model: .*{part} \(\d+\)", shown), part
    assert f"the {head} head starts random: " in shown
    assert all(len(line) <= 110 for line in said), said


def test_ones_own_data_start_from_the_file_too(imagenet_file, imagenet_state):
    run, _ = _start(dataset=(Squares(8), Squares(4, seed=1)), batch_size=4, train_size=2000, val_size=256,
                    image_size=64, pretrained=imagenet_file, progress=False)
    _assert_started_from(run.model, imagenet_state)
    assert run.settings["pretrained"] == imagenet_file.name


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory, imagenet_file) -> Path:
    out = tmp_path_factory.mktemp("run")
    T.train(**TINY, pretrained=imagenet_file, out=out, progress=False)
    return out / "checkpoint.pt"


def test_a_run_records_its_start(pretrained_run, imagenet_file, capsys):
    name = imagenet_file.name  # not the path, which would name this machine's folders
    assert json.loads((pretrained_run.parent / "metrics.json").read_text())["settings"]["pretrained"] == name
    assert T.read_checkpoint(pretrained_run)["args"]["pretrained"] == name
    assert _start(capsys, pretrained=imagenet_file, progress=False)[1] == "", "progress=False (--quiet): nothing"
    assert T.TrainConfig().pretrained is None
    assert T.TrainConfig().settings(torch.device("cpu"), False, 1, None)["pretrained"] is None


def test_resume_continues_from_the_checkpoint_and_loads_nothing_again(pretrained_run, imagenet_file, capsys):
    saved = T.read_checkpoint(pretrained_run)["model"]
    for again in (imagenet_file, None):  # the same flag as the first run, or none
        run, out = _start(capsys, epochs=2, resume=pretrained_run, pretrained=again)
        assert all(torch.equal(value, saved[key]) for key, value in run.model.state_dict().items())
        assert "pretrained: loaded" not in out
        assert out.strip() == (f"resumed from {pretrained_run} after epoch 1: its weights, which started from "
                               f"{imagenet_file.name} (--pretrained {imagenet_file.name}), continue; none are loaded "
                               "again")
        assert run.settings["pretrained"] == imagenet_file.name  # what the weights descend from
    with pytest.raises(ValueError, match=rf"was started from {imagenet_file.name} \(--pretrained "
                                         rf"{imagenet_file.name}\); this run passes --pretrained imagenet: a resumed "
                                         r"run continues from the checkpoint's weights and loads no others"):
        _start(epochs=2, resume=pretrained_run, pretrained="imagenet")


def test_a_checkpoint_older_than_the_setting_resumes_as_a_random_start(pretrained_run, imagenet_file, tmp_path, capsys):
    old = T.read_checkpoint(pretrained_run)
    for settings in (old["args"], old["metrics"]["settings"]):  # one dict, read back: saved as the same object
        settings.pop("pretrained", None)
    torch.save(old, tmp_path / "old.pt")
    run, out = _start(capsys, epochs=2, resume=tmp_path / "old.pt")
    assert run.settings["pretrained"] is None and out.strip() == f"resumed from {tmp_path / 'old.pt'} after epoch 1"
    with pytest.raises(ValueError, match=r"was started from random weights \(no --pretrained\); this run passes "
                                         rf"--pretrained {imagenet_file.name}:"):
        _start(epochs=2, resume=tmp_path / "old.pt", pretrained=imagenet_file)


# ------------------------------------------------------------------ bad inputs, before any data or model
@pytest.fixture
def no_data(monkeypatch):
    monkeypatch.setattr(T, "_loaders", lambda *a, **k: pytest.fail("the data were built before the check"))
    monkeypatch.setattr(T, "_model", lambda *a, **k: pytest.fail("the model was built before the check"))


TAKES = (r"pretrained takes 'imagenet' \(timm's ImageNet weights of the variant, .*or None \(no --pretrained\) "
         r"for random weights; got ")


@pytest.mark.parametrize("value, error, says", [
    ("ImageNet", ValueError, TAKES + r"'ImageNet', which is neither 'imagenet' nor a file here\. Did you mean 'imagenet'\?"),
    ("timm", ValueError, TAKES + r"'timm', which is neither 'imagenet' nor a file here\.$"),
    (True, ValueError, TAKES + r"True \(bool\): for ImageNet's weights pass pretrained='imagenet'"),
    ("nope/w18.pth", FileNotFoundError, r"pretrained='nope/w18.pth': No checkpoint file at nope/w18.pth \(looked in "),
])
def test_a_bad_pretrained_is_named_in_the_config(value, error, says):
    with pytest.raises(error, match=says):
        T.TrainConfig(pretrained=value)


def test_a_folder_points_at_the_checkpoint_inside(tmp_path, pretrained_run):
    with pytest.raises(IsADirectoryError, match=rf"pretrained='{tmp_path}': {tmp_path} is a folder, not a checkpoint "
                                                r"file: pass the checkpoint file inside it"):
        T.TrainConfig(pretrained=tmp_path)
    with pytest.raises(IsADirectoryError, match=r"did you mean .*checkpoint.pt \(what hrnet_teach.train writes"):
        T.TrainConfig(pretrained=pretrained_run.parent)


def test_weights_of_another_backbone_stop_the_run_before_the_data(imagenet_state, tmp_path, no_data):
    state = {key: value for key, value in imagenet_state.items() if not key.startswith("stage3.0.")}
    state["conv1.weight"] = torch.zeros(64, 3, 7, 7)
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"pretrained='other.pth' does not fit the backbone of w18_small_v1: \d+ of "
                                         r"its \d+ tensors are not in the file or have another shape \(stage3 \(\d+\), "
                                         r"conv1 \(1\)\), and would start random\..* Pass weights of w18_small_v1"):
        T.train(**TINY, pretrained=tmp_path / "other.pth")
    (tmp_path / "notes.pth").write_text("not weights")
    with pytest.raises(ValueError, match="notes.pth"):  # the weights module's message for what the file is
        T.train(**TINY, pretrained=tmp_path / "notes.pth")


# ------------------------------------------------------------------ "imagenet": timm's, through the hub's cache
def _hub_calls(monkeypatch) -> list:
    """Every hf_hub_download call, as tests/test_weights.py records them: one without local_files_only
    would go to the network (offline, about 47 s of retries)."""
    import huggingface_hub

    calls, real = [], huggingface_hub.hf_hub_download

    def recording(*args, **kwargs):
        calls.append(kwargs.get("local_files_only", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", recording)
    return calls


@pytest.fixture
def hub_cache(monkeypatch, tmp_path) -> Path:
    """An empty Hugging Face cache of the test's own, offline."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    return tmp_path


def test_offline_imagenet_fails_at_once_saying_what_to_do(hub_cache, monkeypatch, no_data):
    calls = _hub_calls(monkeypatch)
    started = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as caught:
        T.train(**TINY, pretrained="imagenet")
    assert time.perf_counter() - started < 5 and calls == [True], "only the local cache may be asked"
    message = str(caught.value)
    for needle in ("Cannot get timm's ImageNet weights timm/hrnet_w18_small.ms_in1k: HF_HUB_OFFLINE is set",
                   "internet access (e.g. Google Colab)", "huggingface.co/timm/hrnet_w18_small.ms_in1k/tree/main",
                   "pretrained='path/to/model.safetensors' (--pretrained path/to/model.safetensors)",
                   "ImageNet .pth of the authors'"):
        assert needle in message, needle
    with pytest.raises(SystemExit, match=r"^error: Cannot get timm's ImageNet weights"):
        T.main(["--epochs", "1", "--pretrained", "imagenet", "--quiet"])


def test_imagenet_comes_from_the_cache(hub_cache, imagenet_state, capsys):
    _fill_cache(hub_cache, imagenet_state)
    run, out = _start(capsys, pretrained="imagenet")
    _assert_started_from(run.model, imagenet_state)
    assert "from timm's ImageNet weights (model.safetensors), the backbone" in " ".join(out.split())
    assert run.settings["pretrained"] == "imagenet"


def test_the_cli_flag_maps_onto_the_setting(imagenet_file):
    assert T.config_from_args(T.parse_args(["--pretrained", str(imagenet_file)])).pretrained == str(imagenet_file)
    assert T.config_from_args(T.parse_args([])).pretrained is None


def _fill_cache(cache: Path, state: dict[str, torch.Tensor]) -> None:
    """timm's file where huggingface_hub looks for it: models--org--name/{refs/main, snapshots/<commit>/file}."""
    repo = cache / ("models--" + timm_hub_id("w18_small_v1").replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(repo / "snapshots" / ("0" * 40) / "model.safetensors"))


# ------------------------------------------------------------------ under torchrun: rank 0 fetches, the others wait
def _group_of_one(monkeypatch) -> None:
    """torchrun --nproc_per_node 1, in this process (gloo)."""
    from _lab import free_port

    variables = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(free_port()), "TORCHELASTIC_RUN_ID": "test"}
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def test_a_process_group_fetches_imagenet_on_rank_0(hub_cache, monkeypatch, imagenet_state):
    _group_of_one(monkeypatch)
    with pytest.raises(WeightsUnavailableError, match="HF_HUB_OFFLINE is set"):
        T.train(**TINY, pretrained="imagenet", progress=False)  # the group is left (no port held) on the way out
    _group_of_one(monkeypatch)
    _fill_cache(hub_cache, imagenet_state)
    metrics = T.train(dataset=(Squares(4), Squares(2, seed=1)), epochs=1, batch_size=2, device="cpu",
                      progress=False, pretrained="imagenet")
    assert (metrics["settings"]["backend"], metrics["settings"]["pretrained"]) == ("gloo", "imagenet")


SCRIPT = '''
from hrnet_teach import train as T

T.train(epochs=1, train_size=8, val_size=4, batch_size=2, image_size=32, device="cpu", progress=False,
        pretrained="imagenet")
'''


@pytest.mark.slow
def test_two_processes_offline_both_stop_at_once(tmp_path):
    """Rank 0 cannot get the file: it says why, rank 1 says so too, and neither waits for the other."""
    import os
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(script)], capture_output=True, text=True, env=env, timeout=120)
    said = result.stdout + result.stderr
    assert result.returncode != 0 and "HF_HUB_OFFLINE is set" in said, said[-3000:]
    # rank 1 says so too; torch 2.7's launcher (the floor, README) may end it first, as soon as rank 0 has failed
    rank1_said = "rank 0 could not get timm's ImageNet weights; its message says why" in said
    assert rank1_said or "closing signal SIGTERM" in said, said[-3000:]
