"""Dropout2d, AlphaDropout, the 2-D padding layers, PixelShuffle / PixelUnshuffle,
ChannelShuffle and the Upsampling layers: float64 references, finite differences,
seeding, warnings and errors."""

import warnings

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op
from pyvision_engine.nn._f_common import NotImplementedValueError, RuntimeValueError
from reference import extra_layers_reference as ref

F = pve.nn.functional
nn = pve.nn
pytestmark = pytest.mark.kernels
rng = np.random.default_rng(23)


# ------------------------------------------------------------------ Dropout2d
def _channel_scale(x, y, p):
    """The (N, C) factors of y = x * scale[n, c], each 0 or 1 / (1 - p) (asserted, with
    x nonzero): whole planes dropped or kept, scaled as torch (float32 1 / (1 - p))."""
    keep = y.reshape(x.shape[0], x.shape[1], -1)[..., 0] != 0
    scale = np.where(keep, np.float32(1) / np.float32(1 - p), np.float32(0)).astype(np.float32)
    np.testing.assert_array_equal(y, x * scale.reshape(scale.shape + (1,) * (x.ndim - 2)))
    return scale


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout2d_drops_whole_channels_and_scales_the_rest(p):
    x = rng.uniform(0.5, 2.0, (40, 50, 3, 4)).astype(np.float32)
    pve.manual_seed(7)
    y = F.dropout2d(x, p).numpy()
    kept = _channel_scale(x, y, p) != 0
    # 2000 channels: the dropped fraction is p within 5 binomial standard deviations
    frac = 1 - kept.mean()
    assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / kept.size)


