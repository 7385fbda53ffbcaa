"""nn.TransformerDecoderLayer, nn.TransformerDecoder and nn.Transformer against float64
numpy references, float64 finite differences and torch (parity tests skip without torch):
outputs and every gradient, masks of each kind, is_causal hints, dropout, errors."""

import math
import warnings

import numpy as np
import pytest

import pyvision_engine as pve
import pyvision_engine.nn as nn
import pyvision_engine.nn.functional as F
from pyvision_engine.nn.transformer import _detect_is_causal_mask
from reference.gradcheck import assert_grad_close, numerical_grads

rng = np.random.default_rng(21)


def randn(*shape):
    return rng.standard_normal(shape)


def f32(x):
    return np.asarray(x, dtype=np.float32)


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch not installed: transformer parity not "
                                               "tested")


# ------------------------------------------------------------------ numpy float64 references

def np_additive(m):
    return None if m is None else (np.where(m, -np.inf, 0.0) if m.dtype == bool else m)


def np_softmax(s):
    """softmax over the last axis; a row with every key masked gives zeros (torch's
    scaled_dot_product_attention, which the layers use: need_weights=False)."""
    dead = np.all(s == -np.inf, axis=-1, keepdims=True)
    s = np.where(dead, 0.0, s)
    e = np.exp(s - s.max(-1, keepdims=True))
    return np.where(dead, 0.0, e / e.sum(-1, keepdims=True))


def np_linear(x, p, name):
    return x @ p[name + ".weight"].T + p.get(name + ".bias", 0.0)


def np_mha(q, kv, p, heads, attn_mask=None, kpm=None, causal=False):
    """Sequence-first (L, N, E) attention of q to kv with torch's parameter names in p.
    causal: the is_causal hint taken without a key padding mask (top-left tril(L, S))."""
    L, N, E = q.shape
    S, hd = kv.shape[0], E // heads
    wq, wk, wv = np.split(p["in_proj_weight"], 3)
    bq, bk, bv = np.split(p.get("in_proj_bias", np.zeros(3 * E)), 3)

    def split_heads(x, w, b):
        return (x @ w.T + b).reshape(x.shape[0], N, heads, hd).transpose(1, 2, 0, 3)
    Q, K, V = split_heads(q, wq, bq), split_heads(kv, wk, bk), split_heads(kv, wv, bv)
    s = Q @ K.transpose(0, 1, 3, 2) / math.sqrt(hd)  # (N, H, L, S)
    if causal:
        attn_mask = ~np.tril(np.ones((L, S), bool))
    am = np_additive(attn_mask)
    if am is not None:
        s = s + (am if am.ndim == 2 else am.reshape(N, heads, L, S))
    if kpm is not None:
        s = s + np_additive(kpm)[:, None, None, :]
    o = (np_softmax(s) @ V).transpose(2, 0, 1, 3).reshape(L, N, E)
    return np_linear(o, p, "out_proj")


def np_layer_norm(x, p, name, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p[name + ".weight"] + p.get(name + ".bias", 0.0)


def np_gelu(h):
    return 0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2)))


NP_ACT = {"relu": lambda h: np.maximum(h, 0), "gelu": np_gelu,
          "silu": lambda h: h / (1 + np.exp(-h))}


def sub(p, prefix):
    return {k[len(prefix):]: v for k, v in p.items() if k.startswith(prefix)}


def np_ff(x, p, act):
    return np_linear(NP_ACT[act](np_linear(x, p, "linear1")), p, "linear2")


def np_decoder_layer(x, mem, p, heads, norm_first=False, act="relu", tgt_mask=None,
                     memory_mask=None, tgt_kpm=None, memory_kpm=None, tgt_causal=False,
                     memory_causal=False):
    """One decoder layer, sequence-first (T, N, E) tgt and (S, N, E) memory."""
    def sa(y):
        return np_mha(y, y, sub(p, "self_attn."), heads, tgt_mask, tgt_kpm,
                      tgt_causal and tgt_kpm is None)

    def ca(y):
        return np_mha(y, mem, sub(p, "multihead_attn."), heads, memory_mask, memory_kpm,
                      memory_causal and memory_kpm is None)
    if norm_first:
        x = x + sa(np_layer_norm(x, p, "norm1"))
        x = x + ca(np_layer_norm(x, p, "norm2"))
        return x + np_ff(np_layer_norm(x, p, "norm3"), p, act)
    x = np_layer_norm(x + sa(x), p, "norm1")
    x = np_layer_norm(x + ca(x), p, "norm2")
    return np_layer_norm(x + np_ff(x, p, act), p, "norm3")


def np_encoder_layer(x, p, heads, norm_first=False, act="relu", mask=None, kpm=None):
    def sa(y):
        return np_mha(y, y, sub(p, "self_attn."), heads, mask, kpm)
    if norm_first:
        x = x + sa(np_layer_norm(x, p, "norm1"))
        return x + np_ff(np_layer_norm(x, p, "norm2"), p, act)
    x = np_layer_norm(x + sa(x), p, "norm1")
    return np_layer_norm(x + np_ff(x, p, act), p, "norm2")


def params64(module):
    return {k: np.asarray(v.detach().numpy(), dtype=np.float64)
            for k, v in module.state_dict().items()}


def randomize(module, scale=0.3):
    """Every parameter perturbed (biases and norms away from 0 / 1), returned in float64."""
    p = params64(module)
    p = {k: v + scale * randn(*v.shape) for k, v in p.items()}
    module.load_state_dict({k: f32(v) for k, v in p.items()})
    return p


