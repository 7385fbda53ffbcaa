"""ONNX transformer operators, registered in ``_ops.OPS``: Attention (opsets 23, 24, 25),
RMSNormalization and RotaryEmbedding (23), TensorScatter (24) and SwiGLU (28), as
onnx/docs/Operators.md and onnx 1.23's reference implementation define them.

Attention: 3-D inputs (with q_num_heads / kv_num_heads) and 4-D inputs; multi-head,
grouped-query and multi-query heads (each kv head serves q_num_heads / kv_num_heads
consecutive query heads, as the reference's repeat-interleave); boolean and additive
attn_mask, right-aligned broadcast to (batch, q_heads, q_len, total_len) and padded to
total_len (False / -inf) when shorter; is_causal with bottom-right alignment (offset =
past length, or nonpad_kv_seqlen - q_len per batch); scale (split as sqrt(scale) on Q
and on K); softcap before the mask; past_key / past_value concatenated into
present_key / present_value; qk_matmul_output modes 0-3; softmax_precision;
nonpad_kv_seqlen (24); left_window_size / right_window_size (25). A query row that
every key is masked from (its additive bias all -inf) gives zeros in Y and in the
mode-3 output, as the specification's 1.23 errata says.

Precision: float16 inputs are computed in float32 and rounded once at the end (as
onnxruntime's CPU kernels and the rest of pve.onnx do); float32 in float32; float64
in float64. bfloat16 tensors are not read by pve.onnx at all.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from pyvision_engine.onnx._ops import OnnxOpError, _axis, contiguous, op, text_attr


def _work_dtype(*arrays: np.ndarray) -> np.dtype:
    """float64 when an input is float64, else float32 (float16 is computed in float32)."""
    return np.dtype(np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32)


def _round_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 values rounded to the nearest bfloat16 (ties to even), kept as float32:
    softmax_precision=16 (numpy has no bfloat16 type)."""
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    nan = np.isnan(x)
    rounded = ((bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))
               & np.uint32(0xFFFF0000)).view(np.float32)
    return np.where(nan, x, rounded)


# softmax_precision (a TensorProto data type) -> (rounding applied, dtype computed in)
_SOFTMAX_PRECISION = {
    1: (lambda v: v.astype(np.float32), np.float32),
    10: (lambda v: v.astype(np.float16).astype(np.float32), np.float32),
    11: (lambda v: v.astype(np.float64), np.float64),
    16: (lambda v: _round_bfloat16(v.astype(np.float32)), np.float32),
}


