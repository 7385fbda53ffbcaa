"""F.fractional_max_pool2d (Graham 2014, "Fractional Max-Pooling"): max over kH x kW
windows whose starts follow a pseudo-random sequence, one sequence per plane and axis.

The starts come from torch's interval formula, evaluated in float32 as torch's CPU
kernel does for float32 input, so the same ``_random_samples`` give the same windows,
values and indices as torch:

    alpha = float(in - k) / float(out - 1)
    start[i] = int((i + u) * alpha) - int(u * alpha)   for i < out - 1
    start[out - 1] = in - k

``u`` is the plane's sample for that axis: ``_random_samples[n, c, 0]`` for the width,
``[n, c, 1]`` for the height. Indices are flat per plane (row * W + col), as
max_pool2d's.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import numpy as np

from pyvision_engine.autograd import Function
from pyvision_engine.nn._f_common import RankError, RuntimeValueError, float_input
from pyvision_engine.random import default_generator
from pyvision_engine.tensor import Tensor, as_tensor

__all__ = ["fractional_max_pool2d", "fractional_max_pool2d_with_indices"]

_OP = "fractional_max_pool2d"
_F32 = np.float32


def interval_starts(samples: np.ndarray, in_size: int, out_size: int, kernel: int) -> np.ndarray:
    """Window starts (planes, out_size) for float32 ``samples`` (planes,), in float32
    arithmetic and with C++'s truncation toward zero, as torch's generate_intervals."""
    starts = np.empty((samples.shape[0], out_size), dtype=np.int64)
    if out_size > 1:
        alpha = _F32(in_size - kernel) / _F32(out_size - 1)
        steps = np.arange(out_size - 1, dtype=_F32)
        u = samples.astype(_F32)[:, None]
        scaled = ((steps[None, :] + u) * alpha).astype(_F32)
        starts[:, :-1] = np.trunc(scaled).astype(np.int64) - np.trunc(u * alpha).astype(np.int64)
    if out_size > 0:
        starts[:, -1] = in_size - kernel
    return starts


def _window_argmax(windows: np.ndarray) -> np.ndarray:
    """Position of each window's maximum along the last axis, with torch's scan rule
    (``v > best or isnan(v)``): the first maximum, or the last NaN when there is one."""
    nan = np.isnan(windows)
    first_max = np.argmax(np.where(nan, -np.inf, windows), axis=-1)
    size = windows.shape[-1]
    last_nan = size - 1 - np.argmax(nan[..., ::-1], axis=-1)
    return np.where(nan.any(axis=-1), last_nan, first_max)


def _pool_planes(planes: np.ndarray, kernel: Tuple[int, int], out: Tuple[int, int],
                 samples: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(values, flat indices), each (P, oH, oW), of the (P, H, W) ``planes`` for
    per-plane samples (P, 2) = (width sample, height sample)."""
    count, height, width = planes.shape
    (kh, kw), (oh, ow) = kernel, out
    rows = interval_starts(samples[:, 1], height, oh, kh)
    cols = interval_starts(samples[:, 0], width, ow, kw)
    for name, starts, size, k in (("height", rows, height, kh), ("width", cols, width, kw)):
        if starts.size and (starts.min() < 0 or starts.max() > size - k):
            raise RuntimeValueError(f"{_OP}: _random_samples give windows outside the input "
                                    f"{name} {size}; samples must lie in [0, 1)")
    # (P, oH, kH) rows and (P, oW, kW) columns of every window element
    row_idx = rows[:, :, None] + np.arange(kh)[None, None, :]
    col_idx = cols[:, :, None] + np.arange(kw)[None, None, :]
    plane_idx = np.arange(count)[:, None, None, None, None]
    windows = planes[plane_idx, row_idx[:, :, None, :, None], col_idx[:, None, :, None, :]]
    flat = windows.reshape(count, oh, ow, kh * kw)
    best = _window_argmax(flat)
    best_row = rows[:, :, None] + best // kw
    best_col = cols[:, None, :] + best % kw
    values = np.take_along_axis(flat, best[..., None], axis=-1)[..., 0]
    return np.ascontiguousarray(values, dtype=_F32), best_row * width + best_col


class _FractionalMaxPool2d(Function):
    """Forward: the windows' maxima; backward: each output gradient added to the input
    element its index names (in output order, float32, as torch's kernel)."""

    saved_inputs, saves_output = (), False

    @staticmethod
    def forward(ctx, x, kernel, out, samples, holder):
        planes = x.reshape((-1,) + x.shape[-2:])
        values, index = _pool_planes(planes, kernel, out, samples)
        ctx.index, ctx.x_shape = index.reshape(index.shape[0], out[0] * out[1]), x.shape
        holder.append(index.reshape(x.shape[:-2] + out))
        return values.reshape(x.shape[:-2] + out)

    @staticmethod
    def backward(ctx, g):
        count = ctx.index.shape[0]
        plane_size = ctx.x_shape[-2] * ctx.x_shape[-1]
        grad = np.zeros(count * plane_size, dtype=_F32)
        flat = (ctx.index + (np.arange(count) * plane_size)[:, None]).reshape(-1)
        np.add.at(grad, flat, np.ascontiguousarray(g, dtype=_F32).reshape(-1))
        return grad.reshape(ctx.x_shape), None, None, None, None


def _int_pair(value: Any, name: str) -> Tuple[int, int]:
    """torch's BroadcastingList2[int]: an int, or a sequence of exactly two ints."""
    items = list(value) if isinstance(value, (tuple, list)) else [value, value]
    if len(items) != 2:
        raise RuntimeValueError(f"{_OP}: {name} must either be a single Int or tuple of Ints, "
                                f"got {value!r}")
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{_OP}: {name} must be an int or a tuple of ints, got {value!r}")
    return int(items[0]), int(items[1])


