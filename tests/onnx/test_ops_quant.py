"""pve.onnx's quantized-inference operators (pyvision_engine/onnx/_ops_quant.py):
QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, ConvInteger,
QLinearMatMul and QLinearConv against onnxruntime on the same one-node graphs (integer
outputs equal exactly) and against plain numpy references written here (int64 integer
products, float64 requantization); a small torch CNN quantized by onnxruntime's
quantize_static in the QDQ and QOperator formats; and the errors.

onnx, onnxruntime and torch are test extras: without them these tests skip.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import pyvision_engine as pve

onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the graphs")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

NP_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float16): TensorProto.FLOAT16,
            np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
            np.dtype(np.uint16): TensorProto.UINT16, np.dtype(np.int16): TensorProto.INT16,
            np.dtype(np.int32): TensorProto.INT32}


def _ordered(op_type, inputs, const_names, n_out=1, opset=21, **attrs):
    """A one-node model with ``inputs`` (a list of (name, array or None)) in node order;
    the names in ``const_names`` are initializers, the others graph inputs."""
    feeds = {k: v for k, v in inputs if v is not None and k not in const_names}
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in inputs
             if v is not None and k in const_names]
    names = ["" if v is None else k for k, v in inputs]
    while names and names[-1] == "":
        names.pop()
    outputs = [f"y{i}" for i in range(n_out)]
    graph = helper.make_graph(
        [helper.make_node(op_type, names, outputs, **attrs)], "g",
        [helper.make_tensor_value_info(k, NP_TYPES[v.dtype], list(v.shape))
         for k, v in feeds.items()],
        [helper.make_empty_tensor_value_info(o) for o in outputs],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model.SerializeToString(), feeds


def _run_both(model, feeds):
    ours = pve.onnx.InferenceSession(model).run(None, feeds)
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is the reference")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    theirs = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"]).run(
        None, feeds)
    return ours, theirs


def _assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def _ort_inexact(ta, tb) -> bool:
    """Whether onnxruntime's integer products of these operand types are inexact on this
    CPU: its uint8 x int8 kernels for CPUs without VNNI add pairs of products in int16
    (vpmaddubsw), which saturates, so their result is not the exact one the specification
    defines (seen on an AVX2 AMD EPYC: MatMulInteger -61829 for -63886). There the tests
    compare values with their numpy references only, and shapes and types with
    onnxruntime."""
    features = pve.info()["cpu_features"]
    vnni = features.get("avx512_vnni") or features.get("avx_vnni")
    return ta is np.uint8 and tb is np.int8 and not vnni


def _assert_same_where_exact(ours, theirs, ta, tb):
    if not _ort_inexact(ta, tb):
        _assert_same(ours, theirs)
        return
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == b.dtype


def _range(dtype):
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _random_int(rng, shape, dtype):
    lo, hi = _range(dtype)
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


def _expand(param, shape, axis, block):
    """A scale / zero point broadcast to x's shape (plain numpy, as the spec describes)."""
    if param.ndim == 0:
        return param
    if block:
        return np.repeat(param, block, axis=axis).take(range(shape[axis]), axis=axis)
    return param.reshape([-1 if i == axis % len(shape) else 1 for i in range(len(shape))])


# ----------------------------------------------------------------- QuantizeLinear
# (dtype, granularity, x shape, axis, block_size, opset)
QUANT_CASES = [
    (np.uint8, "tensor", (2, 3, 5), 1, 0, 10),
    (np.int8, "tensor", (4, 7), 1, 0, 13),
    (np.int8, "axis", (2, 3, 5), 1, 0, 13),
    (np.uint8, "axis", (2, 3, 5), -1, 0, 19),
    (np.int16, "axis", (3, 6), 0, 0, 21),
    (np.uint16, "tensor", (3, 6), 1, 0, 21),
    (np.int8, "blocked", (4, 10), 1, 4, 21),
    (np.uint8, "blocked", (6, 5), 0, 2, 21),
    (np.int16, "blocked", (2, 6, 3), 1, 3, 25),
    (np.uint8, "tensor", (2, 9), 1, 0, 25),  # (onnxruntime 1.32 has no opset-28 kernel)
]


