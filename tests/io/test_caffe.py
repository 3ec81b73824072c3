"""The .caffemodel reader: both layer lists, both shape forms, float and double, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from weight_files import write_caffemodel

from fcnseg.errors import FcnsegError
from fcnseg.io import caffe, caffe_pb2, read_caffemodel


def _blobs() -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(1)
    return {
        "conv1": [
            rng.standard_normal((4, 3, 3, 3), dtype=np.float32),
            np.arange(4, dtype=np.float32),
        ],
        "fc6": [
            rng.standard_normal((5, 36), dtype=np.float32),
            rng.standard_normal(5).astype(np.float32),
        ],
        "upscore": [rng.standard_normal((2, 2, 4, 4))],  # float64: written as double_data
    }


@pytest.mark.parametrize("legacy", [False, True], ids=["layer", "V1 layers"])
def test_reads_both_layer_lists_bit_for_bit(tmp_path: Path, legacy: bool) -> None:
    blobs = _blobs()
    read = read_caffemodel(write_caffemodel(tmp_path / "net.caffemodel", blobs, legacy=legacy))
    assert list(read) == list(blobs)
    for name, arrays in blobs.items():
        assert len(read[name]) == len(arrays)
        for got, expected in zip(read[name], arrays, strict=True):
            assert got.dtype == expected.dtype
            # legacy files carry 4-D num/channels/height/width: the same values, leading 1s
            shape = expected.shape if not legacy else (1,) * (4 - expected.ndim) + expected.shape
            assert got.shape == shape
            assert got.tobytes() == expected.reshape(shape).tobytes()


def test_layers_without_parameters_are_left_out(tmp_path: Path) -> None:
    net = caffe_pb2.NetParameter()
    net.layer.add(name="relu1", type="ReLU")
    conv = net.layer.add(name="conv1", type="Convolution")
    conv.blobs.add().shape.dim.extend([1])
    conv.blobs[0].data.append(2.5)
    path = tmp_path / "net.caffemodel"
    path.write_bytes(net.SerializeToString())
    assert {k: [b.tolist() for b in v] for k, v in read_caffemodel(path).items()} == {
        "conv1": [[2.5]]
    }


def _single_blob_file(tmp_path: Path, fill) -> Path:  # noqa: ANN001
    net = caffe_pb2.NetParameter()
    layer = net.layer.add(name="fc6", type="InnerProduct")
    fill(layer.blobs.add())
    path = tmp_path / "net.caffemodel"
    path.write_bytes(net.SerializeToString())
    return path


def test_shape_that_does_not_match_data_names_layer_and_both_counts(tmp_path: Path) -> None:
    def fill(blob) -> None:  # noqa: ANN001
        blob.shape.dim.extend([4096, 25088])
        blob.data.extend([0.0] * 6)

    with pytest.raises(
        FcnsegError,
        match=r"'fc6' blob 0: shape \(4096, 25088\) needs 102760448 values but the blob holds 6",
    ):
        read_caffemodel(_single_blob_file(tmp_path, fill))


def test_huge_declared_legacy_shape_is_an_error_not_an_allocation(tmp_path: Path) -> None:
    def fill(blob) -> None:  # noqa: ANN001
        blob.num, blob.channels, blob.height, blob.width = 2**40, 2**40, 2**40, 2**40
        blob.data.append(1.0)

    with pytest.raises(FcnsegError, match=f"needs {2**160} values"):
        read_caffemodel(_single_blob_file(tmp_path, fill))


@pytest.mark.parametrize(
    ("fill", "message"),
    [
        (lambda b: b.data.append(1.0), "no shape"),
        (lambda b: (b.shape.dim.append(-1), b.data.append(1.0)), "negative dimension"),
        (
            lambda b: (b.shape.dim.append(1), b.data.append(1.0), b.double_data.append(1.0)),
            "both float and double",
        ),
    ],
    ids=["no shape", "negative", "float and double"],
)
def test_malformed_blobs(tmp_path: Path, fill, message: str) -> None:  # noqa: ANN001
    with pytest.raises(FcnsegError, match=message):
        read_caffemodel(_single_blob_file(tmp_path, fill))


def test_net_errors(tmp_path: Path) -> None:
    path = tmp_path / "net.caffemodel"
    with pytest.raises(FcnsegError, match="cannot read"):
        read_caffemodel(path)
    path.write_bytes(b"")
    with pytest.raises(FcnsegError, match="empty file"):
        read_caffemodel(path)
    path.write_bytes(caffe_pb2.NetParameter(name="only a name").SerializeToString())
    with pytest.raises(FcnsegError, match="no layers"):
        read_caffemodel(path)
    both = caffe_pb2.NetParameter()
    both.layer.add(name="a")
    both.layers.add(name="b")
    path.write_bytes(both.SerializeToString())
    with pytest.raises(FcnsegError, match="both the 'layer' and the legacy 'layers'"):
        read_caffemodel(path)
    twice = caffe_pb2.NetParameter()
    for _ in range(2):
        blob = twice.layer.add(name="conv1").blobs.add()
        blob.shape.dim.append(1)
        blob.data.append(0.0)
    path.write_bytes(twice.SerializeToString())
    with pytest.raises(FcnsegError, match="two layers named 'conv1'"):
        read_caffemodel(path)


def test_truncated_file_is_one_line_error(tmp_path: Path) -> None:
    path = write_caffemodel(tmp_path / "net.caffemodel", _blobs())
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(FcnsegError) as error:
        read_caffemodel(path)
    assert str(error.value).startswith(f"{path}: truncated or corrupt")
    assert "\n" not in str(error.value)


def test_size_is_checked_before_the_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_caffemodel(tmp_path / "net.caffemodel", _blobs())
    monkeypatch.setattr(caffe, "MAX_CAFFEMODEL_BYTES", 100)

    def no_read(self: Path) -> bytes:
        raise AssertionError("read a file larger than the cap")

    monkeypatch.setattr(Path, "read_bytes", no_read)
    with pytest.raises(FcnsegError, match="cannot exceed 100"):
        read_caffemodel(path)


def test_declared_length_past_the_end_is_rejected_by_protobuf(tmp_path: Path) -> None:
    # NetParameter field 100 (layer), length-delimited, declaring 2**31 - 2 bytes that are not
    # there: protobuf must refuse it instead of reserving the memory.
    header = bytes([0xA2, 0x06]) + bytes([0xFE, 0xFF, 0xFF, 0xFF, 0x07])
    path = tmp_path / "net.caffemodel"
    path.write_bytes(header + b"\x00" * 16)
    with pytest.raises(FcnsegError, match="truncated or corrupt"):
        read_caffemodel(path)
