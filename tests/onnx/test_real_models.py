"""pve.onnx.InferenceSession on patterns of real exported models, against onnxruntime.

Each case is a small graph built with onnx.helper that reproduces what a real
file holds (found by running torchvision models exported by torch.onnx at
opsets 9-17, and older model-zoo files, through both runtimes):

- initializers listed as graph inputs (``torch.onnx.export(...,
  keep_initializers_as_inputs=True)``, older exporters): onnxruntime's
  overridable initializers, which a feed may replace;
- weights saved as external data (``onnx.save(..., save_as_external_data=True)``,
  torch's exporter for models over 2 GB);
- opset < 7 ``Add(broadcast=1, axis=1)`` after a Conv (Caffe2-era files);
- ``BatchNormalization(spatial=0)`` (opsets 7-8) with per-activation statistics;
- graph inputs and outputs whose type has no shape.

The torchvision test at the end exports real models when torchvision imports.
onnx and onnxruntime are test extras; without them these tests skip and say so.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyvision_engine.onnx import InferenceSession

onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the test graphs")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is the reference")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _ort(model_or_path):
    so = ort.SessionOptions()
    so.log_severity_level = 3  # (its warnings about old opsets and overridable initializers)
    return ort.InferenceSession(model_or_path, so, providers=["CPUExecutionProvider"])


def _model(nodes, inputs, outputs, inits, opset, ir_version=8):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def _meta(args):
    return [(a.name, a.shape, a.type) for a in args]


def _close(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(want).max()))


def _conv_bn_gemm(rng, ir_version, opset=13):
    """Conv + BatchNormalization + Relu, Reshape by a constant shape, Gemm: a ResNet stem
    and head, every initializer also listed as a graph input (as keep_initializers_as_inputs
    writes it)."""
    arrays = {
        "conv.weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
        "conv.bias": rng.standard_normal(8).astype(np.float32) * 0.1,
        "bn.weight": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "bn.bias": rng.normal(0, 0.1, 8).astype(np.float32),
        "bn.running_mean": rng.normal(0, 0.1, 8).astype(np.float32),
        "bn.running_var": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "shape": np.array([0, -1], np.int64),
        "fc.weight": rng.standard_normal((5, 8 * 4 * 4)).astype(np.float32) * 0.1,
        "fc.bias": rng.standard_normal(5).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "conv.weight", "conv.bias"], ["c"], pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c", "bn.weight", "bn.bias", "bn.running_mean",
                                                "bn.running_var"], ["b"]),
        helper.make_node("Relu", ["b"], ["r"]),
        helper.make_node("Reshape", ["r", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["y"], transB=1),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])]
    inputs += [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
               for k, v in arrays.items()]
    inits = [numpy_helper.from_array(v, k) for k, v in arrays.items()]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5]),
               helper.make_tensor_value_info("fc.bias", TensorProto.FLOAT, [5])]
    return _model(nodes, inputs, outputs, inits, opset, ir_version), arrays


# --------------------------------------------------------------------------- overridable initializers
def test_overridable_initializers_match_onnxruntime():
    rng = np.random.default_rng(0)
    model, arrays = _conv_bn_gemm(rng, ir_version=8)
    data = model.SerializeToString()
    ref, sess = _ort(data), InferenceSession(data)
    assert _meta(sess.get_inputs()) == _meta(ref.get_inputs())
    assert _meta(sess.get_overridable_initializers()) == _meta(ref.get_overridable_initializers())
    assert len(sess.get_overridable_initializers()) == len(arrays)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    overrides = [
        {},
        {"conv.weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32)},  # a folded conv
        {"bn.running_mean": rng.standard_normal(8).astype(np.float32),           # folded BN stats
         "bn.running_var": rng.uniform(1, 2, 8).astype(np.float32)},
        {"fc.weight": rng.standard_normal((5, 128)).astype(np.float32),          # the laid-out Gemm
         "fc.bias": rng.standard_normal(5).astype(np.float32)},                  # (and an output)
        {"shape": np.array([-1, 128], np.int64)},                                # a folded shape
        {},                                                                      # (defaults again)
    ]
    for extra in overrides:
        feed = dict(extra, x=x)
        for got, want in zip(sess.run(None, feed), ref.run(None, feed)):
            _close(got, want)
    # an override has the initializer's declared type, as every feed
    with pytest.raises(TypeError, match="fc.bias"):
        sess.run(None, {"x": x, "fc.bias": np.zeros(5, np.float64)})


def test_initializers_in_inputs_before_ir4_are_constants():
    # IR version 3 lists every initializer as an input; onnxruntime treats them as
    # constants there: no overridable initializers, and feeding one is an error
    model, _ = _conv_bn_gemm(np.random.default_rng(1), ir_version=3, opset=9)
    data = model.SerializeToString()
    ref, sess = _ort(data), InferenceSession(data)
    assert _meta(sess.get_inputs()) == _meta(ref.get_inputs()) == [("x", ["N", 3, 8, 8], "tensor(float)")]
    assert sess.get_overridable_initializers() == [] == ref.get_overridable_initializers()
    x = np.random.default_rng(2).standard_normal((1, 3, 8, 8)).astype(np.float32)
    for got, want in zip(sess.run(None, {"x": x}), ref.run(None, {"x": x})):
        _close(got, want)
    with pytest.raises(Exception, match="(?i)invalid input name"):
        ref.run(None, {"x": x, "fc.bias": np.zeros(5, np.float32)})
    with pytest.raises(ValueError, match="invalid input name 'fc.bias'"):
        sess.run(None, {"x": x, "fc.bias": np.zeros(5, np.float32)})


# --------------------------------------------------------------------------- external data
def test_external_data_matches_onnxruntime(tmp_path):
    model, _ = _conv_bn_gemm(np.random.default_rng(3), ir_version=8)
    sub = tmp_path / "model"
    sub.mkdir()
    path = str(sub / "m.onnx")
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.weights", size_threshold=0)
    assert any(t.data_location == TensorProto.EXTERNAL for t in onnx.load(path, load_external_data=False)
               .graph.initializer)
    x = np.random.default_rng(4).standard_normal((2, 3, 8, 8)).astype(np.float32)
    for got, want in zip(InferenceSession(path).run(None, {"x": x}), _ort(path).run(None, {"x": x})):
        _close(got, want)
    with open(path, "rb") as fh:  # the bytes alone cannot reach the weights' file
        data = fh.read()
    with pytest.raises(ValueError, match="load the model from its path"):
        InferenceSession(data)


@pytest.mark.parametrize("where", ["outside", "absolute", "missing", "short"])
def test_external_data_outside_the_model_directory_is_refused(tmp_path, where):
    # onnxruntime refuses each of these files too (checked here)
    w = np.arange(6, dtype=np.float32)
    sub = tmp_path / "model"
    sub.mkdir()
    (tmp_path / "outside.bin").write_bytes(w.tobytes())
    (sub / "w.bin").write_bytes(w.tobytes())
    location, length = {"outside": ("../outside.bin", 24), "absolute": (str(sub / "w.bin"), 24),
                        "missing": ("nothing.bin", 24), "short": ("w.bin", 20)}[where]
    tensor = numpy_helper.from_array(w, "w")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    model = _model([helper.make_node("Neg", ["w"], ["y"])], [],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6])], [tensor], 13)
    path = str(sub / "m.onnx")
    with open(path, "wb") as fh:
        fh.write(model.SerializeToString())
    with pytest.raises(Exception):
        _ort(path)
    with pytest.raises(ValueError, match="tensor 'w'"):
        InferenceSession(path)


# --------------------------------------------------------------------------- old opsets
def test_legacy_broadcast_add_after_conv():
    """Conv, then Add(conv, bias, broadcast=1, axis=1) (opset 6: the bias aligned with the
    channels), then Relu. onnxruntime runs opset 7 and up only: the reference is the
    same graph at opset 7 with the bias shaped (C, 1, 1) for numpy broadcasting."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    io = ([helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])])

    def graph(opset, bias, **add_attrs):
        nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                 helper.make_node("Add", ["c", "b"], ["s"], **add_attrs),
                 helper.make_node("Relu", ["s"], ["y"])]
        inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")]
        return _model(nodes, *io, inits, opset, ir_version=3).SerializeToString()

    x = rng.standard_normal((1, 3, 4, 4)).astype(np.float32)
    (want,) = _ort(graph(7, b.reshape(4, 1, 1))).run(None, {"x": x})
    (got,) = InferenceSession(graph(6, b, broadcast=1, axis=1)).run(None, {"x": x})
    _close(got, want)


