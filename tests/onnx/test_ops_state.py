"""pve.onnx's stateful-decoding operators (pyvision_engine/onnx/_ops_state.py):
LinearAttention and CausalConvWithState (opset 27); and BitCast (opset 26, in _ops_misc).

- Against float64 numpy references written here from the specification's formulas:
  LinearAttention one query head and one token at a time with explicit outer products
  (the kv head of query head h is h // (q_num_heads / kv_num_heads)); the causal
  convolution as an explicit sum over the kernel taps with the state prepended.
- Against onnxruntime, which runs both operators through the specification's function
  bodies (given static input shapes), over update rules, grouped-query heads, decay and
  beta forms, past states, scales, kernel sizes, biases and activations.
- Properties: a sequence run in pieces, each piece's present_state fed as the next
  piece's past_state, gives the outputs and state of the whole sequence at once (prefill
  then token-by-token decode).
- BitCast: every same-width pair of the types pve.onnx holds against the bytes read back
  by numpy as little endian, and against onnxruntime (which has no bool BitCast).
- Errors name the node.

onnx builds the models; onnx and onnxruntime are test extras: tests that need one skip
and say so without it. The onnx backend node cases of the three operators run in
test_session.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pyvision_engine.onnx import InferenceSession
from pyvision_engine.onnx._proto import DTYPES

onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the test models")
from onnx import TensorProto as TP  # noqa: E402
from onnx import helper  # noqa: E402

RNG = np.random.default_rng(27)


def _model(op_type, feeds, attrs, opset, outputs, static=True, name="the_node"):
    """A one-node model; a feed named '_...' is an omitted optional input. ``static``:
    the inputs' shapes are written in the graph (onnxruntime's function bodies need them)."""
    inputs = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype),
                                            v.shape if static else None)
              for k, v in feeds.items() if not k.startswith("_")]
    names = ["" if k.startswith("_") else k for k in feeds]
    while names and not names[-1]:
        names.pop()
    node = helper.make_node(op_type, names, [f"y{i}" for i in range(outputs)], name=name, **attrs)
    graph = helper.make_graph([node], "g", inputs,
                              [onnx.ValueInfoProto(name=f"y{i}") for i in range(outputs)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model.SerializeToString()


def _feeds(feeds):
    return {k: v for k, v in feeds.items() if not k.startswith("_")}


def _pve(op_type, feeds, attrs, opset=27, outputs=2):
    sess = InferenceSession(_model(op_type, feeds, attrs, opset, outputs))
    return sess.run(None, _feeds(feeds))


def _ort(op_type, feeds, attrs, opset=27, outputs=2):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is the reference")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(_model(op_type, feeds, attrs, opset, outputs), options,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, _feeds(feeds))


# --------------------------------------------------------------------------- LinearAttention
def ref_linear_attention(q, k, v, past=None, decay=None, beta=None, q_heads=1, kv_heads=1,
                         rule="gated_delta", scale=0.0):
    """The specification's recurrence in float64, one query head and one token at a time:
    S_t = exp(g_t) S_{t-1} (gated), then S_t += beta_t k_t (v_t - S^T k_t)^T (delta rules,
    with the decayed S) or S_t += k_t v_t^T; o_t = scale q_t^T S_t."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    b, t, _ = q.shape
    d_k, d_v = q.shape[2] // q_heads, v.shape[2] // kv_heads
    group = q_heads // kv_heads
    scale = scale or 1.0 / np.sqrt(d_k)
    out = np.zeros((b, t, q_heads * d_v))
    present = np.zeros((b, kv_heads, d_k, d_v))
    for n in range(b):
        for h in range(q_heads):
            j = h // group  # the kv head this query head reads
            s = np.zeros((d_k, d_v)) if past is None else np.asarray(past[n, j], np.float64)
            for i in range(t):
                k_t = k[n, i, j * d_k:(j + 1) * d_k]
                v_t = v[n, i, j * d_v:(j + 1) * d_v]
                if decay is not None:
                    g = np.asarray(decay[n, i], np.float64)
                    g = g[j] if g.size == kv_heads else g[j * d_k:(j + 1) * d_k]
                    s = (np.exp(g) * np.ones(d_k))[:, None] * s
                if beta is not None:
                    r = np.asarray(beta[n, i], np.float64)
                    rate = r[0] if r.size == 1 else r[j]
                    s = s + rate * np.outer(k_t, v_t - s.T @ k_t)
                else:
                    s = s + np.outer(k_t, v_t)
                out[n, i, h * d_v:(h + 1) * d_v] = scale * (q[n, i, h * d_k:(h + 1) * d_k] @ s)
            present[n, j] = s  # (every query head of a group computes the same state)
    return out, present


