"""torch-style top-level functions: ``pve.stack``, ``pve.where``, ``pve.randn``, ... Thin
wrappers over Tensor methods and nn.functional, so each has one implementation."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from pyvision_engine import _ops
from pyvision_engine.random import default_generator
from pyvision_engine.tensor import Tensor, _normalize_dtype, as_tensor, float32

__all__ = [
    "stack", "where", "clamp", "clip", "flatten", "exp", "log", "sqrt", "abs", "sum", "mean",
    "max", "min", "argmax", "argmin", "relu", "sigmoid", "tanh", "softmax", "log_softmax",
    "mm", "bmm", "randn", "rand", "randint", "topk", "sort", "reshape", "permute", "transpose",
    "squeeze", "unsqueeze", "split", "chunk", "is_tensor", "numel", "isnan", "isfinite",
    "allclose",
]


def stack(tensors: Sequence[Any], dim: int = 0) -> Tensor:
    """Join tensors of equal shape along a new dimension ``dim``."""
    from pyvision_engine.nn.functional import cat

    items = [as_tensor(t) for t in tensors]
    if not items:
        raise RuntimeError("stack expects a non-empty TensorList")
    for i, t in enumerate(items[1:], 1):
        if t.shape != items[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(items[0].shape)} at entry 0 and {list(t.shape)} at entry {i}")
    d = _ops.normalize_dim(dim, items[0].ndim + 1, "stack")
    return cat([t.unsqueeze(d) for t in items], dim=d)


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """``input`` where ``condition`` is true, else ``other`` (broadcasting; differentiable)."""
    cond = condition._data if isinstance(condition, Tensor) else np.asarray(condition)
    if cond.dtype != np.bool_:
        raise RuntimeError("where expected condition to be a boolean tensor, but got a tensor "
                           f"with dtype {_ops._RANK_DTYPE_NAMES.get(cond.dtype.kind, cond.dtype)}")
    a = input if isinstance(input, Tensor) else Tensor._wrap(np.asarray(input, dtype=np.float32))
    b = other if isinstance(other, Tensor) else Tensor._wrap(np.asarray(other, dtype=np.float32))
    return _ops.Where.apply(cond, a, b)


def clamp(input: Any, min: Any = None, max: Any = None) -> Tensor:
    return as_tensor(input).clamp(min, max)


clip = clamp


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return as_tensor(input).flatten(start_dim, end_dim)


def exp(input: Any) -> Tensor:
    return as_tensor(input).exp()


def log(input: Any) -> Tensor:
    return as_tensor(input).log()


def sqrt(input: Any) -> Tensor:
    return as_tensor(input).sqrt()


def abs(input: Any) -> Tensor:  # noqa: A001  (torch's name)
    return as_tensor(input).abs()


def sum(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A001
    return as_tensor(input).sum(dim, keepdim)


def mean(input: Any, dim: Any = None, keepdim: bool = False) -> Tensor:
    return as_tensor(input).mean(dim, keepdim)


def max(input: Any, dim: Any = None, keepdim: bool = False):  # noqa: A001
    return as_tensor(input).max(dim, keepdim)


def min(input: Any, dim: Any = None, keepdim: bool = False):  # noqa: A001
    return as_tensor(input).min(dim, keepdim)


def argmax(input: Any, dim: Optional[int] = None, keepdim: bool = False) -> Tensor:
    return as_tensor(input).argmax(dim, keepdim)


def argmin(input: Any, dim: Optional[int] = None, keepdim: bool = False) -> Tensor:
    return as_tensor(input).argmin(dim, keepdim)


def relu(input: Any) -> Tensor:
    return as_tensor(input).relu()


def sigmoid(input: Any) -> Tensor:
    return as_tensor(input).sigmoid()


def tanh(input: Any) -> Tensor:
    return as_tensor(input).tanh()


def softmax(input: Any, dim: int) -> Tensor:
    return as_tensor(input).softmax(dim)


def log_softmax(input: Any, dim: int) -> Tensor:
    return as_tensor(input).log_softmax(dim)


def mm(input: Any, mat2: Any) -> Tensor:
    return as_tensor(input).mm(as_tensor(mat2))


def bmm(input: Any, mat2: Any) -> Tensor:
    return as_tensor(input).bmm(as_tensor(mat2))


def topk(input: Any, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    return as_tensor(input).topk(k, dim, largest, sorted)


def sort(input: Any, dim: int = -1, descending: bool = False, stable: bool = False):
    return as_tensor(input).sort(dim, descending, stable)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from the engine's generator (seeded by manual_seed)."""
    _float_only(dtype, "normal_kernel_cpu")
    values = default_generator().standard_normal(_ops.shape_arg(size))
    return Tensor(values.astype(_normalize_dtype(dtype or float32)), requires_grad=requires_grad)


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples on [0, 1) from the engine's generator."""
    _float_only(dtype, "check_uniform_bounds")
    values = default_generator().random(_ops.shape_arg(size))
    return Tensor(values.astype(_normalize_dtype(dtype or float32)), requires_grad=requires_grad)


def _float_only(dtype: Any, kernel: str) -> None:
    """torch samples normal / uniform values only into floating point tensors."""
    if dtype is not None and _normalize_dtype(dtype) != float32:
        name = _ops._RANK_DTYPE_NAMES.get(_normalize_dtype(dtype).kind, str(dtype))
        raise NotImplementedError(f'"{kernel}" not implemented for \'{name}\'')


def randint(low: int, high: Any = None, size: Sequence[int] = (), dtype: Any = None) -> Tensor:
    """Integers in [low, high) (or [0, low) given one bound: ``randint(high, size)`` as
    torch's), int64 by default."""
    if isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    values = default_generator().integers(low, high, size=tuple(size))
    target = _normalize_dtype(dtype) if dtype is not None else np.dtype(np.int64)
    return Tensor(np.asarray(values, dtype=target if target != float32 else np.float32))


def reshape(input: Any, shape: Sequence[int]) -> Tensor:
    """``input`` with a new shape (one dim may be -1); a view when possible."""
    return as_tensor(input).reshape(shape)


def permute(input: Any, dims: Sequence[int]) -> Tensor:
    return as_tensor(input).permute(*dims)


def transpose(input: Any, dim0: int, dim1: int) -> Tensor:
    return as_tensor(input).transpose(dim0, dim1)


def squeeze(input: Any, dim: Optional[int] = None) -> Tensor:
    return as_tensor(input).squeeze(dim)


def unsqueeze(input: Any, dim: int) -> Tensor:
    return as_tensor(input).unsqueeze(dim)


def split(tensor: Any, split_size_or_sections: Any, dim: int = 0):
    return as_tensor(tensor).split(split_size_or_sections, dim)


def chunk(input: Any, chunks: int, dim: int = 0):
    return as_tensor(input).chunk(chunks, dim)


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def numel(input: Any) -> int:
    return int(as_tensor(input)._data.size)


def isnan(input: Any) -> Tensor:
    """Elementwise NaN test, a bool tensor."""
    return Tensor._wrap(np.isnan(as_tensor(input)._data))


def isfinite(input: Any) -> Tensor:
    """Elementwise test for neither inf nor NaN, a bool tensor."""
    return Tensor._wrap(np.isfinite(as_tensor(input)._data))


def allclose(input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """|input - other| <= atol + rtol * |other| everywhere (torch's, with broadcasting)."""
    return bool(np.allclose(as_tensor(input)._data, as_tensor(other)._data, rtol=rtol,
                            atol=atol, equal_nan=equal_nan))
