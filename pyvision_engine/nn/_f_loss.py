"""Loss functionals (torch names, arguments, defaults and reductions).

cross_entropy runs one fused log-softmax + NLL kernel (forward and backward);
the element-wise losses are short numpy expressions (memory-bound, single pass).
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import (RuntimeTypeError, RuntimeValueError, TargetIndexError,
                                          check_reduction, float_input, needs_grad)
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"]

_F32 = np.float32


def _reduce(loss: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(loss.sum(dtype=np.float64), dtype=_F32)
    return np.asarray(loss.mean(dtype=np.float64) if loss.size else np.nan, dtype=_F32)


def _reduce_grad(g: np.ndarray, shape: Tuple[int, ...], reduction: str) -> np.ndarray:
    """The upstream gradient broadcast to every element of the unreduced loss."""
    if reduction == "none":
        return g.astype(_F32)
    n = int(np.prod(shape, dtype=np.int64))
    if reduction == "mean":
        scale = float(g) / n if n else float("nan")  # the mean of nothing is NaN, as torch
    else:
        scale = float(g)
    return np.full(shape, scale, dtype=_F32)


def _rows_layout(x: Tensor, op: str) -> Tuple[np.ndarray, int]:
    """(rows, C) logits with the class dim last; for (N, C, d...) inputs a transposed copy."""
    if x.ndim == 1:
        return x._data.reshape(1, -1), x.shape[0]
    if x.ndim == 2:
        return x._data, x.shape[1]
    c = x.shape[1]
    moved = np.moveaxis(x._data, 1, -1)
    return np.ascontiguousarray(moved).reshape(-1, c), c


def _rows_back(grad_rows: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    if grad_rows.shape == shape:
        return grad_rows  # the kernel's own array: a leaf can take it without a copy
    if len(shape) <= 2:
        return grad_rows.reshape(shape)
    moved = grad_rows.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return np.ascontiguousarray(np.moveaxis(moved, -1, 1))


def _check_target_range(tgt: np.ndarray, c: int, ignore_index: int, op: str) -> None:
    """TargetIndexError naming the first class index outside [0, c) that is not ignore_index."""
    bad = (tgt != ignore_index) & ((tgt < 0) | (tgt >= c))
    if bad.any():
        raise TargetIndexError(f"{op}: target {int(tgt[bad][0])} is out of bounds for {c} "
                               f"classes (valid: 0..{c - 1} or ignore_index={ignore_index})")


def _constant_weight(weight: Any, name: str, op: str) -> Tensor:
    """A class / element weight that the loss does not differentiate: torch refuses one
    that requires grad (while grad mode is on) rather than drop its gradient."""
    w = float_input(weight, op)
    if needs_grad(w):
        raise RuntimeValueError(f"{op}: the function is not differentiable with respect to "
                                f"argument '{name}'; this input cannot have requires_grad=True "
                                "(pass it detached)")
    return w


class _CrossEntropy(Function):
    owns_grads = True  # the input's gradient is the backward kernel's fresh array

    @staticmethod
    def forward(ctx, x, weight, target, meta):
        rows_x, c, ignore_index, reduction, smoothing, x_shape, t_shape = meta
        try:
            lse, nll, smooth, nll_sum, smooth_sum, denom = _C.cross_entropy_forward(
                rows_x, target, weight, ignore_index)
        except ValueError:  # the kernel counted targets out of range: name the first
            _check_target_range(target, c, ignore_index, "cross_entropy")
            raise
        if reduction == "none":
            loss_rows = (1.0 - smoothing) * nll.astype(np.float64)
            if smoothing > 0:
                loss_rows = loss_rows + (smoothing / c) * smooth.astype(np.float64)
            out = loss_rows.astype(_F32).reshape(t_shape)
        else:
            total = (1.0 - smoothing) * nll_sum
            if smoothing > 0:
                total += (smoothing / c) * smooth_sum
            if reduction == "mean":
                total = total / denom if denom != 0 else np.nan
                ctx.denom = denom
            out = np.asarray(total, dtype=_F32)
        ctx.rows_x, ctx.lse, ctx.target, ctx.weight, ctx.meta = rows_x, lse, target, weight, meta
        return out

    @staticmethod
    def backward(ctx, g):
        rows_x, c, ignore_index, reduction, smoothing, x_shape, t_shape = ctx.meta
        rows = rows_x.shape[0]
        if reduction == "none":
            gi = np.asarray(g, dtype=np.float64).reshape(rows)
            coef_nll = (gi * (1.0 - smoothing)).astype(_F32)
            coef_smooth = (gi * (smoothing / c)).astype(_F32)
        else:  # one coefficient for every row
            gi = float(g)
            if reduction == "mean":
                gi = gi / ctx.denom if ctx.denom != 0 else np.nan
            coef_nll = np.full(rows, gi * (1.0 - smoothing), dtype=_F32)
            coef_smooth = np.full(rows, gi * (smoothing / c), dtype=_F32)
        grad_rows = _C.cross_entropy_backward(rows_x, ctx.lse, ctx.target, ctx.weight, ignore_index,
                                              coef_nll, coef_smooth)
        return _rows_back(grad_rows, x_shape), None, None, None


def cross_entropy(input: Any, target: Any, weight: Optional[Any] = None,
                  size_average: Optional[bool] = None, ignore_index: int = -100,
                  reduce: Optional[bool] = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits ``input`` (C,), (N, C) or (N, C, d1, ...) against
    class indices (int64, shape without C) or class probabilities (float, same
    shape as input). weight (C,) rescales classes; ``mean`` divides by the
    summed weights of non-ignored targets (by N*d1*... for probabilities)."""
    op = "cross_entropy"
    reduction = _reduction(size_average, reduce, reduction, op)
    x = float_input(input, op)
    t = as_tensor(target)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeValueError(f"{op}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have a class dimension, got a scalar")
    rows_x, c = _rows_layout(x, op)
    w = None
    if weight is not None:
        w = _constant_weight(weight, "weight", op)._data
        if w.shape != (c,):
            raise RuntimeValueError(f"{op}: weight must have shape ({c},) (one per class), "
                                    f"got {w.shape}")
    if t.dtype == np.float32:
        if t.shape != x.shape:
            raise RuntimeValueError(f"{op}: probability targets must have the input's shape "
                                    f"{x.shape}, got {t.shape}")
        if ignore_index >= 0:  # torch refuses it rather than ignore a class's probabilities
            raise RuntimeValueError(f"{op}: ignore_index is not supported for floating point "
                                    f"target (got ignore_index={ignore_index})")
        if t.requires_grad:
            raise ValueError(f"{op}: gradients with respect to probability targets are not supported")
        tgt, _ = _rows_layout(t, op)
        tgt = np.ascontiguousarray(tgt)
        t_shape = x.shape[:1] + x.shape[2:] if x.ndim > 1 else ()
    elif t.dtype == np.int64:
        expected = (x.shape[:1] + x.shape[2:]) if x.ndim > 1 else ()
        if t.shape != expected:
            raise ValueError(f"{op}: class-index target must have shape {expected} for input "
                             f"{x.shape}, got {t.shape}")
        tgt = np.ascontiguousarray(t._data.reshape(-1))  # (the kernel checks its range)
        t_shape = expected
    else:
        raise TypeError(f"{op}: target must be int64 class indices or float32 probabilities, "
                        f"got {t.dtype}")
    meta = (np.ascontiguousarray(rows_x), c, int(ignore_index), reduction, float(label_smoothing),
            x.shape, t_shape)
    # x goes in as the Tensor (for the graph); the kernel reads meta's row view.
    return _CrossEntropy.apply(x, w, tgt, meta)


