"""More pooling layers: MaxUnpool2d and LPPool2d (torch's constructors and reprs)."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

from pyvision_engine.nn import functional as F
from pyvision_engine.nn.module import Module
from pyvision_engine.tensor import Tensor

__all__ = ["MaxUnpool2d", "LPPool2d"]


def _as_pair(v: Any) -> Tuple[Any, ...]:
    # torch's _pair, for the stored attributes (and so the repr): a sequence as a tuple
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class MaxUnpool2d(Module):
    """Partial inverse of MaxPool2d: each value goes back to the position its index
    names; everything else is zero. stride defaults to kernel_size."""

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        self.kernel_size = _as_pair(kernel_size)
        self.stride = _as_pair(stride if stride is not None else kernel_size)
        self.padding = _as_pair(padding)

    def forward(self, input: Any, indices: Any,
                output_size: Optional[Sequence[int]] = None) -> Tensor:
        return F.max_unpool2d(input, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class LPPool2d(Module):
    """Power-average pooling: (sum of x ** norm_type over each window) ** (1 / norm_type)."""

    def __init__(self, norm_type: float, kernel_size: Any, stride: Any = None,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.norm_type = norm_type
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode

    def forward(self, input: Any) -> Tensor:
        return F.lp_pool2d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")
