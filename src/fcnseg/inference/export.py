"""Export to ONNX (dynamic batch, height and width) and TorchScript, with the metadata.

Both go through tracing. The FCN's crops are written in terms of the input's and the maps'
sizes (``x.shape``), which the tracer records as size operations, not constants: the exported
graph computes the same crops at every size, and the tests check it at sizes never traced.
``onnx`` and ``onnxruntime`` are an optional extra (``pip install fcnseg[onnx]``).

**The metadata** travels in the exported file, so that whoever runs it need not guess the
channel order or the mean: in ONNX as ``metadata_props`` (``onnx.load(f).metadata_props``,
or onnxruntime's ``session.get_modelmeta().custom_metadata_map``), in TorchScript as the
extra file ``fcnseg.json`` (``torch.jit.load(f, _extra_files={"fcnseg.json": ""})``). Every
value is a string; all but ``model`` are JSON (:func:`export_metadata`):

- ``model``: the architecture (``fcn8s-vgg16``); ``classes``: the class names, index order;
  ``palette``: one RGB triple per class; ``input_convention``: channel order, scale, mean
  and std (:class:`fcnseg.convention.InputConvention`: ``x = (raw[order] * scale / 255 -
  mean) / std``, raw being RGB 0-255); ``source``: the weight file exported (name, sha256),
  the file it was converted from, the fcnseg version and commit;
- ``heads`` (head name to classes, in output order), ``outputs`` (the graph's output
  names), ``tiling`` (the margin and stride exact tiling needs);
- ``fcnseg``: the whole metadata record of the weights (:class:`fcnseg.io.weights.ModelMeta`).

A model without a record (an architecture with random weights) gets ``heads``, ``outputs``
and ``tiling`` only. :func:`load_onnx` reads an exported ONNX file back as a model that
``fcnseg predict --model file.onnx`` runs through onnxruntime, fed as its metadata says.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg.errors import FcnsegError
from fcnseg.io.atomic import atomic_path, atomic_write
from fcnseg.io.weights import file_sha256

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17
# The name of the TorchScript extra file that holds the metadata.
TORCHSCRIPT_METADATA = "fcnseg.json"
# Metadata keys whose values are JSON (``model`` is the plain name).
_JSON_KEYS = ("classes", "palette", "input_convention", "source", "heads", "outputs", "tiling")


class _Outputs(nn.Module):
    """The model with a dict of head scores returned as a tuple (exporters want tensors)."""

    def __init__(self, model: nn.Module, heads: list[str]) -> None:
        super().__init__()
        self.model = model
        self.heads = heads

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        scores = self.model(x)
        return tuple(scores[head] for head in self.heads)


def output_names(model: nn.Module, example: torch.Tensor) -> list[str]:
    """``["scores"]``, or one name per head (``scores_sem``, ``scores_geo``) for a dict."""
    with torch.no_grad():
        scores = model(example)
    if isinstance(scores, dict):
        return [f"scores_{head}" for head in scores]
    return ["scores"]


def export_metadata(
    model: nn.Module,
    names: list[str],
    *,
    weights: str | os.PathLike[str] | None = None,
) -> dict[str, str]:
    """The metadata an exported file carries (see the module): key to string.

    Args:
        model: the model; its record is ``model.meta`` (:func:`fcnseg.load_model` sets it).
        names: the graph's output names (:func:`output_names`).
        weights: the weight file the model was loaded from, named with its sha256 in
            ``source``; None when there is none.
    """
    from fcnseg.inference.tiling import tile_alignment, tile_margin
    from fcnseg.io.weights import git_hash

    heads = dict(getattr(model, "heads", {"out": None}))
    properties: dict[str, Any] = {"heads": heads, "outputs": names}
    with contextlib.suppress(FcnsegError):  # a net without a known receptive field runs whole
        properties["tiling"] = {"margin": tile_margin(model), "alignment": tile_alignment(model)}
    meta = getattr(model, "meta", None)
    if meta is not None:
        import fcnseg

        record = meta.to_dict()
        source: dict[str, Any] = {
            "weights": None,
            "weights_sha256": None,
            "converted_from": record["source"],
            "fcnseg": fcnseg.__version__,
            "git": git_hash(),
        }
        if weights is not None:
            source["weights"] = Path(weights).name
            source["weights_sha256"] = file_sha256(weights)
        properties.update(
            model=meta.model,
            classes=record["classes"],
            palette=record["palette"],
            input_convention=record["input_convention"],
            source=source,
            fcnseg=record,
        )
    return {
        key: value if key == "model" else json.dumps(value) for key, value in properties.items()
    }


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of an exported ONNX or TorchScript file, JSON values decoded: ``model``
    a string, ``classes`` a list, ``input_convention`` and ``fcnseg`` dicts, and so on (see
    the module). Empty for a file exported without any.

    Raises:
        FcnsegError: no such file, not an ONNX or TorchScript file, or metadata that is not
            JSON; ``onnxruntime`` missing for an ONNX file.
    """
    path = Path(path)
    if not path.is_file():
        raise FcnsegError(f"{path}: no such file")
    if _is_zip(path):  # TorchScript archives are zip files
        extra = {TORCHSCRIPT_METADATA: ""}
        try:
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as error:  # noqa: BLE001 - torch reports a bad archive in several ways
            raise FcnsegError(f"{path}: not a TorchScript file ({error})") from None
        text = extra[TORCHSCRIPT_METADATA]
        if not text:
            return {}
        raw = json.loads(text)
    else:
        raw = dict(_session(path).get_modelmeta().custom_metadata_map)
    try:
        return {
            key: json.loads(value) if key in (*_JSON_KEYS, "fcnseg") else value
            for key, value in raw.items()
        }
    except json.JSONDecodeError as error:
        raise FcnsegError(f"{path}: metadata is not JSON ({error})") from None


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    example: torch.Tensor,
    weights: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Writes ``model`` as ONNX with dynamic batch, height and width, and its metadata
    (``metadata_props``: see the module and :func:`export_metadata`).

    Args:
        model: the model (in fp32); put in eval mode for the export.
        path: the ``.onnx`` file to write.
        example: an N x C x H x W input to trace with; other sizes work in the exported graph.
        weights: the weight file the model came from, recorded with its sha256.

    Returns:
        The graph's output names.

    Raises:
        FcnsegError: ``onnx`` is not installed.
    """
    onnx = _optional("onnx")
    traced, names = _exportable(model, example)
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The TorchScript-based exporter is the one that needs no onnxscript; its notice of
        # deprecation and its tracer warnings (sizes read as Python ints) are expected here.
        warnings.simplefilter("ignore")
        # written beside the target and checked, then renamed over it: an earlier export at
        # ``path`` stays whole until a complete, checked one replaces it
        with atomic_path(path) as temporary:
            torch.onnx.export(
                traced,
                (example,),
                str(temporary),
                input_names=["image"],
                output_names=names,
                dynamic_axes={"image": dynamic, **{name: dynamic for name in names}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
            graph = onnx.load(str(temporary))
            for key, value in export_metadata(model, names, weights=weights).items():
                entry = graph.metadata_props.add()
                entry.key, entry.value = key, value
            onnx.save(graph, str(temporary))
            onnx.checker.check_model(str(temporary))
    return names


def export_torchscript(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    example: torch.Tensor,
    weights: str | os.PathLike[str] | None = None,
) -> torch.jit.ScriptModule:
    """Writes ``model`` as a traced TorchScript module that runs at any input size, with its
    metadata as the extra file ``fcnseg.json`` (see the module).

    Returns:
        The traced module.
    """
    traced, names = _exportable(model, example)
    with warnings.catch_warnings():
        # Tracer warnings (sizes read as Python ints) are expected, see the module docstring;
        # torch.jit is deprecated in favour of torch.export, which needs no tracing.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        script = torch.jit.trace(traced, example, check_trace=False)
    metadata = json.dumps(export_metadata(model, names, weights=weights))
    # saved to bytes, then written whole: a file name would also name the archive's inner
    # folder, and a temporary one would show there
    atomic_write(path, script.save_to_buffer(_extra_files={TORCHSCRIPT_METADATA: metadata}))
    return script


def run_onnx(path: str | os.PathLike[str], x: torch.Tensor) -> list[torch.Tensor]:
    """Runs an exported graph with onnxruntime on the CPU; one tensor per output.

    Raises:
        FcnsegError: ``onnxruntime`` is not installed, or ``path`` is not a readable graph.
    """
    session = _session(Path(path))
    input_name = session.get_inputs()[0].name
    outputs = session.run(None, {input_name: x.detach().cpu().numpy().astype(np.float32)})
    return [torch.from_numpy(output) for output in outputs]


class OnnxModel(nn.Module):
    """An exported ONNX file as a model: onnxruntime (CPU) behind the interface of an FCN.

    It takes float32 N x C x H x W network inputs and returns N x K x H x W scores (a dict by
    head for a net of several heads), like the model exported; ``meta`` is the weights'
    record read back from the file (:class:`fcnseg.io.weights.ModelMeta`: classes, palette,
    input convention), ``heads``, ``in_channels`` and ``tiling`` come with it, so that
    :func:`fcnseg.predict` and :class:`~fcnseg.inference.Predictor` (``optimize=False``)
    feed and tile it as they do the PyTorch model. Load it with :func:`load_onnx`.
    """

    runs_as_is = True  # the predictor neither copies nor optimizes it: it runs fp32 as it is

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        from fcnseg.io.weights import ModelMeta

        self.path = Path(path)
        self.session = _session(self.path)
        metadata = read_metadata(self.path)
        if "fcnseg" not in metadata:
            raise FcnsegError(
                f"{self.path}: no fcnseg metadata (classes, input convention); export it with "
                "fcnseg export from a weight file or shipped model"
            )
        self.meta = ModelMeta.from_dict(metadata["fcnseg"], str(self.path))
        self.heads = {
            str(k): self.meta.num_classes if v is None else int(v)
            for k, v in metadata["heads"].items()
        }
        self.in_channels = self.meta.input_convention.channels
        self.num_classes = self.meta.num_classes
        self.tiling = metadata.get("tiling")
        self.output_names = list(metadata["outputs"])
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Scores of ``x`` (N x C x H x W float32), computed by onnxruntime."""
        array = np.ascontiguousarray(x.detach().cpu().numpy().astype(np.float32, copy=False))
        outputs = self.session.run(None, {self.input_name: array})
        scores = [torch.from_numpy(output) for output in outputs]
        if len(scores) == 1:
            return scores[0]
        return dict(zip(self.heads, scores, strict=True))

    def architecture(self) -> nn.Module:
        """The PyTorch net the file was exported from, built on the ``meta`` device (shapes
        only, no weights): what :mod:`fcnseg.inference.memory` estimates memory with."""
        return _meta_architecture(self.meta.model, json.dumps(dict(self.meta.build)))


