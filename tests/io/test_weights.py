"""fcnseg's weight files and the input convention they carry."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from fcnseg.convention import TORCHVISION_IMAGENET, InputConvention, caffe_convention
from fcnseg.data import bitmap_palette
from fcnseg.errors import FcnsegError
from fcnseg.io import ModelMeta, WeightsSource, load_model, read_weights, save_weights
from fcnseg.models import build_model

SMALL = {"width": 0.125, "fc_width": 32}


def _metadata(**changes: object) -> ModelMeta:
    fields = {
        "model": "fcn32s-vgg16",
        "build": {"num_classes": 2, "geometry": "caffe", **SMALL},
        "classes": ("background", "cat"),
        "palette": bitmap_palette(2),
        "input_convention": caffe_convention((104.0, 117.0, 123.0)),
        "init": "fcn",
        "source": WeightsSource("net.caffemodel", "ab" * 32, 10, "caffemodel", None),
        "notes": ("a note",),
    }
    return ModelMeta(**(fields | changes))


def test_round_trip_and_load_model(tmp_path: Path) -> None:
    state = {
        k: torch.randn(v.shape)
        for k, v in build_model("fcn32s-vgg16", num_classes=2, **SMALL).state_dict().items()
    }
    path = tmp_path / "w.safetensors"
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    save_weights(path, state, _metadata())
    after = datetime.datetime.now(datetime.timezone.utc)
    loaded, metadata = read_weights(path)
    # saving stamps the time, ISO 8601 in UTC to the second (and the commit, in a checkout);
    # the rest reads back as written
    saved = datetime.datetime.fromisoformat(metadata.saved)
    assert saved.utcoffset() == datetime.timedelta(0) and before <= saved <= after
    assert metadata.replace(git=None, saved=None) == _metadata()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    net = load_model(path)
    assert net.meta == metadata and not net.training
    assert torch.equal(net.state_dict()["fc6.weight"], state["fc6.weight"])


def test_a_file_that_does_not_fit_its_model(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_weights(path, {"conv1_1.weight": torch.zeros(1)}, _metadata())
    with pytest.raises(FcnsegError, match=r"w\.safetensors: weights do not fit the model"):
        load_model(path)


def test_unreadable_files(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    with pytest.raises(FcnsegError, match="no such file"):
        read_weights(path)
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(FcnsegError, match="not a readable safetensors file"):
        read_weights(path)
    save_file({"x": torch.zeros(1)}, path)
    with pytest.raises(FcnsegError, match="no fcnseg metadata"):
        read_weights(path)
    save_file({"x": torch.zeros(1)}, path, metadata={"fcnseg": "{not json"})
    with pytest.raises(FcnsegError, match="not JSON"):
        read_weights(path)
    broken = _metadata().to_dict()
    del broken["input_convention"]["std"]
    save_file({"x": torch.zeros(1)}, path, metadata={"fcnseg": json.dumps(broken)})
    with pytest.raises(FcnsegError, match="input convention: keys"):
        read_weights(path)
    three = _metadata().to_dict()
    three["build"]["num_classes"] = 3
    save_file({"x": torch.zeros(1)}, path, metadata={"fcnseg": json.dumps(three)})
    with pytest.raises(FcnsegError, match="2 class names for 3 classes"):
        read_weights(path)


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
