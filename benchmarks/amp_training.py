"""A training step under CPU bf16 autocast, with the deconvolutions in float32 (fcnseg's way,
``fcnseg.models.upsample.deconvolve``) against in bf16 (autocast's own choice), beside float32.

One step is the forward and backward pass of a batch of four 320 x 320 images through the
CamVid recipe's net (batch-normalised VGG16, lean geometry, width 1/8, fc 128) with 11 classes
(CamVid) and 21 (PASCAL VOC). oneDNN's bf16 backwards-strided convolution of a channel count
that is not a multiple of 4 is many times slower than its float32 one, and FCN-32s's 64 x 64
stride-32 ``upscore`` made a bf16 step slower than a float32 one. Run from the repository root::

    python benchmarks/amp_training.py

Prints a table (the median of ``--repeats`` steps after two warm-up steps, seconds, and the
ratios measured side by side in this run) and writes benchmarks/results/amp_training-<CPU
class>.json. Where bf16 is not native (AVX2 CPUs) autocast emulates it: the figures then say
how slow emulation is, not what fcnseg runs (it trains in float32 there).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from machine_info import heading, machine, results_path

import fcnseg.models.fcn as fcn_module
from fcnseg.models import build_model
from fcnseg.models.upsample import deconvolve


def step_seconds(model: str, classes: int, mode: str, repeats: int) -> float:
    """The median time of one forward and backward pass; ``mode``: fp32, bf16 (fcnseg) or
    bf16-deconv (the deconvolutions left to autocast, in bf16)."""
    torch.manual_seed(0)
    net = build_model(
        model, num_classes=classes, geometry="lean", width=1 / 8, fc_width=128, batch_norm=True
    ).train()
    images = torch.randn(4, 3, 320, 320)
    labels = torch.randint(0, classes, (4, 320, 320))
    fcn_module.deconvolve = (lambda layer, x: layer(x)) if mode == "bf16-deconv" else deconvolve
    times = []
    try:
        for _ in range(2 + repeats):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
                scores = net(images)
            loss = torch.nn.functional.cross_entropy(scores.float(), labels)
            loss.backward()
            times.append(time.perf_counter() - start)
    finally:
        fcn_module.deconvolve = deconvolve
    return statistics.median(times[2:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (default: 5)")
    parser.add_argument("--results", help="JSON output (default: benchmarks/results/...)")
    args = parser.parse_args()
    info = machine()
    print(heading(info))
    rows = []
    print(
        f"{'net':14} {'classes':>7} {'fp32 s':>8} {'bf16 s':>8} {'bf16-deconv s':>14} "
        f"{'fp32/bf16':>10} {'bf16-deconv/bf16':>17}"
    )
    for model in ("fcn32s-vgg16", "fcn8s-vgg16"):
        for classes in (11, 21):
            row = {"model": model, "classes": classes}
            for mode in ("fp32", "bf16", "bf16-deconv"):
                row[mode] = step_seconds(model, classes, mode, args.repeats)
            rows.append(row)
            print(
                f"{model:14} {classes:>7} {row['fp32']:>8.3f} {row['bf16']:>8.3f} "
                f"{row['bf16-deconv']:>14.3f} {row['fp32'] / row['bf16']:>10.2f} "
                f"{row['bf16-deconv'] / row['bf16']:>17.2f}"
            )
    path = Path(results_path(args.results, "amp_training", info))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": info, "steps": rows}, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
