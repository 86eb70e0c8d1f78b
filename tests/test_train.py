"""The training loop: its pieces, the CLI end to end, --resume, torchrun with gloo, the shipped checkpoint."""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _lab import free_port  # noqa: E402  (tests/_lab.py)
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from hrnet_teach import train as T
from hrnet_teach.data import IGNORE_INDEX, NUM_CLASSES, ShapesDataset

REPO = Path(__file__).resolve().parent.parent
TINY = ["--epochs", "1", "--train-size", "32", "--val-size", "16", "--batch-size", "8", "--image-size", "32"]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ------------------------------------------------------------------ pieces
def test_poly_lr_is_the_official_schedule():
    assert T.poly_lr(0.01, 0, 1000) == 0.01
    assert math.isclose(T.poly_lr(0.01, 500, 1000), 0.01 * 0.5**0.9)
    assert T.poly_lr(0.01, 1000, 1000) == 0.0
    assert T.poly_lr(0.01, 250, 1000) > T.poly_lr(0.01, 500, 1000) > 0.01 * 0.5  # above linear decay
    with pytest.raises(ValueError, match="max_steps"):
        T.poly_lr(0.01, 0, 0)


def test_loss_upsamples_and_skips_ignored_pixels():
    torch.manual_seed(0)
    logits = torch.randn(2, NUM_CLASSES, 4, 4)
    mask = torch.randint(0, NUM_CLASSES, (2, 16, 16))
    up = nn.functional.interpolate(logits, size=(16, 16), mode="bilinear", align_corners=False)
    full = T.segmentation_loss(logits, mask, align_corners=False)
    assert torch.allclose(full, nn.functional.cross_entropy(up, mask))
    # ignore all but one pixel: the loss is that pixel's cross-entropy, not diluted by the others
    only = torch.full_like(mask, IGNORE_INDEX)
    only[1, 5, 7] = 2
    single = T.segmentation_loss(logits, only, align_corners=False)
    expected = -torch.log_softmax(up[1, :, 5, 7], 0)[2]
    assert torch.allclose(single, expected, atol=1e-6)


