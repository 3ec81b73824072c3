"""Test-time augmentation on CamVid val (the shipped model, or ``--model``): gains and costs.

Each configuration (none; flip; scales 0.75 1.0 1.25; both) scores every val image as
``fcnseg eval`` does (:func:`fcnseg.evaluation.evaluate` on
:class:`fcnseg.inference.TestTimeAugmentation`, fp32 eager, one image at a time) and times
the CPU seconds each image's forward passes, softmax and resizing take, on one thread
(``time.process_time``: CPU time, which other jobs on a shared machine inflate far less than
wall time). Run from the repository root::

    python benchmarks/tta.py --root ../shared/data/camvid
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import fcnseg
from fcnseg.data import build_dataset
from fcnseg.evaluation import evaluate, evaluation_loader
from fcnseg.inference import TestTimeAugmentation
from fcnseg.inference.bench import machine_load, write_results
from fcnseg.runtime import cpu_info

CONFIGURATIONS = {
    "none": {},
    "flip": {"flip": True},
    "scales 0.75 1.0 1.25": {"scales": (0.75, 1.0, 1.25)},
    "flip, scales 0.75 1.0 1.25": {"flip": True, "scales": (0.75, 1.0, 1.25)},
}


class _Timed:
    """The batches of a loader, with the CPU time spent between them (the model's work)."""

    def __init__(self, loader: object) -> None:
        self.loader = loader
        self.seconds: list[float] = []

    def __iter__(self):  # noqa: ANN204
        for batch in self.loader:  # type: ignore[attr-defined]
            start = time.process_time()
            yield batch
            self.seconds.append(time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/camvid")
    parser.add_argument(
        "--model",
        default="camvid-fcn8s",
        help="a shipped name or checkpoint (default: camvid-fcn8s; a model trained on val "
        "is not held out there: score the train-only run's, e.g. runs/camvid-train/"
        "stage3-fcn8s-vgg16/last)",
    )
    parser.add_argument("--results", default="benchmarks/results/tta.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("CPU:", cpu_info(), flush=True)
    model = fcnseg.load_model(args.model)
    dataset = build_dataset("camvid", args.root, "val", convention=model.meta.input_convention)
    results: dict = {
        "model": str(args.model),
        "split": "val",
        "images": len(dataset),
        "cpu": cpu_info(),
        "torch": torch.__version__,
        "load": machine_load(),
        "configurations": {},
    }
    print(f"{'test-time augmentation':28} {'views':>5} {'mean IU':>8} {'CPU s/image':>12}")
    for name, options in CONFIGURATIONS.items():
        tta = TestTimeAugmentation(model, **options)
        batches = _Timed(evaluation_loader(dataset))
        metrics = evaluate(tta, batches, model.num_classes)
        seconds = statistics.median(batches.seconds)
        results["configurations"][name] = {
            "views": tta.augmentation.views,
            **{key: metrics[key] for key in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")},
            "cpu_seconds_per_image_median": seconds,
        }
        print(
            f"{name:28} {tta.augmentation.views:>5} {100 * metrics['mean_iu']:>8.2f} "
            f"{seconds:>12.3f}",
            flush=True,
        )
    print(f"wrote {write_results(args.results, results)}")


if __name__ == "__main__":
    main()
