"""Regularisation and shape functionals: dropout, cat, add, pad, interpolate."""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine._ops import normalize_dim
from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import float_input, int_arg, needs_grad, rebind_inplace, shell_of
from pyvision_engine.random import default_generator
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["dropout", "cat", "add", "pad", "interpolate", "upsample"]

_F32 = np.float32


class _Dropout(Function):
    @staticmethod
    def forward(ctx, x, mask_scale, inplace):
        out = x if inplace else np.empty_like(x)
        np.multiply(x, mask_scale, out=out)
        ctx.mask_scale = mask_scale
        return out

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.mask_scale).astype(_F32), None, None


def dropout(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only).

    The mask comes from the engine generator (``pve.manual_seed``)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    x = float_input(input, "dropout")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        mask_scale = np.zeros(x.shape, dtype=_F32)
    else:
        keep = default_generator().random(x.shape, dtype=_F32) >= _F32(p)
        mask_scale = keep.astype(_F32) * _F32(1.0 / (1.0 - p))
    if not inplace:
        return _Dropout.apply(x, mask_scale, False)
    if not needs_grad(x):
        np.multiply(x._data, mask_scale, out=x._data)
        x._bump_version()  # (in place: caches of packed weights are rebuilt)
        return x
    return rebind_inplace(x, _Dropout.apply(shell_of(x), mask_scale, True))


class _Cat(Function):
    @staticmethod
    def forward(ctx, *arrays, dim):
        ctx.sizes, ctx.dim = [a.shape[dim] for a in arrays], dim
        return np.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, g):
        bounds = np.cumsum(ctx.sizes)[:-1]
        return tuple(np.ascontiguousarray(p) for p in np.split(g, bounds, axis=ctx.dim))


