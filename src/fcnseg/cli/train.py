"""``fcnseg train``: a recipe, a model, a dataset and a run folder; flags override the recipe.

Under ``torchrun --nproc-per-node N -m fcnseg.cli train ...`` every process runs this command
and trains its share of each step (``fcnseg.train.distributed``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fcnseg.data import SYNTHETIC, list_datasets
from fcnseg.errors import FcnsegError
from fcnseg.models import list_models
from fcnseg.runtime import AMP_MODES, DEVICES
from fcnseg.train import TrainConfig, distributed, fit, fit_staged, list_recipes, recipe

# flags that set the TrainConfig field of the same name
_FIELDS = (
    "geometry",
    "init",
    "root",
    "train_split",
    "val_split",
    "val_dataset",
    "val_root",
    "optimizer",
    "lr",
    "lr_policy",
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
    "crop",
    "eval_every",
    "amp",
    "compile",
    "seed",
    "workers",
    "device",
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``fcnseg train`` to the dispatcher."""
    parser = subparsers.add_parser(
        "train",
        help="train an FCN",
        description="Train an FCN by a named recipe (heavy, atonce, staged, scratch); flags "
        "override single settings. --resume continues the run in --out exactly.",
    )
    parser.add_argument("--out", required=True, help="run folder: checkpoints, log.jsonl")
    parser.add_argument("--model", default="fcn8s-vgg16", choices=list_models())
    parser.add_argument("--dataset", choices=list_datasets())
    parser.add_argument("--root", help="the dataset's folder")
    add_dataset_option(parser)
    parser.add_argument("--recipe", default="heavy", choices=list_recipes())
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument("--geometry", choices=("caffe", "lean"))
    parser.add_argument("--width", type=float, help="VGG16 channel multiplier (from scratch)")
    parser.add_argument("--fc-width", type=int, help="fc6/fc7 channels (4096 in VGG16)")
    parser.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--init", help="starting weights: checkpoint, shipped name, converted")
    parser.add_argument("--train-split")
    parser.add_argument("--val-split")
    parser.add_argument("--val-dataset", help="held-out dataset, if not --dataset")
    parser.add_argument("--val-root", help="its folder, if not --root")
    parser.add_argument("--no-val", action="store_true", help="train without evaluating")
    parser.add_argument("--optimizer", choices=("sgd", "adam"))
    parser.add_argument("--lr", type=float)
    parser.add_argument("--lr-policy", choices=("fixed", "poly"))
    parser.add_argument("--momentum", type=float)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--iter-size", type=int, help="passes accumulated per step")
    parser.add_argument("--max-iter", type=int, help="steps (may extend a resumed run)")
    parser.add_argument("--loss-normalize", choices=("sum", "mean"))
    parser.add_argument(
        "--class-weights", help="'median' (median frequency balancing) or W1,W2,... per class"
    )
    parser.add_argument("--loss-sampling", type=float, metavar="P", help="keep cells with P")
    parser.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--jitter", type=int, metavar="PIXELS")
    parser.add_argument("--scale", type=float, nargs=2, metavar=("MIN", "MAX"))
    parser.add_argument("--crop", type=int, metavar="SIZE")
    parser.add_argument("--eval-every", type=int, metavar="STEPS")
    parser.add_argument("--amp", choices=AMP_MODES)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--device", choices=DEVICES)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's configuration: the recipe, then every flag given."""
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in _FIELDS if getattr(args, name) is not None
    }
    if args.dataset is not None:
        overrides["dataset"] = args.dataset
    if args.dataset_option:
        overrides["dataset_options"] = dataset_options(args.dataset_option)
    if args.no_val:
        overrides["val_split"] = None
    if args.class_weights == "median":
        overrides["median_frequency"] = True
    elif args.class_weights is not None:
        try:
            overrides["class_weights"] = [float(w) for w in args.class_weights.split(",")]
        except ValueError:
            raise FcnsegError(
                f"--class-weights {args.class_weights!r}: expected 'median' or numbers"
            ) from None
    base = recipe(args.recipe, args.model)
    backbone = dict(base.backbone)
    for option in ("width", "fc_width", "batch_norm"):
        if getattr(args, option) is not None:
            backbone[option] = getattr(args, option)
    return recipe(args.recipe, args.model, backbone=backbone, **overrides)


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


def run(args: argparse.Namespace) -> int:
    """Trains, or resumes, the run in ``--out``."""
    out = Path(args.out)
    if args.resume:
        config = _saved_config(out)
        if args.max_iter is not None:
            config.max_iter = args.max_iter
    else:
        if args.dataset is None:
            raise FcnsegError("--dataset is required (or --resume a run)")
        config = config_from_args(args)
        if config.dataset != SYNTHETIC and config.root == ".":
            raise FcnsegError(f"--root is required for dataset '{config.dataset}'")
    context = distributed.setup(config.device)
    try:
        if config.recipe == "staged":
            if context.is_main:
                out.mkdir(parents=True, exist_ok=True)
                (out / "config.json").write_text(config.to_json() + "\n")
            result = fit_staged(config, out, resume=args.resume, progress=not args.no_progress)
        else:
            result = fit(config, out, resume=args.resume, progress=not args.no_progress)
    finally:
        distributed.teardown(context)
    if context.is_main and result is not None and result.metrics is not None:
        heads = result.metrics.get("heads", {"": result.metrics})
        mean_ius = ", ".join(
            ("n/a" if record["mean_iu"] is None else f"{100 * record['mean_iu']:.2f}")
            + (f" ({head})" if head else "")
            for head, record in heads.items()
        )
        print(f"mean IU {mean_ius} at iteration {result.iteration}")
    return 0


def _saved_config(out: Path) -> TrainConfig:
    path = out / "config.json"
    if not path.is_file():
        raise FcnsegError(f"{path}: not found; nothing to resume in {out}")
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as error:
        raise FcnsegError(f"{path}: not a training configuration ({error})") from None
