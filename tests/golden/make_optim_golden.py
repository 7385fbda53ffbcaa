"""Generates tests/golden/optim_trajectories.npz and lr_schedules.npz with torch.

    PYTHONPATH=. python tests/golden/make_optim_golden.py [trajectories] [schedules]

(both files without arguments; name one to regenerate only that file).

Trajectories: every configuration of tests/optim/configs.py, run by torch 2.x's
default (single-tensor) path on tests/optim/problem.py, parameters saved
(flattened, concatenated) after the steps in SNAPSHOTS; and every LBFGS_CONFIGS
entry (``lbfgs_NN``: parameters after each step of closure-driven L-BFGS). Schedules: the lr of
each scheduler configuration in tests/optim/schedules.py for 40 epochs
(``lr_NN``), and the momentum for those that cycle it (``mom_NN``).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "optim")]

import configs  # noqa: E402
import problem  # noqa: E402
import schedules  # noqa: E402


def torch_trajectory(name, hp, steps, snapshots, **extra):
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in problem.initial_params()]
    opt = getattr(torch.optim, name)(params, **hp, **extra)
    out = []
    for t in range(1, steps + 1):
        opt.zero_grad()
        gs = problem.grads([p.detach().numpy() for p in params])
        for p, g in zip(params, gs):
            p.grad = torch.from_numpy(g)
        opt.step()
        if t in snapshots:
            out.append(np.concatenate([p.detach().numpy().reshape(-1).copy() for p in params]))
    return np.stack(out)


def torch_lbfgs_trajectory(prob, hp, steps):
    """torch.optim.LBFGS on problem.lbfgs_loss_grads: params after each step."""
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in problem.lbfgs_initial(prob)]
    opt = torch.optim.LBFGS(params, **hp)
    closure = problem.lbfgs_closure(prob, params, torch.tensor)
    out = []
    for _ in range(steps):
        opt.step(closure)
        out.append(np.concatenate([p.detach().numpy().reshape(-1).copy() for p in params]))
    return np.stack(out)


def make_trajectories() -> None:
    arrays = {}
    for i, (name, hp) in enumerate(configs.CONFIGS):
        arrays[f"traj_{i:02d}"] = torch_trajectory(name, hp, configs.STEPS, configs.SNAPSHOTS)
    for i, (prob, hp, steps) in enumerate(configs.LBFGS_CONFIGS):
        arrays[f"lbfgs_{i:02d}"] = torch_lbfgs_trajectory(prob, hp, steps)
    arrays["configs_json"] = np.array(json.dumps(configs.CONFIGS))
    arrays["torch_version"] = np.array(torch.__version__)
    np.savez_compressed(os.path.join(HERE, "optim_trajectories.npz"), **arrays)


def make_schedules() -> None:
    lrs = {}
    for i, (name, kwargs) in enumerate(schedules.SCHEDULES):
        lrs[f"lr_{i:02d}"] = np.array(schedules.torch_lrs(name, kwargs), dtype=np.float64)
        if name in schedules.CYCLES_MOMENTUM:
            lrs[f"mom_{i:02d}"] = np.array(schedules.torch_lrs(name, kwargs, key="momentum"),
                                           dtype=np.float64)
    lrs["schedules_json"] = np.array(json.dumps([s[0] for s in schedules.SCHEDULES]))
    np.savez_compressed(os.path.join(HERE, "lr_schedules.npz"), **lrs)


def main(which) -> None:
    if not which or "trajectories" in which:
        make_trajectories()
    if not which or "schedules" in which:
        make_schedules()


if __name__ == "__main__":
    main(sys.argv[1:])
