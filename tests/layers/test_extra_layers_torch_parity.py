"""Live parity with torch for the extra layers (skipped without torch): values and
gradients (NaN and Inf included), reprs, defaults, state_dict keys and error types."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import pyvision_engine as pve  # noqa: E402

TF = torch.nn.functional
F = pve.nn.functional
rng = np.random.default_rng(5)

SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 100.0, -100.0, 88.0,
                    -88.0, 20.0, -20.0, 1e-30, -1e-30], np.float32)


def _values():
    # 256 values, specials among them: a multiple of every vector block, so torch runs
    # its vectorised kernels on all of them (its scalar tail loop, for the last few
    # elements of other lengths, differs at NaN for elu's and hardtanh's gradients;
    # the engine follows the vectorised form)
    x = np.concatenate([rng.uniform(-30, 30, 256 - 2 * len(SPECIAL)).astype(np.float32),
                        SPECIAL, SPECIAL])
    return x.reshape(1, -1)


def _both(pve_fn, torch_fn, x, g, inplace=False):
    a = pve.tensor(x, requires_grad=True)
    ya = pve_fn(a * 1.0 if inplace else a)
    ya.backward(pve.tensor(g))
    t = torch.tensor(x, requires_grad=True)
    yt = torch_fn(t * 1.0 if inplace else t)
    yt.backward(torch.tensor(g))
    return (ya.detach().numpy(), a.grad.numpy()), (yt.detach().numpy(), t.grad.numpy())


def _close(mine, theirs, rtol=2e-6, atol=1e-7, what=""):
    np.testing.assert_allclose(mine, theirs, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


ACTIVATIONS = {
    "elu": ("elu", {}), "elu_alpha": ("elu", {"alpha": 0.3}), "selu": ("selu", {}),
    "celu": ("celu", {"alpha": 1.9}), "celu_negative": ("celu", {"alpha": -0.7}),
    "hardtanh": ("hardtanh", {}), "hardtanh_range": ("hardtanh", {"min_val": -3.0, "max_val": 0.5}),
    "threshold": ("threshold", {"threshold": 0.5, "value": -2.0}),
    "softplus": ("softplus", {}), "softplus_args": ("softplus", {"beta": 2.5, "threshold": 4.0}),
    "softplus_big_threshold": ("softplus", {"beta": 1.0, "threshold": 1000.0}),
    "softplus_negative_beta": ("softplus", {"beta": -1.0, "threshold": 3.0}),
    "mish": ("mish", {}), "softsign": ("softsign", {}), "tanhshrink": ("tanhshrink", {}),
    "logsigmoid": ("logsigmoid", {}),
}
INPLACE_NAMES = ["elu", "elu_alpha", "selu", "celu", "hardtanh", "hardtanh_range", "threshold",
                 "mish"]


@pytest.mark.parametrize("case", sorted(ACTIVATIONS))
def test_activation_values_and_gradients_match_torch(case):
    name, kw = ACTIVATIONS[case]
    x = _values()
    g = rng.standard_normal(x.shape).astype(np.float32)
    with np.errstate(all="ignore"):
        (y, gx), (ty, tgx) = _both(lambda t: getattr(F, name)(t, **kw),
                                   lambda t: getattr(TF, name)(t, **kw), x, g)
    _close(y, ty, what=f"{case} forward")
    _close(gx, tgx, what=f"{case} grad")


@pytest.mark.parametrize("case", INPLACE_NAMES)
def test_inplace_activation_values_and_gradients_match_torch(case):
    name, kw = ACTIVATIONS[case]
    x = rng.uniform(-6, 6, (4, 64)).astype(np.float32)
    x[0, :len(SPECIAL)] = SPECIAL
    g = rng.standard_normal(x.shape).astype(np.float32)
    with np.errstate(all="ignore"):
        (y, gx), (ty, tgx) = _both(lambda t: getattr(F, name)(t, inplace=True, **kw),
                                   lambda t: getattr(TF, name)(t, inplace=True, **kw), x, g,
                                   inplace=True)
    _close(y, ty, what=f"{case} forward")
    _close(gx, tgx, atol=1e-6, what=f"{case} grad")  # (result-based g * (y + alpha))


@pytest.mark.parametrize("name", ["elu_", "selu_", "celu_", "hardtanh_", "threshold_"])
def test_underscore_functionals_match_torch(name):
    args = (0.1, 3.0) if name == "threshold_" else ()
    x = rng.uniform(-4, 4, (2, 9)).astype(np.float32)
    a, t = pve.tensor(x.copy()), torch.tensor(x.copy())
    ra, rt = getattr(F, name)(a, *args), getattr(TF, name)(t, *args)
    assert ra is a and rt is t
    _close(a.numpy(), t.numpy())


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
def test_softmin_and_softmax2d_match_torch(dim):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32) * 4
    x[0, 1, 2, 3] = np.nan
    g = rng.standard_normal(x.shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (y, gx), (ty, tgx) = _both(lambda t: F.softmin(t, dim), lambda t: TF.softmin(t, dim), x, g)
    _close(y, ty, rtol=1e-5, atol=1e-7)
    _close(gx, tgx, rtol=1e-5, atol=1e-6)
    (y, gx), (ty, tgx) = _both(pve.nn.Softmax2d(), torch.nn.Softmax2d(), x[1], g[1])
    _close(y, ty, rtol=1e-5, atol=1e-7)
    _close(gx, tgx, rtol=1e-5, atol=1e-6)


def _module_pairs():
    pn, tn = pve.nn, torch.nn
    return [
        (pn.ELU(), tn.ELU()), (pn.ELU(0.5, True), tn.ELU(0.5, True)), (pn.CELU(), tn.CELU()),
        (pn.CELU(2.0, inplace=True), tn.CELU(2.0, inplace=True)), (pn.SELU(), tn.SELU()),
        (pn.SELU(True), tn.SELU(True)), (pn.Hardtanh(), tn.Hardtanh()),
        (pn.Hardtanh(-2, 3, True), tn.Hardtanh(-2, 3, True)),
        (pn.Threshold(0.1, 20), tn.Threshold(0.1, 20)),
        (pn.Threshold(1, 2.5, True), tn.Threshold(1, 2.5, True)),
        (pn.Softplus(), tn.Softplus()), (pn.Softplus(2, 10), tn.Softplus(2, 10)),
        (pn.Mish(), tn.Mish()), (pn.Mish(True), tn.Mish(True)), (pn.Softsign(), tn.Softsign()),
        (pn.Tanhshrink(), tn.Tanhshrink()), (pn.LogSigmoid(), tn.LogSigmoid()),
        (pn.Softmin(), tn.Softmin()), (pn.Softmin(1), tn.Softmin(1)),
        (pn.Softmax2d(), tn.Softmax2d()),
    ]


def test_activation_reprs_defaults_and_state_match_torch():
    for mine, theirs in _module_pairs():
        assert repr(mine) == repr(theirs)
        assert list(mine.state_dict()) == list(theirs.state_dict())
        for attr in ("alpha", "inplace", "min_val", "max_val", "beta", "threshold", "value",
                     "dim"):
            if hasattr(theirs, attr):
                assert getattr(mine, attr) == getattr(theirs, attr), attr


def _error_type(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        return e
    return None


def assert_same_error(mine, theirs):
    em, et = _error_type(mine), _error_type(theirs)
    assert et is not None, "torch accepts this"
    assert em is not None, f"torch raises {type(et).__name__}: {et}; pve accepts"
    assert isinstance(em, type(et)), f"pve raised {type(em).__name__}, torch {type(et).__name__}"
    assert isinstance(em, (ValueError, TypeError)), f"{type(em).__name__} is not Value/TypeError"


def test_activation_errors_are_torchs_types():
    x = np.zeros((2, 3), np.float32)
    t = torch.zeros(2, 3)
    pairs = [
        (lambda: F.hardtanh(x, 2.0, 1.0), lambda: TF.hardtanh(t, 2.0, 1.0)),
        (lambda: pve.nn.Hardtanh(1.0, 1.0), lambda: torch.nn.Hardtanh(1.0, 1.0)),
        (lambda: F.celu(x, 0.0), lambda: TF.celu(t, 0.0)),
        (lambda: F.threshold(x, "a", 1.0), lambda: TF.threshold(t, "a", 1.0)),
        (lambda: F.softplus(x, "a"), lambda: TF.softplus(t, "a")),
        (lambda: pve.nn.Softmax2d()(np.zeros(3, np.float32)),
         lambda: torch.nn.Softmax2d()(torch.zeros(3))),
        (lambda: F.elu(pve.tensor(x, requires_grad=True), inplace=True),
         lambda: TF.elu(t.clone().requires_grad_(), inplace=True)),
    ]
    for mine, theirs in pairs:
        assert_same_error(mine, theirs)
    a = pve.tensor(np.array([-1.0, 2.0], np.float32), requires_grad=True)
    b = torch.tensor([-1.0, 2.0], requires_grad=True)
    ya, yb = F.elu(a * 1.0, -0.5, inplace=True), TF.elu(b * 1.0, -0.5, inplace=True)
    assert_same_error(lambda: ya.sum().backward(), lambda: yb.sum().backward())


# ------------------------------------------------------------------ padding, shuffles, upsampling
def _module_both(mine, theirs, x, g=None):
    g = rng.standard_normal(np.shape(mine(x))).astype(np.float32) if g is None else g
    return _both(mine, theirs, x, g)


def _wraps_into_cropped_part(pad, h, w):
    for size, (before, after) in ((w, pad[:2]), (h, pad[2:])):
        kept = size - max(-before, 0) - max(-after, 0)
        if max(before, after, 0) > kept and min(before, after) < 0:
            return True
    return False


@pytest.mark.parametrize("seed", range(40))
def test_padding_layers_match_torch(seed):
    r = np.random.default_rng(seed)
    shape = (int(r.integers(1, 3)), int(r.integers(1, 4)), int(r.integers(1, 6)),
             int(r.integers(1, 6)))
    if seed % 2:
        shape = shape[1:]
    x = r.standard_normal(shape).astype(np.float32)
    h, w = shape[-2:]
    for name in ("ReflectionPad2d", "ReplicationPad2d", "CircularPad2d", "ConstantPad2d"):
        lim_w, lim_h = (w - 1, h - 1) if name == "ReflectionPad2d" else (w, h)
        pad = (int(r.integers(-1, lim_w + 1)), int(r.integers(-1, lim_w + 1)),
               int(r.integers(-1, lim_h + 1)), int(r.integers(-1, lim_h + 1)))
        args = (pad, 1.5) if name == "ConstantPad2d" else (pad,)
        mine, theirs = getattr(pve.nn, name)(*args), getattr(torch.nn, name)(*args)
        assert repr(mine) == repr(theirs)
        try:
            t_out = theirs(torch.tensor(x))
        except Exception:  # noqa: BLE001  (a configuration torch refuses)
            assert_same_error(lambda: mine(x), lambda: theirs(torch.tensor(x)))
            continue
        if name == "CircularPad2d" and _wraps_into_cropped_part(pad, h, w):
            # torch copies uninitialised memory here (it checks the wrap against the
            # uncropped size); the engine refuses
            with pytest.raises(ValueError, match="CircularPad2d"):
                mine(x)
            continue
        if t_out.numel() == 0:
            assert mine(x).shape == tuple(t_out.shape)
            continue
        (y, gx), (ty, tgx) = _module_both(mine, theirs, x)
        np.testing.assert_array_equal(y, ty, err_msg=f"{name}{pad} {shape}")
        _close(gx, tgx, rtol=1e-6, atol=1e-6, what=f"{name}{pad} {shape} grad")


def test_padding_errors_match_torch():
    x = np.zeros((1, 2, 3, 3), np.float32)
    pn, tn = pve.nn, torch.nn
    cases = [
        (pn.ReflectionPad2d(3), tn.ReflectionPad2d(3), x),
        (pn.ReflectionPad2d((1, 1)), tn.ReflectionPad2d((1, 1)), x),
        (pn.ReflectionPad2d(1), tn.ReflectionPad2d(1), np.zeros((3, 3), np.float32)),
        (pn.ReflectionPad2d(1), tn.ReflectionPad2d(1), np.zeros((1, 2, 0, 3), np.float32)),
        (pn.ReplicationPad2d(1), tn.ReplicationPad2d(1), np.zeros((1, 0, 3, 3), np.float32)),
        (pn.ReplicationPad2d(1), tn.ReplicationPad2d(1), np.zeros((0, 3, 3), np.float32)),
        (pn.ReplicationPad2d((1, 1, 1)), tn.ReplicationPad2d((1, 1, 1)), x),
        (pn.CircularPad2d(4), tn.CircularPad2d(4), x),
        (pn.CircularPad2d(1), tn.CircularPad2d(1), np.zeros((3, 3), np.float32)),
        (pn.ConstantPad2d(1, 2.0), tn.ConstantPad2d(1, 2.0), np.zeros(3, np.float32)),
        (pn.ConstantPad2d(-2, 2.0), tn.ConstantPad2d(-2, 2.0), x),
    ]
    for mine, theirs, a in cases:
        assert_same_error(lambda: mine(a), lambda: theirs(torch.tensor(a)))
    assert_same_error(lambda: F.pad(x, (1, 1, 1, 1), "bogus"),
                      lambda: TF.pad(torch.tensor(x), (1, 1, 1, 1), "bogus"))
    assert_same_error(lambda: F.pad(x, (1, 1, 1, 1), "reflect", 1.0),
                      lambda: TF.pad(torch.tensor(x), (1, 1, 1, 1), "reflect", 1.0))


@pytest.mark.parametrize("shape,r", [((2, 8, 3, 5), 2), ((18, 2, 3), 3), ((2, 3, 4, 1, 2), 2),
                                     ((0, 4, 2, 2), 2)])
def test_pixel_shuffles_match_torch(shape, r):
    x = rng.standard_normal(shape).astype(np.float32)
    if x.size == 0:  # (torch's PixelShuffleBackward fails on an empty batch: forward only)
        np.testing.assert_array_equal(F.pixel_shuffle(x, r).numpy(),
                                      TF.pixel_shuffle(torch.tensor(x), r).numpy())
        return
    (y, gx), (ty, tgx) = _module_both(pve.nn.PixelShuffle(r), torch.nn.PixelShuffle(r), x)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(gx, tgx)
    (y, gx), (ty, tgx) = _module_both(pve.nn.PixelUnshuffle(r), torch.nn.PixelUnshuffle(r), ty)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(gx, tgx)
    assert repr(pve.nn.PixelShuffle(r)) == repr(torch.nn.PixelShuffle(r))
    assert repr(pve.nn.PixelUnshuffle(r)) == repr(torch.nn.PixelUnshuffle(r))


@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 4), 2), ((2, 6, 3, 4), 3), ((1, 12, 5), 4),
                                          ((2, 4, 2, 2, 2), 2), ((3, 5, 2, 2), 5)])
def test_channel_shuffle_matches_torch(shape, groups):
    x = rng.standard_normal(shape).astype(np.float32)
    (y, gx), (ty, tgx) = _module_both(pve.nn.ChannelShuffle(groups),
                                      torch.nn.ChannelShuffle(groups), x)
    np.testing.assert_array_equal(y, ty)
    np.testing.assert_array_equal(gx, tgx)
    assert repr(pve.nn.ChannelShuffle(groups)) == repr(torch.nn.ChannelShuffle(groups))


def test_shuffle_errors_match_torch():
    x = np.zeros((1, 8, 2, 2), np.float32)
    t = torch.tensor(x)
    pairs = [
        (lambda: F.pixel_shuffle(np.zeros((8, 2), np.float32), 2),
         lambda: TF.pixel_shuffle(torch.zeros(8, 2), 2)),
        (lambda: F.pixel_shuffle(x, 0), lambda: TF.pixel_shuffle(t, 0)),
        (lambda: F.pixel_shuffle(x, 3), lambda: TF.pixel_shuffle(t, 3)),
        (lambda: F.pixel_shuffle(x, 2.0), lambda: TF.pixel_shuffle(t, 2.0)),
        (lambda: F.pixel_shuffle(x, True), lambda: TF.pixel_shuffle(t, True)),
        (lambda: F.pixel_unshuffle(np.zeros((1, 1, 3, 4), np.float32), 2),
         lambda: TF.pixel_unshuffle(torch.zeros(1, 1, 3, 4), 2)),
        (lambda: F.pixel_unshuffle(np.zeros((1, 1, 4, 3), np.float32), 2),
         lambda: TF.pixel_unshuffle(torch.zeros(1, 1, 4, 3), 2)),
        (lambda: F.pixel_unshuffle(x, -1), lambda: TF.pixel_unshuffle(t, -1)),
        (lambda: F.channel_shuffle(x, 3), lambda: TF.channel_shuffle(t, 3)),
        (lambda: F.channel_shuffle(x, 0), lambda: TF.channel_shuffle(t, 0)),
        (lambda: F.channel_shuffle(x, 2.0), lambda: TF.channel_shuffle(t, 2.0)),
        (lambda: F.channel_shuffle(np.zeros((2, 4), np.float32), 2),
         lambda: TF.channel_shuffle(torch.zeros(2, 4), 2)),
    ]
    for mine, theirs in pairs:
        assert_same_error(mine, theirs)


@pytest.mark.parametrize("size,scale", [((5, 7), None), (None, 2), (None, (2, 3)), ((1, 1), None),
                                        ((2, 9), None), (None, 1.5)])
def test_upsampling_layers_match_torch(size, scale):
    x = rng.standard_normal((2, 3, 3, 4)).astype(np.float32)
    x[0, 0, 1, 1] = np.nan
    for name in ("UpsamplingNearest2d", "UpsamplingBilinear2d"):
        mine = getattr(pve.nn, name)(size=size, scale_factor=scale)
        theirs = getattr(torch.nn, name)(size=size, scale_factor=scale)
        assert repr(mine) == repr(theirs)
        (y, gx), (ty, tgx) = _module_both(mine, theirs, x)
        _close(y, ty, rtol=1e-6, atol=1e-6, what=name)
        _close(gx, tgx, rtol=1e-5, atol=1e-6, what=f"{name} grad")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _close(F.upsample_bilinear(x, size, scale).numpy(),
               TF.upsample_bilinear(torch.tensor(x), size, scale).numpy(), rtol=1e-6, atol=1e-6)
        _close(F.upsample_nearest(x, size, scale).numpy(),
               TF.upsample_nearest(torch.tensor(x), size, scale).numpy())


# ------------------------------------------------------------------ dropout
def _warnings_of(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fn()
        except Exception:  # noqa: BLE001
            pass
    return [(w.category, str(w.message)) for w in caught]


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (2, 3, 4, 4), (2, 3, 2, 2, 2), (3,)])
def test_dropout2d_warnings_shapes_and_errors_match_torch(shape):
    x = np.ones(shape, np.float32)
    assert _warnings_of(lambda: F.dropout2d(x, 0.5)) == \
        _warnings_of(lambda: TF.dropout2d(torch.tensor(x), 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(shape) < 2:
            assert_same_error(lambda: F.dropout2d(x, 0.5),
                              lambda: TF.dropout2d(torch.tensor(x), 0.5))
        else:
            assert F.dropout2d(x, 0.5).shape == tuple(TF.dropout2d(torch.tensor(x), 0.5).shape)
        for p, training in ((1.0, True), (0.0, True), (0.5, False)):
            y = F.dropout2d(x * np.nan, p, training).numpy()
            ty = TF.dropout2d(torch.tensor(x * np.nan), p, training).numpy()
            np.testing.assert_array_equal(y, ty)


def test_dropout_layers_reprs_defaults_and_errors_match_torch():
    for args in ((), (0.2,), (0.3, True)):
        assert repr(pve.nn.Dropout2d(*args)) == repr(torch.nn.Dropout2d(*args))
        assert repr(pve.nn.AlphaDropout(*args)) == repr(torch.nn.AlphaDropout(*args))
    for p in (-0.1, 1.5):
        assert_same_error(lambda: pve.nn.Dropout2d(p), lambda: torch.nn.Dropout2d(p))
        assert_same_error(lambda: pve.nn.AlphaDropout(p), lambda: torch.nn.AlphaDropout(p))
        assert_same_error(lambda: F.dropout2d(np.ones((1, 2, 2, 2), np.float32), p),
                          lambda: TF.dropout2d(torch.ones(1, 2, 2, 2), p))
        assert_same_error(lambda: F.alpha_dropout(np.ones(3, np.float32), p, True),
                          lambda: TF.alpha_dropout(torch.ones(3), p, True))
    x = rng.standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(F.alpha_dropout(x).numpy(), TF.alpha_dropout(torch.tensor(x)))
    np.testing.assert_array_equal(F.alpha_dropout(x, 1.0, True).numpy(),
                                  TF.alpha_dropout(torch.tensor(x), 1.0, True))


def test_alpha_dropout_values_match_torchs_formula():
    # torch draws its own mask; with the engine's mask read back from the output, every
    # element must be torch's a * x + b for its kept/dropped state
    p = 0.25
    x = rng.standard_normal((8, 300)).astype(np.float32)
    y = F.alpha_dropout(x, p, True).numpy()
    ty = TF.alpha_dropout(torch.tensor(x), p, True).numpy()
    values, counts = np.unique(ty, return_counts=True)
    dropped_value = values[counts.argmax()]  # every dropped element takes this one value
    assert counts.max() > 0.15 * ty.size
    np.testing.assert_allclose(np.sort(np.unique(y[np.isclose(y, dropped_value)])),
                               [dropped_value], rtol=1e-6)
    kept_t = ~np.isclose(ty, dropped_value)
    kept_m = ~np.isclose(y, dropped_value)
    # the kept elements' affine map is the same
    a_t = np.polyfit(x[kept_t].astype(np.float64), ty[kept_t].astype(np.float64), 1)
    a_m = np.polyfit(x[kept_m].astype(np.float64), y[kept_m].astype(np.float64), 1)
    np.testing.assert_allclose(a_m, a_t, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ instance norm, LRN
def _tensors(arrays, requires_grad):
    return ([None if a is None else pve.tensor(a, requires_grad=requires_grad) for a in arrays],
            [None if a is None else torch.tensor(a, requires_grad=requires_grad) for a in arrays])


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 2, 7), (1, 2, 2, 2, 3), (2, 3, 1, 2)])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("use_input_stats", [True, False])
def test_instance_norm_matches_torch(shape, affine, use_input_stats):
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    c = shape[1]
    w = rng.uniform(0.5, 1.5, c).astype(np.float32) if affine else None
    b = rng.standard_normal(c).astype(np.float32) if affine else None
    rm, rv = rng.standard_normal(c).astype(np.float32), rng.uniform(0.5, 2, c).astype(np.float32)
    (px, pw, pb), (tx, tw, tb) = _tensors([x, w, b], True)
    (prm, prv), (trm, trv) = _tensors([rm, rv], False)
    y = F.instance_norm(px, prm, prv, pw, pb, use_input_stats, 0.2, 1e-4)
    ty = TF.instance_norm(tx, trm, trv, tw, tb, use_input_stats, 0.2, 1e-4)
    _close(y.detach().numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    _close(prm.numpy(), trm.numpy(), rtol=1e-5, atol=1e-6)
    _close(prv.numpy(), trv.numpy(), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(shape).astype(np.float32)
    y.backward(pve.tensor(g))
    ty.backward(torch.tensor(g))
    for mine, theirs in ((px, tx), (pw, tw), (pb, tb)):
        if mine is not None:
            _close(mine.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_instance_norm2d_module_matches_torch():
    for kw in ({}, {"affine": True}, {"track_running_stats": True},
               {"affine": True, "track_running_stats": True, "momentum": 0.4},
               {"track_running_stats": True, "momentum": None}, {"affine": True, "bias": False},
               {"eps": 1e-3}):
        mine, theirs = pve.nn.InstanceNorm2d(3, **kw), torch.nn.InstanceNorm2d(3, **kw)
        assert repr(mine) == repr(theirs)
        assert list(mine.state_dict()) == list(theirs.state_dict())
        for s in (2, 3):  # two batches
            x = (rng.standard_normal((s, 3, 4, 5)) * s).astype(np.float32)
            _close(mine(x).detach().numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                   atol=1e-5)
        x3 = rng.standard_normal((3, 4, 5)).astype(np.float32)
        _close(mine(x3).detach().numpy(), theirs(torch.tensor(x3)).detach().numpy(), rtol=1e-5,
               atol=1e-5)
        mine.eval()
        theirs.eval()
        _close(mine(x3).detach().numpy(), theirs(torch.tensor(x3)).detach().numpy(), rtol=1e-5,
               atol=1e-5)
        for key, value in theirs.state_dict().items():
            _close(mine.state_dict()[key].numpy(), value.numpy(), rtol=1e-5, atol=1e-6, what=key)


def test_instance_norm_edge_cases_and_errors_match_torch():
    for shape in ((0, 3, 4, 4), (2, 3, 0, 4)):
        rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
        (prm, prv), (trm, trv) = _tensors([rm, rv], False)
        x = np.zeros(shape, np.float32)
        assert F.instance_norm(x, prm, prv).shape == tuple(TF.instance_norm(
            torch.tensor(x), trm, trv).shape)
        _close(prm.numpy(), trm.numpy())
        _close(prv.numpy(), trv.numpy())
    x = np.zeros((2, 3, 4, 4), np.float32)
    t = torch.tensor(x)
    pairs = [
        (lambda: F.instance_norm(np.zeros((2, 3, 1, 1), np.float32)),
         lambda: TF.instance_norm(torch.zeros(2, 3, 1, 1))),
        (lambda: F.instance_norm(x, use_input_stats=False),
         lambda: TF.instance_norm(t, use_input_stats=False)),
        (lambda: F.instance_norm(x, pve.tensor(np.zeros(3, np.float32))),
         lambda: TF.instance_norm(t, torch.zeros(3))),
        (lambda: F.instance_norm(x, weight=np.ones(4, np.float32)),
         lambda: TF.instance_norm(t, weight=torch.ones(4))),
        (lambda: pve.nn.InstanceNorm2d(3)(np.zeros((2, 3), np.float32)),
         lambda: torch.nn.InstanceNorm2d(3)(torch.zeros(2, 3))),
        (lambda: pve.nn.InstanceNorm2d(3, affine=True)(np.zeros((2, 4, 3, 3), np.float32)),
         lambda: torch.nn.InstanceNorm2d(3, affine=True)(torch.zeros(2, 4, 3, 3))),
    ]
    for mine, theirs in pairs:
        assert_same_error(mine, theirs)
    assert _warnings_of(lambda: pve.nn.InstanceNorm2d(3)(np.ones((2, 4, 3, 3), np.float32))) == \
        _warnings_of(lambda: torch.nn.InstanceNorm2d(3)(torch.ones(2, 4, 3, 3)))


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8])
@pytest.mark.parametrize("shape", [(2, 6, 5), (2, 5, 3, 4), (1, 4, 2, 3, 2)])
def test_local_response_norm_matches_torch(size, shape):
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    for alpha, beta, k in ((1e-4, 0.75, 1.0), (0.3, 0.5, 2.0), (0.05, 1.7, 0.5)):
        mine = pve.nn.LocalResponseNorm(size, alpha, beta, k)
        theirs = torch.nn.LocalResponseNorm(size, alpha, beta, k)
        assert repr(mine) == repr(theirs)
        (y, gx), (ty, tgx) = _module_both(mine, theirs, x)
        _close(y, ty, rtol=1e-5, atol=1e-6)
        _close(gx, tgx, rtol=1e-4, atol=1e-5)


def test_local_response_norm_specials_and_errors_match_torch():
    x = np.ones((1, 6, 2), np.float32)
    x[0, 1, 0], x[0, 4, 1] = np.nan, np.inf
    np.testing.assert_array_equal(F.local_response_norm(x, 3).numpy(),
                                  TF.local_response_norm(torch.tensor(x), 3).numpy())
    pairs = [
        (lambda: F.local_response_norm(np.zeros((2, 3), np.float32), 2),
         lambda: TF.local_response_norm(torch.zeros(2, 3), 2)),
        (lambda: F.local_response_norm(np.zeros((2, 3, 4), np.float32), 0),
         lambda: TF.local_response_norm(torch.zeros(2, 3, 4), 0)),
        (lambda: F.local_response_norm(np.zeros((2, 3, 4, 4), np.float32), -1),
         lambda: TF.local_response_norm(torch.zeros(2, 3, 4, 4), -1)),
        (lambda: F.local_response_norm(np.zeros((2, 3, 4, 4), np.float32), 2.5),
         lambda: TF.local_response_norm(torch.zeros(2, 3, 4, 4), 2.5)),
    ]
    for mine, theirs in pairs:
        assert_same_error(mine, theirs)


def test_every_new_name_is_exported_as_in_torch():
    functionals = ["threshold", "threshold_", "hardtanh", "hardtanh_", "elu", "elu_", "selu",
                   "selu_", "celu", "celu_", "softplus", "mish", "softsign", "tanhshrink",
                   "logsigmoid", "softmin", "dropout2d", "alpha_dropout", "pixel_shuffle",
                   "pixel_unshuffle", "channel_shuffle", "upsample_nearest", "upsample_bilinear",
                   "instance_norm", "local_response_norm"]
    modules = ["Threshold", "Hardtanh", "ELU", "CELU", "SELU", "Softplus", "Mish", "Softsign",
               "Tanhshrink", "LogSigmoid", "Softmin", "Softmax2d", "Dropout2d", "AlphaDropout",
               "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d",
               "PixelShuffle", "PixelUnshuffle", "ChannelShuffle", "UpsamplingNearest2d",
               "UpsamplingBilinear2d", "InstanceNorm2d", "LocalResponseNorm"]
    for name in functionals:
        assert hasattr(TF, name) and name in F.__all__ and callable(getattr(F, name)), name
    for name in modules:
        assert hasattr(torch.nn, name) and name in pve.nn.__all__, name
        assert issubclass(getattr(pve.nn, name), pve.nn.Module), name
    import inspect
    for name in functionals:
        mine = list(inspect.signature(getattr(F, name)).parameters)
        try:
            theirs = list(inspect.signature(getattr(TF, name)).parameters)
        except (TypeError, ValueError):  # a builtin without a signature
            continue
        assert mine == theirs, name
    for name in modules:
        if getattr(torch.nn, name).__init__ is torch.nn.Module.__init__:
            continue  # (no constructor arguments)
        mine = inspect.signature(getattr(pve.nn, name).__init__).parameters
        theirs = inspect.signature(getattr(torch.nn, name).__init__).parameters
        assert [(p, mine[p].default) for p in mine] == [(p, theirs[p].default) for p in theirs], name
