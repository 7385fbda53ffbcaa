"""pve.Tensor: a C-contiguous numpy buffer plus the autograd bookkeeping.

Data is float32 (int64 for class labels, bool for comparisons). Every Tensor
holds C-contiguous memory, so kernels never see strides; ops that would make
a strided view in torch (permute, transpose) copy. ``numpy()`` is a view.
"""

from __future__ import annotations

import numbers
import operator
import warnings
import weakref
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from pyvision_engine import _ops, _ops_math
from pyvision_engine.autograd import _add_hook, _grad_hooks, _post_accumulate_hooks
from pyvision_engine.autograd import backward as _backward
from pyvision_engine.autograd import is_grad_enabled
from pyvision_engine.autograd import no_grad as _no_grad

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

    __slots__ = ("_data", "requires_grad", "_grad", "_node", "_retains_grad", "_grad_slot",
                 "_version", "_shared", "_view_base", "__weakref__")
    __array_priority__ = 1000  # numpy defers to Tensor's reflected operators

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        self._data = _as_engine_array(data, copy=False)
        self._node = None
        self._retains_grad = False
        self._grad_slot: Optional[np.ndarray] = None
        self._version = 0
        self._shared: Optional[_SharedChanges] = None
        self._view_base: Optional[_ViewBase] = None
        _SET_GRAD(self, None)
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
        _SET_VIEW_BASE(t, None)
        _SET_GRAD(t, None)
        _SET_REQUIRES_GRAD(t, False)
        return t

    # ----------------------------------------------------------------- basics
    @property
    def shape(self) -> Tuple[int, ...]:
        return self._data.shape

    def size(self, dim: Optional[int] = None) -> Union[Tuple[int, ...], int]:
        if dim is None:
            return self._data.shape
        return self._data.shape[_ops.normalize_dim(dim, self._data.ndim, "size")]

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
        # New memory: no longer a view of anything, nor viewed (as torch's views keep
        # the old storage)
        self._release_copy_views()
        self._data = _as_engine_array(value, copy=False)
        _SET_VIEW_BASE(self, None)
        self._bump_version()

    def _release_copy_views(self) -> None:
        """The copy-views of self stop following it (and writing into it): they keep
        their values."""
        shared = self._shared
        if shared is not None and shared.copy_views:
            for ref in shared.copy_views:
                view = ref()
                if view is not None and view._view_base is not None and view._view_base.base is self:
                    _SET_VIEW_BASE(view, None)

    def _bump_version(self) -> None:
        """Record an in-place change of ``_data`` (made by a Tensor method, or outside the
        Tensor API: an optimizer kernel, load_state_dict), so caches derived from the
        values (packed convolution weights) are rebuilt. Like torch's ``_version``. The
        views of self that are copies (see ``_link_view``) then take the new values, and
        a view that is a copy writes its values into its base."""
        self._count_write()
        self._propagate_write()

    def _count_write(self) -> None:
        self._version += 1
        shared = self._shared
        if shared is not None:
            shared.count += 1
            shared.writes += 1

    def _propagate_write(self) -> None:
        """After an in-place write (and, when autograd records it, once self holds its
        new node): the copy-views of self see it, and a copy-view writes it into its
        base (see ``_link_view``)."""
        shared = self._shared
        if shared is not None and shared.copy_views:
            shared.refresh_copy_views()
        if self._view_base is not None:
            self._write_through()

    # A torch view shares its base's memory, so an in-place op on ``x.t()``, ``x[:, 1:3]``
    # or ``x[::2]`` changes ``x``. Every Tensor here is C-contiguous, so those views are
    # copies; each remembers its base (``_view_base``) and, after an in-place op on it,
    # writes its new values back (recorded as an index-put when autograd records, as
    # torch's CopySlices); the other way, an in-place change of the base (through the
    # Tensor API) refreshes the copies still alive (``_refresh``).
    def _link_view(self, out: "Tensor", index: Any = None, perm: Any = None) -> "Tensor":
        """``out`` (self indexed by ``index`` or permuted by ``perm``) as a view of
        self: sharing its record of changes when it shares its memory, else a copy
        that writes back (basic indexing and permutations only: torch's advanced
        indexing copies too)."""
        if out is self:
            return out
        linkable = perm is not None or _ops._is_basic_index(index)
        if np.may_share_memory(out._data, self._data):
            if self._view_base is None or not linkable:
                return self._viewed(out)
            # A slice of a copy-view is a copy-view of it too, so that in-place ops on
            # it can be recorded (autograd refuses in-place ops on shared memory)
            _SET_DATA(out, out._data.copy())
        if linkable:
            _SET_VIEW_BASE(out, _ViewBase(self, index, perm, out._data.shape))
            self._share_changes().add_copy_view(out)
        return out

    def _refresh(self) -> None:
        """This copy-view's values again from its base, after an in-place change of the
        base; when autograd records, its history becomes the base's new one (as torch
        regenerates a view's grad_fn)."""
        link = self._view_base
        base = link.base
        if is_grad_enabled() and (base.requires_grad or self.requires_grad):
            again = (_ops.Index.apply(base, link.index) if link.perm is None
                     else _ops.Permute.apply(base, link.perm))
            fresh = again._data
            _SET_NODE(self, again._node)
            _SET_REQUIRES_GRAD(self, again.requires_grad)
        else:
            fresh = link.of(base._data)
        np.copyto(self._data, fresh.reshape(self._data.shape))
        self._count_write()
        shared = self._shared  # (views of this view; never back into the base)
        if shared is not None and shared.copy_views:
            shared.refresh_copy_views()

    def _write_through(self) -> None:
        """Write this copy-view's values into its base (see ``_link_view``)."""
        link = self._view_base
        base = link.base
        if link.shape is None:  # self shares the memory of base, itself a copy-view
            base._bump_version()
            return
        values = self if self._data.shape == link.shape else self.reshape(link.shape)
        if base.requires_grad and base._node is None and is_grad_enabled():
            raise RuntimeError(
                "a view of a leaf Variable that requires grad is being used in an in-place "
                "operation."
            )
        if link.perm is not None:
            base.copy_(values.permute(tuple(np.argsort(link.perm))))
        else:
            base[link.index] = values

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

    @property
    def grad(self) -> Optional["Tensor"]:
        """The gradient accumulated by backward (leaves, and non-leaves that
        ``retain_grad()``); None until then. Reading it on another non-leaf warns, as
        torch's, since backward never fills it."""
        grad = self._grad
        if grad is None and self._node is not None and not self._retains_grad:
            warnings.warn(
                "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed. "
                "Its .grad attribute won't be populated during autograd.backward(). If you "
                "indeed want the .grad field to be populated for a non-leaf Tensor, use "
                ".retain_grad() on the non-leaf Tensor. If you access the non-leaf Tensor by "
                "mistake, make sure you access the leaf Tensor instead.",
                UserWarning, stacklevel=2,
            )
        return grad

    @grad.setter
    def grad(self, value: Optional["Tensor"]) -> None:
        # torch's checks: a Tensor (or None) of this tensor's dtype and shape.
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(
                    f"assigned grad expected to be a Tensor or None but got grad of type "
                    f"{_type_path(value)}"
                )
            if value._data.dtype != self._data.dtype:
                raise RuntimeError(
                    f"attempting to assign a gradient with dtype '{value._data.dtype}' to a "
                    f"tensor with dtype '{self._data.dtype}'. Please ensure that the gradient "
                    "and the tensor have the same dtype"
                )
            if value._data.shape != self._data.shape:
                raise RuntimeError(
                    f"attempting to assign a gradient of size '{list(value._data.shape)}' to a "
                    f"tensor of size '{list(self._data.shape)}'. Please ensure that the "
                    "gradient and the tensor are the same size"
                )
        _SET_GRAD(self, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "requires_grad":
            if value and self._data.dtype != float32:
                raise RuntimeError(
                    "only Tensors of floating point dtype can require gradients (pve: float32), "
                    f"got {self._data.dtype}"
                )
            if not value and getattr(self, "_node", None) is not None:  # (unset while copy
                # or pickle restores the slots in order)
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf variables. If you want to "
                    "use a computed variable in a subgraph that doesn't require "
                    "differentiation use var_no_grad = var.detach()."
                )
        object.__setattr__(self, name, value)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
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

    def backward(self, gradient: Any = None, retain_graph: Optional[bool] = None,
                 create_graph: bool = False, inputs: Any = None) -> None:
        """Accumulate gradients of this tensor into the ``.grad`` of the leaves.
        ``create_graph`` and ``inputs`` are torch's names; neither higher-order
        gradients nor a subset of the leaves are supported."""
        if create_graph:
            raise NotImplementedError("backward(create_graph=True): higher-order gradients are "
                                      "not supported by pyvision_engine")
        if inputs is not None:
            raise NotImplementedError("backward(inputs=...): accumulating into a subset of the "
                                      "leaves is not supported by pyvision_engine")
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
            raise RuntimeError(
                f"a Tensor with {self._data.size} elements cannot be converted to Scalar"
            )
        return self._data.reshape(()).item()

    def tolist(self) -> Any:
        return self._data.tolist()

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        if dtype is not None and np.dtype(dtype) != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._numpy_view()

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        if self.requires_grad:  # (as torch's: the consumer would see no graph)
            raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
        return self._data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> Tuple[int, int]:
        return self._data.__dlpack_device__()

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            what = "no values" if self._data.size == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {what} is ambiguous")
        return bool(self._data.reshape(()))

    def _scalar(self) -> Union[float, int, bool]:
        if self._data.size != 1:  # (float(t) / int(t): torch's ValueError, not item()'s)
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self._data.reshape(()).item()

    def __float__(self) -> float:
        return float(self._scalar())

    def __int__(self) -> int:
        return int(self._scalar())

    def __index__(self) -> int:
        if self._data.dtype != int64 or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        """torch's print format: 4 decimals (or scientific notation, or integers with a
        dot), aligned columns, summarised past 1000 elements, lines of 80; the dtype is
        named for an empty integer or bool tensor only (as torch's defaults)."""
        data = self._data
        suffixes = []
        if data.size == 0:
            body = "[]"
            if data.ndim != 1:
                suffixes.append(f"size={tuple(data.shape)}")
            if data.dtype != float32:
                suffixes.append(f"dtype={data.dtype}")
        else:
            body = _format_tensor(data, len("tensor("))
        if self._node is not None:
            suffixes.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            suffixes.append("requires_grad=True")
        return _add_suffixes("tensor(" + body, suffixes, len("tensor("))

    # ------------------------------------------------------- copies and types
    def clone(self) -> "Tensor":
        return _ops.Clone.apply(self)

    def contiguous(self) -> "Tensor":
        """Self (always C-contiguous here), or, for a copy-view (``_link_view``) that in
        torch would be strided, a copy that no longer writes into the base, as torch's."""
        if self._view_base is not None and not self.is_contiguous():
            return _ops.Clone.apply(self)
        return self

    def is_contiguous(self) -> bool:
        """Whether torch's tensor would be: the memory here always is, but a copy-view
        answers for the strided view of its base it stands for (``x.t()``: False)."""
        if self._view_base is None:
            return True
        strided = self._strided_view()
        return strided is not None and strided.flags.c_contiguous

    def _strided_view(self) -> Optional[np.ndarray]:
        """For a copy-view: the numpy view of its root base that torch's view would be
        (None: a step of the chain is not a view in torch, a reshape that copied)."""
        link = self._view_base
        if link is None:
            return self._data
        source = link.base._strided_view()
        if source is None:
            return None
        if link.shape is not None:
            source = link.of(source)
        if source.shape == self._data.shape:
            return source
        reshaped = source.reshape(self._data.shape)
        return reshaped if np.may_share_memory(reshaped, source) else None

    def to(self, *args: Any, **kwargs: Any) -> "Tensor":
        """torch's ``to``: ``to(dtype, non_blocking=False, copy=False)``, ``to(device=None,
        dtype=None, non_blocking=False, copy=False)`` (device 'cpu') or ``to(other,
        non_blocking=False, copy=False)`` (other's dtype). Self when nothing changes,
        unless ``copy``."""
        dtype = kwargs.pop("dtype", None)
        copy = kwargs.pop("copy", False)
        for name in ("device", "non_blocking", "memory_format"):
            kwargs.pop(name, None)
        if kwargs:
            raise TypeError(f"to() got an unexpected keyword argument '{next(iter(kwargs))}'")
        flags = []
        for a in args:
            if isinstance(a, (bool, np.bool_)):
                flags.append(bool(a))  # (non_blocking, then copy)
            elif isinstance(a, Tensor):
                dtype = a._data.dtype
            elif not (isinstance(a, str) and a.startswith("cpu")):
                dtype = a
        if len(flags) > 1:
            copy = flags[1]
        out = self if dtype is None else self.type(dtype)
        return self.clone() if copy and out is self else out

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

    def int(self) -> "Tensor":
        """Truncated toward zero, as torch's ``int()``; but int64, the engine's one integer
        dtype (torch gives int32)."""
        return self.type(int64)

    def double(self) -> "Tensor":
        raise TypeError("double(): pyvision_engine has no float64 tensors (its dtypes are "
                        "float32, int64 and bool); use float(), or .numpy().astype(np.float64) "
                        "for a float64 array")

    @property
    def itemsize(self) -> int:
        return self._data.itemsize

    def element_size(self) -> int:
        return self._data.itemsize

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def stride(self, dim: Optional[int] = None) -> Union[Tuple[int, ...], int]:
        """Steps in elements, as torch's contiguous strides (a size-0 or -1 dim counts as 1,
        where numpy's byte strides may differ)."""
        strides, step = [], 1
        for n in reversed(self._data.shape):
            strides.append(step)
            step *= _builtin_max(n, 1)
        strides.reverse()
        if dim is None:
            return tuple(strides)
        return strides[_ops.normalize_dim(dim, self._data.ndim, "stride")]

    # torch's new_* factories: self's dtype unless ``dtype`` is given
    def new_zeros(self, *size: Any, dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        return zeros(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_ones(self, *size: Any, dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        return ones(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_empty(self, *size: Any, dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        return empty(*size, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_full(self, size: Sequence[int], fill_value: Any, dtype: Any = None,
                 requires_grad: bool = False) -> "Tensor":
        return full(size, fill_value, dtype=dtype or self.dtype, requires_grad=requires_grad)

    def new_tensor(self, data: Any, dtype: Any = None, requires_grad: bool = False) -> "Tensor":
        if isinstance(data, Tensor):
            warnings.warn("To copy construct from a tensor, it is recommended to use "
                          "sourceTensor.detach().clone() or sourceTensor.detach().clone()"
                          ".requires_grad_(True), rather than tensor.new_tensor(sourceTensor).",
                          UserWarning, stacklevel=2)
        return tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)

    # -------------------------------------------------------------- in place
    # As torch: an in-place op on a tensor in the autograd graph (or with an operand
    # that requires grad) is recorded, and the tensor takes over the new node; on a
    # leaf that requires grad it is an error. Ops that recorded the old values (their
    # inputs, or their own outputs) find the change in backward (see Function).
    def _records_inplace(self, *others: Any) -> bool:
        """Whether an in-place op on self with ``others`` is recorded for autograd."""
        if not is_grad_enabled():
            return False
        link = self._view_base
        while link is not None:  # (before anything is written)
            base = link.base
            if base.requires_grad and base._node is None:
                raise RuntimeError("a view of a leaf Variable that requires grad is being used "
                                   "in an in-place operation.")
            link = base._view_base
        if self.requires_grad:
            if self._node is None:
                raise RuntimeError(
                    "a leaf Variable that requires grad is being used in an in-place operation."
                )
            return True
        if self._data.dtype != float32:  # (an integer tensor never carries a gradient)
            return False
        for o in others:
            if isinstance(o, Tensor) and o.requires_grad:
                return True
        return False

    def _before_write(self) -> None:
        """Keep what self's producer saved of these values (when its class does not say
        whether it reads its output) out of reach of the write about to happen."""
        node = self._node
        if node is not None and type(node).saves_output is None:
            _protect_saved(node, self._data)

    def _rebind(self, compute: Callable[["Tensor"], "Tensor"], keep_old: bool = False) -> "Tensor":
        """The recorded in-place op: ``compute(base)`` makes the new values (a Tensor of
        self's shape, recorded) from ``base``, which stands for self as it is now; they
        are written into self's memory and self takes over the new node. ``keep_old``:
        the op's backward reads base's values (so base keeps a copy)."""
        shared = self._shared
        if shared is not None and shared.tensor_views:
            raise RuntimeError(
                "an in-place operation on a tensor that shares its memory with another "
                "tensor (a view such as view(), reshape(), flatten() or basic indexing "
                "made, or a tensor that has such views) is not supported while autograd "
                "records; use the out-of-place operation"
            )
        base = Tensor._wrap(self._data.copy() if keep_old else self._data)
        _SET_NODE(base, self._node)
        _SET_REQUIRES_GRAD(base, self.requires_grad)
        result = compute(base)
        self._before_write()
        np.copyto(self._data, result._data, casting="unsafe")
        self._count_write()
        node = result._node
        if node is not None:
            _SET_NODE(self, node)
            _SET_REQUIRES_GRAD(self, True)
            if "_out_stamp" in node.__dict__:
                # The op's saved output is now self: a later write to self is an error in
                # backward, as torch's version check on an in-place op's result (exp_).
                shared = self._share_changes()
                node._out_stamp = (shared, shared.writes)
        self._propagate_write()  # (after the node: views and base record this op)
        return self

    def _apply_inplace(self, compute: Callable[["Tensor"], "Tensor"], *others: Any,
                       result_rank: Optional[int] = None, keep_old: bool = False) -> "Tensor":
        """The in-place form of an out-of-place op: ``compute(t)`` makes the new values
        from t (self as it is now), recorded through ``_rebind`` when autograd records
        (``keep_old``: compute's backward reads t's values), else written under no_grad.
        ``result_rank``: the rank (bool, int, float) of compute's result, which must fit
        self's dtype (torch: 'result type Float can't be cast to ... Long')."""
        if result_rank is not None:
            self._inplace_operand(0, result_rank)
        if self._records_inplace(*others):
            return self._rebind(compute, keep_old)
        with _no_grad():
            out = compute(self)
        self._before_write()
        np.copyto(self._data, out._data, casting="unsafe")
        self._bump_version()
        return self

    def _reshape_(self, shape: Tuple[int, ...]) -> "Tensor":
        """squeeze_ / unsqueeze_: self takes the new shape (the same memory), recorded as a
        reshape; torch counts it as an in-place write (the version goes up)."""
        if self._records_inplace():
            _SET_NODE(self, _ops.Reshape.apply(self, shape)._node)
        _SET_DATA(self, self._data.reshape(shape))
        self._release_copy_views()  # (their indices were of the old shape)
        self._count_write()  # (the values are unchanged: nothing to propagate)
        return self

    def _inplace_operand(self, other: Any, result_rank: Optional[int] = None) -> Any:
        """``other`` as an array for an in-place op on self, checked as torch: the
        result's type (of rank ``result_rank`` if given) must fit self's dtype, and its
        shape must be self's shape."""
        rank = _KIND_RANK[self._data.dtype.kind]
        other_rank = _value_rank(other) if result_rank is None else result_rank
        if other_rank > rank:
            raise RuntimeError(
                f"result type {_RANK_NAMES[other_rank]} can't be cast to the desired output "
                f"type {_RANK_NAMES[rank]}"
            )
        other_array = other._data if isinstance(other, Tensor) else np.asarray(other)
        _check_fits(self._data.shape, other_array.shape)
        return other_array

    def _inplace(self, other: Any, ufunc: np.ufunc, function: Any,
                 result_rank: Optional[int] = None) -> "Tensor":
        recording = self._records_inplace(other)  # (the leaf check first, as torch)
        other_array = self._inplace_operand(other, result_rank)
        if recording:
            operand = other if isinstance(other, Tensor) else _operand(other, self)
            keep_old = function in (_ops.Mul, _ops.Div) and operand.requires_grad
            return self._rebind(lambda base: function.apply(base, operand), keep_old)
        self._before_write()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ufunc(self._data, other_array, out=self._data, casting="unsafe")
        self._bump_version()
        return self

    def zero_(self) -> "Tensor":
        return self.fill_(0)

    def fill_(self, value: Any) -> "Tensor":
        if isinstance(value, Tensor) and value._data.ndim != 0:
            raise RuntimeError(
                "fill_ only supports 0-dimension value tensor but got tensor with "
                f"{value._data.ndim} dimensions."
            )
        if self._records_inplace(value):
            fill = value if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value, dtype=float32))
            return self._rebind(lambda base: _ops.Fill.apply(base, fill))
        self._before_write()
        self._data[...] = value._data if isinstance(value, Tensor) else value
        self._bump_version()
        return self

    def copy_(self, src: Any) -> "Tensor":
        recording = self._records_inplace(src)
        src_array = src._data if isinstance(src, Tensor) else np.asarray(src)
        _check_fits(self._data.shape, src_array.shape)
        if recording:
            source = src if isinstance(src, Tensor) else Tensor._wrap(np.asarray(src_array, dtype=float32))
            return self._rebind(lambda base: _ops.CopyFrom.apply(base, source))
        self._before_write()
        np.copyto(self._data, np.broadcast_to(src_array, self._data.shape), casting="unsafe")
        self._bump_version()
        return self

    def _check_alpha(self, alpha: Any) -> None:
        if self._data.dtype != float32 and _value_rank(alpha) == 2:
            raise RuntimeError(
                "For integral input tensors, argument alpha must not be a floating point number."
            )

    def add_(self, other: Any, alpha: float = 1) -> "Tensor":
        self._check_alpha(alpha)
        if alpha != 1.0:
            other = other * alpha if isinstance(other, Tensor) else np.asarray(other) * alpha
        return self._inplace(other, np.add, _ops.Add)

    def sub_(self, other: Any, alpha: float = 1) -> "Tensor":
        self._check_alpha(alpha)
        if self._data.dtype == bool_ or _value_rank(other) == 0:  # (as the out-of-place op)
            raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not "
                               "supported. If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        if alpha != 1.0:
            other = other * alpha if isinstance(other, Tensor) else np.asarray(other) * alpha
        return self._inplace(other, np.subtract, _ops.Sub)

    def mul_(self, other: Any) -> "Tensor":
        return self._inplace(other, np.multiply, _ops.Mul)

    def div_(self, other: Any, *, rounding_mode: Optional[str] = None) -> "Tensor":
        if rounding_mode is not None:
            return self._binary_(lambda t, o: t.divide(o, rounding_mode=rounding_mode), other,
                                 False)
        return self._inplace(other, np.true_divide, _ops.Div, result_rank=2)

    def clamp_(self, min: Any = None, max: Any = None) -> "Tensor":
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        rank = _builtin_max(_value_rank(min) if min is not None else 0,
                            _value_rank(max) if max is not None else 0)
        for bound in (min, max):
            if bound is not None:
                self._inplace_operand(bound, rank)
        # Clamp's backward reads the old values for tensor bounds that need a gradient
        keep_old = any(isinstance(b, Tensor) and b.requires_grad for b in (min, max))
        return self._apply_inplace(lambda t: t.clamp(min, max), min, max, keep_old=keep_old)

    clip_ = clamp_

    # Element-wise in-place forms. The float ones refuse integer tensors, as torch; abs_
    # keeps the old values for its backward (exp, sqrt, sigmoid, tanh, relu read the output).
    def exp_(self) -> "Tensor":
        return self._apply_inplace(Tensor.exp, result_rank=2)

    def sqrt_(self) -> "Tensor":
        return self._apply_inplace(Tensor.sqrt, result_rank=2)

    def sigmoid_(self) -> "Tensor":
        return self._apply_inplace(Tensor.sigmoid, result_rank=2)

    def tanh_(self) -> "Tensor":
        return self._apply_inplace(Tensor.tanh, result_rank=2)

    def abs_(self) -> "Tensor":
        return self._apply_inplace(Tensor.abs, keep_old=True)

    def relu_(self) -> "Tensor":
        return self._apply_inplace(Tensor.relu)

    # In-place random fills (pyvision_engine/_sampling.py): torch's checks and dtypes,
    # the engine's generator; each returns self with its version bumped.
    def normal_(self, mean: float = 0, std: float = 1, *, generator: Any = None) -> "Tensor":
        return _sampling().normal_(self, mean, std, generator=generator)

    def uniform_(self, from_: float = 0, to: float = 1, *, generator: Any = None) -> "Tensor":
        return _sampling().uniform_(self, from_, to, generator=generator)

    def bernoulli_(self, p: Any = 0.5, *, generator: Any = None) -> "Tensor":
        return _sampling().bernoulli_(self, p, generator=generator)

    def bernoulli(self, p: Any = None, *, generator: Any = None) -> "Tensor":
        return _sampling().bernoulli(self, p, generator=generator)

    def random_(self, from_: Any = None, to: Any = None, *, generator: Any = None) -> "Tensor":
        return _sampling().random_(self, from_, to, generator=generator)

    def exponential_(self, lambd: float = 1, *, generator: Any = None) -> "Tensor":
        return _sampling().exponential_(self, lambd, generator=generator)

    def log_normal_(self, mean: float = 1, std: float = 2, *, generator: Any = None) -> "Tensor":
        return _sampling().log_normal_(self, mean, std, generator=generator)

    def cauchy_(self, median: float = 0, sigma: float = 1, *, generator: Any = None) -> "Tensor":
        return _sampling().cauchy_(self, median, sigma, generator=generator)

    def geometric_(self, p: float, *, generator: Any = None) -> "Tensor":
        return _sampling().geometric_(self, p, generator=generator)

    def multinomial(self, num_samples: int, replacement: bool = False, *,
                    generator: Any = None) -> "Tensor":
        return _sampling().multinomial(self, num_samples, replacement, generator=generator)

    def masked_fill_(self, mask: Any, value: Any) -> "Tensor":
        mask_array = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
        _check_fits(self._data.shape, mask_array.shape)
        return self._apply_inplace(lambda t: t.masked_fill(mask_array, value), value)

    def scatter_(self, dim: int, index: Any, src: Any = None, value: Any = None, *,
                 reduce: Optional[str] = None) -> "Tensor":
        return self._apply_inplace(lambda t: t.scatter(dim, index, src, value, reduce=reduce),
                                   src if src is not None else value)

    def squeeze_(self, dim: Any = None) -> "Tensor":
        with _no_grad():
            shape = self.squeeze(dim).shape
        return self._reshape_(shape)

    def unsqueeze_(self, dim: int) -> "Tensor":
        d = _ops.normalize_dim(dim, self.ndim + 1, "unsqueeze")
        return self._reshape_(self.shape[:d] + (1,) + self.shape[d:])

    # ``a += b`` is the in-place op, as torch's (the same object, changed).
    def __iadd__(self, other: Any) -> "Tensor":
        return self.add_(other)

    def __isub__(self, other: Any) -> "Tensor":
        return self.sub_(other)

    def __imul__(self, other: Any) -> "Tensor":
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> "Tensor":
        return self.div_(other)

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
            if self._data.dtype != float32 and exponent._data.dtype != float32:
                return Tensor._wrap(_ops.int_power(self._data, exponent._data))
            return _ops.PowTensor.apply(self, exponent)
        if self._data.dtype != float32 and _value_rank(exponent) < 2:
            # integer ** integer stays int64, as torch
            if operator.index(exponent) < 0:
                raise RuntimeError("Integers to negative integer powers are not allowed.")
            return Tensor._wrap(_ops.int_power(self._data, np.asarray(exponent)))
        return _ops.Pow.apply(self, float(exponent))

    def __rpow__(self, base: Any) -> "Tensor":
        if self._data.dtype != float32 and _value_rank(base) < 2:
            return Tensor._wrap(_ops.int_power(np.asarray(base), self._data))
        return _ops.PowTensor.apply(_operand(base, self), self)

    def __floordiv__(self, other: Any) -> "Tensor":
        return _ops.FloorDivide.apply(self, _operand(other, self))

    def __rfloordiv__(self, other: Any) -> "Tensor":
        return _ops.FloorDivide.apply(_operand(other, self), self)

    def __mod__(self, other: Any) -> "Tensor":
        return _ops.Remainder.apply(self, _operand(other, self))

    def __rmod__(self, other: Any) -> "Tensor":
        return _ops.Remainder.apply(_operand(other, self), self)

    def floor_divide(self, other: Any) -> "Tensor":
        return self // other

    def remainder(self, other: Any) -> "Tensor":
        return self % other

    def floor_divide_(self, other: Any) -> "Tensor":
        return self._binary_(Tensor.floor_divide, other, False)

    def remainder_(self, other: Any) -> "Tensor":
        return self._binary_(Tensor.remainder, other, False)

    def pow_(self, exponent: Any) -> "Tensor":
        return self._binary_(Tensor.pow, exponent, False)

    def addcmul(self, tensor1: Any, tensor2: Any, *, value: Any = 1) -> "Tensor":
        """self + value * tensor1 * tensor2."""
        return self + _operand(tensor1, self) * tensor2 * value

    def addcdiv(self, tensor1: Any, tensor2: Any, *, value: Any = 1) -> "Tensor":
        """self + value * tensor1 / tensor2."""
        return self + _operand(tensor1, self) / tensor2 * value

    def addcmul_(self, tensor1: Any, tensor2: Any, *, value: Any = 1) -> "Tensor":
        return self._apply_inplace(lambda t: t.addcmul(tensor1, tensor2, value=value),
                                   tensor1, tensor2, keep_old=False)

    def addcdiv_(self, tensor1: Any, tensor2: Any, *, value: Any = 1) -> "Tensor":
        return self._apply_inplace(lambda t: t.addcdiv(tensor1, tensor2, value=value),
                                   tensor1, tensor2, keep_old=False)

    def logical_and(self, other: Any) -> "Tensor":
        return Tensor._wrap(np.asarray(np.logical_and(self._data, _array_of(other)), order="C"))

    def logical_or(self, other: Any) -> "Tensor":
        return Tensor._wrap(np.asarray(np.logical_or(self._data, _array_of(other)), order="C"))

    def logical_xor(self, other: Any) -> "Tensor":
        return Tensor._wrap(np.asarray(np.logical_xor(self._data, _array_of(other)), order="C"))

    def bitwise_and(self, other: Any) -> "Tensor":
        return self & other

    def bitwise_or(self, other: Any) -> "Tensor":
        return self | other

    def bitwise_xor(self, other: Any) -> "Tensor":
        return self ^ other

    def bitwise_not(self) -> "Tensor":
        return ~self

    # Logical (bool) and bitwise (int64) operators; never differentiated.
    def _bitwise(self, other: Any, ufunc: np.ufunc, name: str, reflected: bool = False) -> "Tensor":
        a = self._data
        if isinstance(other, (float, np.floating)):  # (not truncated to an int)
            raise NotImplementedError(f'"{name}_cpu" not implemented for \'Float\'')
        b = other._data if isinstance(other, Tensor) else np.asarray(
            other, dtype=bool_ if isinstance(other, (bool, np.bool_)) else int64)
        if a.dtype == float32 or b.dtype.kind == "f":
            raise NotImplementedError(f'"{name}_cpu" not implemented for \'Float\'')
        if a.dtype != b.dtype:
            a, b = a.astype(int64), b.astype(int64)
        # (np.asarray, not np.ascontiguousarray: that makes a 0-d result 1-d)
        return Tensor._wrap(np.asarray(_ops.binary(ufunc, b, a) if reflected
                                       else _ops.binary(ufunc, a, b), order="C"))

    def __and__(self, other: Any) -> "Tensor":
        return self._bitwise(other, np.bitwise_and, "bitwise_and")

    def __or__(self, other: Any) -> "Tensor":
        return self._bitwise(other, np.bitwise_or, "bitwise_or")

    def __xor__(self, other: Any) -> "Tensor":
        return self._bitwise(other, np.bitwise_xor, "bitwise_xor")

    def __rand__(self, other: Any) -> "Tensor":
        return self._bitwise(other, np.bitwise_and, "bitwise_and", reflected=True)

    def __ror__(self, other: Any) -> "Tensor":
        return self._bitwise(other, np.bitwise_or, "bitwise_or", reflected=True)

    def __rxor__(self, other: Any) -> "Tensor":
        return self._bitwise(other, np.bitwise_xor, "bitwise_xor", reflected=True)

    def __invert__(self) -> "Tensor":
        if self._data.dtype == float32:
            raise TypeError("~ (operator.invert) is only implemented on integer and Boolean-type "
                            "tensors")
        return Tensor._wrap(np.invert(self._data))

    def logical_not(self) -> "Tensor":
        return Tensor._wrap(np.logical_not(self._data))

    def __matmul__(self, other: Any) -> "Tensor":
        return _ops.matmul(self, _operand(other, self, keep_shape=True))

    def __rmatmul__(self, other: Any) -> "Tensor":
        return _ops.matmul(_operand(other, self, keep_shape=True), self)

    def __abs__(self) -> "Tensor":
        return _ops.Abs.apply(self)

    def matmul(self, other: Any) -> "Tensor":
        return self @ other

    def add(self, other: Any, alpha: float = 1.0) -> "Tensor":
        self._check_common_alpha(other, alpha)
        return self + (other * alpha if alpha != 1.0 else other)

    def sub(self, other: Any, alpha: float = 1.0) -> "Tensor":
        self._check_common_alpha(other, alpha)
        return self - (other * alpha if alpha != 1.0 else other)

    def _check_common_alpha(self, other: Any, alpha: Any) -> None:
        """torch's check on the result type: a float alpha needs a float result."""
        if (_value_rank(alpha) == 2 and _KIND_RANK[self._data.dtype.kind] < 2
                and _value_rank(other) < 2):
            raise RuntimeError(
                "For integral input tensors, argument alpha must not be a floating point number."
            )

    def mul(self, other: Any) -> "Tensor":
        return self * other

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

    def sign(self) -> "Tensor":
        return _ops.Sign.apply(self)

    def floor(self) -> "Tensor":
        return _ops.Floor.apply(self)

    def ceil(self) -> "Tensor":
        return _ops.Ceil.apply(self)

    def round(self, decimals: int = 0) -> "Tensor":
        """Half to even (torch's rounding), at ``decimals`` decimal places."""
        return _ops.Round.apply(self, operator.index(decimals))

    def reciprocal(self) -> "Tensor":
        return _ops.Reciprocal.apply(self)

    def rsqrt(self) -> "Tensor":
        return _ops.Rsqrt.apply(self)

    def square(self) -> "Tensor":
        # torch's square is pow(2): integers stay integers (bool becomes int64)
        return (self.long() if self._data.dtype == bool_ else self) ** 2

    def erf(self) -> "Tensor":
        return _ops.Erf.apply(self)

    def sin(self) -> "Tensor":
        return _ops.Sin.apply(self)

    def cos(self) -> "Tensor":
        return _ops.Cos.apply(self)

    # More element-wise math (_ops_math.py): float32 results for integer / bool inputs
    # except trunc (dtype kept) and nan_to_num (integers returned unchanged), as torch.
    def log1p(self) -> "Tensor":
        return _ops_math.Log1p.apply(self)

    def log2(self) -> "Tensor":
        return _ops_math.Log2.apply(self)

    def log10(self) -> "Tensor":
        return _ops_math.Log10.apply(self)

    def expm1(self) -> "Tensor":
        return _ops_math.Expm1.apply(self)

    def exp2(self) -> "Tensor":
        return _ops_math.Exp2.apply(self)

    def tan(self) -> "Tensor":
        return _ops_math.Tan.apply(self)

    def asin(self) -> "Tensor":
        return _ops_math.Asin.apply(self)

    def acos(self) -> "Tensor":
        return _ops_math.Acos.apply(self)

    def atan(self) -> "Tensor":
        return _ops_math.Atan.apply(self)

    def sinh(self) -> "Tensor":
        return _ops_math.Sinh.apply(self)

    def cosh(self) -> "Tensor":
        return _ops_math.Cosh.apply(self)

    def asinh(self) -> "Tensor":
        return _ops_math.Asinh.apply(self)

    def acosh(self) -> "Tensor":
        return _ops_math.Acosh.apply(self)

    def atanh(self) -> "Tensor":
        return _ops_math.Atanh.apply(self)

    arcsin, arccos, arctan = asin, acos, atan
    arcsinh, arccosh, arctanh = asinh, acosh, atanh

    def trunc(self) -> "Tensor":
        return _ops_math.Trunc.apply(self)

    fix = trunc

    def frac(self) -> "Tensor":
        return _ops_math.Frac.apply(self)

    def logit(self, eps: Optional[float] = None) -> "Tensor":
        """log(p / (1 - p)), p clamped to [eps, 1 - eps] when eps is given."""
        return _ops_math.Logit.apply(self, None if eps is None else float(eps))

    def nan_to_num(self, nan: float = 0.0, posinf: Optional[float] = None,
                   neginf: Optional[float] = None) -> "Tensor":
        """NaN -> nan, +inf -> posinf, -inf -> neginf; the infinities default to float32's
        largest and lowest finite values."""
        return _ops_math.NanToNum.apply(self, nan, posinf, neginf)

    def atan2(self, other: "Tensor") -> "Tensor":
        return _ops_math.Atan2.apply(self, _tensor_arg(other, "atan2", "other"))

    arctan2 = atan2

    def hypot(self, other: "Tensor") -> "Tensor":
        return _ops_math.Hypot.apply(self, _tensor_arg(other, "hypot", "other"))

    def logaddexp(self, other: "Tensor") -> "Tensor":
        return _ops_math.LogAddExp.apply(self, _tensor_arg(other, "logaddexp", "other"))

    def xlogy(self, other: Any) -> "Tensor":
        return _ops_math.XLogY.apply(self, _operand(other, self))

    def copysign(self, other: Any) -> "Tensor":
        return _ops_math.CopySign.apply(self, _operand(other, self))

    def fmod(self, other: Any) -> "Tensor":
        return _ops_math.Fmod.apply(self, _operand(other, self))

    def heaviside(self, values: "Tensor") -> "Tensor":
        values = _tensor_arg(values, "heaviside", "values")
        return Tensor._wrap(_ops_math.heaviside_array(self._data, values._data))

    def negative(self) -> "Tensor":
        return -self

    def subtract(self, other: Any, *, alpha: float = 1) -> "Tensor":
        return self.sub(other, alpha=alpha)

    def multiply(self, other: Any) -> "Tensor":
        return self * other

    def true_divide(self, other: Any) -> "Tensor":
        return self / other

    def divide(self, other: Any, *, rounding_mode: Optional[str] = None) -> "Tensor":
        """self / other; rounding_mode 'trunc' rounds the quotient toward zero, 'floor'
        toward minus infinity (torch.div's modes)."""
        if rounding_mode is None:
            return self / other
        if rounding_mode not in ("trunc", "floor"):
            raise RuntimeError("div expected rounding_mode to be one of None, 'trunc', or "
                               f"'floor' but found '{rounding_mode}'")
        return _ops_math.RoundedDivide.apply(self, _operand(other, self), rounding_mode)

    div = divide

    # In-place forms (torch: a float result can't be written into an integer tensor).
    def _unary_(self, method: Callable[["Tensor"], "Tensor"], float_result: bool) -> "Tensor":
        return self._apply_inplace(method, result_rank=2 if float_result else None,
                                   keep_old=True)

    def log1p_(self) -> "Tensor":
        return self._unary_(Tensor.log1p, True)

    def log2_(self) -> "Tensor":
        return self._unary_(Tensor.log2, True)

    def log10_(self) -> "Tensor":
        return self._unary_(Tensor.log10, True)

    def expm1_(self) -> "Tensor":
        return self._unary_(Tensor.expm1, True)

    def exp2_(self) -> "Tensor":
        return self._unary_(Tensor.exp2, True)

    def tan_(self) -> "Tensor":
        return self._unary_(Tensor.tan, True)

    def asin_(self) -> "Tensor":
        return self._unary_(Tensor.asin, True)

    def acos_(self) -> "Tensor":
        return self._unary_(Tensor.acos, True)

    def atan_(self) -> "Tensor":
        return self._unary_(Tensor.atan, True)

    def sinh_(self) -> "Tensor":
        return self._unary_(Tensor.sinh, True)

    def cosh_(self) -> "Tensor":
        return self._unary_(Tensor.cosh, True)

    def asinh_(self) -> "Tensor":
        return self._no_derivative_(Tensor.asinh, "asinh")

    def acosh_(self) -> "Tensor":
        return self._no_derivative_(Tensor.acosh, "acosh")

    def atanh_(self) -> "Tensor":
        return self._no_derivative_(Tensor.atanh, "atanh")

    def trunc_(self) -> "Tensor":
        return self._unary_(Tensor.trunc, False)

    def frac_(self) -> "Tensor":
        return self._unary_(Tensor.frac, False)

    def sign_(self) -> "Tensor":
        return self._unary_(Tensor.sign, False)

    def sin_(self) -> "Tensor":
        return self._unary_(Tensor.sin, True)

    def cos_(self) -> "Tensor":
        return self._unary_(Tensor.cos, True)

    def erf_(self) -> "Tensor":
        return self._unary_(Tensor.erf, True)

    def rsqrt_(self) -> "Tensor":
        return self._unary_(Tensor.rsqrt, True)

    def reciprocal_(self) -> "Tensor":
        return self._unary_(Tensor.reciprocal, True)

    def log_(self) -> "Tensor":
        return self._unary_(Tensor.log, True)

    def floor_(self) -> "Tensor":
        return self._unary_(Tensor.floor, False)

    def ceil_(self) -> "Tensor":
        return self._unary_(Tensor.ceil, False)

    def square_(self) -> "Tensor":
        return self._unary_(Tensor.square, False)

    def neg_(self) -> "Tensor":
        return self._unary_(Tensor.neg, False)

    def negative_(self) -> "Tensor":
        return self._unary_(Tensor.negative, False)

    def _no_derivative_(self, method: Callable[["Tensor"], "Tensor"], name: str) -> "Tensor":
        """torch computes these in place but has no derivative for them: backward raises."""
        def compute(t: "Tensor") -> "Tensor":
            with _no_grad():
                values = method(t)._data
            return _ops_math.NoDerivative.apply(t, values, f"inplace version of {name}")
        return self._apply_inplace(compute, result_rank=2)

    fix_ = trunc_
    arcsin_, arccos_, arctan_ = asin_, acos_, atan_
    arcsinh_, arccosh_, arctanh_ = asinh_, acosh_, atanh_

    def round_(self, decimals: int = 0) -> "Tensor":
        return self._apply_inplace(lambda t: t.round(decimals))

    def logit_(self, eps: Optional[float] = None) -> "Tensor":
        return self._apply_inplace(lambda t: t.logit(eps), result_rank=2, keep_old=True)

    def nan_to_num_(self, nan: float = 0.0, posinf: Optional[float] = None,
                    neginf: Optional[float] = None) -> "Tensor":
        return self._apply_inplace(lambda t: t.nan_to_num(nan, posinf, neginf), keep_old=True)

    def _binary_(self, method: Callable, other: Any, float_result: bool) -> "Tensor":
        rank = 2 if float_result else _builtin_max(_KIND_RANK[self._data.dtype.kind],
                                                   _value_rank(other))
        self._inplace_operand(other, rank)
        return self._apply_inplace(lambda t: method(t, other), other, keep_old=True)

    def atan2_(self, other: "Tensor") -> "Tensor":
        return self._binary_(Tensor.atan2, other, True)

    arctan2_ = atan2_

    def hypot_(self, other: "Tensor") -> "Tensor":
        return self._binary_(Tensor.hypot, other, True)

    def xlogy_(self, other: Any) -> "Tensor":
        return self._binary_(Tensor.xlogy, other, True)

    def copysign_(self, other: Any) -> "Tensor":
        return self._binary_(Tensor.copysign, other, True)

    def fmod_(self, other: Any) -> "Tensor":
        return self._binary_(Tensor.fmod, other, False)

    def subtract_(self, other: Any, *, alpha: float = 1) -> "Tensor":
        return self.sub_(other, alpha=alpha)

    def multiply_(self, other: Any) -> "Tensor":
        return self.mul_(other)

    def true_divide_(self, other: Any) -> "Tensor":
        return self.div_(other)

    divide_ = div_

    def maximum(self, other: "Tensor") -> "Tensor":
        """Element-wise max (NaN wins); ties split the gradient, as torch."""
        return _ops.Maximum.apply(self, _tensor_arg(other, "maximum", "other"))

    def minimum(self, other: "Tensor") -> "Tensor":
        return _ops.Minimum.apply(self, _tensor_arg(other, "minimum", "other"))

    def lerp(self, end: "Tensor", weight: Any) -> "Tensor":
        """self + weight * (end - self); float32 tensors, weight a number or a tensor."""
        if self._data.dtype != float32:
            raise NotImplementedError("\"lerp_kernel_scalar\" not implemented for "
                                      f"'{_RANK_NAMES[_KIND_RANK[self._data.dtype.kind]]}'")
        end = _tensor_arg(end, "lerp", "end")
        for name, t in (("end", end), ("weight", weight)):
            if isinstance(t, Tensor) and t._data.dtype != float32:
                raise RuntimeError(f"expected dtype float for `{name}` but got dtype "
                                   f"{_ops._c_type(t._data.dtype)}")
        w = weight if isinstance(weight, Tensor) else np.float32(weight)
        return _ops.Lerp.apply(self, end, w)

    def isnan(self) -> "Tensor":
        return Tensor._wrap(np.isnan(self._data))

    def isinf(self) -> "Tensor":
        return Tensor._wrap(np.isinf(self._data))

    def isclose(self, other: "Tensor", rtol: float = 1e-05, atol: float = 1e-08,
                equal_nan: bool = False) -> "Tensor":
        """|self - other| <= atol + rtol * |other| element-wise (a bool tensor)."""
        other = _tensor_arg(other, "isclose", "other")
        if other._data.dtype != self._data.dtype:
            raise RuntimeError(f"{_RANK_NAMES[_KIND_RANK[self._data.dtype.kind]]} did not match "
                               f"{_RANK_NAMES[_KIND_RANK[other._data.dtype.kind]]}")
        return Tensor._wrap(np.asarray(_ops.binary(
            lambda a, b: np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan),
            self._data, other._data), order="C"))

    def equal(self, other: "Tensor") -> bool:
        """True when the shapes and all values are equal (NaN is unequal), as torch.equal."""
        other = _tensor_arg(other, "equal", "other")
        return self._data.shape == other._data.shape and bool(np.all(self._data == other._data))

    # Comparisons give bool tensors and are never differentiated.
    def _compare(self, other: Any, ufunc: np.ufunc) -> "Tensor":
        other_array = other._data if isinstance(other, Tensor) else other
        return Tensor._wrap(np.asarray(_ops.binary(ufunc, self._data, other_array), order="C"))

    def __eq__(self, other: Any) -> "Tensor":  # type: ignore[override]
        if other is None:  # (torch: plain False / True, not a tensor)
            return False
        return self._compare(other, np.equal)

    def __ne__(self, other: Any) -> "Tensor":  # type: ignore[override]
        if other is None:
            return True
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
            if self._view_base is not None:  # a reshape of a copy-view:
                strided = self._strided_view()
                if strided is None or not np.may_share_memory(
                        strided.reshape(out._data.shape), strided):
                    # torch's reshape of that strided view copies: so does this one
                    _SET_DATA(out, out._data.copy())
                    return out
                # torch's is a view (unsqueeze, or strides that allow it): writes reach
                # the base through self
                _SET_VIEW_BASE(out, _ViewBase(self, None, None, None))
            shared = self._share_changes()
            shared.tensor_views = True
            _SET_SHARED(out, shared)
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

    def squeeze(self, dim: Any = None) -> "Tensor":
        """Drop size-1 dims: all of them, or those of ``dim`` (an int or a tuple of ints,
        as torch >= 2.0); a named dim of another size stays."""
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
        drop = {_ops.normalize_dim(d, self.ndim, "squeeze") for d in dims}
        if self.ndim == 0:
            return self
        shape = tuple(n for i, n in enumerate(self.shape) if not (i in drop and n == 1))
        return self if shape == self.shape else self.reshape(shape)

    def permute(self, *dims: Any) -> "Tensor":
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if len(dims) != self.ndim:
            raise RuntimeError(
                "permute(sparse_coo): number of dimensions in the tensor input does not match "
                "the length of the desired ordering of dimensions i.e. input.dim() = "
                f"{self.ndim} is not equal to len(dims) = {len(dims)}"
            )
        perm = tuple(_ops.normalize_dim(d, self.ndim, "permute") for d in dims)
        if len(set(perm)) != len(perm):
            raise RuntimeError("permute(): duplicate dims are not allowed.")
        return self._link_view(_ops.Permute.apply(self, perm), perm=perm)

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        perm = list(range(self.ndim))
        a = _ops.normalize_dim(dim0, self.ndim, "transpose")
        b = _ops.normalize_dim(dim1, self.ndim, "transpose")
        perm[a], perm[b] = perm[b], perm[a]
        return self._link_view(_ops.Permute.apply(self, tuple(perm)), perm=tuple(perm))

    def t(self) -> "Tensor":
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return self if self.ndim < 2 else self.transpose(0, 1)

    @property
    def T(self) -> "Tensor":
        return self.permute(tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> "Tensor":
        """The last two dims swapped (a batch of transposed matrices)."""
        if self.ndim < 2:
            raise RuntimeError("tensor.mT is only supported on matrices or batches of matrices. "
                               f"Got {self.ndim}-D tensor.")
        return self.transpose(-2, -1)

    def flip(self, *dims: Any) -> "Tensor":
        """Reverse the order along each of ``dims``."""
        dims = _ops.shape_arg(dims) if dims else ()
        axes = _ops.normalize_dims(dims, self.ndim, "flip") if dims else None
        if axes is None:  # no dims (or a 0-d tensor): nothing to reverse
            return _ops.Clone.apply(self)
        return _ops.LinearMap.apply(self, lambda a: np.flip(a, axes), lambda g: np.flip(g, axes))

    def roll(self, shifts: Any, dims: Any = None) -> "Tensor":
        """Shift elements cyclically along ``dims`` (of the flattened tensor when None)."""
        shifts = tuple(shifts) if isinstance(shifts, (tuple, list)) else (shifts,)
        if dims is None:
            if len(shifts) != 1:
                raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, dims:0")
            axes = None
        else:
            axes = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
            if len(shifts) != len(axes):
                raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                                   f"dims:{len(axes)}")
            axes = tuple(_ops.normalize_dim(d, self.ndim, "roll") for d in axes)
        back = tuple(-operator.index(s) for s in shifts)
        return _ops.LinearMap.apply(self, lambda a: np.roll(a, shifts, axes),
                                    lambda g: np.roll(g, back, axes))

    def unbind(self, dim: int = 0) -> Tuple["Tensor", ...]:
        """The slices along ``dim``, with that dim removed."""
        d = _ops.normalize_dim(dim, self.ndim, "unbind")
        if self.ndim == 0:
            raise RuntimeError("Dimension specified as 0 but tensor has no dimensions")
        return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))

    def tril(self, diagonal: int = 0) -> "Tensor":
        """Zero above the ``diagonal``-th diagonal of the last two dims."""
        return self._triangle(np.tril, diagonal, "tril")

    def triu(self, diagonal: int = 0) -> "Tensor":
        return self._triangle(np.triu, diagonal, "triu")

    def _triangle(self, fn: Callable, diagonal: int, op: str) -> "Tensor":
        if self.ndim < 2:
            raise RuntimeError(f"{op}: input tensor must have at least 2 dimensions")
        k = operator.index(diagonal)
        keep = lambda a: fn(a, k)  # noqa: E731  (masking: its own adjoint)
        return _ops.LinearMap.apply(self, keep, keep)

    def diag(self, diagonal: int = 0) -> "Tensor":
        """A 1-D tensor as a square matrix with it on the ``diagonal``-th diagonal, or a
        2-D tensor's ``diagonal``-th diagonal."""
        k = operator.index(diagonal)
        if self.ndim == 1:
            return _ops.LinearMap.apply(self, lambda a: np.diag(a, k),
                                        lambda g: np.diagonal(g, k))
        if self.ndim == 2:
            shape = self.shape
            return _ops.LinearMap.apply(self, lambda a: np.diagonal(a, k),
                                        lambda g: _ops.embed_diagonal(g, shape, k))
        raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {self.ndim}D")

    def gather(self, dim: int, index: "Tensor") -> "Tensor":
        """``out[i][j] = self[i][index[i][j]]`` (dim 1); repeated indices add up in backward."""
        idx = _tensor_arg(index, "gather", "index")._data
        if self.ndim == 0 or idx.ndim == 0:  # (torch treats 0-d as 1-d here)
            d = _ops.normalize_dim(dim, 1, "gather")
            return self.reshape(-1).gather(d, Tensor._wrap(idx.reshape(-1))).reshape(idx.shape)
        d = _ops.normalize_dim(dim, self.ndim, "gather")
        _ops.check_along_dim("gather", self.shape, idx, d)
        return _ops.Index.apply(self, _ops.along_dim_key(idx, d))

    def scatter(self, dim: int, index: "Tensor", src: Any = None, value: Any = None, *,
                reduce: Optional[str] = None) -> "Tensor":
        """self with ``self[i][index[i][j]] = src[i][j]`` (dim 1), or ``value`` there; the
        gradient of the written elements goes to src, the rest to self. The last write wins
        for repeated indices (torch's CPU order)."""
        if reduce is not None:  # (torch: 'add' or 'multiply', no derivative)
            return _selection.scatter_with_reduce(self, dim, index,
                                                  src if src is not None else value, reduce)
        if src is None:
            src = value
        idx = _tensor_arg(index, "scatter", "index")._data
        d = _ops.normalize_dim(dim, self.ndim, "scatter")
        if isinstance(src, Tensor):
            if src._data.dtype != self._data.dtype:
                raise RuntimeError("scatter(): Expected self.dtype to be equal to src.dtype")
            _ops.check_along_dim("scatter", self.shape, idx, d, src.shape)
            region = tuple(slice(0, n) for n in idx.shape)
            return _ops.Scatter.apply(self, src, _ops.along_dim_key(idx, d), region)
        _ops.check_along_dim("scatter", self.shape, idx, d, idx.shape)
        fill = np.asarray(src, dtype=self._data.dtype)
        return _ops.Scatter.apply(self, fill, _ops.along_dim_key(idx, d), None)

    def index_select(self, dim: int, index: "Tensor") -> "Tensor":
        """The entries ``index`` (1-D, int64) along ``dim``; repeats add up in backward."""
        idx = _tensor_arg(index, "index_select", "index")._data
        if idx.dtype != int64:
            raise RuntimeError("index_select(): Expected dtype int32 or int64 for index")
        if idx.ndim > 1:
            raise IndexError("index_select(): Index is supposed to be a vector")
        d = _ops.normalize_dim(dim, self.ndim, "index_select")
        size = self.shape[d] if self.ndim else 1
        if idx.size and (idx.min() < 0 or idx.max() >= size):
            raise IndexError("index out of range in self")
        if self.ndim == 0:
            return _ops.Index.apply(self.reshape(1), (idx.reshape(-1),)).reshape(())
        return _ops.Index.apply(self, (slice(None),) * d + (idx.reshape(-1),))

    def nonzero(self, *, as_tuple: bool = False) -> Any:
        """Indices of the nonzero elements: an (n, ndim) int64 tensor, or one 1-D tensor per
        dim with ``as_tuple`` (a 0-d tensor counts as 1-d there, as torch)."""
        if as_tuple:
            data = self._data.reshape(1) if self.ndim == 0 else self._data
            return tuple(Tensor._wrap(np.ascontiguousarray(i, dtype=np.int64))
                         for i in np.nonzero(data))
        return Tensor._wrap(np.ascontiguousarray(np.argwhere(self._data), dtype=np.int64))

    def argwhere(self) -> "Tensor":
        return self.nonzero()

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> "Tensor":
        return self.sort(dim, descending, stable).indices

    def outer(self, vec2: "Tensor") -> "Tensor":
        vec2 = _tensor_arg(vec2, "outer", "vec2")
        for name, t in (("self", self), ("vec2", vec2)):
            if t.ndim != 1:
                raise RuntimeError(f"outer: Expected 1-D argument {name}, but got {t.ndim}-D")
        return self.unsqueeze(1) * vec2.unsqueeze(0)

    def dot(self, other: "Tensor") -> "Tensor":
        other = _tensor_arg(other, "dot", "tensor")
        if self.ndim != 1 or other.ndim != 1:
            raise RuntimeError(f"1D tensors expected, but got {self.ndim}D and {other.ndim}D tensors")
        if self._data.dtype == bool_:
            raise NotImplementedError("\"dot\" not implemented for 'Bool'")
        if self._data.dtype != other._data.dtype:
            raise RuntimeError("dot : expected both vectors to have same dtype, but found "
                               f"{_RANK_NAMES[_KIND_RANK[self._data.dtype.kind]]} and "
                               f"{_RANK_NAMES[_KIND_RANK[other._data.dtype.kind]]}")
        return self @ other

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

        if self._data.dtype == int64:  # (torch keeps an integer tensor's dtype)
            return Tensor._wrap(np.maximum(self._data, 0))
        if self._data.dtype == bool_:
            raise RuntimeError("Boolean inputs not supported for relu")
        return F.relu(self)

    def sigmoid(self) -> "Tensor":
        from pyvision_engine.nn import functional as F

        return F.sigmoid(self if self._data.dtype == float32 else self.float())

    def tanh(self) -> "Tensor":
        from pyvision_engine.nn import functional as F

        return F.tanh(self if self._data.dtype == float32 else self.float())

    def softmax(self, dim: int) -> "Tensor":
        from pyvision_engine.nn import functional as F

        return F.softmax(self, dim=dim)

    def log_softmax(self, dim: int) -> "Tensor":
        from pyvision_engine.nn import functional as F

        return F.log_softmax(self, dim=dim)

    def clamp(self, min: Any = None, max: Any = None) -> "Tensor":
        """Limit to [min, max]; the gradient flows where min <= x <= max, as torch."""
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        return _ops.Clamp.apply(self, min, max)

    clip = clamp

    def clamp_min(self, min: Any) -> "Tensor":
        return self.clamp(min=min)

    def clamp_max(self, max: Any) -> "Tensor":
        return self.clamp(max=max)

    def where(self, condition: Any, y: Any) -> "Tensor":
        """self where ``condition`` (a bool tensor) holds, else y (broadcasting; a number
        takes self's dtype kind, as torch)."""
        cond = condition._data if isinstance(condition, Tensor) else np.asarray(condition)
        if cond.dtype != np.bool_:
            raise RuntimeError("where expected condition to be a boolean tensor, but got a tensor "
                               f"with dtype {_ops._RANK_DTYPE_NAMES.get(cond.dtype.kind, cond.dtype)}")
        return _ops.Where.apply(cond, self, _operand(y, self))

    def var(self, dim: Any = None, unbiased: Any = True, keepdim: bool = False, *,
            correction: Optional[float] = None) -> "Tensor":
        """Variance with Bessel's correction by default (``correction=1``), as torch;
        ``var(False)`` is ``var(unbiased=False)``."""
        return self._moment(dim, unbiased, keepdim, correction, "var")

    def std(self, dim: Any = None, unbiased: Any = True, keepdim: bool = False, *,
            correction: Optional[float] = None) -> "Tensor":
        return self._moment(dim, unbiased, keepdim, correction, "std")

    def _moment(self, dim: Any, unbiased: Any, keepdim: bool, correction: Any, op: str) -> "Tensor":
        if isinstance(dim, bool):  # torch's var(input, unbiased) overload
            dim, unbiased = None, dim
        if self._data.dtype != float32:
            raise RuntimeError("std and var only support floating point and complex dtypes")
        corr = (1 if unbiased else 0) if correction is None else correction
        dims = _ops.normalize_dims(dim, self.ndim, op)
        count = self.numel() if dims is None else int(np.prod([self.shape[d] for d in dims]))
        if count - corr <= 0:
            warnings.warn(f"{op}(): degrees of freedom is <= 0. Correction should be strictly "
                          "less than the reduction factor (input numel divided by output numel).",
                          UserWarning, stacklevel=3)
        return _ops.Variance.apply(self, dims, corr, keepdim, op == "std")

    def norm(self, p: Any = "fro", dim: Any = None, keepdim: bool = False,
             dtype: Any = None) -> "Tensor":
        """Vector p-norm over ``dim`` (all elements by default), as torch.norm: 'fro' is the
        2-norm over up to two dims; any real p (inf, -inf, 0 included) is a vector norm."""
        if dtype is not None and _normalize_dtype(dtype) != float32:
            raise TypeError(f"norm: only dtype float32 is supported, got {dtype}")
        if self._data.dtype != float32:
            raise RuntimeError("linalg.vector_norm: Expected a floating point or complex tensor "
                               f"as input. Got {_RANK_NAMES[_KIND_RANK[self._data.dtype.kind]]}")
        if isinstance(p, str):
            if p == "nuc":
                raise NotImplementedError("norm(p='nuc'): matrix norms (linalg.matrix_norm) are "
                                          "not supported by pyvision_engine")
            if p != "fro":
                raise RuntimeError(f"linalg.matrix_norm: Order {p} not supported.")
            if isinstance(dim, (tuple, list)) and len(dim) > 2:
                raise RuntimeError("linalg.matrix_norm: dim must be a 2-tuple. Got "
                                   + " ".join(str(d) for d in dim))
            p = 2
        p = 2.0 if p is None else float(p)
        return _ops.VectorNorm.apply(self, p, _ops.normalize_dims(dim, self.ndim, "norm"), keepdim)

    def prod(self, dim: Optional[int] = None, keepdim: bool = False, dtype: Any = None) -> "Tensor":
        """Product of all elements, or along one ``dim`` (bool counts as int64)."""
        t = self if dtype is None else self.type(dtype)
        if dim is None or t.ndim == 0:
            if dim is not None:
                _ops.normalize_dim(dim, 0, "prod")
            return _ops.Prod.apply(t, None, keepdim and dim is not None)
        if isinstance(dim, (tuple, list)):
            raise TypeError("prod(): argument 'dim' must be int, not tuple")
        return _ops.Prod.apply(t, _ops.normalize_dim(dim, t.ndim, "prod"), keepdim)

    def cumsum(self, dim: int, dtype: Any = None) -> "Tensor":
        """Running sum along ``dim`` (int64 for integer and bool tensors)."""
        t = self if dtype is None else self.type(dtype)
        d = _ops.normalize_dim(dim, t.ndim, "cumsum")
        if t.ndim == 0:
            return _ops.Cumsum.apply(t.reshape(1), 0).reshape(())
        return _ops.Cumsum.apply(t, d)

    def amax(self, dim: Any = (), keepdim: bool = False) -> "Tensor":
        """Max over ``dim`` (an int or tuple; () for all); ties share the gradient evenly."""
        return _ops.AmaxAmin.apply(self, _ops.normalize_dims(dim, self.ndim, "amax"), keepdim, True)

    def amin(self, dim: Any = (), keepdim: bool = False) -> "Tensor":
        return _ops.AmaxAmin.apply(self, _ops.normalize_dims(dim, self.ndim, "amin"), keepdim, False)

    def logsumexp(self, dim: Any, keepdim: bool = False) -> "Tensor":
        """log(sum(exp(self))) over ``dim``, without overflow (float32 result)."""
        return _ops.LogSumExp.apply(self, _ops.normalize_dims(dim, self.ndim, "logsumexp"), keepdim)

    def split(self, split_size_or_sections: Any, dim: int = 0) -> Tuple["Tensor", ...]:
        d = _ops.normalize_dim(dim, self.ndim, "split")
        n = self.shape[d]
        if isinstance(split_size_or_sections, int):
            size = split_size_or_sections
            if size < 0:
                raise RuntimeError(f"split expects split_size be non-negative, but got split_size={size}")
            if size == 0 and n != 0:
                raise RuntimeError("split_size can only be 0 if dimension size is 0, but got "
                                   f"dimension size of {n}")
            sizes = [min(size, n - i) for i in range(0, n, size)] if size else [0]
        else:
            sizes = list(split_size_or_sections)
            if sum(sizes) != n or any(s < 0 for s in sizes):
                raise RuntimeError(
                    f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's "
                    f"size at dimension {d}), but got split_sizes={sizes}"
                )
        out, start = [], 0
        for size in sizes:
            index = (slice(None),) * d + (slice(start, start + size),)
            out.append(self[index])
            start += size
        return tuple(out)

    def chunk(self, chunks: int, dim: int = 0) -> Tuple["Tensor", ...]:
        if chunks <= 0:
            raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
        n = self.shape[_ops.normalize_dim(dim, self.ndim, "chunk")]
        return self.split(max(1, -(-n // chunks)), dim)

    def repeat(self, *sizes: Any) -> "Tensor":
        reps = _ops.shape_arg(sizes)
        if len(reps) < self.ndim:
            raise RuntimeError(
                "Number of dimensions of repeat dims can not be smaller than number of dimensions "
                f"of tensor ({len(reps)} < {self.ndim})"
            )
        return _ops.Repeat.apply(self, reps)

    def expand_as(self, other: "Tensor") -> "Tensor":
        return self.expand(other.shape)

    def masked_fill(self, mask: Any, value: Any) -> "Tensor":
        mask_array = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
        if mask_array.dtype != np.bool_:
            raise RuntimeError("masked_fill_ only supports boolean masks, but got mask with dtype "
                               f"{_ops._c_type(mask_array.dtype)}")
        if isinstance(value, Tensor) and value.ndim != 0:
            raise RuntimeError("masked_fill_ only supports a 0-dimensional value tensor, but got "
                               f"tensor with {value.ndim} dimension(s).")
        fill = value if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value, dtype=self.dtype))
        return _ops.Where.apply(mask_array, fill, self)

    def mm(self, other: "Tensor") -> "Tensor":
        if self.ndim != 2:
            raise RuntimeError("self must be a matrix")
        if other.ndim != 2:
            raise RuntimeError("mat2 must be a matrix")
        return self @ other

    def bmm(self, other: "Tensor") -> "Tensor":
        if self.ndim != 3:
            raise RuntimeError("batch1 must be a 3D tensor")
        if other.ndim != 3:
            raise RuntimeError("batch2 must be a 3D tensor")
        if other.shape[:2] != (self.shape[0], self.shape[2]):
            raise RuntimeError(
                "Expected size for first two dimensions of batch2 tensor to be: "
                f"[{self.shape[0]}, {self.shape[2]}] but got: [{other.shape[0]}, {other.shape[1]}]."
            )
        return self @ other

    def all(self, dim: Optional[int] = None, keepdim: bool = False) -> "Tensor":
        axis = None if dim is None else _ops.normalize_dim(dim, self.ndim, "all")
        return Tensor._wrap(np.asarray(np.all(self._data, axis=axis, keepdims=keepdim), order="C"))

    def any(self, dim: Optional[int] = None, keepdim: bool = False) -> "Tensor":
        axis = None if dim is None else _ops.normalize_dim(dim, self.ndim, "any")
        return Tensor._wrap(np.asarray(np.any(self._data, axis=axis, keepdims=keepdim), order="C"))

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """``(values, indices)``; equal elements keep their order and NaN sorts as the
        largest value (torch's stable sort; pve sorts stably for ``stable=False`` too)."""
        d = _ops.normalize_dim(dim, self.ndim, "sort")
        if self.ndim == 0:  # (as a 1-element vector)
            values, indices = self.reshape(1).sort(0, descending, stable)
            return _ops.SortResult(values.reshape(()), indices.reshape(()))
        indices = _ops.stable_argsort(self._data, d, descending)
        return _ops.SortResult(_ops.gather_values(self, indices, d),
                               Tensor._wrap(np.asarray(indices, dtype=np.int64, order="C")))

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        """``(values, indices)`` of the k largest (smallest) along ``dim``."""
        d = _ops.normalize_dim(dim, self.ndim, "topk")
        if not 0 <= k <= (self.shape[d] if self.ndim else 1):
            raise RuntimeError(f"selected index k out of range (k={k}, dimension {d} of size "
                               f"{self.shape[d] if self.ndim else 1})")
        if self.ndim == 0:
            values, indices = self.reshape(1).topk(k, 0, largest, sorted)
            return _ops.TopKResult(values.reshape(()), indices.reshape(()))
        indices = np.take(_ops.stable_argsort(self._data, d, largest), np.arange(k), axis=d)
        return _ops.TopKResult(_ops.gather_values(self, indices, d),
                               Tensor._wrap(np.asarray(indices, dtype=np.int64, order="C")))

    def __getitem__(self, index: Any) -> "Tensor":
        index = _ops.normalize_index(index)
        return self._link_view(_ops.Index.apply(self, index), index=index)

    def __setitem__(self, index: Any, value: Any) -> None:
        index = _ops.normalize_index(index)
        if self._records_inplace(value):
            v = value if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value, dtype=float32))
            self._rebind(lambda base: _ops.IndexPut.apply(base, v, index))
            return
        value_array = value._data if isinstance(value, Tensor) else value
        target = self._data[index.first] if isinstance(index, _ops.TwoStepIndex) else self._data
        key = index.second if isinstance(index, _ops.TwoStepIndex) else index  # (first: a view)
        self._before_write()
        try:
            target[key] = value_array
        except ValueError as e:
            if np.ndim(value_array) == 0:
                raise
            raise _ops.setitem_error(np.shape(value_array), np.shape(target[key])) from e
        self._bump_version()


