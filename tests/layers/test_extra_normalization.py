"""InstanceNorm2d / F.instance_norm and LocalResponseNorm / F.local_response_norm:
float64 references, finite differences, running statistics, state dicts and errors."""

import warnings

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op
from pyvision_engine.nn._f_common import RuntimeValueError
from reference import extra_layers_reference as ref
from reference import norm_reference

F = pve.nn.functional
nn = pve.nn
pytestmark = pytest.mark.kernels
rng = np.random.default_rng(31)


# ------------------------------------------------------------------ instance norm
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 7), (1, 2, 2, 2, 3), (4, 1, 3, 3)])
def test_instance_norm_matches_reference_with_affine_gradients(isa, shape):
    x = rng.standard_normal(shape) * 3 + 1
    c = shape[1]
    w, b = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    check_op(lambda t, tw, tb: F.instance_norm(t, weight=tw, bias=tb),
             lambda a, aw, ab: ref.instance_norm(a, aw, ab), [x, w, b], rtol=1e-5, atol=1e-5)
    check_op(lambda t: F.instance_norm(t, eps=0.1), lambda a: ref.instance_norm(a, eps=0.1), [x],
             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0])
def test_instance_norm_updates_running_stats_as_torch(isa, momentum):
    x = (rng.standard_normal((4, 3, 5, 6)) * rng.uniform(0.5, 3, (1, 3, 1, 1))).astype(np.float32)
    rm0, rv0 = rng.standard_normal(3).astype(np.float32), rng.uniform(0.5, 2, 3).astype(np.float32)
    rm, rv = pve.tensor(rm0), pve.tensor(rv0)
    y = F.instance_norm(x, rm, rv, momentum=momentum)
    np.testing.assert_allclose(y.numpy(), ref.instance_norm(x.astype(np.float64)), rtol=1e-5,
                               atol=1e-5)
    erm, erv = ref.instance_norm_running(x.astype(np.float64), rm0.astype(np.float64),
                                         rv0.astype(np.float64), momentum)
    np.testing.assert_allclose(rm.numpy(), erm, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rv.numpy(), erv, rtol=1e-6, atol=1e-7)


def test_instance_norm_with_running_stats_is_eval_batch_norm(isa):
    x = rng.standard_normal((2, 3, 4, 4))
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    w, b = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    check_op(lambda t, tw, tb: F.instance_norm(t, pve.tensor(rm.astype(np.float32)),
                                               pve.tensor(rv.astype(np.float32)), tw, tb,
                                               use_input_stats=False),
             lambda a, aw, ab: norm_reference.batch_norm_eval(
                 a, rm.astype(np.float32).astype(np.float64),
                 rv.astype(np.float32).astype(np.float64), aw, ab),
             [x, w, b], rtol=1e-5, atol=1e-5)
    # one spatial element is fine with running statistics
    y = F.instance_norm(np.ones((2, 3, 1, 1), np.float32), pve.tensor(np.zeros(3, np.float32)),
                        pve.tensor(np.ones(3, np.float32)), use_input_stats=False)
    np.testing.assert_allclose(y.numpy(), 1 / np.sqrt(1 + 1e-5), rtol=1e-6)


