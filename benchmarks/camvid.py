"""CamVid from scratch: the ``camvid-scratch`` recipe (FCN-32s, then FCN-16s from it, then
FCN-8s from that; section 4.2), timed and scored.

No ImageNet weights exist on the machines this runs on, so the staged pipeline is proved on
real images from random weights. The recipe (:mod:`fcnseg.train.recipes`, docs/camvid.md)
says everything about the training: a batch-normalised VGG16 at 1/4 width (fc6/fc7 256)
under bf16 autocast (float32 where the CPU has no native bf16), random rescaling
by 0.75-1.5 and colour jitter 0.2, random 320x320 crops in batches of 4, the square root of
median frequency balancing, 5600 / 2160 / 4080 steps at Adam rates 2e-3 / 1e-3 / 1e-3. This
script only runs it through :func:`fcnseg.train.fit_staged` (``fcnseg train --recipe
camvid-scratch`` does the same) on ``--train-split`` (``train+val``, as the shipped model; or
``train``, ``val`` then held out; or a fold's split, docs/camvid.md), then scores every stage on
``val`` at full resolution, void ignored, prints the table of the four metrics and per-class
IU, and writes it as JSON with the CPU it ran on. The final FCN-8s can be copied into the
package as the shipped model.

Run from the repository root::

    python benchmarks/camvid.py --out runs/camvid-trainval --ship      # the shipped model
    python benchmarks/camvid.py --train-split train --out runs/camvid-train

The training wall clock (the three stages together, evaluation excluded) is printed and
recorded; so is the evaluation's. ``--budget-min`` stops the run at a time budget (saved, and
``--resume`` goes on); a run so stopped is not the recipe's result, and says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from fcnseg.cli import ArgumentParser
from fcnseg.cli.train import positive_minutes
from fcnseg.data import DatasetInfo, build_dataset
from fcnseg.errors import ConfigError, FcnsegError
from fcnseg.evaluation import METRIC_NAMES, evaluate, evaluation_loader, metrics_record
from fcnseg.io.weights import WEIGHTS_DIR, load_model, save_weights
from fcnseg.runtime import AMP_MODES, amp_dtype, choose_device, cpu_info
from fcnseg.train import TrainConfig, fit_staged, load_checkpoint, recipe, staged_configs
from fcnseg.train.data import class_weights_for
from fcnseg.train.log import read_log
from fcnseg.train.loop import time_budget

REPO = Path(__file__).resolve().parent.parent
SHIPPED_NAME = "camvid-fcn8s"
RECIPE = "camvid-scratch"


class InMemory(Dataset):
    """A dataset read once into memory (367 CamVid images are about 0.8 GB as float32), so that
    no step waits on PNG decoding."""

    def __init__(self, dataset: Dataset) -> None:
        self.info: DatasetInfo = dataset.info  # type: ignore[attr-defined]
        self.convention = dataset.convention  # type: ignore[attr-defined]
        self.samples = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.samples[index]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        default=str(REPO.parent / "shared" / "data" / "camvid"),
        help="the CamVid folder (default: ../shared/data/camvid)",
    )
    parser.add_argument(
        "--out", default="runs/camvid-scratch", help="the run folder (default: runs/camvid-scratch)"
    )
    parser.add_argument(
        "--budget-min",
        type=positive_minutes,
        help="stop the training after this many minutes (saved; --resume goes on); the "
        "result is then not the recipe's (default: no budget)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--colour-jitter",
        type=float,
        help="colour jitter S instead of the recipe's 0.2: random brightness, contrast and "
        "saturation factors in [1-S, 1+S], 0 for none (as fcnseg train --colour-jitter; the "
        "result is then not the recipe's, and the results' settings record S)",
    )
    parser.add_argument(
        "--scale",
        type=positive_float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="random rescaling by a factor in [MIN, MAX] instead of the recipe's 0.75 1.5 (as "
        "fcnseg train --scale; the result is then not the recipe's, and the results' settings "
        "record it)",
    )
    parser.add_argument(
        "--ohem-thresh",
        type=float,
        metavar="P",
        help="online hard example mining, as fcnseg train --ohem-thresh: only pixels whose "
        "true class has a probability below P, in (0, 1], count in the loss (the recipe: none; "
        "the result is then not the recipe's, and the results' settings record it)",
    )
    parser.add_argument(
        "--ohem-min-kept",
        type=int,
        metavar="PIXELS",
        help="under --ohem-thresh, the fewest pixels a forward pass keeps, the hardest "
        "(default: 100000, a quarter of the recipe's batch of four 320x320 crops)",
    )
    parser.add_argument(
        "--median-frequency-power",
        type=positive_float,
        metavar="POWER",
        help="the class weights are median frequency balancing's raised to POWER instead of the "
        "recipe's 0.5, the square root (1 for median frequency balancing itself; the result is "
        "then not the recipe's, and the results' settings record it)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="the run's seed instead of the recipe's 0: every random draw (weights, data order, "
        "augmentation) follows from it, so another seed repeats the recipe as another run "
        "(the results' settings record it)",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        nargs=3,
        metavar=("FCN32S", "FCN16S", "FCN8S"),
        help="steps of each stage instead of the recipe's 5600 2160 4080 (the result is then "
        "not the recipe's, and the results' settings record them)",
    )
    parser.add_argument(
        "--width",
        type=positive_float,
        help="VGG16 channel multiplier instead of the recipe's 1/4, fc6/fc7 scaled with it "
        "(1024 x width, at least 1: 256 at 1/4) unless --fc-width (fcnseg train --width "
        "keeps fc6/fc7 as they are; the result is then not the recipe's, and the results' "
        "settings record both)",
    )
    parser.add_argument(
        "--fc-width", type=positive_int, help="fc6/fc7 channels instead of 1024 x width"
    )
    parser.add_argument(
        "--amp",
        choices=AMP_MODES,
        help="autocast of the training steps instead of the recipe's 'bf16' (where the CPU runs "
        "it natively, else float32 with a warning; 'none' for float32; scoring stays float32)",
    )
    parser.add_argument(
        "--train-split",
        default="train+val",
        help="the split(s) trained on: train+val (the shipped model; its val numbers are then "
        "not held out), train (val held out), or a fold's (docs/camvid.md) (default: "
        "train+val, the recipe's)",
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="torch intra-op threads (default: torch's, all cores, as fcnseg train; the "
        "recipe's time was measured on two, a 2-core machine's both)",
    )
    parser.add_argument(
        "--results",
        help="the JSON results (default: OUT/results.json, in the run folder, so that no run "
        "replaces the results under benchmarks/results/; none with --eval-only)",
    )
    parser.add_argument(
        "--ship", action="store_true", help=f"copy the FCN-8s into the package as '{SHIPPED_NAME}'"
    )
    parser.add_argument(
        "--eval-only", action="store_true", help="score the stages already trained in --out"
    )
    args = parser.parse_args(argv)
    if args.ohem_min_kept is not None and args.ohem_thresh is None:
        parser.error("--ohem-min-kept is the minimum of --ohem-thresh's mining: give both")
    if args.results is None and not args.eval_only:
        args.results = str(Path(args.out) / "results.json")
    return args


def stage_seconds(folder: Path) -> float:
    """A stage's training wall clock from its log: from the end of its first step to the end
    of its last."""
    steps = [e for e in read_log(folder) if "loss" in e]
    return steps[-1]["time"] - steps[0]["time"] if steps else 0.0


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
    if config.get("init") and Path(config["init"]).is_absolute():
        # the stage it started from, named within its run folder: the training machine's
        # own path would say nothing on another
        config["init"] = os.path.relpath(config["init"], checkpoint.parent.parent.resolve())
    split = config.get("train_split", "train")
    source = (
        f"fcnseg train --recipe camvid-scratch --train-split {split} (benchmarks/camvid.py): "
        f"trained from random weights on CamVid {split}, staged FCN-32s -> FCN-16s -> "
        "FCN-8s; metrics on CamVid val at 480x360, void ignored"
        + (" (val was trained on: not held out)" if "val" in split.split("+") else "")
    )
    meta = meta.replace(config=config, metrics={"split": "val", **record}, notes=(source,))
    return save_weights(WEIGHTS_DIR / f"{SHIPPED_NAME}.safetensors", state, meta)


def positive_int(text: str) -> int:
    """An argparse type: a whole number above 0."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}': expected a whole number of at least 1")
    return int(text)


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"'{text}': expected a finite number above 0")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except FcnsegError as error:  # a bad setting or file: one line, as fcnseg's commands
        print(f"camvid.py: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # fit saved the stage at its step: the run goes on from there
        print(
            f"camvid.py: stopped; what {args.out} trained is saved, --resume goes on",
            file=sys.stderr,
        )
        return 130


# The flag of this script that sets each TrainConfig field it changes.
FLAGS = {
    "colour_jitter": "--colour-jitter",
    "scale": "--scale",
    "amp": "--amp",
    "ohem_thresh": "--ohem-thresh",
    "ohem_min_kept": "--ohem-min-kept",
    "median_frequency_power": "--median-frequency-power",
    "seed": "--seed",
    "train_split": "--train-split",
    "max_iter": "--steps",
}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The recipe's configuration with the command line's changes.

    Raises:
        FcnsegError: a value out of its range, naming the flag that gave it.
    """
    try:
        return _config_from_args(args)
    except ConfigError as error:
        flag = FLAGS.get(error.field)
        raise error if flag is None else FcnsegError(f"{flag} {error.problem}") from None


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides: dict[str, Any] = {}
    if args.colour_jitter is not None:
        overrides["colour_jitter"] = args.colour_jitter
    if args.scale is not None:
        overrides["scale"] = args.scale
    if args.amp is not None:
        overrides["amp"] = args.amp
    if args.ohem_thresh is not None:
        overrides["ohem_thresh"] = args.ohem_thresh
    if args.ohem_min_kept is not None:
        overrides["ohem_min_kept"] = args.ohem_min_kept
    if args.median_frequency_power is not None:
        overrides["median_frequency_power"] = args.median_frequency_power
    if args.seed is not None:
        overrides["seed"] = args.seed
    config = recipe(RECIPE, root=str(args.root), train_split=args.train_split, **overrides)
    if args.width is not None or args.fc_width is not None:
        width = config.backbone["width"] if args.width is None else args.width
        fc_width = max(1, round(1024 * width)) if args.fc_width is None else args.fc_width
        config = dataclasses.replace(
            config, backbone={**config.backbone, "width": width, "fc_width": fc_width}
        )
    if args.steps:  # the recipe's stages, each with its steps replaced
        config = dataclasses.replace(
            config,
            stages=[
                {**stage, "max_iter": steps}
                for stage, steps in zip(config.stages, args.steps, strict=True)
            ],
            max_iter=args.steps[-1],
        )
    return config


def run(args: argparse.Namespace) -> int:
    if not Path(args.root).is_dir():
        raise FcnsegError(f"--root {args.root}: no CamVid folder")
    out = Path(args.out)
    if out.exists() and not out.is_dir():  # before minutes of reading images
        raise FcnsegError(f"--out {out}: a file, not a run folder")
    # scored after training, so that the clock times training only
    config = config_from_args(args)
    # an amp mode the device cannot run fails here, before minutes of reading images
    amp_dtype(config.amp, choose_device(config.device))
    stages = staged_configs(config)
    folders = [out / f"stage{i}-{stage.model}" for i, stage in enumerate(stages, start=1)]
    trained = [folder for folder in folders if (folder / "last.safetensors").is_file()]
    if args.resume and not (folders[0] / "config.json").is_file():
        # fit_staged would start a new run in its place, over an hour, without a word
        raise FcnsegError(f"--out {out}: no run to resume there (no {folders[0].name})")
    if args.eval_only and not trained:
        raise FcnsegError(f"--out {out}: no trained stage to score (no {folders[0].name}/last)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print("CPU:", json.dumps(cpu_info()), flush=True)
    total = None
    weights = None
    stopped = False
    if not args.eval_only:
        start = time.perf_counter()
        train_set = InMemory(build_dataset("camvid", args.root, config.train_split))
        print(
            f"read {len(train_set)} {config.train_split} images in "
            f"{time.perf_counter() - start:.0f} s"
        )
        weights = class_weights_for(config, train_set, train_set.info).tolist()
        print(
            f"class weights (median frequency to the power {config.median_frequency_power:g}):",
            " ".join(f"{w:.2f}" for w in weights),
        )
        stop = time_budget(60 * args.budget_min) if args.budget_min is not None else None
        start = time.perf_counter()
        result = fit_staged(
            config, out, resume=args.resume, train_set=train_set, progress=False, stop=stop
        )
        total = time.perf_counter() - start
        stopped = result is not None and result.stopped
        print(f"training, three stages: {total / 60:.1f} min", flush=True)
        if stopped:
            print("stopped by --budget-min: these are not the recipe's results", flush=True)
    checkpoints = [folder / "last" for folder in folders]
    val_set = build_dataset("camvid", args.root, "val")
    start = time.perf_counter()
    records = {
        stage.model: score(path, val_set)
        for stage, path in zip(stages, checkpoints, strict=True)
        if path.with_suffix(".safetensors").is_file()
    }
    eval_seconds = time.perf_counter() - start
    class_names = list(val_set.info.class_names)
    trained_on_val = "val" in config.train_split.split("+")
    held = " (trained on: not held out)" if trained_on_val else ""
    print(f"\nCamVid val, {len(val_set)} images at 480x360, void ignored{held} (percent)\n")
    print(table(records, class_names))
    trained = f"training {total / 60:.1f} min; " if total is not None else ""
    print(f"\n{trained}evaluation {eval_seconds / 60:.1f} min")

    results = {
        "dataset": "camvid",
        "split": "val",
        "val_held_out": "val" not in config.train_split.split("+"),
        "cpu": cpu_info(),
        "recipe": RECIPE,
        "settings": config.to_dict(),
        "stopped_by_budget": stopped,
        "class_weights": weights,
        "steps": {
            stage.model: load_checkpoint(path)[1].iteration
            for stage, path in zip(stages, checkpoints, strict=True)
            if stage.model in records
        },
        # what train_seconds measures, as a one-step stage records 0 and a resumed one its pause
        "train_seconds_measure": "each stage's log, from the end of its first step to the end "
        "of its last (a stage resumed after a stop includes the pause)",
        "train_seconds": {
            stage.model: stage_seconds(folder)
            for stage, folder in zip(stages, folders, strict=True)
            if stage.model in records
        },
        "train_seconds_total": total,
        "eval_seconds": eval_seconds,
        "stages": records,
    }
    if args.results:
        path = Path(args.results)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {path}")
    if args.ship:
        if stopped or stages[-1].model not in records:
            print("not shipped: the run did not finish", file=sys.stderr)
            return 1
        print(f"shipped {ship(checkpoints[-1], records[stages[-1].model])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
