"""The dataset type every reader returns: (image, label) pairs in an input convention."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fcnseg.convention import InputConvention

from .palettes import VOID

JointTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know to be fed a dataset and to show its predictions.

    Attributes:
        name: Dataset name as in `fcnseg.data.list_datasets()`.
        class_names: One name per class index.
        palette: One RGB colour per class index, for drawing labels.
        convention: The dataset's own input convention: Caffe's (BGR, 0-255) minus the mean
            the reference subtracts for it; a net trained on the dataset by fcnseg expects it.
        ignore_index: The void label, ignored by the loss and the metrics.
    """

    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    convention: InputConvention
    ignore_index: int = VOID

    @property
    def num_classes(self) -> int:
        """Number of classes, void excluded."""
        return len(self.class_names)


@dataclass(frozen=True)
class Sample:
    """One image of a split and its label file.

    Attributes:
        name: The sample id as the split file gives it (for naming predictions).
        image: The image file.
        label: The label file.
    """

    name: str
    image: Path
    label: Path


class SegmentationDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A list of samples read one at a time, at their own size.

    Item i is `(image, label)`: image a float32 tensor C x H x W, the raw pixels the reader
    gives (`read`) fed through `convention` (`InputConvention.preprocess`), label an int64
    tensor H x W of class indices with void 255; then `transform`, if any, is applied to the
    pair. Padding an image with 0 pads it with the convention's mean pixel.

    Attributes:
        info: Class names, palette, the dataset's own convention and void index.
        samples: The split's samples, in split-file order.
        transform: A joint transform of (image, label), e.g. `fcnseg.data.transforms.Compose`.
        convention: The input convention images are fed in: `info.convention` unless set to
            the one a model's weights declare (`build_dataset(..., convention=)`).
    """

    def __init__(
        self, info: DatasetInfo, samples: list[Sample], transform: JointTransform | None = None
    ) -> None:
        self.info = info
        self.samples = samples
        self.transform = transform
        self.convention = info.convention

    @property
    def num_classes(self) -> int:
        """Number of classes, void excluded."""
        return self.info.num_classes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        raw, label = self.read(self.samples[index])
        image = self.convention.preprocess(raw)
        if self.transform is not None:
            image, label = self.transform(image, label)
        return image, label

    def read(self, sample: Sample) -> tuple[np.ndarray, torch.Tensor]:
        """One sample as raw pixels H x W x C (colour RGB 0-255, then extra channels) and its
        label, untransformed; each dataset defines it."""
        raise NotImplementedError
