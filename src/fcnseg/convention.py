"""The input convention: how raw pixels become the input a set of weights expects.

A network's weights are only right for the input they were trained on. Caffe's nets (the
ILSVRC classifiers, the published FCNs, every net fcnseg trains) read BGR pixels in 0-255
with a per-channel mean subtracted; torchvision's read RGB in [0, 1], standardised by
ImageNet's mean and std. The convention travels with the weights (in their metadata,
:mod:`fcnseg.io.weights`); the datasets and the predictor both apply the one the weights
declare, so nothing converts between two conventions.

Raw pixels are H x W x C: the colour image as RGB in 0-255, then any extra channels the net
reads, in the units the dataset stores them (NYUDv2: log depth in millimetres for RGB-D, the
HHA PNG's three channels in 0-255 for RGB-HHA; section 5 of the paper).

This module is the bottom layer: it imports nothing else of fcnseg but its error type.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fcnseg.errors import FcnsegError

# "none": no colour channels (NYUDv2's depth-only input); every channel is an extra one.
CHANNEL_ORDERS = ("BGR", "RGB", "none")
SCALES = (255.0, 1.0)
_KEYS = {"channel_order", "scale", "mean", "std"}


@dataclass(frozen=True)
class InputConvention:
    """The input a set of weights expects, given raw pixels (RGB 0-255, then extra channels).

    ``x[c] = (raw[order[c]] * scale / 255 - mean[c]) / std[c]``: the colour channels reordered
    to ``channel_order``, extra channels kept in place; ``mean`` and ``std`` are listed in the
    network's channel order.

    Attributes:
        channel_order: order of the three colour channels in the network's input: ``"BGR"``
            (Caffe, OpenCV), ``"RGB"`` (PIL, torchvision), or ``"none"`` for an input without
            colour (every channel extra).
        scale: the value a raw 255 becomes before the mean: 255.0 (Caffe) or 1.0 (torchvision).
        mean: subtracted per input channel after scaling, one value per channel (3, 4 for
            RGB-D, 6 for RGB-HHA).
        std: divides per channel after the mean; ones for Caffe nets. Default: all ones.
        extra_channels: what each channel after the colour is (e.g. ``("log_depth_mm",)``);
            documentation for whoever feeds the net.
    """

    channel_order: str
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...] | None = None
    extra_channels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.channel_order not in CHANNEL_ORDERS:
            raise FcnsegError(
                f"input convention: channel_order {self.channel_order!r}, expected one of "
                f"{', '.join(CHANNEL_ORDERS)}"
            )
        if not _is_number(self.scale) or float(self.scale) not in SCALES:
            raise FcnsegError(f"input convention: scale {self.scale!r}, expected 255 or 1")
        channels = self._colour + len(self.extra_channels)
        if channels == 0:
            raise FcnsegError("input convention: no channels")
        std = (1.0,) * channels if self.std is None else self.std
        for name, values in (("mean", self.mean), ("std", std)):
            if (
                not _is_numbers(values)
                or len(values) != channels
                or not all(math.isfinite(float(v)) for v in values)
            ):
                raise FcnsegError(
                    f"input convention: {name} {values!r}, expected {channels} finite numbers"
                )
        if any(float(v) <= 0 for v in std):
            raise FcnsegError(f"input convention: std {std!r}, expected positive numbers")
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in std))
        object.__setattr__(self, "extra_channels", tuple(str(c) for c in self.extra_channels))

    @property
    def _colour(self) -> int:
        return 0 if self.channel_order == "none" else 3

    @property
    def channels(self) -> int:
        """Input channels: the colour channels (3, or 0) plus the extra ones."""
        return self._colour + len(self.extra_channels)

    @property
    def order(self) -> tuple[int, ...]:
        """For each network input channel, the raw channel it reads."""
        colour = {"BGR": (2, 1, 0), "RGB": (0, 1, 2), "none": ()}[self.channel_order]
        return colour + tuple(range(self._colour, self.channels))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``from_dict`` reads it back."""
        data: dict[str, Any] = {
            "channel_order": self.channel_order,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std or ()),
        }
        if self.extra_channels:
            data["extra_channels"] = list(self.extra_channels)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputConvention:
        """The convention ``to_dict`` wrote; a missing or unknown key is an FcnsegError."""
        if not isinstance(data, Mapping) or not _KEYS <= set(data) <= _KEYS | {"extra_channels"}:
            found = sorted(data) if isinstance(data, Mapping) else type(data).__name__
            raise FcnsegError(f"input convention: keys {found}, expected {sorted(_KEYS)}")
        extra = data.get("extra_channels", [])
        if not isinstance(extra, list) or not all(isinstance(c, str) for c in extra):
            raise FcnsegError(f"input convention: extra_channels {extra!r}, expected names")
        mean, std = data["mean"], data["std"]
        if not _is_numbers(mean) or not _is_numbers(std):
            raise FcnsegError(f"input convention: {dict(data)!r}, expected numbers")
        return cls(str(data["channel_order"]), data["scale"], tuple(mean), tuple(std), tuple(extra))

    def normalize(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw pixels N x C x H x W (or C x H x W) to the network input, float32.

        Raises:
            FcnsegError: the tensor does not have this convention's channel count.
        """
        if raw.dim() not in (3, 4) or raw.shape[-3] != self.channels:
            raise FcnsegError(
                f"expected raw pixels (N x) {self.channels} x H x W for this model's input "
                f"convention, got shape {tuple(raw.shape)}"
            )
        x = raw.float().index_select(-3, torch.tensor(self.order, device=raw.device))
        shape = (self.channels, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=raw.device).view(shape)
        std = torch.tensor(self.std, dtype=torch.float32, device=raw.device).view(shape)
        return (x * (self.scale / 255.0) - mean) / std

    def preprocess(self, raw: np.ndarray) -> torch.Tensor:
        """Raw pixels H x W x C (any real dtype, colour RGB 0-255) to a C x H x W input.

        Raises:
            FcnsegError: not H x W x C with this convention's channel count.
        """
        raw = np.asarray(raw)
        if raw.ndim != 3 or raw.shape[2] != self.channels:
            raise FcnsegError(
                f"expected raw pixels H x W x {self.channels} for this model's input "
                f"convention, got shape {raw.shape}"
            )
        array = raw.astype(np.float32, copy=False)[:, :, list(self.order)]
        scale = np.float32(self.scale / 255.0)
        array = (array * scale - np.asarray(self.mean, np.float32)) / np.asarray(
            self.std, np.float32
        )
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def deprocess(self, image: torch.Tensor) -> np.ndarray:
        """Undoes :meth:`preprocess` for the colour channels: a C x H x W network input back to
        a displayable H x W x 3 uint8 RGB image."""
        if self._colour == 0:
            raise FcnsegError("this input convention has no colour channels to show")
        if image.dim() != 3 or image.shape[0] != self.channels:
            raise FcnsegError(
                f"expected a {self.channels} x H x W input, got shape {tuple(image.shape)}"
            )
        x = image[:3].detach().cpu().float().numpy()
        std = np.asarray(self.std[:3], np.float32).reshape(3, 1, 1)
        mean = np.asarray(self.mean[:3], np.float32).reshape(3, 1, 1)
        colour = (x * std + mean) * np.float32(255.0 / self.scale)
        if self.channel_order == "BGR":
            colour = colour[::-1]
        rgb = np.clip(np.rint(colour.transpose(1, 2, 0)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(rgb)


def caffe_convention(
    mean_bgr: Sequence[float], extra_channels: Sequence[str] = ()
) -> InputConvention:
    """Caffe's convention: BGR, 0-255, a mean pixel subtracted (B, G, R, then one value per
    extra channel), no std."""
    return InputConvention("BGR", 255.0, tuple(mean_bgr), None, tuple(extra_channels))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_numbers(values: Any) -> bool:
    return isinstance(values, Sequence) and all(_is_number(v) for v in values)


TORCHVISION_IMAGENET = InputConvention("RGB", 1.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
