"""1-D layers (Conv1d, ConvTranspose1d, the 1-D pools, Dropout1d, InstanceNorm1d and the
1-D padding layers) against the plain-numpy float64 references in
tests/reference/layers_1d_reference.py, with float64 finite differences for every
gradient, at every ISA level; plus shapes, reprs and errors. No torch needed."""

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op, run_pve
from reference import layers_1d_reference as ref
from reference.gradcheck import assert_grad_close, numerical_grads

nn = pve.nn
F = pve.nn.functional
rng = np.random.default_rng(11)


def _randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


_NUMERIC = {}  # the float64 finite differences per case: they do not depend on the ISA


def check_cached(key, engine, reference, inputs, tol=1e-4):
    """check_op (forward vs the reference, gradients vs its finite differences) with the
    inputs and finite differences computed once per ``key`` and reused at every ISA."""
    if key not in _NUMERIC:
        inputs = [np.asarray(a, np.float32).astype(np.float64) for a in inputs]
        want = reference(*inputs)
        upstream = np.random.default_rng(0).standard_normal(want.shape)
        _NUMERIC[key] = (inputs, want, upstream, numerical_grads(reference, inputs, upstream))
    inputs, want, upstream, numeric = _NUMERIC[key]
    out, grads = run_pve(engine, inputs, upstream)
    np.testing.assert_allclose(out, want, rtol=tol, atol=tol, err_msg="forward")
    for i, (a, n) in enumerate(zip(grads, numeric)):
        assert_grad_close(a, n, rtol=1e-3, atol=1e-3, name=f"grad of input {i}")


# ------------------------------------------------------------------ conv1d
# (N, C, L, K, k, stride, padding, dilation, groups, bias): odd lengths, strides with
# padding and dilation, groups, depthwise, 'same' with an even dilated kernel (its odd
# extra goes right), 'valid', pointwise.
CONV_CASES = [
    (2, 4, 11, 6, 3, 1, 0, 1, 1, True),
    (2, 4, 13, 6, 3, 2, 2, 2, 2, True),
    (1, 6, 9, 6, 3, 1, 1, 1, 6, False),
    (2, 3, 10, 4, 4, 1, "same", 3, 1, True),
    (2, 4, 17, 8, 5, 3, "valid", 1, 4, True),
    (3, 3, 7, 5, 1, 1, 0, 1, 1, True),
    (1, 2, 5, 3, 5, 4, 3, 1, 1, True),
]


def _same_pads(k, d):
    total = d * (k - 1)
    return total // 2, total - total // 2


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv1d_matches_reference_and_finite_differences(isa, case):
    n, c, length, k_out, k, stride, padding, dilation, groups, bias = case
    x, w = _randn(n, c, length), _randn(k_out, c // groups, k)
    b = _randn(k_out)
    if padding == "same":
        pads = _same_pads(k, dilation)
    else:
        pads = (0, 0) if padding == "valid" else (padding, padding)

    def reference(x, w, b=None):
        return ref.conv1d(x, w, b, stride, pads, dilation, groups)

    def engine(x, w, b=None):
        return F.conv1d(x, w, b, stride, padding, dilation, groups)

    check_cached(("conv1d", case), engine, reference, [x, w, b] if bias else [x, w])


def test_conv1d_unbatched_input_gives_unbatched_output(isa):
    x, w, b = _randn(4, 9), _randn(6, 2, 3), _randn(6)
    check_cached("conv1d unbatched", lambda x, w, b: F.conv1d(x, w, b, 2, 1, 1, 2),
                 lambda x, w, b: ref.conv1d(x[None], w, b, 2, (1, 1), 1, 2)[0], [x, w, b])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [2, "same"])
def test_conv1d_padding_modes(isa, mode, padding):
    pve.manual_seed(0)  # (the same weights at every ISA, so the cached differences hold)
    conv = nn.Conv1d(3, 4, 4, padding=padding, dilation=1, padding_mode=mode)
    w, b = conv.weight.detach().numpy().copy(), conv.bias.detach().numpy().copy()
    left, right = (2, 2) if padding == 2 else _same_pads(4, 1)
    x = _randn(2, 3, 9)
    check_cached(("padding_mode", mode, padding), lambda t: conv(t),
                 lambda t: ref.conv1d(ref.pad1d(t, left, right, mode), w, b, 1, (0, 0), 1, 1),
                 [x])
    y, (gx,) = run_pve(conv, [x[0]])  # unbatched
    assert y.shape == (4, 9 + left + right - 3) and gx.shape == (3, 9)


