"""Losses: fused cross-entropy (indices/probabilities, weight, ignore_index,
label_smoothing, reductions), NLL, MSE, L1, SmoothL1, BCEWithLogits."""

import re

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op
from reference import loss_reference as ref

F = pve.nn.functional
pytestmark = pytest.mark.kernels
rng = np.random.default_rng(4)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_class_indices(isa, reduction, smoothing, weighted):
    x = rng.standard_normal((9, 37)) * 3
    t = rng.integers(0, 37, 9)
    t[[2, 5]] = -100
    w = rng.random(37) + 0.5 if weighted else None
    wt = None if w is None else pve.tensor(w.astype(np.float32))
    check_op(lambda a: F.cross_entropy(a, pve.tensor(t), weight=wt, reduction=reduction,
                                       label_smoothing=smoothing),
             lambda a: ref.cross_entropy(a, t, None if w is None else w.astype(np.float32).astype(np.float64),
                                         -100, reduction, smoothing),
             [x], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_probability_targets(isa, smoothing):
    x = rng.standard_normal((6, 21))
    p = rng.random((6, 21))
    p /= p.sum(axis=1, keepdims=True)
    w = rng.random(21) + 0.5
    check_op(lambda a: F.cross_entropy(a, pve.tensor(p.astype(np.float32)),
                                       weight=pve.tensor(w.astype(np.float32)), label_smoothing=smoothing),
             lambda a: ref.cross_entropy(a, p.astype(np.float32).astype(np.float64),
                                         w.astype(np.float32).astype(np.float64), label_smoothing=smoothing),
             [x], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_probability_targets_that_require_grad(isa, reduction, smoothing):
    # (a teacher trained along with its student: the gradient reaches the targets too)
    x = rng.standard_normal((2, 5, 3))
    p = rng.random((2, 5, 3))
    w = rng.random(5) + 0.5
    w32 = w.astype(np.float32)
    rows = lambda a: np.moveaxis(a, 1, -1).reshape(-1, 5)

    def reference(a, q):
        out = ref.cross_entropy(rows(a), rows(q), w32.astype(np.float64), reduction=reduction,
                                label_smoothing=smoothing)
        return out.reshape(2, 3) if reduction == "none" else out

    check_op(lambda a, q: F.cross_entropy(a, q, weight=pve.tensor(w32), reduction=reduction,
                                          label_smoothing=smoothing),
             reference, [x, p], rtol=1e-5, atol=1e-5)


def test_cross_entropy_spatial_and_1d(isa):
    x = rng.standard_normal((2, 5, 3, 4))
    t = rng.integers(0, 5, (2, 3, 4))
    rows = lambda a: np.moveaxis(a, 1, -1).reshape(-1, 5)
    check_op(lambda a: F.cross_entropy(a, pve.tensor(t)),
             lambda a: ref.cross_entropy(rows(a), t.reshape(-1)), [x], rtol=1e-5, atol=1e-5)
    y = F.cross_entropy(pve.tensor(x[0, :, 0, 0].astype(np.float32)), pve.tensor(np.array(3)))
    np.testing.assert_allclose(y.numpy(), ref.cross_entropy(x[0:1, :, 0, 0], np.array([3])), rtol=1e-5)
    loss = pve.nn.CrossEntropyLoss(reduction="none")(x.astype(np.float32), pve.tensor(t))
    assert loss.shape == (2, 3, 4)


def test_cross_entropy_large_classes_and_nan(isa):
    x = (rng.standard_normal((4, 1000)) * 20).astype(np.float32)
    t = rng.integers(0, 1000, 4)
    np.testing.assert_allclose(F.cross_entropy(x, pve.tensor(t)).numpy(),
                               ref.cross_entropy(x.astype(np.float64), t), rtol=1e-5)
    x[1, 7] = np.nan
    out = F.cross_entropy(x, pve.tensor(t), reduction="none").numpy()
    assert np.isnan(out[1]) and np.isfinite(out[[0, 2, 3]]).all()
    assert np.isnan(F.cross_entropy(x, pve.tensor(t)).numpy())


def test_cross_entropy_all_ignored_is_nan():
    x = rng.standard_normal((3, 4)).astype(np.float32)
    assert np.isnan(F.cross_entropy(x, pve.tensor(np.full(3, -100))).numpy())


@pytest.mark.parametrize("call,match", [
    (lambda x: F.cross_entropy(x, pve.tensor(np.array([0, 5, 1]))), "cross_entropy: target 5 is out of bounds"),
    (lambda x: F.cross_entropy(x, pve.tensor(np.array([0, -1, 1]))), "cross_entropy: target -1"),
    (lambda x: F.cross_entropy(x, pve.tensor(np.array([0, 1]))), "cross_entropy: class-index target must have shape"),
    (lambda x: F.cross_entropy(x, pve.tensor(np.array([0, 1, 2])), weight=np.ones(4, np.float32)), "cross_entropy: weight"),
    (lambda x: F.cross_entropy(x, pve.tensor(np.array([0, 1, 2])), reduction="avg"), "cross_entropy: reduction"),
    (lambda x: F.cross_entropy(x, pve.tensor(np.array([0, 1, 2])), label_smoothing=1.5), "cross_entropy: label_smoothing"),
    (lambda x: pve.nn.CrossEntropyLoss()(x, pve.tensor(np.array([0, 9, 1]))), "cross_entropy: target 9"),
    (lambda x: F.nll_loss(x, pve.tensor(np.array([0, 3, 1]))), "nll_loss: target 3"),
    (lambda x: F.mse_loss(x, np.zeros((2, 2), np.float32)), "mse_loss"),
    (lambda x: F.smooth_l1_loss(x, x, beta=-1), "smooth_l1_loss: beta"),
    (lambda x: F.binary_cross_entropy_with_logits(x, x[:2]), "binary_cross_entropy_with_logits"),
])
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.zeros((3, 3), np.float32))


def test_binding_rejects_out_of_range_targets_itself():
    from pyvision_engine import _C
    with pytest.raises(ValueError, match="outside the class range"):
        _C.cross_entropy_forward(np.zeros((2, 3), np.float32), np.array([0, 7]), None, -100)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(isa, reduction):
    x = rng.standard_normal((7, 5))
    t = rng.integers(0, 5, 7)
    t[3] = -100
    w = (rng.random(5) + 0.5).astype(np.float32)
    check_op(lambda a: F.nll_loss(a, pve.tensor(t), weight=pve.tensor(w), reduction=reduction),
             lambda a: ref.nll_loss(a, t, w.astype(np.float64), reduction=reduction), [x])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_pointwise_losses(reduction):
    x, y = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    y[0, :3] = x[0, :3] + np.array([0.1, -0.2, 0.05])  # inside SmoothL1's quadratic zone
    check_op(lambda a, b: F.mse_loss(a, b, reduction=reduction),
             lambda a, b: ref.mse_loss(a, b, reduction), [x, y])
    check_op(lambda a, b: F.l1_loss(a, b, reduction=reduction),
             lambda a, b: ref.l1_loss(a, b, reduction), [x, y])
    for beta in (1.0, 0.5, 0.0):
        check_op(lambda a, b: F.smooth_l1_loss(a, b, reduction=reduction, beta=beta),
                 lambda a, b: ref.smooth_l1_loss(a, b, reduction, beta), [x, y])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits(reduction):
    x, t = rng.standard_normal((5, 4)) * 3, rng.random((5, 4))
    pw, w = rng.random(4) + 0.5, rng.random((5, 4))
    check_op(lambda a, b: F.binary_cross_entropy_with_logits(
                 a, b, weight=pve.tensor(w.astype(np.float32)), pos_weight=pve.tensor(pw.astype(np.float32)),
                 reduction=reduction),
             lambda a, b: ref.bce_with_logits(a, b, w.astype(np.float32), pw.astype(np.float32), reduction),
             [x, t], rtol=1e-5, atol=1e-5)
    # Stable for large logits (no log(0)).
    big = np.array([[100.0, -100.0]], np.float32)
    out = F.binary_cross_entropy_with_logits(big, np.array([[0.0, 1.0]], np.float32), reduction="none")
    np.testing.assert_allclose(out.numpy(), [[100.0, 100.0]], rtol=1e-6)


def test_loss_modules():
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = rng.standard_normal((3, 4)).astype(np.float32)
    t = pve.tensor(np.array([0, 3, 1]))
    assert pve.nn.MSELoss()(x, y).shape == ()
    assert pve.nn.L1Loss(reduction="sum")(x, y).shape == ()
    assert pve.nn.SmoothL1Loss(beta=0.5, reduction="none")(x, y).shape == (3, 4)
    assert pve.nn.NLLLoss()(x, t).shape == ()
    m = pve.nn.CrossEntropyLoss(weight=pve.tensor(np.ones(4, np.float32)), label_smoothing=0.1)
    assert "weight" in dict(m.named_buffers()) if hasattr(m, "named_buffers") else True
    np.testing.assert_allclose(m(x, t).numpy(),
                               ref.cross_entropy(x.astype(np.float64), t.numpy(), label_smoothing=0.1),
                               rtol=1e-5)
    assert pve.nn.BCEWithLogitsLoss(pos_weight=pve.tensor(np.ones(4, np.float32)))(x, np.abs(y) / 3).shape == ()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_weighted_mse_and_l1(name, reduction):
    # torch 2.x: weight per element; 'mean' divides by the sum of the weights.
    x, t = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    w = rng.uniform(0.1, 2.0, (3, 5))
    elementwise = (lambda a, b: (a - b) ** 2) if name == "mse_loss" else \
        (lambda a, b: np.abs(a - b))

    def ref_fn(a, b, wa):
        loss = elementwise(a, b) * wa
        return {"none": loss, "sum": loss.sum(), "mean": loss.sum() / wa.sum()}[reduction]

    check_op(lambda a, b, wa: getattr(F, name)(a, b, reduction=reduction, weight=wa), ref_fn,
             [x, t, w])
    with pytest.raises(ValueError, match="same size"):
        getattr(F, name)(x.astype(np.float32), t.astype(np.float32),
                         weight=np.ones(5, np.float32))


@pytest.mark.parametrize("loss", ["mse_loss", "l1_loss", "smooth_l1_loss",
                                  "binary_cross_entropy_with_logits"])
def test_mean_over_an_empty_batch_is_nan_as_torch(loss):
    x = pve.tensor(np.zeros((0, 3), np.float32), requires_grad=True)
    out = getattr(pve.nn.functional, loss)(x, np.zeros((0, 3), np.float32))
    assert np.isnan(out.detach().numpy())
    out.backward()
    assert x.grad.shape == (0, 3)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nll_loss_gradient_is_zero_when_every_target_is_ignored(reduction):
    # torch: ignored rows get no gradient, even when the mean divides by 0.
    x = pve.tensor(np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32),
                   requires_grad=True)
    loss = pve.nn.functional.nll_loss(x, np.array([1, 1, 1]), ignore_index=1,
                                      reduction=reduction)
    loss.backward()
    assert np.isnan(loss.item()) == (reduction == "mean")
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((3, 4), np.float32))


