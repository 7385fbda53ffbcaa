"""pve.onnx RNN, GRU and LSTM (pyvision_engine/onnx/_ops_rnn.py) against independent
references.

- A plain float64 numpy reference written here from the specification's equations: one
  batch row and one time step at a time, each direction walking its own sequence (a
  reverse direction from the row's last valid step), every activation written out. It
  checks float64 and float16 graphs, opset 1/3 nodes and attribute defaults that
  onnxruntime reads differently or does not run.
- onnxruntime on the same single-node models, random float32 inputs: every direction and
  layout with and without the optional inputs and with variable sequence lengths, the
  activation functions with activation_alpha/beta, clip, input_forget,
  linear_before_reset, the opset versions and subsets of the outputs.
- torch: nn.RNN / GRU / LSTM (2 layers, bidirectional, batch_first) and a small CRNN
  (convolutions -> columns -> bidirectional LSTM -> linear) exported with
  torch.onnx.export, run by pve.onnx, equal torch's outputs.
- Errors: W / R / B / initial state shapes, hidden_size, sequence_lens, activations.

The onnx backend node cases of the three operators run in tests/onnx/test_session.py.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from pyvision_engine.onnx import InferenceSession, _ops

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
DEFAULT_ACTS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}


# ------------------------------------------------------------------ the numpy reference
def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


# name -> (function of (x, alpha, beta), uses alpha, uses beta, default alpha, beta):
# the specification's formulas one scalar at a time; defaults those of the ONNX operator
# of the same name (ThresholdedRelu 1.0, not onnxruntime's 0), Affine/ScaledTanh 0
_REF_ACTS = {
    "Relu": (lambda v, a, b: max(v, 0.0), False, False, 0.0, 0.0),
    "Tanh": (lambda v, a, b: math.tanh(v), False, False, 0.0, 0.0),
    "Sigmoid": (lambda v, a, b: _sigmoid(v), False, False, 0.0, 0.0),
    "Affine": (lambda v, a, b: a * v + b, True, True, 0.0, 0.0),
    "LeakyRelu": (lambda v, a, b: v if v >= 0 else a * v, True, False, 0.01, 0.0),
    "ThresholdedRelu": (lambda v, a, b: v if v >= a else 0.0, True, False, 1.0, 0.0),
    "ScaledTanh": (lambda v, a, b: a * math.tanh(b * v), True, True, 0.0, 0.0),
    "HardSigmoid": (lambda v, a, b: min(max(a * v + b, 0.0), 1.0), True, True, 0.2, 0.5),
    "Elu": (lambda v, a, b: v if v >= 0 else a * (math.exp(v) - 1), True, False, 1.0, 0.0),
    "Softsign": (lambda v, a, b: v / (1 + abs(v)), False, False, 0.0, 0.0),
    "Softplus": (lambda v, a, b: max(v, 0.0) + math.log1p(math.exp(-abs(v))),  # (no overflow)
                 False, False, 0.0, 0.0),
}


def _ref_functions(names, alphas, betas):
    """One vectorized float64 function per name, alpha/beta consumed in order."""
    alphas, betas, out = list(alphas), list(betas), []
    for name in names:
        fn, ua, ub, a, b = _REF_ACTS[name]
        if ua and alphas:
            a = alphas.pop(0)
        if ub and betas:
            b = betas.pop(0)
        out.append(lambda v, fn=fn, a=a, b=b: np.array([fn(float(e), a, b) for e in v]))
    return out


def reference(op, x, w, r, b=None, lens=None, h0=None, c0=None, p=None, direction="forward",
              layout=0, activations=None, alpha=(), beta=(), clip=None, lbr=0,
              input_forget=0):
    """Y, Y_h (, Y_c) in float64, from the specification's equations."""
    x, w, r = (np.asarray(a, np.float64) for a in (x, w, r))
    if layout:
        x = x.transpose(1, 0, 2)
        h0 = None if h0 is None else np.asarray(h0).transpose(1, 0, 2)
        c0 = None if c0 is None else np.asarray(c0).transpose(1, 0, 2)
    steps, batch, _ = x.shape
    dirs, hidden = w.shape[0], r.shape[2]
    g = GATES[op]
    b = np.zeros((dirs, 2 * g * hidden)) if b is None else np.asarray(b, np.float64)
    names = activations or DEFAULT_ACTS[op] * dirs
    per = len(DEFAULT_ACTS[op])
    funcs = _ref_functions(names, alpha, beta)

    def cl(v):
        return v if clip is None else np.clip(v, -clip, clip)

    y = np.zeros((steps, dirs, batch, hidden))
    yh = np.zeros((dirs, batch, hidden))
    yc = np.zeros((dirs, batch, hidden))
    for d in range(dirs):
        f = funcs[d * per:(d + 1) * per]
        wd, rd = w[d], r[d]
        wb, rb = b[d, :g * hidden], b[d, g * hidden:]
        blk = [slice(k * hidden, (k + 1) * hidden) for k in range(g)]
        reverse = direction == "reverse" or d == 1
        for n in range(batch):
            length = steps if lens is None else int(lens[n])
            h = np.zeros(hidden) if h0 is None else np.asarray(h0[d, n], np.float64)
            c = np.zeros(hidden) if c0 is None else np.asarray(c0[d, n], np.float64)
            for t in (range(length - 1, -1, -1) if reverse else range(length)):
                xt = x[t, n]
                if op == "RNN":
                    h = f[0](cl(wd @ xt + rd @ h + wb + rb))
                elif op == "GRU":
                    z = f[0](cl(wd[blk[0]] @ xt + rd[blk[0]] @ h + wb[blk[0]] + rb[blk[0]]))
                    rg = f[0](cl(wd[blk[1]] @ xt + rd[blk[1]] @ h + wb[blk[1]] + rb[blk[1]]))
                    if lbr:
                        hh = f[1](cl(wd[blk[2]] @ xt + rg * (rd[blk[2]] @ h + rb[blk[2]])
                                     + wb[blk[2]]))
                    else:
                        hh = f[1](cl(wd[blk[2]] @ xt + rd[blk[2]] @ (rg * h) + rb[blk[2]]
                                     + wb[blk[2]]))
                    h = (1 - z) * hh + z * h
                else:
                    pi, po, pf = ((np.zeros(hidden),) * 3 if p is None else
                                  (np.asarray(p[d, k * hidden:(k + 1) * hidden], np.float64)
                                   for k in range(3)))
                    pre = [wd[s] @ xt + rd[s] @ h + wb[s] + rb[s] for s in blk]  # i o f c
                    i = f[0](cl(pre[0] + pi * c))
                    ft = 1 - i if input_forget else f[0](cl(pre[2] + pf * c))
                    c = ft * c + i * f[1](cl(pre[3]))
                    o = f[0](cl(pre[1] + po * c))
                    h = o * f[2](c)
                y[t, d, n] = h
            if length:  # (a sequence of length 0 has zero final states, as onnxruntime)
                yh[d, n], yc[d, n] = h, c
    if layout:
        y, yh, yc = y.transpose(2, 0, 1, 3), yh.transpose(1, 0, 2), yc.transpose(1, 0, 2)
    return [y, yh, yc] if op == "LSTM" else [y, yh]


