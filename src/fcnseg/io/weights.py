"""fcnseg's weight files: a safetensors state dict with its metadata under the key ``fcnseg``.

Safetensors holds tensors only and loads without unpickling; the metadata (JSON in the file's
string header) says which model the tensors fit, its classes, the input the weights expect,
and the file they were converted from, so that a weight file cannot be fed wrongly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from fcnseg.errors import FcnsegError
from fcnseg.io.convention import InputConvention
from fcnseg.models import build_model

METADATA_KEY = "fcnseg"
FORMAT = "fcnseg-weights/1"
INITS = ("fcn", "classifier")


@dataclass(frozen=True)
class WeightsSource:
    """The file a set of weights was converted from.

    Attributes:
        file: its name (no directory, which would say nothing on another machine).
        sha256: hex digest of its bytes.
        size: bytes.
        layout: ``"caffemodel"``, ``"torchvision"``, ``"pytorch-fcn"`` or ``"caffe-named"``.
        published: the entry of :data:`fcnseg.io.published.PUBLISHED` it was read as, or None.
    """

    file: str
    sha256: str
    size: int
    layout: str
    published: str | None = None


@dataclass(frozen=True)
class WeightsMetadata:
    """What a weight file says about its tensors.

    Attributes:
        model: the fcnseg model name (``build_model``'s first argument).
        num_classes: its score channels.
        input: the input the weights expect.
        init: ``"fcn"`` for a trained segmentation net, ``"classifier"`` for an FCN initialised
            from a classifier (score layers zero, upsampling bilinear).
        source: the file the weights came from.
        classes: class names in index order, where known.
        model_options: further keyword arguments of ``build_model`` (e.g. ``width``).
        notes: caveats of the conversion, one sentence each.
    """

    model: str
    num_classes: int
    input: InputConvention
    init: str
    source: WeightsSource
    classes: tuple[str, ...] | None = None
    model_options: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``from_dict`` reads it back."""
        return {
            "format": FORMAT,
            "model": self.model,
            "num_classes": self.num_classes,
            "classes": None if self.classes is None else list(self.classes),
            "model_options": dict(self.model_options),
            "input": self.input.to_dict(),
            "init": self.init,
            "source": {
                "file": self.source.file,
                "sha256": self.source.sha256,
                "size": self.source.size,
                "layout": self.source.layout,
                "published": self.source.published,
            },
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "metadata") -> WeightsMetadata:
        """Reads ``to_dict``'s output; anything malformed is an FcnsegError naming ``where``."""
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
            source = data["source"]
            classes = data["classes"]
            metadata = cls(
                model=_typed(data["model"], str, "model"),
                num_classes=_typed(data["num_classes"], int, "num_classes"),
                input=InputConvention.from_dict(data["input"]),
                init=_typed(data["init"], str, "init"),
                source=WeightsSource(
                    file=_typed(source["file"], str, "source.file"),
                    sha256=_typed(source["sha256"], str, "source.sha256"),
                    size=_typed(source["size"], int, "source.size"),
                    layout=_typed(source["layout"], str, "source.layout"),
                    published=source["published"],
                ),
                classes=None if classes is None else tuple(str(c) for c in classes),
                model_options=dict(_typed(data["model_options"], dict, "model_options")),
                notes=tuple(str(n) for n in data["notes"]),
            )
        except FcnsegError as error:
            raise FcnsegError(f"{where}: {error}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise FcnsegError(f"{where}: malformed fcnseg metadata ({error})") from None
        if metadata.init not in INITS:
            raise FcnsegError(f"{where}: init {metadata.init!r}, expected one of {INITS}")
        if metadata.classes is not None and len(metadata.classes) != metadata.num_classes:
            raise FcnsegError(
                f"{where}: {len(metadata.classes)} class names for {metadata.num_classes} classes"
            )
        return metadata


def save_weights(
    path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor], metadata: WeightsMetadata
) -> None:
    """Writes ``state_dict`` and ``metadata`` as a safetensors file."""
    tensors = {key: tensor.detach().contiguous() for key, tensor in state_dict.items()}
    try:
        save_file(tensors, path, metadata={METADATA_KEY: json.dumps(metadata.to_dict())})
    except OSError as error:
        raise FcnsegError(f"{path}: cannot write: {error.strerror or error}") from None


def load_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], WeightsMetadata]:
    """The state dict and metadata of a file written by :func:`save_weights`.

    Raises:
        FcnsegError: the file is missing, not safetensors, or has no valid fcnseg metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise FcnsegError(f"{path}: no such file")
    try:
        with safe_open(path, framework="pt") as handle:
            header = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as error:  # noqa: BLE001 - safetensors reports a bad file in several ways
        raise FcnsegError(f"{path}: not a readable safetensors file ({error})") from None
    if METADATA_KEY not in header:
        raise FcnsegError(f"{path}: no '{METADATA_KEY}' metadata; not written by fcnseg convert")
    try:
        data = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise FcnsegError(f"{path}: fcnseg metadata is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise FcnsegError(f"{path}: fcnseg metadata is {type(data).__name__}, expected an object")
    return state, WeightsMetadata.from_dict(data, str(path))


def load_model(
    path: str | os.PathLike[str], geometry: str = "caffe"
) -> tuple[torch.nn.Module, WeightsMetadata]:
    """The model a weight file describes, built and loaded strictly, and its metadata."""
    state, metadata = load_weights(path)
    net = build_model(metadata.model, metadata.num_classes, geometry, **metadata.model_options)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise FcnsegError(f"{path}: does not fit model '{metadata.model}' ({first})") from None
    return net, metadata


def _typed(value: Any, kind: type, name: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name} is {type(value).__name__}, expected {kind.__name__}")
    return value
