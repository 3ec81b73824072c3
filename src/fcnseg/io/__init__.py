"""Weight formats: Caffe's ``.caffemodel`` and PyTorch checkpoints in, safetensors out.

``convert`` reads published Caffe FCNs and ILSVRC classifiers (no Caffe needed) and PyTorch
checkpoints (torchvision VGG16, pytorch-fcn), and writes a safetensors state dict under Caffe
layer names with metadata: model, classes, input convention and source file.
"""

from fcnseg.io.caffe import read_caffemodel
from fcnseg.io.command import add_convert_parser, convert_main, run_convert
from fcnseg.io.convention import InputConvention
from fcnseg.io.convert import convert
from fcnseg.io.published import PUBLISHED, Published
from fcnseg.io.weights import WeightsMetadata, WeightsSource, load_model, load_weights, save_weights

__all__ = [
    "PUBLISHED",
    "InputConvention",
    "Published",
    "WeightsMetadata",
    "WeightsSource",
    "add_convert_parser",
    "convert",
    "convert_main",
    "load_model",
    "load_weights",
    "read_caffemodel",
    "run_convert",
    "save_weights",
]
