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
* ``camvid-scratch``: the shipped ``camvid-fcn8s`` (docs/camvid.md): ``scratch`` at 1/4 width
  (fc6/fc7 256) under bf16 autocast (float32 where the CPU has no native bf16), staged
  FCN-32s -> FCN-16s -> FCN-8s on CamVid ``train+val``, random rescaling by 0.75-1.5 and
  colour jitter 0.2, random 320x320 crops in batches of 4, the square root of median frequency
  balancing, 5600 / 2160 / 4080 steps at Adam rates 2e-3 / 1e-3 / 1e-3, each stage scored on
  ``val`` at its end and the next started from it. Its augmentation was chosen on ``train``
  (``train_split="train"``, ``val`` held out) and on a fold holding out the daytime drive
  ``0006R0``; its steps, 1.6 times the second version's for two threads, and its 1/4 width
  under bf16, on that fold.

``heavy``, ``atonce`` and ``staged`` fine-tune pretrained weights (``init``); started from
random weights they cannot learn, and :func:`check_start` refuses them unless
``allow_random_init`` is set.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcnseg.data import PATH_OPTIONS, SYNTHETIC, split_names
from fcnseg.errors import ConfigError, FcnsegError
from fcnseg.models import MODELS
from fcnseg.models.fcn import GEOMETRIES
from fcnseg.models.registry import check_backbone_options
from fcnseg.models.vgg import check_widths
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
        train_split: the split trained on; several joined by "+" (``"train+val"``).
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
        median_frequency_power: raise the median frequency weights to this power (0.5: their
            square root, a milder push towards the rare classes, as the shipped CamVid model).
        loss_sampling: probability ``p`` of keeping each final-layer cell's loss (section
            3.4); below 1 the images per step grow by ``1/p`` (more accumulated passes).
        ohem_thresh: online hard example mining (``fcnseg.train.loss.Ohem``): only the pixels
            whose true class has a probability below this count in the loss, at least
            ``ohem_min_kept`` of them per forward pass (the hardest); None for none (the paper).
        ohem_min_kept: the fewest pixels a forward pass keeps under OHEM.
        mirror: random left-right mirroring (section 4.3).
        jitter: random translation of up to this many pixels (section 4.3 uses 32); 0 for none.
        scale: random rescaling by a factor in [min, max], or None.
        colour_jitter: strength ``s`` of random brightness, contrast and saturation factors in
            [1 - s, 1 + s] (``fcnseg.data.transforms.RandomColourJitter``); 0 for none.
        crop: random square crops of this size (padded with void where the image is
            smaller), or None; lets whole images of different sizes form one batch.
        eval_every: evaluate and checkpoint every this many steps (0: only at the end).
        amp: ``"none"``, ``"bf16"`` (CPU where supported, or CUDA) or ``"fp16"`` (CUDA).
        compile: run the model through ``torch.compile``.
        fast_training: on a CPU, train through
            ``fcnseg.inference.optimize.fast_training_model`` (fc6/fc7 as one matrix product
            each, wide 3x3 convolutions' forward passes by NNPACK's Winograd convolution on
            AVX2 CPUs, a Caffe-geometry net's padded border computed once): the same
            gradients to fp32 rounding, faster per step (benchmarks/README.md). False trains
            the plain model.
        seed: every random draw of the run (weights, data order, augmentation, dropout,
            loss sampling) follows from it.
        workers: DataLoader worker processes.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        dataset_options: keyword options of the dataset's reader, given to
            ``fcnseg.data.build_dataset`` for the training and held-out splits (NYUDv2
            ``modality``, SIFT Flow ``task``); JSON values, so no ``transform``.
        stages: the stages of a staged run (section 4.2), coarse to fine, each a dict of the
            fields it sets (``model``, and e.g. ``lr`` and ``max_iter``); empty for a run of
            one net. :func:`fcnseg.train.fit_staged` trains them in turn.
        allow_random_init: run a recipe that fine-tunes pretrained weights (``heavy``,
            ``atonce``, ``staged``) from random weights anyway (see :func:`check_start`).
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
    median_frequency_power: float = 1.0
    loss_sampling: float = 1.0
    ohem_thresh: float | None = None
    ohem_min_kept: int = 100_000
    mirror: bool = False
    jitter: int = 0
    scale: list[float] | None = None
    colour_jitter: float = 0.0
    crop: int | None = None
    eval_every: int = 4000
    amp: str = "none"
    compile: bool = False
    fast_training: bool = True
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    dataset_options: dict[str, Any] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    allow_random_init: bool = False

    def __post_init__(self) -> None:
        _choice("model", self.model, list(MODELS))
        _choice("geometry", self.geometry, GEOMETRIES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("lr_policy", self.lr_policy, LR_POLICIES)
        _choice("loss_normalize", self.loss_normalize, NORMALIZATIONS)
        _choice("amp", self.amp, AMP_MODES)
        _choice("device", self.device, DEVICES)
        # a hand-edited config.json or a Python caller's string fails here, not in a comparison
        for name in _NUMBERS:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            whole = name in _WHOLE_NUMBERS
            kinds = (int,) if whole else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds):
                raise ConfigError(
                    name, f"must be {'a whole number' if whole else 'a number'}, got {value!r}"
                )
        for name in ("batch_size", "iter_size", "max_iter"):
            _check(name, getattr(self, name) >= 1, "must be at least 1", getattr(self, name))
        for name in ("eval_every", "jitter", "workers"):
            _check(name, getattr(self, name) >= 0, "must not be negative", getattr(self, name))
        _check(
            "loss_sampling", 0 < self.loss_sampling <= 1, "must be in (0, 1]", self.loss_sampling
        )
        # iter_size / p forward passes make a step (section 4.3): a p of 1e-300, or an
        # iter_size of 1e9, would never end one
        _check(
            "loss_sampling" if self.loss_sampling < 1 else "iter_size",
            self.accumulation <= MAX_PASSES,
            f"means {self.accumulation:g} forward passes per step (iter_size / loss_sampling); "
            f"at most {MAX_PASSES}",
            self.loss_sampling if self.loss_sampling < 1 else self.iter_size,
        )
        if self.ohem_thresh is not None:
            _check("ohem_thresh", 0 < self.ohem_thresh <= 1, "must be in (0, 1]", self.ohem_thresh)
        _check("ohem_min_kept", self.ohem_min_kept >= 0, "must not be negative", self.ohem_min_kept)
        # a hand-edited config.json's "backbone": null was an AttributeError traceback
        _check(
            "backbone",
            isinstance(self.backbone, Mapping),
            'must be an object of options such as {"width": 0.25}',
            repr(self.backbone),
        )
        check_backbone_options(self.model, self.backbone)
        check_widths(self.backbone.get("width", 1.0), self.backbone.get("fc_width", 4096))
        # NaN fails every comparison, so each range is written as what holds
        _check("lr", 0 < self.lr < math.inf, "must be a finite number above 0", self.lr)
        # Adam's first beta or SGD's momentum: at 1 the step never forgets a gradient
        _check("momentum", 0 <= self.momentum < 1, "must be in [0, 1)", self.momentum)
        _check(
            "weight_decay",
            0 <= self.weight_decay < math.inf,
            "must be finite and not negative",
            self.weight_decay,
        )
        _check(
            "poly_power",
            0 <= self.poly_power < math.inf,
            "must be finite and not negative",
            self.poly_power,
        )
        if self.class_weights is not None and self.median_frequency:
            raise FcnsegError("give class weights or median frequency balancing, not both")
        if self.class_weights is not None:
            weights = self.class_weights
            _check(
                "class_weights",
                isinstance(weights, list)
                and all(_is_number(w) and 0 <= w <= FLOAT32_MAX for w in weights)
                and any(w > 0 for w in weights),
                "must be finite float32 numbers, none negative, one at least above 0 (all 0 "
                "would train nothing)",
                weights,
            )
        if self.scale is not None:
            _check(
                "scale",
                isinstance(self.scale, (list, tuple)) and all(map(_is_number, self.scale)),
                "must be two finite factors 0 < min <= max",
                self.scale,
            )
            self.scale = [float(v) for v in self.scale]
            _check(
                "scale",
                len(self.scale) == 2 and 0 < self.scale[0] <= self.scale[1] < math.inf,
                "must be two finite factors 0 < min <= max",
                self.scale,
            )
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
        split_names(self.train_split)  # a malformed join fails here, before any run starts
        if self.val_split is not None:
            split_names(self.val_split)
        _check(
            "colour_jitter", 0 <= self.colour_jitter < 1, "must be in [0, 1)", self.colour_jitter
        )
        if self.crop is not None:
            _check("crop", self.crop >= 1, "must be a positive size", self.crop)
        _check(
            "median_frequency_power",
            0 < self.median_frequency_power < math.inf,
            "must be a finite number above 0",
            self.median_frequency_power,
        )
        self.stages = [dict(stage) for stage in self.stages]
        known = {f.name for f in dataclasses.fields(self)} - {"stages"}
        for number, stage in enumerate(self.stages, start=1):
            unknown = sorted(set(stage) - known)
            if unknown or "model" not in stage:
                raise FcnsegError(
                    f"stage {number}: expected a model and TrainConfig fields, got {stage}"
                )
            _choice(f"stage {number} model", stage["model"], list(MODELS))

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


def held_out_overlap(config: TrainConfig) -> list[str]:
    """The split names the held-out split shares with the training split, when both are of
    the same dataset and folder (``train_split="train+val"`` and ``val_split="val"``: val).
    Its scores are then not held out, and ``best`` is chosen on training images."""
    if config.val_split is None:
        return []
    if (config.val_dataset or config.dataset) != config.dataset:
        return []
    if (config.val_root or config.root) != config.root:
        return []
    trained = set(split_names(config.train_split))
    return [name for name in split_names(config.val_split) if name in trained]


# TrainConfig's numeric fields, those that must be whole, and those that may be None
_NUMBERS = (
    "lr", "poly_power", "momentum", "weight_decay", "batch_size", "iter_size", "max_iter",
    "median_frequency_power", "loss_sampling", "ohem_thresh", "ohem_min_kept", "jitter",
    "colour_jitter", "crop", "eval_every", "seed", "workers",
)  # fmt: skip
_WHOLE_NUMBERS = (
    "batch_size", "iter_size", "max_iter", "ohem_min_kept", "jitter", "crop", "eval_every",
    "seed", "workers",
)  # fmt: skip
_OPTIONAL = ("ohem_thresh", "crop")

# The most forward passes a step may take (``iter_size / loss_sampling``).
MAX_PASSES = 10_000

# The loss is computed in float32: a class weight above this is infinite there.
FLOAT32_MAX = 3.4028234663852886e38


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(field: str, holds: bool, problem: str, value: object) -> None:
    """Raises ConfigError naming ``field`` unless ``holds``."""
    if not holds:
        raise ConfigError(field, f"{problem}, got {value}")


def _choice(name: str, value: object, choices: Any) -> None:
    if value not in choices:
        raise FcnsegError(f"{name} {value!r} is not one of {', '.join(map(str, choices))}")


# The reference's unnormalised learning rate per stride (voc-fcn{32,16,8}s/solver.prototxt),
# by the number of skips the net fuses.
HEAVY_LR = {0: 1e-10, 1: 1e-12, 2: 1e-14}

# The shipped ``camvid-fcn8s`` (docs/camvid.md): per stage, the net, Adam's base rate and the
# steps of batches of 4 that the shipped run trained.
CAMVID_STAGES = (
    ("fcn32s-vgg16", 2e-3, 5600),
    ("fcn16s-vgg16", 1e-3, 2160),
    ("fcn8s-vgg16", 1e-3, 4080),
)


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


def _staged(model: str) -> dict[str, Any]:
    stages = [
        {"model": stage, "lr": HEAVY_LR[len(MODELS[stage].skips)]} for stage in staged_models(model)
    ]
    return {**_heavy(model), "stages": stages}


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


def _camvid_scratch(model: str) -> dict[str, Any]:
    models = staged_models(model)
    if models[0] != CAMVID_STAGES[0][0]:
        raise FcnsegError(f"recipe 'camvid-scratch' trains the VGG16 FCNs, not '{model}'")
    stages = [
        {"model": name, "lr": lr, "max_iter": steps}
        for name, lr, steps in CAMVID_STAGES[: len(models)]
    ]
    return {
        **_scratch(model),
        # four times the 1/8-width net's parameters; bf16 is what fits its steps in the
        # 90 minutes on two cores of an AMX CPU (docs/camvid.md)
        "backbone": {"width": 1 / 4, "fc_width": 256, "batch_norm": True},
        "amp": "bf16",
        "dataset": "camvid",
        # the shipped model's: the recipe was chosen on train alone, scored on val
        "train_split": "train+val",
        "val_split": "val",
        "batch_size": 4,
        "crop": 320,
        # mild scale and colour augmentation: the test drives differ from the training ones
        # in light and in distance to the camera (docs/camvid.md)
        "scale": [0.75, 1.5],
        "colour_jitter": 0.2,
        "median_frequency": True,
        "median_frequency_power": 0.5,
        # scored once, at the end of each stage: the next stage starts from ``best``, which is
        # then the stage's last step, as in the shipped run
        "eval_every": 0,
        "lr": stages[-1]["lr"],
        "max_iter": stages[-1]["max_iter"],
        "stages": stages,
    }


@dataclass(frozen=True)
class Recipe:
    """A named starting configuration.

    Attributes:
        name: what ``--recipe`` takes.
        summary: one line on what it is for.
        settings: the TrainConfig fields it sets, for a model name.
        pretrained: its learning rate and schedule assume pretrained weights (``init``): from
            random weights it cannot learn, and :func:`check_start` refuses it.
    """

    name: str
    summary: str
    settings: Callable[[str], dict[str, Any]]
    pretrained: bool


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe(
            "heavy",
            "the paper's: fine-tunes pretrained weights (--init), SGD, batch 1, summed loss, "
            "lr 1e-10/1e-12/1e-14 for FCN-32s/16s/8s",
            _heavy,
            pretrained=True,
        ),
        Recipe(
            "atonce",
            "the at-once FCN-8s, heavy at 1e-10 for 300k steps; needs --init",
            _atonce,
            pretrained=True,
        ),
        Recipe(
            "staged",
            "heavy three times, FCN-32s -> 16s -> 8s, each from the one before; needs --init",
            _staged,
            pretrained=True,
        ),
        Recipe(
            "scratch",
            "from random weights on a CPU: a batch-normalised VGG16 at 1/8 width, Adam 1e-3, "
            "poly, batches of 8",
            _scratch,
            pretrained=False,
        ),
        Recipe(
            "camvid-scratch",
            "the shipped camvid-fcn8s: scratch at 1/4 width, bf16, staged FCN-32s -> 16s -> "
            "8s on CamVid train+val, rescaling 0.75-1.5, colour jitter 0.2, 5600/2160/4080 "
            "steps of 4 crops of 320, lr 2e-3/1e-3/1e-3",
            _camvid_scratch,
            pretrained=False,
        ),
    )
}


