"""fcnseg's own files made hostile: safetensors headers and records that lie.

Whatever a file declares (huge shapes, other types, missing or extra tensors, a record that
names another model or a huge one, megabytes of JSON, a pickle), loading it is one
FcnsegError line naming the file, within seconds, in an address space capped at a little
above what the process had, and nothing in it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import resource
import struct
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fcnseg
from fcnseg.data.synthetic import SYNTHETIC_INFO
from fcnseg.errors import FcnsegError
from fcnseg.io import weights as weights_module
from fcnseg.io.weights import ModelMeta, save_weights
from fcnseg.train.checkpoint import load_training_state

BACKBONE = {"width": 1 / 16, "fc_width": 16, "batch_norm": False}


def _meta() -> ModelMeta:
    return ModelMeta(
        model="fcn32s-vgg16",
        build={"num_classes": 6, "geometry": "lean", **BACKBONE},
        classes=tuple(SYNTHETIC_INFO.class_names),
        palette=tuple(SYNTHETIC_INFO.palette),
        input_convention=SYNTHETIC_INFO.convention,
    )


def _state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return fcnseg.build_model(
        "fcn32s-vgg16", num_classes=6, geometry="lean", **BACKBONE
    ).state_dict()


def _parts(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _write(path: Path, header: dict, body: bytes, length: int | None = None) -> None:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + body)


def _edit_header(edit: Callable[[dict], None], length: int | None = None):
    def make(good: Path, path: Path) -> None:
        header, body = _parts(good)
        edit(header)
        _write(path, header, body, length)

    return make


def _first_tensor(header: dict) -> dict:
    return header[next(k for k in header if k != "__metadata__")]


def _edit_record(edit: Callable[[dict], None]):
    def record(header: dict) -> None:
        data = json.loads(header["__metadata__"]["fcnseg"])
        edit(data)
        header["__metadata__"]["fcnseg"] = json.dumps(data)

    return _edit_header(record)


def _saved(
    state: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] = lambda s: s,
    **record: object,
):
    def make(good: Path, path: Path) -> None:
        save_weights(path, state(_state()), _meta().replace(**record))

    return make


def _build(**changes: object) -> dict:
    return {"num_classes": 6, "geometry": "lean", **BACKBONE, **changes}


class Marker:
    """Unpickling it would create the file ``path``: the proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _pickle(good: Path, path: Path) -> None:
    marker = path.with_name("code-ran")
    path.write_bytes(pickle.dumps({"conv1_1.weight": Marker(str(marker))}))


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda data: data.__setitem__(key, value)


def _many_classes(data: dict) -> None:
    count = 20_000  # a record near the 1 MiB cap, declaring a 20,000-class score layer
    data["build"]["num_classes"] = count
    data["classes"] = ["c"] * count
    data["palette"] = [[0, 0, 0]] * count


CASES = {
    # safetensors' own header: shapes, offsets and types that do not match the bytes
    "huge shape": (_edit_header(lambda h: _first_tensor(h).update(shape=[2**40, 2**40])), None),
    "overflowing shape": (
        _edit_header(lambda h: _first_tensor(h).update(shape=[2**62, 2**62, 4])),
        None,
    ),
    "offsets past the end": (
        _edit_header(lambda h: _first_tensor(h).update(shape=[2**38], data_offsets=[0, 2**40])),
        None,
    ),
    "other dtype, same offsets": (
        _edit_header(lambda h: _first_tensor(h).update(dtype="I64")),
        None,
    ),
    "header length 2**60": (_edit_header(lambda h: None, length=2**60), "header of"),
    "header length past the file": (_edit_header(lambda h: None, length=10_000_000), None),
    "non-string metadata": (
        _edit_header(lambda h: h["__metadata__"].update(fcnseg=5)),
        None,
    ),
    # tensors that do not fit the record
    "int32 tensors": (
        _saved(lambda s: {k: v.to(torch.int32) for k, v in s.items()}),
        "is torch.int32, the model's torch.float32",
    ),
    "float16 tensors": (
        _saved(lambda s: {k: v.half() for k, v in s.items()}),
        "is torch.float16",
    ),
    "a tensor missing": (_saved(lambda s: dict(list(s.items())[1:])), "missing"),
    "an extra tensor": (_saved(lambda s: {**s, "x": torch.zeros(2)}), "unexpected"),
    # records that describe another model or a huge one
    "record names another model": (_saved(model="fcn8s-vgg16"), "missing"),
    "record names AlexNet": (_saved(model="fcn32s-alexnet"), "not an option of fcn32s-alexnet"),
    "record declares width 64 (17 GB)": (_saved(build=_build(width=64.0)), "(4096, 3, 3, 3)"),
    "record declares fc_width 1e9": (_saved(build=_build(fc_width=10**9)), "1000000000"),
    "record declares 20,000 classes": (_edit_record(_many_classes), "do not fit"),
    "record with an unknown build option": (_saved(build=_build(evil=1)), "evil"),
    "record with a string width": (_saved(build=_build(width="64")), None),
    "record with an unknown model": (_edit_record(_set("model", "resnet")), "unknown model"),
    "record of another format": (_edit_record(_set("format", "x/9")), "format"),
    "record not an object": (_edit_record(_set("build", [1, 2])), None),
    # megabytes of JSON
    "8 MB of notes": (_edit_record(_set("notes", ["x" * (8 << 20)])), "a real one is small"),
    "deeply nested JSON": (
        _edit_header(lambda h: h["__metadata__"].update(fcnseg="[" * 100_000 + "]" * 100_000)),
        "not JSON",
    ),
    # not safetensors at all: a pickle that would run code
    "a pickle": (_pickle, None),
}


