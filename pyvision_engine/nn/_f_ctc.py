"""Connectionist Temporal Classification loss (torch's F.ctc_loss), for CRNN-style OCR.

The alpha (forward) and beta (backward) recursions of Graves et al. (2006) run in log
space in float64, vectorized over the batch and the extended label positions
l' = (blank, l1, blank, l2, ..., blank); only time is a Python loop.
"""

from __future__ import annotations

import operator
from typing import Any, Tuple

import numpy as np

from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import RuntimeValueError, check_reduction, float_input
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["ctc_loss"]

_F32 = np.float32
_NEG_INF = -np.inf


def _logsumexp3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """log(exp(a) + exp(b) + exp(c)) element-wise; all -inf gives -inf (not NaN)."""
    m = np.maximum(np.maximum(a, b), c)
    m = np.where(m == _NEG_INF, 0.0, m)  # (-inf) - (-inf) would be NaN
    return np.log(np.exp(a - m) + np.exp(b - m) + np.exp(c - m)) + m


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """x moved k positions along the last axis (right for k > 0, left for k < 0), -inf filled."""
    out = np.full_like(x, _NEG_INF)
    if k > 0:
        out[..., k:] = x[..., :-k]
    else:
        out[..., :k] = x[..., -k:]
    return out


class _CTCLoss(Function):
    """Per-sample negative log-likelihood (N,) of log_probs (T, N, C).

    The gradient is torch's: (exp(log_probs) - occupancy) * grad, where occupancy[t, n, c]
    = sum over positions s with l'[s] == c of alpha_t(s) beta_t(s) / y_t(c) / p(l|x). The
    exp(log_probs) term makes it the gradient with respect to the logits under a
    log_softmax (whose backward then passes it through unchanged, as it sums to zero over
    C), not the plain derivative with respect to log_probs; torch defines it so.
    """

    owns_grads = True  # the gradient is allocated in backward
    saved_inputs = (0,)  # backward reads log_probs
    saves_output = False

    @staticmethod
    def forward(ctx, log_probs, meta):
        ext, input_lengths, target_lengths, zero_infinity = meta
        t_max, n, _ = log_probs.shape
        width = ext.shape[1]
        pos = np.arange(width)
        valid = pos[None, :] <= 2 * target_lengths[:, None]  # (N, L): positions of each l'
        # A skip from s-2 to s is allowed when l'[s] is a label differing from l'[s-2].
        skip = np.zeros((n, width), dtype=bool)
        skip[:, 2:] = ext[:, 2:] != ext[:, :-2]
        # log y_t(l'[s]) for every t, sample and extended position: (T, N, L).
        lpe = np.take_along_axis(log_probs, np.broadcast_to(ext[None], (t_max, n, width)), axis=2)
        lpe = np.where(valid[None], lpe.astype(np.float64), _NEG_INF)

        alpha = np.full((t_max, n, width), _NEG_INF)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            alpha[0, :, :2] = lpe[0, :, :2]
            for t in range(1, t_max):
                prev = alpha[t - 1]
                alpha[t] = _logsumexp3(prev, _shift(prev, 1),
                                       np.where(skip, _shift(prev, 2), _NEG_INF)) + lpe[t]
            # p(l|x) = alpha at the last frame, last blank plus last label.
            rows = np.arange(n)
            last_t = np.maximum(input_lengths - 1, 0)
            a_end = alpha[last_t, rows, 2 * target_lengths]
            a_label = np.where(target_lengths > 0,
                               alpha[last_t, rows, np.maximum(2 * target_lengths - 1, 0)], _NEG_INF)
            m = np.maximum(a_end, a_label)
            m = np.where(m == _NEG_INF, 0.0, m)
            nll = -(np.log(np.exp(a_end - m) + np.exp(a_label - m)) + m)
        # No frames: only the empty target has an alignment.
        nll = np.where(input_lengths == 0, np.where(target_lengths == 0, -0.0, np.inf), nll)
        ctx.log_probs, ctx.meta, ctx.alpha, ctx.lpe = log_probs, meta, alpha, lpe
        ctx.skip, ctx.nll = skip, nll
        out = nll.astype(_F32)
        if zero_infinity:
            out[out == np.inf] = 0.0
        return out

    @staticmethod
    def backward(ctx, grad):
        ext, input_lengths, target_lengths, zero_infinity = ctx.meta
        alpha, lpe, skip, nll = ctx.alpha, ctx.lpe, ctx.skip, ctx.nll
        log_probs = ctx.log_probs
        t_max, n, _ = log_probs.shape
        width = ext.shape[1]
        rows = np.arange(n)
        # beta_t(s): the probability of the rest of the alignment from position s at frame
        # t, y_t(l'[s]) included; it starts at each sample's last frame.
        skip_next = np.zeros((n, width), dtype=bool)
        skip_next[:, :-2] = skip[:, 2:]  # a skip from s to s+2
        beta = np.full((t_max, n, width), _NEG_INF)
        init = np.full((n, width), _NEG_INF)
        last_t = np.maximum(input_lengths - 1, 0)
        init[rows, 2 * target_lengths] = lpe[last_t, rows, 2 * target_lengths]
        has_label = target_lengths > 0
        s_label = np.maximum(2 * target_lengths - 1, 0)
        init[rows[has_label], s_label[has_label]] = lpe[last_t, rows, s_label][has_label]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            nxt = np.full((n, width), _NEG_INF)
            for t in range(t_max - 1, -1, -1):
                rec = _logsumexp3(nxt, _shift(nxt, -1),
                                  np.where(skip_next, _shift(nxt, -2), _NEG_INF)) + lpe[t]
                cur = np.where((t == input_lengths - 1)[:, None], init,
                               np.where((t < input_lengths - 1)[:, None], rec, _NEG_INF))
                beta[t] = nxt = cur
            # Posterior occupancy of each position, alpha*beta / (y * p); positions no
            # alignment visits are 0 (also where y is 0, rather than -inf - -inf = NaN).
            ab = alpha + beta
            gamma = np.where(ab == _NEG_INF, 0.0, np.exp(ab - lpe + nll[None, :, None]))
        # Positions carrying the same class (the blanks, repeated labels) add up: each
        # position's first equal one represents it, so the scatter into (T, N, C) below
        # never writes one element twice. Only the N*L touched classes are written.
        rep = np.argmax(ext[:, :, None] == ext[:, None, :], axis=2)  # (N, L)
        flat = (np.arange(t_max)[:, None, None] * n + rows[None, :, None]) * width + rep[None]
        occupancy = np.bincount(flat.reshape(-1), weights=gamma.reshape(-1),
                                minlength=t_max * n * width).reshape(t_max, n, width)
        g = np.asarray(grad, dtype=np.float64).reshape(n)
        out = np.exp(log_probs)
        out *= g.astype(_F32)[None, :, None]
        n_idx, s_idx = np.nonzero(rep == np.arange(width)[None, :])
        out[:, n_idx, ext[n_idx, s_idx]] -= (occupancy[:, n_idx, s_idx] * g[n_idx]).astype(_F32)
        # No alignment (or a NaN input): torch's log-space formula gives NaN on every
        # frame of the sample; zero_infinity zeroes the sample instead.
        bad = ~np.isfinite(nll)
        out[:, bad] = 0.0 if zero_infinity else np.nan
        out[np.arange(t_max)[:, None] >= input_lengths[None, :]] = 0.0  # frames past the length
        return out, None


