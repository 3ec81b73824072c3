"""convert(): files written here, in every format, become fcnseg state dicts exactly.

Segmentation nets convert bit for bit and load strictly into ``build_model``; a classifier
becomes an FCN initialisation whose convolutionalized form scores as the classifier did.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from weight_files import SMALL, fcn_blobs, random_blobs, state_from_blobs, write_caffemodel

from fcnseg.convention import TORCHVISION_IMAGENET, InputConvention, caffe_convention
from fcnseg.errors import FcnsegError
from fcnseg.io import convert, read_weights
from fcnseg.io._mapping import classifier_fcn_state_dict
from fcnseg.io.published import (
    NYUD_HHA,
    SIFTFLOW_CLASSES,
    SIFTFLOW_GEOMETRIC_CLASSES,
    VOC_CLASSES,
    VOC_MEAN,
)
from fcnseg.models import VGG16, AlexNet, GoogLeNet, build_model, convolutionalize

VOC = caffe_convention(VOC_MEAN)
VGG_FCNS = {
    "fcn32s-vgg16": "voc-fcn32s",
    "fcn16s-vgg16": "voc-fcn16s",
    "fcn8s-vgg16": "voc-fcn8s",
    "fcn8s-atonce-vgg16": "voc-fcn8s-atonce",
}


def _assert_bit_equal(state: dict[str, torch.Tensor], blobs: dict[str, list[np.ndarray]]) -> None:
    for layer, arrays in blobs.items():
        module = layer.replace("/", ".")
        for param, array in zip(("weight", "bias"), arrays, strict=False):
            tensor = state[f"{module}.{param}"]
            assert tensor.dtype == torch.float32
            assert tensor.numpy().tobytes() == array.astype(np.float32).tobytes(), layer


def _save_torch(path: Path, blobs: dict[str, list[np.ndarray]], layout: str) -> Path:
    state = state_from_blobs(blobs)
    if layout == "pytorch-fcn":  # a training checkpoint, as pytorch-fcn's Trainer writes it
        checkpoint = {
            "epoch": 3,
            "iteration": 1000,
            "arch": "FCN8s",
            "optim_state_dict": {"state": {}, "param_groups": [{"lr": 1e-10}]},
            "model_state_dict": state,
            "best_mean_iu": 0.6,
        }
        torch.save(checkpoint, path)
    else:
        torch.save(state, path)
    return path


@pytest.mark.parametrize("model", VGG_FCNS)
@pytest.mark.parametrize("layout", ["layer", "V1 layers", "pytorch-fcn", "caffe-named"])
def test_fcn_files_convert_bit_for_bit_and_load_strictly(
    tmp_path: Path, model: str, layout: str
) -> None:
    blobs = fcn_blobs(model, 21, **SMALL)
    if layout in ("layer", "V1 layers"):
        path = write_caffemodel(tmp_path / "net.caffemodel", blobs, legacy=layout == "V1 layers")
    else:
        path = _save_torch(tmp_path / "net.pth", blobs, layout)
    dst = tmp_path / "net.safetensors"

    state, metadata = convert(path, model, 21, dst, source=VGG_FCNS[model], **SMALL)

    _assert_bit_equal(state, blobs)
    net = build_model(model, num_classes=21, **SMALL)
    net.load_state_dict(state, strict=True)
    loaded, loaded_metadata = read_weights(dst)
    # the file adds when it was saved (and the commit); the rest is the record convert returned
    saved = datetime.datetime.fromisoformat(loaded_metadata.saved)
    assert saved.utcoffset() == datetime.timedelta(0)
    assert loaded_metadata.replace(git=metadata.git, saved=metadata.saved) == metadata
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert metadata.model == model and metadata.num_classes == 21
    assert metadata.classes == VOC_CLASSES and metadata.input_convention == VOC
    assert metadata.init == "fcn"
    assert metadata.build == {"num_classes": 21, "geometry": "caffe", **SMALL}
    assert metadata.source.file == path.name
    assert metadata.source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert metadata.source.layout == {"layer": "caffemodel", "V1 layers": "caffemodel"}.get(
        layout, layout
    )


def test_double_blobs_narrow_to_float32(tmp_path: Path) -> None:
    blobs = fcn_blobs("fcn32s-vgg16", 21, **SMALL)
    doubles = {k: [a.astype(np.float64) + 1e-12 for a in v] for k, v in blobs.items()}
    path = write_caffemodel(tmp_path / "net.caffemodel", doubles)
    state, metadata = convert(path, "fcn32s-vgg16", 21, convention=VOC, **SMALL)
    _assert_bit_equal(state, doubles)
    assert any("Double-precision" in note for note in metadata.notes)


def test_pytorch_fcn_atonce_without_scale_blobs_gets_the_fixed_scales(tmp_path: Path) -> None:
    # pytorch-fcn's FCN8sAtOnce multiplies by 0.01 and 0.0001 in forward() and stores nothing
    blobs = fcn_blobs("fcn8s-atonce-vgg16", 21, **SMALL)
    scales = {name: blobs.pop(name) for name in ("scale_pool4", "scale_pool3")}
    path = _save_torch(tmp_path / "atonce.pth", blobs, "pytorch-fcn")
    state, metadata = convert(path, "fcn8s-atonce-vgg16", 21, **SMALL)
    assert torch.equal(state["scale_pool4.weight"], torch.full((64,), 0.01))
    assert torch.equal(state["scale_pool3.weight"], torch.full((32,), 0.0001))
    # pytorch-fcn's convention: BGR, 0-255, the reference mean
    assert metadata.input_convention == VOC
    build_model("fcn8s-atonce-vgg16", num_classes=21, **SMALL).load_state_dict(state, strict=True)
    # a .caffemodel of the at-once net carries its Scale blobs, and must
    caffe_path = write_caffemodel(tmp_path / "atonce.caffemodel", blobs)
    with pytest.raises(FcnsegError, match="no layer 'scale_pool4', 'scale_pool3'"):
        convert(caffe_path, "fcn8s-atonce-vgg16", 21, source="voc-fcn8s-atonce", **SMALL)
    # the fixed scales filled in have the shapes of the Scale blobs the file left out
    assert {name: arrays[0].shape for name, arrays in scales.items()} == {
        "scale_pool4": tuple(state["scale_pool4.weight"].shape),
        "scale_pool3": tuple(state["scale_pool3.weight"].shape),
    }


def _bilinear(size: int) -> np.ndarray:
    # Caffe's bilinear filler / the reference's upsample_filt
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    profile = 1 - np.abs(np.arange(size) - center) / factor
    return np.outer(profile, profile)


def test_v1_vgg16_classifier_becomes_an_fcn_that_scores_as_the_classifier(
    tmp_path: Path,
) -> None:
    options = {"width": 0.25, "fc_width": 64}
    with torch.device("meta"):
        classifier_keys = VGG16(**options).state_dict()
    blobs = random_blobs(classifier_keys, seed=3)
    path = write_caffemodel(tmp_path / "VGG_ILSVRC_16_layers.caffemodel", blobs, legacy=True)

    state, metadata = convert(path, "fcn32s-vgg16", 21, **options)  # found by file name

    assert metadata.init == "classifier" and metadata.source.published == "vgg16-ilsvrc"
    assert metadata.input_convention == caffe_convention((103.939, 116.779, 123.68))
    # a classifier's FCN has no class names yet: its classes are numbered
    assert metadata.classes == tuple(f"class {i}" for i in range(21))
    # fc6 and fc7 are the same numbers, reshaped: 64 x 6272 becomes 64 x 128 x 7 x 7
    assert state["fc6.weight"].shape == (64, 128, 7, 7)
    assert state["fc6.weight"].numpy().tobytes() == blobs["fc6"][0].tobytes()
    assert state["fc7.weight"].shape == (64, 64, 1, 1)
    assert "fc8.weight" not in state
    assert not state["score_fr.weight"].any() and not state["score_fr.bias"].any()
    expected_upscore = np.zeros((21, 21, 64, 64), np.float32)
    expected_upscore[range(21), range(21)] = _bilinear(64)
    np.testing.assert_allclose(state["upscore.weight"].numpy(), expected_upscore, atol=1e-7)
    build_model("fcn32s-vgg16", num_classes=21, **options).load_state_dict(state, strict=True)

    # The classifier, from the file's fully connected weights, on a 224 x 224 input...
    classifier = VGG16(**options).eval()
    classifier.load_state_dict(
        {k: torch.from_numpy(_squeeze_blob(blobs, k, v.shape)) for k, v in classifier_keys.items()}
    )
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 60
    # ...and the convolutionalized net from the converted weights, fc8 as a 1x1 convolution.
    convolutional = convolutionalize(VGG16(**options), decapitate=False).eval()
    weights = {k: state[k] for k in convolutional.state_dict() if k in state}
    weights["fc8.weight"] = torch.from_numpy(blobs["fc8"][0]).reshape(1000, 64, 1, 1)
    weights["fc8.bias"] = torch.from_numpy(blobs["fc8"][1])
    convolutional.load_state_dict(weights, strict=True)
    with torch.no_grad():
        scores = classifier(x)  # N×1000
        score_map = convolutional(x)  # N×1000×1×1
    assert score_map.shape == (1, 1000, 1, 1)
    assert scores.abs().max() > 1  # a net that scores something
    # equal up to float32 summation order (a wrong reshape of fc6 is off by O(1))
    scale = scores.abs().max().item()
    torch.testing.assert_close(score_map.flatten(1), scores, rtol=1e-4, atol=1e-4 * scale)


def _squeeze_blob(blobs: dict[str, list[np.ndarray]], key: str, shape: torch.Size) -> np.ndarray:
    module, _, param = key.rpartition(".")
    return blobs[module][0 if param == "weight" else 1].reshape(tuple(shape))


def test_torchvision_vgg16_maps_to_caffe_names(tmp_path: Path) -> None:
    with torch.device("meta"):
        keys = VGG16(**SMALL).state_dict()
    blobs = random_blobs(keys, seed=5)
    caffe_names = dict(
        zip(
            [f"features.{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)]
            + ["classifier.0", "classifier.3", "classifier.6"],
            [
                f"conv{b}_{i}"
                for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
                for i in range(1, n + 1)
            ]
            + ["fc6", "fc7", "fc8"],
            strict=True,
        )
    )
    state = {
        f"{module}.{param}": torch.from_numpy(blobs[layer][i])
        for module, layer in caffe_names.items()
        for i, param in enumerate(("weight", "bias"))
    }
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)

    converted, metadata = convert(path, "fcn16s-vgg16", 21, **SMALL)

    assert metadata.source.layout == "torchvision" and metadata.init == "classifier"
    assert metadata.input_convention == TORCHVISION_IMAGENET
    assert converted["conv5_3.weight"].numpy().tobytes() == blobs["conv5_3"][0].tobytes()
    assert converted["fc6.weight"].numpy().tobytes() == blobs["fc6"][0].tobytes()
    build_model("fcn16s-vgg16", num_classes=21, **SMALL).load_state_dict(converted, strict=True)


def test_folding_torchvision_standardisation_is_exact_at_the_border(tmp_path: Path) -> None:
    with torch.device("meta"):
        keys = VGG16(**SMALL).state_dict()
    blobs = random_blobs(keys, seed=6)
    from fcnseg.io._torch import torchvision_vgg16_names

    to_torchvision = {layer: module for module, layer in torchvision_vgg16_names().items()}
    state = {
        f"{to_torchvision[layer]}.{param}": torch.from_numpy(arrays[i])
        for layer, arrays in blobs.items()
        for i, param in enumerate(("weight", "bias"))
    }
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)

    folded, metadata = convert(path, "fcn32s-vgg16", 21, fold_input=True, **SMALL)

    folded_input = metadata.input_convention
    assert folded_input.channel_order == "BGR" and folded_input.scale == 255
    np.testing.assert_allclose(folded_input.mean, (103.53, 116.28, 123.675))
    assert folded_input.std == (1.0, 1.0, 1.0)
    rgb = torch.randint(0, 256, (2, 3, 9, 11), generator=torch.Generator().manual_seed(1))
    weight, bias = torch.from_numpy(blobs["conv1_1"][0]), torch.from_numpy(blobs["conv1_1"][1])
    original = F.conv2d(TORCHVISION_IMAGENET.normalize(rgb), weight, bias, padding=1)
    refolded = F.conv2d(
        folded_input.normalize(rgb), folded["conv1_1.weight"], folded["conv1_1.bias"], padding=1
    )
    # every output, the zero-padded border included
    torch.testing.assert_close(refolded, original, rtol=1e-5, atol=1e-5)
    # Caffe's VGG mean instead of 255 x torchvision's would leave the border wrong: the
    # reason the folded convention keeps torchvision's mean.
    caffe_vgg = InputConvention("BGR", 255.0, (103.939, 116.779, 123.68))
    shifted = F.conv2d(
        caffe_vgg.normalize(rgb), folded["conv1_1.weight"], folded["conv1_1.bias"], padding=1
    )
    assert not torch.allclose(shifted, original, rtol=1e-5, atol=1e-5)


GOOGLENET_AUX = {
    "loss1/conv": [np.ones((2, 3, 1, 1), np.float32), np.zeros(2, np.float32)],
    "loss1/fc": [np.ones((2, 2), np.float32), np.zeros(2, np.float32)],
    "loss1/classifier": [np.ones((5, 2), np.float32), np.zeros(5, np.float32)],
    "loss2/classifier": [np.ones((5, 2), np.float32), np.zeros(5, np.float32)],
}


def test_googlenet_classifier_drops_classifier_and_auxiliary_losses(tmp_path: Path) -> None:
    with torch.device("meta"):
        keys = GoogLeNet().state_dict()
    blobs = random_blobs(keys, seed=7) | GOOGLENET_AUX
    path = write_caffemodel(tmp_path / "bvlc_googlenet.caffemodel", blobs)

    state, metadata = convert(path, "fcn32s-googlenet", 21)

    assert metadata.source.published == "googlenet" and metadata.init == "classifier"
    assert not any(k.startswith(("loss1", "loss2", "loss3")) for k in state)
    trunk = {k: v for k, v in blobs.items() if not k.startswith(("loss1", "loss2", "loss3"))}
    _assert_bit_equal(state, trunk)
    assert "inception_3a.pool_proj.weight" in state
    build_model("fcn32s-googlenet", num_classes=21).load_state_dict(state, strict=True)

    blobs["my_layer"] = [np.ones(3, np.float32)]
    path = write_caffemodel(tmp_path / "bvlc_googlenet.caffemodel", blobs)
    with pytest.raises(FcnsegError, match="'my_layer' not in model 'fcn32s-googlenet'"):
        convert(path, "fcn32s-googlenet", 21)


def test_caffenet_legacy_blobs_fill_the_grouped_alexnet() -> None:
    # Legacy (V1) shapes, as bvlc_reference_caffenet stores them; conv2 is grouped (256x48x5x5)
    with torch.device("meta"):
        keys = AlexNet().state_dict()
    blobs: dict[str, list[np.ndarray]] = {}
    offset = 0
    for key, tensor in keys.items():
        count = tensor.numel()
        legacy = (1,) * (4 - tensor.dim()) + tuple(tensor.shape)
        values = (np.arange(count, dtype=np.float32) + offset).reshape(legacy) * 1e-7
        blobs.setdefault(key.rpartition(".")[0], []).append(values)
        offset += count
    assert blobs["conv2"][0].shape == (256, 48, 5, 5)
    assert blobs["fc6"][0].shape == (1, 1, 4096, 9216)

    state = classifier_fcn_state_dict("caffenet", blobs, "fcn32s-alexnet", 21, {})

    assert state["fc6.weight"].shape == (4096, 256, 6, 6)
    _assert_bit_equal(state, {k: v for k, v in blobs.items() if k != "fc8"})


def _two_head_blobs(model: str, heads: dict[str, int], shared: set[str], **options) -> dict:
    """Blobs of a file holding several nets: head layers suffixed, shared layers plain."""
    blobs = {}
    for suffix, classes in heads.items():
        for layer, arrays in fcn_blobs(model, classes, seed=classes, **options).items():
            name = layer if layer in shared else f"{layer}{suffix}"
            blobs.setdefault(name, arrays)
    return blobs


def test_siftflow_file_gives_either_head(tmp_path: Path) -> None:
    trunk = {f"conv{b}_{i}" for b in range(1, 6) for i in range(1, 4)} | {"fc6", "fc7"}
    blobs = _two_head_blobs("fcn8s-vgg16", {"_sem": 33, "_geo": 3}, trunk, **SMALL)
    path = write_caffemodel(tmp_path / "siftflow-fcn8s-heavy.caffemodel", blobs)
    with pytest.raises(FcnsegError, match="siftflow-fcn8s-sem or siftflow-fcn8s-geo"):
        convert(path, "fcn8s-vgg16", 3, **SMALL)

    state, metadata = convert(path, "fcn8s-vgg16", 3, source="siftflow-fcn8s-geo", **SMALL)

    assert metadata.classes == SIFTFLOW_GEOMETRIC_CLASSES
    assert state["score_pool3.weight"].numpy().tobytes() == blobs["score_pool3_geo"][0].tobytes()
    assert state["conv1_1.weight"].numpy().tobytes() == blobs["conv1_1"][0].tobytes()
    build_model("fcn8s-vgg16", num_classes=3, **SMALL).load_state_dict(state, strict=True)


def test_late_fusion_file_gives_either_stream(tmp_path: Path) -> None:
    blobs = _two_head_blobs("fcn32s-vgg16", {"color": 40, "hha": 40}, {"upscore"}, **SMALL)
    blobs["conv1_1hha"] = [blobs["conv1_1hha"][0] + 1, blobs["conv1_1hha"][1]]
    path = write_caffemodel(tmp_path / "nyud-fcn32s-color-hha-heavy.caffemodel", blobs)

    state, metadata = convert(path, "fcn32s-vgg16", 40, source="nyud-fcn32s-color-hha-hha", **SMALL)

    assert metadata.input_convention == NYUD_HHA and len(metadata.classes) == 40
    assert state["conv1_1.weight"].numpy().tobytes() == blobs["conv1_1hha"][0].tobytes()
    assert state["upscore.weight"].numpy().tobytes() == blobs["upscore"][0].tobytes()
    assert any("mean of this net's and the other stream's" in n for n in metadata.notes)


def test_layer_shape_mismatch_names_the_layer_and_both_shapes(tmp_path: Path) -> None:
    # 22 classes: no published net's (a 21-class file is recognised by its layers as
    # voc-fcn32s, and refused for its class count before any layer is compared)
    path = write_caffemodel(tmp_path / "net.caffemodel", fcn_blobs("fcn32s-vgg16", 22, **SMALL))
    with pytest.raises(
        FcnsegError,
        match=r"layer 'score_fr' blob 0 has shape \(22, 32, 1, 1\); .* expects \(5, 32, 1, 1\)",
    ):
        convert(path, "fcn32s-vgg16", 5, convention=VOC, **SMALL)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b.pop("conv3_2"), "no layer 'conv3_2'"),
        (lambda b: b.update(conv6=[np.ones(2, np.float32)]), "'conv6' not in model"),
        (lambda b: b["upscore"].append(np.ones(21, np.float32)), "'upscore' has 2 blobs"),
    ],
    ids=["missing", "extra", "bias on a bias-free layer"],
)
def test_a_file_that_does_not_fit_is_refused(tmp_path: Path, damage, message: str) -> None:  # noqa: ANN001
    blobs = fcn_blobs("fcn32s-vgg16", 21, **SMALL)
    damage(blobs)
    path = write_caffemodel(tmp_path / "net.caffemodel", blobs)
    with pytest.raises(FcnsegError, match=message):
        convert(path, "fcn32s-vgg16", 21, convention=VOC, **SMALL)


def test_conventions_and_published_entries_are_checked(tmp_path: Path) -> None:
    # a net of 5 classes is no published one, by name or by its layers
    mine = write_caffemodel(tmp_path / "mine.caffemodel", fcn_blobs("fcn32s-vgg16", 5, **SMALL))
    with pytest.raises(FcnsegError, match="input convention is unknown"):
        convert(mine, "fcn32s-vgg16", 5, **SMALL)
    path = write_caffemodel(tmp_path / "net.caffemodel", fcn_blobs("fcn32s-vgg16", 21, **SMALL))
    with pytest.raises(FcnsegError, match="voc-fcn8s is model 'fcn8s-vgg16', not 'fcn32s-vgg16'"):
        convert(path, "fcn32s-vgg16", 21, source="voc-fcn8s", **SMALL)
    with pytest.raises(FcnsegError, match="scores 40 classes, not 21"):
        convert(path, "fcn32s-vgg16", 21, source="nyud-fcn32s-color", **SMALL)
    with pytest.raises(FcnsegError, match="is a VGG16 classifier; model 'fcn32s-alexnet'"):
        convert(path, "fcn32s-alexnet", 21, source="vgg16-ilsvrc")
    with pytest.raises(FcnsegError, match="unknown published weights 'voc-fcn4s'"):
        convert(path, "fcn32s-vgg16", 21, source="voc-fcn4s", **SMALL)
    with pytest.raises(FcnsegError, match="unknown model 'fcn4s-vgg16'"):
        convert(path, "fcn4s-vgg16", 21, **SMALL)


def test_checkpoints_are_never_unpickled_beyond_tensors(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple:
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {"conv1_1.weight": torch.ones(1)}, "x": Payload()}, path)
    with pytest.raises(FcnsegError, match="holds 'io.open', which loading with weights_only"):
        convert(path, "fcn32s-vgg16", 21)
    assert not marker.exists()


def test_truncated_checkpoint_is_one_line(tmp_path: Path) -> None:
    path = _save_torch(tmp_path / "net.pth", fcn_blobs("fcn32s-vgg16", 21, **SMALL), "bare")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(FcnsegError, match="truncated or corrupt PyTorch checkpoint") as error:
        convert(path, "fcn32s-vgg16", 21, **SMALL)
    assert "\n" not in str(error.value)


def test_siftflow_file_loads_whole_into_the_two_headed_net(tmp_path: Path) -> None:
    model = "fcn16s-siftflow-vgg16"
    blobs = fcn_blobs(model, 33, **SMALL)  # Caffe names: score_fr_sem, upscore2_geo, ...
    assert "score_pool4_geo" in blobs and "score_fr_sem" in blobs
    path = write_caffemodel(tmp_path / "siftflow-fcn16s-heavy.caffemodel", blobs)

    state, metadata = convert(path, model, 33, **SMALL)

    assert metadata.classes == SIFTFLOW_CLASSES
    _assert_bit_equal(state, blobs)
    build_model(model, num_classes=33, **SMALL).load_state_dict(state, strict=True)


def test_late_fusion_file_loads_whole_into_the_fusion_net(tmp_path: Path) -> None:
    """The reference's names (``conv1_1color``, ``score_frhha``, one ``upscore``) fill the
    two streams of ``fcn32s-rgb-hha-vgg16``."""
    blobs = _two_head_blobs("fcn32s-vgg16", {"color": 40, "hha": 40}, {"upscore"}, **SMALL)
    path = write_caffemodel(tmp_path / "nyud-fcn32s-color-hha-heavy.caffemodel", blobs)

    state, _ = convert(path, "fcn32s-rgb-hha-vgg16", 40, **SMALL)

    assert state["color.conv1_1.weight"].numpy().tobytes() == blobs["conv1_1color"][0].tobytes()
    assert state["hha.score_fr.bias"].numpy().tobytes() == blobs["score_frhha"][1].tobytes()
    assert torch.equal(state["hha.upscore.weight"], state["color.upscore.weight"])
    build_model("fcn32s-rgb-hha-vgg16", num_classes=40, **SMALL).load_state_dict(state, strict=True)
