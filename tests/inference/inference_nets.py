"""Small nets with random weights everywhere, so that every layer shapes the scores."""

from __future__ import annotations

import torch
from torch import nn

import fcnseg

SMALL = {"width": 1 / 16, "fc_width": 16}


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Weights that carry the input through every layer, score layers included.

    PyTorch's default initialisation shrinks the signal layer after layer until the deep
    scores hardly depend on the image; He initialisation keeps it, so that every pixel of a
    receptive field matters (a tiling seam or a wrong crop shows). Learnable upsamplings get
    noise that mixes classes; the final bilinear upsampling stays as built.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                # scores of a few units, as a trained net's; the features stay image-sized
                gain = 1e-3 if "score" in name else 2.0
                std = (gain / fan_in) ** 0.5
                module.weight.copy_(std * torch.randn(module.weight.shape, generator=generator))
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, nn.ConvTranspose2d) and module.weight.requires_grad:
                noise = torch.randn(module.weight.shape, generator=generator)
                module.weight.add_(0.1 * noise)
            elif isinstance(module, nn.BatchNorm2d):
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
    return randomize(fcnseg.build_model(name, 5, geometry, **backbone))


def image(*shape: int, seed: int = 0) -> torch.Tensor:
    """A mean-subtracted 0-255 image: values of tens."""
    return 50 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
