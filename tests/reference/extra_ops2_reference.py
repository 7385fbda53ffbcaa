"""Plain-numpy float64 references for the shrink / RReLU / GLU activations, the
vector-norm functionals, one_hot, unfold / fold, max_unpool2d and lp_pool2d,
written from the formulas with explicit loops (independent of the engine's
vectorised forms)."""

from __future__ import annotations

import itertools

import numpy as np


def hardshrink(x, lambd=0.5):
    return np.where(np.abs(x) > lambd, x, 0.0)


def softshrink(x, lambd=0.5):
    return np.where(x > lambd, x - lambd, np.where(x < -lambd, x + lambd, 0.0))


def leaky(x, slope):
    return np.where(x > 0, x, x * slope)


def glu(x, dim=-1):
    a, b = np.split(x, 2, axis=dim)
    return a / (1.0 + np.exp(-b))


def vector_norm(x, p, axis):
    a = np.abs(x)
    if p == np.inf:
        return a.max(axis=axis, keepdims=True)
    if p == -np.inf:
        return a.min(axis=axis, keepdims=True)
    if p == 0:
        return (x != 0).sum(axis=axis, keepdims=True).astype(np.float64)
    return (a ** p).sum(axis=axis, keepdims=True) ** (1.0 / p)


def normalize(x, p=2.0, dim=1, eps=1e-12):
    return x / np.maximum(vector_norm(x, p, dim), eps)


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    x1, x2 = np.broadcast_arrays(x1, x2)
    n1 = np.maximum(vector_norm(x1, 2, dim), eps)
    n2 = np.maximum(vector_norm(x2, 2, dim), eps)
    return np.sum((x1 / n1) * (x2 / n2), axis=dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    d = np.subtract(x1, x2) + eps
    out = vector_norm(d, p, d.ndim - 1 if d.ndim else None)
    return out if keepdim or d.ndim == 0 else np.squeeze(out, -1)


def one_hot(index, num_classes):
    out = np.zeros(np.shape(index) + (num_classes,), np.int64)
    for pos in np.ndindex(*np.shape(index)):
        out[pos + (int(np.asarray(index)[pos]),)] = 1
    return out


def _blocks(size, k, d, p, s):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def unfold(x, kernel, dilation=(1, 1), padding=(0, 0), stride=(1, 1)):
    """(N, C, H, W) -> (N, C * kh * kw, L), one window per column, by loops."""
    n, c, h, w = x.shape
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel, dilation, padding, stride
    bh, bw = _blocks(h, kh, dh, ph, sh), _blocks(w, kw, dw, pw, sw)
    out = np.zeros((n, c * kh * kw, bh * bw))
    for b, ch, i, j, r, q in itertools.product(range(n), range(c), range(kh), range(kw),
                                               range(bh), range(bw)):
        row, col = r * sh - ph + i * dh, q * sw - pw + j * dw
        if 0 <= row < h and 0 <= col < w:
            out[b, (ch * kh + i) * kw + j, r * bw + q] = x[b, ch, row, col]
    return out


def fold(cols, output_size, kernel, dilation=(1, 1), padding=(0, 0), stride=(1, 1)):
    """(N, C * kh * kw, L) -> (N, C, H, W), summing overlaps, by loops."""
    n = cols.shape[0]
    (h, w), (kh, kw), (dh, dw), (ph, pw), (sh, sw) = output_size, kernel, dilation, padding, stride
    c = cols.shape[1] // (kh * kw)
    bh, bw = _blocks(h, kh, dh, ph, sh), _blocks(w, kw, dw, pw, sw)
    out = np.zeros((n, c, h, w))
    for b, ch, i, j, r, q in itertools.product(range(n), range(c), range(kh), range(kw),
                                               range(bh), range(bw)):
        row, col = r * sh - ph + i * dh, q * sw - pw + j * dw
        if 0 <= row < h and 0 <= col < w:
            out[b, ch, row, col] += cols[b, (ch * kh + i) * kw + j, r * bw + q]
    return out


def max_unpool2d(x, indices, output_hw):
    """(N, C, h, w) values to their flat per-plane indices of a zero (N, C, H, W)."""
    n, c = x.shape[:2]
    out = np.zeros((n, c, output_hw[0] * output_hw[1]))
    for b, ch in itertools.product(range(n), range(c)):
        for v, i in zip(x[b, ch].ravel(), indices[b, ch].ravel()):
            out[b, ch, i] = v
    return out.reshape(n, c, *output_hw)


def lp_pool2d(x, p, kernel, stride=None, ceil_mode=False):
    """(sum over each window of x ** p) ** (1 / p) on (N, C, H, W), by loops; a
    ceil_mode window cut by the edge is rescaled to the full window (torch's mean of
    the cut window times the kernel area)."""
    kh, kw = kernel
    sh, sw = stride or kernel
    n, c, h, w = x.shape

    def count(size, k, s):
        out = (size - k + (s - 1 if ceil_mode else 0)) // s + 1
        return out - 1 if ceil_mode and (out - 1) * s >= size else out

    oh, ow = count(h, kh, sh), count(w, kw, sw)
    out = np.zeros((n, c, oh, ow))
    for r, q in itertools.product(range(oh), range(ow)):
        window = x[:, :, r * sh:r * sh + kh, q * sw:q * sw + kw]
        if p == np.inf:
            out[:, :, r, q] = np.abs(window).max(axis=(2, 3))
            continue
        area = window.shape[2] * window.shape[3]
        total = (window ** p).sum(axis=(2, 3)) * (kh * kw / area)
        with np.errstate(invalid="ignore"):
            out[:, :, r, q] = total ** (1.0 / p)
    return out
