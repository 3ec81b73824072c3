"""SIFT Flow: 33 semantic and 3 geometric classes of the same images (section 5, Table 5)."""

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
    shift_void_zero,
)
from .dataset import DatasetInfo, JointTransform, Sample, SegmentationDataset
from .palettes import bitmap_palette

SIFTFLOW_CLASSES = (
    "awning",
    "balcony",
    "bird",
    "boat",
    "bridge",
    "building",
    "bus",
    "car",
    "cow",
    "crosswalk",
    "desert",
    "door",
    "fence",
    "field",
    "grass",
    "moon",
    "mountain",
    "person",
    "plant",
    "pole",
    "river",
    "road",
    "rock",
    "sand",
    "sea",
    "sidewalk",
    "sign",
    "sky",
    "staircase",
    "streetlight",
    "sun",
    "tree",
    "window",
)
SIFTFLOW_GEOMETRIC_CLASSES = ("sky", "horizontal", "vertical")

# The reference siftflow_layers.py mean, BGR.
SIFTFLOW_MEAN_BGR = (114.578, 115.294, 108.353)

SIFTFLOW_INFO = DatasetInfo(
    name="siftflow",
    class_names=SIFTFLOW_CLASSES,
    palette=bitmap_palette(len(SIFTFLOW_CLASSES)),
    convention=caffe_convention(SIFTFLOW_MEAN_BGR),
)
SIFTFLOW_GEOMETRIC_INFO = DatasetInfo(
    name="siftflow-geometric",
    class_names=SIFTFLOW_GEOMETRIC_CLASSES,
    palette=bitmap_palette(len(SIFTFLOW_GEOMETRIC_CLASSES)),
    convention=caffe_convention(SIFTFLOW_MEAN_BGR),
)

_SUBDIR = "spatial_envelope_256x256_static_8outdoorcategories"
TASKS = ("semantic", "geometric", "both")


class SIFTFlowDataset(SegmentationDataset):
    """SIFT Flow in the layout the reference siftflow_layers.py reads.

    Layout, with `S = spatial_envelope_256x256_static_8outdoorcategories`:
    `Images/S/<id>.jpg`, `SemanticLabels/S/<id>.mat` and `GeoLabels/S/<id>.mat` (variable `S`;
    semantic 0 void, 1-33 classes; geometric -1 and 0 void, 1-3 classes), splits
    `trainval.txt` and `test.txt` in root.

    The label depends on `task`: "semantic" gives H x W with classes 0-32, "geometric" H x W
    with classes 0-2, "both" a 2 x H x W tensor (semantic, geometric) for the paper's two-headed
    net. `info` describes the semantic classes unless task is "geometric";
    `geometric_info` always describes the geometric ones.

    Args:
        root: The SIFT Flow folder.
        split: trainval or test.
        task: "semantic", "geometric" or "both".
        transform: Joint transform applied to each (image, label).
    """

    geometric_info = SIFTFLOW_GEOMETRIC_INFO

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        task: str = "semantic",
        transform: JointTransform | None = None,
    ):
        if task not in TASKS:
            raise FcnsegError(f"SIFT Flow task '{task}' unknown (choices: {', '.join(TASKS)})")
        self.root = require_dir(Path(root), "SIFT Flow")
        self.task = task
        ids = read_split(self.root / f"{split}.txt", self.root.glob("*.txt"))
        samples = [
            Sample(
                i,
                self.root / "Images" / _SUBDIR / f"{i}.jpg",
                self.root / "SemanticLabels" / _SUBDIR / f"{i}.mat",
            )
            for i in ids
        ]
        needed = [s.image for s in samples]
        if task != "geometric":
            needed += [s.label for s in samples]
        if task != "semantic":
            needed += [self.geometric_label(s) for s in samples]
        require_files(needed, f"SIFT Flow {split}")
        info = SIFTFLOW_GEOMETRIC_INFO if task == "geometric" else SIFTFLOW_INFO
        super().__init__(info, samples, transform)

    def geometric_label(self, sample: Sample) -> Path:
        """The geometric label file of a sample."""
        return self.root / "GeoLabels" / _SUBDIR / f"{sample.name}.mat"

    def read(self, sample: Sample) -> tuple[np.ndarray, torch.Tensor]:
        image = read_rgb(sample.image)
        size = image.shape[:2]
        labels = []
        if self.task != "geometric":
            raw = read_mat(sample.label, "S")
            semantic = shift_void_zero(raw, sample.label, len(SIFTFLOW_CLASSES))
            labels.append(check_label(semantic, sample.label, len(SIFTFLOW_CLASSES), size))
        if self.task != "semantic":
            path = self.geometric_label(sample)
            raw = np.asarray(read_mat(path, "S")).astype(np.int64)
            # The geometric maps mark some void pixels -1 rather than 0; the reference folds
            # them into 0 before the shift that makes 0 void.
            raw[raw == -1] = 0
            geometric = shift_void_zero(raw, path, len(SIFTFLOW_GEOMETRIC_CLASSES))
            labels.append(check_label(geometric, path, len(SIFTFLOW_GEOMETRIC_CLASSES), size))
        return image, labels[0] if len(labels) == 1 else torch.stack(labels)
