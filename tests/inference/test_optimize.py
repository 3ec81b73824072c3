"""optimize_for_inference: the same function as the fp32 model, in every precision here."""

from __future__ import annotations

import pytest
import torch
from inference_nets import image, randomize, small_model
from torch import nn

import fcnseg
from fcnseg import FcnsegError
from fcnseg.inference import (
    TOLERANCE,
    native_precisions,
    optimize_for_inference,
    resolve_precision,
)
from fcnseg.inference.bench import precision_error
from fcnseg.inference.export import relative_error
from fcnseg.inference.optimize import (
    PackedConv2d,
    PhaseConvTranspose2d,
    SlicedMaxPool2d,
    WinogradConv2d,
    winograd_available,
)

PRECISIONS = native_precisions("cpu")
SIZES = [(1, 64, 64), (2, 97, 131), (1, 200, 37)]


def _scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_equals_fp32_within_documented_tolerance(
    precision: str, geometry: str, convolutions: str
) -> None:
    model = small_model("fcn8s-vgg16", geometry)
    fast = optimize_for_inference(model, precision)
    for seed, (batch, height, width) in enumerate(SIZES):
        x = image(batch, 3, height, width, seed=seed)
        reference, result = _scores(model, x), fast(x)
        assert result.dtype == torch.float32 and result.shape == reference.shape
        error = precision_error(reference, result)
        bound = TOLERANCE[precision]
        assert error["relative_l2"] <= bound["relative_l2"], error
        assert error["label_disagreement"] <= bound["label_disagreement"], error


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(
    "name", ["fcn32s-alexnet", "fcn8s-googlenet", "fcn8s-siftflow-vgg16", "fcn16s-rgb-hha-vgg16"]
)
def test_every_kind_of_net(name: str, precision: str, convolutions: str) -> None:
    # grouped convolutions, LRN, inception branches, two heads, two streams
    model = _every_kind[name]
    channels = 6 if "hha" in name else 3
    x = image(1, channels, 83, 70)
    reference = _scores(model, x)
    result = optimize_for_inference(model, precision)(x)
    if isinstance(reference, dict):
        assert list(result) == list(reference)
        pairs = [(result[head], reference[head]) for head in reference]
    else:
        pairs = [(result, reference)]
    for fast, slow in pairs:
        error = precision_error(slow, fast)
        for measure, bound in TOLERANCE[precision].items():
            assert error[measure] <= bound, error


class _Models(dict):
    """Each named small model built once, when first asked for."""

    def __missing__(self, name: str) -> nn.Module:
        self[name] = small_model(name)
        return self[name]


_every_kind = _Models()


def test_batch_norm_folded_and_relu_fused(convolutions: str) -> None:
    model = small_model("fcn8s-vgg16", "lean", batch_norm=True)
    fast = optimize_for_inference(model, "fp32")
    modules = list(fast.modules())
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.ReLU)) for m in modules)
    winograd = [m for m in modules if isinstance(m, WinogradConv2d)]
    # the lean geometry's 13 convolutions are 3x3, stride 1, padded by 1
    assert [m.activation for m in winograd] == ["relu"] * (13 if convolutions == "winograd" else 0)
    if torch.backends.mkldnn.is_available():
        packed = [m for m in modules if isinstance(m, PackedConv2d)]
        assert sum(m.activation == "relu" for m in packed) == 15 - len(winograd)  # + fc6, fc7
    x = image(2, 3, 90, 75)
    assert relative_error(fast(x), _scores(model, x)) <= TOLERANCE["fp32"]["relative_l2"]


def test_tapped_layers_keep_their_outputs() -> None:
    # pool3/pool4 are read by the skips: fusing across them would change the FCN-8s scores,
    # and a tap on a convolution must see it before its ReLU.
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    net.trunk = ["0", "1", "2"]
    net.taps = {"conv": "0"}
    randomize(net)
    fast = optimize_for_inference(net, "fp32")
    assert isinstance(fast.net.get_submodule("1"), nn.ReLU)


def test_original_model_untouched_and_no_gradients() -> None:
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model, "fp32")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not fast(image(1, 3, 40, 40).requires_grad_()).requires_grad


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "groups", "classwise"),
    [
        (16, 8, 0, 1, True),
        (4, 2, 0, 1, False),
        (63, 32, 0, 1, True),
        (5, 2, 1, 1, False),
        (4, 2, 0, 3, False),
    ],
)
def test_phase_convolutions_equal_transposed_convolution(
    kernel: int, stride: int, padding: int, groups: int, classwise: bool
) -> None:
    # Section 3.3's backwards-strided convolution, computed as s*s ordinary convolutions.
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(
        6, 6, kernel, stride=stride, padding=padding, groups=groups, bias=not classwise
    )
    if classwise:
        with torch.no_grad():
            deconv.weight.mul_(torch.eye(6).view(6, 6, 1, 1))
    phases = PhaseConvTranspose2d(deconv, torch.float32)
    assert (phases.phase_conv.groups == 6) == classwise
    x = torch.randn(2, 6, 9, 13).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = deconv(x)
        result = phases(x)
    assert result.shape == expected.shape
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)


def test_precision_errors() -> None:
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("auto") in PRECISIONS
    with pytest.raises(FcnsegError, match="unknown precision 'fp8'"):
        optimize_for_inference(small_model(), "fp8")
    if "fp16" not in PRECISIONS:
        with pytest.raises(FcnsegError, match="not supported"):
            resolve_precision("fp16")


