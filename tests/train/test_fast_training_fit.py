"""``fit`` trains through the fast training model (issue 13) on a CPU: the plain model's
gradients to fp32 rounding, its checkpoints those of the plain model, and a resumed run still
bit-equal to an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_runs import tiny_config

from fcnseg.inference import optimize
from fcnseg.inference.border import BorderSegment
from fcnseg.inference.export import relative_error
from fcnseg.inference.optimize import GemmConv2d
from fcnseg.train import fit, load_checkpoint
from fcnseg.train import loop as loop_module
from fcnseg.train.log import read_log

# A Caffe-geometry net without batch normalisation, so that the border path covers the
# whole trunk; fc6 (8 x 7 x 7 x 64 = 25k weights) is made big enough for the GEMM path.
CAFFE_TINY = {"width": 1 / 8, "fc_width": 64, "batch_norm": False}


@pytest.fixture
def spied(monkeypatch: pytest.MonkeyPatch) -> list[torch.nn.Module]:
    """The fast nets ``fit`` builds, with a GEMM threshold that takes the tiny fc6 and fc7."""
    monkeypatch.setattr(optimize, "GEMM_MIN_WEIGHTS", 4000)
    built: list[torch.nn.Module] = []

    def spy(model: torch.nn.Module) -> torch.nn.Module:
        built.append(optimize.fast_training_model(model))
        return built[-1]

    monkeypatch.setattr(loop_module, "fast_training_model", spy)
    return built


def caffe_config(**overrides: object):
    settings: dict[str, object] = dict(
        geometry="caffe",
        backbone=CAFFE_TINY,
        max_iter=4,
        eval_every=4,
        optimizer="sgd",
        lr=1e-3,
        lr_policy="fixed",  # a run of 2 steps then resumed to 4 follows the same rates
    )
    settings.update(overrides)
    return tiny_config(**settings)


def weights(folder: Path) -> torch.Tensor:
    state, _ = load_checkpoint(folder / "last")
    return torch.cat([t.flatten().double() for t in state.values() if t.is_floating_point()])


def train(config, out: Path, data, resume: bool = False) -> None:
    """``fit`` on the tiny data's (train, val) pair."""
    train_set, val_set = data
    fit(config, out, resume=resume, train_set=train_set, val_set=val_set, progress=False)


def losses(folder: Path) -> list[float]:
    return [e["loss"] for e in read_log(folder) if "loss" in e]


def test_fit_trains_the_plain_function_through_the_fast_model(
    tmp_path: Path, tiny_data, spied: list[torch.nn.Module]
) -> None:
    fast, plain = tmp_path / "fast", tmp_path / "plain"
    train(caffe_config(), fast, tiny_data)
    assert len(spied) == 1
    layers = {type(m) for m in spied[0].modules()}
    assert GemmConv2d in layers and BorderSegment in layers
    train(caffe_config(fast_training=False), plain, tiny_data)
    assert len(spied) == 1  # fast_training=False trains the plain model
    assert losses(fast) == pytest.approx(losses(plain), rel=1e-4)
    reference = weights(plain)
    assert relative_error(weights(fast), reference) <= 1e-5
    assert load_checkpoint(fast / "last")[0].keys() == load_checkpoint(plain / "last")[0].keys()
    # the bound tells runs apart: another seed's run is far from it
    other = tmp_path / "other"
    train(caffe_config(seed=1), other, tiny_data)
    assert relative_error(weights(other), reference) > 1e-2


def test_resumed_fast_run_is_bit_equal_to_an_uninterrupted_one(
    tmp_path: Path, tiny_data, spied: list[torch.nn.Module]
) -> None:
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    train(caffe_config(), whole, tiny_data)
    train(caffe_config(max_iter=2), halves, tiny_data)
    train(caffe_config(), halves, tiny_data, resume=True)
    assert len(spied) == 3
    assert torch.equal(weights(halves), weights(whole))
    assert losses(halves) == losses(whole)
