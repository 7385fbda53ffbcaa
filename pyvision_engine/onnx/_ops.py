"""ONNX operators (domain ai.onnx) as functions of numpy arrays.

Each entry of ``OPS`` takes ``(attrs, opset, inputs)``: the node's attributes,
the model's ai.onnx opset version, and its inputs as numpy arrays (None for an
omitted optional input); it returns the list of outputs. Float32 work that the
engine has kernels for (convolution, pooling, GEMM, activations) runs through
``pyvision_engine.nn.functional``; the rest (shapes, indexing, broadcasting
arithmetic) is numpy, whose broadcasting is ONNX's multidirectional one.

Semantics follow the ONNX operator specification (onnx/docs/Operators.md),
including the changes between opsets that matter for exported CNNs: attributes
that became inputs (Clip 11, Squeeze/Unsqueeze/ReduceSum 13, Reduce* 18, Split
13), Softmax's 2-D coercion before opset 13.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine import _C
from pyvision_engine._ops import erf_array  # (the engine's erf, shared with Tensor.erf)
from pyvision_engine.nn import functional as F
from pyvision_engine.nn._f_norm import batch_norm_scale_shift
from pyvision_engine.nn._f_shape import keys_cubic  # (the Resize kernels share it)
from pyvision_engine.onnx._proto import (DTYPE_CODES, DTYPES, NARROW_DTYPE_NAMES, TYPE_NAMES,
                                         is_narrow, narrow_dtype)
from pyvision_engine.tensor import Tensor

Inputs = List[Optional[np.ndarray]]
OpFn = Callable[[Dict[str, Any], int, Inputs], List[np.ndarray]]


# ----------------------------------------------------------------- narrow types
# bfloat16, float8, float4, int4, int2 tensors are ml_dtypes arrays (see _proto). These
# operators take every such type as it is: they move, reinterpret or convert elements
# (the specification allows them all the narrow types).
NARROW_NATIVE = {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose",
                 "Shape", "Size", "Pad", "Constant", "ConstantOfShape", "Cast", "CastLike",
                 "QuantizeLinear", "DequantizeLinear", "QLinearMatMul", "BitCast",
                 "TensorScatter", "If", "Loop", "Scan", "Optional", "OptionalGetElement",
                 "OptionalHasElement"}
# These take bfloat16 as it is (data movement). Every other operator the specification
# allows bfloat16 computes in float32 and rounds its results to bfloat16, as onnxruntime's
# bfloat16 kernels do.
BFLOAT16_NATIVE = {"Concat", "Split", "Slice", "Gather", "GatherElements", "GatherND",
                   "Expand", "Tile", "Where", "Compress", "ReverseSequence", "DepthToSpace",
                   "SpaceToDepth", "Trilu", "ScatterND", "ScatterElements"}
# These also take the four float8 types (as float32, their results rounded back).
_FLOAT8_OPS = {"Dropout", "IsInf", "IsNaN"}
# Results whose type is not the narrow input's: the operators with a type attribute
# choose theirs; Pow's and GridSample's follow their first input only; LayerNormalization's
# Mean and InvStdDev have the stash type.
_TYPE_ATTRS = ("to", "dtype", "output_dtype")
_FOLLOWS_FIRST_INPUT = {"Pow", "GridSample"}


class _OpTable(dict):
    """OPS: each operator stored (by op() or an assignment) runs through _with_narrow_types."""

    def __setitem__(self, name: str, fn: OpFn) -> None:
        super().__setitem__(name, _with_narrow_types(name, fn))


def _narrow_dtype(x: Any) -> Optional[np.dtype]:
    return x.dtype if type(x) is np.ndarray and is_narrow(x.dtype) else None


def _with_narrow_types(name: str, fn: OpFn) -> OpFn:
    """``fn`` taking narrow-type inputs as the specification allows (see NARROW_NATIVE)."""
    if name in NARROW_NATIVE:
        return fn

    def run(attrs: Dict[str, Any], opset: int, inputs: Inputs, *more: Any) -> List[Any]:
        for x in inputs:  # (a numpy type is numbered below 256: one test per input)
            if type(x) is np.ndarray and x.dtype.num >= 256:
                break
        else:
            return fn(attrs, opset, inputs, *more)
        narrow = [t for t in map(_narrow_dtype, inputs) if t is not None]
        if not narrow:
            return fn(attrs, opset, inputs, *more)
        _check_narrow_inputs(name, narrow)
        if name in BFLOAT16_NATIVE:
            return fn(attrs, opset, inputs, *more)
        outs = fn(attrs, opset, [widened(x) if type(x) is np.ndarray else x for x in inputs],
                  *more)
        return _rounded_outputs(name, attrs, inputs, narrow[0], outs)
    return run


def _check_narrow_inputs(name: str, narrow: List[np.dtype]) -> None:
    allowed = {16} | (set(FLOAT8_MAX) if name in _FLOAT8_OPS else set())
    for dtype in narrow:
        if DTYPE_CODES.get(dtype) not in allowed:
            names = ", ".join(TYPE_NAMES[c] for c in sorted(allowed))
            raise OnnxOpError(f"{name}: an input of type {dtype} is not allowed (of the narrow "
                              f"types it takes {names})")


def _rounded_outputs(name: str, attrs: Dict[str, Any], inputs: Inputs, narrow: np.dtype,
                     outs: List[Any]) -> List[Any]:
    """An operator's float32 results from narrow inputs widened to float32, rounded to the
    narrow type where the result has the input's type."""
    if any(key in attrs for key in _TYPE_ATTRS) or (
            name in _FOLLOWS_FIRST_INPUT and _narrow_dtype(inputs[0]) is None):
        return outs
    count = 1 if name == "LayerNormalization" else len(outs)
    code = DTYPE_CODES[narrow]
    return [cast_array(y, code) if k < count and type(y) is np.ndarray and y.dtype == np.float32
            else y for k, y in enumerate(outs)]


OPS: Dict[str, OpFn] = _OpTable()


class OnnxOpError(ValueError):
    """A node's inputs or attributes are outside what its operator allows."""


# Operators of other domains (ai.onnx.preview.training, ai.onnx.preview), by domain;
# their ``opset`` argument is the model's version of that domain.
DOMAIN_OPS: Dict[str, Dict[str, OpFn]] = {}


def op(*names: str, domain: str = "") -> Callable[[OpFn], OpFn]:
    table = OPS if domain in ("", "ai.onnx") else DOMAIN_OPS.setdefault(domain, {})

    def register(fn: OpFn) -> OpFn:
        for name in names:
            table[name] = fn
        return fn
    return register


def arr(t: Any) -> np.ndarray:
    """A kernel's result (a pve Tensor) or an array as a numpy array: the Tensor's own
    array, not a counted numpy view (Tensor.numpy()), as these tensors are dropped here."""
    if isinstance(t, np.ndarray):
        return t
    return t._data if isinstance(t, Tensor) else np.asarray(t)


def contiguous(x: Any, dtype: Any = None) -> np.ndarray:
    """x as a C-contiguous array (no copy when it is one); unlike np.ascontiguousarray,
    a 0-d array stays 0-d."""
    return np.require(x, dtype=dtype, requirements="C")


def f32(x: np.ndarray) -> np.ndarray:
    """x as a C-contiguous float32 array the kernels take (no copy when it is one)."""
    return contiguous(x, np.float32)


def _ints(values: Optional[np.ndarray]) -> Optional[List[int]]:
    return None if values is None else [int(v) for v in np.asarray(values).reshape(-1)]


def text_attr(attrs: Dict[str, Any], key: str, default: str) -> str:
    """A string attribute as str (the reader keeps the file's bytes)."""
    value = attrs.get(key, default)
    return value.decode() if isinstance(value, bytes) else value


def wrap_indices(idx: np.ndarray, size: int, what: str) -> np.ndarray:
    """Indices in [-size, size) as [0, size) (int64), or OnnxOpError."""
    idx = np.asarray(idx).astype(np.int64, copy=False)
    if idx.size and (idx.min() < -size or idx.max() >= size):
        raise OnnxOpError(f"{what}: an index is out of range for a dimension of size {size}")
    return np.where(idx < 0, idx + size, idx)


