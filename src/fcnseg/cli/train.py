"""``fcnseg train``: a recipe, a model, a dataset and a run folder; flags override the recipe.

Without ``--recipe`` the command picks one that can learn from what it is given: ``heavy``
(the paper's, fine-tuning) when ``--init`` gives starting weights, else ``scratch`` (from
random weights), and says so in one line. Every run, new or resumed, starts by printing its
whole configuration, each value with where it came from.

Under ``torchrun --nproc-per-node N -m fcnseg.cli train ...`` every process runs this command
and trains its share of each step (``fcnseg.train.distributed``). When torchrun restarts the
job after a process died (``--max-restarts``), the command resumes from ``last`` by itself,
provided ``--out`` holds a run configured exactly as the command asks (otherwise it is refused
as any new run into a used folder is); a job killed before its first checkpoint starts over.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fcnseg.cli.outputs import check_output_folder
from fcnseg.data import PATH_OPTIONS, SYNTHETIC, list_datasets
from fcnseg.errors import ConfigError, FcnsegError
from fcnseg.models import list_models
from fcnseg.runtime import AMP_MODES, DEVICES
from fcnseg.train import (
    CheckpointFiles,
    TrainConfig,
    distributed,
    fit,
    fit_staged,
    list_recipes,
    load_checkpoint,
)
from fcnseg.train.budget import GIB
from fcnseg.train.loop import stage_folder, time_budget, write_config
from fcnseg.train.recipes import (
    FROM_FLAG,
    RECIPES,
    RESUMABLE,
    absolute_paths,
    check_start,
    class_weights_text,
    config_sources,
    describe_config,
    held_out_overlap,
    recipe,
    recipe_settings,
    staged_configs,
)

DEFAULT_MODEL = "fcn8s-vgg16"
FROM_SAVED = "saved run"

# flags that set the TrainConfig field of the same name, with what they mean
_FIELDS = {
    "geometry": "caffe: the published nets to the pixel; lean: no 100-pixel padding",
    "init": "starting weights: a checkpoint, a shipped model's name or a converted file",
    "root": "the dataset's folder",
    "train_split": "the split trained on; several joined by + (train+val)",
    "val_split": "the held-out split scored at each evaluation",
    "val_dataset": "the held-out split's dataset, if not --dataset",
    "val_root": "its folder, if not --root",
    "optimizer": "sgd (with momentum, the paper) or adam",
    "lr": "base learning rate; biases get twice it",
    "lr_policy": "fixed (the paper) or poly (decays to 0 at --max-iter)",
    "momentum": "SGD's momentum, or Adam's first beta",
    "weight_decay": "L2 decay of the weights (not of biases)",
    "batch_size": "images per forward pass (padded to the largest)",
    "iter_size": "forward passes accumulated per step",
    "max_iter": "optimiser steps of the run (extends a resumed run)",
    "loss_normalize": "the loss summed (the reference) or averaged over pixels",
    "loss_sampling": "keep each final-layer cell's loss with probability P (section 3.4)",
    "ohem_thresh": "online hard example mining: only pixels whose true class has a "
    "probability below P, in (0, 1], count in the loss; the mean stays over all non-void "
    "pixels (not in the paper; mmsegmentation's OHEM)",
    "ohem_min_kept": "under --ohem-thresh, the fewest pixels a forward pass keeps, the "
    "hardest (a pass of fewer pixels is not mined)",
    "mirror": "random left-right mirroring",
    "jitter": "random translation of up to this many pixels",
    "scale": "random rescaling by a factor in [MIN, MAX]",
    "colour_jitter": "random brightness, contrast and saturation factors in [1-S, 1+S]",
    "crop": "random square crops of this side",
    "eval_every": "score the held-out split and save every this many steps (0: at the end)",
    "amp": "autocast: none, bf16 or fp16 (CUDA)",
    "compile": "run the model through torch.compile",
    "fast_training": "on a CPU, fc6/fc7 as matrix products, wide 3x3 convolutions by "
    "Winograd (AVX2), a Caffe border computed once: the same gradients to rounding, faster",
    "seed": "every random draw of the run follows from it",
    "workers": "DataLoader worker processes",
    "device": "auto (CUDA when available), cpu or cuda",
}
_BACKBONE = {
    "width": "VGG16 channel multiplier",
    "fc_width": "fc6/fc7 channels (4096 in VGG16)",
    "batch_norm": "batch norm after every convolution",
}


def positive_minutes(text: str) -> float:
    """An argparse type: a number of minutes above 0 (a budget of 0 or less trains nothing)."""
    try:
        minutes = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected a number of minutes") from None
    if not minutes > 0:
        raise argparse.ArgumentTypeError(f"'{text}': a time budget must be more than 0 minutes")
    return minutes


def positive_gib(text: str) -> float:
    """An argparse type: a finite number of GiB above 0."""
    try:
        gib = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected a number of GiB") from None
    if not 0 < gib < float("inf"):
        raise argparse.ArgumentTypeError(
            f"'{text}': a memory budget must be a finite number of GiB above 0"
        )
    return gib


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``fcnseg train`` to the dispatcher."""
    summaries = "; ".join(f"{r.name}: {r.summary}" for r in RECIPES.values())
    parser = subparsers.add_parser(
        "train",
        help="train an FCN",
        description="Train an FCN by a named recipe; flags override single settings, and "
        "the whole configuration is printed, each value with its source (recipe, flag, "
        "default), before the run starts. Without --recipe: heavy if --init gives starting "
        "weights, else scratch. --resume continues the run in --out exactly; it takes "
        "--root, --val-root, --max-iter, --eval-every, --workers, --device, path-valued "
        "--dataset-option and the budgets, and refuses flags that would change its steps. "
        f"Recipes: {summaries}.",
    )
    parser.add_argument("--out", required=True, help="run folder: checkpoints, log.jsonl")
    parser.add_argument(
        "--model",
        choices=list_models(),
        metavar="MODEL",
        help=f"the net (default {DEFAULT_MODEL}; one of {', '.join(list_models())})",
    )
    parser.add_argument(
        "--dataset",
        choices=list_datasets(),
        metavar="NAME",
        help=f"the dataset: {', '.join(list_datasets())} (default: none, required; the "
        "camvid-scratch recipe's: camvid)",
    )
    add_dataset_option(parser)
    parser.add_argument(
        "--recipe",
        choices=list_recipes(),
        help="the starting configuration (default: heavy with --init, scratch without)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--allow-random-init",
        action="store_true",
        help="run a recipe that fine-tunes pretrained weights (heavy, atonce, staged) from "
        "random weights anyway (refused by default: it cannot learn)",
    )
    for field in _FIELDS:
        _add_field(parser, field)
    for option, meaning in _BACKBONE.items():
        flag = "--" + option.replace("_", "-")
        default = f" (default: {_recipe_defaults('backbone', option)})"
        if option == "batch_norm":
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=meaning + default
            )
        else:
            kind = int if option == "fc_width" else float
            parser.add_argument(flag, type=kind, help=meaning + default)
    parser.add_argument(
        "--no-val", action="store_true", help="train without a held-out split (default: scored)"
    )
    parser.add_argument(
        "--class-weights",
        metavar="median|sqrt-median|W1,W2,...",
        help="loss weight per class: median frequency balancing, its square root, or one "
        f"number per class (default: {_class_weight_defaults()})",
    )
    parser.add_argument(
        "--memory-budget",
        type=positive_gib,
        metavar="GIB",
        help="GiB a training step may take; a larger batch is refused before it starts "
        "(default: the device's free memory)",
    )
    parser.add_argument(
        "--time-budget",
        type=positive_minutes,
        metavar="MINUTES",
        help="stop after this many minutes, scored and saved; --resume goes on (default: none)",
    )
    parser.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="a file that cannot be read is logged and skipped: a training image is replaced "
        "by the next readable one, a held-out image left out of the score (default: the run "
        "saves last and stops, naming the file)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (default: shown)"
    )
    parser.set_defaults(run=run)
    return parser


