"""AlexNet in its CaffeNet form (``bvlc_reference_caffenet``), under its Caffe layer names."""

from __future__ import annotations

from torch import nn

from fcnseg.models.classifier import Classifier, Tap


def _lrn() -> nn.LocalResponseNorm:
    # Caffe's LRN: x / (1 + alpha/n * sum of squares over n channels)^beta, as PyTorch's.
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)


class AlexNet(Classifier):
    """CaffeNet: pooling before LRN, grouped conv2/conv4/conv5 (two GPU halves), fc6-fc8."""

    classifier_layer = "fc8"
    input_layer = "conv1"
    crop_size = 227
    fc_inputs = {"fc6": (256, 6, 6), "fc7": (4096, 1, 1), "fc8": (4096, 1, 1)}
    taps = {"fc7": Tap("drop7", 4096)}

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.add_layer("conv1", nn.Conv2d(3, 96, 11, stride=4))
        self.add_layer("relu1", nn.ReLU(inplace=True))
        self.add_layer("pool1", nn.MaxPool2d(3, stride=2, ceil_mode=True))
        self.add_layer("norm1", _lrn())
        self.add_layer("conv2", nn.Conv2d(96, 256, 5, padding=2, groups=2))
        self.add_layer("relu2", nn.ReLU(inplace=True))
        self.add_layer("pool2", nn.MaxPool2d(3, stride=2, ceil_mode=True))
        self.add_layer("norm2", _lrn())
        self.add_layer("conv3", nn.Conv2d(256, 384, 3, padding=1))
        self.add_layer("relu3", nn.ReLU(inplace=True))
        self.add_layer("conv4", nn.Conv2d(384, 384, 3, padding=1, groups=2))
        self.add_layer("relu4", nn.ReLU(inplace=True))
        self.add_layer("conv5", nn.Conv2d(384, 256, 3, padding=1, groups=2))
        self.add_layer("relu5", nn.ReLU(inplace=True))
        self.add_layer("pool5", nn.MaxPool2d(3, stride=2, ceil_mode=True))
        self.add_layer("fc6", nn.Linear(256 * 6 * 6, 4096))
        self.add_layer("relu6", nn.ReLU(inplace=True))
        self.add_layer("drop6", nn.Dropout(0.5))
        self.add_layer("fc7", nn.Linear(4096, 4096))
        self.add_layer("relu7", nn.ReLU(inplace=True))
        self.add_layer("drop7", nn.Dropout(0.5))
        self.add_layer("fc8", nn.Linear(4096, num_classes))