def _legacy_reduction(size_average: Optional[bool], reduce: Optional[bool],
                      stacklevel: int = 3) -> str:
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "none" if not reduce else "mean" if size_average else "sum"
    warnings.warn("size_average and reduce args will be deprecated, please use "
                  f"reduction='{reduction}' instead.", stacklevel=stacklevel)
    return reduction


def _reduction(size_average: Optional[bool], reduce: Optional[bool], reduction: str,
               op: str) -> str:
    """The reduction a loss function applies: ``reduction``, or what the deprecated
    size_average/reduce flags ask for (with torch's warning), checked."""
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, stacklevel=4)
    check_reduction(reduction, op)
    return reduction


class _NLLLoss(Function):
    owns_grads = True  # the input's gradient is allocated in backward

    @staticmethod
    def forward(ctx, x, weight, target, meta):
        rows_x, c, ignore_index, reduction, x_shape, t_shape = meta
        valid = target != ignore_index
        safe = np.where(valid, target, 0)
        wy = (weight[safe] if weight is not None else np.ones(len(target), _F32)) * valid
        picked = rows_x[np.arange(len(target)), safe]
        loss = -(wy.astype(np.float64) * picked)
        if reduction == "mean":
            denom = float(wy.sum(dtype=np.float64))
            out = np.asarray(loss.sum() / denom if denom else np.nan, dtype=_F32)
            ctx.denom = denom
        elif reduction == "sum":
            out = np.asarray(loss.sum(), dtype=_F32)
        else:
            out = loss.astype(_F32).reshape(t_shape)
        ctx.safe, ctx.valid, ctx.wy, ctx.meta = safe, valid, wy, meta
        return out

    @staticmethod
    def backward(ctx, g):
        rows_x, c, ignore_index, reduction, x_shape, t_shape = ctx.meta
        rows = rows_x.shape[0]
        if reduction == "none":
            gi = np.asarray(g, dtype=np.float64).reshape(rows)
        elif reduction == "sum":
            gi = np.full(rows, float(g))
        else:
            gi = np.full(rows, float(g) / ctx.denom if ctx.denom else np.nan)
        grad = np.zeros(rows_x.shape, dtype=_F32)
        # Ignored rows stay 0 even when the mean's divisor is 0 (all ignored: torch
        # gives zeros there, not 0 * inf = NaN).
        valid = ctx.valid
        grad[np.arange(rows)[valid], ctx.safe[valid]] = -(gi[valid] * ctx.wy[valid])
        return _rows_back(grad, x_shape), None, None, None


