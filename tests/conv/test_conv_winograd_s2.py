"""The ``winograd_s2`` family (Winograd F(3x3, 4x4) over the four stride phases of a
stride-2 convolution: csrc/kernels/conv/conv2d_winograd_s2.cpp), forward and
backward-weight, at every ISA level against the float64 reference: kernels of 1 to 8
taps a side (phase kernels cut short), padding larger than the kernel, output widths
that end inside a tile, a vector and a block, several blocks per tile row, output
channels past whole micro-kernel tiles and channel chunks, packed and unpacked weights,
bias and ReLU(6), threads, non-finite inputs, the eval fast path of a ResNet stem, and
where the rule picks it."""

from __future__ import annotations

import numpy as np
import pytest

from pyvision_engine import _C
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import functional as F

from conv.conv_cases import (assert_close, check_folded_stem, dense_case, forward_with, num_threads,
                              rgb_stem_family)
from reference.conv_reference import conv2d_backward, conv2d_forward

pytestmark = pytest.mark.kernels

# n, c, h, w, k, (kh, kw), padding
SHAPES = [
    (1, 3, 40, 45, 64, (7, 7), (3, 3)),     # ResNet's stem, small image: a partial last tile
    (2, 3, 23, 31, 37, (7, 7), (3, 3)),     # 37: 9 tiles of 4 + 1, two chunks of 16 + 5
    (1, 1, 17, 300, 5, (8, 8), (4, 3)),     # 8x8: full phase kernels; 3 blocks per tile row
    (1, 4, 26, 19, 20, (7, 5), (2, 0)),     # non-square kernel, no padding left/right
    (3, 2, 9, 13, 3, (3, 5), (1, 2)),       # small kernel: phases of 2x3 and 1x2 taps
    (1, 3, 12, 200, 48, (7, 7), (3, 3)),    # one tile row of many tiles, 2 blocks
    (1, 5, 10, 11, 9, (1, 1), (0, 0)),      # 1x1: one nonzero tap in one phase
    (2, 2, 6, 7, 17, (6, 8), (5, 6)),       # padding wider than the kernel
    (1, 3, 224, 224, 64, (7, 7), (3, 3)),   # ResNet's stem itself
]

_case = dense_case


def _geo_case(rng, n, c, h, w, k, kernel, padding, bias=True):
    return _case(rng, n, c, h, w, k, kernel, (2, 2), padding, (1, 1), bias)


def _s2(*args, **kwargs):
    return forward_with("winograd_s2", *args, **kwargs)


def _reference(x, w, b, padding, relu_max=None):
    (ph, pw) = padding
    y = conv2d_forward(x.astype(np.float64), w.astype(np.float64),
                       None if b is None else b.astype(np.float64), (2, 2), (ph, ph, pw, pw),
                       (1, 1), 1)
    return y if relu_max is None else np.clip(y, 0.0, relu_max)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])))
def test_matches_reference(isa, shape):
    *dims, kernel, padding = shape
    rng = np.random.default_rng(abs(hash(shape)) % 2**32)
    x, w, b, geo = _geo_case(rng, *dims, kernel, padding)
    packed = _C.conv2d_pack_weight(w, algorithm="winograd_s2")
    for bias in (b, None):
        want = _reference(x, w, bias, padding)
        assert_close(_s2(x, w, bias, geo), want, "winograd_s2 forward")
        assert_close(_s2(x, w, bias, geo, packed=packed), want, "winograd_s2 forward, packed")
    assert_close(_s2(x, w, b, geo, relu=True), _reference(x, w, b, padding, np.inf),
                 "winograd_s2 ReLU")
    assert_close(_s2(x, w, b, geo, relu=True, relu_max=6.0, packed=packed),
                 _reference(x, w, b, padding, 6.0), "winograd_s2 ReLU6")


