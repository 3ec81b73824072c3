"""The machine a benchmark ran on (``fcnseg.runtime.cpu_info``), its cores and load."""

from __future__ import annotations

import os
import platform
from typing import Any

from fcnseg.runtime import cpu_info


def machine() -> dict[str, Any]:
    """What the results depend on, for the JSON and the table's heading; ``class`` names the
    results file (``<script>-<class>.json``), since figures of different CPUs differ."""
    return {
        **cpu_info(),
        "cores": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }


def heading(info: dict[str, Any]) -> str:
    """One line: the CPU, its extensions, cores and load."""
    extensions = ", ".join(info["extensions"]) or "no vector extensions listed"
    return (
        f"{info['model']} ({info['capability']}: {extensions}), {info['cores']} cores, load "
        f"average {info['load_average_1min']:.1f}, torch {info['torch']}"
    )


def results_path(given: str | None, script: str, info: dict[str, Any]) -> str:
    """``given``, or ``benchmarks/results/<script>-<class>.json``."""
    return given or f"benchmarks/results/{script}-{info['class']}.json"
