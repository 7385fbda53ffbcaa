"""nn.Parameter: a leaf Tensor that a Module registers as trainable."""

from __future__ import annotations

from typing import Any

import numpy as np

from pyvision_engine.tensor import Tensor, _as_engine_array, float32

__all__ = ["Parameter", "Buffer"]


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


class Buffer(Tensor):
    """Marks a tensor to be registered as a buffer when assigned to a Module."""

    __slots__ = ("persistent",)

    def __init__(self, data: Any, persistent: bool = True) -> None:
        super().__init__(data)
        self.persistent = persistent
