"""conv_transpose2d / ConvTranspose2d: forward against a float64 scatter-by-definition
reference, autograd against float64 finite differences (every conv algorithm forced,
since the layer runs on conv2d's kernels with the passes swapped), torch's output_size
rule, init and errors, and torch parity when torch is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import functional as F
from reference.conv_reference import conv_transpose2d_forward
from reference.gradcheck import assert_grad_close, numerical_grads

# x shape, w shape (C_in, C_out/groups, kH, kW), stride, padding, output_padding, groups, dilation
CONFIGS = [
    ((2, 3, 4, 5), (3, 2, 3, 3), 1, 0, 0, 1, 1),
    ((1, 4, 3, 4), (4, 3, 3, 3), 2, 1, 1, 2, 1),
    ((2, 2, 3, 3), (2, 3, 2, 4), (2, 3), (1, 2), (1, 2), 1, 1),
    ((1, 4, 4, 3), (4, 1, 3, 3), 1, 2, (1, 1), 4, 2),    # output padding below the dilation
    ((1, 6, 3, 3), (6, 2, 3, 2), (3, 1), (0, 1), (2, 0), 3, (1, 2)),
    ((2, 5, 4, 4), (5, 4, 1, 1), 2, 0, 1, 1, 1),          # 1x1, stride 2
    ((1, 16, 5, 5), (16, 8, 3, 3), 1, 1, 0, 1, 1),       # Winograd-sized channels
]


def _assert_close(actual, expected, rel=1e-5):
    """Float32 sums of C_in * kH * kW terms (Winograd's transforms included) against a float64
    or direct result: the error is measured against the output's scale (the Winograd accuracy
    bound of tests/conv/test_winograd_accuracy.py is 1e-4 of it)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    assert np.abs(actual - expected).max(initial=0.0) <= rel * scale


def _case(config, seed=0):
    xs, ws, stride, padding, output_padding, groups, dilation = config
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[1] * groups).astype(np.float32)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    geo = (pair(stride), pair(padding), pair(output_padding), groups, pair(dilation))
    return x, w, b, geo


@pytest.mark.parametrize("forced", [None] + list(conv_backend.ALGORITHMS))
@pytest.mark.parametrize("config", CONFIGS)
def test_forward_and_gradients_match_references(forced, config):
    x0, w0, b0, (stride, padding, output_padding, groups, dilation) = _case(config)
    x = pve.tensor(x0, requires_grad=True)
    w = pve.tensor(w0, requires_grad=True)
    b = pve.tensor(b0, requires_grad=True)
    with conv_backend.force_algorithm(forced):
        y = F.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)
        upstream = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        (y * pve.tensor(upstream)).sum().backward()

    def f(xv, wv, bv):
        return conv_transpose2d_forward(xv, wv, bv, stride, padding, output_padding, groups,
                                        dilation)

    expected = f(x0, w0, b0)
    assert y.shape == expected.shape
    _assert_close(y.detach().numpy(), expected)
    if x0.size * w0.size > 3000:  # finite differences of the big case: forward only
        return
    gx, gw, gb = numerical_grads(f, [x0, w0, b0], upstream.astype(np.float64))
    assert_grad_close(x.grad.numpy(), gx, name="grad_input")
    assert_grad_close(w.grad.numpy(), gw, name="grad_weight")
    assert_grad_close(b.grad.numpy(), gb, name="grad_bias")


def test_module_output_size_picks_the_output_padding():
    m = pve.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    x = np.random.default_rng(2).standard_normal((1, 3, 4, 5)).astype(np.float32)
    # minimum (4-1)*2 - 2 + 2 + 1 = 7 rows, 9 columns; stride 2 allows one more
    assert m(x).shape == (1, 2, 7, 9)
    y = m(x, output_size=[8, 10])
    assert y.shape == (1, 2, 8, 10)
    expected = conv_transpose2d_forward(x, m.weight.detach().numpy(), m.bias.detach().numpy(),
                                        (2, 2), (1, 1), (1, 1), 1, (1, 1))
    _assert_close(y.detach().numpy(), expected)
    assert m(x, output_size=(1, 2, 8, 9)).shape == (1, 2, 8, 9)  # with batch and channels
    with pytest.raises(ValueError, match="valid sizes range from"):
        m(x, output_size=[9, 9])
    with pytest.raises(ValueError, match="output_size must have 2 or 4 elements"):
        m(x, output_size=[8])


