"""Training: the per-pixel loss, the reference's optimiser, the loop, checkpoints, recipes."""

from fcnseg.train.checkpoint import (
    CheckpointFiles,
    TrainState,
    load_checkpoint,
    load_training_state,
    save_checkpoint,
    training_meta,
)
from fcnseg.train.loop import (
    DivergedError,
    FitResult,
    StopCondition,
    fit,
    fit_staged,
    time_budget,
    train_step,
    train_steps,
)
from fcnseg.train.loss import (
    Ohem,
    class_frequencies,
    loss_sampling_mask,
    median_frequency_weights,
    ohem_mask,
    pixel_loss,
)
from fcnseg.train.optim import build_optimizer, learning_rate, param_groups, set_learning_rate
from fcnseg.train.recipes import (
    RECIPES,
    TrainConfig,
    check_start,
    list_recipes,
    recipe,
    staged_configs,
    staged_models,
)

__all__ = [
    "RECIPES",
    "CheckpointFiles",
    "DivergedError",
    "FitResult",
    "Ohem",
    "StopCondition",
    "TrainConfig",
    "TrainState",
    "build_optimizer",
    "check_start",
    "class_frequencies",
    "fit",
    "fit_staged",
    "learning_rate",
    "list_recipes",
    "load_checkpoint",
    "load_training_state",
    "loss_sampling_mask",
    "median_frequency_weights",
    "ohem_mask",
    "param_groups",
    "pixel_loss",
    "recipe",
    "save_checkpoint",
    "training_meta",
    "set_learning_rate",
    "staged_configs",
    "staged_models",
    "time_budget",
    "train_step",
    "train_steps",
]
