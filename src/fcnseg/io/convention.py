"""How to turn an image into the input a set of weights expects: channel order, scale, mean, std.

A network's weights are only right for the input they were trained on. Caffe's nets (the
ILSVRC classifiers and the published FCNs) read BGR pixels in 0-255 with a per-channel mean
subtracted; torchvision's read RGB in [0, 1], standardised by ImageNet's mean and std. The
convention travels with the weights (in their metadata) so that nobody has to remember it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fcnseg.errors import FcnsegError

CHANNEL_ORDERS = ("BGR", "RGB")
SCALES = (255.0, 1.0)


@dataclass(frozen=True)
class InputConvention:
    """The input a set of weights expects, given an 8-bit image.

    ``x = (reorder(pixels) * scale / 255 - mean) / std``, per channel, with ``mean`` and ``std``
    listed in the network's channel order.

    Attributes:
        channel_order: ``"BGR"`` (Caffe, OpenCV) or ``"RGB"`` (PIL, torchvision).
        scale: the value of a full-intensity pixel: 255.0 (Caffe) or 1.0 (torchvision).
        mean: subtracted per channel after scaling, in ``channel_order``.
        std: divides per channel after the mean, in ``channel_order``; ones for Caffe nets.
    """

    channel_order: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise FcnsegError(
                f"input convention: channel_order {self.channel_order!r}, expected one of "
                f"{', '.join(CHANNEL_ORDERS)}"
            )
        if float(self.scale) not in SCALES:
            raise FcnsegError(f"input convention: scale {self.scale!r}, expected 255 or 1")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) != 3 or not all(math.isfinite(float(v)) for v in values):
                raise FcnsegError(
                    f"input convention: {name} {values!r}, expected three finite numbers"
                )
        if any(float(v) <= 0 for v in self.std):
            raise FcnsegError(f"input convention: std {self.std!r}, expected positive numbers")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_dict`` reads it back."""
        return {
            "channel_order": self.channel_order,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputConvention:
        """The convention ``to_dict`` wrote; a missing or extra key is an error."""
        keys = {"channel_order", "scale", "mean", "std"}
        if not isinstance(data, Mapping) or set(data) != keys:
            found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise FcnsegError(f"input convention: keys {found}, expected {sorted(keys)}")
        mean, std = data["mean"], data["std"]
        if not _is_numbers(mean) or not _is_numbers(std) or not _is_number(data["scale"]):
            raise FcnsegError(f"input convention: {dict(data)!r}, expected numbers")
        return cls(str(data["channel_order"]), data["scale"], tuple(mean), tuple(std))

    def normalize(self, rgb: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W RGB pixels in 0-255 to the network input, as float32."""
        x = rgb.float()
        if self.channel_order == "BGR":
            x = x.flip(-3)
        shape = (3, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(shape)
        std = torch.tensor(self.std, dtype=torch.float32).view(shape)
        return (x * (self.scale / 255.0) - mean) / std


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_numbers(values: Any) -> bool:
    return isinstance(values, Sequence) and all(_is_number(v) for v in values)


def caffe_convention(mean_bgr: Sequence[float]) -> InputConvention:
    """Caffe's convention: BGR, 0-255, a mean pixel subtracted, no std."""
    return InputConvention("BGR", 255.0, tuple(mean_bgr))


TORCHVISION_IMAGENET = InputConvention("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