def test_confusion_matrix_and_scores_by_hand():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, IGNORE_INDEX, 1]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = T.confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    s = T.scores(cm)
    # IoU: class 0: 1/(2+2-1)=1/3, class 1: 3/(3+4-3)=3/4, class 2: 1/(2+1-1)=1/2
    assert math.isclose(s["miou"], (1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert math.isclose(s["pixel_acc"], 5 / 7)
    # a class absent from labels and predictions does not pull the mean down
    s4 = T.scores(T.confusion_matrix(pred, target, 4))
    assert math.isclose(s4["miou"], s["miou"]) and s4["per_class_iou"][3] is None


def test_confusion_matrix_reads_the_device_once_per_batch(monkeypatch):
    """Labels and predictions are range-checked with one read (on a GPU each read waits for it); it was three."""
    reads = []
    for name in ("tolist", "item", "__int__", "__bool__", "__float__", "__index__"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _original=original, _name=name:
                            reads.append(_name) or _original(self, *a))
    cm = T.confusion_matrix(torch.tensor([0, 1, 1, 3]), torch.tensor([0, 1, IGNORE_INDEX, 2]), 4)
    monkeypatch.undo()
    assert cm.sum() == 3 and reads == ["tolist"], reads


class _CountOps(TorchDispatchMode):
    """How many aten ops run inside the ``with`` block (each one a kernel on a GPU)."""

    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


def _ops_for(steps: int, through_train_one_epoch: bool) -> int:
    torch.manual_seed(0)
    net = nn.Conv2d(3, 2, 1)
    batches = [(torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)) for _ in range(steps)]
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = T.segmentation_loss
    with _CountOps() as count:
        if through_train_one_epoch:
            T.train_one_epoch(net, batches, opt, loss, torch.device("cpu"), lambda step: 0.1)
        else:  # the bare loop: forward, loss, backward, step
            for images, masks in batches:
                opt.zero_grad(set_to_none=True)
                loss(net(images), masks).backward()
                opt.step()
    return count.ops


def test_train_one_epoch_adds_no_kernels_per_step_to_watch_for_nan():
    """The losses are kept and checked once an epoch (s18 review 18): the per-step check was about a dozen ops."""
    bare = (_ops_for(3, False) - _ops_for(1, False)) / 2
    trainer = (_ops_for(3, True) - _ops_for(1, True)) / 2
    # the loss.detach() it keeps: one aten.detach a step on torch 2.13, two on torch 2.7 (the floor), nothing else
    assert trainer - bare <= 2, (trainer, bare)


def test_train_one_epoch_returns_the_mean_of_its_steps_losses():
    torch.manual_seed(0)
    net = nn.Conv2d(3, 2, 1)
    batches = [(torch.randn(2, 3, 4, 4), torch.randint(0, 2, (2, 4, 4))) for _ in range(5)]
    seen = []

    def recorded(output, mask):
        loss = T.segmentation_loss(output, mask)
        seen.append(loss.item())
        return loss

    mean = T.train_one_epoch(net, batches, torch.optim.SGD(net.parameters(), lr=0.1), recorded, torch.device("cpu"),
                             lambda step: 0.1)
    assert len(seen) == 5 and mean == pytest.approx(math.fsum(seen) / 5, rel=1e-12, abs=0)


def test_no_fusion_keeps_branches_and_head_but_drops_fuse_layers():
    with torch.device("meta"):
        fused = T.build_model("w18_small_v1", NUM_CLASSES)
        alone = T.build_model("w18_small_v1", NUM_CLASSES, fusion=False)
    assert all(m.fuse_layers is not None for m in fused.stage4)
    assert all(m.fuse_layers is None for m in alone.stage4)
    assert alone.last_layer[0].in_channels == fused.last_layer[0].in_channels == 16 + 32 + 64 + 128
    assert alone.config.fusion is False and fused.config.fusion is True


def test_config_round_trips_through_a_dict():
    for fusion in (True, False):
        config = T.get_config("w18_small_v2").replace(fusion=fusion)
        assert T.config_from_dict(T.config_to_dict(config)) == config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"variant": "w19"}, "Unknown HRNet variant 'w19'"),
        ({"dataset": "cityscapes"}, "dataset must be one of"),
        ({"optimizer": "adam"}, "optimizer must be one of"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"train_size": 4, "batch_size": 8}, "smaller than one batch"),
    ],
)
def test_bad_settings_fail_early_and_clearly(kwargs, message):
    settings = dict(epochs=1, train_size=16, val_size=8, batch_size=8, image_size=32, progress=False, device="cpu")
    settings.update(kwargs)
    with pytest.raises(ValueError, match=message):
        T.train(**settings)


# ------------------------------------------------------------------ the CLI end to end
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = subprocess.run(
        [sys.executable, "-m", "hrnet_teach.train", *TINY, "--out", str(out), "--device", "cpu", "--amp", "--seed", "3"],
        capture_output=True, text=True, env=_env(), cwd=REPO, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_cli_writes_metrics_json(cli_run):
    out, result = cli_run
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("loss", "miou", "pixel_acc"):
        assert len(metrics[key]) == 1 and math.isfinite(metrics[key][0])
    assert 0 <= metrics["final_miou"] <= 1 and metrics["final_miou"] == metrics["miou"][-1]
    assert 0 <= metrics["pixel_acc"][0] <= 1
    assert metrics["settings"]["seed"] == 3 and metrics["settings"]["world_size"] == 1
    # --amp on the CPU says it is ignored and runs in float32
    assert "mixed precision is for CUDA" in result.stdout and metrics["settings"]["amp"] is False
    assert "val mIoU" in result.stdout


def test_cli_checkpoint_loads_strictly(cli_run):
    out, _ = cli_run
    checkpoint = T.read_checkpoint(out / "checkpoint.pt")
    assert {"model", "optimizer", "epoch", "config", "metrics"} <= set(checkpoint)
    assert checkpoint["epoch"] == 1 and isinstance(checkpoint["config"], dict)
    model = T.model_from_checkpoint(out / "checkpoint.pt")
    assert not model.training
    # the weights module takes the checkpoint dict too (its "model" entry), strictly
    fresh = T.build_model("w18_small_v1", NUM_CLASSES)
    T.load_model_weights(fresh, checkpoint, strict=True)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, checkpoint["model"][key]), key
    # and it scores what the metrics file says, on the same held-out scenes
    val = ShapesDataset(16, image_size=32, seed=3, split="val")
    assert math.isclose(T.evaluate(model, val, "cpu")["miou"], checkpoint["metrics"]["final_miou"], abs_tol=1e-6)


