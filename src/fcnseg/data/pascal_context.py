"""PASCAL-Context (Mottaghi et al. 2014): whole-scene labels of VOC2010, 59 classes + background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fcnseg.convention import caffe_convention
from fcnseg.errors import FcnsegError

from ._reading import (
    check_label,
    read_mat,
    read_rgb,
    read_split,
    require_dir,
    require_files,
)
from .dataset import DatasetInfo, JointTransform, Sample, SegmentationDataset
from .palettes import bitmap_palette

# The reference pascalcontext_layers.py mean: the ILSVRC mean rounded to three decimals.
CONTEXT_MEAN_BGR = (104.007, 116.669, 122.679)

# 59_labels.txt and labels.txt spell three classes differently; the reference maps the task's
# name to the full list's name.
_TASK_TO_FULL_NAME = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}


def _read_label_list(path: Path) -> list[tuple[int, str]]:
    """Reads `<id>: <name>` lines, as in labels.txt and 59_labels.txt."""
    if not path.is_file():
        raise FcnsegError(f"{path}: PASCAL-Context label list not found")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        index, sep, name = line.partition(":")
        if not sep or not index.strip().isdigit() or not name.strip():
            raise FcnsegError(f"{path}: line {number} is not '<id>: <name>': {line.strip()!r}")
        entries.append((int(index), name.strip()))
    return entries


def context_lookup(labels_file: Path, task_file: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """Builds the map from the full PASCAL-Context ids to the task's classes.

    Args:
        labels_file: labels.txt, the full list (459 classes, ids from 1).
        task_file: 59_labels.txt, the names of the kept classes.

    Returns:
        The class names (background first, then the kept names as the task file spells them)
        and a lookup table: full id -> task class, 0 (background) for every class not kept.
    """
    # Names are compared without spaces, as the reference does.
    full = {name.replace(" ", ""): index for index, name in _read_label_list(labels_file)}
    kept = [name for _, name in _read_label_list(task_file)]
    lookup = np.zeros(max(full.values()) + 1, dtype=np.int64)
    for task_class, name in enumerate(kept, start=1):
        key = name.replace(" ", "")
        key = _TASK_TO_FULL_NAME.get(key, key)
        if key not in full:
            raise FcnsegError(f"{task_file}: class '{name}' is not in {labels_file.name}")
        lookup[full[key]] = task_class
    return ("background", *kept), lookup


class PASCALContextDataset(SegmentationDataset):
    """PASCAL-Context in the layout of its annotation release, with the VOC2010 images.

    Layout: `trainval/<id>.mat` (variable `LabelMap` of full-list ids), `labels.txt` (the full
    list, `<id>: <name>`), `59_labels.txt` (the kept classes), split files `train.txt` and
    `val.txt` in root (else `ImageSets/Main/<split>.txt` of VOC2010, as the reference reads
    them); images `JPEGImages/<id>.jpg` of VOC2010. Labels are remapped as the reference
    pascalcontext_layers.py does: kept class k of 59_labels.txt becomes k, every other id
    becomes 0, background, which is a class here, not void.

    Args:
        root: The PASCAL-Context annotation folder.
        split: train or val.
        voc_dir: The VOC2010 folder holding JPEGImages (default: root).
        transform: Joint transform applied to each (image, label).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        voc_dir: str | Path | None = None,
        transform: JointTransform | None = None,
    ):
        root = require_dir(Path(root), "PASCAL-Context")
        voc_dir = require_dir(Path(voc_dir) if voc_dir is not None else root, "VOC2010")
        class_names, self.lookup = context_lookup(root / "labels.txt", root / "59_labels.txt")
        split_file = root / f"{split}.txt"
        voc_split_file = voc_dir / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file() and voc_split_file.is_file():
            split_file = voc_split_file
        splits = [p for p in root.glob("*.txt") if p.name not in ("labels.txt", "59_labels.txt")]
        ids = read_split(split_file, splits)
        samples = [
            Sample(i, voc_dir / "JPEGImages" / f"{i}.jpg", root / "trainval" / f"{i}.mat")
            for i in ids
        ]
        require_files([p for s in samples for p in (s.image, s.label)], f"PASCAL-Context {split}")
        info = DatasetInfo(
            name="pascal-context",
            class_names=class_names,
            palette=bitmap_palette(len(class_names)),
            convention=caffe_convention(CONTEXT_MEAN_BGR),
        )
        super().__init__(info, samples, transform)

    def read(self, sample: Sample) -> tuple[np.ndarray, torch.Tensor]:
        image = read_rgb(sample.image)
        full = np.asarray(read_mat(sample.label, "LabelMap")).astype(np.int64)
        inside = (full >= 0) & (full < len(self.lookup))
        label = np.where(inside, self.lookup[np.where(inside, full, 0)], 0)
        return image, check_label(label, sample.label, self.num_classes, image.shape[:2])
