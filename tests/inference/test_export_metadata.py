"""Exports carry the metadata; an exported ONNX file predicts as the PyTorch model does
(issue 10, acceptance 5)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from inference_nets import image, small_model
from PIL import Image

import fcnseg
from fcnseg.cli import main
from fcnseg.convention import caffe_convention
from fcnseg.data import bitmap_palette
from fcnseg.errors import FcnsegError
from fcnseg.inference import export_onnx, export_torchscript, load_onnx, read_metadata
from fcnseg.io.weights import WEIGHTS_DIR, ModelMeta

pytest.importorskip("onnxruntime")

CAMVID = Path(__file__).resolve().parents[3] / "shared" / "data" / "camvid"
VAL = sorted((CAMVID / "val").glob("*.png"))[:3]


def _with_meta() -> torch.nn.Module:
    model = small_model("fcn8s-vgg16", "lean")
    model.meta = ModelMeta(
        model="fcn8s-vgg16",
        build={"num_classes": 5, "geometry": "lean", "width": 1 / 16, "fc_width": 16},
        classes=("sky", "road", "car", "tree", "person"),
        palette=bitmap_palette(6)[1:],
        input_convention=caffe_convention((104.0, 116.7, 122.7)),
        dataset="made-up",
    )
    return model


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load
def test_onnx_and_torchscript_metadata_read_back(tmp_path: Path) -> None:
    model = _with_meta()
    meta = model.meta
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"the weights")
    onnx_path, script_path = tmp_path / "m.onnx", tmp_path / "m.pt"
    export_onnx(model, onnx_path, example=image(1, 3, 96, 96), weights=weights)
    export_torchscript(model, script_path, example=image(1, 3, 96, 96), weights=weights)
    for path in (onnx_path, script_path):
        read = read_metadata(path)
        assert read["model"] == "fcn8s-vgg16"
        assert read["classes"] == list(meta.classes)
        assert read["palette"] == [list(colour) for colour in meta.palette]
        assert read["input_convention"] == {
            "channel_order": "BGR",
            "scale": 255.0,
            "mean": [104.0, 116.7, 122.7],
            "std": [1.0, 1.0, 1.0],
        }
        assert read["source"]["weights"] == "weights.bin"
        assert read["source"]["weights_sha256"] == hashlib.sha256(b"the weights").hexdigest()
        assert read["heads"] == {"out": 5} and read["tiling"] == {"margin": 262, "alignment": 32}
        assert ModelMeta.from_dict(read["fcnseg"]) == meta
    # the raw ONNX properties, as any ONNX tool sees them
    import onnx

    properties = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert properties["model"] == "fcn8s-vgg16"
    assert '"BGR"' in properties["input_convention"]


def test_onnx_model_predicts_as_pytorch(tmp_path: Path) -> None:
    model = _with_meta()
    path = tmp_path / "m.onnx"
    export_onnx(model, path, example=image(1, 3, 96, 96))
    exported = load_onnx(path)
    assert exported.meta == model.meta and exported.heads == {"out": 5}
    rgb = np.random.default_rng(0).integers(0, 256, (75, 101, 3), dtype=np.uint8)
    expected = fcnseg.predict(model, rgb, precision="fp32", max_memory=None)
    assert np.array_equal(fcnseg.predict(exported, rgb, max_memory=None), expected)
    # tiled from the recorded margin and stride: the same labels
    big = np.random.default_rng(1).integers(0, 256, (600, 160, 3), dtype=np.uint8)
    expected = fcnseg.predict(model, big, precision="fp32", max_memory=None)
    assert np.array_equal(fcnseg.predict(exported, big, tile=576), expected)


def test_an_onnx_file_without_metadata_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "bare.onnx"
    export_onnx(small_model("fcn8s-vgg16", "lean"), path, example=image(1, 3, 64, 64))
    assert "fcnseg" not in read_metadata(path)
    with pytest.raises(FcnsegError, match="no fcnseg metadata"):
        load_onnx(path)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a graph")
    with pytest.raises(FcnsegError, match="garbage.onnx"):
        load_onnx(garbage)


@pytest.mark.skipif(len(VAL) < 3, reason=f"no CamVid val images at {CAMVID}")
def test_fcnseg_predict_with_the_exported_shipped_model_gives_the_pytorch_labels(
    tmp_path: Path,
) -> None:
    onnx_path = tmp_path / "camvid.onnx"
    assert main(["export", "camvid-fcn8s", "--format", "onnx", "--out", str(onnx_path)]) == 0
    read = read_metadata(onnx_path)
    assert read["classes"][:3] == ["Sky", "Building", "Pole"]
    assert read["source"]["weights_sha256"] is not None
    assert (WEIGHTS_DIR / read["source"]["weights"]).is_file()
    images = [str(path) for path in VAL]
    common = ["--format", "index", "--max-memory", "none"]
    exported = ["predict", *images, "--model", str(onnx_path), "--out", str(tmp_path / "o")]
    assert main([*exported, *common]) == 0
    pytorch = tmp_path / "pytorch"
    argv = ["predict", *images, "--model", "camvid-fcn8s", "--precision", "fp32", "--out"]
    assert main([*argv, str(pytorch), *common]) == 0
    for path in VAL:
        onnx_labels = np.asarray(Image.open(tmp_path / "o" / f"{path.stem}.png"))
        torch_labels = np.asarray(Image.open(pytorch / f"{path.stem}.png"))
        assert onnx_labels.shape == (360, 480)
        assert np.array_equal(onnx_labels, torch_labels)
