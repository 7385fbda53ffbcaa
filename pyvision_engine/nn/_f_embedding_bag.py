"""F.embedding_bag: sums, means or maxima of bags of embedding rows, without building the
(indices, embedding_dim) lookup (torch.nn.functional.embedding_bag).

Bags are given by a 2-D input (one bag per row) or by a 1-D input and ``offsets`` (bag
b is input[offsets[b]:offsets[b+1]], the last bag runs to the end, or to the extra last
offset with include_last_offset). Entries equal to padding_idx are left out of their
bag (and of a mean's count). Empty bags give zeros.

Arithmetic follows torch's CPU kernels so that results match bit for bit: a bag's sum
adds its rows in input order in float32 (with per_sample_weights each row enters
through one fused multiply-add), a mean divides that sum by the bag's size, max keeps
the first largest value per column. Gradients: sum/mean scatter the bag gradient,
scaled in float64 and rounded once, into the rows in order of sorted index; max sends
each column's gradient to the row that gave its maximum.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple, Optional

import numpy as np

from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import (
    NotImplementedValueError, RuntimeTypeError, RuntimeValueError, float_input,
)
from pyvision_engine.nn._f_embedding import embedding_renorm_
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["embedding_bag"]

_OP = "embedding_bag"
_F32 = np.float32
_MODES = ("sum", "mean", "max")


class _Bags(NamedTuple):
    """Where each input position goes: its row, its bag, and whether it counts."""
    indices: np.ndarray  # (L,) int64 rows of the weight
    bag_of: np.ndarray   # (L,) bag of each position
    rank: np.ndarray     # (L,) position within its bag
    kept: np.ndarray     # (L,) False for padding_idx entries
    sizes: np.ndarray    # (B,) kept entries per bag
    count: int           # B


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 a * b + c with one rounding (the float64 product of two float32 is exact)."""
    return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(_F32)


def _rank_steps(bags: _Bags):
    """The kept positions grouped by rank within their bag: each group touches every bag
    at most once, so a group can update all its bags in one vectorised step, and the
    groups in increasing rank replay each bag's sequential order."""
    positions = np.flatnonzero(bags.kept)
    ranks = bags.rank[positions]
    order = np.argsort(ranks, kind="stable")
    positions, ranks = positions[order], ranks[order]
    bounds = np.flatnonzero(np.diff(ranks)) + 1
    return np.split(positions, bounds) if positions.size else []


def _bag_sum(weight: np.ndarray, bags: _Bags, psw: Optional[np.ndarray],
             fused: bool) -> np.ndarray:
    """Each bag's rows (times their per-sample weights) added in input order in
    float32; ``fused``: weighted rows enter through one FMA (torch's fbgemm kernel, used
    without padding_idx), else as a rounded product then a sum (its fallback loop)."""
    out = np.zeros((bags.count, weight.shape[1]), dtype=_F32)
    for step in _rank_steps(bags):
        b, rows = bags.bag_of[step], weight[bags.indices[step]]
        if psw is None:
            out[b] = out[b] + rows
        elif fused:
            out[b] = _fma(psw[step][:, None], rows, out[b])
        else:
            out[b] = out[b] + rows * psw[step][:, None]
    return out


def _bag_max(weight: np.ndarray, bags: _Bags):
    """(maxima, the row of each maximum) per bag and column; the first largest wins,
    so a NaN only stays when it comes first (torch's ``v > best`` scan)."""
    out = np.zeros((bags.count, weight.shape[1]), dtype=_F32)
    arg = np.zeros(out.shape, dtype=np.int64)
    seen = np.zeros(bags.count, dtype=bool)
    for step in _rank_steps(bags):
        b, idx = bags.bag_of[step], bags.indices[step]
        rows = weight[idx]
        better = ~seen[b][:, None] | (rows > out[b])
        out[b] = np.where(better, rows, out[b])
        arg[b] = np.where(better, idx[:, None], arg[b])
        seen[b] = True
    return out, arg


def _occurrence_steps(indices: np.ndarray, positions: np.ndarray):
    """``positions`` in order of sorted index (stable), grouped by occurrence number of
    their index: each group holds every index at most once."""
    order = positions[np.argsort(indices[positions], kind="stable")]
    sorted_idx = indices[order]
    first = np.r_[0, np.flatnonzero(np.diff(sorted_idx)) + 1] if order.size else order
    starts = np.repeat(first, np.diff(np.r_[first, order.size]))
    occurrence = np.arange(order.size) - starts
    sort2 = np.argsort(occurrence, kind="stable")
    bounds = np.flatnonzero(np.diff(occurrence[sort2])) + 1
    return np.split(order[sort2], bounds) if order.size else []


