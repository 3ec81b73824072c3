"""Metrics (the paper's pixel accuracy, mean accuracy, mean IU, frequency weighted IU)."""

from fcnseg.evaluate.evaluate import (
    METRIC_NAMES,
    evaluate,
    evaluation_loader,
    format_table,
    metrics_record,
    write_metrics,
)
from fcnseg.evaluate.metrics import ConfusionMatrix

__all__ = [
    "METRIC_NAMES",
    "ConfusionMatrix",
    "evaluate",
    "evaluation_loader",
    "format_table",
    "metrics_record",
    "write_metrics",
]
