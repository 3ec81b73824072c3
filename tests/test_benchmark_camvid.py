"""``benchmarks/camvid.py``'s command line: where its results go and which settings it refuses.

The script trains for over an hour, so only its argument handling runs here; the recipe it
calls is tested in ``tests/train``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "camvid.py"


@pytest.fixture(scope="module")
def camvid() -> ModuleType:
    spec = importlib.util.spec_from_file_location("camvid_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


def test_results_go_into_the_run_folder_unless_named(camvid: ModuleType, tmp_path: Path) -> None:
    # the default once was benchmarks/results/camvid-TRAIN_SPLIT.json, which a run following
    # docs/camvid.md replaced: the committed results of an earlier version of the recipe
    out = tmp_path / "run"
    assert camvid.parse_args(["--out", str(out)]).results == str(out / "results.json")
    named = camvid.parse_args(["--out", str(out), "--results", "mine.json"])
    assert named.results == "mine.json"
    assert camvid.parse_args(["--out", str(out), "--eval-only"]).results is None


@pytest.mark.parametrize(
    "scale", [["0", "1"], ["-1", "2"], ["nan", "2"], ["0.5", "inf"], ["a", "b"]]
)
def test_a_scale_that_is_not_a_finite_positive_factor_is_refused(
    camvid: ModuleType, scale: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        camvid.parse_args(["--scale", *scale])
    assert stopped.value.code == 2
    assert "expected a finite number above 0" in capsys.readouterr().err.splitlines()[-1]


def test_a_scale_range_is_recorded_as_given(camvid: ModuleType) -> None:
    assert camvid.parse_args(["--scale", "0.5", "2"]).scale == [0.5, 2.0]


def test_ohem_settings_are_taken_as_given_and_nonsense_refused(
    camvid: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    args = camvid.parse_args(["--ohem-thresh", "0.7", "--ohem-min-kept", "100000"])
    assert (args.ohem_thresh, args.ohem_min_kept) == (0.7, 100000)
    assert camvid.parse_args([]).ohem_thresh is None  # the recipe: no mining
    with pytest.raises(SystemExit):
        camvid.parse_args(["--ohem-min-kept", "1000"])  # a minimum of no mining
    assert "give both" in capsys.readouterr().err


def test_the_class_weights_power_reaches_the_config_and_nonsense_is_refused(
    camvid: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe_config = camvid.config_from_args(camvid.parse_args([]))
    assert (recipe_config.median_frequency, recipe_config.median_frequency_power) == (True, 0.5)
    config = camvid.config_from_args(camvid.parse_args(["--median-frequency-power", "0.25"]))
    assert config.median_frequency_power == 0.25
    # nothing else of the recipe moves
    assert {**config.to_dict(), "median_frequency_power": 0.5} == recipe_config.to_dict()
    with pytest.raises(SystemExit):
        camvid.parse_args(["--median-frequency-power", "0"])
    assert "expected a finite number above 0" in capsys.readouterr().err


def test_a_seed_repeats_the_recipe_as_another_run_and_nothing_else_moves(
    camvid: ModuleType,
) -> None:
    recipe_config = camvid.config_from_args(camvid.parse_args([]))
    assert recipe_config.seed == 0
    config = camvid.config_from_args(camvid.parse_args(["--seed", "1"]))
    assert config.seed == 1
    assert {**config.to_dict(), "seed": 0} == recipe_config.to_dict()


def test_steps_and_ohem_reach_the_stages(camvid: ModuleType) -> None:
    args = camvid.parse_args(
        ["--steps", "6720", "2592", "4896", "--ohem-thresh", "0.7", "--ohem-min-kept", "100000"]
    )
    config = camvid.config_from_args(args)
    assert [stage["max_iter"] for stage in config.stages] == [6720, 2592, 4896]
    assert config.max_iter == 4896
    assert (config.ohem_thresh, config.ohem_min_kept) == (0.7, 100000)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--ohem-thresh", "2"], "camvid.py: --ohem-thresh must be in (0, 1], got 2.0"),
        (["--colour-jitter", "1"], "camvid.py: --colour-jitter must be in [0, 1), got 1.0"),
        (["--scale", "2", "1"], "camvid.py: --scale must be two finite factors 0 < min <= max"),
    ],
)
def test_a_setting_out_of_range_is_one_line_naming_its_flag(
    camvid: ModuleType, argv: list[str], said: str, tmp_path: Path, capsys
) -> None:
    # once named by TrainConfig's field (ohem_thresh), after the CPU line
    # any folder passes the root check: nothing is read before the settings are checked
    assert camvid.main([*argv, "--root", str(tmp_path), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr()
    assert err.err.strip().splitlines() == [err.err.strip()] and err.err.startswith(said)
    assert "CPU:" not in err.out and not (tmp_path / "run").exists()


def test_steps_below_one_and_argparse_errors_are_one_line(camvid: ModuleType, capsys) -> None:
    with pytest.raises(SystemExit) as refused:
        camvid.parse_args(["--steps", "0", "1", "1"])
    assert refused.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--steps: '0': expected a whole number of at least 1" in lines[0]


def test_resume_or_eval_only_of_an_empty_folder_is_refused_before_anything_runs(
    camvid: ModuleType, tmp_path: Path, capsys
) -> None:
    # --resume of a folder with no run once started a new run of over an hour, silently;
    # --eval-only printed an empty table and exited 0
    out = tmp_path / "nothing"
    assert camvid.main(["--root", str(tmp_path), "--out", str(out), "--resume"]) == 1
    assert "no run to resume there" in capsys.readouterr().err
    assert camvid.main(["--root", str(tmp_path), "--out", str(out), "--eval-only"]) == 1
    assert "no trained stage to score" in capsys.readouterr().err
    assert not out.exists()
    # a file as --out: once refused only after reading the images, by a write under it
    (tmp_path / "file").write_text("mine")
    assert camvid.main(["--root", str(tmp_path), "--out", str(tmp_path / "file")]) == 1
    assert "a file, not a run folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "mine"
