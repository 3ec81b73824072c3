"""Median frequency balancing against numpy's median (Eigen & Fergus, ICCV 2015)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_runs import tiny_config

from fcnseg.errors import FcnsegError
from fcnseg.train.data import class_weights_for
from fcnseg.train.loss import median_frequency_weights


@pytest.mark.parametrize(
    ("frequencies", "expected"),
    [
        # even count: the median is (0.3 + 0.45) / 2 = 0.375, not the lower 0.3
        ((0.45, 0.3, 0.5, 0.3), (0.8333333, 1.25, 0.75, 1.25)),
        # odd count: the middle value 0.3
        ((0.6, 0.3, 0.1), (0.5, 1.0, 3.0)),
    ],
)
def test_hand_examples(frequencies: tuple[float, ...], expected: tuple[float, ...]) -> None:
    pixels = torch.tensor([round(f * 1000) for f in frequencies], dtype=torch.float64)
    counts = torch.stack([pixels, torch.full_like(pixels, 1000)])
    weights = median_frequency_weights(counts)
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("num_classes", [40, 59, 60, 11])
def test_equals_numpy_median_for_even_and_odd_counts(num_classes: int) -> None:
    rng = np.random.default_rng(num_classes)
    class_pixels = rng.integers(1, 10_000, num_classes).astype(np.float64)
    image_pixels = class_pixels + rng.integers(1, 50_000, num_classes)
    class_pixels[3] = 0  # a class never seen: weight 0, left out of the median
    counts = torch.from_numpy(np.stack([class_pixels, image_pixels]))
    freq = class_pixels / image_pixels
    present = class_pixels > 0
    expected = np.where(present, np.median(freq[present]) / np.where(present, freq, 1), 0.0)
    np.testing.assert_allclose(median_frequency_weights(counts).numpy(), expected, rtol=1e-6)


def test_a_power_that_overflows_the_weights_is_refused_in_one_line(tiny_data) -> None:
    # benchmarks/camvid.py --median-frequency-power 1e6 once trained on weights of inf
    train, _ = tiny_data
    mild = class_weights_for(tiny_config(median_frequency=True), train, train.info)
    assert mild is not None and mild.isfinite().all()
    squared = class_weights_for(
        tiny_config(median_frequency=True, median_frequency_power=2.0), train, train.info
    )
    assert squared is not None and torch.allclose(squared, mild**2)
    with pytest.raises(FcnsegError, match=r"to the power 1e\+06 are not finite"):
        class_weights_for(
            tiny_config(median_frequency=True, median_frequency_power=1e6), train, train.info
        )
