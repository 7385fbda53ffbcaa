"""ONNX GridSample (opset 16 and 20 names) and AffineGrid (opset 20), registered in
``_ops.OPS``, on the numpy core of pve.nn.functional.grid_sample / affine_grid.

GridSample: mode bilinear | nearest | bicubic (opset 16 to 19), linear | nearest | cubic
(opset 20 on), padding_mode zeros | border | reflection, align_corners 0 | 1; nearest
rounds half to even, as the specification's reference and torch do. 2-D only: a 5-D
(volumetric) input raises. AffineGrid: 2-D and 3-D, as the specification defines it.
"""

from __future__ import annotations

import numpy as np

from pyvision_engine.nn._f_grid import base_grid, sample_array
from pyvision_engine.onnx._ops import OnnxOpError, _ints, contiguous, op, text_attr

# the engine's mode name for each ONNX name, by opset
_MODES_16 = {"bilinear": "bilinear", "nearest": "nearest", "bicubic": "bicubic"}
_MODES_20 = {"linear": "bilinear", "nearest": "nearest", "cubic": "bicubic"}


@op("GridSample")
def _grid_sample(attrs, opset, inputs):
    x, grid = inputs[0], inputs[1]
    names = _MODES_20 if opset >= 20 else _MODES_16
    mode = text_attr(attrs, "mode", "linear" if opset >= 20 else "bilinear")
    padding = text_attr(attrs, "padding_mode", "zeros")
    align_corners = bool(attrs.get("align_corners", 0))
    if mode not in names:
        raise OnnxOpError(f"GridSample (opset {opset}): mode must be one of "
                          f"{sorted(names)}, got {mode!r}")
    if padding not in ("zeros", "border", "reflection"):
        raise OnnxOpError(f"GridSample: padding_mode must be 'zeros', 'border' or "
                          f"'reflection', got {padding!r}")
    if x.ndim == 5:
        raise NotImplementedError(f"GridSample: volumetric (5-D) input {x.shape} is not "
                                  "supported, only 2-D sampling of (N, C, H, W) input")
    if (x.ndim != 4 or grid.shape != (x.shape[0],) + grid.shape[1:3] + (2,)
            or grid.ndim != 4 or 0 in x.shape[2:]):
        raise OnnxOpError(f"GridSample: input (N, C, H, W) with H, W > 0 and grid "
                          f"(N, H_out, W_out, 2) expected, got input {x.shape} and grid "
                          f"{grid.shape}")
    if x.dtype.kind != "f" or grid.dtype.kind != "f":
        raise OnnxOpError(f"GridSample: float input and grid expected, got {x.dtype} and "
                          f"{grid.dtype}")
    out = sample_array(x, grid, names[mode], padding, align_corners)[0]
    return [contiguous(out, dtype=x.dtype)]


@op("AffineGrid")
def _affine_grid(attrs, opset, inputs):
    theta, size = inputs[0], _ints(inputs[1])
    align_corners = bool(attrs.get("align_corners", 0))
    dims = len(size) - 2
    if dims not in (2, 3) or theta.shape != (size[0], dims, dims + 1):
        raise OnnxOpError(f"AffineGrid: theta (N, 2, 3) with size (N, C, H, W), or (N, 3, 4) "
                          f"with size (N, C, D, H, W) expected, got theta {theta.shape} and "
                          f"size {size}")
    if min(size[2:]) < 1:
        raise OnnxOpError(f"AffineGrid: spatial sizes must be positive, got size {size}")
    base = base_grid(size[2:], align_corners)
    grid = np.matmul(base[None], theta.astype(np.float64).transpose(0, 2, 1))
    return [contiguous(grid.reshape([size[0]] + size[2:] + [dims]), dtype=theta.dtype)]
