"""pve.onnx's narrow element types: bfloat16, float8e4m3fn, float8e4m3fnuz, float8e5m2,
float8e5m2fnuz, float8e8m0, float4e2m1, int4, uint4, int2, uint2 (ml_dtypes arrays).

- The reader and writer (pyvision_engine/onnx/_proto.py) against onnx's own: raw_data and
  typed fields, sub-byte packing with odd counts.
- Cast and CastLike between every pair of types that involves a narrow one, over every bit
  pattern of the narrow types and sweeps of the others (NaN, infinities, largest values,
  subnormals, ties, saturation on and off, float8e8m0's rounding modes), against
  onnxruntime (read through OrtValue's bytes: its python API returns no numpy array for
  these types). Where onnxruntime contradicts the specification's tables, and for
  float4e2m1 (no onnxruntime kernel), the reference is ml_dtypes' own conversion.
- QuantizeLinear / DequantizeLinear with float8, int4, uint4, int2, uint2 (onnxruntime),
  float4e2m1 and bfloat16 scales (onnx's reference implementation: onnxruntime has no
  kernel), float8e8m0 scales (numpy: powers of two); an int4 weight-only quantized MatMul
  through a blocked DequantizeLinear against onnxruntime.
- bfloat16 graphs against onnxruntime running them in float32 with each bfloat16 value a
  node makes rounded to bfloat16 (what pve.onnx does: each operator in float32, its
  results rounded), the bfloat16 attention node cases among them; narrow types through
  the data-movement operators; narrow types an operator does not take are errors.
- Without ml_dtypes (its import made to fail) a bfloat16 model raises a clear
  NotImplementedError, and importing pyvision_engine.onnx never imports it.
"""

from __future__ import annotations

import ctypes
import os
import sys
import warnings

import numpy as np
import pytest

from pyvision_engine.onnx import InferenceSession
from pyvision_engine.onnx import _proto

onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the graphs")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is the reference")
ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes holds the narrow types")
from onnx import TensorProto as TP, helper, numpy_helper  # noqa: E402
from reference.onnx_bf16 import bf16_rounded_in_float32  # noqa: E402

_MISSING = [t for t in ("FLOAT8E8M0", "FLOAT4E2M1", "INT4", "UINT4", "INT2", "UINT2")
            if not hasattr(TP, t)]
if _MISSING:  # (onnx 1.19, the last for Python 3.9, has no int2 types)
    pytest.skip(f"onnx {onnx.__version__} lacks the element types {_MISSING} these tests "
                "build", allow_module_level=True)

RNG = np.random.default_rng(7)

NARROW = [TP.BFLOAT16, TP.FLOAT8E4M3FN, TP.FLOAT8E4M3FNUZ, TP.FLOAT8E5M2, TP.FLOAT8E5M2FNUZ,
          TP.FLOAT8E8M0, TP.FLOAT4E2M1, TP.INT4, TP.UINT4, TP.INT2, TP.UINT2]
WIDE = [TP.FLOAT, TP.FLOAT16, TP.DOUBLE, TP.INT8, TP.INT16, TP.INT32, TP.INT64, TP.UINT8,
        TP.UINT16, TP.UINT32, TP.UINT64, TP.BOOL]
FLOAT8 = [TP.FLOAT8E4M3FN, TP.FLOAT8E4M3FNUZ, TP.FLOAT8E5M2, TP.FLOAT8E5M2FNUZ]
SUB_BYTE = {TP.INT4: 4, TP.UINT4: 4, TP.FLOAT4E2M1: 4, TP.INT2: 2, TP.UINT2: 2}
NO_ORT_KERNEL = {TP.FLOAT4E2M1}  # (onnxruntime 1.32 has no Cast/Q/DQ kernel for it)


def _name(code):
    return TP.DataType.Name(code)


def _dtype(code):
    return np.dtype(helper.tensor_dtype_to_np_dtype(code))


def _is_float(dtype):
    if _proto.is_narrow(dtype):
        return _proto.DTYPE_CODES[dtype] not in SUB_BYTE
    return dtype.kind == "f"


# --------------------------------------------------------------------------- helpers
def _model(nodes, inputs, outputs, opset=25, initializers=()):
    """A model of ``nodes``; inputs and outputs are (name, TensorProto type) pairs."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, t, None) for n, t in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        [numpy_helper.from_array(a, n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 11
    return model.SerializeToString()


def _ort_value(a):
    """An OrtValue of a numpy or (byte-sized) narrow array: the narrow ones as their bits."""
    a = np.ascontiguousarray(a)
    if not _proto.is_narrow(a.dtype):
        return ort.OrtValue.ortvalue_from_numpy(a)
    bits = a.view(np.uint8 if a.itemsize == 1 else np.uint16)
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, _proto.DTYPE_CODES[a.dtype])


def _from_ort(value):
    """An OrtValue as a numpy / ml_dtypes array, from its bytes (onnx's unpacking)."""
    code = getattr(TP, value.data_type()[len("tensor("):-1].upper())
    size = value.tensor_size_in_bytes()
    raw = bytes((ctypes.c_uint8 * size).from_address(value.data_ptr())) if size else b""
    return numpy_helper.to_array(helper.make_tensor("y", code, value.shape(), raw, raw=True))


def _ort_run(model, feeds, optimize=True):
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    outs = sess.run_with_ort_values(None, {k: _ort_value(v) for k, v in feeds.items()})
    return [_from_ort(v) for v in outs]


def _pve_run(model, feeds):
    sess = InferenceSession(model)
    return sess.run(None, feeds)


def _assert_same(ours, theirs):
    """Equal types, shapes and values: floats bit for bit, except that NaNs only need to
    agree in place and sign (their payloads differ between implementations)."""
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    if not _is_float(ours.dtype):
        np.testing.assert_array_equal(ours, theirs)
        return
    a, b = ours.astype(np.float32), theirs.astype(np.float32)
    nan = np.isnan(b)
    np.testing.assert_array_equal(np.isnan(a), nan)
    np.testing.assert_array_equal(np.signbit(a), np.signbit(b))
    np.testing.assert_array_equal(a[~nan], b[~nan])


# --------------------------------------------------------------------------- values
def _every_pattern(code):
    """Every bit pattern of a narrow type."""
    dtype = _dtype(code)
    if code in SUB_BYTE:
        return np.arange(1 << SUB_BYTE[code], dtype=np.uint8).view(dtype)
    count = 1 << (8 * dtype.itemsize)
    return np.arange(count, dtype=np.uint8 if dtype.itemsize == 1 else np.uint16).view(dtype)


EDGES = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5, 3.5, 7.49, 7.5, 7.51, 8.0, -8.5,
                  15.5, 16.0, 100.7, -100.7, 240.0, 248.0, 247.9, 256.0, 448.0, 464.0, 465.0,
                  479.9, 480.0, 495.9, 496.0, 1e4, 57344.0, 61439.0, 61440.0, 65504.0, 1e6,
                  1e10, 3.4e38, 1e-3, 2.0 ** -6, 2.0 ** -9, 2.0 ** -10, 2.0 ** -16, 2.0 ** -17,
                  1.5 * 2.0 ** -17, 2.0 ** -126, 2.0 ** -127, 1.5 * 2.0 ** -127, 1e-40, 1e-45,
                  2.0 ** 127, 1.2 * 2.0 ** 127, 1.5 * 2.0 ** 127, 0.375, 0.374, 0.376, 1.1,
                  np.inf, -np.inf, np.nan, -np.nan, 123456789.0, 3e9, -3e9])


