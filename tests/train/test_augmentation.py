"""The configured augmentation reaches the training batches (colour jitter in the images' own
input convention, the labels untouched), and joined training splits are checked."""

from __future__ import annotations

import re

import pytest
import torch
from tiny_runs import tiny_config

from fcnseg.data import build_dataset
from fcnseg.data.transforms import RandomColourJitter
from fcnseg.errors import FcnsegError
from fcnseg.train.batches import augmentation, training_loader
from fcnseg.train.recipes import held_out_overlap


def first_batch(config) -> tuple[torch.Tensor, torch.Tensor]:
    dataset = build_dataset("synthetic", ".", "train")
    loader, _ = training_loader(dataset, config)
    images, labels, _ = next(iter(loader))
    return images, labels


def test_colour_jitter_changes_the_batch_images_and_not_their_labels() -> None:
    plain = first_batch(tiny_config(mirror=False))
    jittered = first_batch(tiny_config(mirror=False, colour_jitter=0.3))
    assert torch.equal(jittered[1], plain[1])
    assert not torch.allclose(jittered[0], plain[0], atol=1e-3)
    # the same seed gives the same jitter
    assert torch.equal(first_batch(tiny_config(mirror=False, colour_jitter=0.3))[0], jittered[0])


def test_colour_jitter_is_built_in_the_given_convention_and_needs_one() -> None:
    convention = build_dataset("synthetic", ".", "train").convention
    transform = augmentation(tiny_config(colour_jitter=0.2), 255, convention)
    jitters = [t for t in transform.transforms if isinstance(t, RandomColourJitter)]
    assert len(jitters) == 1 and jitters[0].convention == convention
    assert jitters[0].strength == 0.2
    with pytest.raises(ValueError, match="input convention"):
        augmentation(tiny_config(colour_jitter=0.2), 255, None)


@pytest.mark.parametrize("strength", [-0.1, 1.0, 1.5])
def test_a_colour_jitter_outside_0_1_is_refused(strength: float) -> None:
    with pytest.raises(FcnsegError, match=r"colour_jitter must be in \[0, 1\)"):
        tiny_config(colour_jitter=strength)


@pytest.mark.parametrize(
    ("field", "split", "message"),
    [
        ("train_split", "train+", "a name is empty"),
        ("train_split", "train+train", "names train more than once"),
        ("val_split", "+val", "a name is empty"),
    ],
)
def test_a_malformed_split_join_is_refused_by_the_configuration(
    field: str, split: str, message: str
) -> None:
    # refused when the configuration is made: before a run prints, builds or reads anything
    with pytest.raises(FcnsegError, match=rf"split '{re.escape(split)}'.*{message}"):
        tiny_config(**{field: split})


def test_a_held_out_split_inside_the_training_split_is_named() -> None:
    assert held_out_overlap(tiny_config(train_split="train+val", val_split="val")) == ["val"]
    assert held_out_overlap(tiny_config(train_split="train", val_split="val")) == []
    assert held_out_overlap(tiny_config(train_split="train+val", val_split=None)) == []
    # the same split name of another dataset or folder is other images
    other = tiny_config(train_split="train+val", val_split="val", val_root="/elsewhere")
    assert held_out_overlap(other) == []
