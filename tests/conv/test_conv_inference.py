"""Eval-mode fast path: packed (Winograd, phase, pointwise) weights are reused, and never stale;
Conv2d + BatchNorm2d (+ ReLU) folded into one convolution."""

from __future__ import annotations

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import _C
from pyvision_engine.backends import conv as conv_backend
from pyvision_engine.nn import functional as F
from pyvision_engine.nn.module import Module
from pyvision_engine.nn.parameter import Parameter


def _reference(m, x):
    return F.conv2d(x, m.weight.detach(), None if m.bias is None else m.bias.detach(),
                    m.stride, m.padding, m.dilation, m.groups).numpy()


def _eval_out(m, x):
    with pve.no_grad():
        return m(x).numpy().copy()


# label -> (family, kernel size, stride, padding)
PACKING_LAYERS = {"winograd": ("winograd", 3, 1, 1), "phase": ("phase", 3, 2, 1),
                  "pointwise": ("pointwise", 1, 1, 0), "pointwise_strided": ("pointwise", 1, 2, 0)}


@pytest.fixture(params=list(PACKING_LAYERS))
def packing_layer(request):
    """An eval-mode layer whose inference packs its weights: 3x3 stride 1 runs
    Winograd, 3x3 stride 2 runs phase, 1x1 (stride 1 or 2) pointwise."""
    family, kernel, stride, padding = PACKING_LAYERS[request.param]
    if family == "phase" and _C.active_isa() not in conv_backend.PHASE_ISAS:
        pytest.skip(f"the rule keeps im2col at {_C.active_isa()}")
    pve.manual_seed(0)
    m = pve.nn.Conv2d(16, 24, kernel, stride=stride, padding=padding).eval()
    x = np.random.default_rng(0).standard_normal((2, 16, 10, 10)).astype(np.float32)
    with pve.no_grad():
        m(x)
    assert [plan[1:] for plan in m._plans.values()] == [(family, True)]
    m._drop_pack()
    return m, x


def test_pack_is_built_once_and_reused(packing_layer):
    m, x = packing_layer
    y1 = _eval_out(m, x)
    pack = m._pack
    assert pack is not None
    y2 = _eval_out(m, x)
    assert m._pack is pack  # not re-packed
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_allclose(y1, _reference(m, x), rtol=1e-5, atol=1e-5)
    # training mode / grad mode never use (or keep) the pack
    m.train()
    assert m._pack is None
    m.eval()
    m(x)
    assert m._pack is None


def test_grouped_pointwise_does_not_pack():
    # the packed panels are for groups 1; a grouped 1x1 layer runs on its plain weights
    pve.manual_seed(0)
    m = pve.nn.Conv2d(16, 24, 1, groups=2).eval()
    x = np.random.default_rng(1).standard_normal((2, 16, 7, 7)).astype(np.float32)
    y = _eval_out(m, x)
    assert [plan[1:] for plan in m._plans.values()] == [("pointwise", False)]
    assert m._pack is None
    np.testing.assert_allclose(y, _reference(m, x), rtol=1e-5, atol=1e-5)


def test_no_stale_pack_when_a_new_weight_reuses_the_old_ones_id_and_address(packing_layer):
    """A replaced weight's successor can get the freed tensor's id and memory address with
    the same version stamp: the pack must still be the new weight's. Simulated by giving
    the stored pack the new weight's key (what such a reuse looks like to the cache)."""
    from pyvision_engine.nn.conv import _tensor_key

    m, x = packing_layer
    _eval_out(m, x)
    (key, packed, *rest) = m._pack
    m.weight = Parameter(m.weight.detach().numpy() * -3.0)
    forged = (key[:2] + _tensor_key(m.weight), packed, *rest)
    object.__setattr__(m, "_fast", None)  # (the per-call record also watches the old tensor)
    object.__setattr__(m, "_pack", forged)
    np.testing.assert_allclose(_eval_out(m, x), _reference(m, x), rtol=1e-5, atol=1e-5)


def test_no_stale_pack_after_load_state_dict(packing_layer):
    m, x = packing_layer
    _eval_out(m, x)
    state = {k: v.detach().numpy() * 2 for k, v in m.state_dict().items()}
    m.load_state_dict(state)
    np.testing.assert_allclose(_eval_out(m, x), _reference(m, x), rtol=1e-5, atol=1e-5)


