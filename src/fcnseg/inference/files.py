"""Which image files a command line names, and where their outputs go, safely.

``fcnseg predict`` takes files, folders (searched recursively for image files) and glob
patterns (``'photos/**/*.jpg'``, for shells that do not expand them). Its outputs follow one
rule, :func:`plan_outputs`:

- **Mirroring.** Each input's output name is its path relative to the deepest folder all
  inputs share (a folder argument counts as that folder, a file as its own folder), without
  the extension: ``a/x.png b/x.png --out o`` gives ``o/a/x.png`` and ``o/b/x.png``;
  ``photos/`` gives ``o/<subfolders>/<stem>.png``; files of one folder give ``o/<stem>.png``.
  Every input found counts, one that then cannot be read too, so that the names depend on
  the command line alone: a rerun after fixing that file writes the others' outputs again
  under the same names.
- **Same stems.** Inputs that would still share an output (``x.png`` and ``x.jpg`` in one
  folder) keep their extension in it: ``o/x.png.png``, ``o/x.jpg.png`` (and the same for every
  output of theirs, ``x.jpg_overlay.png``).
- **Never over an input.** An output that would be an input file, or would be written into
  a folder that holds an input image, is refused before anything is written: the images'
  own folders are never written. An ``--out`` inside a searched folder is fine; it is left
  out of the search, and so is any PNG an earlier ``fcnseg predict`` wrote (they carry a
  mark, :func:`fcnseg.inference.outputs.is_prediction`), wherever it lies; an ``--out``
  so left out that holds an image of the user's is refused.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from fcnseg.errors import FcnsegError
from fcnseg.inference.outputs import is_prediction

# Extensions taken from folders (lower case); PIL reads all of them.
IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".gif",
    ".ppm",
    ".pgm",
    ".pbm",
    ".pnm",
)
_GLOB_MAGIC = set("*?[")


@dataclass(frozen=True)
class ImageInput:
    """One image file to segment.

    Attributes:
        path: the file, as named on the command line or found in a folder.
        base: the folder its output name is relative to (the folder argument it was found
            in, the pattern's fixed part, or the file's own folder).
    """

    path: Path
    base: Path


@dataclass
class Gathered:
    """What :func:`gather_images` found.

    Attributes:
        images: the image files, in argument order (each folder's sorted), each once.
        problems: one line per argument that named nothing usable (no such file, a pattern
            matching nothing, a folder without images); these are errors.
        skipped: one line per file in a searched folder that is not an image (by its
            extension), or link not followed; these are notes, not errors.
        earlier_outputs: PNGs an earlier ``fcnseg predict`` wrote, found and left out.
        inside_out: image files a folder or pattern reaches inside the output folder that
            no ``fcnseg predict`` wrote: the user's own, left out of the search, so the
            outputs would go beside them (:func:`refuse_images_inside_out` refuses that).
    """

    images: list[ImageInput] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    earlier_outputs: list[Path] = field(default_factory=list)
    inside_out: list[Path] = field(default_factory=list)


def gather_images(
    specs: Iterable[str | os.PathLike[str]], *, exclude: Path | None = None
) -> Gathered:
    """The image files ``specs`` name: files as they are, folders searched recursively for
    files with an image extension (:data:`IMAGE_SUFFIXES`; hidden files and folders
    left out), glob patterns expanded (``**`` crosses folders). Nothing under ``exclude``
    (the output folder) is taken from a folder or a pattern; a file named on its own is.

    Never raises for a bad argument: it is reported in ``problems`` and the others are kept.
    """
    found = Gathered()
    excluded = _absolute(exclude) if exclude is not None else None
    seen: set[Path] = set()

    def add(path: Path, base: Path) -> None:
        key = _absolute(path).resolve()
        if key not in seen:
            seen.add(key)
            found.images.append(ImageInput(path, base))

    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            _search(path, path, excluded, add, found)
        elif path.exists():
            add(path, path.parent)
        elif _GLOB_MAGIC & set(str(spec)):
            matches = sorted(glob.glob(str(spec), recursive=True))
            if not matches:
                found.problems.append(f"{spec}: no files match")
            base = _fixed_part(str(spec))
            for match in map(Path, matches):
                if excluded is not None and _absolute(match).is_relative_to(excluded):
                    if _users_image(match):
                        found.inside_out.append(match)
                    continue  # the outputs of an earlier run
                if is_prediction(match):
                    found.earlier_outputs.append(match)
                    continue
                if match.is_dir():
                    _search(match, match, excluded, add, found)
                else:
                    add(match, base)
        else:
            found.problems.append(f"{spec}: no such file or folder")
    return found


def plan_outputs(
    images: Sequence[ImageInput], out: Path, kinds: Mapping[str, str]
) -> list[dict[str, Path]]:
    """Where each image's outputs go (the rule of the module).

    Args:
        images: the inputs.
        out: the output folder.
        kinds: output kind to the ending added to the image's output name, e.g.
            ``{"label": ".png", "overlay": "_overlay.png"}``.

    Returns:
        For each image, kind to output path.

    Raises:
        FcnsegError: ``out`` is a file; an output would overwrite an input or be written into
            an input image's folder; two outputs would still be one file.
    """
    if out.exists() and not out.is_dir():
        raise FcnsegError(f"--out {out}: a file; give a folder for the outputs")
    if not images:
        return []
    common = Path(os.path.commonpath([_absolute(image.base) for image in images]))
    relative = [_absolute(image.path).relative_to(common) for image in images]
    names = [path.with_name(_stem(path)) for path in relative]
    clashes = _clashing(names, kinds)
    names = [relative[i] if i in clashes else name for i, name in enumerate(names)]
    plans = [{kind: out / f"{name}{ending}" for kind, ending in kinds.items()} for name in names]
    owners: dict[Path, int] = {}
    for index, plan in enumerate(plans):
        for path in plan.values():
            other = owners.setdefault(_absolute(path), index)
            if other != index:
                raise FcnsegError(
                    f"{images[other].path} and {images[index].path} would both write {path}; "
                    "rename one of them"
                )
    _refuse_inputs(images, plans, out)
    return plans


def _search(
    folder: Path,
    base: Path,
    excluded: Path | None,
    add: Callable[[Path, Path], None],
    found: Gathered,
) -> None:
    images = 0
    # Linked folders are followed, each real folder once, but not a link back up to the
    # searched folder or above it (which would search all of that).
    top = Path(os.path.realpath(folder))
    visited = {top}
    skip = None if excluded is None else Path(os.path.realpath(excluded))
    for root, folders, files in os.walk(folder, followlinks=True):
        here = Path(root)
        kept = []
        for name in sorted(folders):
            real = Path(os.path.realpath(here / name))
            if name.startswith(".") or real in visited:
                continue
            if real == skip:  # the output folder: earlier outputs, or images of the user's
                found.inside_out.extend(_users_images(here / name))
                continue
            if top.is_relative_to(real):
                found.skipped.append(f"{here / name}: a link to a folder above, not searched")
                continue
            visited.add(real)
            kept.append(name)
        folders[:] = kept
        for name in sorted(files):
            path = here / name
            if name.startswith("."):
                continue
            if path.suffix.lower() in IMAGE_SUFFIXES:
                images += 1
                if is_prediction(path):
                    found.earlier_outputs.append(path)
                else:
                    add(path, base)
            else:
                found.skipped.append(f"{path}: not an image file ({path.suffix or 'no extension'})")
    if images == 0:
        found.problems.append(
            f"{folder}: no image files in it ({', '.join(IMAGE_SUFFIXES)}, in any subfolder)"
        )


def refuse_images_inside_out(found: Gathered, out: Path) -> None:
    """Refuses a search that reaches images of the user's inside the output folder.

    ``fcnseg predict photos --out photos/labels`` leaves ``photos/labels`` out of the search,
    which is right for the outputs of an earlier run; an image of the user's there would be
    neither segmented nor named, and the outputs would be written beside it.

    Raises:
        FcnsegError: ``found.inside_out`` is not empty (nothing has been written).
    """
    if found.inside_out:
        count, first = len(found.inside_out), found.inside_out[0]
        more = f" and {count - 1} more image{'s' if count > 2 else ''}" if count > 1 else ""
        raise FcnsegError(
            f"--out {out} holds {first}{more} of yours, among the images the arguments "
            "search; nothing written; the images' own folders are never written: give an "
            "--out that holds none of them, or move them out of it"
        )


def _users_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not is_prediction(path)


def _users_images(folder: Path) -> list[Path]:
    """The image files under ``folder`` that no ``fcnseg predict`` wrote."""
    found = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and _users_image(Path(root) / name):
                found.append(Path(root) / name)
    return found


def _clashing(names: list[PurePath], kinds: Mapping[str, str]) -> set[int]:
    owners: dict[PurePath, int] = {}
    clashes: set[int] = set()
    for index, name in enumerate(names):
        for ending in kinds.values():
            path = name.with_name(f"{name.name}{ending}")
            other = owners.setdefault(path, index)
            if other != index:
                clashes.update((other, index))
    return clashes


def _refuse_inputs(images: Sequence[ImageInput], plans: list[dict[str, Path]], out: Path) -> None:
    inputs = {_absolute(image.path).resolve(): image.path for image in images}
    folders = {key.parent: path for key, path in inputs.items()}
    for image, plan in zip(images, plans, strict=True):
        own = _absolute(image.path).resolve()
        for path in plan.values():
            key = _absolute(path).resolve()
            if key in inputs:
                raise FcnsegError(
                    f"--out {out} would overwrite the input {inputs[key]} with its labels; "
                    "nothing written; give another --out (default ./predictions)"
                )
            if key.parent in folders:
                # name the image whose output it is where it shares that folder
                beside = image.path if own.parent == key.parent else folders[key.parent]
                raise FcnsegError(
                    f"--out {out} would write {path} into the folder of the input "
                    f"{beside}; nothing written; the images' own folders are "
                    "never written: give another --out (default ./predictions)"
                )


def _stem(path: PurePath) -> str:
    return path.stem if path.suffix else path.name


def _fixed_part(pattern: str) -> Path:
    # The folder a glob pattern starts from: its parts before the first one with magic.
    parts = []
    for part in Path(pattern).parts[:-1]:
        if _GLOB_MAGIC & set(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))
