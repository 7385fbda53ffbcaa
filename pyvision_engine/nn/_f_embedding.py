"""F.embedding: rows of a (num_embeddings, embedding_dim) weight picked by int64 indices
of any shape, with torch's padding_idx, max_norm (in-place renorm), norm_type and
scale_grad_by_freq."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import (
    AssertionValueError, NotImplementedValueError, RuntimeTypeError, RuntimeValueError,
    TargetIndexError, float_input,
)
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["embedding"]


class _Embedding(Function):
    @staticmethod
    def forward(ctx, weight, indices, padding_idx, scale_grad_by_freq):
        ctx.indices, ctx.num, ctx.padding_idx = indices, weight.shape[0], padding_idx
        ctx.scale = scale_grad_by_freq
        return np.ascontiguousarray(weight[indices])

    @staticmethod
    def backward(ctx, g):
        flat = ctx.indices.reshape(-1)
        dim = g.shape[-1]
        rows = np.ascontiguousarray(g, dtype=np.float32).reshape(flat.size, dim)
        if ctx.scale:
            # torch: each row's gradient divided by its index's count in this batch
            counts = np.bincount(flat, minlength=ctx.num)
            rows = rows / counts[flat][:, None].astype(np.float32)
        gw = np.zeros((ctx.num, dim), dtype=np.float32)
        np.add.at(gw, flat, rows)
        if ctx.padding_idx >= 0:  # the padding row gets no gradient
            gw[ctx.padding_idx] = 0.0
        return gw, None, None, None


def _index_array(input: Any, op: str) -> np.ndarray:
    t = as_tensor(input)
    if t.dtype != np.int64:
        raise RuntimeTypeError(f"{op}: expected tensor for argument #1 'indices' to have scalar "
                               f"type int64 (Long), but got {t.dtype}")
    return t._data


def _padding_index(padding_idx: Optional[int], num: int, op: str) -> int:
    """torch's normalisation: a negative padding_idx counts from the end; -1 means none."""
    if padding_idx is None:
        return -1
    p = int(padding_idx)
    if p >= num or p < -num:
        raise AssertionValueError(f"{op}: Padding_idx must be within num_embeddings "
                                  f"({num}), got {padding_idx}")
    return p + num if p < 0 else p


def embedding_renorm_(weight: Tensor, indices: np.ndarray, max_norm: float,
                      norm_type: float) -> None:
    """torch.embedding_renorm_: in place and outside autograd, each row of ``weight``
    named in ``indices`` whose ``norm_type``-norm exceeds ``max_norm`` is scaled by
    ``max_norm / (norm + 1e-7)``."""
    w = weight._data
    rows = np.unique(indices.reshape(-1))
    if rows.size == 0:
        return
    sub = w[rows].astype(np.float64)
    if norm_type == np.inf:
        norms = np.abs(sub).max(axis=1)
    elif norm_type == 0:
        norms = (sub != 0).sum(axis=1).astype(np.float64)
    else:
        norms = (np.abs(sub) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
    over = norms > max_norm
    if np.any(over):
        scale = (max_norm / (norms[over] + 1e-7)).astype(np.float32)
        w[rows[over]] = w[rows[over]] * scale[:, None]
        weight._bump_version()


def embedding(input: Any, weight: Any, padding_idx: Optional[int] = None,
              max_norm: Optional[float] = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """torch.nn.functional.embedding: ``weight[input]`` for int64 indices of any shape
    (output input.shape + (embedding_dim,)). padding_idx (negative counts from the end):
    that row gets no gradient. max_norm: rows looked up whose norm_type-norm exceeds it
    are renormalised in place first, as torch. scale_grad_by_freq: row gradients divided
    by the index's count in the batch. sparse=True (sparse gradients) is not supported:
    NotImplementedError. Indices outside [0, num_embeddings) raise IndexError."""
    op = "embedding"
    w = float_input(weight, op)
    if w.ndim != 2:
        raise RuntimeValueError(f"{op}: 'weight' must be 2-D, got shape {w.shape}")
    num = w.shape[0]
    pad = _padding_index(padding_idx, num, op)
    idx = _index_array(input, op)
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        bad = idx[(idx < 0) | (idx >= num)].reshape(-1)[0]
        raise TargetIndexError(f"{op}: index out of range in self: index {bad} for "
                               f"num_embeddings {num}")
    if sparse:
        raise NotImplementedValueError(f"{op}: sparse=True (sparse gradients) is not supported "
                                       "by this engine; use sparse=False")
    if max_norm is not None:
        embedding_renorm_(w, idx, float(max_norm), float(norm_type))
    return _Embedding.apply(w, idx, pad, bool(scale_grad_by_freq))