def _la_inputs(b, t, q_heads, kv_heads, d_k, d_v, rule, decay_form, beta_form, past,
               dtype=np.float32):
    def arr(*shape, low=None):
        return RNG.standard_normal(shape).astype(dtype)
    q = arr(b, t, q_heads * d_k)
    k = arr(b, t, kv_heads * d_k)
    if rule in ("delta", "gated_delta"):  # keys L2-normalized per head, as the spec asks
        k4 = k.reshape(b, t, kv_heads, d_k).astype(np.float64)
        k = (k4 / np.linalg.norm(k4, axis=-1, keepdims=True)).reshape(k.shape).astype(dtype)
    v = arr(b, t, kv_heads * d_v)
    feeds = {"query": q, "key": k, "value": v}
    feeds["past_state" if past else "_past"] = (
        RNG.standard_normal((b, kv_heads, d_k, d_v)).astype(dtype) if past else None)
    if rule in ("gated", "gated_delta"):
        n = kv_heads if decay_form == "head" else kv_heads * d_k
        feeds["decay"] = np.log(RNG.uniform(0.6, 0.99, (b, t, n))).astype(dtype)
    else:
        feeds["_decay"] = None
    if rule in ("delta", "gated_delta"):
        n = kv_heads if beta_form == "head" else 1
        feeds["beta"] = RNG.uniform(0.1, 0.9, (b, t, n)).astype(dtype)
    return feeds


def _la_reference(feeds, attrs):
    return ref_linear_attention(
        feeds["query"], feeds["key"], feeds["value"], feeds.get("past_state"),
        feeds.get("decay"), feeds.get("beta"), attrs["q_num_heads"], attrs["kv_num_heads"],
        attrs.get("update_rule", "gated_delta"), attrs.get("scale", 0.0))


# (b, t, q_heads, kv_heads, d_k, d_v)
LA_SHAPES = [(2, 5, 2, 2, 4, 4), (1, 7, 4, 2, 8, 6), (2, 3, 6, 1, 4, 8), (3, 1, 2, 2, 5, 3)]
LA_CONFIGS = [(rule, decay_form, beta_form)
              for rule in ("linear", "gated", "delta", "gated_delta")
              for decay_form in (("head", "key") if "gated" in rule else ("-",))
              for beta_form in (("head", "shared") if "delta" in rule else ("-",))]


@pytest.mark.parametrize("shape", LA_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("rule, decay_form, beta_form", LA_CONFIGS,
                         ids=["-".join(c) for c in LA_CONFIGS])
@pytest.mark.parametrize("past", [False, True], ids=["zeros", "past"])
def test_linear_attention_matches_float64_reference_and_onnxruntime(shape, rule, decay_form,
                                                                   beta_form, past):
    b, t, hq, hkv, d_k, d_v = shape
    feeds = _la_inputs(b, t, hq, hkv, d_k, d_v, rule, decay_form, beta_form, past)
    attrs = dict(q_num_heads=hq, kv_num_heads=hkv, update_rule=rule)
    out, state = _pve("LinearAttention", feeds, attrs)
    want_out, want_state = _la_reference(feeds, attrs)
    assert out.shape == want_out.shape and out.dtype == np.float32
    assert state.shape == want_state.shape and state.dtype == np.float32
    # float32 arithmetic over t steps of d_k-long sums, against float64
    np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state, want_state, rtol=1e-5, atol=1e-5)
    ort_out, ort_state = _ort("LinearAttention", feeds, attrs)
    np.testing.assert_allclose(out, ort_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state, ort_state, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [0.0, 0.3, -1.25])
