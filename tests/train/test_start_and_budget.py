"""Starting a run right: recipes that cannot learn are refused, sizes that cannot fit are
refused before memory is spent, a stop condition ends a run cleanly, and the camvid-scratch
recipe is the shipped model's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from tiny_runs import TINY_BACKBONE, tiny_config

import fcnseg
from fcnseg.errors import FcnsegError
from fcnseg.train import fit, fit_staged, load_checkpoint, recipe, staged_configs
from fcnseg.train.budget import check_sizes, estimate_step_bytes, image_sizes
from fcnseg.train.log import read_log
from fcnseg.train.loop import time_budget
from fcnseg.train.recipes import (
    TrainConfig,
    absolute_paths,
    check_start,
    config_sources,
    describe_config,
    trajectory_changes,
)


def losses(folder: Path) -> dict[int, float]:
    return {e["iteration"]: e["loss"] for e in read_log(folder) if "loss" in e}


@pytest.mark.parametrize("name", ["heavy", "atonce", "staged"])
def test_pretrained_recipes_from_random_weights_are_refused_in_one_line(name: str) -> None:
    config = recipe(name, dataset="synthetic")
    with pytest.raises(FcnsegError) as error:
        check_start(config)
    message = str(error.value)
    assert "\n" not in message and "--init" in message and "--allow-random-init" in message
    check_start(dataclasses.replace(config, init="camvid-fcn8s"))
    check_start(dataclasses.replace(config, allow_random_init=True))
    check_start(recipe("scratch"))
    # fit refuses before it reads any data or builds a net
    with pytest.raises(FcnsegError, match="fine-tunes pretrained weights"):
        fit(config, "never-written", progress=False)
    assert not Path("never-written").exists()


def test_camvid_scratch_is_the_shipped_models_recipe() -> None:
    config = recipe("camvid-scratch", root="/data/camvid")
    stages = staged_configs(config)
    assert [(s.model, s.lr, s.max_iter) for s in stages] == [
        ("fcn32s-vgg16", 2e-3, 5600),
        ("fcn16s-vgg16", 1e-3, 2160),
        ("fcn8s-vgg16", 1e-3, 4080),
    ]
    assert config.train_split == "train+val" and config.val_split == "val"
    assert config.scale == [0.75, 1.5] and config.colour_jitter == 0.2
    assert config.backbone == {"width": 1 / 4, "fc_width": 256, "batch_norm": True}
    assert config.amp == "bf16"
    # the shipped FCN-8s was trained (by benchmarks/camvid.py) with these settings
    shipped = dict(fcnseg.load_model("camvid-fcn8s").meta.config)
    final = stages[-1].to_dict()
    defaults = TrainConfig().to_dict()
    for key in (
        "model",
        "geometry",
        "backbone",
        "dataset",
        "train_split",
        "optimizer",
        "lr",
        "lr_policy",
        "poly_power",
        "momentum",
        "weight_decay",
        "batch_size",
        "iter_size",
        "max_iter",
        "loss_normalize",
        "loss_sampling",
        "mirror",
        "jitter",
        "scale",
        "colour_jitter",
        "crop",
        "seed",
        "amp",
    ):
        # a field newer than the shipped file (colour_jitter) was at its default then
        assert final[key] == shipped.get(key, defaults[key]), key
    # its class weights were the square roots of median frequency balancing's
    assert final["median_frequency"] and final["median_frequency_power"] == 0.5
    assert all(not s.stages for s in stages)
    # a flag replaces the per-stage values: --max-iter 5 runs 5 steps per stage
    short = staged_configs(recipe("camvid-scratch", max_iter=5))
    assert [(s.lr, s.max_iter) for s in short] == [(2e-3, 5), (1e-3, 5), (1e-3, 5)]


def test_the_printed_configuration_names_every_field_and_its_source() -> None:
    config = recipe("scratch", batch_size=3)
    sources = config_sources("scratch", "fcn8s-vgg16", {"batch_size"})
    text = describe_config(config, sources)
    # the median-frequency fields show as class_weights, by the name --class-weights takes
    balancing = {"median_frequency", "median_frequency_power"}
    for field in dataclasses.fields(config):
        assert (f"  {field.name} " in text) is (field.name not in balancing)
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert lines["batch_size"].split()[1:] == ["3", "flag"]
    assert lines["lr"].split()[1:] == ["0.001", "recipe", "scratch"]
    assert lines["seed"].split()[1:] == ["0", "default"]
    assert lines["class_weights"].split()[1:] == ["none", "default"]


@pytest.mark.parametrize(
    ("changes", "shown"),
    [
        ({}, "sqrt-median"),
        ({"median_frequency_power": 1.0}, "median"),
        ({"class_weights": [1.0, 2.5], "median_frequency": False}, "1,2.5"),
    ],
)
def test_the_printed_class_weights_read_as_the_flag_takes_them(changes: dict, shown: str) -> None:
    config = dataclasses.replace(recipe("camvid-scratch", model="fcn8s-vgg16"), **changes)
    sources = config_sources("camvid-scratch", "fcn8s-vgg16", set())
    lines = {line.split()[0]: line for line in describe_config(config, sources).splitlines()}
    assert lines["class_weights"].split()[1] == shown


def test_runs_store_absolute_paths_and_resume_may_move_the_data(tmp_path: Path) -> None:
    config = recipe("scratch", dataset="folder", root="data/x", val_root="../v")
    absolute = absolute_paths(config)
    assert Path(absolute.root).is_absolute() and Path(absolute.val_root).is_absolute()
    assert absolute.root.endswith("data/x")
    moved = dataclasses.replace(absolute, root="/elsewhere", max_iter=9, workers=2)
    assert trajectory_changes(absolute, moved) == []
    assert trajectory_changes(absolute, dataclasses.replace(absolute, lr=0.5, crop=9)) == [
        "crop",
        "lr",
    ]


def test_a_crop_larger_than_every_image_is_refused_before_training(tmp_path: Path, tiny_data):
    train, val = tiny_data  # 32 x 32 images
    with pytest.raises(FcnsegError) as error:
        fit(tiny_config(crop=5000), tmp_path, train_set=train, val_set=val, progress=False)
    message = str(error.value)
    assert "crop 5000 is larger than every training image" in message and "\n" not in message
    assert not (tmp_path / "log.jsonl").exists()
    # a crop larger than the images but within reach of the scale augmentation is fine
    config = tiny_config(crop=40, scale=[1.0, 1.5])
    model = fcnseg.build_model("fcn8s-vgg16", num_classes=6, geometry="lean", **TINY_BACKBONE)
    check_sizes(model, train, config, torch.device("cpu"), budget=1 << 40)


def test_a_batch_over_the_memory_budget_is_refused_before_training(
    tmp_path: Path, tiny_data
) -> None:
    train, val = tiny_data
    config = tiny_config(batch_size=4)
    model = fcnseg.build_model("fcn8s-vgg16", num_classes=6, geometry="lean", **TINY_BACKBONE)
    small = estimate_step_bytes(model, (4, 3, 64, 64), "adam")
    large = estimate_step_bytes(model, (4, 3, 128, 128), "adam")
    assert small is not None and large is not None
    # activations grow with the pixels (but for the coarse maps' borders); the weights do not
    assert large.weights == small.weights
    assert 3.5 < large.activations / small.activations <= 4
    with pytest.raises(FcnsegError) as error:
        fit(config, tmp_path, train_set=train, val_set=val, progress=False, memory_budget=1000)
    message = str(error.value)
    assert message.startswith("a training step of 4 image(s) of 32x32 needs about")
    assert "budget" in message and "\n" not in message
    assert not (tmp_path / "log.jsonl").exists()


def test_a_step_over_budget_is_refused_before_a_weight_is_allocated(
    tmp_path: Path, tiny_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a VGG16 100 times wide was killed by the kernel while its weights were initialised:
    # the estimate must come from the net's shapes (meta tensors), before the real net exists
    from fcnseg.train import loop

    built: list[str] = []
    real = loop.build_model

    def recording(*args: object, **kwargs: object) -> torch.nn.Module:
        model = real(*args, **kwargs)
        built.append(next(model.parameters()).device.type)
        return model

    monkeypatch.setattr(loop, "build_model", recording)
    train, val = tiny_data
    with pytest.raises(FcnsegError, match="budget on cpu: lower the batch size or crop"):
        fit(
            tiny_config(),
            tmp_path,
            train_set=train,
            val_set=val,
            memory_budget=1.5e6,  # the weights fit (1.4 MB), the step does not
            progress=False,
        )
    assert built == ["meta"]
    # a batch fits a budget that holds the weights; where they alone do not, a batch cannot
    with pytest.raises(FcnsegError, match=r"the weights alone do not fit, a narrower net would"):
        fit(tiny_config(), tmp_path, train_set=train, val_set=val, memory_budget=1, progress=False)
    assert built == ["meta", "meta"]
    # within the budget, the real net follows the estimate's, from the run's seed as before
    fit(tiny_config(max_iter=1), tmp_path / "ok", train_set=train, val_set=val, progress=False)
    assert built == ["meta", "meta", "meta", "cpu"]


def test_image_sizes_come_from_the_file_headers(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "d"
    (root / "images" / "train").mkdir(parents=True)
    (root / "masks" / "train").mkdir(parents=True)
    (root / "classes.txt").write_text("a\nb\n")
    for name, (height, width) in {"p": (20, 30), "q": (41, 7)}.items():
        Image.new("RGB", (width, height)).save(root / "images" / "train" / f"{name}.png")
        Image.new("L", (width, height)).save(root / "masks" / "train" / f"{name}.png")
    dataset = fcnseg.data.build_dataset("folder", root, "train")
    assert image_sizes(dataset) == [(20, 30), (41, 7)]


def test_a_stop_condition_ends_the_run_saved_and_resumable(tmp_path: Path, tiny_data) -> None:
    train, val = tiny_data
    config = tiny_config(max_iter=5, eval_every=5, lr_policy="fixed")
    fit(config, tmp_path / "whole", train_set=train, val_set=val, progress=False)
    result = fit(
        config,
        tmp_path / "cut",
        train_set=train,
        val_set=val,
        progress=False,
        stop=lambda iteration: iteration >= 2,
    )
    assert result.stopped and result.iteration == 2
    # the run evaluates where the condition stopped it: the record the log and `last` hold
    evaluations = [e for e in read_log(tmp_path / "cut") if "eval" in e]
    assert [e["iteration"] for e in evaluations] == [2]
    assert result.metrics == evaluations[0]["eval"]
    assert load_checkpoint(tmp_path / "cut" / "last")[1].metrics == result.metrics
    assert load_checkpoint(tmp_path / "cut" / "last")[1].iteration == 2
    resumed = fit(config, tmp_path / "cut", resume=True, train_set=train, val_set=val)
    assert not resumed.stopped and resumed.iteration == 5
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")

    # a spent time budget stops after the first step; a staged run then starts no more stages
    staged = fit_staged(
        tiny_config(max_iter=3, eval_every=0),
        tmp_path / "staged",
        train_set=train,
        val_set=val,
        progress=False,
        stop=time_budget(0),
    )
    assert staged is not None and staged.stopped and staged.iteration == 1
    assert [p.name for p in (tmp_path / "staged").iterdir()] == ["stage1-fcn32s-vgg16"]

    # a condition met on a stage's last step finishes that stage and starts no later one
    # (it used to start every later stage, each stopped after a step); resuming goes on
    at_end = fit_staged(
        tiny_config(max_iter=2, eval_every=0),
        tmp_path / "at-end",
        train_set=train,
        val_set=val,
        progress=False,
        stop=lambda iteration: iteration >= 2,
    )
    assert at_end is not None and at_end.stopped and at_end.iteration == 2
    assert [p.name for p in (tmp_path / "at-end").iterdir()] == ["stage1-fcn32s-vgg16"]
    rest = fit_staged(
        tiny_config(max_iter=2, eval_every=0),
        tmp_path / "at-end",
        resume=True,
        train_set=train,
        val_set=val,
        progress=False,
    )
    assert rest is not None and not rest.stopped and rest.iteration == 2
    assert sorted(p.name for p in (tmp_path / "at-end").iterdir() if p.is_dir()) == [
        "stage1-fcn32s-vgg16",
        "stage2-fcn16s-vgg16",
        "stage3-fcn8s-vgg16",
    ]
