"""Where a command will write, checked before it does any work.

A command that scores 500 images and then finds it cannot write its result has wasted the
user's time and, worse, ends in a traceback. Every command's output path is checked first
(a file written where it will write, and removed): refused in one line naming the path and
the problem.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from fcnseg.errors import FcnsegError


def check_output_folder(path: str | Path, flag: str = "--out") -> Path:
    """``path`` as a folder the command can write into (it may not exist yet).

    Raises:
        FcnsegError: ``path`` is a file, something on the way to it is a file, or the folder
            cannot be written in.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FcnsegError(f"{flag} {path}: a file; give a folder")
    problem = _folder_problem(path)
    if problem:
        raise FcnsegError(f"{flag} {path}: {problem}")
    return path


def check_output_file(path: str | Path, flag: str = "--out", example: str | None = None) -> Path:
    """``path`` as a file the command can write (replacing it if it is a file already; its
    folder may not exist yet).

    Args:
        path: the file.
        flag: the option that named it, for the message.
        example: a file name to suggest when ``path`` is a folder.

    Raises:
        FcnsegError: ``path`` is a folder, something on the way to it is a file, or its
            folder cannot be written in.
    """
    path = Path(path)
    if path.is_dir():
        suggestion = f" (e.g. {path / example})" if example else ""
        raise FcnsegError(f"{flag} {path}: a folder; give a file name{suggestion}")
    problem = _folder_problem(path.parent)
    if problem:
        raise FcnsegError(f"{flag} {path}: {problem}")
    return path


def _folder_problem(folder: Path) -> str | None:
    """Why files cannot be written in ``folder``, or None. A file is made and removed in the
    folder, or in the nearest folder above it that exists (where the command would make it):
    the one test that holds for every cause (permissions, which root ignores; read-only or
    special file systems; a full disk). Nothing is left behind."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        return f"cannot write in {existing} ({error.strerror or error})"
    return None
