"""Tensor selection and rearrangement methods, torch's names and rules: narrow, select,
movedim / moveaxis, swapaxes / swapdims, unflatten, tile, broadcast_to, take,
take_along_dim, masked_select, tensor_split, split_with_sizes, repeat_interleave, unfold,
type_as, ravel, nelement, ndimension, is_floating_point, is_complex.

Each is built from the engine's differentiable ops (indexing, permute, reshape,
repeat, expand), so the gradients are theirs: a selected element gets its upstream
gradient, repeats add up. Installed on Tensor at the end of tensor.py (TENSOR_METHODS);
the top-level functions are FUNCTIONS.
"""

from __future__ import annotations

import operator
import warnings
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine import _ops
from pyvision_engine.autograd import Function, no_grad
from pyvision_engine.tensor import Tensor, _normalize_dtype, _tensor_arg, as_tensor, float32, int64

TENSOR_METHODS = [
    "narrow", "select", "movedim", "moveaxis", "swapaxes", "swapdims", "unflatten", "tile",
    "broadcast_to", "take", "take_along_dim", "masked_select", "tensor_split",
    "split_with_sizes", "repeat_interleave", "unfold", "type_as", "ravel", "nelement",
    "ndimension", "is_floating_point", "is_complex", "index_add", "index_add_", "index_fill",
    "index_fill_", "index_copy", "index_copy_", "scatter_add", "scatter_add_", "scatter_reduce",
    "scatter_reduce_",
]
FUNCTIONS = [
    "narrow", "select", "movedim", "moveaxis", "swapaxes", "swapdims", "unflatten", "tile",
    "broadcast_to", "take", "take_along_dim", "masked_select", "tensor_split",
    "split_with_sizes", "repeat_interleave", "ravel", "is_floating_point", "is_complex",
    "index_add", "index_fill", "index_copy", "scatter_add", "scatter_reduce",
]


def _int(value: Any) -> int:
    return operator.index(value.item() if isinstance(value, Tensor) else value)


def _along(ndim: int, d: int, index: Any) -> Tuple[Any, ...]:
    return (slice(None),) * d + (index,)


def narrow(self: Tensor, dim: int, start: Any, length: int) -> Tensor:
    """Elements [start, start + length) along dim (start may be negative or a 0-d tensor)."""
    if self.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    d = _ops.normalize_dim(dim, self.ndim, "narrow")
    size, start, length = self.shape[d], _int(start), _int(length)
    if length < 0:
        raise RuntimeError("narrow(): length must be non-negative.")
    if not -size <= start <= size:
        raise IndexError(f"start out of range (expected to be in range of [{-size}, {size}], "
                         f"but got {start})")
    if start < 0:
        start += size
    if start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return self[_along(self.ndim, d, slice(start, start + length))]


def select(self: Tensor, dim: int, index: Any) -> Tensor:
    """The slice at ``index`` along dim (that dim removed)."""
    if self.ndim == 0:
        raise IndexError("select() cannot be applied to a 0-dim tensor.")
    d = _ops.normalize_dim(dim, self.ndim, "select")
    i, size = _int(index), self.shape[d]
    if not -size <= i < size:
        raise IndexError(f"select(): index {i} out of range for tensor of size "
                         f"{list(self.shape)} at dimension {d}")
    return self[_along(self.ndim, d, i % size)]


def _dims_list(dims: Any) -> List[int]:
    return list(dims) if isinstance(dims, (tuple, list)) else [dims]


def movedim(self: Tensor, source: Any, destination: Any) -> Tensor:
    """The dims ``source`` moved to the positions ``destination``; the others keep their
    order."""
    src, dst = _dims_list(source), _dims_list(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({src} dims) "
                           f"should contain the same number of dims as destination ({dst} dims)")
    n = self.ndim
    src_n = [_ops.normalize_dim(s, n, "movedim") for s in src]
    dst_n = [_ops.normalize_dim(s, n, "movedim") for s in dst]
    for name, given, normal in (("source", src, src_n), ("destination", dst, dst_n)):
        if len(set(normal)) != len(normal):
            raise RuntimeError(f"movedim: repeated dim in `{name}` ({given})")
    if n == 0:
        return self.reshape(())
    order = [None] * n
    for s, t in zip(src_n, dst_n):
        order[t] = s
    rest = iter(d for d in range(n) if d not in src_n)
    order = [next(rest) if o is None else o for o in order]
    return self.permute(*order)


moveaxis = movedim


