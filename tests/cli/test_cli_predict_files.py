"""``fcnseg predict`` as a new user runs it (issue 10): outputs never overwrite inputs or each
other, folders and globs, bad files one line each, index PNGs, probabilities, TTA in eval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import one_error_line
from PIL import Image

import fcnseg
from fcnseg.cli import main
from fcnseg.data import build_dataset
from fcnseg.data.synthetic import SYNTHETIC_CLASSES, SyntheticShapes
from fcnseg.evaluation import evaluate, evaluation_loader
from fcnseg.inference import TestTimeAugmentation


def _image(path: Path, seed: int, size: int = 40) -> Path:
    rgb, _ = SyntheticShapes(1, size=size, seed=seed).render(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


def _predict(checkpoint: Path, *args: str) -> int:
    return main(["predict", *args, "--model", str(checkpoint), "--precision", "fp32"])


def _labels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_predicting_into_the_inputs_own_folder_is_refused_and_writes_nothing(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "d"
    street = _image(folder / "street.png", seed=1)
    photo = _image(folder / "photo.jpg", seed=2)
    original = street.read_bytes()
    monkeypatch.chdir(folder)
    # cd d && fcnseg predict street.png --out .  (the label map would replace street.png)
    assert _predict(checkpoint, "street.png", "--out", ".") == 1
    assert "overwrite the input street.png" in one_error_line(capsys.readouterr().err)
    assert street.read_bytes() == original
    # a JPEG's label PNG would not replace it, but would land in its folder: refused too
    assert _predict(checkpoint, str(photo), "--out", str(folder)) == 1
    assert "folder of the input" in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in folder.iterdir()) == ["photo.jpg", "street.png"]
    assert street.read_bytes() == original


def test_the_refusal_names_the_input_whose_output_it_would_be(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # it named the last input of the folder, whatever output came first: "would write
    # d/full.png into the folder of the input d/trunc.jpg"
    folder = tmp_path / "d"
    full, other = _image(folder / "full.jpg", seed=5), _image(folder / "trunc.jpg", seed=6)
    assert _predict(checkpoint, str(full), str(other), "--out", str(folder)) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"would write {folder / 'full.png'} into the folder of the input {full};" in line
    assert sorted(p.name for p in folder.iterdir()) == ["full.jpg", "trunc.jpg"]


def test_same_stem_inputs_get_distinct_outputs_each_correct(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    first, second = _image(tmp_path / "a" / "x.png", 3), _image(tmp_path / "b" / "x.png", 4)
    out = tmp_path / "o"
    assert _predict(checkpoint, str(first), str(second), "--out", str(out)) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a/x.png", "a/x_overlay.png", "b/x.png", "b/x_overlay.png"]
    summary = capsys.readouterr().out
    assert "wrote 4 files for 2 of 2 images" in summary
    model = fcnseg.load_model(checkpoint)
    for source, result in ((first, out / "a" / "x.png"), (second, out / "b" / "x.png")):
        assert np.array_equal(_labels(result), fcnseg.predict(model, source, precision="fp32"))
    assert not np.array_equal(_labels(out / "a" / "x.png"), _labels(out / "b" / "x.png"))

    # x.png and x.jpg in one folder: each keeps its extension in its outputs' names
    _image(tmp_path / "c" / "x.png", 5)
    _image(tmp_path / "c" / "x.jpg", 6)
    assert _predict(checkpoint, str(tmp_path / "c"), "--out", str(tmp_path / "o2")) == 0
    names = sorted(p.name for p in (tmp_path / "o2").iterdir())
    assert names == ["x.jpg.png", "x.jpg_overlay.png", "x.png.png", "x.png_overlay.png"]


def test_a_folder_with_a_text_file_and_a_truncated_png(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "my photos"  # a space in the name, and a nested folder
    good = [_image(folder / "one.png", 7), _image(folder / "trip" / "two 2.jpg", 8)]
    notes = folder / "notes.txt"
    notes.write_text("holiday")
    truncated = _image(folder / "cut.png", 9, size=64)
    truncated.write_bytes(truncated.read_bytes()[:150])
    out = tmp_path / "out"
    assert _predict(checkpoint, str(folder), "--out", str(out)) == 1
    assert (out / "one.png").is_file() and (out / "trip" / "two 2.png").is_file()
    assert not (out / "cut.png").exists()
    model = fcnseg.load_model(checkpoint)
    expected = fcnseg.predict(model, good[1], precision="fp32")
    assert np.array_equal(_labels(out / "trip" / "two 2.png"), expected)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    for bad in (notes, truncated):
        assert len([line for line in lines if str(bad) in line]) == 1, lines
    assert len(lines) == 2, lines


def test_globs_and_an_out_folder_inside_the_inputs(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "d"
    _image(folder / "p1.png", 10)
    _image(folder / "sub" / "p2.png", 11)
    out = folder / "pred"
    for _ in range(2):  # the second run must not take the first run's outputs as inputs
        assert _predict(checkpoint, str(folder / "**" / "*.png"), "--out", str(out)) == 0
        assert "wrote 4 files for 2 of 2 images" in capsys.readouterr().out
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == [
        "p1.png",
        "p1_overlay.png",
        "sub/p2.png",
        "sub/p2_overlay.png",
    ]
    assert _predict(checkpoint, str(folder), "--out", str(out)) == 0
    capsys.readouterr()
    # into another folder: the first run's outputs are known by their mark and left out
    assert _predict(checkpoint, str(folder), "--out", str(tmp_path / "elsewhere")) == 0
    captured = capsys.readouterr()
    assert "wrote 4 files for 2 of 2 images" in captured.out
    assert "skipped 4 PNGs an earlier fcnseg predict wrote" in captured.err
    assert _predict(checkpoint, str(tmp_path / "*.gif"), "--out", str(out)) == 1
    assert "no files match" in one_error_line(capsys.readouterr().err)


def test_an_out_folder_inside_the_search_holding_an_image_of_the_users_is_refused(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``predict d --out d/sub`` where d/sub/b.png is the user's: the search leaves d/sub
    out, so b.png would be neither segmented nor named and a.png's outputs would land beside
    it. Refused as naming both files is (test_predicting_into_the_inputs_own_folder...)."""
    folder = tmp_path / "d"
    _image(folder / "a.png", 20)
    own = _image(folder / "sub" / "b.png", 21)
    for search in (str(folder), str(folder / "**" / "*.png")):
        assert _predict(checkpoint, search, "--out", str(folder / "sub")) == 1
        line = one_error_line(capsys.readouterr().err)
        assert f"--out {folder / 'sub'} holds {own}" in line and "nothing written" in line
        assert sorted(p.name for p in (folder / "sub").iterdir()) == ["b.png"]
    # the files named one by one: the same refusal as before
    assert _predict(checkpoint, str(folder / "a.png"), str(own), "--out", str(folder / "sub")) == 1
    assert "into the folder of the input" in one_error_line(capsys.readouterr().err)
    # an --out holding only earlier outputs stays fine (test_globs_and_an_out_folder_inside...)
    own.unlink()
    assert _predict(checkpoint, str(folder), "--out", str(folder / "sub")) == 0
    assert _predict(checkpoint, str(folder), "--out", str(folder / "sub")) == 0
    assert "wrote 2 files for 1 of 1 images" in capsys.readouterr().out


