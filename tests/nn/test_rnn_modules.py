"""nn.RNN / LSTM / GRU and their cells against a float64 numpy reference of the cell
equations, float64 finite differences (of the modules, the cells and the time-loop
Function), and torch (when installed): torch's weights loaded through state_dict, then
outputs, final states and gradients w.r.t. the input, the initial states and every
parameter compared, also over 200 steps; errors; a tiny CRNN's SGD step."""

import math

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.nn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from pyvision_engine.nn.rnn import _RecurrentLoop
from reference.gradcheck import assert_grad_close, numerical_grads

rng = np.random.default_rng(11)


def _torch():
    return pytest.importorskip("torch", reason="torch parity tests need torch")


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


# ------------------------------------------------------------------ float64 references
def np_rnn_cell(x, h, w_ih, w_hh, b_ih, b_hh, relu=False):
    pre = x @ w_ih.T + h @ w_hh.T + (0.0 if b_ih is None else b_ih + b_hh)
    return np.maximum(pre, 0.0) if relu else np.tanh(pre)


def np_lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr=None):
    gates = x @ w_ih.T + h @ w_hh.T + (0.0 if b_ih is None else b_ih + b_hh)
    i, f, g, o = np.split(gates, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    h = sigmoid(o) * np.tanh(c)
    return (h if w_hr is None else h @ w_hr.T), c


def np_gru_cell(x, h, w_ih, w_hh, b_ih, b_hh):
    gi = x @ w_ih.T + (0.0 if b_ih is None else b_ih)
    gh = h @ w_hh.T + (0.0 if b_hh is None else b_hh)
    i_r, i_z, i_n = np.split(gi, 3, axis=-1)
    h_r, h_z, h_n = np.split(gh, 3, axis=-1)
    r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
    n = np.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h


def np_rnn_module(mode, x, h0, c0, params, num_layers, bidirectional, bias, proj=False):
    """Sequence-first x (T, B, I); params a dict of torch's parameter names. Returns
    output (T, B, D * H_out), h_n, c_n (None unless LSTM)."""
    dirs = 2 if bidirectional else 1
    inp, h_n, c_n = x, [], []
    for layer in range(num_layers):
        outs = []
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            w_ih, w_hh = params["weight_ih" + sfx], params["weight_hh" + sfx]
            b_ih = params["bias_ih" + sfx] if bias else None
            b_hh = params["bias_hh" + sfx] if bias else None
            k = layer * dirs + d
            h = h0[k]
            c = None if c0 is None else c0[k]
            out = [None] * x.shape[0]
            for t in (reversed(range(x.shape[0])) if d else range(x.shape[0])):
                if mode == "LSTM":
                    h, c = np_lstm_cell(inp[t], h, c, w_ih, w_hh, b_ih, b_hh,
                                        params["weight_hr" + sfx] if proj else None)
                elif mode == "GRU":
                    h = np_gru_cell(inp[t], h, w_ih, w_hh, b_ih, b_hh)
                else:
                    h = np_rnn_cell(inp[t], h, w_ih, w_hh, b_ih, b_hh, mode == "RNN_RELU")
                out[t] = h
            outs.append(np.stack(out))
            h_n.append(h)
            c_n.append(c)
        inp = np.concatenate(outs, axis=2)
    return inp, np.stack(h_n), (np.stack(c_n) if mode == "LSTM" else None)


def _make(mode, *args, **kwargs):
    if mode in ("RNN_TANH", "RNN_RELU"):
        return RNN(*args, nonlinearity="relu" if mode == "RNN_RELU" else "tanh", **kwargs)
    return {"LSTM": LSTM, "GRU": GRU}[mode](*args, **kwargs)


def _params64(module):
    return {n: p.detach().numpy().astype(np.float64) for n, p in module.named_parameters()}


MODES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]


# ------------------------------------------------------------------ construction
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_names_shapes_and_init(mode, bidirectional, bias):
    pve.manual_seed(0)
    m = _make(mode, 6, 16, num_layers=2, bias=bias, bidirectional=bidirectional)
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1) * 16
    dirs = 2 if bidirectional else 1
    expected = []
    for layer in range(2):
        for d in range(dirs):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            inp = 6 if layer == 0 else 16 * dirs
            expected += [("weight_ih" + sfx, (gates, inp)), ("weight_hh" + sfx, (gates, 16))]
            if bias:
                expected += [("bias_ih" + sfx, (gates,)), ("bias_hh" + sfx, (gates,))]
    got = [(n, tuple(p.shape)) for n, p in m.named_parameters()]
    assert got == expected
    values = np.concatenate([p.detach().numpy().ravel() for p in m.parameters()])
    bound = 1 / math.sqrt(16)
    assert np.abs(values).max() <= bound
    # U(-b, b): mean 0, std b / sqrt(3)
    assert abs(values.mean()) < 0.1 * bound
    assert abs(values.std() - bound / math.sqrt(3)) < 0.1 * bound