_CHOICES = {
    "geometry": ("caffe", "lean"),
    "optimizer": ("sgd", "adam"),
    "lr_policy": ("fixed", "poly"),
    "loss_normalize": ("sum", "mean"),
    "amp": AMP_MODES,
    "device": DEVICES,
}
_FLOATS = ("lr", "momentum", "weight_decay", "loss_sampling", "ohem_thresh", "colour_jitter")
_INTS = (
    "batch_size",
    "iter_size",
    "max_iter",
    "ohem_min_kept",
    "jitter",
    "crop",
    "eval_every",
    "seed",
    "workers",
)
_METAVARS = {
    "loss_sampling": "P",
    "ohem_thresh": "P",
    "ohem_min_kept": "PIXELS",
    "colour_jitter": "S",
    "jitter": "PIXELS",
    "crop": "SIZE",
    "eval_every": "STEPS",
}


# What a field's default is, where no recipe sets it and its value says less.
_DEFAULT_TEXT = {
    "init": "none, random weights",
    "root": "none; required but for --dataset synthetic",
    "val_dataset": "--dataset",
    "val_root": "--root",
}
# VGG16's own backbone options, where a recipe leaves them.
_BACKBONE_DEFAULTS = {"width": 1.0, "fc_width": 4096, "batch_norm": False}


