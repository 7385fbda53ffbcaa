"""Runs a pve optimizer (or a reference) on tests/optim/problem.py."""

from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np

import pyvision_engine as pve
import problem


def feed_grads(params, grads: List[Optional[np.ndarray]], via_autograd: bool) -> None:
    """Give each param its gradient: through autograd (lands in the arena
    slot, as after a real backward) or by assigning ``.grad`` (per-tensor path)."""
    if via_autograd:
        total = None
        for p, g in zip(params, grads):
            if g is None:
                continue
            term = (p * pve.tensor(g)).sum()
            total = term if total is None else total + term
        if total is not None:
            total.backward()
    else:
        for p, g in zip(params, grads):
            p.grad = None if g is None else pve.tensor(g.copy())


def run_pve(name: str, hp: dict, steps: int, via_autograd: bool = True,
            snapshots=None, skip: Optional[Callable[[int, int], bool]] = None,
            make_opt=None):
    """Trajectory of a pve optimizer: list of flat float32 parameter snapshots."""
    params = [pve.nn.Parameter(p) for p in problem.initial_params()]
    opt = make_opt(params) if make_opt else getattr(pve.optim, name)(params, **hp)
    out = []
    for t in range(1, steps + 1):
        opt.zero_grad()
        gs = problem.grads([p.detach().numpy() for p in params])
        if skip is not None:
            gs = [None if skip(t, i) else g for i, g in enumerate(gs)]
        feed_grads(params, gs, via_autograd)
        opt.step()
        if snapshots is None or t in snapshots:
            out.append(np.concatenate([p.detach().numpy().reshape(-1) for p in params]))
    return out, opt, params


def run_reference(rule, steps: int, snapshots=None, skip=None, params=None):
    params = params if params is not None else problem.initial_params()
    out = []
    for t in range(1, steps + 1):
        gs = problem.grads(params)
        if skip is not None:
            gs = [None if skip(t, i) else g for i, g in enumerate(gs)]
        rule.step(params, gs)
        if snapshots is None or t in snapshots:
            out.append(np.concatenate([p.reshape(-1) for p in params]))
    return out


def run_lbfgs_pve(problem_name: str, hp: dict, steps: int, opt_params=None):
    """pve LBFGS on problem.lbfgs_loss_grads: (param snapshots after each step,
    the losses step returned, closure calls per step, optimizer, params)."""
    params = opt_params or [pve.nn.Parameter(p) for p in problem.lbfgs_initial(problem_name)]
    opt = pve.optim.LBFGS(params, **hp)
    calls = []
    evaluate = problem.lbfgs_closure(problem_name, params, pve.tensor)

    def closure():
        calls[-1] += 1
        return evaluate()

    out, losses = [], []
    for _ in range(steps):
        calls.append(0)
        losses.append(float(opt.step(closure)))
        out.append(np.concatenate([p.detach().numpy().reshape(-1) for p in params]))
    return out, losses, calls, opt, params