def test_lstm_proj_size_parameters():
    m = LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True)
    shapes = dict((n, tuple(p.shape)) for n, p in m.named_parameters())
    assert shapes["weight_hh_l0"] == (20, 2) and shapes["weight_hr_l0"] == (2, 5)
    assert shapes["weight_ih_l1_reverse"] == (20, 4)
    assert list(shapes)[:5] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                                "weight_hr_l0"]


def test_cell_parameters_and_repr():
    for cls, chunks in ((RNNCell, 1), (LSTMCell, 4), (GRUCell, 3)):
        c = cls(3, 4)
        assert [(n, tuple(p.shape)) for n, p in c.named_parameters()] == [
            ("weight_ih", (4 * chunks, 3)), ("weight_hh", (4 * chunks, 4)),
            ("bias_ih", (4 * chunks,)), ("bias_hh", (4 * chunks,))]
        nb = cls(3, 4, bias=False)
        assert nb.bias_ih is None and nb.bias_hh is None and len(list(nb.parameters())) == 2
    assert repr(RNNCell(3, 4, bias=False, nonlinearity="relu")) == \
        "RNNCell(3, 4, bias=False, nonlinearity=relu)"
    assert repr(LSTM(3, 4, num_layers=2, batch_first=True, dropout=0.5, bidirectional=True)) \
        == "LSTM(3, 4, num_layers=2, batch_first=True, dropout=0.5, bidirectional=True)"


# ------------------------------------------------------------------ forward vs numpy
def _h0(mode, m, batch):
    dirs = 2 if m.bidirectional else 1
    out = m.proj_size if m.proj_size else m.hidden_size
    h0 = rng.standard_normal((m.num_layers * dirs, batch, out))
    c0 = rng.standard_normal((m.num_layers * dirs, batch, m.hidden_size)) \
        if mode == "LSTM" else None
    return h0, c0


