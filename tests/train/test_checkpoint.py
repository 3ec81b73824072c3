"""Checkpoints: what they hold, how they are rebuilt, and atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import fcnseg
from fcnseg.data.synthetic import SYNTHETIC_INFO
from fcnseg.errors import FcnsegError
from fcnseg.train import checkpoint as checkpoint_module
from fcnseg.train.checkpoint import (
    CheckpointFiles,
    load_checkpoint,
    load_model,
    load_training_state,
    model_metadata,
    save_checkpoint,
)

BACKBONE = {"width": 1 / 16, "fc_width": 16, "batch_norm": True}


def tiny_model(seed: int = 0, num_classes: int = 6) -> fcnseg.models.FCN:
    torch.manual_seed(seed)
    model = fcnseg.build_model("fcn8s-vgg16", num_classes=num_classes, geometry="lean", **BACKBONE)
    with torch.no_grad():  # non-zero score layers, so that outputs differ between seeds
        for name, param in model.named_parameters():
            if name.startswith("score"):
                param.normal_()
    return model


def metadata(iteration: int = 7) -> dict:
    return {
        **model_metadata("fcn8s-vgg16", 6, "lean", BACKBONE, SYNTHETIC_INFO),
        "iteration": iteration,
        "config": {"recipe": "scratch"},
        "metrics": {"mean_iu": 0.5},
    }


def test_checkpoint_holds_weights_and_what_rebuilds_and_feeds_them(tmp_path: Path) -> None:
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model(torch.randn(1, 3, 32, 32)).mean().backward()
    optimizer.step()
    save_checkpoint(tmp_path / "last", model, metadata(), {"optimizer": optimizer.state_dict()})
    files = CheckpointFiles.of(tmp_path / "last")
    assert files.weights.is_file() and files.metadata.is_file() and files.state.is_file()
    record = json.loads(files.metadata.read_text())
    assert record["model"] == "fcn8s-vgg16"
    assert record["build"] == {"num_classes": 6, "geometry": "lean", **BACKBONE}
    assert record["classes"] == list(SYNTHETIC_INFO.class_names)
    assert record["palette"][1] == list(SYNTHETIC_INFO.palette[1])
    assert record["input_convention"]["channel_order"] == "BGR"
    assert record["input_convention"]["mean"] == list(SYNTHETIC_INFO.mean_bgr)
    assert record["iteration"] == 7 and record["metrics"] == {"mean_iu": 0.5}
    assert "git" in record and "config" in record

    rebuilt, _ = load_model(files.weights)
    model.eval()
    rebuilt.eval()
    x = torch.randn(2, 3, 40, 36)
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    state = load_training_state(tmp_path / "last")  # weights_only=True inside
    assert state["iteration"] == 7
    assert state["optimizer"]["state"]  # momentum buffers


def test_loading_into_another_model_or_class_count_names_the_file(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "best", tiny_model(), metadata())
    with pytest.raises(FcnsegError, match=r"best\.safetensors.*6 classes, expected 21"):
        load_model(tmp_path / "best", num_classes=21)
    with pytest.raises(FcnsegError, match=r"best\.safetensors.*'fcn32s-vgg16'"):
        load_model(tmp_path / "best", model_name="fcn32s-vgg16")
    with pytest.raises(FcnsegError, match="metadata not found"):
        load_model(tmp_path / "missing")


def test_a_write_killed_midway_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = CheckpointFiles.of(tmp_path / "last")
    killed_files = (files.state, files.weights, files.metadata)  # the order of the writes
    for killed in range(3):
        save_checkpoint(tmp_path / "last", tiny_model(0), metadata(1), {"optimizer": {}})
        before = files.metadata.read_bytes(), files.weights.read_bytes(), files.state.read_bytes()
        writes = []

        def write(file, data: bytes, killed: int = killed, writes: list = writes) -> None:
            writes.append(data)
            if len(writes) > killed:
                file.write(data[: len(data) // 2])
                raise OSError("disk pulled out")
            file.write(data)

        monkeypatch.setattr(checkpoint_module, "_write", write)
        with pytest.raises(OSError, match="disk pulled out"):
            save_checkpoint(tmp_path / "last", tiny_model(1), metadata(2), {"optimizer": {}})
        monkeypatch.undo()

        after = files.metadata.read_bytes(), files.weights.read_bytes(), files.state.read_bytes()
        old = dict(zip((files.metadata, files.weights, files.state), before, strict=True))
        new = dict(zip((files.metadata, files.weights, files.state), after, strict=True))
        assert new[killed_files[killed]] == old[killed_files[killed]]  # whole, and the old one
        for later in killed_files[killed:]:
            assert new[later] == old[later]  # nothing after the failed write was touched
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "last.json",
            "last.safetensors",
            "last.state.pt",
        ]  # no temporary file is left behind
        if killed == 0:
            state, meta = load_checkpoint(tmp_path / "last")
            assert (
                meta["iteration"] == 1 and load_training_state(tmp_path / "last")["iteration"] == 1
            )
            torch.testing.assert_close(state["score_fr.weight"], tiny_model(0).score_fr.weight)
        elif killed == 1:  # new state beside old weights: the iterations tell them apart
            assert load_checkpoint(tmp_path / "last")[1]["iteration"] == 1
            assert load_training_state(tmp_path / "last")["iteration"] == 2
        else:  # new weights beside old metadata: refused when read
            with pytest.raises(FcnsegError, match="interrupted save"):
                load_checkpoint(tmp_path / "last")


def test_weights_that_do_not_fit_their_metadata_are_refused(tmp_path: Path) -> None:
    # weights of a wider net under metadata that builds the narrow one
    wide = fcnseg.build_model(
        "fcn8s-vgg16", num_classes=6, geometry="lean", width=1 / 8, fc_width=16
    )
    save_checkpoint(tmp_path / "last", wide, metadata())
    with pytest.raises(FcnsegError, match=r"last\.safetensors: weights do not fit.*conv1_1"):
        load_model(tmp_path / "last")
