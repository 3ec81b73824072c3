"""Checkpoints: safetensors weights, JSON metadata, and the training state beside them.

A checkpoint named ``last`` in a run folder is three files:

* ``last.safetensors``: the model's state dict (weights and batch-norm statistics);
* ``last.json``: what the weights are and how to feed them: the model name and the build
  options that rebuild it (``fcnseg.build_model(model, **build)``), class names, palette,
  input convention, the training configuration, iteration, metrics and git hash;
* ``last.state.pt``: what resuming needs besides the weights: the optimiser's state dict, the
  random generators' states and the best score so far, saved with ``torch.save`` and read
  back with ``weights_only=True`` (tensors, numbers and strings only, nothing unpickled).

Each file is written atomically (a temporary file in the same folder, fsync, ``os.replace``),
so a write killed midway leaves the previous version whole. The iteration is recorded in all
three, so that files from different saves are never mixed silently.
"""

from __future__ import annotations

import datetime
import functools
import io
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
from torch import nn

from fcnseg.data import DatasetInfo
from fcnseg.errors import FcnsegError
from fcnseg.io.convention import caffe_convention
from fcnseg.models import FCN, build_model

FORMAT = "fcnseg-checkpoint/1"


@dataclass(frozen=True)
class CheckpointFiles:
    """The three files of one checkpoint."""

    weights: Path
    metadata: Path
    state: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> CheckpointFiles:
        """The files of the checkpoint at ``path``: its ``.safetensors`` or ``.json`` file, or
        the folder and stem without a suffix (``run/last``)."""
        path = Path(path)
        if path.suffix in (".safetensors", ".json"):
            path = path.with_suffix("")
        return cls(
            path.with_name(path.name + ".safetensors"),
            path.with_name(path.name + ".json"),
            path.with_name(path.name + ".state.pt"),
        )


def atomic_write(path: Path, data: bytes) -> None:
    """Replaces ``path`` by ``data`` all at once: readers see the old file or the new one.

    The data goes to a temporary file in the same folder (so that the rename stays on one
    file system), is flushed to disk, then renamed over ``path``. If anything fails midway the
    temporary file is removed and ``path`` is left as it was.
    """
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


def model_metadata(
    model_name: str,
    num_classes: int,
    geometry: str,
    backbone: dict[str, Any],
    info: DatasetInfo,
) -> dict[str, Any]:
    """What any checkpoint of this model says about itself, before training adds its part."""
    return {
        "format": FORMAT,
        "model": model_name,
        "build": {"num_classes": num_classes, "geometry": geometry, **backbone},
        "dataset": info.name,
        "classes": list(info.class_names),
        "palette": [list(colour) for colour in info.palette],
        "ignore_index": info.ignore_index,
        # The datasets feed the net Caffe's way: BGR, 0-255, the dataset's mean subtracted.
        "input_convention": caffe_convention(tuple(info.mean_bgr[:3])).to_dict(),
        "mean_bgr": list(info.mean_bgr),
    }


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    metadata: dict[str, Any],
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Writes the checkpoint ``path`` (e.g. ``run/last``): state, then weights, then metadata.

    Args:
        path: the checkpoint's folder and stem.
        model: the net (not its DDP or compiled wrapper).
        metadata: :func:`model_metadata` plus the run's ``iteration``, ``config``, ``metrics``.
        training_state: what resuming needs (optimiser and generator states), or None.

    Returns:
        The weights file.
    """
    files = CheckpointFiles.of(path)
    iteration = int(metadata.get("iteration", 0))
    if training_state is not None:
        buffer = _torch_bytes({**training_state, "iteration": iteration})
        atomic_write(files.state, buffer)
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    header = {"format": FORMAT, "iteration": str(iteration)}
    atomic_write(files.weights, safetensors.torch.save(tensors, metadata=header))
    record = {**metadata, "git": git_hash(), "saved": _now()}
    atomic_write(files.metadata, (json.dumps(record, indent=2) + "\n").encode())
    return files.weights


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and metadata of the checkpoint at ``path``.

    Raises:
        FcnsegError: a file is missing or unreadable, or the weights and metadata come from
            different saves.
    """
    files = CheckpointFiles.of(path)
    metadata = read_metadata(files.metadata)
    if not files.weights.is_file():
        raise FcnsegError(f"{files.weights}: checkpoint weights not found")
    try:
        state = safetensors.torch.load_file(files.weights)
        with safetensors.safe_open(files.weights, "pt") as file:
            header = file.metadata() or {}
    except Exception as error:  # noqa: BLE001 - a damaged file fails in the reader's own way
        raise FcnsegError(f"{files.weights}: cannot read safetensors weights ({error})") from None
    saved = header.get("iteration")
    if saved is not None and int(saved) != int(metadata.get("iteration", 0)):
        raise FcnsegError(
            f"{files.weights}: weights of iteration {saved} but {files.metadata.name} describes "
            f"iteration {metadata.get('iteration')} (an interrupted save?)"
        )
    return state, metadata


def read_metadata(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON metadata, checked for the keys that rebuild its model."""
    if not path.is_file():
        raise FcnsegError(f"{path}: checkpoint metadata not found")
    try:
        metadata = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FcnsegError(f"{path}: cannot read checkpoint metadata ({error})") from None
    missing = [key for key in ("model", "build", "classes", "palette") if key not in metadata]
    if not isinstance(metadata, dict) or missing:
        raise FcnsegError(f"{path}: not fcnseg checkpoint metadata (missing {missing})")
    return metadata


def load_model(
    path: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    num_classes: int | None = None,
) -> tuple[FCN, dict[str, Any]]:
    """Rebuilds the checkpoint's model and loads its weights.

    Args:
        path: the checkpoint (see :meth:`CheckpointFiles.of`).
        model_name: if given, the model the checkpoint must be of.
        num_classes: if given, the class count it must have.

    Raises:
        FcnsegError: the checkpoint is of another model or class count, or its weights do
            not fit the model its metadata names.
    """
    state, metadata = load_checkpoint(path)
    files = CheckpointFiles.of(path)
    build = dict(metadata["build"])
    if model_name is not None and metadata["model"] != model_name:
        raise FcnsegError(
            f"{files.weights}: checkpoint of model '{metadata['model']}', expected '{model_name}'"
        )
    if num_classes is not None and build.get("num_classes") != num_classes:
        raise FcnsegError(
            f"{files.weights}: checkpoint for {build.get('num_classes')} classes, "
            f"expected {num_classes}"
        )
    model = build_model(metadata["model"], **build)
    load_state(model, state, files.weights)
    return model, metadata


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Loads a whole state dict, naming ``source`` in the error if it does not fit."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {missing[:3]}")
    if unexpected:
        problems.append(f"unexpected {unexpected[:3]}")
    if wrong:
        name = wrong[0]
        problems.append(
            f"{name} is {tuple(state[name].shape)}, the model's {tuple(expected[name].shape)}"
        )
    if problems:
        raise FcnsegError(f"{source}: weights do not fit the model ({'; '.join(problems)})")
    model.load_state_dict(state)


def load_training_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The optimiser and generator states saved beside a checkpoint's weights."""
    files = CheckpointFiles.of(path)
    if not files.state.is_file():
        raise FcnsegError(f"{files.state}: training state not found; cannot resume")
    try:
        return torch.load(files.state, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch.load fails in many ways on a bad file
        raise FcnsegError(f"{files.state}: cannot read training state ({error})") from None


@functools.cache
def git_hash() -> str | None:
    """The commit of the code that is running, or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
