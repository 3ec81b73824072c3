"""``fcnseg train``: a recipe with flags over it, resuming, and a user's mistakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import one_error_line

from fcnseg.cli import main
from fcnseg.train import load_checkpoint
from fcnseg.train.log import read_log

TINY = ["--width", "0.0625", "--fc-width", "16", "--batch-size", "2", "--no-progress"]


def scratch_run(out: Path) -> list[str]:
    """``fcnseg train``'s arguments for a tiny scratch run on synthetic data into ``out``."""
    return ["train", "--dataset", "synthetic", "--recipe", "scratch", "--out", str(out), *TINY]


def one_step_run(out: Path) -> None:
    """Trains the tiny scratch run one step into ``out``, to be resumed."""
    assert main([*scratch_run(out), "--max-iter", "1", "--eval-every", "0"]) == 0


def test_train_then_resume_from_the_command_line(tmp_path: Path, metrics_check) -> None:
    out = tmp_path / "run"
    args = scratch_run(out)
    assert main([*args, "--max-iter", "2", "--eval-every", "2", "--jitter", "8"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"] == {"width": 0.0625, "fc_width": 16, "batch_norm": True}
    assert config["jitter"] == 8 and config["recipe"] == "scratch" and config["lr_policy"] == "poly"
    metadata = load_checkpoint(out / "last")[1]
    assert metadata.iteration == 2
    # the checkpoint holds the evaluation the log recorded at step 2, on the 6 classes
    evaluations = [e for e in read_log(out) if "eval" in e]
    assert [e["iteration"] for e in evaluations] == [2]
    assert metadata.metrics == evaluations[0]["eval"]
    assert len(metadata.metrics["confusion"]) == 6
    metrics_check(metadata.metrics)

    assert main(["train", "--resume", "--out", str(out), "--max-iter", "3", "--no-progress"]) == 0
    assert load_checkpoint(out / "last")[1].iteration == 3
    assert [e["iteration"] for e in read_log(out) if "loss" in e] == [1, 2, 3]


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "VOCdevkit"
    args = ["train", "--dataset", "voc", "--root", str(missing), "--out", str(tmp_path / "r")]
    assert main(args) == 1
    assert str(missing) in one_error_line(capsys.readouterr().err)

    assert main(["train", "--resume", "--out", str(tmp_path / "empty")]) == 1
    assert "nothing to resume" in one_error_line(capsys.readouterr().err)

    args = [
        "train",
        "--dataset",
        "synthetic",
        "--out",
        str(tmp_path / "w"),
        "--class-weights",
        "1,2",
        *TINY,
    ]
    assert main(args) == 1
    assert "2 class weights given for 6 classes" in one_error_line(capsys.readouterr().err)


def test_recipe_values_reach_the_config(tmp_path: Path) -> None:
    from fcnseg.cli import build_parser
    from fcnseg.cli.train import config_from_args

    parser = build_parser()
    heavy = config_from_args(
        parser.parse_args(
            [
                "train",
                "--dataset",
                "voc",
                "--root",
                ".",
                "--out",
                "x",
                "--model",
                "fcn16s-vgg16",
                "--recipe",
                "heavy",
            ]
        )
    )
    assert (heavy.lr, heavy.momentum, heavy.batch_size, heavy.loss_normalize) == (
        1e-12,
        0.99,
        1,
        "sum",
    )
    sampled = config_from_args(
        parser.parse_args(
            [
                "train",
                "--dataset",
                "voc",
                "--root",
                ".",
                "--out",
                "x",
                "--loss-sampling",
                "0.5",
                "--class-weights",
                "median",
                "--no-val",
            ]
        )
    )
    assert sampled.loss_sampling == 0.5 and sampled.accumulation == 2
    assert sampled.median_frequency and sampled.val_split is None


def test_held_out_dataset_must_match_the_training_one(
    folder_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # the folder dataset has the synthetic classes but the ILSVRC mean
    args = [
        "train",
        "--dataset",
        "synthetic",
        "--val-dataset",
        "folder",
        "--val-root",
        str(folder_dataset),
        "--out",
        str(tmp_path / "r"),
        "--max-iter",
        "1",
        *TINY,
    ]
    assert main(args) == 1
    line = one_error_line(capsys.readouterr().err)
    assert str(folder_dataset) in line and "classes or mean" in line


def test_ohem_flags_reach_the_run_and_a_resume_may_not_change_them(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    args = scratch_run(out)
    ohem = ["--ohem-thresh", "0.7", "--ohem-min-kept", "50"]
    assert main([*args, *ohem, "--max-iter", "2", "--eval-every", "0"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["ohem_thresh"], config["ohem_min_kept"]) == (0.7, 50)
    losses = [e["loss"] for e in read_log(out) if "loss" in e]
    assert len(losses) == 2 and all(loss > 0 for loss in losses)

    resume = ["train", "--resume", "--out", str(out), "--max-iter", "3", "--no-progress"]
    assert main([*resume, "--ohem-thresh", "0.5"]) == 1
    assert "--ohem-thresh 0.5 (saved 0.7)" in one_error_line(capsys.readouterr().err)
    assert main(["train", *args[1:], "--ohem-thresh", "1.5", "--out", str(tmp_path / "b")]) == 1
    assert "--ohem-thresh must be in (0, 1]" in one_error_line(capsys.readouterr().err)
    assert main(["train", *args[1:], "--ohem-min-kept", "9", "--out", str(tmp_path / "c")]) == 1
    assert "give both" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--lr", "nan"], "--lr must be a finite number above 0, got nan"),
        (["--lr", "-1"], "--lr must be a finite number above 0, got -1.0"),
        (["--momentum", "1.5"], "--momentum must be in [0, 1), got 1.5"),  # once Adam's traceback
        (["--weight-decay", "-0.5"], "--weight-decay must be finite and not negative, got -0.5"),
        (["--loss-sampling", "nan"], "--loss-sampling must be in (0, 1], got nan"),
        (["--scale", "2", "1"], "--scale must be two finite factors 0 < min <= max"),
        (["--colour-jitter", "1"], "--colour-jitter must be in [0, 1), got 1.0"),
        (["--crop", "0"], "--crop must be a positive size, got 0"),
        (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
        # a backbone option is named by its own flag (was "backbone fc_width must be ...")
        (["--fc-width", "0"], "--fc-width must be a whole number from 1 to 16777216, got 0"),
        (["--width", "nan"], "--width must be a finite number above 0, at most 32768, got nan"),
        # once a traceback ("Storage size calculation overflowed") or a C++ frame dump
        (["--fc-width", str(2**63 - 1)], "--fc-width must be a whole number from 1 to 16777216"),
        (["--width", "1e300"], "--width must be a finite number above 0, at most 32768"),
        # once AlexNet.__init__()'s TypeError, in Python's words
        (
            ["--model", "fcn32s-alexnet", "--width", "0.5"],
            "--width is not an option of fcn32s-alexnet (its AlexNet takes none)",
        ),
    ],
)
def test_a_value_out_of_range_is_refused_in_one_line_naming_its_flag(
    flags: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    args = scratch_run(out)
    assert main([*args, *flags, "--max-iter", "1"]) == 1
    assert said in one_error_line(capsys.readouterr().err)
    assert not out.exists() or not any(out.iterdir())  # refused before anything was written


def test_a_resume_given_a_value_out_of_range_is_refused_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    one_step_run(out)
    capsys.readouterr()
    resume = ["train", "--resume", "--out", str(out), "--no-progress"]
    assert main([*resume, "--max-iter", "2", "--eval-every", "-1"]) == 1
    assert "--eval-every must not be negative, got -1" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("gib", ["nan", "-1", "0", "inf", "lots"])
def test_a_memory_budget_that_is_not_a_finite_size_is_refused_in_one_line(
    gib: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # 'nan' once reached int(nan * GIB): a ValueError traceback after the config was printed
    out = tmp_path / "run"
    args = scratch_run(out)
    with pytest.raises(SystemExit) as refused:
        main([*args, "--memory-budget", gib, "--max-iter", "1"])
    assert refused.value.code == 2
    assert f"--memory-budget: '{gib}'" in capsys.readouterr().err.splitlines()[-1]
    assert not out.exists()


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ({"lr": "0.1"}, "lr must be a number, got '0.1'"),
        # each once an AttributeError traceback
        ({"backbone": None}, "backbone must be an object of options such as"),
        ({"backbone": [1, 2]}, "backbone must be an object of options such as"),
        # once "VGG16.__init__() got an unexpected keyword argument", naming no file
        (
            {"backbone": {"width": 0.125, "depth": 3}},
            "backbone depth is not an option of fcn8s-vgg16 (its VGG16 takes width, fc_width",
        ),
    ],
)
def test_a_hand_edited_config_with_a_wrong_value_is_named_on_resume(
    edit: dict, said: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    one_step_run(out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, **edit}))
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--max-iter", "2"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"{out / 'config.json'}: {said}" in line
