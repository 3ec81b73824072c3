"""The datasets a run trains and evaluates on, and the class weights of its loss."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from fcnseg.data import DatasetInfo, build_dataset
from fcnseg.errors import FcnsegError
from fcnseg.train.loss import class_frequencies, median_frequency_weights, parse_class_weights
from fcnseg.train.recipes import TrainConfig


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """The training split and the held-out split (None without one), unaugmented.

    Each is read by ``fcnseg.data.build_dataset`` (the demo's ``synthetic`` data needs no
    folder), with ``config.dataset_options``. The held-out split gets the same options when it
    is of the same dataset; another dataset (``val_dataset``) is read with its reader's defaults,
    since the options of one reader need not exist in another (SBD's ``exclude``, not VOC's).
    """
    options = config.dataset_options
    train = build_dataset(config.dataset, config.root, config.train_split, **options)
    if config.val_split is None:
        return train, None
    val_dataset = config.val_dataset or config.dataset
    val_root = config.val_root or config.root
    val_options = options if val_dataset == config.dataset else {}
    val = build_dataset(val_dataset, val_root, config.val_split, **val_options)
    train_info, val_info = train.info, val.info
    if (val_info.class_names, val_info.convention) != (
        train_info.class_names,
        train_info.convention,
    ):
        raise FcnsegError(
            f"{val_root}: held-out dataset '{val_dataset}' differs from '{config.dataset}' in "
            "its classes or mean; the model would be scored on other input than it learnt"
        )
    return train, val


def class_weights_for(
    config: TrainConfig, dataset: Dataset, info: DatasetInfo
) -> torch.Tensor | None:
    """The loss's class weights: as given, by median frequency over ``dataset`` (raised to
    ``config.median_frequency_power``), or None.

    They weigh the first head's classes (``info``'s): with K x H x W labels (SIFT Flow's
    semantic and geometric), the frequencies are counted on the first label channel.
    """
    if config.class_weights is not None:
        try:
            return parse_class_weights(config.class_weights, info.num_classes)
        except ValueError as error:
            raise FcnsegError(str(error)) from None
    if not config.median_frequency:
        return None
    labels = (_first_task(dataset[i][1]) for i in range(len(dataset)))  # type: ignore[arg-type]
    weights = median_frequency_weights(
        class_frequencies(labels, info.num_classes, info.ignore_index)
    )
    if config.median_frequency_power != 1:
        weights = weights.pow(config.median_frequency_power)  # 0.5 is computed as sqrt
    if not weights.isfinite().all():
        # a large power takes a rare class's weight past float32 (1e6: inf)
        raise FcnsegError(
            f"median frequency weights to the power {config.median_frequency_power:g} are not "
            f"finite: {' '.join(f'{w:.3g}' for w in weights.tolist())}"
        )
    return weights


def _first_task(label: torch.Tensor) -> torch.Tensor:
    """The H x W label of the first task of an [T x] H x W label."""
    return label[0] if label.dim() == 3 else label


def check_data(model: nn.Module, dataset: Dataset) -> None:
    """Fails at once if the images do not have the model's input channels, or the labels not
    one channel per score head (SIFT Flow's two-headed nets need the dataset option
    ``task=both``); the first sample stands for the dataset.

    Raises:
        FcnsegError: saying which and what to set.
    """
    image, label = dataset[0]
    if image.shape[0] != model.in_channels:
        raise FcnsegError(
            f"the model takes {model.in_channels} input channels but the dataset gives "
            f"{image.shape[0]} (NYUDv2: set the dataset option modality)"
        )
    heads = len(model.heads)
    tasks = label.shape[0] if label.dim() == 3 else 1
    if tasks != heads:
        raise FcnsegError(
            f"the model has {heads} score heads but the dataset gives {tasks} label(s) per "
            "pixel (SIFT Flow: set the dataset option task=both)"
        )
