"""interpolate / Upsample against a per-pixel float64 numpy reference of torch's
source-index rules: NaN and Inf reach only the outputs that read them (forward and
backward), 3-D (N, C, L) input, 'nearest-exact', argument errors and reprs."""

import math

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op

F = pve.nn.functional
rng = np.random.default_rng(11)


def _linear_taps(i, n, o, align, scale):
    """((i0, w0), (i1, w1)) of output i along one axis (torch's linear rule)."""
    if o == n:
        return (i, 1.0), (i, 0.0)  # torch reads x * 1 + x * 0 there
    if align:
        src = i * (n - 1) / (o - 1) if o > 1 else 0.0
    else:
        src = max((i + 0.5) * (1 / scale if scale else n / o) - 0.5, 0.0)
    i0 = min(math.floor(src), n - 1)
    lam = min(max(src - i0, 0.0), 1.0)
    return (i0, 1 - lam), (i0 + (i0 < n - 1), lam)


def _nearest_taps(i, n, o, scale, exact=False):
    r = 1 / scale if scale else n / o
    if exact:
        return ((min(math.floor((i + 0.5) * r), n - 1), 1.0),)
    if o == n:  # torch's 2-D kernels copy at the same size, repeat at twice the size
        return ((i, 1.0),)
    if o == 2 * n:
        return ((i // 2, 1.0),)
    return ((min(math.floor(i * r), n - 1), 1.0),)


def _taps(mode, n, o, align=False, scale=None):
    if mode == "linear":
        return [_linear_taps(i, n, o, align, scale) for i in range(o)]
    return [_nearest_taps(i, n, o, scale, mode == "nearest-exact") for i in range(o)]


def ref_resize(x, taps_h, taps_w):
    """y[..., i, j] = sum of w_h * w_w * x[..., ih, iw] over the taps, in float64 (a NaN
    tap with weight 0 still makes the output NaN, as 0 * NaN)."""
    y = np.zeros(x.shape[:-2] + (len(taps_h), len(taps_w)))
    with np.errstate(invalid="ignore"):
        for i, th in enumerate(taps_h):
            for j, tw in enumerate(taps_w):
                y[..., i, j] = sum(wh * ww * x[..., ih, iw] for ih, wh in th for iw, ww in tw)
    return y


def ref_resize_grad(g, in_hw, taps_h, taps_w):
    grad = np.zeros(g.shape[:-2] + tuple(in_hw))
    with np.errstate(invalid="ignore"):
        for i, th in enumerate(taps_h):
            for j, tw in enumerate(taps_w):
                for ih, wh in th:
                    for iw, ww in tw:
                        grad[..., ih, iw] += wh * ww * g[..., i, j]
    return grad


def _assert_same(got, want, what):
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN pattern")
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=f"{what}: Inf pattern")
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-5, atol=1e-5, err_msg=what)


CASES = [  # (mode, in (H, W), kwargs) -- kwargs: size or scale_factor, align_corners
    ("nearest", (4, 5), {"scale_factor": 2}),
    ("nearest", (4, 5), {"size": (7, 3)}),
    ("bilinear", (4, 5), {"scale_factor": 2}),
    ("bilinear", (4, 5), {"size": (7, 9), "align_corners": True}),
    ("bilinear", (4, 5), {"size": (3, 2)}),
    ("bilinear", (4, 5), {"size": (4, 8)}),  # same height: x * 1 + x * 0 there
]


def _kernel_taps(mode, in_hw, kw):
    size = kw.get("size")
    out = size if size is not None else tuple(int(n * kw["scale_factor"]) for n in in_hw)
    scale = kw.get("scale_factor")
    kind = "linear" if mode == "bilinear" else mode
    return [_taps(kind, n, o, kw.get("align_corners", False), scale) for n, o in zip(in_hw, out)]