def _stable_softmax(scores: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, shifted by the row maximum. An all -inf row (no key
    allowed) gives zeros instead of exp(-inf - -inf) = NaN, as the reference's."""
    top = scores.max(axis=-1, keepdims=True)
    top[np.isneginf(top)] = 0
    e = np.exp(scores - top)
    total = e.sum(axis=-1, keepdims=True)
    total[total == 0] = 1
    e /= total
    return e


def _split_heads(x: np.ndarray, heads: int, name: str, what: str) -> np.ndarray:
    """(batch, seq, heads * size) as (batch, heads, seq, size) (a view)."""
    if heads <= 0 or x.shape[2] % heads:
        raise OnnxOpError(f"Attention: {what} must divide the hidden size of {name}: "
                          f"{name} has shape {x.shape} (hidden size {x.shape[2]}), "
                          f"{what} is {heads}")
    return x.reshape(x.shape[0], x.shape[1], heads, x.shape[2] // heads).transpose(0, 2, 1, 3)


def _frontier(q_len: int, kv_len: int, offset, left: int, right: int,
              causal: bool) -> Optional[np.ndarray]:
    """The -inf / 0 bias of is_causal and the sliding window: query i (absolute position
    i + offset) attends key j iff j <= i + offset (causal), i + offset - j <= left and
    j - (i + offset) <= right (each bound when >= 0). ``offset`` is an int or a per-batch
    (batch,) array; the result is (q, kv) or (batch, 1, q, kv), or None if nothing masks."""
    if not causal and left < 0 and right < 0:
        return None
    pos = np.arange(q_len).reshape(q_len, 1)
    if np.ndim(offset):
        pos = pos + np.asarray(offset, np.int64).reshape(-1, 1, 1, 1)
    else:
        pos = pos + int(offset)
    diff = pos - np.arange(kv_len)  # (query position - key index)
    allowed = np.ones(diff.shape, bool)
    if causal:
        allowed &= diff >= 0
    if left >= 0:
        allowed &= diff <= left
    if right >= 0:
        allowed &= -diff <= right
    return allowed


@op("Attention")
def _attention(attrs, opset, inputs):
    q, k, v = inputs[0], inputs[1], inputs[2]
    mask = inputs[3] if len(inputs) > 3 else None
    past_k = inputs[4] if len(inputs) > 4 else None
    past_v = inputs[5] if len(inputs) > 5 else None
    nonpad = inputs[6] if len(inputs) > 6 and opset >= 24 else None
    if any(t.dtype.kind != "f" for t in (q, k, v)):
        raise OnnxOpError(f"Attention: Q, K and V must be float tensors, got {q.dtype}, "
                          f"{k.dtype} and {v.dtype}")
    if not q.ndim == k.ndim == v.ndim or q.ndim not in (3, 4):
        raise OnnxOpError(f"Attention: Q, K and V must all be 3-D or all 4-D, got shapes "
                          f"{q.shape}, {k.shape} and {v.shape}")
    q_heads_attr, kv_heads_attr = attrs.get("q_num_heads"), attrs.get("kv_num_heads")
    rank = q.ndim
    if rank == 3:
        if q_heads_attr is None or kv_heads_attr is None:
            raise OnnxOpError("Attention: 3-D Q, K, V need the q_num_heads and kv_num_heads "
                              "attributes")
        q = _split_heads(q, int(q_heads_attr), "Q", "q_num_heads")
        k = _split_heads(k, int(kv_heads_attr), "K", "kv_num_heads")
        v = _split_heads(v, int(kv_heads_attr), "V", "kv_num_heads")
    elif opset >= 25 and (q_heads_attr is not None or kv_heads_attr is not None):
        raise OnnxOpError("Attention (opset 25): q_num_heads and kv_num_heads must not be "
                          "given with 4-D Q, K, V (the heads are their dimension 1)")
    elif ((q_heads_attr is not None and int(q_heads_attr) != q.shape[1])
          or (kv_heads_attr is not None and int(kv_heads_attr) != k.shape[1])):
        raise OnnxOpError(f"Attention: q_num_heads={q_heads_attr} / kv_num_heads="
                          f"{kv_heads_attr} contradict 4-D Q {q.shape} and K {k.shape}")
    batch, q_heads, q_len, head_size = q.shape
    kv_heads = k.shape[1]
    if (k.shape[0] != batch or v.shape[0] != batch or v.shape[1] != kv_heads
            or k.shape[2] != v.shape[2] or k.shape[3] != head_size):
        raise OnnxOpError(f"Attention: K (batch, kv_heads, kv_len, {head_size}) and V (batch, "
                          f"kv_heads, kv_len, v_head_size) with batch {batch} expected, got K "
                          f"{k.shape} and V {v.shape} (as 4-D) for Q {q.shape}")
    if kv_heads == 0 or q_heads % kv_heads:
        raise OnnxOpError(f"Attention: the kv heads ({kv_heads}) must divide the query heads "
                          f"({q_heads})")

    # ------------------------------------------------------------ kv cache
    if (past_k is None) != (past_v is None):
        raise OnnxOpError("Attention: past_key and past_value must be given together")
    if past_k is not None:
        if nonpad is not None:
            raise OnnxOpError("Attention: nonpad_kv_seqlen cannot be used with past_key / "
                              "past_value")
        want_k = (batch, kv_heads, past_k.shape[2] if past_k.ndim == 4 else -1, head_size)
        want_v = (batch, kv_heads, want_k[2], v.shape[3])
        if past_k.shape != want_k or past_v.shape != want_v:
            raise OnnxOpError(f"Attention: past_key {want_k[:2] + ('past_len',) + want_k[3:]} "
                              f"and past_value {want_v[:2] + ('past_len',) + want_v[3:]} "
                              f"expected, got {past_k.shape} and {past_v.shape}")
        k = np.concatenate([past_k, k.astype(past_k.dtype, copy=False)], axis=2)
        v = np.concatenate([past_v, v.astype(past_v.dtype, copy=False)], axis=2)
    present_k, present_v = k, v
    past_len = 0 if past_k is None else past_k.shape[2]
    total = k.shape[2]

    # ------------------------------------------------------------ the additive bias
    work = _work_dtype(q, k, v)
    full = (batch, q_heads, q_len, total)
    allowed = None   # bool, broadcastable to ``full``: keys a query may attend
    additive = None  # float, broadcastable to ``full``: a float attn_mask
    if mask is not None:
        if mask.ndim > 4 or mask.ndim == 0 or mask.shape[-1] > total:
            raise OnnxOpError(f"Attention: attn_mask must broadcast to (batch, q_heads, q_len, "
                              f"total_len) = {full}, got shape {mask.shape}")
        if mask.shape[-1] < total:  # (padded with masked keys)
            pad = [(0, 0)] * (mask.ndim - 1) + [(0, total - mask.shape[-1])]
            mask = np.pad(mask, pad, constant_values=False if mask.dtype == bool else -np.inf)
        try:
            if np.broadcast_shapes(mask.shape, full) != full:
                raise ValueError
        except ValueError:
            raise OnnxOpError(f"Attention: attn_mask must broadcast to (batch, q_heads, "
                              f"q_len, total_len) = {full}, got shape {mask.shape}") from None
        if mask.dtype == bool:
            allowed = mask
        else:
            additive = mask.astype(work)
    offset = past_len
    if nonpad is not None:
        nonpad = np.asarray(nonpad)
        if nonpad.shape != (batch,) or nonpad.dtype.kind not in "iu":
            raise OnnxOpError(f"Attention: nonpad_kv_seqlen must be an int64 vector of shape "
                              f"({batch},), got {nonpad.dtype} {nonpad.shape}")
        if nonpad.size and (nonpad.min() < 0 or nonpad.max() > total):
            raise OnnxOpError(f"Attention: nonpad_kv_seqlen values must be in [0, {total}] "
                              f"(the kv length), got {nonpad.tolist()}")
        offset = nonpad.astype(np.int64) - q_len
    left = int(attrs.get("left_window_size", -1)) if opset >= 25 else -1
    right = int(attrs.get("right_window_size", -1)) if opset >= 25 else -1
    if left < -1 or right < -1:
        raise OnnxOpError(f"Attention: left_window_size and right_window_size must be -1 or "
                          f">= 0, got {left} and {right}")
    frontier = _frontier(q_len, total, offset, left, right, bool(attrs.get("is_causal", 0)))
    if frontier is not None:
        allowed = frontier if allowed is None else allowed & frontier
    if nonpad is not None:  # padding keys of each batch: j >= nonpad_kv_seqlen[b]
        padding = np.arange(total) < nonpad.reshape(-1, 1, 1, 1)
        allowed = padding if allowed is None else allowed & padding
    bias = None
    if allowed is not None:
        bias = np.where(allowed, work.type(0), work.type(-np.inf))
    if additive is not None:
        bias = additive if bias is None else bias + additive

    # ------------------------------------------------------------ scores
    scale = attrs.get("scale")
    scale = 1.0 / np.sqrt(head_size) if scale is None else float(scale)
    if not scale >= 0:  # (the reference's sqrt(scale) is NaN; onnxruntime refuses it)
        raise OnnxOpError(f"Attention: scale must not be negative, got {scale}")
    mode = int(attrs.get("qk_matmul_output_mode", 0))
    if mode not in (0, 1, 2, 3):
        raise OnnxOpError(f"Attention: qk_matmul_output_mode must be 0, 1, 2 or 3, got {mode}")
    softcap = float(attrs.get("softcap", 0.0))
    precision = attrs.get("softmax_precision")
    if precision is not None and int(precision) not in _SOFTMAX_PRECISION:
        raise OnnxOpError(f"Attention: softmax_precision must be 1 (float), 10 (float16), "
                          f"11 (double) or 16 (bfloat16), got {precision}")
    group = q_heads // kv_heads
    # grouped-query heads: query head h reads kv head h // group, with no copy of K or V
    q5 = q.astype(work, copy=False).reshape(batch, kv_heads, group, q_len, head_size)
    k5 = k.astype(work, copy=False)[:, :, None]
    # (split as sqrt(scale) over Q and K, as the specification, against overflow)
    root = work.type(np.sqrt(scale))
    scores = np.matmul(q5 * root, (k5 * root).swapaxes(-1, -2))
    scores = scores.reshape(full)
    raw = scores
    if softcap > 0:
        scores = np.tanh(scores / work.type(softcap)) * work.type(softcap)
    capped = scores
    if bias is not None:
        scores = scores + bias
    if precision is not None:
        rounding, softmax_dtype = _SOFTMAX_PRECISION[int(precision)]
        probs = _stable_softmax(rounding(scores).astype(softmax_dtype, copy=False))
        probs = rounding(probs).astype(work)
    else:
        probs = _stable_softmax(scores)
    if bias is not None:  # fully masked rows: zeros (decided on the bias, not on the scores)
        probs = np.where(np.isneginf(bias.max(axis=-1, keepdims=True)), work.type(0), probs)
    qk_out = (raw, capped, scores, probs)[mode]
    y = np.matmul(probs.reshape(batch, kv_heads, group, q_len, total),
                  v.astype(work, copy=False)[:, :, None])
    y = y.reshape(batch, q_heads, q_len, v.shape[3])
    if rank == 3:
        y = y.transpose(0, 2, 1, 3).reshape(batch, q_len, q_heads * v.shape[3])
    qk_out = np.broadcast_to(qk_out, full)
    return [contiguous(y, dtype=q.dtype), contiguous(present_k), contiguous(present_v),
            contiguous(qk_out, dtype=q.dtype)]


@op("RMSNormalization")
def _rms_normalization(attrs, opset, inputs):
    x, scale = inputs[0], inputs[1]
    axis = _axis(int(attrs.get("axis", -1)), x.ndim, "RMSNormalization")
    eps = float(attrs.get("epsilon", 1e-5))
    stash = int(attrs.get("stash_type", 1))
    if stash not in (1, 11):
        raise OnnxOpError(f"RMSNormalization: stash_type must be 1 (float) or 11 (double), "
                          f"got {stash}")
    if x.dtype.kind != "f" or scale.dtype.kind != "f":
        raise OnnxOpError(f"RMSNormalization: float X and scale expected, got {x.dtype} and "
                          f"{scale.dtype}")
    try:
        if np.broadcast_shapes(scale.shape, x.shape) != x.shape:
            raise ValueError
    except ValueError:
        raise OnnxOpError(f"RMSNormalization: scale must broadcast to X's shape {x.shape} "
                          f"(normalized over axes {axis}..{x.ndim - 1}), got {scale.shape}") from None
    # (stash_type is the least precision: float64 X stays float64, as in onnxruntime and
    # onnx's reference)
    stage = np.float64 if stash == 11 or x.dtype == np.float64 else np.float32
    xs = x.astype(stage, copy=False)
    mean_sq = np.mean(np.square(xs), axis=tuple(range(axis, x.ndim)), keepdims=True)
    normalized = xs / np.sqrt(mean_sq + stage(eps))
    work = _work_dtype(normalized, scale)
    y = normalized.astype(work, copy=False) * scale.astype(work, copy=False)
    return [contiguous(y, dtype=scale.dtype)]


@op("RotaryEmbedding")
def _rotary_embedding(attrs, opset, inputs):
    x, cos, sin = inputs[0], inputs[1], inputs[2]
    position_ids = inputs[3] if len(inputs) > 3 else None
    interleaved = bool(attrs.get("interleaved", 0))
    num_heads = int(attrs.get("num_heads", 0))
    if x.dtype.kind != "f":
        raise OnnxOpError(f"RotaryEmbedding: float X expected, got {x.dtype}")
    if x.ndim == 4:  # (batch, heads, seq, head_size)
        if num_heads and num_heads != x.shape[1]:
            raise OnnxOpError(f"RotaryEmbedding: num_heads={num_heads} contradicts 4-D X of "
                              f"shape {x.shape} (heads are dimension 1)")
        batch, seq, head_size = x.shape[0], x.shape[2], x.shape[3]
        heads = x
    elif x.ndim == 3:  # (batch, seq, heads * head_size)
        if num_heads <= 0 or x.shape[2] % num_heads:
            raise OnnxOpError(f"RotaryEmbedding: 3-D X needs num_heads dividing its hidden "
                              f"size, got num_heads={num_heads} for X of shape {x.shape}")
        batch, seq, head_size = x.shape[0], x.shape[1], x.shape[2] // num_heads
        heads = x.reshape(batch, seq, num_heads, head_size)
    else:
        raise OnnxOpError(f"RotaryEmbedding: X must be 3-D (batch, seq, hidden) or 4-D "
                          f"(batch, heads, seq, head_size), got shape {x.shape}")
    dim = int(attrs.get("rotary_embedding_dim", 0)) or head_size
    if dim % 2 or not 0 < dim <= head_size:
        raise OnnxOpError(f"RotaryEmbedding: rotary_embedding_dim must be even and at most "
                          f"the head size {head_size}, got {dim}")
    half = dim // 2
    if position_ids is not None:
        if cos.ndim != 2 or sin.shape != cos.shape or cos.shape[1] != half:
            raise OnnxOpError(f"RotaryEmbedding: with position_ids, cos_cache and sin_cache "
                              f"must be (max_position + 1, {half}), got {cos.shape} and "
                              f"{sin.shape}")
        position_ids = np.asarray(position_ids)
        if position_ids.shape != (batch, seq) or position_ids.dtype.kind not in "iu":
            raise OnnxOpError(f"RotaryEmbedding: position_ids must be int64 ({batch}, {seq}), "
                              f"got {position_ids.dtype} {position_ids.shape}")
        if position_ids.size and (position_ids.min() < 0 or position_ids.max() >= cos.shape[0]):
            raise OnnxOpError(f"RotaryEmbedding: position_ids must be in [0, {cos.shape[0]}) "
                              f"(the rows of cos_cache), got values in [{position_ids.min()}, "
                              f"{position_ids.max()}]")
        cos, sin = cos[position_ids], sin[position_ids]
    elif cos.shape != (batch, seq, half) or sin.shape != cos.shape:
        raise OnnxOpError(f"RotaryEmbedding: without position_ids, cos_cache and sin_cache "
                          f"must be (batch, seq, rotary_dim / 2) = ({batch}, {seq}, {half}), "
                          f"got {cos.shape} and {sin.shape}")
    work = _work_dtype(x, cos, sin)
    # (batch, seq, half) against the heads layout: 4-D (b, h, s, d), 3-D (b, s, h, d)
    at_heads = (slice(None), None) if x.ndim == 4 else (slice(None), slice(None), None)
    cos, sin = cos.astype(work, copy=False)[at_heads], sin.astype(work, copy=False)[at_heads]
    rot = heads[..., :dim].astype(work)
    if interleaved:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
    else:
        x1, x2 = rot[..., :half], rot[..., half:]
    out = np.array(heads, dtype=x.dtype)  # (the part past rotary_dim is copied through)
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    if interleaved:
        out[..., 0:dim:2], out[..., 1:dim:2] = real, imag
    else:
        out[..., :half], out[..., half:dim] = real, imag
    return [out.reshape(x.shape)]


@op("TensorScatter")
def _tensor_scatter(attrs, opset, inputs):
    past, update = inputs[0], inputs[1]
    write = inputs[2] if len(inputs) > 2 else None
    mode = text_attr(attrs, "mode", "linear")
    if mode not in ("linear", "circular"):
        raise OnnxOpError(f"TensorScatter: mode must be 'linear' or 'circular', got {mode!r}")
    if past.ndim < 2:
        raise OnnxOpError(f"TensorScatter: past_cache must have a batch and a sequence "
                          f"dimension, got shape {past.shape}")
    axis = _axis(int(attrs.get("axis", -2)), past.ndim, "TensorScatter")
    if axis == 0:
        raise OnnxOpError("TensorScatter: axis cannot be 0 (the batch dimension)")
    if (update.ndim != past.ndim or update.dtype != past.dtype
            or any(u != p for i, (u, p) in enumerate(zip(update.shape, past.shape)) if i != axis)
            or update.shape[axis] > past.shape[axis]):
        raise OnnxOpError(f"TensorScatter: update must be past_cache's type and shape except "
                          f"a sequence length at most {past.shape[axis]} on axis {axis}; got "
                          f"past_cache {past.dtype} {past.shape}, update {update.dtype} "
                          f"{update.shape}")
    batch, length, seq = past.shape[0], past.shape[axis], update.shape[axis]
    if write is None:
        write = np.zeros(batch, np.int64)
    write = np.asarray(write)
    if write.shape != (batch,) or write.dtype.kind not in "iu":
        raise OnnxOpError(f"TensorScatter: write_indices must be int64 of shape ({batch},), "
                          f"got {write.dtype} {write.shape}")
    rows = write.astype(np.int64).reshape(batch, 1) + np.arange(seq)  # (batch, seq)
    if write.size and write.min() < 0:
        raise OnnxOpError(f"TensorScatter: write_indices must be >= 0, got {write.tolist()}")
    if mode == "circular":
        rows %= max(length, 1)
    elif rows.size and rows.max() >= length:
        raise OnnxOpError(f"TensorScatter (linear): write_indices + sequence length ({seq}) "
                          f"must be at most max_sequence_length {length}, got write_indices "
                          f"{write.tolist()}")
    present = np.array(past)
    # (batch, seq, <dims between>, <dims after>) views: one fancy-indexed assignment
    target = np.moveaxis(present, axis, 1)
    target[np.arange(batch).reshape(batch, 1), rows] = np.moveaxis(update, axis, 1)
    return [present]


@op("SwiGLU")
def _swiglu(attrs, opset, inputs):
    a, b = inputs[0], inputs[1]
    if a.shape != b.shape or a.dtype != b.dtype or a.dtype.kind != "f":
        raise OnnxOpError(f"SwiGLU: A and B must be float tensors of one type and one shape "
                          f"(no broadcasting), got A {a.dtype} {a.shape} and B {b.dtype} "
                          f"{b.shape}")
    work = _work_dtype(a)
    a_w = a.astype(work, copy=False)
    z = a_w * work.type(attrs.get("alpha", 1.0))
    e = np.exp(-np.abs(z))  # (a sigmoid without overflow either side)
    gate = np.where(z >= 0, 1 / (1 + e), e / (1 + e))
    return [contiguous(a_w * gate * b.astype(work, copy=False), dtype=a.dtype)]
