"""Checkpoints: what they hold, how they are rebuilt, and atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import safetensors
import torch

import fcnseg
from fcnseg.data.synthetic import SYNTHETIC_INFO
from fcnseg.errors import FcnsegError
from fcnseg.io import atomic as atomic_module
from fcnseg.io.weights import ModelMeta
from fcnseg.train import checkpoint as checkpoint_module
from fcnseg.train import recipe
from fcnseg.train.checkpoint import (
    CheckpointFiles,
    load_checkpoint,
    load_training_state,
    restore,
    save_checkpoint,
    training_meta,
)
from fcnseg.train.loop import initialize

BACKBONE = {"width": 1 / 16, "fc_width": 16, "batch_norm": True}
CONFIG = recipe(
    "scratch", "fcn8s-vgg16", dataset="synthetic", geometry="lean", backbone=BACKBONE, device="cpu"
)


def tiny_model(seed: int = 0, num_classes: int = 6) -> fcnseg.models.FCN:
    torch.manual_seed(seed)
    model = fcnseg.build_model("fcn8s-vgg16", num_classes=num_classes, geometry="lean", **BACKBONE)
    with torch.no_grad():  # non-zero score layers, so that outputs differ between seeds
        for name, param in model.named_parameters():
            if name.startswith("score"):
                param.normal_()
    return model


def metadata(iteration: int = 7) -> ModelMeta:
    start = training_meta(CONFIG, SYNTHETIC_INFO, SYNTHETIC_INFO.convention, {})
    return start.replace(iteration=iteration, metrics={"mean_iu": 0.5})


def resume(path: Path, model: fcnseg.models.FCN) -> None:
    """Restores the checkpoint ``path`` into ``model`` as resuming a run does."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    restore(path, model, optimizer, torch.amp.GradScaler("cpu", enabled=False))


def resumable() -> dict:
    """A training state that :func:`restore` takes."""
    optimizer = torch.optim.SGD(tiny_model().parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    return {
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "best_mean_iu": 0.0,
        "best_iteration": 0,
    }


def header_record(path: Path) -> dict:
    """The fcnseg record in a weight file's safetensors header, as JSON."""
    with safetensors.safe_open(path, framework="pt") as handle:
        return json.loads(handle.metadata()["fcnseg"])


def test_checkpoint_holds_weights_and_what_rebuilds_and_feeds_them(tmp_path: Path) -> None:
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model(torch.randn(1, 3, 32, 32)).mean().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "last", model, metadata(), {"optimizer": optimizer.state_dict()})
    files = CheckpointFiles.of(tmp_path / "last")
    assert files.weights.is_file() and files.state.is_file()
    # two files: the record is in the weights' header, no .json beside them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.safetensors", "last.state.pt"]
    record = header_record(files.weights)
    assert record["format"] == "fcnseg/2"
    assert record["model"] == "fcn8s-vgg16"
    assert record["build"] == {"num_classes": 6, "geometry": "lean", **BACKBONE}
    assert record["classes"] == list(SYNTHETIC_INFO.class_names)
    assert record["palette"][1] == list(SYNTHETIC_INFO.palette[1])
    assert record["input_convention"]["channel_order"] == "BGR"
    assert record["input_convention"]["mean"] == list(SYNTHETIC_INFO.convention.mean)
    assert record["iteration"] == 7 and record["metrics"] == {"mean_iu": 0.5}
    assert "git" in record and record["config"]["recipe"] == "scratch"
    assert record["config"] == json.loads(json.dumps(CONFIG.to_dict()))

    rebuilt = fcnseg.load_model(files.weights)
    assert not rebuilt.training and rebuilt.meta.iteration == 7
    model.eval()
    x = torch.randn(2, 3, 40, 36)
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    state = load_training_state(tmp_path / "last")  # weights_only=True inside
    assert state["iteration"] == 7
    assert state["optimizer"]["state"]  # momentum buffers


