"""Plain-numpy float64 pooling references (torch's window, tie and NaN rules), written
independently of the kernels: an explicit loop over output cells."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np


def out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    eff = d * (k - 1) + 1
    if ceil_mode:
        o = math.ceil((size + 2 * p - eff) / s) + 1
        if (o - 1) * s >= size + p:  # last window would start in the right padding
            o -= 1
    else:
        o = (size + 2 * p - eff) // s + 1
    return o


def _pick(vals: np.ndarray, pos: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Max over the last axis of vals (taps in scan order): first maximum, NaN wins
    (the last NaN in scan order, as torch's `val > max || isnan(val)` update)."""
    nan = np.isnan(vals)
    any_nan = nan.any(axis=-1)
    last_nan = vals.shape[-1] - 1 - np.argmax(nan[..., ::-1], axis=-1)
    filled = np.where(nan, -np.inf, vals)
    first_max = np.argmax(filled, axis=-1)
    choice = np.where(any_nan, last_nan, first_max)
    value = np.take_along_axis(vals, choice[..., None], axis=-1)[..., 0]
    return value, pos[choice]


def max_pool2d(x: np.ndarray, k, s, p, d=(1, 1), ceil_mode=False):
    """x (N, C, H, W) -> (values, flat per-plane indices)."""
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    oh, ow = (out_size(h, k[0], s[0], p[0], d[0], ceil_mode),
              out_size(w, k[1], s[1], p[1], d[1], ceil_mode))
    y = np.empty((n, c, oh, ow))
    idx = np.empty((n, c, oh, ow), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            taps = [(i * s[0] - p[0] + a * d[0], j * s[1] - p[1] + b * d[1])
                    for a in range(k[0]) for b in range(k[1])]
            taps = [(r, q) for r, q in taps if 0 <= r < h and 0 <= q < w]
            vals = np.stack([x[:, :, r, q] for r, q in taps], axis=-1)
            pos = np.array([r * w + q for r, q in taps])
            y[:, :, i, j], idx[:, :, i, j] = _pick(vals, pos)
    return y, idx


def avg_pool2d(x: np.ndarray, k, s, p, ceil_mode=False, count_include_pad=True,
               divisor_override: Optional[int] = None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    oh, ow = out_size(h, k[0], s[0], p[0], 1, ceil_mode), out_size(w, k[1], s[1], p[1], 1, ceil_mode)
    y = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
            padded = (h1 - h0) * (w1 - w0)
            h0c, w0c, h1c, w1c = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
            total = x[:, :, h0c:h1c, w0c:w1c].sum(axis=(2, 3))
            if divisor_override:
                div = divisor_override
            elif count_include_pad:
                div = padded
            else:
                div = (h1c - h0c) * (w1c - w0c)
            y[:, :, i, j] = total / div
    return y


def _adaptive_bounds(i: int, size: int, out: int) -> Tuple[int, int]:
    return (i * size) // out, -((-(i + 1) * size) // out)


def adaptive_avg_pool2d(x: np.ndarray, out) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    y = np.empty((n, c) + tuple(out))
    for i in range(out[0]):
        a0, a1 = _adaptive_bounds(i, h, out[0])
        for j in range(out[1]):
            b0, b1 = _adaptive_bounds(j, w, out[1])
            y[:, :, i, j] = x[:, :, a0:a1, b0:b1].mean(axis=(2, 3))
    return y


def adaptive_max_pool2d(x: np.ndarray, out):
    x = np.asarray(x, dtype=np.float64)
    n, c, h, w = x.shape
    y = np.empty((n, c) + tuple(out))
    idx = np.empty((n, c) + tuple(out), dtype=np.int64)
    for i in range(out[0]):
        a0, a1 = _adaptive_bounds(i, h, out[0])
        for j in range(out[1]):
            b0, b1 = _adaptive_bounds(j, w, out[1])
            taps = [(r, q) for r in range(a0, a1) for q in range(b0, b1)]
            vals = np.stack([x[:, :, r, q] for r, q in taps], axis=-1)
            y[:, :, i, j], idx[:, :, i, j] = _pick(vals, np.array([r * w + q for r, q in taps]))
    return y, idx