def _add_field(parser: argparse.ArgumentParser, field: str) -> None:
    flag = "--" + field.replace("_", "-")
    default = _DEFAULT_TEXT.get(field) or _recipe_defaults(field)
    meaning = f"{_FIELDS[field]} (default: {default})"
    if field in ("mirror", "compile", "fast_training"):
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=meaning)
    elif field == "scale":
        parser.add_argument(flag, type=float, nargs=2, metavar=("MIN", "MAX"), help=meaning)
    elif field in _CHOICES:
        parser.add_argument(flag, choices=_CHOICES[field], help=meaning)
    else:
        kind = float if field in _FLOATS else int if field in _INTS else str
        parser.add_argument(flag, type=kind, metavar=_METAVARS.get(field), help=meaning)


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _recipe_value(name: str, field: str, key: str | None) -> str:
    """The value a recipe gives a field (or a backbone option), as help text."""
    defaults = {f.name: f for f in dataclasses.fields(TrainConfig)}

    def value(settings: dict[str, Any]) -> Any:
        if field in settings:
            found = settings[field]
        else:
            default = defaults[field]
            found = (
                default.default_factory()  # type: ignore[misc]
                if default.default_factory is not dataclasses.MISSING
                else default.default
            )
        return found.get(key, _BACKBONE_DEFAULTS.get(key)) if key is not None else found

    settings = recipe_settings(name, DEFAULT_MODEL)
    stages = settings.get("stages") or []
    if stages and key is None and all(field in stage for stage in stages):
        return "/".join(_text(stage[field]) for stage in stages) + " by stage"
    per_model = []
    for model in ("fcn32s-vgg16", "fcn16s-vgg16", DEFAULT_MODEL):
        try:
            per_model.append(_text(value(recipe_settings(name, model))))
        except FcnsegError:
            return _text(value(settings))
    if len(set(per_model)) > 1:
        return "/".join(per_model) + " for FCN-32s/16s/8s"
    return per_model[-1]


def _recipe_defaults(field: str, key: str | None = None) -> str:
    """``"X"`` when every recipe gives the same value, else ``"heavy, staged: X; scratch:
    Y"``."""
    by_value: dict[str, list[str]] = {}
    for name in RECIPES:
        by_value.setdefault(_recipe_value(name, field, key), []).append(name)
    if len(by_value) == 1:
        return next(iter(by_value))
    return "; ".join(f"{', '.join(names)} {value}" for value, names in by_value.items())


