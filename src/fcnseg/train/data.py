"""The datasets a run trains and evaluates on, and the class weights of its loss."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from fcnseg.data import DatasetInfo, build_dataset
from fcnseg.data.synthetic import SYNTHETIC, synthetic_dataset
from fcnseg.errors import FcnsegError
from fcnseg.train.loss import class_frequencies, median_frequency_weights, parse_class_weights
from fcnseg.train.recipes import TrainConfig


def build_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """The training split and the held-out split (None without one), unaugmented.

    ``"synthetic"`` is the demo's generated data (``fcnseg.data.synthetic``), which needs no
    folder; every other name is read from its folder by ``fcnseg.data.build_dataset``.
    """
    train = _dataset(config.dataset, config.root, config.train_split, config.seed)
    if config.val_split is None:
        return train, None
    val_dataset = config.val_dataset or config.dataset
    val_root = config.val_root or config.root
    val = _dataset(val_dataset, val_root, config.val_split, config.seed)
    train_info, val_info = train.info, val.info  # type: ignore[attr-defined]
    if (val_info.class_names, val_info.mean_bgr) != (train_info.class_names, train_info.mean_bgr):
        raise FcnsegError(
            f"{val_root}: held-out dataset '{val_dataset}' differs from '{config.dataset}' in "
            "its classes or mean; the model would be scored on other input than it learnt"
        )
    return train, val


def _dataset(name: str, root: str, split: str, seed: int) -> Dataset:
    if name == SYNTHETIC:
        return synthetic_dataset(split, seed=seed)
    return build_dataset(name, root, split)


def class_weights_for(
    config: TrainConfig, dataset: Dataset, info: DatasetInfo
) -> torch.Tensor | None:
    """The loss's class weights: as given, by median frequency over ``dataset``, or None."""
    if config.class_weights is not None:
        try:
            return parse_class_weights(config.class_weights, info.num_classes)
        except ValueError as error:
            raise FcnsegError(f"class weights: {error}") from None
    if not config.median_frequency:
        return None
    labels = (dataset[i][1] for i in range(len(dataset)))  # type: ignore[arg-type]
    return median_frequency_weights(class_frequencies(labels, info.num_classes, info.ignore_index))
