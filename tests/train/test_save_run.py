"""save_run and restore: a run's checkpoint, with and without what resuming needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import fcnseg
from fcnseg.data.synthetic import SYNTHETIC_INFO
from fcnseg.train import recipe
from fcnseg.train.checkpoint import (
    CheckpointFiles,
    TrainState,
    load_checkpoint,
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
ALONE = Context(0, 1, torch.device("cpu"))
RECORD = {"mean_iu": 0.25, "pixel_acc": 0.5}


def model_and_optimizer(seed: int = 0):
    torch.manual_seed(seed)
    model = fcnseg.build_model("fcn8s-vgg16", num_classes=6, geometry="lean", **BACKBONE)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return model, optimizer


def stepped(seed: int = 0):
    """A model and optimiser one step in, so that the momentum buffers hold something."""
    model, optimizer = model_and_optimizer(seed)
    model(torch.randn(1, 3, 32, 32)).square().mean().backward()
    optimizer.step()
    return model, optimizer


def meta():
    return training_meta(CONFIG, SYNTHETIC_INFO, SYNTHETIC_INFO.convention, {})


def test_last_holds_the_step_the_metrics_and_what_resuming_needs(tmp_path: Path) -> None:
    model, optimizer = stepped()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    state = TrainState(iteration=12, best_mean_iu=0.75, best_iteration=8)
    save_run(tmp_path / "last", model, optimizer, scaler, meta(), state, RECORD, ALONE)

    saved = load_checkpoint(tmp_path / "last")[1]
    assert saved.iteration == 12 and saved.metrics == RECORD
    training = load_training_state(tmp_path / "last")
    assert set(training) == {"optimizer", "scaler", "best_mean_iu", "best_iteration", "iteration"}
    assert training["best_mean_iu"] == 0.75 and training["best_iteration"] == 8
    assert training["iteration"] == 12 and training["scaler"] == scaler.state_dict()

    fresh, fresh_optimizer = model_and_optimizer(seed=1)
    restored, record = restore(
        tmp_path / "last", fresh, fresh_optimizer, torch.amp.GradScaler("cpu", enabled=False)
    )
    assert restored == state and record.metrics == RECORD
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name
    momentum = [s["momentum_buffer"] for s in optimizer.state_dict()["state"].values()]
    again = [s["momentum_buffer"] for s in fresh_optimizer.state_dict()["state"].values()]
    assert len(momentum) == len(again) > 0
    assert all(torch.equal(a, b) for a, b in zip(momentum, again, strict=True))


@pytest.mark.parametrize("without", ["optimizer", "scaler"])
def test_a_checkpoint_without_an_optimiser_or_scaler_holds_no_training_state(
    tmp_path: Path, without: str
) -> None:
    model, optimizer = stepped()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    parts = {"optimizer": optimizer, "scaler": scaler, without: None}
    state = TrainState(iteration=3)
    save_run(
        tmp_path / "best", model, parts["optimizer"], parts["scaler"], meta(), state, RECORD, ALONE
    )
    files = CheckpointFiles.of(tmp_path / "best")
    assert files.weights.is_file() and not files.state.exists()
    saved = load_checkpoint(tmp_path / "best")[1]
    assert saved.iteration == 3 and saved.metrics == RECORD


def test_only_the_main_process_writes(tmp_path: Path) -> None:
    model, optimizer = stepped()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    # rank 1: not the main process (world size 1, so that the barrier needs no process group)
    second_alone = Context(1, 1, torch.device("cpu"))
    assert not second_alone.is_main
    save_run(tmp_path / "last", model, optimizer, scaler, meta(), TrainState(), None, second_alone)
    assert list(tmp_path.iterdir()) == []