def test_out_of_range_target_is_a_value_and_an_index_error():
    x = np.zeros((2, 3), np.float32)
    for fn in (pve.nn.functional.cross_entropy, pve.nn.functional.nll_loss):
        with pytest.raises(ValueError):
            fn(x, np.array([0, 3]))
        with pytest.raises(IndexError):
            fn(x, np.array([0, -2]))


@pytest.mark.parametrize("name,arg", [("binary_cross_entropy_with_logits", "weight"),
                                      ("binary_cross_entropy_with_logits", "pos_weight"),
                                      ("binary_cross_entropy", "weight")])
@pytest.mark.parametrize("shape", [(5, 4, 3), (1, 4, 3)])
def test_binary_losses_refuse_a_weight_that_enlarges_the_input(name, arg, shape):
    # torch: "output with shape [4, 3] doesn't match the broadcast shape [5, 4, 3]"
    x = rng.uniform(0.1, 0.9, (4, 3)).astype(np.float32)
    w = np.ones(shape, np.float32)
    for reduction in ("mean", "none"):
        with pytest.raises(ValueError, match=re.escape(f"{name}: {arg} of shape {shape} must "
                                                       "broadcast to the input shape (4, 3)")):
            getattr(F, name)(x, x, reduction=reduction, **{arg: w})
    # weights that broadcast to the input's own shape stay fine
    assert getattr(F, name)(x, x, reduction="none", **{arg: np.ones(3, np.float32)}).shape == (4, 3)
    assert getattr(F, name)(x, x, reduction="none", **{arg: np.ones((4, 1), np.float32)}).shape == (4, 3)