def _sweep(code):
    """Values of a type to cast from: every pattern of the narrow and 16-bit types, edge
    values and random bit patterns of the wider ones."""
    dtype = _dtype(code)
    if code in NARROW:
        return _every_pattern(code)
    if code == TP.BOOL:
        return np.array([False, True])
    if code == TP.FLOAT16:
        return np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    if dtype.kind == "f":
        halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(dtype)
        width = np.uint32 if dtype.itemsize == 4 else np.uint64
        bits = RNG.integers(0, np.iinfo(width).max, 20000, dtype=width, endpoint=True)
        ties = np.array([1.0625 + 2.0 ** -40, 1.0 + 2.0 ** -8 + 2.0 ** -40])  # (double only)
        values = [halves, bits.view(dtype), EDGES.astype(dtype)]
        return np.concatenate(values + ([ties] if dtype.itemsize == 8 else []))
    info = np.iinfo(dtype)
    small = np.arange(max(info.min, -300), min(info.max, 300) + 1)
    big = RNG.integers(info.min, info.max, 5000, dtype=dtype, endpoint=True)
    return np.concatenate([small.astype(dtype), big, np.array([info.min, info.max], dtype)])


def _defined(values, target):
    """The values whose conversion to ``target`` the specification defines: a float cast
    to a wide integer type is undefined out of its range (and for NaN)."""
    tdtype = _dtype(target)
    if tdtype.kind not in "iu" or not _is_float(values.dtype):
        return values
    with np.errstate(invalid="ignore"):
        f = values.astype(np.float64)
        info = np.iinfo(tdtype)
        keep = np.isfinite(f) & (np.trunc(f) >= info.min) & (np.trunc(f) <= info.max)
    return values[keep]


# --------------------------------------------------------------------------- reader / writer
SHAPES = [(), (1,), (5,), (2, 3), (4, 2), (3, 3, 1)]


def _random_patterns(code, shape):
    patterns = _every_pattern(code)
    return patterns[RNG.integers(0, patterns.size, int(np.prod(shape)))].reshape(shape)


def _same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("code", NARROW, ids=_name)
def test_reader_reads_onnx_tensors(code, shape):
    a = _random_patterns(code, shape)
    raw = numpy_helper.from_array(a, "t")  # raw_data (packed for the sub-byte types)
    typed = helper.make_tensor("t", code, shape, a.astype(np.float32).reshape(-1))
    for tensor in (raw, typed):
        name, got = _proto.read_tensor(memoryview(tensor.SerializeToString()))
        assert name == "t"
        _same_bits(got, numpy_helper.to_array(tensor))
    _same_bits(numpy_helper.to_array(raw), a)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("code", NARROW, ids=_name)
def test_writer_writes_what_onnx_reads(code, shape):
    a = _random_patterns(code, shape)
    tensor = TP()
    tensor.ParseFromString(_proto.write_tensor("t", a))
    assert tensor.data_type == code and list(tensor.dims) == list(shape)
    _same_bits(numpy_helper.to_array(tensor), a)
    if code in SUB_BYTE:  # packed low bits first, the last byte zero-padded
        bits, count = SUB_BYTE[code], a.size
        assert len(tensor.raw_data) == -(-count * bits // 8)
        used = (count * bits) % 8
        if used:
            assert tensor.raw_data[-1] >> used == 0


def test_reader_checks_packed_sizes():
    good = numpy_helper.from_array(np.arange(5, dtype=np.uint8).view(ml_dtypes.int4), "t")
    short = TP()
    short.CopyFrom(good)
    short.raw_data = good.raw_data[:-1]
    with pytest.raises(ValueError, match="bytes of data"):
        _proto.read_tensor(memoryview(short.SerializeToString()))
    typed = helper.make_tensor("t", TP.UINT4, [5], [1, 2, 3, 4, 5])
    del typed.int32_data[-1]
    with pytest.raises(ValueError, match="packed int32_data"):
        _proto.read_tensor(memoryview(typed.SerializeToString()))


def test_external_data_of_a_packed_tensor(tmp_path):
    w = _random_patterns(TP.INT4, (3, 5))
    model = onnx.load_from_string(_model(
        [helper.make_node("Cast", ["w"], ["y"], to=TP.FLOAT)], [], [("y", TP.FLOAT)],
        initializers=[("w", w)]))
    path = os.path.join(tmp_path, "m.onnx")
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="w.bin", size_threshold=0)
    assert os.path.getsize(os.path.join(tmp_path, "w.bin")) == 8  # (15 values: 7.5 bytes)
    (y,) = InferenceSession(path).run(None, {})
    np.testing.assert_array_equal(y, w.astype(np.float32))


@pytest.mark.parametrize("code", [c for c in NARROW if c not in NO_ORT_KERNEL], ids=_name)
def test_input_and_output_types_are_named_as_onnxruntime_names_them(code):
    model = _model([helper.make_node("Cast", ["x"], ["y"], to=TP.FLOAT),
                    helper.make_node("Cast", ["y"], ["z"], to=code)],
                   [("x", code)], [("z", code)])
    ours, theirs = InferenceSession(model), ort.InferenceSession(model)
    assert ours.get_inputs()[0].type == theirs.get_inputs()[0].type
    assert ours.get_outputs()[0].type == theirs.get_outputs()[0].type


def test_narrow_outputs_are_ml_dtypes_arrays_and_feeds_are_checked():
    model = _model([helper.make_node("Cast", ["x"], ["y"], to=TP.FLOAT8E5M2)],
                   [("x", TP.BFLOAT16)], [("y", TP.FLOAT8E5M2)])
    sess = InferenceSession(model)
    (y,) = sess.run(None, {"x": [1.0, -2.5, 3e5]})  # (a list takes the input's type)
    assert y.dtype == np.dtype(ml_dtypes.float8_e5m2)
    np.testing.assert_array_equal(y.astype(np.float32), [1.0, -2.5, 57344.0])
    with pytest.raises(TypeError, match="tensor\\(bfloat16\\)"):
        sess.run(None, {"x": np.ones(3, np.float32)})


# --------------------------------------------------------------------------- Cast
def _cast_model(source, target, opset=25, op_type="Cast", initial=None, **attrs):
    """x -> Cast -> y; ``initial``: x as an initializer instead of an input (onnxruntime
    takes no sub-byte feeds); CastLike reads its target type from a constant."""
    inputs = [("x", source)] if initial is None else []
    inits = [] if initial is None else [("x", initial)]
    if op_type == "CastLike":
        inits.append(("like", np.zeros(1, _dtype(target))))
        node = helper.make_node("CastLike", ["x", "like"], ["y"], **attrs)
    else:
        node = helper.make_node("Cast", ["x"], ["y"], to=target, **attrs)
    return _model([node], inputs, [("y", target)], opset, inits)


