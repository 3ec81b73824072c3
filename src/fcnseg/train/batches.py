"""The training data as one endless, reproducible stream of batches.

The training images are read as a stream of epochs, each a fresh permutation of the training
set; a step of the run takes ``batch_size * accumulation * processes`` consecutive images of
the stream. Where an image sits in the stream decides everything random about it: the
permutation of each epoch comes from the run's seed and the epoch, the augmentation of each
image from the seed and its position. So the batches of step ``k`` are the same whether the
run started at step 0 or resumed at step ``k``, whatever the number of DataLoader workers, and
``N`` processes see the images one process accumulating ``N`` passes would see.
"""

from __future__ import annotations

import functools
import hashlib
import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from fcnseg.convention import InputConvention
from fcnseg.data import collate_pad
from fcnseg.data.dataset import JointTransform
from fcnseg.data.transforms import (
    Compose,
    RandomColourJitter,
    RandomCrop,
    RandomJitter,
    RandomMirror,
    RandomScale,
)
from fcnseg.errors import FcnsegError
from fcnseg.train.recipes import TrainConfig


def derive_seed(*parts: object) -> int:
    """A 63-bit seed determined by ``parts`` (the run's seed and what the draw is for)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class StreamBatches:
    """Batch sampler: this process's forward passes from step ``start_step`` on, forever.

    Forward pass ``a`` of step ``k`` on process ``rank`` is pass number
    ``m = (k * accumulation + a) * world_size + rank`` of the run and holds stream positions
    ``m * batch_size`` to ``(m + 1) * batch_size - 1``. Each item is ``(index, position)``.
    """

    def __init__(
        self,
        num_samples: int,
        *,
        batch_size: int,
        accumulation: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_samples < 1:
            raise ValueError("the training set is empty")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.accumulation = accumulation
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self.world_size = world_size

    def pass_number(self, step: int, forward_pass: int) -> int:
        """The run-wide number of this process's ``forward_pass``-th pass of ``step``."""
        return (step * self.accumulation + forward_pass) * self.world_size + self.rank

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            for forward_pass in range(self.accumulation):
                first = self.pass_number(step, forward_pass) * self.batch_size
                yield [(self.index(p), p) for p in range(first, first + self.batch_size)]
            step += 1

    def index(self, position: int) -> int:
        """The dataset index at ``position`` of the stream."""
        epoch, offset = divmod(position, self.num_samples)
        return int(self._permutation(epoch)[offset])

    @functools.lru_cache(maxsize=2)  # noqa: B019 - two epochs at most are in flight
    def _permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", epoch))
        return torch.randperm(self.num_samples, generator=generator)


@dataclass(frozen=True)
class Unreadable:
    """What the loader gives instead of a batch when one of its files cannot be read: the
    reader's one-line error, naming the file. It travels as data, so that a DataLoader worker
    does not wrap it in a traceback."""

    message: str


class UnreadableImageError(FcnsegError):
    """A training or held-out file could not be read (and bad files are not skipped)."""


class SeededSamples(Dataset):
    """``dataset`` indexed by ``(index, position)``, augmented from the position's own seed.

    Each item is ``(image, label, skipped)``. A file the dataset cannot read (its reader's
    :class:`~fcnseg.errors.FcnsegError`) makes the item :class:`Unreadable`, or, with
    ``skip_bad``, is replaced by the next readable image of the dataset (in index order,
    wrapping), augmented as the position's own would have been: ``skipped`` then holds the
    errors met. The batch keeps its size, and which image replaces which depends on the files
    alone, so a resumed run still repeats the uninterrupted one.
    """

    def __init__(
        self,
        dataset: Dataset,
        transform: JointTransform | None,
        seed: int,
        skip_bad: bool = False,
    ) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(
        self, key: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]] | Unreadable:
        index, position = key
        skipped: list[str] = []
        for offset in range(len(self)):
            try:
                image, label = self.dataset[(index + offset) % len(self)]
                break
            except FcnsegError as error:
                if not self.skip_bad:
                    return Unreadable(str(error))
                skipped.append(str(error))
        else:
            return Unreadable(f"no image of the training set can be read ({skipped[0]})")
        if self.transform is None:
            return image, label, tuple(skipped)
        # The transforms draw from torch's global generator; fork it so that the draws are
        # this position's, and the caller's generator is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.seed, "augment", position))
            image, label = self.transform(image, label)
        return image, label, tuple(skipped)


def collate_checked(
    items: Sequence[tuple[torch.Tensor, torch.Tensor, tuple[str, ...]] | Unreadable],
    ignore_index: int = 255,
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]] | Unreadable:
    """:func:`fcnseg.data.collate_pad` of :class:`SeededSamples` items: padded images and
    labels and the errors of the files skipped, or the first :class:`Unreadable`."""
    for item in items:
        if isinstance(item, Unreadable):
            return item
    images, labels = collate_pad([(image, label) for image, label, _ in items], ignore_index)
    return images, labels, tuple(message for *_, skipped in items for message in skipped)


def augmentation(
    config: TrainConfig, ignore_index: int = 255, convention: InputConvention | None = None
) -> JointTransform | None:
    """The configured augmentation: colour (in ``convention``, the images'), scale, crop,
    then the paper's mirror and jitter."""
    transforms: list[JointTransform] = []
    if config.colour_jitter:
        if convention is None:
            raise ValueError("colour jitter needs the images' input convention")
        transforms.append(RandomColourJitter(convention, config.colour_jitter))
    if config.scale is not None:
        transforms.append(RandomScale(*config.scale))
    if config.crop is not None:
        transforms.append(RandomCrop((config.crop, config.crop), ignore_index))
    if config.mirror:
        transforms.append(RandomMirror())
    if config.jitter:
        transforms.append(RandomJitter(config.jitter, ignore_index))
    return Compose(transforms) if transforms else None


def _ignore_interrupt(worker_id: int) -> None:
    # Ctrl-C reaches the workers too; only the main process handles it (it stops after the
    # step and saves), so a worker must not die of it first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def training_loader(
    dataset: Dataset,
    config: TrainConfig,
    *,
    start_step: int = 0,
    rank: int = 0,
    world_size: int = 1,
    ignore_index: int = 255,
    pin_memory: bool = False,
    skip_bad: bool = False,
) -> tuple[DataLoader, StreamBatches]:
    """The endless loader of this process's forward passes, and its sampler: each batch is
    :func:`collate_checked`'s (see :class:`SeededSamples` for ``skip_bad``)."""
    sampler = StreamBatches(
        len(dataset),  # type: ignore[arg-type]
        batch_size=config.batch_size,
        accumulation=config.accumulation,
        seed=config.seed,
        start_step=start_step,
        rank=rank,
        world_size=world_size,
    )
    transform = augmentation(config, ignore_index, getattr(dataset, "convention", None))
    samples = SeededSamples(dataset, transform, config.seed, skip_bad)
    extra: dict[str, Any] = {}
    if config.workers:
        extra = {"persistent_workers": True, "worker_init_fn": _ignore_interrupt}
    loader = DataLoader(
        samples,
        batch_sampler=sampler,
        num_workers=config.workers,
        collate_fn=functools.partial(collate_checked, ignore_index=ignore_index),
        pin_memory=pin_memory,
        **extra,
    )
    return loader, sampler
