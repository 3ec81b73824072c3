"""Label maps for lists of images: batched where sizes allow, tiled where images are too big."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from fcnseg.errors import FcnsegError
from fcnseg.inference.optimize import optimize_for_inference
from fcnseg.inference.tiling import Span, tile_alignment, tile_margin, tile_spans
from fcnseg.models import head_scores


@dataclass(frozen=True)
class _Job:
    """One forward pass's worth of one image: a window, and the part of its output kept."""

    image: int
    rows: Span
    cols: Span


class Predictor:
    """Runs an FCN over images of any size and returns labels or class probabilities.

    Images of the same size are batched together. With ``tile``, an image larger than
    ``tile`` pixels on a side is cut into overlapping windows of at most ``tile x tile``
    pixels, whose overlap (the margin) follows from the net's receptive field and whose
    origins fall on its total stride: the stitched result equals whole-image inference
    (``fcnseg.inference.tiling``).

    Args:
        model: an FCN (or a net of FCNs); it is copied and prepared by
            :func:`~fcnseg.inference.optimize_for_inference`.
        precision: ``fp32`` (the default: the model's numbers to about 1e-7), ``bf16``, ``fp16`` or
            ``auto``.
        tile: the largest window side, in pixels; ``None`` runs every image whole.
        batch_size: the most windows (or images) in one forward pass.
        head: for a net with several heads (SIFT Flow's ``sem`` and ``geo``), the one whose
            scores are returned; the first head by default.
        optimize: prepare the model with ``optimize_for_inference``; without it the model
            runs as given (any module, any device), bit for bit its own numbers.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        precision: str = "fp32",
        tile: int | None = None,
        batch_size: int = 4,
        head: str | None = None,
        optimize: bool = True,
    ) -> None:
        if batch_size < 1:
            raise FcnsegError(f"batch_size must be at least 1, got {batch_size}")
        if tile is not None and tile < 1:
            raise FcnsegError(f"tile must be a positive number of pixels, got {tile}")
        self.tile = tile
        self.batch_size = batch_size
        self.heads_of = model  # the net whose ``heads`` name the outputs
        self.head = head
        if tile is not None:
            self.margin = tile_margin(model)
            self.alignment = tile_alignment(model)
        if optimize:
            self.model = optimize_for_inference(model, precision)
            self.precision = self.model.precision
        else:
            if precision != "fp32":
                raise FcnsegError(f"precision '{precision}' needs optimize=True")
            self.model = model.eval()
            self.precision = "fp32"

    def predict(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """One H x W int64 label map per C x H x W image (in the model's input convention)."""
        return self._run(images, lambda scores: scores.argmax(1), torch.int64, per_class=False)

    def predict_proba(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """One K x H x W map of class probabilities (softmax of the scores) per image."""
        return self._run(images, lambda scores: scores.softmax(1), torch.float32, per_class=True)

    def _run(
        self,
        images: Sequence[torch.Tensor],
        reduce: Callable[[torch.Tensor], torch.Tensor],
        dtype: torch.dtype,
        *,
        per_class: bool,
    ) -> list[torch.Tensor]:
        for index, image in enumerate(images):
            if not isinstance(image, torch.Tensor) or not image.is_floating_point():
                kind = image.dtype if isinstance(image, torch.Tensor) else type(image).__name__
                raise FcnsegError(
                    f"image {index}: {kind}; the predictor takes network inputs (float C x H x "
                    "W in the model's input convention); for raw pixels use fcnseg.predict"
                )
            if image.dim() != 3:
                raise FcnsegError(
                    f"image {index}: expected a C x H x W tensor, got shape {tuple(image.shape)}"
                )
        outputs: list[torch.Tensor | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[_Job]] = defaultdict(list)
        for job in self._jobs(images):
            groups[(job.rows.stop - job.rows.start, job.cols.stop - job.cols.start)].append(job)
        for jobs in groups.values():
            for first in range(0, len(jobs), self.batch_size):
                batch = jobs[first : first + self.batch_size]
                windows = torch.stack([_window(images[job.image], job) for job in batch])
                results = reduce(self._scores(windows))  # N×K×h×w or N×h×w
                for job, result in zip(batch, results, strict=True):
                    image = images[job.image]
                    if outputs[job.image] is None:
                        shape = image.shape[-2:]
                        if per_class:
                            shape = (result.shape[0], *shape)
                        outputs[job.image] = torch.empty(shape, dtype=dtype)
                    rows = slice(
                        job.rows.keep_start - job.rows.start, job.rows.keep_stop - job.rows.start
                    )
                    cols = slice(
                        job.cols.keep_start - job.cols.start, job.cols.keep_stop - job.cols.start
                    )
                    target = outputs[job.image]
                    target[
                        ...,
                        job.rows.keep_start : job.rows.keep_stop,
                        job.cols.keep_start : job.cols.keep_stop,
                    ] = result[..., rows, cols]
        return outputs  # type: ignore[return-value]

    def _jobs(self, images: Sequence[torch.Tensor]) -> list[_Job]:
        jobs = []
        for index, image in enumerate(images):
            height, width = image.shape[-2:]
            if self.tile is None:
                rows, cols = [Span(0, height, 0, height)], [Span(0, width, 0, width)]
            else:
                rows = tile_spans(height, self.tile, self.margin, self.alignment)
                cols = tile_spans(width, self.tile, self.margin, self.alignment)
            jobs.extend(_Job(index, row, col) for row in rows for col in cols)
        return jobs

    def _scores(self, windows: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters(), windows).device
        with torch.no_grad():
            scores = head_scores(self.heads_of, self.model(windows.to(device)))
        head = self.head if self.head is not None else next(iter(scores))
        if head not in scores:
            raise FcnsegError(f"unknown head '{head}'; the model has {', '.join(scores)}")
        return scores[head].cpu()


def _window(image: torch.Tensor, job: _Job) -> torch.Tensor:
    return image[:, job.rows.start : job.rows.stop, job.cols.start : job.cols.stop]
