"""More element-wise math as differentiable ``Function``s: the log / exp variants, the
trigonometric and hyperbolic functions and their inverses, trunc / frac, logit,
nan_to_num, and the binary atan2, hypot, logaddexp, xlogy, copysign, fmod, heaviside.

Values and dtypes are torch's (an integer or bool input of a float function computes
in float32); each derivative is the formula of torch's derivatives.yaml, including its
conventions at the points where the plain formula is 0/0 (noted where they occur).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from pyvision_engine._ops import (
    _FLOAT, _RANK_DTYPE_NAMES, _Piecewise, _Unary, _as_float, _check_integer_divisor, _contiguous,
    broadcast_error,
)
from pyvision_engine.autograd import Function, _unbroadcast

_F32_MAX = float(np.finfo(np.float32).max)


# ------------------------------------------------------------------ unary
def _unary(name: str, f: Any, df: Any, saves: str = "input") -> type:
    """A _Unary subclass computing ``f(a)`` with derivative ``df(g, a, out)``; ``saves``:
    which of input and output the derivative reads."""
    attrs = {
        "_f": staticmethod(f), "_df": staticmethod(df),
        "saved_inputs": (0,) if saves == "input" else (),
        "saves_output": saves == "output",
        "__doc__": f"torch.{name.lower()} (float32 result; torch's derivative).",
    }
    return type(name, (_Unary,), attrs)


_f32 = np.float32
Log1p = _unary("Log1p", np.log1p, lambda g, a, out: g / (a + _f32(1)))
Log2 = _unary("Log2", np.log2, lambda g, a, out: g / (a * _f32(np.log(2.0))))
Log10 = _unary("Log10", np.log10, lambda g, a, out: g / (a * _f32(np.log(10.0))))
Expm1 = _unary("Expm1", np.expm1, lambda g, a, out: g * (out + _f32(1)), saves="output")
Exp2 = _unary("Exp2", np.exp2, lambda g, a, out: g * out * _f32(np.log(2.0)), saves="output")
Tan = _unary("Tan", np.tan, lambda g, a, out: g * (_f32(1) + out * out), saves="output")
Asin = _unary("Asin", np.arcsin, lambda g, a, out: g / np.sqrt(_f32(1) - a * a))
Acos = _unary("Acos", np.arccos, lambda g, a, out: -g / np.sqrt(_f32(1) - a * a))
Atan = _unary("Atan", np.arctan, lambda g, a, out: g / (a * a + _f32(1)))
Sinh = _unary("Sinh", np.sinh, lambda g, a, out: g * np.cosh(a))
Cosh = _unary("Cosh", np.cosh, lambda g, a, out: g * np.sinh(a))
Asinh = _unary("Asinh", np.arcsinh, lambda g, a, out: g / np.sqrt(a * a + _f32(1)))
Acosh = _unary("Acosh", np.arccosh, lambda g, a, out: g / np.sqrt(a * a - _f32(1)))
Atanh = _unary("Atanh", np.arctanh, lambda g, a, out: g / (_f32(1) - a * a))


class Trunc(_Piecewise):
    """Rounds toward zero; integers unchanged, bool refused (torch's trunc_vml_cpu)."""

    _bool_kernel = "trunc_vml_cpu"

    @staticmethod
    def _f(a):
        return np.trunc(a) if a.dtype == _FLOAT else a.copy()


class Frac(_Unary):
    """a - trunc(a), float32 only (torch has no integer frac_cpu); the gradient is g."""

    _to_float = False
    saved_inputs, saves_output = (), False

    @classmethod
    def forward(cls, ctx, a):
        if a.dtype != _FLOAT:
            raise NotImplementedError(
                f"\"frac_cpu\" not implemented for '{_RANK_DTYPE_NAMES[a.dtype.kind]}'")
        return super().forward(ctx, a)

    @staticmethod
    def _f(a):
        return a - np.trunc(a)

    @staticmethod
    def _df(g, a, out):
        return g


class Logit(_Unary):
    """log(p / (1 - p)) with p clamped to [eps, 1 - eps] when eps is given. Gradient
    (torch's logit_backward): g / (p (1 - p)), 0 outside [eps, 1 - eps] with eps, NaN
    outside [0, 1] without."""

    @staticmethod
    def _f(a, eps):
        if eps is not None:
            a = np.clip(a, _f32(eps), _f32(1.0 - eps))
        return np.log(a / (_f32(1) - a))

    @classmethod
    def backward(cls, ctx, g):
        a, eps = ctx.a, ctx.eps
        with np.errstate(all="ignore"):
            denominator = a * (_f32(1) - a)
            # at p = 0 or 1 the gradient is g * inf, -0.0 included (torch)
            grad = g / np.where(denominator == 0, _f32(0), denominator)
            if eps is None:
                grad = np.where((a < 0) | (a > 1), np.float32(np.nan), grad)
            else:
                grad = np.where((a < _f32(eps)) | (a > _f32(1.0 - eps)), _f32(0), grad)
        return np.asarray(grad, dtype=np.float32), None

    @classmethod
    def forward(cls, ctx, a, eps):
        ctx.eps = eps
        return super().forward(ctx, a, eps)


class NanToNum(Function):
    """NaN, +inf, -inf replaced (defaults: 0 and float32's largest / lowest finite
    values); integer and bool tensors are returned unchanged. Gradient: g where the
    input is finite, 0 elsewhere (torch: grad * isfinite(self))."""

    saved_inputs, saves_output = (0,), False

    @staticmethod
    def forward(ctx, a, nan, posinf, neginf):
        ctx.a = a
        if a.dtype != _FLOAT:
            return a.copy()
        out = np.nan_to_num(a, nan=0.0 if nan is None else nan,
                            posinf=_F32_MAX if posinf is None else posinf,
                            neginf=-_F32_MAX if neginf is None else neginf)
        return _contiguous(out, np.float32)

    @staticmethod
    def backward(ctx, g):
        return np.where(np.isfinite(ctx.a), g, _f32(0)), None, None, None


# ------------------------------------------------------------------ binary
def _kind_name(a: np.ndarray) -> str:
    return _RANK_DTYPE_NAMES[a.dtype.kind]


class _Binary(Function):
    """An element-wise op of two broadcast operands computed in float32 (torch's result
    type for these when either is an integer or bool). ``_int_kernel``: the name torch's
    error uses when both operands are integer / bool (None: they compute in float32)."""

    saved_inputs, saves_output = (0, 1), True
    _int_kernel: Optional[str] = None

    @staticmethod
    def _f(a, b):
        raise NotImplementedError

    @staticmethod
    def _df(g, a, b, out):
        raise NotImplementedError

    @classmethod
    def forward(cls, ctx, a, b):
        if cls._int_kernel and a.dtype != _FLOAT and b.dtype != _FLOAT:
            kind = a if a.dtype.kind == "b" and b.dtype.kind == "b" else (a if a.dtype.kind == "i" else b)
            raise NotImplementedError(f"\"{cls._int_kernel}\" not implemented for '{_kind_name(kind)}'")
        a, b = _as_float(a), _as_float(b)
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise broadcast_error(a.shape, b.shape) from None
        with np.errstate(all="ignore"):
            out = _contiguous(cls._f(a, b), np.float32)
        ctx.a, ctx.b, ctx.out = a, b, out
        ctx.shape = shape
        return out

    @classmethod
    def backward(cls, ctx, g):
        a, b = ctx.a, ctx.b
        with np.errstate(all="ignore"):
            ga, gb = cls._df(g, a, b, ctx.out)
        return (_unbroadcast(np.asarray(ga, np.float32), a.shape) if ctx.needs_input_grad[0] else None,
                _unbroadcast(np.asarray(gb, np.float32), b.shape) if ctx.needs_input_grad[1] else None)


class Atan2(_Binary):
    """atan2(a, b); gradient (b, -a) g / (a^2 + b^2), 0 where a = b = 0 (torch's)."""

    _f = staticmethod(np.arctan2)

    @staticmethod
    def _df(g, a, b, out):
        r2 = a * a + b * b
        recip = np.where(r2 == 0, _f32(0), _f32(1) / r2)
        return g * b * recip, -g * a * recip


class Hypot(_Binary):
    """sqrt(a^2 + b^2); gradient (a, b) g / out (NaN at 0, as torch)."""

    _int_kernel = "hypot_cpu"
    _f = staticmethod(np.hypot)

    @staticmethod
    def _df(g, a, b, out):
        return g * a / out, g * b / out


class LogAddExp(_Binary):
    """log(e^a + e^b) without overflow; gradient g e^a / (e^a + e^b) and g e^b / (...)."""

    _int_kernel = "logaddexp_cpu"
    _f = staticmethod(np.logaddexp)

    @staticmethod
    def _df(g, a, b, out):
        return g * np.exp(a - out), g * np.exp(b - out)


class XLogY(_Binary):
    """a log b, 0 where a == 0 (unless b is NaN). Gradients (torch's): xlogy(g, b) for a,
    0 where a == 0 and b <= 0; g a / b for b."""

    @staticmethod
    def _f(a, b):
        out = a * np.log(b)
        return np.where((a == 0) & ~np.isnan(b), _f32(0), out)

    @staticmethod
    def _df(g, a, b, out):
        ga = np.where((g == 0) & ~np.isnan(b), _f32(0), g * np.log(b))
        ga = np.where((a == 0) & (b <= 0), _f32(0), ga)
        return ga, g * a / b


class CopySign(_Binary):
    """|a| with b's sign (of -0.0 too); gradient g * out / a (0 where a == 0) for a, zero
    for b (torch's copysign_tensor_self_backward)."""

    _f = staticmethod(np.copysign)

    @staticmethod
    def _df(g, a, b, out):
        ratio = np.where(a == 0, _f32(0), out / a)
        return g * ratio, np.zeros(np.broadcast_shapes(a.shape, b.shape), np.float32)


class Fmod(Function):
    """C's fmod (the result has the dividend's sign). Two integer operands stay int64
    (a zero divisor is torch's RuntimeError 'ZeroDivisionError'); otherwise float32.
    Gradients: g for a, -g trunc(a / b) for b."""

    saved_inputs, saves_output = (0, 1), False

    @staticmethod
    def forward(ctx, a, b):
        if a.dtype == np.bool_ and b.dtype == np.bool_:
            raise NotImplementedError("\"fmod_cpu\" not implemented for 'Bool'")
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise broadcast_error(a.shape, b.shape) from None
        if a.dtype != _FLOAT and b.dtype != _FLOAT:
            _check_integer_divisor(a, b)
            return _contiguous(np.fmod(a.astype(np.int64), b.astype(np.int64)))
        a, b = _as_float(a), _as_float(b)
        ctx.a, ctx.b = a, b
        with np.errstate(all="ignore"):
            return _contiguous(np.fmod(a, b), np.float32)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        with np.errstate(all="ignore"):
            gb = -g * np.trunc(a / b) if ctx.needs_input_grad[1] else None
        return (_unbroadcast(g, a.shape) if ctx.needs_input_grad[0] else None,
                _unbroadcast(gb.astype(np.float32), b.shape) if gb is not None else None)


class NoDerivative(Function):
    """Values computed elsewhere, recorded with a backward that refuses, as torch's ops
    without a derivative (asinh_, acosh_, atanh_: 'inplace version of ...')."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, values, name):
        ctx.op_name = name
        return values

    @staticmethod
    def backward(ctx, g):
        raise NotImplementedError(f"the derivative for '{ctx.op_name}' is not implemented.")


def heaviside_array(a: np.ndarray, values: np.ndarray) -> np.ndarray:
    """0 where a < 0, values where a == 0, 1 where a > 0, in a's dtype (torch requires the
    same dtype for both; it has no derivative)."""
    if a.dtype != values.dtype:
        raise RuntimeError("heaviside is not yet implemented for tensors with different dtypes.")
    try:
        out = np.where(a == 0, values, (a > 0).astype(a.dtype))
    except ValueError:
        raise broadcast_error(a.shape, values.shape) from None
    return _contiguous(np.where(np.isnan(a), a, out) if a.dtype == _FLOAT else out, a.dtype)


def trunc_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division rounding toward zero (divide(rounding_mode='trunc') of int64)."""
    _check_integer_divisor(a, b)
    q = np.floor_divide(a, b)
    return q + ((q < 0) & (q * b != a))


class RoundedDivide(Function):
    """divide(rounding_mode='trunc' | 'floor'): the quotient rounded toward zero or minus
    infinity; two integer operands stay int64 (a zero divisor is torch's
    'ZeroDivisionError'). The result is piecewise constant: zero gradients, as torch's."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, a, b, mode):
        ctx.shapes = (a.shape, b.shape)
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise broadcast_error(a.shape, b.shape) from None
        if a.dtype != _FLOAT and b.dtype != _FLOAT:
            a64, b64 = a.astype(np.int64), b.astype(np.int64)
            _check_integer_divisor(a64, b64)
            return _contiguous(trunc_divide(a64, b64) if mode == "trunc"
                               else np.floor_divide(a64, b64))
        with np.errstate(all="ignore"):
            a, b = _as_float(a), _as_float(b)
            if mode == "trunc":
                return _contiguous(np.trunc(a / b), np.float32)
            return _contiguous(np.floor_divide(a, b), np.float32)

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return (np.zeros(sa, np.float32) if ctx.needs_input_grad[0] else None,
                np.zeros(sb, np.float32) if ctx.needs_input_grad[1] else None, None)
