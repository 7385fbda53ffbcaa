"""The ``phase`` family (convolution over the input's stride phases, see
csrc/kernels/conv/conv2d_phase.cpp and conv2d_phase_backward_weight.cpp) at every ISA
level against the float64 reference: forward with packed and unpacked weights, fused
bias and ReLU(6), backward-data and backward-weight (strides 1-3, dilation, kernels
smaller than the stride), thread counts, and where the rule picks it (and where not)."""

from __future__ import annotations

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import _C
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import functional as F

from conv.conv_cases import (assert_close, check_against_reference, dense_case, forward_with,
                              num_threads, rgb_stem_family)
from reference.conv_reference import conv2d_backward, conv2d_forward

pytestmark = pytest.mark.kernels

# n, c, h, w, k, (kh, kw), stride, padding, dilation
SHAPES = [
    (1, 3, 9, 9, 5, (3, 3), (2, 2), (1, 1), (1, 1)),       # 5x5 output: two-row tiles
    (2, 17, 13, 11, 29, (3, 3), (2, 2), (0, 2), (1, 1)),   # K past a channel vector, odd sizes
    (3, 8, 7, 12, 40, (3, 3), (2, 2), (2, 1), (1, 1)),     # padding 2 rows, 1 column
    (1, 16, 57, 56, 33, (3, 3), (2, 2), (1, 1), (1, 1)),   # 29x28: several tiles per row
    (2, 6, 16, 17, 20, (3, 3), (2, 2), (0, 0), (1, 1)),    # no padding
    (1, 64, 14, 14, 128, (3, 3), (2, 2), (1, 1), (1, 1)),  # ResNet's 7x7 output
    (1, 8, 9, 9, 72, (3, 3), (2, 2), (1, 1), (1, 1)),      # 5 vector blocks: tiles of 4 and 1
    (2, 9, 30, 31, 16, (5, 5), (2, 2), (2, 2), (1, 1)),    # 5x5 kernel
    (1, 4, 11, 10, 7, (2, 2), (2, 2), (0, 1), (1, 1)),     # even kernel, odd phases unused
    (2, 5, 10, 9, 7, (5, 3), (3, 2), (2, 1), (1, 2)),      # other strides, dilation
    (1, 4, 8, 8, 6, (3, 3), (1, 1), (1, 1), (2, 2)),       # stride 1: one phase
    (2, 7, 15, 15, 12, (1, 1), (2, 2), (0, 0), (1, 1)),    # 1x1
    (1, 3, 5, 40, 2, (3, 3), (2, 2), (1, 1), (1, 1)),      # a 1-row output, wide
    (2, 1, 5, 3, 1, (2, 2), (2, 2), (0, 0), (1, 1)),       # the smallest
    (1, 130, 40, 31, 20, (3, 3), (2, 2), (1, 1), (1, 1)),  # channel chunks, several row bands
    (1, 230, 8, 8, 24, (3, 3), (2, 2), (1, 1), (1, 1)),    # channel chunks at AVX2's size
    (1, 2, 5, 1201, 3, (3, 3), (2, 2), (1, 1), (1, 1)),    # a row of tiles past the partial budget
    (1, 6, 74, 74, 20, (3, 3), (2, 2), (1, 1), (1, 1)),    # 37x37: flat tiles (AVX2), two bands
    (2, 240, 14, 14, 30, (3, 3), (1, 1), (1, 1), (1, 1)),  # 14x14 flat tiles over channel chunks
]


_case = dense_case


def _phase(*args, **kwargs):
    return forward_with("phase", *args, **kwargs)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s[:5])))
