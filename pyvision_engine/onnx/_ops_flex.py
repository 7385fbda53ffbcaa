"""FlexAttention (domain ai.onnx.preview, opset 1), registered in ``_ops.DOMAIN_OPS``.

Scaled dot-product attention over rank-4 Q (B, Hq, L, E), K (B, Hkv, S, E),
V (B, Hkv, S, Ev) with two optional subgraphs (run as _ops_control's operators run
theirs): ``score_mod`` rewrites the scores (B, Hq, L, S) before the softmax (masking:
-inf), ``prob_mod`` the probabilities after it. Query head h reads K/V head
h // (Hq / Hkv) (grouped-query attention).

Q·K^T is computed in float32 (float64 for float64 inputs) and times ``scale``
(default 1 / sqrt(E)). The scores and probabilities the subgraphs see have the type
``softmax_precision`` names (1 float, 10 float16, 11 double, 16 bfloat16; by default
float, or double for double inputs), and are rounded to it; the softmax itself runs in
float32 (float64 for double). A row the score modifier masks entirely (all -inf) gets
zero probabilities, as pve.onnx's Attention and torch's flex_attention give. Y = P·V is
computed in float32 (float64) and returned in the inputs' type.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from pyvision_engine.onnx._ops import OnnxOpError, contiguous
from pyvision_engine.onnx._ops_attention import _stable_softmax
from pyvision_engine.onnx._ops_control import describe, graph_attr, subgraph_op
from pyvision_engine.onnx._proto import DTYPES

_MODIFIERS = ("score_mod", "prob_mod")
_PRECISIONS = {1: "float", 10: "float16", 11: "double", 16: "bfloat16"}


def _check_flex(attrs: Dict[str, Any], opset: int, inputs: int, outputs: int) -> None:
    if inputs != 3 or outputs != 1:
        raise OnnxOpError(f"FlexAttention: takes Q, K, V and gives Y, the node has {inputs} "
                          f"inputs and {outputs} outputs")
    for key in _MODIFIERS:
        graph = graph_attr(attrs, key, "FlexAttention", required=False)
        if graph is not None and (len(graph.inputs) != 1 or len(graph.outputs) != 1):
            raise OnnxOpError(f"FlexAttention: {key} must have 1 input and 1 output, it has "
                              f"{len(graph.inputs)} and {len(graph.outputs)}")
    precision = attrs.get("softmax_precision")
    if precision is not None and int(precision) not in _PRECISIONS:
        raise OnnxOpError(f"FlexAttention: softmax_precision must be one of "
                          f"{sorted(_PRECISIONS)} ({', '.join(_PRECISIONS.values())}), "
                          f"got {precision}")


def _is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f" or dtype.name == "bfloat16"


def _modified(modifier: Any, values: np.ndarray, key: str) -> np.ndarray:
    """The subgraph's output, which must keep the shape and type of its input."""
    (out,) = modifier(values)
    if not isinstance(out, np.ndarray) or out.shape != values.shape or out.dtype != values.dtype:
        raise OnnxOpError(f"FlexAttention: {key} must return a tensor of its input's shape "
                          f"{list(values.shape)} and type {values.dtype}, got {describe(out)}")
    return out


@subgraph_op("FlexAttention", _check_flex, domain="ai.onnx.preview")
def _flex_attention(attrs: Dict[str, Any], opset: int, inputs: List[Any],
                    graphs: Dict[str, Any]) -> List[np.ndarray]:
    q, k, v = inputs
    for name, x in zip("QKV", (q, k, v)):
        if not isinstance(x, np.ndarray) or x.ndim != 4 or not _is_float(x.dtype):
            raise OnnxOpError(f"FlexAttention: {name} must be a rank-4 float tensor, got "
                              f"{describe(x)}")
    if not q.dtype == k.dtype == v.dtype:
        raise OnnxOpError(f"FlexAttention: Q, K and V must have one type, got {q.dtype}, "
                          f"{k.dtype} and {v.dtype}")
    batch, q_heads, q_len, size = q.shape
    kv_heads, kv_len = k.shape[1], k.shape[2]
    if (k.shape[0] != batch or v.shape[0] != batch or k.shape[3] != size
            or v.shape[1] != kv_heads or v.shape[2] != kv_len):
        raise OnnxOpError(f"FlexAttention: Q (B, Hq, L, E), K (B, Hkv, S, E) and V "
                          f"(B, Hkv, S, Ev) expected, got shapes {list(q.shape)}, "
                          f"{list(k.shape)} and {list(v.shape)}")
    if kv_heads == 0 or q_heads % kv_heads:
        raise OnnxOpError(f"FlexAttention: the query heads ({q_heads}) must be a multiple "
                          f"of the key/value heads ({kv_heads})")
    scale = attrs.get("scale")
    scale = 1.0 / np.sqrt(size) if scale is None else float(scale)
    work = np.dtype(np.float64 if q.dtype == np.float64 else np.float32)
    precision = attrs.get("softmax_precision")
    if precision is not None and int(precision) not in DTYPES:
        raise NotImplementedError("FlexAttention: softmax_precision 16 (bfloat16) needs "
                                  "bfloat16 tensors, which this pve.onnx does not hold")
    compute = work if precision is None else DTYPES[int(precision)]
    softmax_dtype = np.float64 if compute == np.float64 else np.float32

    group = q_heads // kv_heads  # (query head h reads kv head h // group: no copy of K, V)
    q5 = q.astype(work, copy=False).reshape(batch, kv_heads, group, q_len, size)
    k5 = k.astype(work, copy=False)[:, :, None]
    scores = np.matmul(q5, k5.swapaxes(-1, -2)) * work.type(scale)
    scores = scores.reshape(batch, q_heads, q_len, kv_len).astype(compute)
    if "score_mod" in graphs:
        scores = _modified(graphs["score_mod"], scores, "score_mod")
    probs = _stable_softmax(scores.astype(softmax_dtype)).astype(compute)
    if "prob_mod" in graphs:
        probs = _modified(graphs["prob_mod"], probs, "prob_mod")
    y = np.matmul(probs.astype(work).reshape(batch, kv_heads, group, q_len, kv_len),
                  v.astype(work, copy=False)[:, :, None])
    return [contiguous(y.reshape(batch, q_heads, q_len, v.shape[3]), dtype=q.dtype)]
