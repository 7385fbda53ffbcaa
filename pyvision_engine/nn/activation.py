"""Activation layers: ReLU, ReLU6, LeakyReLU, PReLU, Sigmoid, Tanh, GELU, SiLU,
Hardswish, Hardsigmoid, Softmax, LogSoftmax (torch's constructors and defaults)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_common import check_factory_kwargs
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import Tensor

__all__ = ["ReLU", "ReLU6", "LeakyReLU", "PReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Hardswish",
           "Hardsigmoid", "Softmax", "LogSoftmax"]


class _InplaceActivation(Module):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_InplaceActivation):
    """max(0, x)."""

    def forward(self, input: Any) -> Tensor:
        return F.relu(input, inplace=self.inplace)


class ReLU6(_InplaceActivation):
    """min(max(0, x), 6)."""

    def forward(self, input: Any) -> Tensor:
        return F.relu6(input, inplace=self.inplace)


class SiLU(_InplaceActivation):
    """x * sigmoid(x)."""

    def forward(self, input: Any) -> Tensor:
        return F.silu(input, inplace=self.inplace)


class Hardswish(_InplaceActivation):
    """x * relu6(x + 3) / 6."""

    def forward(self, input: Any) -> Tensor:
        return F.hardswish(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return ""  # torch prints Hardswish() even with inplace=True


class Hardsigmoid(_InplaceActivation):
    """relu6(x + 3) / 6."""

    def forward(self, input: Any) -> Tensor:
        return F.hardsigmoid(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return ""  # torch prints Hardsigmoid() even with inplace=True


class LeakyReLU(Module):
    """x if x > 0 else negative_slope * x (default slope 0.01)."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input: Any) -> Tensor:
        return F.leaky_relu(input, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class PReLU(Module):
    """Leaky ReLU with a learned slope: num_parameters = 1 (shared) or C; init 0.25."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "PReLU")
        if num_parameters < 1:
            raise ValueError(f"PReLU: num_parameters must be positive, got {num_parameters}")
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(np.full((num_parameters,), init, dtype=np.float32))

    def reset_parameters(self) -> None:
        self.weight._data[...] = self.init

    def forward(self, input: Any) -> Tensor:
        return F.prelu(input, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class Sigmoid(Module):
    def forward(self, input: Any) -> Tensor:
        return F.sigmoid(input)


class Tanh(Module):
    def forward(self, input: Any) -> Tensor:
        return F.tanh(input)


class GELU(Module):
    """x * Phi(x); approximate='tanh' uses the tanh approximation."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input: Any) -> Tensor:
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """softmax along ``dim`` (None: torch's legacy choice)."""

    def __init__(self, dim: Optional[int] = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Any) -> Tensor:
        return F.softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log_softmax along ``dim``."""

    def __init__(self, dim: Optional[int] = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Any) -> Tensor:
        return F.log_softmax(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