def _scale_shape(kind, shape, axis, block):
    if kind == "tensor":
        return ()
    if kind == "axis":
        return (shape[axis],)
    return tuple(-(-d // block) if i == axis % len(shape) else d for i, d in enumerate(shape))


@pytest.mark.parametrize("dtype, kind, shape, axis, block, opset", QUANT_CASES)
def test_quantize_linear_matches_onnxruntime_and_numpy(dtype, kind, shape, axis, block, opset):
    rng = np.random.default_rng(0)
    dtype = np.dtype(dtype)
    lo, hi = _range(dtype)
    sshape = _scale_shape(kind, shape, axis, block)
    # powers of two as scales, so x / scale is exact and half-integers are true ties
    scale = (2.0 ** rng.integers(-3, 2, size=sshape)).astype(np.float32)
    zero_point = rng.integers(lo // 2, hi // 2 + 1, size=sshape).astype(dtype)
    span = (hi - lo) * 0.7 * float(scale.max())
    x = (rng.integers(-int(span), int(span) + 1, size=shape) / 2.0).astype(np.float32)
    x.flat[:4] = [1e9, -1e9, 0.5, -2.5]  # saturation and ties
    attrs = {"axis": axis} if kind != "tensor" and opset >= 13 else {}
    if block:
        attrs["block_size"] = block
    model, feeds = _ordered("QuantizeLinear", [("x", x), ("s", scale), ("z", zero_point)],
                            {"s", "z"}, opset=opset, **attrs)
    ours, theirs = _run_both(model, feeds)
    _assert_same(ours, theirs)
    q = np.rint(x.astype(np.float64) / _expand(scale, shape, axis, block))
    want = np.clip(q + _expand(zero_point, shape, axis, block), lo, hi).astype(dtype)
    np.testing.assert_array_equal(ours[0], want)


@pytest.mark.parametrize("out_type, dtype", [(None, np.uint8), (TensorProto.INT8, np.int8),
                                             (TensorProto.UINT16, np.uint16),
                                             (TensorProto.INT16, np.int16)])
def test_quantize_linear_without_zero_point(out_type, dtype):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((3, 8)) * 100).astype(np.float32)
    x[0, :3] = [0.5, 1.5, -0.5]
    scale = np.float32(0.5)
    attrs = {} if out_type is None else {"output_dtype": out_type}
    model, feeds = _ordered("QuantizeLinear", [("x", x), ("s", scale)], {"s"}, opset=21,
                            **attrs)
    ours, theirs = _run_both(model, feeds)
    _assert_same(ours, theirs)
    lo, hi = _range(dtype)
    want = np.clip(np.rint(x.astype(np.float64) / 0.5), lo, hi).astype(dtype)
    np.testing.assert_array_equal(ours[0], want)


def test_quantize_linear_float16_and_random_scales():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((4, 6)) * 3).astype(np.float16)
    scale = rng.uniform(0.01, 0.1, size=6).astype(np.float16)
    zero_point = rng.integers(-20, 20, size=6).astype(np.int8)
    model, feeds = _ordered("QuantizeLinear", [("x", x), ("s", scale), ("z", zero_point)],
                            {"s", "z"}, opset=21, axis=1)
    ours, theirs = _run_both(model, feeds)
    _assert_same(ours, theirs)
    # (the division in float16, the scale's type, as the specification says)
    q = np.rint((x / scale).astype(np.float64)) + zero_point
    np.testing.assert_array_equal(ours[0], np.clip(q, -128, 127).astype(np.int8))
    x32, s32 = x.astype(np.float32), scale.astype(np.float32)
    model, feeds = _ordered("QuantizeLinear", [("x", x32), ("s", s32), ("z", zero_point)],
                            {"s", "z"}, opset=13, axis=1)
    ours, theirs = _run_both(model, feeds)
    _assert_same(ours, theirs)


# ----------------------------------------------------------------- DequantizeLinear
DEQUANT_CASES = [
    (np.uint8, "tensor", (2, 3, 5), 1, 0, 10),
    (np.int8, "axis", (2, 3, 5), 1, 0, 13),
    (np.uint8, "axis", (4, 3), -1, 0, 19),
    (np.int32, "tensor", (3, 4), 1, 0, 13),
    (np.int16, "axis", (3, 6), 0, 0, 21),
    (np.uint16, "tensor", (3, 6), 1, 0, 21),
    (np.int8, "blocked", (4, 10), 1, 4, 21),
    (np.uint8, "blocked", (6, 5), 0, 2, 23),
    (np.int16, "blocked", (2, 6, 3), 1, 3, 25),  # (onnxruntime 1.32 has no opset-28 kernel)
]


@pytest.mark.parametrize("dtype, kind, shape, axis, block, opset", DEQUANT_CASES)
def test_dequantize_linear_matches_onnxruntime_and_numpy(dtype, kind, shape, axis, block,
                                                         opset):
    rng = np.random.default_rng(3)
    dtype = np.dtype(dtype)
    sshape = _scale_shape(kind, shape, axis, block)
    x = (rng.integers(-1000, 1000, size=shape).astype(dtype) if dtype == np.int32
         else _random_int(rng, shape, dtype))
    scale = rng.uniform(0.001, 0.2, size=sshape).astype(np.float32)
    zero_point = None if dtype == np.int32 else _random_int(rng, sshape, dtype)
    attrs = {"axis": axis} if kind != "tensor" and opset >= 13 else {}
    if block:
        attrs["block_size"] = block
    model, feeds = _ordered("DequantizeLinear", [("x", x), ("s", scale), ("z", zero_point)],
                            {"s", "z"}, opset=opset, **attrs)
    ours, theirs = _run_both(model, feeds)
    _assert_same(ours, theirs)
    shifted = x.astype(np.float64)
    if zero_point is not None:
        shifted = shifted - _expand(zero_point, shape, axis, block)
    want = shifted * _expand(scale, shape, axis, block).astype(np.float64)
    np.testing.assert_allclose(ours[0], want, rtol=1e-6, atol=0)


def test_dequantize_linear_float16_scale_and_output_dtype():
    rng = np.random.default_rng(4)
    x = _random_int(rng, (3, 5), np.int8)
    zero_point = np.int8(-3)
    scale = np.float16(0.0421)
    model, feeds = _ordered("DequantizeLinear", [("x", x), ("s", scale), ("z", zero_point)],
                            {"s", "z"}, opset=21)
    ours, theirs = _run_both(model, feeds)
    _assert_same(ours, theirs)
    want = ((x.astype(np.float64) + 3) * np.float64(scale)).astype(np.float16)
    np.testing.assert_array_equal(ours[0], want)
    # opset 23's output_dtype: a float32 scale, float16 output
    model, feeds = _ordered("DequantizeLinear", [("x", x), ("s", np.float32(scale)),
                                                 ("z", zero_point)],
                            {"s", "z"}, opset=23, output_dtype=TensorProto.FLOAT16)
    (got,) = pve.onnx.InferenceSession(model).run(None, feeds)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------- DynamicQuantizeLinear
@pytest.mark.parametrize("low, high", [(-3.0, 5.0), (0.5, 7.0), (-9.0, -1.0), (-1.0, 1.0)])
def test_dynamic_quantize_linear_matches_onnxruntime_and_numpy(low, high):
    rng = np.random.default_rng(5)
    x = rng.uniform(low, high, size=(4, 33)).astype(np.float32)
    model, feeds = _ordered("DynamicQuantizeLinear", [("x", x)], set(), n_out=3, opset=11)
    ours, theirs = _run_both(model, feeds)
    _assert_same(ours, theirs)
    # the specification's formula, float32 scale as its reference computes it
    hi, lo = max(0.0, float(x.max())), min(0.0, float(x.min()))
    scale = np.float32(np.float32(hi - lo) / np.float32(255))
    zero_point = np.rint(np.clip(0 - np.float64(np.float32(lo) / scale), 0, 255))
    assert ours[1] == scale and ours[2] == zero_point
    q = np.clip(np.rint((x / scale).astype(np.float64)) + zero_point, 0, 255)
    np.testing.assert_array_equal(ours[0], q.astype(np.uint8))


def test_dynamic_quantize_linear_all_zero():
    x = np.zeros((2, 3), np.float32)
    model, feeds = _ordered("DynamicQuantizeLinear", [("x", x)], set(), n_out=3, opset=11)
    ours, theirs = _run_both(model, feeds)
    _assert_same(ours, theirs)
    assert ours[1] == 1.0 and ours[2] == 0 and not ours[0].any()


# ----------------------------------------------------------------- MatMulInteger
MATMUL_CASES = [((5, 7), (7, 3)), ((2, 5, 7), (7, 4)), ((2, 3, 6), (2, 6, 5)),
                ((3, 1, 4, 6), (2, 6, 3)), ((6,), (6, 4))]


def _matmul_int64(a, azp, b, bzp):
    return np.matmul(a.astype(np.int64) - azp, b.astype(np.int64) - bzp)


@pytest.mark.parametrize("sa, sb", MATMUL_CASES)
@pytest.mark.parametrize("ta, tb", [(np.uint8, np.uint8), (np.uint8, np.int8),
                                    (np.int8, np.int8)])
def test_matmul_integer_matches_onnxruntime_and_numpy(sa, sb, ta, tb):
    rng = np.random.default_rng(6)
    a, b = _random_int(rng, sa, ta), _random_int(rng, sb, tb)
    azp = _random_int(rng, (), ta)
    # per column (onnxruntime takes that for a 2-D B only)
    bzp = _random_int(rng, (sb[-1],) if len(sb) == 2 else (), tb)
    model, feeds = _ordered("MatMulInteger", [("a", a), ("b", b), ("az", azp), ("bz", bzp)],
                            {"az", "bz"}, opset=10)
    ours, theirs = _run_both(model, feeds)
    _assert_same_where_exact(ours, theirs, ta, tb)
    np.testing.assert_array_equal(ours[0], _matmul_int64(a, azp, b, bzp))


def test_matmul_integer_per_row_zero_point_and_no_zero_points():
    rng = np.random.default_rng(7)
    a, b = _random_int(rng, (4, 6), np.uint8), _random_int(rng, (6, 3), np.int8)
    azp = _random_int(rng, (4,), np.uint8)  # per row, as the specification allows
    model, feeds = _ordered("MatMulInteger", [("a", a), ("b", b), ("az", azp)], {"az"},
                            opset=10)
    (got,) = pve.onnx.InferenceSession(model).run(None, feeds)
    np.testing.assert_array_equal(got, _matmul_int64(a, azp[:, None], b, 0))
    model, feeds = _ordered("MatMulInteger", [("a", a), ("b", b)], set(), opset=10)
    ours, theirs = _run_both(model, feeds)
    _assert_same(ours, theirs)
    np.testing.assert_array_equal(ours[0], _matmul_int64(a, 0, b, 0))


# ----------------------------------------------------------------- convolutions
def _conv_int64(x, w, strides, pads, dilations, group):
    """Plain integer convolution: one shifted slice per kernel tap (int64)."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.int64), [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])])
    oh = (xp.shape[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (xp.shape[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.zeros((n, m, oh, ow), np.int64)
    mg = m // group
    for g in range(group):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * mg:(g + 1) * mg].astype(np.int64)
        for i in range(kh):
            for j in range(kw):
                r0, c0 = i * dilations[0], j * dilations[1]
                patch = xs[:, :, r0:r0 + strides[0] * (oh - 1) + 1:strides[0],
                           c0:c0 + strides[1] * (ow - 1) + 1:strides[1]]
                out[:, g * mg:(g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, ws[:, :, i, j])
    return out


def _same_pads(in_hw, kernel, strides, dilations, upper):
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
        small = total // 2
        begin.append(small if upper else total - small)
        end.append(total - begin[-1])
    return begin + end


# (x shape, w shape, strides, pads, dilations, group, auto_pad)
CONV_CASES = [
    ((1, 3, 8, 8), (4, 3, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1, None),
    ((2, 4, 9, 7), (6, 4, 3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 1, None),
    ((1, 4, 10, 10), (4, 2, 3, 3), (1, 2), (2, 0, 1, 1), (2, 1), 2, None),
    ((2, 6, 8, 8), (6, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 6, None),   # depthwise
    ((1, 6, 7, 9), (12, 1, 5, 5), (2, 2), (2, 2, 2, 2), (1, 1), 6, None),  # multiplier 2
    ((1, 5, 7, 7), (3, 5, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, None),
    ((1, 3, 9, 8), (4, 3, 3, 2), (2, 3), None, (1, 1), 1, "SAME_UPPER"),
    ((1, 2, 9, 8), (4, 2, 3, 2), (1, 1), (3, 2, 1, 0), (3, 2), 1, None),
    ((1, 3, 8, 9), (4, 3, 4, 3), (3, 2), None, (1, 1), 1, "SAME_LOWER"),
    ((1, 3, 8, 9), (2, 3, 3, 3), (1, 1), None, (1, 1), 1, "VALID"),
]


def _conv_attrs(strides, pads, dilations, group, auto_pad):
    attrs = {"strides": list(strides), "dilations": list(dilations), "group": group}
    if auto_pad:
        attrs["auto_pad"] = auto_pad
    else:
        attrs["pads"] = list(pads)
    return attrs


def _resolved_pads(xs, ws, strides, pads, dilations, auto_pad):
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return _same_pads(xs[2:], ws[2:], strides, dilations, auto_pad == "SAME_UPPER")
    return [0, 0, 0, 0] if auto_pad == "VALID" else list(pads)


@pytest.mark.parametrize("xs, ws, strides, pads, dilations, group, auto_pad", CONV_CASES)
@pytest.mark.parametrize("tx, tw", [(np.uint8, np.uint8), (np.uint8, np.int8)])
def test_conv_integer_matches_onnxruntime_and_numpy(xs, ws, strides, pads, dilations, group,
                                                    auto_pad, tx, tw):
    rng = np.random.default_rng(8)
    x, w = _random_int(rng, xs, tx), _random_int(rng, ws, tw)
    xzp, wzp = _random_int(rng, (), tx), _random_int(rng, (), tw)
    attrs = _conv_attrs(strides, pads, dilations, group, auto_pad)
    model, feeds = _ordered("ConvInteger", [("x", x), ("w", w), ("xz", xzp), ("wz", wzp)],
                            {"w", "xz", "wz"}, opset=10, **attrs)
    ours, theirs = _run_both(model, feeds)
    _assert_same(ours, theirs)
    want = _conv_int64(x.astype(np.int64) - xzp, w.astype(np.int64) - wzp, strides,
                       _resolved_pads(xs, ws, strides, pads, dilations, auto_pad), dilations,
                       group)
    np.testing.assert_array_equal(ours[0], want)


def test_conv_integer_1d_and_per_channel_weight_zero_point():
    rng = np.random.default_rng(9)
    x, w = _random_int(rng, (2, 3, 11), np.uint8), _random_int(rng, (4, 3, 3), np.uint8)
    wzp = _random_int(rng, (4,), np.uint8)
    model, feeds = _ordered("ConvInteger", [("x", x), ("w", w), ("xz", None), ("wz", wzp)],
                            {"w", "wz"}, opset=10, pads=[1, 2], strides=[2])
    (got,) = pve.onnx.InferenceSession(model).run(None, feeds)
    want = _conv_int64(x[:, :, None].astype(np.int64),
                       (w.astype(np.int64) - wzp[:, None, None])[:, :, None], (1, 2),
                       (0, 1, 0, 2), (1, 1), 1)[:, :, 0]
    np.testing.assert_array_equal(got, want)


def _requantize_f64(acc, multiplier, zero_point, dtype):
    lo, hi = _range(dtype)
    return np.clip(np.rint(acc * multiplier) + zero_point, lo, hi)


@pytest.mark.parametrize("xs, ws, strides, pads, dilations, group, auto_pad", CONV_CASES)
@pytest.mark.parametrize("tx, tw, per_channel, with_bias",
                         [(np.uint8, np.uint8, False, True), (np.uint8, np.int8, True, True),
                          (np.int8, np.int8, True, False), (np.int8, np.int8, False, True)])
def test_qlinear_conv_matches_onnxruntime_and_numpy(xs, ws, strides, pads, dilations, group,
                                                    auto_pad, tx, tw, per_channel, with_bias):
    rng = np.random.default_rng(10)
    x, w = _random_int(rng, xs, tx), _random_int(rng, ws, tw)
    m = ws[0]
    xzp = _random_int(rng, (), tx)
    wzp = (np.zeros(m if per_channel else (), tw) if tw == np.int8
           else _random_int(rng, (), tw))  # (onnxruntime takes per-channel zero points of 0)
    x_scale = np.float32(rng.uniform(0.01, 0.05))
    w_scale = rng.uniform(0.002, 0.02, size=m if per_channel else ()).astype(np.float32)
    y_scale = np.float32(rng.uniform(0.05, 0.5))
    yzp = _random_int(rng, (), tx)
    bias = rng.integers(-5000, 5000, size=m).astype(np.int32) if with_bias else None
    attrs = _conv_attrs(strides, pads, dilations, group, auto_pad)
    model, feeds = _ordered(
        "QLinearConv", [("x", x), ("xs", x_scale), ("xz", xzp), ("w", w), ("ws", w_scale),
                        ("wz", wzp), ("ys", y_scale), ("yz", yzp), ("b", bias)],
        {"xs", "xz", "w", "ws", "wz", "ys", "yz", "b"}, opset=10, **attrs)
    ours, theirs = _run_both(model, feeds)
    _assert_same_where_exact(ours, theirs, tx, tw)
    acc = _conv_int64(x.astype(np.int64) - xzp,
                      w.astype(np.int64) - np.asarray(wzp).reshape(-1, 1, 1, 1), strides,
                      _resolved_pads(xs, ws, strides, pads, dilations, auto_pad), dilations,
                      group)
    if bias is not None:
        acc = acc + bias.reshape(1, -1, 1, 1)
    multiplier = (np.float64(x_scale) * w_scale.astype(np.float64).reshape(-1, 1, 1)
                  / np.float64(y_scale))
    want = _requantize_f64(acc, multiplier, yzp, tx)
    # float64 requantization differs from onnxruntime's float32 only where the product
    # lands within float32 rounding of a tie: never by more than one step
    assert np.abs(ours[0].astype(np.int64) - want).max() <= 1
    assert (ours[0] != want).mean() < 0.01


# ----------------------------------------------------------------- QLinearMatMul
@pytest.mark.parametrize("sa, sb", MATMUL_CASES[:4])
@pytest.mark.parametrize("ta, tb, opset", [(np.uint8, np.uint8, 10), (np.uint8, np.int8, 10),
                                           (np.int8, np.int8, 21)])
def test_qlinear_matmul_matches_onnxruntime_and_numpy(sa, sb, ta, tb, opset):
    rng = np.random.default_rng(11)
    a, b = _random_int(rng, sa, ta), _random_int(rng, sb, tb)
    azp, bzp, yzp = _random_int(rng, (), ta), _random_int(rng, (), tb), _random_int(rng, (), ta)
    a_scale, b_scale = np.float32(0.023), np.float32(0.0071)
    y_scale = np.float32(rng.uniform(0.5, 2.0))
    model, feeds = _ordered(
        "QLinearMatMul", [("a", a), ("as", a_scale), ("az", azp), ("b", b), ("bs", b_scale),
                          ("bz", bzp), ("ys", y_scale), ("yz", yzp)],
        {"as", "az", "b", "bs", "bz", "ys", "yz"}, opset=opset)
    ours, theirs = _run_both(model, feeds)
    _assert_same_where_exact(ours, theirs, ta, tb)
    acc = _matmul_int64(a, azp, b, bzp)
    want = _requantize_f64(acc, np.float64(a_scale) * np.float64(b_scale) / np.float64(y_scale),
                           yzp, ta)
    assert np.abs(ours[0].astype(np.int64) - want).max() <= 1
    assert (ours[0] != want).mean() < 0.01


def test_qlinear_matmul_per_column_b_scale():
    rng = np.random.default_rng(12)
    a, b = _random_int(rng, (5, 8), np.uint8), _random_int(rng, (8, 6), np.int8)
    azp, yzp = np.uint8(128), np.uint8(120)
    bzp = np.zeros(6, np.int8)
    a_scale, y_scale = np.float32(0.02), np.float32(0.3)
    b_scale = rng.uniform(0.005, 0.02, size=6).astype(np.float32)
    model, feeds = _ordered(
        "QLinearMatMul", [("a", a), ("as", a_scale), ("az", azp), ("b", b), ("bs", b_scale),
                          ("bz", bzp), ("ys", y_scale), ("yz", yzp)],
        {"as", "az", "b", "bs", "bz", "ys", "yz"}, opset=10)
    ours, theirs = _run_both(model, feeds)
    _assert_same_where_exact(ours, theirs, np.uint8, np.int8)
    want = _requantize_f64(_matmul_int64(a, azp, b, bzp),
                           np.float64(a_scale) * b_scale.astype(np.float64) / np.float64(y_scale),
                           yzp, np.uint8)
    assert np.abs(ours[0].astype(np.int64) - want).max() <= 1
    assert (ours[0] != want).mean() < 0.01


# ----------------------------------------------------------------- a quantized CNN
def _small_cnn(torch):
    class Net(torch.nn.Module):
        """conv-bn-relu, a residual block, maxpool, a grouped strided conv, global average
        pooling and a linear head (as a MatMul and Add, the head onnxruntime's quantizer
        turns into the standard QLinearMatMul; its Gemm becomes com.microsoft's QGemm)."""

        def __init__(self):
            super().__init__()
            self.c1, self.b1 = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
            self.c2, self.b2 = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8)
            self.c3 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2)
            self.fc = torch.nn.Linear(16, 10)

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            y = torch.relu(y + self.b2(self.c2(y)))
            y = torch.nn.functional.max_pool2d(y, 2)
            y = torch.relu(self.c3(y))
            y = torch.nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)
            return torch.matmul(y, self.fc.weight.t()) + self.fc.bias

    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():
        for bn in (net.b1, net.b2):  # (statistics other than the identity)
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.3, 0.3)
    return net


