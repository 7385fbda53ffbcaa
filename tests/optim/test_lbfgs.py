"""LBFGS: against torch's trajectories (golden, and live when torch is
installed) on Rosenbrock and a tiny linear model, with and without the
strong-Wolfe line search; closure semantics, state_dict, resume, validation.

The closures compute loss and gradients in float64 and round them to float32
(tests/optim/problem.py), so both engines see the same numbers for the same
parameters; what remains is the optimizer's own arithmetic. Rosenbrock (2
parameters) comes out bit-identical to torch; on the 18-parameter linear model
the dot products and sums (numpy's BLAS / pairwise sums vs ATen's) differ in
the last bits, hence rtol 1e-5.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import optim

import configs
import problem
import runner

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "golden", "optim_trajectories.npz")
IDS = [f"{i}-{c[0]}-{c[1]}" for i, c in enumerate(configs.LBFGS_CONFIGS)]


@pytest.mark.parametrize("index", range(len(configs.LBFGS_CONFIGS)), ids=IDS)
def test_matches_torch_golden(index):
    prob, hp, steps = configs.LBFGS_CONFIGS[index]
    expected = np.load(GOLDEN)[f"lbfgs_{index:02d}"]
    out, _, _, _, _ = runner.run_lbfgs_pve(prob, hp, steps)
    if prob == "rosenbrock":
        np.testing.assert_array_equal(np.stack(out), expected)
    else:
        np.testing.assert_allclose(np.stack(out), expected, rtol=1e-5, atol=2e-6)


def test_rosenbrock_converges_and_step_returns_the_first_loss():
    out, losses, calls, opt, params = runner.run_lbfgs_pve(
        "rosenbrock", dict(line_search_fn="strong_wolfe"), 4)
    np.testing.assert_allclose(out[-1], [1.0, 1.0], atol=1e-4)
    assert losses[0] == 12.5  # the loss at the starting point: the closure's first call
    st = opt.state[params[0]]
    assert st["func_evals"] == sum(calls)
    assert calls[0] == 25  # max_eval = max_iter * 5 // 4
    assert opt.param_groups[0]["max_eval"] == 25


def test_closure_runs_under_enable_grad_and_result_object_is_returned():
    p = pve.nn.Parameter(np.array([1.0, -2.0], np.float32))
    opt = optim.LBFGS([p], max_iter=3)
    returned = []

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()  # needs grad mode: step may be called under no_grad
        loss.backward()
        returned.append(loss)
        return loss

    with pve.no_grad():
        result = opt.step(closure)
    assert result is returned[0]
    assert len(returned) == 3  # the first call plus one per iteration but the last
    assert np.abs(p.detach().numpy()).max() < 1.0


def test_optimum_already_reached_returns_without_a_step():
    p = pve.nn.Parameter(np.zeros(3, np.float32))
    opt = optim.LBFGS([p])

    def closure():
        p.grad = pve.tensor(np.zeros(3, np.float32))
        return pve.tensor(np.float32(1.0))

    assert float(opt.step(closure)) == 1.0
    assert opt.state[p] == {"func_evals": 1, "n_iter": 0}


@pytest.mark.parametrize("hp", [dict(), dict(line_search_fn="strong_wolfe", history_size=3)])
def test_resume_from_state_dict_is_bit_identical(hp):
    straight, _, _, _, _ = runner.run_lbfgs_pve("linear", dict(hp, max_iter=4), 5)
    first_out, _, _, first, params = runner.run_lbfgs_pve("linear", dict(hp, max_iter=4), 2)
    saved = first.state_dict()
    first.state[params[0]]["d"].numpy()[:] = 123.0  # the saved dict holds copies
    resumed_params = [pve.nn.Parameter(p.detach().numpy().copy()) for p in params]
    resumed = optim.LBFGS(resumed_params, **dict(hp, max_iter=4))
    resumed.load_state_dict(saved)
    out = []
    closure = problem.lbfgs_closure("linear", resumed_params, pve.tensor)
    for _ in range(3):
        resumed.step(closure)
        out.append(np.concatenate([p.detach().numpy().reshape(-1) for p in resumed_params]))
    np.testing.assert_array_equal(np.stack(first_out), np.stack(straight[:2]))
    np.testing.assert_array_equal(np.stack(out), np.stack(straight[2:]))


def test_validation_as_torch():
    p = [pve.nn.Parameter(np.zeros(2, np.float32))]
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.LBFGS(p, lr=-1)
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        optim.LBFGS([{"params": p}, {"params": [pve.nn.Parameter(np.zeros(2, np.float32))]}])
    opt = optim.LBFGS(p, line_search_fn="armijo")

    def closure():
        p[0].grad = pve.tensor(np.ones(2, np.float32))
        return pve.tensor(np.float32(1.0))

    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        opt.step(closure)
    with pytest.raises(TypeError):
        optim.LBFGS(p).step()
    assert optim.LBFGS(p).defaults == dict(
        lr=1, max_iter=20, max_eval=25, tolerance_grad=1e-7, tolerance_change=1e-9,
        history_size=100, line_search_fn=None)
    assert optim.LBFGS(p, max_iter=7).defaults["max_eval"] == 8


# ------------------------------------------------------------------ live torch
def _torch_lbfgs(torch, prob, hp, steps):
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in problem.lbfgs_initial(prob)]
    opt = torch.optim.LBFGS(params, **hp)
    closure = problem.lbfgs_closure(prob, params, torch.tensor)
    losses = [float(opt.step(closure)) for _ in range(steps)]
    return params, opt, losses


@pytest.mark.parametrize("index", range(len(configs.LBFGS_CONFIGS)), ids=IDS)
def test_state_and_counts_match_torch(index):
    """Losses, closure counts and the state's structure (keys, their order, the
    type and shape of every value) after one step and after all; the state's
    values too on Rosenbrock (whose trajectory is bit-identical). On the linear
    model the first step already converges, and there d, al and ro are made of
    rounding noise (the trajectories are compared in test_matches_torch_golden)."""
    torch = pytest.importorskip("torch")
    prob, hp, steps = configs.LBFGS_CONFIGS[index]
    for n in (1, steps):
        tparams, topt, tlosses = _torch_lbfgs(torch, prob, hp, n)
        out, losses, calls, opt, params = runner.run_lbfgs_pve(prob, hp, n)
        np.testing.assert_allclose(losses, tlosses, rtol=1e-5)
        tsd, psd = topt.state_dict(), opt.state_dict()
        assert psd["param_groups"] == tsd["param_groups"]
        assert list(psd["state"]) == list(tsd["state"]) == [0]
        tst, pst = tsd["state"][0], psd["state"][0]
        assert list(pst) == list(tst)
        for key in ("func_evals", "n_iter"):
            assert pst[key] == tst[key]
        check_values = prob == "rosenbrock"
        for key, value in tst.items():
            ours = pst[key]
            pairs = list(zip(ours, value)) if isinstance(value, list) else [(ours, value)]
            if isinstance(value, list):
                assert isinstance(ours, list) and len(ours) == len(value), key
            tensors = [b.numpy() for _, b in pairs if isinstance(b, torch.Tensor)]
            scale = max((float(np.abs(t).max()) for t in tensors if t.size), default=0.0)
            for a, b in pairs:
                if b is None:
                    assert a is None
                elif isinstance(b, torch.Tensor):
                    assert isinstance(a, pve.Tensor) and a.shape == tuple(b.shape), key
                    assert a.numpy().dtype == b.numpy().dtype
                    if check_values:
                        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6,
                                                   atol=1e-6 * scale, err_msg=key)
                else:
                    assert type(a) is type(b), (key, a, b)
                    if check_values:
                        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_torch_state_dict_loads_into_pve_and_continues():
    torch = pytest.importorskip("torch")
    hp = dict(line_search_fn="strong_wolfe", history_size=4, max_iter=5)
    tparams, topt, _ = _torch_lbfgs(torch, "linear", hp, 2)
    sd = topt.state_dict()
    params = [pve.nn.Parameter(p.detach().numpy().copy()) for p in tparams]
    opt = optim.LBFGS(params, **hp)
    opt.load_state_dict(sd)
    tclosure = problem.lbfgs_closure("linear", tparams, torch.tensor)
    closure = problem.lbfgs_closure("linear", params, pve.tensor)
    for _ in range(2):
        topt.step(tclosure)
        opt.step(closure)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert opt.state[params[0]]["n_iter"] == topt.state[tparams[0]]["n_iter"]


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_autograd_linear_model_matches_torch(line_search_fn):
    """A real closure: pve.nn.Linear + MSELoss through autograd vs torch's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 4)).astype(np.float32)
    y = rng.standard_normal((20, 2)).astype(np.float32)
    pm, tm = pve.nn.Linear(4, 2), torch.nn.Linear(4, 2)
    with torch.no_grad():
        tm.weight.copy_(torch.from_numpy(pm.weight.detach().numpy()))
        tm.bias.copy_(torch.from_numpy(pm.bias.detach().numpy()))
    popt = optim.LBFGS(pm.parameters(), line_search_fn=line_search_fn, max_iter=10)
    topt = torch.optim.LBFGS(tm.parameters(), line_search_fn=line_search_fn, max_iter=10)
    px, py, tx, ty = pve.tensor(x), pve.tensor(y), torch.from_numpy(x), torch.from_numpy(y)

    def pclosure():
        popt.zero_grad()
        loss = pve.nn.functional.mse_loss(pm(px), py)
        loss.backward()
        return loss

    def tclosure():
        topt.zero_grad()
        loss = torch.nn.functional.mse_loss(tm(tx), ty)
        loss.backward()
        return loss

    for _ in range(3):
        lp, lt = popt.step(pclosure), topt.step(tclosure)
        np.testing.assert_allclose(float(lp), float(lt.detach()), rtol=1e-4)
    np.testing.assert_allclose(pm.weight.detach().numpy(), tm.weight.detach().numpy(),
                               rtol=1e-3, atol=1e-4)