@pytest.mark.parametrize("opset", [7, 8])
@pytest.mark.parametrize("after_conv", [False, True])
def test_batch_norm_spatial_zero_matches_onnxruntime(opset, after_conv):
    # spatial=0: one mean / variance / scale / bias per activation, shaped (C, H, W)
    rng = np.random.default_rng(opset)
    stats = {k: rng.uniform(0.5, 1.5, (3, 4, 5)).astype(np.float32) for k in "sbmv"}
    inits = [numpy_helper.from_array(v, k) for k, v in stats.items()]
    nodes, src = [], "x"
    if after_conv:  # (a Conv whose BatchNormalization must not be folded per channel)
        inits.append(numpy_helper.from_array(rng.standard_normal((3, 3, 3, 3)).astype(np.float32), "w"))
        nodes.append(helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]))
        src = "c"
    nodes.append(helper.make_node("BatchNormalization", [src, "s", "b", "m", "v"], ["y"],
                                  spatial=0, epsilon=1e-3))
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4, 5])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4, 5])], inits,
                   opset, ir_version=3).SerializeToString()
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    (want,) = _ort(model).run(None, {"x": x})
    (got,) = InferenceSession(model).run(None, {"x": x})
    _close(got, want)


# --------------------------------------------------------------------------- metadata and run()
def test_shapeless_inputs_and_outputs_read_as_onnxruntime():
    shapeless = helper.make_tensor_type_proto(TensorProto.FLOAT, None)
    model = _model([helper.make_node("Relu", ["x"], ["y"])],
                   [helper.make_value_info("x", shapeless)], [helper.make_value_info("y", shapeless)],
                   [], 13).SerializeToString()
    ref, sess = _ort(model), InferenceSession(model)
    assert _meta(sess.get_inputs()) == _meta(ref.get_inputs())
    assert _meta(sess.get_outputs()) == _meta(ref.get_outputs())
    x = np.random.default_rng(6).standard_normal((2, 3)).astype(np.float32)  # any rank runs
    _close(sess.run(None, {"x": x})[0], ref.run(None, {"x": x})[0])


