"""The training loop end to end on tiny nets: overfitting, resuming, stopping, staging."""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import types
from pathlib import Path

import pytest
import torch
from tiny_runs import tiny_config

from fcnseg.data.synthetic import SYNTHETIC_INFO
from fcnseg.train import DivergedError, fit, fit_staged, load_checkpoint
from fcnseg.train import loop as loop_module
from fcnseg.train.log import read_log


def losses(folder: Path) -> dict[int, float]:
    return {e["iteration"]: e["loss"] for e in read_log(folder) if "loss" in e}


class OneImage(torch.utils.data.Dataset):
    """Bands of five classes over a background: edges an FCN-8s can draw to the pixel."""

    info = SYNTHETIC_INFO

    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        label = torch.zeros(48, 64, dtype=torch.long)
        for k, (start, stop) in enumerate([(5, 17), (17, 30), (38, 51), (51, 60)], start=1):
            label[:, start:stop] = k
        label[20:31, :] = 5
        colours = torch.randint(0, 255, (6, 3), generator=generator).float()
        noise = 10 * torch.randn(3, 48, 64, generator=generator)
        return colours[label].permute(2, 0, 1) + noise - 120, label


def test_overfitting_one_image_drives_the_loss_to_zero_and_mean_iu_to_one(
    tmp_path: Path,
) -> None:
    config = tiny_config(
        backbone={"width": 1 / 8, "fc_width": 32, "batch_norm": True},
        batch_size=1,
        max_iter=150,
        eval_every=150,
        lr=3e-3,
        lr_policy="fixed",
        mirror=False,
        weight_decay=0.0,
    )
    result = fit(config, tmp_path, train_set=OneImage(), val_set=OneImage(), progress=False)
    trajectory = losses(tmp_path)
    assert trajectory[1] > 1.0  # log 6 at the zero-initialised start
    assert max(trajectory[i] for i in range(141, 151)) < 0.05
    assert result.metrics["mean_iu"] == 1.0
    assert result.metrics["pixel_acc"] == 1.0


def test_resumed_run_repeats_the_uninterrupted_trajectory(tmp_path: Path, tiny_data) -> None:
    train, val = tiny_data
    # augmentation, dropout and loss sampling all draw random numbers; the rate is fixed so
    # that stopping at step 3 (max_iter=3) changes nothing else
    config = tiny_config(
        max_iter=6, eval_every=2, mirror=True, jitter=4, loss_sampling=0.5, lr_policy="fixed"
    )
    whole = fit(config, tmp_path / "whole", train_set=train, val_set=val, progress=False)

    first = dataclasses.replace(config, max_iter=3)
    fit(first, tmp_path / "split", train_set=train, val_set=val, progress=False)
    assert load_checkpoint(tmp_path / "split" / "last")[1].iteration == 3
    resumed = fit(
        config, tmp_path / "split", resume=True, train_set=train, val_set=val, progress=False
    )

    assert losses(tmp_path / "split") == losses(tmp_path / "whole")
    assert sorted(losses(tmp_path / "whole")) == list(range(1, 7))
    for name, tensor in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], tensor, rtol=0, atol=0)
    assert resumed.metrics == whole.metrics


def test_ctrl_c_saves_and_the_run_resumes_exactly(
    tmp_path: Path, tiny_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, val = tiny_data
    config = tiny_config(max_iter=5, eval_every=5, mirror=True)
    fit(config, tmp_path / "whole", train_set=train, val_set=val, progress=False)

    real_step = loop_module.train_step
    calls = []

    def step_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            signal.raise_signal(signal.SIGINT)  # arrives in the middle of step 2
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop_module, "train_step", step_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        fit(config, tmp_path / "cut", train_set=train, val_set=val, progress=False)
    monkeypatch.undo()
    # step 2 finished, then the run saved and stopped, before step 3
    assert load_checkpoint(tmp_path / "cut" / "last")[1].iteration == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    fit(config, tmp_path / "cut", resume=True, train_set=train, val_set=val, progress=False)
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, tiny_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, val = tiny_data
    config = tiny_config(max_iter=6, eval_every=2)
    real_loss = loop_module.pixel_loss
    calls = []

    def loss_goes_nan(*args, **kwargs):
        calls.append(1)
        loss = real_loss(*args, **kwargs)
        return loss * math.nan if len(calls) == 3 else loss

    monkeypatch.setattr(loop_module, "pixel_loss", loss_goes_nan)
    with pytest.raises(
        DivergedError, match=r"loss is nan \(lr 0\.0\d+\) at iteration 3.*last\.safetensors"
    ):
        fit(config, tmp_path, train_set=train, val_set=val, progress=False)
    state, metadata = load_checkpoint(tmp_path / "last")
    assert metadata.iteration == 2
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())
    assert max(losses(tmp_path)) == 2  # the bad step was not logged as done


