"""Sliding-block functionals: unfold (im2col) and fold (col2im), torch semantics.

unfold copies every kernel_size window (dilated, strided, over the zero-padded
input) into a column: (N, C, H, W) -> (N, C * kh * kw, L), L the number of
windows, rows ordered (c, i, j) and columns row-major over the window grid.
fold sums such columns back into an (N, C, H, W) image. Each is the other's
adjoint, so the backward of one is the forward of the other. Unbatched inputs,
(C, H, W) for unfold and (C * kh * kw, L) for fold, work as torch's.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Tuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import RankError, RuntimeValueError, float_input, int_arg
from pyvision_engine.tensor import Tensor

__all__ = ["unfold", "fold"]

Pair = Tuple[int, int]


class _Geometry(NamedTuple):
    kernel: Pair
    dilation: Pair
    padding: Pair
    stride: Pair
    image: Pair   # (H, W) of the unpadded image
    blocks: Pair  # number of windows down and across


def _two_ints(v: Any, op: str, name: str) -> Pair:
    """torch's _pair as im2col/col2im take it: an int, or exactly two ints."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise RuntimeValueError(f"{op}: It is expected {name} equals to 2, but got size "
                                    f"{len(v)}")
        return int_arg(v[0], op, name), int_arg(v[1], op, name)
    i = int_arg(v, op, name)
    return i, i


def _block_args(op: str, kernel_size: Any, dilation: Any, padding: Any,
                stride: Any) -> Tuple[Pair, Pair, Pair, Pair]:
    k = _two_ints(kernel_size, op, "kernel_size")
    d = _two_ints(dilation, op, "dilation")
    p = _two_ints(padding, op, "padding")
    s = _two_ints(stride, op, "stride")
    for name, v, ok in (("kernel size", k, min(k) > 0), ("dilation", d, min(d) > 0),
                        ("padding", p, min(p) >= 0), ("stride", s, min(s) > 0)):
        if not ok:
            need = "non-negative" if name == "padding" else "greater than zero"
            raise RuntimeValueError(f"{op}: {name} should be {need}, but got {v}")
    return k, d, p, s


def _window_count(size: int, kernel: int, dilation: int, padding: int, stride: int) -> int:
    # floor division, as torch's div_rtn: a span longer than the padded size gives <= 0
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _blocks(image: Pair, k: Pair, d: Pair, p: Pair, s: Pair) -> Pair:
    return (_window_count(image[0], k[0], d[0], p[0], s[0]),
            _window_count(image[1], k[1], d[1], p[1], s[1]))


def _im2col(x: np.ndarray, geo: _Geometry) -> np.ndarray:
    """(N, C, H, W) -> (N, C * kh * kw, L)."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = geo.kernel, geo.dilation, geo.padding, geo.stride
    n, c = x.shape[:2]
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    # (N, C, window row, window col, kh, kw) as a strided view, then one copy
    windows = sliding_window_view(x, span, axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    cols = np.ascontiguousarray(windows.transpose(0, 1, 4, 5, 2, 3), dtype=np.float32)
    return cols.reshape(n, c * kh * kw, geo.blocks[0] * geo.blocks[1])


def _col2im(cols: np.ndarray, geo: _Geometry) -> np.ndarray:
    """(N, C * kh * kw, L) -> (N, C, H, W): each column entry added where unfold took it."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = geo.kernel, geo.dilation, geo.padding, geo.stride
    (bh, bw), (h, w) = geo.blocks, geo.image
    n = cols.shape[0]
    c = cols.shape[1] // (kh * kw)
    cols = cols.reshape(n, c, kh, kw, bh, bw)
    image = np.zeros((n, c, h + 2 * ph, w + 2 * pw), np.float32)
    # One strided add per kernel tap (kh * kw of them, the positions within one tap are
    # distinct), in torch's col2im order of (i, j), so the sums round as torch's do.
    for i in range(kh):
        for j in range(kw):
            top, left = i * dh, j * dw
            image[:, :, top:top + sh * (bh - 1) + 1:sh, left:left + sw * (bw - 1) + 1:sw] += \
                cols[:, :, i, j]
    return np.ascontiguousarray(image[:, :, ph:ph + h, pw:pw + w])


