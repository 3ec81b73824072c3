"""``fcnseg predict``: label PNGs in the model's palette, and overlays, for image files.

The inputs are files, folders and glob patterns; where the outputs go, and why they never
overwrite an input or each other, is :mod:`fcnseg.inference.files`; what they hold is
:mod:`fcnseg.inference.outputs`. A file that cannot be read is one line on stderr; the other
images are still segmented, and the exit status is 1 at the end.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm import tqdm

from fcnseg.cli.outputs import check_output_folder
from fcnseg.data import bitmap_palette
from fcnseg.errors import FcnsegError
from fcnseg.inference import PRECISIONS, Predictor, read_image
from fcnseg.inference.files import gather_images, plan_outputs, refuse_images_inside_out
from fcnseg.inference.memory import format_bytes, parse_memory, prediction_bytes
from fcnseg.inference.outputs import (
    LABEL_FORMATS,
    label_image,
    legend_overlay,
    probabilities_bytes,
    save_bytes,
    save_image,
)
from fcnseg.inference.tta import Augmentation
from fcnseg.io.weights import load_model

# Files listed after "wrote N files"; the rest are counted.
_LISTED = 6


def scale_factor(text: str) -> float:
    """An argparse type: a finite factor above 0 (``--scales``)."""
    try:
        scale = float(text)
    except ValueError:
        scale = math.nan
    if not 0 < scale < math.inf:
        raise argparse.ArgumentTypeError(f"'{text}': expected a finite factor above 0")
    return scale


def add_tta_arguments(parser: argparse.ArgumentParser) -> None:
    """``--flip`` and ``--scales``: test-time augmentation (``fcnseg predict`` and ``eval``)."""
    parser.add_argument(
        "--flip",
        action="store_true",
        help="test-time augmentation: also run each image mirrored and average the class "
        "probabilities (twice the time)",
    )
    parser.add_argument(
        "--scales",
        type=scale_factor,
        nargs="+",
        default=[1.0],
        metavar="S",
        help="test-time augmentation: run each image resized by each factor (e.g. 0.75 1.0 "
        "1.25) and average the class probabilities; default 1.0 (none)",
    )


# Test-time augmentation dearer than this, relative to plain prediction, is said before it runs
# (mmsegmentation's usual set, 0.5-1.75 in six scales with flip, costs 19.75).
TTA_NOTE_COST = 25.0


def tta_note(augmentation: Augmentation, command: str) -> str | None:
    """A line saying what an unusually dear augmentation costs, or None."""
    if augmentation.cost <= TTA_NOTE_COST:
        return None
    return (
        f"fcnseg {command}: note: test-time augmentation ({augmentation.describe()}) runs "
        f"{augmentation.cost:.0f} times the pixels of a plain prediction per image, and takes "
        "about as much longer (scales of 0.5-1.75 are usual)"
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``fcnseg predict`` to the dispatcher."""
    parser = subparsers.add_parser(
        "predict",
        help="segment image files",
        description="Segment images: files, folders (searched recursively for .png, .jpg, "
        ".tif, ... files) and glob patterns. For each image, OUT/<name>.png holds the class "
        "indices drawn in the model's palette and OUT/<name>_overlay.png the colours over the "
        "image with a legend of the classes present; a net with several heads (SIFT Flow) "
        "writes each other head's classes to OUT/<name>_<head>.png. <name> is the image's "
        "path below the deepest folder all inputs share, without its extension (with it, "
        "where two inputs share a stem). Outputs never overwrite an input: an --out that "
        "would write into an input image's folder is refused, and nothing is written.",
    )
    parser.add_argument(
        "images", nargs="+", help="image files, folders of them, or glob patterns ('a/**/*.jpg')"
    )
    parser.add_argument(
        "--model",
        required=True,
        help="checkpoint path, shipped model name, or an ONNX file from fcnseg export",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("predictions"),
        help="output folder (default: ./predictions; never an input image's own folder)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto: bf16 where the CPU runs it natively, else fp32 (default auto); an ONNX "
        "model runs fp32",
    )
    parser.add_argument(
        "--tile", type=int, help="run images larger than this many pixels a side in tiles"
    )
    parser.add_argument(
        "--max-memory",
        default="2G",
        metavar="SIZE",
        help="memory one image's prediction may take (estimated); larger images run in the "
        "largest tiles that fit, with the same labels (default 2G; none: never tile unasked)",
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")
    parser.add_argument(
        "--format",
        choices=LABEL_FORMATS,
        default="palette",
        help="label PNGs: palette (class indices with the model's colours, the default) or "
        "index (plain greyscale class indices, no palette)",
    )
    parser.add_argument(
        "--save-probs",
        action="store_true",
        help="also write OUT/<name>_probs.npz: per-class probabilities (K x H x W float32) "
        "and the class names",
    )
    add_tta_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def load_any_model(spec: str, precision: str) -> tuple[nn.Module, bool]:
    """The model ``--model`` names, and whether it is an exported ONNX graph (which runs as
    it is, in fp32, through onnxruntime).

    Raises:
        FcnsegError: as :func:`fcnseg.load_model` or :func:`fcnseg.inference.load_onnx`; a
            precision other than fp32 for an ONNX model.
    """
    if spec.lower().endswith(".onnx"):
        from fcnseg.inference.export import load_onnx

        if precision not in ("auto", "fp32"):
            raise FcnsegError(f"--precision {precision}: an ONNX model runs in fp32")
        return load_onnx(spec), True
    return load_model(spec), False


def run(args: argparse.Namespace) -> int:
    """Segments every image and writes its outputs; 1 if any input failed."""
    check_output_folder(args.out)
    try:
        budget = parse_memory(args.max_memory)
    except FcnsegError as error:  # named by its flag, as the others are
        raise FcnsegError(f"--max-memory: {error}") from None
    if args.tile is not None and args.tile < 1:
        raise FcnsegError(f"--tile {args.tile}: expected a whole number of pixels of at least 1")
    augmentation = Augmentation(args.flip, tuple(args.scales))
    if not 0 <= args.alpha <= 1:
        raise FcnsegError(f"--alpha {args.alpha}: expected a value from 0 to 1")
    model, exported = load_any_model(args.model, args.precision)
    meta = model.meta
    convention = meta.input_convention
    if convention.channels != 3:
        raise FcnsegError(
            f"{args.model}: the model takes {convention.channels} input channels "
            f"({', '.join(convention.extra_channels)} after the colour); fcnseg predict reads "
            "RGB image files: use fcnseg.predict with H x W x C arrays"
        )
    heads = list(model.heads)
    kinds = {"label": ".png", "overlay": "_overlay.png"}
    kinds.update({f"head:{head}": f"_{head}.png" for head in heads[1:]})
    if args.save_probs:
        kinds["probs"] = "_probs.npz"
    found = gather_images(args.images, exclude=args.out)
    refuse_images_inside_out(found, args.out)
    for line in found.skipped:
        print(f"fcnseg predict: skipped {line}", file=sys.stderr)
    if found.earlier_outputs:
        count, first = len(found.earlier_outputs), found.earlier_outputs[0]
        print(
            f"fcnseg predict: skipped {count} PNG{'s' if count > 1 else ''} an earlier fcnseg "
            f"predict wrote ({first}{', ...' if count > 1 else ''})",
            file=sys.stderr,
        )
    for line in found.problems:
        print(f"fcnseg predict: error: {line}", file=sys.stderr)
    if not found.images:
        if not found.problems:
            given = ", ".join(map(str, args.images))
            print(
                f"fcnseg predict: error: no images left to segment in {given} (only an earlier "
                "fcnseg predict's outputs)",
                file=sys.stderr,
            )
        return 1
    if note := tta_note(augmentation, "predict"):  # once there is something to run
        print(note, file=sys.stderr)
    plans = plan_outputs(found.images, args.out, kinds)  # refuses before anything is written

    options: dict[str, Any] = {
        "tile": args.tile,
        "max_memory": budget,
        "tta": augmentation,
        "progress": True,
        "batch_size": 1,
    }
    if exported:
        options.update(optimize=False, precision="fp32")
    else:
        options["precision"] = args.precision
    predictors = {head: Predictor(model, head=head, **options) for head in heads}
    head_classes = {heads[0]: list(meta.classes)}
    head_palettes = {heads[0]: list(meta.palette)}
    for head in heads[1:]:
        names = meta.head_classes.get(head) or [f"class {i}" for i in range(model.heads[head])]
        head_classes[head] = list(names)
        head_palettes[head] = list(bitmap_palette(model.heads[head]))

    written: list[Path] = []
    failed = len(found.problems)
    done = 0
    bar = tqdm(
        list(zip(found.images, plans, strict=True)), desc="images", unit="image", disable=None
    )
    for image, plan in bar:
        try:
            rgb = read_image(image.path)
            x = convention.preprocess(rgb)
            height, width = rgb.shape[:2]
            tile = predictors[heads[0]].tile_for(height, width, per_class=args.save_probs)
            if args.tile is None and tile is not None:
                needed = prediction_bytes(model, height, width, per_class=args.save_probs)
                tqdm.write(
                    f"fcnseg predict: note: {image.path}: {width}x{height} would take about "
                    f"{format_bytes(needed or 0)}, over --max-memory {args.max_memory}; "
                    f"running it in tiles of {tile} pixels (the same labels, more time)",
                    file=sys.stderr,
                )
            outputs = _predict(predictors, x, args.save_probs)
            label = outputs[heads[0]][0]
            palette = head_palettes[heads[0]]
            save_image(label_image(label, palette, args.format), plan["label"])
            written.append(plan["label"])
            blended = legend_overlay(rgb, label, palette, head_classes[heads[0]], args.alpha)
            save_image(blended, plan["overlay"], "overlay")
            written.append(plan["overlay"])
            for head in heads[1:]:
                path = plan[f"head:{head}"]
                save_image(label_image(outputs[head][0], head_palettes[head], args.format), path)
                written.append(path)
            if args.save_probs:
                probabilities = {head: outputs[head][1] for head in heads}
                save_bytes(probabilities_bytes(probabilities, head_classes), plan["probs"])
                written.append(plan["probs"])
            done += 1
        except FcnsegError as error:
            failed += 1
            tqdm.write(f"fcnseg predict: error: {error}", file=sys.stderr)
    bar.close()
    if done or len(found.images) > 1:  # a single image that failed has said so in its line
        print(_summary(written, done, len(found.images), args.out, len(found.problems)))
    return 1 if failed else 0


def _predict(
    predictors: dict[str, Predictor], x: Any, probabilities: bool
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    results: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for head, predictor in predictors.items():
        if probabilities:
            ((label, probs),) = predictor.predict_labels_and_proba([x])
            results[head] = (label.numpy(), probs.numpy())
        else:
            (label,) = predictor.predict([x])
            results[head] = (label.numpy(), None)
    return results


def _summary(written: list[Path], done: int, total: int, out: Path, unfound: int = 0) -> str:
    # arguments that named no image (said above, one line each) are not among the images
    also = f"; {unfound} argument{'s' if unfound > 1 else ''} named no image" if unfound else ""
    failed = total - done
    if not written:
        return f"wrote nothing ({done} of {total} images segmented{also})"
    names = [
        str(path.relative_to(out)) if path.is_relative_to(out) else str(path) for path in written
    ]
    listed = ", ".join(names[:_LISTED])
    more = f", and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    images = f"{done} of {total} images" + (f", {failed} failed," if failed else "")
    return f"wrote {len(written)} files for {images} to {out}: {listed}{more}{also}"
