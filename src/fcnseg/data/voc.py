"""PASCAL VOC segmentation and Hariharan et al.'s SBD, the paper's training data (section 4.3)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fcnseg.convention import caffe_convention
from fcnseg.errors import FcnsegError

from ._reading import (
    check_label,
    read_index_png,
    read_mat,
    read_rgb,
    read_split,
    require_dir,
    require_files,
)
from .dataset import DatasetInfo, JointTransform, Sample, SegmentationDataset
from .palettes import VOC_MEAN_BGR, bitmap_palette

VOC_CLASSES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

VOC_INFO = DatasetInfo(
    name="voc",
    class_names=VOC_CLASSES,
    palette=bitmap_palette(len(VOC_CLASSES)),
    convention=caffe_convention(VOC_MEAN_BGR),
)

SBD_INFO = DatasetInfo(
    name="sbd",
    class_names=VOC_CLASSES,
    palette=VOC_INFO.palette,
    convention=caffe_convention(VOC_MEAN_BGR),
)


class VOCDataset(SegmentationDataset):
    """PASCAL VOC 2011 or 2012 segmentation, from the devkit's `VOC20xx` folder.

    Layout: `JPEGImages/<id>.jpg`, `SegmentationClass/<id>.png` (palette PNGs whose indices are
    the classes, 255 void), `ImageSets/Segmentation/<split>.txt`.

    Split `seg11valid` is the paper's validation subset: the 736 images of VOC2011 val that are
    not in SBD train (footnote 7). The reference repo ships its list as
    `data/pascal/seg11valid.txt`; place that file in `ImageSets/Segmentation/` of VOC2011.

    Args:
        root: The `VOC2011` or `VOC2012` folder.
        split: A file name in `ImageSets/Segmentation` without `.txt`: train, val, trainval,
            seg11valid.
        transform: Joint transform applied to each (image, label).
    """

    def __init__(self, root: str | Path, split: str, *, transform: JointTransform | None = None):
        root = require_dir(Path(root), "VOC")
        sets = root / "ImageSets" / "Segmentation"
        ids = read_split(sets / f"{split}.txt", sets.glob("*.txt"))
        samples = [
            Sample(i, root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png")
            for i in ids
        ]
        require_files([p for s in samples for p in (s.image, s.label)], f"VOC {split}")
        super().__init__(VOC_INFO, samples, transform)

    def read(self, sample: Sample) -> tuple[np.ndarray, torch.Tensor]:
        image = read_rgb(sample.image)
        label = read_index_png(sample.label)
        return image, check_label(label, sample.label, self.num_classes, image.shape[:2])


class SBDDataset(SegmentationDataset):
    """The Semantic Boundaries Dataset (Hariharan et al. 2011), the paper's extra training data.

    Layout of its `dataset/` folder: `img/<id>.jpg`, `cls/<id>.mat` (struct `GTcls` whose field
    `Segmentation` holds classes 0-20), `train.txt`, `val.txt`.

    Split `train_noval` is SBD train minus VOC2011 seg11valid, so that validating on seg11valid
    is fair: read from `train_noval.txt` in root if present, else made from `train.txt` minus the
    ids of `exclude`.

    Args:
        root: SBD's `dataset` folder.
        split: train, val or train_noval.
        exclude: A split file whose ids are removed from the split (e.g. seg11valid.txt).
        transform: Joint transform applied to each (image, label).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        exclude: str | Path | None = None,
        transform: JointTransform | None = None,
    ):
        root = require_dir(Path(root), "SBD")
        split_file = root / f"{split}.txt"
        if split == "train_noval" and not split_file.is_file():
            if exclude is None:
                raise FcnsegError(
                    f"{split_file}: split file not found; give exclude=<seg11valid.txt> to make"
                    " it from train.txt"
                )
            split_file = root / "train.txt"
        ids = read_split(split_file, root.glob("*.txt"))
        if exclude is not None:
            excluded = set(read_split(Path(exclude)))
            ids = [i for i in ids if i not in excluded]
        samples = [Sample(i, root / "img" / f"{i}.jpg", root / "cls" / f"{i}.mat") for i in ids]
        require_files([p for s in samples for p in (s.image, s.label)], f"SBD {split}")
        super().__init__(SBD_INFO, samples, transform)

    def read(self, sample: Sample) -> tuple[np.ndarray, torch.Tensor]:
        image = read_rgb(sample.image)
        gt = read_mat(sample.label, "GTcls")
        try:
            # loadmat's default view of a 1x1 MATLAB struct, as the reference layer indexes it.
            label = np.asarray(gt[0]["Segmentation"][0])
        except (IndexError, KeyError, ValueError):
            raise FcnsegError(f"{sample.label}: GTcls has no field 'Segmentation'") from None
        return image, check_label(label, sample.label, self.num_classes, image.shape[:2])