def test_dropout2d_gradient_is_the_same_channel_mask(isa):
    x = rng.uniform(0.5, 2.0, (3, 6, 4, 5)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    t = pve.tensor(x, requires_grad=True)
    pve.manual_seed(3)
    y = nn.Dropout2d(0.4)(t)
    y.backward(pve.tensor(g))
    scale = _channel_scale(x, y.detach().numpy(), 0.4)
    np.testing.assert_array_equal(t.grad.numpy(), g * scale[:, :, None, None])


def test_dropout2d_is_seeded_by_manual_seed():
    x = np.ones((4, 64, 2, 2), np.float32)
    pve.manual_seed(123)
    a = F.dropout2d(x).numpy()
    b = F.dropout2d(x).numpy()
    pve.manual_seed(123)
    np.testing.assert_array_equal(F.dropout2d(x).numpy(), a)
    assert not np.array_equal(a, b)


def test_dropout2d_identity_cases_and_p_one():
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    for y in (F.dropout2d(x, 0.5, training=False), F.dropout2d(x, 0.0),
              nn.Dropout2d(0.7).eval()(x)):
        np.testing.assert_array_equal(y.numpy(), x)
    x[0, 0, 0, 0] = np.nan
    y = F.dropout2d(x, 1.0).numpy()
    assert np.isnan(y[0, 0, 0, 0])  # NaN * 0, as torch
    assert (y.reshape(-1)[1:] == 0).all()
    y = nn.Dropout2d(1.0)(x).numpy()
    assert np.isnan(y[0, 0, 0, 0]) and (y.reshape(-1)[1:] == 0).all()


def test_dropout2d_nan_and_inf_stay_in_their_channel():
    x = np.ones((1, 200, 2, 2), np.float32)
    x[0, :, 0, 0] = np.inf
    x[0, :, 1, 1] = np.nan
    y = F.dropout2d(x, 0.5).numpy()
    assert np.isnan(y[0, :, 1, 1]).all()
    dropped = y[0, :, 0, 1] == 0
    assert dropped.any() and (~dropped).any()
    assert np.isnan(y[0, dropped, 0, 0]).all()  # inf * 0
    assert np.isposinf(y[0, ~dropped, 0, 0]).all()


def test_dropout2d_inplace():
    x = rng.uniform(0.5, 2.0, (2, 8, 3, 3)).astype(np.float32)
    t = pve.tensor(x)
    out = F.dropout2d(t, 0.5, inplace=True)
    assert out is t
    _channel_scale(x, t.numpy(), 0.5)
    a = pve.tensor(x, requires_grad=True)
    h = a * 1.0
    y = nn.Dropout2d(0.5, inplace=True)(h)
    assert y is h
    y.backward(pve.tensor(np.ones_like(x)))
    np.testing.assert_array_equal(a.grad.numpy(), np.broadcast_to(
        _channel_scale(x, y.detach().numpy(), 0.5)[:, :, None, None], x.shape))
    with pytest.raises(RuntimeError, match="leaf Variable"):
        F.dropout2d(pve.tensor(x, requires_grad=True), 0.5, inplace=True)


def test_dropout2d_ranks_warn_as_torch():
    x3 = rng.uniform(0.5, 2.0, (4, 30, 5)).astype(np.float32)
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        y = F.dropout2d(x3, 0.5).numpy()
    _channel_scale(x3, y, 0.5)  # channel-wise along dim 1 of (N, C, L)
    x2 = rng.uniform(0.5, 2.0, (4, 30)).astype(np.float32)
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d"):
        F.dropout2d(x2, 0.5)
    x5 = rng.uniform(0.5, 2.0, (2, 9, 2, 2, 2)).astype(np.float32)
    with pytest.warns(UserWarning, match="Received a 5-D input"):
        _channel_scale(x5, F.dropout2d(x5, 0.5).numpy(), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.dropout2d(np.ones((2, 3, 4, 4), np.float32))  # 4-D: no warning
    with pytest.warns(UserWarning, match="1-D input"):
        with pytest.raises(RuntimeValueError, match="dropout2d: Feature dropout requires at least 2"):
            F.dropout2d(np.ones(5, np.float32), 0.5)


def test_dropout_argument_errors_name_the_layer():
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="dropout2d: dropout probability has to be between"):
            F.dropout2d(np.ones((1, 2, 2, 2), np.float32), p)
        with pytest.raises(ValueError, match="Dropout2d: dropout probability"):
            nn.Dropout2d(p)
        with pytest.raises(ValueError, match="AlphaDropout: dropout probability"):
            nn.AlphaDropout(p)
        with pytest.raises(ValueError, match="alpha_dropout: dropout probability"):
            F.alpha_dropout(np.ones(3, np.float32), p)
    with pytest.raises(TypeError, match="Dropout2d"):
        nn.Dropout2d("0.5")
    with pytest.raises(TypeError, match="dropout2d"):
        F.dropout2d(np.ones((1, 2, 2, 2), np.int64))


# ------------------------------------------------------------------ AlphaDropout
def test_alpha_dropout_formula_and_gradient():
    p, alpha = 0.3, 1.7580993408473766
    a = 1.0 / np.sqrt((alpha ** 2 * p + 1) * (1 - p))
    x = rng.standard_normal((50, 400)).astype(np.float32)
    t = pve.tensor(x, requires_grad=True)
    y = F.alpha_dropout(t, p, training=True)
    yn = y.detach().numpy().astype(np.float64)
    dropped_value = a * alpha * (p - 1)
    dropped = np.isclose(yn, dropped_value, rtol=0, atol=1e-6) & ~np.isclose(
        x, (dropped_value - a * alpha * p) / a, rtol=0, atol=1e-4)
    expected = np.where(dropped, dropped_value, a * x + a * alpha * p)
    np.testing.assert_allclose(yn, expected, rtol=1e-6, atol=1e-6)
    assert abs(dropped.mean() - p) < 5 * np.sqrt(p * (1 - p) / x.size)
    # the point of alpha dropout: standard normal in, mean 0 and variance 1 out
    assert abs(yn.mean()) < 0.02 and abs(yn.var() - 1) < 0.03
    g = rng.standard_normal(x.shape).astype(np.float32)
    y.backward(pve.tensor(g))
    np.testing.assert_allclose(t.grad.numpy(), np.where(dropped, 0.0, a * g), rtol=1e-6, atol=1e-7)


def test_alpha_dropout_defaults_and_identity():
    x = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(F.alpha_dropout(x).numpy(), x)  # training=False by default
    np.testing.assert_array_equal(F.alpha_dropout(x, 0.0, True).numpy(), x)
    np.testing.assert_array_equal(nn.AlphaDropout().eval()(x).numpy(), x)
    assert (F.alpha_dropout(x, 1.0, True).numpy() == 0).all()
    m = nn.AlphaDropout(0.5, inplace=True)  # as torch: stored, not used
    t = pve.tensor(x)
    y = m(t)
    assert y is not t and np.array_equal(t.numpy(), x)


# ------------------------------------------------------------------ padding
PAD_MODULES = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d,
               "circular": nn.CircularPad2d}
