"""Evaluation: the paper's four metrics from one confusion matrix, and scoring a model on a
dataset with them (section 5: pixel accuracy, mean accuracy, mean IU, frequency weighted IU)."""

from fcnseg.evaluation.metrics import (
    METRIC_NAMES,
    ConfusionMatrix,
    format_table,
    metrics_record,
    write_metrics,
)
from fcnseg.evaluation.score import evaluate, evaluation_loader, head_class_names

__all__ = [
    "METRIC_NAMES",
    "ConfusionMatrix",
    "evaluate",
    "evaluation_loader",
    "format_table",
    "head_class_names",
    "metrics_record",
    "write_metrics",
]
