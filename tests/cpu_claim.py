"""``pytest --claim-cpu amx``: the suite as fcnseg behaves on a CPU this machine is not.

fcnseg asks one place what the CPU is (:mod:`fcnseg.runtime`: its extensions, the precisions
oneDNN runs natively) and decides from the answer: ``auto`` precision is bf16 where bf16 is
native, bf16 autocast trains only there, Winograd convolutions are not the default on AVX512.
A claim makes the probe answer as such a CPU would, so that every one of those decisions, and
every test written around them, takes the other CPU's branch here.

The kernels stay this CPU's. Where the claimed CPU runs oneDNN's bf16 or fp16 convolutions
that this one lacks (oneDNN refuses them without AVX512 or AVX-NE-CONVERT), they are
emulated with the arithmetic AMX and AVX512-BF16 use: the operands are bf16 (or fp16) values,
their products summed in float32, the sum rounded to bf16 (fp16) once. Only the order of the
sums differs from the real kernels, which is what the suite's tolerances are for.

What a claim does not show: the real AVX512 kernels' blocking of fp32 sums (run the suite on
such a CPU for that), or their speed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

# What the probe reports on such a CPU: the flags /proc/cpuinfo shows (a Sapphire Rapids Xeon
# for amx, a Skylake-SP for avx512) and the precisions oneDNN then calls native.
CLAIMS = {
    "amx": (
        frozenset({"avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16"}),
        frozenset({"fp32", "bf16", "fp16"}),
    ),
    "avx512": (frozenset({"avx2", "fma", "avx512f"}), frozenset({"fp32"})),
}
LOW_PRECISION = (torch.bfloat16, torch.float16)


def install(claim: str) -> None:
    """Makes :mod:`fcnseg.runtime`'s probe answer as a ``claim`` CPU, and emulates the oneDNN
    low-precision convolutions this CPU cannot run. For the whole process: pytest_configure
    calls it before any test module is imported (skip conditions read the probe then)."""
    from fcnseg import runtime

    flags, precisions = CLAIMS[claim]
    model, _ = runtime._cpu_model_and_flags()
    runtime._cpu_model_and_flags = lambda: (f"{model} (claiming {claim})", flags)
    runtime._cpu_native = lambda: precisions
    real = {
        "bf16": torch.ops.mkldnn._is_mkldnn_bf16_supported(),
        "fp16": torch.ops.mkldnn._is_mkldnn_fp16_supported(),
    }
    if all(real[p] for p in precisions - {"fp32"}):
        return
    reorder = torch._C._nn.mkldnn_reorder_conv2d_weight
    convolution = torch.ops.mkldnn._convolution_pointwise

    def emulated_reorder(weight: torch.Tensor, *args: Any) -> torch.Tensor:
        if weight.dtype not in LOW_PRECISION:
            return reorder(weight, *args)
        # the "packed" low-precision weights stay a plain tensor of the same values
        return weight.to_dense() if weight.is_mkldnn else weight

    def emulated_convolution(
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        padding: list[int],
        stride: list[int],
        dilation: list[int],
        groups: int,
        attr: str,
        scalars: list[Any],
        algorithm: str,
    ) -> torch.Tensor:
        if weight.dtype not in LOW_PRECISION:
            return convolution(
                x, weight, bias, padding, stride, dilation, groups, attr, scalars, algorithm
            )
        if attr not in ("none", "relu"):
            raise NotImplementedError(f"emulated oneDNN convolution: post-op {attr!r}")
        y = F.conv2d(
            x.float(),
            weight.float(),
            None if bias is None else bias.float(),
            stride,
            padding,
            dilation,
            groups,
        )
        if attr == "relu":
            y = y.relu_()
        layout = (
            torch.channels_last
            if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
            else torch.contiguous_format
        )
        return y.to(x.dtype).contiguous(memory_format=layout)

    torch._C._nn.mkldnn_reorder_conv2d_weight = emulated_reorder
    torch.ops.mkldnn._convolution_pointwise = emulated_convolution
