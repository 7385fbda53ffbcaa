"""A small deterministic problem whose gradients depend on the parameters.

Parameters of awkward sizes (tails, padding, a 0-d-like 1-element tensor)
and a coupled, non-quadratic loss per parameter
    L(p) = ½‖A p − b‖² + 0.05·Σ cos(3p) + 0.01·Σ p⁴/4,
so gradients g = Aᵀ(A p − b) − 0.15·sin(3p) + 0.01·p³ change every step. The
gradient is evaluated in float64 and rounded to float32, the same way for
every engine being compared.
"""

from __future__ import annotations

from typing import List

import numpy as np

SHAPES = [(5, 7), (37,), (1,), (3, 4, 9), (130,)]


def initial_params(seed: int = 0) -> List[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


def _operators(seed: int = 1):
    rng = np.random.default_rng(seed)
    ops = []
    for s in SHAPES:
        n = int(np.prod(s))
        a = rng.standard_normal((n, n)) / np.sqrt(n) + np.eye(n)
        b = rng.standard_normal(n)
        ops.append((a, b))
    return ops


_OPS = _operators()


def grads(params: List[np.ndarray]) -> List[np.ndarray]:
    out = []
    for p, (a, b) in zip(params, _OPS):
        x = p.reshape(-1).astype(np.float64)
        g = a.T @ (a @ x - b) - 0.15 * np.sin(3 * x) + 0.01 * x ** 3
        out.append(g.astype(np.float32).reshape(p.shape))
    return out


def loss(params: List[np.ndarray]) -> float:
    total = 0.0
    for p, (a, b) in zip(params, _OPS):
        x = p.reshape(-1).astype(np.float64)
        r = a @ x - b
        total += 0.5 * r @ r + 0.05 * np.cos(3 * x).sum() + 0.01 * (x ** 4).sum() / 4
    return float(total)
