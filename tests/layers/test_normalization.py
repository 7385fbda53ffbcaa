"""BatchNorm (train/eval, running statistics, momentum=None, affine, fusion hook),
GroupNorm and LayerNorm: references and finite differences at every ISA."""

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op
from reference import norm_reference as ref

F = pve.nn.functional
pytestmark = pytest.mark.kernels
rng = np.random.default_rng(3)


@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (6, 5), (3, 4, 9)])
def test_batch_norm_train_forward_and_backward(isa, shape):
    x = rng.standard_normal(shape) * 2 + 3
    c = shape[1]
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    check_op(lambda t, wt, bt: F.batch_norm(t, None, None, wt, bt, training=True),
             lambda a, wa, ba: ref.batch_norm_train(a, wa, ba)[0], [x, w, b],
             rtol=1e-4, atol=1e-4)
    check_op(lambda t: F.batch_norm(t, None, None, training=True),
             lambda a: ref.batch_norm_train(a)[0], [x], rtol=1e-4, atol=1e-4)


def test_batch_norm_eval_forward_and_backward(isa):
    x = rng.standard_normal((3, 4, 5, 6))
    rm, rv = rng.standard_normal(4), rng.random(4) + 0.5
    w, b = rng.standard_normal(4), rng.standard_normal(4)
    check_op(lambda t, wt, bt: F.batch_norm(t, rm.astype(np.float32), rv.astype(np.float32), wt, bt),
             lambda a, wa, ba: ref.batch_norm_eval(a, rm.astype(np.float32), rv.astype(np.float32), wa, ba),
             [x, w, b], rtol=1e-5, atol=1e-5)


def test_batch_norm_one_pass_stats_are_accurate_with_large_mean(isa):
    # Shifted sums: no cancellation in var = E[x^2] - E[x]^2 when mean >> std.
    from pyvision_engine import _C
    x = (rng.standard_normal((8, 2, 16, 16)) * 1e-2 + 1e3).astype(np.float32)
    mean, var = _C.channel_stats(x, 8, 2, 256)
    _, rmean, rvar = ref.batch_norm_train(x.astype(np.float64))
    np.testing.assert_allclose(mean, rmean, rtol=1e-7)
    np.testing.assert_allclose(var, rvar, rtol=1e-4)


@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_batchnorm2d_running_statistics(isa, momentum):
    bn = pve.nn.BatchNorm2d(3, momentum=momentum)
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(1, 5):
        x = rng.standard_normal((4, 3, 5, 5)) * step + step
        bn(x.astype(np.float32))
        _, mean, var = ref.batch_norm_train(x.astype(np.float32).astype(np.float64))
        unbiased = var * x[:, 0].size / (x[:, 0].size - 1)
        f = 1.0 / step if momentum is None else momentum
        rm, rv = (1 - f) * rm + f * mean, (1 - f) * rv + f * unbiased
        assert int(bn.num_batches_tracked.numpy()) == step
    np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-5, atol=1e-6)
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == ()
    bn.eval()
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(bn(x).detach().numpy(),
                               ref.batch_norm_eval(x.astype(np.float64), rm, rv, np.ones(3), np.zeros(3)),
                               rtol=1e-4, atol=1e-5)


def test_batchnorm_options_and_state_dict():
    bn = pve.nn.BatchNorm2d(4, affine=False, track_running_stats=False)
    assert bn.weight is None and bn.running_mean is None
    assert list(bn.state_dict()) == []
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    bn.eval()  # no running stats: batch statistics even in eval, as torch
    np.testing.assert_allclose(bn(x).numpy(), ref.batch_norm_train(x.astype(np.float64))[0], atol=1e-4)
    keys = list(pve.nn.BatchNorm2d(4).state_dict())
    assert keys == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    b1 = pve.nn.BatchNorm1d(5)
    assert b1(rng.standard_normal((3, 5)).astype(np.float32)).shape == (3, 5)


