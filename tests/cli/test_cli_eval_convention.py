"""``fcnseg eval`` feeds a model in the convention its weights declare, whatever the dataset's.

The expected score is computed here without fcnseg's convention code: the images read with
PIL, standardised by hand with numpy the way torchvision's weights expect (RGB, [0, 1], mean
and std), the eager model, and a confusion matrix counted with numpy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import fcnseg
from fcnseg.cli import main
from fcnseg.convention import InputConvention
from fcnseg.io.weights import ModelMeta, save_weights

CLASSES = ("background", "red", "green", "blue")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def _dataset(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    (root / "images" / "val").mkdir(parents=True)
    (root / "masks" / "val").mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    rng = np.random.default_rng(5)
    pairs = []
    for index in range(3):
        rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        # strongly coloured blocks, so that the colour channels' order matters
        rgb[:12, :16] = (250, 10, 10)
        rgb[12:, 16:] = (10, 10, 250)
        label = rng.integers(0, len(CLASSES), (24, 32)).astype(np.uint8)
        label[0] = 255
        Image.fromarray(rgb).save(root / "images" / "val" / f"im{index}.png")
        Image.fromarray(label).save(root / "masks" / "val" / f"im{index}.png")
        pairs.append((rgb, label))
    return pairs


def _mean_iu(model: torch.nn.Module, pairs: list, reverse: bool) -> float:
    confusion = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    for rgb, label in pairs:
        x = (rgb.astype(np.float64) / 255 - MEAN) / STD  # torchvision's standardisation
        if reverse:
            x = x[:, :, ::-1]
        tensor = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1), np.float32))
        with torch.no_grad():
            prediction = model(tensor[None]).argmax(1)[0].numpy()
        valid = label != 255
        np.add.at(confusion, (label[valid], prediction[valid]), 1)
    iu = np.diag(confusion) / (confusion.sum(0) + confusion.sum(1) - np.diag(confusion))
    return float(np.nanmean(iu))


def test_eval_feeds_the_weights_convention(tmp_path: Path) -> None:
    pairs = _dataset(tmp_path / "data")
    torch.manual_seed(3)
    model = fcnseg.build_model(
        "fcn8s-vgg16", num_classes=4, geometry="lean", width=1 / 16, fc_width=8
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0, 0.5 if name.startswith("conv1_1") else 0.2)
    model.eval()
    convention = InputConvention("RGB", 1.0, MEAN, STD)
    meta = ModelMeta(
        model="fcn8s-vgg16",
        build={"num_classes": 4, "geometry": "lean", "width": 1 / 16, "fc_width": 8},
        classes=CLASSES,
        palette=((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)),
        input_convention=convention,
    )
    save_weights(tmp_path / "net.safetensors", model.state_dict(), meta)
    out = tmp_path / "eval"
    args = ["eval", "--model", str(tmp_path / "net.safetensors"), "--dataset", "folder"]
    assert main([*args, "--root", str(tmp_path / "data"), "--split", "val", "--out", str(out)]) == 0
    recorded = json.loads((out / "metrics.json").read_text())["mean_iu"]
    expected = _mean_iu(model, pairs, reverse=False)
    assert abs(recorded - expected) < 1e-9
    # the check can tell: BGR instead of RGB scores otherwise
    assert abs(_mean_iu(model, pairs, reverse=True) - expected) > 1e-3
