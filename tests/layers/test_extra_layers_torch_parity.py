"""Live parity with torch for the extra layers (skipped without torch): values and
gradients (NaN and Inf included), reprs, defaults, state_dict keys and error types."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyvision_engine as pve  # noqa: E402

TF = torch.nn.functional
F = pve.nn.functional
rng = np.random.default_rng(5)

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 100.0, -100.0, 88.0,
                    -88.0, 20.0, -20.0, 1e-30, -1e-30], np.float32)


def _values():
    # 256 values, specials among them: a multiple of every vector block, so torch runs
    # its vectorised kernels on all of them (its scalar tail loop, for the last few
    # elements of other lengths, differs at NaN for elu's and hardtanh's gradients;
    # the engine follows the vectorised form)
    x = np.concatenate([rng.uniform(-30, 30, 256 - 2 * len(SPECIAL)).astype(np.float32),
                        SPECIAL, SPECIAL])
    return x.reshape(1, -1)


def _both(pve_fn, torch_fn, x, g, inplace=False):
    a = pve.tensor(x, requires_grad=True)
    ya = pve_fn(a * 1.0 if inplace else a)
    ya.backward(pve.tensor(g))
    t = torch.tensor(x, requires_grad=True)
    yt = torch_fn(t * 1.0 if inplace else t)
    yt.backward(torch.tensor(g))
    return (ya.detach().numpy(), a.grad.numpy()), (yt.detach().numpy(), t.grad.numpy())


def _close(mine, theirs, rtol=2e-6, atol=1e-7, what=""):
    np.testing.assert_allclose(mine, theirs, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


ACTIVATIONS = {
    "elu": ("elu", {}), "elu_alpha": ("elu", {"alpha": 0.3}), "selu": ("selu", {}),
    "celu": ("celu", {"alpha": 1.9}), "celu_negative": ("celu", {"alpha": -0.7}),
    "hardtanh": ("hardtanh", {}), "hardtanh_range": ("hardtanh", {"min_val": -3.0, "max_val": 0.5}),
    "threshold": ("threshold", {"threshold": 0.5, "value": -2.0}),
    "softplus": ("softplus", {}), "softplus_args": ("softplus", {"beta": 2.5, "threshold": 4.0}),
    "softplus_big_threshold": ("softplus", {"beta": 1.0, "threshold": 1000.0}),
    "softplus_negative_beta": ("softplus", {"beta": -1.0, "threshold": 3.0}),
    "mish": ("mish", {}), "softsign": ("softsign", {}), "tanhshrink": ("tanhshrink", {}),
    "logsigmoid": ("logsigmoid", {}),
}
INPLACE_NAMES = ["elu", "elu_alpha", "selu", "celu", "hardtanh", "hardtanh_range", "threshold",
                 "mish"]


@pytest.mark.parametrize("case", sorted(ACTIVATIONS))
def test_activation_values_and_gradients_match_torch(case):
    name, kw = ACTIVATIONS[case]
    x = _values()
    g = rng.standard_normal(x.shape).astype(np.float32)
    with np.errstate(all="ignore"):
        (y, gx), (ty, tgx) = _both(lambda t: getattr(F, name)(t, **kw),
                                   lambda t: getattr(TF, name)(t, **kw), x, g)
    _close(y, ty, what=f"{case} forward")
    _close(gx, tgx, what=f"{case} grad")


@pytest.mark.parametrize("case", INPLACE_NAMES)
def test_inplace_activation_values_and_gradients_match_torch(case):
    name, kw = ACTIVATIONS[case]
    x = rng.uniform(-6, 6, (4, 64)).astype(np.float32)
    x[0, :len(SPECIAL)] = SPECIAL
    g = rng.standard_normal(x.shape).astype(np.float32)
    with np.errstate(all="ignore"):
        (y, gx), (ty, tgx) = _both(lambda t: getattr(F, name)(t, inplace=True, **kw),
                                   lambda t: getattr(TF, name)(t, inplace=True, **kw), x, g,
                                   inplace=True)
    _close(y, ty, what=f"{case} forward")
    _close(gx, tgx, atol=1e-6, what=f"{case} grad")  # (result-based g * (y + alpha))


@pytest.mark.parametrize("name", ["elu_", "selu_", "celu_", "hardtanh_", "threshold_"])
def test_underscore_functionals_match_torch(name):
    args = (0.1, 3.0) if name == "threshold_" else ()
    x = rng.uniform(-4, 4, (2, 9)).astype(np.float32)
    a, t = pve.tensor(x.copy()), torch.tensor(x.copy())
    ra, rt = getattr(F, name)(a, *args), getattr(TF, name)(t, *args)
    assert ra is a and rt is t
    _close(a.numpy(), t.numpy())


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
def test_softmin_and_softmax2d_match_torch(dim):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32) * 4
    x[0, 1, 2, 3] = np.nan
    g = rng.standard_normal(x.shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (y, gx), (ty, tgx) = _both(lambda t: F.softmin(t, dim), lambda t: TF.softmin(t, dim), x, g)
    _close(y, ty, rtol=1e-5, atol=1e-7)
    _close(gx, tgx, rtol=1e-5, atol=1e-6)
    (y, gx), (ty, tgx) = _both(pve.nn.Softmax2d(), torch.nn.Softmax2d(), x[1], g[1])
    _close(y, ty, rtol=1e-5, atol=1e-7)
    _close(gx, tgx, rtol=1e-5, atol=1e-6)


def _module_pairs():
    pn, tn = pve.nn, torch.nn
    return [
        (pn.ELU(), tn.ELU()), (pn.ELU(0.5, True), tn.ELU(0.5, True)), (pn.CELU(), tn.CELU()),
        (pn.CELU(2.0, inplace=True), tn.CELU(2.0, inplace=True)), (pn.SELU(), tn.SELU()),
        (pn.SELU(True), tn.SELU(True)), (pn.Hardtanh(), tn.Hardtanh()),
        (pn.Hardtanh(-2, 3, True), tn.Hardtanh(-2, 3, True)),
        (pn.Threshold(0.1, 20), tn.Threshold(0.1, 20)),
        (pn.Threshold(1, 2.5, True), tn.Threshold(1, 2.5, True)),
        (pn.Softplus(), tn.Softplus()), (pn.Softplus(2, 10), tn.Softplus(2, 10)),
        (pn.Mish(), tn.Mish()), (pn.Mish(True), tn.Mish(True)), (pn.Softsign(), tn.Softsign()),
        (pn.Tanhshrink(), tn.Tanhshrink()), (pn.LogSigmoid(), tn.LogSigmoid()),
        (pn.Softmin(), tn.Softmin()), (pn.Softmin(1), tn.Softmin(1)),
        (pn.Softmax2d(), tn.Softmax2d()),
    ]


def test_activation_reprs_defaults_and_state_match_torch():
    for mine, theirs in _module_pairs():
        assert repr(mine) == repr(theirs)
        assert list(mine.state_dict()) == list(theirs.state_dict())
        for attr in ("alpha", "inplace", "min_val", "max_val", "beta", "threshold", "value",
                     "dim"):
            if hasattr(theirs, attr):
                assert getattr(mine, attr) == getattr(theirs, attr), attr


def _error_type(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return e
    return None


def assert_same_error(mine, theirs):
    em, et = _error_type(mine), _error_type(theirs)
    assert et is not None, "torch accepts this"
    assert em is not None, f"torch raises {type(et).__name__}: {et}; pve accepts"
    assert isinstance(em, type(et)), f"pve raised {type(em).__name__}, torch {type(et).__name__}"
    assert isinstance(em, (ValueError, TypeError)), f"{type(em).__name__} is not Value/TypeError"


def test_activation_errors_are_torchs_types():
    x = np.zeros((2, 3), np.float32)
    t = torch.zeros(2, 3)
    pairs = [
        (lambda: F.hardtanh(x, 2.0, 1.0), lambda: TF.hardtanh(t, 2.0, 1.0)),
        (lambda: pve.nn.Hardtanh(1.0, 1.0), lambda: torch.nn.Hardtanh(1.0, 1.0)),
        (lambda: F.celu(x, 0.0), lambda: TF.celu(t, 0.0)),
        (lambda: F.threshold(x, "a", 1.0), lambda: TF.threshold(t, "a", 1.0)),
        (lambda: F.softplus(x, "a"), lambda: TF.softplus(t, "a")),
        (lambda: pve.nn.Softmax2d()(np.zeros(3, np.float32)),
         lambda: torch.nn.Softmax2d()(torch.zeros(3))),
        (lambda: F.elu(pve.tensor(x, requires_grad=True), inplace=True),
         lambda: TF.elu(t.clone().requires_grad_(), inplace=True)),
    ]
    for mine, theirs in pairs:
        assert_same_error(mine, theirs)
    a = pve.tensor(np.array([-1.0, 2.0], np.float32), requires_grad=True)
    b = torch.tensor([-1.0, 2.0], requires_grad=True)
    ya, yb = F.elu(a * 1.0, -0.5, inplace=True), TF.elu(b * 1.0, -0.5, inplace=True)
    assert_same_error(lambda: ya.sum().backward(), lambda: yb.sum().backward())
