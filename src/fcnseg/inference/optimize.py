"""The same function, faster: ``optimize_for_inference`` (issue 6).

An FCN spends its time in convolutions (section 3.1: the whole image at once, every window's
work shared). On a CPU the library's convolutions run through oneDNN, which is fastest when

- activations are channels-last (NHWC), so no layout conversion happens between layers;
- weights are packed once into oneDNN's blocked layout instead of on every call;
- the ReLU after a convolution runs inside it (a fused post-op) instead of as a second pass
  over the map, and an eval-mode BatchNorm is folded into the convolution's weights;
- the arithmetic is bfloat16 where the CPU has it (AVX512-BF16 / AMX tiles: several times
  the fp32 rate), accumulating in fp32 inside the kernel.

A backwards-strided convolution (section 3.3, ``upscore``) runs as ``s x s`` ordinary
convolutions, one per output phase, interlaced by a pixel shuffle: the same sums, but on the
fast convolution path (and class-wise for the fixed bilinear kernels, which never mix classes).
On CUDA the net is cast to fp16/bf16 and channels-last; cuDNN does the rest.

AlexNet's and GoogLeNet's local response normalisation, which has no bf16 CPU kernel, runs
in fp32 as sums of shifted channel slices.

In fp32 on CPUs without AVX512, the wide nets' 3x3 convolutions run through NNPACK's Winograd
convolution (:class:`WinogradConv2d`, issue 13), which reads and writes NCHW maps. Such a net
runs NCHW throughout, with nothing converting layouts between layers: its small convolutions
keep unpacked weights so that oneDNN writes NCHW (:class:`PackedConv2d`), and its max
poolings take whole strided slices (:class:`SlicedMaxPool2d`), PyTorch's NCHW pooling
kernel being several times slower than its channels-last one.

``torch.compile`` (inductor, frozen weights) was measured beside this path
(``benchmarks/inference.py --compile``): as fast within run-to-run noise on the Caffe
geometry, slower on the lean one, and seconds of compiling for every new image size (a
predictor sees many). It is not used.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from fcnseg.errors import FcnsegError
from fcnseg.inference import border as _border
from fcnseg.inference.dense import pair
from fcnseg.runtime import DTYPES, cpu_class, resolve_precision

# Bounds on the error each precision makes against fp32: the relative L2 error of the scores
# and the share of pixels whose label differs. Measured with random He-initialised weights
# (scores of a few units): bf16 0.4-0.7% (VGG16 FCNs), 1.5% (AlexNet), up to 2.5% (GoogLeNet,
# the deepest); fp16 about ten times less; fp32 about 1e-7, the packed kernels summing in
# another order. The shipped CamVid FCN-8s on CamVid val: bf16 0.75% and 0.26% of labels,
# fp16 0.1% and 0.05%. benchmarks/README.md has the tables; the tests hold every net of
# every kind to these bounds.
TOLERANCE = {
    "fp32": {"relative_l2": 1e-5, "label_disagreement": 1e-3},
    "bf16": {"relative_l2": 5e-2, "label_disagreement": 5e-2},
    "fp16": {"relative_l2": 5e-3, "label_disagreement": 1e-2},
}


class InferenceModel(nn.Module):
    """A model prepared by :func:`optimize_for_inference`: same input, same output, faster.

    It takes what the original model takes (float32 N x C x H x W, any layout) and returns
    what it returns (float32 N x K x H x W scores, or a dict of them), computed in
    ``precision``. Inference only: no gradients flow through the packed weights.
    """

    def __init__(
        self,
        net: nn.Module,
        precision: str,
        device: torch.device,
        layout: torch.memory_format = torch.channels_last,
    ) -> None:
        super().__init__()
        self.net = net
        self.precision = precision
        self.dtype = DTYPES[precision]
        self.device = device
        self.layout = layout

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        """Scores of ``x``, computed in ``self.precision``, returned as float32 NCHW."""
        with torch.no_grad():
            x = x.to(self.device, self.dtype, memory_format=self.layout)
            scores = self.net(x)
        if isinstance(scores, dict):
            return {name: _as_fp32(score) for name, score in scores.items()}
        return _as_fp32(scores)


def optimize_for_inference(
    model: nn.Module,
    precision: str = "auto",
    *,
    example_size: tuple[int, int] = (500, 500),
    border: bool = True,
    winograd: bool | None = None,
) -> InferenceModel:
    """The same function as ``model`` in eval mode, faster.

    The model is copied, not modified. Eval-mode BatchNorms are folded into the convolutions
    before them; on a CPU with oneDNN, convolutions get packed weights and a fused ReLU, and
    backwards-strided convolutions become per-phase convolutions; everything runs
    channels-last in ``precision``.

    Args:
        model: any module of Conv2d/ConvTranspose2d/pooling/pointwise layers (an FCN, a
            classifier, a late-fusion net); its layers keep their names.
        precision: ``auto`` (bf16 where the device has it, else fp32), ``fp32``, ``bf16`` or
            ``fp16``. The error each precision makes is bounded by :data:`TOLERANCE`.
        example_size: the image height and width the packed weight layouts are chosen for
            (the paper's typical 500x500); every size runs, this one best.
        border: in an FCN of the Caffe geometry (``conv1_1`` padded by 100), compute the
            padded border's cells once from an all-zero image and run every layer only on
            the cells that depend on the image (``fcnseg.inference.border``): the same
            numbers, 28% fewer FLOPs at 500x500 (FCN-8s VGG16). False runs every cell.
        winograd: in fp32 on a CPU, compute the 3x3 stride-1 convolutions (VGG16's conv1_2 to
            conv5_3) by NNPACK's fast convolution (Winograd transforms, :class:`WinogradConv2d`):
            the same sums with about a quarter of the multiplications, 1.2-2.9x faster per
            layer of 64 channels or more on an AVX2 CPU, errors of fp32 rounding (relative L2
            ~3e-6 per layer). None (default): where NNPACK runs, the CPU has no AVX512
            (:func:`winograd_default`) and such layers hold most of the convolutions' work
            (the full-width nets; not the narrow shipped CamVid net, where NNPACK is slower),
            each map of at least :data:`WINOGRAD_MIN_CELLS` cells. True: every such
            convolution and map where NNPACK runs; False: never. The net then runs on NCHW
            maps, NNPACK's layout: small convolutions keep unpacked weights so that oneDNN
            writes NCHW too, and max pooling takes :class:`SlicedMaxPool2d`.

    Returns:
        The optimized model; it takes and returns float32 tensors, like ``model``.

    Raises:
        FcnsegError: an unknown precision or one the device does not run natively, or
            ``winograd=True`` where NNPACK does not run.
    """
    device = _device_of(model)
    precision = resolve_precision(precision, device)
    dtype = DTYPES[precision]
    fast_convolutions = precision == "fp32" and device.type == "cpu"
    if winograd and not (fast_convolutions and winograd_available()):
        raise FcnsegError(
            "winograd=True needs fp32 on a CPU where NNPACK runs (x86-64 with AVX2); "
            f"here: {precision} on {device.type}, NNPACK "
            f"{'available' if winograd_available() else 'unavailable'}"
        )
    chosen = winograd is None
    net = copy.deepcopy(model).eval()
    borders = _border.analyse(net) if border else []
    for chain in list(_layer_chains(net)):
        _fuse_chain(net, chain)
    shapes = _convolution_inputs(net, (1, input_channels(net), *example_size))
    if chosen:
        winograd = fast_convolutions and winograd_default() and _winograd_pays(net, shapes)
    if winograd:
        _replace_winograd(net, WINOGRAD_MIN_CHANNELS if chosen else 1)
        if not chosen:
            for module in net.modules():
                if isinstance(module, WinogradConv2d):
                    module.min_cells = 0  # told to: every map, however small
    # NNPACK reads and writes contiguous NCHW maps; oneDNN is fastest on channels-last ones
    layout = torch.contiguous_format if winograd else torch.channels_last
    if device.type == "cpu" and _mkldnn_op_available():
        _pack_children(net, dtype, shapes, layout)
    _replace(net, nn.LocalResponseNorm, LocalResponseNorm)
    if layout == torch.contiguous_format:
        _replace(net, nn.MaxPool2d, SlicedMaxPool2d.like)
    net = net.to(dtype=dtype, memory_format=layout)
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    copy_flops = _border.COPY_FLOPS if precision == "fp32" else _border.COPY_FLOPS_16BIT
    _border.install(net, borders, cache_background=True, copy_flops=copy_flops)
    return InferenceModel(net, precision, device, layout)


# Where NNPACK's fast convolution pays on an AVX2 CPU (one thread, against oneDNN's direct
# convolution on channels-last maps; `optimize_for_inference` docstring): layers of at least
# 64 channels in and out (64 at 90x120: 2.7x; 32: 0.8-0.9x; 8: 0.3x), maps of at least 32x32
# cells (512 channels at 8x10: 0.2x, the kernel transformed on every call), and nets whose
# such layers hold at least half of the convolutions' multiply-adds (the rest then runs on
# NCHW maps, oneDNN's slower layout).
WINOGRAD_MIN_CHANNELS = 64
WINOGRAD_MIN_CELLS = 32 * 32
WINOGRAD_MIN_SHARE = 0.5


def winograd_available() -> bool:
    """Whether NNPACK's fast convolutions run on this machine (PyTorch's CPU builds for
    x86-64 CPUs with AVX2, and ARM). Asking also initialises NNPACK, which its kernels need."""
    return torch.backends.nnpack.is_available()


def winograd_default() -> bool:
    """Whether ``optimize_for_inference`` uses :class:`WinogradConv2d` when not told: where
    NNPACK runs and the CPU has no AVX512. NNPACK's x86 kernels are AVX2; on AVX512 CPUs
    oneDNN's direct convolutions have twice the vector width, and there ``auto`` runs bf16
    where it can (benchmarks/README.md has the AVX2 figures)."""
    return winograd_available() and cpu_class() not in {"avx512", "avx512-bf16", "amx"}


class WinogradConv2d(nn.Module):
    """A 3x3, stride-1 convolution computed by NNPACK's fast convolution
    (``nnp_convolution_inference``: Winograd F(6x6, 3x3) transforms, about a quarter of the
    multiplications of the direct sum), with an optional ReLU after it; fp32, CPU.

    It takes and gives contiguous N x C x H x W float32 maps; each image of a batch is one
    call (NNPACK's batched path is slower than the per-image one). Maps of fewer than
    ``min_cells`` cells, or too small for the kernel, go to ``torch.nn.functional.conv2d``
    (which names the problem of the latter).
    """

    def __init__(self, conv: nn.Conv2d, activation: str = "none") -> None:
        super().__init__()
        self.min_cells = WINOGRAD_MIN_CELLS  # smaller maps: the direct convolution
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.padding = list(conv.padding)
        self.activation = activation
        self.weight = nn.Parameter(conv.weight.detach().float().contiguous(), requires_grad=False)
        bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
        self.bias = nn.Parameter(bias.detach().float().contiguous(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _nnpack_takes(x, self.padding, self.min_cells):
            y = _nnpack_conv3x3(x, self.weight, self.bias, self.padding)
        else:
            y = F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype), 1, self.padding)
        return F.relu_(y) if self.activation == "relu" else y

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, padding={tuple(self.padding)}, "
            f"activation={self.activation}"
        )


class SharingConv2d(nn.Conv2d):
    """A convolution computed another way for training, made from a model's convolution with
    its settings and its very parameters (:meth:`sharing`), so that an optimizer over the
    model trains it."""

    @classmethod
    def sharing(cls, conv: nn.Conv2d) -> SharingConv2d:
        """An instance of this class with ``conv``'s settings and parameter tensors."""
        shared = copy.copy(conv)
        shared.__class__ = cls
        return shared


class WinogradTrainingConv2d(SharingConv2d):
    """A 3x3, stride-1 convolution for training whose forward pass is NNPACK's fast
    convolution where :class:`WinogradConv2d`'s would be (fp32 on a CPU, maps of at least
    :data:`WINOGRAD_MIN_CELLS` cells; not under autocast); autograd differentiates it as the
    convolution it is (PyTorch's convolution backward). The parameters are those of the
    convolution it was made from (:meth:`sharing`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padding = list(self.padding)  # type: ignore[arg-type]
        if torch.is_autocast_enabled(x.device.type) or not _nnpack_takes(
            x, padding, WINOGRAD_MIN_CELLS
        ):
            return super().forward(x)
        return _nnpack_conv3x3(x, self.weight, self.bias, padding)


def _nnpack_takes(x: torch.Tensor, padding: list[int], min_cells: int) -> bool:
    """Whether NNPACK runs a 3x3 convolution padded by ``padding`` on ``x``: a float32 CPU
    map (not meta: shapes only) of at least ``min_cells`` cells that the kernel fits."""
    (ph, pw), (height, width) = padding, x.shape[-2:]
    return (
        x.dtype == torch.float32
        and x.device.type == "cpu"
        and height + 2 * ph >= 3
        and width + 2 * pw >= 3
        and height * width >= min_cells
    )


def _nnpack_conv3x3(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: list[int]
) -> torch.Tensor:
    """NNPACK's convolution of each image of ``x`` (its per-image inference path is faster
    than its batched one), as one N x C x H x W tensor."""
    x = x.contiguous()
    images = [
        torch._nnpack_spatial_convolution(x[i : i + 1], weight, bias, padding, [1, 1])
        for i in range(x.shape[0])
    ]
    return images[0] if len(images) == 1 else torch.cat(images)


def _winograd_eligible(module: nn.Module, min_channels: int = 1) -> bool:
    return (
        type(module) is nn.Conv2d
        and min(module.in_channels, module.out_channels) >= min_channels
        and module.kernel_size == (3, 3)
        and module.stride == (1, 1)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
        and max(module.padding) <= 1  # NNPACK pads by less than the kernel; conv1_1's 100 not
    )


def _replace_winograd(module: nn.Module, min_channels: int) -> None:
    """Swaps every eligible convolution (alone, or in a :class:`ConvRelu`) for a
    :class:`WinogradConv2d`, in place."""
    for name, child in module.named_children():
        if isinstance(child, ConvRelu) and _winograd_eligible(child.conv, min_channels):
            module.add_module(name, WinogradConv2d(child.conv, "relu"))
        elif _winograd_eligible(child, min_channels):
            module.add_module(name, WinogradConv2d(child))  # type: ignore[arg-type]
        else:
            _replace_winograd(child, min_channels)


def _winograd_pays(net: nn.Module, shapes: dict[str, list[int]]) -> bool:
    """Whether the convolutions NNPACK would take hold at least :data:`WINOGRAD_MIN_SHARE`
    of the convolutions' multiply-adds at the example size (``shapes``: their inputs)."""
    total = taken = 0
    for name, module in net.named_modules():
        if type(module) is not nn.Conv2d or name not in shapes:
            continue
        height, width = shapes[name][-2:]
        work = module.weight.numel() * height * width // (module.stride[0] * module.stride[1])
        total += work
        if _winograd_eligible(module, WINOGRAD_MIN_CHANNELS):
            taken += work
    return total > 0 and taken >= WINOGRAD_MIN_SHARE * total


