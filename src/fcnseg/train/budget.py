"""Sizes a run can afford, checked before any memory is spent on them.

Two mistakes used to surface only as a machine out of memory (the process killed, no
message): a random crop larger than every training image (each crop padded to the size asked,
mostly void), and a batch whose activations do not fit. :func:`check_sizes` refuses both in
one line, before the run allocates anything but the model:

* the training images' sizes are read from their file headers (no pixels decoded);
* the memory of one training step is estimated by running the model once on a *meta* batch
  (shapes only, no data: :func:`estimate_step_bytes`) and counting what autograd saves for
  the backward pass, plus the weights, their gradients and the optimiser's state;
* the budget is what the device has free (the CPU's available memory, shared by the
  processes of this machine; the GPU's free memory), or the one the caller gives.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from fcnseg.errors import FcnsegError
from fcnseg.inference.memory import format_bytes
from fcnseg.train.recipes import TrainConfig

GIB = 1 << 30
# Buffers the optimiser keeps per trainable weight: SGD's momentum, Adam's two moments.
OPTIMIZER_STATES = {"sgd": 1, "adam": 2}


def image_sizes(dataset: Dataset) -> list[tuple[int, int]] | None:
    """The (height, width) of every image of ``dataset``, without decoding pixels.

    Read from the image files' headers (``dataset.samples[i].image``, as every reader of
    :mod:`fcnseg.data` has them), from ``dataset.size`` (generated square images), or from
    in-memory ``dataset.samples`` of (image, label) tensors; None when the dataset says
    nothing of its sizes.
    """
    size = getattr(dataset, "size", None)
    if isinstance(size, int) and not isinstance(size, bool):
        return [(size, size)]
    samples = getattr(dataset, "samples", None)
    if not isinstance(samples, Sequence) or not samples:
        return None
    first = samples[0]
    if isinstance(first, tuple) and first and isinstance(first[0], torch.Tensor):
        return [tuple(sample[0].shape[-2:]) for sample in samples]  # type: ignore[misc]
    if not hasattr(first, "image"):
        return None
    sizes = []
    for sample in samples:
        try:
            with Image.open(sample.image) as image:
                width, height = image.size
        except (OSError, ValueError, SyntaxError):
            return None  # the reader names an unreadable file itself, when it reads it
        sizes.append((height, width))
    return sizes


def batch_size_in_pixels(config: TrainConfig, sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The largest (height, width) a training batch can have: the crop, or else the largest
    height and width of the images (a batch is padded to its largest), scaled by the largest
    random scale factor."""
    if config.crop is not None:
        return config.crop, config.crop
    factor = config.scale[1] if config.scale else 1.0
    return (
        max(1, round(max(h for h, _ in sizes) * factor)),
        max(1, round(max(w for _, w in sizes) * factor)),
    )


def check_crop(config: TrainConfig, sizes: list[tuple[int, int]]) -> None:
    """Refuses a crop larger than every training image in both directions.

    Raises:
        FcnsegError: naming the crop and the largest image side.
    """
    if config.crop is None:
        return
    factor = config.scale[1] if config.scale else 1.0
    largest = max(max(h, w) for h, w in sizes)
    if config.crop > largest * factor:
        scaled = f" after scaling by up to {factor:g}" if factor != 1 else ""
        raise FcnsegError(
            f"crop {config.crop} is larger than every training image (the largest side is "
            f"{largest} pixels{scaled}): every crop would be mostly void padding; use a crop "
            f"of at most {math.floor(largest * factor)}"
        )


@dataclass(frozen=True)
class StepMemory:
    """The estimated memory of one training step, in bytes.

    Attributes:
        weights: the model's parameters and buffers, the gradients of the trainable ones and
            the optimiser's state.
        activations: what autograd keeps for the backward pass of one forward pass, and the
            scores and their gradient.
    """

    weights: int
    activations: int

    @property
    def total(self) -> int:
        """Both."""
        return self.weights + self.activations


