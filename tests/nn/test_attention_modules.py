"""F.scaled_dot_product_attention, nn.MultiheadAttention, nn.TransformerEncoderLayer and
nn.TransformerEncoder against float64 numpy references, float64 finite differences and
torch (parity tests skip without torch)."""

import math
import warnings

import numpy as np
import pytest

import pyvision_engine as pve
import pyvision_engine.nn as nn
import pyvision_engine.nn.functional as F
from reference.gradcheck import assert_grad_close, numerical_grads

rng = np.random.default_rng(11)


def randn(*shape):
    return rng.standard_normal(shape)


def f32(x):
    return np.asarray(x, dtype=np.float32)


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch not installed: attention parity not tested")


# ------------------------------------------------------------------ numpy float64 references

def np_softmax(s, safe):
    dead = np.all(s == -np.inf, axis=-1, keepdims=True)
    s = np.where(dead, 0.0, s)
    e = np.exp(s - s.max(-1, keepdims=True))
    w = e / e.sum(-1, keepdims=True)
    return np.where(dead, 0.0 if safe else np.nan, w)


def np_sdpa(q, k, v, mask=None, is_causal=False, scale=None, gqa=False):
    if gqa and q.shape[-3] != k.shape[-3]:
        r = q.shape[-3] // k.shape[-3]
        k, v = np.repeat(k, r, axis=-3), np.repeat(v, r, axis=-3)
    s = q @ np.swapaxes(k, -1, -2) * (1 / math.sqrt(q.shape[-1]) if scale is None else scale)
    L, S = q.shape[-2], k.shape[-2]
    if is_causal:
        mask = np.tril(np.ones((L, S), bool))
    if mask is not None:
        s = s + (np.where(mask, 0.0, -np.inf) if mask.dtype == bool else mask)
    return np_softmax(s, True) @ v


def np_linear(x, w, b):
    return x @ w.T + (0.0 if b is None else b)


def np_additive(m):
    return None if m is None else (np.where(m, -np.inf, 0.0) if m.dtype == bool else m)


def np_mha(q, k, v, p, heads, kpm=None, attn_mask=None, average=True, safe=False):
    """Sequence-first (L, N, E) multi-head attention with torch's parameter names in p
    (in_proj_weight or q/k/v_proj_weight, in_proj_bias, out_proj.weight/bias)."""
    L, N, E = q.shape
    S = k.shape[0]
    hd = E // heads
    if p.get("in_proj_weight") is not None:
        wq, wk, wv = np.split(p["in_proj_weight"], 3)
    else:
        wq, wk, wv = p["q_proj_weight"], p["k_proj_weight"], p["v_proj_weight"]
    b = p.get("in_proj_bias")
    bq, bk, bv = (None, None, None) if b is None else np.split(b, 3)
    Q = np_linear(q, wq, bq).reshape(L, N, heads, hd).transpose(1, 2, 0, 3)
    K = np_linear(k, wk, bk).reshape(S, N, heads, hd).transpose(1, 2, 0, 3)
    V = np_linear(v, wv, bv).reshape(S, N, heads, hd).transpose(1, 2, 0, 3)
    s = Q @ K.transpose(0, 1, 3, 2) / math.sqrt(hd)  # (N, H, L, S)
    am = np_additive(attn_mask)
    if am is not None:
        s = s + (am if am.ndim == 2 else am.reshape(N, heads, L, S))
    if kpm is not None:
        s = s + np_additive(kpm)[:, None, None, :]
    w = np_softmax(s, safe)
    o = (w @ V).transpose(2, 0, 1, 3).reshape(L, N, E)
    out = np_linear(o, p["out_proj.weight"], p.get("out_proj.bias"))
    return out, (w.mean(1) if average else w)


def np_layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def params64(module):
    return {k: np.asarray(v.detach().numpy(), dtype=np.float64)
            for k, v in module.state_dict().items()}


# ------------------------------------------------------------------ scaled_dot_product_attention