PADDINGS = [1, 2, (1, 0, 2, 1), (0, 2, 0, 0), (2, 1, 1, 2), (-1, 1, 2, -1)]


@pytest.mark.parametrize("mode", sorted(PAD_MODULES))
@pytest.mark.parametrize("padding", PADDINGS, ids=str)
@pytest.mark.parametrize("shape", [(2, 3, 3, 4), (3, 4, 3)])
def test_index_padding_matches_reference(isa, mode, padding, shape):
    quad = (padding,) * 4 if isinstance(padding, int) else padding
    m = PAD_MODULES[mode](padding)
    assert m.padding == quad
    x = rng.standard_normal(shape)
    if mode == "circular" and min(quad) < 0:
        # crop, then wrap what is left (reflect / replicate read the whole input instead:
        # output j reads j - before, mirrored or clamped at the input's edges)
        def rf(a):
            left, right, top, bottom = quad
            h, w = a.shape[-2:]
            a = a[..., max(-top, 0):h - max(-bottom, 0), max(-left, 0):w - max(-right, 0)]
            return ref.pad2d(a, tuple(max(v, 0) for v in quad), mode)
    else:
        def rf(a):
            return ref.pad2d(a, quad, mode)
    check_op(m, rf, [x], rtol=0, atol=0)


@pytest.mark.parametrize("padding,value", [(1, 0.5), ((2, 0, 1, 3), -2.0), ((-1, 2, 1, -2), 3.0),
                                           (0, 1.0)])
def test_constant_pad2d_matches_reference(isa, padding, value):
    quad = (padding,) * 4 if isinstance(padding, int) else padding
    m = nn.ConstantPad2d(padding, value)
    x = rng.standard_normal((2, 3, 4, 5))

    def rf(a):
        left, right, top, bottom = quad
        h, w = a.shape[-2:]
        a = a[..., max(-top, 0):h - max(-bottom, 0), max(-left, 0):w - max(-right, 0)]
        return ref.pad2d(a, tuple(max(v, 0) for v in quad), "constant", value)

    check_op(m, rf, [x], rtol=0, atol=0)


def test_padding_keeps_nan_and_inf_where_they_are_copied():
    x = np.zeros((1, 1, 3, 3), np.float32)
    x[0, 0, 0, 1], x[0, 0, 2, 2] = np.nan, np.inf
    for mode, m in PAD_MODULES.items():
        y = m(1)(x).numpy()
        r = ref.pad2d(x.astype(np.float64), (1, 1, 1, 1), mode)
        np.testing.assert_array_equal(y, r, err_msg=mode)
    np.testing.assert_array_equal(nn.ConstantPad2d(1, np.nan)(x).numpy(),
                                  ref.pad2d(x.astype(np.float64), (1, 1, 1, 1), "constant", np.nan))


def test_padding_errors_name_the_layer_with_torchs_types():
    x = np.zeros((1, 2, 3, 3), np.float32)
    with pytest.raises(RuntimeValueError, match=r"ReflectionPad2d\(3, 3, 3, 3\): pad: padding "
                                                r"size should be less than"):
        nn.ReflectionPad2d(3)(x)
    nn.ReflectionPad2d(2)(x)  # (size - 1 is fine)
    with pytest.raises(RuntimeValueError, match="CircularPad2d.*wrapping around more than once"):
        nn.CircularPad2d(4)(x)
    nn.CircularPad2d(3)(x)
    with pytest.raises(ValueError, match=r"CircularPad2d: expected 3D or 4D input \(got 2D"):
        nn.CircularPad2d(1)(np.zeros((3, 3), np.float32))
    for m in (nn.ReflectionPad2d(1), nn.ReplicationPad2d(1)):
        with pytest.raises(NotImplementedValueError, match=type(m).__name__):
            m(np.zeros((3, 3), np.float32))  # 4 amounts need 3-D or 4-D input
        with pytest.raises(RuntimeValueError, match="non-zero dimensions"):
            m(np.zeros((1, 0, 3, 3), np.float32))
        assert m(np.zeros((0, 2, 3, 3), np.float32)).shape == (0, 2, 5, 5)  # an empty batch
    with pytest.raises(NotImplementedValueError, match="ReflectionPad2d"):
        nn.ReflectionPad2d((1, 1))(x)  # 2 amounts pad 2-D or 3-D input only
    with pytest.raises(RuntimeValueError, match="ReplicationPad2d"):
        nn.ReplicationPad2d((1, 1, 1))(x)
    with pytest.raises(RuntimeValueError, match="ConstantPad2d"):
        nn.ConstantPad2d(1, 0.0)(np.zeros(3, np.float32))  # 4 amounts, 1 dim
    with pytest.raises(RuntimeValueError, match="ConstantPad2d"):
        nn.ConstantPad2d(-2, 0.0)(x)
    for cls in (nn.ReflectionPad2d, nn.ReplicationPad2d, nn.CircularPad2d):
        with pytest.raises(TypeError, match=cls.__name__):
            cls(1.5)
    with pytest.raises(TypeError, match="ConstantPad2d"):
        nn.ConstantPad2d(1, "zero")
    with pytest.raises(TypeError, match="ReflectionPad2d"):
        nn.ReflectionPad2d(1)(np.zeros((1, 1, 3, 3), np.int64))


