"""ADE20K: a tiny ADEChallengeData2016 folder, its reduced labels and the benchmark's score."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fcnseg.cli import main
from fcnseg.data import ADE20K_INFO, ade20k_score, build_dataset
from fcnseg.data.ade20k import ade20k_score_text
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


def test_each_missing_folder_or_file_is_named(
    ade: SimpleNamespace, fmt: SimpleNamespace, tmp_path: Path
) -> None:
    root = ade.root
    annotation = root / "annotations" / "validation" / "ADE_val_00000001.png"
    annotation.unlink()
    with pytest.raises(FcnsegError) as error:
        build_dataset("ade20k", root, "validation")
    assert str(error.value) == (
        f"{annotation}: file not found (1 of 1 ADE20K validation annotation files missing)"
    )
    for folder, what in [
        ("annotations/validation", "ADE20K validation annotations"),
        ("images/validation", "ADE20K validation images"),
        ("annotations", "ADE20K annotations"),
        ("images", "ADE20K images"),
    ]:
        (root / folder).rename(tmp_path / "moved")
        with pytest.raises(FcnsegError) as error:
            build_dataset("ade20k", root, "val")
        assert str(error.value) == f"{root / folder}: {what} folder not found"
        (tmp_path / "moved").rename(root / folder)
        fmt.write_gray_png(annotation, _annotation(2))


def test_a_label_of_another_size_names_its_file(ade: SimpleNamespace, fmt: SimpleNamespace):
    path = ade.root / "annotations" / "validation" / "ADE_val_00000001.png"
    fmt.write_gray_png(path, np.ones((HEIGHT, WIDTH + 1), dtype=np.uint8))
    with pytest.raises(FcnsegError) as error:
        build_dataset("ade20k", ade.root, "validation")[0]
    assert str(error.value) == f"{path}: label is 8x17 (HxW) but its image is 8x16"


def test_the_transform_is_applied(ade: SimpleNamespace) -> None:
    def halve(image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image[:, ::2], label[::2]

    image, label = build_dataset("ade20k", ade.root, "validation", transform=halve)[0]
    assert image.shape == (3, HEIGHT // 2, WIDTH) and label.shape == (HEIGHT // 2, WIDTH)
    expected = np.where(_annotation(2) == 0, 255, _annotation(2).astype(np.int64) - 1)
    np.testing.assert_array_equal(label.numpy(), expected[::2])


@pytest.mark.parametrize(
    ("hist", "expected"),
    [
        # one pixel, right: pixel accuracy 1, IU 1 (the class absent everywhere is left out)
        ([[1, 0], [0, 0]], 1.0),
        # class 0 has one pixel, predicted as 1: its IU is 0 / 1 and counts; class 1's is 5/6;
        # pixel accuracy 5/6: (5/6 + (0 + 5/6) / 2) / 2 = 5/8
        ([[0, 1], [0, 5]], 5 / 8),
    ],
)
def test_ade_score_by_hand(hist: list[list[int]], expected: float) -> None:
    assert ade20k_score(np.array(hist)) == pytest.approx(expected, abs=1e-15)


def test_ade_score_of_nothing_or_null_is_nan_without_numpy_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0/0 in numpy would warn
        assert np.isnan(ade20k_score(np.zeros((3, 3), dtype=np.int64)))
    assert np.isnan(ade20k_score({"pixel_acc": 0.5, "mean_iu": None}))
    assert np.isnan(ade20k_score({"pixel_acc": None, "mean_iu": 0.5}))


def test_ade_score_sums_in_float64() -> None:
    """float32 cannot hold 2^24 + 1: a float32 matrix of large counts is summed in float64."""
    hist = torch.tensor([[2.0**24, 1.0], [1.0, 2.0**24]], dtype=torch.float32)
    total = 2.0**25 + 2
    iu = 2.0**24 / (2.0**24 + 2)
    assert ade20k_score(hist) == pytest.approx((2.0**25 / total + iu) / 2, rel=0, abs=1e-15)


def test_ade_score_needs_a_square_matrix() -> None:
    for shape in [(4,), (2, 3), (2, 2, 2)]:
        with pytest.raises(ValueError, match="expected a K x K confusion matrix"):
            ade20k_score(np.ones(shape))


def test_ade_score_line_under_the_table() -> None:
    width = max(len(name) for name in ADE20K_INFO.class_names)  # the table's class column
    assert width > len("class")
    metrics = {"pixel_acc": 0.75, "mean_iu": 0.5}
    assert ade20k_score_text("ade20k", metrics) == (
        "ade_score".ljust(width) + "   62.50  ((pixel_acc + mean_iu) / 2)\n"
    )
    assert ade20k_score_text("ade20k", {"pixel_acc": None, "mean_iu": None}) == (
        "ade_score".ljust(width) + "     n/a  ((pixel_acc + mean_iu) / 2)\n"
    )
    assert ade20k_score_text("cityscapes", metrics) == ""
