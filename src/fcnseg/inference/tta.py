"""Test-time augmentation: horizontal flip and several scales, probabilities averaged.

Each view of an image (a scale, mirrored or not) is run through the net; its scores are
resized back to the image's size (bilinear) and turned into class probabilities (softmax),
mirrored views are mirrored back, and the probabilities of all views are averaged before the
arg max. This is mmsegmentation's ``SegTTAModel``: it averages softmax probabilities, not
raw scores, because scores of different views are not on one scale (a net is more confident
at the scale it was trained at, and its logits grow with confidence), while probabilities
are comparable and a view that is unsure then counts for less.

Exactness, which the tests hold:

- With one view (scale 1.0, no flip) nothing is resized or averaged: the net's own scores.
- Flip augmentation is exactly flip-equivariant: a mirrored image gives the mirrored
  probabilities, bit for bit. For each scale the mirrored view is computed as
  ``flip(back(net(resize(flip(x)))))``, so mirroring ``x`` swaps a scale's two views exactly,
  and each pair is summed (a commutative, exact operation) before the scales are.

The one place the views are made and merged is :func:`augmented_probabilities`; the
predictor (:class:`fcnseg.inference.Predictor`, ``tta=``), :func:`fcnseg.predict`,
``fcnseg predict`` and ``fcnseg eval`` (through :class:`TestTimeAugmentation`) all use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from fcnseg.errors import FcnsegError
from fcnseg.models import head_scores

ScoreFunction = Callable[[torch.Tensor], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Augmentation:
    """Which views test-time augmentation runs.

    Attributes:
        flip: also run each scale mirrored left to right.
        scales: factors the image is resized by (bilinear) before the net sees it; 1.0 is
            the image as it is. mmsegmentation's usual set is 0.5 to 1.75; (0.75, 1.0, 1.25)
            is a cheaper one.

    Raises:
        FcnsegError: no scales, or a scale that is not a positive finite number.
    """

    flip: bool = False
    scales: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        scales = tuple(self.scales)
        if not scales:
            raise FcnsegError("test-time augmentation needs at least one scale")
        for scale in scales:
            if isinstance(scale, bool) or not isinstance(scale, int | float):
                raise FcnsegError(f"scale {scale!r}: expected a finite number above 0")
            if not math.isfinite(scale) or scale <= 0:
                raise FcnsegError(f"scale {scale!r}: expected a finite number above 0")
        object.__setattr__(self, "scales", tuple(float(s) for s in scales))
        object.__setattr__(self, "flip", bool(self.flip))

    @property
    def plain(self) -> bool:
        """True when there is one view, the image as it is (no augmentation at all)."""
        return not self.flip and self.scales == (1.0,)

    @property
    def views(self) -> int:
        """Forward passes per image."""
        return len(self.scales) * (2 if self.flip else 1)

    @property
    def cost(self) -> float:
        """The pixels the views run, relative to plain prediction's: the sum of the squared
        scales, doubled by flip (the time grows about as much)."""
        return sum(s * s for s in self.scales) * (2 if self.flip else 1)

    def describe(self) -> str:
        """``"flip, scales 0.75 1 1.25"``, or ``"none"``."""
        if self.plain:
            return "none"
        parts = ["flip"] if self.flip else []
        if self.scales != (1.0,):
            parts.append("scales " + " ".join(f"{s:g}" for s in self.scales))
        return ", ".join(parts)


def view_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """The size of an image ``height x width`` resized by ``scale`` (rounded, at least 1)."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def augmented_probabilities(
    images: torch.Tensor, scores: ScoreFunction, augmentation: Augmentation
) -> dict[str, torch.Tensor]:
    """The class probabilities of ``images``, averaged over the augmentation's views.

    Args:
        images: N x C x H x W float network inputs (in the model's input convention).
        scores: runs the net: an N x C x h x w batch to head name -> N x K x h x w scores.
        augmentation: the views.

    Returns:
        Head name -> N x K x H x W float32 probabilities (each pixel's sum to 1).

    Raises:
        FcnsegError: ``images`` is not N x C x H x W.
    """
    if images.dim() != 4:
        raise FcnsegError(f"expected N x C x H x W images, got shape {tuple(images.shape)}")
    height, width = images.shape[-2:]
    total: dict[str, torch.Tensor] | None = None
    for scale in augmentation.scales:
        probabilities = _back(scores(_resize(images, scale)), height, width)
        if augmentation.flip:
            mirrored = _back(scores(_resize(images.flip(-1), scale)), height, width)
            probabilities = {
                head: probabilities[head] + mirrored[head].flip(-1) for head in probabilities
            }
        if total is None:
            total = probabilities
        else:
            total = {head: total[head] + probabilities[head] for head in total}
    assert total is not None  # at least one scale (Augmentation checks)
    return {head: value / augmentation.views for head, value in total.items()}


class TestTimeAugmentation(nn.Module):
    """A model whose output is the test-time augmented one, for :func:`fcnseg.evaluation.evaluate`
    and anything else that takes a model.

    It takes what ``model`` takes (N x C x H x W network inputs) and returns what it returns
    (N x K x H x W scores, or a dict of them by head): with augmentation, the log of the
    averaged probabilities (:func:`augmented_probabilities`), whose arg max is the augmented
    labels and whose softmax is the averaged probabilities; without (``scales=(1.0,)``, no
    flip), ``model``'s own scores.

    Images of one batch should have one size: a padded image's padding is mirrored with it.
    """

    __test__ = False  # not a pytest class, whatever its name

    def __init__(
        self, model: nn.Module, *, flip: bool = False, scales: Sequence[float] = (1.0,)
    ) -> None:
        super().__init__()
        self.model = model
        self.augmentation = Augmentation(flip, tuple(scales))
        if hasattr(model, "heads"):
            self.heads = dict(model.heads)
        if hasattr(model, "in_channels"):
            self.in_channels = model.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Scores of the augmented views: log of the averaged probabilities."""
        if self.augmentation.plain:
            return self.model(x)
        single = True

        def run(view: torch.Tensor) -> dict[str, torch.Tensor]:
            nonlocal single
            output = self.model(view)
            single = not isinstance(output, dict)
            return head_scores(self.model, output)

        probabilities = augmented_probabilities(x, run, self.augmentation)
        logs = {head: value.log() for head, value in probabilities.items()}
        return next(iter(logs.values())) if single else logs


def _resize(images: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return images
    size = view_size(images.shape[-2], images.shape[-1], scale)
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def _back(scores: dict[str, torch.Tensor], height: int, width: int) -> dict[str, torch.Tensor]:
    # Scores back to the image's size (bilinear, as mmsegmentation resizes logits), then
    # probabilities, in float32 whatever the net computed in.
    result = {}
    for head, score in scores.items():
        score = score.float()
        if score.shape[-2:] != (height, width):
            score = F.interpolate(score, size=(height, width), mode="bilinear", align_corners=False)
        result[head] = score.softmax(1)
    return result
