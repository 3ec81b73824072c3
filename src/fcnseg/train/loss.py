"""The per-pixel multinomial logistic loss (section 4), its class weights, loss sampling and
online hard example mining.

The reference trains with Caffe's ``SoftmaxWithLoss(normalize=False, ignore_label=255)``: the
negative log-likelihood summed over every non-void pixel of the batch, with a learning rate
small enough (1e-10) to make up for the sum. ``normalize="mean"`` divides by the non-void
pixels instead, for learning rates of the usual size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F

from fcnseg.models.geometry import Geometry

NORMALIZATIONS = ("sum", "mean")


def pixel_loss(
    scores: torch.Tensor | Mapping[str, torch.Tensor],
    labels: torch.Tensor,
    *,
    normalize: str = "mean",
    class_weights: torch.Tensor | None = None,
    keep: torch.Tensor | None = None,
    ignore_index: int = 255,
    ohem: Ohem | None = None,
) -> torch.Tensor:
    """``sum_p w[y_p] * -log softmax(scores_p)[y_p]`` over the counted pixels ``p``.

    A pixel counts unless it is void or dropped by ``keep``. With ``normalize="mean"`` the sum
    is divided by the number of counted pixels (not by the sum of their weights, so weights
    scale the loss as given); a batch with no counted pixel has loss 0. With ``ohem`` only the
    hard pixels among the counted ones add their loss (:func:`ohem_mask`), and the mean stays
    over all counted pixels, so the easy pixels count as a loss of 0.

    A net with several heads (SIFT Flow's ``sem`` and ``geo``) gives a dict of scores and its
    labels one channel per head, in the dict's order; the loss is the sum of the heads' losses,
    as the reference's siftflow nets sum two ``SoftmaxWithLoss`` layers of weight 1. Each head
    is normalised by its own counted pixels, ``keep`` drops the same pixels of every head, and
    ``class_weights`` weigh the first (semantic) head only.

    Args:
        scores: N x K x H x W class scores, or a dict of them, one per head.
        labels: N x H x W classes, void ``ignore_index``; N x T x H x W for T heads.
        normalize: ``"sum"`` (the reference) or ``"mean"``.
        class_weights: K weights, one per class (of the first head); None weighs every class 1.
        keep: N x H x W booleans, False for pixels whose loss is not sampled (section 3.4).
        ignore_index: the void label.
        ohem: online hard example mining of each head's pixels, or None for none.

    Returns:
        The scalar loss, in float32.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if isinstance(scores, Mapping):
        heads = list(scores.values())
        if labels.dim() != 4 or labels.shape[1] != len(heads):
            raise ValueError(
                f"{len(heads)} heads ({', '.join(scores)}) need N x {len(heads)} x H x W labels, "
                f"got shape {tuple(labels.shape)}"
            )
        losses = [
            _head_loss(
                head,
                labels[:, t],
                normalize,
                class_weights if t == 0 else None,
                keep,
                ignore_index,
                ohem,
            )
            for t, head in enumerate(heads)
        ]
        return torch.stack(losses).sum()
    return _head_loss(scores, labels, normalize, class_weights, keep, ignore_index, ohem)


def _head_loss(
    scores: torch.Tensor,
    labels: torch.Tensor,
    normalize: str,
    class_weights: torch.Tensor | None,
    keep: torch.Tensor | None,
    ignore_index: int,
    ohem: Ohem | None,
) -> torch.Tensor:
    """:func:`pixel_loss` of one head: N x K x H x W scores, N x H x W labels."""
    counted = labels != ignore_index
    if keep is not None:
        counted &= keep
    targets = torch.where(counted, labels, torch.zeros_like(labels))
    # Per-pixel -log p(y); float32 so that a bf16/fp16 forward pass sums its loss exactly.
    nll = F.cross_entropy(scores.float(), targets, reduction="none")
    added = counted
    if ohem is not None:  # p(y) = exp(-nll): the softmax already taken
        added = _hard_pixels(torch.exp(-nll.detach()), counted, ohem)
    if class_weights is not None:
        nll = nll * class_weights.to(nll.device, nll.dtype)[targets]
    total = (nll * added).sum()
    if normalize == "sum":
        return total
    return total / counted.sum().clamp(min=1)


@dataclass(frozen=True)
class Ohem:
    """Online hard example mining of pixels: which pixels' loss a step keeps.

    A pixel is hard when the net gives its true class a probability below ``thresh``; each
    forward pass (``iter_size`` of them per step) keeps at least its ``min_kept`` hardest
    pixels, so that late in training, when few pixels are below the threshold, the loss still
    has pixels to learn from; a pass of fewer pixels than ``min_kept`` keeps them all (is not
    mined). This is mmsegmentation's ``OHEMPixelSampler(thresh, min_kept)`` (itself after
    Shrivastava et al., CVPR 2016, for detection, and the pixel version of Wu et al.,
    "Bridging category-level and instance-level semantic image segmentation", 2016); not
    in the FCN paper, whose loss counts every pixel.

    Raises:
        TypeError: ``thresh`` is not a number or ``min_kept`` not a whole number.
        ValueError: ``thresh`` outside (0, 1] or ``min_kept`` negative.
    """

    thresh: float = 0.7
    min_kept: int = 100_000

    def __post_init__(self) -> None:
        if isinstance(self.thresh, bool) or not isinstance(self.thresh, (int, float)):
            raise TypeError(f"the OHEM threshold must be a number, got {self.thresh!r}")
        if isinstance(self.min_kept, bool) or not isinstance(self.min_kept, int):
            raise TypeError(f"the OHEM min_kept must be a whole number, got {self.min_kept!r}")
        if not 0 < self.thresh <= 1:
            raise ValueError(f"the OHEM threshold must be in (0, 1], got {self.thresh}")
        if self.min_kept < 0:
            raise ValueError(f"the OHEM min_kept must not be negative, got {self.min_kept}")


def ohem_mask(
    scores: torch.Tensor, labels: torch.Tensor, counted: torch.Tensor, ohem: Ohem
) -> torch.Tensor:
    """The hard pixels among the ``counted`` ones (:class:`Ohem`); no gradient flows here.

    Kept: every counted pixel whose true class has probability ``< ohem.thresh``, and the
    ``ohem.min_kept`` counted pixels of lowest probability (ties at the cut as ``torch.topk``
    breaks them), whichever are more. The same set as mmsegmentation's sampler but for ties
    at its threshold.

    Args:
        scores: N x K x H x W class scores (any float dtype; the softmax is taken in float32).
        labels: N x H x W classes, each in [0, K) where ``counted`` (others are not read).
        counted: N x H x W booleans, the pixels eligible (not void, sampled).
        ohem: the threshold and the minimum kept.

    Returns:
        N x H x W booleans, True for the kept pixels; a subset of ``counted``.

    Raises:
        ValueError: the shapes do not match, or ``counted`` is not boolean.
    """
    if scores.dim() != 4 or labels.shape != (scores.shape[0], *scores.shape[2:]):
        raise ValueError(
            f"ohem_mask needs N x K x H x W scores and N x H x W labels, got "
            f"{tuple(scores.shape)} and {tuple(labels.shape)}"
        )
    if counted.shape != labels.shape or counted.dtype != torch.bool:
        raise ValueError(
            f"counted must be N x H x W booleans like the labels {tuple(labels.shape)}, got "
            f"{counted.dtype} {tuple(counted.shape)}"
        )
    with torch.no_grad():
        targets = torch.where(counted, labels, torch.zeros_like(labels))
        prob = F.softmax(scores.float(), dim=1).gather(1, targets.unsqueeze(1)).squeeze(1)
        return _hard_pixels(prob, counted, ohem)


def _hard_pixels(prob: torch.Tensor, counted: torch.Tensor, ohem: Ohem) -> torch.Tensor:
    """:func:`ohem_mask` from each pixel's probability of its true class (N x H x W)."""
    prob = prob.masked_fill(~counted, float("inf"))  # never among the hardest
    hard = prob < ohem.thresh
    wanted = min(ohem.min_kept, int(counted.sum()))
    if int(hard.sum()) < wanted:
        hardest = prob.reshape(-1).topk(wanted, largest=False).indices
        hard = hard.reshape(-1).index_fill(0, hardest, True).reshape(hard.shape)
    return hard & counted


def loss_sampling_mask(
    labels: torch.Tensor,
    p: float,
    score_geometry: Geometry,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Keeps each final-layer cell's loss with probability ``p`` (sections 3.4 and 4.3).

    Dropping the loss of a cell of the coarse (stride 32) score map excludes its patch from the
    gradient, which is how patchwise training is recovered from whole-image training. The mask
    is drawn once per cell and spread to the pixels nearest that cell's centre, which sits at
    input pixel ``stride * i + offset`` (the score map's geometry); this is nearest-neighbour
    upsampling of a cell mask, aligned as the net aligns its own scores.

    Every head of a multi-head net gets the same mask: the cells are the shared backbone's.

    Args:
        labels: N x H x W (or N x T x H x W, one channel per head), for the shape and device.
        p: probability of keeping a cell, in (0, 1].
        score_geometry: geometry of the coarse score map (``FCN.score_geometry["fc7"]``).
        generator: the random source; torch's global one when None.

    Returns:
        N x H x W booleans, True where the pixel's loss is kept.
    """
    if not 0 < p <= 1:
        raise ValueError(f"the loss sampling probability must be in (0, 1], got {p}")
    n, (height, width) = labels.shape[0], labels.shape[-2:]
    rows = _nearest_cell(height, score_geometry)
    cols = _nearest_cell(width, score_geometry)
    grid = (int(rows.max()) + 1, int(cols.max()) + 1)
    cells = torch.rand((n, *grid), generator=generator) < p  # N×H/32×W/32
    return cells[:, rows][:, :, cols].to(labels.device)


def _nearest_cell(size: int, geometry: Geometry) -> torch.Tensor:
    """The index of the cell whose centre is nearest each pixel 0..size-1 (clamped at 0)."""
    stride, offset = Fraction(geometry.stride), Fraction(geometry.offset)
    return torch.tensor(
        [max(0, int((x - offset) / stride + Fraction(1, 2))) for x in range(size)],
        dtype=torch.int64,
    )


def class_frequencies(
    labels: Iterable[torch.Tensor], num_classes: int, ignore_index: int = 255
) -> torch.Tensor:
    """Pixel count of each class over ``labels`` and the images that contain it.

    Returns:
        A 2 x K int64 tensor: row 0 the pixels of each class, row 1 the pixels of the images
        in which the class appears (median frequency balancing's denominator).
    """
    counts = torch.zeros(2, num_classes, dtype=torch.int64)
    for label in labels:
        valid = label[label != ignore_index].reshape(-1).to(torch.int64)
        image_counts = torch.bincount(valid, minlength=num_classes)[:num_classes]
        counts[0] += image_counts
        counts[1] += torch.where(image_counts > 0, valid.numel(), 0)
    return counts


def median_frequency_weights(counts: torch.Tensor) -> torch.Tensor:
    """Median frequency balancing (Eigen and Fergus): ``w_c = median(f) / f_c``.

    ``f_c`` is the pixels of class ``c`` over the pixels of the images where ``c`` appears
    (from :func:`class_frequencies`). A class that never appears gets weight 0. The median is
    the true one: with an even number of classes present, the mean of the two middle
    frequencies (``torch.median`` would give the lower one).
    """
    freq = counts[0].double() / counts[1].double().clamp(min=1)
    present = counts[0] > 0
    median = torch.quantile(freq[present], 0.5)  # interpolates between the middle two
    weights = torch.where(present, median / freq.clamp(min=1e-12), torch.zeros_like(freq))
    return weights.float()


def parse_class_weights(values: Sequence[float], num_classes: int) -> torch.Tensor:
    """Checks a list of given class weights: one non-negative number per class."""
    if len(values) != num_classes:
        raise ValueError(f"{len(values)} class weights given for {num_classes} classes")
    weights = torch.tensor([float(v) for v in values])
    if (weights < 0).any() or not weights.isfinite().all():
        raise ValueError(f"class weights must be finite and non-negative, got {list(values)}")
    return weights
