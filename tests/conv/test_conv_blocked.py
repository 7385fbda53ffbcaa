"""nChw16c inference kernels (csrc/kernels/conv/conv2d_blocked.cpp) and the blocked runs
of nn/blocked.py, against the float64 numpy direct convolution in tests/reference, at
every ISA level."""

from __future__ import annotations

import math

import numpy as np
import pytest

import pyvision_engine as pve
from pyvision_engine import _C, nn
from pyvision_engine.nn import blocked, container, fusion
from pyvision_engine.models.mobilenet import InvertedResidual
from conv.conv_cases import num_threads
from reference.conv_reference import conv2d_forward as reference_conv

pytestmark = pytest.mark.kernels


@pytest.fixture(autouse=True)
def blocked_at_every_isa(monkeypatch):
    """Blocked runs are skipped at the scalar level for speed; tested there all the same."""
    monkeypatch.setattr(blocked, "SLOW_ISAS", set())


def numpy_blocked(x: np.ndarray) -> np.ndarray:
    """The nChw16c layout written with numpy (plus the kernels' slack), as the reference."""
    n, c, h, w = x.shape
    cp = -(-c // 16) * 16
    padded = np.zeros((n, cp, h, w), np.float32)
    padded[:, :c] = x
    body = padded.reshape(n, cp // 16, 16, h, w).transpose(0, 1, 3, 4, 2).ravel()
    return np.concatenate([body, np.zeros(512, np.float32)])


def act(y: np.ndarray, relu_max) -> np.ndarray:
    return y if relu_max is None else np.clip(y, 0.0, relu_max)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 15, 3, 5), (1, 16, 4, 4), (3, 17, 7, 2),
                                   (1, 40, 9, 11)])