def test_accuracy_on_image_like_data(isa):
    """The Winograd accuracy bound of the issue (1e-4 relative to the direct result) on
    a normalized image and kaiming-scaled weights; float32 im2col is the direct result."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-2.1, 2.6, (2, 3, 96, 96)).astype(np.float32)
    w = (rng.standard_normal((64, 3, 7, 7)) * np.sqrt(2.0 / 147)).astype(np.float32)
    geo = F._conv2d_geometry(x.shape, w.shape, 2, 3, 1, 1, "conv2d")
    got = _s2(x, w, None, geo)
    direct = _C.conv2d_forward(x, w, None, geo.stride, geo.top_left, geo.dilation, 1,
                               geo.out_size, "im2col")
    err = np.abs(got - direct).max() / np.abs(direct).max()
    assert err < 1e-5, err


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_agree(isa, threads):
    x, w, b, geo = _geo_case(np.random.default_rng(threads), 2, 3, 30, 61, 40, (7, 7), (3, 3))
    with num_threads(threads):
        assert_close(_s2(x, w, b, geo, relu=True), _reference(x, w, b, (3, 3), np.inf),
                     f"winograd_s2 at {threads} threads")


def test_non_finite_inputs_stay_where_torch_puts_them(isa):
    # The transforms mix a tile's inputs: such results are computed again by im2col.
    x, w, b, geo = _geo_case(np.random.default_rng(5), 1, 3, 20, 20, 17, (7, 7), (3, 3))
    x[0, 1, 9, 9] = np.nan
    x[0, 2, 0, 0] = np.inf
    want = _reference(x, w, b, (3, 3))
    got = _s2(x, w, b, geo)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=2e-5, atol=1e-4)


def _grad_weight(x, gy, w_shape, padding, with_bias=True, algorithm="winograd_s2"):
    return _C.conv2d_backward_weight(x, gy, list(w_shape), (2, 2), padding, (1, 1), 1,
                                     algorithm, with_bias)


def _reference_grads(x, w_shape, gy, padding):
    (ph, pw) = padding
    _, gw, gb = conv2d_backward(x.astype(np.float64), np.zeros(w_shape), gy.astype(np.float64),
                                (2, 2), (ph, ph, pw, pw), (1, 1), 1)
    return gw, gb


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])))
def test_backward_weight_matches_reference(isa, shape):
    *dims, kernel, padding = shape
    rng = np.random.default_rng(abs(hash(shape)) % 2**32 + 1)
    x, w, _, geo = _geo_case(rng, *dims, kernel, padding)
    gy = rng.standard_normal((dims[0], dims[4]) + geo.out_size).astype(np.float32)
    want_w, want_b = _reference_grads(x, w.shape, gy, padding)
    gw, gb = _grad_weight(x, gy, w.shape, geo.top_left)
    assert_close(gw, want_w, "winograd_s2 grad_weight")
    assert_close(gb, want_b, "winograd_s2 grad_bias")
    gw, gb = _grad_weight(x, gy, w.shape, geo.top_left, with_bias=False)
    assert gb is None
    assert_close(gw, want_w, "winograd_s2 grad_weight, no bias")


def test_backward_weight_accuracy_on_image_like_data(isa):
    """As the forward's bound, for the weight gradient of a stem: a normalized image and
    output gradients of a trained network's scale, float32 im2col the direct result."""
    rng = np.random.default_rng(8)
    x = rng.uniform(-2.1, 2.6, (2, 3, 96, 96)).astype(np.float32)
    gy = (rng.standard_normal((2, 64, 48, 48)) * 1e-3).astype(np.float32)
    got, _ = _grad_weight(x, gy, (64, 3, 7, 7), (3, 3))
    direct, _ = _grad_weight(x, gy, (64, 3, 7, 7), (3, 3), algorithm="im2col")
    err = np.abs(got - direct).max() / np.abs(direct).max()
    assert err < 2e-5, err


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_backward_weight_thread_counts_agree(isa, threads):
    # (3 threads and 6 blocks of tiles; 1x5 output: fewer blocks than threads)
    for n, h, w_ in ((2, 30, 61), (1, 5, 9)):
        rng = np.random.default_rng(threads)
        x, w, _, geo = _geo_case(rng, n, 3, h, w_, 40, (7, 7), (3, 3))
        gy = rng.standard_normal((n, 40) + geo.out_size).astype(np.float32)
        want_w, want_b = _reference_grads(x, w.shape, gy, (3, 3))
        with num_threads(threads):
            gw, gb = _grad_weight(x, gy, w.shape, geo.top_left)
        assert_close(gw, want_w, f"winograd_s2 grad_weight at {threads} threads")
        assert_close(gb, want_b, f"winograd_s2 grad_bias at {threads} threads")


def test_backward_weight_non_finite_values_stay_where_torch_puts_them(isa):
    # A NaN input reaches the taps whose products read it; an inf output gradient
    # reaches them all (its channel's). Computed again by im2col, as the forward.
    rng = np.random.default_rng(6)
    x, w, _, geo = _geo_case(rng, 1, 3, 20, 20, 17, (7, 7), (3, 3))
    gy = rng.standard_normal((1, 17) + geo.out_size).astype(np.float32)
    x[0, 1, 0, 0] = np.nan
    gy[0, 5, 3, 4] = np.inf
    want_w, want_b = _reference_grads(x, w.shape, gy, (3, 3))
    gw, gb = _grad_weight(x, gy, w.shape, geo.top_left)
    np.testing.assert_array_equal(np.isnan(gw), np.isnan(want_w))
    np.testing.assert_array_equal(np.isposinf(gw), np.isposinf(want_w))
    finite = np.isfinite(want_w)
    assert 0 < finite.sum() < finite.size
    np.testing.assert_allclose(gw[finite], want_w[finite], rtol=2e-5, atol=1e-4)
    np.testing.assert_array_equal(np.isinf(gb), np.isinf(want_b))