CONFIGS = [dict(num_layers=1), dict(num_layers=2), dict(num_layers=2, bidirectional=True),
           dict(num_layers=1, bias=False, batch_first=True),
           dict(num_layers=2, bidirectional=True, batch_first=True, bias=False)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_module_forward_against_numpy(mode, cfg):
    m = _make(mode, 3, 4, **cfg)
    T, B = 5, 2
    x = rng.standard_normal((T, B, 3))
    h0, c0 = _h0(mode, m, B)
    xin = x.transpose(1, 0, 2) if m.batch_first else x
    hx = (pve.tensor(h0), pve.tensor(c0)) if mode == "LSTM" else pve.tensor(h0)
    out, hn = m(pve.tensor(xin), hx)
    ref_out, ref_h, ref_c = np_rnn_module(mode, x, h0, c0, _params64(m), m.num_layers,
                                          m.bidirectional, m.bias)
    if m.batch_first:
        ref_out = ref_out.transpose(1, 0, 2)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-5, atol=1e-5)
    if mode == "LSTM":
        np.testing.assert_allclose(hn[0].detach().numpy(), ref_h, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(hn[1].detach().numpy(), ref_c, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(hn.detach().numpy(), ref_h, rtol=1e-5, atol=1e-5)


def test_lstm_proj_forward_against_numpy():
    m = LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True)
    x = rng.standard_normal((4, 2, 3))
    h0, c0 = _h0("LSTM", m, 2)
    out, (hn, cn) = m(pve.tensor(x), (pve.tensor(h0), pve.tensor(c0)))
    ref = np_rnn_module("LSTM", x, h0, c0, _params64(m), 2, True, True, proj=True)
    assert out.shape == (4, 2, 4) and hn.shape == (4, 2, 2) and cn.shape == (4, 2, 5)
    for got, want in zip((out, hn, cn), ref):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_unbatched_input_and_default_states(mode, batch_first):
    m = _make(mode, 3, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    x = rng.standard_normal((6, 3))
    out, hn = m(pve.tensor(x))
    ref_out, ref_h, ref_c = np_rnn_module(mode, x[:, None], np.zeros((4, 1, 4)),
                                          np.zeros((4, 1, 4)) if mode == "LSTM" else None,
                                          _params64(m), 2, True, True)
    assert out.shape == (6, 8)
    np.testing.assert_allclose(out.detach().numpy(), ref_out[:, 0], rtol=1e-5, atol=1e-5)
    h = hn[0] if mode == "LSTM" else hn
    assert h.shape == (4, 4)
    np.testing.assert_allclose(h.detach().numpy(), ref_h[:, 0], rtol=1e-5, atol=1e-5)
    if mode == "LSTM":
        np.testing.assert_allclose(hn[1].detach().numpy(), ref_c[:, 0], rtol=1e-5, atol=1e-5)


def test_empty_batch():
    out, (h, c) = LSTM(3, 4, bidirectional=True)(pve.zeros(5, 0, 3))
    assert out.shape == (5, 0, 8) and h.shape == (2, 0, 4) and c.shape == (2, 0, 4)


@pytest.mark.parametrize("mode", MODES)
def test_empty_batch_backward(mode):
    x = pve.zeros(5, 0, 3, requires_grad=True)
    m = _make(mode, 3, 4, num_layers=2, bidirectional=True)
    out, hn = m(x)
    states = list(hn) if mode == "LSTM" else [hn]
    sum(t.sum() for t in [out] + states).backward()
    assert x.grad.shape == (5, 0, 3)
    for p in m.parameters():  # no samples: every parameter's gradient is zero
        np.testing.assert_array_equal(p.grad.numpy(), np.zeros(p.shape, np.float32))

@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_against_numpy(batched, bias):
    shape = (3, 5) if batched else (5,)
    x = rng.standard_normal(shape)
    h = rng.standard_normal(shape[:-1] + (4,))
    c = rng.standard_normal(shape[:-1] + (4,))
    for nl in ("tanh", "relu"):
        cell = RNNCell(5, 4, bias=bias, nonlinearity=nl)
        p = _params64(cell)
        want = np_rnn_cell(x, h, p["weight_ih"], p["weight_hh"], p.get("bias_ih"),
                           p.get("bias_hh"), nl == "relu")
        np.testing.assert_allclose(cell(pve.tensor(x), pve.tensor(h)).detach().numpy(), want,
                                   rtol=1e-5, atol=1e-5)
    cell = LSTMCell(5, 4, bias=bias)
    p = _params64(cell)
    got = cell(pve.tensor(x), (pve.tensor(h), pve.tensor(c)))
    want = np_lstm_cell(x, h, c, p["weight_ih"], p["weight_hh"], p.get("bias_ih"),
                        p.get("bias_hh"))
    for g, w in zip(got, want):
        assert g.shape == shape[:-1] + (4,)
        np.testing.assert_allclose(g.detach().numpy(), w, rtol=1e-5, atol=1e-5)
    cell = GRUCell(5, 4, bias=bias)
    p = _params64(cell)
    want = np_gru_cell(x, h, p["weight_ih"], p["weight_hh"], p.get("bias_ih"), p.get("bias_hh"))
    np.testing.assert_allclose(cell(pve.tensor(x), pve.tensor(h)).detach().numpy(), want,
                               rtol=1e-5, atol=1e-5)
    # hx None is zeros
    want0 = np_gru_cell(x, np.zeros_like(h), p["weight_ih"], p["weight_hh"], p.get("bias_ih"),
                        p.get("bias_hh"))
    np.testing.assert_allclose(cell(pve.tensor(x)).detach().numpy(), want0, rtol=1e-5,
                               atol=1e-5)


# ------------------------------------------------------------------ finite differences
@pytest.mark.parametrize("mode", MODES)
def test_module_gradients_against_finite_differences(mode):
    m = _make(mode, 3, 2, num_layers=2, bidirectional=True)
    names = [n for n, _ in m.named_parameters()]
    T, B = 3, 2
    x = rng.standard_normal((T, B, 3))
    h0, c0 = _h0(mode, m, B)
    if mode == "RNN_RELU":  # keep pre-activations away from relu's kink
        x, h0 = np.abs(x), np.abs(h0)
    states = [h0] + ([c0] if mode == "LSTM" else [])

    def f(x_, *rest):
        s = rest[:len(states)]
        params = dict(zip(names, rest[len(states):]))
        out, hn, cn = np_rnn_module(mode, x_, s[0], s[1] if mode == "LSTM" else None, params,
                                    2, True, True)
        parts = [out.ravel(), hn.ravel()] + ([cn.ravel()] if mode == "LSTM" else [])
        return np.concatenate(parts)

    p64 = _params64(m)
    inputs = [x] + states + [p64[n] for n in names]
    tx = pve.tensor(x, requires_grad=True)
    ts = [pve.tensor(s, requires_grad=True) for s in states]
    out, hn = m(tx, tuple(ts) if mode == "LSTM" else ts[0])
    flat = [out.reshape(-1)] + ([hn[0].reshape(-1), hn[1].reshape(-1)] if mode == "LSTM"
                                else [hn.reshape(-1)])
    total = pve.cat(flat, 0)
    up = rng.standard_normal(total.shape[0])
    total.backward(pve.tensor(up))
    grads = [tx.grad] + [t.grad for t in ts] + [dict(m.named_parameters())[n].grad
                                                for n in names]
    for name, g, want in zip(["x"] + ["h0", "c0"][:len(states)] + names, grads,
                             numerical_grads(f, inputs, up)):
        assert_grad_close(g.numpy(), want, name=name)


def test_cell_gradients_against_finite_differences():
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    for cell, ref in ((RNNCell(3, 4), np_rnn_cell), (GRUCell(3, 4), np_gru_cell),
                      (LSTMCell(3, 4), None)):
        names = [n for n, _ in cell.named_parameters()]
        p64 = _params64(cell)
        lstm = ref is None
        states = [h, c] if lstm else [h]

        def f(x_, *rest, lstm=lstm, ref=ref, n_states=len(states)):
            p = dict(zip(names, rest[n_states:]))
            args = (p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
            if lstm:
                return np.concatenate([a.ravel() for a in np_lstm_cell(x_, *rest[:2], *args)])
            return ref(x_, rest[0], *args).ravel()

        tx = pve.tensor(x, requires_grad=True)
        ts = [pve.tensor(s, requires_grad=True) for s in states]
        out = cell(tx, tuple(ts) if lstm else ts[0])
        total = pve.cat([o.reshape(-1) for o in out], 0) if lstm else out.reshape(-1)
        up = rng.standard_normal(total.shape[0])
        total.backward(pve.tensor(up))
        grads = [tx.grad] + [t.grad for t in ts] + [getattr(cell, n).grad for n in names]
        inputs = [x] + states + [p64[n] for n in names]
        for g, want in zip(grads, numerical_grads(f, inputs, up)):
            assert_grad_close(g.numpy(), want, name=type(cell).__name__)


# ------------------------------------------------------------------ the time-loop Function
def np_loop(mode, gi, h0, c0, w_hh, b_hh, w_hr, reverse):
    """_RecurrentLoop's packed result (outputs, h_n, c_n) in float64, from the cell
    references above: the step input is the projection gi[t] itself (identity W_ih, zero
    b_ih)."""
    eye = np.eye(gi.shape[2])
    b_ih = None if b_hh is None else np.zeros_like(b_hh)
    steps = gi.shape[0]
    h, c, outs = h0, c0, [None] * steps
    for t in (reversed(range(steps)) if reverse else range(steps)):
        if mode == "LSTM":
            h, c = np_lstm_cell(gi[t], h, c, eye, w_hh, b_ih, b_hh, w_hr)
        elif mode == "GRU":
            h = np_gru_cell(gi[t], h, eye, w_hh, b_ih, b_hh)
        else:
            h = np_rnn_cell(gi[t], h, eye, w_hh, b_ih, b_hh, mode == "RNN_RELU")
        outs[t] = h
    parts = [np.stack(outs).ravel(), h.ravel()] + ([c.ravel()] if mode == "LSTM" else [])
    return np.concatenate(parts)


def _loop_inputs(mode, bias, proj, steps=4, batch=2, hidden=3):
    """float32 inputs gi, h0, c0, w_hh, b_hh, w_hr of the loop (None where absent)."""
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1) * hidden
    out_size = 2 if proj else hidden
    f32 = lambda *shape: (0.7 * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    gi, h0 = f32(steps, batch, gates), f32(batch, out_size)
    if mode == "RNN_RELU":  # most pre-activations positive, none near relu's kink
        gi, h0 = np.abs(gi) + 0.1, np.abs(h0)
    return [gi, h0, f32(batch, hidden) if mode == "LSTM" else None, f32(gates, out_size),
            f32(gates) if bias else None, f32(out_size, hidden) if proj else None]


LOOP_CASES = [(mode, reverse, bias, False) for mode in MODES for reverse in (False, True)
              for bias in (True, False)] + [("LSTM", False, True, True), ("LSTM", True, False, True)]


@pytest.mark.parametrize("mode,reverse,bias,proj", LOOP_CASES)
def test_loop_function_gradients_against_finite_differences(mode, reverse, bias, proj):
    arrays = _loop_inputs(mode, bias, proj)
    present = [i for i, a in enumerate(arrays) if a is not None]
    tensors = [None if a is None else pve.tensor(a, requires_grad=True) for a in arrays]
    packed = _RecurrentLoop.apply(*tensors, mode=mode, reverse=reverse)

    def f(*values):
        args = [None] * len(arrays)
        for i, v in zip(present, values):
            args[i] = v
        return np_loop(mode, *args, reverse)

    want_packed = f(*[arrays[i].astype(np.float64) for i in present])
    np.testing.assert_allclose(packed.detach().numpy(), want_packed, rtol=1e-5, atol=1e-5)
    up = rng.standard_normal(packed.shape[0])
    packed.backward(pve.tensor(up))
    names = ["gi", "h0", "c0", "w_hh", "b_hh", "w_hr"]
    for i, want in zip(present, numerical_grads(f, [arrays[i] for i in present], up)):
        assert_grad_close(tensors[i].grad.numpy(), want, name=f"{mode} {names[i]}")


@pytest.mark.parametrize("mode", MODES)
def test_loop_function_computes_only_the_gradients_asked_for(mode):
    arrays = _loop_inputs(mode, True, False)
    full = [None if a is None else pve.tensor(a, requires_grad=True) for a in arrays]
    _RecurrentLoop.apply(*full, mode=mode, reverse=True).sum().backward()
    # only w_hh (index 3) asks: the other gradients are None, w_hh's unchanged
    some = [None if a is None else pve.tensor(a, requires_grad=i == 3)
            for i, a in enumerate(arrays)]
    packed = _RecurrentLoop.apply(*some, mode=mode, reverse=True)
    node = packed.grad_fn
    grads = type(node).backward(node, np.ones(packed.shape, np.float32))
    assert [g is not None for g in grads] == [False, False, False, True, False, False]
    np.testing.assert_allclose(grads[3], full[3].grad.numpy(), rtol=1e-6, atol=1e-7)


def test_loop_function_without_grad_keeps_no_history():
    arrays = _loop_inputs("LSTM", True, True)
    tensors = [None if a is None else pve.tensor(a, requires_grad=True) for a in arrays]
    recorded = _RecurrentLoop.apply(*tensors, mode="LSTM", reverse=False)
    with pve.no_grad():
        plain = _RecurrentLoop.apply(*tensors, mode="LSTM", reverse=False)
    assert plain.grad_fn is None and not plain.requires_grad
    np.testing.assert_array_equal(plain.numpy(), recorded.detach().numpy())


def test_changed_saved_values_are_an_error_in_backward():
    """The loop reads h0, c0, the weights and its own outputs in backward (torch's
    saved-tensor version check)."""
    x = pve.tensor(rng.standard_normal((3, 2, 3)))
    m = LSTM(3, 4)
    h0, c0 = pve.zeros(1, 2, 4, requires_grad=True), pve.zeros(1, 2, 4, requires_grad=True)
    out, _ = m(x, (h0, c0))
    with pve.no_grad():
        c0.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()
    out, _ = GRU(3, 4)(x)
    with pve.no_grad():
        out.mul_(2.0)  # (out is a view of the loop's output)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


# ------------------------------------------------------------------ dropout
def test_dropout_only_between_layers_and_only_in_training():
    m = GRU(3, 4, num_layers=2, dropout=1.0)
    x = pve.tensor(rng.standard_normal((5, 2, 3)))
    m.eval()
    out_eval, _ = m(x)
    p = _params64(m)
    ref, _, _ = np_rnn_module("GRU", x.numpy().astype(np.float64), np.zeros((2, 2, 4)), None,
                              p, 2, False, True)
    np.testing.assert_allclose(out_eval.detach().numpy(), ref, rtol=1e-5, atol=1e-5)
    m.train()
    out_train, h_train = m(x)
    # p = 1 zeroes the second layer's input; the first layer's final state is untouched
    ref_l1, ref_h, _ = np_rnn_module("GRU", np.zeros((5, 2, 4)), np.zeros((1, 2, 4)), None,
                                     {k.replace("_l1", "_l0"): v for k, v in p.items()
                                      if "_l1" in k}, 1, False, True)
    np.testing.assert_allclose(out_train.detach().numpy(), ref_l1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_train[0].detach().numpy(),
                               np_rnn_module("GRU", x.numpy().astype(np.float64),
                                             np.zeros((2, 2, 4)), None, p, 2, False,
                                             True)[1][0], rtol=1e-5, atol=1e-5)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        LSTM(3, 4, dropout=0.5)


# ------------------------------------------------------------------ errors (no torch)
def test_errors_name_the_layer_and_shapes():
    m = LSTM(3, 4)
    with pytest.raises(ValueError, match="LSTM: Expected input to be 2D or 3D, got 4D"):
        m(pve.zeros(1, 2, 3, 3))
    with pytest.raises(RuntimeError, match=r"LSTM: input.size\(-1\) must be equal to "
                                           r"input_size. Expected 3, got 5"):
        m(pve.zeros(2, 2, 5))
    with pytest.raises(RuntimeError, match=r"Expected hidden\[0\] size \(1, 2, 4\), got "
                                           r"\[1, 3, 4\]"):
        m(pve.zeros(2, 2, 3), (pve.zeros(1, 3, 4), pve.zeros(1, 2, 4)))
    with pytest.raises(RuntimeError, match="sequence length to be larger than 0"):
        GRU(3, 4)(pve.zeros(0, 2, 3))
    with pytest.raises(ValueError, match="input dtype"):
        RNN(3, 4)(pve.zeros(2, 2, 3, dtype=pve.int64))
    with pytest.raises(TypeError, match="PackedSequence"):
        class PackedSequence(tuple):
            pass
        RNN(3, 4)(PackedSequence((pve.zeros(4, 3), pve.tensor([2, 2]))))
    with pytest.raises(RuntimeError, match="GRUCell: input has inconsistent input_size: got 5 "
                                           "expected 3"):
        GRUCell(3, 4)(pve.zeros(2, 5))
    with pytest.raises(RuntimeError, match="RNNCell: Input batch size 2 doesn't match hidden0 "
                                           "batch size 3"):
        RNNCell(3, 4)(pve.zeros(2, 3), pve.zeros(3, 4))


# ------------------------------------------------------------------ torch parity
def _torch_module(torch, mode, *args, **kwargs):
    if mode in ("RNN_TANH", "RNN_RELU"):
        return torch.nn.RNN(*args, nonlinearity="relu" if mode == "RNN_RELU" else "tanh",
                            **kwargs)
    return {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[mode](*args, **kwargs)


def _load_from_torch(m, tm):
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    assert list(m.state_dict().keys()) == list(sd.keys())
    assert all(tuple(m.state_dict()[k].shape) == v.shape for k, v in sd.items())
    m.load_state_dict(sd)


TORCH_CONFIGS = CONFIGS + [dict(num_layers=2, bidirectional=True, unbatched=True),
                           dict(num_layers=1, batch_first=True, unbatched=True),
                           dict(num_layers=2, bidirectional=True, no_hx=True)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cfg", TORCH_CONFIGS)
def test_module_torch_parity(mode, cfg):
    torch = _torch()
    cfg = dict(cfg)
    unbatched, no_hx = cfg.pop("unbatched", False), cfg.pop("no_hx", False)
    tm = _torch_module(torch, mode, 3, 5, **cfg)
    m = _make(mode, 3, 5, **cfg)
    _load_from_torch(m, tm)
    T, B = 4, 3
    x = rng.standard_normal((T, 3) if unbatched else
                            ((B, T, 3) if tm.batch_first else (T, B, 3))).astype(np.float32)
    h0, c0 = _h0(mode, m, B)
    states = [] if no_hx else [h0[:, 0] if unbatched else h0] + \
        ([c0[:, 0] if unbatched else c0] if mode == "LSTM" else [])
    states = [s.astype(np.float32) for s in states]
    tx = torch.tensor(x, requires_grad=True)
    px = pve.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    ps = [pve.tensor(s, requires_grad=True) for s in states]

    def hx(lst):
        if not lst:
            return None
        return tuple(lst) if mode == "LSTM" else lst[0]

    t_out, t_h = tm(tx, hx(ts))
    p_out, p_h = m(px, hx(ps))
    t_hs = list(t_h) if mode == "LSTM" else [t_h]
    p_hs = list(p_h) if mode == "LSTM" else [p_h]
    np.testing.assert_allclose(p_out.detach().numpy(), t_out.detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    for p, t in zip(p_hs, t_hs):
        assert tuple(p.shape) == tuple(t.shape)
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-5, atol=1e-6)
    g_out = rng.standard_normal(t_out.shape).astype(np.float32)
    g_hs = [rng.standard_normal(t.shape).astype(np.float32) for t in t_hs]
    torch.autograd.backward([t_out] + t_hs, [torch.tensor(g) for g in [g_out] + g_hs])
    sum((p * pve.tensor(g)).sum() for p, g in zip([p_out] + p_hs, [g_out] + g_hs)).backward()
    np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    for p, t in zip(ps, ts):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)
    pp = dict(m.named_parameters())
    for name, tp in tm.named_parameters():
        np.testing.assert_allclose(pp[name].grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_lstm_proj_torch_parity():
    torch = _torch()
    tm = torch.nn.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True, batch_first=True)
    m = LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True, batch_first=True)
    _load_from_torch(m, tm)
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    tx, px = torch.tensor(x, requires_grad=True), pve.tensor(x, requires_grad=True)
    with pytest.warns(UserWarning):  # (torch: oneDNN has no projections)
        t_out, (t_h, t_c) = tm(tx)
    p_out, (p_h, p_c) = m(px)
    for p, t in ((p_out, t_out), (p_h, t_h), (p_c, t_c)):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-5, atol=1e-6)
    (t_out.sum() + t_h.square().sum() + t_c.sum()).backward()
    (p_out.sum() + p_h.square().sum() + p_c.sum()).backward()
    np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    pp = dict(m.named_parameters())
    for name, tp in tm.named_parameters():
        np.testing.assert_allclose(pp[name].grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


@pytest.mark.parametrize("mode", MODES)
def test_long_sequence_gradients_torch_parity(mode):
    """200 steps: outputs and every gradient (through the whole recurrence) as torch's."""
    torch = _torch()
    tm = _torch_module(torch, mode, 5, 8, num_layers=2, bidirectional=True)
    m = _make(mode, 5, 8, num_layers=2, bidirectional=True)
    _load_from_torch(m, tm)
    x = rng.standard_normal((200, 3, 5)).astype(np.float32)
    tx, px = torch.tensor(x, requires_grad=True), pve.tensor(x, requires_grad=True)
    t_out, t_h = tm(tx)
    p_out, p_h = m(px)
    t_hs = list(t_h) if mode == "LSTM" else [t_h]
    p_hs = list(p_h) if mode == "LSTM" else [p_h]
    for p, t in zip([p_out] + p_hs, [t_out] + t_hs):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-5, atol=1e-6)
    ups = [rng.standard_normal(t.shape).astype(np.float32) for t in [t_out] + t_hs]
    torch.autograd.backward([t_out] + t_hs, [torch.tensor(u) for u in ups])
    sum((p * pve.tensor(u)).sum() for p, u in zip([p_out] + p_hs, ups)).backward()
    np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    pp = dict(m.named_parameters())
    for name, tp in tm.named_parameters():
        np.testing.assert_allclose(pp[name].grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=name)


@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", ["RNNCell-tanh", "RNNCell-relu", "LSTMCell", "GRUCell"])
def test_cell_torch_parity(kind, bias, batched):
    torch = _torch()
    name, _, nl = kind.partition("-")
    kw = dict(nonlinearity=nl) if nl else {}
    tc = getattr(torch.nn, name)(3, 4, bias=bias, **kw)
    c = getattr(pve.nn, name)(3, 4, bias=bias, **kw)
    _load_from_torch(c, tc)
    shape = (2, 3) if batched else (3,)
    x = rng.standard_normal(shape).astype(np.float32)
    n_states = 2 if name == "LSTMCell" else 1
    states = [rng.standard_normal(shape[:-1] + (4,)).astype(np.float32) for _ in range(n_states)]
    tx, px = torch.tensor(x, requires_grad=True), pve.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    ps = [pve.tensor(s, requires_grad=True) for s in states]
    t_out = tc(tx, tuple(ts) if n_states == 2 else ts[0])
    p_out = c(px, tuple(ps) if n_states == 2 else ps[0])
    t_outs = list(t_out) if n_states == 2 else [t_out]
    p_outs = list(p_out) if n_states == 2 else [p_out]
    ups = [rng.standard_normal(t.shape).astype(np.float32) for t in t_outs]
    for p, t in zip(p_outs, t_outs):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-5, atol=1e-6)
    sum(((t * torch.tensor(u)).sum() for t, u in zip(t_outs, ups))).backward()
    sum(((p * pve.tensor(u)).sum() for p, u in zip(p_outs, ups))).backward()
    np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    for p, t in zip(ps, ts):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)
    for pname, tp in tc.named_parameters():
        np.testing.assert_allclose(getattr(c, pname).grad.numpy(), tp.grad.numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=pname)