def _pve_cast(x, source, target, **attrs):
    (y,) = _pve_run(_cast_model(source, target, **attrs), {"x": x})
    return y


def _ort_cast(x, source, target, **attrs):
    if source in SUB_BYTE:
        (y,) = _ort_run(_cast_model(source, target, initial=x, **attrs), {})
    else:
        (y,) = _ort_run(_cast_model(source, target, **attrs), {"x": x})
    return y


def _reference_cast(x, source, target, **attrs):
    """onnxruntime's Cast; for float4e2m1, which it lacks: the value as float32 (exact, or
    onnxruntime's double -> float), then onnxruntime's float Cast or, to float4e2m1,
    ml_dtypes' conversion."""
    if source == TP.FLOAT4E2M1:
        x, source = x.astype(np.float32), TP.FLOAT
    if target == TP.BOOL and source in FLOAT8 + [TP.FLOAT8E8M0]:
        return _spec_bool(x, _ort_cast(x, source, target))
    if source == target == TP.FLOAT8E5M2 and attrs.get("saturate", 1):
        return _spec_saturated(x, _ort_cast(x, source, target, **attrs))
    if target != TP.FLOAT4E2M1:
        return _ort_cast(x, source, target, **attrs)
    as_float = x if source == TP.FLOAT else _ort_cast(x, source, TP.FLOAT)
    with np.errstate(invalid="ignore"):
        return as_float.astype(ml_dtypes.float4_e2m1fn)


def _spec_bool(x, theirs):
    """float -> bool is 0 -> False, all else True (the specification); onnxruntime 1.32
    reads the float8 types' bits instead: -0 (0x80) True, float8e8m0's 2**-127 (0x00)
    False. Those patterns, and only those, take the specification's value."""
    spec = x.astype(np.float32) != 0
    differs = spec != theirs
    pattern = 0 if x.dtype == ml_dtypes.float8_e8m0fnu else 0x80
    np.testing.assert_array_equal(np.flatnonzero(differs),
                                  np.flatnonzero((x.view(np.uint8) == pattern) & differs))
    return spec


def _spec_saturated(x, theirs):
    """Cast float8e5m2 -> float8e5m2 copies in onnxruntime 1.32; with saturate (the
    default) the specification's table (and onnx's reference) maps +-inf to +-57344.
    Only the infinities differ."""
    inf = np.isinf(x.astype(np.float32))
    np.testing.assert_array_equal(theirs[~inf].view(np.uint8), x[~inf].view(np.uint8))
    fixed = theirs.copy()
    fixed[inf] = np.where(x[inf].astype(np.float32) > 0, 57344.0, -57344.0).astype(x.dtype)
    return fixed


def _spec_where_onnxruntime_differs(x, target, expected):
    """onnxruntime 1.32 without saturation maps float8e4m3fn's [480, 496) to 448 and
    float8e5m2's [61440, 65536) to NaN, and drops the sign of bfloat16 NaNs; the
    specification's table says NaN (rounded past 448), infinity (rounded past 57344) and
    -NaN -> -NaN: ml_dtypes' conversion there, checked here."""
    with np.errstate(all="ignore"):
        f = x.astype(np.float32)
    low, high, want = {TP.FLOAT8E4M3FN: (480, 496, np.isnan),
                       TP.FLOAT8E5M2: (61440, 65536, np.isinf)}[target]
    differs = (np.abs(f) >= low) & (np.abs(f) < high)
    nan = np.isnan(f)
    fixed = expected.copy()
    with np.errstate(invalid="ignore"):
        fixed[differs | nan] = f[differs | nan].astype(_dtype(target))
    assert want(fixed[differs].astype(np.float32)).all()
    np.testing.assert_array_equal(np.signbit(fixed[nan].astype(np.float32)), np.signbit(f[nan]))
    return fixed


CAST_TYPES = NARROW + WIDE
CAST_PAIRS = [(a, b) for a in CAST_TYPES for b in CAST_TYPES if a in NARROW or b in NARROW]


@pytest.mark.parametrize("source, target", CAST_PAIRS,
                         ids=[f"{_name(a)}-{_name(b)}" for a, b in CAST_PAIRS])
def test_cast_matches_onnxruntime(source, target):
    x = _defined(_sweep(source), target)
    _assert_same(_pve_cast(x, source, target), _reference_cast(x, source, target))


SATURATE_SOURCES = [TP.FLOAT, TP.FLOAT16, TP.BFLOAT16, TP.DOUBLE, TP.INT32, TP.FLOAT8E5M2]


@pytest.mark.parametrize("saturate", [0, 1])
@pytest.mark.parametrize("target", FLOAT8, ids=_name)
@pytest.mark.parametrize("source", SATURATE_SOURCES, ids=_name)
def test_cast_to_float8_saturate(source, target, saturate):
    x = _sweep(source)
    expected = _reference_cast(x, source, target, saturate=saturate)
    if not saturate and target in (TP.FLOAT8E4M3FN, TP.FLOAT8E5M2):
        expected = _spec_where_onnxruntime_differs(x, target, expected)
    _assert_same(_pve_cast(x, source, target, saturate=saturate), expected)


def test_cast_to_float8_follows_the_specification_tables():
    x = np.array([0.0, -0.0, np.nan, -np.nan, np.inf, -np.inf, 1e6, -1e6, 0.3], np.float32)
    table = {  # saturate: x -> value, from Cast's two tables
        (TP.FLOAT8E4M3FN, 1): [0, -0.0, np.nan, -np.nan, 448, -448, 448, -448, 0.3125],
        (TP.FLOAT8E4M3FNUZ, 1): [0, 0, np.nan, np.nan, 240, -240, 240, -240, 0.3125],
        (TP.FLOAT8E5M2, 1): [0, -0.0, np.nan, -np.nan, 57344, -57344, 57344, -57344, 0.3125],
        (TP.FLOAT8E5M2FNUZ, 1): [0, 0, np.nan, np.nan, 57344, -57344, 57344, -57344, 0.3125],
        (TP.FLOAT8E4M3FN, 0): [0, -0.0, np.nan, -np.nan, np.nan, -np.nan, np.nan, -np.nan,
                               0.3125],
        (TP.FLOAT8E4M3FNUZ, 0): [0, 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 0.3125],
        (TP.FLOAT8E5M2, 0): [0, -0.0, np.nan, -np.nan, np.inf, -np.inf, np.inf, -np.inf, 0.3125],
        (TP.FLOAT8E5M2FNUZ, 0): [0, 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, 0.3125],
    }
    for (target, saturate), values in table.items():
        y = _pve_cast(x, TP.FLOAT, target, saturate=saturate).astype(np.float32)
        want = np.array(values, np.float32)
        nan = np.isnan(want)
        np.testing.assert_array_equal(np.isnan(y), nan)
        np.testing.assert_array_equal(y[~nan], want[~nan])
        np.testing.assert_array_equal(np.signbit(y[~nan]), np.signbit(want[~nan]))