def list_recipes() -> list[str]:
    """Names accepted by :func:`recipe`."""
    return list(RECIPES)


def recipe_settings(name: str, model: str = "fcn8s-vgg16") -> dict[str, Any]:
    """The fields the named recipe sets for ``model`` (``recipe`` included), as a dict.

    Raises:
        FcnsegError: unknown recipe or model, or a staged recipe for a model without stages.
    """
    if name not in RECIPES:
        raise FcnsegError(f"unknown recipe '{name}'; known recipes: {', '.join(RECIPES)}")
    if model not in MODELS:
        raise FcnsegError(f"unknown model '{model}'; known models: {', '.join(MODELS)}")
    return {**RECIPES[name].settings(model), "recipe": name}


def recipe(name: str, model: str = "fcn8s-vgg16", **overrides: Any) -> TrainConfig:
    """The named recipe's configuration for ``model``, with single fields overridden.

    A field given in ``overrides`` also replaces the per-stage values of a staged recipe
    (``lr=1e-3`` trains every stage at 1e-3).

    Args:
        name: one of :func:`list_recipes`.
        model: the net to train (``atonce`` always trains ``fcn8s-atonce-vgg16``; a staged
            recipe trains the stages that end at it).
        **overrides: TrainConfig fields to set.

    Raises:
        FcnsegError: unknown recipe, model or field, or a value a field does not take.
    """
    settings = recipe_settings(name, model)
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)})
    if unknown:
        raise FcnsegError(f"recipe '{name}': unknown settings {unknown}")
    if "stages" not in overrides and settings.get("stages"):
        settings["stages"] = [
            {key: value for key, value in stage.items() if key == "model" or key not in overrides}
            for stage in settings["stages"]
        ]
    return TrainConfig(**{**settings, **overrides})


