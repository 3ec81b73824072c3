"""The skip DAG of section 4.2: FCN-32s, FCN-16s, FCN-8s on a convolutionalized classifier.

The FCN registers the backbone's layers under their own names, flat, next to its head layers
(``score_fr``, ``score_pool4``, ``upscore2``, ...): the state dict reads like the published
Caffe nets, so their weights load by name. Every crop is derived from the geometry of the maps
it aligns (``fcnseg.models.geometry``), never typed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fcnseg.models.classifier import Classifier, run_trunk, trunk_geometry
from fcnseg.models.geometry import INPUT, Geometry, Layer, bilinear_kernel_size, module_layers
from fcnseg.models.upsample import bilinear_upsampling, deconvolve

GEOMETRIES = ("caffe", "lean")

# Upsampling layer that brings the fused scores from stride 32 to 16, and from 16 to 8.
_SKIP_UPSCORE = {"pool4": "upscore2", "pool3": "upscore_pool4"}
# Fixed scales of the at-once net (voc-fcn8s-atonce): the skips start nearly silent.
ATONCE_SCALES = {"pool4": 0.01, "pool3": 0.0001}


class ChannelScale(nn.Module):
    """Caffe's Scale layer with a fixed per-channel factor (``scale_pool4``, ``scale_pool3``)."""

    def __init__(self, channels: int, value: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), value), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1)


@dataclass(frozen=True)
class Fusion:
    """How a skip's scores meet the upsampled coarser scores: cells cropped from each."""

    skip: str
    crop_upscore: int
    crop_skip: int


