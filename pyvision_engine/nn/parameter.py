"""nn.Parameter: a leaf Tensor that a Module registers as trainable."""

from __future__ import annotations

from typing import Any

import numpy as np

from pyvision_engine.tensor import Tensor, _as_engine_array, float32

__all__ = ["Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer", "is_lazy"]


class Parameter(Tensor):
    """A trainable tensor. Shares memory with ``data`` when it already is a
    float32 C-contiguous array or Tensor (as torch does), else copies."""

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        array = _as_engine_array(data, copy=False)
        if requires_grad and array.dtype != float32:
            raise TypeError(
                f"Parameter: only float32 parameters can require gradients, got {array.dtype}"
            )
        super().__init__(array, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo: dict) -> "Parameter":
        """A new parameter with a copy of the values and the same requires_grad, without
        the gradient (torch's Parameter.__deepcopy__: clones of a trained layer, as
        TransformerEncoder makes, start with no stale .grad)."""
        if id(self) in memo:
            return memo[id(self)]
        if isinstance(self, UninitializedTensorMixin):  # (no values to copy yet)
            result = type(self)(self.requires_grad)
        else:
            result = type(self)(np.array(self._data), self.requires_grad)
        memo[id(self)] = result
        return result


class Buffer(Tensor):
    """Marks a tensor to be registered as a buffer when assigned to a Module."""

    __slots__ = ("persistent",)

    def __init__(self, data: Any, persistent: bool = True) -> None:
        super().__init__(data)
        self.persistent = persistent


# The data slot of every Tensor: an uninitialized tensor hides it behind a property
# (so every engine op on it fails as torch's do) and materialize() sets it directly.
_DATA_SLOT = Tensor.__dict__["_data"]


def _uninitialized_error(cls: type, where: str) -> ValueError:
    return ValueError(
        f"Attempted to use an uninitialized parameter in {where}. This error happens when you "
        f"are using a `LazyModule` or explicitly manipulating `nn.parameter.{cls.__name__}` "
        "objects. When using LazyModules Call `forward` with a dummy batch to initialize the "
        "parameters before calling torch functions"
    )


class UninitializedTensorMixin:
    """What UninitializedParameter and UninitializedBuffer share (torch's
    UninitializedTensorMixin): no shape until ``materialize(shape)`` gives them float32
    storage and turns them into ``cls_to_become`` (the same object, so modules and
    references keep it). Until then ``shape`` raises RuntimeError and any op on the
    values raises ValueError, as torch's; ``size()``, ``dtype``, ``requires_grad``,
    ``is_leaf`` and printing work."""

    __slots__ = ()
    cls_to_become: type = Tensor

    @property
    def _data(self) -> np.ndarray:
        raise _uninitialized_error(type(self), "an operation on its values")

    @_data.setter
    def _data(self, value: np.ndarray) -> None:
        _DATA_SLOT.__set__(self, value)

    def materialize(self, shape: Any, device: Any = None, dtype: Any = None) -> None:
        """Give the tensor float32 storage of ``shape`` (zeros; torch's is uninitialized
        memory, which the lazy modules' reset_parameters or a state dict overwrites) and
        make it a ``cls_to_become``."""
        if device is not None and not str(device).startswith("cpu"):
            raise TypeError(f"materialize: only the cpu device is supported, got {device!r}")
        if dtype is not None and np.dtype(dtype) != float32:
            raise TypeError(f"materialize: only float32 is supported, got {dtype!r}")
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        shape = tuple(int(s) for s in shape)
        if any(s < 0 for s in shape):
            raise RuntimeError(f"materialize: negative dimension in shape {shape}")
        _DATA_SLOT.__set__(self, np.zeros(shape, dtype=np.float32))
        object.__setattr__(self, "__class__", self.cls_to_become)

    @property
    def shape(self) -> Any:
        raise RuntimeError(
            "Can't access the shape of an uninitialized parameter or buffer. This error usually "
            "happens in `load_state_dict` when trying to load an uninitialized parameter into "
            "an initialized one. Call `forward` to initialize the parameters before accessing "
            "their attributes."
        )

    def size(self, dim: Any = None) -> Any:
        # torch allows size(): the placeholder's (0,)
        return (0,) if dim is None else (0,)[dim]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def ndim(self) -> int:
        raise _uninitialized_error(type(self), "ndim")

    def dim(self) -> int:
        raise _uninitialized_error(type(self), "dim()")

    def numel(self) -> int:
        raise _uninitialized_error(type(self), "numel()")

    def detach(self) -> Tensor:
        raise _uninitialized_error(type(self), "detach()")

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        raise _uninitialized_error(type(self), "requires_grad_()")

    def numpy(self) -> np.ndarray:
        raise _uninitialized_error(type(self), "numpy()")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"

    __str__ = __repr__

    def __reduce_ex__(self, proto: Any) -> Any:
        return (type(self), (self.requires_grad,))


class UninitializedParameter(UninitializedTensorMixin, Parameter):
    """A Parameter without a shape yet (torch.nn.UninitializedParameter), the weights of
    the lazy modules before their first forward; ``materialize`` makes it a Parameter."""

    __slots__ = ()
    cls_to_become = Parameter

    def __init__(self, requires_grad: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        _check_placeholder_kwargs(device, dtype, "UninitializedParameter")
        Tensor.__init__(self, np.empty((0,), dtype=np.float32))
        # set directly: Tensor's requires_grad setter reads the (hidden) values
        object.__setattr__(self, "requires_grad", bool(requires_grad))


class UninitializedBuffer(UninitializedTensorMixin, Tensor):
    """A buffer without a shape yet (torch.nn.UninitializedBuffer): the lazy norm layers'
    running statistics before their first forward; ``materialize`` makes it a Tensor."""

    __slots__ = ()
    cls_to_become = Tensor

    def __init__(self, requires_grad: bool = False, device: Any = None,
                 dtype: Any = None, persistent: bool = True) -> None:
        _check_placeholder_kwargs(device, dtype, "UninitializedBuffer")
        Tensor.__init__(self, np.empty((0,), dtype=np.float32))
        object.__setattr__(self, "requires_grad", bool(requires_grad))


def _check_placeholder_kwargs(device: Any, dtype: Any, name: str) -> None:
    if device is not None and not str(device).startswith("cpu"):
        raise TypeError(f"{name}: only the cpu device is supported, got {device!r}")
    if dtype is not None and np.dtype(dtype) != float32:
        raise TypeError(f"{name}: only float32 is supported, got {dtype!r}")


def is_lazy(param: Any) -> bool:
    """Whether ``param`` is an UninitializedParameter or UninitializedBuffer."""
    return isinstance(param, UninitializedTensorMixin)
