"""Normalisation functionals: batch_norm, group_norm, layer_norm (torch semantics).

GroupNorm and eval-mode BatchNorm use three kernels (channel statistics in one
pass, a per-channel affine map, per-channel gradient sums), with the small
per-channel coefficient algebra done here in float64. Training BatchNorm uses
two fused kernels that do the same algebra per channel while the channel's
data is in cache (statistics + normalise; gradient sums + grad_input).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_activation import ACT_CODES
from pyvision_engine.nn._f_common import (RuntimeValueError, float_input, int_arg,
                                          updated_in_place)
from pyvision_engine.tensor import Tensor

__all__ = ["batch_norm", "group_norm", "layer_norm", "batch_norm_scale_shift"]

_F32 = np.float32


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=_F32)


def batch_norm_scale_shift(running_mean: np.ndarray, running_var: np.ndarray,
                           weight: Optional[np.ndarray], bias: Optional[np.ndarray],
                           eps: float) -> Tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, shift) with y = x * scale + shift in eval mode (float32)."""
    invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    scale = invstd * (weight.astype(np.float64) if weight is not None else 1.0)
    shift = -running_mean.astype(np.float64) * scale
    if bias is not None:
        shift = shift + bias
    return _f32(scale), _f32(shift)


class _BatchNorm(Function):
    """Inputs: x (N, C, *), weight, bias (or None). Running stats ride in ``state``."""

    owns_grads = True  # gx from a kernel, gw / gb from fresh conversions

    @staticmethod
    def forward(ctx, x, weight, bias, state):
        # relu_max: None, or the fused ReLU's clamp (inf: ReLU, 6: ReLU6)
        running_mean, running_var, training, momentum, eps, relu_max = state
        relu, cap = relu_max is not None, math.inf if relu_max is None else relu_max
        n, c = x.shape[0], x.shape[1]
        l = math.prod(x.shape[2:])
        if training:
            # Statistics and normalisation in one kernel, channel by channel; the
            # running statistics (torch: with the unbiased batch variance) are
            # updated by the same call, so that no numpy step runs here (each
            # cost tens of microseconds with the caches cold after the kernel).
            y, mean, var = _C.batch_norm_train_forward(
                x, n, c, l, weight, bias, eps, relu, cap, running_mean=running_mean,
                running_var=running_var, momentum=momentum)
            ctx.center, ctx.var, ctx.invstd, ctx.w64 = mean, var, None, None
        else:
            invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
            w64 = weight.astype(np.float64) if weight is not None else 1.0
            scale = invstd * w64
            shift = -running_mean.astype(np.float64) * scale + (bias if bias is not None else 0.0)
            y = _C.channel_affine(x, n=n, c=c, l=l, a=_f32(scale), d=_f32(shift), relu=relu,
                                  relu_max=cap)
            ctx.center, ctx.var, ctx.invstd, ctx.w64 = _f32(running_mean), None, invstd, w64
        ctx.x, ctx.layout, ctx.training, ctx.eps = x, (n, c, l), training, eps
        ctx.has_weight = weight is not None
        ctx.relu, ctx.relu_max = relu, cap
        # Training with ReLU: the backward kernel recomputes ReLU's mask from x with
        # the forward's coefficients, so it keeps this call's weight and bias.
        keep = relu and training
        ctx.weight = weight.copy() if keep and weight is not None else weight
        ctx.bias = (None if bias is None else bias.copy()) if keep else None
        ctx.relu_y = y if relu and not training else None
        return y

    @staticmethod
    def backward(ctx, g):
        g = np.ascontiguousarray(g, dtype=_F32)
        if ctx.relu_y is not None:
            # ReLU's backward: zero where y <= 0 (NaN passes, as torch's); ReLU6's:
            # g where 0 < y < 6 (the same test as on its input)
            g_relu = np.empty_like(g)
            code = ACT_CODES["relu"] if ctx.relu_max == math.inf else ACT_CODES["relu6"]
            _C.activation_backward(code, ctx.relu_y, g, g_relu)
            g = g_relu
        n, c, l = ctx.layout
        x = ctx.x
        gx = gw = gb = None
        if ctx.training:
            # Gradient sums and grad_input in one kernel, channel by channel, which
            # also returns grad_bias and grad_weight. With ReLU fused, the kernel
            # applies ReLU's backward itself (no pass of its own).
            gx, sum_g, sum_g_xhat = _C.batch_norm_train_backward(
                x, g, n, c, l, ctx.center, ctx.var, ctx.weight, ctx.eps,
                bool(ctx.needs_input_grad[0]), bias=ctx.bias,
                relu=ctx.relu, relu_max=ctx.relu_max, affine_grads=True)
        else:
            invstd, w64 = ctx.invstd, ctx.w64
            s1, s2 = _C.channel_grad_sums(x, g, n, c, l, ctx.center)
            if ctx.needs_input_grad[0]:
                gx = _C.channel_affine(g, n=n, c=c, l=l, a=_f32(w64 * invstd * np.ones(c)))
            sum_g, sum_g_xhat = s1, _f32(s2.astype(np.float64) * invstd)
        if ctx.has_weight and ctx.needs_input_grad[1]:
            gw = sum_g_xhat
        if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]:
            gb = sum_g
        return gx, gw, gb, None


