"""The readers' shared checks (fcnseg.data._reading): the messages a user reads, to the letter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from fcnseg.data._reading import read_mat, read_rgb, read_split
from fcnseg.errors import FcnsegError


def test_a_missing_split_file_lists_the_ones_there(tmp_path: Path) -> None:
    (tmp_path / "val.txt").write_text("a\n")
    (tmp_path / "train.txt").write_text("b\n")
    with pytest.raises(FcnsegError) as error:
        read_split(tmp_path / "test.txt", tmp_path.glob("*.txt"))
    assert (
        str(error.value) == f"{tmp_path / 'test.txt'}: split file not found (available: train, val)"
    )
    with pytest.raises(FcnsegError) as error:
        read_split(tmp_path / "test.txt")
    assert str(error.value) == f"{tmp_path / 'test.txt'}: split file not found"


def test_a_mat_file_without_the_variable_lists_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "label.mat"
    scipy.io.savemat(path, {"depth": np.zeros(2), "label": np.zeros(2)})
    with pytest.raises(FcnsegError) as error:
        read_mat(path, "GTcls")
    assert str(error.value) == f"{path}: no variable 'GTcls' (found: depth, label)"
    scipy.io.savemat(path, {})
    with pytest.raises(FcnsegError) as error:
        read_mat(path, "GTcls")
    assert str(error.value) == f"{path}: no variable 'GTcls' (found: none)"


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA"])
def test_colour_images_of_any_mode_are_read_as_rgb(tmp_path: Path, mode: str) -> None:
    """As Caffe's loader: a grey, CMYK, palette or RGBA file becomes H x W x 3 RGB (what PIL's
    own conversion gives), an RGB file is read as it is."""
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3)).astype(np.uint8)
    image = Image.fromarray(rgb).convert(mode)
    path = tmp_path / ("image.jpg" if mode == "CMYK" else "image.png")
    image.save(path)
    expected = np.asarray(Image.open(path).convert("RGB"))
    pixels = read_rgb(path)
    assert pixels.shape == (5, 7, 3) and pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, expected)
    Image.fromarray(rgb).save(path.with_suffix(".png"))
    np.testing.assert_array_equal(read_rgb(path.with_suffix(".png")), rgb)
