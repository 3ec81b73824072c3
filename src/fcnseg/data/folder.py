"""A user's own data: a folder of images and masks (index or colour-coded), matched by name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from fcnseg.convention import caffe_convention
from fcnseg.errors import FcnsegError

from ._reading import (
    check_label,
    open_image,
    read_index_png,
    read_rgb,
    require_dir,
    require_files,
)
from .dataset import DatasetInfo, JointTransform, Sample, SegmentationDataset
from .palettes import VOC_MEAN_BGR, VOID, bitmap_palette

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class ClassTable(NamedTuple):
    """A class list as `classes.txt` or a palette file gives it.

    Attributes:
        names: One name per class index.
        colours: One RGB colour per class index; None when the file gives no colours.
        void: The colours that mark void pixels in colour-coded masks (lines named `void`).
    """

    names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...] | None
    void: tuple[tuple[int, int, int], ...]

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...]:
        """The colours, or the VOC colour map when the file gives none."""
        return self.colours if self.colours is not None else bitmap_palette(len(self.names))


def read_class_table(path: Path) -> ClassTable:
    """Reads classes.txt or a palette file: one class per line.

    A line is `name` or `name R G B` (0-255), or, as CVAT's `labelmap.txt` writes it,
    `name:R,G,B:parts:actions`; lines starting with `#` are comments. Either every class has a
    colour or none does. A line named `void` (any case) is not a class: its colour marks void
    pixels (255) in colour-coded masks.

    Returns:
        The classes, their colours and the void colours.
    """
    if not path.is_file():
        raise FcnsegError(f"{path}: class list not found (one class name per line)")
    names: list[str] = []
    colours: list[tuple[int, int, int] | None] = []
    void: list[tuple[int, int, int]] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.lstrip().startswith("#"):
            continue
        name, colour = _class_line(path, number, line)
        if not name:
            continue
        if name.lower() == "void":
            if colour is not None:
                void.append(colour)
            continue
        names.append(name)
        colours.append(colour)
    if not names:
        raise FcnsegError(f"{path}: no class names")
    if len(names) > 255:
        raise FcnsegError(f"{path}: {len(names)} classes; at most 255 fit beside void 255")
    given = [c for c in colours if c is not None]
    if not given:
        return ClassTable(tuple(names), None, tuple(void))
    if len(given) != len(colours):
        number = colours.index(None) + 1
        raise FcnsegError(f"{path}: class {number} has no colour but others do; give all or none")
    return ClassTable(tuple(names), tuple(given), tuple(void))


def _class_line(path: Path, number: int, line: str) -> tuple[str, tuple[int, int, int] | None]:
    """One line's name and colour (None without one); an empty name for a blank line."""
    fields = line.split(":")
    if len(fields) > 1:  # CVAT: name:R,G,B:parts:actions
        values = fields[1].split(",")
        if len(values) != 3 or not all(v.strip().isdigit() for v in values):
            raise FcnsegError(f"{path}: line {number} is not 'name:R,G,B:...': {line!r}")
        rgb = [int(v) for v in values]
        name = fields[0].strip()
    else:
        fields = line.split()
        if len(fields) >= 4 and all(f.isdigit() for f in fields[-3:]):
            rgb = [int(f) for f in fields[-3:]]
            name = " ".join(fields[:-3])
        else:
            return " ".join(fields), None
    r, g, b = rgb
    if max(r, g, b) > 255:
        raise FcnsegError(f"{path}: line {number} colour ({r} {g} {b}) outside 0-255")
    return name, (r, g, b)


def read_classes(path: Path) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """Reads classes.txt (see `read_class_table`).

    Returns:
        The class names and their RGB palette (the VOC colour map when no colours are given).
    """
    table = read_class_table(path)
    return table.names, table.palette


