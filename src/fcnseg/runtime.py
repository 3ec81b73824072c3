"""Where and in what precision a net runs: devices, precisions, autocast, the CPU probe.

One vocabulary for training, evaluation, inference and the benchmarks:

* devices: ``auto`` (CUDA when available), ``cpu``, ``cuda``;
* precisions of inference: ``auto`` (the fastest the device runs natively), ``fp32``,
  ``bf16``, ``fp16``;
* autocast modes of training and evaluation: ``none``, ``bf16``, ``fp16``.

Whether a CPU runs bf16 or fp16 natively is asked of oneDNN (the library whose kernels the
convolutions run on), once, here: AVX512-BF16 or AMX for bf16, AVX512-FP16 or AMX-FP16 for
fp16. AVX2-only CPUs have neither; there the emulated paths are slower than fp32.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import warnings
from pathlib import Path
from typing import Any

import torch

from fcnseg.errors import FcnsegError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AMP_MODES = ("none", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def choose_device(preference: str = "auto") -> torch.device:
    """The device ``preference`` names: ``auto`` is CUDA when available, else the CPU.

    Raises:
        FcnsegError: an unknown name, or ``cuda`` without a CUDA device.
    """
    if preference not in DEVICES:
        raise FcnsegError(f"unknown device '{preference}'; choose one of {', '.join(DEVICES)}")
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise FcnsegError("device 'cuda' requested but no CUDA device is available")
    return torch.device(preference)


@functools.cache
def _cpu_native() -> frozenset[str]:
    native = {"fp32"}
    mkldnn = getattr(torch.ops, "mkldnn", None)
    try:
        if mkldnn is not None and torch.backends.mkldnn.is_available():
            if torch.ops.mkldnn._is_mkldnn_bf16_supported():
                native.add("bf16")
            if torch.ops.mkldnn._is_mkldnn_fp16_supported():
                native.add("fp16")
    except (AttributeError, RuntimeError):
        pass
    return frozenset(native)


def native_precisions(device: torch.device | str = "cpu") -> list[str]:
    """The precisions ``device`` computes natively (fp32 always), fastest last."""
    device = torch.device(device)
    if device.type == "cuda":
        return ["fp32", "fp16", *(["bf16"] if torch.cuda.is_bf16_supported() else [])]
    return [p for p in ("fp32", "fp16", "bf16") if p in _cpu_native()]


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``auto`` becomes the fastest precision ``device`` has; others are checked against it.

    On a CPU ``auto`` is bf16 where it is native, else fp32 (never CPU fp16: where it is
    native, bf16 is too, and bf16 keeps fp32's range). On CUDA it is fp16.

    Raises:
        FcnsegError: an unknown precision, or one the device does not run natively.
    """
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise FcnsegError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
    available = native_precisions(device)
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if "bf16" in available else "fp32"
    if precision not in available:
        raise FcnsegError(
            f"precision '{precision}' is not supported natively on this {device.type} device; "
            f"available: {', '.join(available)}"
        )
    return precision


def amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an amp mode on ``device``, or None for float32.

    bf16 on a CPU without native bf16 warns and gives None: autocast would emulate it, slower
    than float32.

    Raises:
        FcnsegError: an unknown mode, or fp16 on a CPU.
    """
    if mode not in AMP_MODES:
        raise FcnsegError(f"unknown amp mode '{mode}'; choose one of {', '.join(AMP_MODES)}")
    if mode == "none":
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise FcnsegError("amp fp16 needs a CUDA device; on a CPU use bf16")
        return torch.float16
    if "bf16" not in native_precisions(device):
        warnings.warn(f"bf16 is not native on this {device.type}; running in float32", stacklevel=2)
        return None
    return torch.bfloat16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` on ``device``'s type, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# The x86 extensions that decide which kernels run, as /proc/cpuinfo names them.
EXTENSIONS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16")


def cpu_info() -> dict[str, Any]:
    """What the benchmarks print first and record: the CPU model, torch's kernel capability
    (``DEFAULT``, ``AVX2``, ``AVX512``...), the vector and matrix extensions present, the
    natively run precisions, the class results are filed under (:func:`cpu_class`) and the
    thread count. Figures from different CPUs are never compared."""
    model, flags = _cpu_model_and_flags()
    return {
        "model": model,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "extensions": [flag for flag in EXTENSIONS if flag in flags],
        "native_precisions": native_precisions("cpu"),
        "class": cpu_class(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def cpu_class() -> str:
    """The kind of CPU, for result file names: ``amx``, ``avx512-bf16``, ``avx512``, ``avx2``,
    else torch's capability in lower case."""
    _, flags = _cpu_model_and_flags()
    for flag, name in (
        ("amx_bf16", "amx"),
        ("avx512_bf16", "avx512-bf16"),
        ("avx512f", "avx512"),
        ("avx2", "avx2"),
    ):
        if flag in flags:
            return name
    return str(torch.backends.cpu.get_cpu_capability()).lower()


@functools.cache
def _cpu_model_and_flags() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or platform.machine(), frozenset()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = frozenset(value.split())
            if flags and model != (platform.processor() or platform.machine()):
                break
    return model, flags
