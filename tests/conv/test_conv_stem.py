"""The ``stem`` family (dense convolution through the blocked direct tile, written as
NCHW: csrc/kernels/conv/conv2d_blocked.cpp) at every ISA level against the float64
reference: packed and unpacked weights, fused bias and ReLU(6), output channels past
whole 16-channel blocks and rows past whole vectors, streamed stores, threads, the eval
fast path of a ResNet stem, and where the rule picks it (and where not)."""

from __future__ import annotations

import numpy as np
import pytest

from pyvision_engine import _C
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import functional as F

from conv.conv_cases import (assert_close, check_folded_stem, dense_case, forward_with, num_threads,
                              rgb_stem_family)
from reference.conv_reference import conv2d_forward

pytestmark = pytest.mark.kernels

# n, c, h, w, k, (kh, kw), stride, padding, dilation
SHAPES = [
    (1, 3, 40, 45, 64, (7, 7), (2, 2), (3, 3), (1, 1)),    # ResNet's stem, small image
    (2, 3, 23, 31, 37, (7, 7), (2, 2), (3, 3), (1, 1)),    # 37: two blocks and 5 channels
    (1, 4, 19, 26, 70, (7, 7), (1, 2), (2, 3), (1, 1)),    # 4 blocks + 6: groups of 4 and 1
    (1, 1, 25, 25, 20, (7, 7), (1, 1), (0, 0), (2, 1)),    # dilated, no padding
    (3, 2, 9, 13, 5, (3, 5), (3, 1), (1, 2), (1, 2)),      # one partial block, odd kernel
    (1, 3, 12, 200, 48, (7, 7), (2, 2), (3, 3), (1, 1)),   # rows of many 6-pixel tiles
    (1, 8, 10, 10, 16, (1, 1), (1, 1), (0, 0), (1, 1)),    # 1x1 (pointwise's shape)
    (2, 6, 5, 6, 9, (5, 6), (1, 1), (2, 3), (1, 1)),       # kernel as wide as the input
]


_case = dense_case


def _stem(*args, **kwargs):
    return forward_with("stem", *args, **kwargs)


def _reference(x, w, b, shape, relu_max=None):
    n, c, h, wd, k, kernel, stride, (ph, pw), dilation = shape
    y = conv2d_forward(x.astype(np.float64), w.astype(np.float64),
                       None if b is None else b.astype(np.float64), stride, (ph, ph, pw, pw),
                       dilation, 1)
    return y if relu_max is None else np.clip(y, 0.0, relu_max)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])))
def test_matches_reference(isa, shape):
    rng = np.random.default_rng(abs(hash(shape)) % 2**32)
    x, w, b, geo = _case(rng, *shape)
    packed = _C.conv2d_pack_weight(w, algorithm="stem")
    for bias in (b, None):
        want = _reference(x, w, bias, shape)
        assert_close(_stem(x, w, bias, geo), want, "stem forward")
        assert_close(_stem(x, w, bias, geo, packed=packed), want, "stem forward, packed")
    assert_close(_stem(x, w, b, geo, relu=True), _reference(x, w, b, shape, np.inf), "stem ReLU")
    assert_close(_stem(x, w, b, geo, relu=True, relu_max=6.0, packed=packed),
                 _reference(x, w, b, shape, 6.0), "stem ReLU6")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_agree(isa, threads):
    shape = (2, 3, 30, 29, 40, (7, 7), (2, 2), (3, 3), (1, 1))
    x, w, b, geo = _case(np.random.default_rng(threads), *shape)
    with num_threads(threads):
        assert_close(_stem(x, w, b, geo, relu=True), _reference(x, w, b, shape, np.inf),
                     f"stem at {threads} threads")


@pytest.mark.parametrize("threads", [1, 2])
def test_streamed_outputs_match(isa, threads):
    """Non-temporal output stores (the kernel's choice for outputs over 16 MiB, forced
    here on a small one): rows of whole vectors (32 and 48 pixels) and a partial row
    (36), 64 + 16 + 3 output channels."""
    for w_in in (64, 96, 71):
        shape = (2, 3, 21, w_in, 83, (7, 7), (2, 2), (3, 3), (1, 1))
        x, w, b, geo = _case(np.random.default_rng(w_in), *shape)
        want = _reference(x, w, b, shape, np.inf)
        with num_threads(threads):
            for stream in (True, False):
                assert_close(_stem(x, w, b, geo, relu=True, stream=stream), want,
                             f"stem, width {w_in}, stream={stream}")


