"""The paper's four metrics (section 5), computed as the reference's ``score.py`` computes them.

One confusion histogram is accumulated over the whole dataset, rows the ground truth and
columns the prediction (``fast_hist(gt, pred, n)``); the metrics are read off it at the end,
never averaged image by image. With ``n_ij`` the pixels of class ``i`` predicted as ``j`` and
``t_i = sum_j n_ij`` the pixels of class ``i``:

* pixel accuracy ``sum_i n_ii / sum_i t_i``;
* mean accuracy ``(1/n_cl) sum_i n_ii / t_i``;
* mean IU ``(1/n_cl) sum_i n_ii / (t_i + sum_j n_ji - n_ii)``;
* frequency weighted IU ``(sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)``.

As ``np.nanmean`` does in the reference, a class that is neither in the ground truth nor
predicted has NaN IU and is left out of the means; a class predicted but absent from the
ground truth has IU 0 and counts (its accuracy is NaN and is left out of the mean accuracy).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from fcnseg.errors import FcnsegError
from fcnseg.io.atomic import atomic_write


class ConfusionMatrix:
    """A ``num_classes x num_classes`` histogram of (ground truth, prediction) pixel pairs.

    Args:
        num_classes: classes, void excluded.
        ignore_index: the void label; its pixels are not counted.

    Attributes:
        hist: int64 counts, ``hist[i, j]`` the pixels of class ``i`` predicted as ``j``.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.hist = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Counts a batch of predictions against its ground truth.

        Args:
            pred: predicted classes, N x H x W (or any shape equal to ``target``'s).
            target: ground truth of the same shape, void pixels ``ignore_index``.

        Raises:
            FcnsegError: shapes differ, or a ground truth or predicted value is neither a class
                nor void.
        """
        if pred.shape != target.shape:
            raise FcnsegError(
                f"prediction shape {tuple(pred.shape)} differs from label {tuple(target.shape)}"
            )
        pred = pred.detach().reshape(-1).to("cpu", torch.int64)
        target = target.detach().reshape(-1).to("cpu", torch.int64)
        valid = target != self.ignore_index
        k = self.num_classes
        # The reference silently drops labels outside 0..n-1; here they are a user's error.
        bad = valid & ((target < 0) | (target >= k))
        if bad.any():
            raise FcnsegError(
                f"label value {int(target[bad][0])} is neither a class 0-{k - 1} "
                f"nor void {self.ignore_index}"
            )
        pred, target = pred[valid], target[valid]
        if pred.numel() and (pred.min() < 0 or pred.max() >= k):
            raise FcnsegError(f"predicted class outside 0-{k - 1}")
        self.hist += torch.bincount(k * target + pred, minlength=k * k).reshape(k, k)

    def reset(self) -> None:
        """Zeroes the counts."""
        self.hist.zero_()

    def reduce_from_all_processes(self) -> None:
        """Sums the histograms of every process (DDP), so each holds the whole dataset's."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        # gloo reduces CPU tensors, nccl CUDA ones; the backend's device decides.
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        hist = self.hist.to(device)
        dist.all_reduce(hist)
        self.hist = hist.cpu()

    def compute(self) -> dict[str, Any]:
        """The four metrics and the per-class values.

        Returns:
            ``pixel_acc``, ``mean_acc``, ``mean_iu``, ``fw_iu`` (floats, NaN when nothing
            was counted), ``iu``, ``acc`` (one float per class, NaN where undefined) and
            ``confusion`` (the histogram as K lists of K ints: rows the ground truth, columns
            the prediction).
        """
        hist = self.hist.double()
        diag = hist.diag()
        gt_pixels = hist.sum(1)  # t_i
        pred_pixels = hist.sum(0)
        total = hist.sum()
        with torch.no_grad():
            acc = diag / gt_pixels  # 0/0 = NaN: class absent from the ground truth
            iu = diag / (gt_pixels + pred_pixels - diag)  # NaN only if absent from both
            freq = gt_pixels / total
            present = freq > 0
        return {
            "pixel_acc": float(diag.sum() / total),
            "mean_acc": _nanmean(acc),
            "mean_iu": _nanmean(iu),
            "fw_iu": float((freq[present] * iu[present]).sum()) if total > 0 else math.nan,
            "iu": iu.tolist(),
            "acc": acc.tolist(),
            "confusion": self.hist.tolist(),
        }


def _nanmean(values: torch.Tensor) -> float:
    kept = values[~values.isnan()]
    return float(kept.mean()) if kept.numel() else math.nan


METRIC_NAMES = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")


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
    """The metrics as JSON: the four under their keys, per-class IU and accuracy by class name,
    and the confusion matrix (``confusion``: pixel counts, rows the ground truth and columns
    the prediction, in class order) where ``metrics`` has it.

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
    if "confusion" in metrics:
        record["confusion"] = [[int(n) for n in row] for row in metrics["confusion"]]
    return record


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def write_metrics(path: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    """Writes a :func:`metrics_record` as indented JSON, all at once (an earlier file at
    ``path`` is whole until the new one replaces it); returns the path."""
    path = Path(path)
    atomic_write(path, (json.dumps(record, indent=2) + "\n").encode())
    return path