def _output_size(x: Tensor, output_size: Any, output_ratio: Any) -> Tuple[int, int]:
    """(oH, oW) from output_size, or from output_ratio times the input's (H, W)."""
    if output_size is None and output_ratio is None:
        raise ValueError(f"{_OP} requires specifying either an output_size or an output_ratio")
    if output_size is None:
        if not isinstance(output_ratio, (tuple, list)):
            # (torch takes len() of it: a bare number is a TypeError there too)
            raise TypeError(f"{_OP}: output_ratio must be a tuple of two floats, got "
                            f"{output_ratio!r}")
        if len(output_ratio) != 2:
            raise ValueError(f"{_OP} requires output_ratio to either be a single Int or tuple of "
                             f"Ints, got {output_ratio!r}")
        if x.ndim < 2:
            raise RankError(f"{_OP}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got "
                            f"shape {x.shape}")
        output_size = (int(x.shape[-2] * output_ratio[0]), int(x.shape[-1] * output_ratio[1]))
    size = _int_pair(output_size, "output_size")
    if min(size) < 0:
        raise RuntimeValueError(f"{_OP}: output_size must be non-negative, got {size}")
    return size


def _check_input(x: Tensor, kernel: Tuple[int, int], out: Tuple[int, int]) -> None:
    if x.ndim not in (3, 4):
        raise RankError(f"{_OP}(): Expected 3D or 4D tensor, but got: {list(x.shape)}")
    for dim in range(x.ndim - 3, x.ndim):
        if x.shape[dim] == 0:
            raise RuntimeValueError(f"{_OP}(): Expected input to have non-zero size for "
                                    f"non-batch dimensions, but got {list(x.shape)} with "
                                    f"dimension {dim} being empty.")
    if min(kernel) < 1:  # (torch reads outside the window then; refused here)
        raise ValueError(f"{_OP}: kernel_size must be positive, got {kernel}")
    for name, o, k, size in (("height", out[0], kernel[0], x.shape[-2]),
                             ("width", out[1], kernel[1], x.shape[-1])):
        if o + k - 1 > size:
            raise RuntimeValueError(f"{_OP}(): pool {name} {k} too large relative to input "
                                    f"{name} {size}")


def _samples(x: Tensor, random_samples: Any) -> np.ndarray:
    """Per-plane samples (planes, 2): the given (N, C, 2) float32 ones, checked as torch
    does, or fresh U[0, 1) draws from the engine's generator."""
    batch = 1 if x.ndim == 3 else x.shape[0]
    channels = x.shape[-3]
    if random_samples is None:
        drawn = default_generator().random((batch, channels, 2), dtype=_F32)
        return drawn.reshape(-1, 2)
    s = as_tensor(random_samples)
    if s.dtype != np.float32:
        raise TypeError(f"{_OP}: Expect _random_samples to have the same dtype as input "
                        f"(float32), got {s.dtype}")
    if s.ndim != 3:
        raise RuntimeValueError(f"{_OP}: Expect _random_samples to have 3 dimensions, got "
                                f"{s.ndim}")
    if s.shape[0] < batch:
        raise RuntimeValueError(f"{_OP}: Expect _random_samples.size(0) no less then input batch "
                                f"size ({batch}), got {s.shape[0]}")
    if s.shape[1] != channels:
        raise RuntimeValueError(f"{_OP}: Expect _random_samples.size(1) equals to input channel "
                                f"size ({channels}), got {s.shape[1]}")
    if s.shape[2] != 2:
        raise RuntimeValueError(f"{_OP}: Expect _random_samples.size(2) equals to 2; got "
                                f"{s.shape[2]}.")
    return np.ascontiguousarray(s._data[:batch]).reshape(-1, 2)


def fractional_max_pool2d_with_indices(input: Any, kernel_size: Any, output_size: Any = None,
                                       output_ratio: Any = None, return_indices: bool = False,
                                       _random_samples: Optional[Any] = None
                                       ) -> Tuple[Tensor, Tensor]:
    """(output, indices) of fractional max pooling over (N, C, H, W) or (C, H, W) input.

    kernel_size: int or (kH, kW). output_size: int or (oH, oW); or output_ratio, a pair
    of floats giving (int(H * rH), int(W * rW)). _random_samples: (N', C, 2) float32
    with N' >= N (per plane: width sample, height sample; drawn from U[0, 1) when
    None). Indices are flat per plane (row * W + col) int64."""
    x = float_input(input, _OP)
    kernel = _int_pair(kernel_size, "kernel_size")
    out = _output_size(x, output_size, output_ratio)
    if x.ndim < 3:  # (torch fails drawing its samples from input.size(-3))
        raise RankError(f"{_OP}(): Expected 3D or 4D tensor, but got: {list(x.shape)}")
    samples = _samples(x, _random_samples)
    _check_input(x, kernel, out)
    holder: List[np.ndarray] = []
    y = _FractionalMaxPool2d.apply(x, kernel, out, samples, holder)
    return y, Tensor._wrap(holder[0])


def fractional_max_pool2d(input: Any, kernel_size: Any, output_size: Any = None,
                          output_ratio: Any = None, return_indices: bool = False,
                          _random_samples: Optional[Any] = None) -> Any:
    """Fractional max pooling (see fractional_max_pool2d_with_indices); returns the
    output, or (output, indices) when return_indices."""
    y, indices = fractional_max_pool2d_with_indices(input, kernel_size, output_size,
                                                    output_ratio, return_indices, _random_samples)
    return (y, indices) if return_indices else y