# ------------------------------------------------------------------ random problems
def problem(op, seed=0, steps=5, batch=3, size=4, hidden=3, direction="forward", layout=0,
            optional=True, lens=None, peepholes=True, dtype=np.float32):
    """The operator's inputs by name (omitted optional ones are absent)."""
    rng = np.random.default_rng(seed)
    dirs, g = (2 if direction == "bidirectional" else 1), GATES[op]
    state = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
    feeds = {"X": rng.standard_normal((batch, steps, size) if layout else (steps, batch, size)),
             "W": rng.standard_normal((dirs, g * hidden, size)) * 0.6,
             "R": rng.standard_normal((dirs, g * hidden, hidden)) * 0.6}
    if optional:
        feeds["B"] = rng.standard_normal((dirs, 2 * g * hidden)) * 0.5
        feeds["initial_h"] = rng.standard_normal(state) * 0.5
        if op == "LSTM":
            feeds["initial_c"] = rng.standard_normal(state) * 0.5
            if peepholes:
                feeds["P"] = rng.standard_normal((dirs, 3 * hidden)) * 0.5
    feeds = {k: v.astype(dtype) for k, v in feeds.items()}
    if lens is not None:
        feeds["sequence_lens"] = np.asarray(lens, np.int32)
    return feeds


INPUT_NAMES = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]


