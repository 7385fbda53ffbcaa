"""ELU, CELU, SELU, Hardtanh, Threshold, Softplus, Mish, Softsign, Tanhshrink, LogSigmoid,
Softmin, Softmax2d: float64 references, finite differences, in-place forms, errors."""

import warnings

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op
from pyvision_engine.nn._f_common import RuntimeValueError
from reference import extra_layers_reference as ref

F = pve.nn.functional
nn = pve.nn
pytestmark = pytest.mark.kernels
rng = np.random.default_rng(11)

# name: (engine op, float64 reference, kinks to keep finite differences away from)
CASES = {
    "elu": (F.elu, ref.elu, (0.0,)),
    "elu_alpha": (lambda t: F.elu(t, 0.4), lambda a: ref.elu(a, 0.4), (0.0,)),
    "celu": (lambda t: F.celu(t, 1.7), lambda a: ref.celu(a, 1.7), (0.0,)),
    "celu_negative_alpha": (lambda t: F.celu(t, -0.6), lambda a: ref.celu(a, -0.6), (0.0,)),
    "selu": (F.selu, ref.selu, (0.0,)),
    "hardtanh": (F.hardtanh, ref.hardtanh, (-1.0, 1.0)),
    "hardtanh_range": (lambda t: F.hardtanh(t, -2.5, 0.5), lambda a: ref.hardtanh(a, -2.5, 0.5),
                       (-2.5, 0.5)),
    "threshold": (lambda t: F.threshold(t, 0.3, -4.0), lambda a: ref.threshold(a, 0.3, -4.0),
                  (0.3,)),
    "softplus": (F.softplus, ref.softplus, ()),
    "softplus_beta": (lambda t: F.softplus(t, 2.0, 5.0), lambda a: ref.softplus(a, 2.0, 5.0),
                      (2.5,)),
    "softplus_negative_beta": (lambda t: F.softplus(t, -1.5, 3.0),
                               lambda a: ref.softplus(a, -1.5, 3.0), (-2.0,)),
    "mish": (F.mish, ref.mish, ()),
    "softsign": (F.softsign, ref.softsign, (0.0,)),
    "tanhshrink": (F.tanhshrink, ref.tanhshrink, ()),
    "logsigmoid": (F.logsigmoid, ref.logsigmoid, ()),
}

MODULES = {
    "elu": lambda: nn.ELU(), "elu_alpha": lambda: nn.ELU(0.4), "celu": lambda: nn.CELU(1.7),
    "celu_negative_alpha": lambda: nn.CELU(-0.6), "selu": lambda: nn.SELU(),
    "hardtanh": lambda: nn.Hardtanh(), "hardtanh_range": lambda: nn.Hardtanh(-2.5, 0.5),
    "threshold": lambda: nn.Threshold(0.3, -4.0), "softplus": lambda: nn.Softplus(),
    "softplus_beta": lambda: nn.Softplus(2.0, 5.0),
    "softplus_negative_beta": lambda: nn.Softplus(beta=-1.5, threshold=3.0),
    "mish": lambda: nn.Mish(), "softsign": lambda: nn.Softsign(),
    "tanhshrink": lambda: nn.Tanhshrink(), "logsigmoid": lambda: nn.LogSigmoid(),
}

# in-place functionals: name -> (in-place call, out-of-place call)
INPLACE = {
    "elu": (lambda t: F.elu(t, 0.8, inplace=True), lambda t: F.elu(t, 0.8)),
    "elu_": (lambda t: F.elu_(t, 0.8), lambda t: F.elu(t, 0.8)),
    "celu": (lambda t: F.celu(t, 1.3, inplace=True), lambda t: F.celu(t, 1.3)),
    "celu_": (lambda t: F.celu_(t, 1.3), lambda t: F.celu(t, 1.3)),
    "selu": (lambda t: F.selu(t, inplace=True), F.selu),
    "selu_": (F.selu_, F.selu),
    "hardtanh": (lambda t: F.hardtanh(t, -0.5, 0.7, inplace=True),
                 lambda t: F.hardtanh(t, -0.5, 0.7)),
    "hardtanh_": (lambda t: F.hardtanh_(t, -0.5, 0.7), lambda t: F.hardtanh(t, -0.5, 0.7)),
    "threshold": (lambda t: F.threshold(t, 0.1, 5.0, inplace=True),
                  lambda t: F.threshold(t, 0.1, 5.0)),
    "threshold_": (lambda t: F.threshold_(t, 0.1, 5.0), lambda t: F.threshold(t, 0.1, 5.0)),
    "mish": (lambda t: F.mish(t, inplace=True), F.mish),
    "ELU": (nn.ELU(0.8, inplace=True), nn.ELU(0.8)),
    "CELU": (nn.CELU(1.3, inplace=True), nn.CELU(1.3)),
    "SELU": (nn.SELU(inplace=True), nn.SELU()),
    "Hardtanh": (nn.Hardtanh(-0.5, 0.7, inplace=True), nn.Hardtanh(-0.5, 0.7)),
    "Threshold": (nn.Threshold(0.1, 5.0, inplace=True), nn.Threshold(0.1, 5.0)),
    "Mish": (nn.Mish(inplace=True), nn.Mish()),
}


