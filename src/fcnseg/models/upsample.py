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


def deconvolve(layer: nn.ConvTranspose2d, scores: torch.Tensor) -> torch.Tensor:
    """``layer(scores)``, in float32 when CPU autocast is on.

    oneDNN's bf16 backwards-strided convolution with a big kernel is many times slower than
    its float32 one where the channels are not a multiple of 4 (11 CamVid or 21 PASCAL
    classes; 12 and 16 are fast): on an AMX Xeon, the forward pass of FCN-32s's 64x64
    stride-32 ``upscore`` of 4 x 11 or 21 x 12 x 12 scores took 1.7-3.9 s in bf16 (across
    runs) against 0.07-0.12 s in float32, which made ``--amp bf16`` training of FCN-32s five
    to ten times slower per step than float32 (benchmarks/README.md); the 16x16 stride-8
    ``upscore8`` was 1.3-1.9 times slower in bf16. The score maps are small, so float32 costs
    little and keeps the scores at float32 precision.

    Args:
        layer: an upsampling deconvolution (``upscore``, ``upscore2``, ...).
        scores: N x K x h x w scores (float64 ones are cast to float32 under CPU autocast).

    Returns:
        N x K x H x W upsampled scores: float32 under CPU autocast; under CUDA autocast the
        autocast dtype, and without autocast ``layer``'s dtype, as ``layer(scores)``.
    """
    if scores.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return layer(scores.float())
    return layer(scores)