def test_no_stale_pack_after_in_place_update(packing_layer):
    m, x = packing_layer
    before = _eval_out(m, x)
    with pve.no_grad():
        m.weight.sub_(0.1 * np.ones(m.weight.shape, np.float32))  # an SGD-like step
    after = _eval_out(m, x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _reference(m, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("in_place", [
    lambda w: pve.nn.functional.relu_(w),
    lambda w: pve.nn.functional.leaky_relu(w, 0.5, inplace=True),
    lambda w: pve.nn.functional.dropout(w, 0.5, True, inplace=True),
])
def test_no_stale_pack_after_in_place_functional(packing_layer, in_place):
    # functional in-place ops (activations, dropout) bump the version like Tensor's own
    m, x = packing_layer
    before = _eval_out(m, x)
    with pve.no_grad():
        in_place(m.weight)
    after = _eval_out(m, x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _reference(m, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("edit", [
    lambda m: m.weight.data.mul_(2),                      # torch's .data idiom
    lambda m: m.weight.detach().zero_(),                  # a detached alias, in place
    lambda m: m.weight.detach().numpy().__imul__(2),      # a numpy view of it
    lambda m: np.asarray(m.weight.detach()).__iadd__(1),  # np.asarray of it
    lambda m: m.bias.detach().fill_(3.0),
    lambda m: m.weight.data.view(-1).mul_(2),             # a reshaped view of it
    lambda m: m.weight.data[0].zero_(),                   # an indexed view of it
], ids=["data.mul_", "detach.zero_", "numpy view", "np.asarray", "detach.fill_", "view.mul_",
        "index.zero_"])
def test_no_stale_pack_after_writes_through_aliases(packing_layer, edit):
    # detach() / .data share the weight's record of changes (torch's shared version
    # counter); numpy views count while alive and when released
    m, x = packing_layer
    before = _eval_out(m, x)
    edit(m)
    after = _eval_out(m, x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _reference(m, x), rtol=1e-5, atol=1e-5)


def test_no_stale_pack_while_a_numpy_view_is_held(packing_layer):
    m, x = packing_layer
    view = m.weight.detach().numpy()
    _eval_out(m, x)
    for scale in (2.0, 0.5):
        view *= scale  # no Tensor call at all between the two runs
        np.testing.assert_allclose(_eval_out(m, x), _reference(m, x), rtol=1e-5, atol=1e-5)
    del view
    stamp = m.weight._changes()
    assert m.weight._changes() == stamp  # released: the pack is reused again


def test_no_stale_folded_batch_norm_after_numpy_write():
    pve.manual_seed(0)
    seq = pve.nn.Sequential(pve.nn.Conv2d(8, 8, 3, padding=1), pve.nn.BatchNorm2d(8),
                            pve.nn.ReLU()).eval()
    x = np.random.default_rng(2).standard_normal((1, 8, 12, 12)).astype(np.float32)
    with pve.no_grad():
        seq(x)
        seq[1].running_var.numpy()[:] = 100.0
        got = seq(x).numpy()
    want = seq(x).detach().numpy()  # (with grad: no fused or cached path)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_no_stale_pack_after_kernel_update_that_bumps_version(packing_layer):
    # Optimizer kernels write parameters in place and call _bump_version().
    m, x = packing_layer
    _eval_out(m, x)
    m.weight._data *= 0.5
    m.weight._bump_version()
    np.testing.assert_allclose(_eval_out(m, x), _reference(m, x), rtol=1e-5, atol=1e-5)


def test_no_stale_pack_after_reassigning_or_reinit(packing_layer):
    m, x = packing_layer
    _eval_out(m, x)
    m.weight = Parameter(np.ones(m.weight.shape, np.float32))
    np.testing.assert_allclose(_eval_out(m, x), _reference(m, x), rtol=1e-5, atol=1e-5)
    m.weight.data = np.full(m.weight.shape, 0.25, np.float32)
    np.testing.assert_allclose(_eval_out(m, x), _reference(m, x), rtol=1e-5, atol=1e-5)
    m.reset_parameters()
    np.testing.assert_allclose(_eval_out(m, x), _reference(m, x), rtol=1e-5, atol=1e-5)


def test_pack_follows_isa_switch(packing_layer):
    m, x = packing_layer
    want = _reference(m, x)
    previous = _C.active_isa()
    try:
        for isa in _C.supported_isas():
            _C.set_isa(isa)
            np.testing.assert_allclose(_eval_out(m, x), want, rtol=1e-5, atol=1e-5)
    finally:
        _C.set_isa(previous)


class FakeBatchNorm2d(Module):
    """Stand-in with BatchNorm2d's eval-mode attributes (the real layer lives elsewhere)."""

    def __init__(self, c, rng):
        super().__init__()
        self.weight = Parameter(rng.uniform(0.5, 1.5, c).astype(np.float32))
        self.bias = Parameter(rng.standard_normal(c).astype(np.float32))
        self.register_buffer("running_mean", pve.tensor(rng.standard_normal(c).astype(np.float32)))
        self.register_buffer("running_var", pve.tensor(rng.uniform(0.5, 2, c).astype(np.float32)))
        self.eps = 1e-5

    def forward(self, x):
        x = x.numpy() if hasattr(x, "numpy") else x
        scale = self.weight.detach().numpy() / np.sqrt(self.running_var.numpy() + self.eps)
        shift = self.bias.detach().numpy() - self.running_mean.numpy() * scale
        return pve.tensor(x * scale[None, :, None, None] + shift[None, :, None, None])


@pytest.mark.parametrize("conv_args", [dict(in_channels=16, out_channels=16, kernel_size=3, padding=1),
                                       dict(in_channels=8, out_channels=8, kernel_size=3, padding=1,
                                            groups=8, bias=False),
                                       dict(in_channels=8, out_channels=12, kernel_size=1, stride=2)])
@pytest.mark.parametrize("relu", [False, True])
def test_batch_norm_folding(conv_args, relu):
    rng = np.random.default_rng(1)
    conv = pve.nn.Conv2d(**conv_args).eval()
    bn = FakeBatchNorm2d(conv.out_channels, rng).eval()
    x = rng.standard_normal((2, conv.in_channels, 9, 9)).astype(np.float32)
    with pve.no_grad():
        want = bn(conv(x)).numpy()
    if relu:
        want = np.maximum(want, 0)
    fused = pve.nn.fuse_conv_bn_eval(conv, bn, relu=relu)
    np.testing.assert_allclose(_eval_out(fused, x), want, rtol=1e-4, atol=1e-4)
    live = pve.nn.ConvBn2d(conv, bn, relu=relu).eval()
    np.testing.assert_allclose(_eval_out(live, x), want, rtol=1e-4, atol=1e-4)
    # a statistic changes (as after more training): the live module re-folds
    bn.running_mean._data += 1.0
    bn.running_mean._bump_version()
    with pve.no_grad():
        want2 = bn(conv(x)).numpy()
    if relu:
        want2 = np.maximum(want2, 0)
    np.testing.assert_allclose(_eval_out(live, x), want2, rtol=1e-4, atol=1e-4)


def test_fusion_needs_eval_mode():
    conv = pve.nn.Conv2d(4, 4, 3)
    bn = FakeBatchNorm2d(4, np.random.default_rng(0))
    with pytest.raises(ValueError, match="eval"):
        pve.nn.fuse_conv_bn_eval(conv, bn)


@pytest.mark.parametrize("relu", [False, True])
def test_real_batch_norm_folding_and_stale_statistics(relu):
    rng = np.random.default_rng(4)
    conv = pve.nn.Conv2d(16, 24, 3, padding=1)
    bn = pve.nn.BatchNorm2d(24)
    x = rng.standard_normal((4, 16, 10, 10)).astype(np.float32)
    for _ in range(3):  # a few training steps give BN real running statistics
        bn(conv(x))
    conv.eval()
    bn.eval()
    def unfused(x):  # module by module: the reference for every folded path
        with pve.no_grad():
            y = bn(conv(x)).numpy().copy()
        return np.maximum(y, 0) if relu else y

    seq = pve.nn.Sequential(conv, bn, pve.nn.ReLU()) if relu else pve.nn.Sequential(conv, bn)
    want = unfused(x)
    np.testing.assert_allclose(_eval_out(seq, x), want, rtol=1e-4, atol=1e-4)
    fused = pve.nn.fuse_conv_bn_eval(conv, bn, relu=relu)
    np.testing.assert_allclose(_eval_out(fused, x), want, rtol=1e-4, atol=1e-4)
    live = pve.nn.ConvBn2d(conv, bn, relu=relu).eval()
    np.testing.assert_allclose(_eval_out(live, x), want, rtol=1e-4, atol=1e-4)
    bn.reset_running_stats()  # writes the buffers in place, in eval mode
    want2 = unfused(x)
    np.testing.assert_allclose(_eval_out(live, x), want2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_eval_out(seq, x), want2, rtol=1e-4, atol=1e-4)
    live.train()  # training mode runs the three modules as written
    y = live(x)
    assert y.shape == (4, 24, 10, 10)


@pytest.mark.parametrize("make_optimizer", [
    lambda params: pve.optim.SGD(params, lr=0.1, momentum=0.9),
    lambda params: pve.optim.Adam(params, lr=0.01),
    lambda params: pve.optim.Lookahead(pve.optim.SGD(params, lr=0.1), k=1),
])
def test_no_stale_pack_after_optimizer_step(packing_layer, make_optimizer):
    # Fine-tuning in eval mode: the step runs between two eval-mode inferences.
    m, x = packing_layer
    opt = make_optimizer(m.parameters())
    before = _eval_out(m, x)
    y = m(x)  # eval mode, grad enabled: no pack is used for the graph
    (y * y).sum().backward()
    opt.step()
    after = _eval_out(m, x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _reference(m, x), rtol=1e-5, atol=1e-5)