def test_matches_reference(isa, shape):
    rng = np.random.default_rng(abs(hash(shape)) % 2**32)
    for bias in (True, False):
        x, w, b, geo = _case(rng, *shape, bias=bias)
        want = conv2d_forward(x, w, b, geo.stride, geo.pads, geo.dilation, 1)
        assert_close(_phase(x, w, b, geo), want, "unpacked")
        packed = _C.conv2d_pack_weight(w, algorithm="phase")
        assert_close(_phase(x, w, b, geo, packed=packed), want, "packed")
        assert_close(_phase(x, w, b, geo, relu=True, packed=packed), np.maximum(want, 0), "relu")
        assert_close(_phase(x, w, b, geo, relu=True, relu_max=6.0), np.clip(want, 0, 6), "relu6")


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("batch", [1, 2, 3, 7])
def test_thread_counts_give_the_same_answers(threads, batch):
    # batch < 2 * threads: threads split each image by output rows (8 rows at 2 threads),
    # or by channel blocks (and rows when there are fewer blocks than threads) when there
    # are fewer than 4 rows per thread (3 threads); otherwise they take whole images.
    rng = np.random.default_rng(batch * 10 + threads)
    for k in (5, 40, 100):
        x, w, b, geo = _case(rng, batch, 12, 15, 18, k, (3, 3), (2, 2), (1, 1), (1, 1))
        with num_threads(1):
            packed = _C.conv2d_pack_weight(w, algorithm="phase")  # the layout has no thread count
            one = _phase(x, w, b, geo, relu=True, packed=packed)
        with num_threads(threads):
            many = _phase(x, w, b, geo, relu=True, packed=packed)
            unpacked = _phase(x, w, b, geo, relu=True)
        np.testing.assert_array_equal(many, one)
        np.testing.assert_array_equal(unpacked, one)


# Small output planes (under 196 pixels, flat tiles): threads take groups of images
# whose flat tiles run on from one image into the next (conv2d_phase.cpp, image_group).
# n, c, size, k, stride: 7x7, 5x5, 5x4 and 3x3 outputs; batches that leave a smaller
# last group, one image per thread, and groups cut short by the channel-chunk budget.
GROUP_CASES = [
    (8, 24, 7, 40, 1), (9, 16, 9, 20, 2), (5, 30, 5, 17, 1), (7, 12, 6, 8, 2),
    (3, 20, 3, 24, 1), (13, 9, 7, 33, 1), (4, 600, 7, 16, 1),
]


