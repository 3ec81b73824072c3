"""Running a trained FCN: the fast path, the predictor, dense-output tricks, export, timing."""

from fcnseg.inference.dense import rarefied_filter, rarefy, shift_and_stitch, total_stride
from fcnseg.inference.export import FORMATS, export_onnx, export_torchscript, run_onnx
from fcnseg.inference.optimize import TOLERANCE, InferenceModel, optimize_for_inference
from fcnseg.inference.predict import predict, read_image
from fcnseg.inference.predictor import Predictor
from fcnseg.inference.tiling import Span, tile_alignment, tile_margin, tile_spans
from fcnseg.runtime import PRECISIONS, native_precisions, resolve_precision

__all__ = [
    "FORMATS",
    "PRECISIONS",
    "TOLERANCE",
    "InferenceModel",
    "Predictor",
    "Span",
    "native_precisions",
    "export_onnx",
    "export_torchscript",
    "optimize_for_inference",
    "predict",
    "rarefied_filter",
    "rarefy",
    "read_image",
    "resolve_precision",
    "run_onnx",
    "shift_and_stitch",
    "tile_alignment",
    "tile_margin",
    "tile_spans",
    "total_stride",
]