@pytest.fixture(scope="module")
def float_cnn(tmp_path_factory):
    torch = pytest.importorskip("torch", reason="torch (a test extra) builds the model")
    pytest.importorskip("onnxruntime.quantization", reason="onnxruntime quantizes the model")
    path = str(tmp_path_factory.mktemp("quant") / "float.onnx")
    with warnings.catch_warnings():  # (the TorchScript exporter's deprecation notice)
        warnings.simplefilter("ignore")
        torch.onnx.export(_small_cnn(torch), (torch.randn(2, 3, 16, 16),), path,
                          input_names=["x"], output_names=["y"], opset_version=17,
                          dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    return path


def _quantized(float_path, fmt_name, per_channel, op_types):
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.batches = iter([{"x": rng.standard_normal((4, 3, 16, 16)).astype(np.float32)}
                                 for _ in range(8)])

        def get_next(self):
            return next(self.batches, None)

    out = float_path.replace(".onnx", f"_{fmt_name}_{per_channel}_{bool(op_types)}.onnx")
    quantize_static(float_path, out, Reader(), quant_format=getattr(QuantFormat, fmt_name),
                    per_channel=per_channel, op_types_to_quantize=op_types,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return out


# QOperator: Conv and MatMul only (onnxruntime writes QLinearAdd, QLinearGlobalAveragePool
# and friends in its com.microsoft domain, which pve.onnx does not run); QDQ: every op the
# quantizer takes as well (standard QuantizeLinear / DequantizeLinear around them)
@pytest.mark.parametrize("fmt_name, op_types", [("QOperator", ["Conv", "MatMul"]),
                                                ("QDQ", ["Conv", "MatMul"]), ("QDQ", None)])
@pytest.mark.parametrize("per_channel", [False, True])
def test_quantized_cnn_matches_onnxruntime(float_cnn, fmt_name, op_types, per_channel):
    import onnxruntime as ort
    if fmt_name == "QOperator" and _ort_inexact(np.uint8, np.int8):
        pytest.skip("onnxruntime's uint8 x int8 QLinearConv / QLinearMatMul saturate on CPUs "
                    "without VNNI (see _ort_inexact); test_qlinear_conv_* and "
                    "test_qlinear_matmul_* check those ops against numpy here")
    path = _quantized(float_cnn, fmt_name, per_channel, op_types)
    kinds = {n.op_type for n in onnx.load(path).graph.node}
    assert ("QLinearConv" in kinds) == (fmt_name == "QOperator")
    assert "DequantizeLinear" in kinds and "QuantizeLinear" in kinds
    x = np.random.default_rng(1).standard_normal((16, 3, 16, 16)).astype(np.float32)
    (ours,) = pve.onnx.InferenceSession(path).run(None, {"x": x})
    # (without graph optimizations onnxruntime runs the Q/DQ nodes as written)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    (theirs,) = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})
    assert ours.shape == theirs.shape == (16, 10) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


# ----------------------------------------------------------------- errors
def _raises(model, feeds, *fragments):
    with pytest.raises(ValueError) as info:
        pve.onnx.InferenceSession(model).run(None, feeds)
    for fragment in fragments:
        assert fragment in str(info.value)


X = np.zeros((2, 3), np.float32)


def test_mismatched_scale_and_zero_point_shapes():
    model, feeds = _ordered("QuantizeLinear", [("x", X), ("s", np.ones(3, np.float32)),
                                               ("z", np.zeros(2, np.uint8))], {"s", "z"},
                            opset=13, axis=1)
    _raises(model, feeds, "QuantizeLinear", "same shape", "(3,)", "(2,)")
    model, feeds = _ordered("QuantizeLinear", [("x", X), ("s", np.ones(2, np.float32)),
                                               ("z", np.zeros(2, np.uint8))], {"s", "z"},
                            opset=13, axis=1)
    _raises(model, feeds, "QuantizeLinear", "3 values", "(2,)")
    q = np.zeros((2, 3), np.uint8)
    model, feeds = _ordered("DequantizeLinear", [("x", q), ("s", np.ones((2, 2), np.float32)),
                                                 ("z", np.zeros((2, 2), np.uint8))],
                            {"s", "z"}, opset=21, axis=1, block_size=1)
    _raises(model, feeds, "DequantizeLinear", "blocked", "(2, 3)")
    w = np.zeros((4, 3, 1, 1), np.int8)
    model, feeds = _ordered(
        "QLinearConv", [("x", np.zeros((1, 3, 2, 2), np.uint8)), ("xs", np.float32(1)),
                        ("xz", np.uint8(0)), ("w", w), ("ws", np.ones(3, np.float32)),
                        ("wz", np.zeros(3, np.int8)), ("ys", np.float32(1)), ("yz", np.uint8(0))],
        {"w", "ws", "wz", "ys", "yz", "xs", "xz"}, opset=10)
    _raises(model, feeds, "QLinearConv", "w_scale", "(4)")


def test_zero_point_type_differs():
    model, feeds = _ordered("QuantizeLinear", [("x", X), ("s", np.float32(1)),
                                               ("z", np.uint8(0))], {"s", "z"}, opset=21,
                            output_dtype=TensorProto.INT8)
    _raises(model, feeds, "QuantizeLinear", "y_zero_point", "int8", "uint8")
    q = np.zeros((2, 3), np.uint8)
    model, feeds = _ordered("DequantizeLinear", [("x", q), ("s", np.float32(1)),
                                                 ("z", np.int8(0))], {"s", "z"}, opset=13)
    _raises(model, feeds, "DequantizeLinear", "x_zero_point", "uint8", "int8")
    model, feeds = _ordered("MatMulInteger", [("a", q), ("b", np.zeros((3, 2), np.int8)),
                                              ("az", np.int8(0))], {"az"}, opset=10)
    _raises(model, feeds, "MatMulInteger", "a_zero_point")


def test_types_outside_the_opset_or_operator_are_refused():
    # (float8, int4, int2 and float4 quantization is checked in test_narrow_types.py)
    model, feeds = _ordered("QuantizeLinear", [("x", X), ("s", np.float32(1))], {"s"},
                            opset=21, output_dtype=26)  # (int2: onnx < 1.20 has no name for it)
    _raises(model, feeds, "QuantizeLinear", "opset 21", "tensor(int2)")
    model, feeds = _ordered("QuantizeLinear", [("x", X), ("s", np.float32(1))], {"s"},
                            opset=21, output_dtype=TensorProto.FLOAT)
    _raises(model, feeds, "QuantizeLinear", "tensor(float)", "is not one of")
    # a float8 zero point of DequantizeLinear must be 0 (as in onnxruntime)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    q = np.zeros((2, 3), ml_dtypes.float8_e4m3fn)
    model, feeds = _ordered("DequantizeLinear", [("x", q), ("s", np.float32(1)),
                                                 ("z", np.ones((), ml_dtypes.float8_e4m3fn))],
                            {"x", "s", "z"}, opset=21)
    _raises(model, feeds, "DequantizeLinear", "float8 x_zero_point must be 0")


def test_bad_axis_and_block_size():
    for axis in (2, -3):
        model, feeds = _ordered("QuantizeLinear", [("x", X), ("s", np.ones(3, np.float32)),
                                                   ("z", np.zeros(3, np.uint8))], {"s", "z"},
                                opset=13, axis=axis)
        _raises(model, feeds, "QuantizeLinear", f"axis {axis}", "rank 2")
    model, feeds = _ordered("QuantizeLinear", [("x", X), ("s", np.ones((2, 1), np.float32))],
                            {"s"}, opset=21, axis=1, block_size=-2)
    _raises(model, feeds, "QuantizeLinear", "block_size")


def test_integer_products_check_their_operands():
    a = np.zeros((2, 3), np.uint8)
    model, feeds = _ordered("MatMulInteger", [("a", a), ("b", np.zeros((4, 2), np.uint8))],
                            set(), opset=10)
    _raises(model, feeds, "MatMulInteger", "(2, 3)", "(4, 2)")
    model, feeds = _ordered("ConvInteger", [("x", np.zeros((1, 4, 5, 5), np.uint8)),
                                            ("w", np.zeros((2, 3, 3, 3), np.uint8))],
                            {"w"}, opset=10)
    _raises(model, feeds, "ConvInteger", "group 1")
    model, feeds = _ordered(
        "QLinearConv", [("x", np.zeros((1, 3, 2, 2), np.uint8)), ("xs", np.float32(1)),
                        ("xz", np.uint8(0)), ("w", np.zeros((4, 3, 1, 1), np.uint8)),
                        ("ws", np.float32(1)), ("wz", np.uint8(0)), ("ys", np.float32(1)),
                        ("yz", np.uint8(0)), ("b", np.zeros(4, np.int64))],
        {"w", "ws", "wz", "ys", "yz", "xs", "xz", "b"}, opset=10)
    _raises(model, feeds, "QLinearConv", "B must be int32")
