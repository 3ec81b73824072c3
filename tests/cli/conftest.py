"""Fixtures of the command-line tests: a folder dataset on disk and a checkpoint for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import checkpoint_meta
from PIL import Image

import fcnseg
from fcnseg.data.synthetic import SYNTHETIC_CLASSES, SYNTHETIC_INFO, SyntheticShapes
from fcnseg.train.checkpoint import save_checkpoint

BACKBONE = {"width": 1 / 16, "fc_width": 16, "batch_norm": True}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def folder_dataset(tmp_path: Path) -> Path:
    """Three generated images in the folder layout: images/val, masks/val, classes.txt."""
    root = tmp_path / "shapes"
    (root / "images" / "val").mkdir(parents=True)
    (root / "masks" / "val").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(SYNTHETIC_CLASSES) + "\n")
    shapes = SyntheticShapes(3, size=40, seed=11)
    for index in range(3):
        rgb, label = shapes.render(index)
        label[:2] = 255  # some void
        Image.fromarray(rgb).save(root / "images" / "val" / f"img{index}.png")
        Image.fromarray(label.astype(np.uint8)).save(root / "masks" / "val" / f"img{index}.png")
    return root


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """An FCN-8s checkpoint for the six synthetic classes, with random score layers."""
    torch.manual_seed(0)
    model = fcnseg.build_model("fcn8s-vgg16", num_classes=6, geometry="lean", **BACKBONE)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.startswith("score"):
                param.normal_(0, 0.1)
    model.eval()
    metadata = checkpoint_meta("fcn8s-vgg16", 6, "lean", BACKBONE, SYNTHETIC_INFO)
    save_checkpoint(tmp_path / "model" / "best", model, metadata)
    return tmp_path / "model" / "best.safetensors"
