"""Shared helpers for the convolution tests: random configurations and checks."""

from __future__ import annotations

import contextlib

import numpy as np

import pyvision_engine as pve
from pyvision_engine import _C
from pyvision_engine.nn import functional as F
from reference.conv_reference import conv2d_backward, conv2d_forward


@contextlib.contextmanager
def num_threads(n):
    """The engine's thread count set to ``n`` for the block, then restored."""
    previous = pve.get_num_threads()
    pve.set_num_threads(n)
    try:
        yield
    finally:
        pve.set_num_threads(previous)


def random_3x3_case(shape):
    """(x, weight, bias, pads, rng) for a 3x3 stride-1 case ``(n, c, k, h, w, pad)``,
    seeded by the shape; the generator continues for any further draws."""
    n, c, k, h, w, pad = shape
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = (rng.standard_normal((k, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    return x, wt, b, (pad,) * 4, rng


def random_pointwise_case(rng, n, c, k, h, w, stride):
    """(x, weight, bias, output (H, W)) for a 1x1 convolution case, drawn from ``rng``
    in that order."""
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, 1, 1)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    return x, wt, b, ((h - 1) // stride + 1, (w - 1) // stride + 1)


def trained_bn(channels, rng):
    """A BatchNorm2d with random running statistics and affine parameters, as after
    training (train mode; callers set eval where they need it)."""
    bn = pve.nn.BatchNorm2d(channels)
    bn.running_mean.copy_(pve.tensor(rng.standard_normal(channels).astype(np.float32)))
    bn.running_var.copy_(pve.tensor(rng.uniform(0.5, 2.0, channels).astype(np.float32)))
    bn.weight.data = rng.standard_normal(channels).astype(np.float32)
    bn.bias.data = rng.standard_normal(channels).astype(np.float32)
    return bn


def rgb_stem_family(isa):
    """The family the rule picks for a 7x7 stride-2 RGB stem's forward at ``isa``."""
    from pyvision_engine.backends import conv as conv_backend
    if isa in conv_backend.WINOGRAD_S2_ISAS:
        return "winograd_s2"
    return "stem" if isa in conv_backend.STEM_ISAS else "im2col"


def check_folded_stem(rng, stride):
    """Conv2d(3, 24, 7, padding 3) + BatchNorm2d + ReLU in eval mode under no_grad (folded
    into one convolution, weights packed once) against the same layers in float64;
    returns the Conv2d (its ``_pack`` names the family that ran)."""
    conv = pve.nn.Conv2d(3, 24, 7, stride=stride, padding=3, bias=False)
    bn = trained_bn(24, rng)
    model = pve.nn.Sequential(conv, bn, pve.nn.ReLU()).eval()
    x = rng.standard_normal((2, 3, 33, 30)).astype(np.float32)
    with pve.no_grad():
        got = model(pve.tensor(x)).numpy()
    mean, var = bn.running_mean.numpy().astype(np.float64), bn.running_var.numpy().astype(np.float64)
    scale = bn.weight.detach().numpy().astype(np.float64) / np.sqrt(var + bn.eps)
    w = conv.weight.detach().numpy().astype(np.float64) * scale[:, None, None, None]
    b = bn.bias.detach().numpy().astype(np.float64) - mean * scale
    want = np.maximum(conv2d_forward(x.astype(np.float64), w, b, (stride, stride), (3, 3, 3, 3),
                                     (1, 1), 1), 0.0)
    assert_close(got, want, "folded stem")
    return conv


def randomize_bn_statistics(model, rng):
    """Non-trivial running statistics in every BatchNorm2d of ``model``, as after training."""
    for m in model.modules():
        if isinstance(m, pve.nn.BatchNorm2d):
            m.running_mean.copy_(pve.tensor((0.1 * rng.standard_normal(m.num_features))
                                            .astype(np.float32)))
            m.running_var.copy_(pve.tensor(rng.uniform(0.5, 1.5, m.num_features)
                                           .astype(np.float32)))


def run_engine(x, w, b, stride, padding, dilation, groups, gy):
    """(y, gx, gw, gb) from the engine's kernels, through the same geometry code
    as nn.functional, with whatever algorithm is forced."""
    geo = F._conv2d_geometry(x.shape, w.shape, stride, padding, dilation, groups, "conv2d")
    algo = {p: F._algorithm(p, x.shape, w.shape, geo)
            for p in ("forward", "backward_data", "backward_weight")}
    y = _C.conv2d_forward(x, w, b, geo.stride, geo.top_left, geo.dilation, groups, geo.out_size,
                          algo["forward"])
    if gy is None:
        return y, geo
    gx = _C.conv2d_backward_data(gy, w, list(x.shape), geo.stride, geo.top_left, geo.dilation,
                                 groups, algo["backward_data"])
    gw, gb = _C.conv2d_backward_weight(x, gy, list(w.shape), geo.stride, geo.top_left,
                                       geo.dilation, groups, algo["backward_weight"],
                                       b is not None)
    return y, gx, gw, gb, geo


def assert_close(actual, expected, name, rtol=2e-5):
    """float32 result vs float64 reference, tolerance scaled by the result's size."""
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    err = float(np.abs(actual - expected).max(initial=0.0))
    assert err <= rtol * scale * 10, f"{name}: max error {err:.3g} (scale {scale:.3g})"


def check_against_reference(rng, n, c, h, w_, k, kh, kw, stride, padding, dilation, groups,
                            with_bias=True):
    x = rng.standard_normal((n, c, h, w_)).astype(np.float32)
    w = rng.standard_normal((k, c // groups, kh, kw)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32) if with_bias else None
    y, geo = run_engine(x, w, b, stride, padding, dilation, groups, None)
    gy = rng.standard_normal(y.shape).astype(np.float32)
    y, gx, gw, gb, geo = run_engine(x, w, b, stride, padding, dilation, groups, gy)
    y_ref = conv2d_forward(x, w, b, geo.stride, geo.pads, geo.dilation, groups)
    gx_ref, gw_ref, gb_ref = conv2d_backward(x, w, gy, geo.stride, geo.pads, geo.dilation, groups)
    assert_close(y, y_ref, "forward")
    assert_close(gx, gx_ref, "grad_input")
    assert_close(gw, gw_ref, "grad_weight")
    if with_bias:
        assert_close(gb, gb_ref, "grad_bias")
    else:
        assert gb is None


def dense_case(rng, n, c, h, w, k, kernel, stride, padding, dilation, bias=True):
    """(x, weight, bias or None, geometry) of a random groups-1 convolution."""
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c) + kernel).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32) if bias else None
    geo = F._conv2d_geometry(x.shape, wt.shape, stride, padding, dilation, 1, "conv2d")
    return x, wt, b, geo


def forward_with(family, x, w, b, geo, relu=False, relu_max=np.inf, packed=None, stream=None):
    """conv2d forward run by ``family`` (asserting that it takes the shape, no fallback);
    ``stream``: force non-temporal output stores on (True) or off (False)."""
    assert _C.conv2d_plan("forward", family, list(x.shape), list(w.shape), geo.stride,
                          geo.top_left, geo.dilation, 1, geo.out_size)[0] == family
    return _C.conv2d_forward(x, w, b, geo.stride, geo.top_left, geo.dilation, 1, geo.out_size,
                             family, relu, packed, relu_max, stream)
