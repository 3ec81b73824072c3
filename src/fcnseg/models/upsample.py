"""In-network upsampling: backwards-strided convolution initialised to bilinear (section 3.3)."""

from __future__ import annotations

import torch
from torch import nn


def bilinear_filter(size: int) -> torch.Tensor:
    """A ``size x size`` bilinear interpolation kernel, as the reference's ``upsample_filt``."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    grid = torch.arange(size, dtype=torch.float64, device="cpu")
    profile = 1 - (grid - center).abs() / factor
    return (profile[:, None] * profile[None, :]).float()


def bilinear_upsampling(
    channels: int, kernel: int, stride: int, *, learnable: bool
) -> nn.ConvTranspose2d:
    """A bias-free deconvolution that upsamples each channel on its own, bilinearly.

    Only the diagonal (class c to class c) is filled, so classes do not mix at the start;
    learnable layers may learn to mix them (section 4.2), the final one stays fixed (4.3).
    """
    layer = nn.ConvTranspose2d(channels, channels, kernel, stride=stride, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        diagonal = torch.arange(channels, device="cpu")  # on the CPU under any device context
        layer.weight[diagonal, diagonal] = bilinear_filter(kernel)
    layer.weight.requires_grad_(learnable)
    return layer
