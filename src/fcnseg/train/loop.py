"""The training loop: steps, evaluations, checkpoints, as the reference's ``solve.py`` runs
``solver.step(4000)`` then ``score.seg_tests`` in turn.

:func:`fit` sets a run up and alternates :func:`train_steps` with :func:`fcnseg.evaluate.evaluate`
and :func:`fcnseg.train.checkpoint.save_checkpoint`; :func:`train_step` is one optimiser step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from fcnseg.data import collate_pad
from fcnseg.errors import FcnsegError
from fcnseg.evaluation import evaluate, head_class_names, metrics_record
from fcnseg.inference.optimize import fast_training_model
from fcnseg.io.atomic import atomic_write, remove_stale_temporaries
from fcnseg.io.weights import ModelMeta, load_model
from fcnseg.models import FCN, build_model, init_from_coarser
from fcnseg.models.geometry import Geometry
from fcnseg.runtime import amp_dtype as resolve_amp_dtype
from fcnseg.runtime import autocast
from fcnseg.train import distributed
from fcnseg.train.batches import Unreadable, UnreadableImageError, derive_seed, training_loader
from fcnseg.train.budget import check_sizes
from fcnseg.train.checkpoint import (
    CheckpointFiles,
    CheckpointWriteError,
    TrainState,
    load_checkpoint,
    restore,
    save_run,
    training_meta,
)
from fcnseg.train.data import build_datasets, check_data, class_weights_for
from fcnseg.train.log import RunLog
from fcnseg.train.loss import Ohem, loss_sampling_mask, pixel_loss
from fcnseg.train.optim import build_optimizer, learning_rate, set_learning_rate
from fcnseg.train.recipes import (
    TrainConfig,
    absolute_paths,
    check_start,
    staged_configs,
    trajectory_changes,
)

# A stop condition: called after every step with the steps done; True stops the run there.
# Its ``description`` attribute, if it has one, names it in the line the run prints.
StopCondition = Callable[[int], bool]
# A forward pass: images, labels, the seed of its random draws, the bad files it skipped.
Pass = tuple[torch.Tensor, torch.Tensor, int, tuple[str, ...]]


class DivergedError(FcnsegError):
    """The loss became NaN or infinite, or the step overflowed; the run stopped before
    applying that step."""


@dataclass
class FitResult:
    """What :func:`fit` leaves: the trained net, its last evaluation, the steps done, and
    whether a stop condition ended the run before ``max_iter``."""

    model: FCN
    metrics: dict[str, Any] | None
    iteration: int
    stopped: bool = False


def time_budget(seconds: float) -> StopCondition:
    """A stop condition for :func:`fit`: true once ``seconds`` have passed since it was made
    (wall clock), so that one budget can span several runs (the stages of a staged run)."""
    deadline = time.monotonic() + seconds

    def out_of_time(iteration: int) -> bool:
        return time.monotonic() >= deadline

    out_of_time.description = f"the time budget of {seconds / 60:g} min"  # type: ignore[attr-defined]
    return out_of_time


@dataclass(frozen=True)
class StepSettings:
    """What a training step needs to know besides the net and the data.

    ``loss_sampling`` is the probability of keeping a final-layer cell's loss, or None for
    whole-image training; ``ohem`` the hard example mining of pixels, or None for none.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    normalize: str
    class_weights: torch.Tensor | None
    loss_sampling: float | None
    score_geometry: Geometry
    ignore_index: int
    distributed: bool
    ohem: Ohem | None = None


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    passes: list[tuple[torch.Tensor, torch.Tensor, int]],
    settings: StepSettings,
    context: distributed.Context,
    interrupt: Interrupt | None = None,
) -> tuple[float, bool]:
    """One optimiser step over the gradients of several forward passes.

    Each pass is ``(images, labels, seed)``: the seed is set before the pass so that its
    dropout and loss-sampling draws are the pass's own. Each pass's loss is divided by the
    number of passes, as Caffe's ``iter_size`` divides it, and DDP averages over processes, so
    the step follows the mean loss of all passes of all processes.

    Returns:
        The mean loss over all passes and processes, and whether any process has had a
        Ctrl-C (``interrupt``) by the end of the step.

    Raises:
        DivergedError: the loss is NaN or infinite; the weights are left unchanged.
    """
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, (images, labels, seed) in enumerate(passes):
        torch.manual_seed(seed)
        images = images.to(settings.device, non_blocking=True)
        labels = labels.to(settings.device, non_blocking=True)
        last = i == len(passes) - 1
        # DDP averages gradients on the last pass only; the others just accumulate.
        sync = contextlib.nullcontext() if last or not settings.distributed else net.no_sync()
        with sync:
            with autocast(settings.device, settings.amp_dtype):
                scores = net(images)  # N×K×H×W, or a dict of them with N×T×H×W labels
            keep = None
            if settings.loss_sampling is not None:
                keep = loss_sampling_mask(labels, settings.loss_sampling, settings.score_geometry)
            loss = pixel_loss(
                scores,
                labels,
                normalize=settings.normalize,
                class_weights=settings.class_weights,
                keep=keep,
                ignore_index=settings.ignore_index,
                ohem=settings.ohem,
            ) / len(passes)
            scaler.scale(loss).backward()
        total += float(loss.detach())
    stats = distributed.all_reduce_sum(
        torch.tensor([total, interrupt is not None and interrupt.requested], dtype=torch.float64),
        context,
    )
    mean_loss = float(stats[0]) / context.world_size
    if not math.isfinite(mean_loss):
        optimizer.zero_grad(set_to_none=True)
        # most often a learning rate too large for the net: the line says which was used
        lr = optimizer.param_groups[0]["lr"]
        raise DivergedError(f"loss is {mean_loss} (lr {lr:g})")
    try:
        scaler.step(optimizer)
    except RuntimeError as error:
        # a learning rate near float32's range (1e38) overflows the update itself, in
        # torch's optimiser code, before any loss can turn NaN
        if "overflow" not in str(error):
            raise
        optimizer.zero_grad(set_to_none=True)
        raise DivergedError(
            f"the optimiser's update overflowed float32 (lr {optimizer.param_groups[0]['lr']:g})"
        ) from None
    scaler.update()
    return mean_loss, bool(stats[1] > 0)