# Where a value of a configuration came from, as :func:`config_sources` names it.
FROM_FLAG = "flag"
FROM_DEFAULT = "default"


def config_sources(name: str, model: str, given: Iterable[str]) -> dict[str, str]:
    """Where each field of ``recipe(name, model, **overrides)`` comes from.

    Args:
        name: the recipe.
        model: the model it was built for.
        given: the fields the caller set (the overrides, and ``model`` if the user chose it).

    Returns:
        Field name to ``"flag"`` (set by the caller), ``"recipe NAME"`` (set by the recipe)
        or ``"default"`` (TrainConfig's default), for every field.
    """
    given = set(given)
    settings = recipe_settings(name, model)
    return {
        f.name: FROM_FLAG
        if f.name in given
        else f"recipe {name}"
        if f.name in settings
        else FROM_DEFAULT
        for f in dataclasses.fields(TrainConfig)
    }


def describe_config(config: TrainConfig, sources: Mapping[str, str] | None = None) -> str:
    """Every field of ``config``, one per line, with where its value came from.

    Args:
        config: the configuration.
        sources: field name to its source (:func:`config_sources`); none shown when None.
    """
    sources = sources or {}
    per_stage = set.intersection(*(set(stage) for stage in config.stages)) if config.stages else ()
    rows = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in ("median_frequency", "median_frequency_power"):
            continue  # shown as class_weights, by the name --class-weights takes
        if f.name == "class_weights":
            source = "median_frequency" if config.median_frequency else f.name
            rows.append((f.name, class_weights_text(config), sources.get(source, "")))
            continue
        if f.name == "stages":
            for number, stage in enumerate(value, start=1):
                settings = " ".join(f"{key} {_value_text(v)}" for key, v in stage.items())
                rows.append(("stages" if number == 1 else "", f"{number}. {settings}", ""))
            if value:
                rows[-len(value)] = (*rows[-len(value)][:2], sources.get(f.name, ""))
                continue
            text = "none (one net)"
        else:
            text = _value_text(value)
            if f.name in per_stage and f.name != "model":
                text += " (last stage; see stages)"
        rows.append((f.name, text, sources.get(f.name, "")))
    width = max(len(name) for name, _, _ in rows)
    value_width = min(40, max(len(text) for _, text, _ in rows))
    return "\n".join(
        f"  {name:<{width}}  {text:<{value_width}}  {source}".rstrip()
        for name, text, source in rows
    )


