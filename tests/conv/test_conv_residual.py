"""The residual in the convolution epilogue: y = act(conv(x) + bias + residual).

Kernel level (``_C.conv2d_forward(..., residual=)``) against the float64 numpy
reference at every ISA level: the pointwise driver (every pixel tiling, packed
and plain weights, non-temporal stores forced on and off), phase and Winograd
F(4x4) and F(2x2) (which add it in their epilogues) and the families that do
not (the binding's add + activation pass after them). Module level (``nn.fusion.conv_bn_add_act``):
the fused inference path against the same modules run one by one, the fallbacks,
and ResNet blocks using it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import _C, nn
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import fusion

from conv.conv_cases import (assert_close, num_threads, random_pointwise_case,
                              randomize_bn_statistics, trained_bn)
from reference.conv_reference import conv2d_forward as reference_conv

ACTS = {"none": None, "relu": math.inf, "relu6": 6.0}


def _act(y: np.ndarray, relu_max) -> np.ndarray:
    return y if relu_max is None else np.clip(y, 0.0, relu_max)


def _run(x, w, b, stride, pad, groups, out, algorithm, relu_max, residual, packed=None,
         stream=None):
    return _C.conv2d_forward(x, w, b, stride, pad, (1, 1), groups, out, algorithm,
                             relu_max is not None, packed,
                             math.inf if relu_max is None else relu_max, stream, residual)


# Pointwise on the driver: (n, c, k, h, w, stride). 7x7 (3 vectors + 1 pixel at 16
# lanes: the remainder folded into a 3-vector tile when packed, dot products when
# plain), 14x14 (12 + 4), 1x1 (the remainder alone), 5x5, 9x9, 11x11, 4x5, 3x17
# (partial vectors); output channels not a multiple of 14 / 6 / 4 (short last panels),
# input channels past whole vectors; strided (pixels gathered per image, packed or
# plain weights; plain ones over kPointwisePlainStridedMaxWeights, 300 x 260, take
# the im2col path and its add pass); weights over one slab (two slabs, with the
# remainder pixel); 16x16 and 8x8 strided outputs are whole aligned vectors, where
# non-temporal stores can be forced; slabs of at least 6 row panels copy each tile's B
# strip first (300 x 130 at 16x16; 90 and 100 channels with partial last vectors);
# weights over one slab copy each image's strips once (520 x 150, 300 x 300, 600 x 130,
# 300 x 260 strided), shared by all threads at batch 1 and 2 (3 threads), a thread's own
# at batch 3, with the remainder pixel folded into a packed 3-vector tile's strip (5x5 at
# 8 lanes, 7x7 at 16).
POINTWISE_CASES = [
    (1, 37, 61, 7, 7, 1), (3, 19, 30, 7, 7, 1), (1, 40, 72, 14, 14, 1), (2, 33, 17, 1, 1, 1),
    (1, 16, 45, 5, 5, 1), (1, 18, 50, 9, 9, 1), (1, 12, 15, 11, 11, 1), (2, 9, 33, 4, 5, 1),
    (1, 12, 64, 16, 16, 1), (1, 9, 15, 3, 17, 1), (2, 8, 1, 6, 6, 1),
    (1, 35, 66, 14, 14, 2), (3, 20, 23, 13, 13, 2), (1, 24, 40, 16, 16, 2),
    (1, 520, 150, 7, 7, 1), (2, 300, 130, 16, 16, 1), (1, 300, 260, 9, 9, 2),
    (1, 20, 90, 11, 11, 1), (2, 30, 100, 9, 15, 1),
    (3, 520, 150, 14, 14, 1), (1, 300, 300, 7, 7, 1), (1, 600, 130, 5, 5, 1),
    (3, 300, 260, 9, 9, 2),
]


@pytest.mark.kernels
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("act", list(ACTS))
def test_pointwise_residual_epilogue_matches_reference(isa, act, threads):
    relu_max = ACTS[act]
    rng = np.random.default_rng(41)
    with num_threads(threads):
        for n, c, k, h, w_, s in POINTWISE_CASES:
            x, w, b, out = random_pointwise_case(rng, n, c, k, h, w_, s)
            res = (2 * rng.standard_normal((n, k) + out)).astype(np.float32)
            conv = reference_conv(x, w, None, (s, s), (0, 0, 0, 0), (1, 1), 1)
            packed = _C.conv2d_pack_weight(w, algorithm="pointwise")
            for bias in (None, b):
                want = conv + res if bias is None else conv + b[:, None, None] + res
                want = _act(want, relu_max)
                for weights in (packed, None):
                    for stream in (None, True, False):
                        y = _run(x, w, bias, (s, s), (0, 0), 1, out, "pointwise", relu_max, res,
                                 weights, stream)
                        assert_close(y, want, f"{(n, c, k, h, w_, s)} {act} bias={bias is not None} "
                                              f"packed={weights is not None} stream={stream}")


# (input, weight, padding, stride, groups, forced): phase and both Winograd families add
# the residual in their epilogues; the others run the convolution, then the add + activation pass.
FAMILY_CASES = [
    ((2, 16, 19, 21), (16, 16, 3, 3), 1, 1, 1, "winograd"),   # tile-lane schedule
    ((2, 40, 11, 13), (48, 40, 3, 3), 1, 1, 1, "winograd"),   # staged schedule, odd edges
    ((1, 64, 7, 7), (72, 64, 3, 3), 1, 1, 1, "winograd"),
    ((2, 16, 13, 15), (24, 16, 3, 3), 1, 2, 1, "phase"),      # stride 2
    ((1, 24, 7, 7), (40, 24, 3, 3), 1, 1, 1, "phase"),        # stride 1 at 7x7 (ResNet's layer4)
    ((1, 64, 7, 7), (72, 64, 3, 3), 1, 1, 1, "winograd_f2"),  # odd planes: partial 2x2 tiles
    ((2, 20, 9, 12), (40, 20, 3, 3), 1, 1, 1, "winograd_f2"),
    ((3, 8, 12, 9), (20, 8, 5, 5), 2, 2, 1, "phase"),
    ((2, 5, 9, 11), (7, 5, 3, 3), 1, 1, 1, "im2col"),
    ((1, 8, 10, 10), (80, 8, 3, 3), 1, 1, 1, "im2col"),       # the packed GEMM (> 64 rows)
    ((2, 3, 20, 21), (12, 3, 7, 7), 3, 2, 1, "im2col"),       # the stem's rows path
    ((2, 8, 10, 11), (8, 1, 3, 3), 1, 1, 8, "depthwise"),
    ((1, 6, 13, 12), (12, 1, 3, 3), 1, 2, 6, "depthwise"),
    ((1, 24, 9, 9), (40, 24, 1, 1), 0, 2, 1, "pointwise"),    # strided, few plain weights
    ((1, 260, 5, 5), (260, 260, 1, 1), 0, 2, 1, "pointwise"),  # ... many: im2col, add pass
    ((2, 12, 7, 9), (6, 6, 1, 1), 0, 1, 2, "pointwise"),      # grouped
    ((1, 1040, 7, 7), (300, 520, 1, 1), 0, 1, 2, "pointwise"),  # ... per-image strips per group
    ((2, 16, 9, 9), (16, 16, 3, 3), 1, 1, 1, "direct"),       # (forward: im2col)
]


@pytest.mark.kernels
@pytest.mark.parametrize("act", list(ACTS))
@pytest.mark.parametrize("case, packed", [(c, False) for c in FAMILY_CASES] + [
    (c, True) for c in FAMILY_CASES if c[-1] in ("winograd", "phase", "winograd_f2")])
def test_every_family_adds_the_residual(isa, case, packed, act):
    xs, ws, pad, stride, groups, algorithm = case
    relu_max = ACTS[act]
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    conv = reference_conv(x, w, b, (stride, stride), (pad,) * 4, (1, 1), groups)
    res = (2 * rng.standard_normal(conv.shape)).astype(np.float32)
    res[0, 0, 0, 1] = np.nan  # a NaN in the residual stays in its pixel (torch.relu keeps NaN)
    want = _act(conv + res, relu_max)
    weights = _C.conv2d_pack_weight(w, algorithm=algorithm) if packed else None
    for threads in (1, 2):
        with num_threads(threads):
            got = _run(x, w, b, (stride, stride), (pad, pad), groups, conv.shape[2:], algorithm,
                       relu_max, res, weights)
        nan = np.isnan(want)
        assert np.array_equal(np.isnan(got), nan), f"{case} {act} threads={threads}"
        assert_close(np.where(nan, 0, got), np.where(nan, 0, want),
                     f"{case} {act} packed={packed} threads={threads}")


def test_residual_is_checked():
    x = np.ones((2, 4, 5, 5), np.float32)
    w = np.ones((6, 4, 1, 1), np.float32)
    args = (x, w, None, (1, 1), (0, 0), (1, 1), 1, (5, 5), "pointwise", True, None, math.inf,
            None)
    with pytest.raises(ValueError, match=r"residual must have shape \(2, 6, 5, 5\), "
                                         r"got \(2, 6, 5, 4\)"):
        _C.conv2d_forward(*args, np.ones((2, 6, 5, 4), np.float32))
    with pytest.raises(ValueError, match="residual must have 4 dimensions"):
        _C.conv2d_forward(*args, np.ones((2, 6, 25), np.float32))
    with pytest.raises(TypeError, match="residual must be a float32 array"):
        _C.conv2d_forward(*args, np.ones((2, 6, 5, 5), np.float64))
    with pytest.raises(ValueError, match="residual must be C-contiguous"):
        _C.conv2d_forward(*args, np.ones((2, 6, 5, 5), np.float32).transpose(0, 1, 3, 2))
    # (the residual may be the input itself: both are only read)
    same = np.ones((2, 4, 5, 5), np.float32)
    y = _C.conv2d_forward(same, np.eye(4, dtype=np.float32).reshape(4, 4, 1, 1), None, (1, 1),
                          (0, 0), (1, 1), 1, (5, 5), "pointwise", False, None, math.inf, None,
                          same)
    np.testing.assert_array_equal(y, 2 * same)


# ----------------------------------------------------------------- module level

def _plain(conv, bn, x, identity, act):
    """act(bn(conv(x)) + identity), module by module with autograd recording."""
    y = conv(pve.tensor(x))
    if bn is not None:
        y = bn(y)
    y = y + pve.tensor(identity)
    return y if act is None else act(y)


@pytest.mark.parametrize("with_bn", [True, False])
@pytest.mark.parametrize("act", [None, "relu", "relu6", "leaky"])
@pytest.mark.parametrize("conv_args, x_shape", [
    (dict(in_channels=24, out_channels=40, kernel_size=1, bias=False), (2, 24, 7, 7)),
    (dict(in_channels=24, out_channels=40, kernel_size=1, stride=2), (1, 24, 13, 13)),
    (dict(in_channels=16, out_channels=16, kernel_size=3, padding=1, bias=False), (2, 16, 9, 9)),
    (dict(in_channels=16, out_channels=24, kernel_size=3, stride=2, padding=1), (1, 16, 14, 14)),
    (dict(in_channels=8, out_channels=8, kernel_size=3, padding=1, groups=8), (2, 8, 6, 7)),
])
def test_conv_bn_add_act_equals_the_plain_expression(conv_args, x_shape, with_bn, act):
    rng = np.random.default_rng(17)
    conv = nn.Conv2d(**conv_args).eval()
    bn = trained_bn(conv.out_channels, rng).eval() if with_bn else None
    module = {None: None, "relu": nn.ReLU(inplace=True), "relu6": nn.ReLU6(),
              "leaky": nn.LeakyReLU(0.1)}[act]
    x = rng.standard_normal(x_shape).astype(np.float32)
    want = _plain(conv, bn, x, np.zeros(1, np.float32), None).detach().numpy()
    identity = (2 * rng.standard_normal(want.shape)).astype(np.float32)
    want = _plain(conv, bn, x, identity, module).detach().numpy()
    with pve.no_grad():
        got = fusion.conv_bn_add_act(conv, bn, x, identity, module)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)
    with pve.no_grad():  # the identity is only read
        fusion.conv_bn_add_act(conv, bn, x, pve.tensor(identity), module)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)


def test_conv_bn_add_act_fuses_only_in_inference(monkeypatch):
    rng = np.random.default_rng(5)
    conv = nn.Conv2d(8, 16, 1, bias=False)
    bn = trained_bn(16, rng)
    relu = nn.ReLU()
    x = rng.standard_normal((2, 8, 5, 5)).astype(np.float32)
    identity = rng.standard_normal((2, 16, 5, 5)).astype(np.float32)
    calls = []
    fused = nn.Conv2d._fused_forward
    monkeypatch.setattr(nn.Conv2d, "_fused_forward",
                        lambda self, *a: calls.append(len(a) > 3 and a[3] is not None)
                        or fused(self, *a))
    conv.eval()
    bn.eval()
    with pve.no_grad():
        want = fusion.conv_bn_add_act(conv, bn, x, identity, relu).numpy()
    assert calls == [True]  # one convolution, the identity in its epilogue
    # autograd recording (eval or train): module by module, gradients as the plain expression
    for mode in ("eval", "train"):
        conv.train(mode == "train")
        bn.train(mode == "train")
        xt = pve.tensor(x, requires_grad=True)
        it = pve.tensor(identity, requires_grad=True)
        y = fusion.conv_bn_add_act(conv, bn, xt, it, relu)
        y.sum().backward()
        grads = (xt.grad.numpy().copy(), it.grad.numpy().copy(), conv.weight.grad.numpy().copy())
        conv.weight.grad = None
        bn.weight.grad = bn.bias.grad = None
        xt2 = pve.tensor(x, requires_grad=True)
        it2 = pve.tensor(identity, requires_grad=True)
        relu(bn(conv(xt2)) + it2).sum().backward()
        for got, expect in zip(grads, (xt2.grad.numpy(), it2.grad.numpy(),
                                       conv.weight.grad.numpy())):
            np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-5)
        conv.weight.grad = None
        bn.weight.grad = bn.bias.grad = None
        if mode == "eval":
            np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-4, atol=1e-4)
    assert calls == [True]
    # training mode under no_grad (batch statistics): not fused either
    with pve.no_grad():
        fusion.conv_bn_add_act(conv, bn, x, identity, relu)
    assert calls == [True]


def test_conv_bn_add_act_rejects_a_residual_of_another_shape():
    conv = nn.Conv2d(4, 8, 3, padding=1, bias=False).eval()
    bn = nn.BatchNorm2d(8).eval()
    x = np.zeros((2, 4, 6, 6), np.float32)
    bad = np.zeros((2, 8, 3, 3), np.float32)
    message = (r"Conv2d\(4, 8, kernel_size=\(3, 3\)\): the residual must have the output's "
               r"shape \(2, 8, 6, 6\), got \(2, 8, 3, 3\)")
    with pve.no_grad(), pytest.raises(ValueError, match=message):
        fusion.conv_bn_add_act(conv, bn, x, bad, nn.ReLU())
    with pytest.raises(ValueError, match=message):  # autograd on: the same check
        fusion.conv_bn_add_act(conv, bn, x, bad, nn.ReLU())
    conv.train()
    bn.train()
    with pytest.raises(ValueError, match=message):
        fusion.conv_bn_add_act(conv, bn, x, bad, nn.ReLU())
    with pve.no_grad(), pytest.raises(ValueError, match="expected input"):
        # the input is still checked first, with the usual message
        fusion.conv_bn_add_act(conv.eval(), bn.eval(), np.zeros((2, 5, 6, 6), np.float32),
                               bad, None)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_resnet_blocks_add_the_identity_in_the_epilogue(name, monkeypatch):
    model = pve.models.get_model(name, num_classes=10)
    rng = np.random.default_rng(8)
    randomize_bn_statistics(model, rng)
    model.eval()
    x = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
    unfused = model(x).detach().numpy()  # autograd on: every module as written

    def no_separate_add(*args, **kwargs):
        raise AssertionError("residual_add ran in an inference forward")

    monkeypatch.setattr(fusion, "residual_add", no_separate_add)
    for forced in (None, "im2col"):  # fused epilogues, and the add pass after im2col
        with pve.no_grad(), conv_backend.force_algorithm(forced):
            fused = model(x).numpy()
        np.testing.assert_allclose(fused, unfused, rtol=1e-3, atol=1e-4)
