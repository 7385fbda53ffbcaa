"""optim.Muon against torch.optim.Muon: the bfloat16 pieces (rounding, GEMM, Newton-Schulz)
bit for bit, trajectories over 25+ steps equal to torch's, state_dict exchange and
resume, hyperparameter handling and errors; plus properties that need no torch (the
rounding's ties, the iteration's orthogonalisation, the learning-rate adjustment)."""

import math

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.optim import Muon
from pyvision_engine.optim.muon import (adjust_lr, bf16_addmm, to_bfloat16,
                                        zeropower_via_newtonschulz)

rng = np.random.default_rng(4)
COEFFS = (3.4445, -4.7750, 2.0315)


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="torch parity tests need torch")


@pytest.fixture
def exact_torch(torch):
    """torch, when its CPU bfloat16 GEMM sums as the emulation does (oneDNN's
    AVX512-BF16 dot products, pairs odd term first); other kernels order the float32
    sums differently, and a bfloat16 rounding can then differ."""
    # Differing orders show in only a few sums in a thousand (AMX tiles, for one), so
    # the probe takes shapes as large as the tests' and a fixed generator.
    gen = torch.Generator().manual_seed(0)
    for m, k, n in [(24, 40, 24), (33, 17, 9), (64, 64, 64), (256, 64, 256), (64, 512, 64)]:
        a = torch.randn(m, k, generator=gen).bfloat16()
        b = torch.randn(k, n, generator=gen).bfloat16()
        ours = bf16_addmm(None, a.float().numpy(), b.float().numpy())
        if not np.array_equal(ours, (a @ b).float().numpy()):
            pytest.skip("torch's bfloat16 GEMM on this CPU sums in another order")
    return torch


def bf16_bits(x):
    return (np.asarray(x, np.float32).view(np.uint32) >> 16).astype(np.uint16)


# ---------------------------------------------------------------- no torch needed
def test_bfloat16_rounding_ties_to_even_and_specials():
    bits = np.array([0x3F800000, 0x3F808000, 0x3F818000, 0x3F807FFF, 0x3F808001,
                     0x7F7FFFFF, 0xFF800000, 0x00000001, 0x80000000], np.uint32)
    want = np.array([0x3F80, 0x3F80, 0x3F82, 0x3F80, 0x3F81,
                     0x7F80, 0xFF80, 0x0000, 0x8000], np.uint16)  # max float rounds to inf
    np.testing.assert_array_equal(bf16_bits(to_bfloat16(bits.view(np.float32))), want)
    assert np.isnan(to_bfloat16(np.array([np.nan], np.float32))[0])
    x = rng.standard_normal(1000).astype(np.float32)
    r = to_bfloat16(x)
    assert np.all(r.view(np.uint32) & 0xFFFF == 0)  # bfloat16 values
    assert np.all(np.abs(r - x) <= np.abs(x) * 2.0 ** -8)  # within half a bfloat16 ulp


def test_bf16_addmm_is_exact_products_summed_in_float32():
    a = to_bfloat16(rng.standard_normal((5, 6)).astype(np.float32))
    b = to_bfloat16(rng.standard_normal((6, 4)).astype(np.float32))
    c = to_bfloat16(rng.standard_normal((5, 4)).astype(np.float32))
    got = bf16_addmm(c, a, b, beta=-1.5, alpha=0.75)
    exact = -1.5 * c.astype(np.float64) + 0.75 * (a.astype(np.float64) @ b)
    np.testing.assert_allclose(got, exact, rtol=2.0 ** -8, atol=1e-6)
    assert np.all(got.view(np.uint32) & 0xFFFF == 0)


@pytest.mark.parametrize("shape", [(16, 32), (32, 16), (24, 24), (3, 50)])
def test_newton_schulz_orthogonalises(shape):
    g = rng.standard_normal(shape).astype(np.float32)
    o = zeropower_via_newtonschulz(g, COEFFS, 5, 1e-7)
    assert o.shape == shape and o.dtype == np.float32
    s = np.linalg.svd(o.astype(np.float64), compute_uv=False)
    # the quintic iteration maps every singular value into about (0.6, 1.2)
    assert s.min() > 0.6 and s.max() < 1.2
    # g's singular vectors, with new singular values: U^T O V is (nearly) diagonal
    u, _, vt = np.linalg.svd(g.astype(np.float64), full_matrices=False)
    m = u.T @ o @ vt.T
    diagonal = np.diag(m)
    assert diagonal.min() > 0.6 and diagonal.max() < 1.2
    assert np.abs(m - np.diag(diagonal)).max() < 0.05


