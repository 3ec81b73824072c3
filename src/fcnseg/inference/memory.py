"""How much memory predicting an image takes, and the tile that keeps it under a budget.

**The estimate** (:func:`prediction_bytes`) is

- the peak of the tensors alive at once during the model's eager float32 forward pass at
  that size, traced on PyTorch's ``meta`` device: every operation runs on shapes only (no
  arithmetic, no memory), and the bytes of each new storage are added when it is created
  and taken off when it is freed (:func:`forward_bytes`); a net that cannot be traced so
  (a custom module holding real tensors outside its state dict) has no estimate, and is
  never tiled automatically;
- one more copy of the scores (``K`` channels, float32): the optimized path's final
  upsampling writes its phases before it interleaves them, and the arg max reads the map;
- the network input (float32, ``C`` channels) and the result kept for the whole image
  (int64 labels, or ``K`` float32 probabilities).

Measured against the peak resident memory of ``Predictor`` (fp32) on the shipped CamVid
FCN-8s at 4000x3000: estimate 1.43 GiB, measured 1.26 GiB above the process's resting size
(the bf16 path needs less than fp32). A VGG16 FCN-8s of the Caffe geometry (100 pixels of
padding, 4096-channel fc6) needs about 6.4 GiB at that size.

**The tile** (:func:`choose_tile`): none when the whole image fits the budget; else the
largest window (a multiple of the net's stride, at least the smallest exact tile) whose
estimate, plus the whole image's input and result, fits. Tiling is exact
(:mod:`fcnseg.inference.tiling`), so the budget changes memory and time, never the labels;
it costs time, as each window recomputes a margin of context (262 pixels a side for FCN-8s):
the shipped model at 4000x3000 took 15 s whole, 27 s in 2048-pixel tiles and 89 s in
1024-pixel tiles on two cores.
"""

from __future__ import annotations

import math
import re
import weakref
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from fcnseg.errors import FcnsegError
from fcnseg.inference.tiling import tile_alignment, tile_margin

# The default budget for one image's prediction (``--max-memory``): a laptop's share.
DEFAULT_MAX_MEMORY = 2 * 1024**3
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, int, int], int | None]] = (
    weakref.WeakKeyDictionary()
)


def parse_memory(text: str) -> int | None:
    """``"2G"``, ``"1.5GB"``, ``"512M"``, ``"800MiB"`` or a number of bytes (``"2e9"``);
    ``"none"`` or ``"0"`` for no budget (None). Units are binary (1G = 1024**3 bytes).

    Raises:
        FcnsegError: anything else.
    """
    value = text.strip().lower()
    if value in ("none", "0", "off"):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d*)?(?:e\d+)?|\.\d+)\s*([kmgt]?)(?:i?b)?", value)
    if match is None:
        raise FcnsegError(
            f"memory {text!r}: expected a size such as 2G, 512M, 1.5GB or 2e9 (bytes), or 0 "
            "or none for no budget"
        )
    size = int(float(match.group(1)) * _UNITS[match.group(2)])
    if size < 1:
        raise FcnsegError(f"memory {text!r}: expected a positive size")
    return size


