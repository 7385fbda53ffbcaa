"""pve.onnx's transformer operators (pyvision_engine/onnx/_ops_attention.py): Attention
(opsets 23, 24, 25), RMSNormalization, RotaryEmbedding, TensorScatter and SwiGLU.

- Against float64 numpy references written here (explicit repeat of the kv heads, masks
  built as boolean grids, a per-row softmax), called on the operator directly: no extra
  package needed.
- Against onnxruntime on the same one-node model run by pve.onnx.InferenceSession, over
  the attribute combinations onnxruntime implements (skips without onnx/onnxruntime).
- Against torch.nn.functional.scaled_dot_product_attention (plain, causal, bool and
  float masks, grouped-query) and torch.nn.functional.rms_norm (skip without torch).
- Errors: heads that do not divide, mismatched shapes, attributes out of range.

The ONNX backend node cases of these operators run in test_session.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from pyvision_engine.onnx import InferenceSession
from pyvision_engine.onnx._ops import OPS, OnnxOpError

RNG = np.random.default_rng(23)


# --------------------------------------------------------------------------- references
def _to_heads(x, heads):
    b, s, hidden = x.shape
    return x.reshape(b, s, heads, hidden // heads).transpose(0, 2, 1, 3)


def ref_attention(q, k, v, mask=None, past_k=None, past_v=None, nonpad=None, q_heads=None,
                  kv_heads=None, scale=None, causal=0, softcap=0.0, mode=0, left=-1, right=-1):
    """Attention in float64: (Y, present_key, present_value, qk_matmul_output)."""
    q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
    rank3 = q.ndim == 3
    if rank3:
        q, k, v = _to_heads(q, q_heads), _to_heads(k, kv_heads), _to_heads(v, kv_heads)
    if past_k is not None:
        k = np.concatenate([np.asarray(past_k, np.float64), k], axis=2)
        v = np.concatenate([np.asarray(past_v, np.float64), v], axis=2)
    b, h, s, d = q.shape
    t = k.shape[2]
    group = h // k.shape[1]
    k_rep, v_rep = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    scale = 1 / np.sqrt(d) if scale is None else scale
    logits = np.einsum("bhsd,bhtd->bhst", q, k_rep) * scale
    capped = softcap * np.tanh(logits / softcap) if softcap > 0 else logits
    allowed = np.ones((b, h, s, t), bool)
    add = np.zeros((b, h, s, t))
    if mask is not None:
        pad = t - mask.shape[-1]
        if mask.dtype == bool:
            mask = np.concatenate([mask, np.zeros(mask.shape[:-1] + (pad,), bool)], -1)
            allowed &= np.broadcast_to(mask, allowed.shape)
        else:
            mask = np.concatenate([mask, np.full(mask.shape[:-1] + (pad,), -np.inf)], -1)
            add = add + mask.astype(np.float64)
    if nonpad is not None:
        offsets = np.asarray(nonpad) - s
    else:
        offsets = np.full(b, 0 if past_k is None else past_k.shape[2])
    for bi in range(b):
        pos = np.arange(s)[:, None] + offsets[bi]
        j = np.arange(t)[None, :]
        if causal:
            allowed[bi] &= j <= pos
        if left >= 0:
            allowed[bi] &= pos - j <= left
        if right >= 0:
            allowed[bi] &= j - pos <= right
        if nonpad is not None:
            allowed[bi] &= j < nonpad[bi]
    bias = np.where(allowed, add, -np.inf)
    biased = capped + bias
    empty = np.isneginf(bias).all(axis=-1, keepdims=True)
    top = np.where(empty, 0, biased.max(axis=-1, keepdims=True))
    e = np.exp(biased - top)
    probs = np.where(empty, 0, e / np.where(empty, 1, e.sum(axis=-1, keepdims=True)))
    y = np.einsum("bhst,bhtd->bhsd", probs, v_rep)
    if rank3:
        y = y.transpose(0, 2, 1, 3).reshape(b, s, -1)
    return y, k, v, (logits, capped, biased, probs)[mode]


def _run_op(name, attrs, opset, inputs):
    return OPS[name](attrs, opset, list(inputs))


# ------------------------------------------------------------------- the configurations
# (rank, q_heads, kv_heads, q_len, kv_len, past_len, head_size, v_head_size)
SHAPES = [(4, 4, 4, 5, 5, 0, 8, 8), (4, 4, 2, 3, 6, 0, 8, 6), (4, 6, 1, 4, 4, 3, 4, 4),
          (3, 4, 2, 5, 5, 0, 8, 8), (3, 2, 2, 2, 7, 4, 6, 10)]
MASKS = [None, "bool2", "float2", "bool3", "float4", "short_bool", "short_float", "rank1"]


def _mask(kind, b, h, s, total, dtype):
    if kind is None:
        return None
    shape = {"2": (s, total), "3": (h, s, total), "4": (b, 1, s, total)}.get(kind[-1])
    if kind.startswith("short"):
        shape = (b, h, s, max(total - 2, 1))
    if kind == "rank1":
        shape = (total,)
    if "bool" in kind or kind == "rank1":
        m = RNG.random(shape) < 0.7
        m[..., 0] = True  # (no fully masked row unless a test wants one)
        return m
    return RNG.uniform(-2, 1, shape).astype(dtype)


def _inputs(shape, dtype=np.float32, batch=2):
    rank, hq, hkv, s, t, past, d, dv = shape

    def arr(*dims):
        return RNG.standard_normal(dims).astype(dtype)
    if rank == 4:
        q, k, v = arr(batch, hq, s, d), arr(batch, hkv, t, d), arr(batch, hkv, t, dv)
    else:
        q, k, v = arr(batch, s, hq * d), arr(batch, t, hkv * d), arr(batch, t, hkv * dv)
    pk = arr(batch, hkv, past, d) if past else None
    pv = arr(batch, hkv, past, dv) if past else None
    attrs = {"q_num_heads": hq, "kv_num_heads": hkv} if rank == 3 else {}
    return q, k, v, pk, pv, attrs


def _ref_kwargs(attrs, mask, pk, pv, nonpad=None):
    return dict(mask=mask, past_k=pk, past_v=pv, nonpad=nonpad,
                q_heads=attrs.get("q_num_heads"), kv_heads=attrs.get("kv_num_heads"),
                scale=attrs.get("scale"), causal=attrs.get("is_causal", 0),
                softcap=attrs.get("softcap", 0.0), mode=attrs.get("qk_matmul_output_mode", 0),
                left=attrs.get("left_window_size", -1), right=attrs.get("right_window_size", -1))


def _check(got, want, rtol, atol, dtype):
    names = ["Y", "present_key", "present_value", "qk_matmul_output"]
    for name, g, w in zip(names, got, want):
        assert g.dtype == dtype, name
        assert g.shape == w.shape, (name, g.shape, w.shape)
        np.testing.assert_allclose(g.astype(np.float64), w, rtol=rtol, atol=atol, err_msg=name)


# ------------------------------------------------------------------- against numpy float64
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_matches_float64_reference(shape, mask_kind, causal, mode):
    q, k, v, pk, pv, attrs = _inputs(shape)
    b, hq, s, total = 2, shape[1], shape[3], shape[4] + shape[5]
    mask = _mask(mask_kind, b, hq, s, total, np.float32)
    attrs = dict(attrs, is_causal=causal, qk_matmul_output_mode=mode)
    if mode % 2:  # (softcap and an explicit scale on half the cases)
        attrs.update(softcap=3.0, scale=0.3)
    got = _run_op("Attention", attrs, 23, [q, k, v, mask, pk, pv])
    want = ref_attention(q, k, v, **_ref_kwargs(attrs, mask, pk, pv))
    _check(got, want, 1e-5, 1e-5, np.float32)


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("mask_kind", [None, "bool4", "float2"])
@pytest.mark.parametrize("nonpad", [[5, 7], [2, 0], [7, 3]])
@pytest.mark.parametrize("q_len", [1, 4])
def test_attention_nonpad_kv_seqlen(causal, mask_kind, nonpad, q_len):
    """opset 24's external cache: padding keys masked per batch, and a bottom-right
    causal frontier at nonpad - q_len (negative: leading rows fully masked, zeros)."""
    q, k, v, _, _, attrs = _inputs((4, 4, 2, q_len, 7, 0, 8, 8))
    mask = _mask(mask_kind, 2, 4, q_len, 7, np.float32)
    nonpad = np.array(nonpad, np.int64)
    attrs = dict(is_causal=causal, qk_matmul_output_mode=3)
    got = _run_op("Attention", attrs, 24, [q, k, v, mask, None, None, nonpad])
    want = ref_attention(q, k, v, **_ref_kwargs(attrs, mask, None, None, nonpad))
    _check(got, want, 1e-5, 1e-5, np.float32)
    if nonpad.min() == 0:  # a batch with no valid key: all zeros, no NaN
        assert not np.isnan(got[0]).any()
        np.testing.assert_array_equal(got[0][nonpad == 0], 0)


@pytest.mark.parametrize("left, right, causal", [(2, 0, 0), (2, 1, 0), (0, -1, 0), (-1, 1, 0),
                                                 (3, -1, 1), (1, 2, 1), (-1, -1, 0)])
@pytest.mark.parametrize("past", [0, 3])
@pytest.mark.parametrize("rank", [3, 4])
def test_attention_sliding_window_opset25(left, right, causal, past, rank):
    q, k, v, pk, pv, attrs = _inputs((rank, 4, 2, 4, 6, past, 8, 8))
    attrs = dict(attrs, is_causal=causal, left_window_size=left, right_window_size=right,
                 qk_matmul_output_mode=2)
    got = _run_op("Attention", attrs, 25, [q, k, v, None, pk, pv])
    want = ref_attention(q, k, v, **_ref_kwargs(attrs, None, pk, pv))
    # (mode 2 keeps -inf where the window masks: compared as equal infinities)
    _check(got, want, 1e-5, 1e-5, np.float32)
    # before opset 25 the window attributes do not exist
    old = _run_op("Attention", attrs, 24, [q, k, v, None, pk, pv])
    plain = ref_attention(q, k, v, **dict(_ref_kwargs(attrs, None, pk, pv), left=-1, right=-1))
    _check(old, plain, 1e-5, 1e-5, np.float32)


def test_attention_fully_masked_rows_are_zero():
    q, k, v, _, _, _ = _inputs((4, 2, 2, 4, 5, 0, 8, 8))
    mask = np.ones((4, 5), bool)
    mask[1] = False
    for mode in (3, 2):
        y, _, _, qk = _run_op("Attention", {"qk_matmul_output_mode": mode}, 23,
                              [q, k, v, mask])
        np.testing.assert_array_equal(y[:, :, 1], 0)
        if mode == 3:
            np.testing.assert_array_equal(qk[:, :, 1], 0)
        else:
            assert np.isneginf(qk[:, :, 1]).all()
    want = ref_attention(q, k, v, mask=mask)
    np.testing.assert_allclose(y, want[0], rtol=1e-5, atol=1e-6)
    # a float mask of -inf on a whole row masks it the same way
    fmask = np.where(mask, 0, -np.inf).astype(np.float32)
    y2 = _run_op("Attention", {}, 23, [q, k, v, fmask])[0]
    np.testing.assert_array_equal(y2, y)


def test_attention_softmax_is_stable_for_large_scores():
    q, k, v, _, _, _ = _inputs((4, 2, 2, 3, 5, 0, 4, 4))
    q *= 300  # scores ~1e4: a naive exp overflows
    got = _run_op("Attention", {}, 23, [q, k, v])
    want = ref_attention(q, k, v)
    assert np.isfinite(got[0]).all()
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float16, 2e-3, 2e-3), (np.float64, 1e-12, 1e-12)])
@pytest.mark.parametrize("shape", SHAPES[:4], ids=lambda s: "x".join(map(str, s)))
def test_attention_float16_and_float64(dtype, rtol, atol, shape):
    q, k, v, pk, pv, attrs = _inputs(shape, dtype)
    mask = _mask("float2", 2, shape[1], shape[3], shape[4] + shape[5], dtype)
    attrs = dict(attrs, is_causal=1, qk_matmul_output_mode=3)
    got = _run_op("Attention", attrs, 23, [q, k, v, mask, pk, pv])
    want = ref_attention(q, k, v, **_ref_kwargs(attrs, mask, pk, pv))
    _check(got, want, rtol, atol, dtype)


@pytest.mark.parametrize("precision", [1, 10, 11, 16])
def test_attention_softmax_precision(precision):
    q, k, v, _, _, _ = _inputs((4, 2, 2, 3, 5, 0, 8, 8))
    attrs = {"softmax_precision": precision, "qk_matmul_output_mode": 3}
    got = _run_op("Attention", attrs, 23, [q, k, v])
    want = ref_attention(q, k, v, mode=3)
    # the probabilities pass through the named type: float16 / bfloat16 round them
    tol = {1: 1e-6, 11: 1e-6, 10: 1e-3, 16: 8e-3}[precision]
    _check(got, want, tol, tol, np.float32)


# ------------------------------------------------------------------------- errors
def _attn_error(match, inputs, attrs=None, opset=23):
    with pytest.raises(OnnxOpError, match=match):
        _run_op("Attention", attrs or {}, opset, inputs)


def test_attention_errors():
    f = np.float32
    q, k, v = np.zeros((1, 3, 2, 4), f), np.zeros((1, 2, 2, 4), f), np.zeros((1, 2, 2, 4), f)
    _attn_error(r"kv heads \(2\) must divide the query heads \(3\)", [q, k, v])
    q3 = np.zeros((1, 2, 12), f)
    _attn_error("q_num_heads must divide the hidden size of Q", [q3, q3, q3],
                {"q_num_heads": 5, "kv_num_heads": 2})
    _attn_error("kv_num_heads must divide the hidden size of K", [q3, q3, q3],
                {"q_num_heads": 4, "kv_num_heads": 5})
    k3 = np.zeros((1, 2, 9), f)  # (3 kv heads of size 3, as Q's 4 heads)
    _attn_error(r"kv heads \(3\) must divide the query heads \(4\)", [q3, k3, k3],
                {"q_num_heads": 4, "kv_num_heads": 3})
    _attn_error("need the q_num_heads and kv_num_heads", [q3, q3, q3])
    _attn_error("must all be 3-D or all 4-D", [q, q3, q3])
    q4 = np.zeros((1, 2, 2, 4), f)
    _attn_error("K .* and V .* expected", [q4, np.zeros((1, 2, 3, 4), f), q4])      # kv lengths
    _attn_error("K .* and V .* expected", [q4, np.zeros((1, 2, 2, 5), f), q4])      # head size
    _attn_error("K .* and V .* expected", [q4, np.zeros((2, 2, 2, 4), f), q4])      # batch
    _attn_error("past_key and past_value must be given together", [q4, q4, q4, None, q4])
    _attn_error("past_key .* and past_value .* expected",
                [q4, q4, q4, None, np.zeros((1, 2, 3, 5), f), np.zeros((1, 2, 3, 4), f)])
    _attn_error("attn_mask must broadcast", [q4, q4, q4, np.zeros((3, 2), bool)])
    _attn_error("attn_mask must broadcast", [q4, q4, q4, np.zeros((2, 3), f)])
    _attn_error("nonpad_kv_seqlen cannot be used with past_key",
                [q4, q4, q4, None, q4, q4, np.array([1], np.int64)], opset=24)
    _attn_error(r"nonpad_kv_seqlen must be an int64 vector of shape \(1,\)",
                [q4, q4, q4, None, None, None, np.array([1, 2], np.int64)], opset=24)
    _attn_error(r"nonpad_kv_seqlen values must be in \[0, 2\]",
                [q4, q4, q4, None, None, None, np.array([3], np.int64)], opset=24)
    _attn_error("qk_matmul_output_mode must be 0, 1, 2 or 3", [q4, q4, q4],
                {"qk_matmul_output_mode": 4})
    _attn_error("softmax_precision must be", [q4, q4, q4], {"softmax_precision": 7})
    _attn_error("scale must not be negative", [q4, q4, q4], {"scale": -0.5})
    _attn_error("must not be given with 4-D", [q4, q4, q4], {"q_num_heads": 2}, opset=25)
    _attn_error("contradict 4-D Q", [q4, q4, q4], {"q_num_heads": 4}, opset=23)
    _attn_error("left_window_size and right_window_size must be -1 or >= 0", [q4, q4, q4],
                {"left_window_size": -2}, opset=25)
    _attn_error("float tensors", [q4.astype(np.int32), q4, q4])


# ------------------------------------------------------------------ onnxruntime / models
def _model(op_type, inputs, attrs, n_out, opset):
    pytest.importorskip("onnx", reason="onnx (a test extra) builds the models")
    from onnx import helper
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    while names and not names[-1]:
        names.pop()
    node = helper.make_node(op_type, names, [f"out{i}" for i in range(n_out)], **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in zip(names, inputs) if n],
        [helper.make_empty_tensor_value_info(f"out{i}") for i in range(n_out)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    feed = {n: a for n, a in zip(names, inputs) if n}
    return model.SerializeToString(), feed


def _ort(data, feed):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (a test extra) is the reference")
    try:
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        return sess.run(None, feed)
    except Exception as e:  # (an attribute combination its kernel does not implement)
        if "NOT_IMPLEMENTED" in str(e) or "not supported" in str(e).lower():
            pytest.skip(f"onnxruntime does not implement this case: {str(e)[:160]}")
        raise


ORT_CASES = list(itertools.product(SHAPES, [None, "bool2", "float3", "bool4"], [0, 1], [0, 1, 2, 3]))


@pytest.mark.parametrize("shape, mask_kind, causal, mode", ORT_CASES,
                         ids=["x".join(map(str, c[0])) + f"-{c[1]}-c{c[2]}-m{c[3]}"
                              for c in ORT_CASES])
def test_attention_matches_onnxruntime(shape, mask_kind, causal, mode):
    q, k, v, pk, pv, attrs = _inputs(shape)
    mask = _mask(mask_kind, 2, shape[1], shape[3], shape[4] + shape[5], np.float32)
    attrs = dict(attrs, is_causal=causal, qk_matmul_output_mode=mode)
    if mode == 1:
        attrs.update(softcap=2.5)
    if mode == 2:
        attrs.update(scale=0.2)
    data, feed = _model("Attention", [q, k, v, mask, pk, pv], attrs, 4, 23)
    want = _ort(data, feed)
    got = InferenceSession(data).run(None, feed)
    if mode == 2:  # masked scores: -inf (the specification's reference), onnxruntime's lowest float
        want[3] = np.where(want[3] <= np.finfo(np.float32).min, -np.inf, want[3])
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset, extra", [
    (24, {"nonpad": [3, 6]}), (24, {"nonpad": [6, 1], "causal": 1}),
    (25, {"left_window_size": 2, "right_window_size": 0}),
    (25, {"left_window_size": 1, "right_window_size": 2, "nonpad": [5, 6]}),
    (23, {"softmax_precision": 1}), (23, {"softcap": 1.5, "qk_matmul_output_mode": 0}),
])
def test_attention_newer_attributes_match_onnxruntime(opset, extra):
    extra = dict(extra)
    nonpad = extra.pop("nonpad", None)
    causal = extra.pop("causal", 0)
    q, k, v, _, _, _ = _inputs((4, 4, 2, 3, 6, 0, 8, 8))
    inputs = [q, k, v]
    if nonpad is not None:
        inputs += [None, None, None, np.array(nonpad, np.int64)]
    attrs = dict(extra, is_causal=causal)
    # (with nonpad_kv_seqlen, no present_key / present_value outputs, as the specification asks)
    data, feed = _model("Attention", inputs, attrs, 1 if nonpad else 4, opset)
    want = _ort(data, feed)
    got = InferenceSession(data).run(None, feed)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_attention_float16_against_onnxruntime():
    q, k, v, pk, pv, attrs = _inputs((4, 4, 2, 4, 4, 2, 8, 8), np.float16)
    data, feed = _model("Attention", [q, k, v, None, pk, pv], {"is_causal": 1}, 3, 23)
    want = _ort(data, feed)
    got = InferenceSession(data).run(None, feed)
    exact = ref_attention(q, k, v, past_k=pk, past_v=pv, causal=1)
    for g, w, e in zip(got, want, exact):
        assert g.dtype == np.float16 and g.shape == w.shape
        # float32 inside, rounded once: no further from the float64 result than onnxruntime
        assert np.abs(g - e).max() <= np.abs(w - e).max() + 1e-7


def test_session_error_names_the_node():
    q = np.zeros((1, 3, 2, 4), np.float32)
    k = np.zeros((1, 2, 2, 4), np.float32)
    data, feed = _model("Attention", [q, k, k], {}, 1, 23)
    with pytest.raises(ValueError, match=r"Attention node: Attention: the kv heads \(2\)"):
        InferenceSession(data).run(None, feed)


# ----------------------------------------------------------------------------- torch
@pytest.mark.parametrize("hq, hkv", [(4, 4), (4, 2), (4, 1)])
@pytest.mark.parametrize("kind", ["plain", "causal", "bool", "float", "scaled"])
def test_attention_matches_torch_sdpa(hq, hkv, kind):
    torch = pytest.importorskip("torch", reason="torch is a further reference")
    q, k, v, _, _, _ = _inputs((4, hq, hkv, 6, 6, 0, 8, 8))
    mask = _mask({"bool": "bool4", "float": "float2"}.get(kind), 2, hq, 6, 6, np.float32)
    attrs = {"is_causal": int(kind == "causal")}
    if kind == "scaled":
        attrs["scale"] = 0.7
    got = _run_op("Attention", attrs, 23, [q, k, v, mask])[0]
    with torch.no_grad():
        want = torch.nn.functional.scaled_dot_product_attention(
            torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v),
            attn_mask=None if mask is None else torch.from_numpy(mask),
            is_causal=kind == "causal", scale=attrs.get("scale"), enable_gqa=hq != hkv).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------- RMSNormalization
def ref_rms_norm(x, scale, axis, eps):
    x = x.astype(np.float64)
    axes = tuple(range(axis % x.ndim, x.ndim))
    return x / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps) * scale


RMS_CASES = [((2, 3, 8), -1, (8,)), ((2, 3, 8), 1, (3, 8)), ((4, 5), 0, (4, 5)),
             ((2, 3, 4, 5), -2, (4, 5)), ((2, 3, 4, 5), 1, (1, 1, 5)), ((6, 16), -1, (1,))]


@pytest.mark.parametrize("shape, axis, scale_shape", RMS_CASES)
@pytest.mark.parametrize("eps", [1e-5, 0.1])
def test_rms_normalization_matches_float64_and_onnxruntime(shape, axis, scale_shape, eps):
    x = RNG.standard_normal(shape).astype(np.float32)
    scale = RNG.uniform(0.5, 1.5, scale_shape).astype(np.float32)
    attrs = {"axis": axis, "epsilon": eps}
    (got,) = _run_op("RMSNormalization", attrs, 23, [x, scale])
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, ref_rms_norm(x, scale, axis, eps), rtol=1e-5, atol=1e-6)
    data, feed = _model("RMSNormalization", [x, scale], attrs, 1, 23)
    (want,) = _ort(data, feed)
    np.testing.assert_allclose(InferenceSession(data).run(None, feed)[0], want,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype, tol", [(np.float16, 1e-3), (np.float64, 1e-12)])
def test_rms_normalization_other_types(dtype, tol):
    x = RNG.standard_normal((3, 7, 10)).astype(dtype)
    scale = RNG.uniform(0.5, 1.5, 10).astype(dtype)
    for stash in (1, 11):
        (got,) = _run_op("RMSNormalization", {"stash_type": stash}, 23, [x, scale])
        assert got.dtype == dtype
        # (float64 input stays float64 with stash_type 1 too, as onnxruntime computes it)
        np.testing.assert_allclose(got, ref_rms_norm(x, scale, -1, 1e-5), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_rms_normalization_other_types_match_onnxruntime(dtype):
    x = RNG.standard_normal((4, 9)).astype(dtype)
    scale = RNG.uniform(0.5, 1.5, 9).astype(dtype)
    data, feed = _model("RMSNormalization", [x, scale], {}, 1, 23)
    (want,) = _ort(data, feed)
    (got,) = InferenceSession(data).run(None, feed)
    assert got.dtype == want.dtype == dtype
    tol = 1e-3 if dtype == np.float16 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_rms_normalization_matches_torch():
    torch = pytest.importorskip("torch", reason="torch is a further reference")
    x = RNG.standard_normal((2, 5, 12)).astype(np.float32)
    w = RNG.uniform(0.5, 1.5, (5, 12)).astype(np.float32)
    (got,) = _run_op("RMSNormalization", {"axis": 1, "epsilon": 1e-6}, 23, [x, w])
    want = torch.nn.functional.rms_norm(torch.from_numpy(x), (5, 12), torch.from_numpy(w),
                                        eps=1e-6).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_rms_normalization_errors():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(OnnxOpError, match=r"scale must broadcast to X's shape \(2, 3, 4\)"):
        _run_op("RMSNormalization", {}, 23, [x, np.ones(3, np.float32)])
    with pytest.raises(OnnxOpError, match="axis 3 is out of range for rank 3"):
        _run_op("RMSNormalization", {"axis": 3}, 23, [x, np.ones(4, np.float32)])
    with pytest.raises(OnnxOpError, match="stash_type must be 1"):
        _run_op("RMSNormalization", {"stash_type": 10}, 23, [x, np.ones(4, np.float32)])


# ---------------------------------------------------------------------- RotaryEmbedding
def ref_rotary(x, cos, sin, position_ids, interleaved, dim, num_heads):
    """Rotation of each (x1, x2) pair, pair by pair (explicit loop over the pairs)."""
    x = x.astype(np.float64)
    if x.ndim == 3:
        b, s, hidden = x.shape
        xh = x.reshape(b, s, num_heads, hidden // num_heads).transpose(0, 2, 1, 3)
    else:
        xh = x
    if position_ids is not None:
        cos, sin = cos[position_ids], sin[position_ids]
    cos, sin = cos[:, None].astype(np.float64), sin[:, None].astype(np.float64)  # (b, 1, s, half)
    dim = dim or xh.shape[-1]
    out = xh.copy()
    for p in range(dim // 2):
        i, j = (2 * p, 2 * p + 1) if interleaved else (p, p + dim // 2)
        c, s_ = cos[..., p], sin[..., p]
        out[..., i] = c * xh[..., i] - s_ * xh[..., j]
        out[..., j] = s_ * xh[..., i] + c * xh[..., j]
    if x.ndim == 3:
        out = out.transpose(0, 2, 1, 3).reshape(x.shape)
    return out


ROTARY_CASES = list(itertools.product([3, 4], [0, 1], [0, 4], [True, False]))


@pytest.mark.parametrize("rank, interleaved, dim, with_positions", ROTARY_CASES)
def test_rotary_embedding(rank, interleaved, dim, with_positions):
    b, h, s, d = 2, 3, 5, 8
    x = RNG.standard_normal((b, h, s, d) if rank == 4 else (b, s, h * d)).astype(np.float32)
    half = (dim or d) // 2
    if with_positions:
        angles = RNG.uniform(0, 6, (11, half))
        positions = RNG.integers(0, 11, (b, s)).astype(np.int64)
    else:
        angles = RNG.uniform(0, 6, (b, s, half))
        positions = None
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    attrs = {"interleaved": interleaved, "rotary_embedding_dim": dim}
    if rank == 3:
        attrs["num_heads"] = h
    (got,) = _run_op("RotaryEmbedding", attrs, 23, [x, cos, sin, positions])
    want = ref_rotary(x, cos, sin, positions, interleaved, dim, h)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    data, feed = _model("RotaryEmbedding", [x, cos, sin, positions], attrs, 1, 23)
    (theirs,) = _ort(data, feed)
    np.testing.assert_allclose(InferenceSession(data).run(None, feed)[0], theirs,
                               rtol=1e-5, atol=1e-6)


def test_rotary_embedding_float16():
    x = RNG.standard_normal((1, 2, 4, 6)).astype(np.float16)
    angles = RNG.uniform(0, 6, (1, 4, 3))
    cos, sin = np.cos(angles).astype(np.float16), np.sin(angles).astype(np.float16)
    (got,) = _run_op("RotaryEmbedding", {}, 23, [x, cos, sin])
    assert got.dtype == np.float16
    np.testing.assert_allclose(got, ref_rotary(x, cos, sin, None, 0, 0, 2), rtol=2e-3, atol=2e-3)


def test_rotary_embedding_errors():
    x = np.zeros((1, 2, 3, 8), np.float32)
    c = np.zeros((1, 3, 4), np.float32)
    with pytest.raises(OnnxOpError, match="rotary_embedding_dim must be even"):
        _run_op("RotaryEmbedding", {"rotary_embedding_dim": 3}, 23, [x, c, c])
    with pytest.raises(OnnxOpError, match="rotary_embedding_dim must be even and at most the head size 8"):
        _run_op("RotaryEmbedding", {"rotary_embedding_dim": 10}, 23, [x, c, c])
    with pytest.raises(OnnxOpError, match=r"must be \(batch, seq, rotary_dim / 2\) = \(1, 3, 4\)"):
        _run_op("RotaryEmbedding", {}, 23, [x, c[..., :2], c[..., :2]])
    with pytest.raises(OnnxOpError, match="3-D X needs num_heads dividing its hidden size"):
        _run_op("RotaryEmbedding", {"num_heads": 3}, 23, [np.zeros((1, 3, 8), np.float32), c, c])
    with pytest.raises(OnnxOpError, match=r"position_ids must be in \[0, 4\)"):
        table = np.zeros((4, 4), np.float32)  # (positions 0..3)
        _run_op("RotaryEmbedding", {}, 23, [x, table, table, np.array([[0, 1, 4]], np.int64)])
    with pytest.raises(OnnxOpError, match=r"position_ids must be int64 \(1, 3\)"):
        _run_op("RotaryEmbedding", {}, 23, [x, c[0], c[0], np.array([[0, 1]], np.int64)])
    with pytest.raises(OnnxOpError, match="num_heads=3 contradicts 4-D X"):
        _run_op("RotaryEmbedding", {"num_heads": 3}, 23, [x, c, c])


# ------------------------------------------------------------------- TensorScatter
def ref_tensor_scatter(past, update, write, mode, axis):
    out = past.copy()
    axis %= past.ndim
    length = past.shape[axis]
    for prefix in np.ndindex(past.shape[:axis]):
        for s in range(update.shape[axis]):
            pos = write[prefix[0]] + s
            out[prefix + ((pos % length) if mode == "circular" else pos,)] = update[prefix + (s,)]
    return out


@pytest.mark.parametrize("shape, axis", [((2, 3, 6, 4), -2), ((3, 7, 2), 1), ((2, 2, 3, 8), 3)])
@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("with_indices", [True, False])
def test_tensor_scatter(shape, axis, mode, with_indices):
    past = RNG.standard_normal(shape).astype(np.float32)
    ushape = list(shape)
    ushape[axis] = 3
    update = RNG.standard_normal(ushape).astype(np.float32)
    length = shape[axis]
    if with_indices:
        top = length if mode == "circular" else length - 3 + 1
        write = RNG.integers(0, top, shape[0]).astype(np.int64)
    else:
        write = None
    attrs = {"mode": mode, "axis": axis}
    (got,) = _run_op("TensorScatter", attrs, 24, [past, update, write])
    want = ref_tensor_scatter(past, update, np.zeros(shape[0], int) if write is None else write,
                              mode, axis)
    np.testing.assert_array_equal(got, want)
    data, feed = _model("TensorScatter", [past, update, write], attrs, 1, 24)
    (theirs,) = _ort(data, feed)
    np.testing.assert_array_equal(InferenceSession(data).run(None, feed)[0], theirs)


def test_tensor_scatter_errors():
    past = np.zeros((2, 3, 5, 4), np.float32)
    up = np.zeros((2, 3, 2, 4), np.float32)
    with pytest.raises(OnnxOpError, match="must be at most max_sequence_length 5"):
        _run_op("TensorScatter", {}, 24, [past, up, np.array([0, 4], np.int64)])
    with pytest.raises(OnnxOpError, match="axis cannot be 0"):
        _run_op("TensorScatter", {"axis": 0}, 24, [past, up])
    with pytest.raises(OnnxOpError, match="update must be past_cache's type and shape"):
        _run_op("TensorScatter", {}, 24, [past, np.zeros((2, 2, 2, 4), np.float32)])
    with pytest.raises(OnnxOpError, match="mode must be 'linear' or 'circular'"):
        _run_op("TensorScatter", {"mode": "ring"}, 24, [past, up])
    with pytest.raises(OnnxOpError, match="write_indices must be >= 0"):
        _run_op("TensorScatter", {}, 24, [past, up, np.array([-1, 0], np.int64)])


# --------------------------------------------------------------------------- SwiGLU
@pytest.mark.parametrize("alpha", [1.0, 1.702])
@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-6), (np.float16, 1e-3), (np.float64, 1e-14)])
def test_swiglu(alpha, dtype, tol):
    a = (RNG.standard_normal((3, 4, 10)) * 8).astype(dtype)
    b = RNG.standard_normal((3, 4, 10)).astype(dtype)
    (got,) = _run_op("SwiGLU", {"alpha": alpha}, 28, [a, b])
    a64 = a.astype(np.float64)
    want = a64 / (1 + np.exp(-alpha * a64)) * b
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    with pytest.raises(OnnxOpError, match="no broadcasting"):
        _run_op("SwiGLU", {}, 28, [a, b[:1]])


def test_swiglu_against_onnxruntime():
    a = (RNG.standard_normal((2, 6)) * 4).astype(np.float32)
    b = RNG.standard_normal((2, 6)).astype(np.float32)
    data, feed = _model("SwiGLU", [a, b], {"alpha": 1.5}, 1, 28)
    (want,) = _ort(data, feed)  # (onnxruntime 1.32 has no Swish-24 kernel for its body: skips)
    np.testing.assert_allclose(InferenceSession(data).run(None, feed)[0], want, rtol=1e-6, atol=1e-6)
