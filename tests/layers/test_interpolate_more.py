"""interpolate 'bicubic', 'area' and antialias=True against float64 numpy references
written here (cubic convolution weights with A = -0.75 and clamped taps; antialias
filter windows and normalised weights; area = block means), gradients against float64
finite differences, and the argument errors of the new modes."""

import math

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op

F = pve.nn.functional
rng = np.random.default_rng(23)


def _src(i, n, o, align, scale):
    """Source coordinate of output i (cubic: no clamp at 0)."""
    if align:
        return i * (n - 1) / (o - 1) if o > 1 else 0.0
    return (i + 0.5) * (1 / scale if scale else n / o) - 0.5


def _cubic(x, a):
    x = abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a
    return 0.0


def _cubic_matrix(n, o, align, scale=None):
    """(o, n) float64 weights of torch's bicubic along one axis."""
    m = np.zeros((o, n))
    for i in range(o):
        s = _src(i, n, o, align, scale)
        f = math.floor(s)
        t = s - f
        for k in (-1, 0, 1, 2):
            m[i, min(max(f + k, 0), n - 1)] += _cubic(k - t, -0.75)
    return m


def _aa_matrix(n, o, kind, align):
    """(o, n) float64 weights of torch's antialiased filter: the window centred on
    scale * (i + 0.5), support widened by the downscale factor, weights normalised."""
    scale = ((n - 1) / (o - 1) if o > 1 else 0.0) if align else n / o
    support = (1.0 if kind == "linear" else 2.0) * max(scale, 1.0)
    inv = 1 / scale if scale >= 1 else 1.0
    filt = (lambda x: max(0.0, 1 - abs(x))) if kind == "linear" else (lambda x: _cubic(x, -0.5))
    m = np.zeros((o, n))
    for i in range(o):
        c = scale * (i + 0.5)
        lo, hi = max(int(c - support + 0.5), 0), min(int(c + support + 0.5), n)
        w = np.array([filt((j - c + 0.5) * inv) for j in range(lo, hi)])
        m[i, lo:hi] = w / w.sum() if w.sum() != 0 else w
    return m


def _separable(mh, mw):
    return lambda x: np.einsum("oh,nchw,pw->ncop", mh, x, mw)


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("hw,out", [((5, 6), (9, 4)), ((8, 7), (3, 3)), ((4, 4), (4, 4)),
                                    ((1, 5), (3, 2)), ((6, 2), (1, 7))])
def test_bicubic_matches_cubic_convolution(align, hw, out):
    x = rng.standard_normal((2, 3) + hw)
    ref = _separable(_cubic_matrix(hw[0], out[0], align), _cubic_matrix(hw[1], out[1], align))
    check_op(lambda t: F.interpolate(t, size=out, mode="bicubic", align_corners=align), ref, [x])


@pytest.mark.parametrize("factor", [0.5, 1.7, 2.0, 3.0])
def test_bicubic_scale_factor_uses_it(factor):
    x = rng.standard_normal((1, 2, 6, 5))
    out = (int(6 * factor), int(5 * factor))
    ref = _separable(_cubic_matrix(6, out[0], False, factor),
                     _cubic_matrix(5, out[1], False, factor))
    check_op(lambda t: F.interpolate(t, scale_factor=factor, mode="bicubic"), ref, [x])
    # recompute_scale_factor: in / out instead of 1 / factor
    ref = _separable(_cubic_matrix(6, out[0], False), _cubic_matrix(5, out[1], False))
    check_op(lambda t: F.interpolate(t, scale_factor=factor, mode="bicubic",
                                     recompute_scale_factor=True), ref, [x])


@pytest.mark.parametrize("mode,kind", [("bilinear", "linear"), ("bicubic", "cubic")])
@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("hw,out", [((12, 9), (5, 4)), ((16, 16), (3, 7)), ((5, 7), (9, 3)),
                                    ((7, 5), (7, 5)), ((20, 3), (1, 1)),
                                    # (torch 2.13 repeats the first row here, output width 1
                                    # with a vertical pass: a torch bug pve does not copy)
                                    ((9, 5), (4, 1))])
def test_antialias_matches_filter_windows(mode, kind, align, hw, out):
    x = rng.standard_normal((1, 2) + hw)
    ref = _separable(_aa_matrix(hw[0], out[0], kind, align), _aa_matrix(hw[1], out[1], kind, align))
    check_op(lambda t: F.interpolate(t, size=out, mode=mode, align_corners=align, antialias=True),
             ref, [x])


def test_antialias_bilinear_upscaling_equals_plain_bilinear():
    x = pve.tensor(rng.standard_normal((1, 2, 4, 5)).astype(np.float32))
    aa = F.interpolate(x, size=(9, 11), mode="bilinear", antialias=True).numpy()
    plain = F.interpolate(x, size=(9, 11), mode="bilinear").numpy()
    np.testing.assert_allclose(aa, plain, rtol=1e-6, atol=1e-6)


