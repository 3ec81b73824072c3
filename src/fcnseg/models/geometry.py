"""Receptive fields, strides and offsets, composed layer by layer (section 3 of the paper).

Every feature map is described by where its cells sit in the input image: cell ``i`` has its
receptive field centred on input pixel ``stride * i + offset`` and ``receptive_field`` pixels wide.
A convolution or pooling layer with kernel ``k``, stride ``s`` and padding ``p`` composes as the
paper's rule ``f_ks o g_k's' = (f o g)_{k' + (k-1)s', ss'}``; its cell ``j`` looks at input cells
``s*j - p ... s*j - p + k - 1``, centred on ``s*j - p + (k-1)/2``. A backwards-strided convolution
(section 3.3) inverts that map. Crops that align two maps are the difference of their offsets in
cells: that is how Caffe's ``crop`` layers were derived (``coord_map.py``), and how every crop of
the FCN heads is derived here. No offset is typed in by hand.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from torch import nn


@dataclass(frozen=True)
class Layer:
    """The spatial footprint of one layer: kernel, stride, padding (square, as in the paper)."""

    kernel: int
    stride: int = 1
    padding: int = 0
    transposed: bool = False


@dataclass(frozen=True)
class Geometry:
    """Where the cells of a feature map sit in the input image."""

    receptive_field: Fraction = Fraction(1)
    stride: Fraction = Fraction(1)
    offset: Fraction = Fraction(0)

    def then(self, layer: Layer) -> Geometry:
        """The geometry of ``layer``'s output, given this geometry for its input."""
        k, s, p = layer.kernel, layer.stride, layer.padding
        if layer.transposed:
            # Input cell x lands on output cells s*x - p ... s*x - p + k - 1, centred on
            # s*x - p + (k-1)/2; an output cell sees ceil(k/s) input cells.
            stride = self.stride / s
            offset = self.offset + stride * (p - Fraction(k - 1, 2))
            field = self.receptive_field + (math.ceil(k / s) - 1) * self.stride
            return Geometry(field, stride, offset)
        field = self.receptive_field + (k - 1) * self.stride
        offset = self.offset + self.stride * (Fraction(k - 1, 2) - p)
        return Geometry(field, self.stride * s, offset)

    def through(self, layers: Iterable[Layer]) -> Geometry:
        """The geometry after a chain of layers."""
        geometry = self
        for layer in layers:
            geometry = geometry.then(layer)
        return geometry

    def crop_to(self, reference: Geometry) -> int:
        """Cells to drop from the start of this map so that it aligns with ``reference``.

        Raises:
            ValueError: if the maps have different strides or cannot be aligned by a whole,
                non-negative number of cells (the net is then mis-designed).
        """
        if self.stride != reference.stride:
            raise ValueError(f"cannot align stride {self.stride} with stride {reference.stride}")
        cells = (reference.offset - self.offset) / self.stride
        if cells.denominator != 1 or cells < 0:
            raise ValueError(
                f"offset {self.offset} cannot be cropped onto offset {reference.offset} "
                f"at stride {self.stride}"
            )
        return int(cells)


INPUT = Geometry()


def module_layers(module: nn.Module) -> list[Layer]:
    """The spatial layers of ``module``: its own footprint, or the chain it declares.

    Convolutions and poolings report their (kernel, stride, padding); modules made of
    branches (an inception module) declare the chain of their widest branch through a
    ``spatial_layers()`` method; everything else (ReLU, LRN, dropout) is pointwise.
    """
    if hasattr(module, "spatial_layers"):
        return list(module.spatial_layers())
    if isinstance(module, nn.ConvTranspose2d):
        return [
            Layer(
                _square(module.kernel_size),
                _square(module.stride),
                _square(module.padding),
                transposed=True,
            )
        ]
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        kernel = _square(module.kernel_size)
        if isinstance(module, nn.Conv2d):
            kernel = (kernel - 1) * _square(module.dilation) + 1
        return [Layer(kernel, _square(module.stride), _square(module.padding))]
    return []


def _square(value: int | tuple[int, ...]) -> int:
    if isinstance(value, int):
        return value
    if len(set(value)) != 1:
        raise ValueError(f"only square footprints are modelled, got {value}")
    return value[0]


def bilinear_kernel_size(factor: int, coarse: Geometry, target: Geometry) -> int:
    """Kernel of a backwards-strided convolution that upsamples ``coarse`` by ``factor`` onto
    the cells of ``target``.

    Bilinear upsampling by ``f`` wants a kernel of ``2f`` (the reference's 64 for 32x); when the
    coarse map's offset makes that land between the target's cells, the odd kernel ``2f - 1``
    centres it (the reference's 63 for AlexNet).
    """
    step = coarse.stride / factor
    for kernel in (2 * factor, 2 * factor - 1):
        shift = (coarse.offset - target.offset) / step - Fraction(kernel - 1, 2)
        if shift.denominator == 1:
            return kernel
    raise ValueError(f"no bilinear kernel aligns {coarse} onto {target} at factor {factor}")
