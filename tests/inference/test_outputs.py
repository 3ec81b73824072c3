"""The overlay's legend: one row per class present, by share of the pixels, largest first."""

from __future__ import annotations

import numpy as np

from fcnseg.inference.outputs import _share, legend_overlay


def test_a_class_on_a_few_pixels_is_not_called_zero_percent() -> None:
    assert [_share(n, 10_000) for n in (5000, 5, 4, 1)] == ["50.0%", "0.1%", "<0.1%", "<0.1%"]


def test_the_legend_has_a_swatch_for_each_class_present() -> None:
    """Classes absent from the labels get no row, a class on one pixel of 10,000 does."""
    rgb = np.zeros((100, 100, 3), np.uint8)
    palette = [(128, 0, 0), (0, 128, 0), (0, 0, 128)]
    two = np.zeros((100, 100), np.int64)
    two[0, 0] = 2  # 0.01% of the pixels
    blended = np.asarray(legend_overlay(rgb, two, palette, ["a", "b", "c"], 0.5))
    # the legend's swatches: class a's and c's colours appear in the panel, b's does not
    panel = blended[:, 100:].reshape(-1, 3)
    colours = {tuple(c) for c in np.unique(panel, axis=0)}
    assert (128, 0, 0) in colours and (0, 0, 128) in colours and (0, 128, 0) not in colours