def test_padding_reprs():
    assert repr(nn.ReflectionPad2d(1)) == "ReflectionPad2d((1, 1, 1, 1))"
    assert repr(nn.ReplicationPad2d([1, 2, 3, 4])) == "ReplicationPad2d((1, 2, 3, 4))"
    assert repr(nn.CircularPad2d((1, 2))) == "CircularPad2d((1, 2))"
    assert repr(nn.ConstantPad2d(2, 3.5)) == "ConstantPad2d(padding=(2, 2, 2, 2), value=3.5)"


# ------------------------------------------------------------------ shuffles
@pytest.mark.parametrize("shape,r", [((2, 8, 3, 5), 2), ((18, 2, 3), 3), ((2, 3, 4, 1, 2), 2),
                                     ((1, 5, 2, 2), 1)])
def test_pixel_shuffle_matches_reference_and_unshuffle_inverts_it(isa, shape, r):
    x = rng.standard_normal(shape)
    check_op(lambda t: F.pixel_shuffle(t, r), lambda a: ref.pixel_shuffle(a, r), [x], rtol=0, atol=0)
    y = ref.pixel_shuffle(x, r)
    check_op(lambda t: nn.PixelUnshuffle(r)(t), lambda a: ref.pixel_unshuffle(a, r), [y], rtol=0,
             atol=0)
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(F.pixel_unshuffle(nn.PixelShuffle(r)(x32), r).numpy(), x32)


@pytest.mark.parametrize("shape,groups", [((2, 6, 3, 4), 2), ((2, 6, 3, 4), 3), ((1, 12, 5), 4),
                                          ((2, 4, 2, 2, 2), 2), ((3, 5, 2, 2), 1),
                                          ((3, 5, 2, 2), 5)])
def test_channel_shuffle_matches_reference(isa, shape, groups):
    x = rng.standard_normal(shape)
    check_op(lambda t: nn.ChannelShuffle(groups)(t), lambda a: ref.channel_shuffle(a, groups),
             [x], rtol=0, atol=0)


def test_shuffles_take_empty_tensors():
    assert F.pixel_shuffle(np.zeros((0, 8, 2, 2), np.float32), 2).shape == (0, 2, 4, 4)
    assert F.pixel_unshuffle(np.zeros((2, 1, 0, 4), np.float32), 2).shape == (2, 4, 0, 2)
    assert F.channel_shuffle(np.zeros((0, 6, 2, 2), np.float32), 3).shape == (0, 6, 2, 2)
    assert F.channel_shuffle(np.zeros((1, 0, 2, 2), np.float32), 3).shape == (1, 0, 2, 2)