def swapaxes(self: Tensor, axis0: int, axis1: int) -> Tensor:
    return self.transpose(axis0, axis1)


def swapdims(self: Tensor, dim0: int, dim1: int) -> Tensor:
    return self.transpose(dim0, dim1)


def unflatten(self: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    """Dim ``dim`` split into ``sizes`` (one may be -1)."""
    if self.ndim == 0:
        raise RuntimeError("unflatten: Dimension specified as 0 but tensor has no dimensions")
    d = _ops.normalize_dim(dim, self.ndim, "unflatten")
    sizes = [_int(s) for s in sizes]
    if not sizes:
        raise RuntimeError("unflatten: sizes must be non-empty")
    n = self.shape[d] if self.ndim else 1
    known = int(np.prod([s for s in sizes if s != -1]))
    if sizes.count(-1) > 1 or (-1 not in sizes and known != n) or \
            (-1 in sizes and (known == 0 or n % known)):
        raise RuntimeError(f"unflatten: Provided sizes {sizes} don't multiply up to the size of "
                           f"dim {d} ({n}) in the input tensor")
    sizes = [n // known if s == -1 else s for s in sizes]
    return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1:])


def tile(self: Tensor, *dims: Any) -> Tensor:
    """repeat with ``dims`` padded with leading 1s to the tensor's rank."""
    reps = _ops.shape_arg(dims)
    reps = (1,) * (self.ndim - len(reps)) + tuple(reps)
    for r, s in zip(reps[len(reps) - self.ndim:], self.shape):
        if r < 0:
            shape = [a * b for a, b in zip(reps, (1,) * (len(reps) - self.ndim) + self.shape)]
            raise RuntimeError(f"Trying to create tensor with negative dimension {r * s}: {shape}")
    return self.repeat(*reps)


def broadcast_to(self: Tensor, size: Sequence[int]) -> Tensor:
    return self.expand(*tuple(size))


def _long_index(index: Any, op: str) -> np.ndarray:
    idx = _tensor_arg(index, op, "index")._data
    if idx.dtype != int64:
        raise RuntimeError(f"{op}(): Expected a long tensor for index, but got "
                           f"{_ops._RANK_DTYPE_NAMES[idx.dtype.kind]}")
    return idx


def take(self: Tensor, index: Any) -> Tensor:
    """The input read as 1-D at ``index`` (int64, any shape, negative from the end)."""
    idx = _long_index(index, "take")
    n = self.numel()
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"out of range: tried to access index {int(idx[bad].flat[0])} on a "
                         f"tensor of {n} elements.")
    return self.reshape(-1)[Tensor._wrap(np.asarray(idx % max(n, 1), dtype=np.int64))]


def take_along_dim(self: Tensor, indices: Any, dim: Optional[int] = None) -> Tensor:
    """gather with torch's broadcasting of indices and input (dim None: on the flat
    input)."""
    idx = _long_index(indices, "take_along_dim")
    if dim is None:
        return take(self, Tensor._wrap(idx.reshape(-1)))
    d = _ops.normalize_dim(dim, self.ndim, "take_along_dim")
    if idx.ndim != self.ndim:
        raise RuntimeError(f"torch.take_along_dim(): input and indices should have the same "
                           f"number of dimensions, but got {self.ndim} dimensions for input, "
                           f"and {idx.ndim} dimensions for indices")
    size = self.shape[d]
    if idx.size and (idx.min() < -size or idx.max() >= size):
        raise IndexError(f"take_along_dim(): index out of range for dimension {d} of size {size}")
    shape_self = list(np.broadcast_shapes(self.shape[:d] + (1,) + self.shape[d + 1:],
                                          idx.shape[:d] + (1,) + idx.shape[d + 1:]))
    shape_idx = list(shape_self)
    shape_self[d], shape_idx[d] = size, idx.shape[d]
    source = self.expand(*shape_self) if tuple(shape_self) != self.shape else self
    idx = np.ascontiguousarray(np.broadcast_to(idx % max(size, 1), shape_idx))
    return _ops.gather_values(source, idx, d, repeats=True)


def masked_select(self: Tensor, mask: Any) -> Tensor:
    """The elements where the bool ``mask`` (broadcast with the input) is True, as 1-D."""
    m = _tensor_arg(mask, "masked_select", "mask")._data
    if m.dtype != np.bool_:
        raise RuntimeError("masked_select: expected BoolTensor for mask")
    try:
        shape = np.broadcast_shapes(self.shape, m.shape)
    except ValueError:
        raise _ops.broadcast_error(m.shape, self.shape) from None
    source = self.expand(*shape) if shape != self.shape else self
    full = np.ascontiguousarray(np.broadcast_to(m, shape))
    if not shape:  # (0-d: as a 1-element line, which the engine's indexing takes)
        source, full = source.reshape(1), full.reshape(1)
    return source[Tensor._wrap(full)].reshape(-1)


