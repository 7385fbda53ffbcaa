"""The margin, embedding and likelihood losses against plain-numpy float64 references
(tests/reference/loss_more_reference.py): values for every reduction and float64 central
finite differences for the gradients; edge cases and errors. No torch needed."""

import numpy as np
import pytest

import pyvision_engine as pve
from reference import loss_more_reference as R
from reference.gradcheck import assert_grad_close, numerical_grads

F = pve.nn.functional
REDUCTIONS = ["none", "mean", "sum"]
rng = np.random.default_rng(5)


def _f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _signs(*shape):
    return rng.choice([-1.0, 1.0], shape).astype(np.float32)


def _check(fn, ref, inputs, fixed=(), kw=None, grad=True, atol=1e-5):
    """fn(*inputs, *fixed, **kw) against ref in float64: value, then each input's
    gradient against central differences of ref under a random upstream gradient."""
    kw = kw or {}
    ts = [pve.tensor(a, requires_grad=grad) for a in inputs]
    out = fn(*ts, *fixed, **kw)
    want = ref(*[a.astype(np.float64) for a in inputs], *fixed, **kw)
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-5, atol=atol)
    if not grad:
        return
    up = rng.standard_normal(np.shape(want))
    out.backward(pve.tensor(up.astype(np.float32)))
    num = numerical_grads(lambda *a: ref(*a, *fixed, **kw), inputs, up)
    for t, n in zip(ts, num):
        assert_grad_close(t.grad.numpy(), n)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_soft_margin(reduction):
    w = rng.uniform(0.5, 2, 4)
    y = rng.integers(0, 2, (3, 4)).astype(np.float32)
    _check(lambda x: F.multilabel_soft_margin_loss(x, y, weight=w.astype(np.float32),
                                                   reduction=reduction),
           lambda x: R.multilabel_soft_margin(x, y, w, reduction), [_f32(3, 4)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_multilabel_margin(reduction):
    x = _f32(4, 5)
    y = np.array([[3, 0, -1, 1, 1], [1, 1, 2, -1, 0], [-1, 2, 2, 2, 2], [0, 1, 2, 3, 4]])
    _check(lambda a: F.multilabel_margin_loss(a, y, reduction=reduction),
           lambda a: R.multilabel_margin(a, y, reduction), [x])
    _check(lambda a: F.multilabel_margin_loss(a, y[0], reduction=reduction),
           lambda a: R.multilabel_margin(a, y[0], reduction), [x[0]])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin(reduction, p):
    x, y, w = _f32(5, 4), rng.integers(0, 4, 5), rng.uniform(0.5, 2, 4)
    _check(lambda a: F.multi_margin_loss(a, y, p=p, margin=0.7, weight=w.astype(np.float32),
                                         reduction=reduction),
           lambda a: R.multi_margin(a, y, p, 0.7, w, reduction), [x])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_soft_margin_and_margin_ranking(reduction):
    y = _signs(3, 4)
    _check(lambda a: F.soft_margin_loss(a, y, reduction=reduction),
           lambda a: R.soft_margin(a, y, reduction), [_f32(3, 4)])
    t = _signs(6)
    _check(lambda a, b: F.margin_ranking_loss(a, b, t, margin=0.3, reduction=reduction),
           lambda a, b: R.margin_ranking(a, b, t, 0.3, reduction), [_f32(6), _f32(6)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_and_cosine_embedding(reduction):
    y = _signs(8)
    _check(lambda a: F.hinge_embedding_loss(a, y, margin=0.8, reduction=reduction),
           lambda a: R.hinge_embedding(a, y, 0.8, reduction), [_f32(8)])
    t = _signs(5)
    _check(lambda a, b: F.cosine_embedding_loss(a, b, t, margin=0.1, reduction=reduction),
           lambda a, b: R.cosine_embedding(a, b, t, 0.1, reduction), [_f32(5, 3), _f32(5, 3)])


def test_cosine_embedding_zero_vector_is_cosine_zero():
    z = np.zeros((2, 3), np.float32)
    out = F.cosine_embedding_loss(z, _f32(2, 3), np.array([1.0, -1.0], np.float32),
                                  reduction="none")
    np.testing.assert_allclose(out.numpy(), [1.0, 0.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("p,swap", [(2.0, False), (2.0, True), (1.5, True)])
def test_triplet(reduction, p, swap):
    _check(lambda a, b, c: F.triplet_margin_loss(a, b, c, margin=2.0, p=p, swap=swap,
                                                 reduction=reduction),
           lambda a, b, c: R.triplet_margin(a, b, c, 2.0, p, 1e-6, swap, reduction),
           [_f32(4, 3), _f32(4, 3), _f32(4, 3)])
    _check(lambda a, b, c: F.triplet_margin_with_distance_loss(a, b, c, margin=2.0, swap=swap,
                                                               reduction=reduction),
           lambda a, b, c: R.triplet_margin(a, b, c, 2.0, 2.0, 1e-6, swap, reduction),
           [_f32(4, 3), _f32(4, 3), _f32(4, 3)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_input,full", [(True, False), (True, True), (False, True)])
def test_poisson_nll(reduction, log_input, full):
    x = _f32(3, 4) if log_input else rng.uniform(0.2, 3, (3, 4)).astype(np.float32)
    t = rng.uniform(0, 4, (3, 4)).astype(np.float32)
    _check(lambda a, b: F.poisson_nll_loss(a, b, log_input=log_input, full=full,
                                           reduction=reduction),
           lambda a, b: R.poisson_nll(a, b, log_input, full, 1e-8, reduction), [x, t])


def test_poisson_full_zero_target_is_finite():
    # torch's target gradient there is NaN (0 * log 0 behind its mask); here it is 0
    t = pve.tensor(np.array([0.0, 0.5, 3.0], np.float32), requires_grad=True)
    out = F.poisson_nll_loss(np.zeros(3, np.float32), t, full=True, reduction="sum")
    out.backward()
    assert np.isfinite(out.item()) and np.isfinite(t.grad.numpy()).all()
    assert t.grad.numpy()[0] == 0.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("var_shape", [(3, 4), (3,), (3, 1), (1, 4)])
def test_gaussian_nll(reduction, var_shape):
    var = rng.uniform(0.2, 2, var_shape).astype(np.float32)
    v64 = var.reshape(3, 1) if var_shape == (3,) else var
    _check(lambda a, b: F.gaussian_nll_loss(a, b, var, full=True, reduction=reduction),
           lambda a, b: R.gaussian_nll(a, b, v64, True, 1e-6, reduction),
           [_f32(3, 4), _f32(3, 4)])


def test_gaussian_nll_var_gradient_passes_the_clamp():
    var = pve.tensor(np.array([1e-9, 0.5], np.float32), requires_grad=True)
    F.gaussian_nll_loss(np.zeros(2, np.float32), np.ones(2, np.float32), var,
                        reduction="sum").backward()
    vc = np.array([1e-6, 0.5])
    np.testing.assert_allclose(var.grad.numpy(), 0.5 * (1 / vc - 1 / vc ** 2), rtol=1e-5)


def test_errors_name_the_loss():
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="multi_margin_loss.*p == 1"):
        F.multi_margin_loss(x, np.zeros(3, np.int64), p=3)
    with pytest.raises(ValueError, match=r"multi_margin_loss.*\[3\].*\[2\]"):
        F.multi_margin_loss(x, np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="multilabel_margin_loss"):
        F.multilabel_margin_loss(x, x)
    with pytest.raises(ValueError, match=r"multilabel_margin_loss.*\[3, 3\].*\[3, 4\]"):
        F.multilabel_margin_loss(x, np.zeros((3, 3), np.int64))
    with pytest.raises(ValueError, match="cosine_embedding_loss"):
        F.cosine_embedding_loss(x, x, np.ones((3, 1), np.float32))
    with pytest.raises(ValueError, match="gaussian_nll_loss: var is of incorrect size"):
        F.gaussian_nll_loss(x, x, np.ones((3, 2), np.float32))
    with pytest.raises(TypeError, match="gaussian_nll_loss"):
        F.gaussian_nll_loss(x, x, 1)
    with pytest.raises(ValueError, match="triplet_margin_loss: margin"):
        F.triplet_margin_loss(x, x, x, margin=0)
    with pytest.raises(ValueError, match="margin_ranking_loss"):
        F.margin_ranking_loss(x, x[0], x)
    with pytest.raises(ValueError, match="soft_margin_loss"):
        F.soft_margin_loss(x, x, reduction="avg")


def test_legacy_flags_warn_and_map():
    x, y = _f32(3, 4), _signs(3, 4)
    with pytest.warns(UserWarning, match="reduction='sum'"):
        out = F.soft_margin_loss(x, y, size_average=False)
    np.testing.assert_allclose(out.item(), R.soft_margin(x, y, "sum"), rtol=1e-5)
    with pytest.warns(UserWarning, match="reduction='none'"):
        m = pve.nn.HingeEmbeddingLoss(reduce=False)
    assert m.reduction == "none" and m(x, y).shape == (3, 4)