def test_loading_into_another_model_or_class_count_names_the_file(tmp_path: Path) -> None:
    # A checkpoint goes into a model built elsewhere where a run starts from it (--init,
    # initialize) or resumes it (restore); ``fcnseg eval`` checks the class count against
    # the dataset's (tests/cli/test_cli_evaluate.py).
    save_checkpoint(tmp_path / "best", tiny_model(), metadata())
    wider = fcnseg.build_model("fcn8s-vgg16", num_classes=21, geometry="lean", **BACKBONE)
    with pytest.raises(
        FcnsegError, match=r"best: cannot initialise.*class counts differ: 21 and 6"
    ):
        initialize(wider, str(tmp_path / "best"))
    other = fcnseg.build_model("fcn32s-alexnet", num_classes=6)
    with pytest.raises(FcnsegError, match=r"best: cannot initialise the model \(fc6\.weight"):
        initialize(other, str(tmp_path / "best"))
    save_checkpoint(tmp_path / "last", tiny_model(), metadata(), {"optimizer": {}})
    with pytest.raises(
        FcnsegError, match=r"last\.safetensors: weights do not fit.*score_fr\.weight is \(6,"
    ):
        resume(tmp_path / "last", wider)
    with pytest.raises(FcnsegError, match="missing: no such weight file"):
        fcnseg.load_model(tmp_path / "missing")
    # a file that exists but is no weights is named as such, not as missing
    (tmp_path / "street.png").write_bytes(b"not weights")
    with pytest.raises(FcnsegError, match=r"street\.png: not fcnseg weights"):
        fcnseg.load_model(tmp_path / "street.png")


def test_a_write_killed_midway_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = CheckpointFiles.of(tmp_path / "last")
    killed_files = (files.state, files.weights)  # the order of the writes
    for killed in range(2):
        save_checkpoint(tmp_path / "last", tiny_model(0), metadata(1), {"optimizer": {}})
        before = files.weights.read_bytes(), files.state.read_bytes()
        writes = []

        def write(file, data: bytes, killed: int = killed, writes: list = writes) -> None:
            writes.append(data)
            if len(writes) > killed:
                file.write(data[: len(data) // 2])
                raise OSError("disk pulled out")
            file.write(data)

        monkeypatch.setattr(atomic_module, "_write", write)
        # each writer names the file it could not write, in one line
        name = killed_files[killed].name.replace(".", r"\.")
        with pytest.raises(FcnsegError, match=rf"{name}: cannot write: disk pulled out"):
            save_checkpoint(tmp_path / "last", tiny_model(1), metadata(2), {"optimizer": {}})
        monkeypatch.undo()

        # both files are the old ones: a failed weights write puts the old state back
        assert (files.weights.read_bytes(), files.state.read_bytes()) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "last.safetensors",
            "last.state.pt",
        ]  # no temporary file is left behind
        state, meta = load_checkpoint(tmp_path / "last")
        assert meta.iteration == 1 and load_training_state(tmp_path / "last")["iteration"] == 1
        torch.testing.assert_close(state["score_fr.weight"], tiny_model(0).score_fr.weight)


def test_a_save_killed_between_its_writes_resumes_from_the_previous_state(
    tmp_path: Path,
) -> None:
    # What kill -9 between the state write and the weights write leaves: the new state, the
    # old weights, and the old state kept beside them (tests/train/test_faults.py kills real
    # runs there).
    save_checkpoint(tmp_path / "last", tiny_model(0), metadata(1), resumable())
    files = CheckpointFiles.of(tmp_path / "last")
    old_state = files.state.read_bytes()
    checkpoint_module._keep_previous_state(files)
    save_checkpoint(tmp_path / "other", tiny_model(1), metadata(2), resumable())
    os.replace(CheckpointFiles.of(tmp_path / "other").state, files.state)
    assert load_training_state(tmp_path / "last")["iteration"] == 2  # the mixed pair...
    resume(tmp_path / "last", tiny_model(0))  # ...resumes from the previous state
    assert files.state.read_bytes() == old_state and not files.previous_state.exists()
    # with no previous state of the weights' iteration, the mixed pair is refused
    save_checkpoint(tmp_path / "other", tiny_model(1), metadata(3), resumable())
    os.replace(CheckpointFiles.of(tmp_path / "other").state, files.state)
    with pytest.raises(FcnsegError, match="interrupted save"):
        resume(tmp_path / "last", tiny_model(0))


def test_weights_that_do_not_fit_their_metadata_are_refused(tmp_path: Path) -> None:
    # weights of a wider net under metadata that builds the narrow one
    wide = fcnseg.build_model(
        "fcn8s-vgg16", num_classes=6, geometry="lean", width=1 / 8, fc_width=16
    )
    save_checkpoint(tmp_path / "last", wide, metadata())
    with pytest.raises(FcnsegError, match=r"last\.safetensors: weights do not fit.*conv1_1"):
        fcnseg.load_model(tmp_path / "last")
