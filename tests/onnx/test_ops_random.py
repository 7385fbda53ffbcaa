"""pve.onnx's random generators (pyvision_engine/onnx/_ops_random.py): RandomNormal,
RandomUniform, RandomNormalLike, RandomUniformLike, Bernoulli, Multinomial.

No other generator draws the same values, so the draws are checked by their statistics,
with fixed seeds (so each bound below is met or missed for good, never by chance): mean
and variance within 5 standard errors, ranges, Bernoulli frequencies against p,
Multinomial frequencies against the softmax of the logits (the input is unnormalized
log-probabilities). Output shapes and types are compared with onnxruntime where it
implements the operator (opsets up to 21, float and double) and with onnx's shape
inference elsewhere (opset 22, float16, bool and integer outputs). The seed behaviour is
onnxruntime's, checked on onnxruntime itself too: a seeded node gives the same values at
run k of every session and new values at each run of one session; an unseeded node
draws fresh values at every run. Errors name the node.

onnx builds the models; onnx and onnxruntime are test extras: tests that need one skip
and say so without it. The Bernoulli node cases run in test_session.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyvision_engine.onnx import InferenceSession
from pyvision_engine.onnx._ops import OPS

onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the test models")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper  # noqa: E402

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)


def _model(op_type, feeds, attrs, opset, name="rand"):
    inputs = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for k, v in feeds.items()]
    node = helper.make_node(op_type, list(feeds), ["y"], name=name, **attrs)
    graph = helper.make_graph([node], "g", inputs, [onnx.ValueInfoProto(name="y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def _pve(op_type, feeds, attrs, opset=22):
    sess = InferenceSession(_model(op_type, feeds, attrs, opset).SerializeToString())
    return sess.run(None, feeds)[0]


def _ort_session(model):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is the reference")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def _inferred(op_type, feeds, attrs, opset):
    """The output's (dtype, shape) by onnx's shape inference."""
    model = onnx.shape_inference.infer_shapes(_model(op_type, feeds, attrs, opset),
                                              strict_mode=True)
    (out,) = [vi for vi in model.graph.value_info if vi.name == "y"] or model.graph.output
    t = out.type.tensor_type
    return (np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)),
            tuple(d.dim_value for d in t.shape.dim))


def _within(value, expected, standard_error, what):
    assert abs(value - expected) <= 5 * standard_error, (what, value, expected, standard_error)


# --------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("dtype_code, dtype", [(TP.FLOAT, F32), (TP.DOUBLE, F64),
                                               (TP.FLOAT16, F16)])
@pytest.mark.parametrize("mean, scale", [(0.0, 1.0), (2.5, 3.0), (-1.0, 0.25)])
def test_random_normal_mean_and_variance(dtype_code, dtype, mean, scale):
    n = 1_000_000
    y = _pve("RandomNormal", {}, dict(shape=[1000, 1000], dtype=dtype_code, mean=mean,
                                      scale=scale, seed=7.0))
    assert y.shape == (1000, 1000) and y.dtype == dtype
    values = y.astype(np.float64)
    _within(values.mean(), mean, scale / np.sqrt(n), "mean")
    # the sample variance's standard error: sqrt(2 / n) * variance (normal data)
    _within(values.var(), scale ** 2, np.sqrt(2.0 / n) * scale ** 2 + (
        1e-3 * scale ** 2 if dtype == F16 else 0), "variance")
    # about 68.3 % within one standard deviation, 95.4 % within two
    for k, share in ((1, 0.682689), (2, 0.954500)):
        inside = (np.abs(values - mean) <= k * scale).mean()
        _within(inside, share, np.sqrt(share * (1 - share) / n), f"within {k} sd")


@pytest.mark.parametrize("dtype_code, dtype", [(TP.FLOAT, F32), (TP.DOUBLE, F64),
                                               (TP.FLOAT16, F16)])
@pytest.mark.parametrize("low, high", [(0.0, 1.0), (-3.0, 5.0), (10.0, 10.5)])
def test_random_uniform_range_mean_and_variance(dtype_code, dtype, low, high):
    n = 1_000_000
    y = _pve("RandomUniform", {}, dict(shape=[n], dtype=dtype_code, low=low, high=high,
                                       seed=3.0))
    assert y.shape == (n,) and y.dtype == dtype
    values = y.astype(np.float64)
    assert values.min() >= low and values.max() <= high
    width = high - low
    _within(values.mean(), (low + high) / 2, width / np.sqrt(12 * n), "mean")
    _within(values.var(), width ** 2 / 12, width ** 2 * np.sqrt(1 / (180 * n)), "variance")
    # each tenth of the range holds a tenth of the values
    counts = np.histogram(values, bins=10, range=(low, high))[0] / n
    for c in counts:
        _within(c, 0.1, np.sqrt(0.09 / n) + (2e-3 if dtype == F16 else 0), "tenth")


# (op_type, attrs, the mean and the standard deviation of one draw)
LIKE_CASES = [("RandomNormalLike", dict(mean=1.0, scale=2.0), 1.0, 2.0),
              ("RandomUniformLike", dict(low=-1.0, high=3.0), 1.0, 4.0 / np.sqrt(12))]


@pytest.mark.parametrize("op_type, attrs, mean, sd", LIKE_CASES, ids=[c[0] for c in LIKE_CASES])
@pytest.mark.parametrize("dtype", [F16, F32, F64])
def test_like_operators_follow_the_input(op_type, attrs, mean, sd, dtype):
    x = np.zeros((50, 40, 30), dtype)
    y = _pve(op_type, {"x": x}, dict(attrs, seed=11.0))
    assert y.shape == x.shape and y.dtype == dtype
    values = y.astype(np.float64)
    _within(values.mean(), mean, sd / np.sqrt(x.size), "mean")
    _within(values.std(), sd, sd / np.sqrt(2 * x.size) + (1e-3 * sd if dtype == F16 else 0),
            "standard deviation")


def test_like_operators_dtype_overrides_the_input():
    x = np.zeros((30, 20), np.int64)
    y = _pve("RandomNormalLike", {"x": x}, dict(dtype=TP.DOUBLE, seed=1.0))
    assert y.shape == (30, 20) and y.dtype == F64
    y = _pve("RandomUniformLike", {"x": x.astype(np.float32)}, dict(dtype=TP.FLOAT16, seed=1.0))
    assert y.dtype == F16 and ((y >= 0) & (y <= 1)).all()


@pytest.mark.parametrize("in_dtype", [F16, F32, F64])
def test_bernoulli_frequencies_follow_p(in_dtype):
    p_values = np.array([0.0, 0.03, 0.25, 0.5, 0.8, 0.97, 1.0])
    n = 40_000
    p = np.repeat(p_values[:, None], n, axis=1).astype(in_dtype)
    y = _pve("Bernoulli", {"p": p}, dict(seed=5.0))
    assert y.shape == p.shape and y.dtype == in_dtype
    assert np.isin(y, [0, 1]).all()
    for row, q in zip(y, p.astype(np.float64)[:, 0]):
        _within(row.mean(), q, np.sqrt(q * (1 - q) / n), f"frequency at p={q}")
    assert not y[0].any() and y[-1].all()  # p = 0 never, p = 1 always


@pytest.mark.parametrize("dtype_code", [TP.BOOL, TP.INT32, TP.INT64, TP.UINT8, TP.INT8,
                                        TP.FLOAT16, TP.DOUBLE])
def test_bernoulli_output_types(dtype_code):
    p = np.full((200, 100), 0.3, np.float32)
    y = _pve("Bernoulli", {"p": p}, dict(dtype=dtype_code, seed=2.0))
    assert y.dtype == np.dtype(helper.tensor_dtype_to_np_dtype(dtype_code))
    assert np.isin(y.astype(np.int64), [0, 1]).all()
    _within(y.astype(np.float64).mean(), 0.3, np.sqrt(0.21 / p.size), "frequency")


def _softmax(logits):
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("in_dtype", [F16, F32, F64])
def test_multinomial_frequencies_follow_the_softmax(in_dtype):
    logits = np.array([[0.0, 0.0, 0.0, 0.0],
                       [1.0, 2.0, 3.0, 4.0],
                       [-2.0, 0.5, -np.inf, 0.1],    # a class of probability 0
                       [1000.0, 999.0, 0.0, 998.0],  # large logits: shift before exp
                       [-5.0, -np.inf, -np.inf, -6.0]]).astype(in_dtype)
    samples = 60_000
    y = _pve("Multinomial", {"x": logits}, dict(sample_size=samples, seed=9.0))
    assert y.shape == (5, samples) and y.dtype == np.int32
    probs = _softmax(logits.astype(np.float64))
    for row, want in zip(y, probs):
        assert row.min() >= 0 and row.max() <= 3
        freq = np.bincount(row, minlength=4) / samples
        for f, q in zip(freq, want):
            if q == 0:
                assert f == 0
            else:
                _within(f, q, np.sqrt(q * (1 - q) / samples), f"frequency of p={q}")


def test_multinomial_int64_and_default_sample_size():
    logits = np.log(np.array([[0.2, 0.8], [0.9, 0.1]], np.float32))
    y = _pve("Multinomial", {"x": logits}, dict(dtype=TP.INT64, sample_size=3, seed=1.0))
    assert y.shape == (2, 3) and y.dtype == np.int64
    y = _pve("Multinomial", {"x": logits}, {})
    assert y.shape == (2, 1) and y.dtype == np.int32 and np.isin(y, [0, 1]).all()


def test_empty_shapes():
    assert _pve("RandomNormal", {}, dict(shape=[0, 3])).shape == (0, 3)
    assert _pve("RandomUniformLike", {"x": np.zeros((2, 0), np.float32)}, {}).shape == (2, 0)
    assert _pve("Bernoulli", {"p": np.zeros((0,), np.float64)}, {}).shape == (0,)
    assert _pve("RandomNormalLike", {"x": np.zeros((), np.float32)}, {}).shape == ()
    y = _pve("Multinomial", {"x": np.zeros((0, 3), np.float32)}, dict(sample_size=2))
    assert y.shape == (0, 2) and y.dtype == np.int32


# --------------------------------------------------------------------------- shapes, types
ORT_CASES = [  # (op_type, feeds, attrs, opset): the combinations onnxruntime implements
    ("RandomNormal", {}, dict(shape=[3, 4]), 1),
    ("RandomNormal", {}, dict(shape=[2, 1, 5], dtype=TP.DOUBLE, mean=3.0), 21),
    ("RandomUniform", {}, dict(shape=[7], low=-1.0, high=1.0), 1),
    ("RandomUniform", {}, dict(shape=[2, 2], dtype=TP.DOUBLE), 21),
    ("RandomNormalLike", {"x": np.zeros((3, 2), np.float32)}, {}, 21),
    ("RandomNormalLike", {"x": np.zeros((4,), np.int32)}, dict(dtype=TP.FLOAT), 1),
    ("RandomUniformLike", {"x": np.zeros((2, 3, 4), np.float64)}, {}, 21),
    ("RandomUniformLike", {"x": np.zeros((), np.float32)}, dict(dtype=TP.DOUBLE), 1),
    ("Bernoulli", {"p": np.full((3, 5), 0.5, np.float32)}, {}, 15),
    ("Bernoulli", {"p": np.full((6,), 0.5, np.float64)}, dict(dtype=TP.BOOL), 21),
    ("Bernoulli", {"p": np.full((2, 2), 0.5, np.float32)}, dict(dtype=TP.INT64), 15),
    ("Multinomial", {"x": np.zeros((3, 5), np.float32)}, dict(sample_size=4), 7),
    ("Multinomial", {"x": np.zeros((1, 2), np.float32)}, dict(sample_size=6, dtype=TP.INT64), 21),
]


@pytest.mark.parametrize("op_type, feeds, attrs, opset", ORT_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(ORT_CASES)])
def test_shapes_and_types_match_onnxruntime(op_type, feeds, attrs, opset):
    model = _model(op_type, feeds, attrs, opset)
    (want,) = _ort_session(model).run(None, feeds)
    got = InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    assert got.shape == want.shape and got.dtype == want.dtype


INFERRED_CASES = [  # what onnxruntime lacks: opset 22, float16, more output types
    ("RandomNormal", {}, dict(shape=[2, 3], dtype=TP.FLOAT16)),
    ("RandomUniform", {}, dict(shape=[4], dtype=TP.DOUBLE)),
    ("RandomNormalLike", {"x": np.zeros((2, 3), np.int32)}, dict(dtype=TP.FLOAT16)),
    ("RandomUniformLike", {"x": np.zeros((2, 3), np.float16)}, {}),
    ("Bernoulli", {"p": np.full((2, 3), 0.5, np.float16)}, {}),
    ("Bernoulli", {"p": np.full((2, 3), 0.5, np.float16)}, dict(dtype=TP.UINT16)),
    ("Multinomial", {"x": np.zeros((2, 3), np.float64)}, dict(dtype=TP.INT64, sample_size=4)),
    ("Multinomial", {"x": np.zeros((3, 2), np.float16)}, {}),
]


@pytest.mark.parametrize("op_type, feeds, attrs", INFERRED_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(INFERRED_CASES)])
def test_shapes_and_types_match_onnx_shape_inference(op_type, feeds, attrs):
    dtype, shape = _inferred(op_type, feeds, attrs, 22)
    got = _pve(op_type, feeds, attrs, 22)
    assert got.dtype == dtype and got.shape == shape


# --------------------------------------------------------------------------- seeds
SEED_CASES = [
    ("RandomNormalLike", {"x": np.zeros((3, 4), np.float32)}, {}),
    ("RandomUniformLike", {"x": np.zeros((5,), np.float32)}, dict(low=2.0, high=4.0)),
    ("Bernoulli", {"x": np.full((64,), 0.5, np.float32)}, {}),
    ("Multinomial", {"x": np.zeros((2, 5), np.float32)}, dict(sample_size=16)),
]


def _three_runs(make_session, feeds):
    """Runs 1 and 2 of one session and run 1 of a second one."""
    first, second = make_session(), make_session()
    return (first.run(None, feeds)[0], first.run(None, feeds)[0], second.run(None, feeds)[0])


def _pve_session(model):
    return lambda: InferenceSession(model.SerializeToString())


def _ort_maker(model):
    return lambda: _ort_session(model)


@pytest.mark.parametrize("op_type, feeds, attrs", SEED_CASES, ids=[c[0] for c in SEED_CASES])
@pytest.mark.parametrize("engine", ["pve", "onnxruntime"])
def test_seeded_node_repeats_per_session_and_moves_on_per_run(op_type, feeds, attrs, engine):
    """Seeded: run 1 equal in every session; run 2 new values (the stream goes on)."""
    model = _model(op_type, feeds, dict(attrs, seed=4.0), 15 if op_type == "Bernoulli" else 7)
    maker = _pve_session(model) if engine == "pve" else _ort_maker(model)
    run1, run2, other_run1 = _three_runs(maker, feeds)
    np.testing.assert_array_equal(run1, other_run1)
    assert not np.array_equal(run1, run2)
    first = maker()
    np.testing.assert_array_equal(first.run(None, feeds)[0], run1)
    np.testing.assert_array_equal(first.run(None, feeds)[0], run2)


@pytest.mark.parametrize("op_type, feeds, attrs", SEED_CASES, ids=[c[0] for c in SEED_CASES])
def test_unseeded_node_draws_fresh_values(op_type, feeds, attrs):
    model = _model(op_type, feeds, attrs, 15 if op_type == "Bernoulli" else 7)
    run1, run2, other_run1 = _three_runs(_pve_session(model), feeds)
    assert not np.array_equal(run1, run2)
    assert not np.array_equal(run1, other_run1)


def test_different_seeds_draw_different_values():
    x = {"x": np.zeros((10,), np.float32)}
    a = _pve("RandomNormalLike", x, dict(seed=1.0))
    b = _pve("RandomNormalLike", x, dict(seed=2.0))
    c = _pve("RandomNormalLike", x, dict(seed=1.0))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("op_type", ["RandomNormal", "RandomUniform"])
def test_generator_state_per_node_at_operator_level(op_type):
    """The operator itself (one node = one attribute dict): seeded, each call moves the
    stream on and a new node starts it again; unseeded nodes differ."""
    fn = OPS[op_type]
    node = {"shape": [6], "seed": 8.0}
    a, b = fn(node, 22, [])[0], fn(node, 22, [])[0]
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(fn({"shape": [6], "seed": 8.0}, 22, [])[0], a)
    assert not np.array_equal(fn({"shape": [6]}, 22, [])[0], fn({"shape": [6]}, 22, [])[0])


@pytest.mark.parametrize("op_type", ["RandomNormal", "RandomUniform"])
def test_input_free_generators_draw_at_each_run(op_type):
    """Not folded as constants at load: each run draws anew; a seeded node's first run
    is the same in every session (onnxruntime's behaviour, checked above)."""
    model = _model(op_type, {}, dict(shape=[8]), 21).SerializeToString()
    sess = InferenceSession(model)
    assert not np.array_equal(sess.run(None, {})[0], sess.run(None, {})[0])
    seeded = _model(op_type, {}, dict(shape=[8], seed=3.0), 21).SerializeToString()
    first, again = InferenceSession(seeded), InferenceSession(seeded)
    a = first.run(None, {})[0]
    np.testing.assert_array_equal(again.run(None, {})[0], a)
    assert not np.array_equal(first.run(None, {})[0], a)


# --------------------------------------------------------------------------- errors
ERRORS = [
    ("RandomNormal", {}, dict(shape=[3], dtype=TP.INT32), "dtype tensor\\(int32\\)"),
    ("RandomNormal", {}, dict(shape=[3], dtype=TP.FLOAT8E4M3FN),
     "dtype tensor\\(float8e4m3fn\\)|dtype data type 17"),
    ("RandomUniform", {}, dict(shape=[3], dtype=TP.BOOL), "dtype tensor\\(bool\\)"),
    ("RandomNormal", {}, dict(shape=[2, -1]), "negative dimension"),
    ("RandomNormal", {}, {}, "shape attribute is required"),
    ("RandomNormal", {}, dict(shape=[3], scale=-1.0), "scale .* >= 0"),
    ("RandomUniform", {}, dict(shape=[3], low=2.0, high=1.0), "low must be <= high"),
    ("RandomUniformLike", {"x": np.zeros(3, np.int32)}, {}, "input is int32"),
    ("RandomNormalLike", {"x": np.zeros(3, np.float32)}, dict(dtype=TP.INT64),
     "dtype tensor\\(int64\\)"),
    ("Bernoulli", {"p": np.array([0.5, 1.5], np.float32)}, {}, "in \\[0, 1\\]"),
    ("Bernoulli", {"p": np.array([np.nan], np.float32)}, {}, "in \\[0, 1\\]"),
    ("Bernoulli", {"p": np.array([1, 0], np.int32)}, {}, "must be a float type"),
    ("Multinomial", {"x": np.zeros(3, np.float32)}, {}, "\\(batch_size, class_size\\)"),
    ("Multinomial", {"x": np.zeros((1, 2, 3), np.float32)}, {}, "\\(batch_size, class_size\\)"),
    ("Multinomial", {"x": np.zeros((2, 0), np.float32)}, {}, "class_size >= 1"),
    ("Multinomial", {"x": np.zeros((2, 3), np.float32)},
     dict(sample_size=0), "sample_size must be >= 1"),
    ("Multinomial", {"x": np.zeros((2, 3), np.float32)},
     dict(sample_size=-4), "sample_size must be >= 1"),
    ("Multinomial", {"x": np.zeros((2, 3), np.float32)},
     dict(dtype=TP.FLOAT), "dtype tensor\\(float\\)"),
    ("Multinomial", {"x": np.array([[0, -np.inf], [-np.inf, -np.inf]], np.float32)}, {},
     "finite log-probabilities"),
    ("Multinomial", {"x": np.array([[0, np.nan]], np.float32)}, {}, "finite log-probabilities"),
    ("Multinomial", {"x": np.zeros((2, 3), np.int64)}, {}, "must be a float type"),
]


@pytest.mark.parametrize("op_type, feeds, attrs, message", ERRORS,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_errors_name_the_node(op_type, feeds, attrs, message):
    model = _model(op_type, feeds, attrs, 22, name="the_node").SerializeToString()
    with pytest.raises(ValueError, match=f"{op_type} node 'the_node': .*({message})"):
        InferenceSession(model).run(None, feeds)


def test_bfloat16_when_pve_onnx_holds_it():
    """bfloat16 draws (every one of these operators allows the type) once _proto.DTYPES
    has it; until then a clear error."""
    from pyvision_engine.onnx._ops import OnnxOpError
    from pyvision_engine.onnx._proto import DTYPES
    fn = OPS["RandomUniform"]
    attrs = {"shape": [100_000], "dtype": TP.BFLOAT16, "low": -2.0, "high": 2.0, "seed": 1.0}
    if TP.BFLOAT16 not in DTYPES:
        with pytest.raises(OnnxOpError, match="dtype tensor\\(bfloat16\\) is not an output type"):
            fn(attrs, 22, [])
        return
    (y,) = fn(attrs, 22, [])
    assert y.dtype == DTYPES[TP.BFLOAT16] and y.shape == (100_000,)
    values = y.astype(np.float64)
    assert values.min() >= -2 and values.max() <= 2
    _within(values.mean(), 0.0, 4 / np.sqrt(12 * values.size), "mean")
    (b,) = OPS["Bernoulli"]({"seed": 1.0}, 22, [np.full(50_000, 0.25).astype(y.dtype)])
    assert b.dtype == y.dtype
    _within(b.astype(np.float64).mean(), 0.25, np.sqrt(0.1875 / b.size), "frequency")
