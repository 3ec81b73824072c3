"""``fcnseg.predict``: label maps for images as people have them (files, PIL images, arrays).

The model's weights say how to feed them (``model.meta.input_convention``, set by
:func:`fcnseg.load_model`); the images are converted to that convention here, once, and run
through :class:`~fcnseg.inference.Predictor` (batched, optionally tiled, in a chosen
precision).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import nn
from tqdm import tqdm

from fcnseg.convention import InputConvention
from fcnseg.errors import FcnsegError
from fcnseg.inference.memory import DEFAULT_MAX_MEMORY, parse_memory
from fcnseg.inference.predictor import Predictor
from fcnseg.inference.tta import Augmentation

ImageLike = str | os.PathLike[str] | Image.Image | np.ndarray
# 16-bit modes PIL opens PNG and TIFF files in; their full range maps onto 0-255.
_WIDE_MODES = {"I;16": 65535.0, "I;16L": 65535.0, "I;16B": 65535.0, "I;16N": 65535.0}


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as an H x W x 3 uint8 RGB array, as image viewers show it.

    - The EXIF orientation is applied: a photo taken rotated (its pixels stored sideways,
      the tag saying so) comes out upright, as viewers show it, and so do its labels.
    - Palette (P, PA), grey (L, 1), grey + alpha (LA), RGBA, CMYK, YCbCr and LAB images
      become RGB the way PIL converts them; alpha is dropped (not composited).
    - Values are scaled by their type's range onto the 0-255 the input convention reads:
      16-bit images (mode I;16 and kin, and I, as 16-bit PNGs open in PIL) by 255/65535;
      float images (mode F) are taken as 0-1 (NaN as 0); values beyond the range are
      clipped. 16-bit RGB PNGs PIL reduces to 8 bits itself, by their high byte.
    - A multi-frame file (GIF, TIFF) gives its first frame.

    Args:
        path: the image file.

    Returns:
        H x W x 3 uint8, RGB.

    Raises:
        FcnsegError: no such file, or not an image PIL can read (one line, naming the file).
    """
    path = Path(path)
    if path.is_dir():
        raise FcnsegError(f"{path}: a folder, not an image file (fcnseg predict takes folders)")
    if not path.is_file():
        raise FcnsegError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            image.load()
            return rgb_array(ImageOps.exif_transpose(image))
    except (
        OSError,
        UnidentifiedImageError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombError,
    ) as error:
        raise FcnsegError(f"{path}: cannot read image ({error})") from None


