"""Runs ``fcnseg`` and kills it with SIGKILL at a chosen moment, as ``kill -9`` or a power
cut would: no handler runs, no buffer is flushed, no temporary file is removed.

    python tests/train/kill_points.py POINT N [--rank R] -- train --out run ...

kills the process at the N-th occurrence (from 1) of POINT in this process:

* ``step``: just after an optimiser step, before it is logged;
* ``log``: halfway through writing a line of ``log.jsonl`` (a torn line);
* ``state-write`` / ``weights-write``: halfway through writing a checkpoint's training state /
  weights (a half-written temporary file);
* ``between-writes``: ``last``'s new state is in place, its weights are not yet;
* ``eval``: during a held-out evaluation, after its first image.

With ``--rank R`` only the process of that rank (torchrun's ``RANK``) is killed, and only on
torchrun's first attempt (``TORCHELASTIC_RESTART_COUNT`` 0). Used by tests/train/test_faults.py
and benchmarks/faults.py; run under ``torchrun`` as its script.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

POINTS = ("step", "log", "state-write", "weights-write", "between-writes", "eval")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str, occurrence: int) -> None:
    """Patches fcnseg so that the ``occurrence``-th ``point`` kills this process."""
    from fcnseg.io import atomic
    from fcnseg.train import checkpoint, log, loop

    if point not in POINTS:
        raise SystemExit(f"unknown kill point {point!r}; one of {', '.join(POINTS)}")
    seen = {"count": 0}

    def reached() -> bool:
        seen["count"] += 1
        return seen["count"] == occurrence

    if point == "step":
        real_step = loop.train_step

        def step(*args: Any, **kwargs: Any) -> Any:
            result = real_step(*args, **kwargs)
            if reached():
                _die()
            return result

        loop.train_step = step
    elif point == "log":
        real_write: Callable[..., None] = log.RunLog._write

        def write(self: Any, entry: dict[str, Any]) -> None:
            if reached():
                import json

                line = json.dumps(entry)
                self.file.write(line[: len(line) // 2])
                self.file.flush()
                _die()
            real_write(self, entry)

        log.RunLog._write = write  # type: ignore[method-assign]
    elif point in ("state-write", "weights-write"):
        real_bytes = atomic._write
        suffix = ".state.pt" if point == "state-write" else ".safetensors"

        def write_half(file: Any, data: bytes) -> None:
            # the temporary file is ".NAME.PID.tmp"
            name = os.path.basename(file.name).rsplit(".", 2)[0]
            if name.endswith(suffix) and reached():
                file.write(data[: len(data) // 2])
                file.flush()
                os.fsync(file.fileno())
                _die()
            real_bytes(file, data)

        atomic._write = write_half
    elif point == "between-writes":
        real_weights = checkpoint._save_weights

        def weights(path: Any, *args: Any, **kwargs: Any) -> Any:
            # the weights of a checkpoint with a training state: last, not best
            if os.path.basename(path) == "last.safetensors" and reached():
                _die()
            return real_weights(path, *args, **kwargs)

        checkpoint._save_weights = weights
    else:  # eval
        real_batches = loop._held_out_batches

        def batches(*args: Any, **kwargs: Any) -> Iterator[Any]:
            kill = reached()
            for number, batch in enumerate(real_batches(*args, **kwargs)):
                if kill and number == 1:
                    _die()
                yield batch

        loop._held_out_batches = batches


def main(argv: list[str]) -> int:
    if "--" not in argv:
        raise SystemExit(__doc__)
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1 :]
    point, occurrence = options[0], int(options[1])
    rank = options[options.index("--rank") + 1] if "--rank" in options else None
    first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if (rank is None or os.environ.get("RANK") == rank) and first_attempt:
        install(point, occurrence)
    from fcnseg.cli import main as fcnseg_main

    return fcnseg_main(command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
