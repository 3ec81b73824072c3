"""ConfusionMatrix against an independent computation of the paper's four metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fcnseg.errors import FcnsegError
from fcnseg.evaluation import ConfusionMatrix, format_table, metrics_record

VOID = 255


def reference_metrics(preds: list[np.ndarray], gts: list[np.ndarray], n: int) -> dict:
    """Section 5's definitions, class by class with boolean masks (no histogram)."""
    pred = np.concatenate([p.ravel() for p in preds])
    gt = np.concatenate([g.ravel() for g in gts])
    valid = gt != VOID
    pred, gt = pred[valid], gt[valid]
    n_ii = np.array([np.sum((gt == i) & (pred == i)) for i in range(n)], dtype=float)
    t_i = np.array([np.sum(gt == i) for i in range(n)], dtype=float)
    predicted = np.array([np.sum(pred == i) for i in range(n)], dtype=float)
    union = t_i + predicted - n_ii
    iu = np.array([n_ii[i] / union[i] if union[i] > 0 else np.nan for i in range(n)])
    acc = np.array([n_ii[i] / t_i[i] if t_i[i] > 0 else np.nan for i in range(n)])
    return {
        "pixel_acc": n_ii.sum() / t_i.sum(),
        "mean_acc": np.nanmean(acc),
        "mean_iu": np.nanmean(iu),
        "fw_iu": sum(t_i[i] * iu[i] for i in range(n) if t_i[i] > 0) / t_i.sum(),
        "iu": iu,
        "acc": acc,
    }


@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_an_independent_computation_with_void(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 8))
    confusion = ConfusionMatrix(n)
    preds, gts = [], []
    for _ in range(3):  # several batches, one histogram
        shape = (int(rng.integers(1, 3)), int(rng.integers(5, 30)), int(rng.integers(5, 30)))
        gt = rng.integers(0, n, shape)
        # correlated predictions, so that the metrics are neither 0 nor 1
        pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, n, shape))
        gt[rng.random(shape) < 0.2] = VOID
        if seed % 2:
            gt[gt == n - 1] = 0  # class n-1 predicted but absent from the ground truth
        confusion.update(torch.from_numpy(pred), torch.from_numpy(gt))
        preds.append(pred)
        gts.append(gt)
    got = confusion.compute()
    expected = reference_metrics(preds, gts, n)
    for key in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"):
        assert got[key] == pytest.approx(expected[key], rel=1e-12), key
    np.testing.assert_allclose(got["iu"], expected["iu"], rtol=1e-12)
    np.testing.assert_allclose(got["acc"], expected["acc"], rtol=1e-12)


def test_absent_class_is_nan_and_left_out_predicted_absent_class_counts_zero() -> None:
    confusion = ConfusionMatrix(4)
    gt = torch.tensor([[0, 0, 1, 1, VOID]])
    pred = torch.tensor([[0, 0, 1, 2, 3]])  # class 2 predicted, not in gt; 3 only on void
    confusion.update(pred[None], gt[None])
    metrics = confusion.compute()
    assert metrics["iu"][0] == 1.0
    assert metrics["iu"][1] == 0.5
    assert metrics["iu"][2] == 0.0  # counts, as a wrong prediction should
    assert math.isnan(metrics["iu"][3])  # absent from both: left out
    assert metrics["mean_iu"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert math.isnan(metrics["acc"][2])
    assert metrics["mean_acc"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics["pixel_acc"] == pytest.approx(3 / 4)
    assert metrics["fw_iu"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)


def test_histogram_rows_are_ground_truth_columns_prediction() -> None:
    confusion = ConfusionMatrix(3)
    confusion.update(torch.tensor([2]), torch.tensor([0]))
    assert confusion.hist[0, 2] == 1 and confusion.hist.sum() == 1


def test_label_outside_classes_is_an_error_void_is_not() -> None:
    confusion = ConfusionMatrix(3)
    confusion.update(torch.tensor([0, 1]), torch.tensor([VOID, 1]))
    with pytest.raises(FcnsegError, match="label value 3"):
        confusion.update(torch.tensor([0]), torch.tensor([3]))
    with pytest.raises(FcnsegError, match="shape"):
        confusion.update(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))


def test_record_and_table_name_the_classes() -> None:
    confusion = ConfusionMatrix(3)
    confusion.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]))
    metrics = confusion.compute()
    record = metrics_record(metrics, ["sky", "tree", "car"])
    assert set(record) == {"pixel_acc", "mean_acc", "mean_iu", "fw_iu", "iu", "acc", "confusion"}
    assert record["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 0]]  # rows truth, columns pred
    assert record["iu"]["car"] is None  # NaN is not JSON
    table = format_table(metrics, ["sky", "tree", "car"])
    assert "tree" in table and "mean_iu" in table and "n/a" in table