@pytest.mark.parametrize("opset", [24, 25])
@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
@pytest.mark.parametrize("source", [TP.FLOAT, TP.FLOAT16, TP.BFLOAT16, TP.DOUBLE], ids=_name)
def test_cast_to_float8e8m0_rounding(source, saturate, round_mode, opset):
    x = _sweep(source)
    attrs = dict(saturate=saturate, round_mode=round_mode, opset=opset)
    _assert_same(_pve_cast(x, source, TP.FLOAT8E8M0, **attrs),
                 _reference_cast(x, source, TP.FLOAT8E8M0, **attrs))


def test_cast_to_float8e8m0_follows_the_specification_table():
    e8m0_max, e8m0_min = 2.0 ** 127, 2.0 ** -127
    x = np.array([0.0, np.nan, np.inf, 3.0 * 2.0 ** 126, 1e-40, 3.0, 0.75], np.float32)
    saturated_up = _pve_cast(x, TP.FLOAT, TP.FLOAT8E8M0, saturate=1, round_mode="up")
    np.testing.assert_array_equal(saturated_up.astype(np.float64),
                                  [e8m0_min, np.nan, e8m0_max, e8m0_max, e8m0_min, 4.0, 1.0])
    nearest = _pve_cast(x, TP.FLOAT, TP.FLOAT8E8M0, saturate=0, round_mode="nearest")
    np.testing.assert_array_equal(nearest.astype(np.float64),
                                  [np.nan, np.nan, np.nan, np.nan, np.nan, 4.0, 1.0])
    down = _pve_cast(x, TP.FLOAT, TP.FLOAT8E8M0, saturate=1, round_mode="down")
    np.testing.assert_array_equal(down.astype(np.float64)[5:], [2.0, 0.5])
    with pytest.raises(ValueError, match="round_mode"):
        _pve_cast(x, TP.FLOAT, TP.FLOAT8E8M0, round_mode="even")


def test_cast_float_to_int4_rounds_half_away_from_zero_and_wraps():
    # (the specification leaves float -> int4 open; onnxruntime rounds and keeps the low
    # bits, which the sweeps above compare; here the rule itself)
    x = np.array([0.5, 1.5, 2.5, -2.5, -0.5, 7.5, -8.5, 9.0, np.nan, np.inf], np.float32)
    y = _pve_cast(x, TP.FLOAT, TP.INT4)
    np.testing.assert_array_equal(y.astype(np.int8), [1, 2, 3, -3, -1, -8, 7, -7, 0, 0])


CASTLIKE_PAIRS = [(TP.FLOAT, t) for t in NARROW] + [(t, TP.FLOAT) for t in NARROW] + [
    (TP.BFLOAT16, t) for t in FLOAT8] + [(TP.FLOAT16, TP.INT4), (TP.INT4, TP.UINT2)]


@pytest.mark.parametrize("source, target", CASTLIKE_PAIRS,
                         ids=[f"{_name(a)}-{_name(b)}" for a, b in CASTLIKE_PAIRS])
def test_castlike_matches_onnxruntime(source, target):
    x = _defined(_sweep(source), target)
    ours = _pve_cast(x, source, target, op_type="CastLike")
    if TP.FLOAT4E2M1 in (source, target):  # (onnxruntime has no such kernel: Cast's reference)
        theirs = _reference_cast(x, source, target)
    elif source in SUB_BYTE:
        (theirs,) = _ort_run(_cast_model(source, target, op_type="CastLike", initial=x), {})
    else:
        (theirs,) = _ort_run(_cast_model(source, target, op_type="CastLike"), {"x": x})
    _assert_same(ours, theirs)


def test_cast_chain_through_every_type():
    chain = [TP.BFLOAT16, TP.FLOAT8E4M3FN, TP.FLOAT16, TP.FLOAT8E5M2, TP.FLOAT8E4M3FNUZ,
             TP.FLOAT8E5M2FNUZ, TP.FLOAT8E8M0, TP.FLOAT, TP.INT4, TP.INT8, TP.UINT2,
             TP.INT32, TP.UINT4, TP.INT2, TP.DOUBLE]
    names = ["x"] + [f"v{i}" for i in range(len(chain))]
    nodes = [helper.make_node("Cast", [a], [b], to=t)
             for a, b, t in zip(names, names[1:], chain)]
    model = _model(nodes, [("x", TP.FLOAT)], [(names[-1], TP.DOUBLE)])
    x = np.concatenate([EDGES, RNG.standard_normal(500) * 50]).astype(np.float32)
    (ours,) = _pve_run(model, {"x": x})
    (theirs,) = _ort_run(model, {"x": x}, optimize=False)
    _assert_same(ours, theirs)


def test_cast_1_names_its_target_type():
    # (Cast 1's ``to`` is a string; onnxruntime has no Cast 1 kernel: numpy's conversion)
    x = np.array([1.7, -2.5, 0.0, 300.0], np.float32)
    for name, dtype in (("INT32", np.int32), ("DOUBLE", np.float64), ("BOOL", np.bool_)):
        model = _model([helper.make_node("Cast", ["x"], ["y"], to=name)], [("x", TP.FLOAT)],
                       [("y", _code(dtype))], opset=1)
        (y,) = _pve_run(model, {"x": x})
        _assert_same(y, x.astype(dtype))
    model = _model([helper.make_node("Cast", ["x"], ["y"], to="COMPLEX64")], [("x", TP.FLOAT)],
                   [("y", TP.FLOAT)], opset=1)
    with pytest.raises(ValueError, match="Cast: target type 'COMPLEX64' is not supported"):
        _pve_run(model, {"x": x})


@pytest.mark.parametrize("op_type, opset, target, since", [
    ("Cast", 9, TP.BFLOAT16, 13), ("Cast", 13, TP.FLOAT8E4M3FN, 19),
    ("Cast", 19, TP.INT4, 21), ("Cast", 21, TP.FLOAT4E2M1, 23), ("Cast", 23, TP.FLOAT8E8M0, 24),
    ("Cast", 24, TP.UINT2, 25), ("CastLike", 19, TP.UINT4, 21), ("CastLike", 24, TP.INT2, 25)])
def test_cast_types_need_their_opset(op_type, opset, target, since):
    model = _cast_model(TP.FLOAT, target, opset=opset, op_type=op_type)
    with pytest.raises(ValueError, match=f"{op_type}.*opset {opset}.*needs opset {since}"):
        _pve_run(model, {"x": np.ones(3, np.float32)})


# --------------------------------------------------------------------------- Q / DQ
def _code(dtype):
    return _proto.DTYPE_CODES[np.dtype(dtype)]


