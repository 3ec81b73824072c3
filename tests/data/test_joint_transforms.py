"""Joint transforms keep image and label aligned; batching pads with the mean and void."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnseg.convention import TORCHVISION_IMAGENET, caffe_convention
from fcnseg.data.transforms import (
    Compose,
    RandomColourJitter,
    RandomCrop,
    RandomJitter,
    RandomMirror,
    RandomScale,
    collate_pad,
    mirror,
    rescale,
    translate,
)

VOID = 255


def pair(height: int = 9, width: int = 13) -> tuple[torch.Tensor, torch.Tensor]:
    """An image whose every pixel is distinct and non-zero, and the label derived from it."""
    values = torch.arange(1, height * width + 1, dtype=torch.float32).reshape(height, width)
    image = torch.stack([values, -values, 2 * values])
    return image, label_of(image)


def label_of(image: torch.Tensor) -> torch.Tensor:
    """The label the image implies: a class from the pixel value, void where the image is 0."""
    values = image[0].long()
    return torch.where(values == 0, VOID, values % 7)


def test_mirror_twice_is_identity_and_once_is_not() -> None:
    image, label = pair()
    once = mirror(image, label)
    assert not torch.equal(once[0], image)
    assert torch.equal(once[0][:, :, 0], image[:, :, -1])
    twice = mirror(*once)
    assert torch.equal(twice[0], image) and torch.equal(twice[1], label)
    always = RandomMirror(p=1.0)
    assert torch.equal(always(*always(image, label))[0], image)


def test_translate_moves_content_and_fills_mean_and_void() -> None:
    image, label = pair()
    moved_image, moved_label = translate(image, label, 2, -3)
    assert torch.equal(moved_image[:, 2:, :-3], image[:, :-2, 3:])
    assert (moved_image[:, :2] == 0).all() and (moved_image[:, :, -3:] == 0).all()
    assert (moved_label[:2] == VOID).all() and (moved_label[:, -3:] == VOID).all()
    assert (translate(image, label, 40, 0)[1] == VOID).all()


def test_jitter_keeps_image_and_label_aligned() -> None:
    generator = torch.Generator().manual_seed(0)
    jitter = RandomJitter(max_shift=4, generator=generator)
    image, label = pair()
    shifts = set()
    for _ in range(30):
        moved_image, moved_label = jitter(image, label)
        assert moved_image.shape == image.shape
        assert torch.equal(moved_label, label_of(moved_image))
        # Recover the shift from where pixel (0, 0)'s value went (when it stayed inside).
        found = (moved_image[0] == image[0, 0, 0]).nonzero()
        if len(found):
            shifts.add(tuple(found[0].tolist()))
    assert all(0 <= dy <= 4 and 0 <= dx <= 4 for dy, dx in shifts)
    assert len(shifts) > 5


def test_jitter_is_reproducible_with_a_seed() -> None:
    image, label = pair()
    first = RandomJitter(generator=torch.Generator().manual_seed(3))(image, label)
    second = RandomJitter(generator=torch.Generator().manual_seed(3))(image, label)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_rescale_and_random_scale() -> None:
    image, label = pair(8, 12)
    big_image, big_label = rescale(image, label, 2.0)
    assert big_image.shape == (3, 16, 24) and big_label.shape == (16, 24)
    assert big_label.dtype == torch.int64
    # Nearest neighbour on pixel centres: every source pixel becomes a 2x2 block.
    assert torch.equal(big_label, label.repeat_interleave(2, 0).repeat_interleave(2, 1))
    scaled = RandomScale(0.5, 1.5, generator=torch.Generator().manual_seed(0))(image, label)
    assert scaled[0].shape[1:] == scaled[1].shape
    assert set(scaled[1].unique().tolist()) <= set(label.unique().tolist())


def test_random_crop_pads_with_mean_and_void() -> None:
    image, label = pair(5, 6)
    crop = RandomCrop((8, 4), generator=torch.Generator().manual_seed(0))
    cropped_image, cropped_label = crop(image, label)
    assert cropped_image.shape == (3, 8, 4) and cropped_label.shape == (8, 4)
    # Rows below the image are padding: 0 in the image, void in the label.
    assert (cropped_image[:, 5:] == 0).all() and (cropped_label[5:] == VOID).all()
    assert torch.equal(cropped_label, label_of(cropped_image))


def test_compose_applies_in_order() -> None:
    image, label = pair()
    composed = Compose([RandomMirror(p=1.0), lambda i, lab: translate(i, lab, 1, 0)])
    expected = translate(*mirror(image, label), 1, 0)
    result = composed(image, label)
    assert torch.equal(result[0], expected[0]) and torch.equal(result[1], expected[1])


def test_collate_pad_pads_images_with_zero_and_labels_with_void() -> None:
    small, large = pair(3, 5), pair(4, 2)
    images, labels = collate_pad([small, large])
    assert images.shape == (2, 3, 4, 5) and labels.shape == (2, 4, 5)
    assert torch.equal(images[0, :, :3, :5], small[0]) and torch.equal(labels[1, :4, :2], large[1])
    assert (images[0, :, 3:] == 0).all() and (labels[0, 3:] == VOID).all()
    assert (images[1, :, :, 2:] == 0).all() and (labels[1, :, 2:] == VOID).all()
    # A two-task label (SIFT Flow semantic + geometric) pads the same way.
    two_task = [(small[0], torch.stack([small[1], small[1]])), (large[0], large[1].expand(2, 4, 2))]
    assert collate_pad(two_task)[1].shape == (2, 2, 4, 5)


def _expected_jitter(raw: np.ndarray, factors: tuple[float, float, float]) -> np.ndarray:
    """torchvision's order and formulas (brightness, contrast towards the image's mean grey,
    saturation towards each pixel's grey; BT.601 luma), on raw RGB 0-255 in float64."""
    brightness, contrast, saturation = factors
    luma = np.array([0.299, 0.587, 0.114])
    rgb = np.clip(raw[..., :3].astype(np.float64) * brightness, 0, 255)
    mean_grey = (rgb @ luma).mean()
    rgb = np.clip((rgb - mean_grey) * contrast + mean_grey, 0, 255)
    grey = (rgb @ luma)[..., None]
    rgb = np.clip((rgb - grey) * saturation + grey, 0, 255)
    return np.concatenate([rgb, raw[..., 3:]], axis=-1)


