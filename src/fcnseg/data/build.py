"""The dataset table: one name per reader, built by `build_dataset`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fcnseg.convention import InputConvention
from fcnseg.errors import FcnsegError

from .ade20k import ADE20KDataset
from .camvid import CamVidDataset
from .cityscapes import CityscapesDataset
from .dataset import SegmentationDataset
from .folder import FolderDataset
from .nyud import NYUDDataset
from .pascal_context import PASCALContextDataset
from .siftflow import SIFTFlowDataset
from .synthetic import SYNTHETIC, synthetic_dataset
from .voc import SBDDataset, VOCDataset

# name -> reader: a class or function of (root, split, *, options)
_DATASETS: dict[str, Callable[..., SegmentationDataset]] = {
    "voc": VOCDataset,
    "sbd": SBDDataset,
    "nyud": NYUDDataset,
    "siftflow": SIFTFlowDataset,
    "pascal-context": PASCALContextDataset,
    "camvid": CamVidDataset,
    "folder": FolderDataset,
    "cityscapes": CityscapesDataset,
    "ade20k": ADE20KDataset,
    SYNTHETIC: synthetic_dataset,  # the demo's generated shapes; needs no folder
}


# Reader options whose values are files or folders (made absolute when a run is saved).
PATH_OPTIONS = ("palette", "voc_dir", "exclude")


def list_datasets() -> list[str]:
    """Names accepted by `build_dataset`, sorted."""
    return sorted(_DATASETS)


def build_dataset(
    name: str,
    root: str | Path,
    split: str,
    *,
    convention: InputConvention | None = None,
    **opts: Any,
) -> SegmentationDataset:
    """Builds a dataset of (image, label) pairs read from its published on-disk layout.

    Every file the split names is checked to exist here, so that a missing file fails before
    training starts.

    Args:
        name: One of `list_datasets()`.
        root: The dataset's folder (see each reader's docstring for its layout).
        split: The split's name, e.g. "train", "val"; several joined by "+" ("train+val")
            read as one dataset, their samples in that order.
        convention: The input convention to feed images in, that of the weights they are for
            (`model.meta.input_convention`); the dataset's own (`info.convention`) when None.
        **opts: Options of that reader, e.g. `transform=` for all, `modality=` for "nyud",
            `task=` for "siftflow", `exclude=` for "sbd", `annotation=` for "cityscapes",
            `palette=` for "folder".

    Returns:
        The dataset; `dataset.info` gives its classes, palette and mean.

    Raises:
        FcnsegError: unknown name or option, missing folder, split or file, a "+" join of
            an empty or repeated split name (or of the generated ``synthetic`` data), or a
            convention of another channel count than the dataset's images.
    """
    if name not in _DATASETS:
        raise FcnsegError(f"unknown dataset '{name}' (known: {', '.join(list_datasets())})")
    reader = _DATASETS[name]
    options = [
        p.name
        for p in inspect.signature(reader).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    for option in opts:
        if option not in options:
            raise FcnsegError(
                f"dataset '{name}' has no option '{option}' (options: {', '.join(options)})"
            )
    dataset = _read_splits(name, reader, Path(root), split, opts)
    if convention is not None:
        own = dataset.info.convention
        if convention.channels != own.channels:
            raise FcnsegError(
                f"the model takes {convention.channels} input channels but dataset '{name}' "
                f"gives {own.channels} (NYUDv2: set the dataset option modality)"
            )
        dataset.convention = convention
    return dataset


def split_names(split: str) -> list[str]:
    """The split names a split joins with "+" (``"train+val"``: train, val), in order.

    Raises:
        FcnsegError: an empty name, or a name given twice.
    """
    names = split.split("+")
    if any(not part for part in names):
        raise FcnsegError(f"split '{split}': a name is empty; join split names with '+'")
    repeated = sorted({part for part in names if names.count(part) > 1})
    if repeated:
        raise FcnsegError(f"split '{split}' names {', '.join(repeated)} more than once")
    return names


def _read_splits(
    name: str, reader: Callable[..., SegmentationDataset], root: Path, split: str, opts: dict
) -> SegmentationDataset:
    """One split, or several joined by "+": the first split's reader with every split's
    samples (a reader's samples carry their own file paths, so one reader reads them all)."""
    names = split_names(split)
    if len(names) == 1:
        return reader(root, split, **opts)
    if name == SYNTHETIC:
        raise FcnsegError(f"dataset '{name}' is generated per split; its splits cannot be joined")
    parts = [reader(root, part, **opts) for part in names]
    joined = parts[0]
    joined.samples = [sample for part in parts for sample in part.samples]
    return joined
