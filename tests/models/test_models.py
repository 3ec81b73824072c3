"""The FCN family against the paper (sections 3.1, 3.3, 4.1, 4.2) and the reference Caffe nets."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import fcnseg
from fcnseg.errors import FcnsegError
from fcnseg.models import (
    VGG16,
    AlexNet,
    GoogLeNet,
    classifier_geometry,
    convolutionalize,
    init_from_coarser,
)
from fcnseg.models.classifier import run_trunk
from fcnseg.models.upsample import bilinear_upsampling
from fcnseg.train.recipes import TrainConfig

# VGG16 nets at 1/8 width keep every layer, kernel, stride and padding of VGG16 (so all of
# their geometry) at 1/64 of the convolution FLOPs: the suite runs on two cores.
SMALL_VGG = {"width": 1 / 8, "fc_width": 64}


def _small(name: str) -> dict:
    return SMALL_VGG if name.endswith("vgg16") else {}


def _input(name: str, *size: int) -> torch.Tensor:
    return torch.randn(size[0], fcnseg.models.MODELS[name].in_channels, *size[1:]) * 50


def _outputs(scores: torch.Tensor | dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return list(scores.values()) if isinstance(scores, dict) else [scores]


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


# --- Figure 2: fully connected layers as convolutions -------------------------------------


@pytest.mark.parametrize(("classifier_type", "size"), [(VGG16, (256, 288)), (AlexNet, (259, 291))])
def test_convolutionalized_head_scores_every_window_like_the_classifier(classifier_type, size):
    """fc6-fc8 as convolutions give, at every cell, the classifier's inner products applied to
    that cell's window of pool5 features: the full-size nets, as the published weights use."""
    torch.manual_seed(0)
    classifier = classifier_type().eval()
    net = convolutionalize(classifier, decapitate=False).eval()
    x = torch.randn(1, 3, *size) * 50
    with torch.no_grad():
        score_map = net(x)  # 1×1000×h×w
        features, _ = run_trunk(net, net.trunk, x, {"pool5": "pool5"})
        pool5 = features["pool5"]
        channels, kernel, _ = classifier.fc_inputs["fc6"]
        assert score_map.shape[-2:] == (pool5.shape[-2] - kernel + 1, pool5.shape[-1] - kernel + 1)
        assert score_map.shape[-2] * score_map.shape[-1] >= 4
        head = classifier.trunk[classifier.trunk.index("fc6") :]
        for i in range(score_map.shape[-2]):
            for j in range(score_map.shape[-1]):
                window = pool5[:, :, i : i + kernel, j : j + kernel]
                _, scores = run_trunk(classifier, head, window, {})
                assert _relative(score_map[0, :, i, j], scores[0]) <= 1e-4


def _unpadded(classifier: nn.Module) -> nn.Module:
    """The classifier with 'valid' convolutions: its input is then exactly its receptive field,
    and no zero padding differs between a window and the whole image."""
    classifier = copy.deepcopy(classifier)
    for module in classifier.modules():
        if isinstance(module, nn.Conv2d):
            module.padding = (0, 0)
    return classifier


@pytest.mark.parametrize(
    "classifier_type", [lambda: VGG16(**SMALL_VGG), AlexNet], ids=["vgg16", "alexnet"]
)
def test_figure2_score_map_equals_classifier_on_each_window(classifier_type):
    """Figure 2 end to end: each cell of the convolutionalized net's score map equals the
    classifier run on its own input window. Convolution padding is removed from both nets,
    since zero padding at a window's border sees zeros where the whole image has pixels."""
    torch.manual_seed(1)
    classifier = _unpadded(classifier_type()).eval()
    field = int(classifier_geometry(classifier).receptive_field)
    stride = int(classifier_geometry(classifier).stride)
    net = convolutionalize(classifier, decapitate=False).eval()
    x = torch.randn(1, 3, field + 2 * stride, field + stride) * 50
    with torch.no_grad():
        score_map = net(x)
        assert score_map.shape[-2:] == (3, 2)
        for i in range(3):
            for j in range(2):
                window = x[:, :, i * stride : i * stride + field, j * stride : j * stride + field]
                scores = classifier(window)
                assert _relative(score_map[0, :, i, j], scores[0]) <= 1e-4


