"""``fcnseg report``: a run as one self-contained HTML page, looked at in a headless browser
where one is installed."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fcnseg.cli import main
from fcnseg.data.synthetic import SYNTHETIC_CLASSES, SyntheticShapes
from fcnseg.errors import FcnsegError
from fcnseg.report import pick_gallery, read_run, score_images, write_report
from fcnseg.train import fit, fit_staged, recipe

TINY_BACKBONE = {"width": 1 / 16, "fc_width": 16, "batch_norm": True}
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides: object):
    settings: dict[str, object] = dict(
        dataset="synthetic",
        dataset_options={"size": 32, "seed": 3},
        val_split="val",
        backbone=TINY_BACKBONE,
        batch_size=4,
        max_iter=6,
        eval_every=3,
        device="cpu",
    )
    settings.update(overrides)
    return recipe("scratch", "fcn8s-vgg16", **settings)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A six-step run on 32 x 32 generated images, scored on 6 of them every three steps."""
    folder = tmp_path_factory.mktemp("report") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(
            tiny_config(),
            folder,
            train_set=SyntheticShapes(16, size=32, seed=3),
            val_set=SyntheticShapes(6, size=32, seed=4),
            progress=False,
        )
    finally:
        torch.set_num_threads(threads)
    return folder


def figures(page: str) -> list[bytes]:
    """The PNGs embedded in the page, decoded."""
    found = re.findall(r'<img class="figure" alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    return [base64.b64decode(data) for data in found]


def test_report_of_a_short_run_is_one_self_contained_page(short_run: Path) -> None:
    path = write_report(short_run, dataset=SyntheticShapes(6, size=32, seed=4), gallery=2)
    assert path == short_run / "report.html"
    page = path.read_text()
    pngs = figures(page)
    # loss and rate, held-out metrics, IU per class, confusion matrix, gallery
    assert len(pngs) == 5
    for png in pngs:
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and 400 <= image.size[0] <= 1200
    for heading in (
        "Training",
        "Held-out metrics",
        "IU per class",
        "Confusion matrix",
        "Best and worst held-out images",
        "Configuration",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing fetched from elsewhere
    assert "mean IU" in page and "fcn8s-vgg16" in page


def test_the_gallery_takes_the_best_and_the_worst_images(short_run: Path) -> None:
    import fcnseg

    model = fcnseg.load_model(short_run / "best")
    dataset = SyntheticShapes(6, size=32, seed=4)
    scores, confusion = score_images(model, dataset, len(SYNTHETIC_CLASSES))
    assert confusion.sum() == 6 * 32 * 32
    # the histogram of the images one by one is the one recorded for the checkpoint
    np.testing.assert_array_equal(confusion, np.array(model.meta.metrics["confusion"]))
    picks = pick_gallery(scores, 2)
    ranked = sorted(s.mean_iu for s in scores)
    assert [kind for kind, _ in picks] == ["best", "best", "worst", "worst"]
    assert picks[0][1].mean_iu == ranked[-1] and picks[2][1].mean_iu == ranked[0]
    assert len(pick_gallery(scores[:1], 4)) == 1  # an image is shown once


def test_report_command_rebuilds_the_held_out_split_from_the_run(
    short_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "page.html"
    assert main(["report", str(short_run), "--out", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    page = out.read_text()
    assert len(figures(page)) == 5
    # the run's own held-out split (generated: seed 3, 32 x 32, 100 images) was rebuilt
    assert "<th>held-out images</th><td>100 scored for the gallery</td>" in page

    assert main(["report", str(tmp_path / "nothing")]) == 1
    assert "no such run folder" in capsys.readouterr().err


def test_a_staged_run_is_reported_stage_after_stage(tmp_path: Path) -> None:
    train, val = SyntheticShapes(8, size=32, seed=3), SyntheticShapes(4, size=32, seed=4)
    fit_staged(tiny_config(max_iter=2, eval_every=2), tmp_path, train_set=train, val_set=val)
    run = read_run(tmp_path)
    assert [p.name for p in run.stages] == [
        "stage1-fcn32s-vgg16",
        "stage2-fcn16s-vgg16",
        "stage3-fcn8s-vgg16",
    ]
    assert run.boundaries == [2, 4]
    assert [e["iteration"] for e in run.log if "loss" in e] == [1, 2, 3, 4, 5, 6]
    assert run.checkpoint == tmp_path / "stage3-fcn8s-vgg16" / "best"
    page = write_report(tmp_path, dataset=val).read_text()
    assert len(figures(page)) == 5 and "stage1-fcn32s-vgg16" in page


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.mark.skipif(
    _browser() is None,
    reason="no headless Chromium here; this check runs on this kind of machine once chromium "
    "is installed (apt-get install -y chromium)",
)
def test_the_report_renders_in_headless_chromium_at_1280_wide(
    short_run: Path, tmp_path: Path
) -> None:
    page = write_report(
        short_run, tmp_path / "report.html", dataset=SyntheticShapes(6, size=32, seed=4)
    )
    browser = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    url = page.resolve().as_uri()
    dom = subprocess.run(
        [*browser, "--window-size=1280,1000", "--virtual-time-budget=10000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    checks = dict(re.findall(r'data-([a-z]+)="(\d+)"', body.group(1)))
    # every figure decoded, none wider than the window, no sideways scrolling
    assert checks["figures"] == checks["rendered"] == "5", checks
    assert checks["overflow"] == "0", checks
    height = int(checks["height"])
    shot = tmp_path / "report.png"
    subprocess.run(
        [*browser, f"--window-size=1280,{height}", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    with Image.open(shot) as image:
        assert image.size == (1280, height)
        pixels = np.asarray(image.convert("L"), dtype=np.float32)
    assert pixels.std() > 20  # figures drawn, not a blank page


def test_a_folder_holding_one_run_names_it(tmp_path: Path) -> None:
    """``fcnseg report demo-out``: the demo's run is in demo-out/run; the error says so."""
    (tmp_path / "demo-out" / "run").mkdir(parents=True)
    (tmp_path / "demo-out" / "run" / "log.jsonl").write_text("")
    with pytest.raises(FcnsegError, match=r"the run folder inside it: .*demo-out/run$"):
        read_run(tmp_path / "demo-out")
    (tmp_path / "demo-out" / "run2").mkdir()
    (tmp_path / "demo-out" / "run2" / "log.jsonl").write_text("")
    with pytest.raises(FcnsegError, match=r"no stage folders\)$"):  # two: no guess
        read_run(tmp_path / "demo-out")