def train_steps(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    passes: Iterator[Pass],
    config: TrainConfig,
    settings: StepSettings,
    context: distributed.Context,
    state: TrainState,
    num_steps: int,
    log: RunLog,
    interrupt: Interrupt,
    stop: StopCondition | None = None,
) -> bool:
    """Trains ``num_steps`` steps (the reference's ``solver.step(n)``).

    ``stop`` is asked after every step (with the steps done); under DDP the processes stop
    together when any of them says so.

    Returns:
        False if a Ctrl-C or ``stop`` ended it early (after a whole step), True otherwise.
    """
    images_per_step = config.batch_size * config.accumulation * context.world_size
    for _ in range(num_steps):
        start = time.perf_counter()
        lr = learning_rate(
            config.lr, config.lr_policy, state.iteration, config.max_iter, config.poly_power
        )
        set_learning_rate(optimizer, lr)
        step_passes = _next_passes(passes, config.accumulation, context)
        for *_, skipped in step_passes:
            for message in skipped:
                log.skipped(message, state.iteration + 1)
        try:
            loss, interrupted = train_step(
                net,
                optimizer,
                scaler,
                [(images, labels, seed) for images, labels, seed, _ in step_passes],
                settings,
                context,
                interrupt,
            )
        except DivergedError as error:
            raise DivergedError(f"{error} at iteration {state.iteration + 1}") from None
        state.iteration += 1
        log.step(state.iteration, loss, lr, images_per_step / (time.perf_counter() - start))
        if interrupted or _stop_requested(stop, state.iteration, context):
            return False
    return True


