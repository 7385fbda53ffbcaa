"""Pooling functionals: max_pool2d, avg_pool2d, adaptive_{avg,max}_pool2d, their 1-D
forms, max_unpool2d and lp_pool2d (torch semantics).

Inputs are (N, C, H, W) or (C, H, W) float32; the kernels see (N*C, H, W) planes.

lp_pool2d follows torch's own composition: avg_pool2d of x ** p (or max_pool2d of
|x| for p = +-inf), then torch's sign / relu / pow tail as one node with torch's
chain-rule gradient, so values and gradients (NaN for the root of a negative sum,
zero for an all-zero window) come out as torch's.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine._ops import Reshape, torch_sign
from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import (RankError, RuntimeTypeError, RuntimeValueError,
                                          float_input, int_arg, needs_grad, pair)
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d",
           "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices", "pool_output_size",
           "max_pool1d", "max_pool1d_with_indices", "avg_pool1d", "adaptive_avg_pool1d",
           "adaptive_max_pool1d", "adaptive_max_pool1d_with_indices", "max_unpool2d", "lp_pool2d",
           "lp_pool1d", "max_unpool1d"]


def pool_output_size(size: int, kernel: int, stride: int, pad: int, dilation: int,
                     ceil_mode: bool) -> int:
    """torch's pooling output length: windows that would start in the right
    padding under ceil_mode are dropped."""
    span = dilation * (kernel - 1) + 1
    num = size + 2 * pad - span + (stride - 1 if ceil_mode else 0)
    out = num // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _planes(x: Tensor, op: str) -> Tuple[np.ndarray, Tuple[int, ...]]:
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                         f"{x.shape}")
    if 0 in x.shape[-3:]:  # as torch: an empty batch is fine, empty planes are not
        raise ValueError(f"{op}: expected non-zero channel, height and width (the batch may be "
                         f"empty), got shape {x.shape}")
    lead = x.shape[:-2]
    return x._data.reshape((-1,) + x.shape[-2:]), lead


def _pool_arg(v: Any, dims: int, op: str, name: str) -> Tuple[int, ...]:
    """A pooling argument as a ``dims``-tuple: an int, or a sequence of 1 (or ``dims``)."""
    if dims == 2:
        return pair(v, op, name)
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise RuntimeValueError(f"{op}() {name} must be an int, list of ints or tuple of "
                                    f"ints of size 1 but got size {len(v)}")
        v = v[0]
    return (int_arg(v, op, name),)


def _window_args(op: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
                 in_sizes: Tuple[int, ...], ceil_mode: bool) -> Tuple[Tuple[int, int], ...]:
    """(kernel, stride, padding, dilation, output size) for the 2-D kernels, checked (as
    torch: RuntimeErrors) in the pooling's own rank, len(in_sizes): 1-D windows are
    1 x k over a (1, L) plane."""
    dims = len(in_sizes)
    k = _pool_arg(kernel_size, dims, op, "kernel_size")
    no_stride = stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0)
    s = k if no_stride else _pool_arg(stride, dims, op, "stride")
    p = _pool_arg(padding, dims, op, "padding")
    d = _pool_arg(dilation, dims, op, "dilation")
    if min(k) <= 0:
        raise RuntimeValueError(f"{op}: kernel_size must be greater than zero, got {k}")
    if min(s) <= 0:
        raise RuntimeValueError(f"{op}: stride must be greater than zero, got {s}")
    if min(d) <= 0:
        raise RuntimeValueError(f"{op}: dilation must be greater than zero, got {d}")
    if min(p) < 0:
        raise RuntimeValueError(f"{op}: padding must be non-negative, got {p}")
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise RuntimeValueError(f"{op}: padding should be at most half of kernel size, but got "
                                f"padding={p} and kernel_size={k}")
    out = tuple(pool_output_size(*a, ceil_mode) for a in zip(in_sizes, k, s, p, d))
    if min(out) < 1:
        raise RuntimeValueError(f"{op}: output size is too small: input {tuple(in_sizes)} with "
                                f"kernel_size={k}, stride={s}, padding={p}, dilation={d} gives "
                                f"{out}")
    if dims == 1:  # a 1 x k window with stride 1 over the single row
        k, s, p, d, out = (1,) + k, (1,) + s, (0,) + p, (1,) + d, (1,) + out
    return k, s, p, d, out  # type: ignore[return-value]


def _max_pool_planes(planes: np.ndarray, lead: Tuple[int, ...], args: Tuple[Any, ...],
                     want_indices: bool) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """The max-pool kernel on (planes, H, W): the output in shape lead + out, and the
    flat indices when asked for (the graph's forward and the inference path alike)."""
    k, s, p, d, out = args
    y, ind = _C.max_pool2d_forward(planes, k, s, p, d, out[0], out[1], want_indices)
    return y.reshape(lead + out), ind


class _MaxPool2d(Function):
    # Takes x in its own shape (no Reshape node in the graph) and returns
    # grad_input in that shape, freshly allocated: a leaf keeps it as .grad
    # without a copy.
    owns_grads = True

    @staticmethod
    def forward(ctx, x, lead, args, holder):
        want = holder is not None or any(ctx.needs_input_grad)
        y, ind = _max_pool_planes(x.reshape((-1,) + x.shape[-2:]), lead, args, want)
        ctx.ind, ctx.x_shape = ind, x.shape
        if holder is not None:
            holder.append(ind.reshape(y.shape))
        return y

    @staticmethod
    def backward(ctx, g):
        return _max_pool_backward(ctx, g), None, None, None


def _max_pool_backward(ctx, g: np.ndarray) -> np.ndarray:
    g3 = np.ascontiguousarray(g.reshape((-1,) + g.shape[-2:]), dtype=np.float32)
    gx = np.empty(ctx.x_shape, dtype=np.float32)
    _C.max_pool2d_backward(g3, ctx.ind, ctx.x_shape[-2], ctx.x_shape[-1], out=gx)
    return gx


def max_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False):
    """2-D max pooling; input (N, C, H, W) or (C, H, W). stride defaults to kernel_size.

    Ties keep the first position in window scan order, NaN propagates; with
    ``return_indices`` also returns int64 flat per-plane indices (h * W + w)."""
    op = "max_pool2d"
    x = float_input(input, op)
    planes, lead = _planes(x, op)
    args = _window_args(op, kernel_size, stride, padding, dilation, x.shape[-2:], ceil_mode)
    return _max_pool(x, planes, lead, args, return_indices)