def test_conv1d_module_parameters_init_and_repr():
    conv = nn.Conv1d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2)
    assert conv.weight.shape == (6, 2, 3) and conv.bias.shape == (6,)
    assert (conv.kernel_size, conv.stride, conv.padding, conv.dilation) == ((3,), (2,), (1,), (2,))
    assert list(conv.state_dict()) == ["weight", "bias"]
    bound = 1 / np.sqrt(2 * 3)  # kaiming_uniform_(a=sqrt(5)): 1/sqrt(fan_in), fan_in = 2 * 3
    assert np.abs(conv.weight.detach().numpy()).max() <= bound
    assert np.abs(conv.bias.detach().numpy()).max() <= bound
    assert repr(conv) == ("Conv1d(4, 6, kernel_size=(3,), stride=(2,), padding=(1,), "
                          "dilation=(2,), groups=2)")
    assert repr(nn.Conv1d(2, 2, 3, padding="same", bias=False, padding_mode="circular")) == (
        "Conv1d(2, 2, kernel_size=(3,), stride=(1,), padding=same, bias=False, "
        "padding_mode=circular)")
    assert nn.Conv1d(1, 1, 3, bias=False).bias is None
    assert not isinstance(conv, nn.Conv2d)


def test_conv1d_large_init_fan_in_is_in_channels_per_group_times_kernel():
    conv = nn.Conv1d(64, 64, 5, groups=4)
    w = conv.weight.detach().numpy()
    bound = 1 / np.sqrt(16 * 5)
    assert w.max() <= bound and w.max() > 0.95 * bound and w.min() < -0.95 * bound


# ------------------------------------------------------------------ conv_transpose1d
# (N, C_in, L, C_out, k, stride, padding, output_padding, groups, dilation)
TRANSPOSE_CASES = [
    (2, 4, 7, 6, 3, 2, 1, 1, 2, 1),
    (1, 3, 9, 3, 3, 1, 0, 0, 3, 2),
    (2, 2, 5, 4, 4, 3, 2, 2, 1, 1),
    (2, 2, 5, 3, 3, 1, 1, 1, 1, 2),  # output padding below the dilation, not the stride
    (1, 4, 6, 2, 1, 2, 0, 1, 2, 1),
]


@pytest.mark.parametrize("case", TRANSPOSE_CASES)
def test_conv_transpose1d_matches_reference_and_finite_differences(isa, case):
    n, c, length, c_out, k, stride, padding, extra, groups, dilation = case
    x, w, b = _randn(n, c, length), _randn(c, c_out // groups, k), _randn(c_out)
    check_cached(("conv_transpose1d", case),
                 lambda x, w, b: F.conv_transpose1d(x, w, b, stride, padding, extra, groups,
                                                    dilation),
                 lambda x, w, b: ref.conv_transpose1d(x, w, b, stride, padding, extra, groups,
                                                      dilation),
                 [x, w, b])


def test_conv_transpose1d_module_unbatched_output_size_and_repr(isa):
    m = nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, groups=2, bias=False)
    assert m.weight.shape == (4, 3, 3) and m.bias is None
    assert list(m.state_dict()) == ["weight"]
    assert np.abs(m.weight.detach().numpy()).max() <= 1 / np.sqrt(3 * 3)  # fan_in: dim 1 * k
    x = _randn(4, 8)
    want = ref.conv_transpose1d(x[None], m.weight.detach().numpy(), None, 2, 1, 0, 2, 1)[0]
    np.testing.assert_allclose(m(x).detach().numpy(), want, rtol=1e-5, atol=1e-5)
    assert m(x, output_size=[16]).shape == (6, 16)
    assert m(x[None], output_size=[1, 6, 16]).shape == (1, 6, 16)
    with pytest.raises(ValueError, match="valid sizes range from"):
        m(x, output_size=[17])
    assert repr(nn.ConvTranspose1d(3, 4, 3, stride=2, output_padding=1, dilation=2)) == (
        "ConvTranspose1d(3, 4, kernel_size=(3,), stride=(2,), dilation=(2,), "
        "output_padding=(1,))")


