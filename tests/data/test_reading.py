"""The readers' shared checks (fcnseg.data._reading): the messages a user reads, to the letter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from fcnseg.data._reading import read_mat, read_split
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
