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
from pyvision_engine.nn._f_common import (RuntimeValueError, float_input, needs_grad,
                                          rebind_inplace, shell_of)
from pyvision_engine.tensor import Tensor

__all__ = ["relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "prelu", "sigmoid", "tanh",
           "gelu", "silu", "hardswish", "hardsigmoid", "softmax", "log_softmax", "ACT_CODES"]

# Kernel op codes (csrc/kernels/eltwise/activation.h, enum Act).
ACT_CODES = {"relu": 0, "relu6": 1, "leaky_relu": 2, "sigmoid": 3, "tanh": 4, "gelu": 5,
             "gelu_tanh": 6, "silu": 7, "hardswish": 8, "hardsigmoid": 9, "identity": 10}
_USES_OUTPUT = {0, 3, 4}  # backward from the output: relu, sigmoid, tanh


def _activation_values(x: np.ndarray, op: int, alpha: float, inplace: bool) -> np.ndarray:
    """The activation of x, into x itself (in place) or a new array."""
    out = x if inplace else np.empty_like(x)
    _C.activation_forward(op, x, out, alpha)
    return out


class _Activation(Function):
    @staticmethod
    def forward(ctx, x, op, alpha, inplace):
        needs = any(ctx.needs_input_grad)
        saved = None
        if needs and inplace and op not in _USES_OUTPUT:
            saved = x.copy()  # the input is about to be overwritten
        out = _activation_values(x, op, alpha, inplace)
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
    if not needs_grad(x):  # no graph node to build (inference): the kernel alone
        out = _activation_values(x._data, code, float(alpha), inplace)
        if not inplace:
            return Tensor._wrap(out)
        x._bump_version()  # (in place: caches of packed weights are rebuilt)
        return x
    if not inplace:
        return _Activation.apply(x, code, float(alpha), False)
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
        raise RuntimeValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
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


# ------------------------------------------------------------------ more activations
# ELU and its relatives, Hardtanh, Threshold, Softplus, Mish, Softsign, Tanhshrink,
# LogSigmoid and Softmin, in numpy float32 with torch's own formulas (its CPU kernels'
# branch conditions and derivative forms, so NaN, Inf and overflow come out as torch's).

import numbers as _numbers  # noqa: E402
import warnings as _warnings  # noqa: E402


__all__ += ["threshold", "threshold_", "hardtanh", "hardtanh_", "elu", "elu_", "selu", "selu_",
            "celu", "celu_", "softplus", "mish", "softsign", "tanhshrink", "logsigmoid",
            "softmin"]

_F32 = np.float32
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class _Pointwise(Function):
    """y = spec.forward(x, *params); grad = spec.backward(g, saved, *params), where
    ``saved`` is the input, or the output for specs with ``from_output`` (torch's
    in-place ELU family differentiates through its result)."""

    @staticmethod
    def forward(ctx, x, spec, params, inplace):
        needs = any(ctx.needs_input_grad)
        from_output = spec.from_output(inplace, params)
        saved = None
        if needs and not from_output:
            saved = spec.save(x, *params)
            if inplace and saved is x:
                saved = x.copy()  # the input is about to be overwritten
        with np.errstate(all="ignore"):
            y = spec.forward(x, *params)
        if inplace:
            np.copyto(x, y)
            y = x
        if needs:
            ctx.spec, ctx.params = spec, params
            ctx.saved, ctx.from_output = (y if from_output else saved), from_output
        return y

    @staticmethod
    def backward(ctx, g):
        g = np.asarray(g, dtype=_F32)
        with np.errstate(all="ignore"):
            if ctx.from_output:
                gx = ctx.spec.backward_from_output(g, ctx.saved, *ctx.params)
            else:
                gx = ctx.spec.backward(g, ctx.saved, *ctx.params)
        return np.ascontiguousarray(gx, dtype=_F32), None, None, None


class _Spec:
    """An element-wise op for _Pointwise: what backward keeps (``save``) and the two maps."""

    @staticmethod
    def from_output(inplace, params):
        return False

    @staticmethod
    def save(x, *params):
        return x