def cat(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Concatenate tensors along ``dim``; all other dims must match."""
    ts = [as_tensor(t) for t in tensors]
    if len(ts) == 0:
        raise ValueError("cat: expected a non-empty list of tensors")
    ref = ts[0]
    d = normalize_dim(dim, ref.ndim, "cat")
    for i, t in enumerate(ts):
        if t.dtype != ref.dtype:
            raise TypeError(f"cat: tensor {i} has dtype {t.dtype}, expected {ref.dtype}")
        if t.ndim != ref.ndim or t.shape[:d] + t.shape[d + 1:] != ref.shape[:d] + ref.shape[d + 1:]:
            raise ValueError(f"cat: sizes must match except in dimension {d}; tensor 0 has shape "
                             f"{ref.shape}, tensor {i} has shape {t.shape}")
    return _Cat.apply(*ts, dim=d)


def add(input: Any, other: Any, alpha: float = 1) -> Tensor:
    """input + alpha * other (a residual connection)."""
    x = as_tensor(input)
    return x + (other * alpha if alpha != 1 else other)


class _Pad(Function):
    @staticmethod
    def forward(ctx, x, widths, value):
        # widths: per dim (before, after), possibly negative (cropping).
        crop = tuple(slice(max(-b, 0), x.shape[i] - max(-a, 0)) for i, (b, a) in enumerate(widths))
        inner = x[crop]
        pads = [(max(b, 0), max(a, 0)) for b, a in widths]
        ctx.crop, ctx.pads, ctx.shape = crop, pads, x.shape
        return np.ascontiguousarray(np.pad(inner, pads, mode="constant", constant_values=value))

    @staticmethod
    def backward(ctx, g):
        keep = tuple(slice(b, g.shape[i] - a) for i, (b, a) in enumerate(ctx.pads))
        gx = np.zeros(ctx.shape, dtype=_F32)
        gx[ctx.crop] = g[keep]
        return gx, None, None


class _IndexPad(Function):
    """reflect / replicate / circular padding: along each padded axis every output
    position copies one input position (an index map); the gradient adds back
    along the same maps."""

    @staticmethod
    def forward(ctx, x, maps):
        y = x
        for axis, index in maps:
            y = np.take(y, index, axis=axis)
        ctx.maps, ctx.shape = maps, x.shape
        return np.ascontiguousarray(y)

    @staticmethod
    def backward(ctx, g):
        for axis, index in reversed(ctx.maps):
            shape = list(g.shape)
            shape[axis] = ctx.shape[axis]
            acc = np.zeros(shape, dtype=_F32)
            np.add.at(acc, (slice(None),) * axis + (index,), g)
            g = acc
        return g, None


# torch's non-constant modes as numpy.pad modes (the same index rules)
_INDEX_PAD_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(input: Any, pad: Sequence[int], mode: str = "constant", value: Optional[float] = None) -> Tensor:
    """torch.nn.functional.pad: ``pad`` lists (left, right) for the last dim, then the
    one before, ... Modes 'constant' (``value``, default 0; negative amounts crop),
    'reflect', 'replicate' and 'circular' (the last 1-3 dims of a 2-5-D input)."""
    x = float_input(input, "pad")
    if mode != "constant" and mode not in _INDEX_PAD_MODES:
        raise ValueError(f"pad: mode must be one of 'constant', 'reflect', 'replicate', "
                         f"'circular', got {mode!r}")
    pads = [int_arg(p, "pad", "pad") for p in pad]
    if len(pads) % 2 or len(pads) // 2 > x.ndim:
        raise ValueError(f"pad: padding length must be even and at most 2 * ndim ({2 * x.ndim}), "
                         f"got {len(pads)}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pads) // 2):
        widths[x.ndim - 1 - i] = (pads[2 * i], pads[2 * i + 1])
    if mode != "constant":
        return _index_pad(x, pads, widths, mode, value)
    for i, (b, a) in enumerate(widths):
        if x.shape[i] + b + a < 0 or (b < 0 and -b > x.shape[i]) or (a < 0 and -a > x.shape[i]):
            raise ValueError(f"pad: padding {pads} gives a negative size for input shape {x.shape}")
    return _Pad.apply(x, tuple(widths), 0.0 if value is None else float(value))


def _index_pad(x: Tensor, pads: List[int], widths: List[Tuple[int, int]], mode: str,
               value: Optional[float]) -> Tensor:
    if value is not None and value != 0:
        raise ValueError(f'pad: padding mode "{mode}" doesn\'t take in value argument')
    padded_dims = len(pads) // 2
    if padded_dims not in (1, 2, 3) or x.ndim not in (padded_dims + 1, padded_dims + 2):
        raise NotImplementedError(
            f"pad: mode {mode!r} pads the last 1, 2 or 3 dims of a 2-D to 5-D input (with an "
            f"optional batch dim), got {len(pads)} pad values for input shape {x.shape}")
    maps = []
    for axis, (before, after) in enumerate(widths):
        if before == 0 and after == 0:
            continue
        # Negative amounts crop first (as torch), then the rest pads what is left.
        kept = np.arange(x.shape[axis])[max(-before, 0):x.shape[axis] - max(-after, 0)]
        size, before, after = len(kept), max(before, 0), max(after, 0)
        if size == 0:
            raise ValueError(f"pad: padding {pads} leaves nothing of dimension {axis} of input "
                             f"{list(x.shape)} to pad from in mode {mode!r}")
        if mode == "reflect" and max(before, after) >= size:
            raise ValueError(f"pad: padding size should be less than the corresponding input "
                             f"dimension, but got padding ({before}, {after}) at dimension "
                             f"{axis} of input {list(x.shape)}")
        if mode == "circular" and max(before, after) > size:
            raise ValueError(f"pad: padding value causes wrapping around more than once: "
                             f"padding ({before}, {after}) at dimension {axis} of input "
                             f"{list(x.shape)}")
        index = kept[np.pad(np.arange(size), (before, after), mode=_INDEX_PAD_MODES[mode])]
        maps.append((axis, index))
    return _IndexPad.apply(x, tuple(maps))


def _interp_matrix(in_size: int, out_size: int, mode: str, align_corners: Optional[bool],
                   scale: Optional[float]) -> np.ndarray:
    """(out, in) matrix of interpolation weights along one axis, torch's source-index rules."""
    m = np.zeros((out_size, in_size), dtype=np.float64)
    dst = np.arange(out_size, dtype=np.float64)
    # torch uses 1/scale_factor when the caller gave one, else in/out.
    ratio = (1.0 / scale) if scale is not None else in_size / out_size
    if mode == "nearest":
        # torch's nearest_idx: the same size copies and twice the size repeats each
        # pixel whatever the scale_factor (so scale_factor=2.3 on 3 pixels gives 6
        # pixels 0 0 1 1 2 2, not 0 0 0 1 1 2); otherwise a float32 product.
        if out_size == in_size:
            src = np.arange(out_size)
        elif out_size == 2 * in_size:
            src = np.arange(out_size) >> 1
        else:
            src = np.minimum(np.floor(dst.astype(_F32) * _F32(ratio)).astype(np.int64),
                             in_size - 1)
        m[np.arange(out_size), src] = 1.0
        return m
    if align_corners:
        r = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        src = dst * r
    else:
        src = np.maximum((dst + 0.5) * ratio - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    lam = src - i0
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), 1.0 - lam)
    np.add.at(m, (rows, i1), lam)
    return m


