"""tile_spans at its boundaries, the windows worked out by hand."""

from __future__ import annotations

import pytest

from fcnseg.errors import FcnsegError
from fcnseg.inference.tiling import Span, tile_spans


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
