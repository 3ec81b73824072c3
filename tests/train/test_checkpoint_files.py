"""A checkpoint's file names, its training state's safety, a run saved at step 0, and the
record every checkpoint of a run starts from."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import fcnseg
from fcnseg.data.synthetic import SYNTHETIC_INFO
from fcnseg.errors import FcnsegError
from fcnseg.train import recipe
from fcnseg.train.checkpoint import (
    CheckpointFiles,
    TrainState,
    load_training_state,
    restore,
    save_run,
    training_meta,
)
from fcnseg.train.distributed import Context

BACKBONE = {"width": 1 / 16, "fc_width": 16, "batch_norm": True}
CONFIG = recipe(
    "scratch", "fcn8s-vgg16", dataset="synthetic", geometry="lean", backbone=BACKBONE, device="cpu"
)


@pytest.mark.parametrize("given", ["run/last", "run/last.safetensors", "run/last.json"])
def test_a_checkpoint_is_named_by_its_stem_or_its_weights(given: str) -> None:
    files = CheckpointFiles.of(given)
    assert files == CheckpointFiles(Path("run/last.safetensors"), Path("run/last.state.pt"))


def test_a_dot_in_the_name_is_not_a_suffix_to_drop() -> None:
    files = CheckpointFiles.of("run/lr1e-3.v2")
    assert files.weights == Path("run/lr1e-3.v2.safetensors")
    assert files.state == Path("run/lr1e-3.v2.state.pt")


class Payload:
    """Anything but tensors, numbers and strings: a pickle could run code when loaded."""


def test_a_training_state_holding_objects_is_refused(tmp_path: Path) -> None:
    torch.save({"optimizer": Payload(), "iteration": 1}, tmp_path / "last.state.pt")
    with pytest.raises(FcnsegError, match=r"last\.state\.pt: cannot read training state"):
        load_training_state(tmp_path / "last")


def test_a_run_saved_before_its_first_step_resumes_at_step_0(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = fcnseg.build_model("fcn8s-vgg16", num_classes=6, geometry="lean", **BACKBONE)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    meta = training_meta(CONFIG, SYNTHETIC_INFO, SYNTHETIC_INFO.convention, {})
    save_run(
        tmp_path / "last",
        model,
        optimizer,
        scaler,
        meta,
        TrainState(),
        None,
        Context(0, 1, torch.device("cpu")),
    )
    assert load_training_state(tmp_path / "last")["iteration"] == 0
    state, saved = restore(tmp_path / "last", model, optimizer, scaler)
    assert state == TrainState(0, float("-inf"), 0) and saved.iteration == 0


def test_the_record_of_a_run_names_its_data_heads_and_origin() -> None:
    geo = ("sky", "horizontal", "vertical")
    meta = training_meta(CONFIG, SYNTHETIC_INFO, SYNTHETIC_INFO.convention, {"geo": list(geo)})
    assert meta.init == "trained" and meta.model == "fcn8s-vgg16"
    assert meta.dataset == "synthetic" and meta.ignore_index == 255
    assert meta.classes == tuple(SYNTHETIC_INFO.class_names)
    assert meta.head_classes == {"geo": geo}
    assert meta.build == {"num_classes": 6, "geometry": "lean", **BACKBONE}
    assert meta.input_convention == SYNTHETIC_INFO.convention
    assert meta.config == CONFIG.to_dict()
    # a dataset whose void is not 255 (a folder dataset told so) keeps its own
    zero_void = dataclasses.replace(SYNTHETIC_INFO, ignore_index=0)
    assert training_meta(CONFIG, zero_void, zero_void.convention, {}).ignore_index == 0