@pytest.mark.parametrize("case", GROUP_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_image_groups_match_reference(isa, case, threads):
    n, c, size, k, stride = case
    rng = np.random.default_rng(n * 1000 + c + threads)
    x, w, b, geo = _case(rng, n, c, size, size - 1 if size == 5 else size, k, (3, 3),
                         (stride,) * 2, (1, 1), (1, 1))
    want = conv2d_forward(x, w, b, geo.stride, geo.pads, geo.dilation, 1)
    res = rng.standard_normal(want.shape).astype(np.float32)
    with num_threads(threads):
        assert_close(_phase(x, w, b, geo), want, "plain")
        packed = _C.conv2d_pack_weight(w, algorithm="phase")
        assert_close(_phase(x, w, b, geo, relu=True, packed=packed), np.maximum(want, 0), "relu")
        got = _C.conv2d_forward(x, w, b, geo.stride, geo.top_left, geo.dilation, 1,
                                geo.out_size, "phase", True, packed, 6.0, None, res)
        assert_close(got, np.clip(want + res, 0, 6), "residual + relu6")
        gy = rng.standard_normal(want.shape).astype(np.float32)
        gx = _C.conv2d_backward_data(gy, w, list(x.shape), geo.stride, geo.top_left,
                                     geo.dilation, 1, "phase")
    gx_ref = conv2d_backward(x, w, gy, geo.stride, geo.pads, geo.dilation, 1)[0]
    assert_close(gx, gx_ref, "backward-data")


# Backward passes: the forward shapes and these (n, c, h, w, k, (kh, kw), stride,
# padding, dilation).
BACKWARD_SHAPES = SHAPES + [
    (2, 20, 9, 9, 24, (3, 3), (1, 1), (3, 3), (1, 1)),    # stride 1, padding past the kernel
    (3, 33, 14, 14, 17, (3, 3), (1, 1), (1, 1), (1, 1)),  # stride 1, one-row tiles
    (1, 18, 7, 7, 40, (3, 3), (1, 1), (1, 1), (1, 1)),    # stride 1 at 7x7: two-row tiles
    (2, 7, 9, 9, 5, (2, 2), (3, 3), (0, 0), (1, 1)),      # kernel < stride: phases without taps
    (2, 6, 13, 11, 10, (1, 1), (3, 2), (0, 0), (1, 1)),   # 1x1 stride (3, 2)
    (1, 12, 17, 16, 9, (3, 3), (3, 3), (2, 2), (1, 1)),   # stride 3: 9 phases of 1 tap
    (2, 10, 12, 13, 11, (3, 3), (2, 2), (2, 2), (2, 2)),  # dilation = stride: one phase has every tap
    (1, 5, 16, 15, 6, (3, 3), (2, 2), (1, 1), (3, 3)),    # dilation 3, stride 2
    (2, 3, 6, 5, 4, (4, 4), (2, 2), (2, 1), (1, 1)),      # even kernel, 2x2 taps per phase
    (3, 16, 57, 56, 33, (3, 3), (2, 2), (1, 1), (1, 1)),  # backward-weight: several image groups
    (7, 200, 14, 13, 300, (3, 3), (2, 2), (1, 1), (1, 1)),  # 7x7: groups of 4 and 3 images
    (2, 64, 14, 14, 130, (3, 3), (2, 2), (1, 1), (1, 1)), # output channels past whole groups
]


def _backward(x, w, gy, geo, with_bias):
    gx = _C.conv2d_backward_data(gy, w, list(x.shape), geo.stride, geo.top_left, geo.dilation,
                                 1, "phase")
    gw, gb = _C.conv2d_backward_weight(x, gy, list(w.shape), geo.stride, geo.top_left,
                                       geo.dilation, 1, "phase", with_bias)
    return gx, gw, gb


@pytest.mark.parametrize("shape", BACKWARD_SHAPES, ids=lambda s: "x".join(map(str, s[:5])))
def test_backward_matches_reference(isa, shape):
    n, c, h, w, k, (kh, kw), stride, padding, dilation = shape
    geo = F._conv2d_geometry((n, c, h, w), (k, c, kh, kw), stride, padding, dilation, 1,
                             "conv2d")
    for pass_ in ("forward", "backward_data", "backward_weight"):  # no fallback to im2col
        assert _C.conv2d_plan(pass_, "phase", [n, c, h, w], [k, c, kh, kw], geo.stride,
                              geo.top_left, geo.dilation, 1, geo.out_size)[0] == "phase"
    rng = np.random.default_rng(abs(hash(shape)) % 2**32)
    with conv_backend.force_algorithm("phase"):
        for with_bias in (True, False):
            check_against_reference(rng, n, c, h, w, k, kh, kw, stride, padding, dilation, 1,
                                    with_bias)


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("batch", [1, 2, 3, 7])
def test_backward_thread_counts_give_the_same_answers(threads, batch):
    # backward-data: batch < 2 * threads splits (phase, channel block, rows) items of
    # each image, otherwise threads take whole images; backward-weight: threads take
    # (channel block, output-channel group) items, one thread's sums or one per item
    # (several image groups at 7x7)
    # (200 input channels: several groups of backward-data's vector blocks)
    rng = np.random.default_rng(batch * 10 + threads)
    for c, k, size, stride in ((12, 5, 15, 2), (12, 40, 14, 2), (12, 100, 18, 2),
                               (12, 24, 11, 1), (12, 17, 13, 3), (200, 30, 9, 2)):
        x, w, _, geo = _case(rng, batch, c, size, size + 3, k, (3, 3), (stride,) * 2, (1, 1),
                             (1, 1))
        gy = rng.standard_normal((batch, k) + geo.out_size).astype(np.float32)
        with num_threads(1):
            one = _backward(x, w, gy, geo, True)
        with num_threads(threads):
            many = _backward(x, w, gy, geo, True)
        for got, want in zip(many, one):
            np.testing.assert_array_equal(got, want)


def test_pack_rejects_what_it_cannot_pack():
    w = np.ones((4, 3, 3, 3), np.float32)
    size = _C.conv2d_pack_weight(w, algorithm="phase").shape[0]
    assert size % 27 == 0 and size >= 4 * 27  # K rounded up to whole channel vectors
    with pytest.raises(ValueError, match="backward-data"):
        _C.conv2d_pack_weight(w, for_backward_data=True, algorithm="phase")
    with pytest.raises(ValueError, match="takes no packed weights"):
        _C.conv2d_pack_weight(w, algorithm="im2col")
    x = np.ones((1, 3, 8, 8), np.float32)
    wrong = _C.conv2d_pack_weight(np.ones((4, 3, 5, 5), np.float32), algorithm="phase")
    with pytest.raises(ValueError, match="packed weight has"):
        _C.conv2d_forward(x, w, None, (2, 2), (1, 1), (1, 1), 1, (4, 4), "phase", False, wrong)


def test_rule_picks_phase(isa):
    # with the AVX2 and AVX-512 kernels; the scalar build keeps im2col
    phase = "phase" if isa in conv_backend.PHASE_ISAS else "im2col"
    resnet = [((1, 128, 56, 56), (128, 128, 3, 3)), ((1, 256, 28, 28), (256, 256, 3, 3)),
              ((1, 512, 14, 14), (512, 512, 3, 3)), ((1, 64, 56, 56), (128, 64, 3, 3)),
              ((8, 256, 14, 14), (512, 256, 3, 3))]
    for x, w in resnet:
        assert F.conv2d_algorithm(x, w, stride=2, padding=1, weights_packed=True) == phase
        for pass_ in ("backward_data", "backward_weight"):
            assert F.conv2d_algorithm(x, w, stride=2, padding=1, pass_=pass_) == phase
    # unpacked weights (training, functional calls) need enough output pixels
    assert F.conv2d_algorithm((1, 256, 28, 28), (256, 256, 3, 3), stride=2, padding=1) == phase
    assert F.conv2d_algorithm((1, 512, 14, 14), (512, 512, 3, 3), stride=2, padding=1) == (
        "phase" if isa == "avx2" else "im2col")  # (AVX2's flat tiles: from 25 pixels)
    assert F.conv2d_algorithm((1, 512, 8, 8), (512, 512, 3, 3), stride=2, padding=1) == "im2col"
    assert F.conv2d_algorithm((4, 512, 14, 14), (512, 512, 3, 3), stride=2, padding=1) == phase
    # stride 1: Winograd (F(2x2, 3x3) for packed layers of few pixels and many
    # channel pairs: test_winograd_f2.py), never phase in forward
    small = "winograd_f2" if isa in conv_backend.WINOGRAD_F2_ISAS else "winograd"
    assert F.conv2d_algorithm((1, 512, 7, 7), (512, 512, 3, 3), padding=1,
                              weights_packed=True) == small
    assert F.conv2d_algorithm((4, 512, 7, 7), (512, 512, 3, 3), padding=1,
                              weights_packed=True) == "winograd"
    assert F.conv2d_algorithm((1, 512, 7, 7), (512, 512, 3, 3), padding=1) == (
        "winograd_f2" if isa in conv_backend.WINOGRAD_F2_ISAS else "im2col")
    # (its backward-data: F(2x2, 3x3) where the rule gives it that, else phase, as
    # F(4x4, 3x3) would transform 4x as many weights every call)
    assert F.conv2d_algorithm((1, 512, 7, 7), (512, 512, 3, 3), padding=1,
                              pass_="backward_data") == (
        "winograd_f2" if isa in conv_backend.WINOGRAD_F2_ISAS else phase)
    # backward passes: stride 1 where Winograd does not run, 2x2 to 5x5 kernels,
    # at least PHASE_BACKWARD_MIN_CHANNELS channels each way
    for pass_ in ("backward_data", "backward_weight"):
        assert F.conv2d_algorithm((8, 64, 56, 56), (64, 64, 3, 3), padding=1,
                                  pass_=pass_) == "winograd"
        stride_1 = "direct" if pass_ == "backward_weight" else "im2col"  # without phase
        assert F.conv2d_algorithm((4, 32, 28, 28), (64, 32, 5, 5), padding=2, pass_=pass_) == (
            "phase" if isa in conv_backend.PHASE_ISAS else stride_1)
        assert F.conv2d_algorithm((1, 24, 56, 56), (48, 24, 5, 5), stride=2, padding=2,
                                  pass_=pass_) == phase
        assert F.conv2d_algorithm((1, 64, 28, 28), (64, 64, 2, 2), stride=2,
                                  pass_=pass_) == phase
        assert F.conv2d_algorithm((16, 6, 14, 14), (16, 6, 5, 5), pass_=pass_) == "im2col"
        assert F.conv2d_algorithm((1, 3, 224, 224), (32, 3, 3, 3), stride=2, padding=1,
                                  pass_=pass_) == "im2col"  # RGB stems
        assert F.conv2d_algorithm((1, 64, 28, 28), (4, 64, 3, 3), stride=2, padding=1,
                                  pass_=pass_) == "im2col"  # 4 output channels
        assert F.conv2d_algorithm((1, 32, 56, 56), (32, 32, 3, 3), stride=3, padding=1,
                                  pass_=pass_) == "im2col"
        assert F.conv2d_algorithm((1, 32, 56, 56), (32, 32, 3, 3), stride=2, padding=2,
                                  dilation=2, pass_=pass_) == "im2col"
        assert F.conv2d_algorithm((1, 16, 56, 56), (16, 16, 7, 7), stride=2, padding=3,
                                  pass_=pass_) == "im2col"  # 49 taps
    # not: stride 1 otherwise, the 7x7 stem, dilation, groups, 1x1
    assert F.conv2d_algorithm((1, 64, 56, 56), (64, 64, 3, 3), padding=1) == "winograd"
    assert F.conv2d_algorithm((1, 3, 224, 224), (64, 3, 7, 7), stride=2, padding=3) == (
        rgb_stem_family(isa))  # (test_conv_winograd_s2.py)
    assert F.conv2d_algorithm((1, 3, 224, 224), (32, 3, 3, 3), stride=2, padding=1,
                              weights_packed=True) == "im2col"  # RGB stems
    assert F.conv2d_algorithm((1, 4, 224, 224), (32, 4, 3, 3), stride=2, padding=1,
                              weights_packed=True) == phase
    assert F.conv2d_algorithm((1, 64, 56, 56), (64, 64, 3, 3), stride=2, padding=2,
                              dilation=2) == "im2col"
    assert F.conv2d_algorithm((1, 64, 56, 56), (64, 32, 3, 3), stride=2, padding=1,
                              groups=2) == "im2col"
    assert F.conv2d_algorithm((1, 64, 56, 56), (64, 64, 1, 1), stride=2) == "pointwise"
    with conv_backend.force_algorithm("phase"):
        assert F.conv2d_algorithm((1, 8, 9, 9), (8, 8, 3, 3), padding=1) == "phase"
        assert F.conv2d_algorithm((1, 8, 9, 9), (8, 4, 3, 3), padding=1, groups=2) == "im2col"
        for pass_ in ("backward_data", "backward_weight"):
            assert F.conv2d_algorithm((1, 8, 9, 9), (8, 8, 3, 3), padding=1,
                                      pass_=pass_) == "phase"
            assert F.conv2d_algorithm((1, 8, 9, 9), (8, 4, 3, 3), padding=1, groups=2,
                                      pass_=pass_) == "im2col"


def test_eval_plan_follows_isa_switch():
    # The rule depends on the SIMD level, so the cached eval plan does too.
    m = pve.nn.Conv2d(8, 16, 3, stride=2, padding=1).eval()
    x = np.random.default_rng(2).standard_normal((1, 8, 12, 12)).astype(np.float32)
    want = F.conv2d(x, m.weight.detach(), m.bias.detach(), 2, 1).numpy()
    previous = _C.active_isa()
    try:
        for isa in _C.supported_isas():
            _C.set_isa(isa)
            with pve.no_grad():
                got = m(x).numpy()
            assert_close(got, want.astype(np.float64), isa)
            algorithms = {plan[1] for key, plan in m._plans.items() if key[-1] == isa}
            assert algorithms == {"phase" if isa in conv_backend.PHASE_ISAS else "im2col"}
    finally:
        _C.set_isa(previous)


def test_training_step_through_phase_forced():
    # Every pass on phase (forward with unpacked weights): gradients as im2col's.
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    gy = rng.standard_normal((2, 24, 10, 10)).astype(np.float32)
    results = []
    for forced in ("phase", "im2col"):
        with conv_backend.force_algorithm(forced):
            xt, wt, bt = (pve.tensor(a, requires_grad=True) for a in (x, w, b))
            y = F.conv2d(xt, wt, bt, stride=2, padding=1)
            y.backward(gy)
            results.append([y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(),
                            bt.grad.numpy()])
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def _small_net():
    """Layers whose backward passes the rule sends to phase (AVX2 / AVX-512): 3x3
    stride 2, 5x5 stride 1, 2x2 stride 2; channel counts past whole vectors."""
    return pve.nn.Sequential(
        pve.nn.Conv2d(8, 20, 3, stride=2, padding=1), pve.nn.ReLU(),
        pve.nn.Conv2d(20, 24, 5, padding=2), pve.nn.ReLU(),
        pve.nn.Conv2d(24, 33, 2, stride=2))


def _train(net, x, target, steps):
    opt = pve.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((net(x) - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach().numpy()))
    return losses, [p.detach().numpy().copy() for p in net.parameters()]


def test_training_with_the_rule_matches_im2col(isa):
    """SGD steps through Conv2d with the rule's choice (both backward passes on phase at
    AVX2 / AVX-512) give im2col's losses and parameters."""
    rng = np.random.default_rng(21)
    x = pve.tensor(rng.standard_normal((3, 8, 19, 17)).astype(np.float32))
    net = _small_net()
    state = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    with pve.no_grad():
        target = pve.tensor(rng.standard_normal(net(x).shape).astype(np.float32))
    if isa in conv_backend.PHASE_ISAS:
        for layer in (net[0], net[2], net[4]):
            geo = dict(stride=layer.stride, padding=layer.padding)
            for pass_ in ("backward_data", "backward_weight"):
                assert F.conv2d_algorithm((3, layer.in_channels, 9, 9), layer.weight.shape,
                                          pass_=pass_, **geo) == "phase"
    got = _train(net, x, target, 4)
    net.load_state_dict(state)
    with conv_backend.force_algorithm("im2col"):
        want = _train(net, x, target, 4)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    for a, b in zip(got[1], want[1]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_torch_parity_backward():
    """Gradients through F.conv2d with the rule (phase backward passes at AVX2 /
    AVX-512) against torch's autograd: ResNet's stride-2 layers and the small net's."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    for n, c, h, k, kernel, stride, padding in [
            (2, 64, 56, 128, 3, 2, 1), (1, 128, 28, 256, 3, 2, 1), (3, 256, 14, 512, 3, 2, 1),
            (2, 512, 7, 512, 3, 1, 1), (3, 20, 17, 24, 5, 1, 2), (2, 24, 15, 33, 2, 2, 0)]:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((k, c, kernel, kernel)) / np.sqrt(c * kernel ** 2)).astype(
            np.float32)
        b = rng.standard_normal(k).astype(np.float32)
        xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
        yt = torch.nn.functional.conv2d(xt, wt, bt, stride, padding)
        gy = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
        yt.backward(torch.from_numpy(gy))
        xp, wp, bp = (pve.tensor(a, requires_grad=True) for a in (x, w, b))
        F.conv2d(xp, wp, bp, stride, padding).backward(gy)
        for ours, theirs in ((xp, xt), (wp, wt), (bp, bt)):
            want = theirs.grad.numpy()
            np.testing.assert_allclose(ours.grad.numpy(), want, rtol=1e-4,
                                       atol=1e-4 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("shape", [
    (1, 128, 56, 56, 128), (1, 256, 28, 28, 256), (2, 64, 56, 56, 128), (1, 512, 14, 14, 512),
    (3, 24, 17, 23, 40),
])
def test_torch_parity_eval_conv_bn_relu(shape):
    """Eval-mode Conv2d + BatchNorm2d + ReLU, folded onto phase with cached weights,
    against torch's module chain."""
    torch = pytest.importorskip("torch")
    if _C.active_isa() not in conv_backend.PHASE_ISAS:
        pytest.skip(f"the rule keeps im2col at {_C.active_isa()}")
    n, c, h, w, k = shape
    torch.manual_seed(sum(shape))
    ref = torch.nn.Sequential(torch.nn.Conv2d(c, k, 3, stride=2, padding=1, bias=False),
                              torch.nn.BatchNorm2d(k), torch.nn.ReLU()).eval()
    with torch.no_grad():
        ref[1].running_mean.uniform_(-0.5, 0.5)
        ref[1].running_var.uniform_(0.5, 2.0)
        ref[1].weight.uniform_(0.5, 1.5)
        ref[1].bias.uniform_(-0.5, 0.5)
    conv = pve.nn.Conv2d(c, k, 3, stride=2, padding=1, bias=False)
    bn = pve.nn.BatchNorm2d(k)
    conv.load_state_dict({"weight": ref[0].weight.detach().numpy()})
    bn.load_state_dict({name: t.detach().numpy() for name, t in ref[1].state_dict().items()})
    ours = pve.nn.ConvBnReLU2d(conv, bn).eval()
    x = np.random.default_rng(sum(shape)).standard_normal((n, c, h, w)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    with pve.no_grad():
        got = ours(x).numpy()
    assert conv._plans and all(plan[1] == "phase" and plan[2] for plan in conv._plans.values())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))


def test_torch_parity_functional():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    for n, c, h, w, k, kernel, stride, padding in [
            (2, 13, 19, 22, 37, 3, 2, 1), (1, 32, 28, 28, 48, 5, 2, 2), (3, 5, 9, 9, 7, 3, 2, 0),
            (1, 20, 31, 30, 18, (3, 5), (2, 3), (1, 2))]:
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((k, c, kh, kw)).astype(np.float32)
        b = rng.standard_normal(k).astype(np.float32)
        want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(wt),
                                          torch.from_numpy(b), stride, padding).numpy()
        with conv_backend.force_algorithm("phase"), pve.no_grad():
            got = F.conv2d(x, wt, b, stride, padding).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(want).max()))
