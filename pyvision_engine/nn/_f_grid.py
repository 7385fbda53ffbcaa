"""Spatial transformer functionals: affine_grid and grid_sample, torch semantics.

affine_grid maps the normalized coordinates of an output image (x, y in [-1, 1], the
pixel centres when align_corners=False, the corner pixels when True) through a batch of
2x3 (or 3x4) affine matrices. grid_sample reads an (N, C, H, W) input at the (x, y)
positions of an (N, Ho, Wo, 2) grid with torch's grid_sampler_2d rules:

- unnormalize: align_corners ((c + 1) / 2) * (size - 1), else ((c + 1) * size - 1) / 2;
- padding 'zeros' (taps outside read 0), 'border' (clip into [0, size - 1]),
  'reflection' (reflect about the border pixels' centres or edges, then clip);
- 'bilinear' (4 taps), 'nearest' (round half to even, as torch's nearbyint), 'bicubic'
  (4x4 taps of the A = -0.75 cubic convolution; torch pads each integer tap position,
  not the sample position).

Everything is vectorized as separable taps: a tap along x times a tap along y, each
with its index, weight and the weight's derivative; the gradient w.r.t. the input is
one bincount over all taps and the one w.r.t. the grid follows from the derivatives.
Computed in float64, returned as float32.
"""

from __future__ import annotations

import warnings
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import (NotImplementedValueError, RuntimeTypeError,
                                          RuntimeValueError)
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["affine_grid", "grid_sample"]

_MODES = ("bilinear", "nearest", "bicubic")
_PADDINGS = ("zeros", "border", "reflection")
_DEFAULT_ALIGN_WARNING = (
    "Default grid_sample and affine_grid behavior has changed to align_corners=False since "
    "1.3.0. Please specify align_corners=True if the old behavior is desired. See the "
    "documentation of grid_sample for details.")
_CUBIC_A = -0.75  # torch's (and OpenCV's) bicubic coefficient


# ------------------------------------------------------------------------ affine_grid
def _base_coords(steps: int, align_corners: bool) -> np.ndarray:
    """torch's linspace_from_neg_one: pixel centres (or corners) in [-1, 1]; one step is 0."""
    if steps <= 1:
        return np.zeros(max(steps, 0))
    coords = np.linspace(-1.0, 1.0, steps)
    return coords if align_corners else coords * (steps - 1) / steps


def base_grid(spatial: Sequence[int], align_corners: bool) -> np.ndarray:
    """(prod(spatial), len(spatial) + 1) rows of (x, y[, z], 1): x along the last axis."""
    axes = [_base_coords(s, align_corners) for s in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")  # one array per spatial axis, depth first
    columns = [m.reshape(-1) for m in reversed(mesh)]  # x (width) first, as torch
    columns.append(np.ones(columns[0].shape))
    return np.stack(columns, axis=1)


class _AffineGrid(Function):
    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, theta, spatial, align_corners):
        base = ctx.base = base_grid(spatial, align_corners)
        # (N, P, k + 1) @ (N, k + 1, k) -> (N, P, k)
        grid = np.matmul(base[None], theta.astype(np.float64).transpose(0, 2, 1))
        return grid.reshape((theta.shape[0],) + tuple(spatial) + (len(spatial),)).astype(
            np.float32)

    @staticmethod
    def backward(ctx, g):
        g = np.asarray(g, np.float64).reshape(g.shape[0], -1, g.shape[-1])
        return np.matmul(g.transpose(0, 2, 1), ctx.base[None]).astype(np.float32), None, None