@pytest.mark.parametrize("call", [
    lambda x, w: F.binary_cross_entropy_with_logits(x, x, weight=w),
    lambda x, w: F.binary_cross_entropy_with_logits(x, x, pos_weight=w),
    lambda x, w: F.binary_cross_entropy(x, x, weight=w),
    lambda x, w: F.cross_entropy(x, np.array([0, 1, 2, 0]), weight=w[0]),
    lambda x, w: F.nll_loss(x, np.array([0, 1, 2, 0]), weight=w[0]),
])
def test_constant_weights_refuse_requires_grad(call):
    # torch: "The function ... is not differentiable with respect to argument 'weight'"
    x = rng.uniform(0.1, 0.9, (4, 3)).astype(np.float32)
    w = pve.tensor(np.ones((4, 3), np.float32), requires_grad=True)
    with pytest.raises(ValueError, match="not differentiable with respect to argument"):
        call(x, w)
    with pve.no_grad():  # no graph to build: accepted, as torch
        call(x, w)
    call(x, w.detach())


@pytest.mark.parametrize("name,kw", [("l1_loss", {}), ("smooth_l1_loss", {"beta": 0.0})])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_l1_gradient_is_zero_at_nan(name, kw, reduction):
    # torch's L1 backward is sign(input - target) with sign(NaN) = 0
    x = np.array([np.nan, 1.0, -2.0, np.nan, 0.5], np.float32)
    t = np.array([0.0, 0.0, 0.0, np.nan, 0.5], np.float32)
    a, b = pve.tensor(x, requires_grad=True), pve.tensor(t, requires_grad=True)
    loss = getattr(F, name)(a, b, reduction=reduction, **kw)
    loss.backward(pve.tensor(np.ones(loss.shape, np.float32)))
    scale = 1 / 5 if reduction == "mean" else 1.0
    np.testing.assert_array_equal(a.grad.numpy(), np.array([0, 1, -1, 0, 0], np.float32) * scale)
    np.testing.assert_array_equal(b.grad.numpy(), -a.grad.numpy())


