"""F.grid_sample and F.affine_grid against plain-numpy float64 references written per
output pixel here (torch's grid_sampler_2d rules spelled out as scalar code), with float64
finite differences for the gradients w.r.t. input, grid and theta; every mode x padding
x align_corners, sample points far outside the image included. Exact cases (identity
grids, nearest's round-half-to-even), warnings, empty shapes and errors are written out."""

import itertools
import math
import warnings

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import check_op, run_pve

F = pve.nn.functional
rng = np.random.default_rng(19)
MODES = ["bilinear", "nearest", "bicubic"]
PADDINGS = ["zeros", "border", "reflection"]


# ----------------------------------------------------------------- scalar reference
def _unnormalize(c, size, align):
    return (c + 1) / 2 * (size - 1) if align else ((c + 1) * size - 1) / 2


def _reflect(x, low, high):
    """Mirror x into [low, high] (repeatedly), as torch's reflect_coordinates."""
    if low == high:
        return 0.0
    span = high - low
    d = abs(x - low)
    flips = math.floor(d / span)
    extra = d - flips * span
    return low + extra if flips % 2 == 0 else high - extra


def _pad(x, size, padding, align):
    if padding == "border":
        return min(max(x, 0.0), size - 1.0)
    if padding == "reflection":
        x = _reflect(x, 0.0, size - 1.0) if align else _reflect(x, -0.5, size - 0.5)
        return min(max(x, 0.0), size - 1.0)
    return x


def _read(img, iy, ix):
    """A pixel of one (H, W) plane, 0 outside."""
    h, w = img.shape
    return img[iy, ix] if 0 <= iy < h and 0 <= ix < w else 0.0


def _cubic(d, a=-0.75):
    d = abs(d)
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    if d < 2:
        return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a
    return 0.0


def _sample_point(img, gx, gy, mode, padding, align):
    h, w = img.shape
    x, y = _unnormalize(gx, w, align), _unnormalize(gy, h, align)
    if mode == "bicubic":
        # torch pads each tap's integer position, not the sample position
        x0, y0 = math.floor(x), math.floor(y)
        total = 0.0
        for j in range(-1, 3):
            for i in range(-1, 3):
                px = int(_pad(float(x0 + i), w, padding, align))
                py = int(_pad(float(y0 + j), h, padding, align))
                total += _cubic(x - (x0 + i)) * _cubic(y - (y0 + j)) * _read(img, py, px)
        return total
    x, y = _pad(x, w, padding, align), _pad(y, h, padding, align)
    if mode == "nearest":
        return _read(img, int(round(y)), int(round(x)))  # (Python's round: half to even)
    x0, y0 = math.floor(x), math.floor(y)
    fx, fy = x - x0, y - y0
    return ((1 - fx) * (1 - fy) * _read(img, y0, x0) + fx * (1 - fy) * _read(img, y0, x0 + 1)
            + (1 - fx) * fy * _read(img, y0 + 1, x0) + fx * fy * _read(img, y0 + 1, x0 + 1))


def grid_sample_ref(x, grid, mode, padding, align):
    n, c = x.shape[:2]
    ho, wo = grid.shape[1:3]
    out = np.zeros((n, c, ho, wo))
    for b, ch, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
        out[b, ch, i, j] = _sample_point(x[b, ch], grid[b, i, j, 0], grid[b, i, j, 1], mode,
                                         padding, align)
    return out


def affine_grid_ref(theta, size, align):
    n, _, h, w = size

    def coord(k, steps):
        if steps == 1:
            return 0.0
        return -1 + 2 * k / (steps - 1) if align else (2 * k + 1) / steps - 1

    out = np.zeros((n, h, w, 2))
    for b, i, j in itertools.product(range(n), range(h), range(w)):
        out[b, i, j] = theta[b] @ np.array([coord(j, w), coord(i, h), 1.0])
    return out


# ----------------------------------------------------------------- inputs
def _normalize(pixel, size, align):
    return pixel / (size - 1) * 2 - 1 if align else (2 * pixel + 1) / size - 1


def _grid_away_from_kinks(n, ho, wo, h, w, align):
    """Grid values whose pixel coordinates lie from two images left of the image to two
    right of it, with fractions in [0.1, 0.4] or [0.6, 0.9]: away from the integers and
    half-integers where floor, rounding, clipping and reflection bend."""
    def pixels(size, shape):
        whole = rng.integers(-2 * size, 3 * size, shape)
        frac = rng.uniform(0.1, 0.4, shape) + rng.integers(0, 2, shape) * 0.5
        return whole + frac
    return np.stack([_normalize(pixels(w, (n, ho, wo)), w, align),
                     _normalize(pixels(h, (n, ho, wo)), h, align)], axis=-1)


