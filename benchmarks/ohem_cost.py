"""What online hard example mining costs per step of the CamVid recipe, side by side in one run.

OHEM (``fcnseg train --ohem-thresh P``) takes each pixel's probability of its true class from
the loss's own softmax, and, when fewer than ``--ohem-min-kept`` pixels are below P, finds the
hardest with one ``topk``. How often that happens depends on how well the net already does, so
the steps are timed on a trained net: the recipe's FCN-8s (``--init``, e.g. the fourth
version's ``train`` run) fine-tuned at the recipe's FCN-8s settings (bf16 where native, four
320 x 320 crops, the images in memory as ``benchmarks/camvid.py`` holds them), with and
without OHEM, alternating, ``--rounds`` times each. Run from the repository root::

    python benchmarks/ohem_cost.py --init runs/v4-train/stage3-fcn8s-vgg16/last

Prints the median step of each (the wall clock between logged steps, the first five of each
run left out) and their ratio, and writes benchmarks/results/ohem_cost-<CPU class>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch
from camvid import InMemory
from machine_info import heading, machine, results_path

from fcnseg.data import build_dataset
from fcnseg.train import fit, recipe
from fcnseg.train.log import read_log

WARM_UP = 5  # steps of each run left out of its median (allocation, first oneDNN calls)


def step_seconds(out: Path) -> list[float]:
    """The seconds between consecutive logged steps of the run in ``out``, after the warm-up."""
    times = [entry["time"] for entry in read_log(out) if "loss" in entry]
    return [b - a for a, b in zip(times[WARM_UP:], times[WARM_UP + 1 :], strict=False)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init", required=True, help="the trained FCN-8s checkpoint to time")
    parser.add_argument(
        "--root", default="../shared/data/camvid", help="CamVid (default: ../shared/data/camvid)"
    )
    parser.add_argument("--steps", type=int, default=40, help="steps per run (default: 40)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each (default: 2)")
    parser.add_argument("--thresh", type=float, default=0.7, help="--ohem-thresh (default 0.7)")
    parser.add_argument("--min-kept", type=int, default=100_000, help="(default: 100000)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--results", help="JSON output (default: benchmarks/results/...)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    info = machine()
    print(heading(info))
    train_set = InMemory(build_dataset("camvid", args.root, "train"))
    variants = {"none": {}, "ohem": {"ohem_thresh": args.thresh, "ohem_min_kept": args.min_kept}}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for name, settings in variants.items():
                config = recipe(
                    "camvid-scratch",
                    "fcn8s-vgg16",
                    root=args.root,
                    train_split="train",
                    val_split=None,
                    init=args.init,
                    stages=[],
                    max_iter=args.steps,
                    eval_every=0,
                    **settings,
                )
                out = Path(scratch) / f"{name}-{round_}"
                fit(config, out, train_set=train_set, progress=False)
                seconds[name] += step_seconds(out)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    ratio = medians["ohem"] / medians["none"]
    print(f"{'loss':8} {'steps':>6} {'median s/step':>14}")
    for name, values in seconds.items():
        print(f"{name:8} {len(values):>6} {medians[name]:>14.3f}")
    print(f"OHEM / none: {ratio:.3f} (thresh {args.thresh}, min_kept {args.min_kept})")
    path = Path(results_path(args.results, "ohem_cost", info))
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": info,
        "init": args.init,
        "thresh": args.thresh,
        "min_kept": args.min_kept,
        "threads": torch.get_num_threads(),
        "median_step_seconds": medians,
        "ratio_ohem_over_none": ratio,
        "step_seconds": seconds,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
