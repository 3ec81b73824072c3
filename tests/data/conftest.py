"""Writers of tiny datasets in each dataset's own on-disk format, and a hand-made Caffe input.

Tests get the writers through the `fmt` fixture (conftest modules are not importable by name
when several test folders have one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.io
from PIL import Image

from fcnseg.data import bitmap_palette


def rgb_image(height: int, width: int, seed: int) -> np.ndarray:
    """A random RGB image whose channels live in different ranges, so a swap shows."""
    rng = np.random.default_rng(seed)
    red = rng.integers(180, 256, (height, width))
    green = rng.integers(90, 150, (height, width))
    blue = rng.integers(0, 60, (height, width))
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


def write_image(path: Path, rgb: np.ndarray) -> np.ndarray:
    """Saves an image in the format its suffix names; returns the RGB pixels a decoder reads
    back (JPEG is lossy, so the expected input comes from the file, not from `rgb`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=95)
    return np.asarray(Image.open(path).convert("RGB"))


def write_palette_png(path: Path, indices: np.ndarray) -> None:
    """Saves class indices as a VOC-style palette PNG (mode P, VOC colour map)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = indices.shape
    image = Image.frombytes("P", (width, height), indices.astype(np.uint8).tobytes())
    image.putpalette([channel for colour in bitmap_palette(256) for channel in colour])
    image.save(path)


def write_gray_png(path: Path, values: np.ndarray) -> None:
    """Saves a single-channel PNG (mode L for uint8, I;16 for uint16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values).save(path)


def write_mat(path: Path, **variables: object) -> None:
    """Saves MATLAB variables; a dict becomes a 1x1 struct, as MATLAB's own files hold it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, variables)


def write_split(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def caffe_input(rgb: np.ndarray, mean_bgr: Sequence[float]) -> np.ndarray:
    """The reference layers' preprocessing, written out channel by channel."""
    blue = rgb[:, :, 2].astype(np.float32) - np.float32(mean_bgr[0])
    green = rgb[:, :, 1].astype(np.float32) - np.float32(mean_bgr[1])
    red = rgb[:, :, 0].astype(np.float32) - np.float32(mean_bgr[2])
    return np.stack([blue, green, red])


@pytest.fixture
def fmt() -> SimpleNamespace:
    """The format writers and the hand-made Caffe input."""
    return SimpleNamespace(
        rgb_image=rgb_image,
        write_image=write_image,
        write_palette_png=write_palette_png,
        write_gray_png=write_gray_png,
        write_mat=write_mat,
        write_split=write_split,
        caffe_input=caffe_input,
    )


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    """A VOC2011 folder with two train images, labels 0-20 and void."""
    root = tmp_path / "VOC2011"
    labels = {
        "2007_000032": np.array(
            [
                [0, 0, 1, 1, 255, 20, 20],
                [0, 15, 15, 1, 255, 20, 20],
                [0, 15, 15, 255, 255, 7, 7],
                [0, 0, 0, 0, 0, 7, 7],
                [11, 11, 0, 0, 0, 0, 0],
            ],
            dtype=np.uint8,
        ),
        "2007_000033": np.full((4, 3), 12, dtype=np.uint8),
    }
    for index, (name, label) in enumerate(labels.items()):
        write_image(root / "JPEGImages" / f"{name}.jpg", rgb_image(*label.shape, seed=index))
        write_palette_png(root / "SegmentationClass" / f"{name}.png", label)
    write_split(root / "ImageSets" / "Segmentation" / "train.txt", list(labels))
    return root