def _class_weight_defaults() -> str:
    parts = []
    for name in RECIPES:
        settings = recipe_settings(name, DEFAULT_MODEL)
        if settings.get("median_frequency"):
            power = settings.get("median_frequency_power", 1.0)
            parts.append(f"{name} {'sqrt-median' if power == 0.5 else 'median'}")
    return "none" + (f"; {', '.join(parts)}" if parts else "")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields the flags set (``backbone``: only the options given)."""
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in _FIELDS if getattr(args, name) is not None
    }
    if args.ohem_min_kept is not None and args.ohem_thresh is None:
        raise FcnsegError("--ohem-min-kept is the minimum of --ohem-thresh's mining: give both")
    if args.model is not None:
        overrides["model"] = args.model
    if args.dataset is not None:
        overrides["dataset"] = args.dataset
    if args.dataset_option:
        overrides["dataset_options"] = dataset_options(args.dataset_option)
    if args.no_val:
        overrides["val_split"] = None
    if args.allow_random_init:
        overrides["allow_random_init"] = True
    if args.class_weights in ("median", "sqrt-median"):
        overrides["median_frequency"] = True
        overrides["median_frequency_power"] = 0.5 if args.class_weights == "sqrt-median" else 1.0
    elif args.class_weights is not None:
        try:
            overrides["class_weights"] = [float(w) for w in args.class_weights.split(",")]
        except ValueError:
            raise FcnsegError(
                f"--class-weights {args.class_weights!r}: expected 'median', 'sqrt-median' or "
                "numbers"
            ) from None
    backbone = {
        option: getattr(args, option) for option in _BACKBONE if getattr(args, option) is not None
    }
    if backbone:
        overrides["backbone"] = backbone
    return overrides


def choose_recipe(args: argparse.Namespace) -> tuple[str, str | None]:
    """The recipe to run, and the line that says why when the user named none: ``heavy``
    (fine-tuning) with ``--init``, ``scratch`` (random weights) without."""
    if args.recipe is not None:
        return args.recipe, None
    if args.init:
        return "heavy", (
            "no --recipe: fine-tuning --init by the paper's 'heavy' recipe "
            "(--recipe scratch trains from random weights instead)"
        )
    return "scratch", (
        "no --recipe and no --init: training from random weights by the 'scratch' recipe "
        "(heavy, atonce and staged fine-tune pretrained weights given with --init)"
    )


def resolve_config(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, str]]:
    """A new run's configuration (the recipe, then every flag given) and the source of each
    field: ``flag``, ``recipe NAME``, ``default``, or ``auto`` for a recipe chosen by
    :func:`choose_recipe`."""
    name, _ = choose_recipe(args)
    overrides = _overrides(args)
    model = overrides.pop("model", DEFAULT_MODEL)
    built = dict(overrides)  # overrides keeps only the backbone options flags gave
    if "backbone" in overrides:
        built["backbone"] = {
            **recipe_settings(name, model).get("backbone", {}),
            **overrides["backbone"],
        }
    try:
        config = recipe(name, model, **built)
    except ConfigError as error:
        raise _named_by_flag(error, overrides) from None
    given = set(overrides) | ({"model"} if args.model is not None else set())
    sources = config_sources(name, model, given)
    sources["recipe"] = FROM_FLAG if args.recipe is not None else "auto (no --recipe)"
    return config, sources


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's configuration: the recipe (see :func:`choose_recipe`), then every flag."""
    return resolve_config(args)[0]


def add_dataset_option(parser: argparse.ArgumentParser) -> None:
    """Adds the repeatable ``--dataset-option KEY=VALUE`` (see :func:`dataset_options`)."""
    parser.add_argument(
        "--dataset-option",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the dataset's reader, e.g. modality=color-hha (NYUDv2) or "
        "task=both (SIFT Flow); repeatable",
    )


def dataset_options(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings as the options of ``fcnseg.data.build_dataset`` (string values)."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise FcnsegError(f"--dataset-option {pair!r}: expected KEY=VALUE")
        options[key] = value
    return options


def resumed_config(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, str]]:
    """The saved run's configuration with the flags a resumed run takes applied (data
    folders made absolute against the working directory), and the source of each field.

    Raises:
        FcnsegError: nothing to resume, a flag that would change the run (naming it, its
            value and the saved one), or a data folder that is not there.
    """
    out = Path(args.out)
    config = _saved_config(out)
    sources = {f.name: FROM_SAVED for f in dataclasses.fields(TrainConfig)}
    overrides = _overrides(args)
    if args.recipe is not None and args.recipe != config.recipe:
        overrides["recipe"] = args.recipe
    refused: dict[str, str] = {}  # flag -> what it asked and what the run has
    changes: dict[str, Any] = {}
    for field, value in overrides.items():
        saved = getattr(config, field)
        if field == "backbone":
            for option, wanted in value.items():
                if saved.get(option, _BACKBONE_DEFAULTS[option]) != wanted:
                    flag = "--" + option.replace("_", "-")
                    had = saved.get(option, _BACKBONE_DEFAULTS[option])
                    refused[flag] = f"{flag} {_text(wanted)} (saved {_text(had)})"
            continue
        if field == "dataset_options":
            value = {**saved, **value}
            others = {k: v for k, v in value.items() if k not in PATH_OPTIONS}
            if others != {k: v for k, v in saved.items() if k not in PATH_OPTIONS}:
                refused[field] = f"--dataset-option {others} (saved {saved})"
                continue
        elif value == saved or field == "allow_random_init":
            continue
        elif field in ("class_weights", "median_frequency", "median_frequency_power"):
            refused["--class-weights"] = (
                f"--class-weights {args.class_weights} (saved {class_weights_text(config)})"
            )
            continue
        elif field == "val_split" and value is None:
            refused[field] = f"--no-val (the run is scored on '{saved}')"
            continue
        elif field not in RESUMABLE:
            refused[field] = f"{_flag(field, value)} {_text(value)} (saved {_text(saved)})"
            continue
        elif (
            field == "max_iter"
            and _is_staged(config)
            and (
                any("max_iter" in stage for stage in config.stages)
                or len(_saved_checkpoints(out)) > 1
            )
        ):
            # it would change every stage's steps, the first in place under the later ones
            # that started from its weights
            stages = staged_configs(config)
            last = stage_folder(out, len(stages), stages[-1].model)
            started = CheckpointFiles.of(last / "last").exists()
            raise FcnsegError(
                f"{out}: --max-iter {value} on a staged run would change the steps of each "
                "stage, each started from the one before; to train the last stage longer, "
                + (
                    f"--resume its folder: --out {last}"
                    if started
                    else f"let the run finish, then --resume its folder: --out {last}"
                )
            )
        elif field == "max_iter":
            done = max(
                (load_checkpoint(path)[1].iteration or 0 for path in _saved_checkpoints(out)),
                default=0,
            )
            if value < done:
                raise FcnsegError(
                    f"{out}: --max-iter {value} is below the {done} steps the run has done; a "
                    "run is not shortened (start a new run in another --out)"
                )
        changes[field] = value
        sources[field] = FROM_FLAG
    if refused:
        raise FcnsegError(
            f"{out}: --resume continues the run as it was configured; "
            f"{'; '.join(refused.values())} would change it: start a new run in another --out"
        )
    try:
        config = absolute_paths(dataclasses.replace(config, **changes))
    except ConfigError as error:
        raise _named_by_flag(error, changes) from None
    if "root" not in changes and _data_folder_missing(config):
        raise FcnsegError(
            f"{config.root}: the run's data folder is not there (from {os.getcwd()}); give "
            "--root where the data is now"
        )
    return config, sources


