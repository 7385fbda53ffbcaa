"""RMSNorm / F.rms_norm, Bilinear / F.bilinear (and the later layers of this file)
against float64 numpy references written here, and their gradients against float64
central finite differences (layers_helpers.check_op)."""

import math

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op

nn, F = pve.nn, pve.nn.functional
rng = np.random.default_rng(31)
F32_EPS = float(np.finfo(np.float32).eps)


def _randn(*shape):
    return rng.standard_normal(shape)


# ------------------------------------------------------------------------- rms_norm
def np_rms_norm(x, shape, w=None, eps=None):
    eps = F32_EPS if eps is None else eps
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    y = x / np.sqrt((x * x).mean(axis=axes, keepdims=True) + eps)
    return y if w is None else y * w


@pytest.mark.parametrize("xshape,shape,affine,eps", [
    ((3, 5), [5], True, None), ((2, 3, 4), [3, 4], True, 1e-3), ((4, 6), (6,), False, None),
    ((7,), [7], True, 0.5), ((2, 1, 3), [3], False, 1e-6),
])
def test_rms_norm_values_and_grads(xshape, shape, affine, eps):
    x = _randn(*xshape)
    if affine:
        w = _randn(*tuple(shape))
        check_op(lambda a, b: F.rms_norm(a, shape, b, eps),
                 lambda a, b: np_rms_norm(a, tuple(shape), b, eps), [x, w])
    else:
        check_op(lambda a: F.rms_norm(a, shape, None, eps),
                 lambda a: np_rms_norm(a, tuple(shape), None, eps), [x])


def test_rms_norm_module():
    m = nn.RMSNorm([2, 3])
    assert m.eps is None and m.normalized_shape == (2, 3) and m.elementwise_affine
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones((2, 3), np.float32))
    assert [n for n, _ in m.named_parameters()] == ["weight"]
    assert repr(m) == "RMSNorm((2, 3), eps=None, elementwise_affine=True)"
    with pve.no_grad():
        m.weight.copy_(pve.tensor(_randn(2, 3).astype(np.float32)))
    x = _randn(4, 2, 3).astype(np.float32)
    np.testing.assert_allclose(m(pve.tensor(x)).detach().numpy(),
                               np_rms_norm(x.astype(np.float64), (2, 3),
                                           m.weight.detach().numpy().astype(np.float64)),
                               rtol=1e-5, atol=1e-6)
    m2 = nn.RMSNorm(4, eps=1e-2, elementwise_affine=False)
    assert m2.weight is None and list(m2.parameters()) == []
    x = _randn(3, 4).astype(np.float32)
    np.testing.assert_allclose(m2(pve.tensor(x)).numpy(),
                               np_rms_norm(x.astype(np.float64), (4,), None, 1e-2),
                               rtol=1e-5, atol=1e-6)
    assert m2(pve.tensor(np.zeros((0, 4), np.float32))).shape == (0, 4)


def test_rms_norm_errors():
    x = pve.tensor(np.zeros((2, 3), np.float32))
    with pytest.raises(RuntimeError, match="normalized_shape"):
        F.rms_norm(x, [4])
    with pytest.raises(RuntimeError, match="weight"):
        F.rms_norm(x, [3], pve.tensor(np.ones(2, np.float32)))
    with pytest.raises(RuntimeError, match="at least 1-dimensional"):
        F.rms_norm(x, [])
    with pytest.raises(TypeError, match="normalized_shape"):
        F.rms_norm(x, 3)
    with pytest.raises(RuntimeError, match="normalized_shape"):
        nn.RMSNorm(4)(x)


# ------------------------------------------------------------------------- bilinear
def np_bilinear(x1, x2, w, b=None):
    y = np.einsum("...i,kij,...j->...k", x1, w, x2)
    return y if b is None else y + b


@pytest.mark.parametrize("lead,in1,in2,out,bias", [
    ((4,), 3, 5, 2, True), ((2, 3), 2, 2, 4, False), ((), 3, 4, 5, True), ((0,), 2, 3, 2, True),
    ((1,), 1, 1, 1, True),
])
def test_bilinear_values_and_grads(lead, in1, in2, out, bias):
    x1, x2, w = _randn(*lead, in1), _randn(*lead, in2), _randn(out, in1, in2)
    if bias:
        check_op(F.bilinear, np_bilinear, [x1, x2, w, _randn(out)])
    else:
        check_op(F.bilinear, np_bilinear, [x1, x2, w])


def test_bilinear_module_init_and_forward():
    pve.manual_seed(0)
    m = nn.Bilinear(20, 30, 40)
    assert m.weight.shape == (40, 20, 30) and m.bias.shape == (40,)
    bound = 1 / math.sqrt(20)
    w = m.weight.detach().numpy()
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(m.bias.detach().numpy()) <= bound)
    # U(-b, b): mean 0, variance b^2 / 3 (24000 draws)
    assert abs(w.mean()) < 0.01 and abs(w.var() / (bound ** 2 / 3) - 1) < 0.05
    assert repr(m) == "Bilinear(in1_features=20, in2_features=30, out_features=40, bias=True)"
    x1, x2 = _randn(3, 20).astype(np.float32), _randn(3, 30).astype(np.float32)
    np.testing.assert_allclose(
        m(pve.tensor(x1), pve.tensor(x2)).detach().numpy(),
        np_bilinear(x1.astype(np.float64), x2.astype(np.float64), w.astype(np.float64),
                    m.bias.detach().numpy().astype(np.float64)), rtol=1e-4, atol=1e-5)
    assert nn.Bilinear(2, 3, 4, bias=False).bias is None
    with pytest.raises(ValueError, match="in1_features"):
        nn.Bilinear(0, 3, 4)


def test_bilinear_errors():
    w = pve.tensor(np.zeros((5, 3, 4), np.float32))
    z = lambda *s: pve.tensor(np.zeros(s, np.float32))  # noqa: E731
    with pytest.raises(RuntimeError, match="input2 size"):
        F.bilinear(z(2, 3), z(2, 3), w)
    with pytest.raises(RuntimeError, match="input1 size"):
        F.bilinear(z(2, 2), z(2, 4), w)
    with pytest.raises(RuntimeError, match="batch dimensions"):
        F.bilinear(z(2, 3), z(3, 4), w)
    with pytest.raises(RuntimeError, match="bias size"):
        F.bilinear(z(2, 3), z(2, 4), w, z(4))
