"""Run folders as a new user meets them: an occupied ``--out`` refused in one line before
anything prints, a finished staged run said to be finished, a staged run's folder taken as a
model (its finest net), and scores on a split the model trained on said not to be held out."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from pathlib import Path

import pytest
from cli_helpers import one_error_line

from fcnseg.cli import main
from fcnseg.io.weights import load_model, resolve
from fcnseg.train.checkpoint import save_checkpoint

# the camvid-scratch recipe's three stages on generated images, one step each, at the 1/8
# width of its earlier versions: these tests are about the run folders, and scoring three
# stages of the 1/4-width net costs four times as much
STAGED = [
    "train",
    "--recipe",
    "camvid-scratch",
    "--width",
    "0.125",
    "--fc-width",
    "128",
    "--dataset",
    "synthetic",
    "--train-split",
    "train",
    "--crop",
    "32",
    "--max-iter",
    "1",
    "--no-progress",
]


@pytest.fixture(scope="module")
def staged_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("staged") / "run"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main([*STAGED, "--out", str(out)]) == 0
    return out, printed.getvalue()


@pytest.fixture
def staged_run(staged_output: tuple[Path, str]) -> Path:
    return staged_output[0]


def test_each_stage_says_which_it_is(staged_output: tuple[Path, str]) -> None:
    out, printed = staged_output
    lines = [line for line in printed.splitlines() if line.startswith("stage ")]
    assert lines == [
        f"stage 1 of 3: fcn32s-vgg16, 1 steps, from random weights; in {out}/stage1-fcn32s-vgg16",
        f"stage 2 of 3: fcn16s-vgg16, 1 steps, from {out}/stage1-fcn32s-vgg16/best; "
        f"in {out}/stage2-fcn16s-vgg16",
        f"stage 3 of 3: fcn8s-vgg16, 1 steps, from {out}/stage2-fcn16s-vgg16/best; "
        f"in {out}/stage3-fcn8s-vgg16",
    ]
    # and each score says what it scored
    assert printed.count("iteration 1: 'val' pixel_acc ") == 3
    assert re.fullmatch(r"mean IU \d+\.\d\d on 'val' at iteration 1", printed.splitlines()[-1])


def test_an_occupied_out_is_refused_before_anything_prints(
    staged_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main([*STAGED, "--out", str(staged_run)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no configuration printed for a run that will not start
    line = one_error_line(captured.err)
    assert f"{staged_run}: already holds a run; --resume it" in line


def test_resuming_a_finished_staged_run_says_so(
    staged_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["train", "--out", str(staged_run), "--resume", "--no-progress"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    stage3 = staged_run / "stage3-fcn8s-vgg16"
    assert last == (
        f"{staged_run}: every stage had finished; nothing to train (to train the last stage "
        f"longer: --resume --out {stage3} --max-iter N)"
    )


def test_a_staged_run_is_extended_by_its_last_stage_only(
    staged_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --max-iter on the whole run would extend stage 1 under the stages that started from it
    capsys.readouterr()
    resume = ["train", "--resume", "--no-progress", "--max-iter", "2"]
    assert main([*resume, "--out", str(staged_run)]) == 1
    stage3 = staged_run / "stage3-fcn8s-vgg16"
    line = one_error_line(capsys.readouterr().err)
    assert line.endswith(
        f"{staged_run}: --max-iter 2 on a staged run would change the steps of each stage, "
        "each started from the one before; to train the last stage longer, "
        f"--resume its folder: --out {stage3}"
    )
    # what it says to do instead: the last stage, on its own, one step further
    assert main([*resume, "--out", str(stage3)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("at iteration 2")


def test_a_staged_run_folder_is_its_finest_net(staged_run: Path) -> None:
    assert resolve(staged_run) == staged_run / "stage3-fcn8s-vgg16" / "best.safetensors"
    assert load_model(staged_run).meta.model == "fcn8s-vgg16"


@pytest.mark.parametrize(("train_split", "noted"), [("train+val", True), ("train", False)])
def test_eval_notes_a_split_the_model_trained_on(
    checkpoint: Path,
    folder_dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    train_split: str,
    noted: bool,
) -> None:
    model = load_model(checkpoint)
    trained = tmp_path / "trained" / "best"
    save_checkpoint(
        trained, model, model.meta.replace(dataset="folder", config={"train_split": train_split})
    )
    args = ["eval", "--model", str(trained), "--dataset", "folder", "--root", str(folder_dataset)]
    args += ["--split", "val", "--out", str(tmp_path / "eval"), "--no-progress"]
    assert main(args) == 0
    note = f"{trained} was trained on folder 'train+val': its scores on 'val' are not held out"
    assert (f"fcnseg eval: note: {note}" in capsys.readouterr().err) is noted
    # the file read later says it too
    record = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert record["held_out"] is not noted and record["notes"] == ([note] if noted else [])
    assert record["model"] == str(trained) and record["weights"] == f"{trained}.safetensors"
    weights = Path(f"{trained}.safetensors").read_bytes()
    assert record["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    # weights that do not say what they trained on: unknown, not claimed held out
    assert main([*args[:2], str(checkpoint), *args[3:]]) == 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["held_out"] is None


def test_eval_asks_for_the_dataset_folder(capsys: pytest.CaptureFixture[str]) -> None:
    # without --root it used to read split files from the working directory and name one
    assert main(["eval", "--model", "camvid-fcn8s", "--dataset", "camvid", "--out", "unused"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.endswith("--root is required for dataset 'camvid'")
    assert not Path("unused").exists()


def test_eval_of_generated_images_needs_no_folder(checkpoint: Path, tmp_path: Path) -> None:
    # the synthetic dataset is made in memory, as fcnseg train makes it without --root
    out = tmp_path / "scores"
    model = str(checkpoint.parent / "best")
    assert main(["eval", "--model", model, "--dataset", "synthetic", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    assert (out / "metrics.json").is_file()


@pytest.mark.parametrize("made", [True, False])
def test_a_staged_run_refused_before_its_first_stage_leaves_out_as_it_was(
    made: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # its config.json once stayed behind, where a one-net run's refusal writes nothing
    out = tmp_path / "run"
    if not made:
        out.mkdir()  # the user's own empty folder stays
    assert main([*STAGED, "--out", str(out), "--memory-budget", "0.0001"]) == 1
    assert "KiB budget on cpu" in one_error_line(capsys.readouterr().err)
    assert out.exists() is not made
    assert not out.exists() or not any(out.iterdir())
