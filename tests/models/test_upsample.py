"""The bilinear kernel against the reference's ``upsample_filt`` (fcn.berkeleyvision.org's
surgery.py), which numpy computes in float64."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fcnseg.models.upsample import bilinear_filter, bilinear_upsampling


def upsample_filt(size: int) -> np.ndarray:
    """surgery.upsample_filt, as published."""
    factor = (size + 1) // 2
    if size % 2 == 1:  # noqa: SIM108 - as published
        center = factor - 1
    else:
        center = factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


@pytest.mark.parametrize("size", [*range(1, 17), 63, 64])
def test_kernel_is_the_references_rounded_once_to_float32(size: int) -> None:
    kernel = bilinear_filter(size)
    assert kernel.dtype == torch.float32
    # computed in float64 and rounded once, as the reference's weights were stored
    assert torch.equal(kernel, torch.from_numpy(upsample_filt(size)).float())


def test_upsampling_layer_has_no_bias_and_one_kernel_per_class() -> None:
    layer = bilinear_upsampling(3, 4, 2, learnable=False)
    assert layer.bias is None and not layer.weight.requires_grad
    for i in range(3):
        for j in range(3):
            expected = bilinear_filter(4) if i == j else torch.zeros(4, 4)
            assert torch.equal(layer.weight[i, j], expected)


@pytest.mark.parametrize("model", ["fcn32s-vgg16", "fcn8s-vgg16"])
def test_cpu_autocast_upsamples_in_float32(model: str) -> None:
    """Under CPU bf16 autocast every deconvolution of an FCN runs in float32 (oneDNN's bf16
    deconvolution of 11 or 21 channels is many times slower): the scores come out float32,
    equal to the float32 layers applied to the same inputs, and gradients still flow."""
    from fcnseg.models import build_model

    torch.manual_seed(0)
    net = build_model(model, num_classes=11, geometry="lean", width=1 / 16, fc_width=32).eval()
    with torch.no_grad():  # mixing weights, so that classes differ in the upsampled scores
        for name, module in net.named_modules():
            if isinstance(module, torch.nn.ConvTranspose2d):
                module.weight.add_(0.01 * torch.randn_like(module.weight))
            elif name.startswith("score"):
                module.weight.normal_(0, 0.1)
    x = torch.randn(2, 3, 64, 80)
    seen = []
    hooks = [
        module.register_forward_hook(lambda m, i, o: seen.append((m, i[0], o)))
        for module in net.modules()
        if isinstance(module, torch.nn.ConvTranspose2d)
    ]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = net(x)
    for hook in hooks:
        hook.remove()
    assert scores.dtype == torch.float32 and scores.shape == (2, 11, 64, 80)
    assert len(seen) == 1 + len(net.skips)
    for module, inputs, output in seen:
        assert inputs.dtype == output.dtype == torch.float32
        expected = torch.nn.functional.conv_transpose2d(inputs, module.weight, stride=module.stride)
        torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)
    scores.sum().backward()
    assert net.score_fr.weight.grad is not None
