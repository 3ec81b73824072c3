"""The FCN family: classifiers, their convolutionalized forms, and the skip heads."""

from fcnseg.models.alexnet import AlexNet
from fcnseg.models.classifier import Classifier, classifier_geometry
from fcnseg.models.convolutionalize import convolutionalize
from fcnseg.models.fcn import FCN, head_scores
from fcnseg.models.fusion import LateFusionFCN, expand_input_channels
from fcnseg.models.googlenet import GoogLeNet
from fcnseg.models.registry import MODELS, build_model, list_models
from fcnseg.models.staged import init_from_coarser
from fcnseg.models.vgg import VGG16

__all__ = [
    "FCN",
    "MODELS",
    "AlexNet",
    "Classifier",
    "GoogLeNet",
    "LateFusionFCN",
    "VGG16",
    "build_model",
    "classifier_geometry",
    "convolutionalize",
    "expand_input_channels",
    "head_scores",
    "init_from_coarser",
    "list_models",
]