def _unwrite_config(out: Path, made: bool) -> None:
    """Takes back the ``config.json`` a new staged run wrote into ``out`` (and ``out`` if
    the run ``made`` it) when the run was refused before a stage wrote anything: a refusal
    leaves ``--out`` as it was, as a one-net run's does."""
    if any(path.name != "config.json" for path in out.iterdir()):
        return  # a stage began: its log is the run's record, and config.json goes with it
    (out / "config.json").unlink(missing_ok=True)
    if made:
        with contextlib.suppress(OSError):  # not empty: leave it
            out.rmdir()


def _data_folder_missing(config: TrainConfig) -> bool:
    """True when the dataset reads a folder and ``config.root`` is not one."""
    return config.dataset != SYNTHETIC and not Path(config.root).is_dir()


def _named_by_flag(error: ConfigError, given: Mapping[str, Any]) -> FcnsegError:
    """A field's range error in the words of the command line: ``--lr must be ...`` where a
    flag set the field; as it was where a recipe or a saved run did."""
    if error.field not in given:
        return error
    if error.option is not None:  # a backbone option: named by its own flag, if one gave it
        if error.option not in given[error.field]:
            return error
        return FcnsegError(f"--{error.option.replace('_', '-')} {error.problem}")
    return FcnsegError(f"{_flag(error.field, given[error.field])} {error.problem}")


def _flag(field: str, value: Any) -> str:
    if field == "val_split" and value is None:
        return "--no-val"
    return {
        "median_frequency": "--class-weights",
        "median_frequency_power": "--class-weights",
        "class_weights": "--class-weights",
        "backbone": "--width/--fc-width/--batch-norm",
    }.get(field, "--" + field.replace("_", "-"))


