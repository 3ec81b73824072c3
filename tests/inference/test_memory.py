"""The memory estimate and the tile chosen from it: large images tiled, the labels the same."""

from __future__ import annotations

import pytest
import torch
from inference_nets import image, small_model
from torch import nn

from fcnseg.errors import FcnsegError
from fcnseg.inference import Predictor, choose_tile, prediction_bytes, tile_spans
from fcnseg.inference.memory import forward_bytes, parse_memory


def test_parse_memory() -> None:
    assert parse_memory("2G") == 2 * 1024**3
    assert parse_memory("1.5GB") == int(1.5 * 1024**3)
    assert parse_memory("512m") == 512 * 1024**2
    assert parse_memory("800MiB") == 800 * 1024**2
    assert parse_memory("4096") == 4096
    assert parse_memory("2e9") == 2 * 10**9 and parse_memory("1.5e3k") == 1500 * 1024
    assert parse_memory("none") is None and parse_memory("0") is None
    for bad in ("lots", "2X", "-1G", "", "2e", "e9"):
        with pytest.raises(FcnsegError, match="memory"):
            parse_memory(bad)


def test_forward_bytes_is_the_peak_of_live_tensors() -> None:
    # conv1's output (4 x 10 x 10 floats, 1600 bytes) is alive while the ReLU writes its own
    # (1600): 3200; then conv1's is freed and conv2 writes 800 beside the ReLU's: 2400.
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    net.in_channels = 3
    assert forward_bytes(net, 10, 10) == 3200
    assert forward_bytes(net, 10, 10, batch=2) == 6400
    # the input itself and the weights are not counted; the model was not run for real
    assert all(p.device.type == "cpu" for p in net.parameters())


def test_estimate_grows_with_the_pixels_and_the_tile_fits_the_budget() -> None:
    net = small_model("fcn8s-vgg16", "lean")
    small, large = prediction_bytes(net, 256, 256), prediction_bytes(net, 1024, 1024)
    assert small is not None and large is not None
    assert 15 * small < large <= 17 * small  # per pixel, over 16 times the pixels
    assert choose_tile(net, 1024, 1024, budget=large) is None  # fits: whole
    budget = prediction_bytes(net, 1024, 1024, window=(700, 700))
    tile = choose_tile(net, 1024, 1024, budget=budget)
    assert tile is not None and tile % 32 == 0 and 576 <= tile <= 700
    needed = prediction_bytes(net, 1024, 1024, window=(tile, tile))
    assert needed <= budget < prediction_bytes(net, 1024, 1024, window=(tile + 32, tile + 32))
    # a budget nothing fits: the smallest exact tile, 2 x 262 + 32 pixels
    assert choose_tile(net, 1024, 1024, budget=1) == 576


def test_a_memory_budget_tiles_large_images_and_keeps_the_labels() -> None:
    net = small_model("fcn8s-vgg16", "lean")
    big, small = image(3, 680, 600, seed=1), image(3, 64, 96, seed=2)
    budget = prediction_bytes(net, 680, 600, window=(600, 600))
    limited = Predictor(net, precision="fp32", max_memory=budget)
    assert limited.tile_for(680, 600) is not None
    assert limited.tile_for(64, 96) is None
    assert len(limited._jobs([big], per_class=False)) > 1
    whole = Predictor(net, precision="fp32")
    for expected, result in zip(
        whole.predict([big, small]), limited.predict([big, small]), strict=True
    ):
        assert torch.equal(result, expected)


def test_spans_of_the_chosen_tile_cover_the_image() -> None:
    net = small_model("fcn8s-vgg16", "lean")
    tile = choose_tile(net, 2000, 1500, budget=prediction_bytes(net, 1000, 1000) or 1)
    assert tile is not None
    for length in (2000, 1500):
        spans = tile_spans(length, tile, 262, 32)
        assert spans[0].keep_start == 0 and spans[-1].keep_stop == length
        assert all(a.keep_stop == b.keep_start for a, b in zip(spans, spans[1:], strict=False))