def test_convolutionalize_reshapes_fc6_and_decapitates():
    classifier = VGG16()
    net = convolutionalize(classifier)
    assert net.fc6.weight.shape == (4096, 512, 7, 7)
    assert torch.equal(net.fc6.weight.flatten(1), classifier.fc6.weight)
    assert not hasattr(net, "fc8") and "fc8" not in net.trunk
    googlenet = convolutionalize(GoogLeNet())
    assert "pool5.7x7_s1" not in googlenet.trunk and "loss3.classifier" not in googlenet.trunk
    assert isinstance(classifier.fc6, nn.Linear)  # the classifier itself is left as it was


# --- Section 3.3: upsampling is backwards strided convolution -----------------------------


@pytest.mark.parametrize("factor", [2, 8, 32])
def test_bilinear_deconvolution_equals_bilinear_interpolation(factor):
    torch.manual_seed(2)
    x = torch.randn(1, 3, 6, 7)
    up = bilinear_upsampling(3, 2 * factor, factor, learnable=False)
    with torch.no_grad():
        deconv = up(x)
    # A kernel of 2f centres input cell i on output pixel f*i + f - 1/2, which is where
    # half-pixel-centred interpolation puts it once f/2 pixels are cropped.
    shift = factor // 2
    interp = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    deconv = deconv[:, :, shift : shift + interp.shape[-2], shift : shift + interp.shape[-1]]
    m = factor  # away from the borders, where deconvolution sees zeros beyond the map
    torch.testing.assert_close(deconv[..., m:-m, m:-m], interp[..., m:-m, m:-m])


def test_odd_bilinear_kernel_interpolates_on_pixel_centres():
    """AlexNet's 63/32 kernel: input cell i lands on output pixel 32 i + 31; in between, the
    output is the linear interpolation of its neighbours (checked with numpy)."""
    factor, kernel = 32, 63
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    up = bilinear_upsampling(1, kernel, factor, learnable=False)
    with torch.no_grad():
        out = up(torch.from_numpy(x)[None, None])[0, 0].numpy()
    centre = (kernel - 1) // 2
    ys = np.arange(centre, centre + factor * 3 + 1)
    xs = np.arange(centre, centre + factor * 4 + 1)
    grid_y, grid_x = (ys - centre) / factor, (xs - centre) / factor
    rows = np.stack([np.interp(grid_x, np.arange(5), row) for row in x])
    expected = np.stack([np.interp(grid_y, np.arange(4), col) for col in rows.T]).T
    np.testing.assert_allclose(out[np.ix_(ys, xs)], expected, rtol=1e-5, atol=1e-5)


# --- Every model: any size in, same size out; gradients where they belong -----------------


@pytest.mark.parametrize("name", fcnseg.list_models())
@pytest.mark.parametrize("geometry", ["caffe", "lean"])
def test_output_size_equals_input_size(name, geometry):
    if geometry == "lean" and not name.endswith("vgg16"):
        with pytest.raises(fcnseg.FcnsegError, match="lean"):
            fcnseg.build_model(name, num_classes=21, geometry=geometry)
        return
    torch.manual_seed(4)
    model = fcnseg.build_model(name, num_classes=5, geometry=geometry, **_small(name)).eval()
    sizes = [(1, 1), (7, 9), (33, 17), (64, 95)]
    if name in ("fcn8s-vgg16", "fcn32s-alexnet"):  # the paper's typical image, where cheap
        sizes.append((500, 375))
    with torch.no_grad():
        for height, width in sizes:
            for out in _outputs(model(_input(name, 1, height, width))):
                assert out.shape[-2:] == (height, width), (height, width)
                assert out.shape[1] in (5, 3)  # 3: SIFT Flow's geometric head
                assert torch.isfinite(out).all()


def test_full_width_vgg16_fcn_keeps_size():
    model = fcnseg.build_model("fcn8s-vgg16", num_classes=21).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 31, 45)).shape == (1, 21, 31, 45)


