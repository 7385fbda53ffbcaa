"""Winograd's staged schedule (every layer that the tile-lane schedule does not
take: more than 32 channels, or output planes narrower than 16) against the
float64 reference, at every ISA level with the algorithm forced.

The schedule transforms a chunk of tiles per (image, channel block) through a
channel-blocked window of the input rows, runs the 36 GEMMs with each thread
streaming its own contiguous range of the panels of the transformed weights U
(packed weights, or unpacked ones packed into the workspace when U takes at
most 1 MiB) or transforming the weights per output-channel block (unpacked,
bigger U), and writes the outputs back per (image, channel block) through the
same kind of window. The shapes cover what that has to get right: both sizes
of U, batch 1 with 4 and 16 tiles (the micro-kernel's rows split into balanced
tiles), partial tiles at the right and bottom, channel counts that are not
multiples of the vector width or of the micro-kernel's output channels,
padding 0-3 (backward-data runs as a forward with padding 2 - p, which crops
the input for p = 3), several images in one chunk, and several chunks whose
boundary falls inside an image and inside a tile row; packed and unpacked
weights, bias and the fused ReLU6, and 1 and 2 threads (the panels of U split
between them).
"""

from __future__ import annotations

import numpy as np
import pytest

from pyvision_engine import _C
from reference.conv_reference import conv2d_backward, conv2d_forward

from conv.conv_cases import assert_close, num_threads, random_3x3_case

pytestmark = pytest.mark.kernels

SHAPES = [
    # n, c, k, h, w, padding
    (1, 100, 90, 14, 14, 1),   # batch 1, 16 tiles; 100 / 90 channels: partial blocks
    (1, 96, 96, 7, 7, 1),      # batch 1, 4 tiles
    (2, 128, 80, 17, 19, 0),   # no padding, odd sizes: partial tiles; 2 images per chunk
    (1, 90, 100, 9, 13, 2),    # padding 2 (backward-data: padding 0)
    (1, 100, 96, 10, 11, 3),   # padding 3 (backward-data: padding -1)
    (3, 1000, 16, 20, 20, 1),  # 75 tiles in chunks of 30 (AVX2) or 28 (scalar): a boundary
                               # inside a tile row at scalar
    (3, 1000, 16, 22, 26, 1),  # 7 x 6 tiles per image, 30 per chunk (AVX2): chunk boundaries
                               # inside tile rows of all three images
    (2, 8, 12, 9, 9, 1),       # few channels on a narrow plane; U of a few KiB from here on
    (3, 40, 24, 6, 7, 1),      # partial channel blocks, 2 x 2 tiles per image
    (1, 64, 64, 7, 7, 1),      # batch 1, 4 tiles, 64 channels
    (2, 64, 48, 12, 30, 1),    # 48 channels: one full and one half output-channel block
]

_references = {}


def _case(shape):
    """Inputs and float64 references (computed once per shape)."""
    if shape not in _references:
        x, wt, b, pads, rng = random_3x3_case(shape)
        y_ref = conv2d_forward(x, wt, b, (1, 1), pads, (1, 1), 1)
        gy = rng.standard_normal(y_ref.shape).astype(np.float32)
        gx_ref, _, _ = conv2d_backward(x, wt, gy, (1, 1), pads, (1, 1), 1)
        _references[shape] = (x, wt, b, gy, y_ref, gx_ref)
    return _references[shape]


def _tile_lanes(c, k, out_w):
    # the tile-lane schedule's rule (conv2d_winograd_f4x3.cpp: use_tile_lanes)
    return max(c, k) <= 32 and out_w >= 16


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES)
def test_staged_forward_and_backward_data(isa, shape, threads):
    n, c, k, h, w, pad = shape
    x, wt, b, gy, y_ref, gx_ref = _case(shape)
    out = y_ref.shape[2:]
    assert not _tile_lanes(c, k, out[1]) and not _tile_lanes(k, c, w)
    packed = _C.conv2d_pack_weight(wt)
    with num_threads(threads):
        y = _C.conv2d_forward(x, wt, b, (1, 1), (pad, pad), (1, 1), 1, out, "winograd")
        y_packed = _C.conv2d_forward(x, wt, b, (1, 1), (pad, pad), (1, 1), 1, out, "winograd",
                                     False, packed)
        y_relu = _C.conv2d_forward(x, wt, b, (1, 1), (pad, pad), (1, 1), 1, out, "winograd",
                                   True, packed, 6.0)
        gx = _C.conv2d_backward_data(gy, wt, list(x.shape), (1, 1), (pad, pad), (1, 1), 1,
                                     "winograd")
    assert_close(y, y_ref, "forward")
    assert_close(y_packed, y_ref, "forward, packed weights")
    assert_close(y_relu, np.clip(y_ref, 0.0, 6.0), "forward + ReLU6, packed weights")
    assert_close(gx, gx_ref, "grad_input")
