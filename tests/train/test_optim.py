"""Parameter groups as the reference's lr_mult / decay_mult, frozen layers, lr policies."""

from __future__ import annotations

import pytest
import torch

import fcnseg
from fcnseg.train.optim import build_optimizer, learning_rate, param_groups, set_learning_rate


def test_groups_cover_every_trainable_parameter_once_and_no_frozen_one() -> None:
    model = fcnseg.build_model(
        "fcn8s-atonce-vgg16", num_classes=5, width=1 / 16, fc_width=16, batch_norm=True
    )
    groups = {g["name"]: g for g in param_groups(model, 5e-4)}
    grouped = [id(p) for g in groups.values() for p in g["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert sorted(grouped) == sorted(trainable)
    frozen = {id(model.upscore8.weight), id(model.scale_pool4.weight), id(model.scale_pool3.weight)}
    assert not frozen & set(grouped)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].endswith(".bias") for p in groups["biases"]["params"])
    assert groups["biases"]["lr_mult"] == 2 and groups["biases"]["weight_decay"] == 0
    assert groups["weights"]["lr_mult"] == 1 and groups["weights"]["weight_decay"] == 5e-4
    assert all(names[id(p)].startswith("bn") for p in groups["norm_scales"]["params"])


def test_sgd_step_doubles_the_bias_rate_and_decays_only_weights() -> None:
    conv = torch.nn.Conv2d(2, 3, 1)
    lr, decay = 0.1, 0.01
    optimizer = build_optimizer(conv, name="sgd", lr=lr, momentum=0.9, weight_decay=decay)
    weight, bias = conv.weight.detach().clone(), conv.bias.detach().clone()
    conv(torch.randn(4, 2, 5, 5)).square().sum().backward()
    grad_w, grad_b = conv.weight.grad.clone(), conv.bias.grad.clone()
    optimizer.step()  # first step: the momentum buffer is the gradient itself
    torch.testing.assert_close(conv.weight.detach(), weight - lr * (grad_w + decay * weight))
    torch.testing.assert_close(conv.bias.detach(), bias - 2 * lr * grad_b)


def test_learning_rate_policies() -> None:
    assert learning_rate(1e-10, "fixed", 5000, 100_000, 0.9) == 1e-10
    assert learning_rate(1.0, "poly", 0, 100, 0.9) == 1.0
    assert learning_rate(1.0, "poly", 50, 100, 2.0) == pytest.approx(0.25)
    assert learning_rate(1.0, "poly", 100, 100, 0.9) == 0.0
    optimizer = build_optimizer(
        torch.nn.Conv2d(1, 1, 1), name="adam", lr=1.0, momentum=0.9, weight_decay=0
    )
    set_learning_rate(optimizer, 0.5)
    assert sorted(g["lr"] for g in optimizer.param_groups) == [0.5, 1.0]
