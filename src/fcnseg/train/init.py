"""Starting weights: a coarser FCN (section 4.2), or a classifier cast into an FCN (4.1)."""

from __future__ import annotations

from fcnseg.errors import FcnsegError
from fcnseg.models import FCN, init_from_coarser
from fcnseg.pretrained import load_pretrained, resolve


def initialize(model: FCN, spec: str) -> list[str]:
    """Copies into ``model`` the weights ``spec`` names; returns the names copied.

    ``spec`` is anything :func:`fcnseg.pretrained.load_pretrained` reads: a checkpoint, a
    shipped model, or a file of ``fcnseg convert`` (an FCN cast from an ImageNet classifier,
    or a published FCN). Its net is rebuilt and copied in as
    :func:`fcnseg.models.init_from_coarser` does: every layer both nets have (FCN-16s from
    FCN-32s), the whole net when they are the same.
    """
    source, _ = load_pretrained(spec)
    try:
        return init_from_coarser(model, source)
    except ValueError as error:
        raise FcnsegError(f"{resolve(spec)}: cannot initialise the model ({error})") from None