def _axis(axis: int, rank: int, what: str) -> int:
    if not -rank <= axis < max(rank, 1):
        raise OnnxOpError(f"{what}: axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


# ----------------------------------------------------------------- elementwise
_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Pow": np.power,
           "Equal": np.equal, "Less": np.less, "Greater": np.greater,
           "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
           "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
           "BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or,
           "BitwiseXor": np.bitwise_xor}


def _binary(name: str) -> OpFn:
    fn = _BINARY[name]

    def run(attrs: Dict[str, Any], opset: int, inputs: Inputs) -> List[np.ndarray]:
        a, b = inputs[0], _legacy_broadcast(attrs, inputs[0], inputs[1])
        if name == "Pow":  # the result has the base's type
            return [np.power(a, b).astype(a.dtype, copy=False)]
        return [np.asarray(fn(a, b))]
    return run


for _name in _BINARY:
    OPS[_name] = _binary(_name)


def _legacy_broadcast(attrs: Dict[str, Any], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """b aligned with a at ``axis`` (opset < 7's broadcast=1 form), else b unchanged."""
    if attrs.get("broadcast", 0) and "axis" in attrs:
        axis = int(attrs["axis"]) % max(a.ndim, 1)
        return b.reshape((1,) * axis + b.shape + (1,) * (a.ndim - axis - b.ndim))
    return b


@op("Div")
def _div(attrs, opset, inputs):
    a, b = inputs[0], _legacy_broadcast(attrs, inputs[0], inputs[1])
    if np.issubdtype(a.dtype, np.integer):  # integer division truncates toward zero
        return [np.trunc(a / b).astype(a.dtype)]
    return [np.asarray(a / b, dtype=a.dtype)]


@op("Mod")
def _mod(attrs, opset, inputs):
    a, b = inputs
    return [np.fmod(a, b) if attrs.get("fmod", 0) else np.mod(a, b)]


def _variadic_op(fn: Callable, mean: bool = False) -> OpFn:
    def run(attrs, opset, inputs):
        out = inputs[0]
        for x in inputs[1:]:
            out = fn(out, x)
        if mean:
            out = out / len(inputs)
        return [np.asarray(out, dtype=inputs[0].dtype)]
    return run


OPS["Sum"] = _variadic_op(np.add)
OPS["Max"] = _variadic_op(np.maximum)
OPS["Min"] = _variadic_op(np.minimum)
OPS["Mean"] = _variadic_op(np.add, mean=True)

_UNARY = {"Neg": np.negative, "Abs": np.abs, "Exp": np.exp, "Log": np.log, "Sqrt": np.sqrt,
          "Floor": np.floor, "Ceil": np.ceil, "Reciprocal": np.reciprocal, "Not": np.logical_not,
          "Sign": np.sign, "Sin": np.sin, "Cos": np.cos, "Round": np.round,
          "IsNaN": np.isnan, "Softsign": lambda x: x / (1 + np.abs(x)),
          "Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos, "Atan": np.arctan,
          "Sinh": np.sinh, "Cosh": np.cosh, "Asinh": np.arcsinh, "Acosh": np.arccosh,
          "Atanh": np.arctanh, "BitwiseNot": np.invert}
for _name, _fn in _UNARY.items():
    OPS[_name] = (lambda fn: lambda attrs, opset, inputs: [np.asarray(fn(inputs[0]))])(_fn)


@op("BitShift")
def _bit_shift(attrs, opset, inputs):
    a, b = inputs
    left = text_attr(attrs, "direction", "") == "LEFT"
    return [np.asarray(np.left_shift(a, b) if left else np.right_shift(a, b), dtype=a.dtype)]


@op("IsInf")
def _is_inf(attrs, opset, inputs):
    x = inputs[0]
    negative = np.isneginf(x) if attrs.get("detect_negative", 1) else np.zeros(x.shape, bool)
    positive = np.isposinf(x) if attrs.get("detect_positive", 1) else np.zeros(x.shape, bool)
    return [negative | positive]


@op("Erf")
def _erf(attrs, opset, inputs):
    return [erf_array(inputs[0])]


@op("Relu")
def _relu(attrs, opset, inputs):
    x = inputs[0]
    if x.dtype == np.float32:
        return [arr(F.relu(f32(x)))]
    return [np.maximum(x, 0).astype(x.dtype)]


def _float_op(x: np.ndarray, kernel: Callable, exact: Callable) -> np.ndarray:
    """An operator on float data: the engine's float32 kernel, except float64 input, which
    numpy computes in float64 (``exact``); float16 input runs in float32 and is rounded back."""
    if x.dtype == np.float64:
        return np.asarray(exact(x), dtype=np.float64)
    return arr(kernel(f32(x))).astype(x.dtype, copy=False)


@op("Sigmoid")
def _sigmoid(attrs, opset, inputs):
    return [_float_op(inputs[0], F.sigmoid, lambda x: 1 / (1 + np.exp(-x)))]


@op("Tanh")
def _tanh(attrs, opset, inputs):
    return [np.tanh(inputs[0])]


@op("LeakyRelu")
def _leaky_relu(attrs, opset, inputs):
    alpha = float(attrs.get("alpha", 0.01))
    return [_float_op(inputs[0], lambda x: F.leaky_relu(x, alpha),
                      lambda x: np.where(x >= 0, x, alpha * x))]


@op("PRelu")
def _prelu(attrs, opset, inputs):
    x, slope = inputs
    if slope.ndim == 1 and x.ndim > 2 and slope.size == x.shape[1] > 1:
        slope = slope.reshape((-1,) + (1,) * (x.ndim - 2))  # (older exporters: per channel)
    return [np.where(x < 0, x * slope, x).astype(x.dtype)]


@op("Elu")
def _elu(attrs, opset, inputs):
    x, alpha = inputs[0], attrs.get("alpha", 1.0)
    return [np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))).astype(x.dtype)]


@op("Selu")
def _selu(attrs, opset, inputs):
    x = inputs[0]
    alpha, gamma = attrs.get("alpha", 1.67326319217681884765625), attrs.get("gamma", 1.05070102214813232421875)
    return [(gamma * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))).astype(x.dtype)]


@op("Softplus")
def _softplus(attrs, opset, inputs):
    x = inputs[0]
    return [np.logaddexp(x, 0).astype(x.dtype)]


@op("Celu")
def _celu(attrs, opset, inputs):
    x, alpha = inputs[0], float(attrs.get("alpha", 1.0))
    with np.errstate(over="ignore"):
        negative = alpha * np.expm1(np.minimum(x.astype(np.float64), 0) / alpha)
    return [(np.maximum(x, 0) + negative).astype(x.dtype)]


@op("ThresholdedRelu")
def _thresholded_relu(attrs, opset, inputs):
    x = inputs[0]
    return [np.where(x > float(attrs.get("alpha", 1.0)), x, 0).astype(x.dtype)]


@op("Shrink")
def _shrink(attrs, opset, inputs):
    x = inputs[0]
    bias, lambd = float(attrs.get("bias", 0.0)), float(attrs.get("lambd", 0.5))
    y = np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0))
    return [y.astype(x.dtype)]


@op("Mish")
def _mish(attrs, opset, inputs):
    x = inputs[0]
    x64 = x.astype(np.float64)
    return [(x64 * np.tanh(np.logaddexp(0.0, x64))).astype(x.dtype)]


@op("Gelu")
def _gelu(attrs, opset, inputs):
    x = inputs[0]
    approximate = text_attr(attrs, "approximate", "none")
    if approximate not in ("none", "tanh"):
        raise OnnxOpError(f"Gelu: unknown approximate {approximate!r}")
    if x.dtype == np.float32:
        return [arr(F.gelu(f32(x), approximate=approximate))]
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    else:
        y = 0.5 * x64 * (1 + erf_array(x64 / math.sqrt(2)))
    return [np.asarray(y, dtype=x.dtype)]


