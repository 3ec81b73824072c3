"""VGG16, the ILSVRC14 classifier (Simonyan & Zisserman), under its Caffe layer names."""

from __future__ import annotations

from torch import nn

from fcnseg.errors import ConfigError
from fcnseg.models.classifier import Classifier, Tap

# (block, output channels of each convolution in the block)
_BLOCKS = ((1, (64, 64)), (2, (128, 128)), (3, (256,) * 3), (4, (512,) * 3), (5, (512,) * 3))


# The most channels a layer may be given: far past any machine's memory already (fc6 alone
# would hold 2**24 x 512 x 49 weights), and below the sizes torch cannot even represent,
# whose errors are C++ frame dumps instead of one line.
MAX_CHANNELS = 1 << 24


def check_widths(width: object, fc_width: object) -> None:
    """Refuses a VGG16 backbone of no channels, or of more than :data:`MAX_CHANNELS` a layer,
    wherever its options come from (a model built, a training configuration before its run
    folder is written).

    Raises:
        ConfigError: ``width`` not a finite number in (0, MAX_CHANNELS / 512], or ``fc_width``
            not a whole number in [1, MAX_CHANNELS] (field ``backbone``, the option named, so
            that a command can name its flag).
    """
    widest = MAX_CHANNELS / 512  # conv5's 512 channels, times width
    if not (isinstance(width, (int, float)) and 0 < width <= widest):  # NaN fails too
        raise ConfigError(
            "backbone",
            f"must be a finite number above 0, at most {widest:g}, got {width!r}",
            "width",
        )
    if (
        isinstance(fc_width, bool)
        or not isinstance(fc_width, int)
        or not 1 <= fc_width <= MAX_CHANNELS
    ):
        raise ConfigError(
            "backbone",
            f"must be a whole number from 1 to {MAX_CHANNELS}, got {fc_width!r}",
            "fc_width",
        )


class VGG16(Classifier):
    """VGG16 as ``VGG_ILSVRC_16_layers``: 13 convolutions, 5 ceil-mode poolings, fc6-fc8.

    Args:
        num_classes: outputs of fc8 (1000 for ILSVRC).
        width: multiplies every convolution's channels; below 1 for nets trained from scratch
            on a CPU (the layer names stay VGG16's).
        fc_width: channels of fc6 and fc7 (4096 in VGG16).
        batch_norm: a BatchNorm after every convolution (``bn1_1`` after ``conv1_1``), which
            training from scratch wants; VGG16 itself has none.
        in_channels: input channels (4 for RGB-D early fusion, section 5).

    Raises:
        ConfigError (an FcnsegError): ``width`` or ``fc_width`` out of range
            (:func:`check_widths`).
    """

    classifier_layer = "fc8"
    input_layer = "conv1_1"
    crop_size = 224

    def __init__(
        self,
        num_classes: int = 1000,
        *,
        width: float = 1.0,
        fc_width: int = 4096,
        batch_norm: bool = False,
        in_channels: int = 3,
    ) -> None:
        check_widths(width, fc_width)
        super().__init__()
        for block, widths in _BLOCKS:
            for i, full_width in enumerate(widths, start=1):
                channels = max(1, round(full_width * width))
                self.add_layer(f"conv{block}_{i}", nn.Conv2d(in_channels, channels, 3, padding=1))
                if batch_norm:
                    self.add_layer(f"bn{block}_{i}", nn.BatchNorm2d(channels))
                self.add_layer(f"relu{block}_{i}", nn.ReLU(inplace=True))
                in_channels = channels
            if block == 3:
                pool3_channels = channels
            # Caffe rounds pooled sizes up; the published FCNs depend on it.
            self.add_layer(f"pool{block}", nn.MaxPool2d(2, stride=2, ceil_mode=True))
            if block == 4:
                pool4_channels = channels
        self.add_layer("fc6", nn.Linear(channels * 7 * 7, fc_width))
        self.add_layer("relu6", nn.ReLU(inplace=True))
        self.add_layer("drop6", nn.Dropout(0.5))
        self.add_layer("fc7", nn.Linear(fc_width, fc_width))
        self.add_layer("relu7", nn.ReLU(inplace=True))
        self.add_layer("drop7", nn.Dropout(0.5))
        self.add_layer("fc8", nn.Linear(fc_width, num_classes))
        self.fc_inputs = {
            "fc6": (channels, 7, 7),
            "fc7": (fc_width, 1, 1),
            "fc8": (fc_width, 1, 1),
        }
        self.taps = {
            "pool3": Tap("pool3", pool3_channels),
            "pool4": Tap("pool4", pool4_channels),
            "fc7": Tap("drop7", fc_width),
        }