def nll_loss(input: Any, target: Any, weight: Optional[Any] = None,
             size_average: Optional[bool] = None, ignore_index: int = -100,
             reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (N, C[, d...]) at class indices."""
    op = "nll_loss"
    reduction = _reduction(size_average, reduce, reduction, op)
    x = float_input(input, op)
    t = as_tensor(target)
    if x.ndim == 0:
        raise ValueError(f"{op}: input must have a class dimension")
    if t.dtype != np.int64:
        raise RuntimeTypeError(f"{op}: target must be int64 class indices, got {t.dtype}")
    rows_x, c = _rows_layout(x, op)
    expected = (x.shape[:1] + x.shape[2:]) if x.ndim > 1 else ()
    if t.shape != expected:
        raise ValueError(f"{op}: target must have shape {expected} for input {x.shape}, got {t.shape}")
    w = None
    if weight is not None:
        w = _constant_weight(weight, "weight", op)._data
        if w.shape != (c,):
            raise ValueError(f"{op}: weight must have shape ({c},), got {w.shape}")
    tgt = t._data.reshape(-1)
    _check_target_range(tgt, c, ignore_index, op)
    meta = (rows_x, c, int(ignore_index), reduction, x.shape, expected)
    return _NLLLoss.apply(x, w, tgt, meta)


def _pair_inputs(input: Any, target: Any, op: str, warn: bool = True) -> Tuple[Tensor, Tensor]:
    """input and target as float32 Tensors; differing shapes broadcast with torch's
    warning (kl_div broadcasts without one), non-broadcastable ones are an error."""
    x = float_input(input, op)
    t = float_input(target, op)
    if x.shape != t.shape:
        try:
            np.broadcast_shapes(x.shape, t.shape)
        except ValueError:
            raise RuntimeValueError(f"{op}: input shape {x.shape} and target shape {t.shape} "
                                    "do not broadcast") from None
        if warn:
            warnings.warn(f"Using a target size ({t.shape}) that is different to the input size "
                          f"({x.shape}). This will likely lead to incorrect results due to "
                          "broadcasting. Please ensure they have the same size.", stacklevel=4)
    return x, t


class _PointwiseLoss(Function):
    """loss = f(x, t) element-wise, then the reduction; f and df given as callables.
    (NaN from Inf - Inf and the like comes out silently, as in torch.)"""

    @staticmethod
    @np.errstate(invalid="ignore")
    def forward(ctx, x, t, fns, reduction):
        f, df = fns
        xb, tb = np.broadcast_arrays(x, t)
        loss = f(xb, tb)
        ctx.x, ctx.t, ctx.df, ctx.reduction, ctx.shape = x, t, df, reduction, xb.shape
        return np.array(_reduce(loss.astype(_F32), reduction), dtype=_F32, order="C")

    @staticmethod
    @np.errstate(invalid="ignore")
    def backward(ctx, g):
        from pyvision_engine.autograd import _unbroadcast
        gl = _reduce_grad(np.asarray(g), ctx.shape, ctx.reduction)
        xb, tb = np.broadcast_arrays(ctx.x, ctx.t)
        dx, dt = ctx.df(xb, tb)
        gx = _unbroadcast((gl * dx).astype(_F32), ctx.x.shape) if ctx.needs_input_grad[0] else None
        gt = _unbroadcast((gl * dt).astype(_F32), ctx.t.shape) if ctx.needs_input_grad[1] else None
        return gx, gt, None, None


def _sign(d: np.ndarray) -> np.ndarray:
    """torch's sign in the L1 gradients: 0 at 0 and at NaN (so a NaN input gets a zero
    gradient there, as torch's l1_loss backward gives)."""
    s = np.sign(d)
    s[np.isnan(s)] = 0
    return s


def _weighted(losses: Tensor, weight: Any, input_shape: Tuple[int, ...], reduction: str,
              op: str, mean_by_weight: bool) -> Tensor:
    """torch's optional per-element weighting of mse_loss / l1_loss / huber_loss: weight
    has the input's shape; 'mean' is sum(weight * loss) / sum(weight) with
    ``mean_by_weight``, else (huber_loss) the plain mean of weight * loss."""
    w = float_input(weight, op)
    if tuple(w.shape) != tuple(input_shape):
        raise ValueError(f"{op}: Weights and input must have the same size: weight shape "
                         f"{tuple(w.shape)}, input shape {tuple(input_shape)}")
    weighted = losses * w
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    return weighted.sum() / w.sum() if mean_by_weight else weighted.mean()


def _elementwise_loss(input: Any, target: Any, size_average: Optional[bool],
                      reduce: Optional[bool], reduction: str, weight: Optional[Any], op: str,
                      f: Any, df: Any, mean_by_weight: bool = True) -> Tensor:
    """f(input, target) per element (df its two partial derivatives), the legacy
    size_average/reduce flags, the reduction and torch's optional weight (see
    _weighted for ``mean_by_weight``)."""
    reduction = _reduction(size_average, reduce, reduction, op)
    x, t = _pair_inputs(input, target, op)
    if weight is not None:
        return _weighted(_PointwiseLoss.apply(x, t, (f, df), "none"), weight, x.shape,
                         reduction, op, mean_by_weight)
    return _PointwiseLoss.apply(x, t, (f, df), reduction)


def mse_loss(input: Any, target: Any, size_average: Optional[bool] = None,
             reduce: Optional[bool] = None, reduction: str = "mean",
             weight: Optional[Any] = None) -> Tensor:
    """(input - target)^2 with the reduction, optionally weighted per element."""
    return _elementwise_loss(input, target, size_average, reduce, reduction, weight, "mse_loss",
                             lambda a, b: (a - b) ** 2,
                             lambda a, b: (2 * (a - b), -2 * (a - b)))


def l1_loss(input: Any, target: Any, size_average: Optional[bool] = None,
            reduce: Optional[bool] = None, reduction: str = "mean",
            weight: Optional[Any] = None) -> Tensor:
    """|input - target| with the reduction (gradient sign(input - target), 0 at 0),
    optionally weighted per element."""
    return _elementwise_loss(input, target, size_average, reduce, reduction, weight, "l1_loss",
                             lambda a, b: np.abs(a - b),
                             lambda a, b: (_sign(a - b), -_sign(a - b)))


def smooth_l1_loss(input: Any, target: Any, size_average: Optional[bool] = None,
                   reduce: Optional[bool] = None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target);
    beta = 0 is the L1 loss."""
    reduction = _reduction(size_average, reduce, reduction, "smooth_l1_loss")
    if beta < 0:
        raise RuntimeValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    x, t = _pair_inputs(input, target, "smooth_l1_loss")
    beta = float(beta)

    def f(a, b):
        d = a - b
        if beta == 0:
            return np.abs(d)
        ad = np.abs(d)
        return np.where(ad < beta, 0.5 * d * d / beta, ad - 0.5 * beta)

    def df(a, b):
        d = a - b
        if beta == 0:
            s = _sign(d)
        else:
            s = np.where(np.abs(d) < beta, d / beta, np.sign(d))
        return s, -s

    return _PointwiseLoss.apply(x, t, (f, df), reduction)


class _BCEWithLogits(Function):
    @staticmethod
    def forward(ctx, x, t, weight, pos_weight, reduction):
        x64, t64 = x.astype(np.float64), t.astype(np.float64)
        # softplus(-x) = log(1 + e^{-x}) computed without overflow.
        sp = np.log1p(np.exp(-np.abs(x64))) + np.maximum(-x64, 0.0)
        if pos_weight is not None:
            lw = 1.0 + (pos_weight.astype(np.float64) - 1.0) * t64
            loss = (1.0 - t64) * x64 + lw * sp
        else:
            loss = (1.0 - t64) * x64 + sp
        if weight is not None:
            loss = loss * weight
        ctx.saved = (x64, t64, sp, weight, pos_weight, reduction, loss.shape)
        return np.array(_reduce(loss.astype(_F32), reduction), dtype=_F32, order="C")

    @staticmethod
    def backward(ctx, g):
        from pyvision_engine.autograd import _unbroadcast
        x64, t64, sp, weight, pos_weight, reduction, shape = ctx.saved
        gl = _reduce_grad(np.asarray(g), shape, reduction).astype(np.float64)
        if weight is not None:
            gl = gl * weight
        sig_neg = 1.0 / (1.0 + np.exp(x64))  # sigmoid(-x)
        if pos_weight is not None:
            lw = 1.0 + (pos_weight.astype(np.float64) - 1.0) * t64
            dx = (1.0 - t64) - lw * sig_neg
            dt = -x64 + (pos_weight.astype(np.float64) - 1.0) * sp
        else:
            dx = (1.0 - t64) - sig_neg
            dt = -x64
        gx = _unbroadcast((gl * dx).astype(_F32), x64.shape) if ctx.needs_input_grad[0] else None
        gt = _unbroadcast((gl * dt).astype(_F32), t64.shape) if ctx.needs_input_grad[1] else None
        return gx, gt, None, None, None


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Optional[Any] = None,
                                     size_average: Optional[bool] = None,
                                     reduce: Optional[bool] = None, reduction: str = "mean",
                                     pos_weight: Optional[Any] = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable expression:
    (1 - t) x + (1 + (pos_weight - 1) t) log(1 + e^{-x}), times ``weight``."""
    op = "binary_cross_entropy_with_logits"
    reduction = _reduction(size_average, reduce, reduction, op)
    x = float_input(input, op)
    t = float_input(target, op)
    if x.shape != t.shape:
        raise ValueError(f"{op}: target size {t.shape} must be the same as input size {x.shape}")
    w = None if weight is None else _loss_weight(weight, "weight", x.shape, op)
    pw = None if pos_weight is None else _loss_weight(pos_weight, "pos_weight", x.shape, op)
    return _BCEWithLogits.apply(x, t, w, pw, reduction)


def _loss_weight(weight: Any, name: str, input_shape: Tuple[int, ...], op: str) -> np.ndarray:
    """The binary cross-entropies' weight / pos_weight: constant, and broadcastable to
    the input's shape without enlarging it (torch writes the loss into the input's
    shape, so a (5, 4, 3) weight for a (4, 3) input is an error there too)."""
    w = _constant_weight(weight, name, op)._data
    try:
        fits = np.broadcast_shapes(w.shape, input_shape) == tuple(input_shape)
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeValueError(f"{op}: {name} of shape {w.shape} must broadcast to the input "
                                f"shape {tuple(input_shape)} without enlarging it")
    return w


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0,
               weight: Optional[Any] = None) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (d = input - target);
    the gradient is d clamped to [-delta, delta]. Optionally weighted per element."""
    op = "huber_loss"
    check_reduction(reduction, op)
    if not delta > 0:
        raise RuntimeValueError(f"{op}: delta must be positive, got {delta}")
    delta = float(delta)

    def f(a, b):
        ad = np.abs(a - b)
        return np.where(ad < delta, 0.5 * ad * ad, delta * (ad - 0.5 * delta))

    def df(a, b):
        s = np.clip(a - b, -delta, delta)
        return s, -s

    # (torch's weighted huber 'mean' is the plain mean of weight * loss)
    return _elementwise_loss(input, target, None, None, reduction, weight, op, f, df,
                             mean_by_weight=False)


def binary_cross_entropy(input: Any, target: Any, weight: Optional[Any] = None,
                         size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                         reduction: str = "mean") -> Tensor:
    """-w (t log(x) + (1 - t) log(1 - x)) for probabilities x in [0, 1], each log
    clamped to >= -100 as torch does (so x = 0 or 1 gives a finite loss)."""
    op = "binary_cross_entropy"
    reduction = _reduction(size_average, reduce, reduction, op)
    x = float_input(input, op)
    t = float_input(target, op)
    if x.shape != t.shape:
        raise ValueError(f"{op}: Using a target size ({t.shape}) that is different to the input "
                         f"size ({x.shape}) is deprecated. Please ensure they have the same size.")
    for name, v in (("input", x), ("target", t)):
        if not ((v._data >= 0) & (v._data <= 1)).all():  # NaN fails too, as in torch
            raise RuntimeValueError(f"{op}: all elements of {name} should be between 0 and 1")
    w = None
    if weight is not None:
        w = _loss_weight(weight, "weight", x.shape, op).astype(np.float64)

    def f(a, b):
        a, b = a.astype(np.float64), b.astype(np.float64)
        with np.errstate(divide="ignore"):
            log_a = np.maximum(np.log(a), -100.0)
            log_1ma = np.maximum(np.log1p(-a), -100.0)
        loss = -(b * log_a + (1.0 - b) * log_1ma)
        return loss * w if w is not None else loss

    def df(a, b):
        a, b = a.astype(np.float64), b.astype(np.float64)
        # torch's backward: (x - t) / max(x (1 - x), 1e-12); for the target, -logit(x)
        # = log(1 - x) - log(x), unclamped (+-inf at x = 0 and 1).
        dx = (a - b) / np.maximum(a * (1.0 - a), 1e-12)
        with np.errstate(divide="ignore"):
            dt = np.log1p(-a) - np.log(a)
        if w is not None:
            dx, dt = dx * w, dt * w
        return dx, dt

    return _PointwiseLoss.apply(x, t, (f, df), reduction)


def kl_div(input: Any, target: Any, size_average: Optional[bool] = None,
           reduce: Optional[bool] = None, reduction: str = "mean",
           log_target: bool = False) -> Tensor:
    """Pointwise KL divergence of log-probabilities ``input`` from ``target``:
    t (log t - input) (0 where t = 0), or e^t (t - input) with ``log_target``.
    'batchmean' is the sum divided by the batch size (input.shape[0]), the KL
    divergence proper; 'mean' divides by the element count (and warns, as torch)."""
    op = "kl_div"
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    elif reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the "
                      "support size.'batchmean' divides only by the batch size, and aligns with "
                      "the KL div math definition.'mean' will be changed to behave the same as "
                      "'batchmean' in the next major release.", stacklevel=2)
    if reduction != "batchmean":
        check_reduction(reduction, op)
    x, t = _pair_inputs(input, target, op, warn=False)

    def f(a, b):
        a, b = a.astype(np.float64), b.astype(np.float64)
        if log_target:
            return np.exp(b) * (b - a)
        with np.errstate(divide="ignore", invalid="ignore"):
            # xlogy(t, t) - t * input: 0 where t = 0
            return np.where(b == 0, 0.0, b * np.log(np.where(b == 0, 1.0, b))) - b * a

    def df(a, b):
        a, b = a.astype(np.float64), b.astype(np.float64)
        if log_target:
            return -np.exp(b), np.exp(b) * (b + 1.0 - a)
        # d/dt xlogy(t, t) = xlogy(t != 0, t) + t / t in torch's autograd: NaN at t = 0
        # and at t = inf (inf / inf); same here.
        with np.errstate(divide="ignore", invalid="ignore"):
            dt = np.where(b == 0, 0.0, np.log(np.where(b == 0, 1.0, b))) + b / b - a
        return -b, dt

    if reduction != "batchmean":
        return _PointwiseLoss.apply(x, t, (f, df), reduction)
    total = _PointwiseLoss.apply(x, t, (f, df), "sum")
    return total / x.shape[0] if x.ndim != 0 else total