def _max_pool(x: Tensor, planes: np.ndarray, lead: Tuple[int, ...], args: Tuple[Any, ...],
              return_indices: bool):
    """max_pool2d's result for a checked input (with _planes' view) and window."""
    if not return_indices and not needs_grad(x):  # no graph node to build (inference)
        return Tensor._wrap(_max_pool_planes(planes, lead, args, False)[0])
    holder: Optional[List[np.ndarray]] = [] if return_indices else None
    y = _MaxPool2d.apply(x, lead, args, holder)
    if return_indices:
        return y, Tensor._wrap(holder[0])
    return y


def _as_planes_tensor(x: Tensor, planes: np.ndarray) -> Tensor:
    # The Function sees the (planes, H, W) view; gradients flow back to x by
    # reshaping in backward (the view shares x's memory).
    return Reshape.apply(x, planes.shape) if x.requires_grad else Tensor._wrap(planes)


def max_pool2d_with_indices(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                            dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = True):
    return max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


class _AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, lead, args, include_pad, divisor):
        k, s, p, _, out = args
        ctx.args, ctx.in_hw, ctx.lead, ctx.include_pad, ctx.divisor = args, x.shape[1:], lead, include_pad, divisor
        # The kernels take a positive divisor; a negative one (torch allows it) is
        # the positive one negated, exactly (IEEE division is sign-symmetric).
        y = _C.avg_pool2d_forward(x, k, s, p, out[0], out[1], include_pad, abs(divisor))
        if divisor < 0:
            np.negative(y, out=y)
        return y.reshape(lead + out)

    @staticmethod
    def backward(ctx, g):
        k, s, p, _, out = ctx.args
        g3 = np.ascontiguousarray(g.reshape((-1,) + out))
        gx = _C.avg_pool2d_backward(g3, ctx.in_hw[0], ctx.in_hw[1], k, s, p, ctx.include_pad,
                                    abs(ctx.divisor))
        if ctx.divisor < 0:
            np.negative(gx, out=gx)
        return gx, None, None, None, None


