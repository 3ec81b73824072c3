"""Fuzzing the two weight formats fcnseg reads: tens of thousands of damaged files.

Valid files are damaged at random (truncated, bytes flipped, bytes inserted, a stretch
duplicated or zeroed, a length-like byte set to 0xff) and read:

* ``.caffemodel`` (``fcnseg.io.read_caffemodel``): a small modern file (``layer``, BlobShape)
  and a small legacy one (V1 ``layers``, num/channels/height/width), as tests/io/test_fuzz.py
  damages them, and a 1/16-width VGG16 FCN-8s (about 1 MB);
* fcnseg's own ``.safetensors`` (``fcnseg.load_model``): a 1/16-width FCN-32s with its
  record, damaged anywhere, in the header only, or in the record's JSON.

Every file must give blobs / a model, or one FcnsegError line naming it; anything else is a
crash. Each read runs under a 10 s alarm (longer is a hang) and tracemalloc (the Python and
numpy memory it allocates, against the file's size); the safetensors reads run in an address
space capped at 1 GiB above what the process maps, so that an allocation a file does not
justify fails instead of exhausting the machine. Run from the repository root::

    python benchmarks/fuzz.py            # 10,000 caffemodel + 2,000 safetensors cases

Prints a table, writes benchmarks/results/fuzz-<CPU class>.json, and
exits 1 on any crash or hang.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import resource
import signal
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from machine_info import heading, machine, results_path

import fcnseg
from fcnseg.errors import FcnsegError
from fcnseg.inference.bench import write_results
from fcnseg.io import read_caffemodel
from fcnseg.io.weights import ModelMeta, save_weights

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "io"))
from weight_files import fcn_blobs, write_caffemodel  # noqa: E402

HANG_S = 10
# What any read allocates whatever the file (Python objects, the exception, protobuf's and
# safetensors' bookkeeping), as tests/io/test_fuzz.py allows it; the rest must scale.
FIXED_BYTES = 16 * 1024


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--caffemodel-cases", type=int, default=10_000)
    parser.add_argument("--safetensors-cases", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--results", help="JSON output (default: benchmarks/results/fuzz-<CPU class>.json)"
    )
    return parser.parse_args(argv)


def damage(data: bytes, rng: random.Random, region: tuple[int, int] | None = None) -> bytes:
    """One to four random mutations of ``data``, each within ``region`` (start, end) if given."""
    damaged = bytearray(data)
    low, high = region or (0, len(data))
    for _ in range(rng.randint(1, 4)):
        if not damaged:
            break
        high = min(high, len(damaged))
        at = rng.randrange(low, max(low + 1, high))
        kind = rng.choice(("truncate", "flip", "flip", "insert", "duplicate", "zero", "ff"))
        if kind == "truncate":
            del damaged[at:]
        elif kind == "flip" and at < len(damaged):
            damaged[at] = rng.randrange(256)
        elif kind == "insert":
            damaged[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == "duplicate":
            length = rng.randint(1, 64)
            damaged[at:at] = damaged[at : at + length]
        elif kind == "zero":
            length = rng.randint(1, 32)
            damaged[at : at + length] = bytes(len(damaged[at : at + length]))
        elif kind == "ff" and at < len(damaged):
            damaged[at] = 0xFF
    return bytes(damaged)


class HangError(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise HangError


@contextlib.contextmanager
def address_space_cap(extra: int = 1 << 30) -> Iterator[None]:
    """Caps the address space at what the process maps now plus ``extra`` (Linux)."""
    status = Path("/proc/self/status")
    if not status.is_file():
        yield
        return
    mapped = next(
        int(line.split()[1]) * 1024
        for line in status.read_text().splitlines()
        if line.startswith("VmSize:")
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class Tally:
    """Outcomes of one kind of file."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cases = self.read = self.errors = 0
        self.crashes: list[str] = []
        self.hangs = 0
        self.slowest_s = 0.0
        self.slowest_outcome = ""
        self.peak_bytes = 0
        self.peak_ratio = 0.0
        self.sizes: list[int] = []

    def run(self, path: Path, read: Callable[[Path], Any]) -> None:
        self.cases += 1
        size = path.stat().st_size
        self.sizes.append(size)
        tracemalloc.start()
        signal.alarm(HANG_S)
        start = time.perf_counter()
        outcome = "read"
        try:
            read(path)
            self.read += 1
        except FcnsegError as error:
            message = outcome = str(error)
            if message.startswith(str(path)) and "\n" not in message:
                self.errors += 1
            else:
                self.crashes.append(f"FcnsegError not one line naming the file: {message!r}")
        except HangError:
            self.hangs += 1
            outcome = "hang"
        except Exception as error:  # noqa: BLE001 - anything else is the finding
            outcome = f"{type(error).__name__}: {error}"[:300]
            self.crashes.append(outcome)
        finally:
            signal.alarm(0)
            elapsed = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        if elapsed > self.slowest_s:
            self.slowest_s, self.slowest_outcome = elapsed, outcome
        self.peak_bytes = max(self.peak_bytes, peak)
        self.peak_ratio = max(self.peak_ratio, max(0, peak - FIXED_BYTES) / max(size, 1))

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.name,
            "cases": self.cases,
            "read": self.read,
            "one_line_errors": self.errors,
            "crashes": len(self.crashes),
            "crash_examples": self.crashes[:5],
            "hangs": self.hangs,
            "slowest_ms": round(1000 * self.slowest_s, 2),
            "slowest_outcome": self.slowest_outcome.replace(str(Path(tempfile.gettempdir())), "")[
                :200
            ],
            "peak_traced_bytes": self.peak_bytes,
            "peak_beyond_16kB_over_file_size": round(self.peak_ratio, 2),
            "file_bytes": [min(self.sizes), max(self.sizes)] if self.sizes else [],
        }