def _check_channel_vec(v: Optional[Tensor], c: int, op: str, name: str) -> None:
    if v is not None and v.shape != (c,):
        raise RuntimeValueError(f"{op}: {name} must have shape ({c},) (num_features), "
                                f"got {v.shape}")


def batch_norm(input: Any, running_mean: Optional[Any], running_var: Optional[Any],
               weight: Optional[Any] = None, bias: Optional[Any] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5, *,
               _fuse_relu: Optional[float] = None) -> Tensor:
    """Batch normalisation over dim 1 of (N, C, *) input.

    training=True: batch statistics (biased variance to normalise); running
    stats, if given, are updated in place: r = (1 - momentum) r + momentum s,
    with the unbiased batch variance. training=False: running statistics.
    ``_fuse_relu`` (internal, nn/fusion.py): inf (ReLU) or 6 (ReLU6), the clamp
    applied in the same kernel passes; eval mode's backward uses those two
    activations' own kernels."""
    op = "batch_norm"
    x = float_input(input, op)
    if x.ndim < 2:
        raise ValueError(f"{op}: expected input of shape (N, C, *) with at least 2 dims, got {x.shape}")
    c = x.shape[1]
    rm = None if running_mean is None else float_input(running_mean, op)
    rv = None if running_var is None else float_input(running_var, op)
    _check_channel_vec(rm, c, op, "running_mean")
    _check_channel_vec(rv, c, op, "running_var")
    w = None if weight is None else float_input(weight, op)
    b = None if bias is None else float_input(bias, op)
    _check_channel_vec(w, c, op, "weight")
    _check_channel_vec(b, c, op, "bias")
    if not training and (rm is None or rv is None):
        raise ValueError(f"{op}: running_mean and running_var are required when training=False")
    if (rm is None) != (rv is None):
        raise ValueError(f"{op}: running_mean and running_var must be given together")
    if training:
        per_channel = x._data.size // max(c, 1)
        if per_channel == 0 and c > 0:
            # An empty batch, as torch: an empty result, the running statistics left as
            # they are, and zero gradients for weight and bias (through x * w + b).
            shape = (1, c) + (1,) * (x.ndim - 2)
            y = x if w is None else x * w.reshape(shape)
            y = y * 1.0 if b is None else y + b.reshape(shape)
            return y if _fuse_relu is None else y.clamp(0.0, _fuse_relu)
        if per_channel == 1:
            raise ValueError(f"{op}: expected more than 1 value per channel when training, got "
                             f"input size {x.shape}")
    state = (None if rm is None else rm._data, None if rv is None else rv._data, bool(training),
             float(momentum) if momentum is not None else 0.0, float(eps),
             None if _fuse_relu is None else float(_fuse_relu))
    y = _BatchNorm.apply(x, w, b, state)
    if training and rm is not None:
        updated_in_place(running_mean, rm)
        updated_in_place(running_var, rv)
    return y


