"""``fcnseg train`` as a new user meets it: defaults that learn, a configuration that says
where each value came from, resuming from anywhere, sizes refused before memory is spent, and
a recorded held-out score that is ``fcnseg eval``'s."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import one_error_line
from PIL import Image

from fcnseg.cli import main
from fcnseg.train import load_checkpoint
from fcnseg.train.log import read_log

TINY = ["--width", "0.0625", "--fc-width", "16", "--no-progress"]
CLASSES = ("background", "red", "blue")


def write_folder(root: Path, sizes: dict[str, list[tuple[int, int]]], seed: int = 0) -> Path:
    """A folder dataset whose classes are colours: grey background, red blobs, blue bars,
    with noise; one image and index mask per (height, width) of each split."""
    rng = np.random.default_rng(seed)
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for split, shapes in sizes.items():
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for number, (height, width) in enumerate(shapes):
            label = np.zeros((height, width), dtype=np.uint8)
            y, x = rng.integers(0, height // 2), rng.integers(0, width // 2)
            label[y : y + height // 2, x : x + width // 3] = 1
            label[:, rng.integers(0, width - 4) :][:, :4] = 2
            label[0, :3] = 255  # some void
            colours = np.array([[128, 128, 128], [220, 30, 30], [30, 30, 220]])
            rgb = colours[np.minimum(label, 2)] + rng.normal(0, 20, (height, width, 3))
            rgb = np.clip(rgb, 0, 255).astype(np.uint8)
            Image.fromarray(rgb).save(root / "images" / split / f"{number}.png")
            Image.fromarray(label).save(root / "masks" / split / f"{number}.png")
    return root


def losses(folder: Path) -> dict[int, float]:
    return {e["iteration"]: e["loss"] for e in read_log(folder) if "loss" in e}


def test_no_recipe_and_no_init_trains_from_scratch_and_lowers_the_loss(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = write_folder(tmp_path / "data", {"train": [(32, 32)] * 8, "val": [(32, 32)] * 2})
    out = tmp_path / "run"
    args = ["train", "--dataset", "folder", "--root", str(root), "--out", str(out), *TINY]
    assert main([*args, "--batch-size", "4", "--max-iter", "30", "--eval-every", "0"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("no --recipe and no --init: training from random weights")
    assert "'scratch' recipe" in printed[0]
    # every field of the configuration, with its source, before the run
    table = {line.split()[0]: line for line in printed[2:40] if line.startswith("  ")}
    assert table["recipe"].split()[1:] == ["scratch", "auto", "(no", "--recipe)"]
    assert table["lr"].split()[1:] == ["0.001", "recipe", "scratch"]
    assert table["batch_size"].split()[1:] == ["4", "flag"]
    assert table["root"].split()[1:] == [str(root), "flag"]
    assert json.loads((out / "config.json").read_text())["recipe"] == "scratch"
    trajectory = losses(out)
    first, final = np.mean([trajectory[i] for i in (1, 2, 3)]), trajectory[30]
    assert final < 0.85 * first, trajectory  # 1.10 (log 3) to about 0.74

    # the paper's recipe from random weights is refused, in one line, before anything runs
    heavy = tmp_path / "heavy"
    command = ["train", "--dataset", "folder", "--root", str(root), "--out", str(heavy)]
    assert main([*command, "--recipe", "heavy"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "recipe 'heavy' fine-tunes pretrained weights" in line and "--init" in line
    assert not heavy.exists()


def test_a_run_resumed_from_another_folder_with_root_continues_bit_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_folder(first / "data", {"train": [(32, 32)] * 6, "val": [(32, 32)] * 2})
    monkeypatch.chdir(first)
    args = ["train", "--dataset", "folder", "--root", "data", *TINY, "--batch-size", "2"]
    args += ["--lr-policy", "fixed", "--jitter", "4", "--eval-every", "2"]
    assert main([*args, "--out", "whole", "--max-iter", "4"]) == 0
    assert main([*args, "--out", "cut", "--max-iter", "2"]) == 0
    saved = json.loads(Path("cut/config.json").read_text())
    assert saved["root"] == str(first / "data")  # absolute, not as given

    # the data moves, and the run is resumed from elsewhere
    second.mkdir()
    shutil.move(first / "data", second / "moved")
    monkeypatch.chdir(second)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(first / "cut"), "--no-progress"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert str(first / "data") in line and "give --root" in line
    resume = ["train", "--resume", "--out", str(first / "cut"), "--no-progress"]
    assert main([*resume, "--root", "moved", "--lr", "0.5", "--max-iter", "4"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "--lr 0.5 (saved 0.001) would change it: start a new run" in line
    assert main([*resume, "--root", "moved", "--max-iter", "4", "--dataset", "folder"]) == 0
    printed = capsys.readouterr().out
    assert re.search(rf"\n  root +{re.escape(str(second / 'moved'))} ", printed)

    assert losses(first / "cut") == losses(first / "whole")
    whole, _ = load_checkpoint(first / "whole" / "last")
    resumed, meta = load_checkpoint(first / "cut" / "last")
    assert meta.iteration == 4
    for name, tensor in whole.items():
        assert torch.equal(resumed[name], tensor), name
    assert json.loads((first / "cut" / "config.json").read_text())["root"] == str(second / "moved")


def test_recorded_held_out_score_is_fcnseg_evals_for_mixed_sizes(tmp_path: Path) -> None:
    root = write_folder(
        tmp_path / "data",
        {
            "train": [(40, 40), (56, 48), (32, 64), (48, 48)],
            "val": [(48, 48), (96, 96), (64, 80), (40, 100)],
        },
    )
    out = tmp_path / "run"
    args = ["train", "--dataset", "folder", "--root", str(root), "--out", str(out), *TINY]
    assert main([*args, "--batch-size", "2", "--max-iter", "4", "--eval-every", "2"]) == 0
    evaluations = {e["iteration"]: e["eval"] for e in read_log(out) if "eval" in e}
    for stem in ("best", "last"):
        meta = load_checkpoint(out / stem)[1]
        folder = tmp_path / f"eval-{stem}"
        command = ["eval", "--model", str(out / stem), "--dataset", "folder", "--root", str(root)]
        assert main([*command, "--split", "val", "--out", str(folder), "--no-progress"]) == 0
        scored = json.loads((folder / "metrics.json").read_text())
        assert scored["images"] == 4
        recorded = dict(meta.metrics)
        assert set(recorded) <= set(scored)
        for key, value in recorded.items():
            assert scored[key] == value, (stem, key)  # exactly
        assert evaluations[meta.iteration] == recorded


def test_sizes_that_cannot_fit_are_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = write_folder(tmp_path / "data", {"train": [(24, 32), (32, 20)], "val": [(24, 24)]})
    args = ["train", "--dataset", "folder", "--root", str(root), *TINY]
    assert main([*args, "--out", str(tmp_path / "a"), "--crop", "5000"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "crop 5000 is larger than every training image (the largest side is 32" in line
    assert main([*args, "--out", str(tmp_path / "b"), "--memory-budget", "0.0001"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "a training step of 8 image(s) of 32x32 needs about" in line
    assert "the 105 KiB budget" in line  # 0.0001 GiB, once printed as 0.0 GiB
    assert main([*args, "--out", str(tmp_path / "c"), "--memory-budget", "1e-9"]) == 1
    assert "the 1 B budget" in one_error_line(capsys.readouterr().err)  # 1e-9 GiB, 1.07 bytes
    assert not (tmp_path / "a" / "log.jsonl").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("minutes", ["0", "-1", "nan"])
def test_a_time_budget_of_no_time_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture, minutes: str
) -> None:
    # a budget of 0 or less used to train one step and stop: nothing a user asks for
    args = ["train", "--dataset", "synthetic", *TINY, "--out", str(tmp_path / "run")]
    with pytest.raises(SystemExit) as stopped:
        main([*args, "--time-budget", minutes])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --time-budget: '{minutes}': a time budget must be more than 0 minutes" in err
    assert not (tmp_path / "run").exists()


def test_a_spent_time_budget_says_once_where_it_stopped_and_how_to_go_on(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # the stop used to be printed twice (by the training loop, then by the command)
    root = write_folder(tmp_path / "data", {"train": [(32, 32)] * 2, "val": [(32, 32)]})
    out = tmp_path / "run"
    args = ["train", "--dataset", "folder", "--root", str(root), "--out", str(out), *TINY]
    assert main([*args, "--max-iter", "4", "--eval-every", "0", "--time-budget", "1e-9"]) == 0
    printed = capsys.readouterr().out.splitlines()
    stops = [line for line in printed if "stopped" in line]
    assert stops == ["stopped at iteration 1 of 4 by the time budget of 1e-09 min; resume to go on"]
    assert printed[-1] == f"to go on: fcnseg train --resume --out {out}"
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert max(losses(out)) == 4


def test_a_resumed_run_is_not_shortened_below_the_steps_it_has_done(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # --max-iter 1 on a run at iteration 2 used to say "trained to iteration 2" and rewrite
    # the saved configuration's max_iter to 1
    root = write_folder(tmp_path / "data", {"train": [(32, 32)] * 2, "val": [(32, 32)]})
    out = tmp_path / "run"
    args = ["train", "--dataset", "folder", "--root", str(root), "--out", str(out), *TINY]
    assert main([*args, "--max-iter", "2", "--eval-every", "0"]) == 0
    saved = (out / "config.json").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out), "--max-iter", "1"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.endswith(
        f"{out}: --max-iter 1 is below the 2 steps the run has done; a run is not shortened "
        "(start a new run in another --out)"
    )
    assert (out / "config.json").read_text() == saved


def test_help_shows_each_flags_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one line per flag
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for needle in (
        "(default: heavy 1e-10/1e-12/1e-14 for FCN-32s/16s/8s;",
        "scratch 0.001; camvid-scratch 0.002/0.001/0.001 by stage)",
        "(default: heavy, atonce, staged 1; scratch 8; camvid-scratch 4)",
        "(default: heavy with --init, scratch without)",
    ):
        assert needle in text, needle
    entries: list[str] = []  # each option with its help, however argparse wrapped them
    for line in text.split("options:")[1].splitlines():
        if line.startswith("  -"):
            entries.append(line)
        elif entries:
            entries[-1] += line
    assert len(entries) > 40
    for entry in entries:
        if not entry.startswith(("  --out", "  --resume", "  --dataset-option", "  -h")):
            assert "default" in entry, entry


def test_a_missing_data_folder_is_one_line_before_any_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "no-camvid"
    argv = ["train", "--recipe", "camvid-scratch", "--root", str(missing)]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 1
    captured = capsys.readouterr()
    line = one_error_line(captured.err)
    assert f"--root {missing}: no such folder (dataset camvid)" in line
    assert captured.out == ""  # no configuration printed for a run that cannot start
    assert not (tmp_path / "run").exists()
