"""Inference fusion (nn.fusion): Conv2d -> BatchNorm2d -> ReLU/ReLU6 as one convolution.

The kernels' ReLU6 epilogue is checked per algorithm and ISA against the float64
reference convolution; the module-level fusion against the same modules run one
by one (autograd on, which never fuses) and against numpy BatchNorm.
"""

from __future__ import annotations

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import functional as F

from conv.conv_cases import randomize_bn_statistics, trained_bn
from reference.conv_reference import conv2d_forward as ref_conv2d
from reference.norm_reference import batch_norm_eval as ref_batch_norm

# (input, weight, padding, groups, stride): shapes each family takes, with
# channel counts below and above the tiled-kernel limit and odd widths (tails).
EPILOGUE_CASES = [
    ((2, 16, 11, 13), (16, 16, 3, 3), 1, 1, 1),     # Winograd / im2col (tiled)
    ((1, 8, 9, 10), (80, 8, 3, 3), 1, 1, 1),        # im2col with the packed GEMM (> 64 rows)
    ((2, 8, 10, 11), (8, 1, 3, 3), 1, 8, 1),        # depthwise 3x3
    ((1, 6, 13, 12), (12, 1, 3, 3), 1, 6, 2),       # depthwise, stride 2, multiplier 2
    ((2, 8, 10, 10), (12, 8, 1, 1), 0, 1, 1),       # pointwise
    ((1, 24, 9, 9), (96, 24, 1, 1), 0, 1, 2),       # pointwise, stride 2, packed GEMM
    ((2, 3, 15, 13), (10, 3, 5, 5), 2, 1, 1),       # >= 25 taps: the no-im2col rows path
    ((1, 3, 20, 21), (12, 3, 7, 7), 3, 1, 2),       # the 7x7 stride-2 stem shape
]


@pytest.mark.kernels
@pytest.mark.parametrize("case", EPILOGUE_CASES)
@pytest.mark.parametrize("forced", [None, "im2col", "winograd", "depthwise", "pointwise"])
def test_relu6_epilogue_matches_reference(isa, case, forced):
    xs, ws, pad, groups, stride = case
    rng = np.random.default_rng(11)
    x = (3 * rng.standard_normal(xs)).astype(np.float32)
    # NaN stays NaN through the clamp, as in torch.relu6. (Winograd spreads a NaN
    # over its whole 4x4 output tile, so it is checked on the other families.)
    nan_check = forced in ("im2col", "depthwise", "pointwise")
    if nan_check:
        x[0, 0, 0, :3] = np.nan
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    want = np.clip(ref_conv2d(x, w, b, (stride, stride), (pad,) * 4, (1, 1), groups), 0, 6)
    with conv_backend.force_algorithm(forced), pve.no_grad():
        got = F._conv2d(x, w, b, stride, pad, 1, groups, relu=True, relu_max=6.0).numpy()
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.nanmax(got) <= 6.0 and np.nanmin(got) >= 0.0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_relu6_epilogue_gradient_masks_both_ends():
    rng = np.random.default_rng(5)
    x = pve.tensor((3 * rng.standard_normal((2, 4, 7, 7))).astype(np.float32),
                   requires_grad=True)
    w = pve.tensor(rng.standard_normal((6, 4, 3, 3)).astype(np.float32), requires_grad=True)
    fused = F._conv2d(x, w, None, 1, 1, 1, 1, relu=True, relu_max=6.0)
    gy = rng.standard_normal(fused.shape).astype(np.float32)
    (fused * pve.tensor(gy)).sum().backward()
    gx_fused, gw_fused = x.grad.numpy().copy(), w.grad.numpy().copy()
    x.grad = None
    w.grad = None
    plain = F.relu6(F.conv2d(x, w, padding=1))
    (plain * pve.tensor(gy)).sum().backward()
    np.testing.assert_allclose(fused.detach().numpy(), plain.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(gx_fused, x.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gw_fused, w.grad.numpy(), rtol=1e-5, atol=1e-4)


def test_relu_max_must_be_non_negative():
    x = np.zeros((1, 2, 4, 4), np.float32)
    w = np.zeros((2, 2, 1, 1), np.float32)
    with pytest.raises(ValueError, match="relu_max"):
        pve._C.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 1, (4, 4), "pointwise", True,
                              None, -1.0)


