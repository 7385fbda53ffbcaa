"""nn.utils.parametrize / parametrizations against plain numpy: the parametrized value,
right_inverse on registration and assignment, state_dict keys, gradients w.r.t. the
originals (float64 finite differences), cached(), removal, transfer, weight_norm and
spectral_norm arithmetic, and the eval-mode inference paths of a parametrized Conv2d
(which must use the parametrized weight, and see changes of the original)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import nn
from pyvision_engine.nn.utils import parametrizations as PZ
from pyvision_engine.nn.utils import parametrize as P
from reference.gradcheck import assert_grad_close, numerical_grads


class Symmetric(nn.Module):
    """X -> triu(X) + triu(X, 1)^T; right_inverse keeps the upper triangle."""

    def forward(self, X):
        return X.triu() + X.triu(1).transpose(-1, -2)

    def right_inverse(self, A):
        return A.triu()


class Scale(nn.Module):
    """w -> 2 w (no right_inverse)."""

    def forward(self, w):
        return w * 2.0


class Halve(nn.Module):
    def forward(self, w):
        return w * 0.5

    def right_inverse(self, w):
        return w * 2.0


def _sym(x):
    return np.triu(x) + np.triu(x, 1).T


def _linear(n_in=3, n_out=3, seed=0):
    m = nn.Linear(n_in, n_out)
    rng = np.random.default_rng(seed)
    m.weight._data[...] = rng.standard_normal(m.weight.shape).astype(np.float32)
    m.bias._data[...] = rng.standard_normal(m.bias.shape).astype(np.float32)
    return m


def test_register_swaps_class_and_keys():
    m = _linear()
    w0 = m.weight._data.copy()
    weight = m.weight
    P.register_parametrization(m, "weight", Symmetric())
    assert type(m).__name__ == "ParametrizedLinear" and isinstance(m, nn.Linear)
    assert P.type_before_parametrizations(m) is nn.Linear
    assert P.is_parametrized(m) and P.is_parametrized(m, "weight")
    assert not P.is_parametrized(m, "bias")
    assert list(m.state_dict()) == ["bias", "parametrizations.weight.original"]
    assert [n for n, _ in m.named_parameters()] == ["bias", "parametrizations.weight.original"]
    original = m.parametrizations.weight.original
    assert original is weight  # the same Parameter, now holding right_inverse(w0)
    np.testing.assert_array_equal(original._data, np.triu(w0))
    np.testing.assert_allclose(m.weight._data, _sym(np.triu(w0)), rtol=0, atol=0)
    # another instance of the class is unaffected
    assert type(_linear()) is nn.Linear


def test_assignment_runs_right_inverse():
    m = _linear()
    P.register_parametrization(m, "weight", Symmetric())
    a = np.random.default_rng(1).standard_normal((3, 3)).astype(np.float32)
    original = m.parametrizations.weight.original
    m.weight = pve.Tensor(a)
    assert m.parametrizations.weight.original is original
    np.testing.assert_array_equal(original._data, np.triu(a))
    np.testing.assert_array_equal(m.weight._data, _sym(np.triu(a)))
    P.register_parametrization(m, "bias", Scale())
    with pytest.raises(RuntimeError, match="Scale does not implement right_inverse"):
        m.bias = pve.Tensor(np.zeros(3, np.float32))


def test_gradients_reach_original():
    m = _linear(seed=2)
    P.register_parametrization(m, "weight", Symmetric())
    P.register_parametrization(m, "weight", Scale())  # chained: 2 * sym(original)
    x = np.random.default_rng(3).standard_normal((4, 3)).astype(np.float32)
    up = np.random.default_rng(4).standard_normal((4, 3)).astype(np.float32)
    y = m(pve.Tensor(x))
    y.backward(pve.Tensor(up))
    b = m.bias._data.astype(np.float64)

    def f(w):
        return x.astype(np.float64) @ (2 * _sym(w)).T + b

    (expected,) = numerical_grads(f, [m.parametrizations.weight.original._data], up)
    assert_grad_close(m.parametrizations.weight.original.grad._data, expected,
                      name="original")
    np.testing.assert_allclose(y._data, f(m.parametrizations.weight.original._data),
                               rtol=1e-5, atol=1e-5)


def test_buffer_parametrization_and_cached():
    m = nn.BatchNorm1d(3)
    m.running_var._data[...] = np.array([1, 2, 3], np.float32)
    calls = []

    class Count(nn.Module):
        def forward(self, x):
            calls.append(1)
            return x * 1.0

    P.register_parametrization(m, "running_var", Count())
    assert "parametrizations.running_var.original" in m.state_dict()
    assert not isinstance(m.parametrizations.running_var.original, nn.Parameter)
    n = len(calls)
    with P.cached():
        a = m.running_var
        b = m.running_var
        with P.cached():
            c = m.running_var
    assert a is b is c and len(calls) == n + 1
    m.running_var
    assert len(calls) == n + 2  # outside the block: computed at each access


def test_remove_parametrizations():
    m = _linear()
    w0 = m.weight._data.copy()
    P.register_parametrization(m, "weight", Scale())
    original = m.parametrizations.weight.original
    P.remove_parametrizations(m, "weight")  # leave_parametrized=True
    assert type(m) is nn.Linear and not hasattr(m, "parametrizations")
    assert m.weight is original and isinstance(m.weight, nn.Parameter)
    np.testing.assert_array_equal(m.weight._data, 2 * w0)
    assert list(m.state_dict()) == ["weight", "bias"] or list(m.state_dict()) == ["bias", "weight"]
    P.register_parametrization(m, "weight", Scale())
    P.register_parametrization(m, "bias", Scale())
    P.remove_parametrizations(m, "weight", leave_parametrized=False)
    np.testing.assert_array_equal(m.weight._data, 2 * w0)  # the original, unscaled
    assert type(m).__name__ == "ParametrizedLinear"  # bias still parametrized
    P.remove_parametrizations(m, "bias")
    assert type(m) is nn.Linear
    with pytest.raises(ValueError, match="does not have a parametrization on weight"):
        P.remove_parametrizations(m, "weight")
    lin = _linear()
    PZ.weight_norm(lin)
    with pytest.raises(ValueError, match="Cannot leave unparametrized"):
        P.remove_parametrizations(lin, "weight", leave_parametrized=False)
    w = lin.weight._data.copy()
    P.remove_parametrizations(lin, "weight")
    np.testing.assert_allclose(lin.weight._data, w, rtol=1e-6)
    assert isinstance(lin.weight, nn.Parameter)


def test_registration_errors():
    m = _linear()
    with pytest.raises(ValueError, match="does not have a parameter, a buffer, or a parametrized"):
        P.register_parametrization(m, "nope", Scale())

    class Shrink(nn.Module):
        def forward(self, w):
            return w[:1]

    with pytest.raises(ValueError, match="may not change the shape"):
        P.register_parametrization(m, "weight", Shrink())
    assert type(m) is nn.Linear and isinstance(m.weight, nn.Parameter)
    P.register_parametrization(m, "weight", Shrink(), unsafe=True)
    assert tuple(m.weight.shape) == (1, 3)
    with pytest.raises(ValueError, match="requires one or more modules"):
        P.ParametrizationList([], m.bias)
    with pytest.raises(KeyError, match="already exists"):
        m.weight = nn.Parameter(np.zeros((3, 3), np.float32))


def test_right_inverse_sequence_and_transfer():
    a = _linear(seed=5)
    PZ.weight_norm(a)
    plist = a.parametrizations.weight
    assert not plist.is_tensor and plist.ntensors == 2
    assert not hasattr(plist, "original")
    b = nn.Linear(3, 3)
    P.transfer_parametrizations_and_params(a, b)
    assert b.parametrizations.weight.original0 is plist.original0
    assert b.parametrizations.weight.original1 is plist.original1
    np.testing.assert_array_equal(b.weight._data, a.weight._data)
    c = _linear(seed=6)
    P.register_parametrization(c, "weight", Scale())
    d = nn.Linear(3, 3)
    P.transfer_parametrizations_and_params(c, d, "weight")
    assert d.parametrizations.weight.original is c.parametrizations.weight.original


def test_deepcopy_and_pickle():
    m = _linear()
    P.register_parametrization(m, "weight", Halve())
    c = copy.deepcopy(m)
    assert type(c).__name__ == "ParametrizedLinear" and type(c) is type(m)
    np.testing.assert_array_equal(c.weight._data, m.weight._data)
    c.weight = pve.Tensor(np.ones((3, 3), np.float32))
    assert not np.array_equal(c.weight._data, m.weight._data)
    with pytest.raises(RuntimeError, match="only supported through state_dict"):
        pickle.dumps(m)


def test_load_state_dict_round_trip():
    a, b = _linear(seed=1), _linear(seed=2)
    for m in (a, b):
        P.register_parametrization(m, "weight", Halve())
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(b.weight._data, a.weight._data)


@pytest.mark.parametrize("dim", [0, 1, -1, None])
def test_weight_norm_values_and_grads(dim):
    rng = np.random.default_rng(7)
    m = nn.Linear(4, 3)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    m.weight._data[...] = w
    PZ.weight_norm(m, dim=dim)
    g, v = m.parametrizations.weight.original0, m.parametrizations.weight.original1
    wd = w.astype(np.float64)
    whole = dim is None or dim == -1  # torch's norm_except_dim: -1 means the whole tensor
    if whole:
        ref_g = np.linalg.norm(wd)
    else:
        axes = tuple(i for i in range(2) if i != dim % 2)
        ref_g = np.sqrt((wd ** 2).sum(axis=axes, keepdims=True))
    np.testing.assert_allclose(g._data, ref_g, rtol=1e-6)
    np.testing.assert_array_equal(v._data, w)
    np.testing.assert_allclose(m.weight._data, w, rtol=1e-5, atol=1e-6)

    def wn(gg, vv):
        if whole:
            return vv * (gg / np.linalg.norm(vv))
        return vv * gg / np.sqrt((vv ** 2).sum(axis=axes, keepdims=True))

    g._data[...] = (np.abs(rng.standard_normal(g.shape)) + 0.5).astype(np.float32)
    g._bump_version()
    up = rng.standard_normal((3, 4)).astype(np.float32)
    out = m.weight
    np.testing.assert_allclose(out._data, wn(g._data.astype(np.float64), v._data), rtol=1e-5)
    out.backward(pve.Tensor(up))
    eg, ev = numerical_grads(wn, [g._data, v._data], up)
    assert_grad_close(g.grad._data, eg, name="g")
    assert_grad_close(v.grad._data, ev, name="v")


def _np_power(w, u, v, n, eps=1e-12):
    w = w.astype(np.float64)
    for _ in range(n):
        u = w @ v
        u = u / max(np.linalg.norm(u), eps)
        v = w.T @ u
        v = v / max(np.linalg.norm(v), eps)
    return u, v


@pytest.mark.parametrize("module,dim", [("linear", None), ("conv", None), ("convT", None),
                                        ("conv", 1)])
def test_spectral_norm_matches_numpy(module, dim):
    rng = np.random.default_rng(8)
    pve.manual_seed(8)  # u and v start from pve's generator
    m = {"linear": lambda: nn.Linear(5, 4), "conv": lambda: nn.Conv2d(2, 3, 3),
         "convT": lambda: nn.ConvTranspose2d(2, 3, 3)}[module]()
    w = rng.standard_normal(m.weight.shape).astype(np.float32)
    m.weight._data[...] = w
    PZ.spectral_norm(m, n_power_iterations=2, dim=dim)
    sn = m.parametrizations.weight[0]
    expect_dim = dim if dim is not None else (1 if module == "convT" else 0)
    assert sn.dim == expect_dim
    mat = np.moveaxis(w, expect_dim, 0).reshape(w.shape[expect_dim], -1).astype(np.float64)
    assert sn._u.shape == (mat.shape[0],) and sn._v.shape == (mat.shape[1],)
    # u, v are unit vectors; the construction ran 15 iterations, close to the top pair
    np.testing.assert_allclose(np.linalg.norm(sn._u._data), 1, rtol=1e-5)
    u0, v0 = sn._u._data.astype(np.float64), sn._v._data.astype(np.float64)
    y = m.weight  # training mode: two more iterations, then w / (u^T W v)
    u, v = _np_power(mat, u0, v0, 2)
    np.testing.assert_allclose(sn._u._data, u, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sn._v._data, v, rtol=1e-4, atol=1e-5)
    sigma = u @ mat @ v
    np.testing.assert_allclose(y._data, w / sigma, rtol=1e-4, atol=1e-6)
    # (how close sigma is to the top singular value depends on the random start and the
    # gap between singular values: only that it does not exceed it is certain)
    assert sigma <= np.linalg.svd(mat, compute_uv=False)[0] * (1 + 1e-6)
    # eval: no iteration, u and v unchanged
    m.eval()
    before = sn._u._data.copy()
    m.weight
    np.testing.assert_array_equal(sn._u._data, before)
    # gradient w.r.t. the original with u, v held fixed (as torch: they are constants)
    m.train()
    up = rng.standard_normal(w.shape).astype(np.float32)
    m.eval()
    out = m.weight
    out.backward(pve.Tensor(up))
    uu, vv = sn._u._data.astype(np.float64), sn._v._data.astype(np.float64)

    def f(ww):
        mm = np.moveaxis(ww, expect_dim, 0).reshape(ww.shape[expect_dim], -1)
        return ww / (uu @ mm @ vv)

    (eg,) = numerical_grads(f, [m.parametrizations.weight.original._data], up)
    assert_grad_close(m.parametrizations.weight.original.grad._data, eg, name="weight")


def test_spectral_norm_errors_and_1d():
    with pytest.raises(ValueError, match="has no parameter or buffer with name 'nope'"):
        PZ.spectral_norm(nn.Linear(2, 2), "nope")
    with pytest.raises(IndexError, match="Dimension out of range"):
        PZ.spectral_norm(nn.Linear(2, 2), dim=2)
    with pytest.raises(ValueError, match="n_power_iterations to be positive"):
        PZ.spectral_norm(nn.Linear(2, 2), n_power_iterations=0)
    m = nn.Linear(2, 3)
    b = np.array([3.0, 4.0, 0.0], np.float32)
    m.bias._data[...] = b
    PZ.spectral_norm(m, "bias")
    np.testing.assert_allclose(m.bias._data, b / 5.0, rtol=1e-6)


def _conv_ref(x, w, b):
    """float64 NCHW convolution (stride 1, no padding)."""
    k, c, kh, kw = w.shape
    n, _, h, ww = x.shape
    out = np.zeros((n, k, h - kh + 1, ww - kw + 1))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, :, i:i + out.shape[2], j:j + out.shape[3]].astype(np.float64)
            out += np.einsum("kc,nchw->nkhw", w[:, :, i, j].astype(np.float64), patch)
    return out + b[None, :, None, None]


@pytest.mark.parametrize("kernel", [1, 3])
def test_parametrized_conv_inference_uses_parametrized_weight(kernel):
    """eval + no_grad runs the cached inference paths (packed weights, the per-call
    fast path). They must use Scale()(original) = 2 * original -- reading the raw
    original gives half the result -- and see every change of the original."""
    rng = np.random.default_rng(9)
    conv = nn.Conv2d(4, 8, kernel)
    P.register_parametrization(conv, "weight", Scale())
    conv.eval()
    x = pve.Tensor(rng.standard_normal((2, 4, 7, 7)).astype(np.float32))
    original = conv.parametrizations.weight.original

    def ref():
        return _conv_ref(x._data, 2 * original._data, conv.bias._data)

    with pve.no_grad():
        for _ in range(2):  # the second call takes the per-call fast path
            np.testing.assert_allclose(conv(x)._data, ref(), rtol=1e-4, atol=1e-4)
        original.mul_(1.5)  # in place, no access to conv.weight in between
        np.testing.assert_allclose(conv(x)._data, ref(), rtol=1e-4, atol=1e-4)
        original.data = rng.standard_normal(original.shape).astype(np.float32)
        np.testing.assert_allclose(conv(x)._data, ref(), rtol=1e-4, atol=1e-4)
        with pytest.raises(RuntimeError, match="does not implement right_inverse"):
            conv.weight = pve.Tensor(np.ones(original.shape, np.float32))
        np.testing.assert_allclose(conv(x)._data, ref(), rtol=1e-4, atol=1e-4)
    # an optimizer step on the original, then inference again
    opt = pve.optim.SGD(conv.parameters(), lr=0.1)
    conv.train()
    conv(x).sum().backward()
    opt.step()
    conv.eval()
    with pve.no_grad():
        for _ in range(2):
            np.testing.assert_allclose(conv(x)._data, ref(), rtol=1e-4, atol=1e-4)


def test_parametrized_conv_in_fused_sequence():
    """Sequential(conv, bn, relu) in eval under no_grad fuses plain convolutions; a
    parametrized one must still give relu(bn(conv with the parametrized weight))."""
    rng = np.random.default_rng(10)
    conv = nn.Conv2d(3, 4, 3)
    bn = nn.BatchNorm2d(4)
    bn.running_mean._data[...] = rng.standard_normal(4).astype(np.float32)
    bn.running_var._data[...] = (rng.random(4) + 0.5).astype(np.float32)
    P.register_parametrization(conv, "weight", Scale())
    seq = nn.Sequential(conv, bn, nn.ReLU())
    seq.eval()
    x = pve.Tensor(rng.standard_normal((2, 3, 6, 6)).astype(np.float32))
    original = conv.parametrizations.weight.original

    def ref():
        y = _conv_ref(x._data, 2 * original._data, conv.bias._data)
        y = (y - bn.running_mean._data[None, :, None, None]) / np.sqrt(
            bn.running_var._data[None, :, None, None] + bn.eps)
        return np.maximum(y, 0)

    with pve.no_grad():
        for _ in range(2):
            np.testing.assert_allclose(seq(x)._data, ref(), rtol=1e-4, atol=1e-4)
        original.mul_(-1.0)
        np.testing.assert_allclose(seq(x)._data, ref(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel", [1, 3])
def test_parametrized_conv_bn_change_in_sequence(kernel):
    """A parametrized conv followed by a BatchNorm in a Sequential (1x1: the blocked
    pointwise chain; 3x3: BatchNorm folding): a change of the BatchNorm's running
    statistics between calls must show in the result."""
    rng = np.random.default_rng(11)
    conv = nn.Conv2d(16, 16, kernel)
    bn = nn.BatchNorm2d(16)
    P.register_parametrization(conv, "weight", Scale())
    conv2 = nn.Conv2d(16, 16, 1)
    seq = nn.Sequential(conv, bn, nn.ReLU(), conv2)
    seq.eval()
    x = pve.Tensor(rng.standard_normal((1, 16, 8, 8)).astype(np.float32))

    def ref():
        y = _conv_ref(x._data, 2 * conv.parametrizations.weight.original._data, conv.bias._data)
        y = (y - bn.running_mean._data[None, :, None, None]) / np.sqrt(
            bn.running_var._data[None, :, None, None] + bn.eps)
        return _conv_ref(np.maximum(y, 0), conv2.weight._data, conv2.bias._data)

    with pve.no_grad():
        for _ in range(2):
            np.testing.assert_allclose(seq(x)._data, ref(), rtol=1e-4, atol=1e-4)
        bn.running_mean.add_(0.5)
        np.testing.assert_allclose(seq(x)._data, ref(), rtol=1e-4, atol=1e-4)
        conv.parametrizations.weight.original.mul_(0.5)
        np.testing.assert_allclose(seq(x)._data, ref(), rtol=1e-4, atol=1e-4)


def test_inference_value_is_refreshed_not_aliased():
    m = _linear()
    P.register_parametrization(m, "weight", Scale())
    m.eval()
    with pve.no_grad():
        a = m.weight
        b = m.weight
        assert a is b  # one tensor while nothing changed
        m.parametrizations.weight.original.add_(1.0)
        c = m.weight
        np.testing.assert_array_equal(c._data, 2 * m.parametrizations.weight.original._data)
        c.mul_(0.0)  # writing to the value itself is seen too
        np.testing.assert_array_equal(m.weight._data,
                                      2 * m.parametrizations.weight.original._data)
    m.train()
    assert m.weight is not m.weight  # training / autograd: a new tensor each access


def test_exposed_as_submodules():
    assert nn.utils.parametrize is P and nn.utils.parametrizations is PZ