@pytest.mark.parametrize("name", fcnseg.list_models())
def test_every_learnable_parameter_gets_a_gradient_and_frozen_ones_none(name):
    torch.manual_seed(5)
    model = fcnseg.build_model(name, num_classes=4, **_small(name)).train()
    # Score layers start at zero (section 4.3), which would stop every gradient below them.
    with torch.no_grad():
        for layer_name, module in model.named_modules():
            if layer_name.split(".")[-1].startswith("score_"):
                module.weight.normal_(0, 0.01)
    for out in _outputs(model(_input(name, 2, 9, 13))):
        (out * torch.randn_like(out)).sum().backward(retain_graph=True)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any("upscore" in n for n in frozen)
    # A late-fusion net upsamples once, with its first stream's fixed kernel.
    unused = {"hha.upscore.weight", "hha.upscore16.weight"}
    for param_name, param in model.named_parameters():
        if param_name in frozen or param_name in unused:
            assert param.grad is None, param_name
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, param_name
            assert torch.isfinite(param.grad).all(), param_name


# --- Table 1 and the crops of the reference nets ------------------------------------------


@pytest.mark.parametrize(
    ("classifier_type", "field", "millions"),
    [(VGG16, 404, 134), (AlexNet, 355, 57), (GoogLeNet, 907, 6)],
)
def test_table1_receptive_field_stride_and_parameters(classifier_type, field, millions):
    with torch.device("meta"):  # shapes only: no time spent drawing 138M random weights
        classifier = classifier_type()
    geometry = classifier_geometry(classifier)
    assert geometry.receptive_field == field
    assert geometry.stride == 32
    # Table 1 counts the decapitated, convolutionalized net (the final classifier dropped).
    count = sum(p.numel() for p in convolutionalize(classifier).parameters())
    assert round(count / 1e6) == millions


@pytest.mark.parametrize(
    ("name", "crops", "kernels"),
    [
        ("fcn32s-vgg16", {"upscore": 19}, {"upscore": 64}),
        (
            "fcn16s-vgg16",
            {"upscore2": 0, "score_pool4": 5, "upscore16": 27},
            {"upscore2": 4, "upscore16": 32},
        ),
        (
            "fcn8s-vgg16",
            {"upscore2": 0, "score_pool4": 5, "upscore_pool4": 0, "score_pool3": 9, "upscore8": 31},
            {"upscore2": 4, "upscore_pool4": 4, "upscore8": 16},
        ),
        ("fcn32s-alexnet", {"upscore": 18}, {"upscore": 63}),
    ],
)
def test_derived_crops_and_kernels_equal_the_reference_nets(name, crops, kernels):
    model = fcnseg.build_model(name, num_classes=21, **_small(name))
    assert model.derived_crops() == crops
    for layer, kernel in kernels.items():
        assert model.get_submodule(layer).kernel_size == (kernel, kernel)
        assert model.get_submodule(layer).stride[0] * 2 in (kernel, kernel + 1)


def test_geometry_matches_the_input_gradient_of_a_linearised_net():
    """The geometry module's receptive field and offset, checked against where a cell's
    gradient actually reaches in the input (max pools made averages and ReLUs identities, so
    that every pixel of the receptive field contributes)."""
    from fcnseg.models.classifier import trunk_geometry

    torch.manual_seed(6)
    net = convolutionalize(VGG16(width=1 / 16, fc_width=8))
    for name, module in list(net.named_children()):
        if isinstance(module, nn.MaxPool2d):
            setattr(net, name, nn.AvgPool2d(2, 2, ceil_mode=True))
        elif isinstance(module, (nn.ReLU, nn.Dropout)):
            setattr(net, name, nn.Identity())
        elif isinstance(module, nn.Conv2d):
            with torch.no_grad():
                module.weight.uniform_(0.1, 1.0)
    net.get_submodule("fc6").padding = (0, 0)
    geometry = trunk_geometry(net, net.trunk)["fc7"]
    x = torch.zeros(1, 3, 600, 600, requires_grad=True)
    _, out = run_trunk(net, net.trunk, x, {})
    i, j = 5, 7  # cells whose receptive field lies inside the image
    out[0, 0, i, j].backward()
    rows = torch.nonzero(x.grad[0].abs().sum((0, 2)) > 0).flatten()
    cols = torch.nonzero(x.grad[0].abs().sum((0, 1)) > 0).flatten()
    assert int(rows[-1] - rows[0] + 1) == geometry.receptive_field == 404
    assert float(rows[0] + rows[-1]) / 2 == float(geometry.stride * i + geometry.offset)
    assert float(cols[0] + cols[-1]) / 2 == float(geometry.stride * j + geometry.offset)


