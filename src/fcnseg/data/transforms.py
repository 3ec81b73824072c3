"""Joint (image, label) transforms: the paper's augmentation and whole-image batching.

Section 4.3: "We tried augmenting the training data by randomly mirroring and 'jittering' the
images by translating them up to 32 pixels (the coarsest scale of prediction) in each
direction." Random scale and random crop are extras that let images of different sizes form
a fixed-size batch. Images are mean-subtracted (C x H x W), so filling with 0 fills with the
mean; labels (H x W, or K x H x W for several tasks) are filled with void.

Every random transform draws from its `generator` if given (reproducible runs in one
process), else from torch's global generator, which DataLoader seeds differently in each
worker; a generator given here would be copied into every worker and repeat the same draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from fcnseg.convention import InputConvention

from .dataset import JointTransform
from .palettes import VOID

Pair = tuple[torch.Tensor, torch.Tensor]


def mirror(image: torch.Tensor, label: torch.Tensor) -> Pair:
    """Flips image and label left to right."""
    return image.flip(-1), label.flip(-1)


def translate(
    image: torch.Tensor, label: torch.Tensor, shift_y: int, shift_x: int, ignore_index: int = VOID
) -> Pair:
    """Moves image and label content by (shift_y, shift_x) pixels, keeping their size.

    Pixel (y, x) goes to (y + shift_y, x + shift_x); what moves out is dropped, what is left
    uncovered becomes 0 in the image (the mean) and `ignore_index` in the label.
    """
    height, width = image.shape[-2:]
    moved_image = torch.zeros_like(image)
    moved_label = torch.full_like(label, ignore_index)
    target_y = slice(max(shift_y, 0), min(height, height + shift_y))
    target_x = slice(max(shift_x, 0), min(width, width + shift_x))
    source_y = slice(max(-shift_y, 0), min(height, height - shift_y))
    source_x = slice(max(-shift_x, 0), min(width, width - shift_x))
    moved_image[..., target_y, target_x] = image[..., source_y, source_x]
    moved_label[..., target_y, target_x] = label[..., source_y, source_x]
    return moved_image, moved_label


def rescale(image: torch.Tensor, label: torch.Tensor, factor: float) -> Pair:
    """Resizes by `factor`: the image bilinearly, the label by nearest neighbour."""
    height, width = image.shape[-2:]
    size = (max(1, round(height * factor)), max(1, round(width * factor)))
    scaled_image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)
    # "nearest-exact" samples pixel centres, so the label stays aligned with the image.
    planes = label.reshape(1, -1, height, width).float()
    scaled_label = F.interpolate(planes, size=size, mode="nearest-exact")
    return scaled_image[0], scaled_label.reshape(*label.shape[:-2], *size).to(label.dtype)


def pad_to(
    image: torch.Tensor, label: torch.Tensor, height: int, width: int, ignore_index: int = VOID
) -> Pair:
    """Pads at the bottom and right to at least height x width (image 0, label void).

    Padding after the content keeps pixel coordinates, so predictions are cropped back by
    taking the top-left H x W.
    """
    old_height, old_width = image.shape[-2:]
    height, width = max(height, old_height), max(width, old_width)
    padded_image = image.new_zeros((*image.shape[:-2], height, width))
    padded_label = label.new_full((*label.shape[:-2], height, width), ignore_index)
    padded_image[..., :old_height, :old_width] = image
    padded_label[..., :old_height, :old_width] = label
    return padded_image, padded_label


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """An integer in [low, high], both included."""
    return int(torch.randint(low, high + 1, (), generator=generator))


@dataclass
class RandomMirror:
    """Mirrors the pair with probability `p`."""

    p: float = 0.5
    generator: torch.Generator | None = None

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> Pair:
        if torch.rand((), generator=self.generator).item() < self.p:
            return mirror(image, label)
        return image, label


@dataclass
class RandomJitter:
    """Translates the pair by up to `max_shift` pixels in each direction (the paper's jitter).

    The default of 32 is the stride of the coarsest prediction, pool5's.
    """

    max_shift: int = 32
    ignore_index: int = VOID
    generator: torch.Generator | None = None

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> Pair:
        shift_y = _randint(-self.max_shift, self.max_shift, self.generator)
        shift_x = _randint(-self.max_shift, self.max_shift, self.generator)
        return translate(image, label, shift_y, shift_x, self.ignore_index)


@dataclass
class RandomScale:
    """Rescales the pair by a factor drawn uniformly from [min_scale, max_scale]."""

    min_scale: float = 0.5
    max_scale: float = 2.0
    generator: torch.Generator | None = None

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> Pair:
        return rescale(image, label, _uniform(self.min_scale, self.max_scale, self.generator))


# ITU-R BT.601 luma of R, G, B: the grey that contrast and saturation scale towards (as
# torchvision's rgb_to_grayscale).
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class RandomColourJitter:
    """Photometric augmentation: brightness, contrast and saturation, each scaled by a factor
    drawn uniformly from [1 - strength, 1 + strength], in that order (torchvision's
    ``ColorJitter`` without hue), on the raw 0-255 colours, clipped to 0-255.

    The image is a network input in ``convention`` (C x H x W, float32); it is mapped back to
    raw colours, changed, and mapped forward again, so the same strength means the same change
    whatever the convention. Extra channels (depth, HHA) and the label are left as they are.
    Not in the paper (section 4.3 tries only mirroring and jittering); it stands in for the
    lighting of scenes the training images do not show.
    """

    convention: InputConvention
    strength: float = 0.3
    generator: torch.Generator | None = None

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> Pair:
        convention = self.convention
        if convention.channel_order == "none" or self.strength == 0:
            return image, label
        low, high = 1 - self.strength, 1 + self.strength
        brightness, contrast, saturation = (_uniform(low, high, self.generator) for _ in "bcs")
        gain = torch.tensor([convention.scale / 255.0 / std for std in convention.std[:3]]).view(
            3, 1, 1
        )
        offset = torch.tensor(
            [-mean / std for mean, std in zip(convention.mean[:3], convention.std[:3], strict=True)]
        ).view(3, 1, 1)
        luma = torch.tensor([_LUMA[channel] for channel in convention.order[:3]]).view(3, 1, 1)
        colour = (image[:3] - offset) / gain  # raw 0-255, in the network's channel order
        colour = (colour * brightness).clamp(0, 255)
        mean_grey = (colour * luma).sum(0).mean()
        colour = ((colour - mean_grey) * contrast + mean_grey).clamp(0, 255)
        grey = (colour * luma).sum(0, keepdim=True)
        colour = ((colour - grey) * saturation + grey).clamp(0, 255)
        return torch.cat([colour * gain + offset, image[3:]]), label


@dataclass
class RandomCrop:
    """Crops a random `size` (H, W) window, padding first (image 0, label void) if smaller."""

    size: tuple[int, int]
    ignore_index: int = VOID
    generator: torch.Generator | None = None

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> Pair:
        crop_height, crop_width = self.size
        image, label = pad_to(image, label, crop_height, crop_width, self.ignore_index)
        height, width = image.shape[-2:]
        top = _randint(0, height - crop_height, self.generator)
        left = _randint(0, width - crop_width, self.generator)
        window = (..., slice(top, top + crop_height), slice(left, left + crop_width))
        return image[window], label[window]


@dataclass
class Compose:
    """Applies joint transforms in order."""

    transforms: Sequence[JointTransform] = field(default_factory=list)

    def __call__(self, image: torch.Tensor, label: torch.Tensor) -> Pair:
        for transform in self.transforms:
            image, label = transform(image, label)
        return image, label


def collate_pad(batch: Sequence[Pair], ignore_index: int = VOID) -> Pair:
    """Stacks samples of different sizes into one batch, padding each to the largest H and W.

    Use as a DataLoader's `collate_fn`: images are padded with 0 (the mean), labels with void,
    at the bottom and right, so the padding costs no loss.

    Args:
        batch: (image C x H x W, label [K x] H x W) pairs.
        ignore_index: The label's void value.

    Returns:
        Images N x C x Hmax x Wmax and labels N x [K x] Hmax x Wmax.
    """
    height = max(image.shape[-2] for image, _ in batch)
    width = max(image.shape[-1] for image, _ in batch)
    padded = [pad_to(image, label, height, width, ignore_index) for image, label in batch]
    return torch.stack([image for image, _ in padded]), torch.stack([label for _, label in padded])
