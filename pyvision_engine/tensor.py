"""pve.Tensor: a C-contiguous numpy buffer plus the autograd bookkeeping.

Data is float32 (int64 for class labels, bool for comparisons). Every Tensor
holds C-contiguous memory, so kernels never see strides; ops that would make
a strided view in torch (permute, transpose) copy. ``numpy()`` is a view.
"""

from __future__ import annotations

import numbers
import weakref
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np

from pyvision_engine import _ops
from pyvision_engine.autograd import _add_hook, _grad_hooks, _post_accumulate_hooks
from pyvision_engine.autograd import backward as _backward
from pyvision_engine.autograd import is_grad_enabled

float32 = np.dtype(np.float32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
_SUPPORTED_DTYPES = (float32, int64, bool_)

__all__ = ["Tensor", "tensor", "from_numpy", "from_dlpack", "float32", "int64", "bool_"]


def _normalize_dtype(dtype: Any) -> np.dtype:
    if dtype is float or dtype == "float":
        return float32
    if dtype is int or dtype == "long":
        return int64
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return float32
    if dt.kind in "iu":
        return int64
    if dt.kind == "b":
        return bool_
    raise TypeError(f"pyvision_engine supports float32, int64 and bool tensors, got dtype {dt}")


def _as_engine_array(data: Any, copy: bool) -> np.ndarray:
    """numpy array with the engine's dtype for ``data`` (float -> float32, int -> int64)."""
    if isinstance(data, Tensor):
        data = data._data
    arr = np.asarray(data) if not copy else np.array(data, copy=True)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"cannot make a tensor from data of dtype {arr.dtype}")
    target = _normalize_dtype(arr.dtype)
    if arr.dtype != target or not arr.flags.c_contiguous:
        arr = np.asarray(arr, dtype=target, order="C")
    return arr