# ------------------------------------------------------------------ pooling
# (L, kernel, stride, padding, dilation, ceil_mode): odd lengths; ceil_mode keeping a
# partial last window and dropping one that would start in the right padding (L=5).
MAX_CASES = [
    (11, 3, 2, 1, 1, False),
    (11, 3, 2, 1, 1, True),
    (5, 2, 2, 1, 1, True),
    (10, 4, 3, 2, 1, True),
    (13, 3, 2, 1, 3, True),
    (9, 2, 1, 0, 2, False),
    (7, 7, 7, 3, 1, True),
]


@pytest.mark.parametrize("length,k,s,p,d,ceil", MAX_CASES)
def test_max_pool1d_values_indices_and_gradient(isa, length, k, s, p, d, ceil):
    x = rng.permutation(2 * 3 * length).reshape(2, 3, length).astype(np.float32)  # no ties
    check_cached(("max_pool1d", length, k, s, p, d, ceil),
                 lambda t: F.max_pool1d(t, k, s, p, d, ceil),
                 lambda t: ref.max_pool1d(t, k, s, p, d, ceil)[0], [x])
    y, idx = F.max_pool1d(x, k, s, p, d, ceil, return_indices=True)
    want, want_idx = ref.max_pool1d(x, k, s, p, d, ceil)
    np.testing.assert_array_equal(y.numpy(), want)
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx.numpy(), want_idx)
    y2, idx2 = F.max_pool1d_with_indices(x[0], k, s, p, d, ceil)  # unbatched
    np.testing.assert_array_equal(idx2.numpy(), want_idx[0])
    m = nn.MaxPool1d(k, s, p, d, return_indices=True, ceil_mode=ceil)
    np.testing.assert_array_equal(m(x)[1].numpy(), want_idx)


def test_max_pool1d_ties_and_nan(isa):
    x = np.array([[[1, 3, 3, 2, np.nan, 5, 0, 0]]], np.float32)
    y, idx = F.max_pool1d(x, 2, return_indices=True)
    want, want_idx = ref.max_pool1d(x, 2, 2, 0)
    np.testing.assert_array_equal(y.numpy(), want)
    np.testing.assert_array_equal(idx.numpy(), want_idx)  # [1, 2, 4, 6]: first max, NaN


AVG_CASES = [  # (L, kernel, stride, padding, ceil_mode, count_include_pad)
    (11, 3, 2, 1, False, True),
    (11, 3, 2, 1, True, False),
    (5, 2, 2, 1, True, True),
    (10, 4, 3, 2, True, True),
    (10, 4, 3, 2, True, False),
    (9, 1, 1, 0, False, True),
]


