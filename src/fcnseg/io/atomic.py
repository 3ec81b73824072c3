"""Writing a file all at once: readers see the old version or the new one, never half."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that wants a file name (ONNX,
    TorchScript); when the block ends without an error, the file written there replaces
    ``path`` all at once, as :func:`atomic_write` does. On an error it is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        with open(temporary, "rb+") as file:  # on disk before the rename makes it the file
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Replaces ``path`` by ``data`` all at once.

    The data goes to a temporary file in the same folder (so that the rename stays on one
    file system), is flushed to disk, then renamed over ``path`` (:func:`atomic_path`). If
    anything fails midway the temporary file is removed and ``path`` is left as it was.
    """
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        _write(file, data)


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Removes the temporary files of :func:`atomic_write` calls that were killed midway
    (``kill -9``, a power cut) in ``folder``: those whose process is no longer alive.

    Returns:
        The files removed.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for temporary in folder.glob(".*.tmp"):
        pid = temporary.name[: -len(".tmp")].rpartition(".")[2]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        temporary.unlink(missing_ok=True)
        removed.append(temporary)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _write(file: Any, data: bytes) -> None:
    file.write(data)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