@op("Swish")
def _swish(attrs, opset, inputs):
    x = inputs[0]
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):  # (exp(-alpha x) = inf: the result is -0, no warning)
        return [(x64 / (1 + np.exp(-float(attrs.get("alpha", 1.0)) * x64))).astype(x.dtype)]


@op("HardSigmoid")
def _hard_sigmoid(attrs, opset, inputs):
    x = inputs[0]
    alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
    return [np.clip(x * np.float32(alpha) + np.float32(beta), 0, 1).astype(x.dtype)]


@op("HardSwish")
def _hard_swish(attrs, opset, inputs):
    return [_float_op(inputs[0], F.hardswish, lambda x: x * np.clip(x / 6 + 0.5, 0, 1))]


@op("Clip")
def _clip(attrs, opset, inputs):
    x = inputs[0]
    if opset < 11:
        lo, hi = attrs.get("min", -np.inf), attrs.get("max", np.inf)
    else:
        lo = inputs[1] if len(inputs) > 1 and inputs[1] is not None else None
        hi = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
        lo = -np.inf if lo is None else lo.item()
        hi = np.inf if hi is None else hi.item()
    if x.dtype == np.float32 and lo == 0 and hi in (6.0, np.inf):
        return [arr(F.relu6(x) if hi == 6.0 else F.relu(f32(x)))]
    out = np.minimum(np.maximum(x, lo), hi)  # (a NaN stays NaN; min > max gives max)
    return [np.asarray(out, dtype=x.dtype)]


def _softmax_like(log: bool) -> OpFn:
    def run(attrs, opset, inputs):
        x = inputs[0]
        default = -1 if opset >= 13 else 1
        axis = _axis(int(attrs.get("axis", default)), x.ndim, "Softmax")
        if opset < 13:  # coerced to 2-D: rows are everything before axis
            flat = x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)
            return [run({"axis": 1}, 13, [flat])[0].reshape(x.shape)]

        def exact(v: np.ndarray) -> np.ndarray:
            shifted = v - v.max(axis=axis, keepdims=True)
            log_total = np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
            return shifted - log_total if log else np.exp(shifted - log_total)
        kernel = (lambda v: F.log_softmax(v, axis)) if log else (lambda v: F.softmax(v, axis))
        return [_float_op(x, kernel, exact)]
    return run


OPS["Softmax"] = _softmax_like(False)
OPS["LogSoftmax"] = _softmax_like(True)


