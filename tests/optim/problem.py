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


# ----------------------------------------------------------------- L-BFGS
# Closure problems for LBFGS: loss and gradients in float64, rounded to
# float32, so every engine gets the same numbers for the same parameters.
LBFGS_SHAPES = {"rosenbrock": [(2,)], "linear": [(3, 5), (3,)]}


def lbfgs_initial(name: str) -> List[np.ndarray]:
    if name == "rosenbrock":
        return [np.array([-1.5, 2.0], np.float32)]
    rng = np.random.default_rng(7)
    return [rng.standard_normal(s).astype(np.float32) * 0.3 for s in LBFGS_SHAPES[name]]


_LIN_RNG = np.random.default_rng(11)
_LIN_X = _LIN_RNG.standard_normal((16, 5))
_LIN_Y = _LIN_X @ _LIN_RNG.standard_normal((5, 3)) + 0.1 * _LIN_RNG.standard_normal((16, 3))


def lbfgs_loss_grads(name: str, params: List[np.ndarray]):
    """(loss as float32, [grad float32 per param])."""
    if name == "rosenbrock":
        a, b = params[0].astype(np.float64)
        f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
        g = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
        return np.float32(f), [g.astype(np.float32)]
    w, bias = (p.astype(np.float64) for p in params)  # tiny linear model, MSE + small L2
    r = _LIN_X @ w.T + bias - _LIN_Y
    n = r.size
    f = (r * r).sum() / n + 1e-3 * (w * w).sum()
    gw = 2 * r.T @ _LIN_X / n + 2e-3 * w
    gb = 2 * r.sum(axis=0) / n
    return np.float32(f), [gw.astype(np.float32), gb.astype(np.float32)]


def lbfgs_closure(name: str, params, to_tensor):
    """An LBFGS closure for either engine: evaluates lbfgs_loss_grads at the params'
    current values, sets each param's .grad and returns the loss, made tensors by
    ``to_tensor`` (pve.tensor or torch.tensor)."""
    def closure():
        loss, gs = lbfgs_loss_grads(name, [p.detach().numpy() for p in params])
        for p, g in zip(params, gs):
            p.grad = to_tensor(g)
        return to_tensor(loss)
    return closure
