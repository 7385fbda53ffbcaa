"""clip_grad_norm_ / clip_grad_value_ with torch.nn.utils' semantics.

When the gradients are exactly the gradient buffer of one parameter arena
(every parameter of the arena has its gradient in its slot, as after a
backward pass on a model whose optimizer built the arena), the norm is one
fused reduction over the whole buffer and the scaling one fused pass, where
the arena's zero padding changes neither. Where it would (a norm of order
p <= 0, a NaN scale, a clamp that moves zero), each gradient is reduced or
written on its own (still in C++), as it is when the gradients are not an arena.
"""

from __future__ import annotations

import math
import types
import warnings
from typing import Iterable, List, Optional, Union

import numpy as np

from pyvision_engine import _C
from pyvision_engine.nn.arena import ALIGN_FLOATS
from pyvision_engine.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_norm", "clip_grad_value_", "get_total_norm",
           "clip_grads_with_norm_"]

_TensorOrTensors = Union[Tensor, Iterable[Tensor]]


def _tensor_list(tensors: _TensorOrTensors) -> List[Tensor]:
    """One tensor or an iterable of them, as a list."""
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def _param_list(parameters: _TensorOrTensors) -> List[Tensor]:
    """As _tensor_list, with torch's warning for an empty generator (clip_grad_norm_)."""
    params = _tensor_list(parameters)
    if isinstance(parameters, types.GeneratorType) and not params:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.",
                      stacklevel=3)
    return params


def _checked(arrays: List[np.ndarray]) -> List[np.ndarray]:
    for g in arrays:
        if g.dtype != np.float32 or not g.flags.c_contiguous:
            raise TypeError("clip_grad: gradients must be float32 and C-contiguous")
    return arrays


def _per_tensor(params: List[Tensor]) -> List[np.ndarray]:
    """Each gradient as a flat view (no arena padding)."""
    return [g.reshape(-1) for g in _checked([p.grad._data for p in params if p.grad is not None])]


def _grad_buffers(params: List[Tensor]) -> List[np.ndarray]:
    """The flat gradient arrays to work on: one span of an arena's gradient
    buffer when the gradients tile it back to back (padding between them is
    the arena's zero padding), else one array per gradient. Only for work
    that leaves a zero at zero and counts nothing for it."""
    grads = _checked([p.grad._data for p in params if p.grad is not None])
    span = _arena_span(params, grads)
    if span is not None:
        return [span]
    return [g.reshape(-1) for g in grads]


def _total_norm(buffers: List[np.ndarray], per_tensor: List[np.ndarray], norm_type: float,
                error_if_nonfinite: bool) -> np.float32:
    """torch's total norm: the ``norm_type``-norm of the per-tensor norms.

    For finite p != 0 that equals the norm of all elements together. For p > 0
    (and inf) ``buffers`` (maybe one arena span) are reduced in one pass: a
    zero adds |0|^p = 0. For p < 0 a zero adds inf, so the arena's padding
    must not count and ``per_tensor`` is reduced instead. For p = 0 and
    p = -inf the total is the number of tensors with a nonzero element, and
    the smallest per-tensor min |g|: ``per_tensor`` again."""
    if (norm_type < 0 or norm_type == math.inf) and any(g.size == 0 for g in per_tensor):
        # torch: these norms have no identity, so an empty gradient is an error.
        raise RuntimeError(f"linalg.vector_norm cannot compute the {norm_type:g} norm on an "
                           "empty tensor because the operation does not have an identity")
    if norm_type == math.inf:
        maxima = [_C.grad_norm_part(b, norm_type) for b in buffers]
        total = math.nan if any(math.isnan(v) for v in maxima) else max(maxima)
    elif norm_type == 0.0:
        total = float(sum(np.count_nonzero(g) > 0 for g in per_tensor))
    elif norm_type == -math.inf:
        minima = [float(np.min(np.abs(g))) for g in per_tensor]
        total = math.nan if any(math.isnan(v) for v in minima) else min(minima)
    else:
        arrays = buffers if norm_type > 0 else per_tensor
        parts = np.float64(sum(_C.grad_norm_part(b, norm_type) for b in arrays))
        # numpy's power: 0 ** (1/p) is inf for p < 0 (every element inf), not an error.
        with np.errstate(divide="ignore"):
            total = math.sqrt(parts) if norm_type == 2.0 else parts ** (1.0 / norm_type)
    total32 = np.float32(total)
    if error_if_nonfinite and not np.isfinite(total32):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return total32


