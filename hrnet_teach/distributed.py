"""Several processes (``torchrun``): joining the job, BatchNorm across processes, sharing the data.

Run alone, the trainer's calls into this file change nothing: :func:`init_distributed` returns
"rank 0 of 1" and the trainer runs exactly as it would without this file (it calls
:func:`broadcast_buffers`, which needs a process group, only under torchrun).
With ``torchrun --nproc_per_node N`` (N = 1 too) every process trains a copy of the model
on its own share of each epoch, ``DistributedDataParallel`` averages the
gradients, metrics are summed across processes, and only rank 0 writes.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Subset


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
        """Whether this process is in a process group: several processes, or torchrun with one."""
        return self.world_size > 1 or self.backend is not None


def init_distributed(device: Optional[str]) -> Distributed:
    """Join the process group that ``torchrun`` describes in its environment variables.

    NCCL when each process has a GPU, gloo on CPU. Run without torchrun, this is a no-op.
    Under ``torchrun --nproc_per_node 1`` it joins a group of one, so that a single GPU runs
    the path several take (NCCL, DDP, SyncBatchNorm layers) and ``scripts/gpu_check.sh`` can
    check it; with one process SyncBatchNorm computes as BatchNorm2d (torch skips the exchange).
    Each process takes the GPU of its ``LOCAL_RANK``, so a device with an index (``cuda:0``) is refused
    unless it is that GPU: choose the GPUs with ``CUDA_VISIBLE_DEVICES`` and pass ``--device cuda``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    by_torchrun = "TORCHELASTIC_RUN_ID" in os.environ  # set by torchrun alone, for one process too
    if world_size <= 1 and not by_torchrun:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = _uses_cuda(device, world_size, local_rank)
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda and not dist.is_nccl_available():  # Windows' torch builds have no NCCL
        raise ValueError("torchrun with GPUs needs NCCL, and this torch build has none (Windows builds never do): "
                         "run it under Linux or WSL2, train on one GPU without torchrun, or add --device cpu (gloo)")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    started = False
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
        started = True
    return Distributed(rank, world_size, local_rank, dist.get_backend(), started)


def _uses_cuda(device: Optional[str], world_size: int, local_rank: int) -> bool:
    """Whether this torchrun process runs on a GPU (its type, not the string: "cuda:0" is CUDA too, for NCCL
    and SyncBatchNorm). An index other than LOCAL_RANK is refused: every process would share that one GPU."""
    if device in (None, "auto"):
        return torch.cuda.is_available()
    try:
        wanted = torch.device(device)
    except (RuntimeError, TypeError):  # pick_device refuses it next, with the devices torch knows
        return False
    if wanted.type != "cuda":
        return False
    if wanted.index is not None and (world_size > 1 or wanted.index != local_rank):
        raise ValueError(f"--device {device} under torchrun: each process takes the GPU of its LOCAL_RANK "
                         f"(this one: cuda:{local_rank}), so one index would put them all on GPU {wanted.index}. "
                         "Pass --device cuda, and choose the GPUs with CUDA_VISIBLE_DEVICES=...")
    return torch.cuda.is_available()


def close_distributed(ctx: Distributed) -> None:
    """Leave the process group if :func:`init_distributed` started it (not if a caller did)."""
    if ctx.started_here:
        dist.destroy_process_group()


def prepare_batchnorm(model: nn.Module, ctx: Distributed) -> nn.Module:
    """BatchNorm across processes: SyncBatchNorm where the backend supports it.

    With DDP each process normalises with the mean and variance of its own
    few images; SyncBatchNorm gathers the statistics of the whole global batch
    (what the official trainer does on its 4 GPUs). It needs NCCL on GPUs:
    under a gloo process group on CPU its training forward raises. So on CPU
    the model keeps plain BatchNorm2d, each rank with its own statistics, and
    rank 0's running statistics are broadcast before evaluation so every rank
    evaluates the same network.
    """
    if ctx.enabled and ctx.backend == "nccl":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def wrap_model(model: nn.Module, ctx: Distributed, device: torch.device) -> nn.Module:
    """The module the training steps call: ``DistributedDataParallel`` under torchrun, else the model itself."""
    if not ctx.enabled:
        return model
    return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a ``DistributedDataParallel`` wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def broadcast_buffers(model: nn.Module) -> None:
    """Every rank takes rank 0's buffers (BatchNorm's running statistics)."""
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over every process, in place (unchanged when run alone)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def shard(dataset: Dataset, ctx: Distributed) -> Dataset:
    """This process's share for evaluation: every ``world_size``-th item from ``rank``.

    No item twice, none left out (a DistributedSampler would pad with repeats to
    make the shares equal, and the repeats would count twice in the score).
    """
    return Subset(dataset, range(ctx.rank, len(dataset), ctx.world_size)) if ctx.enabled else dataset


def barrier(ctx: Distributed) -> None:
    """Wait for every process (nothing to wait for when run alone)."""
    if ctx.enabled:
        dist.barrier()
