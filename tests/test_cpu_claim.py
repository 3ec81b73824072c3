"""``pytest --claim-cpu amx`` (tests/cpu_claim.py): the branches fcnseg takes on a CPU with
native bf16 run on any CPU, and the probe says what it claimed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# skipped where bf16 is not native: under the claim they must run, and pass
NEEDS_NATIVE_BF16 = [
    "tests/inference/test_predictor.py::test_bf16_predictor_agrees_on_labels",
    "tests/train/test_amp.py::test_native_bf16_trains_under_bf16_autocast",
]


@pytest.mark.slow
def test_an_amx_claim_runs_the_native_bf16_tests_on_any_cpu() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--claim-cpu", "amx"]
        + NEEDS_NATIVE_BF16,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    last_lines = result.stdout.splitlines()[-2:]
    assert "(claiming amx), torch capability" in last_lines[0]
    assert (
        "class amx, native precisions fp32, fp16, bf16 (claimed by --claim-cpu amx"
        in (last_lines[0])
    )
    assert last_lines[1].startswith("2 passed in"), last_lines
