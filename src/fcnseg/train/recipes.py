"""The training configuration, one typed dataclass, and the named recipes that fill it.

A recipe is a starting configuration; command-line flags override single fields. The
configuration is saved whole with every checkpoint, beside the git hash of the code.

* ``heavy``: the reference's published solvers (``voc-fcn32s/solver.prototxt`` and
  siblings): batch 1, the loss summed over pixels (``normalize: false``), momentum 0.99,
  weight decay 5e-4, a fixed learning rate of 1e-10 for FCN-32s, 1e-12 for FCN-16s and 1e-14
  for FCN-8s (the paper's "decreased by a factor of 100" per stage).
* ``atonce``: ``voc-fcn8s-atonce``: FCN-8s trained in one stage, its skips scaled down by
  the fixed factors of the at-once net, otherwise ``heavy`` at 1e-10 for 300k iterations.
* ``staged``: ``heavy`` three times, FCN-32s -> FCN-16s -> FCN-8s, each stage initialised
  from the last checkpoint of the one before (section 4.2); see :func:`staged_configs`.
* ``scratch``: a small net trained from random weights on a CPU, which the paper does not do
  (it fine-tunes ImageNet classifiers): a batch-normalised VGG16 at 1/8 width with 128-wide
  fc6/fc7, the lean geometry, Adam at 1e-3 with the ``poly`` policy, the loss averaged over
  pixels, batches of 8 mirrored images. Batch norm and Adam are what make a from-scratch net
  train in minutes; the 1/8 width is what fits a CPU.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fcnseg.errors import FcnsegError
from fcnseg.models import MODELS
from fcnseg.models.fcn import GEOMETRIES
from fcnseg.runtime import AMP_MODES, DEVICES
from fcnseg.train.loss import NORMALIZATIONS
from fcnseg.train.optim import LR_POLICIES, OPTIMIZERS


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved whole with each checkpoint.

    Attributes:
        model: a name from ``fcnseg.list_models()``.
        geometry: ``"caffe"`` or ``"lean"`` (see ``fcnseg.build_model``).
        backbone: backbone options (VGG16: ``width``, ``fc_width``, ``batch_norm``,
            ``in_channels``).
        init: weights to start from: a checkpoint path or a shipped model's name (a coarser
            FCN initialises a finer one as in section 4.2), or a safetensors file of
            Caffe-named tensors (a converted classifier); None for random weights.
        dataset: a name from ``fcnseg.data.list_datasets()`` or ``"synthetic"``.
        root: the dataset's folder.
        train_split: the split trained on.
        val_split: the held-out split evaluated every ``eval_every`` iterations; None for none.
        val_dataset: the held-out split's dataset when it is another one (the reference trains
            on SBD ``train_noval`` and validates on VOC2011 ``seg11valid``); None: ``dataset``.
        val_root: that dataset's folder; None: ``root``.
        recipe: the recipe these values started from.
        optimizer: ``"sgd"`` (with momentum, the paper) or ``"adam"``.
        lr: the base learning rate; biases get twice it.
        lr_policy: ``"fixed"`` (the paper) or ``"poly"``.
        poly_power: the exponent of the poly policy.
        momentum: SGD's momentum, or Adam's first beta.
        weight_decay: L2 decay of the weights (not of biases or batch-norm scales).
        batch_size: images per forward pass (padded to the largest with void labels).
        iter_size: forward passes whose gradients are accumulated into one step (Caffe's
            ``iter_size``); a step sees ``batch_size * iter_size * processes`` images.
        max_iter: optimiser steps of the run.
        loss_normalize: ``"sum"`` over pixels (the reference) or ``"mean"`` over them.
        class_weights: one loss weight per class, or None for none.
        median_frequency: weigh classes by median frequency balancing over the training set.
        loss_sampling: probability ``p`` of keeping each final-layer cell's loss (section
            3.4); below 1 the images per step grow by ``1/p`` (more accumulated passes).
        mirror: random left-right mirroring (section 4.3).
        jitter: random translation of up to this many pixels (section 4.3 uses 32); 0 for none.
        scale: random rescaling by a factor in [min, max], or None.
        crop: random square crops of this size (padded with void where the image is
            smaller), or None; lets whole images of different sizes form one batch.
        eval_every: evaluate and checkpoint every this many steps (0: only at the end).
        amp: ``"none"``, ``"bf16"`` (CPU where supported, or CUDA) or ``"fp16"`` (CUDA).
        compile: run the model through ``torch.compile``.
        seed: every random draw of the run (weights, data order, augmentation, dropout,
            loss sampling) follows from it.
        workers: DataLoader worker processes.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        dataset_options: keyword options of the dataset's reader, given to
            ``fcnseg.data.build_dataset`` for the training and held-out splits (NYUDv2
            ``modality``, SIFT Flow ``task``); JSON values, so no ``transform``.
    """

    model: str = "fcn8s-vgg16"
    geometry: str = "caffe"
    backbone: dict[str, Any] = field(default_factory=dict)
    init: str | None = None
    dataset: str = "voc"
    root: str = "."
    train_split: str = "train"
    val_split: str | None = "val"
    val_dataset: str | None = None
    val_root: str | None = None
    recipe: str = "heavy"
    optimizer: str = "sgd"
    lr: float = 1e-10
    lr_policy: str = "fixed"
    poly_power: float = 0.9
    momentum: float = 0.99
    weight_decay: float = 5e-4
    batch_size: int = 1
    iter_size: int = 1
    max_iter: int = 100_000
    loss_normalize: str = "sum"
    class_weights: list[float] | None = None
    median_frequency: bool = False
    loss_sampling: float = 1.0
    mirror: bool = False
    jitter: int = 0
    scale: list[float] | None = None
    crop: int | None = None
    eval_every: int = 4000
    amp: str = "none"
    compile: bool = False
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    dataset_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _choice("model", self.model, list(MODELS))
        _choice("geometry", self.geometry, GEOMETRIES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("lr_policy", self.lr_policy, LR_POLICIES)
        _choice("loss_normalize", self.loss_normalize, NORMALIZATIONS)
        _choice("amp", self.amp, AMP_MODES)
        _choice("device", self.device, DEVICES)
        for name in ("batch_size", "iter_size", "max_iter"):
            if getattr(self, name) < 1:
                raise FcnsegError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.eval_every < 0 or self.jitter < 0 or self.workers < 0:
            raise FcnsegError("eval_every, jitter and workers must not be negative")
        if not 0 < self.loss_sampling <= 1:
            raise FcnsegError(f"loss_sampling must be in (0, 1], got {self.loss_sampling}")
        if self.lr <= 0:
            raise FcnsegError(f"lr must be positive, got {self.lr}")
        if self.class_weights is not None and self.median_frequency:
            raise FcnsegError("give class weights or median frequency balancing, not both")
        if self.scale is not None:
            self.scale = [float(v) for v in self.scale]
            if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1]:
                raise FcnsegError(f"scale must be two factors 0 < min <= max, got {self.scale}")
        if not isinstance(self.dataset_options, dict) or not all(
            isinstance(key, str) for key in self.dataset_options
        ):
            raise FcnsegError(
                f"dataset_options must map names to values, got {self.dataset_options!r}"
            )
        if "transform" in self.dataset_options:
            raise FcnsegError(
                "dataset_options: 'transform' is not an option of a run; its "
                "augmentation is set by mirror, jitter, scale and crop"
            )
        if self.crop is not None and self.crop < 1:
            raise FcnsegError(f"crop must be a positive size, got {self.crop}")

    @property
    def accumulation(self) -> int:
        """Forward passes per step: ``iter_size``, times ``1/p`` under loss sampling (4.3:
        "we simultaneously increase the number of images per batch by a factor 1/p")."""
        return max(1, round(self.iter_size / self.loss_sampling))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The config ``to_dict`` wrote; an unknown key is an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FcnsegError(f"training config: unknown keys {unknown}")
        return cls(**data)

    def to_json(self) -> str:
        """The config as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


def _choice(name: str, value: object, choices: Any) -> None:
    if value not in choices:
        raise FcnsegError(f"{name} {value!r} is not one of {', '.join(map(str, choices))}")


# The reference's unnormalised learning rate per stride (voc-fcn{32,16,8}s/solver.prototxt),
# by the number of skips the net fuses.
HEAVY_LR = {0: 1e-10, 1: 1e-12, 2: 1e-14}


def _heavy(model: str) -> dict[str, Any]:
    return dict(
        model=model,
        geometry="caffe",
        optimizer="sgd",
        lr=HEAVY_LR[len(MODELS[model].skips)],
        lr_policy="fixed",
        momentum=0.99,
        weight_decay=5e-4,
        batch_size=1,
        iter_size=1,
        max_iter=100_000,
        loss_normalize="sum",
        eval_every=4000,
    )


def _atonce(model: str) -> dict[str, Any]:
    return {**_heavy("fcn8s-atonce-vgg16"), "lr": 1e-10, "max_iter": 300_000}


def _scratch(model: str) -> dict[str, Any]:
    return dict(
        model=model,
        geometry="lean",
        backbone={"width": 1 / 8, "fc_width": 128, "batch_norm": True},
        optimizer="adam",
        lr=1e-3,
        lr_policy="poly",
        momentum=0.9,
        weight_decay=1e-4,
        batch_size=8,
        iter_size=1,
        max_iter=2000,
        loss_normalize="mean",
        mirror=True,
        eval_every=500,
    )


RECIPES: dict[str, Callable[[str], dict[str, Any]]] = {
    "heavy": _heavy,
    "atonce": _atonce,
    "staged": _heavy,
    "scratch": _scratch,
}


def list_recipes() -> list[str]:
    """Names accepted by :func:`recipe`."""
    return list(RECIPES)


def recipe(name: str, model: str = "fcn8s-vgg16", **overrides: Any) -> TrainConfig:
    """The named recipe's configuration for ``model``, with single fields overridden.

    Args:
        name: one of :func:`list_recipes`.
        model: the net to train (``atonce`` always trains ``fcn8s-atonce-vgg16``).
        **overrides: TrainConfig fields to set.
    """
    if name not in RECIPES:
        raise FcnsegError(f"unknown recipe '{name}'; known recipes: {', '.join(RECIPES)}")
    if model not in MODELS:
        raise FcnsegError(f"unknown model '{model}'; known models: {', '.join(MODELS)}")
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise FcnsegError(f"recipe '{name}': unknown settings {unknown}")
    return TrainConfig(**{**RECIPES[name](model), "recipe": name, **overrides})


def staged_models(model: str) -> list[str]:
    """The coarse-to-fine sequence ending at ``model``: ``fcn8s-vgg16`` gives
    ``fcn32s-vgg16, fcn16s-vgg16, fcn8s-vgg16``."""
    family = model.split("-", 1)[1] if "-" in model else ""
    stages = [f"fcn32s-{family}", f"fcn16s-{family}", f"fcn8s-{family}"]
    if model not in stages or not all(stage in MODELS for stage in stages):
        raise FcnsegError(f"no staged sequence ends at '{model}' (try fcn8s-vgg16)")
    return stages[: stages.index(model) + 1]


def staged_configs(config: TrainConfig) -> list[TrainConfig]:
    """One configuration per stage of the staged run ending at ``config.model``.

    Each stage is ``config`` with its own model and, for the heavy recipe, its own learning
    rate (1e-10, 1e-12, 1e-14); stages after the first start from the one before, which the
    training loop fills into ``init``.
    """
    configs = []
    for model in staged_models(config.model):
        lr = HEAVY_LR[len(MODELS[model].skips)] if config.recipe in ("heavy", "staged") else None
        configs.append(dataclasses.replace(config, model=model, lr=lr or config.lr))
    return configs
