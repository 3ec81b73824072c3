"""ADE20K as the MIT Scene Parsing Benchmark (ADEChallengeData2016): 150 classes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnseg.convention import caffe_convention
from fcnseg.errors import FcnsegError

from ._reading import check_label, read_index_png, read_rgb, require_dir, require_files
from .dataset import DatasetInfo, JointTransform, Sample, SegmentationDataset
from .palettes import VOID

# The 150 classes of the benchmark, annotation values 1-150 in order, by the first name of each
# in the devkit's objectInfo150.csv, as mmsegmentation's ADE20KDataset names them.
ADE20K_CLASSES = (
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest of drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool table",
    "pillow",
    "screen door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen island",
    "computer",
    "swivel chair",
    "boat",
    "bar",
    "arcade machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television receiver",
    "airplane",
    "dirt track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer belt",
    "canopy",
    "washer",
    "plaything",
    "swimming pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt screen",
    "plate",
    "monitor",
    "bulletin board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
)

# mmsegmentation's colours for them (road and skyscraper share (140, 140, 140) there).
ADE20K_PALETTE = (
    (120, 120, 120),
    (180, 120, 120),
    (6, 230, 230),
    (80, 50, 50),
    (4, 200, 3),
    (120, 120, 80),
    (140, 140, 140),
    (204, 5, 255),
    (230, 230, 230),
    (4, 250, 7),
    (224, 5, 255),
    (235, 255, 7),
    (150, 5, 61),
    (120, 120, 70),
    (8, 255, 51),
    (255, 6, 82),
    (143, 255, 140),
    (204, 255, 4),
    (255, 51, 7),
    (204, 70, 3),
    (0, 102, 200),
    (61, 230, 250),
    (255, 6, 51),
    (11, 102, 255),
    (255, 7, 71),
    (255, 9, 224),
    (9, 7, 230),
    (220, 220, 220),
    (255, 9, 92),
    (112, 9, 255),
    (8, 255, 214),
    (7, 255, 224),
    (255, 184, 6),
    (10, 255, 71),
    (255, 41, 10),
    (7, 255, 255),
    (224, 255, 8),
    (102, 8, 255),
    (255, 61, 6),
    (255, 194, 7),
    (255, 122, 8),
    (0, 255, 20),
    (255, 8, 41),
    (255, 5, 153),
    (6, 51, 255),
    (235, 12, 255),
    (160, 150, 20),
    (0, 163, 255),
    (140, 140, 140),
    (250, 10, 15),
    (20, 255, 0),
    (31, 255, 0),
    (255, 31, 0),
    (255, 224, 0),
    (153, 255, 0),
    (0, 0, 255),
    (255, 71, 0),
    (0, 235, 255),
    (0, 173, 255),
    (31, 0, 255),
    (11, 200, 200),
    (255, 82, 0),
    (0, 255, 245),
    (0, 61, 255),
    (0, 255, 112),
    (0, 255, 133),
    (255, 0, 0),
    (255, 163, 0),
    (255, 102, 0),
    (194, 255, 0),
    (0, 143, 255),
    (51, 255, 0),
    (0, 82, 255),
    (0, 255, 41),
    (0, 255, 173),
    (10, 0, 255),
    (173, 255, 0),
    (0, 255, 153),
    (255, 92, 0),
    (255, 0, 255),
    (255, 0, 245),
    (255, 0, 102),
    (255, 173, 0),
    (255, 0, 20),
    (255, 184, 184),
    (0, 31, 255),
    (0, 255, 61),
    (0, 71, 255),
    (255, 0, 204),
    (0, 255, 194),
    (0, 255, 82),
    (0, 10, 255),
    (0, 112, 255),
    (51, 0, 255),
    (0, 194, 255),
    (0, 122, 255),
    (0, 255, 163),
    (255, 153, 0),
    (0, 255, 10),
    (255, 112, 0),
    (143, 255, 0),
    (82, 0, 255),
    (163, 255, 0),
    (255, 235, 0),
    (8, 184, 170),
    (133, 0, 255),
    (0, 255, 92),
    (184, 0, 255),
    (255, 0, 31),
    (0, 184, 255),
    (0, 214, 255),
    (255, 0, 112),
    (92, 255, 0),
    (0, 224, 255),
    (112, 224, 255),
    (70, 184, 160),
    (163, 0, 255),
    (153, 0, 255),
    (71, 255, 0),
    (255, 0, 163),
    (255, 204, 0),
    (255, 0, 143),
    (0, 255, 235),
    (133, 255, 0),
    (255, 0, 235),
    (245, 0, 255),
    (255, 0, 122),
    (255, 245, 0),
    (10, 190, 212),
    (214, 255, 0),
    (0, 204, 255),
    (20, 0, 255),
    (255, 255, 0),
    (0, 153, 255),
    (0, 41, 255),
    (0, 255, 204),
    (41, 0, 255),
    (41, 255, 0),
    (173, 0, 255),
    (0, 245, 255),
    (71, 0, 255),
    (122, 0, 255),
    (0, 255, 184),
    (0, 92, 255),
    (184, 255, 0),
    (0, 133, 255),
    (255, 214, 0),
    (25, 194, 194),
    (102, 255, 0),
    (92, 0, 255),
)

# The ImageNet mean that mmsegmentation's ADE20K configs subtract (img_norm_cfg mean 123.675,
# 116.28, 103.53 in RGB), here in BGR on the 0-255 scale; not computed over ADE20K. No std is
# divided by.
ADE20K_MEAN_BGR = (103.53, 116.28, 123.675)

ADE20K_INFO = DatasetInfo(
    name="ade20k",
    class_names=ADE20K_CLASSES,
    palette=ADE20K_PALETTE,
    convention=caffe_convention(ADE20K_MEAN_BGR),
)

# Split names as the folders have them, and the short names of the other readers.
ADE20K_SPLITS = {
    "training": "training",
    "validation": "validation",
    "train": "training",
    "val": "validation",
}

ADE20K_SCORE = "ade_score"


def ade20k_labels(raw: np.ndarray) -> np.ndarray:
    """Maps annotation values to classes: 0 ("other objects") to void 255, 1-150 to 0-149.

    mmsegmentation's `reduce_zero_label`, done in int64 so that a value above 150 is reported
    instead of wrapping.

    Raises:
        FcnsegError: a value outside 0-150.
    """
    raw = np.asarray(raw).astype(np.int64)
    bad = (raw < 0) | (raw > len(ADE20K_CLASSES))
    if bad.any():
        raise FcnsegError(
            f"label value {raw[bad].flat[0]} outside 0-{len(ADE20K_CLASSES)}"
            f" (0 other, 1-{len(ADE20K_CLASSES)} classes)"
        )
    return np.where(raw == 0, VOID, raw - 1)


def ade20k_score(metrics: Mapping[str, Any] | np.ndarray | torch.Tensor) -> float:
    """The benchmark's score, (pixel accuracy + mean IU) / 2.

    Args:
        metrics: The metrics `fcnseg eval` computes (or its `metrics.json`), with
            `pixel_acc` and `mean_iu`; or a K x K confusion matrix, rows the ground truth and
            columns the prediction, from which both are computed as the four metrics are
            (mean IU over the classes present in the ground truth or the prediction; over the
            whole validation set every class is present, so this is also the devkit's mean).

    Returns:
        The score in 0-1; NaN when nothing was counted.
    """
    if isinstance(metrics, Mapping):
        pixel_acc, mean_iu = metrics["pixel_acc"], metrics["mean_iu"]
        if pixel_acc is None or mean_iu is None:  # metrics.json writes NaN as null
            return float("nan")
        return (float(pixel_acc) + float(mean_iu)) / 2
    if isinstance(metrics, torch.Tensor):
        metrics = metrics.detach().cpu().numpy()
    hist = np.asarray(metrics, dtype=np.float64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1]:
        raise ValueError(f"expected a K x K confusion matrix, got shape {hist.shape}")
    total = hist.sum()
    if total == 0:
        return float("nan")
    diag = np.diag(hist)
    union = hist.sum(0) + hist.sum(1) - diag
    present = union > 0
    return float((diag.sum() / total + np.mean(diag[present] / union[present])) / 2)


def ade20k_score_text(dataset: str, metrics: Mapping[str, Any]) -> str:
    """The line `fcnseg eval` prints under the metrics table of ADE20K, or "" for another
    dataset; aligned with `fcnseg.evaluate.format_table`'s lines."""
    if dataset != ADE20K_INFO.name:
        return ""
    width = max(len("class"), *(len(name) for name in ADE20K_CLASSES))
    score = ade20k_score(metrics)
    value = f"{'n/a':>6}" if np.isnan(score) else f"{100 * score:6.2f}"
    return f"{ADE20K_SCORE:<{width}}  {value}  ((pixel_acc + mean_iu) / 2)\n"


class ADE20KDataset(SegmentationDataset):
    """ADE20K's scene parsing benchmark, from the `ADEChallengeData2016` folder.

    Layout: `images/training/ADE_train_<n>.jpg` with `annotations/training/ADE_train_<n>.png`
    (20210 images), `images/validation/ADE_val_<n>.jpg` with `annotations/validation/...png`
    (2000). The annotations are single-channel PNGs, 0 "other objects" and 1-150 the classes;
    0 becomes void 255 and 1-150 the classes 0-149 (mmsegmentation's `reduce_zero_label`).
    Every image of the split's folder is read, in file name order.

    Args:
        root: The `ADEChallengeData2016` folder.
        split: training or validation (train and val name them too).
        transform: Joint transform applied to each (image, label).
    """

    def __init__(self, root: str | Path, split: str, *, transform: JointTransform | None = None):
        root = require_dir(Path(root), "ADE20K")
        images = require_dir(root / "images", "ADE20K images")
        annotations = require_dir(root / "annotations", "ADE20K annotations")
        if split not in ADE20K_SPLITS:
            raise FcnsegError(
                f"{images / split}: no such ADE20K split (choices: {', '.join(ADE20K_SPLITS)})"
            )
        folder = ADE20K_SPLITS[split]
        base = require_dir(images / folder, f"ADE20K {folder} images")
        labels = require_dir(annotations / folder, f"ADE20K {folder} annotations")
        files = sorted(base.glob("*.jpg"))
        if not files:
            raise FcnsegError(f"{base}: no .jpg images")
        samples = [Sample(path.stem, path, labels / f"{path.stem}.png") for path in files]
        require_files([s.label for s in samples], f"ADE20K {folder} annotation")
        super().__init__(ADE20K_INFO, samples, transform)

    def read(self, sample: Sample) -> tuple[np.ndarray, torch.Tensor]:
        image = read_rgb(sample.image)
        raw = read_index_png(sample.label)
        try:
            label = ade20k_labels(raw)
        except FcnsegError as error:
            raise FcnsegError(f"{sample.label}: {error}") from None
        return image, check_label(label, sample.label, self.num_classes, image.shape[:2])