def avg_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Optional[int] = None) -> Tensor:
    """2-D average pooling; input (N, C, H, W) or (C, H, W).

    The divisor is ``divisor_override`` if given, else the window size counted
    with padding (``count_include_pad``) or without it."""
    op = "avg_pool2d"
    x = float_input(input, op)
    planes, lead = _planes(x, op)
    args = _window_args(op, kernel_size, stride, padding, 1, x.shape[-2:], ceil_mode)
    divisor = 0
    if divisor_override is not None:
        divisor = int_arg(divisor_override, op, "divisor_override")
        if divisor == 0:  # torch: any other value, negative ones too
            raise ValueError(f"{op}: divisor_override must be non-zero")
    return _AvgPool2d.apply(_as_planes_tensor(x, planes), lead, args, bool(count_include_pad), divisor)


def _adaptive_size(output_size: Any, in_hw: Tuple[int, int], op: str) -> Tuple[int, int]:
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
        size = tuple(in_hw[i] if output_size[i] is None else int_arg(output_size[i], op, "output_size")
                     for i in range(2))
    else:
        v = int_arg(output_size, op, "output_size")
        size = (v, v)
    if min(size) < 0:
        raise RuntimeValueError(f"{op}: elements of output_size must be greater than or equal "
                                f"to 0, got {size}")
    if min(in_hw) <= 0:
        raise ValueError(f"{op}: input height and width must be positive, got {in_hw}")
    return size


class _EmptyAdaptivePool(Function):
    """An adaptive pool to an output size with a 0: torch returns the empty result, and
    its backward refuses the empty gradient (a RuntimeError there); both mirrored."""

    @staticmethod
    def forward(ctx, x, shape, op):
        ctx.op, ctx.shape = op, shape
        return np.empty(shape, np.float32)

    @staticmethod
    def backward(ctx, g):
        raise RuntimeValueError(f"{ctx.op}_backward(): expected grad_output to have non-zero "
                                f"size for non-batch dimensions, but grad_output has sizes "
                                f"{list(ctx.shape)} (torch refuses it too)")


def _adaptive_avg_planes(planes: np.ndarray, lead: Tuple[int, ...],
                         out: Tuple[int, int]) -> np.ndarray:
    """The adaptive-average kernel on (planes, H, W), shaped lead + out."""
    return _C.adaptive_avg_pool2d_forward(planes, out[0], out[1]).reshape(lead + out)


class _AdaptiveAvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, lead, out):
        ctx.in_hw, ctx.lead, ctx.out = x.shape[1:], lead, out
        return _adaptive_avg_planes(x, lead, out)

    @staticmethod
    def backward(ctx, g):
        g3 = np.ascontiguousarray(g.reshape((-1,) + ctx.out))
        gx = _C.adaptive_avg_pool2d_backward(g3, ctx.in_hw[0], ctx.in_hw[1])
        return gx, None, None


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Tensor:
    """Adaptive average pooling to ``output_size`` (int, or (h, w) with None = keep).

    Output cell i covers rows floor(i*H/h) .. ceil((i+1)*H/h); output size 1
    runs the global-average-pool kernel; a 0 gives an empty result (as torch, whose
    backward then raises)."""
    one = (output_size == 1 if type(output_size) is int
           else type(output_size) is tuple and output_size == (1, 1))
    if one and type(input) is Tensor and not needs_grad(input):
        # Global average pooling in inference (classifier heads), straight to the
        # kernel: half the Python work of the general path below, which after a
        # large layer (its lines out of cache and TLB) took ~0.05 ms more.
        d = input._data
        if d.ndim == 4 and d.dtype == np.float32 and d.size:
            n, c, h, w = d.shape
            return Tensor._wrap(_adaptive_avg_planes(d.reshape(n * c, h, w), (n, c), (1, 1)))
    op = "adaptive_avg_pool2d"
    x = float_input(input, op)
    planes, lead = _planes(x, op)
    out = _adaptive_size(output_size, x.shape[-2:], op)
    return _adaptive_avg(x, planes, lead, out, op)


def _adaptive_avg(x: Tensor, planes: np.ndarray, lead: Tuple[int, ...], out: Tuple[int, int],
                  op: str) -> Tensor:
    """adaptive_avg_pool2d's result for a checked input (with _planes' view) and size."""
    if 0 in out:
        return _EmptyAdaptivePool.apply(x, lead + out, op)
    if not needs_grad(x):  # no graph node to build (inference)
        return Tensor._wrap(_adaptive_avg_planes(planes, lead, out))
    return _AdaptiveAvgPool2d.apply(_as_planes_tensor(x, planes), lead, out)


