"""``--model``: a shipped model's name or the path of a checkpoint.

Shipped models are checkpoints packaged with fcnseg, ``fcnseg/weights/<name>.safetensors``
with their metadata in ``<name>.json`` (the format of :mod:`fcnseg.train.checkpoint`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fcnseg.errors import FcnsegError
from fcnseg.models import FCN

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def list_pretrained() -> list[str]:
    """Names of the shipped models."""
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(path.stem for path in WEIGHTS_DIR.glob("*.safetensors"))


def resolve(spec: str | os.PathLike[str]) -> Path:
    """The checkpoint ``spec`` names: an existing ``.safetensors`` or ``.json`` file, a run's
    checkpoint stem (``runs/voc/best``), a run folder (its ``best``, else its ``last``), or a
    shipped model's name.

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
    shipped = WEIGHTS_DIR / f"{spec}.safetensors"
    if str(spec) in list_pretrained():
        return shipped
    known = ", ".join(list_pretrained()) or "none shipped"
    raise FcnsegError(f"{spec}: no such checkpoint file or shipped model (shipped: {known})")


def load_pretrained(
    spec: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    num_classes: int | None = None,
) -> tuple[FCN, dict[str, Any]]:
    """The model ``spec`` names (see :func:`resolve`), built and loaded, with its metadata.

    Args:
        spec: a checkpoint path or a shipped model's name.
        model_name: if given, the model it must be.
        num_classes: if given, the class count it must have.
    """
    # Imported here: fcnseg.train imports this module (a run may start from a shipped model).
    from fcnseg.train.checkpoint import load_model

    return load_model(resolve(spec), model_name=model_name, num_classes=num_classes)