SDPA_CASES = [
    dict(q=(2, 3, 4, 8), k=(2, 3, 5, 8), v=(2, 3, 5, 6)),
    dict(q=(4, 8), k=(5, 8), v=(5, 3)),  # no batch dims
    dict(q=(3, 4, 8), k=(2, 3, 5, 8), v=(2, 3, 5, 8)),  # leading dims broadcast
    dict(q=(2, 1, 3, 2, 4), k=(2, 1, 3, 6, 4), v=(2, 1, 3, 6, 5)),  # 5-D
    dict(q=(2, 3, 4, 8), k=(2, 3, 5, 8), v=(2, 3, 5, 6), mask="bool"),
    dict(q=(2, 3, 4, 8), k=(2, 3, 5, 8), v=(2, 3, 5, 6), mask="bool_bcast"),
    dict(q=(2, 3, 4, 8), k=(2, 3, 5, 8), v=(2, 3, 5, 6), mask="float"),
    dict(q=(2, 3, 4, 8), k=(2, 3, 5, 8), v=(2, 3, 5, 6), causal=True),  # L < S
    dict(q=(2, 3, 6, 8), k=(2, 3, 4, 8), v=(2, 3, 4, 6), causal=True),  # L > S
    dict(q=(2, 3, 4, 8), k=(2, 3, 5, 8), v=(2, 3, 5, 6), scale=0.37),
    dict(q=(2, 6, 4, 8), k=(2, 2, 5, 8), v=(2, 2, 5, 6), gqa=True),
    dict(q=(2, 4, 3, 8), k=(2, 1, 5, 8), v=(2, 1, 5, 8), gqa=True, mask="bool"),
    dict(q=(2, 3, 4, 8), k=(2, 3, 5, 8), v=(2, 3, 5, 6), mask="dead_row"),
]


def make_sdpa_case(c):
    q, k, v = randn(*c["q"]), randn(*c["k"]), randn(*c["v"])
    L, S = c["q"][-2], c["k"][-2]
    mask = None
    if c.get("mask") == "bool":
        mask = rng.random((L, S)) > 0.3
        mask[:, 0] = True
    elif c.get("mask") == "bool_bcast":
        mask = rng.random((c["q"][0], 1, L, S)) > 0.3
        mask[..., 0] = True
    elif c.get("mask") == "float":
        mask = randn(c["q"][0], c["q"][1], L, S)
    elif c.get("mask") == "dead_row":  # a query that may attend to nothing gives zeros
        mask = rng.random((L, S)) > 0.3
        mask[:, 0] = True
        mask[1] = False
    kw = {}
    if c.get("causal"):
        kw["is_causal"] = True
    if "scale" in c:
        kw["scale"] = c["scale"]
    if c.get("gqa"):
        kw["enable_gqa"] = True
    return q, k, v, mask, kw


@pytest.mark.parametrize("case", SDPA_CASES)
def test_sdpa_matches_numpy(case):
    q, k, v, mask, kw = make_sdpa_case(case)
    got = F.scaled_dot_product_attention(f32(q), f32(k), f32(v), mask if mask is None or
                                         mask.dtype == bool else f32(mask), **kw)
    want = np_sdpa(q, k, v, mask, kw.get("is_causal", False), kw.get("scale"),
                   kw.get("enable_gqa", False))
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    if case.get("mask") == "dead_row":
        assert np.all(got.numpy()[..., 1, :] == 0)


@pytest.mark.parametrize("case", [SDPA_CASES[0], SDPA_CASES[6], SDPA_CASES[7], SDPA_CASES[10],
                                  SDPA_CASES[12]])
def test_sdpa_gradients_finite_differences(case):
    small = {key: (val[:-2] + (min(val[-2], 3), min(val[-1], 3))
                   if key in ("q", "k", "v") else val) for key, val in case.items()}
    small["q"] = small["q"][:-1] + (small["k"][-1],)
    small["v"] = small["v"][:-2] + (small["k"][-2], small["v"][-1])
    small = {key: ((1,) + val[1:] if key in ("q", "k", "v") else val)
             for key, val in small.items()}
    q, k, v, mask, kw = make_sdpa_case(small)
    float_mask = mask is not None and mask.dtype != bool
    ins = [q, k, v] + ([mask] if float_mask else [])
    ts = [pve.tensor(f32(x), requires_grad=True) for x in ins]
    out = F.scaled_dot_product_attention(ts[0], ts[1], ts[2], ts[3] if float_mask else mask,
                                         **kw)
    g = randn(*out.shape)
    out.backward(pve.tensor(f32(g)))

    def ref(*a):
        return np_sdpa(a[0], a[1], a[2], a[3] if float_mask else mask,
                       kw.get("is_causal", False), kw.get("scale"), kw.get("enable_gqa", False))
    for t, num, name in zip(ts, numerical_grads(ref, ins, g), ["q", "k", "v", "mask"]):
        assert_grad_close(t.grad.numpy(), num, name=name)


def test_sdpa_dropout_p_one_gives_zeros():
    q = f32(randn(2, 4, 8))
    assert np.all(F.scaled_dot_product_attention(q, q, q, dropout_p=1.0).numpy() == 0)


