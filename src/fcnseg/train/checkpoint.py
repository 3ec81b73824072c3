"""Checkpoints: fcnseg's weight file plus the training state beside it, saved and restored.

A checkpoint named ``last`` in a run folder is two files:

* ``last.safetensors``: the model's state dict (weights and batch-norm statistics) with its
  :class:`~fcnseg.io.weights.ModelMeta` in the header (the training configuration, iteration
  and held-out metrics included): the same format as every weight file fcnseg writes, so
  ``fcnseg.load_model("run/last")`` rebuilds it;
* ``last.state.pt``: what resuming needs besides the weights: the optimiser's and the
  gradient scaler's state dicts and the best score so far, saved with ``torch.save`` and read
  back with ``weights_only=True`` (tensors, numbers and strings only, nothing unpickled).

No random generator state is saved: every random draw of a run is seeded by the run's seed
and the draw's place in it (the epoch's permutation, each image's augmentation, each forward
pass's dropout and loss sampling; :mod:`fcnseg.train.batches`), so a resumed run continues
exactly without it, on any number of processes.

Each file is written atomically (:func:`fcnseg.io.atomic.atomic_write`), state first, so a
write killed midway leaves the previous checkpoint whole. The iteration is recorded in both,
so that files from different saves are never mixed silently. Until the new weights are in
place, the previous state stays beside them as ``.last.state.pt.previous`` (a hard link, no
copy): a process killed between the two writes (``kill -9``, a power cut) leaves new state
beside old weights, and :func:`restore` then takes the previous state, whose iteration is the
weights'. A write that fails (a full disk) puts the previous state back at once.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fcnseg.convention import InputConvention
from fcnseg.data import DatasetInfo
from fcnseg.errors import FcnsegError
from fcnseg.io.atomic import atomic_write
from fcnseg.io.weights import (
    STATE_SUFFIX,
    ModelMeta,
    load_state_dict,
    read_weights,
    save_weights,
)
from fcnseg.train import distributed
from fcnseg.train.recipes import TrainConfig


class CheckpointWriteError(FcnsegError):
    """A checkpoint could not be written (a full disk, say); the previous one is as it was."""


@dataclass(frozen=True)
class CheckpointFiles:
    """The files of one checkpoint."""

    weights: Path
    state: Path

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> CheckpointFiles:
        """The files of the checkpoint at ``path``: its ``.safetensors`` file, or the folder
        and stem without a suffix (``run/last``)."""
        path = Path(path)
        if path.suffix in (".safetensors", ".json"):
            path = path.with_suffix("")
        return cls(
            path.with_name(path.name + ".safetensors"), path.with_name(path.name + STATE_SUFFIX)
        )

    @property
    def previous_state(self) -> Path:
        """The previous state, kept while a save replaces the pair (see the module)."""
        return self.state.with_name(f".{self.state.name}.previous")

    def exists(self) -> bool:
        """Whether the weights were saved."""
        return self.weights.is_file()


@dataclass
class TrainState:
    """Where a run is: the steps done and the best evaluation so far."""

    iteration: int = 0
    best_mean_iu: float = float("-inf")
    best_iteration: int = 0


def training_meta(
    config: TrainConfig,
    info: DatasetInfo,
    convention: InputConvention,
    head_classes: Mapping[str, Sequence[str]],
) -> ModelMeta:
    """The record every checkpoint of a run starts from; saving adds iteration and metrics.

    Args:
        config: the run.
        info: the training dataset's classes, palette and void label.
        convention: the input convention the run feeds the net (its starting weights').
        head_classes: class names of the heads after the first (SIFT Flow's ``geo``).
    """
    return ModelMeta(
        model=config.model,
        build={"num_classes": info.num_classes, "geometry": config.geometry, **config.backbone},
        classes=tuple(info.class_names),
        palette=tuple(info.palette),
        input_convention=convention,
        init="trained",
        dataset=info.name,
        ignore_index=info.ignore_index,
        head_classes={k: tuple(v) for k, v in head_classes.items()},
        config=config.to_dict(),
    )


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    meta: ModelMeta,
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Writes the checkpoint ``path`` (e.g. ``run/last``): the state, then the weights.

    Args:
        path: the checkpoint's folder and stem.
        model: the net (not its DDP or compiled wrapper).
        meta: the record, with the run's ``iteration`` and ``metrics``.
        training_state: what resuming needs (optimiser and generator states), or None.

    Returns:
        The weights file.

    Raises:
        CheckpointWriteError: a file cannot be written; the checkpoint that was there before
            is left as it was.
    """
    files = CheckpointFiles.of(path)
    if training_state is None:
        return _save_weights(files.weights, model, meta)
    buffer = io.BytesIO()
    torch.save({**training_state, "iteration": int(meta.iteration or 0)}, buffer)
    kept = _keep_previous_state(files)
    try:
        atomic_write(files.state, buffer.getvalue())
    except OSError as error:
        _put_back_previous_state(files)  # the state file is as it was
        raise CheckpointWriteError(
            f"{files.state}: cannot write: {error.strerror or error}"
        ) from None
    try:
        written = _save_weights(files.weights, model, meta)
    except BaseException:
        if kept:  # the old weights stay: so does their state
            os.replace(files.previous_state, files.state)
        raise
    files.previous_state.unlink(missing_ok=True)
    return written


def _save_weights(path: Path, model: nn.Module, meta: ModelMeta) -> Path:
    try:
        return save_weights(path, model.state_dict(), meta)
    except FcnsegError as error:  # it fails only to write
        raise CheckpointWriteError(str(error)) from None


def _keep_previous_state(files: CheckpointFiles) -> bool:
    """Links the current state to ``files.previous_state`` (replacing a stale one); False
    when there is no current state."""
    files.previous_state.unlink(missing_ok=True)
    if not files.state.is_file():
        return False
    try:
        os.link(files.state, files.previous_state)
    except OSError:  # a file system without hard links: a rename keeps it as well
        os.replace(files.state, files.previous_state)
    return True


def _put_back_previous_state(files: CheckpointFiles) -> None:
    if files.previous_state.is_file() and not files.state.is_file():
        os.replace(files.previous_state, files.state)
    files.previous_state.unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], ModelMeta]:
    """The state dict and record of the checkpoint at ``path``.

    Raises:
        FcnsegError: a file is missing or unreadable.
    """
    files = CheckpointFiles.of(path)
    if not files.weights.is_file():
        raise FcnsegError(f"{files.weights}: checkpoint weights not found")
    return read_weights(files.weights)


