"""Training under faults: kill -9 at chosen moments, a full disk, unreadable images.

The killed runs are real processes (``python -m fcnseg.cli train`` through
tests/train/kill_points.py), killed by SIGKILL: nothing of fcnseg runs after the signal.
benchmarks/faults.py kills at ten moments; the suite at four, in one chain of resumes.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_runs import tiny_config

import fcnseg
from fcnseg.cli import main
from fcnseg.data import FolderDataset
from fcnseg.data.synthetic import SYNTHETIC_CLASSES, SyntheticShapes
from fcnseg.errors import FcnsegError
from fcnseg.io import atomic as atomic_module
from fcnseg.train import TrainConfig, fit
from fcnseg.train.batches import UnreadableImageError
from fcnseg.train.checkpoint import CheckpointFiles, CheckpointWriteError, restore
from fcnseg.train.log import read_log
from fcnseg.train.optim import build_optimizer

KILL_POINTS = Path(__file__).with_name("kill_points.py")
# One thread: the same kernels in every process, so that runs compare bit for bit.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TINY_RUN = [
    "--dataset",
    "synthetic",
    "--recipe",
    "scratch",
    "--width",
    "0.0625",
    "--fc-width",
    "16",
    "--geometry",
    "lean",
    "--batch-size",
    "2",
    "--mirror",
    "--jitter",
    "4",
    "--workers",
    "0",
    "--no-progress",
]


def one_error_line(text: str) -> str:
    """The single line an error printed; fails if there is more (a traceback). Notes (``fcnseg
    eval: note: ...``, said before the work) are not errors and are passed over."""
    lines = [line for line in text.splitlines() if line.strip() and ": note: " not in line]
    assert len(lines) == 1, text
    return lines[0]


def fcnseg_train(
    args: list[str], kill: tuple[str, int] | None = None
) -> subprocess.CompletedProcess:
    """``fcnseg train ARGS`` in a fresh process, killed at ``kill`` (point, occurrence)."""
    if kill is None:
        command = [sys.executable, "-m", "fcnseg.cli", "train", *args]
    else:
        command = [sys.executable, str(KILL_POINTS), kill[0], str(kill[1]), "--", "train", *args]
    return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)


def trajectory(folder: Path) -> list[tuple]:
    """The logged steps' losses and rates and the evaluations, in order."""
    return [
        (e["iteration"], e["loss"], e["lr"]) if "loss" in e else (e["iteration"], e["eval"])
        for e in read_log(folder)
        if "loss" in e or "eval" in e
    ]


def assert_checkpoints_load(folder: Path, scratch: Path) -> None:
    """Every weight file in ``folder`` loads, and ``last`` restores as --resume restores it
    (in a copy: restoring puts a kept previous state back)."""
    for weights in folder.glob("*.safetensors"):
        fcnseg.load_model(weights)
    if not CheckpointFiles.of(folder / "last").exists():
        return
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(folder, scratch)
    model = fcnseg.load_model(scratch / "last")
    config = TrainConfig.from_dict(dict(model.meta.config))
    optimizer = build_optimizer(
        model,
        name=config.optimizer,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    restore(scratch / "last", model, optimizer, torch.amp.GradScaler("cpu", enabled=False))


def shapes_folder(root: Path, splits: dict[str, int]) -> Path:
    """Generated 32x32 images in the folder layout, ``splits`` naming each split's count."""
    (root / "classes.txt").parent.mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(SYNTHETIC_CLASSES) + "\n")
    for seed, (split, count) in enumerate(splits.items()):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        shapes = SyntheticShapes(count, size=32, seed=seed)
        for index in range(count):
            rgb, label = shapes.render(index)
            Image.fromarray(rgb).save(root / "images" / split / f"img{index}.png")
            mask = Image.fromarray(label.astype(np.uint8))
            mask.save(root / "masks" / split / f"img{index}.png")
    return root


@pytest.mark.slow
def test_runs_killed_at_any_moment_resume_to_the_uninterrupted_weights_and_log(
    tmp_path: Path,
) -> None:
    data = shapes_folder(tmp_path / "data", {"train": 8, "val": 3})
    settings = [*TINY_RUN, "--dataset", "folder", "--root", str(data), "--train-split", "train"]
    settings += ["--val-split", "val", "--max-iter", "6", "--eval-every", "2"]
    whole = tmp_path / "whole"  # in this process, on one thread as the killed ones
    assert main(["train", *settings, "--out", str(whole)]) == 0

    run = tmp_path / "killed"
    kills = [
        ("between-writes", 2),  # iteration 4's state saved, its weights not: last is 2
        ("eval", 1),  # resumed at 2, killed scoring iteration 4
        ("log", 4),  # resumed at 2, saved 4, iteration 5's line torn
    ]
    for number, kill in enumerate(kills):
        args = [*settings, "--out", str(run)] if number == 0 else ["--out", str(run), "--resume"]
        result = fcnseg_train([*args, "--no-progress"], kill)
        assert result.returncode == -9, (kill, result.stderr)
        assert_checkpoints_load(run, tmp_path / "copy")
    assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0

    assert trajectory(run) == trajectory(whole)
    final, expected = (fcnseg.load_model(r / "last").state_dict() for r in (run, whole))
    for name, tensor in expected.items():
        assert torch.equal(final[name], tensor), name
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []


