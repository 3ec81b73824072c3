"""``fcnseg convert``: the command-line face of :func:`fcnseg.io.convert`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fcnseg.cli.outputs import check_output_file
from fcnseg.convention import caffe_convention
from fcnseg.errors import FcnsegError
from fcnseg.io.convert import convention_text, convert
from fcnseg.io.published import PUBLISHED
from fcnseg.models import list_models

DESCRIPTION = (
    "Convert a Caffe .caffemodel (no Caffe needed) or a PyTorch checkpoint (torchvision VGG16, "
    "pytorch-fcn) into an fcnseg safetensors file: the model's state dict under Caffe layer "
    "names, with the model, classes, input convention and source file (sha256) as metadata. "
    "A published FCN loads as it is; an ILSVRC classifier becomes the FCN's initialisation."
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``fcnseg convert`` to the dispatcher."""
    parser = subparsers.add_parser(
        "convert", help="convert Caffe or PyTorch weights", description=DESCRIPTION
    )
    parser.add_argument("src", help="a .caffemodel, or a .pth/.pt PyTorch checkpoint")
    parser.add_argument("--model", required=True, choices=list_models(), help="fcnseg model")
    parser.add_argument("--num-classes", required=True, type=int, help="score channels")
    parser.add_argument("-o", "--output", required=True, dest="dst", help="DST.safetensors")
    parser.add_argument(
        "--source",
        choices=list(PUBLISHED),
        metavar="NAME",
        help="the published file SRC is (default: found by file name); gives the input "
        "convention and classes, and picks one net of a two-net file. One of: "
        + ", ".join(PUBLISHED),
    )
    parser.add_argument(
        "--mean",
        type=_mean,
        metavar="B,G,R",
        help="for an unpublished .caffemodel: the BGR mean its 0-255 input was reduced by",
    )
    parser.add_argument(
        "--fold-input",
        action="store_true",
        help="fold an RGB [0,1] mean/std input standardisation (torchvision's) into the first "
        "convolution, so that the weights take BGR 0-255 minus the mean",
    )
    parser.add_argument(
        "--model-option",
        action="append",
        default=[],
        type=_option,
        metavar="KEY=VALUE",
        help="a build_model option of the net the weights were trained as (e.g. width=0.25)",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs a parsed ``convert`` command; FcnsegError propagates for the CLI to print."""
    check_output_file(args.dst, flag="--output", example="model.safetensors")
    if Path(args.dst).suffix != ".safetensors":  # fcnseg.load_model reads no other name
        raise FcnsegError(
            f"--output {args.dst}: fcnseg weights are .safetensors files; give a name that "
            f"ends so (e.g. {args.dst}.safetensors)"
        )
    convention = None if args.mean is None else caffe_convention(args.mean)
    _, metadata = convert(
        args.src,
        args.model,
        args.num_classes,
        args.dst,
        source=args.source,
        convention=convention,
        fold_input=args.fold_input,
        **dict(args.model_option),
    )
    print(
        f"{args.dst}: {metadata.model} ({metadata.init} weights), {metadata.num_classes} "
        f"classes, input {convention_text(metadata.input_convention)}; from {metadata.source.file} "
        f"sha256 {metadata.source.sha256}"
    )
    for note in metadata.notes:
        print(f"note: {note}")
    return 0


def _mean(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"'{text}': expected three numbers B,G,R")
    return values  # type: ignore[return-value]


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"'{text}': expected KEY=VALUE")
    for parse in (int, float):
        try:
            return key, parse(value)
        except ValueError:
            pass
    if value in ("true", "false"):
        return key, value == "true"
    return key, value
