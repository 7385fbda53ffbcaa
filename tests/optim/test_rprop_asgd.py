"""Rprop and ASGD details the trajectory tests do not reach: torch's sign of
NaN and of an underflowing product (Rprop), eta/mu/ax as torch keeps them
(ASGD), against the numpy reference and, when installed, torch."""

from __future__ import annotations

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import optim
from reference import optim_reference as R

import runner


def _grads_with_edge_cases(t):
    g = np.linspace(-1, 1, 37).astype(np.float32) * (1 if t % 2 else -0.5)
    g[3] = np.nan if t == 2 else g[3]
    g[5] = np.inf
    g[7] = 1e-30                # g·prev underflows to 0 in float32: sign 0, factor 1
    g[9] = 0.0
    g[11] = -0.0 if t == 1 else 2.0
    return g


def _run(name, hp, steps, isa_exact):
    init = np.linspace(-2, 2, 37).astype(np.float32)
    p = pve.nn.Parameter(init.copy())
    opt = getattr(optim, name)([p], **hp)
    ref_p = [init.copy()]
    ref = R.make(name, **hp)
    for t in range(1, steps + 1):
        g = _grads_with_edge_cases(t)
        opt.zero_grad()
        runner.feed_grads([p], [g], True)
        opt.step()
        ref.step(ref_p, [g.copy()])
        if isa_exact:
            np.testing.assert_array_equal(p.detach().numpy(), ref_p[0])
        else:
            np.testing.assert_allclose(p.detach().numpy(), ref_p[0], rtol=1e-6, atol=1e-7)
    return p, opt


def test_rprop_nonfinite_and_underflow_as_the_reference(isa):
    p, opt = _run("Rprop", dict(lr=0.1), 6, True)
    out = p.detach().numpy()
    # torch's sign(NaN) is 0: a NaN gradient leaves the parameter (and its step
    # size) as they were and only reaches prev.
    assert np.isfinite(out[3])
    assert out[9] == np.linspace(-2, 2, 37).astype(np.float32)[9]  # zero gradient: no move
    assert float(opt.state[p]["step"]) == 6.0


def test_asgd_nonfinite_as_the_reference(isa):
    _run("ASGD", dict(lr=0.05, t0=1, lambd=0.01), 5, isa == "scalar")


def test_asgd_state_eta_mu_ax():
    p = pve.nn.Parameter(np.ones(4, np.float32))
    opt = optim.ASGD([p], lr=0.1, lambd=0.5, alpha=0.75, t0=2)
    ref = R.make("ASGD", lr=0.1, lambd=0.5, alpha=0.75, t0=2)
    ref_p = [np.ones(4, np.float32)]
    for t in range(1, 6):
        g = np.full(4, 0.25 * t, np.float32)
        p.grad = pve.tensor(g)
        opt.step()
        ref.step(ref_p, [g])
        st = opt.state[p]
        assert list(st) == ["step", "eta", "mu", "ax"]
        assert float(st["step"]) == t
        assert st["eta"].numpy().dtype == np.float32 and st["eta"].shape == ()
        assert st["eta"].item() == np.float32(0.1 / (1 + 0.5 * 0.1 * t) ** 0.75)
        assert st["mu"].item() == np.float32(1 / max(1, t - 2))
        np.testing.assert_array_equal(st["ax"].numpy(), ref.state[0]["ax"])
    # After t0 + 1 steps ax is a running average, not a copy of the parameter.
    assert not np.array_equal(st["ax"].numpy(), p.detach().numpy())


def test_asgd_eta_starts_at_each_groups_lr():
    a, b = pve.nn.Parameter(np.ones(3, np.float32)), pve.nn.Parameter(np.ones(2, np.float32))
    opt = optim.ASGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = pve.tensor(np.ones(3, np.float32)), pve.tensor(np.ones(2, np.float32))
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), np.float32(1 * (1 - 1e-4 * np.float32(0.1))) - np.float32(0.1))
    np.testing.assert_allclose(b.detach().numpy(), np.float32(1 * (1 - 1e-4 * 0.5)) - 0.5)


@pytest.mark.parametrize("name,hp", [("Rprop", dict(lr=0.1)),
                                     ("ASGD", dict(lr=0.05, t0=1, lambd=0.01))])
def test_edge_cases_match_torch(name, hp):
    torch = pytest.importorskip("torch")
    init = np.linspace(-2, 2, 37).astype(np.float32)
    tp = torch.nn.Parameter(torch.from_numpy(init.copy()))
    topt = getattr(torch.optim, name)([tp], **hp)
    p = pve.nn.Parameter(init.copy())
    opt = getattr(optim, name)([p], **hp)
    for t in range(1, 7):
        g = _grads_with_edge_cases(t)
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
        p.grad = pve.tensor(g)
        opt.step()
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-6, atol=1e-7,
                                   equal_nan=True)
        for key, value in topt.state[tp].items():
            np.testing.assert_allclose(np.asarray(opt.state[p][key]), value.numpy(), rtol=1e-6,
                                       atol=1e-7, equal_nan=True)