# ----------------------------------------------------------------- values and gradients
@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_grid_sample_matches_reference_and_finite_differences(mode, padding, align):
    x = rng.standard_normal((2, 2, 4, 5))
    grid = _grid_away_from_kinks(2, 3, 4, 4, 5, align)
    check_op(lambda a, g: F.grid_sample(a, g, mode, padding, align),
             lambda a, g: grid_sample_ref(a, g, mode, padding, align), [x, grid],
             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
def test_grid_sample_far_outside_and_single_pixel_images(mode, padding):
    # sample points ten images away, and 1-pixel-wide axes (reflection degenerates to 0)
    for shape in ((1, 2, 3, 1), (1, 1, 1, 1)):
        x = rng.standard_normal(shape)
        grid = rng.uniform(-25, 25, (1, 5, 3, 2))
        for align in (False, True):
            out, _ = run_pve(lambda a, g: F.grid_sample(a, g, mode, padding, align), [x, grid],
                             grad=False)
            x32 = x.astype(np.float32).astype(np.float64)
            g32 = grid.astype(np.float32).astype(np.float64)
            np.testing.assert_allclose(out, grid_sample_ref(x32, g32, mode, padding, align),
                                       rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("mode", MODES)
def test_identity_grid_reproduces_the_input(mode, align):
    # at pixel positions all three modes read the pixel itself (cubic weights 0, 1, 0, 0)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    theta = np.tile(np.eye(2, 3, dtype=np.float32), (2, 1, 1))
    grid = F.affine_grid(pve.tensor(theta), (2, 3, 5, 6), align_corners=align)
    out = F.grid_sample(pve.tensor(x), grid, mode, "zeros", align)
    np.testing.assert_allclose(out.numpy(), x, rtol=1e-5, atol=1e-5)


def test_nearest_rounds_half_to_even():
    # align_corners=True on 5 pixels: grid -0.75, -0.25, 0.25, 0.75 are pixels 0.5, 1.5, 2.5,
    # 3.5 exactly; torch's nearbyint picks 0, 2, 2, 4 (not 1, 2, 3, 4)
    x = np.arange(5, dtype=np.float32).reshape(1, 1, 1, 5) * 10
    grid = np.zeros((1, 1, 4, 2), np.float32)
    grid[0, 0, :, 0] = [-0.75, -0.25, 0.25, 0.75]
    out = F.grid_sample(pve.tensor(x), pve.tensor(grid), "nearest", "zeros", True)
    np.testing.assert_array_equal(out.numpy().reshape(-1), [0, 20, 20, 40])


def test_nearest_gives_zero_grid_gradient_and_routes_input_gradient():
    x = pve.tensor(rng.standard_normal((1, 1, 3, 3)).astype(np.float32), requires_grad=True)
    grid = pve.tensor(np.array([[[[0.0, 0.0], [0.0, 0.1]]]], np.float32), requires_grad=True)
    F.grid_sample(x, grid, "nearest", "zeros", True).sum().backward()
    np.testing.assert_array_equal(grid.grad.numpy(), 0)
    expected = np.zeros((1, 1, 3, 3), np.float32)
    expected[0, 0, 1, 1] = 2  # both points read the centre pixel
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_grid_without_grad_and_input_without_grad():
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    g = (rng.uniform(-1, 1, (1, 3, 3, 2))).astype(np.float32)
    tx = pve.tensor(x, requires_grad=True)
    F.grid_sample(tx, pve.tensor(g), align_corners=False).sum().backward()
    assert tx.grad is not None and tx.grad.shape == x.shape
    tg = pve.tensor(g, requires_grad=True)
    out = F.grid_sample(pve.tensor(x), tg, align_corners=False)
    out.sum().backward()
    assert tg.grad.shape == g.shape and out.dtype == pve.float32


# ----------------------------------------------------------------- affine_grid
@pytest.mark.parametrize("size", [(2, 3, 4, 5), (1, 1, 1, 3), (2, 1, 3, 1)])
@pytest.mark.parametrize("align", [False, True])
def test_affine_grid_matches_reference_and_finite_differences(size, align):
    theta = rng.standard_normal((size[0], 2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (align_corners with a unit size warns, as torch)
        check_op(lambda t: F.affine_grid(t, size, align), lambda t: affine_grid_ref(t, size, align),
                 [theta])


def test_affine_grid_3d_values():
    theta = rng.standard_normal((2, 3, 4)).astype(np.float32)
    out = F.affine_grid(pve.tensor(theta), [2, 1, 2, 3, 4], align_corners=False).numpy()
    assert out.shape == (2, 2, 3, 4, 3)
    zs, ys, xs = ((2 * np.arange(s) + 1) / s - 1 for s in (2, 3, 4))
    for b, d, i, j in itertools.product(range(2), range(2), range(3), range(4)):
        np.testing.assert_allclose(out[b, d, i, j], theta[b] @ [xs[j], ys[i], zs[d], 1.0],
                                   rtol=1e-5, atol=1e-6)


def test_default_align_corners_warns_as_torch():
    theta = pve.tensor(np.tile(np.eye(2, 3, dtype=np.float32), (1, 1, 1)))
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        grid = F.affine_grid(theta, (1, 1, 2, 2))
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):
        F.grid_sample(pve.zeros(1, 1, 2, 2), grid)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.grid_sample(pve.zeros(1, 1, 2, 2), F.affine_grid(theta, (1, 1, 2, 2), False), "bilinear",
                      "zeros", False)
    with pytest.warns(UserWarning, match="unit-size grids"):
        F.affine_grid(theta, (1, 1, 1, 2), align_corners=True)


# ----------------------------------------------------------------- shapes and errors
def test_empty_batch_channels_and_output():
    cases = [((0, 2, 3, 3), (0, 2, 2, 2), (0, 2, 2, 2)), ((1, 0, 3, 3), (1, 2, 2, 2), (1, 0, 2, 2)),
             ((1, 2, 3, 3), (1, 0, 4, 2), (1, 2, 0, 4))]
    for xs, gs, want in cases:
        x = pve.tensor(np.zeros(xs, np.float32), requires_grad=True)
        g = pve.tensor(np.zeros(gs, np.float32), requires_grad=True)
        out = F.grid_sample(x, g, align_corners=False)
        assert tuple(out.shape) == want
        out.sum().backward()
        assert tuple(x.grad.shape) == xs and tuple(g.grad.shape) == gs


def test_grid_sample_errors():
    x, g = pve.zeros(1, 2, 4, 5), pve.zeros(1, 3, 3, 2)
    with pytest.raises(ValueError, match="expected mode to be 'bilinear'.*'foo'"):
        F.grid_sample(x, g, mode="foo")
    with pytest.raises(ValueError, match="expected padding_mode.*'foo'"):
        F.grid_sample(x, g, padding_mode="foo")
    with pytest.raises(RuntimeError, match=r"grid_sample.*same batch size.*\[1, 2, 4, 5\].*"
                                           r"\[2, 3, 3, 2\]"):
        F.grid_sample(x, pve.zeros(2, 3, 3, 2), align_corners=False)
    with pytest.raises(RuntimeError, match=r"grid_sample.*size 2 in last dimension.*\[1, 3, 3, 3\]"):
        F.grid_sample(x, pve.zeros(1, 3, 3, 3), align_corners=False)
    with pytest.raises(RuntimeError, match=r"grid_sample.*non-empty spatial.*dimension 2"):
        F.grid_sample(pve.zeros(1, 2, 0, 5), g, align_corners=False)
    with pytest.raises(RuntimeError, match=r"grid_sample.*4D input and grid"):
        F.grid_sample(pve.zeros(1, 2, 4), pve.zeros(1, 3, 1), align_corners=False)
    with pytest.raises(NotImplementedError, match=r"grid_sample.*volumetric.*2-D"):
        F.grid_sample(pve.zeros(1, 2, 3, 4, 5), pve.zeros(1, 2, 2, 2, 3), align_corners=False)
    with pytest.raises(TypeError, match="grid_sample: grid must be float32"):
        F.grid_sample(x, pve.tensor(np.zeros((1, 3, 3, 2), np.int64)), align_corners=False)


def test_affine_grid_errors():
    theta = pve.zeros(1, 2, 3)
    with pytest.raises(ValueError, match=r"affine_grid.*Nx2x3 for size \(1, 2, 4, 5\).*\(1, 3, 3\)"):
        F.affine_grid(pve.zeros(1, 3, 3), (1, 2, 4, 5), False)
    with pytest.raises(ValueError, match=r"affine_grid.*Nx3x4"):
        F.affine_grid(theta, (1, 2, 4, 5, 6), False)
    with pytest.raises(NotImplementedError, match="affine_grid only supports 4D and 5D sizes"):
        F.affine_grid(theta, (1, 2, 4), False)
    with pytest.raises(ValueError, match=r"affine_grid.*non-zero, positive output size"):
        F.affine_grid(theta, (1, 2, 0, 5), False)
    with pytest.raises(ValueError, match="affine_grid.*floating point type"):
        F.affine_grid(pve.tensor(np.zeros((1, 2, 3), np.int64)), (1, 2, 4, 5), False)
    with pytest.raises(RuntimeError, match=r"affine_grid.*batch size 1.*2"):
        F.affine_grid(theta, (2, 2, 4, 5), False)


@pytest.mark.parametrize("mode", MODES)
def test_taps_outside_the_image_read_zero_not_a_pixel(mode):
    # an inf in the first pixel must not leak into samples whose outside taps would be
    # indexed there (0 * inf); the reference never reads outside the image
    x = rng.standard_normal((1, 1, 4, 5))
    x[0, 0, 0, 0] = np.inf
    grid = np.array([[[[0.95, 0.9], [1.3, -0.2], [0.4, 1.6], [0.62, 0.77]]]])
    for align in (False, True):
        out, _ = run_pve(lambda a, g: F.grid_sample(a, g, mode, "zeros", align), [x, grid],
                         grad=False)
        x32, g32 = (a.astype(np.float32).astype(np.float64) for a in (x, grid))
        want = grid_sample_ref(x32, g32, mode, "zeros", align)
        assert np.isfinite(want).all()
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
