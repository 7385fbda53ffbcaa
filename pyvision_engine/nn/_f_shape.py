"""Regularisation and shape functionals: dropout, cat, add, pad, interpolate."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine._ops import normalize_dim
from pyvision_engine.autograd import Function
from pyvision_engine.nn import _f_pooling
from pyvision_engine.nn._f_common import (NotImplementedValueError, RuntimeValueError, float_input,
                                          int_arg, needs_grad, rebind_inplace, shell_of)
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
    return as_tensor(input).add(other, alpha=alpha)  # (torch's checks on alpha)


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


_INDEX_PAD_MODES = ("reflect", "replicate", "circular")  # torch's non-constant modes


def pad(input: Any, pad: Sequence[int], mode: str = "constant", value: Optional[float] = None) -> Tensor:
    """torch.nn.functional.pad: ``pad`` lists (left, right) for the last dim, then the
    one before, ... Modes 'constant' (``value``, default 0; negative amounts crop),
    'reflect', 'replicate' and 'circular' (the last 1-3 dims of a 2-5-D input)."""
    x = float_input(input, "pad")
    if mode != "constant" and mode not in _INDEX_PAD_MODES:
        raise NotImplementedValueError(f"pad: mode must be one of 'constant', 'reflect', "
                                       f"'replicate', 'circular', got {mode!r}")
    pads = [int_arg(p, "pad", "pad") for p in pad]
    if len(pads) % 2 or len(pads) // 2 > x.ndim:
        raise RuntimeValueError(f"pad: padding length must be even and at most 2 * ndim "
                                f"({2 * x.ndim}), got {len(pads)}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pads) // 2):
        widths[x.ndim - 1 - i] = (pads[2 * i], pads[2 * i + 1])
    if mode != "constant":
        return _index_pad(x, pads, widths, mode, value)
    for i, (b, a) in enumerate(widths):
        if x.shape[i] + b + a < 0 or (b < 0 and -b > x.shape[i]) or (a < 0 and -a > x.shape[i]):
            raise RuntimeValueError(f"pad: padding {pads} gives a negative size for input shape "
                                    f"{x.shape}")
    return _Pad.apply(x, tuple(widths), 0.0 if value is None else float(value))


def _index_pad(x: Tensor, pads: List[int], widths: List[Tuple[int, int]], mode: str,
               value: Optional[float]) -> Tensor:
    if value is not None and value != 0:
        raise RuntimeValueError(f'pad: padding mode "{mode}" doesn\'t take in value argument')
    padded_dims = len(pads) // 2
    if padded_dims not in (1, 2, 3) or x.ndim not in (padded_dims + 1, padded_dims + 2):
        raise NotImplementedValueError(
            f"pad: mode {mode!r} pads the last 1, 2 or 3 dims of a 2-D to 5-D input (with an "
            f"optional batch dim), got {len(pads)} pad values for input shape {x.shape}")
    padded = range(x.ndim - padded_dims, x.ndim)
    if mode != "circular" and 0 in x.shape[1 if x.ndim == padded_dims + 2 else 0:]:
        # torch's reflect / replicate kernels: only a batch dim may be empty
        raise RuntimeValueError(
            f"pad: Expected {padded_dims + 1}D or {padded_dims + 2}D (batch mode) tensor with "
            f"possibly 0 batch size and other non-zero dimensions for input, but got: "
            f"{list(x.shape)} (mode {mode!r})")
    if mode == "reflect":
        for axis in reversed(padded):  # (torch checks the last dim first)
            before, after = widths[axis]
            if max(before, after) >= x.shape[axis]:
                raise RuntimeValueError(f"pad: padding size should be less than the corresponding "
                                        f"input dimension, but got padding ({before}, {after}) at "
                                        f"dimension {axis} of input {list(x.shape)}")
    if mode != "circular":
        out = [x.shape[a] + sum(widths[a]) for a in padded]
        if min(out) < 0 or max(out) < 1:  # (torch allows an empty dim if another is not)
            raise RuntimeValueError(f"pad: input {list(x.shape)} is too small for padding {pads}: "
                                    f"the calculated output size of the padded dims is {out}")
    maps = []
    for axis, (before, after) in enumerate(widths):
        if before == 0 and after == 0:
            continue
        size = x.shape[axis]
        if mode == "circular":
            # Negative amounts crop first (as torch), then the wrap reads what is left.
            if size + before + after < 0:
                raise RuntimeValueError(f"pad: Negative padding value is resulting in an empty "
                                        f"dimension: padding ({before}, {after}) at dimension "
                                        f"{axis} of input {list(x.shape)}")
            lo, hi = max(-before, 0), size - max(-after, 0)
            kept = np.arange(lo, max(hi, lo))
            before, after = max(before, 0), max(after, 0)
            if len(kept) == 0 and max(before, after) > 0:
                # (torch copies uninitialised memory here)
                raise RuntimeValueError(f"pad: padding {pads} leaves nothing of dimension {axis} "
                                        f"of input {list(x.shape)} to pad from in mode {mode!r}")
            if max(before, after) > len(kept):
                raise RuntimeValueError(f"pad: padding value causes wrapping around more than "
                                        f"once: padding ({before}, {after}) at dimension {axis} "
                                        f"of input {list(x.shape)}")
            index = kept[np.pad(np.arange(len(kept)), (before, after), mode="wrap")]
        else:
            # reflect / replicate index the whole input, as torch's kernels: output j reads
            # position j - before, mirrored or clamped at the input's own edges (so a
            # negative amount crops, yet the other side still reflects the full input).
            pos = np.arange(size + before + after) - before
            if mode == "reflect":
                pos = np.abs(pos)
                index = np.where(pos > size - 1, 2 * (size - 1) - pos, pos)
            else:
                index = np.clip(pos, 0, size - 1)
        maps.append((axis, index))
    return _IndexPad.apply(x, tuple(maps))


# ------------------------------------------------------------------ interpolate
# The input ranks each mode takes (torch: 'linear' is 1-D, 'bilinear' 2-D).
_INTERP_RANKS = {"nearest": (3, 4), "nearest-exact": (3, 4), "linear": (3,), "bilinear": (4,),
                 "bicubic": (4,), "area": (3, 4)}
_CUBIC_A = -0.75  # torch's (and OpenCV's) cubic convolution coefficient
_AA_CUBIC_A = -0.5  # torch's antialiased bicubic uses Keys' -0.5 (as Pillow)
_CHUNK = 1 << 17  # output elements per block of planes: a block's temporaries stay in cache
_MAX_OUTPUT_BYTES = 1 << 36  # refuse results beyond 64 GiB instead of overcommitting


class _Taps(NamedTuple):
    """Where the outputs along one axis read: ``index`` holds one source index per
    output (nearest modes) or several (two for linear, four for cubic, the filter's
    support for antialias), weighted by ``weight`` (one array per tap)."""
    index: Tuple[np.ndarray, ...]
    weight: Optional[Tuple[np.ndarray, ...]]
    in_size: int


def _ratio(in_size: int, out_size: int, scale: Optional[float]) -> np.float32:
    # torch's compute_scales_value: 1 / scale_factor when the caller gave one, else in / out
    if scale is not None and scale > 0:
        return _F32(1.0 / scale)
    return _F32(in_size) / _F32(out_size)


def _axis_taps(in_size: int, out_size: int, mode: str, align_corners: Optional[bool],
               scale: Optional[float], one_d: bool = False) -> _Taps:
    """torch's source positions along one axis, in its float32 arithmetic. torch's 1-D
    kernels (``one_d``) and 2-D ones differ in the nearest modes; both are mirrored."""
    dst = np.arange(out_size)
    last = in_size - 1
    if mode == "nearest":
        if not one_d and out_size == in_size:  # the 2-D kernel copies, or repeats each pixel
            src = dst                          # at twice the size, whatever the scale_factor
        elif not one_d and out_size == 2 * in_size:
            src = dst >> 1
        else:
            src = np.floor(dst.astype(_F32) * _ratio(in_size, out_size, scale)).astype(np.int64)
        return _Taps((np.minimum(src, last),), None, in_size)
    if mode == "nearest-exact":
        ratio = np.float64(_ratio(in_size, out_size, scale))
        if one_d:  # floorf(fma(ratio, dst + 0.5, -0.5) + 0.5f)
            pos = ((dst + 0.5) * ratio - 0.5).astype(_F32) + _F32(0.5)
        else:      # floorf((dst + 0.5) * ratio)
            pos = ((dst + 0.5) * ratio).astype(_F32)
        src = np.floor(pos).astype(np.int64)
        return _Taps((np.minimum(np.maximum(src, 0), last),), None, in_size)
    if mode == "cubic":
        return _cubic_taps(in_size, out_size, align_corners, scale)
    # linear: two taps; the same size reads x * 1 + x * 0 (so Inf there gives NaN, as torch)
    if out_size == in_size:
        return _Taps((dst, dst), (np.ones(out_size, _F32), np.zeros(out_size, _F32)), in_size)
    if align_corners:
        ratio = _F32(last) / _F32(out_size - 1) if out_size > 1 else _F32(0)
        pos = ratio * dst.astype(_F32)
    else:  # ratio * (dst + 0.5) - 0.5 rounded once, as torch's fused multiply-add (exact
        # in float64: a float32 times a short half-integer)
        pos = (np.float64(_ratio(in_size, out_size, scale)) * (dst + 0.5) - 0.5).astype(_F32)
        pos = np.maximum(pos, _F32(0))
    i0 = np.minimum(np.floor(pos).astype(np.int64), last)
    w1 = np.clip(pos - i0.astype(_F32), _F32(0), _F32(1))
    i1 = i0 + (i0 < last)
    return _Taps((i0, i1), (_F32(1) - w1, w1), in_size)


def _source_pos(in_size: int, out_size: int, align_corners: Optional[bool],
                scale: Optional[float]) -> np.ndarray:
    """torch's area_pixel_compute_source_index for cubic (no clamp at 0), float32."""
    dst = np.arange(out_size)
    if align_corners:
        ratio = _F32(in_size - 1) / _F32(out_size - 1) if out_size > 1 else _F32(0)
        return ratio * dst.astype(_F32)
    # ratio * (dst + 0.5) - 0.5 rounded once (torch's fused multiply-add; exact in float64)
    return (np.float64(_ratio(in_size, out_size, scale)) * (dst + 0.5) - 0.5).astype(_F32)


