"""Fixtures of the io tests; the file writers are in weight_files.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
from weight_files import write_caffemodel


@pytest.fixture
def caffemodel_writer(tmp_path: Path) -> Callable[..., Path]:
    """Writes ``blobs`` to ``tmp_path / name`` as a .caffemodel."""

    def write(name: str, blobs: Mapping[str, list[np.ndarray]], *, legacy: bool = False) -> Path:
        return write_caffemodel(tmp_path / name, blobs, legacy=legacy)

    return write
