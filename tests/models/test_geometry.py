"""Geometry's corner cases: a padded backwards convolution, crops that cannot be made."""

from __future__ import annotations

from fractions import Fraction

import pytest
from torch import nn

from fcnseg.models.geometry import Geometry, Layer, module_layers


def test_a_padded_backwards_convolution_keeps_its_padding() -> None:
    layer = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1)
    assert module_layers(layer) == [Layer(4, 2, 1, transposed=True)]
    # on a map of stride 2, offset 3, field 10: the output's stride is 2 / 2 = 1, its offset
    # moves by 1 * (p - (k - 1) / 2) = 1 - 3/2, and its field grows by ceil(4 / 2) - 1 = 1
    # input cell of 2 pixels
    coarse = Geometry(Fraction(10), Fraction(2), Fraction(3))
    assert coarse.then(module_layers(layer)[0]) == Geometry(
        Fraction(12), Fraction(1), Fraction(3, 2) + Fraction(1)
    )


def test_crops_are_whole_non_negative_cells() -> None:
    reference = Geometry(stride=Fraction(2), offset=Fraction(5))
    assert Geometry(stride=Fraction(2), offset=Fraction(1)).crop_to(reference) == 2
    with pytest.raises(ValueError, match="cannot be cropped"):  # 2 cells the wrong way
        Geometry(stride=Fraction(2), offset=Fraction(9)).crop_to(reference)
    with pytest.raises(ValueError, match="cannot be cropped"):  # half a cell
        Geometry(stride=Fraction(2), offset=Fraction(4)).crop_to(reference)
    with pytest.raises(ValueError, match="cannot align stride 4 with stride 2"):
        Geometry(stride=Fraction(4), offset=Fraction(5)).crop_to(reference)