@pytest.mark.parametrize("mode,in_hw,kw", CASES)
@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_interpolate_non_finite_reaches_only_the_outputs_that_read_it(mode, in_hw, kw, special):
    x = rng.standard_normal((2, 3) + in_hw)
    x[0, 1, 1, 2] = special
    x[1, 2, 3, 0] = special
    taps_h, taps_w = _kernel_taps(mode, in_hw, kw)
    t = pve.tensor(x.astype(np.float32), requires_grad=True)
    y = F.interpolate(t, mode=mode, **kw)
    want = ref_resize(x.astype(np.float32).astype(np.float64), taps_h, taps_w)
    _assert_same(y.detach().numpy(), want, "forward")
    assert np.isfinite(want).any()  # (the rest of each plane stays finite)
    g = rng.standard_normal(want.shape)
    g[1, 0, 2, 1] = np.nan  # a NaN upstream gradient reaches only the taps it came from
    y.backward(pve.tensor(g.astype(np.float32)))
    _assert_same(t.grad.numpy(), ref_resize_grad(g.astype(np.float32).astype(np.float64), in_hw,
                                                 taps_h, taps_w), "backward")


@pytest.mark.parametrize("mode,in_hw,kw", CASES)
def test_interpolate_matches_the_reference_and_finite_differences(mode, in_hw, kw):
    x = rng.standard_normal((2, 2) + in_hw)
    taps_h, taps_w = _kernel_taps(mode, in_hw, kw)
    check_op(lambda t: F.interpolate(t, mode=mode, **kw),
             lambda a: ref_resize(a, taps_h, taps_w), [x])


@pytest.mark.parametrize("mode,n,kw", [
    ("linear", 5, {"size": 9}), ("linear", 5, {"scale_factor": 2}),
    ("linear", 5, {"size": 3, "align_corners": True}), ("nearest", 4, {"size": 7}),
    ("nearest", 3, {"scale_factor": 2}), ("nearest-exact", 4, {"size": 7}),
])
def test_interpolate_3d_input(mode, n, kw):
    x = rng.standard_normal((2, 3, n))
    out = kw.get("size") or int(n * kw["scale_factor"])
    taps = _taps(mode, n, out, kw.get("align_corners", False), kw.get("scale_factor"))
    one = [((0, 1.0),)]  # a unit height turns the 2-D reference into the 1-D one
    check_op(lambda t: F.interpolate(t, mode=mode, **kw),
             lambda a: ref_resize(a[:, :, None, :], one, taps)[:, :, 0, :], [x])


def test_interpolate_3d_nearest_forward_has_no_same_size_shortcut():
    # torch's 1-D nearest forward reads floor(i / scale) even where the size stays the
    # same (3 -> 3 by 1.2); its 2-D kernels copy there.
    x = np.arange(3, dtype=np.float32).reshape(1, 1, 3)
    np.testing.assert_array_equal(F.interpolate(x, scale_factor=1.2).numpy().ravel(), [0, 0, 1])
    np.testing.assert_array_equal(F.interpolate(x[:, :, None], scale_factor=1.2).numpy().ravel(),
                                  [0, 1, 2])


@pytest.mark.parametrize("in_hw,out", [((4, 5), (7, 3)), ((6, 6), (4, 9)), ((3, 8), (9, 5))])
def test_interpolate_nearest_exact(in_hw, out):
    x = rng.standard_normal((1, 2) + in_hw)
    taps = [_taps("nearest-exact", n, o) for n, o in zip(in_hw, out)]
    check_op(lambda t: F.interpolate(t, size=out, mode="nearest-exact"),
             lambda a: ref_resize(a, *taps), [x])


def test_interpolate_large_upsampling_factor_backward():
    # long runs of outputs per source pixel take the reduceat path in backward
    x = rng.standard_normal((1, 2, 2, 3))
    taps = [_taps("linear", n, o) for n, o in zip((2, 3), (40, 50))]
    check_op(lambda t: F.interpolate(t, size=(40, 50), mode="bilinear"),
             lambda a: ref_resize(a, *taps), [x])