def _next_passes(passes: Iterator[Pass], count: int, context: distributed.Context) -> list[Pass]:
    """The next step's passes; under DDP every process stops when any meets a bad file."""
    taken: list[Pass] = []
    failure = None
    try:
        taken = [next(passes) for _ in range(count)]
    except UnreadableImageError as error:
        failure = str(error)
    failure = distributed.first_failure(failure, context)
    if failure is not None:
        raise UnreadableImageError(failure)
    return taken


def _stop_requested(
    stop: StopCondition | None, iteration: int, context: distributed.Context
) -> bool:
    if stop is None:
        return False
    wanted = torch.tensor([float(bool(stop(iteration)))], dtype=torch.float64)
    return bool(distributed.all_reduce_sum(wanted, context)[0] > 0)


class Interrupt:
    """Set by the first Ctrl-C; the loop stops after the step in progress and saves."""

    requested = False


@contextlib.contextmanager
def stop_on_interrupt() -> Iterator[Interrupt]:
    """Turns the first Ctrl-C into a request to stop cleanly; a second one stops at once."""
    interrupt = Interrupt()
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return

    def request(signum: int, frame: Any) -> None:
        if interrupt.requested:
            raise KeyboardInterrupt
        interrupt.requested = True

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)


def fit(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    train_set: Dataset | None = None,
    val_set: Dataset | None = None,
    progress: bool = True,
    stop: StopCondition | None = None,
    memory_budget: float | None = None,
    skip_bad_images: bool = False,
    stage: str | None = None,
) -> FitResult:
    """Trains a model as ``config`` says, evaluating and checkpointing into ``out_dir``.

    Every ``eval_every`` steps (and at the end) the model is scored on the held-out split and
    saved as ``last``, and as ``best`` when its mean IU is the best so far. Under ``torchrun``
    each process trains on its share of each step (see :mod:`fcnseg.train.distributed`).

    Before anything else is allocated, the run is checked: a recipe that fine-tunes
    pretrained weights needs ``init`` (:func:`fcnseg.train.recipes.check_start`), a crop must
    not exceed every training image, and a step must fit the memory budget
    (:func:`fcnseg.train.budget.check_sizes`). The saved configuration holds absolute data
    paths, so that the run resumes from any working directory.

    Args:
        config: the run.
        out_dir: the run folder: checkpoints, ``log.jsonl``, ``config.json``.
        resume: continue the run saved as ``out_dir/last`` exactly where it stopped; only the
            fields of :data:`fcnseg.train.recipes.RESUMABLE` (data folders, ``max_iter``,
            ``eval_every``, ``workers``, ``device``) may differ from the saved run's.
        train_set: the training images; by default ``config.dataset``'s ``train_split``.
        val_set: the held-out images; by default ``config.dataset``'s ``val_split``.
        progress: show a progress bar.
        stop: called after every step with the steps done; when it returns True the run is
            scored and saved as at its end, and stops (``FitResult.stopped``); see
            :func:`time_budget`.
        memory_budget: bytes a training step may take; None for what the device has free.
        skip_bad_images: a file that cannot be read is logged and skipped (training images
            are replaced by the next readable one, held-out images left out of the score;
            see :class:`fcnseg.train.batches.SeededSamples`); by default the run saves
            ``last`` and stops, naming the file.
        stage: which stage of a staged run this is (e.g. ``"stage 2 of 3"``): said when the
            run starts and shown on the progress bar.

    Faults: a run killed at any moment (``kill -9``, a power cut) resumes from ``last`` and
    repeats the uninterrupted run exactly, log included (:mod:`fcnseg.train.checkpoint`,
    :class:`fcnseg.train.log.RunLog`); a run killed before its first checkpoint starts over
    when resumed. A checkpoint that cannot be written (a full disk) stops the run, the
    previous checkpoint intact.

    Returns:
        The model, the last evaluation's :func:`fcnseg.evaluate.metrics_record` (None
        without a held-out set), the steps done and whether ``stop`` ended the run.

    Raises:
        FcnsegError: a refused start, size or resumed configuration (one line).
        DivergedError: the loss became NaN or infinite (``last`` keeps the last good step).
        UnreadableImageError: a file cannot be read (without ``skip_bad_images``), once
            ``last`` is saved.
        CheckpointWriteError: a checkpoint cannot be written; the previous one is intact.
        KeyboardInterrupt: after Ctrl-C, once ``last`` is saved.
    """
    out = Path(out_dir)
    starting_over = resume and not CheckpointFiles.of(out / "last").exists()
    if starting_over:
        resume = False  # killed before its first checkpoint: there is nothing to go on from
    if not resume:
        check_start(config)
    config = absolute_paths(config)
    context = distributed.setup(config.device)
    if train_set is None:
        train_set, val_set = build_datasets(config)
    info = train_set.info  # type: ignore[attr-defined]
    build = {"num_classes": info.num_classes, "geometry": config.geometry, **config.backbone}
    # The net's shapes first, on the meta device (no memory, no random draws): a step the
    # machine cannot hold is refused in one line before a weight is allocated (a VGG16 100
    # times wide was killed by the kernel while its weights were initialised).
    with torch.device("meta"):
        shapes = build_model(config.model, **build)
    try:
        check_data(shapes, train_set)
    except FcnsegError as error:
        raise FcnsegError(f"model '{config.model}', dataset '{config.dataset}': {error}") from None
    check_sizes(shapes, train_set, config, context.device, memory_budget)
    torch.manual_seed(derive_seed(config.seed, "weights"))  # same start in every process
    model = build_model(config.model, **build)
    # The run feeds the input convention of the weights it starts from (section 4.1: a
    # classifier's convention stays with its weights), else the dataset's own.
    convention = getattr(train_set, "convention", info.convention)
    if config.init and not resume:
        convention = initialize(model, config.init)
    model.to(context.device)
    optimizer = build_optimizer(
        model,
        name=config.optimizer,
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
    )
    amp_dtype = resolve_amp_dtype(config.amp, context.device)
    scaler = torch.amp.GradScaler(context.device.type, enabled=amp_dtype == torch.float16)
    state = TrainState()
    if context.is_main:
        remove_stale_temporaries(out)  # of writes killed midway
    distributed.barrier(context)
    pending_evaluation = False
    if resume:
        state, saved = restore(out / "last", model, optimizer, scaler)
        _check_resumed_config(out / "last", saved, config)
        convention = saved.input_convention
        # saved at an evaluation's step but not scored (stopped there by Ctrl-C or a bad
        # held-out file): score it now, as the uninterrupted run did
        pending_evaluation = (
            val_set is not None
            and saved.metrics is None
            and state.iteration > 0
            and (
                state.iteration == config.max_iter
                or (config.eval_every > 0 and state.iteration % config.eval_every == 0)
            )
        )
    elif CheckpointFiles.of(out / "last").exists():
        raise FcnsegError(f"{out}: already holds a run; resume it or choose another folder")
    for dataset in (train_set, val_set):
        if dataset is None:
            continue
        if not hasattr(dataset, "convention") and convention != dataset.info.convention:
            raise FcnsegError(
                f"{type(dataset).__name__} gives its images in its own convention, but the "
                f"weights expect {convention}; give the dataset a 'convention' attribute"
            )
        dataset.convention = convention  # type: ignore[attr-defined]
    meta = training_meta(config, info, convention, head_class_names(train_set))
    if context.is_main:
        write_config(out / "config.json", config)

    net: nn.Module = model
    if config.fast_training and context.device.type == "cpu":
        # the same function and gradients (to fp32 rounding) with fewer FLOPs and a faster fc6
        # weight gradient (issue 13); it shares the model's parameters, so the optimizer,
        # checkpoints and evaluation keep using ``model``
        net = fast_training_model(model).train()
    if context.distributed:
        ids = [context.device.index] if context.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    if config.compile:
        net = torch.compile(net)
    settings = StepSettings(
        context.device,
        amp_dtype,
        config.loss_normalize,
        class_weights_for(config, train_set, info),
        config.loss_sampling if config.loss_sampling < 1 else None,
        model.coarse_geometry,
        info.ignore_index,
        context.distributed,
        None if config.ohem_thresh is None else Ohem(config.ohem_thresh, config.ohem_min_kept),
    )
    passes = _passes(
        train_set, config, context, state.iteration, info.ignore_index, skip_bad_images
    )
    log = RunLog(
        out,
        start=state.iteration,
        total=config.max_iter,
        enabled=context.is_main,
        progress=progress,
        label=stage or "train",
        held_out=config.val_split or "",
    )
    if stage is not None:
        start = f"from {config.init}" if config.init else "from random weights"
        if resume:
            start = f"resumed at iteration {state.iteration}"
        log.message(f"{stage}: {config.model}, {config.max_iter} steps, {start}; in {out}")
    if starting_over:
        log.message(f"{out}: no checkpoint saved yet; the run starts over")
    record = None
    stopped = False
    try:
        with stop_on_interrupt() as interrupt:
            if pending_evaluation:
                record = evaluate_held_out(model, val_set, context, skip_bad_images, log)
                log.evaluation(state.iteration, record)
                with _saving(out, state.iteration):
                    checkpoint(out, model, optimizer, scaler, meta, state, record, context)
            while state.iteration < config.max_iter and not stopped:
                steps = steps_to_evaluation(config, state.iteration)
                finished = train_steps(
                    net,
                    optimizer,
                    scaler,
                    passes,
                    config,
                    settings,
                    context,
                    state,
                    steps,
                    log,
                    interrupt,
                    stop,
                )
                if not finished and interrupt.requested:
                    with _saving(out, state.iteration):
                        save_run(out / "last", model, optimizer, scaler, meta, state, None, context)
                    log.message(f"interrupted at iteration {state.iteration}; saved {out / 'last'}")
                    raise KeyboardInterrupt
                if not finished:
                    stopped = state.iteration < config.max_iter
                if stopped:  # a condition met on the last step stops nothing
                    log.message(
                        f"stopped at iteration {state.iteration} of {config.max_iter} by "
                        f"{_condition(stop)}; resume to go on"
                    )
                record = None
                if val_set is not None:
                    record = evaluate_held_out(model, val_set, context, skip_bad_images, log)
                    log.evaluation(state.iteration, record)
                with _saving(out, state.iteration):
                    checkpoint(out, model, optimizer, scaler, meta, state, record, context)
    except UnreadableImageError as error:
        # the steps done are whole (a step's files are read before it starts): keep them
        with _saving(out, state.iteration):
            save_run(out / "last", model, optimizer, scaler, meta, state, None, context)
        raise UnreadableImageError(
            f"{error}; stopped at iteration {state.iteration}, saved {out / 'last'}: replace "
            "the file and --resume, or --resume with --skip-bad-images"
        ) from None
    except DivergedError as error:
        last = CheckpointFiles.of(out / "last")
        kept = "no checkpoint saved yet"
        if last.exists():
            kept = f"last good checkpoint: {last.weights}"
        raise DivergedError(f"{error}; stopped ({kept})") from None
    finally:
        log.close()
        passes.close()  # stops the DataLoader's workers
    return FitResult(model, record, state.iteration, stopped)


