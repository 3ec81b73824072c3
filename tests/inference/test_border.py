"""The Caffe geometry's border computed once (issue 13): the plain model's scores, fewer FLOPs.

Every comparison is against the plain eager model, an independent computation, with
tolerances from fp32 rounding: the fast path runs other kernels on other shapes, so the
scores agree to about 1e-6, never bit for bit, and a label may only differ where the plain
model's two best scores are themselves within rounding of each other.
"""

from __future__ import annotations

import pytest
import torch
from inference_nets import image, randomize
from torch import nn

import fcnseg
from fcnseg.inference import Predictor, optimize_for_inference
from fcnseg.inference.bench import count_flops
from fcnseg.inference.border import BorderRunner, BorderSegment
from fcnseg.inference.export import relative_error

RELATIVE_L2 = 1e-5
# scores are a few units: a top-two margin below this is a tie under fp32 rounding
TIE = 1e-4
# VGG16 at an eighth of its width; AlexNet and GoogLeNet have no width option
VGG_WIDTH = {"width": 1 / 8, "fc_width": 32}
SIZES = [(1, 1), (33, 17), (375, 500)]


def build(name: str, **options: object) -> nn.Module:
    torch.manual_seed(0)
    backbone = {**VGG_WIDTH, **options} if "vgg16" in name else options
    return randomize(fcnseg.build_model(name, num_classes=5, geometry="caffe", **backbone))


def channels(name: str) -> int:
    return 6 if "hha" in name else (4 if "rgbd" in name else 3)


def heads(scores: torch.Tensor | dict[str, torch.Tensor]) -> list[torch.Tensor]:
    return list(scores.values()) if isinstance(scores, dict) else [scores]


def assert_same_scores(result: torch.Tensor, reference: torch.Tensor) -> None:
    assert result.shape == reference.shape
    assert relative_error(result, reference) <= RELATIVE_L2
    assert_same_labels(result.argmax(1), reference)


def assert_same_labels(labels: torch.Tensor, reference: torch.Tensor) -> None:
    top2 = reference.topk(2, dim=1).values
    tie = (top2[:, 0] - top2[:, 1]) <= TIE
    differ = labels != reference.argmax(1)
    assert not (differ & ~tie).any(), f"{int(differ.sum())} labels differ"


def runners(fast: nn.Module) -> list[BorderRunner]:
    return list(
        {id(m.runner): m.runner for m in fast.modules() if isinstance(m, BorderSegment)}.values()
    )


def _sizes(name: str) -> list[tuple[int, int]]:
    # AlexNet and GoogLeNet run at full width (the whole structure) and take seconds at
    # 375x500: GoogLeNet's net with both skips here, AlexNet in a slow test below
    if "vgg16" in name or name == "fcn8s-googlenet":
        return SIZES
    return SIZES[:2]


@pytest.mark.slow
def test_full_width_alexnet_at_375x500() -> None:
    model = build("fcn32s-alexnet")
    x = image(1, 3, 375, 500)
    with torch.no_grad():
        reference = model(x)
    assert_same_scores(optimize_for_inference(model, "fp32")(x), reference)


@pytest.mark.parametrize("name", fcnseg.list_models())
def test_equals_plain_model_on_odd_sizes(name: str, convolutions: str) -> None:
    model = build(name)
    fast = optimize_for_inference(model, "fp32")
    found = runners(fast)
    assert found  # every net of the table has the Caffe geometry's border
    for seed, (height, width) in enumerate(_sizes(name)):
        x = image(1, channels(name), height, width, seed=seed)
        with torch.no_grad():
            reference = model(x)
        result = fast(x)
        for fast_head, plain_head in zip(heads(result), heads(reference), strict=True):
            assert_same_scores(fast_head, plain_head)
    assert all(runner.calls == len(_sizes(name)) for runner in found)


@pytest.mark.slow
def test_full_width_vgg16(convolutions: str) -> None:
    # 64-512 channels, fc6 4096 x 512 x 7 x 7, fc7 4096 x 4096 (fc7 through BLAS)
    model = randomize(fcnseg.build_model("fcn8s-vgg16", num_classes=21, geometry="caffe"))
    fast = optimize_for_inference(model, "fp32")
    x = image(1, 3, 1, 3)
    with torch.no_grad():
        reference = model(x)
    assert_same_scores(fast(x), reference)


def test_batches(convolutions: str) -> None:
    model = build("fcn8s-vgg16")
    fast = optimize_for_inference(model, "fp32")
    x = image(3, 3, 70, 45)
    with torch.no_grad():
        reference = model(x)
    assert_same_scores(fast(x), reference)


def test_predictor_batched_and_tiled(convolutions: str) -> None:
    model = build("fcn8s-vgg16", width=1 / 16, fc_width=16)
    images = [image(3, 120, 90, seed=1), image(3, 120, 90, seed=2), image(3, 700, 610, seed=3)]
    with torch.no_grad():
        references = [model(img[None])[0] for img in images]
    for tile in (None, 600):  # 600: the last image is cut into 2 x 2 overlapping windows
        predictor = Predictor(model, precision="fp32", tile=tile, batch_size=2)
        probabilities = predictor.predict_proba(images)
        labels = predictor.predict(images)
        for reference, proba, label in zip(references, probabilities, labels, strict=True):
            assert relative_error(proba, reference.softmax(0)) <= RELATIVE_L2
            assert_same_labels(label[None], reference[None])
        assert runners(predictor.model)[0].calls > 0


def test_lean_geometry_and_no_border_run_plain() -> None:
    lean = optimize_for_inference(_lean(), "fp32")
    assert not runners(lean)
    caffe = optimize_for_inference(build("fcn8s-vgg16"), "fp32", border=False)
    assert not runners(caffe)


def _lean() -> nn.Module:
    torch.manual_seed(0)
    return randomize(fcnseg.build_model("fcn8s-vgg16", num_classes=5, geometry="lean", **VGG_WIDTH))


def test_flops_close_to_the_lean_geometry() -> None:
    # Counted on the meta device at full width, 500x500: the plain Caffe net runs 363 GFLOP,
    # the lean one 217; the border path about 260 (the image band is wider than the image).
    with torch.device("meta"):
        caffe = fcnseg.build_model("fcn8s-vgg16", num_classes=21, geometry="caffe")
        lean = fcnseg.build_model("fcn8s-vgg16", num_classes=21, geometry="lean")
    x = torch.empty(1, 3, 500, 500, device="meta")
    flops = {}
    with torch.no_grad():
        for label, net in {
            "caffe": caffe,
            "lean": lean,
            "border": optimize_for_inference(caffe, "fp32"),
        }.items():
            flops[label] = count_flops(lambda net=net: net(x)) / 1e9
    assert flops["caffe"] == pytest.approx(363, abs=1)
    assert flops["lean"] < flops["border"] <= 0.75 * flops["caffe"], flops


def test_plans_are_exact_at_every_small_size() -> None:
    # The plan's bookkeeping at every size from 1 to 40 on each axis (pure integer work):
    # each stage's window must yield its whole image band, which _window checks.
    model = optimize_for_inference(build("fcn8s-googlenet"), "fp32")
    (runner,) = runners(model)
    for size in range(1, 41):
        plan = runner.plan(size, 41 - size)
        assert plan.stages[0][0][0] == 0