@pytest.mark.parametrize("rule", ["linear", "gated_delta"])
def test_linear_attention_scale(scale, rule):
    feeds = _la_inputs(2, 4, 4, 2, 6, 6, rule, "key", "head", True)
    attrs = dict(q_num_heads=4, kv_num_heads=2, update_rule=rule, scale=scale, chunk_size=2)
    out, state = _pve("LinearAttention", feeds, attrs)
    want_out, want_state = _la_reference(feeds, attrs)
    np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state, want_state, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out, _ort("LinearAttention", feeds, attrs)[0], rtol=1e-5,
                               atol=1e-5)


def test_linear_attention_default_rule_is_gated_delta():
    feeds = _la_inputs(1, 3, 2, 2, 4, 4, "gated_delta", "head", "head", False)
    attrs = dict(q_num_heads=2, kv_num_heads=2)
    out, state = _pve("LinearAttention", feeds, attrs)
    want_out, want_state = _la_reference(feeds, attrs)
    np.testing.assert_allclose(out, want_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state, want_state, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rule", ["linear", "gated", "delta", "gated_delta"])
def test_linear_attention_prefill_then_decode_equals_one_pass(rule):
    """Prefill 4 tokens, then decode 3 one at a time carrying present_state: the same
    outputs and final state as the 7 tokens at once."""
    feeds = _la_inputs(2, 7, 4, 2, 4, 5, rule, "key", "shared", False)
    attrs = dict(q_num_heads=4, kv_num_heads=2, update_rule=rule)
    whole_out, whole_state = _pve("LinearAttention", feeds, attrs)
    pieces, state = [], None
    for lo, hi in ((0, 4), (4, 5), (5, 6), (6, 7)):
        part = {}
        for name, value in feeds.items():
            if name in ("_past", "past_state"):
                part["past_state" if state is not None else "_past"] = state
            else:
                part[name] = None if value is None else value[:, lo:hi]
        out, state = _pve("LinearAttention", part, attrs)
        pieces.append(out)
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole_out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(state, whole_state, rtol=1e-6, atol=1e-6)


def test_linear_attention_float16():
    feeds = _la_inputs(2, 4, 4, 2, 8, 8, "gated_delta", "key", "head", True, np.float16)
    attrs = dict(q_num_heads=4, kv_num_heads=2, update_rule="gated_delta")
    out, state = _pve("LinearAttention", feeds, attrs)
    assert out.dtype == np.float16 and state.dtype == np.float16
    want_out, want_state = _la_reference(feeds, attrs)
    # float32 work on the float16 inputs, rounded once to float16: within one float16 step
    for got, want in ((out, want_out), (state, want_state)):
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=2.0 ** -10,
                                   atol=1e-6 * np.abs(want).max())


def test_linear_attention_state_keeps_the_past_state_type():
    """A float32 state with float16 activations: present_state stays float32 (the type S
    of past_state, as the reference gives it)."""
    feeds = _la_inputs(1, 3, 2, 2, 4, 4, "linear", "-", "-", False, np.float16)
    feeds.pop("_past")
    past = RNG.standard_normal((1, 2, 4, 4)).astype(np.float32)
    feeds = {"query": feeds["query"], "key": feeds["key"], "value": feeds["value"],
             "past_state": past}
    attrs = dict(q_num_heads=2, kv_num_heads=2, update_rule="linear")
    out, state = _pve("LinearAttention", feeds, attrs)
    assert out.dtype == np.float16 and state.dtype == np.float32
    want_out, want_state = _la_reference(feeds, attrs)
    np.testing.assert_allclose(state, want_state, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.astype(np.float64), want_out, rtol=2.0 ** -10,
                               atol=1e-6 * np.abs(want_out).max())


