"""The ``fcnseg`` command: one subcommand per module, each a thin layer over library functions.

Every subcommand module has ``add_parser(subparsers)`` and ``run(args) -> int``. Errors a user
can cause arrive as :class:`fcnseg.FcnsegError` and are printed as one line, without a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from fcnseg.errors import FcnsegError
from fcnseg.inference.memory import format_bytes

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


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, whose errors are one line, as every other error of ``fcnseg``.

    argparse prints the whole usage block before the error (some twenty lines for ``fcnseg
    train``), which buries the one line that says what is wrong; the line here points to
    ``--help`` instead. The subcommands' parsers are of this class too (``add_subparsers``
    makes them of its parser's class).
    """

    # the top parser reads options before the subcommand's name only; the words after it are
    # the subcommand's parser's
    options_end_at_command = False

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]  # typeshed's overloads, one signature here
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = list(sys.argv[1:] if args is None else args)
        # argparse checks the required arguments first, so a misspelt one (--datset) was
        # reported as missing (--dataset), never as what it is
        known = [o for o in self._option_string_actions if o.startswith("--")]
        for word in words:
            if word == "--" or (self.options_end_at_command and not word.startswith("-")):
                break
            name = word.partition("=")[0]
            if name.startswith("--") and not self._knows(name):
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.error(f"unrecognized arguments: {name}{hint}")
            if len(name) > 2 and name[0] == "-" and name[1].isalpha() and name not in known:
                # -model, a long flag with one dash: argparse reads it as -m odel, or as the
                # required --model missing; a negative number has a digit there
                close = difflib.get_close_matches("-" + name, known, n=1)
                if close:
                    self.error(f"unrecognized arguments: {name} (did you mean {close[0]}?)")
        return super().parse_known_args(words, namespace)

    def _knows(self, name: str) -> bool:
        """An option string of this parser, or an abbreviation argparse takes for one."""
        # argparse keeps no public list of its options
        return any(option.startswith(name) for option in self._option_string_actions)

    def parse_args(  # type: ignore[override]  # typeshed's overloads, one signature here
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        # argparse leaves words no subcommand knows to the top parser, whose error would name
        # ``fcnseg`` and its help; they belong to the subcommand the words were given to
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = getattr(parsed, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            self.exit(
                2,
                f"{prog}: error: unrecognized arguments: {' '.join(unknown)} (see {prog} --help)\n",
            )
        return parsed


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, every subcommand included."""
    parser = ArgumentParser(
        prog="fcnseg", description="Fully convolutional networks for semantic segmentation."
    )
    parser.options_end_at_command = True
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMANDS:
        module = importlib.import_module(f"fcnseg.cli.{module_name}")
        module.add_parser(subparsers)
    return parser


def _out_of_memory(error: RuntimeError) -> str | None:
    """One line for an allocation the device refused (CPU or CUDA), or None for any other
    error."""
    text = str(error)
    if "can't allocate memory" not in text and "out of memory" not in text.lower():
        return None
    asked = re.search(r"allocate (\d+) bytes", text)
    size = f" of {format_bytes(int(asked.group(1)))}" if asked else ""
    return (
        f"out of memory: an allocation{size} failed; the sizes asked for (--width, "
        "--batch-size, --crop, --scales, the image size) are too large for this machine"
    )


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
    except RuntimeError as error:
        # an allocation a setting made too large (--width 100, --scales 1e6): torch's message
        # is a traceback's; the one line says what was asked and what to lower
        line = _out_of_memory(error)
        if line is None:
            raise
        print(f"fcnseg {args.command}: error: {line}", file=sys.stderr)
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