def _node_models(nodes, arrays, outputs, opset):
    """(pve's model, onnxruntime's model, onnxruntime's feeds): pve is fed every array;
    onnxruntime, which takes no sub-byte feeds, reads those as initializers."""
    fed = [(n, _code(a.dtype)) for n, a in arrays.items()]
    ours = _model(nodes, fed, outputs, opset)
    kept = {n: a for n, a in arrays.items() if _code(a.dtype) not in SUB_BYTE}
    theirs = _model(nodes, [(n, c) for n, c in fed if n in kept], outputs, opset,
                    [(n, a) for n, a in arrays.items() if n not in kept])
    return ours, theirs, kept


def _check_against_onnxruntime(nodes, arrays, outputs, opset):
    ours_model, ort_model, ort_feeds = _node_models(nodes, arrays, outputs, opset)
    ours = _pve_run(ours_model, arrays)
    theirs = _ort_run(ort_model, ort_feeds, optimize=False)
    for a, b in zip(ours, theirs):
        _assert_same(a, b)
    return ours


def _reference_run(nodes, arrays, outputs, opset):
    """onnx's reference implementation (for what onnxruntime has no kernel for)."""
    from onnx.reference import ReferenceEvaluator
    model = onnx.load_from_string(_model(nodes, [(n, _code(a.dtype)) for n, a in arrays.items()],
                                         outputs, opset))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return ReferenceEvaluator(model).run(None, arrays)


QUANTIZED = [(TP.FLOAT8E4M3FN, 19), (TP.FLOAT8E4M3FNUZ, 19), (TP.FLOAT8E5M2, 19),
             (TP.FLOAT8E5M2FNUZ, 19), (TP.INT4, 21), (TP.UINT4, 21), (TP.INT2, 25),
             (TP.UINT2, 25)]
LAYOUTS = {  # x (4, 6): the scale's shape and the node's attributes
    "tensor": ((), {}), "axis": ((6,), {"axis": 1}), "axis0": ((4,), {"axis": 0}),
    "blocked": ((4, 2), {"axis": 1, "block_size": 4}),  # (a ragged last block of 2)
    "blocked0": ((2, 6), {"axis": -2, "block_size": 3})}


def _x_values(dtype):
    x = RNG.standard_normal((4, 6)) * 6
    x.reshape(-1)[:6] = [0.5, -2.5, 1e6, -1e6, np.inf, np.nan]
    with np.errstate(over="ignore"):
        return x.astype(dtype)


def _scale_and_zero_point(qtype, shape, dtype):
    scale = RNG.uniform(0.05, 1.0, shape).astype(dtype)
    if qtype in FLOAT8:  # (a float8 zero point is 0)
        return scale, np.zeros(shape, _dtype(qtype))
    info = ml_dtypes.iinfo(_dtype(qtype))
    return scale, RNG.integers(int(info.min), int(info.max) + 1, shape).astype(_dtype(qtype))


def _opsets(since, layout):
    first = max(since, 21) if layout.startswith("blocked") else since
    return sorted({first, 25})


QUANT_CASES = [(q, layout, opset) for q, since in QUANTIZED for layout in LAYOUTS
               for opset in _opsets(since, layout)]


SATURATED_CASES = [(q, l, o, 1) for q, l, o in QUANT_CASES] + [
    (q, l, o, 0) for q, l, o in QUANT_CASES if q in FLOAT8]  # (saturate: float8 only)


@pytest.mark.parametrize("float_type", [np.float32, np.float16], ids=["float", "float16"])
@pytest.mark.parametrize("qtype, layout, opset, saturate", SATURATED_CASES,
                         ids=[f"{_name(q)}-{l}-{o}-saturate{s}" for q, l, o, s in SATURATED_CASES])
def test_quantize_linear_matches_onnxruntime(qtype, layout, opset, saturate, float_type):
    shape, attrs = LAYOUTS[layout]
    x = _x_values(float_type)
    if not saturate:  # quotients below 448 or far beyond 65536: away from the ranges where
        x[1:] = np.clip(x[1:], -20, 20)  # onnxruntime departs from the tables (see Cast)
    scale, zero_point = _scale_and_zero_point(qtype, shape, float_type)
    if qtype in FLOAT8:
        attrs = dict(attrs, saturate=saturate)
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], **attrs)
    arrays = {"x": x, "s": scale, "z": zero_point}
    if float_type == np.float16 and qtype in FLOAT8:
        # float16 x / y_scale is rounded to float16 (y_scale's precision, as the specification
        # and its reference compute it) before float8; onnxruntime divides in float32, a
        # float8 step away on some ties: the reference is onnx's here
        fed = [(n, _code(a.dtype)) for n, a in arrays.items()]
        (y,) = _pve_run(_model([node], fed, [("y", qtype)], opset), arrays)
        _assert_same(y, _reference_run([node], arrays, [("y", qtype)], opset)[0])
    else:
        (y,) = _check_against_onnxruntime([node], arrays, [("y", qtype)], opset)
    assert y.dtype == _dtype(qtype)


@pytest.mark.parametrize("float_type", [np.float32, np.float16], ids=["float", "float16"])
@pytest.mark.parametrize("qtype, layout, opset", QUANT_CASES,
                         ids=[f"{_name(q)}-{l}-{o}" for q, l, o in QUANT_CASES])
def test_dequantize_linear_matches_onnxruntime(qtype, layout, opset, float_type):
    shape, attrs = LAYOUTS[layout]
    x = _random_patterns(qtype, (4, 6))
    scale, zero_point = _scale_and_zero_point(qtype, shape, float_type)
    node = helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], **attrs)
    (y,) = _check_against_onnxruntime([node], {"x": x, "s": scale, "z": zero_point},
                                      [("y", _code(float_type))], opset)
    assert y.dtype == float_type


@pytest.mark.parametrize("layout", ["tensor", "axis", "blocked"])
def test_float4_quantization_matches_the_reference(layout):
    # (onnxruntime 1.32 has no float4e2m1 QuantizeLinear / DequantizeLinear kernel)
    shape, attrs = LAYOUTS[layout]
    x = _x_values(np.float32)
    scale = RNG.uniform(0.5, 4.0, shape).astype(np.float32)
    zero_point = np.zeros(shape, ml_dtypes.float4_e2m1fn)
    arrays = {"x": x, "s": scale, "z": zero_point}
    quantize = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], **attrs)]
    dequantize = quantize + [helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], **attrs)]
    outputs = [("q", TP.FLOAT4E2M1), ("y", TP.FLOAT)]
    for opset in (23, 25):
        ours = _pve_run(_model(dequantize, [(n, _code(a.dtype)) for n, a in arrays.items()],
                               outputs, opset), arrays)
        theirs = _reference_run(dequantize, arrays, outputs, opset)
        for a, b in zip(ours, theirs):
            _assert_same(a, b)