def estimate_step_bytes(
    model: nn.Module, shape: tuple[int, int, int, int], optimizer: str, amp: bool = False
) -> StepMemory | None:
    """The memory one training step of ``model`` on a batch of ``shape`` takes, estimated
    without allocating it: the forward pass runs on meta tensors (shapes, no data) and every
    tensor autograd saves is counted once.

    Args:
        model: the net (its weights are not touched).
        shape: N x C x H x W, the largest forward pass of the run.
        optimizer: ``"sgd"`` or ``"adam"``, for the state it keeps.
        amp: under autocast, activations are counted at half their float32 size.

    Returns:
        The estimate, or None when the model cannot run on meta tensors.
    """
    from torch.func import functional_call

    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    stored = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    weights = stored + trainable * (1 + OPTIMIZER_STATES.get(optimizer, 2))
    tensors = {
        name: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad)
        for name, t in model.named_parameters()
    }
    tensors.update({name: torch.empty_like(t, device="meta") for name, t in model.named_buffers()})
    saved: dict[int, torch.Tensor] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved[id(tensor)] = tensor  # kept alive, so that ids are not reused
        return tensor

    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            output = functional_call(model, tensors, (torch.empty(shape, device="meta"),))
    except Exception:  # noqa: BLE001 - an op without a meta kernel: no estimate
        return None
    finally:
        model.train(was_training)
    scores = output.values() if isinstance(output, dict) else [output]
    activations = sum(t.numel() * t.element_size() for t in saved.values())
    activations += 2 * sum(t.numel() * t.element_size() for t in scores)
    if amp:
        activations //= 2
    return StepMemory(weights, activations)


def available_memory(device: torch.device) -> int | None:
    """Bytes this process may use on ``device``: the GPU's free memory, or the machine's
    available memory (``MemAvailable``) shared by the processes ``torchrun`` started on it;
    None where it cannot be read."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    available = None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    if available is None:
        return None
    limit = _cgroup_room()  # a container's own limit, which /proc/meminfo does not show
    if limit is not None:
        available = min(available, limit)
    return available // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup (v2) memory limit; None without one."""
    folder = Path("/sys/fs/cgroup")
    try:
        limit = (folder / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((folder / "memory.current").read_text().strip())
    except (OSError, ValueError):
        return None
    return max(0, int(limit) - used)


def check_sizes(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    device: torch.device,
    budget: float | None = None,
) -> StepMemory | None:
    """Refuses sizes the run cannot afford, before it spends memory on them: a crop larger
    than every training image (:func:`check_crop`), and a training step whose estimated
    memory (:func:`estimate_step_bytes`) exceeds the budget.

    Args:
        model: the net to train.
        dataset: the training images.
        config: the run (batch size, crop, scale, optimiser, amp).
        device: where the run trains.
        budget: bytes a step may take; None for what ``device`` has available.

    Returns:
        The step's estimated memory, or None where it could not be estimated.

    Raises:
        FcnsegError: one line naming the size, the estimate and the budget.
    """
    sizes = image_sizes(dataset)
    if sizes is None:
        image = dataset[0][0]
        sizes = [tuple(image.shape[-2:])]  # the first image stands for the others
    else:
        check_crop(config, sizes)
    height, width = batch_size_in_pixels(config, sizes)  # type: ignore[arg-type]
    channels = getattr(model, "in_channels", 3)
    memory = estimate_step_bytes(
        model, (config.batch_size, channels, height, width), config.optimizer, config.amp != "none"
    )
    if budget is None:
        budget = available_memory(device)
    if memory is None or budget is None or memory.total <= budget:
        return memory
    raise FcnsegError(
        f"a training step of {config.batch_size} image(s) of {height}x{width} needs about "
        f"{format_bytes(memory.total)} ({format_bytes(memory.activations)} of activations, "
        f"{format_bytes(memory.weights)} of weights, gradients and optimiser state), more than "
        f"the {format_bytes(budget)} budget on {device.type}: "
        # no batch or crop fits when the weights alone do not: only a narrower net does
        + (
            "the weights alone do not fit, a narrower net would (--width, --fc-width)"
            if memory.weights > budget
            else "lower the batch size or crop"
        )
    )
