"""The predictor: batching by size, tiles that equal whole-image inference."""

from __future__ import annotations

import pytest
import torch
from inference_nets import image, small_model
from torch import nn

from fcnseg import FcnsegError
from fcnseg.inference import (
    TOLERANCE,
    Predictor,
    native_precisions,
    tile_alignment,
    tile_margin,
    tile_spans,
)
from fcnseg.inference.export import relative_error


def _measured_reach(geometry: str) -> int:
    """How far (in pixels, either side) an output pixel's value actually depends on input.

    With positive weights and inputs every ReLU passes and no sums cancel, so the input
    gradient of one output pixel is nonzero exactly on the pixels it depends on. Batch item
    ``b`` asks about row ``500 + b``: every phase of the stride-32 grid in one backward pass.
    """
    net = small_model("fcn8s-vgg16", geometry)
    with torch.no_grad():
        for parameter in net.parameters():
            fan_in = parameter[0].numel() if parameter.dim() > 1 else 1
            parameter.copy_((torch.rand_like(parameter) + 0.01) / fan_in)
    phases = 32
    x = (torch.rand(phases, 3, 1000, 8) + 1).requires_grad_()
    rows = torch.arange(500, 500 + phases)
    net(x)[torch.arange(phases), :, rows, 4].sum().backward()
    reach = 0
    for row, grad in zip(rows.tolist(), x.grad, strict=True):
        depends = (grad.abs().sum((0, 2)) > 0).nonzero().flatten()
        reach = max(reach, row - depends.min().item(), depends.max().item() - row)
    return reach


def test_margin_bounds_the_measured_reach(geometry: str) -> None:
    model = small_model("fcn8s-vgg16", geometry)
    reach = _measured_reach(geometry)
    margin = tile_margin(model)
    assert tile_alignment(model) == 32
    # the derived margin covers every dependency, and wastes less than one stride
    assert reach <= margin < reach + 32, (reach, margin)


def test_spans_partition_the_axis() -> None:
    for length in (100, 700, 1000, 2345):
        spans = tile_spans(length, 600, 262, 32)
        assert spans[0].keep_start == 0 and spans[-1].keep_stop == length
        for span, following in zip(spans, spans[1:], strict=False):
            assert span.keep_stop == following.keep_start
        for span in spans:
            assert span.start % 32 == 0 and span.stop - span.start <= 600
            assert span.start <= span.keep_start < span.keep_stop <= span.stop
            assert span.start == 0 or span.keep_start - span.start >= 262
            assert span.stop == length or span.stop - span.keep_stop >= 262


def _rounding(model: nn.Module, x: torch.Tensor) -> float:
    """The relative tolerance of probabilities computed by two blockings of the same sums:
    16 ulps of the largest score in every score, and a score error d moves each probability
    p by at most 2 d p (softmax)."""
    with torch.no_grad():
        largest = model(x[None]).abs().max().item()
    return 2 * 16 * torch.finfo(torch.float32).eps * largest


def test_tiled_equals_whole_image(geometry: str, convolutions: str) -> None:
    model = small_model("fcn8s-vgg16", geometry)
    margin = tile_margin(model)
    tile = 2 * margin + 32 + 40
    x = image(3, 700, 660)
    spans = tile_spans(700, tile, margin, 32)
    assert len(spans) >= 3  # several tiles each way, interior ones with both margins
    # The model as built: tiles give the whole image's numbers to fp32 rounding. A window and
    # the whole image run the same sums, but the convolution kernels may block them
    # differently by input size, which is not bit-equal on every CPU (AVX2: about 4 ulps of
    # the largest score); `_rounding` allows 16.
    whole = Predictor(model, optimize=False).predict_proba([x])[0]
    tiled = Predictor(model, tile=tile, batch_size=3, optimize=False).predict_proba([x])[0]
    torch.testing.assert_close(tiled, whole, rtol=_rounding(model, x), atol=0.0)
    assert torch.equal(tiled.argmax(0), whole.argmax(0))
    # The optimised fp32 path sums in another order per window size, and its Winograd
    # transforms (where the CPU takes them) round more: within the documented fp32 bound.
    fast = Predictor(model, tile=tile, batch_size=3)
    assert relative_error(fast.predict_proba([x])[0], whole) <= TOLERANCE["fp32"]["relative_l2"]
    assert (fast.predict([x])[0] == whole.argmax(0)).float().mean() > 0.9999


