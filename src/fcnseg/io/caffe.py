"""Reading ``.caffemodel`` files without Caffe: a binary ``NetParameter`` parsed by protobuf.

The schema is the weight-carrying subset of Caffe's ``caffe.proto`` (``caffe.proto`` beside this
file, compiled to ``caffe_pb2``). Both layer lists are read: ``layer`` (``LayerParameter``, field
100, Caffe since 2015, which the published FCNs use) and the legacy ``layers``
(``V1LayerParameter``, field 2, which the ILSVRC VGG16 file uses). A blob's shape is its
``BlobShape`` or, in older files, the 4-D num/channels/height/width; its values are float or
double.

Parsing is bounded: the file size is checked against protobuf's 2 GiB message limit before it is
read, protobuf rejects any length that runs past the buffer, and every blob's declared shape is
checked against the number of values it actually holds before an array is made of them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from fcnseg.errors import FcnsegError
from fcnseg.io import caffe_pb2

# Protobuf cannot represent a message of 2 GiB or more; the largest published FCN
# (nyud-fcn32s-color-hha, two VGG16 streams) is about half that.
MAX_CAFFEMODEL_BYTES = 2**31 - 1


def read_caffemodel(path: str | os.PathLike[str]) -> dict[str, list[np.ndarray]]:
    """The parameter blobs of every layer that has any, by Caffe layer name, in file order.

    Args:
        path: a binary ``.caffemodel`` (a serialized ``NetParameter``).

    Returns:
        Layer name to its blobs (weights then bias for convolutions and inner products), each
        an array of the blob's declared shape (4-D num x channels x height x width in legacy
        files), float32 or, for double data, float64.

    Raises:
        FcnsegError: the file is missing, too large, truncated or corrupt, has no layers, or a
            blob's shape does not match its data; the message names the file and the layer.
    """
    path = Path(path)
    net = _parse(path)
    if net.layer and net.layers:
        raise FcnsegError(
            f"{path}: has both the 'layer' and the legacy 'layers' list; "
            "expected one (a corrupt or hand-merged file)"
        )
    layers = net.layer or net.layers
    if not layers:
        raise FcnsegError(f"{path}: no layers; expected a Caffe NetParameter (.caffemodel)")
    blobs_by_layer: dict[str, list[np.ndarray]] = {}
    for index, layer in enumerate(layers):
        if not layer.blobs:
            continue
        if not layer.name:
            raise FcnsegError(f"{path}: layer #{index} has parameters but no name")
        if layer.name in blobs_by_layer:
            raise FcnsegError(f"{path}: two layers named {layer.name!r} have parameters")
        blobs_by_layer[layer.name] = [
            _blob_array(path, layer.name, i, blob) for i, blob in enumerate(layer.blobs)
        ]
    return blobs_by_layer


def _parse(path: Path) -> caffe_pb2.NetParameter:
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise FcnsegError(f"{path}: not a file")
        if size == 0:
            raise FcnsegError(f"{path}: empty file; expected a Caffe NetParameter (.caffemodel)")
        if size > MAX_CAFFEMODEL_BYTES:
            raise FcnsegError(
                f"{path}: {size} bytes; a .caffemodel cannot exceed {MAX_CAFFEMODEL_BYTES} "
                "(protobuf's message limit)"
            )
        data = path.read_bytes()
    except OSError as error:
        raise FcnsegError(f"{path}: cannot read: {error.strerror or error}") from None
    try:
        return caffe_pb2.NetParameter.FromString(data)
    except (DecodeError, UnicodeDecodeError):  # the pure-Python parser reports bad UTF-8 apart
        raise FcnsegError(
            f"{path}: truncated or corrupt; protobuf cannot parse it as a Caffe NetParameter"
        ) from None


def _blob_array(path: Path, layer: str, index: int, blob: caffe_pb2.BlobProto) -> np.ndarray:
    where = f"{path}: layer {layer!r} blob {index}"
    if blob.HasField("shape"):
        shape = tuple(blob.shape.dim)
    elif any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        shape = (blob.num, blob.channels, blob.height, blob.width)
    else:
        raise FcnsegError(f"{where}: no shape (neither 'shape' nor num/channels/height/width)")
    if any(d < 0 for d in shape):
        raise FcnsegError(f"{where}: negative dimension in shape {shape}")
    if blob.data and blob.double_data:
        raise FcnsegError(f"{where}: has both float and double data; expected one")
    values, dtype = (blob.double_data, np.float64) if blob.double_data else (blob.data, np.float32)
    count = math.prod(shape)  # exact integer: a huge declared shape cannot overflow
    if count != len(values):
        raise FcnsegError(
            f"{where}: shape {shape} needs {count} values but the blob holds {len(values)}"
        )
    return np.array(values, dtype=dtype).reshape(shape)
