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


@pytest.fixture(params=["direct", "winograd"])
def convolutions(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How ``optimize_for_inference`` computes fp32 3x3 convolutions when not told: by
    oneDNN (``direct``) or by NNPACK (``winograd``), whatever this CPU's default, so that
    both paths are tested on every CPU where NNPACK runs."""
    from fcnseg.inference import optimize

    if request.param == "winograd" and not optimize.winograd_available():
        pytest.skip("NNPACK does not run on this CPU")
    monkeypatch.setattr(optimize, "winograd_default", lambda: request.param == "winograd")
    # the small test nets' every 3x3 convolution and map, which the default would leave to
    # the direct path as too narrow or too small to gain
    monkeypatch.setattr(optimize, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(optimize, "WINOGRAD_MIN_CELLS", 0)
    monkeypatch.setattr(optimize, "WINOGRAD_MIN_SHARE", 0.0)
    return request.param
