"""The machine a benchmark ran on: CPU model, vector extensions, cores, load, versions."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import torch

_EXTENSIONS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile")


def cpu_model() -> str:
    """``lscpu``'s model name (``/proc/cpuinfo``'s where lscpu is missing)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    found = re.search(r"^Model name:\s*(.+)$", text, re.MULTILINE)
    if found:
        return found.group(1).strip()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        if found:
            return found.group(1).strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the results depend on, for the JSON and the table's heading."""
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        found = re.search(r"^flags\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        flags = set(found.group(1).split()) if found else set()
    return {
        "cpu": cpu_model(),
        "extensions": [e for e in _EXTENSIONS if e in flags],
        "cores": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def heading(info: dict[str, Any]) -> str:
    """One line: the CPU, its extensions, cores and load."""
    extensions = ", ".join(info["extensions"]) or "no AVX2"
    return (
        f"{info['cpu']} ({extensions}), {info['cores']} cores, load average "
        f"{info['load_average_1min']:.1f}, torch {info['torch']}"
    )