class _AdaptiveMaxPool2d(Function):
    owns_grads = True  # as _MaxPool2d

    @staticmethod
    def forward(ctx, x, lead, out, holder):
        y, ind = _C.adaptive_max_pool2d_forward(x.reshape((-1,) + x.shape[-2:]), out[0], out[1],
                                                True)
        ctx.ind, ctx.x_shape = ind, x.shape
        if holder is not None:
            holder.append(ind.reshape(lead + out))
        return y.reshape(lead + out)

    @staticmethod
    def backward(ctx, g):
        return _max_pool_backward(ctx, g), None, None, None


def adaptive_max_pool2d(input: Any, output_size: Any, return_indices: bool = False):
    """Adaptive max pooling (windows as adaptive_avg_pool2d); optional flat indices."""
    op = "adaptive_max_pool2d"
    x = float_input(input, op)
    planes, lead = _planes(x, op)
    out = _adaptive_size(output_size, x.shape[-2:], op)
    return _adaptive_max(x, lead, out, return_indices, op)


def _adaptive_max(x: Tensor, lead: Tuple[int, ...], out: Tuple[int, int], return_indices: bool,
                  op: str):
    """adaptive_max_pool2d's result for a checked input and size."""
    if 0 in out:
        y = _EmptyAdaptivePool.apply(x, lead + out, op)
        return (y, Tensor._wrap(np.empty(lead + out, np.int64))) if return_indices else y
    holder: Optional[List[np.ndarray]] = [] if return_indices else None
    y = _AdaptiveMaxPool2d.apply(x, lead, out, holder)
    if return_indices:
        return y, Tensor._wrap(holder[0])
    return y


def adaptive_max_pool2d_with_indices(input: Any, output_size: Any, return_indices: bool = True):
    return adaptive_max_pool2d(input, output_size, True)


# ------------------------------------------------------------------ 1-D pooling
# The 2-D kernels on (N, C, 1, L) views with 1 x k windows: a flat per-plane index
# h * L + w is then the position in L itself, as torch's 1-D indices. The views are
# reshapes, so autograd carries gradients back to the (N, C, L) input.

def _rows(input: Any, op: str) -> Tuple[Tensor, Tensor, np.ndarray, Tuple[int, ...]]:
    """(input, its (..., 1, L) view, _planes' planes and lead of the view), after torch's
    1-D shape check."""
    x = float_input(input, op)
    if x.ndim not in (2, 3) or 0 in x.shape[-2:]:
        raise RuntimeValueError(f"{op}: Expected 2D or 3D (batch mode) tensor with optional 0 "
                                f"dim batch size for input, but got: {list(x.shape)}")
    view = x.reshape(tuple(x.shape[:-1]) + (1, x.shape[-1]))
    planes, lead = _planes(view, op)
    return x, view, planes, lead


def _unrow(result: Any) -> Any:
    """A 2-D pooling result (or (values, indices)) on a row view, as 1-D."""
    if isinstance(result, tuple):
        return tuple(_unrow(r) for r in result)
    return result.reshape(tuple(result.shape[:-2]) + (result.shape[-1],))


def max_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False):
    """1-D max pooling; input (N, C, L) or (C, L); stride defaults to kernel_size. Ties,
    NaN and ceil_mode as max_pool2d; indices (int64) are positions in L."""
    op = "max_pool1d"
    x, view, planes, lead = _rows(input, op)
    args = _window_args(op, kernel_size, stride, padding, dilation, x.shape[-1:], ceil_mode)
    return _unrow(_max_pool(view, planes, lead, args, return_indices))


def max_pool1d_with_indices(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                            dilation: Any = 1, ceil_mode: bool = False,
                            return_indices: bool = True):
    return max_pool1d(input, kernel_size, stride, padding, dilation, ceil_mode, True)


def avg_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """1-D average pooling; input (N, C, L) or (C, L); divisor as avg_pool2d's (torch's
    avg_pool1d has no divisor_override)."""
    op = "avg_pool1d"
    x, view, planes, lead = _rows(input, op)
    args = _window_args(op, kernel_size, stride, padding, 1, x.shape[-1:], ceil_mode)
    return _unrow(_AvgPool2d.apply(_as_planes_tensor(view, planes), lead, args,
                                   bool(count_include_pad), 0))


