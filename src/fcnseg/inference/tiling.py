"""Tiles for images too large to run whole, exact where the receptive field fits (section 3.1).

An FCN's output pixel depends only on the input pixels under its receptive field, so an image
can be cut into overlapping windows and each window's interior kept. The result is the
whole-image result exactly when two things hold:

- **the margin**: every kept pixel's dependencies lie inside its window (or beyond the image
  border, where the window's border is the image's). The geometry gives the receptive field
  of an output pixel, ``rf`` pixels centred on it; each backwards-strided convolution adds up
  to half its input stride on either side, depending on the pixel's phase (an output pixel
  reads the ``ceil(k/s)`` input cells nearest it, not a window centred on it). Those halves
  (16 + 8 + 4 for FCN-8s) sum to less than the coarsest stride, so
  ``margin = ceil((rf - 1) / 2) + stride`` bounds the reach.
- **the phase**: every window starts on a multiple of the net's total stride (32), so the
  pooling grids of the window and of the whole image coincide, and a window that ends at the
  image's end has the same ceil-mode edge cells as the whole image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from fcnseg.errors import FcnsegError


@dataclass(frozen=True)
class Span:
    """One tile along one axis: the window the net sees, and the part of its output kept."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def tile_margin(model: nn.Module) -> int:
    """Pixels of context a kept output pixel needs on each side (see the module docstring).

    A model without layers to read it from (an exported graph,
    :class:`fcnseg.inference.export.OnnxModel`) gives it as ``model.tiling["margin"]``.
    """
    recorded = getattr(model, "tiling", None)
    if recorded is not None:
        return int(recorded["margin"])
    margins = [
        math.ceil((fcn.output_geometry.receptive_field - 1) / 2) + _coarsest_stride(fcn)
        for fcn in _fcns(model)
    ]
    return max(margins)


def tile_alignment(model: nn.Module) -> int:
    """The stride window origins must be multiples of: the net's total (coarsest) stride
    (``model.tiling["alignment"]`` for a model that records it)."""
    recorded = getattr(model, "tiling", None)
    if recorded is not None:
        return int(recorded["alignment"])
    return math.lcm(*(_coarsest_stride(fcn) for fcn in _fcns(model)))


def tile_spans(length: int, tile: int, margin: int, alignment: int) -> list[Span]:
    """Windows of at most ``tile`` pixels covering ``length``; kept parts partition it.

    Each window starts on a multiple of ``alignment`` and keeps only pixels at least ``margin``
    from its borders, except at the image's own borders.

    Raises:
        FcnsegError: ``tile`` leaves no room to keep anything once margins are taken off.
    """
    if length <= tile:
        return [Span(0, length, 0, length)]
    if tile < 2 * margin + alignment:
        raise FcnsegError(
            f"tile {tile} is too small for this model: it needs at least "
            f"{2 * margin + alignment} pixels (a margin of {margin} on each side, from the "
            f"receptive field, and {alignment} for the stride)"
        )
    spans = []
    keep_start = 0
    while keep_start < length:
        start = max(0, keep_start - margin) // alignment * alignment
        stop = min(length, start + tile)
        keep_stop = length if stop == length else stop - margin
        spans.append(Span(start, stop, keep_start, keep_stop))
        keep_start = keep_stop
    return spans


def _fcns(model: nn.Module) -> list[nn.Module]:
    # An FCN, or a net of FCN streams (late fusion), or a wrapper around either.
    found = [m for m in model.modules() if hasattr(m, "output_geometry")]
    if not found:
        raise FcnsegError(
            f"{type(model).__name__} has no output geometry: tiling needs an FCN whose "
            "receptive field is known"
        )
    return found


def _coarsest_stride(fcn: nn.Module) -> int:
    strides = [geometry.stride for geometry in fcn.score_geometry.values()]
    stride = max(strides)
    if stride.denominator != 1:
        raise FcnsegError(f"{type(fcn).__name__}: stride {stride} is not a whole number")
    return int(stride)