def test_model_metadata_reads_as_onnxruntime():
    model = _model([helper.make_node("Relu", ["x"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [], 13)
    model.producer_name, model.domain, model.model_version = "pytorch", "ai.example", 3
    model.doc_string, model.graph.doc_string = "the model", "the graph"
    helper.set_model_props(model, {"author": "pve", "license": "MIT"})
    data = model.SerializeToString()
    want, got = _ort(data).get_modelmeta(), InferenceSession(data).get_modelmeta()
    for key in ("producer_name", "graph_name", "graph_description", "domain", "description",
                "version", "custom_metadata_map"):
        assert getattr(got, key) == getattr(want, key), key


def test_run_refuses_a_string_for_output_names():
    model = _model([helper.make_node("Relu", ["x"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [], 13).SerializeToString()
    x = np.ones(2, np.float32)
    with pytest.raises(TypeError):
        _ort(model).run("y", {"x": x})
    with pytest.raises(TypeError, match="output_names"):
        InferenceSession(model).run("y", {"x": x})
    assert InferenceSession(model).run(("y",), {"x": x})[0].shape == (2,)


# --------------------------------------------------------------------------- torchvision, when it imports
def _torchvision():
    torch = pytest.importorskip("torch", reason="torch exports the torchvision models")
    try:
        import torchvision
    except Exception as e:  # (a wheel whose compiled part does not load raises other errors)
        pytest.skip(f"torchvision does not import here ({type(e).__name__}: {e})")
    return torch, torchvision


@pytest.mark.parametrize("name, opset, size", [("resnet18", 13, 64), ("mobilenet_v3_small", 17, 96),
                                               ("squeezenet1_1", 9, 80)])
def test_torchvision_models_match_onnxruntime(tmp_path, name, opset, size):
    torch, torchvision = _torchvision()
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().eval()
    path = str(tmp_path / f"{name}.onnx")
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.onnx.export(model, x, path, opset_version=opset, dynamo=False, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    ref, sess = _ort(path), InferenceSession(path)
    assert _meta(sess.get_inputs()) == _meta(ref.get_inputs())
    assert _meta(sess.get_outputs()) == _meta(ref.get_outputs())
    for batch in (2, 1, 3):
        feed = {"input": np.random.default_rng(batch).standard_normal((batch, 3, size, size)).astype(np.float32)}
        _close(sess.run(None, feed)[0], ref.run(["output"], feed)[0])
