"""Reading dataset files, with one-line `FcnsegError`s that name the file at fault."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image

from fcnseg.errors import FcnsegError

from .palettes import VOID


def require_dir(path: Path, what: str) -> Path:
    """Checks that a dataset folder exists."""
    if not path.is_dir():
        raise FcnsegError(f"{path}: {what} folder not found")
    return path


def read_split(path: Path, available: Iterable[Path] = ()) -> list[str]:
    """Reads a split file: one sample id (or one line of paths) per non-blank line.

    Args:
        path: The split file.
        available: Split files that do exist, named in the error when `path` does not.

    Returns:
        The stripped, non-blank lines.
    """
    if not path.is_file():
        choices = sorted(p.stem for p in available)
        hint = f" (available: {', '.join(choices)})" if choices else ""
        raise FcnsegError(f"{path}: split file not found{hint}")
    lines = [line.strip() for line in path.read_text().splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise FcnsegError(f"{path}: split file lists no samples")
    return lines


def require_files(paths: Sequence[Path], what: str) -> None:
    """Checks at construction that every file a dataset will read is there.

    Raises:
        FcnsegError: naming the first missing file and how many are missing.
    """
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise FcnsegError(
            f"{missing[0]}: file not found ({len(missing)} of {len(paths)} {what} files missing)"
        )


def open_image(path: Path) -> Image.Image:
    """Opens and decodes an image file now, so that a corrupt file fails here, by name."""
    try:
        image = Image.open(path)
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise FcnsegError(f"{path}: cannot read image ({error})") from None
    return image


def read_rgb(path: Path) -> np.ndarray:
    """Reads a colour image as H x W x 3 uint8 RGB (grey or CMYK files are converted, as
    Caffe's loader does): the raw pixels a reader's `read` returns."""
    image = open_image(path)
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def read_index_png(path: Path) -> np.ndarray:
    """Reads a single-channel label PNG as its stored indices (a 'P' image's palette indices)."""
    image = open_image(path)
    if image.mode not in ("P", "L"):
        raise FcnsegError(
            f"{path}: label image has mode {image.mode}; expected one channel of class indices"
            " (mode P or L)"
        )
    return np.asarray(image)


def read_mat(path: Path, variable: str) -> np.ndarray:
    """Reads one variable of a MATLAB .mat file as `scipy.io.loadmat` returns it."""
    try:
        mat = scipy.io.loadmat(path)
    except Exception as error:  # scipy's parser fails on damaged files with many error types
        raise FcnsegError(f"{path}: cannot read MATLAB file ({error!r})") from None
    if variable not in mat:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        raise FcnsegError(f"{path}: no variable '{variable}' (found: {found})")
    return mat[variable]


def shift_void_zero(raw: np.ndarray, path: Path, num_classes: int) -> np.ndarray:
    """Maps labels stored as 0 = void, 1..n = classes to 0..n-1 with void = 255.

    The reference layers do this with a uint8 wrap-around (`label -= 1`); doing it in int64
    lets a value above n be reported instead of silently wrapping.
    """
    raw = np.asarray(raw).astype(np.int64)
    bad = (raw < 0) | (raw > num_classes)
    if bad.any():
        raise FcnsegError(
            f"{path}: label value {raw[bad].flat[0]} outside 0-{num_classes}"
            f" (0 void, 1-{num_classes} classes)"
        )
    return np.where(raw == 0, VOID, raw - 1)


def check_label(
    label: np.ndarray, path: Path, num_classes: int, image_size: tuple[int, int]
) -> torch.Tensor:
    """Checks a label map against the classes and the image size; returns it as int64.

    Args:
        label: Class indices H x W, void = 255.
        path: The label file, for the error message.
        num_classes: Valid indices are 0 .. num_classes - 1.
        image_size: The image's (H, W).

    Returns:
        The label as an int64 tensor H x W.
    """
    label = np.asarray(label)
    if label.ndim != 2:
        raise FcnsegError(f"{path}: label has shape {label.shape}; expected H x W")
    if label.shape != tuple(image_size):
        raise FcnsegError(
            f"{path}: label is {label.shape[0]}x{label.shape[1]} (HxW) but its image is"
            f" {image_size[0]}x{image_size[1]}"
        )
    label = label.astype(np.int64)
    bad = ((label < 0) | (label >= num_classes)) & (label != VOID)
    if bad.any():
        raise FcnsegError(
            f"{path}: label value {label[bad].flat[0]} is neither a class 0-{num_classes - 1}"
            f" nor void {VOID}"
        )
    return torch.from_numpy(label)