class _Unfold(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, x, geo):
        ctx.geo, ctx.shape = geo, x.shape
        cols = _im2col(x.reshape((-1,) + x.shape[-3:]), geo)
        return cols.reshape(x.shape[:-3] + cols.shape[1:])

    @staticmethod
    def backward(ctx, g):
        g = np.ascontiguousarray(g, dtype=np.float32)
        return _col2im(g.reshape((-1,) + g.shape[-2:]), ctx.geo).reshape(ctx.shape), None


class _Fold(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, cols, geo):
        ctx.geo, ctx.shape = geo, cols.shape
        image = _col2im(cols.reshape((-1,) + cols.shape[-2:]), geo)
        return image.reshape(cols.shape[:-2] + image.shape[1:])

    @staticmethod
    def backward(ctx, g):
        g = np.ascontiguousarray(g, dtype=np.float32)
        return _im2col(g.reshape((-1,) + g.shape[-3:]), ctx.geo).reshape(ctx.shape), None


def _geometry_text(k: Pair, d: Pair, p: Pair) -> str:
    return f"kernel_size={k}, dilation={d}, padding={p}"


def unfold(input: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1) -> Tensor:
    """Sliding blocks as columns: (N, C, H, W) -> (N, C * kh * kw, L), or (C, H, W) ->
    (C * kh * kw, L); L = prod over H, W of (size + 2p - d(k - 1) - 1) // s + 1."""
    op = "unfold"
    x = float_input(input, op)
    k, d, p, s = _block_args(op, kernel_size, dilation, padding, stride)
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        error = RankError if x.ndim < 3 else RuntimeValueError
        raise error(f"{op}: Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and "
                    f"other non-zero dimensions for input, but got: {list(x.shape)}")
    image = x.shape[-2:]
    blocks = _blocks(image, k, d, p, s)
    if min(blocks) < 1:
        raise RuntimeValueError(f"{op}: Given input with spatial size {tuple(image)}, "
                                f"{_geometry_text(k, d, p)}, calculated shape of the array of "
                                f"sliding blocks as {blocks}, but its components must be at "
                                "least one.")
    return _Unfold.apply(x, _Geometry(k, d, p, s, tuple(image), blocks))


def fold(input: Any, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
         stride: Any = 1) -> Tensor:
    """Sum columns of sliding blocks into an image: (N, C * kh * kw, L) -> (N, C, *output_size),
    or (C * kh * kw, L) -> (C, *output_size); positions no block covers stay 0."""
    op = "fold"
    cols = float_input(input, op)
    image = _two_ints(output_size, op, "output_size")
    k, d, p, s = _block_args(op, kernel_size, dilation, padding, stride)
    if cols.ndim not in (2, 3) or 0 in cols.shape[-2:]:
        raise RuntimeValueError(f"{op}: Expected 2D or 3D (batch mode) tensor for input with "
                                f"possibly 0 batch size and non-zero dimensions for input, but "
                                f"got: {list(cols.shape)}")
    planes, length = cols.shape[-2:]
    if planes % (k[0] * k[1]):
        raise RuntimeValueError(f"{op}: Expected size of input's dimension 1 to be divisible by "
                                f"the product of kernel_size, but got input.size(1)={planes} and "
                                f"kernel_size={k}.")
    blocks = _blocks(image, k, d, p, s)
    where = f"Given output_size={image}, {_geometry_text(k, d, p)}, stride={s}"
    if length != blocks[0] * blocks[1]:
        raise RuntimeValueError(f"{op}: {where}, expected size of input's dimension 2 to match "
                                f"the calculated number of sliding blocks {blocks[0]} * "
                                f"{blocks[1]} = {blocks[0] * blocks[1]}, but got "
                                f"input.size(2)={length}.")
    if min(blocks) < 1 or min(image) < 1:
        raise RuntimeValueError(f"{op}: {where}, calculated shape of the array of sliding blocks "
                                f"as {blocks}, which is too small (non-positive)")
    return _Fold.apply(cols, _Geometry(k, d, p, s, image, blocks))
