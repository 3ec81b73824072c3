"""Scoring a model on a dataset: predictions, one histogram, the four metrics, a table."""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fcnseg.data import collate_pad
from fcnseg.evaluate.metrics import ConfusionMatrix
from fcnseg.io.convention import caffe_convention

METRIC_NAMES = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    *,
    ignore_index: int = 255,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
) -> dict[str, Any]:
    """Scores ``model`` on every batch; under DDP, on this process's share, then reduced.

    Args:
        model: maps N x C x H x W images to N x K x H x W scores.
        batches: (images, labels) pairs; padded pixels must be void in the labels.
        num_classes: K.
        ignore_index: the void label.
        device: where the model runs.
        amp_dtype: run the forward pass under autocast to this dtype; None for float32.

    Returns:
        The metrics of :meth:`ConfusionMatrix.compute` over all batches of all processes.
    """
    was_training = model.training
    model.eval()
    confusion = ConfusionMatrix(num_classes, ignore_index)
    device = torch.device(device)
    for images, labels in batches:
        with autocast(device, amp_dtype):
            scores = model(images.to(device))  # N×K×H×W
        confusion.update(scores.argmax(1), labels)
    confusion.reduce_from_all_processes()
    model.train(was_training)
    return confusion.compute()


class ConventionAdapter(nn.Module):
    """Feeds a net trained on another input convention with a dataset's tensors.

    The datasets give BGR, 0-255, minus their mean; weights converted from torchvision, say,
    want RGB in [0, 1] standardised. The pixels are recovered and fed as the weights expect.
    """

    def __init__(self, model: nn.Module, mean_bgr: Sequence[float], convention: Any) -> None:
        super().__init__()
        self.model = model
        self.convention = convention
        self.register_buffer("mean_bgr", torch.tensor(list(mean_bgr[:3])).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        bgr = images[:, :3] + self.mean_bgr  # N×3×H×W, 0-255
        # the convention computes on the CPU
        return self.model(self.convention.normalize(bgr.flip(1).cpu()).to(images.device))


def for_dataset(model: nn.Module, mean_bgr: Sequence[float], convention: Any) -> nn.Module:
    """``model`` itself if it reads the dataset's convention, else wrapped to read it."""
    if convention == caffe_convention(tuple(mean_bgr[:3])):
        return model
    return ConventionAdapter(model, mean_bgr, convention)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``'s type, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def evaluation_loader(
    dataset: Dataset, *, batch_size: int = 1, rank: int = 0, world_size: int = 1, workers: int = 0
) -> DataLoader:
    """Batches of ``dataset`` for :func:`evaluate`: this process's share, in order.

    The shares are ``rank, rank + world_size, ...`` without the padding DistributedSampler adds,
    so that no image is counted twice when the histograms are summed. Images of different
    sizes are padded (the image with the mean, the label with void), which does not count.
    """
    indices = list(range(rank, len(dataset), world_size))  # type: ignore[arg-type]
    return DataLoader(
        torch.utils.data.Subset(dataset, indices),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_pad,
    )


def format_table(metrics: dict[str, Any], class_names: Sequence[str]) -> str:
    """The per-class IU and accuracy, then the four metrics, as a plain-text table.

    Args:
        metrics: :meth:`ConfusionMatrix.compute`'s dict, or a :func:`metrics_record`.
        class_names: one name per class.
    """
    width = max([len("class"), *(len(name) for name in class_names)])
    lines = [f"{'class':<{width}}  {'IU':>6}  {'acc':>6}"]
    for index, name in enumerate(class_names):
        iu, acc = (_per_class(metrics[key], index, name) for key in ("iu", "acc"))
        lines.append(f"{name:<{width}}  {_percent(iu)}  {_percent(acc)}")
    lines.append("")
    for key in METRIC_NAMES:
        lines.append(f"{key:<{width}}  {_percent(metrics[key])}")
    return "\n".join(lines)


def _per_class(values: Sequence[float] | dict[str, float | None], index: int, name: str) -> float:
    value = values[name] if isinstance(values, dict) else values[index]
    return math.nan if value is None else value


def _percent(value: float | None) -> str:
    if value is None or math.isnan(value):
        return f"{'n/a':>6}"
    return f"{100 * value:6.2f}"


def metrics_record(metrics: dict[str, Any], class_names: Sequence[str]) -> dict[str, Any]:
    """The metrics as JSON: the four under their keys, per-class IU and accuracy by class name.

    NaN (a class neither in the ground truth nor predicted) becomes null, which JSON has.
    """
    record: dict[str, Any] = {key: _json_number(metrics[key]) for key in METRIC_NAMES}
    record["iu"] = {n: _json_number(v) for n, v in zip(class_names, metrics["iu"], strict=True)}
    record["acc"] = {n: _json_number(v) for n, v in zip(class_names, metrics["acc"], strict=True)}
    return record


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def write_metrics(path: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Writes a :func:`metrics_record` as indented JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