def run(args: argparse.Namespace) -> int:
    """Trains, or resumes, the run in ``--out``."""
    out = check_output_folder(args.out)
    if args.resume:
        config, sources = resumed_config(args)
        note = None
    else:
        _, note = choose_recipe(args)
        config, sources = resolve_config(args)
        if args.dataset is None and "dataset" not in recipe_settings(config.recipe, config.model):
            raise FcnsegError("--dataset is required (or --resume a run)")
        if config.dataset != SYNTHETIC and args.root is None:
            raise FcnsegError(f"--root is required for dataset '{config.dataset}'")
        if _data_folder_missing(config):
            # before the configuration is printed; the reader checks the folder's contents
            raise FcnsegError(f"--root {config.root}: no such folder (dataset {config.dataset})")
        check_start(config)  # before the configuration is printed: nothing will run
        config = absolute_paths(config)
    resume = args.resume
    restart = distributed.elastic_restart()
    if not resume and restart and _holds_run(out, config):
        # torchrun restarted the job after a process died: go on from the last checkpoint
        resume = True
        note = f"torchrun restart {restart}: resuming {out} from its last checkpoint"
    if not resume and _saved_checkpoints(out):
        # before the configuration is printed: nothing will run
        raise FcnsegError(f"{out}: already holds a run; --resume it or choose another --out")
    context = distributed.setup(config.device)
    if args.resume and sources["max_iter"] == FROM_FLAG and config.lr_policy == "poly":
        note = (
            f"note: under the poly policy, --max-iter {config.max_iter} changes the learning "
            "rate of the steps to come (it decays to 0 at --max-iter)"
        )
    shared = held_out_overlap(config)
    if context.is_main:
        if note:
            print(note)
        if shared:
            print(
                f"note: the held-out split '{config.val_split}' shares {', '.join(shared)} with "
                f"the training split '{config.train_split}': its scores are not held out and "
                "best is chosen on training images (--no-val scores nothing)"
            )
        action = "resuming" if resume else "training"
        print(f"{action} {out} with (value, then where it came from):")
        print(describe_config(config, sources), flush=True)
    stop = time_budget(60 * args.time_budget) if args.time_budget is not None else None
    # not rounded to whole bytes: a budget of 1e-9 GiB is refused as given, not as 1 byte
    budget = None if args.memory_budget is None else args.memory_budget * GIB
    options = {
        "resume": resume,
        "progress": not args.no_progress,
        "stop": stop,
        "skip_bad_images": args.skip_bad_images,
    }
    try:
        if _is_staged(config):
            made = not out.exists()
            fresh = not resume and not (out / "config.json").exists()
            if context.is_main:
                write_config(out / "config.json", config)
            try:
                result = fit_staged(config, out, memory_budget=budget, **options)
            except FcnsegError:
                if fresh and context.is_main:
                    _unwrite_config(out, made)
                raise
        else:
            result = fit(config, out, memory_budget=budget, **options)
    finally:
        distributed.teardown(context)
    if context.is_main and result is not None and result.metrics is not None:
        heads = result.metrics.get("heads", {"": result.metrics})
        mean_ius = ", ".join(
            ("n/a" if record["mean_iu"] is None else f"{100 * record['mean_iu']:.2f}")
            + (f" ({head})" if head else "")
            for head, record in heads.items()
        )
        print(f"mean IU {mean_ius} on '{config.val_split}' at iteration {result.iteration}")
    elif context.is_main and result is not None and not result.stopped:
        print(f"trained to iteration {result.iteration}; checkpoints in {out}")
    if context.is_main and result is not None and result.stopped:
        # the run has said where and why it stopped; this line is the command that goes on
        print(f"to go on: fcnseg train --resume --out {shlex.quote(str(args.out))}")
    if context.is_main and result is None:
        print(
            f"{out}: every stage had finished; nothing to train (to train the last stage "
            f"longer: --resume --out {_last_stage(out)} --max-iter N)"
        )
    return 0


def _is_staged(config: TrainConfig) -> bool:
    return bool(config.stages) or config.recipe == "staged"


def _last_stage(out: Path) -> Path:
    """The folder of a staged run's last stage that holds a checkpoint."""
    stages = [path.parent for path in _saved_checkpoints(out) if path.parent != out]
    return stages[-1] if stages else out


def _saved_checkpoints(out: Path) -> list[Path]:
    """The ``last`` checkpoints in ``out``: a run's own, or its stages'."""
    candidates = [out / "last", *(folder / "last" for folder in sorted(out.glob("stage*")))]
    return [path for path in candidates if CheckpointFiles.of(path).exists()]


def _holds_run(out: Path, config: TrainConfig) -> bool:
    """Whether ``out`` holds a run configured exactly as ``config`` (a job restarted by
    torchrun finds the one it started)."""
    try:
        return _saved_config(out).to_dict() == config.to_dict()
    except FcnsegError:
        return False


def _saved_config(out: Path) -> TrainConfig:
    path = out / "config.json"
    if not path.is_file():
        raise FcnsegError(f"{path}: not found; nothing to resume in {out}")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as error:
        raise FcnsegError(f"{path}: not a training configuration ({error})") from None
    except FcnsegError as error:  # a value out of range, or of the wrong type
        raise FcnsegError(f"{path}: {error}") from None