def test_fusion_hook_scale_shift(isa):
    bn = pve.nn.BatchNorm2d(3)
    bn.train()
    for _ in range(3):
        bn(rng.standard_normal((4, 3, 5, 5)).astype(np.float32) * 2 + 1)
    bn.weight.detach().numpy()[...] = [0.5, -1.0, 2.0]
    bn.bias.detach().numpy()[...] = [0.1, 0.2, -0.3]
    bn.eval()
    scale, shift = bn.fusion_scale_shift()
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(bn(x).detach().numpy(), x * scale[:, None, None] + shift[:, None, None],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call,match", [
    (lambda: pve.nn.BatchNorm2d(3)(np.zeros((2, 4, 3, 3), np.float32)), "BatchNorm2d.*3 channels"),
    (lambda: pve.nn.BatchNorm2d(3)(np.zeros((2, 3, 3), np.float32)), "BatchNorm2d: expected 4-D"),
    (lambda: pve.nn.BatchNorm1d(3)(np.zeros((2, 4), np.float32)), "BatchNorm1d.*3 channels"),
    (lambda: pve.nn.BatchNorm2d(3)(np.zeros((1, 3, 1, 1), np.float32)), "more than 1 value per channel"),
    (lambda: F.batch_norm(np.zeros((2, 3), np.float32), None, None), "batch_norm: running_mean"),
    (lambda: F.group_norm(np.zeros((2, 6, 3), np.float32), 4), "group_norm: num_groups"),
    (lambda: pve.nn.GroupNorm(4, 6), "GroupNorm"),
    (lambda: F.layer_norm(np.zeros((2, 5), np.float32), (4,)), "layer_norm"),
    (lambda: pve.nn.LayerNorm(4)(np.zeros((2, 5), np.float32)), "LayerNorm"),
])
def test_invalid_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_batch_norm_nan_propagates_per_channel(isa):
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    x[1, 1, 2, 2] = np.nan
    y = F.batch_norm(x, None, None, training=True).numpy()
    assert np.isnan(y[:, 1]).all() and np.isfinite(y[:, [0, 2]]).all()


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_norm(isa, groups):
    x = rng.standard_normal((2, 6, 4, 5)) + 1
    w, b = rng.standard_normal(6), rng.standard_normal(6)
    check_op(lambda t, wt, bt: F.group_norm(t, groups, wt, bt),
             lambda a, wa, ba: ref.group_norm(a, groups, wa, ba), [x, w, b], rtol=1e-4, atol=1e-4)
    m = pve.nn.GroupNorm(groups, 6)
    np.testing.assert_allclose(m(x.astype(np.float32)).detach().numpy(), ref.group_norm(x, groups),
                               atol=1e-4)