def _positional(op, feeds):
    names = INPUT_NAMES[:8 if op == "LSTM" else 6]
    return [feeds.get(n) for n in names]


def _ref_call(op, feeds, attrs):
    kw = dict(b=feeds.get("B"), lens=feeds.get("sequence_lens"), h0=feeds.get("initial_h"),
              c0=feeds.get("initial_c"), p=feeds.get("P"),
              direction=attrs.get("direction", "forward"), layout=attrs.get("layout", 0),
              activations=attrs.get("activations"), alpha=attrs.get("activation_alpha", ()),
              beta=attrs.get("activation_beta", ()), clip=attrs.get("clip"),
              lbr=attrs.get("linear_before_reset", 0),
              input_forget=attrs.get("input_forget", 0))
    return reference(op, feeds["X"], feeds["W"], feeds["R"], **kw)


def _onnx_model(op, feeds, attrs, outputs=None, opset=22):
    onnx = pytest.importorskip("onnx", reason="onnx (a test extra) builds the test models")
    helper = onnx.helper
    outputs = outputs or (["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"])
    names = [n if n in feeds else "" for n in INPUT_NAMES[:8 if op == "LSTM" else 6]]
    while names and not names[-1]:
        names.pop()
    node = helper.make_node(op, names, outputs, **attrs)
    graph_inputs = [helper.make_tensor_value_info(
        n, helper.np_dtype_to_tensor_dtype(feeds[n].dtype), feeds[n].shape) for n in names if n]
    graph_outputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(
        feeds["X"].dtype), None) for n in outputs if n]
    graph = helper.make_graph([node], "rnn", graph_inputs, graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return model.SerializeToString()


def _run_both(op, feeds, attrs, outputs=None, opset=22):
    """pve.onnx's and onnxruntime's outputs of the single-node model. onnxruntime's CPU
    kernels refuse layout 1, so it runs the layout-0 model on transposed inputs then."""
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is the reference")
    data = _onnx_model(op, feeds, attrs, outputs, opset)
    ours = InferenceSession(data)
    got = ours.run(None, {i.name: feeds[i.name] for i in ours.get_inputs()})
    layout = attrs.get("layout", 0)
    if layout:
        swapped = {"X", "initial_h", "initial_c"}
        feeds = {k: v.transpose(1, 0, 2) if k in swapped else v for k, v in feeds.items()}
        data = _onnx_model(op, feeds, dict(attrs, layout=0), outputs, opset)
    theirs = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = theirs.run(None, {i.name: feeds[i.name] for i in theirs.get_inputs()})
    if layout:
        expected = [e.transpose(2, 0, 1, 3) if e.ndim == 4 else e.transpose(1, 0, 2)
                    for e in expected]
    return got, expected


def _assert_close(got, expected, rtol, atol):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


# float32 against onnxruntime: both accumulate in float32 (onnxruntime's sigmoid/tanh are
# MLAS's polynomial approximations, a few float32 ulps from exact)
F32 = dict(rtol=1e-5, atol=2e-6)

LENS = {"full": None, "variable": [5, 2, 0], "mixed": [3, 5, 1]}


# ------------------------------------------------------------------ against the numpy reference
@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("lens", list(LENS), ids=list(LENS))
def test_float64_matches_numpy_reference(op, direction, layout, lens):
    feeds = problem(op, direction=direction, layout=layout, lens=LENS[lens], dtype=np.float64)
    attrs = {"direction": direction, "layout": layout, "hidden_size": 3}
    got = _ops.OPS[op](attrs, 22, _positional(op, feeds))
    assert all(g.dtype == np.float64 for g in got)
    _assert_close(got, _ref_call(op, feeds, attrs), rtol=1e-12, atol=1e-13)


ALL_ACTS = ["Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu", "ScaledTanh",
            "HardSigmoid", "Elu", "Softsign", "Softplus"]


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("act", ALL_ACTS)
def test_each_activation_with_defaults_matches_numpy_reference(op, act):
    # each function in every slot of a bidirectional node, alpha/beta from the defaults
    # (ThresholdedRelu's is 1.0, the ONNX operator's: onnxruntime reads 0 here)
    per = len(DEFAULT_ACTS[op])
    names = ([act] + DEFAULT_ACTS[op][1:]) + (DEFAULT_ACTS[op][:per - 1] + [act])
    feeds = problem(op, direction="bidirectional", lens=[4, 5, 1], dtype=np.float64)
    attrs = {"direction": "bidirectional", "activations": names}
    got = _ops.OPS[op](attrs, 22, _positional(op, feeds))
    _assert_close(got, _ref_call(op, feeds, attrs), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_float16_runs_in_float32_and_rounds(op):
    feeds = problem(op, direction="bidirectional", lens=[5, 3, 4], dtype=np.float16)
    attrs = {"direction": "bidirectional", "hidden_size": 3, "clip": 1.5}
    got = _ops.OPS[op](attrs, 22, _positional(op, feeds))
    assert all(g.dtype == np.float16 for g in got)
    # float32 arithmetic, one rounding to float16 (2**-11 relative) at the end
    _assert_close([g.astype(np.float64) for g in got], _ref_call(op, feeds, attrs),
                  rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("op,opset", [("RNN", 1), ("RNN", 7), ("GRU", 1), ("GRU", 3),
                                      ("GRU", 7), ("LSTM", 1), ("LSTM", 7)])
def test_old_opsets(op, opset):
    # opset 1's output_sequence is accepted (Y is computed anyway); before opset 14 there
    # is no layout attribute: [seq, batch, ...] always
    feeds = problem(op, direction="reverse", lens=[2, 5, 4], dtype=np.float64)
    attrs = {"direction": "reverse"}
    if opset == 1:
        attrs["output_sequence"] = 1
    got = _ops.OPS[op](attrs, opset, _positional(op, feeds))
    _assert_close(got, _ref_call(op, feeds, {"direction": "reverse"}), rtol=1e-12, atol=1e-13)


def test_gru_opset1_default_direction_is_forward():
    feeds = problem("GRU", dtype=np.float64)
    got = _ops.OPS["GRU"]({"direction": b"foward"}, 1, _positional("GRU", feeds))
    _assert_close(got, _ref_call("GRU", feeds, {}), rtol=1e-12, atol=1e-13)


def test_hidden_size_is_read_from_r_when_absent():
    feeds = problem("LSTM", hidden=5, dtype=np.float64)
    got = _ops.OPS["LSTM"]({}, 22, _positional("LSTM", feeds))
    assert got[0].shape == (5, 1, 3, 5)
    _assert_close(got, _ref_call("LSTM", feeds, {}), rtol=1e-12, atol=1e-13)


def test_zero_length_sequences_give_zero_outputs_and_states():
    feeds = problem("LSTM", direction="bidirectional", lens=[0, 0, 0], dtype=np.float64)
    got = _ops.OPS["LSTM"]({"direction": "bidirectional"}, 22, _positional("LSTM", feeds))
    assert all(not g.any() for g in got)


# ------------------------------------------------------------------ against onnxruntime
@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("optional", [True, False], ids=["optional", "required_only"])
@pytest.mark.parametrize("lens", list(LENS), ids=list(LENS))
def test_matches_onnxruntime(op, direction, layout, optional, lens):
    feeds = problem(op, seed=1, direction=direction, layout=layout, optional=optional,
                    lens=LENS[lens])
    attrs = {"direction": direction, "layout": layout, "hidden_size": 3}
    got, expected = _run_both(op, feeds, attrs)
    assert all(g.dtype == np.float32 for g in got)
    _assert_close(got, expected, **F32)


# activation lists per operator, with alpha/beta consumed in order
ACTIVATION_CASES = {
    "RNN": [(["Relu", "LeakyRelu"], [0.2], []),
            (["Affine", "ScaledTanh"], [0.7, 1.3], [0.1, 0.8]),
            (["HardSigmoid", "Elu"], [0.3, 0.9], [0.4]),
            (["Softsign", "Softplus"], [], []),
            (["ThresholdedRelu", "Sigmoid"], [0.1], [])],
    "GRU": [(["HardSigmoid", "Softsign", "Sigmoid", "Elu"], [0.25, 0.5], [0.45]),
            (["Sigmoid", "ScaledTanh", "Affine", "LeakyRelu"], [1.1, 0.6, 0.05], [0.7, 0.2]),
            (["Sigmoid", "Softplus", "Sigmoid", "ThresholdedRelu"], [0.2], [])],
    "LSTM": [(["HardSigmoid", "Tanh", "Softsign", "Sigmoid", "LeakyRelu", "Elu"],
              [0.2, 0.1, 0.8], [0.5]),
             (["Sigmoid", "ScaledTanh", "Affine", "Sigmoid", "Relu", "Softplus"],
              [0.9, 0.5], [1.2, 0.1]),
             (["Sigmoid", "ThresholdedRelu", "Tanh", "Sigmoid", "Tanh", "Tanh"], [0.05], [])],
}


@pytest.mark.parametrize("op,case", [(op, k) for op, cases in ACTIVATION_CASES.items()
                                     for k in range(len(cases))])
def test_activations_with_alpha_beta_match_onnxruntime(op, case):
    names, alpha, beta = ACTIVATION_CASES[op][case]
    feeds = problem(op, seed=2 + case, direction="bidirectional", lens=[5, 3, 4])
    attrs = {"direction": "bidirectional", "hidden_size": 3, "activations": names}
    if alpha:
        attrs["activation_alpha"] = alpha
    if beta:
        attrs["activation_beta"] = beta
    got, expected = _run_both(op, feeds, attrs)
    _assert_close(got, expected, **F32)
    # and the float64 reference on the same inputs (float32 arithmetic against float64)
    _assert_close(got, _ref_call(op, feeds, attrs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_clip_matches_onnxruntime(op, direction):
    feeds = problem(op, seed=3, direction=direction, lens=[4, 5, 2])
    feeds = {k: v * 3 if k in ("W", "R") else v for k, v in feeds.items()}  # (so clip acts)
    attrs = {"direction": direction, "hidden_size": 3, "clip": 0.7}
    got, expected = _run_both(op, feeds, attrs)
    _assert_close(got, expected, **F32)
    unclipped = _ops.OPS[op]({"direction": direction}, 22, _positional(op, feeds))
    assert not np.allclose(unclipped[0], got[0], atol=1e-3)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
def test_gru_linear_before_reset_matches_onnxruntime(direction, layout):
    feeds = problem("GRU", seed=4, direction=direction, layout=layout, lens=[5, 1, 3])
    attrs = {"direction": direction, "layout": layout, "hidden_size": 3, "linear_before_reset": 1}
    got, expected = _run_both("GRU", feeds, attrs)
    _assert_close(got, expected, **F32)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("peepholes", [True, False])
def test_lstm_input_forget_matches_onnxruntime(direction, peepholes):
    feeds = problem("LSTM", seed=5, direction=direction, lens=[2, 5, 4], peepholes=peepholes)
    attrs = {"direction": direction, "hidden_size": 3, "input_forget": 1}
    got, expected = _run_both("LSTM", feeds, attrs)
    _assert_close(got, expected, **F32)
    _assert_close(got, _ref_call("LSTM", feeds, attrs), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("opset", [7, 14, 22])
def test_opset_versions_match_onnxruntime(op, opset):
    feeds = problem(op, seed=6, direction="bidirectional", lens=[5, 4, 1])
    got, expected = _run_both(op, feeds, {"direction": "bidirectional", "hidden_size": 3},
                              opset=opset)
    _assert_close(got, expected, **F32)


@pytest.mark.parametrize("op,outputs", [("RNN", ["", "Y_h"]), ("GRU", ["Y"]),
                                        ("LSTM", ["", "", "Y_c"]), ("LSTM", ["Y", "", "Y_c"]),
                                        ("LSTM", ["", "Y_h"])])
def test_output_subsets_match_onnxruntime(op, outputs):
    feeds = problem(op, seed=7, steps=6, batch=4, size=5, hidden=4, lens=[6, 2, 5, 3])
    got, expected = _run_both(op, feeds, {"hidden_size": 4}, outputs=outputs)
    assert len(got) == len([n for n in outputs if n])
    _assert_close(got, expected, **F32)


def test_larger_problem_matches_onnxruntime():
    feeds = problem("LSTM", seed=8, steps=40, batch=16, size=32, hidden=48,
                    direction="bidirectional", lens=np.random.default_rng(0).integers(1, 41, 16))
    got, expected = _run_both("LSTM", feeds, {"direction": "bidirectional", "hidden_size": 48})
    _assert_close(got, expected, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ against torch
def _export(module, example, **kw):
    torch = pytest.importorskip("torch", reason="torch exports the models")
    pytest.importorskip("onnx", reason="torch.onnx.export needs onnx")
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, example, buf, dynamo=False, opset_version=17, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_torch_recurrent_layers_exported(kind, batch_first):
    torch = pytest.importorskip("torch", reason="torch is the reference")
    torch.manual_seed(0)
    layer = getattr(torch.nn, kind)(input_size=6, hidden_size=5, num_layers=2,
                                    bidirectional=True, batch_first=batch_first).eval()
    x = torch.randn((3, 7, 6) if batch_first else (7, 3, 6))
    data = _export(layer, (x,), input_names=["x"])
    with torch.no_grad():
        out = layer(x)
    expected = [out[0]] + (list(out[1]) if kind == "LSTM" else [out[1]])
    got = InferenceSession(data).run(None, {"x": x.numpy()})
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == tuple(e.shape)
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-5, atol=1e-6)


def test_torch_crnn_exported():
    torch = pytest.importorskip("torch", reason="torch is the reference")
    nn = torch.nn

    class CRNN(nn.Module):
        """Conv features of a text line, one column per time step, BiLSTM, classes."""

        def __init__(self, classes=11):
            super().__init__()
            self.cnn = nn.Sequential(
                nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d((2, 1)),
                nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d((2, 1)))
            self.rnn = nn.LSTM(16 * 4, 24, num_layers=2, bidirectional=True)
            self.fc = nn.Linear(48, classes)

        def forward(self, img):
            f = self.cnn(img)                                       # N, C, H, W
            n, c, h, w = f.shape
            seq = f.permute(3, 0, 1, 2).reshape(w, n, c * h)        # W, N, C*H
            out, _ = self.rnn(seq)
            return self.fc(out).log_softmax(-1)                     # W, N, classes

    torch.manual_seed(1)
    model = CRNN().eval()
    with torch.no_grad():
        model.cnn[1].running_mean.uniform_(-0.2, 0.2)
        model.cnn[1].running_var.uniform_(0.5, 1.5)
    img = torch.randn(2, 1, 32, 40)
    data = _export(model, (img,), input_names=["img"], output_names=["logp"])
    with torch.no_grad():
        expected = model(img).numpy()
    got = InferenceSession(data).run(None, {"img": img.numpy()})[0]
    assert got.shape == expected.shape == (20, 2, 11)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ errors
def _err(op, feeds, attrs, match, opset=22):
    with pytest.raises(ValueError, match=match):
        _ops.OPS[op](attrs, opset, _positional(op, feeds))


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_shape_errors(op):
    g = GATES[op]
    feeds = problem(op, direction="bidirectional")
    attrs = {"direction": "bidirectional", "hidden_size": 3}
    _err(op, dict(feeds, W=feeds["W"][:1]), attrs,
         rf"{op}: W of shape \[2, {3 * g}, 4\] expected, got \[1, {3 * g}, 4\]")
    _err(op, dict(feeds, W=feeds["W"][..., :3]), attrs, r"W of shape \[2, .*, 4\] expected")
    _err(op, dict(feeds, R=feeds["R"][:, :-1]), attrs, rf"R of shape \[2, {3 * g}, 3\] expected")
    _err(op, dict(feeds, R=feeds["R"][0]), attrs, r"R of shape \[num_directions")
    _err(op, dict(feeds, B=feeds["B"][:, 1:]), attrs, rf"B of shape \[2, {6 * g}\] expected")
    _err(op, dict(feeds, initial_h=feeds["initial_h"][:, :2]), attrs,
         r"initial_h of shape \[2, 3, 3\] expected, got \[2, 2, 3\]")
    _err(op, dict(feeds, X=feeds["X"][0]), attrs, r"X must be a 3-D float tensor")
    if op == "LSTM":
        _err(op, dict(feeds, P=feeds["P"][:, :6]), attrs, r"P of shape \[2, 9\] expected")
        _err(op, dict(feeds, initial_c=feeds["initial_c"][:1]), attrs,
             r"initial_c of shape \[2, 3, 3\] expected")
    # layout 1 states are [batch, num_directions, hidden]
    _err(op, dict(feeds, X=feeds["X"].transpose(1, 0, 2)), dict(attrs, layout=1),
         r"initial_h of shape \[3, 2, 3\] expected, got \[2, 3, 3\]")


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_hidden_size_mismatch(op):
    feeds = problem(op)
    _err(op, feeds, {"hidden_size": 4}, rf"{op}: W of shape \[1, {4 * GATES[op]}, 4\] expected")
    _err(op, feeds, {"hidden_size": 0}, r"hidden_size must be positive")


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_sequence_lens_errors(op):
    feeds = problem(op)
    _err(op, dict(feeds, sequence_lens=np.array([1, 6, 2], np.int32)), {},
         r"sequence_lens must lie in \[0, 5\] \(seq_length\), got \[1, 6, 2\]")
    _err(op, dict(feeds, sequence_lens=np.array([1, -1, 2], np.int32)), {},
         r"sequence_lens must lie in \[0, 5\]")
    _err(op, dict(feeds, sequence_lens=np.array([1, 2], np.int32)), {},
         r"sequence_lens must be an int32 tensor of shape \[3\]")
    _err(op, dict(feeds, sequence_lens=np.array([1.0, 2.0, 3.0], np.float32)), {},
         r"sequence_lens must be an int32 tensor")


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_attribute_errors(op):
    feeds = problem(op)
    _err(op, feeds, {"direction": "sideways"}, r"direction must be 'forward', 'reverse' or")
    _err(op, feeds, {"activations": DEFAULT_ACTS[op] * 2},
         rf"activations must list {len(DEFAULT_ACTS[op])} functions")
    _err(op, feeds, {"activations": ["Gelu"] * len(DEFAULT_ACTS[op])}, r"unknown activation 'Gelu'")
    _err(op, feeds, {"layout": 2}, r"layout must be 0 or 1")
    _err(op, dict(feeds, X=feeds["X"].astype(np.int32)), {}, r"X must be a 3-D float tensor")


def test_errors_name_the_node():
    data = _onnx_model("LSTM", problem("LSTM", lens=[1, 9, 2]), {"hidden_size": 3})
    sess = InferenceSession(data)
    feeds = problem("LSTM", lens=[1, 9, 2])
    with pytest.raises(ValueError, match=r"LSTM node.*sequence_lens must lie in \[0, 5\]"):
        sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})
