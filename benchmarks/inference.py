"""The paper's efficiency claims on this machine: FCN-8s VGG16 at 500x500, per path.

Three tables, printed and written as JSON:

1. **Inference** (one forward pass of the paper's "typical image", 500x500), per geometry and
   path: ``eager`` is the plain fp32 model, the others go through
   ``fcnseg.optimize_for_inference`` in that precision. Seconds per image, GFLOP/s achieved,
   that rate as a share of this machine's GEMM rate in the same precision (measured in the
   same run), peak memory, and each precision's error against fp32 (relative L2 of the
   scores, share of labels that differ). The caffe geometry is the published nets' exactly;
   the lean one shows the FLOPs the 100-pixel padding costs.
2. **Training step** (forward, pixelwise loss, backward): eager fp32, channels-last fp32, and
   channels-last under bf16 autocast.
3. **Dense output** (section 3.2 against 3.3): FCN-32s's in-network upsampling, shift-and-
   stitch (f x f = 1024 shifted passes) and the rarefied net, in FLOPs at full size
   (counted on the meta device) and in seconds at a reduced width and size (all three
   measured, fp32 eager). The lean geometry, so that a shifted pass is not mostly padding.

Weights are random (He initialisation: every layer carries the signal, see
``fcnseg.inference.bench.he_initialize``); speed does not depend on them. Run from the
repository root with nothing else running::

    python benchmarks/inference.py
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import torch

import fcnseg
from fcnseg.inference import (
    native_precisions,
    optimize_for_inference,
    rarefy,
    resolve_precision,
)
from fcnseg.inference.bench import (
    Measurement,
    benchmark_inference,
    benchmark_training_step,
    count_flops,
    format_table,
    gemm_rate,
    he_initialize,
    machine_load,
    precision_error,
    time_call,
    write_results,
)
from fcnseg.inference.dense import fcn32s_score_chain, shift_and_stitch, total_stride
from fcnseg.inference.optimize import DTYPES

# Targets of issue 6, checked at the end.
FASTEST_EXACT_SPEEDUP = 2.2


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=torch.get_num_threads(),
        help="CPU threads (default: all); fewer when other work holds some cores",
    )
    parser.add_argument("--model", default="fcn8s-vgg16")
    parser.add_argument("--size", type=int, nargs=2, default=(500, 500), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes")
    parser.add_argument("--train-repeats", type=int, default=1, help="timed training steps")
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=("inference", "training", "dense"),
        help="tables to leave out",
    )
    parser.add_argument(
        "--dense-size",
        type=int,
        default=96,
        help="image side for the measured shift-and-stitch comparison (1024 passes)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time torch.compile (inductor, frozen weights) in the fastest precision",
    )
    parser.add_argument(
        "--checkpoint", help="also measure each precision's error with these trained weights..."
    )
    parser.add_argument(
        "--images", nargs="*", default=[], help="...on these image files (e.g. CamVid val)"
    )
    parser.add_argument("--results", default="benchmarks/results/inference.json")
    return parser.parse_args(argv)


def inference_table(args: argparse.Namespace, gemm: dict) -> list[dict]:
    height, width = args.size
    paths = ["eager", *native_precisions()]
    rows = []
    for geometry in ("caffe", "lean"):
        model = he_initialize(
            fcnseg.build_model(args.model, num_classes=21, geometry=geometry)
        ).eval()
        measured = benchmark_inference(
            model, paths, height=height, width=width, repeats=args.repeats, gemm=gemm
        )
        print(f"\n{args.model}, {geometry} geometry, forward pass")
        print(format_table(measured, baseline=measured[0]))
        x = 50 * torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            reference = model(x)
        for row in measured:
            error = {"relative_l2": 0.0, "label_disagreement": 0.0}
            if row.path != "eager":
                error = precision_error(reference, optimize_for_inference(model, row.path)(x))
                print(
                    f"  {row.path}: relative L2 error {error['relative_l2']:.1e}, "
                    f"labels differing {error['label_disagreement']:.2%}"
                )
            rows.append({"geometry": geometry, **row.as_dict(), **error})
        if args.compile:
            rows.append({"geometry": geometry, **compiled_forward(model, x, measured[0])})
        del model
    return rows


def compiled_forward(model: torch.nn.Module, x: torch.Tensor, eager: Measurement) -> dict:
    """torch.compile's best on this net, for comparison: inductor with frozen weights."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    precision = resolve_precision("auto")
    net = copy.deepcopy(model).to(DTYPES[precision], memory_format=torch.channels_last)
    compiled = torch.compile(net, dynamic=False)
    x = x.to(DTYPES[precision], memory_format=torch.channels_last)
    started = time.perf_counter()
    with torch.no_grad():
        compiled(x)
        compile_seconds = time.perf_counter() - started
        seconds = time_call(lambda: compiled(x), repeats=3, warmup=0).best
    print(
        f"  torch.compile ({precision}, freezing): {seconds:.3f} s/image "
        f"({eager.seconds_per_image / seconds:.2f}x eager), compiling took {compile_seconds:.0f} s"
    )
    return {
        "path": f"compile-{precision}",
        "seconds_per_image": seconds,
        "compile_seconds": compile_seconds,
    }


