"""Two CPU processes with gloo on loopback train as one process accumulating two passes."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny_runs import tiny_config

from fcnseg.data.synthetic import SyntheticShapes
from fcnseg.evaluation import evaluate, evaluation_loader
from fcnseg.train import fit
from fcnseg.train.log import read_log

# No batch norm: DDP keeps rank 0's running statistics, one process keeps its own, and the
# test compares every tensor of the state dict.
CONFIG = tiny_config(
    backbone={"width": 1 / 16, "fc_width": 16, "batch_norm": False},
    batch_size=1,
    max_iter=4,
    eval_every=2,
    mirror=True,
    jitter=3,
    lr=1e-2,
)


def datasets() -> tuple[SyntheticShapes, SyntheticShapes]:
    return SyntheticShapes(7, size=32, seed=8), SyntheticShapes(5, size=32, seed=9)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_rank(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        GLOO_SOCKET_IFNAME="lo",
    )
    torch.set_num_threads(1)
    train, val = datasets()
    result = fit(CONFIG, out, train_set=train, val_set=val, progress=False)
    torch.save(result.model.state_dict(), Path(out) / f"rank{rank}.pt")
    (Path(out) / f"metrics{rank}.json").write_text(json.dumps(result.metrics))
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_same_global_batch(tmp_path: Path) -> None:
    mp.spawn(train_rank, args=(2, free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "ddp" / "rank1.pt", weights_only=True)
    for name, tensor in rank0.items():
        assert torch.equal(rank1[name], tensor), name  # the ranks never drift apart

    # one process, two passes accumulated per step: the same images, augmentation and
    # dropout draws as rank 0 and rank 1 together
    train, val = datasets()
    single = fit(
        dataclasses.replace(CONFIG, iter_size=2),
        tmp_path / "single",
        train_set=train,
        val_set=val,
        progress=False,
    )
    trained = single.model.state_dict()
    assert trained["score_fr.weight"].abs().sum() > 0
    for name, tensor in rank0.items():
        torch.testing.assert_close(tensor, trained[name], rtol=1e-5, atol=1e-7, msg=name)
    ddp_losses = [e["loss"] for e in read_log(tmp_path / "ddp") if "loss" in e]
    single_losses = [e["loss"] for e in read_log(tmp_path / "single") if "loss" in e]
    assert ddp_losses == pytest.approx(single_losses, rel=1e-5)

    # the histograms of both ranks' halves of the held-out set were summed
    metrics = [json.loads((tmp_path / "ddp" / f"metrics{r}.json").read_text()) for r in (0, 1)]
    assert metrics[0] == metrics[1]
    single.model.load_state_dict(rank0)
    whole = evaluate(single.model, evaluation_loader(val), 6)
    assert metrics[0]["mean_iu"] == pytest.approx(whole["mean_iu"], abs=1e-12)
    assert metrics[0]["pixel_acc"] == pytest.approx(whole["pixel_acc"], abs=1e-12)
