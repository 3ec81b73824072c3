"""Online hard example mining of pixels (``Ohem``), against probabilities computed by hand.

Two classes with scores ``(0, z)`` give class 1 the probability ``1 / (1 + exp(-z))``, so
which pixels are hard follows from ``z`` with ``math`` alone; the loss is then checked against
a sum written out pixel by pixel.
"""

from __future__ import annotations

import math

import pytest
import torch

from fcnseg.errors import FcnsegError
from fcnseg.train import Ohem, TrainConfig, ohem_mask, pixel_loss

VOID = 255


def two_class_scores(z: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """1 x 2 x H x W scores (0, z), labels all class 1, and each pixel's p(class 1)."""
    zs = torch.tensor(z, dtype=torch.float32)
    scores = torch.stack([torch.zeros_like(zs), zs]).unsqueeze(0)
    labels = torch.ones(1, *zs.shape, dtype=torch.int64)
    probs = [1 / (1 + math.exp(-v)) for row in z for v in row]
    return scores, labels, probs


# p(class 1) of these: 0.12, 0.38, 0.50, 0.62, 0.82, 0.95, 0.27, 0.99
Z = [[-2.0, -0.5, 0.0, 0.5], [1.5, 3.0, -1.0, 4.6]]


def as_list(mask: torch.Tensor) -> list[bool]:
    return [bool(v) for v in mask.reshape(-1)]


def test_the_pixels_below_the_threshold_are_kept_when_there_are_enough() -> None:
    scores, labels, probs = two_class_scores(Z)
    counted = torch.ones_like(labels, dtype=torch.bool)
    kept = ohem_mask(scores, labels, counted, Ohem(thresh=0.7, min_kept=2))
    assert as_list(kept) == [p < 0.7 for p in probs]  # 5 pixels, more than min_kept
    assert sum(as_list(kept)) == 5


def test_at_least_min_kept_pixels_are_kept_the_hardest_ones() -> None:
    scores, labels, probs = two_class_scores(Z)
    counted = torch.ones_like(labels, dtype=torch.bool)
    kept = ohem_mask(scores, labels, counted, Ohem(thresh=0.3, min_kept=4))
    # only 2 pixels are below 0.3 (0.12, 0.27); the 4 of lowest probability are kept
    hardest = sorted(range(len(probs)), key=probs.__getitem__)[:4]
    assert as_list(kept) == [i in hardest for i in range(len(probs))]


def test_void_and_unsampled_pixels_are_never_kept() -> None:
    scores, labels, probs = two_class_scores(Z)
    labels[0, 0, 0] = VOID  # the hardest pixel, p 0.12
    counted = labels != VOID
    counted[0, 1, 2] = False  # the next hardest, p 0.27, dropped by loss sampling
    kept = ohem_mask(scores, labels, counted, Ohem(thresh=0.3, min_kept=3))
    # neither of the two hardest; then 0.38, 0.50, 0.62 are the three hardest left
    assert as_list(kept) == [False, True, True, True, False, False, False, False]
    # asking for more pixels than are counted keeps every counted one, no more
    everything = ohem_mask(scores, labels, counted, Ohem(thresh=0.01, min_kept=100))
    assert as_list(everything) == as_list(counted)


def test_the_loss_counts_the_kept_pixels_over_all_counted_ones() -> None:
    scores, labels, probs = two_class_scores(Z)
    labels[0, 1, 3] = VOID  # p 0.99: void, not counted
    weights = torch.tensor([1.0, 2.0])
    got = pixel_loss(
        scores, labels, normalize="mean", class_weights=weights, ohem=Ohem(0.6, min_kept=0)
    )
    counted = [p for i, p in enumerate(probs) if i != 7]
    expected = sum(2.0 * -math.log(p) for p in counted if p < 0.6) / len(counted)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    summed = pixel_loss(scores, labels, normalize="sum", ohem=Ohem(0.6, min_kept=0))
    assert float(summed) == pytest.approx(sum(-math.log(p) for p in counted if p < 0.6), rel=1e-6)


def test_easy_pixels_get_no_gradient_hard_ones_do() -> None:
    scores, labels, probs = two_class_scores(Z)
    scores.requires_grad_(True)
    pixel_loss(scores, labels, ohem=Ohem(0.7, min_kept=0)).backward()
    assert scores.grad is not None
    moved = as_list(scores.grad.abs().sum(dim=1) > 0)
    assert moved == [p < 0.7 for p in probs]


def test_a_threshold_of_one_keeps_every_pixel_the_plain_loss() -> None:
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 5, 6, 7, generator=generator)
    labels = torch.randint(0, 5, (2, 6, 7), generator=generator)
    labels[1, :2] = VOID
    plain = pixel_loss(scores, labels)
    assert float(pixel_loss(scores, labels, ohem=Ohem(1.0, min_kept=0))) == pytest.approx(
        float(plain), rel=1e-6
    )


def test_each_head_of_a_two_head_net_is_mined_on_its_own() -> None:
    generator = torch.Generator().manual_seed(1)
    sem = torch.randn(2, 4, 5, 6, generator=generator)
    geo = torch.randn(2, 3, 5, 6, generator=generator)
    labels = torch.stack(
        [
            torch.randint(0, 4, (2, 5, 6), generator=generator),
            torch.randint(0, 3, (2, 5, 6), generator=generator),
        ],
        dim=1,
    )
    ohem = Ohem(0.3, min_kept=7)
    both = pixel_loss({"sem": sem, "geo": geo}, labels, ohem=ohem)
    alone = pixel_loss(sem, labels[:, 0], ohem=ohem) + pixel_loss(geo, labels[:, 1], ohem=ohem)
    assert float(both) == pytest.approx(float(alone), rel=1e-6)


@pytest.mark.parametrize("thresh, min_kept", [(0.0, 10), (1.5, 10), (0.7, -1)])
def test_settings_out_of_range_are_refused(thresh: float, min_kept: int) -> None:
    with pytest.raises(ValueError):
        Ohem(thresh, min_kept)
    with pytest.raises(FcnsegError, match="ohem"):
        TrainConfig(ohem_thresh=thresh, ohem_min_kept=min_kept)


def test_the_loss_mines_the_pixels_ohem_mask_names() -> None:
    # the loss takes p(y) from its own softmax; ohem_mask takes its own: the same pixels
    generator = torch.Generator().manual_seed(2)
    scores = (3 * torch.randn(2, 6, 9, 8, generator=generator)).requires_grad_(True)
    labels = torch.randint(0, 6, (2, 9, 8), generator=generator)
    labels[0, :3] = VOID
    ohem = Ohem(0.2, min_kept=40)
    pixel_loss(scores, labels, normalize="sum", ohem=ohem).backward()
    assert scores.grad is not None
    moved = scores.grad.abs().sum(dim=1) > 0
    assert torch.equal(moved, ohem_mask(scores.detach(), labels, labels != VOID, ohem))


def test_wrong_types_and_shapes_are_refused_before_any_mining() -> None:
    with pytest.raises(TypeError):
        Ohem(0.7, 2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Ohem(True, 10)
    scores, labels, _ = two_class_scores(Z)
    counted = torch.ones_like(labels, dtype=torch.bool)
    with pytest.raises(ValueError, match="N x K x H x W"):
        ohem_mask(scores[0], labels, counted, Ohem())
    with pytest.raises(ValueError, match="booleans"):
        ohem_mask(scores, labels, counted.float(), Ohem())
    with pytest.raises(ValueError, match="booleans"):
        ohem_mask(scores, labels, counted[:, :1], Ohem())
