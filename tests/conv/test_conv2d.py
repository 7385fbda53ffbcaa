"""conv2d / Conv2d through the public API: autograd vs float64 finite differences,
errors, torch's init, 'same'/'valid', unbatched input, thread safety."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import functional as F
from reference.conv_reference import conv2d_backward as ref_conv2d_backward
from reference.conv_reference import conv2d_forward
from reference.conv_reference import conv2d_forward as ref_conv2d
from reference.gradcheck import assert_grad_close, numerical_grads


@pytest.mark.parametrize("forced", [None] + list(conv_backend.ALGORITHMS))
@pytest.mark.parametrize("config", [
    # x shape, w shape, stride, padding, dilation, groups
    ((2, 3, 6, 5), (4, 3, 3, 3), 1, 1, 1, 1),
    ((1, 4, 7, 6), (8, 2, 2, 3), (2, 1), "valid", (1, 2), 2),
    ((2, 3, 5, 5), (6, 1, 3, 3), 1, "same", 1, 3),
    ((1, 4, 6, 6), (2, 4, 1, 1), 2, 0, 1, 1),
    ((1, 2, 6, 7), (3, 2, 4, 2), 1, "same", 1, 1),
])
def test_autograd_matches_finite_differences(forced, config):
    xs, ws, stride, padding, dilation, groups = config
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(xs).astype(np.float32)
    w0 = rng.standard_normal(ws).astype(np.float32)
    b0 = rng.standard_normal(ws[0]).astype(np.float32)
    x = pve.tensor(x0, requires_grad=True)
    w = pve.tensor(w0, requires_grad=True)
    b = pve.tensor(b0, requires_grad=True)
    with conv_backend.force_algorithm(forced):
        y = F.conv2d(x, w, b, stride, padding, dilation, groups)
        upstream = rng.standard_normal(y.shape).astype(np.float32)
        (y * pve.tensor(upstream)).sum().backward()
    geo = F._conv2d_geometry(xs, ws, stride, padding, dilation, groups, "conv2d")

    def f(xv, wv, bv):
        return conv2d_forward(xv, wv, bv, geo.stride, geo.pads, geo.dilation, groups)

    np.testing.assert_allclose(y.detach().numpy(), f(x0, w0, b0), rtol=1e-5, atol=1e-5)
    gx, gw, gb = numerical_grads(f, [x0, w0, b0], upstream.astype(np.float64))
    assert_grad_close(x.grad.numpy(), gx, name="grad_input")
    assert_grad_close(w.grad.numpy(), gw, name="grad_weight")
    assert_grad_close(b.grad.numpy(), gb, name="grad_bias")


def test_only_requested_gradients_and_no_bias():
    rng = np.random.default_rng(1)
    x = pve.tensor(rng.standard_normal((2, 3, 5, 5)).astype(np.float32))
    w = pve.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True)
    F.conv2d(x, w).sum().backward()
    assert x.grad is None and w.grad.shape == (4, 3, 3, 3)


def test_unbatched_input():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    y = F.conv2d(x, w, padding=1)
    assert y.shape == (5, 8, 8)
    np.testing.assert_allclose(y.numpy(), F.conv2d(x[None], w, padding=1).numpy()[0])


def test_same_padding_even_kernel_pads_bottom_right():
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 3, 3] = 1.0  # bottom-right pixel
    w = np.ones((1, 1, 2, 2), np.float32)
    y = F.conv2d(x, w, padding="same").numpy()
    assert y.shape == (1, 1, 4, 4)
    # torch pads 0 on top/left, 1 on bottom/right for a 2x2 kernel
    assert y[0, 0, 3, 3] == 1 and y[0, 0, 2, 2] == 1 and y[0, 0, 2, 3] == 1


def test_conv2d_module_init_like_torch():
    pve.manual_seed(0)
    m = pve.nn.Conv2d(6, 8, (3, 5), groups=2)
    fan_in = 3 * 3 * 5
    assert m.weight.shape == (8, 3, 3, 5) and m.bias.shape == (8,)
    bound_w = math.sqrt(6 / ((1 + 5) * fan_in))  # kaiming_uniform_(a=sqrt(5))
    assert np.abs(m.weight.detach().numpy()).max() <= bound_w + 1e-7
    assert np.abs(m.weight.detach().numpy()).max() > 0.8 * bound_w
    assert np.abs(m.bias.detach().numpy()).max() <= 1 / math.sqrt(fan_in) + 1e-7
    assert pve.nn.Conv2d(3, 4, 1, bias=False).bias is None
    assert "padding=(1, 1)" in repr(pve.nn.Conv2d(3, 4, 3, padding=1))


def _message(excinfo) -> str:
    return str(excinfo.value)


@pytest.mark.parametrize("make, words", [
    (lambda: F.conv2d(np.zeros((1, 4, 8, 8), np.float32), np.zeros((6, 3, 3, 3), np.float32),
                      groups=2), ["groups", "(1, 4, 8, 8)", "(6, 3, 3, 3)"]),
    (lambda: F.conv2d(np.zeros((1, 4, 8, 8), np.float32), np.zeros((6, 3, 3, 3), np.float32)),
     ["channels", "(1, 4, 8, 8)", "(6, 3, 3, 3)"]),
    (lambda: F.conv2d(np.zeros((1, 3, 4, 4), np.float32), np.zeros((2, 3, 7, 7), np.float32),
                      padding=1), ["kernel size", "(1, 3, 4, 4)", "(2, 3, 7, 7)"]),
    (lambda: F.conv2d(np.zeros((1, 3, 8, 8), np.float32), np.zeros((2, 3, 3, 3), np.float32),
                      stride=0), ["stride", "(1, 3, 8, 8)", "(2, 3, 3, 3)"]),
    (lambda: F.conv2d(np.zeros((1, 3, 8, 8), np.float32), np.zeros((2, 3, 3, 3), np.float32),
                      dilation=(1, -1)), ["dilation", "(1, 3, 8, 8)"]),
    (lambda: F.conv2d(np.zeros((1, 3, 8, 8), np.float32), np.zeros((2, 3, 3), np.float32)),
     ["4-D", "(1, 3, 8, 8)", "(2, 3, 3)"]),
    (lambda: F.conv2d(np.zeros((3, 8), np.float32), np.zeros((2, 3, 3, 3), np.float32)),
     ["input", "(3, 8)", "(2, 3, 3, 3)"]),
    (lambda: F.conv2d(np.zeros((1, 3, 8, 8), np.float32), np.zeros((2, 3, 3, 3), np.float32),
                      stride=2, padding="same"), ["same", "strided"]),
    (lambda: F.conv2d(np.zeros((1, 3, 8, 8), np.float32), np.zeros((2, 3, 3, 3), np.float32),
                      padding="full"), ["padding", "full"]),
    (lambda: F.conv2d(np.zeros((1, 3, 8, 8), np.float32), np.zeros((2, 3, 3, 3), np.float32),
                      np.zeros(3, np.float32)), ["bias", "(2,)"]),
])
def test_bad_configurations_raise_value_error(make, words):
    with pytest.raises(ValueError) as excinfo:
        make()
    for word in words:
        assert word in _message(excinfo), (word, _message(excinfo))


def test_module_errors_name_the_layer():
    m = pve.nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8.*\(2, 4, 9, 9\).*\(8, 3, 3, 3\)"):
        m(np.zeros((2, 4, 9, 9), np.float32))
    with pytest.raises(ValueError, match="Conv2d.*kernel size.*\\(1, 3, 2, 2\\)"):
        m(np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="divisible by groups"):
        pve.nn.Conv2d(3, 8, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        pve.nn.Conv2d(3, 8, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode"):
        pve.nn.Conv2d(3, 8, 3, padding_mode="mirror")


@pytest.mark.parametrize("mode,np_mode", [("reflect", "reflect"), ("replicate", "edge"),
                                          ("circular", "wrap")])
@pytest.mark.parametrize("padding,stride", [(1, 1), ((2, 1), 2), ("same", 1)])
def test_padding_modes_pad_then_convolve(mode, np_mode, padding, stride):
    rng = np.random.default_rng(8)
    conv = pve.nn.Conv2d(3, 5, (3, 4), stride=stride, padding=padding, padding_mode=mode)
    x = rng.standard_normal((2, 3, 7, 8)).astype(np.float32)
    top, bottom, left, right = F._conv2d_padding(padding, (3, 4), conv.stride, (1, 1), "t")
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=np_mode)
    w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    want = ref_conv2d(xp, w, b, conv.stride, (0, 0, 0, 0), (1, 1), 1)
    np.testing.assert_allclose(conv(x).detach().numpy(), want, rtol=1e-4, atol=1e-4)
    conv.eval()
    with pve.no_grad():  # the inference fast path pads the same way
        np.testing.assert_allclose(conv(x).numpy(), want, rtol=1e-4, atol=1e-4)
    assert f"padding_mode={mode}" in repr(conv)
    # gradients flow back through the padding to the input
    xt = pve.tensor(x, requires_grad=True)
    conv.train()
    conv(xt).sum().backward()
    gy = np.ones(want.shape)
    gx_padded = ref_conv2d_backward(xp, w, gy, conv.stride, (0, 0, 0, 0), (1, 1), 1)[0]
    index_h = np.pad(np.arange(7), (top, bottom), mode=np_mode)
    index_w = np.pad(np.arange(8), (left, right), mode=np_mode)
    gx = np.zeros(x.shape)
    for i, src_h in enumerate(index_h):
        for j, src_w in enumerate(index_w):
            gx[:, :, src_h, src_w] += gx_padded[:, :, i, j]
    np.testing.assert_allclose(xt.grad.numpy(), gx, rtol=1e-4, atol=1e-4)


def test_absurd_sizes_raise_instead_of_allocating():
    # A 1x1 conv with a 2^20 x 2^20 output would need 4 TiB: the shape alone says no.
    x = np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (1, 1, 1 << 20, 1 << 20),
                                        (0, 0, 0, 0))
    with pytest.raises(ValueError, match="GiB"):
        F._conv2d_geometry(x.shape, (1024, 1, 1, 1), 1, 0, 1, 1, "conv2d")
    # The native layer checks output and scratch sizes too, whatever Python passed.
    from pyvision_engine import _C
    with pytest.raises(ValueError, match="GiB"):
        _C.conv2d_forward(np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 1, 1), np.float32),
                          None, (1, 1), (0, 0), (1, 1), 1, (1 << 20, 1 << 20), "im2col")


def test_concurrent_python_threads_get_correct_results():
    rng = np.random.default_rng(5)
    cases = []
    for xs, ws, pad, groups in [((2, 16, 14, 14), (16, 16, 3, 3), 1, 1),
                                ((2, 8, 20, 20), (8, 1, 3, 3), 1, 8),
                                ((2, 3, 17, 17), (6, 3, 5, 5), 2, 1),
                                ((2, 12, 9, 9), (24, 12, 1, 1), 0, 1)]:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        cases.append((x, w, pad, groups, F.conv2d(x, w, padding=pad, groups=groups).numpy()))
    errors = []

    def worker(i):
        for _ in range(10):
            x, w, pad, groups, want = cases[i % len(cases)]
            got = F.conv2d(x, w, padding=pad, groups=groups).numpy()
            if not np.array_equal(got, want):
                errors.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("algorithm", ["im2col", "pointwise", "winograd", "direct", "depthwise",
                                       "phase"])
def test_an_empty_batch_through_every_family_gives_empty_and_zero_gradients(algorithm):
    # (im2col's and pointwise's backward-weight workspace queries once divided by zero here)
    c, k, size = (4, 4, 1) if algorithm == "pointwise" else (4, 4, 3)
    groups = 4 if algorithm == "depthwise" else 1
    x = pve.tensor(np.zeros((0, c, 6, 6), np.float32), requires_grad=True)
    w = pve.tensor(np.ones((k, c // groups, size, size), np.float32), requires_grad=True)
    b = pve.tensor(np.ones(k, np.float32), requires_grad=True)
    with pve.backends.conv.force_algorithm(algorithm):
        y = F.conv2d(x, w, b, padding=size // 2, groups=groups)
        y.sum().backward()
    assert y.shape == (0, k, 6, 6) and x.grad.shape == x.shape
    np.testing.assert_array_equal(w.grad.numpy(), 0)
    np.testing.assert_array_equal(b.grad.numpy(), 0)


def test_conv2d_takes_cpu_float32_device_and_dtype():
    # torch's factory arguments, after padding_mode, as ported code passes them
    for kw in ({"device": "cpu"}, {"dtype": pve.float32}, {"device": None, "dtype": None}):
        assert pve.nn.Conv2d(3, 4, 3, **kw).weight.dtype == np.float32
    assert pve.nn.Conv2d(3, 4, 3, 1, 0, 1, 1, True, "zeros", "cpu", np.float32).bias is not None
    with pytest.raises(ValueError, match="Conv2d: only device='cpu' is supported"):
        pve.nn.Conv2d(3, 4, 3, device="cuda")
    with pytest.raises(TypeError, match="Conv2d: only dtype float32 is supported"):
        pve.nn.Conv2d(3, 4, 3, dtype=np.float64)
