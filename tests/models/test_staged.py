"""init_from_coarser between two nets of the same kind: the final upsampling stays the net's
own fixed bilinear kernel, everything else is copied."""

from __future__ import annotations

import pytest
import torch

import fcnseg
from fcnseg.models import init_from_coarser

OPTIONS = {"geometry": "lean", "width": 1 / 16, "fc_width": 8}


def test_every_tensor_but_the_final_upsampling_is_copied() -> None:
    torch.manual_seed(0)
    source = fcnseg.build_model("fcn8s-vgg16", num_classes=3, **OPTIONS)
    target = fcnseg.build_model("fcn8s-vgg16", num_classes=3, **OPTIONS)
    with torch.no_grad():
        for tensor in source.state_dict().values():
            tensor.uniform_(1, 2)  # nothing of the source equals the target's start
    kernel = target.state_dict()["upscore8.weight"].clone()

    copied = init_from_coarser(target, source)

    assert sorted(copied) == sorted(set(target.state_dict()) - {"upscore8.weight"})
    assert torch.equal(target.state_dict()["upscore8.weight"], kernel)
    for name in copied:
        assert torch.equal(target.state_dict()[name], source.state_dict()[name]), name


def test_class_counts_must_agree() -> None:
    source = fcnseg.build_model("fcn32s-vgg16", num_classes=3, **OPTIONS)
    target = fcnseg.build_model("fcn16s-vgg16", num_classes=4, **OPTIONS)
    with pytest.raises(ValueError, match="class counts differ: 4 and 3"):
        init_from_coarser(target, source)