@pytest.mark.parametrize("call,exc,match", [
    (lambda q, m: F.scaled_dot_product_attention(q, q, q, m, is_causal=True), RuntimeError,
     "attn_mask should not be set when is_causal"),
    (lambda q, m: F.scaled_dot_product_attention(q, q, q, np.ones((3, 5), bool)), RuntimeError,
     r"\(3, 5\)"),
    (lambda q, m: F.scaled_dot_product_attention(q, q, q, np.ones((5, 5), np.int64)), RuntimeError,
     "bool or float"),
    (lambda q, m: F.scaled_dot_product_attention(q, q[..., :7], q), RuntimeError, "last dim"),
    (lambda q, m: F.scaled_dot_product_attention(q, q, q[:, :, :4]), RuntimeError,
     "sequence length"),
    (lambda q, m: F.scaled_dot_product_attention(q, q[:, :2], q[:, :2], enable_gqa=True),
     RuntimeError, "must divide"),
])
def test_sdpa_errors(call, exc, match):
    q = f32(randn(2, 3, 5, 8))
    with pytest.raises(exc, match=match):
        call(q, np.ones((5, 5), bool))


def test_sdpa_scale_is_keyword_only():
    q = f32(randn(2, 4, 8))
    with pytest.raises(TypeError):
        F.scaled_dot_product_attention(q, q, q, None, 0.0, False, 0.5)


# ------------------------------------------------------------------ MultiheadAttention

def test_mha_parameters_and_init():
    m = nn.MultiheadAttention(16, 4)
    assert list(m.state_dict()) == ["in_proj_weight", "in_proj_bias", "out_proj.weight",
                                    "out_proj.bias"]
    assert m.in_proj_weight.shape == (48, 16) and m.head_dim == 4
    assert m.q_proj_weight is None and m.bias_k is None
    bound = math.sqrt(6.0 / (16 + 48))  # xavier_uniform_ on the (3E, E) matrix
    w = m.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert np.all(m.in_proj_bias.detach().numpy() == 0)
    assert np.all(m.out_proj.bias.detach().numpy() == 0)
    ow = m.out_proj.weight.detach().numpy()  # Linear's kaiming_uniform_(a=sqrt(5))
    assert np.abs(ow).max() <= 1 / math.sqrt(16) and np.abs(ow).max() > 0.8 / math.sqrt(16)
    assert type(m.out_proj).__name__ == "NonDynamicallyQuantizableLinear"
    assert isinstance(m.out_proj, nn.Linear)

    m = nn.MultiheadAttention(8, 2, bias=False, add_bias_kv=True, kdim=3, vdim=5)
    assert list(m.state_dict()) == ["q_proj_weight", "k_proj_weight", "v_proj_weight",
                                    "bias_k", "bias_v", "out_proj.weight"]
    assert m.k_proj_weight.shape == (8, 3) and m.v_proj_weight.shape == (8, 5)
    assert m.bias_k.shape == (1, 1, 8) and m.in_proj_weight is None
    assert m.out_proj.bias is None


MHA_CASES = [
    dict(),
    dict(kpm=True),
    dict(attn="bool2d"),
    dict(attn="float3d", kpm=True),
    dict(attn="float2d", average=False),
    dict(kdim=3, vdim=5),
    dict(bias=False, attn="bool2d"),
]


def make_mha_inputs(c, E=8, H=2, L=4, S=5, N=3):
    kd, vd = c.get("kdim", E), c.get("vdim", E)
    q, k, v = randn(L, N, E), randn(S, N, kd), randn(S, N, vd)
    kpm = attn = None
    if c.get("kpm"):
        kpm = np.zeros((N, S), bool)
        kpm[0, -2:] = True
    if c.get("attn") == "bool2d":
        attn = rng.random((L, S)) > 0.7
        attn[:, 0] = False
    elif c.get("attn") == "float2d":
        attn = randn(L, S)
    elif c.get("attn") == "float3d":
        attn = randn(N * H, L, S)
    return q, k, v, kpm, attn


def mha_kwargs(c):
    return {key: c[key] for key in ("kdim", "vdim", "bias") if key in c}


@pytest.mark.filterwarnings("ignore:Support for mismatched")
@pytest.mark.parametrize("case", MHA_CASES)
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_matches_numpy(case, need_weights):
    m = nn.MultiheadAttention(8, 2, **mha_kwargs(case))
    q, k, v, kpm, attn = make_mha_inputs(case)
    out, w = m(f32(q), f32(k), f32(v), key_padding_mask=kpm,
               attn_mask=attn if attn is None or attn.dtype == bool else f32(attn),
               need_weights=need_weights, average_attn_weights=case.get("average", True))
    want, want_w = np_mha(q, k, v, params64(m), 2, kpm, attn, case.get("average", True))
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-5, atol=1e-5)
    if need_weights:
        np.testing.assert_allclose(w.detach().numpy(), want_w, rtol=1e-5, atol=1e-6)
    else:
        assert w is None


