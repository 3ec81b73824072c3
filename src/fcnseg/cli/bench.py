"""``fcnseg bench``: seconds per image and GFLOP/s of a model at a size and precision."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from fcnseg.cli.export import add_model_arguments, model_from_args
from fcnseg.errors import FcnsegError
from fcnseg.io.atomic import atomic_write


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``fcnseg bench``."""
    from fcnseg.inference.bench import PATHS

    parser = subparsers.add_parser(
        "bench",
        help="time a model's forward pass (or training step)",
        description="Time a model at a given size and precision: seconds per image, GFLOP/s, "
        "and that rate as a share of this machine's GEMM rate in the same precision. "
        "'eager' is the plain fp32 model; the others go through optimize_for_inference.",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(500, 500),
        metavar=("H", "W"),
        help="input size (default 500 500, the paper's typical image)",
    )
    parser.add_argument("--batch", type=int, default=1, help="images per pass (default 1)")
    parser.add_argument(
        "--precision",
        choices=PATHS,
        nargs="+",
        default=["eager", "auto"],
        help="paths to time (default: eager auto)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed passes (the best counts)")
    parser.add_argument(
        "--train", action="store_true", help="time a forward and backward pass instead"
    )
    parser.add_argument(
        "--threads", type=int, help="CPU threads (default: all); fewer when others hold cores"
    )
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Prints one line per precision."""
    from fcnseg.inference.bench import benchmark_inference, benchmark_training_step, format_table

    height, width = args.size
    if min(height, width, args.batch, args.repeats) < 1:
        raise FcnsegError("--size, --batch and --repeats take positive numbers")
    if args.threads is not None:
        if args.threads < 1:
            raise FcnsegError(f"--threads {args.threads}: expected a positive number")
        torch.set_num_threads(args.threads)
    model = model_from_args(args)
    measure = benchmark_training_step if args.train else benchmark_inference
    gemm: dict = {}
    rows = measure(
        model,
        args.precision,
        height=height,
        width=width,
        batch=args.batch,
        repeats=args.repeats,
        gemm=gemm,
    )
    print(format_table(rows, baseline=rows[0]))
    if args.json is not None:
        text = json.dumps([row.as_dict() for row in rows], indent=2) + "\n"
        atomic_write(args.json, text.encode())
    return 0
