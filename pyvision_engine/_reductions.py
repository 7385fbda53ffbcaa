"""More reductions and scans, torch's names and rules: cumprod, cummax / cummin,
logcumsumexp, count_nonzero, aminmax, nansum, nanmean, var_mean / std_mean, diff,
trace, median / nanmedian, kthvalue.

Gradients are torch's: cumprod's exact one with zeros in the input, cummax / cummin's
and the dim-wise median / kthvalue's to the selected index, the global median's split
evenly among the elements equal to it. Installed on Tensor at the end of tensor.py.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, Optional

import numpy as np

from pyvision_engine import _ops
from pyvision_engine.autograd import Function
from pyvision_engine.tensor import Tensor, as_tensor, float32

TENSOR_METHODS = [
    "cumprod", "cumprod_", "cummax", "cummin", "logcumsumexp", "count_nonzero", "aminmax",
    "nansum", "nanmean", "diff", "trace", "median", "nanmedian", "kthvalue",
]
FUNCTIONS = TENSOR_METHODS[:1] + TENSOR_METHODS[2:] + ["var_mean", "std_mean", "all", "any"]

CummaxResult = namedtuple("cummax", ["values", "indices"])
CumminResult = namedtuple("cummin", ["values", "indices"])
AminmaxResult = namedtuple("aminmax", ["min", "max"])
MedianResult = namedtuple("median", ["values", "indices"])
NanmedianResult = namedtuple("nanmedian", ["values", "indices"])
KthvalueResult = namedtuple("kthvalue", ["values", "indices"])


def _scan_dim(self: Tensor, dim: int, op: str) -> int:
    return _ops.normalize_dim(dim, self.ndim, op)


def _as_line(self: Tensor) -> Tensor:
    return self.reshape(1) if self.ndim == 0 else self


# -------------------------------------------------------------------- cumprod
class _Cumprod(Function):
    """Running product along dim. Gradient (torch's cumprod_backward): for x_i, the sum
    over j >= i of g_j times the product of x_k (k <= j, k != i), exact where x has
    zeros (no division by them)."""

    saved_inputs, saves_output = (0,), True

    @staticmethod
    def forward(ctx, a, dim):
        out = np.cumprod(a.astype(np.float64), axis=dim).astype(np.float32) if a.dtype == float32 \
            else np.cumprod(a, axis=dim, dtype=np.int64)
        ctx.a, ctx.out, ctx.dim = a, out, dim
        return out

    @staticmethod
    def backward(ctx, g):
        x = np.moveaxis(ctx.a.astype(np.float64), ctx.dim, -1)
        gy = np.moveaxis(g.astype(np.float64), ctx.dim, -1)
        n = x.shape[-1]
        lines_x, lines_g = x.reshape(-1, n), gy.reshape(-1, n)
        grad = np.zeros_like(lines_x)
        for r in range(lines_x.shape[0]):
            grad[r] = _cumprod_line_grad(lines_x[r], lines_g[r])
        grad = np.moveaxis(grad.reshape(x.shape), -1, ctx.dim)
        return _ops._contiguous(grad, np.float32), None


def _cumprod_line_grad(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    n = x.size
    zeros = np.flatnonzero(x == 0)
    z = zeros[0] if zeros.size else n
    grad = np.zeros(n)
    if z > 0:  # before the first zero: (reversed running sum of g * out) / x, out > 0 there
        out = np.cumprod(x[:z])
        grad[:z] = np.cumsum((g[:z] * out)[::-1])[::-1] / x[:z]
        # (the terms j >= z vanish for i < z: out_j = 0 there)
    if z < n:  # at the first zero: prefix product times sum_j>=z g_j prod_{z<k<=j} x_k
        prefix = np.prod(x[:z])
        after = np.cumprod(np.concatenate(([1.0], x[z + 1:])))
        grad[z] = prefix * np.sum(g[z:] * after)
    return grad  # after the first zero: 0


def cumprod(self: Any, dim: int, *, dtype: Any = None) -> Tensor:
    """Running product along dim (int64 for integer and bool tensors)."""
    t = as_tensor(self)
    t = t if dtype is None else t.type(dtype)
    d = _scan_dim(t, dim, "cumprod")
    if t.ndim == 0:
        return _Cumprod.apply(t.reshape(1), 0).reshape(())
    return _Cumprod.apply(t, d)


def cumprod_(self: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    return self._apply_inplace(lambda t: cumprod(t, dim, dtype=dtype), keep_old=True)


# --------------------------------------------------------- cummax / cummin
def _cumulative_extreme(self: Tensor, dim: int, largest: bool) -> Any:
    """(values, indices) of cummax/cummin without autograd (_cumulative records it)."""
    op = "cummax" if largest else "cummin"
    d = _scan_dim(self, dim, op)
    t = _as_line(self)
    a = np.moveaxis(t._data, d, -1)
    n = a.shape[-1]
    lines = a.reshape(-1, n) if a.size else np.zeros((0, n), a.dtype)
    idx = np.zeros(lines.shape, dtype=np.int64)
    if n:
        best = lines[:, 0].copy()
        pos = np.zeros(lines.shape[0], dtype=np.int64)
        for i in range(n):  # (a loop over the scanned dim, vectorized over the lines)
            v = lines[:, i]
            if lines.dtype == float32:
                # a NaN takes over (and each later NaN, as torch's index shows)
                take = np.isnan(v) | (~np.isnan(best) & ((v >= best) if largest else (v <= best)))
            else:
                take = (v >= best) if largest else (v <= best)
            best = np.where(take, v, best)
            pos = np.where(take, i, pos)
            idx[:, i] = pos
    indices = np.ascontiguousarray(np.moveaxis(idx.reshape(a.shape), -1, d))
    values = Tensor._wrap(np.asarray(np.take_along_axis(t._data, indices, d), order="C"))
    if self.ndim == 0:
        values, indices = values.reshape(()), indices.reshape(())
    result = CummaxResult if largest else CumminResult
    return result(values, Tensor._wrap(indices))


def cummax(self: Any, dim: int) -> Any:
    """Running maximum and the index where it was found (the last of equal values; NaN
    propagates from where it appears, each later NaN taking the index)."""
    return _cumulative(as_tensor(self), dim, True)


def cummin(self: Any, dim: int) -> Any:
    return _cumulative(as_tensor(self), dim, False)


def _cumulative(self: Tensor, dim: int, largest: bool) -> Any:
    result = _cumulative_extreme(self.detach(), dim, largest)
    if not self.requires_grad:
        return result
    t = _as_line(self)
    d = _scan_dim(self, dim, "cummax" if largest else "cummin")
    indices = result.indices._data.reshape(t.shape)
    values = _ops.gather_values(t, indices, d, repeats=True).reshape(self.shape)
    return type(result)(values, result.indices)


# ------------------------------------------------------------- logcumsumexp
class _LogCumSumExp(Function):
    """log of the running sum of exp along dim (numpy's logaddexp.accumulate in float64).
    Gradient: g_j exp(x_i - out_j) summed over j >= i."""

    saved_inputs, saves_output = (0,), True

    @staticmethod
    def forward(ctx, a, dim):
        x = a.astype(np.float64)
        with np.errstate(all="ignore"):
            out = np.logaddexp.accumulate(x, axis=dim)
        ctx.a, ctx.out, ctx.dim = a, out, dim
        return out.astype(np.float32)

    @staticmethod
    def backward(ctx, g):
        x = np.moveaxis(ctx.a.astype(np.float64), ctx.dim, -1)
        out = np.moveaxis(ctx.out, ctx.dim, -1)
        gy = np.moveaxis(g.astype(np.float64), ctx.dim, -1)
        n = x.shape[-1]
        # grad_i = exp(x_i - out_i) * R_i with R_i = sum_{j>=i} g_j exp(out_i - out_j), by
        # R_i = g_i + exp(out_i - out_{i+1}) R_{i+1}: out never decreases, so no factor
        # exceeds 1 (O(n) memory; a loop over the scanned dim, vectorized over the lines)
        grad = np.zeros_like(x)
        with np.errstate(all="ignore"):
            running = np.zeros(x.shape[:-1])
            for i in range(n - 1, -1, -1):
                if i < n - 1:
                    running = running * np.exp(out[..., i] - out[..., i + 1])
                running = running + gy[..., i]
                grad[..., i] = np.exp(x[..., i] - out[..., i]) * running
        return _ops._contiguous(np.moveaxis(grad, -1, ctx.dim), np.float32), None


def logcumsumexp(self: Any, dim: int) -> Tensor:
    t = as_tensor(self)
    if t.dtype != float32:
        raise NotImplementedError(f"\"logcumsumexp_out_cpu\" not implemented for "
                                  f"'{_ops._RANK_DTYPE_NAMES[t.dtype.kind]}'")
    d = _scan_dim(t, dim, "logcumsumexp")
    if t.ndim == 0:
        return _LogCumSumExp.apply(t.reshape(1), 0).reshape(())
    return _LogCumSumExp.apply(t, d)


# ---------------------------------------------------------------- reductions
def count_nonzero(self: Any, dim: Any = None) -> Tensor:
    t = as_tensor(self)
    dims = _ops.normalize_dims(dim, t.ndim, "count_nonzero")
    return Tensor._wrap(np.asarray(np.count_nonzero(t._data, axis=dims), dtype=np.int64))


def aminmax(self: Any, *, dim: Optional[int] = None, keepdim: bool = False) -> Any:
    """(min, max) over all elements or along dim."""
    t = as_tensor(self)
    if dim is None:
        if t.numel() == 0:
            raise RuntimeError("aminmax(): cannot compute aminmax over an empty dimension as the "
                               "operation has no identity.")
        lo, hi = t.amin(), t.amax()
        if keepdim:
            shape = (1,) * t.ndim
            lo, hi = lo.reshape(shape), hi.reshape(shape)
        return AminmaxResult(lo, hi)
    d = _ops.normalize_dim(dim, t.ndim, "aminmax")
    return AminmaxResult(t.amin(d, keepdim), t.amax(d, keepdim))


def nansum(self: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """sum with NaN counted as 0 (its gradient there is 0)."""
    t = as_tensor(self)
    t = t if dtype is None else t.type(dtype)
    if t.dtype == float32:
        t = t.masked_fill(Tensor._wrap(np.isnan(t._data)), 0.0)
    return t.sum(dim, keepdim)


def nanmean(self: Any, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """mean of the non-NaN elements (NaN where there are none)."""
    t = as_tensor(self)
    t = t if dtype is None else t.type(dtype)
    if t.dtype != float32:
        raise RuntimeError("nanmean(): expected input to have floating point dtype but got "
                           f"{_ops._RANK_DTYPE_NAMES[t.dtype.kind]}")
    count = Tensor._wrap((~np.isnan(t._data)).astype(np.float32)).sum(dim, keepdim)
    return nansum(t, dim, keepdim) / count


def var_mean(input: Any, dim: Any = None, unbiased: Any = True, keepdim: bool = False, *,
             correction: Any = None) -> Any:
    t = as_tensor(input)
    return t.var(dim, unbiased, keepdim, correction=correction), t.mean(dim, keepdim)


def std_mean(input: Any, dim: Any = None, unbiased: Any = True, keepdim: bool = False, *,
             correction: Any = None) -> Any:
    t = as_tensor(input)
    return t.std(dim, unbiased, keepdim, correction=correction), t.mean(dim, keepdim)


def all(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return as_tensor(input).all(dim, keepdim)


def any(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return as_tensor(input).any(dim, keepdim)


def diff(self: Any, n: int = 1, dim: int = -1, prepend: Any = None, append: Any = None) -> Tensor:
    """The n-th forward difference along dim, after prepend / append are joined on."""
    from pyvision_engine.nn.functional import cat

    t = as_tensor(self)
    if t.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    d = _ops.normalize_dim(dim, t.ndim, "diff")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    parts = [p if isinstance(p, Tensor) else None for p in (prepend, append)]
    for i, extra in enumerate((prepend, append)):
        if extra is not None and not isinstance(extra, Tensor):
            shape = list(t.shape)
            shape[d] = 1
            parts[i] = Tensor._wrap(np.full(shape, extra, dtype=t._data.dtype))
    pieces = [p for p in (parts[0], t, parts[1]) if p is not None]
    t = cat(pieces, d) if len(pieces) > 1 else t
    for _ in range(n):
        size = t.shape[d]
        head = t.narrow(d, min(1, size), max(size - 1, 0))
        tail = t.narrow(d, 0, max(size - 1, 0))
        t = head ^ tail if t.dtype == np.bool_ else head - tail
    return t


def trace(self: Any) -> Tensor:
    """Sum of the main diagonal of a matrix (int64 for integer inputs)."""
    t = as_tensor(self)
    if t.ndim != 2:
        raise RuntimeError(f"trace: expected a matrix, but got tensor with dim {t.ndim}")
    if t.dtype == np.bool_:
        raise NotImplementedError("\"trace\" not implemented for 'Bool'")
    k = min(t.shape)
    idx = Tensor._wrap(np.arange(k, dtype=np.int64))
    return t[idx, idx].sum()


# -------------------------------------------------------------- order stats
def _sorted_positions(a: np.ndarray, d: int) -> np.ndarray:
    return np.argsort(a, axis=d, kind="stable")  # NaN last, as torch's sort


def _select_at(t: Tensor, d: int, picked: np.ndarray, keepdim: bool, result: Any) -> Any:
    """Values at the indices ``picked`` (keepdim shape) along d, differentiable, and the
    indices, as the named result."""
    values = _ops.gather_values(t, picked, d)
    idx = picked
    if not keepdim:
        values, idx = values.squeeze(d), np.squeeze(idx, d)
    # (np.asarray keeps a 0-d index 0-d; np.ascontiguousarray would make it 1-d)
    return result(values, Tensor._wrap(np.asarray(idx, dtype=np.int64, order="C")))


class _EvenlyDistributed(Function):
    """A value picked from ``a`` (global median): the gradient is split evenly among the
    elements equal to it (NaN: among the NaNs), as torch's evenly_distribute_backward."""

    saved_inputs, saves_output = (0,), True

    @staticmethod
    def forward(ctx, a, value):
        ctx.a = a
        ctx.value = value
        return np.asarray(value, dtype=a.dtype)

    @staticmethod
    def backward(ctx, g):
        a, v = ctx.a, ctx.value
        mask = np.isnan(a) if np.isnan(v) else (a == v)
        return np.where(mask, g / mask.sum(), np.float32(0)).astype(np.float32), None


def _median(self: Any, dim: Any, keepdim: bool, ignore_nan: bool) -> Any:
    t = as_tensor(self)
    op = "nanmedian" if ignore_nan else "median"
    if dim is None:
        flat = t._data.reshape(-1)
        if flat.size == 0:
            return Tensor._wrap(np.asarray(np.nan, dtype=np.float32)) if t.dtype == float32 else \
                _raise_empty(op)
        values = np.sort(flat, kind="stable")
        nans = int(np.isnan(values).sum()) if t.dtype == float32 else 0
        if nans and not ignore_nan:
            value = np.float32(np.nan)
        else:
            count = flat.size - nans
            value = values[(count - 1) // 2] if count else np.float32(np.nan)
        return _EvenlyDistributed.apply(t, value)
    d = _ops.normalize_dim(dim, t.ndim, op)
    line = _as_line(t)
    a = line._data
    if a.shape[d] == 0:
        raise IndexError(f"{op}(): Expected reduction dim {d} to have non-zero size.")
    order = _sorted_positions(a, d)
    n = a.shape[d]
    if t.dtype == float32:
        nans = np.isnan(a).sum(axis=d, keepdims=True)
        if ignore_nan:
            k = np.maximum((n - nans - 1) // 2, 0)
        else:
            k = np.where(nans > 0, n - nans, (n - 1) // 2)  # the first NaN
    else:
        k = np.full([1 if i == d else s for i, s in enumerate(a.shape)], (n - 1) // 2)
    picked = np.take_along_axis(order, k, axis=d)
    result = NanmedianResult if ignore_nan else MedianResult
    out = _select_at(line, d, picked, keepdim or t.ndim == 0, result)
    if t.ndim == 0:
        return result(out.values.reshape(()), out.indices.reshape(()))
    return out


def _raise_empty(op: str) -> Any:
    raise RuntimeError(f"{op}() input tensor cannot be empty")


def median(self: Any, dim: Optional[int] = None, keepdim: bool = False) -> Any:
    """The lower median (of n values the ((n - 1) // 2)-th smallest); NaN if any is NaN.
    With dim: (values, indices)."""
    return _median(self, dim, keepdim, ignore_nan=False)


def nanmedian(self: Any, dim: Optional[int] = None, keepdim: bool = False) -> Any:
    """median of the non-NaN values (NaN where all are NaN)."""
    return _median(self, dim, keepdim, ignore_nan=True)


def kthvalue(self: Any, k: int, dim: int = -1, keepdim: bool = False) -> Any:
    """The k-th smallest value along dim (k from 1) and its index."""
    t = as_tensor(self)
    d = _ops.normalize_dim(dim, t.ndim, "kthvalue")
    line = _as_line(t)
    n = line.shape[d]
    if n == 0:
        raise IndexError(f"kthvalue(): Expected reduction dim {d} to have non-zero size.")
    if not 1 <= k <= n:
        raise RuntimeError(f"kthvalue(): selected number k out of range for dimension {d}")
    order = _sorted_positions(line._data, d)
    picked = np.take(order, [k - 1], axis=d)
    out = _select_at(line, d, picked, keepdim or t.ndim == 0, KthvalueResult)
    if t.ndim == 0:
        return KthvalueResult(out.values.reshape(()), out.indices.reshape(()))
    return out



# ------------------------------------------------- unique, counting, searching
TENSOR_METHODS += ["unique", "unique_consecutive", "bincount", "histc", "quantile", "nanquantile"]
FUNCTIONS += ["unique", "unique_consecutive", "bincount", "histc", "quantile", "nanquantile",
              "searchsorted", "bucketize"]


def _unique_result(values: np.ndarray, inverse: np.ndarray, counts: np.ndarray,
                   return_inverse: bool, return_counts: bool) -> Any:
    out = [Tensor._wrap(np.asarray(values, order="C"))]
    if return_inverse:
        out.append(Tensor._wrap(np.asarray(inverse, dtype=np.int64, order="C")))
    if return_counts:
        out.append(Tensor._wrap(np.asarray(counts, dtype=np.int64, order="C")))
    return out[0] if len(out) == 1 else tuple(out)


def unique(self: Any, sorted: bool = True, return_inverse: bool = False,  # noqa: A002
           return_counts: bool = False, dim: Optional[int] = None) -> Any:
    """The distinct values (sorted; torch's CPU sorts for sorted=False too), of the flat
    input or the distinct slices along dim; each NaN counts as distinct, as torch's."""
    t = as_tensor(self)
    a = t._data
    if dim is None:
        values, inverse, counts = np.unique(a.reshape(-1), return_inverse=True,
                                            return_counts=True, equal_nan=False)
        return _unique_result(values, inverse.reshape(a.shape), counts, return_inverse,
                              return_counts)
    d = _ops.normalize_dim(dim, t.ndim, "unique")
    values, inverse, counts = np.unique(a, return_inverse=True, return_counts=True, axis=d,
                                        equal_nan=False)
    return _unique_result(values, inverse.reshape(-1), counts, return_inverse, return_counts)


def unique_consecutive(self: Any, return_inverse: bool = False, return_counts: bool = False,
                       dim: Optional[int] = None) -> Any:
    """Each run of equal consecutive values (or slices along dim) collapsed to one."""
    t = as_tensor(self)
    a = t._data
    d = None if dim is None else _ops.normalize_dim(dim, t.ndim, "unique_consecutive")
    lines = a.reshape(-1) if d is None else np.moveaxis(a, d, 0).reshape(a.shape[d], -1)
    n = lines.shape[0]
    if n == 0:
        starts = np.zeros(0, dtype=np.int64)
    else:
        different = lines[1:] != lines[:-1]
        if different.ndim > 1:
            different = different.any(axis=1)
        starts = np.concatenate(([0], np.flatnonzero(different) + 1))
    counts = np.diff(np.concatenate((starts, [n])))
    inverse = np.repeat(np.arange(starts.size), counts)
    if d is None:
        values = lines[starts]
        inverse = inverse.reshape(a.shape)
    else:
        values = np.take(a, starts, axis=d)
    return _unique_result(values, inverse, counts, return_inverse, return_counts)


def bincount(self: Any, weights: Any = None, minlength: int = 0) -> Tensor:
    """Counts of each value of a 1-D non-negative int64 tensor (or the sums of ``weights``
    there: float32, where torch gives float64 for integer weights: the engine has none)."""
    t = as_tensor(self)
    a = t._data
    if a.dtype == float32:
        raise NotImplementedError("\"bincount_cpu\" not implemented for 'Float'")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    if a.ndim != 1 or (a.size and a.min() < 0):
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    w = None
    if weights is not None:
        w = as_tensor(weights)._data
        if w.ndim != 1 or w.shape[0] != a.shape[0]:
            raise RuntimeError("weights should be 1-d and have the same length as input")
        w = w.astype(np.float64)
    out = np.bincount(a.astype(np.int64), weights=w, minlength=minlength)
    return Tensor._wrap(out.astype(np.float32 if w is not None else np.int64))


def histc(self: Any, bins: int = 100, min: float = 0, max: float = 0) -> Tensor:  # noqa: A002
    """Counts in ``bins`` equal bins over [min, max] (the data's range when min == max);
    values outside and NaN are left out, max falls in the last bin."""
    t = as_tensor(self)
    if t.dtype != float32:
        raise NotImplementedError(f"\"histogram_cpu\" not implemented for "
                                  f"'{_ops._RANK_DTYPE_NAMES[t.dtype.kind]}'")
    if bins <= 0:
        raise RuntimeError(f"torch.histogram(): bins must be > 0, but got {bins} for dimension 0")
    if min > max:
        raise RuntimeError("torch.histc: max must be larger than min")
    a = t._data.reshape(-1).astype(np.float64)
    lo, hi = float(min), float(max)
    if lo == hi and a.size:
        lo, hi = float(a.min()), float(a.max())  # (NaN if any is NaN)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise RuntimeError(f"torch.histc: range of [{lo:g}, {hi:g}] is not finite")
    if lo == hi:
            lo, hi = lo - 1, hi + 1
    keep = a[(a >= lo) & (a <= hi)]
    index = np.minimum(((keep - lo) * bins / (hi - lo)).astype(np.int64), bins - 1)
    return Tensor._wrap(np.bincount(index, minlength=bins).astype(np.float32))


def searchsorted(sorted_sequence: Any, input: Any, *, out_int32: bool = False,
                 right: bool = False, side: Optional[str] = None, sorter: Any = None) -> Tensor:
    """For each value, the index where it would be inserted into the sorted innermost dim
    of ``sorted_sequence`` (side 'left': before equal values; 'right' or right=True:
    after). int64 result (out_int32 too: the engine has no int32)."""
    boundaries = as_tensor(sorted_sequence)._data
    scalar = not isinstance(input, Tensor)
    values = np.asarray(input._data if isinstance(input, Tensor) else input)
    if side is not None:
        if side not in ("left", "right"):
            raise RuntimeError(f"torch.searchsorted(): side can only be 'left' or 'right' but "
                               f"got {side}")
        if right and side == "left":
            raise RuntimeError("torch.searchsorted(): side and right can't be set to opposites, "
                               "got side of left while right was True")
        right = side == "right"
    if sorter is not None:
        order = as_tensor(sorter)._data
        if order.shape != boundaries.shape:
            raise RuntimeError("torch.searchsorted(): boundary and sorter must have the same size")
        boundaries = np.take_along_axis(boundaries, order, axis=-1)
    which = "right" if right else "left"
    if boundaries.ndim == 1:
        out = np.searchsorted(boundaries, values, side=which)
    else:
        if scalar or values.shape[:-1] != boundaries.shape[:-1]:
            raise RuntimeError("torch.searchsorted(): boundaries tensor should be 1 dimension or "
                               "the first N-1 dimensions of boundaries tensor and input value "
                               f"tensor must match, but we got boundaries tensor "
                               f"{list(boundaries.shape)} and input value tensor "
                               f"{list(values.shape)}")
        flat_b = boundaries.reshape(-1, boundaries.shape[-1])
        flat_v = values.reshape(-1, values.shape[-1])
        out = np.stack([np.searchsorted(b, v, side=which) for b, v in zip(flat_b, flat_v)])
        out = out.reshape(values.shape)
    return Tensor._wrap(np.asarray(out, dtype=np.int64))


def bucketize(input: Any, boundaries: Any, *, out_int32: bool = False, right: bool = False) -> Tensor:
    """The bucket of each value among 1-D sorted ``boundaries``: right=False gives i with
    boundaries[i-1] < x <= boundaries[i]; right=True, boundaries[i-1] <= x < boundaries[i]."""
    b = as_tensor(boundaries)
    if b.ndim != 1:
        raise RuntimeError(f"boundaries tensor must be 1 dimension, but got dim({b.ndim})")
    return searchsorted(b, input, out_int32=out_int32, right=right)


_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(self: Any, q: Any, dim: Optional[int], keepdim: bool, interpolation: str,
              ignore_nan: bool) -> Tensor:
    from pyvision_engine.nn.functional import cat

    op = "nanquantile" if ignore_nan else "quantile"
    t = as_tensor(self)
    if t.dtype != float32:
        raise RuntimeError(f"{op}() input tensor must be either float or double dtype")
    if t.numel() == 0:
        raise RuntimeError(f"{op}() input tensor must be non-empty")
    if interpolation not in _INTERPOLATIONS:
        raise RuntimeError(f"{op}() interpolation must be one of linear, lower, higher, "
                           f"midpoint or nearest, but got {interpolation}")
    q_scalar = not isinstance(q, Tensor) or q.ndim == 0
    # q and the ranks in float32, as torch (0.8 * 5 is 4 there, not 4.00000006)
    qs = np.atleast_1d(np.asarray(q._data if isinstance(q, Tensor) else q, dtype=np.float32))
    if isinstance(q, Tensor) and q.ndim > 1:
        raise RuntimeError(f"{op}() q must be a scalar or 1D tensor")
    if ((qs < 0) | (qs > 1)).any():
        bad = qs[(qs < 0) | (qs > 1)][0]
        raise RuntimeError(f"{op}() q must be in the range [0, 1] but got {bad:g}" if q_scalar
                           else f"{op}() q values must be in the range [0, 1]")
    if dim is None:
        source, d = t.reshape(-1), 0
    else:
        d = _ops.normalize_dim(dim, t.ndim, op)
        source = _as_line(t)
    ordered = source.sort(d).values  # NaN last
    n = source.shape[d]
    nan_count = np.isnan(source._data).sum(axis=d, keepdims=True)
    valid = n - nan_count
    outs = []
    for qv in qs:
        rank = qv * (valid - 1).astype(np.float32)
        # a NaN (quantile) or no valid value (nanquantile) reads the last, NaN, element
        last = (valid == 0) if ignore_nan else (nan_count > 0)
        rank = np.where(last, np.float32(n - 1), rank)
        lo = np.floor(rank).astype(np.int64)
        hi = np.ceil(rank).astype(np.int64)
        if interpolation == "nearest":
            lo = hi = np.round(rank).astype(np.int64)  # (half to even, as torch)
        v_lo = _ops.gather_values(ordered, lo, d)
        v_hi = _ops.gather_values(ordered, hi, d)
        if interpolation in ("lower", "nearest"):
            out = v_lo
        elif interpolation == "higher":
            out = v_hi
        else:
            weight = np.float32(0.5) if interpolation == "midpoint" else \
                np.asarray(rank - lo, dtype=np.float32)
            out = v_lo + (v_hi - v_lo) * Tensor._wrap(np.asarray(weight, dtype=np.float32))
        if dim is None:
            out = out.reshape((1,) * t.ndim if keepdim else ())
        elif not keepdim:
            out = out.squeeze(d)
        elif t.ndim == 0:
            out = out.reshape(())
        outs.append(out)
    if q_scalar:
        return outs[0]
    return cat([o.unsqueeze(0) for o in outs], 0)


def quantile(self: Any, q: Any, dim: Optional[int] = None, keepdim: bool = False, *,
             interpolation: str = "linear") -> Tensor:
    """The q-th quantiles (q a float or a 1-D tensor, whose dim comes first in the result)
    of the flat input or along dim; NaN where a NaN is present."""
    return _quantile(self, q, dim, keepdim, interpolation, ignore_nan=False)


def nanquantile(self: Any, q: Any, dim: Optional[int] = None, keepdim: bool = False, *,
                interpolation: str = "linear") -> Tensor:
    """quantile of the non-NaN values (NaN where all are NaN)."""
    return _quantile(self, q, dim, keepdim, interpolation, ignore_nan=True)
