"""Activations and softmax: references, finite differences, in-place forms, NaN."""

import contextlib

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op
from reference import activation_reference as ref

F = pve.nn.functional
pytestmark = pytest.mark.kernels
rng = np.random.default_rng(2)

PVE_FN = {
    "relu": F.relu, "relu6": F.relu6, "leaky_relu": lambda t: F.leaky_relu(t, 0.01),
    "sigmoid": F.sigmoid, "tanh": F.tanh, "gelu": F.gelu,
    "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "silu": F.silu,
    "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid,
}


def _inputs(n=203):
    # Wide range (exp/tanh/erf branch points), kept off the kinks at 0, +-3 and 6.
    x = np.concatenate([rng.uniform(-12, 12, n), rng.uniform(-0.7, 0.7, 40)])
    for kink in (0.0, 3.0, -3.0, 6.0):
        x[np.abs(x - kink) < 1e-3] += 2e-3
    return x.reshape(1, -1)


@pytest.mark.parametrize("name", sorted(PVE_FN))
def test_elementwise_matches_reference_and_finite_differences(isa, name):
    check_op(PVE_FN[name], ref.ELEMENTWISE[name], [_inputs()], rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("name", sorted(PVE_FN))
@pytest.mark.parametrize("grad_mode", ["no input needs grad", "no_grad"])
def test_inference_path_matches_reference(isa, name, grad_mode):
    # With no graph to record the activations call their kernel directly; the
    # result must be the same as through autograd, and record nothing.
    x = _inputs().reshape(3, -1).astype(np.float32)
    t = pve.tensor(x, requires_grad=grad_mode == "no_grad")
    with pve.no_grad() if grad_mode == "no_grad" else contextlib.nullcontext():
        y = PVE_FN[name](t)
    assert not y.requires_grad and y.grad_fn is None
    assert y.shape == x.shape and y.numpy().dtype == np.float32
    np.testing.assert_allclose(y.numpy(), ref.ELEMENTWISE[name](x.astype(np.float64)),
                               rtol=2e-6, atol=2e-6)
    np.testing.assert_array_equal(t.detach().numpy(), x)  # the input is left alone


@pytest.mark.parametrize("name", sorted(PVE_FN))
def test_elementwise_extremes_and_nan(isa, name):
    x = np.array([-1e30, -100.0, -88.0, -20.0, -1e-30, 0.0, 1e-30, 20.0, 88.0, 100.0, 1e30,
                  np.inf, -np.inf, np.nan], np.float32)
    y = PVE_FN[name](x).numpy()
    with np.errstate(all="ignore"):
        r = ref.ELEMENTWISE[name](x.astype(np.float64))
    finite = np.isfinite(r)
    np.testing.assert_allclose(y[finite], r[finite], rtol=1e-5, atol=1e-6)
    assert np.isnan(y[-1]), f"{name}(NaN) must be NaN"


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="gelu"):
        F.gelu(np.zeros(3, np.float32), approximate="fast")


def test_prelu_per_channel_and_shared(isa):
    x = _inputs(260).reshape(2, 3, 5, 10)
    w = np.array([0.1, -0.3, 0.7])
    check_op(F.prelu, ref.prelu, [x, w], rtol=1e-6, atol=1e-6)
    check_op(F.prelu, ref.prelu, [x, w[:1]], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="prelu"):
        F.prelu(x.astype(np.float32), np.ones(2, np.float32))
    m = pve.nn.PReLU(3)
    assert m.weight.shape == (3,) and float(m.weight.detach().numpy()[0]) == 0.25


