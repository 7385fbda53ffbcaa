"""Binding checks and direct kernel tests (every ISA vs the scalar kernel)."""

from __future__ import annotations

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import _C
from pyvision_engine.nn.arena import aligned_empty
from reference import optim_reference as R


def test_every_optimizer_kernel_has_all_isa_slots():
    for name in ["optim_sgd", "optim_adam", "optim_adamax", "optim_nadam", "optim_radam",
                 "optim_rmsprop", "optim_adagrad", "optim_adadelta", "optim_rprop", "optim_asgd",
                 "optim_adafactor", "optim_lookahead_sync",
                 "grad_norm_part", "grad_scale", "grad_clamp", "triad"]:
        assert _C.kernel_isas(name) == ["scalar", "avx2", "avx512"][:len(_C.supported_isas())]


def test_bindings_check_arrays():
    p, g, s = (np.zeros(10, np.float32) for _ in range(3))
    with pytest.raises(TypeError, match="float32"):
        _C.optim_adagrad(p, g.astype(np.float64), s, -0.1, 1e-10, 0.0, False)
    with pytest.raises(ValueError, match="expected 10"):
        _C.optim_adagrad(p, g, np.zeros(9, np.float32), -0.1, 1e-10, 0.0, False)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.optim_adagrad(np.zeros(20, np.float32)[::2], g, s, -0.1, 1e-10, 0.0, False)
    ro = np.zeros(10, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _C.optim_adagrad(ro, g, s, -0.1, 1e-10, 0.0, False)
    with pytest.raises(ValueError, match="required"):
        _C.optim_sgd(p, g, None, 0.1, 0.9, 0.0, 0.0, False, False, True)
    with pytest.raises(ValueError, match="required"):
        _C.optim_adam(p, g, s, s.copy(), None, 0.1, 0.999, 0.001, 0, 1, -0.1, 1.0, 1e-8,
                      False, False, True)


@pytest.mark.parametrize("n", [1, 15, 17, 100_003, 1_000_001])
def test_vector_kernels_match_scalar_kernel(n):
    """Each ISA's Adam/RMSprop step on long buffers (threads, tails) against the
    scalar kernel: identical except FMA rounding (a few ulp)."""
    rng = np.random.default_rng(n)
    base = [rng.standard_normal(n).astype(np.float32) for _ in range(4)]
    base[3] = np.abs(base[3])  # exp_avg_sq >= 0
    results = {}
    for isa in _C.supported_isas():
        previous = _C.active_isa()
        _C.set_isa(isa)
        try:
            p, g, m, v = (b.copy() for b in base)
            _C.optim_adam(p, g, m, v, None, 0.1, 0.999, 0.001, 0.01, 1.0, -1e-3, 0.5, 1e-8,
                          False, False, False)
            q, h, s = base[0].copy(), base[1].copy(), base[3].copy()
            _C.optim_rmsprop(q, h, s, None, None, 0.99, 0.01, 1e-8, 0.0, 0.0, -0.01, False, False)
            results[isa] = (p, m, v, q, s)
        finally:
            _C.set_isa(previous)
    for isa, arrays in results.items():
        for a, b in zip(arrays, results["scalar"]):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_grad_norm_and_triad_kernels(isa):
    rng = np.random.default_rng(0)
    g = rng.standard_normal(1_000_003).astype(np.float32)
    np.testing.assert_allclose(_C.grad_norm_part(g, 2.0), float((g.astype(np.float64) ** 2).sum()),
                               rtol=1e-6)
    assert _C.grad_norm_part(g, float("inf")) == float(np.abs(g).max())
    g[777] = np.nan
    assert np.isnan(_C.grad_norm_part(g, float("inf")))
    assert np.isnan(_C.grad_norm_part(g, 2.0))
    a, b, c = aligned_empty(1000), aligned_empty(1000), aligned_empty(1000)
    b[:] = 1.0
    c[:] = 2.0
    _C.triad(a, b, c, 0.5, True, 2)
    np.testing.assert_array_equal(a, np.full(1000, 2.0, np.float32))


def test_centered_rmsprop_with_an_overflowing_gradient(isa):
    # g = 3e38: g^2 and the square average overflow to inf in float32. torch's
    # fused addcmul computes s - g_avg^2 with one rounding (inf - finite = inf),
    # so the step g / inf is 0; rounding g_avg^2 to inf first (the scalar build's
    # plain multiply-add) gave inf - inf = NaN. The other element steps normally.
    p = pve.nn.Parameter(np.array([1.0, 2.0], np.float32))
    opt = pve.optim.RMSprop([p], lr=0.01, centered=True)
    p.grad = pve.tensor(np.array([3e38, 1.0], np.float32))
    opt.step()
    got = p.detach().numpy()
    assert got[0] == 1.0
    # (s = 0.01, g_avg = 0.01: step = lr * g / (sqrt(s - g_avg^2) + eps))
    want = 2.0 - 0.01 * 1.0 / (np.sqrt(0.01 - 0.01**2) + 1e-8)
    np.testing.assert_allclose(got[1], want, rtol=1e-6)


# Shapes that take each of the Adafactor kernel's paths with 2 threads: a
# Linear weight (one matrix, rows split across threads, column sums added in
# thread order), conv weights (3x3 and 1x1: whole small matrices per thread),
# a batch of big matrices, and long / short 1-D tensors (full variance).
# (Each has at least 2 x 32K elements, so that 2 threads share it.)
ADAFACTOR_SHAPES = [(400, 211), (128, 64, 3, 3), (600, 128, 1, 1), (3, 200, 130), (70_001,), (5,), ()]


@pytest.mark.parametrize("hp", [dict(lr=0.01), dict(lr=0.005, beta2_decay=-0.6, eps=(1e-6, 1e-2),
                                                    d=1.5, weight_decay=0.01, maximize=True)])
@pytest.mark.parametrize("threads", [1, 2])
def test_adafactor_kernel_matches_reference_on_big_tensors(hp, threads, isa):
    """The per-tensor Adafactor kernel on tensors big enough to be threaded,
    at every ISA, against the float64 numpy reference: 4 steps."""
    rng = np.random.default_rng(7)
    start = [rng.standard_normal(s).astype(np.float32) for s in ADAFACTOR_SHAPES]
    params = [pve.nn.Parameter(x.copy()) for x in start]
    ref_params = [x.copy() for x in start]
    opt, ref = pve.optim.Adafactor(params, **hp), R.make("Adafactor", **hp)
    previous = pve.get_num_threads()
    pve.set_num_threads(threads)
    try:
        for _ in range(4):
            grads = [(rng.standard_normal(s) * rng.uniform(0.01, 2.0)).astype(np.float32)
                     for s in ADAFACTOR_SHAPES]
            for p, g in zip(params, grads):
                p.grad = pve.tensor(g)
            opt.step()
            ref.step(ref_params, grads)
    finally:
        pve.set_num_threads(previous)
    for shape, p, r in zip(ADAFACTOR_SHAPES, params, ref_params):
        # Sums in another order (threads, vectors) and FMAs: a few ulp after 4 steps.
        np.testing.assert_allclose(p.detach().numpy(), r, rtol=2e-6, atol=1e-7, err_msg=str(shape))
    for i, shape in enumerate(ADAFACTOR_SHAPES):
        st = opt.state[params[i]]
        if len(shape) > 1:
            np.testing.assert_allclose(st["row_var"].numpy(), ref.state[i]["row_var"], rtol=1e-6)
            np.testing.assert_allclose(st["col_var"].numpy(), ref.state[i]["col_var"], rtol=1e-6)
        else:
            np.testing.assert_allclose(st["variance"].numpy(), ref.state[i]["variance"], rtol=1e-6)


def test_adafactor_kernel_checks_its_arrays():
    p, g = np.zeros((4, 6), np.float32), np.zeros((4, 6), np.float32)
    rv, cv = np.zeros((4, 1), np.float32), np.zeros((1, 6), np.float32)
    args = dict(lerp_weight=0.1, eps1=1e-7, eps1_sq=1e-14, decay=1.0, decay_on=False,
                maximize=False, eps2=1e-3, rho=0.01, d=1.0)
    _C.optim_adafactor(p, g, rv, cv, None, **args)
    with pytest.raises(ValueError, match="row_var is required"):
        _C.optim_adafactor(p, g, None, cv, None, **args)
    with pytest.raises(ValueError, match="col_var has 5 elements, expected 6"):
        _C.optim_adafactor(p, g, rv, np.zeros(5, np.float32), None, **args)
    with pytest.raises(ValueError, match="variance is required"):
        _C.optim_adafactor(p.reshape(-1), g.reshape(-1), None, None, None, **args)
    with pytest.raises(ValueError, match="dimensions"):
        _C.optim_adafactor(p, g.reshape(-1), rv, cv, None, **args)


def test_adafactor_nan_gradient_propagates(isa):
    """A NaN in the gradient reaches the parameter as in the reference (torch's
    arithmetic): no crash, the same NaN positions and the same finite values."""
    start = np.linspace(-1, 1, 1200, dtype=np.float32).reshape(40, 30)
    for shape in [(40, 30), (1200,)]:
        p = pve.nn.Parameter(start.reshape(shape).copy())
        ref_p = [start.reshape(shape).copy()]
        opt, ref = pve.optim.Adafactor([p]), R.make("Adafactor")
        g = np.full(shape, 0.1, np.float32).reshape(-1)
        g[3 * 30 + 4] = np.nan
        g = g.reshape(shape)
        p.grad = pve.tensor(g)
        opt.step()
        ref.step(ref_p, [g])
        got = p.detach().numpy()
        assert np.isnan(got).any()
        np.testing.assert_allclose(got, ref_p[0], rtol=1e-6, atol=1e-7, equal_nan=True)
