"""Data-parallel training under ``torchrun``: one process per device, gradients averaged.

``torchrun --nproc-per-node N -m fcnseg.cli train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; each process then trains on its own share of every step's images and
DistributedDataParallel averages the gradients, so a step of N processes is a step of one
process accumulating N forward passes (Caffe's ``iter_size``). The backend is gloo on CPUs
and nccl on GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from fcnseg.runtime import choose_device


@dataclass(frozen=True)
class Context:
    """Where this process runs and which share of the work is its own."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the checkpoints, the log and the progress bar."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether a process group is in use."""
        return self.world_size > 1


def setup(preference: str = "auto") -> Context:
    """Joins the process group that ``torchrun`` describes, or runs alone without one."""
    device = choose_device(preference)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Context(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), device)


def elastic_restart() -> int:
    """How many times ``torchrun`` has restarted this job (``--max-restarts``): 0 on its
    first attempt and outside torchrun."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


def teardown(context: Context) -> None:
    """Leaves the process group, if this process joined one."""
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, context: Context) -> torch.Tensor:
    """The sum of ``values`` over every process (``values`` itself when alone)."""
    if not context.distributed:
        return values
    summed = values.to(context.device).clone()
    dist.all_reduce(summed)
    return summed.cpu()


def barrier(context: Context) -> None:
    """Waits for every process (after rank 0 writes a checkpoint the others will read)."""
    if context.distributed:
        dist.barrier()


def first_failure(message: str | None, context: Context) -> str | None:
    """The first process's failure (``message``: this process's, or None), the same in every
    process, so that all of them stop together rather than wait for one that has stopped.

    One summed flag per call; the messages travel only when some process failed.
    """
    if not context.distributed:
        return message
    failed = all_reduce_sum(torch.tensor([float(message is not None)]), context)
    if failed[0] == 0:
        return None
    messages: list[str | None] = [None] * context.world_size
    dist.all_gather_object(messages, message)
    return next(m for m in messages if m is not None)