@pytest.mark.parametrize("value", [1000.1, 3.3, -7.0])
def test_group_norm_of_constant_groups_is_exactly_the_bias(isa, value):
    # x - mean is exactly 0 on a constant group, so the float64 reference (and torch)
    # give exactly 0 (then the bias); a mean folded into one shift, x * a + d, left
    # rounding noise of |mean| / sqrt(eps) ulps there (0.007 at 1000.1)
    x = np.full((2, 4, 3, 3), value, np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    np.testing.assert_array_equal(F.group_norm(x, 2).numpy(), ref.group_norm(x.astype(np.float64), 2))
    y = F.group_norm(x, 2, np.ones(4, np.float32), b).numpy()
    np.testing.assert_array_equal(y, np.broadcast_to(b.reshape(1, 4, 1, 1), x.shape))


@pytest.mark.parametrize("call", [
    lambda: pve.nn.Linear(5, 4)(np.ones((2, 3), np.float32)),
    lambda: F.linear(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32)),
    lambda: pve.nn.BatchNorm2d(5)(np.ones((2, 6, 3, 3), np.float32)),
    lambda: F.batch_norm(np.ones((2, 6, 3), np.float32), np.zeros(5, np.float32),
                         np.ones(5, np.float32)),
    lambda: pve.nn.LayerNorm(4)(np.ones((2, 6), np.float32)),
    lambda: F.layer_norm(np.ones((2, 6), np.float32), (4,)),
    lambda: pve.nn.GroupNorm(2, 4)(np.ones((2, 6, 3, 3), np.float32)),
    lambda: F.group_norm(np.ones((2, 6, 3), np.float32), 4),
    lambda: pve.nn.GELU("foo"),
    lambda: F.gelu(np.ones(3, np.float32), approximate="foo"),
])
def test_shape_errors_are_also_runtime_errors_as_torchs(call):
    # torch raises RuntimeError (a failed TORCH_CHECK) for these; the contract asks for
    # ValueError: the error is both, so either handler catches it
    with pytest.raises(ValueError) as info:
        call()
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize("shape,k", [((3, 4, 37), 1), ((2, 3, 5, 6), 2), ((5, 16), 1)])
def test_layer_norm(isa, shape, k):
    x = rng.standard_normal(shape) * 2
    w, b = rng.standard_normal(shape[-k:]), rng.standard_normal(shape[-k:])
    check_op(lambda t, wt, bt: F.layer_norm(t, shape[-k:], wt, bt),
             lambda a, wa, ba: ref.layer_norm(a, k, wa, ba), [x, w, b], rtol=1e-4, atol=1e-4)
    check_op(lambda t: F.layer_norm(t, shape[-k:]), lambda a: ref.layer_norm(a, k), [x],
             rtol=1e-4, atol=1e-4)
    m = pve.nn.LayerNorm(shape[-k:])
    assert m.weight.shape == tuple(shape[-k:])


@pytest.mark.parametrize("shape", [(3, 16, 5, 7), (5, 9, 33), (2, 12, 64)])
@pytest.mark.parametrize("threads", [1, 2])
def test_batch_norm_fused_train_kernels_match_separate_kernels(isa, shape, threads):
    # The fused per-channel kernels (c >= 4 * threads) do the same float and
    # float64 algebra as channel_stats / channel_affine / channel_grad_sums
    # with the coefficients computed in numpy, so results agree to rounding.
    from pyvision_engine import _C
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    n, c = shape[0], shape[1]
    l = int(np.prod(shape[2:]))
    w, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    eps = 1e-5
    before = pve.get_num_threads()
    try:
        pve.set_num_threads(threads)
        y, mean, var = _C.batch_norm_train_forward(x, n, c, l, w, b, eps, False)
        gx, s1, s2 = _C.batch_norm_train_backward(x, gy, n, c, l, mean, var, w, eps, True)
        rmean, rvar = _C.channel_stats(x, n, c, l)
        r1, r2 = _C.channel_grad_sums(x, gy, n, c, l, rmean)
    finally:
        pve.set_num_threads(before)
    np.testing.assert_array_equal(mean, rmean)
    np.testing.assert_array_equal(var, rvar)
    np.testing.assert_array_equal(s1, r1)
    np.testing.assert_array_equal(s2, r2)
    invstd = 1.0 / np.sqrt(var.astype(np.float64) + eps)
    scale = invstd * w
    shift = -mean.astype(np.float64) * scale + b
    ry = _C.channel_affine(x, n=n, c=c, l=l, a=scale.astype(np.float32), d=shift.astype(np.float32))
    np.testing.assert_allclose(y, ry, rtol=1e-6, atol=1e-6)
    k = w * invstd
    m = n * l
    bc = -k * invstd * invstd * s2.astype(np.float64) / m
    dc = -k * s1.astype(np.float64) / m - bc * mean
    rgx = _C.channel_affine(gy, v=x, n=n, c=c, l=l, a=k.astype(np.float32),
                            b=bc.astype(np.float32), d=dc.astype(np.float32))
    np.testing.assert_allclose(gx, rgx, rtol=1e-6, atol=1e-6)
    # And against the float64 reference through the module, fused or not.
    check_op(lambda t, wt, bt: F.batch_norm(t, None, None, wt, bt, training=True),
             lambda a, wa, ba: ref.batch_norm_train(a, wa, ba)[0],
             [x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)],
             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("momentum", [0.1, 0.7])