# --- Initialisation -------------------------------------------------------------------------


def test_initialisation_follows_the_reference():
    model = fcnseg.build_model("fcn8s-atonce-vgg16", num_classes=21, **SMALL_VGG)
    for layer in ("score_fr", "score_pool4", "score_pool3"):
        assert model.get_submodule(layer).weight.abs().sum() == 0
        assert model.get_submodule(layer).bias.abs().sum() == 0
    for layer, learnable in (("upscore2", True), ("upscore_pool4", True), ("upscore8", False)):
        weight = model.get_submodule(layer).weight
        assert weight.requires_grad is learnable
        off_diagonal = weight.clone()
        off_diagonal[torch.arange(21), torch.arange(21)] = 0
        assert off_diagonal.abs().sum() == 0
    assert torch.all(model.scale_pool4.weight == 0.01)
    assert torch.all(model.scale_pool3.weight == 0.0001)
    assert not model.scale_pool4.weight.requires_grad


def test_state_dict_uses_caffe_layer_names():
    with torch.device("meta"):
        state = fcnseg.build_model("fcn8s-vgg16", num_classes=21).state_dict()
        googlenet = fcnseg.build_model("fcn32s-googlenet", num_classes=21).state_dict()
    keys = set(state)
    expected = {
        f"conv{b}_{i}.weight"
        for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
        for i in range(1, n + 1)
    }
    expected |= {
        "fc6.weight",
        "fc7.weight",
        "score_fr.weight",
        "score_pool4.weight",
        "score_pool3.weight",
        "upscore2.weight",
        "upscore_pool4.weight",
        "upscore8.weight",
    }
    assert expected <= keys
    assert state["fc6.weight"].shape == (
        4096,
        512,
        7,
        7,
    )
    assert all("." not in k.removesuffix(".weight").removesuffix(".bias") for k in keys)
    assert "inception_3a.1x1.weight" in googlenet and "conv1.7x7_s2.weight" in googlenet


def test_staged_initialisation_starts_from_the_coarser_predictions():
    """FCN-16s from a random FCN-32s: every shared layer is copied, the new skip scores are
    zero, so the skip adds nothing and the 16s output is the 32s net's coarse scores
    upsampled 2x then 16x. That composition is not bit-equal to one 32x bilinear kernel
    (the 2x step moves the interpolation nodes by a quarter cell), so the predictions agree
    closely but not exactly."""
    torch.manual_seed(7)
    coarse = fcnseg.build_model("fcn32s-vgg16", num_classes=6, **SMALL_VGG).eval()
    with torch.no_grad():
        for param in coarse.score_fr.parameters():
            param.normal_(0, 0.05)
    fine = fcnseg.build_model("fcn16s-vgg16", num_classes=6, **SMALL_VGG).eval()
    copied = init_from_coarser(fine, coarse)
    assert "score_fr.weight" in copied and "conv1_1.weight" in copied
    for name in copied:
        assert torch.equal(fine.state_dict()[name], coarse.state_dict()[name])
    assert fine.score_pool4.weight.abs().sum() == 0
    x = torch.randn(1, 3, 150, 170) * 50
    with torch.no_grad():
        # Exactly: the 16s net's fused stride-16 scores are the 32s net's stride-32 scores
        # upsampled by upscore2, the zero skip adding nothing.
        (fusion,) = fine.fusions
        upscored = fine.upscore2(coarse.coarse_scores(x)[""])
        c = fusion.crop_upscore
        fused = fine.coarse_scores(x)[""]
        height, width = fused.shape[-2:]
        assert torch.equal(fused, upscored[:, :, c : c + height, c : c + width])
        out_coarse, out_fine = coarse(x), fine(x)
        fine.score_pool4.weight.normal_()
        out_fine_with_skip = fine(x)
    agreement = (out_coarse.argmax(1) == out_fine.argmax(1)).float().mean()
    assert agreement > 0.9
    assert _relative(out_fine, out_coarse) < 0.1
    # and the skip really is wired in: once it has weights, the output moves
    assert _relative(out_fine_with_skip, out_fine) > 0.1


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(fcnseg.FcnsegError, match="fcn8s-vgg16"):
        fcnseg.build_model("fcn4s-vgg16", num_classes=21)


