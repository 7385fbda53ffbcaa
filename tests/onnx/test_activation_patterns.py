"""pve.onnx runs exported activation subgraphs as one kernel step: x * Sigmoid(x) as SiLU
and torch's erf GELU (Div by sqrt 2 -> Erf -> Add 1 -> Mul x -> Mul 0.5, in either Mul
order, or Mul by 1/sqrt 2) as GELU. Each case against onnxruntime, with the plan checked;
near-misses (another constant, an intermediate value read elsewhere) keep the plain
operators and the same results. MaxPool computes its Indices output only when the node
names it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pyvision_engine.onnx import InferenceSession

onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the test graphs")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is the reference")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

SHAPE = [2, 5, 7, 9]


def _model(nodes, consts, outputs=("y",), dtype=np.float32, opset=17):
    elem = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    inits = [numpy_helper.from_array(np.array(v, dtype), name) for name, v in consts.items()]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", elem, SHAPE)],
                              [helper.make_tensor_value_info(o, elem, None) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # (opset 17's; a newer onnx writes its own, which older onnxruntime refuses)
    return model.SerializeToString()


def _check(model, kinds, dtype=np.float32, reference=None):
    """pve against onnxruntime (or ``reference(x)``: onnxruntime has no float64 Erf), and
    the kinds of the session's steps."""
    x = (np.random.default_rng(0).standard_normal(SHAPE) * 3).astype(dtype)
    sess = InferenceSession(model)
    want = [reference(x)] if reference else ort.InferenceSession(
        model, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = sess.run(None, {"x": x})
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert [s.what.split(" ")[0] for s in sess._steps] == kinds


def _gelu_float64(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


@pytest.mark.parametrize("order", [["x", "s"], ["s", "x"]])
def test_silu(order):
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", order, ["y"])]
    _check(_model(nodes, {}), ["SiLU"])


def test_sigmoid_read_elsewhere_stays_plain():
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Mul", ["x", "s"], ["y"])]
    _check(_model(nodes, {}, outputs=("y", "s")), ["Sigmoid", "Mul"])


def _gelu_nodes(scale_op="Div", half_first=False):
    scaled = helper.make_node(scale_op, ["x", "c"], ["t"])
    erf = helper.make_node("Erf", ["t"], ["e"])
    add = helper.make_node("Add", ["e", "one"], ["a"])
    if half_first:  # (x * 0.5) * (1 + erf)
        return [helper.make_node("Mul", ["x", "half"], ["h"]), scaled, erf, add,
                helper.make_node("Mul", ["h", "a"], ["y"])]
    return [scaled, erf, add, helper.make_node("Mul", ["x", "a"], ["m"]),
            helper.make_node("Mul", ["m", "half"], ["y"])]


@pytest.mark.parametrize("scale_op, c", [("Div", math.sqrt(2)), ("Mul", math.sqrt(0.5))])
@pytest.mark.parametrize("half_first", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu(scale_op, c, half_first, dtype):
    consts = {"c": c, "one": 1.0, "half": 0.5}
    _check(_model(_gelu_nodes(scale_op, half_first), consts, dtype=dtype), ["GELU"], dtype,
           _gelu_float64 if dtype == np.float64 else None)


def test_gelu_near_misses_stay_plain():
    plain = ["Div", "Erf", "Add", "Mul", "Mul"]
    _check(_model(_gelu_nodes(), {"c": 2.0, "one": 1.0, "half": 0.5}), plain)  # not sqrt 2
    _check(_model(_gelu_nodes(), {"c": math.sqrt(2), "one": 1.0, "half": 0.25}), plain)
    _check(_model(_gelu_nodes(), {"c": math.sqrt(2), "one": 1.0, "half": 0.5},
                  outputs=("y", "e")), plain)  # the Erf's result is read elsewhere too


def test_torch_exported_gelu_and_silu_fuse():
    torch = pytest.importorskip("torch", reason="torch exports the model")
    import io

    model = torch.nn.Sequential(torch.nn.Conv2d(5, 8, 3, padding=1), torch.nn.GELU(),
                                torch.nn.Conv2d(8, 8, 1), torch.nn.SiLU()).eval()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(model, torch.randn(*SHAPE), buf, opset_version=17, dynamo=False,
                          input_names=["x"], output_names=["y"])
    sess = InferenceSession(buf.getvalue())
    kinds = [s.what.split(" ")[0] for s in sess._steps]
    assert "GELU" in kinds and "SiLU" in kinds and "Erf" not in kinds and "Sigmoid" not in kinds
    x = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("with_indices", [False, True])
@pytest.mark.parametrize("ceil", [0, 1])
def test_max_pool_indices_only_when_named(with_indices, ceil):
    outputs = ("y", "i") if with_indices else ("y",)
    node = helper.make_node("MaxPool", ["x"], list(outputs), kernel_shape=[3, 3], strides=[2, 2],
                            pads=[1, 1, 1, 1], ceil_mode=ceil)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
        + ([helper.make_tensor_value_info("i", TensorProto.INT64, None)] if with_indices else []))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 7  # (opset 12's)
    model = model.SerializeToString()
    x = np.random.default_rng(2).standard_normal(SHAPE).astype(np.float32)
    got = InferenceSession(model).run(None, {"x": x})
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def _bn_model(after=(), outputs=("y",), conv_first=False):
    rng = np.random.default_rng(3)
    c = SHAPE[1]
    consts = {"g": rng.standard_normal(c), "b": rng.standard_normal(c),
              "m": rng.standard_normal(c), "v": rng.uniform(0.5, 2.0, c)}
    nodes = []
    source = "x"
    if conv_first:
        consts["w"] = rng.standard_normal((c, c, 3, 3)) * 0.2
        nodes.append(helper.make_node("Conv", ["x", "w"], ["cx"], pads=[1, 1, 1, 1]))
        source = "cx"
    nodes.append(helper.make_node("BatchNormalization", [source, "g", "b", "m", "v"],
                                  ["bn" if after else "y"], epsilon=1e-3))
    if after:
        nodes.append(helper.make_node(after[0], ["bn"], ["y"]))
    return _model(nodes, consts, outputs)


def test_batch_norm_alone_and_with_relu():
    # DenseNet's BN -> ReLU -> Conv: one per-channel pass with the ReLU fused
    _check(_bn_model(), ["BatchNormalization"])
    _check(_bn_model(("Relu",)), ["BatchNormalization"])
    assert "Relu" in InferenceSession(_bn_model(("Relu",)))._steps[0].what
    # a Relu whose input is also an output stays its own step; other followers too
    _check(_bn_model(("Relu",), outputs=("y", "bn")), ["BatchNormalization", "Relu"])
    _check(_bn_model(("Sigmoid",)), ["BatchNormalization", "Sigmoid"])
    # after a Conv it is folded into the convolution instead
    assert not any(s.what.startswith("BatchNormalization")
                   for s in InferenceSession(_bn_model(conv_first=True))._steps)
    _check(_bn_model(conv_first=True), ["Conv"])