def _cubic_weights(t: np.ndarray, a: float) -> Tuple[np.ndarray, ...]:
    """torch's get_cubic_upsample_coefficients: the four weights of taps -1, 0, 1, 2 for
    the fraction ``t``, in float32 (cubic_convolution1 inside, 2 outside)."""
    a = _F32(a)
    one = _F32(1)

    def inner(x):  # ((A + 2) * x - (A + 3)) * x * x + 1, for |x| <= 1
        return ((a + _F32(2)) * x - (a + _F32(3))) * x * x + one

    def outer(x):  # ((A * x - 5A) * x + 8A) * x - 4A, for 1 < |x| < 2
        return ((a * x - _F32(5) * a) * x + _F32(8) * a) * x - _F32(4) * a

    t2 = one - t
    return outer(t + one), inner(t), inner(t2), outer(t2 + one)


def _cubic_taps(in_size: int, out_size: int, align_corners: Optional[bool],
                scale: Optional[float]) -> _Taps:
    """torch's bicubic: four taps around floor(src), indices clamped into the input
    (upsample_get_value_bounded), weights of the fraction with A = -0.75."""
    pos = _source_pos(in_size, out_size, align_corners, scale)
    last = in_size - 1
    # guard_index_and_lambda: the index at most in_size - 1, the fraction within [0, 1]
    i0 = np.minimum(np.floor(pos).astype(np.int64), last)
    t = np.clip(pos - i0.astype(_F32), _F32(0), _F32(1))
    index = tuple(np.clip(i0 + k, 0, last) for k in (-1, 0, 1, 2))
    return _Taps(index, _cubic_weights(t, _CUBIC_A), in_size)


