"""What every backbone is: an ImageNet classifier written as the chain of its named layers.

A classifier lists its layers in order (``trunk``) under their Caffe names, so that the same
list drives the classifier's forward pass, its convolutionalized forward pass inside an FCN,
and the geometry (receptive field, stride, offset) of every feature map it hands to a head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fcnseg.models.geometry import INPUT, Geometry, module_layers


@dataclass(frozen=True)
class Tap:
    """A feature map handed to a head: the trunk layer it is read after and its channels."""

    layer: str
    channels: int


class Classifier(nn.Module):
    """Base for the classifiers; subclasses fill the class attributes and add the layers.

    Attributes:
        trunk: layer names in forward order (a dotted name reaches into a group, as Caffe's
            ``conv1/7x7_s2`` becomes ``conv1.7x7_s2``).
        taps: feature name (``pool3``, ``pool4``, ``fc7``) to the layer whose output it is.
        fc_inputs: for each fully connected layer, the C x H x W shape of its input, which
            ``convolutionalize`` turns into the kernel of the equivalent convolution.
        classifier_layer: the final classifier, dropped when the net is decapitated.
        global_pool: a final global pooling to discard (GoogLeNet, section 4.1), or None.
        input_layer: the first convolution, padded by 100 in the Caffe geometry.
        crop_size: the classifier's training input size (224 for VGG, 227 for CaffeNet).
    """

    trunk: list[str]
    taps: dict[str, Tap]
    fc_inputs: dict[str, tuple[int, int, int]]
    classifier_layer: str
    global_pool: str | None = None
    input_layer: str
    crop_size: int

    def __init__(self) -> None:
        super().__init__()
        self.trunk = []

    def add_layer(self, name: str, layer: nn.Module) -> None:
        """Registers ``layer`` under ``name`` (dotted for a group) and appends it to the trunk."""
        parent, _, leaf = name.rpartition(".")
        owner = self
        if parent:
            if not hasattr(self, parent):
                self.add_module(parent, nn.ModuleDict())
            owner = self.get_submodule(parent)
        owner.add_module(leaf, layer)
        self.trunk.append(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of a batch of ``crop_size`` images (N x 1000), or a score map once
        convolutionalized (N x 1000 x H' x W')."""
        return run_trunk(self, self.trunk, x, {})[1]

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The tapped feature maps (``pool3``, ``pool4``, ``fc7`` where the net has them)."""
        return run_trunk(self, self.trunk, x, {name: tap.layer for name, tap in self.taps.items()})[
            0
        ]


def run_trunk(
    root: nn.Module, trunk: list[str], x: torch.Tensor, taps: dict[str, str]
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Runs the named layers of ``root`` in order; returns the tapped outputs and the last one."""
    wanted = {layer: name for name, layer in taps.items()}
    features: dict[str, torch.Tensor] = {}
    for layer_name in trunk:
        layer = root.get_submodule(layer_name)
        if isinstance(layer, nn.Linear) and x.dim() > 2:
            x = x.flatten(1)  # N×C×H×W -> N×CHW, as Caffe's InnerProduct reads its input
        x = layer(x)
        if layer_name in wanted:
            features[wanted[layer_name]] = x
    return features, x


def trunk_geometry(
    root: nn.Module, trunk: list[str], taps: dict[str, str] | None = None
) -> dict[str, Geometry]:
    """The geometry after every layer of the trunk (by layer name), or of each tap if given."""
    geometry = INPUT
    after: dict[str, Geometry] = {}
    for layer_name in trunk:
        geometry = geometry.through(module_layers(root.get_submodule(layer_name)))
        after[layer_name] = geometry
    if taps is None:
        return after
    return {name: after[layer] for name, layer in taps.items()}


def classifier_geometry(classifier: Classifier) -> Geometry:
    """Geometry of the classifier's output, its fully connected layers seen as convolutions.

    This is what the paper's Table 1 reports: the receptive field and stride of the
    classifier's output unit when the whole net is applied convolutionally.
    """
    geometry = INPUT
    for layer_name in classifier.trunk:
        layer = classifier.get_submodule(layer_name)
        if isinstance(layer, nn.Linear):
            _, height, _ = classifier.fc_inputs[layer_name]
            geometry = geometry.through(module_layers(nn.Conv2d(1, 1, height)))
        else:
            geometry = geometry.through(module_layers(layer))
    return geometry
