"""Caffe-named blobs onto an fcnseg model's state dict, strictly.

A state-dict key is a Caffe layer name with '/' written '.' (``inception_3a.1x1.weight`` is blob
0 of ``inception_3a/1x1``), so the mapping is by name: ``.weight`` is a layer's blob 0,
``.bias`` its blob 1. Every key must be filled and every blob used; a blob's shape must be the
key's, up to the leading 1s of the 4-D shapes legacy files store (a bias as 1 x 1 x 1 x N, an
inner product as 1 x 1 x out x in).

Two kinds of source:

* a segmentation net (it has ``score_fr``) loads as it is;
* an ILSVRC classifier loads into its classifier backbone, which ``build_model`` then casts
  into the FCN (section 4.1): fully connected layers convolutionalized, the final classifier
  dropped, score layers zero, upsampling bilinear. Auxiliary classifiers are dropped too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import dropwhile
from typing import Any

import numpy as np
import torch

from fcnseg.errors import FcnsegError
from fcnseg.models import MODELS, build_model
from fcnseg.models.fcn import ATONCE_SCALES

Blobs = Mapping[str, list[np.ndarray]]
_PARAM_INDEX = {"weight": 0, "bias": 1}
# GoogLeNet's two auxiliary classifiers (training aids, section 4.1): not part of the backbone.
_AUXILIARY_PREFIXES = ("loss1/", "loss2/")
# Layers that hold a fixed constant rather than learned weights; pytorch-fcn's at-once net
# multiplies by the constants in its forward pass instead of storing them.
_FIXED_SCALES = {f"scale_{skip}": value for skip, value in ATONCE_SCALES.items()}


def caffe_layer(module_path: str, net: torch.nn.Module | None = None) -> str:
    """The Caffe layer name of a module path: ``conv1.7x7_s2`` is ``conv1/7x7_s2``.

    A net whose layers the reference names otherwise (the late-fusion net's streams, whose
    ``color.conv1_1`` is ``conv1_1color``) says so with a ``caffe_layer`` method of its own.
    """
    if net is not None and hasattr(net, "caffe_layer"):
        return net.caffe_layer(module_path)
    return module_path.replace(".", "/")


def select_net(where: str, blobs: Blobs, suffix: str, other_suffixes: Iterable[str]) -> Blobs:
    """The layers of one net in a two-net file, under the names of a one-net file.

    A layer ending in ``suffix`` loses it (``score_fr_sem`` becomes ``score_fr``); one ending in
    an other suffix belongs to the other net and is left out; the rest are shared.
    """
    other_suffixes = tuple(other_suffixes)
    selected: dict[str, list[np.ndarray]] = {}
    for name, layer_blobs in blobs.items():
        if other_suffixes and name.endswith(other_suffixes):
            continue
        if suffix and name.endswith(suffix):
            name = name[: -len(suffix)]
        if name in selected:
            raise FcnsegError(f"{where}: both '{name}' and '{name}{suffix}' have parameters")
        selected[name] = layer_blobs
    return selected


def fcn_state_dict(
    where: str,
    blobs: Blobs,
    model: str,
    num_classes: int,
    model_options: Mapping[str, Any],
    *,
    fixed_scales_may_be_missing: bool = False,
) -> dict[str, torch.Tensor]:
    """The state dict of ``model`` from the blobs of a segmentation net with the same layers.

    Args:
        where: the source file, for messages.
        blobs: Caffe layer name to blobs.
        model: an fcnseg model name.
        num_classes: the model's classes; the score layers' blobs must have as many.
        model_options: passed to ``build_model``.
        fixed_scales_may_be_missing: fill absent ``scale_pool4``/``scale_pool3`` with the
            at-once net's constants (checkpoints that apply them in code).

    Raises:
        FcnsegError: a layer is missing, unused, or has a blob of the wrong shape.
    """
    with torch.device("meta"):
        net = build_model(model, num_classes=num_classes, **model_options)
    target = net.state_dict()
    fill = {}
    if fixed_scales_may_be_missing:
        for key, tensor in target.items():
            layer = key.rpartition(".")[0]
            if layer in _FIXED_SCALES and layer not in blobs:
                fill[key] = torch.full(tensor.shape, _FIXED_SCALES[layer])
    state = _map(where, blobs, {k: v for k, v in target.items() if k not in fill}, model, net)
    state.update(fill)
    _check_unused(where, blobs, target, model, net)
    net.load_state_dict(state, strict=True, assign=True)
    return state


def classifier_fcn_state_dict(
    where: str, blobs: Blobs, model: str, num_classes: int, model_options: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """The state dict of ``model`` initialised from an ILSVRC classifier's blobs (section 4.1).

    The blobs load strictly into ``model``'s classifier backbone (its classifier layer sized
    from the file), which ``build_model`` convolutionalizes and decapitates; the FCN's own
    score layers (zero) and upsampling (bilinear) complete it.

    Raises:
        FcnsegError: a backbone layer is missing, a non-auxiliary layer is unused, or a blob
            has the wrong shape.
    """
    if model not in MODELS:
        raise FcnsegError(f"unknown model '{model}'; known models: {', '.join(MODELS)}")
    backbone = MODELS[model].backbone
    classifier_layer = caffe_layer(backbone.classifier_layer)
    if classifier_layer not in blobs:
        raise FcnsegError(
            f"{where}: neither an FCN (no 'score_fr' layer) nor a {backbone.__name__} "
            f"classifier (no '{classifier_layer}' layer) for model '{model}'"
        )
    ilsvrc_classes = _squeezed(blobs[classifier_layer][0].shape)[0]
    try:
        with torch.device("meta"):
            classifier = backbone(num_classes=ilsvrc_classes, **model_options)
    except TypeError as error:
        raise FcnsegError(f"model '{model}': {error}") from None
    target = classifier.state_dict()
    state = _map(where, blobs, target, f"the {backbone.__name__} classifier of '{model}'")
    aux = {name: b for name, b in blobs.items() if not name.startswith(_AUXILIARY_PREFIXES)}
    _check_unused(where, aux, target, model)
    classifier.load_state_dict(state, strict=True, assign=True)
    net = build_model(model, num_classes=num_classes, classifier=classifier)
    return {key: tensor.detach() for key, tensor in net.state_dict().items()}


def _map(
    where: str,
    blobs: Blobs,
    target: Mapping[str, torch.Tensor],
    what: str,
    net: torch.nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    for key, tensor in target.items():
        module, _, param = key.rpartition(".")
        layer = caffe_layer(module, net)
        if param not in _PARAM_INDEX:
            raise FcnsegError(f"{what}: state-dict entry {key} is not a weight or a bias")
        if layer not in blobs:
            missing.append(layer)
            continue
        layer_blobs = blobs[layer]
        index = _PARAM_INDEX[param]
        expected_blobs = sum(k.rpartition(".")[0] == module for k in target)
        if len(layer_blobs) != expected_blobs:
            raise FcnsegError(
                f"{where}: layer '{layer}' has {len(layer_blobs)} blobs; {what} expects "
                f"{expected_blobs} (weight{' and bias' if expected_blobs == 2 else ''})"
            )
        state[key] = _fit(where, layer, index, layer_blobs[index], tuple(tensor.shape), what)
    if missing:
        unique = list(dict.fromkeys(missing))
        raise FcnsegError(
            f"{where}: no layer {', '.join(repr(m) for m in unique[:5])}"
            f"{f' (and {len(unique) - 5} more)' if len(unique) > 5 else ''}; {what} needs it"
        )
    return state


def _fit(
    where: str, layer: str, index: int, blob: np.ndarray, shape: tuple[int, ...], what: str
) -> torch.Tensor:
    if blob.shape != shape and _squeezed(blob.shape) != _squeezed(shape):
        raise FcnsegError(
            f"{where}: layer '{layer}' blob {index} has shape {tuple(blob.shape)}; "
            f"{what} expects {shape}"
        )
    # float64 blobs narrow to the model's float32; float32 ones pass unchanged, bit for bit.
    array = np.ascontiguousarray(blob, dtype=np.float32).reshape(shape)
    return torch.from_numpy(array)


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(dropwhile(lambda d: d == 1, shape))


def _check_unused(
    where: str,
    blobs: Blobs,
    target: Mapping[str, torch.Tensor],
    model: str,
    net: torch.nn.Module | None = None,
) -> None:
    used = {caffe_layer(key.rpartition(".")[0], net) for key in target}
    unused = [name for name in blobs if name not in used]
    if unused:
        raise FcnsegError(
            f"{where}: layer{'s' if len(unused) > 1 else ''} "
            f"{', '.join(repr(u) for u in unused[:5])}"
            f"{f' (and {len(unused) - 5} more)' if len(unused) > 5 else ''} "
            f"not in model '{model}'; is it the right model?"
        )