@pytest.mark.parametrize("opset", [21, 23, 25])
@pytest.mark.parametrize("qtype", [TP.INT4, TP.FLOAT8E4M3FN, TP.UINT8], ids=_name)
def test_bfloat16_quantization_matches_the_reference(qtype, opset):
    # (onnxruntime 1.32 has no bfloat16 QuantizeLinear / DequantizeLinear kernel)
    # (finite: the reference's conversion of NaN and infinities to integers is the
    # platform's; the float32 tests above check onnxruntime's rules for them)
    x = np.nan_to_num(_x_values(np.float32), nan=0.0, posinf=1e5, neginf=-1e5)
    x = x.astype(ml_dtypes.bfloat16)
    scale, zero_point = _scale_and_zero_point(qtype, (6,), ml_dtypes.bfloat16)
    if qtype == TP.UINT8:
        zero_point = RNG.integers(0, 256, (6,)).astype(np.uint8)
    arrays = {"x": x, "s": scale, "z": zero_point}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1)]
    outputs = [("q", qtype), ("y", TP.BFLOAT16)]
    ours = _pve_run(_model(nodes, [(n, _code(a.dtype)) for n, a in arrays.items()], outputs,
                           opset), arrays)
    for a, b in zip(ours, _reference_run(nodes, arrays, outputs, opset)):
        _assert_same(a, b)


def test_bfloat16_precision_and_output_dtype():
    x = _x_values(np.float32)
    scale = RNG.uniform(0.05, 1.0, ()).astype(np.float32)
    arrays = {"x": x, "s": scale}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["q"], precision=TP.BFLOAT16,
                              output_dtype=TP.INT4),
             helper.make_node("DequantizeLinear", ["q", "s"], ["y"], output_dtype=TP.BFLOAT16)]
    outputs = [("q", TP.INT4), ("y", TP.BFLOAT16)]
    ours = _pve_run(_model(nodes, [("x", TP.FLOAT), ("s", TP.FLOAT)], outputs, 25), arrays)
    # the division's quotient rounded to bfloat16, then to the nearest even integer
    quotient = (x / scale).astype(ml_dtypes.bfloat16).astype(np.float32)
    q = np.clip(np.rint(quotient), -8, 7)
    q[np.isnan(quotient)] = -8
    np.testing.assert_array_equal(ours[0].astype(np.float32), q)
    np.testing.assert_array_equal(ours[1], (q * scale).astype(ml_dtypes.bfloat16))


def test_float8e8m0_scales():
    # opset 24's power-of-two scales: x * 2**(e - 127), exactly
    x = RNG.integers(-8, 8, (4, 6)).astype(ml_dtypes.int4)
    exponents = RNG.integers(120, 135, (6,)).astype(np.uint8)
    scale = exponents.view(ml_dtypes.float8_e8m0fnu)
    nodes = [helper.make_node("DequantizeLinear", ["x", "s"], ["y"], axis=1,
                              output_dtype=TP.FLOAT)]
    model = _model(nodes, [("x", TP.INT4), ("s", TP.FLOAT8E8M0)], [("y", TP.FLOAT)], 24)
    (y,) = _pve_run(model, {"x": x, "s": scale})
    want = x.astype(np.float64) * 2.0 ** (exponents.astype(np.float64) - 127)
    np.testing.assert_array_equal(y, want.astype(np.float32))
    values = RNG.standard_normal((4, 6)).astype(np.float32) * 40
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["y"], axis=1,
                              output_dtype=TP.INT4)]
    model = _model(nodes, [("x", TP.FLOAT), ("s", TP.FLOAT8E8M0)], [("y", TP.INT4)], 24)
    (q,) = _pve_run(model, {"x": values, "s": scale})
    want = np.clip(np.rint(values / 2.0 ** (exponents.astype(np.float64) - 127)), -8, 7)
    np.testing.assert_array_equal(q.astype(np.float64), want)
    # a float8e8m0 scale names no output type: output_dtype is required
    nodes = [helper.make_node("DequantizeLinear", ["x", "s"], ["y"], axis=1)]
    model = _model(nodes, [("x", TP.INT4), ("s", TP.FLOAT8E8M0)], [("y", TP.FLOAT)], 24)
    with pytest.raises(ValueError, match="DequantizeLinear.*output_dtype"):
        _pve_run(model, {"x": x, "s": scale})


@pytest.mark.parametrize("qtype", [TP.INT4, TP.UINT4], ids=_name)
@pytest.mark.parametrize("k, n, block", [(32, 8, 16), (33, 5, 16), (7, 3, 4)])
def test_int4_weight_only_matmul_matches_onnxruntime(qtype, k, n, block):
    dtype = _dtype(qtype)
    lo, hi = int(ml_dtypes.iinfo(dtype).min), int(ml_dtypes.iinfo(dtype).max)
    blocks = -(-k // block)
    scale = RNG.uniform(0.01, 0.1, (blocks, n)).astype(np.float32)
    zero_point = RNG.integers(lo, hi + 1, (blocks, n)).astype(dtype)
    w = RNG.integers(lo, hi + 1, (k, n)).astype(dtype)
    x = RNG.standard_normal((3, k)).astype(np.float32)
    nodes = [helper.make_node("DequantizeLinear", ["w", "s", "z"], ["wf"], axis=0,
                              block_size=block),
             helper.make_node("MatMul", ["x", "wf"], ["y"])]
    inits = [("w", w), ("s", scale), ("z", zero_point)]
    model = _model(nodes, [("x", TP.FLOAT)], [("wf", TP.FLOAT), ("y", TP.FLOAT)], 21, inits)
    ours = _pve_run(model, {"x": x})
    theirs = _ort_run(model, {"x": x}, optimize=False)
    # the dequantized weight exactly: (w - zero point) * scale, block by block
    expanded = np.repeat(np.arange(blocks), block)[:k]
    weight = ((w.astype(np.float32) - zero_point.astype(np.float32)[expanded])
              * scale[expanded])
    np.testing.assert_array_equal(ours[0], weight)
    _assert_same(ours[0], theirs[0])
    # the product: float32 sums, in another order than onnxruntime's
    exact = x.astype(np.float64) @ weight.astype(np.float64)
    np.testing.assert_allclose(ours[1], exact, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-5, atol=1e-6)


def test_quantization_errors_name_the_node():
    x = np.zeros((2, 3), ml_dtypes.float8_e4m3fn)
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], name="dq")]
    model = _model(nodes, [("x", TP.FLOAT8E4M3FN), ("s", TP.FLOAT), ("z", TP.FLOAT8E4M3FN)],
                   [("y", TP.FLOAT)], 21)
    with pytest.raises(ValueError, match="'dq'.*float8 x_zero_point must be 0"):
        _pve_run(model, {"x": x, "s": np.float32(1), "z": np.ones((), x.dtype)})
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["y"], name="q",
                              output_dtype=TP.FLOAT8E4M3FN)]
    model = _model(nodes, [("x", TP.FLOAT), ("s", TP.FLOAT8E4M3FN)], [("y", TP.FLOAT8E4M3FN)],
                   21)
    with pytest.raises(ValueError, match="'q'.*y_scale must be float"):
        _pve_run(model, {"x": np.ones(3, np.float32), "s": np.ones((), x.dtype)})
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["y"], name="q",
                              output_dtype=TP.UINT2)]
    model = _model(nodes, [("x", TP.FLOAT), ("s", TP.FLOAT)], [("y", TP.UINT2)], 23)
    with pytest.raises(ValueError, match="'q'.*opset 23.*tensor\\(uint2\\)"):
        _pve_run(model, {"x": np.ones(3, np.float32), "s": np.float32(1)})