def training_table(args: argparse.Namespace, gemm: dict) -> list[dict]:
    height, width = args.size
    paths = ["eager", "fp32"] + (["bf16"] if "bf16" in native_precisions() else [])
    rows = []
    for geometry in ("caffe", "lean"):
        model = he_initialize(fcnseg.build_model(args.model, num_classes=21, geometry=geometry))
        measured = benchmark_training_step(
            model, paths, height=height, width=width, repeats=args.train_repeats, gemm=gemm
        )
        rows.extend({"geometry": geometry, **row.as_dict()} for row in measured)
        print(f"\n{args.model}, {geometry} geometry, training step (forward + backward)")
        print(format_table(measured, baseline=measured[0]))
        del model
    return rows


def dense_table(args: argparse.Namespace) -> list[dict]:
    """Section 3.2's two ways to dense output against section 3.3's upsampling."""
    height, width = args.size
    side = args.dense_size
    f = 32  # VGG16's total stride, checked below
    # Full width and size: FLOPs only (shift-and-stitch's 1024 passes would take an hour).
    # Width 1/8 at side x side: FLOPs and seconds, all three run (fp32 eager).
    full = fcnseg.build_model("fcn32s-vgg16", num_classes=21, geometry="lean")
    small = he_initialize(
        fcnseg.build_model(
            "fcn32s-vgg16", num_classes=21, geometry="lean", width=1 / 8, fc_width=64
        )
    ).eval()
    methods = {
        "in-network upsampling (FCN-32s)": lambda net, x: net(x),
        f"shift-and-stitch ({f}x{f} passes)": lambda net, x: shift_and_stitch(
            fcn32s_score_chain(net), x, f
        ),
        "rarefied filters (one pass)": lambda net, x: rarefy(fcn32s_score_chain(net))(x),
    }
    assert total_stride(fcn32s_score_chain(small)) == f
    big_input = torch.empty(1, 3, height, width, device="meta")
    small_input = 50 * torch.randn(1, 3, side, side)
    meta_full, meta_small = full.to("meta"), copy.deepcopy(small).to("meta")
    print(
        f"\nDense output (section 3.2 vs 3.3), VGG16 FCN-32s, lean geometry: GFLOP at "
        f"{height}x{width}; GFLOP and seconds at width 1/8, {side}x{side}"
    )
    header = (
        f"{'method':<36}{'GFLOP':>10}{'x':>6}{'GFLOP small':>13}{'x':>6}{'seconds':>10}{'x':>6}"
    )
    print(header + "\n" + "-" * len(header))
    rows = []
    first: dict | None = None
    for name, method in methods.items():
        with torch.no_grad():
            flops = count_flops(lambda m=method: m(meta_full, big_input))
            small_flops = count_flops(lambda m=method: m(meta_small, small_input.to("meta")))
            seconds = time_call(
                lambda m=method: m(small, small_input),
                repeats=1,
                warmup=0 if "shift" in name else 1,  # 1024 passes are their own warm-up
            ).best
        row = {
            "method": name,
            "gflop_full": flops / 1e9,
            "gflop_small": small_flops / 1e9,
            "seconds_small": seconds,
            "small_size": side,
        }
        first = first or row
        rows.append(row)
        print(
            f"{name:<36}{flops / 1e9:>10.0f}{flops / 1e9 / first['gflop_full']:>6.0f}"
            f"{small_flops / 1e9:>13.2f}{small_flops / 1e9 / first['gflop_small']:>6.0f}"
            f"{seconds:>10.3f}{seconds / first['seconds_small']:>6.0f}"
        )
    return rows