class _EmbeddingBag(Function):
    """(weight, per_sample_weights) -> (B, embedding_dim) bag reductions."""

    @staticmethod
    def forward(ctx, weight, psw, bags, mode, scale_grad_by_freq, padded):
        ctx.bags, ctx.mode, ctx.freq = bags, mode, scale_grad_by_freq
        ctx.weight, ctx.psw = weight, psw
        if mode == "max":
            out, ctx.arg = _bag_max(weight, bags)
            return out
        out = _bag_sum(weight, bags, psw, fused=not padded)
        if mode == "mean":
            out = out / np.maximum(bags.sizes, 1).astype(_F32)[:, None]
        return out

    @staticmethod
    def backward(ctx, g):
        g = np.ascontiguousarray(g, dtype=_F32)
        gw = gp = None
        if ctx.needs_input_grad[0]:
            gw = _max_backward(ctx, g) if ctx.mode == "max" else _sum_mean_backward(ctx, g)
        if ctx.needs_input_grad[1]:  # <g[bag], row> per kept position, 0 for the others
            bags = ctx.bags
            kept = np.flatnonzero(bags.kept)
            gp = np.zeros(bags.indices.shape, dtype=_F32)
            gp[kept] = np.einsum("ij,ij->i", g[bags.bag_of[kept]].astype(np.float64),
                                 ctx.weight[bags.indices[kept]].astype(np.float64))
        return gw, gp, None, None, None, None


def _sum_mean_backward(ctx, g: np.ndarray) -> np.ndarray:
    """Row gradients: each kept position adds scale * g[bag] to its row (one FMA), with
    scale = per-sample weight / index count (scale_grad_by_freq) / bag size (mean),
    computed in float64 and rounded to float32 once, as torch's kernel."""
    bags = ctx.bags
    gw = np.zeros(ctx.weight.shape, dtype=_F32)
    scale = np.ones(bags.indices.shape, dtype=np.float64)
    if ctx.psw is not None:
        scale *= ctx.psw.astype(np.float64)
    if ctx.freq:  # the index's frequency in the whole input (torch's documented rule)
        counts = np.bincount(bags.indices, minlength=ctx.weight.shape[0])
        scale /= counts[bags.indices]
    if ctx.mode == "mean":
        sizes = bags.sizes[bags.bag_of]
        scale = np.where(sizes != 0, scale / np.maximum(sizes, 1), scale)
    scale = scale.astype(_F32)
    for step in _occurrence_steps(bags.indices, np.flatnonzero(bags.kept)):
        rows = bags.indices[step]
        gw[rows] = _fma(scale[step][:, None], g[bags.bag_of[step]], gw[rows])
    return gw


def _max_backward(ctx, g: np.ndarray) -> np.ndarray:
    bags = ctx.bags
    gw = np.zeros(ctx.weight.shape, dtype=_F32)
    nonempty = np.flatnonzero(bags.sizes != 0)
    cols = np.broadcast_to(np.arange(g.shape[1]), (nonempty.size, g.shape[1]))
    np.add.at(gw, (ctx.arg[nonempty], cols), g[nonempty])
    return gw


# ------------------------------------------------------------------ argument checks
def _index_tensor(value: Any, name: str) -> np.ndarray:
    t = as_tensor(value)
    if t.dtype != np.int64:
        raise RuntimeTypeError(f"{_OP}: Expected tensor for argument #1 '{name}' to have scalar "
                               f"type int64 (Long), but got {t.dtype}")
    return t._data


def _flatten_bags(input: Any, offsets: Any, psw: Optional[Tensor], include_last_offset: bool):
    """(1-D indices, offsets, flat per_sample_weights, include_last_offset) for a 1-D
    input with offsets or a 2-D input of fixed-length bags."""
    t = as_tensor(input)
    if t.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is "
                             "a mini-batch of fixed length sequences. However, found offsets of "
                             f"type {type(offsets)}")
        indices = _index_tensor(t, "indices")
        rows, width = indices.shape
        if width == 0 and rows > 0:  # (torch: arange's "step must be nonzero")
            raise RuntimeValueError(f"{_OP}: a 2-D input needs at least one index per bag, got "
                                    f"shape {tuple(indices.shape)}")
        offs = np.arange(0, indices.size, max(width, 1), dtype=np.int64)
        flat_psw = None if psw is None else psw.reshape(-1)
        return indices.reshape(-1), offs, flat_psw, False
    if t.ndim == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        if as_tensor(offsets).ndim != 1:
            raise ValueError("offsets has to be a 1D Tensor")
        return _index_tensor(t, "indices"), _index_tensor(offsets, "offsets"), psw, \
            bool(include_last_offset)
    raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {t.ndim}")


def _check_offsets(offsets: np.ndarray, length: int, include_last_offset: bool) -> None:
    if include_last_offset and offsets.size < 1:
        raise RuntimeValueError("include_last_offset: number of offset should be at least 1")
    if offsets.size == 0:
        return
    if offsets[0] != 0:
        raise RuntimeValueError("offsets[0] has to be 0, i.e., the first sequence in the "
                                "mini-batch has to start from position 0. However, got "
                                f"{offsets[0]}")
    if offsets[-1] > length:
        raise RuntimeValueError(f"offsets[-1] can not be greater than input's length {length} "
                                f"but got offsets[-1] of {offsets[-1]}")
    if np.any(np.diff(offsets) < 0):
        raise RuntimeValueError(f"{_OP}: offsets must be non-decreasing, got {offsets.tolist()}")
    if include_last_offset and offsets[-1] != length:
        # torch's kernels disagree on which bag the entries after it belong to
        raise RuntimeValueError(f"{_OP}: with include_last_offset=True the last offset must "
                                f"equal the input's length {length}, got {offsets[-1]}")


