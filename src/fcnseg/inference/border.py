"""The Caffe geometry's 100-pixel border, computed once instead of everywhere (issue 13).

The published FCNs pad ``conv1_1`` by 100 pixels so that fc6's unpadded 7x7 window fits any
input (section 4.1's nets, the ``"caffe"`` geometry). At 500x500 that border costs 40% of the
forward pass's FLOPs, yet almost none of it depends on the image: a feature map's cell
depends on the image only if its receptive field meets the image *along both axes*. Along one
axis the cells of every map fall into bands, derived layer by layer from each layer's kernel,
stride and padding (as :mod:`fcnseg.models.geometry` derives receptive fields):

- the **image band**: cells whose receptive field meets the image's rows (or columns);
- the **edge bands**: cells that read some layer's own padding (zeros for a convolution,
  nothing for a max pooling) or Caffe's ceil-mode overhang at the map's two ends;
- between them, where a map has room, cells that see only the zero border: their values are
  one constant per channel, and all of those rows (columns) are the same row (column).

A cell outside the image band of either axis never sees an image pixel, so its value is the
value the same net gives an all-zero image: the **background** ``B``. This module computes

1. the background, on a compressed all-zero input: every run of identical rows and columns is
   shortened to one (by a multiple of the strides still ahead, so every later window keeps
   its phase) and re-lengthened, by copying that row, just before a layer would eat into it.
   Its maps are a few cells more than the edge bands wide: a few milliseconds.
2. the image's cells: each run of layers between two strided layers (a *stage*) runs on the
   smallest rectangle of its input map from which the image band of its output map follows
   (the backward cone of that band, the geometry's receptive fields again), assembled from the
   previous stage's valid cells and the background around them. Where such a rectangle
   reaches the map's true edge, the layers' own padding is the true padding; elsewhere the
   outputs that read the rectangle's false edge are simply not used.
3. every map an FCN head reads (``pool3``, ``pool4``, ``fc7``): assembled whole from the
   computed cells and the background.

Every cell is computed by the same layer from the same inputs as in the plain net, so the
result is the plain net's to fp32 rounding (the kernels may sum in another order on other
shapes), at every size, 1x1 included. Layers of unknown spatial extent switch the net back
to the plain path. At 500x500 the FCN-8s VGG16 forward pass runs 260 of its 363 GFLOP
(the lean geometry: 217).
"""

from __future__ import annotations

import copy
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from fcnseg.models.fcn import FCN

# Layers that act on each cell on its own (or across channels only): no spatial extent.
_POINTWISE = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Dropout,
    nn.Dropout2d,
    nn.Identity,
    nn.BatchNorm2d,
    nn.LocalResponseNorm,
)
# Layers that, in training mode, read the whole map: the border path stops before them.
_WHOLE_MAP_IN_TRAINING = (nn.Dropout, nn.Dropout2d, nn.BatchNorm2d)
_PLAN_CACHE_SIZE = 32
_BACKGROUND_CACHE_SIZE = 4


