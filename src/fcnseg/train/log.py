"""What a run reports: a JSONL log always, a progress bar, TensorBoard when installed."""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fcnseg.errors import FcnsegError
from fcnseg.io.atomic import atomic_write

# Where the progress bar is not shown (output to a file, not a terminal), a progress line is
# printed at the first step, then at most once per this many seconds, and at the last step.
LINE_EVERY_S = 60.0


class RunLog:
    """Writes one JSON line per step and per evaluation to ``log.jsonl`` in the run folder.

    Only the main process logs; the others get a silent log. On resume, lines past the
    resumed step (written after the checkpoint by the interrupted run) are dropped, so the log
    reads as one run.

    Args:
        folder: the run folder.
        start: the step the run starts (or resumes) at.
        total: the run's last step, for the progress bar.
        enabled: whether this process writes.
        progress: show a progress bar.
        label: the progress bar's label (a staged run's stage).
        held_out: the held-out split's name, said with its scores.
    """

    def __init__(
        self,
        folder: Path,
        *,
        start: int,
        total: int,
        enabled: bool = True,
        progress: bool = True,
        label: str = "train",
        held_out: str = "",
    ) -> None:
        self.enabled = enabled
        self.held_out = held_out
        self.path = folder / "log.jsonl"
        self.bar = tqdm(
            total=total,
            initial=start,
            # None: shown on a terminal only, so a log file gets the lines, not the bar
            disable=None if enabled and progress else True,
            dynamic_ncols=True,
            desc=label,
            unit="it",
        )
        self.tensorboard = None
        self.iteration = start
        self.total = total
        # a bar tqdm hides (no terminal) gives way to a line now and then
        self.lines = enabled and progress and self.bar.disable
        self.last_line = -math.inf
        if not enabled:
            return
        folder.mkdir(parents=True, exist_ok=True)
        _truncate(self.path, start)
        self.file = open(self.path, "a")  # noqa: SIM115 - held open for the whole run
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.tensorboard = SummaryWriter(str(folder / "tensorboard"), purge_step=start)

    def step(self, iteration: int, loss: float, lr: float, images_per_s: float) -> None:
        """Records a training step."""
        self.iteration = iteration
        if not self.enabled:
            return
        self._write({"iteration": iteration, "loss": loss, "lr": lr, "images_per_s": images_per_s})
        self.bar.update(1)
        self.bar.set_postfix(
            loss=f"{loss:.4g}", lr=f"{lr:.3g}", img_s=f"{images_per_s:.1f}", refresh=False
        )
        now = time.monotonic()
        if self.lines and (now - self.last_line >= LINE_EVERY_S or iteration == self.total):
            self.last_line = now
            self.message(
                f"iteration {iteration}/{self.total}: loss {loss:.4g}, lr {lr:.3g}, "
                f"{images_per_s:.1f} images/s"
            )
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("train/loss", loss, iteration)
            self.tensorboard.add_scalar("train/lr", lr, iteration)

    def evaluation(self, iteration: int, record: dict[str, Any]) -> None:
        """Records an evaluation (a ``metrics_record``)."""
        if not self.enabled:
            return
        self._write({"iteration": iteration, "eval": record})
        summary = ", ".join(
            f"{key} {100 * record[key]:.2f}"
            for key in ("pixel_acc", "mean_iu")
            if record.get(key) is not None
        )
        scored = f"'{self.held_out}' " if self.held_out else ""
        self.message(f"iteration {iteration}: {scored}{summary}")
        if self.tensorboard is not None:
            for key in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"):
                if record.get(key) is not None:
                    self.tensorboard.add_scalar(f"val/{key}", record[key], iteration)

    def skipped(self, error: str, iteration: int | None = None) -> None:
        """Records a file skipped as unreadable (``error`` names it) at ``iteration`` (by
        default the last step's); every process says so, the main one in the log too."""
        iteration = self.iteration if iteration is None else iteration
        if not self.enabled:
            print(f"skipped at iteration {iteration}: {error}", file=sys.stderr, flush=True)
            return
        self._write({"iteration": iteration, "skipped": error})
        self.message(f"skipped at iteration {iteration}: {error}")

    def message(self, text: str) -> None:
        """A line for the user, printed above the progress bar."""
        if self.enabled:
            self.bar.write(text)

    def _write(self, entry: dict[str, Any]) -> None:
        try:
            self.file.write(json.dumps({**entry, "time": round(time.time(), 3)}) + "\n")
            self.file.flush()
        except OSError as error:
            raise FcnsegError(f"{self.path}: cannot write: {error.strerror or error}") from None

    def close(self) -> None:
        """Closes the bar and the files."""
        self.bar.close()
        if self.enabled:
            with contextlib.suppress(OSError):  # a full disk: the lines are lost, said once
                self.file.close()
            if self.tensorboard is not None:
                self.tensorboard.close()


def _truncate(path: Path, start: int) -> None:
    """Cuts the log back to the entries of steps up to ``start``, the step the run resumes at:
    a run killed after its last checkpoint logged steps that will be taken again, and one
    killed while writing (``kill -9``, a full disk) left a torn last line. Rewritten
    atomically, so that a kill here leaves the log as it was."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # torn: the step it was for is taken again
        if isinstance(entry, dict) and entry.get("iteration", 0) <= start:
            kept.append(line + "\n")
    atomic_write(path, "".join(kept).encode())


def read_log(folder: Path | str) -> list[dict[str, Any]]:
    """The entries of a run's ``log.jsonl``."""
    path = Path(folder) / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
