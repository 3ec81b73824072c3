"""Cityscapes: a tiny copy of the dataset's own layout, read back through the official table.

The expected train ids are written out here by hand from cityscapesScripts' labels.py, not
taken from the code under test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from fcnseg.cli import main
from fcnseg.data import (
    CITYSCAPES_INFO,
    build_dataset,
    cityscapes_label_ids,
    cityscapes_train_ids,
)
from fcnseg.errors import FcnsegError

# labels.py of cityscapesScripts: id -> trainId, 255 for the ignored labels; the license
# plate (-1, trainId -1 there) is ignored too.
OFFICIAL_TRAIN_ID = {
    0: 255,  # unlabeled
    1: 255,  # ego vehicle
    2: 255,  # rectification border
    3: 255,  # out of roi
    4: 255,  # static
    5: 255,  # dynamic
    6: 255,  # ground
    7: 0,  # road
    8: 1,  # sidewalk
    9: 255,  # parking
    10: 255,  # rail track
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    14: 255,  # guard rail
    15: 255,  # bridge
    16: 255,  # tunnel
    17: 5,  # pole
    18: 255,  # polegroup
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    29: 255,  # caravan
    30: 255,  # trailer
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
    -1: 255,  # license plate
}
CLASSES = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
IMAGENET_MEAN_BGR = (103.53, 116.28, 123.675)
HEIGHT, WIDTH = 8, 16


def _label_ids(seed: int) -> np.ndarray:
    """Every id 0-33 at least once (ignored ones included), in a shuffled 8 x 16 map."""
    ids = np.resize(np.arange(34, dtype=np.uint8), HEIGHT * WIDTH)
    return np.random.default_rng(seed).permutation(ids).reshape(HEIGHT, WIDTH)


def _expected(ids: np.ndarray) -> np.ndarray:
    return np.vectorize(OFFICIAL_TRAIN_ID.__getitem__)(ids.astype(np.int64))


def _write_frame(
    fmt: SimpleNamespace, root: Path, gt: str, split: str, name: str, ids: np.ndarray, seed: int
) -> np.ndarray:
    """One frame as the packages hold it: the image, and beside its label ids the colour,
    instance and polygon files of the same annotation, which the reader must leave alone."""
    city = name.split("_")[0]
    rgb = fmt.write_image(
        root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png",
        fmt.rgb_image(HEIGHT, WIDTH, seed),
    )
    folder = root / gt / split / city
    fmt.write_gray_png(folder / f"{name}_{gt}_labelIds.png", ids)
    fmt.write_image(folder / f"{name}_{gt}_color.png", fmt.rgb_image(HEIGHT, WIDTH, seed + 50))
    fmt.write_gray_png(folder / f"{name}_{gt}_instanceIds.png", ids.astype(np.uint16) * 1000)
    (folder / f"{name}_{gt}_polygons.json").write_text(
        json.dumps({"imgHeight": HEIGHT, "imgWidth": WIDTH, "objects": []})
    )
    return rgb


@pytest.fixture
def cityscapes(tmp_path: Path, fmt: SimpleNamespace) -> SimpleNamespace:
    """Two train frames of two cities and one val frame, gtFine label ids as shipped."""
    root = tmp_path / "cityscapes"
    frames = {
        ("train", "aachen_000000_000019"): _label_ids(0),
        ("train", "bochum_000000_000313"): _label_ids(1),
        ("val", "frankfurt_000000_000294"): _label_ids(2),
    }
    rgb = {}
    for seed, ((split, name), ids) in enumerate(frames.items()):
        rgb[name] = _write_frame(fmt, root, "gtFine", split, name, ids, seed)
    return SimpleNamespace(root=root, frames=frames, rgb=rgb)


def test_label_ids_read_back_as_the_official_train_ids(
    cityscapes: SimpleNamespace, fmt: SimpleNamespace
) -> None:
    dataset = build_dataset("cityscapes", cityscapes.root, "train")
    assert [s.name for s in dataset.samples] == ["aachen_000000_000019", "bochum_000000_000313"]
    assert dataset.info == CITYSCAPES_INFO and dataset.num_classes == 19
    for index, sample in enumerate(dataset.samples):
        image, label = dataset[index]
        ids = cityscapes.frames[("train", sample.name)]
        assert label.dtype == torch.int64
        np.testing.assert_array_equal(label.numpy(), _expected(ids))
        expected_image = fmt.caffe_input(cityscapes.rgb[sample.name], IMAGENET_MEAN_BGR)
        np.testing.assert_allclose(image.numpy(), expected_image, rtol=0, atol=1e-4)
    val = build_dataset("cityscapes", cityscapes.root, "val")
    ids = cityscapes.frames[("val", "frankfurt_000000_000294")]
    np.testing.assert_array_equal(val[0][1].numpy(), _expected(ids))


def test_every_ignored_id_and_the_license_plate_are_void() -> None:
    ignored = [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30, -1]
    np.testing.assert_array_equal(cityscapes_train_ids(np.array(ignored)), [255] * len(ignored))
    every = np.array(sorted(OFFICIAL_TRAIN_ID))
    np.testing.assert_array_equal(
        cityscapes_train_ids(torch.from_numpy(every)), [OFFICIAL_TRAIN_ID[i] for i in every]
    )
    with pytest.raises(FcnsegError, match=r"label value 34 is not a Cityscapes label id"):
        cityscapes_train_ids(np.array([7, 34]))


def test_classes_and_palette_are_the_official_ones() -> None:
    # (the mean is checked on the images: the ImageNet mean, BGR, as mmsegmentation's)
    assert CITYSCAPES_INFO.class_names == CLASSES
    assert CITYSCAPES_INFO.palette[0] == (128, 64, 128)  # road
    assert CITYSCAPES_INFO.palette[13] == (0, 0, 142)  # car
    assert CITYSCAPES_INFO.palette[18] == (119, 11, 32)  # bicycle


def test_label_train_ids_are_read_when_present(
    cityscapes: SimpleNamespace, fmt: SimpleNamespace
) -> None:
    # As createTrainIdLabelImgs.py writes them: train ids 0-18 and 255.
    folder = cityscapes.root / "gtFine" / "train" / "bochum"
    train_ids = np.full((HEIGHT, WIDTH), 255, dtype=np.uint8)
    train_ids[2:5, 3:9] = 17
    train_ids[0, :] = 0
    fmt.write_gray_png(folder / "bochum_000000_000313_gtFine_labelTrainIds.png", train_ids)
    dataset = build_dataset("cityscapes", cityscapes.root, "train")
    assert dataset.samples[1].label.name == "bochum_000000_000313_gtFine_labelTrainIds.png"
    assert dataset.samples[0].label.name == "aachen_000000_000019_gtFine_labelIds.png"
    np.testing.assert_array_equal(dataset[1][1].numpy(), train_ids)


def test_predictions_round_trip_through_the_table(tmp_path: Path) -> None:
    # train id -> the label id the official evaluation expects, from labels.py
    official_id = {t: i for i, t in OFFICIAL_TRAIN_ID.items() if t != 255}
    assert len(official_id) == 19
    prediction = np.arange(19 * 4).reshape(4, 19) % 19
    prediction[0, 0] = 255  # void is written as 0, unlabeled
    label_ids = cityscapes_label_ids(torch.from_numpy(prediction))
    assert label_ids.dtype == np.uint8
    expected = np.vectorize(lambda t: 0 if t == 255 else official_id[t])(prediction)
    np.testing.assert_array_equal(label_ids, expected)
    # and back: a written prediction reads as the train ids it came from
    path = tmp_path / "frankfurt_000000_000294.png"
    Image.fromarray(label_ids).save(path)
    np.testing.assert_array_equal(cityscapes_train_ids(np.asarray(Image.open(path))), prediction)
    evaluated = np.array(sorted(official_id.values()))
    np.testing.assert_array_equal(cityscapes_label_ids(cityscapes_train_ids(evaluated)), evaluated)
    with pytest.raises(FcnsegError, match=r"value 19 is neither a Cityscapes train id"):
        cityscapes_label_ids(np.array([19]))


def test_coarse_annotation_and_train_extra(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root = tmp_path / "cityscapes"
    ids = _label_ids(3)
    _write_frame(fmt, root, "gtCoarse", "train_extra", "augsburg_000000_000000", ids, 3)
    _write_frame(fmt, root, "gtFine", "train", "aachen_000000_000019", _label_ids(4), 4)
    dataset = build_dataset("cityscapes", root, "train_extra", annotation="coarse")
    assert dataset.samples[0].label.name == "augsburg_000000_000000_gtCoarse_labelIds.png"
    np.testing.assert_array_equal(dataset[0][1].numpy(), _expected(ids))
    with pytest.raises(FcnsegError, match=r"gtFine/train_extra: Cityscapes gtFine train_extra"):
        build_dataset("cityscapes", root, "train_extra")
    with pytest.raises(FcnsegError, match=r"annotation 'medium' unknown \(choices: fine, coarse"):
        build_dataset("cityscapes", root, "train", annotation="medium")


def test_errors_name_the_file_and_the_problem(
    cityscapes: SimpleNamespace, fmt: SimpleNamespace, tmp_path: Path
) -> None:
    root = cityscapes.root
    with pytest.raises(FcnsegError, match=r"nowhere: Cityscapes folder not found"):
        build_dataset("cityscapes", tmp_path / "nowhere", "train")
    with pytest.raises(FcnsegError, match=r"train_extra: no such split \(available: train, val\)"):
        build_dataset("cityscapes", root, "train_extra")

    label = root / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000294_gtFine_labelIds.png"
    ids = _label_ids(2)
    ids[3, 4] = 40
    fmt.write_gray_png(label, ids)
    dataset = build_dataset("cityscapes", root, "val")
    with pytest.raises(FcnsegError) as error:
        dataset[0]
    assert str(error.value) == f"{label}: label value 40 is not a Cityscapes label id 0-33"

    label.unlink()
    with pytest.raises(FcnsegError, match=r"_gtFine_labelIds\.png: file not found \(1 of 1"):
        build_dataset("cityscapes", root, "val")

    # a train ids file holds 0-18 and 255 only
    train_ids = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    train_ids[1, 1] = 19
    path = label.with_name("frankfurt_000000_000294_gtFine_labelTrainIds.png")
    fmt.write_gray_png(path, train_ids)
    with pytest.raises(FcnsegError, match=r"labelTrainIds\.png: label value 19 is neither"):
        build_dataset("cityscapes", root, "val")[0]


@pytest.fixture
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = ["--width", "0.0625", "--fc-width", "16", "--batch-size", "2", "--no-progress"]


@pytest.mark.usefixtures("_one_thread")
def test_train_a_step_and_evaluate_from_the_command_line(
    cityscapes: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture, metrics_check
) -> None:
    run = tmp_path / "run"
    root = str(cityscapes.root)
    train = ["train", "--dataset", "cityscapes", "--root", root, "--recipe", "scratch"]
    assert main([*train, "--out", str(run), "--max-iter", "1", "--eval-every", "1", *TINY]) == 0
    out = tmp_path / "eval"
    evaluate = ["eval", "--model", str(run / "last"), "--dataset", "cityscapes", "--root", root]
    assert main([*evaluate, "--split", "val", "--out", str(out)]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert list(record["iu"]) == list(CLASSES)
    truth = _expected(cityscapes.frames[("val", "frankfurt_000000_000294")])
    metrics_check(record, truth[truth != 255])
    assert "bicycle" in capsys.readouterr().out


def test_ids_below_the_license_plates_are_refused() -> None:
    with pytest.raises(FcnsegError, match=r"label value -2 is not a Cityscapes label id"):
        cityscapes_train_ids(np.array([7, -2]))


def test_each_missing_folder_or_file_is_named(cityscapes: SimpleNamespace, tmp_path: Path):
    root = cityscapes.root
    label = root / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000294_gtFine_labelIds.png"
    label.rename(tmp_path / "label.png")
    with pytest.raises(FcnsegError) as error:
        build_dataset("cityscapes", root, "val")
    assert str(error.value) == (
        f"{label}: file not found (1 of 1 Cityscapes gtFine val label files missing)"
    )
    (tmp_path / "label.png").rename(label)
    for folder, what in [
        ("gtFine/val", "Cityscapes gtFine val"),
        ("gtFine", "Cityscapes gtFine"),
        ("leftImg8bit", "Cityscapes leftImg8bit"),
    ]:
        (root / folder).rename(tmp_path / "moved")
        with pytest.raises(FcnsegError) as error:
            build_dataset("cityscapes", root, "val")
        assert str(error.value) == f"{root / folder}: {what} folder not found"
        (tmp_path / "moved").rename(root / folder)


def test_the_transform_is_applied(cityscapes: SimpleNamespace) -> None:
    def halve(image: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return image[:, ::2], label[::2]

    image, label = build_dataset("cityscapes", cityscapes.root, "val", transform=halve)[0]
    assert image.shape == (3, HEIGHT // 2, WIDTH) and label.shape == (HEIGHT // 2, WIDTH)
    ids = cityscapes.frames[("val", "frankfurt_000000_000294")]
    np.testing.assert_array_equal(label.numpy(), _expected(ids)[::2])
