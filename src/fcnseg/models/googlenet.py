"""GoogLeNet (``bvlc_googlenet``), the ILSVRC14 winner, under its Caffe layer names.

Caffe's ``inception_3a/1x1`` is ``inception_3a.1x1`` here: a '/' becomes a '.'. Only the final
loss branch is built; the two auxiliary classifiers are training aids the FCN does not use
(section 4.1).
"""

from __future__ import annotations

import torch
from torch import nn

from fcnseg.models.classifier import Classifier, Tap
from fcnseg.models.geometry import Layer


class Inception(nn.Module):
    """Four branches concatenated: 1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max pool then 1x1."""

    def __init__(
        self, in_channels: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, proj: int
    ) -> None:
        super().__init__()
        layers = {
            "1x1": nn.Conv2d(in_channels, c1, 1),
            "3x3_reduce": nn.Conv2d(in_channels, c3_reduce, 1),
            "3x3": nn.Conv2d(c3_reduce, c3, 3, padding=1),
            "5x5_reduce": nn.Conv2d(in_channels, c5_reduce, 1),
            "5x5": nn.Conv2d(c5_reduce, c5, 5, padding=2),
            "pool": nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True),
            "pool_proj": nn.Conv2d(in_channels, proj, 1),
        }
        for name, layer in layers.items():
            self.add_module(name, layer)
        self.out_channels = c1 + c3 + c5 + proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu = torch.relu
        get = self.get_submodule
        branch_1x1 = relu(get("1x1")(x))
        branch_3x3 = relu(get("3x3")(relu(get("3x3_reduce")(x))))
        branch_5x5 = relu(get("5x5")(relu(get("5x5_reduce")(x))))
        branch_pool = relu(get("pool_proj")(get("pool")(x)))
        return torch.cat([branch_1x1, branch_3x3, branch_5x5, branch_pool], 1)

    def spatial_layers(self) -> list[Layer]:
        # Every branch is centred; the 5x5 branch sees farthest.
        return [Layer(1), Layer(5, 1, 2)]


# name: (c1, c3_reduce, c3, c5_reduce, c5, pool_proj), in the order of the Caffe prototxt
_INCEPTIONS = {
    "inception_3a": (64, 96, 128, 16, 32, 32),
    "inception_3b": (128, 128, 192, 32, 96, 64),
    "inception_4a": (192, 96, 208, 16, 48, 64),
    "inception_4b": (160, 112, 224, 24, 64, 64),
    "inception_4c": (128, 128, 256, 24, 64, 64),
    "inception_4d": (112, 144, 288, 32, 64, 64),
    "inception_4e": (256, 160, 320, 32, 128, 128),
    "inception_5a": (256, 160, 320, 32, 128, 128),
    "inception_5b": (384, 192, 384, 48, 128, 128),
}
# a stride-2 pooling follows these modules
_POOL_AFTER = {"inception_3b": "pool3.3x3_s2", "inception_4e": "pool4.3x3_s2"}


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


class GoogLeNet(Classifier):
    """GoogLeNet's main branch: stem, nine inception modules, 7x7 average pool, classifier."""

    classifier_layer = "loss3.classifier"
    global_pool = "pool5.7x7_s1"
    input_layer = "conv1.7x7_s2"
    crop_size = 224
    fc_inputs = {"loss3.classifier": (1024, 1, 1)}
    # Stride 8, 16 and 32 maps, under the names the FCN heads read.
    taps = {
        "pool3": Tap("inception_3b", 480),
        "pool4": Tap("inception_4e", 832),
        "fc7": Tap("pool5.drop_7x7_s1", 1024),
    }

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.add_layer("conv1.7x7_s2", nn.Conv2d(3, 64, 7, stride=2, padding=3))
        self.add_layer("conv1.relu_7x7", nn.ReLU(inplace=True))
        self.add_layer("pool1.3x3_s2", nn.MaxPool2d(3, stride=2, ceil_mode=True))
        self.add_layer("pool1.norm1", _lrn())
        self.add_layer("conv2.3x3_reduce", nn.Conv2d(64, 64, 1))
        self.add_layer("conv2.relu_3x3_reduce", nn.ReLU(inplace=True))
        self.add_layer("conv2.3x3", nn.Conv2d(64, 192, 3, padding=1))
        self.add_layer("conv2.relu_3x3", nn.ReLU(inplace=True))
        self.add_layer("conv2.norm2", _lrn())
        self.add_layer("pool2.3x3_s2", nn.MaxPool2d(3, stride=2, ceil_mode=True))
        in_channels = 192
        for name, widths in _INCEPTIONS.items():
            module = Inception(in_channels, *widths)
            self.add_layer(name, module)
            in_channels = module.out_channels
            if name in _POOL_AFTER:
                self.add_layer(_POOL_AFTER[name], nn.MaxPool2d(3, stride=2, ceil_mode=True))
        self.add_layer("pool5.7x7_s1", nn.AvgPool2d(7, stride=1))
        self.add_layer("pool5.drop_7x7_s1", nn.Dropout(0.4))
        self.add_layer("loss3.classifier", nn.Linear(1024, num_classes))
