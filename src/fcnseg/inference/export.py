"""Export to ONNX (dynamic batch, height and width) and TorchScript.

Both go through tracing. The FCN's crops are written in terms of the input's and the maps'
sizes (``x.shape``), which the tracer records as size operations, not constants: the exported
graph computes the same crops at every size, and the tests check it at sizes never traced.
``onnx`` and ``onnxruntime`` are an optional extra (``pip install fcnseg[onnx]``).
"""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn

from fcnseg.errors import FcnsegError

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17


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


def export_onnx(
    model: nn.Module, path: str | os.PathLike[str], *, example: torch.Tensor
) -> list[str]:
    """Writes ``model`` as ONNX with dynamic batch, height and width.

    Args:
        model: the model (in fp32); put in eval mode for the export.
        path: the ``.onnx`` file to write.
        example: an N x C x H x W input to trace with; other sizes work in the exported graph.

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
        torch.onnx.export(
            traced,
            (example,),
            str(path),
            input_names=["image"],
            output_names=names,
            dynamic_axes={"image": dynamic, **{name: dynamic for name in names}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))
    return names


def export_torchscript(
    model: nn.Module, path: str | os.PathLike[str], *, example: torch.Tensor
) -> torch.jit.ScriptModule:
    """Writes ``model`` as a traced TorchScript module that runs at any input size.

    Returns:
        The traced module.
    """
    traced, _ = _exportable(model, example)
    with warnings.catch_warnings():
        # Tracer warnings (sizes read as Python ints) are expected, see the module docstring;
        # torch.jit is deprecated in favour of torch.export, which needs no tracing.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        script = torch.jit.trace(traced, example, check_trace=False)
    script.save(str(path))
    return script


def run_onnx(path: str | os.PathLike[str], x: torch.Tensor) -> list[torch.Tensor]:
    """Runs an exported graph with onnxruntime on the CPU; one tensor per output.

    Raises:
        FcnsegError: ``onnxruntime`` is not installed, or ``path`` is not a readable graph.
    """
    ort = _optional("onnxruntime")
    if not Path(path).is_file():
        raise FcnsegError(f"{path}: no such ONNX file")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    outputs = session.run(None, {input_name: x.detach().cpu().numpy().astype(np.float32)})
    return [torch.from_numpy(output) for output in outputs]


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
            f"exporting to ONNX needs the '{name}' package: pip install 'fcnseg[onnx]'"
        ) from None
