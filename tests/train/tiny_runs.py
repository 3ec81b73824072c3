"""Small nets and data for the training tests: a 1/16-width VGG16 trains in milliseconds."""

from __future__ import annotations

from fcnseg.train import TrainConfig, recipe

TINY_BACKBONE = {"width": 1 / 16, "fc_width": 16, "batch_norm": True}


def tiny_config(**overrides: object) -> TrainConfig:
    """The scratch recipe on a tiny net and tiny synthetic images, on the CPU."""
    settings: dict[str, object] = dict(
        dataset="synthetic",
        backbone=TINY_BACKBONE,
        batch_size=2,
        max_iter=4,
        eval_every=2,
        device="cpu",
    )
    settings.update(overrides)
    return recipe("scratch", "fcn8s-vgg16", **settings)
