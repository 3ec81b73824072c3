"""Labels and their colours: the void index, palettes, label PNGs and overlays.

Labels are class indices with void = 255, which the loss and the metrics ignore (section 4.3
of the paper: "The training ignores pixels that are masked out (as ambiguous or difficult) in
the ground truth"). How images become inputs is :mod:`fcnseg.convention`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

# The ILSVRC mean (BGR) the VGG16 classifier was trained with; the reference repo subtracts it
# for PASCAL VOC and SBD, so the VOC-trained FCNs expect it.
VOC_MEAN_BGR = (104.00699, 116.66877, 122.67892)

VOID = 255


def bitmap_palette(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """The PASCAL VOC colour map: the bits of the class index interleaved into R, G and B.

    Bit 3k, 3k+1 and 3k+2 of the index set bit 7-k of red, green and blue, so that index 1 is
    dark red (128, 0, 0) and index 255 is (224, 224, 192), the VOC void colour. The same map
    colours any dataset that has no palette of its own.

    Args:
        num_classes: Number of colours to return (at most 256).

    Returns:
        One RGB triple per class index.
    """
    palette = []
    for index in range(num_classes):
        rgb = [0, 0, 0]
        bits = index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
        palette.append((rgb[0], rgb[1], rgb[2]))
    return tuple(palette)


def _rgb_array(rgb: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(rgb, Image.Image):
        rgb = np.asarray(rgb.convert("RGB"))
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB image, got shape {rgb.shape}")
    return rgb


def _label_array(label: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(label, torch.Tensor):
        label = label.detach().cpu().numpy()
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"expected an H x W label, got shape {label.shape}")
    return label


def colorize(
    label: torch.Tensor | np.ndarray, palette: Sequence[tuple[int, int, int]]
) -> Image.Image:
    """Draws a label map as a palette image, the way VOC's SegmentationClass PNGs are stored.

    Args:
        label: Class indices H x W; void (255) and any index without a colour are drawn black.
        palette: One RGB colour per class index (at most 255 classes).

    Returns:
        A PIL image of mode 'P' whose pixel values are the class indices.
    """
    if len(palette) > VOID:
        raise ValueError(f"a palette image holds at most {VOID} classes, got {len(palette)}")
    label = _label_array(label)
    indices = np.where((label >= 0) & (label < len(palette)), label, VOID).astype(np.uint8)
    image = Image.fromarray(indices)
    flat = [channel for colour in palette for channel in colour]
    image.putpalette(flat + [0] * (3 * 256 - len(flat)))
    return image


def overlay(
    rgb: Image.Image | np.ndarray,
    label: torch.Tensor | np.ndarray,
    palette: Sequence[tuple[int, int, int]],
    alpha: float = 0.5,
) -> Image.Image:
    """Blends label colours over an image; void pixels keep the image as it is.

    Args:
        rgb: The image, PIL or an H x W x 3 uint8 RGB array.
        label: Class indices H x W, the same size as the image.
        palette: One RGB colour per class index.
        alpha: Weight of the label colour (0 shows the image, 1 the colours).

    Returns:
        A PIL RGB image.
    """
    image = _rgb_array(rgb).astype(np.float32)
    label = _label_array(label)
    if label.shape != image.shape[:2]:
        raise ValueError(f"label is {label.shape}, image is {image.shape[:2]}")
    valid = (label >= 0) & (label < len(palette))
    colours = np.asarray(palette, dtype=np.float32).reshape(-1, 3)
    blended = image.copy()
    blended[valid] = (1 - alpha) * image[valid] + alpha * colours[label[valid]]
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