def test_dropout_one_in_training_torch_parity():
    torch = _torch()
    tm = torch.nn.LSTM(3, 4, num_layers=3, dropout=1.0, bidirectional=True)
    m = LSTM(3, 4, num_layers=3, dropout=1.0, bidirectional=True)
    _load_from_torch(m, tm)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    for train in (True, False):
        tm.train(train)
        m.train(train)
        t_out, (t_h, t_c) = tm(torch.tensor(x))
        p_out, (p_h, p_c) = m(pve.tensor(x))
        for p, t in ((p_out, t_out), (p_h, t_h), (p_c, t_c)):
            np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-5,
                                       atol=1e-6)


def _error_cases(lib):
    nn = lib.nn
    z = lib.zeros
    return [
        lambda: nn.RNN(3, 4)(z(5, 2, 4)),
        lambda: nn.RNN(3, 4)(z(5, 2, 3), z(1, 3, 4)),
        lambda: nn.RNN(3, 4)(z(5, 2, 3), z(3, 4)),
        lambda: nn.RNN(3, 4)(z(5, 3), z(1, 1, 4)),
        lambda: nn.RNN(3, 4)(z(5)),
        lambda: nn.GRU(3, 4)(z(0, 2, 3)),
        lambda: nn.GRU(3, 4, bidirectional=True)(z(5, 2, 3), z(1, 2, 4)),
        lambda: nn.LSTM(3, 4)(z(5, 2, 3), (z(1, 2, 4), z(1, 2, 5))),
        lambda: nn.LSTM(3, 4)(z(5, 3), (z(1, 1, 4), z(1, 1, 4))),
        lambda: nn.LSTM(3, 4, proj_size=2)(z(5, 2, 3), (z(1, 2, 4), z(1, 2, 4))),
        lambda: nn.LSTM(3, 4)(z(2, 2, 3, 1)),
        lambda: nn.RNN(3, 4, nonlinearity="sigmoid"),
        lambda: nn.RNN(3, 4, proj_size=2),
        lambda: nn.GRU(3, 4, proj_size=0),
        lambda: nn.LSTM(3, 4, proj_size=4),
        lambda: nn.LSTM(3, 4, proj_size=-1),
        lambda: nn.LSTM(3.0, 4),
        lambda: nn.LSTM(3, 0),
        lambda: nn.LSTM(3, 4, num_layers=0),
        lambda: nn.LSTM(3, 4, dropout=1.5),
        lambda: nn.LSTM(3, 4, bias=1),
        lambda: nn.LSTM(3, 4, batch_first=None),
        lambda: nn.RNNCell(3, 4)(z(2, 2, 3)),
        lambda: nn.RNNCell(3, 4)(z(2, 3), z(1, 2, 4)),
        lambda: nn.RNNCell(3, 4, nonlinearity="gelu")(z(2, 3)),
        lambda: nn.LSTMCell(3, 4)(z(2, 3), (z(2, 4), z(2, 2, 4))),
        lambda: nn.LSTMCell(3, 4)(z(2, 3), (z(2, 4), z(2, 5))),
        lambda: nn.LSTMCell(3, 4)(z(3), (z(1, 4), z(4))),
        lambda: nn.GRUCell(3, 4)(z(2, 4)),
        lambda: nn.GRUCell(3, 4)(z(2, 3), z(3, 4)),
    ]


