"""``fcnseg predict``: palette label PNGs and overlays, and unreadable inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import one_error_line
from PIL import Image

import fcnseg
from fcnseg.cli import main
from fcnseg.data import overlay
from fcnseg.data.synthetic import SYNTHETIC_INFO


def test_predict_writes_palette_labels_and_overlays(
    checkpoint: Path, folder_dataset: Path, tmp_path: Path
) -> None:
    images = sorted((folder_dataset / "images" / "val").glob("*.png"))[:2]
    out = tmp_path / "pred"
    # fp32, the model's own numbers (the default, auto, is bf16 where the CPU runs it)
    argv = ["predict", *map(str, images), "--model", str(checkpoint), "--out", str(out)]
    assert main([*argv, "--precision", "fp32"]) == 0
    model = fcnseg.load_model(checkpoint)
    for path in images:
        label = Image.open(out / f"{path.stem}.png")
        assert label.mode == "P"
        palette = np.asarray(label.getpalette()[: 3 * 6]).reshape(6, 3)
        assert palette.tolist() == [list(c) for c in SYNTHETIC_INFO.palette]
        rgb = np.asarray(Image.open(path).convert("RGB"))
        with torch.no_grad():  # the checkpoint's own convention: BGR minus its mean
            expected = model(SYNTHETIC_INFO.convention.preprocess(rgb)[None]).argmax(1)[0]
        assert np.array_equal(np.asarray(label), expected.numpy())
        # the overlay is the image with the colours blended, a legend panel on its right
        blended = Image.open(out / f"{path.stem}_overlay.png")
        assert blended.mode == "RGB" and blended.width > label.width
        expected_overlay = overlay(rgb, expected.numpy(), SYNTHETIC_INFO.palette, 0.5)
        top_left = blended.crop((0, 0, *label.size))
        assert np.array_equal(np.asarray(top_left), np.asarray(expected_overlay))


def test_missing_image_is_one_line_and_writes_nothing(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = tmp_path / "no-such.jpg"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    for bad in (missing, broken):
        code = main(["predict", str(bad), "--model", str(checkpoint), "--out", str(tmp_path / "o")])
        assert code == 1
        captured = capsys.readouterr()
        assert str(bad) in one_error_line(captured.err)
        assert captured.out == ""  # no summary of nothing after the one line
    assert not (tmp_path / "o").exists()


def test_the_summary_counts_the_arguments_that_named_no_image(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """predict a.png nope.png fake.png: three arguments, two images found, one segmented."""
    good = tmp_path / "a.png"
    Image.fromarray(np.zeros((12, 14, 3), np.uint8)).save(good)
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    argv = ["predict", str(good), str(tmp_path / "nope.png"), str(fake)]
    assert main([*argv, "--model", str(checkpoint), "--out", str(tmp_path / "o")]) == 1
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 2 and "nope.png: no such file" in errors[0] and "fake.png" in errors[1]
    assert captured.out.strip() == (
        f"wrote 2 files for 1 of 2 images, 1 failed, to {tmp_path / 'o'}: a.png, a_overlay.png; "
        "1 argument named no image"
    )


def test_only_earlier_outputs_is_one_line(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    Image.fromarray(np.zeros((12, 14, 3), np.uint8)).save(image)
    out = tmp_path / "o"
    assert main(["predict", str(image), "--model", str(checkpoint), "--out", str(out)]) == 0
    capsys.readouterr()
    # the folder of an earlier run's outputs, and nothing else, to segment
    again = ["predict", str(out), "--model", str(checkpoint), "--out", str(tmp_path / "o2")]
    assert main(again) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[-1] == (
        f"fcnseg predict: error: no images left to segment in {out} (only an earlier fcnseg "
        "predict's outputs)"
    )


def test_unknown_model_name_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", "x.png", "--model", "no-such-model", "--out", str(tmp_path)]) == 1
    assert "no-such-model" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        # each once named without its flag ("tile must be ...", "memory 'abc': ...")
        (["--tile", "0"], "--tile 0: expected a whole number of pixels of at least 1"),
        (["--max-memory", "abc"], "--max-memory: memory 'abc': expected a size such as 2G"),
    ],
)
def test_a_bad_size_is_named_by_its_flag_and_writes_nothing(
    flags: list[str], said: str, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    out = tmp_path / "o"
    assert main(["predict", str(image), "--model", str(checkpoint), "--out", str(out), *flags]) == 1
    assert said in one_error_line(capsys.readouterr().err)
    assert not out.exists()