def write_config(path: Path, config: TrainConfig) -> None:
    """Writes a run's ``config.json`` atomically (a kill leaves the old one whole)."""
    try:
        atomic_write(path, (config.to_json() + "\n").encode())
    except OSError as error:
        raise FcnsegError(f"{path}: cannot write: {error.strerror or error}") from None


@contextlib.contextmanager
def _saving(out: Path, iteration: int) -> Iterator[None]:
    """Turns a checkpoint that cannot be written into one line naming the run folder, the
    cause and what is left."""
    try:
        yield
    except CheckpointWriteError as error:
        last = CheckpointFiles.of(out / "last")
        kept = (
            f"the previous checkpoint, {last.weights.name}, is intact"
            if last.exists()
            else "no checkpoint was saved before"
        )
        raise CheckpointWriteError(
            f"{out}: cannot save the checkpoint of iteration {iteration} ({error}); {kept}: "
            "free space, then --resume"
        ) from None


def initialize(model: FCN, spec: str) -> Any:
    """Copies into ``model`` the weights ``spec`` names (anything :func:`fcnseg.load_model`
    takes: a coarser FCN's checkpoint, section 4.2, or a classifier cast into an FCN, 4.1) by
    :func:`fcnseg.models.init_from_coarser`; returns their input convention."""
    source = load_model(spec)
    try:
        init_from_coarser(model, source)
    except ValueError as error:
        build = ", ".join(f"{key} {value}" for key, value in source.meta.build.items())
        raise FcnsegError(
            f"{spec}: cannot initialise the model ({error}); these weights are "
            f"{source.meta.model} with {build}: train that build (--geometry, --width, "
            "--fc-width, --batch-norm)"
        ) from None
    return source.meta.input_convention