def _adaptive_length(output_size: Any, op: str) -> Tuple[int, int]:
    """A 1-D adaptive output size (an int or a 1-sequence) as the row view's (1, size)."""
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 1:
            raise RuntimeValueError(f"{op}() argument 'output_size' should contain one int (got "
                                    f"{len(output_size)})")
        output_size = output_size[0]
    size = int_arg(output_size, op, "output_size")
    if size < 0:
        raise RuntimeValueError(f"{op}: elements of output_size must be greater than or equal "
                                f"to 0, got {size}")
    return (1, size)


def adaptive_avg_pool1d(input: Any, output_size: Any) -> Tensor:
    """Adaptive average pooling of (N, C, L) or (C, L) to ``output_size`` (an int): cell i
    covers floor(i*L/size) .. ceil((i+1)*L/size), as torch."""
    op = "adaptive_avg_pool1d"
    _, view, planes, lead = _rows(input, op)
    return _unrow(_adaptive_avg(view, planes, lead, _adaptive_length(output_size, op), op))


def adaptive_max_pool1d(input: Any, output_size: Any, return_indices: bool = False):
    """Adaptive max pooling (windows as adaptive_avg_pool1d); optional indices into L."""
    op = "adaptive_max_pool1d"
    _, view, _, lead = _rows(input, op)
    return _unrow(_adaptive_max(view, lead, _adaptive_length(output_size, op), return_indices,
                                op))


def adaptive_max_pool1d_with_indices(input: Any, output_size: Any, return_indices: bool = True):
    return adaptive_max_pool1d(input, output_size, True)


# ================================================ max_unpool2d and lp_pool2d
Pair = Tuple[int, int]
_F32 = np.float32


# ------------------------------------------------------------------ max_unpool2d
def _unpool_output_size(in_hw: Sequence[int], k: Pair, s: Pair, p: Pair,
                        output_size: Any, op: str) -> Pair:
    """torch's _unpool_output_size: (in - 1) * stride + kernel - 2 * padding by default;
    a given size (its last two entries if it has four) must lie within a stride of it."""
    default = tuple((in_hw[i] - 1) * s[i] + k[i] - 2 * p[i] for i in range(2))
    if output_size is None:
        size = default
    else:
        size = tuple(int_arg(v, op, "output_size") for v in output_size)
        if len(size) == 4:
            size = size[2:]
        if len(size) != 2:
            raise ValueError(f"{op}: output_size should be a sequence containing 2 or 4 "
                             f"elements, but it has a length of '{len(size)}'")
        for i in range(2):
            low, high = default[i] - s[i], default[i] + s[i]
            if not low < size[i] < high:
                raise ValueError(f'{op}: invalid output_size "{tuple(output_size)}" (dim {i} '
                                 f"must be between {low} and {high})")
    for i in range(2):
        if size[i] < 0:
            raise ValueError(f"{op}: max_unpooling: output_size must contain non-negative "
                             f"spatial dimensions, but got output_size[{i}]={size[i]}")
    return size