def test_resume_continues_where_it_stopped(cli_run, tmp_path):
    out, _ = cli_run
    first = json.loads((out / "metrics.json").read_text())
    metrics = T.main([*TINY[:1], "2", *TINY[2:], "--out", str(tmp_path), "--device", "cpu", "--seed", "3",
                      "--resume", str(out / "checkpoint.pt"), "--quiet"])
    assert metrics["epoch"] == 2 and len(metrics["miou"]) == 2
    assert metrics["miou"][0] == first["miou"][0] and metrics["loss"][0] == first["loss"][0]
    assert T.read_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 2


# ------------------------------------------------------------------ several processes
def test_torchrun_two_processes_with_gloo_agree(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "hrnet_teach.train", *TINY, "--batch-size", "4", "--out", str(tmp_path), "--device", "cpu", "--quiet"],
        capture_output=True, text=True, env=_env(), cwd=REPO, timeout=240,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    lines = re.findall(r"rank (\d)/2: final miou ([\d.]+) pixel_acc ([\d.]+) weights (-?[\d.]+)", result.stdout)
    assert sorted(rank for rank, *_ in lines) == ["0", "1"], result.stdout[-2000:]
    assert lines[0][1:] == lines[1][1:]  # the same scores and the same weights on both ranks
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["settings"]["world_size"] == 2 and metrics["settings"]["backend"] == "gloo"
    assert math.isclose(metrics["final_miou"], float(lines[0][1]), abs_tol=1e-6)
    checkpoint = T.read_checkpoint(tmp_path / "checkpoint.pt")
    assert not any(k.startswith("module.") for k in checkpoint["model"])  # rank 0 saved the bare model
    model = T.model_from_checkpoint(checkpoint)  # strict
    # on CPU/gloo BatchNorm stays BatchNorm2d (SyncBatchNorm's training forward raises under gloo)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    val = ShapesDataset(16, image_size=32, seed=0, split="val")
    assert math.isclose(T.evaluate(model, val, "cpu")["miou"], metrics["final_miou"], abs_tol=1e-6)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/gpu_check.sh there)")
def test_torchrun_one_gpu_trains_with_nccl_and_syncbatchnorm(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
         "-m", "hrnet_teach.train", *TINY, "--out", str(tmp_path), "--device", "cuda", "--amp", "--quiet"],
        capture_output=True, text=True, env=_env(), cwd=REPO, timeout=240,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    settings = json.loads((tmp_path / "metrics.json").read_text())["settings"]
    assert settings["backend"] == "nccl" and settings["world_size"] == 1 and settings["amp"]
    T.model_from_checkpoint(T.read_checkpoint(tmp_path / "checkpoint.pt"))  # strict: SyncBatchNorm saves BatchNorm's keys


def test_batchnorm_stays_plain_on_gloo_and_syncs_on_nccl():
    def model():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))

    gloo = T.prepare_batchnorm(model(), T.Distributed(rank=0, world_size=2, backend="gloo"))
    assert isinstance(gloo[1], nn.BatchNorm2d) and not isinstance(gloo[1], nn.SyncBatchNorm)
    nccl = T.prepare_batchnorm(model(), T.Distributed(rank=0, world_size=2, backend="nccl"))
    assert isinstance(nccl[1], nn.SyncBatchNorm)
    single = T.prepare_batchnorm(model(), T.Distributed())
    assert not isinstance(single[1], nn.SyncBatchNorm)
    one_gpu = T.prepare_batchnorm(model(), T.Distributed(rank=0, world_size=1, backend="nccl"))  # torchrun, 1 process
    assert isinstance(one_gpu[1], nn.SyncBatchNorm)




