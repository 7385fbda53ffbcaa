"""Plain-numpy float64 references for the 1-D layers, written from the definitions (loops
over output positions and kernel taps), not from the engine's 2-D views.

Shapes: x (N, C, L); conv weights (K, C/groups, k), transposed ones (C, K/groups, k).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np


def conv1d(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], stride: int,
           pads: Tuple[int, int], dilation: int, groups: int) -> np.ndarray:
    """y[n, o, t] = b[o] + sum_{c, j} xpad[n, g*cg + c, t*stride + j*dilation] * w[o, c, j]
    (g the group of o), as one strided slice of the padded input per group and tap."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, c, length = x.shape
    k_out, cg, k = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), pads))
    out_len = (length + pads[0] + pads[1] - dilation * (k - 1) - 1) // stride + 1
    kg = k_out // groups
    y = np.zeros((n, k_out, out_len))
    for g in range(groups):
        for j in range(k):  # tap j reads positions j*dilation + t*stride for every t
            first = j * dilation
            taps = xp[:, g * cg:(g + 1) * cg, first:first + stride * (out_len - 1) + 1:stride]
            y[:, g * kg:(g + 1) * kg] += np.einsum("nct,oc->not", taps,
                                                   w[g * kg:(g + 1) * kg, :, j])
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None]
    return y


def conv_transpose1d(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], stride: int,
                     padding: int, output_padding: int, groups: int, dilation: int) -> np.ndarray:
    """Scatter form: input position i, tap j adds x[n, ci, i] * w[ci, o, j] at output
    i*stride + j*dilation - padding (kept when inside [0, out_len))."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    n, c, length = x.shape
    _, og, k = w.shape
    cg = c // groups
    out_len = (length - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1
    y = np.zeros((n, og * groups, out_len))
    for ci in range(c):
        g = ci // cg
        for i in range(length):
            for j in range(k):
                t = i * stride + j * dilation - padding
                if 0 <= t < out_len:
                    y[:, g * og:(g + 1) * og, t] += x[:, ci, i][:, None] * w[ci, :, j][None, :]
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None]
    return y


def pool_out_len(length: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    span = d * (k - 1) + 1
    if ceil_mode:
        out = math.ceil((length + 2 * p - span) / s) + 1
        if (out - 1) * s >= length + p:  # the last window may not start in the right padding
            out -= 1
        return out
    return (length + 2 * p - span) // s + 1


def max_pool1d(x: np.ndarray, k: int, s: int, p: int, d: int = 1, ceil_mode: bool = False):
    """(values, indices into L): the first maximum in window order; a NaN wins (the last
    NaN of the window, as torch's ``val > max || isnan(val)`` update)."""
    x = np.asarray(x, np.float64)
    n, c, length = x.shape
    out = pool_out_len(length, k, s, p, d, ceil_mode)
    y = np.empty((n, c, out))
    idx = np.empty((n, c, out), np.int64)
    for t in range(out):
        taps = [t * s - p + j * d for j in range(k)]
        taps = [q for q in taps if 0 <= q < length]
        for a in range(n):
            for ch in range(c):
                best, best_q = -np.inf, taps[0]
                for q in taps:
                    v = x[a, ch, q]
                    if v > best or np.isnan(v):
                        best, best_q = v, q
                y[a, ch, t], idx[a, ch, t] = best, best_q
    return y, idx


def avg_pool1d(x: np.ndarray, k: int, s: int, p: int, ceil_mode: bool = False,
               count_include_pad: bool = True) -> np.ndarray:
    """Window sums over the real elements, divided by the window's length clipped to the
    padded input (count_include_pad) or by its count of real elements."""
    x = np.asarray(x, np.float64)
    n, c, length = x.shape
    out = pool_out_len(length, k, s, p, 1, ceil_mode)
    y = np.empty((n, c, out))
    for t in range(out):
        start = t * s - p
        end = min(start + k, length + p)
        divisor = end - start
        lo, hi = max(start, 0), min(end, length)
        if not count_include_pad:
            divisor = hi - lo
        y[:, :, t] = x[:, :, lo:hi].sum(axis=-1) / divisor
    return y


def adaptive_windows(length: int, out: int):
    return [(math.floor(i * length / out), math.ceil((i + 1) * length / out)) for i in range(out)]


def adaptive_avg_pool1d(x: np.ndarray, out: int) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return np.stack([x[..., a:b].mean(axis=-1) for a, b in adaptive_windows(x.shape[-1], out)],
                    axis=-1)


def adaptive_max_pool1d(x: np.ndarray, out: int):
    """(values, indices into L) of the first maximum per window."""
    x = np.asarray(x, np.float64)
    values, indices = [], []
    for a, b in adaptive_windows(x.shape[-1], out):
        values.append(x[..., a:b].max(axis=-1))
        indices.append(a + np.argmax(x[..., a:b], axis=-1))
    return np.stack(values, axis=-1), np.stack(indices, axis=-1)


_NUMPY_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
                "circular": "wrap"}


def pad1d(x: np.ndarray, left: int, right: int, mode: str, value: float = 0.0) -> np.ndarray:
    """Non-negative (left, right) padding of the last dim in torch's modes."""
    x = np.asarray(x, np.float64)
    widths = [(0, 0)] * (x.ndim - 1) + [(left, right)]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=value)
    return np.pad(x, widths, mode=_NUMPY_MODES[mode])


def instance_norm1d(x: np.ndarray, eps: float = 1e-5, weight=None, bias=None) -> np.ndarray:
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    if weight is not None:
        y = y * np.asarray(weight, np.float64)[:, None] + np.asarray(bias, np.float64)[:, None]
    return y
