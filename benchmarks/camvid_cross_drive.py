"""CamVid with a drive held out: which augmentation carries to streets the net has not seen.

CamVid's `val` is frames of a drive that `train` also holds, so it rewards fitting that drive
(docs/camvid.md). This makes a split that holds one drive out, and gathers the held-out scores
of runs trained on it:

    python benchmarks/camvid_cross_drive.py split --root ../shared/data/camvid --out ../xdrive
    fcnseg train --recipe camvid-scratch --model fcn32s-vgg16 --root ../xdrive \\
        --train-split xtrain --val-split xval --out runs/xdrive/v2-fcn32s [flags]
    python benchmarks/camvid_cross_drive.py collect runs/xdrive/v1-fcn32s runs/xdrive/v2-fcn32s

`xtrain`: every `train` frame not of the held-out drive (default `0001TP`, at dusk), then all
of `val` (the shipped model's training set less one drive); `xval`: the held-out drive's
`train` frames. The split folder links to CamVid's four image folders; nothing is copied.
`collect` prints a table and writes `results/camvid-cross-drive.json` with the CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from fcnseg.data.camvid import CAMVID_CLASSES
from fcnseg.runtime import cpu_info
from fcnseg.train.log import read_log

RESULTS = Path(__file__).parent / "results" / "camvid-cross-drive.json"


def make_split(root: Path, out: Path, drive: str) -> None:
    """Writes ``out/xtrain.txt`` and ``out/xval.txt`` and links CamVid's folders into ``out``."""
    train = (root / "train.txt").read_text().splitlines()
    val = (root / "val.txt").read_text().splitlines()
    held_out = [line for line in train if Path(line.split()[0]).name.startswith(drive)]
    if not held_out:
        raise SystemExit(f"{root / 'train.txt'}: no frame of drive {drive}")
    out.mkdir(parents=True, exist_ok=True)
    for folder in ("train", "trainannot", "val", "valannot"):
        link = out / folder
        if not link.exists():
            link.symlink_to((root / folder).absolute(), target_is_directory=True)
    kept = [line for line in train if line not in held_out] + val
    (out / "xtrain.txt").write_text("\n".join(kept) + "\n")
    (out / "xval.txt").write_text("\n".join(held_out) + "\n")
    print(f"{out}: xtrain {len(kept)} frames, xval {len(held_out)} frames of {drive}")


def collect(runs: list[Path]) -> dict:
    """The last held-out score of each run folder (its last stage), with its settings."""
    rows = []
    for run in runs:
        stages = sorted(run.glob("stage*")) or [run]
        folder = stages[-1]
        entries = read_log(folder)
        scores = [entry for entry in entries if "eval" in entry]
        steps = [entry for entry in entries if "loss" in entry]
        if not scores:
            print(f"{folder}: not scored yet", file=sys.stderr)
            continue
        config = json.loads((folder / "config.json").read_text())
        record = scores[-1]["eval"]
        rows.append(
            {
                "run": str(run),
                "model": config["model"],
                "scale": config["scale"],
                "colour_jitter": config["colour_jitter"],
                "iteration": scores[-1]["iteration"],
                "minutes": round((steps[-1]["time"] - steps[0]["time"]) / 60, 1),
                **{key: record[key] for key in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "iu")},
            }
        )
    return {"cpu": cpu_info(), "torch": torch.__version__, "runs": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    split = commands.add_parser("split", help="make the split folder")
    split.add_argument("--root", type=Path, required=True, help="CamVid (SegNet layout)")
    split.add_argument("--out", type=Path, required=True, help="the split folder to make")
    split.add_argument("--drive", default="0001TP", help="the drive held out")
    gather = commands.add_parser("collect", help="gather the runs' held-out scores")
    gather.add_argument("runs", type=Path, nargs="+", help="run folders (fcnseg train --out)")
    gather.add_argument("--results", type=Path, default=RESULTS)
    gather.add_argument("--note", default="", help="how the runs ran (threads, side by side)")
    args = parser.parse_args(argv)
    if args.command == "split":
        make_split(args.root, args.out, args.drive)
        return 0
    results = {**collect(args.runs), "note": args.note}
    print(f"CPU: {results['cpu']}")
    print(f"{'run':<32} {'scale':>10} {'jitter':>6} {'mean IU':>8} {'pixel acc':>9}  per class")
    for row in results["runs"]:
        ius = " ".join(f"{100 * row['iu'][name]:.1f}" for name in CAMVID_CLASSES)
        print(
            f"{row['run']:<32} {str(row['scale']):>10} {row['colour_jitter']:>6} "
            f"{100 * row['mean_iu']:>8.2f} {100 * row['pixel_acc']:>9.2f}  {ius}"
        )
    args.results.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
