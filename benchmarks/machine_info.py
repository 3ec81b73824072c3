"""The machine a benchmark ran on, for its heading and JSON: fcnseg.runtime's CPU probe plus
the cores, the load and the versions."""

from __future__ import annotations

import os
import platform
from typing import Any

from fcnseg.runtime import cpu_info


def machine() -> dict[str, Any]:
    """What the results depend on, for the JSON and the table's heading."""
    info = cpu_info()
    return {
        **info,
        "cpu": info["model"],
        "cores": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
    }


def heading(info: dict[str, Any]) -> str:
    """One line: the CPU, its extensions, cores and load."""
    extensions = ", ".join(info["extensions"]) or "no AVX2"
    return (
        f"{info['cpu']} ({extensions}, capability {info['capability']}), {info['cores']} cores, "
        f"load average {info['load_average_1min']:.1f}, torch {info['torch']}"
    )
