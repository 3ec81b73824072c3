"""The paper's multi-task nets (section 5): SIFT Flow's two heads and NYUDv2's fused inputs,
through the loss, the evaluation and the training loop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from multitask_data import nyud_root, siftflow_root

import fcnseg
from fcnseg.data import SIFTFLOW_GEOMETRIC_INFO, SIFTFLOW_INFO, build_dataset
from fcnseg.errors import FcnsegError
from fcnseg.evaluation import (
    ConfusionMatrix,
    evaluate,
    format_table,
    head_class_names,
    metrics_record,
)
from fcnseg.models.geometry import Geometry
from fcnseg.train import TrainConfig, fit, load_checkpoint, recipe
from fcnseg.train.loss import loss_sampling_mask, pixel_loss

TINY = {"width": 1 / 8, "fc_width": 16, "batch_norm": True}


def tiny_config(model: str, **overrides: object) -> TrainConfig:
    """The scratch recipe for ``model`` at its tiniest, on the CPU."""
    settings: dict[str, object] = dict(backbone=TINY, batch_size=2, device="cpu")
    return recipe("scratch", model, **{**settings, **overrides})


def two_head_batch(seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Scores of a 33 + 3 class net and N x 2 x H x W labels, some of them void."""
    generator = torch.Generator().manual_seed(seed)
    scores = {
        "sem": torch.randn(2, 33, 6, 7, generator=generator),
        "geo": torch.randn(2, 3, 6, 7, generator=generator),
    }
    labels = torch.stack(
        [
            torch.randint(0, 33, (2, 6, 7), generator=generator),
            torch.randint(0, 3, (2, 6, 7), generator=generator),
        ],
        dim=1,
    )
    labels[torch.rand(labels.shape, generator=generator) < 0.2] = 255
    return scores, labels


def test_two_head_loss_is_the_sum_of_the_heads_losses() -> None:
    scores, labels = two_head_batch()
    # Caffe's SoftmaxWithLoss with ignore_label 255, one per head, weights 1 (normalize: mean).
    expected = sum(
        F.cross_entropy(head, labels[:, t], ignore_index=255)
        for t, head in enumerate(scores.values())
    )
    assert torch.allclose(pixel_loss(scores, labels), expected)

    # Class weights weigh the semantic head only; the loss-sampling mask drops the same
    # pixels of both heads.
    weights = torch.rand(33, generator=torch.Generator().manual_seed(1)) + 0.5
    keep = torch.rand(2, 6, 7, generator=torch.Generator().manual_seed(2)) < 0.5
    for normalize in ("sum", "mean"):
        total = pixel_loss(scores, labels, normalize=normalize, class_weights=weights, keep=keep)
        sem = pixel_loss(
            scores["sem"], labels[:, 0], normalize=normalize, class_weights=weights, keep=keep
        )
        geo = pixel_loss(scores["geo"], labels[:, 1], normalize=normalize, keep=keep)
        assert torch.allclose(total, sem + geo)

    with pytest.raises(ValueError, match="2 heads"):
        pixel_loss(scores, labels[:, 0])


def test_loss_sampling_mask_is_shared_by_the_heads() -> None:
    _, labels = two_head_batch()
    geometry = Geometry(receptive_field=7, stride=4, offset=1.5)
    masks = []
    for label in (labels, labels[:, 0]):
        masks.append(loss_sampling_mask(label, 0.5, geometry, torch.Generator().manual_seed(3)))
    assert masks[0].shape == (2, 6, 7)
    assert torch.equal(masks[0], masks[1])