def test_mha_batch_first_and_unbatched_match_sequence_first():
    m = nn.MultiheadAttention(8, 2)
    mb = nn.MultiheadAttention(8, 2, batch_first=True)
    mb.load_state_dict(m.state_dict())
    x = f32(randn(4, 3, 8))
    out, w = m(x, x, x)
    xb = np.ascontiguousarray(x.transpose(1, 0, 2))
    outb, wb = mb(xb, xb, xb)
    np.testing.assert_allclose(outb.detach().numpy(), out.detach().numpy().transpose(1, 0, 2),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(wb.detach().numpy(), w.detach().numpy(), rtol=1e-6, atol=1e-7)
    for mod in (m, mb):  # unbatched (L, E) input: batch_first does not apply
        o1, w1 = mod(x[:, 1], x[:, 1], x[:, 1], average_attn_weights=False)
        assert o1.shape == (4, 8) and w1.shape == (2, 4, 4)
        want, want_w = np_mha(x[:, 1:2].astype(np.float64), x[:, 1:2].astype(np.float64),
                              x[:, 1:2].astype(np.float64), params64(m), 2, average=False)
        np.testing.assert_allclose(o1.detach().numpy(), want[:, 0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(w1.detach().numpy(), want_w[0], rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Support for mismatched")
def test_mha_gradients_finite_differences():
    """d/d(query, key, value) and d/d(every parameter) against float64 differences of the
    numpy reference, with a key padding mask and a float attention mask."""
    m = nn.MultiheadAttention(4, 2, kdim=3, vdim=2)
    q, k, v = randn(2, 2, 4), randn(3, 2, 3), randn(3, 2, 2)
    kpm = np.array([[False, False, True], [False, False, False]])
    attn = randn(2, 3)
    names = [n for n, _ in m.named_parameters()]
    p0 = params64(m)
    tq, tk, tv = (pve.tensor(f32(x), requires_grad=True) for x in (q, k, v))
    out, w = m(tq, tk, tv, key_padding_mask=kpm, attn_mask=f32(attn))
    g, gw = randn(*out.shape), randn(*w.shape)
    (out * pve.tensor(f32(g))).sum().add((w * pve.tensor(f32(gw))).sum()).backward()

    def ref(q_, k_, v_, *ps):
        o, ww = np_mha(q_, k_, v_, dict(zip(names, ps)), 2, kpm, attn)
        return np.concatenate([o.ravel() * g.ravel(), ww.ravel() * gw.ravel()])
    ones = np.ones(g.size + gw.size)
    num = numerical_grads(ref, [q, k, v] + [p0[n] for n in names], ones)
    for t, n, name in zip([tq, tk, tv], num[:3], "qkv"):
        assert_grad_close(t.grad.numpy(), n, name=name)
    for (name, p), n in zip(m.named_parameters(), num[3:]):
        assert_grad_close(p.grad.numpy(), n, name=name)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: nn.MultiheadAttention(10, 3), AssertionError, "divisible"),
    (lambda: nn.MultiheadAttention(0, 2), ValueError, "greater than 0"),
    (lambda: nn.MultiheadAttention(8, 2)(*[f32(randn(4, 3, 8))] * 3,
                                         attn_mask=np.ones((4, 5), bool)),
     RuntimeError, r"2D attn_mask is \(4, 5\), but should be \(4, 4\)"),
    (lambda: nn.MultiheadAttention(8, 2)(*[f32(randn(4, 3, 8))] * 3,
                                         attn_mask=f32(randn(2, 4, 4))),
     RuntimeError, r"3D attn_mask is \(2, 4, 4\), but should be \(6, 4, 4\)"),
    (lambda: nn.MultiheadAttention(8, 2)(*[f32(randn(4, 3, 8))] * 3,
                                         key_padding_mask=np.zeros((3, 5), bool)),
     AssertionError, r"key_padding_mask shape of \(3, 4\), but got \(3, 5\)"),
    (lambda: nn.MultiheadAttention(8, 2)(*[f32(randn(4, 3, 8))] * 3,
                                         key_padding_mask=np.zeros((3, 4), np.int64)),
     AssertionError, "only bool and floating"),
    (lambda: nn.MultiheadAttention(8, 2)(*[f32(randn(4, 3, 6))] * 3),
     AssertionError, "expecting embedding dimension of 8, but got 6"),
    (lambda: nn.MultiheadAttention(8, 2)(*[f32(randn(3, 4, 3, 8))] * 3),
     AssertionError, "unbatched 2D or batched 3D"),
    (lambda: nn.MultiheadAttention(8, 2)(f32(randn(4, 3, 8)), f32(randn(4, 8)),
                                         f32(randn(4, 8))),
     AssertionError, "3-D but found 2-D and 2-D"),
    (lambda: nn.MultiheadAttention(8, 2)(*[f32(randn(4, 3, 8))] * 3, is_causal=True),
     RuntimeError, "Need attn_mask"),
    (lambda: nn.MultiheadAttention(8, 2)(f32(randn(4, 3, 8)), *[f32(randn(5, 2, 8))] * 2),
     RuntimeError, r"key and value have batch size 2, the query 3"),
])
def test_mha_errors(call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call()
    assert isinstance(info.value, ValueError)  # this engine's contract as well


def test_mha_mismatched_mask_types_warn_as_torch():
    x = f32(randn(4, 3, 8))
    with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
        nn.MultiheadAttention(8, 2)(x, x, x, key_padding_mask=np.zeros((3, 4), bool),
                                    attn_mask=f32(randn(4, 4)))


def test_mha_add_bias_kv_and_zero_attn_match_numpy():
    m = nn.MultiheadAttention(8, 2, add_bias_kv=True, add_zero_attn=True)
    q, k, v, kpm, attn = make_mha_inputs(dict(kpm=True, attn="bool2d"))
    out, w = m(f32(q), f32(k), f32(v), key_padding_mask=kpm, attn_mask=attn)
    p = params64(m)
    N = q.shape[1]
    # the bias row, then (per head) a zero key/value row: a zero key row projects to
    # in_proj_bias, so build the reference by appending after the projection
    E, H, hd = 8, 2, 4
    wq, wk, wv = np.split(p["in_proj_weight"], 3)
    bq, bk, bv = np.split(p["in_proj_bias"], 3)
    K = np.concatenate([np_linear(k, wk, bk), np.broadcast_to(p["bias_k"], (1, N, E)),
                        np.zeros((1, N, E))])
    V = np.concatenate([np_linear(v, wv, bv), np.broadcast_to(p["bias_v"], (1, N, E)),
                        np.zeros((1, N, E))])
    Q = np_linear(q, wq, bq)
    ident = dict(in_proj_weight=np.concatenate([np.eye(E)] * 3),
                 **{"out_proj.weight": p["out_proj.weight"], "out_proj.bias": p["out_proj.bias"]})
    kpm2 = np.concatenate([kpm, np.zeros((N, 2), bool)], 1)
    attn2 = np.concatenate([attn, np.zeros((attn.shape[0], 2), bool)], 1)
    want, want_w = np_mha(Q, K, V, ident, H, kpm2, attn2)
    assert hd * H == E
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w.detach().numpy(), want_w, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ TransformerEncoder

def np_encoder_layer(x, p, heads, norm_first, act, mask=None, kpm=None, pre=""):
    def sa(y):
        sub = {key[len(pre + "self_attn."):]: val for key, val in p.items()
               if key.startswith(pre + "self_attn.")}
        return np_mha(y, y, y, sub, heads, kpm, mask, safe=True)[0]

    def ff(y):
        h = np_linear(y, p[pre + "linear1.weight"], p[pre + "linear1.bias"])
        h = np.maximum(h, 0) if act == "relu" else 0.5 * h * (1 + np.vectorize(math.erf)(
            h / math.sqrt(2)))
        return np_linear(h, p[pre + "linear2.weight"], p[pre + "linear2.bias"])

    def n(i, y):
        return np_layer_norm(y, p[f"{pre}norm{i}.weight"], p[f"{pre}norm{i}.bias"])
    if norm_first:
        x = x + sa(n(1, x))
        return x + ff(n(2, x))
    x = n(1, x + sa(x))
    return n(2, x + ff(x))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_encoder_layer_matches_numpy(norm_first, act):
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                       activation=act, norm_first=norm_first)
    assert list(layer.state_dict()) == [
        "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
        "self_attn.out_proj.bias", "linear1.weight", "linear1.bias", "linear2.weight",
        "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"]
    p = params64(layer)
    p["norm1.weight"] = randn(8)
    p["norm2.bias"] = randn(8)
    layer.load_state_dict({key: f32(val) for key, val in p.items()})
    x = randn(5, 2, 8)
    kpm = np.zeros((2, 5), bool)
    kpm[1, 3:] = True
    mask = np.triu(np.ones((5, 5), bool), 1)
    got = layer(f32(x), src_mask=mask, src_key_padding_mask=kpm)
    want = np_encoder_layer(x, p, 2, norm_first, act, mask, kpm)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-4, atol=1e-4)


