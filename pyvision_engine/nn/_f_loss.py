"""Loss functionals (torch names, arguments, defaults and reductions).

cross_entropy runs one fused log-softmax + NLL kernel (forward and backward);
the element-wise losses are short numpy expressions (memory-bound, single pass).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_activation import log_softmax, logsigmoid
from pyvision_engine.nn._f_common import (RankError, RuntimeTypeError, RuntimeValueError,
                                          TargetIndexError, check_reduction, float_input,
                                          needs_grad)
from pyvision_engine.nn._f_distance import _UngradedClampMin, pairwise_distance
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


def _soft_cross_entropy(x: Tensor, t: Tensor, weight: Optional[Any], reduction: str,
                        smoothing: float) -> Tensor:
    """Cross-entropy against probability targets that require grad (distillation from
    a teacher that trains too), composed of differentiable ops as torch defines it:
    -sum_c w_c t'_c log_softmax(x)_c with t' = t (1 - smoothing) + smoothing / C; "mean"
    divides by the number of rows (N * d1 * ...), not by the weights."""
    dim = 0 if x.ndim == 1 else 1
    c = x.shape[dim]
    if smoothing > 0.0:
        t = t * (1.0 - smoothing) + smoothing / c
    terms = t * log_softmax(x, dim=dim)
    if weight is not None:
        w = as_tensor(weight).detach()
        terms = terms * w.reshape((c,) + (1,) * (x.ndim - 1 - dim))
    loss = -terms.sum(dim)
    if reduction == "sum":
        return loss.sum()
    return loss.mean() if reduction == "mean" else loss


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
        if t.requires_grad:  # (the fused kernel differentiates the logits only)
            return _soft_cross_entropy(x, t, weight, reduction, label_smoothing)
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


# ------------------------------------------------------ margin and embedding losses
# torch composes most of these from differentiable ops (so do they here, on Tensor ops
# with autograd); multilabel_margin, multi_margin and soft_margin are kernels with an
# explicit backward in torch, and Functions here.

def _apply_reduction(loss: Tensor, reduction: str) -> Tensor:
    """torch's apply_loss_reduction on a loss built from Tensor ops."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _float_operand(x: Any, op: str, name: str) -> Tensor:
    """A float32 operand; integer or bool targets (+-1 labels) promote as in torch's
    arithmetic."""
    t = as_tensor(x)
    if t.dtype == np.float32:
        return t
    if t.dtype in (np.int64, np.bool_):
        return t.float()
    raise TypeError(f"{op}: expected {name} to be float32 (or integer labels), got {t.dtype}")


def _broadcast_shape(op: str, **named: Tensor) -> Tuple[int, ...]:
    """The operands' broadcast shape, or torch's RuntimeError naming each shape."""
    try:
        return tuple(np.broadcast_shapes(*[t.shape for t in named.values()]))
    except ValueError:
        listed = ", ".join(f"{k} {tuple(t.shape)}" for k, t in named.items())
        raise RuntimeValueError(f"{op}: shapes do not broadcast: {listed}") from None


