"""CamVid models on ``val`` under shifts of light and scale: a stand-in for other drives.

Every ``val`` frame comes from the drive that also gives most ``train`` frames, while
``test`` is mostly other drives (docs/camvid.md). What a model does on other streets cannot be
measured here, but two ways those streets differ can be put on the ``val`` frames: the light
(brightness and contrast of the whole frame) and the distance to things (the frame rescaled,
its labels with it by nearest neighbour, scored at the new size). Each model is scored on the
unchanged frames and under each shift, with the paper's mean IU, void ignored; the mean over
the shifts is a model's robustness figure. A model that holds its score under these shifts is
more likely to hold it on other drives; it is no measurement of ``test``.

Run from the repository root::

    python benchmarks/camvid_shift.py --model camvid-fcn8s \\
        --model runs/camvid-v2-train/stage3-fcn8s-vgg16/last
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from fcnseg.data import build_dataset
from fcnseg.evaluation import evaluate, evaluation_loader
from fcnseg.io.weights import load_model
from fcnseg.runtime import cpu_info

REPO = Path(__file__).resolve().parent.parent
# name: (brightness factor, contrast factor, scale factor)
SHIFTS = {
    "none": (1.0, 1.0, 1.0),
    "darker (brightness x0.6)": (0.6, 1.0, 1.0),
    "brighter (brightness x1.4)": (1.4, 1.0, 1.0),
    "flat (contrast x0.6)": (1.0, 0.6, 1.0),
    "further (scale x0.7)": (1.0, 1.0, 0.7),
    "nearer (scale x1.4)": (1.0, 1.0, 1.4),
}


class Shifted(Dataset):
    """``dataset``'s frames with the light and scale of one shift: each image back to raw
    colours (its input convention), changed, and preprocessed again; labels rescaled by
    nearest neighbour."""

    def __init__(self, dataset: Dataset, shift: tuple[float, float, float]) -> None:
        self.dataset = dataset
        self.info = dataset.info  # type: ignore[attr-defined]
        self.convention = dataset.convention  # type: ignore[attr-defined]
        self.brightness, self.contrast, self.scale = shift

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, label = self.dataset[index]
        raw = self.convention.deprocess(image).astype(np.float32)  # H x W x 3 RGB, 0-255
        raw = np.clip(raw * self.brightness, 0, 255)
        grey = raw.mean()
        raw = np.clip((raw - grey) * self.contrast + grey, 0, 255)
        if self.scale != 1.0:
            height, width = label.shape
            size = (round(width * self.scale), round(height * self.scale))
            raw = np.asarray(
                Image.fromarray(raw.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR),
                dtype=np.float32,
            )
            label_image = Image.fromarray(label.numpy().astype(np.uint8))
            label = torch.from_numpy(
                np.asarray(label_image.resize(size, Image.Resampling.NEAREST)).astype(np.int64)
            )
        return self.convention.preprocess(raw), label


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        help="a shipped model's name or a checkpoint; give several to compare them",
    )
    parser.add_argument(
        "--root",
        default=str(REPO.parent / "shared" / "data" / "camvid"),
        help="the CamVid folder (default: ../shared/data/camvid)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument(
        "--results",
        default="benchmarks/results/camvid-shift.json",
        help="the JSON results (default: benchmarks/results/camvid-shift.json)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cpu = cpu_info()
    print("CPU:", json.dumps(cpu), flush=True)
    if not Path(args.root).is_dir():
        print(f"{args.root}: no CamVid folder", file=sys.stderr)
        return 1
    val = build_dataset("camvid", args.root, "val")
    info = val.info  # type: ignore[attr-defined]
    scores: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    for spec in args.model:
        model = load_model(spec)
        val.convention = model.meta.input_convention  # type: ignore[attr-defined]
        scores[spec] = {}
        for name, shift in SHIFTS.items():
            metrics = evaluate(
                model,
                evaluation_loader(Shifted(val, shift), batch_size=1),
                info.num_classes,
                ignore_index=info.ignore_index,
            )
            scores[spec][name] = float(metrics["mean_iu"])
            print(f"{spec}: {name}: mean IU {100 * metrics['mean_iu']:.2f}", flush=True)
        shifted = [value for name, value in scores[spec].items() if name != "none"]
        scores[spec]["mean over shifts"] = float(np.mean(shifted))
    print("\nCamVid val, mean IU (percent) under each shift")
    width = max(len(name) for name in [*SHIFTS, "mean over shifts"])
    header = f"{'':<{width}}  " + "  ".join(f"{i + 1:>8}" for i in range(len(args.model)))
    print(header)
    for name in [*SHIFTS, "mean over shifts"]:
        cells = "  ".join(f"{100 * scores[spec][name]:8.2f}" for spec in args.model)
        print(f"{name:<{width}}  {cells}")
    for i, spec in enumerate(args.model, start=1):
        print(f"{i}: {spec}")
    results = {
        "cpu": cpu,
        "command": " ".join(["python", "benchmarks/camvid_shift.py", *(argv or sys.argv[1:])]),
        "shifts": {
            name: dict(zip(("brightness", "contrast", "scale"), v, strict=True))
            for name, v in SHIFTS.items()
        },
        "mean_iu": scores,
        "seconds": time.perf_counter() - start,
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
