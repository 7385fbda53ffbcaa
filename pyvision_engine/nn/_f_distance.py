"""Vector-norm functionals: normalize, cosine_similarity, pairwise_distance (torch semantics).

All three are torch's compositions over ``linalg.vector_norm``: ``_ops.VectorNorm``
(Tensor.norm's), with torch's backward (its norm_backward: a zero norm gives a zero
subgradient, the inf-norms share the gradient among tied maxima, p = 0 has none).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from pyvision_engine._ops import VectorNorm, broadcast_error, normalize_dim, normalize_dims
from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import RuntimeTypeError, RuntimeValueError
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["normalize", "cosine_similarity", "pairwise_distance", "vector_norm"]

_F32 = np.float32


def _norm_order(p: Any, op: str, fro: bool) -> float:
    """p as a float; 'fro' (the 2-norm) only where torch's Tensor.norm takes it."""
    if fro and p == "fro":
        return 2.0
    if isinstance(p, (int, float, np.integer, np.floating)) and not isinstance(p, bool):
        return float(p)
    allowed = "a number (inf included)" + (" or 'fro'" if fro else "")
    raise TypeError(f"{op}: p must be {allowed}, got {p!r}")


def vector_norm(x: Tensor, p: float, dim: Any, keepdim: bool, op: str) -> Tensor:
    """torch.linalg.vector_norm(x, p, dim, keepdim) with its gradient; ``op`` names errors."""
    dims = normalize_dims(dim, x.ndim, op)
    if math.isinf(p) and 0 in [x.shape[d] for d in (dims or range(x.ndim))]:
        raise RuntimeValueError(f"{op}: linalg.vector_norm cannot compute the {p} norm on an "
                                f"empty dimension (input shape {x.shape}, dim={dim}): the "
                                "operation has no identity")
    return VectorNorm.apply(x, p, dims, keepdim)


def _float_operand(t: Tensor, op: str) -> Tensor:
    if t.dtype == np.float32:
        return t
    if t.dtype == np.int64:  # torch promotes an integer operand to the float one's dtype
        return t.float()
    raise TypeError(f"{op}: expected float32 (or int64) inputs, got {t.dtype}")


def _float_pair(x1: Any, x2: Any, op: str) -> Tuple[Tensor, Tensor, Tuple[int, ...]]:
    """Both operands as float32 (torch's type promotion; two integer ones are an error)
    and their broadcast shape."""
    a, b = as_tensor(x1), as_tensor(x2)
    if a.dtype != np.float32 and b.dtype != np.float32:
        raise RuntimeTypeError(f"{op}: expected common dtype to be floating point, yet common "
                               f"dtype is {a.dtype} / {b.dtype}")
    a, b = _float_operand(a, op), _float_operand(b, op)
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise RuntimeValueError(f"{op}: {broadcast_error(a.shape, b.shape)} (input shapes "
                                f"{a.shape} and {b.shape})") from None
    return a, b, shape


def normalize(input: Any, p: float = 2.0, dim: Any = 1, eps: float = 1e-12,
              out: Optional[Tensor] = None) -> Tensor:
    """input / max(||input||_p, eps) over ``dim`` (an int or a tuple of ints).

    With ``out`` the result is written there and not differentiated (as torch)."""
    x = as_tensor(input)
    if x.dtype != np.float32:
        raise RuntimeTypeError(f"normalize: linalg.vector_norm expects a floating point input, "
                               f"got {x.dtype}")
    order = _norm_order(p, "normalize", fro=True)
    denom = vector_norm(x, order, dim, True, "normalize").clamp(min=eps)
    if out is None:
        return x / denom
    if not isinstance(out, Tensor) or out.shape != x.shape or out.dtype != np.float32:
        raise ValueError(f"normalize: out must be a float32 Tensor of the input's shape {x.shape}")
    np.divide(x._data, denom._data, out=out._data)
    out._bump_version()
    return out


class _UngradedClampMin(Function):
    """max(norm, eps) whose gradient passes as if unclamped: torch's cosine_similarity
    clamps its norms in place under no_grad, so autograd never sees the clamp."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, norm, eps):
        return np.maximum(norm, _F32(eps))  # (NaN stays NaN, as clamp_min_)

    @staticmethod
    def backward(ctx, g):
        return g, None


def cosine_similarity(x1: Any, x2: Any, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1 / max(||x1||, eps) * x2 / max(||x2||, eps)) along ``dim`` (torch 2.x's
    form: each side is scaled by its own clamped norm, so |result| <= 1); x1 and x2
    broadcast."""
    op = "cosine_similarity"
    a, b, shape = _float_pair(x1, x2, op)
    if eps < 0:
        raise RuntimeValueError(f"{op}: eps must be non-negative, got: {eps}")
    d = normalize_dim(dim, len(shape), op)
    if a.shape != shape:
        a = a.expand(shape)
    if b.shape != shape:
        b = b.expand(shape)
    na = _UngradedClampMin.apply(vector_norm(a, 2.0, d, True, op), eps)
    nb = _UngradedClampMin.apply(vector_norm(b, 2.0, d, True, op), eps)
    return ((a / na) * (b / nb)).sum(d)


def pairwise_distance(x1: Any, x2: Any, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Tensor:
    """||x1 - x2 + eps||_p over the last dim of the broadcast shape (torch's eps is
    added to the difference, not to the norm)."""
    op = "pairwise_distance"
    a, b, shape = _float_pair(x1, x2, op)
    order = _norm_order(p, op, fro=False)
    return vector_norm(a - b + eps, order, len(shape) - 1 if shape else 0, keepdim, op)
