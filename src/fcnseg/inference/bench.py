"""Timing, FLOP counting and memory measurement shared by ``fcnseg bench`` and ``benchmarks/``.

FLOPs follow the ``2 x multiply-accumulates`` convention of
``torch.utils.flop_counter.FlopCounterMode`` and are counted on the plain model: that is the
work the function needs, whichever way a faster path computes it. A rate is set against the
machine's own GEMM rate in the same precision, measured in the same run.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import json
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from fcnseg.inference.export import relative_error
from fcnseg.inference.optimize import input_channels, optimize_for_inference
from fcnseg.io.atomic import atomic_write
from fcnseg.models import head_scores
from fcnseg.runtime import DTYPES, resolve_precision

# "eager" is the plain model, fp32, as built: the baseline every speed-up is measured against.
PATHS = ("eager", "fp32", "bf16", "fp16", "auto")


@dataclass(frozen=True)
class Timing:
    """Seconds per call: the best and the median of the timed repeats."""

    best: float
    median: float
    repeats: int


@dataclass(frozen=True)
class Measurement:
    """One configuration's numbers, as printed in a table and written to JSON."""

    path: str
    batch: int
    height: int
    width: int
    gflop: float
    seconds: float
    seconds_per_image: float
    gflops: float
    gemm_gflops: float
    gemm_share: float
    peak_memory_mb: float | None

    def as_dict(self) -> dict[str, object]:
        """The fields, for ``json.dump``."""
        return asdict(self)


