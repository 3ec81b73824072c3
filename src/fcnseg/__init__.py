"""fcnseg: Fully Convolutional Networks for semantic segmentation (Long, Shelhamer, Darrell)."""

from fcnseg.errors import FcnsegError
from fcnseg.inference import optimize_for_inference
from fcnseg.models import build_model, list_models

__version__ = "0.1.0"

__all__ = [
    "FcnsegError",
    "__version__",
    "build_model",
    "list_models",
    "optimize_for_inference",
]