def caffemodel_sources(folder: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    small = {
        "conv1_1": [rng.standard_normal((2, 3, 1, 1), dtype=np.float32), np.zeros(2, np.float32)],
        "fc6": [rng.standard_normal((3, 4), dtype=np.float32), np.ones(3, np.float32)],
        "upscore": [rng.standard_normal((1, 1, 2, 2))],
    }
    vgg = fcn_blobs("fcn8s-vgg16", 6, width=1 / 16, fc_width=16)
    return {
        "caffemodel modern": write_caffemodel(folder / "m.caffemodel", small).read_bytes(),
        "caffemodel legacy": write_caffemodel(
            folder / "l.caffemodel", small, legacy=True
        ).read_bytes(),
        "caffemodel VGG16 FCN-8s": write_caffemodel(folder / "v.caffemodel", vgg).read_bytes(),
    }


def safetensors_source(folder: Path) -> bytes:
    from fcnseg.data.synthetic import SYNTHETIC_INFO

    torch.manual_seed(0)
    options = {"width": 1 / 16, "fc_width": 16, "batch_norm": False}
    model = fcnseg.build_model("fcn32s-vgg16", num_classes=6, geometry="lean", **options)
    meta = ModelMeta(
        model="fcn32s-vgg16",
        build={"num_classes": 6, "geometry": "lean", **options},
        classes=tuple(SYNTHETIC_INFO.class_names),
        palette=tuple(SYNTHETIC_INFO.palette),
        input_convention=SYNTHETIC_INFO.convention,
    )
    path = save_weights(folder / "good.safetensors", model.state_dict(), meta)
    fcnseg.load_model(path)
    return path.read_bytes()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine()
    print(heading(info))
    torch.set_num_threads(1)
    signal.signal(signal.SIGALRM, _alarm)
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="fcnseg-fuzz-"))
    started = time.perf_counter()
    tallies = []

    sources = caffemodel_sources(folder)
    for data in sources.values():  # warm protobuf before measuring
        (folder / "warm.caffemodel").write_bytes(data)
        read_caffemodel(folder / "warm.caffemodel")
    # most cases on the small files, where damage lands on structure
    shares = {"caffemodel modern": 0.45, "caffemodel legacy": 0.45, "caffemodel VGG16 FCN-8s": 0.1}
    for name, data in sources.items():
        tally = Tally(name)
        path = folder / "damaged.caffemodel"
        for _ in range(round(shares[name] * args.caffemodel_cases)):
            path.write_bytes(damage(data, rng))
            tally.run(path, read_caffemodel)
        tallies.append(tally)

    good = safetensors_source(folder)
    header_end = 8 + int.from_bytes(good[:8], "little")
    record_at = good.find(b'{\\"format')
    regions = {
        "safetensors anywhere": None,
        "safetensors header": (0, header_end),
        "safetensors record JSON": (max(record_at, 8), header_end),
    }
    path = folder / "damaged.safetensors"
    with address_space_cap():
        for name, region in regions.items():
            tally = Tally(name)
            for _ in range(args.safetensors_cases // len(regions)):
                path.write_bytes(damage(good, rng, region))
                tally.run(path, fcnseg.load_model)
            tallies.append(tally)

    records = [t.record() for t in tallies]
    header = (
        f"{'file':<26} {'cases':>6} {'read':>6} {'1-line errors':>13} {'crashes':>7} "
        f"{'hangs':>5} {'slowest ms':>10} {'peak traced':>11} {'(peak-16kB)/size':>16}"
    )
    print(header)
    print("-" * len(header))
    for r in records:
        print(
            f"{r['kind']:<26} {r['cases']:>6} {r['read']:>6} {r['one_line_errors']:>13} "
            f"{r['crashes']:>7} {r['hangs']:>5} {r['slowest_ms']:>10.1f} "
            f"{r['peak_traced_bytes'] / 1024:>9.0f}kB {r['peak_beyond_16kB_over_file_size']:>16.2f}"
        )
    total = {
        "cases": sum(r["cases"] for r in records),
        "caffemodel_cases": sum(r["cases"] for r in records if r["kind"].startswith("caffe")),
        "crashes": sum(r["crashes"] for r in records),
        "hangs": sum(r["hangs"] for r in records),
        "slowest_ms": max(r["slowest_ms"] for r in records),
        "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"{total['cases']} cases ({total['caffemodel_cases']} caffemodel): "
        f"{total['crashes']} crashes, {total['hangs']} hangs, slowest "
        f"{total['slowest_ms']:.1f} ms, process peak RSS {total['process_peak_rss_mb']} MB, "
        f"{total['seconds']:.0f} s"
    )
    for r in records:
        for example in r["crash_examples"]:
            print(f"crash ({r['kind']}): {example}")
    path = write_results(
        results_path(args.results, "fuzz", info),
        {
            "machine": info,
            "command": " ".join(["python", "benchmarks/fuzz.py", *(argv or sys.argv[1:])]),
            "seed": args.seed,
            "hang_limit_s": HANG_S,
            "kinds": records,
            "total": total,
        },
    )
    print(f"wrote {path}")
    return 1 if total["crashes"] or total["hangs"] else 0


if __name__ == "__main__":
    sys.exit(main())
