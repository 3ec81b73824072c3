"""``best`` holds the highest-scoring evaluation, ``last`` the latest (the reference keeps its
best snapshot the same way); neither replaces the other."""

from __future__ import annotations

from pathlib import Path

import torch

import fcnseg
from fcnseg.data import CAMVID_INFO
from fcnseg.train import TrainState, load_checkpoint, recipe, training_meta
from fcnseg.train.distributed import Context
from fcnseg.train.loop import checkpoint


def test_best_keeps_the_highest_mean_iu_and_last_the_latest(tmp_path: Path) -> None:
    config = recipe("scratch", "fcn32s-vgg16", dataset="camvid", root=str(tmp_path))
    model = fcnseg.build_model(
        "fcn32s-vgg16", num_classes=11, geometry="lean", width=1 / 16, fc_width=8
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    meta = training_meta(config, CAMVID_INFO, CAMVID_INFO.convention, {})
    context = Context(rank=0, world_size=1, device=torch.device("cpu"))
    state = TrainState()
    scores = {10: 0.40, 20: 0.70, 30: 0.55, 40: 0.69}
    weights_at = {}
    for iteration, mean_iu in scores.items():
        with torch.no_grad():
            model.get_submodule("score_fr").bias.fill_(iteration)  # marks the weights
        state.iteration = iteration
        checkpoint(tmp_path, model, optimizer, scaler, meta, state, {"mean_iu": mean_iu}, context)
        weights_at[iteration] = model.get_submodule("score_fr").bias.clone()
    best_state, best = load_checkpoint(tmp_path / "best")
    last_state, last = load_checkpoint(tmp_path / "last")
    assert (best.iteration, best.metrics["mean_iu"]) == (20, 0.70)
    assert (last.iteration, last.metrics["mean_iu"]) == (40, 0.69)
    assert torch.equal(best_state["score_fr.bias"], weights_at[20])
    assert torch.equal(last_state["score_fr.bias"], weights_at[40])
    assert (state.best_mean_iu, state.best_iteration) == (0.70, 20)
