"""InputConvention beyond the Caffe case: torchvision's scale and std, shapes, dtypes, range.

The expected values are the convention's formula written out with numpy
(``x[c] = (raw[order[c]] * scale / 255 - mean[c]) / std[c]``), or hand examples.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from fcnseg.convention import TORCHVISION_IMAGENET, InputConvention, caffe_convention
from fcnseg.errors import FcnsegError

CAFFE = caffe_convention((104.0, 117.0, 123.0))
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406])
TORCHVISION_STD = np.array([0.229, 0.224, 0.225])


@pytest.fixture
def float64_default() -> Iterator[None]:
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


def test_every_byte_round_trips_through_torchvisions_convention() -> None:
    """deprocess undoes the std and the 1/255 scale, not only the mean (Caffe's std is 1 and
    its scale 255, so a round trip there cannot tell multiplying from dividing)."""
    rgb = np.stack(
        [np.arange(256), np.arange(256)[::-1], (np.arange(256) * 7) % 256], axis=-1
    ).astype(np.uint8)[None]  # 1 x 256 x 3: every value in every channel
    image = TORCHVISION_IMAGENET.preprocess(rgb)
    expected = (rgb.transpose(2, 0, 1) / 255 - TORCHVISION_MEAN[:, None, None]) / TORCHVISION_STD[
        :, None, None
    ]
    np.testing.assert_allclose(image.numpy(), expected, rtol=1e-5, atol=1e-5)
    back = TORCHVISION_IMAGENET.deprocess(image)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, rgb)


def test_deprocess_clips_to_the_byte_range() -> None:
    """Values beyond 0-255 (a net's input edited, an adversarial image) clip; they do not wrap
    around as uint8 would."""
    # BGR input of Caffe: pixel = value + mean; blue 104 + [-300, -104, 151, 400]
    image = torch.zeros(3, 1, 4)
    image[0, 0] = torch.tensor([-300.0, -104.0, 151.0, 400.0])
    rgb = CAFFE.deprocess(image)
    assert rgb.dtype == np.uint8
    assert rgb[0, :, 2].tolist() == [0, 0, 255, 255]  # blue is the RGB image's third channel
    assert rgb[0, :, 1].tolist() == [117] * 4 and rgb[0, :, 0].tolist() == [123] * 4


def test_a_convention_without_colour_has_nothing_to_show() -> None:
    depth = InputConvention("none", 255.0, (7.844,), extra_channels=("log_depth_mm",))
    with pytest.raises(FcnsegError, match="no colour channels to show"):
        depth.deprocess(torch.zeros(1, 5, 4))


def test_normalize_takes_one_image_or_a_batch_and_refuses_other_shapes() -> None:
    raw = torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1)
    single = CAFFE.normalize(raw)
    assert single.shape == (3, 1, 1) and single.flatten().tolist() == [-74.0, -97.0, -113.0]
    assert CAFFE.normalize(raw[None]).flatten().tolist() == [-74.0, -97.0, -113.0]
    for shape in [(4, 1, 1), (1, 4, 1, 1), (2, 1, 1), (3, 1), (1, 1, 3, 1, 1)]:
        with pytest.raises(FcnsegError, match="expected raw pixels"):
            CAFFE.normalize(torch.zeros(shape))


def test_normalize_gives_float32_whatever_torchs_default_dtype(float64_default) -> None:
    raw = torch.tensor([10, 20, 30], dtype=torch.uint8).view(1, 3, 1, 1)
    for convention in (CAFFE, TORCHVISION_IMAGENET):
        assert convention.normalize(raw).dtype == torch.float32
    expected = (np.array([10, 20, 30]) / 255 - TORCHVISION_MEAN) / TORCHVISION_STD
    np.testing.assert_allclose(
        TORCHVISION_IMAGENET.normalize(raw).flatten().numpy(), expected, rtol=1e-6
    )


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA device (the convention's tensors must follow the input there); "
    "runs on any machine with one",
)
def test_normalize_stays_on_the_inputs_cuda_device() -> None:
    raw = torch.tensor([10.0, 20.0, 30.0], device="cuda").view(1, 3, 1, 1)
    x = TORCHVISION_IMAGENET.normalize(raw)
    assert x.device == raw.device and x.dtype == torch.float32
    expected = (np.array([10, 20, 30]) / 255 - TORCHVISION_MEAN) / TORCHVISION_STD
    np.testing.assert_allclose(x.flatten().cpu().numpy(), expected, rtol=1e-6)
    assert CAFFE.normalize(raw).flatten().tolist() == [30.0 - 104, 20.0 - 117, 10.0 - 123]


def test_preprocess_refuses_other_shapes() -> None:
    for shape in [(4, 4), (4, 4, 4), (4, 4, 1), (1, 4, 4, 3)]:
        with pytest.raises(FcnsegError, match="expected raw pixels H x W x 3"):
            CAFFE.preprocess(np.zeros(shape, dtype=np.uint8))


def rgbd() -> InputConvention:
    """RGB-D in Caffe's convention, given with ints and a list (made inside each test)."""
    return InputConvention("BGR", 255, (1, 2, 3, 7), None, ["log_depth_mm"])


def test_a_convention_is_coerced_to_floats_and_names() -> None:
    convention = rgbd()
    assert convention.scale == 255.0 and isinstance(convention.scale, float)
    assert convention.mean == (1.0, 2.0, 3.0, 7.0)
    assert all(isinstance(v, float) for v in convention.mean + convention.std)
    assert convention.std == (1.0, 1.0, 1.0, 1.0)
    assert convention.extra_channels == ("log_depth_mm",)
    assert InputConvention("BGR", 255, (1, 2, 3, 4), None, [5]).extra_channels == ("5",)
    assert InputConvention("BGR", 255, (104, 117, 123)) == CAFFE
    # what a weight file's header holds: floats, as JSON writes them
    caffe = InputConvention("BGR", 255, (104, 117, 123)).to_dict()
    assert json.dumps(caffe) == (
        '{"channel_order": "BGR", "scale": 255.0, "mean": [104.0, 117.0, 123.0], '
        '"std": [1.0, 1.0, 1.0]}'
    )


def test_the_dict_of_a_convention_with_extra_channels_and_back() -> None:
    RGBD = rgbd()
    data = RGBD.to_dict()
    assert data == {
        "channel_order": "BGR",
        "scale": 255.0,
        "mean": [1.0, 2.0, 3.0, 7.0],
        "std": [1.0, 1.0, 1.0, 1.0],
        "extra_channels": ["log_depth_mm"],
    }
    assert InputConvention.from_dict(data) == RGBD
    assert "extra_channels" not in CAFFE.to_dict()
    assert InputConvention.from_dict(CAFFE.to_dict()) == CAFFE


def test_a_dict_that_is_not_a_convention_is_refused_in_one_line() -> None:
    expected = "expected ['channel_order', 'mean', 'scale', 'std']"
    with pytest.raises(FcnsegError) as error:
        InputConvention.from_dict(["BGR"])
    assert str(error.value) == f"input convention: keys list, {expected}"
    with pytest.raises(FcnsegError) as error:
        InputConvention.from_dict({**CAFFE.to_dict(), "gamma": 2.2})
    assert str(error.value) == (
        f"input convention: keys ['channel_order', 'gamma', 'mean', 'scale', 'std'], {expected}"
    )
    for extra in ("log_depth_mm", ["log_depth_mm", 3]):
        with pytest.raises(FcnsegError, match="extra_channels .* expected names"):
            InputConvention.from_dict({**rgbd().to_dict(), "extra_channels": extra})
    for key in ("mean", "std"):
        with pytest.raises(FcnsegError, match=r"\}, expected numbers"):
            InputConvention.from_dict({**CAFFE.to_dict(), key: ["a", "b", "c"]})


def test_booleans_and_other_non_numbers_are_refused() -> None:
    with pytest.raises(FcnsegError, match="scale True, expected 255 or 1"):
        InputConvention("RGB", True, (0, 0, 0))
    with pytest.raises(FcnsegError, match=r"input convention: mean \(True, 0, 0\)"):
        InputConvention("RGB", 1, (True, 0, 0))
    with pytest.raises(FcnsegError, match="input convention: mean 5, expected 3 finite"):
        InputConvention("RGB", 1, 5)
    with pytest.raises(FcnsegError, match=r"input convention: std \(1, 1\), expected 3"):
        InputConvention("RGB", 1, (0, 0, 0), (1, 1))