def test_errors_torch_parity():
    torch = _torch()
    for i, (pc, tc) in enumerate(zip(_error_cases(pve), _error_cases(torch))):
        with pytest.raises(Exception) as t_err:
            tc()
        with pytest.raises(type(t_err.value)) as p_err:
            pc()
        # the layer is named, and torch's wording kept
        assert str(t_err.value).split(" (")[0] in str(p_err.value), (i, p_err.value)


# ------------------------------------------------------------------ a tiny CRNN
def _crnn(lib):
    nn = lib.nn

    class CRNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.rnn = nn.LSTM(4 * 4, 6, bidirectional=True)
            self.fc = nn.Linear(12, 5)

        def forward(self, img):
            f = self.conv(img).relu()                   # (N, C, H, W)
            n, c, h, w = f.shape
            f = f.permute(3, 0, 1, 2).reshape(w, n, c * h)  # columns as time steps
            out, _ = self.rnn(f)
            return self.fc(out)                          # (W, N, classes)

    return CRNN()


def test_crnn_sgd_step_matches_torch():
    torch = _torch()
    tmodel, pmodel = _crnn(torch), _crnn(pve)
    _load_from_torch(pmodel, tmodel)
    img = rng.standard_normal((2, 1, 4, 7)).astype(np.float32)
    target = rng.standard_normal((7, 2, 5)).astype(np.float32)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9)
    popt = pve.optim.SGD(pmodel.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        t_loss = ((tmodel(torch.tensor(img)) - torch.tensor(target)) ** 2).mean()
        p_loss = ((pmodel(pve.tensor(img)) - pve.tensor(target)) ** 2).mean()
        np.testing.assert_allclose(p_loss.item(), t_loss.item(), rtol=1e-5)
        topt.zero_grad()
        popt.zero_grad()
        t_loss.backward()
        p_loss.backward()
        topt.step()
        popt.step()
    psd = pmodel.state_dict()
    for k, v in tmodel.state_dict().items():
        np.testing.assert_allclose(psd[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
