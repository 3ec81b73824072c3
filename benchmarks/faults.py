"""kill -9 at ten moments of a training run; each killed run resumes to the uninterrupted one.

A small run (a 1/16-width FCN-8s on generated 48x48 images in the folder layout, 12 steps,
scored and saved every 4, one DataLoader worker) is trained once uninterrupted, then once per
moment, killed by SIGKILL at that moment: inside a checkpoint's state or weights write,
between them, during a held-out evaluation, halfway through a log line, just after a step
(tests/train/kill_points.py), or at a random time (a random delay after the log's N-th line,
N random). After each kill every weight file in the run folder
must load and ``last`` must restore; then ``fcnseg train --resume`` must finish with the
uninterrupted run's weights and logged trajectory (every loss, rate and evaluation), bit for
bit. The moments are drawn from ``--seed``. Run from the repository root::

    python benchmarks/faults.py

Prints a table, writes benchmarks/results/faults-<CPU class>.json, and
exits 1 if any moment fails.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine_info import heading, machine, results_path
from PIL import Image

import fcnseg
from fcnseg.data.synthetic import SYNTHETIC_CLASSES, SyntheticShapes
from fcnseg.inference.bench import write_results
from fcnseg.train import TrainConfig
from fcnseg.train.checkpoint import CheckpointFiles, restore
from fcnseg.train.log import read_log
from fcnseg.train.optim import build_optimizer

ROOT = Path(__file__).resolve().parent.parent
KILL_POINTS = ROOT / "tests" / "train" / "kill_points.py"
# One thread: the same kernels in every process, so that the runs compare bit for bit.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
HOOKS = ("state-write", "weights-write", "between-writes", "eval", "log", "step")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moments", type=int, default=10, help="kills (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="draws the moments")
    parser.add_argument("--max-iter", type=int, default=12)
    parser.add_argument("--eval-every", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="DataLoader workers (1)")
    parser.add_argument("--keep", help="a folder to keep the runs in (default: removed)")
    parser.add_argument(
        "--results", help="JSON output (default: benchmarks/results/faults-<CPU class>.json)"
    )
    return parser.parse_args(argv)


def make_data(root: Path) -> Path:
    (root / "classes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(SYNTHETIC_CLASSES) + "\n")
    for seed, (split, count) in enumerate({"train": 16, "val": 4}.items()):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        shapes = SyntheticShapes(count, size=48, seed=seed)
        for index in range(count):
            rgb, label = shapes.render(index)
            Image.fromarray(rgb).save(root / "images" / split / f"img{index}.png")
            mask = Image.fromarray(label.astype(np.uint8))
            mask.save(root / "masks" / split / f"img{index}.png")
    return root


def train_command(args: list[str], kill: tuple[str, int] | None = None) -> list[str]:
    if kill is None:
        return [sys.executable, "-m", "fcnseg.cli", "train", *args]
    return [sys.executable, str(KILL_POINTS), kill[0], str(kill[1]), "--", "train", *args]


def draw_moments(count: int, seed: int, settings: argparse.Namespace) -> list[dict[str, Any]]:
    """Each hook once (at a random occurrence), then random times, shuffled."""
    rng = random.Random(seed)
    checkpoints = settings.max_iter // settings.eval_every
    ranges = {
        "state-write": checkpoints,
        "weights-write": checkpoints,
        "between-writes": checkpoints,
        "eval": checkpoints,
        "log": settings.max_iter + checkpoints,
        "step": settings.max_iter,
    }
    moments = [{"point": hook, "occurrence": rng.randint(1, ranges[hook])} for hook in HOOKS]
    while len(moments) < count:
        lines = rng.randint(0, settings.max_iter + checkpoints - 1)
        delay = round(rng.uniform(0.0, 0.3), 3)
        moments.append({"point": "timer", "lines": lines, "delay_s": delay})
    rng.shuffle(moments)
    return moments[:count]


def wait_for_training(process: subprocess.Popen, run: Path) -> float:
    """Seconds until the run logs its first line (or the process ends)."""
    start = time.perf_counter()
    while process.poll() is None and not (run / "log.jsonl").is_file():
        time.sleep(0.01)
    return time.perf_counter() - start


def wait_for_lines(process: subprocess.Popen, run: Path, lines: int) -> None:
    """Returns once the run's log holds ``lines`` lines (or the process has ended)."""
    log = run / "log.jsonl"
    while process.poll() is None:
        if log.is_file() and log.read_bytes().count(b"\n") >= lines:
            return
        time.sleep(0.002)


def trajectory(folder: Path) -> list[Any]:
    return [
        [e["iteration"], e["loss"], e["lr"]] if "loss" in e else [e["iteration"], e["eval"]]
        for e in read_log(folder)
        if "loss" in e or "eval" in e
    ]


