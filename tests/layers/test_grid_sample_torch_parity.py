"""F.grid_sample and F.affine_grid against torch.nn.functional (float64): values and the
gradients w.r.t. input, grid and theta on random cases (every mode x padding x
align_corners, points inside and far outside the image), the default-align_corners
warnings, and the error types torch raises. Skips without torch."""

import warnings

import numpy as np
import pytest

import pyvision_engine as pve
from layers_helpers import compare_with_torch

torch = pytest.importorskip("torch", reason="torch is the reference for the parity tests")

F = pve.nn.functional
rng = np.random.default_rng(1919)


@pytest.mark.parametrize("align", [False, True])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_grid_sample_values_and_gradients_match_torch(mode, padding, align):
    for shape, out_hw, spread in (((2, 3, 5, 7), (4, 6), 1.2), ((1, 2, 6, 4), (5, 3), 6.0),
                                  ((3, 1, 1, 5), (2, 2), 3.0)):
        x = rng.standard_normal(shape).astype(np.float32)
        grid = rng.uniform(-spread, spread, (shape[0],) + out_hw + (2,)).astype(np.float32)
        # nearest: torch gives the grid no gradient at all (None); only the input's is compared
        grad_of = (0,) if mode == "nearest" else (0, 1)
        compare_with_torch(torch, "grid_sample", [x, grid],
                           dict(mode=mode, padding_mode=padding, align_corners=align),
                           grad_of=grad_of, rng=rng, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("align", [False, True])
def test_grid_sample_through_affine_grid_matches_torch(align):
    # a rotation and scaling around the centre, gradients flowing back to theta (entries
    # chosen so that no sample lands on a pixel or border, where the gradient has a kink)
    theta = np.array([[[0.813, -0.472, 0.117], [0.523, 0.791, -0.219]],
                      [[1.307, 0.213, 0.031], [-0.109, 0.887, 0.293]]], np.float32)
    x = rng.standard_normal((2, 2, 6, 5)).astype(np.float32)
    up = rng.standard_normal((2, 2, 4, 7))
    t_theta = torch.tensor(theta.astype(np.float64), requires_grad=True)
    t_x = torch.tensor(x.astype(np.float64), requires_grad=True)
    tf = torch.nn.functional
    t_out = tf.grid_sample(t_x, tf.affine_grid(t_theta, (2, 2, 4, 7), align), "bilinear",
                           "reflection", align)
    t_out.backward(torch.tensor(up))
    p_theta, p_x = pve.tensor(theta, requires_grad=True), pve.tensor(x, requires_grad=True)
    p_out = F.grid_sample(p_x, F.affine_grid(p_theta, (2, 2, 4, 7), align), "bilinear",
                          "reflection", align)
    p_out.backward(pve.tensor(up.astype(np.float32)))
    np.testing.assert_allclose(p_out.detach().numpy(), t_out.detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(p_x.grad.numpy(), t_x.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(p_theta.grad.numpy(), t_theta.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size", [(2, 3, 4, 5), (1, 1, 1, 3), (2, 2, 3, 4, 5), (1, 1, 2, 1, 3)])
@pytest.mark.parametrize("align", [False, True])
def test_affine_grid_matches_torch(size, align):
    k = len(size) - 2
    theta = rng.standard_normal((size[0], k, k + 1)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (unit sizes with align_corners warn in both)
        compare_with_torch(torch, "affine_grid", [theta, size], dict(align_corners=align),
                           grad_of=(0,), rng=rng)


def test_warnings_match_torch():
    theta = np.tile(np.eye(2, 3, dtype=np.float32), (1, 1, 1))
    cases = [("affine_grid", (theta, (1, 1, 3, 3)), {}),
             ("affine_grid", (theta, (1, 1, 1, 3)), {"align_corners": True}),
             ("affine_grid", (theta, (1, 1, 3, 3)), {"align_corners": False}),
             ("grid_sample", (np.zeros((1, 1, 2, 2), np.float32),
                              np.zeros((1, 2, 2, 2), np.float32)), {}),
             ("grid_sample", (np.zeros((1, 1, 2, 2), np.float32),
                              np.zeros((1, 2, 2, 2), np.float32)), {"align_corners": True})]
    for name, args, kwargs in cases:
        seen = []
        for lib, wrap in ((torch.nn.functional, torch.tensor), (F, pve.tensor)):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                getattr(lib, name)(*[wrap(a) if isinstance(a, np.ndarray) else a
                                     for a in args], **kwargs)
            seen.append(sorted(str(w.message) for w in caught
                               if issubclass(w.category, UserWarning)))
        assert seen[0] == seen[1], (name, kwargs)


def _error_types(fn_torch, fn_pve):
    try:
        fn_torch()
    except Exception as e:  # noqa: BLE001 (the type is what is compared)
        expected = type(e)
    else:
        raise AssertionError("torch accepted the case")
    with pytest.raises(expected):
        fn_pve()


@pytest.mark.parametrize("x_shape,g_shape,kwargs", [
    ((1, 2, 4, 5), (1, 3, 3, 2), {"mode": "foo"}),
    ((1, 2, 4, 5), (1, 3, 3, 2), {"padding_mode": "foo"}),
    ((1, 2, 4, 5), (2, 3, 3, 2), {}),
    ((1, 2, 4, 5), (1, 3, 3, 3), {}),
    ((1, 2, 4, 5), (1, 3, 3), {}),
    ((2, 4, 5), (1, 3, 3, 2), {}),
    ((1, 2, 0, 5), (1, 3, 3, 2), {}),
    ((1, 2, 3, 4, 5), (1, 2, 2, 2, 3), {"mode": "bicubic"}),
])
def test_grid_sample_error_types_match_torch(x_shape, g_shape, kwargs):
    kwargs = dict(kwargs, align_corners=False)
    x, g = np.zeros(x_shape, np.float32), np.zeros(g_shape, np.float32)
    _error_types(lambda: torch.nn.functional.grid_sample(torch.tensor(x), torch.tensor(g),
                                                         **kwargs),
                 lambda: F.grid_sample(pve.tensor(x), pve.tensor(g), **kwargs))


@pytest.mark.parametrize("theta_shape,size", [
    ((1, 3, 3), (1, 2, 4, 5)), ((1, 2, 3), (1, 2, 4, 5, 6)), ((1, 2, 3), (1, 2, 4)),
    ((1, 2, 3), (1, 2, 0, 5)), ((1, 2, 3), (2, 2, 4, 5)),
])
def test_affine_grid_error_types_match_torch(theta_shape, size):
    theta = np.zeros(theta_shape, np.float32)
    _error_types(lambda: torch.nn.functional.affine_grid(torch.tensor(theta), size, False),
                 lambda: F.affine_grid(pve.tensor(theta), size, False))


def test_nearest_ties_match_torch():
    # every half-pixel position of a small image, both align_corners settings
    x = rng.standard_normal((1, 2, 3, 6)).astype(np.float32)
    for align in (False, True):
        w = 6
        xs = [((k / 2 + 0.5) * 2 / w - 1) if not align else (k / 2) * 2 / (w - 1) - 1
              for k in range(-2, 2 * w + 1)]
        ys = [-1.0, 0.0, 1.0]
        grid = np.array([[[[a, b] for a in xs] for b in ys]], np.float32)
        theirs = torch.nn.functional.grid_sample(torch.tensor(x), torch.tensor(grid), "nearest",
                                                 "zeros", align).numpy()
        ours = F.grid_sample(pve.tensor(x), pve.tensor(grid), "nearest", "zeros", align).numpy()
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest", "bicubic"])
def test_non_finite_and_huge_grid_values_match_torch(mode, padding):
    # NaN and inf sample positions (NaN where torch's weights are NaN, clipped to the first
    # pixel where its clamp sends NaN), positions ~1e30 folded by reflection in float32 as
    # torch folds them, and an inf pixel that only taps outside the image would touch
    x = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    x[0, 0, 0, 0] = np.inf
    values = [np.nan, np.inf, -np.inf, 1e30, -3e29, 7e6 + 0.3, 0.0, -1.2, 5.0]
    grid = np.array([[[[a, b] for a in values] for b in values]], np.float32)
    for align in (False, True):
        theirs = torch.nn.functional.grid_sample(torch.tensor(x), torch.tensor(grid), mode,
                                                 padding, align).numpy()
        ours = F.grid_sample(pve.tensor(x), pve.tensor(grid), mode, padding, align).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5, equal_nan=True)
