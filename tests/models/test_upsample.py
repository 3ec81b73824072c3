"""The bilinear kernel against the reference's ``upsample_filt`` (fcn.berkeleyvision.org's
surgery.py), which numpy computes in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnseg.models.upsample import bilinear_filter, bilinear_upsampling


def upsample_filt(size: int) -> np.ndarray:
    """surgery.upsample_filt, as published."""
    factor = (size + 1) // 2
    if size % 2 == 1:  # noqa: SIM108 - as published
        center = factor - 1
    else:
        center = factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


@pytest.mark.parametrize("size", [*range(1, 17), 63, 64])
def test_kernel_is_the_references_rounded_once_to_float32(size: int) -> None:
    kernel = bilinear_filter(size)
    assert kernel.dtype == torch.float32
    # computed in float64 and rounded once, as the reference's weights were stored
    assert torch.equal(kernel, torch.from_numpy(upsample_filt(size)).float())


def test_upsampling_layer_has_no_bias_and_one_kernel_per_class() -> None:
    layer = bilinear_upsampling(3, 4, 2, learnable=False)
    assert layer.bias is None and not layer.weight.requires_grad
    for i in range(3):
        for j in range(3):
            expected = bilinear_filter(4) if i == j else torch.zeros(4, 4)
            assert torch.equal(layer.weight[i, j], expected)
