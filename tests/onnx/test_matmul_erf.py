"""pve.onnx's MatMul on the engine's GEMM (np.matmul's 1-D and broadcast rules, constant
weights on N-D activations as in transformer and ConvNeXt blocks) and its vectorised Erf:
float64 numpy / math.erf references, and onnxruntime on the same graphs when installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.onnx._ops import erf_array, matmul_f32

onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the graphs")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SHAPES = [((5,), (5,)), ((5,), (5, 3)), ((2, 4), (4,)), ((2, 3, 4), (4, 6)),
          ((2, 1, 3, 4), (5, 4, 2)), ((7, 3, 4), (7, 4, 2)), ((3, 4), (2, 4, 5)),
          ((2, 3, 4), (1, 4, 5)), ((4,), (3, 4, 2))]


@pytest.mark.parametrize("sa, sb", SHAPES)
def test_matmul_f32_follows_numpy(sa, sb):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    want = np.matmul(a.astype(np.float64), b.astype(np.float64))
    got = matmul_f32(a, b)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # (opset 17's; a newer onnx writes its own, which older onnxruntime refuses)
    return model.SerializeToString()


def _value(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


@pytest.mark.parametrize("sa, sb", SHAPES)
def test_matmul_of_two_inputs_matches_onnxruntime(sa, sb):
    rng = np.random.default_rng(1)
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    out_shape = np.matmul(a, b).shape
    model = _model([helper.make_node("MatMul", ["a", "b"], ["y"])],
                   [_value("a", sa), _value("b", sb)], [_value("y", out_shape)])
    (got,) = pve.onnx.InferenceSession(model).run(None, {"a": a, "b": b})
    np.testing.assert_allclose(got, np.matmul(a.astype(np.float64), b), rtol=1e-5, atol=1e-5)
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is the reference")
    (want,) = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
        None, {"a": a, "b": b})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(6,), (3, 6), (2, 5, 6), (2, 3, 4, 6)])
def test_constant_weight_on_nd_activations(shape):
    """A linear layer over tokens or channels-last pixels: MatMul (+ Add) with a constant
    (6, 8) weight, whatever the activation's leading dims."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((6, 8)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    x = rng.standard_normal(shape).astype(np.float32)
    model = _model([helper.make_node("MatMul", ["x", "w"], ["h"]),
                    helper.make_node("Add", ["h", "b"], ["y"])],
                   [_value("x", shape)], [_value("y", shape[:-1] + (8,))],
                   [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")])
    (got,) = pve.onnx.InferenceSession(model).run(None, {"x": x})
    want = np.matmul(x.astype(np.float64), w) + bias
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_erf_against_math_erf():
    x = np.concatenate([np.linspace(-6, 6, 20001), [0.0, 1e-30, -1e-8, 0.4999999, 0.5, 9.0]])
    x = x.astype(np.float32)
    got = erf_array(x)
    want = np.array([math.erf(float(v)) for v in x])
    assert got.dtype == np.float32
    assert np.abs(got - want).max() <= 2e-7  # a few float32 ulps near +-1
    small = np.abs(x) < 0.5  # relative near 0, where erf(x) ~ 1.128 x
    np.testing.assert_allclose(got[small], want[small], rtol=2e-7, atol=0)
    edge = erf_array(np.array([np.inf, -np.inf, np.nan], np.float32))
    assert edge[0] == 1.0 and edge[1] == -1.0 and np.isnan(edge[2])
    assert erf_array(np.array([0.25, 2.0], np.float64)).dtype == np.float64
