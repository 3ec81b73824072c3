"""The demo: an FCN-8s trained from scratch on generated shapes, on a CPU, in about a minute.

No download and no argument: the images are generated on the fly
(:mod:`fcnseg.data.synthetic`), a small batch-normalised FCN-8s is trained by the ``scratch``
recipe, then scored on held-out generated images with the paper's four metrics, and the run's
HTML report (:mod:`fcnseg.report`) is written beside them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fcnseg.data import SYNTHETIC, SyntheticShapes, synthetic_dataset
from fcnseg.evaluation import format_table, write_metrics
from fcnseg.io.atomic import atomic_write
from fcnseg.models import FCN
from fcnseg.report import GalleryRow, plot_gallery, write_report
from fcnseg.train import CheckpointFiles, TrainConfig, fit, recipe
from fcnseg.train.recipes import recipe_settings


@dataclass(frozen=True)
class DemoSettings:
    """The demo's data and schedule.

    Attributes:
        size: generated images are ``size`` x ``size`` pixels.
        max_iter: training steps of ``batch_size`` images.
        batch_size: images per step.
        lr: Adam's learning rate (poly decay to 0).
        overlays: held-out images drawn as overlays.
        threads: torch's CPU threads (1 is the fastest on a busy 2-core machine).
        seed: picks the images and every random draw of training.
    """

    size: int = 80
    max_iter: int = 350
    batch_size: int = 16
    lr: float = 1e-2
    overlays: int = 8
    threads: int = 1
    seed: int = 0


def demo_config(settings: DemoSettings) -> TrainConfig:
    """The scratch recipe as the demo runs it: evaluated once, at the end."""
    return recipe(
        "scratch",
        "fcn8s-vgg16",
        dataset=SYNTHETIC,
        dataset_options={"seed": settings.seed, "size": settings.size},
        val_split="test",
        batch_size=settings.batch_size,
        max_iter=settings.max_iter,
        eval_every=0,
        lr=settings.lr,
        seed=settings.seed,
        device="cpu",
    )


def demo_plan(config: TrainConfig, train_images: int, test_images: int, run: Path) -> str:
    """What the demo is about to do, in two lines (printed first)."""
    width = (config.backbone or {}).get("width", 1.0)
    base = recipe_settings(config.recipe, config.model)
    words = {"max_iter": "steps", "batch_size": "batch size", "lr": "rate"}
    changed = [word for key, word in words.items() if base.get(key) != getattr(config, key)]
    recipe_note = f"recipe '{config.recipe}'" + (
        f" with the demo's {', '.join(changed)}" if changed else ""
    )
    return (
        f"training {config.model} at {width:g} of VGG16's width from random weights on "
        f"{train_images} generated images, {config.max_iter} steps of {config.batch_size} "
        f"({config.optimizer}, lr {config.lr:g}, {config.lr_policy} decay); scoring "
        f"{test_images} held-out images\n"
        f"the whole configuration: {run / 'config.json'} ({recipe_note})"
    )


def run_demo(
    out: str | Path, settings: DemoSettings = DemoSettings(), *, progress: bool = True
) -> dict[str, Any]:
    """Trains, scores, prints the per-class table, writes ``metrics.json``, overlays and
    the run's report.

    Args:
        out: the output folder: ``metrics.json``, ``overlays/``, ``report.html``, the run in
            ``run/``.
        settings: the demo's data and schedule.
        progress: show a progress bar.

    Returns:
        The metrics written to ``metrics.json``.
    """
    start = time.perf_counter()
    out = Path(out)
    _clear_run(out / "run")
    threads = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        # the splits `fcnseg eval --dataset synthetic --split test` reads too
        train = synthetic_dataset(None, "train", seed=settings.seed, size=settings.size)
        test = synthetic_dataset(None, "test", seed=settings.seed, size=settings.size)
        config = demo_config(settings)
        print(demo_plan(config, len(train), len(test), out / "run"), flush=True)
        result = fit(config, out / "run", train_set=train, val_set=test, progress=progress)
        overlays = write_overlays(result.model, test, out / "overlays", settings.overlays)
        report = write_report(out / "run", out / "report.html", dataset=test)
    finally:
        torch.set_num_threads(threads)
    assert result.metrics is not None
    record = {
        **result.metrics,
        "seconds": round(time.perf_counter() - start, 1),
        "test_images": len(test),
        "checkpoint": str(out / "run" / "last.safetensors"),
    }
    write_metrics(out / "metrics.json", record)
    print(format_table(record, test.info.class_names))
    print(f"wrote {out / 'metrics.json'}, {len(overlays)} overlays in {out / 'overlays'}")
    print(f"wrote {report}: curves, per-class IU, confusion matrix, best and worst images")
    return record


def _clear_run(folder: Path) -> None:
    # A demo run starts afresh: the files of the previous demo's run go, nothing else.
    if not folder.is_dir():
        return
    for stem in ("best", "last"):
        files = CheckpointFiles.of(folder / stem)
        for path in (files.weights, files.weights.with_suffix(".json"), files.state):
            path.unlink(missing_ok=True)
    for name in ("log.jsonl", "config.json"):
        (folder / name).unlink(missing_ok=True)


@torch.no_grad()
def write_overlays(model: FCN, dataset: SyntheticShapes, folder: Path, count: int) -> list[Path]:
    """Image, ground truth, prediction and prediction over the image, titled, enlarged (pixels
    kept sharp) and with a legend of the class colours, for the first ``count`` images."""
    folder.mkdir(parents=True, exist_ok=True)
    model.eval()
    info = dataset.info
    paths = []
    for index in range(min(count, len(dataset))):
        image, label = dataset[index]
        prediction = model(image[None]).argmax(1)[0]
        row = GalleryRow(
            f"test image {index}",
            dataset.convention.deprocess(image),
            label.numpy(),
            prediction.numpy(),
        )
        png = plot_gallery(
            [row],
            info.class_names,
            info.palette,
            panels=("image", "ground truth", "prediction", "overlay"),
        )
        path = folder / f"test_{index:02d}.png"
        atomic_write(path, png)
        paths.append(path)
    return paths
