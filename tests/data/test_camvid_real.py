"""The real CamVid (SegNet's 11-class, 480x360 release) next to the repository."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnseg.data import CAMVID_INFO, build_dataset

CAMVID_ROOT = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "camvid").resolve()

pytestmark = pytest.mark.skipif(
    not (CAMVID_ROOT / "train.txt").is_file(), reason=f"real CamVid not found at {CAMVID_ROOT}"
)


def test_train_labels_on_disk_are_11_classes_and_void_11() -> None:
    values: set[int] = set()
    for line in (CAMVID_ROOT / "train.txt").read_text().split("\n"):
        if line:
            values.update(np.unique(np.asarray(Image.open(CAMVID_ROOT / line.split()[1]))))
    assert values <= set(range(12))


def test_train_split_reads_367_pairs_of_360x480_with_zero_mean() -> None:
    dataset = build_dataset("camvid", CAMVID_ROOT, "train")
    assert len(dataset) == 367 and dataset.info == CAMVID_INFO
    channel_sums = torch.zeros(3, dtype=torch.float64)
    for image, label in dataset:
        assert image.shape == (3, 360, 480) and label.shape == (360, 480)
        assert label.dtype == torch.int64
        valid = label[label != 255]
        assert valid.min() >= 0 and valid.max() <= 10
        channel_sums += image.double().sum(dim=(1, 2))
    # CAMVID_MEAN_BGR is the train mean, so mean-subtracted train images average to ~0.
    channel_means = channel_sums / (367 * 360 * 480)
    assert channel_means.abs().max() < 5e-3


def test_val_split_reads_101_pairs() -> None:
    dataset = build_dataset("camvid", CAMVID_ROOT, "val")
    assert len(dataset) == 101
    image, label = dataset[100]
    assert image.shape == (3, 360, 480) and label.shape == (360, 480)
