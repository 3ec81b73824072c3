"""PyTorch checkpoints as Caffe-named blobs: torchvision's VGG16 and pytorch-fcn's FCNs.

Loading never unpickles arbitrary objects: ``torch.load(weights_only=True)`` admits only
tensors, containers and plain values. Two layouts are recognised:

* torchvision's ``vgg16`` state dict (``features.0.weight`` ... ``classifier.6.bias``), renamed
  to Caffe's layer names (``conv1_1`` ... ``fc8``);
* a state dict already keyed by Caffe layer names (``conv1_1.weight``, ``score_fr.bias``), bare
  or under ``model_state_dict`` as pytorch-fcn's training checkpoints keep it.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnseg.errors import FcnsegError
from fcnseg.models import VGG16

TORCHVISION = "torchvision"
CAFFE_NAMED = "caffe-named"
PYTORCH_FCN = "pytorch-fcn"

# torchvision's VGG16 keeps the same layer chain as ours (Caffe's), split in two nn.Sequential
# and numbered by position: ``features`` up to pool5, ``classifier`` from fc6 to fc8 (its
# AdaptiveAvgPool in between has no parameters and no index).
_TORCHVISION_SPLIT = "pool5"


def torchvision_vgg16_names() -> dict[str, str]:
    """torchvision module to Caffe layer (``features.0`` is ``conv1_1``, ``classifier.6`` fc8)."""
    with torch.device("meta"):
        trunk = VGG16().trunk
    split = trunk.index(_TORCHVISION_SPLIT) + 1
    names = {f"features.{i}": layer for i, layer in enumerate(trunk[:split])}
    names |= {f"classifier.{i}": layer for i, layer in enumerate(trunk[split:])}
    return names


_PARAM_INDEX = {"weight": 0, "bias": 1}
# torch names the global it refused: "Unsupported global: GLOBAL io.open was not ..."
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL (\S+)")
_KEY = re.compile(r"^(?P<layer>.+)\.(?P<param>weight|bias)$")


def read_torch_checkpoint(path: str | os.PathLike[str]) -> tuple[str, dict[str, list[np.ndarray]]]:
    """The layout of a PyTorch checkpoint and its parameters as Caffe-named blobs.

    Args:
        path: a ``.pth`` / ``.pt`` file saved by ``torch.save``.

    Returns:
        ``(layout, blobs)``: layout is ``"torchvision"``, ``"caffe-named"`` or
        ``"pytorch-fcn"``; blobs maps each Caffe layer name to ``[weight, bias]`` (``[weight]``
        for a bias-free layer), as float32 or float64 arrays.

    Raises:
        FcnsegError: the file cannot be loaded with ``weights_only=True`` (truncated, corrupt,
            or holding objects other than tensors and plain values), or its keys are neither
            layout.
    """
    path = Path(path)
    if not path.is_file():
        raise FcnsegError(f"{path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = _UNSUPPORTED.search(str(error))
        what = f"'{refused[1]}'" if refused else "objects other than tensors and plain values"
        raise FcnsegError(
            f"{path}: holds {what}, which loading with weights_only=True refuses to unpickle"
        ) from None
    except Exception as error:  # noqa: BLE001 - torch.load fails in many ways on a bad file
        first_line = (str(error).strip().splitlines() or [""])[0].split(". ")[0][:200]
        raise FcnsegError(
            f"{path}: truncated or corrupt PyTorch checkpoint ({type(error).__name__}"
            f"{': ' + first_line if first_line else ''})"
        ) from None
    if isinstance(checkpoint, Mapping) and "model_state_dict" in checkpoint:
        layout, state = PYTORCH_FCN, checkpoint["model_state_dict"]
    else:
        layout, state = CAFFE_NAMED, checkpoint
    if not isinstance(state, Mapping) or not state:
        raise FcnsegError(f"{path}: expected a state dict (names to tensors), found {_kind(state)}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise FcnsegError(
                f"{path}: entry {key!r} is {_kind(value)}; expected parameter names to tensors"
            )
        if not value.is_floating_point():
            raise FcnsegError(f"{path}: {key} has dtype {value.dtype}; expected floating point")
    if layout == CAFFE_NAMED and any(k.startswith(("features.", "classifier.")) for k in state):
        layout = TORCHVISION
        state = _rename_torchvision_vgg16(path, state)
    return layout, _blobs_by_layer(path, state)


def _rename_torchvision_vgg16(path: Path, state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    with torch.device("meta"):
        reference = VGG16().state_dict()
    names = torchvision_vgg16_names()
    caffe_to_torchvision = {layer: module for module, layer in names.items()}
    expected = set()
    for key in reference:
        layer, _, param = key.rpartition(".")
        expected.add(f"{caffe_to_torchvision[layer]}.{param}")
    if set(state) != expected:
        extra = sorted(set(state) - expected)[:3]
        missing = sorted(expected - set(state))[:3]
        raise FcnsegError(
            f"{path}: a torchvision state dict but not VGG16's (unexpected {extra}, "
            f"missing {missing}); only torchvision's vgg16 is mapped"
        )
    renamed = {}
    for key, tensor in state.items():
        module, _, param = key.rpartition(".")
        renamed[f"{names[module]}.{param}"] = tensor
    return renamed


def _blobs_by_layer(path: Path, state: Mapping[str, torch.Tensor]) -> dict[str, list[np.ndarray]]:
    params: dict[str, dict[int, np.ndarray]] = {}
    for key, tensor in state.items():
        match = _KEY.match(key)
        if match is None:
            raise FcnsegError(
                f"{path}: parameter {key!r} is not '<layer>.weight' or '<layer>.bias'"
            )
        params.setdefault(match["layer"], {})[_PARAM_INDEX[match["param"]]] = _array(tensor)
    blobs = {}
    for layer, by_index in params.items():
        if 0 not in by_index:
            raise FcnsegError(f"{path}: layer {layer!r} has a bias but no weight")
        blobs[layer] = [by_index[i] for i in sorted(by_index)]
    return blobs


def _array(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    if tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()  # half and bfloat16 widen exactly
    return tensor.contiguous().numpy()


def _kind(value: object) -> str:
    return type(value).__name__
