"""A training run as one self-contained HTML page: curves, held-out scores, the confusion
matrix and the images the model gets most and least right.

:func:`write_report` reads a run folder (``log.jsonl``, ``config.json`` and the checkpoints
:func:`fcnseg.train.fit` writes there; a staged run's stage folders one after another) and
writes one HTML file whose figures are PNGs embedded as base64, drawn with matplotlib:

* the training loss (each step, and its moving average) and the learning rate per step;
* the held-out metrics at each evaluation (pixel accuracy, mean accuracy, mean IU, frequency
  weighted IU, section 5);
* the IU of each class of the checkpoint reported (``best``, else ``last``);
* its confusion matrix, each row (a ground-truth class) normalised to sum to 1;
* a gallery of held-out images, image | ground truth | prediction, those with the highest
  and the lowest per-image mean IU, with the class colours in a legend.

The gallery and, where the run recorded none, the confusion matrix need the held-out images:
they are read as the run was configured (``root`` may point elsewhere) and scored one image
at a time in float32, as ``fcnseg eval`` scores them. Without them the page says why.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from fcnseg.data import build_dataset, colorize
from fcnseg.errors import FcnsegError
from fcnseg.evaluation import METRIC_NAMES
from fcnseg.io.atomic import atomic_write
from fcnseg.io.weights import ModelMeta, load_model
from fcnseg.models import head_scores
from fcnseg.train.checkpoint import CheckpointFiles

METRIC_LABELS = {
    "pixel_acc": "pixel accuracy",
    "mean_acc": "mean accuracy",
    "mean_iu": "mean IU",
    "fw_iu": "frequency weighted IU",
}
# Figures are drawn this wide (inches at DPI), to fit a 1280-pixel window with margins.
FIGURE_WIDTH, DPI = 11.0, 100
# Void pixels in the gallery: VOC's colour for them, since many palettes give black to a class.
VOID_COLOUR = (224, 224, 192)


@dataclass
class RunFolder:
    """What a run folder holds, a staged run's stages joined into one.

    Attributes:
        folder: the run folder.
        stages: the folders that trained, in order (the run folder itself for one net).
        log: every log entry, its ``iteration`` counted from the start of the first stage.
        boundaries: the iteration at which each stage after the first began.
        config: the training configuration (``config.json``), or None.
        checkpoint: the checkpoint reported: the last stage's ``best``, else its ``last``.
    """

    folder: Path
    stages: list[Path]
    log: list[dict[str, Any]]
    boundaries: list[int] = field(default_factory=list)
    config: dict[str, Any] | None = None
    checkpoint: Path | None = None


def read_run(folder: str | os.PathLike[str]) -> RunFolder:
    """Reads a run folder (or a staged run's, with ``stage1-*``, ``stage2-*``... inside).

    Raises:
        FcnsegError: the folder holds neither a run's log nor stages.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FcnsegError(f"{folder}: no such run folder")
    stages = sorted(
        (p for p in folder.glob("stage*-*") if (p / "log.jsonl").is_file()),
        key=lambda p: int(p.name[5:].split("-", 1)[0] or 0),
    )
    if (folder / "log.jsonl").is_file():
        stages = [folder]
    if not stages:
        # e.g. the demo's --out, whose run is in its run/ subfolder
        inside = sorted(
            p for p in folder.glob("*/log.jsonl") if not p.parent.name.startswith("stage")
        )
        hint = f"; the run folder inside it: {inside[0].parent}" if len(inside) == 1 else ""
        raise FcnsegError(f"{folder}: not a run folder (no log.jsonl, no stage folders){hint}")
    log: list[dict[str, Any]] = []
    boundaries = []
    offset = 0
    for number, stage in enumerate(stages):
        entries = _read_log(stage / "log.jsonl")
        if number:
            boundaries.append(offset)
        for entry in entries:
            log.append({**entry, "iteration": entry.get("iteration", 0) + offset, "stage": number})
        offset += max((e.get("iteration", 0) for e in entries), default=0)
    config = None
    for candidate in (folder / "config.json", stages[-1] / "config.json"):
        if candidate.is_file():
            try:
                config = json.loads(candidate.read_text())
            except json.JSONDecodeError as error:
                raise FcnsegError(f"{candidate}: not JSON ({error})") from None
            break
    checkpoint = None
    for stem in ("best", "last"):
        if CheckpointFiles.of(stages[-1] / stem).exists():
            checkpoint = stages[-1] / stem
            break
    return RunFolder(folder, stages, log, boundaries, config, checkpoint)


def _read_log(path: Path) -> list[dict[str, Any]]:
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            raise FcnsegError(f"{path}: line {number} is not JSON") from None
    return entries


# --- scoring held-out images --------------------------------------------------------------


@dataclass
class ImageScore:
    """One held-out image's score: its index, mean IU over the classes in its ground truth
    or prediction (void ignored), pixel accuracy, and its confusion histogram."""

    index: int
    mean_iu: float
    pixel_acc: float


@torch.no_grad()
def score_images(
    model: nn.Module,
    dataset: Dataset,
    num_classes: int,
    ignore_index: int = 255,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> tuple[list[ImageScore], np.ndarray]:
    """Scores every image of ``dataset`` alone, in float32 (as ``fcnseg eval`` does).

    Args:
        model: the net, in eval mode on the CPU.
        dataset: (image C x H x W, label [T x] H x W) pairs; the first task is scored.
        num_classes: K, the first head's classes.
        ignore_index: the void label.
        progress: wraps the image indices (a progress bar), or None.

    Returns:
        Each image's :class:`ImageScore`, and the K x K confusion histogram of all of them
        (rows the ground truth, columns the prediction).
    """
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    scores = []
    indices: Iterable[int] = range(len(dataset))  # type: ignore[arg-type]
    for index in progress(indices) if progress else indices:
        image, label = dataset[index]
        predicted = _predict(model, image)
        truth = (label[0] if label.dim() == 3 else label).numpy()
        hist = _histogram(predicted, truth, num_classes, ignore_index)
        total += hist
        scores.append(ImageScore(index, *_image_metrics(hist)))
    return scores, total


def _predict(model: nn.Module, image: torch.Tensor) -> np.ndarray:
    output = head_scores(model, model(image[None]))
    return next(iter(output.values()))[0].argmax(0).numpy()


def _histogram(pred: np.ndarray, truth: np.ndarray, k: int, ignore_index: int) -> np.ndarray:
    valid = (truth != ignore_index) & (truth >= 0) & (truth < k)
    pairs = k * truth[valid].astype(np.int64) + pred[valid].astype(np.int64)
    return np.bincount(pairs, minlength=k * k).reshape(k, k)


def _image_metrics(hist: np.ndarray) -> tuple[float, float]:
    diag = np.diag(hist).astype(np.float64)
    union = hist.sum(0) + hist.sum(1) - diag
    present = union > 0
    mean_iu = float((diag[present] / union[present]).mean()) if present.any() else math.nan
    pixels = hist.sum()
    return mean_iu, float(diag.sum() / pixels) if pixels else math.nan


def pick_gallery(scores: Sequence[ImageScore], count: int) -> list[tuple[str, ImageScore]]:
    """The ``count`` best and ``count`` worst images by mean IU (fewer when the set is small;
    an image is shown once), each labelled ``"best"`` or ``"worst"``."""
    ranked = sorted(
        (s for s in scores if not math.isnan(s.mean_iu)), key=lambda s: (-s.mean_iu, s.index)
    )
    best = ranked[: min(count, (len(ranked) + 1) // 2)]
    worst = [s for s in ranked[::-1][:count] if s not in best]
    return [("best", s) for s in best] + [("worst", s) for s in worst]


# --- figures --------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def _stage_lines(axes: Any, boundaries: Sequence[int]) -> None:
    for number, iteration in enumerate(boundaries, start=2):
        axes.axvline(iteration, color="0.6", linestyle="--", linewidth=1)
        axes.annotate(
            f"stage {number}",
            (iteration, 1),
            xycoords=("data", "axes fraction"),
            xytext=(3, -12),
            textcoords="offset points",
            fontsize=8,
            color="0.4",
        )


def plot_training(log: Sequence[Mapping[str, Any]], boundaries: Sequence[int] = ()) -> bytes:
    """The loss at each step with its moving average, and the learning rate, side by side."""
    plt = _pyplot()
    steps = [e for e in log if "loss" in e]
    iterations = np.array([e["iteration"] for e in steps])
    loss = np.array([e["loss"] for e in steps], dtype=np.float64)
    lr = np.array([e["lr"] for e in steps], dtype=np.float64)
    figure, (left, right) = plt.subplots(1, 2, figsize=(FIGURE_WIDTH, 3.6))
    window = max(1, len(loss) // 50)
    faint = {"alpha": 0.3, "linewidth": 0.8} if window > 1 else {}
    left.plot(iterations, loss, color="tab:blue", label="each step", **faint)
    if window > 1:
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        left.plot(
            iterations[window - 1 :], smooth, color="tab:blue", label=f"mean of {window} steps"
        )
    left.set(title="training loss", xlabel="iteration", ylabel="loss")
    if len(loss) and loss.min() > 0 and loss.max() / loss.min() > 100:
        left.set_yscale("log")
    left.legend(loc="upper right", fontsize=8)
    right.plot(iterations, lr, color="tab:orange")
    right.set(title="learning rate", xlabel="iteration", ylabel="base learning rate")
    positive = lr[lr > 0]
    if len(positive) and positive.max() / positive.min() > 100:
        right.set_yscale("log")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        _stage_lines(axes, boundaries)
    figure.tight_layout()
    return _png(figure)


def plot_held_out(log: Sequence[Mapping[str, Any]], boundaries: Sequence[int] = ()) -> bytes:
    """The four metrics of each held-out evaluation, in percent, against the iteration."""
    plt = _pyplot()
    evaluations = [e for e in log if "eval" in e]
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH, 3.8))
    for key in METRIC_NAMES:
        points = [
            (e["iteration"], 100 * e["eval"][key])
            for e in evaluations
            if e["eval"].get(key) is not None
        ]
        if points:
            x, y = zip(*points, strict=True)
            axes.plot(x, y, marker="o", markersize=4, label=METRIC_LABELS[key])
    axes.set(title="held-out metrics", xlabel="iteration", ylabel="percent")
    # the whole run and the whole scale, as the training curves: a run scored once (at its
    # end) is then a column of points at its last step, not points on a 10-step axis
    last = max((e["iteration"] for e in log if "iteration" in e), default=0)
    axes.set_xlim(0, max(1.0, 1.03 * last))
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    _stage_lines(axes, boundaries)
    figure.tight_layout()
    return _png(figure)


def plot_class_iu(iu: Mapping[str, float | None], palette: Sequence[Sequence[int]]) -> bytes:
    """One horizontal bar per class, its IU in percent (``n/a``: neither in the ground truth
    nor predicted), in the class's colour."""
    plt = _pyplot()
    names = list(iu)
    height = max(2.5, 0.32 * len(names) + 1.0)
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH, height))
    values = [0.0 if iu[n] is None else 100 * float(iu[n]) for n in names]  # type: ignore[arg-type]
    colours = [
        np.array(palette[i][:3]) / 255 if i < len(palette) else "0.5" for i in range(len(names))
    ]
    rows = np.arange(len(names))
    axes.barh(rows, values, color=colours, edgecolor="0.3", linewidth=0.5)
    for row, name in enumerate(names):
        text = "n/a" if iu[name] is None else f"{values[row]:.1f}"
        axes.text(values[row] + 0.8, row, text, va="center", fontsize=8)
    axes.set_yticks(rows, names, fontsize=8 if len(names) <= 40 else 6)
    axes.invert_yaxis()
    axes.set(xlim=(0, 105), xlabel="IU (percent)", title="IU per class")
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return _png(figure)


def plot_confusion(matrix: np.ndarray, names: Sequence[str]) -> bytes:
    """The confusion matrix as a heatmap, each row (a ground-truth class) divided by its
    pixels, so that row ``i`` shows where the pixels of class ``i`` went."""
    plt = _pyplot()
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = matrix.sum(1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    k = len(names)
    side = min(FIGURE_WIDTH, max(5.0, 0.45 * k + 2.5))
    figure, axes = plt.subplots(figsize=(side + 1.2, side))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    fontsize = 8 if k <= 30 else 5
    axes.set_xticks(range(k), names, rotation=60, ha="right", fontsize=fontsize)
    axes.set_yticks(range(k), names, fontsize=fontsize)
    axes.set(xlabel="predicted class", ylabel="ground-truth class")
    axes.set_title("confusion matrix (each row sums to 1)")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if rows[i, 0] > 0 and normalised[i, j] >= 0.005:
                    colour = "white" if normalised[i, j] > 0.6 else "black"
                    axes.text(
                        j,
                        i,
                        f"{100 * normalised[i, j]:.0f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color=colour,
                    )
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="fraction of the row")
    figure.tight_layout()
    return _png(figure)


@dataclass(frozen=True)
class GalleryRow:
    """One held-out image for the gallery: its RGB, ground truth and prediction (H x W class
    indices, void 255), and a title (over the image; "image" when empty)."""

    title: str
    rgb: np.ndarray
    truth: np.ndarray
    prediction: np.ndarray


def plot_gallery(
    rows: Sequence[GalleryRow],
    names: Sequence[str],
    palette: Sequence[Sequence[int]],
    panels: Sequence[str] = ("image", "ground truth", "prediction"),
) -> bytes:
    """Rows of titled panels (image | ground truth | prediction, and ``overlay`` if asked),
    the labels in the class colours, with a legend of the classes shown (and of void)."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    height, width = rows[0].rgb.shape[:2]
    panel_width = FIGURE_WIDTH / len(panels)
    # a panel is about 0.9 of its share of the width once spaced; 0.45 in for the titles
    row_height = 0.9 * panel_width * height / width + 0.45
    legend = 0.5  # inches above the rows
    figure, grid = plt.subplots(
        len(rows),
        len(panels),
        figsize=(FIGURE_WIDTH, row_height * len(rows) + legend),
        squeeze=False,
    )
    shown: set[int] = set()
    for row, axes in zip(rows, grid, strict=True):
        pictures = {
            "image": row.rgb,
            "ground truth": _colour(row.truth, palette),
            "prediction": _colour(row.prediction, palette),
            "overlay": _blend(row.rgb, row.prediction, palette),
        }
        for number, (panel, ax) in enumerate(zip(panels, axes, strict=True)):
            ax.imshow(pictures[panel], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(row.title if number == 0 and row.title else panel, fontsize=9)
        for label in (row.truth, row.prediction):
            shown.update(int(v) for v in np.unique(label) if v < len(names))
    handles = [
        Patch(facecolor=np.array(palette[i][:3]) / 255, edgecolor="0.3", label=names[i])
        for i in sorted(shown)
    ]
    handles.append(Patch(facecolor=np.array(VOID_COLOUR) / 255, edgecolor="0.3", label="void"))
    figure.legend(
        handles=handles,
        loc="upper center",
        ncol=min(len(handles), 8),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 1.0),
    )
    figure.tight_layout(rect=(0, 0, 1, 1 - legend / (row_height * len(rows) + legend)))
    return _png(figure)


def _colour(label: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    rgb = np.array(colorize(label, [tuple(c[:3]) for c in palette]).convert("RGB"))
    rgb[(label < 0) | (label >= len(palette))] = VOID_COLOUR
    return rgb


def _blend(rgb: np.ndarray, label: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    colours = _colour(label, palette).astype(np.float32)
    blended = 0.5 * rgb.astype(np.float32) + 0.5 * colours
    void = label >= len(palette)
    blended[void] = rgb[void]
    return blended.astype(np.uint8)


def gallery_rows(
    model: nn.Module, dataset: Dataset, picks: Sequence[tuple[str, ImageScore]]
) -> list[GalleryRow]:
    """The gallery's rows for the picked images: image, truth and the model's prediction."""
    convention = getattr(dataset, "convention", None) or dataset.info.convention  # type: ignore[attr-defined]
    samples = getattr(dataset, "samples", None)
    rows = []
    with torch.no_grad():
        for kind, score in picks:
            image, label = dataset[score.index]
            truth = (label[0] if label.dim() == 3 else label).numpy()
            name = f"#{score.index}"
            if samples is not None and hasattr(samples[score.index], "name"):
                name = str(samples[score.index].name)
            title = (
                f"{kind}: {name} (mean IU {100 * score.mean_iu:.1f}%, "
                f"pixel acc. {100 * score.pixel_acc:.1f}%)"
            )
            rows.append(
                GalleryRow(title, convention.deprocess(image), truth, _predict(model, image))
            )
    return rows


# --- the page -------------------------------------------------------------------------------


@dataclass
class Section:
    """A part of the page: a heading, a figure (PNG bytes) or a note, and a caption."""

    title: str
    png: bytes | None = None
    caption: str = ""
    note: str = ""


# The page checks itself once loaded: every figure decoded, none wider than the window. The
# result is written on <body> (data-figures, data-rendered, data-overflow, and data-height, the
# page's height), where a headless browser's DOM dump (the tests' screenshot check) reads it.
_CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.querySelectorAll("img.figure"));
  var rendered = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var width = document.documentElement.clientWidth;
  var overflow = images.filter(function (i) {
    return i.getBoundingClientRect().right > width + 1;
  }).length;
  if (document.documentElement.scrollWidth > width + 1) { overflow += 1; }
  document.body.setAttribute("data-figures", images.length);
  document.body.setAttribute("data-rendered", rendered.length);
  document.body.setAttribute("data-overflow", overflow);
  document.body.setAttribute("data-height", document.documentElement.scrollHeight);
});
"""

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0;
       background: #f4f5f7; color: #1f2328; }
main { max-width: 1160px; margin: 0 auto; padding: 24px 28px 48px; background: white; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #d0d7de;
     padding-bottom: 4px; }
p, li, td, th, figcaption { font-size: 14px; line-height: 1.45; }
.muted { color: #57606a; }
img.figure { display: block; max-width: 100%; height: auto; margin: 8px 0; }
figure { margin: 0; }
figcaption { color: #57606a; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { padding: 3px 12px 3px 0; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { font-size: 12px; background: #f6f8fa; padding: 8px; overflow-x: auto;
      white-space: pre-wrap; word-break: break-all; }
.note { background: #fff8c5; padding: 8px 12px; border-radius: 4px; }
"""


def render_html(
    title: str, summary: Sequence[tuple[str, str]], sections: Sequence[Section], config: str
) -> str:
    """The page: a title, a summary table, the sections, the configuration; no external
    resource (figures are inline PNGs)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        f"<script>{_CHECK_SCRIPT}</script>",
        "</head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
        "<table>",
    ]
    for key, value in summary:
        parts.append(f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>")
    parts.append("</table>")
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.note:
            parts.append(f'<p class="note">{html.escape(section.note)}</p>')
        if section.png is not None:
            data = base64.b64encode(section.png).decode("ascii")
            parts.append(
                f'<figure><img class="figure" alt="{html.escape(section.title)}" '
                f'src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(section.caption)}</figcaption></figure>"
            )
    parts.append("<h2>Configuration</h2>")
    parts.append("<details><summary>the training configuration (config.json)</summary>")
    parts.append(f"<pre>{html.escape(config)}</pre></details>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _percent(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.2f}%"


def held_out_dataset(
    meta: ModelMeta, config: Mapping[str, Any] | None, root: str | None, split: str | None
) -> tuple[Dataset | None, str]:
    """The held-out split the run was scored on (``split`` and ``root`` override the run's),
    in the weights' input convention; or None and why not."""
    config = config or {}
    split = split or config.get("val_split")
    if not split:
        return None, "the run has no held-out split (give --split)"
    name = config.get("val_dataset") or config.get("dataset") or meta.dataset
    if not name:
        return None, "the weights do not say which dataset they were trained on"
    folder = root or config.get("val_root") or config.get("root") or "."
    options = dict(config.get("dataset_options") or {}) if not config.get("val_dataset") else {}
    try:
        dataset = build_dataset(name, folder, split, convention=meta.input_convention, **options)
    except FcnsegError as error:
        return None, f"the held-out images could not be read ({error}); give --root"
    return dataset, ""


def write_report(
    run: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    dataset: Dataset | None = None,
    root: str | None = None,
    split: str | None = None,
    gallery: int = 4,
    progress: Callable[[Iterable[int]], Iterable[int]] | None = None,
) -> Path:
    """Writes the HTML report of the run in ``run``.

    Args:
        run: the run folder (``fcnseg train --out``), or a staged run's folder.
        out: the HTML file; ``run/report.html`` by default.
        dataset: the held-out images; by default the run's held-out split as configured.
        root: the held-out dataset's folder, if it has moved since the run.
        split: the split to score for the gallery, if not the run's held-out split.
        gallery: how many best and how many worst images to show.
        progress: wraps the indices of the images scored (a progress bar), or None.

    Returns:
        The HTML file written.

    Raises:
        FcnsegError: ``run`` is not a run folder, or its checkpoint cannot be read.
    """
    record = read_run(run)
    target = Path(out) if out is not None else record.folder / "report.html"
    sections: list[Section] = []
    steps = [e for e in record.log if "loss" in e]
    if steps:
        sections.append(
            Section(
                "Training",
                plot_training(record.log, record.boundaries),
                f"{len(steps)} steps; the loss of each step and its moving average, and the "
                "base learning rate (biases train at twice it)"
                + ("; dashed lines: the start of each stage" if record.boundaries else ""),
            )
        )
    if any("eval" in e for e in record.log):
        sections.append(
            Section(
                "Held-out metrics",
                plot_held_out(record.log, record.boundaries),
                "each evaluation on the held-out split, whole images one at a time in "
                "float32 (as fcnseg eval scores a checkpoint)",
            )
        )
    else:
        sections.append(Section("Held-out metrics", note="the run recorded no evaluation"))

    meta: ModelMeta | None = None
    model = None
    if record.checkpoint is not None:
        model = load_model(record.checkpoint)
        meta = model.meta
    config = record.config or (dict(meta.config) if meta and meta.config else None)
    summary = [("run", str(record.folder.resolve()))]
    metrics: Mapping[str, Any] | None = meta.metrics if meta else None
    if meta is not None:
        summary += [
            ("model", f"{meta.model} ({', '.join(f'{k} {v}' for k, v in meta.build.items())})"),
            ("dataset", f"{meta.dataset or 'n/a'}, {meta.num_classes} classes"),
            ("checkpoint", f"{record.checkpoint} (iteration {meta.iteration})"),
        ]
    if len(record.stages) > 1:
        summary.append(("stages", ", ".join(p.name for p in record.stages)))

    scores: list[ImageScore] = []
    confusion = None
    if metrics and metrics.get("confusion") is not None:
        confusion = np.asarray(metrics["confusion"], dtype=np.int64)
    why_not = "no checkpoint in the run folder"
    if model is not None and meta is not None:
        if dataset is None:
            dataset, why_not = held_out_dataset(meta, config, root, split)
        if dataset is not None:
            scores, scored_confusion = score_images(
                model, dataset, meta.num_classes, meta.ignore_index, progress
            )
            if confusion is None or split is not None:
                confusion = scored_confusion
            summary.append(("held-out images", f"{len(scores)} scored for the gallery"))
    if metrics:
        summary += [(METRIC_LABELS[k], _percent(metrics.get(k))) for k in METRIC_NAMES]

    if meta is not None and metrics and metrics.get("iu"):
        sections.append(
            Section(
                "IU per class",
                plot_class_iu(metrics["iu"], meta.palette),
                f"the checkpoint reported (iteration {meta.iteration}); n/a: a class neither in "
                "the ground truth nor predicted",
            )
        )
    if confusion is not None and meta is not None:
        sections.append(
            Section(
                "Confusion matrix",
                plot_confusion(confusion, meta.classes[: len(confusion)]),
                "rows: the ground truth, columns: the prediction; each cell the fraction of the "
                "row's pixels, in percent (void ignored)",
            )
        )
    if scores and model is not None and meta is not None and dataset is not None:
        picks = pick_gallery(scores, gallery)
        rows = gallery_rows(model, dataset, picks)
        sections.append(
            Section(
                "Best and worst held-out images",
                plot_gallery(rows, meta.classes, meta.palette),
                "by the per-image mean IU (over the classes in the image's ground truth or "
                "prediction); void pixels are not scored",
            )
        )
    else:
        sections.append(Section("Best and worst held-out images", note=why_not))

    title = f"fcnseg report: {record.folder}"
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    summary.append(("report written", when))
    text = json.dumps(config, indent=2) if config else "not recorded"
    page = render_html(title, summary, sections, text)
    atomic_write(target, page.encode())
    return target
