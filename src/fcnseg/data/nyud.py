"""NYUDv2 RGB-D scenes with Gupta et al.'s 40 classes (section 5, Table 4 of the paper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fcnseg.convention import InputConvention, caffe_convention
from fcnseg.errors import FcnsegError

from ._reading import (
    check_label,
    open_image,
    read_mat,
    read_rgb,
    read_split,
    require_dir,
    require_files,
    shift_void_zero,
)
from .dataset import DatasetInfo, JointTransform, Sample, SegmentationDataset
from .palettes import bitmap_palette

# The 40-class task of Gupta, Girshick, Arbelaez, Malik, ECCV 2014, in label order 1-40.
NYUD_CLASSES = (
    "wall",
    "floor",
    "cabinet",
    "bed",
    "chair",
    "sofa",
    "table",
    "door",
    "window",
    "bookshelf",
    "picture",
    "counter",
    "blinds",
    "desk",
    "shelves",
    "curtain",
    "dresser",
    "pillow",
    "mirror",
    "floor mat",
    "clothes",
    "ceiling",
    "books",
    "refrigerator",
    "television",
    "paper",
    "towel",
    "shower curtain",
    "box",
    "whiteboard",
    "person",
    "night stand",
    "toilet",
    "sink",
    "lamp",
    "bathtub",
    "bag",
    "otherstructure",
    "otherfurniture",
    "otherprop",
)

# Means of the reference repo's nyud_layers.py: colour in BGR order; HHA in the channel order
# of the HHA PNGs, which the reference does not reverse; log depth (depth PNG in millimetres).
NYUD_MEAN_BGR = (116.190, 97.203, 92.318)
NYUD_MEAN_HHA = (132.431, 94.076, 118.477)
NYUD_MEAN_LOG_DEPTH = (7.844,)

# Raw channels after the colour: log depth (depth PNG in mm), and HHA's three in the PNG's
# order, which the reference does not reverse (so an HHA-only input reads as "RGB").
_DEPTH = ("log_depth_mm",)
_HHA = ("hha_disparity", "hha_height", "hha_angle")
# The input convention of each modality; "color-hha" stacks the two streams of the paper's
# late-fusion net, colour channels first.
MODALITY_CONVENTIONS = {
    "color": caffe_convention(NYUD_MEAN_BGR),
    "depth": InputConvention("none", 255.0, NYUD_MEAN_LOG_DEPTH, extra_channels=_DEPTH),
    "hha": InputConvention("RGB", 255.0, NYUD_MEAN_HHA),
    "color-depth": caffe_convention(NYUD_MEAN_BGR + NYUD_MEAN_LOG_DEPTH, _DEPTH),
    "color-hha": caffe_convention(NYUD_MEAN_BGR + NYUD_MEAN_HHA, _HHA),
}


def nyud_info(modality: str = "color") -> DatasetInfo:
    """The NYUDv2 info for one input modality (the means differ by modality)."""
    return DatasetInfo(
        name="nyud",
        class_names=NYUD_CLASSES,
        palette=bitmap_palette(len(NYUD_CLASSES)),
        convention=MODALITY_CONVENTIONS[modality],
    )


def _read_log_depth(path: Path) -> np.ndarray:
    depth = np.asarray(open_image(path), dtype=np.float32)
    if depth.ndim != 2:
        raise FcnsegError(f"{path}: depth image has shape {depth.shape}; expected one channel")
    if (depth <= 0).any():
        # The reference takes the log as is; its depth PNGs are in-filled, so a 0 (no
        # measurement) means raw depth, whose log would be -inf.
        raise FcnsegError(f"{path}: depth has zeros (missing measurements); expected in-filled")
    return np.log(depth)


class NYUDDataset(SegmentationDataset):
    """NYUDv2 in the layout of the reference repo's nyud_layers.py.

    Layout: `data/images/img_<id>.png` (colour), `data/depth/img_<id>.png` (uint16 depth in
    mm, in-filled), `data/hha/img_<id>.png` (HHA encoding of Gupta et al. 2014),
    `segmentation/img_<id>.mat` (variable `segmentation`: 0 void, 1-40 classes), and
    `<split>.txt` of ids in root.

    Images by `modality`, as the reference prepares each input:

    - "color": BGR minus (116.190, 97.203, 92.318), 3 channels.
    - "depth": log(depth) - 7.844, 1 channel.
    - "hha": HHA minus (132.431, 94.076, 118.477) in the PNG's channel order, 3 channels.
    - "color-depth": colour then log depth, 4 channels (the paper's early fusion, RGBD).
    - "color-hha": colour then HHA, 6 channels; the late-fusion net feeds channels 0-2 to its
      colour stream and 3-5 to its HHA stream.

    Args:
        root: The NYUDv2 folder.
        split: A `<split>.txt` in root, e.g. train, val, test, trainval.
        modality: One of "color", "depth", "hha", "color-depth", "color-hha".
        transform: Joint transform applied to each (image, label).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        modality: str = "color",
        transform: JointTransform | None = None,
    ):
        if modality not in MODALITY_CONVENTIONS:
            raise FcnsegError(
                f"NYUDv2 modality '{modality}' unknown (choices: {', '.join(MODALITY_CONVENTIONS)})"
            )
        self.root = require_dir(Path(root), "NYUDv2")
        self.modality = modality
        ids = read_split(self.root / f"{split}.txt", self.root.glob("*.txt"))
        samples = [
            Sample(
                i,
                self.root / "data" / "images" / f"img_{i}.png",
                self.root / "segmentation" / f"img_{i}.mat",
            )
            for i in ids
        ]
        needed = [s.label for s in samples]
        for part in modality.split("-"):
            needed += [self._path(part, s) for s in samples]
        require_files(needed, f"NYUDv2 {split} {modality}")
        super().__init__(nyud_info(modality), samples, transform)

    def _path(self, part: str, sample: Sample) -> Path:
        folder = {"color": "images", "depth": "depth", "hha": "hha"}[part]
        return self.root / "data" / folder / f"img_{sample.name}.png"

    def read(self, sample: Sample) -> tuple[np.ndarray, torch.Tensor]:
        channels = []
        for part in self.modality.split("-"):
            path = self._path(part, sample)
            if part == "depth":
                array = _read_log_depth(path)[:, :, np.newaxis]
            else:  # colour as RGB, HHA in the PNG's order
                array = np.asarray(read_rgb(path), dtype=np.float32)
            if channels and array.shape[:2] != channels[0].shape[:2]:
                raise FcnsegError(
                    f"{path}: {part} is {array.shape[0]}x{array.shape[1]} (HxW) but colour is"
                    f" {channels[0].shape[0]}x{channels[0].shape[1]}"
                )
            channels.append(array)
        image = np.concatenate(channels, axis=2)
        label = shift_void_zero(
            read_mat(sample.label, "segmentation"), sample.label, len(NYUD_CLASSES)
        )
        return image, check_label(label, sample.label, self.num_classes, image.shape[:2])
