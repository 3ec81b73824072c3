"""atomic_write and atomic_path: new folders, the error a user sees when the file cannot even
be made, and an earlier file kept whole when a writer fails."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from fcnseg.io import atomic as atomic_module
from fcnseg.io.atomic import atomic_path, atomic_write


def test_the_folders_are_made(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "a" / "b" / "last.state.pt"
    atomic_write(path, b"one")
    assert path.read_bytes() == b"one"
    atomic_write(path, b"two")  # the folder is there now: replaced whole
    assert path.read_bytes() == b"two"
    assert [p.name for p in path.parent.iterdir()] == ["last.state.pt"]


def test_a_temporary_file_that_could_not_be_made_leaves_the_first_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk is full before the temporary file exists: the user reads that, not an error
    of the clean-up about a file that was never there."""

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_module, "open", full, raising=False)
    with pytest.raises(OSError) as error:
        atomic_write(tmp_path / "last.state.pt", b"data")
    assert error.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_only_when_the_writer_finished(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"earlier export")
    with pytest.raises(RuntimeError), atomic_path(path) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("the exporter failed midway")
    assert path.read_bytes() == b"earlier export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    with atomic_path(tmp_path / "new" / "model.onnx") as temporary:
        assert temporary.parent == tmp_path / "new" and temporary != path
        temporary.write_bytes(b"whole")
    assert (tmp_path / "new" / "model.onnx").read_bytes() == b"whole"
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["model.onnx"]
