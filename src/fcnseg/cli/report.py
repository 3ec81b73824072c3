"""``fcnseg report``: a training run as one self-contained HTML page (:mod:`fcnseg.report`)."""

from __future__ import annotations

import argparse
from typing import Any

from tqdm import tqdm

from fcnseg.cli.outputs import check_output_file
from fcnseg.report import write_report


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``fcnseg report`` to the dispatcher."""
    parser = subparsers.add_parser(
        "report",
        help="write a run's HTML report: curves, metrics, confusion matrix, gallery",
        description="Write one self-contained HTML file (figures embedded as PNG) for a "
        "training run: the loss and learning rate, the held-out metrics over iterations, "
        "the IU per class, the confusion matrix normalised per ground-truth class, and the "
        "best and worst held-out images (image | truth | prediction).",
    )
    parser.add_argument(
        "run_dir", metavar="RUN", help="the run folder (fcnseg train --out), staged runs too"
    )
    parser.add_argument("--out", help="the HTML file (default: RUN/report.html)")
    parser.add_argument(
        "--root", help="the held-out dataset's folder, if it moved (default: the run's)"
    )
    parser.add_argument(
        "--split", help="the split the gallery is drawn from (default: the run's held-out)"
    )
    parser.add_argument(
        "--gallery",
        type=int,
        default=4,
        metavar="N",
        help="best and worst images shown, N of each (default 4)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Writes the report and prints its path."""
    if args.out is not None:
        check_output_file(args.out, example="report.html")

    def progress(indices: Any) -> Any:
        return tqdm(indices, desc="scoring", unit="img", disable=True if args.no_progress else None)

    path = write_report(
        args.run_dir,
        args.out,
        root=args.root,
        split=args.split,
        gallery=args.gallery,
        progress=progress,
    )
    print(f"wrote {path}")
    return 0
