"""Data-parallel training on torchrun: the process group from its environment, this rank's
place in it, and the one reduction the trainer needs."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor


def world() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_environment(device: str) -> str:
    """Join torchrun's process group when ``WORLD_SIZE > 1`` and return this rank's device.

    CUDA ranks (``device`` "cuda" or "auto" with a GPU) take ``cuda:LOCAL_RANK`` and NCCL,
    others gloo. Outside torchrun (or once joined) ``device`` is returned unchanged.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    on_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if on_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif device == "auto":
        device = "cpu"
    dist.init_process_group("nccl" if on_cuda else "gloo")
    return device


def leave() -> None:
    """Leave the process group, if this process joined one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(values: Tensor) -> Tensor:
    """``values`` averaged over all ranks (itself with one process)."""
    if world()[1] == 1:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / world()[1]
