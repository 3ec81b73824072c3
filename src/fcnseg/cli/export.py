"""``fcnseg export``: a model to ONNX (dynamic height and width) or TorchScript."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from fcnseg.cli.outputs import check_output_file
from fcnseg.errors import FcnsegError
from fcnseg.io.weights import load_model, resolve
from fcnseg.models import build_model, head_scores, list_models
from fcnseg.models.fcn import GEOMETRIES


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``MODEL`` (a checkpoint, a shipped model, or an architecture with random weights)."""
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="checkpoint file or run folder, shipped model name, or an architecture name "
        f"for random weights ({', '.join(list_models())})",
    )
    parser.add_argument(
        "--num-classes", type=int, default=21, help="classes of an architecture (default 21)"
    )
    parser.add_argument(
        "--geometry", choices=GEOMETRIES, default="caffe", help="of an architecture"
    )


def model_from_args(args: argparse.Namespace) -> nn.Module:
    """The model ``args.model`` names, in eval mode: an architecture is built with random
    weights, anything else loaded by :func:`fcnseg.load_model`."""
    if args.model in list_models():
        return build_model(args.model, num_classes=args.num_classes, geometry=args.geometry).eval()
    return load_model(args.model)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``fcnseg export``."""
    from fcnseg.inference.export import FORMATS

    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX or TorchScript",
        description="Export a model to ONNX (dynamic batch, height and width; needs "
        "pip install 'fcnseg[onnx]') or to TorchScript (traced; runs at any size). The file "
        "carries the model's metadata: its class names, palette, input convention (channel "
        "order, scale, mean, std) and source (ONNX metadata_props; TorchScript's extra file "
        "fcnseg.json); fcnseg predict --model FILE.onnx runs it as it says.",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="default: as --out's ending says (.onnx: onnx; .pt, .pth, .ts: torchscript); "
        "a --format the ending contradicts is refused",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="file to write: NAME.onnx or NAME.pt"
    )
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(224, 224),
        metavar=("H", "W"),
        help="input size to trace with (default 224 224); the export runs at any size",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="run the export at another size and print its relative error against PyTorch",
    )
    parser.set_defaults(run=run)


# The endings each format's files go by (torch.jit.save's examples use .pt); fcnseg predict
# knows an ONNX file by its ending, as fcnseg.load_model knows weights by .safetensors.
FORMAT_ENDINGS = {"onnx": (".onnx",), "torchscript": (".pt", ".pth", ".ts")}


def export_format(out: Path, given: str | None) -> str:
    """The format to write ``out`` in: the one its ending names, which ``given`` must agree
    with.

    Raises:
        FcnsegError: ``out``'s ending names no format (``fcnseg predict --model m.model``
            could not run it), or another format than ``given`` (an ONNX graph in
            ``model.pt`` would load nowhere).
    """
    ending = out.suffix.lower()
    named = next((name for name, ends in FORMAT_ENDINGS.items() if ending in ends), None)
    if named is None:
        proper = FORMAT_ENDINGS[given or "onnx"][0]
        raise FcnsegError(
            f"--out {out}: give a name ending .onnx (ONNX, which fcnseg predict runs) or .pt "
            f"(TorchScript), e.g. {out.with_suffix(proper)}"
        )
    if given is not None and named != given:
        proper = FORMAT_ENDINGS[given][0]
        raise FcnsegError(
            f"--out {out}: a {ending} file is {named}, not {given}; give a name ending "
            f"{proper} (or --format {named})"
        )
    return named


def run(args: argparse.Namespace) -> int:
    """Exports, optionally checks, and prints what was written."""
    from fcnseg.inference.export import (
        export_onnx,
        export_torchscript,
        relative_error,
        run_onnx,
    )

    check_output_file(args.out, example=f"model.{'pt' if args.format == 'torchscript' else 'onnx'}")
    args.format = export_format(args.out, args.format)
    model = model_from_args(args)
    channels = model.in_channels
    height, width = args.size
    if height < 1 or width < 1:
        raise FcnsegError(f"--size {height} {width}: expected positive sizes")
    example = torch.randn(1, channels, height, width)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    weights = None if args.model in list_models() else resolve(args.model)
    if args.format == "onnx":
        export_onnx(model, args.out, example=example, weights=weights)
    else:
        export_torchscript(model, args.out, example=example, weights=weights)
    carried = "with its metadata" if hasattr(model, "meta") else "random weights, no metadata"
    print(f"wrote {args.out} ({args.format}, traced at {height}x{width}, any size runs; {carried})")
    if args.check:
        # A size the trace never saw, and a batch of two.
        x = 50 * torch.randn(2, channels, height + 37, width + 21)
        with torch.no_grad():
            reference = model(x)
        references = list(head_scores(model, reference).values())
        if args.format == "onnx":
            results = run_onnx(args.out, x)
        else:
            exported = torch.jit.load(str(args.out))
            with torch.no_grad():
                out = exported(x)
            results = list(out) if isinstance(out, tuple) else [out]
        error = max(relative_error(r, ref) for r, ref in zip(results, references, strict=True))
        largest = max(float(ref.abs().max()) for ref in references)
        size = f"2x{channels}x{height + 37}x{width + 21}"
        if largest == 0:
            # an architecture's score layers start at zero (section 4.3): nothing to compare
            print(f"check at {size}: the scores are all zero (untrained score layers)")
        else:
            print(f"check at {size}: relative error {error:.2e}")
    return 0