def _array_of(value: Any) -> Any:
    return value._data if isinstance(value, Tensor) else value


def _sampling() -> Any:
    # (imported on first use: _sampling imports this module)
    from pyvision_engine import _sampling as module
    return module


def _operand(value: Any, like: Tensor, keep_shape: bool = False) -> Tensor:
    """Turn a Python number or array into a Tensor operand for ``like``."""
    if isinstance(value, Tensor):
        return value
    cls = value.__class__
    if cls is float:  # (the common cases first: this runs for every op with a number)
        return Tensor._wrap(np.asarray(value, dtype=float32))
    if cls is int:
        return Tensor._wrap(np.asarray(value, dtype=float32 if like._data.dtype == float32 else int64))
    if isinstance(value, numbers.Number) and not isinstance(value, (bool, np.bool_)):
        # Python scalars take the tensor's dtype when their kind is no higher (torch's
        # promotion): float32 stays float32, an int with an int64 or bool tensor is
        # int64, a float with an integer tensor makes float32.
        if like._data.dtype == float32 or not isinstance(value, numbers.Integral):
            dtype = float32
        else:
            dtype = int64
        return Tensor._wrap(np.asarray(value, dtype=dtype))
    return Tensor(value)


def _tensor_arg(value: Any, op: str, name: str) -> Tensor:
    """A Tensor argument (torch: a number there is a TypeError; numpy arrays convert)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):
        return Tensor(value)
    raise TypeError(f"{op}(): argument '{name}' must be Tensor, not {type(value).__name__}")


_KIND_RANK = {"b": 0, "i": 1, "u": 1, "f": 2}
_RANK_NAMES = ("Bool", "Long", "Float")
_builtin_max = max


def _value_rank(value: Any) -> int:
    """0, 1, 2 for a bool, integer, float value or tensor (torch's type categories)."""
    if isinstance(value, Tensor):
        return _KIND_RANK[value._data.dtype.kind]
    if isinstance(value, (bool, np.bool_)):
        return 0
    if isinstance(value, numbers.Integral):
        return 1
    if isinstance(value, numbers.Real):
        return 2
    return _KIND_RANK.get(np.asarray(value).dtype.kind, 2)


def _check_fits(shape: Tuple[int, ...], other_shape: Tuple[int, ...]) -> None:
    """An in-place op's operand must broadcast to the tensor's own shape (torch's errors)."""
    try:
        out = np.broadcast_shapes(shape, other_shape)
    except ValueError:
        raise _ops.broadcast_error(shape, other_shape) from None
    if out != tuple(shape):
        raise RuntimeError(
            f"output with shape {list(shape)} doesn't match the broadcast shape {list(out)}"
        )


def _protect_saved(node: Any, array: np.ndarray) -> None:
    """Replace the arrays ``node`` keeps that share memory with ``array`` (about to be
    written in place) by copies, so that its backward still reads the values it saw."""
    d = node.__dict__
    for key, value in list(d.items()):
        if isinstance(value, np.ndarray):
            if value.size and np.may_share_memory(value, array):
                d[key] = value.copy()
        elif isinstance(value, (tuple, list)) and any(isinstance(v, np.ndarray) for v in value):
            items = [v.copy() if isinstance(v, np.ndarray) and v.size
                     and np.may_share_memory(v, array) else v for v in value]
            if isinstance(value, list):
                value[:] = items
            elif hasattr(value, "_fields"):
                d[key] = type(value)(*items)
            else:
                d[key] = tuple(items)


# -------------------------------------------------- printing (torch's format)
_PRINT_PRECISION, _PRINT_THRESHOLD, _PRINT_EDGEITEMS, _PRINT_LINEWIDTH = 4, 1000, 3, 80


class _Formatter:
    """torch._tensor_str._Formatter for float32, int64 and bool values."""

    def __init__(self, values: np.ndarray) -> None:
        self.floating = values.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.max_width = True, False, 1
        flat = values.reshape(-1)
        if not self.floating:
            for v in flat.tolist():
                self.max_width = _builtin_max(self.max_width, len(f"{v}"))
            return
        finite = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
        if finite.size == 0:
            return
        lo, hi = float(np.abs(finite).min()), float(np.abs(finite).max())
        self.int_mode = bool(np.all(finite == np.ceil(finite)))
        self.sci_mode = hi / lo > 1000.0 or hi > 1.0e8 or lo < 1.0e-4
        for v in finite.tolist():
            if self.sci_mode:
                width = len(f"{v:.{_PRINT_PRECISION}e}")
            elif self.int_mode:
                width = len(f"{v:.0f}") + 1
            else:
                width = len(f"{v:.{_PRINT_PRECISION}f}")
            self.max_width = _builtin_max(self.max_width, width)

    def format(self, v: Any) -> str:
        if self.floating:
            if self.sci_mode:
                text = f"{v:{self.max_width}.{_PRINT_PRECISION}e}"
            elif self.int_mode:
                text = f"{v:.0f}" + ("" if (np.isinf(v) or np.isnan(v)) else ".")
            else:
                text = f"{v:.{_PRINT_PRECISION}f}"
        else:
            text = f"{v}"
        return (self.max_width - len(text)) * " " + text


def _summarized(data: np.ndarray) -> np.ndarray:
    """The values a summarised print shows (torch's get_summarized_data)."""
    if data.ndim == 0:
        return data
    e = _PRINT_EDGEITEMS
    if data.ndim == 1:
        return np.concatenate([data[:e], data[-e:]]) if data.shape[0] > 2 * e else data
    rows = list(range(e)) + list(range(data.shape[0] - e, data.shape[0])) \
        if data.shape[0] > 2 * e else range(data.shape[0])
    return np.stack([_summarized(data[i]) for i in rows])


def _format_tensor(data: np.ndarray, indent: int) -> str:
    summarize = data.size > _PRINT_THRESHOLD
    formatter = _Formatter(_summarized(data) if summarize else data)
    return _format_nested(data, indent, summarize, formatter)


def _format_nested(data: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    e = _PRINT_EDGEITEMS
    if data.ndim == 0:
        return fmt.format(data.item())
    if data.ndim == 1:
        per_line = _builtin_max(1, (_PRINT_LINEWIDTH - indent) // (fmt.max_width + 2))
        if summarize and data.shape[0] > 2 * e:
            items = ([fmt.format(v) for v in data[:e].tolist()] + [" ..."]
                     + [fmt.format(v) for v in data[-e:].tolist()])
        else:
            items = [fmt.format(v) for v in data.tolist()]
        lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
        return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"
    if summarize and data.shape[0] > 2 * e:
        parts = ([_format_nested(data[i], indent + 1, summarize, fmt) for i in range(e)] + ["..."]
                 + [_format_nested(data[i], indent + 1, summarize, fmt)
                    for i in range(data.shape[0] - e, data.shape[0])])
    else:
        parts = [_format_nested(data[i], indent + 1, summarize, fmt) for i in range(data.shape[0])]
    return "[" + ("," + "\n" * (data.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def _add_suffixes(text: str, suffixes: Sequence[str], indent: int) -> str:
    out = [text]
    last = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last + len(suffix) + 2 > _PRINT_LINEWIDTH:
            out.append(",\n" + " " * indent + suffix)
            last = indent + len(suffix)
        else:
            out.append(", " + suffix)
            last += len(suffix) + 2
    out.append(")")
    return "".join(out)


def _type_path(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


(_SET_DATA, _SET_NODE, _SET_RETAINS_GRAD, _SET_GRAD_SLOT, _SET_VERSION, _SET_SHARED, _SET_GRAD,
 _SET_REQUIRES_GRAD, _SET_VIEW_BASE) = (Tensor.__dict__[name].__set__ for name in (
     "_data", "_node", "_retains_grad", "_grad_slot", "_version", "_shared", "_grad",
     "requires_grad", "_view_base"))


class _ViewBase(NamedTuple):
    """What a view that is a copy was taken from (see ``Tensor._link_view``): its base
    and either the basic index or the permutation, and the view's shape then (None: a
    view sharing the memory of base, itself such a copy)."""
    base: Tensor
    index: Any
    perm: Optional[Tuple[int, ...]]
    shape: Tuple[int, ...]

    def of(self, array: np.ndarray) -> np.ndarray:
        """The numpy view of ``array`` (the base's values) this view stands for."""
        return array[self.index] if self.perm is None else np.transpose(array, self.perm)


class _SharedChanges:
    """In-place changes made through any of the tensors and numpy views that share one
    memory (a tensor and its ``detach()`` / ``.data`` / ``numpy()`` views), as torch's
    version counter is shared by a tensor's views. ``views``: numpy views alive;
    ``writes``: the in-place writes through the tensors (autograd's saved-tensor check);
    ``tensor_views``: whether a Tensor view of the memory was made (view, reshape, ...);
    ``copy_views``: weak references to the views of it that are copies (see
    ``Tensor._link_view``), refreshed after each write (None: none made)."""

    __slots__ = ("count", "views", "writes", "tensor_views", "copy_views")

    def __init__(self) -> None:
        self.count = 0
        self.views = 0
        self.writes = 0
        self.tensor_views = False
        self.copy_views: Optional[list] = None

    def __getstate__(self) -> dict:
        # (copies and pickles carry the counts, not the weak references to live views)
        return {"count": self.count, "views": self.views, "writes": self.writes,
                "tensor_views": self.tensor_views, "copy_views": None}

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)

    def add_copy_view(self, view: Tensor) -> None:
        refs = self.copy_views
        if refs is None:
            self.copy_views = refs = []
        elif len(refs) >= 8:  # (views made in a loop die young: keep the list short)
            refs[:] = [r for r in refs if r() is not None]
        refs.append(weakref.ref(view))

    def refresh_copy_views(self) -> None:
        for ref in tuple(self.copy_views):
            view = ref()
            if view is not None and view._view_base is not None:
                view._refresh()

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
    elif isinstance(data, (list, tuple)):
        data = _scalars_of(data)
    elif data is None:
        raise RuntimeError("Could not infer dtype of NoneType")
    arr = np.array(data, copy=True)
    if arr.dtype == object:
        _check_python_ints(data)
    elif arr.dtype.kind == "u" and arr.dtype.itemsize == 8 and arr.size and arr.max() > _INT64_MAX:
        raise ValueError("Overflow when unpacking long long")  # (a Python int >= 2**63)
    if dtype is not None:
        arr = arr.astype(_normalize_dtype(dtype))
    return Tensor(_as_engine_array(arr, copy=False), requires_grad=requires_grad)


_INT64_MAX = np.iinfo(np.int64).max


def _scalars_of(data: Any) -> Any:
    """Nested lists with each Tensor element as its Python scalar (torch: only
    one-element tensors can be elements of the data of a new tensor)."""
    if isinstance(data, Tensor):
        if data._data.size != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return data._data.reshape(()).item()
    if isinstance(data, (list, tuple)):
        if any(isinstance(d, (Tensor, list, tuple)) for d in data):
            return [_scalars_of(d) for d in data]
    return data


def _check_python_ints(data: Any) -> None:
    """Data numpy could only hold as objects: name a Python int out of int64's range or
    a None, as torch's errors, before the generic dtype error."""
    if isinstance(data, (list, tuple)):
        for d in data:
            _check_python_ints(d)
    elif data is None:
        raise RuntimeError("Could not infer dtype of NoneType")
    elif isinstance(data, int) and not -_INT64_MAX - 1 <= data <= _INT64_MAX:
        raise ValueError("Overflow when unpacking long long")


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


def _factory_shape(shape: Sequence[Any], op: str) -> Tuple[int, ...]:
    shape = _ops.shape_arg(shape)
    for s in shape:
        if s < 0:
            if op == "zeros":
                raise RuntimeError("zeros: Dimension size must be non-negative.")
            raise RuntimeError(f"Trying to create tensor with negative dimension {s}: {list(shape)}")
    return shape


def zeros(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape = _factory_shape(shape, "zeros")
    return Tensor(np.zeros(shape, dtype=_normalize_dtype(dtype or float32)), requires_grad)


def ones(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape = _factory_shape(shape, "ones")
    return Tensor(np.ones(shape, dtype=_normalize_dtype(dtype or float32)), requires_grad)


def full(shape: Sequence[int], fill_value: Any, dtype: Any = None,
         requires_grad: bool = False) -> Tensor:
    """``fill_value`` everywhere; its type gives the dtype unless ``dtype`` does (torch:
    a bool makes a bool tensor, an int an int64 one, a float float32)."""
    shape = _factory_shape(shape if isinstance(shape, (tuple, list)) else (shape,), "full")
    if dtype is None:
        if isinstance(fill_value, Tensor):
            dtype = fill_value.dtype
        else:
            dtype = (bool_, int64, float32)[_value_rank(fill_value)]
    value = fill_value._data if isinstance(fill_value, Tensor) else fill_value
    return Tensor(np.full(shape, value, dtype=_normalize_dtype(dtype)), requires_grad)


def empty(*shape: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape = _factory_shape(shape, "empty")
    return Tensor(np.empty(shape, dtype=_normalize_dtype(dtype or float32)), requires_grad)


def zeros_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def arange(start: Any, end: Any = None, step: Any = 1, dtype: Any = None) -> Tensor:
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("step must be nonzero")
    values = np.arange(start, end, step)
    return Tensor(values.astype(_normalize_dtype(dtype)) if dtype is not None else values)



# Selection and rearrangement methods live in _selection.py (built on the ops above).
from pyvision_engine import _selection  # noqa: E402  (needs Tensor defined)

from pyvision_engine import _reductions  # noqa: E402

for _module in (_selection, _reductions):
    for _name in _module.TENSOR_METHODS:
        setattr(Tensor, _name, getattr(_module, _name))
del _module, _name
