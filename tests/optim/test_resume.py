"""Resuming from state_dict after N steps is bit-identical to not stopping."""

from __future__ import annotations

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import optim

import problem
import runner

# One configuration per optimizer, with its stateful options on.
CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("AdamW", dict(lr=0.01)),
    ("Adamax", dict(lr=0.01)),
    ("NAdam", dict(lr=0.01, decoupled_weight_decay=True, weight_decay=0.1)),
    ("RAdam", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.001, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1)),
    ("Adadelta", dict(rho=0.8)),
    ("Rprop", dict(lr=0.05, etas=(0.4, 1.3))),
    ("ASGD", dict(lr=0.05, t0=10, lambd=1e-3)),  # averaging (mu < 1) starts at step 12
    ("Adafactor", dict(lr=0.005, weight_decay=0.01)),
]


def _steps(opt, params, start, stop):
    for t in range(start, stop):
        opt.zero_grad()
        runner.feed_grads(params, problem.grads([p.detach().numpy() for p in params]), True)
        opt.step()


@pytest.mark.parametrize("name,hp", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("lookahead", [False, True], ids=["plain", "lookahead"])
def test_resume_is_bit_identical(name, hp, lookahead, isa):
    def build(params):
        inner = getattr(optim, name)(params, **hp)
        return optim.Lookahead(inner, k=4, alpha=0.6) if lookahead else inner

    params = [pve.nn.Parameter(p) for p in problem.initial_params()]
    straight = build(params)
    _steps(straight, params, 0, 50)
    expected = [p.detach().numpy().copy() for p in params]

    params = [pve.nn.Parameter(p) for p in problem.initial_params()]
    first = build(params)
    _steps(first, params, 0, 23)
    saved_state = first.state_dict()
    saved_params = [p.detach().numpy().copy() for p in params]
    del first

    resumed_params = [pve.nn.Parameter(a.copy()) for a in saved_params]
    resumed = build(resumed_params)
    resumed.load_state_dict(saved_state)
    _steps(resumed, resumed_params, 23, 50)
    for a, b in zip(resumed_params, expected):
        np.testing.assert_array_equal(a.detach().numpy(), b)
