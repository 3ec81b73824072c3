"""What fcnseg eval prints and writes: the table, the JSON record, the file, and the histogram
summed over processes. Expected texts are written out by hand from small confusion matrices
whose metrics are worked out in the comments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from fcnseg.evaluation import ConfusionMatrix, format_table, metrics_record, write_metrics

CLASSES = ["sky", "tree", "car"]


def three_classes() -> dict:
    """Truth [0, 1, 0], prediction [0, 1, 1]: rows truth [[1, 1, 0], [0, 1, 0], [0, 0, 0]].

    pixel acc 2/3; acc sky 1/2, tree 1, car NaN (mean 3/4); IU sky 1/(2+1-1) = 1/2,
    tree 1/(1+2-1) = 1/2, car NaN (mean 1/2); fw IU 2/3 * 1/2 + 1/3 * 1/2 = 1/2.
    """
    confusion = ConfusionMatrix(3)
    confusion.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    return confusion.compute()


def two_classes() -> dict:
    """Truth [0, 1, 1, 0], prediction [0, 1, 1, 1]: rows truth [[1, 1], [0, 2]].

    pixel acc 3/4; acc 1/2, 1 (mean 3/4); IU 1/(2+1-1) = 1/2, 2/(2+3-2) = 2/3 (mean 7/12 =
    58.33%); fw IU 1/2 * 1/2 + 1/2 * 2/3 = 7/12.
    """
    confusion = ConfusionMatrix(2)
    confusion.update(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 1, 1, 0]))
    return confusion.compute()


THREE_CLASS_TABLE = """\
class      IU     acc
sky     50.00   50.00
tree    50.00  100.00
car       n/a     n/a

pixel_acc   66.67
mean_acc   75.00
mean_iu   50.00
fw_iu   50.00"""

TWO_CLASS_TABLE = """\
class       IU     acc
sky      50.00   50.00
ground   66.67  100.00

pixel_acc   75.00
mean_acc   75.00
mean_iu   58.33
fw_iu    58.33"""

NUMBERED_TWO_CLASS_TABLE = """\
class      IU     acc
0       50.00   50.00
1       66.67  100.00

pixel_acc   75.00
mean_acc   75.00
mean_iu   58.33
fw_iu   58.33"""


def test_table_of_the_metrics_and_of_their_json_record() -> None:
    metrics = three_classes()
    assert format_table(metrics, CLASSES) == THREE_CLASS_TABLE
    # the record keys the classes by name and writes NaN as null: the same table
    assert format_table(metrics_record(metrics, CLASSES), CLASSES) == THREE_CLASS_TABLE


def test_record_by_hand() -> None:
    record = metrics_record(three_classes(), CLASSES)
    assert record == {
        "pixel_acc": pytest.approx(2 / 3, rel=1e-12),
        "mean_acc": 0.75,
        "mean_iu": 0.5,
        "fw_iu": pytest.approx(0.5, rel=1e-12),
        "iu": {"sky": 0.5, "tree": 0.5, "car": None},
        "acc": {"sky": 0.5, "tree": 1.0, "car": None},
        "confusion": [[1, 1, 0], [0, 1, 0], [0, 0, 0]],
    }
    assert json.loads(json.dumps(record)) == record  # plain JSON: no NaN, no tensors


def test_a_record_needs_one_name_per_class() -> None:
    for names in (CLASSES[:2], [*CLASSES, "road"]):
        with pytest.raises(ValueError, match="zip"):
            metrics_record(three_classes(), names)


def test_heads_get_a_table_and_a_record_each() -> None:
    metrics = {"heads": {"sem": three_classes(), "geo": two_classes()}}
    named = format_table(metrics, CLASSES, {"geo": ["sky", "ground"]})
    assert named == f"[sem]\n{THREE_CLASS_TABLE}\n\n[geo]\n{TWO_CLASS_TABLE}"
    numbered = format_table(metrics, CLASSES)  # a head without names has its classes numbered
    assert numbered == f"[sem]\n{THREE_CLASS_TABLE}\n\n[geo]\n{NUMBERED_TWO_CLASS_TABLE}"

    record = metrics_record(metrics, CLASSES, {"geo": ["sky", "ground"]})
    sem = metrics_record(three_classes(), CLASSES)
    geo = metrics_record(two_classes(), ["sky", "ground"])
    assert record == {**sem, "heads": {"sem": sem, "geo": geo}}
    assert geo["iu"] == {"sky": 0.5, "ground": pytest.approx(2 / 3, rel=1e-12)}
    numbered_record = metrics_record(metrics, CLASSES)
    assert list(numbered_record["heads"]["geo"]["iu"]) == ["0", "1"]


def test_write_metrics_makes_the_folders_and_indents_by_two(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "metrics.json"
    assert write_metrics(path, {"mean_iu": 0.5, "iu": {"sky": None}}) == path
    assert path.read_text() == '{\n  "mean_iu": 0.5,\n  "iu": {\n    "sky": null\n  }\n}\n'
    write_metrics(str(path), {"mean_iu": 0.25})  # the folder exists now; the file is replaced
    assert path.read_text() == '{\n  "mean_iu": 0.25\n}\n'


def test_reduce_is_nothing_without_a_process_group() -> None:
    confusion = ConfusionMatrix(2)
    confusion.update(torch.tensor([0, 1]), torch.tensor([1, 1]))  # truth 1, 1: row 1
    confusion.reduce_from_all_processes()
    assert confusion.hist.tolist() == [[0, 0], [1, 1]]


def test_reduce_in_a_gloo_group_keeps_an_int64_cpu_histogram(tmp_path: Path) -> None:
    """One process in a gloo group: the sum over processes is its own histogram, back on the
    CPU as int64 (the sum over two processes is tests/train/test_distributed.py's, slow)."""
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        confusion = ConfusionMatrix(2)
        confusion.update(torch.tensor([0, 0, 1]), torch.tensor([0, 0, 0]))  # truth 0: row 0
        confusion.reduce_from_all_processes()
        assert confusion.hist.device.type == "cpu" and confusion.hist.dtype == torch.int64
        assert confusion.hist.tolist() == [[2, 1], [0, 0]]
    finally:
        dist.destroy_process_group()