def test_winograd_default_takes_the_wide_nets_only() -> None:
    # The default takes NNPACK where 64-channel-or-wider 3x3 layers hold most of the work:
    # the paper's full-width VGG16 (every 3x3 layer but conv1_1), not the shipped 1/8-width
    # CamVid net (8-64 channels), where it measured 2x slower than oneDNN.
    from fcnseg.inference.optimize import _convolution_inputs, _winograd_pays

    with torch.device("meta"):
        wide = fcnseg.build_model("fcn8s-vgg16", num_classes=21, geometry="caffe")
        narrow = fcnseg.build_model(
            "fcn8s-vgg16", num_classes=11, geometry="lean", width=1 / 8, fc_width=128
        )
    for net, pays in ((wide, True), (narrow, False)):
        shapes = _convolution_inputs(net, (1, 3, 500, 500))
        assert shapes and _winograd_pays(net, shapes) is pays


def test_winograd_small_maps_take_the_direct_convolution(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    nnpack = torch._nnpack_spatial_convolution

    def counted(*args: object) -> torch.Tensor:
        calls.append(args[0].shape)  # type: ignore[union-attr]
        return nnpack(*args)

    if not winograd_available():
        pytest.skip("NNPACK does not run on this CPU")
    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", counted)
    conv = randomize(nn.Conv2d(64, 64, 3, padding=1))
    layer = WinogradConv2d(conv)
    for height, width, nnpack_calls in ((40, 30, 2), (20, 30, 0)):  # 1200 and 600 cells
        calls.clear()
        x = image(2, 64, height, width)
        with torch.no_grad():
            assert relative_error(layer(x), conv(x)) <= 1e-5
        assert len(calls) == nnpack_calls  # one per image, or none below 32x32 cells


def test_winograd_refused_where_nnpack_does_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from fcnseg.inference import optimize

    monkeypatch.setattr(optimize, "winograd_available", lambda: False)
    with pytest.raises(FcnsegError, match="winograd=True needs fp32 on a CPU where NNPACK runs"):
        optimize_for_inference(small_model(), "fp32", winograd=True)
    # and the default then runs the direct path
    fast = optimize_for_inference(small_model(), "fp32")
    assert not any(isinstance(m, WinogradConv2d) for m in fast.modules())


@pytest.mark.parametrize("kernel, stride", [(1, 1), (2, 2), (3, 2), (3, 1), (2, 3), (3, 3)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_sliced_max_pooling_equals_max_pool2d(kernel: int, stride: int, ceil_mode: bool) -> None:
    # VGG16's 2x2/2 and AlexNet's and GoogLeNet's 3x3/2 pools, in Caffe's ceil mode too, on
    # maps whose windows overhang their end by every amount, and a NaN that must propagate
    pool = nn.MaxPool2d(kernel, stride, ceil_mode=ceil_mode)
    sliced = SlicedMaxPool2d.like(pool)
    assert isinstance(sliced, SlicedMaxPool2d)
    for height, width in ((3, 3), (4, 9), (7, 6), (13, 10), (509, 5)):
        x = image(2, 3, height, width)
        x[1, 2, height // 2, width // 2] = float("nan")
        torch.testing.assert_close(sliced(x), pool(x), rtol=0, atol=0, equal_nan=True)
    # what it leaves to MaxPool2d: channels-last maps, padding, maps smaller than the window
    x = image(1, 4, 9, 9).contiguous(memory_format=torch.channels_last)
    assert torch.equal(sliced(x), pool(x))
    padded = nn.MaxPool2d(3, 2, padding=1, ceil_mode=ceil_mode)
    assert torch.equal(SlicedMaxPool2d.like(padded)(image(1, 2, 8, 8)), padded(image(1, 2, 8, 8)))
    assert SlicedMaxPool2d.like(nn.MaxPool2d(2, return_indices=True)).return_indices


def test_winograd_net_keeps_its_maps_nchw(convolutions: str) -> None:
    # NNPACK reads NCHW maps: in the Winograd net no layer may hand it a channels-last map
    # (conv1_1's packed oneDNN output, converted back at 500x500, cost more than conv1_1),
    # and the max poolings take the sliced path
    model = randomize(fcnseg.build_model("fcn8s-vgg16", num_classes=5, width=1 / 16))
    fast = optimize_for_inference(model, "fp32")
    nnpack_inputs = []
    for module in fast.modules():
        if isinstance(module, WinogradConv2d):
            module.register_forward_pre_hook(lambda m, args: nnpack_inputs.append((m, args[0])))
    x = image(1, 3, 75, 61)
    assert relative_error(_scores(fast, x), _scores(model, x)) <= 1e-5
    pools = [m for m in fast.modules() if isinstance(m, nn.MaxPool2d)]
    if convolutions == "direct":
        assert not nnpack_inputs and not any(isinstance(m, SlicedMaxPool2d) for m in pools)
        return
    assert len({id(m) for m, _ in nnpack_inputs}) == 12  # conv1_2 ... conv5_3
    assert all(t.is_contiguous() for _, t in nnpack_inputs)
    assert pools and all(isinstance(m, SlicedMaxPool2d) for m in pools)
