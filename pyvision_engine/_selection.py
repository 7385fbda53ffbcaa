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
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine import _ops
from pyvision_engine.autograd import Function
from pyvision_engine.tensor import Tensor, _normalize_dtype, _tensor_arg, as_tensor, float32, int64

TENSOR_METHODS = [
    "narrow", "select", "movedim", "moveaxis", "swapaxes", "swapdims", "unflatten", "tile",
    "broadcast_to", "take", "take_along_dim", "masked_select", "tensor_split",
    "split_with_sizes", "repeat_interleave", "unfold", "type_as", "ravel", "nelement",
    "ndimension", "is_floating_point", "is_complex",
]
FUNCTIONS = [
    "narrow", "select", "movedim", "moveaxis", "swapaxes", "swapdims", "unflatten", "tile",
    "broadcast_to", "take", "take_along_dim", "masked_select", "tensor_split",
    "split_with_sizes", "repeat_interleave", "ravel", "is_floating_point", "is_complex",
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


class _TakeAlong(Function):
    """take_along_axis whose backward adds repeated indices up (gather's may not)."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, indices, dim):
        ctx.shape, ctx.indices, ctx.dim = a.shape, indices, dim
        return np.asarray(np.take_along_axis(a, indices, axis=dim), order="C")

    @staticmethod
    def backward(ctx, g):
        grad = np.zeros(ctx.shape, dtype=np.float32)
        full = list(np.ix_(*[np.arange(s) for s in g.shape]))
        full[ctx.dim] = ctx.indices
        np.add.at(grad, tuple(full), g)
        return grad, None, None


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
    return _TakeAlong.apply(source, idx, d)


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
    return source[Tensor._wrap(np.ascontiguousarray(np.broadcast_to(m, shape)))].reshape(-1)


def tensor_split(self: Tensor, indices_or_sections: Any, dim: int = 0) -> Tuple[Tensor, ...]:
    """n nearly equal parts (the first size % n one larger), or the parts between the
    given indices (a list, or a 1-D int64 tensor; a 0-d one is a section count)."""
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
