"""Tiling at its boundaries: windows, margins and alignments worked out by hand."""

from __future__ import annotations

from fractions import Fraction

import pytest
from torch import nn

from fcnseg.errors import FcnsegError
from fcnseg.inference.tiling import Span, tile_alignment, tile_margin, tile_spans
from fcnseg.models.geometry import Geometry


def test_an_image_as_long_as_the_tile_is_one_window_whatever_the_margin() -> None:
    assert tile_spans(100, 100, 60, 32) == [Span(0, 100, 0, 100)]
    assert tile_spans(99, 100, 60, 32) == [Span(0, 99, 0, 99)]


def test_the_smallest_tile_is_two_margins_and_one_stride() -> None:
    # margin 40, stride 32: a 112-pixel window keeps 32 pixels (72 at the image's start)
    assert tile_spans(200, 112, 40, 32) == [
        Span(0, 112, 0, 72),
        Span(32, 144, 72, 104),  # starts at 72 - 40 = 32, a multiple of 32
        Span(64, 176, 104, 136),
        Span(96, 200, 136, 200),  # reaches the image's end: keeps it to the end
    ]
    with pytest.raises(FcnsegError) as error:
        tile_spans(200, 111, 40, 32)
    assert str(error.value) == (
        "tile 111 is too small for this model: it needs at least 112 pixels (a margin of 40 "
        "on each side, from the receptive field, and 32 for the stride)"
    )
    with pytest.raises(FcnsegError, match="needs at least 112 pixels"):
        tile_spans(200, 80, 40, 32)  # between 2 x 40 - 32 and 2 x 40 + 32


def test_a_net_of_stride_one_starts_its_first_window_at_zero() -> None:
    assert tile_spans(10, 6, 1, 1) == [Span(0, 6, 0, 5), Span(4, 10, 5, 10)]


class Stream(nn.Module):
    """Stands in for an FCN: its output's receptive field and its score maps' strides."""

    def __init__(self, receptive_field: int, strides: list[int]) -> None:
        super().__init__()
        self.output_geometry = Geometry(Fraction(receptive_field))
        self.score_geometry = {f"s{s}": Geometry(stride=Fraction(s)) for s in strides}


class Fused(nn.Module):
    """Two streams (late fusion): each must get its own margin and alignment."""

    def __init__(self, first: Stream, second: Stream) -> None:
        super().__init__()
        self.first, self.second = first, second


@pytest.mark.parametrize(
    ("field", "margin"),
    # ceil((rf - 1) / 2) + 32: half the field beyond the centre pixel, plus the stride
    [(10, 5 + 32), (11, 5 + 32), (404, 202 + 32)],
)
def test_margin_is_half_the_receptive_field_plus_the_coarsest_stride(field, margin) -> None:
    assert tile_margin(Stream(field, [8, 16, 32])) == margin
    assert tile_alignment(Stream(field, [8, 16, 32])) == 32


def test_fused_streams_take_the_widest_margin_and_a_common_alignment() -> None:
    model = Fused(Stream(10, [8, 32]), Stream(100, [16, 48]))
    assert tile_margin(model) == 50 + 48  # ceil(99 / 2) + 48 beats ceil(9 / 2) + 32
    assert tile_alignment(model) == 96  # lcm(32, 48)


def test_a_model_without_geometry_or_with_a_fractional_stride_cannot_be_tiled() -> None:
    with pytest.raises(FcnsegError, match="Linear has no output geometry"):
        tile_margin(nn.Linear(2, 2))
    odd = Stream(10, [8])
    odd.score_geometry = {"s": Geometry(stride=Fraction(3, 2))}
    with pytest.raises(FcnsegError, match="stride 3/2 is not a whole number"):
        tile_alignment(odd)
