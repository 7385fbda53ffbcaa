"""Helpers for the layer tests: run an op through pve with autograd and compare
with a float64 numpy reference and its finite-difference gradients, or with torch."""

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


def torch_arg(torch, v, grad: bool = False):
    """numpy inputs as torch tensors (float32 raised to float64, the reference
    precision); anything else (ints, floats, strings, callables) as it is."""
    if isinstance(v, np.ndarray):
        return torch.tensor(v.astype(np.float64) if v.dtype == np.float32 else v,
                            requires_grad=grad)
    return v


def compare_with_torch(torch, name: str, inputs: Sequence, kwargs: Optional[dict] = None,
                       grad_of: Sequence[int] = (0,), rtol: float = 2e-5, atol: float = 2e-6,
                       rng: Optional[np.random.Generator] = None) -> None:
    """pve's F.<name> (float32) against torch's (float64) on the same inputs: values, then
    the gradients of the float32 inputs listed in ``grad_of`` under a random upstream
    gradient drawn from ``rng``."""
    kwargs = kwargs or {}
    wants = [i in grad_of and isinstance(a, np.ndarray) and a.dtype == np.float32
             for i, a in enumerate(inputs)]
    ours = [pve.tensor(a, requires_grad=w) if isinstance(a, np.ndarray) else a
            for a, w in zip(inputs, wants)]
    theirs = [torch_arg(torch, a, w) for a, w in zip(inputs, wants)]
    out_t = getattr(torch.nn.functional, name)(
        *theirs, **{k: torch_arg(torch, v) for k, v in kwargs.items()})
    out_p = getattr(pve.nn.functional, name)(*ours, **kwargs)
    assert tuple(out_p.shape) == tuple(out_t.shape)
    np.testing.assert_allclose(out_p.detach().numpy(), out_t.detach().numpy(), rtol=rtol,
                               atol=atol, equal_nan=True)
    if not grad_of:
        return
    g = rng.standard_normal(tuple(out_t.shape))
    out_t.backward(torch.tensor(g))
    out_p.backward(pve.tensor(g.astype(np.float32)))
    for i in grad_of:
        np.testing.assert_allclose(ours[i].grad.numpy(), theirs[i].grad.numpy(), rtol=1e-4,
                                   atol=1e-5, equal_nan=True, err_msg=f"{name} grad {i}")
