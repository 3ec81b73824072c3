"""A user's own data: a folder of images and index masks, matched by file name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from fcnseg.convention import caffe_convention
from fcnseg.errors import FcnsegError

from ._reading import check_label, read_index_png, read_rgb, require_dir, require_files
from .dataset import DatasetInfo, JointTransform, Sample, SegmentationDataset
from .palettes import VOC_MEAN_BGR, bitmap_palette

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def read_classes(path: Path) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """Reads classes.txt: one class per line, `name` or `name R G B`.

    Either every line has a colour or none does; without colours the VOC colour map is used.

    Returns:
        The class names and their RGB palette.
    """
    if not path.is_file():
        raise FcnsegError(f"{path}: class list not found (one class name per line)")
    names: list[str] = []
    colours: list[tuple[int, int, int] | None] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) >= 4 and all(f.isdigit() for f in fields[-3:]):
            r, g, b = (int(f) for f in fields[-3:])
            if max(r, g, b) > 255:
                raise FcnsegError(f"{path}: line {number} colour ({r} {g} {b}) outside 0-255")
            names.append(" ".join(fields[:-3]))
            colours.append((r, g, b))
        else:
            names.append(" ".join(fields))
            colours.append(None)
    if not names:
        raise FcnsegError(f"{path}: no class names")
    if len(names) > 255:
        raise FcnsegError(f"{path}: {len(names)} classes; at most 255 fit beside void 255")
    given = [c for c in colours if c is not None]
    if not given:
        return tuple(names), bitmap_palette(len(names))
    if len(given) != len(colours):
        number = colours.index(None) + 1
        raise FcnsegError(f"{path}: class {number} has no colour but others do; give all or none")
    return tuple(names), tuple(given)


class FolderDataset(SegmentationDataset):
    """Images in `images/` with masks in `masks/` of the same relative path and stem.

    Layout: `images/<name>.<jpg|png|...>`, `masks/<name>.png` (single-channel PNGs of class
    indices, 255 void), `classes.txt` (see `read_classes`). A split is a subfolder
    (`images/<split>/`, `masks/<split>/`); split "all" takes every image under `images/`.

    Args:
        root: The folder holding images/, masks/ and classes.txt.
        split: A subfolder name of images/, or "all".
        mean_bgr: Mean to subtract, B, G, R; by default the ILSVRC mean the VGG-based models
            were trained with.
        transform: Joint transform applied to each (image, label).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        mean_bgr: Sequence[float] = VOC_MEAN_BGR,
        transform: JointTransform | None = None,
    ):
        if len(mean_bgr) != 3:
            raise FcnsegError(f"mean_bgr {tuple(mean_bgr)}: expected three values, B G R")
        root = require_dir(Path(root), "dataset")
        images = require_dir(root / "images", "images")
        masks = require_dir(root / "masks", "masks")
        class_names, palette = read_classes(root / "classes.txt")
        if (images / split).is_dir():
            base = images / split
        elif split == "all":
            base = images
        else:
            splits = sorted(p.name for p in images.iterdir() if p.is_dir()) + ["all"]
            raise FcnsegError(f"{images / split}: no such split (available: {', '.join(splits)})")
        files = sorted(
            p for p in base.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise FcnsegError(f"{base}: no images ({', '.join(IMAGE_SUFFIXES)})")
        samples = []
        for path in files:
            relative = path.relative_to(images).with_suffix("")
            samples.append(Sample(relative.as_posix(), path, masks / f"{relative}.png"))
        require_files([s.label for s in samples], f"mask ({split})")
        info = DatasetInfo(
            name="folder",
            class_names=class_names,
            palette=palette,
            convention=caffe_convention(tuple(float(m) for m in mean_bgr)),
        )
        super().__init__(info, samples, transform)

    def read(self, sample: Sample) -> tuple[np.ndarray, torch.Tensor]:
        image = read_rgb(sample.image)
        label = read_index_png(sample.label)
        return image, check_label(label, sample.label, self.num_classes, image.shape[:2])