def test_non_finite_inputs_stay_where_torch_puts_them(isa):
    shape = (1, 3, 20, 20, 17, (7, 7), (2, 2), (3, 3), (1, 1))
    x, w, b, geo = _case(np.random.default_rng(5), *shape)
    x[0, 1, 9, 9] = np.nan
    x[0, 2, 0, 0] = np.inf
    want = _reference(x, w, b, shape)
    got = _stem(x, w, b, geo)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=2e-5, atol=1e-4)


def test_only_forward_and_groups_one():
    x, w = [1, 4, 16, 16], [8, 2, 7, 7]
    for pass_ in ("backward_data", "backward_weight"):
        assert _C.conv2d_plan(pass_, "stem", x, [8, 4, 7, 7], (2, 2), (3, 3), (1, 1), 1,
                              (8, 8))[0] == "im2col"
    assert _C.conv2d_plan("forward", "stem", x, w, (2, 2), (3, 3), (1, 1), 2,
                          (8, 8))[0] == "im2col"
    with pytest.raises(ValueError, match="cannot pack"):
        _C.conv2d_pack_weight(np.ones((8, 4, 7, 7), np.float32), for_backward_data=True,
                              algorithm="stem")


def test_packed_weights_of_another_shape_are_refused():
    x, w, b, geo = _case(np.random.default_rng(1), *SHAPES[0])
    wrong = _C.conv2d_pack_weight(np.ones((16, 3, 7, 7), np.float32), algorithm="stem")
    with pytest.raises(ValueError, match="packed weight has"):
        _stem(x, w, b, geo, packed=wrong)


def test_rule_picks_stem(isa):
    stem = "stem" if isa in conv_backend.STEM_ISAS else "im2col"
    # (7x7 and 8x8 stride 2: winograd_s2 where measured, test_conv_winograd_s2.py)
    s2 = rgb_stem_family(isa)
    rgb = ((1, 3, 224, 224), (64, 3, 7, 7))
    assert F.conv2d_algorithm(*rgb, stride=2, padding=3) == s2
    assert F.conv2d_algorithm(*rgb, stride=2, padding=3, weights_packed=True) == s2
    assert F.conv2d_algorithm((8, 4, 224, 224), (64, 4, 7, 7), stride=2, padding=3) == s2
    assert F.conv2d_algorithm((8, 4, 224, 224), (64, 4, 7, 7), stride=1, padding=3) == stem
    assert F.conv2d_algorithm((1, 3, 224, 224), (64, 3, 9, 9), stride=2, padding=4) == stem
    # forward only; wider inputs, smaller kernels and groups keep their families
    for pass_ in ("backward_data", "backward_weight"):
        assert F.conv2d_algorithm(*rgb, stride=2, padding=3, pass_=pass_) != "stem"
    assert F.conv2d_algorithm((1, 8, 64, 64), (64, 8, 7, 7), stride=2, padding=3) != "stem"
    assert F.conv2d_algorithm((1, 3, 224, 224), (32, 3, 3, 3), stride=2, padding=1) != "stem"
    assert F.conv2d_algorithm((1, 3, 224, 224), (24, 3, 5, 5), stride=2, padding=2) != "stem"
    assert F.conv2d_algorithm((128, 3, 32, 32), (16, 3, 3, 3), padding=1) != "stem"
    assert F.conv2d_algorithm((1, 4, 64, 64), (8, 2, 7, 7), padding=3, groups=2) != "stem"


def test_resnet_stem_eval_path_folds_into_stem(isa):
    # (a stride-1 stem: stride 2 takes winograd_s2 where measured, test_conv_winograd_s2.py)
    conv = check_folded_stem(np.random.default_rng(3), stride=1)
    if isa in conv_backend.STEM_ISAS:
        assert conv._pack is not None and conv._pack[0][1] == "stem"