class FCN(nn.Module):
    """A fully convolutional net: backbone features, 1x1 class scores, upsampling, skips.

    Args:
        backbone: a convolutionalized, decapitated classifier; its layers are taken over.
        num_classes: output channels (21 for PASCAL VOC, background included).
        skips: finer feature maps fused in order, ``()`` for 32s, ``("pool4",)`` for 16s,
            ``("pool4", "pool3")`` for 8s.
        atonce: scale the skip features by the fixed factors of the at-once net.
        heads: several score heads on one backbone, layer-name suffix to classes (SIFT Flow's
            ``{"_sem": 33, "_geo": 3}`` names its layers ``score_fr_sem``, ``upscore2_geo``);
            the output is then a dict from the suffix without its underscore to scores.

    Attributes (the interface every FCN shares, :class:`~fcnseg.models.LateFusionFCN` too):
        in_channels: channels of the input.
        heads: head name to classes, in output order: ``{"out": K}`` for a net of one head
            (whose output is the N x K x H x W tensor itself), ``{"sem": 33, "geo": 3}`` for
            SIFT Flow's (whose output is a dict by those names); see
            :func:`fcnseg.models.head_scores`.
        num_classes: the first head's classes.
        score_geometry: the geometry of each score map before fusion (``fc7``, skips).
        output_geometry: the geometry of the final upsampled scores before the crop.
    """

    def __init__(
        self,
        backbone: Classifier,
        num_classes: int | None = None,
        *,
        skips: tuple[str, ...] = (),
        atonce: bool = False,
        heads: dict[str, int] | None = None,
    ) -> None:
        super().__init__()
        for name in skips:
            if name not in backbone.taps:
                raise ValueError(f"{type(backbone).__name__} has no '{name}' map for a skip")
        if (heads is None) == (num_classes is None):
            raise ValueError("give either num_classes or heads")
        # layer-name suffix -> classes; the public names drop the underscore
        self.head_suffixes = {"": num_classes} if heads is None else dict(heads)
        self.heads = {head_name(s): k for s, k in self.head_suffixes.items()}
        self.num_classes = next(iter(self.heads.values()))
        first = backbone.get_submodule(backbone.input_layer)
        self.in_channels = int(first.in_channels)
        self.trunk = list(backbone.trunk)
        self.taps = {name: tap.layer for name, tap in backbone.taps.items()}
        self.skips = skips
        for layer_name in backbone.trunk:
            top = layer_name.split(".")[0]
            if not hasattr(self, top):
                self.add_module(top, backbone.get_submodule(top))
        if atonce:
            for skip in skips:
                scale = ChannelScale(backbone.taps[skip].channels, ATONCE_SCALES[skip])
                self.add_module(f"scale_{skip}", scale)

        tap_geometry = trunk_geometry(self, self.trunk, self.taps)
        self.score_geometry = {"fc7": tap_geometry["fc7"], **{s: tap_geometry[s] for s in skips}}
        self.final_upscore = {0: "upscore", 1: "upscore16", 2: "upscore8"}[len(skips)]
        for suffix, classes in self.head_suffixes.items():
            self.add_module(f"score_fr{suffix}", _zero_conv(backbone.taps["fc7"].channels, classes))
            score = tap_geometry["fc7"]
            fusions: list[Fusion] = []
            for skip in skips:
                upscore = _SKIP_UPSCORE[skip] + suffix
                kernel = bilinear_kernel_size(2, score, tap_geometry[skip])
                self.add_module(upscore, bilinear_upsampling(classes, kernel, 2, learnable=True))
                up = score.then(_layer_of(self.get_submodule(upscore)))
                skip_score = _zero_conv(backbone.taps[skip].channels, classes)
                self.add_module(f"score_{skip}{suffix}", skip_score)
                fine = tap_geometry[skip]
                # Caffe crops the skip scores onto the upsampled ones; the general rule keeps
                # the cells both maps cover, which is the same crop wherever Caffe's applies.
                start = max(up.offset, fine.offset)
                aligned = Geometry(max(up.receptive_field, fine.receptive_field), up.stride, start)
                fusions.append(Fusion(skip, up.crop_to(aligned), fine.crop_to(aligned)))
                score = aligned
            factor = int(score.stride)
            kernel = bilinear_kernel_size(factor, score, INPUT)
            final = bilinear_upsampling(classes, kernel, factor, learnable=False)
            self.add_module(self.final_upscore + suffix, final)
        # Every head has the same geometry: the crops are shared.
        self.fusions = fusions
        self.output_geometry = score.then(_layer_of(final))
        self.crop = self.output_geometry.crop_to(INPUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """N x C_in x H x W input (BGR, 0-255, mean subtracted) to N x classes x H x W scores
        (a dict of them for a net with several heads)."""
        return self.upsample(self.coarse_scores(x), x.shape[-2], x.shape[-1])

    def coarse_scores(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each head's fused scores at the final stride, before the last upsampling."""
        features, _ = run_trunk(self, self.trunk, x, self.taps)
        skip_features = {}
        for skip in self.skips:
            feature = features[skip]
            if hasattr(self, f"scale_{skip}"):
                feature = self.get_submodule(f"scale_{skip}")(feature)
            skip_features[skip] = feature
        scores = {}
        for suffix in self.head_suffixes:
            score = self.get_submodule(f"score_fr{suffix}")(features["fc7"])  # N×K×H/32×W/32
            for fusion in self.fusions:
                layer = self.get_submodule(_SKIP_UPSCORE[fusion.skip] + suffix)
                upscore = deconvolve(layer, score)  # 2x
                skip_score = self.get_submodule(f"score_{fusion.skip}{suffix}")(
                    skip_features[fusion.skip]
                )
                score = _crop_sum(upscore, fusion.crop_upscore, skip_score, fusion.crop_skip)
            scores[suffix] = score
        return scores

    def upsample(
        self, scores: dict[str, torch.Tensor], height: int, width: int
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """The final fixed upsampling of each head's scores, cropped onto the input pixels."""
        outputs = {}
        c = self.crop
        for suffix, score in scores.items():
            final = self.get_submodule(self.final_upscore + suffix)
            upscore = deconvolve(final, score)  # N×K×~H×~W
            outputs[head_name(suffix)] = upscore[:, :, c : c + height, c : c + width]
        if len(outputs) == 1:
            return next(iter(outputs.values()))
        return outputs

    @property
    def coarse_geometry(self) -> Geometry:
        """The geometry of the coarsest score map (``score_fr``), where loss sampling draws."""
        return self.score_geometry["fc7"]

    def derived_crops(self) -> dict[str, int]:
        """Every crop offset, under the name of the layer whose output is cropped."""
        crops = {}
        for fusion in self.fusions:
            crops[_SKIP_UPSCORE[fusion.skip]] = fusion.crop_upscore
            crops[f"score_{fusion.skip}"] = fusion.crop_skip
        crops[self.final_upscore] = self.crop
        return crops


SINGLE_HEAD = "out"


def head_name(suffix: str) -> str:
    """A head's public name from its layer-name suffix: ``"_geo"`` is ``"geo"``; the one head
    of a single-headed net (no suffix) is ``"out"``, as torchvision names it."""
    return suffix.lstrip("_") or SINGLE_HEAD


def head_scores(
    model: nn.Module, output: torch.Tensor | dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A model's output as head name -> N x K x H x W scores, in ``model.heads`` order,
    whether the net has one head (its output is the tensor) or several (a dict)."""
    if isinstance(output, dict):
        return output
    heads = getattr(model, "heads", {SINGLE_HEAD: None})  # any single-output module
    (name,) = heads
    return {name: output}


def _crop_sum(a: torch.Tensor, crop_a: int, b: torch.Tensor, crop_b: int) -> torch.Tensor:
    height = min(a.shape[-2] - crop_a, b.shape[-2] - crop_b)
    width = min(a.shape[-1] - crop_a, b.shape[-1] - crop_b)
    return (
        a[:, :, crop_a : crop_a + height, crop_a : crop_a + width]
        + b[:, :, crop_b : crop_b + height, crop_b : crop_b + width]
    )


def _zero_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    # Zero-initialised class scores (section 4.3): random ones did no better.
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _layer_of(module: nn.Module) -> Layer:
    (layer,) = module_layers(module)
    return layer
