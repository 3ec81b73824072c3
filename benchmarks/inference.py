"""The paper's efficiency claims on this machine: FCN-8s VGG16 at 500x500, per path.

Three tables, printed and written as JSON, after a line naming this CPU and what it runs
natively (results of different CPU classes go to different files:
``benchmarks/results/inference-<class>.json``, class ``avx2``, ``avx512``, ``avx512-bf16`` or
``amx``):

1. **Inference** (one forward pass of the paper's "typical image", 500x500), per geometry and
   path: ``eager`` is the plain fp32 model (the stand-in for pytorch-fcn's FCN8s in fp32
   eager), the others go through ``fcnseg.optimize_for_inference`` in that precision, which
   on the Caffe geometry computes the padded border once (``fcnseg.inference.border``);
   ``<precision>-noborder`` is the same without (``border=False``); where NNPACK runs,
   ``fp32-direct`` or ``fp32-winograd`` is fp32 with the 3x3 convolutions computed the
   other way than this CPU's default (``winograd=``). Seconds per image,
   GFLOP/s achieved, that rate as a share of this machine's GEMM rate in the same precision
   (measured in the same run), peak memory, and each path's error against eager (relative
   L2 of the scores, labels that differ). GFLOP is the plain model's count: the work the
   function needs, however a path computes it; the border path's own count is printed below.
2. **Training step** (forward, pixelwise loss, backward, SGD update; batch 1): ``eager`` fp32
   as built, ``fast`` is ``fcnseg.inference.optimize.fast_training_model`` (fc6/fc7 as one
   matrix product, the border computed once), and where the CPU has bf16, both under bf16
   autocast. The fast path's gradients are compared with eager's.
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
from collections.abc import Callable

import torch
from torch.nn import functional as F

import fcnseg
from fcnseg.inference import (
    native_precisions,
    optimize_for_inference,
    rarefy,
    resolve_precision,
)
from fcnseg.inference.bench import (
    Measurement,
    count_flops,
    forward_flops,
    gemm_rate,
    he_initialize,
    interleaved,
    machine_load,
    precision_error,
    time_call,
    write_results,
)
from fcnseg.inference.dense import fcn32s_score_chain, shift_and_stitch, total_stride
from fcnseg.inference.export import relative_error
from fcnseg.inference.optimize import fast_training_model, winograd_available, winograd_default
from fcnseg.runtime import DTYPES, cpu_info

# Targets of issues 6 and 13, checked at the end.
FASTEST_EXACT_SPEEDUP = 2.2  # issue 6: the fastest exact-geometry path against eager fp32
FP32_EXACT_SPEEDUP = 2.2  # issue 13: fp32 on the Caffe geometry against eager fp32
FP32_TRAINING_SPEEDUP = 1.5  # issue 13: the fp32 training step against eager fp32
FP32_RELATIVE_L2 = 1e-5


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
    parser.add_argument(
        "--results", help="JSON output (default: benchmarks/results/inference-<CPU class>.json)"
    )
    return parser.parse_args(argv)


def describe(cpu: dict) -> str:
    native = cpu["native_precisions"]
    paths = {
        "bf16": "bf16" in native and ("AMX" if "amx_bf16" in cpu["extensions"] else "AVX512-BF16"),
        "fp16": "fp16" in native
        and ("AMX-FP16" if "amx_fp16" in cpu["extensions"] else "AVX512-FP16"),
    }
    return (
        f"CPU: {cpu['model']}, {cpu['threads']} threads; PyTorch capability "
        f"{cpu['capability']}; extensions {', '.join(cpu['extensions']) or 'none'}; "
        f"native bf16: {paths['bf16'] or 'no'}, native fp16: {paths['fp16'] or 'no'}; "
        f"results filed as '{cpu['class']}'"
    )


def inference_table(args: argparse.Namespace, gemm: dict) -> list[dict]:
    height, width = args.size
    precisions = native_precisions()
    rows = []
    for geometry in ("caffe", "lean"):
        model = he_initialize(
            fcnseg.build_model(args.model, num_classes=21, geometry=geometry)
        ).eval()
        x = 50 * torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
        runs: dict[str, tuple[Callable[[], object], torch.dtype]] = {
            "eager": (_no_grad(model, x), torch.float32)
        }
        nets = {}
        for precision in precisions:
            nets[precision] = optimize_for_inference(model, precision)
            if geometry == "caffe":  # the path before issue 13, for comparison
                nets[f"{precision}-noborder"] = optimize_for_inference(
                    model, precision, border=False
                )
        if winograd_available():  # fp32's other way of computing the 3x3 convolutions
            other = "direct" if winograd_default() else "winograd"
            nets[f"fp32-{other}"] = optimize_for_inference(
                model, "fp32", winograd=other == "winograd"
            )
        for label, net in nets.items():
            runs[label] = (_no_grad(net, x), DTYPES[net.precision])
        measured = interleaved(runs, x, forward_flops(model, x), args.repeats, gemm)
        print(f"\n{args.model}, {geometry} geometry, forward pass")
        print(table(measured, baseline=measured[0]))
        run_flops = border_flops(args.model, geometry, height, width)
        print(
            f"  optimized path runs {run_flops:.1f} GFLOP of the plain net's "
            f"{measured[0].gflop:.1f} (the border computed once)"
        )
        x = 50 * torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            reference = model(x)
        for row in measured:
            error = {"relative_l2": 0.0, "label_disagreement": 0.0, "labels_changed": 0}
            if row.path != "eager":
                result = nets[row.path](x)
                error = precision_error(reference, result)
                changed = result.argmax(1) != reference.argmax(1)
                error["labels_changed"] = int(changed.sum())
                # how near a tie the plain model's two best scores were where a label changed
                best_two = reference.topk(2, dim=1).values
                margins = (best_two[:, 0] - best_two[:, 1])[changed]
                error["largest_margin_changed"] = float(margins.max()) if changed.any() else None
                error["largest_score_error"] = float((result - reference).abs().max())
                # a label that changed where the two best scores were further apart than the
                # path's largest score error is not a tie broken by fp32 rounding
                error["labels_changed_beyond_rounding"] = int(
                    (margins > error["largest_score_error"]).sum()
                )
                near = (
                    f"; where changed, the two best scores were at most "
                    f"{error['largest_margin_changed']:.1e} apart (largest score error "
                    f"{error['largest_score_error']:.1e})"
                    if changed.any()
                    else ""
                )
                print(
                    f"  {row.path}: relative L2 error {error['relative_l2']:.1e}, "
                    f"labels differing {error['label_disagreement']:.2%} "
                    f"({error['labels_changed']} of {height * width}){near}"
                )
            extra = {"gflop_run": run_flops} if "noborder" not in row.path else {}
            if row.path == "eager":
                extra = {}
            rows.append({"geometry": geometry, **row.as_dict(), **error, **extra})
        if args.compile:
            rows.append({"geometry": geometry, **compiled_forward(model, x, measured[0])})
        del model, nets, runs
    return rows


def border_flops(name: str, geometry: str, height: int, width: int) -> float:
    """GFLOP that ``optimize_for_inference``'s path runs, counted on the meta device."""
    with torch.device("meta"):
        model = fcnseg.build_model(name, num_classes=21, geometry=geometry)
    net = optimize_for_inference(model, "fp32")
    x = torch.empty(1, 3, height, width, device="meta")
    with torch.no_grad():
        return count_flops(lambda: net(x)) / 1e9


