"""Fixtures of the training tests: tiny synthetic data, one thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from fcnseg.data.synthetic import SyntheticShapes


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
