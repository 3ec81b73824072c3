"""Long runs do not grow: resident memory while predicting and evaluating 500 images.

``fcnseg predict`` and ``fcnseg eval`` run in this process (``fcnseg.cli.main``) on 500
generated images of five different sizes (so that buffers of every size are allocated and
freed in turn), with the shipped ``camvid-fcn8s`` model by default. The resident set size
(``/proc/self/statm``) is sampled after every image. After the first ``--warmup`` images
(caches, the allocator's pools, lazily built kernels) it must stay flat: the script fails if
the least-squares slope over the remaining images, times their count, or the last sample
minus the first one after the warm-up, exceeds ``--tolerance-mb``. Run from the repository
root::

    python benchmarks/memory.py

Prints a table, writes benchmarks/results/memory-<CPU class>.json, and
exits 1 if memory grows.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine_info import heading, machine, results_path
from PIL import Image
from tqdm import tqdm

import fcnseg
from fcnseg.cli import evaluate as evaluate_command
from fcnseg.cli import main as fcnseg_main
from fcnseg.cli import predict as predict_command
from fcnseg.data.synthetic import SyntheticShapes
from fcnseg.inference.bench import write_results

SIZES = ((120, 160), (160, 120), (176, 176), (144, 208), (224, 128))  # H x W
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--model", default="camvid-fcn8s", help="any fcnseg --model")
    parser.add_argument("--warmup", type=int, default=20, help="images before the baseline")
    parser.add_argument("--tolerance-mb", type=float, default=16.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--results", help="JSON output (default: benchmarks/results/memory-<CPU class>.json)"
    )
    return parser.parse_args(argv)


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class Sampled(tqdm):
    """tqdm that records the resident set size each time the loop takes its next item
    (so after the previous one is done)."""

    samples: list[int] = []

    def __iter__(self) -> Iterator[Any]:
        for item in super().__iter__():
            Sampled.samples.append(resident_bytes())
            yield item
        Sampled.samples.append(resident_bytes())


def make_images(root: Path, count: int, class_names: list[str]) -> Path:
    (root / "images" / "all").mkdir(parents=True)
    (root / "masks" / "all").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(class_names) + "\n")
    shapes = {size: SyntheticShapes(count, size=max(size), seed=i) for i, size in enumerate(SIZES)}
    for index in range(count):
        height, width = SIZES[index % len(SIZES)]
        rgb, label = shapes[(height, width)].render(index)
        rgb, label = rgb[:height, :width], label[:height, :width] % len(class_names)
        name = f"img{index:04d}.png"
        Image.fromarray(rgb).save(root / "images" / "all" / name)
        Image.fromarray(label.astype(np.uint8)).save(root / "masks" / "all" / name)
    return root


def growth(samples: list[int], warmup: int) -> dict[str, Any]:
    """Figures of one command's samples (one per image, and one at the end)."""
    mb = np.array(samples, dtype=np.float64) / 2**20
    after = mb[warmup:]
    slope = float(np.polyfit(np.arange(len(after)), after, 1)[0]) if len(after) > 1 else 0.0
    marks = sorted({1, 10, warmup, 100, 200, 300, 400, len(mb) - 1})
    return {
        "images": len(samples) - 1,
        "at_image_mb": {str(i): round(float(mb[i]), 1) for i in marks if i < len(mb)},
        "baseline_mb": round(float(after[0]), 1),
        "max_after_warmup_mb": round(float(after.max()), 1),
        "last_minus_baseline_mb": round(float(after[-1] - after[0]), 2),
        "slope_kb_per_image": round(1024 * slope, 3),
        "fitted_growth_mb": round(slope * (len(after) - 1), 2),
    }


def run(command: list[str]) -> tuple[int, float]:
    Sampled.samples = []
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = fcnseg_main(command)
    return code, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine()
    print(heading(info))
    work = Path(tempfile.mkdtemp(prefix="fcnseg-memory-"))
    model = fcnseg.load_model(args.model)
    data = make_images(work / "data", args.images, list(model.meta.classes))
    del model
    predict_command.tqdm = Sampled  # type: ignore[attr-defined]
    evaluate_command.tqdm = Sampled  # type: ignore[attr-defined]

    results = {}
    commands = {
        "predict": ["predict", str(data / "images"), "--model", args.model, "--out"]
        + [str(work / "predictions")],
        "eval": ["eval", "--model", args.model, "--dataset", "folder", "--root", str(data)]
        + ["--split", "all", "--out", str(work / "eval"), "--no-progress"],
    }
    for name, command in commands.items():
        code, seconds = run(command)
        if code != 0:
            print(f"fcnseg {name} exited {code}", file=sys.stderr)
            return 1
        results[name] = {**growth(Sampled.samples, args.warmup), "seconds": round(seconds, 1)}

    marks = list(results["predict"]["at_image_mb"])
    header = f"{'command':<8} " + " ".join(f"{'@' + m:>7}" for m in marks)
    header += f" {'last-base':>9} {'fit growth':>10} {'kB/image':>8} {'s':>6}"
    print(f"resident MB after image N ({args.images} images, {args.model})")
    print(header)
    print("-" * len(header))
    failed = []
    for name, r in results.items():
        values = " ".join(f"{r['at_image_mb'].get(m, float('nan')):>7.1f}" for m in marks)
        print(
            f"{name:<8} {values} {r['last_minus_baseline_mb']:>9.2f} "
            f"{r['fitted_growth_mb']:>10.2f} {r['slope_kb_per_image']:>8.2f} {r['seconds']:>6.1f}"
        )
        if max(r["last_minus_baseline_mb"], r["fitted_growth_mb"]) > args.tolerance_mb:
            failed.append(name)
    verdict = f"grows: {', '.join(failed)}" if failed else "flat"
    print(f"after image {args.warmup}: {verdict} (tolerance {args.tolerance_mb:g} MB)")
    path = write_results(
        results_path(args.results, "memory", info),
        {
            "machine": info,
            "command": " ".join(["python", "benchmarks/memory.py", *(argv or sys.argv[1:])]),
            "model": args.model,
            "sizes_hw": SIZES,
            "warmup": args.warmup,
            "tolerance_mb": args.tolerance_mb,
            "threads": args.threads,
            "results": results,
            "flat": not failed,
        },
    )
    print(f"wrote {path}")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
