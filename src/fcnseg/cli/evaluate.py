"""``fcnseg eval``: the paper's four metrics of a model on a dataset split, per class too."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fcnseg.cli.train import add_dataset_option, dataset_options
from fcnseg.data import build_dataset, list_datasets
from fcnseg.data.synthetic import SYNTHETIC, synthetic_dataset
from fcnseg.errors import FcnsegError
from fcnseg.evaluate import evaluate, evaluation_loader, format_table, metrics_record
from fcnseg.evaluate.evaluate import for_dataset, head_class_names, write_metrics
from fcnseg.io.convention import InputConvention
from fcnseg.pretrained import load_pretrained, resolve
from fcnseg.train.distributed import choose_device
from fcnseg.train.loop import check_data, resolve_amp
from fcnseg.train.recipes import AMP_MODES, DEVICES


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds ``fcnseg eval`` to the dispatcher."""
    parser = subparsers.add_parser(
        "eval",
        help="score a model on a dataset split",
        description="Score a model on a dataset split: pixel accuracy, mean accuracy, mean IU, "
        "frequency weighted IU, and per-class IU; writes OUT/metrics.json.",
    )
    parser.add_argument("--model", required=True, help="checkpoint path or shipped model name")
    parser.add_argument("--dataset", required=True, choices=[*list_datasets(), SYNTHETIC])
    parser.add_argument("--root", default=".", help="the dataset's folder")
    add_dataset_option(parser)
    parser.add_argument("--split", default="val")
    parser.add_argument("--out", required=True, help="folder for metrics.json")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1,
        help="images per forward pass (images of different sizes are padded; 1 is exact)",
    )
    parser.add_argument("--amp", default="none", choices=AMP_MODES)
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Scores the model, prints the table and writes ``metrics.json``."""
    options = dataset_options(args.dataset_option)
    if args.dataset == SYNTHETIC:
        if options:
            raise FcnsegError(f"dataset '{SYNTHETIC}' has no options (given {sorted(options)})")
        dataset = synthetic_dataset(args.split)
    else:
        dataset = build_dataset(args.dataset, args.root, args.split, **options)
    info = dataset.info
    model, metadata = load_pretrained(args.model, num_classes=info.num_classes)
    check_data(model, dataset)
    convention = InputConvention.from_dict(metadata["input_convention"])
    device = choose_device(args.device)
    net = for_dataset(model, info.mean_bgr, convention).to(device)
    metrics = evaluate(
        net,
        evaluation_loader(dataset, batch_size=args.batch_size),
        info.num_classes,
        ignore_index=info.ignore_index,
        device=device,
        amp_dtype=resolve_amp(args.amp, device),
    )
    head_names = head_class_names(dataset)
    record = {
        **metrics_record(metrics, info.class_names, head_names),
        "model": str(resolve(args.model)),
        "dataset": args.dataset,
        "dataset_options": options,
        "split": args.split,
        "images": len(dataset),
    }
    path = write_metrics(Path(args.out) / "metrics.json", record)
    print(format_table(metrics, info.class_names, head_names))
    print(f"wrote {path}")
    return 0
