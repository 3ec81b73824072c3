"""Weight files: fcnseg's one format and loader, and Caffe / PyTorch weights converted into it.

``load_model`` rebuilds any weight file fcnseg wrote (checkpoint, converted file, shipped
model); ``convert`` reads published Caffe FCNs and ILSVRC classifiers (no Caffe needed) and
PyTorch checkpoints (torchvision VGG16, pytorch-fcn) into that format.
"""

from fcnseg.io.caffe import read_caffemodel
from fcnseg.io.convert import convert
from fcnseg.io.published import PUBLISHED, Published
from fcnseg.io.weights import (
    ModelMeta,
    WeightsSource,
    list_pretrained,
    load_model,
    read_weights,
    resolve,
    save_weights,
)

__all__ = [
    "PUBLISHED",
    "ModelMeta",
    "Published",
    "WeightsSource",
    "convert",
    "list_pretrained",
    "load_model",
    "read_caffemodel",
    "read_weights",
    "resolve",
    "save_weights",
]