def _check_resumed_config(path: Path, saved: ModelMeta, config: TrainConfig) -> None:
    previous = TrainConfig.from_dict(dict(saved.config or {}))
    changed = trajectory_changes(previous, config)
    if changed:
        raise FcnsegError(
            f"{path}: the run was configured differently ({changed}); a resumed run may "
            "change only where its data is, max_iter, eval_every, workers and device"
        )


def steps_to_evaluation(config: TrainConfig, iteration: int) -> int:
    """Steps from ``iteration`` to the next evaluation (or the end of the run)."""
    to_end = config.max_iter - iteration
    if config.eval_every == 0:
        return to_end
    return min(config.eval_every - iteration % config.eval_every, to_end)


def _passes(
    dataset: Dataset,
    config: TrainConfig,
    context: distributed.Context,
    start: int,
    ignore_index: int,
    skip_bad_images: bool = False,
) -> Generator[Pass, None, None]:
    """This process's forward passes from step ``start`` on: images, labels, the seed of
    the pass's own random draws (dropout, loss sampling) and the bad files skipped.

    Raises:
        UnreadableImageError: a file of the pass cannot be read (without ``skip_bad_images``).
    """
    loader, sampler = training_loader(
        dataset,
        config,
        start_step=start,
        rank=context.rank,
        world_size=context.world_size,
        ignore_index=ignore_index,
        pin_memory=context.device.type == "cuda",
        skip_bad=skip_bad_images,
    )
    batches = iter(loader)
    step = start
    while True:
        for forward_pass in range(config.accumulation):
            seed = derive_seed(config.seed, "pass", sampler.pass_number(step, forward_pass))
            batch = next(batches)
            if isinstance(batch, Unreadable):
                raise UnreadableImageError(batch.message)
            images, labels, skipped = batch
            yield images, labels, seed, skipped
        step += 1