DECODER_KEYS = [
    "self_attn.in_proj_weight", "self_attn.in_proj_bias", "self_attn.out_proj.weight",
    "self_attn.out_proj.bias", "multihead_attn.in_proj_weight", "multihead_attn.in_proj_bias",
    "multihead_attn.out_proj.weight", "multihead_attn.out_proj.bias", "linear1.weight",
    "linear1.bias", "linear2.weight", "linear2.bias", "norm1.weight", "norm1.bias",
    "norm2.weight", "norm2.bias", "norm3.weight", "norm3.bias"]


# ------------------------------------------------------------------ numpy references

def test_decoder_layer_parameters():
    layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16)
    sd = layer.state_dict()
    assert list(sd) == DECODER_KEYS
    assert sd["linear1.weight"].shape == (16, 8) and sd["linear2.weight"].shape == (8, 16)
    assert sd["self_attn.in_proj_weight"].shape == (24, 8)
    np.testing.assert_array_equal(sd["norm3.weight"].numpy(), np.ones(8, np.float32))
    nobias = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, bias=False)
    assert list(nobias.state_dict()) == [k for k in DECODER_KEYS if not k.endswith("bias")]
    assert layer.dropout.p == layer.dropout3.p == layer.self_attn.dropout == 0.1
    assert layer.activation is F.relu
    assert nn.TransformerDecoderLayer(8, 2, activation="gelu").activation is F.gelu


def make_masks(T, S, N, H, kinds):
    """Masks named in kinds: tgt_bool, tgt_float, tgt_3d, tgt_causal, mem_bool, mem_float,
    tgt_kpm, mem_kpm, tgt_kpm_float, mem_kpm_float (no row fully masked)."""
    m = {}
    if "tgt_bool" in kinds:
        m["tgt_mask"] = rng.random((T, T)) > 0.6
        np.fill_diagonal(m["tgt_mask"], False)
    if "tgt_causal" in kinds:
        m["tgt_mask"] = np.triu(np.ones((T, T), bool), 1)
    if "tgt_float" in kinds:
        m["tgt_mask"] = f32(randn(T, T))
    if "tgt_3d" in kinds:
        m["tgt_mask"] = rng.random((N * H, T, T)) > 0.6
        m["tgt_mask"][:, np.arange(T), np.arange(T)] = False
    if "mem_bool" in kinds:
        m["memory_mask"] = rng.random((T, S)) > 0.6
        m["memory_mask"][:, 0] = False
    if "mem_float" in kinds:
        m["memory_mask"] = f32(randn(T, S))
    if "tgt_kpm" in kinds:
        m["tgt_key_padding_mask"] = np.zeros((N, T), bool)
        m["tgt_key_padding_mask"][-1, T - 2:] = True
    if "mem_kpm" in kinds:
        m["memory_key_padding_mask"] = np.zeros((N, S), bool)
        m["memory_key_padding_mask"][0, S - 2:] = True
    if "tgt_kpm_float" in kinds:
        m["tgt_key_padding_mask"] = f32(randn(N, T))
    if "mem_kpm_float" in kinds:
        m["memory_key_padding_mask"] = f32(randn(N, S))
    return m


def np_masks(m):
    return dict(tgt_mask=m.get("tgt_mask"), memory_mask=m.get("memory_mask"),
                tgt_kpm=m.get("tgt_key_padding_mask"),
                memory_kpm=m.get("memory_key_padding_mask"))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("kinds", [(), ("tgt_causal", "mem_kpm"),
                                   ("tgt_float", "mem_bool", "tgt_kpm"), ("tgt_3d", "mem_float")])
@pytest.mark.filterwarnings("ignore:Support for mismatched")
def test_decoder_layer_matches_numpy(norm_first, act, kinds):
    layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation=act,
                                       norm_first=norm_first)
    p = randomize(layer)
    T, S, N = 4, 5, 3
    x, mem = randn(T, N, 8), randn(S, N, 8)
    m = make_masks(T, S, N, 2, kinds)
    got = layer(f32(x), f32(mem), **m)
    want = np_decoder_layer(x, mem, p, 2, norm_first, act, **np_masks(m))
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-4, atol=1e-4)


def test_decoder_layer_batch_first_and_unbatched_match_sequence_first():
    layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    layer_bf = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                          batch_first=True)
    p = randomize(layer)
    layer_bf.load_state_dict({k: f32(v) for k, v in p.items()})
    x, mem = randn(4, 3, 8), randn(5, 3, 8)
    m = make_masks(4, 5, 3, 2, ("tgt_bool", "mem_kpm", "tgt_kpm"))
    want = np_decoder_layer(x, mem, p, 2, **np_masks(m))
    got = layer_bf(f32(x.transpose(1, 0, 2)), f32(mem.transpose(1, 0, 2)), **m)
    np.testing.assert_allclose(got.detach().numpy(), want.transpose(1, 0, 2), rtol=1e-4,
                               atol=1e-4)
    for mod in (layer, layer_bf):  # unbatched (T, E) / (S, E): batch_first does not apply
        got = mod(f32(x[:, 2]), f32(mem[:, 2]), tgt_mask=m["tgt_mask"],
                  memory_key_padding_mask=m["memory_key_padding_mask"][2])
        want1 = np_decoder_layer(x[:, 2:3], mem[:, 2:3], p, 2, tgt_mask=m["tgt_mask"],
                                 memory_kpm=m["memory_key_padding_mask"][2:3])
        np.testing.assert_allclose(got.detach().numpy(), want1[:, 0], rtol=1e-4, atol=1e-4)


