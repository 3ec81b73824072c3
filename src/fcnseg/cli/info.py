"""``fcnseg info``: what a model file says about itself (its metadata record), without Python."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fcnseg.io.weights import ModelMeta, list_pretrained, load_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Registers ``fcnseg info``."""
    parser = subparsers.add_parser(
        "info",
        help="show a model's record: net, classes, input convention, training, metrics",
        description="Show what a model carries (fcnseg.load_model(MODEL).meta): its net and "
        "parameters, classes, input convention, how it was trained and the metrics it was "
        "saved with. Without MODEL, list the shipped models.",
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        help="checkpoint file or run folder, or a shipped model's name",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the whole record as JSON (with 'parameters')"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Prints the record; a file that is not a model fails in one line (FcnsegError)."""
    if args.model is None:
        for name in list_pretrained():
            print(f"{name}: {summary(load_model(name).meta)}")
        return 0
    model = load_model(args.model)
    parameters = sum(p.numel() for p in model.parameters())
    meta: ModelMeta = model.meta
    if args.json:
        print(json.dumps({**meta.to_dict(), "parameters": parameters}, indent=2))
        return 0
    print("\n".join(describe(meta, parameters)))
    return 0


def summary(meta: ModelMeta) -> str:
    """One line: the net, its classes and, where recorded, its mean IU and split."""
    text = f"{meta.model}, {len(meta.classes)} classes" + (
        f" ({meta.dataset})" if meta.dataset else ""
    )
    metrics = meta.metrics or {}
    if "mean_iu" in metrics:
        text += f", mean IU {100 * metrics['mean_iu']:.2f} on {metrics.get('split', '?')}"
    return text


def describe(meta: ModelMeta, parameters: int) -> list[str]:
    """The record as lines of text: the build, classes, input, training, metrics, notes."""
    build = {k: v for k, v in meta.build.items() if k != "num_classes"}
    convention = meta.input_convention
    lines = [
        f"net: {meta.model} ({_options(build)}), {parameters:,} parameters",
        f"classes ({len(meta.classes)}): {', '.join(meta.classes)}",
        f"input: channels {convention.channel_order}, a raw 255 becomes {convention.scale:g}, "
        f"then minus mean {_numbers(convention.mean)}, divided by std "
        f"{_numbers(convention.std or (1.0,) * len(convention.mean))}"
        + (
            f"; extra channels {', '.join(convention.extra_channels)}"
            if convention.extra_channels
            else ""
        ),
        f"void label: {meta.ignore_index}",
    ]
    for head, names in meta.head_classes.items():
        lines.append(f"head {head} ({len(names)}): {', '.join(names)}")
    if meta.source is not None:
        lines.append(f"converted from: {_options(vars(meta.source))}")
    config: dict[str, Any] = dict(meta.config or {})
    if config or meta.iteration is not None:
        trained = [
            f"{meta.dataset or config.get('dataset', '?')} {config.get('train_split', '')}".strip()
        ]
        if meta.iteration is not None:
            planned = config.get("max_iter")
            unfinished = isinstance(planned, int) and meta.iteration < planned
            trained.append(
                f"{meta.iteration} of {planned} steps" if unfinished else f"{meta.iteration} steps"
            )
        for key in ("recipe", "optimizer", "lr", "batch_size", "amp"):
            if config.get(key) is not None:
                trained.append(
                    f"{key} {config[key]:g}"
                    if isinstance(config[key], float)
                    else f"{key} {config[key]}"
                )
        if config.get("ohem_thresh") is not None:  # the loss was not the paper's
            trained.append(f"ohem {config['ohem_thresh']:g} min_kept {config['ohem_min_kept']}")
        if config.get("init"):
            trained.append(f"from {config['init']}")
        lines.append("trained: " + ", ".join(trained))
    metrics = meta.metrics or {}
    scores = [
        f"{name} {100 * metrics[name]:.2f}"
        for name in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")
        if isinstance(metrics.get(name), float | int)
    ]
    if scores:
        # a training run's checkpoints hold the score of its held-out split, named in its config
        held_out = " ".join(
            str(config[key]) for key in ("val_dataset", "val_split") if config.get(key)
        )
        lines.append(f"metrics on {metrics.get('split') or held_out or '?'}: {', '.join(scores)}")
    if isinstance(metrics.get("iu"), dict):
        per_class = ", ".join(f"{name} {100 * value:.1f}" for name, value in metrics["iu"].items())
        lines.append(f"IU per class: {per_class}")
    lines.extend(f"note: {note}" for note in meta.notes)
    if meta.git or meta.saved:
        lines.append(f"saved: {meta.saved or '?'}" + (f" (fcnseg {meta.git})" if meta.git else ""))
    return lines


def _options(values: dict[str, Any]) -> str:
    return ", ".join(f"{key} {value}" for key, value in values.items() if value is not None)


def _numbers(values: tuple[float, ...]) -> str:
    return " ".join(f"{value:g}" for value in values)
