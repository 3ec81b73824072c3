"""Starting weights: a coarser FCN (section 4.2) or a converted classifier (section 4.1)."""

from __future__ import annotations

import safetensors.torch
import torch

from fcnseg.errors import FcnsegError
from fcnseg.models import FCN, init_from_coarser
from fcnseg.pretrained import resolve
from fcnseg.train.checkpoint import CheckpointFiles, load_model


def initialize(model: FCN, spec: str) -> list[str]:
    """Copies into ``model`` the weights ``spec`` names; returns the names copied.

    ``spec`` is a checkpoint or shipped model (its metadata rebuilds the net it came from,
    which initialises ``model`` as :func:`fcnseg.models.init_from_coarser` does: FCN-16s from
    FCN-32s, or the same net from itself), or a safetensors file without metadata, whose
    tensors are copied wherever a tensor of ``model`` has the same Caffe name and shape (a
    classifier converted by ``fcnseg convert``; its fc8 and the zero score layers are left).
    """
    path = resolve(spec)
    files = CheckpointFiles.of(path)
    if files.metadata.exists():
        source, _ = load_model(path)
        try:
            return init_from_coarser(model, source)
        except ValueError as error:
            raise FcnsegError(f"{files.weights}: cannot initialise the model ({error})") from None
    try:
        tensors = safetensors.torch.load_file(files.weights)
    except Exception as error:  # noqa: BLE001 - a damaged file fails in the reader's own way
        raise FcnsegError(f"{files.weights}: cannot read safetensors weights ({error})") from None
    target = model.state_dict()
    copied = [n for n, t in tensors.items() if n in target and target[n].shape == t.shape]
    if not copied:
        raise FcnsegError(f"{files.weights}: no tensor matches a layer of the model by name/shape")
    with torch.no_grad():
        for name in copied:
            target[name].copy_(tensors[name])
    return copied