def test_reorder_matches_numpy_layout_and_round_trips(isa, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    xb = _C.conv2d_blocked_from_nchw(x)
    np.testing.assert_array_equal(xb, numpy_blocked(x))
    np.testing.assert_array_equal(_C.conv2d_blocked_to_nchw(xb, list(shape)), x)


@pytest.mark.parametrize("n,c,k,h,w", [(1, 16, 16, 1, 1), (2, 3, 5, 3, 7), (1, 24, 144, 5, 5),
                                       (1, 96, 40, 7, 7), (3, 33, 70, 2, 13),
                                       (1, 320, 1280, 2, 3), (1, 8, 17, 29, 31),
                                       # planes of 7, 14, 49 and 56 pixels (AVX-512: tiles of
                                       # 7 pixels) with 1, 4, 5 and 7 output blocks
                                       (2, 20, 16, 1, 7), (1, 40, 64, 7, 2), (2, 160, 80, 7, 7),
                                       (1, 17, 112, 8, 7),
                                       # a last block of <= 8 channels (paired on AVX-512),
                                       # alone or after full ones, odd input channels
                                       (1, 144, 24, 8, 7), (2, 96, 8, 7, 7), (1, 31, 24, 5, 5),
                                       (1, 7, 56, 3, 3)])
@pytest.mark.parametrize("relu_max,residual", [(None, False), (math.inf, False), (6.0, False),
                                               (None, True), (6.0, True)])
def test_pointwise_matches_reference(isa, n, c, k, h, w, relu_max, residual):
    rng = np.random.default_rng(n * 1000 + c * 10 + k)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((k, c, 1, 1)).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    res = rng.standard_normal((n, k, h, w)).astype(np.float32)
    expect = reference_conv(x, weight, bias, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    if residual:
        expect = expect + res
    expect = act(expect, relu_max)
    wpack, bpack = blocked.pack_pointwise(weight, bias)
    yb = _C.conv2d_blocked_pointwise(
        _C.conv2d_blocked_from_nchw(x), [n, c, h, w], wpack, bpack, k,
        _C.conv2d_blocked_from_nchw(res) if residual else None, relu_max is not None,
        math.inf if relu_max is None else relu_max)
    np.testing.assert_allclose(_C.conv2d_blocked_to_nchw(yb, [n, k, h, w]), expect,
                               rtol=1e-4, atol=1e-4 * math.sqrt(c))
    # the padded channels stay zero, so the next blocked layer can read them
    np.testing.assert_array_equal(yb[:-512], numpy_blocked(
        _C.conv2d_blocked_to_nchw(yb, [n, k, h, w]))[:-512])


@pytest.mark.parametrize("c,h,w,kernel,stride,pads,dilation", [
    (16, 7, 7, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (32, 12, 12, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (24, 11, 9, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    (17, 13, 21, (5, 5), (1, 1), (2, 2, 2, 2), (1, 1)),
    (40, 9, 10, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1)),
    (5, 8, 8, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),
    (20, 6, 17, (1, 7), (1, 3), (0, 0, 3, 3), (1, 1)),
    (3, 5, 5, (2, 4), (3, 1), (0, 1, 2, 1), (2, 1)),
    (16, 1, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (16, 4, 4, (1, 1), (1, 1), (3, 3, 3, 3), (1, 1)),   # outputs wholly in the padding
    (48, 30, 30, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1)),
])
@pytest.mark.parametrize("relu_max", [None, 6.0])
def test_depthwise_matches_reference(isa, c, h, w, kernel, stride, pads, dilation, relu_max):
    rng = np.random.default_rng(c * 100 + h)
    n = 2
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((c, 1) + kernel).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    expect = act(reference_conv(x, weight, bias, stride, pads, dilation, c), relu_max)
    out = expect.shape[2:]
    wpack, bpack = blocked.pack_depthwise(weight, bias)
    yb = _C.conv2d_blocked_depthwise(
        _C.conv2d_blocked_from_nchw(x), [n, c, h, w], wpack, bpack, stride, (pads[0], pads[2]),
        dilation, out, relu_max is not None, math.inf if relu_max is None else relu_max)
    np.testing.assert_allclose(_C.conv2d_blocked_to_nchw(yb, [n, c] + list(out)), expect,
                               rtol=1e-5, atol=1e-5)


def test_nan_propagates_through_the_relu_clamp(isa):
    x = np.zeros((1, 16, 3, 3), np.float32)
    x[0, 2, 1, 1] = np.nan
    wpack, bpack = blocked.pack_depthwise(np.ones((16, 1, 3, 3), np.float32), None)
    yb = _C.conv2d_blocked_depthwise(_C.conv2d_blocked_from_nchw(x), [1, 16, 3, 3], wpack, bpack,
                                     (1, 1), (1, 1), (1, 1), (3, 3), True, 6.0)
    y = _C.conv2d_blocked_to_nchw(yb, [1, 16, 3, 3])
    assert np.isnan(y[0, 2]).all() and not np.isnan(np.delete(y, 2, axis=1)).any()


def test_bindings_reject_mismatched_buffers():
    x = np.zeros((1, 20, 4, 4), np.float32)
    xb = _C.conv2d_blocked_from_nchw(x)
    wpack, bpack = blocked.pack_pointwise(np.zeros((8, 20, 1, 1), np.float32), None)
    with pytest.raises(ValueError, match="floats"):
        _C.conv2d_blocked_pointwise(xb[:-1], [1, 20, 4, 4], wpack, bpack, 8)
    with pytest.raises(ValueError, match="packed weight"):
        _C.conv2d_blocked_pointwise(xb, [1, 20, 4, 4], wpack[:, :16], bpack, 8)
    with pytest.raises(ValueError, match="residual"):
        _C.conv2d_blocked_pointwise(xb, [1, 20, 4, 4], wpack, bpack, 8, residual=xb)
    with pytest.raises(ValueError, match="shape"):
        _C.conv2d_blocked_to_nchw(xb, [1, 20, 4])
    dw, db = blocked.pack_depthwise(np.zeros((20, 1, 3, 3), np.float32), None)
    with pytest.raises(ValueError, match="output size"):
        _C.conv2d_blocked_depthwise(xb, [1, 20, 4, 4], dw, db, (1, 1), (1, 1), (1, 1), (0, 4))
    with pytest.raises(ValueError, match="packed weight"):
        _C.conv2d_blocked_depthwise(xb, [1, 20, 4, 4], dw[:1], db, (1, 1), (1, 1), (1, 1), (4, 4))


# ------------------------------------------------------------- blocked runs
def _randomize_batch_norms(model: nn.Module, rng: np.random.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean._data[:] = rng.normal(0, 0.2, m.num_features)
            m.running_var._data[:] = rng.uniform(0.5, 1.5, m.num_features)
            m.weight._data[:] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias._data[:] = rng.normal(0, 0.2, m.num_features)


def _module_by_module(model: nn.Module, x: pve.Tensor, monkeypatch) -> np.ndarray:
    """The same forward module by module: Sequential without runs or fusion, no folding."""
    def plain(modules, x, owner=None):
        for module in modules:
            x = module(x)
        return x

    with monkeypatch.context() as m:
        m.setattr(container, "run_sequence", plain)
        m.setattr(fusion, "_inference", lambda: False)
        with pve.no_grad():
            return model(x).numpy()


@pytest.mark.parametrize("threads", [1, 2])
def test_mobilenet_v2_blocked_equals_module_by_module(isa, threads, monkeypatch):
    """At 64x48 the early blocks run fused in bands and the small late ones (expanded
    activations under 512 KiB, or too few bands to share) as three ops each."""
    rng = np.random.default_rng(0)
    model = pve.models.mobilenet_v2(num_classes=10).eval()
    _randomize_batch_norms(model, rng)
    x = pve.tensor(rng.standard_normal((2, 3, 64, 48)).astype(np.float32))
    calls = []
    real = blocked.run
    monkeypatch.setattr(blocked, "run",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    with num_threads(threads), pve.no_grad():
        y = model(x).numpy()
    assert calls, "the blocked path did not run"
    expect = _module_by_module(model, x, monkeypatch)
    np.testing.assert_allclose(y, expect, rtol=1e-4, atol=1e-4 * np.abs(expect).max())


@pytest.mark.parametrize("threads", [1, 2])
def test_inverted_residuals_fused_in_bands_equal_module_by_module(isa, threads, monkeypatch):
    """Blocks with and without expansion, with and without the residual, stride 1 and 2,
    each run fused in 2-4 row bands per image (192-768 KiB of expanded rows each)."""
    rng = np.random.default_rng(4)
    model = nn.Sequential(nn.Conv2d(16, 64, 1),
                          InvertedResidual(64, 64, 1, 1), InvertedResidual(64, 16, 1, 1),
                          InvertedResidual(16, 16, 1, 6), InvertedResidual(16, 24, 2, 6),
                          InvertedResidual(24, 24, 1, 6)).eval()
    _randomize_batch_norms(model, rng)
    x = pve.tensor(rng.standard_normal((1, 16, 70, 90)).astype(np.float32))
    with num_threads(threads), pve.no_grad():
        y = model(x).numpy()
    expect = _module_by_module(model, x, monkeypatch)
    np.testing.assert_allclose(y, expect, rtol=1e-4, atol=1e-4 * np.abs(expect).max())


def test_blocked_run_in_a_sequential_with_other_layers(isa, monkeypatch):
    """A hand-built Sequential: dense conv (NCHW), then a blocked run (pointwise, depthwise
    with dilation and ReLU6, BatchNorm folded), then a pooling layer that ends it."""
    rng = np.random.default_rng(1)
    model = nn.Sequential(
        nn.Conv2d(3, 20, 3, padding=1), nn.ReLU(),
        nn.Conv2d(20, 36, 1), nn.BatchNorm2d(36), nn.ReLU6(),
        nn.Conv2d(36, 36, 5, stride=2, padding=4, dilation=2, groups=36, bias=False),
        nn.BatchNorm2d(36), nn.ReLU(),
        nn.Sequential(nn.Conv2d(36, 24, 1, bias=False), nn.BatchNorm2d(24)),
        nn.MaxPool2d(2), nn.Conv2d(24, 24, 3, groups=24)).eval()
    _randomize_batch_norms(model, rng)
    x = pve.tensor(rng.standard_normal((3, 3, 19, 23)).astype(np.float32))
    units, end = blocked.blocked_run(list(model), 2)
    assert end == 9 and blocked.worth_blocking(units)
    with pve.no_grad():
        y = model(x).numpy()
    np.testing.assert_allclose(y, _module_by_module(model, x, monkeypatch), rtol=1e-4, atol=1e-4)


def test_what_does_not_run_blocked():
    def first_unit(*mods):
        return blocked.blocked_run(list(mods), 0)[1]

    dw = nn.Conv2d(8, 8, 3, groups=8).eval()
    assert first_unit(dw) == 1
    assert first_unit(nn.Conv2d(8, 8, 3).eval()) == 0                       # dense 3x3
    assert first_unit(nn.Conv2d(8, 8, 1, stride=2).eval()) == 0             # strided 1x1
    assert first_unit(nn.Conv2d(8, 16, 3, groups=8).eval()) == 0            # multiplier 2
    assert first_unit(nn.Conv2d(8, 8, 3, groups=8, padding=1, padding_mode="reflect").eval()) == 0
    assert first_unit(nn.Conv2d(8, 8, 3, groups=8)) == 0                    # training mode
    hooked = nn.Conv2d(8, 8, 3, groups=8).eval()
    hooked.register_forward_hook(lambda *a: None)
    assert first_unit(hooked) == 0
    assert first_unit(nn.Sequential(dw, nn.Conv2d(8, 8, 3)).eval()) == 0   # all or nothing
    # a run without a depthwise convolution stays NCHW
    assert not blocked.worth_blocking(blocked.blocked_run([nn.Conv2d(8, 8, 1).eval()], 0)[0])


def test_no_blocked_runs_at_the_slow_isa_levels(monkeypatch):
    units = blocked.blocked_run([nn.Conv2d(8, 8, 3, groups=8).eval()], 0)[0]
    assert blocked.worth_blocking(units)
    monkeypatch.setattr(blocked, "SLOW_ISAS", {_C.active_isa()})
    assert not blocked.worth_blocking(units)


def test_blocked_run_reports_shape_errors_like_the_nchw_path():
    model = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 4, 1)).eval()
    x = pve.tensor(np.zeros((1, 6, 5, 5), np.float32))
    with pve.no_grad(), pytest.raises(ValueError, match=r"Conv2d\(8, 8.*expected input with 8"):
        model(x)


def test_weights_changed_in_place_are_repacked():
    rng = np.random.default_rng(2)
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.Conv2d(4, 6, 1)).eval()
    x = pve.tensor(rng.standard_normal((1, 4, 6, 6)).astype(np.float32))
    with pve.no_grad():
        model(x)
        model[1].weight.mul_(2.0)
        model[0].bias.add_(1.0)
        y = model(x).numpy()
    w0, b0 = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    w1, b1 = model[1].weight.detach().numpy(), model[1].bias.detach().numpy()
    mid = reference_conv(x.numpy(), w0, b0, (1, 1), (1, 1, 1, 1), (1, 1), 4)
    expect = reference_conv(mid.astype(np.float32), w1, b1, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n,c,k,h,w,kernel,stride,pads,dilation", [
    (1, 3, 32, 23, 19, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),     # MobileNetV2's stem, odd sizes
    (2, 3, 64, 30, 30, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1)),     # ResNet's stem
    (1, 1, 20, 9, 12, (5, 3), (1, 2), (2, 2, 0, 0), (1, 2)),
    (3, 4, 8, 6, 5, (3, 3), (1, 1), (3, 3, 3, 3), (1, 1)),        # windows wholly in the padding
    (1, 2, 72, 11, 40, (1, 1), (3, 1), (0, 0, 0, 0), (1, 1)),
])
@pytest.mark.parametrize("relu_max", [None, 6.0])
def test_dense_nchw_matches_reference(isa, n, c, k, h, w, kernel, stride, pads, dilation, relu_max):
    rng = np.random.default_rng(k * 7 + h)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    weight = rng.standard_normal((k, c) + kernel).astype(np.float32)
    bias = rng.standard_normal(k).astype(np.float32)
    expect = act(reference_conv(x, weight, bias, stride, pads, dilation, 1), relu_max)
    out = expect.shape[2:]
    wpack, bpack = blocked.pack_dense(weight, bias)
    yb = _C.conv2d_blocked_dense_nchw(x, wpack, bpack, k, stride, (pads[0], pads[2]), dilation,
                                      out, relu_max is not None,
                                      math.inf if relu_max is None else relu_max)
    np.testing.assert_allclose(_C.conv2d_blocked_to_nchw(yb, [n, k] + list(out)), expect,
                               rtol=1e-4, atol=1e-4)


def test_an_image_stem_starts_a_run_but_only_as_its_first_layer():
    stem = nn.Conv2d(3, 16, 3, stride=2, padding=1).eval()
    dw = nn.Conv2d(16, 16, 3, padding=1, groups=16).eval()
    units, end = blocked.blocked_run([stem, nn.ReLU6(), dw], 0)
    assert end == 3 and [u.kind for u in units] == ["dense_nchw", "depthwise"]
    # after a blocked layer the input is no longer NCHW: the run stops there
    assert blocked.blocked_run([dw, stem], 0)[1] == 1
    # nested: the first layer of a Sequential that starts the run
    units, end = blocked.blocked_run([nn.Sequential(stem, nn.ReLU()).eval(), dw], 0)
    assert end == 2 and units[0].kind == "dense_nchw"
    assert blocked.blocked_run([nn.Conv2d(8, 16, 3).eval(), dw], 0)[1] == 0   # 8 channels: NCHW


def _spy_runs(monkeypatch):
    """Counts the parses of blocked runs (fusion caches them per Sequential)."""
    calls = []
    real = blocked.blocked_run
    monkeypatch.setattr(blocked, "blocked_run", lambda *a: calls.append(1) or real(*a))
    return calls


def test_runs_are_found_once_and_found_again_after_any_change(monkeypatch):
    rng = np.random.default_rng(3)
    inner = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU6())
    model = nn.Sequential(nn.Conv2d(4, 8, 1), inner, nn.Conv2d(8, 6, 1)).eval()
    x = pve.tensor(20 * rng.standard_normal((2, 4, 5, 5)).astype(np.float32))  # ReLU6 clamps
    calls = _spy_runs(monkeypatch)

    def forward():
        with pve.no_grad():
            return model(x).numpy()

    def reference():
        return _module_by_module(model, x, monkeypatch)

    y = forward()
    forward()
    assert len(calls) == 1
    # every kind of change through the Module API is seen, and the result follows it
    changes = [  # (change, whether it changes the values)
        (lambda: inner.register_forward_hook(lambda m, i, o: o * 2.0), True),  # nested hook
        (lambda: setattr(inner, "1", nn.ReLU()), True),                        # child replaced
        (lambda: inner[0].train(), False),                                     # training mode
        (lambda: inner.__delitem__(1), True),                                  # child removed
        (lambda: setattr(inner[0], "padding_mode", "reflect"), True),          # an attribute
    ]
    for change, changes_values in changes:
        before = len(calls)
        change()
        got = forward()
        assert len(calls) > before
        np.testing.assert_allclose(got, reference(), rtol=1e-5, atol=1e-5)
        assert changes_values != np.allclose(got, y)
        y = got


