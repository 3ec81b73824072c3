"""Export: ONNX with dynamic sizes equals PyTorch at sizes never traced; TorchScript too."""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from inference_nets import image, small_model

from fcnseg import FcnsegError
from fcnseg.cli import bench as bench_command
from fcnseg.cli import export as export_command
from fcnseg.inference import export_onnx, export_torchscript, run_onnx
from fcnseg.inference.export import relative_error

pytest.importorskip(
    "onnxruntime",
    reason="onnxruntime is not installed (pip install -e '.[onnx]'); these tests run on any "
    "machine that has it",
)

# sizes the trace never saw: odd, small, every phase of the stride-32 grid apart
UNSEEN = [(1, 97, 131), (2, 64, 64), (1, 33, 250)]


# the lean geometry is VGG16's only: GoogLeNet is built in Caffe's
@pytest.mark.parametrize(
    ("name", "geometry"),
    [("fcn8s-vgg16", "caffe"), ("fcn8s-vgg16", "lean"), ("fcn8s-googlenet", "caffe")],
)
def test_onnx_equals_pytorch_at_unseen_sizes(tmp_path: Path, name: str, geometry: str) -> None:
    model = small_model(name, geometry)
    path = tmp_path / "model.onnx"
    assert export_onnx(model, path, example=image(1, 3, 160, 160)) == ["scores"]
    for seed, (batch, height, width) in enumerate(UNSEEN):
        x = image(batch, 3, height, width, seed=seed)
        with torch.no_grad():
            expected = model(x)
        (result,) = run_onnx(path, x)
        assert result.shape == expected.shape
        assert relative_error(result, expected) <= 1e-4


def test_onnx_two_heads(tmp_path: Path) -> None:
    model = small_model("fcn16s-siftflow-vgg16", "lean")
    path = tmp_path / "siftflow.onnx"
    names = export_onnx(model, path, example=image(1, 3, 96, 96))
    assert names == ["scores_sem", "scores_geo"]
    x = image(1, 3, 70, 90)
    with torch.no_grad():
        expected = model(x)
    for result, head in zip(run_onnx(path, x), ("sem", "geo"), strict=True):
        assert relative_error(result, expected[head]) <= 1e-4


def test_a_failed_export_leaves_the_earlier_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ONNX checker (the last step) fails: the file an earlier export wrote at the path
    is as it was, and nothing is left beside it."""
    import onnx

    path = tmp_path / "model.onnx"
    model = small_model("fcn8s-vgg16", "lean")
    export_onnx(model, path, example=image(1, 3, 64, 64))
    earlier = path.read_bytes()

    def broken(*args, **kwargs):
        raise onnx.checker.ValidationError("checker failed")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    with pytest.raises(onnx.checker.ValidationError):
        export_onnx(small_model("fcn32s-vgg16", "lean"), path, example=image(1, 3, 64, 64))
    assert path.read_bytes() == earlier
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load
def test_torchscript_runs_at_other_sizes(tmp_path: Path, geometry: str) -> None:
    model = small_model("fcn8s-vgg16", geometry)
    path = tmp_path / "model.pt"
    export_torchscript(model, path, example=image(1, 3, 160, 160))
    loaded = torch.jit.load(str(path))
    for seed, (batch, height, width) in enumerate(UNSEEN):
        x = image(batch, 3, height, width, seed=seed)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), model(x), rtol=1e-5, atol=1e-5)


def test_missing_onnx_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("onnx", "onnxruntime"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    with pytest.raises(FcnsegError, match=r"pip install 'fcnseg\[onnx\]'"):
        export_onnx(small_model(), tmp_path / "m.onnx", example=image(1, 3, 64, 64))
    with pytest.raises(FcnsegError, match="onnxruntime"):
        run_onnx(tmp_path / "m.onnx", image(1, 3, 64, 64))


@pytest.fixture
def small_cli_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # The commands build full-size nets from a name; a small one keeps the tests quick.
    def model_from_args(args: argparse.Namespace) -> torch.nn.Module:
        return small_model(args.model, args.geometry)

    monkeypatch.setattr(export_command, "model_from_args", model_from_args)
    monkeypatch.setattr(bench_command, "model_from_args", model_from_args)


def _cli(module: object, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.run(args)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load
@pytest.mark.usefixtures("small_cli_model")
@pytest.mark.parametrize("format_", ["onnx", "torchscript"])
def test_export_command(tmp_path: Path, capsys: pytest.CaptureFixture[str], format_: str) -> None:
    name = "fcn.onnx" if format_ == "onnx" else "fcn.pt"
    out = tmp_path / name
    argv = ["export", "fcn8s-vgg16", "--format", format_, "--out", str(out)]
    assert _cli(export_command, [*argv, "--size", "128", "96", "--check"]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "relative error" in printed
    error = float(printed.rsplit("relative error", 1)[1])
    assert error <= 1e-4
    # a missing folder for the file is made (tests/cli/test_cli_outputs.py: the refusals)
    assert _cli(export_command, [*argv[:-1], str(tmp_path / "missing" / name)]) == 0
    assert (tmp_path / "missing" / name).is_file()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load
@pytest.mark.usefixtures("small_cli_model")
def test_export_format_follows_the_file_name(tmp_path: Path) -> None:
    """The ending says the format; an ending that names none, or a --format it contradicts,
    is refused before anything is written (an ONNX graph in model.pt would load nowhere)."""
    import onnx

    for name in ("m.pt", "m.PTH", "m.ts"):
        assert _cli(export_command, ["export", "fcn8s-vgg16", "--out", str(tmp_path / name)]) == 0
        torch.jit.load(str(tmp_path / name))  # TorchScript, or this raises
        # written from bytes: no temporary file's name inside the archive
        with zipfile.ZipFile(tmp_path / name) as archive:
            assert {entry.split("/")[0] for entry in archive.namelist()} == {"archive"}
    assert _cli(export_command, ["export", "fcn8s-vgg16", "--out", str(tmp_path / "m.onnx")]) == 0
    onnx.checker.check_model(str(tmp_path / "m.onnx"))
    # an ending that names no format: fcnseg predict would not know an ONNX m.model
    for given in ([], ["--format", "onnx"]):
        argv = ["export", "fcn8s-vgg16", *given, "--out", str(tmp_path / "m.model")]
        with pytest.raises(FcnsegError, match=r"m.model: give a name ending .onnx .*m.onnx$"):
            _cli(export_command, argv)
        assert not (tmp_path / "m.model").exists()
    for format_, name in (("onnx", "x.pt"), ("torchscript", "x.onnx")):
        argv = ["export", "fcn8s-vgg16", "--format", format_, "--out", str(tmp_path / name)]
        with pytest.raises(FcnsegError, match=f"--out .*{name}: a .* file is .*, not {format_}"):
            _cli(export_command, argv)
        assert not (tmp_path / name).exists()


@pytest.mark.usefixtures("small_cli_model")
def test_bench_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "bench.json"
    argv = ["bench", "fcn8s-vgg16", "--size", "64", "64", "--precision", "eager", "fp32"]
    assert _cli(bench_command, [*argv, "--repeats", "1", "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "GFLOP/s" in printed and "eager" in printed
    rows = json.loads(report.read_text())
    assert [row["path"] for row in rows] == ["eager", "fp32"]
    assert all(row["gflop"] > 0 and row["seconds_per_image"] > 0 for row in rows)
