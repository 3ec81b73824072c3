"""FLOPs and forward time of every model in the table, at 500x500, in both geometries.

Issue 2's acceptance 7: for each name in ``fcnseg.list_models()`` and each geometry (lean
only where it is defined: a row says why where it is not), the FLOPs of one forward pass
(2 x MACs, ``FlopCounterMode``) and the seconds it takes, as built (``eager``, fp32) and
through ``fcnseg.optimize_for_inference`` in the fastest precision here. Random weights;
21 classes (33 + 3 for SIFT Flow). A table is printed and written as JSON. Run from the
repository root with nothing else running::

    python benchmarks/models.py
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import fcnseg
from fcnseg.inference import resolve_precision
from fcnseg.inference.bench import benchmark_inference, machine_load, write_results
from fcnseg.models.fcn import GEOMETRIES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="CPU threads (default: all); fewer when other work holds some cores",
    )
    parser.add_argument("--size", type=int, nargs=2, default=(500, 500), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds per model")
    parser.add_argument("--models", nargs="*", default=fcnseg.list_models())
    parser.add_argument("--results", default="benchmarks/results/models.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    height, width = args.size
    fast = resolve_precision("auto")
    load = {"at_start": machine_load()}
    started = time.perf_counter()
    header = (
        f"{'model':<24}{'geometry':<10}{'GFLOP':>8}{'eager s':>10}{f'{fast} s':>10}{'speed-up':>10}"
    )
    print(f"forward pass at {height}x{width}, {torch.get_num_threads()} threads\n{header}")
    print("-" * len(header))
    rows = []
    gemm: dict = {}
    for name in args.models:
        for geometry in GEOMETRIES:
            torch.manual_seed(0)
            try:
                model = fcnseg.build_model(name, num_classes=21, geometry=geometry)
            except fcnseg.FcnsegError as error:
                print(f"{name:<24}{geometry:<10}  {error}")
                rows.append({"model": name, "geometry": geometry, "error": str(error)})
                continue
            eager, optimized = benchmark_inference(
                model,
                ["eager", fast],
                height=height,
                width=width,
                repeats=args.repeats,
                gemm=gemm,
            )
            speedup = eager.seconds_per_image / optimized.seconds_per_image
            print(
                f"{name:<24}{geometry:<10}{eager.gflop:>8.0f}{eager.seconds_per_image:>10.3f}"
                f"{optimized.seconds_per_image:>10.3f}{speedup:>9.2f}x"
            )
            rows.append(
                {
                    "model": name,
                    "geometry": geometry,
                    "gflop": eager.gflop,
                    "eager": eager.as_dict(),
                    fast: optimized.as_dict(),
                }
            )
            del model
    wall = time.perf_counter() - started
    load["at_end"] = machine_load()
    results = {
        "size": [height, width],
        "load": load,
        "threads": torch.get_num_threads(),
        "rows": rows,
        "wall_seconds": wall,
    }
    path = write_results(args.results, results)
    print(f"wrote {path} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
