"""NYUDv2 RGB-D scenes with Gupta et al.'s 40 classes (section 5, Table 4 of the paper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

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
from .convention import DatasetInfo, bitmap_palette, preprocess
from .dataset import JointTransform, Sample, SegmentationDataset

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

# Input channels of each modality, in tensor order; "color-hha" stacks the two streams of the
# paper's late-fusion net, colour channels first.
MODALITY_MEANS = {
    "color": NYUD_MEAN_BGR,
    "depth": NYUD_MEAN_LOG_DEPTH,
    "hha": NYUD_MEAN_HHA,
    "color-depth": NYUD_MEAN_BGR + NYUD_MEAN_LOG_DEPTH,
    "color-hha": NYUD_MEAN_BGR + NYUD_MEAN_HHA,
}


def nyud_info(modality: str = "color") -> DatasetInfo:
    """The NYUDv2 info for one input modality (the means differ by modality)."""
    return DatasetInfo(
        name="nyud",
        class_names=NYUD_CLASSES,
        palette=bitmap_palette(len(NYUD_CLASSES)),
        mean_bgr=MODALITY_MEANS[modality],
    )


def _read_log_depth(path: Path) -> np.ndarray:
    depth = np.asarray(open_image(path), dtype=np.float32)
    if depth.ndim != 2:
        raise FcnsegError(f"{path}: depth image has shape {depth.shape}; expected one channel")
    if (depth <= 0).any():
        # The reference takes the log as is; its depth PNGs are in-filled, so a 0 (no
        # measurement) means raw depth, whose log would be -inf.
        raise FcnsegError(f"{path}: depth has zeros (missing measurements); expected in-filled")
    return np.log(depth) - np.float32(NYUD_MEAN_LOG_DEPTH[0])


def _read_hha(path: Path) -> np.ndarray:
    hha = np.asarray(read_rgb(path), dtype=np.float32)
    # No RGB -> BGR reversal: the reference subtracts the HHA mean in the PNG's own order.
    return (hha - np.asarray(NYUD_MEAN_HHA, dtype=np.float32)).transpose(2, 0, 1)


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
        if modality not in MODALITY_MEANS:
            raise FcnsegError(
                f"NYUDv2 modality '{modality}' unknown (choices: {', '.join(MODALITY_MEANS)})"
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

    def read(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        channels = []
        for part in self.modality.split("-"):
            path = self._path(part, sample)
            if part == "color":
                array = preprocess(read_rgb(path), NYUD_MEAN_BGR).numpy()
            elif part == "depth":
                array = _read_log_depth(path)[np.newaxis]
            else:
                array = _read_hha(path)
            if channels and array.shape[1:] != channels[0].shape[1:]:
                raise FcnsegError(
                    f"{path}: {part} is {array.shape[1]}x{array.shape[2]} (HxW) but colour is"
                    f" {channels[0].shape[1]}x{channels[0].shape[2]}"
                )
            channels.append(array)
        image = torch.from_numpy(np.ascontiguousarray(np.concatenate(channels)))
        label = shift_void_zero(
            read_mat(sample.label, "segmentation"), sample.label, len(NYUD_CLASSES)
        )
        return image, check_label(label, sample.label, self.num_classes, image.shape[1:])
