"""Section 3.1 reproduced: a convolutionalized classifier amortizes overlapping windows.

The paper: "while AlexNet takes 1.2 ms (on a typical GPU) to produce the classification
scores of a 227 x 227 image, the fully convolutional version takes 22 ms to produce a
10 x 10 grid of outputs from a 500 x 500 image, which is more than 5 times faster than the
naive approach" (batched; one image at a time takes 5.4 ms, "nearly 25 times slower"); the
backward pass, 2.4 ms per image against 37 ms for the 10 x 10 map, gains about as much.

Here: CaffeNet convolutionalized without decapitation (``convolutionalize(...,
decapitate=False)``, no FCN padding) scores a 500 x 500 image as a 10 x 10 map of 1000
classes; the classifier itself scores the 100 227 x 227 windows under those cells, batched
and one at a time. Forward, and backward alone (the gradient of the scores' sum, as the
paper times it), fp32 eager; and
the forward again through ``optimize_for_inference`` in the fastest precision. Printed beside
the paper's ratios and written as JSON. Run from the repository root::

    python benchmarks/amortization.py
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch
from torch import nn

from fcnseg.inference import optimize_for_inference
from fcnseg.inference.bench import count_flops, machine_load, time_call, write_results
from fcnseg.models import AlexNet, classifier_geometry, convolutionalize

# Section 3.1 and its footnote, milliseconds on the paper's GPU.
PAPER_MS = {
    "forward": {"fcn": 22.0, "batched": 100 * 1.2, "single": 100 * 5.4},
    "backward": {"fcn": 37.0, "batched": 100 * 2.4},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="CPU threads (default: all); fewer when other work holds some cores",
    )
    parser.add_argument("--size", type=int, default=500, help="the image side (500)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--results", default="benchmarks/results/amortization.json")
    return parser.parse_args(argv)


def windows(image: torch.Tensor, grid: int, stride: int, crop: int) -> torch.Tensor:
    """The ``grid x grid`` crops under the score map's cells, as one batch.

    The last cells' windows overhang the image (ceil-mode pooling gives them partial
    windows): their crops are moved back inside.
    """
    starts = [min(stride * i, image.shape[-1] - crop) for i in range(grid)]
    return torch.stack(
        [image[:, top : top + crop, left : left + crop] for top in starts for left in starts]
    )


def backward_only(net: nn.Module, inputs: list[torch.Tensor]) -> Callable[[], None]:
    """The backward passes (gradient of the scores' sum) of forward passes run once here."""
    outputs = [net(x).sum() for x in inputs]  # the graphs are kept for every timed call

    def run() -> None:
        for output in outputs:
            output.backward(retain_graph=True)

    return run


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    load = {"at_start": machine_load()}
    torch.manual_seed(0)
    classifier = AlexNet().eval()
    fully_convolutional = convolutionalize(classifier, decapitate=False).eval()
    geometry = classifier_geometry(classifier)
    crop, stride = classifier.crop_size, int(geometry.stride)
    image = 50 * torch.randn(3, args.size, args.size)
    with torch.no_grad():
        score_map = fully_convolutional(image[None])  # 1×1000×10×10
    grid = score_map.shape[-1]
    crops = windows(image, grid, stride, crop)  # 100×3×227×227
    print(
        f"score map {tuple(score_map.shape)} from a {args.size}x{args.size} image; "
        f"{len(crops)} windows of {crop}x{crop} at stride {stride}"
    )

    def no_grad(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                fn()

        return run

    def one_at_a_time(fn: Callable[[torch.Tensor], object]) -> Callable[[], None]:
        def run() -> None:
            for window in crops.split(1):
                fn(window)

        return run

    fast_fcn = optimize_for_inference(fully_convolutional)
    fast_classifier = optimize_for_inference(classifier)
    runs = {
        "forward": {
            "fcn": no_grad(lambda: fully_convolutional(image[None])),
            "batched": no_grad(lambda: classifier(crops)),
            "single": no_grad(one_at_a_time(classifier)),
        },
        "backward": {
            "fcn": backward_only(fully_convolutional, [image[None]]),
            "batched": backward_only(classifier, [crops]),
            "single": backward_only(classifier, list(crops.split(1))),
        },
        # (one window at a time is left out: optimize_for_inference packs convolutions, and
        # the classifier's fully connected layers at batch 1 are matrix-vector products)
        f"forward, {fast_fcn.precision}": {
            "fcn": lambda: fast_fcn(image[None]),
            "batched": lambda: fast_classifier(crops),
        },
    }
    flops = {
        "fcn": count_flops(no_grad(lambda: fully_convolutional(image[None]))),
        "batched": count_flops(no_grad(lambda: classifier(crops))),
    }
    print(
        f"GFLOP: fully convolutional {flops['fcn'] / 1e9:.1f}, "
        f"100 windows {flops['batched'] / 1e9:.1f} ({flops['batched'] / flops['fcn']:.1f}x)"
    )
    results: dict = {
        "score_map": list(score_map.shape),
        "gflop": {k: v / 1e9 for k, v in flops.items()},
    }
    header = f"{'pass':<16}{'way':<10}{'ms':>10}{'x fcn':>8}{'paper ms':>10}{'paper x':>9}"
    print(header + "\n" + "-" * len(header))
    for kind, ways in runs.items():
        results[kind] = {}
        fcn_ms = None
        for way, run in ways.items():
            ms = 1e3 * time_call(run, repeats=args.repeats, warmup=1).best
            fcn_ms = fcn_ms or ms
            paper = PAPER_MS.get(kind, {}).get(way)
            paper_fcn = PAPER_MS.get(kind, {}).get("fcn")
            paper_cells = (
                ("", "") if paper is None else (f"{paper:.0f}", f"{paper / paper_fcn:.1f}")
            )
            print(
                f"{kind:<16}{way:<10}{ms:>10.1f}{ms / fcn_ms:>8.1f}"
                f"{paper_cells[0]:>10}{paper_cells[1]:>9}"
            )
            results[kind][way] = {"ms": ms, "ratio": ms / fcn_ms, "paper_ms": paper}
    load["at_end"] = machine_load()
    results["load"] = load
    path = write_results(args.results, results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