def class_weights_text(config: TrainConfig) -> str:
    """The loss's class weights as ``--class-weights`` takes them: ``median``,
    ``sqrt-median``, the weights, or ``none``."""
    if config.class_weights is not None:
        return ",".join(f"{w:g}" for w in config.class_weights)
    if config.median_frequency:
        if config.median_frequency_power == 0.5:
            return "sqrt-median"
        if config.median_frequency_power == 1.0:
            return "median"
        return f"median ** {config.median_frequency_power:g}"
    return "none"


def _value_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(", ", ": "), default=str)
    return str(value)


def check_start(config: TrainConfig) -> None:
    """Refuses to start a recipe that fine-tunes pretrained weights from random ones.

    The ``heavy`` family's rates (1e-10 to 1e-14 on a summed loss) move pretrained weights
    gently; from random weights nothing moves, and the run would end where it began.

    Raises:
        FcnsegError: ``config.recipe`` is a pretrained recipe, ``init`` is None and
            ``allow_random_init`` is not set; one line saying what to do.
    """
    known = RECIPES.get(config.recipe)
    if known is None or not known.pretrained or config.init or config.allow_random_init:
        return
    raise FcnsegError(
        f"recipe '{config.recipe}' fine-tunes pretrained weights (its learning rate "
        f"{config.lr:g} assumes them) but no init weights were given, and from random weights "
        "it cannot learn: give --init WEIGHTS, use --recipe scratch, or --allow-random-init"
    )


