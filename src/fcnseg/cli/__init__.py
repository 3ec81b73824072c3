"""The ``fcnseg`` command: one subcommand per module, each a thin layer over library functions.

Every subcommand module has ``add_parser(subparsers)`` and ``run(args) -> int``. Errors a user
can cause arrive as :class:`fcnseg.FcnsegError` and are printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from fcnseg.errors import FcnsegError

# Modules under fcnseg.cli, one per subcommand (``fcnseg eval`` lives in ``evaluate``).
COMMANDS = (
    "train",
    "evaluate",
    "report",
    "predict",
    "info",
    "demo",
    "convert",
    "export",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every subcommand included."""
    parser = argparse.ArgumentParser(
        prog="fcnseg", description="Fully convolutional networks for semantic segmentation."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS:
        module = importlib.import_module(f"fcnseg.cli.{module_name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fcnseg`` console script."""
    try:
        # importing the subcommands (and torch) takes seconds: a Ctrl-C then is one line too
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("fcnseg: interrupted", file=sys.stderr)
        return 130
    try:
        return int(args.run(args) or 0)
    except FcnsegError as error:
        print(f"fcnseg {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fcnseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of the output went away (`fcnseg info m --json | head`): as a shell tool
        # does, stop quietly; stdout goes to devnull so that Python's flush at exit is quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