def test_sequence_rejects_malformed_op_lists():
    x = np.zeros((1, 8, 5, 5), np.float32)
    pw, pb = blocked.pack_pointwise(np.zeros((8, 8, 1, 1), np.float32), None)
    dw, db = blocked.pack_depthwise(np.zeros((8, 1, 3, 3), np.float32), None)
    dense, dense_b = blocked.pack_dense(np.zeros((8, 8, 3, 3), np.float32), None)
    point = ("pointwise", pw, pb, 8, False, math.inf, False)
    cases = [
        ([("spline",)], "unknown op"),
        ([("pointwise", pw, pb, 8, False, math.inf, True)], "residual without save"),
        ([("save",), point], "save without its use"),
        ([("add_saved",)], "residual without save"),
        ([point, ("dense_nchw", dense, dense_b, 8, (1, 1), (1, 1), (1, 1), (5, 5), False, 1.0)],
         "must be the first op"),
        ([("pointwise", pw, pb, 40, False, math.inf, False)], "packed weight"),   # 3 blocks
        ([("depthwise", np.concatenate([dw, dw]), db, (1, 1), (1, 1), (1, 1), (5, 5), False,
           1.0)], "packed weight"),
        ([("depthwise", dw, db, (0, 1), (1, 1), (1, 1), (5, 5), False, 1.0)], "stride"),
        ([("pointwise", pw, pb, 8, True, -1.0, False)], "relu_max"),
        ([("inverted_residual", None, ("depthwise", dw, db, (2, 2), (1, 1), (1, 1), (3, 3),
                                       True, 6.0), point, True)], "residual shape"),
    ]
    for ops, message in cases:
        with pytest.raises(ValueError, match=message):
            _C.conv2d_blocked_sequence(x, ops)
    # and a well-formed list runs
    assert _C.conv2d_blocked_sequence(x, [("save",), point[:-1] + (True,)]).shape == x.shape