def test_only_stride_2_forward_and_backward_weight_up_to_8_taps():
    x, w = [1, 3, 32, 32], [8, 3, 7, 7]
    plan = _C.conv2d_plan
    for pass_ in ("forward", "backward_weight"):
        assert plan(pass_, "winograd_s2", x, w, (2, 2), (3, 3), (1, 1), 1, (16, 16))[0] == \
            "winograd_s2"
    assert plan("backward_data", "winograd_s2", x, w, (2, 2), (3, 3), (1, 1), 1,
                (16, 16))[0] == "im2col"
    assert plan("backward_weight", "winograd_s2", x, w, (1, 1), (3, 3), (1, 1), 1,
                (32, 32))[0] == "im2col"
    assert plan("forward", "winograd_s2", x, w, (1, 1), (3, 3), (1, 1), 1, (32, 32))[0] == "im2col"
    assert plan("forward", "winograd_s2", x, w, (2, 1), (3, 3), (1, 1), 1, (16, 32))[0] == "im2col"
    assert plan("forward", "winograd_s2", x, w, (2, 2), (3, 3), (2, 2), 1, (13, 13))[0] == "im2col"
    assert plan("forward", "winograd_s2", x, [8, 3, 9, 9], (2, 2), (4, 4), (1, 1), 1,
                (16, 16))[0] == "im2col"
    assert plan("forward", "winograd_s2", [1, 4, 32, 32], [8, 2, 7, 7], (2, 2), (3, 3), (1, 1),
                2, (16, 16))[0] == "im2col"
    with pytest.raises(ValueError, match="cannot pack"):
        _C.conv2d_pack_weight(np.ones((8, 3, 7, 7), np.float32), for_backward_data=True,
                              algorithm="winograd_s2")
    with pytest.raises(ValueError, match="cannot pack"):
        _C.conv2d_pack_weight(np.ones((8, 3, 9, 9), np.float32), algorithm="winograd_s2")


def test_packed_weights_of_another_shape_are_refused():
    x, w, b, geo = _geo_case(np.random.default_rng(1), 1, 3, 40, 45, 64, (7, 7), (3, 3))
    wrong = _C.conv2d_pack_weight(np.ones((16, 3, 7, 7), np.float32), algorithm="winograd_s2")
    with pytest.raises(ValueError, match="packed weight has"):
        _s2(x, w, b, geo, packed=wrong)


def test_rule_picks_winograd_s2(isa):
    want = rgb_stem_family(isa)
    rgb = ((1, 3, 224, 224), (64, 3, 7, 7))
    assert F.conv2d_algorithm(*rgb, stride=2, padding=3) == want
    assert F.conv2d_algorithm(*rgb, stride=2, padding=3, weights_packed=True) == want
    assert F.conv2d_algorithm((8, 4, 160, 160), (32, 4, 8, 8), stride=2, padding=3) == want
    assert F.conv2d_algorithm(*rgb, stride=2, padding=3, pass_="backward_data") != "winograd_s2"
    bwd_weight = F.conv2d_algorithm(*rgb, stride=2, padding=3, pass_="backward_weight")
    assert (bwd_weight == "winograd_s2") == (isa in conv_backend.WINOGRAD_S2_ISAS)
    # stride 1, smaller kernels (MobileNet's 3x3 stem) and wider inputs keep their families
    assert F.conv2d_algorithm(*rgb, stride=1, padding=3) != "winograd_s2"
    assert F.conv2d_algorithm((1, 3, 224, 224), (32, 3, 3, 3), stride=2, padding=1) != \
        "winograd_s2"
    assert F.conv2d_algorithm((1, 3, 224, 224), (24, 3, 5, 5), stride=2, padding=2) != \
        "winograd_s2"
    assert F.conv2d_algorithm((1, 8, 64, 64), (64, 8, 7, 7), stride=2, padding=3) != \
        "winograd_s2"


def test_resnet_stem_eval_path_packs_winograd_s2(isa):
    conv = check_folded_stem(np.random.default_rng(3), stride=2)
    if isa in conv_backend.WINOGRAD_S2_ISAS:
        assert conv._pack is not None and conv._pack[0][1] == "winograd_s2"
