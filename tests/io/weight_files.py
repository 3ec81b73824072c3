"""Weight files for the io tests, written with the protobuf library and torch.save.

Nothing downloads: each test writes the files it reads, from the checked-in schema. Nets are
VGG16s narrowed by ``width`` so that files stay small; the layer names and the structure are
VGG16's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from fcnseg.io import caffe_pb2
from fcnseg.models import build_model

# A narrow VGG16: conv widths 8..64, fc6/fc7 32 wide. Structure and names are VGG16's.
SMALL = {"width": 0.125, "fc_width": 32}

Blobs = dict[str, list[np.ndarray]]


def random_blobs(target: Mapping[str, torch.Tensor], seed: int = 0) -> Blobs:
    """Random blobs named as Caffe names the layers of a state dict (weight, then bias).

    Weights are He-scaled (std sqrt(2 / fan-in)) so that activations keep their size through
    a deep net; biases are small.
    """
    rng = np.random.default_rng(seed)
    blobs: Blobs = {}
    for key, tensor in target.items():
        module, _, param = key.rpartition(".")
        layer = module.replace(".", "/")
        shape = tuple(tensor.shape)
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        std = (2.0 / fan_in) ** 0.5 if param == "weight" else 0.1
        values = (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)
        blobs.setdefault(layer, []).insert(0 if param == "weight" else 1, values)
    return blobs


def fcn_blobs(model: str, num_classes: int, seed: int = 0, **options: object) -> Blobs:
    """Random blobs of every layer of an fcnseg model, as a Caffe FCN file would hold them."""
    with torch.device("meta"):
        net = build_model(model, num_classes=num_classes, **options)
    return random_blobs(net.state_dict(), seed)


def legacy_shape(array: np.ndarray) -> tuple[int, int, int, int]:
    """The 4-D num/channels/height/width a legacy Caffe file gives a blob."""
    return (1,) * (4 - array.ndim) + tuple(array.shape)  # type: ignore[return-value]


def write_caffemodel(
    path: Path, blobs: Mapping[str, list[np.ndarray]], *, legacy: bool = False
) -> Path:
    """A NetParameter with one layer per entry: ``layer`` with BlobShape, or (legacy) the V1
    ``layers`` list with num/channels/height/width, as the ILSVRC VGG16 file has them.
    float64 arrays are written as double_data."""
    net = caffe_pb2.NetParameter(name="test-net")
    for name, layer_blobs in blobs.items():
        if legacy:
            layer = net.layers.add(name=name)
            layer.type = (
                caffe_pb2.V1LayerParameter.INNER_PRODUCT
                if layer_blobs[0].ndim == 2
                else caffe_pb2.V1LayerParameter.CONVOLUTION
            )
        else:
            layer = net.layer.add(name=name, type="Convolution")
        layer.bottom.append("bottom")
        layer.top.append(name)
        for array in layer_blobs:
            blob = layer.blobs.add()
            if legacy:
                blob.num, blob.channels, blob.height, blob.width = legacy_shape(array)
            else:
                blob.shape.dim.extend(array.shape)
            values = array.ravel().tolist()
            (blob.double_data if array.dtype == np.float64 else blob.data).extend(values)
    path.write_bytes(net.SerializeToString())
    return path


def state_from_blobs(blobs: Mapping[str, list[np.ndarray]]) -> dict[str, torch.Tensor]:
    """Caffe-named state dict (``conv1_1.weight``), as pytorch-fcn saves one."""
    state = {}
    for layer, layer_blobs in blobs.items():
        module = layer.replace("/", ".")
        for param, array in zip(("weight", "bias"), layer_blobs, strict=False):
            state[f"{module}.{param}"] = torch.from_numpy(array.copy())
    return state
