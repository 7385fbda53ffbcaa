"""ONNX random generators, registered in ``_ops.OPS``, drawn with numpy's Generator.

- RandomNormal, RandomUniform (opsets 1, 22): ``shape``, ``dtype`` (float16, float,
  double, bfloat16), ``mean`` / ``scale``, ``low`` / ``high``.
- RandomNormalLike, RandomUniformLike (1, 22): the input's shape, and its type unless
  ``dtype`` is given (a non-float input needs ``dtype``).
- Bernoulli (15, 22): 1 with probability p, else 0, in ``dtype`` (default the input's
  type; bool and integer types too).
- Multinomial (7, 22): ``sample_size`` class indices per row of a (batch, classes) input
  of unnormalized log-probabilities, i.e. drawn from the row's softmax; int32 or int64.

Seeds, as onnxruntime: each node owns one generator for the life of its session. With a
``seed`` it starts from that seed, so run k of every session of a model gives the same
values while successive runs of one session differ (the stream goes on); without a seed
it starts from fresh OS entropy, so every run draws new values. The values cannot equal
onnxruntime's (another generator; the specification says implementations differ even
with a seed), only their distribution.

bfloat16 (every one of these operators allows it) is read and produced when pve.onnx holds
bfloat16 tensors (``_proto.DTYPES`` has the type); its draws are made in float32.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import numpy as np

from pyvision_engine.onnx._ops import OnnxOpError, op
from pyvision_engine.onnx._proto import DTYPES, TYPE_NAMES

# Operators whose outputs are drawn at each run: never constant, whatever their inputs.
RANDOM_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike",
                        "RandomUniformLike", "Bernoulli", "Multinomial"})

# The output types the specification allows, as TensorProto.DataType codes: float16, float,
# double, bfloat16 (bfloat16 once pve.onnx holds it: _proto.DTYPES decides)
_FLOAT_CODES = (10, 1, 11, 16)
# Bernoulli's: those and bool and every integer type
_BERNOULLI_CODES = _FLOAT_CODES + (9, 2, 3, 4, 5, 6, 7, 12, 13)

# A node's generator is kept in its attribute dict (one dict per node of a loaded model,
# the same object at every run), under a key no ONNX attribute name can equal.
_GENERATOR = object()


def _generator(attrs: Dict[Any, Any]) -> np.random.Generator:
    """The node's generator, made on its first run: seeded by the ``seed`` attribute's
    float64 bits (each seed value its own stream), else by OS entropy."""
    rng = attrs.get(_GENERATOR)
    if rng is None:
        seed = attrs.get("seed")
        entropy = None if seed is None else int(np.float64(seed).view(np.uint64))
        rng = attrs.setdefault(_GENERATOR, np.random.default_rng(entropy))
    return rng


def _is_float(dtype: np.dtype) -> bool:
    """float16, float, double or bfloat16 (ml_dtypes' type, when pve.onnx reads it)."""
    return dtype.kind == "f" or dtype.name == "bfloat16"


def _dtype(code: Any, allowed: Sequence[int], what: str) -> np.dtype:
    """The element type of a ``dtype`` attribute, one of the ``allowed`` codes."""
    code = int(code)
    dtype = DTYPES.get(code) if code in allowed else None
    if dtype is None:
        name = TYPE_NAMES.get(code, f"data type {code}")
        names = ", ".join(TYPE_NAMES[c] for c in allowed if c in DTYPES)
        raise OnnxOpError(f"{what}: dtype {name} is not an output type it can produce here "
                          f"({names})")
    return dtype


def _like_dtype(attrs: Dict[str, Any], x: np.ndarray, what: str) -> np.dtype:
    """``dtype`` when given, else the input's type, which must then be a float type."""
    if "dtype" in attrs:
        return _dtype(attrs["dtype"], _FLOAT_CODES, what)
    if not _is_float(x.dtype):
        raise OnnxOpError(f"{what}: the input is {x.dtype}, not a float type: the output "
                          "type must be given by the dtype attribute")
    return x.dtype


def _shape_attr(attrs: Dict[str, Any], what: str) -> List[int]:
    if "shape" not in attrs:
        raise OnnxOpError(f"{what}: the shape attribute is required")
    shape = [int(d) for d in attrs["shape"]]
    if any(d < 0 for d in shape):
        raise OnnxOpError(f"{what}: shape {shape} has a negative dimension")
    return shape


def _work(dtype: np.dtype) -> np.dtype:
    """Draws are made in float64 for double output, else in float32."""
    return np.dtype(np.float64 if dtype == np.float64 else np.float32)


# ----------------------------------------------------------------- normal, uniform
def _normal(attrs: Dict[str, Any], shape: Sequence[int], dtype: np.dtype,
            what: str) -> np.ndarray:
    mean, scale = float(attrs.get("mean", 0.0)), float(attrs.get("scale", 1.0))
    if not scale >= 0:  # (onnxruntime aborts on a negative standard deviation)
        raise OnnxOpError(f"{what}: scale (the standard deviation) must be >= 0, got {scale}")
    work = _work(dtype)
    z = _generator(attrs).standard_normal(tuple(shape), dtype=work)
    return (z * work.type(scale) + work.type(mean)).astype(dtype, copy=False)


def _uniform(attrs: Dict[str, Any], shape: Sequence[int], dtype: np.dtype,
             what: str) -> np.ndarray:
    low, high = float(attrs.get("low", 0.0)), float(attrs.get("high", 1.0))
    if not low <= high:  # (onnxruntime aborts when low > high)
        raise OnnxOpError(f"{what}: low must be <= high, got low {low}, high {high}")
    work = _work(dtype)
    u = _generator(attrs).random(tuple(shape), dtype=work)  # [0, 1)
    return (u * work.type(high - low) + work.type(low)).astype(dtype, copy=False)


@op("RandomNormal")
def _random_normal(attrs, opset, inputs):
    what = "RandomNormal"
    dtype = _dtype(attrs.get("dtype", 1), _FLOAT_CODES, what)
    return [_normal(attrs, _shape_attr(attrs, what), dtype, what)]


@op("RandomUniform")
def _random_uniform(attrs, opset, inputs):
    what = "RandomUniform"
    dtype = _dtype(attrs.get("dtype", 1), _FLOAT_CODES, what)
    return [_uniform(attrs, _shape_attr(attrs, what), dtype, what)]


@op("RandomNormalLike")
def _random_normal_like(attrs, opset, inputs):
    x, what = inputs[0], "RandomNormalLike"
    return [_normal(attrs, x.shape, _like_dtype(attrs, x, what), what)]


@op("RandomUniformLike")
def _random_uniform_like(attrs, opset, inputs):
    x, what = inputs[0], "RandomUniformLike"
    return [_uniform(attrs, x.shape, _like_dtype(attrs, x, what), what)]


# ----------------------------------------------------------------- Bernoulli, Multinomial
@op("Bernoulli")
def _bernoulli(attrs, opset, inputs):
    x, what = inputs[0], "Bernoulli"
    if not _is_float(x.dtype):
        raise OnnxOpError(f"{what}: input (probabilities) must be a float type, got {x.dtype}")
    dtype = _dtype(attrs["dtype"], _BERNOULLI_CODES, what) if "dtype" in attrs else x.dtype
    p = x.astype(np.float64)
    if not ((p >= 0) & (p <= 1)).all():  # (NaN fails too)
        raise OnnxOpError(f"{what}: every probability must be in [0, 1]")
    u = _generator(attrs).random(p.shape)  # [0, 1): u < p with probability p
    return [(u < p).astype(dtype)]


def _draw_classes(cdf: np.ndarray, u: np.ndarray, last: int) -> np.ndarray:
    """The class of each draw ``u`` (in [0, total)) of one row: the first whose cumulative
    probability exceeds it; never past ``last``, the last class of nonzero probability
    (a draw that rounds up to the total)."""
    return np.minimum(np.searchsorted(cdf, u, side="right"), last)


@op("Multinomial")
def _multinomial(attrs, opset, inputs):
    x, what = inputs[0], "Multinomial"
    if not _is_float(x.dtype):
        raise OnnxOpError(f"{what}: input must be a float type, got {x.dtype}")
    if x.ndim != 2 or x.shape[1] < 1:
        raise OnnxOpError(f"{what}: input (batch_size, class_size) with class_size >= 1 "
                          f"expected, got shape {x.shape}")
    samples = int(attrs.get("sample_size", 1))
    if samples < 1:
        raise OnnxOpError(f"{what}: sample_size must be >= 1, got {samples}")
    dtype = _dtype(attrs.get("dtype", 6), (6, 7), what)  # int32, int64
    logits = x.astype(np.float64)
    top = logits.max(axis=1, keepdims=True) if x.shape[0] else logits[:, :1]
    if not np.isfinite(top).all() or np.isnan(logits).any():
        raise OnnxOpError(f"{what}: every row needs finite log-probabilities (a row is NaN, "
                          "+inf or all -inf)")
    weights = np.exp(logits - top)  # the softmax, unnormalized: the draw scales by the total
    cdf = np.cumsum(weights, axis=1)
    last = x.shape[1] - 1 - np.argmax(weights[:, ::-1] > 0, axis=1)
    u = _generator(attrs).random((x.shape[0], samples)) * cdf[:, -1:]
    out = np.empty((x.shape[0], samples), dtype)
    for row in range(x.shape[0]):
        out[row] = _draw_classes(cdf[row], u[row], last[row])
    return [out]