def test_interpolate_argument_errors():
    x4 = np.zeros((1, 2, 3, 4), np.float32)
    x3 = np.zeros((1, 2, 3), np.float32)
    with pytest.raises(ValueError, match="interpolate: mode 'bilinear' expects a 4-D"):
        F.interpolate(x3, size=4, mode="bilinear")
    with pytest.raises(NotImplementedError, match="mode 'linear' expects a 3-D"):
        F.interpolate(x4, size=4, mode="linear")
    with pytest.raises(ValueError, match="mode 'nearest' expects a 3-D .* or 4-D"):
        F.interpolate(np.zeros((1, 2, 3, 4, 5), np.float32), size=2)
    with pytest.raises(ValueError, match="anti-alias option is restricted"):
        F.interpolate(x4, size=2, antialias=True)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x4, size=2, scale_factor=2)
    with pytest.raises(ValueError, match="recompute_scale_factor is not meaningful"):
        F.interpolate(x4, size=2, recompute_scale_factor=True)
    with pytest.raises(ValueError, match="same number of spatial dimensions"):
        F.interpolate(x4, size=(2,))
    with pytest.raises(TypeError, match="size must be an int"):
        F.interpolate(x4, size=(2.0, 2))
    with pytest.raises(TypeError, match="scale_factor must be a number"):
        F.interpolate(x4, scale_factor="2")
    with pytest.raises(ValueError, match="scale_factor must be finite"):
        F.interpolate(x4, scale_factor=math.inf)
    with pytest.raises(ValueError, match="sizes should be greater than 0"):
        F.interpolate(x4, scale_factor=0.1)
    with pytest.raises(ValueError, match="non-empty 4-D data tensor expected"):
        F.interpolate(np.zeros((2, 0, 3, 4), np.float32), size=2)
    with pytest.raises(ValueError, match="align_corners option can only be set"):
        F.interpolate(x4, size=2, mode="nearest-exact", align_corners=False)
    assert F.interpolate(np.zeros((0, 2, 3, 4), np.float32), size=(5, 6)).shape == (0, 2, 5, 6)


def test_interpolate_scale_factor_sizes_and_recompute():
    x = rng.standard_normal((1, 1, 5, 7)).astype(np.float32)
    y = F.interpolate(x, scale_factor=(1.5, 0.7), mode="bilinear")
    assert y.shape == (1, 1, 7, 4)  # truncated, as torch
    # recompute_scale_factor: the source positions use in / out, not 1 / scale_factor
    taps = [_taps("linear", 5, 7), _taps("linear", 7, 4)]
    got = F.interpolate(x, scale_factor=(1.5, 0.7), mode="bilinear",
                        recompute_scale_factor=True).numpy()
    np.testing.assert_allclose(got, ref_resize(x.astype(np.float64), *taps), rtol=1e-5, atol=1e-6)


def test_upsample_layer_repr_and_scale_factor_types():
    assert repr(pve.nn.Upsample(scale_factor=(2, 3))) == \
        "Upsample(scale_factor=(2.0, 3.0), mode='nearest')"
    assert repr(pve.nn.Upsample(scale_factor=2, mode="bilinear")) == \
        "Upsample(scale_factor=2.0, mode='bilinear')"
    assert repr(pve.nn.Upsample(size=(4, 5))) == "Upsample(size=(4, 5), mode='nearest')"
    with pytest.raises(TypeError, match="Upsample: scale_factor"):
        pve.nn.Upsample(scale_factor=[2, 3])
    x = np.ones((1, 1, 2, 3), np.float32)
    assert pve.nn.Upsample(scale_factor=(2, 3))(x).shape == (1, 1, 4, 9)
    assert pve.nn.Upsample(scale_factor=2, mode="linear")(x[0]).shape == (1, 2, 6)