class _MaxUnpool2d(Function):
    """Scatter each input value to its flat per-plane index of a zero output; the
    gradient gathers from the same indices (so every duplicate gets it, as torch's)."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, x, index, out_hw):
        out = np.zeros((index.shape[0], out_hw[0] * out_hw[1]), np.float32)
        # Duplicate indices come from overlapping pooling windows and carry equal values;
        # with unequal ones torch's parallel loop leaves the winner unspecified, numpy's
        # assignment keeps the last in input order.
        np.put_along_axis(out, index, x.reshape(index.shape), axis=1)
        ctx.index, ctx.shape = index, x.shape
        return out.reshape(x.shape[:-2] + tuple(out_hw))

    @staticmethod
    def backward(ctx, g):
        g = np.ascontiguousarray(g, dtype=np.float32).reshape(ctx.index.shape[0], -1)
        return np.take_along_axis(g, ctx.index, axis=1).reshape(ctx.shape), None, None


def max_unpool2d(input: Any, indices: Any, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Optional[Sequence[int]] = None) -> Tensor:
    """Put each value of ``input`` (N, C, h, w) or (C, h, w) at its flat index
    (row * W + col, per plane, as max_pool2d's return_indices gives) in a zero
    (N, C, H, W) output; H, W = (h - 1) * stride + kernel_size - 2 * padding unless
    ``output_size`` says otherwise (within one stride of that)."""
    op = "max_unpool2d"
    x = float_input(input, op)
    if x.ndim not in (3, 4):
        raise RankError(f"{op}: Input to max_unpooling2d should be a 3d or 4d Tensor, but got a "
                        f"tensor with {x.ndim} dimensions.")
    k = pair(kernel_size, op, "kernel_size")
    s = k if stride is None else pair(stride, op, "stride")
    p = pair(padding, op, "padding")
    out_hw = _unpool_output_size(x.shape[-2:], k, s, p, output_size, op)
    ind = as_tensor(indices)
    if ind.dtype != np.int64:
        raise RuntimeTypeError(f"{op}: elements in indices should be type int64 but got: "
                               f"{ind.dtype}")
    if ind.shape != x.shape:
        raise RuntimeValueError(f"{op}: Expected shape of indices to be same as that of the input "
                                f"tensor ({list(x.shape)}) but got indices tensor with shape: "
                                f"{list(ind.shape)}")
    for i in range(1, x.ndim):
        if x.shape[i] == 0:
            raise RuntimeValueError(f"{op}: Expected input to have non-zero size for non-batch "
                                    f"dimensions, but got {list(x.shape)} with dimension {i} "
                                    "being empty.")
    plane_size = out_hw[0] * out_hw[1]
    index = ind._data.reshape(-1, x.shape[-2] * x.shape[-1])
    if plane_size:  # (torch writes nothing, and checks nothing, into an empty output)
        bad = (index < 0) | (index >= plane_size)
        if bad.any():
            raise RuntimeValueError(f"{op}: Found an invalid max index: {index[bad][0]} (output "
                                    f"volumes are of size {out_hw[0]}x{out_hw[1]})")
    return _MaxUnpool2d.apply(x, index, out_hw)


# ------------------------------------------------------------------ lp_pool2d
def _check_lp_window(x: Tensor, kernel_size: Any, stride: Any, ceil_mode: bool, op: str) -> None:
    """The checks avg_pool2d makes, with torch's error types and this op's name."""
    if x.ndim < 3:
        raise RankError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                        f"{x.shape}")
    if x.ndim > 4 or 0 in x.shape[-3:]:
        raise RuntimeValueError(f"{op}: Expected 3D or 4D (batch mode) tensor with optional 0 "
                                f"dim batch size for input, but got: {list(x.shape)}")
    k = pair(kernel_size, op, "kernel_size")
    s = k if stride is None else pair(stride, op, "stride")
    if min(k) <= 0 or min(s) <= 0:
        raise RuntimeValueError(f"{op}: kernel_size and stride must be greater than zero, got "
                                f"kernel_size={k}, stride={s}")
    c, h, w = x.shape[-3:]
    out = (pool_output_size(h, k[0], s[0], 0, 1, ceil_mode),
           pool_output_size(w, k[1], s[1], 0, 1, ceil_mode))
    if min(out) < 1:
        raise RuntimeValueError(f"{op}: Given input size: ({c}x{h}x{w}). Calculated output size: "
                                f"({c}x{out[0]}x{out[1]}). Output size is too small")


class _WindowRoot(Function):
    """torch's lp_pool2d tail on the window means m: (sign(m) * relu(|m|) * area) ** (1 / p),
    differentiated as torch's chain of pow, mul, relu and abs but in one node, so that
    no inf * 0 reaches numpy's warnings: the relu's mask turns an all-zero window's
    infinite root gradient into zero, and sign(NaN) = 0 (torch's sgn) stops a NaN's."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, mean, area, p):
        sign = torch_sign(mean)
        rectified = np.maximum(np.abs(mean), _F32(0))  # relu(|m|): NaN stays NaN
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            total = sign * rectified * _F32(area)
            y = np.power(total, _F32(1.0 / p))
        ctx.sign, ctx.rectified, ctx.total, ctx.area, ctx.p = sign, rectified, total, area, p
        return y

    @staticmethod
    def backward(ctx, g):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            g_total = g * _F32(1.0 / ctx.p) * np.power(ctx.total, _F32(1.0 / ctx.p - 1))
            g_rectified = np.where(ctx.rectified <= 0, _F32(0), g_total * _F32(ctx.area) * ctx.sign)
            return (g_rectified * ctx.sign).astype(_F32, copy=False), None, None


def lp_pool2d(input: Any, norm_type: float, kernel_size: Any, stride: Any = None,
              ceil_mode: bool = False) -> Tensor:
    """(sum over each window of x ** p) ** (1 / p), p = norm_type; inf is the max of |x|.

    As torch: the window mean of x ** p times the window area, kept at its sign
    (sign(s) * relu(|s|)), so a negative sum (odd p, negative inputs) gives NaN and an
    all-zero window a zero gradient; ceil_mode's partial windows are averaged over
    their own size first."""
    op = "lp_pool2d"
    x = float_input(input, op)
    _check_lp_window(x, kernel_size, stride, ceil_mode, op)
    if norm_type == math.inf:
        return max_pool2d(abs(x), kernel_size, stride, 0, 1, ceil_mode)
    if norm_type == -math.inf:
        return -max_pool2d(-abs(x), kernel_size, stride, 0, 1, ceil_mode)
    kw, kh = pair(kernel_size, op, "kernel_size")
    if norm_type == 0:
        raise ZeroDivisionError(f"{op}: norm_type 0 has no root (torch: float division by zero)")
    mean = avg_pool2d(x ** norm_type, kernel_size, stride, 0, ceil_mode)
    return _WindowRoot.apply(mean, kw * kh, float(norm_type))


# ------------------------------------------------------- lp_pool1d, max_unpool1d
def lp_pool1d(input: Any, norm_type: float, kernel_size: int, stride: Any = None,
              ceil_mode: bool = False) -> Tensor:
    """1-D power-average pooling of (N, C, L) or (C, L), torch's lp_pool1d: the window
    mean of x ** p (avg_pool1d) times kernel_size, kept at its sign, to the power 1 / p
    (lp_pool2d's tail, the same NaN and zero-window rules); +-inf are max pools of |x|."""
    op = "lp_pool1d"
    x = float_input(input, op)
    if norm_type == math.inf:
        return max_pool1d(abs(x), kernel_size, stride, 0, 1, ceil_mode)
    if norm_type == -math.inf:
        return -max_pool1d(-abs(x), kernel_size, stride, 0, 1, ceil_mode)
    k = int_arg(kernel_size, op, "kernel_size")
    if norm_type == 0:
        raise ZeroDivisionError(f"{op}: norm_type 0 has no root (torch: float division by zero)")
    with _renamed_errors("avg_pool1d", op):
        mean = avg_pool1d(x ** norm_type, k, stride, 0, ceil_mode)
    return _WindowRoot.apply(mean, k, float(norm_type))


def max_unpool1d(input: Any, indices: Any, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Optional[Sequence[int]] = None) -> Tensor:
    """Partial inverse of max_pool1d over (N, C, L) or (C, L): max_unpool2d on the
    (..., L, 1) view, as torch's; output length (l - 1) * stride + kernel_size -
    2 * padding unless ``output_size`` ((L,) or (N, C, L)) says otherwise."""
    op = "max_unpool1d"
    x, ind = float_input(input, op), as_tensor(indices)
    k = _single(kernel_size, op, "kernel_size")
    s = k if stride is None else _single(stride, op, "stride")
    p = _single(padding, op, "padding")
    size = None
    if output_size is not None:
        size = [int(v) for v in output_size]
        if len(size) == 3:
            size = size[2:]
        if len(size) != 1:
            raise ValueError("output_size should be a sequence containing 1 or 3 elements, but "
                             f"it has a length of '{len(size)}'")
        size = size + [1]
    if x.ndim not in (2, 3):
        raise RankError(f"{op}: Input to max_unpooling1d should be a 2d or 3d Tensor, but got a "
                        f"tensor with {x.ndim} dimensions.")
    if ind.ndim != x.ndim:
        raise RuntimeValueError(f"{op}: Expected shape of indices to be same as that of the input "
                                f"tensor ({list(x.shape)}) but got indices tensor with shape: "
                                f"{list(ind.shape)}")
    with _renamed_errors("max_unpool2d", op):
        y = max_unpool2d(x.unsqueeze(-1), ind.unsqueeze(-1), (k, 1), (s, 1), (p, 0), size)
    return y.squeeze(-1)


@contextlib.contextmanager
def _renamed_errors(inner: str, op: str) -> Iterator[None]:
    """The inner op's errors (same class) with the calling op's name in the message."""
    try:
        yield
    except (ValueError, RuntimeError, TypeError, IndexError) as e:
        if inner not in str(e):
            raise
        raise type(e)(str(e).replace(inner, op)) from None


def _single(v: Any, op: str, name: str) -> int:
    """An int or a 1-sequence of ints."""
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ValueError(f"{op}: {name} must be an int or a 1-tuple, got {v!r}")
        v = v[0]
    return int_arg(v, op, name)