# --- Section 5: NYUDv2 fusion and SIFT Flow's two heads ------------------------------------


def test_early_fusion_starts_the_depth_filter_as_the_mean_colour_filter():
    torch.manual_seed(8)
    classifier = VGG16(**SMALL_VGG)
    model = fcnseg.build_model("fcn32s-rgbd-vgg16", num_classes=40, classifier=classifier)
    weight = model.conv1_1.weight
    assert weight.shape[1] == 4
    assert torch.equal(weight[:, :3], classifier.conv1_1.weight)
    torch.testing.assert_close(weight[:, 3], classifier.conv1_1.weight.mean(1))
    assert classifier.conv1_1.weight.shape[1] == 3  # the RGB classifier is left as it was


def test_late_fusion_sums_the_streams_scores_with_weights_one_half():
    torch.manual_seed(9)
    model = fcnseg.build_model("fcn32s-rgb-hha-vgg16", num_classes=40, **SMALL_VGG).eval()
    with torch.no_grad():
        for stream in ("color", "hha"):
            model.get_submodule(stream).score_fr.weight.normal_(0, 0.1)
        model.hha.conv1_1.weight.mul_(2)  # the streams differ
        x = _input("fcn32s-rgb-hha-vgg16", 1, 45, 61)
        fused = model(x)
        separate = 0.5 * model.color(x[:, :3]) + 0.5 * model.hha(x[:, 3:])
    torch.testing.assert_close(fused, separate, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "name", ["fcn32s-rgbd-vgg16", "fcn16s-rgb-hha-vgg16", "fcn8s-siftflow-vgg16"]
)
def test_section5_nets_train_one_step_and_keep_their_size(name):
    torch.manual_seed(10)
    model = fcnseg.build_model(name, num_classes=33, geometry="lean", **SMALL_VGG).train()
    for module_name, module in model.named_modules():
        if module_name.split(".")[-1].startswith("score_"):
            torch.nn.init.normal_(module.weight, 0, 0.01)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    x = _input(name, 2, 50, 70)
    labels = {"": torch.randint(0, 33, (2, 50, 70)), "geo": torch.randint(0, 3, (2, 50, 70))}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    scores = model(x)
    heads = scores if isinstance(scores, dict) else {"": scores}
    loss = sum(
        F.cross_entropy(s, labels["geo" if head == "geo" else ""], ignore_index=255)
        for head, s in heads.items()
    )
    loss.backward()
    optimizer.step()
    assert all(s.shape[-2:] == (50, 70) for s in heads.values())
    if name.endswith("siftflow-vgg16"):
        assert set(heads) == {"sem", "geo"} and heads["geo"].shape[1] == 3
    changed = [n for n, p in model.named_parameters() if not torch.equal(before[n], p)]
    assert "conv1_1.weight" in changed or "color.conv1_1.weight" in changed


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"width": -1.0}, "width must be a finite number above 0, at most 32768, got -1.0"),
        ({"width": 0}, "width must be a finite number above 0, at most 32768, got 0"),
        ({"width": float("nan")}, "width must be a finite number above 0, at most 32768, got nan"),
        ({"width": float("inf")}, "width must be a finite number above 0, at most 32768, got inf"),
        # 1e300 and 2**63 once ended in torch's C++ frame dump ("Overflow when unpacking")
        ({"width": 1e300}, "width must be a finite number above 0, at most 32768, got 1e+300"),
        ({"fc_width": 0}, "fc_width must be a whole number from 1 to 16777216, got 0"),
        ({"fc_width": 2**63}, f"fc_width must be a whole number from 1 to 16777216, got {2**63}"),
    ],
)
def test_a_backbone_of_no_channels_or_of_more_than_torch_can_size_is_refused(
    options: dict, problem: str
) -> None:
    # a width of -1 once built a net of one-channel convolutions and trained it
    with pytest.raises(FcnsegError, match=re.escape(problem)):
        fcnseg.build_model("fcn32s-vgg16", num_classes=3, **options)


@pytest.mark.parametrize("backbone", [{"width": -1.0}, {"width": 0.0}, {"fc_width": 0}])
def test_a_training_configuration_of_no_channels_is_refused(backbone: dict) -> None:
    with pytest.raises(FcnsegError, match="backbone (fc_)?width must be"):
        TrainConfig(backbone=backbone)
