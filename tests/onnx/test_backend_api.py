"""pve.onnx through onnx's backend interface and onnx's own backend test runner
(``onnx.backend.test.BackendTest``): the node cases of a set of CNN operators,
generated and checked by onnx itself, plus run_node and the feed forms."""

from __future__ import annotations

import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx (a test extra) provides the backend interface")
import onnx.backend.test  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

import pyvision_engine.onnx.backend as pve_backend  # noqa: E402

# onnx's runner on its node cases for these operators (every case it has of them,
# except the features pve.onnx leaves out on purpose, see test_session.UNSUPPORTED)
_OPS = ["conv", "convtranspose", "maxpool", "averagepool", "globalaveragepool", "batchnorm",
        "relu", "leakyrelu", "sigmoid", "hardswish", "clip", "gemm", "matmul", "softmax",
        "flatten", "reshape", "concat", "resize", "pad", "depthtospace", "topk", "gather"]
_INCLUDE = re.compile(rf"^test_({'|'.join(_OPS)})(_.*)?_cpu$")
_EXCLUDE = re.compile("|".join([
    r"3d", r"training", r"_bfloat16", r"float8",
    r"int4", r"_expanded",
    # the specification's unrounded align_corners length (pve.onnx follows onnxruntime
    # and torch: test_session.FOLLOWS_ONNXRUNTIME)
    r"resize_downsample_scales_(linear|cubic)_align_corners"]))
_backend_test = onnx.backend.test.BackendTest(pve_backend, __name__)
_backend_test.include(_INCLUDE.pattern)
_backend_test.exclude(_EXCLUDE.pattern)
_CASES = _backend_test.test_cases  # (a property: builds new classes on every read)
for _cls in _CASES.values():
    # keep only the chosen cases (the runner would list every other one as skipped)
    for _name in [n for n in vars(_cls) if n.startswith("test_")]:
        if not _INCLUDE.search(_name) or _EXCLUDE.search(_name):
            delattr(_cls, _name)
globals().update(_CASES)


def test_the_runner_ran_cases():
    assert _CASES, "onnx's runner generated no test classes"
    node = _CASES["OnnxBackendNodeModelTest"]
    assert len([m for m in dir(node) if m.startswith("test_conv")]) > 5


def test_run_node_and_feed_forms():
    node = helper.make_node("Relu", ["x"], ["y"])
    x = np.array([[-1.0, 2.0]], np.float32)
    (y,) = pve_backend.run_node(node, [x])
    np.testing.assert_array_equal(y, [[0.0, 2.0]])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["c"])], "g",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # (opset 17's; a newer onnx writes its own, which older onnxruntime refuses)
    a, b = np.ones(2, np.float32), np.full(2, 2.0, np.float32)
    rep = pve_backend.prepare(model)
    for inputs in ([a, b], (a, b), {"a": a, "b": b}):
        (c,) = rep.run(inputs)
        np.testing.assert_array_equal(c, [3.0, 3.0])
    assert pve_backend.is_compatible(model) and pve_backend.supports_device("CPU")
    assert not pve_backend.supports_device("CUDA")
    with pytest.raises(ValueError, match="3 inputs for a graph with 2"):
        rep.run([a, b, a])