def test_evaluate_two_heads_equals_a_histogram_per_head() -> None:
    torch.manual_seed(0)
    model = fcnseg.build_model("fcn8s-siftflow-vgg16", num_classes=33, geometry="lean", **TINY)
    with torch.no_grad():  # score layers start at zero; make the predictions vary
        for name, param in model.named_parameters():
            if name.startswith("score"):
                param.normal_(0, 1.0)
    model.eval()
    generator = torch.Generator().manual_seed(4)
    batches = []
    for _ in range(2):
        labels = torch.stack(
            [
                torch.randint(0, 33, (2, 32, 32), generator=generator),
                torch.randint(0, 3, (2, 32, 32), generator=generator),
            ],
            dim=1,
        )
        labels[:, :, :3] = 255
        batches.append((torch.randn(2, 3, 32, 32, generator=generator) * 50, labels))

    metrics = evaluate(model, batches, 33)

    expected = {"sem": ConfusionMatrix(33), "geo": ConfusionMatrix(3)}
    with torch.no_grad():
        for images, labels in batches:
            scores = model(images)
            expected["sem"].update(scores["sem"].argmax(1), labels[:, 0])
            expected["geo"].update(scores["geo"].argmax(1), labels[:, 1])
    assert list(metrics["heads"]) == ["sem", "geo"]
    for head, confusion in expected.items():
        want = confusion.compute()
        got = metrics["heads"][head]
        for key in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"):
            assert math.isclose(got[key], want[key])
        assert torch.allclose(torch.tensor(got["iu"]), torch.tensor(want["iu"]), equal_nan=True)
    # The semantic head's metrics stay at the top, where checkpoint selection reads them.
    assert metrics["mean_iu"] == metrics["heads"]["sem"]["mean_iu"]
    # The single-task labels of a two-headed net are a user's error.
    with pytest.raises(FcnsegError, match="2 heads"):
        evaluate(model, [(batches[0][0], batches[0][1][:, 0])], 33)

    geometric = {"geo": list(SIFTFLOW_GEOMETRIC_INFO.class_names)}
    record = metrics_record(metrics, SIFTFLOW_INFO.class_names, geometric)
    assert list(record["heads"]["geo"]["iu"]) == list(SIFTFLOW_GEOMETRIC_INFO.class_names)
    assert record["mean_iu"] == record["heads"]["sem"]["mean_iu"]
    json.dumps(record)
    table = format_table(metrics, SIFTFLOW_INFO.class_names, geometric)
    assert "[sem]" in table and "[geo]" in table
    assert SIFTFLOW_GEOMETRIC_INFO.class_names[1] in table


def test_fit_trains_the_two_headed_siftflow_net(tmp_path: Path) -> None:
    root = siftflow_root(tmp_path)
    config = tiny_config(
        "fcn8s-siftflow-vgg16",
        dataset="siftflow",
        root=str(root),
        dataset_options={"task": "both"},
        train_split="trainval",
        val_split="test",
        max_iter=2,
        eval_every=2,
        # the augmentation and the class frequencies see 2 x H x W labels
        mirror=True,
        jitter=4,
        crop=24,
        median_frequency=True,
    )
    result = fit(config, tmp_path / "run", progress=False)
    assert result.iteration == 2
    assert set(result.metrics["heads"]) == {"sem", "geo"}
    assert list(result.metrics["heads"]["geo"]["iu"]) == list(SIFTFLOW_GEOMETRIC_INFO.class_names)
    assert result.metrics["mean_iu"] == result.metrics["heads"]["sem"]["mean_iu"]
    metadata = load_checkpoint(tmp_path / "run" / "last")[1]
    assert metadata.metrics["heads"]["geo"] == result.metrics["heads"]["geo"]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["dataset_options"] == {"task": "both"}


def test_fit_fails_early_when_the_data_does_not_fit_the_net(tmp_path: Path) -> None:
    siftflow = siftflow_root(tmp_path)
    config = tiny_config(
        "fcn32s-siftflow-vgg16",
        dataset="siftflow",
        root=str(siftflow),
        train_split="trainval",
        val_split=None,
    )
    with pytest.raises(FcnsegError, match="task=both"):
        fit(config, tmp_path / "semantic", progress=False)
    nyud = nyud_root(tmp_path)
    config = tiny_config(
        model="fcn32s-rgb-hha-vgg16", dataset="nyud", root=str(nyud), val_split=None
    )
    with pytest.raises(FcnsegError, match="6 input channels"):
        fit(config, tmp_path / "colour", progress=False)


@pytest.mark.parametrize(
    ("model", "modality"),
    [("fcn32s-rgb-hha-vgg16", "color-hha"), ("fcn32s-rgbd-vgg16", "color-depth")],
)
def test_fit_trains_the_nyud_fusion_nets(tmp_path: Path, model: str, modality: str) -> None:
    root = nyud_root(tmp_path)
    config = tiny_config(
        model,
        dataset="nyud",
        root=str(root),
        dataset_options={"modality": modality},
        max_iter=1,
        eval_every=1,
        loss_sampling=0.5,  # the late-fusion net's cells are its streams'
    )
    result = fit(config, tmp_path / "run", progress=False)
    assert result.iteration == 1 and "heads" not in result.metrics
    assert len(result.metrics["iu"]) == 40
    val = build_dataset("nyud", root, "val", modality=modality)
    assert head_class_names(val) == {}
    assert load_checkpoint(tmp_path / "run" / "last")[1].config["dataset_options"] == {
        "modality": modality
    }
