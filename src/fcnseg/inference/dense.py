"""Dense output from a coarse net without upsampling: shift-and-stitch is filter rarefaction.

Section 3.2: a net whose output is subsampled by ``f`` gives dense output when run on the
``f x f`` shifted copies of its input, its outputs interlaced (OverFeat's trick). The same
dense output comes from one pass of a modified net: each strided layer's stride set to 1
and every later filter *rarefied*, ``f'_ij = f_{i/s, j/s}`` if ``s`` divides ``i`` and ``j``,
else 0, which is a convolution (or pooling) dilated by ``s``. Both cost far more than the
in-network upsampling of section 3.3 that the FCNs use (``benchmarks/inference.py``).

Both work on chains of layers (an ``nn.Sequential`` of ``Conv2d``, ``MaxPool2d`` and
pointwise layers). They agree exactly on unpadded chains with floor-mode pooling; zero padding
makes them differ within the padding's reach of the border (a shifted copy is padded at its
own border, the rarefied net at the image's), and a ceil-mode pooling adds edge cells to the
shifted copies that the rarefied net does not have.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from fcnseg.errors import FcnsegError

# Layers that act on each position on its own: rarefaction leaves them as they are.
_POINTWISE = (nn.ReLU, nn.Dropout, nn.Identity, nn.BatchNorm2d, nn.LocalResponseNorm)


def total_stride(net: nn.Sequential) -> int:
    """The factor by which ``net`` subsamples its input: the product of its strides."""
    stride = 1
    for layer in net:
        stride *= _stride(layer)
    return stride


def shift_and_stitch(net: nn.Sequential, x: torch.Tensor, f: int) -> torch.Tensor:
    """``net``'s dense output by running it on ``f x f`` shifted inputs and interlacing.

    The copy shifted by ``(dy, dx)`` drops the first ``dy`` rows and ``dx`` columns (the
    paper pads on the left instead, shifting the other way: the same ``f**2`` inputs up to
    which border the shift falls off); its output cell ``(i, j)`` is the dense output at
    ``(f*i + dy, f*j + dx)``.

    Args:
        net: a chain of layers whose strides multiply to ``f``.
        x: N x C x H x W input.
        f: the net's output stride.

    Returns:
        N x K x H' x W' output, one cell per input position the net's window fits at.
    """
    if f != total_stride(net):
        raise FcnsegError(f"f={f}, but the net subsamples by {total_stride(net)}")
    outputs = {
        (dy, dx): net(x[:, :, dy:, dx:]) for dy in range(f) for dx in range(f)
    }  # (f*f) × N×K×~(H-dy)/f×~(W-dx)/f
    height = max(dy + f * (out.shape[-2] - 1) + 1 for (dy, _), out in outputs.items())
    width = max(dx + f * (out.shape[-1] - 1) + 1 for (_, dx), out in outputs.items())
    first = outputs[(0, 0)]
    dense = first.new_zeros(*first.shape[:2], height, width)
    for (dy, dx), out in outputs.items():
        dense[:, :, dy::f, dx::f] = out
    return dense


def rarefy(net: nn.Sequential) -> nn.Sequential:
    """``net`` with every stride removed and every later filter rarefied (dilated).

    Returns:
        A new chain computing ``shift_and_stitch(net, x, total_stride(net))`` in one pass.
    """
    layers = []
    dilation = 1  # product of the strides removed so far
    for layer in net:
        layer = copy.deepcopy(layer)
        stride = _stride(layer)
        if isinstance(layer, nn.Conv2d):
            layer.dilation = tuple(d * dilation for d in layer.dilation)
            layer.padding = tuple(p * dilation for p in pair(layer.padding))
            layer.stride = (1, 1)
        elif isinstance(layer, nn.MaxPool2d):
            kernel = pair(layer.kernel_size)
            layer = nn.MaxPool2d(
                kernel,
                stride=1,
                padding=tuple(p * dilation for p in pair(layer.padding)),
                dilation=tuple(d * dilation for d in pair(layer.dilation)),
            )
        layers.append(layer)
        dilation *= stride
    return nn.Sequential(*layers)


def rarefied_filter(weight: torch.Tensor, s: int) -> torch.Tensor:
    """The paper's rule written out: ``f'_ij = f_{i/s, j/s}`` if ``s`` divides ``i`` and ``j``,
    else 0, for an ``O x I x k x k`` weight; a ``(k-1)s+1`` kernel, mostly zeros."""
    out_channels, in_channels, height, width = weight.shape
    sparse = weight.new_zeros(out_channels, in_channels, (height - 1) * s + 1, (width - 1) * s + 1)
    sparse[:, :, ::s, ::s] = weight
    return sparse


def _stride(layer: nn.Module) -> int:
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
        if isinstance(layer, nn.Conv2d) and layer.padding_mode != "zeros":
            raise FcnsegError(f"{layer}: only zero-padded convolutions can be rarefied")
        stride = pair(layer.stride)
        if stride[0] != stride[1]:
            raise FcnsegError(f"{layer}: only square strides are modelled")
        return stride[0]
    if isinstance(layer, _POINTWISE):
        return 1
    raise FcnsegError(
        f"{type(layer).__name__}: shift-and-stitch and rarefaction take chains of Conv2d, "
        "MaxPool2d and pointwise layers"
    )


def pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    """A layer's size setting (kernel, stride, padding, dilation) as (height, width)."""
    return (value, value) if isinstance(value, int) else (value[0], value[1])


def fcn32s_score_chain(fcn: nn.Module) -> nn.Sequential:
    """An FCN-32s's layers up to its coarse scores (trunk, ``score_fr``) as one chain."""
    if getattr(fcn, "skips", None) or not hasattr(fcn, "trunk"):
        raise FcnsegError("the score chain is defined for FCN-32s nets (no skips)")
    head = next(name for name in ("score_fr", "score_fr_sem") if hasattr(fcn, name))
    layers = [fcn.get_submodule(name) for name in fcn.trunk] + [fcn.get_submodule(head)]
    return nn.Sequential(*layers)
