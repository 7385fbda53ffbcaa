"""Plain-numpy direct 2-D convolution in float64: the independent reference.

No im2col, no FFT, no Winograd: a loop over kernel taps that adds shifted,
strided slices of the zero-padded input, which is easy to check by eye.
Padding is (top, bottom, left, right) so torch's asymmetric 'same' is covered.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

Pair = Tuple[int, int]


def output_size(in_size: int, kernel: int, stride: int, pad_before: int, pad_after: int,
                dilation: int) -> int:
    return (in_size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def _padded(x: np.ndarray, pads: Tuple[int, int, int, int]) -> np.ndarray:
    top, bottom, left, right = pads
    return np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray], stride: Pair,
                   pads: Tuple[int, int, int, int], dilation: Pair, groups: int) -> np.ndarray:
    """x (N, C, H, W), w (K, C/groups, R, S), b (K,) -> y (N, K, OH, OW), float64."""
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    sh, sw = stride
    dh, dw = dilation
    oh = output_size(h, r, sh, pads[0], pads[1], dh)
    ow = output_size(wd, s, sw, pads[2], pads[3], dw)
    xp = _padded(x, pads)
    kg = k // groups
    y = np.zeros((n, k, oh, ow))
    for g in range(groups):
        xg = xp[:, g * cg:(g + 1) * cg]
        wg = w[g * kg:(g + 1) * kg].astype(np.float64)
        for i in range(r):
            for j in range(s):
                patch = xg[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh,
                           j * dw: j * dw + sw * (ow - 1) + 1: sw]  # (N, cg, OH, OW)
                y[:, g * kg:(g + 1) * kg] += np.einsum("nchw,kc->nkhw", patch, wg[:, :, i, j])
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y


def conv2d_backward(x: np.ndarray, w: np.ndarray, gy: np.ndarray, stride: Pair,
                    pads: Tuple[int, int, int, int], dilation: Pair, groups: int):
    """Gradients (grad_input, grad_weight, grad_bias) of sum(gy * conv2d(x, w, b))."""
    n, c, h, wd = x.shape
    k, cg, r, s = w.shape
    sh, sw = stride
    dh, dw = dilation
    _, _, oh, ow = gy.shape
    xp = _padded(x, pads)
    gxp = np.zeros_like(xp)
    gw = np.zeros(w.shape)
    gy64 = gy.astype(np.float64)
    kg = k // groups
    for g in range(groups):
        gyg = gy64[:, g * kg:(g + 1) * kg]
        wg = w[g * kg:(g + 1) * kg].astype(np.float64)
        for i in range(r):
            for j in range(s):
                rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
                cols = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
                patch = xp[:, g * cg:(g + 1) * cg, rows, cols]
                gw[g * kg:(g + 1) * kg, :, i, j] += np.einsum("nkhw,nchw->kc", gyg, patch)
                gxp[:, g * cg:(g + 1) * cg, rows, cols] += np.einsum("nkhw,kc->nchw", gyg,
                                                                      wg[:, :, i, j])
    top, bottom, left, right = pads
    gx = gxp[:, :, top:top + h, left:left + wd]
    gb = gy64.sum(axis=(0, 2, 3))
    return gx, gw, gb


def conv_transpose2d_forward(x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray],
                             stride: Pair, padding: Pair, output_padding: Pair, groups: int,
                             dilation: Pair) -> np.ndarray:
    """Transposed convolution by its definition, in float64: every input pixel scatters
    its weighted kernel into the output at (i * stride - padding + tap * dilation).
    x (N, C, H, W), w (C, K/groups, R, S), b (K,) -> y (N, K, OH, OW)."""
    n, c, h, wd = x.shape
    _, kg, r, s = w.shape
    sh, sw = stride
    dh, dw = dilation
    ph, pw = padding
    oh = (h - 1) * sh - 2 * ph + dh * (r - 1) + output_padding[0] + 1
    ow = (wd - 1) * sw - 2 * pw + dw * (s - 1) + output_padding[1] + 1
    cg = c // groups
    # scatter into a canvas large enough for every tap, then cut the padding away
    full_h = (h - 1) * sh + dh * (r - 1) + 1 + output_padding[0]
    full_w = (wd - 1) * sw + dw * (s - 1) + 1 + output_padding[1]
    canvas = np.zeros((n, kg * groups, max(full_h, ph + oh), max(full_w, pw + ow)))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for g in range(groups):
        xg = x64[:, g * cg:(g + 1) * cg]
        wg = w64[g * cg:(g + 1) * cg]  # (cg, kg, R, S)
        for i in range(r):
            for j in range(s):
                contrib = np.einsum("nchw,ck->nkhw", xg, wg[:, :, i, j])
                canvas[:, g * kg:(g + 1) * kg,
                       i * dh: i * dh + sh * (h - 1) + 1: sh,
                       j * dw: j * dw + sw * (wd - 1) + 1: sw] += contrib
    y = canvas[:, :, ph:ph + oh, pw:pw + ow].copy()
    if b is not None:
        y += b.astype(np.float64)[None, :, None, None]
    return y
