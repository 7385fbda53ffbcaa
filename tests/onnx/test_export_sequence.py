"""pve.onnx.export of the sequence layers: RNN / GRU / LSTM (and their cells) as ONNX's
RNN / GRU / LSTM operators, Embedding as Gather, scaled_dot_product_attention,
MultiheadAttention and the Transformer encoder as MatMul / Softmax / Transpose / Reshape
graphs, LayerNorm below opset 17 as its formula; a CRNN and a transformer classifier.

Each file passes onnx.checker, then onnxruntime and pve.onnx.InferenceSession run it on
the example's batch and on another batch (and sequence length) through the dynamic axes,
compared with the pve model's own output (tests/reference/onnx_roundtrip.py's tolerance).
Where torch is at hand, onnxruntime's output is also compared with torch's modules holding
the same weights (gate order, masks), an independent reference. onnx, onnxruntime and
torch are test extras: the tests that need them skip, saying so.
"""

from __future__ import annotations


import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import nn
from pyvision_engine.nn import functional as F
from pyvision_engine.nn.utils.rnn import PackedSequence, pack_padded_sequence
from pyvision_engine.onnx import export
from reference.onnx_roundtrip import RNG, assert_close, check, run

# --------------------------------------------------------------------------- helpers
def _flat(result):
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in _flat(item)]
    return [result]


def _reference(model, arrays):
    with pve.no_grad():
        out = model(*[pve.Tensor(a.copy()) for a in arrays])
    return [t.numpy() for t in _flat(out)]


def _export(model, arrays, names_in, names_out, tmp_path, dynamic=None, opset=17):
    path = tmp_path / "model.onnx"
    export(model, tuple(arrays), path, input_names=names_in, output_names=names_out,
           dynamic_axes=dynamic, opset_version=opset)
    return path, check(path).graph


def _compare(path, model, arrays, names_in):
    """onnxruntime and pve.onnx.InferenceSession on the file against the model."""
    feeds = dict(zip(names_in, arrays))
    want = _reference(model, arrays)
    got_ort = run(path, feeds)
    got_pve = pve.onnx.InferenceSession(str(path)).run(None, feeds)
    assert len(got_ort) == len(got_pve) == len(want)
    for ort_out, pve_out, expected in zip(got_ort, got_pve, want):
        assert ort_out.shape == expected.shape
        assert_close(ort_out, expected)
        assert_close(np.asarray(pve_out), expected)
    return got_ort


def _ops(graph):
    return [n.op_type for n in graph.node]


def _torch():
    return pytest.importorskip("torch", reason="torch (a test extra) is the independent "
                                               "reference for the gate order and masks")


def _to_torch(pve_module, torch_module):
    torch = _torch()
    state = {k: torch.from_numpy(np.array(v)) for k, v in pve_module.state_dict().items()}
    torch_module.load_state_dict(state)
    return torch_module.eval()


# --------------------------------------------------------------------------- recurrent layers
class Recurrent(nn.Module):
    """A recurrent layer fed (x), (x, h0) or (x, (h0, c0))."""

    def __init__(self, layer, states):
        super().__init__()
        self.layer, self.states = layer, states

    def forward(self, x, *states):
        if not states:
            return self.layer(x)
        return self.layer(x, states[0] if len(states) == 1 else tuple(states))


LAYERS = {
    "rnn": (nn.RNN, dict()),
    "rnn-2-layers-bidirectional-batch-first-no-bias": (nn.RNN, dict(
        num_layers=2, bidirectional=True, batch_first=True, bias=False)),
    "gru": (nn.GRU, dict()),
    "gru-2-layers-bidirectional": (nn.GRU, dict(num_layers=2, bidirectional=True)),
    "gru-batch-first-no-bias": (nn.GRU, dict(batch_first=True, bias=False)),
    "lstm": (nn.LSTM, dict()),
    "lstm-3-layers-bidirectional-batch-first": (nn.LSTM, dict(
        num_layers=3, bidirectional=True, batch_first=True)),
    "lstm-2-layers-no-bias": (nn.LSTM, dict(num_layers=2, bias=False)),
}
IN, HIDDEN = 3, 4


