"""Small nets with random weights that reach every layer, so that every layer shapes the scores."""

from __future__ import annotations

import torch
from torch import nn

import fcnseg
from fcnseg.inference.bench import he_initialize

SMALL = {"width": 1 / 16, "fc_width": 16}


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """He-initialised weights (the deep layers matter), random BatchNorm statistics."""
    he_initialize(model, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                features = module.num_features
                module.running_mean.copy_(torch.randn(features, generator=generator))
                module.running_var.copy_(torch.rand(features, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(features, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(features, generator=generator))
    return model.eval()


def small_model(name: str = "fcn8s-vgg16", geometry: str = "caffe", **options: object) -> nn.Module:
    """A named FCN at a sixteenth of VGG16's width, random weights."""
    torch.manual_seed(0)
    backbone = {**SMALL, **options} if "vgg16" in name else options
    return randomize(fcnseg.build_model(name, num_classes=5, geometry=geometry, **backbone))


def image(*shape: int, seed: int = 0) -> torch.Tensor:
    """A mean-subtracted 0-255 image: values of tens."""
    return 50 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