class _GroupNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, groups, eps):
        n, c = x.shape[0], x.shape[1]
        l = int(np.prod(x.shape[2:], dtype=np.int64))
        cg = c // groups
        # Each group is a layer-norm row, normalized as (x - mean) * rstd: a constant
        # group gives exactly 0, as torch's (folding the mean into one shift, x * a + d,
        # left rounding noise of |mean| * rstd ulps there), then the per-channel affine.
        y, mean, rstd = _C.layer_norm_forward(x, n * groups, cg * l, None, None, eps)
        w = weight.astype(np.float64) if weight is not None else np.ones(c)
        if weight is not None or bias is not None:
            a = np.tile(_f32(w), n)
            d = np.tile(_f32(bias), n) if bias is not None else None
            _C.channel_affine(y, out=y, n=1, c=n * c, l=l, a=a, d=d)
        rstd_nc = np.repeat(rstd.astype(np.float64).reshape(n, groups), cg, axis=1)  # (N, C)
        mean_nc = np.repeat(mean.astype(np.float64).reshape(n, groups), cg, axis=1)
        ctx.x, ctx.dims, ctx.w = x, (n, c, l, groups), w
        ctx.rstd_nc, ctx.mean_nc = rstd_nc, mean_nc
        ctx.has_w, ctx.has_b = weight is not None, bias is not None
        return y

    @staticmethod
    def backward(ctx, g):
        g = np.ascontiguousarray(g, dtype=_F32)
        n, c, l, groups = ctx.dims
        cg = c // groups
        rstd, mean, w = ctx.rstd_nc, ctx.mean_nc, ctx.w
        s1, s2 = _C.channel_grad_sums(ctx.x, g, 1, n * c, l, _f32(mean.reshape(-1)))
        s1 = s1.astype(np.float64).reshape(n, c)
        s2 = s2.astype(np.float64).reshape(n, c)   # sum g * (x - mean)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            m = cg * l
            # Per group: A = mean(g w), B = mean(g w xhat).
            A = (w * s1).reshape(n, groups, cg).sum(axis=2) / m
            B = (w * s2 * rstd).reshape(n, groups, cg).sum(axis=2) / m
            A = np.repeat(A, cg, axis=1)
            B = np.repeat(B, cg, axis=1)
            a = rstd * w
            bcoef = -rstd * rstd * B
            dcoef = -rstd * A - bcoef * mean
            gx = _C.channel_affine(g, v=ctx.x, n=1, c=n * c, l=l, a=_f32(a.reshape(-1)),
                                   b=_f32(bcoef.reshape(-1)), d=_f32(dcoef.reshape(-1)))
        if ctx.has_w and ctx.needs_input_grad[1]:
            gw = _f32((s2 * rstd).sum(axis=0))
        if ctx.has_b and ctx.needs_input_grad[2]:
            gb = _f32(s1.sum(axis=0))
        return gx, gw, gb, None, None


def group_norm(input: Any, num_groups: int, weight: Optional[Any] = None,
               bias: Optional[Any] = None, eps: float = 1e-5) -> Tensor:
    """Group normalisation of (N, C, *) input: statistics over each group of
    C / num_groups channels; per-channel affine weight and bias of shape (C,)."""
    op = "group_norm"
    x = float_input(input, op)
    groups = int_arg(num_groups, op, "num_groups")
    if x.ndim < 2:
        raise ValueError(f"{op}: expected input of shape (N, C, *), got {x.shape}")
    c = x.shape[1]
    if groups <= 0 or c % groups != 0:
        raise RuntimeValueError(f"{op}: num_groups={groups} must be positive and divide the "
                         f"{c} channels of input shape {x.shape}")
    w = None if weight is None else float_input(weight, op)
    b = None if bias is None else float_input(bias, op)
    _check_channel_vec(w, c, op, "weight")
    _check_channel_vec(b, c, op, "bias")
    return _GroupNorm.apply(x, w, b, groups, float(eps))


