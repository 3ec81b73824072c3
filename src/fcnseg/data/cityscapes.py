"""Cityscapes urban scenes, 19 train classes at 2048x1024, in the dataset's own layout."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from fcnseg.convention import caffe_convention
from fcnseg.errors import FcnsegError

from ._reading import check_label, read_index_png, read_rgb, require_dir, require_files
from .dataset import DatasetInfo, JointTransform, Sample, SegmentationDataset
from .palettes import VOID


class CityscapesLabel(NamedTuple):
    """One row of the official label table.

    Attributes:
        name: The label's name, e.g. "traffic sign".
        id: The value stored in `*_labelIds.png` and expected by the official evaluation; -1
            for the license plate, which is never drawn in the label images.
        train_id: The class index trained on, 0-18, or 255 (void) for labels the benchmark
            ignores (the official table's -1 of the license plate is void too).
        category: The label's category, e.g. "vehicle".
        color: Its RGB colour.
    """

    name: str
    id: int
    train_id: int
    category: str
    color: tuple[int, int, int]


# The label table of cityscapesScripts (cityscapesscripts/helpers/labels.py): name, id, trainId,
# category and colour of every label, written once here. The license plate's trainId is -1
# there; it is void (255) here, as every other ignored label.
CITYSCAPES_LABELS = (
    CityscapesLabel("unlabeled", 0, VOID, "void", (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, VOID, "void", (0, 0, 0)),
    CityscapesLabel("rectification border", 2, VOID, "void", (0, 0, 0)),
    CityscapesLabel("out of roi", 3, VOID, "void", (0, 0, 0)),
    CityscapesLabel("static", 4, VOID, "void", (0, 0, 0)),
    CityscapesLabel("dynamic", 5, VOID, "void", (111, 74, 0)),
    CityscapesLabel("ground", 6, VOID, "void", (81, 0, 81)),
    CityscapesLabel("road", 7, 0, "flat", (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, "flat", (244, 35, 232)),
    CityscapesLabel("parking", 9, VOID, "flat", (250, 170, 160)),
    CityscapesLabel("rail track", 10, VOID, "flat", (230, 150, 140)),
    CityscapesLabel("building", 11, 2, "construction", (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, "construction", (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, "construction", (190, 153, 153)),
    CityscapesLabel("guard rail", 14, VOID, "construction", (180, 165, 180)),
    CityscapesLabel("bridge", 15, VOID, "construction", (150, 100, 100)),
    CityscapesLabel("tunnel", 16, VOID, "construction", (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, "object", (153, 153, 153)),
    CityscapesLabel("polegroup", 18, VOID, "object", (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, "object", (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, "object", (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, "nature", (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, "nature", (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, "sky", (70, 130, 180)),
    CityscapesLabel("person", 24, 11, "human", (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, "human", (255, 0, 0)),
    CityscapesLabel("car", 26, 13, "vehicle", (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, "vehicle", (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, "vehicle", (0, 60, 100)),
    CityscapesLabel("caravan", 29, VOID, "vehicle", (0, 0, 90)),
    CityscapesLabel("trailer", 30, VOID, "vehicle", (0, 0, 110)),
    CityscapesLabel("train", 31, 16, "vehicle", (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, "vehicle", (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, "vehicle", (119, 11, 32)),
    CityscapesLabel("license plate", -1, VOID, "vehicle", (0, 0, 142)),
)

_TRAINED = sorted(
    (label for label in CITYSCAPES_LABELS if label.train_id != VOID), key=lambda x: x.train_id
)

# The 19 classes in train-id order, and their colours.
CITYSCAPES_CLASSES = tuple(label.name for label in _TRAINED)
CITYSCAPES_PALETTE = tuple(label.color for label in _TRAINED)

# The ImageNet mean that mmsegmentation's Cityscapes and ADE20K configs subtract
# (img_norm_cfg mean 123.675, 116.28, 103.53 in RGB, i.e. 255 x torchvision's 0.485, 0.456,
# 0.406), here in BGR on the 0-255 scale; not computed over Cityscapes. No std is divided by.
CITYSCAPES_MEAN_BGR = (103.53, 116.28, 123.675)

CITYSCAPES_INFO = DatasetInfo(
    name="cityscapes",
    class_names=CITYSCAPES_CLASSES,
    palette=CITYSCAPES_PALETTE,
    convention=caffe_convention(CITYSCAPES_MEAN_BGR),
)

# The values a *_labelIds.png holds: the ids 0-33 (the license plate, -1, is never drawn).
_MAX_LABEL_ID = max(label.id for label in CITYSCAPES_LABELS)
# id + 1 -> train id, so that the license plate's -1 has a slot too.
_ID_TO_TRAIN_ID = np.full(_MAX_LABEL_ID + 2, VOID, dtype=np.int64)
for _label in CITYSCAPES_LABELS:
    _ID_TO_TRAIN_ID[_label.id + 1] = _label.train_id
# train id -> the id of the first label with it, as cityscapesScripts' trainId2label.
_TRAIN_ID_TO_ID = np.asarray([label.id for label in _TRAINED], dtype=np.uint8)

ANNOTATIONS = {"fine": "gtFine", "coarse": "gtCoarse"}


def cityscapes_train_ids(label_ids: np.ndarray | torch.Tensor) -> np.ndarray:
    """Maps Cityscapes label ids to train ids by the official table.

    Args:
        label_ids: Label ids -1 to 33, as `*_labelIds.png` stores them (-1, the license plate,
            is accepted although the label images never hold it).

    Returns:
        An int64 array of the same shape: the 19 classes 0-18, every ignored label 255.

    Raises:
        FcnsegError: a value is not a label id.
    """
    ids = _as_int64(label_ids)
    bad = (ids < -1) | (ids > _MAX_LABEL_ID)
    if bad.any():
        raise FcnsegError(
            f"label value {ids[bad].flat[0]} is not a Cityscapes label id (-1 to {_MAX_LABEL_ID})"
        )
    return _ID_TO_TRAIN_ID[ids + 1]


def cityscapes_label_ids(train_ids: np.ndarray | torch.Tensor) -> np.ndarray:
    """Maps predicted train ids back to label ids, for the official evaluation.

    cityscapesScripts' `evalPixelLevelSemanticLabeling.py` expects predictions as
    `*_labelIds.png`-like images of label ids, e.g.
    `Image.fromarray(cityscapes_label_ids(prediction)).save(f"{name}.png")`.

    Args:
        train_ids: Classes 0-18; void (255), which a model does not predict, is written as
            0 ("unlabeled").

    Returns:
        A uint8 array of label ids, the same shape.

    Raises:
        FcnsegError: a value is neither a train id 0-18 nor 255.
    """
    ids = _as_int64(train_ids)
    void = ids == VOID
    bad = ((ids < 0) | (ids >= len(_TRAINED))) & ~void
    if bad.any():
        raise FcnsegError(
            f"value {ids[bad].flat[0]} is neither a Cityscapes train id 0-{len(_TRAINED) - 1}"
            f" nor void {VOID}"
        )
    return np.where(void, 0, _TRAIN_ID_TO_ID[np.where(void, 0, ids)]).astype(np.uint8)


def _as_int64(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values).astype(np.int64)


class CityscapesDataset(SegmentationDataset):
    """Cityscapes as its packages unpack, with the 19 classes of the benchmark.

    Layout under root: `leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png` and
    `gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png` (leftImg8bit_trainvaltest
    and gtFine_trainvaltest); with `annotation="coarse"`, `gtCoarse/<split>/<city>/
    ..._gtCoarse_labelIds.png` (gtCoarse), whose `train_extra` split has its images in
    `leftImg8bit/train_extra` (leftImg8bit_trainextra). Label ids 0-33 map to train ids by the
    official table (`CITYSCAPES_LABELS`), every ignored id to void 255; a
    `..._labelTrainIds.png` beside the label ids file (written by cityscapesScripts'
    `createTrainIdLabelImgs.py`) is read instead, as train ids 0-18 and 255.

    The splits are the dataset's: train (2975 images), val (500) and test (1525, whose public
    labels are blank) for gtFine; train, train_extra (19998) and val for gtCoarse.

    Args:
        root: The folder holding leftImg8bit/ and gtFine/ (or gtCoarse/).
        split: train, val, test; or train, train_extra, val with coarse annotation.
        annotation: "fine" (gtFine) or "coarse" (gtCoarse).
        transform: Joint transform applied to each (image, label).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        annotation: str = "fine",
        transform: JointTransform | None = None,
    ):
        if annotation not in ANNOTATIONS:
            raise FcnsegError(
                f"Cityscapes annotation '{annotation}' unknown (choices: {', '.join(ANNOTATIONS)})"
            )
        root = require_dir(Path(root), "Cityscapes")
        images = require_dir(root / "leftImg8bit", "Cityscapes leftImg8bit")
        kind = ANNOTATIONS[annotation]
        labels = require_dir(root / kind, f"Cityscapes {kind}")
        if not (images / split).is_dir():
            splits = sorted(p.name for p in images.iterdir() if p.is_dir())
            raise FcnsegError(
                f"{images / split}: no such split (available: {', '.join(splits) or 'none'})"
            )
        labels = require_dir(labels / split, f"Cityscapes {kind} {split}")
        files = sorted((images / split).glob("*/*_leftImg8bit.png"))
        if not files:
            raise FcnsegError(f"{images / split}: no <city>/*_leftImg8bit.png images")
        samples = []
        for path in files:
            name = path.name[: -len("_leftImg8bit.png")]
            folder = labels / path.parent.name
            train_ids = folder / f"{name}_{kind}_labelTrainIds.png"
            label = train_ids if train_ids.is_file() else folder / f"{name}_{kind}_labelIds.png"
            samples.append(Sample(name, path, label))
        require_files([s.label for s in samples], f"Cityscapes {kind} {split} label")
        super().__init__(CITYSCAPES_INFO, samples, transform)

    def read(self, sample: Sample) -> tuple[np.ndarray, torch.Tensor]:
        image = read_rgb(sample.image)
        label = read_index_png(sample.label)
        if not sample.label.name.endswith("_labelTrainIds.png"):
            bad = label > _MAX_LABEL_ID
            if bad.any():
                raise FcnsegError(
                    f"{sample.label}: label value {label[bad].flat[0]} is not a Cityscapes"
                    f" label id 0-{_MAX_LABEL_ID}"
                )
            label = cityscapes_train_ids(label)
        return image, check_label(label, sample.label, self.num_classes, image.shape[:2])
