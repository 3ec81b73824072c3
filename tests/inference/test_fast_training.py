"""fast_training_model (issue 13): the plain model's training step, gradients included.

The fast model shares the plain model's parameters, so each step below is run twice on the
same input, target and dropout seed, once through each, and the gradients compared: fp32
rounding only (other kernels sum in other orders; a ReLU or max pooling near a tie may route
one cell's gradient differently, so the bound is on all gradients together).
"""

from __future__ import annotations

import pytest
import torch
from inference_nets import image, randomize
from torch import nn
from torch.nn import functional as F

import fcnseg
from fcnseg.inference.border import BorderSegment
from fcnseg.inference.export import relative_error
from fcnseg.inference.optimize import GemmConv2d, WinogradTrainingConv2d, fast_training_model

GRADIENT_L2 = 1e-4


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    options = {"width": 1 / 8, "fc_width": 256} if "vgg16" in name else {}
    return randomize(fcnseg.build_model(name, num_classes=5, geometry="caffe", **options)).train()


def step(net: nn.Module, x: torch.Tensor, target: torch.Tensor) -> float:
    torch.manual_seed(5)  # the same dropout masks
    scores = net(x)
    if isinstance(scores, dict):
        scores = scores["sem"]
    loss = F.cross_entropy(scores, target)
    loss.backward()
    return loss.item()


@pytest.mark.parametrize(
    ("name", "gemm_min_weights", "gemm_layers"),
    [
        ("fcn8s-vgg16", 50000, {"fc6", "fc7"}),  # the small net's fc6 and fc7 through GEMM
        ("fcn32s-alexnet", None, {"fc6", "fc7"}),  # full width: the default threshold
        ("fcn8s-googlenet", None, set()),  # no big convolution: the border path alone
    ],
)
def test_gradients_equal_plain_model(
    name: str, gemm_min_weights: int | None, gemm_layers: set[str], convolutions: str
) -> None:
    model = build(name)
    fast = fast_training_model(model, gemm_min_weights=gemm_min_weights).train()
    gemm = {n for n, m in fast.named_modules() if isinstance(m, GemmConv2d)}
    assert gemm == gemm_layers
    winograd = [m for m in fast.modules() if isinstance(m, WinogradTrainingConv2d)]
    assert bool(winograd) == (convolutions == "winograd")  # every net has 3x3 convolutions
    assert any(isinstance(m, BorderSegment) for m in fast.modules())
    x = image(1, 3, 45, 38)
    target = torch.randint(0, 5, (1, 45, 38), generator=torch.Generator().manual_seed(0))
    gradients, losses = [], []
    for net in (model, fast):
        model.zero_grad(set_to_none=True)
        losses.append(step(net, x, target))
        gradients.append(
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        )
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert gradients[1].keys() == gradients[0].keys()
    plain = torch.cat([g.flatten() for g in gradients[0].values()])
    faster = torch.cat([gradients[1][n].flatten() for n in gradients[0]])
    assert relative_error(faster, plain) <= GRADIENT_L2


def test_shares_parameters_and_names() -> None:
    model = build("fcn8s-vgg16")
    fast = fast_training_model(model, gemm_min_weights=50000)
    assert list(fast.state_dict()) == list(model.state_dict())
    shared = dict(model.named_parameters())
    assert all(p is shared[n] for n, p in fast.named_parameters())
    # one SGD step through the fast model trains the plain one
    before = model.fc6.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    step(fast, image(1, 3, 20, 20), torch.zeros(1, 20, 20, dtype=torch.long))
    optimizer.step()
    assert not torch.equal(model.fc6.weight, before)
    # the plain model is untouched: its own layers, its own forward
    assert model.trunk[0] == "conv1_1" and type(model.fc6) is nn.Conv2d


def test_gemm_convolution_equals_convolution() -> None:
    torch.manual_seed(0)
    for conv in (nn.Conv2d(6, 5, 3, stride=2, padding=2, dilation=2), nn.Conv2d(6, 5, 1)):
        x = torch.randn(2, 6, 11, 9, requires_grad=True)
        expected = conv(x)
        (grad_x,) = torch.autograd.grad(expected.square().sum(), x)
        gemm = GemmConv2d.sharing(conv)
        result = gemm(x)
        assert result.is_contiguous()
        torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)
        (grad_gemm,) = torch.autograd.grad(result.square().sum(), x)
        torch.testing.assert_close(grad_gemm, grad_x, rtol=1e-4, atol=1e-4)