def _np(t):
    return t.detach().numpy().astype(np.float64)


def _numpy_chain(x, conv, bn, act):
    y = ref_conv2d(x, _np(conv.weight), None if conv.bias is None else _np(conv.bias),
                   conv.stride, (conv.padding[0],) * 2 + (conv.padding[1],) * 2, conv.dilation,
                   conv.groups)
    if bn is not None:
        y = ref_batch_norm(y, _np(bn.running_mean), _np(bn.running_var), _np(bn.weight),
                           _np(bn.bias), bn.eps)
    if act == "relu":
        y = np.maximum(y, 0)
    elif act == "relu6":
        y = np.clip(y, 0, 6)
    return y


@pytest.mark.parametrize("with_bn", [True, False])
@pytest.mark.parametrize("act", [None, "relu", "relu6"])
@pytest.mark.parametrize("conv_args", [dict(in_channels=8, out_channels=16, kernel_size=3,
                                            padding=1, bias=False),
                                       dict(in_channels=16, out_channels=16, kernel_size=3,
                                            padding=1, groups=16),
                                       dict(in_channels=8, out_channels=24, kernel_size=1)])
def test_sequential_fuses_in_inference(with_bn, act, conv_args):
    rng = np.random.default_rng(2)
    conv = pve.nn.Conv2d(**conv_args)
    mods = [conv]
    bn = trained_bn(conv.out_channels, rng) if with_bn else None
    if bn is not None:
        mods.append(bn)
    if act is not None:
        mods.append(pve.nn.ReLU(inplace=True) if act == "relu" else pve.nn.ReLU6())
    seq = pve.nn.Sequential(*mods).eval()
    x = (2 * rng.standard_normal((2, conv.in_channels, 9, 11))).astype(np.float32)
    want = _numpy_chain(x, conv, bn, act)
    with pve.no_grad():
        fused = seq(x).numpy()
    unfused = seq(x).detach().numpy()  # autograd on: module by module
    np.testing.assert_allclose(fused, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(unfused, want, rtol=1e-4, atol=1e-4)


def test_hooks_and_training_mode_are_respected():
    rng = np.random.default_rng(3)
    conv = pve.nn.Conv2d(4, 8, 3, padding=1)
    bn = trained_bn(8, rng)
    seq = pve.nn.Sequential(conv, bn, pve.nn.ReLU()).eval()
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    calls = []
    handle = bn.register_forward_hook(lambda m, args, out: calls.append(out.shape))
    with pve.no_grad():
        seq(x)
    assert calls == [(1, 8, 6, 6)]  # a hooked module is called, not folded away
    handle.remove()
    bn.train()  # batch statistics: never folded
    with pve.no_grad():
        got = seq(x).numpy()
    y = _numpy_chain(x, conv, None, None)
    mean, var = y.mean(axis=(0, 2, 3)), y.var(axis=(0, 2, 3))
    want = np.maximum(ref_batch_norm(y, mean, var, _np(bn.weight), _np(bn.bias)), 0)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_fold_is_refreshed_when_statistics_change():
    rng = np.random.default_rng(4)
    conv = pve.nn.Conv2d(4, 8, 3, padding=1)
    bn = trained_bn(8, rng)
    seq = pve.nn.Sequential(conv, bn).eval()
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    with pve.no_grad():
        seq(x)
    # a train-mode step updates the running statistics in place
    bn.train()
    bn(pve.tensor(rng.standard_normal((4, 8, 6, 6)).astype(np.float32)))
    bn.eval()
    with pve.no_grad():
        np.testing.assert_allclose(seq(x).numpy(), _numpy_chain(x, conv, bn, None), rtol=1e-4,
                                   atol=1e-4)
    # load_state_dict, and an in-place Tensor op on a parameter
    state = {k: v.detach().numpy() * 0.5 for k, v in seq.state_dict().items()}
    state["1.num_batches_tracked"] = np.array(3, dtype=np.int64)
    seq.load_state_dict(state)
    with pve.no_grad():
        conv.weight.mul_(2.0)
    with pve.no_grad():
        np.testing.assert_allclose(seq(x).numpy(), _numpy_chain(x, conv, bn, None), rtol=1e-4,
                                   atol=1e-4)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_model_zoo_inference_is_fused_and_equal(name):
    model = pve.models.get_model(name, num_classes=10)
    rng = np.random.default_rng(6)
    randomize_bn_statistics(model, rng)  # non-trivial statistics, as after training
    model.eval()
    x = rng.standard_normal((1, 3, 64, 64)).astype(np.float32)
    unfused = model(x).detach().numpy()  # autograd on: every module runs as written
    with pve.no_grad():
        fused = model(x).numpy()
    folded = [m for m in model.modules() if isinstance(m, pve.nn.Conv2d) and m._fold is not None]
    assert len(folded) == sum(isinstance(m, pve.nn.BatchNorm2d) for m in model.modules())
    np.testing.assert_allclose(fused, unfused, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("act", [None, "relu", "relu6", "leaky"])
def test_residual_add_in_inference_equals_the_plain_expression(act):
    # ResNet blocks' `act(out + identity)`: one add + ReLU/ReLU6 kernel pass into `out`
    # under no_grad, numpy add + the module otherwise (LeakyReLU, autograd on); always the plain expression's values.
    from pyvision_engine.nn.fusion import residual_add

    module = {None: None, "relu": pve.nn.ReLU(inplace=True), "relu6": pve.nn.ReLU6(),
              "leaky": pve.nn.LeakyReLU(0.1)}[act]
    rng = np.random.default_rng(7)
    out = (4 * rng.standard_normal((2, 5, 7, 9))).astype(np.float32)
    out[0, 0, 0, 0] = np.nan
    identity = (4 * rng.standard_normal((2, 5, 7, 9))).astype(np.float32)
    s = out.astype(np.float64) + identity
    expected = {None: s, "relu": np.maximum(s, 0), "relu6": np.clip(s, 0, 6),
                "leaky": np.where(s > 0, s, 0.1 * s)}[act]
    expected[0, 0, 0, 0] = np.nan
    with pve.no_grad():
        y = residual_add(pve.tensor(out.copy()), pve.tensor(identity), module)
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6, atol=1e-6, equal_nan=True)
    y = residual_add(pve.tensor(out.copy()), pve.tensor(identity), module)  # autograd on
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-6, atol=1e-6,
                               equal_nan=True)


