"""Section 3.2: shift-and-stitch is filter rarefaction."""

from __future__ import annotations

import pytest
import torch
from inference_nets import small_model
from torch import nn
from torch.nn import functional as F

from fcnseg import FcnsegError
from fcnseg.inference import rarefied_filter, rarefy, shift_and_stitch, total_stride
from fcnseg.inference.dense import fcn32s_score_chain
from fcnseg.models.geometry import INPUT, module_layers


def _coarse_net() -> nn.Sequential:
    # Subsampled by 2 (pooling), 2 (strided convolution) and 2 (overlapping pooling): f = 8.
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2),
        nn.Conv2d(6, 5, 3),
        nn.ReLU(),
        nn.Conv2d(5, 2, 1),
    ).double()


def test_shift_and_stitch_equals_rarefaction() -> None:
    net = _coarse_net()
    f = total_stride(net)
    assert f == 8
    x = torch.randn(2, 3, 71, 66, dtype=torch.double)
    with torch.no_grad():
        stitched = shift_and_stitch(net, x, f)
        rarefied = rarefy(net)(x)
        coarse = net(x)
    # one output per position the receptive field fits at
    field = int(INPUT.through(layer for m in net for layer in module_layers(m)).receptive_field)
    assert field == 32
    assert stitched.shape == rarefied.shape == (2, 2, 71 - field + 1, 66 - field + 1)
    torch.testing.assert_close(stitched, rarefied, rtol=1e-12, atol=1e-12)
    # the unshifted pass is the coarse output, every f-th dense cell
    torch.testing.assert_close(rarefied[:, :, ::f, ::f], coarse, rtol=1e-12, atol=1e-12)


def test_rarefied_net_has_no_stride_and_dilated_filters() -> None:
    dense = rarefy(_coarse_net())
    convs = [m for m in dense if isinstance(m, nn.Conv2d)]
    pools = [m for m in dense if isinstance(m, nn.MaxPool2d)]
    assert all(m.stride == (1, 1) for m in convs) and all(m.stride == 1 for m in pools)
    # each layer dilated by the strides removed below it: 1, 2, 2x2, 2x2x2
    assert [m.dilation for m in convs] == [(1, 1), (2, 2), (8, 8), (8, 8)]
    assert [m.dilation for m in pools] == [(1, 1), (4, 4)]


@pytest.mark.parametrize("s", [2, 3, 4])
def test_paper_rule_is_dilation(s: int) -> None:
    # f'_ij = f_{i/s, j/s} if s divides i and j, else 0 (zero-based i, j)
    weight = torch.randn(4, 3, 3, 3, dtype=torch.double)
    sparse = rarefied_filter(weight, s)
    k = sparse.shape[-1]
    for i in range(k):
        for j in range(k):
            expected = weight[:, :, i // s, j // s] if i % s == 0 and j % s == 0 else 0
            torch.testing.assert_close(
                sparse[:, :, i, j], torch.zeros_like(sparse[:, :, i, j]) + expected
            )
    x = torch.randn(1, 3, 20, 17, dtype=torch.double)
    torch.testing.assert_close(F.conv2d(x, sparse), F.conv2d(x, weight, dilation=s))


def test_fcn32s_score_chain_rarefies() -> None:
    # The FCN-32s trunk and score_fr are such a chain; rarefied, it scores every position.
    # (Its padded convolutions make it differ from shift-and-stitch near the borders: the
    # benchmark uses it for cost only.)
    model = small_model("fcn32s-vgg16", "lean")
    chain = fcn32s_score_chain(model)
    assert total_stride(chain) == 32
    dense = rarefy(chain)
    assert total_stride(dense) == 1
    with torch.no_grad():
        scores = dense(50 * torch.randn(1, 3, 40, 36))
    # each 2x2 pooling, now stride 1, trims its dilation: 1 + 2 + 4 + 8 + 16 = 31
    assert scores.shape == (1, 5, 40 - 31, 36 - 31)


def test_refuses_other_layers_and_wrong_f() -> None:
    with pytest.raises(FcnsegError, match="Linear: shift-and-stitch"):
        rarefy(nn.Sequential(nn.Linear(3, 3)))
    with pytest.raises(FcnsegError, match="subsamples by 8"):
        shift_and_stitch(_coarse_net(), torch.zeros(1, 3, 40, 40, dtype=torch.double), 4)
    with pytest.raises(FcnsegError, match="FCN-32s"):
        fcn32s_score_chain(small_model("fcn8s-vgg16", "lean"))
