"""``--model``: a shipped model's name or the path of a checkpoint or converted weight file.

Three kinds of weights are accepted, all safetensors:

* training checkpoints (:mod:`fcnseg.train.checkpoint`): ``<stem>.safetensors`` with its
  metadata beside it in ``<stem>.json``;
* shipped models: checkpoints packaged with fcnseg as ``fcnseg/weights/<name>.safetensors``
  and ``<name>.json``, named by ``<name>``;
* files written by ``fcnseg convert`` (:mod:`fcnseg.io.weights`), their metadata inside.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fcnseg.data import bitmap_palette
from fcnseg.errors import FcnsegError
from fcnseg.io.weights import load_model as load_converted
from fcnseg.models import FCN

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def list_pretrained() -> list[str]:
    """Names of the shipped models."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(path.stem for path in WEIGHTS_DIR.glob("*.safetensors"))


def resolve(spec: str | os.PathLike[str]) -> Path:
    """The weight file ``spec`` names: a ``.safetensors`` file (or a checkpoint's ``.json``),
    a checkpoint stem (``runs/voc/best``), a run folder (its ``best``, else its ``last``), or
    a shipped model's name.

    Raises:
        FcnsegError: ``spec`` is none of these.
    """
    path = Path(spec)
    if path.is_dir():
        for stem in ("best", "last"):
            if (path / f"{stem}.safetensors").is_file():
                return path / f"{stem}.safetensors"
        raise FcnsegError(f"{path}: folder holds no best or last checkpoint")
    if path.suffix in (".safetensors", ".json") and path.is_file():
        return path.with_suffix(".safetensors")
    if path.with_name(path.name + ".safetensors").is_file():
        return path.with_name(path.name + ".safetensors")
    if str(spec) in list_pretrained():
        return WEIGHTS_DIR / f"{spec}.safetensors"
    known = ", ".join(list_pretrained()) or "none shipped"
    raise FcnsegError(f"{spec}: no such checkpoint file or shipped model (shipped: {known})")


def load_pretrained(
    spec: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    num_classes: int | None = None,
) -> tuple[FCN, dict[str, Any]]:
    """The model ``spec`` names (see :func:`resolve`), built and loaded, and its metadata.

    The metadata has a checkpoint's keys (see :mod:`fcnseg.train.checkpoint`): ``model``,
    ``build``, ``classes``, ``palette``, ``input_convention``; a converted file without class
    names gets numbered classes, and any file without a palette the VOC colour map.

    Args:
        spec: a weight file or a shipped model's name.
        model_name: if given, the model it must be.
        num_classes: if given, the class count it must have.

    Raises:
        FcnsegError: no such file or model, a file that cannot be read, or weights of another
            model or class count.
    """
    # Imported here: fcnseg.train imports this module (a run may start from a shipped model).
    from fcnseg.train.checkpoint import CheckpointFiles, load_model

    path = resolve(spec)
    if CheckpointFiles.of(path).metadata.is_file():
        return load_model(path, model_name=model_name, num_classes=num_classes)
    model, converted = load_converted(path)
    count = converted.num_classes
    metadata = {
        "model": converted.model,
        "build": {"num_classes": count, "geometry": "caffe", **converted.model_options},
        "classes": list(converted.classes or (f"class {i}" for i in range(count))),
        "palette": [list(colour) for colour in bitmap_palette(count)],
        "input_convention": converted.input.to_dict(),
        "source": converted.to_dict()["source"],
    }
    if model_name is not None and converted.model != model_name:
        raise FcnsegError(f"{path}: weights of model '{converted.model}', expected '{model_name}'")
    if num_classes is not None and count != num_classes:
        raise FcnsegError(f"{path}: weights for {count} classes, expected {num_classes}")
    return model, metadata  # type: ignore[return-value]