def _la_error_feeds(change):
    """Valid gated_delta inputs (B 2, T 3, 4 query / 2 kv heads, d 4) with ``change``
    applied; a None value omits that input."""
    feeds = _la_inputs(2, 3, 4, 2, 4, 4, "gated_delta", "head", "head", False)
    named = {"query": feeds["query"], "key": feeds["key"], "value": feeds["value"],
             "past_state": None, "decay": feeds["decay"], "beta": feeds["beta"]}
    named.update(change)
    return {(k if v is not None else "_" + k): v for k, v in named.items()}


LA_ERRORS = [
    (dict(q_num_heads=3, kv_num_heads=2), {}, "positive multiple of kv_num_heads"),
    (dict(q_num_heads=4), {}, "q_num_heads and kv_num_heads attributes are required"),
    (dict(q_num_heads=4, kv_num_heads=2, update_rule="softmax"), {}, "update_rule must be one of"),
    (dict(q_num_heads=4, kv_num_heads=2, update_rule="linear"), {}, "takes no decay input"),
    (dict(q_num_heads=4, kv_num_heads=2, update_rule="gated_delta"), {"decay": None},
     "requires the decay input"),
    (dict(q_num_heads=4, kv_num_heads=2, update_rule="gated_delta"),
     {"beta": np.ones((2, 3, 3), np.float32)}, "beta must have shape"),
    (dict(q_num_heads=4, kv_num_heads=2, update_rule="gated_delta"),
     {"decay": np.zeros((2, 3, 5), np.float32)}, "decay must have shape"),
    (dict(q_num_heads=4, kv_num_heads=2), {"query": np.ones((2, 3, 4, 4), np.float32)},
     "query must be rank 3"),
    (dict(q_num_heads=4, kv_num_heads=2), {"key": np.ones((2, 3, 6), np.float32)},
     "do not match query"),
    (dict(q_num_heads=4, kv_num_heads=2), {"value": np.ones((2, 3, 7), np.float32)},
     "not a multiple of its 2 heads"),
    (dict(q_num_heads=4, kv_num_heads=2), {"past_state": np.ones((2, 2, 4, 5), np.float32)},
     "past_state must have shape"),
    (dict(q_num_heads=4, kv_num_heads=2), {"value": np.ones((2, 3, 8), np.float64)},
     "value must be float16, float or bfloat16"),
]


@pytest.mark.parametrize("attrs, change, message", LA_ERRORS,
                         ids=[str(i) for i in range(len(LA_ERRORS))])
def test_linear_attention_errors_name_the_node(attrs, change, message):
    feeds = _la_error_feeds(change)
    with pytest.raises(ValueError, match=f"LinearAttention node 'the_node': .*{message}"):
        InferenceSession(_model("LinearAttention", feeds, attrs, 27, 2, static=False)).run(
            None, _feeds(feeds))


# --------------------------------------------------------------------------- CausalConvWithState
def ref_causal_conv(x, weight, bias=None, past=None, activation="none"):
    """Float64: y[n, c, t] = sum_j w[c, 0, j] * p[n, c, t + j] + bias[c] over p = the
    past (zeros when absent) followed by x; silu / swish y * sigmoid(y); the state is the
    last k - 1 positions of p."""
    x = np.asarray(x, np.float64)
    n, c, length = x.shape
    k = weight.shape[2]
    p = np.zeros((n, c, k - 1)) if past is None else np.asarray(past, np.float64)
    p = np.concatenate([p, x], axis=2)
    y = np.zeros((n, c, length))
    for t in range(length):
        for j in range(k):
            y[:, :, t] += weight[:, 0, j].astype(np.float64) * p[:, :, t + j]
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None]
    if activation in ("silu", "swish"):
        y = y / (1 + np.exp(-y))
    return y, p[:, :, p.shape[2] - (k - 1):]


