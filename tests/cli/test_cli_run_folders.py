"""Run folders as a new user meets them: an occupied ``--out`` refused in one line before
anything prints, a finished staged run said to be finished, a staged run's folder taken as a
model (its finest net), and scores on a split the model trained on said not to be held out."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import one_error_line

from fcnseg.cli import main
from fcnseg.io.weights import load_model, resolve
from fcnseg.train.checkpoint import save_checkpoint

# the camvid-scratch recipe's three stages on generated images, one step each
STAGED = [
    "train",
    "--recipe",
    "camvid-scratch",
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
def staged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("staged") / "run"
    assert main([*STAGED, "--out", str(out)]) == 0
    return out


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
    assert (
        last
        == f"{staged_run}: every stage had finished; nothing to train (--max-iter N extends it)"
    )


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
    note = f"note: {trained}.safetensors was trained on folder 'train+val': its scores on 'val'"
    assert (note in capsys.readouterr().out) is noted


def test_eval_asks_for_the_dataset_folder(capsys: pytest.CaptureFixture[str]) -> None:
    # without --root it used to read split files from the working directory and name one
    with pytest.raises(SystemExit) as stop:
        main(["eval", "--model", "camvid-fcn8s", "--dataset", "camvid", "--out", "unused"])
    assert stop.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith("the following arguments are required: --root")
    )
    assert not Path("unused").exists()