def test_an_empty_batch_skips_the_blocked_run():
    model = pve.models.mobilenet_v2(num_classes=7).eval()
    with pve.no_grad():
        assert model(pve.tensor(np.zeros((0, 3, 32, 32), np.float32))).shape == (0, 7)


def test_python_threads_share_a_model_in_the_blocked_path():
    """Each calling thread has its own pool of activation buffers; the runs, packs and
    plans cached on the modules are shared. Results equal the one-thread ones."""
    import threading

    model = pve.models.mobilenet_v2(num_classes=10).eval()
    rng = np.random.default_rng(5)
    xs = [pve.tensor(rng.random((b, 3, 48, 40), dtype=np.float32)) for b in (1, 2, 3)]
    with pve.no_grad():
        expect = [model(x).numpy() for x in xs]
    bad = []

    def work(t):
        with pve.no_grad():
            for k in range(9):
                j = (t + k) % len(xs)
                if not np.allclose(model(xs[j]).numpy(), expect[j], rtol=1e-5, atol=1e-6):
                    bad.append((t, k))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_op_lists_are_reused_until_a_source_tensor_changes(monkeypatch):
    """blocked.run keeps each run's op list per input shape and rebuilds it when any
    tensor its packed weights come from changes: in place (version), by ``.data``
    assignment (a new array), a BatchNorm buffer included."""
    rng = np.random.default_rng(5)
    model = nn.Sequential(nn.Conv2d(4, 8, 1), nn.BatchNorm2d(8), nn.ReLU6(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 6, 1)).eval()
    _randomize_batch_norms(model, rng)
    x = pve.tensor(rng.standard_normal((2, 4, 5, 5)).astype(np.float32))
    builds = []
    real = blocked.units_ops
    monkeypatch.setattr(blocked, "units_ops", lambda *a: builds.append(1) or real(*a))

    def forward(inp=x):
        with pve.no_grad():
            return model(inp).numpy()

    forward()
    forward()
    assert len(builds) == 1, "the op list was not reused"
    forward(pve.tensor(rng.standard_normal((1, 4, 7, 3)).astype(np.float32)))
    assert len(builds) == 2, "a new input shape needs its own op list"
    changes = [
        lambda: model[0].weight.mul_(-1.5),
        lambda: model[1].running_mean.add_(0.3),
        lambda: setattr(model[3].weight, "data", model[3].weight.detach().numpy() * 2),
        lambda: model[4].bias.add_(1.0),
    ]
    for k, change in enumerate(changes):
        with pve.no_grad():
            change()
        y = forward()
        assert len(builds) == 3 + k
        np.testing.assert_allclose(y, _module_by_module(model, x, monkeypatch), rtol=1e-4,
                                   atol=1e-4)
