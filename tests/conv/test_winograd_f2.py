"""Winograd F(2x2, 3x3) (the ``winograd_f2`` family, forward and backward-data:
csrc/kernels/conv/conv2d_winograd_f2x3.cpp) against the float64 reference, at
every ISA level with the algorithm forced: packed and unpacked weights, bias or
none, no activation, ReLU and ReLU6, and 1 to 3 threads.

The shapes cover what the schedule has to get right: odd output sizes (partial
2x2 tiles at the right and bottom: 5x5, 7x7, 9x11), 1x1 planes, padding 0 to 3
(input rows and columns cropped or zero-filled), channel counts that are not
multiples of the vector width or of the micro-kernel's output channels, fewer
output-channel blocks than threads (each block's tiles are then split between
threads), batches of 1 to 3 (chunks spanning images), and several chunks of
tiles whose boundaries fall inside an image and inside a tile row. Then: the
same answers for every thread count, backward-data on the same shapes,
backward-weight when it is forced (it refuses it, so im2col runs it, as for
``direct`` in forward), packing errors, and where the rule picks it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import _C
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import functional as F
from reference.conv_reference import conv2d_backward, conv2d_forward

from conv.conv_cases import assert_close, check_against_reference, num_threads, random_3x3_case

pytestmark = pytest.mark.kernels

SHAPES = [
    # n, c, k, h, w, padding
    (1, 512, 512, 7, 7, 1),    # ResNet's layer: 16 tiles, 16 output-channel blocks (AVX-512)
    (1, 100, 90, 7, 7, 1),     # channels past whole vectors and blocks
    (2, 17, 33, 5, 5, 1),      # 5x5: 3 x 3 tiles, a partial last row and column
    (3, 20, 40, 9, 11, 1),     # 9x11, batch 3 in one chunk
    (1, 24, 5, 1, 1, 1),       # a 1x1 plane: one tile with one output pixel
    (2, 7, 3, 1, 1, 1),        # 1x1 planes, 3 output channels: one block, split by tiles
    (1, 30, 20, 9, 11, 0),     # no padding: 7x9 output
    (2, 12, 16, 6, 7, 2),      # padding 2: 8x9 output
    (1, 9, 18, 5, 6, 3),       # padding 3: 9x10 output, input at an odd offset
    (1, 3, 1, 4, 4, 1),        # one output channel
    (3, 600, 16, 15, 13, 1),   # ~200 tiles per chunk of 128-256: boundaries inside tile rows
]

_references = {}


def _case(shape):
    """Inputs and float64 reference outputs (with and without bias), once per shape."""
    if shape not in _references:
        x, wt, b, pads, _ = random_3x3_case(shape)
        y_ref = conv2d_forward(x, wt, None, (1, 1), pads, (1, 1), 1)
        _references[shape] = (x, wt, b, y_ref, y_ref + b.astype(np.float64)[:, None, None])
    return _references[shape]


def _f2(x, wt, b, pad, out, relu=False, relu_max=math.inf, packed=None):
    assert _C.conv2d_plan("forward", "winograd_f2", list(x.shape), list(wt.shape), (1, 1),
                          (pad, pad), (1, 1), 1, out)[0] == "winograd_f2"
    return _C.conv2d_forward(x, wt, b, (1, 1), (pad, pad), (1, 1), 1, out, "winograd_f2", relu,
                             packed, relu_max)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(isa, shape, threads):
    n, c, k, h, w, pad = shape
    x, wt, b, y_nobias, y_bias = _case(shape)
    out = y_nobias.shape[2:]
    packed = _C.conv2d_pack_weight(wt, algorithm="winograd_f2")
    with num_threads(threads):
        for bias, want in ((b, y_bias), (None, y_nobias)):
            for weights in (None, packed):
                label = f"bias={bias is not None}, packed={weights is not None}"
                assert_close(_f2(x, wt, bias, pad, out, packed=weights), want, label)
                assert_close(_f2(x, wt, bias, pad, out, relu=True, packed=weights),
                             np.maximum(want, 0.0), label + ", ReLU")
                assert_close(_f2(x, wt, bias, pad, out, relu=True, relu_max=6.0, packed=weights),
                             np.clip(want, 0.0, 6.0), label + ", ReLU6")


@pytest.mark.parametrize("shape", [(1, 100, 90, 7, 7, 1), (2, 7, 3, 1, 1, 1),
                                   (3, 600, 16, 15, 13, 1)], ids=lambda s: "x".join(map(str, s)))
def test_thread_counts_and_packing_give_the_same_answers(shape):
    # Each output is summed in the same order whichever thread computes it, and the
    # packed weights are the same transform the unpacked path applies per block.
    n, c, k, h, w, pad = shape
    x, wt, b, y_nobias, _ = _case(shape)
    out = y_nobias.shape[2:]
    with num_threads(1):
        packed = _C.conv2d_pack_weight(wt, algorithm="winograd_f2")
        one = _f2(x, wt, b, pad, out, relu=True, packed=packed)
    for threads in (2, 3, 4):
        with num_threads(threads):
            np.testing.assert_array_equal(_f2(x, wt, b, pad, out, relu=True, packed=packed), one)
            np.testing.assert_array_equal(_f2(x, wt, b, pad, out, relu=True), one)


@pytest.mark.parametrize("channels, size", [(128, 7), (256, 8), (512, 7)])
def test_relative_error_on_realistic_layers(isa, channels, size):
    # post-ReLU activations and kaiming-scaled weights, as inside a ResNet: the
    # bound the F(4x4, 3x3) family meets (test_winograd_accuracy.py)
    rng = np.random.default_rng(channels)
    x = np.maximum(rng.standard_normal((1, channels, size, size)), 0).astype(np.float32)
    w = (rng.standard_normal((channels, channels, 3, 3))
         * math.sqrt(2 / (9 * channels))).astype(np.float32)
    want = conv2d_forward(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    packed = _C.conv2d_pack_weight(w, algorithm="winograd_f2")
    got = _f2(x, w, None, 1, (size, size), packed=packed)
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-4


_grad_references = {}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_backward_data_matches_reference(isa, shape, threads):
    # the correlation of the output gradient with the transposed, flipped weights
    # (padding 2 - p: -1 for padding 3, which crops instead of padding)
    n, c, k, h, w, pad = shape
    x, wt, _, y_nobias, _ = _case(shape)
    if shape not in _grad_references:
        gy = np.random.default_rng(sum(shape) + 1).standard_normal(y_nobias.shape)
        gy = gy.astype(np.float32)
        gx = conv2d_backward(x, wt, gy, (1, 1), (pad,) * 4, (1, 1), 1)[0]
        _grad_references[shape] = (gy, gx)
    gy, want = _grad_references[shape]
    assert _C.conv2d_plan("backward_data", "winograd_f2", list(x.shape), list(wt.shape), (1, 1),
                          (pad, pad), (1, 1), 1, y_nobias.shape[2:])[0] == "winograd_f2"
    with num_threads(threads):
        got = _C.conv2d_backward_data(gy, wt, list(x.shape), (1, 1), (pad, pad), (1, 1), 1,
                                      "winograd_f2")
    assert_close(got, want, f"backward-data at {threads} threads")


def test_forced_backward_weight_falls_back_to_im2col(isa):
    x, w = (2, 16, 7, 7), (24, 16, 3, 3)
    with conv_backend.force_algorithm("winograd_f2"):
        assert F.conv2d_algorithm(x, w, padding=1) == "winograd_f2"
        assert F.conv2d_algorithm(x, w, padding=1, pass_="backward_data") == "winograd_f2"
        assert F.conv2d_algorithm(x, w, padding=1, pass_="backward_weight") == "im2col"
        # shapes it does not take (3x3 stride 1, dilation 1, groups 1 only): im2col
        assert F.conv2d_algorithm(x, w, padding=1, stride=2) == "im2col"
        assert F.conv2d_algorithm(x, w, padding=2, dilation=2) == "im2col"
        assert F.conv2d_algorithm(x, (24, 8, 3, 3), padding=1, groups=2) == "im2col"
        assert F.conv2d_algorithm(x, (24, 16, 5, 5), padding=2) == "im2col"
    # and the gradients through it match the reference
    rng = np.random.default_rng(5)
    with conv_backend.force_algorithm("winograd_f2"):
        check_against_reference(rng, 2, 16, 7, 7, 24, 3, 3, (1, 1), (1, 1), (1, 1), 1)


def test_autograd_through_a_forced_winograd_f2():
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((1, 20, 7, 7)).astype(np.float32)
    w0 = rng.standard_normal((36, 20, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((1, 36, 7, 7)).astype(np.float32)
    x = pve.tensor(x0, requires_grad=True)
    w = pve.tensor(w0, requires_grad=True)
    with conv_backend.force_algorithm("winograd_f2"):
        y = F.conv2d(x, w, padding=1)
        (y * pve.tensor(gy)).sum().backward()
    pads = (1, 1, 1, 1)
    gx_ref, gw_ref, _ = conv2d_backward(x0, w0, gy, (1, 1), pads, (1, 1), 1)
    assert_close(y.detach().numpy(), conv2d_forward(x0, w0, None, (1, 1), pads, (1, 1), 1),
                 "forward")
    assert_close(x.grad.numpy(), gx_ref, "grad_input (winograd_f2)")
    assert_close(w.grad.numpy(), gw_ref, "grad_weight (im2col)")


def test_packing_errors():
    w3 = np.ones((8, 4, 3, 3), np.float32)
    assert _C.conv2d_pack_weight(w3, algorithm="winograd_f2").ndim == 1
    with pytest.raises(ValueError, match="winograd_f2 packs 3x3 weights"):
        _C.conv2d_pack_weight(np.ones((8, 4, 5, 5), np.float32), algorithm="winograd_f2")
    with pytest.raises(ValueError, match="for backward-data"):
        _C.conv2d_pack_weight(w3, for_backward_data=True, algorithm="winograd_f2")
    # F(4x4, 3x3) weights are a different layout (and size): refused, not misread
    x = np.ones((1, 4, 7, 7), np.float32)
    f4 = _C.conv2d_pack_weight(w3, algorithm="winograd")
    with pytest.raises(ValueError, match="packed weight has"):
        _C.conv2d_forward(x, w3, None, (1, 1), (1, 1), (1, 1), 1, (7, 7), "winograd_f2", False,
                          f4)


def test_rule_picks_winograd_f2(isa):
    f2 = isa in conv_backend.WINOGRAD_F2_ISAS

    def algo(x, w, packed=True, pass_="forward"):
        return F.conv2d_algorithm(x, w, padding=1, weights_packed=packed, pass_=pass_)

    # eval mode (packed weights), batch 1, at most WINOGRAD_F2_MAX_PIXELS output
    # pixels and at least WINOGRAD_F2_MIN_WEIGHTS channel pairs
    for c in (256, 512):
        assert algo((1, c, 7, 7), (c, c, 3, 3)) == ("winograd_f2" if f2 else "winograd")
    assert algo((1, 128, 7, 7), (128, 128, 3, 3)) == (
        "winograd_f2" if isa == "avx512" else "winograd")
    assert algo((1, 256, 8, 8), (256, 256, 3, 3)) == ("winograd_f2" if f2 else "winograd")
    # batch 2 at 7x7 with AVX-512 (98 pixels), not with AVX2
    assert algo((2, 512, 7, 7), (512, 512, 3, 3)) == (
        "winograd_f2" if isa == "avx512" else "winograd")
    # unpacked weights (training) the same, where F(4x4, 3x3) is not taken unpacked
    assert algo((1, 512, 7, 7), (512, 512, 3, 3), packed=False) == (
        "winograd_f2" if f2 else "im2col")
    assert algo((1, 128, 7, 7), (128, 128, 3, 3), packed=False) == (
        "winograd_f2" if isa == "avx512" else "im2col")
    # not: more pixels, fewer channel pairs
    assert algo((3, 512, 7, 7), (512, 512, 3, 3)) == "winograd"
    assert algo((1, 256, 14, 14), (256, 256, 3, 3)) == "winograd"
    assert algo((1, 256, 14, 14), (256, 256, 3, 3), packed=False) == "winograd"
    assert algo((1, 64, 7, 7), (64, 64, 3, 3)) == "winograd"
    # backward-data likewise (over the input's pixels), never backward-weight
    assert algo((1, 512, 7, 7), (512, 512, 3, 3), packed=False, pass_="backward_data") == (
        "winograd_f2" if f2 else "phase" if isa in conv_backend.PHASE_ISAS else "im2col")
    assert algo((1, 512, 7, 7), (512, 512, 3, 3), pass_="backward_weight") != "winograd_f2"
    assert conv_backend.WINOGRAD_F2_ISAS  # measured faster somewhere, or the family is unused


def test_eval_mode_conv2d_runs_and_caches_it(isa):
    # (test_conv_inference.py's stale-pack tests use 16-channel layers, which the rule
    # does not give F(2x2, 3x3); these are the same checks on one it does)
    if isa not in conv_backend.WINOGRAD_F2_ISAS:
        pytest.skip(f"the rule keeps F(4x4, 3x3) at {isa}")
    pve.manual_seed(0)
    m = pve.nn.Conv2d(256, 264, 3, padding=1).eval()
    x = np.random.default_rng(0).standard_normal((1, 256, 7, 7)).astype(np.float32)

    def check(label):
        with pve.no_grad():
            y = m(x).numpy().copy()
        # (copies: a live numpy view of the weight makes every call repack)
        want = conv2d_forward(x, m.weight.detach().clone().numpy(),
                              m.bias.detach().clone().numpy(), (1, 1), (1, 1, 1, 1), (1, 1), 1)
        assert_close(y, want, label)
        return y

    y = check("eval-mode Conv2d")
    pack = m._pack
    assert [plan[1:] for plan in m._plans.values()] == [("winograd_f2", True)]
    np.testing.assert_array_equal(check("again"), y)
    assert pack is not None and m._pack is pack  # not re-packed
    with pve.no_grad():
        m.weight.sub_(0.1 * np.ones(m.weight.shape, np.float32))  # an SGD-like step
    assert not np.allclose(check("after an in-place update"), y)
    assert m._pack is not pack
    m.load_state_dict({k: v.detach().numpy() * 2 for k, v in m.state_dict().items()})
    check("after load_state_dict")
    m.train()
    assert m._pack is None
