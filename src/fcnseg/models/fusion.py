"""The NYUDv2 nets of section 5: RGB-D early fusion and RGB-HHA late fusion."""

from __future__ import annotations

import torch
from torch import nn

from fcnseg.models.classifier import Classifier
from fcnseg.models.fcn import FCN


def expand_input_channels(classifier: Classifier, channels: int = 4) -> Classifier:
    """Early fusion: the first convolution takes ``channels`` inputs, in place.

    The colour filters are kept and every extra channel starts as the mean of the colour
    filters, so a depth channel begins by contributing like a grey image (the reference's
    RGB-D initialisation).
    """
    first = classifier.get_submodule(classifier.input_layer)
    assert isinstance(first, nn.Conv2d)
    wider = nn.Conv2d(channels, first.out_channels, first.kernel_size, first.stride, first.padding)
    with torch.no_grad():
        colour = first.weight[:, :3]
        wider.weight[:, :3] = colour
        wider.weight[:, 3:] = colour.mean(1, keepdim=True)
        wider.bias.copy_(first.bias)
    parent, _, leaf = classifier.input_layer.rpartition(".")
    setattr(classifier.get_submodule(parent) if parent else classifier, leaf, wider)
    return classifier


class LateFusionFCN(nn.Module):
    """Two FCN streams whose coarse scores are summed with fixed weights, then upsampled once.

    The input is the streams' inputs stacked on the channel axis (colour then HHA for
    ``nyud-fcn32s-color-hha``); the reference sums ``score_frcolor`` and ``score_frhha`` with
    coefficients 0.5 each before its single ``upscore``. The first stream's final upsampling
    is the one used: every stream has the same geometry and the same fixed bilinear kernel.

    Args:
        streams: stream name to FCN (e.g. ``{"color": ..., "hha": ...}``).
        in_channels: stream name to its input channels, in input order.
        weight: the coefficient of every stream's scores.
    """

    def __init__(
        self, streams: dict[str, FCN], in_channels: dict[str, int], weight: float = 0.5
    ) -> None:
        super().__init__()
        if list(streams) != list(in_channels):
            raise ValueError("streams and in_channels must name the same streams in order")
        for name, stream in streams.items():
            self.add_module(name, stream)  # state dict: color.conv1_1.weight, hha.conv1_1...
        self.stream_names = list(streams)
        self.stream_channels = dict(in_channels)
        self.weight = weight
        first = next(iter(streams.values()))
        # The interface of every FCN (see FCN): the streams share heads and geometry.
        self.in_channels = sum(in_channels.values())
        self.heads = dict(first.heads)
        self.num_classes = first.num_classes
        self.score_geometry = first.score_geometry
        self.output_geometry = first.output_geometry
        self.coarse_geometry = first.coarse_geometry

    def caffe_layer(self, module_path: str) -> str:
        """The reference's layer name: a stream's layers carry its name as a suffix
        (``conv1_1color``, ``score_frhha``); the one upsampling after the fused scores is
        ``upscore``, and fills both streams' fixed final kernels."""
        stream, _, layer = module_path.partition(".")
        if layer == self.get_submodule(stream).final_upscore:
            return layer
        return layer.replace(".", "/") + stream

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x (sum of stream channels) x H x W to N x classes x H x W scores."""
        inputs = torch.split(x, list(self.stream_channels.values()), dim=1)
        fused: dict[str, torch.Tensor] | None = None
        streams = [self.get_submodule(name) for name in self.stream_names]
        for stream, stream_input in zip(streams, inputs, strict=True):
            scores = stream.coarse_scores(stream_input)
            if fused is None:
                fused = {k: self.weight * v for k, v in scores.items()}
            else:
                fused = {k: fused[k] + self.weight * v for k, v in scores.items()}
        return streams[0].upsample(fused, x.shape[-2], x.shape[-1])