def machine_load() -> dict[str, float]:
    """The load average over the last minute beside this process's threads: above them,
    other work shares the cores and every timing here is slower than the machine's."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threads = torch.get_num_threads()
    if load > threads:
        print(
            f"warning: load average {load:.1f} on {threads} threads: other work shares the "
            "cores; timings will be slow and noisy",
            file=sys.stderr,
        )
    return {"load_average_1min": load, "threads": threads}


def he_initialize(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Random weights that carry the image through every layer, in place: a stand-in for
    trained weights when timing or measuring numerical error.

    PyTorch's default initialisation shrinks the signal layer after layer until the deep
    scores hardly depend on the image (and the FCN's score layers start at zero); He
    initialisation keeps it, so every pixel of a receptive field matters. Score layers give
    scores of a few units, as a trained net's; learnable upsamplings get noise that mixes
    classes; the final bilinear upsampling stays as built.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                gain = 1e-3 if "score" in name.rsplit(".", 1)[-1] else 2.0
                std = (gain / fan_in) ** 0.5
                module.weight.copy_(std * torch.randn(module.weight.shape, generator=generator))
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, nn.ConvTranspose2d) and module.weight.requires_grad:
                noise = torch.randn(module.weight.shape, generator=generator)
                module.weight.add_(0.1 * noise)
    return model


def precision_error(reference: torch.Tensor, result: torch.Tensor) -> dict[str, float]:
    """Relative L2 error of ``result``'s scores against ``reference``'s, and the share of
    pixels whose label (arg max over classes) differs."""
    disagreement = float((result.argmax(1) != reference.argmax(1)).double().mean())
    return {"relative_l2": relative_error(result, reference), "label_disagreement": disagreement}


def time_call(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1) -> Timing:
    """Times ``fn`` ``repeats`` times after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timing(min(times), statistics.median(times), repeats)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (2 x MACs) of the convolutions and matrix products ``fn`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of ``model(x)``, counted on a copy on the meta device: shapes, no arithmetic."""
    meta = copy.deepcopy(model).to("meta")
    with torch.no_grad():
        return count_flops(lambda: meta(x.to("meta")))


def gemm_rate(dtype: torch.dtype, *, sizes: Sequence[int] = (1024, 2048, 4096)) -> float:
    """The machine's square-GEMM rate in ``dtype``, FLOP/s: the best of a few sizes, each
    the best of a few calls (small ones fit the caches, large ones amortise the packing)."""
    best = 0.0
    for size in sizes:
        a = torch.randn(size, size).to(dtype)
        b = torch.randn(size, size).to(dtype)
        timing = time_call(lambda a=a, b=b: torch.mm(a, b), repeats=3, warmup=1)
        best = max(best, 2 * size**3 / timing.best)
    return best


@contextmanager
def peak_memory() -> Iterator[dict[str, float | None]]:
    """Peak resident memory above the level at entry, in MB, sampled every millisecond.

    Yields a dict whose ``"mb"`` is filled on exit (``None`` where ``/proc`` is absent).
    """
    result: dict[str, float | None] = {"mb": None}
    if not os.path.exists("/proc/self/statm"):
        yield result
        return
    gc.collect()
    _trim_heap()
    baseline = _resident_bytes()
    peak = [baseline]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _resident_bytes())
            stop.wait(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], _resident_bytes())
        result["mb"] = (peak[0] - baseline) / 2**20


def benchmark_inference(
    model: nn.Module,
    paths: Sequence[str],
    *,
    height: int = 500,
    width: int = 500,
    batch: int = 1,
    repeats: int = 3,
    gemm: dict[torch.dtype, float] | None = None,
) -> list[Measurement]:
    """Times one forward pass of ``model`` on an N x C x H x W batch along each of ``paths``.

    The paths are timed in turn, round after round (the best round counts), so that a load
    that comes and goes on a shared machine falls on all of them alike.

    Args:
        model: the plain model (fp32, CPU); it is not modified.
        paths: ``eager`` (the model as it is) or a precision for
            :func:`~fcnseg.inference.optimize_for_inference`, each.
        height: input height.
        width: input width.
        batch: images per pass.
        repeats: timed rounds.
        gemm: GEMM rates by dtype already measured in this run; measured if absent.
    """
    model = model.eval()
    x = _example(model, batch, height, width)
    flops = forward_flops(model, x)
    runs = {}
    for path in paths:
        run = model if path == "eager" else optimize_for_inference(model, path)
        label = "eager" if path == "eager" else run.precision
        runs[label] = (_no_grad(run, x), DTYPES["fp32" if path == "eager" else label])
    return interleaved(runs, x, flops, repeats, gemm)


def benchmark_training_step(
    model: nn.Module,
    paths: Sequence[str],
    *,
    height: int = 500,
    width: int = 500,
    batch: int = 1,
    repeats: int = 2,
    gemm: dict[torch.dtype, float] | None = None,
) -> list[Measurement]:
    """Times one forward and backward pass (pixelwise softmax loss) along each of ``paths``.

    ``eager``: fp32, as built; ``fp32``: channels-last; ``bf16``/``fp16``: channels-last under
    autocast, the way a training loop would use them. Timed round after round, as
    :func:`benchmark_inference`.
    """
    x = _example(model, batch, height, width)
    target = torch.randint(0, _num_classes(model), (batch, height, width))
    runs = {}
    for path in paths:
        precision = "fp32" if path == "eager" else resolve_precision(path)
        label = "eager" if path == "eager" else precision
        layout = torch.contiguous_format if path == "eager" else torch.channels_last
        net = copy.deepcopy(model).train().to(memory_format=layout)
        runs[label] = (
            _training_step(net, x.contiguous(memory_format=layout), target, DTYPES[precision]),
            DTYPES[precision],
        )
    first = next(iter(runs.values()))[0]
    flops = count_flops(first)
    return interleaved(runs, x, flops, repeats, gemm)


def _no_grad(net: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def forward() -> None:
        with torch.no_grad():
            net(x)

    return forward


def _training_step(
    net: nn.Module, x: torch.Tensor, target: torch.Tensor, dtype: torch.dtype
) -> Callable[[], None]:
    def step() -> None:
        net.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            scores = next(iter(head_scores(net, net(x)).values()))
        F.cross_entropy(scores.float(), target).backward()

    return step


def interleaved(
    runs: dict[str, tuple[Callable[[], None], torch.dtype]],
    x: torch.Tensor,
    flops: int,
    repeats: int,
    gemm: dict[torch.dtype, float] | None,
) -> list[Measurement]:
    memory = {}
    for label, (run, _) in runs.items():
        run()  # warms the path up (packed weights, an optimiser's state)
        with peak_memory() as peak:  # a call in the steady state
            run()
        memory[label] = peak["mb"]
    best = dict.fromkeys(runs, math.inf)
    for _ in range(repeats):
        for label, (run, _) in runs.items():
            best[label] = min(best[label], time_call(run, repeats=1, warmup=0).best)
    return [
        _measurement(label, x, flops, best[label], memory[label], dtype, gemm)
        for label, (_, dtype) in runs.items()
    ]


def format_table(rows: list[Measurement], *, baseline: Measurement | None = None) -> str:
    """A fixed-width table of ``rows``; speed-ups are against ``baseline`` when given."""
    header = (
        f"{'path':<8}{'input':>16}{'GFLOP':>9}{'s/image':>10}{'GFLOP/s':>10}"
        f"{'GEMM GFLOP/s':>14}{'of GEMM':>9}{'speed-up':>10}{'peak MB':>9}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        speedup = (
            "" if baseline is None else f"{baseline.seconds_per_image / row.seconds_per_image:.2f}x"
        )
        memory = "" if row.peak_memory_mb is None else f"{row.peak_memory_mb:.0f}"
        lines.append(
            f"{row.path:<8}{f'{row.batch}x{row.height}x{row.width}':>16}{row.gflop:>9.1f}"
            f"{row.seconds_per_image:>10.3f}{row.gflops:>10.0f}{row.gemm_gflops:>14.0f}"
            f"{row.gemm_share:>9.0%}{speedup:>10}{memory:>9}"
        )
    return "\n".join(lines)


def _measurement(
    path: str,
    x: torch.Tensor,
    flops: int,
    seconds: float,
    memory_mb: float | None,
    dtype: torch.dtype,
    gemm: dict[torch.dtype, float] | None,
) -> Measurement:
    if gemm is None:
        gemm = {}
    if dtype not in gemm:
        gemm[dtype] = gemm_rate(dtype)
    rate = flops / seconds
    batch, _, height, width = x.shape
    return Measurement(
        path=path,
        batch=batch,
        height=height,
        width=width,
        gflop=flops / 1e9,
        seconds=seconds,
        seconds_per_image=seconds / batch,
        gflops=rate / 1e9,
        gemm_gflops=gemm[dtype] / 1e9,
        gemm_share=rate / gemm[dtype],
        peak_memory_mb=memory_mb,
    )


def _example(model: nn.Module, batch: int, height: int, width: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    # a mean-subtracted 0-255 image has values of tens
    return 50 * torch.randn(batch, input_channels(model), height, width, generator=generator)


def _num_classes(model: nn.Module) -> int:
    return model.num_classes


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim_heap() -> None:
    # Freed tensors stay resident in glibc's heap until trimmed; trimming first makes the
    # baseline the memory in use, not the memory once used.
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def write_results(path: str | os.PathLike[str], results: dict) -> Path:
    """Writes a benchmark's results as indented JSON, creating the folder; returns the path."""
    path = Path(path)
    atomic_write(path, (json.dumps(results, indent=2) + "\n").encode())
    return path