def test_bce_target_range_and_target_gradient():
    x = np.array([0.0, 1.0, 0.5, 0.25], np.float32)
    for bad in (1.5, -0.1, np.nan):
        with pytest.raises(ValueError, match="all elements of target should be between 0 and 1"):
            F.binary_cross_entropy(x, np.array([0.3, 0.3, 0.3, bad], np.float32))
    a = pve.tensor(x)
    t = pve.tensor(np.full(4, 0.3, np.float32), requires_grad=True)
    F.binary_cross_entropy(a, t, reduction="sum").backward()
    # d/dt = -logit(x), unclamped: +-inf at 0 and 1 (torch)
    np.testing.assert_allclose(t.grad.numpy(), [np.inf, -np.inf, 0.0, np.log(3.0)], rtol=1e-6)


def test_kl_div_target_gradient_is_nan_at_zero_and_inf():
    # torch differentiates xlogy(t, t) as xlogy(t != 0, t) + t / t: NaN at t = 0 and inf
    x = np.array([-1.0, -2.0, -0.5], np.float32)
    t = pve.tensor(np.array([0.0, np.inf, 0.5], np.float32), requires_grad=True)
    F.kl_div(pve.tensor(x), t, reduction="sum").backward()
    g = t.grad.numpy()
    assert np.isnan(g[0]) and np.isnan(g[1])
    np.testing.assert_allclose(g[2], np.log(0.5) + 1 + 0.5, rtol=1e-6)


def test_cross_entropy_wide_logit_range(isa):
    # Logits 0 .. -120 below the row's maximum (exp underflows past -87.3,
    # and the vector exp switches to its clamp at -86.6) and -inf entries:
    # loss and gradient against float64.
    x = -rng.random((6, 45)) * 120.0
    x[np.arange(6), rng.integers(0, 45, 6)] = 0.0
    x[1, 3] = x[4, 40] = -np.inf
    x = x.astype(np.float32)
    t = np.array([0, 5, 44, 17, 9, 30])
    t[1] = 4 if t[1] == 3 else t[1]
    xt = pve.tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, pve.tensor(t))
    loss.backward()
    x64 = x.astype(np.float64)
    p = np.exp(x64 - x64.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    want_loss = -np.log(p[np.arange(6), t]).mean()
    want_grad = p.copy()
    want_grad[np.arange(6), t] -= 1.0
    np.testing.assert_allclose(float(loss.detach().numpy()), want_loss, rtol=1e-5)
    np.testing.assert_allclose(xt.grad.numpy(), want_grad / 6, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(F.softmax(pve.tensor(x), 1).numpy(), p, rtol=1e-5, atol=1e-30)
    # log_softmax of a row's maximum is -log(sum) with the float32 sum near 1:
    # its absolute error is that of the sum (~1e-7), not relative to itself.
    np.testing.assert_allclose(F.log_softmax(pve.tensor(x), 1).numpy(), np.log(p), rtol=1e-5,
                               atol=1e-7)
