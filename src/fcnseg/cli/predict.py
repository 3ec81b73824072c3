"""``fcnseg predict``: label PNGs in the model's palette, and overlays, for image files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fcnseg.data import bitmap_palette, colorize, overlay
from fcnseg.inference import PRECISIONS, Predictor, read_image
from fcnseg.io.weights import load_model


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
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto: bf16 where the CPU runs it natively, else fp32 (default auto)",
    )
    parser.add_argument("--tile", type=int, help="run images larger than this in tiles")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Segments every image and writes its label PNG and overlay."""
    model = load_model(args.model)
    meta = model.meta
    convention = meta.input_convention
    palette = list(meta.palette)
    pixels = [read_image(path) for path in args.images]  # every file is checked before any work
    predictor = Predictor(model, precision=args.precision, tile=args.tile)
    # The other heads (SIFT Flow's 3 geometric classes), drawn in the VOC colour map.
    other_heads = {
        head: Predictor(model, precision=args.precision, tile=args.tile, head=head)
        for head in list(model.heads)[1:]
    }
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for path, rgb in zip(args.images, pixels, strict=True):
        image = convention.preprocess(rgb)
        (label,) = predictor.predict([image])
        colorize(label, palette).save(args.out / f"{path.stem}.png")
        overlay(rgb, label, palette, args.alpha).save(args.out / f"{path.stem}_overlay.png")
        written += 2
        for head, head_predictor in other_heads.items():
            (head_label,) = head_predictor.predict([image])
            head_palette = bitmap_palette(model.heads[head])
            colorize(head_label, head_palette).save(args.out / f"{path.stem}_{head}.png")
            written += 1
    print(f"wrote {written} images to {args.out}")
    return 0