def keys_cubic(x: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel W(x) with parameter ``a``, in x's float type and in
    Pillow's order of operations (float32 as torch's antialias filter, float64 as Pillow
    and the ONNX Resize kernels)."""
    x = np.abs(x)
    t = x.dtype.type
    a = t(a)
    near = ((a + t(2)) * x - (a + t(3))) * x * x + t(1)
    far = (((x - t(5)) * x + t(8)) * x - t(4)) * a
    return np.where(x < 1, near, np.where(x < 2, far, t(0))).astype(t)


def _aa_filter(x: np.ndarray, kind: str) -> np.ndarray:
    """torch's antialias filters: the triangle (linear) or Keys' cubic with a = -0.5."""
    if kind == "linear":
        x = np.abs(x)
        t = x.dtype.type  # (float32 as torch, or float64 as Pillow)
        return np.where(x < 1, t(1) - x, t(0)).astype(t)
    return keys_cubic(x, _AA_CUBIC_A)


def _aa_window(in_size: int, ratio: float, out_size: int, kind: str,
               exact: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """The antialiased filter windows along one axis, (index, weight), each (out, width):
    the filter's support (widened by the downscale ``ratio`` = in / out) centred on
    ratio * (i + 0.5), clipped to the input, weights normalised to sum 1. This is both
    torch's _compute_indices_min_size_weights_aa and Pillow's precompute_coeffs: torch
    rounds the steps to float32 as its C++ expressions do; ``exact`` keeps every step in
    float64, as Pillow (whose uint8 path then quantises the weights). Short windows are
    padded with their first index and weight 0, so padding reads no pixel outside."""
    if exact:
        ftype, ratio_ = np.float64, np.float64(ratio)
    else:
        ftype, ratio_ = _F32, _F32(ratio)
    support = ftype(1 if kind == "linear" else 2)
    if ratio_ >= 1:
        support = support * ratio_
    invscale = ftype(1.0 / np.float64(ratio_)) if ratio_ >= 1 else ftype(1)
    # (torch mixes float and double here: each step rounded as its C++ expression)
    center = (np.float64(ratio_) * (np.arange(out_size) + 0.5)).astype(ftype)
    # (int64 casts truncate toward zero, as C's static_cast)
    xmin = np.maximum(np.trunc(center.astype(np.float64) - support + 0.5).astype(np.int64), 0)
    xmax = np.minimum(np.trunc(center.astype(np.float64) + support + 0.5).astype(np.int64),
                      in_size)
    xsize = np.maximum(xmax - xmin, 0)
    width = max(int(xsize.max()), 1)
    j = np.arange(width)
    inside = j[None, :] < xsize[:, None]
    offset = (j[None, :] + xmin[:, None]).astype(ftype) - center[:, None]
    w = _aa_filter(((offset.astype(np.float64) + 0.5) * invscale).astype(ftype), kind)
    w = np.where(inside, w, ftype(0)).astype(ftype)
    total = np.zeros(out_size, ftype)
    for k in range(width):  # (summed in torch's order)
        total += w[:, k]
    w = np.where(total[:, None] != 0, w / np.where(total == 0, ftype(1), total)[:, None], w)
    index = np.where(inside, xmin[:, None] + j[None, :], xmin[:, None])
    return np.minimum(index, in_size - 1), w.astype(ftype)


def _aa_taps(in_size: int, out_size: int, kind: str, align_corners: Optional[bool],
             scale: Optional[float]) -> _Taps:
    """torch's antialiased taps (see _aa_window); align_corners only changes the ratio
    (torch's area_pixel_compute_scale), the centre keeps its + 0.5."""
    if align_corners:
        ratio = _F32(in_size - 1) / _F32(out_size - 1) if out_size > 1 else _F32(0)
    else:
        ratio = _ratio(in_size, out_size, scale)
    index, w = _aa_window(in_size, ratio, out_size, kind)
    return _Taps(tuple(index[:, k] for k in range(index.shape[1])),
                 tuple(w[:, k] for k in range(index.shape[1])), in_size)


def _interp_matrix(in_size: int, out_size: int, mode: str, align_corners: Optional[bool],
                   scale: Optional[float]) -> np.ndarray:
    """(out, in) float64 matrix of the weights one axis of a 4-D 'nearest', 'bilinear' or
    'bicubic' interpolation reads (the ONNX exporter compares it with Resize's); other
    modes raise, as the exporter has no Resize mapping for them."""
    kind = {"nearest": "nearest", "bilinear": "linear", "bicubic": "cubic"}.get(mode)
    if kind is None:
        raise ValueError(f"interpolate: mode {mode!r} has no ONNX Resize mapping here "
                         "(only 'nearest', 'bilinear' and 'bicubic' on 4-D input)")
    taps = _axis_taps(in_size, out_size, kind, align_corners, scale)
    m = np.zeros((out_size, in_size), dtype=np.float64)
    rows = np.arange(out_size)
    weights = taps.weight or (np.ones(out_size, _F32),)
    for index, weight in zip(taps.index, weights):
        np.add.at(m, (rows, index), weight)
    return m


def _along(w: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    return w.reshape((-1,) + (1,) * (ndim - 1 - axis))


def _gather(y: np.ndarray, taps: _Taps, axis: int, out: Optional[np.ndarray] = None) -> np.ndarray:
    """One interpolation pass along ``axis``: out = y[i0] * w0 + y[i1] * w1 (or y[i]).
    Each output reads only its own taps, so a NaN spreads no further than in torch."""
    shape = y.shape[:axis] + (len(taps.index[0]),) + y.shape[axis + 1:]
    if out is None:
        out = np.empty(shape, _F32)
    # (the indices are in range by construction; mode='wrap' skips numpy's buffered check)
    np.take(y, taps.index[0], axis=axis, out=out, mode="wrap")
    if taps.weight is not None:
        out *= _along(taps.weight[0], axis, y.ndim)
        for index, weight in zip(taps.index[1:], taps.weight[1:]):
            term = np.take(y, index, axis=axis, mode="wrap")
            term *= _along(weight, axis, y.ndim)
            out += term
    return out


class _Reverse(NamedTuple):
    """The adjoint of one axis's taps. Backward lays the weighted gradients out as
    v = [g * w0 | g * w1 | 0] along the axis; source position t sums v[table[t, k]]
    over k, in torch's order (by output, first tap first); short rows are padded with
    the trailing zero, so padding never reads a NaN. With long rows (large upsampling
    factors) ``order`` sorts v by source and ``starts`` bounds each source's run.
    ``padded``: some row of ``table`` reads the zero."""
    table: Optional[np.ndarray]
    order: np.ndarray
    starts: np.ndarray
    targets: np.ndarray
    padded: bool


_MAX_TABLE_WIDTH = 8  # beyond this many terms per source, one reduceat is cheaper


def _reverse(taps: _Taps) -> _Reverse:
    out_size, n_taps = len(taps.index[0]), len(taps.index)
    # The terms output by output, first tap first (torch's order of accumulation), sorted
    # stably by source; term j * n_taps + k sits at v[k * out_size + j].
    source = np.stack(taps.index, axis=1).ravel()
    by_source = np.argsort(source, kind="stable")
    order = (by_source % n_taps) * out_size + by_source // n_taps
    counts = np.bincount(source, minlength=taps.in_size)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    targets = np.flatnonzero(counts)
    if counts.max() > _MAX_TABLE_WIDTH:
        return _Reverse(None, order, starts[targets], targets, True)
    table = np.full((taps.in_size, int(counts.max())), n_taps * out_size, dtype=np.intp)
    sorted_source = source[by_source]
    table[sorted_source, np.arange(len(order)) - starts[sorted_source]] = order
    return _Reverse(table, order, starts[targets], targets, bool(counts.min() < counts.max()))


def _scatter(g: np.ndarray, taps: _Taps, rev: _Reverse, axis: int) -> np.ndarray:
    """The adjoint of _gather: each output's gradient (times its weight) goes back to
    the source positions it read (and only to those: a NaN spreads as in torch)."""
    out_size = g.shape[axis]
    n_taps = len(taps.index)
    shape = list(g.shape)
    here = [slice(None)] * g.ndim
    if taps.weight is None and not rev.padded:
        v = g  # (nearest, every source read equally often: g itself, no zero slot)
    else:
        shape[axis] = n_taps * out_size + 1
        v = np.empty(shape, _F32)
        for k in range(n_taps):
            here[axis] = slice(k * out_size, (k + 1) * out_size)
            if taps.weight is None:
                v[tuple(here)] = g
            else:
                np.multiply(g, _along(taps.weight[k], axis, g.ndim), out=v[tuple(here)])
        here[axis] = n_taps * out_size
        v[tuple(here)] = 0
    if rev.table is not None:
        grad = np.take(v, rev.table[:, 0], axis=axis, mode="wrap")
        for k in range(1, rev.table.shape[1]):
            grad += np.take(v, rev.table[:, k], axis=axis, mode="wrap")
        return grad
    runs = np.add.reduceat(np.take(v, rev.order, axis=axis, mode="wrap"), rev.starts, axis=axis)
    shape[axis] = taps.in_size
    grad = np.zeros(shape, _F32)
    here[axis] = rev.targets
    grad[tuple(here)] = runs
    return grad


def _block(planes: int, per_plane: int, taps: Sequence[_Taps]) -> int:
    """Planes per block: all at once for nearest (no temporaries beyond one pass),
    about _CHUNK output elements for linear modes."""
    if all(t.weight is None for t in taps):
        return max(planes, 1)
    return max(1, _CHUNK // max(per_plane, 1))


class _Interpolate(Function):
    """Separable resampling of (P, *spatial) planes by per-axis taps: forward gathers
    along the last axis first (torch's order of products), backward scatters back
    along ``grad_taps``."""

    @staticmethod
    @np.errstate(invalid="ignore")  # (Inf * 0 is NaN, as in torch, without a warning)
    def forward(ctx, x, taps, grad_taps):
        lead, in_sp = x.shape[:2], x.shape[2:]
        out_sp = tuple(len(t.index[0]) for t in taps)
        planes = x.reshape((-1,) + in_sp)
        out = np.empty((planes.shape[0],) + out_sp, _F32)
        step = _block(planes.shape[0], math.prod(out_sp), taps)
        for s in range(0, planes.shape[0], step):
            y = planes[s:s + step]
            for axis in range(len(taps), 0, -1):
                y = _gather(y, taps[axis - 1], axis, out[s:s + step] if axis == 1 else None)
        ctx.taps, ctx.in_shape = grad_taps, x.shape
        return out.reshape(lead + out_sp)

    @staticmethod
    @np.errstate(invalid="ignore")
    def backward(ctx, g):
        taps, in_shape = ctx.taps, ctx.in_shape
        g = np.ascontiguousarray(g, dtype=_F32).reshape((-1,) + g.shape[2:])
        grad = np.empty((g.shape[0],) + in_shape[2:], _F32)
        step = _block(g.shape[0], math.prod(g.shape[1:]), taps)
        reverse = [_reverse(t) for t in taps]
        for s in range(0, g.shape[0], step):
            y = g[s:s + step]
            for axis in range(1, len(taps) + 1):
                y = _scatter(y, taps[axis - 1], reverse[axis - 1], axis)
            grad[s:s + step] = y
        return grad.reshape(in_shape), None, None


def _interp_sizes(x: Tensor, size: Any, scale_factor: Any, recompute_scale_factor: Optional[bool],
                  op: str) -> Tuple[Tuple[int, ...], Tuple[Optional[float], ...]]:
    """The output spatial size and the scales the kernels use (None: in / out), torch's rules."""
    dim, in_sp = x.ndim - 2, tuple(x.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError(f"{op}: only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError(f"{op}: either size or scale_factor should be defined")
    if size is not None:
        if recompute_scale_factor:
            raise ValueError(f"{op}: recompute_scale_factor is not meaningful with an explicit size.")
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(f"{op}: input and output must have the same number of spatial "
                                 f"dimensions, but got input with spatial dimensions of "
                                 f"{list(in_sp)} and output size of {size}")
            return tuple(int_arg(v, op, "size") for v in size), (None,) * dim
        return (int_arg(size, op, "size"),) * dim, (None,) * dim
    if isinstance(scale_factor, (list, tuple)):
        if len(scale_factor) != dim:
            raise ValueError(f"{op}: input and scale_factor must have the same number of spatial "
                             f"dimensions, but got input with spatial dimensions of {list(in_sp)} "
                             f"and scale_factor of shape {scale_factor}")
        factors = tuple(scale_factor)
    else:
        factors = (scale_factor,) * dim
    for f in factors:
        if not isinstance(f, numbers.Real):
            raise TypeError(f"{op}: scale_factor must be a number or a tuple of numbers, "
                            f"got {scale_factor!r}")
        if not math.isfinite(f):
            raise RuntimeValueError(f"{op}: scale_factor must be finite, got {scale_factor!r}")
    factors = tuple(float(f) for f in factors)
    out = tuple(int(n * f) for n, f in zip(in_sp, factors))  # truncated, as torch
    # recompute_scale_factor: the kernels use in / out instead of 1 / scale_factor
    return out, ((None,) * dim if recompute_scale_factor else factors)


def interpolate(input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: Optional[bool] = None, recompute_scale_factor: Optional[bool] = None,
                antialias: bool = False) -> Tensor:
    """Resize (N, C, L) or (N, C, H, W) input to ``size`` or by ``scale_factor`` with torch's
    source-index rules: 'nearest' and 'nearest-exact' (3-D or 4-D), 'linear' (3-D),
    'bilinear' and 'bicubic' (4-D; align_corners default False; bicubic: A = -0.75, the
    four taps clamped into the input), 'area' (3-D or 4-D: adaptive average pooling to
    the output size). ``antialias`` (bilinear, bicubic): torch's separable filters whose
    support widens by the downscale factor (bicubic's with a = -0.5), weights normalised
    per output. Each output reads only its own source pixels, so a NaN reaches exactly
    the outputs that read it, as in torch."""
    op = "interpolate"
    x = float_input(input, op)
    if mode not in _INTERP_RANKS:
        raise NotImplementedValueError(
            f"{op}: mode must be one of {', '.join(map(repr, _INTERP_RANKS))}, got {mode!r}")
    if (mode.startswith("nearest") or mode == "area") and align_corners is not None:
        raise ValueError(f"{op}: align_corners option can only be set with the interpolating "
                         "modes: linear | bilinear | bicubic | trilinear")
    ranks = _INTERP_RANKS[mode]
    if x.ndim not in ranks:
        want = " or ".join({3: "3-D (N, C, L)", 4: "4-D (N, C, H, W)"}[r] for r in ranks)
        raise NotImplementedValueError(f"{op}: mode {mode!r} expects a {want} input, got shape "
                                       f"{tuple(x.shape)}")
    out_sp, scales = _interp_sizes(x, size, scale_factor, recompute_scale_factor, op)
    if antialias and mode not in ("bilinear", "bicubic"):
        raise ValueError(f"{op}: anti-alias option is restricted to bilinear and bicubic "
                         "modes and requires a 4-D tensor as input")
    if mode == "area":  # torch: adaptive average pooling to the output size
        if x.ndim == 3:
            return _f_pooling.adaptive_avg_pool1d(x, out_sp[0])
        return _f_pooling.adaptive_avg_pool2d(x, out_sp)
    in_sp = tuple(x.shape[2:])
    if min(in_sp) <= 0 or min(out_sp) <= 0:
        raise RuntimeValueError(f"{op}: input and output sizes should be greater than 0, but got "
                                f"input {in_sp} and output {out_sp} (input shape {tuple(x.shape)})")
    if x.shape[1] == 0:  # (an empty batch alone is fine)
        raise RuntimeValueError(f"{op}: non-empty {x.ndim}-D data tensor expected but got a "
                                f"tensor with sizes {list(x.shape)}")
    if 4 * math.prod(x.shape[:2]) * math.prod(out_sp) > _MAX_OUTPUT_BYTES:
        raise ValueError(f"{op}: the output {tuple(x.shape[:2]) + out_sp} would need more than "
                         f"{_MAX_OUTPUT_BYTES >> 30} GiB")
    kind = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    if antialias:
        taps = tuple(_aa_taps(n, o, kind, bool(align_corners), s)
                     for n, o, s in zip(in_sp, out_sp, scales))
        return _Interpolate.apply(x, taps, taps)
    taps = tuple(_axis_taps(n, o, kind, bool(align_corners), s, one_d=x.ndim == 3)
                 for n, o, s in zip(in_sp, out_sp, scales))
    grad_taps = taps
    if x.ndim == 3 and kind not in ("linear", "cubic"):
        # torch's 1-D nearest backward kernels use the 2-D index rules, which differ
        # from its 1-D forward in a few configurations (3 -> 3 by scale 1.2): mirrored
        grad_taps = tuple(_axis_taps(n, o, kind, None, s) for n, o, s in zip(in_sp, out_sp, scales))
    return _Interpolate.apply(x, taps, grad_taps)


def upsample(input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
             align_corners: Optional[bool] = None) -> Tensor:
    """Deprecated alias of interpolate (torch warns the same way)."""
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


# ------------------------------------------------------------------ channel-wise dropout
__all__ += ["dropout2d", "alpha_dropout", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle",
            "upsample_nearest", "upsample_bilinear"]

_SELU_ALPHA_PRIME = 1.7580993408473766  # alpha * scale of SELU: AlphaDropout's saturation


class _Mask(Function):
    """y = x * scale (+ shift): dropout with a mask that broadcasts over x."""

    @staticmethod
    def forward(ctx, x, scale, shift, inplace):
        out = x if inplace else np.empty_like(x)
        with np.errstate(invalid="ignore"):  # (inf * 0 is NaN, as torch's multiply)
            np.multiply(x, scale, out=out)
        if shift is not None:
            out += shift
        ctx.scale = scale
        return out

    @staticmethod
    def backward(ctx, g):
        gx = np.empty(g.shape, _F32)
        with np.errstate(invalid="ignore"):
            np.multiply(g, ctx.scale, out=gx)
        return gx, None, None, None


def _apply_mask(x: Tensor, scale: np.ndarray, shift: Optional[np.ndarray], inplace: bool,
                op: str) -> Tensor:
    if not inplace:
        return _Mask.apply(x, scale, shift, False)
    if not needs_grad(x):
        with np.errstate(invalid="ignore"):
            np.multiply(x._data, scale, out=x._data)
        if shift is not None:
            x._data += shift
        x._bump_version()
        return x
    if x._node is None:
        raise RuntimeValueError(f"{op}: a leaf Variable that requires grad is being used in an "
                                "in-place operation.")
    return rebind_inplace(x, _Mask.apply(shell_of(x), scale, shift, True))


def _check_p(p: Any, op: str) -> float:
    if not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: p must be a number, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")
    return float(p)


def dropout2d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels: each (n, c) plane with probability p, the rest scaled by
    1 / (1 - p) (training only; masks from the engine generator, ``pve.manual_seed``).

    As torch, a 3-D input is taken as (N, C, L) (with its warning), and inputs of other
    ranks than 3 and 4 warn and drop along dim 1 all the same (at least 2 dims)."""
    p = _check_p(p, "dropout2d")
    x = float_input(input, "dropout2d")
    if x.ndim not in (3, 4):
        warnings.warn(
            f"dropout2d: Received a {x.ndim}-D input to dropout2d, which is deprecated and will "
            "result in an error in a future release. To retain the behavior and silence this "
            "warning, please use dropout instead. Note that dropout2d exists to provide "
            "channel-wise dropout on inputs with 2 spatial dimensions, a channel dimension, and "
            "an optional batch dimension (i.e. 3D or 4D inputs).", stacklevel=2)
    if x.ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
            "dropout behavior is desired - input is interpreted as shape (N, C, L), where C is "
            "the channel dim. This behavior will change in a future release to interpret the "
            "input as one without a batch dimension, i.e. shape (C, H, W). To maintain the 1D "
            "channel-wise dropout behavior, please switch to using dropout1d instead.",
            stacklevel=2)
    return _feature_dropout(x, p, training, inplace, batched=True, op="dropout2d")


def _feature_dropout(x: Tensor, p: float, training: bool, inplace: bool, batched: bool,
                     op: str) -> Tensor:
    """torch's feature_dropout: each channel (dim 1, or dim 0 of an unbatched input) zeroed
    whole with probability p, the rest scaled by 1 / (1 - p); a mask that broadcasts."""
    # torch's order: no-ops first (any rank), then p == 1 (zeros, NaN stays NaN), then the
    # feature-noise shape, which needs a channel dim
    if p == 0.0 or not training or x._data.size == 0:
        return x
    if p == 1.0:
        return _apply_mask(x, np.zeros((), _F32), None, inplace, op)
    lead = 2 if batched else 1  # (batch and) channel
    if x.ndim < lead:
        raise RuntimeValueError(f"{op}: Feature dropout requires at least 2 dimensions in "
                                f"the input, got shape {tuple(x.shape)}")
    noise_shape = x.shape[:lead] + (1,) * (x.ndim - lead)
    keep = default_generator().random(noise_shape, dtype=_F32) >= _F32(p)
    scale = keep.astype(_F32) / _F32(1.0 - p)
    return _apply_mask(x, scale, None, inplace, op)


def dropout1d(input: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of (N, C, L) or unbatched (C, L) input: each with probability
    p, the rest scaled by 1 / (1 - p) (training only; masks from the engine generator).
    Other ranks are an error, in eval mode too, as torch."""
    p = _check_p(p, "dropout1d")
    x = float_input(input, "dropout1d")
    if x.ndim not in (2, 3):
        raise RuntimeValueError(
            f"dropout1d: Expected 2D or 3D input, but received a {x.ndim}D input. Note that "
            "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial "
            "dimension, a channel dimension, and an optional batch dimension (i.e. 2D or 3D "
            "inputs).")
    return _feature_dropout(x, p, training, inplace, batched=x.ndim == 3, op="dropout1d")


def alpha_dropout(input: Any, p: float = 0.5, training: bool = False,
                  inplace: bool = False) -> Tensor:
    """Dropout for SELU networks (torch's formula): dropped elements take SELU's
    saturation value -alpha', then a * y + b restores zero mean and unit variance,
    a = 1 / sqrt((alpha'^2 p + 1)(1 - p)), b = a * alpha' * p."""
    p = _check_p(p, "alpha_dropout")
    x = float_input(input, "alpha_dropout")
    if p == 0.0 or not training or x._data.size == 0:
        return x
    if p == 1.0:
        return _apply_mask(x, np.zeros((), _F32), None, inplace, "alpha_dropout")
    keep = (default_generator().random(x.shape, dtype=_F32) >= _F32(p)).astype(_F32)
    alpha = _SELU_ALPHA_PRIME
    a = 1.0 / math.sqrt((alpha * alpha * p + 1) * (1 - p))
    # torch: b = (noise - 1) * (alpha * a) + alpha * a * p; noise *= a; y = x * noise + b
    shift = (keep - _F32(1)) * _F32(alpha * a) + _F32(alpha * a * p)
    return _apply_mask(x, keep * _F32(a), shift, inplace, "alpha_dropout")


# ------------------------------------------------------------------ shuffles
class _Permute(Function):
    """A reshape -> transpose -> reshape; backward runs the inverse."""

    @staticmethod
    def forward(ctx, x, split, axes, out_shape):
        ctx.in_shape, ctx.split, ctx.axes = x.shape, split, axes
        return np.ascontiguousarray(x.reshape(split).transpose(axes)).reshape(out_shape)

    @staticmethod
    def backward(ctx, g):
        inverse = np.argsort(ctx.axes)
        split_out = tuple(ctx.split[a] for a in ctx.axes)
        gx = np.ascontiguousarray(np.asarray(g).reshape(split_out).transpose(inverse))
        return gx.reshape(ctx.in_shape), None, None, None


def _int_type(v: Any, op: str, name: str) -> int:
    # torch's argument parser: an int (a bool or a float is a TypeError)
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{op}: argument {name!r} must be int, not {type(v).__name__}")
    return int(v)


def _factor(v: Any, op: str, name: str) -> int:
    v = _int_type(v, op, name)
    if v <= 0:
        raise RuntimeValueError(f"{op} expects a positive {name}, but got {v}")
    return v


def _shuffle_args(input: Any, factor: Any, op: str, name: str) -> Tuple[Tensor, int]:
    """(input, factor) of pixel_shuffle / pixel_unshuffle, checked in torch's order: the
    factor's type, the input's rank (at least 3), then the factor's sign."""
    x = float_input(input, op)
    _int_type(factor, op, name)
    if x.ndim < 3:
        raise RuntimeValueError(f"{op} expects input to have at least 3 dimensions, but got "
                                f"input with {x.ndim} dimension(s)")
    return x, _factor(factor, op, name)


def pixel_shuffle(input: Any, upscale_factor: int) -> Tensor:
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r): out[c, h*r + i, w*r + j] =
    in[c*r*r + i*r + j, h, w]."""
    x, r = _shuffle_args(input, upscale_factor, "pixel_shuffle", "upscale_factor")
    *batch, c, h, w = x.shape
    if c % (r * r):
        raise RuntimeValueError(f"pixel_shuffle expects its input's 'channel' dimension to be "
                                f"divisible by the square of upscale_factor, but "
                                f"input.size(-3)={c} is not divisible by {r * r}")
    b, oc = len(batch), c // (r * r)
    split = tuple(batch) + (oc, r, r, h, w)
    axes = tuple(range(b)) + (b, b + 3, b + 1, b + 4, b + 2)
    return _Permute.apply(x, split, axes, tuple(batch) + (oc, h * r, w * r))


def pixel_unshuffle(input: Any, downscale_factor: int) -> Tensor:
    """(*, C, H * r, W * r) -> (*, C * r^2, H, W), the inverse of pixel_shuffle."""
    x, r = _shuffle_args(input, downscale_factor, "pixel_unshuffle", "downscale_factor")
    *batch, c, h, w = x.shape
    if h % r:
        raise RuntimeValueError(f"pixel_unshuffle expects height to be divisible by "
                                f"downscale_factor, but input.size(-2)={h} is not divisible by {r}")
    if w % r:
        raise RuntimeValueError(f"pixel_unshuffle expects width to be divisible by "
                                f"downscale_factor, but input.size(-1)={w} is not divisible by {r}")
    b = len(batch)
    split = tuple(batch) + (c, h // r, r, w // r, r)
    axes = tuple(range(b)) + (b, b + 2, b + 4, b + 1, b + 3)
    return _Permute.apply(x, split, axes, tuple(batch) + (c * r * r, h // r, w // r))


def channel_shuffle(input: Any, groups: int) -> Tensor:
    """ShuffleNet's shuffle of (N, C, *): view the channels as (groups, C / groups),
    transpose, flatten: out[:, k] = in[:, (k % groups) * (C / groups) + k // groups]."""
    x = float_input(input, "channel_shuffle")
    g = _int_type(groups, "channel_shuffle", "groups")
    if x.ndim <= 2:
        raise RuntimeValueError(f"channel_shuffle expects input with > 2 dims, but got input "
                                f"with sizes {list(x.shape)}")
    if g <= 0:
        raise RuntimeValueError(f"channel_shuffle: Number of groups to divide channels in must be "
                                f"positive. Value of groups:{g}")
    n, c = x.shape[:2]
    if c % g:
        raise RuntimeValueError(f"channel_shuffle: Number of channels must be divisible by groups. "
                                f"Got {c} channels and {g} groups.")
    rest = tuple(x.shape[2:])
    split = (n, g, c // g) + rest
    axes = (0, 2, 1) + tuple(range(3, 3 + len(rest)))
    return _Permute.apply(x, split, axes, tuple(x.shape))


# ------------------------------------------------------------------ deprecated upsampling
def upsample_nearest(input: Any, size: Any = None, scale_factor: Any = None) -> Tensor:
    """Deprecated: interpolate(..., mode='nearest') (torch warns the same way)."""
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use "
                  "`nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Any, size: Any = None, scale_factor: Any = None) -> Tensor:
    """Deprecated: interpolate(..., mode='bilinear', align_corners=True)."""
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use "
                  "`nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# ------------------------------------------------------------------ one_hot
from pyvision_engine.nn._f_common import RuntimeTypeError  # noqa: E402

__all__ += ["one_hot"]


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """int64 class indices of shape S -> int64 (*S, num_classes) with a 1 at each index.

    num_classes=-1 takes max(tensor) + 1 (an empty tensor then has no class count: an
    error, as torch). No gradient: the result is integer."""
    t = as_tensor(tensor)
    n = _int_type(num_classes, "one_hot", "num_classes")
    if t.dtype != np.int64:
        raise RuntimeTypeError(f"one_hot is only applicable to index tensor of type LongTensor "
                               f"(int64), got {t.dtype}")
    index = t._data
    if index.size == 0:
        if n <= 0:
            raise RuntimeValueError("one_hot: Can not infer total number of classes from empty "
                                    f"tensor (shape {t.shape}, num_classes={n}).")
        return Tensor._wrap(np.zeros(index.shape + (n,), np.int64))
    low, high = int(index.min()), int(index.max())
    if low < 0:
        raise RuntimeValueError(f"one_hot: Class values must be non-negative (got {low}).")
    if n == -1:
        n = high + 1
    elif n <= high:
        raise RuntimeValueError(f"one_hot: Class values must be smaller than num_classes (got "
                                f"class {high} with num_classes={n}).")
    out = np.zeros(index.shape + (n,), np.int64)
    np.put_along_axis(out, index[..., None], 1, axis=-1)
    return Tensor._wrap(out)