def _inputs(kinks, n=157, shape=(1, -1)):
    x = np.concatenate([rng.uniform(-9, 9, n), rng.uniform(-1.2, 1.2, 60)])
    for kink in kinks:  # finite differences need a smooth neighbourhood
        x[np.abs(x - kink) < 1e-3] += 3e-3
    return x.reshape(shape)


@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_matches_reference_and_finite_differences(isa, name):
    fn, rf, kinks = CASES[name]
    check_op(fn, rf, [_inputs(kinks)], rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_module_matches_functional(isa, name):
    fn, _, kinks = CASES[name]
    x = _inputs(kinks, shape=(1, 7, 31)).astype(np.float32)
    np.testing.assert_array_equal(MODULES[name]()(x).numpy(), fn(x).numpy())


@pytest.mark.parametrize("name", sorted(CASES))
def test_extremes_match_reference_and_nan_propagates(isa, name):
    fn, rf, _ = CASES[name]
    x = np.array([-1e30, -100.0, -88.0, -20.0, -1e-30, 0.0, 1e-30, 20.0, 88.0, 100.0, 1e30,
                  np.inf, -np.inf, np.nan], np.float32)
    y = fn(x).numpy()
    with np.errstate(all="ignore"):
        r = rf(x.astype(np.float64))
        r32 = r.astype(np.float32)
    finite = np.isfinite(r32)  # (where float32 overflows, the result is that infinity)
    # exp(z) carries z's float32 rounding (|z| up to 34 here) as a relative error of
    # |z| * 6e-8: rtol 4e-6 at these magnitudes
    np.testing.assert_allclose(y[finite], r[finite], rtol=4e-6, atol=1e-6)
    np.testing.assert_array_equal(y[np.isinf(r32)], r32[np.isinf(r32)])
    assert np.isnan(y[-1]), f"{name}(NaN) must be NaN"


def test_softmin_matches_reference_any_dim(isa):
    x = rng.standard_normal((2, 3, 4, 5)) * 3
    for dim in (0, 1, -1, 2):
        check_op(lambda t: F.softmin(t, dim), lambda a: ref.softmin(a, dim), [x],
                 rtol=1e-5, atol=2e-6)
        np.testing.assert_array_equal(nn.Softmin(dim)(x.astype(np.float32)).numpy(),
                                      F.softmin(x.astype(np.float32), dim).numpy())


def test_softmin_without_dim_warns_and_takes_torchs_legacy_dim():
    x = rng.standard_normal((3, 4)).astype(np.float32)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmin"):
        y = F.softmin(x)
    np.testing.assert_allclose(y.numpy(), ref.softmin(x.astype(np.float64), 1), rtol=1e-6,
                               atol=1e-7)
    with pytest.warns(UserWarning, match="softmin"):
        y3 = nn.Softmin()(x.reshape(3, 2, 2))
    np.testing.assert_allclose(y3.numpy(), ref.softmin(x.reshape(3, 2, 2).astype(np.float64), 0),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (5, 3, 4)])
def test_softmax2d_is_softmax_over_channels(isa, shape):
    x = rng.standard_normal(shape) * 2
    check_op(lambda t: nn.Softmax2d()(t), lambda a: ref.softmax(a, -3), [x], rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("shape", [(4,), (3, 4), (1, 2, 3, 4, 5)])
def test_softmax2d_rejects_other_ranks(shape):
    with pytest.raises(ValueError, match=r"Softmax2d: expected input to be 3D or 4D"):
        nn.Softmax2d()(np.zeros(shape, np.float32))


@pytest.mark.parametrize("name", sorted(INPLACE))
def test_inplace_forms_match_out_of_place_with_gradients(isa, name):
    inplace, plain = INPLACE[name]
    x0 = _inputs((0.0, -0.5, 0.7, 0.1), n=135, shape=(3, 5, 13)).astype(np.float32)
    g = rng.standard_normal(x0.shape).astype(np.float32)
    a = pve.tensor(x0, requires_grad=True)
    b = pve.tensor(x0, requires_grad=True)
    ha = a * 1.0  # a non-leaf, which in-place ops may overwrite
    ya = inplace(ha)
    assert ya is ha, "in-place ops return their input"
    yb = plain(b)
    np.testing.assert_array_equal(ha.detach().numpy(), yb.detach().numpy())
    ya.backward(pve.tensor(g))
    yb.backward(pve.tensor(g))
    # in place the ELU family differentiates through its result, as torch's elu_:
    # g * (y + alpha) cancels to an absolute error of a float32 ulp of g * alpha
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6, atol=1e-6)
    # without autograd the buffer itself changes
    c = pve.tensor(x0)
    with pve.no_grad():
        out = inplace(c)
    assert out is c
    np.testing.assert_array_equal(c.numpy(), yb.detach().numpy())