def affine_grid(theta: Any, size: Any, align_corners: Optional[bool] = None) -> Tensor:
    """The sampling grid of a batch of affine transforms, for grid_sample.

    theta (N, 2, 3) with size (N, C, H, W) gives (N, H, W, 2); theta (N, 3, 4) with size
    (N, C, D, H, W) gives (N, D, H, W, 3). Entry [..., 0] is x (along W). align_corners
    defaults to False, with torch's warning when left unset.
    """
    if align_corners is None:
        warnings.warn(_DEFAULT_ALIGN_WARNING, UserWarning, stacklevel=2)
        align_corners = False
    t = as_tensor(theta)
    if t.dtype != np.float32:
        raise ValueError(f"affine_grid: Expected theta to have floating point type, but got "
                         f"{t.dtype}")
    dims = [int(s) for s in size]
    if len(dims) == 4:
        if t.ndim != 3 or tuple(t.shape[-2:]) != (2, 3):
            raise ValueError(f"affine_grid: Expected a batch of 2D affine matrices of shape "
                             f"Nx2x3 for size {size}. Got {tuple(t.shape)}.")
    elif len(dims) == 5:
        if t.ndim != 3 or tuple(t.shape[-2:]) != (3, 4):
            raise ValueError(f"affine_grid: Expected a batch of 3D affine matrices of shape "
                             f"Nx3x4 for size {size}. Got {tuple(t.shape)}.")
    else:
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D "
                                  f"affine transforms, respectively. Got size {size}.")
    spatial = dims[2:]
    if align_corners and min(spatial) == 1:
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size "
                      "grids when align_corners=True. This is not an intended use case of "
                      "affine_grid. See the documentation of affine_grid for details.",
                      UserWarning, stacklevel=2)
    elif min(dims) <= 0:
        raise ValueError(f"affine_grid: Expected non-zero, positive output size. Got {size}")
    if t.shape[0] != dims[0]:
        raise RuntimeValueError(f"affine_grid: theta has batch size {t.shape[0]} but size "
                                f"asks for {dims[0]} (theta {tuple(t.shape)}, size {size})")
    return _AffineGrid.apply(t, tuple(spatial), bool(align_corners))


# ------------------------------------------------------------------------ coordinates
def _unnormalize(coord: np.ndarray, size: int, align_corners: bool) -> Tuple[np.ndarray, float]:
    """Grid value -> pixel coordinate, and d(pixel)/d(grid); in the grid's precision and
    in the order of torch's vectorized CPU kernel, so that ties (nearest) fall as there."""
    if align_corners:
        return (coord + 1) * ((size - 1) / 2), (size - 1) / 2
    return (coord + 1) * (size / 2) - 0.5, size / 2