def test_newton_schulz_of_zero_is_zero_and_checks():
    np.testing.assert_array_equal(zeropower_via_newtonschulz(np.zeros((3, 4), np.float32),
                                                             COEFFS, 5, 1e-7), 0)
    with pytest.raises(ValueError, match="less than 100"):
        zeropower_via_newtonschulz(np.ones((2, 2), np.float32), COEFFS, 100, 1e-7)
    with pytest.raises(ValueError, match="2D matrix"):
        zeropower_via_newtonschulz(np.ones(3, np.float32), COEFFS, 5, 1e-7)
    with pytest.raises(ValueError, match="exactly 3 values"):
        zeropower_via_newtonschulz(np.ones((2, 2), np.float32), (1.0, 2.0), 5, 1e-7)


def test_adjust_lr():
    assert adjust_lr(0.1, None, (8, 2)) == pytest.approx(0.2)
    assert adjust_lr(0.1, "original", (2, 8)) == 0.1
    assert adjust_lr(0.1, "match_rms_adamw", (9, 16)) == pytest.approx(0.1 * 0.2 * 4)


def test_descends_a_least_squares_problem():
    a = rng.standard_normal((20, 8)).astype(np.float32)
    target = rng.standard_normal((20, 6)).astype(np.float32)
    w = pve.nn.Parameter(np.zeros((8, 6), np.float32))
    opt = Muon([w], lr=0.05, weight_decay=0.0)
    losses = []
    for _ in range(40):
        residual = a @ w.detach().numpy() - target
        losses.append(float((residual ** 2).mean()))
        w.grad = pve.tensor(2 * a.T @ residual / residual.size)
        opt.step()
    best = a @ np.linalg.lstsq(a.astype(np.float64), target, rcond=None)[0] - target
    optimum = float((best ** 2).mean())
    assert losses[-1] - optimum < 0.1 * (losses[0] - optimum)


# ---------------------------------------------------------------- hyperparameters
def test_defaults_groups_and_state():
    w = pve.nn.Parameter(np.ones((3, 4), np.float32))
    v = pve.nn.Parameter(np.ones((4, 2), np.float32))
    opt = Muon([{"params": [w]}, {"params": [v], "lr": 0.5}])
    assert opt.defaults == dict(lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                                ns_coefficients=COEFFS, eps=1e-7, ns_steps=5,
                                adjust_lr_fn=None)
    assert opt.param_groups[1]["lr"] == 0.5
    w.grad = pve.tensor(rng.standard_normal((3, 4)).astype(np.float32))
    opt.step()  # v has no gradient: skipped, no state
    assert list(opt.state[w]) == ["momentum_buffer"] and len(opt.state[v]) == 0
    np.testing.assert_allclose(opt.state[w]["momentum_buffer"].numpy(),
                               0.05 * w.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("kwargs,message", [
    (dict(lr=-1.0), "Learning rate should be >= 0 but is: -1.0"),
    (dict(momentum=-0.5), "momentum should be >= 0 but is: -0.5"),
    (dict(weight_decay=-0.1), "weight decay should be >= 0 but is: -0.1"),
    (dict(adjust_lr_fn="linear"), "Adjust learning rate function linear is not supported"),
])
def test_constructor_errors_as_torch(kwargs, message, torch):
    with pytest.raises(ValueError, match=message):
        Muon([pve.nn.Parameter(np.ones((2, 2), np.float32))], **kwargs)
    with pytest.raises(ValueError, match=message):
        torch.optim.Muon([torch.nn.Parameter(torch.ones(2, 2))], **kwargs)


def test_only_2d_parameters(torch):
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        Muon([pve.nn.Parameter(np.ones(3, np.float32))])
    with pytest.raises(ValueError, match="Muon only supports 2D parameters"):
        torch.optim.Muon([torch.nn.Parameter(torch.ones(3))])
    # a group added later is checked at the step, as torch
    for lib, make in ((pve, lambda s: pve.nn.Parameter(np.ones(s, np.float32))),
                      (torch, lambda s: torch.nn.Parameter(torch.ones(s)))):
        opt = (Muon if lib is pve else torch.optim.Muon)([make((2, 2))])
        p = make((3,))
        opt.add_param_group({"params": [p]})
        p.grad = lib.ones(3)
        with pytest.raises(ValueError, match="Param gradient must be a 2D matrix"):
            opt.step()


@pytest.mark.parametrize("group,message", [(dict(ns_steps=100), "less than 100"),
                                           (dict(ns_coefficients=(1.0, 2.0)), "exactly 3")])
def test_step_errors_as_torch(group, message, torch):
    for lib, make in ((pve, lambda: pve.nn.Parameter(np.ones((2, 3), np.float32))),
                      (torch, lambda: torch.nn.Parameter(torch.ones(2, 3)))):
        p = make()
        opt = (Muon if lib is pve else torch.optim.Muon)([p], **group)
        p.grad = lib.ones(2, 3)
        with pytest.raises(ValueError, match=message):
            opt.step()


# ---------------------------------------------------------------- torch: building blocks
@pytest.mark.parametrize("shape", [(7, 9), (32, 64), (64, 32), (1, 5), (40, 40)])
def test_bfloat16_rounding_and_gemm_are_torchs(shape, exact_torch):
    torch = exact_torch
    x = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3, shape)).astype(np.float32)
    np.testing.assert_array_equal(to_bfloat16(x), torch.tensor(x).bfloat16().float().numpy())
    a = torch.tensor(x).bfloat16()
    for left, right in ((a, a.T), (a.T, a)):  # X X^T and X^T X: contiguous and transposed
        c = torch.randn(left.shape[0], right.shape[1]).bfloat16()
        l32, r32, c32 = (t.float().numpy() for t in (left, right, c))
        np.testing.assert_array_equal(bf16_addmm(None, l32, r32), (left @ right).float().numpy())
        want = torch.addmm(c, left, right, beta=-4.775, alpha=2.0315).float().numpy()
        np.testing.assert_array_equal(bf16_addmm(c32, l32, r32, beta=-4.775, alpha=2.0315), want)