@pytest.mark.parametrize("act", ["relu", "relu6", None])
def test_residual_add_in_training_gives_the_plain_expression_gradients(act):
    # with autograd recording, ReLU blocks take one add + ReLU kernel pass and one
    # backward pass through the saved output; ReLU6 and no activation run as written
    from pyvision_engine.nn.fusion import residual_add

    module = {"relu": pve.nn.ReLU(inplace=True), "relu6": pve.nn.ReLU6(), None: None}[act]
    rng = np.random.default_rng(8)
    out_np = (4 * rng.standard_normal((3, 4, 6, 5))).astype(np.float32)
    id_np = (4 * rng.standard_normal((3, 4, 6, 5))).astype(np.float32)
    weights = rng.standard_normal(out_np.shape)
    s = out_np.astype(np.float64) + id_np
    expected = {"relu": np.maximum(s, 0), "relu6": np.clip(s, 0, 6), None: s}[act]
    slope = {"relu": s > 0, "relu6": (s > 0) & (s < 6), None: np.ones_like(s, bool)}[act]
    out = pve.tensor(out_np, requires_grad=True)
    identity = pve.tensor(id_np, requires_grad=True)
    y = residual_add(out * 1.0, identity, module)  # (out * 1.0: a non-leaf branch, as a BN output)
    (y * pve.tensor(weights.astype(np.float32))).sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out.grad.numpy(), weights * slope, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(identity.grad.numpy(), weights * slope, rtol=1e-6, atol=1e-6)


# (x shape, BatchNorm channels, threads): BatchNorm's fused kernel (channels split
# across threads, each channel's backward sums taken inside the previous one's
# pass) and its unfused form (fewer than 4 channels per thread), at 1 and 2 threads.
BN_RELU_CASES = [((3, 4, 9, 8), 6, 1), ((8, 4, 40, 33), 6, 2), ((8, 4, 40, 33), 12, 2)]


