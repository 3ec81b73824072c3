"""The Caffe input convention, the VOC colour map, and drawing labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fcnseg.convention import InputConvention, caffe_convention
from fcnseg.data import VOC_MEAN_BGR, DatasetInfo, bitmap_palette, colorize, overlay
from fcnseg.errors import FcnsegError

VOC = caffe_convention(VOC_MEAN_BGR)


def test_voc_colour_map_matches_the_devkit() -> None:
    # Colours of the VOC devkit's labelcolormap / the SegmentationClass PNG palette.
    palette = bitmap_palette(256)
    assert palette[0] == (0, 0, 0)
    assert palette[1] == (128, 0, 0)  # aeroplane
    assert palette[2] == (0, 128, 0)  # bicycle
    assert palette[7] == (128, 128, 128)  # car
    assert palette[15] == (192, 128, 128)  # person
    assert palette[20] == (0, 64, 128)  # tvmonitor
    assert palette[255] == (224, 224, 192)  # void
    assert len(set(palette)) == 256


def test_preprocess_is_the_reference_data_layer() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (6, 9, 3)).astype(np.uint8)
    # voc_layers.py: in_ = np.array(im, dtype=np.float32)[:,:,::-1]; in_ -= mean;
    # in_ = in_.transpose((2,0,1))
    reference = np.array(rgb, dtype=np.float32)[:, :, ::-1]
    reference -= np.array(VOC_MEAN_BGR, dtype=np.float32)
    reference = reference.transpose((2, 0, 1))
    for source in (rgb, Image.fromarray(rgb)):
        image = VOC.preprocess(np.asarray(source))
        assert image.dtype == torch.float32 and image.shape == (3, 6, 9)
        np.testing.assert_array_equal(image.numpy(), reference)
    # Channel 0 is blue.
    assert image[0, 0, 0] == float(np.float32(rgb[0, 0, 2]) - np.float32(VOC_MEAN_BGR[0]))


def test_deprocess_inverts_preprocess() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (5, 4, 3)).astype(np.uint8)
    image = VOC.preprocess(rgb)
    np.testing.assert_array_equal(VOC.deprocess(image), rgb)
    # A colour-HHA input shows its colour channels.
    six = torch.cat([image, torch.zeros(3, 5, 4)])
    colour_hha = caffe_convention(VOC_MEAN_BGR + (1.0, 2.0, 3.0), ("h", "h", "a"))
    np.testing.assert_array_equal(colour_hha.deprocess(six), rgb)
    # A depth-only input has no colour to show.
    depth = InputConvention("none", 255.0, (7.844,), extra_channels=("log_depth_mm",))
    with pytest.raises(ValueError):
        depth.deprocess(torch.zeros(1, 5, 4))
    with pytest.raises(FcnsegError):  # nor has a single channel under a colour convention
        VOC.deprocess(torch.zeros(1, 5, 4))


def test_colorize_keeps_indices_and_draws_void_black() -> None:
    palette = ((10, 20, 30), (40, 50, 60), (70, 80, 90))
    label = torch.tensor([[0, 1, 2], [255, 7, -1]])
    image = colorize(label, palette)
    assert image.mode == "P"
    np.testing.assert_array_equal(np.asarray(image), [[0, 1, 2], [255, 255, 255]])
    rgb = np.asarray(image.convert("RGB"))
    assert rgb[0].tolist() == [list(c) for c in palette]
    assert rgb[1].tolist() == [[0, 0, 0]] * 3


def test_overlay_blends_classes_and_keeps_void() -> None:
    rgb = np.full((1, 3, 3), 100, dtype=np.uint8)
    label = np.array([[0, 1, 255]])
    palette = ((200, 0, 0), (0, 200, 100))
    assert np.asarray(overlay(rgb, label, palette, alpha=0.0)).tolist() == rgb.tolist()
    blended = np.asarray(overlay(rgb, label, palette, alpha=0.5))
    assert blended.tolist() == [[[150, 50, 50], [50, 150, 100], [100, 100, 100]]]
    full = np.asarray(overlay(Image.fromarray(rgb), label, palette, alpha=1.0))
    assert full.tolist() == [[[200, 0, 0], [0, 200, 100], [100, 100, 100]]]


def test_dataset_info_is_frozen_and_counts_classes() -> None:
    info = DatasetInfo("x", ("a", "b"), ((0, 0, 0), (1, 1, 1)), caffe_convention((1.0, 2.0, 3.0)))
    assert info.num_classes == 2 and info.ignore_index == 255
    with pytest.raises(AttributeError):
        info.name = "y"  # type: ignore[misc]
