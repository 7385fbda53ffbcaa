"""Every convolution kernel family, at every ISA level, against the float64 reference.

Hypothesis draws configurations (kernel 1-7, stride 1-3, padding 0-3/'same'/'valid',
dilation 1-3, groups incl. depthwise and channel multipliers, batch 1-4, odd sizes);
each is run with the rule's choice and with every algorithm forced (a forced family
that cannot take the shape falls back to im2col, which the test also covers).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyvision_engine as pve
from pyvision_engine import _C
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import functional as F

from conv.conv_cases import (check_against_reference, num_threads, random_pointwise_case,
                              rgb_stem_family)

pytestmark = pytest.mark.kernels

FORCED = (None,) + conv_backend.ALGORITHMS


@st.composite
def conv_configs(draw):
    groups_kind = draw(st.sampled_from(["one", "grouped", "depthwise"]))
    if groups_kind == "one":
        groups = 1
        c = draw(st.integers(1, 6))
        k = draw(st.integers(1, 6))
    elif groups_kind == "grouped":
        groups = draw(st.integers(2, 3))
        c = groups * draw(st.integers(1, 2))
        k = groups * draw(st.integers(1, 2))
    else:
        c = draw(st.integers(1, 5))
        groups = c
        k = c * draw(st.integers(1, 2))  # channel multiplier 1 or 2
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = draw(st.one_of(st.just("same"), st.just("valid"),
                             st.tuples(st.integers(0, 3), st.integers(0, 3))))
    stride = (1, 1) if padding == "same" else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = (0, 0) if isinstance(padding, str) else padding
    # the padded input must hold the dilated kernel
    min_h = max(1, dh * (kh - 1) + 1 - 2 * pads[0])
    min_w = max(1, dw * (kw - 1) + 1 - 2 * pads[1])
    h = draw(st.integers(min_h, min_h + 8))
    w = draw(st.integers(min_w, min_w + 8))
    n = draw(st.integers(1, 4))
    return n, c, h, w, k, kh, kw, stride, padding, (dh, dw), groups


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=conv_configs(), seed=st.integers(0, 2**31 - 1))
@pytest.mark.parametrize("forced", FORCED)
def test_random_configs_match_reference(isa, forced, config, seed):
    rng = np.random.default_rng(seed)
    with conv_backend.force_algorithm(forced):
        check_against_reference(rng, *config, with_bias=bool(seed % 2))


# Shapes chosen so each family runs (and is tested) where the rule would not pick it.
FAMILY_SHAPES = [
    # n, c, h, w, k, kh, kw, stride, padding, dilation, groups
    (2, 3, 11, 7, 5, 3, 3, (1, 1), (1, 1), (1, 1), 1),     # tiny channels: rule says im2col
    (1, 17, 9, 13, 33, 3, 3, (1, 1), (0, 2), (1, 1), 1),   # odd channels past the vector width
    (3, 20, 6, 5, 40, 3, 3, (1, 1), (3, 3), (1, 1), 1),    # padding 3 > 2: winograd bwd pads < 0
    (2, 4, 8, 10, 8, 3, 3, (1, 1), "same", (1, 1), 4),     # depthwise x2 where winograd could go
    (2, 8, 9, 9, 8, 1, 1, (2, 2), (0, 0), (1, 1), 8),      # 1x1 depthwise
    (1, 16, 12, 12, 24, 1, 1, (2, 2), (0, 0), (1, 1), 1),  # 1x1 stride 2
    (2, 12, 7, 9, 6, 1, 1, (1, 3), (0, 0), (1, 1), 2),     # grouped 1x1 stride (1, 3)
    (1, 6, 10, 10, 6, 5, 5, (2, 2), (2, 2), (1, 1), 6),    # depthwise 5x5 stride 2
    (2, 6, 15, 15, 6, 3, 3, (2, 2), (1, 1), (2, 2), 6),    # depthwise dilated, strided
    (2, 3, 23, 23, 8, 7, 7, (2, 2), (3, 3), (1, 1), 1),    # stem-like 7x7 s2
    # the stem's rows path at stride_w 2 (rows split into even | odd columns):
    # no padding, odd widths, padding wider than half the kernel, stride_h 3
    # with dilation_h 2, even kernel widths, rows longer than one vector
    (1, 3, 30, 37, 20, 5, 5, (2, 2), (0, 0), (1, 1), 1),
    (2, 4, 16, 33, 9, 7, 7, (3, 2), (2, 3), (2, 1), 1),
    (1, 2, 9, 40, 17, 5, 6, (1, 2), (1, 5), (1, 1), 1),
    (1, 3, 5, 6, 2, 4, 2, (1, 1), "same", (2, 3), 1),      # even kernel 'same': asymmetric pads
    # im2col backward-weight of large kernels (>= 25 taps, dilation_w 1) fills
    # GEMM panels with runs of kernel_w pixels: runs straddling panels, padding
    # wider than the kernel, dilated rows, odd strides, many panels
    (2, 5, 13, 12, 9, 5, 6, (1, 3), (2, 4), (2, 1), 1),
    (1, 40, 9, 9, 20, 5, 5, (1, 1), (2, 2), (1, 1), 1),
    (3, 2, 17, 19, 3, 7, 7, (2, 2), (3, 3), (1, 1), 1),
    # 1x1 backward-weight through the same panels: channels past a panel and
    # the vector width, pixel counts that end mid-vector, strided gathers
    (3, 37, 11, 13, 5, 1, 1, (1, 1), (0, 0), (1, 1), 1),
    (2, 50, 9, 14, 70, 1, 1, (2, 3), (0, 0), (1, 1), 1),
]


@pytest.mark.parametrize("forced", FORCED)
@pytest.mark.parametrize("shape", FAMILY_SHAPES)
def test_every_family_on_unusual_shapes(isa, forced, shape):
    rng = np.random.default_rng(abs(hash(shape)) % 2**32)
    with conv_backend.force_algorithm(forced):
        check_against_reference(rng, *shape)


def test_forced_family_is_the_one_that_runs():
    # backward passes the rule gives phase with the AVX2 / AVX-512 kernels
    phase = "phase" if _C.active_isa() in conv_backend.PHASE_ISAS else None
    x, w = (1, 16, 9, 9), (16, 16, 3, 3)
    assert F.conv2d_algorithm(x, w, padding=1) == "winograd"
    assert F.conv2d_algorithm(pve.zeros(x), np.zeros(w, np.float32), padding=1) == "winograd"
    with conv_backend.force_algorithm("im2col"):
        assert F.conv2d_algorithm(x, w, padding=1) == "im2col"
    with conv_backend.force_algorithm("depthwise"):  # refused: falls back to im2col
        assert F.conv2d_algorithm(x, w, padding=1) == "im2col"
    assert F.conv2d_algorithm(x, w, padding=1, pass_="backward_weight") == "winograd"
    assert F.conv2d_algorithm((1, 16, 4, 4), w, padding=1,
                              pass_="backward_weight") == (phase or "im2col")  # 1 tile
    assert F.conv2d_algorithm((2, 16, 32, 32), (16, 16, 5, 5), padding=2,
                              pass_="backward_weight") == (phase or "direct")
    assert F.conv2d_algorithm((2, 16, 32, 32), (16, 16, 3, 3), padding=2, dilation=2,
                              pass_="backward_weight") == "direct"
    assert F.conv2d_algorithm((2, 4, 32, 32), (4, 4, 3, 3), padding=1,
                              pass_="backward_weight") == "direct"  # too few channels for winograd
    assert F.conv2d_algorithm(x, w, padding=1, stride=2,
                              pass_="backward_weight") == (phase or "im2col")
    with conv_backend.force_algorithm("direct"):  # backward-weight only
        assert F.conv2d_algorithm(x, w, padding=1) == "im2col"
    with conv_backend.force_algorithm("winograd"):  # 3x3 stride 1 only
        assert F.conv2d_algorithm(x, w, padding=1, pass_="backward_weight") == "winograd"
        assert F.conv2d_algorithm(x, w, padding=1, stride=2, pass_="backward_weight") == "im2col"
    # stride-1 forward Winograd does not take: phase on planes of >= 96 pixels
    assert F.conv2d_algorithm((64, 6, 14, 14), (16, 6, 5, 5)) == (phase or "im2col")  # 10x10
    assert F.conv2d_algorithm((1, 128, 17, 17), (128, 128, 1, 7),
                              padding=(0, 3)) == (phase or "im2col")
    assert F.conv2d_algorithm((4, 384, 8, 8), (384, 384, 1, 3), padding=(0, 1)) == "im2col"
    assert F.conv2d_algorithm((1, 3, 32, 32), (16, 3, 3, 3), padding=1) == "im2col"  # < 4 channels
    assert F.conv2d_algorithm((1, 16, 32, 32), (16, 16, 3, 3), padding=2, dilation=2) == "im2col"
    assert F.conv2d_algorithm((1, 32, 9, 9), (32, 1, 3, 3), padding=1, groups=32) == "depthwise"
    assert F.conv2d_algorithm((1, 64, 9, 9), (128, 64, 1, 1), stride=2) == "pointwise"
    stem = rgb_stem_family(_C.active_isa())
    assert F.conv2d_algorithm((1, 3, 32, 32), (8, 3, 7, 7), stride=2, padding=3) == stem
    assert F.conv2d_algorithm((1, 3, 32, 32), (8, 3, 7, 7), stride=2, padding=3,
                              pass_="backward_data") == "im2col"


def test_env_override(monkeypatch):
    monkeypatch.setenv("PVE_CONV_ALGORITHM", "im2col")
    assert F.conv2d_algorithm((1, 16, 9, 9), (16, 16, 3, 3), padding=1) == "im2col"
    monkeypatch.setenv("PVE_CONV_ALGORITHM", "fft")
    with pytest.raises(ValueError, match="unknown convolution algorithm"):
        F.conv2d_algorithm((1, 16, 9, 9), (16, 16, 3, 3), padding=1)


def test_fused_relu_epilogue(isa):
    rng = np.random.default_rng(3)
    for shape in [((2, 16, 10, 10), (16, 16, 3, 3), 1, 1), ((2, 8, 10, 10), (8, 1, 3, 3), 1, 8),
                  ((2, 8, 10, 10), (12, 8, 1, 1), 0, 1), ((2, 3, 10, 10), (5, 3, 5, 5), 2, 1)]:
        xs, ws, pad, groups = shape
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        b = rng.standard_normal(ws[0]).astype(np.float32)
        plain = F.conv2d(x, w, b, padding=pad, groups=groups).numpy()
        with pve.no_grad():
            fused = F._conv2d(x, w, b, 1, pad, 1, groups, relu=True).numpy()
        np.testing.assert_allclose(fused, np.maximum(plain, 0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("forced", FORCED)
def test_thread_counts_give_the_same_answers(forced, threads):
    # 1 thread: every serial path; 3 threads: item-parallel paths with uneven splits.
    with num_threads(threads):
        rng = np.random.default_rng(threads)
        with conv_backend.force_algorithm(forced):
            for shape in FAMILY_SHAPES[:6]:
                check_against_reference(rng, *shape)


# Shapes that take the threading and batching paths of a family: label ->
# (forced algorithm, seed, cases); each case is check_against_reference's
# arguments after rng.
THREADED_PATHS = {
    # several pixel chunks of one image: forward, backward-data and
    # backward-weight split one image's chunks over the threads
    "batch1_spatial_chunks": ("im2col", 7, [
        (1, 16, 70, 70, 8, 5, 5, (1, 1), (2, 2), (1, 1), 1),
        (1, 3, 96, 96, 64, 7, 7, (2, 2), (3, 3), (1, 1), 1)]),
    # > 64 output channels and few pixels: several whole images per GEMM
    # (an uneven last group, grouped weights too)
    "small_images_one_gemm": ("im2col", 7, [
        (5, 8, 9, 9, 80, 3, 3, (2, 2), (1, 1), (1, 1), 1),
        (7, 8, 7, 6, 160, 3, 3, (1, 1), (1, 1), (1, 1), 2)]),
    # <= 64 output channels: images' columns side by side through the tiled kernel
    "small_images_tiled": ("im2col", 7, [
        (6, 6, 14, 14, 16, 5, 5, (1, 1), (0, 0), (1, 1), 1),
        (5, 4, 9, 7, 6, 3, 3, (2, 1), (1, 1), (1, 1), 2)]),
    # batch 1, few pixel tiles (7x7): the tiled kernel splits output channels
    # over the threads too (row parts), including a short last part
    "small_image_row_parts": ("im2col", 7, [
        (1, 16, 9, 9, 80, 3, 3, (2, 2), (1, 1), (1, 1), 1),
        (1, 24, 7, 7, 61, 3, 3, (1, 1), (1, 1), (1, 1), 1)]),
    # >= 25 taps, stride 1: backward-data as a forward correlation on the rows path
    "rows_backward_data": ("im2col", 7, [
        (3, 6, 14, 13, 16, 5, 5, (1, 1), (0, 0), (1, 1), 1),
        (2, 9, 11, 12, 5, 5, 7, (1, 1), (2, 1), (1, 1), 1)]),
    # at least two images per thread: whole images per thread, each padded into
    # the thread's own buffer (forward and backward-data, stride 1 and 2)
    "rows_images_per_thread": ("im2col", 17, [
        (7, 6, 14, 13, 16, 5, 5, (1, 1), (0, 0), (1, 1), 1),
        (6, 2, 17, 15, 5, 5, 5, (2, 2), (2, 2), (1, 1), 1)]),
    # 1-3 input channels per group (a grayscale or RGB first layer): the direct
    # family's accumulators take several taps of a kernel row instead of channels
    "direct_taps_for_few_channels": ("direct", 11, [
        (3, 1, 12, 13, 6, 5, 5, (1, 1), (2, 2), (1, 1), 1),
        (2, 3, 9, 10, 16, 3, 3, (1, 1), (1, 1), (1, 1), 1),
        (2, 2, 9, 9, 4, 3, 7, (1, 1), (1, 3), (1, 2), 2)]),
    # batch 1 at 7x7: two pixel tiles for the threads, so they also split the
    # output channels (uneven parts; strided too)
    "pointwise_row_parts": ("pointwise", 13, [
        (1, 40, 7, 7, 72, 1, 1, (1, 1), (0, 0), (1, 1), 1),
        (1, 24, 13, 13, 37, 1, 1, (2, 2), (0, 0), (1, 1), 1)]),
    # stride-1 1x1 with fewer outputs than inputs: AVX2's backward-weight as dot
    # products along the pixels (output-channel tiles of 3 and input ones of 4
    # with short last tiles; a pixel tail; two pixel chunks; batch 1 splits the
    # output channels over the threads)
    "pointwise_dot_backward_weight": ("pointwise", 19, [
        (1, 40, 7, 7, 13, 1, 1, (1, 1), (0, 0), (1, 1), 1),
        (2, 23, 37, 41, 5, 1, 1, (1, 1), (0, 0), (1, 1), 1),
        (3, 9, 4, 5, 2, 1, 1, (1, 1), (0, 0), (1, 1), 1)]),
    # depthwise 3x3, stride 1 and 2: AVX2's row-walking kernel (forward and the
    # stride-1 backward-data on flipped weights), row counts that leave 1-3
    # rows after blocks of 4, widths with partial vectors, multiplier 2
    "depthwise_3x3": ("depthwise", 23, [
        (2, 3, 13, 21, 6, 3, 3, (2, 2), (1, 1), (1, 1), 3),
        (1, 4, 9, 17, 8, 3, 3, (1, 1), (1, 1), (1, 1), 4),
        (3, 2, 6, 9, 2, 3, 3, (2, 2), (0, 0), (1, 1), 2)]),
}


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("path", list(THREADED_PATHS))
def test_threading_and_batching_paths(isa, path, threads):
    algorithm, seed, cases = THREADED_PATHS[path]
    with num_threads(threads):
        rng = np.random.default_rng(seed)
        with conv_backend.force_algorithm(algorithm):
            for case in cases:
                check_against_reference(rng, *case)


# Pointwise forward with the fused epilogue, packed weights (eval mode's
# conv2d_pack_weight) and plain ones, against the float64 reference, on planes
# that exercise every pixel tiling: 2-vector tiles, an odd count ending in a
# 3-vector tile, a partial vector, and a remainder of at most half a vector
# (7x7 = 3 vectors + 1 pixel at 16 lanes, 6 + 1 at 8; 14x14 = 12 + 4; 1x1 is
# the remainder alone; 1-8 pixels: 3x3, 5x5, 9x9, 11x11, 4x5 ...) taken as dot
# products (plain) or from a packed panel, or carried by a last 3-vector tile
# (packed: 7x7, 5x5 at 8 lanes, 3 vectors + 2, 3 or 4 pixels at 16, and 55 =
# 3 + 7 past what one carries); output channels that leave a short
# last row panel of every height class (not a multiple of 14 / 6 / 4; 64 =
# 4 * 14 + 8; a single row); input channels that are not whole vectors;
# strided layers (gathered columns, or with packed weights each image's pixels
# gathered; 3 images > 2 threads run whole images per thread); weights over
# one slab (2 slabs, with the remainder pixel; 2 slabs x 2 pixel blocks;
# strided); thread counts that split slabs or pixel blocks; bias with ReLU /
# ReLU6; non-temporal output stores forced on (taken where the planes are
# whole aligned vectors: 16x16, the 8x8 strided output, 4x4); and slabs of at
# least 6 row panels, whose tiles first copy their B strip (kStripMinPanels:
# 90 or 100 channels at 14 rows a panel, with a partial last vector at 11x11
# (16 lanes) or 9x15 (8 lanes); 512 x 130 and 520 x 150 have slabs on both
# sides of the limit).
# (n, c, k, h, w, stride)
POINTWISE_FORWARD_CASES = [
    (1, 37, 61, 7, 7, 1), (3, 19, 30, 7, 7, 1), (1, 40, 72, 14, 14, 1), (2, 33, 17, 1, 1, 1),
    (1, 21, 29, 3, 3, 1), (1, 16, 45, 5, 5, 1), (2, 24, 20, 6, 6, 1), (1, 18, 50, 9, 9, 1),
    (1, 12, 15, 11, 11, 1), (2, 9, 33, 4, 5, 1), (1, 12, 64, 16, 16, 1), (1, 13, 5, 10, 10, 1),
    (2, 8, 1, 6, 6, 1), (3, 24, 20, 4, 4, 1), (1, 20, 33, 5, 10, 1), (1, 9, 15, 3, 17, 1),
    (2, 17, 30, 4, 13, 1), (1, 11, 19, 5, 11, 1),
    (1, 35, 66, 14, 14, 2), (3, 20, 23, 13, 13, 2), (1, 24, 40, 27, 27, 2), (1, 24, 40, 27, 27, 3),
    (1, 520, 150, 7, 7, 1), (2, 512, 130, 16, 16, 1), (1, 300, 230, 15, 15, 2),
    (1, 20, 90, 11, 11, 1), (2, 30, 100, 9, 15, 1),
]


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("relu_max", [None, np.inf, 6.0])
def test_pointwise_forward_tilings_with_epilogue(isa, relu_max, threads):
    from reference.conv_reference import conv2d_forward
    from conv.conv_cases import assert_close

    rng = np.random.default_rng(29)
    with num_threads(threads):
        for n, c, k, h, w_, s in POINTWISE_FORWARD_CASES:
            x, w, b, out = random_pointwise_case(rng, n, c, k, h, w_, s)
            relu = relu_max is not None
            ref = conv2d_forward(x, w, b, (s, s), (0, 0, 0, 0), (1, 1), 1)
            if relu:
                ref = np.clip(ref, 0.0, relu_max)
            packed = _C.conv2d_pack_weight(w, algorithm="pointwise")
            for weights, stream in ((packed, None), (packed, True), (None, None), (None, True)):
                y = _C.conv2d_forward(x, w, b, (s, s), (0, 0), (1, 1), 1, out, "pointwise", relu,
                                      weights, np.inf if relu_max is None else relu_max, stream)
                name = (f"{(n, c, k, h, w_, s)} relu_max={relu_max} "
                        f"packed={weights is not None} stream={stream}")
                assert_close(y, ref, name)


def test_pointwise_pack_rejects_what_it_cannot_pack():
    from pyvision_engine import _C

    w = np.ones((8, 4, 1, 1), np.float32)
    assert _C.conv2d_pack_weight(w, algorithm="pointwise").ndim == 1
    with pytest.raises(ValueError, match="cannot pack"):
        _C.conv2d_pack_weight(np.ones((8, 4, 3, 3), np.float32), algorithm="pointwise")
    with pytest.raises(ValueError, match="cannot pack"):
        _C.conv2d_pack_weight(w, for_backward_data=True, algorithm="pointwise")
    x = np.ones((1, 8, 5, 5), np.float32)  # groups 2: the pack is for groups 1 only
    packed = _C.conv2d_pack_weight(w, algorithm="pointwise")
    with pytest.raises(ValueError, match="takes no packed weights for input"):
        _C.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 2, (5, 5), "pointwise", False,
                          packed)


# Depthwise backward-weight, 3x3 and 5x5 stride 1 without dilation: read
# straight from the input in blocks of gradient rows (4/2/1 at once) with
# masked column blocks at the padding and the row tail. Heights that leave
# 1-3 rows after the blocks, widths below, at and past the vector widths
# (8, 16) with odd tails, padding 0-2 (so tap columns reach past both edges),
# multiplier 2, batch 1 and 3; the strided, dilated and 1x7 cases take the
# phase-plane path and stay covered beside them.
DEPTHWISE_BWD_WEIGHT_CASES = [
    # n, c, h, w, k, kh, kw, stride, padding, dilation, groups
    (1, 3, 11, 37, 3, 3, 3, (1, 1), (1, 1), (1, 1), 3),
    (3, 2, 9, 16, 4, 3, 3, (1, 1), (0, 0), (1, 1), 2),
    (1, 4, 10, 19, 8, 3, 3, (1, 1), (2, 2), (1, 1), 4),
    (3, 3, 7, 5, 3, 3, 3, (1, 1), (1, 2), (1, 1), 3),
    (1, 2, 13, 33, 4, 5, 5, (1, 1), (2, 2), (1, 1), 2),
    (3, 3, 6, 17, 3, 5, 5, (1, 1), (0, 1), (1, 1), 3),
    (1, 2, 9, 8, 2, 5, 5, (1, 1), (2, 0), (1, 1), 2),
    (1, 3, 12, 21, 6, 3, 3, (2, 2), (1, 1), (1, 1), 3),
    (3, 2, 11, 15, 2, 3, 3, (1, 1), (2, 2), (2, 2), 2),
    (1, 2, 9, 23, 4, 1, 7, (1, 1), (0, 3), (1, 1), 2),
]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", DEPTHWISE_BWD_WEIGHT_CASES)
def test_depthwise_backward_weight_paths(isa, case, threads):
    rng = np.random.default_rng(sum(case[:7]))
    with num_threads(threads), conv_backend.force_algorithm("depthwise"):
        check_against_reference(rng, *case, with_bias=False)
        check_against_reference(rng, *case, with_bias=True)
