"""``fcnseg predict``: label PNGs in the model's palette, and overlays, for image files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fcnseg.data import bitmap_palette, colorize, overlay
from fcnseg.errors import FcnsegError
from fcnseg.inference import PRECISIONS, Predictor
from fcnseg.io.convention import InputConvention
from fcnseg.pretrained import load_pretrained


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``fcnseg predict`` to the dispatcher."""
    parser = subparsers.add_parser(
        "predict",
        help="segment image files",
        description="Segment image files: OUT/<name>.png holds the class indices drawn in the "
        "model's palette, OUT/<name>_overlay.png the colours over the image. A net with "
        "several heads (SIFT Flow) writes its first head there and each other head's classes "
        "to OUT/<name>_<head>.png.",
    )
    parser.add_argument("images", nargs="+", type=Path, help="image files")
    parser.add_argument("--model", required=True, help="checkpoint path or shipped model name")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("predictions"),
        help="output folder (default: ./predictions, never the images' own folder)",
    )
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--tile", type=int, help="run images larger than this in tiles")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    parser.set_defaults(run=run)
    return parser


def read_rgb(path: Path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB."""
    if not path.is_file():
        raise FcnsegError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise FcnsegError(f"{path}: cannot read image ({error})") from None


def run(args: argparse.Namespace) -> int:
    """Segments every image and writes its label PNG and overlay."""
    model, metadata = load_pretrained(args.model)
    convention = InputConvention.from_dict(metadata["input_convention"])
    palette = [tuple(colour) for colour in metadata["palette"]]
    pixels = [read_rgb(path) for path in args.images]  # every file is checked before any work
    predictor = Predictor(model, precision=args.precision, tile=args.tile)
    # The other heads' classes (SIFT Flow's 3 geometric ones), drawn in the VOC colour map.
    heads = _head_classes(model)
    other_heads = {
        head: Predictor(model, precision=args.precision, tile=args.tile, head=head)
        for head in list(heads)[1:]
    }
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path, rgb in zip(args.images, pixels, strict=True):
        batch = torch.from_numpy(rgb).permute(2, 0, 1)[None]  # 1×3×H×W RGB 0-255
        image = convention.normalize(batch)[0]
        (label,) = predictor.predict([image])
        colorize(label, palette).save(args.out / f"{path.stem}.png")
        overlay(rgb, label, palette, args.alpha).save(args.out / f"{path.stem}_overlay.png")
        written += 2
        for head, head_predictor in other_heads.items():
            (head_label,) = head_predictor.predict([image])
            head_palette = bitmap_palette(heads[head])
            colorize(head_label, head_palette).save(args.out / f"{path.stem}_{head}.png")
            written += 1
    print(f"wrote {written} images to {args.out}")
    return 0


def _head_classes(model: Any) -> dict[str, int]:
    """The model's score heads, in output order, to their classes (one unnamed head for a
    late-fusion net, which has no ``heads``)."""
    heads = getattr(model, "heads", {"": model.num_classes})
    return {suffix.lstrip("_"): classes for suffix, classes in heads.items()}