def trained_errors(args: argparse.Namespace) -> dict:
    """Each precision's error against fp32 with trained weights on real images."""
    import numpy as np
    from PIL import Image

    from fcnseg.convention import InputConvention
    from fcnseg.pretrained import load_pretrained

    model, metadata = load_pretrained(args.checkpoint)
    model.eval()
    convention = InputConvention.from_dict(metadata["input_convention"])
    fast = {p: optimize_for_inference(model, p) for p in native_precisions()}
    errors: dict[str, list[dict]] = {p: [] for p in fast}
    for path in args.images:
        with Image.open(path) as image:
            rgb = torch.from_numpy(np.array(image.convert("RGB")))
        x = convention.normalize(rgb.permute(2, 0, 1)[None])  # 1×3×H×W
        with torch.no_grad():
            reference = model(x)
        if isinstance(reference, dict):
            reference = next(iter(reference.values()))
        for precision, net in fast.items():
            result = net(x)
            if isinstance(result, dict):
                result = next(iter(result.values()))
            errors[precision].append(precision_error(reference, result))
    print(f"\nError against fp32, {args.checkpoint} on {len(args.images)} images")
    summary = {}
    for precision, measured in errors.items():
        l2 = [e["relative_l2"] for e in measured]
        labels = [e["label_disagreement"] for e in measured]
        summary[precision] = {
            "relative_l2_mean": float(np.mean(l2)),
            "relative_l2_max": float(np.max(l2)),
            "label_disagreement_mean": float(np.mean(labels)),
            "label_disagreement_max": float(np.max(labels)),
        }
        print(
            f"  {precision}: relative L2 error {np.mean(l2):.1e} (max {np.max(l2):.1e}), "
            f"labels differing {np.mean(labels):.2%} (max {np.max(labels):.2%})"
        )
    return {"checkpoint": args.checkpoint, "images": len(args.images), **summary}


def check_targets(inference: list[dict]) -> list[str]:
    """Issue 6's targets, each as a line saying whether it is met."""
    by = {(row["geometry"], row["path"]): row for row in inference}
    eager = by[("caffe", "eager")]["seconds_per_image"]
    fastest = min(
        (row for row in inference if row["geometry"] == "caffe" and row["path"] != "eager"),
        key=lambda row: row["seconds_per_image"],
    )
    speedup = eager / fastest["seconds_per_image"]
    fp32 = eager / by[("caffe", "fp32")]["seconds_per_image"]
    saving = 1 - by[("lean", "eager")]["gflop"] / by[("caffe", "eager")]["gflop"]
    met = {True: "met", False: "MISSED"}
    return [
        f"fastest exact-geometry path ({fastest['path']}): {speedup:.2f}x eager fp32 "
        f"(target {FASTEST_EXACT_SPEEDUP}x: {met[speedup >= FASTEST_EXACT_SPEEDUP]})",
        f"optimized fp32: {fp32:.2f}x eager fp32 (target >= 1: {met[fp32 >= 1]})",
        f"caffe geometry: {by[('caffe', 'eager')]['gflop']:.0f} GFLOP (the paper's net: "
        f"about 363); lean: {by[('lean', 'eager')]['gflop']:.0f} GFLOP, {saving:.0%} fewer",
        f"'less than one fifth of a second for a typical image': "
        f"{fastest['seconds_per_image']:.3f} s here on {torch.get_num_threads()} CPU threads",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    gemm = {DTYPES[p]: gemm_rate(DTYPES[p]) for p in native_precisions()}
    print(
        "GEMM rate (best square size):",
        ", ".join(f"{p} {gemm[DTYPES[p]] / 1e9:.0f} GFLOP/s" for p in native_precisions()),
    )
    results: dict = {
        "load_at_start": machine_load(),
        "machine": {
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "gemm_gflops": {str(k): v / 1e9 for k, v in gemm.items()},
        },
        "model": args.model,
        "size": list(args.size),
    }
    if "inference" not in args.skip:
        results["inference"] = inference_table(args, gemm)
    if "training" not in args.skip:
        results["training"] = training_table(args, gemm)
    if "dense" not in args.skip:
        results["dense"] = dense_table(args)
    if args.checkpoint is not None:
        if not args.images:
            raise SystemExit("--checkpoint needs --images")
        results["trained_errors"] = trained_errors(args)
    if "inference" in results:
        results["targets"] = check_targets(results["inference"])
        print("\n" + "\n".join(results["targets"]))
    results["load_at_end"] = machine_load()
    results["wall_seconds"] = time.perf_counter() - started
    path = write_results(args.results, results)
    print(f"\nwrote {path} ({results['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
