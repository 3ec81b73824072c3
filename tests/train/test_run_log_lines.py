"""A run whose output goes to a file, not a terminal, still says how it goes: progress lines
in place of the bar, which tqdm hides there."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcnseg.train import log as run_log
from fcnseg.train.log import RunLog, read_log


def _steps(folder: Path, *, progress: bool, count: int = 3) -> RunLog:
    log = RunLog(folder, start=0, total=count, progress=progress)
    for iteration in range(1, count + 1):
        log.step(iteration, loss=1.0 / iteration, lr=0.001, images_per_s=4.0)
    log.close()
    return log


def test_a_log_file_gets_progress_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest's captured output is no terminal, as a file is not
    _steps(tmp_path / "every", progress=True)
    lines = capsys.readouterr().out.splitlines()
    # the first step, then none within the minute, and the last
    assert lines == [
        "iteration 1/3: loss 1, lr 0.001, 4.0 images/s",
        "iteration 3/3: loss 0.3333, lr 0.001, 4.0 images/s",
    ]
    monkeypatch.setattr(run_log, "LINE_EVERY_S", 0.0)
    _steps(tmp_path / "often", progress=True)
    assert len(capsys.readouterr().out.splitlines()) == 3
    # --no-progress: silent; the JSON log has every step either way
    _steps(tmp_path / "quiet", progress=False)
    assert capsys.readouterr().out == ""
    assert [entry["iteration"] for entry in read_log(tmp_path / "quiet")] == [1, 2, 3]