def _lengths(value: Any, name: str, op: str) -> Tuple[np.ndarray, bool]:
    """(int64 lengths, given as a tensor): a tuple/list of ints or an integral tensor."""
    if isinstance(value, (Tensor, np.ndarray)):
        arr = value._data if isinstance(value, Tensor) else value
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise RuntimeValueError(f"{op}: {name} must be integral, got {arr.dtype}")
        return arr.astype(np.int64).reshape(-1), True
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{op}: {name} must be a tuple/list of ints or an integral tensor, "
                        f"got {type(value).__name__}")
    out = []
    for v in value:
        if isinstance(v, bool):  # (an index, but torch's tuple of ints refuses it)
            raise TypeError(f"{op}: {name} must be a tuple/list of ints, got {value!r}")
        try:
            out.append(operator.index(v))
        except TypeError:
            raise TypeError(f"{op}: {name} must be a tuple/list of ints, got {value!r}") from None
    return np.array(out, dtype=np.int64), False


def ctc_loss(log_probs: Any, targets: Any, input_lengths: Any, target_lengths: Any,
             blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """CTC loss of log-probabilities ``log_probs`` (T, N, C) (or unbatched (T, C), for
    example a ``log_softmax`` over C) against ``targets``: padded (N, S) or the N target
    sequences concatenated (sum(target_lengths),). ``input_lengths`` and ``target_lengths``
    (N,) are tuples/lists of ints or integral tensors (both the same kind).

    ``reduction``: 'mean' divides each sample's loss by its target length (at least 1)
    and averages over the batch; 'sum'; 'none' gives (N,) (a scalar unbatched). A target
    no alignment of the input can produce gives inf (``zero_infinity``: 0, and a zero
    gradient). Target values must lie in [0, C) and differ from ``blank`` (torch does not
    check them on the CPU and reads out of range).
    """
    op = "ctc_loss"
    check_reduction(reduction, op)
    if isinstance(blank, bool):
        raise TypeError(f"{op}: blank must be an int, got {blank!r}")
    try:
        blank = operator.index(blank)
    except TypeError:
        raise TypeError(f"{op}: blank must be an int, got {blank!r}") from None
    if not isinstance(zero_infinity, (bool, np.bool_)):
        raise TypeError(f"{op}: zero_infinity must be a bool, got {zero_infinity!r}")
    il, il_tensor = _lengths(input_lengths, "input_lengths", op)
    tl, tl_tensor = _lengths(target_lengths, "target_lengths", op)
    if il_tensor != tl_tensor:
        raise TypeError(f"{op}: input_lengths and target_lengths must both be tuples/lists of "
                        "ints or both be tensors")
    x = float_input(log_probs, op)
    batched = x.ndim == 3
    if x.ndim not in (2, 3):
        raise RuntimeValueError(f"{op}: expected log_probs of shape (T, N, C) or unbatched "
                                f"(T, C), got shape {x.shape}")
    lp = x if batched else x.unsqueeze(1)
    t_max, n, c = lp.shape
    if lp._data.size == 0:
        raise RuntimeValueError(f"{op}: log_probs tensor must not be empty, got shape {x.shape}")
    # torch converts the targets to int64 whatever their dtype.
    tgt = as_tensor(targets)._data.astype(np.int64)
    if tgt.ndim not in (1, 2):
        raise RuntimeValueError(f"{op}: expected targets of shape (N, S) or (sum(target_lengths),)"
                                f", got a {tgt.ndim}-dimensional tensor of shape {tgt.shape}")
    if not 0 <= blank < c:
        raise RuntimeValueError(f"{op}: blank must be in label range [0, {c}), got {blank}")
    if il.size != n:
        raise RuntimeValueError(f"{op}: input_lengths must be of size batch_size {n}, "
                                f"got {il.size}")
    if tl.size != n:
        raise RuntimeValueError(f"{op}: target_lengths must be of size batch_size {n}, "
                                f"got {tl.size}")
    if (tl < 0).any():
        raise RuntimeValueError(f"{op}: expected target_lengths to have value at least 0, "
                                f"but got value {int(tl[tl < 0][0])}")
    s_max = int(tl.max())
    if tgt.ndim == 1:
        if tgt.shape[0] != int(tl.sum()):
            raise RuntimeValueError(f"{op}: concatenated targets must have size sum(target_lengths)"
                                    f" = {int(tl.sum())}, got shape {tgt.shape}")
        # Padded (N, s_max) from the concatenation, gathered without a loop over samples.
        starts = np.concatenate(([0], np.cumsum(tl)[:-1]))
        idx = starts[:, None] + np.arange(s_max)[None, :]
        used = np.arange(s_max)[None, :] < tl[:, None]
        padded = np.where(used, tgt[np.where(used, idx, 0)] if tgt.size else 0, blank)
    else:
        if tgt.shape[0] != n or tgt.shape[1] < s_max:
            raise RuntimeValueError(f"{op}: expected padded targets of shape ({n}, >= {s_max}) "
                                    f"(batch, max target length), got shape {tgt.shape}")
        used = np.arange(s_max)[None, :] < tl[:, None]
        padded = np.where(used, tgt[:, :s_max], blank)
    if (il < 0).any() or (il > t_max).any():
        bad = int(il[(il < 0) | (il > t_max)][0])
        raise RuntimeValueError(f"{op}: expected input_lengths to have values in [0, {t_max}] "
                                f"(T of log_probs of shape {x.shape}), got {bad}")
    labels = padded[used]
    if ((labels < 0) | (labels >= c)).any():
        raise RuntimeValueError(f"{op}: target {int(labels[(labels < 0) | (labels >= c)][0])} is "
                                f"out of range for {c} classes")
    if (labels == blank).any():
        raise RuntimeValueError(f"{op}: targets must not contain the blank index {blank}")
    ext = np.full((n, 2 * s_max + 1), blank, dtype=np.int64)
    ext[:, 1::2] = padded
    loss = _CTCLoss.apply(lp, (ext, il, tl, bool(zero_infinity)))
    if reduction == "mean":
        # As torch: each loss over its target length (clamped to >= 1), then the batch mean.
        return (loss / np.maximum(tl, 1).astype(_F32)).mean()
    if reduction == "sum":
        return loss.sum()
    return loss if batched else loss.squeeze(0)
