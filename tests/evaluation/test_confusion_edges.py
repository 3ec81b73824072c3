"""ConfusionMatrix at its edges: one class, nothing or one pixel counted, uint8 labels, a
prediction just outside the classes. Expected values by hand."""

from __future__ import annotations

import math

import pytest
import torch

from fcnseg.errors import FcnsegError
from fcnseg.evaluation import ConfusionMatrix


def test_one_class_is_allowed_none_is_not() -> None:
    confusion = ConfusionMatrix(1)
    confusion.update(torch.tensor([0, 0]), torch.tensor([0, 255]))
    assert confusion.hist.tolist() == [[1]] and confusion.compute()["mean_iu"] == 1.0
    with pytest.raises(ValueError, match="at least 1"):
        ConfusionMatrix(0)


def test_the_histogram_is_int64_counts() -> None:
    confusion = ConfusionMatrix(2)
    assert confusion.hist.dtype == torch.int64 and confusion.hist.tolist() == [[0, 0], [0, 0]]


def test_nothing_counted_is_nan_everywhere_one_pixel_is_a_value() -> None:
    empty = ConfusionMatrix(3).compute()
    for key in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"):
        assert math.isnan(empty[key]), key
    one = ConfusionMatrix(3)
    one.update(torch.tensor([1]), torch.tensor([1]))
    metrics = one.compute()
    assert [metrics[k] for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")] == [1.0] * 4


def test_uint8_labels_are_counted_without_overflow() -> None:
    """Labels straight from a PNG are uint8; with 20 classes, 20 * 19 + 19 = 399 > 255."""
    confusion = ConfusionMatrix(20)
    pred = torch.tensor([19, 0, 19], dtype=torch.uint8)
    target = torch.tensor([19, 19, 255], dtype=torch.uint8)
    confusion.update(pred, target)
    assert confusion.hist[19, 19] == 1 and confusion.hist[19, 0] == 1
    assert int(confusion.hist.sum()) == 2


def test_predictions_of_any_numeric_dtype_are_counted_as_classes() -> None:
    """Class indices kept as floats (a saved array) are counted like integers."""
    confusion = ConfusionMatrix(3)
    confusion.update(torch.tensor([2.0, 0.0, 1.0]), torch.tensor([2, 1, 1]))
    assert confusion.hist.tolist() == [[0, 0, 0], [1, 1, 0], [0, 0, 1]]


@pytest.mark.parametrize("predicted", [-1, 3])
def test_a_prediction_just_outside_the_classes_is_refused(predicted: int) -> None:
    confusion = ConfusionMatrix(3)
    with pytest.raises(FcnsegError, match="predicted class outside 0-2"):
        confusion.update(torch.tensor([predicted]), torch.tensor([0]))