class _LayerNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, length, eps):
        rows = x.size // length if length else 0
        wf = None if weight is None else _f32(weight.reshape(-1))
        bf = None if bias is None else _f32(bias.reshape(-1))
        y, mean, rstd = _C.layer_norm_forward(x, rows, length, wf, bf, eps)
        ctx.x, ctx.rows, ctx.length, ctx.wf, ctx.mean, ctx.rstd = x, rows, length, wf, mean, rstd
        ctx.wshape = None if weight is None else weight.shape
        ctx.has_b = bias is not None
        return y

    @staticmethod
    def backward(ctx, g):
        g = np.ascontiguousarray(g, dtype=_F32)
        need_affine = len(ctx.needs_input_grad) > 1 and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2])
        gx, gw, gb = _C.layer_norm_backward(ctx.x, g, ctx.rows, ctx.length, ctx.mean, ctx.rstd, ctx.wf,
                                            need_input=ctx.needs_input_grad[0], need_affine=need_affine)
        gw = gw.reshape(ctx.wshape) if (gw is not None and ctx.wshape is not None and ctx.needs_input_grad[1]) else None
        gb = gb.reshape(ctx.wshape) if (gb is not None and ctx.has_b and ctx.needs_input_grad[2]) else None
        return gx, gw, gb, None, None


def layer_norm(input: Any, normalized_shape: Sequence[int], weight: Optional[Any] = None,
               bias: Optional[Any] = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing ``normalized_shape`` dims; weight/bias of that shape."""
    op = "layer_norm"
    x = float_input(input, op)
    shape = (int_arg(normalized_shape, op, "normalized_shape"),) if not isinstance(
        normalized_shape, (tuple, list)) else tuple(int_arg(s, op, "normalized_shape") for s in normalized_shape)
    k = len(shape)
    if k == 0 or x.ndim < k or tuple(x.shape[-k:]) != shape:
        raise RuntimeValueError(f"{op}: input shape {x.shape} does not end with "
                                f"normalized_shape {shape}")
    w = None if weight is None else float_input(weight, op)
    b = None if bias is None else float_input(bias, op)
    for v, name in ((w, "weight"), (b, "bias")):
        if v is not None and tuple(v.shape) != shape:
            raise RuntimeValueError(f"{op}: {name} must have shape {shape}, got {v.shape}")
    length = int(np.prod(shape, dtype=np.int64))
    return _LayerNorm.apply(x, w, b, length, float(eps))


# ------------------------------------------------------------------ instance norm, LRN
from pyvision_engine.autograd import no_grad  # noqa: E402

__all__ += ["instance_norm", "local_response_norm"]


def _instance_running_update(x: np.ndarray, rm: Tensor, rv: Tensor, momentum: float) -> None:
    """torch's update: batch_norm over the (1, N * C, *) view with the running stats
    repeated N times, then their mean over N. Each instance contributes its mean and
    its unbiased variance; an empty batch leaves NaN (a mean over no instances), empty
    planes leave the statistics as they are."""
    n, c = x.shape[:2]
    m = x.size // max(n * c, 1)
    if n * c > 0 and m == 0:
        return
    planes = x.reshape(n, c, m).astype(np.float64)
    if n == 0:
        mean = var = np.full(c, np.nan)
    else:
        inst_mean = planes.mean(axis=2)
        inst_var = ((planes - inst_mean[:, :, None]) ** 2).sum(axis=2) / (m - 1)
        mean, var = inst_mean.mean(axis=0), inst_var.mean(axis=0)
    rm._data[...] = _f32((1.0 - momentum) * rm._data.astype(np.float64) + momentum * mean)
    rv._data[...] = _f32((1.0 - momentum) * rv._data.astype(np.float64) + momentum * var)


def instance_norm(input: Any, running_mean: Optional[Any] = None,
                  running_var: Optional[Any] = None, weight: Optional[Any] = None,
                  bias: Optional[Any] = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Instance normalisation of (N, C, *) input: each (n, c) plane by its own mean and
    biased variance (use_input_stats=True; running stats, if given, are updated in place
    with momentum and the unbiased variances), or by the running statistics
    (use_input_stats=False); per-channel affine weight and bias of shape (C,).

    The input statistics are group_norm's with one group per channel (the same function
    and gradients); the running-statistics form is eval-mode batch_norm."""
    op = "instance_norm"
    x = float_input(input, op)
    if use_input_stats and int(np.prod(x.shape[2:], dtype=np.int64)) == 1:
        raise ValueError(f"{op}: Expected more than 1 spatial element when training, got input "
                         f"size {list(x.shape)}")
    if not use_input_stats and (running_mean is None or running_var is None):
        raise RuntimeValueError(f"{op}: Expected running_mean and running_var to be defined when "
                                f"use_input_stats is false")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must either both be None or neither "
                         f"be None")
    if x.ndim < 2:
        raise ValueError(f"{op}: expected input of shape (N, C, *), got {tuple(x.shape)}")
    c = x.shape[1]
    tensors = []
    for value, name in ((running_mean, "running_mean"), (running_var, "running_var"),
                        (weight, "weight"), (bias, "bias")):
        t = None if value is None else float_input(value, op)
        if t is not None and t.shape != (c,):
            raise RuntimeValueError(f"{op}: {name} should have shape ({c},) (one value per "
                                    f"channel of input {tuple(x.shape)}), got {tuple(t.shape)}")
        tensors.append(t)
    rm, rv, w, b = tensors
    momentum = 0.0 if momentum is None else float(momentum)
    if not use_input_stats:
        return batch_norm(x, rm, rv, w, b, False, momentum, eps)
    if rm is not None:
        with no_grad():
            _instance_running_update(x._data, rm, rv, momentum)
        updated_in_place(running_mean, rm)
        updated_in_place(running_var, rv)
    if c == 0 or x._data.size == 0:
        shape = (1, c) + (1,) * (x.ndim - 2)  # (empty: weight and bias still get gradients)
        y = x * 1.0 if w is None else x * w.reshape(shape)
        return y if b is None else y + b.reshape(shape)
    return group_norm(x, c, w, b, eps)


