"""Training HRNetV2 for segmentation: one CPU, one GPU (AMP), or several (torchrun).

The recipe follows the authors' segmentation trainer (HRNet-Semantic-Segmentation,
``tools/train.py``): cross-entropy that skips ``IGNORE_INDEX`` on logits
upsampled to the mask's size, SGD (momentum 0.9, weight decay 5e-4) with the
"poly" learning rate ``lr * (1 - step / steps) ** 0.9``, and mIoU from a
confusion matrix summed over the whole held-out split. AdamW is offered too: on
tiny CPU runs it gets there in fewer steps.

Run it::

    python -m hrnet_teach.train --epochs 6 --out runs/shapes
    torchrun --nproc_per_node 2 -m hrnet_teach.train --epochs 6 --out runs/ddp

With ``torchrun`` every process trains a copy of the model on its own share of
each epoch (``DistributedSampler``), ``DistributedDataParallel`` averages the
gradients, the metrics are summed across processes, and only rank 0 writes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shlex
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ._validate import positive_int
from .config import VARIANTS, HRNetConfig, StageConfig, get_config
from .data import DATASETS, IGNORE_INDEX, make_dataset
from .heads import HRNetPose, HRNetSegmentation
from .models import create_model

OPTIMIZERS = ("adamw", "sgd")
TRAIN_HEADS = ("segmentation", "pose")
DEFAULT_LR = {"adamw": 5e-3, "sgd": 0.05}
DEFAULT_WEIGHT_DECAY = {"adamw": 1e-4, "sgd": 5e-4}  # sgd: the official value
POLY_POWER = 0.9
SHAPES_CHECKPOINT = "checkpoints/shapes_w18_small_v1.pt"
PathLike = Union[str, Path]


# ------------------------------------------------------------------ the pieces
def poly_lr(base_lr: float, step: int, max_steps: int, power: float = POLY_POWER) -> float:
    """The "poly" schedule of the official trainer: ``base_lr * (1 - step / max_steps) ** power``.

    Step 0 uses ``base_lr``; the rate falls smoothly to 0 at ``max_steps``.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    return base_lr * (1 - min(step, max_steps) / max_steps) ** power


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor, align_corners: bool = True) -> torch.Tensor:
    """Cross-entropy over the pixels that have a label.

    The model predicts at 1/4 of the image size; the logits are upsampled
    (bilinear, as the official ``CrossEntropy`` does) to the mask's size, and
    pixels marked ``IGNORE_INDEX`` add nothing to the loss or to its average.
    """
    if logits.shape[-2:] != mask.shape[-2:]:
        logits = F.interpolate(logits, size=mask.shape[-2:], mode="bilinear", align_corners=align_corners)
    return F.cross_entropy(logits.float(), mask, ignore_index=IGNORE_INDEX)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``cm[t, p]`` counts pixels of true class t predicted as p; ignored pixels are left out."""
    keep = target != IGNORE_INDEX
    index = target[keep].long() * num_classes + pred[keep].long()
    return torch.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores(cm: torch.Tensor) -> dict[str, Any]:
    """mIoU and pixel accuracy from a confusion matrix.

    IoU of class c = true positives / (pixels labelled c + pixels predicted c - true positives);
    mIoU averages it over the classes that occur (in the labels or the predictions).
    """
    cm = cm.double()
    tp = cm.diag()
    union = cm.sum(0) + cm.sum(1) - tp
    iou = tp / union.clamp(min=1)
    present = union > 0
    miou = iou[present].mean().item() if present.any() else 0.0
    pixel_acc = (tp.sum() / cm.sum().clamp(min=1)).item()
    per_class = [round(v, 6) if p else None for v, p in zip(iou.tolist(), present.tolist())]
    return {"miou": miou, "pixel_acc": pixel_acc, "per_class_iou": per_class}


def _num_classes(model: nn.Module) -> int:
    if isinstance(model, HRNetSegmentation):
        return model.last_layer[-1].out_channels
    if isinstance(model, HRNetPose):  # the V1 readout used as a per-pixel classifier
        return model.final_layer.out_channels
    raise TypeError(f"evaluate expects a segmentation model (HRNetSegmentation), got {type(model).__name__}")


def _resize_align_corners(model: nn.Module) -> bool:
    """How to enlarge this model's logits to the mask: as its own bilinear fusion does
    (HRNetSegmentation), or without corner alignment (the V1 readout, which fuses by nearest)."""
    return model.align_corners if isinstance(model, HRNetSegmentation) else False


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader_or_dataset: Union[DataLoader, Dataset],
    device: Union[str, torch.device, None] = None,
    batch_size: int = 64,
    amp: bool = False,
    reduce: bool = True,
) -> dict[str, Any]:
    """mIoU and pixel accuracy of ``model`` on a dataset (or a DataLoader of (image, mask)).

    ``device``: where the model is (default: where its weights are).
    Predictions are the argmax of logits upsampled to the mask size. In a
    distributed run every process passes its own share of the data and the
    confusion matrices are summed (``all_reduce``), so all ranks return the
    same numbers: the score of the whole split (``reduce=False`` keeps this
    process's own count, e.g. when only rank 0 evaluates).
    """
    core = _unwrap(model)
    device = next(core.parameters()).device if device is None else torch.device(device)
    num_classes = _num_classes(core)
    loader = loader_or_dataset
    if isinstance(loader_or_dataset, Dataset):
        loader = DataLoader(loader_or_dataset, batch_size=batch_size, shuffle=False)
    was_training = core.training
    core.eval()
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    for images, masks in loader:
        images, masks = images.to(device), masks.to(device)
        with _autocast(device, amp):
            logits = core(_memory_format(images, device))
        logits = F.interpolate(logits.float(), size=masks.shape[-2:], mode="bilinear", align_corners=_resize_align_corners(core))
        cm += confusion_matrix(logits.argmax(1), masks, num_classes)
    if reduce and dist.is_available() and dist.is_initialized():
        dist.all_reduce(cm)
    core.train(was_training)
    return scores(cm.cpu())


# ------------------------------------------------------------------ devices
def pick_device(device: Union[str, torch.device, None] = None) -> torch.device:
    """``None``/``"auto"``: CUDA when there is a GPU, else Apple's MPS, else the CPU."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but this torch sees no GPU; use --device cpu (or auto)")
    return device


def _autocast(device: torch.device, amp: bool):
    # Mixed precision only on CUDA: float16 matmuls there are fast and GradScaler keeps
    # small gradients from vanishing; on CPU autocast would only slow this model down.
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


def _memory_format(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    # channels-last (NHWC) lets cuDNN pick its fastest convolution kernels (tensor cores);
    # on CPU this model runs no faster, so the tensors stay as they are.
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x


def _grad_scaler(enabled: bool):
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return torch.amp.GradScaler("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


# ------------------------------------------------------------------ several processes
@dataclasses.dataclass
class Distributed:
    """Where this process sits in a ``torchrun`` job (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None
    started_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: Optional[str]) -> Distributed:
    """Join the process group that ``torchrun`` describes in its environment variables.

    NCCL when each process has a GPU, gloo on CPU. Run without torchrun, this is a no-op.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in (None, "auto", "cuda")
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    started = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
        started = True
    return Distributed(rank, world_size, local_rank, dist.get_backend(), started)


def prepare_batchnorm(model: nn.Module, ctx: Distributed) -> nn.Module:
    """BatchNorm across processes: SyncBatchNorm where the backend supports it.

    With DDP each process normalises with the mean and variance of its own
    few images; SyncBatchNorm gathers the statistics of the whole global batch
    (what the official trainer does on its 4 GPUs). It needs NCCL on GPUs:
    PyTorch has no CPU kernels for it, and under gloo on CPU its forward
    raises. So on CPU the model keeps plain BatchNorm2d, each rank with its
    own statistics, and rank 0's running statistics are broadcast before
    evaluation so every rank evaluates the same network.
    """
    if ctx.enabled and ctx.backend == "nccl":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def _broadcast_buffers(model: nn.Module) -> None:
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def _shard(dataset: Dataset, ctx: Distributed) -> Dataset:
    # Every process evaluates every world_size-th scene: no scene twice, none left out
    # (a DistributedSampler would pad with repeats to make the shares equal).
    return Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size)) if ctx.enabled else dataset


# ------------------------------------------------------------------ checkpoints
def config_to_dict(config: HRNetConfig) -> dict[str, Any]:
    """An HRNetConfig as plain data (what a checkpoint stores)."""
    return dataclasses.asdict(config)


def config_from_dict(data: dict[str, Any]) -> HRNetConfig:
    """The inverse of :func:`config_to_dict`."""
    stages = {f"stage{i}": StageConfig(**data[f"stage{i}"]) for i in (1, 2, 3, 4)}
    rest = {k: v for k, v in data.items() if not k.startswith("stage")}
    return HRNetConfig(**stages, **rest)


def load_model_weights(model: nn.Module, source: Union[PathLike, dict], strict: bool = True) -> nn.Module:
    """Load a state dict or a training checkpoint into ``model`` with the weights module."""
    from .weights import load_weights

    load_weights(model, source, strict=strict, verbose=False)
    return model


def read_checkpoint(path: PathLike) -> dict[str, Any]:
    """A checkpoint written by this trainer (plain tensors and data: ``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}")
    return torch.load(path, map_location="cpu", weights_only=True)


def model_from_checkpoint(checkpoint: Union[PathLike, dict]) -> nn.Module:
    """Rebuild the model a checkpoint was trained as (its config and classes) and load it strictly; eval mode, CPU."""
    if not isinstance(checkpoint, dict):
        checkpoint = read_checkpoint(checkpoint)
    if "config" not in checkpoint or "num_classes" not in checkpoint:
        raise ValueError("not a checkpoint of hrnet_teach.train: it has no 'config' / 'num_classes' entries")
    model = build_model(
        config_from_dict(checkpoint["config"]), checkpoint["num_classes"],
        align_corners=checkpoint.get("align_corners", True), head=checkpoint.get("head", "segmentation"),
    )
    return load_model_weights(model, checkpoint).eval()


def load_shapes_model() -> nn.Module:
    """The shipped W18-small-v1 trained on the shapes dataset (``assets/checkpoints``), eval mode, on the CPU."""
    from .assets import asset_path

    return model_from_checkpoint(asset_path(SHAPES_CHECKPOINT))


def shapes_checkpoint_info() -> dict[str, Any]:
    """What the shipped checkpoint claims: its held-out scores, data, and the command that made it."""
    from .assets import asset_path

    checkpoint = read_checkpoint(asset_path(SHAPES_CHECKPOINT))
    return {k: checkpoint[k] for k in ("metrics", "args", "command") if k in checkpoint}


def pretrained_or_shipped(variant: str = "w18_small_v1", verbose: bool = True) -> tuple[nn.Module, str]:
    """ImageNet weights from timm when online, else the shipped shapes checkpoint.

    Returns ``(model, source)``: ``source`` is ``"imagenet"`` (a classification
    model of ``variant``) or ``"shapes"`` (the shipped W18-small-v1 segmentation
    model). Both have the same backbone attributes, so feature maps work alike.
    """
    from .weights import WeightsUnavailableError, load_timm_imagenet

    try:
        return load_timm_imagenet(variant).eval(), "imagenet"
    except WeightsUnavailableError as error:
        if verbose:
            print(
                f"ImageNet weights for {variant} are not available ({str(error).splitlines()[0]}).\n"
                "Using the shipped W18-small-v1 trained on the offline shapes dataset instead: "
                "its features are those of a trained network, but of shapes, not photos."
            )
        return load_shapes_model(), "shapes"


def export_checkpoint(
    checkpoint: dict[str, Any], path: PathLike, held_out: Optional[Dataset] = None, half: bool = True
) -> dict[str, Any]:
    """Write an inference-only copy: no optimizer, float weights stored as float16 (half the size).

    Loading casts them back to the model's float32, so it still loads strictly.
    With ``held_out``, the copy is scored on it, on the CPU, and the score is
    stored in its metrics as ``shipped_miou`` / ``shipped_pixel_acc`` (what the
    tests hold it to). Returns the copy's metrics.
    """
    state = {
        k: (v.half() if half and v.is_floating_point() else v).clone() for k, v in checkpoint["model"].items()
    }
    small = {k: v for k, v in checkpoint.items() if k not in ("optimizer", "scaler", "model")}
    small["model"] = state
    small["storage_dtype"] = "float16" if half else "float32"
    small["metrics"] = dict(checkpoint.get("metrics", {}))
    if held_out is not None:
        result = evaluate(model_from_checkpoint(small), held_out, "cpu", reduce=False)
        small["metrics"].update(shipped_miou=result["miou"], shipped_pixel_acc=result["pixel_acc"])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(small, path)
    return small["metrics"]


# ------------------------------------------------------------------ the loop
def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def build_model(
    variant: Union[str, HRNetConfig],
    num_classes: int,
    fusion: bool = True,
    align_corners: bool = False,
    head: str = "segmentation",
) -> nn.Module:
    """HRNetV2 segmentation model of ``variant``; ``fusion=False`` for the ablation.

    ``head="pose"``: the HRNetV1 readout instead (the highest-resolution branch
    alone, then a 1x1 conv to ``num_classes``), which the ablation uses to ask
    what fusion does when nothing else brings context to that branch.

    ``align_corners=False`` by default here, unlike the official Cityscapes setting
    (True). The 1/4 grid's cell k is centred on image pixel 4k + 1.5; resizing
    with align_corners=False puts it at 4k + 2 everywhere (a constant half-cell
    shift the convolutions learn to absorb), while align_corners=True stretches
    the grid to the corners, so the error grows across the image (up to 3
    pixels at 64 x 64), which no convolution can undo. At 1024 x 2048 that is
    invisible; in one 3-epoch run at 64 x 64 (on an earlier draft of the shapes),
    True scored 0.795 mIoU and False 0.803.
    """
    _check_choice("head", head, TRAIN_HEADS)
    config = get_config(variant)
    if not fusion:
        config = config.replace(fusion=False)
    if head == "pose":
        return create_model(config, head="pose", num_joints=num_classes)
    return create_model(config, head="segmentation", num_classes=num_classes, align_corners=align_corners)


def _make_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":  # the official settings
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def _atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def train(
    variant: str = "w18_small_v1",
    dataset: str = "shapes",
    epochs: int = 6,
    batch_size: int = 16,
    image_size: int = 64,
    lr: Optional[float] = None,
    device: Union[str, torch.device, None] = None,
    amp: bool = False,
    out: Optional[PathLike] = None,
    resume: Optional[PathLike] = None,
    seed: int = 0,
    fusion: bool = True,
    progress: bool = True,
    optimizer: str = "adamw",
    align_corners: bool = False,
    head: str = "segmentation",
    train_size: int = 2000,
    val_size: int = 256,
    weight_decay: Optional[float] = None,
    workers: Optional[int] = None,
    data_root: PathLike = "data",
    export: Optional[PathLike] = None,
    command: Optional[str] = None,
) -> dict[str, Any]:
    """Train an HRNetV2 segmentation model; returns the metrics (also written to ``out/metrics.json``).

    The metrics: per-epoch lists ``loss`` (training, mean over the epoch),
    ``miou`` and ``pixel_acc`` (held-out split) and ``elapsed_s``; ``final_miou``,
    ``final_pixel_acc``, ``per_class_iou`` after the last epoch; and the settings.
    ``out/checkpoint.pt`` holds the model, optimizer, epoch, config (a dict) and
    metrics, for ``resume`` and for :func:`model_from_checkpoint`. ``batch_size``
    is per process under torchrun (the official ``BATCH_SIZE_PER_GPU``).
    """
    config = get_config(variant)  # a ValueError naming the known variants if unknown
    _check_choice("dataset", dataset, DATASETS)
    _check_choice("head", head, TRAIN_HEADS)
    _check_choice("optimizer", optimizer, OPTIMIZERS)
    for name in ("epochs", "batch_size", "image_size", "train_size", "val_size"):
        positive_int(name, locals()[name])
    lr = DEFAULT_LR[optimizer] if lr is None else float(lr)
    weight_decay = DEFAULT_WEIGHT_DECAY[optimizer] if weight_decay is None else float(weight_decay)

    ctx = init_distributed(None if device is None else str(device))
    try:
        if ctx.enabled and ctx.backend == "nccl":
            device = torch.device("cuda", ctx.local_rank)
        else:
            device = pick_device(device)
        if amp and device.type != "cuda":
            if ctx.is_main and progress:
                print(f"--amp: mixed precision is for CUDA; on {device.type} this run stays in float32.")
            amp = False
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its fastest kernels
        _seed_everything(seed)

        # ---- data: every process builds the same datasets; the sampler splits the work.
        # A real dataset is downloaded by rank 0 alone while the others wait at the barrier.
        if ctx.enabled and not ctx.is_main:
            dist.barrier()
        train_set = make_dataset(dataset, "train", train_size, image_size, seed=seed, root=data_root, download=True)
        val_set = make_dataset(dataset, "val", val_size, image_size, seed=seed, root=data_root, download=True)
        if ctx.enabled and ctx.is_main:
            dist.barrier()
        num_classes = train_set.num_classes
        workers = (2 if device.type == "cuda" else 0) if workers is None else workers
        if ctx.enabled:
            sampler = torch.utils.data.DistributedSampler(train_set, ctx.world_size, ctx.rank, shuffle=True, seed=seed)
            train_loader = DataLoader(train_set, batch_size, sampler=sampler, drop_last=True, num_workers=workers)
        else:
            sampler = None
            generator = torch.Generator().manual_seed(seed)
            train_loader = DataLoader(
                train_set, batch_size, shuffle=True, drop_last=True, num_workers=workers, generator=generator
            )
        if len(train_loader) == 0:
            raise ValueError(
                f"train_size {train_size} is smaller than one batch ({batch_size} x {ctx.world_size} processes): "
                "raise --train-size or lower --batch-size"
            )
        val_loader = DataLoader(_shard(val_set, ctx), batch_size=max(batch_size, 32), num_workers=workers)

        # ---- model, optimizer
        model = build_model(config, num_classes, fusion, align_corners, head).to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        opt = _make_optimizer(optimizer, model, lr, weight_decay)
        scaler = _grad_scaler(amp)
        history: dict[str, list] = {"loss": [], "miou": [], "pixel_acc": [], "elapsed_s": [], "lr": []}
        start_epoch, elapsed_before = 0, 0.0
        if resume is not None:
            checkpoint = read_checkpoint(resume)
            load_model_weights(model, checkpoint)
            opt.load_state_dict(checkpoint["optimizer"])
            if "scaler" in checkpoint and amp:
                scaler.load_state_dict(checkpoint["scaler"])
            start_epoch = int(checkpoint["epoch"])
            old = checkpoint.get("metrics", {})
            history = {k: list(old.get(k, [])) for k in history}
            elapsed_before = history["elapsed_s"][-1] if history["elapsed_s"] else 0.0
            if ctx.is_main and progress:
                print(f"resumed from {resume} after epoch {start_epoch}")
        model = prepare_batchnorm(model, ctx)
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) if ctx.enabled else model

        settings = {
            "variant": config.name, "dataset": dataset, "epochs": epochs, "batch_size": batch_size,
            "image_size": image_size, "lr": lr, "optimizer": optimizer, "weight_decay": weight_decay,
            "amp": amp, "seed": seed, "fusion": fusion, "align_corners": align_corners, "head": head, "train_size": train_size, "val_size": val_size,
            "device": str(device), "world_size": ctx.world_size, "backend": ctx.backend,
        }
        steps_per_epoch = len(train_loader)
        max_steps = epochs * steps_per_epoch
        out_dir = Path(out) if out is not None else None
        if out_dir is not None and ctx.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
        show = progress and ctx.is_main
        metrics: dict[str, Any] = {}
        started = time.perf_counter()

        for epoch in range(start_epoch, epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)  # a different shuffle each epoch, the same on every rank
            net.train()
            loss_sum, count = torch.zeros((), dtype=torch.float64, device=device), 0
            bar = _progress(train_loader, show, f"epoch {epoch + 1}/{epochs}")
            for step, (images, masks) in enumerate(bar):
                global_step = epoch * steps_per_epoch + step
                for group in opt.param_groups:
                    group["lr"] = poly_lr(lr, global_step, max_steps)
                images = _memory_format(images.to(device, non_blocking=True), device)
                masks = masks.to(device, non_blocking=True)
                with _autocast(device, amp):
                    logits = net(images)
                loss = segmentation_loss(logits, masks, align_corners=_resize_align_corners(model))
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                loss_sum += loss.detach().double()
                count += 1
                if show and step % 10 == 0:
                    bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{opt.param_groups[0]['lr']:.2g}")
            sums = torch.stack([loss_sum, torch.tensor(float(count), dtype=torch.float64, device=device)])
            if ctx.enabled:
                dist.all_reduce(sums)
                _broadcast_buffers(model)  # plain BatchNorm: evaluate rank 0's running statistics everywhere
            result = evaluate(model, val_loader, device, amp=amp)
            elapsed = elapsed_before + time.perf_counter() - started
            history["loss"].append((sums[0] / sums[1]).item())
            history["miou"].append(result["miou"])
            history["pixel_acc"].append(result["pixel_acc"])
            history["elapsed_s"].append(round(elapsed, 2))
            history["lr"].append(opt.param_groups[0]["lr"])
            metrics = {
                **history, "epoch": epoch + 1, "final_miou": result["miou"], "final_pixel_acc": result["pixel_acc"],
                "per_class_iou": result["per_class_iou"], "settings": settings,
            }
            if show:
                _print(f"epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.4f}  "
                       f"val mIoU {result['miou']:.4f}  pixel acc {result['pixel_acc']:.4f}  ({elapsed:.0f} s)")
            if out_dir is not None and ctx.is_main:
                checkpoint = {
                    "model": model.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
                    "epoch": epoch + 1, "config": config_to_dict(model.config), "num_classes": num_classes,
                    "align_corners": align_corners, "head": head, "metrics": metrics, "args": settings, "command": command,
                }
                torch.save(checkpoint, out_dir / "checkpoint.pt")
                _atomic_write_json(out_dir / "metrics.json", metrics)
                if export is not None and epoch + 1 == epochs:
                    shipped = export_checkpoint(checkpoint, export, val_set)
                    if show:
                        _print(f"exported {export}: float16 weights score mIoU {shipped['shipped_miou']:.4f} on the CPU")
            if ctx.enabled:
                dist.barrier()  # nobody runs ahead of rank 0's writing
        if not metrics:  # resumed from a run that already did every epoch
            metrics = {**history, "epoch": start_epoch, "final_miou": history["miou"][-1] if history["miou"] else None,
                       "settings": settings}
        if ctx.enabled:
            checksum = sum(p.detach().double().sum().item() for p in model.parameters())
            _print_line(f"rank {ctx.rank}/{ctx.world_size}: final miou {metrics['final_miou']:.6f} "
                   f"pixel_acc {metrics.get('final_pixel_acc', float('nan')):.6f} weights {checksum:.6f}")
        return metrics
    finally:
        if ctx.started_here:
            dist.destroy_process_group()


def _progress(iterable, show: bool, desc: str):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True)


def _print_line(message: str) -> None:
    # One write per line: the processes of a torchrun job share one stdout, and a line
    # written in pieces can be cut by another process's line.
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _print(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


# ------------------------------------------------------------------ command line
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m hrnet_teach.train",
        description="Train HRNetV2 segmentation on generated shapes (offline) or Oxford-IIIT Pets. "
        "Several processes: torchrun --nproc_per_node N -m hrnet_teach.train ...",
    )
    p.add_argument("--variant", default="w18_small_v1", choices=VARIANTS)
    p.add_argument("--dataset", default="shapes", choices=DATASETS, help="shapes: generated, no download; pets: downloads about 800 MB")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=16, help="per process")
    p.add_argument("--image-size", type=int, default=64, help="square side in pixels")
    p.add_argument("--lr", type=float, default=None, help=f"base learning rate (default {DEFAULT_LR})")
    p.add_argument("--weight-decay", type=float, default=None, help=f"default {DEFAULT_WEIGHT_DECAY}")
    p.add_argument("--optimizer", default="adamw", choices=OPTIMIZERS, help="sgd + poly lr is the official recipe")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--out", default=None, help="folder for checkpoint.pt and metrics.json")
    p.add_argument("--resume", default=None, help="a checkpoint.pt to continue from, up to --epochs in all "
                   "(the same --epochs as the first run continues its schedule exactly; more extends it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-fusion", action="store_true", help="ablation: branches exchange nothing (the head still concatenates)")
    p.add_argument("--head", default="segmentation", choices=TRAIN_HEADS,
                   help="segmentation: HRNetV2 (all branches); pose: the HRNetV1 readout (branch 0 only), for the ablation")
    p.add_argument("--align-corners", action="store_true", help="resize as the official Cityscapes config does (see build_model)")
    p.add_argument("--train-size", type=int, default=2000, help="training scenes (pets: the first N images)")
    p.add_argument("--val-size", type=int, default=256, help="held-out scenes")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 0 on CPU, 2 on CUDA)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    p.add_argument("--data-root", default="data", help="where --dataset pets is downloaded")
    p.add_argument("--export", default=None, help="also write a small float16 inference checkpoint here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python -m hrnet_teach.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        metrics = train(
            variant=args.variant, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
            image_size=args.image_size, lr=args.lr, optimizer=args.optimizer, device=args.device, amp=args.amp,
            out=args.out, resume=args.resume, seed=args.seed, fusion=not args.no_fusion, align_corners=args.align_corners, head=args.head, progress=not args.quiet,
            train_size=args.train_size, val_size=args.val_size, weight_decay=args.weight_decay,
            workers=args.workers, data_root=args.data_root, export=args.export, command=command,
        )
    except (ValueError, OSError) as error:  # bad flags, missing data: say it plainly
        raise SystemExit(f"error: {error}") from None
    return metrics


if __name__ == "__main__":
    main()