def format_bytes(size: float) -> str:
    """``1.4 GiB``, ``512 MiB``."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{int(size)} B"


def forward_bytes(model: nn.Module, height: int, width: int, batch: int = 1) -> int | None:
    """Peak bytes of the tensors alive at once in ``model``'s float32 forward pass on a
    ``batch x C x height x width`` input, the input itself and the weights not counted.

    Traced on the ``meta`` device (shapes only; milliseconds, after a second or so the first
    time a process does it). A model with an ``architecture()`` method (an exported model,
    :class:`fcnseg.inference.export.OnnxModel`) is estimated by the net it returns.

    Returns:
        The bytes, or None when the model cannot be traced on the meta device.
    """
    key = (height, width, batch)
    cache = _CACHE.setdefault(model, {})
    if key not in cache:
        cache[key] = _trace(model, height, width, batch)
    return cache[key]


def prediction_bytes(
    model: nn.Module,
    height: int,
    width: int,
    *,
    window: tuple[int, int] | None = None,
    batch: int = 1,
    per_class: bool = False,
) -> int | None:
    """Estimated peak bytes of predicting one ``height x width`` image (see the module).

    Args:
        model: the FCN (its ``in_channels`` and ``heads`` give C and K).
        height, width: the image.
        window: the largest window it runs in (a tile), or None for the whole image.
        batch: windows per forward pass.
        per_class: the result kept is K probabilities a pixel, not one label.

    Returns:
        The bytes, or None when the forward pass cannot be estimated.
    """
    rows, cols = window if window is not None else (height, width)
    forward = forward_bytes(model, rows, cols, batch)
    if forward is None:
        return None
    channels = int(getattr(model, "in_channels", 3))
    classes = sum(getattr(model, "heads", {"out": 1}).values())
    pixels = height * width
    scores_copy = batch * rows * cols * classes * 4
    kept = pixels * (classes * 4 if per_class else 8)
    return forward + scores_copy + pixels * channels * 4 + kept


def choose_tile(
    model: nn.Module,
    height: int,
    width: int,
    budget: int,
    *,
    batch: int = 1,
    per_class: bool = False,
) -> int | None:
    """The tile size that keeps predicting a ``height x width`` image within ``budget``
    bytes: None when the whole image fits (or cannot be estimated), else the largest
    multiple of the net's stride that fits, and at least the smallest tile that is exact
    (:func:`fcnseg.inference.tiling.tile_spans`) even where that one does not fit.

    Raises:
        FcnsegError: ``budget`` is not positive.
    """
    if budget < 1:
        raise FcnsegError(f"memory budget {budget}: expected a positive number of bytes")
    whole = prediction_bytes(model, height, width, batch=1, per_class=per_class)
    if whole is None or whole <= budget:
        return None
    alignment = tile_alignment(model)
    smallest = math.ceil((2 * tile_margin(model) + alignment) / alignment) * alignment
    largest = max(height, width)
    if smallest >= largest:
        return None  # tiles as large as the image: it runs whole

    def fits(tile: int) -> bool:
        window = (min(tile, height), min(tile, width))
        needed = prediction_bytes(
            model, height, width, window=window, batch=batch, per_class=per_class
        )
        return needed is not None and needed <= budget

    low, high = smallest // alignment, math.ceil(largest / alignment) - 1
    if not fits(low * alignment):
        return low * alignment
    while low < high:  # the largest multiple that fits, by bisection
        middle = (low + high + 1) // 2
        if fits(middle * alignment):
            low = middle
        else:
            high = middle - 1
    return low * alignment


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of the storages alive after each operation; keeps the peak."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[Any, int]] = {}
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        from torch.multiprocessing.reductions import StorageWeakRef

        for key in [key for key, (ref, _) in self.live.items() if ref.expired()]:
            del self.live[key]
        output = func(*args, **(kwargs or {}))
        for tensor in tree_flatten(output)[0]:
            if isinstance(tensor, torch.Tensor):
                storage = tensor.untyped_storage()
                if storage._cdata not in self.live:
                    self.live[storage._cdata] = (StorageWeakRef(storage), storage.nbytes())
        self.peak = max(self.peak, sum(size for _, size in self.live.values()))
        return output


def _trace(model: nn.Module, height: int, width: int, batch: int) -> int | None:
    architecture = getattr(model, "architecture", None)
    net = architecture() if callable(architecture) else model
    channels = int(getattr(net, "in_channels", getattr(model, "in_channels", 3)))
    try:
        state = {
            name: torch.empty_like(tensor, device="meta")
            for name, tensor in net.state_dict(keep_vars=True).items()
        }
        x = torch.empty(batch, channels, height, width, device="meta")
        with torch.no_grad(), _LiveBytes() as counter:
            output = functional_call(net, state, (x,))
            del output
        return int(counter.peak)
    except Exception:  # noqa: BLE001 - any net that does not trace has no estimate
        return None