def test_an_update_that_overflows_float32_stops_the_run_in_one_line(
    tmp_path: Path, tiny_data
) -> None:
    # Adam's first step is lr / (1 - beta1) = 1e39: past float32, which torch's update refused
    # with a RuntimeError traceback (a fresh user's --lr 1e38)
    train, val = tiny_data
    config = tiny_config(optimizer="adam", momentum=0.9, lr=1e38, max_iter=3, eval_every=0)
    with pytest.raises(DivergedError, match=r"overflowed float32 \(lr 1e\+38\) at iteration 1"):
        fit(config, tmp_path, train_set=train, val_set=val, progress=False)
    assert not (tmp_path / "last.safetensors").exists()


def test_resume_refuses_a_different_configuration(tmp_path: Path, tiny_data) -> None:
    train, val = tiny_data
    fit(tiny_config(max_iter=2), tmp_path, train_set=train, val_set=val, progress=False)
    with pytest.raises(Exception, match="configured differently.*lr"):
        fit(
            tiny_config(max_iter=4, lr=0.5),
            tmp_path,
            resume=True,
            train_set=train,
            val_set=val,
            progress=False,
        )
    with pytest.raises(Exception, match="already holds a run"):
        fit(tiny_config(max_iter=4), tmp_path, train_set=train, val_set=val, progress=False)


def test_loss_sampling_with_p_one_equals_whole_image_training(tiny_data) -> None:
    train, _ = tiny_data
    images, labels = next(iter(torch.utils.data.DataLoader(train, batch_size=3)))
    labels[0, :5] = 255
    trained = []
    for sampling in (None, 1.0):
        torch.manual_seed(0)
        config = tiny_config()
        model = loop_module.build_model(
            config.model, num_classes=6, geometry=config.geometry, **config.backbone
        )
        optimizer = loop_module.build_optimizer(
            model, name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4
        )
        settings = loop_module.StepSettings(
            torch.device("cpu"),
            None,
            "mean",
            None,
            sampling,
            model.score_geometry["fc7"],
            255,
            False,
        )
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        context = loop_module.distributed.Context(0, 1, torch.device("cpu"))
        step_losses = [
            loop_module.train_step(
                model, optimizer, scaler, [(images, labels, seed)], settings, context
            )[0]
            for seed in range(3)
        ]
        trained.append((step_losses, model.state_dict()))
    (plain_losses, plain), (sampled_losses, sampled) = trained
    assert sampled_losses == plain_losses
    for name, tensor in plain.items():
        torch.testing.assert_close(sampled[name], tensor, rtol=0, atol=0)


def test_loss_sampling_grows_the_images_per_step_by_one_over_p() -> None:
    assert tiny_config(loss_sampling=0.25, iter_size=1).accumulation == 4
    assert tiny_config(loss_sampling=1.0, iter_size=3).accumulation == 3


def test_staged_run_starts_each_stage_from_the_one_before(tmp_path: Path, tiny_data) -> None:
    train, val = tiny_data
    config = tiny_config(max_iter=2, eval_every=2)
    result = fit_staged(config, tmp_path, train_set=train, val_set=val, progress=False)
    stages = sorted(p.name for p in tmp_path.iterdir())
    assert stages == ["stage1-fcn32s-vgg16", "stage2-fcn16s-vgg16", "stage3-fcn8s-vgg16"]
    second = load_checkpoint(tmp_path / stages[1] / "last")[1]
    assert second.config["init"] == str(tmp_path / stages[0] / "best")
    assert result.model.num_classes == 6 and result.iteration == 2
    # FCN-8s starts from FCN-16s: its pool4 skip carries over, its pool3 skip starts at zero
    sixteen = load_checkpoint(tmp_path / stages[1] / "best")[0]
    assert sixteen["score_pool4.weight"].abs().sum() > 0
    assert (
        fit_staged(config, tmp_path, resume=True, train_set=train, val_set=val, progress=False)
        is None
    )  # every stage had finished


def test_tensorboard_gets_the_curves_when_installed(
    tmp_path: Path, tiny_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    scalars = []

    class SummaryWriter:  # stands in for torch.utils.tensorboard's
        def __init__(self, folder: str, purge_step: int) -> None:
            assert folder == str(tmp_path / "tensorboard") and purge_step == 0

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            scalars.append((tag, step))

        def close(self) -> None:
            scalars.append(("closed", -1))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = SummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    train, val = tiny_data
    fit(
        tiny_config(max_iter=2, eval_every=2),
        tmp_path,
        train_set=train,
        val_set=val,
        progress=False,
    )
    assert ("train/loss", 1) in scalars and ("train/lr", 2) in scalars
    assert ("val/mean_iu", 2) in scalars and scalars[-1] == ("closed", -1)