def test_a_full_disk_stops_the_run_in_one_line_and_resume_goes_on(
    tmp_path: Path, tiny_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, val = tiny_data
    config = tiny_config(max_iter=6, eval_every=2)
    whole = fit(config, tmp_path / "whole", train_set=train, val_set=val, progress=False)

    run = tmp_path / "full"
    real_write = atomic_module._write
    writes = []

    def disk_full(file, data: bytes) -> None:
        # the disk fills up halfway through last's weights at iteration 4 (after its state)
        if os.path.basename(file.name).startswith(".last.safetensors."):
            writes.append(file.name)
            if len(writes) == 2:
                file.write(data[: len(data) // 3])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(file, data)

    monkeypatch.setattr(atomic_module, "_write", disk_full)
    with pytest.raises(CheckpointWriteError) as raised:
        fit(config, run, train_set=train, val_set=val, progress=False)
    monkeypatch.undo()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{run}: cannot save the checkpoint of iteration 4")
    assert "No space left on device" in message and "last.safetensors, is intact" in message
    # the previous checkpoint, whole: weights and state of iteration 2, nothing left over
    assert fcnseg.load_model(run / "last").meta.iteration == 2
    assert sorted(p.name for p in run.iterdir() if p.suffix != ".jsonl") == [
        "best.safetensors",
        "config.json",
        "last.safetensors",
        "last.state.pt",
    ]
    resumed = fit(config, run, resume=True, train_set=train, val_set=val, progress=False)
    assert trajectory(run) == trajectory(tmp_path / "whole")
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name


def test_a_full_tmpfs_stops_the_command_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A real full disk where the machine lets a test mount one (root on Linux): room for one
    # checkpoint (weights W, Adam's state 2W) but not for the next beside it (5W).
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    model = fcnseg.build_model(
        "fcn8s-vgg16", num_classes=6, geometry="lean", width=1 / 16, fc_width=16, batch_norm=True
    )
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    mount = tmp_path / "small"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={4 * weights}", "tmpfs", str(mount)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        run = mount / "run"
        args = [*TINY_RUN, "--max-iter", "8", "--eval-every", "2", "--no-val"]
        assert main(["train", *args, "--out", str(run)]) == 1
        line = one_error_line(capsys.readouterr().err)
        assert line.startswith(f"fcnseg train: error: {run}: cannot save the checkpoint of")
        assert "No space left on device" in line and "is intact" in line
        assert_checkpoints_load(run, tmp_path / "copy")
        assert fcnseg.load_model(run / "last").meta.iteration == 2
        # space freed: resume goes on to the end
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)
        assert main(["train", "--out", str(run), "--resume", "--no-progress"]) == 0
        assert fcnseg.load_model(run / "last").meta.iteration == 8
        assert [e["iteration"] for e in read_log(run) if "loss" in e] == list(range(1, 9))
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def folder_with_a_bad_image(root: Path, bad: str = "truncated") -> Path:
    """Eight generated images in the folder layout, image 3 damaged: truncated or not an
    image at all."""
    shapes_folder(root, {"train": 8})
    damaged = root / "images" / "train" / "img3.png"
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) // 2] if bad == "truncated" else b"not an image")
    return damaged


def test_an_unreadable_image_stops_the_run_after_saving_or_is_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    damaged = folder_with_a_bad_image(tmp_path / "data")
    dataset = FolderDataset(tmp_path / "data", "train")
    config = tiny_config(dataset="folder", max_iter=8, eval_every=4, batch_size=2)
    # by default: one line naming the file, once the steps done are saved
    with pytest.raises(UnreadableImageError) as raised:
        fit(config, tmp_path / "stop", train_set=dataset, val_set=None, progress=False)
    message = str(raised.value)
    assert message.startswith(f"{damaged}: cannot read image") and "\n" not in message
    saved = fcnseg.load_model(tmp_path / "stop" / "last").meta.iteration
    assert f"stopped at iteration {saved}, saved" in message
    assert 0 <= saved < 4  # image 3 comes up in the first epoch: 8 images, 2 a step

    # --skip-bad-images: the image is replaced by the next one and the run goes on
    result = fit(
        config,
        tmp_path / "skip",
        train_set=dataset,
        val_set=dataset,
        progress=False,
        skip_bad_images=True,
    )
    assert result.iteration == 8 and result.metrics["mean_iu"] is not None
    skipped = [e for e in read_log(tmp_path / "skip") if "skipped" in e]
    assert len(skipped) == 4  # twice in training (two epochs), twice in the held-out scores
    assert all(e["skipped"].startswith(f"{damaged}: cannot read image") for e in skipped)
    assert f"skipped at iteration 4: {damaged}: cannot read image" in capsys.readouterr().out
    losses = [e["loss"] for e in read_log(tmp_path / "skip") if "loss" in e]
    assert len(losses) == 8 and all(np.isfinite(losses))


def test_fcnseg_train_and_eval_name_an_unreadable_image_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    damaged = folder_with_a_bad_image(tmp_path / "data", bad="garbage")
    run = tmp_path / "run"
    args = [*TINY_RUN, "--dataset", "folder", "--root", str(tmp_path / "data")]
    args += ["--train-split", "train", "--no-val", "--max-iter", "8", "--out", str(run)]
    assert main(["train", *args]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"fcnseg train: error: {damaged}: cannot read image")
    assert f"saved {run / 'last'}" in line and "--skip-bad-images" in line
    args = ["eval", "--model", str(run / "last"), "--dataset", "folder", "--split", "train"]
    args += ["--root", str(tmp_path / "data"), "--out", str(tmp_path / "eval"), "--no-progress"]
    assert main(args) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"fcnseg eval: error: {damaged}: cannot read image")


