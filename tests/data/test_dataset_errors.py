"""Errors a user can cause come back as one FcnsegError naming the file and the problem."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from fcnseg.data import build_dataset
from fcnseg.errors import FcnsegError


def test_unknown_dataset_lists_the_known_ones(tmp_path: Path) -> None:
    # (cityscapes, the example here once, is a known dataset now)
    with pytest.raises(FcnsegError, match=r"unknown dataset 'kitti'.*camvid.*voc"):
        build_dataset("kitti", tmp_path, "train")


def test_unknown_option_lists_the_options(voc_root: Path) -> None:
    with pytest.raises(FcnsegError, match=r"no option 'modality' \(options: transform\)"):
        build_dataset("voc", voc_root, "train", modality="hha")


def test_bad_option_value(tmp_path: Path) -> None:
    with pytest.raises(FcnsegError, match=r"modality 'rgbd'.*color-hha"):
        build_dataset("nyud", tmp_path, "train", modality="rgbd")
    with pytest.raises(FcnsegError, match=r"task 'depth'.*semantic, geometric, both"):
        build_dataset("siftflow", tmp_path, "trainval", task="depth")


def test_missing_root_and_split_file(tmp_path: Path, voc_root: Path) -> None:
    with pytest.raises(FcnsegError, match=r"nowhere: VOC folder not found"):
        build_dataset("voc", tmp_path / "nowhere", "train")
    with pytest.raises(FcnsegError, match=r"seg11valid\.txt: split file not found.*train"):
        build_dataset("voc", voc_root, "seg11valid")


def test_missing_files_name_the_first_and_count(voc_root: Path) -> None:
    (voc_root / "JPEGImages" / "2007_000032.jpg").unlink()
    (voc_root / "SegmentationClass" / "2007_000033.png").unlink()
    with pytest.raises(FcnsegError) as error:
        build_dataset("voc", voc_root, "train")
    message = str(error.value)
    assert "2007_000032.jpg: file not found" in message
    assert "2 of 4" in message and "\n" not in message


def test_sbd_train_noval_without_list_says_how(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root = tmp_path / "dataset"
    fmt.write_split(root / "train.txt", ["a"])
    with pytest.raises(FcnsegError, match=r"train_noval\.txt: split file not found.*exclude="):
        build_dataset("sbd", root, "train_noval")


def test_corrupt_image_names_its_file(voc_root: Path) -> None:
    (voc_root / "JPEGImages" / "2007_000033.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    dataset = build_dataset("voc", voc_root, "train")
    dataset[0]  # the other image still reads
    with pytest.raises(FcnsegError, match=r"2007_000033\.jpg: cannot read image"):
        dataset[1]


def test_truncated_image_names_its_file(voc_root: Path) -> None:
    path = voc_root / "JPEGImages" / "2007_000032.jpg"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(FcnsegError, match=r"2007_000032\.jpg: cannot read image"):
        build_dataset("voc", voc_root, "train")[0]


def test_label_value_out_of_range_names_file_and_value(
    voc_root: Path, fmt: SimpleNamespace
) -> None:
    label = np.zeros((4, 3), dtype=np.uint8)
    label[2, 1] = 21
    fmt.write_palette_png(voc_root / "SegmentationClass" / "2007_000033.png", label)
    dataset = build_dataset("voc", voc_root, "train")
    with pytest.raises(FcnsegError, match=r"2007_000033\.png: label value 21 .*0-20 nor void 255"):
        dataset[1]


def test_shifted_label_value_is_reported_as_stored(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root = tmp_path / "nyud"
    fmt.write_image(root / "data" / "images" / "img_1.png", fmt.rgb_image(2, 2, 0))
    fmt.write_mat(root / "segmentation" / "img_1.mat", segmentation=np.array([[1, 41], [0, 0]]))
    fmt.write_split(root / "test.txt", ["1"])
    with pytest.raises(FcnsegError, match=r"img_1\.mat: label value 41 outside 0-40"):
        build_dataset("nyud", root, "test")[0]


def test_size_mismatch_names_the_label_file(voc_root: Path, fmt: SimpleNamespace) -> None:
    fmt.write_palette_png(voc_root / "SegmentationClass" / "2007_000033.png", np.zeros((4, 4)))
    dataset = build_dataset("voc", voc_root, "train")
    with pytest.raises(FcnsegError, match=r"2007_000033\.png: label is 4x4 \(HxW\).* 4x3"):
        dataset[1]


def test_rgb_label_png_is_refused(voc_root: Path, fmt: SimpleNamespace) -> None:
    # A colour-coded label, as some tools save VOC masks: the indices are lost in it.
    fmt.write_image(voc_root / "SegmentationClass" / "2007_000033.png", fmt.rgb_image(4, 3, 0))
    with pytest.raises(FcnsegError, match=r"2007_000033\.png: label image has mode RGB"):
        build_dataset("voc", voc_root, "train")[1]


def test_mat_without_the_variable_names_file(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root = tmp_path / "dataset"
    fmt.write_image(root / "img" / "a.jpg", fmt.rgb_image(2, 2, 0))
    fmt.write_mat(root / "cls" / "a.mat", GTinst={"Segmentation": np.zeros((2, 2))})
    fmt.write_split(root / "val.txt", ["a"])
    with pytest.raises(FcnsegError, match=r"a\.mat: no variable 'GTcls' \(found: GTinst\)"):
        build_dataset("sbd", root, "val")[0]
    (root / "cls" / "a.mat").write_bytes(b"MATLAB 5.0 MAT-file, broken")
    with pytest.raises(FcnsegError, match=r"a\.mat: cannot read MATLAB file"):
        build_dataset("sbd", root, "val")[0]


def test_nyud_depth_zeros_are_refused(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root = tmp_path / "nyud"
    fmt.write_gray_png(root / "data" / "depth" / "img_1.png", np.array([[0, 900]], np.uint16))
    fmt.write_mat(root / "segmentation" / "img_1.mat", segmentation=np.array([[1, 1]]))
    fmt.write_split(root / "test.txt", ["1"])
    with pytest.raises(FcnsegError, match=r"img_1\.png: depth has zeros"):
        build_dataset("nyud", root, "test", modality="depth")[0]


def test_folder_errors(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root = tmp_path / "mine"
    fmt.write_image(root / "images" / "train" / "a.png", fmt.rgb_image(2, 2, 0))
    (root / "masks").mkdir()
    (root / "classes.txt").write_text("road 1 2 3\nsky\n")
    with pytest.raises(FcnsegError, match=r"classes\.txt: class 2 has no colour"):
        build_dataset("folder", root, "train")
    (root / "classes.txt").write_text("road\nsky\n")
    with pytest.raises(FcnsegError, match=r"test: no such split \(available: train, all\)"):
        build_dataset("folder", root, "test")
    with pytest.raises(FcnsegError, match=r"a\.png: file not found \(1 of 1 mask"):
        build_dataset("folder", root, "train")


def test_nyud_depth_of_another_size_names_its_file(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root = tmp_path / "nyud"
    fmt.write_image(root / "data" / "images" / "img_1.png", fmt.rgb_image(2, 3, 0))
    fmt.write_gray_png(root / "data" / "depth" / "img_1.png", np.full((3, 2), 900, np.uint16))
    fmt.write_mat(root / "segmentation" / "img_1.mat", segmentation=np.ones((2, 3)))
    fmt.write_split(root / "test.txt", ["1"])
    with pytest.raises(FcnsegError, match=r"depth/img_1\.png: depth is 3x2 \(HxW\) but colour"):
        build_dataset("nyud", root, "test", modality="color-depth")[0]


def test_splits_joined_by_plus_read_as_one_dataset_in_order(voc_root: Path, fmt) -> None:
    fmt.write_split(voc_root / "ImageSets" / "Segmentation" / "val.txt", ["2007_000033"])
    train = build_dataset("voc", voc_root, "train")
    val = build_dataset("voc", voc_root, "val")
    joined = build_dataset("voc", voc_root, "val+train")
    assert joined.samples == val.samples + train.samples
    assert len(joined) == 3 and joined.info == train.info
    for index, (image, label) in enumerate([*map(val.__getitem__, range(1)), train[0], train[1]]):
        assert np.array_equal(joined[index][0], image) and np.array_equal(joined[index][1], label)
    # a part that does not exist is named like a single missing split
    with pytest.raises(FcnsegError, match=r"test\.txt: split file not found"):
        build_dataset("voc", voc_root, "train+test")


@pytest.mark.parametrize("split", ["train+", "+val", "train++val"])
def test_a_join_with_an_empty_split_name_is_refused(voc_root: Path, split: str) -> None:
    with pytest.raises(FcnsegError, match=rf"split '{re.escape(split)}': a name is empty"):
        build_dataset("voc", voc_root, split)


@pytest.mark.parametrize(
    ("split", "repeated"), [("train+train", "train"), ("val+train+val+train", "train, val")]
)
def test_a_join_naming_a_split_twice_says_which(voc_root: Path, split: str, repeated: str) -> None:
    with pytest.raises(FcnsegError, match=rf"split '{re.escape(split)}' names {repeated} more"):
        build_dataset("voc", voc_root, split)


def test_generated_splits_cannot_be_joined(tmp_path: Path) -> None:
    with pytest.raises(FcnsegError, match=r"'synthetic' is generated per split"):
        build_dataset("synthetic", tmp_path, "train+val")
