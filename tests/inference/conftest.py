"""Fixtures of the inference tests: both geometries, one thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(params=["caffe", "lean"])
def geometry(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    # Small nets gain little from a second thread, and on a shared CPU the threads' spin
    # barriers can make each operation far slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
