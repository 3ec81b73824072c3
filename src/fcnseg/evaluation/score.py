"""Scoring a model on a dataset: predictions, one histogram per head, the four metrics."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from fcnseg.data import collate_pad
from fcnseg.errors import FcnsegError
from fcnseg.evaluation.metrics import ConfusionMatrix
from fcnseg.models import head_scores
from fcnseg.runtime import autocast


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
            scores = head_scores(model, model(images.to(device)))  # head -> N×K×H×W
        if len(scores) == 1:
            per_head = {next(iter(scores)): labels}
        elif labels.dim() != 4 or labels.shape[1] != len(scores):
            raise FcnsegError(
                f"the model has {len(scores)} heads ({', '.join(scores)}) but the labels have "
                f"shape {tuple(labels.shape)}; expected N x {len(scores)} x H x W, one label "
                "per head (SIFT Flow: task=both)"
            )
        else:
            per_head = {head: labels[:, task] for task, head in enumerate(scores)}
        for head, head_scores_ in scores.items():
            confusion = confusions.setdefault(
                head, ConfusionMatrix(head_scores_.shape[1], ignore_index)
            )
            confusion.update(head_scores_.argmax(1), per_head[head])
    if not confusions:  # no batch: the first head's empty histogram
        confusions["out"] = ConfusionMatrix(num_classes, ignore_index)
    for confusion in confusions.values():
        confusion.reduce_from_all_processes()
    model.train(was_training)
    if len(confusions) == 1:
        return next(iter(confusions.values())).compute()
    heads = {head: confusion.compute() for head, confusion in confusions.items()}
    return {**next(iter(heads.values())), "heads": heads}


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


def head_class_names(dataset: Dataset) -> dict[str, Sequence[str]]:
    """The class names of a multi-head net's heads after the first, as ``dataset`` gives them.

    The first head's are ``dataset.info``'s; SIFT Flow's geometric head ``geo`` has
    ``dataset.geometric_info``'s. Empty for a dataset of one task.
    """
    geometric = getattr(dataset, "geometric_info", None)
    return {} if geometric is None else {"geo": list(geometric.class_names)}
