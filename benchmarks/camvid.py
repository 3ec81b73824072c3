"""CamVid from scratch: FCN-32s, then FCN-16s from it, then FCN-8s from that (section 4.2).

No ImageNet weights exist on the machines this runs on, so the staged pipeline is proved on
real images from random weights: a batch-normalised VGG16 at 1/8 width (the ``scratch``
recipe), trained on CamVid ``train`` at full 480x360 scale (random square crops of the
full-scale images), each stage initialised from the one before by
:func:`fcnseg.models.init_from_coarser`. Every stage is then scored on ``val`` at full
resolution, void ignored, and the table of the four metrics and per-class IU is printed and
written as JSON. The final FCN-8s can be copied into the package as a shipped model.

Run from the repository root::

    python benchmarks/camvid.py --out runs/camvid-scratch --ship

The training wall clock (the three stages together, evaluation excluded) is printed and
recorded; so is the evaluation's.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from fcnseg.data import DatasetInfo, build_dataset
from fcnseg.evaluation import METRIC_NAMES, evaluate, evaluation_loader, metrics_record
from fcnseg.io.weights import WEIGHTS_DIR, load_model, save_weights
from fcnseg.train import (
    class_frequencies,
    fit,
    load_checkpoint,
    median_frequency_weights,
    recipe,
)

REPO = Path(__file__).resolve().parent.parent
SHIPPED_NAME = "camvid-fcn8s"
STAGES = ("fcn32s-vgg16", "fcn16s-vgg16", "fcn8s-vgg16")
BALANCING = ("median", "sqrt-median", "none")
# Rescaled stages aim at this fraction of the time left: starting a stage (building the net,
# its class weights) takes time too, and the machine may slow down.
RESCALE_MARGIN = 0.95


@dataclass(frozen=True)
class Stage:
    """One stage of the staged run: the net, its steps and its base learning rate."""

    model: str
    max_iter: int
    lr: float


class InMemory(Dataset):
    """A dataset read once into memory (367 CamVid images are about 0.8 GB as float32), so that
    no step waits on PNG decoding."""

    def __init__(self, dataset: Dataset) -> None:
        self.info: DatasetInfo = dataset.info  # type: ignore[attr-defined]
        self.samples = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.samples[index]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        default=str(REPO.parent / "shared" / "data" / "camvid"),
        help="the CamVid folder (default: ../shared/data/camvid)",
    )
    parser.add_argument("--out", default="runs/camvid-scratch", help="the run folder")
    parser.add_argument(
        "--iters",
        type=int,
        nargs=3,
        default=[3200, 800, 1340],
        metavar=("FCN32S", "FCN16S", "FCN8S"),
        help="optimiser steps per stage",
    )
    parser.add_argument(
        "--lr",
        type=float,
        nargs=3,
        default=[2e-3, 1e-3, 1e-3],
        metavar=("FCN32S", "FCN16S", "FCN8S"),
        help="Adam's rate per stage",
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--crop",
        type=int,
        default=320,
        help="side of the random square crops of the full-scale images",
    )
    parser.add_argument("--width", type=float, default=1 / 8, help="VGG16 width multiplier")
    parser.add_argument("--fc-width", type=int, default=128, help="channels of fc6 and fc7")
    parser.add_argument(
        "--balance",
        choices=BALANCING,
        default="sqrt-median",
        help="class weights of the loss: median frequency balancing, its square root, or none",
    )
    parser.add_argument(
        "--budget-min",
        type=float,
        default=58.0,
        help="training minutes for the three stages; a stage that would run "
        "past its share stops early and keeps its last step",
    )
    parser.add_argument(
        "--no-rescale",
        dest="rescale",
        action="store_false",
        help="keep the planned steps of every stage (by default, after each stage the steps "
        "of the next ones are rescaled to the time left at the rate it ran)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (on a shared 2-core machine one thread "
        "was 3x faster than two)",
    )
    parser.add_argument(
        "--results",
        help="the JSON results (default: benchmarks/results/camvid.json; none with --eval-only)",
    )
    parser.add_argument(
        "--ship", action="store_true", help=f"copy the FCN-8s into the package as '{SHIPPED_NAME}'"
    )
    parser.add_argument(
        "--eval-only", action="store_true", help="score the stages already trained in --out"
    )
    args = parser.parse_args(argv)
    if args.results is None and not args.eval_only:
        args.results = "benchmarks/results/camvid.json"
    return args


def stages(args: argparse.Namespace) -> list[Stage]:
    return [Stage(m, n, lr) for m, n, lr in zip(STAGES, args.iters, args.lr, strict=True)]


@contextlib.contextmanager
def deadline(seconds: float) -> Any:
    """Stops :func:`fcnseg.train.fit` cleanly after ``seconds``: its Ctrl-C handling finishes
    the step in progress, saves ``last`` and raises KeyboardInterrupt, caught here."""
    # At least a minute, so that the signal never comes before fit has set its handler up.
    timer = threading.Timer(max(seconds, 60.0), os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        yield
    except KeyboardInterrupt:
        print("stopped at the time budget", flush=True)
    finally:
        timer.cancel()


def class_weights(balance: str, train_set: InMemory) -> list[float] | None:
    """The loss's class weights: median frequency balancing (Eigen and Fergus), its square
    root (a milder push towards the rare classes), or None."""
    if balance == "none":
        return None
    info = train_set.info
    labels = (label for _, label in train_set.samples)
    weights = median_frequency_weights(
        class_frequencies(labels, info.num_classes, info.ignore_index)
    )
    return (weights.sqrt() if balance == "sqrt-median" else weights).tolist()


def train(
    args: argparse.Namespace, train_set: Dataset, weights: list[float] | None
) -> tuple[list[Path], list[float]]:
    """Trains the three stages in turn; returns each stage's checkpoint and training seconds.

    Each stage gets the share of the remaining budget its steps are of the remaining steps.
    Unless ``--no-rescale``, the steps of the stages still to come are rescaled after each stage
    to fill the remaining budget at the rate that stage ran (a shared machine's speed varies),
    so that every stage's learning rate policy runs to its end within the budget.
    """
    out = Path(args.out)
    checkpoints: list[Path] = []
    seconds: list[float] = []
    plan = stages(args)
    for number in range(1, len(plan) + 1):
        stage = plan[number - 1]
        left = args.budget_min * 60 - sum(seconds)
        share = left * stage.max_iter / sum(s.max_iter for s in plan[number - 1 :])
        config = recipe(
            "scratch",
            stage.model,
            backbone={"width": args.width, "fc_width": args.fc_width, "batch_norm": True},
            init=str(checkpoints[-1]) if checkpoints else None,
            dataset="camvid",
            root=str(args.root),
            lr=stage.lr,
            max_iter=stage.max_iter,
            batch_size=args.batch_size,
            crop=args.crop,
            mirror=True,
            class_weights=weights,
            val_split=None,  # scored after training, so that the clock times training only
            eval_every=0,
        )
        folder = out / f"stage{number}-{stage.model}"
        start = time.perf_counter()
        with deadline(share):
            fit(config, folder, train_set=train_set, val_set=None, progress=False)
        seconds.append(time.perf_counter() - start)
        checkpoints.append(folder / "last")
        steps = load_checkpoint(folder / "last")[1].iteration
        print(
            f"{stage.model}: {steps} of {stage.max_iter} steps in {seconds[-1] / 60:.1f} min",
            flush=True,
        )
        if args.rescale and number < len(plan):
            rate = steps / seconds[-1]
            left = args.budget_min * 60 - sum(seconds)
            planned = sum(s.max_iter for s in plan[number:])
            factor = RESCALE_MARGIN * left * rate / planned
            plan[number:] = [
                dataclasses.replace(s, max_iter=max(1, int(s.max_iter * factor)))
                for s in plan[number:]
            ]
            print("steps of the next stages:", [s.max_iter for s in plan[number:]], flush=True)
    return checkpoints, seconds


def score(checkpoint: Path, val_set: Dataset) -> dict[str, Any]:
    """The four metrics and per-class IU of a checkpoint on ``val_set`` at full resolution."""
    model = load_model(checkpoint)
    info: DatasetInfo = val_set.info  # type: ignore[attr-defined]
    metrics = evaluate(
        model,
        evaluation_loader(val_set, batch_size=1),
        info.num_classes,
        ignore_index=info.ignore_index,
    )
    return metrics_record(metrics, info.class_names)


def table(records: dict[str, dict[str, Any]], class_names: list[str]) -> str:
    """Stages as columns; the four metrics, then the IU of each class, in percent."""
    width = max(len(name) for name in [*METRIC_NAMES, *class_names])
    lines = [f"{'':<{width}}  " + "  ".join(f"{model.split('-')[0]:>7}" for model in records)]
    rows = [(key, lambda r, k=key: r[k]) for key in METRIC_NAMES]
    rows += [(f"{name}", lambda r, n=name: r["iu"][n]) for name in class_names]
    for number, (label, value) in enumerate(rows):
        if number == len(METRIC_NAMES):
            lines.append(f"{'IU per class':<{width}}")
        cells = [value(record) for record in records.values()]
        lines.append(
            f"{label:<{width}}  "
            + "  ".join(f"{'n/a':>7}" if v is None else f"{100 * v:7.2f}" for v in cells)
        )
    return "\n".join(lines)


def ship(checkpoint: Path, record: dict[str, Any]) -> Path:
    """Copies the checkpoint's weights and metadata into ``fcnseg/weights`` as the shipped
    model, its metadata completed with the val metrics it reproduces."""
    state, meta = load_checkpoint(checkpoint)
    config = {**dict(meta.config or {}), "root": "../shared/data/camvid"}
    source = (
        "benchmarks/camvid.py: trained from random weights on CamVid train (367 images), "
        "staged FCN-32s -> FCN-16s -> FCN-8s; metrics on CamVid val at 480x360, void ignored"
    )
    meta = meta.replace(config=config, metrics={"split": "val", **record}, notes=(source,))
    return save_weights(WEIGHTS_DIR / f"{SHIPPED_NAME}.safetensors", state, meta)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not Path(args.root).is_dir():
        print(f"{args.root}: no CamVid folder", file=sys.stderr)
        return 1
    out = Path(args.out)
    seconds: list[float] = []
    weights = None
    if args.eval_only:
        checkpoints = [out / f"stage{i}-{model}" / "last" for i, model in enumerate(STAGES, 1)]
    else:
        start = time.perf_counter()
        train_set = InMemory(build_dataset("camvid", args.root, "train"))
        load_seconds = time.perf_counter() - start
        print(f"read {len(train_set)} train images in {load_seconds:.0f} s", flush=True)
        weights = class_weights(args.balance, train_set)
        if weights is not None:
            print(f"class weights ({args.balance}):", " ".join(f"{w:.2f}" for w in weights))
        checkpoints, seconds = train(args, train_set, weights)
        print(f"training, three stages: {sum(seconds) / 60:.1f} min", flush=True)
    val_set = build_dataset("camvid", args.root, "val")
    start = time.perf_counter()
    records = {model: score(path, val_set) for model, path in zip(STAGES, checkpoints, strict=True)}
    eval_seconds = time.perf_counter() - start
    class_names = list(val_set.info.class_names)
    print(f"\nCamVid val, {len(val_set)} images at 480x360, void ignored (percent)\n")
    print(table(records, class_names))
    trained = f"training {sum(seconds) / 60:.1f} min; " if seconds else ""
    print(f"\n{trained}evaluation {eval_seconds / 60:.1f} min")

    results = {
        "dataset": "camvid",
        "split": "val",
        "settings": {key: value for key, value in vars(args).items() if key != "eval_only"},
        "class_weights": weights,
        "steps": {
            m: load_checkpoint(p)[1].iteration for m, p in zip(STAGES, checkpoints, strict=True)
        },
        "train_seconds": {m: s for m, s in zip(STAGES, seconds, strict=False)},
        "train_seconds_total": sum(seconds) if seconds else None,
        "eval_seconds": eval_seconds,
        "stages": records,
    }
    if args.results:
        path = Path(args.results)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {path}")
    if args.ship:
        print(f"shipped {ship(checkpoints[-1], records[STAGES[-1]])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
