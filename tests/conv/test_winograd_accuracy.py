"""Winograd F(4x4, 3x3) stays within 1e-4 relative of direct convolution on realistic data."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from pyvision_engine import _C
from conv.conv_cases import num_threads
from reference.conv_reference import conv2d_forward, conv2d_backward

pytestmark = pytest.mark.kernels


@pytest.mark.parametrize("channels, size", [(64, 28), (256, 14), (512, 7)])
def test_winograd_relative_error_on_realistic_layers(isa, channels, size):
    rng = np.random.default_rng(channels)
    # post-ReLU activations and kaiming-scaled weights, as inside a ResNet
    x = np.maximum(rng.standard_normal((1, channels, size, size)), 0).astype(np.float32)
    w = (rng.standard_normal((channels, channels, 3, 3)) * math.sqrt(2 / (9 * channels))).astype(np.float32)
    pads = (1, 1, 1, 1)
    want = conv2d_forward(x, w, None, (1, 1), pads, (1, 1), 1)
    got = _C.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1, (size, size), "winograd")
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert rel < 1e-4, rel
    gy = rng.standard_normal(want.shape).astype(np.float32)
    gx_want, _, _ = conv2d_backward(x, w, gy, (1, 1), pads, (1, 1), 1)
    gx = _C.conv2d_backward_data(gy, w, list(x.shape), (1, 1), (1, 1), (1, 1), 1, "winograd")
    rel = np.abs(gx - gx_want).max() / np.abs(gx_want).max()
    assert rel < 1e-4, rel


@functools.lru_cache(maxsize=None)
def _backward_weight_case(batch: int, channels: int, size: int):
    """(x, gy, the float64 reference's gw and gb), computed once per shape for all ISAs."""
    rng = np.random.default_rng(channels + batch)
    x = np.maximum(rng.standard_normal((batch, channels, size, size)), 0).astype(np.float32)
    w = np.zeros((channels, channels, 3, 3), np.float32)
    gy = (rng.standard_normal((batch, channels, size, size)) * 0.1).astype(np.float32)
    _, gw_want, gb_want = conv2d_backward(x, w, gy, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    return x, gy, gw_want, gb_want


@pytest.mark.parametrize("batch, channels, size", [(1, 64, 28), (1, 256, 14), (1, 512, 7),
                                                   (4, 128, 14), (4, 128, 28), (32, 16, 32),
                                                   (8, 32, 16), (4, 64, 64), (1, 256, 64)])
@pytest.mark.parametrize("threads", [1, 2])
def test_winograd_backward_weight_relative_error(isa, threads, batch, channels, size):
    # Every schedule of make_bw_plan: thread-private accumulators M (16 @ 32,
    # 64 @ 64, 4 x 128 @ 28; on 1 thread also 32 @ 16 and 64 @ 28) and shared
    # transformed tiles: the single pass without M (at most 48 tiles: 256 @ 14
    # and 512 @ 7, batch 1), the GEMMs over a shared M in one chunk (4 x 128 @
    # 14; on 2 threads also 64 @ 28 and 32 @ 16) or in several (256 @ 64).
    x, gy, gw_want, gb_want = _backward_weight_case(batch, channels, size)
    w = np.zeros((channels, channels, 3, 3), np.float32)
    with num_threads(threads):
        gw, gb = _C.conv2d_backward_weight(x, gy, list(w.shape), (1, 1), (1, 1), (1, 1), 1,
                                           "winograd", True)
    rel = np.abs(gw - gw_want).max() / np.abs(gw_want).max()
    assert rel < 1e-4, rel
    np.testing.assert_allclose(gb, gb_want, rtol=1e-4, atol=1e-4 * np.abs(gb_want).max())


def _same_non_finite(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algorithm", ["winograd", "winograd_f2"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_values_stay_in_their_receptive_field(isa, algorithm, bad):
    # A transform mixes a whole tile, so one inf would make the tile NaN; the
    # binding recomputes such results directly: NaN and inf land where the
    # direct sum puts them (torch's placement), forward and backward-data.
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    x[0, 2, 5, 6] = bad
    pads = (1, 1, 1, 1)
    got = _C.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1, (12, 12), algorithm)
    _same_non_finite(got, conv2d_forward(x, w, None, (1, 1), pads, (1, 1), 1))
    if algorithm == "winograd":  # (winograd_f2 runs forward only)
        gy = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
        gy[0, 7, 0, 11] = bad
        gx = _C.conv2d_backward_data(gy, w, list(x.shape), (1, 1), (1, 1), (1, 1), 1, algorithm)
        _same_non_finite(gx, conv2d_backward(x, w, gy, (1, 1), pads, (1, 1), 1)[0])