def _conv_feeds(n, c, length, k, bias, past, dtype=np.float32):
    feeds = {"input": RNG.standard_normal((n, c, length)).astype(dtype),
             "weight": RNG.standard_normal((c, 1, k)).astype(dtype)}
    feeds["bias" if bias else "_bias"] = RNG.standard_normal(c).astype(dtype) if bias else None
    if past:
        feeds["past_state"] = RNG.standard_normal((n, c, k - 1)).astype(dtype)
    return feeds


# (batch, channels, length, k): k = 1 (no state), length < k - 1, decode (length 1)
CONV_SHAPES = [(2, 4, 8, 4), (1, 3, 6, 1), (2, 5, 2, 5), (3, 2, 1, 3), (1, 6, 16, 2)]


@pytest.mark.parametrize("shape", CONV_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("past", [False, True], ids=["zeros", "past"])
@pytest.mark.parametrize("activation", ["none", "silu", "swish"])
def test_causal_conv_matches_float64_reference_and_onnxruntime(shape, bias, past, activation):
    feeds = _conv_feeds(*shape, bias, past)
    attrs = {"activation": activation}
    y, state = _pve("CausalConvWithState", feeds, attrs)
    want_y, want_state = ref_causal_conv(feeds["input"], feeds["weight"], feeds.get("bias"),
                                         feeds.get("past_state"), activation)
    assert y.shape == want_y.shape and y.dtype == np.float32
    assert state.shape == want_state.shape and state.dtype == np.float32
    np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(state, want_state.astype(np.float32))  # (copied values)
    ort_y, ort_state = _ort("CausalConvWithState", feeds, attrs)
    np.testing.assert_allclose(y, ort_y, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(state, ort_state)


def test_causal_conv_streaming_equals_one_pass():
    """Prefill 5 positions, then 1, 1 and 3 more carrying present_state: the same as 10 at
    once."""
    n, c, length, k = 2, 3, 10, 4
    x = RNG.standard_normal((n, c, length)).astype(np.float32)
    weight = RNG.standard_normal((c, 1, k)).astype(np.float32)
    bias = RNG.standard_normal(c).astype(np.float32)
    attrs = {"activation": "silu"}
    whole, whole_state = _pve("CausalConvWithState",
                              {"input": x, "weight": weight, "bias": bias}, attrs)
    pieces, state = [], np.zeros((n, c, k - 1), np.float32)
    for lo, hi in ((0, 5), (5, 6), (6, 7), (7, 10)):
        y, state = _pve("CausalConvWithState", {"input": x[:, :, lo:hi], "weight": weight,
                                                "bias": bias, "past_state": state}, attrs)
        pieces.append(y)
    np.testing.assert_allclose(np.concatenate(pieces, axis=2), whole, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(state, whole_state)


@pytest.mark.parametrize("activation", ["none", "silu"])
def test_causal_conv_float16(activation):
    feeds = _conv_feeds(2, 4, 8, 4, True, True, np.float16)
    y, state = _pve("CausalConvWithState", feeds, {"activation": activation})
    assert y.dtype == np.float16 and state.dtype == np.float16
    want_y, want_state = ref_causal_conv(feeds["input"], feeds["weight"], feeds["bias"],
                                         feeds["past_state"], activation)
    # the convolution rounded to float16, then (silu) computed in float32 and rounded
    # again, as the function body: within two float16 steps of the float64 value
    np.testing.assert_allclose(y.astype(np.float64), want_y, rtol=2 * 2.0 ** -10,
                               atol=2.0 ** -14)
    np.testing.assert_array_equal(state, want_state.astype(np.float16))


CONV_ERRORS = [
    ({"input": np.ones((2, 4), np.float32)}, {}, "input must be rank 3"),
    ({"weight": np.ones((4, 2, 3), np.float32)}, {}, "weight must have shape"),
    ({"weight": np.ones((5, 1, 3), np.float32)}, {}, "weight must have shape"),
    ({"weight": np.ones((4, 1, 0), np.float32)}, {}, "k >= 1"),
    ({"bias": np.ones(3, np.float32)}, {}, "bias must have shape"),
    ({"past_state": np.ones((2, 4, 3), np.float32)}, {}, "past_state must have shape"),
    ({}, {"activation": "gelu"}, "activation must be one of"),
    ({"weight": np.ones((4, 1, 3), np.float16)}, {}, "weight is float16 but input is float32"),
    ({"input": np.ones((2, 4, 5), np.float64), "weight": np.ones((4, 1, 3), np.float64)}, {},
     "input must be float16, float or bfloat16"),
]


@pytest.mark.parametrize("change, attrs, message", CONV_ERRORS,
                         ids=[str(i) for i in range(len(CONV_ERRORS))])
def test_causal_conv_errors_name_the_node(change, attrs, message):
    feeds = {"input": np.ones((2, 4, 5), np.float32), "weight": np.ones((4, 1, 3), np.float32),
             "bias": np.ones(4, np.float32)}
    feeds.update(change)
    with pytest.raises(ValueError, match=f"CausalConvWithState node 'the_node': .*{message}"):
        InferenceSession(_model("CausalConvWithState", feeds, attrs, 27, 2, static=False)).run(
            None, _feeds(feeds))


# --------------------------------------------------------------------------- BitCast
NUMPY_TYPES = [np.dtype(t) for t in (np.float32, np.uint8, np.int8, np.uint16, np.int16, np.int32,
                                     np.int64, np.bool_, np.float16, np.float64, np.uint32,
                                     np.uint64)]
CODES = {t: helper.np_dtype_to_tensor_dtype(t) for t in NUMPY_TYPES}
PAIRS = [(a, b) for a, b in itertools.product(NUMPY_TYPES, NUMPY_TYPES)
         if a.itemsize == b.itemsize]


def _bit_patterns(dtype, shape=(3, 5)):
    """Random bytes (NaN and infinity patterns included for floats); bool 0 / 1."""
    if dtype == np.bool_:
        return RNG.random(shape) < 0.5
    raw = RNG.integers(0, 256, size=int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8)
    return np.frombuffer(raw.tobytes(), dtype.newbyteorder("<")).astype(dtype).reshape(shape)


@pytest.mark.parametrize("source, target", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_bitcast_reads_the_same_bytes(source, target):
    if target == np.bool_ and source != np.bool_:
        x = (RNG.random((3, 5)) < 0.5).astype(source)  # (only bytes 0 and 1 are bools)
    else:
        x = _bit_patterns(source)
    (y,) = _pve("BitCast", {"x": x}, {"to": CODES[target]}, opset=26, outputs=1)
    assert y.shape == x.shape and y.dtype == target
    want = np.frombuffer(x.astype(source.newbyteorder("<")).tobytes(), target.newbyteorder("<"))
    assert y.astype(target.newbyteorder("<")).tobytes() == want.tobytes()


ORT_PAIRS = [(a, b) for a, b in PAIRS if np.bool_ not in (a, b)]  # (no bool BitCast there)


@pytest.mark.parametrize("source, target", ORT_PAIRS, ids=[f"{a}-{b}" for a, b in ORT_PAIRS])
def test_bitcast_matches_onnxruntime(source, target):
    x = _bit_patterns(source, (2, 3, 4))
    (y,) = _pve("BitCast", {"x": x}, {"to": CODES[target]}, opset=26, outputs=1)
    (want,) = _ort("BitCast", {"x": x}, {"to": CODES[target]}, opset=26, outputs=1)
    assert y.dtype == want.dtype and y.shape == want.shape
    assert y.tobytes() == want.tobytes()


def test_bitcast_of_a_strided_view():
    x = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    sess = InferenceSession(_model("BitCast", {"x": x}, {"to": TP.INT32}, 26, 1))
    (y,) = sess.run(None, {"x": x})
    np.testing.assert_array_equal(y, np.ascontiguousarray(x).view(np.int32))


BITCAST_ERRORS = [
    (np.ones(3, np.float32), {"to": TP.INT64}, "widths must be equal"),
    (np.ones(3, np.int64), {"to": TP.COMPLEX64}, "is not a type pve.onnx holds"),
    (np.ones(3, np.int8), {"to": TP.STRING}, "tensor\\(string\\) is not a type"),
    (np.array([0, 1, 2], np.uint8), {"to": TP.BOOL}, "byte other than 0 or 1"),
    (np.ones(3, np.int32), {}, "to attribute is required"),
]


@pytest.mark.parametrize("x, attrs, message", BITCAST_ERRORS,
                         ids=[str(i) for i in range(len(BITCAST_ERRORS))])
def test_bitcast_errors_name_the_node(x, attrs, message):
    with pytest.raises(ValueError, match=f"BitCast node 'the_node': .*{message}"):
        InferenceSession(_model("BitCast", {"x": x}, attrs, 26, 1, static=False)).run(
            None, {"x": x})


# the narrow types, once pve.onnx holds them (_proto.DTYPES: ml_dtypes' types), at the
# operator itself: (source code, target code, the target's values from the source's).
# (int2 and uint2 by their codes: onnx < 1.20, the last for Python 3.9, has no names for them)
INT2, UINT2 = getattr(TP, "INT2", 26), getattr(TP, "UINT2", 25)
NARROW = [
    (TP.INT16, TP.BFLOAT16, None), (TP.BFLOAT16, TP.FLOAT16, None),
    (TP.UINT8, TP.FLOAT8E4M3FN, None), (TP.FLOAT8E5M2, TP.INT8, None),
    (TP.INT4, TP.UINT4, lambda v: v % 16), (TP.UINT4, TP.INT4, lambda v: (v + 8) % 16 - 8),
    (INT2, UINT2, lambda v: v % 4), (TP.UINT4, TP.FLOAT4E2M1, None),
]


@pytest.mark.parametrize("source, target, values", NARROW,
                         ids=[f"{a}-{b}" for a, b, _ in NARROW])
def test_bitcast_narrow_types(source, target, values):
    if source not in DTYPES or target not in DTYPES:
        pytest.skip("pve.onnx does not hold these types (yet): _proto.DTYPES lacks them")
    from pyvision_engine.onnx._ops import OPS
    width = {TP.INT4: 4, TP.UINT4: 4, TP.FLOAT4E2M1: 4, INT2: 2, UINT2: 2}.get(source)
    if width:  # every bit pattern of the width, one per byte as ml_dtypes holds them
        x = np.arange(2 ** width, dtype=np.uint8).view(DTYPES[source])
    else:
        raw = np.dtype(np.uint8 if DTYPES[source].itemsize == 1 else np.uint16)
        x = _bit_patterns(raw).view(DTYPES[source])
    (y,) = OPS["BitCast"]({"to": target}, 26, [x])
    assert y.dtype == DTYPES[target] and y.shape == x.shape
    if values is not None:
        np.testing.assert_array_equal(y.astype(np.int64), values(x.astype(np.int64)))
    else:
        assert y.tobytes() == x.tobytes()


def test_bitcast_refuses_different_bit_widths_of_narrow_types():
    if TP.INT4 not in DTYPES:
        pytest.skip("pve.onnx does not hold int4 (yet): _proto.DTYPES lacks it")
    from pyvision_engine.onnx._ops import OPS, OnnxOpError
    with pytest.raises(OnnxOpError, match="uint8 \\(8 bits\\) cannot be read as int4 \\(4 bits\\)"):
        OPS["BitCast"]({"to": TP.INT4}, 26, [np.zeros(3, np.uint8)])