class Tensor:
    """An n-dimensional array that can record operations for autograd."""

    __slots__ = ("_data", "requires_grad", "grad", "_node", "_retains_grad", "_grad_slot",
                 "_version", "_shared", "__weakref__")
    __array_priority__ = 1000  # numpy defers to Tensor's reflected operators

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        self._data = _as_engine_array(data, copy=False)
        self._node = None
        self._retains_grad = False
        self._grad_slot: Optional[np.ndarray] = None
        self._version = 0
        self._shared: Optional[_SharedChanges] = None
        self.grad: Optional[Tensor] = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array: np.ndarray) -> "Tensor":
        """Wrap an array the engine produced, without checks or copies where possible."""
        t = Tensor.__new__(Tensor)
        if array.dtype not in _SUPPORTED_DTYPES or not array.flags.c_contiguous:
            array = _as_engine_array(array, copy=False)
        # The slots' own setters skip the checks in __setattr__ (and the name
        # lookup of object.__setattr__: ~0.15 us less per op): this is the hot
        # path of every op, and these values need none.
        _SET_DATA(t, array)
        _SET_NODE(t, None)
        _SET_RETAINS_GRAD(t, False)
        _SET_GRAD_SLOT(t, None)
        _SET_VERSION(t, 0)
        _SET_SHARED(t, None)
        _SET_GRAD(t, None)
        _SET_REQUIRES_GRAD(t, False)
        return t

    # ----------------------------------------------------------------- basics
    @property
    def shape(self) -> Tuple[int, ...]:
        return self._data.shape

    def size(self, dim: Optional[int] = None) -> Union[Tuple[int, ...], int]:
        return self._data.shape if dim is None else self._data.shape[dim]

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    @property
    def device(self) -> str:
        return "cpu"

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def data(self) -> "Tensor":
        return self.detach()

    @data.setter
    def data(self, value: Any) -> None:
        self._data = _as_engine_array(value, copy=False)
        self._bump_version()

    def _bump_version(self) -> None:
        """Record an in-place change of ``_data`` made outside the Tensor API (an
        optimizer kernel, load_state_dict), so caches derived from the values
        (packed convolution weights) are rebuilt. Like torch's ``_version``."""
        self._version += 1
        if self._shared is not None:
            self._shared.count += 1

    def _changes(self) -> int:
        """A stamp that changes whenever the values may have changed: this tensor's
        in-place ops, and those of every tensor or numpy view sharing its memory through
        ``detach()``, ``.data``, ``numpy()`` or ``np.asarray`` (while such a numpy view
        is alive every call gives a new stamp, since writes through it leave no trace).
        What caches of values derived from a tensor (packed convolution weights) key on."""
        shared = self._shared
        return self._version if shared is None else self._version + shared.stamp()

    def _share_changes(self) -> "_SharedChanges":
        if self._shared is None:
            _SET_SHARED(self, _SharedChanges())
        return self._shared

    def _numpy_view(self) -> np.ndarray:
        """A writable numpy view of the data, counted while alive (see _changes)."""
        view = self._data.view()
        if not isinstance(view, np.ndarray):  # (a numpy scalar: nothing to write through)
            return view
        shared = self._share_changes()
        shared.views += 1
        weakref.finalize(view, shared.view_released)
        return view

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "grad" and value is not None:
            value = value if isinstance(value, Tensor) else Tensor(value)
            if value.shape != self._data.shape:
                raise RuntimeError(
                    f"assigned grad has shape {value.shape}, but the tensor has shape "
                    f"{self._data.shape}"
                )
        elif name == "requires_grad" and value and self._data.dtype != float32:
            raise RuntimeError("only float32 tensors can require gradients")
        object.__setattr__(self, name, value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if self._node is not None and not requires_grad:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables; use detach()"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self._node is not None:
            self._retains_grad = True

    def register_hook(self, hook: Callable) -> Any:
        """hook(grad) -> Tensor or None, called with the gradient w.r.t. this tensor
        each time it is computed (a leaf's: the sum over its uses, before it reaches
        ``.grad``); a returned tensor replaces the gradient. Returns a handle whose
        ``remove()`` takes the hook off. As torch's Tensor.register_hook."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._node is not None:
            # The backward pass finds the hooks from the node (a weak reference: no
            # cycle; a tensor inside a graph lives on in its consumers' inputs).
            self._node._hooked_tensor = weakref.ref(self)
        return _add_hook(_grad_hooks, self, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable) -> Any:
        """hook(tensor), called on a leaf after its ``.grad`` was updated in a backward
        pass. Returns a removable handle. As torch's."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._node is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        return _add_hook(_post_accumulate_hooks, self, hook)

    def backward(self, gradient: Any = None, retain_graph: Optional[bool] = None) -> None:
        """Accumulate gradients of this tensor into the ``.grad`` of the leaves."""
        _backward(self, gradient, retain_graph=retain_graph)

    def detach(self) -> "Tensor":
        """A tensor sharing this memory (and its record of in-place changes, as torch's
        version counter), outside the graph."""
        t = Tensor._wrap(self._data)
        _SET_SHARED(t, self._share_changes())
        return t

    def detach_(self) -> "Tensor":
        self._node = None
        self.requires_grad = False
        return self

    def numpy(self) -> np.ndarray:
        """The underlying array (a view: writes show in the tensor)."""
        if self.requires_grad:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
            )
        return self._numpy_view()

    def item(self) -> Union[float, int, bool]:
        if self._data.size != 1:
            raise ValueError(
                f"item(): only a tensor with one element can be converted to a Python scalar, "
                f"got shape {self.shape}"
            )
        return self._data.reshape(()).item()

    def tolist(self) -> Any:
        return self._data.tolist()

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._numpy_view()

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> Tuple[int, int]:
        return self._data.__dlpack_device__()

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return bool(self._data.reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype != int64 or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="tensor(")
        extras = []
        if self._data.dtype != float32:
            extras.append(f"dtype={self._data.dtype}")
        if self._node is not None:
            extras.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # ------------------------------------------------------- copies and types
    def clone(self) -> "Tensor":
        return _ops.Clone.apply(self)

    def contiguous(self) -> "Tensor":
        return self  # always C-contiguous

    def is_contiguous(self) -> bool:
        return True

    def to(self, *args: Any, **kwargs: Any) -> "Tensor":
        """Accepts a device ('cpu') and/or a dtype, as torch's ``to``."""
        dtype = kwargs.pop("dtype", None)
        for a in args:
            if isinstance(a, str) and a.startswith("cpu"):
                continue
            dtype = a
        kwargs.pop("device", None)
        return self if dtype is None else self.type(dtype)

    def cpu(self) -> "Tensor":
        return self

    def type(self, dtype: Any) -> "Tensor":
        dt = _normalize_dtype(dtype)
        if dt == self._data.dtype:
            return self
        # Only float32 tensors carry gradients, so a cast never needs a tape node.
        return Tensor._wrap(self._data.astype(dt))

    def float(self) -> "Tensor":
        return self.type(float32)

    def long(self) -> "Tensor":
        return self.type(int64)

    def bool(self) -> "Tensor":
        return self.type(bool_)

    # -------------------------------------------------------------- in place
    def _check_inplace(self) -> None:
        self._bump_version()  # every in-place op passes here
        if is_grad_enabled() and self.requires_grad:
            if self._node is None:
                raise RuntimeError(
                    "a leaf Variable that requires grad is being used in an in-place operation."
                )
            raise RuntimeError(
                "in-place operations on tensors that are part of the autograd graph are not "
                "supported; use the out-of-place form"
            )

    def zero_(self) -> "Tensor":
        self._check_inplace()
        self._data[...] = 0
        return self

    def fill_(self, value: Any) -> "Tensor":
        self._check_inplace()
        self._data[...] = value
        return self

    def copy_(self, src: Any) -> "Tensor":
        self._check_inplace()
        src_array = src._data if isinstance(src, Tensor) else np.asarray(src)
        try:
            np.copyto(self._data, np.broadcast_to(src_array, self._data.shape), casting="unsafe")
        except ValueError:
            raise ValueError(
                f"copy_: source of shape {np.shape(src_array)} cannot be broadcast to "
                f"{self._data.shape}"
            ) from None
        return self

    def _inplace(self, other: Any, ufunc: np.ufunc) -> "Tensor":
        self._check_inplace()
        if isinstance(other, Tensor) and is_grad_enabled() and other.requires_grad:
            raise RuntimeError("in-place update with a tensor that requires grad; use no_grad()")
        other_array = other._data if isinstance(other, Tensor) else other
        ufunc(self._data, other_array, out=self._data, casting="unsafe")
        return self

    def add_(self, other: Any, alpha: float = 1.0) -> "Tensor":
        if alpha != 1.0:
            other = (other._data if isinstance(other, Tensor) else np.asarray(other)) * alpha
        return self._inplace(other, np.add)

    def sub_(self, other: Any, alpha: float = 1.0) -> "Tensor":
        if alpha != 1.0:
            other = (other._data if isinstance(other, Tensor) else np.asarray(other)) * alpha
        return self._inplace(other, np.subtract)

    def mul_(self, other: Any) -> "Tensor":
        return self._inplace(other, np.multiply)

    def div_(self, other: Any) -> "Tensor":
        return self._inplace(other, np.true_divide)

    def __iadd__(self, other: Any) -> "Tensor":
        return self._inplace(other, np.add) if not self._records_with(other) else self + other

    def __isub__(self, other: Any) -> "Tensor":
        return self._inplace(other, np.subtract) if not self._records_with(other) else self - other

    def __imul__(self, other: Any) -> "Tensor":
        return self._inplace(other, np.multiply) if not self._records_with(other) else self * other

    def __itruediv__(self, other: Any) -> "Tensor":
        return self._inplace(other, np.true_divide) if not self._records_with(other) else self / other

    def _records_with(self, other: Any) -> bool:
        # A non-leaf in the graph updated "in place" falls back to the
        # out-of-place op (same values, recorded on the tape).
        if not is_grad_enabled():
            return False
        needs = self.requires_grad or (isinstance(other, Tensor) and other.requires_grad)
        if needs and self._node is None and self.requires_grad:
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation."
            )
        return needs

    # ----------------------------------------------------------- arithmetic
    def __add__(self, other: Any) -> "Tensor":
        return _ops.Add.apply(self, _operand(other, self))

    def __radd__(self, other: Any) -> "Tensor":
        return _ops.Add.apply(_operand(other, self), self)

    def __sub__(self, other: Any) -> "Tensor":
        return _ops.Sub.apply(self, _operand(other, self))

    def __rsub__(self, other: Any) -> "Tensor":
        return _ops.Sub.apply(_operand(other, self), self)

    def __mul__(self, other: Any) -> "Tensor":
        return _ops.Mul.apply(self, _operand(other, self))

    def __rmul__(self, other: Any) -> "Tensor":
        return _ops.Mul.apply(_operand(other, self), self)

    def __truediv__(self, other: Any) -> "Tensor":
        return _ops.Div.apply(self, _operand(other, self))

    def __rtruediv__(self, other: Any) -> "Tensor":
        return _ops.Div.apply(_operand(other, self), self)

    def __neg__(self) -> "Tensor":
        return _ops.Neg.apply(self)

    def __pos__(self) -> "Tensor":
        return self

    def __pow__(self, exponent: Any) -> "Tensor":
        if isinstance(exponent, Tensor):
            return _ops.PowTensor.apply(self, exponent)
        return _ops.Pow.apply(self, float(exponent))

    def __rpow__(self, base: Any) -> "Tensor":
        return _ops.PowTensor.apply(_operand(base, self), self)

    def __matmul__(self, other: Any) -> "Tensor":
        return _ops.matmul(self, _operand(other, self, keep_shape=True))

    def __rmatmul__(self, other: Any) -> "Tensor":
        return _ops.matmul(_operand(other, self, keep_shape=True), self)

    def __abs__(self) -> "Tensor":
        return _ops.Abs.apply(self)

    def matmul(self, other: Any) -> "Tensor":
        return self @ other

    def add(self, other: Any, alpha: float = 1.0) -> "Tensor":
        return self + (other * alpha if alpha != 1.0 else other)

    def sub(self, other: Any, alpha: float = 1.0) -> "Tensor":
        return self - (other * alpha if alpha != 1.0 else other)

    def mul(self, other: Any) -> "Tensor":
        return self * other

    def div(self, other: Any) -> "Tensor":
        return self / other

    def pow(self, exponent: Any) -> "Tensor":
        return self ** exponent

    def neg(self) -> "Tensor":
        return -self

    def abs(self) -> "Tensor":
        return _ops.Abs.apply(self)

    def exp(self) -> "Tensor":
        return _ops.Exp.apply(self)

    def log(self) -> "Tensor":
        return _ops.Log.apply(self)

    def sqrt(self) -> "Tensor":
        return _ops.Sqrt.apply(self)

    # Comparisons give bool tensors and are never differentiated.
    def _compare(self, other: Any, ufunc: np.ufunc) -> "Tensor":
        other_array = other._data if isinstance(other, Tensor) else other
        return Tensor._wrap(np.asarray(ufunc(self._data, other_array), order="C"))

    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(other, np.equal)

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        return self._compare(other, np.not_equal)

    def __lt__(self, other: Any) -> "Tensor":
        return self._compare(other, np.less)

    def __le__(self, other: Any) -> "Tensor":
        return self._compare(other, np.less_equal)

    def __gt__(self, other: Any) -> "Tensor":
        return self._compare(other, np.greater)

    def __ge__(self, other: Any) -> "Tensor":
        return self._compare(other, np.greater_equal)

    eq = __eq__
    ne = __ne__
    lt = __lt__
    le = __le__
    gt = __gt__
    ge = __ge__

    # ----------------------------------------------------------- reductions
    def sum(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        return _ops.Sum.apply(self, _ops.normalize_dims(dim, self.ndim, "sum"), keepdim)

    def mean(self, dim: Any = None, keepdim: bool = False) -> "Tensor":
        if self._data.dtype != float32:
            raise RuntimeError(f"mean(): expected a float32 tensor, got {self._data.dtype}")
        return _ops.Mean.apply(self, _ops.normalize_dims(dim, self.ndim, "mean"), keepdim)

    def max(self, dim: Optional[int] = None, keepdim: bool = False):
        """Full max (a 0-d tensor), or ``(values, indices)`` along ``dim``."""
        if isinstance(dim, Tensor):
            return _ops.Maximum.apply(self, dim)
        return _ops.reduce_extreme(self, dim, keepdim, largest=True)

    def min(self, dim: Optional[int] = None, keepdim: bool = False):
        if isinstance(dim, Tensor):
            return _ops.Minimum.apply(self, dim)
        return _ops.reduce_extreme(self, dim, keepdim, largest=False)

    def argmax(self, dim: Optional[int] = None, keepdim: bool = False) -> "Tensor":
        return _ops.arg_extreme(self, dim, keepdim, largest=True)

    def argmin(self, dim: Optional[int] = None, keepdim: bool = False) -> "Tensor":
        return _ops.arg_extreme(self, dim, keepdim, largest=False)

    # ---------------------------------------------------------------- shape
    def reshape(self, *shape: Any) -> "Tensor":
        return self._viewed(_ops.Reshape.apply(
            self, _ops.resolve_shape(shape, self._data.size, "reshape")))

    def view(self, *shape: Any) -> "Tensor":
        return self._viewed(_ops.Reshape.apply(
            self, _ops.resolve_shape(shape, self._data.size, "view")))

    def _viewed(self, out: "Tensor") -> "Tensor":
        """``out``, sharing this tensor's record of in-place changes when it is a view of
        this memory (as torch's views share the version counter): an in-place write
        through ``w.view(-1)`` then reaches the caches derived from ``w``."""
        if out is not self and np.may_share_memory(out._data, self._data):
            _SET_SHARED(out, self._share_changes())
        return out

    def view_as(self, other: "Tensor") -> "Tensor":
        return self.view(other.shape)

    def reshape_as(self, other: "Tensor") -> "Tensor":
        return self.reshape(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        return self._viewed(_ops.flatten(self, start_dim, end_dim))

    def unsqueeze(self, dim: int) -> "Tensor":
        d = _ops.normalize_dim(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim: Optional[int] = None) -> "Tensor":
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        d = _ops.normalize_dim(dim, self.ndim, "squeeze")
        if self.ndim == 0 or self.shape[d] != 1:
            return self
        return self.reshape(self.shape[:d] + self.shape[d + 1:])

    def permute(self, *dims: Any) -> "Tensor":
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if len(dims) != self.ndim:
            raise ValueError(
                f"permute: expected {self.ndim} dims for a tensor of shape {self.shape}, got {dims}"
            )
        perm = tuple(_ops.normalize_dim(d, self.ndim, "permute") for d in dims)
        if sorted(perm) != list(range(self.ndim)):
            raise ValueError(f"permute: dims {dims} are not a permutation of 0..{self.ndim - 1}")
        return _ops.Permute.apply(self, perm)

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        perm = list(range(self.ndim))
        a = _ops.normalize_dim(dim0, self.ndim, "transpose")
        b = _ops.normalize_dim(dim1, self.ndim, "transpose")
        perm[a], perm[b] = perm[b], perm[a]
        return _ops.Permute.apply(self, tuple(perm))

    def t(self) -> "Tensor":
        if self.ndim > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dimensions, got shape {self.shape}")
        return self if self.ndim < 2 else self.transpose(0, 1)

    @property
    def T(self) -> "Tensor":
        return self.permute(tuple(reversed(range(self.ndim))))

    def expand(self, *sizes: Any) -> "Tensor":
        if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
            sizes = tuple(sizes[0])
        lead = len(sizes) - self.ndim
        target = tuple(
            self.shape[i - lead] if (s == -1 and i >= lead) else s for i, s in enumerate(sizes)
        )
        return _ops.BroadcastTo.apply(self, target)

    # ------------------------------------------------ torch's conveniences
    def relu(self) -> "Tensor":
        from pyvision_engine.nn import functional as F

        return F.relu(self)

    def sigmoid(self) -> "Tensor":
        from pyvision_engine.nn import functional as F

        return F.sigmoid(self)

    def tanh(self) -> "Tensor":
        from pyvision_engine.nn import functional as F

        return F.tanh(self)

    def softmax(self, dim: int) -> "Tensor":
        from pyvision_engine.nn import functional as F

        return F.softmax(self, dim=dim)

    def log_softmax(self, dim: int) -> "Tensor":
        from pyvision_engine.nn import functional as F

        return F.log_softmax(self, dim=dim)

    def clamp(self, min: Any = None, max: Any = None) -> "Tensor":
        """Limit to [min, max]; the gradient flows where min <= x <= max, as torch."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
        return _ops.Clamp.apply(self, min, max)

    clip = clamp

    def var(self, dim: Any = None, unbiased: bool = True, keepdim: bool = False, *,
            correction: Optional[float] = None) -> "Tensor":
        """Variance with Bessel's correction by default (``correction=1``), as torch."""
        corr = (1 if unbiased else 0) if correction is None else correction
        dims = _ops.normalize_dims(dim, self.ndim, "var")
        count = self.numel() if dims is None else int(np.prod([self.shape[d] for d in dims]))
        centered = self - self.mean(dim, keepdim=True)
        return (centered * centered).sum(dim, keepdim) / float(max(count - corr, 0))

    def std(self, dim: Any = None, unbiased: bool = True, keepdim: bool = False, *,
            correction: Optional[float] = None) -> "Tensor":
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    def norm(self, p: Any = "fro", dim: Any = None, keepdim: bool = False) -> "Tensor":
        """Vector p-norm (2, 'fro', 1, inf) over ``dim`` (all elements by default)."""
        if p in (2, 2.0, "fro"):
            return (self * self).sum(dim, keepdim).sqrt()
        if p in (1, 1.0):
            return abs(self).sum(dim, keepdim)
        if p == float("inf"):
            a = abs(self)
            return a.max() if dim is None else a.max(dim, keepdim).values
        if isinstance(p, (int, float)) and p > 0:
            return (abs(self) ** p).sum(dim, keepdim) ** (1.0 / p)
        raise ValueError(f"norm: unsupported p={p!r}")

    def split(self, split_size_or_sections: Any, dim: int = 0) -> Tuple["Tensor", ...]:
        d = _ops.normalize_dim(dim, self.ndim, "split")
        n = self.shape[d]
        if isinstance(split_size_or_sections, int):
            if split_size_or_sections <= 0:
                raise ValueError(f"split: split_size must be positive, got {split_size_or_sections}")
            sizes = [min(split_size_or_sections, n - i) for i in range(0, n, split_size_or_sections)]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n:
                raise ValueError(f"split: sections {sizes} do not sum to dimension {d} of size {n}")
        out, start = [], 0
        for size in sizes:
            index = (slice(None),) * d + (slice(start, start + size),)
            out.append(self[index])
            start += size
        return tuple(out)

    def chunk(self, chunks: int, dim: int = 0) -> Tuple["Tensor", ...]:
        if chunks <= 0:
            raise ValueError(f"chunk: chunks must be positive, got {chunks}")
        n = self.shape[_ops.normalize_dim(dim, self.ndim, "chunk")]
        return self.split(max(1, -(-n // chunks)), dim)

    def repeat(self, *sizes: Any) -> "Tensor":
        reps = _ops.shape_arg(sizes)
        if len(reps) < self.ndim:
            raise ValueError(
                f"repeat: number of repeat dims ({len(reps)}) can not be smaller than the tensor's "
                f"number of dims ({self.ndim})"
            )
        return _ops.Repeat.apply(self, reps)

    def expand_as(self, other: "Tensor") -> "Tensor":
        return self.expand(other.shape)

    def masked_fill(self, mask: Any, value: Any) -> "Tensor":
        mask_array = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
        if mask_array.dtype != np.bool_:
            raise TypeError(f"masked_fill: mask must be a bool tensor, got {mask_array.dtype}")
        fill = value if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value, dtype=self.dtype))
        return _ops.Where.apply(mask_array, fill, self)

    def mm(self, other: "Tensor") -> "Tensor":
        if self.ndim != 2 or other.ndim != 2:
            raise ValueError(f"mm: expected 2-D tensors, got shapes {self.shape} and {other.shape}")
        return self @ other

    def bmm(self, other: "Tensor") -> "Tensor":
        if self.ndim != 3 or other.ndim != 3 or self.shape[0] != other.shape[0]:
            raise ValueError(
                f"bmm: expected 3-D tensors with the same batch size, got {self.shape} and {other.shape}"
            )
        return self @ other

    def all(self, dim: Optional[int] = None, keepdim: bool = False) -> "Tensor":
        axis = None if dim is None else _ops.normalize_dim(dim, self.ndim, "all")
        return Tensor._wrap(np.asarray(np.all(self._data, axis=axis, keepdims=keepdim), order="C"))

    def any(self, dim: Optional[int] = None, keepdim: bool = False) -> "Tensor":
        axis = None if dim is None else _ops.normalize_dim(dim, self.ndim, "any")
        return Tensor._wrap(np.asarray(np.any(self._data, axis=axis, keepdims=keepdim), order="C"))

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """``(values, indices)``; equal elements keep their order (a stable sort)."""
        d = _ops.normalize_dim(dim, self.ndim, "sort")
        key = -self._data if descending else self._data
        indices = np.argsort(key, axis=d, kind="stable")
        return _ops.SortResult(_ops.gather_values(self, indices, d),
                               Tensor._wrap(np.asarray(indices, dtype=np.int64, order="C")))

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        """``(values, indices)`` of the k largest (smallest) along ``dim``."""
        d = _ops.normalize_dim(dim, self.ndim, "topk")
        if not 0 <= k <= self.shape[d]:
            raise ValueError(f"topk: k={k} is out of range for dimension {d} of size {self.shape[d]}")
        key = -self._data if largest else self._data
        indices = np.take(np.argsort(key, axis=d, kind="stable"), np.arange(k), axis=d)
        return _ops.TopKResult(_ops.gather_values(self, indices, d),
                               Tensor._wrap(np.asarray(indices, dtype=np.int64, order="C")))

    def __getitem__(self, index: Any) -> "Tensor":
        return self._viewed(_ops.Index.apply(self, _ops.normalize_index(index)))

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace()
        value_array = value._data if isinstance(value, Tensor) else value
        index = _ops.normalize_index(index)
        if isinstance(index, _ops.TwoStepIndex):
            self._data[index.first][index.second] = value_array  # first is a view
        else:
            self._data[index] = value_array


def _operand(value: Any, like: Tensor, keep_shape: bool = False) -> Tensor:
    """Turn a Python number or array into a Tensor operand for ``like``."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        # Python scalars take the tensor's dtype (float32 stays float32).
        dtype = like._data.dtype if (like._data.dtype == float32 or isinstance(value, numbers.Integral)) else float32
        return Tensor._wrap(np.asarray(value, dtype=dtype))
    return Tensor(value)


(_SET_DATA, _SET_NODE, _SET_RETAINS_GRAD, _SET_GRAD_SLOT, _SET_VERSION, _SET_SHARED, _SET_GRAD,
 _SET_REQUIRES_GRAD) = (Tensor.__dict__[name].__set__ for name in (
     "_data", "_node", "_retains_grad", "_grad_slot", "_version", "_shared", "grad",
     "requires_grad"))


class _SharedChanges:
    """In-place changes made through any of the tensors and numpy views that share one
    memory (a tensor and its ``detach()`` / ``.data`` / ``numpy()`` views), as torch's
    version counter is shared by a tensor's views. ``views``: numpy views alive."""

    __slots__ = ("count", "views")

    def __init__(self) -> None:
        self.count = 0
        self.views = 0

    def stamp(self) -> int:
        if self.views:  # a live numpy view may have been written: a new stamp each time
            self.count += 1
        return self.count

    def view_released(self) -> None:
        self.views -= 1
        self.count += 1  # (what it wrote is now in the data)


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (floats become float32, ints int64)."""
    if isinstance(data, Tensor):
        data = data._data
    arr = np.array(data, copy=True)
    if dtype is not None:
        arr = arr.astype(_normalize_dtype(dtype))
    return Tensor(_as_engine_array(arr, copy=False), requires_grad=requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor that shares memory with ``array`` (float32, int64 or bool, C-contiguous)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    if array.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(
            f"from_numpy: memory can be shared only with float32, int64 or bool arrays, got "
            f"{array.dtype}; use pve.tensor(array) to copy and convert"
        )
    if not array.flags.c_contiguous:
        raise ValueError(
            "from_numpy: the array must be C-contiguous to share memory; use "
            "np.ascontiguousarray(array) or pve.tensor(array)"
        )
    return Tensor._wrap(array)


def from_dlpack(obj: Any) -> Tensor:
    """A tensor sharing memory with any DLPack producer (torch, JAX, numpy, ...)."""
    if isinstance(obj, Tensor):
        return obj
    array = np.from_dlpack(obj)
    if array.dtype in _SUPPORTED_DTYPES and array.flags.c_contiguous:
        return Tensor._wrap(array)
    return Tensor(array)


def as_tensor(value: Any) -> Tensor:
    """``value`` as a Tensor: Tensors pass through, arrays and numbers are converted."""
    return value if isinstance(value, Tensor) else Tensor(value)


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape = _ops.shape_arg(shape)
    return Tensor(np.zeros(shape, dtype=_normalize_dtype(dtype or float32)), requires_grad)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape = _ops.shape_arg(shape)
    return Tensor(np.ones(shape, dtype=_normalize_dtype(dtype or float32)), requires_grad)


def full(shape: Sequence[int], fill_value: Any, dtype: Any = None,
         requires_grad: bool = False) -> Tensor:
    return Tensor(np.full(tuple(shape), fill_value, dtype=_normalize_dtype(dtype or float32)),
                  requires_grad)


def empty(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape = _ops.shape_arg(shape)
    return Tensor(np.empty(shape, dtype=_normalize_dtype(dtype or float32)), requires_grad)


def zeros_like(t: Tensor, dtype: Any = None) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype)


def ones_like(t: Tensor, dtype: Any = None) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None) -> Tensor:
    if end is None:
        start, end = 0, start
    values = np.arange(start, end, step)
    return Tensor(values.astype(_normalize_dtype(dtype)) if dtype is not None else values)