def _scale(buffers: List[np.ndarray], per_tensor: List[np.ndarray], max_norm: float,
           total32: np.float32) -> None:
    # As torch: a float32 coefficient max_norm / (total + 1e-6), clamped to 1.
    coef = np.float32(max_norm) / (total32 + np.float32(1e-6))
    coef = min(coef, np.float32(1.0)) if not np.isnan(coef) else coef
    # A NaN coefficient would make the arena's zero padding NaN too.
    for b in per_tensor if np.isnan(coef) else buffers:
        _C.grad_scale(b, float(coef))


def get_total_norm(tensors: _TensorOrTensors, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: Optional[bool] = None) -> Tensor:
    """The ``norm_type``-norm of the norms of ``tensors`` (the tensors themselves,
    not their ``.grad``), as torch.nn.utils.get_total_norm; a 0-d float32 Tensor."""
    tensors = _tensor_list(tensors)
    norm_type = float(norm_type)
    if not tensors:
        return Tensor(np.zeros((), dtype=np.float32))
    arrays = _checked([np.ascontiguousarray(t._data).reshape(-1) for t in tensors])
    total32 = _total_norm(arrays, arrays, norm_type, error_if_nonfinite)
    return Tensor(np.array(total32, dtype=np.float32))


def clip_grads_with_norm_(parameters: _TensorOrTensors, max_norm: float,
                          total_norm: Union[Tensor, float],
                          foreach: Optional[bool] = None) -> None:
    """Scale the gradients of ``parameters`` by ``min(max_norm / (total_norm + 1e-6), 1)``
    in place, as torch.nn.utils.clip_grads_with_norm_."""
    params = _tensor_list(parameters)
    max_norm = float(max_norm)
    _scale(_grad_buffers(params), _per_tensor(params), max_norm, np.float32(float(total_norm)))


def _arena_span(params: List[Tensor], grads: List[np.ndarray]) -> Optional[np.ndarray]:
    if len(grads) < 2 or len(grads) != len(params):
        return None
    if any(p._grad_slot is None or p.grad._data is not p._grad_slot for p in params):
        return None
    owner = grads[0].base
    if owner is None or owner.ndim != 1 or owner.dtype != np.float32 or \
            any(g.base is not owner for g in grads):
        return None
    origin = owner.ctypes.data
    tiles = sorted(((g.ctypes.data - origin) // 4, g.size) for g in grads)
    for (start, size), (next_start, _) in zip(tiles, tiles[1:]):
        if next_start != start + -(-size // ALIGN_FLOATS) * ALIGN_FLOATS:
            return None  # not back to back: some other data lies between
    first, (last, last_size) = tiles[0][0], tiles[-1]
    return owner[first:last + last_size]


def clip_grad_norm_(parameters: _TensorOrTensors, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False,
                    foreach: Optional[bool] = None) -> Tensor:
    """Scale gradients in place so their total ``norm_type``-norm is at most ``max_norm``.

    The total norm is taken over all gradients together, as if concatenated.
    Gradients are multiplied by ``min(max_norm / (total + 1e-6), 1)``.

    Args:
        parameters: a Tensor or an iterable of Tensors whose ``.grad`` to clip.
        max_norm: the largest allowed norm.
        norm_type: p of the p-norm (default 2.0); ``inf`` for the max norm.
        error_if_nonfinite: raise RuntimeError if the total norm is nan or inf.
        foreach: accepted for torch compatibility.

    Returns:
        The total norm before clipping, as a 0-d float32 Tensor.
    """
    params = _param_list(parameters)
    max_norm = float(max_norm)
    norm_type = float(norm_type)
    buffers = _grad_buffers(params)
    if not buffers:
        return Tensor(np.zeros((), dtype=np.float32))
    per_tensor = _per_tensor(params)
    total32 = _total_norm(buffers, per_tensor, norm_type, error_if_nonfinite)
    _scale(buffers, per_tensor, max_norm, total32)
    return Tensor(np.array(total32, dtype=np.float32))


def clip_grad_norm(parameters: _TensorOrTensors, max_norm: float, norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: Optional[bool] = None) -> Tensor:
    """Deprecated alias of clip_grad_norm_, with torch's FutureWarning."""
    warnings.warn("`nn.utils.clip_grad_norm` is now deprecated in favor of "
                  "`nn.utils.clip_grad_norm_`.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters: _TensorOrTensors, clip_value: float,
                     foreach: Optional[bool] = None) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place (NaN stays
    NaN), as torch's ``clamp``: a negative ``clip_value`` (min > max) sets every
    element but NaN to ``clip_value``, a NaN one sets every element to NaN."""
    params = _tensor_list(parameters)
    clip_value = float(clip_value)
    if math.isnan(clip_value):
        for g in _per_tensor(params):
            g.fill(np.nan)
        return
    # The arena span only where the clamp keeps its zero padding zero.
    for b in _grad_buffers(params) if clip_value >= 0 else _per_tensor(params):
        _C.grad_clamp(b, clip_value)
