"""The multi-task nets from the command line: dataset options, two heads in eval and predict."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from cli_helpers import checkpoint_meta, one_error_line
from PIL import Image

import fcnseg
from fcnseg.cli import build_parser, main
from fcnseg.cli.train import config_from_args
from fcnseg.data import SIFTFLOW_GEOMETRIC_INFO, nyud_info
from fcnseg.train.checkpoint import save_checkpoint

TINY = ["--width", "0.125", "--fc-width", "16", "--batch-size", "2", "--no-progress"]


def _multitask_data() -> ModuleType:
    # The SIFT Flow and NYUDv2 writers of the training tests (another test folder).
    path = Path(__file__).parents[1] / "train" / "multitask_data.py"
    spec = importlib.util.spec_from_file_location("fcnseg_test_multitask_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


data = _multitask_data()


def test_dataset_options_reach_the_config(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "train",
            "--out",
            str(tmp_path),
            "--dataset",
            "nyud",
            "--root",
            str(tmp_path),
            "--model",
            "fcn32s-rgb-hha-vgg16",
            "--dataset-option",
            "modality=color-hha",
            "--dataset-option",
            "note=a=b",
        ]
    )
    config = config_from_args(args)
    assert config.dataset_options == {"modality": "color-hha", "note": "a=b"}
    assert config.model == "fcn32s-rgb-hha-vgg16"


def test_dataset_option_mistakes_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = data.nyud_root(tmp_path)
    train = ["train", "--dataset", "nyud", "--root", str(root), "--out", str(tmp_path / "r")]
    assert main([*train, "--dataset-option", "modality"]) == 1
    assert "KEY=VALUE" in one_error_line(capsys.readouterr().err)
    assert main([*train, "--dataset-option", "colour=hha", *TINY]) == 1
    assert "has no option 'colour'" in one_error_line(capsys.readouterr().err)
    assert main([*train, "--dataset-option", "modality=rgb", *TINY]) == 1
    assert "modality 'rgb' unknown" in one_error_line(capsys.readouterr().err)
    # An RGB-D checkpoint (eval loads the model first, then reads the dataset in its convention)
    model = fcnseg.build_model(
        "fcn32s-rgbd-vgg16", num_classes=40, geometry="lean", width=1 / 8, fc_width=16
    )
    backbone = {"width": 1 / 8, "fc_width": 16}
    metadata = checkpoint_meta("fcn32s-rgbd-vgg16", 40, "lean", backbone, nyud_info("color-depth"))
    save_checkpoint(tmp_path / "rgbd" / "best", model, metadata)
    rgbd = str(tmp_path / "rgbd" / "best.safetensors")
    evaluate = ["eval", "--model", rgbd, "--dataset", "nyud", "--root", str(root), "--no-progress"]
    assert main([*evaluate, "--out", str(tmp_path), "--dataset-option", "colour=hha"]) == 1
    assert "has no option 'colour'" in one_error_line(capsys.readouterr().err)

    # ...scored on the colour images alone.
    assert main([*evaluate, "--split", "val", "--out", str(tmp_path)]) == 1
    assert "takes 4 input channels" in one_error_line(capsys.readouterr().err)


def test_siftflow_two_heads_train_eval_predict(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = data.siftflow_root(tmp_path)
    run = tmp_path / "run"
    options = ["--dataset-option", "task=both"]
    assert (
        main(
            [
                "train",
                "--dataset",
                "siftflow",
                "--root",
                str(root),
                "--model",
                "fcn8s-siftflow-vgg16",
                "--recipe",
                "scratch",
                "--train-split",
                "trainval",
                "--val-split",
                "test",
                "--max-iter",
                "1",
                "--out",
                str(run),
                *options,
                *TINY,
            ]
        )
        == 0
    )
    summary = capsys.readouterr().out.splitlines()[-1]
    assert (
        summary.startswith("mean IU")
        and "(sem)," in summary
        and "(geo) on 'test' at iteration 1" in summary
    )

    checkpoint = str(run / "last.safetensors")
    evaluate = ["eval", "--model", checkpoint, "--dataset", "siftflow", "--root", str(root)]
    evaluate.append("--no-progress")  # the bar would share stderr with the one error line
    assert main([*evaluate, "--split", "test", "--out", str(tmp_path / "eval"), *options]) == 0
    table = capsys.readouterr().out
    assert "[sem]" in table and "[geo]" in table and "horizontal" in table
    record = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert list(record["heads"]["geo"]["iu"]) == list(SIFTFLOW_GEOMETRIC_INFO.class_names)
    assert record["mean_iu"] == record["heads"]["sem"]["mean_iu"]
    assert record["dataset_options"] == {"task": "both"}

    # Without task=both the labels are one per pixel: a clear error, not a traceback.
    assert main([*evaluate, "--split", "test", "--out", str(tmp_path / "eval")]) == 1
    assert "task=both" in one_error_line(capsys.readouterr().err)

    image = tmp_path / "street.png"
    Image.fromarray(np.full((20, 24, 3), 90, dtype=np.uint8)).save(image)
    out = tmp_path / "predicted"
    assert main(["predict", str(image), "--model", checkpoint, "--out", str(out)]) == 0
    geometric = np.asarray(Image.open(out / "street_geo.png"))
    assert geometric.shape == (20, 24) and geometric.max() < 3
    assert (out / "street.png").exists() and (out / "street_overlay.png").exists()
