"""More pooling functionals: max_unpool2d (max_pool2d's partial inverse) and lp_pool2d
(power-average pooling), with torch's semantics.

lp_pool2d follows torch's own composition: avg_pool2d of x ** p (or max_pool2d of
|x| for p = +-inf), then torch's sign / relu / pow tail as one node with torch's
chain-rule gradient, so values and gradients (NaN for the root of a negative sum,
zero for an all-zero window) come out as torch's.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import (RuntimeTypeError, RuntimeValueError, float_input,
                                          int_arg, pair)
from pyvision_engine.nn._f_distance import torch_sign
from pyvision_engine.nn._f_fold import RankError
from pyvision_engine.nn._f_pooling import avg_pool2d, max_pool2d, pool_output_size
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["max_unpool2d", "lp_pool2d"]

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