def test_unbatched_input_and_no_bias():
    m = pve.nn.ConvTranspose2d(2, 3, (2, 3), stride=(1, 2), bias=False)
    assert m.bias is None and m.weight.shape == (2, 3, 2, 3)
    x = np.random.default_rng(3).standard_normal((2, 4, 4)).astype(np.float32)
    y = m(x)
    expected = conv_transpose2d_forward(x[None], m.weight.detach().numpy(), None, (1, 2),
                                        (0, 0), (0, 0), 1, (1, 1))[0]
    assert y.shape == expected.shape
    _assert_close(y.detach().numpy(), expected)


def test_empty_batch():
    y = F.conv_transpose2d(np.zeros((0, 2, 3, 3), np.float32), np.ones((2, 4, 3, 3), np.float32),
                           stride=2)
    assert y.shape == (0, 4, 7, 7)


def test_init_as_torch():
    """kaiming_uniform_(a=sqrt(5)) on the transposed weight: fan_in = weight.shape[1] * kH * kW,
    so both weight and bias lie within 1/sqrt(fan_in)."""
    pve.manual_seed(0)
    m = pve.nn.ConvTranspose2d(64, 32, 3, groups=2)
    bound = 1 / math.sqrt(16 * 9)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # U(-a, a) has std a/sqrt(3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(output_padding=2, stride=2), "output padding must be smaller than either stride or "
                                       "dilation"),
    (dict(output_padding=1), "output padding must be smaller"),
    (dict(stride=0), "stride must be positive"),
    (dict(padding=-1), "negative padding"),
    (dict(padding="same"), "padding must be an int"),
    (dict(groups=2), "divisible by groups"),
    (dict(padding=3), "too small"),
])
def test_bad_configurations_raise(kwargs, message):
    x = np.zeros((1, 3, 2, 2), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=message):
        F.conv_transpose2d(x, w, **kwargs)


def test_channel_and_bias_mismatch_name_the_shapes():
    with pytest.raises(ValueError, match=r"expected input with 4 channels.*\(1, 3, 5, 5\)"):
        F.conv_transpose2d(np.zeros((1, 3, 5, 5), np.float32), np.zeros((4, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"bias must have shape \(2,\)"):
        F.conv_transpose2d(np.zeros((1, 4, 5, 5), np.float32), np.zeros((4, 2, 3, 3), np.float32),
                           np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="padding mode"):
        pve.nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")


# ------------------------------------------------------------------ torch parity
@pytest.mark.parametrize("config", CONFIGS)
def test_torch_parity(config):
    torch = pytest.importorskip("torch", reason="torch parity needs torch")
    x0, w0, b0, (stride, padding, output_padding, groups, dilation) = _case(config, seed=5)
    tm = torch.nn.ConvTranspose2d(w0.shape[0], w0.shape[1] * groups, w0.shape[2:], stride,
                                  padding, output_padding, groups, True, dilation)
    pm = pve.nn.ConvTranspose2d(w0.shape[0], w0.shape[1] * groups, w0.shape[2:], stride,
                                padding, output_padding, groups, True, dilation)
    assert set(pm.state_dict()) == set(tm.state_dict())
    assert repr(pm) == repr(tm)
    with torch.no_grad():
        tm.weight.copy_(torch.from_numpy(w0))
        tm.bias.copy_(torch.from_numpy(b0))
    pm.load_state_dict({"weight": w0, "bias": b0})
    tx = torch.from_numpy(x0).requires_grad_()
    px = pve.tensor(x0, requires_grad=True)
    ty, py = tm(tx), pm(px)
    gy = np.random.default_rng(6).standard_normal(tuple(ty.shape)).astype(np.float32)
    ty.backward(torch.from_numpy(gy))
    py.backward(pve.tensor(gy))
    _assert_close(py.detach().numpy(), ty.detach().numpy())
    _assert_close(px.grad.numpy(), tx.grad.numpy())
    _assert_close(pm.weight.grad.numpy(), tm.weight.grad.numpy())
    _assert_close(pm.bias.grad.numpy(), tm.bias.grad.numpy())
