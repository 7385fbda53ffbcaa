"""The eval-mode call cache (Conv2d._fast, nn.fusion's decisions): a call like the
previous one goes straight to the kernel, and anything that would change the answer
(input shape or rank, forced algorithm, PVE_CONV_ALGORITHM, SIMD level, thread count,
weights or BatchNorm tensors changed in place or replaced, eps, train/eval, hooks,
grad mode, a residual of another shape) still takes effect, with the same errors."""

from __future__ import annotations

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import _C, nn
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import fusion

from conv.conv_cases import assert_close, num_threads, trained_bn
from reference.conv_reference import conv2d_forward as reference_conv
from reference.norm_reference import batch_norm_eval


def _np(t):
    return t.detach().numpy().astype(np.float64)


def _want(conv, bn, x, relu=True, identity=None):
    y = reference_conv(x, _np(conv.weight), None if conv.bias is None else _np(conv.bias),
                       conv.stride, (conv.padding[0],) * 2 + (conv.padding[1],) * 2,
                       conv.dilation, conv.groups)
    if bn is not None:
        y = batch_norm_eval(y, _np(bn.running_mean), _np(bn.running_var), _np(bn.weight),
                            _np(bn.bias), bn.eps)
    if identity is not None:
        y = y + identity
    return np.maximum(y, 0) if relu else y


@pytest.fixture
def layer():
    rng = np.random.default_rng(3)
    conv = nn.Conv2d(16, 24, 3, padding=1, bias=False).eval()
    bn = trained_bn(24, rng).eval()
    x = rng.standard_normal((1, 16, 9, 9)).astype(np.float32)
    return conv, bn, nn.ReLU(), pve.tensor(x), rng


def _run(conv, bn, relu, x):
    with pve.no_grad():
        return fusion.conv_bn_act(conv, bn, relu, x).numpy().copy()


def test_repeated_calls_reuse_the_recorded_call(layer, monkeypatch):
    conv, bn, relu, x, _ = layer
    first = _run(conv, bn, relu, x)
    entry = conv._fast
    assert entry is not None
    checked = []
    slow = nn.Conv2d._fused_forward_checked
    monkeypatch.setattr(nn.Conv2d, "_fused_forward_checked",
                        lambda self, *a: checked.append(1) or slow(self, *a))
    np.testing.assert_array_equal(_run(conv, bn, relu, x), first)
    with pve.no_grad():
        np.testing.assert_array_equal(conv._fused_forward(x, bn, np.inf), first)
    assert checked == [] and conv._fast is entry
    np.testing.assert_allclose(first, _want(conv, bn, x.numpy()), rtol=1e-4, atol=1e-4)


def test_input_errors_are_unchanged_with_a_warm_cache(layer):
    conv, bn, relu, x, _ = layer
    _run(conv, bn, relu, x)
    with pve.no_grad():
        conv(x)
        with pytest.raises(ValueError) as cold_channels:
            nn.Conv2d(16, 24, 3, padding=1, bias=False).eval()(np.zeros((1, 5, 9, 9), np.float32))
        with pytest.raises(ValueError) as warm_channels:
            conv(np.zeros((1, 5, 9, 9), np.float32))
        assert str(warm_channels.value) == str(cold_channels.value)
        with pytest.raises(ValueError) as warm_rank:
            conv(np.zeros((16, 9), np.float32))
        with pytest.raises(ValueError) as cold_rank:
            nn.Conv2d(16, 24, 3, padding=1, bias=False).eval()(np.zeros((16, 9), np.float32))
        assert str(warm_rank.value) == str(cold_rank.value)
        # an unbatched input is still taken, as torch does
        np.testing.assert_allclose(conv(x.numpy()[0]).numpy(), conv(x).numpy()[0],
                                   rtol=1e-6, atol=1e-6)


def _spy_algorithms(monkeypatch):
    seen = []
    real = _C.conv2d_forward

    def spy(*args, **kwargs):
        seen.append(args[8])
        return real(*args, **kwargs)

    monkeypatch.setattr(_C, "conv2d_forward", spy)
    return seen


def test_forced_algorithm_and_environment_take_effect(layer, monkeypatch):
    conv, bn, relu, x, _ = layer
    monkeypatch.delenv("PVE_CONV_ALGORITHM", raising=False)
    want = _want(conv, bn, x.numpy())
    _run(conv, bn, relu, x)
    seen = _spy_algorithms(monkeypatch)
    _run(conv, bn, relu, x)
    with conv_backend.force_algorithm("im2col"):
        np.testing.assert_allclose(_run(conv, bn, relu, x), want, rtol=1e-4, atol=1e-4)
    _run(conv, bn, relu, x)
    monkeypatch.setenv("PVE_CONV_ALGORITHM", "im2col")
    _run(conv, bn, relu, x)
    monkeypatch.setenv("PVE_CONV_ALGORITHM", "fft")
    with pytest.raises(ValueError, match="unknown convolution algorithm 'fft'"):
        _run(conv, bn, relu, x)
    monkeypatch.delenv("PVE_CONV_ALGORITHM")
    _run(conv, bn, relu, x)
    rule = seen[0]
    assert rule != "im2col"
    assert seen == [rule, "im2col", rule, "im2col", rule]


