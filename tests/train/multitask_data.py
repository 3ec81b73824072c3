"""Tiny SIFT Flow and NYUDv2 folders in their published layouts, for the multi-task nets.

The files are written by the format writers of ``tests/data`` (loaded by path: conftest
modules are not importable by name when several test folders have one).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

SIFTFLOW_SUBDIR = "spatial_envelope_256x256_static_8outdoorcategories"


def _formats() -> ModuleType:
    path = Path(__file__).parents[1] / "data" / "conftest.py"
    spec = importlib.util.spec_from_file_location("fcnseg_test_data_formats", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fmt = _formats()


def siftflow_root(folder: Path, size: int = 32) -> Path:
    """SIFT Flow with 2 trainval and 1 test images: semantic 0 (void) to 33, geometric -1 and 0
    (void) to 3, as the .mat files hold them."""
    root = folder / "SiftFlow"
    rng = np.random.default_rng(0)
    splits = {"trainval": ["coast_a", "forest_b"], "test": ["street_c"]}
    for index, name in enumerate(sum(splits.values(), [])):
        fmt.write_image(
            root / "Images" / SIFTFLOW_SUBDIR / f"{name}.jpg", fmt.rgb_image(size, size, index)
        )
        semantic = rng.integers(0, 34, (size, size)).astype(np.float64)
        geometric = rng.integers(-1, 4, (size, size)).astype(np.float64)
        fmt.write_mat(root / "SemanticLabels" / SIFTFLOW_SUBDIR / f"{name}.mat", S=semantic)
        fmt.write_mat(root / "GeoLabels" / SIFTFLOW_SUBDIR / f"{name}.mat", S=geometric)
    for split, names in splits.items():
        fmt.write_split(root / f"{split}.txt", names)
    return root


def nyud_root(folder: Path, size: int = 32) -> Path:
    """NYUDv2 with 2 train and 1 val images: colour, in-filled depth, HHA, labels 0 (void)
    to 40."""
    root = folder / "nyud"
    rng = np.random.default_rng(1)
    splits = {"train": ["5001", "5002"], "val": ["5003"]}
    for index, name in enumerate(sum(splits.values(), [])):
        fmt.write_image(
            root / "data" / "images" / f"img_{name}.png", fmt.rgb_image(size, size, index)
        )
        fmt.write_image(
            root / "data" / "hha" / f"img_{name}.png", fmt.rgb_image(size, size, 9 + index)
        )
        depth = rng.integers(500, 5000, (size, size)).astype(np.uint16)
        fmt.write_gray_png(root / "data" / "depth" / f"img_{name}.png", depth)
        segmentation = rng.integers(0, 41, (size, size)).astype(np.uint8)
        fmt.write_mat(root / "segmentation" / f"img_{name}.mat", segmentation=segmentation)
    for split, names in splits.items():
        fmt.write_split(root / f"{split}.txt", names)
    return root
