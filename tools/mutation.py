"""The mutation check of fcnseg's core modules: mutmut, then a reviewed summary.

    python tools/mutation.py                # a full run (about an hour on two busy cores)
    python tools/mutation.py --report       # the summary of the last run, nothing re-run
    python tools/mutation.py --survivors    # re-test only the last run's survivors

What is mutated and which tests run is ``[tool.mutmut]`` in pyproject.toml; mutmut keeps its
copy of the sources and its verdicts in ``mutants/`` (ignored by git). Each survivor is either
killed by a test or listed in ``tools/mutation_equivalents.toml`` with the reason it changes no
behaviour (``equivalent``) or changes one only a CUDA device or an NCCL group can show
(``cuda``); an entry records the mutated line, so that an entry whose mutant has changed (the
source moved on) is reported as stale instead of silently hiding a new survivor.

``--survivors`` is the quick loop while writing tests: the mutants killed (or timed out) in the
last run stay so (tests are only ever added), and only the survivors and untested mutants are
run again. mutmut re-runs everything when ``[tool.mutmut]``'s test selection has changed, so
there the verdicts of the killed mutants are carried over from the last run explicitly.

Exit status: 0 when every survivor is a listed equivalent, 1 otherwise. Slow, so not in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = ROOT / "tools" / "mutation_equivalents.toml"
VERDICTS = ROOT / "mutants" / "verdicts.json"  # the last run's, for --survivors

# mutmut's exit codes (mutmut.stats.status_by_exit_code), grouped for the summary
KILLED = {1, 3, 37}
SURVIVED = {0}
TIMEOUT = {24, -24, 36, 152, 255}
NO_TESTS = {5, 33}


def _mutmut(*args: str) -> int:
    """Runs mutmut from the repository root, on one thread per test process."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # the tests must import mutmut's mutated copy of src/
    mutmut = Path(sys.executable).with_name("mutmut")
    return subprocess.call([str(mutmut), *args], cwd=ROOT, env=env)


def _verdicts() -> dict[str, int | None]:
    """Every mutant's exit code (None: not checked), from mutmut's files in ``mutants/``."""
    verdicts: dict[str, int | None] = {}
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        verdicts.update(json.loads(meta.read_text())["exit_code_by_key"])
    return verdicts


def _source(name: str) -> Path:
    """The source file of a mutant, ``fcnseg.models.geometry.x_...`` -> src/fcnseg/models/..."""
    module = name.rpartition(".")[0]
    path = Path("src", *module.split("."))
    return path / "__init__.py" if (ROOT / path).is_dir() else path.with_suffix(".py")


def _restore_killed(previous: dict[str, int | None]) -> int:
    """Puts back the kills (and timeouts) of the previous run that mutmut reset (a changed
    test selection)."""
    restored = 0
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        for name, code in codes.items():
            if code is None and previous.get(name) in KILLED | TIMEOUT:
                codes[name] = previous[name]
                restored += 1
        meta.write_text(json.dumps(data, indent=4))
    return restored


def _diff(name: str) -> str:
    """mutmut's diff of one mutant (run in-process: the repository root is the cwd)."""
    os.chdir(ROOT)
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    return get_diff_for_mutant(name, path=_source(name))


def _mutated_line(diff: str) -> str:
    """The mutant's line as the diff shows it (stripped), or the line it removed."""
    lines = diff.splitlines()
    added = [line[1:].strip() for line in lines if line[:1] == "+" and line[:3] != "+++"]
    if added:
        return added[0]
    removed = [line[1:].strip() for line in lines if line[:1] == "-" and line[:3] != "---"]
    return f"removed: {removed[0]}" if removed else ""


def _equivalents() -> dict[str, dict[str, str]]:
    if not EQUIVALENTS.is_file():
        return {}
    return tomllib.loads(EQUIVALENTS.read_text())


def report(verbose: bool = True) -> int:
    verdicts = _verdicts()
    if not verdicts:
        print("no mutants: run `python tools/mutation.py` first")
        return 1
    reviewed = _equivalents()
    counts: Counter[str] = Counter()
    unexplained, stale = [], []
    for name, code in sorted(verdicts.items()):
        if code in KILLED:
            counts["killed"] += 1
        elif code in SURVIVED:
            entry = reviewed.get(name)
            if entry and entry.get("mutated") == _mutated_line(_diff(name)):
                counts["cuda only" if entry.get("kind") == "cuda" else "equivalent"] += 1
            else:
                counts["survived"] += 1
                (stale if entry else unexplained).append(name)
        elif code in TIMEOUT:
            counts["timeout"] += 1
        elif code in NO_TESTS:
            counts["no tests"] += 1
        elif code is None:
            counts["not checked"] += 1
        else:
            counts["other"] += 1
    stale += sorted(set(reviewed) - set(verdicts))
    total = len(verdicts)
    detected = counts["killed"] + counts["timeout"]
    judged = total - counts["equivalent"] - counts["not checked"]
    print(
        "| mutants | killed | timeout | no tests | survived | equivalent | CUDA only "
        "| score | score on a CPU |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| {total} | {counts['killed']} | {counts['timeout']} | {counts['no tests']} "
        f"| {counts['survived']} | {counts['equivalent']} | {counts['cuda only']} "
        f"| {_percent(detected, judged)} | {_percent(detected, judged - counts['cuda only'])} |"
    )
    if counts["not checked"] or counts["other"]:
        print(f"not checked: {counts['not checked']}, other verdicts: {counts['other']}")
    print(
        "score: (killed + timeout) / (mutants - equivalent); on a CPU, the CUDA-only mutants "
        "(reviewed: only a CUDA device or an NCCL group can show them) are left out too"
    )
    if verbose:
        for name in unexplained:
            print(f"\nsurvived: {name}\n{_diff(name)}")
    for name in stale:
        print(f"stale entry in {EQUIVALENTS.name} (its mutant changed or is gone): {name}")
    return 0 if not unexplained and not stale else 1


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--report", action="store_true", help="summarise the last run only")
    mode.add_argument("--survivors", action="store_true", help="re-test the last survivors")
    parser.add_argument("--jobs", type=int, default=2, help="test processes at once")
    parser.add_argument("--quiet", action="store_true", help="no diffs of the survivors")
    args = parser.parse_args()
    if args.survivors:
        previous = _verdicts()
        again = [n for n, code in previous.items() if code not in KILLED | TIMEOUT]
        if not again:
            print("no survivors to re-test")
            return report(not args.quiet)
        VERDICTS.write_text(json.dumps(previous))
        _mutmut("run", "--max-children", str(args.jobs), *again)
        restored = _restore_killed(previous)
        if restored:
            print(f"carried over {restored} kills of the previous run")
    elif not args.report:
        _mutmut("run", "--max-children", str(args.jobs))
    return report(not args.quiet)


if __name__ == "__main__":
    sys.exit(main())