# Fields a resumed run may change: where the data is, how long the run goes on, how often it
# is scored, where it runs; none of them changes a step. (``init`` and ``allow_random_init``
# only matter at the start: a resumed run starts from its checkpoint.)
RESUMABLE = ("root", "val_root", "max_iter", "eval_every", "workers", "device")
_START_ONLY = ("init", "allow_random_init")


def trajectory_changes(saved: TrainConfig, config: TrainConfig) -> list[str]:
    """The fields in which ``config`` differs from the ``saved`` run's, other than those a
    resumed run may change (:data:`RESUMABLE`, and dataset options that name files:
    :data:`fcnseg.data.PATH_OPTIONS`); sorted."""
    changed = []
    for f in dataclasses.fields(config):
        if f.name in RESUMABLE or f.name in _START_ONLY:
            continue
        before, after = getattr(saved, f.name), getattr(config, f.name)
        if f.name == "dataset_options":
            before, after = _without_paths(before), _without_paths(after)
        if before != after:
            changed.append(f.name)
    return sorted(changed)


def _without_paths(options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key not in PATH_OPTIONS}


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """``config`` with its data folders, path-valued dataset options and an ``init`` that
    names a file made absolute (against the working directory), so that the run can be
    resumed or scored from anywhere."""
    changes: dict[str, Any] = {}
    if config.dataset != SYNTHETIC:
        changes["root"] = os.path.abspath(config.root)
    if config.val_root is not None:
        changes["val_root"] = os.path.abspath(config.val_root)
    options = {
        key: os.path.abspath(value) if key in PATH_OPTIONS and isinstance(value, str) else value
        for key, value in config.dataset_options.items()
    }
    changes["dataset_options"] = options
    if config.init and (Path(config.init).exists() or Path(config.init + ".safetensors").is_file()):
        changes["init"] = os.path.abspath(config.init)
    return dataclasses.replace(config, **changes)


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

    Each stage is ``config`` with its stage's fields (``config.stages``); without stages, the
    sequence :func:`staged_models` gives, at the heavy recipe's rate of each net (1e-10,
    1e-12, 1e-14) for the heavy recipes and at ``config.lr`` otherwise. Stages after the
    first start from the one before, which :func:`fcnseg.train.fit_staged` fills into
    ``init``.
    """
    stages = config.stages
    if not stages:
        stages = [
            {"model": model, "lr": HEAVY_LR[len(MODELS[model].skips)]}
            if config.recipe in ("heavy", "staged")
            else {"model": model}
            for model in staged_models(config.model)
        ]
    return [dataclasses.replace(config, stages=[], **stage) for stage in stages]
