"""Helpers for the layer tests: run an op through pve with autograd and compare
with a float64 numpy reference and its finite-difference gradients."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

import pyvision_engine as pve
from reference.gradcheck import assert_grad_close, numerical_grads


def run_pve(fn: Callable, inputs: Sequence[np.ndarray], upstream: Optional[np.ndarray] = None,
            grad: bool = True):
    """(output array, [input grads]) of fn over float32 copies of inputs."""
    ts = [pve.tensor(np.asarray(a, dtype=np.float32), requires_grad=grad) for a in inputs]
    out = fn(*ts)
    grads = []
    if grad:
        g = np.ones(out.shape, np.float32) if upstream is None else upstream.astype(np.float32)
        out.backward(pve.tensor(g))
        grads = [t.grad.numpy() if t.grad is not None else None for t in ts]
    return out.detach().numpy(), grads


def check_op(pve_fn: Callable, ref_fn: Callable, inputs: Sequence[np.ndarray], *,
             rtol: float = 1e-5, atol: float = 1e-5, grad: bool = True,
             grad_rtol: float = 1e-3, grad_atol: float = 1e-3, seed: int = 0,
             eps: float = 1e-6) -> None:
    """Forward vs the float64 reference; backward vs its central finite differences."""
    inputs64 = [np.asarray(a, dtype=np.float32).astype(np.float64) for a in inputs]
    ref = np.asarray(ref_fn(*inputs64))
    upstream = np.random.default_rng(seed).standard_normal(ref.shape)
    out, grads = run_pve(pve_fn, inputs64, upstream, grad)
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol, err_msg="forward")
    if grad:
        numeric = numerical_grads(ref_fn, inputs64, upstream, eps=eps)
        for i, (a, n) in enumerate(zip(grads, numeric)):
            assert_grad_close(a, n, rtol=grad_rtol, atol=grad_atol, name=f"grad of input {i}")