def load_onnx(path: str | os.PathLike[str]) -> OnnxModel:
    """An ONNX file written by ``fcnseg export`` (or :func:`export_onnx` of a loaded model),
    ready to run through onnxruntime with the metadata it carries (:class:`OnnxModel`).

    Raises:
        FcnsegError: no such file, not ONNX, no fcnseg metadata in it, or ``onnxruntime``
            is not installed.
    """
    return OnnxModel(path)


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    """``||result - reference|| / ||reference||`` (L2 over all elements)."""
    reference = reference.double()
    return float((result.double() - reference).norm() / reference.norm().clamp_min(1e-30))


def _exportable(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, list[str]]:
    model = model.eval()
    names = output_names(model, example)
    if names != ["scores"]:
        heads = [name.removeprefix("scores_") for name in names]
        return _Outputs(model, heads).eval(), names
    return model, names


def _optional(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise FcnsegError(
            f"ONNX export and inference need the '{name}' package: pip install 'fcnseg[onnx]'"
        ) from None


def _session(path: Path) -> Any:
    ort = _optional("onnxruntime")
    if not path.is_file():
        raise FcnsegError(f"{path}: no such ONNX file")
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise FcnsegError(f"{path}: not a readable ONNX file ({message})") from None


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as file:
        return file.read(4) == b"PK\x03\x04"


@functools.lru_cache(maxsize=4)
def _meta_architecture(name: str, build: str) -> nn.Module:
    from fcnseg.models import build_model

    with torch.device("meta"):
        return build_model(name, **json.loads(build)).eval()
