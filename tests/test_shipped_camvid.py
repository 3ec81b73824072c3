"""The shipped CamVid FCN-8s reproduces the val mean IU its metadata reports (issue 4).

The model was trained from scratch by ``benchmarks/camvid.py``; its metadata records the four
metrics it scored on CamVid ``val`` at full 480x360, void ignored. Scored again here, through
the same loader ``--model camvid-fcn8s`` uses, it must give the same mean IU within 0.1
percentage points.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fcnseg import list_pretrained, load_model
from fcnseg.data import build_dataset
from fcnseg.evaluation import evaluate, evaluation_loader
from fcnseg.io.weights import WEIGHTS_DIR

CAMVID = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "camvid"
NAME = "camvid-fcn8s"


def test_camvid_fcn8s_is_shipped() -> None:
    assert NAME in list_pretrained()
    model = load_model(NAME)
    metadata = model.meta
    assert metadata.model == "fcn8s-vgg16"
    assert metadata.dataset == "camvid"
    assert len(metadata.classes) == len(metadata.palette) == 11
    assert metadata.metrics["split"] == "val"
    # shipped inside the package: under 20 MB (issue 12)
    assert (WEIGHTS_DIR / f"{NAME}.safetensors").stat().st_size < 20_000_000
    assert not model.training  # load_model gives the model in eval mode
    scores = model(torch.zeros(1, 3, 37, 53))
    assert scores.shape == (1, 11, 37, 53)


@pytest.mark.slow
@pytest.mark.skipif(
    not CAMVID.is_dir(),
    reason=f"CamVid (SegNet's release) not found at {CAMVID}; runs on any machine once it is there",
)
def test_camvid_fcn8s_reproduces_its_val_mean_iu() -> None:
    model = load_model(NAME)
    # the images in the convention the weights declare, as ``fcnseg eval`` feeds them
    val = build_dataset("camvid", CAMVID, "val", convention=model.meta.input_convention)
    assert len(val) == 101
    metrics = evaluate(model, evaluation_loader(val, batch_size=1), 11)
    reported = model.meta.metrics["mean_iu"]
    assert abs(100 * metrics["mean_iu"] - 100 * reported) <= 0.1