def test_batch_norm_train_kernel_updates_running_stats_and_affine_grads(isa, momentum):
    # The binding updates the running statistics in torch's arithmetic (float64,
    # one rounding: r = momentum * s + (1 - momentum) * r, s the unbiased
    # variance) and, with affine_grads, returns grad_bias = sum gy and
    # grad_weight = sum gy * (x - mean) / sqrt(var + eps) instead of the sums.
    from pyvision_engine import _C
    n, c, l = 3, 6, 35
    x = (rng.standard_normal((n, c, l)) * 3 + 2).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    rm = rng.standard_normal(c).astype(np.float32)
    rv = (rng.random(c) + 0.5).astype(np.float32)
    rm0, rv0 = rm.copy(), rv.copy()
    y, mean, var = _C.batch_norm_train_forward(x, n, c, l, running_mean=rm, running_var=rv,
                                               momentum=momentum)
    m = n * l
    unbiased = var.astype(np.float64) * m / (m - 1)
    want_rm = (momentum * mean.astype(np.float64) + (1 - momentum) * rm0.astype(np.float64))
    want_rv = momentum * unbiased + (1 - momentum) * rv0.astype(np.float64)
    np.testing.assert_array_equal(rm, want_rm.astype(np.float32))
    np.testing.assert_array_equal(rv, want_rv.astype(np.float32))
    gx, s1, s2 = _C.batch_norm_train_backward(x, gy, n, c, l, mean, var, None, 1e-5, True)
    gx2, gb, gw = _C.batch_norm_train_backward(x, gy, n, c, l, mean, var, None, 1e-5, True,
                                               affine_grads=True)
    np.testing.assert_array_equal(gx2, gx)
    np.testing.assert_array_equal(gb, s1)
    invstd = 1.0 / np.sqrt(var.astype(np.float64) + 1e-5)
    np.testing.assert_array_equal(gw, (s2.astype(np.float64) * invstd).astype(np.float32))
    # against float64 numpy: sum gy and sum gy * x_hat
    x64, g64 = x.astype(np.float64), gy.astype(np.float64)
    mu = x64.mean(axis=(0, 2), keepdims=True)
    xhat = (x64 - mu) / np.sqrt(x64.var(axis=(0, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(gb, g64.sum(axis=(0, 2)), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gw, (g64 * xhat).sum(axis=(0, 2)), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="go together"):
        _C.batch_norm_train_forward(x, n, c, l, running_mean=rm)
    rm.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        _C.batch_norm_train_forward(x, n, c, l, running_mean=rm, running_var=rv)


def test_batch_norm_updates_strided_numpy_running_buffers(isa):
    # Running statistics given as numpy views (every other element of a buffer)
    # are updated in place like contiguous ones, as torch updates strided views.
    x = (rng.standard_normal((4, 3, 5, 5)) * 2 + 1).astype(np.float32)
    buf_m, buf_v = np.zeros(6, np.float32), np.ones(6, np.float32)
    plain_m, plain_v = np.zeros(3, np.float32), np.ones(3, np.float32)
    for _ in range(2):
        F.batch_norm(x, buf_m[::2], buf_v[::2], training=True, momentum=0.3)
        F.batch_norm(x, plain_m, plain_v, training=True, momentum=0.3)
    np.testing.assert_array_equal(buf_m[::2], plain_m)
    np.testing.assert_array_equal(buf_v[::2], plain_v)
    np.testing.assert_array_equal(buf_m[1::2], 0)
    np.testing.assert_array_equal(buf_v[1::2], 1)
    _, mean, _ = ref.batch_norm_train(x.astype(np.float64))
    np.testing.assert_allclose(plain_m, 0.51 * mean, rtol=1e-5)  # 0.3 + 0.7 * 0.3


def test_instance_norm_updates_strided_numpy_running_buffers():
    x = (rng.standard_normal((2, 3, 4, 5)) * 2 + 1).astype(np.float32)
    buf_m, buf_v = np.zeros(6, np.float32), np.ones(6, np.float32)
    plain_m, plain_v = np.zeros(3, np.float32), np.ones(3, np.float32)
    F.instance_norm(x, buf_m[::2], buf_v[::2], momentum=0.3)
    F.instance_norm(x, plain_m, plain_v, momentum=0.3)
    np.testing.assert_array_equal(buf_m[::2], plain_m)
    np.testing.assert_array_equal(buf_v[::2], plain_v)
    np.testing.assert_array_equal(buf_m[1::2], 0)
    # float64 reference: the mean over instances of each plane's mean, times momentum
    want = 0.3 * x.astype(np.float64).mean(axis=(2, 3)).mean(axis=0)
    np.testing.assert_allclose(plain_m, want, rtol=1e-6, atol=1e-7)


def test_batch_norm_train_same_result_on_1_and_2_threads(isa):
    x = rng.standard_normal((8, 32, 20, 21)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    before = pve.get_num_threads()
    out = {}
    try:
        for t in (1, 2):
            pve.set_num_threads(t)
            bn = pve.nn.BatchNorm2d(32)
            xt = pve.tensor(x, requires_grad=True)
            y = bn(xt)
            y.backward(pve.from_numpy(gy))
            out[t] = (y.detach().numpy(), xt.grad.numpy(), bn.weight.grad.numpy(), bn.bias.grad.numpy(),
                      bn.running_mean.numpy(), bn.running_var.numpy())
    finally:
        pve.set_num_threads(before)
    for a, b in zip(out[1], out[2]):
        np.testing.assert_array_equal(a, b)


def test_batch_norm_gradient_owned_by_leaf_is_not_shared():
    # The leaf takes the kernel's fresh gradient without a copy; a second
    # backward accumulates into it and must leave the first result's caller
    # arrays (upstream gradient, input) untouched.
    x = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    gy_copy, x_copy = gy.copy(), x.copy()
    bn = pve.nn.BatchNorm2d(8)
    xt = pve.tensor(x, requires_grad=True)
    bn(xt).backward(pve.from_numpy(gy))
    g1 = xt.grad.numpy().copy()
    bn(xt).backward(pve.from_numpy(gy))
    np.testing.assert_allclose(xt.grad.numpy(), 2 * g1, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(gy, gy_copy)
    np.testing.assert_array_equal(x, x_copy)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_weight_without_bias(isa, training):
    # torch 2.x: BatchNorm2d(..., bias=False) keeps the weight and drops the bias.
    x = rng.standard_normal((4, 3, 5, 6)) * 2 + 1
    w = rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    if training:
        ref_fn = lambda a, wa: ref.batch_norm_train(a, wa, None)[0]
    else:
        ref_fn = lambda a, wa: ref.batch_norm_eval(a, rm, rv, wa, None)
    check_op(lambda t, wt: F.batch_norm(t, pve.tensor(rm.astype(np.float32)),
                                        pve.tensor(rv.astype(np.float32)), wt, None,
                                        training=training),
             ref_fn, [x, w], rtol=1e-4, atol=1e-4)


def test_norm_modules_take_torch_bias_keyword():
    bn = pve.nn.BatchNorm2d(4, bias=False)
    assert bn.weight is not None and bn.bias is None
    assert list(bn.state_dict()) == ["weight", "running_mean", "running_var",
                                     "num_batches_tracked"]
    x = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    bn.weight.data = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    y = bn(x).detach().numpy()
    np.testing.assert_allclose(y, ref.batch_norm_train(x.astype(np.float64),
                                                       np.arange(1.0, 5.0))[0],
                               rtol=1e-4, atol=1e-4)
    bn.reset_parameters()  # a missing bias is skipped, the weight back to ones
    np.testing.assert_array_equal(bn.weight.detach().numpy(), np.ones(4, np.float32))
    gn = pve.nn.GroupNorm(2, 4, bias=False)
    assert gn.weight is not None and gn.bias is None
    np.testing.assert_allclose(gn(x).detach().numpy(),
                               ref.group_norm(x.astype(np.float64), 2, np.ones(4)),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError):
        pve.nn.BatchNorm2d(4, 1e-5, 0.1, True, True, False)  # keyword-only, as torch


def test_batch_norm_train_on_an_empty_batch_matches_torch_semantics():
    # torch: an empty result, running statistics unchanged, num_batches_tracked counted,
    # zero gradients for weight and bias (only exactly 1 value per channel raises).
    bn = pve.nn.BatchNorm2d(3)
    bn.running_mean.fill_(0.5)
    x = pve.tensor(np.zeros((0, 3, 4, 5), np.float32), requires_grad=True)
    y = bn(x)
    assert y.shape == (0, 3, 4, 5)
    np.testing.assert_array_equal(bn.running_mean.numpy(), [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(bn.running_var.numpy(), [1, 1, 1])
    assert int(bn.num_batches_tracked.numpy()) == 1
    y.sum().backward()
    assert x.grad.shape == x.shape
    np.testing.assert_array_equal(bn.weight.grad.numpy(), [0, 0, 0])
    np.testing.assert_array_equal(bn.bias.grad.numpy(), [0, 0, 0])
    assert pve.nn.BatchNorm1d(3, affine=False)(np.zeros((0, 3), np.float32)).shape == (0, 3)


@pytest.mark.parametrize("cls", [pve.nn.BatchNorm1d, pve.nn.BatchNorm2d])
def test_batch_norm_state_dict_without_num_batches_tracked_loads(cls):
    # torch's _NormBase: a plain dict (no version metadata) may lack num_batches_tracked;
    # strict loading passes and the module keeps its own count
    src = cls(3)
    src.running_mean.numpy()[:] = [1.0, 2.0, 3.0]
    sd = {k: v.numpy().copy() for k, v in src.state_dict().items() if k != "num_batches_tracked"}
    dst = cls(3)
    dst.num_batches_tracked.fill_(7)
    result = dst.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(dst.running_mean.numpy(), [1.0, 2.0, 3.0])
    assert int(dst.num_batches_tracked.numpy()) == 7
    seq = pve.nn.Sequential(pve.nn.Linear(3, 3), cls(3))  # nested: "1.num_batches_tracked"
    nested = {k: v for k, v in seq.state_dict().items() if not k.endswith("num_batches_tracked")}
    seq.load_state_dict(nested)


def test_batch_norm_state_dict_with_version_2_metadata_needs_num_batches_tracked():
    # a torch state dict records version 2 for BatchNorm: the key is then required
    from collections import OrderedDict
    bn = pve.nn.BatchNorm2d(3)
    sd = OrderedDict((k, v) for k, v in bn.state_dict().items() if k != "num_batches_tracked")
    sd._metadata = {"": {"version": 2}}
    with pytest.raises(RuntimeError, match='Missing key.*"num_batches_tracked"'):
        bn.load_state_dict(sd)
    sd._metadata = {"": {"version": 1}}
    bn.load_state_dict(sd)
    no_stats = pve.nn.BatchNorm2d(3, track_running_stats=False)
    assert "num_batches_tracked" not in no_stats.state_dict()


@pytest.mark.parametrize("make", [
    lambda **k: pve.nn.BatchNorm1d(3, **k), lambda **k: pve.nn.BatchNorm2d(3, **k),
    lambda **k: pve.nn.LayerNorm(3, **k), lambda **k: pve.nn.GroupNorm(1, 3, **k),
])
def test_norm_layers_take_cpu_float32_device_and_dtype(make):
    for kw in ({"device": "cpu"}, {"device": None, "dtype": None}, {"dtype": pve.float32},
               {"dtype": np.float32}):
        assert make(**kw).weight.dtype == np.float32
    with pytest.raises(ValueError, match="only device='cpu' is supported"):
        make(device="cuda")
    with pytest.raises(TypeError, match="only dtype float32 is supported"):
        make(dtype=np.float64)
    # positional, in torch's order: (..., device, dtype)
    assert pve.nn.BatchNorm2d(3, 1e-5, 0.1, True, True, "cpu", np.float32).num_features == 3
    assert pve.nn.GroupNorm(1, 3, 1e-5, True, "cpu", np.float32).num_channels == 3


@pytest.mark.parametrize("shape", [(3, 16, 5, 7), (5, 9, 33), (2, 12, 64), (4, 3, 40)])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("relu_max", [np.inf, 6.0, 0.5])
def test_batch_norm_train_backward_with_relu(isa, shape, threads, affine, relu_max):
    # relu=True: grad_output is that of clamp(batch_norm(x), 0, relu_max); the
    # kernel applies ReLU's (relu_max inf) or ReLU6's rule to the forward's
    # x * scale + shift (recomputed from x). Equal to that activation's own
    # backward kernel (on the forward's output: the same test as on its input)
    # followed by the plain BatchNorm backward, bit for bit (fused per-channel
    # kernel and the unfused one: 3 channels), and to the float64 gradient.
    from pyvision_engine import _C
    from pyvision_engine.nn._f_activation import ACT_CODES
    local = np.random.default_rng(sum(shape) + threads)
    x = (local.standard_normal(shape) * 2 + 1).astype(np.float32)
    gy = local.standard_normal(shape).astype(np.float32)
    n, c = shape[0], shape[1]
    l = int(np.prod(shape[2:]))
    w = local.standard_normal(c).astype(np.float32) if affine else None
    b = local.standard_normal(c).astype(np.float32) if affine else None
    eps = 1e-5
    before = pve.get_num_threads()
    try:
        pve.set_num_threads(threads)
        y, mean, var = _C.batch_norm_train_forward(x, n, c, l, w, b, eps, True, relu_max)
        fused = _C.batch_norm_train_backward(x, gy, n, c, l, mean, var, w, eps, True, bias=b,
                                             relu=True, relu_max=relu_max)
        separate = None
        if relu_max in (np.inf, 6.0):  # the activations that have a kernel of their own
            g_relu = np.empty_like(gy)
            code = ACT_CODES["relu"] if relu_max == np.inf else ACT_CODES["relu6"]
            _C.activation_backward(code, y, gy, g_relu)
            separate = _C.batch_norm_train_backward(x, g_relu, n, c, l, mean, var, w, eps, True)
    finally:
        pve.set_num_threads(before)
    for got, expected in zip(fused, separate or fused):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(y, np.minimum(np.float32(relu_max), np.maximum(0, y)))
    # float64: gz = gy where the forward's output is inside (0, relu_max), gx
    # through the batch statistics.
    axes = (0,) + tuple(range(2, len(shape)))
    bshape = (1, c) + (1,) * (len(shape) - 2)
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=axes, keepdims=True)
    invstd = 1.0 / np.sqrt(x64.var(axis=axes, keepdims=True) + eps)
    xhat = (x64 - mu) * invstd
    w64 = w.astype(np.float64).reshape(bshape) if affine else 1.0
    inside = (y > 0) & (y < relu_max)
    gz = gy * inside
    assert 0 < inside.mean() < 1
    m = n * l
    gx = w64 * invstd / m * (m * gz - gz.sum(axis=axes, keepdims=True)
                             - xhat * (gz * xhat).sum(axis=axes, keepdims=True))
    np.testing.assert_allclose(fused[0], gx, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fused[1], gz.sum(axis=axes), rtol=1e-4, atol=1e-4)