def fast_training_model(
    model: nn.Module,
    *,
    border: bool = True,
    gemm_min_weights: int | None = None,
    winograd: bool | None = None,
) -> nn.Module:
    """The same function as ``model`` for training, faster: a new module that shares every
    parameter and buffer of ``model`` (the same tensor objects, under the same state-dict
    names), so an optimizer over ``model.parameters()`` trains both.

    - Convolutions with big weights (fc6: 4096 x 512 x 7 x 7, fc7) become
      :class:`GemmConv2d`: ``unfold`` and one matrix product, whose weight gradient is one
      BLAS product too; oneDNN's weight gradient of the 7x7 convolution is several times
      slower on CPUs.
    - 3x3 stride-1 convolutions of at least :data:`WINOGRAD_MIN_CHANNELS` channels become
      :class:`WinogradTrainingConv2d` where :func:`winograd_default` says so (AVX2 CPUs):
      their forward pass by NNPACK's Winograd convolution, their backward as before.
    - In an FCN of the Caffe geometry, the trunk up to its first dropout or batch
      normalisation (which read the whole map) runs through ``fcnseg.inference.border``: the
      padded border's cells are computed once from an all-zero image, the rest on the cells
      that depend on the image. Autograd differentiates the same function, so the gradients
      are the plain model's to fp32 rounding.

    Put it in train mode (``.train()``) itself: its modules are its own. ``model`` is not
    modified; save, evaluate and export ``model``.

    Args:
        model: an FCN (or any module: only its big convolutions change).
        border: compute a Caffe-geometry FCN's border once (False: only the GEMM layers).
        gemm_min_weights: convolutions with at least this many weights become
            :class:`GemmConv2d` (default :data:`GEMM_MIN_WEIGHTS`, 4M: fc6 and fc7).
        winograd: the Winograd forward pass; None: :func:`winograd_default` (False where
            NNPACK does not run).
    """
    threshold = GEMM_MIN_WEIGHTS if gemm_min_weights is None else gemm_min_weights
    if winograd is None:
        winograd = winograd_default()
    winograd = winograd and winograd_available()
    shared = {id(t): t for t in (*model.parameters(), *model.buffers())}
    net = copy.deepcopy(model, shared)
    analyses = _border.analyse(net, training=True) if border else []
    for name, module in list(net.named_modules()):
        if _is_big_convolution(module, threshold):
            net.set_submodule(name, GemmConv2d.sharing(module))
        elif winograd and _winograd_eligible(module, WINOGRAD_MIN_CHANNELS):
            net.set_submodule(name, WinogradTrainingConv2d.sharing(module))  # type: ignore[arg-type]
    _border.install(net, analyses)
    return net