@pytest.mark.parametrize("name", ["elu", "hardtanh", "threshold", "mish", "selu"])
def test_inplace_on_a_leaf_that_requires_grad_raises(name):
    inplace, _ = INPLACE[name]
    with pytest.raises(RuntimeError, match="leaf Variable"):
        inplace(pve.tensor(np.ones(3, np.float32), requires_grad=True))


@pytest.mark.parametrize("op", [lambda t: F.elu(t, -0.5, inplace=True),
                                lambda t: F.celu_(t, -0.5)])
def test_inplace_elu_backward_with_negative_slope_raises_as_torch(op):
    x = pve.tensor(np.array([-1.0, 0.5, 2.0], np.float32), requires_grad=True)
    y = op(x * 1.0)  # forward works; torch refuses the backward
    with pytest.raises(RuntimeValueError, match="In-place elu backward"):
        y.sum().backward()


def test_argument_errors_name_the_layer():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="hardtanh: min_val cannot be greater than max_val"):
        F.hardtanh(x, 2.0, 1.0)
    F.hardtanh(x, 1.0, 1.0)  # equal bounds are fine for the functional, as torch
    with pytest.raises(ValueError, match=r"Hardtanh: max_val \(1.0\) must be greater"):
        nn.Hardtanh(1.0, 1.0)
    with pytest.raises(AssertionError):  # torch's type, too
        nn.Hardtanh(2.0, -2.0)
    with pytest.raises(RuntimeValueError, match="celu: ZeroDivisionError: alpha cannot be 0"):
        F.celu(x, 0.0)
    with pytest.raises(RuntimeError, match="alpha cannot be 0"):
        nn.CELU(0.0)(x)
    with pytest.raises(TypeError, match="threshold: argument 'threshold' must be a number"):
        F.threshold(x, "a", 1.0)
    with pytest.raises(TypeError, match="threshold: argument 'value' must be a number"):
        F.threshold(x, 0.0, None)
    with pytest.raises(TypeError, match="softplus: argument 'beta'"):
        F.softplus(x, beta="2")
    for fn, name in ((F.elu, "elu"), (F.softsign, "softsign"), (F.logsigmoid, "logsigmoid"),
                     (F.mish, "mish"), (F.softmin, "softmin")):
        with pytest.raises(TypeError, match=name):
            fn(np.arange(3))


def test_hardtanh_deprecated_keywords_warn_and_apply():
    with pytest.warns(FutureWarning, match="min_value` is deprecated"):
        m = nn.Hardtanh(min_value=-3.0)
    assert (m.min_val, m.max_val) == (-3.0, 1.0)
    with pytest.warns(FutureWarning, match="max_value` is deprecated"):
        m = nn.Hardtanh(max_value=4.0)
    assert (m.min_val, m.max_val) == (-1.0, 4.0)


def test_defaults_and_reprs():
    assert repr(nn.ELU()) == "ELU(alpha=1.0)"
    assert repr(nn.ELU(0.5, inplace=True)) == "ELU(alpha=0.5, inplace=True)"
    assert repr(nn.CELU()) == "CELU(alpha=1.0)"
    assert repr(nn.SELU()) == "SELU()" and repr(nn.SELU(True)) == "SELU(inplace=True)"
    assert repr(nn.Hardtanh()) == "Hardtanh(min_val=-1.0, max_val=1.0)"
    assert repr(nn.Threshold(0.1, 20)) == "Threshold(threshold=0.1, value=20)"
    assert repr(nn.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(nn.Mish()) == "Mish()" and repr(nn.Mish(True)) == "Mish(inplace=True)"
    assert repr(nn.Softmin()) == "Softmin(dim=None)"
    for m in (nn.Softsign(), nn.Tanhshrink(), nn.LogSigmoid(), nn.Softmax2d()):
        assert repr(m) == f"{type(m).__name__}()"
        assert list(m.state_dict()) == []


def test_accepts_numpy_and_keeps_shape_and_empty_input():
    for fn, _, _ in CASES.values():
        y = fn(np.zeros((2, 0, 3), np.float32))
        assert isinstance(y, pve.Tensor) and y.shape == (2, 0, 3)
    y = F.elu(np.float32(-1.0) * np.ones((), np.float32))
    assert y.shape == () and np.isclose(y.item(), np.expm1(-1.0))


def test_nothing_leaks_warnings():
    x = np.array([-1e30, 1e30, np.inf, -np.inf, np.nan], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy overflow / invalid warnings stay inside
        for fn, _, _ in CASES.values():
            t = pve.tensor(x, requires_grad=True)
            fn(t).backward(pve.tensor(np.ones_like(x)))