# --------------------------------------------------------------------------- bfloat16 math
def _check_bf16_against_onnxruntime(model, feeds):
    ours = _pve_run(model.SerializeToString(), feeds)
    twin = bf16_rounded_in_float32(model).SerializeToString()
    wide = {k: v.astype(np.float32) if v.dtype == ml_dtypes.bfloat16 else v
            for k, v in feeds.items()}
    theirs = _ort_run(twin, wide, optimize=False)
    for out, a, b in zip(model.graph.output, ours, theirs):
        if out.type.tensor_type.elem_type == TP.BFLOAT16:
            assert a.dtype == ml_dtypes.bfloat16
            b = b.astype(ml_dtypes.bfloat16)
        _assert_same(a, b)


def test_bfloat16_graph_rounds_each_operator_as_onnxruntime():
    bf16 = TP.BFLOAT16
    w = (RNG.standard_normal((8, 6)) / 3).astype(ml_dtypes.bfloat16)
    b = RNG.standard_normal(6).astype(ml_dtypes.bfloat16)
    gamma = RNG.uniform(0.5, 1.5, 6).astype(ml_dtypes.bfloat16)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h0"]),
        helper.make_node("Add", ["h0", "b"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("LayerNormalization", ["h2", "gamma", "b"], ["h3"], axis=-1),
        helper.make_node("Gemm", ["h3", "w"], ["h4"], transB=1, alpha=0.5),
        helper.make_node("Softmax", ["h4"], ["h5"], axis=-1),
        helper.make_node("Mul", ["h5", "h4"], ["h6"]),
        helper.make_node("Tanh", ["h6"], ["h7"]),
        helper.make_node("Sigmoid", ["h7"], ["h8"]),
        helper.make_node("ReduceMean", ["h8", "axes"], ["m"], keepdims=1),
        helper.make_node("Sub", ["h8", "m"], ["h9"]),
        helper.make_node("Div", ["h9", "m"], ["h10"]),
        helper.make_node("Sqrt", ["h5"], ["h11"]),
        helper.make_node("Exp", ["h11"], ["h12"]),
        helper.make_node("Greater", ["h10", "h12"], ["mask"]),
        helper.make_node("Where", ["mask", "h10", "h12"], ["h13"]),
        helper.make_node("Transpose", ["h13"], ["h14"], perm=[1, 0]),
        helper.make_node("Concat", ["h14", "h14"], ["h15"], axis=0),
        helper.make_node("ArgMax", ["h15"], ["arg"], axis=0),
        helper.make_node("Pow", ["h15", "two"], ["h16"]),
        helper.make_node("Clip", ["h16", "lo", "hi"], ["y"]),
    ]
    consts = [("w", w), ("b", b), ("gamma", gamma), ("two", np.array(2, ml_dtypes.bfloat16)),
              ("lo", np.array(0.01, ml_dtypes.bfloat16)), ("hi", np.array(3, ml_dtypes.bfloat16)),
              ("axes", np.array([1], np.int64))]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", bf16, [5, 8])],
        [helper.make_tensor_value_info("y", bf16, None),
         helper.make_tensor_value_info("mask", TP.BOOL, None),
         helper.make_tensor_value_info("arg", TP.INT64, None)],
        [numpy_helper.from_array(a, n) for n, a in consts])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    x = (RNG.standard_normal((5, 8)) * 2).astype(ml_dtypes.bfloat16)
    _check_bf16_against_onnxruntime(model, {"x": x})


def _node_case(name):
    import onnx.backend.test.case.node as node_cases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = {c.name: c for c in node_cases.collect_testcases(None)}
    return cases[name]


# (test_attention_4d_*padded_kv_bf16 without _expanded: onnxruntime's Attention refuses
# their nonpad_kv_seqlen shapes; test_session.py checks all ten against onnx's reference)
ATTENTION_BF16 = ["test_attention_4d_causal_bf16", "test_attention_4d_attn_mask_causal_bf16",
                  "test_attention_3d_causal_bf16", "test_attention_4d_causal_bf16_expanded",
                  "test_attention_4d_attn_mask_causal_bf16_expanded",
                  "test_attention_3d_causal_bf16_expanded",
                  "test_attention_4d_padded_kv_bf16_expanded",
                  "test_attention_4d_causal_padded_kv_bf16_expanded"]


@pytest.mark.parametrize("name", ATTENTION_BF16)
def test_bfloat16_attention_node_cases_match_onnxruntime(name):
    case = _node_case(name)
    inputs = case.data_sets[0][0]
    arrays = [numpy_helper.to_array(a) if isinstance(a, TP) else np.asarray(a) for a in inputs]
    feeds = dict(zip([i.name for i in case.model.graph.input], arrays))
    _check_bf16_against_onnxruntime(case.model, feeds)


# --------------------------------------------------------------------------- data movement
MOVES = [  # (nodes, extra initializers, what numpy does to x of shape (2, 3, 4))
    ([helper.make_node("Identity", ["x"], ["y"])], [], lambda x: x),
    ([helper.make_node("Reshape", ["x", "shape"], ["y"])],
     [("shape", np.array([4, -1], np.int64))], lambda x: x.reshape(4, -1)),
    ([helper.make_node("Transpose", ["x"], ["y"], perm=[2, 0, 1])], [],
     lambda x: x.transpose(2, 0, 1)),
    ([helper.make_node("Flatten", ["x"], ["y"], axis=2)], [], lambda x: x.reshape(6, 4)),
    ([helper.make_node("Unsqueeze", ["x", "axes"], ["u"]),
      helper.make_node("Squeeze", ["u", "axes"], ["y"])],
     [("axes", np.array([1], np.int64))], lambda x: x),
    ([helper.make_node("Shape", ["x"], ["y"])], [], lambda x: np.array(x.shape, np.int64)),
    ([helper.make_node("Size", ["x"], ["y"])], [], lambda x: np.array(x.size, np.int64)),
]


@pytest.mark.parametrize("move", range(len(MOVES)))
@pytest.mark.parametrize("code", NARROW, ids=_name)
def test_narrow_types_move_through_the_data_operators(code, move):
    nodes, inits, expected = MOVES[move]
    x = _random_patterns(code, (2, 3, 4))
    out_type = TP.INT64 if nodes[-1].op_type in ("Shape", "Size") else code
    (y,) = _pve_run(_model(nodes, [("x", code)], [("y", out_type)], 25, inits), {"x": x})
    want = expected(x)
    assert y.dtype == want.dtype
    _same_bits(y, np.require(want, requirements="C"))


@pytest.mark.parametrize("code", NARROW, ids=_name)
def test_pad_carries_narrow_types(code):
    x = _random_patterns(code, (2, 3))
    value = _random_patterns(code, ())
    nodes = [helper.make_node("Pad", ["x", "pads", "value"], ["y"], mode="constant")]
    inits = [("pads", np.array([1, 0, 0, 2], np.int64))]
    model = _model(nodes, [("x", code), ("value", code)], [("y", code)], 25, inits)
    (y,) = _pve_run(model, {"x": x, "value": value})
    want = np.full((3, 5), value, x.dtype)
    want[1:, :3] = x
    _same_bits(y[1:, :3], x)
    _assert_same(y, want)  # (a NaN padding value may come out with another payload)