class GemmConv2d(SharingConv2d):
    """A convolution computed as ``unfold`` (im2col) and one matrix product, in fp32 as in
    autograd: the same parameters as :class:`torch.nn.Conv2d`, another kernel (BLAS).

    A 1x1 convolution skips the unfolding. Its output is contiguous NCHW, as the plain
    convolution's (so a dropout after it draws its mask in the same order).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups != 1 or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        n, _, height, width = x.shape
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        out_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        out_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        if (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0):
            cells = x.permute(0, 2, 3, 1).reshape(n * out_h * out_w, -1)
        else:
            columns = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
            cells = columns.transpose(1, 2).reshape(n * out_h * out_w, -1)  # N·L x C·kh·kw
        y = F.linear(cells, self.weight.reshape(self.out_channels, -1), self.bias)
        return y.view(n, out_h, out_w, -1).permute(0, 3, 1, 2).contiguous()


def _is_big_convolution(module: nn.Module, threshold: int) -> bool:
    return (
        type(module) is nn.Conv2d
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
        and module.weight.numel() >= threshold
    )


class PackedConv2d(nn.Module):
    """A convolution with weights packed once for oneDNN and an optional fused ReLU.

    oneDNN writes channels-last maps when its weights are packed. In a net that runs on NCHW
    maps (``layout``, the Winograd path) the convolutions of at most
    :data:`DENSE_MAX_WEIGHTS` weights keep them unpacked, so that oneDNN writes NCHW maps:
    it reorders such weights on each call for next to nothing, where turning conv1_1's
    channels-last output at 500x500 back into NCHW for conv1_2 costs more than conv1_1.
    """

    def __init__(
        self,
        conv: nn.Conv2d,
        dtype: torch.dtype,
        activation: str = "none",
        example: list[int] | None = None,
        layout: torch.memory_format = torch.channels_last,
    ) -> None:
        super().__init__()
        self.padding = list(conv.padding)
        self.stride = list(conv.stride)
        self.dilation = list(conv.dilation)
        self.groups = conv.groups
        self.activation = activation
        self.in_channels = conv.in_channels
        self.out_channels = conv.out_channels
        weight = conv.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last)
        # oneDNN picks the packed layout for an input shape: a poor pick for the real shape
        # costs a reorder per call (fc6's 7x7 kernel: three times slower), or worse, a slow
        # kernel (AVX2: a 9x9 or 30x30 map 5-30 times slower). Every shape runs; the weights
        # of other shapes are repacked once (see _weight_for).
        if example is None:
            example = [1, conv.in_channels, 64, 64]
        self.example = tuple(example)
        self.weight_count = conv.weight.numel()
        self.dense = layout == torch.contiguous_format and self.weight_count <= DENSE_MAX_WEIGHTS
        self.reset_shapes()
        bias = None if conv.bias is None else conv.bias.detach().to(dtype)
        self.register_buffer("bias", bias)
        # A big 1x1 convolution on a channels-last map is a matrix product over the cells:
        # in fp32 BLAS runs fc7 (4096 x 4096) 2-4x faster than oneDNN does on AVX2 CPUs.
        self.gemm_weight: torch.Tensor | None = None
        if _is_gemm(conv, dtype, activation):
            self.gemm_weight = conv.weight.detach().reshape(conv.out_channels, -1).t().contiguous()
            self.packed_weight = None
            return
        if self.dense:
            self.packed_weight = conv.weight.detach().to(dtype).contiguous()
            return
        self.packed_weight = torch._C._nn.mkldnn_reorder_conv2d_weight(
            weight.to_mkldnn(), self.padding, self.stride, self.dilation, self.groups, example
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gemm_weight is not None:
            return self._gemm(x)
        return torch.ops.mkldnn._convolution_pointwise(
            x,
            self._weight_for(tuple(x.shape)),
            self.bias,
            self.padding,
            self.stride,
            self.dilation,
            self.groups,
            self.activation,
            [],
            "",
        )

    def reset_shapes(self) -> None:
        """Forget the weights repacked for other input shapes."""
        self.shaped_weights: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()

    def _weight_for(self, shape: tuple[int, ...]) -> torch.Tensor:
        """The weights packed for inputs of ``shape``: the example's, or a repacking kept for
        the last :data:`REPACKED_SHAPES` other shapes (weights up to REPACK_MAX_WEIGHTS)."""
        if shape == self.example or self.dense or self.weight_count > REPACK_MAX_WEIGHTS:
            return self.packed_weight
        weight = self.shaped_weights.get(shape)
        if weight is None:
            weight = torch._C._nn.mkldnn_reorder_conv2d_weight(
                self.packed_weight, self.padding, self.stride, self.dilation, self.groups, shape
            )
            self.shaped_weights[shape] = weight
            if len(self.shaped_weights) > REPACKED_SHAPES:
                self.shaped_weights.popitem(last=False)
        else:
            self.shaped_weights.move_to_end(shape)
        return weight

    def _gemm(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        cells = x.permute(0, 2, 3, 1).reshape(n * h * w, c)  # a view of a channels-last map
        if self.bias is None:
            y = torch.mm(cells, self.gemm_weight)
        else:
            y = torch.addmm(self.bias, cells, self.gemm_weight)
        if self.activation == "relu":
            y = y.relu_()
        return y.view(n, h, w, -1).permute(0, 3, 1, 2)  # N x C x H x W, channels-last

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, stride={tuple(self.stride)}, "
            f"padding={tuple(self.padding)}, dilation={tuple(self.dilation)}, "
            f"groups={self.groups}, activation={self.activation}"
        )


class LocalResponseNorm(nn.Module):
    """AlexNet's and GoogLeNet's LRN, ``x / (k + alpha/n * sum of x^2 over n channels)^beta``,
    computed in fp32 (there is no bf16 CPU kernel) by summing shifted channel slices.

    ``torch.nn.LocalResponseNorm`` pools the squares in 3-D over a 5-D view, which copies a
    channels-last map twice: this is the same arithmetic, four times faster.
    """

    def __init__(self, lrn: nn.LocalResponseNorm) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = lrn.size, lrn.alpha, lrn.beta, lrn.k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        xf = x.float()
        # channel c sums c - size//2 ... c + (size-1)//2, zeros beyond the ends (as Caffe)
        squares = F.pad(xf * xf, (0, 0, 0, 0, self.size // 2, (self.size - 1) // 2))
        window = squares[:, :channels].clone()
        for shift in range(1, self.size):
            window.add_(squares[:, shift : shift + channels])
        scale = window.mul_(self.alpha / self.size).add_(self.k).pow_(-self.beta)
        return (xf * scale).to(x.dtype)


class SlicedMaxPool2d(nn.MaxPool2d):
    """Max pooling of an NCHW map as running maxima of strided slices, rows then columns.

    PyTorch's NCHW max pooling (``max_pool2d_with_indices``) walks each window cell by cell:
    on VGG16's pool1 at 500x500 it takes 4-6 times as long as the same maxima taken over
    whole strided slices of the map (``torch.maximum``). Same values (a maximum is exact,
    NaN propagates), Caffe's ceil mode included; other maps (channels-last, padded or
    dilated pooling, maps smaller than the window, indices asked for) take ``MaxPool2d``'s path.
    """

    @classmethod
    def like(cls, pool: nn.Module) -> nn.Module:
        """A SlicedMaxPool2d with ``pool``'s settings (``pool`` itself if it is another kind)."""
        if type(pool) is not nn.MaxPool2d or pool.return_indices:
            return pool
        return cls(
            pool.kernel_size, pool.stride, pool.padding, pool.dilation, False, pool.ceil_mode
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride = pair(self.kernel_size), pair(self.stride or self.kernel_size)
        if (
            x.dim() != 4
            or not x.is_contiguous()
            or any(pair(self.padding))
            or any(d != 1 for d in pair(self.dilation))
            or x.shape[2] < kernel[0]
            or x.shape[3] < kernel[1]
        ):
            return super().forward(x)
        rows = _max_along(x, 2, kernel[0], stride[0], self.ceil_mode)
        return _max_along(rows, 3, kernel[1], stride[1], self.ceil_mode)


def _max_along(
    x: torch.Tensor, dim: int, kernel: int, stride: int, ceil_mode: bool
) -> torch.Tensor:
    """Max pooling of ``x`` along ``dim`` alone (no padding; ``x`` at least ``kernel`` long)."""
    length = x.shape[dim]
    count = _border.Op(kernel, stride, 0, ceil_mode).length(length)
    whole = (length - kernel) // stride + 1  # windows inside the map; the rest overhang it
    shape = list(x.shape)
    shape[dim] = count
    out = x.new_empty(shape)
    head = out.narrow(dim, 0, whole)
    span = stride * (whole - 1) + 1

    def taps(offset: int) -> torch.Tensor:
        index: list[slice] = [slice(None)] * x.dim()
        index[dim] = slice(offset, offset + span, stride)
        return x[tuple(index)]

    if kernel == 1:
        head.copy_(taps(0))
    else:
        torch.maximum(taps(0), taps(1), out=head)
        for offset in range(2, kernel):
            torch.maximum(head, taps(offset), out=head)
    for o in range(whole, count):  # Caffe's ceil mode: windows cut by the map's end
        start = o * stride
        out.select(dim, o).copy_(x.narrow(dim, start, min(kernel, length - start)).amax(dim))
    return out


class ConvRelu(nn.Module):
    """A convolution followed by an in-place ReLU (the fusion where oneDNN is absent)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu_(self.conv(x))


class PhaseConvTranspose2d(nn.Module):
    """A backwards-strided convolution computed as ``s x s`` ordinary convolutions.

    Output pixel ``s*q + r`` of a stride-``s`` transposed convolution gathers input cells
    ``q - t`` with weight ``w[s*t + r]``, ``t < ceil(k/s)``: for each phase ``r`` that is an
    ordinary ``ceil(k/s)``-tap convolution with the flipped, subsampled kernel. The phases are
    the output channels of one convolution, interlaced by ``pixel_shuffle``, then cropped by
    the transposed convolution's padding. When the weight only maps each channel onto itself
    (the bilinear kernels of ``fcnseg.models.upsample``), the convolution is depthwise.
    """

    def __init__(
        self, deconv: nn.ConvTranspose2d, dtype: torch.dtype, example: list[int] | None = None
    ) -> None:
        super().__init__()
        kernel, stride, padding = (
            _square(v) for v in (deconv.kernel_size, deconv.stride, deconv.padding)
        )
        self.kernel, self.stride, self.padding = kernel, stride, padding
        taps = math.ceil(kernel / stride)
        weight = deconv.weight.detach()  # C_in x C_out/groups x k x k
        c_in, c_out = deconv.in_channels, deconv.out_channels
        padded = F.pad(weight, (0, taps * stride - kernel, 0, taps * stride - kernel))
        # (ci, co, t1, r1, t2, r2) -> (co, r1, r2, ci, t1, t2), taps flipped into correlation
        phases = padded.reshape(c_in, -1, taps, stride, taps, stride).permute(1, 3, 5, 0, 2, 4)
        phases = phases.flip(-1, -2)
        if deconv.groups == 1 and _is_classwise(weight):
            diagonal = torch.arange(c_in)
            phases = phases[diagonal, :, :, diagonal].unsqueeze(3)  # C x s x s x 1 x T x T
            groups = c_in
        else:
            groups = deconv.groups
            if groups != 1:  # group g's outputs read only group g's inputs
                phases = _grouped_phases(phases, groups)
        conv = nn.Conv2d(
            c_in, c_out * stride * stride, taps, padding=taps - 1, groups=groups, bias=False
        )
        with torch.no_grad():
            conv.weight.copy_(phases.reshape(conv.weight.shape))
        self.phase_conv = PackedConv2d(conv, dtype, example=example)
        self.register_buffer("bias", None if deconv.bias is None else deconv.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        phases = self.phase_conv(x)  # N x C·s·s x H+T-1 x W+T-1
        h, w, s = phases.shape[-2], phases.shape[-1], self.stride
        # Interlaced into contiguous NCHW in one copy: pixel_shuffle on a channels-last map,
        # then the caller's conversion to NCHW, took eight times as long.
        y = torch.empty(
            (n, phases.shape[1] // (s * s), h, s, w, s), dtype=phases.dtype, device=phases.device
        )
        y.copy_(phases.permute(0, 2, 3, 1).reshape(n, h, w, -1, s, s).permute(0, 3, 1, 4, 2, 5))
        y = y.view(n, -1, h * s, w * s)  # N×C×s(H+T-1)×s(W+T-1)
        p = self.padding
        out_height = self.stride * (height - 1) + self.kernel - 2 * p
        out_width = self.stride * (width - 1) + self.kernel - 2 * p
        y = y[:, :, p : p + out_height, p : p + out_width]
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


# 1x1 convolutions with at least this many weights run as a BLAS matrix product in fp32.
GEMM_MIN_WEIGHTS = 1 << 22
# Packed convolutions repack their weights for up to this many other input shapes, if they
# have at most this many weights (every VGG16 convolution, not fc6 or fc7).
REPACKED_SHAPES = 4
REPACK_MAX_WEIGHTS = 1 << 23
# Convolutions of at most this many weights stay unpacked in an NCHW net (PackedConv2d):
# VGG16's conv1_1 (1,728) and the score layers; not fc6 (103M), whose maps are small.
DENSE_MAX_WEIGHTS = 1 << 16


def _is_gemm(conv: nn.Conv2d, dtype: torch.dtype, activation: str) -> bool:
    return (
        dtype == torch.float32
        and activation in ("none", "relu")
        and conv.kernel_size == (1, 1)
        and conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and not any(conv.padding)
        and conv.weight.numel() >= GEMM_MIN_WEIGHTS
    )


def _grouped_phases(phases: torch.Tensor, groups: int) -> torch.Tensor:
    # phases: (co_in_group, r1, r2, ci, T, T) with ci over all inputs of the group's block
    c_out_group, s1, s2, c_in, taps, _ = phases.shape
    c_in_group = c_in // groups
    blocks = phases.reshape(c_out_group, s1, s2, groups, c_in_group, taps, taps)
    # output channel order (g, co_in_group, r1, r2) reads inputs of group g only
    return blocks.permute(3, 0, 1, 2, 4, 5, 6).reshape(-1, s1, s2, c_in_group, taps, taps)


def _is_classwise(weight: torch.Tensor) -> bool:
    if weight.shape[0] != weight.shape[1]:
        return False
    off_diagonal = ~torch.eye(weight.shape[0], dtype=torch.bool)
    return bool((weight[off_diagonal] == 0).all())


def _replace(
    module: nn.Module, kind: type[nn.Module], replacement: Callable[[nn.Module], nn.Module]
) -> None:
    for name, child in module.named_children():
        if isinstance(child, kind):
            module.add_module(name, replacement(child))
        else:
            _replace(child, kind, replacement)


def _convolution_inputs(net: nn.Module, size: tuple[int, ...]) -> dict[str, list[int]]:
    """The input shape of every (transposed) convolution of ``net`` for an input of ``size``,
    by module name: one pass on the meta device, shapes only. None where ``net`` does not
    take that size (a classifier's fully connected layers take their crop size only)."""
    meta = copy.deepcopy(net).to("meta")
    shapes: dict[str, list[int]] = {}

    def record(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(_: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            shapes.setdefault(name, list(inputs[0].shape))

        return hook

    for name, module in meta.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            module.register_forward_pre_hook(record(name))
    try:
        with torch.no_grad():
            meta(torch.empty(size, device="meta"))
    except RuntimeError:
        return {}
    return shapes


def _pack_children(
    module: nn.Module,
    dtype: torch.dtype,
    shapes: dict[str, list[int]],
    layout: torch.memory_format,
    prefix: str = "",
) -> None:
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if _packable(child):
            conv_path = f"{path}.conv" if isinstance(child, ConvRelu) else path
            module.add_module(name, _pack(child, dtype, shapes.get(conv_path), layout))
        else:
            _pack_children(child, dtype, shapes, layout, f"{path}.")


def _packable(module: nn.Module) -> bool:
    if isinstance(module, ConvRelu):
        return _packable(module.conv)
    if isinstance(module, nn.ConvTranspose2d):
        return (
            module.padding_mode == "zeros"
            and not any(module.output_padding)
            and module.dilation == (1, 1)
            and _is_square(module.kernel_size)
            and _is_square(module.stride)
            and _is_square(module.padding)
        )
    return (
        isinstance(module, nn.Conv2d)
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def _pack(
    module: nn.Module,
    dtype: torch.dtype,
    example: list[int] | None,
    layout: torch.memory_format,
) -> nn.Module:
    if isinstance(module, nn.ConvTranspose2d):
        return PhaseConvTranspose2d(module, dtype, example)
    if isinstance(module, ConvRelu):
        return PackedConv2d(module.conv, dtype, "relu", example, layout)
    assert isinstance(module, nn.Conv2d)
    return PackedConv2d(module, dtype, example=example, layout=layout)


def _layer_chains(net: nn.Module) -> Iterator[list[tuple[str, nn.Module, bool]]]:
    """Runs of layers applied one after another: a trunk's named layers, a Sequential's."""
    for prefix, module in net.named_modules():
        names: list[str] = []
        tapped: set[str] = set()
        if isinstance(getattr(module, "trunk", None), list):
            names = list(module.trunk)
            taps = getattr(module, "taps", {})
            tapped = {getattr(tap, "layer", tap) for tap in taps.values()}
        elif isinstance(module, nn.Sequential):
            names = [name for name, _ in module.named_children()]
        if not names:
            continue
        chain = []
        for name in names:
            full = f"{prefix}.{name}" if prefix else name
            # A tapped layer's output is read elsewhere: the chain may not fuse past it.
            chain.append((full, module.get_submodule(name), name in tapped))
        yield chain


def _fuse_chain(net: nn.Module, chain: list[tuple[str, nn.Module, bool]]) -> None:
    for i, (name, conv, tapped) in enumerate(chain):
        if not isinstance(conv, nn.Conv2d) or tapped:
            continue
        following = chain[i + 1 : i + 3]
        if following and isinstance(following[0][1], nn.BatchNorm2d):
            bn_name, bn, bn_tapped = following.pop(0)
            conv = _fold_batch_norm(conv, bn)
            net.set_submodule(name, conv)
            net.set_submodule(bn_name, nn.Identity())
            if bn_tapped:
                continue
        if following and isinstance(following[0][1], nn.ReLU):
            net.set_submodule(name, ConvRelu(conv))
            net.set_submodule(following[0][0], nn.Identity())


def _fold_batch_norm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``bn(conv(x))`` as one convolution (eval mode: running statistics)."""
    fused = copy.deepcopy(conv)
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        shifted = (bias - bn.running_mean) * scale
        if bn.bias is not None:
            shifted = shifted + bn.bias
        fused.bias = nn.Parameter(shifted)
    return fused


def input_channels(model: nn.Module) -> int:
    """Channels of ``model``'s input: an FCN's ``in_channels``, else its first convolution's
    (a classifier's)."""
    if isinstance(getattr(model, "in_channels", None), int):
        return model.in_channels
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise ValueError(f"{type(model).__name__} has no convolution")


def _as_fp32(scores: torch.Tensor) -> torch.Tensor:
    return scores.to(torch.float32, memory_format=torch.contiguous_format)


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _mkldnn_op_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(
        torch.ops.mkldnn, "_convolution_pointwise"
    )


def _is_square(value: tuple[int, ...]) -> bool:
    return len(set(value)) == 1


def _square(value: int | tuple[int, ...]) -> int:
    return value if isinstance(value, int) else value[0]
