"""Fixtures of every test folder: the paper's metrics by their definitions, for checking a
``metrics.json`` where the values themselves cannot be known in advance (a trained net's)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

METRICS = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")


def pytest_addoption(parser: Any) -> None:
    parser.addoption(
        "--claim-cpu",
        choices=("amx", "avx512"),
        help="run the suite as fcnseg behaves on that kind of CPU: its probe (runtime.py) "
        "reports that CPU's extensions and native precisions, so every choice made from them "
        "is the one such a CPU makes (amx: auto precision bf16, bf16 autocast; both: no "
        "Winograd by default); the kernels are still this CPU's, oneDNN's bf16 and fp16 "
        "convolutions emulated where they are not native (tests/cpu_claim.py)",
    )


def pytest_configure(config: Any) -> None:
    # before collection: skip conditions read the probe when the test modules are imported
    claim = config.getoption("--claim-cpu")
    if claim:
        from cpu_claim import install

        install(claim)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The CPU the suite ran on, at the end of every run's output (CI's included, and under
    ``-q``): tests that depend on the CPU's kernels (bf16, tolerances) say which kind they met."""
    from fcnseg.runtime import cpu_info

    info = cpu_info()
    claim = terminalreporter.config.getoption("--claim-cpu")
    claimed = f" (claimed by --claim-cpu {claim}; the kernels are this CPU's)" if claim else ""
    terminalreporter.write_line(
        f"fcnseg: ran on CPU {info['model']}, torch capability {info['capability']}, class "
        f"{info['class']}, native precisions {', '.join(info['native_precisions'])}{claimed}"
    )


def paper_metrics(confusion: Sequence[Sequence[int]]) -> dict[str, float]:
    """Section 5's four metrics of a confusion matrix (rows the truth), written from the
    definitions with numpy as the reference's ``score.py`` does (``np.nanmean``), not by
    fcnseg."""
    n = np.asarray(confusion, dtype=np.float64)
    t = n.sum(1)
    diag = np.diag(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = diag / t
        iu = diag / (t + n.sum(0) - diag)
    freq = t / t.sum()
    return {
        "pixel_acc": diag.sum() / t.sum(),
        "mean_acc": np.nanmean(acc),
        "mean_iu": np.nanmean(iu),
        "fw_iu": (freq[freq > 0] * iu[freq > 0]).sum(),
    }


def check_metrics_record(record: dict[str, Any], truth: np.ndarray | None = None) -> None:
    """The record's metrics are its confusion matrix's, by the definitions; the matrix's rows
    count the held-out ground truth (``truth``: its class labels, void already left out)."""
    confusion = np.asarray(record["confusion"])
    if truth is not None:
        counts = np.bincount(np.asarray(truth).ravel(), minlength=len(confusion))
        np.testing.assert_array_equal(confusion.sum(1), counts)
    expected = paper_metrics(confusion)
    for key in METRICS:
        assert record[key] == pytest.approx(expected[key], rel=1e-12, abs=1e-15), key
    diag = np.diag(confusion)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = diag / (confusion.sum(0) + confusion.sum(1) - diag)
    # metrics.json writes a class neither in the truth nor predicted (NaN) as null
    assert [v is None for v in record["iu"].values()] == np.isnan(per_class).tolist()
    kept = [v for v in record["iu"].values() if v is not None]
    assert kept == pytest.approx(per_class[~np.isnan(per_class)].tolist(), rel=1e-12)


@pytest.fixture
def metrics_check() -> Callable[..., None]:
    """:func:`check_metrics_record`, for tests in any folder."""
    return check_metrics_record
