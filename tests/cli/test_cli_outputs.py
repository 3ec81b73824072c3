"""Every command checks where it will write before it does any work: a file given for a
folder, a folder given for a file, a path under a file are refused in one line, not in a
traceback after the scoring or training is done."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_helpers import one_error_line

from fcnseg.cli import main

# what each command writes to: a folder or a file
FOLDER_COMMANDS = {
    "eval": ["eval", "--model", "fcn8s-vgg16", "--dataset", "synthetic", "--root", "."],
    "predict": ["predict", "--model", "fcn8s-vgg16", "image.png"],
    "train": ["train", "--dataset", "synthetic", "--max-iter", "1", "--no-progress"],
    "demo": ["demo", "--no-progress"],
}
FILE_COMMANDS = {
    "report": (["report", "run"], "--out", "report.html"),
    "export": (["export", "fcn8s-vgg16", "--format", "onnx"], "--out", "model.onnx"),
    "convert": (
        ["convert", "model.caffemodel", "--model", "fcn8s-vgg16", "--num-classes", "21"],
        "--output",
        "model.safetensors",
    ),
}


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any model loaded, dataset built or run started fails the test: the refusal must come
    before the work."""

    def started(*_: object, **__: object) -> None:
        raise AssertionError("the command started its work before checking its output")

    import fcnseg.cli.convert
    import fcnseg.cli.demo
    import fcnseg.cli.evaluate
    import fcnseg.cli.export
    import fcnseg.cli.predict
    import fcnseg.cli.report
    import fcnseg.cli.train

    monkeypatch.setattr(fcnseg.cli.evaluate, "load_model", started)
    monkeypatch.setattr(fcnseg.cli.predict, "load_any_model", started)
    monkeypatch.setattr(fcnseg.cli.train, "resolve_config", started)
    monkeypatch.setattr(fcnseg.cli.demo, "run_demo", started)
    monkeypatch.setattr(fcnseg.cli.report, "write_report", started)
    monkeypatch.setattr(fcnseg.cli.export, "model_from_args", started)
    monkeypatch.setattr(fcnseg.cli.convert, "convert", started)


@pytest.mark.parametrize("command", FOLDER_COMMANDS)
def test_a_file_given_for_an_output_folder(
    command: str, tmp_path: Path, no_work: None, capsys: pytest.CaptureFixture[str]
) -> None:
    a_file = tmp_path / "street.png"
    a_file.write_bytes(b"not a folder")
    for out, problem in (
        (a_file, f"--out {a_file}: a file; give a folder"),
        (a_file / "x", f"--out {a_file / 'x'}: {a_file} is a file, not a folder"),
    ):
        assert main([*FOLDER_COMMANDS[command], "--out", str(out)]) == 1
        captured = capsys.readouterr()
        assert one_error_line(captured.err).endswith(problem)
        assert captured.out == ""
    assert a_file.read_bytes() == b"not a folder"