def test_index_pngs_and_probabilities(checkpoint: Path, tmp_path: Path) -> None:
    source = _image(tmp_path / "in" / "img.png", 12)
    palette_out, index_out = tmp_path / "palette", tmp_path / "index"
    assert _predict(checkpoint, str(source), "--out", str(palette_out)) == 0
    args = ["--out", str(index_out), "--format", "index", "--save-probs"]
    assert _predict(checkpoint, str(source), *args) == 0
    indices = Image.open(index_out / "img.png")
    assert indices.mode == "L" and indices.getpalette() is None
    labels = np.asarray(indices)
    assert np.array_equal(labels, _labels(palette_out / "img.png"))
    with np.load(index_out / "img_probs.npz") as saved:
        probabilities, classes = saved["probs"], saved["classes"]
    assert probabilities.shape == (6, 40, 40) and probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(0), 1, atol=1e-5)
    assert np.array_equal(probabilities.argmax(0), labels)
    assert classes.tolist() == list(SYNTHETIC_CLASSES)


def test_eval_with_test_time_augmentation(
    checkpoint: Path, folder_dataset: Path, tmp_path: Path
) -> None:
    argv = ["eval", "--model", str(checkpoint), "--dataset", "folder", "--no-progress"]
    argv += ["--root", str(folder_dataset), "--out", str(tmp_path / "out")]
    assert main([*argv, "--flip", "--scales", "0.75", "1.25"]) == 0
    record = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert record["test_time_augmentation"] == {"flip": True, "scales": [0.75, 1.25]}
    model = fcnseg.load_model(checkpoint)
    dataset = build_dataset("folder", folder_dataset, "val", convention=model.meta.input_convention)
    tta = TestTimeAugmentation(model, flip=True, scales=(0.75, 1.25))
    expected = evaluate(tta, evaluation_loader(dataset), 6)
    assert record["pixel_acc"] == pytest.approx(expected["pixel_acc"])
    assert record["mean_iu"] == pytest.approx(expected["mean_iu"])


def test_dear_test_time_augmentation_is_said_first(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    image = _image(tmp_path / "in" / "a.png", seed=3, size=8)
    usual = ["--flip", "--scales", "0.5", "0.75", "1.0", "1.25", "1.5", "1.75"]
    assert _predict(checkpoint, str(image), "--out", str(tmp_path / "usual"), *usual) == 0
    assert "note: test-time augmentation" not in capsys.readouterr().err
    # 6 x 6 the pixels, twice: 72 plain predictions' work
    dear = ["--flip", "--scales", "6"]
    assert _predict(checkpoint, str(image), "--out", str(tmp_path / "dear"), *dear) == 0
    note = [line for line in capsys.readouterr().err.splitlines() if "note: test-time" in line]
    assert note == [
        "fcnseg predict: note: test-time augmentation (flip, scales 6) runs 72 times the "
        "pixels of a plain prediction per image, and takes about as much longer (scales of "
        "0.5-1.75 are usual)"
    ]


def test_no_note_on_augmentation_when_there_is_nothing_to_run(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = str(tmp_path / "nosuch.png")
    assert _predict(checkpoint, missing, "--out", str(tmp_path / "o"), "--scales", "6") == 1
    assert missing in one_error_line(capsys.readouterr().err)
