"""torch-style top-level functions: ``pve.stack``, ``pve.where``, ``pve.randn``, ... Thin
wrappers over Tensor methods and nn.functional, so each has one implementation."""

from __future__ import annotations

import builtins
import operator
from typing import Any, Optional, Sequence

import numpy as np

from pyvision_engine import _ops
from pyvision_engine.random import default_generator
from pyvision_engine.tensor import (
    Tensor, _factory_shape, _normalize_dtype, _operand, as_tensor, empty, float32, full, int64,
    tensor,
)

__all__ = [
    "stack", "where", "clamp", "clip", "flatten", "exp", "log", "sqrt", "abs", "sum", "mean",
    "max", "min", "argmax", "argmin", "relu", "sigmoid", "tanh", "softmax", "log_softmax",
    "mm", "bmm", "randn", "rand", "randint", "topk", "sort", "reshape", "permute", "transpose",
    "squeeze", "unsqueeze", "split", "chunk", "is_tensor", "numel", "isnan", "isfinite",
    "allclose", "pow", "sign", "floor", "ceil", "round", "reciprocal", "rsqrt", "square", "erf",
    "sin", "cos", "maximum", "minimum", "clamp_min", "clamp_max", "lerp", "prod", "cumsum", "amax",
    "amin", "logsumexp", "var", "std", "norm", "gather", "scatter", "index_select", "masked_fill",
    "nonzero", "argwhere", "flip", "roll", "unbind", "tril", "triu", "diag", "isinf", "isclose",
    "equal", "argsort", "outer", "dot", "full_like", "empty_like", "randperm", "linspace", "eye",
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


def where(condition: Any, input: Any = None, other: Any = None) -> Any:
    """``input`` where ``condition`` is true, else ``other`` (broadcasting; differentiable).
    A number takes the other operand's dtype kind (two numbers: float32 / int64 / bool by
    their types), as torch. ``where(condition)`` is ``nonzero(condition, as_tuple=True)``."""
    if input is None and other is None:
        return as_tensor(condition).nonzero(as_tuple=True)
    if not isinstance(input, Tensor):
        input = _operand(input, other) if isinstance(other, Tensor) else tensor(input)
    return input.where(condition, other)


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


# ------------------------------------------------------- more of torch's functions
def pow(input: Any, exponent: Any) -> Tensor:  # noqa: A001  (torch's name)
    """input ** exponent; either may be a number (both are differentiable tensors)."""
    return input ** exponent if isinstance(input, Tensor) else as_tensor(exponent).__rpow__(input)


def sign(input: Any) -> Tensor:
    return as_tensor(input).sign()


def floor(input: Any) -> Tensor:
    return as_tensor(input).floor()


def ceil(input: Any) -> Tensor:
    return as_tensor(input).ceil()


def round(input: Any, *, decimals: int = 0) -> Tensor:  # noqa: A001
    return as_tensor(input).round(decimals)


def reciprocal(input: Any) -> Tensor:
    return as_tensor(input).reciprocal()


def rsqrt(input: Any) -> Tensor:
    return as_tensor(input).rsqrt()


def square(input: Any) -> Tensor:
    return as_tensor(input).square()


def erf(input: Any) -> Tensor:
    return as_tensor(input).erf()


def sin(input: Any) -> Tensor:
    return as_tensor(input).sin()


def cos(input: Any) -> Tensor:
    return as_tensor(input).cos()


def maximum(input: Any, other: Any) -> Tensor:
    return as_tensor(input).maximum(other)


def minimum(input: Any, other: Any) -> Tensor:
    return as_tensor(input).minimum(other)


def clamp_min(input: Any, min: Any) -> Tensor:  # noqa: A002
    return as_tensor(input).clamp_min(min)


def clamp_max(input: Any, max: Any) -> Tensor:  # noqa: A002
    return as_tensor(input).clamp_max(max)


def lerp(input: Any, end: Any, weight: Any) -> Tensor:
    return as_tensor(input).lerp(end, weight)


def prod(input: Any, dim: Optional[int] = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    return as_tensor(input).prod(dim, keepdim, dtype=dtype)


def cumsum(input: Any, dim: int, *, dtype: Any = None) -> Tensor:
    return as_tensor(input).cumsum(dim, dtype=dtype)


def amax(input: Any, dim: Any = (), keepdim: bool = False) -> Tensor:
    return as_tensor(input).amax(dim, keepdim)


def amin(input: Any, dim: Any = (), keepdim: bool = False) -> Tensor:
    return as_tensor(input).amin(dim, keepdim)


def logsumexp(input: Any, dim: Any, keepdim: bool = False) -> Tensor:
    return as_tensor(input).logsumexp(dim, keepdim)


def var(input: Any, dim: Any = None, unbiased: Any = True, keepdim: bool = False, *,
        correction: Optional[float] = None) -> Tensor:
    return as_tensor(input).var(dim, unbiased, keepdim, correction=correction)


def std(input: Any, dim: Any = None, unbiased: Any = True, keepdim: bool = False, *,
        correction: Optional[float] = None) -> Tensor:
    return as_tensor(input).std(dim, unbiased, keepdim, correction=correction)


def norm(input: Any, p: Any = "fro", dim: Any = None, keepdim: bool = False,
         dtype: Any = None) -> Tensor:
    return as_tensor(input).norm(p, dim, keepdim, dtype)


def gather(input: Any, dim: int, index: Any) -> Tensor:
    return as_tensor(input).gather(dim, index)


def scatter(input: Any, dim: int, index: Any, src: Any = None, value: Any = None, *,
            reduce: Optional[str] = None) -> Tensor:
    return as_tensor(input).scatter(dim, index, src, value, reduce=reduce)


def index_select(input: Any, dim: int, index: Any) -> Tensor:
    return as_tensor(input).index_select(dim, index)


def masked_fill(input: Any, mask: Any, value: Any) -> Tensor:
    return as_tensor(input).masked_fill(mask, value)


def nonzero(input: Any, *, as_tuple: bool = False) -> Any:
    return as_tensor(input).nonzero(as_tuple=as_tuple)


def argwhere(input: Any) -> Tensor:
    return as_tensor(input).argwhere()


def flip(input: Any, dims: Sequence[int]) -> Tensor:
    if not isinstance(dims, (tuple, list)):
        raise TypeError(f"flip(): argument 'dims' (position 2) must be tuple of ints, not "
                        f"{type(dims).__name__}")
    return as_tensor(input).flip(tuple(dims))


def roll(input: Any, shifts: Any, dims: Any = None) -> Tensor:
    return as_tensor(input).roll(shifts, dims)


def unbind(input: Any, dim: int = 0):
    return as_tensor(input).unbind(dim)


def tril(input: Any, diagonal: int = 0) -> Tensor:
    return as_tensor(input).tril(diagonal)


def triu(input: Any, diagonal: int = 0) -> Tensor:
    return as_tensor(input).triu(diagonal)


def diag(input: Any, diagonal: int = 0) -> Tensor:
    return as_tensor(input).diag(diagonal)


def isinf(input: Any) -> Tensor:
    return as_tensor(input).isinf()


def isclose(input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Tensor:
    return as_tensor(input).isclose(other, rtol, atol, equal_nan)


def equal(input: Any, other: Any) -> bool:
    return as_tensor(input).equal(other)


def argsort(input: Any, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    return as_tensor(input).argsort(dim, descending, stable)


def outer(input: Any, vec2: Any) -> Tensor:
    return as_tensor(input).outer(vec2)


def dot(input: Any, tensor: Any) -> Tensor:
    return as_tensor(input).dot(tensor)


def full_like(input: Any, fill_value: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` in input's shape and (unless ``dtype``) input's dtype."""
    t = as_tensor(input)
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad)


def empty_like(input: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    t = as_tensor(input)
    return empty(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def randperm(n: int, *, generator: Any = None, dtype: Any = None,
             requires_grad: bool = False) -> Tensor:
    """A random permutation of 0..n-1 (int64) from the engine's generator (seeded by
    pve.manual_seed), or from ``generator``, a numpy Generator."""
    (n,) = _factory_shape((n,), "randperm")
    values = (generator or default_generator()).permutation(n)
    return Tensor(values.astype(_normalize_dtype(dtype or int64)), requires_grad=requires_grad)


def linspace(start: Any, end: Any, steps: int, *, dtype: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from start to end, with torch's float32 arithmetic:
    start + i * step for the first half, end - (steps - 1 - i) * step for the rest."""
    steps = operator.index(steps)
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    target = _normalize_dtype(dtype or float32)
    kind = np.float32 if target == float32 else np.float64  # (torch: double steps for integers)
    i = np.arange(steps, dtype=kind)
    step = (kind(end) - kind(start)) / kind(builtins.max(steps - 1, 1))
    values = np.where(i < steps // 2, kind(start) + step * i, kind(end) - step * (steps - 1 - i))
    if steps == 1:  # (torch fills with start)
        values[:] = kind(start)
    return Tensor(values.astype(target), requires_grad=requires_grad)


def eye(n: int, m: Optional[int] = None, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """An n x m (n x n) matrix with ones on the diagonal."""
    for name, v in (("n", n), ("m", m)):
        if v is not None and v < 0:
            raise RuntimeError(f"{name} must be greater or equal to 0, got {v}")
    return Tensor(np.eye(n, n if m is None else m, dtype=_normalize_dtype(dtype or float32)),
                  requires_grad=requires_grad)


# ------------------------------------------------------- more element-wise math
# (one implementation each: the Tensor method; see _ops_math.py)
def _unary_function(name: str) -> Any:
    def function(input: Any) -> Tensor:
        return getattr(as_tensor(input), name)()
    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"torch.{name}: Tensor.{name} of input."
    return function


log1p, log2, log10, expm1, exp2 = (_unary_function(n) for n in ("log1p", "log2", "log10", "expm1", "exp2"))
tan, asin, acos, atan = (_unary_function(n) for n in ("tan", "asin", "acos", "atan"))
sinh, cosh, asinh, acosh, atanh = (_unary_function(n) for n in ("sinh", "cosh", "asinh", "acosh", "atanh"))
trunc, frac, negative = (_unary_function(n) for n in ("trunc", "frac", "negative"))
arcsin, arccos, arctan, arcsinh, arccosh, arctanh, fix = asin, acos, atan, asinh, acosh, atanh, trunc


def logit(input: Any, eps: Optional[float] = None) -> Tensor:
    return as_tensor(input).logit(eps)


def nan_to_num(input: Any, nan: float = 0.0, posinf: Optional[float] = None,
               neginf: Optional[float] = None) -> Tensor:
    return as_tensor(input).nan_to_num(nan, posinf, neginf)


def atan2(input: Any, other: Any) -> Tensor:
    return as_tensor(input).atan2(other)


arctan2 = atan2


def hypot(input: Any, other: Any) -> Tensor:
    return as_tensor(input).hypot(other)


def logaddexp(input: Any, other: Any) -> Tensor:
    return as_tensor(input).logaddexp(other)


def _first_operand(input: Any, other: Any) -> Tensor:
    """A number as the first operand (torch.xlogy(2, t)) takes its dtype from other."""
    if isinstance(input, Tensor) or not isinstance(other, Tensor):
        return as_tensor(input)
    return _operand(input, other)


def xlogy(input: Any, other: Any) -> Tensor:
    return _first_operand(input, other).xlogy(other)


def copysign(input: Any, other: Any) -> Tensor:
    return as_tensor(input).copysign(other)


def fmod(input: Any, other: Any) -> Tensor:
    return as_tensor(input).fmod(other)


def heaviside(input: Any, values: Any) -> Tensor:
    return as_tensor(input).heaviside(values)


def subtract(input: Any, other: Any, *, alpha: float = 1) -> Tensor:
    return as_tensor(input).subtract(other, alpha=alpha)


def multiply(input: Any, other: Any) -> Tensor:
    return as_tensor(input).multiply(other)


def divide(input: Any, other: Any, *, rounding_mode: Optional[str] = None) -> Tensor:
    return as_tensor(input).divide(other, rounding_mode=rounding_mode)


def true_divide(input: Any, other: Any) -> Tensor:
    return as_tensor(input).true_divide(other)


__all__ += [
    "log1p", "log2", "log10", "expm1", "exp2", "tan", "asin", "acos", "atan", "arcsin", "arccos",
    "arctan", "sinh", "cosh", "asinh", "acosh", "atanh", "arcsinh", "arccosh", "arctanh", "trunc",
    "fix", "frac", "negative", "logit", "nan_to_num", "atan2", "arctan2", "hypot", "logaddexp",
    "xlogy", "copysign", "fmod", "heaviside", "subtract", "multiply", "divide", "true_divide",
]


# ------------------------------------------------------- selection (see _selection.py)
from pyvision_engine._selection import (  # noqa: E402
    broadcast_to, is_complex, is_floating_point, masked_select, moveaxis, movedim, narrow, ravel,
    repeat_interleave, select, split_with_sizes, swapaxes, swapdims, take, take_along_dim,
    tensor_split, tile, unflatten,
)
from pyvision_engine._selection import (  # noqa: E402
    index_add, index_copy, index_fill, scatter_add, scatter_reduce,
)

__all__ += [
    "broadcast_to", "is_complex", "is_floating_point", "masked_select", "moveaxis", "movedim",
    "narrow", "ravel", "repeat_interleave", "select", "split_with_sizes", "swapaxes", "swapdims",
    "take", "take_along_dim", "tensor_split", "tile", "unflatten", "index_add", "index_copy",
    "index_fill", "scatter_add", "scatter_reduce",
]


# ------------------------------------------------------- reductions (see _reductions.py)
from pyvision_engine._reductions import (  # noqa: E402
    aminmax, count_nonzero, cummax, cummin, cumprod, diff, kthvalue, logcumsumexp, median,
    nanmean, nanmedian, nansum, std_mean, trace, var_mean,
)
from pyvision_engine._reductions import all, any  # noqa: E402,A004  (torch's names)
from pyvision_engine._reductions import (  # noqa: E402
    bincount, bucketize, histc, nanquantile, quantile, searchsorted, unique, unique_consecutive,
)

__all__ += [
    "aminmax", "count_nonzero", "cummax", "cummin", "cumprod", "diff", "kthvalue",
    "logcumsumexp", "median", "nanmean", "nanmedian", "nansum", "std_mean", "trace", "var_mean",
    "all", "any", "bincount", "bucketize", "histc", "nanquantile", "quantile", "searchsorted",
    "unique", "unique_consecutive",
]


# -------------------------------- torch's function forms of Tensor methods (same semantics)
def floor_divide(input: Any, other: Any) -> Tensor:
    return as_tensor(input).floor_divide(other)


def remainder(input: Any, other: Any) -> Tensor:
    return as_tensor(input).remainder(other)


# (torch's aliases of divide, multiply, subtract, negative above)
div, mul, sub, neg = divide, multiply, subtract, negative


def clone(input: Any) -> Tensor:
    return as_tensor(input).clone()


def t(input: Any) -> Tensor:
    return as_tensor(input).t()


def addcmul(input: Any, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
    return as_tensor(input).addcmul(tensor1, tensor2, value=value)


def addcdiv(input: Any, tensor1: Any, tensor2: Any, *, value: Any = 1) -> Tensor:
    return as_tensor(input).addcdiv(tensor1, tensor2, value=value)


def _compare(name: str) -> Any:
    def compare(input: Any, other: Any) -> Tensor:
        return getattr(as_tensor(input), name)(other)
    compare.__name__ = compare.__qualname__ = name
    compare.__doc__ = f"torch.{name}: element-wise, a bool tensor."
    return compare


eq, ne, lt, le, gt, ge = (_compare(n) for n in ("eq", "ne", "lt", "le", "gt", "ge"))
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne


def logical_and(input: Any, other: Any) -> Tensor:
    return as_tensor(input).logical_and(other)


def logical_or(input: Any, other: Any) -> Tensor:
    return as_tensor(input).logical_or(other)


def logical_xor(input: Any, other: Any) -> Tensor:
    return as_tensor(input).logical_xor(other)


def logical_not(input: Any) -> Tensor:
    return as_tensor(input).logical_not()


def bitwise_and(input: Any, other: Any) -> Tensor:
    return as_tensor(input) & other


def bitwise_or(input: Any, other: Any) -> Tensor:
    return as_tensor(input) | other


def bitwise_xor(input: Any, other: Any) -> Tensor:
    return as_tensor(input) ^ other


def bitwise_not(input: Any) -> Tensor:
    return ~as_tensor(input)


def get_default_dtype() -> Any:
    """float32: the engine's one float dtype (torch's default too)."""
    return np.dtype(np.float32)


def scalar_tensor(s: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A 0-d tensor holding s (float32 unless dtype says otherwise), as torch's."""
    return tensor(s, dtype=float32 if dtype is None else dtype, requires_grad=requires_grad)


__all__ += [
    "floor_divide", "remainder", "div", "mul", "sub", "neg", "clone", "t", "addcmul", "addcdiv",
    "eq", "ne", "lt", "le", "gt", "ge", "greater", "greater_equal", "less", "less_equal",
    "not_equal", "logical_and", "logical_or", "logical_xor", "logical_not", "bitwise_and",
    "bitwise_or", "bitwise_xor", "bitwise_not", "get_default_dtype", "scalar_tensor",
]
