"""Scheduler configurations and a runner that works with torch or pve."""

from __future__ import annotations

from typing import List

import numpy as np

EPOCHS = 40
# A loss curve that plateaus, for ReduceLROnPlateau.
METRICS = [1.0 / (1 + e) if e < 10 else 0.1 + 0.001 * ((e * 7) % 5) for e in range(EPOCHS)]


def _warm(epoch: int) -> float:
    return min(1.0, (epoch + 1) / 5)


def _decay(epoch: int) -> float:
    return 0.95 ** epoch


SCHEDULES = [
    ("StepLR", dict(step_size=7, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[5, 12, 12, 30], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=15, eta_min=0.001)),
    ("CosineAnnealingWarmRestarts", dict(T_0=6, T_mult=2, eta_min=0.0005)),
    ("CosineAnnealingWarmRestarts", dict(T_0=7)),
    ("LinearLR", dict(start_factor=0.25, end_factor=0.9, total_iters=8)),
    ("ConstantLR", dict(factor=0.5, total_iters=4)),
    ("PolynomialLR", dict(total_iters=30, power=2.0)),
    ("OneCycleLR", dict(max_lr=[0.5, 0.2], total_steps=41)),
    ("OneCycleLR", dict(max_lr=0.3, total_steps=45, anneal_strategy="linear", three_phase=True)),
    ("ReduceLROnPlateau", dict(factor=0.5, patience=2, cooldown=1)),
    ("ReduceLROnPlateau", dict(mode="max", factor=0.2, patience=3, threshold_mode="abs")),
    ("LambdaLR", dict(lr_lambda="warm")),
    ("MultiplicativeLR", dict(lr_lambda="decay")),
    ("SequentialLR", dict(milestones=[5])),
    ("SequentialLR3", dict(milestones=[4, 20])),
    ("CyclicLR", dict(base_lr=[0.01, 0.005], max_lr=[0.1, 0.08], step_size_up=6,
                      step_size_down=4)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=5, mode="triangular2")),
    ("CyclicLR", dict(base_lr=0.02, max_lr=[0.2, 0.1], step_size_up=3, mode="exp_range",
                      gamma=0.97)),
]
# Schedulers that cycle the momentum too (SGD's group['momentum'] here).
CYCLES_MOMENTUM = ("OneCycleLR", "CyclicLR")


def _lib(name: str):
    if name == "torch":
        import torch
        return torch, torch.optim, torch.optim.lr_scheduler
    import pyvision_engine as pve
    return pve, pve.optim, pve.optim.lr_scheduler


def run_lrs(lib_name: str, name: str, kwargs: dict, tensor_lr: bool = False,
            opt_out: list = None, key: str = "lr") -> List[List[float]]:
    """lr of both param groups after construction and after each of EPOCHS steps
    (``key="momentum"``: their momentum instead).
    ``tensor_lr``: the lrs are 0-d float32 tensors (appended to ``opt_out``, with
    the optimizer and the scheduler after them, when given)."""
    lib, optim, sched_mod = _lib(lib_name)
    a = lib.nn.Parameter(lib.zeros(3)) if lib_name == "torch" else lib.nn.Parameter(np.zeros(3, np.float32))
    b = lib.nn.Parameter(lib.zeros(2)) if lib_name == "torch" else lib.nn.Parameter(np.zeros(2, np.float32))
    lr_a, lr_b = 0.1, 0.05
    if tensor_lr:
        lr_a, lr_b = lib.tensor(np.float32(lr_a)), lib.tensor(np.float32(lr_b))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": lr_b}], lr=lr_a, momentum=0.9)
    kwargs = dict(kwargs)
    if kwargs.get("lr_lambda") == "warm":
        kwargs["lr_lambda"] = _warm
    elif kwargs.get("lr_lambda") == "decay":
        kwargs["lr_lambda"] = _decay
    if name == "SequentialLR":
        subs = [sched_mod.LinearLR(opt, start_factor=0.1, total_iters=5),
                sched_mod.ExponentialLR(opt, gamma=0.9)]
        sched = sched_mod.SequentialLR(opt, schedulers=subs, **kwargs)
    elif name == "SequentialLR3":
        subs = [sched_mod.ConstantLR(opt, factor=0.5, total_iters=4),
                sched_mod.CosineAnnealingLR(opt, T_max=10),
                sched_mod.StepLR(opt, step_size=3, gamma=0.7)]
        sched = sched_mod.SequentialLR(opt, schedulers=subs, **kwargs)
    else:
        sched = getattr(sched_mod, name)(opt, **kwargs)
    if opt_out is not None:
        opt_out.extend([lr_a, lr_b, opt, sched])
    out = [[float(g[key]) for g in opt.param_groups]]
    for epoch in range(EPOCHS):
        opt.step()
        if name == "ReduceLROnPlateau":
            sched.step(METRICS[epoch])
        else:
            sched.step()
        out.append([float(g[key]) for g in opt.param_groups])
    return out


def torch_lrs(name: str, kwargs: dict, key: str = "lr") -> List[List[float]]:
    return run_lrs("torch", name, kwargs, key=key)