def test_shuffle_errors_name_the_op():
    x = np.zeros((1, 8, 2, 2), np.float32)
    with pytest.raises(RuntimeValueError, match="pixel_shuffle expects input to have at least 3"):
        F.pixel_shuffle(np.zeros((8, 2), np.float32), 2)
    with pytest.raises(RuntimeValueError, match="pixel_shuffle expects a positive upscale_factor"):
        nn.PixelShuffle(0)(x)
    with pytest.raises(RuntimeValueError, match="divisible by the square of upscale_factor"):
        F.pixel_shuffle(x, 3)
    with pytest.raises(TypeError, match="pixel_shuffle: argument 'upscale_factor' must be int"):
        F.pixel_shuffle(x, 2.0)
    with pytest.raises(TypeError, match="must be int, not bool"):
        F.pixel_shuffle(x, True)
    with pytest.raises(RuntimeValueError, match="pixel_unshuffle expects height to be divisible"):
        F.pixel_unshuffle(np.zeros((1, 1, 3, 4), np.float32), 2)
    with pytest.raises(RuntimeValueError, match="pixel_unshuffle expects width to be divisible"):
        nn.PixelUnshuffle(2)(np.zeros((1, 1, 4, 3), np.float32))
    with pytest.raises(RuntimeValueError, match="pixel_unshuffle expects a positive"):
        F.pixel_unshuffle(x, -1)
    with pytest.raises(RuntimeValueError, match="channel_shuffle: Number of channels must be "
                                                "divisible by groups. Got 8 channels and 3"):
        F.channel_shuffle(x, 3)
    with pytest.raises(RuntimeValueError, match="channel_shuffle: Number of groups .* positive"):
        nn.ChannelShuffle(0)(x)
    with pytest.raises(RuntimeValueError, match="channel_shuffle expects input with > 2 dims"):
        F.channel_shuffle(np.zeros((2, 4), np.float32), 2)
    with pytest.raises(TypeError, match="channel_shuffle: argument 'groups' must be int"):
        F.channel_shuffle(x, 2.0)


def test_shuffle_reprs():
    assert repr(nn.PixelShuffle(3)) == "PixelShuffle(upscale_factor=3)"
    assert repr(nn.PixelUnshuffle(2)) == "PixelUnshuffle(downscale_factor=2)"
    assert repr(nn.ChannelShuffle(4)) == "ChannelShuffle(groups=4)"


# ------------------------------------------------------------------ upsampling
@pytest.mark.parametrize("size,scale", [((5, 7), None), (None, 2), (None, (2, 3)), ((1, 1), None),
                                        ((3, 4), None)])
def test_upsampling_bilinear2d_is_align_corners_bilinear(isa, size, scale):
    x = rng.standard_normal((2, 3, 3, 4))
    out = size or (int(3 * (scale if isinstance(scale, int) else scale[0])),
                   int(4 * (scale if isinstance(scale, int) else scale[1])))
    m = nn.UpsamplingBilinear2d(size=size, scale_factor=scale)
    check_op(m, lambda a: ref.upsample_bilinear_align_corners(a, *out), [x], rtol=1e-5, atol=1e-6)
    with pytest.warns(UserWarning, match="upsample_bilinear` is deprecated"):
        y = F.upsample_bilinear(x.astype(np.float32), size, scale)
    np.testing.assert_array_equal(y.numpy(), m(x.astype(np.float32)).numpy())


@pytest.mark.parametrize("size,scale", [((6, 8), None), (None, 3), ((5, 6), None), ((2, 3), None)])
def test_upsampling_nearest2d_matches_reference(isa, size, scale):
    x = rng.standard_normal((2, 3, 3, 4))
    out = size or (3 * scale, 4 * scale)
    m = nn.UpsamplingNearest2d(size=size, scale_factor=scale)
    check_op(m, lambda a: ref.upsample_nearest(a, *out), [x], rtol=0, atol=0)
    with pytest.warns(UserWarning, match="upsample_nearest` is deprecated"):
        y = F.upsample_nearest(x.astype(np.float32), size, scale)
    np.testing.assert_array_equal(y.numpy(), m(x.astype(np.float32)).numpy())


def test_upsampling_layers_reprs_and_errors():
    assert repr(nn.UpsamplingNearest2d(scale_factor=2)) == \
        "UpsamplingNearest2d(scale_factor=2.0, mode='nearest')"
    assert repr(nn.UpsamplingBilinear2d(size=(3, 4))) == \
        "UpsamplingBilinear2d(size=(3, 4), mode='bilinear')"
    m = nn.UpsamplingBilinear2d(scale_factor=2)
    assert (m.mode, m.align_corners) == ("bilinear", True)
    with pytest.raises(ValueError, match="either size or scale_factor should be defined"):
        nn.UpsamplingNearest2d()(np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(NotImplementedError, match="bilinear"):
        nn.UpsamplingBilinear2d(scale_factor=2)(np.zeros((1, 2, 2), np.float32))
