"""Lookahead against the plain reference (slow weights from the initial params)."""

from __future__ import annotations

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import optim

import problem
import runner
from reference import optim_reference as R


@pytest.mark.parametrize("name,hp,k,alpha", [
    ("SGD", dict(lr=0.05, momentum=0.9), 5, 0.5),
    ("Adam", dict(lr=0.01), 3, 0.8),
    ("RMSprop", dict(lr=0.001, centered=True), 1, 0.3),
    ("SGD", dict(lr=0.05), 6, 1.0),
])
def test_lookahead_matches_reference(name, hp, k, alpha, isa):
    init = problem.initial_params()
    ref_params = [p.copy() for p in init]
    ref = R.Lookahead(R.make(name, **hp), ref_params, k=k, alpha=alpha)
    expected = runner.run_reference(ref, 50, params=ref_params)
    ours, opt, _ = runner.run_pve(
        name, hp, 50, True, make_opt=lambda ps: optim.Lookahead(
            getattr(optim, name)(ps, **hp), k=k, alpha=alpha))
    if isa == "scalar":
        np.testing.assert_array_equal(np.stack(ours), np.stack(expected))
    else:  # FMA in the inner rule and in the sync: see test_trajectories.py
        np.testing.assert_allclose(np.stack(ours), np.stack(expected), rtol=3e-4, atol=1e-6)


def test_lookahead_k1_alpha1_is_the_inner_optimizer():
    plain, _, _ = runner.run_pve("Adam", dict(lr=0.01), 20)
    wrapped, _, _ = runner.run_pve("Adam", dict(lr=0.01), 20, make_opt=lambda ps: optim.Lookahead(
        optim.Adam(ps, lr=0.01), k=1, alpha=1.0))
    np.testing.assert_array_equal(np.stack(plain), np.stack(wrapped))


def test_lookahead_shares_param_groups_and_state_dict_has_inner():
    p = pve.nn.Parameter(np.ones(10, np.float32))
    inner = optim.SGD([p], lr=0.1, momentum=0.9)
    la = optim.Lookahead(inner, k=2)
    assert la.param_groups is inner.param_groups
    la.param_groups[0]["lr"] = 0.5
    assert inner.param_groups[0]["lr"] == 0.5
    runner.feed_grads([p], [np.ones(10, np.float32)], True)
    la.step()
    sd = la.state_dict()
    assert sd["k"] == 2 and sd["alpha"] == 0.5 and sd["step_counter"] == 1
    np.testing.assert_array_equal(sd["state"][0]["slow_param"].numpy(), np.ones(10))
    assert set(sd["inner"]) == {"state", "param_groups"}
    # A scheduler drives the wrapped optimizer's lr.
    sched = optim.lr_scheduler.StepLR(la, step_size=1, gamma=0.5)
    la.step()
    sched.step()
    assert inner.param_groups[0]["lr"] == 0.25