@pytest.mark.parametrize("shape", [(16, 32), (32, 16), (64, 64), (5, 3), (1, 40), (100, 8)])
@pytest.mark.parametrize("steps,coeffs,eps", [(5, COEFFS, 1e-7), (3, (2.0, -1.5, 0.5), 1e-3)])
def test_newton_schulz_is_torchs(shape, steps, coeffs, eps, exact_torch):
    from torch.optim._muon import _zeropower_via_newtonschulz
    g = (rng.standard_normal(shape) * 3).astype(np.float32)
    want = _zeropower_via_newtonschulz(exact_torch.tensor(g), coeffs, steps, eps)
    np.testing.assert_array_equal(zeropower_via_newtonschulz(g, coeffs, steps, eps),
                                  want.float().numpy())


# ---------------------------------------------------------------- torch: trajectories
def grads_of(params, targets):
    """A smooth non-quadratic objective's gradient at the current parameters."""
    return [(2 * (p - t) + np.sin(3 * p)).astype(np.float32) for p, t in zip(params, targets)]


def run_both(torch, shapes, steps, groups=None, **hp):
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    targets = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    tp = [torch.nn.Parameter(torch.tensor(a)) for a in init]
    pp = [pve.nn.Parameter(a.copy()) for a in init]
    if groups:  # per-group options: [{"idx": [...], **options}]
        t_arg = [dict(g, params=[tp[i] for i in g["idx"]]) for g in groups]
        p_arg = [dict(g, params=[pp[i] for i in g["idx"]]) for g in groups]
        for a in t_arg + p_arg:
            del a["idx"]
    else:
        t_arg, p_arg = tp, pp
    topt, popt = torch.optim.Muon(t_arg, **hp), Muon(p_arg, **hp)
    step_both(torch, topt, popt, tp, pp, targets, steps, check_each=True)
    return topt, popt, tp, pp, targets


def step_both(torch, topt, popt, tp, pp, targets, steps, check_each=False):
    """``steps`` steps of both optimizers with the same gradients (of pve's parameters)."""
    for step in range(steps):
        for t, p, g in zip(tp, pp, grads_of([p.detach().numpy() for p in pp], targets)):
            t.grad, p.grad = torch.tensor(g), pve.tensor(g)
        topt.step()
        popt.step()
        if check_each:
            for t, p in zip(tp, pp):
                np.testing.assert_array_equal(p.detach().numpy(), t.detach().numpy(),
                                              err_msg=f"step {step}")


TRAJECTORIES = [
    ([(8, 12), (12, 8), (16, 16)], dict(lr=0.02)),
    ([(8, 12), (5, 7)], dict(lr=0.02, nesterov=False, weight_decay=0.0)),
    ([(32, 64), (64, 32)], dict(lr=0.05, momentum=0.9, adjust_lr_fn="match_rms_adamw")),
    ([(3, 40), (1, 9)], dict(lr=0.01, ns_coefficients=(2.0, -1.5, 0.5), eps=1e-4,
                             ns_steps=3, adjust_lr_fn="original")),
    ([(24, 10)], dict(lr=0.03, momentum=0.0, weight_decay=0.5)),
]


