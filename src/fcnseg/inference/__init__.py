"""Running a trained FCN: the fast path, the predictor, dense-output tricks, export, timing."""

from fcnseg.inference.dense import rarefied_filter, rarefy, shift_and_stitch, total_stride
from fcnseg.inference.export import (
    FORMATS,
    OnnxModel,
    export_onnx,
    export_torchscript,
    load_onnx,
    read_metadata,
    run_onnx,
)
from fcnseg.inference.memory import DEFAULT_MAX_MEMORY, choose_tile, prediction_bytes
from fcnseg.inference.optimize import TOLERANCE, InferenceModel, optimize_for_inference
from fcnseg.inference.predict import predict, read_image
from fcnseg.inference.predictor import Predictor
from fcnseg.inference.tiling import Span, tile_alignment, tile_margin, tile_spans
from fcnseg.inference.tta import Augmentation, TestTimeAugmentation, augmented_probabilities
from fcnseg.runtime import PRECISIONS, native_precisions, resolve_precision

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "FORMATS",
    "PRECISIONS",
    "TOLERANCE",
    "Augmentation",
    "InferenceModel",
    "OnnxModel",
    "Predictor",
    "Span",
    "TestTimeAugmentation",
    "augmented_probabilities",
    "choose_tile",
    "native_precisions",
    "export_onnx",
    "export_torchscript",
    "load_onnx",
    "optimize_for_inference",
    "predict",
    "prediction_bytes",
    "rarefied_filter",
    "rarefy",
    "read_image",
    "read_metadata",
    "resolve_precision",
    "run_onnx",
    "shift_and_stitch",
    "tile_alignment",
    "tile_margin",
    "tile_spans",
    "total_stride",
]