def check_loads(folder: Path, scratch: Path) -> tuple[bool, str, int | None]:
    """Whether every weight file loads and ``last`` restores; ``last``'s iteration."""
    try:
        for weights in sorted(folder.glob("*.safetensors")):
            fcnseg.load_model(weights)
        if not CheckpointFiles.of(folder / "last").exists():
            return True, "no checkpoint yet", None
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.copytree(folder, scratch)
        model = fcnseg.load_model(scratch / "last")
        config = TrainConfig.from_dict(dict(model.meta.config))
        optimizer = build_optimizer(
            model,
            name=config.optimizer,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        state, _ = restore(
            scratch / "last", model, optimizer, torch.amp.GradScaler("cpu", enabled=False)
        )
        return True, "loads", state.iteration
    except Exception as error:  # noqa: BLE001 - any failure is the finding
        return False, f"{type(error).__name__}: {error}", None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    print(heading(info))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="fcnseg-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    data = make_data(work / "data")
    settings = [
        "--dataset", "folder", "--root", str(data), "--train-split", "train",
        "--val-split", "val", "--recipe", "scratch", "--width", "0.0625", "--fc-width", "16",
        "--geometry", "lean", "--batch-size", "2", "--mirror", "--jitter", "4",
        "--max-iter", str(args.max_iter), "--eval-every", str(args.eval_every),
        "--workers", str(args.workers), "--no-progress",
    ]  # fmt: skip
    whole = work / "whole"
    shutil.rmtree(whole, ignore_errors=True)
    process = subprocess.Popen(
        train_command([*settings, "--out", str(whole)]),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    starting_s = wait_for_training(process, whole)
    start = time.perf_counter()
    if process.wait() != 0:
        raise SystemExit("the uninterrupted run failed")
    training_s = time.perf_counter() - start
    expected_log = trajectory(whole)
    expected = fcnseg.load_model(whole / "last").state_dict()
    print(
        f"uninterrupted run: {starting_s:.1f} s to start (imports, data), {training_s:.1f} s "
        f"of training, {args.max_iter} steps"
    )

    rows = []
    for number, moment in enumerate(draw_moments(args.moments, args.seed, args)):
        run = work / f"kill{number}"
        shutil.rmtree(run, ignore_errors=True)
        command_args = [*settings, "--out", str(run)]
        if moment["point"] == "timer":
            # a random time: once the log has a random number of lines, a random delay more
            process = subprocess.Popen(
                train_command(command_args),
                env=ENV,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for_lines(process, run, moment["lines"])
            try:
                process.wait(timeout=moment["delay_s"])
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
            code = process.wait()
            what = f"line {moment['lines']} + {moment['delay_s']:.2f} s"
        else:
            kill = (moment["point"], moment["occurrence"])
            code = subprocess.run(
                train_command(command_args, kill), env=ENV, capture_output=True
            ).returncode
            what = f"{moment['point']} #{moment['occurrence']}"
        killed = code == -signal.SIGKILL
        loads, detail, at = check_loads(run, work / "scratch")
        leftovers = sorted(p.name for p in run.glob(".*")) if run.is_dir() else []
        if (run / "config.json").is_file():
            resumed = subprocess.run(
                train_command(["--out", str(run), "--resume", "--no-progress"]),
                env=ENV,
                capture_output=True,
                text=True,
            )
        else:  # killed before the run wrote anything: the same command starts it
            resumed = subprocess.run(
                train_command(command_args), env=ENV, capture_output=True, text=True
            )
        finished = resumed.returncode == 0
        same_log = finished and trajectory(run) == expected_log
        same_weights = False
        if finished:
            final = fcnseg.load_model(run / "last").state_dict()
            same_weights = all(torch.equal(final[k], t) for k, t in expected.items())
        rows.append(
            {
                "moment": moment,
                "killed_at": what,
                "exit_code": code,
                "killed": killed,
                "checkpoints_load": loads,
                "detail": detail,
                "last_iteration_after_kill": at,
                "leftover_files_after_kill": leftovers,
                "resume_exit_code": resumed.returncode,
                "resume_error": resumed.stderr.strip().splitlines()[-1:] if not finished else [],
                "same_log": same_log,
                "same_weights": same_weights,
            }
        )

    header = f"{'#':>2}  {'killed at':<22} {'exit':>5} {'loads':>5} {'last':>5}  "
    header += f"{'leftovers after the kill':<52} {'resumed':>7} {'log ==':>6} {'weights ==':>10}"
    print(header)
    print("-" * len(header))
    for number, row in enumerate(rows):
        last = row["last_iteration_after_kill"]
        print(
            f"{number:>2}  {row['killed_at']:<22} {row['exit_code']:>5} "
            f"{'yes' if row['checkpoints_load'] else 'NO':>5} "
            f"{'-' if last is None else last:>5}  "
            f"{', '.join(row['leftover_files_after_kill']) or '-':<52} "
            f"{'yes' if row['resume_exit_code'] == 0 else 'NO':>7} "
            f"{'yes' if row['same_log'] else 'NO':>6} {'yes' if row['same_weights'] else 'NO':>10}"
        )
    failures = [
        r
        for r in rows
        if not (r["checkpoints_load"] and r["resume_exit_code"] == 0)
        or not (r["same_log"] and r["same_weights"])
    ]
    kills = sum(r["killed"] for r in rows)
    print(
        f"{kills} of {len(rows)} moments killed the run (the others finished first); "
        f"{len(rows) - len(failures)} of {len(rows)} resumed to the uninterrupted weights and log"
    )
    path = write_results(
        results_path(args.results, "faults", info),
        {
            "machine": info,
            "command": " ".join(["python", "benchmarks/faults.py", *(argv or sys.argv[1:])]),
            "settings": {
                "max_iter": args.max_iter,
                "eval_every": args.eval_every,
                "workers": args.workers,
                "seed": args.seed,
            },
            "uninterrupted_s": {"start": round(starting_s, 2), "training": round(training_s, 2)},
            "moments": rows,
            "kills": kills,
            "failures": len(failures),
        },
    )
    print(f"wrote {path}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
