"""fcnseg's weight files and the input convention they carry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fcnseg.errors import FcnsegError
from fcnseg.io import InputConvention, WeightsMetadata, WeightsSource, load_model, load_weights
from fcnseg.convention import TORCHVISION_IMAGENET, caffe_convention
from fcnseg.io.weights import save_weights
from fcnseg.models import build_model

SMALL = {"width": 0.125, "fc_width": 32}


def _metadata(**changes: object) -> WeightsMetadata:
    fields = {
        "model": "fcn32s-vgg16",
        "num_classes": 2,
        "input": caffe_convention((104.0, 117.0, 123.0)),
        "init": "fcn",
        "source": WeightsSource("net.caffemodel", "ab" * 32, 10, "caffemodel", None),
        "classes": ("background", "cat"),
        "model_options": SMALL,
        "notes": ("a note",),
    }
    return WeightsMetadata(**(fields | changes))


def test_round_trip_and_load_model(tmp_path: Path) -> None:
    state = {
        k: torch.randn(v.shape)
        for k, v in build_model("fcn32s-vgg16", num_classes=2, **SMALL).state_dict().items()
    }
    path = tmp_path / "w.safetensors"
    save_weights(path, state, _metadata())
    loaded, metadata = load_weights(path)
    assert metadata == _metadata()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    net, _ = load_model(path)
    assert torch.equal(net.state_dict()["fc6.weight"], state["fc6.weight"])


def test_a_file_that_does_not_fit_its_model(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_weights(path, {"conv1_1.weight": torch.zeros(1)}, _metadata())
    with pytest.raises(FcnsegError, match="does not fit model 'fcn32s-vgg16'"):
        load_model(path)


def test_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    with pytest.raises(FcnsegError, match="no such file"):
        load_weights(path)
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(FcnsegError, match="not a readable safetensors file"):
        load_weights(path)
    save_file({"x": torch.zeros(1)}, path)
    with pytest.raises(FcnsegError, match="no 'fcnseg' metadata"):
        load_weights(path)
    save_file({"x": torch.zeros(1)}, path, metadata={"fcnseg": "{not json"})
    with pytest.raises(FcnsegError, match="not JSON"):
        load_weights(path)
    broken = _metadata().to_dict()
    del broken["input"]["std"]
    save_file({"x": torch.zeros(1)}, path, metadata={"fcnseg": json.dumps(broken)})
    with pytest.raises(FcnsegError, match="input convention: keys"):
        load_weights(path)
    save_file(
        {"x": torch.zeros(1)},
        path,
        metadata={"fcnseg": json.dumps(_metadata().to_dict() | {"num_classes": 3})},
    )
    with pytest.raises(FcnsegError, match="2 class names for 3 classes"):
        load_weights(path)


def test_convention_dict_round_trip_and_validation() -> None:
    for convention in (TORCHVISION_IMAGENET, caffe_convention((104.0, 117.0, 123.0))):
        assert InputConvention.from_dict(json.loads(json.dumps(convention.to_dict()))) == convention
    with pytest.raises(FcnsegError, match="channel_order 'GBR'"):
        InputConvention("GBR", 255, (0, 0, 0))
    with pytest.raises(FcnsegError, match="scale 100"):
        InputConvention("BGR", 100, (0, 0, 0))
    with pytest.raises(FcnsegError, match="std"):
        InputConvention("RGB", 1, (0, 0, 0), (1, 0, 1))
    with pytest.raises(FcnsegError, match="mean"):
        InputConvention("RGB", 1, (0, 0))


def test_normalize_follows_each_convention() -> None:
    rgb = torch.tensor([10.0, 20.0, 30.0]).view(1, 3, 1, 1)
    caffe = caffe_convention((1.0, 2.0, 3.0)).normalize(rgb)
    assert caffe.flatten().tolist() == [29.0, 18.0, 7.0]  # B-1, G-2, R-3
    torchvision = TORCHVISION_IMAGENET.normalize(rgb).flatten().numpy()
    expected = (np.array([10, 20, 30]) / 255 - np.array([0.485, 0.456, 0.406])) / np.array(
        [0.229, 0.224, 0.225]
    )
    np.testing.assert_allclose(torchvision, expected, rtol=1e-6)