def evaluate_held_out(
    model: nn.Module,
    dataset: Dataset,
    context: distributed.Context,
    skip_bad_images: bool = False,
    log: RunLog | None = None,
) -> dict[str, Any]:
    """The model's metrics on the held-out set, each process scoring its share.

    Scored as ``fcnseg eval`` scores a checkpoint by default, one image at a time in float32,
    so that the number saved with a checkpoint (and the choice of ``best``) is that
    checkpoint's score: padding images of different sizes into one batch changes the
    predictions near their borders, and autocast changes them everywhere.

    Raises:
        UnreadableImageError: a file cannot be read, in any process; with
            ``skip_bad_images`` it is left out of the score instead (and logged).
    """
    info = dataset.info  # type: ignore[attr-defined]
    failures: list[str] = []
    metrics = evaluate(
        model,
        _held_out_batches(dataset, context, skip_bad_images, failures, log),
        info.num_classes,
        ignore_index=info.ignore_index,
        device=context.device,
    )
    failure = distributed.first_failure(failures[0] if failures else None, context)
    if failure is not None:
        raise UnreadableImageError(failure)
    return metrics_record(metrics, info.class_names, head_class_names(dataset))


def _held_out_batches(
    dataset: Dataset,
    context: distributed.Context,
    skip_bad_images: bool,
    failures: list[str],
    log: RunLog | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This process's share of the held-out images one at a time, as
    :func:`fcnseg.evaluation.evaluation_loader` gives them; a file that cannot be read ends
    the share (recorded in ``failures``, so that every process still reduces its histogram)
    or, with ``skip_bad_images``, is left out."""
    for index in range(context.rank, len(dataset), context.world_size):  # type: ignore[arg-type]
        try:
            image, label = dataset[index]
        except FcnsegError as error:
            if not skip_bad_images:
                failures.append(str(error))
                return
            if log is not None:
                log.skipped(str(error))
            continue
        yield collate_pad([(image, label)])


def checkpoint(
    out: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    meta: ModelMeta,
    state: TrainState,
    record: dict[str, Any] | None,
    context: distributed.Context,
) -> None:
    """Saves ``last``, and ``best`` when the mean IU beats every earlier evaluation."""
    mean_iu = record.get("mean_iu") if record else None
    if mean_iu is not None and mean_iu > state.best_mean_iu:
        state.best_mean_iu, state.best_iteration = mean_iu, state.iteration
        save_run(out / "best", model, None, None, meta, state, record, context)
    save_run(out / "last", model, optimizer, scaler, meta, state, record, context)


def fit_staged(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    train_set: Dataset | None = None,
    val_set: Dataset | None = None,
    progress: bool = True,
    stop: StopCondition | None = None,
    memory_budget: float | None = None,
    skip_bad_images: bool = False,
) -> FitResult | None:
    """FCN-32s, then FCN-16s from it, then FCN-8s from that (section 4.2), in one call.

    The stages are ``config.stages`` (each with its own fields, e.g. the ``camvid-scratch``
    recipe's steps and rates), or else the sequence ending at ``config.model``
    (:func:`fcnseg.train.recipes.staged_configs`). Stage ``i`` trains in
    ``out_dir/stage{i}-{model}`` and starts from the previous stage's ``best`` checkpoint (its
    ``last`` without a held-out set) through :func:`fcnseg.models.init_from_coarser`. With
    ``resume``, finished stages are skipped and the unfinished one continues. ``stop`` (see
    :func:`fit`) is asked throughout; when it stops a stage, the later stages are not started
    (resuming goes on from there).

    Returns:
        The result of the last stage trained (None if every stage had already finished).

    Raises:
        FcnsegError: as :func:`fit`.
    """
    if not resume:
        check_start(config)
    out = Path(out_dir).absolute()
    result = None
    previous: Path | None = None
    stages = staged_configs(config)
    for number, stage in enumerate(stages, start=1):
        folder = stage_folder(out, number, stage.model)
        if previous is not None:
            best = CheckpointFiles.of(previous / "best")
            stage = dataclasses.replace(
                stage, init=str(previous / ("best" if best.exists() else "last"))
            )
        stage_resume = resume and CheckpointFiles.of(folder / "last").exists()
        if stage_resume and (load_checkpoint(folder / "last")[1].iteration or 0) >= stage.max_iter:
            previous = folder
            continue
        result = fit(
            stage,
            folder,
            resume=stage_resume,
            train_set=train_set,
            val_set=val_set,
            progress=progress,
            stop=stop,
            memory_budget=memory_budget,
            skip_bad_images=skip_bad_images,
            stage=f"stage {number} of {len(stages)}",
        )
        previous = folder
        if result.stopped:
            break
        if stop is not None and number < len(stages) and stop(result.iteration):
            # the condition was met on the stage's last step: start no later stage
            if not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0:
                print(
                    f"stopped after stage {number} of {len(stages)} by {_condition(stop)}; "
                    "resume to go on",
                    flush=True,
                )
            return dataclasses.replace(result, stopped=True)
    return result


def stage_folder(out: Path, number: int, model: str) -> Path:
    """The folder of a staged run's stage ``number`` (from 1) training ``model``."""
    return out / f"stage{number}-{model}"


def _condition(stop: StopCondition | None) -> str:
    return getattr(stop, "description", "the stop condition")
