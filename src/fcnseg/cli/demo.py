"""``fcnseg demo``: train and score an FCN-8s on generated shapes, on the CPU, no download."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from fcnseg.cli.outputs import check_output_folder
from fcnseg.demo import DemoSettings, run_demo


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``fcnseg demo`` to the dispatcher."""
    defaults = DemoSettings()
    parser = subparsers.add_parser(
        "demo",
        help="train and score a small FCN-8s on generated images (CPU, about a minute)",
        description="Generate shapes on textured backgrounds, train a small FCN-8s from scratch "
        "on the CPU, score it on held-out images, print the per-class table, and write "
        "OUT/metrics.json, overlay PNGs and OUT/report.html (curves, per-class IU, confusion "
        "matrix, best and worst images).",
    )
    parser.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    parser.add_argument("--max-iter", type=int, default=defaults.max_iter)
    parser.add_argument(
        "--threads",
        type=int,
        default=defaults.threads,
        help="CPU threads (default 1: the fastest on a shared 2-core machine)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Runs the demo into ``--out``."""
    check_output_folder(args.out)
    settings = dataclasses.replace(
        DemoSettings(), max_iter=args.max_iter, threads=args.threads, seed=args.seed
    )
    run_demo(args.out, settings, progress=not args.no_progress)
    return 0