class _Interpolate(Function):
    @staticmethod
    def forward(ctx, x, mh, mw):
        ctx.mh, ctx.mw = mh, mw
        # (out_h, in_h) @ x @ (in_w, out_w), batched over N and C.
        return np.ascontiguousarray(np.matmul(np.matmul(mh, x), mw.T), dtype=_F32)

    @staticmethod
    def backward(ctx, g):
        return np.ascontiguousarray(np.matmul(np.matmul(ctx.mh.T, g), ctx.mw), dtype=_F32), None, None


def interpolate(input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: Optional[bool] = None, recompute_scale_factor: Optional[bool] = None,
                antialias: bool = False) -> Tensor:
    """Resize (N, C, H, W) input by ``size`` or ``scale_factor`` with 'nearest' or
    'bilinear' (align_corners as torch: default False)."""
    op = "interpolate"
    x = float_input(input, op)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D (N, C, H, W) input, got shape {x.shape}")
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"{op}: mode must be 'nearest' or 'bilinear', got {mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{op}: align_corners option can only be set with the interpolating "
                         "modes: linear | bilinear | bicubic | trilinear")
    if antialias:
        raise ValueError(f"{op}: antialias is not supported")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: exactly one of size or scale_factor must be given")
    in_hw = x.shape[2:]
    scales: Tuple[Optional[float], Optional[float]] = (None, None)
    if size is not None:
        out = (int_arg(size, op, "size"),) * 2 if not isinstance(size, (tuple, list)) else tuple(
            int_arg(s, op, "size") for s in size)
    else:
        sf = (float(scale_factor),) * 2 if not isinstance(scale_factor, (tuple, list)) else tuple(
            float(s) for s in scale_factor)
        if len(sf) != 2 or min(sf) <= 0:
            raise ValueError(f"{op}: scale_factor must be positive, got {scale_factor}")
        out = tuple(int(math.floor(in_hw[i] * sf[i])) for i in range(2))
        if not recompute_scale_factor:
            scales = sf
    if len(out) != 2 or min(out) <= 0:
        raise ValueError(f"{op}: output size must be positive, got {out}")
    mh = _interp_matrix(in_hw[0], out[0], mode, align_corners, scales[0]).astype(_F32)
    mw = _interp_matrix(in_hw[1], out[1], mode, align_corners, scales[1]).astype(_F32)
    return _Interpolate.apply(x, mh, mw)


def upsample(input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
             align_corners: Optional[bool] = None) -> Tensor:
    return interpolate(input, size, scale_factor, mode, align_corners)