def tensor_split(self: Tensor, indices_or_sections: Any, dim: int = 0) -> Tuple[Tensor, ...]:
    """n nearly equal parts (the first size % n one larger), or the parts between the
    given indices (a list, or a 1-D int64 tensor; a 0-d one is a section count)."""
    if self.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a "
                           "tensor with 0 dims")
    d = _ops.normalize_dim(dim, self.ndim, "tensor_split")
    n = self.shape[d]
    spec = indices_or_sections
    if isinstance(spec, Tensor):
        if spec._data.dtype != int64:
            raise RuntimeError("tensor_split expected tensor_indices_or_sections to have "
                               f"Long dtype, but got {_ops._RANK_DTYPE_NAMES[spec._data.dtype.kind]}")
        spec = spec._data.item() if spec._data.ndim == 0 else spec._data.tolist()
    if isinstance(spec, (list, tuple)):
        bounds = [0] + [_int(i) for i in spec] + [n]
        parts = []
        for a, b in zip(bounds, bounds[1:]):
            a, b = min(max(a if a >= 0 else a + n, 0), n), min(max(b if b >= 0 else b + n, 0), n)
            parts.append(self[_along(self.ndim, d, slice(a, max(a, b)))])
        return tuple(parts)
    sections = _int(spec)
    if sections <= 0:
        raise RuntimeError(f"number of sections must be larger than 0, got {sections}")
    base, extra = divmod(n, sections)
    sizes = [base + 1] * extra + [base] * (sections - extra)
    return split_with_sizes(self, sizes, d)


def split_with_sizes(self: Tensor, split_sizes: Sequence[int], dim: int = 0) -> Tuple[Tensor, ...]:
    return self.split([_int(s) for s in split_sizes], dim)


def repeat_interleave(self: Tensor, repeats: Any = None, dim: Optional[int] = None, *,
                      output_size: Optional[int] = None) -> Tensor:
    """Each element (along dim; of the flat input when dim is None) repeated ``repeats``
    times (an int, or an int64 tensor with one count per element). ``repeat_interleave(t)``
    of a 1-D int64 t: each index i repeated t[i] times."""
    if repeats is None:  # torch.repeat_interleave(repeats)
        counts = self._data
        if counts.ndim != 1 or counts.dtype != int64:
            raise RuntimeError("repeat_interleave only accept 1D vector as repeat")
        if (counts < 0).any():
            raise RuntimeError("repeats can not be negative")
        return Tensor._wrap(np.repeat(np.arange(counts.size, dtype=np.int64), counts))
    source = self.reshape(-1) if dim is None else self
    d = 0 if dim is None else _ops.normalize_dim(dim, self.ndim, "repeat_interleave")
    size = source.shape[d] if source.ndim else 1
    if isinstance(repeats, Tensor):
        counts = repeats._data
        if counts.dtype != int64:
            raise RuntimeError("repeat_interleave: repeats has to be Long tensor")
        if counts.ndim > 1:
            raise RuntimeError("repeats must be 0-dim or 1-dim tensor")
        counts = counts.reshape(-1)
        if counts.size == 1:
            counts = np.full(size, counts[0])
        elif counts.size != size:
            raise RuntimeError(f"repeats must have the same size as input along dim, but got "
                               f"repeats.size(0) = {counts.size} and input.size({d}) = {size}")
    else:
        counts = np.full(size, _int(repeats))
    if (counts < 0).any():
        raise RuntimeError("repeats can not be negative" if isinstance(repeats, Tensor)
                           else "Repeats must be non-negative")
    if output_size is not None and int(counts.sum()) != output_size:
        raise RuntimeError(f"repeat_interleave: output_size {output_size} is not the sum of "
                           f"repeats {int(counts.sum())}")
    if source.ndim == 0:
        source = source.reshape(1)
    index = np.repeat(np.arange(size, dtype=np.int64), counts)
    return source.index_select(d, Tensor._wrap(index))