def test_encoder_stacks_copies_and_norm():
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8))
    sd = enc.state_dict()
    assert len(sd) == 2 * 12 + 2 and "layers.1.linear2.bias" in sd and "norm.weight" in sd
    assert enc.layers[0].linear1.weight is not enc.layers[1].linear1.weight
    np.testing.assert_array_equal(sd["layers.0.linear1.weight"].numpy(),
                                  sd["layers.1.linear1.weight"].numpy())
    p = params64(enc)
    p["layers.1.linear1.weight"] = randn(16, 8) / 3  # make the layers differ
    enc.load_state_dict({key: f32(val) for key, val in p.items()})
    x = randn(2, 5, 8)  # batch_first
    mask = np.triu(np.full((5, 5), -np.inf), 1)  # detected as causal (is_causal=None)
    got = enc(f32(x), mask=f32(mask))
    y = x.transpose(1, 0, 2)
    for i in range(2):
        y = np_encoder_layer(y, p, 2, False, "relu", mask, pre=f"layers.{i}.")
    want = np_layer_norm(y, p["norm.weight"], p["norm.bias"]).transpose(1, 0, 2)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-4, atol=1e-4)


def test_encoder_layer_errors():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(AssertionError, match="divisible"):
        nn.TransformerEncoderLayer(8, 3)
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    with pytest.raises(RuntimeError, match=r"2D attn_mask is \(4, 4\), but should be \(5, 5\)"):
        layer(f32(randn(5, 2, 8)), src_mask=np.zeros((4, 4), bool))
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        layer(f32(randn(5, 2, 8)), is_causal=True)