@pytest.mark.parametrize("act", ["relu", "relu6"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,channels,threads", BN_RELU_CASES)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_conv_bn_relu_in_training_equals_module_by_module(momentum, shape, channels, threads, affine,
                                                         act, isa):
    # training: BatchNorm2d -> ReLU runs in BatchNorm's own kernel pass, and its
    # backward applies ReLU's (recomputing y > 0 from x); outputs, every gradient
    # and the running statistics as the modules run one by one (a forward hook on
    # the ReLU disables the fusion)
    from pyvision_engine.nn.fusion import conv_bn_act

    rng = np.random.default_rng(9)
    x_np = rng.standard_normal(shape).astype(np.float32)
    out_shape = (shape[0], channels) + shape[2:]
    weights = rng.standard_normal(out_shape).astype(np.float32)
    weights[0, 0, 0, :3] = np.nan  # NaN gradients reach the kernel too
    runs = []
    previous = pve.get_num_threads()
    pve.set_num_threads(threads)
    try:
        for fused in (True, False):
            pve.manual_seed(3)
            conv = pve.nn.Conv2d(shape[1], channels, 3, padding=1)
            bn = pve.nn.BatchNorm2d(channels, momentum=momentum, affine=affine)
            relu = pve.nn.ReLU() if act == "relu" else pve.nn.ReLU6()
            if affine:
                scale = 4.0 if act == "relu6" else 1.0  # (outputs above 6 too)
                bn.weight.data[...] = (scale * rng.standard_normal(channels).astype(np.float32) if fused
                                       else runs[0][-2])
                bn.bias.data[...] = rng.standard_normal(channels).astype(np.float32) if fused else runs[0][-1]
            if not fused:
                relu.register_forward_hook(lambda *a: None)
            x = pve.tensor(x_np, requires_grad=True)
            for _ in range(2):  # two steps: the running statistics move twice
                y = conv_bn_act(conv, bn, relu, x)
            (y * pve.tensor(weights)).sum().backward()
            params = [bn.weight.grad.numpy(), bn.bias.grad.numpy(), bn.weight.detach().numpy().copy(),
                      bn.bias.detach().numpy().copy()] if affine else [None, None, None, None]
            runs.append([y.detach().numpy(), x.grad.numpy(), conv.weight.grad.numpy(),
                         bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()] + params)
    finally:
        pve.set_num_threads(previous)
    assert (runs[0][0] == 0).any() and (runs[0][0] > 0).any()
    if act == "relu6" and affine:
        assert (runs[0][0] == 6).any()
    for got, expected in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(got, expected)


def test_sequential_bn_relu_in_training_equals_module_by_module():
    # Sequential runs BatchNorm2d -> ReLU / ReLU6 (plain, inplace or not) as one
    # kernel pass each way in training; a hooked activation runs as a module (its
    # hook is called).
    rng = np.random.default_rng(4)
    x_np = (rng.standard_normal((4, 3, 11, 10)) * 4).astype(np.float32)
    weights = rng.standard_normal((4, 5, 11, 10)).astype(np.float32)
    runs, calls = [], []
    for fused in (True, False):
        pve.manual_seed(5)
        net = pve.nn.Sequential(pve.nn.Conv2d(3, 4, 3, padding=1), pve.nn.BatchNorm2d(4), pve.nn.ReLU(),
                                pve.nn.Conv2d(4, 5, 3, padding=1), pve.nn.BatchNorm2d(5),
                                pve.nn.ReLU6(inplace=True))
        net[4].weight.data[...] = 4.0  # outputs above 6 too
        caps = []
        for i in (1, 4):
            bn = net[i]
            bn._normalize = (lambda x, relu_max=None, bn=bn:
                             caps.append(relu_max) or type(bn)._normalize(bn, x, relu_max))
        if not fused:
            for i in (2, 5):
                net[i].register_forward_hook(lambda *a: calls.append(1))
        x = pve.tensor(x_np, requires_grad=True)
        y = net(x)
        assert caps == ([np.inf, 6.0] if fused else [None, None])
        (y * pve.tensor(weights)).sum().backward()
        runs.append([y.detach().numpy(), x.grad.numpy()] +
                    [p.grad.numpy() for p in net.parameters()] +
                    [b.numpy().copy() for b in net.buffers()])
    assert len(calls) == 2
    assert (runs[0][0] == 0).any() and (runs[0][0] == 6).any() and ((runs[0][0] > 0) & (runs[0][0] < 6)).any()
    for got, expected in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(got, expected)
