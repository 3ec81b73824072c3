"""Fully connected layers as convolutions (section 3.1, Figure 2), and decapitation (4.1)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from fcnseg.models.classifier import Classifier


def convolutionalize(classifier: Classifier, *, decapitate: bool = True) -> Classifier:
    """A copy of ``classifier`` whose fully connected layers are convolutions.

    An inner product over a C x H x W input is a C x H x W convolution whose output is 1 x 1;
    slid over a larger input it gives a map of the classifier's scores, one per window
    (Figure 2). The weights are the same numbers, reshaped (fc6: 4096 x 25088 becomes
    4096 x 512 x 7 x 7).

    Args:
        classifier: the ImageNet classifier; it is not modified.
        decapitate: drop the final classifier layer and, for GoogLeNet, the final global
            average pooling (section 4.1), leaving the features an FCN scores.

    Returns:
        The convolutionalized net, with the same layer names.
    """
    net = copy.deepcopy(classifier)
    for name, (channels, height, width) in classifier.fc_inputs.items():
        linear = net.get_submodule(name)
        assert isinstance(linear, nn.Linear)
        conv = nn.Conv2d(
            channels,
            linear.out_features,
            (height, width),
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        with torch.no_grad():
            conv.weight.copy_(linear.weight.reshape(conv.weight.shape))
            conv.bias.copy_(linear.bias)
        _replace(net, name, conv)
    if decapitate:
        dropped = [classifier.classifier_layer]
        if classifier.global_pool is not None:
            dropped.append(classifier.global_pool)
        for name in dropped:
            _remove(net, name)
    return net


def _replace(net: nn.Module, name: str, layer: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, leaf, layer)


def _remove(net: Classifier, name: str) -> None:
    parent, _, leaf = name.rpartition(".")
    owner = net.get_submodule(parent) if parent else net
    delattr(owner, leaf)
    net.trunk = [layer for layer in net.trunk if layer != name]
    if parent and len(owner) == 0:
        delattr(net, parent)
