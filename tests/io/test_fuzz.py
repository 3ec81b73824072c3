"""Damaged .caffemodel files: random truncations and byte flips of a small valid file.

Whatever the damage, the reader returns blobs or raises FcnsegError (one line), within a time
bound (hypothesis' deadline) and allocating at most a small multiple of the file's size.
tracemalloc sees the Python and numpy allocations, which is where a declared size could turn
into memory; protobuf's own parser refuses lengths that run past the buffer.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from google.protobuf.internal import api_implementation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from weight_files import write_caffemodel

from fcnseg.errors import FcnsegError
from fcnseg.io import read_caffemodel

# Python objects, numpy array headers and the exception a bad file raises cost a few kB (about
# 6 kB for a 1.5 kB file, the file's bytes included) whatever the file; the rest must scale.
_FIXED_OVERHEAD = 16 * 1024
# protobuf's C parser (upb, the default) keeps values in its own arena, unseen here; the
# pure-Python one keeps each float as a Python object (24 bytes for 4 in the file).
_SIZE_MULTIPLE = {"upb": 4, "python": 16}.get(api_implementation.Type(), 4)


def _valid_file(directory: Path) -> tuple[bytes, bytes]:
    # few values, so that damage often lands on structure (tags, lengths, shapes)
    rng = np.random.default_rng(0)
    blobs = {
        "conv1_1": [rng.standard_normal((2, 3, 1, 1), dtype=np.float32), np.zeros(2, np.float32)],
        "fc6": [rng.standard_normal((3, 4), dtype=np.float32), np.ones(3, np.float32)],
        "upscore": [rng.standard_normal((1, 1, 2, 2))],
    }
    modern = write_caffemodel(directory / "modern.caffemodel", blobs).read_bytes()
    legacy = write_caffemodel(directory / "legacy.caffemodel", blobs, legacy=True).read_bytes()
    return modern, legacy


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    directory = tmp_path_factory.mktemp("valid")
    files = _valid_file(directory)
    for name in ("modern", "legacy"):  # warm protobuf's caches before measuring
        read_caffemodel(directory / f"{name}.caffemodel")
    return files


def _damage(data: bytes, cut: int | None, flips: list[tuple[int, int]]) -> bytes:
    damaged = bytearray(data if cut is None else data[: cut % (len(data) + 1)])
    for position, value in flips:
        if damaged:
            damaged[position % len(damaged)] = value
    return bytes(damaged)


@settings(
    max_examples=300,
    deadline=1000,  # ms per file: a hang fails the test
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    legacy=st.booleans(),
    cut=st.none() | st.integers(min_value=0, max_value=4095),
    flips=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=4095), st.integers(min_value=0, max_value=255)
        ),
        max_size=6,
    ),
)
def test_damaged_files_fail_cleanly_and_in_bounded_memory(
    valid_files: tuple[bytes, bytes],
    tmp_path_factory: pytest.TempPathFactory,
    legacy: bool,
    cut: int | None,
    flips: list[tuple[int, int]],
) -> None:
    data = _damage(valid_files[legacy], cut, flips)
    path = tmp_path_factory.getbasetemp() / "damaged.caffemodel"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        blobs = read_caffemodel(path)
    except FcnsegError as error:
        message = str(error)
        assert message.startswith(str(path)) and "\n" not in message
    else:
        assert all(isinstance(b, np.ndarray) for layer in blobs.values() for b in layer)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak <= _SIZE_MULTIPLE * len(data) + _FIXED_OVERHEAD, (peak, len(data))


def test_the_undamaged_files_read(valid_files: tuple[bytes, bytes], tmp_path: Path) -> None:
    # the fuzzing starts from files that are valid, so damage is what it tests
    for data in valid_files:
        path = tmp_path / "valid.caffemodel"
        path.write_bytes(data)
        assert set(read_caffemodel(path)) == {"conv1_1", "fc6", "upscore"}
