"""ONNX quantized-inference operators (int8 QDQ and QOperator models, float8 / int4 / int2 /
float4 quantized weights), registered in ``_ops.OPS``: QuantizeLinear and DequantizeLinear
(opsets 10 to 28: per-tensor, per-axis and blocked scales and zero points, output_dtype,
precision, saturate), DynamicQuantizeLinear (11), MatMulInteger and ConvInteger (10),
QLinearMatMul (10, 21) and QLinearConv (10).

Quantized types of QuantizeLinear / DequantizeLinear: int8, uint8 (opset 10), float8e4m3fn,
float8e4m3fnuz, float8e5m2, float8e5m2fnuz (19), int16, uint16, int4, uint4 (21), float4e2m1
(23), int2, uint2 (25), and int32 input of DequantizeLinear; the narrow ones are ml_dtypes
arrays (see _proto). Scales: float32, float16, bfloat16, and float8e8m0 from opset 24.
Integer types round half to even and saturate to their range; float8 converts as Cast does
(``saturate``); float4e2m1 rounds to nearest even and saturates. As onnxruntime and the
specification's reference, QuantizeLinear leaves a float8 zero point out of the sum and
DequantizeLinear requires it to be 0.

Integer products are exact: the zero-point-shifted operands as float64 through BLAS
(each product is below 2**16 and a sum stays exact while below 2**53, far beyond any
real kernel size), then wrapped to int32 as the specification's 32-bit accumulator.
QLinearConv and QLinearMatMul requantize as onnxruntime's MlasRequantizeOutput does:
multiplier ``x_scale * w_scale / y_scale`` in float32, ``float32(acc) * multiplier``
rounded half to even, plus the zero point, saturated to the output type. (QLinearMatMul's
float8 form, opset 21, is refused: onnxruntime has no kernel for it either.)
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from pyvision_engine.onnx._ops import (FLOAT8_MAX, OnnxOpError, _as_2d_pool, cast_array,
                                       conv_geometry, contiguous, op, to_float8, widened)
from pyvision_engine.onnx._proto import DTYPE_CODES, DTYPES, TYPE_NAMES, is_narrow

# The quantized types (TensorProto data types) by the first QuantizeLinear /
# DequantizeLinear opset that has them, and the integer ones' ranges
_QUANT_SINCE = {2: 10, 3: 10, 17: 19, 18: 19, 19: 19, 20: 19, 4: 21, 5: 21, 21: 21, 22: 21,
                23: 23, 25: 25, 26: 25}
_INT_RANGES = {2: (0, 255), 3: (-128, 127), 4: (0, 65535), 5: (-32768, 32767), 21: (0, 15),
               22: (-8, 7), 25: (0, 3), 26: (-2, 1)}
_FLOAT4E2M1, _FLOAT8E8M0, _BFLOAT16 = 23, 24, 16
# float types of ``precision``, of scales (float64 too, as numpy computes it), and of
# DequantizeLinear's ``output_dtype``
_PRECISIONS = (1, 10, 11, 16)
_DEQUANTIZED = (1, 10, 16)
_INT8 = (np.dtype(np.int8), np.dtype(np.uint8))


def _code_of(dtype: np.dtype) -> int:
    return DTYPE_CODES.get(dtype, 0)


def _type_code(code: int, allowed: Tuple[int, ...], what: str, attr: str) -> np.dtype:
    """The dtype of an ``attr`` attribute's TensorProto type, one of ``allowed``."""
    if code not in allowed:
        names = ", ".join(TYPE_NAMES[c] for c in allowed)
        raise OnnxOpError(f"{what}: {attr} {code} ({TYPE_NAMES.get(code, 'unknown type')}) is "
                          f"not one of the types pve.onnx computes here ({names})")
    return DTYPES[code]


def _quantized_type(code: int, opset: int, what: str, role: str) -> int:
    """``code`` if it is a quantized type of this opset, else OnnxOpError."""
    if _QUANT_SINCE.get(code, 99) > opset:
        names = ", ".join(TYPE_NAMES[c] for c, since in _QUANT_SINCE.items() if since <= opset)
        raise OnnxOpError(f"{what} (opset {opset}): {role} type "
                          f"{TYPE_NAMES.get(code, code)} is not one of {names}")
    return code


