"""Label maps for lists of images: batched where sizes allow, tiled where images are too big."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from fcnseg.errors import FcnsegError
from fcnseg.inference.memory import choose_tile
from fcnseg.inference.optimize import optimize_for_inference
from fcnseg.inference.tiling import Span, tile_alignment, tile_margin, tile_spans
from fcnseg.inference.tta import Augmentation, augmented_probabilities
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
    (``fcnseg.inference.tiling``). With ``max_memory`` and no ``tile``, each image whose
    prediction would need more than ``max_memory`` bytes is tiled, in the largest tiles that
    fit (:func:`fcnseg.inference.memory.choose_tile`): the same labels, less memory.

    With ``tta``, each image's views (:mod:`fcnseg.inference.tta`: flipped, rescaled) are run
    one at a time, each tiled as its own size needs, and their probabilities averaged; tiling
    stays exact, since each view is tiled whole.

    Args:
        model: an FCN (or a net of FCNs); it is copied and prepared by
            :func:`~fcnseg.inference.optimize_for_inference`. A model marked ``runs_as_is``
            (an exported ONNX graph, :class:`fcnseg.inference.OnnxModel`) runs as it is, in
            fp32 (``precision`` ``auto`` or ``fp32``).
        precision: ``fp32`` (the default: the model's numbers to about 1e-7), ``bf16``, ``fp16`` or
            ``auto``.
        tile: the largest window side, in pixels; ``None`` runs every image whole (or as
            ``max_memory`` decides).
        batch_size: the most windows (or images) in one forward pass.
        head: for a net with several heads (SIFT Flow's ``sem`` and ``geo``), the one whose
            scores are returned; the first head by default.
        optimize: prepare the model with ``optimize_for_inference``; without it the model
            runs as given (any module, any device), bit for bit its own numbers.
        max_memory: bytes one image's prediction may take (estimated,
            :mod:`fcnseg.inference.memory`); larger images are tiled. None: no budget.
        tta: test-time augmentation (:class:`~fcnseg.inference.tta.Augmentation`); None or
            a plain one runs each image once.
        progress: show a progress bar (tqdm, on a terminal) over the windows of a tiled image.

    Raises:
        FcnsegError: a batch size, tile or memory budget below 1.
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
        max_memory: int | None = None,
        tta: Augmentation | None = None,
        progress: bool = False,
    ) -> None:
        if batch_size < 1:
            raise FcnsegError(f"batch_size must be at least 1, got {batch_size}")
        if tile is not None and tile < 1:
            raise FcnsegError(f"tile must be a positive number of pixels, got {tile}")
        if max_memory is not None and max_memory < 1:
            raise FcnsegError(f"max_memory must be a positive number of bytes, got {max_memory}")
        self.tile = tile
        self.max_memory = max_memory
        self.tta = None if tta is None or tta.plain else tta
        self.progress = progress
        self.batch_size = batch_size
        self.heads_of = model  # the net whose ``heads`` name the outputs
        self.head = head
        # the tiles' margin and stride, known when tiles are asked for or first needed
        self.margin: int | None = None
        self.alignment: int | None = None
        if tile is not None:
            self.margin, self.alignment = tile_margin(model), tile_alignment(model)
        # an exported graph (fcnseg.inference.export.OnnxModel) runs as it is, in fp32
        runs_as_is = bool(getattr(model, "runs_as_is", False))
        if optimize and not runs_as_is:
            self.model = optimize_for_inference(model, precision)
            self.precision = self.model.precision
        else:
            if precision not in ("fp32", "auto" if runs_as_is else "fp32"):
                raise FcnsegError(
                    f"precision '{precision}' needs optimize=True"
                    if not runs_as_is
                    else f"precision '{precision}': an exported model runs in fp32"
                )
            self.model = model.eval()
            self.precision = "fp32"

    def predict(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """One H x W int64 label map per C x H x W image (in the model's input convention).

        Raises:
            FcnsegError: an image that is not a float C x H x W tensor.
        """
        if self.tta is not None:
            _check(images)
            return [self._augmented(image).argmax(0) for image in images]
        return self._run(images, lambda scores: scores.argmax(1), torch.int64, per_class=False)

    def predict_proba(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """One K x H x W float32 map of class probabilities (softmax of the scores; with
        ``tta``, averaged over the views) per C x H x W image.

        Raises:
            FcnsegError: an image that is not a float C x H x W tensor.
        """
        if self.tta is not None:
            _check(images)
            return [self._augmented(image) for image in images]
        return self._run(images, lambda scores: scores.softmax(1), torch.float32, per_class=True)

    def predict_labels_and_proba(
        self, images: Sequence[torch.Tensor]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """For each C x H x W image, in one pass: its H x W int64 labels (as :meth:`predict`
        gives them) and K x H x W float32 probabilities (as :meth:`predict_proba`)."""
        if self.tta is not None:
            _check(images)
            return [(probs.argmax(0), probs) for probs in map(self._augmented, images)]

        def both(scores: torch.Tensor) -> torch.Tensor:
            labels = scores.argmax(1, keepdim=True).to(torch.float32)  # exact below 2**24
            return torch.cat([labels, scores.softmax(1)], 1)

        outputs = self._run(images, both, torch.float32, per_class=True)
        return [(output[0].to(torch.int64), output[1:]) for output in outputs]

    def predict_scores(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """One K x H x W float32 map of the net's scores (before the softmax) per image,
        without test-time augmentation."""
        return self._run(images, lambda scores: scores, torch.float32, per_class=True)

    def tile_for(self, height: int, width: int, *, per_class: bool = False) -> int | None:
        """The tile an image of ``height x width`` runs in: ``tile``, else the one
        ``max_memory`` calls for, else None (whole)."""
        if self.tile is not None:
            return self.tile
        if self.max_memory is None:
            return None
        try:
            return choose_tile(
                self.heads_of,
                height,
                width,
                self.max_memory,
                batch=self.batch_size,
                per_class=per_class,
            )
        except FcnsegError:  # no receptive field known: such a net is never tiled unasked
            return None

    def _augmented(self, image: torch.Tensor) -> torch.Tensor:
        # The views' scores come from the (tiled, batched) predictor, one view at a time.
        def scores(view: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"scores": torch.stack(self.predict_scores(list(view)))}

        assert self.tta is not None
        return augmented_probabilities(image[None], scores, self.tta)["scores"][0]

    def _run(
        self,
        images: Sequence[torch.Tensor],
        reduce: Callable[[torch.Tensor], torch.Tensor],
        dtype: torch.dtype,
        *,
        per_class: bool,
    ) -> list[torch.Tensor]:
        _check(images)
        outputs: list[torch.Tensor | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[_Job]] = defaultdict(list)
        jobs = self._jobs(images, per_class)
        for job in jobs:
            groups[(job.rows.stop - job.rows.start, job.cols.stop - job.cols.start)].append(job)
        tiled = len(jobs) > len(images)
        bar = tqdm(
            total=len(jobs),
            desc="tiles",
            unit="tile",
            leave=False,
            disable=True if not (self.progress and tiled) else None,
        )
        for group in groups.values():
            for first in range(0, len(group), self.batch_size):
                batch = group[first : first + self.batch_size]
                windows = torch.stack([_window(images[job.image], job) for job in batch])
                results = reduce(self._scores(windows))  # N×K×h×w or N×h×w
                bar.update(len(batch))
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
        bar.close()
        return outputs  # type: ignore[return-value]

    def _jobs(self, images: Sequence[torch.Tensor], per_class: bool) -> list[_Job]:
        jobs = []
        for index, image in enumerate(images):
            height, width = image.shape[-2:]
            tile = self.tile_for(height, width, per_class=per_class)
            if tile is None:
                rows, cols = [Span(0, height, 0, height)], [Span(0, width, 0, width)]
            else:
                if self.margin is None or self.alignment is None:
                    self.margin = tile_margin(self.heads_of)
                    self.alignment = tile_alignment(self.heads_of)
                rows = tile_spans(height, tile, self.margin, self.alignment)
                cols = tile_spans(width, tile, self.margin, self.alignment)
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


def _check(images: Sequence[torch.Tensor]) -> None:
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


def _window(image: torch.Tensor, job: _Job) -> torch.Tensor:
    return image[:, job.rows.start : job.rows.stop, job.cols.start : job.cols.stop]