def _block_means(x, out):
    """Adaptive average: cell i covers floor(i * n / o) .. ceil((i + 1) * n / o)."""
    res = x
    for axis, o in zip(range(2, x.ndim), out):
        n = x.shape[axis]
        cells = [np.take(res, range(i * n // o, -(-(i + 1) * n // o)), axis=axis).mean(
            axis=axis, keepdims=True) for i in range(o)]
        res = np.concatenate(cells, axis=axis)
    return res


@pytest.mark.parametrize("shape,size", [((2, 3, 7), 3), ((2, 3, 7), 10), ((1, 2, 8, 9), (4, 3)),
                                        ((1, 2, 5, 6), (7, 2)), ((1, 1, 6, 6), 6)])
def test_area_is_block_means(shape, size):
    x = rng.standard_normal(shape)
    out = (size,) * (len(shape) - 2) if isinstance(size, int) else size
    check_op(lambda t: F.interpolate(t, size=size, mode="area"),
             lambda a: _block_means(a, out), [x])


def test_area_scale_factor_truncates_size():
    x = rng.standard_normal((1, 2, 9, 10))
    check_op(lambda t: F.interpolate(t, scale_factor=0.7, mode="area"),
             lambda a: _block_means(a, (6, 7)), [x])


def test_upsample_layer_bicubic_and_area():
    x = rng.standard_normal((1, 2, 4, 5))
    m = pve.nn.Upsample(scale_factor=2, mode="bicubic")
    ref = _separable(_cubic_matrix(4, 8, False, 2.0), _cubic_matrix(5, 10, False, 2.0))
    check_op(m, ref, [x])
    check_op(pve.nn.Upsample(size=(2, 3), mode="area"), lambda a: _block_means(a, (2, 3)), [x])


def test_errors_of_the_new_modes():
    x4 = pve.tensor(np.zeros((1, 1, 4, 4), np.float32))
    x3 = pve.tensor(np.zeros((1, 1, 4), np.float32))
    with pytest.raises(ValueError, match="align_corners"):
        F.interpolate(x4, size=2, mode="area", align_corners=False)
    with pytest.raises(NotImplementedError, match="bicubic.*4-D"):
        F.interpolate(x3, size=2, mode="bicubic")
    for mode, x in (("nearest", x4), ("area", x4), ("linear", x3)):
        with pytest.raises(ValueError, match="anti-alias"):
            F.interpolate(x, size=2, mode=mode, antialias=True)
    with pytest.raises(NotImplementedError, match="mode must be one of"):
        F.interpolate(x4, size=2, mode="trilinear")


@pytest.mark.parametrize("n,o", [(12, 5), (16, 3), (5, 9), (7, 7), (31, 1)])
def test_float64_windows_are_the_filter_weights(n, o):
    """The float64 windows the transforms' Pillow path quantises: the same filter as the
    reference matrix above."""
    from pyvision_engine.nn import _f_shape
    index, w = _f_shape._aa_window(n, n / o, o, "linear", exact=True)
    got = np.zeros((o, n))
    for k in range(index.shape[1]):
        np.add.at(got, (np.arange(o), index[:, k]), w[:, k])
    np.testing.assert_allclose(got, _aa_matrix(n, o, "linear", False), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("hw,out", [((40, 30), (13, 17)), ((9, 50), (30, 7)), ((64, 48), (5, 60))])
def test_transforms_resize_uint8_is_pillow_and_float_is_interpolate(hw, out):
    """data.transforms.Resize (antialiased, the default) now runs on interpolate's windows:
    uint8 arrays byte-exact with Pillow's BILINEAR resize, float arrays equal to
    interpolate(antialias=True) itself."""
    Image = pytest.importorskip("PIL.Image", reason="Pillow is the uint8 reference")
    from pyvision_engine.data import transforms as T
    import PIL
    a = rng.integers(0, 256, hw + (3,)).astype(np.uint8)
    # Pillow < 13 runs the horizontal pass first, Pillow 13 (and pve) the cheaper one
    # first, so the uint8 rounding between the passes differs: there one axis at a time.
    sizes = [out] if int(PIL.__version__.split(".")[0]) >= 13 else [(hw[0], out[1]), (out[0], hw[1])]
    for size in sizes:
        want = np.asarray(Image.fromarray(a).resize(size[::-1], Image.BILINEAR))
        np.testing.assert_array_equal(T.Resize(size)(a), want)
    f = rng.standard_normal(hw + (2,)).astype(np.float32)
    ref = F.interpolate(pve.tensor(np.ascontiguousarray(f.transpose(2, 0, 1))[None]), size=out,
                        mode="bilinear", antialias=True).numpy()[0].transpose(1, 2, 0)
    np.testing.assert_array_equal(T.Resize(out)(f), ref)
    ref = np.einsum("oh,hwc,pw->opc", _aa_matrix(hw[0], out[0], "linear", False), f.astype(np.float64),
                    _aa_matrix(hw[1], out[1], "linear", False))
    np.testing.assert_allclose(T.Resize(out)(f), ref, rtol=1e-5, atol=1e-5)
