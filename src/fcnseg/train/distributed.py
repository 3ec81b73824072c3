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
        backend = "nccl" if device.type == "cuda" else "gloo"
        store = _attempt_store()
        if store is None:
            dist.init_process_group(backend)
        else:
            rank = int(os.environ["RANK"])
            dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    return Context(dist.get_rank(), dist.get_world_size(), device)


def _attempt_store() -> dist.Store | None:
    """Under ``torchrun`` (which shares its rendezvous store with the workers), that store seen
    through a prefix of its own for this attempt; None elsewhere (``init_process_group`` then
    reads ``MASTER_ADDR`` / ``MASTER_PORT`` as usual).

    Why: torchrun keeps one store for the whole job and restarts workers into it
    (``--max-restarts``) without separating the attempts, although torch's own
    ``_create_c10d_store`` assumes a new store per attempt (torch 2.13; pytorch/pytorch#135712).
    A restarted worker could then read the address its dead predecessor published and wait on
    it until gloo's timeout (``connectFullMesh failed``), so a restart never resumed. The
    attempt is ``TORCHELASTIC_RESTART_COUNT``, the same for all workers of one ``torchrun``.

    Only on one node: across nodes each ``torchrun`` counts its own restarts (a node restarted
    because another failed does not count it), so there the count is no common name; a job on
    several nodes that should survive restarts runs ``torchrun`` with
    ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``, which gives every attempt a store of its own.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    if int(os.environ.get("GROUP_WORLD_SIZE", "1")) != 1:
        return None
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        int(os.environ["WORLD_SIZE"]),
        is_master=False,
    )
    return dist.PrefixStore(f"fcnseg/attempt{elastic_restart()}/", store)


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