def colour_mask_labels(
    rgb: np.ndarray, classes: ClassTable, path: Path, table_name: str = "classes.txt"
) -> np.ndarray:
    """Turns a colour-coded mask into class indices through the class colours.

    Args:
        rgb: The mask, H x W x 3 uint8 RGB.
        classes: The class colours (index i has `classes.colours[i]`) and the void colours.
        path: The mask file, for the error message.
        table_name: The file the colours come from, for the error message.

    Returns:
        Class indices H x W, int64, void 255.

    Raises:
        FcnsegError: a colour that is neither a class's nor void, naming it, where it is and
            the file.
    """
    if classes.colours is None:
        raise FcnsegError(
            f"{path}: mask is colour-coded (RGB) but {table_name} gives no colours; write each"
            " class as 'name R G B'"
        )
    lookup = {colour: VOID for colour in classes.void}
    lookup.update({colour: index for index, colour in enumerate(classes.colours)})
    rgb = np.asarray(rgb)
    keys = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    unique, inverse = np.unique(keys, return_inverse=True)
    labels = np.empty(len(unique), dtype=np.int64)
    for position, key in enumerate(unique.tolist()):
        colour = (key >> 16, (key >> 8) & 255, key & 255)
        if colour not in lookup:
            row, column = (int(i[0]) for i in np.nonzero(keys == key))
            raise FcnsegError(
                f"{path}: colour {colour} at row {row}, column {column} is neither a class's"
                f" nor void in {table_name}"
            )
        labels[position] = lookup[colour]
    return labels[inverse.reshape(-1)].reshape(keys.shape)


class FolderDataset(SegmentationDataset):
    """Images in `images/` with masks in `masks/` of the same relative path and stem.

    Layout: `images/<name>.<jpg|png|...>`, `masks/<name>.png`, `classes.txt` (see
    `read_class_table`). A split is a subfolder (`images/<split>/`, `masks/<split>/`); split
    "all" takes every image under `images/`.

    A mask is either single-channel (mode L or P) holding class indices, 255 void, or
    colour-coded (RGB, as labelling tools export them; an alpha channel is dropped), read
    through the class colours: those of classes.txt (`name R G B` lines, `void R G B` for void
    pixels), or of the palette file given as `palette` (same lines, or CVAT's `labelmap.txt`).
    A colour that is neither a class's nor void is an error naming it and the mask file.

    Args:
        root: The folder holding images/, masks/ and classes.txt.
        split: A subfolder name of images/, or "all".
        mean_bgr: Mean to subtract, B, G, R; by default the ILSVRC mean the VGG-based models
            were trained with.
        palette: A file of class names and colours that replaces classes.txt (which, if also
            there, must list the same classes in the same order).
        transform: Joint transform applied to each (image, label).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        *,
        mean_bgr: Sequence[float] = VOC_MEAN_BGR,
        palette: str | Path | None = None,
        transform: JointTransform | None = None,
    ):
        if len(mean_bgr) != 3:
            raise FcnsegError(f"mean_bgr {tuple(mean_bgr)}: expected three values, B G R")
        root = require_dir(Path(root), "dataset")
        images = require_dir(root / "images", "images")
        masks = require_dir(root / "masks", "masks")
        self.classes, self.classes_file = _class_table(root / "classes.txt", palette)
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
            class_names=self.classes.names,
            palette=self.classes.palette,
            convention=caffe_convention(tuple(float(m) for m in mean_bgr)),
        )
        super().__init__(info, samples, transform)

    def read(self, sample: Sample) -> tuple[np.ndarray, torch.Tensor]:
        image = read_rgb(sample.image)
        label = self.read_mask(sample.label)
        return image, check_label(label, sample.label, self.num_classes, image.shape[:2])

    def read_mask(self, path: Path) -> np.ndarray:
        """A mask's class indices: as stored (mode L or P), or through the class colours (RGB)."""
        mask = open_image(path)
        if mask.mode in ("L", "P"):
            return np.asarray(mask)
        if mask.mode in ("RGB", "RGBA"):
            rgb = np.asarray(mask.convert("RGB"))
            return colour_mask_labels(rgb, self.classes, path, self.classes_file.name)
        return read_index_png(path)  # the error naming the mode


def _class_table(classes_txt: Path, palette: str | Path | None) -> tuple[ClassTable, Path]:
    """The class table, from the palette file if given (checked against classes.txt if that
    is there too), else from classes.txt; and the file it came from."""
    if palette is None:
        return read_class_table(classes_txt), classes_txt
    palette = Path(palette)
    table = read_class_table(palette)
    if table.colours is None:
        raise FcnsegError(f"{palette}: palette file gives no colours ('name R G B' per class)")
    if classes_txt.is_file():
        listed = read_class_table(classes_txt)
        if listed.names != table.names:
            raise FcnsegError(
                f"{classes_txt}: classes {list(listed.names)} differ from the palette file"
                f" {palette}'s {list(table.names)}"
            )
        if listed.colours is not None and listed.colours != table.colours:
            raise FcnsegError(
                f"{classes_txt}: class colours differ from those of the palette file {palette}"
            )
    return table, palette