def test_is_causal_hints_take_the_causal_mask_without_padding_mask():
    """A True hint replaces the given mask by the causal one (top-left tril(T, S)) when no
    key padding mask is given (torch's scaled_dot_product_attention path), and the mask is
    used as given otherwise."""
    layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
    p = randomize(layer)
    T, S, N = 4, 6, 2
    x, mem = randn(T, N, 8), randn(S, N, 8)
    m = make_masks(T, S, N, 2, ("tgt_bool", "mem_bool"))
    got = layer(f32(x), f32(mem), **m, tgt_is_causal=True, memory_is_causal=True)
    want = np_decoder_layer(x, mem, p, 2, tgt_causal=True, memory_causal=True)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-4, atol=1e-4)
    m.update(make_masks(T, S, N, 2, ("tgt_kpm", "mem_kpm")))
    got = layer(f32(x), f32(mem), **m, tgt_is_causal=True, memory_is_causal=True)
    want = np_decoder_layer(x, mem, p, 2, **np_masks(m))
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_gradients_finite_differences(norm_first):
    """d/d(tgt, memory) and d/d(every parameter) of a tiny decoder layer against float64
    differences of the numpy reference, with a float tgt mask and a memory padding mask."""
    layer = nn.TransformerDecoderLayer(4, 2, dim_feedforward=6, dropout=0.0,
                                       activation="gelu", norm_first=norm_first)
    p0 = randomize(layer)
    names = [n for n, _ in layer.named_parameters()]
    assert names == DECODER_KEYS
    x, mem = randn(3, 2, 4), randn(4, 2, 4)
    tgt_mask = randn(3, 3)
    memory_kpm = np.array([[False, False, True, False], [False, False, False, False]])
    tx, tm = pve.tensor(f32(x), requires_grad=True), pve.tensor(f32(mem), requires_grad=True)
    out = layer(tx, tm, tgt_mask=f32(tgt_mask), memory_key_padding_mask=memory_kpm)
    g = randn(*out.shape)
    out.backward(pve.tensor(f32(g)))

    def ref(x_, mem_, *ps):
        return np_decoder_layer(x_, mem_, dict(zip(names, ps)), 2, norm_first, "gelu",
                                tgt_mask=tgt_mask, memory_kpm=memory_kpm)
    num = numerical_grads(ref, [x, mem] + [p0[n] for n in names], g)
    assert_grad_close(tx.grad.numpy(), num[0], name="tgt")
    assert_grad_close(tm.grad.numpy(), num[1], name="memory")
    for (name, prm), n in zip(layer.named_parameters(), num[2:]):
        assert_grad_close(prm.grad.numpy(), n, name=name)


def test_decoder_stacks_deep_copies_and_norm():
    layer = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)
    layer(f32(randn(2, 3, 8)), f32(randn(2, 4, 8))).sum().backward()
    dec = nn.TransformerDecoder(layer, 3, norm=nn.LayerNorm(8))
    # the copies start without gradients (torch's Parameter deep copy), the layer keeps its
    assert all(prm.grad is None for prm in dec.parameters())
    assert layer.linear1.weight.grad is not None
    sd = dec.state_dict()
    assert list(sd) == [f"layers.{i}.{k}" for i in range(3) for k in DECODER_KEYS] + [
        "norm.weight", "norm.bias"]
    assert dec.num_layers == 3 and all(mod is not layer for mod in dec.layers)
    assert dec.layers[0].linear1.weight is not dec.layers[1].linear1.weight
    for i in (1, 2):  # copies: the same starting weights
        np.testing.assert_array_equal(sd[f"layers.{i}.self_attn.in_proj_weight"].numpy(),
                                      layer.self_attn.in_proj_weight.detach().numpy())
    p = randomize(dec)  # then independent
    x, mem = randn(3, 4, 8), randn(3, 5, 8)  # batch first
    tgt_mask = nn.Transformer.generate_square_subsequent_mask(4)
    got = dec(f32(x), f32(mem), tgt_mask=tgt_mask)
    y, mt = x.transpose(1, 0, 2), mem.transpose(1, 0, 2)
    for i in range(3):
        y = np_decoder_layer(y, mt, sub(p, f"layers.{i}."), 2,
                             tgt_mask=np.triu(np.ones((4, 4), bool), 1))
    want = np_layer_norm(y, p, "norm").transpose(1, 0, 2)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-4, atol=1e-4)
    assert nn.TransformerDecoder(layer, 2).norm is None


def test_transformer_matches_numpy():
    model = nn.Transformer(8, 2, num_encoder_layers=2, num_decoder_layers=2,
                           dim_feedforward=16, dropout=0.0, activation="gelu", norm_first=True)
    p = randomize(model)
    S, T, N = 5, 4, 2
    src, tgt = randn(S, N, 8), randn(T, N, 8)
    src_kpm = np.zeros((N, S), bool)
    src_kpm[1, 3:] = True
    tgt_mask = np.triu(np.ones((T, T), bool), 1)
    got = model(f32(src), f32(tgt), tgt_mask=tgt_mask, src_key_padding_mask=src_kpm,
                memory_key_padding_mask=src_kpm)
    mem = src
    for i in range(2):
        mem = np_encoder_layer(mem, sub(p, f"encoder.layers.{i}."), 2, True, "gelu", kpm=src_kpm)
    mem = np_layer_norm(mem, p, "encoder.norm")
    y = tgt
    for i in range(2):
        y = np_decoder_layer(y, mem, sub(p, f"decoder.layers.{i}."), 2, True, "gelu",
                             tgt_mask=tgt_mask, memory_kpm=src_kpm)
    want = np_layer_norm(y, p, "decoder.norm")
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-4, atol=1e-4)


