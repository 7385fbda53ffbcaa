"""Linear, Identity, Flatten and Unflatten layers."""

from __future__ import annotations

import math
from typing import Any, List, Sequence, Tuple

import numpy as np

from pyvision_engine._ops import normalize_dim
from pyvision_engine.nn import functional as F
from pyvision_engine.nn import init
from pyvision_engine.nn._f_common import RuntimeValueError, check_factory_kwargs, float_input
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["Linear", "Identity", "Flatten", "Unflatten", "Bilinear", "bilinear"]


class Linear(Module):
    """y = x W^T + b. weight (out_features, in_features), bias (out_features,).

    Initialised as torch's: kaiming_uniform_(a=sqrt(5)) for the weight, and
    U(-1/sqrt(in_features), 1/sqrt(in_features)) for the bias."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "Linear")
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
            raise RuntimeValueError(
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


class Unflatten(Module):
    """Expands dim ``dim`` into ``unflattened_size`` (a tuple or list of ints, at most
    one -1 to infer), the inverse of Flatten: (N, 50) -> Unflatten(1, (2, 5, 5)) ->
    (N, 2, 5, 5)."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"Unflatten: unflattened_size must be a tuple of ints, but found "
                            f"type {type(unflattened_size).__name__}")
        for i, size in enumerate(unflattened_size):
            if not isinstance(size, int) or isinstance(size, bool):
                raise TypeError(f"Unflatten: unflattened_size must be tuple of ints, but found "
                                f"element of type {type(size).__name__} at pos {i}")
        self.dim = dim
        self.unflattened_size = unflattened_size

    def forward(self, input: Any) -> Tensor:
        x = as_tensor(input)
        return x.reshape(_unflattened_shape(tuple(x.shape), self.dim, self.unflattened_size))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


def _unflattened_shape(shape: Tuple[int, ...], dim: int, sizes: Sequence[int]) -> Tuple[int, ...]:
    """``shape`` with dim ``dim`` replaced by ``sizes`` (one -1 inferred), checked as torch's
    Tensor.unflatten checks it."""
    op = "Unflatten"
    d = normalize_dim(dim, len(shape), op)
    if len(shape) == 0:
        raise ValueError(f"{op}: cannot unflatten a 0-d tensor")
    if len(sizes) == 0:
        raise ValueError(f"{op}: unflattened_size must be non-empty")
    new: List[int] = list(sizes)
    inferred = [i for i, s in enumerate(new) if s == -1]
    if len(inferred) > 1 or any(s < -1 for s in new):
        raise ValueError(f"{op}: unflattened_size {tuple(sizes)} may hold one -1 and otherwise "
                         "non-negative sizes")
    known = math.prod(s for s in new if s != -1)
    if inferred:
        if known == 0 or shape[d] % known:
            raise ValueError(f"{op}: unflattened_size {tuple(sizes)} cannot be inferred for "
                             f"dim {dim} of size {shape[d]} (input shape {shape})")
        new[inferred[0]] = shape[d] // known
    elif known != shape[d]:
        raise ValueError(f"{op}: unflattened_size {tuple(sizes)} doesn't multiply up to the size "
                         f"of dim {dim} ({shape[d]}) of the input shape {shape}")
    return shape[:d] + tuple(new) + shape[d + 1:]


def bilinear(input1: Any, input2: Any, weight: Any, bias: Any = None) -> Tensor:
    """torch.nn.functional.bilinear: ``y[..., k] = x1 A[k] x2^T + b[k]`` for input1 (*, in1),
    input2 (*, in2) with the same leading dims, weight (out, in1, in2), bias (out,).
    Composed of differentiable ops (one matmul, then a product summed over in2), so its
    gradients are autograd's. Shape mismatches raise RuntimeError (RuntimeValueError)
    with torch's wording."""
    op = "bilinear()"
    x1, x2, w = (float_input(v, "bilinear") for v in (input1, input2, weight))
    if w.ndim != 3:
        raise RuntimeValueError(f"{op}: weight must be three-dimensional (out, in1, in2), got "
                                f"shape {w.shape}")
    out, in1, in2 = w.shape
    if x1.ndim != x2.ndim:
        raise RuntimeValueError(f"{op}: input dimensions do not match: got {x1.ndim} and "
                                f"{x2.ndim}")
    if x1.ndim == 0:
        raise RuntimeValueError(f"{op}: inputs must have at least one dimension")
    for d in range(x1.ndim - 1):
        if x1.shape[d] != x2.shape[d]:
            raise RuntimeValueError(f"{op}: input batch dimensions do not match at dim {d}: got "
                                    f"{x1.shape[d]} and {x2.shape[d]}")
    if x1.shape[-1] != in1:
        raise RuntimeValueError(f"{op}: input1 size does not match weight size: got "
                                f"{x1.shape[-1]} but expected {in1}")
    if x2.shape[-1] != in2:
        raise RuntimeValueError(f"{op}: input2 size does not match weight size: got "
                                f"{x2.shape[-1]} but expected {in2}")
    b = None if bias is None else float_input(bias, "bilinear")
    if b is not None and (b.ndim != 1 or b.shape[0] != out):
        raise RuntimeValueError(f"{op}: bias size does not match weight size: got "
                                f"{b.shape[-1] if b.ndim else b.shape} but expected {out}")
    lead = tuple(x1.shape[:-1])
    rows = math.prod(lead)
    a = x1.reshape((rows, in1))
    # (rows, in1) @ (in1, out * in2): every x1 A[k] at once, then dotted with x2
    t = (a @ w.permute(1, 0, 2).reshape((in1, out * in2))).reshape((rows, out, in2))
    y = (t * x2.reshape((rows, 1, in2))).sum(-1)
    if b is not None:
        y = y + b
    return y.reshape(lead + (out,))


class Bilinear(Module):
    """torch.nn.Bilinear: ``y = x1^T A x2 + b``; weight (out_features, in1_features,
    in2_features) and bias (out_features,) both U(-1/sqrt(in1_features),
    1/sqrt(in1_features)), as torch's reset_parameters."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        check_factory_kwargs(device, dtype, "Bilinear")
        for name, value in (("in1_features", in1_features), ("in2_features", in2_features),
                            ("out_features", out_features)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Bilinear: {name} must be a non-negative int, got {value!r}")
        self.in1_features = int(in1_features)
        self.in2_features = int(in2_features)
        self.out_features = int(out_features)
        self.weight = Parameter(np.empty((self.out_features, self.in1_features,
                                          self.in2_features), dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty((self.out_features,), dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.in1_features <= 0:
            raise ValueError(f"Bilinear: in1_features must be > 0, but got "
                             f"(in1_features={self.in1_features})")
        bound = 1 / math.sqrt(self.in1_features)
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1: Any, input2: Any) -> Tensor:
        return bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