def multilabel_soft_margin_loss(input: Any, target: Any, weight: Optional[Any] = None,
                                size_average: Optional[bool] = None,
                                reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """-(t log sigmoid(x) + (1 - t) log sigmoid(-x)), times ``weight``, averaged over the
    class (last) dim, then the reduction over samples."""
    op = "multilabel_soft_margin_loss"
    reduction = _reduction(size_average, reduce, reduction, op)
    x = float_input(input, op)
    t = _float_operand(target, op, "target")
    if x.ndim == 0:
        raise RankError(f"{op}: input needs a class dimension, got a 0-d tensor")
    named = dict(input=x, target=t)
    w = None
    if weight is not None:
        w = named["weight"] = float_input(weight, op)
    _broadcast_shape(op, **named)
    loss = -(t * logsigmoid(x) + (1 - t) * logsigmoid(-x))
    if w is not None:
        loss = loss * w
    c = x.shape[-1]
    return _apply_reduction(loss.sum(x.ndim - 1) / c, reduction)


def _rows_and_classes(x: Tensor, op: str) -> Tuple[int, int]:
    """(frames, classes) of a multilabel/multi-class margin input: (C,), (N, C) or a
    0-d single score, as torch's shape check (an empty class dim is refused)."""
    if not (x.ndim == 0 or (x.ndim == 1 and x.shape[0] != 0)
            or (x.ndim == 2 and x.shape[1] != 0)):
        raise RuntimeValueError(f"{op}: Expected non-empty vector or matrix with optional 0-dim "
                                f"batch size, but got: {list(x.shape)}")
    return (x.shape[0] if x.ndim == 2 else 1), (x.shape[-1] if x.ndim else 1)


def _class_indices(target: Any, op: str) -> Tensor:
    t = as_tensor(target)
    if t.dtype != np.int64:
        raise RuntimeTypeError(f"{op}: expected target of scalar type Long (int64) class "
                               f"indices but found {t.dtype}")
    return t


def _frame_coefficients(g: np.ndarray, n: int, c: int, reduction: str) -> np.ndarray:
    """d(loss)/d(per-frame sum) for the margin kernels: the upstream gradient over the
    class count (and frame count for 'mean'), one per frame."""
    scale = c * (n if reduction == "mean" else 1)
    if reduction == "none":
        return np.asarray(g, np.float64).reshape(n) / scale
    return np.full(n, float(g) / scale)


def _frame_losses(per_frame: np.ndarray, reduction: str, out_shape: Tuple[int, ...]) -> np.ndarray:
    if reduction == "none":
        return per_frame.astype(_F32).reshape(out_shape)
    total = per_frame.sum()
    if reduction == "mean":  # (torch's kernels give 0 for an empty batch, not 0/0)
        total = total / len(per_frame) if len(per_frame) else 0.0
    return np.asarray(total, dtype=_F32)


class _MultilabelMargin(Function):
    owns_grads = True

    @staticmethod
    def forward(ctx, x, target, reduction, out_shape):
        n, c = target.shape
        x2 = x.reshape(n, c).astype(np.float64)
        # The targets are each row's entries before its first -1.
        listed = np.cumprod(target >= 0, axis=1).astype(bool)
        safe = np.where(listed, target, 0)
        rows = np.arange(n)[:, None]
        is_target = np.zeros((n, c), dtype=bool)
        is_target[np.broadcast_to(rows, (n, c))[listed], safe[listed]] = True
        # z[n, j, d] = 1 - x[target_j] + x[d] for listed target j and non-target class d
        z = 1.0 - x2[rows, safe][:, :, None] + x2[:, None, :]
        hinge = listed[:, :, None] & ~is_target[:, None, :] & (z > 0)
        ctx.saved = (hinge, safe, x.shape, reduction, n, c)
        return _frame_losses(np.where(hinge, z, 0.0).sum(axis=(1, 2)) / c, reduction, out_shape)

    @staticmethod
    def backward(ctx, g):
        hinge, safe, x_shape, reduction, n, c = ctx.saved
        coef = _frame_coefficients(g, n, c, reduction)
        grad = hinge.sum(axis=1) * coef[:, None]  # each non-target: +1 per active pair
        # each listed target: -1 per active pair (repeated targets add up)
        np.add.at(grad, (np.broadcast_to(np.arange(n)[:, None], (n, c)), safe),
                  -hinge.sum(axis=2) * coef[:, None])
        return grad.astype(_F32).reshape(x_shape), None, None, None


def multilabel_margin_loss(input: Any, target: Any, size_average: Optional[bool] = None,
                           reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """sum over listed targets j and non-target classes i of max(0, 1 - (x[y_j] - x[i])),
    over C. ``target`` (int64, the input's shape) lists class indices, ended by -1."""
    op = "multilabel_margin_loss"
    reduction = _reduction(size_average, reduce, reduction, op)
    x = float_input(input, op)
    t = _class_indices(target, op)
    n, c = _rows_and_classes(x, op)
    fits = (t.ndim <= 1 and t.numel() == c) if x.ndim <= 1 else t.shape == (n, c)
    if not fits:
        raise RuntimeValueError(f"{op}: inconsistent target size: {list(t.shape)} for input of "
                                f"size: {list(x.shape)}")
    tgt = t._data.reshape(n, c)
    if tgt.size and (tgt.min() < -1 or tgt.max() >= c):
        raise RuntimeValueError(f"{op}: argument #2 'target' is out of range: class indices "
                                f"must be in [0, {c}) or -1 (end of list), got values in "
                                f"[{tgt.min()}, {tgt.max()}]")
    out_shape = (n,) if x.ndim == 2 else ()
    return _MultilabelMargin.apply(x, tgt, reduction, out_shape)


class _MultiMargin(Function):
    owns_grads = True

    @staticmethod
    def forward(ctx, x, target, weight, p, margin, reduction, out_shape):
        n = target.shape[0]
        x2 = x.reshape(n, -1).astype(np.float64)
        c = x2.shape[1]
        rows = np.arange(n)
        z = margin - x2[rows, target][:, None] + x2
        active = z > 0
        active[rows, target] = False
        h = z if p == 1 else z * z
        wy = np.ones(n) if weight is None else weight.astype(np.float64)[target]
        per_frame = np.where(active, h, 0.0).sum(axis=1) * wy / c
        ctx.saved = (z, active, wy, target, p, x.shape, reduction, n, c)
        return _frame_losses(per_frame, reduction, out_shape)

    @staticmethod
    def backward(ctx, g):
        z, active, wy, target, p, x_shape, reduction, n, c = ctx.saved
        coef = _frame_coefficients(g, n, c, reduction) * wy
        dh = np.where(active, 1.0 if p == 1 else 2.0 * z, 0.0)
        grad = dh * coef[:, None]
        grad[np.arange(n), target] = -grad.sum(axis=1)
        return grad.astype(_F32).reshape(x_shape), None, None, None, None, None, None


def multi_margin_loss(input: Any, target: Any, p: int = 1, margin: float = 1.0,
                      weight: Optional[Any] = None, size_average: Optional[bool] = None,
                      reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """Multi-class hinge: sum over i != y of w[y] max(0, margin - x[y] + x[i])^p, over C."""
    op = "multi_margin_loss"
    reduction = _reduction(size_average, reduce, reduction, op)
    if p != 1 and p != 2:
        raise ValueError(f"{op}: only p == 1 and p == 2 supported, got p={p}")
    w = None
    if weight is not None:
        w = _constant_weight(weight, "weight", op)._data
        if w.ndim != 1:
            raise ValueError(f"{op}: weight must be one-dimensional, got shape {w.shape}")
    x = float_input(input, op)
    t = _class_indices(target, op)
    n, c = _rows_and_classes(x, op)
    if t.ndim > 1 or t.numel() != n:
        raise RuntimeValueError(f"{op}: target tensor should be 1-D with size equal to the "
                                f"number of input samples (batch size). Expected target size "
                                f"[{n}], but got {list(t.shape)}. Input has shape "
                                f"{list(x.shape)}.")
    if w is not None and w.size != c:
        raise RuntimeValueError(f"{op}: inconsistent weight size, expected {c} but got "
                                f"{list(w.shape)}")
    tgt = t._data.reshape(n)
    if tgt.size and (tgt.min() < 0 or tgt.max() >= c):
        raise RuntimeValueError(f"{op}: target out of range: class indices must be in "
                                f"[0, {c}), got values in [{tgt.min()}, {tgt.max()}]")
    out_shape = (n,) if t.ndim > 0 else ()
    return _MultiMargin.apply(x, tgt, w, int(p), float(margin), reduction, out_shape)


def soft_margin_loss(input: Any, target: Any, size_average: Optional[bool] = None,
                     reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """log(1 + exp(-target * input)), computed in float32 as torch (so exp overflows to
    an infinite loss where -target * input > ~88)."""
    op = "soft_margin_loss"
    reduction = _reduction(size_average, reduce, reduction, op)
    x = float_input(input, op)
    t = _float_operand(target, op, "target")
    if _broadcast_shape(op, input=x, target=t) != tuple(x.shape):
        raise RuntimeValueError(f"{op}: target of shape {tuple(t.shape)} must broadcast to the "
                                f"input shape {tuple(x.shape)}")
    if needs_grad(t):
        raise RuntimeValueError(f"{op}: the function is not differentiable with respect to "
                                "argument 'target'; this input cannot have requires_grad=True")

    def f(a, b):
        with np.errstate(over="ignore"):
            return np.log1p(np.exp(-a * b))

    def df(a, b):  # torch's backward: -t z / (1 + z), z = exp(-t x) (NaN where z is inf)
        with np.errstate(over="ignore", invalid="ignore"):
            z = np.exp(-b * a)
            return -b * z / (1 + z), None

    return _PointwiseLoss.apply(x, t, (f, df), reduction)


def margin_ranking_loss(input1: Any, input2: Any, target: Any, margin: float = 0,
                        size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                        reduction: str = "mean") -> Tensor:
    """max(0, -target * (input1 - input2) + margin); target is +1 (input1 should rank
    higher) or -1."""
    op = "margin_ranking_loss"
    reduction = _reduction(size_average, reduce, reduction, op)
    x1, x2 = float_input(input1, op), float_input(input2, op)
    t = _float_operand(target, op, "target")
    if not x1.ndim == x2.ndim == t.ndim:
        raise RuntimeValueError(f"{op}: All input tensors should have same dimension but got "
                                f"sizes: input1: {tuple(x1.shape)}, input2: {tuple(x2.shape)}, "
                                f"target: {tuple(t.shape)}")
    _broadcast_shape(op, input1=x1, input2=x2, target=t)
    return _apply_reduction((-t * (x1 - x2) + margin).clamp_min(0), reduction)


def hinge_embedding_loss(input: Any, target: Any, margin: float = 1.0,
                         size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                         reduction: str = "mean") -> Tensor:
    """x where target = 1, max(0, margin - x) where target = -1 (torch's kernel: a label
    that is neither adds both terms)."""
    op = "hinge_embedding_loss"
    reduction = _reduction(size_average, reduce, reduction, op)
    x = float_input(input, op)
    t = _float_operand(target, op, "target")
    _broadcast_shape(op, input=x, target=t)
    labels = t._data
    output_margin = (margin - x).clamp_min(0).where(labels != 1, 0.0)
    output_self = x.where(labels != -1, 0.0)
    return _apply_reduction(output_margin + output_self, reduction)


def cosine_embedding_loss(input1: Any, input2: Any, target: Any, margin: float = 0,
                          size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                          reduction: str = "mean") -> Tensor:
    """1 - cos(x1, x2) where target = 1, max(0, cos(x1, x2) - margin) where target = -1;
    cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)) (torch's form: a zero vector
    has cosine 0, not NaN)."""
    op = "cosine_embedding_loss"
    reduction = _reduction(size_average, reduce, reduction, op)
    x1, x2 = float_input(input1, op), float_input(input2, op)
    t = _float_operand(target, op, "target")
    if t.ndim > 1:
        raise RuntimeValueError(f"{op}: 0D or 1D target tensor expected, multi-target not "
                                f"supported (target shape {tuple(t.shape)})")
    if x1.ndim != t.ndim + 1 or x2.ndim != t.ndim + 1:
        raise RuntimeValueError(f"{op}: {t.ndim}D target tensor expects {t.ndim + 1}D input "
                                f"tensors, but found inputs with sizes {list(x1.shape)} and "
                                f"{list(x2.shape)}.")
    d = t.ndim
    _broadcast_shape(op, input1=x1, input2=x2)
    prod_sum = (x1 * x2).sum(d)
    mag_square1 = (x1 * x1).sum(d) + 1e-12
    mag_square2 = (x2 * x2).sum(d) + 1e-12
    cos = prod_sum / (mag_square1 * mag_square2).sqrt()
    _broadcast_shape(op, cosine=cos, target=t)
    labels = t._data
    output = (1 - cos).where(labels == 1, 0.0) + (cos - margin).clamp_min(0).where(labels == -1, 0.0)
    return _apply_reduction(output, reduction)


def _triplet(anchor: Any, positive: Any, negative: Any, distance: Any, margin: float,
             swap: bool, reduction: str, op: str) -> Tensor:
    """max(0, margin + d(a, p) - d(a, n)), with d(a, n) replaced by d(p, n) where that is
    smaller when ``swap``; after torch's margin and rank checks."""
    if margin <= 0:
        raise ValueError(f"{op}: margin must be greater than 0, got {margin}")
    a, p, n = as_tensor(anchor), as_tensor(positive), as_tensor(negative)
    if not a.ndim == p.ndim == n.ndim:
        raise RuntimeValueError(f"{op}: The anchor, positive, and negative tensors are expected "
                                f"to have the same number of dimensions, but got: anchor "
                                f"{a.ndim}D, positive {p.ndim}D, and negative {n.ndim}D inputs")
    dist_pos = distance(a, p)
    dist_neg = distance(a, n)
    if swap:
        dist_neg = as_tensor(dist_neg).minimum(distance(p, n))
    return _apply_reduction((margin + dist_pos - dist_neg).clamp_min(0), reduction)


def triplet_margin_loss(anchor: Any, positive: Any, negative: Any, margin: float = 1.0,
                        p: float = 2, eps: float = 1e-6, swap: bool = False,
                        size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                        reduction: str = "mean") -> Tensor:
    """The triplet loss on pairwise_distance(., ., p, eps) (see _triplet)."""
    op = "triplet_margin_loss"
    reduction = _reduction(size_average, reduce, reduction, op)
    return _triplet(anchor, positive, negative,
                    lambda x1, x2: pairwise_distance(x1, x2, p, eps), margin, swap, reduction, op)


def triplet_margin_with_distance_loss(anchor: Any, positive: Any, negative: Any, *,
                                      distance_function: Optional[Any] = None,
                                      margin: float = 1.0, swap: bool = False,
                                      reduction: str = "mean") -> Tensor:
    """The triplet loss on ``distance_function`` (default pairwise_distance), which takes
    two Tensors and returns non-negative distances."""
    op = "triplet_margin_with_distance_loss"
    reduction = _reduction(None, None, reduction, op)
    distance = pairwise_distance if distance_function is None else distance_function
    return _triplet(anchor, positive, negative, distance, margin, swap, reduction, op)


def poisson_nll_loss(input: Any, target: Any, log_input: bool = True, full: bool = False,
                     size_average: Optional[bool] = None, eps: float = 1e-8,
                     reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """exp(x) - t x (``log_input``) or x - t log(x + eps); with ``full`` Stirling's
    t log t - t + 0.5 log(2 pi t) added where t > 1."""
    op = "poisson_nll_loss"
    reduction = _reduction(size_average, reduce, reduction, op)
    x = float_input(input, op)
    t = _float_operand(target, op, "target")
    _broadcast_shape(op, input=x, target=t)
    loss = x.exp() - t * x if log_input else x - t * (x + eps).log()
    if full:
        # Stirling's term on t > 1 only; elsewhere it is evaluated at 2 and masked (torch
        # evaluates it everywhere, so 0 * log(0) there is a NaN target gradient and a warning)
        small = t._data <= 1
        ts = t.where(~small, 2.0)
        stirling = ts * ts.log() - ts + 0.5 * (2 * math.pi * ts).log()
        loss = loss + stirling.masked_fill(small, 0.0)
    return _apply_reduction(loss, reduction)


def gaussian_nll_loss(input: Any, target: Any, var: Any, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Tensor:
    """0.5 (log(max(var, eps)) + (input - target)^2 / max(var, eps)) (+ 0.5 log(2 pi)
    with ``full``). ``var`` is a float, the input's shape, the input's shape without
    its last dim, or the input's shape with one dim of size 1 (torch's rules); the clamp
    is outside autograd, as torch's no_grad clamp_."""
    op = "gaussian_nll_loss"
    x = float_input(input, op)
    t = float_input(target, op)
    if isinstance(var, float):
        if var < 0:
            raise ValueError(f"{op}: var has negative entry/entries (var={var})")
        v = Tensor(np.full(x.shape, var, dtype=_F32))
    elif isinstance(var, (int, bool, np.integer)):  # torch only turns a Python float into a tensor
        raise TypeError(f"{op}: var must be a float or a float32 tensor, got "
                        f"{type(var).__name__}")
    else:
        v = float_input(var, op)
        if (v._data < 0).any():
            raise ValueError(f"{op}: var has negative entry/entries")
    if v.shape != x.shape:
        if x.shape[:-1] == v.shape:  # one variance per sample over the last dim
            v = v.unsqueeze(-1)
        elif not (v.ndim == x.ndim
                  and sum(vs for xs, vs in zip(x.shape, v.shape) if xs != vs) == 1):
            raise ValueError(f"{op}: var is of incorrect size: var shape {tuple(v.shape)} for "
                             f"input shape {tuple(x.shape)} (expected the input's shape, it "
                             "without the last dim, or it with one dim of size 1)")
    check_reduction(reduction, op)
    _broadcast_shape(op, input=x, target=t, var=v)
    v = _UngradedClampMin.apply(v, eps)
    loss = 0.5 * (v.log() + (x - t) ** 2 / v)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _apply_reduction(loss, reduction)


__all__ += ["multilabel_soft_margin_loss", "multilabel_margin_loss", "multi_margin_loss",
            "soft_margin_loss", "margin_ranking_loss", "hinge_embedding_loss",
            "cosine_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
            "poisson_nll_loss", "gaussian_nll_loss"]
