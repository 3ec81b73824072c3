"""Staged training's initialisation: FCN-16s from FCN-32s, FCN-8s from FCN-16s (section 4.2)."""

from __future__ import annotations

import torch

from fcnseg.models.fcn import FCN


def init_from_coarser(fine: FCN, coarse: FCN) -> list[str]:
    """Copies every layer ``coarse`` shares with ``fine`` into ``fine``, in place.

    The backbone, ``score_fr`` and the skips both nets have are copied; the new skip's score
    layer stays zero, so the finer net starts from the coarser net's predictions; the final
    upsampling of each net is its own fixed bilinear kernel.

    Returns:
        The names of the copied tensors.
    """
    if fine.num_classes != coarse.num_classes:
        raise ValueError(f"class counts differ: {fine.num_classes} and {coarse.num_classes}")
    source = coarse.state_dict()
    target = fine.state_dict()
    copied = []
    with torch.no_grad():
        for name, tensor in target.items():
            if name.startswith(fine.final_upscore + ".") or name not in source:
                continue
            if source[name].shape != tensor.shape:
                raise ValueError(
                    f"{name}: shape {tuple(source[name].shape)} cannot initialise "
                    f"{tuple(tensor.shape)}"
                )
            tensor.copy_(source[name])
            copied.append(name)
    return copied