@contextlib.contextmanager
def address_space_cap(extra: int = 1 << 30) -> Iterator[None]:
    """Caps this process's address space at what it maps now plus ``extra``, so that an
    allocation the file's size does not justify fails here instead of exhausting the
    machine (Linux only; elsewhere no cap)."""
    status = Path("/proc/self/status")
    if not status.is_file():
        yield
        return
    mapped = next(
        int(line.split()[1]) * 1024
        for line in status.read_text().splitlines()
        if line.startswith("VmSize:")
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = mapped + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("good") / "good.safetensors"
    save_weights(path, _state(), _meta())
    fcnseg.load_model(path)  # valid: the damage is what is tested; warms the caches
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_weight_file_is_one_error_line(
    case: str, good_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, expected = CASES[case]
    path = tmp_path / "hostile.safetensors"
    make(good_file, path)
    built = []
    real_build = weights_module.build_model

    def build(*args, **kwargs):  # only the meta device before the tensors are checked
        built.append(torch.empty(0).device.type)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(weights_module, "build_model", build)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with address_space_cap(), pytest.raises(FcnsegError) as raised:
            fcnseg.load_model(path)
    finally:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    message = str(raised.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    if expected is not None:
        assert expected in message, message
    assert elapsed < 5.0  # a hang fails; a loaded machine does not
    assert peak <= 4 * path.stat().st_size + (2 << 20), (peak, path.stat().st_size)
    assert built in ([], ["meta"]), built  # nothing built for real from a lying record
    assert not path.with_name("code-ran").exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_hostile_training_state_runs_no_code(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    (tmp_path / "last.state.pt").write_bytes(pickle.dumps({"optimizer": Marker(str(marker))}))
    torch.save({"optimizer": Marker(str(marker))}, tmp_path / "other.state.pt")
    for stem in ("last", "other"):
        with pytest.raises(FcnsegError, match=rf"{stem}\.state\.pt: cannot read training state"):
            load_training_state(tmp_path / stem)
    assert not marker.exists()


def test_the_header_cap_leaves_real_files_far_below_it(good_file: Path) -> None:
    header, _ = _parts(good_file)
    assert len(json.dumps(header)) < weights_module.MAX_HEADER_BYTES / 100
    assert sys.getsizeof(header["__metadata__"]["fcnseg"]) < weights_module.MAX_METADATA_BYTES
    assert os.path.getsize(good_file) > 0


@settings(
    max_examples=60,
    deadline=5000,  # ms per file: a hang fails the test
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cut=st.none() | st.integers(min_value=0, max_value=1 << 20),
    flips=st.lists(
        st.tuples(st.integers(min_value=0, max_value=1 << 20), st.integers(0, 255)), max_size=6
    ),
    in_header=st.booleans(),
)
def test_damaged_weight_files_load_or_fail_in_one_line(
    good_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
    cut: int | None,
    flips: list[tuple[int, int]],
    in_header: bool,
) -> None:
    # benchmarks/fuzz.py runs thousands of these; damage mostly lands in the header, where
    # the structure is
    data = bytearray(good_file.read_bytes())
    header_end = 8 + int.from_bytes(data[:8], "little")
    span = header_end if in_header else len(data)
    for position, value in flips:
        data[position % span] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path_factory.getbasetemp() / "damaged.safetensors"
    path.write_bytes(bytes(data))
    try:
        with address_space_cap():
            fcnseg.load_model(path)
    except FcnsegError as error:
        message = str(error)
        assert message.startswith(str(path)) and "\n" not in message, message