def test_isa_and_thread_changes_take_effect(layer):
    conv, bn, relu, x, _ = layer
    want = _want(conv, bn, x.numpy())
    previous = _C.active_isa()
    try:
        for isa in list(_C.supported_isas()) + [previous]:
            _C.set_isa(isa)
            for threads in (1, 2, 3):
                with num_threads(threads):
                    np.testing.assert_allclose(_run(conv, bn, relu, x), want, rtol=1e-4,
                                               atol=1e-4, err_msg=f"{isa} {threads}")
    finally:
        _C.set_isa(previous)


def test_tensor_changes_take_effect(layer):
    conv, bn, relu, x, rng = layer

    def check():  # (a stale fold or pack would be off by O(1))
        assert_close(_run(conv, bn, relu, x), _want(conv, bn, x.numpy()), "after a change")

    check()
    with pve.no_grad():
        conv.weight.mul_(-0.5)  # in place
    check()
    conv.weight.data = rng.standard_normal(conv.weight.shape).astype(np.float32)  # new array
    check()
    conv.weight = nn.Parameter(rng.standard_normal(conv.weight.shape).astype(np.float32))
    check()
    conv.bias = nn.Parameter(rng.standard_normal(24).astype(np.float32))  # a bias appears
    check()
    bn.running_var.copy_(pve.tensor(rng.uniform(0.1, 0.3, 24).astype(np.float32)))
    check()
    bn.eps = 0.5
    check()
    state = {k: v.detach().numpy() * 2 for k, v in bn.state_dict().items()}
    bn.load_state_dict(state)
    check()
    bn.train()  # a train-mode step moves the running statistics
    with pve.no_grad():
        bn(pve.tensor(rng.standard_normal((4, 24, 5, 5)).astype(np.float32)))
    bn.eval()
    check()


def test_modes_and_hooks_take_effect(layer):
    conv, bn, relu, x, _ = layer
    _run(conv, bn, relu, x)
    with pve.no_grad():
        conv(x)
    y = fusion.conv_bn_act(conv, bn, relu, x)  # autograd on: module by module
    assert y._node is not None
    conv.train()
    with pve.no_grad():
        train_y = conv(x).numpy()
    conv.eval()
    np.testing.assert_allclose(train_y, _want(conv, None, x.numpy(), relu=False), rtol=1e-4,
                               atol=1e-4)
    calls = []
    handle = bn.register_forward_hook(lambda m, args, out: calls.append(1))
    _run(conv, bn, relu, x)
    assert calls == [1]  # a hooked BatchNorm runs as a module
    handle.remove()
    _run(conv, bn, relu, x)
    assert calls == [1]
    handle = conv.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    with pve.no_grad():
        assert not conv(x).numpy().any()  # a pre-hook still sees (and replaces) the input
    handle.remove()


def test_residual_checks_with_a_warm_cache(layer):
    conv, bn, relu, x, rng = layer
    identity = rng.standard_normal((1, 24, 9, 9)).astype(np.float32)
    with pve.no_grad():
        got = fusion.conv_bn_add_act(conv, bn, x, identity, relu).numpy()
        np.testing.assert_allclose(got, _want(conv, bn, x.numpy(), identity=identity),
                                   rtol=1e-4, atol=1e-4)
        with pytest.raises(ValueError, match=r"the residual must have the output's shape "
                                             r"\(1, 24, 9, 9\), got \(1, 24, 9, 8\)"):
            fusion.conv_bn_add_act(conv, bn, x, identity[..., :8], relu)
        # a float64 identity is converted, as the plain expression would
        got = fusion.conv_bn_add_act(conv, bn, x, identity.astype(np.float64), relu).numpy()
        np.testing.assert_allclose(got, _want(conv, bn, x.numpy(), identity=identity),
                                   rtol=1e-4, atol=1e-4)


def test_sequential_fusion_follows_changes():
    rng = np.random.default_rng(9)
    conv, bn = nn.Conv2d(8, 16, 1, bias=False), trained_bn(16, rng).eval()
    seq = nn.Sequential(conv, bn, nn.ReLU()).eval()
    x = rng.standard_normal((2, 8, 5, 5)).astype(np.float32)
    with pve.no_grad():
        np.testing.assert_allclose(seq(x).numpy(), _want(conv, bn, x), rtol=1e-4, atol=1e-4)
        seq[2] = nn.Identity()  # the activation replaced: no longer clamped
        np.testing.assert_allclose(seq(x).numpy(), _want(conv, bn, x, relu=False), rtol=1e-4,
                                   atol=1e-4)
        calls = []
        bn.register_forward_hook(lambda m, args, out: calls.append(1))
        seq(x)
        assert calls == [1]
