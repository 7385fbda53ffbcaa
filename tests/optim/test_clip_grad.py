"""clip_grad_norm_ / clip_grad_value_: torch semantics, fused over the arena."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import optim
from pyvision_engine.nn.utils import clip_grad_norm_, clip_grad_value_
from pyvision_engine.nn.utils.clip_grad import _grad_buffers

import runner

SHAPES = [(5, 7), (37,), (1,), (300, 301)]


def _setup(arena: bool, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    params = [pve.nn.Parameter(rng.standard_normal(s).astype(np.float32)) for s in SHAPES]
    grads = [(rng.standard_normal(s) * scale).astype(np.float32) for s in SHAPES]
    if arena:
        optim.SGD(params, lr=0.1)  # builds the arena
    runner.feed_grads(params, grads, via_autograd=arena)
    return params, grads


@pytest.mark.parametrize("arena", [True, False], ids=["arena", "per-tensor"])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_numpy(arena, norm_type, isa):
    params, grads = _setup(arena)
    assert (len(_grad_buffers(params)) == 1) == arena  # one fused reduction over the arena
    flat = np.concatenate([g.reshape(-1) for g in grads]).astype(np.float64)
    expected = np.abs(flat).max() if norm_type == math.inf else \
        (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    total = clip_grad_norm_(params, max_norm=1.5, norm_type=norm_type)
    assert isinstance(total, pve.Tensor) and total.shape == () and total.dtype == np.float32
    np.testing.assert_allclose(float(total.item()), expected, rtol=2e-6)
    coef = np.float32(1.5) / (np.float32(expected) + np.float32(1e-6))
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=2e-6, atol=1e-9)


def test_clip_grad_norm_leaves_small_gradients_alone():
    params, grads = _setup(True, scale=1e-4)
    total = clip_grad_norm_(params, max_norm=10.0)
    assert float(total.item()) < 10.0
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad.numpy(), g)  # coefficient clamped to 1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_norm(bad):
    params, grads = _setup(True)
    params[1].grad.numpy()[4] = bad
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_(params, 1.0)  # no error: scales by the non-finite norm (torch)
    assert not np.isfinite(float(total.item()))
    inf_total = clip_grad_norm_(params, 1.0, norm_type=math.inf)
    assert math.isnan(float(inf_total.item())) or bad == np.inf


def test_clip_grad_value_():
    params, grads = _setup(True)
    params[0].grad.numpy()[0, 0] = np.nan
    clip_grad_value_(params, 0.5)
    for p, g in zip(params, grads):
        out = p.grad.numpy()
        assert np.nanmax(np.abs(out)) <= 0.5
    assert np.isnan(params[0].grad.numpy()[0, 0])
    np.testing.assert_array_equal(params[2].grad.numpy(), np.clip(grads[2], -0.5, 0.5))


def test_params_without_grad_and_single_tensor():
    p = pve.nn.Parameter(np.ones(4, np.float32))
    q = pve.nn.Parameter(np.ones(4, np.float32))
    p.grad = pve.tensor(np.full(4, 3.0, np.float32))
    total = clip_grad_norm_([p, q], 1.0)
    np.testing.assert_allclose(float(total.item()), 6.0)
    total = clip_grad_norm_(p, 100.0)
    np.testing.assert_allclose(float(total.item()), 1.0, rtol=1e-6)
    assert float(clip_grad_norm_([q], 1.0).item()) == 0.0


def test_torch_parity():
    torch = pytest.importorskip("torch")
    params, grads = _setup(True, seed=5)
    tparams = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES]
    for t, g in zip(tparams, grads):
        t.grad = torch.from_numpy(g.copy())
    ours = clip_grad_norm_(params, 2.0)
    theirs = torch.nn.utils.clip_grad_norm_(tparams, 2.0)
    np.testing.assert_allclose(float(ours.item()), float(theirs), rtol=1e-6)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("arena", [True, False], ids=["arena", "per-tensor"])
def test_norm_zero_and_minus_inf_are_norms_of_the_per_tensor_norms(arena):
    # torch takes the norm_type-norm of the per-tensor norms: for 0 that is the
    # number of gradients with a nonzero element, for -inf the smallest min |g|
    # (the arena's zero padding must not count).
    params, grads = _setup(arena)
    grads[2][...] = 0.0
    for p in params:  # feed again (through autograd it would accumulate)
        p.grad = None
    runner.feed_grads(params, grads, via_autograd=arena)
    assert (len(_grad_buffers(params)) == 1) == arena
    total = clip_grad_norm_(params, max_norm=100.0, norm_type=0)
    assert float(total.item()) == 3.0  # four gradients, one all zeros
    total = clip_grad_norm_(params, max_norm=100.0, norm_type=-math.inf)
    assert float(total.item()) == 0.0
    total = clip_grad_norm_(params[:2], max_norm=100.0, norm_type=-math.inf)
    expected = min(np.abs(g).min() for g in grads[:2])
    assert float(total.item()) == pytest.approx(float(expected), rel=1e-6)


def test_get_total_norm_and_clip_grads_with_norm_():
    from pyvision_engine.nn.utils import clip_grads_with_norm_, get_total_norm

    params, grads = _setup(False)
    total = get_total_norm([p.grad for p in params])
    flat = np.concatenate([g.reshape(-1) for g in grads]).astype(np.float64)
    assert float(total.item()) == pytest.approx(np.sqrt((flat ** 2).sum()), rel=1e-5)
    clip_grads_with_norm_(params, 1.0, total)
    scale = np.float32(1.0) / (np.float32(total.item()) + np.float32(1e-6))
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * scale, rtol=1e-6)
    with pytest.warns(UserWarning, match="empty generator"):
        clip_grad_norm_((p for p in []), 1.0)


def test_torch_parity_all_norm_types():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal((4, 5)).astype(np.float32), None,
             (rng.standard_normal(7) * 3).astype(np.float32), np.zeros(3, np.float32)]
    for norm_type in [2, 1.0, math.inf, 0.5, 3, 0, -math.inf, -1.0]:
        for single in (False, True):
            tparams = [torch.nn.Parameter(torch.zeros(3 if g is None else g.shape)) for g in grads]
            pparams = [pve.nn.Parameter(np.zeros(3 if g is None else g.shape, np.float32))
                       for g in grads]
            for tp, pp, g in zip(tparams, pparams, grads):
                if g is not None:
                    tp.grad = torch.from_numpy(g.copy())
                    pp.grad = pve.tensor(g.copy())
            theirs = torch.nn.utils.clip_grad_norm_(tparams[0] if single else tparams, 0.5,
                                                    norm_type=norm_type)
            ours = clip_grad_norm_(pparams[0] if single else pparams, 0.5, norm_type=norm_type)
            assert ours.shape == tuple(theirs.shape) and ours.dtype == np.float32
            assert float(ours.item()) == pytest.approx(theirs.item(), rel=1e-6), norm_type
            for tp, pp in zip(tparams, pparams):
                if tp.grad is not None:
                    np.testing.assert_allclose(pp.grad.numpy(), tp.grad.numpy(), rtol=1e-5,
                                               atol=1e-7)
        theirs = torch.nn.utils.get_total_norm([torch.from_numpy(g) for g in grads if g is not None],
                                               norm_type)
        ours = pve.nn.utils.get_total_norm([pve.tensor(g) for g in grads if g is not None],
                                           norm_type)
        assert float(ours.item()) == pytest.approx(theirs.item(), rel=1e-6), norm_type