def test_transformer_structure_and_init():
    pve.manual_seed(0)
    model = nn.Transformer(8, 2, num_encoder_layers=2, num_decoder_layers=3,
                           dim_feedforward=16)
    assert (model.d_model, model.nhead, model.batch_first) == (8, 2, False)
    assert len(model.encoder.layers) == 2 and len(model.decoder.layers) == 3
    assert isinstance(model.encoder.norm, nn.LayerNorm)
    assert isinstance(model.decoder.layers[0], nn.TransformerDecoderLayer)
    matrices = [(n, p.detach().numpy()) for n, p in model.named_parameters() if p.ndim > 1]
    assert len(matrices) == 2 * 4 + 3 * 6
    # xavier_uniform_: U(-a, a), a = sqrt(6 / (fan_in + fan_out)); pooled, the weights / a
    # (3328 of them) fill [-1, 1] with mean square 1/3 (its standard error: 0.005)
    scaled = []
    for name, w in matrices:
        bound = math.sqrt(6.0 / (w.shape[0] + w.shape[1]))
        assert np.abs(w).max() <= bound, name
        scaled.append(w.ravel() / bound)
    scaled = np.concatenate(scaled)
    assert scaled.size == 3328 and np.abs(scaled).max() > 0.99
    assert abs(np.mean(scaled ** 2) - 1 / 3) < 0.03
    # re-initialised after the copies: the layers no longer share their first weights
    a = model.decoder.layers[0].linear1.weight.detach().numpy()
    b = model.decoder.layers[1].linear1.weight.detach().numpy()
    assert not np.array_equal(a, b)
    # one-dim parameters keep their modules' init
    bias = model.decoder.layers[2].self_attn.in_proj_bias
    np.testing.assert_array_equal(bias.detach().numpy(), 0.0)
    np.testing.assert_array_equal(model.encoder.norm.weight.detach().numpy(), 1.0)


def test_transformer_custom_encoder_and_decoder_are_used_and_reinitialised():
    calls = []

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 8)
            nn.init.constant_(self.proj.weight, 5.0)

        def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
            calls.append(("encoder", mask, src_key_padding_mask, is_causal))
            return self.proj(src)

    class Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 8)

        def forward(self, tgt, memory, **kwargs):
            calls.append(("decoder", sorted(kwargs)))
            return self.proj(tgt) + memory.mean(0)

    model = nn.Transformer(8, 2, custom_encoder=Encoder(), custom_decoder=Decoder())
    assert list(model.state_dict()) == ["encoder.proj.weight", "encoder.proj.bias",
                                        "decoder.proj.weight", "decoder.proj.bias"]
    w = model.encoder.proj.weight.detach().numpy()
    assert np.abs(w).max() <= math.sqrt(6.0 / 16)  # xavier_uniform_, not the 5.0 set above
    src, tgt = f32(randn(5, 2, 8)), f32(randn(3, 2, 8))
    got = model(src, tgt, src_is_causal=False)
    p = params64(model)
    mem = np_linear(src.astype(np.float64), p, "encoder.proj")
    want = np_linear(tgt.astype(np.float64), p, "decoder.proj") + mem.mean(0)
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-5, atol=1e-5)
    assert calls[0] == ("encoder", None, None, False)
    assert calls[1] == ("decoder", ["memory_is_causal", "memory_key_padding_mask",
                                    "memory_mask", "tgt_is_causal", "tgt_key_padding_mask",
                                    "tgt_mask"])


def test_generate_square_subsequent_mask():
    got = nn.Transformer.generate_square_subsequent_mask(4)
    assert isinstance(got, pve.Tensor) and got.dtype == np.float32
    want = np.where(np.arange(4)[None, :] > np.arange(4)[:, None], -np.inf, 0.0)
    np.testing.assert_array_equal(got.numpy(), want)
    boolean = nn.Transformer.generate_square_subsequent_mask(4, dtype=np.bool_)
    np.testing.assert_array_equal(boolean.numpy(), want == -np.inf)
    assert nn.Transformer(8, 2, 1, 1, 16).generate_square_subsequent_mask(0).shape == (0, 0)
    with pytest.raises(RuntimeError, match="negative dimension -1"):
        nn.Transformer.generate_square_subsequent_mask(-1)
    with pytest.raises(TypeError, match="dtype"):
        nn.Transformer.generate_square_subsequent_mask(3, dtype=np.int64)


def test_causal_mask_detection():
    causal = np.triu(np.full((4, 4), -np.inf, np.float32), 1)
    assert _detect_is_causal_mask(causal, None, 4)
    assert _detect_is_causal_mask(causal == -np.inf, None, 4)  # bool, compared as bool
    assert not _detect_is_causal_mask(causal, None, 5)  # another sequence length
    assert not _detect_is_causal_mask(np.broadcast_to(causal, (2, 4, 4)), None, 4)
    assert not _detect_is_causal_mask(np.where(causal == 0, 1.0, causal), None, 4)
    assert not _detect_is_causal_mask(causal, False, 4)  # a given hint wins
    assert _detect_is_causal_mask(None, True, 4) and not _detect_is_causal_mask(None, None, 4)
    with pytest.raises(RuntimeError, match="bool or float"):
        _detect_is_causal_mask(np.zeros((4, 4), np.int64), None, 4)


def test_lazy_export():
    code = ("import sys, pyvision_engine as pve; "
            "assert 'pyvision_engine.nn.transformer' not in sys.modules; "
            "from pyvision_engine.nn.transformer import Transformer; "
            "assert pve.nn.Transformer is Transformer; "
            "assert pve.nn.TransformerDecoder.__module__ == 'pyvision_engine.nn.transformer'; "
            "assert 'TransformerDecoderLayer' in dir(pve.nn) and 'Transformer' in pve.nn.__all__")
    from subprocess_env import run_python  # (a neutral directory: no source tree shadows the package)
    done = run_python(["-c", code])
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ dropout