def test_a_bad_held_out_image_is_scored_when_the_run_resumes(tmp_path: Path, tiny_data) -> None:
    # stopped by a bad held-out file at an evaluation step, the run saved that step unscored;
    # resumed with the file replaced, it scores it first, as the uninterrupted run did
    train, val = tiny_data
    config = tiny_config(max_iter=4, eval_every=2)
    fit(config, tmp_path / "whole", train_set=train, val_set=val, progress=False)

    class BadSecondScore(torch.utils.data.Dataset):
        info = val.info
        calls = 0

        def __len__(self) -> int:
            return len(val)

        def __getitem__(self, index: int):
            if index == 0:
                BadSecondScore.calls += 1
                if BadSecondScore.calls == 2:
                    raise FcnsegError("val/0.png: cannot read image (broken data stream)")
            return val[index]

    bad = BadSecondScore()
    with pytest.raises(UnreadableImageError, match=r"^val/0\.png: cannot read image.* 4, saved"):
        fit(config, tmp_path / "run", train_set=train, val_set=bad, progress=False)
    assert fcnseg.load_model(tmp_path / "run" / "last").meta.metrics is None
    fit(config, tmp_path / "run", resume=True, train_set=train, val_set=val, progress=False)
    assert trajectory(tmp_path / "run") == trajectory(tmp_path / "whole")
    assert fcnseg.load_model(tmp_path / "run" / "best").meta.iteration == (
        fcnseg.load_model(tmp_path / "whole" / "best").meta.iteration
    )


def torchrun(args: list[str], *, kill: tuple[str, int, int] | None = None) -> None:
    """A 2-process gloo job under ``torchrun --max-restarts 1``; ``kill`` (point, occurrence,
    rank) kills that rank's process on the first attempt."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "--max-restarts",
        "1",
        "--monitor-interval",
        "0.2",
    ]
    if kill is None:
        command += ["-m", "fcnseg.cli", "train", *args]
    else:
        point, occurrence, rank = kill
        command += [str(KILL_POINTS), point, str(occurrence), "--rank", str(rank), "--"]
        command += ["train", *args]
    env = {**ENV, "GLOO_SOCKET_IFNAME": "lo"}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_a_ddp_worker_killed_mid_run_is_restarted_from_the_last_checkpoint(
    tmp_path: Path,
) -> None:
    # the restarted workers join torchrun's store anew (fcnseg.train.distributed._attempt_store);
    # without that they could read their dead predecessors' addresses and hang in gloo
    data = shapes_folder(tmp_path / "data", {"train": 8, "val": 2})
    settings = [*TINY_RUN, "--dataset", "folder", "--root", str(data), "--train-split", "train"]
    settings += ["--val-split", "val", "--max-iter", "4", "--eval-every", "2", "--batch-size", "1"]
    torchrun([*settings, "--out", str(tmp_path / "whole")])
    # rank 1 dies after step 3 (last holds step 2); torchrun restarts both processes, and
    # the same command resumes from last instead of refusing the used folder
    result = torchrun([*settings, "--out", str(tmp_path / "killed")], kill=("step", 3, 1))
    assert "torchrun restart 1: resuming" in result.stdout
    assert trajectory(tmp_path / "killed") == trajectory(tmp_path / "whole")
    final, expected = (fcnseg.load_model(tmp_path / r / "last") for r in ("killed", "whole"))
    assert final.meta.iteration == 4
    for name, tensor in expected.state_dict().items():
        assert torch.equal(final.state_dict()[name], tensor), name
