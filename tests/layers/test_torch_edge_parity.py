"""Edge cases against live torch (skipped without it), at every ISA level: kinks and
NaN in activation gradients, nearest-interpolation index rules, fully ignored NLL
targets, error types, reprs."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyvision_engine as pve  # noqa: E402

TF = torch.nn.functional
F = pve.nn.functional


def _grads(pve_fn, torch_fn, x):
    p = pve.tensor(x, requires_grad=True)
    t = torch.tensor(x, requires_grad=True)
    yp, yt = pve_fn(p), torch_fn(t)
    g = np.linspace(-1, 1, yt.numel(), dtype=np.float32).reshape(tuple(yt.shape))
    yp.backward(pve.tensor(g))
    yt.backward(torch.tensor(g))
    return yp.detach().numpy(), yt.detach().numpy(), p.grad.numpy(), t.grad.numpy()


@pytest.mark.parametrize("name", ["relu", "relu6", "hardswish", "hardsigmoid", "leaky_relu"])
def test_activation_kinks_and_nan_match_torch(isa, name):
    kinks = [-3.0, 3.0, 0.0, 6.0, -6.0, 2.9999998, 3.0000002, -3.0000002, -2.9999998,
             6.0000005, 5.9999995, np.inf, -np.inf, np.nan, 1e30, -1e30]
    # 64 copies: torch's vectorized kernels (its scalar tail treats NaN differently)
    x = np.array(kinks * 64, np.float32)
    yp, yt, gp, gt = _grads(getattr(F, name), getattr(TF, name), x)
    np.testing.assert_array_equal(yp, yt)
    np.testing.assert_array_equal(gp, gt)


@pytest.mark.parametrize("scale", [2.3, 2.1, 1.2, 1.9, 0.5, 3.0, (2.2, 1.1)])
def test_nearest_interpolate_index_rules_match_torch(scale):
    # out == in copies and out == 2 * in repeats, whatever the scale_factor
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 5)).astype(np.float32)
    yp, yt, gp, gt = _grads(lambda t: F.interpolate(t, scale_factor=scale),
                            lambda t: TF.interpolate(t, scale_factor=scale), x)
    np.testing.assert_array_equal(yp, yt)
    np.testing.assert_allclose(gp, gt, rtol=1e-6, atol=1e-6)  # sums of the same terms


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(3, 4), (4,), (2, 4, 3)])
def test_nll_loss_with_every_target_ignored_matches_torch(reduction, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    target = np.full(shape[:1] + shape[2:] if len(shape) > 1 else (), 1, np.int64)
    yp, yt, gp, gt = _grads(
        lambda t: F.nll_loss(t, target, ignore_index=1, reduction=reduction),
        lambda t: TF.nll_loss(t, torch.tensor(target), ignore_index=1, reduction=reduction), x)
    np.testing.assert_array_equal(yp, yt)
    np.testing.assert_array_equal(gp, gt)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("bad", [4, -1])
def test_out_of_range_targets_raise_torch_error_type(fn, bad):
    x = np.zeros((3, 4), np.float32)
    target = np.array([0, 1, bad])
    with pytest.raises(IndexError):
        getattr(TF, fn)(torch.tensor(x), torch.tensor(target))
    with pytest.raises(IndexError, match=fn):  # also a ValueError (the contract's type)
        getattr(F, fn)(x, target)


def test_prelu_one_dim_input_matches_torch():
    x = np.array([-1.0, 2.0, -3.0], np.float32)
    with pytest.raises(RuntimeError):
        TF.prelu(torch.tensor(x), torch.full((3,), 0.5))
    with pytest.raises(ValueError):
        F.prelu(x, np.full(3, 0.5, np.float32))


@pytest.mark.parametrize("make", [
    lambda nn: nn.BatchNorm2d(3), lambda nn: nn.BatchNorm1d(3, affine=False),
    lambda nn: nn.BatchNorm2d(3, momentum=None, track_running_stats=False),
    lambda nn: nn.BatchNorm2d(3, bias=False), lambda nn: nn.GroupNorm(2, 4),
    lambda nn: nn.GroupNorm(2, 4, affine=False), lambda nn: nn.GroupNorm(2, 4, bias=False),
    lambda nn: nn.LayerNorm((3, 5)), lambda nn: nn.LayerNorm(5, elementwise_affine=False),
    lambda nn: nn.LayerNorm(5, bias=False),
])
def test_normalization_reprs_match_torch(make):
    assert repr(make(pve.nn)) == repr(make(torch.nn))


@pytest.mark.parametrize("divisor", [-1, -3, 5])
def test_avg_pool_divisor_override_any_sign_matches_torch(isa, divisor):
    x = np.random.default_rng(2).standard_normal((2, 3, 7, 6)).astype(np.float32)
    yp, yt, gp, gt = _grads(lambda t: F.avg_pool2d(t, 3, 2, 1, True, False, divisor),
                            lambda t: TF.avg_pool2d(t, 3, 2, 1, True, False, divisor), x)
    np.testing.assert_allclose(yp, yt, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gp, gt, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("args,kwargs", [
    ((3, 4, (2, 3), 2, "valid"), dict(bias=False, padding_mode="reflect")),
    ((3, 4, 3, 1, "same"), dict(dilation=2)), ((3, 6, 1), dict(groups=3)),
])
def test_conv_repr_matches_torch(args, kwargs):
    assert repr(pve.nn.Conv2d(*args, **kwargs)) == repr(torch.nn.Conv2d(*args, **kwargs))


@pytest.mark.parametrize("kw", [dict(stride=(1, 1, 1)), dict(dilation=(1, 2, 1)),
                                dict(padding=(1, 1, 1))])
def test_conv_wrong_length_pairs_are_value_errors(kw):
    x, w = np.zeros((1, 2, 5, 5), np.float32), np.zeros((2, 2, 3, 3), np.float32)
    with pytest.raises(RuntimeError):
        TF.conv2d(torch.tensor(x), torch.tensor(w), **kw)
    with pytest.raises(ValueError, match="conv2d"):
        F.conv2d(x, w, **kw)