@dataclass(frozen=True)
class Op:
    """One spatial layer along one axis: kernel (dilation included), stride, padding."""

    kernel: int
    stride: int = 1
    padding: int = 0
    ceil_mode: bool = False

    def length(self, length: int) -> int:
        """Output length for an input of ``length`` cells (PyTorch's rule, Caffe's for pools)."""
        span = length + 2 * self.padding - self.kernel
        if not self.ceil_mode:
            return span // self.stride + 1
        out = -(-span // self.stride) + 1
        if (out - 1) * self.stride >= length + self.padding:
            out -= 1  # the last window must start inside the input or its left padding
        return out


@dataclass(frozen=True)
class Bands:
    """Where the cells of one map stand along one axis.

    ``image``: the cells ``[lo, hi)`` whose receptive field meets the image. ``inner``: the
    cells ``[lo, hi)`` that read no layer's padding or overhang; the others depend on the
    map's ends. Between the two, cells see only the zero border.
    """

    length: int
    image: tuple[int, int]
    inner: tuple[int, int]

    def then(self, op: Op) -> Bands:
        k, s, p = op.kernel, op.stride, op.padding
        length = op.length(self.length)
        lo, hi = self.image
        if lo < hi:
            lo, hi = max(0, _ceil_div(lo - k + 1 + p, s)), min(length, (hi - 1 + p) // s + 1)
            lo, hi = (lo, hi) if lo < hi else (0, 0)
        # cell o reads input cells s*o - p ... s*o - p + k - 1
        first = min(length, _ceil_div(self.inner[0] + p, s))
        stop = max(0, min(length, _ceil_div(self.inner[1] - k + 1 + p, s)))
        return Bands(length, (lo, hi), (first, stop))

    @property
    def constant(self) -> int:
        """Cells between the edge bands (the all-zero image's rows that are all alike)."""
        return self.inner[1] - self.inner[0]


@dataclass(frozen=True)
class Step:
    """One layer of the trunk: its name and its spatial footprint (empty when pointwise)."""

    name: str
    ops: tuple[Op, ...]

    @property
    def stride(self) -> int:
        return math.prod(op.stride for op in self.ops)


def module_ops(module: nn.Module) -> tuple[Op, ...] | None:
    """The spatial footprint of a trunk layer, or None when it is not known exactly."""
    try:
        if isinstance(module, nn.Conv2d):
            if module.padding_mode != "zeros" or isinstance(module.padding, str):
                return None
            kernel = (_square(module.kernel_size) - 1) * _square(module.dilation) + 1
            return (Op(kernel, _square(module.stride), _square(module.padding)),)
        if isinstance(module, nn.MaxPool2d):
            if module.return_indices or _square(module.dilation) != 1:
                return None
            return (Op(*_pool_footprint(module), module.ceil_mode),)
        if isinstance(module, nn.AvgPool2d):
            return (Op(*_pool_footprint(module), module.ceil_mode),)
        if hasattr(module, "spatial_layers"):  # a block of branches declares its widest chain
            layers = list(module.spatial_layers())
            if any(layer.transposed for layer in layers):
                return None
            return tuple(Op(layer.kernel, layer.stride, layer.padding) for layer in layers)
        if isinstance(module, _POINTWISE):
            return ()
    except ValueError:  # not square
        return None
    return None


Window = tuple[tuple[int, int], tuple[int, int, int, int]]


@dataclass
class AxisPlan:
    """One axis of one input size: bands, stage windows, background schedule."""

    bands: list[Bands]  # per map: 0 is the padded input, j the output of step j
    # per stage (a, b): the cells [r0, r1) of map a the stage runs on, and at map b the
    # tensor's first cell, its length and its valid cells [v0, v1); None: no image there
    windows: dict[tuple[int, int], Window | None]
    deleted_before: list[int] = field(default_factory=list)  # background: cells left out of
    deleted_after: list[int] = field(default_factory=list)  # the constant run, per step


@dataclass
class Plan:
    """One input size: both axes, each segment's stages, the maps whose background is read."""

    rows: AxisPlan
    cols: AxisPlan
    stages: list[list[tuple[int, int]]]
    background_maps: set[int]


# What copying one element of a map costs, in FLOPs (fp32: about 0.6 ns against 70-100
# GFLOP/s of convolution per core): an assembly before a layer must save more than it
# copies. In bf16 on AMX a FLOP is six times cheaper, an element half the bytes.
COPY_FLOPS = 48
COPY_FLOPS_16BIT = 160


class BorderRunner:
    """Runs an FCN's trunk with the border computed once; see the module docstring.

    Args:
        steps: the trunk's layers with their footprints, the first one without its padding.
        padding: the first layer's padding (Caffe's 100).
        modules: the modules that run each step (the optimised ones), the first one unpadded.
        segment_ends: the steps whose outputs a head reads, in trunk order, the last step last.
        flops: per step, the FLOPs of one output cell (to choose the stages).
        channels: per map (0: the input), its channels (to cost the copies).
        cache_background: keep the background of the last few input sizes (the weights do
            not change: inference only).
        copy_flops: what copying one element costs against the layers' FLOPs.
    """

    def __init__(
        self,
        steps: Sequence[Step],
        padding: int,
        modules: Sequence[nn.Module],
        segment_ends: Sequence[int],
        flops: Sequence[float],
        channels: Sequence[int],
        *,
        cache_background: bool = False,
        copy_flops: float = COPY_FLOPS,
    ) -> None:
        self.steps = list(steps)
        self.copy_flops = copy_flops
        self.padding = padding
        self.modules = list(modules)
        self.segment_ends = list(segment_ends)
        self.flops = list(flops)
        self.channels = list(channels)
        self._plans: dict[tuple[int, int], Plan] = {}
        # frozen weights (inference): the background of each input size is computed once
        self.cache_background = cache_background
        self._backgrounds: OrderedDict[tuple, dict[int, _Background]] = OrderedDict()
        self._calls: dict[int, tuple[Plan, dict[int, _Background], torch.memory_format]] = {}
        self.calls = 0  # forward passes that took this path (for tests)

    # ---- planning (integer arithmetic, cached per input size) ----

    def plan(self, height: int, width: int) -> Plan:
        """The plan for an input of ``height x width`` pixels."""
        key = (height, width)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(height, width)
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _plan(self, height: int, width: int) -> Plan:
        rows = AxisPlan(*self._bands(height))
        cols = AxisPlan(*self._bands(width))
        stages = []
        for start, end in zip([0, *self.segment_ends[:-1]], self.segment_ends, strict=True):
            stages.append(self._stages(rows, cols, start, end))
        needs = set()
        for axis in (rows, cols):
            needs |= self._background_maps(axis, stages)
        return Plan(rows, cols, stages, needs)

    def _bands(self, size: int) -> tuple[list[Bands], dict, list[int], list[int]]:
        p = self.padding
        bands = [Bands(size + 2 * p, (p, p + size), (0, size + 2 * p))]
        # The background's run of identical cells is kept one cell long wherever the deletion
        # ahead allows: ``d`` cells left out after a step of stride ``s`` are ``s*d`` before
        # it, so every map keeps the phase of every later window.
        before, after = [], []
        deleted = bands[0].length - 1
        for step in self.steps:
            current = bands[-1]
            out = deleted // step.stride
            for i, op in enumerate(step.ops):
                current = current.then(op)
                later = math.prod(later_op.stride for later_op in step.ops[i + 1 :])
                out = min(out, max(0, current.constant - 1) // later)
            bands.append(current)
            before.append(out * step.stride)
            after.append(out)
            deleted = out
        return bands, {}, before, after

    def _stages(
        self, rows: AxisPlan, cols: AxisPlan, start: int, end: int
    ) -> list[tuple[int, int]]:
        """The cheapest cut of steps ``start+1..end`` into stages, each run on one assembled
        rectangle: FLOPs of the cells run plus the copies of the assemblies."""
        cuts = [start] + [j for j in range(start + 1, end) if self.steps[j].ops]
        best: dict[int, tuple[float, int]] = {start: (0.0, start)}
        for b in [*cuts[1:], end]:
            options = []
            for a in cuts:
                if a >= b:
                    break
                cost = best[a][0] + self._stage_cost(rows, cols, a, b, whole=a == start > 0)
                options.append((cost, a))
            best[b] = min(options)
        stages = []
        b = end
        while b != start:
            a = best[b][1]
            stages.append((a, b))
            b = a
        return stages[::-1]

    def _stage_cost(self, rows: AxisPlan, cols: AxisPlan, a: int, b: int, whole: bool) -> float:
        if (a, b) not in rows.windows:
            rows.windows[(a, b)] = self._window(rows.bands, a, b)
            cols.windows[(a, b)] = self._window(cols.bands, a, b)
        r, c = rows.windows[(a, b)], cols.windows[(a, b)]
        if r is None or c is None:
            return 0.0
        (r0, r1), (c0, c1) = r[0], c[0]
        copied = (r1 - r0) * (c1 - c0)
        if whole and copied == rows.bands[a].length * cols.bands[a].length:
            copied = 0  # a whole map comes in, and is used whole
        cost = float(self.copy_flops * self.channels[a] * copied)
        height, width = r1 - r0, c1 - c0
        for j in range(a, b):
            for op in self.steps[j].ops:
                height, width = op.length(height), op.length(width)
            cost += self.flops[j] * height * width
        return cost

    def _window(self, bands: list[Bands], a: int, b: int) -> Window | None:
        """The cells of map ``a`` to run steps ``a+1..b`` on, and what they give at ``b``: the
        backward cone of map ``b``'s image band, its start on a multiple of the stride."""
        lo, hi = bands[b].image
        if lo >= hi:
            return None
        ops = [op for step in self.steps[a:b] for op in step.ops]
        lengths = [bands[a].length]
        for op in ops:
            lengths.append(op.length(lengths[-1]))
        for op, length in zip(reversed(ops), reversed(lengths[:-1]), strict=True):
            lo = max(0, op.stride * lo - op.padding)
            hi = min(length, op.stride * (hi - 1) - op.padding + op.kernel)
        stride = math.prod(op.stride for op in ops)
        r0, r1 = lo // stride * stride, hi
        # Forward: where the tensor stands on each map, and which of its cells are true ones
        # (those that read no false edge: the rectangle's ends inside the map).
        t, size, v0, v1 = r0, r1 - r0, r0, r1
        for op, length in zip(ops, lengths, strict=False):
            out = op.length(length)
            k, s, p = op.kernel, op.stride, op.padding
            t, size = t // s, op.length(size)
            v0 = 0 if v0 == 0 else _ceil_div(v0 + p, s)
            v1 = out if v1 == length else (v1 + p - k) // s + 1
            v0, v1 = max(v0, t), min(v1, t + size, out)
        need = bands[b].image
        if not (v0 <= need[0] and need[1] <= v1):
            raise RuntimeError(f"border plan: stage {a}-{b} gives {v0}-{v1}, not {need}")
        return (r0, r1), (t, size, v0, v1)

    def _background_maps(self, axis: AxisPlan, stages: list[list[tuple[int, int]]]) -> set[int]:
        """Maps whose assembly reads background cells along this axis."""
        needs = set()
        for segment, segment_stages in enumerate(stages):
            first = segment_stages[0][0]
            # a later segment starts from a whole map
            valid: tuple[int, int] | None = (0, axis.bands[first].length) if segment else None
            for a, b in segment_stages:
                window = axis.windows[(a, b)]
                if a > 0 and (window is None or valid is None or not _covers(valid, window[0])):
                    needs.add(a)
                valid = None if window is None else window[1][2:]
            end = segment_stages[-1][1]
            if valid is None or not _covers(valid, (0, axis.bands[end].length)):
                needs.add(end)
        return needs

    # ---- running ----

    def run(self, segment: int, x: torch.Tensor) -> torch.Tensor:
        """The output map of ``segment`` (the input image for the first segment, else the
        previous segment's whole output map)."""
        ident = threading.get_ident()
        if segment == 0:
            plan = self.plan(x.shape[-2], x.shape[-1])
            # the maps keep the input's layout (channels-last for the packed kernels)
            fmt = torch.contiguous_format
            if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
                fmt = torch.channels_last
            background = self._cached_background(plan, x, fmt)
            self._calls[ident] = (plan, background, fmt)
            self.calls += 1
            window = None
        else:
            plan, background, fmt = self._calls[ident]
            a = plan.stages[segment][0][0]
            rows = (0, plan.rows.bands[a].length)
            cols = (0, plan.cols.bands[a].length)
            window = _Window(x, (0, *rows), (0, *cols))
        for a, b in plan.stages[segment]:
            window = self._stage(plan, background, a, b, window, x, fmt)
        end = plan.stages[segment][-1][1]
        full = ((0, plan.rows.bands[end].length), (0, plan.cols.bands[end].length))
        out = self._assemble(background, end, full, window, x, fmt)
        if segment == len(plan.stages) - 1:
            self._calls.pop(ident, None)
        return out

    def _stage(
        self,
        plan: Plan,
        background: dict[int, _Background],
        a: int,
        b: int,
        window: _Window | None,
        x: torch.Tensor,
        fmt: torch.memory_format,
    ) -> _Window | None:
        rows, cols = plan.rows.windows[(a, b)], plan.cols.windows[(a, b)]
        if rows is None or cols is None:
            return None  # nothing at map b depends on the image: all background
        if a == 0:
            y = self._padded_image(x, rows[0], cols[0], fmt)
        else:
            y = self._assemble(background, a, (rows[0], cols[0]), window, x, fmt)
        for j in range(a, b):
            y = self.modules[j](y)
        (t, size, v0, v1), (u, width, w0, w1) = rows[1], cols[1]
        if tuple(y.shape[-2:]) != (size, width):
            raise RuntimeError(
                f"border plan expected {size}x{width} after step {b}, got {tuple(y.shape)}"
            )
        return _Window(y, (t, v0, v1), (u, w0, w1))

    def _padded_image(
        self,
        x: torch.Tensor,
        rows: tuple[int, int],
        cols: tuple[int, int],
        fmt: torch.memory_format,
    ) -> torch.Tensor:
        """Cells ``rows x cols`` of the zero-padded image (map 0)."""
        p = self.padding
        height, width = x.shape[-2:]
        out = _zeros(x, (x.shape[0], x.shape[1], rows[1] - rows[0], cols[1] - cols[0]), fmt)
        top, bottom = max(rows[0], p), min(rows[1], p + height)
        left, right = max(cols[0], p), min(cols[1], p + width)
        if top < bottom and left < right:
            out[..., top - rows[0] : bottom - rows[0], left - cols[0] : right - cols[0]] = x[
                ..., top - p : bottom - p, left - p : right - p
            ]
        return out

    def _assemble(
        self,
        background: dict[int, _Background],
        m: int,
        rect: tuple[tuple[int, int], tuple[int, int]],
        window: _Window | None,
        like: torch.Tensor,
        fmt: torch.memory_format,
    ) -> torch.Tensor:
        """Cells ``rect`` of map ``m``: the window's valid cells, the background elsewhere."""
        (r0, r1), (c0, c1) = rect
        inside = None
        if window is not None:
            y = window.tensor
            t, v0, v1 = window.rows
            u, w0, w1 = window.cols
            vr = (max(r0, v0), min(r1, v1))
            vc = (max(c0, w0), min(c1, w1))
            if vr == (r0, r1) and vc == (c0, c1):
                part = y[..., r0 - t : r1 - t, c0 - u : c1 - u]
                return part.contiguous(memory_format=fmt)
            if vr[0] < vr[1] and vc[0] < vc[1]:
                inside = (vr, vc)
        back = background[m]
        batch = like.shape[0]
        out = torch.empty(
            (batch, back.tensor.shape[1], r1 - r0, c1 - c0),
            dtype=back.tensor.dtype,
            device=back.tensor.device,
            memory_format=fmt,
        )
        if inside is None:
            out[...] = back.cells((r0, r1), (c0, c1))
            return out
        vr, vc = inside
        out[..., vr[0] - r0 : vr[1] - r0, vc[0] - c0 : vc[1] - c0] = y[
            ..., vr[0] - t : vr[1] - t, vc[0] - u : vc[1] - u
        ]
        strips = [
            ((r0, vr[0]), (c0, c1)),  # above the computed cells
            ((vr[1], r1), (c0, c1)),  # below
            (vr, (c0, vc[0])),  # left
            (vr, (vc[1], c1)),  # right
        ]
        for (a, b), (c, d) in strips:
            if a < b and c < d:
                out[..., a - r0 : b - r0, c - c0 : d - c0] = back.cells((a, b), (c, d))
        return out

    def _cached_background(
        self, plan: Plan, x: torch.Tensor, fmt: torch.memory_format
    ) -> dict[int, _Background]:
        if not self.cache_background or torch.is_grad_enabled():
            return self._background(plan, x, fmt)
        key = (*x.shape[1:], x.dtype, x.device, fmt)
        background = self._backgrounds.get(key)
        if background is None:
            background = self._background(plan, x, fmt)
            self._backgrounds[key] = background
            if len(self._backgrounds) > _BACKGROUND_CACHE_SIZE:
                self._backgrounds.popitem(last=False)
        else:
            self._backgrounds.move_to_end(key)
        return background

    def _background(
        self, plan: Plan, x: torch.Tensor, fmt: torch.memory_format
    ) -> dict[int, _Background]:
        """The all-zero image's maps that some assembly reads, compressed (see module doc)."""
        if not plan.background_maps:
            return {}
        last = max(plan.background_maps)
        rows, cols = plan.rows, plan.cols
        y = _zeros(
            x,
            (
                1,
                x.shape[1],
                rows.bands[0].length - rows.deleted_before[0],
                cols.bands[0].length - cols.deleted_before[0],
            ),
            fmt,
        )
        maps = {}
        for j in range(1, last + 1):
            if j > 1:
                for dim, axis in ((2, rows), (3, cols)):
                    y = _reinsert(
                        y,
                        dim,
                        axis.bands[j - 1],
                        axis.deleted_after[j - 2],
                        axis.deleted_before[j - 1],
                        fmt,
                    )
            y = self.modules[j - 1](y)
            if j in plan.background_maps:
                maps[j] = _Background(
                    y,
                    rows.bands[j],
                    rows.deleted_after[j - 1],
                    cols.bands[j],
                    cols.deleted_after[j - 1],
                )
        return maps


@dataclass
class _Window:
    """A computed part of a map: the tensor, and per axis (first cell, valid start, stop)."""

    tensor: torch.Tensor
    rows: tuple[int, int, int]
    cols: tuple[int, int, int]


@dataclass
class _Background:
    """A map of the all-zero image, ``deleted`` cells of each axis's constant run left out."""

    tensor: torch.Tensor
    rows: Bands
    deleted_rows: int
    cols: Bands
    deleted_cols: int

    def cells(self, rows: tuple[int, int], cols: tuple[int, int]) -> torch.Tensor:
        y = self.tensor
        ri = _compressed_index(rows, self.rows, self.deleted_rows, y.device)
        ci = _compressed_index(cols, self.cols, self.deleted_cols, y.device)
        return y.index_select(2, ri).index_select(3, ci)


def _compressed_index(
    span: tuple[int, int], bands: Bands, deleted: int, device: torch.device
) -> torch.Tensor:
    first, stop = bands.inner
    index = [i if i < first else (first if i < stop else i - deleted) for i in range(*span)]
    return torch.tensor(index, dtype=torch.long, device=device)


def _reinsert(
    y: torch.Tensor, dim: int, bands: Bands, deleted: int, keep: int, fmt: torch.memory_format
) -> torch.Tensor:
    """The compressed map ``y`` (``deleted`` constant cells left out) with ``keep`` left out."""
    if deleted == keep:
        return y
    first, stop = bands.inner
    index = [
        q if q < first else (first if q < stop - keep else q + keep - deleted)
        for q in range(bands.length - keep)
    ]
    y = y.index_select(dim, torch.tensor(index, dtype=torch.long, device=y.device))
    return y.contiguous(memory_format=fmt)


class BorderSegment(nn.Module):
    """The trunk layers up to one tapped map, run by a :class:`BorderRunner`."""

    def __init__(self, runner: BorderRunner, index: int) -> None:
        super().__init__()
        self.runner = runner
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.runner.run(self.index, x)

    def extra_repr(self) -> str:
        ends = self.runner.segment_ends
        a, b = ([0, *ends][self.index], ends[self.index])
        return f"steps {a + 1}-{b}, border computed once"


@dataclass
class Analysis:
    """What :func:`analyse` learns from a plain FCN: its trunk's steps and their costs."""

    path: str
    names: list[str]
    steps: list[Step]
    padding: int
    segment_ends: list[int]
    taps: dict[str, int]
    flops: list[float]
    channels: list[int]


def analyse(net: nn.Module, *, training: bool = False) -> list[Analysis]:
    """The FCNs of ``net`` whose first convolution pads more than it needs to keep the size
    (the Caffe geometry), with their trunks' footprints. Read from the plain layers, before
    any of them are fused or packed.

    With ``training``, each trunk is taken only up to its first dropout or batch
    normalisation: in training mode they read the whole map (a mask per cell, statistics
    over all cells), so they and the layers after them run as they are."""
    found = []
    for path, module in net.named_modules():
        if isinstance(module, FCN):
            analysis = _analyse_fcn(path, module, training)
            if analysis is not None:
                found.append(analysis)
    return found


def install(
    net: nn.Module,
    analyses: list[Analysis],
    *,
    cache_background: bool = False,
    copy_flops: float = COPY_FLOPS,
) -> list[BorderRunner]:
    """Swaps each analysed FCN's trunk for segments run by a :class:`BorderRunner`, over the
    (optimised) modules now under the same names; ``cache_background`` for frozen weights."""
    runners = []
    for analysis in analyses:
        fcn = net.get_submodule(analysis.path) if analysis.path else net
        modules = [fcn.get_submodule(name) for name in analysis.names]
        first = _unpadded(modules[0])
        if first is None:
            continue
        runner = BorderRunner(
            analysis.steps,
            analysis.padding,
            [first, *modules[1:]],
            analysis.segment_ends,
            analysis.flops,
            analysis.channels,
            cache_background=cache_background,
            copy_flops=copy_flops,
        )
        count = len(analysis.segment_ends)
        fcn.border_segments = nn.ModuleList(BorderSegment(runner, i) for i in range(count))
        names = [f"border_segments.{i}" for i in range(count)]
        rest = list(fcn.trunk)[len(analysis.names) :]  # layers after a training cut
        taps = {tap: names[analysis.segment_ends.index(end)] for tap, end in analysis.taps.items()}
        fcn.taps = {tap: taps.get(tap, layer) for tap, layer in fcn.taps.items()}
        fcn.trunk = names + rest
        runners.append(runner)
    return runners


def _analyse_fcn(path: str, fcn: FCN, training: bool = False) -> Analysis | None:
    names = list(fcn.trunk)
    if training:
        for j, name in enumerate(names):
            if isinstance(fcn.get_submodule(name), _WHOLE_MAP_IN_TRAINING):
                names = names[:j]
                break
    if not names:
        return None
    first = fcn.get_submodule(names[0])
    if training and not any(module_ops(fcn.get_submodule(name)) for name in names[1:]):
        return None  # nothing but the first layer before the cut
    if not isinstance(first, nn.Conv2d):
        return None
    ops = module_ops(first)
    if ops is None:
        return None
    (op,) = ops
    if op.padding <= (op.kernel - 1) // 2:
        return None  # the lean geometry: nothing to save
    steps = [Step(names[0], (Op(op.kernel, op.stride, 0),))]
    for name in names[1:]:
        ops = module_ops(fcn.get_submodule(name))
        if ops is None:
            return None  # a layer of unknown extent: the plain path
        steps.append(Step(name, ops))
    position = {name: j + 1 for j, name in enumerate(names)}
    taps = {tap: position[layer] for tap, layer in fcn.taps.items() if layer in position}
    ends = sorted({*taps.values(), len(names)})
    channels = [first.in_channels]
    flops = []
    for name, step in zip(names, steps, strict=True):
        module = fcn.get_submodule(name)
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        channels.append(getattr(module, "out_channels", channels[-1]))
        if convs:  # per output cell (an inception block's branches all keep its size)
            flops.append(float(sum(2 * conv.weight.numel() for conv in convs)))
        else:  # a pooling or pointwise layer: a pass over its window
            flops.append(float(channels[-1] * max([op.kernel for op in step.ops] or [1]) ** 2))
    return Analysis(path, names, steps, op.padding, ends, taps, flops, channels)


def _unpadded(module: nn.Module) -> nn.Module | None:
    """A shallow copy of the first layer (sharing its weights) that does not pad."""
    from fcnseg.inference.optimize import ConvRelu, PackedConv2d

    if isinstance(module, ConvRelu):
        conv = _unpadded(module.conv)
        return None if conv is None else ConvRelu(conv)
    if isinstance(module, PackedConv2d):
        clone = copy.copy(module)
        clone.padding = [0, 0]
        clone.example = ()  # the packing was chosen for the padded convolution
        clone.reset_shapes()
        return clone
    if isinstance(module, nn.Conv2d):
        clone = copy.copy(module)
        clone.padding = (0, 0)
        return clone
    return None


def _zeros(like: torch.Tensor, shape: tuple[int, ...], fmt: torch.memory_format) -> torch.Tensor:
    zeros = torch.zeros(shape, dtype=like.dtype, device=like.device)
    return zeros.contiguous(memory_format=fmt)


def _pool_footprint(module: nn.Module) -> tuple[int, int, int]:
    stride = module.stride if module.stride is not None else module.kernel_size
    return _square(module.kernel_size), _square(stride), _square(module.padding)


def _covers(valid: tuple[int, int], span: tuple[int, int]) -> bool:
    return valid[0] <= span[0] and span[1] <= valid[1]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _square(value: int | Sequence[int]) -> int:
    if isinstance(value, int):
        return value
    if len(set(value)) != 1:
        raise ValueError(f"not square: {value}")
    return int(value[0])