def test_dropout_one_drops_every_block_in_train_mode_only():
    """dropout=1 zeroes every block's output in train mode: pre-norm gives tgt back
    exactly, post-norm the three norms of tgt; eval mode equals a dropout-0 copy."""
    pre = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=1.0, norm_first=True)
    post = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=1.0)
    x, mem = f32(randn(4, 2, 8)), f32(randn(5, 2, 8))
    np.testing.assert_array_equal(pre(x, mem).detach().numpy(), x)
    p = randomize(post)
    want = np_layer_norm(np_layer_norm(np_layer_norm(x.astype(np.float64), p, "norm1"), p,
                                       "norm2"), p, "norm3")
    np.testing.assert_allclose(post(x, mem).detach().numpy(), want, rtol=1e-5, atol=1e-5)
    for layer in (pre, post):
        ref = nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                         norm_first=layer.norm_first)
        ref.load_state_dict(layer.state_dict())
        layer.eval()
        np.testing.assert_array_equal(layer(x, mem).detach().numpy(),
                                      ref(x, mem).detach().numpy())


def test_dropout_layers_scale_in_train_mode_and_pass_through_in_eval():
    """Each of dropout, dropout1..3 zeroes about p of its input and scales the rest by
    1 / (1 - p) in train mode, and is the identity in eval mode; the attention weights'
    dropout changes the attention outputs in train mode only."""
    pve.manual_seed(1)
    p_drop = 0.5
    layer = nn.TransformerDecoderLayer(16, 2, dim_feedforward=32, dropout=p_drop)
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen[name] = (np.array(as_np(args[0])), np.array(as_np(output)))
        return hook
    for name in ("dropout", "dropout1", "dropout2", "dropout3"):
        getattr(layer, name).register_forward_hook(record(name))
    x, mem = f32(randn(16, 4, 16)), f32(randn(12, 4, 16))
    for training in (True, False):
        layer.train(training)
        seen.clear()
        layer(x, mem)
        assert sorted(seen) == ["dropout", "dropout1", "dropout2", "dropout3"]
        for name, (inp, out) in seen.items():
            if not training:
                np.testing.assert_array_equal(out, inp, err_msg=name)
                continue
            live = inp != 0  # (the feed-forward dropout follows a relu)
            kept = out[live] != 0
            assert live.mean() > 0.25 and 0.4 < 1 - kept.mean() < 0.6, name
            np.testing.assert_allclose(out[live][kept], inp[live][kept] / (1 - p_drop),
                                       rtol=1e-6, err_msg=name)
            np.testing.assert_array_equal(out[~live], 0.0, err_msg=name)
    q = f32(randn(16, 4, 16))
    for training in (True, False):
        layer.train(training)
        a = layer.self_attn(q, q, q, need_weights=False)[0].detach().numpy()
        b = layer.self_attn(q, q, q, need_weights=False)[0].detach().numpy()
        assert np.array_equal(a, b) != training


def as_np(t):
    return t.detach().numpy() if isinstance(t, pve.Tensor) else np.asarray(t)


# ------------------------------------------------------------------ errors

def _layer():
    return nn.TransformerDecoderLayer(8, 2, dim_feedforward=16)


def _model(**kw):
    return nn.Transformer(8, 2, 1, 1, 16, **kw)


X = f32(randn(4, 2, 8))  # tgt: T=4, N=2
M = f32(randn(5, 2, 8))  # src / memory: S=5, N=2