@pytest.mark.parametrize("command", FILE_COMMANDS)
def test_a_folder_given_for_an_output_file(
    command: str, tmp_path: Path, no_work: None, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments, flag, example = FILE_COMMANDS[command]
    a_file = tmp_path / "notes.txt"
    a_file.write_text("kept")
    for out, problem in (
        (tmp_path, f"{flag} {tmp_path}: a folder; give a file name (e.g. {tmp_path / example})"),
        (a_file / example, f"{flag} {a_file / example}: {a_file} is a file, not a folder"),
    ):
        assert main([*arguments, flag, str(out)]) == 1
        assert one_error_line(capsys.readouterr().err).endswith(problem)
    assert a_file.read_text() == "kept"


def test_an_output_file_in_a_new_folder_is_written(tmp_path: Path) -> None:
    # a missing folder for the file is made, as the commands that write folders make theirs
    out = tmp_path / "new" / "deeper" / "model.pt"
    assert main(["export", "fcn32s-vgg16", "--num-classes", "3", "--format", "torchscript",
                 "--size", "32", "32", "--out", str(out)]) == 0  # fmt: skip
    assert out.is_file()


@pytest.mark.parametrize("command", ["eval", "train", "report", "export"])
def test_a_place_that_cannot_be_written_is_refused_first(
    command: str,
    tmp_path: Path,
    no_work: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # as /sys or a read-only mount refuses root, whom permission bits do not stop
    import errno
    import tempfile

    def refused(*_: object, **__: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    if command in FOLDER_COMMANDS:
        argv, out = [*FOLDER_COMMANDS[command], "--out"], tmp_path / "new"
    else:
        arguments, flag, example = FILE_COMMANDS[command]
        argv, out = [*arguments, flag], tmp_path / example
    assert main([*argv, str(out)]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.endswith(f"{out}: cannot write in {tmp_path} (Permission denied)")
    assert not out.exists()


def test_converted_weights_get_a_name_the_loader_reads(
    tmp_path: Path, no_work: None, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments, flag, _ = FILE_COMMANDS["convert"]
    assert main([*arguments, flag, str(tmp_path / "c")]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.endswith(f"give a name that ends so (e.g. {tmp_path / 'c'}.safetensors)")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["train", "--lr", "x"], "fcnseg train: error: argument --lr: invalid float value: 'x'"),
        (["info", "--bogus"], "fcnseg info: error: unrecognized arguments: --bogus"),
        (["predict"], "fcnseg predict: error: the following arguments are required: images"),
        (["bogus"], "fcnseg: error: argument COMMAND: invalid choice: 'bogus'"),
        # a misspelt required flag was once reported as missing (--dataset), never named
        (
            ["eval", "--model", "camvid-fcn8s", "--datset", "camvid"],
            "fcnseg eval: error: unrecognized arguments: --datset (did you mean --dataset?)",
        ),
        (["predict", "a.png", "--modle", "m"], "fcnseg predict: error: unrecognized arguments: "),
        (["train", "--out", "o", "--lr=0.1", "--bogus"], "fcnseg train: error: unrecognized "),
        (["--verbose", "info"], "fcnseg: error: unrecognized arguments: --verbose"),
        # one dash: once read as -m odel, or as --model missing
        (
            ["eval", "-model", "camvid-fcn8s", "--dataset", "camvid"],
            "fcnseg eval: error: unrecognized arguments: -model (did you mean --model?)",
        ),
        (
            ["convert", "--model", "fcn8s-vgg16", "-out", "x.caffemodel"],
            "fcnseg convert: error: unrecognized arguments: -out (did you mean --output?)",
        ),
        (
            ["predict", "a.png", "--model", "m", "--scales", "inf"],
            "fcnseg predict: error: argument --scales: 'inf': expected a finite factor above 0",
        ),
    ],
)
def test_a_command_line_argparse_refuses_is_one_line_naming_the_command(
    argv: list[str], said: str, capsys: pytest.CaptureFixture
) -> None:
    # argparse's own usage block once came first: some twenty lines for fcnseg train
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    lines = [
        line for line in capsys.readouterr().err.splitlines() if not line.startswith("fcnseg: ran")
    ]
    assert len(lines) == 1 and lines[0].startswith(said)
    command = "fcnseg" if argv[0] in ("bogus", "--verbose") else f"fcnseg {argv[0]}"
    assert lines[0].endswith(f"(see {command} --help)")


def test_abbreviations_and_values_that_look_like_flags_still_parse() -> None:
    from fcnseg.cli import build_parser

    args = build_parser().parse_args(["eval", "--mod", "m", "--dataset", "camvid", "--split=val"])
    assert (args.model, args.dataset, args.split) == ("m", "camvid", "val")
    # after "--", a word is a value, whatever it looks like
    args = build_parser().parse_args(["info", "--json", "--", "--odd-name"])
    assert args.json and args.model == "--odd-name"


def test_negative_numbers_are_values_not_misspelt_flags() -> None:
    from fcnseg.cli import build_parser

    args = build_parser().parse_args(["train", "--out", "o", "--lr", "-1", "--seed", "-3"])
    assert (args.lr, args.seed) == (-1.0, -3)


def test_an_allocation_the_machine_refuses_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # --width 100 or --scales 1e6 once ended in torch's allocator traceback
    import fcnseg.cli.info as info

    def allocate(args: object) -> int:
        torch.empty(2**60, dtype=torch.uint8)  # torch's own refusal, whatever its wording
        return 0

    monkeypatch.setattr(info, "run", allocate)
    assert main(["info", "camvid-fcn8s"]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("fcnseg info: error: out of memory: an allocation of 1.07e+09 GiB")

    def other(args: object) -> int:
        raise RuntimeError("a bug, not memory")

    monkeypatch.setattr(info, "run", other)
    with pytest.raises(RuntimeError, match="a bug"):  # any other error stays a traceback
        main(["info", "camvid-fcn8s"])
