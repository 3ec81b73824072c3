"""The model table: one explicit name -> (backbone, skips) entry per FCN."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

from fcnseg.errors import ConfigError, FcnsegError
from fcnseg.models.alexnet import AlexNet
from fcnseg.models.classifier import Classifier
from fcnseg.models.convolutionalize import convolutionalize
from fcnseg.models.fcn import FCN, GEOMETRIES
from fcnseg.models.fusion import LateFusionFCN, expand_input_channels
from fcnseg.models.googlenet import GoogLeNet
from fcnseg.models.vgg import VGG16


@dataclass(frozen=True)
class ModelSpec:
    """An FCN: which classifier it is cast from and which skips it fuses."""

    backbone: Callable[..., Classifier]
    skips: tuple[str, ...] = ()
    atonce: bool = False
    # NYUDv2 (section 5): RGB-D early fusion takes 4 input channels; late fusion runs one
    # stream per named input of 3 channels; SIFT Flow adds a 3-class geometric head.
    input_channels: int = 3
    streams: tuple[str, ...] = ()
    geometric_head: bool = False

    @property
    def in_channels(self) -> int:
        """Channels of the model's input: all streams' inputs stacked."""
        return self.input_channels * max(1, len(self.streams))


def _table(*entries: tuple[str, ModelSpec]) -> dict[str, ModelSpec]:
    table: dict[str, ModelSpec] = {}
    for name, spec in entries:
        if name in table:
            raise ValueError(f"model '{name}' is defined twice")
        table[name] = spec
    return table


MODELS = _table(
    ("fcn32s-vgg16", ModelSpec(VGG16)),
    ("fcn16s-vgg16", ModelSpec(VGG16, ("pool4",))),
    ("fcn8s-vgg16", ModelSpec(VGG16, ("pool4", "pool3"))),
    ("fcn8s-atonce-vgg16", ModelSpec(VGG16, ("pool4", "pool3"), atonce=True)),
    ("fcn32s-alexnet", ModelSpec(AlexNet)),
    ("fcn32s-googlenet", ModelSpec(GoogLeNet)),
    ("fcn16s-googlenet", ModelSpec(GoogLeNet, ("pool4",))),
    ("fcn8s-googlenet", ModelSpec(GoogLeNet, ("pool4", "pool3"))),
    ("fcn32s-rgbd-vgg16", ModelSpec(VGG16, input_channels=4)),
    ("fcn32s-rgb-hha-vgg16", ModelSpec(VGG16, streams=("color", "hha"))),
    ("fcn16s-rgb-hha-vgg16", ModelSpec(VGG16, ("pool4",), streams=("color", "hha"))),
    ("fcn32s-siftflow-vgg16", ModelSpec(VGG16, geometric_head=True)),
    ("fcn16s-siftflow-vgg16", ModelSpec(VGG16, ("pool4",), geometric_head=True)),
    ("fcn8s-siftflow-vgg16", ModelSpec(VGG16, ("pool4", "pool3"), geometric_head=True)),
)
# SIFT Flow's geometric classes: sky, horizontal, vertical.
GEOMETRIC_CLASSES = 3


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return list(MODELS)


def build_model(
    name: str,
    *,
    num_classes: int,
    geometry: str = "caffe",
    classifier: Classifier | None = None,
    **backbone_options: object,
) -> FCN | LateFusionFCN:
    """Builds an FCN, initialised as the paper and the reference initialise it.

    Args:
        name: one of :func:`list_models`.
        num_classes: score channels, background included (21 for PASCAL VOC); for the SIFT
            Flow nets the semantic classes (33), beside the 3 geometric ones.
        geometry: ``"caffe"`` reproduces the published nets exactly (conv1 padded by 100,
            fc6 unpadded, crops); ``"lean"`` drops the 100-pixel padding and pads fc6 instead,
            for far fewer FLOPs (VGG16 nets only).
        classifier: an ImageNet classifier with trained weights to cast the FCN from (section
            4.1); random weights when None.
        **backbone_options: passed to the backbone's constructor when ``classifier`` is None
            (VGG16: ``width``, ``fc_width``, ``batch_norm``, ``in_channels``).

    Returns:
        The FCN: score layers zero, upsampling bilinear, the final upsampling frozen. The
        RGB-HHA nets are a :class:`LateFusionFCN` of two FCN streams.
    """
    if name not in MODELS:
        raise FcnsegError(f"unknown model '{name}'; known models: {', '.join(MODELS)}")
    if geometry not in GEOMETRIES:
        raise FcnsegError(f"unknown geometry '{geometry}'; choose one of {', '.join(GEOMETRIES)}")
    if num_classes < 1:
        raise FcnsegError(f"num_classes must be at least 1, got {num_classes}")
    spec = MODELS[name]
    if classifier is None:
        check_backbone_options(name, backbone_options)
        try:
            classifier = spec.backbone(**backbone_options)
        except TypeError as error:
            raise FcnsegError(f"model '{name}': {error}") from None
    if spec.streams:
        streams = {stream: _fcn(spec, classifier, num_classes, geometry) for stream in spec.streams}
        return LateFusionFCN(streams, {stream: 3 for stream in spec.streams})
    if spec.input_channels != 3:
        classifier = expand_input_channels(copy.deepcopy(classifier), spec.input_channels)
    return _fcn(spec, classifier, num_classes, geometry)


def check_backbone_options(name: str, options: Mapping[str, object]) -> None:
    """Refuses an option the model's classifier does not take (``width`` for AlexNet, a
    misspelt ``depth`` in a hand-written config), before anything is built.

    Raises:
        ConfigError: field ``backbone``, the option named, listing the options there are.
    """
    backbone = MODELS[name].backbone
    taken = [
        parameter
        for parameter in inspect.signature(backbone).parameters
        if parameter not in ("self", "num_classes")
    ]
    for option in options:
        if option not in taken:
            raise ConfigError(
                "backbone",
                f"is not an option of {name} (its {backbone.__name__} takes "
                f"{', '.join(taken) if taken else 'none'})",
                option,
            )


def _fcn(spec: ModelSpec, classifier: Classifier, num_classes: int, geometry: str) -> FCN:
    net = convolutionalize(classifier)
    set_geometry(net, geometry)
    if spec.geometric_head:
        heads = {"_sem": num_classes, "_geo": GEOMETRIC_CLASSES}
        return FCN(net, skips=spec.skips, atonce=spec.atonce, heads=heads)
    return FCN(net, num_classes, skips=spec.skips, atonce=spec.atonce)


def set_geometry(net: Classifier, geometry: str) -> None:
    """Pads a convolutionalized classifier for the chosen geometry.

    Caffe's FCNs pad the first convolution by 100 so that fc6's unpadded 7x7 window fits any
    input, and crop the excess back off; the lean geometry pads fc6 by half its kernel instead,
    which keeps the maps about the input's size divided by the stride.
    """
    first = net.get_submodule(net.input_layer)
    assert isinstance(first, nn.Conv2d)
    if geometry == "caffe":
        first.padding = (100, 100)
        return
    if not isinstance(net, VGG16):
        raise FcnsegError(f"the lean geometry is defined for VGG16 nets, not {type(net).__name__}")
    fc6 = net.get_submodule("fc6")
    assert isinstance(fc6, nn.Conv2d)
    fc6.padding = (fc6.kernel_size[0] // 2, fc6.kernel_size[1] // 2)