def test_torchrun_with_one_process_joins_a_group_of_one(monkeypatch):
    """torchrun --nproc_per_node 1 takes the multi-process path (a process group, DDP, and on a GPU
    NCCL and SyncBatchNorm layers), so one GPU can check it; run alone, nothing is joined."""
    import torch.distributed as dist

    from hrnet_teach.distributed import close_distributed, init_distributed

    variables = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(free_port())}
    for name in [*variables, "TORCHELASTIC_RUN_ID"]:
        monkeypatch.delenv(name, raising=False)
    assert not init_distributed("cpu").enabled  # plain python: no torchrun variables
    for name, value in variables.items():  # another launcher's variables, world size 1: still a plain run
        monkeypatch.setenv(name, value)
    assert not init_distributed("cpu").enabled
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")  # what torchrun adds
    ctx = init_distributed("cpu")
    try:
        assert ctx.enabled and ctx.world_size == 1 and ctx.backend == "gloo" and dist.is_initialized()
    finally:
        close_distributed(ctx)
    assert not dist.is_initialized()


def test_torchrun_on_gpus_without_nccl_says_what_to_do(monkeypatch):
    """Windows' torch has CUDA but no NCCL: init_process_group('nccl') raised torch's own error before."""
    import torch.distributed as dist

    from hrnet_teach import distributed

    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "test"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_nccl_available", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: pytest.fail("joined a group anyway"))
    with pytest.raises(ValueError, match="needs NCCL.*Linux or WSL2.*--device cpu"):
        distributed.init_distributed(None)


# ------------------------------------------------------------------ the shipped checkpoint
def test_shipped_checkpoint_loads_strictly_and_scores_as_claimed():
    path = REPO / "assets" / T.SHAPES_CHECKPOINT
    assert path.stat().st_size < 5 * 2**20
    info = T.shapes_checkpoint_info()
    claimed = info["metrics"]["shipped_miou"]
    assert claimed >= 0.90
    model = T.load_shapes_model()
    assert not model.training and next(model.parameters()).dtype == torch.float32
    args = info["args"]
    held_out = ShapesDataset(args["val_size"], image_size=args["image_size"], seed=args["seed"], split="val")
    measured = T.evaluate(model, held_out, "cpu")
    assert abs(measured["miou"] - claimed) < 0.005, (measured, claimed)
    assert info["command"].startswith("python -m hrnet_teach.train")


def test_checkpoint_loading_lives_in_weights_and_the_trainer_re_exports_it():
    from hrnet_teach import weights

    for name in ("load_shapes_model", "shapes_checkpoint_info", "read_checkpoint", "model_from_checkpoint",
                 "pretrained_or_shipped", "config_to_dict", "config_from_dict", "SHAPES_CHECKPOINT"):
        assert getattr(T, name) is getattr(weights, name), name
    shipped = weights.load_shapes_model()  # the shipped file, read by the weights module alone
    assert isinstance(shipped, T.HRNetSegmentation) and not shipped.training
    assert weights.read_checkpoint(REPO / "assets" / weights.SHAPES_CHECKPOINT)["storage_dtype"] == "float16"


# the entries hrnet_teach.train has written into checkpoint.pt since the first shipped checkpoint
CHECKPOINT_KEYS = {"model", "optimizer", "scaler", "epoch", "config", "num_classes", "align_corners", "head",
                   "metrics", "args", "command"}


def test_checkpoint_format_is_unchanged(cli_run):
    out, _ = cli_run
    checkpoint = T.read_checkpoint(out / "checkpoint.pt")
    assert set(checkpoint) == CHECKPOINT_KEYS
    assert checkpoint["metrics"] == json.loads((out / "metrics.json").read_text())
    assert checkpoint["args"] == checkpoint["metrics"]["settings"] and checkpoint["command"].startswith("python -m hrnet_teach.train")


