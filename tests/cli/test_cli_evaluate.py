"""``fcnseg eval``: metrics.json and the table, and the errors a user can cause."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_error_line
from PIL import Image

import fcnseg
from fcnseg.cli import main
from fcnseg.data import build_dataset
from fcnseg.data.synthetic import SYNTHETIC_CLASSES
from fcnseg.evaluation import evaluate, evaluation_loader


def eval_args(checkpoint: Path, root: Path, out: Path) -> list[str]:
    return [
        "eval",
        "--model",
        str(checkpoint),
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--split",
        "val",
        "--out",
        str(out),
        "--no-progress",  # the bar would share stderr with the one error line
    ]


def test_eval_writes_the_four_metrics_and_prints_per_class_iu(
    checkpoint: Path,
    folder_dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    metrics_check,
) -> None:
    assert main(eval_args(checkpoint, folder_dataset, tmp_path / "out")) == 0
    record = json.loads((tmp_path / "out" / "metrics.json").read_text())
    # the confusion matrix's rows are the masks' pixels, and the metrics its, by definition
    masks = [np.asarray(Image.open(p)) for p in sorted(folder_dataset.glob("masks/val/*.png"))]
    metrics_check(record, np.concatenate([m[m != 255] for m in masks]))
    assert list(record["iu"]) == list(SYNTHETIC_CLASSES)

    # the same numbers as the library computes them, the images in the weights' convention
    model = fcnseg.load_model(checkpoint)
    convention = model.meta.input_convention
    dataset = build_dataset("folder", folder_dataset, "val", convention=convention)
    expected = evaluate(model, evaluation_loader(dataset), 6)
    assert record["mean_iu"] == pytest.approx(expected["mean_iu"])
    assert record["pixel_acc"] == pytest.approx(expected["pixel_acc"])

    printed = capsys.readouterr().out
    for name in SYNTHETIC_CLASSES:
        assert name in printed
    assert "mean_iu" in printed


def test_eval_without_out_prints_the_table_and_writes_nothing(
    checkpoint: Path,
    folder_dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    args = eval_args(checkpoint, folder_dataset, tmp_path / "out")
    at = args.index("--out")
    assert main(args[:at] + args[at + 2 :]) == 0
    printed = capsys.readouterr().out
    assert "mean_iu" in printed and "wrote" not in printed
    assert list(cwd.iterdir()) == [] and not (tmp_path / "out").exists()
    # with --out, the same numbers go to metrics.json, replacing an earlier one whole
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.json").write_text("{}")
    assert main(args) == 0
    table = capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert f"{100 * record['mean_iu']:.2f}" in printed and table.startswith(printed.rstrip())
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["metrics.json"]


def test_label_value_beyond_the_classes_is_one_line_naming_the_file(
    checkpoint: Path, folder_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    mask = folder_dataset / "masks" / "val" / "img1.png"
    label = np.asarray(Image.open(mask)).copy()
    label[5, 5] = 9
    Image.fromarray(label).save(mask)
    assert main(eval_args(checkpoint, folder_dataset, tmp_path / "out")) == 1
    line = one_error_line(capsys.readouterr().err)
    assert str(mask) in line and "label value 9" in line


def test_image_and_label_of_different_sizes_is_one_line(
    checkpoint: Path, folder_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    mask = folder_dataset / "masks" / "val" / "img2.png"
    Image.open(mask).crop((0, 0, 30, 40)).save(mask)
    assert main(eval_args(checkpoint, folder_dataset, tmp_path / "out")) == 1
    line = one_error_line(capsys.readouterr().err)
    assert str(mask) in line


def test_missing_model_and_other_class_count_are_one_line(
    checkpoint: Path, folder_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "nothing.safetensors"
    assert main(eval_args(missing, folder_dataset, tmp_path / "out")) == 1
    assert str(missing) in one_error_line(capsys.readouterr().err)

    (folder_dataset / "classes.txt").write_text("background\nthing\nother\n")
    assert main(eval_args(checkpoint, folder_dataset, tmp_path / "out")) == 1
    line = one_error_line(capsys.readouterr().err)
    assert str(checkpoint) in line and "weights for 6 classes, dataset 'folder' has 3" in line
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.parametrize("size", ["0", "-1"])
def test_a_batch_size_below_one_is_one_line(
    size: str, checkpoint: Path, folder_dataset: Path, tmp_path: Path, capsys
) -> None:
    # once torch's sampler's ValueError, with a traceback
    args = eval_args(checkpoint, folder_dataset, tmp_path / "out")
    assert main([*args, "--batch-size", size]) == 1
    assert f"--batch-size must be at least 1, got {size}" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "out" / "metrics.json").exists()
