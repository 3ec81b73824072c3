"""The dataset type every reader returns: (image, label) pairs in the Caffe convention."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .convention import DatasetInfo

JointTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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

    Item i is `(image, label)`: image a float32 tensor C x H x W (BGR, 0-255, minus
    `info.mean_bgr`), label an int64 tensor H x W of class indices with void 255; then
    `transform`, if any, is applied to the pair.

    Attributes:
        info: Class names, palette, mean and void index.
        samples: The split's samples, in split-file order.
        transform: A joint transform of (image, label), e.g. `fcnseg.data.transforms.Compose`.
    """

    def __init__(
        self, info: DatasetInfo, samples: list[Sample], transform: JointTransform | None = None
    ) -> None:
        self.info = info
        self.samples = samples
        self.transform = transform

    @property
    def num_classes(self) -> int:
        """Number of classes, void excluded."""
        return self.info.num_classes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.read(self.samples[index])
        if self.transform is not None:
            image, label = self.transform(image, label)
        return image, label

    def read(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        """Reads one sample, untransformed; each dataset defines it."""
        raise NotImplementedError
