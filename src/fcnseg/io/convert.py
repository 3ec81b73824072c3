"""Converting Caffe and PyTorch weights into fcnseg's: ``fcnseg convert`` as a function."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fcnseg.convention import TORCHVISION_IMAGENET, InputConvention, caffe_convention
from fcnseg.data.palettes import bitmap_palette
from fcnseg.data.siftflow import SIFTFLOW_GEOMETRIC_CLASSES
from fcnseg.errors import FcnsegError
from fcnseg.io._mapping import (
    Blobs,
    caffe_layer,
    classifier_fcn_state_dict,
    fcn_state_dict,
    select_net,
)
from fcnseg.io._torch import CAFFE_NAMED, PYTORCH_FCN, TORCHVISION, read_torch_checkpoint
from fcnseg.io.caffe import read_caffemodel
from fcnseg.io.published import (
    CLASSIFIER,
    FCN,
    VOC_MEAN,
    Published,
    find_published,
    identify_published,
)
from fcnseg.io.weights import ModelMeta, WeightsSource, save_weights
from fcnseg.models import MODELS

CAFFEMODEL = "caffemodel"
# torch.save writes a zip archive; before PyTorch 1.6 it wrote a bare pickle (protocol 2).
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80\x02")
# pytorch-fcn trains on PASCAL VOC with the reference's BGR mean, as the Caffe FCNs do.
_PYTORCH_FCN_CONVENTION = caffe_convention(VOC_MEAN)


def convert(
    src: str | os.PathLike[str],
    model: str,
    num_classes: int,
    dst: str | os.PathLike[str] | None = None,
    *,
    source: str | None = None,
    convention: InputConvention | None = None,
    fold_input: bool = False,
    **model_options: Any,
) -> tuple[dict[str, torch.Tensor], ModelMeta]:
    """Reads a ``.caffemodel`` or PyTorch checkpoint as the state dict of an fcnseg model.

    A segmentation net loads as it is; an ILSVRC classifier becomes the FCN's initialisation
    (section 4.1). Either way the result loads strictly into
    ``build_model(model, num_classes=num_classes, **model_options)``.

    Args:
        src: a ``.caffemodel`` (``layer`` or legacy ``layers`` format), a torchvision VGG16
            state dict, or a Caffe-named state dict (pytorch-fcn's, bare or under
            ``model_state_dict``).
        model: the fcnseg model name.
        num_classes: the model's classes.
        dst: where to write the safetensors file; nothing is written when None.
        source: the entry of :data:`fcnseg.io.published.PUBLISHED` the file is, by default
            the one whose file name ``src`` has. It gives the input convention and class names,
            and picks one net out of a two-net file.
        convention: the input the weights expect, overriding the published entry's; required
            for a ``.caffemodel`` that is not a published file.
        fold_input: for weights that expect RGB in [0, 1] standardised by a mean and std
            (torchvision's), fold the std and the channel order into the first convolution,
            so that the weights take BGR 0-255 minus ``255 * mean``. Exact (up to float32
            rounding of the folded weights), border included: zero input means the mean
            pixel in both conventions, so zero padding means the same.
        **model_options: passed to ``build_model`` (e.g. ``width`` for a narrow VGG16).

    Returns:
        The state dict (Caffe layer names, float32) and its metadata.

    Raises:
        FcnsegError: an unreadable or corrupt file, a file that does not fit the model (the
            message names the layer and both shapes), or an unknown input convention.
    """
    path = Path(src)
    where = str(path)
    try:
        json.dumps(model_options)
    except TypeError:
        raise FcnsegError(f"model options {model_options!r} must be plain values") from None
    if model not in MODELS:
        raise FcnsegError(f"unknown model '{model}'; known models: {', '.join(MODELS)}")
    layout, blobs = _read(path)
    entry = find_published(source, path.name, model)
    if entry is None and layout == CAFFEMODEL and convention is None:
        # a renamed published file: recognised by its bytes or layers, if it is the net asked for
        entry = identify_published(
            _file_hash(path, hashlib.sha1()), blobs, model, MODELS[model].backbone
        )
        if entry is not None and entry.num_classes not in (None, num_classes):
            entry = None
    if entry is not None:
        _check_entry(entry, model, num_classes)
        blobs = select_net(where, blobs, entry.suffix, entry.other_suffixes)
    notes = list(_entry_notes(entry, path))
    if entry is not None and source is None and path.name != entry.filename:
        notes.append(f"Recognised by its content as {entry.filename} ({entry.name}).")
    convention = convention or _default_convention(where, layout, entry)
    if fold_input:
        backbone = MODELS[model].backbone
        blobs, convention = fold_standardisation(
            where, blobs, caffe_layer(backbone.input_layer), convention
        )
        notes.append(
            f"The input standardisation {convention_text(convention)} was folded into the "
            "first convolution."
        )
    if any(b.dtype == np.float64 for layer_blobs in blobs.values() for b in layer_blobs):
        notes.append("Double-precision blobs were rounded to float32.")

    is_fcn = entry.kind == FCN if entry is not None else "score_fr" in blobs
    if is_fcn:
        state = fcn_state_dict(
            where,
            blobs,
            model,
            num_classes,
            model_options,
            fixed_scales_may_be_missing=layout in (PYTORCH_FCN, CAFFE_NAMED),
        )
    else:
        state = classifier_fcn_state_dict(where, blobs, model, num_classes, model_options)
    sha256, size = _digest(path)
    classes = entry.classes if entry is not None and is_fcn else None
    metadata = ModelMeta(
        model=model,
        build={"num_classes": num_classes, "geometry": "caffe", **model_options},
        classes=tuple(classes or (f"class {i}" for i in range(num_classes))),
        palette=bitmap_palette(num_classes),
        input_convention=convention,
        init="fcn" if is_fcn else "classifier",
        source=WeightsSource(
            file=path.name,
            sha256=sha256,
            size=size,
            layout=layout,
            published=None if entry is None else entry.name,
        ),
        head_classes=_head_classes(entry) if is_fcn else {},
        notes=tuple(notes),
    )
    if dst is not None:
        save_weights(dst, state, metadata)
    return state, metadata


def fold_standardisation(
    where: str, blobs: Blobs, input_layer: str, convention: InputConvention
) -> tuple[dict[str, list[np.ndarray]], InputConvention]:
    """Folds an RGB [0, 1] mean/std convention's std and channel order into ``input_layer``.

    With ``x = (rgb / 255 - mean) / std`` the first convolution computes
    ``sum_c W[:, c] x[c]``; writing ``y = bgr - 255 * mean_bgr`` (Caffe's form) gives
    ``x[c] = y[2 - c] / (255 std[c])``, so ``W'[:, j] = W[:, 2 - j] / (255 std[2 - j])`` on
    ``y`` computes the same, and the bias is unchanged. Zero ``x`` and zero ``y`` are both the
    mean pixel, so the convolution's zero padding agrees too.

    Returns:
        The blobs with the folded input layer, and the convention they now expect: BGR, 0-255,
        minus ``255 * mean`` in BGR order, std 1.
    """
    if convention.channel_order != "RGB" or convention.scale != 1.0:
        raise FcnsegError(
            f"{where}: can fold only an RGB, [0, 1] input standardisation; these weights "
            f"expect {convention_text(convention)}"
        )
    if input_layer not in blobs:
        raise FcnsegError(f"{where}: no layer '{input_layer}' to fold the input into")
    weight = blobs[input_layer][0]
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise FcnsegError(
            f"{where}: layer '{input_layer}' weight has shape {weight.shape}; "
            "folding needs 3 input channels"
        )
    std = np.asarray(convention.std, dtype=np.float64)
    folded = weight.astype(np.float64) / (255.0 * std)[None, :, None, None]
    folded = np.ascontiguousarray(folded[:, ::-1], dtype=np.float32)
    blobs = dict(blobs)
    blobs[input_layer] = [folded, *blobs[input_layer][1:]]
    mean_bgr = tuple(255.0 * m for m in reversed(convention.mean))
    return blobs, InputConvention("BGR", 255.0, mean_bgr)


def convention_text(convention: InputConvention) -> str:
    """One line, e.g. ``RGB x1 - (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225)``."""
    return (
        f"{convention.channel_order} x{convention.scale:g} - {convention.mean} / {convention.std}"
    )


def _read(path: Path) -> tuple[str, Blobs]:
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except FileNotFoundError:
        raise FcnsegError(f"{path}: no such file") from None
    except OSError as error:
        raise FcnsegError(f"{path}: cannot read: {error.strerror or error}") from None
    if head.startswith(_TORCH_MAGIC):
        return read_torch_checkpoint(path)
    return CAFFEMODEL, read_caffemodel(path)


def _check_entry(entry: Published, model: str, num_classes: int) -> None:
    if entry.kind == CLASSIFIER:
        if MODELS[model].backbone is not entry.backbone:
            raise FcnsegError(
                f"{entry.name} is a {entry.backbone.__name__} classifier; model '{model}' is "
                f"built on {MODELS[model].backbone.__name__}"
            )
        return
    if entry.model != model:
        raise FcnsegError(f"{entry.name} is model '{entry.model}', not '{model}'")
    if entry.num_classes != num_classes:
        raise FcnsegError(f"{entry.name} scores {entry.num_classes} classes, not {num_classes}")


def _default_convention(where: str, layout: str, entry: Published | None) -> InputConvention:
    if entry is not None:
        return entry.convention
    if layout == TORCHVISION:
        return TORCHVISION_IMAGENET
    if layout in (PYTORCH_FCN, CAFFE_NAMED):
        return _PYTORCH_FCN_CONVENTION
    raise FcnsegError(
        f"{where}: not a published file, so its input convention is unknown; name the file it "
        "is (source=) or give the convention (convention=, CLI --mean)"
    )


def _entry_notes(entry: Published | None, path: Path) -> list[str]:
    if entry is None:
        return []
    notes = []
    if entry.other_suffixes:
        notes.append(
            f"One of the two nets in {entry.filename}: layers '*{entry.suffix}' and the shared "
            "ones."
        )
    if entry.name.startswith("nyud-fcn32s-color-hha-"):
        notes.append(
            "The late-fusion net averages the scores of its colour and HHA streams: its output "
            "is the mean of this net's and the other stream's."
        )
    if entry.name == "alexnet":
        notes.append(
            "bvlc_alexnet normalises before pooling; fcnseg's AlexNet pools first, as CaffeNet."
        )
    if entry.name in ("caffenet", "alexnet"):
        notes.append("Trained minus ILSVRC's mean image; its per-channel mean is recorded.")
    if entry.sha1 is not None and path.name == entry.filename:
        sha1 = _file_hash(path, hashlib.sha1())
        if sha1 != entry.sha1:
            notes.append(f"SHA-1 {sha1} differs from the published file's {entry.sha1}.")
    return notes


def _digest(path: Path) -> tuple[str, int]:
    return _file_hash(path, hashlib.sha256()), path.stat().st_size


def _file_hash(path: Path, digest: Any) -> str:
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _head_classes(entry: Published | None) -> dict[str, tuple[str, ...]]:
    """The class names of a two-headed published net's second head (SIFT Flow's ``geo``)."""
    if entry is None or entry.model is None or not MODELS[entry.model].geometric_head:
        return {}
    return {"geo": SIFTFLOW_GEOMETRIC_CLASSES}