def _clip(x: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """torch's clip_coordinates_get_grad: into [0, size - 1] (NaN to 0, as torch's
    vectorized clamp), gradient 0 at and beyond the ends."""
    inside = (x > 0) & (x < size - 1)
    return np.minimum(np.fmax(x, 0), size - 1), inside.astype(np.float64)


def _reflect(x: np.ndarray, size: int, align_corners: bool) -> Tuple[np.ndarray, np.ndarray]:
    """torch's vectorized reflect_coordinates_get_grad: fold x into [0, size - 1] (align
    corners) or [-0.5, size - 0.5] by mirroring, in the same float operations (so huge
    values fold as torch's do; inf and NaN give NaN, which the clip makes 0)."""
    twice_span = 2 * (size - 1) if align_corners else 2 * size
    if twice_span == 0:
        return np.zeros_like(x), np.zeros_like(x)
    if not align_corners:
        x = x + 0.5
    magnitude = np.abs(x)
    extra = magnitude - np.trunc(magnitude / twice_span) * twice_span
    reflected = twice_span - extra
    flip = extra > reflected
    folded = np.where(flip, reflected, extra)
    sign = np.where(flip ^ (x < 0), -1.0, 1.0)
    return (folded if align_corners else folded - 0.5), sign


def _pad_coords(x: np.ndarray, size: int, padding: str,
                align_corners: bool) -> Tuple[np.ndarray, np.ndarray]:
    """torch's compute_coordinates (with its gradient factor): border clips, reflection
    mirrors then clips, zeros leaves x as it is."""
    if padding == "zeros":
        return x, np.ones_like(x)
    mult = np.ones_like(x)
    if padding == "reflection":
        x, mult = _reflect(x, size, align_corners)
    x, inside = _clip(x, size)
    return x, mult * inside


def _cubic_weights(t: np.ndarray) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """The 4 cubic-convolution weights of taps at offsets -1, 0, 1, 2 from floor, for the
    fraction t, and their derivatives in t. Not interpolate's _f_shape._cubic_weights: the
    last weight is far(2 - t), as torch's vectorized grid sampler computes it, where
    upsampling's get_cubic_upsample_coefficients takes (1 - t) + 1 (1 ulp apart)."""
    a = _CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def near_d(x):
        return (3 * (a + 2) * x - 2 * (a + 3)) * x

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    def far_d(x):
        return (3 * a * x - 10 * a) * x + 8 * a

    weights = [far(t + 1), near(t), near(1 - t), far(2 - t)]
    derivs = [far_d(t + 1), near_d(t), -near_d(1 - t), -far_d(2 - t)]
    return weights, derivs


# A tap along one axis: (index as float, before the bounds check; weight; d weight / d coord)
Tap = Tuple[np.ndarray, np.ndarray, np.ndarray]


def _axis_taps(coord: np.ndarray, size: int, mode: str, padding: str,
               align_corners: bool) -> Tuple[List[Tap], np.ndarray]:
    """The taps along one axis for grid values ``coord``, and d(pixel coord)/d(grid)."""
    x, scale = _unnormalize(coord, size, align_corners)
    if mode == "bicubic":
        # torch: the unpadded position gives the fraction; each tap index is then padded
        base = np.floor(x)
        weights, derivs = _cubic_weights(x - base)
        taps = [(_pad_coords(base - 1 + k, size, padding, align_corners)[0], weights[k],
                 derivs[k]) for k in range(4)]
        return taps, np.full_like(x, scale)
    x, mult = _pad_coords(x, size, padding, align_corners)
    if mode == "nearest":
        return [(np.rint(x), np.ones_like(x), np.zeros_like(x))], mult * scale
    low = np.floor(x)
    frac = x - low  # (torch: the east weight is frac, the west one 1 - frac)
    return [(low, 1 - frac, -np.ones_like(x)), (low + 1, frac, np.ones_like(x))], \
        mult * scale


def _checked_index(index: np.ndarray, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Integer index (torch truncates) and the in-bounds mask; NaN and far values are out."""
    inside = (index > -1) & (index < size)
    return np.where(inside, index, 0).astype(np.int64), inside


class _Plan:
    """The 2-D taps of one grid: linear indices into H * W, whether each is inside the
    image, weights and their derivatives. As torch, an outside tap reads 0 and the weight
    is not masked (0 * a NaN weight is NaN), and it receives no gradient."""

    def __init__(self, grid: np.ndarray, h: int, w: int, mode: str, padding: str,
                 align_corners: bool) -> None:
        # coordinates in float32 for a float32 grid (as torch computes them), else float64;
        # weights and sums in float64
        grid = grid if grid.dtype == np.float32 else grid.astype(np.float64)
        xs, self.scale_x = _axis_taps(grid[..., 0], w, mode, padding, align_corners)
        ys, self.scale_y = _axis_taps(grid[..., 1], h, mode, padding, align_corners)
        self.index, self.inside, self.weight, self.dweight_x, self.dweight_y = [], [], [], [], []
        for iy, wy, dy in ys:
            iy, in_y = _checked_index(iy, h)
            for ix, wx, dx in xs:
                ix, in_x = _checked_index(ix, w)
                self.index.append(iy * w + ix)
                self.inside.append(in_y & in_x)
                wx64, wy64 = wx.astype(np.float64), wy.astype(np.float64)
                self.weight.append(wy64 * wx64)
                self.dweight_x.append(wy64 * dx)
                self.dweight_y.append(dy * wx64)

    def read(self, flat: np.ndarray, tap: int) -> np.ndarray:
        """The values tap ``tap`` reads from flat (N, C, H * W): (N, C, Ho, Wo), 0 outside."""
        return np.where(self.inside[tap][:, None], _gather(flat, self.index[tap]), 0.0)


def _gather(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """x (N, C, H*W) at index (N, Ho, Wo) -> (N, C, Ho, Wo)."""
    n, c = x.shape[:2]
    picked = np.take_along_axis(x, index.reshape(n, 1, index[0].size if n else 0), axis=2)
    return picked.reshape((n, c) + index.shape[1:])


def sample_array(x: np.ndarray, grid: np.ndarray, mode: str, padding: str,
                 align_corners: bool) -> Tuple[np.ndarray, _Plan, np.ndarray]:
    """grid_sample on arrays, in float64 (shared with pve.onnx's GridSample): the result
    (N, C, Ho, Wo), the taps and the input as float64 (N, C, H * W)."""
    n, c, h, w = x.shape
    with np.errstate(invalid="ignore", over="ignore"):  # (NaN / inf positions: as torch, quietly)
        plan = _Plan(grid, h, w, mode, padding, align_corners)
        flat = x.reshape(n, c, h * w).astype(np.float64)
        out = np.zeros((n, c) + grid.shape[1:3])
        for tap, weight in enumerate(plan.weight):
            out += plan.read(flat, tap) * weight[:, None]
    return out, plan, flat


class _GridSample(Function):
    saved_inputs, saves_output = (0, 1), False

    @staticmethod
    def forward(ctx, x, grid, mode, padding, align_corners):
        out, plan, flat = sample_array(x, grid, mode, padding, align_corners)
        ctx.plan, ctx.x_shape, ctx.mode = plan, x.shape, mode
        ctx.flat = flat if ctx.needs_input_grad[1] and mode != "nearest" else None
        return out.astype(np.float32)

    @staticmethod
    def backward(ctx, g):
        with np.errstate(invalid="ignore", over="ignore"):
            return _GridSample._backward(ctx, np.asarray(g, np.float64))

    @staticmethod
    def _backward(ctx, g):
        plan, (n, c, h, w) = ctx.plan, ctx.x_shape
        grad_x = grad_grid = None
        if ctx.needs_input_grad[0]:
            # one bincount over all taps: flat position (n * C + c) * H * W + index
            plane = (np.arange(n * c) * (h * w)).reshape(n, c, 1, 1)
            positions = np.concatenate([(plane + index[:, None]).reshape(-1)
                                        for index in plan.index])
            values = np.concatenate([(g * np.where(inside, weight, 0.0)[:, None]).reshape(-1)
                                     for inside, weight in zip(plan.inside, plan.weight)])
            grad_x = np.bincount(positions, weights=values, minlength=n * c * h * w)
            grad_x = grad_x.reshape(n, c, h, w).astype(np.float32)
        if ctx.needs_input_grad[1]:
            grad_grid = np.zeros(g.shape[:1] + g.shape[2:] + (2,))
            if ctx.mode != "nearest":  # (nearest: piecewise constant, zero as torch)
                gx = gy = 0.0
                for tap, (dx, dy) in enumerate(zip(plan.dweight_x, plan.dweight_y)):
                    seen = np.sum(plan.read(ctx.flat, tap) * g, axis=1)
                    gx = gx + seen * dx
                    gy = gy + seen * dy
                grad_grid[..., 0] = gx * plan.scale_x
                grad_grid[..., 1] = gy * plan.scale_y
            grad_grid = grad_grid.astype(np.float32)
        return grad_x, grad_grid, None, None, None


def _sizes(t: Tensor) -> List[int]:
    return list(t.shape)


def grid_sample(input: Any, grid: Any, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: Optional[bool] = None) -> Tensor:
    """Sample input (N, C, H, W) at the normalized (x, y) positions of grid (N, Ho, Wo, 2):
    -> (N, C, Ho, Wo). x = -1 is the left edge (align_corners=False) or the centre of the
    left pixel (True). mode 'bilinear' | 'nearest' | 'bicubic', padding_mode 'zeros' |
    'border' | 'reflection'; align_corners defaults to False with torch's warning.
    Differentiable w.r.t. input and grid (nearest: zero gradient w.r.t. grid)."""
    op = "grid_sample"
    if mode not in _MODES:
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', "
                         f"'nearest' or 'bicubic', but got: '{mode}'")
    if padding_mode not in _PADDINGS:
        raise ValueError(f"nn.functional.grid_sample(): expected padding_mode to be 'zeros', "
                         f"'border', or 'reflection', but got: '{padding_mode}'")
    if align_corners is None:
        warnings.warn(_DEFAULT_ALIGN_WARNING, UserWarning, stacklevel=2)
        align_corners = False
    x, g = as_tensor(input), as_tensor(grid)
    if x.dtype != np.float32:
        raise NotImplementedValueError(f"{op}: input must be float32, got {x.dtype}")
    if g.dtype != np.float32:
        raise RuntimeTypeError(f"{op}: grid must be float32 like input, got {g.dtype}")
    shapes = f"input with sizes {_sizes(x)} and grid with sizes {_sizes(g)}"
    if x.ndim == 0 or g.ndim == 0 or x.shape[0] != g.shape[0]:
        raise RuntimeValueError(f"{op}: expected grid and input to have same batch size, but "
                                f"got {shapes}")
    if g.shape[-1] != x.ndim - 2:
        raise RuntimeValueError(f"{op}: expected grid to have size {x.ndim - 2} in last "
                                f"dimension, but got grid with sizes {_sizes(g)}")
    for d in range(2, x.ndim):
        if x.shape[d] == 0:
            raise RuntimeValueError(f"{op}: expected input to have non-empty spatial "
                                    f"dimensions, but input has sizes {_sizes(x)} with "
                                    f"dimension {d} being empty")
    if x.ndim == 5 and g.ndim == 5:
        raise NotImplementedValueError(f"{op}: volumetric (5-D) input is not supported, only "
                                       f"2-D sampling of 4-D input (N, C, H, W) with grid "
                                       f"(N, H_out, W_out, 2); got {shapes}")
    if x.ndim != 4 or g.ndim != 4:
        raise RuntimeValueError(f"{op}: expected 4D input and grid with same number of "
                                f"dimensions, but got {shapes}")
    return _GridSample.apply(x, g, mode, padding_mode, bool(align_corners))
