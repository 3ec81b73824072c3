"""The optimiser as the reference sets it up: parameter groups and the learning rate policy.

Every convolution of the reference nets declares ``param=[dict(lr_mult=1, decay_mult=1),
dict(lr_mult=2, decay_mult=0)]``: weights at the base learning rate with weight decay, biases
at twice the rate without it (section 4.3: "doubled the learning rate for biases"). Frozen
layers (``lr_mult=0`` in Caffe: the final upsampling, the at-once scales) have
``requires_grad=False`` and are left out of the optimiser altogether.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

LR_POLICIES = ("fixed", "poly")
OPTIMIZERS = ("sgd", "adam")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The trainable parameters in three groups, each with its ``lr_mult``.

    * weights: ``lr_mult`` 1, weight decay;
    * biases (``*.bias``): ``lr_mult`` 2, no weight decay, as the reference;
    * batch-norm scales: ``lr_mult`` 1, no weight decay (decaying a normalised layer's scale
      only fights the normalisation; the reference nets have none).
    """
    weights, biases, norm_scales = [], [], []
    norm_types = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if name == "bias":
                biases.append(param)
            elif isinstance(module, norm_types):
                norm_scales.append(param)
            else:
                weights.append(param)
    groups = [
        {"name": "weights", "params": weights, "lr_mult": 1.0, "weight_decay": weight_decay},
        {"name": "biases", "params": biases, "lr_mult": 2.0, "weight_decay": 0.0},
        {"name": "norm_scales", "params": norm_scales, "lr_mult": 1.0, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def build_optimizer(
    model: nn.Module,
    *,
    name: str,
    lr: float,
    momentum: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or Adam (training small nets from scratch on a CPU).

    The learning rate of each group is ``lr * lr_mult``; :func:`set_learning_rate` keeps it so
    as the policy changes ``lr``.
    """
    groups = param_groups(model, weight_decay)
    for group in groups:
        group["lr"] = lr * group["lr_mult"]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adam":
        # Adam's first-moment decay plays momentum's part.
        return torch.optim.Adam(groups, lr=lr, betas=(momentum, 0.999))
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def learning_rate(
    base_lr: float, policy: str, iteration: int, max_iter: int, power: float
) -> float:
    """The base learning rate at ``iteration``, as Caffe's ``lr_policy``.

    ``fixed``: ``base_lr`` throughout (the paper). ``poly``: ``base_lr * (1 - it/max_iter)^power``.
    """
    if policy == "fixed":
        return base_lr
    if policy == "poly":
        return base_lr * (1 - min(iteration, max_iter) / max_iter) ** power
    raise ValueError(f"lr_policy must be one of {LR_POLICIES}, got {policy!r}")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Sets every group's rate to ``lr`` times its ``lr_mult``."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]