@pytest.mark.parametrize(("margin_cut", "alignment"), [(40, 32), (0, 8)])
def test_short_margin_or_misaligned_tiles_leave_seams(
    geometry: str, margin_cut: int, alignment: int
) -> None:
    # The exactness above needs both: a margin 40 pixels short of the derived one (still
    # more than half the receptive field), or windows on an 8-pixel grid, change the result
    # by more than rounding.
    model = small_model("fcn8s-vgg16", geometry)
    tile = 2 * tile_margin(model) + 72
    x = image(3, 700, 96)
    predictor = Predictor(model, tile=tile, optimize=False)
    predictor.margin -= margin_cut
    predictor.alignment = alignment
    tiled = predictor.predict_proba([x])[0]
    whole = Predictor(model, optimize=False).predict_proba([x])[0]
    assert not torch.allclose(tiled, whole, rtol=_rounding(model, x), atol=0.0)


def test_images_of_different_sizes_in_one_call(convolutions: str) -> None:
    model = small_model("fcn16s-vgg16", "lean")
    images = [image(3, 64, 80, seed=0), image(3, 50, 50, seed=1), image(3, 64, 80, seed=2)]
    predictor = Predictor(model, batch_size=2)
    labels = predictor.predict(images)
    probabilities = predictor.predict_proba(images)
    for x, label, proba in zip(images, labels, probabilities, strict=True):
        with torch.no_grad():
            scores = model(x[None])[0]
        assert label.shape == x.shape[1:] and label.dtype == torch.int64
        assert proba.shape == (5, *x.shape[1:]) and proba.dtype == torch.float32
        assert relative_error(proba, scores.softmax(0)) <= TOLERANCE["fp32"]["relative_l2"]
        assert torch.equal(label, proba.argmax(0))


@pytest.mark.skipif(
    "bf16" not in native_precisions(),
    reason="needs a CPU with native bf16 (AVX512-BF16 or AMX); this one has none (an AVX2-only "
    "CPU never runs it)",
)
def test_bf16_predictor_agrees_on_labels() -> None:
    model = small_model("fcn8s-vgg16", "lean")
    x = image(3, 96, 128)
    fp32 = Predictor(model).predict([x])[0]
    bf16 = Predictor(model, precision="bf16").predict([x])[0]
    assert (bf16 == fp32).float().mean() > 0.95


def test_two_heads_pick_one(convolutions: str) -> None:
    model = small_model("fcn8s-siftflow-vgg16", "lean")
    x = image(3, 64, 64)
    with torch.no_grad():
        scores = model(x[None])
    for head in ("sem", "geo"):
        proba = Predictor(model, head=head).predict_proba([x])[0]
        reference = scores[head][0].softmax(0)
        assert relative_error(proba, reference) <= TOLERANCE["fp32"]["relative_l2"]
    with pytest.raises(FcnsegError, match="unknown head 'depth'"):
        Predictor(model, head="depth").predict([x])


def test_errors() -> None:
    model = small_model("fcn32s-vgg16", "lean")
    with pytest.raises(FcnsegError, match="tile 300 is too small"):
        Predictor(model, tile=300).predict([image(3, 400, 40)])
    with pytest.raises(FcnsegError, match="C x H x W"):
        Predictor(model).predict([image(1, 3, 40, 40)])
    with pytest.raises(FcnsegError, match="no output geometry"):
        Predictor(nn.Conv2d(3, 2, 1), tile=512)
