"""The parameter arena: many parameters laid out in one aligned float32 buffer.

After ``ParameterArena(params)``, each parameter's data is a view into
``arena.data`` and its gradient lives in ``arena.grad`` (autograd writes
straight there). A whole-group operation (zero_grad, a fused optimizer
step, gradient clipping, an all-reduce) is then one pass over one buffer.

Each parameter starts at a multiple of 16 floats (64 bytes, one cache line and
one AVX-512 vector); the padding between them is zero in both buffers and stays
zero under every update rule, so it never changes a norm or an update.
"""

from __future__ import annotations

from typing import Iterable, List, Tuple

import numpy as np

from pyvision_engine.tensor import Tensor

__all__ = ["ParameterArena", "aligned_empty", "ALIGN_FLOATS"]

ALIGN_FLOATS = 16
_ALIGN_BYTES = ALIGN_FLOATS * 4


def aligned_empty(count: int) -> np.ndarray:
    """A zeroed float32 array of ``count`` elements whose data is 64-byte aligned."""
    raw = np.zeros(count + ALIGN_FLOATS, dtype=np.float32)
    offset = (-raw.ctypes.data % _ALIGN_BYTES) // 4
    return raw[offset:offset + count]


def _round_up(n: int) -> int:
    return (n + ALIGN_FLOATS - 1) // ALIGN_FLOATS * ALIGN_FLOATS


class ParameterArena:
    """Moves ``params`` (float32 Tensors) into one data buffer and one gradient buffer."""

    def __init__(self, params: Iterable[Tensor]) -> None:
        unique: List[Tensor] = []
        seen = set()
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"ParameterArena: expected Tensors, got {type(p).__name__}")
            if p.dtype != np.float32:
                raise TypeError(f"ParameterArena: parameters must be float32, got {p.dtype}")
            if id(p) not in seen:
                seen.add(id(p))
                unique.append(p)
        self.params: List[Tensor] = unique
        self.offsets: List[Tuple[int, int]] = []
        total = 0
        for p in unique:
            self.offsets.append((total, p.numel()))
            total += _round_up(p.numel())
        self.data = aligned_empty(total)
        self.grad = aligned_empty(total)
        for p, (start, size) in zip(unique, self.offsets):
            view = self.data[start:start + size].reshape(p.shape)
            np.copyto(view, p._data)
            grad_view = self.grad[start:start + size].reshape(p.shape)
            if p.grad is not None:
                np.copyto(grad_view, p.grad._data)
                p.grad = Tensor._wrap(grad_view)
            p._data = view
            p._grad_slot = grad_view

    def __len__(self) -> int:
        return len(self.params)

    @property
    def size(self) -> int:
        """Floats in each buffer, padding included."""
        return int(self.data.size)

    def owns_all_grads(self) -> bool:
        """True when every parameter has a gradient and it is the arena's view."""
        return all(
            p.grad is not None and p.grad._data is p._grad_slot for p in self.params
        )

    def zero_grad(self, set_to_none: bool = True) -> None:
        """One memset; with ``set_to_none`` the ``.grad`` attributes become None
        (autograd refills the arena views on the next backward)."""
        self.grad.fill(0.0)
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is None or p.grad._data is not p._grad_slot:
                p.grad = Tensor._wrap(p._grad_slot)