def test_an_old_format_checkpoint_loads_and_resumes(tmp_path):
    """A checkpoint laid out as the trainer wrote it before TrainConfig (a plain dict, saved by hand
    here) still rebuilds its model and resumes."""
    torch.manual_seed(0)
    model = T.build_model("w18_small_v1", NUM_CLASSES)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=1e-4)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    settings = {"epochs": 1, "image_size": 32, "seed": 0}
    history = {"loss": [1.5], "miou": [0.25], "pixel_acc": [0.5], "elapsed_s": [3.0], "lr": [0.0]}
    old = {
        "model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": torch.amp.GradScaler("cuda", enabled=False).state_dict(),
        "epoch": 1, "config": T.config_to_dict(model.config), "num_classes": NUM_CLASSES, "align_corners": False,
        "head": "segmentation", "metrics": {**history, "epoch": 1, "final_miou": 0.25, "settings": settings},
        "args": settings, "command": "python -m hrnet_teach.train --epochs 1",
    }
    torch.save(old, tmp_path / "old.pt")
    rebuilt = T.model_from_checkpoint(tmp_path / "old.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value), key
    metrics = T.train(epochs=2, train_size=16, val_size=8, batch_size=8, image_size=32, device="cpu",
                      progress=False, resume=tmp_path / "old.pt", out=tmp_path / "run")
    assert metrics["epoch"] == 2 and metrics["loss"][0] == 1.5 and metrics["miou"][0] == 0.25 and len(metrics["miou"]) == 2
    assert metrics["elapsed_s"][1] >= 3.0  # the clock continues from the old run's


# ------------------------------------------------------------------ TrainConfig, the loss plug-in
def test_train_config_checks_and_the_cli_maps_onto_it():
    import numpy as np

    assert T.TrainConfig(epochs=np.int64(3)).epochs == 3  # a numpy integer is an integer
    with pytest.raises(ValueError, match=r"epochs must be a positive integer, got 2\.5 \(float\)"):
        T.TrainConfig(epochs=2.5)
    with pytest.raises(ValueError, match="head must be one of"):
        T.TrainConfig(head="classification")
    config = T.config_from_args(T.parse_args(["--no-fusion", "--quiet", "--epochs", "3", "--threads", "1"]), "cmd")
    assert (config.fusion, config.progress, config.epochs, config.command) == (False, False, 3, "cmd")
    assert (config.base_lr, config.decay) == (T.DEFAULT_LR["adamw"], T.DEFAULT_WEIGHT_DECAY["adamw"])
    assert T.TrainConfig(optimizer="sgd").base_lr == T.DEFAULT_LR["sgd"] != T.DEFAULT_LR["adamw"]
    with pytest.raises(TypeError, match="TrainConfig or keyword settings"):
        T.train("w18_small_v1")


def test_align_corners_is_refused_for_the_pose_readout_which_would_ignore_it():
    """Before: --head pose --align-corners trained without it and wrote align_corners: True into metrics.json."""
    assert T.TrainConfig(head="ocr", align_corners=True).align_corners
    with pytest.raises(ValueError, match=r"head 'pose' \(the V1 readout\) fuses by nearest.*leave align_corners out"):
        T.TrainConfig(head="pose", align_corners=True)
    assert T.resize_align_corners(T.build_model("w18_small_v1", NUM_CLASSES, head="pose")) is False


def test_the_loss_comes_from_the_model_unless_the_config_gives_one():
    seg = T.build_model("w18_small_v1", NUM_CLASSES, align_corners=True)
    loss = T.loss_for(seg)
    assert loss.func is T.segmentation_loss and loss.keywords == {"align_corners": True, "ohem": False}
    pose = T.build_model("w18_small_v1", NUM_CLASSES, head="pose")
    assert T.loss_for(pose).keywords == {"align_corners": False, "ohem": False}
    calls = []

    def criterion(output, mask):  # a head with its own loss plugs in like this
        calls.append(tuple(output.shape))
        return T.segmentation_loss(output, mask, align_corners=False)

    T.train(T.TrainConfig(epochs=1, train_size=16, val_size=8, batch_size=8, image_size=32, device="cpu",
                          progress=False, criterion=criterion))
    assert calls == [(8, NUM_CLASSES, 8, 8)] * 2  # 16 scenes, batches of 8: two steps
    assert T.final_logits([torch.zeros(1), torch.ones(1)]).item() == 1  # several outputs: the last is scored


def test_channels_last_switch_reaches_model_and_images(tmp_path):
    """--channels-last / --no-channels-last (default: CUDA only): the weights and the images
    the model sees are NHWC exactly when asked, and the run's settings record it."""
    assert T.parse_args([]).channels_last is None
    assert T.parse_args(["--no-channels-last"]).channels_last is False
    assert T.TrainConfig().use_channels_last(torch.device("cuda")) is True
    assert T.TrainConfig(channels_last=False).use_channels_last(torch.device("cuda")) is False
    assert T.TrainConfig().use_channels_last(torch.device("cpu")) is False
    seen = []

    def criterion(output, mask):
        seen.append(output.is_contiguous(memory_format=torch.channels_last) and not output.is_contiguous())
        return T.segmentation_loss(output, mask, align_corners=False)

    metrics = T.train(T.TrainConfig(epochs=1, train_size=8, val_size=8, batch_size=8, image_size=32, device="cpu",
                                    progress=False, criterion=criterion, channels_last=True, out=tmp_path))
    assert seen == [True] and metrics["settings"]["channels_last"] is True
    seen.clear()
    T.train(T.TrainConfig(epochs=1, train_size=8, val_size=8, batch_size=8, image_size=32, device="cpu",
                          progress=False, criterion=criterion))
    assert seen == [False]


# ------------------------------------------------------------------ the fusion ablation
def test_ablation_summary_is_mean_and_sample_std():
    from hrnet_teach.ablation import summarize

    runs = [{"arm": arm, "miou": m, "per_class_iou": [m, m, m, m]}
            for arm, m in (("fusion", 0.90), ("fusion", 0.92), ("fusion", 0.94), ("no_fusion", 0.80), ("no_fusion", 0.84))]
    summary = summarize(runs)
    assert math.isclose(summary["fusion"]["miou_mean"], 0.92) and math.isclose(summary["fusion"]["miou_std"], 0.02)
    assert summary["no_fusion"]["n"] == 2 and math.isclose(summary["no_fusion"]["miou_std"], 0.04 / math.sqrt(2))
    assert math.isclose(summary["fusion"]["class_iou_mean"]["thin line"], 0.92)


def test_ablation_cli_trains_both_arms(tmp_path):
    from hrnet_teach import ablation

    out = tmp_path / "ablation.json"
    result = ablation.main(["--seeds", "1", "--epochs", "1", "--train-size", "16", "--val-size", "8", "--head", "pose",
                            "--batch-size", "8", "--image-size", "32", "--device", "cpu", "--json", str(out)])
    written = json.loads(out.read_text())
    assert [(r["arm"], r["seed"]) for r in written["runs"]] == [("fusion", 0), ("no_fusion", 0)]
    assert set(written["summary"]) == {"fusion", "no_fusion"} and written["command"].startswith("python -m hrnet_teach.ablation")
    for run in result["runs"]:
        assert 0 <= run["miou"] <= 1 and len(run["miou_per_epoch"]) == 1
        assert result["summary"][run["arm"]]["miou_mean"] == run["miou"] and result["summary"][run["arm"]]["miou_std"] == 0


def test_v1_readout_trains_and_reloads_as_what_it_was(tmp_path):
    metrics = T.train(head="pose", epochs=1, train_size=16, val_size=8, batch_size=8, image_size=32,
                      out=tmp_path, progress=False, device="cpu")
    model = T.model_from_checkpoint(tmp_path / "checkpoint.pt")
    assert isinstance(model, T.HRNetPose) and model.final_layer.out_channels == NUM_CLASSES
    val = ShapesDataset(8, image_size=32, seed=0, split="val")
    assert math.isclose(T.evaluate(model, val)["miou"], metrics["final_miou"], abs_tol=1e-6)


def test_shipped_ablation_results_are_complete():
    results = json.loads((REPO / "assets" / "ablation_results.json").read_text())
    assert results["command"].startswith("python -m hrnet_teach.ablation --seeds 3")
    for arm in ("fusion", "no_fusion"):
        runs = [r for r in results["runs"] if r["arm"] == arm]
        assert sorted(r["seed"] for r in runs) == [0, 1, 2]
        mean = sum(r["miou"] for r in runs) / 3
        assert math.isclose(results["summary"][arm]["miou_mean"], mean)
    ocr = results["ocr_vs_v2"]  # the V2-vs-OCR comparison: OCR's runs, the V2 ones are the fusion arm above
    assert "--head ocr --arms fusion" in ocr["command"] and ocr["settings"]["head"] == "ocr"
    assert sorted(r["seed"] for r in ocr["runs"]) == [0, 1, 2]
    assert math.isclose(ocr["summary"]["fusion"]["miou_mean"], sum(r["miou"] for r in ocr["runs"]) / 3)
    same = ("variant", "epochs", "batch_size", "image_size", "train_size", "val_size", "optimizer")
    assert {k: ocr["settings"][k] for k in same} == {k: results["settings"][k] for k in same}


def test_the_loss_sum_avoids_float64_on_apples_mps():
    """MPS has no float64: a float64 loss sum made the first epoch raise TypeError on Apple silicon."""
    from hrnet_teach import train as T

    assert T.sum_dtype("mps") == torch.float32
    assert T.sum_dtype("cpu") == T.sum_dtype(torch.device("cuda", 0)) == torch.float64


# ------------------------------------------------------------------ on a GPU, seen from the CPU
class _OnGPU(torch.Tensor):
    """A CPU tensor that says it is on cuda:0 until .cpu() or .to("cpu") gives a plain one: shows, without a
    GPU, whether the checkpoint code moves the weights to the CPU (a CUDA tensor in the file needs CUDA to load)."""

    @property
    def device(self):
        return torch.device("cuda", 0)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = super().__torch_function__(func, types, args, kwargs)
        name = getattr(func, "__name__", "")
        targets = [a for a in (*args[1:], *kwargs.values()) if isinstance(a, (str, torch.device))]
        to_cpu = name == "cpu" or (name == "to" and any(torch.device(a).type == "cpu" for a in targets))
        return out.as_subclass(torch.Tensor) if to_cpu and isinstance(out, torch.Tensor) else out


def test_a_gpu_runs_checkpoint_and_export_hold_cpu_tensors(tmp_path, monkeypatch):
    """A Colab-trained checkpoint.pt or --export file must load with a plain torch.load on a laptop without CUDA."""
    from hrnet_teach.models import create_model

    model = create_model("w18_small_v1", head="segmentation", num_classes=NUM_CLASSES)
    on_gpu = {k: v.detach().as_subclass(_OnGPU) for k, v in model.state_dict().items()}
    assert all(v.device.type == "cuda" for v in on_gpu.values())  # the stand-in works
    monkeypatch.setattr(model, "state_dict", lambda: on_gpu)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    checkpoint = T.checkpoint_of(model, opt, T._grad_scaler(False), 1, T.TrainConfig(), {}, {})
    assert all(type(v) is torch.Tensor and v.device.type == "cpu" for v in checkpoint["model"].values())
    T.export_checkpoint(dict(checkpoint, model=on_gpu), tmp_path / "export.pt")
    state = torch.load(tmp_path / "export.pt", weights_only=True)["model"]
    assert all(type(v) is torch.Tensor and v.device.type == "cpu" for v in state.values())
    assert {v.dtype for k, v in state.items() if on_gpu[k].is_floating_point()} == {torch.float16}


def test_train_restores_cudnn_benchmark_and_pins_memory_for_cuda(tmp_path, monkeypatch):
    """train() turns cudnn.benchmark on for a CUDA run; a notebook's later cells (lesson 07's pose run) get their
    own setting back. A CUDA run's loaders pin their batches, so the non_blocking copies overlap with the GPU."""
    from hrnet_teach.distributed import Distributed

    real = T._run_device
    calls = []

    def run_device(config, ctx):  # as on CUDA: benchmark on
        calls.append(1)
        torch.backends.cudnn.benchmark = True
        return real(config, ctx)

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(T, "_run_device", run_device)
    T.train(epochs=1, train_size=16, val_size=8, batch_size=8, image_size=32, device="cpu", progress=False,
            out=tmp_path)
    assert calls and torch.backends.cudnn.benchmark is False
    config = T.TrainConfig(train_size=16, val_size=8, batch_size=8, image_size=32, workers=0)
    for device, pinned in (("cuda", True), ("cpu", False)):
        train_loader, val_loader, _ = T._loaders(config, Distributed(), torch.device(device))
        assert train_loader.pin_memory is pinned and val_loader.pin_memory is pinned


@pytest.mark.parametrize("device, world_size, local_rank, expected", [
    ("cuda", 2, 1, "nccl"), ("cuda:0", 1, 0, "nccl"), ("cuda:1", 2, 1, "refused"), ("cuda:0", 2, 0, "refused"),
    ("cuda:1", 1, 0, "refused"), ("cpu", 2, 0, "gloo"), (None, 2, 0, "nccl")])
def test_torchrun_backend_follows_the_device_type_and_an_index_is_refused(monkeypatch, device, world_size,
                                                                        local_rank, expected):
    """--device cuda:0 under torchrun chose gloo before (a string match): no NCCL or SyncBatchNorm, and every
    rank on GPU 0. Each process takes the GPU of its LOCAL_RANK, so an index other than that is refused."""
    import torch.distributed as dist

    from hrnet_teach import distributed

    for name, value in {"RANK": str(local_rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world_size),
                        "TORCHELASTIC_RUN_ID": "test"}.items():
        monkeypatch.setenv(name, value)
    joined = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: joined.append(f"cuda:{index}"))
    monkeypatch.setattr(dist, "is_nccl_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: joined.append(backend))
    monkeypatch.setattr(dist, "get_backend", lambda: joined[-1])
    if expected == "refused":
        with pytest.raises(ValueError, match=rf"--device {device} under torchrun: each process takes the GPU of "
                                             rf"its LOCAL_RANK \(this one: cuda:{local_rank}\).*--device cuda.*"
                                             "CUDA_VISIBLE_DEVICES"):
            distributed.init_distributed(device)
        assert joined == []
    else:
        assert distributed.init_distributed(device).backend == expected
        assert joined == ([f"cuda:{local_rank}"] if expected == "nccl" else []) + [expected]


# ------------------------------------------------------------------ OHEM on the segmentation head
def _ohem_case():
    """512 x 512 pixels of class 0 (more than the official OHEMKEEP, 131072): a quarter hard (p = 0.27), half
    medium (p = 0.73), a quarter easy (p = 0.99). The kept-pixel cut is max(p at index 131072, 0.9) = 0.9."""
    logits = torch.zeros(1, 2, 512, 512)
    logits[:, 1, :128] = 1.0  # hard: the wrong class leads
    logits[:, 0, 128:384] = 1.0  # medium
    logits[:, 0, 384:] = 5.0  # easy
    return logits, torch.zeros(1, 512, 512, dtype=torch.long)


def test_ohem_on_the_segmentation_output_drops_the_easy_pixels():
    logits, mask = _ohem_case()
    hard, medium, easy = (math.log1p(math.exp(z)) for z in (1.0, -1.0, -5.0))  # cross-entropy of each kind
    ohem = T.segmentation_loss(logits, mask, align_corners=False, ohem=True)
    plain = T.segmentation_loss(logits, mask, align_corners=False)
    assert math.isclose(ohem.item(), (hard + 2 * medium) / 3, rel_tol=1e-5)  # the easy quarter is left out
    assert math.isclose(plain.item(), (hard + 2 * medium + easy) / 4, rel_tol=1e-5)
    small = logits[..., ::4, ::4]  # the model's 1/4 output: resized to the mask first, as without OHEM
    from hrnet_teach.ocr import ohem_cross_entropy
    torch.testing.assert_close(T.segmentation_loss(small, mask, align_corners=False, ohem=True),
                               ohem_cross_entropy(small, mask, align_corners=False))


def test_ohem_trains_the_segmentation_head_with_the_ohem_loss(tmp_path, monkeypatch):
    from hrnet_teach import ocr

    calls = []

    def spy(logits, *args, **kwargs):
        calls.append(tuple(logits.shape))
        return ocr.ohem_cross_entropy(logits, *args, **kwargs)

    monkeypatch.setattr(T, "ohem_cross_entropy", spy)
    metrics = T.train(head="segmentation", ohem=True, epochs=1, train_size=8, val_size=4, batch_size=4,
                      image_size=32, device="cpu", progress=False, out=tmp_path)
    assert calls == [(4, NUM_CLASSES, 32, 32)] * 2  # both steps, on the logits resized to the masks
    assert math.isfinite(metrics["loss"][0]) and metrics["settings"]["ohem"] is True
    assert json.loads((tmp_path / "metrics.json").read_text())["settings"]["ohem"] is True
    config = T.config_from_args(T.parse_args(["--ohem"]))
    assert config.head == "segmentation" and config.ohem is True


def test_ohem_is_refused_for_the_pose_readout_with_the_reason():
    with pytest.raises(ValueError, match=r"not 'pose': the V1 readout is trained here only for the fusion ablation"):
        T.TrainConfig(head="pose", ohem=True)
    with pytest.raises(SystemExit, match="official pose code has no OhemCrossEntropy"):
        T.main(["--head", "pose", "--ohem", "--quiet"])