@pytest.mark.parametrize("length,k,s,p,ceil,include", AVG_CASES)
def test_avg_pool1d_matches_reference_and_finite_differences(isa, length, k, s, p, ceil,
                                                             include):
    x = _randn(2, 3, length)
    check_cached(("avg_pool1d", length, k, s, p, ceil, include),
                 lambda t: F.avg_pool1d(t, k, s, p, ceil, include),
                 lambda t: ref.avg_pool1d(t, k, s, p, ceil, include), [x], tol=1e-5)
    m = nn.AvgPool1d(k, s, p, ceil, include)
    np.testing.assert_allclose(m(x[1]).numpy(), ref.avg_pool1d(x[1:], k, s, p, ceil, include)[0],
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("length,out", [(10, 3), (10, 4), (9, 9), (7, 1), (5, 7)])
def test_adaptive_pools_1d(isa, length, out):
    x = rng.permutation(2 * 3 * length).reshape(2, 3, length).astype(np.float32)
    check_cached(("adaptive_avg_pool1d", length, out), lambda t: F.adaptive_avg_pool1d(t, out),
                 lambda t: ref.adaptive_avg_pool1d(t, out), [x], tol=1e-5)
    check_cached(("adaptive_max_pool1d", length, out), lambda t: F.adaptive_max_pool1d(t, out),
                 lambda t: ref.adaptive_max_pool1d(t, out)[0], [x], tol=1e-5)
    y, idx = nn.AdaptiveMaxPool1d(out, return_indices=True)(x[0])  # unbatched
    want, want_idx = ref.adaptive_max_pool1d(x[0], out)
    np.testing.assert_array_equal(y.numpy(), want)
    np.testing.assert_array_equal(idx.numpy(), want_idx)
    np.testing.assert_array_equal(F.adaptive_max_pool1d_with_indices(x, (out,))[1].numpy(),
                                  ref.adaptive_max_pool1d(x, out)[1])
    np.testing.assert_allclose(nn.AdaptiveAvgPool1d(out)(x).numpy(),
                               ref.adaptive_avg_pool1d(x, out), rtol=1e-6, atol=1e-6)


def test_adaptive_pool1d_to_zero_length_is_empty():
    x = _randn(2, 3, 5)
    assert F.adaptive_avg_pool1d(x, 0).shape == (2, 3, 0)
    y, idx = F.adaptive_max_pool1d(x, 0, return_indices=True)
    assert y.shape == idx.shape == (2, 3, 0)


def test_pool1d_reprs_and_stored_arguments():
    assert repr(nn.MaxPool1d(3, 2, 1, 2, True, True)) == (
        "MaxPool1d(kernel_size=3, stride=2, padding=1, dilation=2, ceil_mode=True)")
    avg = nn.AvgPool1d(3)
    assert (avg.kernel_size, avg.stride, avg.padding) == ((3,), (3,), (0,))  # as torch
    assert repr(avg) == "AvgPool1d(kernel_size=(3,), stride=(3,), padding=(0,))"
    assert repr(nn.AdaptiveAvgPool1d(3)) == "AdaptiveAvgPool1d(output_size=3)"
    assert repr(nn.AdaptiveMaxPool1d(3, True)) == "AdaptiveMaxPool1d(output_size=3)"


# ------------------------------------------------------------------ dropout1d
@pytest.mark.parametrize("shape", [(4, 6, 9), (6, 9)])
def test_dropout1d_drops_whole_channels(shape):
    pve.manual_seed(3)
    x = np.abs(_randn(*shape)) + 0.5
    t = pve.tensor(x, requires_grad=True)
    y = F.dropout1d(t, 0.5, training=True)
    y.backward(pve.tensor(np.ones(shape, np.float32)))
    rows = y.detach().numpy().reshape(-1, shape[-1])
    kept = rows[:, 0] != 0
    assert 0 < kept.sum() < len(kept)
    np.testing.assert_allclose(rows[kept], 2 * x.reshape(-1, shape[-1])[kept], rtol=1e-6)
    assert (rows[~kept] == 0).all()
    grad = t.grad.numpy().reshape(-1, shape[-1])  # the mask, scaled
    np.testing.assert_array_equal(grad, np.where(kept[:, None], 2.0, 0.0) + 0 * grad)


def test_dropout1d_rate_eval_and_inplace():
    pve.manual_seed(4)
    x = np.ones((200, 50, 3), np.float32)
    y = F.dropout1d(x, 0.3).numpy()
    assert abs((y[:, :, 0] == 0).mean() - 0.3) < 0.03
    m = nn.Dropout1d(0.3).eval()
    assert m(x).numpy() is not None and (m(x).numpy() == x).all()
    t = pve.tensor(np.ones((3, 4, 5), np.float32))
    assert F.dropout1d(t, 1.0, inplace=True) is t and (t.numpy() == 0).all()
    assert repr(nn.Dropout1d(0.2)) == "Dropout1d(p=0.2, inplace=False)"


# ------------------------------------------------------------------ InstanceNorm1d
def test_instance_norm1d_matches_reference_and_finite_differences(isa):
    m = nn.InstanceNorm1d(3, affine=True)
    m.weight.data = _randn(3)
    m.bias.data = _randn(3)
    w, b = m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()
    x = _randn(2, 3, 9)
    check_op(lambda t: m(t), lambda t: ref.instance_norm1d(t, 1e-5, w, b), [x],
             rtol=1e-4, atol=1e-4)
    check_op(lambda t: nn.InstanceNorm1d(3)(t), lambda t: ref.instance_norm1d(t[None])[0],
             [x[0]], rtol=1e-4, atol=1e-4)  # unbatched


def test_instance_norm1d_running_stats_and_state_dict():
    m = nn.InstanceNorm1d(3, affine=True, track_running_stats=True)
    assert list(m.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                    "num_batches_tracked"]
    x = _randn(4, 3, 7) * 2 + 1
    m(x)
    np.testing.assert_allclose(m.running_mean.numpy(), 0.1 * x.mean(axis=(0, 2)), rtol=1e-4,
                               atol=1e-5)
    m.eval()
    y = m(x).detach().numpy()
    mean, var = m.running_mean.numpy()[:, None], m.running_var.numpy()[:, None]
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4, atol=1e-4)
    assert repr(nn.InstanceNorm1d(3)) == ("InstanceNorm1d(3, eps=1e-05, momentum=0.1, "
                                          "affine=False, bias=False, track_running_stats=False)")


