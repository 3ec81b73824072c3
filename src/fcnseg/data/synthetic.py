"""The demo's data: shapes of several classes at varied scales on textured backgrounds.

Generated on the fly from a seed, so the demo needs no download and every run sees the same
images. Each class has its own colour family and shape: discs, squares and triangles from
a tenth to half the image, and rings and bars 5 to 10 pixels wide, whose outlines an
FCN-32s blurs away and the skips of FCN-8s recover (section 4.2). The background is a grey
texture of random gratings and noise, so that no single pixel value gives the class away.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from fcnseg.convention import caffe_convention
from fcnseg.errors import FcnsegError

from .dataset import DatasetInfo, JointTransform
from .palettes import bitmap_palette

SYNTHETIC = "synthetic"
SYNTHETIC_CLASSES = ("background", "disc", "square", "triangle", "ring", "bar")
# The mean of the generated images, B, G, R (measured over the training split).
SYNTHETIC_MEAN_BGR = (116.0, 121.0, 128.0)
SYNTHETIC_INFO = DatasetInfo(
    name=SYNTHETIC,
    class_names=SYNTHETIC_CLASSES,
    palette=bitmap_palette(len(SYNTHETIC_CLASSES)),
    convention=caffe_convention(SYNTHETIC_MEAN_BGR),
)
# Hue (0-1) at the centre of each object class's colour family.
_HUES = {"disc": 0.0, "square": 0.33, "triangle": 0.62, "ring": 0.15, "bar": 0.8}
# Images per split, and the seed offset that keeps the splits apart.
SPLITS = {"train": (2000, 0), "val": (100, 1), "test": (100, 2)}


class SyntheticShapes(Dataset):
    """``num_images`` generated images of ``size`` x ``size``, as the dataset readers give them.

    Item i is (image float32 3 x H x W in ``convention``, by default the dataset's own: BGR
    0-255 minus the mean; label int64 H x W), drawn from a generator seeded by ``(seed, i)``
    alone.

    Args:
        num_images: the length of the dataset.
        size: height and width in pixels.
        seed: picks the images; different seeds give disjoint sets.
        min_objects: fewest objects per image.
        max_objects: most objects per image.
    """

    info = SYNTHETIC_INFO

    def __init__(
        self,
        num_images: int,
        *,
        size: int = 80,
        seed: int = 0,
        min_objects: int = 2,
        max_objects: int = 5,
    ) -> None:
        self.convention = self.info.convention
        self.transform: JointTransform | None = None
        self.num_images = num_images
        self.size = size
        self.seed = seed
        self.min_objects = min_objects
        self.max_objects = max_objects

    @property
    def num_classes(self) -> int:
        """Number of classes, background included."""
        return self.info.num_classes

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} outside 0-{self.num_images - 1}")
        rgb, label = self.render(index)
        image, target = self.convention.preprocess(rgb), torch.from_numpy(label)
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image ``index`` as uint8 RGB H x W x 3 and its int64 label H x W."""
        rng = np.random.default_rng([self.seed, index])
        size = self.size
        y, x = np.mgrid[0:size, 0:size].astype(np.float32)
        rgb = _background(rng, x, y)
        label = np.zeros((size, size), dtype=np.int64)
        for _ in range(rng.integers(self.min_objects, self.max_objects + 1)):
            class_index = int(rng.integers(1, len(SYNTHETIC_CLASSES)))
            mask = _shape(SYNTHETIC_CLASSES[class_index], rng, x, y, size)
            rgb[mask] = _fill(rng, _HUES[SYNTHETIC_CLASSES[class_index]], x, y)[mask]
            label[mask] = class_index
        noise = rng.normal(0, 6, rgb.shape)
        return np.clip(rgb + noise, 0, 255).astype(np.uint8), label


def synthetic_dataset(
    root: object = None,
    split: str = "train",
    *,
    seed: int = 0,
    size: int = 80,
    transform: JointTransform | None = None,
) -> SyntheticShapes:
    """The ``train`` (2000 images), ``val`` or ``test`` (100 each) split of the demo's data;
    the dataset table's ``synthetic`` reader (``root`` is not read: the images are drawn)."""
    if split not in SPLITS:
        raise FcnsegError(f"synthetic split '{split}' unknown; choose one of {', '.join(SPLITS)}")
    num_images, offset = SPLITS[split]
    dataset = SyntheticShapes(num_images, size=size, seed=1000 * seed + offset)
    dataset.transform = transform
    return dataset


def _background(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A grey texture: a random level, three random gratings and a faint random tint."""
    grey = np.full(x.shape, rng.uniform(70, 180), dtype=np.float32)
    for _ in range(3):
        angle = rng.uniform(0, math.pi)
        frequency = rng.uniform(0.05, 0.5)
        phase = rng.uniform(0, 2 * math.pi)
        wave = np.sin(frequency * (x * math.cos(angle) + y * math.sin(angle)) + phase)
        grey += rng.uniform(5, 30) * wave
    tint = rng.uniform(-12, 12, size=3).astype(np.float32)
    return grey[:, :, None] + tint


def _fill(rng: np.random.Generator, hue: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A saturated colour of the class's family, modulated by stripes of random period."""
    colour = _hsv_to_rgb(
        (hue + rng.uniform(-0.04, 0.04)) % 1.0, rng.uniform(0.55, 1.0), rng.uniform(0.55, 1.0)
    )
    angle = rng.uniform(0, math.pi)
    stripes = 1 + rng.uniform(0.05, 0.25) * np.sin(
        rng.uniform(0.3, 1.2) * (x * math.cos(angle) + y * math.sin(angle))
    )
    return stripes[:, :, None] * colour


def _shape(
    name: str, rng: np.random.Generator, x: np.ndarray, y: np.ndarray, size: int
) -> np.ndarray:
    """The pixels of one object: a random scale, position and orientation."""
    cx, cy = rng.uniform(0, size, size=2)
    angle = rng.uniform(0, 2 * math.pi)
    u = (x - cx) * math.cos(angle) + (y - cy) * math.sin(angle)
    v = -(x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)
    radius = rng.uniform(0.1, 0.3) * size
    if name == "disc":
        return u**2 + v**2 <= radius**2
    if name == "square":
        return (np.abs(u) <= radius * 0.8) & (np.abs(v) <= radius * 0.8)
    if name == "triangle":
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            theta = 2 * math.pi * k / 3
            inside &= u * math.cos(theta) + v * math.sin(theta) <= radius / 2
        return inside
    if name == "ring":
        outer = max(radius, 0.15 * size)
        thickness = rng.uniform(5, 9)
        distance = np.sqrt(u**2 + v**2)
        return (distance <= outer) & (distance >= outer - thickness)
    if name == "bar":
        return (np.abs(u) <= rng.uniform(0.2, 0.45) * size) & (np.abs(v) <= rng.uniform(3, 5))
    raise ValueError(f"unknown shape {name!r}")


def _hsv_to_rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    sector = int(hue * 6) % 6
    f = hue * 6 - int(hue * 6)
    p, q, t = (
        value * (1 - saturation),
        value * (1 - f * saturation),
        value * (1 - (1 - f) * saturation),
    )
    rgb = [
        (value, t, p),
        (q, value, p),
        (p, value, t),
        (p, q, value),
        (t, p, value),
        (value, p, q),
    ][sector]
    return 255 * np.asarray(rgb, dtype=np.float32)
