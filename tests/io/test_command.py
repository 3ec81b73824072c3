"""``fcnseg convert`` on the command line: a result line, or one error line and exit status 1."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from weight_files import SMALL, fcn_blobs, write_caffemodel

from fcnseg.cli import main
from fcnseg.cli.convert import add_parser
from fcnseg.io import read_weights

SMALL_OPTIONS = [f"--model-option={key}={value}" for key, value in SMALL.items()]


def convert_main(argv: list[str]) -> int:
    """``fcnseg convert ARGV``, as the console script runs it."""
    return main(["convert", *argv])


def _net(tmp_path: Path, name: str = "fcn8s-heavy-pascal.caffemodel", classes: int = 21) -> Path:
    return write_caffemodel(tmp_path / name, fcn_blobs("fcn8s-vgg16", classes, **SMALL))


def test_converts_a_published_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "voc-fcn8s.safetensors"
    argv = [str(_net(tmp_path)), "--model", "fcn8s-vgg16", "--num-classes", "21", "-o", str(dst)]
    assert convert_main(argv + SMALL_OPTIONS) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{dst}: fcn8s-vgg16 (fcn weights), 21 classes, input BGR x255")
    _, metadata = read_weights(dst)
    assert metadata.source.published == "voc-fcn8s"
    assert metadata.build == {"num_classes": 21, "geometry": "caffe", **SMALL}


def test_mean_gives_an_unpublished_caffemodel_its_convention(tmp_path: Path) -> None:
    dst = tmp_path / "mine.safetensors"
    # 5 classes: no published net's, so neither its name nor its layers give a convention
    src = _net(tmp_path, "mine.caffemodel", classes=5)
    argv = [str(src), "--model", "fcn8s-vgg16", "--num-classes", "5", "-o", str(dst)]
    assert convert_main([*argv, "--mean", "1,2,3", *SMALL_OPTIONS]) == 0
    assert read_weights(dst)[1].input_convention.mean == (1.0, 2.0, 3.0)


def test_corrupt_file_is_one_line_and_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _net(tmp_path)
    src.write_bytes(src.read_bytes()[:5000])
    argv = [
        str(src),
        "--model",
        "fcn8s-vgg16",
        "--num-classes",
        "21",
        "-o",
        str(tmp_path / "x.safetensors"),
    ]
    assert convert_main(argv + SMALL_OPTIONS) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"fcnseg convert: error: {src}: truncated or corrupt; protobuf cannot parse it as a "
        "Caffe NetParameter\n"
    )
    assert not (tmp_path / "x").exists()


def test_as_a_process_no_traceback(tmp_path: Path) -> None:
    # as python -m fcnseg (src/fcnseg/__main__.py); the other process tests use fcnseg.cli
    src = tmp_path / "fcn32s-heavy-pascal.caffemodel"
    src.write_bytes(b"\x0a\xff\xff\xff\xff\x0f garbage")
    result = subprocess.run(
        [sys.executable, "-m", "fcnseg", "convert", str(src), "--model", "fcn32s-vgg16",
         "--num-classes", "21", "-o", str(tmp_path / "out.safetensors")],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"fcnseg convert: error: {src}: truncated or corrupt")


def test_mounts_as_a_subcommand(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser(prog="fcnseg")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["convert", "in.caffemodel", "--model", "fcn32s-vgg16", "--num-classes", "21", "-o", "o"]
    )
    assert args.command == "convert" and callable(args.run)
    assert (args.src, args.model, args.num_classes, args.dst) == (
        "in.caffemodel",
        "fcn32s-vgg16",
        21,
        "o",
    )
    with pytest.raises(SystemExit):
        parser.parse_args(["convert", "x", "--model", "fcn32s-vgg16", "--num-classes", "21",
                           "-o", "o", "--mean", "1,2"])  # fmt: skip
