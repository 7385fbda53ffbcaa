"""Tensor-level differentiable ops: arithmetic, reductions, shape ops, matmul.

Each op is a ``Function`` over numpy arrays (see autograd.py). Element-wise
math here runs through numpy; the compute-heavy ops (matmul, and the layers
in nn.functional) run through the native kernels in ``_C``.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections import namedtuple
from typing import Any, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine.autograd import Function, _type_name, _unbroadcast, add_arrays

_FLOAT = np.dtype(np.float32)


# ------------------------------------------------------------------ helpers
def normalize_dim(dim: int, ndim: int, op: str) -> int:
    try:
        d = operator.index(dim)
    except TypeError:
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}") from None
    bound = max(ndim, 1)
    if not -bound <= d < bound:
        raise IndexError(
            f"{op}: dimension out of range (expected to be in range of [{-bound}, {bound - 1}], "
            f"but got {d})"
        )
    return d % bound


def normalize_dims(dim: Any, ndim: int, op: str) -> Optional[Tuple[int, ...]]:
    """None (all dims) or a sorted tuple of distinct non-negative dims."""
    if dim is None:
        return None
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    if len(dims) == 0:
        return None
    out = tuple(sorted(normalize_dim(d, ndim, op) for d in dims))
    for a, b in zip(out, out[1:]):
        if a == b:
            raise RuntimeError(f"dim {a} appears multiple times in the list of dims")
    if ndim == 0:
        return None
    return out


def broadcast_error(shape_a: Sequence[int], shape_b: Sequence[int]) -> RuntimeError:
    """torch's error for operands whose shapes do not broadcast."""
    n = max(len(shape_a), len(shape_b))
    for i in range(1, n + 1):
        a = shape_a[-i] if i <= len(shape_a) else 1
        b = shape_b[-i] if i <= len(shape_b) else 1
        if a != b and a != 1 and b != 1:
            return RuntimeError(f"The size of tensor a ({a}) must match the size of tensor b ({b}) "
                                f"at non-singleton dimension {n - i}")
    return RuntimeError(f"shapes {tuple(shape_a)} and {tuple(shape_b)} do not broadcast")


def binary(ufunc: Any, a: Any, b: Any) -> np.ndarray:
    """``ufunc(a, b)`` with torch's error when the shapes do not broadcast."""
    try:
        return ufunc(a, b)
    except ValueError:
        raise broadcast_error(np.shape(a), np.shape(b)) from None


def shape_arg(shape: Sequence[Any]) -> Tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(operator.index(s) for s in shape)


def resolve_shape(shape: Sequence[Any], size: int, op: str) -> Tuple[int, ...]:
    """Shape with at most one -1 filled in, checked against the element count (torch's
    errors: RuntimeError)."""
    if len(shape) == 0:
        raise TypeError(f'{op}() missing 1 required positional arguments: "shape"')
    try:
        shape = shape_arg(shape)
    except TypeError:
        raise TypeError(f"{op}(): argument 'shape' must be tuple of ints, got {shape!r}") from None
    unknown = [i for i, s in enumerate(shape) if s == -1]
    if len(unknown) > 1:
        raise RuntimeError("only one dimension can be inferred")
    for i, s in enumerate(shape):
        if s < -1:
            raise RuntimeError(f"invalid shape dimension {s} at index {i} of shape {list(shape)}")
    known = math.prod(s for s in shape if s != -1)
    if unknown:
        if known == 0:
            raise RuntimeError(
                f"cannot reshape tensor of {size} elements into shape {list(shape)} because the "
                "unspecified dimension size -1 can be any value and is ambiguous"
            )
        if size % known != 0:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {size}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    elif known != size:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {size}")
    return shape


def normalize_index(index: Any) -> Any:
    """Convert Tensors inside an index expression to numpy arrays."""
    from pyvision_engine.tensor import Tensor

    def convert(i: Any) -> Any:
        if isinstance(i, Tensor):
            return i._data.item() if (i._data.ndim == 0 and i._data.dtype.kind == "i") else i._data
        return i

    if isinstance(index, list) and _sequence_as_tuple(index):
        warnings.warn(
            "Using a non-tuple sequence for multidimensional indexing is deprecated and will "
            "be changed in pytorch 2.9; use x[tuple(seq)] instead of x[seq]. In pytorch 2.9 "
            "this will be interpreted as tensor index, x[torch.tensor(seq)], which will result "
            "either in an error or a different result", UserWarning, stacklevel=3)
        index = tuple(index)
    if isinstance(index, tuple):
        items = tuple(convert(i) for i in index)
        _check_steps(items)
        return _split_ints_from_advanced(items) or items
    index = convert(index)
    _check_steps((index,))
    return index


def _sequence_as_tuple(index: list) -> bool:
    """torch's rule (treatSequenceAsTuple): a list index holding a sequence, a slice,
    None, Ellipsis or a tensor is read as a tuple of indices, ``x[[[0, 1], [2, 2]]]``
    as ``x[[0, 1], [2, 2]]``."""
    from pyvision_engine.tensor import Tensor

    if len(index) >= 32:
        return False
    return any(i is None or i is Ellipsis or isinstance(i, (slice, list, tuple, np.ndarray, Tensor))
               for i in index)


def _check_steps(items: Tuple[Any, ...]) -> None:
    for i in items:
        if isinstance(i, slice) and i.step is not None and operator.index(i.step) <= 0:
            raise ValueError("step must be greater than zero")


class TwoStepIndex(NamedTuple):
    """``a[first][second]``: the integers of an index (first, basic: a view) and the
    rest (second, with the advanced indices)."""
    first: Tuple[Any, ...]
    second: Tuple[Any, ...]


def _is_int(i: Any) -> bool:
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _split_ints_from_advanced(items: Tuple[Any, ...]) -> Optional[TwoStepIndex]:
    """torch applies integer indices first (as select) and then the advanced ones;
    numpy treats an integer next to an array index as one more advanced index, so
    ``x[0, :, [3, 0]]`` would put the indexed dim first. Split such an index in two
    (None when there is nothing to split)."""
    def advanced(i: Any) -> bool:
        return isinstance(i, (list, np.ndarray)) and not (isinstance(i, np.ndarray) and i.ndim == 0)
    if not any(_is_int(i) for i in items) or not any(advanced(i) for i in items):
        return None
    first: List[Any] = []
    for i in items:
        if _is_int(i) or i is Ellipsis:
            first.append(i)
        elif i is None:
            continue  # consumes no dim
        elif isinstance(i, np.ndarray) and i.dtype == np.bool_:
            first.extend([slice(None)] * max(i.ndim, 1))  # a mask covers i.ndim dims
        else:
            first.append(slice(None))
    return TwoStepIndex(tuple(first), tuple(i for i in items if not _is_int(i)))


def _is_basic_index(index: Any) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


_RANK_DTYPE_NAMES = {"f": "Float", "i": "Long", "b": "Bool"}


def _c_type(dtype: np.dtype) -> str:
    return {"float32": "float", "int64": "long int", "bool": "bool"}.get(str(dtype), str(dtype))


def _is_float_value(v: Any) -> bool:
    return v is not None and np.asarray(v).dtype.kind == "f"