@pytest.mark.parametrize(
    "convention",
    [
        caffe_convention((104.00698793, 116.66876762, 122.67891434)),
        TORCHVISION_IMAGENET,
        caffe_convention((104.0, 116.7, 122.7, 1.5), ("log_depth_mm",)),
    ],
    ids=["caffe-bgr", "torchvision-rgb", "caffe-rgbd"],
)
def test_colour_jitter_changes_the_raw_colours_as_torchvision_does(convention) -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 255, (7, 9, convention.channels)).astype(np.float32)
    image = convention.preprocess(raw)
    label = torch.arange(63).reshape(7, 9)
    jitter = RandomColourJitter(convention, 0.4, torch.Generator().manual_seed(3))
    jittered, same_label = jitter(image, label)
    # the factors it drew, drawn again from the same seed: brightness, contrast, saturation
    draws = torch.rand(3, generator=torch.Generator().manual_seed(3)).tolist()
    factors = tuple(0.6 + 0.8 * u for u in draws)
    assert factors != (1.0, 1.0, 1.0)
    expected = convention.preprocess(_expected_jitter(raw, factors).astype(np.float32))
    torch.testing.assert_close(jittered, expected, rtol=0, atol=2e-4 * convention.scale)
    assert torch.equal(same_label, label)
    # extra channels (depth) are not colours
    assert torch.equal(jittered[3:], image[3:])


def test_colour_jitter_of_strength_zero_is_the_identity_and_a_strong_one_stays_in_range() -> None:
    convention = TORCHVISION_IMAGENET
    raw = np.random.default_rng(1).uniform(0, 255, (5, 6, 3)).astype(np.float32)
    image = convention.preprocess(raw)
    label = torch.zeros(5, 6, dtype=torch.long)
    assert torch.equal(RandomColourJitter(convention, 0.0)(image, label)[0], image)
    std = torch.tensor(convention.std).view(3, 1, 1)
    mean = torch.tensor(convention.mean).view(3, 1, 1)
    lowest, highest = 255.0, 0.0
    for seed in range(20):
        jitter = RandomColourJitter(convention, 0.9, torch.Generator().manual_seed(seed))
        jittered_raw = (jitter(image, label)[0] * std + mean) * 255 / convention.scale
        lowest = min(lowest, jittered_raw.min().item())
        highest = max(highest, jittered_raw.max().item())
    # factors up to 1.9 push colours past 255 and down to 0: they are clipped there
    assert -1e-3 < lowest < 1 and 254 < highest < 255 + 1e-3
