"""Test-time augmentation (issue 10, acceptance 4): flip-equivariant, scale 1.0 alone plain,
probabilities averaged as mmsegmentation averages them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from inference_nets import image, small_model
from torch.nn import functional as F

import fcnseg
from fcnseg.convention import caffe_convention
from fcnseg.errors import FcnsegError
from fcnseg.inference import Augmentation, Predictor, TestTimeAugmentation

SCALES = (0.75, 1.0, 1.25)
CONVENTION = caffe_convention((104.0, 116.7, 122.7))


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return small_model("fcn8s-vgg16", "lean")


def test_flip_tta_is_exactly_flip_equivariant(net: torch.nn.Module) -> None:
    x = image(2, 3, 70, 91)
    mirrored = x.flip(-1)
    for scales in ((1.0,), SCALES):
        tta = TestTimeAugmentation(net, flip=True, scales=scales)
        with torch.no_grad():
            scores, scores_of_mirror = tta(x), tta(mirrored)
        assert torch.equal(scores_of_mirror, scores.flip(-1)), scales
    # the model alone is not: the augmentation is what makes it so
    with torch.no_grad():
        assert not torch.equal(net(mirrored), net(x).flip(-1))
    # and fcnseg.predict, through the optimized, tiled predictor: mirrored labels
    rgb = np.random.default_rng(1).integers(0, 256, (67, 85, 3), dtype=np.uint8)
    options = {"flip": True, "scales": SCALES, "convention": CONVENTION}
    labels = fcnseg.predict(net, rgb, **options)
    labels_of_mirror = fcnseg.predict(net, np.ascontiguousarray(rgb[:, ::-1]), **options)
    assert np.array_equal(labels_of_mirror, labels[:, ::-1])


def test_scale_one_alone_is_plain_prediction(net: torch.nn.Module) -> None:
    x = image(1, 3, 64, 80)
    with torch.no_grad():
        assert torch.equal(TestTimeAugmentation(net, scales=[1.0])(x), net(x))
    rgb = np.random.default_rng(2).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    plain = fcnseg.predict(net, rgb, convention=CONVENTION)
    assert np.array_equal(fcnseg.predict(net, rgb, scales=[1.0], convention=CONVENTION), plain)


def test_views_are_softmax_probabilities_resized_back_and_averaged(net: torch.nn.Module) -> None:
    x = image(1, 3, 48, 60, seed=3)
    with torch.no_grad():
        views = []
        for scale in (0.5, 1.0, 1.5):
            size = (round(48 * scale), round(60 * scale))
            for mirror in (False, True):
                view = x.flip(-1) if mirror else x
                view = F.interpolate(view, size=size, mode="bilinear", align_corners=False)
                scores = F.interpolate(net(view), size=(48, 60), mode="bilinear")
                probabilities = scores.softmax(1)
                views.append(probabilities.flip(-1) if mirror else probabilities)
        expected = torch.stack(views).mean(0)
        result = TestTimeAugmentation(net, flip=True, scales=(0.5, 1.0, 1.5))(x).exp()
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-6)
    # mean probabilities, not mean scores: the two disagree somewhere on random nets
    assert torch.allclose(result.sum(1), torch.ones(1, 48, 60))


def test_predictor_tta_is_tiled_view_by_view_exactly(net: torch.nn.Module) -> None:
    x = image(3, 610, 590, seed=4)
    augmentation = Augmentation(flip=True, scales=(0.95, 1.0))
    whole = Predictor(net, tta=augmentation)
    tiled = Predictor(net, tta=augmentation, tile=576)  # 2 x 262 + 32: the smallest exact
    assert tiled.tile_for(610, 590) == 576
    ((labels, probabilities),) = whole.predict_labels_and_proba([x])
    ((tiled_labels, tiled_probabilities),) = tiled.predict_labels_and_proba([x])
    torch.testing.assert_close(tiled_probabilities, probabilities, rtol=1e-4, atol=1e-5)
    assert torch.equal(tiled_labels, labels)
    assert torch.equal(labels, probabilities.argmax(0))


def test_bad_scales_are_one_error() -> None:
    for scales in ((), (0.0,), (-1.0,), (float("nan"),)):
        with pytest.raises(FcnsegError, match="scale"):
            Augmentation(scales=scales)
    assert Augmentation(flip=True, scales=SCALES).views == 6
    assert Augmentation().plain and not Augmentation(scales=(1.0, 1.0)).plain