def unfold(self: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """Windows of ``size`` every ``step`` along ``dimension``: that dim becomes the window
    count and a new last dim of ``size`` holds each window."""
    ndim = self.ndim
    d = _ops.normalize_dim(dimension, ndim, "unfold")
    size, step = _int(size), _int(step)
    n = self.shape[d] if ndim else 1
    if size > n:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {n} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    if size < 0:
        raise RuntimeError(f"size is {size} but must be >= 0")
    source = self.reshape(1) if ndim == 0 else self
    count = (n - size) // step + 1
    index = (np.arange(count)[:, None] * step + np.arange(size)[None, :]).reshape(-1)
    picked = source.index_select(d, Tensor._wrap(index.astype(np.int64)))
    shape = source.shape[:d] + (count, size) + source.shape[d + 1:]
    out = picked.reshape(shape).movedim(d + 1, -1)
    return out.reshape(size) if ndim == 0 else out


def type_as(self: Tensor, other: Any) -> Tensor:
    return self.to(_normalize_dtype(as_tensor(other).dtype))


def ravel(self: Tensor) -> Tensor:
    return self.reshape(-1)


def nelement(self: Tensor) -> int:
    return self.numel()


def ndimension(self: Tensor) -> int:
    return self.ndim


def is_floating_point(self: Any) -> bool:
    return as_tensor(self).dtype == float32


def is_complex(self: Any) -> bool:
    return False  # (the engine has no complex dtype)


# ------------------------------------------------------- index_* and scatter_* writes
def _index_vector(self: Tensor, dim: int, index: Any, op: str) -> Tuple[int, np.ndarray]:
    """dim normalized and index as a 1-D int64 array checked against self's size there."""
    idx = _tensor_arg(index, op, "index")._data
    if idx.dtype != int64:
        raise RuntimeError(f"{op}(): Expected dtype int32/int64 for index but got: "
                           f"{_ops._RANK_DTYPE_NAMES[idx.dtype.kind]}")
    if idx.ndim > 1:
        raise IndexError(f"{op}(): Index should have dimension 1 or 0 (got {idx.ndim})")
    d = _ops.normalize_dim(dim, self.ndim, op)
    size = self.shape[d] if self.ndim else 1
    bad = idx[(idx < 0) | (idx >= size)]
    if bad.size:
        raise IndexError(f"index {int(bad.flat[0])} is out of bounds for dimension {d} with "
                         f"size {size}")
    return d, idx.reshape(-1)


def _expanded_index(self: Tensor, d: int, idx: np.ndarray, source: Tensor, op: str) -> np.ndarray:
    """index along dim d spread over source's shape (scatter's addressing), after torch's
    shape checks of source against self."""
    if source._data.dtype != self._data.dtype:
        raise RuntimeError(f"{op}(): self ({_ops._RANK_DTYPE_NAMES[self._data.dtype.kind]}) and "
                           f"source ({_ops._RANK_DTYPE_NAMES[source._data.dtype.kind]}) must have "
                           "the same scalar type")
    src_shape = source.shape if source.ndim else (1,)
    self_shape = self.shape if self.ndim else (1,)
    n = src_shape[d] if len(src_shape) > d else 1
    if idx.size != n:
        raise RuntimeError(f"{op}(): Number of indices ({idx.size}) should be equal to "
                           f"source.size(dim): ({n}), for dim: {d}")
    if len(src_shape) != len(self_shape) or any(a != b for i, (a, b) in
                                                enumerate(zip(src_shape, self_shape)) if i != d):
        raise RuntimeError(f"{op}(): source {list(source.shape)} must have self's shape "
                           f"{list(self.shape)} apart from dimension {d}")
    view = [1] * len(src_shape)
    view[d] = idx.size
    return np.ascontiguousarray(np.broadcast_to(idx.reshape(view), src_shape))


def index_add(self: Tensor, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> Tensor:
    """self with ``alpha * source`` added at ``index`` along dim (repeats add up)."""
    d, idx = _index_vector(self, dim, index, "index_add_")
    source = _tensor_arg(source, "index_add", "source")
    full = _expanded_index(self, d, idx, source, "index_add_")
    if alpha == 1:
        scaled = source
    elif self._data.dtype == float32:
        scaled = source * alpha
    else:  # (torch accepts a float alpha here and truncates alpha * source)
        scaled = Tensor._wrap((source._data * alpha).astype(self._data.dtype))
    return _scatter_reduce(self, d, full, scaled, "sum", True)


def index_copy(self: Tensor, dim: int, index: Any, source: Any) -> Tensor:
    """self with source's slices written at ``index`` along dim."""
    d, idx = _index_vector(self, dim, index, "index_copy_")
    source = _tensor_arg(source, "index_copy", "source")
    n = source.shape[d] if source.ndim > d else 1
    if idx.size != n:
        raise IndexError(f"index_copy_(): Number of indices ({idx.size}) should be equal to "
                         f"source.size(dim) ({n})")
    full = _expanded_index(self, d, idx, source, "index_copy_")
    if self.ndim == 0:
        return self.reshape(1).scatter(0, Tensor._wrap(full.reshape(1)), source.reshape(1)).reshape(())
    return self.scatter(d, Tensor._wrap(full), source)


def index_fill(self: Tensor, dim: int, index: Any, value: Any) -> Tensor:
    """self with ``value`` (a number or a 0-d tensor) at ``index`` along dim."""
    d, idx = _index_vector(self, dim, index, "index_fill_")
    if isinstance(value, Tensor) and value.ndim != 0:
        raise RuntimeError("index_fill_ only supports a 0-dimensional value tensor, but got "
                           f"tensor with {value.ndim} dimension(s).")
    mask = np.zeros(self.shape, dtype=bool)
    mask[_along(self.ndim, d, idx) if self.ndim else ()] = True
    if not isinstance(value, Tensor) and self._data.dtype != float32:
        value = np.asarray(value).astype(self._data.dtype).item()  # (torch casts: 1.5 -> 1)
    return self.masked_fill(Tensor._wrap(mask), value)


class _ScatterReduce(Function):
    """``base`` with src[region] reduced in at ``key`` ('sum', 'prod', 'mean', 'amax',
    'amin'; include_self: whether base's value takes part). Gradients: torch's
    scatter_reduce_backward (prod: exclusive products, zeros included; amax / amin: split
    evenly among the elements equal to the result)."""

    saved_inputs, saves_output = (0, 1), True

    @staticmethod
    def _reduce(base, src, key, reduce, include_self):
        out = base.copy()
        scattered = np.zeros(base.shape, dtype=bool)
        scattered[key] = True
        if not include_self:
            init = {"sum": 0, "mean": 0, "prod": 1}.get(reduce)
            if init is None:
                info = np.finfo(out.dtype) if out.dtype == float32 else np.iinfo(out.dtype) \
                    if out.dtype != np.bool_ else None
                init = (True if reduce == "amin" else False) if info is None else \
                    (-np.inf if reduce == "amax" else np.inf) if out.dtype == float32 else \
                    (info.min if reduce == "amax" else info.max)
            out[scattered] = init
        ufunc = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum,
                 "amin": np.minimum}[reduce]
        ufunc.at(out, key, src)
        if reduce == "mean":
            count = np.full(base.shape, 1 if include_self else 0, dtype=np.int64)
            np.add.at(count, key, 1)
            count[count == 0] = 1
            out = out / count if out.dtype == float32 else np.floor_divide(out, count)
        return np.asarray(out, dtype=base.dtype), scattered

    @classmethod
    def forward(cls, ctx, base, src, key, region, reduce, include_self):
        values = src[region]
        with np.errstate(all="ignore"):
            out, scattered = cls._reduce(base, values, key, reduce, include_self)
        ctx.base, ctx.values, ctx.out, ctx.scattered = base, values, out, scattered
        ctx.key, ctx.region, ctx.src_shape = key, region, src.shape
        ctx.reduce, ctx.include_self = reduce, include_self
        return out

    @classmethod
    def backward(cls, ctx, g):
        base, src, out, key, reduce = ctx.base, ctx.values, ctx.out, ctx.key, ctx.reduce
        with np.errstate(all="ignore"):
            if reduce == "sum":
                g_self, g_src = g, g[key]
            elif reduce == "mean":
                count = np.full(base.shape, 1.0 if ctx.include_self else 0.0, dtype=np.float32)
                np.add.at(count, key, 1.0)
                count[count == 0] = 1.0
                g_self = g / count
                g_src = g[key] / count[key]
            elif reduce == "prod":
                masked_self = np.where(base == 0, np.float32(1), base)
                masked_result = cls._reduce(masked_self, src, key, reduce, ctx.include_self)[0]
                g_self = g * masked_result / masked_self
                src_zero = src == 0
                zeros_at = np.zeros(base.shape, dtype=np.float32)
                np.add.at(zeros_at, key, src_zero.astype(np.float32))
                single_zero = src_zero & (zeros_at[key] == 1)
                masked_src = np.where(single_zero, np.float32(1), src)
                masked_src_result = cls._reduce(base, masked_src, key, reduce, ctx.include_self)[0]
                g_src = np.where(single_zero, (g * masked_src_result)[key],
                                 (g * out)[key] / np.where(src_zero, np.float32(1), src))
            else:  # amax, amin
                value = out[key]
                self_is = (base == out).astype(np.float32)
                src_is = (src == value).astype(np.float32)
                n = self_is.copy()
                np.add.at(n, key, src_is)
                distributed = g / n
                g_self = self_is * distributed
                g_src = src_is * distributed[key]
            if not ctx.include_self:
                g_self = np.where(ctx.scattered, np.float32(0), g_self)
        grad_src = None
        if ctx.needs_input_grad[1]:
            grad_src = np.zeros(ctx.src_shape, dtype=np.float32)
            grad_src[ctx.region] = g_src
        return (np.asarray(g_self, np.float32) if ctx.needs_input_grad[0] else None, grad_src,
                None, None, None, None)


_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _scatter_reduce(self: Tensor, d: int, idx: np.ndarray, src: Tensor, reduce: str,
                    include_self: bool) -> Tensor:
    if self.ndim == 0:
        out = _scatter_reduce(self.reshape(1), 0, idx.reshape(1), src.reshape(1), reduce,
                              include_self)
        return out.reshape(())
    region = tuple(slice(0, n) for n in idx.shape)
    return _ScatterReduce.apply(self, src, _ops.along_dim_key(idx, d), region, reduce,
                                bool(include_self))


def scatter_reduce(self: Tensor, dim: int, index: Any, src: Any, reduce: str, *,
                   include_self: bool = True) -> Tensor:
    """torch.scatter_reduce: src's elements reduced into self at index along dim."""
    if reduce not in _REDUCTIONS:
        raise RuntimeError("reduce argument must be either sum, prod, mean, amax or amin, got "
                           f"{reduce}")
    src = _tensor_arg(src, "scatter_reduce", "src")
    idx = _tensor_arg(index, "scatter_reduce", "index")._data
    if src._data.dtype != self._data.dtype:
        raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
    d = _ops.normalize_dim(dim, self.ndim, "scatter_reduce")
    if self.ndim:
        _ops.check_along_dim("scatter_reduce", self.shape, idx, d, src.shape)
    return _scatter_reduce(self, d, idx, src, reduce, include_self)


def scatter_add(self: Tensor, dim: int, index: Any, src: Any) -> Tensor:
    """self with src's elements added at index along dim (repeats add up)."""
    return scatter_reduce(self, dim, index, src, "sum")


def _in_place(out_of_place: Any) -> Any:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        others = [a for a in list(args) + list(kwargs.values()) if isinstance(a, Tensor)]
        return self._apply_inplace(lambda t: out_of_place(t, *args, **kwargs), *others,
                                   keep_old=True)
    method.__name__ = out_of_place.__name__ + "_"
    method.__doc__ = f"In-place {out_of_place.__name__} (returns self)."
    return method


index_add_ = _in_place(index_add)
index_copy_ = _in_place(index_copy)
index_fill_ = _in_place(index_fill)
scatter_add_ = _in_place(scatter_add)
scatter_reduce_ = _in_place(scatter_reduce)


class _ScatterNoDerivative(Function):
    """scatter(..., reduce=): torch records it but has no derivative (backward raises)."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, base, src, values):
        return values

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("derivative for aten::scatter is not implemented")


def scatter_with_reduce(self: Tensor, dim: int, index: Any, src: Any, reduce: str) -> Tensor:
    """torch.scatter(..., reduce='add' | 'multiply') (its deprecated form of scatter_reduce
    with include_self=True); src a tensor or a number."""
    if reduce not in ("add", "multiply"):
        raise RuntimeError("reduce argument must be either add or multiply.")
    idx = _tensor_arg(index, "scatter", "index")._data
    if isinstance(src, Tensor):
        warnings.warn("The reduce argument of torch.scatter with Tensor src is deprecated and "
                      "will be removed in a future PyTorch release. Use torch.scatter_reduce "
                      "instead for more reduction options.", UserWarning, stacklevel=3)
        source = src
    else:
        source = Tensor._wrap(np.full(idx.shape, src, dtype=self._data.dtype))
    with no_grad():
        out = scatter_reduce(self, dim, index, source, "sum" if reduce == "add" else "prod")
    return _ScatterNoDerivative.apply(self, source, out._data)