def _pointwise(input: Any, op: str, spec: type, params: tuple, inplace: bool = False) -> Tensor:
    x = float_input(input, op)
    if not inplace:
        return _Pointwise.apply(x, spec, params, False)
    if not needs_grad(x):
        with np.errstate(all="ignore"):
            np.copyto(x._data, spec.forward(x._data, *params))
        x._bump_version()  # (in place: caches of packed weights are rebuilt)
        return x
    if x._node is None:
        raise RuntimeValueError(f"{op}: a leaf Variable that requires grad is being used in an "
                                "in-place operation.")
    return rebind_inplace(x, _Pointwise.apply(shell_of(x), spec, params, True))


def _number(v: Any, op: str, name: str) -> float:
    """A real scalar argument (torch: "argument 'x' must be Number"), as a Python float."""
    if isinstance(v, _numbers.Real):
        return float(v)
    if isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "biuf":
        return float(v)
    raise TypeError(f"{op}: argument {name!r} must be a number, got {type(v).__name__}")


class _ThresholdSpec(_Spec):
    # torch: x <= threshold ? value : x (NaN stays NaN); grad 0 where x <= threshold.
    @staticmethod
    def forward(x, th, value):
        return np.where(x <= _F32(th), _F32(value), x).astype(_F32, copy=False)

    @staticmethod
    def save(x, th, value):
        return x <= _F32(th)  # the mask is all backward needs (it survives in place)

    @staticmethod
    def backward(g, mask, th, value):
        return np.where(mask, _F32(0), g)


