"""The per-pixel loss, its class weights and loss sampling, against direct computations."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from fcnseg.models.geometry import Geometry
from fcnseg.train.loss import (
    class_frequencies,
    loss_sampling_mask,
    median_frequency_weights,
    pixel_loss,
)

VOID = 255


def scores_and_labels(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(2, 4, 5, 7, generator=generator)
    labels = torch.randint(0, 4, (2, 5, 7), generator=generator)
    labels[0, 0, :3] = VOID
    labels[1, 4, 2] = VOID
    return scores, labels


def direct_nll(scores: torch.Tensor, labels: torch.Tensor) -> list[tuple[int, float]]:
    """(class, -log softmax) of every non-void pixel, one pixel at a time."""
    terms = []
    for n in range(labels.shape[0]):
        for y in range(labels.shape[1]):
            for x in range(labels.shape[2]):
                c = int(labels[n, y, x])
                if c != VOID:
                    z = scores[n, :, y, x].double()
                    terms.append((c, float(torch.logsumexp(z, 0) - z[c])))
    return terms


def test_sum_is_the_reference_unnormalised_loss_mean_divides_by_valid_pixels() -> None:
    scores, labels = scores_and_labels()
    terms = direct_nll(scores, labels)
    total = sum(t for _, t in terms)
    assert float(pixel_loss(scores, labels, normalize="sum")) == pytest.approx(total, rel=1e-5)
    assert float(pixel_loss(scores, labels, normalize="mean")) == pytest.approx(
        total / len(terms), rel=1e-5
    )


def test_class_weights_scale_each_pixel_by_its_class_weight() -> None:
    scores, labels = scores_and_labels(1)
    weights = torch.tensor([0.5, 2.0, 0.0, 3.0])
    terms = direct_nll(scores, labels)
    weighted = sum(float(weights[c]) * t for c, t in terms)
    got_sum = pixel_loss(scores, labels, normalize="sum", class_weights=weights)
    got_mean = pixel_loss(scores, labels, normalize="mean", class_weights=weights)
    assert float(got_sum) == pytest.approx(weighted, rel=1e-5)
    # the mean divides by the valid pixels, not by the sum of their weights
    assert float(got_mean) == pytest.approx(weighted / len(terms), rel=1e-5)
    assert float(got_sum) != pytest.approx(float(pixel_loss(scores, labels, normalize="sum")))
    ones = pixel_loss(scores, labels, normalize="sum", class_weights=torch.ones(4))
    assert torch.allclose(ones, pixel_loss(scores, labels, normalize="sum"))


def test_void_and_unkept_pixels_get_no_gradient() -> None:
    scores, labels = scores_and_labels(2)
    scores.requires_grad_(True)
    keep = torch.ones_like(labels, dtype=torch.bool)
    keep[1, :, :3] = False
    pixel_loss(scores, labels, normalize="sum", keep=keep).backward()
    silent = (labels == VOID) | ~keep
    assert (scores.grad.permute(0, 2, 3, 1)[silent] == 0).all()
    assert (scores.grad.permute(0, 2, 3, 1)[~silent].abs().sum(-1) > 0).all()


def test_no_counted_pixel_gives_zero_loss() -> None:
    scores = torch.randn(1, 3, 4, 4)
    labels = torch.full((1, 4, 4), VOID)
    assert float(pixel_loss(scores, labels, normalize="mean")) == 0.0


STRIDE32 = Geometry(Fraction(404), Fraction(32), Fraction(31, 2))


def test_sampling_mask_with_p_one_keeps_everything() -> None:
    labels = torch.zeros(2, 70, 90, dtype=torch.long)
    assert loss_sampling_mask(labels, 1.0, STRIDE32).all()


def test_sampling_mask_is_constant_over_each_final_layer_cell() -> None:
    labels = torch.zeros(64, 96, 160, dtype=torch.long)
    mask = loss_sampling_mask(labels, 0.5, STRIDE32, torch.Generator().manual_seed(0))
    # cell i of the stride-32 map is centred at pixel 32 i + 15.5: pixels 0-31 are nearest
    # cell 0, 32-63 cell 1, and so on.
    blocks = mask.reshape(64, 3, 32, 5, 32)
    assert (blocks == blocks[:, :, :1, :, :1]).all()
    assert 0.45 < mask.float().mean() < 0.55
    # cells are drawn independently: neighbouring cells differ somewhere
    assert (blocks[:, 0, 0, 0, 0] != blocks[:, 0, 0, 1, 0]).any()


def test_sampling_mask_follows_the_score_map_offset() -> None:
    # a map whose cells are centred at 32 i: pixels 0-15 belong to cell 0, 16-47 to cell 1
    geometry = Geometry(Fraction(100), Fraction(32), Fraction(0))
    labels = torch.zeros(256, 1, 64, dtype=torch.long)
    mask = loss_sampling_mask(labels, 0.5, geometry, torch.Generator().manual_seed(1))[:, 0]
    assert (mask[:, :16] == mask[:, :1]).all()
    assert (mask[:, 16:48] == mask[:, 16:17]).all()
    assert (mask[:, 15] != mask[:, 16]).any()


def test_median_frequency_weights() -> None:
    # class 0: 6 of 8 pixels in image 1, 4 of 4 in image 2 -> 10/12
    # class 1: 2 of 8 in image 1 -> 2/8; class 2 never appears
    labels = [torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1]]), torch.tensor([[0, 0, VOID, 0, 0]])]
    counts = class_frequencies(labels, 3)
    assert counts.tolist() == [[10, 2, 0], [12, 8, 0]]
    weights = median_frequency_weights(counts)
    frequencies = torch.tensor([10 / 12, 2 / 8], dtype=torch.float64)
    # the true median: with two classes present, the mean of the two (commit 3b88a1d; torch's
    # median would give the lower one)
    median = (10 / 12 + 2 / 8) / 2
    assert weights[:2].tolist() == pytest.approx((median / frequencies).tolist())
    assert weights[2] == 0