def test_bfloat16_moves_through_gather_slice_concat_where():
    x = RNG.standard_normal((4, 5)).astype(ml_dtypes.bfloat16)
    nodes = [helper.make_node("Gather", ["x", "idx"], ["g"], axis=1),
             helper.make_node("Slice", ["g", "starts", "ends"], ["s"]),
             helper.make_node("Slice", ["x", "starts", "ends"], ["x2"]),
             helper.make_node("Concat", ["s", "x2"], ["c"], axis=1),
             helper.make_node("Expand", ["c", "shape"], ["e"]),
             helper.make_node("Tile", ["e", "reps"], ["t"]),
             helper.make_node("Where", ["cond", "t", "t2"], ["y"])]
    inits = [("idx", np.array([4, 0, 2], np.int64)), ("starts", np.array([1], np.int64)),
             ("ends", np.array([3], np.int64)), ("shape", np.array([2, 1, 1], np.int64)),
             ("reps", np.array([1, 1, 2], np.int64))]
    t2 = RNG.standard_normal((2, 2, 16)).astype(ml_dtypes.bfloat16)
    cond = RNG.random((2, 2, 16)) < 0.5
    model = _model(nodes, [("x", TP.BFLOAT16), ("cond", TP.BOOL), ("t2", TP.BFLOAT16)],
                   [("y", TP.BFLOAT16)], 21, inits)
    (y,) = _pve_run(model, {"x": x, "cond": cond, "t2": t2})
    g = x[:, [4, 0, 2]][1:3]
    c = np.concatenate([g, x[1:3]], axis=1)  # (2, 8)
    t = np.tile(np.broadcast_to(c, (2, 2, 8)), (1, 1, 2))
    _same_bits(y, np.where(cond, t, t2))


def test_isnan_takes_float8():
    x = _every_pattern(TP.FLOAT8E5M2)
    nodes = [helper.make_node("IsNaN", ["x"], ["n"]), helper.make_node("IsInf", ["x"], ["i"])]
    model = _model(nodes, [("x", TP.FLOAT8E5M2)], [("n", TP.BOOL), ("i", TP.BOOL)], 20)
    n, i = _pve_run(model, {"x": x})
    np.testing.assert_array_equal(n, np.isnan(x.astype(np.float32)))
    np.testing.assert_array_equal(i, np.isinf(x.astype(np.float32)))


@pytest.mark.parametrize("op_type, code", [("Add", TP.FLOAT8E4M3FN), ("Relu", TP.INT4),
                                           ("Concat", TP.UINT2), ("MatMul", TP.FLOAT4E2M1),
                                           ("IsNaN", TP.INT4)])
def test_narrow_types_an_operator_does_not_take_are_errors(op_type, code):
    inputs = ["x", "x"] if op_type in ("Add", "Concat", "MatMul") else ["x"]
    attrs = {"axis": 0} if op_type == "Concat" else {}
    out = TP.BOOL if op_type == "IsNaN" else code
    model = _model([helper.make_node(op_type, inputs, ["y"], name="n", **attrs)],
                   [("x", code)], [("y", out)], 25)
    x = _random_patterns(code, (2, 2))
    with pytest.raises(ValueError, match=f"{op_type} node 'n'.*{x.dtype}.*not allowed"):
        _pve_run(model, {"x": x})


# --------------------------------------------------------------------------- no ml_dtypes
def _bf16_model(initializer=False):
    if initializer:
        nodes = [helper.make_node("Cast", ["w"], ["wf"], to=TP.FLOAT),
                 helper.make_node("Add", ["x", "wf"], ["y"])]
        return _model(nodes, [("x", TP.FLOAT)], [("y", TP.FLOAT)], 21,
                      [("w", np.ones(3, ml_dtypes.bfloat16))])
    return _model([helper.make_node("Cast", ["x"], ["y"], to=TP.FLOAT)],
                  [("x", TP.BFLOAT16)], [("y", TP.FLOAT)], 21)


def test_without_ml_dtypes_narrow_models_raise_a_clear_error(monkeypatch):
    models = [_bf16_model(), _bf16_model(initializer=True)]
    cast = _model([helper.make_node("Cast", ["x"], ["y"], name="c", to=TP.FLOAT8E4M3FN)],
                  [("x", TP.FLOAT)], [("y", TP.FLOAT)], 21)
    plain = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", TP.FLOAT)],
                   [("y", TP.FLOAT)], 21)
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # (its import now fails)
    for model in models:
        with pytest.raises(NotImplementedError, match="pip install ml_dtypes"):
            InferenceSession(model)
    sess = InferenceSession(cast)
    with pytest.raises(NotImplementedError, match="Cast to tensor\\(float8e4m3fn\\).*pip install"):
        sess.run(None, {"x": np.ones(2, np.float32)})
    # models of numpy's types run; the tables list numpy's types only
    (y,) = InferenceSession(plain).run(None, {"x": np.array([-1.0, 2.0], np.float32)})
    np.testing.assert_array_equal(y, [0.0, 2.0])
    assert set(_proto.DTYPES) == {1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13}
    assert TP.BFLOAT16 in _proto.DTYPES  # (a type pve.onnx reads, given ml_dtypes)


def test_importing_pve_onnx_does_not_import_ml_dtypes():
    code = ("import sys, numpy as np; import pyvision_engine.onnx as po; "
            "assert 'ml_dtypes' not in sys.modules; "
            "from pyvision_engine.onnx import _proto; "
            "assert _proto.DTYPES[1] == np.float32 and len(_proto.DTYPE_CODES) == 12; "
            "assert 'ml_dtypes' not in sys.modules; print('ok')")
    from subprocess_env import run_python  # (a neutral directory: no source tree shadows the package)
    out = run_python(["-c", code], timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_float8_qlinear_matmul_is_refused():
    # (opset 21 allows float8 operands; neither pve.onnx nor onnxruntime computes them)
    f8 = TP.FLOAT8E4M3FN
    names = ["a", "as", "az", "b", "bs", "bz", "ys", "yz"]
    types = [f8, TP.FLOAT, f8, f8, TP.FLOAT, f8, TP.FLOAT, f8]
    model = _model([helper.make_node("QLinearMatMul", names, ["y"], name="qmm")],
                   list(zip(names, types)), [("y", f8)], 21)
    one, zero = np.ones((), np.float32), np.zeros((), ml_dtypes.float8_e4m3fn)
    matrix = np.ones((2, 2), ml_dtypes.float8_e4m3fn)
    feeds = dict(zip(names, [matrix, one, zero, matrix, one, zero, one, zero]))
    with pytest.raises(ValueError, match="'qmm'.*must be int8 or uint8"):
        _pve_run(model, feeds)
