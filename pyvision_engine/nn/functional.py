"""pve.nn.functional: the functional form of every layer (torch's names and arguments).

Inputs may be pve Tensors or numpy arrays; results are pve Tensors.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from pyvision_engine import _C
from pyvision_engine.autograd import Function
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["linear", "flatten"]  # extended below with the layer functionals


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


# Layer functionals (pooling, activations, normalisation, losses, shape ops) live
# in nn/_f_*.py and are re-exported here under torch's names.
from pyvision_engine.nn._f_activation import (  # noqa: E402
    gelu, hardsigmoid, hardswish, leaky_relu, leaky_relu_, log_softmax, prelu, relu, relu6,
    relu_, sigmoid, silu, softmax, tanh,
)
from pyvision_engine.nn._f_loss import (  # noqa: E402
    binary_cross_entropy_with_logits, cross_entropy, l1_loss, mse_loss, nll_loss,
    smooth_l1_loss,
)
from pyvision_engine.nn._f_norm import batch_norm, group_norm, layer_norm  # noqa: E402
from pyvision_engine.nn._f_pooling import (  # noqa: E402
    adaptive_avg_pool2d, adaptive_max_pool2d, adaptive_max_pool2d_with_indices, avg_pool2d,
    max_pool2d, max_pool2d_with_indices,
)
from pyvision_engine.nn._f_shape import add, cat, dropout, interpolate, pad, upsample  # noqa: E402

__all__ += [
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "prelu", "sigmoid", "tanh", "gelu",
    "silu", "hardswish", "hardsigmoid", "softmax", "log_softmax",
    "cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss",
    "binary_cross_entropy_with_logits",
    "batch_norm", "group_norm", "layer_norm",
    "max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "adaptive_avg_pool2d",
    "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices",
    "dropout", "cat", "add", "pad", "interpolate", "upsample",
]
