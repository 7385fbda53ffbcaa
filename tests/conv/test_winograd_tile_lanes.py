"""Winograd's tile-lane schedule (few channels, planes of 16+ output columns:
vectors across tiles of one channel plane) against the float64 reference, at
every ISA level with the algorithm forced.

The shapes cover what the schedule has to get right: tile rows that end
mid-vector and blocks of tiles that span tile rows and images, widths and
heights that are not multiples of 4, padding 0-3 (backward-data runs as a
forward with padding 2 - p, negative for p = 3), output channels that are not
a multiple of the micro-kernel's rows, channel counts on both sides of the
vector width, packed (eval) weights in both layouts, bias and the fused ReLU,
and 1 and 2 threads.
"""

from __future__ import annotations

import numpy as np
import pytest

from pyvision_engine import _C
from reference.conv_reference import conv2d_backward, conv2d_forward

from conv.conv_cases import assert_close, num_threads

pytestmark = pytest.mark.kernels

SHAPES = [
    # n, c, k, h, w, padding
    (2, 16, 16, 32, 32, 1),   # CIFAR ResNet's 16-channel layer
    (3, 5, 7, 17, 19, 1),     # odd sizes: partial tiles at the right and bottom
    (1, 3, 29, 18, 21, 0),    # no padding; 29 outputs: past L on AVX2, a short row block
    (2, 32, 9, 16, 16, 2),    # padding 2 (backward-data: padding 0)
    (1, 12, 20, 9, 17, 3),    # padding 3 (backward-data: padding -1)
    (5, 4, 4, 7, 16, 1),      # 2 tile rows per image: blocks span images
    (1, 1, 1, 14, 16, 1),     # one channel, 16 output columns
]


def _inputs(shape, seed):
    n, c, k, h, w, _ = shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, 3, 3)).astype(np.float32)
    b = rng.standard_normal(k).astype(np.float32)
    return rng, x, wt, b


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES)
def test_tile_lanes_forward_and_backward_data(isa, shape, threads):
    n, c, k, h, w, pad = shape
    rng, x, wt, b = _inputs(shape, sum(shape))
    pads = (pad,) * 4
    out = (h + 2 * pad - 2, w + 2 * pad - 2)
    assert out[1] >= 16 and max(c, k) <= 32  # the tile-lane schedule's shapes
    with num_threads(threads):
        y = _C.conv2d_forward(x, wt, b, (1, 1), (pad, pad), (1, 1), 1, out, "winograd")
        y_relu = _C.conv2d_forward(x, wt, b, (1, 1), (pad, pad), (1, 1), 1, out, "winograd",
                                   True, None, 6.0)
        gy = rng.standard_normal(y.shape).astype(np.float32)
        gx = _C.conv2d_backward_data(gy, wt, list(x.shape), (1, 1), (pad, pad), (1, 1), 1,
                                     "winograd")
    y_ref = conv2d_forward(x, wt, b, (1, 1), pads, (1, 1), 1)
    gx_ref, _, _ = conv2d_backward(x, wt, gy, (1, 1), pads, (1, 1), 1)
    assert_close(y, y_ref, "forward")
    assert_close(y_relu, np.clip(y_ref, 0.0, 6.0), "forward + ReLU6")
    assert_close(gx, gx_ref, "grad_input")


@pytest.mark.parametrize("k", [8, 16, 24, 32])
def test_tile_lanes_packed_weights(isa, k):
    # Packed weights are used as they are when they hold one output-channel
    # block (k <= 2 L) and transformed again otherwise (k = 24, 32 on AVX2).
    shape = (2, 16, k, 20, 20, 1)
    _, x, wt, b = _inputs(shape, k)
    packed = _C.conv2d_pack_weight(wt)
    y = _C.conv2d_forward(x, wt, b, (1, 1), (1, 1), (1, 1), 1, (20, 20), "winograd", False,
                          packed)
    assert_close(y, conv2d_forward(x, wt, b, (1, 1), (1, 1, 1, 1), (1, 1), 1), "forward")


def test_tile_lanes_stay_accurate_on_realistic_data(isa):
    # the 1e-4 relative bound of test_winograd_accuracy, on the layer this
    # schedule was written for (post-ReLU activations, kaiming-scaled weights)
    rng = np.random.default_rng(16)
    x = np.maximum(rng.standard_normal((8, 16, 32, 32)), 0).astype(np.float32)
    w = (rng.standard_normal((16, 16, 3, 3)) * np.sqrt(2 / (9 * 16))).astype(np.float32)
    want = conv2d_forward(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    got = _C.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1, (32, 32), "winograd")
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-4
    gy = rng.standard_normal(want.shape).astype(np.float32)
    gx_want, _, _ = conv2d_backward(x, w, gy, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    gx = _C.conv2d_backward_data(gy, w, list(x.shape), (1, 1), (1, 1), (1, 1), 1, "winograd")
    assert np.abs(gx - gx_want).max() / np.abs(gx_want).max() < 1e-4