class _LocalResponseNorm(Function):
    """b_c = a_c / (k + alpha / size * sum_{c' in window(c)} a_c'^2) ** beta over dim 1,
    the window [c - size // 2, c + (size - 1) // 2] (zeros outside). Sums run over
    shifted slices (no running sums), so a NaN or Inf reaches only its own windows."""

    @staticmethod
    def _window_sum(v, lo, hi):
        """out[:, c] = sum of v[:, c + d] for d in [-lo, hi] inside the channels."""
        out = v.copy()
        c = v.shape[1]
        for d in range(1, lo + 1):
            if d < c:
                out[:, d:] += v[:, :c - d]
        for d in range(1, hi + 1):
            if d < c:
                out[:, :c - d] += v[:, d:]
        return out

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        lo, hi = size // 2, (size - 1) // 2
        with np.errstate(all="ignore"):
            avg = _LocalResponseNorm._window_sum(x * x, lo, hi) / _F32(size)
            base = avg * _F32(alpha) + _F32(k)
            div = base ** _F32(beta)
            y = x / div
        ctx.x, ctx.base, ctx.div, ctx.y, ctx.params = x, base, div, y, (size, alpha, beta)
        return y

    @staticmethod
    def backward(ctx, g):
        size, alpha, beta = ctx.params
        g = np.asarray(g, dtype=_F32)
        with np.errstate(all="ignore"):
            # d/dx_i: g_i / div_i - 2 alpha beta / size * x_i * sum over the windows that
            # hold i of g_c * y_c / base_c (the transposed window: [-hi, lo])
            t = g * ctx.y / ctx.base
            s = _LocalResponseNorm._window_sum(t, (size - 1) // 2, size // 2)
            gx = g / ctx.div - _F32(2.0 * alpha * beta / size) * ctx.x * s
        return gx.astype(_F32, copy=False), None, None, None, None


def local_response_norm(input: Any, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Tensor:
    """Local response normalisation across channels (dim 1) of (N, C, *) input, torch's
    formula: the window sum of squares is averaged over ``size`` (zero padding included)."""
    op = "local_response_norm"
    x = float_input(input, op)
    if x.ndim < 3:
        raise ValueError(f"{op}: Expected 3D or higher dimensionality input (got {x.ndim} "
                         f"dimensions)")
    if x._data.size == 0:
        return x
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"{op}: size must be an int, got {type(size).__name__}")
    if size <= 0:
        raise RuntimeValueError(f"{op}: kernel size should be greater than zero, but got "
                                f"size={size}")
    for name, v in (("alpha", alpha), ("beta", beta), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise TypeError(f"{op}: {name} must be a number, got {type(v).__name__}")
    return _LocalResponseNorm.apply(x, int(size), float(alpha), float(beta), float(k))


# ------------------------------------------------------------------------- RMS norm
def rms_norm(input: Any, normalized_shape: Sequence[int], weight: Optional[Any] = None,
             eps: Optional[float] = None) -> Tensor:
    """torch.nn.functional.rms_norm: ``x / sqrt(mean(x**2 over the trailing
    normalized_shape dims) + eps) * weight``; eps None is float32's machine epsilon
    (torch.finfo(float32).eps). Composed of differentiable Tensor ops, so its gradient
    is autograd's. Errors as torch's: RuntimeError (here RuntimeValueError) for shape
    mismatches, TypeError for a normalized_shape that is not a tuple/list of ints."""
    op = "rms_norm"
    x = float_input(input, op)
    if not isinstance(normalized_shape, (tuple, list)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in normalized_shape):
        raise TypeError(f"{op}(): argument 'normalized_shape' must be tuple of ints, not "
                        f"{type(normalized_shape).__name__}")
    shape = tuple(int(s) for s in normalized_shape)
    k = len(shape)
    if k == 0:
        raise RuntimeValueError(f"{op}: expected normalized_shape to be at least 1-dimensional, "
                                "but got normalized_shape = []")
    if x.ndim < k or tuple(x.shape[-k:]) != shape:
        raise RuntimeValueError(f"{op}: given normalized_shape={list(shape)}, expected input with "
                                f"shape [*, {', '.join(map(str, shape))}], but got input of size "
                                f"{list(x.shape)}")
    w = None if weight is None else float_input(weight, op)
    if w is not None and tuple(w.shape) != shape:
        raise RuntimeValueError(f"{op}: expected weight to be of same shape as normalized_shape, "
                                f"but got weight of shape {list(w.shape)} and normalized_shape = "
                                f"{list(shape)}")
    e = float(np.finfo(np.float32).eps) if eps is None else float(eps)
    mean_sq = (x * x).mean(dim=tuple(range(-k, 0)), keepdim=True)
    y = x * (mean_sq + e).rsqrt()
    return y if w is None else y * w


# ---------------------------------------------------------------------------- pdist
def pdist(input: Any, p: float = 2) -> Tensor:
    """torch.nn.functional.pdist: the p-norm distances between the rows of an (N, M)
    input, for every pair i < j in row-major order (N * (N - 1) / 2 values). Composed of
    row gathers and Tensor.norm, so the gradient is torch's norm gradient (0 for
    coinciding rows at p = 2)."""
    op = "pdist"
    x = float_input(input, op)
    if x.ndim != 2:
        raise RuntimeValueError(f"{op}: pdist only supports 2D tensors, got: {x.ndim}D "
                                f"(shape {x.shape})")
    if p < 0:
        raise RuntimeValueError(f"{op}: pdist only supports non-negative p values, got {p}")
    n = x.shape[0]
    i, j = np.triu_indices(n, k=1)
    if i.size == 0:
        return (x.reshape((-1,))[:0] * 0.0).reshape((0,))
    diff = x[Tensor(i.astype(np.int64))] - x[Tensor(j.astype(np.int64))]
    y = diff.norm(p=float(p), dim=1)
    if p == 0 and diff.requires_grad:  # a count: torch's gradient is zeros, not absent
        y = y + (diff * 0.0).sum(1)
    return y
