"""The folder dataset with colour-coded masks, read through classes.txt or a palette file."""

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
from fcnseg.data import VOC_MEAN_BGR, build_dataset
from fcnseg.errors import FcnsegError

HEIGHT, WIDTH = 8, 16
ROAD, CAR, SKY, VOID_COLOUR = (128, 64, 128), (0, 0, 142), (70, 130, 180), (0, 0, 0)
CLASSES_TXT = "road 128 64 128\ncar 0 0 142\nsky 70 130 180\nvoid 0 0 0\n"
# CVAT's "Segmentation mask 1.1" export writes labelmap.txt so.
LABELMAP = "# label:color_rgb:parts:actions\nroad:128,64,128::\ncar:0,0,142::\nsky:70,130,180::\n"


def _colour_mask(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB mask of the four colours and the class indices it stands for (written by hand:
    road 0, car 1, sky 2, black void 255)."""
    indices = np.random.default_rng(seed).integers(0, 4, (HEIGHT, WIDTH))
    colours = np.array([ROAD, CAR, SKY, VOID_COLOUR], dtype=np.uint8)
    return colours[indices], np.array([0, 1, 2, 255])[indices]


@pytest.fixture
def colour_folder(tmp_path: Path, fmt: SimpleNamespace) -> SimpleNamespace:
    """images/{train,val}, masks/{train,val} as RGB PNGs, classes.txt with colours."""
    root = tmp_path / "labelled"
    root.mkdir()
    (root / "classes.txt").write_text(CLASSES_TXT)
    labels, rgb = {}, {}
    for seed, (split, name) in enumerate([("train", "a"), ("train", "b"), ("val", "c")]):
        image = fmt.rgb_image(HEIGHT, WIDTH, seed)
        rgb[f"{split}/{name}"] = fmt.write_image(root / "images" / split / f"{name}.jpg", image)
        mask, labels[f"{split}/{name}"] = _colour_mask(seed)
        fmt.write_image(root / "masks" / split / f"{name}.png", mask)
    return SimpleNamespace(root=root, labels=labels, rgb=rgb)


def test_colour_masks_read_through_classes_txt(
    colour_folder: SimpleNamespace, fmt: SimpleNamespace
) -> None:
    dataset = build_dataset("folder", colour_folder.root, "train")
    assert dataset.info.class_names == ("road", "car", "sky")
    assert dataset.info.palette == (ROAD, CAR, SKY)
    for index, sample in enumerate(dataset.samples):
        image, label = dataset[index]
        assert label.dtype == torch.int64
        np.testing.assert_array_equal(label.numpy(), colour_folder.labels[sample.name])
        expected_image = fmt.caffe_input(colour_folder.rgb[sample.name], VOC_MEAN_BGR)
        np.testing.assert_allclose(image.numpy(), expected_image, rtol=0, atol=1e-4)


def test_rgba_and_index_masks_sit_beside_colour_ones(
    colour_folder: SimpleNamespace, fmt: SimpleNamespace
) -> None:
    mask, expected = _colour_mask(7)
    alpha = np.full((HEIGHT, WIDTH, 1), 255, dtype=np.uint8)
    Image.fromarray(np.concatenate([mask, alpha], axis=2)).save(
        colour_folder.root / "masks" / "train" / "a.png"
    )
    indices = np.array([[0, 1, 2, 255] * (WIDTH // 4)] * HEIGHT, dtype=np.uint8)
    fmt.write_gray_png(colour_folder.root / "masks" / "train" / "b.png", indices)
    dataset = build_dataset("folder", colour_folder.root, "train")
    np.testing.assert_array_equal(dataset[0][1].numpy(), expected)
    np.testing.assert_array_equal(dataset[1][1].numpy(), indices)


def test_palette_file_option(colour_folder: SimpleNamespace) -> None:
    root = colour_folder.root
    labelmap = root / "labelmap.txt"
    labelmap.write_text(LABELMAP + "void:0,0,0::\n")
    (root / "classes.txt").unlink()
    dataset = build_dataset("folder", root, "val", palette=labelmap)
    assert dataset.info.class_names == ("road", "car", "sky")
    np.testing.assert_array_equal(dataset[0][1].numpy(), colour_folder.labels["val/c"])

    # a palette file in classes.txt's own format, and a classes.txt that agrees with it
    plain = root / "palette.txt"
    plain.write_text(CLASSES_TXT)
    (root / "classes.txt").write_text("road\ncar\nsky\n")
    dataset = build_dataset("folder", root, "val", palette=str(plain))
    np.testing.assert_array_equal(dataset[0][1].numpy(), colour_folder.labels["val/c"])

    (root / "classes.txt").write_text("road\nsky\ncar\n")
    with pytest.raises(FcnsegError, match=r"classes\.txt: classes .* differ from the palette"):
        build_dataset("folder", root, "val", palette=plain)
    (root / "classes.txt").write_text("road\ncar\n")
    (root / "flat.txt").write_text("road\ncar\n")
    with pytest.raises(FcnsegError, match=r"flat\.txt: palette file gives no colours"):
        build_dataset("folder", root, "val", palette=root / "flat.txt")


def test_unknown_colour_names_the_colour_and_the_file(colour_folder: SimpleNamespace) -> None:
    mask, _ = _colour_mask(2)
    mask[5, 9] = (255, 255, 0)
    path = colour_folder.root / "masks" / "val" / "c.png"
    Image.fromarray(mask).save(path)
    dataset = build_dataset("folder", colour_folder.root, "val")
    with pytest.raises(FcnsegError) as error:
        dataset[0]
    message = str(error.value)
    assert message.startswith(f"{path}: colour (255, 255, 0) at row 5, column 9")
    assert "classes.txt" in message and "\n" not in message


def test_colour_masks_need_colours(colour_folder: SimpleNamespace) -> None:
    (colour_folder.root / "classes.txt").write_text("road\ncar\nsky\n")
    dataset = build_dataset("folder", colour_folder.root, "val")
    with pytest.raises(FcnsegError, match=r"c\.png: mask is colour-coded \(RGB\) but classes\.txt"):
        dataset[0]
    (colour_folder.root / "classes.txt").write_text("road 1 2 3\ncar:4,5,260::\n")
    with pytest.raises(FcnsegError, match=r"classes\.txt: line 2 colour \(4 5 260\) outside"):
        build_dataset("folder", colour_folder.root, "val")


@pytest.fixture
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY = ["--width", "0.0625", "--fc-width", "16", "--batch-size", "2", "--no-progress"]


@pytest.mark.usefixtures("_one_thread")
def test_train_a_step_and_evaluate_from_the_command_line(
    colour_folder: SimpleNamespace, tmp_path: Path, metrics_check
) -> None:
    run = tmp_path / "run"
    root = str(colour_folder.root)
    train = ["train", "--dataset", "folder", "--root", root, "--recipe", "scratch"]
    assert main([*train, "--out", str(run), "--max-iter", "1", "--eval-every", "1", *TINY]) == 0
    # evaluated with the colours from CVAT's labelmap.txt instead
    labelmap = tmp_path / "labelmap.txt"
    labelmap.write_text(LABELMAP + "void:0,0,0::\n")
    out = tmp_path / "eval"
    evaluate = ["eval", "--model", str(run / "last"), "--dataset", "folder", "--root", root]
    option = ["--dataset-option", f"palette={labelmap}"]
    assert main([*evaluate, *option, "--split", "val", "--out", str(out)]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert list(record["iu"]) == ["road", "car", "sky"]
    assert record["dataset_options"] == {"palette": str(labelmap)}
    truth = colour_folder.labels["val/c"]
    metrics_check(record, truth[truth != 255])


@pytest.mark.usefixtures("_one_thread")
def test_an_unknown_colour_stops_training_in_one_line(
    colour_folder: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    mask, _ = _colour_mask(1)
    mask[3, 4] = (255, 255, 0)
    path = colour_folder.root / "masks" / "train" / "b.png"
    Image.fromarray(mask).save(path)
    train = ["train", "--dataset", "folder", "--root", str(colour_folder.root)]
    assert main([*train, "--out", str(tmp_path / "run"), "--max-iter", "2", *TINY]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"fcnseg train: error: {path}: colour (255, 255, 0) at row 3, column 4 is neither a "
        "class's nor void in classes.txt"
    )
