"""``fcnseg eval``: the paper's four metrics of a model on a dataset split, per class too."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fcnseg.cli.outputs import check_output_file, check_output_folder
from fcnseg.cli.predict import add_tta_arguments, tta_note
from fcnseg.cli.train import add_dataset_option, dataset_options
from fcnseg.data import SYNTHETIC, ade20k_score_text, build_dataset, list_datasets, split_names
from fcnseg.errors import FcnsegError
from fcnseg.evaluation import (
    evaluate,
    evaluation_loader,
    format_table,
    head_class_names,
    metrics_record,
    write_metrics,
)
from fcnseg.inference.tta import TestTimeAugmentation
from fcnseg.io.weights import ModelMeta, file_sha256, load_model, resolve
from fcnseg.runtime import AMP_MODES, DEVICES, amp_dtype, choose_device


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``fcnseg eval`` to the dispatcher."""
    parser = subparsers.add_parser(
        "eval",
        help="score a model on a dataset split",
        description="Score a model on a dataset split: pixel accuracy, mean accuracy, mean IU, "
        "frequency weighted IU, and per-class IU; with --out, also writes OUT/metrics.json (with "
        "the confusion matrix: rows the ground truth, columns the prediction).",
    )
    parser.add_argument("--model", required=True, help="checkpoint path or shipped model name")
    parser.add_argument("--dataset", required=True, choices=list_datasets())
    parser.add_argument(
        "--root", help="the dataset's folder (required but for --dataset synthetic)"
    )
    add_dataset_option(parser)
    parser.add_argument(
        "--split",
        default="val",
        help="the split scored; several joined by + (default: val)",
    )
    parser.add_argument(
        "--out",
        help="folder to write metrics.json in (replacing one there); default: print the table only",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="images per forward pass (images of different sizes are padded; 1 is exact)",
    )
    parser.add_argument("--amp", default="none", choices=AMP_MODES)
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_tta_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Scores the model, prints the table and writes ``metrics.json``."""
    if args.root is None and args.dataset != SYNTHETIC:
        raise FcnsegError(f"--root is required for dataset '{args.dataset}'")
    if args.batch_size < 1:
        raise FcnsegError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.out is not None:
        check_output_folder(args.out)
        check_output_file(Path(args.out) / "metrics.json")
    options = dataset_options(args.dataset_option)
    device = choose_device(args.device)
    model = load_model(args.model, device=device)
    # the images are fed in the convention the weights declare
    dataset = build_dataset(
        args.dataset,
        args.root or ".",  # synthetic: generated, no folder
        args.split,
        convention=model.meta.input_convention,
        **options,
    )
    info = dataset.info
    trained_on = _trained_splits(model.meta, args.dataset)
    # None: the weights do not say what they were trained on
    held_out = not set(split_names(args.split)) & trained_on if trained_on else None
    notes = []
    if held_out is False:
        notes.append(
            f"{args.model} was trained on {args.dataset} '{'+'.join(sorted(trained_on))}': "
            f"its scores on '{args.split}' are not held out"
        )
    if model.num_classes != info.num_classes:
        raise FcnsegError(
            f"{resolve(args.model)}: weights for {model.num_classes} classes, dataset "
            f"'{args.dataset}' has {info.num_classes}"
        )
    # Test-time augmentation (off by default): the model is wrapped, its output the log of
    # the views' averaged probabilities (fcnseg.inference.tta), whose arg max is the labels.
    scored = TestTimeAugmentation(model, flip=args.flip, scales=args.scales)
    for note in notes:
        print(f"fcnseg eval: note: {note}", file=sys.stderr)
    if note := tta_note(scored.augmentation, "eval"):
        print(note, file=sys.stderr)
    metrics = evaluate(
        scored,
        tqdm(
            evaluation_loader(dataset, batch_size=args.batch_size),
            desc="eval",
            unit="batch",
            disable=True if args.no_progress else None,  # None: on a terminal only
            dynamic_ncols=True,
        ),
        info.num_classes,
        ignore_index=info.ignore_index,
        device=device,
        amp_dtype=amp_dtype(args.amp, device),
    )
    head_names = head_class_names(dataset)
    weights = resolve(args.model)
    record = {
        **metrics_record(metrics, info.class_names, head_names),
        "model": args.model,  # as given: a shipped name, a run folder, a file
        "weights": str(weights),  # the file it named, and its bytes' hash
        "weights_sha256": file_sha256(weights),
        "dataset": args.dataset,
        "dataset_options": options,
        "split": args.split,
        "held_out": held_out,
        "notes": notes,
        "images": len(dataset),
        "test_time_augmentation": {"flip": args.flip, "scales": list(scored.augmentation.scales)},
    }
    print(format_table(metrics, info.class_names, head_names))
    print(ade20k_score_text(args.dataset, metrics), end="")
    if args.out is not None:
        print(f"wrote {write_metrics(Path(args.out) / 'metrics.json', record)}")
    return 0


def _trained_splits(meta: ModelMeta, dataset: str) -> set[str]:
    """The splits of ``dataset`` the weights were trained on, as their metadata records."""
    config = meta.config or {}
    if meta.dataset != dataset or not isinstance(config.get("train_split"), str):
        return set()
    try:
        return set(split_names(config["train_split"]))
    except FcnsegError:
        return set()
