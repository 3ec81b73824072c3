"""fcnseg: Fully Convolutional Networks for semantic segmentation (Long, Shelhamer, Darrell).

Segment an image with a shipped model::

    import fcnseg
    model = fcnseg.load_model("camvid-fcn8s")
    labels = fcnseg.predict(model, "street.png")  # H x W int64, indices of model.meta.classes
"""

from fcnseg.errors import FcnsegError
from fcnseg.inference import optimize_for_inference, predict
from fcnseg.io.weights import list_pretrained, load_model
from fcnseg.models import build_model, list_models

__version__ = "0.1.0"

__all__ = [
    "FcnsegError",
    "__version__",
    "build_model",
    "list_models",
    "list_pretrained",
    "load_model",
    "optimize_for_inference",
    "predict",
]