# ------------------------------------------------------------------ padding
PAD_LAYERS = [
    (lambda p: nn.ZeroPad1d(p), "constant", 0.0),
    (lambda p: nn.ConstantPad1d(p, -1.5), "constant", -1.5),
    (lambda p: nn.ReflectionPad1d(p), "reflect", 0.0),
    (lambda p: nn.ReplicationPad1d(p), "replicate", 0.0),
    (lambda p: nn.CircularPad1d(p), "circular", 0.0),
]


@pytest.mark.parametrize("make,mode,value", PAD_LAYERS)
@pytest.mark.parametrize("padding", [2, (1, 3), (0, 4)])
def test_pad1d_layers_match_reference(make, mode, value, padding):
    left, right = (padding, padding) if isinstance(padding, int) else padding
    layer = make(padding)
    assert layer.padding == (left, right)
    check_op(lambda t: layer(t), lambda t: ref.pad1d(t, left, right, mode, value),
             [_randn(2, 3, 5)])
    check_op(lambda t: layer(t), lambda t: ref.pad1d(t, left, right, mode, value),
             [_randn(3, 5)])  # unbatched


def test_pad1d_reprs_and_negative_crop():
    assert repr(nn.ZeroPad1d(2)) == "ZeroPad1d((2, 2))"
    assert repr(nn.ConstantPad1d((1, 2), 3.5)) == "ConstantPad1d(padding=(1, 2), value=3.5)"
    assert repr(nn.ReflectionPad1d(2)) == "ReflectionPad1d((2, 2))"
    assert repr(nn.CircularPad1d(1)) == "CircularPad1d((1, 1))"
    assert isinstance(nn.ZeroPad1d(1), nn.ConstantPad1d) and nn.ZeroPad1d(1).value == 0.0
    x = _randn(2, 3, 6)
    np.testing.assert_array_equal(nn.ZeroPad1d((-1, 2))(x).numpy(),
                                  np.pad(x[..., 1:], ((0, 0), (0, 0), (0, 2))))


# ------------------------------------------------------------------ errors
def _conv_w():
    return _randn(4, 3, 3)


