"""Small nets and data for the training tests: a 1/16-width VGG16 trains in milliseconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from fcnseg.data.synthetic import SyntheticShapes
from fcnseg.train import TrainConfig, recipe

TINY_BACKBONE = {"width": 1 / 16, "fc_width": 16, "batch_norm": True}


def tiny_config(**overrides: object) -> TrainConfig:
    """The scratch recipe on a tiny net and tiny synthetic images, on the CPU."""
    settings = dict(
        dataset="synthetic",
        backbone=TINY_BACKBONE,
        batch_size=2,
        max_iter=4,
        eval_every=2,
        device="cpu",
    )
    settings.update(overrides)
    return recipe("scratch", "fcn8s-vgg16", **settings)


@pytest.fixture
def tiny_data() -> tuple[SyntheticShapes, SyntheticShapes]:
    return SyntheticShapes(12, size=32, seed=5), SyntheticShapes(4, size=32, seed=6)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Tiny nets gain nothing from a second thread, and on a shared CPU the threads' spin
    # barriers can make each operation orders of magnitude slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
