"""Staged initialisation (section 4.2) of batch-normalised nets: the statistics come along.

A net trained from scratch (fcnseg's CamVid model) normalises with BatchNorm; its running mean
and variance are state, not parameters. The finer net must start with the coarser net's
statistics, or in eval mode it normalises with the defaults (0 and 1) and its predictions are
not the coarser net's.
"""

from __future__ import annotations

import torch
from torch import nn

import fcnseg
from fcnseg.models import init_from_coarser

OPTIONS = {"geometry": "lean", "width": 1 / 16, "fc_width": 8, "batch_norm": True}


def _randomised(name: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = fcnseg.build_model(name, num_classes=4, **OPTIONS)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 2)
                module.running_var.uniform_(0.5, 3)
                module.num_batches_tracked.fill_(17)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_()
        model.get_submodule("score_fr").weight.normal_()
    return model.eval()


def test_batch_norm_statistics_are_copied() -> None:
    coarse = _randomised("fcn32s-vgg16", 0)
    fine = _randomised("fcn16s-vgg16", 1)
    init_from_coarser(fine, coarse)
    norms = [name for name, m in coarse.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 13  # after conv1_1 ... conv5_3
    for name in norms:
        for buffer in ("running_mean", "running_var", "num_batches_tracked"):
            expected = coarse.get_submodule(name).get_buffer(buffer)
            assert torch.equal(fine.get_submodule(name).get_buffer(buffer), expected), (
                name,
                buffer,
            )


def test_the_finer_net_starts_from_the_coarser_scores_in_eval_mode() -> None:
    coarse = _randomised("fcn32s-vgg16", 2)
    fine = _randomised("fcn16s-vgg16", 3)
    init_from_coarser(fine, coarse)
    x = torch.randn(1, 3, 64, 64) * 50
    with torch.no_grad():
        (coarse_scores,) = coarse.coarse_scores(x).values()  # N×K×H/32×W/32
        (fine_scores,) = fine.coarse_scores(x).values()  # N×K×H/16×W/16, zero skip scores
        expected = fine.get_submodule("upscore2")(coarse_scores)
    crop = fine.fusions[0].crop_upscore
    height, width = fine_scores.shape[-2:]
    torch.testing.assert_close(
        fine_scores, expected[:, :, crop : crop + height, crop : crop + width], rtol=1e-5, atol=1e-5
    )
