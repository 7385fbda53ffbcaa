"""ONNX stateful-decoding operators (ai.onnx opset 27), registered in ``_ops.OPS``: the
recurrences of linear-attention and state-space models, for prefill (T > 1) and one-token
decode (T = 1) with the state carried between runs.

- LinearAttention: query / key / value packed (B, T, H * D); q_num_heads a multiple of
  kv_num_heads (grouped-query: query head h reads the state of kv head
  h // (q_num_heads / kv_num_heads), as the reference's repeat-interleave); update_rule
  linear, gated, delta, gated_delta; decay per head (B, T, H_kv) or per key dimension
  (B, T, H_kv * d_k), in log space; beta per head (B, T, H_kv) or shared (B, T, 1);
  scale (0: 1 / sqrt(d_k)); optional past_state (B, H_kv, d_k, d_v), zeros when absent.
  The recurrence runs token by token, as the specification defines it; chunk_size is
  the specification's tuning hint for chunk-parallel kernels and changes nothing here.
- CausalConvWithState: a depthwise causal 1-D convolution over (B, C, L) with weight
  (C, 1, k), optional bias (C) and past_state (B, C, k - 1) (zeros when absent),
  activation none / silu / swish; present_state is the last k - 1 positions of
  past_state followed by the input.

Precision: the state and the sums are float32 for float16 and float32 tensors, as the
specification's function bodies compute them, and each output is rounded once to its
type. present_state takes past_state's type (the query's when there is none), as the
reference. bfloat16 tensors (when pve.onnx reads them) are computed in float32 as well.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from pyvision_engine.onnx._ops import OnnxOpError, contiguous, op, text_attr

_RULES = ("linear", "gated", "delta", "gated_delta")


def _opt(inputs, i: int) -> Optional[np.ndarray]:
    return inputs[i] if i < len(inputs) else None


def _check_float(x: np.ndarray, name: str, what: str) -> None:
    """float16, float or bfloat16 (ml_dtypes' type, when pve.onnx reads it): not double."""
    if x.dtype not in (np.float16, np.float32) and x.dtype.name != "bfloat16":
        raise OnnxOpError(f"{what}: {name} must be float16, float or bfloat16, got {x.dtype}")


# ----------------------------------------------------------------- LinearAttention
def _heads(x: np.ndarray, heads: int, name: str, what: str) -> np.ndarray:
    """(B, T, heads * D) as float32 (B, heads, T, D)."""
    if x.ndim != 3:
        raise OnnxOpError(f"{what}: {name} must be rank 3 (B, T, heads * size), got shape "
                          f"{x.shape}")
    if x.shape[2] % heads:
        raise OnnxOpError(f"{what}: the last dimension of {name} ({x.shape[2]}) is not a "
                          f"multiple of its {heads} heads")
    b, t, hidden = x.shape
    return x.reshape(b, t, heads, hidden // heads).transpose(0, 2, 1, 3).astype(np.float32)


def _gate(x: np.ndarray, name: str, sizes: Tuple[int, ...], bt: Tuple[int, int],
          kv_heads: int, what: str) -> np.ndarray:
    """decay or beta, (B, T, n) with n in ``sizes``, as float32 (B, H_kv or 1, T, n / H_kv
    or 1): the per-head and per-key-dimension forms broadcast over the state alike."""
    if x.ndim != 3 or x.shape[:2] != bt or x.shape[2] not in sizes:
        raise OnnxOpError(f"{what}: {name} must have shape (B, T, n) = ({bt[0]}, {bt[1]}, n) "
                          f"with n in {sorted(set(sizes))}, got {x.shape}")
    groups = kv_heads if x.shape[2] % kv_heads == 0 else 1
    return _heads(x, groups, name, what)


def _attention_heads(attrs: Dict[str, Any], what: str) -> Tuple[int, int]:
    if "q_num_heads" not in attrs or "kv_num_heads" not in attrs:
        raise OnnxOpError(f"{what}: the q_num_heads and kv_num_heads attributes are required")
    q_heads, kv_heads = int(attrs["q_num_heads"]), int(attrs["kv_num_heads"])
    if kv_heads < 1 or q_heads < 1 or q_heads % kv_heads:
        raise OnnxOpError(f"{what}: q_num_heads ({q_heads}) must be a positive multiple of "
                          f"kv_num_heads ({kv_heads})")
    return q_heads, kv_heads


def _rule_inputs(rule: str, decay: Optional[np.ndarray], beta: Optional[np.ndarray],
                 what: str) -> None:
    """decay is required by the gated rules and forbidden otherwise; beta likewise by the
    delta rules."""
    if rule not in _RULES:
        raise OnnxOpError(f"{what}: update_rule must be one of {list(_RULES)}, got {rule!r}")
    for name, value, needed in (("decay", decay, rule in ("gated", "gated_delta")),
                                ("beta", beta, rule in ("delta", "gated_delta"))):
        if needed and value is None:
            raise OnnxOpError(f"{what}: update_rule {rule!r} requires the {name} input")
        if not needed and value is not None:
            raise OnnxOpError(f"{what}: update_rule {rule!r} takes no {name} input")


@op("LinearAttention")
def _linear_attention(attrs, opset, inputs):
    what = "LinearAttention"
    query, key, value = inputs[0], inputs[1], inputs[2]
    past, decay, beta = _opt(inputs, 3), _opt(inputs, 4), _opt(inputs, 5)
    q_heads, kv_heads = _attention_heads(attrs, what)
    rule = text_attr(attrs, "update_rule", "gated_delta")
    _rule_inputs(rule, decay, beta, what)
    for name, x in (("query", query), ("key", key), ("value", value), ("decay", decay),
                    ("beta", beta), ("past_state", past)):
        if x is not None:
            _check_float(x, name, what)
    q, k, v = (_heads(x, h, n, what) for x, h, n in ((query, q_heads, "query"),
                                                     (key, kv_heads, "key"),
                                                     (value, kv_heads, "value")))
    b, _, t, d_k = q.shape
    d_v = v.shape[3]
    if k.shape != (b, kv_heads, t, d_k) or v.shape[:3] != (b, kv_heads, t):
        raise OnnxOpError(f"{what}: key {key.shape} and value {value.shape} do not match query "
                          f"{query.shape}: (B, T, kv_num_heads * d_k) with d_k = {d_k} and "
                          f"(B, T, kv_num_heads * d_v) expected")
    state_shape = (b, kv_heads, d_k, d_v)
    if past is not None and past.shape != state_shape:
        raise OnnxOpError(f"{what}: past_state must have shape (B, H_kv, d_k, d_v) = "
                          f"{state_shape}, got {past.shape}")
    g = None if decay is None else _gate(decay, "decay", (kv_heads, kv_heads * d_k), (b, t),
                                         kv_heads, what)
    rate = None if beta is None else _gate(beta, "beta", (kv_heads, 1), (b, t), kv_heads, what)
    scale = float(attrs.get("scale", 0.0)) or 1.0 / np.sqrt(d_k)
    state = (np.zeros(state_shape, np.float32) if past is None
             else past.astype(np.float32))
    out, state = _recurrence(q, k, v, state, g, rate, np.float32(scale))
    output = out.transpose(0, 2, 1, 3).reshape(b, t, q_heads * d_v)
    state_type = query.dtype if past is None else past.dtype
    return [contiguous(output, dtype=query.dtype), contiguous(state, dtype=state_type)]


def _recurrence(q: np.ndarray, k: np.ndarray, v: np.ndarray, state: np.ndarray,
                log_decay: Optional[np.ndarray], beta: Optional[np.ndarray],
                scale: np.float32) -> Tuple[np.ndarray, np.ndarray]:
    """Token by token: S = exp(g) S (gated); v' = beta (v - S^T k) (delta) else v;
    S = S + k v'^T; o = scale q^T S. float32 (B, H, T, D) operands; returns the outputs
    (B, H_q, T, d_v) and the last state (B, H_kv, d_k, d_v)."""
    b, q_heads, t, d_k = q.shape
    kv_heads, d_v = state.shape[1], state.shape[3]
    group = q_heads // kv_heads
    # each kv head serves ``group`` consecutive query heads: (B, H_kv, group, T, d_k)
    q_grouped = q.reshape(b, kv_heads, group, t, d_k)
    decay = None if log_decay is None else np.exp(log_decay)[..., None]  # (.., T, d_k|1, 1)
    out = np.empty((b, kv_heads, group, t, d_v), np.float32)
    for i in range(t):
        if decay is not None:
            state = state * decay[:, :, i]
        k_t = k[:, :, i, :, None]                     # (B, H_kv, d_k, 1)
        v_t = v[:, :, i, None, :]                     # (B, H_kv, 1, d_v)
        if beta is not None:
            retrieved = np.matmul(k[:, :, i, None, :], state)  # S^T k: (B, H_kv, 1, d_v)
            v_t = beta[:, :, i, :, None] * (v_t - retrieved)
        state = state + k_t * v_t
        out[:, :, :, i] = np.matmul(q_grouped[:, :, :, i], state)
    out *= scale
    return out.reshape(b, q_heads, t, d_v), state


# ----------------------------------------------------------------- CausalConvWithState
_ACTIVATIONS = ("none", "silu", "swish")


@op("CausalConvWithState")
def _causal_conv_with_state(attrs, opset, inputs):
    what = "CausalConvWithState"
    x, weight, bias, past = inputs[0], inputs[1], _opt(inputs, 2), _opt(inputs, 3)
    activation = text_attr(attrs, "activation", "none")
    if activation not in _ACTIVATIONS:
        raise OnnxOpError(f"{what}: activation must be one of {list(_ACTIVATIONS)}, got "
                          f"{activation!r}")
    for name, value in (("input", x), ("weight", weight), ("bias", bias),
                        ("past_state", past)):
        if value is not None:
            _check_float(value, name, what)
            if value.dtype != x.dtype:
                raise OnnxOpError(f"{what}: {name} is {value.dtype} but input is {x.dtype}: "
                                  "they must have one type")
    if x.ndim != 3:
        raise OnnxOpError(f"{what}: input must be rank 3 (batch_size, channels, length), got "
                          f"shape {x.shape}")
    batch, channels, _ = x.shape
    if weight.ndim != 3 or weight.shape[:2] != (channels, 1) or weight.shape[2] < 1:
        raise OnnxOpError(f"{what}: weight must have shape (channels, 1, k) = ({channels}, 1, "
                          f"k) with k >= 1, got {weight.shape}")
    k = weight.shape[2]
    if bias is not None and bias.shape != (channels,):
        raise OnnxOpError(f"{what}: bias must have shape ({channels},), got {bias.shape}")
    if past is not None and past.shape != (batch, channels, k - 1):
        raise OnnxOpError(f"{what}: past_state must have shape (batch_size, channels, k - 1) "
                          f"= {(batch, channels, k - 1)}, got {past.shape}")
    if past is None:
        past = np.zeros((batch, channels, k - 1), x.dtype)
    padded = np.concatenate([past, x], axis=2)
    y = _depthwise_causal(padded.astype(np.float32), weight[:, 0].astype(np.float32),
                          x.shape[2])
    if bias is not None:
        y += bias.astype(np.float32)[:, None]
    y = y.astype(x.dtype).astype(np.float32)  # (the convolution's output in its own type)
    if activation != "none":  # silu = swish: y * sigmoid(y)
        y = y / (1.0 + np.exp(-y))
    return [contiguous(y, dtype=x.dtype), contiguous(padded[:, :, padded.shape[2] - (k - 1):])]


def _depthwise_causal(padded: np.ndarray, weight: np.ndarray, length: int) -> np.ndarray:
    """y[b, c, t] = sum_j weight[c, j] padded[b, c, t + j], float32 (B, C, length)."""
    y = np.zeros(padded.shape[:2] + (length,), np.float32)
    for j in range(weight.shape[1]):
        y += weight[:, j, None] * padded[:, :, j:j + length]
    return y