ERRORS = [
    # (call, exception type, message fragment)
    (lambda: F.conv1d(_randn(1, 3, 2, 10), _conv_w()), RuntimeError, "Expected 2D"),
    (lambda: F.conv1d(_randn(10), _conv_w()), ValueError, r"input of size: \[10\]"),
    (lambda: F.conv1d(_randn(2, 2, 10), _conv_w()), RuntimeError,
     r"expected input with 3 channels.*input shape \(2, 2, 10\), weight shape \(4, 3, 3\)"),
    (lambda: F.conv1d(_randn(2, 3, 2), _conv_w()), RuntimeError, "kernel size can't be greater"),
    (lambda: F.conv1d(_randn(2, 3, 9), _conv_w(), stride=2, padding="same"), RuntimeError,
     "not supported for strided"),
    (lambda: F.conv1d(_randn(2, 3, 9), _conv_w(), stride=0), RuntimeError, "non-positive"),
    (lambda: F.conv1d(_randn(2, 3, 9), _conv_w(), stride=(1, 2)), RuntimeError,
     "list of 1 values"),
    (lambda: F.conv1d(_randn(2, 3, 9), _conv_w(), _randn(3)), RuntimeError, r"bias .*\(4,\)"),
    (lambda: F.conv1d(_randn(2, 3, 9), _randn(4, 3)), RuntimeError, "weight must be 3-D"),
    (lambda: F.conv1d(np.zeros((2, 3, 9), np.int64), _conv_w()), TypeError, "float32"),
    (lambda: nn.Conv1d(3, 4, 3, stride=2, padding="same"), ValueError, "strided"),
    (lambda: nn.Conv1d(3, 4, 3, padding_mode="foo"), ValueError, "padding_mode"),
    (lambda: nn.Conv1d(3, 4, 3, groups=2), ValueError, "divisible by groups"),
    (lambda: nn.Conv1d(3, 4, 3)(_randn(1, 3, 2, 10)), RuntimeError, r"Conv1d\(3, 4"),
    (lambda: nn.Conv1d(3, 4, 3, padding=10, padding_mode="reflect")(_randn(2, 3, 10)),
     RuntimeError, "(?i)padding size should be less"),
    (lambda: F.conv_transpose1d(_randn(1, 3, 2, 5), _conv_w()), RuntimeError, "Expected 2D"),
    (lambda: F.conv_transpose1d(_randn(2, 3, 5), _randn(2, 4, 3)), RuntimeError,
     r"expected input with 2 channels.*input shape \(2, 3, 5\)"),
    (lambda: F.conv_transpose1d(_randn(2, 3, 5), _conv_w()[:3], stride=2, output_padding=2),
     RuntimeError, "output padding must be smaller"),
    (lambda: F.conv_transpose1d(_randn(2, 3, 5), _conv_w()[:3], padding="same"), TypeError,
     "padding"),
    (lambda: nn.ConvTranspose1d(3, 4, 3, padding_mode="reflect"), ValueError, "zeros"),
    (lambda: nn.ConvTranspose1d(3, 4, 3, stride=2)(_randn(2, 3, 5), output_size=[2, 9]),
     ValueError, "output_size must have 1 or 3 elements"),
    (lambda: F.max_pool1d(_randn(1, 2, 3, 10), 2), RuntimeError, r"got: \[1, 2, 3, 10\]"),
    (lambda: F.max_pool1d(_randn(2, 3, 0), 2), RuntimeError, "Expected 2D or 3D"),
    (lambda: F.max_pool1d(_randn(2, 3, 9), 2, padding=2), RuntimeError, "at most half"),
    (lambda: F.max_pool1d(_randn(2, 3, 9), 0), RuntimeError, "greater than zero"),
    (lambda: F.max_pool1d(_randn(2, 3, 9), 10), RuntimeError, "too small"),
    (lambda: F.max_pool1d(_randn(2, 3, 9), (2, 2)), RuntimeError, "of size 1"),
    (lambda: F.avg_pool1d(_randn(1, 2, 3, 10), 2), RuntimeError, "Expected 2D or 3D"),
    (lambda: F.adaptive_avg_pool1d(_randn(1, 2, 3, 10), 2), RuntimeError, "Expected 2D"),
    (lambda: F.adaptive_avg_pool1d(_randn(2, 3, 9), (2, 2)), RuntimeError, "one int"),
    (lambda: F.adaptive_avg_pool1d(_randn(2, 3, 9), -1), RuntimeError, "greater than or equal"),
    (lambda: F.adaptive_max_pool1d(_randn(2, 3, 9), None), TypeError, "output_size"),
    (lambda: F.dropout1d(_randn(1, 2, 3, 10), training=False), RuntimeError,
     "received a 4D input"),
    (lambda: nn.Dropout1d()(_randn(10)), RuntimeError, "received a 1D input"),
    (lambda: F.dropout1d(_randn(2, 3, 4), p=1.5), ValueError, "between 0 and 1"),
    (lambda: nn.InstanceNorm1d(3)(_randn(1, 3, 2, 10)), ValueError, "expected 2D or 3D input"),
    (lambda: nn.InstanceNorm1d(3, affine=True)(_randn(2, 4, 10)), ValueError, "num_features"),
    (lambda: nn.InstanceNorm1d(3)(_randn(2, 3, 1)), ValueError, "more than 1 spatial"),
    (lambda: nn.ReflectionPad1d(10)(_randn(2, 3, 10)), RuntimeError, r"ReflectionPad1d\(10"),
    (lambda: nn.ReflectionPad1d(2)(_randn(1, 2, 3, 10)), NotImplementedError, "pad"),
    (lambda: nn.ReplicationPad1d(2)(_randn(10)), NotImplementedError, "pad"),
    (lambda: nn.CircularPad1d(2)(_randn(1, 2, 3, 10)), ValueError, "expected 2D or 3D input"),
    (lambda: nn.CircularPad1d(4)(_randn(2, 3, 3)), RuntimeError, "wrapping around"),
    (lambda: nn.ConstantPad1d((1, 2, 3), 1.0)(_randn(2, 3, 4)), RuntimeError, "even"),
    (lambda: nn.ConstantPad1d(1, "x"), TypeError, "value"),
]


@pytest.mark.parametrize("call,error,match", ERRORS)
def test_bad_input_raises_torch_type_and_a_valueerror(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    if error is not TypeError:  # (the contract: bad input is also a ValueError)
        assert isinstance(info.value, ValueError)