def _bags(indices: np.ndarray, offsets: np.ndarray, include_last_offset: bool,
          padding_idx: int, num: int) -> _Bags:
    length = indices.size
    starts = offsets[:-1] if include_last_offset else offsets
    bad = np.flatnonzero((indices < 0) | (indices >= num))
    if bad.size:
        raise RuntimeValueError(f"Index {bad[0]} of input takes value {indices[bad[0]]} which is "
                                f"not in the valid range [0, {num})")
    bag_of = np.searchsorted(starts, np.arange(length), side="right") - 1
    in_bag = bag_of >= 0  # (no bag at all when there are no offsets)
    rank = np.where(in_bag, np.arange(length) - starts[np.maximum(bag_of, 0)], 0) \
        if starts.size else np.zeros(length, dtype=np.int64)
    kept = (indices != padding_idx) & in_bag
    sizes = np.bincount(bag_of[kept], minlength=starts.size)[:starts.size]
    return _Bags(indices, bag_of, rank, kept, sizes, int(starts.size))


def _padding_index(padding_idx: Optional[int], num: int) -> int:
    if padding_idx is None:
        return -1
    if not -num <= padding_idx < num:
        raise RuntimeValueError(f"padding_idx must be within the number of embeddings, -{num} "
                                f"through {num - 1}, but got {padding_idx}")
    return padding_idx + num if padding_idx < 0 else padding_idx


def _check_mode(mode: str, scale_grad_by_freq: bool, sparse: bool) -> None:
    if mode not in _MODES:
        raise ValueError("mode has to be one of sum, mean or max")
    if mode == "max" and scale_grad_by_freq:
        raise ValueError("max mode does not support scaling the gradient by the frequency")
    if mode == "max" and sparse:
        raise ValueError("max mode does not support sparse weights")
    if sparse:
        raise NotImplementedValueError(f"{_OP}: sparse=True (sparse gradients) is not supported "
                                       "by this engine; use sparse=False")


def embedding_bag(input: Any, weight: Any, offsets: Optional[Any] = None,
                  max_norm: Optional[float] = None, norm_type: float = 2,
                  scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                  per_sample_weights: Optional[Any] = None, include_last_offset: bool = False,
                  padding_idx: Optional[int] = None) -> Tensor:
    """(B, embedding_dim) sums, means or maxima of bags of rows of ``weight``.

    input: int64 (B, N) (B bags of N) or (L,) with ``offsets`` (B,) int64 bag starts
    (offsets[0] = 0, non-decreasing; include_last_offset: one more offset, equal to L,
    closes the last bag). per_sample_weights (input's shape, float32): row factors,
    mode='sum' only. padding_idx: entries equal to it are left out. max_norm: rows
    looked up are renormalised in place first, as F.embedding. scale_grad_by_freq:
    row gradients divided by the index's count in the input (not with 'max'). sparse
    gradients are not supported (NotImplementedError)."""
    w_arg, i_arg = as_tensor(weight), as_tensor(input)
    if w_arg.dtype == np.int64 and i_arg.dtype == np.float32:
        warnings.warn("Argument order of nn.functional.embedding_bag was changed. Usage "
                      "`embedding_bag(weight, input, ...)` is deprecated, and should now be "
                      "`embedding_bag(input, weight, ...)`.", stacklevel=2)
        w_arg, i_arg = i_arg, w_arg
    psw = None if per_sample_weights is None else as_tensor(per_sample_weights)
    if psw is not None and psw.shape != i_arg.shape:
        raise ValueError(f"embedding_bag: If per_sample_weights ({psw.shape}) is not None, then "
                         f"it must have the same shape as the input ({i_arg.shape})")
    w = float_input(w_arg, _OP)
    if w.ndim != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension {w.ndim}")
    indices, offs, psw, include_last_offset = _flatten_bags(i_arg, offsets, psw,
                                                            include_last_offset)
    _check_mode(mode, scale_grad_by_freq, sparse)
    if max_norm is not None:
        embedding_renorm_(w, indices, float(max_norm), float(norm_type))
    if psw is not None and mode != "sum":
        raise NotImplementedValueError(
            "embedding_bag: per_sample_weights was not None. per_sample_weights is only "
            f"supported for mode='sum' (got mode='{mode}'). Please open a feature request on "
            "GitHub.")
    if psw is not None and psw.dtype != np.float32:
        raise RuntimeTypeError(f"{_OP}: per_sample_weights must be float32 as the weight, got "
                               f"{psw.dtype}")
    pad = _padding_index(padding_idx, w.shape[0])
    _check_offsets(offs, indices.size, include_last_offset)
    bags = _bags(indices, offs, include_last_offset, pad, w.shape[0])
    return _EmbeddingBag.apply(w, psw, bags, mode, bool(scale_grad_by_freq), pad >= 0)
