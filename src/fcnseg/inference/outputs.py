"""What ``fcnseg predict`` writes: label PNGs, overlays with a legend, probability files.

- **Label PNG**, ``format="palette"``: a palette image (mode P) whose pixel values are the
  class indices and whose palette is the model's colours, as VOC's ``SegmentationClass``
  PNGs; viewers show the colours, ``np.asarray(Image.open(f))`` gives the indices.
  ``format="index"``: the indices as a plain greyscale PNG (8-bit, 16-bit past 256 classes)
  without a palette, for tools that read the values and ignore palettes.
- **Overlay**: the label colours blended over the image, with a legend panel on the right
  listing the classes present, each with its colour, name and share of the pixels.
- **Probabilities** (``--save-probs``): a compressed ``.npz`` holding ``probs`` (K x H x W
  float32, each pixel's sum 1), ``classes`` (K names) and, for a net of several heads,
  ``probs_<head>`` and ``classes_<head>`` for the others.

Every file is written whole or not at all (:func:`fcnseg.io.atomic.atomic_write`). Every
PNG carries the text chunk ``fcnseg`` (``predict label``, ``predict overlay``), by which a
later run that searches a folder knows its own outputs and leaves them out
(:func:`is_prediction`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from fcnseg.data import colorize, overlay
from fcnseg.errors import FcnsegError
from fcnseg.io.atomic import atomic_write

LABEL_FORMATS = ("palette", "index")
# The PNG text chunk that marks fcnseg predict's outputs.
OUTPUT_MARK = "fcnseg"


def label_image(
    label: np.ndarray, palette: Sequence[tuple[int, int, int]], format: str = "palette"
) -> Image.Image:
    """An H x W array of class indices as a PIL image: palette (mode P) or index (mode L,
    or I;16 for more than 256 classes); see the module.

    Raises:
        FcnsegError: an unknown format.
    """
    if format == "palette":
        return colorize(label, palette)
    if format == "index":
        if len(palette) <= 256:
            return Image.fromarray(np.asarray(label).astype(np.uint8))
        return Image.fromarray(np.asarray(label).astype(np.uint16))
    raise FcnsegError(f"label format {format!r}, expected one of {', '.join(LABEL_FORMATS)}")


def legend_overlay(
    rgb: np.ndarray,
    label: np.ndarray,
    palette: Sequence[tuple[int, int, int]],
    classes: Sequence[str],
    alpha: float = 0.5,
) -> Image.Image:
    """The label colours over the image, and on its right a legend of the classes present
    (colour, name, share of the pixels), most common first.

    Args:
        rgb: H x W x 3 uint8 image.
        label: H x W class indices.
        palette: one RGB colour per class.
        classes: one name per class.
        alpha: weight of the label colours (0 shows the image, 1 the colours).

    Returns:
        An RGB image, H tall (taller if the legend needs it) and wider than the image by the
        legend; the image's pixels sit at its top left.
    """
    blended = overlay(rgb, label, palette, alpha)
    height, width = label.shape
    counts = np.bincount(np.asarray(label).ravel().astype(np.int64), minlength=len(classes))
    present = [int(i) for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    size = max(12, min(48, height // 28))
    font = _font(size)
    pad = max(4, size // 2)
    rows = [
        (index, f"{_name(classes, index)}  {_share(counts[index], counts.sum())}")
        for index in present
    ]
    scratch = ImageDraw.Draw(blended)
    text_width = max((scratch.textlength(text, font=font) for _, text in rows), default=0)
    panel_width = int(pad * 3 + size + text_width + pad)
    panel_height = pad + len(rows) * (size + pad)
    canvas = Image.new("RGB", (width + panel_width, max(height, panel_height)), "white")
    canvas.paste(blended, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for row, (index, text) in enumerate(rows):
        top = pad + row * (size + pad)
        left = width + pad
        colour = tuple(palette[index]) if index < len(palette) else (0, 0, 0)
        draw.rectangle((left, top, left + size, top + size), fill=colour, outline=(0, 0, 0))
        draw.text((left + size + pad, top), text, fill=(0, 0, 0), font=font)
    return canvas


def probabilities_bytes(
    probabilities: Mapping[str, np.ndarray], classes: Mapping[str, Sequence[str]]
) -> bytes:
    """A compressed ``.npz`` of per-class probabilities (see the module): the first head's as
    ``probs`` and ``classes``, the others' as ``probs_<head>`` and ``classes_<head>``."""
    arrays = {}
    for number, (head, values) in enumerate(probabilities.items()):
        suffix = "" if number == 0 else f"_{head}"
        arrays[f"probs{suffix}"] = np.asarray(values, dtype=np.float32)
        arrays[f"classes{suffix}"] = np.asarray(list(classes[head]), dtype=str)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def save_image(image: Image.Image, path: Path, kind: str = "label") -> None:
    """Writes a PNG whole or not at all, marked as a ``kind`` output of fcnseg predict.

    Raises:
        FcnsegError: it cannot be written (naming the file).
    """
    info = PngImagePlugin.PngInfo()
    info.add_text(OUTPUT_MARK, f"predict {kind}")
    info.add_text("Software", "fcnseg predict")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    save_bytes(buffer.getvalue(), path)


def is_prediction(path: Path) -> bool:
    """Whether ``path`` is a PNG fcnseg predict wrote (it carries the ``fcnseg`` text chunk;
    only the file's header is read)."""
    if path.suffix.lower() != ".png":
        return False
    try:
        with Image.open(path) as image:
            return OUTPUT_MARK in image.info
    except Exception:  # noqa: BLE001 - anything unreadable is not ours
        return False


def save_bytes(data: bytes, path: Path) -> None:
    """Writes ``data`` whole or not at all, making the folders it needs.

    Raises:
        FcnsegError: it cannot be written (naming the file).
    """
    try:
        atomic_write(path, data)
    except OSError as error:
        raise FcnsegError(f"{path}: cannot write ({error.strerror or error})") from None


def _name(classes: Sequence[str], index: int) -> str:
    return classes[index] if index < len(classes) else f"class {index}"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow before 10.1, or without FreeType: the bitmap font
        return ImageFont.load_default()


def _share(count: int, total: int) -> str:
    """A class's share of the pixels for the legend: a class present on a few pixels reads
    "<0.1%", not "0.0%" (which would say it is absent)."""
    percent = 100 * count / total
    return "<0.1%" if 0 < percent < 0.05 else f"{percent:.1f}%"
