"""Plain-numpy float64 references for the extra torch.nn layers (textbook formulas and
index-by-index definitions, independent of the engine's reshapes and kernels)."""

from __future__ import annotations

import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


# ------------------------------------------------------------------ activations
def elu(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def celu(x, alpha=1.0):
    # max(0, x) + min(0, alpha * (exp(x / alpha) - 1)) for alpha > 0; torch extends it to
    # alpha < 0 as x for x > 0, alpha * (exp(x / alpha) - 1) otherwise
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0) / alpha))


def selu(x):
    return SELU_SCALE * elu(x, SELU_ALPHA)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    return np.minimum(np.maximum(x, min_val), max_val)


def threshold(x, th, value):
    return np.where(x <= th, value, x)  # (written so that NaN stays NaN, as torch's)


def softplus(x, beta=1.0, threshold=20.0):
    # log(1 + exp(beta x)) / beta, written without overflow
    return np.where(beta * x > threshold, x, np.logaddexp(0.0, beta * x) / beta)


def mish(x):
    return x * np.tanh(np.logaddexp(0.0, x))


def softsign(x):
    return x / (1.0 + np.abs(x))


def tanhshrink(x):
    return x - np.tanh(x)


def logsigmoid(x):
    return -np.logaddexp(0.0, -x)


def softmax(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def softmin(x, dim):
    return softmax(-x, dim)


# ------------------------------------------------------------------ shuffles
def pixel_shuffle(x, r):
    """out[..., c, h*r + i, w*r + j] = x[..., c*r*r + i*r + j, h, w]."""
    *batch, cin, h, w = x.shape
    c = cin // (r * r)
    out = np.zeros(tuple(batch) + (c, h * r, w * r), dtype=x.dtype)
    for k in range(c):
        for i in range(r):
            for j in range(r):
                out[..., k, i::r, j::r] = x[..., k * r * r + i * r + j, :, :]
    return out


def pixel_unshuffle(x, r):
    """out[..., c*r*r + i*r + j, h, w] = x[..., c, h*r + i, w*r + j]."""
    *batch, c, hr, wr = x.shape
    out = np.zeros(tuple(batch) + (c * r * r, hr // r, wr // r), dtype=x.dtype)
    for k in range(c):
        for i in range(r):
            for j in range(r):
                out[..., k * r * r + i * r + j, :, :] = x[..., k, i::r, j::r]
    return out


def channel_shuffle(x, groups):
    """out[:, k] = x[:, (k % groups) * (C // groups) + k // groups]."""
    c = x.shape[1]
    per = c // groups
    out = np.empty_like(x)
    for k in range(c):
        out[:, k] = x[:, (k % groups) * per + k // groups]
    return out


# ------------------------------------------------------------------ padding
def _source_index(o, before, size, mode):
    """The input index output position ``o`` of a padded axis reads."""
    p = o - before
    if mode == "reflect":
        while p < 0 or p > size - 1:  # mirror about the edge elements
            p = -p if p < 0 else 2 * (size - 1) - p
        return p
    if mode == "replicate":
        return min(max(p, 0), size - 1)
    if mode == "circular":
        return p % size
    raise ValueError(mode)


def pad2d(x, pad, mode, value=0.0):
    """Pad the last two dims by (left, right, top, bottom), position by position."""
    left, right, top, bottom = pad
    h, w = x.shape[-2:]
    oh, ow = h + top + bottom, w + left + right
    out = np.empty(x.shape[:-2] + (oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            if mode == "constant":
                si, sj = i - top, j - left
                out[..., i, j] = x[..., si, sj] if 0 <= si < h and 0 <= sj < w else value
            else:
                out[..., i, j] = x[..., _source_index(i, top, h, mode),
                                   _source_index(j, left, w, mode)]
    return out


# ------------------------------------------------------------------ upsampling
def upsample_bilinear_align_corners(x, out_h, out_w):
    """Bilinear with align_corners=True: output o reads source o * (in - 1) / (out - 1)."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        sy = i * (h - 1) / (out_h - 1) if out_h > 1 else 0.0
        y0 = min(int(np.floor(sy)), h - 1)
        y1 = min(y0 + 1, h - 1)
        fy = sy - y0
        for j in range(out_w):
            sx = j * (w - 1) / (out_w - 1) if out_w > 1 else 0.0
            x0 = min(int(np.floor(sx)), w - 1)
            x1 = min(x0 + 1, w - 1)
            fx = sx - x0
            out[:, :, i, j] = ((1 - fy) * ((1 - fx) * x[:, :, y0, x0] + fx * x[:, :, y0, x1])
                               + fy * ((1 - fx) * x[:, :, y1, x0] + fx * x[:, :, y1, x1]))
    return out


def upsample_nearest(x, out_h, out_w):
    """Nearest with the output size given: output o reads floor(o * in / out)."""
    h, w = x.shape[-2:]
    rows = [min(int(np.floor(i * h / out_h)), h - 1) for i in range(out_h)]
    cols = [min(int(np.floor(j * w / out_w)), w - 1) for j in range(out_w)]
    return x[..., rows, :][..., cols]


# ------------------------------------------------------------------ normalisation
def instance_norm(x, w=None, b=None, eps=1e-5):
    """x (N, C, *): each (n, c) plane normalised by its own mean and biased variance."""
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if w is not None:
        y = y * w.reshape(shape)
    if b is not None:
        y = y + b.reshape(shape)
    return y


def instance_norm_running(x, running_mean, running_var, momentum):
    """torch's update: the batch mean over N of each instance's mean and unbiased variance."""
    axes = tuple(range(2, x.ndim))
    m = int(np.prod(x.shape[2:]))
    mean = x.mean(axis=axes)
    var = ((x - mean.reshape(mean.shape + (1,) * len(axes))) ** 2).sum(axis=axes) / (m - 1)
    return ((1 - momentum) * running_mean + momentum * mean.mean(axis=0),
            (1 - momentum) * running_var + momentum * var.mean(axis=0))


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """b_c = a_c / (k + alpha / size * sum_{c' in window(c)} a_c'^2) ** beta, the window
    [c - size // 2, c + (size - 1) // 2] clipped to the channels (torch's zero padding;
    the divisor stays ``size``)."""
    c = x.shape[1]
    out = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c - 1, ch + (size - 1) // 2)
        s = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        out[:, ch] = x[:, ch] / (k + alpha / size * s) ** beta
    return out