def _no_grad(net: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def forward() -> None:
        with torch.no_grad():
            net(x)

    return forward


def table(rows: list[Measurement], *, baseline: Measurement) -> str:
    """A fixed-width table of ``rows``, speed-ups against ``baseline``."""
    header = (
        f"{'path':<14}{'input':>12}{'GFLOP':>9}{'s/image':>10}{'GFLOP/s':>10}"
        f"{'GEMM GFLOP/s':>14}{'of GEMM':>9}{'speed-up':>10}{'peak MB':>9}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        speedup = baseline.seconds_per_image / row.seconds_per_image
        memory = "" if row.peak_memory_mb is None else f"{row.peak_memory_mb:.0f}"
        lines.append(
            f"{row.path:<14}{f'{row.batch}x{row.height}x{row.width}':>12}{row.gflop:>9.1f}"
            f"{row.seconds_per_image:>10.3f}{row.gflops:>10.0f}{row.gemm_gflops:>14.0f}"
            f"{row.gemm_share:>9.0%}{f'{speedup:.2f}x':>10}{memory:>9}"
        )
    return "\n".join(lines)


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
    """One SGD step (forward, loss, backward, update) per path; see the module docstring."""
    height, width = args.size
    bf16 = "bf16" in native_precisions()
    rows = []
    for geometry in ("caffe", "lean"):
        model = he_initialize(
            fcnseg.build_model(args.model, num_classes=21, geometry=geometry)
        ).train()
        x = 50 * torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
        target = torch.randint(
            0, 21, (1, height, width), generator=torch.Generator().manual_seed(0)
        )
        paths = {"eager": (False, torch.float32), "fast": (True, torch.float32)}
        if bf16:
            paths.update({"bf16": (False, torch.bfloat16), "fast-bf16": (True, torch.bfloat16)})
        runs, gradients = {}, {}
        for label, (fast, dtype) in paths.items():
            plain = copy.deepcopy(model)
            net = fast_training_model(plain) if fast else plain
            runs[label] = (training_step(net, plain, x, target, dtype, gradients, label), dtype)
        flops = count_flops(runs["eager"][0])
        measured = interleaved(runs, x, flops, args.train_repeats, gemm)
        print(f"\n{args.model}, {geometry} geometry, training step (forward + backward + SGD)")
        print(table(measured, baseline=measured[0]))
        errors = {}
        for label in ("fast", "fast-bf16"):
            if label in gradients:
                reference = gradients["eager" if label == "fast" else "bf16"]
                errors[label] = relative_error(gradients[label], reference)
                print(f"  {label}: gradients' relative L2 error {errors[label]:.1e}")
        rows.extend(
            {"geometry": geometry, **row.as_dict(), "gradient_relative_l2": errors.get(row.path)}
            for row in measured
        )
        del model, runs, gradients
    return rows


def training_step(
    net: torch.nn.Module,
    plain: torch.nn.Module,
    x: torch.Tensor,
    target: torch.Tensor,
    dtype: torch.dtype,
    gradients: dict[str, torch.Tensor],
    label: str,
) -> Callable[[], None]:
    """The paper's SGD step (momentum 0.99, weight decay 5e-4) on ``plain``'s parameters,
    the forward pass through ``net``; the first call's gradients are kept in ``gradients``."""
    optimizer = torch.optim.SGD(plain.parameters(), lr=1e-10, momentum=0.99, weight_decay=5e-4)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # the same dropout masks on every path
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            scores = net(x)
        F.cross_entropy(scores.float(), target).backward()
        if label not in gradients:
            grads = [p.grad.flatten() for p in plain.parameters() if p.grad is not None]
            gradients[label] = torch.cat(grads)
        optimizer.step()

    return step


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
    from fcnseg.io.convention import InputConvention
    from fcnseg.pretrained import load_pretrained
    from PIL import Image

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


def check_targets(results: dict) -> list[str]:
    """Issue 6's and issue 13's targets, each as a line saying whether it is met."""
    met = {True: "met", False: "MISSED"}
    lines = []
    inference = results.get("inference", [])
    by = {(row["geometry"], row["path"]): row for row in inference}
    if inference:
        eager = by[("caffe", "eager")]["seconds_per_image"]
        fastest = min(
            (row for row in inference if row["geometry"] == "caffe" and row["path"] != "eager"),
            key=lambda row: row["seconds_per_image"],
        )
        speedup = eager / fastest["seconds_per_image"]
        fp32 = by[("caffe", "fp32")]
        fp32_speedup = eager / fp32["seconds_per_image"]
        beyond = fp32.get("labels_changed_beyond_rounding", fp32["labels_changed"])
        within = fp32["relative_l2"] <= FP32_RELATIVE_L2
        exact = within and fp32["labels_changed"] == 0
        saving = 1 - by[("lean", "eager")]["gflop"] / by[("caffe", "eager")]["gflop"]
        lines += [
            f"issue 13: optimize_for_inference(model, 'fp32'), caffe geometry: "
            f"{fp32_speedup:.2f}x eager fp32 "
            f"(target {FP32_EXACT_SPEEDUP}x: {met[fp32_speedup >= FP32_EXACT_SPEEDUP]}); "
            f"relative L2 {fp32['relative_l2']:.1e}, {fp32['labels_changed']} labels changed, "
            f"{beyond} of them beyond fp32 rounding (target <= {FP32_RELATIVE_L2:.0e} and none "
            f"changed: {met[exact]}; none beyond rounding: {met[within and beyond == 0]})",
            f"issue 6: fastest exact-geometry path ({fastest['path']}): {speedup:.2f}x eager "
            f"fp32 (target {FASTEST_EXACT_SPEEDUP}x: {met[speedup >= FASTEST_EXACT_SPEEDUP]})",
        ]
        for other in ("direct", "winograd"):
            if ("caffe", f"fp32-{other}") in by:
                gain = (
                    by[("caffe", f"fp32-{other}")]["seconds_per_image"] / fp32["seconds_per_image"]
                )
                default = "winograd" if other == "direct" else "direct"
                lines.append(
                    f"issue 13: fp32 3x3 convolutions by default here: {default}, "
                    f"{gain:.2f}x the {other} path"
                )
        for precision in native_precisions():
            if precision == "fp32" or ("caffe", f"{precision}-noborder") not in by:
                continue
            gain = (
                by[("caffe", f"{precision}-noborder")]["seconds_per_image"]
                / by[("caffe", precision)]["seconds_per_image"]
            )
            lines.append(
                f"issue 13: {precision} with the border computed once: {gain:.2f}x without "
                f"(target: not slower: {met[gain >= 1]})"
            )
        lines += [
            f"caffe geometry: {by[('caffe', 'eager')]['gflop']:.0f} GFLOP (the paper's net: "
            f"about 363), {fp32['gflop_run']:.0f} run by the border path; lean: "
            f"{by[('lean', 'eager')]['gflop']:.0f} GFLOP, {saving:.0%} fewer",
            f"'less than one fifth of a second for a typical image': "
            f"{fastest['seconds_per_image']:.3f} s here on {torch.get_num_threads()} CPU threads",
        ]
    training = results.get("training", [])
    if training:
        steps = {(row["geometry"], row["path"]): row["seconds_per_image"] for row in training}
        gain = steps[("caffe", "eager")] / steps[("caffe", "fast")]
        lines.append(
            f"issue 13: fp32 training step, caffe geometry: fast_training_model "
            f"{gain:.2f}x eager fp32 (target {FP32_TRAINING_SPEEDUP}x: "
            f"{met[gain >= FP32_TRAINING_SPEEDUP]})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    cpu = cpu_info()
    print(describe(cpu))
    gemm = {DTYPES[p]: gemm_rate(DTYPES[p]) for p in native_precisions()}
    print(
        "GEMM rate (best square size):",
        ", ".join(f"{p} {gemm[DTYPES[p]] / 1e9:.0f} GFLOP/s" for p in native_precisions()),
    )
    results: dict = {
        "load_at_start": machine_load(),
        "machine": {
            "cpu": cpu,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "gemm_gflops": {str(k): v / 1e9 for k, v in gemm.items()},
        },
        "command": " ".join(["python", "benchmarks/inference.py", *(argv or sys.argv[1:])]),
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
    results["targets"] = check_targets(results)
    if results["targets"]:
        print("\n" + "\n".join(results["targets"]))
    results["load_at_end"] = machine_load()
    results["wall_seconds"] = time.perf_counter() - started
    path = args.results or f"benchmarks/results/inference-{cpu['class']}.json"
    path = write_results(path, results)
    print(f"\nwrote {path} ({results['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