# ------------------------------------------------------------------ torch parity

def t64(torch, x, grad=False):
    t = torch.tensor(np.asarray(x))
    return t.requires_grad_(grad) if t.is_floating_point() else t


@pytest.mark.parametrize("case", SDPA_CASES)
def test_sdpa_torch_parity(torch, case):
    q, k, v, mask, kw = make_sdpa_case(case)
    float_mask = mask is not None and mask.dtype != bool
    ins = [f32(q), f32(k), f32(v)] + ([f32(mask)] if float_mask else [])
    ps = [pve.tensor(x, requires_grad=True) for x in ins]
    ts = [torch.tensor(x, requires_grad=True) for x in ins]
    tmask = ts[3] if float_mask else (None if mask is None else torch.tensor(mask))
    out = F.scaled_dot_product_attention(ps[0], ps[1], ps[2], ps[3] if float_mask else mask,
                                         **kw)
    tout = torch.nn.functional.scaled_dot_product_attention(ts[0], ts[1], ts[2], tmask, **kw)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    g = f32(randn(*out.shape))
    out.backward(pve.tensor(g))
    tout.backward(torch.tensor(g))
    for p, t in zip(ps, ts):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_sdpa_errors_torch_parity(torch):
    """(torch's CPU flash kernel, taken when value's head dim equals query's and there is
    no dropout, instead combines attn_mask with the causal mask; its reference (math)
    path, and this engine, raise. Value's head dim differs here, as in the math path.)"""
    q = f32(randn(2, 3, 5, 8))
    calls = [lambda f, q, m: f(q, q, q[..., :6], m, is_causal=True),
             lambda f, q, m: f(q, q[..., :7], q),
             lambda f, q, m: f(q, q[:, :2], q[:, :2], enable_gqa=True)]
    for call in calls:
        with pytest.raises(RuntimeError):
            call(torch.nn.functional.scaled_dot_product_attention, torch.tensor(q),
                 torch.ones(5, 5, dtype=torch.bool))
        with pytest.raises(RuntimeError):
            call(F.scaled_dot_product_attention, q, np.ones((5, 5), bool))


def copy_to_torch(torch, pmod, tmod):
    tmod.load_state_dict({key: torch.tensor(val.detach().numpy())
                          for key, val in pmod.state_dict().items()})


def compare_grads(pmod, tmod, tol=1e-4):
    tparams = dict(tmod.named_parameters())
    names = [n for n, _ in pmod.named_parameters()]
    assert names == list(tparams)
    for name, p in pmod.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[name].grad.numpy(), rtol=tol,
                                   atol=tol, err_msg=name)