def test_instance_norm2d_module_train_and_eval(isa):
    m = nn.InstanceNorm2d(3, affine=True, track_running_stats=True, momentum=0.3)
    x = (rng.standard_normal((2, 3, 4, 5)) * 2 + 0.5).astype(np.float32)
    y = m(x)
    np.testing.assert_allclose(y.detach().numpy(), ref.instance_norm(x.astype(np.float64)),
                               rtol=1e-5, atol=1e-5)
    erm, erv = ref.instance_norm_running(x.astype(np.float64), np.zeros(3), np.ones(3), 0.3)
    np.testing.assert_allclose(m.running_mean.numpy(), erm, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(m.running_var.numpy(), erv, rtol=1e-6, atol=1e-7)
    assert int(m.num_batches_tracked.item()) == 0  # torch's InstanceNorm never counts
    m.eval()
    x2 = rng.standard_normal((1, 3, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(m(x2).detach().numpy(),
                               norm_reference.batch_norm_eval(x2.astype(np.float64), erm, erv),
                               rtol=1e-5, atol=1e-5)
    # without tracked statistics eval mode still uses the instance's own
    plain = nn.InstanceNorm2d(3).eval()
    np.testing.assert_allclose(plain(x).numpy(), ref.instance_norm(x.astype(np.float64)),
                               rtol=1e-5, atol=1e-5)


def test_instance_norm2d_momentum_none_and_unbatched_input(isa):
    m = nn.InstanceNorm2d(2, track_running_stats=True, momentum=None)
    m(rng.standard_normal((3, 2, 4, 4)).astype(np.float32))
    np.testing.assert_array_equal(m.running_mean.numpy(), np.zeros(2))  # momentum 0 (torch)
    np.testing.assert_array_equal(m.running_var.numpy(), np.ones(2))
    m = nn.InstanceNorm2d(2, affine=True)
    x = rng.standard_normal((2, 4, 5))
    t = pve.tensor(x.astype(np.float32), requires_grad=True)
    y = m(t)
    assert y.shape == (2, 4, 5)
    np.testing.assert_allclose(y.detach().numpy(), ref.instance_norm(x[None])[0], rtol=1e-5,
                               atol=1e-5)
    check_op(lambda a: m(a), lambda a: ref.instance_norm(a[None])[0], [x], rtol=1e-5, atol=1e-5)


def test_instance_norm_nan_stays_in_its_plane():
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    rm, rv = pve.tensor(np.zeros(3, np.float32)), pve.tensor(np.ones(3, np.float32))
    t = pve.tensor(x, requires_grad=True)
    y = F.instance_norm(t, rm, rv)
    bad = np.zeros((2, 3), bool)
    bad[0, 1] = True
    yn = y.detach().numpy()
    assert np.isnan(yn[bad]).all() and not np.isnan(yn[~bad]).any()
    assert np.isnan(rm.numpy()[1]) and not np.isnan(rm.numpy()[[0, 2]]).any()
    y.backward(pve.tensor(np.ones_like(x)))
    assert np.isnan(t.grad.numpy()[bad]).all() and not np.isnan(t.grad.numpy()[~bad]).any()


def test_instance_norm_empty_inputs_as_torch():
    rm, rv = pve.tensor(np.zeros(3, np.float32)), pve.tensor(np.ones(3, np.float32))
    assert F.instance_norm(np.zeros((0, 3, 4, 4), np.float32), rm, rv).shape == (0, 3, 4, 4)
    assert np.isnan(rm.numpy()).all() and np.isnan(rv.numpy()).all()  # a mean over no instances
    rm, rv = pve.tensor(np.zeros(3, np.float32)), pve.tensor(np.ones(3, np.float32))
    assert F.instance_norm(np.zeros((2, 3, 0, 4), np.float32), rm, rv).shape == (2, 3, 0, 4)
    np.testing.assert_array_equal(rm.numpy(), 0)  # empty planes: unchanged
    np.testing.assert_array_equal(rv.numpy(), 1)
    w = pve.tensor(np.ones(0, np.float32), requires_grad=True)
    y = F.instance_norm(np.zeros((2, 0, 4, 4), np.float32), weight=w)
    assert y.shape == (2, 0, 4, 4)
    y.backward(pve.tensor(np.zeros((2, 0, 4, 4), np.float32)))
    assert w.grad.shape == (0,)


def test_instance_norm_errors_name_the_layer():
    x = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"instance_norm: Expected more than 1 spatial element "
                                         r"when training, got input size \[2, 3, 1, 1\]"):
        F.instance_norm(np.zeros((2, 3, 1, 1), np.float32))
    with pytest.raises(ValueError, match="InstanceNorm2d: .*more than 1 spatial element"):
        nn.InstanceNorm2d(3)(np.zeros((2, 3, 1, 1), np.float32))
    with pytest.raises(RuntimeValueError, match="Expected running_mean and running_var to be "
                                                "defined when use_input_stats is false"):
        F.instance_norm(x, use_input_stats=False)
    with pytest.raises(ValueError, match="must either both be None or neither"):
        F.instance_norm(x, running_mean=pve.tensor(np.zeros(3, np.float32)))
    for kw in ({"weight": np.ones(4, np.float32)}, {"bias": np.ones((3, 1), np.float32)},
               {"running_mean": np.zeros(2, np.float32), "running_var": np.ones(2, np.float32)}):
        with pytest.raises(RuntimeValueError, match="instance_norm: .* should have shape"):
            F.instance_norm(x, **kw)
    with pytest.raises(TypeError, match="instance_norm"):
        F.instance_norm(x.astype(np.int64))
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected 3D or 4D input \(got 2D"):
        nn.InstanceNorm2d(3)(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"InstanceNorm2d: expected input's size at dim=1 to "
                                         r"match num_features \(3\), but got: 4"):
        nn.InstanceNorm2d(3, affine=True)(np.zeros((2, 4, 3, 3), np.float32))
    with pytest.warns(UserWarning, match="input's size at dim=0 does not match num_features"):
        y = nn.InstanceNorm2d(3)(rng.standard_normal((4, 3, 3)).astype(np.float32))
    assert y.shape == (4, 3, 3)
    with pytest.raises(TypeError, match="InstanceNorm2d"):
        nn.InstanceNorm2d(3.5)
    with pytest.raises(ValueError, match="InstanceNorm2d"):
        nn.InstanceNorm2d(-1)
    with pytest.raises(TypeError, match="InstanceNorm2d"):
        nn.InstanceNorm2d(3, dtype=np.float64)


def test_instance_norm2d_defaults_reprs_and_state_dict():
    m = nn.InstanceNorm2d(3)
    assert (m.eps, m.momentum, m.affine, m.track_running_stats) == (1e-5, 0.1, False, False)
    assert m.weight is None and m.bias is None and m.running_mean is None
    assert repr(m) == ("InstanceNorm2d(3, eps=1e-05, momentum=0.1, affine=False, bias=False, "
                       "track_running_stats=False)")
    assert list(m.state_dict()) == []
    m = nn.InstanceNorm2d(4, affine=True, track_running_stats=True)
    assert list(m.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                    "num_batches_tracked"]
    np.testing.assert_array_equal(m.weight.detach().numpy(), np.ones(4))
    np.testing.assert_array_equal(m.bias.detach().numpy(), np.zeros(4))
    assert "bias=False" in repr(nn.InstanceNorm2d(4, affine=True, bias=False))
    # torch's rules for plain (version-less) state dicts
    sd = {k: v.numpy() * 2 for k, v in m.state_dict().items() if k != "num_batches_tracked"}
    m2 = nn.InstanceNorm2d(4, affine=True, track_running_stats=True)
    m2.load_state_dict(sd)  # num_batches_tracked may be missing
    np.testing.assert_array_equal(m2.running_var.numpy(), 2 * np.ones(4))
    with pytest.raises(RuntimeError, match='Unexpected running stats buffer\\(s\\) "running_mean" '
                                           'and "running_var" for InstanceNorm2d'):
        nn.InstanceNorm2d(4).load_state_dict({"running_mean": np.zeros(4, np.float32),
                                              "running_var": np.ones(4, np.float32)})
    with pytest.raises(RuntimeError, match="Unexpected running stats"):
        nn.InstanceNorm2d(4).load_state_dict({"running_var": np.ones(4, np.float32)},
                                             strict=False)
    m.reset_running_stats()
    m.reset_parameters()


# ------------------------------------------------------------------ local response norm
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize("shape", [(2, 6, 5), (2, 5, 3, 4), (1, 4, 2, 3, 2)])
def test_local_response_norm_matches_reference(isa, size, shape):
    x = rng.standard_normal(shape) * 3
    for alpha, beta, k in ((1e-4, 0.75, 1.0), (0.3, 0.5, 2.0), (0.05, 1.7, 0.5)):
        check_op(lambda t: F.local_response_norm(t, size, alpha, beta, k),
                 lambda a: ref.local_response_norm(a, size, alpha, beta, k), [x],
                 rtol=1e-5, atol=1e-6)
    check_op(nn.LocalResponseNorm(size, 0.3, 0.5, 2.0),
             lambda a: ref.local_response_norm(a, size, 0.3, 0.5, 2.0), [x], rtol=1e-5, atol=1e-6)


def test_local_response_norm_nan_and_inf_reach_only_their_windows():
    x = np.ones((1, 6, 2), np.float32)
    x[0, 1, 0] = np.nan
    x[0, 4, 1] = np.inf
    y = F.local_response_norm(x, 3, alpha=0.5).numpy()
    with np.errstate(all="ignore"):
        r = ref.local_response_norm(x.astype(np.float64), 3, alpha=0.5)
    np.testing.assert_allclose(y, r, rtol=1e-6, atol=1e-7, equal_nan=True)
    assert np.isnan(y[0, 0:3, 0]).all() and not np.isnan(y[0, 3:, 0]).any()
    assert np.isnan(y[0, 4, 1]) and (y[0, [3, 5], 1] == 0).all()


def test_local_response_norm_errors_and_empty_input():
    with pytest.raises(ValueError, match=r"local_response_norm: Expected 3D or higher "
                                         r"dimensionality input \(got 2 dimensions\)"):
        F.local_response_norm(np.zeros((2, 3), np.float32), 2)
    for size in (0, -1):
        with pytest.raises(RuntimeValueError, match="kernel size should be greater than zero"):
            nn.LocalResponseNorm(size)(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(TypeError, match="local_response_norm: size must be an int"):
        F.local_response_norm(np.zeros((2, 3, 4), np.float32), 2.5)
    with pytest.raises(TypeError, match="local_response_norm"):
        F.local_response_norm(np.zeros((2, 3, 4), np.int64), 2)
    e = pve.tensor(np.zeros((2, 0, 4, 4), np.float32))
    assert F.local_response_norm(e, 0) is e  # torch returns an empty input as it is


def test_local_response_norm_repr():
    assert repr(nn.LocalResponseNorm(2)) == "LocalResponseNorm(2, alpha=0.0001, beta=0.75, k=1.0)"
    assert repr(nn.LocalResponseNorm(3, 1e-3, 0.5, 2)) == \
        "LocalResponseNorm(3, alpha=0.001, beta=0.5, k=2)"
    assert list(nn.LocalResponseNorm(2).state_dict()) == []


def test_no_numpy_warnings_escape():
    x = np.array([[[np.inf], [np.nan], [-np.inf], [0.0]]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = pve.tensor(x, requires_grad=True)
        F.local_response_norm(t, 2).backward(pve.tensor(np.ones_like(x)))