def load_training_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The optimiser and generator states saved beside a checkpoint's weights."""
    files = CheckpointFiles.of(path)
    if not files.state.is_file():
        raise FcnsegError(f"{files.state}: training state not found; cannot resume")
    return _read_state(files.state)


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch.load fails in many ways on a bad file
        raise FcnsegError(f"{path}: cannot read training state ({error})") from None


def save_run(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    scaler: torch.amp.GradScaler | None,
    meta: ModelMeta,
    state: TrainState,
    record: dict[str, Any] | None,
    context: distributed.Context,
) -> None:
    """Writes one checkpoint from the main process (a checkpoint without an optimiser,
    ``best``, holds no training state)."""
    training_state = None
    if optimizer is not None and scaler is not None:
        training_state = {
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "best_mean_iu": state.best_mean_iu,
            "best_iteration": state.best_iteration,
        }
    if context.is_main:
        save_checkpoint(
            path, model, meta.replace(iteration=state.iteration, metrics=record), training_state
        )
    distributed.barrier(context)


def restore(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> tuple[TrainState, ModelMeta]:
    """Loads the checkpoint ``path`` into the model and optimiser; returns where it was and
    its record (whose ``config`` the caller checks against the resumed run's)."""
    files = CheckpointFiles.of(path)
    if not files.exists():
        raise FcnsegError(f"{path.parent}: no checkpoint to resume ({files.weights.name} missing)")
    state_dict, meta = load_checkpoint(path)
    load_state_dict(model, state_dict, files.weights)
    if files.previous_state.is_file():
        # a save killed between its two writes: the weights may be the previous save's
        previous = _read_state(files.previous_state)
        if previous["iteration"] == meta.iteration:
            files.state.unlink(missing_ok=True)
            os.replace(files.previous_state, files.state)
    training = load_training_state(path)
    if training["iteration"] != meta.iteration:
        raise FcnsegError(
            f"{files.state}: training state of iteration {training['iteration']}, weights of "
            f"iteration {meta.iteration} (an interrupted save?)"
        )
    optimizer.load_state_dict(training["optimizer"])
    scaler.load_state_dict(training["scaler"])
    state = TrainState(
        int(meta.iteration or 0), training["best_mean_iu"], training["best_iteration"]
    )
    return state, meta
