"""ADE20K: a tiny ADEChallengeData2016 folder, its reduced labels and the benchmark's score."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fcnseg.cli import main
from fcnseg.data import ADE20K_INFO, ade20k_score, build_dataset
from fcnseg.errors import FcnsegError

IMAGENET_MEAN_BGR = (103.53, 116.28, 123.675)
HEIGHT, WIDTH = 8, 16


def _annotation(seed: int) -> np.ndarray:
    """Values 0-150 as the benchmark's PNGs hold them, with 0, 1 and 150 in known places."""
    values = np.random.default_rng(seed).integers(0, 151, (HEIGHT, WIDTH)).astype(np.uint8)
    values[0, :3] = (0, 1, 150)
    return values


@pytest.fixture
def ade(tmp_path: Path, fmt: SimpleNamespace) -> SimpleNamespace:
    root = tmp_path / "ADEChallengeData2016"
    frames = {
        ("training", "ADE_train_00000001"): _annotation(0),
        ("training", "ADE_train_00000002"): _annotation(1),
        ("validation", "ADE_val_00000001"): _annotation(2),
    }
    rgb = {}
    for seed, ((folder, name), values) in enumerate(frames.items()):
        image = fmt.rgb_image(HEIGHT, WIDTH, seed)
        rgb[name] = fmt.write_image(root / "images" / folder / f"{name}.jpg", image)
        fmt.write_gray_png(root / "annotations" / folder / f"{name}.png", values)
    # The release's other files, which the reader leaves alone.
    (root / "objectInfo150.txt").write_text("Idx\tRatio\tTrain\tVal\tName\n1\t0.1576\t...\twall\n")
    (root / "sceneCategories.txt").write_text("ADE_train_00000001 airport_terminal\n")
    return SimpleNamespace(root=root, frames=frames, rgb=rgb)


def test_zero_becomes_void_and_the_classes_shift_down(
    ade: SimpleNamespace, fmt: SimpleNamespace
) -> None:
    dataset = build_dataset("ade20k", ade.root, "train")
    assert dataset.info == ADE20K_INFO and dataset.num_classes == 150
    assert [s.name for s in dataset.samples] == ["ADE_train_00000001", "ADE_train_00000002"]
    for index, sample in enumerate(dataset.samples):
        image, label = dataset[index]
        values = ade.frames[("training", sample.name)]
        assert label.dtype == torch.int64
        assert label[0, :3].tolist() == [255, 0, 149]
        expected = np.where(values == 0, 255, values.astype(np.int64) - 1)
        np.testing.assert_array_equal(label.numpy(), expected)
        expected_image = fmt.caffe_input(ade.rgb[sample.name], IMAGENET_MEAN_BGR)
        np.testing.assert_allclose(image.numpy(), expected_image, rtol=0, atol=1e-4)
    val = build_dataset("ade20k", ade.root, "validation")
    assert [s.name for s in val.samples] == ["ADE_val_00000001"]
    assert len(build_dataset("ade20k", ade.root, "val")) == 1


def test_classes_and_palette() -> None:
    # (the mean is checked on the images: the ImageNet mean, BGR, as mmsegmentation's)
    names = ADE20K_INFO.class_names
    assert len(names) == 150 and len(ADE20K_INFO.palette) == 150
    assert (names[0], names[1], names[2], names[7], names[149]) == (
        "wall",
        "building",
        "sky",
        "bed",
        "flag",
    )
    assert ADE20K_INFO.palette[0] == (120, 120, 120) and ADE20K_INFO.palette[149] == (92, 0, 255)


def test_errors_name_the_file_and_the_problem(
    ade: SimpleNamespace, fmt: SimpleNamespace, tmp_path: Path
) -> None:
    with pytest.raises(FcnsegError, match=r"nowhere: ADE20K folder not found"):
        build_dataset("ade20k", tmp_path / "nowhere", "training")
    with pytest.raises(FcnsegError, match=r"testing: no such ADE20K split \(choices: training, "):
        build_dataset("ade20k", ade.root, "testing")

    path = ade.root / "annotations" / "training" / "ADE_train_00000002.png"
    values = _annotation(1)
    values[4, 5] = 151
    fmt.write_gray_png(path, values)
    with pytest.raises(FcnsegError) as error:
        build_dataset("ade20k", ade.root, "training")[1]
    assert str(error.value) == f"{path}: label value 151 outside 0-150 (0 other, 1-150 classes)"

    path.unlink()
    with pytest.raises(FcnsegError, match=r"ADE_train_00000002\.png: file not found \(1 of 2"):
        build_dataset("ade20k", ade.root, "training")


def test_ade_score_is_pixel_accuracy_plus_mean_iu_over_two() -> None:
    rng = np.random.default_rng(5)
    truth = rng.integers(0, 6, 400)
    truth[:20] = 255
    prediction = np.where(rng.random(400) < 0.6, truth, rng.integers(0, 6, 400)) % 6
    prediction[truth == 3] = 4  # a class never predicted right
    truth[truth == 5] = 0  # a class only predicted
    # the score, computed here pixel by pixel
    valid = truth != 255
    pixel_acc = np.mean(prediction[valid] == truth[valid])
    ius = []
    for k in range(7):
        intersection = np.sum(valid & (truth == k) & (prediction == k))
        union = np.sum(valid & ((truth == k) | (prediction == k)))
        if union:
            ius.append(intersection / union)
    expected = (pixel_acc + np.mean(ius)) / 2

    # from a confusion matrix, rows the truth and columns the prediction
    hist = np.zeros((7, 7), dtype=np.int64)
    np.add.at(hist, (truth[valid], prediction[valid]), 1)
    assert ade20k_score(hist) == pytest.approx(expected, abs=1e-12)
    assert ade20k_score(torch.from_numpy(hist)) == pytest.approx(expected, abs=1e-12)
    # from the metrics (the command line checks that it prints the score of its metrics)
    metrics = {"pixel_acc": pixel_acc, "mean_iu": np.mean(ius), "mean_acc": 0.0, "fw_iu": 0.0}
    assert ade20k_score(metrics) == pytest.approx(expected, abs=1e-12)
    assert np.isnan(ade20k_score(np.zeros((3, 3))))
    assert np.isnan(ade20k_score({"pixel_acc": None, "mean_iu": None}))


@pytest.fixture
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = ["--width", "0.0625", "--fc-width", "16", "--batch-size", "2", "--no-progress"]


@pytest.mark.usefixtures("_one_thread")
def test_train_a_step_and_evaluate_from_the_command_line(
    ade: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    root = str(ade.root)
    train = ["train", "--dataset", "ade20k", "--root", root, "--recipe", "scratch"]
    assert main([*train, "--out", str(run), "--max-iter", "1", "--eval-every", "1", *TINY]) == 0
    out = tmp_path / "eval"
    evaluate = ["eval", "--model", str(run / "last"), "--dataset", "ade20k", "--root", root]
    capsys.readouterr()
    assert main([*evaluate, "--split", "validation", "--out", str(out)]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert len(record["iu"]) == 150 and list(record["iu"])[149] == "flag"
    printed = capsys.readouterr().out
    score = 100 * (record["pixel_acc"] + record["mean_iu"]) / 2
    line = next(line for line in printed.splitlines() if line.startswith("ade_score"))
    assert line.split()[1] == f"{score:.2f}"
    assert "mean_iu" in printed
