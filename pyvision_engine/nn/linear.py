"""Linear, Identity and Flatten layers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pyvision_engine.nn import functional as F
from pyvision_engine.nn import init
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["Linear", "Identity", "Flatten"]


class Linear(Module):
    """y = x W^T + b. weight (out_features, in_features), bias (out_features,).

    Initialised as torch's: kaiming_uniform_(a=sqrt(5)) for the weight, and
    U(-1/sqrt(in_features), 1/sqrt(in_features)) for the bias."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, got {value!r}")
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = Parameter(np.empty((out_features, in_features), dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty((out_features,), dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.in_features == 0:  # as torch: U(0, 0) for the bias, the weight is empty
            if self.bias is not None:
                init.zeros_(self.bias)
            return
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Any) -> Tensor:
        x = as_tensor(input)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}): expected input with last "
                f"dimension {self.in_features}, got shape {x.shape}"
            )
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments (as torch)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Tensor:
        return as_tensor(input)


class Flatten(Module):
    """Flattens dims start_dim..end_dim (defaults 1..-1 keep the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Any) -> Tensor:
        return as_tensor(input).flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