def _check_zero_point(zero_point: Optional[np.ndarray], dtype: np.dtype, what: str,
                      name: str, of: str) -> None:
    if zero_point is not None and zero_point.dtype != dtype:
        raise OnnxOpError(f"{what}: {name} must have the type of {of} ({dtype}), got "
                          f"{zero_point.dtype}")


def _check_scale(scale: np.ndarray, opset: int, what: str, name: str) -> None:
    """A float scale: float32/float16/bfloat16 (float64 too), float8e8m0 from opset 24."""
    code = _code_of(scale.dtype)
    if not (code in _PRECISIONS or (code == _FLOAT8E8M0 and opset >= 24)):
        raise OnnxOpError(f"{what} (opset {opset}): {name} must be float, float16 or bfloat16"
                          f"{' (or float8e8m0)' if opset >= 24 else ''}, got {scale.dtype}")


def _per_element(value: np.ndarray, x_shape: Tuple[int, ...], attrs: Dict[str, Any],
                 opset: int, what: str, name: str) -> np.ndarray:
    """A scale or zero point laid out to broadcast against x: per-tensor (a scalar or
    one value), per-axis (1-D, the length of x's ``axis``) or, from opset 21, blocked (x's
    rank, ``ceil(D / block_size)`` values along ``axis``), as the specification defines."""
    block = int(attrs.get("block_size", 0)) if opset >= 21 else 0
    if block < 0:
        raise OnnxOpError(f"{what}: block_size must be positive, got {block}")
    if value.ndim == 0 or (value.ndim == 1 and value.size == 1 and not block):
        return value.reshape(())
    rank = len(x_shape)
    axis = int(attrs.get("axis", 1)) if opset >= 13 else 1
    if not -rank <= axis < rank:
        raise OnnxOpError(f"{what}: axis {axis} is out of range for input rank {rank}")
    axis %= rank
    if not block:
        if value.ndim != 1 or value.shape[0] != x_shape[axis]:
            raise OnnxOpError(f"{what}: per-axis {name} must be 1-D with {x_shape[axis]} values "
                              f"(input {tuple(x_shape)}, axis {axis}), got shape {value.shape}")
        return value.reshape([-1 if i == axis else 1 for i in range(rank)])
    blocks = -(-x_shape[axis] // block)
    expected = tuple(blocks if i == axis else d for i, d in enumerate(x_shape))
    if value.shape != expected:
        raise OnnxOpError(f"{what}: blocked {name} must have shape {expected} (input "
                          f"{tuple(x_shape)}, axis {axis}, block_size {block}), got {value.shape}")
    return np.repeat(value, block, axis=axis).take(np.arange(x_shape[axis]), axis=axis)


def _same_shape(scale: np.ndarray, zero_point: Optional[np.ndarray], what: str,
                names: str) -> None:
    # (a scalar and a one-value vector both mean per tensor: onnxruntime's quantizer writes
    # such pairs for biases, and onnxruntime takes them)
    if (zero_point is not None and zero_point.shape != scale.shape
            and not scale.size == zero_point.size == 1):
        raise OnnxOpError(f"{what}: {names} must have the same shape, got {scale.shape} and "
                          f"{zero_point.shape}")


def _saturate(q: np.ndarray, zero_point: Any, code: int) -> np.ndarray:
    """round-half-to-even(q) + zero point, saturated to the integer type's range; NaN gives
    the lowest value (as onnxruntime's clamp before the conversion does)."""
    lo, hi = _INT_RANGES[code]
    y = np.rint(q).astype(np.float64) + widened(np.asarray(zero_point)).astype(np.float64)
    y = np.fmin(np.fmax(y, lo), hi)  # (fmax: NaN gives lo)
    return contiguous(cast_array(y.astype(np.int64), code))


# ----------------------------------------------------------------- Quantize / Dequantize
def _output_type(attrs: Dict[str, Any], opset: int, zero_point: Optional[np.ndarray],
                 what: str) -> int:
    """QuantizeLinear's output type: output_dtype (opset 21), else y_zero_point's, else uint8."""
    if opset >= 21 and int(attrs.get("output_dtype", 0)):
        code = _quantized_type(int(attrs["output_dtype"]), opset, what, "output_dtype")
        _check_zero_point(zero_point, DTYPES[code], what, "y_zero_point", "output_dtype")
        return code
    if zero_point is not None:
        return _quantized_type(_code_of(zero_point.dtype), opset, what, "y_zero_point")
    return 2  # (neither given: uint8)


def _precision(attrs: Dict[str, Any], opset: int, x: np.ndarray, scale: np.ndarray,
               what: str) -> np.dtype:
    """The type x / y_scale is computed in: the ``precision`` attribute, else y_scale's type
    (opset 23 on; before, x and y_scale share a type, and int32 x divides in float64 as
    numpy's and the reference's promotion does); an integer scale divides exactly, in
    float64, a float8e8m0 one (a power of two) in float32."""
    if opset >= 23 and int(attrs.get("precision", 0)):
        return _type_code(int(attrs["precision"]), _PRECISIONS, what, "precision")
    if _code_of(scale.dtype) == _FLOAT8E8M0:
        return np.dtype(np.float32)
    if _code_of(scale.dtype) == _BFLOAT16 and (opset >= 23 or x.dtype == scale.dtype):
        return scale.dtype
    if opset < 23:
        return np.result_type(widened(x).dtype, widened(scale).dtype, np.float16)
    return scale.dtype if scale.dtype.kind == "f" else np.dtype(np.float64)


def _divide(x: np.ndarray, scale: np.ndarray, precision: np.dtype) -> np.ndarray:
    """x / scale in ``precision``; bfloat16: the float32 quotient rounded to it (as float32)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if is_narrow(precision):
            q = widened(x).astype(np.float32) / widened(scale).astype(np.float32)
            return widened(cast_array(q, _BFLOAT16))
        return widened(x).astype(precision) / widened(scale).astype(precision)


@op("QuantizeLinear")
def _quantize_linear(attrs, opset, inputs):
    what = "QuantizeLinear"
    x, scale = inputs[0], inputs[1]
    zero_point = inputs[2] if len(inputs) > 2 else None
    code = _output_type(attrs, opset, zero_point, what)
    if not (x.dtype.kind in "fi" and not is_narrow(x.dtype) or _code_of(x.dtype) == _BFLOAT16):
        raise OnnxOpError(f"{what}: x must be float, float16, bfloat16 or int32, got {x.dtype}")
    if scale.dtype.kind != "i":
        _check_scale(scale, opset, what, "y_scale")
    _same_shape(scale, zero_point, what, "y_scale and y_zero_point")
    precision = _precision(attrs, opset, x, scale, what)
    scale = _per_element(scale, x.shape, attrs, opset, what, "y_scale")
    if zero_point is not None:
        zero_point = _per_element(zero_point, x.shape, attrs, opset, what, "y_zero_point")
    q = _divide(x, scale, precision)
    if code in _INT_RANGES:
        return [_saturate(q, 0 if zero_point is None else zero_point, code)]
    if code in FLOAT8_MAX:  # (the zero point left out, as onnxruntime and the reference)
        return [contiguous(to_float8(q, code, bool(attrs.get("saturate", 1))))]
    if zero_point is not None:  # float4e2m1: x / y_scale + y_zero_point, rounded
        q = q + widened(zero_point).astype(q.dtype)
    return [contiguous(cast_array(q, _FLOAT4E2M1))]


def _dequantize_input(x: np.ndarray, opset: int, what: str) -> int:
    code = _code_of(x.dtype)
    if code != 6:  # (int32, any opset)
        _quantized_type(code, opset, what, "x")
    return code


def _shifted_input(x: np.ndarray, code: int, zero_point: Optional[np.ndarray],
                   what: str) -> np.ndarray:
    """x - x_zero_point as float32: integers subtracted exactly first; float8 requires a
    zero point of 0 (as onnxruntime and the reference), float4e2m1 subtracts it."""
    if code in FLOAT8_MAX:
        if zero_point is not None and np.any(widened(zero_point) != 0):
            raise OnnxOpError(f"{what}: a float8 x_zero_point must be 0")
        return widened(x).astype(np.float32)
    if code == _FLOAT4E2M1:
        x = widened(x).astype(np.float32)
        return x if zero_point is None else x - widened(zero_point).astype(np.float32)
    shifted = widened(x).astype(np.int64)
    if zero_point is not None:
        shifted = shifted - widened(zero_point).astype(np.int64)
    return shifted.astype(np.float32)


@op("DequantizeLinear")
def _dequantize_linear(attrs, opset, inputs):
    what = "DequantizeLinear"
    x, scale = inputs[0], inputs[1]
    zero_point = inputs[2] if len(inputs) > 2 else None
    code = _dequantize_input(x, opset, what)
    _check_zero_point(zero_point, x.dtype, what, "x_zero_point", "x")
    _check_scale(scale, opset, what, "x_scale")
    _same_shape(scale, zero_point, what, "x_scale and x_zero_point")
    out = _code_of(scale.dtype)
    if opset >= 23 and int(attrs.get("output_dtype", 0)):
        out = int(attrs["output_dtype"])
        _type_code(out, _DEQUANTIZED, what, "output_dtype")
    elif out == _FLOAT8E8M0:
        raise OnnxOpError(f"{what}: a float8e8m0 x_scale needs output_dtype (float, float16 or "
                          "bfloat16)")
    scale = _per_element(scale, x.shape, attrs, opset, what, "x_scale")
    if zero_point is not None:
        zero_point = _per_element(zero_point, x.shape, attrs, opset, what, "x_zero_point")
    # the product in float32 (as onnxruntime and the specification's reference), rounded
    # to the output type
    y = _shifted_input(x, code, zero_point, what) * widened(scale).astype(np.float32)
    return [contiguous(cast_array(y, out))]


@op("DynamicQuantizeLinear")
def _dynamic_quantize_linear(attrs, opset, inputs):
    x = inputs[0]
    if x.dtype != np.float32:
        raise OnnxOpError(f"DynamicQuantizeLinear: float32 x expected, got {x.dtype}")
    qmin, qmax = np.float32(0), np.float32(255)
    # the range is widened to include 0 (an empty x: the range [0, 0])
    high = np.float32(max(0.0, float(x.max()))) if x.size else np.float32(0)
    low = np.float32(min(0.0, float(x.min()))) if x.size else np.float32(0)
    # the specification's formula in float32, as onnxruntime computes it
    scale = np.float32(1.0) if high == low else np.float32((high - low) / (qmax - qmin))
    zero_point = np.rint(np.clip(np.float32(qmin - low / scale), qmin, qmax))
    with np.errstate(invalid="ignore"):
        y = _saturate(x / scale, zero_point, 2)
    return [y, np.asarray(scale, np.float32), np.asarray(zero_point, np.uint8)]


# ----------------------------------------------------------------- integer products
def _shifted(x: np.ndarray, zero_point: Optional[np.ndarray]) -> np.ndarray:
    """x - zero_point as float64 (exact: both are 8-bit integers)."""
    out = x.astype(np.float64)
    return out if zero_point is None else out - zero_point.astype(np.float64)


def _int32(acc: np.ndarray) -> np.ndarray:
    """An exact float64 sum as the int32 accumulator (wrapping, which the spec allows)."""
    return contiguous(acc.astype(np.int64).astype(np.int32))


def _matmul_operands(what, a, a_zero_point, b, b_zero_point):
    """(a - a_zero_point, b - b_zero_point) as float64: zero points per tensor, per row of
    a (M values, or a's batch shape with K = 1) and per column of b (N values)."""
    for v, name in ((a, "A"), (b, "B")):
        if v.dtype not in _INT8:  # (float8, from opset 21: no kernel here, nor in onnxruntime)
            raise OnnxOpError(f"{what}: {name} must be int8 or uint8 (pve.onnx computes no "
                              f"other type), got {v.dtype}")
    _check_zero_point(a_zero_point, a.dtype, what, "a_zero_point", "A")
    _check_zero_point(b_zero_point, b.dtype, what, "b_zero_point", "B")
    if a.ndim == 0 or b.ndim == 0 or a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise OnnxOpError(f"{what}: A {a.shape} and B {b.shape} do not multiply")
    if a_zero_point is not None and a_zero_point.ndim == 1 and a_zero_point.size > 1:
        if a.ndim < 2 or a_zero_point.shape[0] != a.shape[-2]:
            raise OnnxOpError(f"{what}: a per-row a_zero_point must have {a.shape[-2:-1]} "
                              f"values for A {a.shape}, got {a_zero_point.shape}")
        a_zero_point = a_zero_point[:, None]
    for zp, v, name in ((a_zero_point, a, "a_zero_point"), (b_zero_point, b, "b_zero_point")):
        if zp is not None:
            try:
                np.broadcast_shapes(zp.shape, v.shape)
            except ValueError:
                raise OnnxOpError(f"{what}: {name} {zp.shape} does not broadcast against its "
                                  f"input {v.shape}") from None
    return _shifted(a, a_zero_point), _shifted(b, b_zero_point)


@op("MatMulInteger")
def _matmul_integer(attrs, opset, inputs):
    a, b = inputs[0], inputs[1]
    a_zp = inputs[2] if len(inputs) > 2 else None
    b_zp = inputs[3] if len(inputs) > 3 else None
    a64, b64 = _matmul_operands("MatMulInteger", a, a_zp, b, b_zp)
    return [_int32(np.matmul(a64, b64))]


def _requantize(acc: np.ndarray, multiplier: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """onnxruntime's MlasRequantizeOutput: float32(int32 acc) * float32 multiplier, rounded
    half to even, plus the zero point, saturated to the zero point's type."""
    with np.errstate(over="ignore", invalid="ignore"):
        value = acc.astype(np.float32) * multiplier.astype(np.float32)
    return _saturate(value, zero_point.astype(np.int64), _code_of(zero_point.dtype))


def _scale(value: np.ndarray, what: str, name: str) -> np.ndarray:
    if _code_of(value.dtype) not in _PRECISIONS:
        raise OnnxOpError(f"{what}: {name} must be float, got {value.dtype}")
    return widened(value)


def _multiplier(what: str, a_scale: np.ndarray, b_scale: np.ndarray,
                y_scale: np.ndarray) -> np.ndarray:
    """a_scale * b_scale / y_scale in float32, left to right, as onnxruntime computes it
    (float16 scales are widened to float32 first)."""
    a_scale, b_scale, y_scale = (_scale(v, what, n).astype(np.float32) for v, n in
                                 ((a_scale, "the first scale"), (b_scale, "the second scale"),
                                  (y_scale, "y_scale")))
    return (a_scale * b_scale) / y_scale


def _per_tensor(value: np.ndarray, what: str, name: str) -> np.ndarray:
    if value.size != 1:
        raise OnnxOpError(f"{what}: {name} must be a scalar (per tensor), got shape {value.shape}")
    return value.reshape(())


@op("QLinearMatMul")
def _qlinear_matmul(attrs, opset, inputs):
    what = "QLinearMatMul"
    a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp = inputs[:8]
    for s, z, names in ((a_scale, a_zp, "a_scale and a_zero_point"),
                        (b_scale, b_zp, "b_scale and b_zero_point"),
                        (y_scale, y_zp, "y_scale and y_zero_point")):
        _same_shape(s, z, what, names)
    if y_zp.dtype not in _INT8:
        raise OnnxOpError(f"{what}: y_zero_point must be int8 or uint8, got {y_zp.dtype}")
    y_scale, y_zp = _per_tensor(y_scale, what, "y_scale"), _per_tensor(y_zp, what, "y_zero_point")
    a64, b64 = _matmul_operands(what, a, a_zp, b, b_zp)
    # per-row a scales as the zero points: M values are a column
    if a_scale.ndim == 1 and a_scale.size > 1:
        a_scale = a_scale[:, None]
    acc = _int32(np.matmul(a64, b64))
    return [_requantize(acc, _multiplier(what, a_scale, b_scale, y_scale), y_zp)]


# ----------------------------------------------------------------- integer convolution
def _conv_exact(attrs: Dict[str, Any], x: np.ndarray, w: np.ndarray, what: str) -> np.ndarray:
    """The convolution of zero-point-shifted float64 x (N, C, [H,] W) and w (M, C/group,
    [kH,] kW), exact: im2col as a strided view and one batched float64 matmul per group."""
    one_d = x.ndim == 3 and w.ndim == 3
    if one_d:  # a 1-D convolution as a 2-D one over planes of one row
        attrs, x, w = _as_2d_pool(attrs, x)[0], x[:, :, None, :], w[:, :, None, :]
    strides, dilations, pads, group = conv_geometry(attrs, x.shape, w.shape, what)
    n, c, m = x.shape[0], x.shape[1], w.shape[0]
    if group < 1 or c % group or m % group or w.shape[1] != c // group:
        raise OnnxOpError(f"{what}: input channels {c} and weight {w.shape} do not fit "
                          f"group {group}")
    kh, kw = w.shape[2:]
    x = np.pad(x, [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])])  # (0: shifted)
    out_h = (x.shape[2] - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    out_w = (x.shape[3] - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    if out_h < 1 or out_w < 1:
        raise OnnxOpError(f"{what}: the (dilated) kernel {w.shape[2:]} does not fit the padded "
                          f"input {x.shape[2:]}")
    sn, sc, sh, sw = x.strides
    view = np.lib.stride_tricks.as_strided(
        x, (n, c, out_h, out_w, kh, kw),
        (sn, sc, sh * strides[0], sw * strides[1], sh * dilations[0], sw * dilations[1]),
        writeable=False)
    cg, mg = c // group, m // group
    cols = (view.reshape(n, group, cg, out_h, out_w, kh, kw).transpose(0, 1, 3, 4, 2, 5, 6)
            .reshape(n, group, out_h * out_w, cg * kh * kw))
    wmat = w.reshape(group, mg, cg * kh * kw).transpose(0, 2, 1)
    y = np.matmul(cols, wmat[None])  # (N, group, H*W, M/group)
    y = y.transpose(0, 1, 3, 2).reshape(n, m, out_h, out_w)
    return y[:, :, 0] if one_d else y


def _conv_operands(what, x, x_zp, w, w_zp):
    for v, name in ((x, "x"), (w, "w")):
        if v.dtype not in _INT8:
            raise OnnxOpError(f"{what}: {name} must be int8 or uint8, got {v.dtype}")
    _check_zero_point(x_zp, x.dtype, what, "x_zero_point", "x")
    _check_zero_point(w_zp, w.dtype, what, "w_zero_point", "w")
    if x_zp is not None:
        x_zp = _per_tensor(x_zp, what, "x_zero_point")
    if w_zp is not None and w_zp.size != 1:
        if w_zp.ndim != 1 or w_zp.shape[0] != w.shape[0]:
            raise OnnxOpError(f"{what}: w_zero_point must be a scalar or have one value per "
                              f"output channel ({w.shape[0]}), got shape {w_zp.shape}")
        w_zp = w_zp.reshape((-1,) + (1,) * (w.ndim - 1))
    elif w_zp is not None:
        w_zp = w_zp.reshape(())
    return _shifted(x, x_zp), _shifted(w, w_zp)


@op("ConvInteger")
def _conv_integer(attrs, opset, inputs):
    x, w = inputs[0], inputs[1]
    x_zp = inputs[2] if len(inputs) > 2 else None
    w_zp = inputs[3] if len(inputs) > 3 else None
    x64, w64 = _conv_operands("ConvInteger", x, x_zp, w, w_zp)
    return [_int32(_conv_exact(attrs, x64, w64, "ConvInteger"))]


@op("QLinearConv")
def _qlinear_conv(attrs, opset, inputs):
    what = "QLinearConv"
    x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp = inputs[:8]
    bias = inputs[8] if len(inputs) > 8 else None
    for s, z, names in ((x_scale, x_zp, "x_scale and x_zero_point"),
                        (w_scale, w_zp, "w_scale and w_zero_point"),
                        (y_scale, y_zp, "y_scale and y_zero_point")):
        _same_shape(s, z, what, names)
    if y_zp.dtype not in _INT8:
        raise OnnxOpError(f"{what}: y_zero_point must be int8 or uint8, got {y_zp.dtype}")
    x_scale = _per_tensor(x_scale, what, "x_scale")
    y_scale, y_zp = _per_tensor(y_scale, what, "y_scale"), _per_tensor(y_zp, what, "y_zero_point")
    m = w.shape[0] if w.ndim else 0
    if w_scale.size != 1 and (w_scale.ndim != 1 or w_scale.shape[0] != m):
        raise OnnxOpError(f"{what}: w_scale must be a scalar or have one value per output "
                          f"channel ({m}), got shape {w_scale.shape}")
    x64, w64 = _conv_operands(what, x, x_zp, w, w_zp)
    acc = _conv_exact(attrs, x64, w64, what)
    channel = (1, -1) + (1,) * (acc.ndim - 2)
    if bias is not None:
        if bias.dtype != np.int32 or bias.shape != (m,):
            raise OnnxOpError(f"{what}: B must be int32 with shape ({m},), got {bias.dtype} "
                              f"{bias.shape}")
        acc = acc + bias.astype(np.float64).reshape(channel)
    acc = _int32(acc)
    multiplier = _multiplier(what, x_scale, w_scale.reshape(-1), y_scale)
    return [_requantize(acc, multiplier.reshape(channel if multiplier.size > 1 else ()), y_zp)]
