"""Training on several processes under ``torchrun``: the process group, batch shards, rank 0.

Launched by torchrun (``torchrun --nproc_per_node=4 -m ppattack run ...``), ppattack joins the
process group torchrun describes (NCCL on GPUs, gloo on CPUs) and its trainers run data
parallel: every rank draws the SAME global batch from the same seeded generator and keeps its
share (:func:`shard`: rank r takes rows r, r+W, r+2W, ..., the split torch's
``DistributedSampler`` makes of a dataset, applied to each batch), and gradients are averaged
over the ranks. A step is therefore the single-process step on the whole batch, up to the order
of floating-point sums and BatchNorm statistics (synchronised on GPUs with SyncBatchNorm in the
DDP trainers; per rank on CPUs, where torch has no SyncBatchNorm, and in the GANs).

Rank 0 alone writes results, reports and cache entries; the other ranks compute the same
result and return it without writing. Without torchrun nothing here does anything.
"""
from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ParameterError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True on the rank that writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when there is more than one process to train with."""
        return self.size > 1


_SINGLE = World()
_local_depth = 0  # > 0 inside local(): this process trains alone even under torchrun


def launched() -> bool:
    """True when torchrun (or another launcher setting WORLD_SIZE > 1) started this process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(timeout_s: float = 1800) -> World:
    """Join torchrun's process group once (no-op without torchrun); return :func:`world`.

    With CUDA present each rank sets GPU ``LOCAL_RANK`` and the group has both backends
    (:func:`backend`), so a run with ``--device cpu`` on a GPU machine reduces its CPU tensors
    with gloo instead of handing them to NCCL.
    """
    if launched() and dist.is_available() and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend(cuda), timeout=datetime.timedelta(seconds=timeout_s))
    return world()


def backend(cuda: bool) -> str:
    """The process group's backends: gloo for CPU tensors, and NCCL for CUDA tensors when present."""
    return "cpu:gloo,cuda:nccl" if cuda else "gloo"


def world() -> World:
    """The world trainers use: torchrun's process group, or one process (also inside :func:`local`)."""
    return _SINGLE if _local_depth else process_world()


def process_world() -> World:
    """torchrun's process group even inside :func:`local` (what a bench spreads cells over)."""
    if not (dist.is_available() and dist.is_initialized()):
        return _SINGLE
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


@contextlib.contextmanager
def local() -> Iterator[None]:
    """Inside this block every trainer runs on this process alone (a bench cell per rank)."""
    global _local_depth
    _local_depth += 1
    try:
        yield
    finally:
        _local_depth -= 1


def shard(batch: Any, batch_size: int | None = None) -> Any:
    """This rank's share of a global batch (a tensor or array of indices, images, seeds): rows
    ``rank::size``.

    ``batch_size`` (the global one) is checked: every rank needs at least one row.
    """
    current = world()
    if not current.active:
        return batch
    if (batch_size if batch_size is not None else len(batch)) < current.size:
        raise ParameterError(f"batch size {batch_size or len(batch)} is smaller than the {current.size} "
                             "training processes: raise batch_size or launch fewer processes")
    return batch[current.rank::current.size]


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when several processes train (SyncBatchNorm
    on GPUs); ``model`` itself otherwise. Unwrap with :func:`unwrap`."""
    if not world().active:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index or 0])
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a DistributedDataParallel wrapper (its state_dict has no prefix)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def broadcast_parameters(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (what DDP does when it wraps)."""
    if world().active:
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(model: nn.Module) -> None:
    """Average ``.grad`` over the ranks, in place: DDP's arithmetic, for training loops (GANs)
    that call a network more than once per backward pass, which DDP's hooks do not allow. A
    network wrapped in DistributedDataParallel is left alone: its hooks have averaged already."""
    current = world()
    if not current.active or isinstance(model, nn.parallel.DistributedDataParallel):
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(current.size)


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` (any picklable object) on every rank."""
    if not world().active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(value: Any) -> list[Any] | None:
    """Every process's ``value``, as a list by rank, on rank 0 (None elsewhere); also inside
    :func:`local`, since it collects what the processes did on their own."""
    current = process_world()
    if not current.active:
        return [value]
    out = [None] * current.size if current.is_main else None
    dist.gather_object(value, out, dst=0)
    return out


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (a download, a cache entry), then the other ranks run it."""
    current = world()
    if current.active and not current.is_main:
        dist.barrier()
    try:
        yield
    finally:
        if current.active and current.is_main:
            dist.barrier()


def shutdown() -> None:
    """Leave the process group (after every rank is done), if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank."""
    if world().active:
        dist.barrier()
