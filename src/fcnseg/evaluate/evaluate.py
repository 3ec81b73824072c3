"""Scoring a model on a dataset: predictions, one histogram, the four metrics, a table."""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fcnseg.data import collate_pad
from fcnseg.errors import FcnsegError
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

    A net with several heads (SIFT Flow's ``sem`` and ``geo``) returns a dict of scores and is
    scored against labels N x T x H x W, one channel per head in the dict's order: each head
    has its own histogram, of as many classes as its scores have channels. Its metrics are
    the first head's, so that a mean IU still picks the best checkpoint by the semantic
    classes, plus ``"heads"``: head name to that head's metrics.

    Args:
        model: maps N x C x H x W images to N x K x H x W scores, or to a dict of them.
        batches: (images, labels) pairs; padded pixels must be void in the labels.
        num_classes: K (of a single-headed net; a multi-head net's come from its scores).
        ignore_index: the void label.
        device: where the model runs.
        amp_dtype: run the forward pass under autocast to this dtype; None for float32.

    Returns:
        The metrics of :meth:`ConfusionMatrix.compute` over all batches of all processes.

    Raises:
        FcnsegError: the labels do not have one channel per head.
    """
    was_training = model.training
    model.eval()
    confusions: dict[str, ConfusionMatrix] = {}
    device = torch.device(device)
    for images, labels in batches:
        with autocast(device, amp_dtype):
            scores = model(images.to(device))  # N×K×H×W, or a dict of them
        if not isinstance(scores, dict):
            confusions.setdefault("", ConfusionMatrix(num_classes, ignore_index))
            confusions[""].update(scores.argmax(1), labels)
            continue
        if labels.dim() != 4 or labels.shape[1] != len(scores):
            raise FcnsegError(
                f"the model has {len(scores)} heads ({', '.join(scores)}) but the labels have "
                f"shape {tuple(labels.shape)}; expected N x {len(scores)} x H x W, one label "
                "per head (SIFT Flow: task=both)"
            )
        for task, (head, head_scores) in enumerate(scores.items()):
            confusion = confusions.setdefault(
                head, ConfusionMatrix(head_scores.shape[1], ignore_index)
            )
            confusion.update(head_scores.argmax(1), labels[:, task])
    if not confusions:  # no batch: the single-headed net's empty histogram
        confusions[""] = ConfusionMatrix(num_classes, ignore_index)
    for confusion in confusions.values():
        confusion.reduce_from_all_processes()
    model.train(was_training)
    if list(confusions) == [""]:
        return confusions[""].compute()
    heads = {head: confusion.compute() for head, confusion in confusions.items()}
    return {**next(iter(heads.values())), "heads": heads}


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


def format_table(
    metrics: dict[str, Any],
    class_names: Sequence[str],
    head_class_names: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The per-class IU and accuracy, then the four metrics, as a plain-text table.

    Metrics with ``"heads"`` give one table per head, each under its head's name.

    Args:
        metrics: :meth:`ConfusionMatrix.compute`'s dict, or a :func:`metrics_record`.
        class_names: one name per class (of the first head).
        head_class_names: the class names of the other heads (see :func:`metrics_record`).
    """
    if "heads" in metrics:
        names = _class_names_by_head(metrics["heads"], class_names, head_class_names)
        return "\n\n".join(
            f"[{head}]\n" + format_table(head_metrics, names[head])
            for head, head_metrics in metrics["heads"].items()
        )
    width = max([len("class"), *(len(name) for name in class_names)])
    lines = [f"{'class':<{width}}  {'IU':>6}  {'acc':>6}"]
    for index, name in enumerate(class_names):
        iu, acc = (_per_class(metrics[key], index, name) for key in ("iu", "acc"))
        lines.append(f"{name:<{width}}  {_percent(iu)}  {_percent(acc)}")
    lines.append("")
    for key in METRIC_NAMES:
        lines.append(f"{key:<{width}}  {_percent(metrics[key])}")
    return "\n".join(lines)


def _class_names_by_head(
    heads: dict[str, Any],
    class_names: Sequence[str],
    head_class_names: Mapping[str, Sequence[str]] | None,
) -> dict[str, Sequence[str]]:
    """Each head's class names: the first head's ``class_names``, the others' from
    ``head_class_names``, or their class numbers where it has none."""
    names: dict[str, Sequence[str]] = {}
    for index, (head, head_metrics) in enumerate(heads.items()):
        if index == 0:
            names[head] = class_names
        elif head_class_names is not None and head in head_class_names:
            names[head] = head_class_names[head]
        else:
            names[head] = [str(k) for k in range(len(head_metrics["iu"]))]
    return names


def head_class_names(dataset: Dataset) -> dict[str, Sequence[str]]:
    """The class names of a multi-head net's heads after the first, as ``dataset`` gives them.

    The first head's are ``dataset.info``'s; SIFT Flow's geometric head ``geo`` has
    ``dataset.geometric_info``'s. Empty for a dataset of one task.
    """
    geometric = getattr(dataset, "geometric_info", None)
    return {} if geometric is None else {"geo": list(geometric.class_names)}


def _per_class(values: Sequence[float] | dict[str, float | None], index: int, name: str) -> float:
    value = values[name] if isinstance(values, dict) else values[index]
    return math.nan if value is None else value


def _percent(value: float | None) -> str:
    if value is None or math.isnan(value):
        return f"{'n/a':>6}"
    return f"{100 * value:6.2f}"


def metrics_record(
    metrics: dict[str, Any],
    class_names: Sequence[str],
    head_class_names: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """The metrics as JSON: the four under their keys, per-class IU and accuracy by class name.

    NaN (a class neither in the ground truth nor predicted) becomes null, which JSON has. The
    metrics of a multi-head net keep the first head's record at the top and add ``"heads"``,
    head name to its record.

    Args:
        metrics: :func:`evaluate`'s dict.
        class_names: one name per class (of the first head).
        head_class_names: the other heads' class names by head (:func:`head_class_names`); a
            head without them has its classes numbered.
    """
    if "heads" in metrics:
        names = _class_names_by_head(metrics["heads"], class_names, head_class_names)
        heads = {head: metrics_record(m, names[head]) for head, m in metrics["heads"].items()}
        return {**next(iter(heads.values())), "heads": heads}
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
