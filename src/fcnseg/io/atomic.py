"""Writing a file all at once: readers see the old version or the new one, never half."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Replaces ``path`` by ``data`` all at once.

    The data goes to a temporary file in the same folder (so that the rename stays on one
    file system), is flushed to disk, then renamed over ``path``. If anything fails midway the
    temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            _write(file, data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


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