def threshold(input: Any, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """y = x if x > threshold else value."""
    params = (_number(threshold, "threshold", "threshold"), _number(value, "threshold", "value"))
    return _pointwise(input, "threshold", _ThresholdSpec, params, inplace)


def threshold_(input: Any, threshold: float, value: float) -> Tensor:
    params = (_number(threshold, "threshold_", "threshold"), _number(value, "threshold_", "value"))
    return _pointwise(input, "threshold_", _ThresholdSpec, params, True)


class _HardtanhSpec(_Spec):
    # torch: clamp (NaN stays NaN); the gradient passes where min_val < x < max_val
    # (its vectorised kernel's mask, so a NaN input gets a zero gradient).
    @staticmethod
    def forward(x, lo, hi):
        return np.minimum(np.maximum(x, _F32(lo)), _F32(hi))

    @staticmethod
    def save(x, lo, hi):
        return (x > _F32(lo)) & (x < _F32(hi))

    @staticmethod
    def backward(g, inside, lo, hi):
        return np.where(inside, g, _F32(0))


def _hardtanh(input: Any, min_val: Any, max_val: Any, inplace: bool, op: str) -> Tensor:
    lo, hi = _number(min_val, op, "min_val"), _number(max_val, op, "max_val")
    if lo > hi:
        raise ValueError(f"{op}: min_val cannot be greater than max_val (got min_val={lo}, "
                         f"max_val={hi})")
    return _pointwise(input, op, _HardtanhSpec, (lo, hi), inplace)


def hardtanh(input: Any, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """clamp(x, min_val, max_val)."""
    return _hardtanh(input, min_val, max_val, inplace, "hardtanh")


def hardtanh_(input: Any, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    return _hardtanh(input, min_val, max_val, True, "hardtanh_")


class _EluSpec(_Spec):
    """torch's elu kernel, params (negcoef, poscoef, input_scale):
    x <= 0 ? negcoef * expm1(x * input_scale) : x * poscoef. Out of place the
    gradient reads the input; in place (torch's elu_) the result, which needs
    negcoef >= 0 (torch's error otherwise, raised by backward as torch's). The
    gradient takes the positive branch where x > 0 (torch's vectorised kernel's
    blend), so a NaN input gets a NaN gradient."""

    @staticmethod
    def from_output(inplace, params):
        return inplace

    @staticmethod
    def forward(x, neg, pos, scale):
        negative = _F32(neg) * np.expm1(x * _F32(scale))
        return np.where(x <= 0, negative, x * _F32(pos)).astype(_F32, copy=False)

    @staticmethod
    def backward(g, x, neg, pos, scale):
        s = _F32(scale)
        return np.where(x > 0, g * _F32(pos), g * s * _F32(neg) * np.exp(x * s))

    @staticmethod
    def backward_from_output(g, y, neg, pos, scale):
        if neg < 0:
            raise RuntimeValueError(
                "In-place elu backward calculation is triggered with a negative slope which is "
                "not supported. This is caused by calling in-place forward function with a "
                "negative slope, please call out-of-place version instead.")
        return np.where(y > 0, g * _F32(pos), g * _F32(scale) * (y + _F32(neg)))


def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x if x > 0 else alpha * (exp(x) - 1)."""
    a = _number(alpha, "elu", "alpha")
    return _pointwise(input, "elu", _EluSpec, (a, 1.0, 1.0), inplace)


def elu_(input: Any, alpha: float = 1.0) -> Tensor:
    a = _number(alpha, "elu_", "alpha")
    return _pointwise(input, "elu_", _EluSpec, (a, 1.0, 1.0), True)


def selu(input: Any, inplace: bool = False) -> Tensor:
    """scale * (x if x > 0 else alpha * (exp(x) - 1)), torch's fixed alpha and scale."""
    return _pointwise(input, "selu", _EluSpec, (_SELU_ALPHA * _SELU_SCALE, _SELU_SCALE, 1.0),
                      inplace)


def selu_(input: Any) -> Tensor:
    return _pointwise(input, "selu_", _EluSpec, (_SELU_ALPHA * _SELU_SCALE, _SELU_SCALE, 1.0),
                      True)


def _celu(input: Any, alpha: Any, inplace: bool, op: str) -> Tensor:
    a = _number(alpha, op, "alpha")
    if a == 0:
        raise RuntimeValueError(f"{op}: ZeroDivisionError: alpha cannot be 0 for CELU")
    return _pointwise(input, op, _EluSpec, (a, 1.0, 1.0 / a), inplace)


def celu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    return _celu(input, alpha, inplace, "celu")


def celu_(input: Any, alpha: float = 1.0) -> Tensor:
    return _celu(input, alpha, True, "celu_")


class _SoftplusSpec(_Spec):
    # torch: x * beta > threshold ? x : log1p(exp(x * beta)) / beta; its backward
    # z = exp(x * beta); x * beta > threshold ? g : g * z / (z + 1).
    @staticmethod
    def forward(x, beta, th):
        xb = x * _F32(beta)
        return np.where(xb > _F32(th), x, np.log1p(np.exp(xb)) / _F32(beta)).astype(_F32,
                                                                                    copy=False)

    @staticmethod
    def backward(g, x, beta, th):
        xb = x * _F32(beta)
        z = np.exp(xb)
        return np.where(xb > _F32(th), g, g * z / (z + _F32(1)))


def softplus(input: Any, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, or x where beta * x > threshold."""
    params = (_number(beta, "softplus", "beta"), _number(threshold, "softplus", "threshold"))
    return _pointwise(input, "softplus", _SoftplusSpec, params)


class _MishSpec(_Spec):
    # torch: x * tanh(log1p(exp(x))); backward
    # g * (tanh_sp + x * sigmoid(x) * (1 - tanh_sp^2)), sigmoid = 1 / (1 + exp(-x)).
    @staticmethod
    def forward(x):
        return x * np.tanh(np.log1p(np.exp(x)))

    @staticmethod
    def backward(g, x):
        sig = _F32(1) / (_F32(1) + np.exp(-x))
        t = np.tanh(np.log1p(np.exp(x)))
        return g * (t + x * sig * (_F32(1) - t * t))


def mish(input: Any, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x))."""
    return _pointwise(input, "mish", _MishSpec, (), inplace)


class _SoftsignSpec(_Spec):
    # torch's composite x / (|x| + 1), differentiated as torch's autograd does it:
    # g / d from the numerator, -g * (x / d) / d * sign(x) through |x|.
    @staticmethod
    def forward(x):
        return x / (np.abs(x) + _F32(1))

    @staticmethod
    def backward(g, x):
        d = np.abs(x) + _F32(1)
        return g / d + (-g * ((x / d) / d)) * np.sign(x)


def softsign(input: Any) -> Tensor:
    """x / (1 + |x|)."""
    return _pointwise(input, "softsign", _SoftsignSpec, ())


class _TanhshrinkSpec(_Spec):
    # torch's composite x - tanh(x): g - g * (1 - tanh(x)^2).
    @staticmethod
    def forward(x):
        return x - np.tanh(x)

    @staticmethod
    def backward(g, x):
        t = np.tanh(x)
        return g - g * (_F32(1) - t * t)


def tanhshrink(input: Any) -> Tensor:
    """x - tanh(x)."""
    return _pointwise(input, "tanhshrink", _TanhshrinkSpec, ())


class _LogSigmoidSpec(_Spec):
    # torch: min(x, 0) - log1p(exp(-|x|)); backward with z = exp(-|x|):
    # g * ((x < 0 ? 1 : 0) - (x < 0 ? 1 : -1) * z / (1 + z)).
    @staticmethod
    def forward(x):
        return np.minimum(x, _F32(0)) - np.log1p(np.exp(-np.abs(x)))

    @staticmethod
    def backward(g, x):
        negative = x < 0
        z = np.exp(-np.abs(x))
        sign = np.where(negative, _F32(1), _F32(-1))
        return (negative.astype(_F32) - sign * (z / (_F32(1) + z))) * g


def logsigmoid(input: Any) -> Tensor:
    """log(1 / (1 + exp(-x))), computed without overflow."""
    return _pointwise(input, "logsigmoid", _LogSigmoidSpec, ())


def softmin(input: Any, dim: Optional[int] = None, _stacklevel: int = 3,
            dtype: Any = None) -> Tensor:
    """softmax(-x) along ``dim`` (None: torch's legacy choice, with its warning)."""
    x = float_input(input, "softmin")
    if dim is None:
        _warnings.warn("Implicit dimension choice for softmin has been deprecated. Change the "
                       "call to include dim=X as an argument.", stacklevel=_stacklevel)
        dim = _softmax_dim(x.ndim)
    return _softmax(-x, dim, False, "softmin", dtype)


# ------------------------------------------------------------------ shrinkage, RReLU, GLU
from pyvision_engine.random import default_generator  # noqa: E402

__all__ += ["hardshrink", "softshrink", "rrelu", "rrelu_", "glu"]

_F32_MAX = float(np.finfo(np.float32).max)


class _ShrinkSpec(_Spec):
    """Hardshrink and Softshrink share torch's shrink_backward: the gradient passes where
    x < -lambd or x > lambd and is zero elsewhere. That is its vectorised kernel's mask,
    so a NaN input gets a zero gradient (torch's scalar tail loop, which handles the last
    few elements of some lengths, passes it instead)."""

    @staticmethod
    def save(x, lambd):
        return (x < _F32(-lambd)) | (x > _F32(lambd))

    @staticmethod
    def backward(g, outside, lambd):
        return np.where(outside, g, _F32(0))


def _inside(x: np.ndarray, lambd: float) -> np.ndarray:
    return (x >= _F32(-lambd)) & (x <= _F32(lambd))


class _HardshrinkSpec(_ShrinkSpec):
    # torch: -lambd <= x <= lambd ? 0 : x (a +0 inside, NaN stays NaN).
    @staticmethod
    def forward(x, lambd):
        return np.where(_inside(x, lambd), _F32(0), x)


class _SoftshrinkSpec(_ShrinkSpec):
    # torch's vectorised kernel: x - clamp(x, -lambd, lambd), so the dead zone is +0 and
    # NaN stays NaN (its scalar tail loop's x * 0 would keep a negative zero's sign).
    @staticmethod
    def forward(x, lambd):
        return x - np.clip(x, _F32(-lambd), _F32(lambd))


def hardshrink(input: Any, lambd: float = 0.5) -> Tensor:
    """x where |x| > lambd, else 0 (any lambd, as torch)."""
    return _pointwise(input, "hardshrink", _HardshrinkSpec, (_number(lambd, "hardshrink",
                                                                     "lambd"),))


def softshrink(input: Any, lambd: float = 0.5) -> Tensor:
    """x - lambd above lambd, x + lambd below -lambd, 0 between (lambd >= 0)."""
    lam = _number(lambd, "softshrink", "lambd")
    if not 0 <= lam <= _F32_MAX:  # (torch's check, against float32's range)
        raise RuntimeValueError(f"softshrink: lambda must be in range [0, 3.40282e+38] for input "
                                f"dtype Float, but found {lam}")
    return _pointwise(input, "softshrink", _SoftshrinkSpec, (lam,))


class _RReLUTrainSpec(_Spec):
    # Training: y = x * slope with slope ~ U(lower, upper) where x <= 0 and 1 elsewhere
    # (torch's noise tensor); the gradient is g * slope.
    @staticmethod
    def forward(x, slope):
        return x * slope

    @staticmethod
    def save(x, slope):
        return None  # the slopes are all backward needs

    @staticmethod
    def backward(g, _, slope):
        return g * slope


def _rrelu(input: Any, lower: Any, upper: Any, training: bool, inplace: bool, op: str) -> Tensor:
    lo, hi = _number(lower, op, "lower"), _number(upper, op, "upper")
    if lo > hi:
        raise RuntimeValueError(f"{op}: Lower bound should be less than or equal to the upper "
                                f"bound (got lower={lo}, upper={hi})")
    if not training:  # torch: leaky_relu with the mean slope
        return _activate(input, "leaky_relu", (lo + hi) / 2, inplace, op_name=op)
    x = float_input(input, op)
    negative = x._data <= 0
    slope = np.ones(x.shape, dtype=_F32)
    # One draw per non-positive element, in order, from the engine generator (pve.manual_seed).
    slope[negative] = default_generator().uniform(lo, hi, int(negative.sum())).astype(_F32)
    return _pointwise(x, op, _RReLUTrainSpec, (slope,), inplace)


def rrelu(input: Any, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False) -> Tensor:
    """Randomized leaky ReLU: slopes drawn from U(lower, upper) per element in training,
    the fixed slope (lower + upper) / 2 otherwise."""
    return _rrelu(input, lower, upper, training, inplace, "rrelu")


def rrelu_(input: Any, lower: float = 1.0 / 8, upper: float = 1.0 / 3,
           training: bool = False) -> Tensor:
    return _rrelu(input, lower, upper, training, True, "rrelu_")


def glu(input: Any, dim: int = -1) -> Tensor:
    """Gated linear unit: a * sigmoid(b), with a and b the two halves of ``dim``."""
    x = float_input(input, "glu")
    if x.ndim == 0:
        raise RuntimeValueError("glu does not support scalars because halving size must be even")
    d = normalize_dim(dim, x.ndim, "glu")
    size = x.shape[d]
    if size % 2:
        raise RuntimeValueError(f"glu: Halving dimension must be even, but dimension {d} is size "
                                f"{size}")
    lead = (slice(None),) * d
    half = size // 2
    return x[lead + (slice(0, half),)] * sigmoid(x[lead + (slice(half, size),)])


# ------------------------------------------------------------------ gumbel_softmax
__all__ += ["gumbel_softmax"]


def gumbel_softmax(logits: Any, tau: float = 1, hard: bool = False, eps: float = 1e-10,
                   dim: int = -1) -> Tensor:
    """torch's gumbel_softmax: softmax((logits + g) / tau) along ``dim`` with Gumbel(0, 1)
    noise g = -log(Exponential(1)) from the engine generator (pve.manual_seed). hard=True
    returns the one-hot of the argmax (first maximum on ties) with the soft sample's
    gradient (straight through: y_hard - y_soft.detach() + y_soft). ``eps`` is
    deprecated and unused, as torch (a warning when it is not the default)."""
    if eps != 1e-10:
        _warnings.warn("`eps` parameter is deprecated and has no effect.", stacklevel=2)
    x = float_input(logits, "gumbel_softmax")
    d = normalize_dim(dim, max(x.ndim, 1), "gumbel_softmax")
    gumbels = -np.log(default_generator().exponential(1.0, x.shape).astype(_F32))
    y_soft = softmax((x + Tensor(gumbels)) / tau, d)
    if not hard:
        return y_soft
    soft = y_soft._data
    y_hard = np.zeros_like(soft)
    if soft.size:
        if soft.ndim == 0:
            y_hard[...] = 1.0
        else:
            np.put_along_axis(y_hard, np.expand_dims(np.argmax(soft, axis=d), d), 1.0, axis=d)
    return Tensor(y_hard) - y_soft.detach() + y_soft