MHA_TORCH_CASES = MHA_CASES + [
    dict(batch_first=True, kpm=True),
    dict(batch_first=True, self_attn=True, attn="bool2d"),
    dict(add_bias_kv=True, kpm=True, attn="float2d"),
    dict(add_zero_attn=True, attn="float3d"),
    dict(add_bias_kv=True, add_zero_attn=True, kdim=3, vdim=5, kpm=True),
    dict(causal=True),
    dict(causal=True, kpm=True),
    dict(unbatched=True, attn="bool2d"),
    dict(unbatched=True, attn="float3d_unbatched", average=False),
    dict(kpm_float=True, attn="float2d"),
]


@pytest.mark.parametrize("case", MHA_TORCH_CASES)
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_torch_parity(torch, case, need_weights):
    kw = mha_kwargs(case)
    for key in ("batch_first", "add_bias_kv", "add_zero_attn"):
        if key in case:
            kw[key] = case[key]
    pm = nn.MultiheadAttention(8, 2, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tm = torch.nn.MultiheadAttention(8, 2, **kw)
    assert list(pm.state_dict()) == list(tm.state_dict())
    copy_to_torch(torch, pm, tm)
    S = 4 if case.get("causal") or case.get("self_attn") else 5
    q, k, v, kpm, attn = make_mha_inputs(case, S=S)
    if case.get("causal"):
        attn = np.triu(np.ones((4, 4), bool), 1)
    if case.get("kpm_float"):
        kpm = randn(3, S)
    if case.get("unbatched"):
        q, k, v = q[:, 0], k[:, 0], v[:, 0]
        kpm = None
        if case.get("attn") == "float3d_unbatched":
            attn = randn(2, 4, S)
    if case.get("batch_first"):
        q, k, v = (np.ascontiguousarray(x.transpose(1, 0, 2)) for x in (q, k, v))
    ins = [f32(q), f32(k), f32(v)]
    ps = [pve.tensor(x, requires_grad=True) for x in ins]
    ts = [torch.tensor(x, requires_grad=True) for x in ins]
    if case.get("self_attn"):
        ps, ts = ps[:1] * 3, ts[:1] * 3
    args = dict(need_weights=need_weights, average_attn_weights=case.get("average", True),
                is_causal=bool(case.get("causal")))
    pmask = {key: (None if val is None else (val if val.dtype == bool else f32(val)))
             for key, val in (("key_padding_mask", kpm), ("attn_mask", attn))}
    tmask = {key: (None if val is None else torch.tensor(val)) for key, val in pmask.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, w = pm(*ps, **pmask, **args)
        tout, tw = tm(*ts, **tmask, **args)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    loss, tloss = out.sum() * 0.0, tout.sum() * 0.0
    g = f32(randn(*out.shape))
    loss = loss + (out * pve.tensor(g)).sum()
    tloss = tloss + (tout * torch.tensor(g)).sum()
    if need_weights:
        np.testing.assert_allclose(w.detach().numpy(), tw.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
        gw = f32(randn(*w.shape))
        loss = loss + (w * pve.tensor(gw)).sum()
        tloss = tloss + (tw * torch.tensor(gw)).sum()
    else:
        assert w is None and tw is None
    loss.backward()
    tloss.backward()
    for i, (p, t) in enumerate(zip(ps, ts)):
        if case.get("self_attn") and i:
            break
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)
    compare_grads(pm, tm)


def test_mha_errors_torch_parity(torch):
    """The same inputs fail in torch with the same exception class."""
    x = f32(randn(4, 3, 8))
    cases = [dict(attn_mask=np.ones((4, 5), bool)), dict(attn_mask=f32(randn(2, 4, 4))),
             dict(key_padding_mask=np.zeros((3, 5), bool)),
             dict(key_padding_mask=np.zeros((3, 4), np.int64)), dict(is_causal=True)]
    pm = nn.MultiheadAttention(8, 2)
    tm = torch.nn.MultiheadAttention(8, 2)
    for kw in cases:
        with pytest.raises(Exception) as tinfo:
            tm(*[torch.tensor(x)] * 3, **{key: torch.tensor(val) if isinstance(val, np.ndarray)
                                          else val for key, val in kw.items()})
        with pytest.raises(type(tinfo.value)):
            pm(x, x, x, **kw)
    with pytest.raises(AssertionError):
        torch.nn.MultiheadAttention(10, 3)
    with pytest.raises(AssertionError):
        nn.MultiheadAttention(10, 3)


ENC_TORCH_CASES = [
    dict(),
    dict(norm_first=True, activation="gelu"),
    dict(batch_first=True, kpm=True),
    dict(mask="bool", kpm=True),
    dict(mask="float", norm_first=True),
    dict(mask="causal", is_causal=True),
    dict(bias=False, mask="causal"),
    dict(unbatched=True, mask="bool"),
]


def make_encoder_inputs(c, S=5, N=2, E=8):
    x = randn(S, N, E)
    mask = kpm = None
    if c.get("mask") == "bool":
        mask = rng.random((S, S)) > 0.7
        np.fill_diagonal(mask, False)
    elif c.get("mask") == "float":
        mask = f32(randn(S, S))
    elif c.get("mask") == "causal":
        mask = np.triu(np.ones((S, S), bool), 1)
    if c.get("kpm"):
        kpm = np.zeros((N, S), bool)
        kpm[1, 3:] = True
    if c.get("batch_first"):
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    if c.get("unbatched"):
        x, kpm = x[:, 0], None
    return f32(x), mask, kpm


@pytest.mark.parametrize("case", ENC_TORCH_CASES)
def test_encoder_layer_and_encoder_torch_parity(torch, case):
    kw = {key: case[key] for key in ("norm_first", "activation", "batch_first", "bias")
          if key in case}
    player = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1, **kw)
    tlayer = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1, **kw)
    assert list(player.state_dict()) == list(tlayer.state_dict())
    copy_to_torch(torch, player, tlayer)
    pnorm = nn.LayerNorm(8)
    penc = nn.TransformerEncoder(player, 2, norm=pnorm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tenc = torch.nn.TransformerEncoder(tlayer, 2, norm=torch.nn.LayerNorm(8),
                                           enable_nested_tensor=False)
    p = params64(penc)
    for key in p:  # make the two layers and the final norm differ
        if key.startswith("layers.1.") or key.startswith("norm."):
            p[key] = p[key] + 0.1 * randn(*p[key].shape)
    penc.load_state_dict({key: f32(val) for key, val in p.items()})
    copy_to_torch(torch, penc, tenc)
    assert list(penc.state_dict()) == list(tenc.state_dict())
    penc.eval()
    tenc.eval()  # dropout off; inputs require grad, so torch takes its reference path
    x, mask, kpm = make_encoder_inputs(case)
    px, tx = pve.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    fwd = dict(is_causal=case.get("is_causal"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = penc(px, mask=mask, src_key_padding_mask=kpm, **fwd)
        tout = tenc(tx, mask=None if mask is None else torch.tensor(mask),
                    src_key_padding_mask=None if kpm is None else torch.tensor(kpm), **fwd)
        # a single layer too, with its own forward arguments
        out1 = penc.layers[1](px, src_mask=mask, src_key_padding_mask=kpm,
                              is_causal=bool(case.get("is_causal")))
        tout1 = tenc.layers[1](tx, src_mask=None if mask is None else torch.tensor(mask),
                               src_key_padding_mask=None if kpm is None else torch.tensor(kpm),
                               is_causal=bool(case.get("is_causal")))
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(out1.detach().numpy(), tout1.detach().numpy(), rtol=1e-4,
                               atol=1e-4)
    g, g1 = f32(randn(*out.shape)), f32(randn(*out1.shape))
    ((out * pve.tensor(g)).sum() + (out1 * pve.tensor(g1)).sum()).backward()
    ((tout * torch.tensor(g)).sum() + (tout1 * torch.tensor(g1)).sum()).backward()
    np.testing.assert_allclose(px.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    compare_grads(penc, tenc)


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_fully_padded_sequence_torch_parity(torch, need_weights):
    """A batch entry whose every key is padded: NaN through the explicit-weights path, the
    out_proj bias (zero attention) through scaled_dot_product_attention, both as torch."""
    pm, tm = nn.MultiheadAttention(8, 2), torch.nn.MultiheadAttention(8, 2)
    nn.init.uniform_(pm.out_proj.bias, -1.0, 1.0)
    copy_to_torch(torch, pm, tm)
    x = f32(randn(4, 3, 8))
    kpm = np.zeros((3, 4), bool)
    kpm[0] = True
    xt = torch.tensor(x, requires_grad=True)
    out = pm(x, x, x, key_padding_mask=kpm, need_weights=need_weights)[0].detach().numpy()
    tout = tm(xt, xt, xt, key_padding_mask=torch.tensor(kpm),
              need_weights=need_weights)[0].detach().numpy()
    assert np.isnan(out[:, 0]).all() == need_weights
    if not need_weights:
        np.testing.assert_allclose(out[:, 0], np.broadcast_to(
            pm.out_proj.bias.detach().numpy(), (4, 8)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out, tout, rtol=1e-5, atol=1e-5, equal_nan=True)