ERROR_CASES = [
    ("d_model of src", lambda m: m(f32(randn(5, 2, 6)), X), RuntimeError,
     "feature number of src and tgt must be equal to d_model"),
    ("d_model of tgt", lambda m: m(M, f32(randn(4, 2, 6))), RuntimeError,
     "feature number of src and tgt must be equal to d_model"),
    ("batch", lambda m: m(M, f32(randn(4, 3, 8))), RuntimeError,
     "batch number of src and tgt must be equal"),
    ("batch, unbatched tgt", lambda m: m(M, f32(randn(4, 8))), RuntimeError,
     "batch number of src and tgt must be equal"),
    ("1-D src", lambda m: m(f32(randn(8)), X), IndexError, "expected src / tgt of shapes"),
    ("tgt_mask", lambda m: m(M, X, tgt_mask=np.zeros((4, 5), bool)), RuntimeError,
     r"2D attn_mask is \(4, 5\), but should be \(4, 4\)"),
    ("3-D tgt_mask", lambda m: m(M, X, tgt_mask=f32(randn(2, 4, 4))), RuntimeError,
     r"3D attn_mask is \(2, 4, 4\), but should be \(4, 4, 4\)"),
    ("memory_mask", lambda m: m(M, X, memory_mask=np.zeros((4, 4), bool)), RuntimeError,
     r"2D attn_mask is \(4, 4\), but should be \(4, 5\)"),
    ("src_mask", lambda m: m(M, X, src_mask=np.zeros((4, 4), bool)), RuntimeError,
     r"2D attn_mask is \(4, 4\), but should be \(5, 5\)"),
    ("tgt_key_padding_mask", lambda m: m(M, X, tgt_key_padding_mask=np.zeros((2, 5), bool)),
     AssertionError, r"key_padding_mask shape of \(2, 4\), but got \(2, 5\)"),
    ("memory_key_padding_mask",
     lambda m: m(M, X, memory_key_padding_mask=np.zeros((2, 4), bool)), AssertionError,
     r"key_padding_mask shape of \(2, 5\), but got \(2, 4\)"),
    ("int mask", lambda m: m(M, X, tgt_mask=np.zeros((4, 4), np.int64)), RuntimeError,
     "bool or float"),
    ("tgt hint without mask", lambda m: m(M, X, tgt_is_causal=True), RuntimeError,
     "Need attn_mask"),
    ("memory hint without mask", lambda m: m(M, X, memory_is_causal=True), RuntimeError,
     "Need attn_mask"),
    ("unbatched src, batched tgt", lambda m: m(f32(randn(5, 8)), X), AssertionError,
     "expected `key` and `value` to be 3-D"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
@pytest.mark.filterwarnings("ignore:Support for mismatched")
def test_transformer_errors(case):
    _, call, exc, match = case
    with pytest.raises(exc, match=match) as info:
        call(_model())
    assert isinstance(info.value, ValueError)  # this engine's contract as well


def test_batch_mismatch_batch_first():
    with pytest.raises(RuntimeError, match="batch number of src and tgt must be equal"):
        _model(batch_first=True)(f32(randn(2, 5, 8)), f32(randn(3, 4, 8)))


LAYER_ERROR_CASES = [
    ("d_model of tgt", lambda m: m(f32(randn(4, 2, 6)), M), AssertionError,
     "expecting embedding dimension of 8, but got 6"),
    ("d_model of memory", lambda m: m(X, f32(randn(5, 2, 6))), RuntimeError,
     "memory's feature size must be d_model=8"),
    ("batch of memory", lambda m: m(X, f32(randn(5, 3, 8))), RuntimeError,
     r"memory's batch size must equal tgt's \(2\)"),
    ("rank of memory", lambda m: m(X, f32(randn(5, 8))), AssertionError,
     "expected `key` and `value` to be 3-D"),
    ("memory_mask", lambda m: m(X, M, memory_mask=np.zeros((5, 4), bool)), RuntimeError,
     r"2D attn_mask is \(5, 4\), but should be \(4, 5\)"),
    ("memory hint without mask", lambda m: m(X, M, memory_is_causal=True), RuntimeError,
     "Need attn_mask"),
]


@pytest.mark.parametrize("case", LAYER_ERROR_CASES, ids=[c[0] for c in LAYER_ERROR_CASES])
def test_decoder_layer_errors(case):
    _, call, exc, match = case
    with pytest.raises(exc, match=match) as info:
        call(_layer())
    assert isinstance(info.value, ValueError)


def test_construction_errors():
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerDecoderLayer(8, 2, activation="tanh")
    with pytest.raises(TypeError, match="activation must be"):
        nn.TransformerDecoderLayer(8, 2, activation=3)
    with pytest.raises(AssertionError, match="divisible"):
        nn.TransformerDecoderLayer(8, 3)
    with pytest.raises(AssertionError, match="divisible"):
        nn.Transformer(8, 3)
    with pytest.raises(TypeError, match="dtype"):
        nn.TransformerDecoderLayer(8, 2, dtype=np.int64)
    with pytest.raises(ValueError, match="device"):
        nn.Transformer(8, 2, 1, 1, 16, device="cuda")
    with pytest.raises(TypeError, match="decoder_layer must be a Module"):
        nn.TransformerDecoder("layer", 2)
    with pytest.raises(IndexError, match="no layers") as info:
        nn.TransformerDecoder(_layer(), 0)(X, M)
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------ torch parity

def t_or_none(torch, x):
    return None if x is None else torch.tensor(np.asarray(x))


def copy_to_torch(torch, pmod, tmod):
    tmod.load_state_dict({k: torch.tensor(v.detach().numpy())
                          for k, v in pmod.state_dict().items()}, strict=True)


def torch_to_pve(torch, tmod, pmod):
    """torch's weights, perturbed, loaded strictly through state_dict into both."""
    with torch.no_grad():
        for prm in tmod.parameters():
            prm.add_(0.3 * torch.randn(prm.shape, generator=torch.Generator().manual_seed(
                int(rng.integers(1 << 30)))))
    sd = {k: v.detach().numpy().copy() for k, v in tmod.state_dict().items()}
    assert list(pmod.state_dict()) == list(sd)
    pmod.load_state_dict(sd, strict=True)


def compare_grads(pmod, tmod, tol=1e-4):
    tparams = dict(tmod.named_parameters())
    assert [n for n, _ in pmod.named_parameters()] == list(tparams)
    for name, prm in pmod.named_parameters():
        assert prm.grad is not None, name
        assert_grad_close(prm.grad.numpy(), tparams[name].grad.numpy(), rtol=tol, atol=tol,
                          name=name)


def torch_activation(torch, act):
    return {"silu": torch.nn.functional.silu}.get(act, act)


def pve_activation(act):
    return {"silu": lambda h: F.silu(h)}.get(act, act)


DECODER_TORCH_CASES = [
    dict(),
    dict(norm_first=True, activation="gelu"),
    dict(activation="silu", kinds=("tgt_causal",)),  # a callable
    dict(batch_first=True, kinds=("tgt_kpm", "mem_kpm")),
    dict(batch_first=True, norm_first=True, kinds=("tgt_bool", "mem_float")),
    dict(kinds=("tgt_float", "mem_bool", "tgt_kpm_float")),
    dict(kinds=("tgt_3d", "mem_kpm_float")),
    dict(kinds=("tgt_causal",), tgt_is_causal=True),
    dict(kinds=("tgt_bool", "mem_bool"), tgt_is_causal=True, memory_is_causal=True),
    dict(kinds=("tgt_bool", "tgt_kpm", "mem_bool", "mem_kpm"), tgt_is_causal=True,
         memory_is_causal=True),
    dict(bias=False, kinds=("tgt_causal", "mem_kpm")),
    dict(unbatched=True, kinds=("tgt_bool", "mem_kpm")),
    dict(unbatched=True, batch_first=True, norm_first=True, kinds=("tgt_kpm",)),
]


def decoder_inputs(case, T=4, S=5, N=3, E=8, H=2):
    x, mem = f32(randn(T, N, E)), f32(randn(S, N, E))
    m = make_masks(T, S, N, H, case.get("kinds", ()))
    if case.get("unbatched"):
        x, mem = x[:, 0], mem[:, 0]
        for key in ("tgt_key_padding_mask", "memory_key_padding_mask"):
            if key in m:
                m[key] = np.ascontiguousarray(m[key][0])
    elif case.get("batch_first"):
        x, mem = (np.ascontiguousarray(a.transpose(1, 0, 2)) for a in (x, mem))
    return x, mem, m


def layer_kwargs(case):
    return {k: case[k] for k in ("norm_first", "batch_first", "bias") if k in case}


def run_both(torch, pmod, tmod, inputs, masks, kwargs):
    ps = [pve.tensor(a, requires_grad=True) for a in inputs]
    ts = [torch.tensor(a, requires_grad=True) for a in inputs]
    tmasks = {k: t_or_none(torch, v) for k, v in masks.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pmod(*ps, **masks, **kwargs)
        tout = tmod(*ts, **tmasks, **kwargs)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-4,
                               atol=1e-4)
    g = f32(randn(*out.shape))
    out.backward(pve.tensor(g))
    tout.backward(torch.tensor(g))
    for p, t in zip(ps, ts):
        assert_grad_close(p.grad.numpy(), t.grad.numpy())
    compare_grads(pmod, tmod)


@pytest.mark.parametrize("case", DECODER_TORCH_CASES)
@pytest.mark.parametrize("training", [True, False])
def test_decoder_layer_and_decoder_torch_parity(torch, case, training):
    act = case.get("activation", "relu")
    kw = dict(dim_feedforward=16, dropout=0.0, **layer_kwargs(case))
    tlayer = torch.nn.TransformerDecoderLayer(8, 2, activation=torch_activation(torch, act),
                                              **kw)
    player = nn.TransformerDecoderLayer(8, 2, activation=pve_activation(act), **kw)
    torch_to_pve(torch, tlayer, player)
    x, mem, m = decoder_inputs(case)
    hints = {k: case[k] for k in ("tgt_is_causal", "memory_is_causal") if k in case}
    player.train(training)
    tlayer.train(training)
    run_both(torch, player, tlayer, (x, mem), m, hints)

    tdec = torch.nn.TransformerDecoder(tlayer, 2, norm=torch.nn.LayerNorm(8))
    pdec = nn.TransformerDecoder(player, 2, norm=nn.LayerNorm(8))
    torch_to_pve(torch, tdec, pdec)  # the two layers and the norm now differ
    pdec.train(training)
    tdec.train(training)
    run_both(torch, pdec, tdec, (x, mem), m, hints)


TRANSFORMER_TORCH_CASES = [
    dict(),
    dict(batch_first=True, norm_first=True),
    dict(activation="gelu", masks=("src_float", "tgt_causal", "memory_bool")),
    dict(batch_first=True, activation="silu", masks=("src_kpm", "tgt_kpm", "memory_kpm")),
    dict(norm_first=True, masks=("tgt_causal", "src_kpm", "memory_kpm"), tgt_is_causal=True),
    dict(masks=("src_causal",), src_is_causal=None),  # detected
    dict(bias=False, masks=("tgt_causal", "memory_float")),
    dict(unbatched=True, masks=("src_kpm", "tgt_causal", "memory_kpm")),
]


def transformer_inputs(case, S=5, T=4, N=2, E=8):
    src, tgt = f32(randn(S, N, E)), f32(randn(T, N, E))
    names = case.get("masks", ())
    m = {}
    if "src_float" in names:
        m["src_mask"] = f32(randn(S, S))
    if "src_causal" in names:
        m["src_mask"] = nn.Transformer.generate_square_subsequent_mask(S).numpy()
    if "tgt_causal" in names:
        m["tgt_mask"] = nn.Transformer.generate_square_subsequent_mask(T).numpy()
    if "memory_bool" in names:
        m["memory_mask"] = rng.random((T, S)) > 0.6
        m["memory_mask"][:, 0] = False
    if "memory_float" in names:
        m["memory_mask"] = f32(randn(T, S))
    pad = np.zeros((N, S), bool)
    pad[1, 3:] = True
    if "src_kpm" in names:
        m["src_key_padding_mask"] = pad
    if "memory_kpm" in names:
        m["memory_key_padding_mask"] = pad
    if "tgt_kpm" in names:
        m["tgt_key_padding_mask"] = np.zeros((N, T), bool)
        m["tgt_key_padding_mask"][0, -1] = True
    if case.get("unbatched"):
        src, tgt = src[:, 0], tgt[:, 0]
        m = {k: (np.ascontiguousarray(v[0]) if "padding" in k else v) for k, v in m.items()}
    elif case.get("batch_first"):
        src, tgt = (np.ascontiguousarray(a.transpose(1, 0, 2)) for a in (src, tgt))
    return src, tgt, m


@pytest.mark.parametrize("case", TRANSFORMER_TORCH_CASES)
@pytest.mark.parametrize("training", [True, False])
def test_transformer_torch_parity(torch, case, training):
    act = case.get("activation", "relu")
    kw = dict(num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=16, dropout=0.0,
              **layer_kwargs(case))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on nested tensors
        tmodel = torch.nn.Transformer(8, 2, activation=torch_activation(torch, act), **kw)
    pmodel = nn.Transformer(8, 2, activation=pve_activation(act), **kw)
    torch_to_pve(torch, tmodel, pmodel)
    pmodel.train(training)
    tmodel.train(training)
    src, tgt, m = transformer_inputs(case)
    hints = {k: case[k] for k in ("src_is_causal", "tgt_is_causal") if k in case}
    run_both(torch, pmodel, tmodel, (src, tgt), m, hints)


def test_torch_state_dict_loads_strictly_both_ways(torch):
    tmodel = torch.nn.Transformer(8, 2, 1, 2, 16, batch_first=True)
    pmodel = nn.Transformer(8, 2, 1, 2, 16, batch_first=True)
    pmodel.load_state_dict({k: v.numpy() for k, v in tmodel.state_dict().items()})
    for (name, a), (tname, b) in zip(pmodel.state_dict().items(),
                                     tmodel.state_dict().items()):
        assert name == tname and tuple(a.shape) == tuple(b.shape)
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    copy_to_torch(torch, pmodel, tmodel)
    with pytest.raises(Exception):  # a missing key is refused in strict mode
        sd = {k: v.numpy() for k, v in tmodel.state_dict().items()}
        sd.pop("decoder.layers.1.norm3.bias")
        pmodel.load_state_dict(sd)


def test_dropout_torch_parity(torch):
    """dropout=1 in train mode: both drop every block (exactly tgt back for pre-norm)."""
    for norm_first in (False, True):
        tlayer = torch.nn.TransformerDecoderLayer(8, 2, 16, dropout=1.0, norm_first=norm_first)
        player = nn.TransformerDecoderLayer(8, 2, 16, dropout=1.0, norm_first=norm_first)
        torch_to_pve(torch, tlayer, player)
        x, mem = f32(randn(4, 2, 8)), f32(randn(5, 2, 8))
        np.testing.assert_allclose(player(x, mem).detach().numpy(),
                                   tlayer(torch.tensor(x), torch.tensor(mem)).detach().numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_causal_mask_detection_torch_parity(torch):
    from torch.nn.modules.transformer import _detect_is_causal_mask as torch_detect
    causal = np.triu(np.full((4, 4), -np.inf, np.float32), 1)
    masks = [causal, causal == -np.inf, np.broadcast_to(causal, (2, 4, 4)).copy(),
             np.where(causal == 0, 1.0, causal).astype(np.float32), np.zeros((4, 4), bool),
             None]
    for mask in masks:
        for hint in (None, True, False):
            for size in (4, 5):
                want = torch_detect(t_or_none(torch, mask), hint, size)
                assert _detect_is_causal_mask(mask, hint, size) == want, (mask, hint, size)
    tmask = torch.nn.Transformer.generate_square_subsequent_mask(5)
    np.testing.assert_array_equal(nn.Transformer.generate_square_subsequent_mask(5).numpy(),
                                  tmask.numpy())
    tbool = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.bool)
    np.testing.assert_array_equal(
        nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.bool).numpy(),
        tbool.numpy())


def test_errors_torch_parity(torch):
    """The same bad inputs fail in torch with the same exception class."""
    def torch_call(call, tmod):
        def wrap(*args, **kwargs):
            conv = {k: t_or_none(torch, v) if isinstance(v, np.ndarray) else v
                    for k, v in kwargs.items()}
            return tmod(*[torch.tensor(a) for a in args], **conv)
        return call(wrap)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmodel, tlayer = torch.nn.Transformer(8, 2, 1, 1, 16), torch.nn.TransformerDecoderLayer(
            8, 2, 16)
        for cases, tmod, pmod in ((ERROR_CASES, tmodel, _model()),
                                  (LAYER_ERROR_CASES, tlayer, _layer())):
            for name, call, exc, _ in cases:
                with pytest.raises(Exception) as tinfo:
                    torch_call(call, tmod)
                assert isinstance(tinfo.value, exc), (name, tinfo.value)
                with pytest.raises(type(tinfo.value)):
                    call(pmod)
        with pytest.raises(RuntimeError):
            torch.nn.TransformerDecoderLayer(8, 2, activation="tanh")
        with pytest.raises(AssertionError):
            torch.nn.Transformer(8, 3)
        with pytest.raises(IndexError):
            torch.nn.TransformerDecoder(tlayer, 0)(torch.tensor(X), torch.tensor(M))
        with pytest.raises(RuntimeError):
            torch.nn.Transformer(8, 2, 1, 1, 16, batch_first=True)(
                torch.randn(2, 5, 8), torch.randn(3, 4, 8))


def test_inference_without_grad_torch_parity(torch):
    """eval() under no_grad, batch first: torch takes its fused fast paths (nested tensors
    in the encoder, native attention for the decoder's self-attention); the decoder's
    output is the same (padded memory positions are masked out of the decoder's view)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmodel = torch.nn.Transformer(8, 2, 2, 2, 16, batch_first=True).eval()
    pmodel = nn.Transformer(8, 2, 2, 2, 16, batch_first=True).eval()
    torch_to_pve(torch, tmodel, pmodel)
    src, tgt, m = transformer_inputs(dict(batch_first=True,
                                          masks=("src_kpm", "memory_kpm", "tgt_kpm",
                                                 "tgt_causal")))
    m["tgt_mask"] = m["tgt_mask"] == -np.inf  # bool masks: the fast paths take these
    with pve.no_grad():
        out = pmodel(src, tgt, **m)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on its nested tensors
        tout = tmodel(torch.tensor(src), torch.tensor(tgt),
                      **{k: torch.tensor(v) for k, v in m.items()})
    np.testing.assert_allclose(out.numpy(), tout.numpy(), rtol=1e-4, atol=1e-4)
