"""``fcnseg info``: a model's record read without Python, as ``load_model(...).meta`` has it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import one_error_line
from safetensors.torch import load_file

import fcnseg
from fcnseg.cli import main
from fcnseg.io.weights import WEIGHTS_DIR, save_weights


def test_the_shipped_models_record_is_shown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "camvid-fcn8s"]) == 0
    lines = capsys.readouterr().out.splitlines()
    meta = fcnseg.load_model("camvid-fcn8s").meta
    # the parameter count from the file's own tensors (batch-norm statistics are buffers)
    tensors = load_file(WEIGHTS_DIR / "camvid-fcn8s.safetensors")
    parameters = sum(
        t.numel()
        for name, t in tensors.items()
        if not name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert lines[0] == (
        f"net: fcn8s-vgg16 (geometry lean, width 0.25, fc_width 256, batch_norm True), "
        f"{parameters:,} parameters"
    )
    assert lines[1] == "classes (11): " + ", ".join(meta.classes)
    assert lines[2].startswith(
        "input: channels BGR, a raw 255 becomes 255, then minus mean 110.331"
    )
    assert any(line.startswith("trained: camvid train+val, 4080 steps") for line in lines)
    metrics = next(line for line in lines if line.startswith("metrics on val:"))
    assert f"mean_iu {100 * meta.metrics['mean_iu']:.2f}" in metrics and "mean_iu 77.37" in metrics


def test_json_is_the_whole_record(capsys: pytest.CaptureFixture[str], checkpoint: Path) -> None:
    assert main(["info", str(checkpoint), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    model = fcnseg.load_model(checkpoint)
    assert record.pop("parameters") == sum(p.numel() for p in model.parameters())
    assert record == json.loads(json.dumps(model.meta.to_dict()))


def test_without_a_model_the_shipped_ones_are_listed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "camvid-fcn8s: fcn8s-vgg16, 11 classes (camvid), mean IU 77.37 on val"
    ]


@pytest.mark.parametrize("content", [None, b"not weights"])
def test_what_is_not_a_model_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None
) -> None:
    path = tmp_path / "x.safetensors"
    if content is not None:
        path.write_bytes(content)
    assert main(["info", str(path)]) == 1
    assert str(path) in one_error_line(capsys.readouterr().err)


def test_a_reader_that_goes_away_ends_it_quietly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `fcnseg info m --json | head -2`: head exits, the next write raises BrokenPipeError,
    # which printed a traceback
    class ClosedPipe:
        def __init__(self, fd: int) -> None:
            self.fd = fd

        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            pass

        def fileno(self) -> int:
            return self.fd

    with open(tmp_path / "stdout", "w") as stand_in:
        monkeypatch.setattr("sys.stdout", ClosedPipe(stand_in.fileno()))
        assert main(["info", "camvid-fcn8s", "--json"]) == 141
    assert capsys.readouterr().err == ""


def test_a_stopped_run_says_how_far_it_got(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = fcnseg.load_model(checkpoint)
    meta = model.meta.replace(iteration=4, config={"train_split": "train", "max_iter": 10})
    save_weights(tmp_path / "stopped.safetensors", model.state_dict(), meta)
    assert main(["info", str(tmp_path / "stopped.safetensors")]) == 0
    assert "trained: synthetic train, 4 of 10 steps" in capsys.readouterr().out.splitlines()


def test_a_runs_training_state_points_to_its_weights(
    checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # best.state.pt was called "a TorchScript or PyTorch file" to be converted
    state = checkpoint.with_name("best.state.pt")
    state.write_bytes(b"state")
    assert main(["info", str(state)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert "a run's training state" in line and str(checkpoint) in line


def test_a_run_mined_by_ohem_says_so(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = fcnseg.load_model(checkpoint)
    config = {"train_split": "train", "ohem_thresh": 0.7, "ohem_min_kept": 1000}
    meta = model.meta.replace(iteration=4, config=config)
    save_weights(tmp_path / "mined.safetensors", model.state_dict(), meta)
    assert main(["info", str(tmp_path / "mined.safetensors")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "trained: synthetic train, 4 steps, ohem 0.7 min_kept 1000" in lines


def test_a_training_checkpoint_names_the_split_its_metrics_were_scored_on(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # fit records the held-out split in the run's config, not in the metrics
    model = fcnseg.load_model(checkpoint)
    metrics = {"pixel_acc": 0.5, "mean_acc": 0.25, "mean_iu": 0.125, "fw_iu": 0.375}
    for config, named in (
        ({"val_split": "val"}, "metrics on val: "),
        ({"val_dataset": "voc", "val_split": "seg11valid"}, "metrics on voc seg11valid: "),
        ({"val_split": None}, "metrics on ?: "),
    ):
        meta = model.meta.replace(config=config, metrics=metrics)
        save_weights(tmp_path / "scored.safetensors", model.state_dict(), meta)
        assert main(["info", str(tmp_path / "scored.safetensors")]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert named + "pixel_acc 50.00, mean_acc 25.00, mean_iu 12.50, fw_iu 37.50" in lines
