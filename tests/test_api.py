"""The public surface: ``fcnseg.load_model`` and ``fcnseg.predict`` (issue 9's acceptance).

Expected values come from outside the code under test: tensors read straight from the
safetensors file, the legacy files written here by hand, the input convention computed with
numpy, and the evaluation path (dataset -> eager model -> arg max).
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

import fcnseg
from fcnseg.cli import main
from fcnseg.data import CAMVID_INFO, build_dataset
from fcnseg.data.nyud import MODALITY_CONVENTIONS, NYUD_MEAN_BGR, NYUD_MEAN_HHA
from fcnseg.errors import FcnsegError
from fcnseg.inference import Predictor
from fcnseg.io import convert
from fcnseg.io.published import VGG16_ILSVRC_MEAN
from fcnseg.io.weights import WEIGHTS_DIR, ModelMeta
from fcnseg.models import VGG16
from fcnseg.train.checkpoint import save_checkpoint
from tests.io.weight_files import SMALL, fcn_blobs, random_blobs, write_caffemodel

CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"
SHIPPED = WEIGHTS_DIR / "camvid-fcn8s.safetensors"
LEGACY_SIDECAR = Path(__file__).parent / "fixtures" / "camvid-fcn8s.checkpoint1.json"
needs_camvid = pytest.mark.skipif(
    not (CAMVID / "val").is_dir(),
    reason="../shared/data/camvid (SegNet's CamVid) is not beside the checkout; runs on any "
    "machine once it is there",
)


def _assert_same_state(model: torch.nn.Module, expected: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert sorted(state) == sorted(expected)
    for key, tensor in expected.items():
        assert torch.equal(state[key], tensor), key


def test_shipped_model_loads_in_eval_mode_with_its_record() -> None:
    assert "camvid-fcn8s" in fcnseg.list_pretrained()
    model = fcnseg.load_model("camvid-fcn8s")
    assert model.training is False
    _assert_same_state(model, load_file(SHIPPED))
    meta = model.meta
    assert meta.classes == CAMVID_INFO.class_names
    assert meta.palette == CAMVID_INFO.palette
    # the CamVid train mean, BGR (docs/camvid.md)
    assert meta.input_convention.mean == (110.331, 108.409, 105.033)
    assert meta.input_convention.channel_order == "BGR"
    # the recipe's last stage (5600 / 2160 / 4080 steps, 1/4 width, bf16), on train+val: its
    # val numbers are those it reproduces, not held out (docs/camvid.md)
    assert meta.iteration == 4080
    assert meta.config["train_split"] == "train+val"
    assert meta.config["backbone"] == {"width": 0.25, "fc_width": 256, "batch_norm": True}
    assert round(100 * meta.metrics["mean_iu"], 2) == 77.37
    assert model.heads == {"out": 11} and model.in_channels == 3
    # its record names the stage it started from and the data within the project, not the
    # training machine's own paths
    assert meta.config["init"] == "stage2-fcn16s-vgg16/last"
    assert meta.config["root"] == "../shared/data/camvid"


def test_a_checkpoint_of_the_first_format_loads_the_same(tmp_path: Path) -> None:
    # fcnseg 0.1 wrote checkpoints as weights with {"format", "iteration"} in the header and
    # the metadata in a .json beside them.
    tensors = load_file(SHIPPED)
    save_file(
        tensors,
        tmp_path / "old.safetensors",
        {"format": "fcnseg-checkpoint/1", "iteration": "2338"},
    )
    # the sidecar of the first shipped model (1/8 width), its net made the shipped one's
    new = fcnseg.load_model("camvid-fcn8s")
    sidecar = json.loads(LEGACY_SIDECAR.read_text())
    sidecar["build"] = {**sidecar["build"], **new.meta.build}
    (tmp_path / "old.json").write_text(json.dumps(sidecar))
    old = fcnseg.load_model(tmp_path / "old")
    _assert_same_state(old, tensors)
    assert old.training is False
    for field in ("model", "build", "classes", "palette", "input_convention"):
        assert getattr(old.meta, field) == getattr(new.meta, field), field
    assert old.meta.iteration == 2338  # the header's
    assert old.meta.metrics == json.loads(LEGACY_SIDECAR.read_text())["metrics"]


def test_a_torn_checkpoint_of_the_first_format_is_refused(tmp_path: Path) -> None:
    save_file(
        load_file(SHIPPED),
        tmp_path / "old.safetensors",
        {"format": "fcnseg-checkpoint/1", "iteration": "7"},
    )
    shutil.copy(LEGACY_SIDECAR, tmp_path / "old.json")
    with pytest.raises(FcnsegError, match="iteration 7"):
        fcnseg.load_model(tmp_path / "old.safetensors")


def test_a_converted_file_of_the_first_format_loads_the_same(tmp_path: Path) -> None:
    net = fcnseg.build_model("fcn8s-vgg16", num_classes=3, **SMALL)
    state = {k: torch.randn(v.shape) for k, v in net.state_dict().items()}
    record = {
        "format": "fcnseg-weights/1",
        "model": "fcn8s-vgg16",
        "num_classes": 3,
        "classes": ["a", "b", "c"],
        "model_options": SMALL,
        "input": {
            "channel_order": "RGB",
            "scale": 1.0,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.2, 0.2, 0.2],
        },
        "init": "fcn",
        "source": {
            "file": "x.pth",
            "sha256": "ab" * 32,
            "size": 10,
            "layout": "caffe-named",
            "published": None,
        },
        "notes": ["a note"],
    }
    save_file(state, tmp_path / "converted.safetensors", {"fcnseg": json.dumps(record)})
    model = fcnseg.load_model(tmp_path / "converted.safetensors")
    assert model.training is False
    _assert_same_state(model, state)
    meta = model.meta
    assert meta.classes == ("a", "b", "c") and meta.init == "fcn" and meta.notes == ("a note",)
    assert meta.input_convention.std == (0.2, 0.2, 0.2)
    assert meta.source.file == "x.pth" and meta.source.sha256 == "ab" * 32
    assert meta.build == {"num_classes": 3, "geometry": "caffe", **SMALL}


def test_a_training_checkpoint_and_its_run_folder_load(tmp_path: Path) -> None:
    net = fcnseg.build_model("fcn16s-vgg16", num_classes=11, geometry="lean", **SMALL)
    for tensor in net.state_dict().values():
        tensor.copy_(torch.randn(tensor.shape))
    meta = ModelMeta(
        model="fcn16s-vgg16",
        build={"num_classes": 11, "geometry": "lean", **SMALL},
        classes=CAMVID_INFO.class_names,
        palette=CAMVID_INFO.palette,
        input_convention=CAMVID_INFO.convention,
        iteration=5,
        metrics={"mean_iu": 0.25},
    )
    save_checkpoint(tmp_path / "run" / "last", net.train(), meta, {"x": torch.zeros(1)})
    expected = {k: v.clone() for k, v in net.state_dict().items()}
    for spec in (
        tmp_path / "run",
        tmp_path / "run" / "last",
        tmp_path / "run" / "last.safetensors",
    ):
        model = fcnseg.load_model(spec)
        assert model.training is False
        _assert_same_state(model, expected)
        assert model.meta.iteration == 5 and model.meta.metrics == {"mean_iu": 0.25}
        assert model.meta.input_convention == CAMVID_INFO.convention


def test_a_converted_caffemodel_loads_and_a_renamed_one_keeps_its_convention(
    tmp_path: Path,
) -> None:
    # The ILSVRC VGG16, renamed: recognised by its layers, so it keeps the VGG mean pixel.
    with torch.device("meta"):
        classifier = VGG16(**SMALL).state_dict()
    blobs = random_blobs(classifier, seed=4)
    source = write_caffemodel(tmp_path / "my-backbone.caffemodel", blobs, legacy=True)
    state, meta = convert(source, "fcn32s-vgg16", 21, tmp_path / "init.safetensors", **SMALL)
    assert meta.source.published == "vgg16-ilsvrc"
    assert meta.input_convention.mean == VGG16_ILSVRC_MEAN
    assert meta.input_convention.channel_order == "BGR"
    assert any("Recognised by its content" in note for note in meta.notes)
    model = fcnseg.load_model(tmp_path / "init.safetensors")
    assert model.training is False and model.meta.init == "classifier"
    _assert_same_state(model, state)
    # an FCN of 21 classes is recognised as the VOC net of its model
    fcn = write_caffemodel(tmp_path / "renamed.caffemodel", fcn_blobs("fcn16s-vgg16", 21, **SMALL))
    _, fcn_meta = convert(fcn, "fcn16s-vgg16", 21, **SMALL)
    assert fcn_meta.source.published == "voc-fcn16s" and fcn_meta.classes[15] == "person"


def test_an_unknown_caffemodel_still_needs_its_convention(tmp_path: Path) -> None:
    # 40 classes on fcn32s-vgg16: the NYUDv2 colour net or its HHA net, which layers cannot tell.
    path = write_caffemodel(tmp_path / "x.caffemodel", fcn_blobs("fcn32s-vgg16", 40, **SMALL))
    with pytest.raises(FcnsegError, match="input convention is unknown"):
        convert(path, "fcn32s-vgg16", 40, **SMALL)


@needs_camvid
def test_predict_takes_a_path_a_pil_image_and_an_array_alike(tmp_path: Path) -> None:
    model = fcnseg.load_model("camvid-fcn8s")
    path = sorted((CAMVID / "val").glob("*.png"))[0]
    with Image.open(path) as image:
        pil = image.convert("RGB")
    array = np.asarray(pil)
    from_path = fcnseg.predict(model, path, precision="fp32")
    from_pil = fcnseg.predict(model, pil, precision="fp32")
    from_array, again = fcnseg.predict(model, [array, array.copy()], precision="fp32", batch_size=2)
    assert from_path.shape == (360, 480) and from_path.dtype == np.int64
    for labels in (from_pil, from_array, again):
        np.testing.assert_array_equal(labels, from_path)
    # the evaluation path: the dataset in the weights' convention, the eager model, arg max
    dataset = build_dataset("camvid", CAMVID, "val", convention=model.meta.input_convention)
    index = [s.image.name for s in dataset.samples].index(path.name)
    image, _ = dataset[index]
    with torch.no_grad():
        evaluated = model(image[None]).argmax(1)[0].numpy()
    np.testing.assert_array_equal(from_path, evaluated)
    # and fcnseg predict's label PNG (palette indices are the labels)
    assert (
        main(
            [
                "predict",
                str(path),
                "--model",
                "camvid-fcn8s",
                "--out",
                str(tmp_path),
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"{path.stem}.png")), from_path)


def test_the_input_conventions_by_hand() -> None:
    # BGR 0-255 minus the mean, computed with numpy: what the reference data layers do.
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    expected = (
        rgb[:, :, ::-1].astype(np.float32) - np.float32(CAMVID_INFO.convention.mean)
    ).transpose(2, 0, 1)
    np.testing.assert_allclose(
        CAMVID_INFO.convention.preprocess(rgb).numpy(), expected, rtol=0, atol=1e-5
    )
    np.testing.assert_array_equal(
        CAMVID_INFO.convention.deprocess(CAMVID_INFO.convention.preprocess(rgb)), rgb
    )


def _tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = fcnseg.build_model(name, num_classes=5, geometry="lean", width=1 / 16, fc_width=8)
    for tensor in model.state_dict().values():
        if tensor.is_floating_point():
            tensor.copy_(torch.randn(tensor.shape) * 0.1)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "modality", "extra_mean"),
    [
        ("fcn32s-rgbd-vgg16", "color-depth", (7.844,)),
        ("fcn32s-rgb-hha-vgg16", "color-hha", NYUD_MEAN_HHA),
    ],
)
def test_multichannel_nets_predict_from_arrays(name: str, modality: str, extra_mean: tuple) -> None:
    model = _tiny(name)
    convention = MODALITY_CONVENTIONS[modality]
    channels = 3 + len(extra_mean)
    assert model.in_channels == channels == convention.channels
    rng = np.random.default_rng(1)
    raw = rng.uniform(0, 255, (19, 23, channels)).astype(np.float32)
    raw[:, :, :3] = np.rint(raw[:, :, :3])
    labels = fcnseg.predict(model, raw, convention=convention, precision="fp32")
    # by hand: colour reversed to BGR, the rest in place, each minus the reference mean
    by_hand = np.concatenate([raw[:, :, 2::-1], raw[:, :, 3:]], axis=2) - np.float32(
        NYUD_MEAN_BGR + extra_mean
    )
    with torch.no_grad():
        scores = model(torch.from_numpy(np.ascontiguousarray(by_hand.transpose(2, 0, 1)))[None])
    np.testing.assert_array_equal(labels, scores.argmax(1)[0].numpy())
    with pytest.raises(FcnsegError, match=f"H x W x {channels}"):
        fcnseg.predict(model, raw[:, :, :3].astype(np.uint8), convention=convention)


def test_bad_images_are_one_clear_error(tmp_path: Path) -> None:
    model = _tiny("fcn8s-vgg16")
    model.meta = ModelMeta(
        model="fcn8s-vgg16",
        build={"num_classes": 5, "geometry": "lean", "width": 1 / 16, "fc_width": 8},
        classes=tuple("abcde"),
        palette=tuple((i, i, i) for i in range(5)),
        input_convention=CAMVID_INFO.convention,
    )
    rgb = np.zeros((8, 9, 3), np.uint8)
    cases = {
        "dtype float32": rgb.astype(np.float32),
        "dtype int64": rgb.astype(np.int64),
        "channels first": rgb.transpose(2, 0, 1).copy(),
        "a grey array": rgb[:, :, 0],
        "torch tensor": torch.from_numpy(rgb),
        "expected H x W x 3": np.zeros((8, 9, 4), np.uint8),
    }
    messages = {
        "dtype float32": "dtype float32",
        "dtype int64": "dtype int64",
        "channels first": "channels first",
        "a grey array": "grey",
        "torch tensor": "torch tensor",
        "expected H x W x 3": "expected H x W x 3",
    }
    for case, image in cases.items():
        with pytest.raises(FcnsegError, match=messages[case]):
            fcnseg.predict(model, image)
    with pytest.raises(FcnsegError, match="no such image file"):
        fcnseg.predict(model, tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(FcnsegError, match="cannot read image"):
        fcnseg.predict(model, tmp_path / "notes.png")
    # raw uint8 pixels handed to the predictor, which takes network inputs
    with pytest.raises(FcnsegError, match="for raw pixels use fcnseg.predict"):
        Predictor(model).predict([torch.from_numpy(rgb).permute(2, 0, 1)])
    with pytest.raises(FcnsegError, match="no input convention"):
        fcnseg.predict(_tiny("fcn8s-vgg16"), rgb)


def test_loading_and_predicting_leave_training_unimported() -> None:
    code = (
        "import sys, numpy as np, fcnseg\n"
        "m = fcnseg.load_model('camvid-fcn8s')\n"
        "fcnseg.predict(m, np.zeros((40, 50, 3), np.uint8))\n"
        "loaded = [k for k in sys.modules if k.startswith('fcnseg.train') or k == 'fcnseg.cli']\n"
        "print(sorted(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_memory_budget_as_the_cli_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # "50M" is the budget --max-memory 50M gives: 50 MiB in bytes
    predict_module = importlib.import_module("fcnseg.inference.predict")  # not the function

    budgets = []

    class Spy(predict_module.Predictor):
        def __init__(self, *args: object, **kwargs: object) -> None:
            budgets.append(kwargs["max_memory"])
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(predict_module, "Predictor", Spy)
    model = fcnseg.load_model("camvid-fcn8s")
    for given in ("50M", "1.5G", 1234567, 2e9, "2e9", "none", "0", 0, None):
        fcnseg.predict(model, np.zeros((8, 9, 3), np.uint8), max_memory=given)
    # 0 is no budget, as --max-memory 0 is
    assert budgets[:5] == [50 * 2**20, int(1.5 * 2**30), 1234567, 2 * 10**9, 2 * 10**9]
    assert budgets[5:] == [None] * 4


def test_awkward_arguments_are_one_clear_error(tmp_path: Path) -> None:
    model = fcnseg.load_model("camvid-fcn8s")
    rgb = np.zeros((8, 9, 3), np.uint8)
    with pytest.raises(FcnsegError, match="max_memory='abc'"):
        fcnseg.predict(model, rgb, max_memory="abc")
    for negative in (-1, "-1", 2.5, -2e9):
        with pytest.raises(FcnsegError, match="expected a positive number of bytes"):
            fcnseg.predict(model, rgb, max_memory=negative)
    with pytest.raises(FcnsegError, match="flip='yes'"):
        fcnseg.predict(model, rgb, flip="yes")
    with pytest.raises(FcnsegError, match=r"RGBA\? drop the alpha"):
        fcnseg.predict(model, np.zeros((8, 9, 4), np.uint8))
    with pytest.raises(FcnsegError, match="for 16-bit values"):
        fcnseg.predict(model, rgb.astype(np.uint16))
    with pytest.raises(FcnsegError, match="a folder, not an image file"):
        fcnseg.predict(model, tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    with pytest.raises(FcnsegError, match="an ONNX export, which only fcnseg predict runs"):
        fcnseg.load_model(tmp_path / "m.onnx")
    (tmp_path / "m.pt").write_bytes(b"torchscript")
    with pytest.raises(FcnsegError, match="a TorchScript or PyTorch file, which fcnseg"):
        fcnseg.load_model(tmp_path / "m.pt")
