"""Activation functionals (torch names, arguments and in-place forms) and softmax.

Every element-wise activation runs one vectorised kernel (``_C.activation_forward``);
backward runs its derivative kernel on the saved input or output.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from pyvision_engine import _C
from pyvision_engine._ops import normalize_dim
from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import float_input, needs_grad, rebind_inplace, shell_of
from pyvision_engine.tensor import Tensor

__all__ = ["relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "prelu", "sigmoid", "tanh",
           "gelu", "silu", "hardswish", "hardsigmoid", "softmax", "log_softmax", "ACT_CODES"]

# Kernel op codes (csrc/kernels/eltwise/activation.h, enum Act).
ACT_CODES = {"relu": 0, "relu6": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4, "gelu": 5,
             "gelu_tanh": 6, "silu": 7, "hardswish": 8, "hardsigmoid": 9}
_USES_OUTPUT = {0, 3, 4}  # backward from the output: relu, sigmoid, tanh


class _Activation(Function):
    @staticmethod
    def forward(ctx, x, op, alpha, inplace):
        needs = any(ctx.needs_input_grad)
        saved = None
        if needs and inplace and op not in _USES_OUTPUT:
            saved = x.copy()  # the input is about to be overwritten
        out = x if inplace else np.empty_like(x)
        _C.activation_forward(op, x, out, alpha)
        if needs:
            ctx.op, ctx.alpha = op, alpha
            ctx.saved = out if op in _USES_OUTPUT else (saved if saved is not None else x)
        return out

    @staticmethod
    def backward(ctx, g):
        g = np.ascontiguousarray(g, dtype=np.float32)
        gx = np.empty_like(g)
        _C.activation_backward(ctx.op, ctx.saved, g, gx, ctx.alpha)
        return gx, None, None, None


def _activate(input: Any, name: str, alpha: float = 0.0, inplace: bool = False,
              op_name: Optional[str] = None) -> Tensor:
    x = float_input(input, op_name or name)
    code = ACT_CODES[name]
    if not inplace:
        return _Activation.apply(x, code, float(alpha), False)
    if not needs_grad(x):
        _C.activation_forward(code, x._data, x._data, float(alpha))
        x._bump_version()  # (in place: caches of packed weights are rebuilt)
        return x
    if x._node is None:
        raise RuntimeError(
            "a leaf Variable that requires grad is being used in an in-place operation.")
    return rebind_inplace(x, _Activation.apply(shell_of(x), code, float(alpha), True))


def relu(input: Any, inplace: bool = False) -> Tensor:
    """max(0, x) element-wise (NaN stays NaN)."""
    return _activate(input, "relu", inplace=inplace)


def relu_(input: Any) -> Tensor:
    return _activate(input, "relu", inplace=True)


def relu6(input: Any, inplace: bool = False) -> Tensor:
    """min(max(0, x), 6)."""
    return _activate(input, "relu6", inplace=inplace)


def leaky_relu(input: Any, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x if x > 0 else negative_slope * x."""
    return _activate(input, "leaky_relu", negative_slope, inplace)


def leaky_relu_(input: Any, negative_slope: float = 0.01) -> Tensor:
    return _activate(input, "leaky_relu", negative_slope, True)


def sigmoid(input: Any) -> Tensor:
    return _activate(input, "sigmoid")


def tanh(input: Any) -> Tensor:
    return _activate(input, "tanh")


def gelu(input: Any, approximate: str = "none") -> Tensor:
    """x * Phi(x) (approximate='none', erf form) or its tanh approximation ('tanh')."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _activate(input, "gelu" if approximate == "none" else "gelu_tanh", op_name="gelu")


def silu(input: Any, inplace: bool = False) -> Tensor:
    """x * sigmoid(x)."""
    return _activate(input, "silu", inplace=inplace)


def hardswish(input: Any, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6."""
    return _activate(input, "hardswish", inplace=inplace)


def hardsigmoid(input: Any, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6."""
    return _activate(input, "hardsigmoid", inplace=inplace)


class _PReLU(Function):
    @staticmethod
    def forward(ctx, x, w, layout):
        ctx.x, ctx.w, ctx.layout = x, w, layout
        return _C.prelu_forward(x, np.ascontiguousarray(w.reshape(-1)), *layout)

    @staticmethod
    def backward(ctx, g):
        g = np.ascontiguousarray(g, dtype=np.float32)
        gx, gw = _C.prelu_backward(ctx.x, np.ascontiguousarray(ctx.w.reshape(-1)), g, *ctx.layout,
                                   need_input=ctx.needs_input_grad[0],
                                   need_weight=ctx.needs_input_grad[1])
        if gw is not None:
            gw = gw.reshape(ctx.w.shape)
        return gx, gw, None


def prelu(input: Any, weight: Any) -> Tensor:
    """x if x > 0 else weight[c] * x, with c the channel (dim 1).

    weight has 1 element (shared) or C elements. As torch 2.x, an input with
    fewer than 2 dims has no channel dim (one channel): only a shared weight."""
    x = float_input(input, "prelu")
    w = float_input(weight, "prelu")
    n = w._data.size
    channels = x.shape[1] if x.ndim >= 2 else 1
    if n != 1 and n != channels:
        raise ValueError(f"prelu: weight must have 1 or {channels} (channel count) elements, "
                         f"got {n} for input shape {x.shape}")
    if n == 1:
        layout = (1, 1, x._data.size)
    else:
        inner = int(np.prod(x.shape[2:], dtype=np.int64))
        layout = (x.shape[0], channels, inner)
    return _PReLU.apply(x, w, layout)


def _softmax_dim(ndim: int) -> int:
    # torch's legacy choice when dim is None (it warns): 0 for 0-, 1- and 3-D inputs.
    return 0 if ndim in (0, 1, 3) else 1


class _Softmax(Function):
    @staticmethod
    def forward(ctx, x, layout, log):
        y = _C.softmax_forward(x, *layout, log)
        ctx.y, ctx.layout, ctx.log = y, layout, log
        return y

    @staticmethod
    def backward(ctx, g):
        g = np.ascontiguousarray(g, dtype=np.float32)
        return _C.softmax_backward(ctx.y, g, *ctx.layout, ctx.log), None, None


def _softmax(input: Any, dim: Optional[int], log: bool, op: str, dtype: Any = None) -> Tensor:
    x = float_input(input, op)
    if dtype is not None and np.dtype(dtype) != np.float32:
        raise TypeError(f"{op}: only dtype float32 is supported, got {dtype}")
    if dim is None:
        dim = _softmax_dim(x.ndim)
    if x.ndim == 0:
        normalize_dim(dim, 0, op)
        layout = (1, 1, 1)
    else:
        d = normalize_dim(dim, x.ndim, op)
        shape = x.shape
        layout = (int(np.prod(shape[:d], dtype=np.int64)), shape[d],
                  int(np.prod(shape[d + 1:], dtype=np.int64)))
    return _Softmax.apply(x, layout, log)


def softmax(input: Any, dim: Optional[int] = None, _stacklevel: int = 3,
            dtype: Any = None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim`` (max-subtracted: no overflow)."""
    return _softmax(input, dim, False, "softmax", dtype)


def log_softmax(input: Any, dim: Optional[int] = None, _stacklevel: int = 3,
                dtype: Any = None) -> Tensor:
    """x - logsumexp(x) along ``dim``."""
    return _softmax(input, dim, True, "log_softmax", dtype)