def _as_float(a: np.ndarray) -> np.ndarray:
    """Integer and bool inputs of float functions (exp, log, sqrt) compute in float32, as
    torch (numpy would take float16 for bool, float64 for int64)."""
    return a if a.dtype == _FLOAT else a.astype(np.float32)


def _contiguous(a: Any, dtype: Any = None) -> np.ndarray:
    """``a`` as a C-contiguous array; a 0-d result stays 0-d (np.ascontiguousarray makes
    it 1-d)."""
    return np.asarray(a, dtype=dtype, order="C")


def _result_dtype(out: np.ndarray) -> np.ndarray:
    # numpy may widen (int64 / 2 -> float64); the engine computes in float32.
    if out.dtype == np.float64:
        return out.astype(np.float32)
    return out


# Taylor coefficients of erf(x) * sqrt(pi) / 2 in x^2 (to x^17: below 0.5, under 1e-12 relative)
_ERF_TAYLOR = [(-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(9)][::-1]
# Abramowitz-Stegun 7.1.26: erf(x) = 1 - t * poly(t) * exp(-x^2), t = 1 / (1 + p x); within
# 1.5e-7 of erf where erf > 0.52
_ERF_P = 0.3275911
_ERF_AS = [1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592]


def erf_array(x: np.ndarray) -> np.ndarray:
    """erf elementwise in x's type (numpy has none), computed in float64 as the engine's SIMD
    erf: a Taylor series below |x| = 0.5, Abramowitz-Stegun 7.1.26 above (within 1.5e-7
    of erf, a few float32 ulps). NaN stays NaN; +-inf give +-1."""
    if not x.size:
        return x.copy()
    v = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # (inf in the unused branch)
        s = v * v
        small = np.polyval(_ERF_TAYLOR, s) * v * (2.0 / math.sqrt(math.pi))
        t = 1.0 / (1.0 + _ERF_P * np.abs(v))
        large = np.copysign(1.0 - np.polyval(_ERF_AS, t) * t * np.exp(-s), v)
    return np.where(np.abs(v) < 0.5, small, large).astype(x.dtype, copy=False)


# --------------------------------------------------------------- elementwise
class Clone(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, g):
        return (g,)


class Add(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        try:
            return _result_dtype(add_arrays(a, b))
        except ValueError:
            raise broadcast_error(a.shape, b.shape) from None

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return (_unbroadcast(g, sa) if ctx.needs_input_grad[0] else None,
                _unbroadcast(g, sb) if ctx.needs_input_grad[1] else None)


class Sub(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, b):
        if a.dtype == np.bool_ and b.dtype == np.bool_:
            raise RuntimeError("Subtraction, the `-` operator, with two bool tensors is not "
                               "supported. Use the `^` or `logical_xor()` operator instead.")
        if a.dtype == np.bool_ or b.dtype == np.bool_:
            raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not "
                               "supported. If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        ctx.shapes = (a.shape, b.shape)
        try:
            return _result_dtype(np.subtract(a, b))
        except ValueError:
            raise broadcast_error(a.shape, b.shape) from None

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return (_unbroadcast(g, sa) if ctx.needs_input_grad[0] else None,
                _unbroadcast(-g, sb) if ctx.needs_input_grad[1] else None)


# saved_inputs by needs_input_grad (a dict lookup: these run for every op)
# a * b, a @ b: a is read for b's gradient and b for a's
_cross_saved = {(True, True): (0, 1), (True, False): (1,), (False, True): (0,),
                (False, False): ()}.__getitem__


class Mul(Function):
    saved_inputs, saves_output = staticmethod(_cross_saved), False

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        try:
            return _result_dtype(np.multiply(a, b))
        except ValueError:
            raise broadcast_error(a.shape, b.shape) from None

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        return (_unbroadcast(g * b, a.shape) if ctx.needs_input_grad[0] else None,
                _unbroadcast(g * a, b.shape) if ctx.needs_input_grad[1] else None)


class Div(Function):
    # b for both gradients, a for b's only
    saved_inputs = staticmethod({(True, True): (0, 1), (True, False): (1,), (False, True): (0, 1),
                                 (False, False): ()}.__getitem__)
    saves_output = False

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        with np.errstate(divide="ignore", invalid="ignore"):
            out = binary(np.true_divide, a, b)
        return out.astype(np.float32) if out.dtype != np.float32 else out

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        with np.errstate(divide="ignore", invalid="ignore"):
            ga = _unbroadcast(g / b, a.shape) if ctx.needs_input_grad[0] else None
            gb = _unbroadcast(-g * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return (ga, _result_dtype(gb) if gb is not None else None)


class Neg(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a):
        if a.dtype == np.bool_:
            raise RuntimeError(
                "Negation, the `-` operator, on a bool tensor is not supported. If you are "
                "trying to invert a mask, use the `~` or `logical_not()` operator instead."
            )
        return np.negative(a)

    @staticmethod
    def backward(ctx, g):
        return (-g,)


class Pow(Function):
    """a ** p for a Python-number exponent p."""

    saved_inputs, saves_output = (0,), False

    @staticmethod
    def forward(ctx, a, exponent):
        ctx.a, ctx.exponent = a, exponent
        with np.errstate(divide="ignore", invalid="ignore"):
            return _result_dtype(np.power(a, np.float32(exponent)))

    @staticmethod
    def backward(ctx, g):
        a, p = ctx.a, ctx.exponent
        if p == 0:
            return np.zeros_like(a), None
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * np.float32(p) * np.power(a, np.float32(p - 1)), None


class PowTensor(Function):
    saved_inputs, saves_output = (0, 1), True

    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = _result_dtype(binary(np.power, a.astype(np.float32), b.astype(np.float32)))
        ctx.a, ctx.b, ctx.out = a, b, out
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.a, ctx.b, ctx.out
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.needs_input_grad[0]:
                ga = _unbroadcast(np.where(b == 0, 0.0, g * b * np.power(a, b - 1)), a.shape)
            if ctx.needs_input_grad[1]:
                # d/db a^b = a^b log a; torch takes it as 0 where a == 0 and b >= 0.
                gb = _unbroadcast(np.where((a == 0) & (b >= 0), 0.0, g * out * np.log(a)), b.shape)
        return (_result_dtype(ga) if ga is not None else None,
                _result_dtype(gb) if gb is not None else None)


class Abs(Function):
    saved_inputs, saves_output = (0,), False

    @staticmethod
    def forward(ctx, a):
        if a.dtype == np.bool_:
            raise NotImplementedError("\"abs_cpu\" not implemented for 'Bool'")
        ctx.a = a
        return np.abs(a)

    @staticmethod
    def backward(ctx, g):
        return (g * np.sign(ctx.a),)


class Exp(Function):
    saved_inputs, saves_output = (), True

    @staticmethod
    def forward(ctx, a):
        with np.errstate(over="ignore"):
            ctx.out = np.exp(_as_float(a))
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        return (g * ctx.out,)


class Log(Function):
    saved_inputs, saves_output = (0,), False

    @staticmethod
    def forward(ctx, a):
        ctx.a = a = _as_float(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(a)

    @staticmethod
    def backward(ctx, g):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (g / ctx.a,)


class Sqrt(Function):
    saved_inputs, saves_output = (), True

    @staticmethod
    def forward(ctx, a):
        with np.errstate(invalid="ignore"):
            ctx.out = np.sqrt(_as_float(a))
        return ctx.out

    @staticmethod
    def backward(ctx, g):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (g / (2 * ctx.out),)


class _ElementwiseExtreme(Function):
    # torch's rule: the gradient goes to the larger (smaller) input, ties split it evenly,
    # and an input loses it only where the other strictly wins (so a NaN pair gives both
    # the whole gradient).
    _ufunc: Any = None
    _wins: Any = None
    saved_inputs, saves_output = (0, 1), False

    @classmethod
    def forward(cls, ctx, a, b):
        ctx.a, ctx.b = a, b
        return _result_dtype(binary(cls._ufunc, a, b))

    @classmethod
    def backward(cls, ctx, g):
        a, b = ctx.a, ctx.b
        shared = np.where(a == b, g * np.float32(0.5), g)
        return (_unbroadcast(np.where(cls._wins(b, a), 0, shared), a.shape).astype(np.float32)
                if ctx.needs_input_grad[0] else None,
                _unbroadcast(np.where(cls._wins(a, b), 0, shared), b.shape).astype(np.float32)
                if ctx.needs_input_grad[1] else None)


class Maximum(_ElementwiseExtreme):
    _ufunc = staticmethod(np.maximum)
    _wins = staticmethod(np.greater)


class Minimum(_ElementwiseExtreme):
    _ufunc = staticmethod(np.minimum)
    _wins = staticmethod(np.less)


# ----------------------------------------------------------------- reductions
def _expand_reduced(g: np.ndarray, shape: Tuple[int, ...], dims, keepdim: bool) -> np.ndarray:
    if dims is None:
        return np.broadcast_to(g.reshape((1,) * len(shape)) if len(shape) else g, shape)
    if not keepdim:
        g = np.expand_dims(g, dims)
    return np.broadcast_to(g, shape)


class Sum(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, dims, keepdim):
        ctx.shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        out = np.sum(a, axis=dims, keepdims=keepdim)
        if a.dtype == np.bool_:
            out = out.astype(np.int64)
        return np.asarray(out, order="C")

    @staticmethod
    def backward(ctx, g):
        return np.asarray(_expand_reduced(g, ctx.shape, ctx.dims, ctx.keepdim), order="C"), None, None


class Mean(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, dims, keepdim):
        ctx.shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        count = a.size if dims is None else int(np.prod([a.shape[d] for d in dims]))
        ctx.count = count
        if count == 0:  # NaN, as torch (without numpy's "Mean of empty slice" warning)
            shape = np.sum(a, axis=dims, keepdims=keepdim).shape
            return np.full(shape, np.nan, dtype=np.float32)
        return np.asarray(np.mean(a, axis=dims, keepdims=keepdim, dtype=np.float32), order="C")

    @staticmethod
    def backward(ctx, g):
        grad = _expand_reduced(g / np.float32(ctx.count), ctx.shape, ctx.dims, ctx.keepdim)
        return np.asarray(grad, order="C"), None, None


class _FullExtreme(Function):
    """max() / min() over all elements; ties share the gradient evenly (torch), and a NaN
    result sends it to the NaN elements."""

    saved_inputs, saves_output = (0,), False

    @staticmethod
    def forward(ctx, a, largest):
        if a.size == 0:
            raise RuntimeError(
                f"{'max' if largest else 'min'}(): expected a non-empty tensor for a full reduction"
            )
        value = a.max() if largest else a.min()
        ctx.a, ctx.value = a, value
        return np.asarray(value, dtype=a.dtype)

    @staticmethod
    def backward(ctx, g):
        hit = np.isnan(ctx.a) if np.isnan(ctx.value) else (ctx.a == ctx.value)
        mask = hit.astype(np.float32)
        return mask * (g / mask.sum()), None


MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])
SortResult = namedtuple("sort", ["values", "indices"])
TopKResult = namedtuple("topk", ["values", "indices"])


def reduce_extreme(t, dim, keepdim: bool, largest: bool):
    from pyvision_engine.tensor import Tensor

    if dim is None:
        return _FullExtreme.apply(t, largest)
    op = "max" if largest else "min"
    d = normalize_dim(dim, t.ndim, op)
    a = t._data if t.ndim > 0 else t._data.reshape(1)
    if a.shape[d] == 0:
        raise IndexError(f"{op}(): cannot reduce over a zero-size dimension {d} of shape {t.shape}")
    indices = np.argmax(a, axis=d) if largest else np.argmin(a, axis=d)
    idx = np.expand_dims(indices, d)
    values = gather_values(t if t.ndim > 0 else t.reshape(1), idx, d)
    if not keepdim:
        values = values.squeeze(d)
        idx = indices
    result = MaxResult if largest else MinResult
    if t.ndim == 0:
        return result(values.reshape(()), Tensor._wrap(np.asarray(0, dtype=np.int64)))
    return result(values, Tensor._wrap(np.asarray(idx, dtype=np.int64, order="C")))


def arg_extreme(t, dim, keepdim: bool, largest: bool):
    from pyvision_engine.tensor import Tensor

    fn = np.argmax if largest else np.argmin
    if dim is None:
        if t._data.size == 0:
            raise IndexError(f"{fn.__name__}(): Expected reduction dim to be specified for "
                             "input.numel() == 0.")
        out = np.asarray(fn(t._data), dtype=np.int64)
        if keepdim:
            out = out.reshape((1,) * t.ndim)
        return Tensor._wrap(out)
    d = normalize_dim(dim, t.ndim, fn.__name__)
    a = t._data if t.ndim > 0 else t._data.reshape(1)
    if a.shape[d] == 0:
        raise IndexError(f"{fn.__name__}(): Expected reduction dim {d} to have non-zero size.")
    if a.size == 0:  # (another dim is empty: an empty result)
        out = np.zeros(a.shape[:d] + a.shape[d + 1:], dtype=np.int64)
        if keepdim:
            out = np.expand_dims(out, d)
        return Tensor._wrap(out)
    out = fn(a, axis=d)
    if keepdim:
        out = np.expand_dims(out, d)
    return Tensor._wrap(np.asarray(out, dtype=np.int64, order="C"))


# ----------------------------------------------------------------- shape ops
class Reshape(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)  # a view: the data is contiguous

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None


def flatten(t, start_dim: int = 0, end_dim: int = -1):
    if t.ndim == 0:
        return t.reshape(1)
    s = normalize_dim(start_dim, t.ndim, "flatten")
    e = normalize_dim(end_dim, t.ndim, "flatten")
    if s > e:
        raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
    shape = t.shape[:s] + (math.prod(t.shape[s:e + 1]),) + t.shape[e + 1:]
    return t.reshape(shape)


class Permute(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, perm):
        ctx.inverse = tuple(np.argsort(perm))
        return np.asarray(np.transpose(a, perm), order="C")

    @staticmethod
    def backward(ctx, g):
        return np.asarray(np.transpose(g, ctx.inverse), order="C"), None


class BroadcastTo(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        lead = len(shape) - a.ndim
        if lead < 0:
            raise RuntimeError(
                f"expand({_type_name(a.dtype)}{{{list(a.shape)}}}, size={list(shape)}): the number of "
                f"sizes provided ({len(shape)}) must be greater or equal to the number of "
                f"dimensions in the tensor ({a.ndim})"
            )
        for i, s in enumerate(shape):
            if i < lead:
                if s < 0:
                    raise RuntimeError(f"The expanded size of the tensor ({s}) isn't allowed in "
                                       f"a leading, non-existing dimension {i}")
            elif a.shape[i - lead] != 1 and s != a.shape[i - lead]:
                raise RuntimeError(
                    f"The expanded size of the tensor ({s}) must match the existing size "
                    f"({a.shape[i - lead]}) at non-singleton dimension {i}.  Target sizes: "
                    f"{list(shape)}.  Tensor sizes: {list(a.shape)}"
                )
        return np.asarray(np.broadcast_to(a, shape), order="C")

    @staticmethod
    def backward(ctx, g):
        return _unbroadcast(g, ctx.shape), None


class Index(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        try:
            if isinstance(index, TwoStepIndex):
                return np.asarray(a[index.first][index.second], order="C")
            return np.asarray(a[index], order="C")
        except IndexError as e:
            raise IndexError(f"index {index!r} is invalid for a tensor of shape {a.shape}: {e}") from None

    @staticmethod
    def backward(ctx, g):
        grad = np.zeros(ctx.shape, dtype=np.float32)
        if isinstance(ctx.index, TwoStepIndex):
            np.add.at(grad[ctx.index.first], ctx.index.second, g)  # first: a view of grad
        elif _is_basic_index(ctx.index):
            grad[ctx.index] = g
        else:
            np.add.at(grad, ctx.index, g)  # repeated indices accumulate
        return grad, None


# -------------------------------------------------------------------- matmul
def gemm(a: np.ndarray, b: np.ndarray, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """op(a) @ op(b) for float32 matrices through the native GEMM."""
    return _C.gemm(np.asarray(a, dtype=np.float32, order="C"),
                   np.asarray(b, dtype=np.float32, order="C"),
                   trans_a=trans_a, trans_b=trans_b)


def _batched_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Broadcasting matmul of arrays with ndim >= 2 (the batch dims broadcast)."""
    if b.ndim == 2:
        # (..., M, K) @ (K, N): one GEMM over all rows.
        out = gemm(a.reshape(-1, a.shape[-1]), b)
        return out.reshape(a.shape[:-1] + (b.shape[1],))
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a3 = np.asarray(np.broadcast_to(a, batch + a.shape[-2:]), order="C").reshape((-1,) + a.shape[-2:])
    b3 = np.asarray(np.broadcast_to(b, batch + b.shape[-2:]), order="C").reshape((-1,) + b.shape[-2:])
    out = np.empty((a3.shape[0], a.shape[-2], b.shape[-1]), dtype=np.float32)
    for i in range(a3.shape[0]):
        _C.gemm(a3[i], b3[i], out=out[i])
    return out.reshape(batch + (a.shape[-2], b.shape[-1]))


class MatMul(Function):
    saved_inputs, saves_output = staticmethod(_cross_saved), False

    @staticmethod
    def forward(ctx, a, b):
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a2.shape[-1] != b2.shape[-2]:
            if a.ndim == 1 and b.ndim == 1:
                raise RuntimeError(
                    f"inconsistent tensor size, expected tensor [{a.shape[0]}] and src "
                    f"[{b.shape[0]}] to have the same number of elements, but got {a.shape[0]} "
                    f"and {b.shape[0]} elements respectively"
                )
            raise RuntimeError(
                f"mat1 and mat2 shapes cannot be multiplied ({math.prod(a2.shape[:-1])}x"
                f"{a2.shape[-1]} and {b2.shape[-2]}x{b2.shape[-1]})"
            )
        try:
            np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        except ValueError:
            raise broadcast_error(a2.shape[:-2], b2.shape[:-2]) from None
        ctx.a, ctx.b, ctx.a2_shape, ctx.b2_shape = a, b, a2.shape, b2.shape
        out = gemm(a2, b2) if (a2.ndim == 2 and b2.ndim == 2) else _batched_matmul(a2, b2)
        if a.ndim == 1:
            out = out.reshape(out.shape[:-2] + out.shape[-1:])
        if b.ndim == 1:
            out = out.reshape(out.shape[:-1])
        return out

    @staticmethod
    def backward(ctx, g):
        a2 = ctx.a.reshape(ctx.a2_shape)
        b2 = ctx.b.reshape(ctx.b2_shape)
        out_shape = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1])
        g2 = g.reshape(out_shape)
        ga = gb = None
        if a2.ndim == 2 and b2.ndim == 2:
            if ctx.needs_input_grad[0]:
                ga = gemm(g2, b2, trans_b=True)
            if ctx.needs_input_grad[1]:
                gb = gemm(a2, g2, trans_a=True)
        else:
            if ctx.needs_input_grad[0]:
                ga = _unbroadcast(_batched_matmul(g2, np.swapaxes(b2, -1, -2)), a2.shape)
            if ctx.needs_input_grad[1]:
                gb = _unbroadcast(_batched_matmul(np.swapaxes(a2, -1, -2), g2), b2.shape)
        return (ga.reshape(ctx.a.shape) if ga is not None else None,
                gb.reshape(ctx.b.shape) if gb is not None else None)


def matmul(a, b):
    from pyvision_engine.tensor import Tensor

    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(
            f"both arguments to matmul need to be at least 1D, but they are {a.ndim}D and {b.ndim}D"
        )
    if a.dtype != _FLOAT or b.dtype != _FLOAT:
        if a.dtype != b.dtype:
            raise RuntimeError(
                f"expected m1 and m2 to have the same dtype, but got: {_c_type(a.dtype)} != "
                f"{_c_type(b.dtype)}"
            )
        return Tensor._wrap(np.asarray(np.matmul(a._data, b._data), order="C"))
    return MatMul.apply(a, b)


# ------------------------------------------------- selection and repetition
class Clamp(Function):
    """clamp(a, min, max); the gradient passes where min <= a <= max (torch's rule), and
    tensor bounds get it where they are the result (torch's clamp_backward_min_max)."""

    # a's gradient needs only the mask; the bounds' read a, min and max
    saved_inputs = staticmethod(lambda needs: (0, 1, 2) if needs[1] or needs[2] else ())
    saves_output = False

    @staticmethod
    def forward(ctx, a, lo, hi):
        # Bounds take the tensor's dtype; a float bound makes an integer tensor float32.
        if a.dtype != _FLOAT and any(_is_float_value(v) for v in (lo, hi)):
            a = a.astype(np.float32)
        elif a.dtype == np.bool_ and any(v is not None and np.asarray(v).dtype != np.bool_
                                         for v in (lo, hi)):
            a = a.astype(np.int64)  # (an integer bound promotes bool, as torch)
        out = a
        if lo is not None:
            out = binary(np.maximum, out, np.asarray(lo, dtype=a.dtype))
        if hi is not None:
            out = binary(np.minimum, out, np.asarray(hi, dtype=a.dtype))
        # NaN inputs stay NaN, as in torch (np.maximum/minimum propagate NaN).
        ctx.shape = a.shape
        ctx.mask = np.ones(out.shape, dtype=bool)
        if lo is not None:
            ctx.mask &= a >= lo
        if hi is not None:
            ctx.mask &= a <= hi
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            ctx.a, ctx.lo, ctx.hi = a, lo, hi
        return np.asarray(out, dtype=a.dtype, order="C")

    @staticmethod
    def backward(ctx, g):
        needs = ctx.needs_input_grad
        ga = _unbroadcast(g * ctx.mask, ctx.shape) if needs[0] else None
        glo = ghi = None
        if needs[1] or needs[2]:
            a, lo, hi = ctx.a, ctx.lo, ctx.hi
            if lo is not None and hi is not None:
                lo_wins, hi_wins = (a < lo) & (lo < hi), (a > hi) | (hi < lo)
            else:
                lo_wins = a < lo if lo is not None else None
                hi_wins = a > hi if hi is not None else None
            if needs[1]:
                glo = _unbroadcast(np.where(lo_wins, g, 0).astype(np.float32), np.shape(lo))
            if needs[2]:
                ghi = _unbroadcast(np.where(hi_wins, g, 0).astype(np.float32), np.shape(hi))
        return ga, glo, ghi


class Where(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond, ctx.shapes = cond, (np.shape(a), np.shape(b))
        try:
            out = np.where(cond, a, b)
        except ValueError:
            shapes = (np.shape(cond), np.shape(a), np.shape(b))
            raise RuntimeError(f"where: condition, input and other of shapes {shapes[0]}, "
                               f"{shapes[1]} and {shapes[2]} do not broadcast") from None
        return _result_dtype(np.asarray(out, order="C"))

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        ga = _unbroadcast(np.where(ctx.cond, g, 0).astype(np.float32), sa) if ctx.needs_input_grad[1] else None
        gb = _unbroadcast(np.where(ctx.cond, 0, g).astype(np.float32), sb) if ctx.needs_input_grad[2] else None
        return None, ga, gb


class Repeat(Function):
    """torch's Tensor.repeat: tile ``reps`` times (len(reps) >= ndim)."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, reps):
        lead = len(reps) - a.ndim
        ctx.in_shape, ctx.shape, ctx.reps = a.shape, (1,) * lead + a.shape, reps
        return np.asarray(np.tile(a.reshape(ctx.shape), reps), order="C")

    @staticmethod
    def backward(ctx, g):
        # Fold each repeated axis into (reps, size) and sum over the reps.
        split = []
        for r, n in zip(ctx.reps, ctx.shape):
            split += [r, n]
        return g.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(ctx.in_shape), None


def gather_values(t, indices: np.ndarray, dim: int, repeats: bool = False):
    """Values of ``t`` at ``indices`` along ``dim`` (take_along_axis), differentiable.
    ``repeats``: an index may repeat within a line, so backward adds the repeats up
    (otherwise one put per index, the cheaper form for distinct indices)."""
    return (_DimTakeRepeats if repeats else _DimTake).apply(t, indices, dim)


class _DimTake(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, indices, dim):
        ctx.shape, ctx.indices, ctx.dim = a.shape, indices, dim
        return np.asarray(np.take_along_axis(a, indices, axis=dim), order="C")

    @staticmethod
    def backward(ctx, g):
        grad = np.zeros(ctx.shape, dtype=np.float32)
        np.put_along_axis(grad, ctx.indices, g, axis=ctx.dim)  # indices are distinct per line
        return grad, None, None


class _DimTakeRepeats(_DimTake):
    @staticmethod
    def backward(ctx, g):
        grad = np.zeros(ctx.shape, dtype=np.float32)
        full = list(np.ix_(*[np.arange(s) for s in g.shape]))
        full[ctx.dim] = ctx.indices
        np.add.at(grad, tuple(full), g)
        return grad, None, None


# ------------------------------------------------- more element-wise math
class _Unary(Function):
    """An element-wise op ``_f(a, *params)`` with torch's derivative ``_df(g, a, out)``.
    ``_to_float``: integer and bool inputs compute in float32 (torch's promotion for
    erf, sin, ...); otherwise the dtype is kept (floor, sign, ...). Subclasses declare
    which of a and out the derivative reads (``saved_inputs`` / ``saves_output``)."""

    _to_float = True
    saved_inputs, saves_output = (0,), False

    @staticmethod
    def _f(a: np.ndarray, *params: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def _df(g: np.ndarray, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.zeros_like(g)  # piecewise constant (sign, floor, round): torch's zeros

    @classmethod
    def forward(cls, ctx, a, *params):
        if cls._to_float:
            a = _as_float(a)
        with np.errstate(all="ignore"):
            out = _contiguous(cls._f(a, *params))
        ctx.nparams = len(params)
        ctx.a = a if cls.saved_inputs else None
        ctx.out = out if cls.saves_output else None
        return out

    @classmethod
    def backward(cls, ctx, g):
        with np.errstate(all="ignore"):
            grad = np.asarray(cls._df(g, ctx.a, ctx.out), dtype=np.float32)
        return (grad,) + (None,) * ctx.nparams


class _Piecewise(_Unary):
    _to_float = False
    _bool_kernel: Optional[str] = None  # torch has no bool kernel of this name
    saved_inputs, saves_output = (), False

    @classmethod
    def forward(cls, ctx, a, *params):
        if cls._bool_kernel and a.dtype == np.bool_:
            raise NotImplementedError(f"\"{cls._bool_kernel}\" not implemented for 'Bool'")
        return super().forward(ctx, a, *params)


def torch_sign(a: np.ndarray) -> np.ndarray:
    """torch's sign of a numeric array: -1, 0 or 1, and 0 for NaN (numpy's gives NaN)."""
    return np.where(np.isnan(a), 0, np.sign(a)).astype(a.dtype)


class Sign(_Piecewise):
    @staticmethod
    def _f(a):
        return a.copy() if a.dtype == np.bool_ else torch_sign(a)


class Floor(_Piecewise):
    _bool_kernel = "floor_vml_cpu"

    @staticmethod
    def _f(a):
        return np.floor(a) if a.dtype == _FLOAT else a.copy()


class Ceil(_Piecewise):
    _bool_kernel = "ceil_vml_cpu"

    @staticmethod
    def _f(a):
        return np.ceil(a) if a.dtype == _FLOAT else a.copy()


class Round(_Piecewise):
    """Half to even, with torch's float32 arithmetic for ``decimals``: rint(a * 10^d) / 10^d,
    or rint(a / 10^-d) * 10^-d for negative d."""

    _bool_kernel = "round_vml_cpu"

    @staticmethod
    def _f(a, decimals):
        if a.dtype != _FLOAT:
            if decimals != 0:
                raise NotImplementedError(
                    f"\"round_cpu\" not implemented for '{_RANK_DTYPE_NAMES[a.dtype.kind]}'")
            return a.copy()
        if decimals == 0:
            return np.rint(a)
        scale = np.float32(10.0 ** abs(decimals))
        return np.rint(a * scale) / scale if decimals > 0 else np.rint(a / scale) * scale


class Reciprocal(_Unary):
    saved_inputs, saves_output = (), True
    _f = staticmethod(np.reciprocal)

    @staticmethod
    def _df(g, a, out):
        return -g * out * out


class Rsqrt(_Unary):
    saved_inputs, saves_output = (), True

    @staticmethod
    def _f(a):
        return np.float32(1.0) / np.sqrt(a)

    @staticmethod
    def _df(g, a, out):
        return np.float32(-0.5) * g * out * out * out


class Erf(_Unary):
    _f = staticmethod(erf_array)

    @staticmethod
    def _df(g, a, out):
        return np.float32(2.0 / math.sqrt(math.pi)) * np.exp(-a * a) * g


class Sin(_Unary):
    _f = staticmethod(np.sin)

    @staticmethod
    def _df(g, a, out):
        return g * np.cos(a)


class Cos(_Unary):
    _f = staticmethod(np.cos)

    @staticmethod
    def _df(g, a, out):
        return -g * np.sin(a)


class Lerp(Function):
    """a + w (b - a), with torch's two-sided formula (b - (b - a)(1 - w) for |w| >= 0.5),
    so lerp(a, b, 1) is b exactly."""

    saved_inputs, saves_output = (0, 1, 2), False

    @staticmethod
    def forward(ctx, a, b, w):
        ctx.a, ctx.b, ctx.w = a, b, w
        diff = binary(np.subtract, b, a)
        try:
            out = np.where(np.abs(w) < 0.5, a + w * diff, b - diff * (np.float32(1) - w))
        except ValueError:
            raise broadcast_error(diff.shape, np.shape(w)) from None
        return np.asarray(out, dtype=np.float32, order="C")

    @staticmethod
    def backward(ctx, g):
        a, b, w = ctx.a, ctx.b, ctx.w
        needs = ctx.needs_input_grad
        return (_unbroadcast(g * (np.float32(1) - w), a.shape) if needs[0] else None,
                _unbroadcast(g * w, b.shape) if needs[1] else None,
                _unbroadcast(g * (b - a), np.shape(w)) if needs[2] else None)


# ------------------------------------------------------------ more reductions
def _keep_reduced(x: np.ndarray, shape: Tuple[int, ...], dims, keepdim: bool) -> np.ndarray:
    """A reduction's result (or its gradient) with the reduced dims back as size 1."""
    if dims is None:
        return x.reshape((1,) * len(shape))
    return x if keepdim else np.expand_dims(x, dims)


def _check_reduced_sizes(a: np.ndarray, dims, op: str) -> None:
    """torch's errors for a max-like reduction over an empty dim."""
    if dims is None:
        if a.size == 0:
            raise RuntimeError(f"{op}(): Expected reduction dim to be specified for input.numel() "
                               "== 0. Specify the reduction dim with the 'dim' argument.")
        return
    for d in dims:
        if a.shape[d] == 0:
            raise IndexError(f"{op}(): Expected reduction dim {d} to have non-zero size.")


class AmaxAmin(Function):
    """amax / amin over ``dims``; the gradient spreads evenly over the elements equal to
    the result (torch's scale_grad_by_count: a NaN result makes its slice's gradient NaN)."""

    saved_inputs, saves_output = (0,), True

    @staticmethod
    def forward(ctx, a, dims, keepdim, largest):
        _check_reduced_sizes(a, dims, "amax" if largest else "amin")
        out = (np.amax if largest else np.amin)(a, axis=dims, keepdims=keepdim)
        ctx.a, ctx.dims, ctx.keepdim, ctx.out = a, dims, keepdim, out
        return _contiguous(out)

    @staticmethod
    def backward(ctx, g):
        a, dims = ctx.a, ctx.dims
        hit = a == _keep_reduced(ctx.out, a.shape, dims, ctx.keepdim)
        count = hit.sum(axis=dims, keepdims=True, dtype=np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = (_keep_reduced(g, a.shape, dims, ctx.keepdim) / count) * hit
        return _contiguous(grad, dtype=np.float32), None, None, None


class Prod(Function):
    """Product over one dim (or all); the gradient is g * out / a, or, where a slice holds
    a zero, the product of the other elements (exclusive cumulative products), as torch."""

    saved_inputs, saves_output = (0,), True

    @staticmethod
    def forward(ctx, a, dim, keepdim):
        out = np.prod(a, axis=dim, keepdims=keepdim)
        ctx.a, ctx.dim, ctx.keepdim, ctx.out = a, dim, keepdim, out
        return _contiguous(out, dtype=np.int64 if a.dtype == np.bool_ else a.dtype)

    @staticmethod
    def backward(ctx, g):
        a, dim = ctx.a, ctx.dim
        if a.ndim == 0:
            return g, None, None
        dims = None if dim is None else (dim,)
        g = _keep_reduced(g, a.shape, dims, ctx.keepdim)
        if not (a == 0).any():
            with np.errstate(divide="ignore", invalid="ignore"):
                grad = g * (_keep_reduced(ctx.out, a.shape, dims, ctx.keepdim) / a)
        else:
            flat = dim is None
            x, d = (a.reshape(-1), 0) if flat else (a, dim)
            others = _exclusive_cumprod(x, d) * np.flip(_exclusive_cumprod(np.flip(x, d), d), d)
            grad = g * (others.reshape(a.shape) if flat else others)
        return _contiguous(grad, dtype=np.float32), None, None


def _exclusive_cumprod(x: np.ndarray, d: int) -> np.ndarray:
    """Products of the elements before each one along ``d`` (1 for the first)."""
    ones = np.ones(x.shape[:d] + (1,) + x.shape[d + 1:], dtype=x.dtype)
    head = np.take(x, np.arange(x.shape[d] - 1), axis=d)
    return np.cumprod(np.concatenate([ones, head], axis=d), axis=d)


class Cumsum(Function):
    """Running sum along ``dim`` (float32 accumulated in float64, as torch's CPU kernel);
    the gradient is the reversed running sum of g."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, dim):
        ctx.dim = dim
        if a.dtype == _FLOAT:
            return np.cumsum(a, axis=dim, dtype=np.float64).astype(np.float32)
        return np.cumsum(a, axis=dim, dtype=np.int64)

    @staticmethod
    def backward(ctx, g):
        d = ctx.dim
        return _contiguous(np.flip(np.cumsum(np.flip(g, d), axis=d), d)), None


class LogSumExp(Function):
    """log(sum(exp(a))) over ``dims``, shifted by the (finite) maximum; the gradient is
    g * exp(a - out), as torch's."""

    saved_inputs, saves_output = (0,), True

    @staticmethod
    def forward(ctx, a, dims, keepdim):
        a = _as_float(a)
        if a.size:
            shift = np.amax(a, axis=dims, keepdims=True)
            shift = np.where(np.isinf(shift), np.float32(0), shift)
        else:
            shift = np.zeros(np.sum(a, axis=dims, keepdims=True).shape, np.float32)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            kept = np.log(np.sum(np.exp(a - shift), axis=dims, keepdims=True)) + shift
        ctx.a, ctx.dims, ctx.keepdim, ctx.kept = a, dims, keepdim, kept
        if keepdim:
            return kept
        return kept.reshape(()) if dims is None else np.squeeze(kept, dims)

    @staticmethod
    def backward(ctx, g):
        g = _keep_reduced(g, ctx.a.shape, ctx.dims, ctx.keepdim)
        with np.errstate(invalid="ignore", over="ignore"):
            return _contiguous(g * np.exp(ctx.a - ctx.kept)), None, None


class Variance(Function):
    """var (or std with ``root``) over ``dims`` with ``correction``. Gradients are torch's
    var_backward (2 / (N - correction)) * g * (a - mean) (NaN or inf when N <= correction)
    and std_backward, which is var's with g / (2 std), zero where std is 0."""

    saved_inputs, saves_output = (0,), True

    @staticmethod
    def forward(ctx, a, dims, correction, keepdim, root):
        count = a.size if dims is None else math.prod(a.shape[d] for d in dims)
        a64 = a.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = a64.mean(axis=dims, keepdims=True) if count else np.full(
                np.sum(a64, axis=dims, keepdims=True).shape, np.nan)
            centered = a64 - mean
            out = (centered * centered).sum(axis=dims, keepdims=keepdim) / max(count - correction, 0)
        if root:
            out = np.sqrt(out)
        out = _contiguous(out, dtype=np.float32)
        ctx.a, ctx.mean, ctx.dims, ctx.keepdim = a, mean.astype(np.float32), dims, keepdim
        ctx.dof, ctx.root, ctx.out = count - correction, root, out
        return out

    @staticmethod
    def backward(ctx, g):
        a, dims = ctx.a, ctx.dims
        g = _keep_reduced(g, a.shape, dims, ctx.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            if ctx.root:
                std = _keep_reduced(ctx.out, a.shape, dims, ctx.keepdim)
                g = np.where(std == 0, np.float32(0), g / (std * np.float32(2)))
            if ctx.dof <= 0:
                grad = g * np.where(a == ctx.mean, np.float32(np.nan), np.float32(np.inf))
            else:
                grad = np.float32(2.0 / ctx.dof) * g * (a - ctx.mean)
        return _contiguous(grad, dtype=np.float32), None, None, None, None


class VectorNorm(Function):
    """The p-norm over ``dims`` (torch.linalg.vector_norm), with torch's norm_backward:
    zero gradient where the norm is 0, ties sharing it for p = +-inf, none for p = 0."""

    saved_inputs, saves_output = (0,), True

    @staticmethod
    def forward(ctx, a, p, dims, keepdim):
        magnitude = np.abs(a).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if p == 2:
                out = np.sqrt(np.sum(magnitude * magnitude, axis=dims, keepdims=keepdim))
            elif p == 1:
                out = np.sum(magnitude, axis=dims, keepdims=keepdim)
            elif p == 0:
                out = np.sum(magnitude != 0, axis=dims, keepdims=keepdim)
            elif math.isinf(p):
                _check_reduced_sizes(a, dims, "linalg.vector_norm")
                out = (np.amax if p > 0 else np.amin)(magnitude, axis=dims, keepdims=keepdim)
            else:
                out = np.sum(magnitude ** p, axis=dims, keepdims=keepdim) ** (1.0 / p)
        out = _contiguous(out, dtype=np.float32)
        ctx.a, ctx.p, ctx.dims, ctx.keepdim, ctx.out = a, p, dims, keepdim, out
        return out

    @staticmethod
    def backward(ctx, g):
        a, p, dims = ctx.a, ctx.p, ctx.dims
        if p == 0:
            return None, None, None, None
        g = _keep_reduced(g, a.shape, dims, ctx.keepdim)
        norm = _keep_reduced(ctx.out, a.shape, dims, ctx.keepdim)
        sign = torch_sign(a)
        zero = np.float32(0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if p == 1:
                grad = sign * g
            elif p == 2:
                grad = g * np.where(norm == 0, zero, a / norm)
            elif math.isinf(p):
                hit = (np.abs(a) == norm) | np.isnan(a)
                grad = sign * ((g / hit.sum(axis=dims, keepdims=True, dtype=np.float32)) * hit)
            elif p < 1:
                scaled = sign * np.where(a == 0, zero, np.abs(a) ** np.float32(p - 1))
                grad = scaled * g * norm ** np.float32(1 - p)
            else:
                scaled = (sign * np.abs(a) ** np.float32(p - 1) if p < 2
                          else a * np.abs(a) ** np.float32(p - 2))
                grad = scaled * np.where(norm == 0, zero, g / norm ** np.float32(p - 1))
        return _contiguous(grad, dtype=np.float32), None, None, None


# ------------------------------------------- gather, scatter, rearrangements
def index_dtype_check(index: np.ndarray, op: str) -> None:
    if index.dtype != np.int64:
        raise RuntimeError(f"{op}(): Expected dtype int32/int64 for index")


def along_dim_key(index: np.ndarray, dim: int) -> Tuple[np.ndarray, ...]:
    """The advanced-index tuple that reads ``out[i][j][k] = a[i][index[i][j][k]][k]`` (for
    dim 1): gather's and scatter's addressing as one numpy index."""
    grids = list(np.indices(index.shape, sparse=True))
    grids[dim] = index
    return tuple(grids)


def check_along_dim(op: str, self_shape: Tuple[int, ...], index: np.ndarray, dim: int,
                    src_shape: Optional[Tuple[int, ...]] = None) -> None:
    """torch's shape and bounds rules for gather (and scatter with ``src_shape``): the index
    has self's rank, is no larger than self apart from ``dim`` (nor than src), and its
    values are in [0, self.shape[dim])."""
    index_dtype_check(index, op)
    ishape = index.shape
    if index.ndim != len(self_shape):
        raise RuntimeError("Index tensor must have the same number of dimensions as "
                           f"{'input' if src_shape is None else 'self'} tensor")
    if src_shape is not None and len(src_shape) != index.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as src tensor")
    for d, n in enumerate(ishape):
        fits_self = d == dim or n <= self_shape[d]
        if src_shape is None and not fits_self:
            raise RuntimeError(f"Size does not match at dimension {d} expected index {list(ishape)} "
                               f"to be no larger than self {list(self_shape)} apart from dimension {dim}")
        if src_shape is not None and (not fits_self or n > src_shape[d]):
            raise RuntimeError(f"Expected index {list(ishape)} to be no larger than self "
                               f"{list(self_shape)} apart from dimension {dim} and to be no larger "
                               f"size than src {list(src_shape)}")
    if index.size:
        bad = index[(index < 0) | (index >= self_shape[dim])]
        if bad.size:
            raise RuntimeError(f"index {bad.flat[0]} is out of bounds for dimension {dim} with "
                               f"size {self_shape[dim]}")


class Scatter(Function):
    """``base`` with ``base[key] = src[region]`` (or a scalar), as torch's scatter: the
    gradient of the written elements goes to src (gather of g), the rest to base."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, base, src, key, region):
        out = base.copy()
        out[key] = src[region] if region is not None else src
        ctx.key, ctx.region, ctx.src_shape = key, region, np.shape(src)
        return out

    @staticmethod
    def backward(ctx, g):
        gb = gs = None
        if ctx.needs_input_grad[0]:
            gb = g.copy()
            gb[ctx.key] = 0
        if ctx.needs_input_grad[1]:
            # torch refuses src larger than index here; the untouched part gets zero
            gs = np.zeros(ctx.src_shape, dtype=np.float32)
            gs[ctx.region] = g[ctx.key]
        return gb, gs, None, None


class LinearMap(Function):
    """A linear rearrangement of the elements (flip, roll, tril, diag, ...): ``fn`` makes
    the result and ``adjoint`` (its transpose) the gradient."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, fn, adjoint):
        ctx.adjoint = adjoint
        return _contiguous(fn(a))

    @staticmethod
    def backward(ctx, g):
        return _contiguous(ctx.adjoint(g), dtype=np.float32), None, None


def embed_diagonal(values: np.ndarray, shape: Tuple[int, int], k: int) -> np.ndarray:
    """A zero matrix of ``shape`` with ``values`` on its k-th diagonal (np.diagonal's
    adjoint)."""
    out = np.zeros(shape, dtype=values.dtype)
    i = np.arange(values.shape[0])
    out[i + max(-k, 0), i + max(k, 0)] = values
    return out


def stable_argsort(a: np.ndarray, dim: int, descending: bool) -> np.ndarray:
    """Sort order along ``dim`` keeping equal elements in input order, NaN counted as the
    largest value (torch's stable sort); descending sorts the reversed input ascending, so
    no negation (which would break ties, NaN, bool and the int64 minimum)."""
    if not descending:
        return np.argsort(a, axis=dim, kind="stable")
    order = np.argsort(np.flip(a, dim), axis=dim, kind="stable")
    return (a.shape[dim] - 1) - np.flip(order, dim)


# ------------------------------------------------------- integer arithmetic
def int_power(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer ``a ** b`` as torch's: int64, and ``b < 0`` gives 1 for a == 1, +-1 for
    a == -1, else 0 (numpy refuses negative integer powers)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    negative = b < 0
    out = binary(np.power, a, np.where(negative, 0, b))
    if negative.any():
        a_b = np.broadcast_to(a, out.shape)
        odd = np.broadcast_to(b % 2 == 1, out.shape)
        neg = np.broadcast_to(negative, out.shape)
        inverse = np.where(a_b == 1, 1, np.where(a_b == -1, np.where(odd, -1, 1), 0))
        out = np.where(neg, inverse, out)
    return np.asarray(out, dtype=np.int64, order="C")


def _check_integer_divisor(a: np.ndarray, b: np.ndarray) -> None:
    if a.dtype.kind in "iub" and b.dtype.kind in "iub" and not np.all(b):
        raise RuntimeError("ZeroDivisionError")


class FloorDivide(Function):
    """torch.floor_divide (``//``): rounds toward minus infinity; no derivative (torch:
    its backward is not implemented)."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, b):
        _check_integer_divisor(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            return _result_dtype(np.asarray(binary(np.floor_divide, a, b), order="C"))

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("the derivative for 'floor_divide' is not implemented.")


class Remainder(Function):
    """torch.remainder (``%``): the sign of the divisor, as Python's; the gradient is
    g for a and -g * floor(a / b) for b."""

    saved_inputs = staticmethod({(True, True): (0, 1), (True, False): (), (False, True): (0, 1),
                                 (False, False): ()}.__getitem__)
    saves_output = False

    @staticmethod
    def forward(ctx, a, b):
        _check_integer_divisor(a, b)
        ctx.a, ctx.b = a, b
        with np.errstate(divide="ignore", invalid="ignore"):
            return _result_dtype(np.asarray(binary(np.remainder, a, b), order="C"))

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        ga = _unbroadcast(g, a.shape) if ctx.needs_input_grad[0] else None
        gb = None
        if ctx.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = _result_dtype(_unbroadcast(-g * np.floor_divide(a, b), b.shape))
        return ga, gb


# ------------------------------------------------- in-place ops, out of place
# Tensor's in-place ops, recorded: each makes the new values of ``base`` (the tensor as
# it was) out of place, and the tensor takes over the node (Tensor._rebind).
class Fill(Function):
    """fill_(value): every element becomes ``value`` (a 0-d tensor)."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, base, value):
        return np.full(base.shape, value, dtype=base.dtype)

    @staticmethod
    def backward(ctx, g):
        return (np.zeros_like(g) if ctx.needs_input_grad[0] else None,
                np.asarray(g.sum(), dtype=np.float32) if ctx.needs_input_grad[1] else None)


class CopyFrom(Function):
    """copy_(src): ``src`` broadcast to base's shape, in base's dtype."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, base, src):
        ctx.src_shape = src.shape
        return np.array(np.broadcast_to(src, base.shape), dtype=base.dtype, order="C")

    @staticmethod
    def backward(ctx, g):
        return (np.zeros_like(g) if ctx.needs_input_grad[0] else None,
                _unbroadcast(g, ctx.src_shape) if ctx.needs_input_grad[1] else None)


class IndexPut(Function):
    """``base[index] = value``: the gradient of the overwritten elements goes to value
    (summed over its broadcast), the rest to base, as torch's index_put_."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, base, value, index):
        out = base.copy()
        target = out[index.first] if isinstance(index, TwoStepIndex) else out
        key = index.second if isinstance(index, TwoStepIndex) else index
        region = target[key]
        region_shape = np.shape(region)
        try:
            target[key] = value
        except ValueError:
            raise setitem_error(np.shape(value), region_shape) from None
        ctx.index, ctx.value_shape, ctx.region_shape = index, np.shape(value), region_shape
        return out

    @staticmethod
    def backward(ctx, g):
        index = ctx.index
        gb = gv = None
        if ctx.needs_input_grad[0]:
            gb = g.copy()
            if isinstance(index, TwoStepIndex):
                gb[index.first][index.second] = 0
            else:
                gb[index] = 0
        if ctx.needs_input_grad[1]:
            region = (g[index.first][index.second] if isinstance(index, TwoStepIndex)
                      else g[index])
            gv = _reduce_to(np.asarray(region, dtype=np.float32), ctx.value_shape)
        return gb, gv, None


def _reduce_to(grad: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """``grad`` summed down to ``shape``, which broadcast to grad's shape (possibly with
    leading 1s beyond grad's dims, as numpy's assignment allows)."""
    core = tuple(shape)
    while len(core) > grad.ndim and core[0] == 1:
        core = core[1:]
    return np.ascontiguousarray(_unbroadcast(grad, core)).reshape(shape)


def setitem_error(value_shape: Tuple[int, ...], region_shape: Tuple[int, ...]) -> RuntimeError:
    """torch's error for a value that does not broadcast to the indexed region."""
    lead = len(region_shape) - len(value_shape)
    if lead >= 0:
        for i, s in enumerate(value_shape):
            if s != 1 and s != region_shape[lead + i]:
                return RuntimeError(
                    f"The expanded size of the tensor ({region_shape[lead + i]}) must match the "
                    f"existing size ({s}) at non-singleton dimension {lead + i}.  Target sizes: "
                    f"{list(region_shape)}.  Tensor sizes: {list(value_shape)}"
                )
    return RuntimeError(f"shape mismatch: value tensor of shape {list(value_shape)} cannot be "
                        f"broadcast to indexing result of shape {list(region_shape)}")