@pytest.mark.parametrize("shape,dim", [((4, 37), 1), ((4, 37), 0), ((2, 3, 5, 19), 1),
                                       ((2, 3, 5, 19), -1), ((2, 3, 5, 19), 2), ((7,), 0)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_any_dim(isa, shape, dim, log):
    x = rng.standard_normal(shape) * 3
    fn = F.log_softmax if log else F.softmax
    rf = ref.log_softmax if log else ref.softmax
    check_op(lambda t: fn(t, dim), lambda a: rf(a, dim), [x], rtol=1e-5, atol=2e-6)


def test_softmax_is_stable_for_large_logits(isa):
    x = np.array([[1000.0, 999.0, -1000.0], [-1e4, -1e4, -1e4]], np.float32)
    np.testing.assert_allclose(F.softmax(x, 1).numpy(), ref.softmax(x.astype(np.float64), 1),
                               atol=1e-6)
    np.testing.assert_allclose(F.log_softmax(x, 1).numpy(),
                               ref.log_softmax(x.astype(np.float64), 1), rtol=1e-6)
    x[0, 1] = np.nan
    assert np.isnan(F.softmax(x, 1).numpy()[0]).all()
    assert np.isfinite(F.softmax(x, 1).numpy()[1]).all()


def test_softmax_default_dim_follows_torch():
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(F.softmax(x).numpy().sum(axis=1), 1.0, rtol=1e-6)
    x3 = rng.standard_normal((2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(F.softmax(x3).numpy().sum(axis=0), 1.0, rtol=1e-6)


@pytest.mark.parametrize("name", ["relu", "relu6", "leaky_relu", "silu", "hardswish",
                                  "hardsigmoid"])
def test_inplace_forms(isa, name):
    x = _inputs().astype(np.float32)
    expected = ref.ELEMENTWISE[name](x.astype(np.float64))
    # Without autograd: writes into the input and returns it.
    t = pve.tensor(x)
    kwargs = {"inplace": True}
    out = {"relu": F.relu, "relu6": F.relu6, "leaky_relu": F.leaky_relu, "silu": F.silu,
           "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid}[name](t, **kwargs)
    assert out is t
    np.testing.assert_allclose(t.numpy(), expected, rtol=1e-5, atol=1e-6)
    # Inside a graph: the gradient matches the out-of-place op's.
    a = pve.tensor(x, requires_grad=True)
    h = a * 1.0
    getattr(F, name)(h, inplace=True)
    h.sum().backward()
    b = pve.tensor(x, requires_grad=True)
    getattr(F, name)(b * 1.0).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-6)


def test_inplace_on_leaf_requiring_grad_raises():
    a = pve.tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        F.relu_(a)


def test_modules():
    x = _inputs().astype(np.float32)
    for m, name in [(pve.nn.ReLU(), "relu"), (pve.nn.ReLU6(), "relu6"), (pve.nn.Sigmoid(), "sigmoid"),
                    (pve.nn.Tanh(), "tanh"), (pve.nn.GELU(), "gelu"), (pve.nn.SiLU(), "silu"),
                    (pve.nn.GELU("tanh"), "gelu_tanh"), (pve.nn.Hardswish(), "hardswish"),
                    (pve.nn.Hardsigmoid(), "hardsigmoid"), (pve.nn.LeakyReLU(), "leaky_relu")]:
        np.testing.assert_allclose(m(x).numpy(), ref.ELEMENTWISE[name](x.astype(np.float64)),
                                   rtol=2e-6, atol=2e-6, err_msg=name)
    np.testing.assert_allclose(pve.nn.Softmax(1)(x).numpy().sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(pve.nn.LogSoftmax(1)(x).numpy(), ref.log_softmax(x.astype(np.float64), 1),
                               rtol=1e-5, atol=1e-5)
    assert not pve.nn.ReLU(inplace=True)(pve.tensor(np.array([-1.0], np.float32))).numpy()[0]


@pytest.mark.parametrize("name", sorted(PVE_FN))
@pytest.mark.parametrize("n", [1, 17, 40_000])  # tails; more than one parallel chunk
def test_add_activation_kernel_matches_reference(isa, name, n):
    # out = act(a + b) in one pass (the residual sum + ReLU of ResNet blocks in inference),
    # written into a (in place), into b, or into a third array.
    from pyvision_engine import _C
    from pyvision_engine.nn._f_activation import ACT_CODES

    code = ACT_CODES[name]
    alpha = 0.01 if name == "leaky_relu" else 0.0
    a = rng.uniform(-8, 8, n).astype(np.float32)
    b = rng.uniform(-8, 8, n).astype(np.float32)
    a[0] = np.nan if n > 1 else a[0]
    total = a.astype(np.float64) + b
    with np.errstate(all="ignore"):
        r = np.where(total > 0, total, total * alpha) if name == "leaky_relu" \
            else ref.ELEMENTWISE[name](total)
    for target in ("new", "a", "b"):
        aa, bb = a.copy(), b.copy()
        out = {"new": np.empty_like(a), "a": aa, "b": bb}[target]
        _C.add_activation_forward(code, aa, bb, out, alpha)
        np.testing.assert_allclose(out, r, rtol=2e-6, atol=2e-6, equal_nan=True)
        if n > 1:
            assert np.isnan(out[0]), f"{name}(NaN + x) must be NaN"


def test_add_activation_kernel_rejects_bad_arguments():
    from pyvision_engine import _C

    a = np.zeros(8, np.float32)
    with pytest.raises(ValueError, match="add \\+ activation"):
        _C.add_activation_forward(0, a, np.zeros(7, np.float32), a)
    with pytest.raises(ValueError, match="add \\+ activation"):
        _C.add_activation_forward(0, a, a.copy(), np.zeros(9, np.float32))
    with pytest.raises(ValueError, match="activation code"):
        _C.add_activation_forward(99, a, a.copy(), a)


def test_hardswish_hardsigmoid_divide_by_six_as_torch(isa):
    # torch computes x * clamp(x + 3, 0, 6) / 6 with a division; times 1/6 rounds
    # differently (hardswish(3.0000002) would be 3.0000005).
    x = np.linspace(-4, 7, 20_001, dtype=np.float32)
    clamp = np.minimum(np.maximum(x + np.float32(3), np.float32(0)), np.float32(6))
    np.testing.assert_array_equal(F.hardswish(x).numpy(), x * clamp / np.float32(6))
    np.testing.assert_array_equal(F.hardsigmoid(x).numpy(), clamp / np.float32(6))


def test_hardswish_gradient_at_the_kinks_takes_the_outer_slopes(isa):
    # torch 2.x: 0 for x <= -3, 1 for x >= 3, x / 3 + 0.5 between.
    x = np.array([-3.0, 3.0, -3.0000002, 2.9999998, 0.0, 4.0, -4.0] * 5, np.float32)
    t = pve.tensor(x, requires_grad=True)
    F.hardswish(t).sum().backward()
    want = np.where(x <= -3, 0, np.where(x >= 3, 1, x / np.float32(3) + np.float32(0.5)))
    np.testing.assert_array_equal(t.grad.numpy(), want.astype(np.float32))


def test_relu_gradient_passes_nan_relu6_drops_it(isa):
    # As torch's vectorized kernels: threshold_backward zeroes where y <= 0 only
    # (NaN passes); hardtanh_backward keeps 0 < x < 6 only (NaN dropped).
    x = np.array([np.nan, -1.0, 0.0, 2.0, 6.0, np.inf, -np.inf] * 5, np.float32)
    for fn, want in ((F.relu, [1, 0, 0, 1, 1, 1, 0]), (F.relu6, [0, 0, 0, 1, 0, 0, 0])):
        t = pve.tensor(x, requires_grad=True)
        fn(t).sum().backward()
        np.testing.assert_array_equal(t.grad.numpy(), np.array(want * 5, np.float32))


def test_prelu_without_a_channel_dim_takes_only_a_shared_weight():
    # torch 2.x: an input with < 2 dims has one channel.
    x = np.array([-1.0, 2.0, -3.0], np.float32)
    with pytest.raises(ValueError, match="prelu"):
        F.prelu(x, np.full(3, 0.5, np.float32))
    np.testing.assert_array_equal(F.prelu(x, np.full(1, 0.5, np.float32)).numpy(),
                                  [-0.5, 2.0, -1.5])


def test_hardswish_and_hardsigmoid_reprs_omit_inplace_as_torch():
    assert repr(pve.nn.Hardswish(inplace=True)) == "Hardswish()"
    assert repr(pve.nn.Hardsigmoid(inplace=True)) == "Hardsigmoid()"
    assert pve.nn.Hardswish(inplace=True).inplace is True
    assert repr(pve.nn.ReLU(inplace=True)) == "ReLU(inplace=True)"  # (ReLU keeps it)


def test_prelu_takes_cpu_float32_device_and_dtype():
    assert pve.nn.PReLU(3, 0.25, "cpu", pve.float32).weight.shape == (3,)
    assert pve.nn.PReLU(device="cpu", dtype=np.float32).num_parameters == 1
    with pytest.raises(ValueError, match="PReLU: only device='cpu'"):
        pve.nn.PReLU(device="cuda:0")
    with pytest.raises(TypeError, match="PReLU: only dtype float32"):
        pve.nn.PReLU(dtype=np.float16)
