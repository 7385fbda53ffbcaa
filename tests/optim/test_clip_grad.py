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


def _padding(params):
    """The elements of the arena span that belong to no gradient (its zero padding)."""
    (span,) = _grad_buffers(params)
    mask = np.ones(span.size, bool)
    for p in params:
        start = (p.grad._data.ctypes.data - span.ctypes.data) // 4
        mask[start:start + p.grad.numel()] = False
    return span[mask]


@pytest.mark.parametrize("arena", [True, False], ids=["arena", "per-tensor"])
@pytest.mark.parametrize("norm_type", [-1.0, -0.5, -2.0, -math.inf, 0.0])
def test_norms_of_order_up_to_zero_ignore_arena_padding(arena, norm_type):
    # For p < 0 a zero adds |0|^p = inf: counting the arena's zero padding made
    # the total 0 and the clip a no-op. Only the gradients' own elements count.
    params, grads = _setup(arena)
    assert (len(_grad_buffers(params)) == 1) == arena
    flat = np.abs(np.concatenate([g.reshape(-1) for g in grads]).astype(np.float64))
    if norm_type == 0.0:
        expected = float(len(grads))  # gradients with a nonzero element
    elif norm_type == -math.inf:
        expected = flat.min()
    else:
        expected = (flat ** norm_type).sum() ** (1 / norm_type)
    max_norm = expected / 2
    total = clip_grad_norm_(params, max_norm=max_norm, norm_type=norm_type)
    np.testing.assert_allclose(float(total.item()), expected, rtol=2e-6)
    coef = np.float32(max_norm) / (np.float32(expected) + np.float32(1e-6))
    assert coef < 0.6  # it clips
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=2e-6, atol=1e-12)


def test_negative_norm_of_infinite_gradients_is_inf():
    # Every |g|^p is 0 for p < 0: torch's total is inf (0 ** (1/p)), not an error.
    for arena in (True, False):
        grads = [np.array([np.inf, -np.inf], np.float32), np.array([np.inf], np.float32)]
        params = [pve.nn.Parameter(np.zeros(g.shape, np.float32)) for g in grads]
        if arena:
            optim.SGD(params, lr=0.1)
        runner.feed_grads(params, grads, via_autograd=False)
        assert float(clip_grad_norm_(params, 1.0, norm_type=-1.0).item()) == math.inf


@pytest.mark.parametrize("norm_type", [-1.0, -0.5, -math.inf, math.inf])
def test_norm_with_an_empty_gradient_is_an_error_where_torch_has_no_identity(norm_type):
    p, q = pve.nn.Parameter(np.zeros(2, np.float32)), pve.nn.Parameter(np.zeros(0, np.float32))
    p.grad, q.grad = pve.tensor(np.ones(2, np.float32)), pve.tensor(np.zeros(0, np.float32))
    with pytest.raises(RuntimeError, match="empty tensor"):
        clip_grad_norm_([p, q], 1.0, norm_type=norm_type)
    np.testing.assert_array_equal(p.grad.numpy(), 1.0)
    for fine in (2.0, 1.0, 0.5, 0.0):
        clip_grad_norm_([p, q], 100.0, norm_type=fine)


@pytest.mark.parametrize("arena", [True, False], ids=["arena", "per-tensor"])
@pytest.mark.parametrize("clip_value", [math.nan, math.inf, -math.inf, -1.0, 0.0, -0.0, 0.5])
def test_clip_grad_value_is_torch_clamp(arena, clip_value):
    # torch clamps with min=-clip_value, max=clip_value: max wins where min > max
    # (negative clip_value), and a NaN bound makes every element NaN. The
    # arena's padding stays zero throughout.
    params, grads = _setup(arena)
    for value, index in ((np.nan, 0), (np.inf, 1), (-np.inf, 2)):
        grads[1][index] = value
        params[1].grad.numpy()[index] = value
    clip_grad_value_(params, clip_value)
    for p, g in zip(params, grads):
        np.testing.assert_array_equal(p.grad.numpy(),
                                      np.minimum(np.maximum(g, -clip_value), clip_value))
    if arena:
        assert not np.any(_padding(params))


def test_nan_clip_coefficient_keeps_arena_padding_zero():
    from pyvision_engine.nn.utils import clip_grads_with_norm_

    for clip in (lambda ps: clip_grad_norm_(ps, math.nan),
                 lambda ps: clip_grads_with_norm_(ps, 1.0, math.nan)):
        params, grads = _setup(True)
        clip(params)
        assert all(np.isnan(p.grad.numpy()).all() for p in params)  # as torch
        assert not np.any(_padding(params))
        for p, g in zip(params, grads):  # new gradients in the same slots
            p.grad.numpy()[...] = g
        flat = np.concatenate([g.reshape(-1) for g in grads]).astype(np.float64)
        total = clip_grad_norm_(params, 1e9, norm_type=1.0)
        np.testing.assert_allclose(float(total.item()), np.abs(flat).sum(), rtol=2e-6)


ALL_NORM_TYPES = [2, 1.0, math.inf, 0.5, 3, 0, -math.inf, -1.0, -0.5, -2.0, math.nan]


@pytest.mark.parametrize("with_zero_grad", [False, True], ids=["nonzero", "one-all-zero"])
@pytest.mark.parametrize("norm_type", ALL_NORM_TYPES)
def test_torch_parity_all_norm_types_on_the_arena(norm_type, with_zero_grad):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    third = np.zeros(3) if with_zero_grad else rng.standard_normal(3)
    grads = [rng.standard_normal((4, 5)), rng.standard_normal(7) * 3, third,
             rng.standard_normal(1)]
    grads = [g.astype(np.float32) for g in grads]
    params = [pve.nn.Parameter(np.zeros(g.shape, np.float32)) for g in grads]
    optim.SGD(params, lr=0.1)
    runner.feed_grads(params, grads, via_autograd=True)
    assert len(_grad_buffers(params)) == 1  # the fused arena path
    tparams = [torch.nn.Parameter(torch.zeros(g.shape)) for g in grads]
    for t, g in zip(tparams, grads):
        t.grad = torch.from_numpy(g.copy())
    theirs = torch.nn.utils.clip_grad_norm_(tparams, 0.05, norm_type=norm_type)
    ours = clip_grad_norm_(params, 0.05, norm_type=norm_type)
    np.testing.assert_allclose(float(ours.item()), theirs.item(), rtol=1e-6)
    for p, t in zip(params, tparams):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert not np.any(_padding(params))
