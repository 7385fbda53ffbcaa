"""pve.nn.functional: the functional form of every layer (torch's names and arguments).

Inputs may be pve Tensors or numpy arrays; results are pve Tensors.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from pyvision_engine import _C
from pyvision_engine.autograd import Function
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["linear", "flatten"]


def _float_input(x: Any, op: str) -> Tensor:
    t = as_tensor(x)
    if t.dtype != np.float32:
        raise TypeError(f"{op}: expected a float32 input, got {t.dtype}")
    return t


class _Linear(Function):
    """y = x @ W^T + b through one GEMM with the bias in its epilogue."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        in_features = weight.shape[1]
        x2 = x.reshape(-1, in_features)
        ctx.x2, ctx.weight, ctx.x_shape, ctx.has_bias = x2, weight, x.shape, bias is not None
        y = _C.gemm(x2, weight, trans_b=True, bias=bias, bias_axis="col")
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    @staticmethod
    def backward(ctx, g):
        g2 = np.asarray(g.reshape(-1, ctx.weight.shape[0]), order="C")
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = _C.gemm(g2, ctx.weight).reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            gw = _C.gemm(g2, ctx.x2, trans_a=True)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g2.sum(axis=0, dtype=np.float32)
        return gx, gw, gb


def linear(input: Any, weight: Any, bias: Optional[Any] = None) -> Tensor:
    """``input @ weight.T + bias``; input (*, in_features), weight (out, in), bias (out,)."""
    x = _float_input(input, "linear")
    w = _float_input(weight, "linear")
    if w.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {w.shape}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"linear: input's last dimension must equal in_features={w.shape[1]}, "
            f"got input shape {x.shape} for weight shape {w.shape}"
        )
    b = None
    if bias is not None:
        b = _float_input(bias, "linear")
        if b.shape != (w.shape[0],):
            raise ValueError(
                f"linear: bias must have shape ({w.shape[0]},) (out_features), got {b.shape}"
            )
    return _Linear.apply(x, w, b)


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return as_tensor(input).flatten(start_dim, end_dim)
