"""The loss of several heads, loss sampling's draws and class balancing, by hand.

Scores are chosen so that softmax is simple: [0, 0] gives 1/2 each, [ln 3, 0] gives 3/4 and
1/4, [0, 0, 0] a third each, [ln 3, 0, 0] 3/5, 1/5, 1/5.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch

from fcnseg.models.geometry import Geometry
from fcnseg.train.loss import (
    class_frequencies,
    loss_sampling_mask,
    median_frequency_weights,
    parse_class_weights,
    pixel_loss,
)

LN2, LN3 = math.log(2), math.log(3)


def two_heads() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One image of 1 x 2 pixels; ``sem`` has 2 classes, ``geo`` 3.

    sem: pixel 0 scores [ln 3, 0], class 0: -log 3/4; pixel 1 scores [0, 0], class 1: ln 2.
    geo: pixel 0 scores [0, 0, 0], class 2: ln 3; pixel 1 scores [ln 3, 0, 0], class 0:
    -log 3/5.
    """
    sem = torch.tensor([[LN3, 0.0], [0.0, 0.0]]).T.reshape(1, 2, 1, 2)
    geo = torch.tensor([[0.0, 0.0, 0.0], [LN3, 0.0, 0.0]]).T.reshape(1, 3, 1, 2)
    labels = torch.tensor([[0, 1], [2, 0]]).reshape(1, 2, 1, 2)  # N x heads x H x W
    return {"sem": sem, "geo": geo}, labels


def test_heads_add_each_normalised_by_its_own_pixels() -> None:
    scores, labels = two_heads()
    sem = math.log(4 / 3) + LN2
    geo = LN3 + math.log(5 / 3)
    loss = pixel_loss(scores, labels)  # the default normalisation is the mean
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(sem / 2 + geo / 2, rel=1e-6)
    summed = pixel_loss(scores, labels, normalize="sum")
    assert summed.item() == pytest.approx(sem + geo, rel=1e-6)


def test_class_weights_weigh_the_first_head_only() -> None:
    scores, labels = two_heads()
    weights = torch.tensor([2.0, 5.0], dtype=torch.float64)  # float64 given: float32 out
    loss = pixel_loss(scores, labels, normalize="sum", class_weights=weights)
    assert loss.dtype == torch.float32
    expected = 2 * math.log(4 / 3) + 5 * LN2 + LN3 + math.log(5 / 3)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_keep_and_void_drop_the_same_pixels_of_every_head() -> None:
    scores, labels = two_heads()
    keep = torch.tensor([[[True, False]]])
    # one pixel counted per head: the mean divides by 1 (all pixels would give 1.295)
    loss = pixel_loss(scores, labels, keep=keep)
    assert loss.item() == pytest.approx(math.log(4 / 3) + LN3, rel=1e-6)
    loss = pixel_loss(scores, labels, keep=~keep)
    assert loss.item() == pytest.approx(LN2 + math.log(5 / 3), rel=1e-6)
    # void is the given ignore_index (7 here), not 255
    void = labels.clone()
    void[0, 1, 0, 1] = 7
    loss = pixel_loss(scores, void, normalize="mean", ignore_index=7)
    assert loss.item() == pytest.approx((math.log(4 / 3) + LN2) / 2 + LN3, rel=1e-6)


def test_one_counted_pixel_is_its_own_mean() -> None:
    scores = torch.tensor([LN3, 0.0]).reshape(1, 2, 1, 1)
    assert pixel_loss(scores, torch.tensor([[[1]]])).item() == pytest.approx(math.log(4), rel=1e-6)


def test_heads_need_one_label_channel_each() -> None:
    scores, labels = two_heads()
    for bad in (labels[:, 0], labels[:, :1], torch.cat([labels, labels[:, :1]], dim=1)):
        with pytest.raises(ValueError, match=r"2 heads \(sem, geo\) need N x 2 x H x W labels"):
            pixel_loss(scores, bad)


# a score map of stride 32 whose cell i is centred on pixel 32 i + 16: pixels 0-31 are nearest
# cell 0, 32-63 cell 1, 64-95 cell 2
GEOMETRY = Geometry(Fraction(212), Fraction(32), Fraction(16))


def test_each_cell_is_one_draw_of_the_given_generator() -> None:
    labels = torch.zeros(2, 64, 96, dtype=torch.long)
    torch.manual_seed(0)  # the global generator is not the one drawn from
    mask = loss_sampling_mask(labels, 0.5, GEOMETRY, torch.Generator().manual_seed(3))
    torch.manual_seed(1)
    again = loss_sampling_mask(labels, 0.5, GEOMETRY, torch.Generator().manual_seed(3))
    assert torch.equal(mask, again)
    # the generator's first 2 x 2 x 3 draws, one per image and cell
    cells = torch.rand((2, 2, 3), generator=torch.Generator().manual_seed(3)) < 0.5
    expected = cells.repeat_interleave(32, dim=1).repeat_interleave(32, dim=2)
    assert mask.shape == (2, 64, 96) and torch.equal(mask, expected)


@pytest.mark.parametrize("p", [0.0, -0.5, 1.5, 2.0])
def test_sampling_probability_outside_zero_one_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match=r"must be in \(0, 1\]"):
        loss_sampling_mask(torch.zeros(1, 32, 32, dtype=torch.long), p, GEOMETRY)


def test_class_frequencies_and_median_weights_by_hand() -> None:
    """Image A: one pixel of class 0. Image B, 2 x 2: class 1 three times, class 2 once.

    Pixels: [1, 3, 1]; pixels of the images each class is in: [1, 4, 4]; frequencies
    [1, 3/4, 1/4], median 3/4: weights [3/4, 1, 3].
    """
    labels = [torch.tensor([[0]]), torch.tensor([[1, 1], [1, 2]])]
    counts = class_frequencies(labels, 3)
    assert counts.dtype == torch.int64
    assert counts.tolist() == [[1, 3, 1], [1, 4, 4]]
    weights = median_frequency_weights(counts)
    assert weights.tolist() == pytest.approx([0.75, 1.0, 3.0], rel=1e-6)


def test_given_class_weights_are_one_finite_non_negative_number_per_class() -> None:
    weights = parse_class_weights([1, 2.5, 0], 3)
    assert weights.dtype == torch.float32 and weights.tolist() == [1.0, 2.5, 0.0]
    with pytest.raises(ValueError, match="2 class weights given for 3 classes"):
        parse_class_weights([1, 2], 3)
    for bad in ([1, -0.5, 1], [1, math.inf, 1], [1, math.nan, 1]):
        with pytest.raises(ValueError, match="class weights must be finite and non-negative"):
            parse_class_weights(bad, 3)