def rgb_array(image: Image.Image) -> np.ndarray:
    """A PIL image as H x W x 3 uint8 RGB, 16-bit and float modes scaled to 0-255 (float
    images are taken as 0-1)."""
    if image.mode in _WIDE_MODES or image.mode in ("I", "F"):
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
        full = _WIDE_MODES.get(image.mode, 1.0 if image.mode == "F" else 65535.0)
        grey = np.clip(np.rint(values * (255.0 / full)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    return np.asarray(image.convert("RGB"))


def raw_pixels(image: ImageLike, convention: InputConvention, index: int = 0) -> np.ndarray:
    """One image as the raw H x W x C pixels ``convention`` reads (colour RGB 0-255 first).

    Raises:
        FcnsegError: a tensor, a wrong dtype, layout or channel count, naming the image.
    """
    channels = convention.channels
    if isinstance(image, str | os.PathLike):
        if channels != 3:
            raise FcnsegError(
                f"{image}: the model takes {channels} input channels "
                f"({', '.join(convention.extra_channels)} after the colour); give an "
                f"H x W x {channels} array"
            )
        return read_image(image)
    if isinstance(image, Image.Image):
        if channels != 3:
            raise FcnsegError(
                f"image {index}: the model takes {channels} input channels; give an "
                f"H x W x {channels} array"
            )
        return rgb_array(ImageOps.exif_transpose(image))
    if isinstance(image, torch.Tensor):
        raise FcnsegError(
            f"image {index}: a torch tensor; give a path, a PIL image or an H x W x {channels} "
            "numpy array (for network inputs already in the model's convention, use "
            "fcnseg.inference.Predictor)"
        )
    if not isinstance(image, np.ndarray):
        raise FcnsegError(
            f"image {index}: {type(image).__name__}; expected a path, a PIL image or a numpy array"
        )
    if image.ndim == 2 and channels == 3:
        raise FcnsegError(
            f"image {index}: shape {image.shape}, a grey array; give H x W x 3 RGB "
            "(np.stack([grey] * 3, axis=-1))"
        )
    if image.ndim != 3 or image.shape[2] != channels:
        hint = ""
        if image.ndim == 3 and image.shape[0] == channels:
            hint = " (channels first? use array.transpose(1, 2, 0))"
        elif image.ndim == 3 and channels == 3 and image.shape[2] == 4:
            hint = " (RGBA? drop the alpha: array[:, :, :3])"
        raise FcnsegError(f"image {index}: shape {image.shape}, expected H x W x {channels}{hint}")
    if channels == 3 and image.dtype != np.uint8:
        raise FcnsegError(
            f"image {index}: dtype {image.dtype}, expected uint8 RGB 0-255 "
            + (
                "(for 0-1 floats: (array * 255).round().astype(np.uint8))"
                if image.dtype.kind == "f"
                else "(for 16-bit values: (array / 257).round().astype(np.uint8))"
                if image.dtype in (np.uint16, np.int32, np.int64)
                else ""
            )
        )
    if image.dtype.kind not in "uf":
        raise FcnsegError(f"image {index}: dtype {image.dtype}, expected uint8 or float")
    if min(image.shape[:2]) < 1:
        raise FcnsegError(f"image {index}: shape {image.shape} has no pixels")
    return image


def predict(
    model: nn.Module,
    images: ImageLike | Sequence[ImageLike],
    *,
    batch_size: int = 1,
    tile: int | None = None,
    precision: str = "auto",
    head: str | None = None,
    convention: InputConvention | None = None,
    flip: bool = False,
    scales: Sequence[float] = (1.0,),
    max_memory: int | str | None = DEFAULT_MAX_MEMORY,
    progress: bool = False,
) -> np.ndarray | list[np.ndarray]:
    """Segments images: one H x W int64 label array per image (class indices of the model's
    ``meta.classes``).

    Args:
        model: a model from :func:`fcnseg.load_model` (its ``meta`` gives the input
            convention), or any FCN with ``convention`` given.
        images: one image or a list: a path, a PIL image, or an H x W x 3 uint8 RGB array
            (H x W x C for multi-channel nets: RGB 0-255, then the extra channels the
            convention names, e.g. NYUDv2's log depth or HHA).
        batch_size: images (or tiles) per forward pass; images of one size are batched.
        tile: run images larger than ``tile`` pixels on a side in overlapping tiles (exact:
            the labels equal whole-image inference; see :mod:`fcnseg.inference.tiling`).
            Without it, an image whose prediction would take more than ``max_memory``
            bytes is tiled in the largest tiles that fit.
        precision: ``auto`` (bf16 where the CPU runs it natively, else fp32), ``fp32``,
            ``bf16`` or ``fp16`` (see :func:`fcnseg.runtime.resolve_precision`).
        head: for a net with several heads (SIFT Flow's ``sem``, ``geo``), the one whose
            labels are returned; the first by default.
        convention: the input convention, overriding ``model.meta``'s.
        flip: test-time augmentation: also run each image mirrored left to right and
            average the probabilities (:mod:`fcnseg.inference.tta`).
        scales: test-time augmentation: run each image resized by each of these factors,
            e.g. ``(0.75, 1.0, 1.25)``, and average the probabilities; ``(1.0,)`` (the
            default) and no flip is plain prediction.
        max_memory: the bytes one image's prediction may take (an estimate,
            :mod:`fcnseg.inference.memory`; 2 GiB by default), or a size as the CLI's
            ``--max-memory`` takes it (``"512M"``, ``"2G"``); None, 0 or ``"none"`` never
            tiles unasked.
        progress: show progress bars (on a terminal) over the images and over the tiles of
            a large image.

    Returns:
        An H x W int64 array for one image, a list of them for a list.

    Raises:
        FcnsegError: an image that cannot be read or has the wrong dtype, layout or channel
            count; a model without an input convention; a scale that is not positive.
    """
    if convention is None:
        meta: Any = getattr(model, "meta", None)
        if meta is None:
            raise FcnsegError(
                "the model carries no input convention (load it with fcnseg.load_model, or "
                "pass convention=)"
            )
        convention = meta.input_convention
    if not isinstance(flip, bool):
        raise FcnsegError(f"flip={flip!r}: expected True or False")
    if isinstance(max_memory, str):
        with contextlib.suppress(FcnsegError):  # else: refused below, as any other value
            max_memory = parse_memory(max_memory)
    elif isinstance(max_memory, float) and max_memory.is_integer():
        max_memory = int(max_memory)  # 2e9 bytes
    if type(max_memory) is int and max_memory == 0:
        max_memory = None  # as the CLI's --max-memory 0
    if max_memory is not None and (
        not isinstance(max_memory, int) or isinstance(max_memory, bool) or max_memory <= 0
    ):
        raise FcnsegError(
            f"max_memory={max_memory!r}: expected a positive number of bytes or a size such "
            "as '512M' or '2G', or None (0, 'none': no budget)"
        )
    augmentation = Augmentation(flip, tuple(scales))
    single = not isinstance(images, list | tuple)
    batch = [images] if single else list(images)
    inputs = [
        convention.preprocess(raw_pixels(image, convention, index))
        for index, image in enumerate(batch)
    ]
    predictor = Predictor(
        model,
        precision=precision,
        tile=tile,
        batch_size=batch_size,
        head=head,
        max_memory=max_memory,
        tta=augmentation,
        progress=progress,
    )
    if augmentation.plain and not progress:
        labels = [label.numpy() for label in predictor.predict(inputs)]
    else:
        bar = tqdm(inputs, desc="images", unit="image", disable=None if progress else True)
        labels = [predictor.predict([image])[0].numpy() for image in bar]
    return labels[0] if single else labels