def _recurrent_case(name, given_state):
    cls, kwargs = LAYERS[name]
    layer = cls(IN, HIDDEN, **kwargs)
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    count = (2 if cls is nn.LSTM else 1) if given_state else 0
    model = Recurrent(layer, count).eval()
    batch_axis = 0 if layer.batch_first else 1

    def make(batch, steps):
        shape = (batch, steps, IN) if layer.batch_first else (steps, batch, IN)
        return [RNG.standard_normal(shape).astype(np.float32)] + [
            RNG.standard_normal((rows, batch, HIDDEN)).astype(np.float32) for _ in range(count)]

    names_in = ["x", "h0", "c0"][:1 + count]
    names_out = ["out", "h_n", "c_n"][:3 if cls is nn.LSTM else 2]
    sequence = {batch_axis: "batch", 1 - batch_axis: "steps"}
    dynamic = {name: sequence for name in ("x", "out")}
    dynamic.update({name: {1: "batch"} for name in ("h0", "c0", "h_n", "c_n")
                    if name in names_in + names_out})
    return model, make, names_in, names_out, dynamic


@pytest.mark.parametrize("given_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_recurrent_layers_as_onnx_recurrent_operators(name, given_state, tmp_path):
    model, make, names_in, names_out, dynamic = _recurrent_case(name, given_state)
    path, graph = _export(model, make(2, 5), names_in, names_out, tmp_path, dynamic)
    op_type = {nn.RNN: "RNN", nn.GRU: "GRU", nn.LSTM: "LSTM"}[type(model.layer)]
    assert _ops(graph).count(op_type) == model.layer.num_layers  # a chain of one per layer
    assert not {"MatMul", "Gemm", "Loop", "Scan"} & set(_ops(graph))
    for batch, steps in ((2, 5), (3, 7)):  # the example's sizes, then others
        _compare(path, model, make(batch, steps), names_in)


@pytest.mark.parametrize("opset", [13, 14, 21])
def test_recurrent_layers_in_every_opset(opset, tmp_path):
    model, make, names_in, names_out, dynamic = _recurrent_case(
        "lstm-3-layers-bidirectional-batch-first", True)
    path, graph = _export(model, make(2, 4), names_in, names_out, tmp_path, dynamic, opset)
    _compare(path, model, make(3, 6), names_in)


def test_rnn_with_relu(tmp_path):
    """nonlinearity='relu': the ONNX RNN's activations attribute (a list of strings)."""
    model = Recurrent(nn.RNN(IN, HIDDEN, num_layers=2, nonlinearity="relu",
                             bidirectional=True), 0).eval()
    x = RNG.standard_normal((5, 2, IN)).astype(np.float32)
    path, graph = _export(model, [x], ["x"], ["out", "h_n"], tmp_path)
    rnns = [{a.name: list(a.strings) for a in n.attribute} for n in graph.node
            if n.op_type == "RNN"]
    assert len(rnns) == 2 and all(a["activations"] == [b"Relu", b"Relu"] for a in rnns)
    _compare(path, model, [x], ["x"])


@pytest.mark.parametrize("name", ["rnn", "gru-2-layers-bidirectional",
                                  "lstm-3-layers-bidirectional-batch-first"])
def test_unbatched_recurrent_layers(name, tmp_path):
    cls, kwargs = LAYERS[name]
    layer = cls(IN, HIDDEN, **kwargs)
    rows = layer.num_layers * (2 if layer.bidirectional else 1)
    count = 2 if cls is nn.LSTM else 1
    model = Recurrent(layer, count).eval()
    arrays = [RNG.standard_normal((6, IN)).astype(np.float32)] + [
        RNG.standard_normal((rows, HIDDEN)).astype(np.float32) for _ in range(count)]
    names_in = ["x", "h0", "c0"][:1 + count]
    path, _ = _export(model, arrays, names_in, None, tmp_path)
    outs = _compare(path, model, arrays, names_in)
    assert outs[0].shape == (6, HIDDEN * (2 if layer.bidirectional else 1))


class Cell(nn.Module):
    def __init__(self, cell, given_state):
        super().__init__()
        self.cell, self.given_state = cell, given_state

    def forward(self, x, *states):
        if not self.given_state:
            return self.cell(x)
        return self.cell(x, states[0] if len(states) == 1 else tuple(states))


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("given_state", [False, True], ids=["zero-state", "given-state"])
@pytest.mark.parametrize("make_cell", [
    lambda: nn.RNNCell(IN, HIDDEN), lambda: nn.GRUCell(IN, HIDDEN),
    lambda: nn.LSTMCell(IN, HIDDEN), lambda: nn.GRUCell(IN, HIDDEN, bias=False)],
    ids=["rnn-cell", "gru-cell", "lstm-cell", "gru-cell-no-bias"])
def test_recurrent_cells_as_one_step(make_cell, given_state, batched, tmp_path):
    cell = make_cell()
    count = (2 if isinstance(cell, nn.LSTMCell) else 1) if given_state else 0
    model = Cell(cell, given_state).eval()

    def make(batch):
        lead = (batch,) if batched else ()
        return [RNG.standard_normal(lead + (IN,)).astype(np.float32)] + [
            RNG.standard_normal(lead + (HIDDEN,)).astype(np.float32) for _ in range(count)]

    names_in = ["x", "h", "c"][:1 + count]
    names_out = ["h_next", "c_next"][:2 if isinstance(cell, nn.LSTMCell) else 1]
    dynamic = {n: {0: "batch"} for n in names_in + names_out} if batched else None
    path, graph = _export(model, make(2), names_in, names_out, tmp_path, dynamic)
    assert {"RNN", "GRU", "LSTM"} & set(_ops(graph))
    for batch in (2, 5) if batched else (None,):
        _compare(path, model, make(batch), names_in)


@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_recurrent_gate_order_against_torch(kind, tmp_path):
    """torch's i, f, g, o (LSTM) and r, z, n (GRU) reordered for ONNX: onnxruntime on the
    file equals torch's layer holding the same weights."""
    torch = _torch()
    kwargs = dict(num_layers=2, bidirectional=True, batch_first=True)
    layer = getattr(nn, kind)(IN, HIDDEN, **kwargs)
    reference = _to_torch(layer, getattr(torch.nn, kind)(IN, HIDDEN, **kwargs))
    count = 2 if kind == "LSTM" else 1
    model = Recurrent(layer, count).eval()
    arrays = [RNG.standard_normal((3, 6, IN)).astype(np.float32)] + [
        RNG.standard_normal((4, 3, HIDDEN)).astype(np.float32) for _ in range(count)]
    names_in = ["x", "h0", "c0"][:1 + count]
    path, _ = _export(model, arrays, names_in, None, tmp_path)
    got = run(path, dict(zip(names_in, arrays)))
    with torch.no_grad():
        states = [torch.from_numpy(a) for a in arrays[1:]]
        want = reference(torch.from_numpy(arrays[0]), states[0] if count == 1 else tuple(states))
    for g, w in zip(got, _flat(want), strict=True):
        assert_close(g, w.numpy())


class HalvedLSTM(nn.LSTM):
    """A subclass whose forward calls LSTM's: that part is still one LSTM node."""

    def forward(self, x, hx=None):
        out, state = super().forward(x, hx)
        return out * 0.5, state


def test_recurrent_subclasses_and_hooks_are_traced_around_the_layer(tmp_path):
    lstm = HalvedLSTM(IN, HIDDEN, batch_first=True)
    lstm.register_forward_pre_hook(lambda module, args: (args[0] * 2.0,))
    lstm.register_forward_hook(lambda module, args, out: (out[0] + 1.0, out[1]))
    model = Recurrent(lstm, 0).eval()
    x = RNG.standard_normal((2, 5, IN)).astype(np.float32)
    path, graph = _export(model, [x], ["x"], ["out", "h_n", "c_n"], tmp_path)
    assert _ops(graph).count("LSTM") == 1 and {"Mul", "Add"} <= set(_ops(graph))
    _compare(path, model, [x], ["x"])


# --------------------------------------------------------------------------- embedding
class Lookup(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.embed = nn.Embedding(10, 4, **kwargs)

    def forward(self, tokens):
        return self.embed(tokens) * 2.0


@pytest.mark.parametrize("kwargs", [{}, {"padding_idx": 0}, {"max_norm": 1.5},
                                    {"max_norm": 2.0, "norm_type": 1.0}],
                         ids=["plain", "padding-idx", "max-norm", "max-norm-l1"])
def test_embedding_as_gather(kwargs, tmp_path):
    model = Lookup(**kwargs).eval()
    tokens = np.array([[1, 2, 3], [3, 0, 1]], dtype=np.int64)
    path, graph = _export(model, [tokens], ["tokens"], ["vectors"], tmp_path,
                          {"tokens": {0: "batch", 1: "steps"}, "vectors": {0: "batch", 1: "steps"}})
    assert "Gather" in _ops(graph)
    assert graph.input[0].type.tensor_type.elem_type == 7  # int64
    # rows the example did not look up (max_norm: the graph renormalises them as pve does)
    _compare(path, model, [np.array([[4, 5, 9, 9], [8, 7, 6, 0], [1, 2, 3, 4]], np.int64)],
             ["tokens"])


# --------------------------------------------------------------------------- attention
class Attention(nn.Module):
    """MultiheadAttention fed by name: query [, key, value] [, attn_mask] [,
    key_padding_mask]; self-attention when no key is fed."""

    def __init__(self, names, embed=8, heads=2, call=None, **kwargs):
        super().__init__()
        self.attn = nn.MultiheadAttention(embed, heads, **kwargs)
        self.names, self.call = names, call or {}

    def forward(self, *args):
        a = dict(zip(self.names, args))
        q = a["query"]
        k, v = a.get("key", q), a.get("value", a.get("key", q))
        out, weights = self.attn(q, k, v, attn_mask=a.get("attn_mask"),
                                 key_padding_mask=a.get("key_padding_mask"), **self.call)
        return out if weights is None else (out, weights)


L, S, E = 4, 6, 8


def _masks(kind, rows, cols, lead=()):
    """bool: True = masked out (column 0 never, so no row is fully masked); float: added."""
    if kind == "bool":
        mask = RNG.random(lead + (rows, cols)) < 0.4
        mask[..., 0] = False
        return mask
    mask = RNG.standard_normal(lead + (rows, cols)).astype(np.float32)
    mask[..., 1] = -np.inf
    return mask


# name: (module kwargs, call kwargs, fed inputs, mask kinds: {input: kind})
MHA_CASES = {
    "self-batch-first-padding-mask": (dict(batch_first=True), {}, ["query"],
                                      {"key_padding_mask": "bool"}),
    "self-bool-mask-no-weights": ({}, dict(need_weights=False), ["query"],
                                  {"attn_mask": "bool"}),
    "cross-kdim-vdim-float-masks-per-head-weights": (
        dict(kdim=5, vdim=3), dict(average_attn_weights=False), ["query", "key", "value"],
        {"attn_mask": "float", "key_padding_mask": "float"}),
    "cross-3d-mask-bias-kv-zero-attn": (
        dict(add_bias_kv=True, add_zero_attn=True, batch_first=True), dict(need_weights=False),
        ["query", "key"], {"attn_mask": "bool3d", "key_padding_mask": "bool"}),
    "no-bias-both-masks-weights": (dict(bias=False), {}, ["query", "key"],
                                   {"attn_mask": "bool", "key_padding_mask": "bool"}),
    "causal-hint": ({}, dict(need_weights=False, is_causal=True), ["query"],
                    {"attn_mask": "causal"}),
    "causal-hint-with-padding-mask": (dict(batch_first=True),
                                      dict(need_weights=False, is_causal=True), ["query"],
                                      {"attn_mask": "causal", "key_padding_mask": "bool"}),
}


def _mha_inputs(case, batch, batched=True):
    kwargs, _, fed, masks = MHA_CASES[case]
    first = kwargs.get("batch_first", False)
    cross = "key" in fed
    keys = S if cross else L

    def seq(steps, width):
        if not batched:
            return RNG.standard_normal((steps, width)).astype(np.float32)
        shape = (batch, steps, width) if first else (steps, batch, width)
        return RNG.standard_normal(shape).astype(np.float32)

    arrays = {"query": seq(L, E), "key": seq(S, kwargs.get("kdim", E)),
              "value": seq(S, kwargs.get("vdim", E))}
    for name, kind in masks.items():
        if name == "key_padding_mask":
            lead_batch = (batch,) if batched else ()
            arrays[name] = (_masks(kind, 1, keys, lead_batch)[..., 0, :] if kind == "bool"
                            else RNG.standard_normal(lead_batch + (keys,)).astype(np.float32))
            if kind == "bool" and batched:
                arrays[name][-1, keys // 2:] = True  # padding at the end of a sequence
        elif kind == "causal":
            arrays[name] = np.triu(np.ones((L, keys), dtype=bool), 1)
        elif kind == "bool3d":
            arrays[name] = _masks("bool", L, keys, ((batch if batched else 1) * 2,))
        else:
            arrays[name] = _masks(kind, L, keys)
    names = fed + list(masks)
    return names, [arrays[n] for n in names]


def _mha_dynamic(case, names, outputs):
    kwargs, _, _, masks = MHA_CASES[case]
    batch_axis = 0 if kwargs.get("batch_first") else 1
    dims = {n: {batch_axis: "batch"} for n in ("query", "key", "value", "out")}
    dims.update({"key_padding_mask": {0: "batch"}, "weights": {0: "batch"}})
    if masks.get("attn_mask") == "bool3d":
        dims["attn_mask"] = {0: "batch_heads"}
    return {n: d for n, d in dims.items() if n in names + outputs}


@pytest.mark.parametrize("case", sorted(MHA_CASES))
def test_multihead_attention(case, tmp_path):
    kwargs, call, fed, masks = MHA_CASES[case]
    names, arrays = _mha_inputs(case, 2)
    model = Attention(names, call=call, **kwargs).eval()
    outputs = ["out"] if call.get("need_weights") is False else ["out", "weights"]
    path, graph = _export(model, arrays, names, outputs, tmp_path,
                          _mha_dynamic(case, names, outputs))
    assert {"MatMul", "Softmax", "Transpose", "Reshape"} <= set(_ops(graph))
    for value_info, array in zip(graph.input, arrays):  # (masks fed as bool or float)
        assert value_info.type.tensor_type.elem_type == (9 if array.dtype == bool else 1)
    for batch in (2, 3):
        _compare(path, model, _mha_inputs(case, batch)[1], names)


@pytest.mark.parametrize("need_weights", [True, False])
def test_unbatched_multihead_attention(need_weights, tmp_path):
    names = ["query", "key", "attn_mask", "key_padding_mask"]
    model = Attention(names, call=dict(need_weights=need_weights), add_bias_kv=True).eval()
    arrays = [RNG.standard_normal((L, E)).astype(np.float32),
              RNG.standard_normal((S, E)).astype(np.float32),
              _masks("bool", L, S, (2,)), np.arange(S) >= S - 2]
    path, _ = _export(model, arrays, names, None, tmp_path)
    outs = _compare(path, model, arrays, names)
    assert outs[0].shape == (L, E)


def test_causal_hint_with_another_mask_attends_causally(tmp_path):
    """is_causal=True makes pve (as torch) ignore the mask it was given: so does the graph,
    whatever mask is fed."""
    names = ["query", "attn_mask"]
    model = Attention(names, call=dict(need_weights=False, is_causal=True)).eval()
    x = RNG.standard_normal((L, 2, E)).astype(np.float32)
    path, _ = _export(model, [x, np.zeros((L, L), bool)], names, None, tmp_path)
    causal = np.triu(np.ones((L, L), bool), 1)
    got = run(path, {"query": x, "attn_mask": np.zeros((L, L), bool)})[0]
    assert_close(got, _reference(model, [x, causal])[0])


def test_fully_masked_rows_are_zeros_without_weights(tmp_path):
    """Without need_weights pve (as torch's SDPA) gives zeros for a query that sees no key
    (out_proj's bias then): the graph too, where a plain Softmax gives NaN."""
    names = ["query", "key_padding_mask"]
    model = Attention(names, call=dict(need_weights=False), batch_first=True).eval()
    with pve.no_grad():
        model.attn.out_proj.bias.copy_(RNG.standard_normal(E).astype(np.float32))
    x = RNG.standard_normal((2, L, E)).astype(np.float32)
    kpm = np.zeros((2, L), bool)
    kpm[1] = True  # the second sequence is all padding
    path, _ = _export(model, [x, kpm], names, None, tmp_path)
    got = _compare(path, model, [x, kpm], names)[0]
    assert np.isfinite(got).all()
    bias = model.attn.out_proj.bias.detach().numpy()
    np.testing.assert_allclose(got[1], np.broadcast_to(bias, (L, E)), rtol=1e-6)


def test_multihead_attention_against_torch(tmp_path):
    torch = _torch()
    names = ["query", "key", "value", "attn_mask", "key_padding_mask"]
    model = Attention(names, kdim=5, vdim=3, batch_first=True, add_bias_kv=True).eval()
    reference = _to_torch(model.attn, torch.nn.MultiheadAttention(
        E, 2, kdim=5, vdim=3, batch_first=True, add_bias_kv=True))
    x = [RNG.standard_normal(s).astype(np.float32) for s in ((2, L, E), (2, S, 5), (2, S, 3))]
    masks = [_masks("bool", L, S), np.arange(S)[None, :] >= np.array([[S], [S - 2]])]
    path, _ = _export(model, x + masks, names, None, tmp_path)
    got = run(path, dict(zip(names, x + masks)))
    with torch.no_grad():
        t = [torch.from_numpy(a) for a in x + masks]
        want = reference(*t[:3], attn_mask=t[3], key_padding_mask=t[4])
    for g, w in zip(got, want, strict=True):
        assert_close(g, w.numpy())


class Sdpa(nn.Module):
    def __init__(self, names, **kwargs):
        super().__init__()
        self.names, self.kwargs = names, kwargs

    def forward(self, *args):
        a = dict(zip(self.names, args))
        return F.scaled_dot_product_attention(a["q"], a["k"], a["v"], a.get("mask"),
                                              **self.kwargs)


def _dead_row_mask(batch):
    mask = RNG.random((batch, 1, L, S)) < 0.6  # True = takes part
    mask[..., 0] = True
    mask[0, 0, 2] = False  # a query that sees no key: zeros
    return mask


# name: (kwargs, (query heads, key heads) or None for 3-D inputs, mask maker or None)
SDPA_CASES = {
    "plain": ({}, (2, 2), None),
    "bool-mask-broadcast": ({}, (2, 2), lambda n: RNG.random((L, S)) < 0.7),
    "float-mask-and-scale": (dict(scale=0.3), (2, 2),
                             lambda n: RNG.standard_normal((n, 2, L, S)).astype(np.float32)),
    "causal": (dict(is_causal=True), (2, 2), None),
    "grouped-query": (dict(enable_gqa=True), (4, 2), None),
    "three-dims": ({}, None, None),
    "fully-masked-row": ({}, (2, 2), _dead_row_mask),
}


@pytest.mark.parametrize("case", sorted(SDPA_CASES))
def test_scaled_dot_product_attention(case, tmp_path):
    kwargs, heads, mask = SDPA_CASES[case]

    def make(batch):
        q_lead, k_lead = ((batch,), (batch,)) if heads is None else (
            (batch, heads[0]), (batch, heads[1]))
        arrays = [RNG.standard_normal(q_lead + (L, E)).astype(np.float32),
                  RNG.standard_normal(k_lead + (S, E)).astype(np.float32),
                  RNG.standard_normal(k_lead + (S, 5)).astype(np.float32)]
        return arrays + ([] if mask is None else [mask(batch)])

    names = ["q", "k", "v", "mask"][:3 + (mask is not None)]
    model = Sdpa(names, **kwargs).eval()
    arrays = make(2)
    dynamic = {n: {0: "batch"} for n in names + ["out"] if n != "mask" or arrays[-1].ndim == 4}
    path, graph = _export(model, arrays, names, ["out"], tmp_path, dynamic)
    assert {"MatMul", "Softmax"} <= set(_ops(graph))
    for batch in (2, 3):
        got = _compare(path, model, make(batch), names)[0]
        assert np.isfinite(got).all()


def test_scaled_dot_product_attention_against_torch(tmp_path):
    """A bool mask attends where True, grouped key heads repeat in place: as torch."""
    torch = _torch()
    names = ["q", "k", "v", "mask"]
    model = Sdpa(names, enable_gqa=True, scale=0.4).eval()
    arrays = [RNG.standard_normal((2, 4, L, E)).astype(np.float32),
              RNG.standard_normal((2, 2, S, E)).astype(np.float32),
              RNG.standard_normal((2, 2, S, 3)).astype(np.float32), _dead_row_mask(2)]
    path, _ = _export(model, arrays, names, None, tmp_path)
    (got,) = run(path, dict(zip(names, arrays)))
    q, k, v, mask = (torch.from_numpy(a) for a in arrays)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, mask, enable_gqa=True,
                                                            scale=0.4)
    assert_close(got, want.numpy())


# --------------------------------------------------------------------------- transformer
class Encoder(nn.Module):
    def __init__(self, layer_kwargs, layers=2, masks=("key_padding_mask",), causal=None):
        super().__init__()
        layer = nn.TransformerEncoderLayer(E, 2, 16, **layer_kwargs)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(E))
        self.masks = masks
        mask = None
        if causal == "float":
            mask = pve.Tensor(np.triu(np.full((L, L), -np.inf, np.float32), 1))
        elif causal == "bool":  # (True = masked out, as a bool padding mask beside it)
            mask = pve.Tensor(np.triu(np.ones((L, L), bool), 1))
        self.register_buffer("causal", mask)

    def forward(self, x, *masks):
        a = dict(zip(self.masks, masks))
        return self.encoder(x, mask=a.get("mask", self.causal),
                            src_key_padding_mask=a.get("key_padding_mask"))


ENCODERS = {
    "post-norm-relu-batch-first-padding": (dict(batch_first=True), ("key_padding_mask",), None),
    "pre-norm-gelu-float-mask": (dict(norm_first=True, activation="gelu"), ("mask",), None),
    "causal-float-buffer": (dict(batch_first=True, activation="gelu"), (), "float"),
    "causal-bool-buffer-and-padding": (dict(), ("key_padding_mask",), "bool"),
}


def _encoder_inputs(case, batch):
    kwargs, masks, _ = ENCODERS[case]
    first = kwargs.get("batch_first", False)
    arrays = [RNG.standard_normal((batch, L, E) if first else (L, batch, E)).astype(np.float32)]
    for name in masks:
        if name == "mask":
            arrays.append(_masks("float", L, L))
        else:
            padding = np.zeros((batch, L), bool)
            padding[-1, L // 2:] = True
            arrays.append(padding)
    return arrays


@pytest.mark.parametrize("opset", [13, 17, 21])
@pytest.mark.parametrize("case", sorted(ENCODERS))
def test_transformer_encoder(case, opset, tmp_path):
    kwargs, masks, causal = ENCODERS[case]
    model = Encoder(kwargs, masks=masks, causal=causal).eval()
    names = ["x"] + list(masks)
    axis = 0 if kwargs.get("batch_first") else 1
    dynamic = {"x": {axis: "batch"}, "y": {axis: "batch"}, "key_padding_mask": {0: "batch"}}
    dynamic = {n: d for n, d in dynamic.items() if n in names + ["y"]}
    path, graph = _export(model, _encoder_inputs(case, 2), names, ["y"], tmp_path, dynamic,
                          opset)
    assert ("LayerNormalization" in _ops(graph)) == (opset >= 17)
    for batch in (2, 3):
        _compare(path, model, _encoder_inputs(case, batch), names)


def test_causal_mask_fed_to_an_encoder_is_read_at_run_time(tmp_path):
    """A TransformerEncoder tells a causal mask from its values (is_causal=None): the
    example's causal mask takes the hint's path, yet the graph reads the mask fed, as pve
    does with a mask that is not causal."""
    model = Encoder(dict(batch_first=True), masks=("mask",)).eval()
    x = RNG.standard_normal((2, L, E)).astype(np.float32)
    causal = np.triu(np.full((L, L), -np.inf, np.float32), 1)
    path, _ = _export(model, [x, causal], ["x", "mask"], ["y"], tmp_path)
    _compare(path, model, [x, causal], ["x", "mask"])
    _compare(path, model, [x, _masks("float", L, L)], ["x", "mask"])


@pytest.mark.parametrize("opset", [13, 17])
def test_layer_norm_below_opset_17_is_its_formula(opset, tmp_path):
    model = nn.Sequential(nn.LayerNorm([3, 5]), nn.LayerNorm(5, elementwise_affine=False),
                          nn.LayerNorm(5, bias=False)).eval()
    for m in model.modules():
        if isinstance(m, nn.LayerNorm) and m.weight is not None:
            with pve.no_grad():
                m.weight.copy_(RNG.uniform(0.5, 1.5, m.weight.shape).astype(np.float32))
    x = (RNG.standard_normal((2, 4, 3, 5)) * 3 + 1).astype(np.float32)
    path, graph = _export(model, [x], ["x"], ["y"], tmp_path, {"x": {0: "n"}, "y": {0: "n"}},
                          opset)
    assert _ops(graph).count("LayerNormalization") == (3 if opset >= 17 else 0)
    _compare(path, model, [x], ["x"])


# --------------------------------------------------------------------------- small models
class CRNN(nn.Module):
    """Conv features -> one step per image column -> bidirectional LSTM -> Linear."""

    def __init__(self, classes=5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4),
                                      nn.ReLU(), nn.MaxPool2d(2))
        self.lstm = nn.LSTM(4 * 4, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(12, classes)

    def forward(self, images):
        f = self.features(images)                       # (N, 4, 4, W / 2)
        n, c, h, w = f.shape
        steps = f.permute(0, 3, 1, 2).reshape(n, w, c * h)
        out, _ = self.lstm(steps)
        return F.log_softmax(self.head(out), dim=-1)    # (N, W / 2, classes)


def test_crnn(tmp_path):
    model = CRNN()
    bn = model.features[1]
    bn.running_mean.copy_(RNG.normal(0, 0.2, 4).astype(np.float32))
    bn.running_var.copy_(RNG.uniform(0.5, 2, 4).astype(np.float32))
    model.eval()
    images = RNG.standard_normal((2, 1, 8, 12)).astype(np.float32)
    path, graph = _export(model, [images], ["images"], ["log_probs"], tmp_path,
                          {"images": {0: "batch"}, "log_probs": {0: "batch"}})
    assert {"Conv", "LSTM", "MaxPool"} <= set(_ops(graph))
    for batch in (2, 4):
        _compare(path, model, [RNG.standard_normal((batch, 1, 8, 12)).astype(np.float32)],
                 ["images"])


class TextClassifier(nn.Module):
    """Embedding + learned positions -> transformer encoder (padding mask) -> mean -> Linear."""

    def __init__(self, vocab=20, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, E, padding_idx=0)
        self.positions = nn.Parameter(RNG.standard_normal((1, L, E)).astype(np.float32) * 0.1)
        layer = nn.TransformerEncoderLayer(E, 2, 16, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(E, classes)

    def forward(self, tokens, padding):
        x = self.embed(tokens) + self.positions
        return self.head(self.encoder(x, src_key_padding_mask=padding).mean(1))


def _text_batch(batch):
    tokens = RNG.integers(1, 20, (batch, L)).astype(np.int64)
    padding = np.zeros((batch, L), bool)
    padding[0, L - 1:] = True
    tokens[padding] = 0
    return [tokens, padding]


@pytest.mark.parametrize("opset", [14, 17])
def test_transformer_text_classifier(opset, tmp_path):
    model = TextClassifier().eval()
    names = ["tokens", "padding"]
    path, graph = _export(model, _text_batch(2), names, ["logits"], tmp_path,
                          {n: {0: "batch"} for n in names + ["logits"]}, opset)
    assert {"Gather", "Where", "Softmax"} <= set(_ops(graph))
    for batch in (2, 5):
        _compare(path, model, _text_batch(batch), names)


# --------------------------------------------------------------------------- refusals
class Packed(nn.Module):
    """An LSTM on a PackedSequence, packed by pack_padded_sequence or made directly."""

    def __init__(self, pack):
        super().__init__()
        self.lstm, self.pack = nn.LSTM(IN, HIDDEN), pack

    def forward(self, x):
        if self.pack:
            packed = pack_padded_sequence(x, [x.shape[0], x.shape[0] - 2])
        else:  # (two sequences of full length: the data as the time-major rows)
            packed = PackedSequence(x.reshape(-1, IN), [2] * x.shape[0])
        return self.lstm(packed)[0].data


class MaskMadeInForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(E, 2)

    def forward(self, x):
        mask = pve.Tensor(np.triu(np.ones((x.shape[0],) * 2, bool), 1))
        return self.attn(x, x, x, attn_mask=mask)[0]


@pytest.mark.parametrize("model,shape,pattern", [
    (nn.LSTM(IN, HIDDEN, proj_size=2), (5, 2, IN), r"LSTM with proj_size=2.*no projection"),
    (Packed(pack=True), (5, 2, IN), r"a PackedSequence: .*pad the sequences"),
    (Packed(pack=False), (5, 2, IN), r"LSTM on a PackedSequence.*pad the sequences"),
    (MaskMadeInForward(), (L, 2, E), "neither a traced value nor a parameter"),
], ids=["lstm-proj-size", "pack-padded-sequence", "packed-sequence", "untraced-mask"])
def test_unsupported_sequence_features_are_not_implemented_errors(model, shape, pattern,
                                                                    tmp_path):
    x = RNG.standard_normal(shape).astype(np.float32)
    with pytest.raises(NotImplementedError, match=pattern) as info:
        export(model.eval(), x, tmp_path / "m.onnx")
    assert "Supported:" in str(info.value)
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("model,shape,pattern", [
    (nn.LSTM(IN, HIDDEN, num_layers=2, dropout=0.3), (5, 2, IN),
     r"the model \(LSTM\) is in training mode"),
    (Attention(["query"], dropout=0.2), (L, 2, E), r"attn \(MultiheadAttention\) is in training"),
    (Sdpa(["q", "k", "v"], dropout_p=0.1), (2, L, E),
     r"scaled_dot_product_attention with dropout_p=0.1 drops attention weights at random"),
], ids=["lstm-dropout", "attention-dropout", "sdpa-dropout"])
def test_random_sequence_layers_are_value_errors(model, shape, pattern, tmp_path):
    x = RNG.standard_normal(shape).astype(np.float32)
    args = (x,) * (3 if isinstance(model, Sdpa) else 1)
    with pytest.raises(ValueError, match=pattern):
        export(model, args, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_example_inputs_of_other_types_are_type_errors(tmp_path):
    with pytest.raises(TypeError, match=r"float32 \(int64 for indices, bool for masks\), got "
                                         "int32"):
        export(Lookup().eval(), np.zeros((2, 3), np.int32), tmp_path / "m.onnx")
