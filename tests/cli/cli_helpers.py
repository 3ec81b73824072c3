"""Helpers of the command-line tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fcnseg.data import DatasetInfo
from fcnseg.io.weights import ModelMeta


def one_error_line(text: str) -> str:
    """The single line an error printed; fails if there is more (a traceback). Notes (``fcnseg
    eval: note: ...``, said before the work) are not errors and are passed over."""
    lines = [line for line in text.splitlines() if line.strip() and ": note: " not in line]
    assert len(lines) == 1, text
    assert "error" in lines[0], text
    return lines[0]


def checkpoint_meta(
    model: str, num_classes: int, geometry: str, backbone: Mapping[str, Any], info: DatasetInfo
) -> ModelMeta:
    """The record of a checkpoint of ``model`` trained on ``info``'s dataset, in its input
    convention, at iteration 0."""
    return ModelMeta(
        model=model,
        build={"num_classes": num_classes, "geometry": geometry, **backbone},
        classes=tuple(info.class_names),
        palette=tuple(info.palette),
        input_convention=info.convention,
        dataset=info.name,
        ignore_index=info.ignore_index,
        iteration=0,
    )