@pytest.mark.parametrize("shapes,hp", TRAJECTORIES)
def test_trajectories_equal_torchs(shapes, hp, exact_torch):
    run_both(exact_torch, shapes, 25, **hp)


def test_trajectories_with_groups_lr_changes_and_tensor_lr(exact_torch):
    torch = exact_torch
    groups = [{"idx": [0], "lr": 0.03, "nesterov": False}, {"idx": [1, 2], "weight_decay": 0.0}]
    topt, popt, tp, pp, targets = run_both(torch, [(6, 10), (10, 6), (4, 4)], 10,
                                           groups=groups, lr=0.01)
    for opt in (topt, popt):  # a changed lr takes effect, as torch
        opt.param_groups[1]["lr"] = 0.07
    step_both(torch, topt, popt, tp, pp, targets, 12)
    for t, p in zip(tp, pp):
        np.testing.assert_array_equal(p.detach().numpy(), t.detach().numpy())
    # a one-element tensor lr
    w0 = rng.standard_normal((5, 6)).astype(np.float32)
    tw, pw = torch.nn.Parameter(torch.tensor(w0)), pve.nn.Parameter(w0.copy())
    topt = torch.optim.Muon([tw], lr=torch.tensor(0.02))
    popt = Muon([pw], lr=pve.tensor(np.float32(0.02)))
    for _ in range(5):
        g = grads_of([pw.detach().numpy()], [np.zeros((5, 6), np.float32)])[0]
        tw.grad, pw.grad = torch.tensor(g), pve.tensor(g)
        topt.step()
        popt.step()
    np.testing.assert_array_equal(pw.detach().numpy(), tw.detach().numpy())


# ---------------------------------------------------------------- state dicts
def test_state_dict_structure_is_torchs(exact_torch):
    topt, popt, _, _, _ = run_both(exact_torch, [(4, 6), (6, 4)], 3, lr=0.02)
    ts, ps = topt.state_dict(), popt.state_dict()
    assert ps["param_groups"] == ts["param_groups"]
    assert list(ps["state"]) == list(ts["state"])
    for k in ts["state"]:
        assert list(ps["state"][k]) == list(ts["state"][k]) == ["momentum_buffer"]
        np.testing.assert_array_equal(ps["state"][k]["momentum_buffer"].numpy(),
                                      ts["state"][k]["momentum_buffer"].numpy())


def test_loads_torchs_state_dict_and_continues_identically(exact_torch):
    torch = exact_torch
    topt, popt, tp, pp, targets = run_both(torch, [(8, 12), (12, 8)], 7, lr=0.02)
    fresh = [pve.nn.Parameter(t.detach().numpy().copy()) for t in tp]
    other = Muon(fresh, lr=0.5)
    other.load_state_dict(topt.state_dict())
    assert other.param_groups[0]["lr"] == 0.02
    step_both(torch, topt, other, tp, fresh, targets, 20)
    for t, p in zip(tp, fresh):
        np.testing.assert_array_equal(p.detach().numpy(), t.detach().numpy())


def test_resume_is_bit_identical():
    shapes = [(8, 12), (12, 8), (6, 6)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    targets = [rng.standard_normal(s).astype(np.float32) for s in shapes]

    def steps(opt, params, count):
        for _ in range(count):
            for p, g in zip(params, grads_of([p.detach().numpy() for p in params], targets)):
                p.grad = pve.tensor(g)
            opt.step()

    straight = [pve.nn.Parameter(a.copy()) for a in init]
    steps(Muon(straight, lr=0.02, weight_decay=0.05), straight, 30)
    first = [pve.nn.Parameter(a.copy()) for a in init]
    opt = Muon(first, lr=0.02, weight_decay=0.05)
    steps(opt, first, 13)
    saved = opt.state_dict()
    resumed = [pve.nn.Parameter(p.detach().numpy().copy()) for p in first]
    opt2 = Muon(resumed, lr=0.02, weight_decay=0.05)
    opt2.load_state_dict(saved)
    steps(opt2, resumed, 17)
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert math.isfinite(float(np.abs(resumed[0].detach().numpy()).sum()))


def _signature(fn):
    import inspect
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_api_as_torchs_and_loaded_lazily(torch):
    assert _signature(Muon.__init__) == _signature(torch.optim.Muon.__init__)
    assert "Muon" in pve.optim.__all__ and "Muon" in dir(pve.optim)
    from subprocess_env import run_python
    done = run_python(["-c", "import sys, pyvision_engine; "
                       "assert 'pyvision_engine.optim.muon' not in sys.modules"])
    assert done.returncode == 0, done.stderr
