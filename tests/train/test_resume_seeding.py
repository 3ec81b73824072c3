"""Every random draw of a run is seeded by the run's seed and the draw's place in it.

No generator state is saved with a checkpoint (:mod:`fcnseg.train.checkpoint`): the
permutation of each epoch, the augmentation of each image and the dropout and loss sampling
of each forward pass are seeded from ``(seed, position)``. So whatever torch's global
generator holds when a run starts, resumes or steps, the trajectory is the same, bit for bit
(a promise of resuming: same process, same machine).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from tiny_runs import tiny_config

from fcnseg.train import fit, load_checkpoint
from fcnseg.train import loop as loop_module
from fcnseg.train.log import read_log

# augmentation (mirror, jitter), dropout and loss sampling all draw random numbers; the rate
# is fixed so that stopping at step 3 changes nothing else
CONFIG = dict(max_iter=6, eval_every=2, mirror=True, jitter=4, loss_sampling=0.5, lr_policy="fixed")


def losses(folder: Path) -> dict[int, float]:
    return {e["iteration"]: e["loss"] for e in read_log(folder) if "loss" in e}


def scramble(seed: int) -> None:
    """Leaves torch's global generator somewhere no run would leave it."""
    torch.manual_seed(seed)
    torch.rand(100)


def assert_same_run(a, a_dir: Path, b, b_dir: Path) -> None:
    assert losses(a_dir) == losses(b_dir)
    assert sorted(losses(a_dir)) == list(range(1, 7))
    for name, tensor in a.model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[name], tensor, rtol=0, atol=0)
    assert b.metrics == a.metrics


def test_resumed_run_is_bit_identical_whatever_the_global_generator_holds(
    tmp_path: Path, tiny_data
) -> None:
    train, val = tiny_data
    config = tiny_config(**CONFIG)
    whole = fit(config, tmp_path / "whole", train_set=train, val_set=val, progress=False)

    first = dataclasses.replace(config, max_iter=3)
    fit(first, tmp_path / "split", train_set=train, val_set=val, progress=False)
    assert load_checkpoint(tmp_path / "split" / "last")[1].iteration == 3
    scramble(12345)
    resumed = fit(
        config, tmp_path / "split", resume=True, train_set=train, val_set=val, progress=False
    )
    assert_same_run(whole, tmp_path / "whole", resumed, tmp_path / "split")


def test_no_step_reads_the_global_generator(
    tmp_path: Path, tiny_data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The global generator scrambled before every step of both halves changes nothing: a draw
    that continued from the global generator (unseeded augmentation, dropout or loss sampling)
    would follow the scrambled state."""
    train, val = tiny_data
    config = tiny_config(**CONFIG)
    whole = fit(config, tmp_path / "whole", train_set=train, val_set=val, progress=False)

    real_step = loop_module.train_step
    calls = []

    def scrambled_step(*args, **kwargs):
        calls.append(1)
        scramble(1000 + len(calls))
        result = real_step(*args, **kwargs)
        scramble(2000 + len(calls))  # before the next step's images are drawn and augmented
        return result

    monkeypatch.setattr(loop_module, "train_step", scrambled_step)
    first = dataclasses.replace(config, max_iter=3)
    scramble(1)
    fit(first, tmp_path / "split", train_set=train, val_set=val, progress=False)
    scramble(2)
    resumed = fit(
        config, tmp_path / "split", resume=True, train_set=train, val_set=val, progress=False
    )
    assert len(calls) == 6
    assert_same_run(whole, tmp_path / "whole", resumed, tmp_path / "split")