# ----------------------------------------------------------------- convolution and pooling
def spatial_pads(attrs: Dict[str, Any], in_hw: Sequence[int], kernel: Sequence[int],
                 strides: Sequence[int], dilations: Sequence[int], what: str) -> List[int]:
    """ONNX pads [begin..., end...] for the spatial dims, auto_pad resolved."""
    n = len(in_hw)
    auto = text_attr(attrs, "auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * 2 * n))
        if len(pads) != 2 * n:
            raise OnnxOpError(f"{what}: pads must have {2 * n} values, got {pads}")
        return pads
    if auto == "VALID":
        return [0] * 2 * n
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise OnnxOpError(f"{what}: unknown auto_pad {auto!r}")
    begin, end = [], []
    for i in range(n):
        out = -(-in_hw[i] // strides[i])
        total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_hw[i])
        small = total // 2
        begin.append(small if auto == "SAME_UPPER" else total - small)
        end.append(total - begin[-1])
    return begin + end


def conv_geometry(attrs: Dict[str, Any], x_shape: Sequence[int], w_shape: Sequence[int],
                  what: str = "Conv") -> Tuple[List[int], List[int], List[int], int]:
    """(strides, dilations, pads, group) of a 2-D Conv node."""
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise OnnxOpError(f"{what}: pve.onnx runs 2-D convolutions only (input rank 4), got input "
                          f"shape {tuple(x_shape)} and weight shape {tuple(w_shape)}")
    kernel = list(attrs.get("kernel_shape", w_shape[2:]))
    if kernel != list(w_shape[2:]):
        raise OnnxOpError(f"{what}: kernel_shape {kernel} differs from the weight's {list(w_shape[2:])}")
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    pads = spatial_pads(attrs, x_shape[2:], kernel, strides, dilations, what)
    return strides, dilations, pads, int(attrs.get("group", 1))


def pad_spatial(x: np.ndarray, pads: Sequence[int], value: float) -> np.ndarray:
    n = len(pads) // 2
    width = [(0, 0)] * (x.ndim - n) + [(pads[i], pads[i + n]) for i in range(n)]
    return np.pad(x, width, constant_values=value)


@op("Conv")
def _conv(attrs, opset, inputs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    one_d = x.ndim == 3 and w.ndim == 3
    if one_d:  # a 1-D convolution as a 2-D one over planes of one row
        attrs, x, w = _as_2d_pool(attrs, x)[0], x[:, :, None, :], w[:, :, None, :]
    strides, dilations, pads, group = conv_geometry(attrs, x.shape, w.shape)
    if pads[:2] != pads[2:]:
        x, pads = pad_spatial(x, pads, 0.0), [0, 0, 0, 0]
    y = arr(F.conv2d(f32(x), f32(w), None if b is None else f32(b), tuple(strides),
                     tuple(pads[:2]), tuple(dilations), group))
    y = y.astype(x.dtype, copy=False)  # (float16 and float64 models compute in float32)
    return [y[:, :, 0] if one_d else y]


def _pool_args(attrs, x, what):
    if x.ndim != 4:
        raise OnnxOpError(f"{what}: pve.onnx pools 2-D planes only (input rank 4), got {x.shape}")
    kernel = list(attrs["kernel_shape"]) if "kernel_shape" in attrs else None
    if kernel is None or len(kernel) != 2:
        raise OnnxOpError(f"{what}: kernel_shape must have 2 values, got {kernel}")
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    pads = spatial_pads(attrs, x.shape[2:], kernel, strides, dilations, what)
    return kernel, strides, dilations, pads, bool(attrs.get("ceil_mode", 0))


def _pool_out(size: int, k: int, s: int, d: int, begin: int, end: int, ceil: bool) -> int:
    span = size + begin + end - d * (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + begin:  # a last window wholly in the end padding
        out -= 1
    return out


def _pool_reference(x: np.ndarray, kernel, strides, dilations, pads, ceil: bool,
                    mode: str, include_pad: bool = True) -> np.ndarray:
    """Any-padding 2-D pooling in numpy (asymmetric or large pads), as the spec defines it."""
    n, c, h, w = x.shape
    oh = _pool_out(h, kernel[0], strides[0], dilations[0], pads[0], pads[2], ceil)
    ow = _pool_out(w, kernel[1], strides[1], dilations[1], pads[1], pads[3], ceil)
    # pad far enough for every window, marking what is padding
    extra_h = max(0, (oh - 1) * strides[0] + dilations[0] * (kernel[0] - 1) + 1 - (h + pads[0] + pads[2]))
    extra_w = max(0, (ow - 1) * strides[1] + dilations[1] * (kernel[1] - 1) + 1 - (w + pads[1] + pads[3]))
    fill = -np.inf if mode == "max" else 0.0
    width = [(0, 0), (0, 0), (pads[0], pads[2] + extra_h), (pads[1], pads[3] + extra_w)]
    xp = np.pad(x.astype(np.float64), width, constant_values=fill)
    inside = np.pad(np.ones((h, w)), width[2:], constant_values=0.0)
    # explicit padding counts toward count_include_pad; the ceil_mode overhang does not
    in_pad = np.pad(np.ones((h + pads[0] + pads[2], w + pads[1] + pads[3])),
                    [(0, extra_h), (0, extra_w)], constant_values=0.0)
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            rs = slice(i * strides[0], i * strides[0] + dilations[0] * (kernel[0] - 1) + 1, dilations[0])
            cs = slice(j * strides[1], j * strides[1] + dilations[1] * (kernel[1] - 1) + 1, dilations[1])
            win = xp[:, :, rs, cs]
            if mode == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
            elif mode == "sum":
                out[:, :, i, j] = win.sum(axis=(2, 3))
            else:
                count = (in_pad if include_pad else inside)[rs, cs].sum()
                out[:, :, i, j] = win.sum(axis=(2, 3)) / count
    return out.astype(x.dtype)


def _fast_pool(kernel, pads, dilations) -> bool:
    """torch's pooling takes symmetric pads of at most half the (dilated) kernel."""
    return (pads[:2] == pads[2:] and all(p * 2 <= k for p, k in zip(pads[:2], kernel)))


def _as_2d_pool(attrs: Dict[str, Any], x: np.ndarray) -> Tuple[Dict[str, Any], np.ndarray]:
    """A 1-D pooling (or convolution) node as a 2-D one over planes of one row."""
    if x.ndim != 3:
        return attrs, x
    attrs = dict(attrs)
    for key, unit in (("kernel_shape", 1), ("strides", 1), ("dilations", 1)):
        if key in attrs:
            attrs[key] = [unit] + list(attrs[key])
    if "pads" in attrs:
        attrs["pads"] = [0, attrs["pads"][0], 0, attrs["pads"][1]]
    return attrs, x[:, :, None, :]


@op("MaxPool")
def _max_pool(attrs, opset, inputs, indices: bool = True):
    """MaxPool; ``indices``: also the optional Indices output (the session asks for it only
    when the node names it: computing it costs 3-4x the pooling)."""
    attrs, x = _as_2d_pool(attrs, inputs[0])
    kernel, strides, dilations, pads, ceil = _pool_args(attrs, x, "MaxPool")
    squeeze = inputs[0].ndim == 3
    if x.dtype == np.float32 and _fast_pool(kernel, pads, dilations):
        out = F.max_pool2d(f32(x), tuple(kernel), tuple(strides), tuple(pads[:2]),
                           tuple(dilations), ceil, return_indices=indices)
        if not indices:
            y = arr(out)
            return [y[:, :, 0] if squeeze else y]
        y, idx = arr(out[0]), arr(out[1])
        h, w = x.shape[2], x.shape[3]
        if attrs.get("storage_order", 0):  # column-major positions within each plane
            idx = (idx % w) * h + idx // w
        # ONNX's indices are flat over the whole (N, C, H, W) input
        planes = np.arange(x.shape[0] * x.shape[1], dtype=np.int64) * (h * w)
        idx = idx + planes.reshape(x.shape[0], x.shape[1], 1, 1)
        return [y[:, :, 0], idx[:, :, 0]] if squeeze else [y, idx]
    y = _pool_reference(x, kernel, strides, dilations, pads, ceil, "max")
    return [y[:, :, 0] if squeeze else y]


@op("AveragePool")
def _avg_pool(attrs, opset, inputs):
    attrs, x = _as_2d_pool(attrs, inputs[0])
    kernel, strides, dilations, pads, ceil = _pool_args(attrs, x, "AveragePool")
    include = bool(attrs.get("count_include_pad", 0))
    if x.dtype == np.float32 and dilations == [1, 1] and _fast_pool(kernel, pads, dilations):
        y = arr(F.avg_pool2d(f32(x), tuple(kernel), tuple(strides), tuple(pads[:2]), ceil, include))
    else:
        y = _pool_reference(x, kernel, strides, dilations, pads, ceil, "avg", include)
    return [y[:, :, 0] if inputs[0].ndim == 3 else y]


@op("GlobalAveragePool")
def _global_avg_pool(attrs, opset, inputs):
    x = inputs[0]
    if x.ndim == 4 and x.dtype == np.float32:
        return [arr(F.adaptive_avg_pool2d(x, (1, 1)))]
    return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float64).astype(x.dtype)]


@op("GlobalMaxPool")
def _global_max_pool(attrs, opset, inputs):
    x = inputs[0]
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


@op("BatchNormalization")
def _batch_norm(attrs, opset, inputs):
    x, scale, bias, mean, var = inputs[:5]
    if attrs.get("training_mode", 0) or ("is_test" in attrs and not attrs["is_test"]):
        raise OnnxOpError("BatchNormalization: training mode is not supported by InferenceSession")
    eps = float(attrs.get("epsilon", 1e-5))
    # spatial=0 (opsets 1-8): statistics per activation, shaped (C, D1, ..., Dn)
    per_activation = opset < 9 and not attrs.get("spatial", 1)
    if x.dtype == np.float32 and x.ndim >= 2 and not per_activation:
        return [arr(F.batch_norm(x, f32(mean), f32(var), f32(scale), f32(bias), False, 0.0, eps))]

    def shaped(v: np.ndarray) -> np.ndarray:
        return v.reshape((1,) + v.shape) if per_activation else v.reshape((1, -1) + (1,) * (x.ndim - 2))
    inv = shaped(scale / np.sqrt(var + eps))
    return [((x - shaped(mean)) * inv + shaped(bias)).astype(x.dtype)]


def fold_batch_norm(weight: np.ndarray, bias: Optional[np.ndarray], gamma: np.ndarray,
                    beta: np.ndarray, mean: np.ndarray, var: np.ndarray,
                    eps: float) -> Tuple[np.ndarray, np.ndarray]:
    """A Conv's (weight, bias) with the inference BatchNormalization after it folded in:
    W * s and b * s + shift, (s, shift) as the engine's own BatchNorm computes them."""
    scale, shift = batch_norm_scale_shift(mean, var, gamma, beta, eps)
    folded_w = (weight.astype(np.float64) * scale.reshape(-1, 1, 1, 1)).astype(np.float32)
    folded_b = shift if bias is None else (bias.astype(np.float64) * scale + shift).astype(np.float32)
    return folded_w, folded_b


@op("InstanceNormalization")
def _instance_norm(attrs, opset, inputs):
    x, scale, bias = inputs
    eps = float(attrs.get("epsilon", 1e-5))
    axes = tuple(range(2, x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = x64.var(axis=axes, keepdims=True)  # (biased, as the specification)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x64 - mean) / np.sqrt(var + eps) * scale.reshape(shape) + bias.reshape(shape)
    return [y.astype(x.dtype)]


@op("LayerNormalization")
def _layer_norm(attrs, opset, inputs):
    x, scale = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 else None
    axis = _axis(int(attrs.get("axis", -1)), x.ndim, "LayerNormalization")
    if int(attrs.get("stash_type", 1)) != 1:
        raise OnnxOpError("LayerNormalization: only stash_type=1 (float32 statistics) is supported")
    eps = float(attrs.get("epsilon", 1e-5))
    axes = tuple(range(axis, x.ndim))
    normalized = x.shape[axis:]
    length = int(np.prod(normalized, dtype=np.int64))
    if (x.dtype == np.float32 and length > 0 and scale.shape == normalized
            and (bias is None or bias.shape == normalized)):  # the engine's kernel
        stats_shape = x.shape[:axis] + (1,) * len(normalized)
        y, mean, inv = _C.layer_norm_forward(
            np.ascontiguousarray(x), x.size // length, length, f32(scale.reshape(-1)),
            None if bias is None else f32(bias.reshape(-1)), eps)
        return [y.reshape(x.shape), mean.reshape(stats_shape), inv.reshape(stats_shape)]
    x32 = x.astype(np.float32)
    mean = x32.mean(axis=axes, keepdims=True, dtype=np.float64)
    var = ((x32 - mean) ** 2).mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    y = (x32 - mean) * inv * scale
    if bias is not None:
        y = y + bias
    return [y.astype(x.dtype), mean.astype(np.float32), inv.astype(np.float32)]


@op("LRN")
def _lrn(attrs, opset, inputs):
    x = inputs[0].astype(np.float64)
    size = int(attrs["size"])
    alpha, beta, bias = attrs.get("alpha", 1e-4), attrs.get("beta", 0.75), attrs.get("bias", 1.0)
    sq = np.pad(x * x, [(0, 0), ((size - 1) // 2, size - 1 - (size - 1) // 2)] + [(0, 0)] * (x.ndim - 2))
    acc = sum(sq[:, i:i + x.shape[1]] for i in range(size))
    return [(x / (bias + alpha / size * acc) ** beta).astype(inputs[0].dtype)]


# ----------------------------------------------------------------- matrix products
@op("Gemm")
def _gemm(attrs, opset, inputs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if attrs.get("transA", 0):
        a = a.T
    if attrs.get("transB", 0):
        b = b.T
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise OnnxOpError(f"Gemm: (after transposes) A {a.shape} and B {b.shape} do not multiply")
    if a.dtype == np.float32 and b.dtype == np.float32:
        y = arr(F.linear(f32(a), f32(b.T), None))
    else:
        y = a @ b
    if alpha != 1.0:
        y = y * np.asarray(alpha, y.dtype)
    if c is not None and beta != 0.0:
        y = y + (c if beta == 1.0 else c * np.asarray(beta, c.dtype))
    return [np.asarray(y, dtype=a.dtype)]


def matmul_f32(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """np.matmul's semantics (1-D operands, broadcast batch dims) for float32, each product
    on the engine's GEMM: with a 2-D ``b`` (a layer's weight) all rows of ``a`` in one call,
    else one call per broadcast batch entry (attention's per-head products)."""
    vec_a, vec_b = a.ndim == 1, b.ndim == 1
    a2 = a[None, :] if vec_a else a
    b2 = b[:, None] if vec_b else b
    if a2.shape[-1] != b2.shape[-2]:
        raise OnnxOpError(f"MatMul: A {a.shape} and B {b.shape} do not multiply")
    m, k, n = a2.shape[-2], a2.shape[-1], b2.shape[-1]
    if b2.ndim == 2:
        rows = np.ascontiguousarray(a2.reshape(-1, k))
        y = _C.gemm(rows, np.ascontiguousarray(b2)).reshape(a2.shape[:-1] + (n,))
    else:
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        a3 = np.broadcast_to(a2, batch + (m, k)).reshape(-1, m, k)
        b3 = np.broadcast_to(b2, batch + (k, n)).reshape(-1, k, n)
        y = np.empty((a3.shape[0], m, n), np.float32)
        for i in range(a3.shape[0]):
            _C.gemm(np.ascontiguousarray(a3[i]), np.ascontiguousarray(b3[i]), out=y[i])
        y = y.reshape(batch + (m, n))
    if vec_a:
        y = y[..., 0, :]
    if vec_b:
        y = y[..., 0]
    return y if y.flags.c_contiguous else y.copy()


@op("MatMul")
def _matmul(attrs, opset, inputs):
    a, b = inputs
    if a.dtype == np.float32 and b.dtype == np.float32 and a.size and b.size:
        return [matmul_f32(a, b)]
    return [np.matmul(a, b)]


# ----------------------------------------------------------------- shapes and indexing
@op("Identity", "Dropout")
def _identity(attrs, opset, inputs):
    x = inputs[0]
    training = len(inputs) > 2 and inputs[2] is not None and bool(inputs[2])
    ratio = float(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else 0.5
    if (training and ratio != 0.0) or ("is_test" in attrs and not attrs["is_test"]):
        raise OnnxOpError("Dropout: training mode is not supported by InferenceSession")
    return [x, np.ones(x.shape, dtype=bool)]


@op("Flatten")
def _flatten(attrs, opset, inputs):
    x = inputs[0]
    axis = int(attrs.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    if not 0 <= axis <= x.ndim:
        raise OnnxOpError(f"Flatten: axis {attrs.get('axis')} is out of range for rank {x.ndim}")
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    return [x.reshape(rows, int(np.prod(x.shape[axis:], dtype=np.int64)))]


def reshape_target(shape_in: Sequence[int], target: Sequence[int], allowzero: bool) -> List[int]:
    out = list(target)
    for i, d in enumerate(out):
        if d == 0 and not allowzero:
            if i >= len(shape_in):
                raise OnnxOpError(f"Reshape: 0 at position {i} has no input dimension to copy")
            out[i] = shape_in[i]
    if out.count(-1) > 1:
        raise OnnxOpError(f"Reshape: more than one -1 in {list(target)}")
    return out


@op("Reshape")
def _reshape(attrs, opset, inputs):
    x = inputs[0]
    if opset < 5:
        target = list(attrs["shape"])
    else:
        target = _ints(inputs[1])
    shape = reshape_target(x.shape, target, bool(attrs.get("allowzero", 0)))
    try:
        return [x.reshape(shape)]
    except ValueError:
        raise OnnxOpError(f"Reshape: cannot reshape {x.shape} to {list(target)}") from None


@op("Transpose")
def _transpose(attrs, opset, inputs):
    x = inputs[0]
    perm = attrs.get("perm")
    return [contiguous(np.transpose(x, None if perm is None else list(perm)))]


def _axes_arg(attrs, opset, inputs, since: int) -> Optional[List[int]]:
    if opset >= since:
        return _ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else None
    return list(attrs["axes"]) if "axes" in attrs else None


@op("Squeeze")
def _squeeze(attrs, opset, inputs):
    x = inputs[0]
    axes = _axes_arg(attrs, opset, inputs, 13)
    if axes is None:
        return [np.squeeze(x)]
    axes = [_axis(a, x.ndim, "Squeeze") for a in axes]
    if any(x.shape[a] != 1 for a in axes):
        raise OnnxOpError(f"Squeeze: axes {axes} of shape {x.shape} are not all 1")
    return [np.squeeze(x, axis=tuple(axes))]


@op("Unsqueeze")
def _unsqueeze(attrs, opset, inputs):
    x = inputs[0]
    axes = _axes_arg(attrs, opset, inputs, 13)
    rank = x.ndim + len(axes)
    axes = sorted(_axis(a, rank, "Unsqueeze") for a in axes)
    if len(set(axes)) != len(axes):
        raise OnnxOpError(f"Unsqueeze: repeated axes {axes}")
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return [x.reshape(shape)]


@op("Concat")
def _concat(attrs, opset, inputs):
    parts = [x for x in inputs if x is not None]
    axis = _axis(int(attrs["axis"]), parts[0].ndim, "Concat")
    return [np.concatenate(parts, axis=axis)]


def split_op(attrs: Dict[str, Any], opset: int, inputs: Inputs, outputs: int) -> List[np.ndarray]:
    x = inputs[0]
    axis = _axis(int(attrs.get("axis", 0)), x.ndim, "Split")
    if opset >= 13:
        sizes = _ints(inputs[1]) if len(inputs) > 1 and inputs[1] is not None else None
    else:
        sizes = list(attrs["split"]) if "split" in attrs else None
    if sizes is None:
        parts = int(attrs.get("num_outputs", outputs))
        step = -(-x.shape[axis] // parts)
        sizes = [min(step, x.shape[axis] - i * step) for i in range(parts)]
    if sum(sizes) != x.shape[axis]:
        raise OnnxOpError(f"Split: sizes {sizes} do not add up to dimension {x.shape[axis]}")
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


@op("Slice")
def _slice(attrs, opset, inputs):
    x = inputs[0]
    if opset < 10:
        starts, ends = list(attrs["starts"]), list(attrs["ends"])
        axes = list(attrs.get("axes", range(len(starts))))
        steps = [1] * len(starts)
    else:
        starts, ends = _ints(inputs[1]), _ints(inputs[2])
        axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
        steps = _ints(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise OnnxOpError("Slice: a step of 0")
        index[_axis(a, x.ndim, "Slice")] = slice(s, e, st)
    return [contiguous(x[tuple(index)])]


@op("Gather")
def _gather(attrs, opset, inputs):
    x, idx = inputs
    axis = _axis(int(attrs.get("axis", 0)), x.ndim, "Gather")
    return [np.take(x, wrap_indices(idx, x.shape[axis], "Gather"), axis=axis)]


@op("Shape")
def _shape(attrs, opset, inputs):
    dims = np.asarray(inputs[0].shape, dtype=np.int64)
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return [dims[start:end]]


@op("Size")
def _size(attrs, opset, inputs):
    return [np.asarray(inputs[0].size, dtype=np.int64)]


@op("Constant")
def _constant(attrs, opset, inputs):
    if "value" in attrs:
        return [attrs["value"]]
    for key, dtype in (("value_float", np.float32), ("value_floats", np.float32),
                       ("value_int", np.int64), ("value_ints", np.int64)):
        if key in attrs:
            return [np.asarray(attrs[key], dtype=dtype)]
    raise OnnxOpError(f"Constant: no supported value attribute in {sorted(attrs)}")


@op("ConstantOfShape")
def _constant_of_shape(attrs, opset, inputs):
    value = attrs.get("value", np.zeros(1, np.float32))
    return [np.full(_ints(inputs[0]), value.reshape(-1)[0], dtype=value.dtype)]


# ----------------------------------------------------------------- Cast
# The narrow types (bfloat16, float8, float4, int4, int2: ml_dtypes arrays, see _proto) by
# the first opset of Cast whose types include them (CastLike, from 15, follows Cast).
_CAST_SINCE = {16: 13, 17: 19, 18: 19, 19: 19, 20: 19, 21: 21, 22: 21, 23: 23, 24: 24,
               25: 25, 26: 25}
# float8e4m3fn, float8e4m3fnuz, float8e5m2, float8e5m2fnuz: the types ``saturate`` applies
# to (with float8e8m0), by their largest finite value
FLOAT8_MAX = {17: 448.0, 18: 240.0, 19: 57344.0, 20: 57344.0}
FLOAT8E8M0 = 24
_SMALL_INT_BITS = {21: 4, 22: 4, 25: 2, 26: 2}  # uint4, int4, uint2, int2
_SIGNED_SMALL_INTS = (22, 26)


def widened(x: np.ndarray) -> np.ndarray:
    """A narrow-type array in the numpy type that holds its values exactly (float32 for
    the floats, int8/uint8 for int4/int2): conversions and arithmetic go through it, as in
    onnxruntime. Other arrays are returned as they are."""
    if not is_narrow(x.dtype):
        return x
    code = DTYPE_CODES[x.dtype]
    if code in _SMALL_INT_BITS:
        return x.astype(np.int8 if code in _SIGNED_SMALL_INTS else np.uint8)
    return x.astype(np.float32)


def cast_array(x: np.ndarray, to: int, saturate: bool = True, round_mode: str = "up") -> np.ndarray:
    """x converted to the TensorProto type ``to`` as Cast defines it (see to_float8,
    to_float8e8m0, to_small_int for the narrow types)."""
    if to in FLOAT8_MAX:
        return to_float8(x, to, saturate)
    if to == FLOAT8E8M0:
        return to_float8e8m0(x, saturate, round_mode)
    if to in _SMALL_INT_BITS:
        return to_small_int(x, to)
    dtype = DTYPES[to]
    if is_narrow(dtype):  # bfloat16, float4e2m1: rounded from float32 (float64 first to
        return widened(x).astype(np.float32).astype(dtype)  # float32, as onnxruntime)
    return widened(x).astype(dtype)


def to_float8(x: np.ndarray, to: int, saturate: bool) -> np.ndarray:
    """x as float8 (round to nearest even). With ``saturate``, infinities and values beyond
    the largest finite one become it (NaN stays NaN); without, they become NaN, or infinity
    for float8e5m2, as the specification's tables say (ml_dtypes' own conversion; onnxruntime
    1.32 departs from them for float8e4m3fn's [480, 496) and float8e5m2's [61440, 65536))."""
    f = widened(x).astype(np.float32)
    if saturate:
        f = np.clip(f, -FLOAT8_MAX[to], FLOAT8_MAX[to])
    return f.astype(DTYPES[to])


def to_float8e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """x as float8e8m0 (a power of two, 2**-127 to 2**127, or NaN), rounded ``up`` (away
    from zero), ``down`` or to the ``nearest`` (ties up). Saturated: +inf and values above
    2**127 become 2**127, values below 2**-127 (zero and negatives too) become 2**-127; not
    saturated, all of those are NaN (the specification's table, as onnxruntime)."""
    if round_mode not in ("up", "down", "nearest"):
        raise OnnxOpError(f"round_mode must be 'up', 'down' or 'nearest', got {round_mode!r}")
    f = widened(x).astype(np.float32).astype(np.float64)
    mantissa, exponent = np.frexp(f)  # f = mantissa * 2**exponent, 0.5 <= mantissa < 1
    code = exponent.astype(np.int64) + 126  # the biased exponent of f, rounded down
    fraction = 2.0 * mantissa - 1.0  # f / 2**floor(log2 f) - 1
    if round_mode == "up":
        code += fraction > 0
    elif round_mode == "nearest":
        code += fraction >= 0.5
    too_large, too_small = f > 2.0 ** 127, f < 2.0 ** -127
    if saturate:
        code = np.where(too_large, 254, np.where(too_small, 0, code))
    else:
        code = np.where(too_large | too_small, 255, code)
    code = np.where(np.isnan(f), 255, code)
    return code.astype(np.uint8).view(DTYPES[FLOAT8E8M0])


def to_small_int(x: np.ndarray, to: int) -> np.ndarray:
    """x as int4/uint4/int2/uint2: the low bits of the integer (wrapping, as integer casts
    do). A float is first rounded half away from zero, as onnxruntime does (the
    specification leaves it open), NaN, infinities and values beyond int32 giving 0 (its
    conversion goes through int32)."""
    w = widened(x)
    if w.dtype.kind == "f":
        whole = np.trunc(w)
        w = whole + np.where(np.abs(w - whole) >= 0.5, np.sign(w), 0)
        w = np.where(np.abs(w) < 2.0 ** 31, w, 0)  # (NaN too)
    low_bits = w.astype(np.int64) & ((1 << _SMALL_INT_BITS[to]) - 1)
    return low_bits.astype(np.uint8).view(DTYPES[to])


def _check_cast_type(code: int, opset: int, what: str, role: str) -> None:
    since = _CAST_SINCE.get(code, 1)
    if opset < since:
        raise OnnxOpError(f"{what} (opset {opset}): {role} type {TYPE_NAMES[code]} needs opset "
                          f"{since} or later")


def _cast_attrs(attrs: Dict[str, Any]) -> Tuple[bool, str]:
    return bool(attrs.get("saturate", 1)), text_attr(attrs, "round_mode", "up")


def _cast_to(attrs: Dict[str, Any], opset: int, x: np.ndarray, to: int, what: str) -> np.ndarray:
    if x.dtype not in DTYPE_CODES:
        raise OnnxOpError(f"{what}: input type {x.dtype} is not supported")
    _check_cast_type(DTYPE_CODES[x.dtype], opset, what, "input")
    _check_cast_type(to, opset, what, "target")
    if to in NARROW_DTYPE_NAMES:  # (without ml_dtypes: an error naming the operator)
        narrow_dtype(to, f"{what} to {TYPE_NAMES[to]}")
    return cast_array(x, to, *_cast_attrs(attrs))


# Cast 1 names its target type (TensorProto.DataType's name, one of these)
_CAST_1_TYPES = {"FLOAT": 1, "UINT8": 2, "INT8": 3, "UINT16": 4, "INT16": 5, "INT32": 6,
                 "INT64": 7, "BOOL": 9, "FLOAT16": 10, "DOUBLE": 11, "UINT32": 12, "UINT64": 13}


def _cast_target(attrs: Dict[str, Any]) -> int:
    to = attrs["to"]
    if isinstance(to, (bytes, str)):
        name = to.decode() if isinstance(to, bytes) else to
        if name.upper() not in _CAST_1_TYPES:
            raise OnnxOpError(f"Cast: target type {name!r} is not supported")
        return _CAST_1_TYPES[name.upper()]
    return int(to)


@op("Cast")
def _cast(attrs, opset, inputs):
    to = _cast_target(attrs)
    if to not in DTYPES:
        raise OnnxOpError(f"Cast: target type {to} is not supported")
    return [_cast_to(attrs, opset, inputs[0], to, "Cast")]


@op("CastLike")
def _cast_like(attrs, opset, inputs):
    target = inputs[1].dtype
    if target not in DTYPE_CODES:
        raise OnnxOpError(f"CastLike: target type {target} is not supported")
    return [_cast_to(attrs, opset, inputs[0], DTYPE_CODES[target], "CastLike")]


@op("Expand")
def _expand(attrs, opset, inputs):
    x, shape = inputs[0], _ints(inputs[1])
    target = np.broadcast_shapes(x.shape, tuple(shape))
    return [contiguous(np.broadcast_to(x, target))]


@op("Tile")
def _tile(attrs, opset, inputs):
    return [np.tile(inputs[0], _ints(inputs[1]))]


@op("Where")
def _where(attrs, opset, inputs):
    c, a, b = inputs
    return [np.where(c, a, b)]


@op("Range")
def _range(attrs, opset, inputs):
    start, limit, delta = (v.item() for v in inputs)
    return [np.arange(start, limit, delta, dtype=inputs[0].dtype)]


def _reduce(fn: Callable, since_input: int) -> OpFn:
    def run(attrs, opset, inputs):
        x = inputs[0]
        axes = _axes_arg(attrs, opset, inputs, since_input)
        keep = bool(attrs.get("keepdims", 1))
        if axes is None or len(axes) == 0:
            if attrs.get("noop_with_empty_axes", 0) and axes is not None:
                return [x]
            axes = list(range(x.ndim))
        axes = tuple(_axis(a, x.ndim, "Reduce") for a in axes)
        return [np.asarray(fn(x, axes, keep), dtype=x.dtype)]
    return run


OPS["ReduceMean"] = _reduce(lambda x, a, k: x.mean(axis=a, keepdims=k, dtype=np.float64), 18)
OPS["ReduceSum"] = _reduce(lambda x, a, k: x.sum(axis=a, keepdims=k), 13)
def _lowest(x: np.ndarray) -> Any:
    return False if x.dtype == bool else (-np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min)


def _highest(x: np.ndarray) -> Any:
    return True if x.dtype == bool else (np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).max)


# (an empty set reduces to the operation's identity: -inf for max, +inf for min)
OPS["ReduceMax"] = _reduce(lambda x, a, k: x.max(axis=a, keepdims=k, initial=_lowest(x)), 18)
OPS["ReduceMin"] = _reduce(lambda x, a, k: x.min(axis=a, keepdims=k, initial=_highest(x)), 18)
OPS["ReduceProd"] = _reduce(lambda x, a, k: x.prod(axis=a, keepdims=k), 18)
OPS["ReduceL2"] = _reduce(lambda x, a, k: np.sqrt((x.astype(np.float64) ** 2).sum(axis=a, keepdims=k)), 18)
OPS["ReduceSumSquare"] = _reduce(lambda x, a, k: (x * x).sum(axis=a, keepdims=k), 18)
OPS["ReduceL1"] = _reduce(lambda x, a, k: np.abs(x).sum(axis=a, keepdims=k), 18)
OPS["ReduceLogSum"] = _reduce(lambda x, a, k: np.log(x.sum(axis=a, keepdims=k, dtype=np.float64)), 18)


def _log_sum_exp(x: np.ndarray, axes: Tuple[int, ...], keep: bool) -> np.ndarray:
    x64 = x.astype(np.float64)
    top = x64.max(axis=axes, keepdims=True, initial=-np.inf)
    top = np.where(np.isfinite(top), top, 0.0)  # (all -inf, or an inf: no shift)
    total = np.log(np.exp(x64 - top).sum(axis=axes, keepdims=True)) + top
    return total if keep else np.squeeze(total, axis=axes)


OPS["ReduceLogSumExp"] = _reduce(_log_sum_exp, 18)


def _arg_reduce(fn: Callable) -> OpFn:
    def run(attrs, opset, inputs):
        x = inputs[0]
        axis = _axis(int(attrs.get("axis", 0)), x.ndim, "ArgMax")
        if attrs.get("select_last_index", 0):
            flipped = np.flip(x, axis=axis)
            out = x.shape[axis] - 1 - fn(flipped, axis=axis)
        else:
            out = fn(x, axis=axis)
        if attrs.get("keepdims", 1):
            out = np.expand_dims(out, axis)
        return [out.astype(np.int64)]
    return run


OPS["ArgMax"] = _arg_reduce(np.argmax)
OPS["ArgMin"] = _arg_reduce(np.argmin)


@op("Pad")
def _pad(attrs, opset, inputs):
    x = inputs[0]
    mode = text_attr(attrs, "mode", "constant")
    if opset < 11:
        pads, value, axes = list(attrs["pads"]), float(attrs.get("value", 0.0)), None
    else:
        pads = _ints(inputs[1])
        value = inputs[2].item() if len(inputs) > 2 and inputs[2] is not None and inputs[2].size else 0
        axes = _ints(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else None
    axes = list(range(x.ndim)) if axes is None else [_axis(a, x.ndim, "Pad") for a in axes]
    if len(pads) != 2 * len(axes):
        raise OnnxOpError(f"Pad: {len(pads)} pads for {len(axes)} axes")
    width = [[0, 0] for _ in range(x.ndim)]
    for i, a in enumerate(axes):
        width[a] = [pads[i], pads[i + len(axes)]]
    # negative pads crop
    crop = tuple(slice(-b if b < 0 else 0, x.shape[d] + e if e < 0 else None)
                 for d, (b, e) in enumerate(width))
    x = x[crop]
    width = [(max(b, 0), max(e, 0)) for b, e in width]
    if mode == "constant":
        return [np.pad(x, width, constant_values=value)]
    if mode in ("reflect", "edge", "wrap"):
        return [np.pad(x, width, mode=mode)]
    raise OnnxOpError(f"Pad: unknown mode {mode!r}")


# ----------------------------------------------------------------- resize
def _resize_coords(in_size: int, out_size: int, scale: float, coord: str,
                   roi: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """Source coordinate of each output position along one axis. Coordinates are float32
    arithmetic on the float32 scale, in the forms onnxruntime uses, since nearest picks
    flip on the last bit: asymmetric divides (17 / 1.7 is 10 in float32, 9.9999997 in
    float64), half-pixel multiplies by the reciprocal ((19 + 0.5) * (1 / 1.3) - 0.5 is
    14.5, rounded down; (19 + 0.5) / 1.3 - 0.5 lies just above). tf_crop_and_resize maps
    the output onto roi (start, end), fractions of the input's corners (float64)."""
    o = np.arange(out_size, dtype=np.float32)
    inv = np.float32(1) / np.float32(scale)
    half = np.float32(0.5)
    if coord == "half_pixel":
        return (o + half) * inv - half
    if coord == "pytorch_half_pixel":
        return (o + half) * inv - half if out_size > 1 else np.zeros_like(o)
    if coord == "align_corners":  # (the output's whole length, as onnxruntime and torch)
        return o * np.float32((in_size - 1) / (out_size - 1)) if out_size > 1 else np.zeros_like(o)
    if coord == "asymmetric":
        return o / np.float32(scale)
    if coord == "half_pixel_symmetric":
        adj = np.float32(out_size) * inv / np.float32(in_size)
        return np.float32(in_size / 2) * (np.float32(1) - adj) + (o + half) * inv - half
    if coord == "tf_crop_and_resize":
        start, end = roi if roi is not None else (0.0, 1.0)
        if out_size == 1:  # (the roi's centre, as onnxruntime and the reference)
            return np.full(1, 0.5 * (start + end) * (in_size - 1))
        o64 = np.arange(out_size, dtype=np.float64)
        return start * (in_size - 1) + o64 * (end - start) * (in_size - 1) / (out_size - 1)
    raise OnnxOpError(f"Resize: coordinate_transformation_mode {coord!r} is not supported")


def _resize_axis(in_size: int, out_size: int, scale: float, mode: str, coord: str,
                 nearest: str, roi: Optional[Tuple[float, float]] = None,
                 cubic_a: float = -0.75, exclude_outside: bool = False,
                 antialias: bool = False) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """For one axis: (source indices (out, taps), their weights (out, taps), and for
    tf_crop_and_resize which outputs lie outside the input, else None)."""
    x = _resize_coords(in_size, out_size, scale, coord, roi)
    outside = (x < 0) | (x > in_size - 1) if coord == "tf_crop_and_resize" else None
    if mode == "nearest":
        if nearest == "round_prefer_floor":
            idx = np.where(x - np.floor(x) == 0.5, np.floor(x), np.round(x))
        elif nearest == "round_prefer_ceil":
            idx = np.floor(x + 0.5)
        elif nearest == "floor":
            idx = np.floor(x)
        elif nearest == "ceil":
            idx = np.ceil(x)
        else:
            raise OnnxOpError(f"Resize: nearest_mode {nearest!r} is not supported")
        idx = np.clip(idx, 0, in_size - 1).astype(np.int64)
        return idx[:, None], np.ones((out_size, 1)), outside
    x = x.astype(np.float64)
    if mode == "linear" and not antialias:
        x = np.clip(x, 0, in_size - 1)
        lo = np.floor(x).astype(np.int64)
        hi = np.minimum(lo + 1, in_size - 1)
        return np.stack([lo, hi], 1), np.stack([1 - (x - lo), x - lo], 1), outside
    # The specification's kernels: x = base + ratio with ratio in (0, 1] (the pixel left
    # of x preferred), taps base + i; antialias widens the kernel by 1 / scale when
    # downsampling and normalises its weights.
    base = np.floor(x)
    ratio = x - base
    on_pixel = ratio == 0
    base = (base - on_pixel).astype(np.int64)
    ratio = np.where(on_pixel, 1.0, ratio)
    s = min(scale, 1.0) if antialias else 1.0
    reach = 1 if mode == "linear" else 2
    first = int(math.floor(-reach / s) + 1)
    i = np.arange(first, 2 - first)  # (the kernel's taps, left of x first)
    arg = np.abs(s * (i[None, :] - ratio[:, None]))
    if mode == "linear":
        w = np.clip(1 - arg, 0, 1)
    else:
        w = keys_cubic(arg, cubic_a)
    if antialias:
        w = w / w.sum(axis=1, keepdims=True)
    idx = base[:, None] + i[None, :]
    if exclude_outside:
        w = np.where((idx < 0) | (idx >= in_size), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    return np.clip(idx, 0, in_size - 1), w, outside


@op("Resize", "Upsample")
def _resize(attrs, opset, inputs):
    x = inputs[0]
    mode = text_attr(attrs, "mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear", "cubic", "bicubic"):
        raise OnnxOpError(f"Resize: mode {mode!r} is not supported (nearest, linear, cubic)")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    coord = text_attr(attrs, "coordinate_transformation_mode", "half_pixel")
    nearest = text_attr(attrs, "nearest_mode", "round_prefer_floor")
    roi_in = None
    if opset < 11:  # Upsample / Resize-10: scales, asymmetric, nearest floors
        coord, nearest = "asymmetric", "floor"
        scales = list(attrs["scales"]) if "scales" in attrs else [float(v) for v in inputs[1]]
        sizes = None
    else:
        roi_in = inputs[1] if len(inputs) > 1 else None
        scales_in = inputs[2] if len(inputs) > 2 else None
        sizes_in = inputs[3] if len(inputs) > 3 else None
        scales = [float(v) for v in scales_in] if scales_in is not None and scales_in.size else None
        sizes = _ints(sizes_in) if sizes_in is not None and sizes_in.size else None
    antialias = bool(attrs.get("antialias", 0))
    if antialias and mode == "nearest":
        raise OnnxOpError("Resize: antialias applies to modes linear and cubic, not nearest")
    policy = text_attr(attrs, "keep_aspect_ratio_policy", "stretch")
    axes = [_axis(a, x.ndim, "Resize") for a in attrs.get("axes", range(x.ndim))]
    given = scales if sizes is None else sizes
    if given is None or len(given) != len(axes):
        raise OnnxOpError(f"Resize: need {len(axes)} scales or sizes, got {given}")
    rois = [(0.0, 1.0)] * x.ndim
    if coord == "tf_crop_and_resize":
        if roi_in is None or roi_in.size != 2 * len(axes):
            raise OnnxOpError(f"Resize: tf_crop_and_resize needs a roi of {2 * len(axes)} "
                              f"values (starts, then ends), got "
                              f"{None if roi_in is None else list(roi_in.ravel())}")
        roi = [float(v) for v in roi_in.ravel()]
        for k, a in enumerate(axes):
            rois[a] = (roi[k], roi[k + len(axes)])
    full_scales = [1.0] * x.ndim
    full_sizes = list(x.shape)
    if sizes is None:
        for a, sc in zip(axes, scales):  # (size * scale in float32, as onnxruntime)
            size = int(math.floor(np.float32(x.shape[a]) * np.float32(sc)))
            full_scales[a], full_sizes[a] = sc, size
    else:
        for a, size in zip(axes, sizes):
            full_scales[a], full_sizes[a] = size / x.shape[a], size
        if policy in ("not_larger", "not_smaller"):  # one scale for every listed axis
            pick = min if policy == "not_larger" else max
            common = pick(full_scales[a] for a in axes)
            for a in axes:
                full_scales[a], full_sizes[a] = common, int(common * x.shape[a] + 0.5)
        elif policy != "stretch":
            raise OnnxOpError(f"Resize: unknown keep_aspect_ratio_policy {policy!r}")
    scales, sizes = full_scales, full_sizes
    fill = float(attrs.get("extrapolation_value", 0.0))
    y = x if mode == "nearest" else x.astype(np.float64)
    for axis in range(x.ndim):
        if (sizes[axis] == x.shape[axis] and scales[axis] == 1.0
                and (coord != "tf_crop_and_resize" or rois[axis] == (0.0, 1.0))):
            continue
        idx, wt, outside = _resize_axis(
            x.shape[axis], sizes[axis], scales[axis], mode, coord, nearest, rois[axis],
            float(attrs.get("cubic_coeff_a", -0.75)), bool(attrs.get("exclude_outside", 0)),
            antialias)
        shape = [1] * y.ndim
        shape[axis] = -1
        if mode == "nearest":
            y = np.take(y, idx[:, 0], axis=axis)
        else:
            acc = np.take(y, idx[:, 0], axis=axis) * wt[:, 0].reshape(shape)
            for k in range(1, idx.shape[1]):
                acc = acc + np.take(y, idx[:, k], axis=axis) * wt[:, k].reshape(shape)
            y = acc
        if outside is not None and outside.any():
            y = np.where(outside.reshape(shape), np.asarray(fill).astype(y.dtype), y)
    return [contiguous(y, dtype=x.dtype)]


# Ops whose node has a variable number of outputs: called with the count.
MULTI_OUTPUT = {"Split": split_op,
                "MaxPool": lambda attrs, opset, inputs, outputs: _max_pool(
                    attrs, opset, inputs, indices=outputs > 1)}


# The operators kept in their own modules register themselves into OPS on import.
from pyvision_engine.onnx import (  # noqa: E402,F401
    _ops_attention, _ops_detect, _ops_grid, _ops_index, _ops_misc, _ops_nn, _ops_quant, _ops_rnn)
from pyvision_engine.onnx import _ops_random, _ops_state, _ops_training  # noqa: E402,F401
from pyvision_engine.onnx import _ops_control, _ops_flex, _ops_sequence  # noqa: E402,F401


def supported() -> List[str]:
    return sorted(set(OPS) | set(MULTI_OUTPUT))
