"""The dataset table: one name per reader, built by `build_dataset`."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from fcnseg.errors import FcnsegError

from .camvid import CamVidDataset
from .dataset import SegmentationDataset
from .folder import FolderDataset
from .nyud import NYUDDataset
from .pascal_context import PASCALContextDataset
from .siftflow import SIFTFlowDataset
from .voc import SBDDataset, VOCDataset

_DATASETS: dict[str, type[SegmentationDataset]] = {
    "voc": VOCDataset,
    "sbd": SBDDataset,
    "nyud": NYUDDataset,
    "siftflow": SIFTFlowDataset,
    "pascal-context": PASCALContextDataset,
    "camvid": CamVidDataset,
    "folder": FolderDataset,
}


def list_datasets() -> list[str]:
    """Names accepted by `build_dataset`, sorted."""
    return sorted(_DATASETS)


def build_dataset(name: str, root: str | Path, split: str, **opts: Any) -> SegmentationDataset:
    """Builds a dataset of (image, label) pairs read from its published on-disk layout.

    Every file the split names is checked to exist here, so that a missing file fails before
    training starts.

    Args:
        name: One of `list_datasets()`.
        root: The dataset's folder (see each reader's docstring for its layout).
        split: The split's name, e.g. "train", "val".
        **opts: Options of that reader, e.g. `transform=` for all, `modality=` for "nyud",
            `task=` for "siftflow", `exclude=` for "sbd".

    Returns:
        The dataset; `dataset.info` gives its classes, palette and mean.

    Raises:
        FcnsegError: unknown name or option, missing folder, split or file.
    """
    if name not in _DATASETS:
        raise FcnsegError(f"unknown dataset '{name}' (known: {', '.join(list_datasets())})")
    reader = _DATASETS[name]
    options = [
        p.name
        for p in inspect.signature(reader.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    for option in opts:
        if option not in options:
            raise FcnsegError(
                f"dataset '{name}' has no option '{option}' (options: {', '.join(options)})"
            )
    return reader(Path(root), split, **opts)
